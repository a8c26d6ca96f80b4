/* Linear layers on the CPU: one OpenBLAS sgemm per call, bias folded into the GEMM's C operand. */
#include <cblas.h>
#include <string.h>

#include "cpu_ops.h"

void cpu_gemm_xwt(float *y, int64_t ldy, const float *x, int64_t ldx, const float *w, int64_t ldw,
                  int64_t M, int64_t N, int64_t K, const float *b, gboolean accumulate) {
  if (M == 0 || N == 0) return;
  /* Pre-load C with the bias (or add it to what is accumulated) so sgemm adds onto it with
   * beta = 1: one pass over y instead of a second bias pass after the GEMM. */
  if (b != NULL) {
#pragma omp parallel for schedule(static)
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

void cpu_act_apply(float *y, const float *x, int64_t n, I2vAct act) {
  if (act == I2V_ACT_NONE) {
    if (y != x) memmove(y, x, (size_t)n * sizeof(float));
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; i++) y[i] = cpu_act1(x[i], act);
}

void cpu_linear(I2vBackend *be, I2vTensor *y, const I2vTensor *x, const I2vTensor *w,
                const I2vTensor *b, I2vAct act, gboolean accumulate) {
  (void)be;
  int64_t K = w->shape[1], N = w->shape[0];
  int64_t M = K ? i2v_tensor_numel(x) / K : i2v_tensor_numel(y) / MAX(N, 1);
  float *yd = y->data;
  cpu_gemm_xwt(yd, N, x->data, K, w->data, K, M, N, K, b ? b->data : NULL, accumulate);
  cpu_act_apply(yd, yd, M * N, act);
}
