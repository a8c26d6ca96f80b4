/* Convolutions on CUDA: conv2d and the temporal conv (kernel 3 over frames) through cuDNN's legacy
 * convolution API on the channels-last tensors as they are (NHWC activations, [Co,kh,kw,Ci] =
 * NHWC filters), tensor-core math for F16/BF16, with GEMM paths as the fallback where cuDNN is
 * missing or declines: conv2d through im2col in bounded row blocks + GEMM, the temporal conv as
 * three GEMMs over frame-shifted rows. A 1×1 conv is a plain GEMM either way.
 *
 * Bias: cuDNN writes the bare convolution and the GEMM helper's bias kernel (i2v_cu_bias_act) adds
 * b, rather than cudnnConvolutionBiasActivationForward: with an identity activation that call is
 * documented to take only the IMPLICIT_PRECOMP_GEMM algorithm, which would override the
 * heuristic's choice for every biased conv (nearly all of them); the extra pass over y is small
 * next to the convolution and rounds y as the GEMM path does. */
#include <string.h>

#include "cuda_priv.h"
#include <i2v/error.h>

/* Upper bound of one im2col block: a 3×3 conv over 32 frames of 88×160×320 would need a 2.6 GB
 * column matrix at once; blocks of this size keep scratch bounded at a small cost in launches. */
#define CONV_COL_BYTES ((size_t)256 << 20)

/* Largest cuDNN workspace taken: the heuristic's first algorithm that fits is used, so a huge
 * FFT/Winograd workspace never grows the scratch arena past what im2col would have used. */
#define CONV_WORKSPACE_BYTES ((size_t)256 << 20)

/* One convolution problem as cuDNN sees it (NHWC, symmetric padding, one dtype): the plan key. */
typedef struct {
  int n, h, w, ci, co, kh, kw, stride, pad_h, pad_w, dtype;
} ConvKey;

/* What cuDNN needs to run one problem: its descriptors and chosen algorithm. usable is FALSE when
 * cuDNN declined the problem (NOT_SUPPORTED, or no algorithm within the workspace bound); the
 * GEMM path runs it then, without asking cuDNN again. */
typedef struct {
  const CudnnApi *dnn;
  cudnnTensorDescriptor_t x, y;
  cudnnFilterDescriptor_t w;
  cudnnConvolutionDescriptor_t conv;
  cudnnConvolutionFwdAlgo_t algo;
  size_t workspace;
  gboolean usable;
} ConvPlan;

/* ---- cuDNN status ---- */

static gboolean not_supported(cudnnStatus_t status) {
  return status / 1000 == CUDNN_STATUS_NOT_SUPPORTED / 1000; /* NOT_SUPPORTED and its sub-codes */
}

/* TRUE if status is success. With `declined` non-NULL, a NOT_SUPPORTED status only sets *declined
 * (the caller falls back); any other failure becomes the sticky error "<name>: <call> failed at
 * file:line: <cuDNN's text> (status N)". */
static gboolean dnn_check(I2vStream *st, cudnnStatus_t status, gboolean *declined, const char *call,
                          const char *file, int line) {
  if (status == CUDNN_STATUS_SUCCESS) return TRUE;
  if (declined != NULL && not_supported(status)) {
    *declined = TRUE;
    return FALSE;
  }
  CudaStream *p = st->priv;
  int code = status == CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED ||
                     status == CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED
                 ? I2V_ERROR_NO_MEMORY
                 : I2V_ERROR_BACKEND;
  i2v_stream_fail(st, g_error_new(I2V_ERROR, code, "%s: %s failed at %s:%d: %s (status %d)",
                                  st->be->name, call, file, line, p->dnn->error_string(status),
                                  (int)status));
  return FALSE;
}
#define DNN_OK(st, call, declined) dnn_check((st), (call), (declined), #call, __FILE__, __LINE__)

/* ---- plans ---- */

static void plan_free(gpointer data) {
  ConvPlan *plan = data;
  if (plan->x != NULL) plan->dnn->destroy_tensor(plan->x);
  if (plan->y != NULL) plan->dnn->destroy_tensor(plan->y);
  if (plan->w != NULL) plan->dnn->destroy_filter(plan->w);
  if (plan->conv != NULL) plan->dnn->destroy_conv(plan->conv);
  g_free(plan);
}

static cudnnDataType_t dnn_type(int dt) {
  return dt == CU_F16 ? CUDNN_DATA_HALF : dt == CU_BF16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
}

/* The first algorithm of cuDNN's heuristic ranking that works and fits the workspace bound into
 * plan; FALSE (*declined set) if none does. */
