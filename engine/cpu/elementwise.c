/* Elementwise, broadcast, resize and data-movement ops on the CPU, OpenMP-parallel over rows. */
#include <string.h>

#include "cpu_ops.h"

static int64_t last_dim(const I2vTensor *t) {
  return t->ndim > 0 ? t->shape[t->ndim - 1] : 1;
}

void i2v_cpu_act_row(float *y, const float *x, int64_t n, I2vAct act) {
  switch (act) {
  case I2V_ACT_SILU:
#pragma omp simd
    for (int64_t i = 0; i < n; i++) y[i] = cpu_act1(x[i], I2V_ACT_SILU);
    break;
  case I2V_ACT_GELU:
    for (int64_t i = 0; i < n; i++) y[i] = cpu_act1(x[i], I2V_ACT_GELU);
    break;
  case I2V_ACT_QUICK_GELU:
#pragma omp simd
    for (int64_t i = 0; i < n; i++) y[i] = cpu_act1(x[i], I2V_ACT_QUICK_GELU);
    break;
  case I2V_ACT_NONE:
  default:
    if (y != x) memmove(y, x, (size_t)n * sizeof(float));
  }
}

/* Elements per task of the threaded elementwise loops: large enough to amortise the task. */
#define ACT_BLOCK 4096

void i2v_cpu_act_apply(int nt, float *y, const float *x, int64_t n, I2vAct act) {
  if (act == I2V_ACT_NONE && y == x) return;
#pragma omp parallel for schedule(static) num_threads(nt)
  for (int64_t i = 0; i < n; i += ACT_BLOCK)
    i2v_cpu_act_row(y + i, x + i, MIN(ACT_BLOCK, n - i), act);
}

void i2v_cpu_unary(I2vStream *st, I2vTensor *y, const I2vTensor *x, I2vAct act) {
  i2v_cpu_act_apply(i2v_cpu_threads(st), y->data, x->data, i2v_tensor_numel(x), act);
}

void i2v_cpu_geglu(I2vStream *st, I2vTensor *y, const I2vTensor *x) {
  int nt = i2v_cpu_threads(st);
  int64_t F = last_dim(y), rows = F ? i2v_tensor_numel(y) / F : 0;
  const float *xd = x->data;
  float *yd = y->data;
#pragma omp parallel for schedule(static) num_threads(nt)
  for (int64_t m = 0; m < rows; m++) {
    const float *value = xd + m * 2 * F, *gate = value + F;
    for (int64_t f = 0; f < F; f++) yd[m * F + f] = value[f] * cpu_act1(gate[f], I2V_ACT_GELU);
  }
}

void i2v_cpu_add(I2vStream *st, I2vTensor *y, const I2vTensor *a, const I2vTensor *b) {
  int nt = i2v_cpu_threads(st);
  int64_t n = i2v_tensor_numel(y);
  const float *ad = a->data, *bd = b->data;
  float *yd = y->data;
#pragma omp parallel for schedule(static) num_threads(nt)
  for (int64_t i = 0; i < n; i++) yd[i] = ad[i] + bd[i];
}

void i2v_cpu_add_rows(I2vStream *st, I2vTensor *x, const I2vTensor *v) {
  int nt = i2v_cpu_threads(st);
  int64_t C = v->shape[1], S = v->shape[0], rows = C ? i2v_tensor_numel(x) / C : 0, T = rows / S;
  const float *vd = v->data;
  float *xd = x->data;
#pragma omp parallel for schedule(static) num_threads(nt)
  for (int64_t r = 0; r < rows; r++) {
    const float *vs = vd + (r / T) * C;
    for (int64_t c = 0; c < C; c++) xd[r * C + c] += vs[c];
  }
}

void i2v_cpu_axpby(I2vStream *st, I2vTensor *y, float alpha, const I2vTensor *a, float beta,
                   const I2vTensor *b) {
  int nt = i2v_cpu_threads(st);
  int64_t n = i2v_tensor_numel(y);
  const float *ad = a->data, *bd = b->data;
  float *yd = y->data;
#pragma omp parallel for schedule(static) num_threads(nt)
  for (int64_t i = 0; i < n; i++) yd[i] = alpha * ad[i] + beta * bd[i];
}

void i2v_cpu_concat_last(I2vStream *st, I2vTensor *y, const I2vTensor *a, const I2vTensor *b) {
  int nt = i2v_cpu_threads(st);
  int64_t Ca = last_dim(a), Cb = last_dim(b), C = Ca + Cb;
  int64_t rows = C ? i2v_tensor_numel(y) / C : 0;
  const float *ad = a->data, *bd = b->data;
  float *yd = y->data;
#pragma omp parallel for schedule(static) num_threads(nt)
  for (int64_t r = 0; r < rows; r++) {
    memcpy(yd + r * C, ad + r * Ca, (size_t)Ca * sizeof(float));
    memcpy(yd + r * C + Ca, bd + r * Cb, (size_t)Cb * sizeof(float));
  }
}

