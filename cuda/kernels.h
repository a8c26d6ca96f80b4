/* The CUDA kernels' host entry points, shared by the C host side (cuda_ops.c, cuda_gemm.c) and
 * the .cu files that define them. Plain C types only, so both compilers read it.
 *
 * Every operand is a CuBuf: a device pointer and its element type. Kernels load any of F32, F16
 * and BF16, compute in float32 and store in the destination's type, so the host side never needs
 * to match dtypes for elementwise work. Each launcher enqueues on `stream` and returns the launch
 * status (cudaGetLastError); none synchronises. Indices are 64-bit throughout. */
#pragma once

#include <cuda_runtime_api.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Element types, numerically equal to I2vDType (checked in cuda_ops.c). */
enum { CU_F32 = 0, CU_F16 = 1, CU_BF16 = 2 };

/* Activations, numerically equal to I2vAct (checked in cuda_ops.c). */
enum { CU_ACT_NONE = 0, CU_ACT_SILU = 1, CU_ACT_GELU = 2, CU_ACT_QUICK_GELU = 3 };

typedef struct {
  void *p;
  int dt;
} CuBuf;

/* elementwise.cu */
cudaError_t i2v_cu_act(cudaStream_t st, CuBuf y, CuBuf x, int64_t n, int act);
/* y[m, :N] = act(y[m, :N] + b[:N]) for rows of stride ldy (b.p may be NULL): a GEMM's epilogue. */
cudaError_t i2v_cu_bias_act(cudaStream_t st, CuBuf y, int64_t ldy, CuBuf b, int64_t M, int64_t N,
                            int act);
cudaError_t i2v_cu_geglu(cudaStream_t st, CuBuf y, CuBuf x, int64_t rows, int64_t F);
cudaError_t i2v_cu_axpby(cudaStream_t st, CuBuf y, float alpha, CuBuf a, float beta, CuBuf b,
                         int64_t n);
/* x[r, :] += v[r / T, :] for rows r of width C. */
cudaError_t i2v_cu_add_rows(cudaStream_t st, CuBuf x, CuBuf v, int64_t rows, int64_t T, int64_t C);
cudaError_t i2v_cu_concat_last(cudaStream_t st, CuBuf y, CuBuf a, CuBuf b, int64_t rows, int64_t Ca,
                               int64_t Cb);
/* shapes of x [N, H, W, C] and y [N, Ho, Wo, C] */
cudaError_t i2v_cu_upsample_nearest(cudaStream_t st, CuBuf y, CuBuf x, int64_t N, int64_t H,
                                    int64_t W, int64_t C, int64_t Ho, int64_t Wo);
cudaError_t i2v_cu_adaptive_avg_pool(cudaStream_t st, CuBuf y, CuBuf x, int64_t N, int64_t H,
                                     int64_t W, int64_t C, int64_t Ho, int64_t Wo);
/* y (row-major shape sh[5]) [a,b,c,d,e] = x[a·st0 + b·st1 + c·st2 + d·st3 + e·st4] */
cudaError_t i2v_cu_permute(cudaStream_t st, CuBuf y, CuBuf x, const int64_t sh[5],
                           const int64_t stride[5]);
/* y[r, :D] = table[ids[r], :D]; ids is a device array */
cudaError_t i2v_cu_gather_rows(cudaStream_t st, CuBuf y, CuBuf table, const int64_t *ids,
                               int64_t rows, int64_t D);
cudaError_t i2v_cu_fill(cudaStream_t st, CuBuf y, int64_t n, float value);
/* y = x with a dtype conversion (same dtype: use cudaMemcpyAsync instead) */
cudaError_t i2v_cu_convert(cudaStream_t st, CuBuf y, CuBuf x, int64_t n);

/* conv.cu: rows [m0, m0 + rows) of the im2col matrix of x [N, H, W, Ci] for a kh×kw kernel,
 * each row the [kh, kw, Ci] patch under output pixel m = (n, oh, ow), zeros outside x. */
typedef struct {
  int64_t N, H, W, Ci, kh, kw, Ho, Wo;
  int stride, pad_top, pad_left;
} CuConvShape;
cudaError_t i2v_cu_im2col(cudaStream_t st, CuBuf col, CuBuf x, const CuConvShape *s, int64_t m0,
                          int64_t rows);

/* norm.cu: GroupNorm of x viewed as [S, T, C] in G groups, then affine and act. `work` is device
 * scratch of i2v_cu_group_norm_work_bytes(S, G, T·C/G) bytes: a Welford state (3 floats) per
 * CU_GN_CHUNK elements of every group, then a float2 per group. Inline here (not in norm.cu) so
 * that the planning device, which launches no kernel, asks for the same bytes. */
#define CU_GN_CHUNK 16384
static inline int64_t i2v_cu_group_norm_chunks(int64_t group_elems) {
  int64_t c = (group_elems + CU_GN_CHUNK - 1) / CU_GN_CHUNK;
  return c > 0 ? c : 1;
}
static inline size_t i2v_cu_group_norm_work_bytes(int64_t S, int64_t G, int64_t group_elems) {
  return (size_t)(S * G * i2v_cu_group_norm_chunks(group_elems)) * 3 * sizeof(float) +
         (size_t)(S * G) * 2 * sizeof(float) + 16;
}
cudaError_t i2v_cu_group_norm(cudaStream_t st, CuBuf y, CuBuf x, CuBuf gamma, CuBuf beta, int64_t S,
                              int64_t T, int64_t C, int64_t G, float eps, int act, void *work);
cudaError_t i2v_cu_layer_norm(cudaStream_t st, CuBuf y, CuBuf x, CuBuf gamma, CuBuf beta,
                              int64_t rows, int64_t C, float eps);

/* attention.cu: fused softmax(scale·q·kᵀ)·v over strided sequence views (see I2vSeqView). */
typedef struct {
  CuBuf b;
  int64_t offset, outer, inner, token;
} CuSeqView;
typedef struct {
  int64_t n_outer, n_inner, kv_outer_div, q_len, kv_len;
  int heads, head_dim, causal;
  float scale;
} CuAttnShape;
/* head_dim must be ≤ CU_ATTN_MAX_HEAD_DIM (cudaErrorInvalidValue otherwise; wider heads take the
 * GEMM path of cuda_attention.c). */
#define CU_ATTN_MAX_HEAD_DIM 128
cudaError_t i2v_cu_attention(cudaStream_t st, const CuSeqView *out, const CuSeqView *q,
                             const CuSeqView *k, const CuSeqView *v, const CuAttnShape *s);

/* softmax.cu: p[r, c] = softmax over c < visible(r) of scale·s[r, c], 0 for c ≥ visible(r), for
 * rows × cols scores s (float32, row stride cols) into p (row stride cols, any dtype, not s);
 * visible(r) = cols, or min(cols, row0 + r + 1) when causal (row r is query row0 + r). */
cudaError_t i2v_cu_softmax_rows(cudaStream_t st, CuBuf p, const float *s, int64_t rows,
                                int64_t cols, int64_t row0, float scale, int causal);

#ifdef __cplusplus
}
#endif
