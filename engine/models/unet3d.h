/* The I2VGen-XL 3D UNet (diffusers I2VGenXLUNet), every size from unet/config.json.
 *
 * Backend tensors in and out, channels-last: a video tensor is [B, F, h, w, C] (the pipeline's
 * PyTorch layout [B, C, F, h, w] is converted once with i2v_unet_upload_ncfhw /
 * i2v_unet_download_ncfhw), so the denoising loop stays on the device.
 *
 * Everything that does not change during the denoising loop (the 145-token context, the
 * image-latent concat branch, the fps embedding and the cross-attention K/V of every spatial
 * transformer) is computed once by i2v_unet_prepare (docs/model.md §1); i2v_unet_forward then only
 * needs the noisy sample and the timestep.
 *
 * Debug taps (i2v_tap, diffusers module names): i2v_unet_prepare taps "time_proj.call1",
 * "fps_embedding", "image_latents_context_embedding", "context_embedding",
 * "image_latents_proj_in", "image_latents_temporal_encoder"; i2v_unet_forward taps
 * "time_proj.call0", "time_embedding", "conv_in", "transformer_in", "down_blocks.N",
 * "mid_block", "up_blocks.N", "conv_norm_out", "conv_out". Layouts handed to the tap:
 *   time_proj.*, *_embedding        [Bc, dim]
 *   context_embedding               [Bc, in_channels·cross_attention_dim]
 *   image_latents_context_embedding [Bc, 8, 8, cross_attention_dim]
 *   image_latents_temporal_encoder  [Bc, F, h·w, in_channels] (the golden is [Bc·h·w, F, C])
 *   feature maps                    [Bc·F, h, w, C] (row b·F + f)                               */
#pragma once

#include "model_dir.h"

G_BEGIN_DECLS

typedef struct I2vUnet I2vUnet;
typedef struct I2vUnetCond I2vUnetCond;

/* Loads config and weights of md's unet into be. Returns a new UNet (i2v_unet_free) or NULL with
 * an error naming the file / key / value or tensor. */
I2vUnet *i2v_unet_load(I2vModelDir *md, I2vBackend *be, GError **error);

/* Frees the UNet and its weights (NULL allowed). */
void i2v_unet_free(I2vUnet *u);

/* Sizes read from unet/config.json (and the parameter count loaded). */
int i2v_unet_in_channels(const I2vUnet *u);         /* latent channels of sample/out (4) */
int i2v_unet_out_channels(const I2vUnet *u);        /* 4 */
int i2v_unet_cross_attention_dim(const I2vUnet *u); /* text / image embedding width (1024) */
int i2v_unet_time_embed_dim(const I2vUnet *u);      /* 4·block_out_channels[0] (1280) */
int i2v_unet_num_levels(const I2vUnet *u);          /* len(block_out_channels) */
gint64 i2v_unet_num_params(const I2vUnet *u);       /* parameters loaded */

/* Computes the loop-invariant conditioning of one call shape (Bc videos of F frames, h×w
 * latents) on stream st. text_ctx [Bc, 77, D] and image_emb [Bc, 1, D] (D = cross_attention_dim),
 * image_latents [Bc, F, h, w, in_channels] channels-last, fps[Bc] host values. The condition's
 * tensors live in st's scratch arena: it is valid until the caller releases the arena to a mark
 * taken before this call. Returns a new condition (i2v_unet_cond_free frees its host side) or
 * NULL with error. */
I2vUnetCond *i2v_unet_prepare(const I2vUnet *u, I2vStream *st, const I2vTensor *text_ctx,
                              const I2vTensor *image_emb, const I2vTensor *image_latents,
                              const int64_t *fps, GError **error);

/* Makes every forward under c run its transformers on at most frames frames at a time (spatial)
 * and on as many rows (temporal), so their buffers are those of the chunk, not of the whole
 * batch; 0 (the default) runs them whole. Same arithmetic either way. */
void i2v_unet_cond_set_attention_chunk(I2vUnetCond *c, int64_t frames);

/* Frees a condition's host side (NULL allowed). */
void i2v_unet_cond_free(I2vUnetCond *c);

/* One UNet evaluation on st: out [Bc, F, h, w, out_channels] = unet(sample [Bc, F, h, w,
 * in_channels], timestep) under condition c (v-prediction). out is allocated by the caller and
 * must not alias sample. Scratch used inside is released before returning; nothing is allocated
 * on the host. FALSE with error on a shape mismatch or a backend failure. */
gboolean i2v_unet_forward(const I2vUnet *u, I2vStream *st, const I2vUnetCond *c,
                          const I2vTensor *sample, int64_t timestep, I2vTensor *out,
                          GError **error);

/* Uploads host float32 x [B, C, F, h, w] (PyTorch layout) into out [B, F, h, w, C], a new tensor
 * in st's scratch arena. */
gboolean i2v_unet_upload_ncfhw(I2vStream *st, const float *x, int64_t b, int64_t c, int64_t f,
                               int64_t h, int64_t w, I2vTensor *out, GError **error);

/* Downloads t [B, F, h, w, C] into host float32 x [B, C, F, h, w] (caller-allocated). */
gboolean i2v_unet_download_ncfhw(I2vStream *st, const I2vTensor *t, float *x, GError **error);

G_END_DECLS
