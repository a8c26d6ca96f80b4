/* What the CLIP text and vision towers share: their config.json sizes and the pre-LN encoder
 * layer (transformers CLIPEncoderLayer), written once against the op table. */
#pragma once

#include "model_dir.h"
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

/* Reads the sizes above from cfg; errors (I2V_ERROR_CONFIG) name file, key and value. */
gboolean i2v_clip_dims_read(JsonObject *cfg, const char *file, I2vClipDims *d, GError **error);

/* One encoder layer's weights; q/k/v are packed into one [3·hidden, hidden] projection so the
 * layer runs one GEMM for all three (the attention op reads q, k, v at offsets 0, C, 2C). */
typedef struct {
  I2vTensor ln1_w, ln1_b;
  I2vTensor qkv_w, qkv_b;
  I2vTensor out_w, out_b;
  I2vTensor ln2_w, ln2_b;
  I2vTensor fc1_w, fc1_b;
  I2vTensor fc2_w, fc2_b;
} I2vClipLayer;

/* Loads the layer "<prefix>layer_norm1.weight", "<prefix>self_attn.q_proj.weight", ... with
 * the shapes d implies. On failure the error names the tensor; l is left freed. */
gboolean i2v_clip_layer_load(I2vClipLayer *l, I2vWeights *w, I2vBackend *be, const char *prefix,
                             const I2vClipDims *d, GError **error);

/* Frees the layer's weights (a zeroed layer is fine). */
void i2v_clip_layer_free(I2vClipLayer *l);

/* x [batch, tokens, hidden] ← layer(x), in place:
 *   x += out_proj(MHA(LN1(x)))  (scale head_dim^-½, causal mask for the text tower)
 *   x += fc2(act(fc1(LN2(x))))
 * Intermediates come from the scratch arena and are released before returning. */
void i2v_clip_layer_forward(I2vStream *st, const I2vClipLayer *l, const I2vClipDims *d,
                            I2vTensor *x, gboolean causal);

/* Loads the d->layers layers "<tower>.encoder.layers.<i>." into a new array (g_free after
 * i2v_clip_layers_free). NULL with an error naming the tensor on failure. */
I2vClipLayer *i2v_clip_layers_load(I2vWeights *w, I2vBackend *be, const char *tower,
                                   const I2vClipDims *d, GError **error);

/* Frees the weights of n layers and the array (NULL allowed). */
void i2v_clip_layers_free(I2vClipLayer *layers, int n);

/* x [batch, tokens, C] += table[0..tokens-1] for every batch element (position embeddings). */
void i2v_clip_add_positions(I2vStream *st, I2vTensor *x, const I2vTensor *table);

/* Loads a LayerNorm "<prefix>.weight" / "<prefix>.bias" of n channels. */
gboolean i2v_clip_norm_load(I2vWeights *w, I2vBackend *be, const char *prefix, int64_t n,
                            I2vTensor *gamma, I2vTensor *beta, GError **error);

/* Taps x under "hidden_states.<index>" (transformers' hidden_states tuple index) when a tap is
 * installed. */
void i2v_clip_tap_hidden(I2vStream *st, int index, const I2vTensor *x);

G_END_DECLS
