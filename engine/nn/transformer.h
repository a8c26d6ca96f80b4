/* The I2VGen-XL UNet's transformers on channels-last video feature maps [B·F, h, w, C] (row
 * b·F + f): Transformer2DModel (spatial, per frame, with cross-attention over the context) and
 * TransformerTemporalModel (over the frames of each pixel), each GroupNorm → proj_in → one
 * BasicTransformerBlock (self-attention, a second attention, GEGLU feed-forward) → proj_out →
 * + residual (docs/model.md, "UNet"). */
#pragma once

#include "attention.h"
#include "loader.h"

G_BEGIN_DECLS

/* What every block of one UNet forward needs besides its weights. */
typedef struct {
  I2vStream *st;
  int groups;          /* norm_num_groups */
  int64_t batch;       /* Bc videos */
  int64_t frames;      /* F frames per video */
  I2vTensor emb_act;   /* SiLU(time + fps embedding) [Bc, time_embed_dim] (resnets) */
  const I2vTensor *kv; /* cross-attention K, V per spatial transformer: kv[2·slot], kv[2·slot+1] */
  int64_t ctx_len;     /* context tokens per video */
  int64_t chunk_frames; /* transformers on at most this many frames (temporal: as many rows) at
                           a time; 0: the whole batch (I2vParams.attention_chunk) */
} I2vUnetRun;

/* BasicTransformerBlock: self-attention, a second attention (cross over the context, or again
 * self over the same sequences for temporal blocks), GEGLU feed-forward. */
typedef struct {
  int64_t dim;
  int heads, head_dim;
  gboolean cross; /* attn2 attends to the context (spatial) instead of itself (temporal) */
  I2vNorm norm1, norm2, norm3;
  I2vLinear q1, k1, v1, out1, q2, k2, v2, out2, ff_in, ff_out;
} I2vTransformerBlock;

typedef struct {
  int64_t channels, inner;
  gboolean temporal;
  int kv_slot; /* spatial: index of its precomputed context K/V in I2vUnetRun.kv */
  I2vNorm norm;
  I2vLinear proj_in, proj_out;
  I2vTransformerBlock block;
} I2vTransformer;

/* Loads a transformer "<prefix>.*" on c channels with heads × head_dim inner width; ctx_dim > 0
 * makes attn2 a cross-attention over ctx_dim-wide context tokens (spatial), 0 a second
 * self-attention over frames (temporal). */
void i2v_load_transformer(I2vLoader *ld, I2vTransformer *t, const char *prefix, int64_t c,
                          int heads, int head_dim, int64_t ctx_dim);

/* x [B·F, h, w, C] = transformer(x) + x (in place). */
void i2v_transformer_forward(const I2vUnetRun *run, const I2vTransformer *t, I2vTensor *x);

G_END_DECLS
