/* Multi-head attention over sequences laid out inside channels-last activations, shared by the
 * UNet's transformers and image-latent encoder and the VAE's mid-block attention. */
#pragma once

#include "ops.h"

G_BEGIN_DECLS

/* How the rows of a [rows, width] activation form attention sequences: n_outer·n_inner
 * sequences of len tokens; sequence (o, i) has token j at row o·outer + i·inner + j·token. */
typedef struct {
  int64_t n_outer, n_inner, len;
  int64_t outer, inner, token;
} I2vSeqs;

/* Sequences of a feature map [N, h, w, C]: each of the N maps over its h·w pixels. */
I2vSeqs i2v_seqs_spatial(int64_t n, int64_t hw);

/* Sequences of a video [B·F, h, w, C]: each pixel of each video over its F frames. */
I2vSeqs i2v_seqs_temporal(int64_t batch, int64_t frames, int64_t hw);

/* Sequences of a per-video context [B·len, C]: one of len tokens per video. */
I2vSeqs i2v_seqs_context(int64_t batch, int64_t len);

/* out = softmax(q·kᵀ/√head_dim)·v per head; q and out laid out as qs, k and v as kvs; q's outer
 * index o reads k/v outer index o / kv_outer_div (F frames over one per-video context). */
void i2v_attention(I2vStream *st, I2vTensor *out, const I2vTensor *q, const I2vTensor *k,
                   const I2vTensor *v, const I2vSeqs *qs, const I2vSeqs *kvs, int64_t kv_outer_div,
                   int heads, int head_dim);

G_END_DECLS
