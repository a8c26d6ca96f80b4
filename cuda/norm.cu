// Normalisations. Statistics are exact-ish regardless of the offset of the data: Welford per
// thread, Chan's pairwise combination across threads and blocks (no E[x²] − E[x]² cancellation),
// the last combination in double.
//
// GroupNorm runs in three kernels because one (sample, group) can hold millions of elements (a
// temporal GroupNorm spans all frames: 2.25 M at 1280×704×16) while there are only S·G ≤ 64 of
// them: (1) partial statistics of fixed-size chunks of every group, many blocks per group;
// (2) one thread per group combines its chunks into mean and 1/std; (3) an elementwise pass
// normalises, applies the affine and the activation.
#include "device.cuh"

// Elements of one group per block of the statistics kernel.
#define GN_CHUNK CU_GN_CHUNK

struct Welford {
  float n, mean, m2;
};
static_assert(sizeof(Welford) == 3 * sizeof(float), "i2v_cu_group_norm_work_bytes counts 3 floats");

__device__ __forceinline__ Welford welford_merge(Welford a, Welford b) {
  if (b.n == 0) return a;
  float n = a.n + b.n, delta = b.mean - a.mean, fb = b.n / n;
  a.mean += delta * fb;
  a.m2 += b.m2 + delta * delta * a.n * fb;
  a.n = n;
  return a;
}

// Combines the Welford states of all threads of the block; the result is valid in thread 0.
__device__ Welford block_welford(Welford w) {
  __shared__ Welford warp_part[CU_THREADS / 32];
  for (int off = 16; off > 0; off /= 2) {
    Welford o = {__shfl_down_sync(0xffffffffu, w.n, off),
                 __shfl_down_sync(0xffffffffu, w.mean, off),
                 __shfl_down_sync(0xffffffffu, w.m2, off)};
    w = welford_merge(w, o);
  }
  int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) warp_part[warp] = w;
  __syncthreads();
  if (threadIdx.x == 0)
    for (int i = 1; i < (int)(blockDim.x / 32); i++) w = welford_merge(w, warp_part[i]);
  return w;
}

// Block b = (sample·G + group)·chunks + chunk; writes that chunk's Welford state to part[b].
__global__ void gn_stats_kernel(CuBuf x, int64_t T, int64_t C, int64_t G, int64_t chunks,
                                Welford *part) {
  int64_t chunk = blockIdx.x % chunks, sg = blockIdx.x / chunks, s = sg / G, g = sg % G;
  int64_t cg = C / G, count = T * cg;
  int64_t e0 = chunk * GN_CHUNK, e1 = min(count, e0 + GN_CHUNK);
  const int64_t base = s * T * C + g * cg;
  Welford w = {0, 0, 0};
  for (int64_t e = e0 + threadIdx.x; e < e1; e += blockDim.x) {
    float v = ld(x, base + (e / cg) * C + e % cg);
    w.n += 1;
    float d = v - w.mean;
    w.mean += d / w.n;
    w.m2 += d * (v - w.mean);
  }
  w = block_welford(w);
  if (threadIdx.x == 0) part[blockIdx.x] = w;
}

// One thread per (sample, group): mean and 1/sqrt(var + eps) from its chunks, in double.
__global__ void gn_finalize_kernel(const Welford *part, int64_t groups, int64_t chunks, float eps,
                                   float2 *stats) {
  int64_t sg = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (sg >= groups) return;
  double n = 0, mean = 0, m2 = 0;
  for (int64_t c = 0; c < chunks; c++) {
    Welford w = part[sg * chunks + c];
    if (w.n == 0) continue;
    double nn = n + w.n, delta = w.mean - mean;
    mean += delta * w.n / nn;
    m2 += w.m2 + delta * delta * n * w.n / nn;
    n = nn;
  }
  stats[sg] = make_float2((float)mean, (float)(1.0 / sqrt(m2 / n + (double)eps)));
}

__global__ void gn_apply_kernel(CuBuf y, CuBuf x, CuBuf gamma, CuBuf beta, int64_t T, int64_t C,
                                int64_t G, const float2 *stats, int act, int64_t n) {
  int64_t cg = C / G;
  CU_GRID_LOOP(i, n) {
    int64_t c = i % C, s = i / (T * C);
    float2 ms = stats[s * G + c / cg];
    st(y, i, act1((ld(x, i) - ms.x) * ms.y * ld(gamma, c) + ld(beta, c), act));
  }
}

// One warp per row: mean, then the centred sum of squares, then the output (the row stays in L1).
__global__ void layer_norm_kernel(CuBuf y, CuBuf x, CuBuf gamma, CuBuf beta, int64_t rows,
                                  int64_t C, float eps) {
  int64_t r = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / 32;
  int lane = threadIdx.x % 32;
  if (r >= rows) return; // a whole warp leaves together: rows are per warp
  const int64_t base = r * C;
  float sum = 0;
  for (int64_t c = lane; c < C; c += 32) sum += ld(x, base + c);
  for (int off = 16; off > 0; off /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, off);
  float mean = sum / (float)C, var = 0;
  for (int64_t c = lane; c < C; c += 32) {
    float d = ld(x, base + c) - mean;
    var += d * d;
  }
  for (int off = 16; off > 0; off /= 2) var += __shfl_xor_sync(0xffffffffu, var, off);
  float rstd = rsqrtf(var / (float)C + eps);
  for (int64_t c = lane; c < C; c += 32)
    st(y, base + c, (ld(x, base + c) - mean) * rstd * ld(gamma, c) + ld(beta, c));
}

extern "C" {

cudaError_t i2v_cu_group_norm(cudaStream_t st, CuBuf y, CuBuf x, CuBuf gamma, CuBuf beta, int64_t S,
                              int64_t T, int64_t C, int64_t G, float eps, int act, void *work) {
  int64_t chunks = i2v_cu_group_norm_chunks(T * (C / G)), groups = S * G, n = S * T * C;
  if (n == 0) return cudaSuccess;
  Welford *part = static_cast<Welford *>(work);
  // float2 needs 8-byte alignment: round the offset past the partials up
  size_t off = ((size_t)(groups * chunks) * sizeof(Welford) + 15) & ~(size_t)15;
  float2 *stats = reinterpret_cast<float2 *>(static_cast<char *>(work) + off);
  CU_LAUNCH(gn_stats_kernel, (unsigned)(groups * chunks), CU_THREADS, 0, st)
  (x, T, C, G, chunks, part);
  CU_LAUNCH(gn_finalize_kernel, (unsigned)((groups + 63) / 64), 64, 0, st)
  (part, groups, chunks, eps, stats);
  CU_LAUNCH(gn_apply_kernel, cu_blocks(n), CU_THREADS, 0, st)
  (y, x, gamma, beta, T, C, G, stats, act, n);
  return cudaGetLastError();
}

cudaError_t i2v_cu_layer_norm(cudaStream_t st, CuBuf y, CuBuf x, CuBuf gamma, CuBuf beta,
                              int64_t rows, int64_t C, float eps) {
  if (rows == 0) return cudaSuccess;
  const int64_t rows_per_block = CU_THREADS / 32;
  CU_LAUNCH(layer_norm_kernel, (unsigned)((rows + rows_per_block - 1) / rows_per_block), CU_THREADS,
            0, st)
  (y, x, gamma, beta, rows, C, eps);
  return cudaGetLastError();
}

} // extern "C"
