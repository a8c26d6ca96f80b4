/* GEMM-based ops on CUDA: linear, conv2d (a 1×1 conv is a plain GEMM; others through im2col in
 * bounded row blocks) and the temporal conv (three GEMMs over frame-shifted rows), all through the
 * one GEMM helper cuda_gemm_xwt (cuda_matmul.c: cuBLASLt, float32 accumulation, fused bias). */
#include "cuda_priv.h"

/* Upper bound of one im2col block: a 3×3 conv over 32 frames of 88×160×320 would need a 2.6 GB
 * column matrix at once; blocks of this size keep scratch bounded at a small cost in launches. */
#define CONV_COL_BYTES ((size_t)256 << 20)

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
    cuda_gemm_xwt(be, cu_buf(y), N, xb, K, cu_buf(w), K, M, N, K, bias_buf(b), accumulate, act);
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
      cuda_gemm_xwt(be, yb, Co, xb, Ci, wb, Ci, M, Co, Ci, bb, accumulate, I2V_ACT_NONE);
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
    cuda_gemm_xwt(be, cu_buf_at(yb, m0 * Co), Co, col, K, wb, K, rows, Co, K, bb, accumulate,
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
    cuda_gemm_xwt(be, yb, Co, xb, Ci, cu_buf_at(wb, Ci), 3 * Ci, F * T, Co, Ci, bias_buf(b),
                  accumulate, I2V_ACT_NONE);
    if (F < 2) continue;
    cuda_gemm_xwt(be, cu_buf_at(yb, T * Co), Co, xb, Ci, wb, 3 * Ci, (F - 1) * T, Co, Ci, none,
                  TRUE, I2V_ACT_NONE);
    cuda_gemm_xwt(be, yb, Co, cu_buf_at(xb, T * Ci), Ci, cu_buf_at(wb, 2 * Ci), 3 * Ci, (F - 1) * T,
                  Co, Ci, none, TRUE, I2V_ACT_NONE);
  }
  i2v_scratch_release(be, mark);
}