static gboolean choose_algo(I2vStream *st, ConvPlan *plan, gboolean *declined) {
  CudaStream *p = st->priv;
  cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
  int count = 0;
  if (!DNN_OK(st,
              p->dnn->fwd_algos(p->cudnn, plan->x, plan->w, plan->conv, plan->y,
                                CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &count, perf),
              declined))
    return FALSE;
  for (int i = 0; i < count; i++) {
    if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].memory <= CONV_WORKSPACE_BYTES) {
      plan->algo = perf[i].algo;
      plan->workspace = perf[i].memory;
      return TRUE;
    }
  }
  *declined = TRUE;
  return FALSE;
}

/* Descriptors and algorithm for k; NULL (sticky error set) on a cuDNN failure other than
 * declining the problem. */
static ConvPlan *plan_new(I2vStream *st, const ConvKey *k) {
  CudaStream *p = st->priv;
  const CudnnApi *dnn = p->dnn;
  ConvPlan *plan = g_new0(ConvPlan, 1);
  plan->dnn = dnn;
  if (!DNN_OK(st, dnn->create_tensor(&plan->x), NULL) ||
      !DNN_OK(st, dnn->create_tensor(&plan->y), NULL) ||
      !DNN_OK(st, dnn->create_filter(&plan->w), NULL) ||
      !DNN_OK(st, dnn->create_conv(&plan->conv), NULL)) {
    plan_free(plan);
    return NULL;
  }
  int ho = (k->h + 2 * k->pad_h - k->kh) / k->stride + 1;
  int wo = (k->w + 2 * k->pad_w - k->kw) / k->stride + 1;
  cudnnDataType_t dt = dnn_type(k->dtype);
  /* fp32 stays exact fp32 (FMA only: DEFAULT_MATH would allow TF32 on Ampere and later);
   * F16/BF16 may use tensor cores, accumulating in float (the compute type) either way */
  cudnnMathType_t math = k->dtype == CU_F32 ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH;
  gboolean declined = FALSE;
  plan->usable =
      DNN_OK(st, dnn->set_tensor_4d(plan->x, CUDNN_TENSOR_NHWC, dt, k->n, k->ci, k->h, k->w),
             &declined) &&
      DNN_OK(st, dnn->set_filter_4d(plan->w, dt, CUDNN_TENSOR_NHWC, k->co, k->ci, k->kh, k->kw),
             &declined) &&
      /* cross-correlation, as PyTorch's conv: CUDNN_CONVOLUTION would flip the kernel */
      DNN_OK(st,
             dnn->set_conv_2d(plan->conv, k->pad_h, k->pad_w, k->stride, k->stride, 1, 1,
                              CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT),
             &declined) &&
      DNN_OK(st, dnn->set_conv_math(plan->conv, math), &declined) &&
      DNN_OK(st, dnn->set_tensor_4d(plan->y, CUDNN_TENSOR_NHWC, dt, k->n, k->co, ho, wo),
             &declined) &&
      choose_algo(st, plan, &declined);
  if (!plan->usable && !declined) {
    plan_free(plan);
    return NULL;
  }
  if (declined)
    g_info("%s: cuDNN declines the %dx%dx%dx%d k%dx%d s%d %s conv: GEMM path", st->be->name, k->n,
           k->h, k->w, k->ci, k->kh, k->kw, k->stride, i2v_dtype_name(k->dtype));
  return plan;
}

/* The cached plan for k, made on first use; NULL with the sticky error set on failure. */
static ConvPlan *plan_for(I2vStream *st, const ConvKey *k) {
  CudaStream *p = st->priv;
  ConvPlan *plan = i2v_cuda_plan_lookup(p->conv_plans, k, sizeof *k);
  if (plan == NULL && (plan = plan_new(st, k)) != NULL)
    i2v_cuda_plan_insert(p->conv_plans, k, sizeof *k, plan);
  return plan;
}

void i2v_cuda_conv_init(I2vStream *st) {
  CudaStream *p = st->priv;
  /* I2V_CUDA_CONV=im2col forces the GEMM paths, to tell the two apart on a GPU */
  if (g_strcmp0(g_getenv("I2V_CUDA_CONV"), "im2col") == 0) return;
  const CudnnApi *dnn = i2v_cuda_cudnn_api();
  if (dnn == NULL) return;
  cudnnStatus_t status = dnn->create(&p->cudnn);
  if (status == CUDNN_STATUS_SUCCESS) status = dnn->set_stream(p->cudnn, p->stream);
  if (status != CUDNN_STATUS_SUCCESS) {
    g_message("%s: cuDNN cannot start (%s); convolutions run through im2col + GEMM", st->be->name,
              dnn->error_string(status));
    if (p->cudnn != NULL) dnn->destroy(p->cudnn);
    p->cudnn = NULL;
    return;
  }
  p->dnn = dnn;
  p->conv_plans = i2v_cuda_plan_cache_new(plan_free);
}

