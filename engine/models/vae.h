/* The KL autoencoder (diffusers AutoencoderKL), every size from vae/config.json. Host float32
 * NCHW at the interface, channels-last inside. */
#pragma once

#include "model_dir.h"

G_BEGIN_DECLS

typedef struct I2vVae I2vVae;

/* Loads config and weights of md's vae into be; NULL with error. Free with i2v_vae_free. */
I2vVae *i2v_vae_load(I2vModelDir *md, I2vBackend *be, GError **error);

/* Frees the VAE (NULL allowed). */
void i2v_vae_free(I2vVae *m);

/* Sizes and constants read from vae/config.json. */
int i2v_vae_latent_channels(const I2vVae *m);
int i2v_vae_downscale(const I2vVae *m);         /* 2^(len(block_out_channels)-1): 8 real, 1 tiny */
double i2v_vae_scaling_factor(const I2vVae *m); /* config scaling_factor */

/* Encodes one image x [1,3,H,W] (values in [-1,1]) to moments [1, 2·latent, H/s, W/s]:
 * channels 0..latent-1 mean, the rest logvar (unclamped). H, W must be multiples of s. */
gboolean i2v_vae_encode(const I2vVae *m, I2vStream *st, const float *x, int height, int width,
                        float *moments, GError **error);

/* Decodes n latents z [n, latent, h, w] (already multiplied by 1/scaling_factor) to
 * out [n, 3, h·s, w·s] (no clamping). */
gboolean i2v_vae_decode(const I2vVae *m, I2vStream *st, const float *z, int n, int h, int w,
                        float *out, GError **error);

/* i2v_vae_decode in spatial tiles of tile × tile latent pixels (0: whole), neighbours sharing
 * overlap latent pixels (fewer when a tile is narrower), blended linearly across the overlap:
 * device memory of one tile, output that differs from the whole decode near the seams
 * (docs/PERFORMANCE.md "VAE tiles"). */
gboolean i2v_vae_decode_tiled(const I2vVae *m, I2vStream *st, const float *z, int n, int h, int w,
                              int tile, int overlap, float *out, GError **error);

/* Splits the moments of one image [1, 2·latent, h, w] (hw = h·w) into the posterior mean, logvar
 * clamped to [-30, 20] and std = exp(0.5·logvar), each [1, latent, h, w] in caller memory (any
 * of the three may be NULL). */
void i2v_vae_posterior(const float *moments, int latent, int64_t hw, float *mean, float *logvar,
                       float *std);

/* z = latents · (1/scaling_factor) for n values, as the pipeline's decode_latents does: the
 * reciprocal in double, used as a float32 scalar, the product in float32 (not a division). */
void i2v_vae_unscale_latents(const I2vVae *m, const float *latents, int64_t n, float *z);

/* Decodes the video latents [1, latent, frames, h, w] the pipeline holds (scaled, frames after
 * channels) frame by frame into video [1, 3, frames, h·s, w·s] (caller memory, no clamping). */
gboolean i2v_vae_decode_video(const I2vVae *m, I2vStream *st, const float *latents, int frames,
                              int h, int w, float *video, GError **error);

G_END_DECLS
