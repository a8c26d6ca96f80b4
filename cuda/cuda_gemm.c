/* GEMMs on CUDA: the one cublasGemmEx helper (float32 accumulation, a bias + activation epilogue
 * kernel) that linear and the convolutions' GEMM paths (cuda_conv.c) run through. */
#include "cuda_priv.h"

static cudaDataType blas_type(int dt) {
  return dt == CU_F16 ? CUDA_R_16F : dt == CU_BF16 ? CUDA_R_16BF : CUDA_R_32F;
}

/* Row-major y = x·wᵀ is column-major yᵀ = w·xᵀ, hence cuBLAS's (op(A) = wᵀ as stored, op(B) = x
 * as stored) with m = N, n = M. */
void cuda_gemm_xwt(I2vBackend *be, CuBuf y, int64_t ldy, CuBuf x, int64_t ldx, CuBuf w, int64_t ldw,
                   int64_t M, int64_t N, int64_t K, CuBuf b, gboolean accumulate, I2vAct act) {
  CudaPriv *p = be->priv;
  if (M == 0 || N == 0 || be->error != NULL) return;
  if (M > G_MAXINT || N > G_MAXINT || K > G_MAXINT || ldx > G_MAXINT || ldy > G_MAXINT ||
      ldw > G_MAXINT) {
    i2v_backend_failf(be,
                      "%s: GEMM of %" G_GINT64_FORMAT "×%" G_GINT64_FORMAT "×%" G_GINT64_FORMAT
                      " exceeds cuBLAS's 32-bit sizes",
                      be->name, M, N, K);
    return;
  }
  if (x.dt != w.dt || (y.dt != w.dt && y.dt != CU_F32)) {
    i2v_backend_failf(be, "%s: GEMM of %s inputs into %s output is not supported", be->name,
                      i2v_dtype_name(w.dt), i2v_dtype_name(y.dt));
    return;
  }
  if (K == 0) { /* nothing to multiply: y is its old value or zero, then the epilogue */
    if (!accumulate &&
        !CUDA_OK(be, cudaMemset2DAsync(y.p, (size_t)ldy * (y.dt == CU_F32 ? 4 : 2), 0,
                                       (size_t)N * (y.dt == CU_F32 ? 4 : 2), (size_t)M, p->stream)))
      return;
  } else {
    const float one = 1.0f, beta = accumulate ? 1.0f : 0.0f;
    if (!CUBLAS_OK(be, p->blas->gemm_ex(p->cublas, CUBLAS_OP_T, CUBLAS_OP_N, (int)N, (int)M, (int)K,
                                        &one, w.p, blas_type(w.dt), (int)ldw, x.p, blas_type(x.dt),
                                        (int)ldx, &beta, y.p, blas_type(y.dt), (int)ldy,
                                        CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT)))
      return;
  }
  if (b.p != NULL || act != I2V_ACT_NONE)
    CUDA_OK(be, cu_bias_act(p->stream, y, ldy, b, M, N, (int)act));
}

void cuda_linear(I2vBackend *be, I2vTensor *y, const I2vTensor *x, const I2vTensor *w,
                 const I2vTensor *b, I2vAct act, gboolean accumulate) {
  cuda_enter(be);
  int64_t K = w->shape[1], N = w->shape[0];
  int64_t M = N ? i2v_tensor_numel(y) / N : 0;
  size_t mark = i2v_scratch_mark(be);
  CuBuf xb;
  if (cuda_operand_as(be, x, w->dtype, &xb))
    cuda_gemm_xwt(be, cu_buf(y), N, xb, K, cu_buf(w), K, M, N, K, cu_bias_buf(b), accumulate, act);
  i2v_scratch_release(be, mark);
}
