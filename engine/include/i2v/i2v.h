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
 * GError (domain I2V_ERROR, see error.h) with a message a user can act on.
 *
 * Threads: a model may be used from several threads; generations on one model run one at a
 * time (a second i2v_generate waits for the first). Devices: "cpu" is the fp32 reference backend;
 * "cuda:N" the CUDA backend (fp16 by default; I2V_ERROR_BACKEND without a CUDA build, driver or
 * device N); "auto" is cuda:0 when it is usable, else the CPU. */
#pragma once

#include <gio/gio.h>

#include <i2v/error.h>
#include <i2v/image.h>

G_BEGIN_DECLS

typedef struct I2vModel I2vModel;

typedef struct {
  const char *path;         /* diffusers model directory */
  const char *variant;      /* NULL or "fp16" */
  const char *device;       /* "auto", "cpu", "cuda:N" (NULL = "auto") */
  const char *precision;    /* NULL (backend default), "fp32", "fp16", "bf16" */
  gboolean formula_weights; /* take weights from the README-realcfg formula instead of files */
  guint64 formula_seed;
  /* LoRA styles merged into the UNet and text encoder weights at load (NULL = none):
   * "path[:scale]" entries separated by commas, scale 1 when omitted (lora.h lists the file
   * layouts read). A module that matches no weight of the model is an error. */
  const char *lora;
  /* Free the CLIP text and vision encoders' weights as soon as each job's conditioning is done
   * (and right after loading) and load them again, from the model directory or the formula, for
   * the next job: lower memory while the UNet runs and between jobs, a slower start per job. */
  gboolean release_encoders;
} I2vModelOptions;

/* Loads (or finds in the process-wide cache: same path+variant+device+precision+weights+LoRA+
 * release_encoders) a model.
 * Returns a new reference (i2v_model_unref) or NULL with error. */
I2vModel *i2v_model_load(const I2vModelOptions *opts, GError **error);

/* Reference counting; the last unref frees the model and its backend memory. */
I2vModel *i2v_model_ref(I2vModel *m);
void i2v_model_unref(I2vModel *m);

/* Name of the device the model runs on ("cpu", "cuda:0"); owned by m. */
const char *i2v_model_device(const I2vModel *m);

/* Memory a model holds on its device, in bytes: weights and other persistent tensors (now and
 * at most since load), and the scratch arena of activations (kept between generations and reused:
 * after the first generation of a size it does not grow; the arena is shared by every stage, so
 * its size is that of the hungriest stage, not a sum). The allocator's high-water mark is
 * persistent_peak + scratch.
 * device_used / device_total: what the driver reports for the whole device (cudaMemGetInfo:
 * total − free), i.e. this process's allocations plus the CUDA context, library workspaces and
 * any other process; device_peak is the largest device_used sampled at the end of every
 * generation stage (each encoder, the UNet preparation, every denoising step, every decode
 * chunk) since load. All three are 0 on the CPU. */
typedef struct {
  size_t persistent, persistent_peak, scratch;
  size_t device_used, device_total, device_peak;
} I2vMemoryStats;

/* Fills out with m's memory use. */
void i2v_model_memory(I2vModel *m, I2vMemoryStats *out);

/* What width and height must be multiples of (the VAE down-scale factor: 8 for I2VGen-XL). */
int i2v_model_size_multiple(const I2vModel *m);

/* Channels of the video latents (4): init_latents is [1, C, F, H/m, W/m] with m as above. */
int i2v_model_latent_channels(const I2vModel *m);

/* Generation parameters. Strings are borrowed for the duration of the call. */
typedef struct {
  const char *prompt;
  const char *negative_prompt; /* NULL = "" */
  int steps;                   /* DDIM steps (50) */
  double guidance;             /* classifier-free guidance scale (9.0); <= 1 runs one branch */
  guint64 seed;                /* initial and posterior noise derive from it (noise.h) */
  int frames;                  /* 16 */
  int fps;                     /* target_fps micro-conditioning (16) */
  int width, height;           /* 1280 × 704; multiples of the VAE factor (8) */
  int decode_chunk_size;       /* frames per VAE decode call (1) */
  /* How far the clip may move from the image, in (0, 1] (1). 1 is the reference pipeline: the
   * loop starts from pure noise. Below 1 it starts like image-to-image diffusion: from the
   * image's latent (on every frame) noised to the level of step (1 − s)·steps, and runs the last
   * max(1, ⌊s·steps⌋) steps: the frames keep more of the image and move less, and it is faster. */
  double motion_strength;
  /* Explicit noise (host float32, PyTorch layouts) instead of the seed, for parity tests;
   * NULL = from the seed through the generator documented in noise.h. */
  const float *init_latents;        /* [1, 4, F, H/8, W/8] */
  const float *vae_posterior_noise; /* [1, 4, H/8, W/8] */
} I2vParams;

/* Fills p with the reference pipeline's defaults (prompt "", negative NULL, seed 0). */
void i2v_params_init(I2vParams *p);

/* Checks p against the model (frames ≥ 1, steps ≥ 1, guidance ≥ 0, sizes multiples of the
 * VAE factor, ...): FALSE with an I2V_ERROR_INVALID error naming the parameter and the range. */
gboolean i2v_params_validate(const I2vModel *m, const I2vParams *p, GError **error);

/* A host float32 tensor handed to the dump callback: row-major, ndim (≤ 5) dimensions; valid
 * during the call only. */
typedef struct {
  int ndim;
  gint64 shape[5];
  const float *data;
} I2vTensorView;

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

/* One timed stage of a generation, for benchmarks. name is one of "text_encoder",
 * "image_encoder", "vae_encoder", "unet_prepare", "unet_step" (index = step, UNet + guidance +
 * DDIM update) and "vae_decode_frame" (index = first frame of the decode call, which covers
 * decode_chunk_size frames). Times are taken after a backend sync. */
typedef struct {
  const char *name; /* static string */
  int index;
  gint64 us;    /* wall time */
  double flops; /* FLOPs the op table dispatched during the stage (I2vBackend.flops) */
} I2vStage;

typedef struct {
  /* Called after every denoising step and every decoded frame (may be NULL). */
  void (*progress)(const I2vProgress *p, void *user);
  /* Called with each frame as soon as it is decoded; return FALSE to stop (error CANCELLED). */
  gboolean (*frame)(const I2vFrame *f, void *user);
  /* Debugging (may be NULL): receives intermediates as host float32 tensors under the golden file
   * names and PyTorch layouts of fixtures README §4.9: "encoder_hidden_states", "prompt_embeds",
   * "negative_prompt_embeds", "clip_pixel_values", "image_embeddings", "vae_input", "vae_mean",
   * "vae_logvar", "vae_std", "image_latents", "init_latents", "vae_posterior_noise",
   * "step{i}.unet_out", "step{i}.noise_pred", "step{i}.pred_original_sample", "step{i}.latents",
   * "latents_final", "video" and "frames". Setting it costs device-to-host copies every step. */
  void (*dump)(const char *name, const I2vTensorView *t, void *user);
  /* Benchmarking (may be NULL): called at the end of every stage; setting it adds a backend sync
   * per stage. */
  void (*stage)(const I2vStage *s, void *user);
  void *user;
} I2vCallbacks;

/* Generates one clip from image with p. Blocks until done, cancelled or failed. */
gboolean i2v_generate(I2vModel *m, const I2vImage *image, const I2vParams *p,
                      const I2vCallbacks *cb, GCancellable *cancellable, GError **error);

G_END_DECLS
