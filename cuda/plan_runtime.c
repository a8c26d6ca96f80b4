/* The planning device's runtime (plan_rename.h): what the CUDA backend's planning copy calls
 * instead of the CUDA runtime, the NVIDIA libraries and its kernels.
 *
 * Memory is a fake device of a set size: cudaMalloc counts the bytes (and fails, like the real
 * one, past the size) and hands out distinct 256-byte-aligned addresses that nothing ever reads;
 * uploads are dropped and downloads read zeros. cuBLAS, cuBLASLt and cuDNN are stand-ins reached
 * through the backend's own dlopen/dlsym: handles and descriptors exist, queries answer (one
 * cuBLASLt algorithm with no workspace of its own, cuDNN's implicit-precomputed GEMM with the
 * workspace of conv_workspace.h), and the GEMMs and convolutions themselves are skipped, as are
 * all kernel launches. So the backend's persistent tensors, scratch arena and its chunking,
 * workspaces and staging allocate exactly as on a GPU, and the device's used bytes and their
 * high-water mark (i2v_plan_device_*) are the plan. */
#include <cublasLt.h>
#include <cublas_api.h>
#include <cudnn_cnn.h>
#include <string.h>

#include "conv_workspace.h"
#include "kernels.h"
#include "plan_device.h"

/* ---- counted memory ---- */

static GMutex lock;
static GHashTable *blocks; /* fake address → size */
static size_t total = I2V_PLAN_DEVICE_BYTES, used, peak;
static uintptr_t next_address = (uintptr_t)1 << 40;
static cudaError_t last_error = cudaSuccess;

void i2v_plan_device_reset(size_t bytes) {
  g_mutex_lock(&lock);
  total = bytes;
  peak = used;
  g_mutex_unlock(&lock);
}

size_t i2v_plan_device_used(void) {
  g_mutex_lock(&lock);
  size_t u = used;
  g_mutex_unlock(&lock);
  return u;
}

size_t i2v_plan_device_peak(gboolean reset) {
  g_mutex_lock(&lock);
  size_t p = peak;
  if (reset) peak = used;
  g_mutex_unlock(&lock);
  return p;
}

cudaError_t i2v_plan_cudaMalloc(void **ptr, size_t size) {
  g_mutex_lock(&lock);
  if (size > total - used) {
    g_mutex_unlock(&lock);
    *ptr = NULL;
    return last_error = cudaErrorMemoryAllocation;
  }
  if (blocks == NULL) blocks = g_hash_table_new(g_direct_hash, g_direct_equal);
  *ptr = (void *)next_address;
  next_address += (MAX(size, 1) + 255) & ~(size_t)255;
  g_hash_table_insert(blocks, *ptr, GSIZE_TO_POINTER(size));
  used += size;
  peak = MAX(peak, used);
  g_mutex_unlock(&lock);
  return cudaSuccess;
}

cudaError_t i2v_plan_cudaFree(void *ptr) {
  if (ptr == NULL) return cudaSuccess;
  g_mutex_lock(&lock);
  gpointer size;
  gboolean found = blocks != NULL && g_hash_table_lookup_extended(blocks, ptr, NULL, &size);
  if (found) {
    used -= GPOINTER_TO_SIZE(size);
    g_hash_table_remove(blocks, ptr);
  }
  g_mutex_unlock(&lock);
  return found ? cudaSuccess : (last_error = cudaErrorInvalidValue);
}

cudaError_t i2v_plan_cudaMemGetInfo(size_t *free_b, size_t *total_b) {
  g_mutex_lock(&lock);
  *free_b = total - used;
  *total_b = total;
  g_mutex_unlock(&lock);
  return cudaSuccess;
}

cudaError_t i2v_plan_cudaMemset(void *ptr, int value, size_t n) {
  (void)ptr, (void)value, (void)n;
  return cudaSuccess;
}

/* Device memory holds nothing: a download reads zeros, everything else is dropped. */
static cudaError_t plan_copy(void *dst, size_t n, enum cudaMemcpyKind kind) {
  if (kind == cudaMemcpyDeviceToHost) memset(dst, 0, n);
  return cudaSuccess;
}

cudaError_t i2v_plan_cudaMemcpy(void *dst, const void *src, size_t n, enum cudaMemcpyKind kind) {
  (void)src;
  return plan_copy(dst, n, kind);
}

cudaError_t i2v_plan_cudaMemcpyAsync(void *dst, const void *src, size_t n, enum cudaMemcpyKind kind,
                                     cudaStream_t stream) {
  (void)src, (void)stream;
  return plan_copy(dst, n, kind);
}

