/* The CUDA backend's host-side internals, shared by cuda_backend.c (memory, setup), cuda_ops.c
 * (the op table) and cuda_gemm.c (GEMM-based ops). */
#pragma once

#include <cublas_api.h>

#include "arena.h"
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

typedef struct {
  int device;
  char name[32]; /* "cuda:N" */
  cudaStream_t stream;
  cublasHandle_t cublas;
  const CublasApi *blas;
  I2vArena arena;
} CudaPriv;

/* Makes `be`'s device current for the calling thread (models may run on another thread than the
 * one that made the backend) and returns its state. */
CudaPriv *cuda_enter(I2vBackend *be);

/* TRUE if status is success; else records "<name>: <call> failed at file:line: <reason>" as the
 * sticky error (I2V_ERROR_NO_MEMORY for cudaErrorMemoryAllocation) and returns FALSE. */
gboolean cuda_check(I2vBackend *be, cudaError_t status, const char *call, const char *file,
                    int line);
gboolean cublas_check(I2vBackend *be, cublasStatus_t status, const char *call, const char *file,
                      int line);
#define CUDA_OK(be, call) cuda_check((be), (call), #call, __FILE__, __LINE__)
#define CUBLAS_OK(be, call) cublas_check((be), (call), #call, __FILE__, __LINE__)

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

/* Scratch device memory for an op's workspace (the caller brackets it with
 * i2v_scratch_mark/release); on failure sets the sticky error and returns NULL. */
void *cuda_scratch(I2vBackend *be, size_t bytes);

/* t's data as dtype dt: t itself, or a converted copy in scratch. FALSE (error set) on failure. */
gboolean cuda_operand_as(I2vBackend *be, const I2vTensor *t, I2vDType dt, CuBuf *out);

/* cuda_gemm.c */
void cuda_linear(I2vBackend *be, I2vTensor *y, const I2vTensor *x, const I2vTensor *w,
                 const I2vTensor *b, I2vAct act, gboolean accumulate);
void cuda_conv2d(I2vBackend *be, I2vTensor *y, const I2vTensor *x, const I2vTensor *w,
                 const I2vTensor *b, const I2vConvParams *p, gboolean accumulate);
void cuda_conv_frames(I2vBackend *be, I2vTensor *y, const I2vTensor *x, const I2vTensor *w,
                      const I2vTensor *b, gboolean accumulate);

/* cuda_ops.c */
extern const I2vOps i2v_cuda_ops;