/* PyTorch's "nearest" source index: the ratio in/out and its product with dst in float32. */
static int64_t nearest_src(int64_t dst, int64_t in, int64_t out) {
  float ratio = (float)in / (float)out;
  return MIN((int64_t)floorf((float)dst * ratio), in - 1);
}

void i2v_cpu_upsample_nearest(I2vStream *st, I2vTensor *y, const I2vTensor *x) {
  int nt = i2v_cpu_threads(st);
  int64_t N = x->shape[0], H = x->shape[1], W = x->shape[2], C = x->shape[3];
  int64_t Ho = y->shape[1], Wo = y->shape[2];
  const float *xd = x->data;
  float *yd = y->data;
#pragma omp parallel for collapse(2) schedule(static) num_threads(nt)
  for (int64_t n = 0; n < N; n++) {
    for (int64_t oh = 0; oh < Ho; oh++) {
      const float *xrow = xd + (n * H + nearest_src(oh, H, Ho)) * W * C;
      float *yrow = yd + (n * Ho + oh) * Wo * C;
      for (int64_t ow = 0; ow < Wo; ow++)
        memcpy(yrow + ow * C, xrow + nearest_src(ow, W, Wo) * C, (size_t)C * sizeof(float));
    }
  }
}

void i2v_cpu_adaptive_avg_pool(I2vStream *st, I2vTensor *y, const I2vTensor *x) {
  int nt = i2v_cpu_threads(st);
  int64_t N = x->shape[0], H = x->shape[1], W = x->shape[2], C = x->shape[3];
  int64_t Ho = y->shape[1], Wo = y->shape[2];
  const float *xd = x->data;
  float *yd = y->data;
#pragma omp parallel for collapse(2) schedule(static) num_threads(nt)
  for (int64_t n = 0; n < N; n++) {
    for (int64_t oh = 0; oh < Ho; oh++) {
      /* window [floor(i·in/out), ceil((i+1)·in/out)) in exact integer arithmetic */
      int64_t h0 = oh * H / Ho, h1 = ((oh + 1) * H + Ho - 1) / Ho;
      for (int64_t ow = 0; ow < Wo; ow++) {
        int64_t w0 = ow * W / Wo, w1 = ((ow + 1) * W + Wo - 1) / Wo;
        float *yp = yd + ((n * Ho + oh) * Wo + ow) * C;
        memset(yp, 0, (size_t)C * sizeof(float));
        for (int64_t ih = h0; ih < h1; ih++)
          for (int64_t iw = w0; iw < w1; iw++) {
            const float *xp = xd + ((n * H + ih) * W + iw) * C;
            for (int64_t c = 0; c < C; c++) yp[c] += xp[c];
          }
        float count = (float)((h1 - h0) * (w1 - w0));
        for (int64_t c = 0; c < C; c++) yp[c] /= count;
      }
    }
  }
}

void i2v_cpu_permute(I2vStream *st, I2vTensor *y, const I2vTensor *x, const int *perm) {
  int nt = i2v_cpu_threads(st);
  int64_t sh[5], stride[5];
  i2v_permute_plan(y, x, perm, sh, stride);
  const float *xd = x->data;
  float *yd = y->data;
#pragma omp parallel for collapse(2) schedule(static) num_threads(nt)
  for (int64_t a = 0; a < sh[0]; a++) {
    for (int64_t b = 0; b < sh[1]; b++) {
      const float *src = xd + a * stride[0] + b * stride[1];
      float *dst = yd + (a * sh[1] + b) * sh[2] * sh[3] * sh[4];
      for (int64_t c = 0; c < sh[2]; c++)
        for (int64_t d = 0; d < sh[3]; d++)
          for (int64_t e = 0; e < sh[4]; e++)
            *dst++ = src[c * stride[2] + d * stride[3] + e * stride[4]];
    }
  }
}

void i2v_cpu_gather_rows(I2vStream *st, I2vTensor *y, const I2vTensor *table, const int64_t *ids) {
  (void)st;
  int64_t D = table->shape[1], rows = D ? i2v_tensor_numel(y) / D : 0;
  for (int64_t r = 0; r < rows; r++)
    memcpy((float *)y->data + r * D, (const float *)table->data + ids[r] * D,
           (size_t)D * sizeof(float));
}

void i2v_cpu_fill(I2vStream *st, I2vTensor *y, float value) {
  int nt = i2v_cpu_threads(st);
  int64_t n = i2v_tensor_numel(y);
  float *yd = y->data;
#pragma omp parallel for schedule(static) num_threads(nt)
  for (int64_t i = 0; i < n; i++) yd[i] = value;
}

void i2v_cpu_copy(I2vStream *st, I2vTensor *y, const I2vTensor *x) {
  (void)st;
  if (y->data != x->data) memmove(y->data, x->data, i2v_tensor_nbytes(x));
}
