/* GEMMs on CUDA: linear, and the one GEMM helper i2v_cuda_gemm_xwt that it and the convolutions'
 * GEMM paths use: cuBLASLt (F16/BF16/F32 inputs, fp32 accumulation) with the bias fused into the
 * GEMM's epilogue, through a cache of plans (matmul and layout descriptors plus the heuristic's
 * algorithm) so that the ~1000 GEMMs of a UNet step do not each pay descriptor creation and a
 * heuristic query on the host. Where cuBLASLt has no algorithm (odd leading dimensions, misaligned
 * pointers) the same GEMM runs through cublasGemmEx and the bias joins the activation in the
 * epilogue kernel, so nothing that worked before fails.
 *
 * Activations always run as a separate in-place pass (i2v_cu_bias_act): cuBLASLt's GELU epilogue is
 * the tanh approximation while I2V_ACT_GELU is the exact erf GELU, and SiLU and quick GELU have no
 * cuBLASLt epilogue at all. */
#include <string.h>

#include "cuda_priv.h"

static cudaDataType blas_type(int dt) {
  return dt == CU_F16 ? CUDA_R_16F : dt == CU_BF16 ? CUDA_R_16BF : CUDA_R_32F;
}

/* Everything a plan depends on. Pointer alignments are part of it: the heuristic picks algorithms
 * for the alignment it is promised, and im2col blocks and the temporal conv's frame-shifted taps
 * hand in pointers into the middle of tensors. Plain integers without padding, so the bytes are
 * the key. */
typedef struct {
  int64_t M, N, K, ldx, ldw, ldy;
  int32_t xw_dt, y_dt;
  int32_t bias_dt; /* -1: no bias epilogue */
  int32_t accumulate;
  uint32_t align_x, align_w, align_y, align_b;
} GemmKey;

typedef struct {
  const CublasLtApi *api;
  cublasLtMatmulDesc_t desc;
  cublasLtMatrixLayout_t w, x, y;
  cublasLtMatmulAlgo_t algo;
  gboolean found; /* FALSE: cuBLASLt has no algorithm; cublasGemmEx runs instead */
} GemmPlan;

static void plan_free(gpointer data) {
  GemmPlan *pl = data;
  if (pl->desc != NULL) pl->api->desc_destroy(pl->desc);
  if (pl->w != NULL) pl->api->layout_destroy(pl->w);
  if (pl->x != NULL) pl->api->layout_destroy(pl->x);
  if (pl->y != NULL) pl->api->layout_destroy(pl->y);
  g_free(pl);
}

GHashTable *i2v_cuda_gemm_plans_new(void) {
  return i2v_cuda_plan_cache_new(plan_free);
}

/* The largest power of two ≤ 256 dividing the address (cuBLASLt's alignment preferences). */
static uint32_t ptr_alignment(const void *ptr) {
  uintptr_t a = (uintptr_t)ptr;
  return a == 0 ? 256 : (uint32_t)MIN((uintptr_t)256, a & (~a + 1));
}

/* Asks the heuristic for one algorithm for pl's descriptors within the backend's workspace and
 * the key's alignments. FALSE on a cuBLASLt error; TRUE with pl->found FALSE when there is none. */
static gboolean find_algo(I2vStream *st, GemmPlan *pl, const GemmKey *k) {
  CudaStream *p = st->priv;
  const CublasLtApi *lt = p->lt_api;
  cublasLtMatmulPreference_t pref = NULL;
  const uint64_t workspace = CUDA_LT_WORKSPACE_BYTES;
  /* A = w, B = x, C = D = y */
  const struct {
    cublasLtMatmulPreferenceAttributes_t attr;
    uint32_t bytes;
  } aligns[] = {{CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, k->align_w},
                {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, k->align_x},
                {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, k->align_y},
                {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, k->align_y}};
  gboolean ok = CUBLAS_OK(st, lt->pref_create(&pref)) &&
                CUBLAS_OK(st, lt->pref_set(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                           &workspace, sizeof workspace));
  for (guint i = 0; ok && i < G_N_ELEMENTS(aligns); i++)
    ok = CUBLAS_OK(st, lt->pref_set(pref, aligns[i].attr, &aligns[i].bytes, sizeof(uint32_t)));
  cublasLtMatmulHeuristicResult_t res;
  int count = 0;
  cublasStatus_t status = CUBLAS_STATUS_SUCCESS;
  if (ok)
    status = lt->heuristic(p->lt, pl->desc, pl->w, pl->x, pl->y, pl->y, pref, 1, &res, &count);
  if (pref != NULL) lt->pref_destroy(pref);
  if (!ok) return FALSE;
  if (status == CUBLAS_STATUS_NOT_SUPPORTED || (status == CUBLAS_STATUS_SUCCESS && count == 0)) {
    g_debug("%s: no cuBLASLt algorithm for a %" G_GINT64_FORMAT "×%" G_GINT64_FORMAT
            "×%" G_GINT64_FORMAT " (M×N×K) GEMM (ld x/w/y %" G_GINT64_FORMAT "/%" G_GINT64_FORMAT
            "/%" G_GINT64_FORMAT ", alignment x/w/y/bias %u/%u/%u/%u): cublasGemmEx instead",
            st->be->name, k->M, k->N, k->K, k->ldx, k->ldw, k->ldy, k->align_x, k->align_w,
            k->align_y, k->align_b);
    return TRUE;
  }
  if (!i2v_cublas_check(st, status, "cublasLtMatmulAlgoGetHeuristic", __FILE__, __LINE__) ||
      !i2v_cublas_check(st, res.state, "cublasLtMatmulAlgoGetHeuristic (result)", __FILE__,
                        __LINE__))
    return FALSE;
  pl->algo = res.algo;
  pl->found = TRUE;
  return TRUE;
}

