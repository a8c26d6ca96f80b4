/* Attention on CUDA: the fused kernels of attention.cu / attention_mma.cu for heads of up to
 * CU_ATTN_MAX_HEAD_DIM channels, and a GEMM path for wider heads (the VAE mid-block's one head of
 * 512 channels): per (sequence, head) and block of query rows, scores = q·kᵀ (cuBLASLt, float32
 * out), a row softmax with the scale and the causal mask (i2v_cu_softmax_rows), then out = p·v
 * against a transposed copy of v (i2v_cuda_gemm_xwt multiplies by wᵀ). The score block is bounded
 * (ATTN_SCORE_BYTES) so the scratch need does not grow with q_len · kv_len. */
#include "cuda_priv.h"

/* Float32 scores per query block: 64 MB is ~1200 rows of the VAE's 14080-token decode at
 * 1280×704, plenty for GEMM efficiency. */
#define ATTN_SCORE_BYTES ((size_t)64 << 20)

static CuSeqView seq_view(const I2vSeqView *v) {
  CuSeqView c = {cu_buf(v->t), v->offset, v->outer_stride, v->inner_stride, v->token_stride};
  return c;
}

/* View v's head h of sequence (outer, inner) as a buffer starting at its token 0. */
static CuBuf head_buf(const I2vSeqView *v, int64_t outer, int64_t inner, int h, int head_dim) {
  return cu_buf_at(cu_buf(v->t), v->offset + outer * v->outer_stride + inner * v->inner_stride +
                                     (int64_t)h * head_dim);
}

/* One (sequence, head) through two GEMMs over query blocks of `chunk` rows; sc (float32), p (v's
 * dtype, chunk · kv_len each) and vt (v's dtype, head_dim · kv_len) are scratch. */
static void attend_gemm(I2vStream *st, CuBuf o, int64_t ldo, CuBuf q, int64_t ldq, CuBuf k,
                        int64_t ldk, CuBuf v, int64_t ldv, const I2vAttnShape *s, int64_t chunk,
                        float *sc, CuBuf p, CuBuf vt) {
  CudaStream *cs = st->priv;
  int64_t hd = s->head_dim, L = s->kv_len;
  /* vᵀ[hd, L]: element (d, j) is v[j·ldv + d] */
  const int64_t sh[5] = {1, 1, 1, hd, L}, stride[5] = {0, 0, 0, 1, ldv};
  if (!CUDA_OK(st, i2v_cu_permute(cs->stream, vt, v, sh, stride))) return;
  CuBuf scb = {sc, CU_F32};
  for (int64_t r0 = 0; r0 < s->q_len && st->error == NULL; r0 += chunk) {
    int64_t rows = MIN(chunk, s->q_len - r0);
    /* keys no row of this block can see are left out of both GEMMs */
    int64_t cols = s->causal ? MIN(L, r0 + rows) : L;
    CuBuf none = {NULL, CU_F32};
    i2v_cuda_gemm_xwt(st, scb, cols, cu_buf_at(q, r0 * ldq), ldq, k, ldk, rows, cols, hd, none,
                      FALSE, I2V_ACT_NONE);
    if (st->error != NULL ||
        !CUDA_OK(st, i2v_cu_softmax_rows(cs->stream, p, sc, rows, cols, r0, s->scale, s->causal)))
      return;
    i2v_cuda_gemm_xwt(st, cu_buf_at(o, r0 * ldo), ldo, p, cols, vt, L, rows, hd, cols, none, FALSE,
                      I2V_ACT_NONE);
  }
}

/* Attention with heads wider than the fused kernels take. */
static void attention_gemm(I2vStream *st, const I2vSeqView *out, const I2vSeqView *q,
                           const I2vSeqView *k, const I2vSeqView *v, const I2vAttnShape *s) {
  int64_t L = s->kv_len, hd = s->head_dim;
  if (s->q_len == 0 || L == 0) return;
  if (q->t->dtype != k->t->dtype || v->t->dtype != out->t->dtype) {
    i2v_stream_failf(st, "%s: attention with head_dim %d needs q, k of one dtype and v, out of one",
                     st->be->name, s->head_dim);
    return;
  }
  int64_t chunk = CLAMP((int64_t)(ATTN_SCORE_BYTES / ((size_t)L * sizeof(float))), 1, s->q_len);
  I2vDType dt = v->t->dtype;
  size_t mark = i2v_scratch_mark(st);
  float *sc = i2v_scratch_bytes(st, (size_t)(chunk * L) * sizeof(float));
  CuBuf p = {i2v_scratch_bytes(st, (size_t)(chunk * L) * i2v_dtype_size(dt)), (int)dt};
  CuBuf vt = {i2v_scratch_bytes(st, (size_t)(hd * L) * i2v_dtype_size(dt)), (int)dt};
  for (int64_t seq = 0; sc != NULL && p.p != NULL && vt.p != NULL &&
                        seq < s->n_outer * s->n_inner && st->error == NULL;
       seq++) {
    int64_t o = seq / s->n_inner, i = seq % s->n_inner, ko = o / s->kv_outer_div;
    for (int h = 0; h < s->heads && st->error == NULL; h++)
      attend_gemm(st, head_buf(out, o, i, h, s->head_dim), out->token_stride,
                  head_buf(q, o, i, h, s->head_dim), q->token_stride,
                  head_buf(k, ko, i, h, s->head_dim), k->token_stride,
                  head_buf(v, ko, i, h, s->head_dim), v->token_stride, s, chunk, sc, p, vt);
  }
  i2v_scratch_release(st, mark);
}

void i2v_cuda_attention(I2vStream *st, const I2vSeqView *out, const I2vSeqView *q,
                        const I2vSeqView *k, const I2vSeqView *v, const I2vAttnShape *s) {
  CudaStream *p = i2v_cuda_enter(st);
  if (s->head_dim > CU_ATTN_MAX_HEAD_DIM) {
    attention_gemm(st, out, q, k, v, s);
    return;
  }
  CuSeqView o = seq_view(out), qv = seq_view(q), kv = seq_view(k), vv = seq_view(v);
  CuAttnShape cs = {s->n_outer, s->n_inner,  s->kv_outer_div,   s->q_len, s->kv_len,
                    s->heads,   s->head_dim, s->causal ? 1 : 0, s->scale};
  CUDA_OK(st, i2v_cu_attention(p->stream, &o, &qv, &kv, &vv, &cs));
}
