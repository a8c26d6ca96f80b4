/* The CPU backend's memory side: plain host memory for tensors and a chunked scratch arena.
 * The arena hands out memory bump-style from chunks that are kept once made, so a denoising loop
 * allocates on its first step only; release(mark) returns everything allocated after mark. */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_ops.h"
#include "error.h"

#define ARENA_ALIGN 64
#define ARENA_MIN_CHUNK ((size_t)64 << 20)

typedef struct {
  char *base;
  size_t size;
} Chunk;

typedef struct {
  GArray *chunks;  /* Chunk, in order of creation */
  guint cur;       /* chunk being filled */
  size_t used;     /* bytes used in chunk cur */
  size_t capacity; /* sum of chunk sizes (for marks) */
} CpuPriv;

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

/* A mark is the global offset: bytes of all chunks before cur plus used. */
static size_t chunk_start(CpuPriv *p, guint i) {
  size_t s = 0;
  for (guint k = 0; k < i; k++) s += g_array_index(p->chunks, Chunk, k).size;
  return s;
}

static void *cpu_scratch_alloc(I2vBackend *be, size_t bytes, GError **error) {
  CpuPriv *p = be->priv;
  bytes = (bytes + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
  for (;;) {
    if (p->cur < p->chunks->len) {
      Chunk *c = &g_array_index(p->chunks, Chunk, p->cur);
      if (p->used + bytes <= c->size) {
        void *ptr = c->base + p->used;
        p->used += bytes;
        return ptr;
      }
      if (p->cur + 1 < p->chunks->len) { /* skip to the next existing chunk */
        p->cur++;
        p->used = 0;
        continue;
      }
    }
    Chunk c = {.size = MAX(bytes, ARENA_MIN_CHUNK)};
    /* chunk bases aligned like the bump offsets, so every scratch pointer is ARENA_ALIGN-aligned */
    if (posix_memalign((void **)&c.base, ARENA_ALIGN, c.size) != 0) {
      g_set_error(error, I2V_ERROR, I2V_ERROR_NO_MEMORY,
                  "cpu: out of host memory growing the scratch arena by %zu bytes", c.size);
      return NULL;
    }
    g_array_append_val(p->chunks, c);
    p->capacity += c.size;
    p->cur = p->chunks->len - 1;
    p->used = 0;
  }
}

static size_t cpu_scratch_mark(I2vBackend *be) {
  CpuPriv *p = be->priv;
  return p->chunks->len ? chunk_start(p, p->cur) + p->used : 0;
}

static void cpu_scratch_release(I2vBackend *be, size_t mark) {
  CpuPriv *p = be->priv;
  size_t start = 0;
  for (guint i = 0; i < p->chunks->len; i++) {
    size_t size = g_array_index(p->chunks, Chunk, i).size;
    if (mark <= start + size) {
      p->cur = i;
      p->used = mark - start;
      return;
    }
    start += size;
  }
  p->cur = 0;
  p->used = 0;
}

static void cpu_destroy(I2vBackend *be) {
  CpuPriv *p = be->priv;
  for (guint i = 0; i < p->chunks->len; i++) free(g_array_index(p->chunks, Chunk, i).base);
  g_array_unref(p->chunks);
  g_free(p);
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
    .destroy = cpu_destroy,
};

I2vBackend *i2v_cpu_backend_new(void) {
  /* all threading is OpenMP's: each sgemm runs in the thread that calls it (cpu_ops.h) */
  openblas_set_num_threads(1);
  I2vBackend *be = g_new0(I2vBackend, 1);
  CpuPriv *p = g_new0(CpuPriv, 1);
  p->chunks = g_array_new(FALSE, FALSE, sizeof(Chunk));
  be->name = "cpu";
  be->act_dtype = I2V_DTYPE_F32;
  be->weight_dtype = I2V_DTYPE_F32;
  be->ops = &i2v_cpu_ops;
  be->mem = &cpu_mem;
  be->priv = p;
  return be;
}
