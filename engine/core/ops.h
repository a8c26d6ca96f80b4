/* The op table: every tensor operation the models use, in one place (ggml-style backend split).
 *
 * Models (clip_text.c, vae.c, unet3d.c, ...) are written once against the i2v_op_* wrappers
 * below; a backend (engine/cpu/, cuda/) fills an I2vOps table (backend_impl.h). Every op runs on a
 * stream (stream.h: one run's scratch memory, sticky error and FLOP count; a CUDA stream and its
 * library handles on the GPU). The wrappers check shapes and the stream's sticky error, then
 * dispatch.
 *
 * Layout conventions (DESIGN.md "Engine rules"):
 *   - activations are channels-last: a feature map is [N, H, W, C] (N = batch·frames), a token
 *     sequence is [N, T, C]; linear layers see any tensor as [rows, last dim];
 *   - conv2d weights are stored [Cout, kh, kw, Cin] (rearranged from PyTorch's [Cout, Cin, kh, kw]
 *     once at load, see weights.h), temporal conv weights [Cout, 3, Cin];
 *   - linear weights keep PyTorch's [out, in] (y = x·Wᵀ + b).
 *
 * Errors: ops return nothing. A failure (out of memory, a CUDA status, a shape mismatch found by a
 * wrapper) is recorded in the stream as its first "sticky" error; later ops become no-ops and the
 * model checks i2v_stream_check() at its sync points (end of a forward, end of a step). */
#pragma once

#include "stream.h"

G_BEGIN_DECLS

typedef enum {
  I2V_ACT_NONE,
  I2V_ACT_SILU,       /* x·sigmoid(x) */
  I2V_ACT_GELU,       /* exact erf GELU: 0.5·x·(1 + erf(x/√2)) */
  I2V_ACT_QUICK_GELU, /* x·sigmoid(1.702·x) (CLIP "quick_gelu") */
} I2vAct;

/* Parses a transformers/diffusers activation name ("gelu", "quick_gelu", "silu"). */
gboolean i2v_act_from_name(const char *name, I2vAct *act);

/* One operand of i2v_op_attention: sequences inside a tensor, addressed by element strides.
 * Sequence s = o·n_inner + i (o < n_outer, i < n_inner) has token j at element
 *   offset + o·outer_stride + i·inner_stride + j·token_stride
 * and head h of that token at + h·head_dim. This covers plain [N, T, C] tensors, packed QKV
 * ([N, T, 3C] with offsets 0, C, 2C) and temporal attention over frames of a [B, F, HW, C]
 * tensor (n_outer = B, n_inner = HW, token_stride = HW·C) without any transpose. */
typedef struct {
  const I2vTensor *t;
  int64_t offset;
  int64_t outer_stride, inner_stride, token_stride;
} I2vSeqView;

typedef struct {
  int64_t n_outer, n_inner; /* sequences of q/out: n_outer · n_inner */
  int64_t kv_outer_div;     /* k/v outer index = q outer index / kv_outer_div (1: same). Cross-
                               attention of F frames over one per-video context uses F. */
  int64_t q_len, kv_len;    /* tokens per q sequence, per k/v sequence */
  int heads, head_dim;
  float scale;     /* multiplies q·kᵀ before the softmax */
  gboolean causal; /* token j of q attends to k tokens 0..j only (CLIP text) */
} I2vAttnShape;

typedef struct {
  int stride;
  int pad_top, pad_left, pad_bottom, pad_right; /* zero padding */
} I2vConvParams;

/* The table a backend fills. All tensors are already allocated and shape-checked by the wrappers;
 * "y may alias x" is stated per op. */
