// A CPU stand-in for the CUDA execution model, force-included (-include cudasim.h) when the
// kernels of cuda/*.cu are compiled as plain C++ for the simulated backend test (test-cuda-sim).
// Every CUDA thread of a block is a host thread; blocks run one after another; __syncthreads and
// warp shuffles are barriers; exited threads leave the barriers as they leave them on a GPU. It is
// slow and meant for small shapes: its purpose is to run the kernels' index arithmetic, masks,
// barriers and reductions on machines without a GPU, against the CPU reference backend.
#pragma once

#include <cuda_runtime_api.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include <algorithm>
#include <functional>

using std::max;
using std::min;

extern thread_local dim3 threadIdx, blockIdx;
extern dim3 blockDim, gridDim;

void cusim_syncthreads();
float cusim_shfl(float v, int src_lane);
void *cusim_dynamic_smem();
void cusim_launch(unsigned blocks, unsigned threads, size_t smem,
                  const std::function<void()> &body);

inline void __syncthreads() {
  cusim_syncthreads();
}
inline float __shfl_xor_sync(unsigned, float v, int mask) {
  return cusim_shfl(v, (int)(threadIdx.x % 32) ^ mask);
}
inline float __shfl_down_sync(unsigned, float v, int delta) {
  int lane = (int)(threadIdx.x % 32) + delta;
  return cusim_shfl(v, lane < 32 ? lane : -1); // out of range: the caller's own value
}
inline float rsqrtf(float x) {
  return 1.0f / sqrtf(x);
}
inline float __fdiv_rn(float a, float b) {
  return a / b;
}
inline float __fmul_rn(float a, float b) {
  return a * b;
}

#undef __shared__
#define __shared__ static
#undef __launch_bounds__
#define __launch_bounds__(...)

// A small grid: grid-stride loops then run many iterations per thread instead of many blocks.
#define CU_MAX_BLOCKS 3
#define CU_DYNAMIC_SHARED(type, name) type *name = static_cast<type *>(cusim_dynamic_smem())
#define CU_LAUNCH(kernel, blocks, threads, smem, stream)                                           \
  [&](auto... args) {                                                                              \
    (void)(stream);                                                                                \
    cusim_launch((blocks), (threads), (smem), [&] { kernel(args...); });                           \
  }
