/* The CPU backend's op table (fp32, OpenBLAS sgemm, OpenMP threads).
 *
 * Threading strategy (one rule for the whole backend): OpenMP is the only thread pool.
 * i2v_cpu_backend_new sets OpenBLAS single-threaded, and every GEMM runs as single-threaded
 * sgemms on per-thread slices inside OpenMP regions (rows or columns of a linear layer, im2col
 * blocks of a conv, query blocks of an attention). Two pools would oversubscribe the cores:
 * OpenBLAS' workers busy-wait after each call while OpenMP's threads run the code between. */
#pragma once

#include <math.h>
#include <string.h>

#include "ops.h"

/* Defined in cpu_ops.c from the per-family files of this folder. */
extern const I2vOps i2v_cpu_ops;

/* Bump-allocates bytes of the backend's scratch arena for an op's workspace (the caller brackets
 * it with i2v_scratch_mark/release); on failure sets the sticky error and returns NULL. */
void *cpu_scratch(I2vBackend *be, size_t bytes);

/* y[M,N] (+)= x[M,K]·w[N,K]ᵀ + b[N] with row strides ldy, ldx, ldw (b may be NULL; accumulate
 * adds into y), in the calling thread. The GEMM of linear, conv2d, conv_frames. */
void cpu_gemm_xwt_1(float *y, int64_t ldy, const float *x, int64_t ldx, const float *w, int64_t ldw,
                    int64_t M, int64_t N, int64_t K, const float *b, gboolean accumulate);

/* The same, split over the OpenMP threads (call it from serial code). */
void cpu_gemm_xwt(float *y, int64_t ldy, const float *x, int64_t ldx, const float *w, int64_t ldw,
                  int64_t M, int64_t N, int64_t K, const float *b, gboolean accumulate);

/* e^x in float, written so loops calling it vectorise (glibc's expf does not without
 * -ffast-math): Cephes' polynomial on x = n·ln2 + r, |r| ≤ ln2/2, scaled by 2^n through the
 * exponent bits; relative error < 1e-7 for |x| < 87. Outside, n is clamped to the normal range
 * (an integer compare: a float one would stop GCC vectorising under the default
 * -ftrapping-math), so the result is tiny below -87 and huge above 88 instead of a denormal or
 * inf: what softmax, SiLU and sigmoid need. |x| must stay below 1e9 (the float-to-int cast). */
static inline float cpu_exp(float x) {
  float n = (x * 1.44269504f + 12582912.0f) - 12582912.0f; /* round to nearest: + 1.5·2^23 */
  float r = x - n * 0.693359375f + n * 2.12194440e-4f;     /* ln2 split in two for exactness */
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t e = (int32_t)n;
  e = e < -126 ? -126 : e > 127 ? 127 : e;
  int32_t bits = (e + 127) << 23;
  float scale;
  memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

/* act(x) for one value. */
static inline float cpu_act1(float x, I2vAct act) {
  switch (act) {
  case I2V_ACT_SILU:
    return x / (1.0f + cpu_exp(-x));
  case I2V_ACT_GELU:
    return 0.5f * x * (1.0f + erff(x * (float)M_SQRT1_2));
  case I2V_ACT_QUICK_GELU:
    return x / (1.0f + cpu_exp(-1.702f * x));
  case I2V_ACT_NONE:
  default:
    return x;
  }
}

/* y[i] = act(x[i]) for n values in the calling thread (y may alias x); one vectorised loop per
 * act, for callers that already run per row inside a parallel region. */
void cpu_act_row(float *y, const float *x, int64_t n, I2vAct act);

/* The same over all threads (call it from serial code). */
void cpu_act_apply(float *y, const float *x, int64_t n, I2vAct act);

/* linear.c */
void cpu_linear(I2vBackend *be, I2vTensor *y, const I2vTensor *x, const I2vTensor *w,
                const I2vTensor *b, I2vAct act, gboolean accumulate);

/* conv.c */
void cpu_conv2d(I2vBackend *be, I2vTensor *y, const I2vTensor *x, const I2vTensor *w,
                const I2vTensor *b, const I2vConvParams *p, gboolean accumulate);
void cpu_conv_frames(I2vBackend *be, I2vTensor *y, const I2vTensor *x, const I2vTensor *w,
                     const I2vTensor *b, gboolean accumulate);

/* norm.c */
void cpu_group_norm(I2vBackend *be, I2vTensor *y, const I2vTensor *x, const I2vTensor *gamma,
                    const I2vTensor *beta, int64_t samples, int groups, float eps, I2vAct act);
void cpu_layer_norm(I2vBackend *be, I2vTensor *y, const I2vTensor *x, const I2vTensor *gamma,
                    const I2vTensor *beta, float eps);

/* attention.c */
void cpu_attention(I2vBackend *be, const I2vSeqView *out, const I2vSeqView *q, const I2vSeqView *k,
                   const I2vSeqView *v, const I2vAttnShape *s);

/* elementwise.c */
void cpu_unary(I2vBackend *be, I2vTensor *y, const I2vTensor *x, I2vAct act);
void cpu_geglu(I2vBackend *be, I2vTensor *y, const I2vTensor *x);
void cpu_add(I2vBackend *be, I2vTensor *y, const I2vTensor *a, const I2vTensor *b);
void cpu_add_rows(I2vBackend *be, I2vTensor *x, const I2vTensor *v);
void cpu_axpby(I2vBackend *be, I2vTensor *y, float alpha, const I2vTensor *a, float beta,
               const I2vTensor *b);
void cpu_concat_last(I2vBackend *be, I2vTensor *y, const I2vTensor *a, const I2vTensor *b);
void cpu_upsample_nearest(I2vBackend *be, I2vTensor *y, const I2vTensor *x);
void cpu_adaptive_avg_pool(I2vBackend *be, I2vTensor *y, const I2vTensor *x);
void cpu_permute(I2vBackend *be, I2vTensor *y, const I2vTensor *x, const int *perm);
void cpu_gather_rows(I2vBackend *be, I2vTensor *y, const I2vTensor *table, const int64_t *ids);
void cpu_fill(I2vBackend *be, I2vTensor *y, float value);
void cpu_copy(I2vBackend *be, I2vTensor *y, const I2vTensor *x);
