/* The CUDA backend's host-side internals, shared by cuda_backend.c (memory, setup), cuda_ops.c
 * (the op table), cuda_gemm.c (the one GEMM helper on cuBLASLt, linear) and cuda_conv.c
 * (convolutions on cuDNN, or GEMMs). */
#pragma once

#include <cublasLt.h>
#include <cublas_api.h>
/* cuDNN's legacy convolution API (cudnn_cnn.h, cudnn_ops.h): still shipped in cuDNN 9 and marked
 * CUDNN_DEPRECATED, which expands to nothing unless CUDNN_WARN_DEPRECATED is defined (we do not),
 * so no warning needs silencing. */
#include <cudnn_cnn.h>

#include "backend_impl.h"
#include "cuda_backend.h"
#include "kernels.h"

/* The cuBLAS entry points, resolved with dlsym when the first backend is made. */
typedef struct {
  __typeof__(cublasCreate_v2) *create;
  __typeof__(cublasDestroy_v2) *destroy;
  __typeof__(cublasSetStream_v2) *set_stream;
  __typeof__(cublasGemmEx) *gemm_ex;
  __typeof__(cublasGetStatusString) *status_string;
} CublasApi;

/* The cuBLASLt entry points, resolved with dlsym next to cuBLAS (which itself needs cuBLASLt). */
typedef struct {
  __typeof__(cublasLtCreate) *create;
  __typeof__(cublasLtDestroy) *destroy;
  __typeof__(cublasLtMatmulDescCreate) *desc_create;
  __typeof__(cublasLtMatmulDescDestroy) *desc_destroy;
  __typeof__(cublasLtMatmulDescSetAttribute) *desc_set;
  __typeof__(cublasLtMatrixLayoutCreate) *layout_create;
  __typeof__(cublasLtMatrixLayoutDestroy) *layout_destroy;
  __typeof__(cublasLtMatmulPreferenceCreate) *pref_create;
  __typeof__(cublasLtMatmulPreferenceDestroy) *pref_destroy;
  __typeof__(cublasLtMatmulPreferenceSetAttribute) *pref_set;
  __typeof__(cublasLtMatmulAlgoGetHeuristic) *heuristic;
  __typeof__(cublasLtMatmul) *matmul;
} CublasLtApi;

/* cuBLASLt's workspace: one per stream, allocated with it. */
#define CUDA_LT_WORKSPACE_BYTES ((size_t)32 << 20)

/* The cuDNN entry points (legacy convolution API), resolved with dlsym on first use. */
typedef struct {
  __typeof__(cudnnCreate) *create;
  __typeof__(cudnnDestroy) *destroy;
  __typeof__(cudnnSetStream) *set_stream;
  __typeof__(cudnnGetErrorString) *error_string;
  __typeof__(cudnnCreateTensorDescriptor) *create_tensor;
  __typeof__(cudnnSetTensor4dDescriptor) *set_tensor_4d;
  __typeof__(cudnnDestroyTensorDescriptor) *destroy_tensor;
  __typeof__(cudnnCreateFilterDescriptor) *create_filter;
  __typeof__(cudnnSetFilter4dDescriptor) *set_filter_4d;
  __typeof__(cudnnDestroyFilterDescriptor) *destroy_filter;
  __typeof__(cudnnCreateConvolutionDescriptor) *create_conv;
  __typeof__(cudnnSetConvolution2dDescriptor) *set_conv_2d;
  __typeof__(cudnnSetConvolutionMathType) *set_conv_math;
  __typeof__(cudnnDestroyConvolutionDescriptor) *destroy_conv;
  __typeof__(cudnnGetConvolutionForwardAlgorithm_v7) *fwd_algos;
  __typeof__(cudnnConvolutionForward) *conv_fwd;
} CudnnApi;

/* The device (I2vBackend.priv): shared by every stream, read-only once made. */
typedef struct {
  int device;
  char name[32]; /* "cuda:N" */
  const CublasApi *blas;
  const CublasLtApi *lt_api;
} CudaDevice;

/* One stream's state (I2vStream.priv): the CUDA stream and everything a run on it writes, so that
 * streams on one device run at the same time without sharing a handle, workspace or cache. */
typedef struct {
  int device;
  cudaStream_t stream;
  cublasHandle_t cublas;
  const CublasApi *blas;
  cublasLtHandle_t lt;
  const CublasLtApi *lt_api;
  void *lt_workspace;     /* CUDA_LT_WORKSPACE_BYTES of device memory */
  GHashTable *gemm_plans; /* GemmKey → GemmPlan (cuda_gemm.c) */
  /* cuDNN for convolutions: dnn is NULL when it is not used (missing, I2V_CUDA_CONV=im2col, or
   * its handle failed), and convolutions run through GEMMs; conv_plans caches a ConvPlan per
   * problem (cuda_conv.c) */
  cudnnHandle_t cudnn;
  const CudnnApi *dnn;
  GHashTable *conv_plans;
} CudaStream;