cudaError_t i2v_plan_cudaMemset2DAsync(void *ptr, size_t pitch, int value, size_t width,
                                       size_t height, cudaStream_t stream) {
  (void)ptr, (void)pitch, (void)value, (void)width, (void)height, (void)stream;
  return cudaSuccess;
}

/* ---- device, errors, streams ---- */

cudaError_t i2v_plan_cudaSetDevice(int device) {
  return device == 0 ? cudaSuccess : (last_error = cudaErrorInvalidDevice);
}

cudaError_t i2v_plan_cudaGetDeviceCount(int *count) {
  *count = 1;
  return cudaSuccess;
}

cudaError_t i2v_plan_cudaGetLastError(void) {
  cudaError_t e = last_error;
  last_error = cudaSuccess;
  return e;
}

/* the runtime's own tables: no device needed */
const char *i2v_plan_cudaGetErrorString(cudaError_t e) {
  return cudaGetErrorString(e);
}

const char *i2v_plan_cudaGetErrorName(cudaError_t e) {
  return cudaGetErrorName(e);
}

/* A distinct non-NULL handle of any opaque type. */
static void *fake_handle(void) {
  static gint n;
  return GINT_TO_POINTER(g_atomic_int_add(&n, 1) * 16 + 16);
}

cudaError_t i2v_plan_cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned flags) {
  (void)flags;
  *stream = fake_handle();
  return cudaSuccess;
}

cudaError_t i2v_plan_cudaStreamSynchronize(cudaStream_t stream) {
  (void)stream;
  return cudaSuccess;
}

cudaError_t i2v_plan_cudaStreamDestroy(cudaStream_t stream) {
  (void)stream;
  return cudaSuccess;
}

/* ---- cuBLAS and cuBLASLt ---- */

static cublasStatus_t blas_create(cublasHandle_t *h) {
  *h = fake_handle();
  return CUBLAS_STATUS_SUCCESS;
}

static cublasStatus_t blas_handle_op(void *h) {
  (void)h;
  return CUBLAS_STATUS_SUCCESS;
}

static cublasStatus_t blas_set_stream(cublasHandle_t h, cudaStream_t s) {
  (void)h, (void)s;
  return CUBLAS_STATUS_SUCCESS;
}

static cublasStatus_t blas_gemm_ex(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb,
                                   int m, int n, int k, const void *alpha, const void *a,
                                   cudaDataType at, int lda, const void *b, cudaDataType bt,
                                   int ldb, const void *beta, void *c, cudaDataType ct, int ldc,
                                   cublasComputeType_t compute, cublasGemmAlgo_t algo) {
  (void)h, (void)ta, (void)tb, (void)m, (void)n, (void)k, (void)alpha, (void)a, (void)at, (void)lda,
      (void)b, (void)bt, (void)ldb, (void)beta, (void)c, (void)ct, (void)ldc, (void)compute,
      (void)algo;
  return CUBLAS_STATUS_SUCCESS;
}

static const char *blas_status_string(cublasStatus_t status) {
  return status == CUBLAS_STATUS_SUCCESS ? "CUBLAS_STATUS_SUCCESS" : "cuBLAS error (plan)";
}

static cublasStatus_t lt_create(cublasLtHandle_t *h) {
  *h = fake_handle();
  return CUBLAS_STATUS_SUCCESS;
}

/* Descriptors, layouts and preferences are plain zeroed opaque structs. */
static cublasStatus_t lt_desc_create(cublasLtMatmulDesc_t *d, cublasComputeType_t c,
                                     cudaDataType_t s) {
  (void)c, (void)s;
  *d = g_new0(cublasLtMatmulDescOpaque_t, 1);
  return CUBLAS_STATUS_SUCCESS;
}

static cublasStatus_t lt_layout_create(cublasLtMatrixLayout_t *l, cudaDataType t, uint64_t rows,
                                       uint64_t cols, int64_t ld) {
  (void)t, (void)rows, (void)cols, (void)ld;
  *l = g_new0(cublasLtMatrixLayoutOpaque_t, 1);
  return CUBLAS_STATUS_SUCCESS;
}

static cublasStatus_t lt_pref_create(cublasLtMatmulPreference_t *p) {
  *p = g_new0(cublasLtMatmulPreferenceOpaque_t, 1);
  return CUBLAS_STATUS_SUCCESS;
}

static cublasStatus_t lt_destroy(void *obj) {
  g_free(obj);
  return CUBLAS_STATUS_SUCCESS;
}

static cublasStatus_t lt_set_attribute(void *obj, int attr, const void *buf, size_t size) {
  (void)obj, (void)attr, (void)buf, (void)size;
  return CUBLAS_STATUS_SUCCESS;
}

