/* How a backend is built: its op table, its device and stream functions, and the state behind the
 * opaque I2vBackend and I2vStream. Only core/, cpu/ and cuda/ include this header; the rest of the
 * engine uses backend.h, stream.h and ops.h. */
#pragma once

#include "arena.h"
#include "backend.h"
#include "ops.h"

G_BEGIN_DECLS

/* What a backend implements besides its op table. */
typedef struct {
  /* Persistent memory: zeroed allocation, free, a synchronous copy of host data (t's dtype) into
   * a tensor no stream uses yet. */
  gboolean (*alloc)(I2vBackend *be, I2vTensor *t, GError **error);
  void (*free)(I2vBackend *be, I2vTensor *t);
  gboolean (*write)(I2vBackend *be, I2vTensor *t, const void *host, GError **error);
  /* The device's memory as the driver reports it (backend.h). */
  void (*device_memory)(I2vBackend *be, size_t *used, size_t *total);
  void (*destroy)(I2vBackend *be);
  /* Streams: set up st->priv (st->be and the arena are set) / wait for the stream's work and
   * free st->priv. */
  gboolean (*stream_init)(I2vStream *st, GError **error);
  void (*stream_fini)(I2vStream *st);
  /* Copies host data (t's dtype) into t / t into host memory, ordered after the stream's queued
   * work; both return when the copy is complete. */
  gboolean (*copy_in)(I2vStream *st, I2vTensor *t, const void *host, GError **error);
  gboolean (*copy_out)(I2vStream *st, const I2vTensor *t, void *host, GError **error);
  /* Waits for the stream's queued work (no-op on the CPU); an error is work that failed. */
  gboolean (*sync)(I2vStream *st, GError **error);
  /* The scratch arena's chunks (user: the backend) and their alignment and smallest size. */
  I2vChunkAllocFn chunk_alloc;
  I2vChunkFreeFn chunk_free;
  size_t chunk_align, min_chunk;
  /* TRUE for a device that only counts memory (plan:cuda): writes are dropped, so loaders need
   * not produce the data. */
  gboolean counts_only;
} I2vBackendIface;

struct I2vBackend {
  const char *name;      /* "cpu", "cuda:0" */
  I2vDType act_dtype;    /* dtype of activations made by i2v_scratch_tensor */
  I2vDType weight_dtype; /* dtype weights are converted to at load */
  const I2vOps *ops;
  const I2vBackendIface *iface;
  size_t persistent_bytes, persistent_peak; /* i2v_tensor_alloc'd memory now / at most (atomics) */
  void *priv;                               /* the device's state */
};

struct I2vStream {
  I2vBackend *be;
  GError *error; /* first sticky error, or NULL */
  double flops;  /* FLOPs of the GEMM-like ops dispatched so far (2 per multiply-add) */
  I2vArena arena;
  size_t reserved; /* device bytes the backend keeps per stream besides the arena (workspaces) */
  I2vTapFn tap;    /* NULL unless a test installs one */
  void *tap_user;
  void *priv; /* the backend's per-stream state (CUDA: cudaStream_t, library handles, ...) */
};

/* Host float32 values in t's dtype (F32, F16 or BF16): host itself for F32, else a converted
 * copy that *tmp owns (g_free; NULL when host is returned). */
const void *i2v_f32_as_dtype(const I2vTensor *t, const float *host, uint16_t **tmp);

G_END_DECLS
