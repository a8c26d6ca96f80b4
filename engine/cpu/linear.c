/* Linear layers on the CPU: single-threaded OpenBLAS sgemms on per-thread slices of the output,
 * the bias folded into the GEMM's C operand. */
#include <cblas.h>
#include <omp.h>
#include <string.h>

#include "cpu_ops.h"

/* Below this many rows per thread a GEMM is split over output columns instead of rows. */
#define GEMM_MIN_ROWS_PER_THREAD 32

void i2v_cpu_gemm_xwt_1(float *y, int64_t ldy, const float *x, int64_t ldx, const float *w,
                        int64_t ldw, int64_t M, int64_t N, int64_t K, const float *b,
                        gboolean accumulate) {
  if (M <= 0 || N <= 0) return;
  /* Pre-load C with the bias (or add it to what is accumulated) so sgemm adds onto it with
   * beta = 1: one pass over y instead of a second bias pass after the GEMM. */
  if (b != NULL) {
    for (int64_t m = 0; m < M; m++) {
      float *row = y + m * ldy;
      if (accumulate)
        for (int64_t n = 0; n < N; n++) row[n] += b[n];
      else
        memcpy(row, b, (size_t)N * sizeof(float));
    }
  }
  float beta = (accumulate || b != NULL) ? 1.0f : 0.0f;
  if (K == 0) { /* nothing to multiply: BLAS implementations differ on K = 0, so do it here */
    if (beta == 0.0f)
      for (int64_t m = 0; m < M; m++) memset(y + m * ldy, 0, (size_t)N * sizeof(float));
    return;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)M, (blasint)N, (blasint)K, 1.0f, x,
              (blasint)ldx, w, (blasint)ldw, beta, y, (blasint)ldy);
}

void i2v_cpu_gemm_xwt(int nt, float *y, int64_t ldy, const float *x, int64_t ldx, const float *w,
                      int64_t ldw, int64_t M, int64_t N, int64_t K, const float *b,
                      gboolean accumulate) {
  if (!i2v_cpu_blas_in_threads()) { /* one call, threaded by the BLAS itself */
    i2v_cpu_gemm_xwt_1(y, ldy, x, ldx, w, ldw, M, N, K, b, accumulate);
    return;
  }
  int threads = nt;
  /* each thread takes a slice of rows (of x and y) or, for few rows (a time embedding, a pooled
   * vector), a slice of output columns (of w, b and y) */
  gboolean by_rows = M >= (int64_t)threads * GEMM_MIN_ROWS_PER_THREAD || N < threads;
  int64_t total = by_rows ? M : N;
#pragma omp parallel num_threads(threads)
  {
    int nt = omp_get_num_threads(), t = omp_get_thread_num();
    int64_t first = total * t / nt, count = total * (t + 1) / nt - first;
    if (by_rows)
      i2v_cpu_gemm_xwt_1(y + first * ldy, ldy, x + first * ldx, ldx, w, ldw, count, N, K, b,
                         accumulate);
    else
      i2v_cpu_gemm_xwt_1(y + first, ldy, x, ldx, w + first * ldw, ldw, M, count, K,
                         b ? b + first : NULL, accumulate);
  }
}

void i2v_cpu_linear(I2vStream *st, I2vTensor *y, const I2vTensor *x, const I2vTensor *w,
                    const I2vTensor *b, I2vAct act, gboolean accumulate) {
  int nt = i2v_cpu_threads(st);
  int64_t K = w->shape[1], N = w->shape[0];
  int64_t M = K ? i2v_tensor_numel(x) / K : i2v_tensor_numel(y) / MAX(N, 1);
  float *yd = y->data;
  i2v_cpu_gemm_xwt(nt, yd, N, x->data, K, w->data, K, M, N, K, b ? b->data : NULL, accumulate);
  i2v_cpu_act_apply(nt, yd, yd, M * N, act);
}