/* Makes st's device current for the calling thread (a stream may run on another thread than the
 * one that made the backend) and returns the stream's state. */
CudaStream *i2v_cuda_enter(I2vStream *st);

/* TRUE if status is success; else records "<name>: <call> failed at file:line: <reason>" as the
 * stream's sticky error (I2V_ERROR_NO_MEMORY for cudaErrorMemoryAllocation) and returns FALSE. */
gboolean i2v_cuda_check(I2vStream *st, cudaError_t status, const char *call, const char *file,
                        int line);
gboolean i2v_cublas_check(I2vStream *st, cublasStatus_t status, const char *call, const char *file,
                          int line);
#define CUDA_OK(st, call) i2v_cuda_check((st), (call), #call, __FILE__, __LINE__)
#define CUBLAS_OK(st, call) i2v_cublas_check((st), (call), #call, __FILE__, __LINE__)

/* The kernels' view of a tensor (data and dtype). */
static inline CuBuf cu_buf(const I2vTensor *t) {
  CuBuf b = {t->data, (int)t->dtype};
  return b;
}

/* b advanced by `elems` elements. */
static inline CuBuf cu_buf_at(CuBuf b, int64_t elems) {
  size_t es = b.dt == CU_F32 ? 4 : 2;
  b.p = (char *)b.p + (size_t)elems * es;
  return b;
}

/* b's data, or none (p NULL) when there is no bias. */
static inline CuBuf cu_bias_buf(const I2vTensor *b) {
  CuBuf none = {NULL, CU_F32};
  return b != NULL ? cu_buf(b) : none;
}

/* t's data as dtype dt: t itself, or a converted copy in scratch. FALSE (error set) on failure. */
gboolean i2v_cuda_operand_as(I2vStream *st, const I2vTensor *t, I2vDType dt, CuBuf *out);

/* Caches of per-problem plans (cuBLASLt GEMMs, cuDNN convolutions), keyed by the bytes of a
 * fixed-size key struct (memset before filling: padding counts): a new empty cache that frees
 * plans with plan_free; free with g_hash_table_destroy. */
GHashTable *i2v_cuda_plan_cache_new(GDestroyNotify plan_free);
/* The plan cached under the key_size bytes at key, or NULL. */
gpointer i2v_cuda_plan_lookup(GHashTable *cache, const void *key, size_t key_size);
/* Caches plan (owned by the cache from now on) under a copy of key. */
void i2v_cuda_plan_insert(GHashTable *cache, const void *key, size_t key_size, gpointer plan);

/* The cuDNN table, or NULL when libcudnn.so.9 cannot be loaded (logged once with g_message); the
 * library stays loaded for the process. */
const CudnnApi *i2v_cuda_cudnn_api(void);

/* cuda_gemm.c: the one GEMM entry point (linear and the convolutions' GEMM paths).
 * y[M,N] (+)= act(x[M,K]·w[N,K]ᵀ + b[N]) with row strides ldy, ldx, ldw (elements); x and w share
 * a dtype, y is that dtype or F32; b.p may be NULL. Errors go to the sticky error. */
void i2v_cuda_gemm_xwt(I2vStream *st, CuBuf y, int64_t ldy, CuBuf x, int64_t ldx, CuBuf w,
                       int64_t ldw, int64_t M, int64_t N, int64_t K, CuBuf b, gboolean accumulate,
                       I2vAct act);
/* The cache of cuBLASLt plans that i2v_cuda_gemm_xwt fills: an empty table; free with
 * g_hash_table_destroy (destroys the plans' descriptors). */
GHashTable *i2v_cuda_gemm_plans_new(void);
void i2v_cuda_linear(I2vStream *st, I2vTensor *y, const I2vTensor *x, const I2vTensor *w,
                     const I2vTensor *b, I2vAct act, gboolean accumulate);

/* cuda_conv.c */
/* Sets up cuDNN for st's convolutions (a handle on st's stream, a plan cache) unless cuDNN is
 * missing or I2V_CUDA_CONV=im2col; then convolutions use the GEMM paths. Never fails. */
void i2v_cuda_conv_init(I2vStream *st);
/* Frees what i2v_cuda_conv_init made. */
void i2v_cuda_conv_fini(CudaStream *p);
void i2v_cuda_conv2d(I2vStream *st, I2vTensor *y, const I2vTensor *x, const I2vTensor *w,
                     const I2vTensor *b, const I2vConvParams *p, gboolean accumulate);
void i2v_cuda_conv_frames(I2vStream *st, I2vTensor *y, const I2vTensor *x, const I2vTensor *w,
                          const I2vTensor *b, gboolean accumulate);

/* cuda_attention.c: the attention op (fused kernels, or GEMMs for heads wider than they take). */
void i2v_cuda_attention(I2vStream *st, const I2vSeqView *out, const I2vSeqView *q,
                        const I2vSeqView *k, const I2vSeqView *v, const I2vAttnShape *s);

/* cuda_ops.c */
extern const I2vOps i2v_cuda_ops;
