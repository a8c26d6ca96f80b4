// Fused attention on the tensor cores (WMMA 16×16×16, F16/BF16 in, float32 accumulation) for the
// long sequences where it matters: spatial self-attention (4096–14080 tokens), cross-attention,
// the VAE's mid-block, CLIP.
//
// One block = 4 warps = 64 queries of one (sequence, head); each warp owns 16 query rows. Per tile
// of 64 keys (staged in shared memory by the whole block):
//   S = Q·Kᵀ         tensor cores, one 16×64 strip per warp, to shared memory (float)
//   online softmax   per row of the warp's strip: scale, mask, running max m and sum l, P = exp2
//                    (rounded to the operand type), the row of O rescaled by exp2(m_old − m_new)
//   O += P·V         tensor cores, O kept in shared memory (float) between tiles
// WMMA fragments are opaque (no row↔lane mapping), hence S, P and O in shared memory. Every
// operand is staged from the strided views by coalesced loads, so any I2vSeqView layout works;
// head dims are zero-padded to DP (a multiple of 16) and keys past kv_len to the tile.
#include "attention.cuh"

#ifndef CU_SIM_WMMA
#include <mma.h>
#endif

using namespace nvcuda;

#define MMA_WARPS 4
#define MMA_BQ (16 * MMA_WARPS) // queries per block
#define MMA_BK 64               // keys per tile
#define MMA_LDP (MMA_BK + 8)    // row stride of P (elements; multiple of 8, rows 32-byte aligned)
#define MMA_LDS (MMA_BK + 4)    // row stride of S (floats)

template <typename T> __device__ __forceinline__ T to_t(float v);
template <> __device__ __forceinline__ __half to_t<__half>(float v) {
  return __float2half_rn(v);
}
template <> __device__ __forceinline__ __nv_bfloat16 to_t<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

// Shared memory of one block, in bytes; each array starts 32-byte aligned (WMMA's requirement).
template <int DP> struct MmaSmem {
  static constexpr int LDT = DP + 8, LDO = DP + 4;
  static constexpr size_t q = 0, k = q + MMA_BQ * LDT * 2, v = k + MMA_BK * LDT * 2,
                          p = v + MMA_BK * LDT * 2, s = p + MMA_BQ * MMA_LDP * 2,
                          o = s + MMA_BQ * MMA_LDS * 4, m = o + MMA_BQ * LDO * 4,
                          l = m + MMA_BQ * 4, bytes = l + MMA_BQ * 4;
  static_assert(k % 32 == 0 && v % 32 == 0 && p % 32 == 0 && s % 32 == 0 && o % 32 == 0 &&
                    m % 32 == 0,
                "WMMA tiles need 32-byte aligned shared arrays");
};

// Stages rows [r0, r0 + rows) of one head of a view into dst[rows][LDT] as T, zero past
// `valid` rows and past head_dim.
template <typename T, int DP>
__device__ __forceinline__ void stage(T *dst, const CuSeqView &v, int64_t base, int64_t r0,
                                      int rows, int64_t valid, int D) {
  constexpr int LDT = DP + 8;
  for (int idx = threadIdx.x; idx < rows * DP; idx += blockDim.x) {
    int r = idx / DP, d = idx % DP;
    int64_t tok = r0 + r;
    float x = tok < valid && d < D ? ld(v.b, base + tok * v.token + d) : 0.0f;
    dst[r * LDT + d] = to_t<T>(x);
  }
}

