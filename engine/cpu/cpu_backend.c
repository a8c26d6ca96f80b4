/* The CPU backend's device side: plain host memory for tensors, streams that are an arena of
 * aligned host chunks (core/arena.c: a denoising loop allocates on its first step only) and an
 * error; ops run in the calling thread. */
#include <stdlib.h>
#include <string.h>

#include "cpu_backend.h"
#include "cpu_ops.h"

#include <i2v/error.h>

#define ARENA_ALIGN 64
#define ARENA_MIN_CHUNK ((size_t)64 << 20)

/* Arena chunks: 64-byte aligned host memory (whole cache lines, aligned vector loads). */
static void *chunk_alloc(size_t bytes, void *user, GError **error) {
  (void)user;
  void *base = NULL;
  if (posix_memalign(&base, ARENA_ALIGN, bytes) != 0) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_NO_MEMORY,
                "cpu: out of host memory growing the scratch arena by %zu bytes", bytes);
    return NULL;
  }
  return base;
}

static void chunk_free(void *base, void *user) {
  (void)user;
  free(base);
}

static gboolean cpu_alloc(I2vBackend *be, I2vTensor *t, GError **error) {
  (void)be;
  size_t n = i2v_tensor_nbytes(t);
  t->data = g_try_malloc0(MAX(n, 1));
  if (t->data == NULL) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_NO_MEMORY,
                "cpu: out of host memory allocating %zu bytes", n);
    return FALSE;
  }
  return TRUE;
}

static void cpu_free(I2vBackend *be, I2vTensor *t) {
  (void)be;
  g_free(t->data);
  t->data = NULL;
}

static gboolean cpu_write(I2vBackend *be, I2vTensor *t, const void *host, GError **error) {
  (void)be, (void)error;
  memcpy(t->data, host, i2v_tensor_nbytes(t));
  return TRUE;
}

static void cpu_device_memory(I2vBackend *be, size_t *used, size_t *total) {
  (void)be;
  *used = *total = 0; /* host memory: no device to report */
}

static void cpu_destroy(I2vBackend *be) {
  g_free(be->priv);
  g_free(be);
}

/* A CPU stream is its arena and error (core/stream.c): ops run in the calling thread. */
static gboolean cpu_stream_init(I2vStream *st, GError **error) {
  (void)st, (void)error;
  return TRUE;
}

static void cpu_stream_fini(I2vStream *st) {
  (void)st;
}

static gboolean cpu_copy_in(I2vStream *st, I2vTensor *t, const void *host, GError **error) {
  return cpu_write(st->be, t, host, error);
}

static gboolean cpu_copy_out(I2vStream *st, const I2vTensor *t, void *host, GError **error) {
  (void)st, (void)error;
  memcpy(host, t->data, i2v_tensor_nbytes(t));
  return TRUE;
}

static gboolean cpu_sync(I2vStream *st, GError **error) {
  (void)st, (void)error;
  return TRUE;
}

static const I2vBackendIface cpu_iface = {
    .alloc = cpu_alloc,
    .free = cpu_free,
    .write = cpu_write,
    .device_memory = cpu_device_memory,
    .destroy = cpu_destroy,
    .stream_init = cpu_stream_init,
    .stream_fini = cpu_stream_fini,
    .copy_in = cpu_copy_in,
    .copy_out = cpu_copy_out,
    .sync = cpu_sync,
    .chunk_alloc = chunk_alloc,
    .chunk_free = chunk_free,
    .chunk_align = ARENA_ALIGN,
    .min_chunk = ARENA_MIN_CHUNK,
};

I2vBackend *i2v_cpu_backend_new(int threads) {
  I2vBackend *be = g_new0(I2vBackend, 1);
  int *priv = g_new(int, 1);
  *priv = MAX(threads, 0);
  be->name = "cpu";
  be->act_dtype = I2V_DTYPE_F32;
  be->weight_dtype = I2V_DTYPE_F32;
  be->ops = &i2v_cpu_ops;
  be->iface = &cpu_iface;
  be->priv = priv;
  return be;
}
