// A stand-in libcublasLt.so for the simulator: the entry points the CUDA backend dlopen()s, with
// cublasLtMatmul as a plain loop (column-major, float accumulation, alpha/beta, bias epilogue).
//
// It is strict where the real library is documented to be (cublasLt.h and the cuBLAS guide):
// attribute sizes must match the documented types (CUBLAS_STATUS_INVALID_VALUE otherwise), a
// leading dimension must cover the rows, op(A)·op(B) must fit C and D, A and B share a type, C and
// D share a type and layout when they are one buffer, the bias epilogue needs a bias pointer, the
// workspace must be as large as the chosen algorithm says. What it does not model it rejects
// rather than guesses: attributes the backend does not use (INVALID_VALUE), compute types other
// than CUBLAS_COMPUTE_32F with CUDA_R_32F scale, epilogues other than DEFAULT and BIAS, pointer
// modes other than HOST, non-column-major orders, batches, a bias type other than D's
// (NOT_SUPPORTED).
//
// Its one "algorithm" loads 16-byte vectors, like cuBLASLt's fast kernels: the heuristic finds it
// only when every pointer (as the alignment preferences and the bias pointer say) and every
// leading dimension is 16-byte aligned, and cublasLtMatmul rejects pointers less aligned than the
// heuristic was promised. The real library also has slower kernels for less aligned operands;
// the simulator's "no algorithm" there makes the backend's cublasGemmEx fallback run in the tests.
#include <cublasLt.h>

#include <cstring>

#include "sim_values.h"

