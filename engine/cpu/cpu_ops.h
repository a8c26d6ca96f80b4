/* The CPU backend's op table (fp32, OpenBLAS sgemm, OpenMP threads).
 *
 * Threading strategy (one rule for the whole backend): cblas_sgemm is only ever called from
 * serial code, never inside an OpenMP parallel region, so the (pthread) OpenBLAS runs each GEMM
 * on its own threads; every other loop of this folder (im2col, norms, softmax, elementwise) is
 * parallelised with OpenMP over rows, channels or sequences. */
#pragma once

#include <math.h>

#include "ops.h"

/* Defined in cpu_ops.c from the per-family files of this folder. */
extern const I2vOps i2v_cpu_ops;

/* Bump-allocates bytes of the backend's scratch arena for an op's workspace (the caller brackets
 * it with i2v_scratch_mark/release); on failure sets the sticky error and returns NULL. */
void *cpu_scratch(I2vBackend *be, size_t bytes);

/* y[M,N] (+)= x[M,K]·w[N,K]ᵀ + b[N] with row strides ldy, ldx, ldw (b may be NULL; accumulate
 * adds into y). The one GEMM helper shared by linear, conv2d and conv_frames. */
void cpu_gemm_xwt(float *y, int64_t ldy, const float *x, int64_t ldx, const float *w, int64_t ldw,
                  int64_t M, int64_t N, int64_t K, const float *b, gboolean accumulate);

/* act(x) for one value. */
static inline float cpu_act1(float x, I2vAct act) {
  switch (act) {
  case I2V_ACT_SILU:
    return x / (1.0f + expf(-x));
  case I2V_ACT_GELU:
    return 0.5f * x * (1.0f + erff(x * (float)M_SQRT1_2));
  case I2V_ACT_QUICK_GELU:
    return x / (1.0f + expf(-1.702f * x));
  case I2V_ACT_NONE:
  default:
    return x;
  }
}

/* y[i] = act(x[i]) for n values (y may alias x). */
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
