/* Backends: a device (the CPU, a CUDA GPU) and the persistent memory on it — the weights, which
 * are written once at load and then only read, by any number of streams (stream.h) at once.
 *
 * How a backend is built (its op table and memory functions) is internal to core/ and the
 * backends (backend_impl.h); the rest of the engine sees these functions only. Backends are made
 * by i2v_cpu_backend_new (cpu/cpu_backend.h) and i2v_cuda_backend_new (cuda/cuda_backend.h), or
 * from the user's device string (pipeline/device.h). */
#pragma once

#include "tensor.h"

G_BEGIN_DECLS

/* Destroys a backend (NULL allowed); every stream and tensor on it must be freed first. */
void i2v_backend_free(I2vBackend *be);

/* The device's name ("cpu", "cuda:0"); owned by be. */
const char *i2v_backend_name(const I2vBackend *be);

/* The dtype of activations (scratch tensors) / of weights converted at load. */
I2vDType i2v_backend_act_dtype(const I2vBackend *be);
I2vDType i2v_backend_weight_dtype(const I2vBackend *be);

/* TRUE if be only counts memory (the planning device plan:cuda): data written to it is dropped,
 * so a loader may skip producing it. */
gboolean i2v_backend_counts_only(const I2vBackend *be);

/* Persistent bytes allocated on be now / at most since it was made; safe from any thread. */
size_t i2v_backend_persistent(const I2vBackend *be);
size_t i2v_backend_persistent_peak(const I2vBackend *be);
/* Starts the persistent high-water mark again at the bytes allocated now (plans measure it per
 * stage). */
void i2v_backend_persistent_peak_reset(I2vBackend *be);

/* The device's memory as its driver reports it: bytes in use by every user of the device (this
 * process's tensors and arenas, the driver's context, libraries' workspaces, other processes) and
 * its total; both 0 for host memory (the CPU backend). */
void i2v_backend_device_memory(I2vBackend *be, size_t *used, size_t *total);

/* Allocates zeroed persistent memory for t with the given dtype and shape (weights). */
gboolean i2v_tensor_alloc(I2vBackend *be, I2vTensor *t, I2vDType dtype, int ndim,
                          const int64_t *shape, GError **error);

/* Frees a tensor made by i2v_tensor_alloc (no-op on an empty tensor) and clears it. */
void i2v_tensor_free(I2vTensor *t);

/* Copies host data of t's dtype into the persistent tensor t / converts host float32 values to
 * t's dtype and copies them; synchronous, for tensors no stream uses yet (loading weights). */
gboolean i2v_tensor_write(I2vTensor *t, const void *host, GError **error);
gboolean i2v_tensor_write_f32(I2vTensor *t, const float *host, GError **error);

G_END_DECLS
