/* The CPU reference backend: fp32 weights and activations in host memory, OpenBLAS GEMMs, OpenMP
 * threads (cpu_ops.h: the threading rule). */
#pragma once

#include "backend.h"

G_BEGIN_DECLS

/* A CPU backend whose ops run on `threads` OpenMP threads (0: OpenMP's default, usually every
 * core); free with i2v_backend_free. Changes no process-wide OpenMP or BLAS setting. */
I2vBackend *i2v_cpu_backend_new(int threads);

G_END_DECLS
