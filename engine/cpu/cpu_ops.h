/* The CPU backend's op table (fp32, OpenBLAS sgemm, OpenMP threads).
 *
 * Threading: every op runs on the backend's `threads` OpenMP threads (an option of the backend,
 * 0 = OpenMP's default), given to each parallel region with num_threads, so nothing of the host
 * process's own OpenMP or BLAS settings changes. GEMMs run as single-threaded sgemms on
 * per-thread slices inside those regions (rows or columns of a linear layer, im2col blocks of a
 * conv, query blocks of an attention) when the BLAS runs single-threaded there: OpenBLAS's
 * OpenMP or serial builds, or its pthreads build set to one thread (the i2vgen tool and the tests
 * do that for their own process). Otherwise — OpenBLAS's pthreads build with several threads, as
 * a host application may have it — each GEMM is one call that the BLAS threads itself: two pools
 * splitting the same work would oversubscribe the cores. */
#pragma once

#include <math.h>
#include <string.h>

#include "backend_impl.h"

/* Defined in cpu_ops.c from the per-family files of this folder. */
extern const I2vOps i2v_cpu_ops;

/* The number of threads the stream's ops use (the backend's option, or OpenMP's default). */
int i2v_cpu_threads(const I2vStream *st);

/* TRUE when GEMM slices may run inside the backend's own threads (see the top of this file). */
gboolean i2v_cpu_blas_in_threads(void);

/* y[M,N] (+)= x[M,K]·w[N,K]ᵀ + b[N] with row strides ldy, ldx, ldw (b may be NULL; accumulate
 * adds into y), in the calling thread. The GEMM of linear, conv2d, conv_frames. */
void i2v_cpu_gemm_xwt_1(float *y, int64_t ldy, const float *x, int64_t ldx, const float *w,
                        int64_t ldw, int64_t M, int64_t N, int64_t K, const float *b,
                        gboolean accumulate);

/* The same, split over nt threads (call it from serial code), or one BLAS call when the BLAS
 * threads itself. */
void i2v_cpu_gemm_xwt(int nt, float *y, int64_t ldy, const float *x, int64_t ldx, const float *w,
                      int64_t ldw, int64_t M, int64_t N, int64_t K, const float *b,
                      gboolean accumulate);

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
void i2v_cpu_act_row(float *y, const float *x, int64_t n, I2vAct act);

/* The same over nt threads (call it from serial code). */
void i2v_cpu_act_apply(int nt, float *y, const float *x, int64_t n, I2vAct act);

/* linear.c */
void i2v_cpu_linear(I2vStream *st, I2vTensor *y, const I2vTensor *x, const I2vTensor *w,
                    const I2vTensor *b, I2vAct act, gboolean accumulate);

/* conv.c */
void i2v_cpu_conv2d(I2vStream *st, I2vTensor *y, const I2vTensor *x, const I2vTensor *w,
                    const I2vTensor *b, const I2vConvParams *p, gboolean accumulate);
void i2v_cpu_conv_frames(I2vStream *st, I2vTensor *y, const I2vTensor *x, const I2vTensor *w,
                         const I2vTensor *b, gboolean accumulate);

/* norm.c */
void i2v_cpu_group_norm(I2vStream *st, I2vTensor *y, const I2vTensor *x, const I2vTensor *gamma,
                        const I2vTensor *beta, int64_t samples, int groups, float eps, I2vAct act);
void i2v_cpu_layer_norm(I2vStream *st, I2vTensor *y, const I2vTensor *x, const I2vTensor *gamma,
                        const I2vTensor *beta, float eps);

/* attention.c */
void i2v_cpu_attention(I2vStream *st, const I2vSeqView *out, const I2vSeqView *q,
                       const I2vSeqView *k, const I2vSeqView *v, const I2vAttnShape *s);

/* elementwise.c */
void i2v_cpu_unary(I2vStream *st, I2vTensor *y, const I2vTensor *x, I2vAct act);
void i2v_cpu_geglu(I2vStream *st, I2vTensor *y, const I2vTensor *x);
void i2v_cpu_add(I2vStream *st, I2vTensor *y, const I2vTensor *a, const I2vTensor *b);
void i2v_cpu_add_rows(I2vStream *st, I2vTensor *x, const I2vTensor *v);
void i2v_cpu_axpby(I2vStream *st, I2vTensor *y, float alpha, const I2vTensor *a, float beta,
                   const I2vTensor *b);
void i2v_cpu_concat_last(I2vStream *st, I2vTensor *y, const I2vTensor *a, const I2vTensor *b);
void i2v_cpu_upsample_nearest(I2vStream *st, I2vTensor *y, const I2vTensor *x);
void i2v_cpu_adaptive_avg_pool(I2vStream *st, I2vTensor *y, const I2vTensor *x);
void i2v_cpu_permute(I2vStream *st, I2vTensor *y, const I2vTensor *x, const int *perm);
void i2v_cpu_gather_rows(I2vStream *st, I2vTensor *y, const I2vTensor *table, const int64_t *ids);
void i2v_cpu_fill(I2vStream *st, I2vTensor *y, float value);
void i2v_cpu_copy(I2vStream *st, I2vTensor *y, const I2vTensor *x);
