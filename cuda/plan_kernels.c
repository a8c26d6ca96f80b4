/* The planning device's kernels (plan_rename.h): every launch of kernels.h is skipped, after
 * the checks that make the real launcher fail (so a plan fails where a GPU run would). Compiled
 * with plan_rename.h, so these are the i2v_plan_cu_* names and kernels.h checks the signatures. */
#include "kernels.h"

cudaError_t i2v_cu_act(cudaStream_t st, CuBuf y, CuBuf x, int64_t n, int act) {
  (void)st, (void)y, (void)x, (void)n, (void)act;
  return cudaSuccess;
}

cudaError_t i2v_cu_bias_act(cudaStream_t st, CuBuf y, int64_t ldy, CuBuf b, int64_t M, int64_t N,
                            int act) {
  (void)st, (void)y, (void)ldy, (void)b, (void)M, (void)N, (void)act;
  return cudaSuccess;
}

cudaError_t i2v_cu_geglu(cudaStream_t st, CuBuf y, CuBuf x, int64_t rows, int64_t F) {
  (void)st, (void)y, (void)x, (void)rows, (void)F;
  return cudaSuccess;
}

cudaError_t i2v_cu_axpby(cudaStream_t st, CuBuf y, float alpha, CuBuf a, float beta, CuBuf b,
                         int64_t n) {
  (void)st, (void)y, (void)alpha, (void)a, (void)beta, (void)b, (void)n;
  return cudaSuccess;
}

cudaError_t i2v_cu_add_rows(cudaStream_t st, CuBuf x, CuBuf v, int64_t rows, int64_t T, int64_t C) {
  (void)st, (void)x, (void)v, (void)rows, (void)T, (void)C;
  return cudaSuccess;
}

cudaError_t i2v_cu_concat_last(cudaStream_t st, CuBuf y, CuBuf a, CuBuf b, int64_t rows, int64_t Ca,
                               int64_t Cb) {
  (void)st, (void)y, (void)a, (void)b, (void)rows, (void)Ca, (void)Cb;
  return cudaSuccess;
}

cudaError_t i2v_cu_upsample_nearest(cudaStream_t st, CuBuf y, CuBuf x, int64_t N, int64_t H,
                                    int64_t W, int64_t C, int64_t Ho, int64_t Wo) {
  (void)st, (void)y, (void)x, (void)N, (void)H, (void)W, (void)C, (void)Ho, (void)Wo;
  return cudaSuccess;
}

cudaError_t i2v_cu_adaptive_avg_pool(cudaStream_t st, CuBuf y, CuBuf x, int64_t N, int64_t H,
                                     int64_t W, int64_t C, int64_t Ho, int64_t Wo) {
  (void)st, (void)y, (void)x, (void)N, (void)H, (void)W, (void)C, (void)Ho, (void)Wo;
  return cudaSuccess;
}

cudaError_t i2v_cu_permute(cudaStream_t st, CuBuf y, CuBuf x, const int64_t sh[5],
                           const int64_t stride[5]) {
  (void)st, (void)y, (void)x, (void)sh, (void)stride;
  return cudaSuccess;
}

cudaError_t i2v_cu_gather_rows(cudaStream_t st, CuBuf y, CuBuf table, const int64_t *ids,
                               int64_t rows, int64_t D) {
  (void)st, (void)y, (void)table, (void)ids, (void)rows, (void)D;
  return cudaSuccess;
}

cudaError_t i2v_cu_fill(cudaStream_t st, CuBuf y, int64_t n, float value) {
  (void)st, (void)y, (void)n, (void)value;
  return cudaSuccess;
}

cudaError_t i2v_cu_convert(cudaStream_t st, CuBuf y, CuBuf x, int64_t n) {
  (void)st, (void)y, (void)x, (void)n;
  return cudaSuccess;
}

cudaError_t i2v_cu_im2col(cudaStream_t st, CuBuf col, CuBuf x, const CuConvShape *s, int64_t m0,
                          int64_t rows) {
  (void)st, (void)col, (void)x, (void)s, (void)m0, (void)rows;
  return cudaSuccess;
}

cudaError_t i2v_cu_group_norm(cudaStream_t st, CuBuf y, CuBuf x, CuBuf gamma, CuBuf beta, int64_t S,
                              int64_t T, int64_t C, int64_t G, float eps, int act, void *work) {
  (void)st, (void)y, (void)x, (void)gamma, (void)beta, (void)S, (void)T, (void)C, (void)G,
      (void)eps, (void)act, (void)work;
  return cudaSuccess;
}

cudaError_t i2v_cu_layer_norm(cudaStream_t st, CuBuf y, CuBuf x, CuBuf gamma, CuBuf beta,
                              int64_t rows, int64_t C, float eps) {
  (void)st, (void)y, (void)x, (void)gamma, (void)beta, (void)rows, (void)C, (void)eps;
  return cudaSuccess;
}

cudaError_t i2v_cu_attention(cudaStream_t st, const CuSeqView *out, const CuSeqView *q,
                             const CuSeqView *k, const CuSeqView *v, const CuAttnShape *s) {
  (void)st, (void)out, (void)q, (void)k, (void)v;
  if (s->head_dim < 1 || s->head_dim > CU_ATTN_MAX_HEAD_DIM || s->kv_outer_div < 1)
    return cudaErrorInvalidValue;
  return cudaSuccess;
}

cudaError_t i2v_cu_softmax_rows(cudaStream_t st, CuBuf p, const float *s, int64_t rows,
                                int64_t cols, int64_t row0, float scale, int causal) {
  (void)st, (void)p, (void)s, (void)rows, (void)cols, (void)row0, (void)scale, (void)causal;
  return cudaSuccess;
}