/* One algorithm that needs no workspace beyond the backend's persistent one. */
static cublasStatus_t lt_heuristic(cublasLtHandle_t h, cublasLtMatmulDesc_t d,
                                   cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                                   cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t dl,
                                   cublasLtMatmulPreference_t p, int requested,
                                   cublasLtMatmulHeuristicResult_t *results, int *count) {
  (void)h, (void)d, (void)a, (void)b, (void)c, (void)dl, (void)p;
  if (requested < 1) return CUBLAS_STATUS_INVALID_VALUE;
  memset(results, 0, sizeof *results);
  results[0].state = CUBLAS_STATUS_SUCCESS;
  *count = 1;
  return CUBLAS_STATUS_SUCCESS;
}

static cublasStatus_t lt_matmul(cublasLtHandle_t h, cublasLtMatmulDesc_t d, const void *alpha,
                                const void *a, cublasLtMatrixLayout_t al, const void *b,
                                cublasLtMatrixLayout_t bl, const void *beta, const void *c,
                                cublasLtMatrixLayout_t cl, void *dp, cublasLtMatrixLayout_t dl,
                                const cublasLtMatmulAlgo_t *algo, void *ws, size_t ws_bytes,
                                cudaStream_t s) {
  (void)h, (void)d, (void)alpha, (void)a, (void)al, (void)b, (void)bl, (void)beta, (void)c,
      (void)cl, (void)dp, (void)dl, (void)algo, (void)ws, (void)ws_bytes, (void)s;
  return CUBLAS_STATUS_SUCCESS;
}

/* ---- cuDNN ---- */

struct cudnnTensorStruct {
  int n, c, h, w;
};
struct cudnnFilterStruct {
  int k, c, h, w;
};
struct cudnnConvolutionStruct {
  int unused;
};

static cudnnStatus_t dnn_create(cudnnHandle_t *h) {
  *h = fake_handle();
  return CUDNN_STATUS_SUCCESS;
}

static cudnnStatus_t dnn_handle_op(void *h) {
  (void)h;
  return CUDNN_STATUS_SUCCESS;
}

static cudnnStatus_t dnn_set_stream(cudnnHandle_t h, cudaStream_t s) {
  (void)h, (void)s;
  return CUDNN_STATUS_SUCCESS;
}

static const char *dnn_error_string(cudnnStatus_t status) {
  return status == CUDNN_STATUS_SUCCESS ? "CUDNN_STATUS_SUCCESS" : "cuDNN error (plan)";
}

static cudnnStatus_t dnn_create_tensor(cudnnTensorDescriptor_t *d) {
  *d = g_new0(struct cudnnTensorStruct, 1);
  return CUDNN_STATUS_SUCCESS;
}

static cudnnStatus_t dnn_set_tensor_4d(cudnnTensorDescriptor_t d, cudnnTensorFormat_t f,
                                       cudnnDataType_t t, int n, int c, int h, int w) {
  (void)f, (void)t;
  *d = (struct cudnnTensorStruct){n, c, h, w};
  return CUDNN_STATUS_SUCCESS;
}

static cudnnStatus_t dnn_create_filter(cudnnFilterDescriptor_t *d) {
  *d = g_new0(struct cudnnFilterStruct, 1);
  return CUDNN_STATUS_SUCCESS;
}

static cudnnStatus_t dnn_set_filter_4d(cudnnFilterDescriptor_t d, cudnnDataType_t t,
                                       cudnnTensorFormat_t f, int k, int c, int h, int w) {
  (void)t, (void)f;
  *d = (struct cudnnFilterStruct){k, c, h, w};
  return CUDNN_STATUS_SUCCESS;
}

static cudnnStatus_t dnn_create_conv(cudnnConvolutionDescriptor_t *d) {
  *d = g_new0(struct cudnnConvolutionStruct, 1);
  return CUDNN_STATUS_SUCCESS;
}

static cudnnStatus_t dnn_set_conv_2d(cudnnConvolutionDescriptor_t d, int pad_h, int pad_w, int u,
                                     int v, int dil_h, int dil_w, cudnnConvolutionMode_t mode,
                                     cudnnDataType_t compute) {
  (void)d, (void)pad_h, (void)pad_w, (void)u, (void)v, (void)dil_h, (void)dil_w, (void)mode,
      (void)compute;
  return CUDNN_STATUS_SUCCESS;
}

static cudnnStatus_t dnn_set_conv_math(cudnnConvolutionDescriptor_t d, cudnnMathType_t m) {
  (void)d, (void)m;
  return CUDNN_STATUS_SUCCESS;
}

static cudnnStatus_t dnn_destroy(void *d) {
  g_free(d);
  return CUDNN_STATUS_SUCCESS;
}