namespace {

constexpr size_t VECTOR_BYTES = 16;
constexpr size_t WORKSPACE_NEED = 1 << 20; // asked for when the preference allows it
constexpr uint64_t ALGO_MAGIC = 0x4c7453696d416c67ull;

struct Desc {
  int32_t compute, scale, pointer_mode = CUBLASLT_POINTER_MODE_HOST;
  int32_t transa = CUBLAS_OP_N, transb = CUBLAS_OP_N, transc = CUBLAS_OP_N;
  uint32_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
  const void *bias = nullptr;
  int32_t bias_type = -1; // -1: D's type
};

struct Layout {
  uint32_t type;
  int32_t order = CUBLASLT_ORDER_COL;
  uint64_t rows, cols;
  int64_t ld;
  int32_t batch = 1;
};

struct Pref {
  uint32_t search = CUBLASLT_SEARCH_BEST_FIT;
  uint64_t max_workspace = 0;
  uint32_t align[4] = {256, 256, 256, 256}; // A, B, C, D
};

// What the algorithm was chosen for, carried in cublasLtMatmulAlgo_t::data.
struct Algo {
  uint64_t magic;
  uint64_t workspace;
  uint32_t align[5]; // A, B, C, D, bias: the least alignment the heuristic was promised
};
static_assert(sizeof(Algo) <= sizeof(cublasLtMatmulAlgo_t), "algo fits");

Desc *desc_of(cublasLtMatmulDesc_t d) {
  return reinterpret_cast<Desc *>(d);
}
Layout *layout_of(cublasLtMatrixLayout_t l) {
  return reinterpret_cast<Layout *>(l);
}
Pref *pref_of(cublasLtMatmulPreference_t p) {
  return reinterpret_cast<Pref *>(p);
}

// Copies an attribute value of exactly the documented size.
template <class T> cublasStatus_t set(T *field, const void *buf, size_t size) {
  if (buf == nullptr || size != sizeof(T)) return CUBLAS_STATUS_INVALID_VALUE;
  std::memcpy(field, buf, sizeof(T));
  return CUBLAS_STATUS_SUCCESS;
}

size_t type_size(uint32_t t) {
  return t == CUDA_R_32F ? 4 : 2;
}
bool float_type(uint32_t t) {
  return t == CUDA_R_32F || t == CUDA_R_16F || t == CUDA_R_16BF;
}

uint32_t alignment(const void *p) {
  uintptr_t a = reinterpret_cast<uintptr_t>(p);
  return a == 0 ? 256 : (uint32_t)std::min<uintptr_t>(256, a & (~a + 1));
}

SimType sim_type(uint32_t t) {
  return t == CUDA_R_16F ? SIM_F16 : t == CUDA_R_16BF ? SIM_BF16 : SIM_F32;
}

float load(const void *p, uint32_t t, size_t i) {
  return sim_load(p, sim_type(t), i);
}

void store(void *p, uint32_t t, size_t i, float v) {
  sim_store(p, sim_type(t), i, v);
}

// The problem is well formed (INVALID_VALUE) and within what is modelled (NOT_SUPPORTED).
cublasStatus_t check_problem(const Desc *d, const Layout *a, const Layout *b, const Layout *c,
                             const Layout *dl) {
  if (d == nullptr || a == nullptr || b == nullptr || c == nullptr || dl == nullptr)
    return CUBLAS_STATUS_INVALID_VALUE;
  for (const Layout *l : {a, b, c, dl}) {
    if (l->order != CUBLASLT_ORDER_COL || l->batch != 1) return CUBLAS_STATUS_NOT_SUPPORTED;
    if (!float_type(l->type)) return CUBLAS_STATUS_NOT_SUPPORTED;
    if (l->ld < 0 || (uint64_t)l->ld < l->rows) return CUBLAS_STATUS_INVALID_VALUE;
  }
  uint64_t m = d->transa == CUBLAS_OP_N ? a->rows : a->cols;
  uint64_t k = d->transa == CUBLAS_OP_N ? a->cols : a->rows;
  uint64_t kb = d->transb == CUBLAS_OP_N ? b->rows : b->cols;
  uint64_t n = d->transb == CUBLAS_OP_N ? b->cols : b->rows;
  if (k != kb || c->rows != m || c->cols != n || dl->rows != m || dl->cols != n)
    return CUBLAS_STATUS_INVALID_VALUE;
  if (d->transc != CUBLAS_OP_N) return CUBLAS_STATUS_NOT_SUPPORTED;
  if (d->compute != CUBLAS_COMPUTE_32F || d->scale != CUDA_R_32F)
    return CUBLAS_STATUS_NOT_SUPPORTED;
  if (d->pointer_mode != CUBLASLT_POINTER_MODE_HOST) return CUBLAS_STATUS_NOT_SUPPORTED;
  // cublasLtMatmul's type table for CUBLAS_COMPUTE_32F: A and B alike; C and D alike, either A's
  // type or float32 (float32 inputs: float32 output only)
  if (a->type != b->type || c->type != dl->type) return CUBLAS_STATUS_NOT_SUPPORTED;
  if (dl->type != a->type && dl->type != CUDA_R_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
  if (d->epilogue != CUBLASLT_EPILOGUE_DEFAULT && d->epilogue != CUBLASLT_EPILOGUE_BIAS)
    return CUBLAS_STATUS_NOT_SUPPORTED;
  if (d->bias_type != -1 && (uint32_t)d->bias_type != dl->type) return CUBLAS_STATUS_NOT_SUPPORTED;
  return CUBLAS_STATUS_SUCCESS;
}

} // namespace

extern "C" {

cublasStatus_t cublasLtCreate(cublasLtHandle_t *handle) {
  static int token;
  if (handle == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  *handle = reinterpret_cast<cublasLtHandle_t>(&token);
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtDestroy(cublasLtHandle_t handle) {
  return handle == nullptr ? CUBLAS_STATUS_NOT_INITIALIZED : CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *desc, cublasComputeType_t compute,
                                        cudaDataType_t scale) {
  Desc *d = new Desc;
  d->compute = compute;
  d->scale = scale;
  *desc = reinterpret_cast<cublasLtMatmulDesc_t>(d);
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t desc) {
  delete desc_of(desc);
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t desc,
                                              cublasLtMatmulDescAttributes_t attr, const void *buf,
                                              size_t size) {
  Desc *d = desc_of(desc);
  switch (attr) {
  case CUBLASLT_MATMUL_DESC_COMPUTE_TYPE:
    return set(&d->compute, buf, size);
  case CUBLASLT_MATMUL_DESC_SCALE_TYPE:
    return set(&d->scale, buf, size);
  case CUBLASLT_MATMUL_DESC_POINTER_MODE:
    return set(&d->pointer_mode, buf, size);
  case CUBLASLT_MATMUL_DESC_TRANSA:
    return set(&d->transa, buf, size);
  case CUBLASLT_MATMUL_DESC_TRANSB:
    return set(&d->transb, buf, size);
  case CUBLASLT_MATMUL_DESC_TRANSC:
    return set(&d->transc, buf, size);
  case CUBLASLT_MATMUL_DESC_EPILOGUE:
    return set(&d->epilogue, buf, size);
  case CUBLASLT_MATMUL_DESC_BIAS_POINTER:
    return set(&d->bias, buf, size);
  case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE:
    return set(&d->bias_type, buf, size);
  default:
    return CUBLAS_STATUS_INVALID_VALUE; // not modelled
  }
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *layout, cudaDataType type,
                                          uint64_t rows, uint64_t cols, int64_t ld) {
  Layout *l = new Layout;
  l->type = type;
  l->rows = rows;
  l->cols = cols;
  l->ld = ld;
  *layout = reinterpret_cast<cublasLtMatrixLayout_t>(l);
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t layout) {
  delete layout_of(layout);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *pref) {
  *pref = reinterpret_cast<cublasLtMatmulPreference_t>(new Pref);
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref) {
  delete pref_of(pref);
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref,
                                                    cublasLtMatmulPreferenceAttributes_t attr,
                                                    const void *buf, size_t size) {
  Pref *p = pref_of(pref);
  switch (attr) {
  case CUBLASLT_MATMUL_PREF_SEARCH_MODE:
    return set(&p->search, buf, size);
  case CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES:
    return set(&p->max_workspace, buf, size);
  case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES:
    return set(&p->align[0], buf, size);
  case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES:
    return set(&p->align[1], buf, size);
  case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES:
    return set(&p->align[2], buf, size);
  case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES:
    return set(&p->align[3], buf, size);
  default:
    return CUBLAS_STATUS_INVALID_VALUE; // not modelled
  }
}

// One result at most: the vector algorithm when everything is 16-byte aligned, else none
// (status SUCCESS, *count 0, as the real heuristic reports an empty search).
cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc,
                                              cublasLtMatrixLayout_t A, cublasLtMatrixLayout_t B,
                                              cublasLtMatrixLayout_t C, cublasLtMatrixLayout_t D,
                                              cublasLtMatmulPreference_t pref, int requested,
                                              cublasLtMatmulHeuristicResult_t results[],
                                              int *count) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (requested <= 0 || results == nullptr || count == nullptr || pref == nullptr)
    return CUBLAS_STATUS_INVALID_VALUE;
  *count = 0;
  const Desc *d = desc_of(desc);
  const Layout *layouts[] = {layout_of(A), layout_of(B), layout_of(C), layout_of(D)};
  cublasStatus_t st = check_problem(d, layouts[0], layouts[1], layouts[2], layouts[3]);
  if (st != CUBLAS_STATUS_SUCCESS) return st;
  const Pref *p = pref_of(pref);
  if (p->search != CUBLASLT_SEARCH_BEST_FIT) return CUBLAS_STATUS_NOT_SUPPORTED;
  bool bias = d->epilogue == CUBLASLT_EPILOGUE_BIAS;
  Algo algo = {ALGO_MAGIC, p->max_workspace >= WORKSPACE_NEED ? WORKSPACE_NEED : 0, {}};
  for (int i = 0; i < 4; i++) {
    algo.align[i] = p->align[i];
    if (p->align[i] % VECTOR_BYTES != 0 ||
        (size_t)layouts[i]->ld * type_size(layouts[i]->type) % VECTOR_BYTES != 0)
      return CUBLAS_STATUS_SUCCESS;
  }
  algo.align[4] = bias ? alignment(d->bias) : 256;
  if (algo.align[4] % VECTOR_BYTES != 0) return CUBLAS_STATUS_SUCCESS;
  std::memset(&results[0], 0, sizeof results[0]);
  std::memcpy(results[0].algo.data, &algo, sizeof algo);
  results[0].workspaceSize = algo.workspace;
  results[0].state = CUBLAS_STATUS_SUCCESS;
  results[0].wavesCount = 1.0f;
  *count = 1;
  return CUBLAS_STATUS_SUCCESS;
}

// D = alpha·op(A)·op(B) + beta·C (+ bias[row]), column-major; C is not read when beta is 0.
cublasStatus_t cublasLtMatmul(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc, const void *alpha,
                              const void *A, cublasLtMatrixLayout_t Adesc, const void *B,
                              cublasLtMatrixLayout_t Bdesc, const void *beta, const void *C,
                              cublasLtMatrixLayout_t Cdesc, void *D, cublasLtMatrixLayout_t Ddesc,
                              const cublasLtMatmulAlgo_t *algo_in, void *workspace,
                              size_t workspace_bytes, cudaStream_t) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  const Desc *d = desc_of(desc);
  const Layout *a = layout_of(Adesc), *b = layout_of(Bdesc), *c = layout_of(Cdesc),
               *dl = layout_of(Ddesc);
  cublasStatus_t st = check_problem(d, a, b, c, dl);
  if (st != CUBLAS_STATUS_SUCCESS) return st;
  if (alpha == nullptr || beta == nullptr || A == nullptr || B == nullptr || D == nullptr)
    return CUBLAS_STATUS_INVALID_VALUE;
  // the simulator has no heuristic of its own: the caller passes the one it found
  Algo algo;
  if (algo_in == nullptr) return CUBLAS_STATUS_NOT_SUPPORTED;
  std::memcpy(&algo, algo_in->data, sizeof algo);
  if (algo.magic != ALGO_MAGIC) return CUBLAS_STATUS_INVALID_VALUE;
  if (workspace_bytes < algo.workspace || (algo.workspace > 0 && workspace == nullptr))
    return CUBLAS_STATUS_INVALID_VALUE;
  bool bias = d->epilogue == CUBLASLT_EPILOGUE_BIAS;
  if (bias && d->bias == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  if (algo.workspace > 0) std::memset(workspace, 0xa5, algo.workspace); // it is scratch
  float al = *static_cast<const float *>(alpha), be = *static_cast<const float *>(beta);
  if (be != 0 && C == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  // in place (C = D) needs one layout for both
  if (C == D && (c->ld != dl->ld || c->type != dl->type)) return CUBLAS_STATUS_INVALID_VALUE;
  const void *ptrs[] = {A, B, C != nullptr ? C : D, D, bias ? d->bias : nullptr};
  for (int i = 0; i < 5; i++)
    if (alignment(ptrs[i]) < algo.align[i]) return CUBLAS_STATUS_INVALID_VALUE;

  uint64_t m = dl->rows, n = dl->cols;
  uint64_t k = d->transa == CUBLAS_OP_N ? a->cols : a->rows;
  uint32_t bias_type = d->bias_type == -1 ? dl->type : (uint32_t)d->bias_type;
  for (uint64_t j = 0; j < n; j++)
    for (uint64_t i = 0; i < m; i++) {
      float acc = 0;
      for (uint64_t p = 0; p < k; p++) {
        size_t ai = d->transa == CUBLAS_OP_N ? p * a->ld + i : i * a->ld + p;
        size_t bi = d->transb == CUBLAS_OP_N ? j * b->ld + p : p * b->ld + j;
        acc += load(A, a->type, ai) * load(B, b->type, bi);
      }
      float v = al * acc + (be != 0 ? be * load(C, c->type, j * c->ld + i) : 0.0f);
      if (bias) v += load(d->bias, bias_type, i);
      store(D, dl->type, j * dl->ld + i, v);
    }
  return CUBLAS_STATUS_SUCCESS;
}

} // extern "C"
