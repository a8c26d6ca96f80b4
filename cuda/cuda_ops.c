/* The CUDA op table: each op maps its tensors to kernel operands and enqueues the kernel(s) of
 * kernels.h on the backend's stream (linear is in cuda_gemm.c, convolutions in cuda_conv.c,
 * attention in cuda_attention.c). No op waits for the GPU; a failed launch becomes the backend's
 * sticky error. */
#include "cuda_priv.h"

/* kernels.h mirrors these enums by value */
G_STATIC_ASSERT((int)CU_ACT_NONE == (int)I2V_ACT_NONE && (int)CU_ACT_SILU == (int)I2V_ACT_SILU &&
                (int)CU_ACT_GELU == (int)I2V_ACT_GELU &&
                (int)CU_ACT_QUICK_GELU == (int)I2V_ACT_QUICK_GELU);
G_STATIC_ASSERT((int)CU_F32 == (int)I2V_DTYPE_F32 && (int)CU_F16 == (int)I2V_DTYPE_F16 &&
                (int)CU_BF16 == (int)I2V_DTYPE_BF16);

static int64_t last_dim(const I2vTensor *t) {
  return t->ndim > 0 ? t->shape[t->ndim - 1] : 1;
}

static int64_t rows_of(const I2vTensor *t, int64_t width) {
  return width ? i2v_tensor_numel(t) / width : 0;
}

static void cuda_group_norm(I2vStream *st, I2vTensor *y, const I2vTensor *x, const I2vTensor *gamma,
                            const I2vTensor *beta, int64_t samples, int groups, float eps,
                            I2vAct act) {
  CudaStream *p = i2v_cuda_enter(st);
  int64_t C = last_dim(x), T = i2v_tensor_numel(x) / C / samples;
  size_t mark = i2v_scratch_mark(st);
  void *work =
      i2v_scratch_bytes(st, i2v_cu_group_norm_work_bytes(samples, groups, T * (C / groups)));
  if (work != NULL)
    CUDA_OK(st, i2v_cu_group_norm(p->stream, cu_buf(y), cu_buf(x), cu_buf(gamma), cu_buf(beta),
                                  samples, T, C, groups, eps, (int)act, work));
  i2v_scratch_release(st, mark);
}

static void cuda_layer_norm(I2vStream *st, I2vTensor *y, const I2vTensor *x, const I2vTensor *gamma,
                            const I2vTensor *beta, float eps) {
  CudaStream *p = i2v_cuda_enter(st);
  int64_t C = last_dim(x);
  CUDA_OK(st, i2v_cu_layer_norm(p->stream, cu_buf(y), cu_buf(x), cu_buf(gamma), cu_buf(beta),
                                rows_of(x, C), C, eps));
}

static void cuda_unary(I2vStream *st, I2vTensor *y, const I2vTensor *x, I2vAct act) {
  CudaStream *p = i2v_cuda_enter(st);
  CUDA_OK(st, i2v_cu_act(p->stream, cu_buf(y), cu_buf(x), i2v_tensor_numel(x), (int)act));
}

static void cuda_geglu(I2vStream *st, I2vTensor *y, const I2vTensor *x) {
  CudaStream *p = i2v_cuda_enter(st);
  int64_t F = last_dim(y);
  CUDA_OK(st, i2v_cu_geglu(p->stream, cu_buf(y), cu_buf(x), rows_of(y, F), F));
}

static void cuda_axpby(I2vStream *st, I2vTensor *y, float alpha, const I2vTensor *a, float beta,
                       const I2vTensor *b) {
  CudaStream *p = i2v_cuda_enter(st);
  CUDA_OK(st, i2v_cu_axpby(p->stream, cu_buf(y), alpha, cu_buf(a), beta, cu_buf(b),
                           i2v_tensor_numel(y)));
}

static void cuda_add(I2vStream *st, I2vTensor *y, const I2vTensor *a, const I2vTensor *b) {
  cuda_axpby(st, y, 1.0f, a, 1.0f, b);
}

static void cuda_add_rows(I2vStream *st, I2vTensor *x, const I2vTensor *v) {
  CudaStream *p = i2v_cuda_enter(st);
  int64_t C = v->shape[1], rows = rows_of(x, C);
  CUDA_OK(st, i2v_cu_add_rows(p->stream, cu_buf(x), cu_buf(v), rows, rows / v->shape[0], C));
}

