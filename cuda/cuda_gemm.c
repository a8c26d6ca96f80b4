/* GEMM-based ops on CUDA: linear, conv2d (a 1×1 conv is a plain GEMM; others through im2col in
 * bounded row blocks) and the temporal conv (three GEMMs over frame-shifted rows), all through one
 * cublasGemmEx helper with float32 accumulation and a fused bias + activation epilogue kernel. */
#include "cuda_priv.h"

/* Upper bound of one im2col block: a 3×3 conv over 32 frames of 88×160×320 would need a 2.6 GB
 * column matrix at once; blocks of this size keep scratch bounded at a small cost in launches. */
#define CONV_COL_BYTES ((size_t)256 << 20)

static cudaDataType blas_type(int dt) {
  return dt == CU_F16 ? CUDA_R_16F : dt == CU_BF16 ? CUDA_R_16BF : CUDA_R_32F;
}

/* y[M,N] (+)= act(x[M,K]·w[N,K]ᵀ + b[N]) with row strides ldy, ldx, ldw; x and w share a dtype,
 * y is that dtype or F32; b.p may be NULL. Row-major y = x·wᵀ is column-major yᵀ = w·xᵀ, hence
 * cuBLAS's (op(A) = wᵀ as stored, op(B) = x as stored) with m = N, n = M. */
static void gemm_xwt(I2vBackend *be, CuBuf y, int64_t ldy, CuBuf x, int64_t ldx, CuBuf w,
                     int64_t ldw, int64_t M, int64_t N, int64_t K, CuBuf b, gboolean accumulate,
                     I2vAct act) {
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

static CuBuf bias_buf(const I2vTensor *b) {
  CuBuf none = {NULL, CU_F32};
  return b != NULL ? cu_buf(b) : none;
}

void cuda_linear(I2vBackend *be, I2vTensor *y, const I2vTensor *x, const I2vTensor *w,
                 const I2vTensor *b, I2vAct act, gboolean accumulate) {
  cuda_enter(be);
  int64_t K = w->shape[1], N = w->shape[0];
  int64_t M = N ? i2v_tensor_numel(y) / N : 0;
  size_t mark = i2v_scratch_mark(be);
  CuBuf xb;
  if (cuda_operand_as(be, x, w->dtype, &xb))
    gemm_xwt(be, cu_buf(y), N, xb, K, cu_buf(w), K, M, N, K, bias_buf(b), accumulate, act);
  i2v_scratch_release(be, mark);
}

void cuda_conv2d(I2vBackend *be, I2vTensor *y, const I2vTensor *x, const I2vTensor *w,
                 const I2vTensor *b, const I2vConvParams *p, gboolean accumulate) {
  CudaPriv *cp = cuda_enter(be);
  int64_t Co = w->shape[0], kh = w->shape[1], kw = w->shape[2], Ci = w->shape[3];
  int64_t Ho = y->shape[1], Wo = y->shape[2], M = y->shape[0] * Ho * Wo, K = kh * kw * Ci;
  CuBuf yb = cu_buf(y), wb = cu_buf(w), bb = bias_buf(b);
  size_t mark = i2v_scratch_mark(be);
  if (kh == 1 && kw == 1 && p->stride == 1 && !p->pad_top && !p->pad_left && !p->pad_bottom &&
      !p->pad_right) { /* x already is the column matrix */
    CuBuf xb;
    if (cuda_operand_as(be, x, w->dtype, &xb))
      gemm_xwt(be, yb, Co, xb, Ci, wb, Ci, M, Co, Ci, bb, accumulate, I2V_ACT_NONE);
    i2v_scratch_release(be, mark);
    return;
  }
  size_t es = i2v_dtype_size(w->dtype);
  int64_t block = CLAMP((int64_t)(CONV_COL_BYTES / es) / MAX(K, 1), 1, MAX(M, 1));
  CuBuf col = {cuda_scratch(be, (size_t)(block * K) * es), (int)w->dtype};
  CuConvShape s = {x->shape[0], x->shape[1], x->shape[2], Ci,         kh,         kw,
                   Ho,          Wo,          p->stride,   p->pad_top, p->pad_left};
  for (int64_t m0 = 0; col.p != NULL && m0 < M && be->error == NULL; m0 += block) {
    int64_t rows = MIN(block, M - m0);
    if (!CUDA_OK(be, cu_im2col(cp->stream, col, cu_buf(x), &s, m0, rows))) break;
    gemm_xwt(be, cu_buf_at(yb, m0 * Co), Co, col, K, wb, K, rows, Co, K, bb, accumulate,
             I2V_ACT_NONE);
  }
  i2v_scratch_release(be, mark);
}

void cuda_conv_frames(I2vBackend *be, I2vTensor *y, const I2vTensor *x, const I2vTensor *w,
                      const I2vTensor *b, gboolean accumulate) {
  cuda_enter(be);
  int64_t B = x->shape[0], F = x->shape[1], T = x->shape[2], Ci = x->shape[3], Co = w->shape[0];
  CuBuf wb = cu_buf(w), none = {NULL, CU_F32};
  size_t mark = i2v_scratch_mark(be);
  CuBuf xall;
  if (!cuda_operand_as(be, x, w->dtype, &xall)) {
    i2v_scratch_release(be, mark);
    return;
  }
  for (int64_t bi = 0; bi < B && be->error == NULL; bi++) {
    CuBuf yb = cu_buf_at(cu_buf(y), bi * F * T * Co), xb = cu_buf_at(xall, bi * F * T * Ci);
    /* the centre tap sees every frame and sets up y (bias, accumulate); the two shifted taps add
     * frame f-1 into frames 1.. and frame f+1 into frames ..F-2 (zero padding at the ends) */
    gemm_xwt(be, yb, Co, xb, Ci, cu_buf_at(wb, Ci), 3 * Ci, F * T, Co, Ci, bias_buf(b), accumulate,
             I2V_ACT_NONE);
    if (F < 2) continue;
    gemm_xwt(be, cu_buf_at(yb, T * Co), Co, xb, Ci, wb, 3 * Ci, (F - 1) * T, Co, Ci, none, TRUE,
             I2V_ACT_NONE);
    gemm_xwt(be, yb, Co, cu_buf_at(xb, T * Ci), Ci, cu_buf_at(wb, 2 * Ci), 3 * Ci, (F - 1) * T, Co,
             Ci, none, TRUE, I2V_ACT_NONE);
  }
  i2v_scratch_release(be, mark);
}
