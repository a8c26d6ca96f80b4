// Fused multi-head attention over strided sequence views (flash-style: online softmax over tiles
// of keys, the score matrix never leaves registers).
//
// One block = up to ATTN_THREADS threads = one tile of queries of one (sequence, head). Each query
// row is owned by TPQ consecutive threads, each holding DPT of its head dims (q pre-scaled by
// scale·log2 e, and the fp32 output accumulator) in registers. Per tile of ATTN_BK keys the block
// stages K and V (converted to float) in shared memory; every thread then computes the tile's
// scores for its row (partial dot products over its dims, summed across the TPQ threads with
// shuffles), rescales its accumulator once per tile to the new running maximum, and adds p·v.
// All threads of a warp read the same key row at once (a shared-memory broadcast), as float4.
//
// Instances: (DPT, TPQ) = (16, 1) for head_dim ≤ 16 (the tiny test model), (64, 1) for ≤ 64 (the
// UNet's hot case), (64, 2) for ≤ 128 (CLIP-vision's 80). Dims past head_dim are zero in q, K and
// V, so they add nothing. Masked keys (past kv_len, or past the query under a causal mask) score
// −inf and weigh exp2(−inf) = 0.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attention.cuh"

#define ATTN_BK 32
#define ATTN_THREADS 128

template <int DPT, int TPQ>
__global__ void __launch_bounds__(ATTN_THREADS) attention_kernel(AttnArgs a) {
  // shared row of one key: TPQ slices of DPT floats, each padded by 4 floats so that the TPQ
  // threads of a query (reading their own slices) hit different banks
  constexpr int SLICE = DPT + 4, ROW = TPQ * SLICE;
  CU_DYNAMIC_SHARED(float4, smem4);
  float *ks = reinterpret_cast<float *>(smem4), *vs = ks + ATTN_BK * ROW;

  const CuAttnShape &s = a.s;
  const int D = s.head_dim;
  int64_t blk = blockIdx.x, qt = blk % a.q_tiles, rest = blk / a.q_tiles;
  int h = (int)(rest % s.heads);
  int64_t seq = rest / s.heads, o = seq / s.n_inner, in = seq % s.n_inner;
  int64_t kvo = o / s.kv_outer_div;
  int64_t qb = head_base(a.q, o, in, h, D), ob = head_base(a.out, o, in, h, D);
  int64_t kb = head_base(a.k, kvo, in, h, D), vb = head_base(a.v, kvo, in, h, D);

  const int part = threadIdx.x % TPQ, d0 = part * DPT;
  const int64_t q0 = qt * a.rows_per_block, qrow = q0 + threadIdx.x / TPQ;
  const bool valid = qrow < s.q_len;

  float q[DPT], acc[DPT];
#pragma unroll
  for (int c = 0; c < DPT; c++) {
    int d = d0 + c;
    q[c] = valid && d < D ? ld(a.q.b, qb + qrow * a.q.token + d) * a.scale_log2 : 0.0f;
    acc[c] = 0.0f;
  }
  float m = -INFINITY, l = 0.0f;

  // under a causal mask no query of this block sees keys past its last row
  int64_t kv_end = s.kv_len;
  if (s.causal) kv_end = min(kv_end, q0 + a.rows_per_block);

  for (int64_t k0 = 0; k0 < kv_end; k0 += ATTN_BK) {
    // stage the tile: ATTN_BK keys × TPQ·DPT dims (zero past head_dim and past kv_len)
    for (int idx = threadIdx.x; idx < ATTN_BK * TPQ * DPT; idx += blockDim.x) {
      int j = idx / (TPQ * DPT), d = idx % (TPQ * DPT);
      int64_t key = k0 + j;
      bool in_range = key < s.kv_len && d < D;
      int at = j * ROW + (d / DPT) * SLICE + d % DPT;
      ks[at] = in_range ? ld(a.k.b, kb + key * a.k.token + d) : 0.0f;
      vs[at] = in_range ? ld(a.v.b, vb + key * a.v.token + d) : 0.0f;
    }
    __syncthreads();

    float sc[ATTN_BK];
    float tile_max = -INFINITY;
#pragma unroll
    for (int j = 0; j < ATTN_BK; j++) {
      const float4 *kr = reinterpret_cast<const float4 *>(ks + j * ROW + part * SLICE);
      float dot = 0.0f;
#pragma unroll
      for (int c = 0; c < DPT / 4; c++) {
        float4 kk = kr[c];
        dot += q[4 * c] * kk.x + q[4 * c + 1] * kk.y + q[4 * c + 2] * kk.z + q[4 * c + 3] * kk.w;
      }
#pragma unroll
      for (int off = 1; off < TPQ; off *= 2) dot += __shfl_xor_sync(0xffffffffu, dot, off);
      int64_t key = k0 + j;
      bool visible = key < s.kv_len && (!s.causal || key <= qrow);
      sc[j] = visible ? dot : -INFINITY;
      tile_max = fmaxf(tile_max, sc[j]);
    }

    float m_new = fmaxf(m, tile_max);
    if (m_new != -INFINITY) {        // else nothing visible yet for this row (padding rows, causal)
      float corr = exp2f(m - m_new); // 0 on the first visible tile (m = −inf)
      l *= corr;
#pragma unroll
      for (int c = 0; c < DPT; c++) acc[c] *= corr;
#pragma unroll
      for (int j = 0; j < ATTN_BK; j++) {
        float p = exp2f(sc[j] - m_new);
        l += p;
        const float4 *vr = reinterpret_cast<const float4 *>(vs + j * ROW + part * SLICE);
#pragma unroll
        for (int c = 0; c < DPT / 4; c++) {
          float4 vv = vr[c];
          acc[4 * c] += p * vv.x;
          acc[4 * c + 1] += p * vv.y;
          acc[4 * c + 2] += p * vv.z;
          acc[4 * c + 3] += p * vv.w;
        }
      }
      m = m_new;
    }
    __syncthreads(); // the next tile overwrites ks/vs
  }

  if (!valid) return;
  float inv = 1.0f / l;
#pragma unroll
  for (int c = 0; c < DPT; c++) {
    int d = d0 + c;
    if (d < D) st(a.out.b, ob + qrow * a.out.token + d, acc[c] * inv);
  }
}

