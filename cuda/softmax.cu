// Row softmax of attention scores for the GEMM attention path (cuda_attention.c): heads too wide
// for the fused kernels (the VAE's one 512-channel head) compute scores = q·kᵀ with a GEMM, this
// kernel, then p·v with another GEMM.
#include "device.cuh"

// Combines v over the block with op (max or sum); every thread gets the result.
template <bool IS_MAX> __device__ float block_reduce(float v, float *part) {
  for (int off = 16; off > 0; off /= 2) {
    float o = __shfl_xor_sync(0xffffffffu, v, off);
    v = IS_MAX ? fmaxf(v, o) : v + o;
  }
  int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) part[warp] = v;
  __syncthreads();
  float r = part[0];
  for (int i = 1; i < (int)(blockDim.x / 32); i++) r = IS_MAX ? fmaxf(r, part[i]) : r + part[i];
  __syncthreads(); // part is reused by the next reduction
  return r;
}

// One block per row (grid-stride over rows): p[r, c] = exp(scale·s[r, c] − max) / sum over the
// visible keys c < visible(r), 0 past them.
__global__ void softmax_rows_kernel(CuBuf p, const float *s, int64_t rows, int64_t cols,
                                    int64_t row0, float scale, int causal) {
  __shared__ float part[CU_THREADS / 32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float *row = s + r * cols;
    int64_t n = causal ? min(cols, row0 + r + 1) : cols;
    float mx = -INFINITY;
    for (int64_t c = threadIdx.x; c < n; c += blockDim.x) mx = fmaxf(mx, scale * row[c]);
    mx = block_reduce<true>(mx, part);
    float sum = 0;
    for (int64_t c = threadIdx.x; c < n; c += blockDim.x) sum += expf(scale * row[c] - mx);
    float inv = 1.0f / block_reduce<false>(sum, part);
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x)
      st(p, r * cols + c, c < n ? expf(scale * row[c] - mx) * inv : 0.0f);
  }
}

extern "C" cudaError_t i2v_cu_softmax_rows(cudaStream_t st, CuBuf p, const float *s, int64_t rows,
                                           int64_t cols, int64_t row0, float scale, int causal) {
  if (rows == 0 || cols == 0) return cudaSuccess;
  unsigned blocks = (unsigned)(rows < CU_MAX_BLOCKS ? rows : CU_MAX_BLOCKS);
  CU_LAUNCH(softmax_rows_kernel, blocks, CU_THREADS, 0, st)(p, s, rows, cols, row0, scale, causal);
  return cudaGetLastError();
}
