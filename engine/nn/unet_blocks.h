/* Building blocks of the I2VGen-XL UNet (internal to unet3d.c): weight loading with a sticky
 * error, ResnetBlock2D, the temporal convolution layer, the spatial and temporal transformers
 * and the attention helpers. Everything works on channels-last activations written against the
 * op table; a feature map is [N = B·F, h, w, C] with row b·F + f. */
#pragma once

#include "ops.h"
#include "weights.h"

G_BEGIN_DECLS

/* ---- weights ---- */

/* A weight with an optional bias (Linear, Conv2d, temporal Conv3d); b.data is NULL without bias. */
typedef struct {
  I2vTensor w, b;
} UnetLinear;

/* Affine parameters of a GroupNorm / LayerNorm. */
typedef struct {
  I2vTensor gamma, beta;
} UnetNorm;

/* Loads weights by name into a backend, keeping the first error (later loads are skipped) and a
 * list of every tensor it made, so a half-loaded model can be freed. */
typedef struct {
  I2vWeights *w;
  I2vBackend *be;
  GPtrArray *tensors; /* I2vTensor * of every loaded weight (not owned: they live in the model) */
  GError *error;      /* first failure, or NULL */
} UnetLoader;

/* The loaders read "<prefix>.<name>.weight" / ".bias" (nothing is stored on failure: ld->error
 * is set and the model is freed by the caller). */
/* Linear weight [out, in] (+ bias [out] if bias). */
void unet_load_linear(UnetLoader *ld, UnetLinear *l, const char *prefix, const char *name,
                      int64_t out, int64_t in, gboolean bias);
/* k×k Conv2d weight [out, in, k, k] + bias, rearranged for the op table. */
void unet_load_conv(UnetLoader *ld, UnetLinear *l, const char *prefix, const char *name,
                    int64_t out, int64_t in, int64_t k);
/* Norm scale and shift over c channels. */
void unet_load_norm(UnetLoader *ld, UnetNorm *n, const char *prefix, const char *name, int64_t c);

/* ---- per-call context ---- */

/* What every block of one forward needs besides its weights. */
typedef struct {
  I2vStream *st;
  int groups;          /* norm_num_groups */
  int64_t batch;       /* Bc videos */
  int64_t frames;      /* F frames per video */
  I2vTensor emb_act;   /* SiLU(time + fps embedding) [Bc, time_embed_dim] (resnets) */
  const I2vTensor *kv; /* cross-attention K, V per spatial transformer: kv[2·slot], kv[2·slot+1] */
  int64_t ctx_len;     /* context tokens per video */
} UnetRun;

/* ---- blocks ---- */

typedef struct {
  int64_t cin, cout;
  UnetNorm norm1, norm2;
  UnetLinear conv1, conv2, time_emb_proj;
  UnetLinear shortcut; /* 1×1 conv iff cin != cout (w.data NULL otherwise) */
} UnetResnet;

typedef struct {
  UnetNorm norm[4];
  UnetLinear conv[4]; /* temporal convs [C, 3, C] */
} UnetTempConv;

/* BasicTransformerBlock: self-attention, a second attention (cross over the context, or again
 * self over the same sequences for temporal blocks), GEGLU feed-forward. */
typedef struct {
  int64_t dim;
  int heads, head_dim;
  gboolean cross; /* attn2 attends to the context (spatial) instead of itself (temporal) */
  UnetNorm norm1, norm2, norm3;
  UnetLinear q1, k1, v1, out1, q2, k2, v2, out2, ff_in, ff_out;
} UnetTBlock;

/* Transformer2DModel (spatial, per frame, linear projections) or TransformerTemporalModel
 * (over frames): GroupNorm → proj_in → one block → proj_out → + residual. */
typedef struct {
  int64_t channels, inner;
  gboolean temporal;
  int kv_slot; /* spatial: index of its precomputed context K/V in UnetRun.kv */
  UnetNorm norm;
  UnetLinear proj_in, proj_out;
  UnetTBlock block;
} UnetTransformer;

/* Load the weights of a resnet (cin → cout, time embedding temb_dim) and of a temporal conv
 * layer on c channels under prefix; failures are kept in the loader's error. */
void unet_load_resnet(UnetLoader *ld, UnetResnet *r, const char *prefix, int64_t cin, int64_t cout,
                      int64_t temb_dim);
void unet_load_temp_conv(UnetLoader *ld, UnetTempConv *t, const char *prefix, int64_t c);
/* A transformer on c channels with heads × head_dim inner width; ctx_dim > 0 makes attn2 a
 * cross-attention over ctx_dim-wide context tokens (spatial), 0 a second self-attention over
 * frames (temporal). */
void unet_load_transformer(UnetLoader *ld, UnetTransformer *t, const char *prefix, int64_t c,
                           int heads, int head_dim, int64_t ctx_dim);

/* out [N,h,w,cout] = resnet(x [N,h,w,cin]); out is allocated by the caller. */
void unet_resnet_forward(const UnetRun *run, const UnetResnet *r, const I2vTensor *x,
                         I2vTensor *out);
/* x [N,h,w,C] += the four GroupNorm/SiLU/temporal-conv sub-blocks of x (in place). */
void unet_temp_conv_forward(const UnetRun *run, const UnetTempConv *t, I2vTensor *x);
/* x [N,h,w,C] = transformer(x) + x (in place). */
void unet_transformer_forward(const UnetRun *run, const UnetTransformer *t, I2vTensor *x);

/* ---- attention helpers (shared with the image-latent temporal encoder) ---- */

/* How the rows of a [rows, width] activation form attention sequences: n_outer·n_inner
 * sequences of len tokens; sequence (o, i) has token j at row o·outer + i·inner + j·token. */
typedef struct {
  int64_t n_outer, n_inner, len;
  int64_t outer, inner, token;
} UnetSeqs;

/* Sequences of a feature map [B·F, h, w, C]: per frame over h·w tokens / per video pixel over
 * F frames. */
UnetSeqs unet_spatial_seqs(int64_t n, int64_t hw);
UnetSeqs unet_temporal_seqs(int64_t batch, int64_t frames, int64_t hw);

/* out = softmax(q·kᵀ/√head_dim)·v per head; q/out laid out as qs, k/v as kvs; q outer index o
 * reads k/v outer index o / kv_outer_div. */
void unet_attention(I2vStream *st, I2vTensor *out, const I2vTensor *q, const I2vTensor *k,
                    const I2vTensor *v, const UnetSeqs *qs, const UnetSeqs *kvs,
                    int64_t kv_outer_div, int heads, int head_dim);

G_END_DECLS