typedef struct {
  /* y[M,N] (+)= act(x[M,K]·w[N,K]ᵀ + b[N]); b may be NULL; accumulate adds into y (act NONE). */
  void (*linear)(I2vStream *st, I2vTensor *y, const I2vTensor *x, const I2vTensor *w,
                 const I2vTensor *b, I2vAct act, gboolean accumulate);
  /* y[N,Ho,Wo,Co] (+)= conv(x[N,H,W,Ci], w[Co,kh,kw,Ci]) + b[Co]; b may be NULL. */
  void (*conv2d)(I2vStream *st, I2vTensor *y, const I2vTensor *x, const I2vTensor *w,
                 const I2vTensor *b, const I2vConvParams *p, gboolean accumulate);
  /* Temporal conv, kernel 3 over frames, zero padding 1: x,y [B,F,T,C], w [Co,3,Ci], b [Co].
   * y[b,f] (+)= Σ_k w[:,k]·x[b,f+k-1] + b. y must not alias x. */
  void (*conv_frames)(I2vStream *st, I2vTensor *y, const I2vTensor *x, const I2vTensor *w,
                      const I2vTensor *b, gboolean accumulate);
  /* GroupNorm: x,y viewed as [S, T, C] (S samples, statistics per sample and group over T and
   * C/groups channels), then per-channel affine, then act (NONE or SILU). y may alias x. */
  void (*group_norm)(I2vStream *st, I2vTensor *y, const I2vTensor *x, const I2vTensor *gamma,
                     const I2vTensor *beta, int64_t samples, int groups, float eps, I2vAct act);
  /* LayerNorm over the last dim, affine. y may alias x. */
  void (*layer_norm)(I2vStream *st, I2vTensor *y, const I2vTensor *x, const I2vTensor *gamma,
                     const I2vTensor *beta, float eps);
  /* softmax(scale·q·kᵀ [+ causal mask])·v per sequence and head, written to out. */
  void (*attention)(I2vStream *st, const I2vSeqView *out, const I2vSeqView *q, const I2vSeqView *k,
                    const I2vSeqView *v, const I2vAttnShape *s);
  /* y = act(x) elementwise; y may alias x. */
  void (*unary)(I2vStream *st, I2vTensor *y, const I2vTensor *x, I2vAct act);
  /* y[M,F] = x[M,:F] · gelu(x[M,F:]) (GEGLU: first half value, second half gate). */
  void (*geglu)(I2vStream *st, I2vTensor *y, const I2vTensor *x);
  /* y = a + b elementwise (same numel); y may alias a or b. */
  void (*add)(I2vStream *st, I2vTensor *y, const I2vTensor *a, const I2vTensor *b);
  /* x[S,T,C] += v[S,C] (a per-sample row broadcast over T: time embedding into a resnet). */
  void (*add_rows)(I2vStream *st, I2vTensor *x, const I2vTensor *v);
  /* y = alpha·a + beta·b elementwise (same numel; y may alias a or b). */
  void (*axpby)(I2vStream *st, I2vTensor *y, float alpha, const I2vTensor *a, float beta,
                const I2vTensor *b);
  /* y[...,Ca+Cb] = concat(a[...,Ca], b[...,Cb]) along the last dim. */
  void (*concat_last)(I2vStream *st, I2vTensor *y, const I2vTensor *a, const I2vTensor *b);
  /* y[N,Ho,Wo,C] = nearest resize of x[N,H,W,C]: src = min(floor(dst·(in/out)), in-1) with the
   * ratio and product in float32 (PyTorch "nearest"). */
  void (*upsample_nearest)(I2vStream *st, I2vTensor *y, const I2vTensor *x);
  /* y[N,Ho,Wo,C] = AdaptiveAvgPool2d of x[N,H,W,C]: window [floor(i·in/out), ceil((i+1)·in/out)).
   */
  void (*adaptive_avg_pool)(I2vStream *st, I2vTensor *y, const I2vTensor *x);
  /* y = x permuted: y.shape[d] = x.shape[perm[d]] (same rank, ≤ 5 dims). */
  void (*permute)(I2vStream *st, I2vTensor *y, const I2vTensor *x, const int *perm);
  /* y[n,:] = table[ids[n],:]; ids are host int64 values already checked to be in range. */
  void (*gather_rows)(I2vStream *st, I2vTensor *y, const I2vTensor *table, const int64_t *ids);
  /* y = value everywhere. */
  void (*fill)(I2vStream *st, I2vTensor *y, float value);
  /* y = x (same numel, any shapes). */
  void (*copy)(I2vStream *st, I2vTensor *y, const I2vTensor *x);
} I2vOps;

/* The permutation y = x permuted by perm as a 5-D gather: shape[d] of y left-padded with 1s, and
 * stride[d] the element stride in x of one step along y's dim d (0 for padding) — what both
 * backends' permute kernels walk. */
void i2v_permute_plan(const I2vTensor *y, const I2vTensor *x, const int *perm, int64_t shape[5],
                      int64_t stride[5]);

/* The op wrappers models call: check shapes and the stream's sticky error, then dispatch to the
 * stream's backend. */
void i2v_op_linear(I2vStream *st, I2vTensor *y, const I2vTensor *x, const I2vTensor *w,
                   const I2vTensor *b, I2vAct act, gboolean accumulate);
void i2v_op_conv2d(I2vStream *st, I2vTensor *y, const I2vTensor *x, const I2vTensor *w,
                   const I2vTensor *b, const I2vConvParams *p, gboolean accumulate);
void i2v_op_conv_frames(I2vStream *st, I2vTensor *y, const I2vTensor *x, const I2vTensor *w,
                        const I2vTensor *b, gboolean accumulate);
void i2v_op_group_norm(I2vStream *st, I2vTensor *y, const I2vTensor *x, const I2vTensor *gamma,
                       const I2vTensor *beta, int64_t samples, int groups, float eps, I2vAct act);
void i2v_op_layer_norm(I2vStream *st, I2vTensor *y, const I2vTensor *x, const I2vTensor *gamma,
                       const I2vTensor *beta, float eps);
void i2v_op_attention(I2vStream *st, const I2vSeqView *out, const I2vSeqView *q,
                      const I2vSeqView *k, const I2vSeqView *v, const I2vAttnShape *s);
void i2v_op_unary(I2vStream *st, I2vTensor *y, const I2vTensor *x, I2vAct act);
void i2v_op_geglu(I2vStream *st, I2vTensor *y, const I2vTensor *x);
void i2v_op_add(I2vStream *st, I2vTensor *y, const I2vTensor *a, const I2vTensor *b);
void i2v_op_add_rows(I2vStream *st, I2vTensor *x, const I2vTensor *v);
void i2v_op_axpby(I2vStream *st, I2vTensor *y, float alpha, const I2vTensor *a, float beta,
                  const I2vTensor *b);
void i2v_op_concat_last(I2vStream *st, I2vTensor *y, const I2vTensor *a, const I2vTensor *b);
void i2v_op_upsample_nearest(I2vStream *st, I2vTensor *y, const I2vTensor *x);
void i2v_op_adaptive_avg_pool(I2vStream *st, I2vTensor *y, const I2vTensor *x);
void i2v_op_permute(I2vStream *st, I2vTensor *y, const I2vTensor *x, const int *perm);
void i2v_op_gather_rows(I2vStream *st, I2vTensor *y, const I2vTensor *table, const int64_t *ids);
void i2v_op_fill(I2vStream *st, I2vTensor *y, float value);
void i2v_op_copy(I2vStream *st, I2vTensor *y, const I2vTensor *x);

G_END_DECLS
