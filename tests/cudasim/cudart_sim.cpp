// The simulator's CUDA runtime: host memory stands in for device memory, streams run everything
// at once (in order), and kernels run through cusim_launch: every CUDA thread of a block is a
// fiber on the calling thread; __syncthreads and warp barriers switch fibers; blocks run one after
// another. A fiber that returns leaves the barriers, as exited threads do on a GPU; barriers that
// can never be released (threads of one warp waiting at different barriers) abort with a message
// instead of hanging.
//
// Fibers switch with the few instructions of cusim_switch below, not with ucontext: glibc's
// swapcontext saves and restores the signal mask with a system call on every switch, which made
// 95% of a simulated pipeline's time (a kernel with warp reductions switches every thread a dozen
// times). The switch is x86-64 only; meson builds the simulator on x86-64 hosts.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "cudasim.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define CUSIM_ASAN 1
#endif

// cusim_switch(save, to): pushes the callee-saved registers on the current stack, stores its
// stack pointer in *save, and resumes the stack to (popping the registers it saved there).
extern "C" void cusim_switch(void **save, void *to);
asm(R"(
  .text
  .globl cusim_switch
  .type cusim_switch, @function
cusim_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size cusim_switch, .-cusim_switch
)");

thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;

namespace {
enum State { RUNNABLE, AT_BLOCK, AT_WARP, DONE };

// Stack of one fiber: kernels keep small arrays (and, simulated, 1 KB WMMA fragments) on it;
// generous for sanitizer builds.
constexpr size_t STACK = 256 << 10;

struct Fiber {
  void *sp; // saved stack pointer while switched out
  State state;
};

// The scheduler of the calling host thread (streams used from two threads run side by side) and
// CUDA's last error, which is per host thread as in the real runtime.
thread_local void *scheduler_sp;
thread_local std::vector<Fiber> fibers;
thread_local std::vector<char> stacks;
thread_local unsigned current;
thread_local const std::function<void()> *body;
thread_local std::vector<float> shfl_slots;
thread_local std::vector<float4> dyn_smem;
thread_local cudaError_t last_error = cudaSuccess;
#ifdef CUSIM_ASAN
thread_local const void *scheduler_stack;
thread_local size_t scheduler_stack_size;
#endif

// Live cudaMalloc blocks and their sizes: cudaMemGetInfo reports their sum as used memory of a
// simulated 80 GiB device (no context or library overhead is modelled).
constexpr size_t SIM_DEVICE_BYTES = (size_t)80 << 30;
std::mutex alloc_lock;
std::unordered_map<void *, size_t> allocations;
size_t allocated, allocated_peak;

// Back to the scheduler from the current fiber; a fiber that is done never comes back (ASan then
// drops its fake stack).
void to_scheduler(bool done) {
#ifdef CUSIM_ASAN
  void *fake;
  __sanitizer_start_switch_fiber(done ? nullptr : &fake, scheduler_stack, scheduler_stack_size);
  cusim_switch(&fibers[current].sp, scheduler_sp);
  __sanitizer_finish_switch_fiber(fake, &scheduler_stack, &scheduler_stack_size);
#else
  (void)done;
  cusim_switch(&fibers[current].sp, scheduler_sp);
#endif
}

[[noreturn]] void fiber_main() {
#ifdef CUSIM_ASAN
  __sanitizer_finish_switch_fiber(nullptr, &scheduler_stack, &scheduler_stack_size);
#endif
  (*body)();
  fibers[current].state = DONE;
  to_scheduler(true);
  __builtin_unreachable();
}

// A fresh fiber for thread t: its stack holds what cusim_switch pops (six registers, then the
// return address fiber_main) above a null return address that ends backtraces.
void start_fiber(unsigned t) {
  char *top = stacks.data() + (size_t)(t + 1) * STACK;
  void **sp = reinterpret_cast<void **>(reinterpret_cast<uintptr_t>(top) & ~(uintptr_t)15);
  *--sp = nullptr;
  *--sp = reinterpret_cast<void *>(fiber_main);
  for (int r = 0; r < 6; r++) *--sp = nullptr;
  fibers[t].sp = sp;
  fibers[t].state = RUNNABLE;
}

void resume(unsigned t) {
  current = t;
  threadIdx = dim3(t, 0, 0);
#ifdef CUSIM_ASAN
  void *fake;
  __sanitizer_start_switch_fiber(&fake, stacks.data() + (size_t)t * STACK, STACK);
  cusim_switch(&scheduler_sp, fibers[t].sp);
  __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#else
  cusim_switch(&scheduler_sp, fibers[t].sp);
#endif
}

void wait_at(State s) {
  fibers[current].state = s;
  to_scheduler(false);
}

// Releases the barriers whose every live thread has arrived; FALSE if none could be released.
bool release(unsigned threads) {
  bool released = false, all_at_block = true, any_alive = false;
  for (unsigned w0 = 0; w0 < threads; w0 += 32) {
    unsigned w1 = std::min(threads, w0 + 32);
    bool all_at_warp = true, alive = false;
    for (unsigned t = w0; t < w1; t++) {
      if (fibers[t].state == DONE) continue;
      alive = any_alive = true;
      all_at_warp &= fibers[t].state == AT_WARP;
      all_at_block &= fibers[t].state == AT_BLOCK;
    }
    if (alive && all_at_warp) {
      for (unsigned t = w0; t < w1; t++)
        if (fibers[t].state == AT_WARP) fibers[t].state = RUNNABLE;
      released = true;
    }
  }
  if (any_alive && all_at_block && !released) {
    for (unsigned t = 0; t < threads; t++)
      if (fibers[t].state == AT_BLOCK) fibers[t].state = RUNNABLE;
    released = true;
  }
  return released || !any_alive;
}

void run_block(unsigned threads) {
  for (unsigned t = 0; t < threads; t++) start_fiber(t);
  for (;;) {
    bool alive = false;
    for (unsigned t = 0; t < threads; t++)
      if (fibers[t].state == RUNNABLE) resume(t);
    for (unsigned t = 0; t < threads; t++) alive |= fibers[t].state != DONE;
    if (!alive) return;
    if (!release(threads)) {
      std::fprintf(stderr,
                   "cudasim: block %u deadlocks: threads wait at barriers that their "
                   "warp or block never reaches together\n",
                   blockIdx.x);
      std::abort();
    }
  }
}
} // namespace

