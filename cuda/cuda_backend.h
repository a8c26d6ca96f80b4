/* The CUDA backend: the op table of ops.h on an NVIDIA GPU (cuBLAS GEMMs, own kernels for
 * norms, fused attention and elementwise work). Weights and activations are stored in the
 * backend's precision (F16, BF16 or F32); every reduction and GEMM accumulates in float32. */
#pragma once

#include "backend.h"

G_BEGIN_DECLS

/* A backend on CUDA device `device` with activations and weights in act_dtype (I2V_DTYPE_F16,
 * BF16 or F32); free with i2v_backend_free. NULL with an I2V_ERROR_BACKEND error when libi2v was
 * built without CUDA, the driver or cuBLAS cannot be loaded, or there is no such device. */
I2vBackend *i2v_cuda_backend_new(int device, I2vDType act_dtype, GError **error);

/* Number of usable CUDA devices (0 without CUDA, driver or device; never fails). */
int i2v_cuda_device_count(void);

G_END_DECLS