template <typename T, int DP>
__global__ void __launch_bounds__(MMA_WARPS * 32) attention_mma_kernel(AttnArgs a) {
  using S = MmaSmem<DP>;
  constexpr int LDT = S::LDT, LDO = S::LDO;
  CU_DYNAMIC_SHARED(float4, smem4);
  char *smem = reinterpret_cast<char *>(smem4);
  T *Qs = reinterpret_cast<T *>(smem + S::q), *Ks = reinterpret_cast<T *>(smem + S::k);
  T *Vs = reinterpret_cast<T *>(smem + S::v), *Ps = reinterpret_cast<T *>(smem + S::p);
  float *Ss = reinterpret_cast<float *>(smem + S::s), *Os = reinterpret_cast<float *>(smem + S::o);
  float *ms = reinterpret_cast<float *>(smem + S::m), *ls = reinterpret_cast<float *>(smem + S::l);

  const CuAttnShape &s = a.s;
  const int D = s.head_dim, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  int64_t blk = blockIdx.x, qt = blk % a.q_tiles, rest = blk / a.q_tiles;
  int h = (int)(rest % s.heads);
  int64_t seq = rest / s.heads, o = seq / s.n_inner, in = seq % s.n_inner;
  int64_t kvo = o / s.kv_outer_div, q0 = qt * MMA_BQ;
  int64_t qb = head_base(a.q, o, in, h, D), ob = head_base(a.out, o, in, h, D);
  int64_t kb = head_base(a.k, kvo, in, h, D), vb = head_base(a.v, kvo, in, h, D);

  stage<T, DP>(Qs, a.q, qb, q0, MMA_BQ, s.q_len, D);
  for (int i = threadIdx.x; i < MMA_BQ * LDO; i += blockDim.x) Os[i] = 0.0f;
  for (int i = threadIdx.x; i < MMA_BQ; i += blockDim.x) ms[i] = -INFINITY, ls[i] = 0.0f;

  int64_t kv_end = s.kv_len;
  if (s.causal) kv_end = min(kv_end, q0 + MMA_BQ);
  const int row0 = warp * 16; // this warp's rows of Q, S, P, O

  for (int64_t k0 = 0; k0 < kv_end; k0 += MMA_BK) {
    __syncthreads(); // Q/O/m/l ready (first tile); the previous tile's K/V no longer read
    stage<T, DP>(Ks, a.k, kb, k0, MMA_BK, s.kv_len, D);
    stage<T, DP>(Vs, a.v, vb, k0, MMA_BK, s.kv_len, D);
    __syncthreads();

    // S[16 × 64] = Q[16 × DP] · Kᵀ: K stored [key][dim] is Kᵀ in column-major order
    for (int j = 0; j < MMA_BK / 16; j++) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::fill_fragment(acc, 0.0f);
      for (int kk = 0; kk < DP / 16; kk++) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> qa;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> kbf;
        wmma::load_matrix_sync(qa, Qs + row0 * LDT + kk * 16, LDT);
        wmma::load_matrix_sync(kbf, Ks + (j * 16) * LDT + kk * 16, LDT);
        wmma::mma_sync(acc, qa, kbf, acc);
      }
      wmma::store_matrix_sync(Ss + row0 * MMA_LDS + j * 16, acc, MMA_LDS, wmma::mem_row_major);
    }
    __syncwarp();

    // online softmax, one row at a time, each lane two of the 64 columns
    for (int r = row0; r < row0 + 16; r++) {
      int64_t qrow = q0 + r;
      float sv[2], mx = -INFINITY;
      for (int i = 0; i < 2; i++) {
        int c = lane + 32 * i;
        int64_t key = k0 + c;
        bool visible = key < s.kv_len && (!s.causal || key <= qrow);
        sv[i] = visible ? Ss[r * MMA_LDS + c] * a.scale_log2 : -INFINITY;
        mx = fmaxf(mx, sv[i]);
      }
      for (int off = 16; off > 0; off /= 2) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
      float m_old = ms[r], m_new = fmaxf(m_old, mx);
      // nothing visible yet (a causal row before its first key): P = 0, O stays 0
      float corr = m_new == -INFINITY ? 1.0f : exp2f(m_old - m_new), sum = 0.0f;
      for (int i = 0; i < 2; i++) {
        float p = m_new == -INFINITY ? 0.0f : exp2f(sv[i] - m_new);
        T pt = to_t<T>(p);
        Ps[r * MMA_LDP + lane + 32 * i] = pt;
        sum += (float)pt; // the weights P·V will use
      }
      for (int off = 16; off > 0; off /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, off);
      for (int d = lane; d < DP; d += 32) Os[r * LDO + d] *= corr;
      __syncwarp(); // every lane has read ms[r] before lane 0 replaces it
      if (lane == 0) {
        ms[r] = m_new;
        ls[r] = ls[r] * corr + sum;
      }
    }
    __syncwarp();

    // O[16 × DP] += P[16 × 64] · V[64 × DP]
    for (int c = 0; c < DP / 16; c++) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::load_matrix_sync(acc, Os + row0 * LDO + c * 16, LDO, wmma::mem_row_major);
      for (int kk = 0; kk < MMA_BK / 16; kk++) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> pa;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> vbf;
        wmma::load_matrix_sync(pa, Ps + row0 * MMA_LDP + kk * 16, MMA_LDP);
        wmma::load_matrix_sync(vbf, Vs + (kk * 16) * LDT + c * 16, LDT);
        wmma::mma_sync(acc, pa, vbf, acc);
      }
      wmma::store_matrix_sync(Os + row0 * LDO + c * 16, acc, LDO, wmma::mem_row_major);
    }
  }
  __syncthreads();

  // out = O / l, the warp's rows, lanes along the head dims (coalesced per row)
  for (int r = row0; r < row0 + 16; r++) {
    int64_t qrow = q0 + r;
    if (qrow >= s.q_len) break;
    float inv = 1.0f / ls[r];
    for (int d = lane; d < D; d += 32)
      st(a.out.b, ob + qrow * a.out.token + d, Os[r * LDO + d] * inv);
  }
}

bool i2v_cu_attention_mma_fits(const AttnArgs *a) {
  int dt = a->q.b.dt;
  return (dt == CU_F16 || dt == CU_BF16) && a->k.b.dt == dt && a->v.b.dt == dt &&
         a->s.head_dim >= 16 && a->s.head_dim <= 128 && a->s.q_len >= 32;
}

template <typename T, int DP> static cudaError_t launch_mma(cudaStream_t st, AttnArgs a) {
  auto kernel = attention_mma_kernel<T, DP>; // (no template commas inside the macro)
  size_t smem = MmaSmem<DP>::bytes;
  // more than the default 48 KB of shared memory must be asked for (sm_86/89 cannot give the
  // 113 KB of DP = 128: the caller then falls back to the scalar kernel)
  if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem) !=
      cudaSuccess) {
    cudaGetLastError();
    return cudaErrorNotSupported;
  }
  a.rows_per_block = MMA_BQ;
  a.q_tiles = (a.s.q_len + MMA_BQ - 1) / MMA_BQ;
  int64_t blocks = a.q_tiles * a.s.heads * a.s.n_outer * a.s.n_inner;
  if (blocks > 0x7fffffff) return cudaErrorInvalidConfiguration;
  CU_LAUNCH(kernel, (unsigned)blocks, MMA_WARPS * 32, smem, st)(a);
  return cudaGetLastError();
}

template <typename T> static cudaError_t dispatch_dp(cudaStream_t st, AttnArgs a) {
  if (a.s.head_dim <= 64) return launch_mma<T, 64>(st, a);
  if (a.s.head_dim <= 80) return launch_mma<T, 80>(st, a);
  return launch_mma<T, 128>(st, a);
}

cudaError_t i2v_cu_attention_mma(cudaStream_t st, AttnArgs a) {
  return a.q.b.dt == CU_F16 ? dispatch_dp<__half>(st, a) : dispatch_dp<__nv_bfloat16>(st, a);
}