/* The ranking: implicit-precomputed GEMM with its offset table (conv_workspace.h). */
static cudnnStatus_t dnn_fwd_algos(cudnnHandle_t h, cudnnTensorDescriptor_t x,
                                   cudnnFilterDescriptor_t w, cudnnConvolutionDescriptor_t conv,
                                   cudnnTensorDescriptor_t y, int requested, int *returned,
                                   cudnnConvolutionFwdAlgoPerf_t *perf) {
  (void)h, (void)x, (void)conv, (void)y;
  if (requested < 1) return CUDNN_STATUS_BAD_PARAM;
  memset(perf, 0, sizeof *perf);
  perf[0].algo = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM;
  perf[0].status = CUDNN_STATUS_SUCCESS;
  perf[0].time = -1;
  perf[0].memory = i2v_conv_precomp_workspace(w->h, w->w, w->c);
  *returned = 1;
  return CUDNN_STATUS_SUCCESS;
}

static cudnnStatus_t dnn_conv_fwd(cudnnHandle_t h, const void *alpha, cudnnTensorDescriptor_t xd,
                                  const void *x, cudnnFilterDescriptor_t wd, const void *w,
                                  cudnnConvolutionDescriptor_t cd, cudnnConvolutionFwdAlgo_t algo,
                                  void *ws, size_t ws_bytes, const void *beta,
                                  cudnnTensorDescriptor_t yd, void *y) {
  (void)h, (void)alpha, (void)xd, (void)x, (void)wd, (void)w, (void)cd, (void)algo, (void)ws,
      (void)ws_bytes, (void)beta, (void)yd, (void)y;
  return CUDNN_STATUS_SUCCESS;
}

/* ---- dlopen / dlsym ---- */

typedef struct {
  const char *name;
  void *fn;
} PlanSymbol;

static const PlanSymbol symbols[] = {
    {"cublasCreate_v2", blas_create},
    {"cublasDestroy_v2", blas_handle_op},
    {"cublasSetStream_v2", blas_set_stream},
    {"cublasGemmEx", blas_gemm_ex},
    {"cublasGetStatusString", blas_status_string},
    {"cublasLtCreate", lt_create},
    {"cublasLtDestroy", blas_handle_op},
    {"cublasLtMatmulDescCreate", lt_desc_create},
    {"cublasLtMatmulDescDestroy", lt_destroy},
    {"cublasLtMatmulDescSetAttribute", lt_set_attribute},
    {"cublasLtMatrixLayoutCreate", lt_layout_create},
    {"cublasLtMatrixLayoutDestroy", lt_destroy},
    {"cublasLtMatmulPreferenceCreate", lt_pref_create},
    {"cublasLtMatmulPreferenceDestroy", lt_destroy},
    {"cublasLtMatmulPreferenceSetAttribute", lt_set_attribute},
    {"cublasLtMatmulAlgoGetHeuristic", lt_heuristic},
    {"cublasLtMatmul", lt_matmul},
    {"cudnnCreate", dnn_create},
    {"cudnnDestroy", dnn_handle_op},
    {"cudnnSetStream", dnn_set_stream},
    {"cudnnGetErrorString", dnn_error_string},
    {"cudnnCreateTensorDescriptor", dnn_create_tensor},
    {"cudnnSetTensor4dDescriptor", dnn_set_tensor_4d},
    {"cudnnDestroyTensorDescriptor", dnn_destroy},
    {"cudnnCreateFilterDescriptor", dnn_create_filter},
    {"cudnnSetFilter4dDescriptor", dnn_set_filter_4d},
    {"cudnnDestroyFilterDescriptor", dnn_destroy},
    {"cudnnCreateConvolutionDescriptor", dnn_create_conv},
    {"cudnnSetConvolution2dDescriptor", dnn_set_conv_2d},
    {"cudnnSetConvolutionMathType", dnn_set_conv_math},
    {"cudnnDestroyConvolutionDescriptor", dnn_destroy},
    {"cudnnGetConvolutionForwardAlgorithm_v7", dnn_fwd_algos},
    {"cudnnConvolutionForward", dnn_conv_fwd},
};

/* Every library the backend opens is "there": the stand-ins above answer for all of them. */
void *i2v_plan_dlopen(const char *file, int mode) {
  (void)file, (void)mode;
  return (void *)symbols;
}

void *i2v_plan_dlsym(void *handle, const char *name) {
  (void)handle;
  for (guint i = 0; i < G_N_ELEMENTS(symbols); i++)
    if (strcmp(symbols[i].name, name) == 0) return symbols[i].fn;
  return NULL;
}
