// A stand-in libcudnn.so.9 for the simulator: the legacy convolution entry points the CUDA backend
// dlopen()s (cuda/cuda_backend.c), with cudnnConvolutionForward as a direct loop in float. It
// follows the cuDNN 9 API reference for these calls and refuses what it documents as refused, so
// that host-side mistakes fail here instead of on a GPU:
//   - a descriptor used before it is set, NULL handles/pointers, a negative dimension, a bad enum:
//     CUDNN_STATUS_BAD_PARAM;
//   - a tensor of more than 2^31 - 1 elements: NOT_SUPPORTED (cudnnSetTensor4dDescriptor);
//   - x, w, y of different data types, x channels ≠ filter channels, batch or output channels of y
//     ≠ those of x and w, a filter larger than the padded input: BAD_PARAM;
//   - y's spatial size other than 1 + (in + 2·pad − ((k − 1)·dilation + 1)) / stride:
//     NOT_SUPPORTED; a compute type other than FLOAT for FLOAT/BFLOAT16 data: NOT_SUPPORTED;
//   - a workspace smaller than the algorithm's size (as reported by
//     cudnnGetConvolutionForwardAlgorithm_v7): BAD_PARAM;
//   - CUDNN_CONVOLUTION flips the kernel (true convolution), CUDNN_CROSS_CORRELATION does not;
//     filters are [K,C,R,S] in NCHW format and [K,R,S,C] in NHWC; y = alpha·conv + beta·y, and y
//     is not read when beta is 0 (so NaN there does not leak, as documented);
//   - FLOAT data under DEFAULT_MATH or TENSOR_OP_MATH may run on TF32 tensor cores on Ampere and
//     later, so the simulator rounds x and w to TF32 then: only CUDNN_FMA_MATH keeps fp32 exact.
// Not modelled: the real algorithms, their choice and speed (a fixed ranking with made-up
// workspace sizes: a Winograd entry whose workspace no caller can give comes first for 3×3
// stride-1 problems, so a caller that ignores the size fails), per-algorithm NOT_SUPPORTED beyond
// FFT's NCHW-only rule, mixed NCHW/NHWC operands (refused here: NOT_SUPPORTED), true-half compute
// (refused: NOT_SUPPORTED), dilation > 1 in the heuristic's sizes, streams (everything runs at
// once on the calling thread, like cudart_sim.cpp), pointer alignment rules.
#include <atomic>
#include <cudnn_cnn.h>

#include <climits>
#include <cstdint>
#include <cstring>

#include "conv_workspace.h"
#include "sim_values.h"

struct cudnnContext {
  int token;
};
struct cudnnTensorStruct {
  bool set;
  cudnnTensorFormat_t format;
  cudnnDataType_t type;
  int n, c, h, w;
};
struct cudnnFilterStruct {
  bool set;
  cudnnTensorFormat_t format;
  cudnnDataType_t type;
  int k, c, h, w;
};
struct cudnnConvolutionStruct {
  bool set;
  int pad_h, pad_w, u, v, dil_h, dil_w;
  cudnnConvolutionMode_t mode;
  cudnnDataType_t compute;
  cudnnMathType_t math;
};