static void cuda_concat_last(I2vStream *st, I2vTensor *y, const I2vTensor *a, const I2vTensor *b) {
  CudaStream *p = i2v_cuda_enter(st);
  int64_t Ca = last_dim(a), Cb = last_dim(b);
  CUDA_OK(st, i2v_cu_concat_last(p->stream, cu_buf(y), cu_buf(a), cu_buf(b), rows_of(y, Ca + Cb),
                                 Ca, Cb));
}

static void cuda_upsample_nearest(I2vStream *st, I2vTensor *y, const I2vTensor *x) {
  CudaStream *p = i2v_cuda_enter(st);
  CUDA_OK(st, i2v_cu_upsample_nearest(p->stream, cu_buf(y), cu_buf(x), x->shape[0], x->shape[1],
                                      x->shape[2], x->shape[3], y->shape[1], y->shape[2]));
}

static void cuda_adaptive_avg_pool(I2vStream *st, I2vTensor *y, const I2vTensor *x) {
  CudaStream *p = i2v_cuda_enter(st);
  CUDA_OK(st, i2v_cu_adaptive_avg_pool(p->stream, cu_buf(y), cu_buf(x), x->shape[0], x->shape[1],
                                       x->shape[2], x->shape[3], y->shape[1], y->shape[2]));
}

static void cuda_permute(I2vStream *st, I2vTensor *y, const I2vTensor *x, const int *perm) {
  CudaStream *p = i2v_cuda_enter(st);
  int64_t sh[5], stride[5];
  i2v_permute_plan(y, x, perm, sh, stride);
  CUDA_OK(st, i2v_cu_permute(p->stream, cu_buf(y), cu_buf(x), sh, stride));
}

static void cuda_gather_rows(I2vStream *st, I2vTensor *y, const I2vTensor *table,
                             const int64_t *ids) {
  CudaStream *p = i2v_cuda_enter(st);
  int64_t D = table->shape[1], rows = rows_of(y, D);
  if (rows == 0) return;
  size_t mark = i2v_scratch_mark(st);
  int64_t *dev_ids = i2v_scratch_bytes(st, (size_t)rows * sizeof(int64_t));
  /* from pageable memory the copy returns once ids is staged, so the caller may free ids */
  if (dev_ids != NULL && CUDA_OK(st, cudaMemcpyAsync(dev_ids, ids, (size_t)rows * sizeof(int64_t),
                                                     cudaMemcpyHostToDevice, p->stream)))
    CUDA_OK(st, i2v_cu_gather_rows(p->stream, cu_buf(y), cu_buf(table), dev_ids, rows, D));
  i2v_scratch_release(st, mark);
}

static void cuda_fill(I2vStream *st, I2vTensor *y, float value) {
  CudaStream *p = i2v_cuda_enter(st);
  CUDA_OK(st, i2v_cu_fill(p->stream, cu_buf(y), i2v_tensor_numel(y), value));
}

static void cuda_copy(I2vStream *st, I2vTensor *y, const I2vTensor *x) {
  CudaStream *p = i2v_cuda_enter(st);
  if (y->data == x->data && y->dtype == x->dtype) return;
  if (y->dtype == x->dtype)
    CUDA_OK(st, cudaMemcpyAsync(y->data, x->data, i2v_tensor_nbytes(x), cudaMemcpyDeviceToDevice,
                                p->stream));
  else
    CUDA_OK(st, i2v_cu_convert(p->stream, cu_buf(y), cu_buf(x), i2v_tensor_numel(x)));
}

const I2vOps i2v_cuda_ops = {
    .linear = i2v_cuda_linear,
    .conv2d = i2v_cuda_conv2d,
    .conv_frames = i2v_cuda_conv_frames,
    .group_norm = cuda_group_norm,
    .layer_norm = cuda_layer_norm,
    .attention = i2v_cuda_attention,
    .unary = cuda_unary,
    .geglu = cuda_geglu,
    .add = cuda_add,
    .add_rows = cuda_add_rows,
    .axpby = cuda_axpby,
    .concat_last = cuda_concat_last,
    .upsample_nearest = cuda_upsample_nearest,
    .adaptive_avg_pool = cuda_adaptive_avg_pool,
    .permute = cuda_permute,
    .gather_rows = cuda_gather_rows,
    .fill = cuda_fill,
    .copy = cuda_copy,
};
