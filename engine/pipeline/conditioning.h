/* The pipeline's conditioning of one prompt set and one input image (docs/model.md §1):
 * prompt embeddings, the CLIP image branch and the VAE image branch. Shared by i2v_generate and
 * the `i2vgen encode` tool, so both compute exactly the same tensors. Host float32, PyTorch
 * layouts. */
#pragma once

#include "clip_text.h"
#include "clip_vision.h"
#include "preprocess.h"
#include "tokenizer.h"
#include "vae.h"

G_BEGIN_DECLS

/* The CLIP image preprocessing of a model (feature_extractor/preprocessor_config.json). */
typedef struct {
  int size; /* input side: crop_size, which must equal the encoder's image_size */
  float mean[3], std[3];
} I2vClipPreprocess;

/* Reads md's feature extractor config for a vision encoder of input side image_size. Errors name
 * the file and the key (image_mean / image_std not 3 numbers, crop_size ≠ image_size). */
gboolean i2v_clip_preprocess_load(I2vModelDir *md, int image_size, I2vClipPreprocess *pp,
                                  GError **error);

/* Embeddings of n texts as the pipeline feeds the UNet: ids padded/truncated to the tokenizer's
 * max length, penultimate encoder layer + final LayerNorm (clip_skip 1). out: [n, L, hidden]
 * (caller-allocated). A truncated text is logged (g_info), not an error. */
gboolean i2v_encode_prompts(const I2vTokenizer *tok, const I2vClipText *text, I2vStream *st,
                            const char *const *texts, int n, float *out, GError **error);

/* CLIP branch for a video of the given width: _center_crop_wide to width × width, BILINEAR to
 * pp->size, normalise, encode. clip_input (NULL allowed) receives the resized RGB8 image (free
 * with i2v_image_clear), pixel_values [1,3,S,S] and embeds [1,projection] are caller-allocated
 * (pixel_values may be NULL). */
gboolean i2v_encode_image_clip(const I2vClipVision *vision, I2vStream *st,
                               const I2vClipPreprocess *pp, const I2vImage *image, int width,
                               I2vImage *clip_input, float *pixel_values, float *embeds,
                               GError **error);

/* VAE branch: _center_crop_wide to width × height, to [-1, 1], encode. crop (NULL allowed)
 * receives the cropped RGB8 image (i2v_image_clear); input [1,3,H,W] (NULL allowed) and moments
 * [1, 2·latent, H/s, W/s] are caller-allocated. */
gboolean i2v_encode_image_vae(const I2vVae *vae, I2vStream *st, const I2vImage *image, int width,
                              int height, I2vImage *crop, float *input, float *moments,
                              GError **error);

G_END_DECLS
