/* The CLIP text encoder (transformers CLIPTextModel), every size from text_encoder/config.json. */
#pragma once

#include "model_dir.h"

G_BEGIN_DECLS

typedef struct I2vClipText I2vClipText;

/* Loads config and weights of md's text_encoder into be. Returns a new encoder
 * (i2v_clip_text_free) or NULL with an error naming the file / tensor / key. */
I2vClipText *i2v_clip_text_load(I2vModelDir *md, I2vBackend *be, GError **error);

/* Like i2v_clip_text_load, but holds only the weights around the layers: each forward reads every
 * layer from md onto be in turn and frees it after it ran, so the device holds one layer's weights
 * at a time (for released encoders: they are read again every job anyway). md must outlive the
 * encoder. A new encoder (i2v_clip_text_free) or NULL with an error. */
I2vClipText *i2v_clip_text_load_streamed(I2vModelDir *md, I2vBackend *be, GError **error);

/* Frees the encoder and its weights (NULL allowed). */
void i2v_clip_text_free(I2vClipText *m);

/* Sizes read from config.json: hidden_size, num_hidden_layers, max_position_embeddings. */
int i2v_clip_text_hidden_size(const I2vClipText *m);
int i2v_clip_text_num_layers(const I2vClipText *m);
int i2v_clip_text_max_positions(const I2vClipText *m);

/* Runs the embeddings and the first n_layers encoder layers on batch × len ids (causal mask, no
 * padding mask), optionally the final LayerNorm, into out: host float32 [batch, len, hidden].
 * The pipeline's prompt embeddings are n_layers = num_layers - 1 with final_norm (clip_skip 1);
 * hidden_states.k of transformers is n_layers = k without it.
 * Debug taps: "hidden_states.<l>" [batch, len, hidden] after the embeddings (l = 0) and after
 * each layer l that runs. */
gboolean i2v_clip_text_forward(const I2vClipText *m, I2vStream *st, const int64_t *ids, int batch,
                               int len, int n_layers, gboolean final_norm, float *out,
                               GError **error);

G_END_DECLS
