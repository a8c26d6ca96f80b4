// The simulator's CUDA runtime: host memory stands in for device memory, streams run everything
// at once (in order), and kernels run through cusim_launch (one host thread per CUDA thread).
#include <barrier>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "cudasim.h"

thread_local dim3 threadIdx, blockIdx;
dim3 blockDim, gridDim;

namespace {
// Barriers of the block being run, replaced for every block (a thread that returned from the
// kernel drops out of them, as exited threads do on a GPU).
std::unique_ptr<std::barrier<>> block_bar;
std::vector<std::unique_ptr<std::barrier<>>> warp_bars;
std::vector<float> shfl_slots;
std::vector<float4> dyn_smem;
cudaError_t last_error = cudaSuccess;
} // namespace

void cusim_syncthreads() {
  block_bar->arrive_and_wait();
}

void cusim_syncwarp() {
  warp_bars[threadIdx.x / 32]->arrive_and_wait();
}

float cusim_shfl(float v, int src_lane) {
  unsigned warp = threadIdx.x / 32, base = warp * 32;
  auto &bar = *warp_bars[warp];
  shfl_slots[threadIdx.x] = v;
  bar.arrive_and_wait();
  float r = src_lane < 0 ? v : shfl_slots[base + src_lane];
  bar.arrive_and_wait();
  return r;
}

void *cusim_dynamic_smem() {
  return dyn_smem.data();
}

static void new_block_barriers(unsigned threads) {
  block_bar = std::make_unique<std::barrier<>>(threads);
  warp_bars.clear();
  for (unsigned w = 0; w < (threads + 31) / 32; w++)
    warp_bars.push_back(std::make_unique<std::barrier<>>(std::min(32u, threads - w * 32)));
}

void cusim_launch(unsigned blocks, unsigned threads, size_t smem,
                  const std::function<void()> &body) {
  if (blocks == 0 || threads == 0 || threads > 1024) {
    last_error = cudaErrorInvalidConfiguration;
    return;
  }
  gridDim = dim3(blocks, 1, 1);
  blockDim = dim3(threads, 1, 1);
  shfl_slots.assign(threads, 0.0f);
  dyn_smem.assign((smem + sizeof(float4) - 1) / sizeof(float4) + 1, float4{NAN, NAN, NAN, NAN});
  new_block_barriers(threads);
  // all threads finish block b before any starts b + 1; then the barriers are renewed
  std::barrier end_of_block(threads, [threads]() noexcept { new_block_barriers(threads); });
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < threads; t++) {
    pool.emplace_back([&, t] {
      threadIdx = dim3(t, 0, 0);
      for (unsigned b = 0; b < blocks; b++) {
        blockIdx = dim3(b, 0, 0);
        body();
        block_bar->arrive_and_drop();
        warp_bars[t / 32]->arrive_and_drop();
        end_of_block.arrive_and_wait();
      }
    });
  }
  for (auto &th : pool) th.join();
}

extern "C" {

cudaError_t cudaGetDeviceCount(int *count) {
  *count = 1;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) {
  return device == 0 ? cudaSuccess : cudaErrorInvalidDevice;
}
cudaError_t cudaMalloc(void **ptr, size_t size) {
  *ptr = size < ((size_t)1 << 40) ? std::malloc(size) : nullptr;
  if (*ptr == nullptr) return last_error = cudaErrorMemoryAllocation;
  std::memset(*ptr, 0xff, size); // NaN-ish garbage, like fresh device memory may hold
  return cudaSuccess;
}
cudaError_t cudaFree(void *ptr) {
  std::free(ptr);
  return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t *free_b, size_t *total_b) {
  *free_b = (size_t)1 << 30;
  *total_b = (size_t)2 << 30;
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void *ptr, int value, size_t n, cudaStream_t) {
  std::memset(ptr, value, n);
  return cudaSuccess;
}
cudaError_t cudaMemset2DAsync(void *ptr, size_t pitch, int value, size_t width, size_t height,
                              cudaStream_t) {
  for (size_t r = 0; r < height; r++)
    std::memset(static_cast<char *>(ptr) + r * pitch, value, width);
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, cudaMemcpyKind, cudaStream_t) {
  std::memmove(dst, src, n);
  return cudaSuccess;
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned int) {
  static int token;
  *stream = reinterpret_cast<cudaStream_t>(&token);
  return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t) {
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t) {
  return cudaSuccess;
}
cudaError_t cudaGetLastError(void) {
  cudaError_t e = last_error;
  last_error = cudaSuccess;
  return e;
}
const char *cudaGetErrorString(cudaError_t e) {
  return e == cudaErrorMemoryAllocation ? "out of memory (simulated)" : "simulated CUDA error";
}
const char *cudaGetErrorName(cudaError_t e) {
  return e == cudaErrorMemoryAllocation ? "cudaErrorMemoryAllocation" : "cudaErrorSimulated";
}

} // extern "C"
