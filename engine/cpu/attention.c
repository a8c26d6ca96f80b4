/* Multi-head attention on the CPU over strided sequence views (no transposes, no head splits).
 *
 * The work is split into independent tasks, OpenMP-parallel: one (sequence, head, block of query
 * rows) each. Two task kinds, equal up to rounding: short problems (temporal attention over 16
 * frames, tiny test models) run a scalar loop over the whole sequence; long ones (spatial
 * attention over 4096 tokens, the VAE's 14k) take blocks of ≤ ATTN_Q_CHUNK query rows through two
 * single-threaded sgemms (scores = q·kᵀ, out = p·v) with the softmax between, so each thread's
 * score block stays bounded (ATTN_Q_CHUNK · kv_len floats) and the views are read in place
 * through the GEMMs' leading dimensions. */
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

/* In-place softmax of row[0, n) (n ≥ 1): row sums to 1. Cloned for AVX2 (picked at load time):
 * with SSE2 only it took as long as the two GEMMs around it (the clones agree up to the order
 * of the sum's additions). */
__attribute__((target_clones("avx2", "default"))) static void softmax_row(float *row, int64_t n) {
  float mx = -INFINITY, sum = 0;
#pragma omp simd reduction(max : mx)
  for (int64_t j = 0; j < n; j++) mx = MAX(mx, row[j]);
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < n; j++) {
    row[j] = cpu_exp(row[j] - mx);
    sum += row[j];
  }
  float inv = 1.0f / sum;
#pragma omp simd
  for (int64_t j = 0; j < n; j++) row[j] *= inv;
}

/* Scalar attention of query rows [r0, r0 + rows) of one (sequence, head); buf holds
 * kv_len + head_dim floats. */
static void attend_scalar(HeadMat o, HeadMat q, HeadMat k, HeadMat v, const I2vAttnShape *s,
                          int64_t r0, int64_t rows, float *buf) {
  int hd = s->head_dim;
  float *score = buf, *acc = buf + s->kv_len;
  for (int64_t i = r0; i < r0 + rows; i++) {
    const float *qi = q.p + i * q.ld;
    int64_t n = visible_keys(s, i);
    for (int64_t j = 0; j < n; j++) {
      const float *kj = k.p + j * k.ld;
      float d = 0;
#pragma omp simd reduction(+ : d)
      for (int c = 0; c < hd; c++) d += qi[c] * kj[c];
      score[j] = d * s->scale;
    }
    softmax_row(score, n);
    memset(acc, 0, (size_t)hd * sizeof(float));
    for (int64_t j = 0; j < n; j++) {
      const float *vj = v.p + j * v.ld;
      float e = score[j];
#pragma omp simd
      for (int c = 0; c < hd; c++) acc[c] += e * vj[c];
    }
    float *oi = o.p + i * o.ld;
    memcpy(oi, acc, (size_t)hd * sizeof(float));
  }
}

/* Softmax of the rows of a score block (row r is query first + r), in place; the masked tail of
 * a causal row becomes 0 so the following p·v GEMM may run over all cols. */
static void softmax_rows(float *sc, int64_t rows, int64_t cols, int64_t first,
                         const I2vAttnShape *s) {
  for (int64_t r = 0; r < rows; r++) {
    float *row = sc + r * cols;
    int64_t n = MIN(visible_keys(s, first + r), cols);
    softmax_row(row, n);
    memset(row + n, 0, (size_t)(cols - n) * sizeof(float));
  }
}

/* GEMM attention of query rows [r0, r0 + rows) of one (sequence, head), rows ≤ ATTN_Q_CHUNK;
 * sc holds ATTN_Q_CHUNK · kv_len floats. */
static void attend_gemm(HeadMat o, HeadMat q, HeadMat k, HeadMat v, const I2vAttnShape *s,
                        int64_t r0, int64_t rows, float *sc) {
  blasint hd = s->head_dim;
  /* keys no row of this block can see are left out of both GEMMs */
  int64_t cols = s->causal ? MIN(s->kv_len, r0 + rows) : s->kv_len;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)rows, (blasint)cols, hd, s->scale,
              q.p + r0 * q.ld, (blasint)q.ld, k.p, (blasint)k.ld, 0.0f, sc, (blasint)cols);
  softmax_rows(sc, rows, cols, r0, s);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)rows, hd, (blasint)cols, 1.0f, sc,
              (blasint)cols, v.p, (blasint)v.ld, 0.0f, o.p + r0 * o.ld, (blasint)o.ld);
}

void i2v_cpu_attention(I2vStream *st, const I2vSeqView *out, const I2vSeqView *q,
                       const I2vSeqView *k, const I2vSeqView *v, const I2vAttnShape *s) {
  int64_t hd = s->head_dim;
  /* BLAS needs leading dimensions ≥ head_dim; views of one token may use any stride */
  gboolean gemm = s->q_len * s->kv_len >= ATTN_GEMM_MIN && q->token_stride >= hd &&
                  k->token_stride >= hd && v->token_stride >= hd && out->token_stride >= hd;
  int64_t chunk = gemm ? ATTN_Q_CHUNK : MAX(s->q_len, 1);
  int64_t n_chunks = (s->q_len + chunk - 1) / chunk;
  int64_t tasks = s->n_outer * s->n_inner * s->heads * n_chunks;
  if (tasks == 0) return;
  /* the scalar path needs no BLAS; the GEMM path runs in our threads when the BLAS allows it */
  gboolean in_threads = !gemm || i2v_cpu_blas_in_threads();
  int threads = in_threads ? i2v_cpu_threads(st) : 1;
  int64_t per_thread = gemm ? ATTN_Q_CHUNK * s->kv_len : s->kv_len + hd;
  size_t mark = i2v_scratch_mark(st);
  float *bufs = i2v_scratch_bytes(st, (size_t)(threads * per_thread) * sizeof(float));
  if (bufs == NULL) return;
#pragma omp parallel for if (in_threads) schedule(static) num_threads(threads)
  for (int64_t t = 0; t < tasks; t++) {
    int64_t r0 = (t % n_chunks) * chunk, rows = MIN(chunk, s->q_len - r0);
    int64_t seq = t / n_chunks / s->heads, o = seq / s->n_inner, i = seq % s->n_inner;
    int h = (int)(t / n_chunks % s->heads);
    int64_t kvo = o / s->kv_outer_div;
    HeadMat ho = head_mat(out, o, i, h, hd), hq = head_mat(q, o, i, h, hd);
    HeadMat hk = head_mat(k, kvo, i, h, hd), hv = head_mat(v, kvo, i, h, hd);
    float *buf = bufs + omp_get_thread_num() * per_thread;
    if (gemm)
      attend_gemm(ho, hq, hk, hv, s, r0, rows, buf);
    else
      attend_scalar(ho, hq, hk, hv, s, r0, rows, buf);
  }
  i2v_scratch_release(st, mark);
}