void i2v_cuda_conv_fini(CudaStream *p) {
  if (p->conv_plans != NULL) g_hash_table_destroy(p->conv_plans);
  if (p->cudnn != NULL) p->dnn->destroy(p->cudnn);
}

/* ---- the cuDNN path ---- */

/* y (+)= conv(x, w) + b through cuDNN for s (symmetric padding: pad_top/pad_left apply to both
 * sides), in batches of images that keep each cuDNN tensor under its 2^31-element limit. Returns
 * how many leading images it computed: all of them, or fewer (none at all where cuDNN is off or
 * declines) when the caller's GEMM path must do the rest. Errors: sticky, all images "done". */
static int64_t conv_cudnn(I2vStream *st, CuBuf y, const I2vTensor *x, CuBuf w, CuBuf b,
                          const CuConvShape *s, int64_t co, gboolean accumulate) {
  CudaStream *p = st->priv;
  int64_t N = s->N, in_image = s->H * s->W * s->Ci, out_image = s->Ho * s->Wo * co;
  /* cuDNN's F16/BF16 configurations write y in the operands' type; an F32 y needs the GEMM */
  if (p->dnn == NULL || y.dt != w.dt || N * in_image == 0 || N * out_image == 0) return 0;
  int64_t batch = MIN(N, G_MAXINT32 / MAX(in_image, out_image));
  if (batch == 0 || co * s->kh * s->kw * s->Ci > G_MAXINT32) return 0;
  ConvKey key = {(int)batch, (int)s->H, (int)s->W,  (int)s->Ci,  (int)co, (int)s->kh,
                 (int)s->kw, s->stride, s->pad_top, s->pad_left, w.dt};
  ConvPlan *full = plan_for(st, &key);
  key.n = (int)(N % batch);
  ConvPlan *last = key.n ? plan_for(st, &key) : full;
  if (full == NULL || last == NULL) return N;
  if (!full->usable || !last->usable) return 0;
  CuBuf xb;
  size_t ws_bytes = MAX(full->workspace, last->workspace);
  void *ws = ws_bytes ? i2v_scratch_bytes(st, ws_bytes) : NULL;
  if ((ws_bytes && ws == NULL) || !i2v_cuda_operand_as(st, x, w.dt, &xb)) return N;
  const float one = 1.0f, beta = accumulate ? 1.0f : 0.0f;
  int64_t done = 0;
  for (int64_t images; done < N; done += images) {
    images = MIN(batch, N - done);
    ConvPlan *plan = images == batch ? full : last;
    gboolean declined = FALSE;
    if (!DNN_OK(st,
                p->dnn->conv_fwd(p->cudnn, &one, plan->x, cu_buf_at(xb, done * in_image).p, plan->w,
                                 w.p, plan->conv, plan->algo, ws, ws_bytes, &beta, plan->y,
                                 cu_buf_at(y, done * out_image).p),
                &declined)) {
      if (!declined) return N;
      plan->usable = FALSE; /* the heuristic offered what the run refused: GEMMs from here */
      break;
    }
  }
  if (b.p != NULL && done > 0)
    CUDA_OK(st, i2v_cu_bias_act(p->stream, y, co, b, done * s->Ho * s->Wo, co, CU_ACT_NONE));
  return done;
}

/* ---- conv2d ---- */

/* Images [first, N) of y (+)= conv(x, w) + b through im2col blocks and GEMMs. */
static void conv2d_gemm(I2vStream *st, CuBuf y, const I2vTensor *x, CuBuf w, CuBuf b,
                        const CuConvShape *s, int64_t co, int64_t first, gboolean accumulate) {
  CudaStream *p = st->priv;
  int64_t K = s->kh * s->kw * s->Ci, M = s->N * s->Ho * s->Wo, m_first = first * s->Ho * s->Wo;
  size_t es = w.dt == CU_F32 ? 4 : 2;
  int64_t block = CLAMP((int64_t)(CONV_COL_BYTES / es) / MAX(K, 1), 1, MAX(M - m_first, 1));
  CuBuf col = {i2v_scratch_bytes(st, (size_t)(block * K) * es), w.dt};
  for (int64_t m0 = m_first; col.p != NULL && m0 < M && st->error == NULL; m0 += block) {
    int64_t rows = MIN(block, M - m0);
    if (!CUDA_OK(st, i2v_cu_im2col(p->stream, col, cu_buf(x), s, m0, rows))) break;
    i2v_cuda_gemm_xwt(st, cu_buf_at(y, m0 * co), co, col, K, w, K, rows, co, K, b, accumulate,
                      I2V_ACT_NONE);
  }
}