namespace {

std::atomic<long> forward_calls;                             // read by the tests: cudnnsim_forward_count
std::atomic<cudnnStatus_t> fail_next{CUDNN_STATUS_SUCCESS}; // set by the tests: cudnnsim_fail_next

bool known_type(cudnnDataType_t t) {
  return t == CUDNN_DATA_FLOAT || t == CUDNN_DATA_HALF || t == CUDNN_DATA_BFLOAT16 ||
         t == CUDNN_DATA_DOUBLE || t == CUDNN_DATA_INT8 || t == CUDNN_DATA_INT32;
}
bool simulated_type(cudnnDataType_t t) {
  return t == CUDNN_DATA_FLOAT || t == CUDNN_DATA_HALF || t == CUDNN_DATA_BFLOAT16;
}
bool known_format(cudnnTensorFormat_t f) {
  return f == CUDNN_TENSOR_NCHW || f == CUDNN_TENSOR_NHWC;
}

size_t type_size(cudnnDataType_t t) {
  return t == CUDNN_DATA_FLOAT ? 4 : 2;
}

SimType sim_type(cudnnDataType_t t) {
  return t == CUDNN_DATA_HALF ? SIM_F16 : t == CUDNN_DATA_BFLOAT16 ? SIM_BF16 : SIM_F32;
}

float load(const void *p, cudnnDataType_t t, size_t i) {
  return sim_load(p, sim_type(t), i);
}

void store(void *p, cudnnDataType_t t, size_t i, float v) {
  sim_store(p, sim_type(t), i, v);
}

// v rounded to TF32 (10 explicit mantissa bits, round to nearest).
float tf32(float v) {
  uint32_t u;
  memcpy(&u, &v, 4);
  u = (u + 0x1000u) & ~0x1fffu;
  memcpy(&v, &u, 4);
  return v;
}

// Element offset of (n, c, h, w) in a packed 4-D tensor of format f.
size_t offset(cudnnTensorFormat_t f, int C, int H, int W, int n, int c, int h, int w) {
  if (f == CUDNN_TENSOR_NHWC) return (((size_t)n * H + h) * W + w) * C + c;
  return (((size_t)n * C + c) * H + h) * W + w;
}

int out_dim(int in, int pad, int k, int dil, int stride) {
  return 1 + (in + 2 * pad - ((k - 1) * dil + 1)) / stride;
}

// The checks cudnnConvolutionForward and cudnnGetConvolutionForwardAlgorithm_v7 share.
cudnnStatus_t check_problem(cudnnHandle_t handle, const cudnnTensorStruct *x,
                            const cudnnFilterStruct *w, const cudnnConvolutionStruct *conv,
                            const cudnnTensorStruct *y) {
  if (handle == nullptr || x == nullptr || w == nullptr || conv == nullptr || y == nullptr)
    return CUDNN_STATUS_BAD_PARAM;
  if (!x->set || !w->set || !conv->set || !y->set) return CUDNN_STATUS_BAD_PARAM;
  if (x->type != w->type || x->type != y->type) return CUDNN_STATUS_BAD_PARAM;
  if (x->c != w->c || y->n != x->n || y->c != w->k) return CUDNN_STATUS_BAD_PARAM;
  if ((w->h - 1) * conv->dil_h + 1 > x->h + 2 * conv->pad_h ||
      (w->w - 1) * conv->dil_w + 1 > x->w + 2 * conv->pad_w)
    return CUDNN_STATUS_BAD_PARAM;
  if (y->h != out_dim(x->h, conv->pad_h, w->h, conv->dil_h, conv->u) ||
      y->w != out_dim(x->w, conv->pad_w, w->w, conv->dil_w, conv->v))
    return CUDNN_STATUS_NOT_SUPPORTED;
  if (conv->compute != CUDNN_DATA_FLOAT) return CUDNN_STATUS_NOT_SUPPORTED;
  if (!simulated_type(x->type) || x->format != w->format || x->format != y->format)
    return CUDNN_STATUS_NOT_SUPPORTED;
  return CUDNN_STATUS_SUCCESS;
}

// The simulator's algorithm ranking for a problem: (algo, status, workspace bytes).
struct Ranked {
  cudnnConvolutionFwdAlgo_t algo;
  cudnnStatus_t status;
  size_t memory;
};
int ranking(const cudnnTensorStruct *x, const cudnnFilterStruct *w,
            const cudnnConvolutionStruct *conv, const cudnnTensorStruct *y, Ranked out[4]) {
  int n = 0;
  bool winograd = w->h == 3 && w->w == 3 && conv->u == 1 && conv->v == 1;
  if (winograd)
    out[n++] = {CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED, CUDNN_STATUS_SUCCESS,
                (size_t)1 << 40};
  out[n++] = {CUDNN_CONVOLUTION_FWD_ALGO_FFT,
              x->format == CUDNN_TENSOR_NCHW ? CUDNN_STATUS_SUCCESS : CUDNN_STATUS_NOT_SUPPORTED,
              0};
  out[n++] = {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, CUDNN_STATUS_SUCCESS,
              i2v_conv_precomp_workspace(w->h, w->w, w->c)};
  out[n++] = {CUDNN_CONVOLUTION_FWD_ALGO_GEMM, CUDNN_STATUS_SUCCESS,
              type_size(x->type) * (size_t)y->h * y->w * w->h * w->w * w->c};
  return n;
}

} // namespace

