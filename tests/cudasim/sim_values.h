// Element loads and stores of the stand-in libraries (cublas_sim, cublaslt_sim, cudnn_sim): they
// compute in float32 on F32, F16 or BF16 storage, whatever their library calls the type.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stddef.h>

enum SimType { SIM_F32, SIM_F16, SIM_BF16 };

inline float sim_load(const void *p, SimType t, size_t i) {
  if (t == SIM_F16) return __half2float(static_cast<const __half *>(p)[i]);
  if (t == SIM_BF16) return __bfloat162float(static_cast<const __nv_bfloat16 *>(p)[i]);
  return static_cast<const float *>(p)[i];
}

inline void sim_store(void *p, SimType t, size_t i, float v) {
  if (t == SIM_F16)
    static_cast<__half *>(p)[i] = __float2half_rn(v);
  else if (t == SIM_BF16)
    static_cast<__nv_bfloat16 *>(p)[i] = __float2bfloat16_rn(v);
  else
    static_cast<float *>(p)[i] = v;
}
