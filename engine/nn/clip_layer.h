/* What the CLIP text and vision towers share: their config.json sizes and the pre-LN encoder
 * layer (transformers CLIPEncoderLayer), written once against the op table. */
#pragma once

#include "config.h"
#include "loader.h"
#include "ops.h"

G_BEGIN_DECLS

/* The transformer sizes every CLIP config.json states. */
typedef struct {
  int hidden;       /* hidden_size */
  int layers;       /* num_hidden_layers */
  int heads;        /* num_attention_heads (hidden divisible by it) */
  int intermediate; /* intermediate_size */
  I2vAct act;       /* hidden_act; transformers' default "quick_gelu" when absent */
  float eps;        /* layer_norm_eps */
} I2vClipDims;

/* Reads the sizes above from c (ranges: docs/model.md); errors (I2V_ERROR_CONFIG) name the file,
 * the key and the value. */
gboolean i2v_clip_dims_read(const I2vConfig *c, I2vClipDims *d, GError **error);

/* One encoder layer's weights; q/k/v are packed into one [3·hidden, hidden] projection so the
 * layer runs one GEMM for all three (the attention op reads q, k, v at offsets 0, C, 2C). */
typedef struct {
  I2vNorm ln1, ln2;
  I2vTensor qkv_w, qkv_b;
  I2vLinear out, fc1, fc2;
} I2vClipLayer;

/* Loads layer index "<tower>.encoder.layers.<index>.*" into layer (its tensors are ld's params;
 * failures are ld's). */
void i2v_clip_layer_load(I2vLoader *ld, I2vClipLayer *layer, const char *tower, int index,
                         const I2vClipDims *d);

/* Loads the d->layers layers "<tower>.encoder.layers.<i>.*" into a new array (g_free after
 * freeing ld's params, which hold its tensors; failures are ld's). */
I2vClipLayer *i2v_clip_layers_load(I2vLoader *ld, const char *tower, const I2vClipDims *d);

/* x [batch, tokens, hidden] ← layer(x), in place:
 *   x += out_proj(MHA(LN1(x)))  (scale head_dim^-½, causal mask for the text tower)
 *   x += fc2(act(fc1(LN2(x))))
 * Intermediates come from the scratch arena and are released before returning. */
void i2v_clip_layer_forward(I2vStream *st, const I2vClipLayer *l, const I2vClipDims *d,
                            I2vTensor *x, gboolean causal);

/* Layer index of a streamed tower: its weights "<tower>.encoder.layers.<index>.*" read from w onto
 * be, run on x (as i2v_clip_layer_forward) and freed once the stream has finished with them, so
 * the device holds one layer's weights at a time. FALSE with an error naming the tensor or the
 * stream's failure. */
gboolean i2v_clip_layer_run_streamed(I2vWeights *w, I2vBackend *be, I2vStream *st,
                                     const char *tower, int index, const I2vClipDims *d,
                                     gboolean causal, I2vTensor *x, GError **error);

/* x [batch, tokens, C] += table[0..tokens-1] for every batch element (position embeddings). */
void i2v_clip_add_positions(I2vStream *st, I2vTensor *x, const I2vTensor *table);

/* Taps x under "hidden_states.<index>" (transformers' hidden_states tuple index) when a tap is
 * installed. */
void i2v_clip_tap_hidden(I2vStream *st, int index, const I2vTensor *x);

G_END_DECLS
