/* The CLIP vision encoder with projection (transformers CLIPVisionModelWithProjection), every
 * size from image_encoder/config.json. */
#pragma once

#include "model_dir.h"

G_BEGIN_DECLS

typedef struct I2vClipVision I2vClipVision;

/* Loads config and weights of md's image_encoder into be; NULL with error on failure.
 * Free with i2v_clip_vision_free. */
I2vClipVision *i2v_clip_vision_load(I2vModelDir *md, I2vBackend *be, GError **error);

/* Like i2v_clip_vision_load, but holds only the weights around the layers: each forward reads
 * every layer from md onto be in turn and frees it after it ran, so the device holds one layer's
 * weights at a time (for released encoders: they are read again every job anyway). md must
 * outlive the encoder. */
I2vClipVision *i2v_clip_vision_load_streamed(I2vModelDir *md, I2vBackend *be, GError **error);

/* Frees the encoder (NULL allowed). */
void i2v_clip_vision_free(I2vClipVision *m);

/* Sizes read from config.json (tokens = patches + CLS). */
int i2v_clip_vision_image_size(const I2vClipVision *m); /* input side, e.g. 224 */
int i2v_clip_vision_hidden_size(const I2vClipVision *m);
int i2v_clip_vision_num_tokens(const I2vClipVision *m); /* patches + 1 (CLS) */
int i2v_clip_vision_num_layers(const I2vClipVision *m);
int i2v_clip_vision_projection_dim(const I2vClipVision *m);

/* pixel_values: host float32 [batch, 3, S, S]. image_embeds (host [batch, projection_dim]) =
 * visual_projection(post_layernorm(CLS token after all layers)). When hidden is not NULL it
 * receives hidden_states.n_hidden ([batch, tokens, hidden]; 0 = pre_layrnorm(embeddings)) and
 * the encoder stops there unless image_embeds is also requested.
 * Debug taps: "hidden_states.<l>" [batch, tokens, hidden] after pre_layrnorm (l = 0) and after
 * each layer l that runs. */
gboolean i2v_clip_vision_forward(const I2vClipVision *m, I2vStream *st, const float *pixel_values,
                                 int batch, float *image_embeds, int n_hidden, float *hidden,
                                 GError **error);

G_END_DECLS
