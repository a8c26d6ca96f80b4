// Device-side helpers shared by the kernels: typed loads/stores through a CuBuf, activations,
// and the launch shape of grid-stride loops.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "kernels.h"

// Element i of b as float32 (the switch is uniform across a warp: one dtype per operand).
__device__ __forceinline__ float ld(CuBuf b, int64_t i) {
  switch (b.dt) {
  case CU_F16:
    return __half2float(static_cast<const __half *>(b.p)[i]);
  case CU_BF16:
    return __bfloat162float(static_cast<const __nv_bfloat16 *>(b.p)[i]);
  default:
    return static_cast<const float *>(b.p)[i];
  }
}

// Stores v into element i of b, rounding to nearest even for the 16-bit types.
__device__ __forceinline__ void st(CuBuf b, int64_t i, float v) {
  switch (b.dt) {
  case CU_F16:
    static_cast<__half *>(b.p)[i] = __float2half_rn(v);
    break;
  case CU_BF16:
    static_cast<__nv_bfloat16 *>(b.p)[i] = __float2bfloat16_rn(v);
    break;
  default:
    static_cast<float *>(b.p)[i] = v;
  }
}

// The same formulas as the CPU backend's cpu_act1 (accurate expf/erff, not the fast intrinsics).
__device__ __forceinline__ float act1(float x, int act) {
  switch (act) {
  case CU_ACT_SILU:
    return x / (1.0f + expf(-x));
  case CU_ACT_GELU:
    return 0.5f * x * (1.0f + erff(x * 0.70710678118654752440f));
  case CU_ACT_QUICK_GELU:
    return x / (1.0f + expf(-1.702f * x));
  default:
    return x;
  }
}

#define CU_THREADS 256

// Hooks that let tests/cudasim run these kernels on the CPU (it defines them first): the launch,
// the block's dynamic shared memory, and the grid size of grid-stride loops.
#ifndef CU_LAUNCH
#define CU_LAUNCH(kernel, blocks, threads, smem, stream)                                           \
  kernel<<<(blocks), (threads), (smem), (stream)>>>
#define CU_DYNAMIC_SHARED(type, name) extern __shared__ __align__(128) type name[]
#define CU_MAX_BLOCKS 65536
#endif

// Blocks for a grid-stride loop over n items: enough to fill any GPU, never more than needed.
static inline unsigned cu_blocks(int64_t n) {
  int64_t b = (n + CU_THREADS - 1) / CU_THREADS;
  if (b < 1) b = 1;
  return (unsigned)(b < CU_MAX_BLOCKS ? b : CU_MAX_BLOCKS);
}

// for (i = first index of this thread; i < n; i += all threads of the grid)
#define CU_GRID_LOOP(i, n)                                                                         \
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);                        \
       i += (int64_t)gridDim.x * blockDim.x)
