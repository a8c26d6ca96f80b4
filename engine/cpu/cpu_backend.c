/* The CPU backend's memory side: plain host memory for tensors and the chunked scratch arena of
 * engine/core/arena.c over aligned host chunks (a denoising loop allocates on its first step only).
 */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
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

static gboolean cpu_upload(I2vBackend *be, I2vTensor *t, const void *host, GError **error) {
  (void)be, (void)error;
  memcpy(t->data, host, i2v_tensor_nbytes(t));
  return TRUE;
}

static gboolean cpu_download(I2vBackend *be, const I2vTensor *t, void *host, GError **error) {
  (void)be, (void)error;
  memcpy(host, t->data, i2v_tensor_nbytes(t));
  return TRUE;
}

static gboolean cpu_sync(I2vBackend *be, GError **error) {
  (void)be, (void)error;
  return TRUE;
}

static void *cpu_scratch_alloc(I2vBackend *be, size_t bytes, GError **error) {
  return i2v_arena_alloc(be->priv, bytes, error);
}

static size_t cpu_scratch_mark(I2vBackend *be) {
  return i2v_arena_mark(be->priv);
}

static void cpu_scratch_release(I2vBackend *be, size_t mark) {
  i2v_arena_release(be->priv, mark);
}

static size_t cpu_scratch_capacity(I2vBackend *be) {
  return i2v_arena_capacity(be->priv);
}

static void cpu_device_memory(I2vBackend *be, size_t *used, size_t *total) {
  (void)be;
  *used = *total = 0; /* host memory: no device to report */
}

static void cpu_destroy(I2vBackend *be) {
  i2v_arena_destroy(be->priv);
  g_free(be->priv);
  g_free(be);
}

static const I2vMemOps cpu_mem = {
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_upload,
    .download = cpu_download,
    .sync = cpu_sync,
    .scratch_alloc = cpu_scratch_alloc,
    .scratch_mark = cpu_scratch_mark,
    .scratch_release = cpu_scratch_release,
    .scratch_capacity = cpu_scratch_capacity,
    .device_memory = cpu_device_memory,
    .destroy = cpu_destroy,
};

I2vBackend *i2v_cpu_backend_new(void) {
  /* all threading is OpenMP's: each sgemm runs in the thread that calls it (cpu_ops.h) */
  openblas_set_num_threads(1);
  I2vBackend *be = g_new0(I2vBackend, 1);
  I2vArena *arena = g_new0(I2vArena, 1);
  i2v_arena_init(arena, ARENA_ALIGN, ARENA_MIN_CHUNK, chunk_alloc, chunk_free, NULL);
  be->name = "cpu";
  be->act_dtype = I2V_DTYPE_F32;
  be->weight_dtype = I2V_DTYPE_F32;
  be->ops = &i2v_cpu_ops;
  be->mem = &cpu_mem;
  be->priv = arena;
  return be;
}
