/* libi2v public API: load an I2VGen-XL model once, generate many clips with it.
 *
 *   I2vModel *m = i2v_model_load(&opts, &err);         // refcounted, shareable
 *   I2vParams p; i2v_params_init(&p);                   // reference pipeline defaults
 *   p.prompt = "a red ball"; p.steps = 30;
 *   i2v_generate(m, &image, &p, &callbacks, cancellable, &err);
 *   i2v_model_unref(m);
 *
 * Frames are handed to callbacks.frame as soon as each is decoded; progress after every step;
 * a GCancellable is honoured between steps (error G_IO_ERROR_CANCELLED). Every failure is a
 * GError (domain I2V_ERROR, see error.h) with a message a user can act on. */
#pragma once

#include <gio/gio.h>

#include "error.h"
#include "image.h"

G_BEGIN_DECLS

typedef struct I2vModel I2vModel;

typedef struct {
  const char *path;         /* diffusers model directory */
  const char *variant;      /* NULL or "fp16" */
  const char *device;       /* "auto", "cpu", "cuda:N" (NULL = "auto") */
  const char *precision;    /* NULL (backend default), "fp32", "fp16", "bf16" */
  gboolean formula_weights; /* take weights from the README-realcfg formula instead of files */
  guint64 formula_seed;
} I2vModelOptions;

/* Loads (or finds in the process-wide cache: same path+variant+device+precision) a model.
 * Returns a new reference (i2v_model_unref) or NULL with error. */
I2vModel *i2v_model_load(const I2vModelOptions *opts, GError **error);

/* Reference counting; the last unref frees the model and its backend memory. */
I2vModel *i2v_model_ref(I2vModel *m);
void i2v_model_unref(I2vModel *m);

/* Name of the device the model runs on ("cpu", "cuda:0"); owned by m. */
const char *i2v_model_device(const I2vModel *m);

/* Generation parameters. Strings are borrowed for the duration of the call. */
typedef struct {
  const char *prompt;
  const char *negative_prompt; /* NULL = "" */
  int steps;                   /* DDIM steps (50) */
  double guidance;             /* classifier-free guidance scale (9.0); <= 1 runs one branch */
  guint64 seed;                /* initial noise and posterior noise derive from it */
  int frames;                  /* 16 */
  int fps;                     /* target_fps micro-conditioning (16) */
  int width, height;           /* 1280 × 704; multiples of the VAE factor (8) */
  int decode_chunk_size;       /* frames per VAE decode call (1) */
  /* Explicit noise (host float32) instead of the seed, for parity tests; NULL = from seed. */
  const float *init_latents;        /* [1, 4, F, H/8, W/8] */
  const float *vae_posterior_noise; /* [1, 4, H/8, W/8] */
} I2vParams;

/* Fills p with the reference pipeline's defaults (prompt "", negative NULL, seed 0). */
void i2v_params_init(I2vParams *p);

/* Checks p against the model (frames ≥ 1, steps ≥ 1, guidance ≥ 0, sizes multiples of the
 * VAE factor, ...): FALSE with an I2V_ERROR_INVALID error naming the parameter and the range. */
gboolean i2v_params_validate(const I2vModel *m, const I2vParams *p, GError **error);

/* One decoded frame: RGB8, width × height, index 0..frames-1; valid during the callback only. */
typedef struct {
  int index, count;
  const I2vImage *image;
} I2vFrame;

typedef struct {
  int step, steps;   /* denoising step just finished (1-based); steps when decoding */
  int frame, frames; /* frames decoded so far */
  gint64 elapsed_us, eta_us;
} I2vProgress;

typedef struct {
  /* Called after every denoising step and every decoded frame (may be NULL). */
  void (*progress)(const I2vProgress *p, void *user);
  /* Called with each frame as soon as it is decoded; return FALSE to stop (error CANCELLED). */
  gboolean (*frame)(const I2vFrame *f, void *user);
  void *user;
} I2vCallbacks;

/* Generates one clip from image with p. Blocks until done, cancelled or failed. */
gboolean i2v_generate(I2vModel *m, const I2vImage *image, const I2vParams *p,
                      const I2vCallbacks *cb, GCancellable *cancellable, GError **error);

G_END_DECLS