void cusim_syncthreads() {
  wait_at(AT_BLOCK);
}

void cusim_syncwarp() {
  wait_at(AT_WARP);
}

float cusim_shfl(float v, int src_lane) {
  unsigned base = threadIdx.x / 32 * 32, me = threadIdx.x;
  shfl_slots[me] = v;
  cusim_syncwarp();
  float r = src_lane < 0 ? v : shfl_slots[base + src_lane];
  cusim_syncwarp();
  return r;
}

void *cusim_dynamic_smem() {
  return dyn_smem.data();
}

void cusim_launch(unsigned blocks, unsigned threads, size_t smem,
                  const std::function<void()> &kernel) {
  if (blocks == 0 || threads == 0 || threads > 1024) {
    last_error = cudaErrorInvalidConfiguration;
    return;
  }
  gridDim = dim3(blocks, 1, 1);
  blockDim = dim3(threads, 1, 1);
  body = &kernel;
  shfl_slots.assign(threads, 0.0f);
  dyn_smem.assign((smem + sizeof(float4) - 1) / sizeof(float4) + 1, float4{NAN, NAN, NAN, NAN});
  if (fibers.size() < threads) fibers.resize(threads);
  if (stacks.size() < threads * STACK) stacks.resize(threads * STACK);
  for (unsigned b = 0; b < blocks; b++) {
    blockIdx = dim3(b, 0, 0);
    run_block(threads);
  }
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
  std::lock_guard<std::mutex> guard(alloc_lock);
  *ptr = size <= SIM_DEVICE_BYTES - allocated ? std::malloc(size) : nullptr;
  if (*ptr == nullptr) return last_error = cudaErrorMemoryAllocation;
  std::memset(*ptr, 0xff, size); // NaN-ish garbage, like fresh device memory may hold
  allocations[*ptr] = size;
  allocated += size;
  allocated_peak = std::max(allocated_peak, allocated);
  return cudaSuccess;
}
cudaError_t cudaFree(void *ptr) {
  std::lock_guard<std::mutex> guard(alloc_lock);
  if (ptr == nullptr) return cudaSuccess;
  auto it = allocations.find(ptr);
  if (it == allocations.end()) return last_error = cudaErrorInvalidValue; // not from cudaMalloc
  allocated -= it->second;
  allocations.erase(it);
  std::free(ptr);
  return cudaSuccess;
}
// Simulator only (not CUDA API): the most bytes allocated at once since the last reset; with
// reset, the mark starts again at the bytes allocated now (the planning device's counterpart).
size_t cudasim_device_peak(int reset) {
  std::lock_guard<std::mutex> guard(alloc_lock);
  size_t p = allocated_peak;
  if (reset) allocated_peak = allocated;
  return p;
}
cudaError_t cudaMemGetInfo(size_t *free_b, size_t *total_b) {
  std::lock_guard<std::mutex> guard(alloc_lock);
  *free_b = SIM_DEVICE_BYTES - allocated;
  *total_b = SIM_DEVICE_BYTES;
  return cudaSuccess;
}
cudaError_t cudaMemset(void *ptr, int value, size_t n) {
  std::memset(ptr, value, n);
  return cudaSuccess;
}
cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, cudaMemcpyKind) {
  std::memmove(dst, src, n);
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
// A stream is a distinct token (its work runs at once, in the calling thread).
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned int) {
  *stream = reinterpret_cast<cudaStream_t>(new int);
  return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  delete reinterpret_cast<int *>(stream);
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