void i2v_cuda_conv2d(I2vStream *st, I2vTensor *y, const I2vTensor *x, const I2vTensor *w,
                     const I2vTensor *b, const I2vConvParams *p, gboolean accumulate) {
  i2v_cuda_enter(st);
  int64_t Co = w->shape[0], kh = w->shape[1], kw = w->shape[2], Ci = w->shape[3];
  CuBuf yb = cu_buf(y), wb = cu_buf(w), bb = cu_bias_buf(b);
  CuConvShape s = {x->shape[0], x->shape[1], x->shape[2], Ci,         kh,         kw,
                   y->shape[1], y->shape[2], p->stride,   p->pad_top, p->pad_left};
  size_t mark = i2v_scratch_mark(st);
  if (kh == 1 && kw == 1 && p->stride == 1 && !p->pad_top && !p->pad_left && !p->pad_bottom &&
      !p->pad_right) { /* x already is the column matrix */
    CuBuf xb;
    if (i2v_cuda_operand_as(st, x, w->dtype, &xb))
      i2v_cuda_gemm_xwt(st, yb, Co, xb, Ci, wb, Ci, s.N * s.Ho * s.Wo, Co, Ci, bb, accumulate,
                        I2V_ACT_NONE);
  } else {
    /* legacy cuDNN pads both sides alike; the one asymmetric conv (the VAE encoder's stride-2
     * downsampler, pad bottom/right only) runs a few times per video, not worth a padded copy */
    int64_t done = p->pad_top == p->pad_bottom && p->pad_left == p->pad_right
                       ? conv_cudnn(st, yb, x, wb, bb, &s, Co, accumulate)
                       : 0;
    if (done < s.N) conv2d_gemm(st, yb, x, wb, bb, &s, Co, done, accumulate);
  }
  i2v_scratch_release(st, mark);
}

/* ---- the temporal conv ---- */

/* Batches [first, B) of the temporal conv through three GEMMs per batch (x already in w's type). */
static void conv_frames_gemm(I2vStream *st, CuBuf y, CuBuf x, CuBuf w, CuBuf b, int64_t B,
                             int64_t F, int64_t T, int64_t Ci, int64_t Co, int64_t first,
                             gboolean accumulate) {
  CuBuf none = {NULL, CU_F32};
  for (int64_t bi = first; bi < B && st->error == NULL; bi++) {
    CuBuf yb = cu_buf_at(y, bi * F * T * Co), xb = cu_buf_at(x, bi * F * T * Ci);
    /* the centre tap sees every frame and sets up y (bias, accumulate); the two shifted taps add
     * frame f-1 into frames 1.. and frame f+1 into frames ..F-2 (zero padding at the ends) */
    i2v_cuda_gemm_xwt(st, yb, Co, xb, Ci, cu_buf_at(w, Ci), 3 * Ci, F * T, Co, Ci, b, accumulate,
                      I2V_ACT_NONE);
    if (F < 2) continue;
    i2v_cuda_gemm_xwt(st, cu_buf_at(yb, T * Co), Co, xb, Ci, w, 3 * Ci, (F - 1) * T, Co, Ci, none,
                      TRUE, I2V_ACT_NONE);
    i2v_cuda_gemm_xwt(st, yb, Co, cu_buf_at(xb, T * Ci), Ci, cu_buf_at(w, 2 * Ci), 3 * Ci,
                      (F - 1) * T, Co, Ci, none, TRUE, I2V_ACT_NONE);
  }
}

void i2v_cuda_conv_frames(I2vStream *st, I2vTensor *y, const I2vTensor *x, const I2vTensor *w,
                          const I2vTensor *b, gboolean accumulate) {
  i2v_cuda_enter(st);
  int64_t B = x->shape[0], F = x->shape[1], T = x->shape[2], Ci = x->shape[3], Co = w->shape[0];
  CuBuf yb = cu_buf(y), wb = cu_buf(w), bb = cu_bias_buf(b);
  /* one cuDNN conv: x [B,F,T,Ci] is NHWC with H = F, W = T; w [Co,3,Ci] is a [Co,3,1,Ci] filter;
   * padding 1 over frames, none over tokens */
  CuConvShape s = {B, F, T, Ci, 3, 1, F, T, 1, 1, 0};
  size_t mark = i2v_scratch_mark(st);
  int64_t done = conv_cudnn(st, yb, x, wb, bb, &s, Co, accumulate);
  CuBuf xb;
  if (done < B && i2v_cuda_operand_as(st, x, w->dtype, &xb))
    conv_frames_gemm(st, yb, xb, wb, bb, B, F, T, Ci, Co, done, accumulate);
  i2v_scratch_release(st, mark);
}