/* A new plan for key: descriptors of column-major yᵀ[N,M] = w·xᵀ (see i2v_cuda_gemm_xwt) and its
 * algorithm. `bias` is a bias pointer with the key's alignment (the heuristic reads it). NULL on
 * error (sticky error set). */
static GemmPlan *plan_new(I2vStream *st, const GemmKey *k, const void *bias) {
  CudaStream *p = st->priv;
  const CublasLtApi *lt = p->lt_api;
  GemmPlan *pl = g_new0(GemmPlan, 1);
  pl->api = lt;
  const int32_t transa = CUBLAS_OP_T, transb = CUBLAS_OP_N;
  const uint32_t epilogue = k->bias_dt >= 0 ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
  gboolean ok =
      CUBLAS_OK(st, lt->desc_create(&pl->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F)) &&
      CUBLAS_OK(st, lt->desc_set(pl->desc, CUBLASLT_MATMUL_DESC_TRANSA, &transa, sizeof transa)) &&
      CUBLAS_OK(st, lt->desc_set(pl->desc, CUBLASLT_MATMUL_DESC_TRANSB, &transb, sizeof transb)) &&
      CUBLAS_OK(
          st, lt->desc_set(pl->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof epilogue)) &&
      (k->bias_dt < 0 || CUBLAS_OK(st, lt->desc_set(pl->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                    &bias, sizeof bias)));
  /* w[N,K] row-major is column-major K×N (op T), x[M,K] is K×M (op N), y[M,N] is N×M */
  ok = ok &&
       CUBLAS_OK(st, lt->layout_create(&pl->w, blas_type(k->xw_dt), (uint64_t)k->K, (uint64_t)k->N,
                                       k->ldw)) &&
       CUBLAS_OK(st, lt->layout_create(&pl->x, blas_type(k->xw_dt), (uint64_t)k->K, (uint64_t)k->M,
                                       k->ldx)) &&
       CUBLAS_OK(st, lt->layout_create(&pl->y, blas_type(k->y_dt), (uint64_t)k->N, (uint64_t)k->M,
                                       k->ldy)) &&
       find_algo(st, pl, k);
  if (!ok) {
    plan_free(pl);
    return NULL;
  }
  return pl;
}

/* y (+)= x·wᵀ, plus b when cuBLASLt fuses it (then bias_left->p becomes NULL), through a cached
 * plan, or through cublasGemmEx where cuBLASLt has no algorithm. FALSE on error. */
