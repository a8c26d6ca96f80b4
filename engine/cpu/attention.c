/* Multi-head attention on the CPU over strided sequence views (no transposes, no head splits).
 *
 * Two paths with the same result: short problems (temporal attention over 16 frames, tiny test
 * models) run a scalar loop per (sequence, head), OpenMP-parallel over those; long ones (spatial
 * attention over 4096 tokens, the VAE's 14k) run blocks of ≤ ATTN_Q_CHUNK query rows through two
 * sgemms (scores = q·kᵀ, out = p·v) with an OpenMP softmax between, so the score block stays
 * bounded (ATTN_Q_CHUNK · kv_len floats) and the views are read in place through the GEMMs'
 * leading dimensions. */
#include <cblas.h>
#include <omp.h>
#include <string.h>

#include "cpu_ops.h"

#define ATTN_Q_CHUNK 256
#define ATTN_GEMM_MIN 4096 /* q_len · kv_len from which two sgemms beat the scalar loop */

/* One (sequence, head) operand: first element of token 0 and the distance between tokens. */
typedef struct {
  float *p;
  int64_t ld;
} HeadMat;

static HeadMat head_mat(const I2vSeqView *v, int64_t outer, int64_t inner, int h, int head_dim) {
  HeadMat m = {(float *)v->t->data + v->offset + outer * v->outer_stride + inner * v->inner_stride +
                   (int64_t)h * head_dim,
               v->token_stride};
  return m;
}

/* Query row i sees keys [0, visible): all of them, or 0..i when causal. */
static int64_t visible_keys(const I2vAttnShape *s, int64_t i) {
  return s->causal ? MIN(i + 1, s->kv_len) : s->kv_len;
}

/* Scalar attention for one (sequence, head); buf holds kv_len + head_dim floats. */
static void attend_scalar(HeadMat o, HeadMat q, HeadMat k, HeadMat v, const I2vAttnShape *s,
                          float *buf) {
  int hd = s->head_dim;
  float *score = buf, *acc = buf + s->kv_len;
  for (int64_t i = 0; i < s->q_len; i++) {
    const float *qi = q.p + i * q.ld;
    int64_t n = visible_keys(s, i);
    float mx = -INFINITY, sum = 0;
    for (int64_t j = 0; j < n; j++) {
      const float *kj = k.p + j * k.ld;
      float d = 0;
      for (int c = 0; c < hd; c++) d += qi[c] * kj[c];
      score[j] = d * s->scale;
      mx = MAX(mx, score[j]);
    }
    memset(acc, 0, (size_t)hd * sizeof(float));
    for (int64_t j = 0; j < n; j++) {
      float e = expf(score[j] - mx);
      const float *vj = v.p + j * v.ld;
      sum += e;
      for (int c = 0; c < hd; c++) acc[c] += e * vj[c];
    }
    float *oi = o.p + i * o.ld;
    for (int c = 0; c < hd; c++) oi[c] = acc[c] / sum;
  }
}

/* Softmax of rows [0, rows) of a score block (row r is query first + r), in place; the masked
 * tail of a causal row becomes 0 so the following p·v GEMM may run over all cols. */
static void softmax_rows(float *sc, int64_t rows, int64_t cols, int64_t first,
                         const I2vAttnShape *s) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; r++) {
    float *row = sc + r * cols;
    int64_t n = MIN(visible_keys(s, first + r), cols);
    float mx = -INFINITY, sum = 0;
    for (int64_t j = 0; j < n; j++) mx = MAX(mx, row[j]);
    for (int64_t j = 0; j < n; j++) {
      row[j] = expf(row[j] - mx);
      sum += row[j];
    }
    float inv = 1.0f / sum;
    for (int64_t j = 0; j < n; j++) row[j] *= inv;
    for (int64_t j = n; j < cols; j++) row[j] = 0;
  }
}

/* GEMM attention for one (sequence, head); sc holds ATTN_Q_CHUNK · kv_len floats. */
static void attend_gemm(HeadMat o, HeadMat q, HeadMat k, HeadMat v, const I2vAttnShape *s,
                        float *sc) {
  blasint hd = s->head_dim;
  for (int64_t r0 = 0; r0 < s->q_len; r0 += ATTN_Q_CHUNK) {
    int64_t rows = MIN(ATTN_Q_CHUNK, s->q_len - r0);
    /* keys no row of this block can see are left out of both GEMMs */
    int64_t cols = s->causal ? MIN(s->kv_len, r0 + rows) : s->kv_len;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)rows, (blasint)cols, hd, s->scale,
                q.p + r0 * q.ld, (blasint)q.ld, k.p, (blasint)k.ld, 0.0f, sc, (blasint)cols);
    softmax_rows(sc, rows, cols, r0, s);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)rows, hd, (blasint)cols, 1.0f,
                sc, (blasint)cols, v.p, (blasint)v.ld, 0.0f, o.p + r0 * o.ld, (blasint)o.ld);
  }
}

void cpu_attention(I2vBackend *be, const I2vSeqView *out, const I2vSeqView *q, const I2vSeqView *k,
                   const I2vSeqView *v, const I2vAttnShape *s) {
  int64_t n_seq = s->n_outer * s->n_inner, tasks = n_seq * s->heads, hd = s->head_dim;
  if (tasks == 0 || s->q_len == 0) return;
  /* BLAS needs leading dimensions ≥ head_dim; views of one token may use any stride */
  gboolean gemm = s->q_len * s->kv_len >= ATTN_GEMM_MIN && q->token_stride >= hd &&
                  k->token_stride >= hd && v->token_stride >= hd && out->token_stride >= hd;
  size_t mark = i2v_scratch_mark(be);
  if (gemm) {
    float *sc = cpu_scratch(be, (size_t)(ATTN_Q_CHUNK * s->kv_len) * sizeof(float));
    if (sc == NULL) return;
    for (int64_t t = 0; t < tasks; t++) {
      int64_t seq = t / s->heads, o = seq / s->n_inner, i = seq % s->n_inner;
      int h = (int)(t % s->heads);
      int64_t kvo = o / s->kv_outer_div;
      attend_gemm(head_mat(out, o, i, h, hd), head_mat(q, o, i, h, hd), head_mat(k, kvo, i, h, hd),
                  head_mat(v, kvo, i, h, hd), s, sc);
    }
  } else {
    int64_t per_thread = s->kv_len + hd;
    float *bufs = cpu_scratch(be, (size_t)(omp_get_max_threads() * per_thread) * sizeof(float));
    if (bufs == NULL) return;
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < tasks; t++) {
      int64_t seq = t / s->heads, o = seq / s->n_inner, i = seq % s->n_inner;
      int h = (int)(t % s->heads);
      int64_t kvo = o / s->kv_outer_div;
      attend_scalar(head_mat(out, o, i, h, hd), head_mat(q, o, i, h, hd),
                    head_mat(k, kvo, i, h, hd), head_mat(v, kvo, i, h, hd), s,
                    bufs + omp_get_thread_num() * per_thread);
    }
  }
  i2v_scratch_release(be, mark);
}
