// A stand-in libcublas.so for the simulator: the five entry points the CUDA backend dlopen()s,
// with cublasGemmEx as a plain loop (column-major, ops N/T, F32/F16/BF16, float accumulation).
#include <cublas_api.h>

#include "sim_values.h"

static SimType sim_type(cudaDataType t) {
  return t == CUDA_R_16F ? SIM_F16 : t == CUDA_R_16BF ? SIM_BF16 : SIM_F32;
}

static float load(const void *p, cudaDataType t, size_t i) {
  return sim_load(p, sim_type(t), i);
}

static void store(void *p, cudaDataType t, size_t i, float v) {
  sim_store(p, sim_type(t), i, v);
}

extern "C" {

cublasStatus_t cublasCreate_v2(cublasHandle_t *handle) {
  static int token;
  *handle = reinterpret_cast<cublasHandle_t>(&token);
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDestroy_v2(cublasHandle_t) {
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream_v2(cublasHandle_t, cudaStream_t) {
  return CUBLAS_STATUS_SUCCESS;
}
const char *cublasGetStatusString(cublasStatus_t) {
  return "simulated cuBLAS status";
}

// C[m,n] = alpha·op(A)[m,k]·op(B)[k,n] + beta·C, column-major with leading dimensions.
cublasStatus_t cublasGemmEx(cublasHandle_t, cublasOperation_t ta, cublasOperation_t tb, int m,
                            int n, int k, const void *alpha, const void *A, cudaDataType at,
                            int lda, const void *B, cudaDataType bt, int ldb, const void *beta,
                            void *C, cudaDataType ct, int ldc, cublasComputeType_t compute,
                            cublasGemmAlgo_t) {
  if (compute != CUBLAS_COMPUTE_32F || at != bt) return CUBLAS_STATUS_NOT_SUPPORTED;
  float al = *static_cast<const float *>(alpha), be = *static_cast<const float *>(beta);
  for (int j = 0; j < n; j++)
    for (int i = 0; i < m; i++) {
      float acc = 0;
      for (int p = 0; p < k; p++) {
        size_t ai = ta == CUBLAS_OP_N ? (size_t)p * lda + i : (size_t)i * lda + p;
        size_t bi = tb == CUBLAS_OP_N ? (size_t)j * ldb + p : (size_t)p * ldb + j;
        acc += load(A, at, ai) * load(B, bt, bi);
      }
      size_t ci = (size_t)j * ldc + i;
      store(C, ct, ci, al * acc + (be != 0 ? be * load(C, ct, ci) : 0.0f));
    }
  return CUBLAS_STATUS_SUCCESS;
}

} // extern "C"