extern "C" {

// Simulator only (not cuDNN API): how many cudnnConvolutionForward calls succeeded so far.
long cudnnsim_forward_count(void) {
  return forward_calls;
}
// Simulator only: the next cudnnConvolutionForward returns st without running (fault injection).
void cudnnsim_fail_next(cudnnStatus_t st) {
  fail_next = st;
}

cudnnStatus_t cudnnCreate(cudnnHandle_t *handle) {
  if (handle == nullptr) return CUDNN_STATUS_BAD_PARAM;
  *handle = new cudnnContext();
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroy(cudnnHandle_t handle) {
  delete handle;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetStream(cudnnHandle_t handle, cudaStream_t) {
  return handle != nullptr ? CUDNN_STATUS_SUCCESS : CUDNN_STATUS_BAD_PARAM;
}
const char *cudnnGetErrorString(cudnnStatus_t status) {
  switch (status) {
  case CUDNN_STATUS_SUCCESS:
    return "CUDNN_STATUS_SUCCESS";
  case CUDNN_STATUS_BAD_PARAM:
    return "CUDNN_STATUS_BAD_PARAM";
  case CUDNN_STATUS_NOT_SUPPORTED:
    return "CUDNN_STATUS_NOT_SUPPORTED";
  case CUDNN_STATUS_EXECUTION_FAILED:
    return "CUDNN_STATUS_EXECUTION_FAILED";
  default:
    return "CUDNN_STATUS (simulated, unnamed)";
  }
}

cudnnStatus_t cudnnCreateTensorDescriptor(cudnnTensorDescriptor_t *d) {
  if (d == nullptr) return CUDNN_STATUS_BAD_PARAM;
  *d = new cudnnTensorStruct();
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroyTensorDescriptor(cudnnTensorDescriptor_t d) {
  delete d;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetTensor4dDescriptor(cudnnTensorDescriptor_t d, cudnnTensorFormat_t format,
                                         cudnnDataType_t type, int n, int c, int h, int w) {
  if (d == nullptr || !known_format(format) || !known_type(type) || n <= 0 || c <= 0 || h <= 0 ||
      w <= 0)
    return CUDNN_STATUS_BAD_PARAM;
  if ((int64_t)n * c * h * w > INT_MAX) return CUDNN_STATUS_NOT_SUPPORTED;
  *d = {true, format, type, n, c, h, w};
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnCreateFilterDescriptor(cudnnFilterDescriptor_t *d) {
  if (d == nullptr) return CUDNN_STATUS_BAD_PARAM;
  *d = new cudnnFilterStruct();
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroyFilterDescriptor(cudnnFilterDescriptor_t d) {
  delete d;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetFilter4dDescriptor(cudnnFilterDescriptor_t d, cudnnDataType_t type,
                                         cudnnTensorFormat_t format, int k, int c, int h, int w) {
  if (d == nullptr || !known_format(format) || !known_type(type) || k <= 0 || c <= 0 || h <= 0 ||
      w <= 0)
    return CUDNN_STATUS_BAD_PARAM;
  if ((int64_t)k * c * h * w > INT_MAX) return CUDNN_STATUS_NOT_SUPPORTED;
  *d = {true, format, type, k, c, h, w};
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnCreateConvolutionDescriptor(cudnnConvolutionDescriptor_t *d) {
  if (d == nullptr) return CUDNN_STATUS_BAD_PARAM;
  *d = new cudnnConvolutionStruct();
  (*d)->math = CUDNN_DEFAULT_MATH;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroyConvolutionDescriptor(cudnnConvolutionDescriptor_t d) {
  delete d;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolution2dDescriptor(cudnnConvolutionDescriptor_t d, int pad_h, int pad_w,
                                              int u, int v, int dil_h, int dil_w,
                                              cudnnConvolutionMode_t mode,
                                              cudnnDataType_t compute) {
  if (d == nullptr || pad_h < 0 || pad_w < 0 || u <= 0 || v <= 0 || dil_h <= 0 || dil_w <= 0 ||
      (mode != CUDNN_CONVOLUTION && mode != CUDNN_CROSS_CORRELATION) || !known_type(compute))
    return CUDNN_STATUS_BAD_PARAM;
  cudnnMathType_t math = d->math;
  *d = {true, pad_h, pad_w, u, v, dil_h, dil_w, mode, compute, math};
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t d, cudnnMathType_t math) {
  if (d == nullptr || (math != CUDNN_DEFAULT_MATH && math != CUDNN_TENSOR_OP_MATH &&
                       math != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION && math != CUDNN_FMA_MATH))
    return CUDNN_STATUS_BAD_PARAM;
  d->math = math;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionForwardAlgorithm_v7(
    cudnnHandle_t handle, const cudnnTensorDescriptor_t x, const cudnnFilterDescriptor_t w,
    const cudnnConvolutionDescriptor_t conv, const cudnnTensorDescriptor_t y, const int requested,
    int *returned, cudnnConvolutionFwdAlgoPerf_t *perf) {
  if (returned == nullptr || perf == nullptr || requested <= 0) return CUDNN_STATUS_BAD_PARAM;
  cudnnStatus_t st = check_problem(handle, x, w, conv, y);
  if (st != CUDNN_STATUS_SUCCESS) return st;
  Ranked r[4];
  int n = ranking(x, w, conv, y, r);
  *returned = n < requested ? n : requested;
  for (int i = 0; i < *returned; i++) {
    perf[i] = cudnnConvolutionFwdAlgoPerf_t();
    perf[i].algo = r[i].algo;
    perf[i].status = r[i].status;
    perf[i].time = -1; // a heuristic, not a measurement
    perf[i].memory = r[i].memory;
    perf[i].determinism = CUDNN_DETERMINISTIC;
    perf[i].mathType = conv->math;
  }
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnConvolutionForward(cudnnHandle_t handle, const void *alpha,
                                      const cudnnTensorDescriptor_t xd, const void *x,
                                      const cudnnFilterDescriptor_t wd, const void *w,
                                      const cudnnConvolutionDescriptor_t cd,
                                      cudnnConvolutionFwdAlgo_t algo, void *workspace,
                                      size_t workspace_bytes, const void *beta,
                                      const cudnnTensorDescriptor_t yd, void *y) {
  if (alpha == nullptr || beta == nullptr || x == nullptr || w == nullptr || y == nullptr)
    return CUDNN_STATUS_BAD_PARAM;
  cudnnStatus_t st = check_problem(handle, xd, wd, cd, yd);
  if (st != CUDNN_STATUS_SUCCESS) return st;
  Ranked r[4];
  int n = ranking(xd, wd, cd, yd, r), i = 0;
  while (i < n && r[i].algo != algo) i++;
  if (i == n || r[i].status != CUDNN_STATUS_SUCCESS) return CUDNN_STATUS_NOT_SUPPORTED;
  if (workspace_bytes < r[i].memory || (r[i].memory > 0 && workspace == nullptr))
    return CUDNN_STATUS_BAD_PARAM;
  // the algorithm owns its workspace: scribble over it, so a workspace that overlaps live data
  // shows (and a too-small allocation trips the sanitizers)
  if (r[i].memory > 0) memset(workspace, 0xff, r[i].memory);
  if (fail_next != CUDNN_STATUS_SUCCESS) {
    cudnnStatus_t injected = fail_next.exchange(CUDNN_STATUS_SUCCESS);
    return injected;
  }

  const float al = *static_cast<const float *>(alpha), be = *static_cast<const float *>(beta);
  const bool fp32_tf32 = xd->type == CUDNN_DATA_FLOAT && cd->math != CUDNN_FMA_MATH;
  const cudnnTensorFormat_t f = xd->format;
  for (int in = 0; in < yd->n; in++)
    for (int k = 0; k < yd->c; k++)
      for (int oh = 0; oh < yd->h; oh++)
        for (int ow = 0; ow < yd->w; ow++) {
          float acc = 0;
          for (int c = 0; c < wd->c; c++)
            for (int r0 = 0; r0 < wd->h; r0++)
              for (int s0 = 0; s0 < wd->w; s0++) {
                int ih = oh * cd->u - cd->pad_h + r0 * cd->dil_h;
                int iw = ow * cd->v - cd->pad_w + s0 * cd->dil_w;
                if (ih < 0 || ih >= xd->h || iw < 0 || iw >= xd->w) continue;
                // true convolution reads the filter upside down and back to front
                int r1 = cd->mode == CUDNN_CONVOLUTION ? wd->h - 1 - r0 : r0;
                int s1 = cd->mode == CUDNN_CONVOLUTION ? wd->w - 1 - s0 : s0;
                float xv = load(x, xd->type, offset(f, xd->c, xd->h, xd->w, in, c, ih, iw));
                float wv = load(w, wd->type, offset(f, wd->c, wd->h, wd->w, k, c, r1, s1));
                acc += fp32_tf32 ? tf32(xv) * tf32(wv) : xv * wv;
              }
          size_t yi = offset(f, yd->c, yd->h, yd->w, in, k, oh, ow);
          store(y, yd->type, yi, al * acc + (be != 0 ? be * load(y, yd->type, yi) : 0.0f));
        }
  forward_calls++;
  return CUDNN_STATUS_SUCCESS;
}

} // extern "C"