template <int DPT, int TPQ> static cudaError_t launch(cudaStream_t st, AttnArgs a) {
  // threads: a whole number of warps, no more than the queries need (16-frame temporal
  // attention runs 32-thread blocks, not 128 with 112 idle)
  int64_t want = a.s.q_len * TPQ;
  int threads = (int)((want + 31) / 32 * 32);
  if (threads > ATTN_THREADS) threads = ATTN_THREADS;
  a.rows_per_block = threads / TPQ;
  a.q_tiles = (a.s.q_len + a.rows_per_block - 1) / a.rows_per_block;
  int64_t blocks = a.q_tiles * a.s.heads * a.s.n_outer * a.s.n_inner;
  if (blocks > 0x7fffffff) return cudaErrorInvalidConfiguration;
  size_t smem = 2 * ATTN_BK * TPQ * (DPT + 4) * sizeof(float);
  auto kernel = attention_kernel<DPT, TPQ>; // (no template commas inside the macro)
  CU_LAUNCH(kernel, (unsigned)blocks, threads, smem, st)(a);
  return cudaGetLastError();
}

extern "C" cudaError_t i2v_cu_attention(cudaStream_t st, const CuSeqView *out, const CuSeqView *q,
                                        const CuSeqView *k, const CuSeqView *v,
                                        const CuAttnShape *s) {
  if (s->head_dim < 1 || s->head_dim > CU_ATTN_MAX_HEAD_DIM || s->kv_outer_div < 1)
    return cudaErrorInvalidValue;
  if (s->q_len == 0 || s->heads == 0 || s->n_outer * s->n_inner == 0) return cudaSuccess;
  AttnArgs a = {*out, *q, *k, *v, *s, s->scale * 1.44269504088896340736f, 0, 0};
  // 16-bit operands and enough queries to fill a tile: the tensor-core kernel
  // (I2V_CUDA_ATTENTION=scalar forces this file's kernel, to tell the two apart on a GPU)
  static int scalar_only = -1;
  if (scalar_only < 0) {
    const char *env = getenv("I2V_CUDA_ATTENTION");
    scalar_only = env != nullptr && strcmp(env, "scalar") == 0;
  }
  if (!scalar_only && i2v_cu_attention_mma_fits(&a)) {
    cudaError_t e = i2v_cu_attention_mma(st, a);
    if (e != cudaErrorNotSupported) return e;
  }
  if (s->head_dim <= 16) return launch<16, 1>(st, a);
  if (s->head_dim <= 64) return launch<64, 1>(st, a);
  return launch<64, 2>(st, a);
}