static gboolean gemm(I2vStream *st, CuBuf y, int64_t ldy, CuBuf x, int64_t ldx, CuBuf w,
                     int64_t ldw, int64_t M, int64_t N, int64_t K, CuBuf b, gboolean accumulate,
                     CuBuf *bias_left) {
  CudaStream *p = st->priv;
  /* A fused bias has D's type (CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE's default): cuBLASLt's type
   * table documents no other bias type for these inputs, so any other bias stays with the
   * epilogue kernel, which reads every dtype. */
  gboolean fuse = b.p != NULL && b.dt == y.dt;
  GemmKey key = {M,
                 N,
                 K,
                 ldx,
                 ldw,
                 ldy,
                 x.dt,
                 y.dt,
                 fuse ? b.dt : -1,
                 accumulate,
                 ptr_alignment(x.p),
                 ptr_alignment(w.p),
                 ptr_alignment(y.p),
                 fuse ? ptr_alignment(b.p) : 0};
  GemmPlan *plan = i2v_cuda_plan_lookup(p->gemm_plans, &key, sizeof key);
  if (plan == NULL) {
    plan = plan_new(st, &key, b.p);
    if (plan == NULL) return FALSE;
    i2v_cuda_plan_insert(p->gemm_plans, &key, sizeof key, plan);
  }
  const float one = 1.0f, beta = accumulate ? 1.0f : 0.0f;
  if (!plan->found)
    return CUBLAS_OK(st, p->blas->gemm_ex(p->cublas, CUBLAS_OP_T, CUBLAS_OP_N, (int)N, (int)M,
                                          (int)K, &one, w.p, blas_type(w.dt), (int)ldw, x.p,
                                          blas_type(x.dt), (int)ldx, &beta, y.p, blas_type(y.dt),
                                          (int)ldy, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  const CublasLtApi *lt = p->lt_api;
  if (fuse &&
      !CUBLAS_OK(st, lt->desc_set(plan->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &b.p, sizeof b.p)))
    return FALSE;
  if (!CUBLAS_OK(st, lt->matmul(p->lt, plan->desc, &one, w.p, plan->w, x.p, plan->x, &beta, y.p,
                                plan->y, y.p, plan->y, &plan->algo, p->lt_workspace,
                                CUDA_LT_WORKSPACE_BYTES, p->stream)))
    return FALSE;
  if (fuse) bias_left->p = NULL;
  return TRUE;
}

/* Row-major y = x·wᵀ is column-major yᵀ = w·xᵀ: (op(A) = wᵀ as stored, op(B) = x as stored) with
 * m = N, n = M, and the bias epilogue's per-row vector of length m = N is the per-channel bias. */
void i2v_cuda_gemm_xwt(I2vStream *st, CuBuf y, int64_t ldy, CuBuf x, int64_t ldx, CuBuf w,
                       int64_t ldw, int64_t M, int64_t N, int64_t K, CuBuf b, gboolean accumulate,
                       I2vAct act) {
  CudaStream *p = st->priv;
  if (M == 0 || N == 0 || st->error != NULL) return;
  if (M > G_MAXINT || N > G_MAXINT || K > G_MAXINT || ldx > G_MAXINT || ldy > G_MAXINT ||
      ldw > G_MAXINT) {
    i2v_stream_failf(st,
                     "%s: GEMM of %" G_GINT64_FORMAT "×%" G_GINT64_FORMAT "×%" G_GINT64_FORMAT
                     " exceeds cuBLAS's 32-bit sizes",
                     st->be->name, M, N, K);
    return;
  }
  if (x.dt != w.dt || (y.dt != w.dt && y.dt != CU_F32)) {
    i2v_stream_failf(st, "%s: GEMM of %s inputs into %s output is not supported", st->be->name,
                     i2v_dtype_name(w.dt), i2v_dtype_name(y.dt));
    return;
  }
  CuBuf bias_left = b; /* what the epilogue kernel still has to add */
  if (K == 0) {        /* nothing to multiply: y is its old value or zero, then the epilogue */
    size_t es = y.dt == CU_F32 ? 4 : 2;
    if (!accumulate && !CUDA_OK(st, cudaMemset2DAsync(y.p, (size_t)ldy * es, 0, (size_t)N * es,
                                                      (size_t)M, p->stream)))
      return;
  } else if (!gemm(st, y, ldy, x, ldx, w, ldw, M, N, K, b, accumulate, &bias_left)) {
    return;
  }
  if (bias_left.p != NULL || act != I2V_ACT_NONE)
    CUDA_OK(st, i2v_cu_bias_act(p->stream, y, ldy, bias_left, M, N, (int)act));
}

void i2v_cuda_linear(I2vStream *st, I2vTensor *y, const I2vTensor *x, const I2vTensor *w,
                     const I2vTensor *b, I2vAct act, gboolean accumulate) {
  i2v_cuda_enter(st);
  int64_t K = w->shape[1], N = w->shape[0];
  int64_t M = N ? i2v_tensor_numel(y) / N : 0;
  size_t mark = i2v_scratch_mark(st);
  CuBuf xb;
  if (i2v_cuda_operand_as(st, x, w->dtype, &xb))
    i2v_cuda_gemm_xwt(st, cu_buf(y), N, xb, K, cu_buf(w), K, M, N, K, cu_bias_buf(b), accumulate,
                      act);
  i2v_scratch_release(st, mark);
}
