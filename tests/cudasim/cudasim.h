// A CPU stand-in for the CUDA execution model, force-included (-include cudasim.h) when the
// kernels of cuda/*.cu are compiled as plain C++ for the simulated backend test (test-cuda-sim).
// Every CUDA thread of a block is a fiber on the calling thread; blocks run one after another;
// __syncthreads, __syncwarp and warp shuffles are barriers; exited threads leave the barriers as
// they do on a GPU. It is slow and meant for small shapes: its purpose is to run the kernels' index
// arithmetic, masks, barriers and reductions on machines without a GPU, against the CPU reference
// backend.
#pragma once

#include <cuda_runtime_api.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include <algorithm>
#include <functional>
#include <type_traits>

using std::max;
using std::min;

// Per host thread: two host threads simulate kernels of two streams side by side.
extern thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;

void cusim_syncthreads();
void cusim_syncwarp();
float cusim_shfl(float v, int src_lane);
void *cusim_dynamic_smem();
void cusim_launch(unsigned blocks, unsigned threads, size_t smem,
                  const std::function<void()> &body);

inline void __syncthreads() {
  cusim_syncthreads();
}
inline void __syncwarp(unsigned = 0xffffffffu) {
  cusim_syncwarp();
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
// one copy per host thread, like one per block on the GPU (blocks run one after another)
#define __shared__ static thread_local
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

// The shared-memory size attribute of a kernel: the simulator has no limit.
template <class F> cudaError_t cudaFuncSetAttribute(F *, cudaFuncAttribute, int) {
  return cudaSuccess;
}

// WMMA 16×16×16: lane 0 of the warp stands for the whole warp (it alone loads, multiplies and
// stores whole tiles; the other lanes' fragments are unused). No barriers are added, so the
// kernel's own __syncwarp/__syncthreads must order the tiles against the lanes' plain accesses,
// as on a GPU.
#define CU_SIM_WMMA 1
namespace nvcuda {
namespace wmma {
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };
template <class Use, int M, int N, int K, class T, class Layout = void> struct fragment {
  float x[16 * 16];
};
inline bool cusim_lane0() {
  return threadIdx.x % 32 == 0;
}
template <class F> void fill_fragment(F &f, float v) {
  if (cusim_lane0())
    for (float &e : f.x) e = v;
}
template <class Use, class T, class L, class P>
void load_matrix_sync(fragment<Use, 16, 16, 16, T, L> &f, const P *p, unsigned ldm) {
  constexpr bool rows = std::is_same<L, row_major>::value;
  if (cusim_lane0())
    for (unsigned r = 0; r < 16; r++)
      for (unsigned c = 0; c < 16; c++)
        f.x[r * 16 + c] = (float)(rows ? p[r * ldm + c] : p[c * ldm + r]);
}
template <class T>
void load_matrix_sync(fragment<accumulator, 16, 16, 16, T> &f, const float *p, unsigned ldm,
                      layout_t l) {
  if (cusim_lane0())
    for (unsigned r = 0; r < 16; r++)
      for (unsigned c = 0; c < 16; c++)
        f.x[r * 16 + c] = l == mem_row_major ? p[r * ldm + c] : p[c * ldm + r];
}
template <class T>
void store_matrix_sync(float *p, const fragment<accumulator, 16, 16, 16, T> &f, unsigned ldm,
                       layout_t l) {
  if (cusim_lane0())
    for (unsigned r = 0; r < 16; r++)
      for (unsigned c = 0; c < 16; c++)
        (l == mem_row_major ? p[r * ldm + c] : p[c * ldm + r]) = f.x[r * 16 + c];
}
template <class D, class A, class B> void mma_sync(D &d, const A &a, const B &b, const D &c) {
  if (!cusim_lane0()) return;
  float out[16 * 16];
  for (int r = 0; r < 16; r++)
    for (int n = 0; n < 16; n++) {
      float acc = c.x[r * 16 + n];
      for (int k = 0; k < 16; k++) acc += a.x[r * 16 + k] * b.x[k * 16 + n];
      out[r * 16 + n] = acc;
    }
  for (int i = 0; i < 256; i++) d.x[i] = out[i];
}
} // namespace wmma
} // namespace nvcuda
