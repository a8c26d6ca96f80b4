/* Streams: one run's work on a backend (whisper_state-style per-run state; ggml would call it a
 * backend's compute context).
 *
 * A backend (backend.h) is a device and the read-only weights on it, shared by every run. A stream
 * is what one run writes: its scratch arena of activations, its sticky error, the FLOPs it has
 * dispatched, its debug tap and, on CUDA, its cudaStream_t with its own cuBLASLt/cuDNN handles,
 * workspaces and plan caches. Ops run on a stream (ops.h), so two streams on one backend run at
 * the same time (two threads on the CPU, two CUDA streams on the GPU) without sharing anything
 * but the weights they read. A stream is used by one thread at a time. */
#pragma once

#include "tensor.h"

G_BEGIN_DECLS

/* A debug tap: models call i2v_tap() at named points (diffusers module names, e.g.
 * "down_blocks.0"); tests install a tap to compare intermediates with golden files. Feature maps
 * are passed channels-last [N, H, W, C], token sequences [N, T, C]; st is the stream that made t
 * (to download it with i2v_tensor_download_f32). */
typedef void (*I2vTapFn)(I2vStream *st, const char *name, const I2vTensor *t, void *user);

/* A new stream on be (be must outlive it); NULL with an error when the device cannot make one.
 * Free with i2v_stream_free. */
I2vStream *i2v_stream_new(I2vBackend *be, GError **error);

/* Waits for the stream's queued work and frees it with its scratch arena (NULL allowed). */
void i2v_stream_free(I2vStream *st);

/* The backend the stream runs on (borrowed). */
I2vBackend *i2v_stream_backend(const I2vStream *st);

/* Records err as the stream's sticky error unless one is already set (takes ownership). */
void i2v_stream_fail(I2vStream *st, GError *err);

/* Records a formatted sticky error in I2V_ERROR / I2V_ERROR_BACKEND. */
void i2v_stream_failf(I2vStream *st, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

/* Waits for the queued work; TRUE if no op failed since the last check, else moves the sticky
 * error into error (and the stream is usable again). */
gboolean i2v_stream_check(I2vStream *st, GError **error);

/* FLOPs of the GEMM-like ops dispatched on st so far (2 per multiply-add). */
double i2v_stream_flops(const I2vStream *st);

/* Device bytes the stream holds: its scratch arena (all chunks, used or not) and the backend's
 * per-stream workspaces; safe to call from any thread while the stream runs. */
size_t i2v_stream_scratch_capacity(const I2vStream *st);

/* Makes st's scratch arena one chunk of at least bytes (i2v_arena_reserve; nothing may be
 * allocated from it). FALSE with error when the device has not that much. */
gboolean i2v_stream_reserve(I2vStream *st, size_t bytes, GError **error);

/* st's device memory for a plan: the arena's high-water mark and largest capacity
 * (i2v_arena_highs, reset with reset), and the bytes the backend reserves per stream besides it
 * (workspaces). */
void i2v_stream_memory(I2vStream *st, gboolean reset, size_t *arena_high, size_t *arena_capacity,
                       size_t *reserved);

/* A scratch tensor of the backend's activation dtype from the stream's arena; on failure the
 * sticky error is set and the returned tensor has data NULL (ops on it are then skipped). */
I2vTensor i2v_scratch_tensor(I2vStream *st, int ndim, const int64_t *shape);

/* The arena's position; i2v_scratch_release(mark) gives back everything allocated after it. */
size_t i2v_scratch_mark(I2vStream *st);
void i2v_scratch_release(I2vStream *st, size_t mark);

/* Raw scratch bytes (an op's workspace) from the arena, or NULL with the sticky error set. */
void *i2v_scratch_bytes(I2vStream *st, size_t bytes);

/* Converts host float32 values into t (any float dtype of t) / t into host float32, in the
 * stream's order (after the work queued before); both return when the copy is complete. */
gboolean i2v_tensor_upload_f32(I2vStream *st, I2vTensor *t, const float *host, GError **error);
gboolean i2v_tensor_download_f32(I2vStream *st, const I2vTensor *t, float *host, GError **error);

/* Installs (or with fn NULL removes) the stream's debug tap. */
void i2v_stream_set_tap(I2vStream *st, I2vTapFn fn, void *user);

/* TRUE when a tap is installed (models skip work that only feeds the tap otherwise). */
gboolean i2v_stream_tapping(const I2vStream *st);

/* Hands t to the stream's tap, if any and no op has failed, under name. */
void i2v_tap(I2vStream *st, const char *name, const I2vTensor *t);

/* The dtype of the stream's scratch tensors (the backend's activation dtype). */
I2vDType i2v_stream_act_dtype(const I2vStream *st);

G_END_DECLS
