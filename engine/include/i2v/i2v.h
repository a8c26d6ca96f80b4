/* libi2v public API: load an I2VGen-XL model once, generate many clips with it.
 *
 *   I2vModel *m = i2v_model_load(&opts, &err);        // read-only, refcounted, shareable
 *   I2vSession *s = i2v_session_new(m, &err);          // one run's state: scratch, stream, ...
 *   I2vParams p; i2v_params_init(&p);                  // reference pipeline defaults
 *   p.prompt = "a red ball"; p.steps = 30;
 *   i2v_generate(s, &image, &p, &callbacks, cancellable, &err);   // as often as needed
 *   i2v_session_free(s);
 *   i2v_model_unref(m);
 *
 * (i2v_model_generate does the middle three lines for a one-off clip.) Frames are handed to
 * callbacks.frame as soon as each is decoded; progress after every step; a GCancellable is
 * honoured between steps (error G_IO_ERROR_CANCELLED). Every failure is a GError (domain
 * I2V_ERROR, see error.h) with a message a user can act on.
 *
 * Threads (whisper.cpp's model/state split): a model is read-only once loaded and shared by any
 * number of sessions; a session holds everything a generation writes (its scratch memory, error,
 * counters and, on CUDA, its own stream and library handles). Sessions on one model run at the
 * same time from different threads (two threads on the CPU, two CUDA streams on a GPU); one
 * session runs one generation at a time. No engine lock is held while a callback runs.
 * Devices: "cpu" is the fp32 reference backend; "cuda:N" the CUDA backend (fp16 by default;
 * I2V_ERROR_BACKEND without a CUDA build, driver or device N); "auto" is cuda:0 when it is
 * usable, else the CPU. */
#pragma once

#include <i2v/export.h>

#include <gio/gio.h>

#include <i2v/error.h>
#include <i2v/image.h>

G_BEGIN_DECLS

typedef struct I2vModel I2vModel;
typedef struct I2vSession I2vSession;

/* ---- devices and precisions: the one parser for the element, the CLI and the engine ---- */

/* I2V_DEVICE_PLAN_CUDA ("plan:cuda") is the planning device: the CUDA backend's code on a fake
 * device that counts memory and computes nothing (i2v_plan_memory); it needs no GPU. */
typedef enum {
  I2V_DEVICE_AUTO,
  I2V_DEVICE_CPU,
  I2V_DEVICE_CUDA,
  I2V_DEVICE_PLAN_CUDA
} I2vDeviceKind;

/* The largest N of "cuda:N". */
#define I2V_MAX_CUDA_DEVICE 255

/* Parses a device name, case-insensitively: "auto" (also NULL and ""), "cpu", "cuda" (device 0),
 * "cuda:N" or "plan:cuda". FALSE with an I2V_ERROR_INVALID error naming the value and the accepted
 * forms. */
I2V_API gboolean i2v_device_parse(const char *device, I2vDeviceKind *kind, int *index,
                                  GError **error);

typedef enum {
  I2V_PRECISION_DEFAULT, /* the device's own: fp16 on CUDA, fp32 on the CPU */
  I2V_PRECISION_FP32,
  I2V_PRECISION_FP16,
  I2V_PRECISION_BF16,
} I2vPrecision;

/* Parses "default" (also NULL and ""), "fp32", "fp16" or "bf16", case-insensitively; FALSE with
 * an I2V_ERROR_INVALID error naming the value otherwise. */
I2V_API gboolean i2v_precision_parse(const char *name, I2vPrecision *out, GError **error);

/* The name of p as i2v_precision_parse reads it ("default", "fp32", ...); static string. */
I2V_API const char *i2v_precision_name(I2vPrecision p);

/* ---- samplers: the denoising loop's update rule (docs/user-guide.md "Samplers") ---- */

typedef enum {
  I2V_SAMPLER_DDIM,     /* DDIM, eta 0: the reference pipeline's scheduler */
  I2V_SAMPLER_DPMPP_2M, /* DPM-Solver++ 2M (Lu et al. 2022): the quality of DDIM in fewer steps */
} I2vSamplerKind;
#define I2V_SAMPLER_COUNT 2

/* Parses "ddim" (also NULL and "") or "dpmpp-2m", case-insensitively; FALSE with an
 * I2V_ERROR_INVALID error naming the value and the accepted names. */
I2V_API gboolean i2v_sampler_parse(const char *name, I2vSamplerKind *out, GError **error);

/* The name of k as i2v_sampler_parse reads it ("ddim", "dpmpp-2m"); static string. */
I2V_API const char *i2v_sampler_name(I2vSamplerKind k);

/* ---- models ---- */

typedef struct {
  const char *path;         /* diffusers model directory */
  const char *variant;      /* NULL or "fp16" */
  const char *device;       /* i2v_device_parse: "auto" (NULL too), "cpu", "cuda:N" */
  const char *precision;    /* i2v_precision_parse: NULL (the device's default), "fp32", ... */
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
  /* CPU backend threads (0: OpenMP's default, usually every core). The engine changes no
   * process-wide OpenMP or BLAS setting (engine/cpu/cpu_ops.h: the threading rule). */
  int threads;
} I2vModelOptions;

/* Loads (or finds in the process-wide cache: same path+variant+device+precision+weights+LoRA+
 * release_encoders+threads, "auto" and the default precision keyed by what they resolve to) a
 * model. Loads of different models run in parallel; two loads of one model load it once.
 * Returns a new reference (i2v_model_unref) or NULL with error. */
I2V_API I2vModel *i2v_model_load(const I2vModelOptions *opts, GError **error);

/* Reference counting; the last unref frees the model and its backend memory. */
I2V_API I2vModel *i2v_model_ref(I2vModel *m);
I2V_API void i2v_model_unref(I2vModel *m);

/* Name of the device the model runs on ("cpu", "cuda:0"); owned by m. */
I2V_API const char *i2v_model_device(const I2vModel *m);

/* Whether m frees its CLIP encoders between jobs (I2vModelOptions.release_encoders). */
I2V_API gboolean i2v_model_releases_encoders(const I2vModel *m);

/* Memory on a model's device, in bytes.
 *   persistent, persistent_peak: the model's weights (and other persistent tensors) now and at
 *     most since load; shared by all of its sessions.
 *   scratch: for a session, its scratch arena of activations and conditioning (kept between its
 *     generations and reused: after the first generation of a size it does not grow; every stage
 *     shares it, so its size is that of the hungriest stage) and its workspaces; for a model, the
 *     sum over its live sessions.
 *   device_used / device_total: what the driver reports for the whole device (cudaMemGetInfo:
 *     total − free), i.e. this process's allocations plus the CUDA context, library workspaces
 *     and any other process; device_peak is the largest device_used sampled at the end of every
 *     generation stage (each encoder, the UNet preparation, every denoising step, every decode
 *     chunk) since the model / the session was made. All three are 0 on the CPU.
 * The allocator's high-water mark is persistent_peak + the sessions' scratch. */
typedef struct {
  size_t persistent, persistent_peak, scratch;
  size_t device_used, device_total, device_peak;
} I2vMemoryStats;

/* Fills out with m's memory use; callable from any thread at any time (never waits for a
 * generation). */
I2V_API void i2v_model_memory(I2vModel *m, I2vMemoryStats *out);

/* What width and height must be multiples of (the VAE down-scale factor: 8 for I2VGen-XL). */
I2V_API int i2v_model_size_multiple(const I2vModel *m);

/* Channels of the video latents (4): init_latents is [1, C, F, H/m, W/m] with m as above. */
I2V_API int i2v_model_latent_channels(const I2vModel *m);

/* The ranges of I2vParams that do not depend on the model (steps: 1..what the sampler allows
 * with the scheduler's num_train_timesteps; width and height: multiples of
 * i2v_model_size_multiple). The element and the CLI take their limits from here. */
#define I2V_MAX_FRAMES 256
#define I2V_MAX_SIDE 8192
#define I2V_MAX_FPS 1000
#define I2V_MAX_GUIDANCE 100

/* Automatic VAE tiling (I2vParams.decode_tile 0): latents with a side above
 * I2V_DECODE_TILE_AUTO_ABOVE latent pixels (768 output pixels) decode in tiles of
 * I2V_DECODE_TILE_AUTO. */
#define I2V_DECODE_TILE_AUTO 64
#define I2V_DECODE_TILE_AUTO_ABOVE 96

/* Generation parameters. Strings are borrowed for the duration of the call. */
typedef struct {
  const char *prompt;
  const char *negative_prompt; /* NULL = "" */
  int steps;                   /* denoising steps = UNet evaluations (50) */
  I2vSamplerKind sampler;      /* the update rule of the loop (I2V_SAMPLER_DDIM) */
  double guidance;             /* classifier-free guidance scale (9.0); <= 1 runs one branch */
  guint64 seed;                /* initial and posterior noise derive from it (noise.h) */
  int frames;                  /* 16 */
  int fps;                     /* target_fps micro-conditioning (16) */
  int width, height;           /* 1280 × 704; multiples of the VAE factor (8) */
  int decode_chunk_size;       /* frames per VAE decode call (1) */
  /* Memory-saving strategies (docs/user-guide.md "Memory"): each runs the same arithmetic in
   * smaller pieces, so the activations take less device memory at the same FLOP count. */
  gboolean sequential_guidance; /* the two guidance branches one after the other (batch 1 each),
                                   not as a batch of two: half the UNet activations (FALSE) */
  int attention_chunk;          /* UNet transformers (temporal ones: as many rows) and up-path
                                   resnets on at most this many frames at a time; 0: all (0) */
  int decode_tile;              /* VAE decode in square tiles of this many latent pixels a side,
                                   blended over decode_tile_overlap; 0: automatic (tiles of
                                   I2V_DECODE_TILE_AUTO once a latent side exceeds
                                   I2V_DECODE_TILE_AUTO_ABOVE); -1: never (0) */
  int decode_tile_overlap;      /* latent pixels neighbouring tiles share (8) */
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
I2V_API void i2v_params_init(I2vParams *p);

/* Checks p against the model (frames ≥ 1, steps ≥ 1, guidance in 0..100, sizes multiples of
 * the VAE factor, prompts UTF-8, ...): FALSE with an I2V_ERROR_INVALID error naming the parameter
 * and the range. With m NULL, only what holds for every model (to refuse bad input before a
 * load). */
I2V_API gboolean i2v_params_validate(const I2vModel *m, const I2vParams *p, GError **error);

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
   * names and PyTorch layouts of the reference implementation's golden files:
   * "encoder_hidden_states", "prompt_embeds", "negative_prompt_embeds", "clip_pixel_values",
   * "image_embeddings", "vae_input", "vae_mean", "vae_logvar", "vae_std", "image_latents",
   * "init_latents", "vae_posterior_noise", "step{i}.unet_out", "step{i}.noise_pred",
   * "step{i}.pred_original_sample", "step{i}.latents", "latents_final", "video" and "frames".
   * Setting it costs device-to-host copies every step. */
  void (*dump)(const char *name, const I2vTensorView *t, void *user);
  /* Benchmarking (may be NULL): called at the end of every stage; setting it adds a backend sync
   * per stage. */
  void (*stage)(const I2vStage *s, void *user);
  void *user;
} I2vCallbacks;

/* ---- sessions ---- */

/* A new session on m (it keeps a reference to m): on CUDA its own stream and library handles.
 * Memory for activations is allocated by its first generation and kept for the next ones. Free
 * with i2v_session_free; NULL with an error when the device cannot make a stream. */
I2V_API I2vSession *i2v_session_new(I2vModel *m, GError **error);

/* Frees the session and its memory (NULL allowed); it must not be generating. */
I2V_API void i2v_session_free(I2vSession *s);

/* The model of the session (borrowed). */
I2V_API I2vModel *i2v_session_model(const I2vSession *s);

/* Sets the scratch of s's next jobs: from the UNet's preparation on (the encoders run before it
 * in a small arena of their own), the arena is one block of at least bytes (a plan's arena_need),
 * so that a job allocates no scratch of its own and the arena is exactly as large as the job
 * needs; without it the arena grows in request-sized chunks during the first job. 0: none. A block
 * the device cannot give is the job's I2V_ERROR_NO_MEMORY error. Not while s generates. */
I2V_API void i2v_session_reserve(I2vSession *s, size_t bytes);

/* Fills out with s's memory use (I2vMemoryStats); callable from any thread at any time. */
I2V_API void i2v_session_memory(I2vSession *s, I2vMemoryStats *out);

/* Generates one clip from image with p on session s. Blocks until done, cancelled or failed;
 * one generation at a time per session. */
I2V_API gboolean i2v_generate(I2vSession *s, const I2vImage *image, const I2vParams *p,
                              const I2vCallbacks *cb, GCancellable *cancellable, GError **error);

/* i2v_generate on a session made for this one clip and freed after it (the simple case; a
 * caller making many clips keeps a session, which keeps its memory between them). */
I2V_API gboolean i2v_model_generate(I2vModel *m, const I2vImage *image, const I2vParams *p,
                                    const I2vCallbacks *cb, GCancellable *cancellable,
                                    GError **error);

/* ---- memory plans: a job's device memory before running it (docs/PERFORMANCE.md) ---- */

/* One kind of stage of a planned job at its largest, in device bytes. */
typedef struct {
  const char *name;  /* "load" (the model), or an I2vStage name; static string */
  int runs;          /* times it ran (denoising steps, decode calls) */
  size_t total;      /* the most bytes allocated at once during the stage (counted) */
  size_t weights;    /* persistent tensors (weights) at most during that run of the stage */
  size_t arena_used; /* the scratch arena's high-water mark in it: what its activations needed */
  size_t arena;      /* the arena's largest capacity (chunks allocated) in it */
  size_t workspaces; /* per-stream reservations besides the arena (the cuBLASLt workspace) */
} I2vPlanStage;

#define I2V_PLAN_MAX_STAGES 8

typedef struct {
  I2vPlanStage stages[I2V_PLAN_MAX_STAGES]; /* in the order they first ran */
  int n_stages;
  size_t peak;       /* the largest stage total: the job's peak */
  size_t arena_need; /* the most scratch the job uses at once from the UNet's preparation on:
                        what i2v_session_reserve takes */
} I2vMemoryPlan;

/* Plans p's job on the model opts describes: loads it on the planning device plan:cuda (the CUDA
 * backend's own code on a fake device that counts allocations and runs no kernel; opts->device is
 * ignored, the precision is opts->precision's on CUDA; weight values are never read, only their
 * shapes) and runs the whole job there with every computation skipped, which takes seconds at any
 * size. Fills plan with each stage's peak for a session that reserved the job's scratch need
 * (i2v_session_reserve(plan->arena_need), as the element does): found by a first run in one
 * unbounded chunk, then counted by a second with exactly that reserved. Plans run
 * one at a time per process (they share the one fake device, which has no size limit) and are
 * remembered: the same model and job sizes again are answered at once. FALSE with
 * error when the model or p is invalid or the device is not built in (a libi2v without CUDA). */
I2V_API gboolean i2v_plan_memory(const I2vModelOptions *opts, const I2vParams *p,
                                 I2vMemoryPlan *plan, GError **error);

/* Memory-saving options a plan may choose (bits), in the order i2v_plan_fit adds them: the
 * cheapest in run time first, the one that changes results (tiles) last. */
typedef enum {
  I2V_SAVING_RELEASE_ENCODERS = 1 << 0,    /* I2vModelOptions.release_encoders */
  I2V_SAVING_SEQUENTIAL_GUIDANCE = 1 << 1, /* I2vParams.sequential_guidance */
  I2V_SAVING_ATTENTION_CHUNK = 1 << 2,     /* I2vParams.attention_chunk 1 */
  I2V_SAVING_DECODE_TILE = 1 << 3,         /* I2vParams.decode_tile I2V_DECODE_TILE_AUTO */
} I2vSaving;

/* The options of saving as the CLI and element name them, comma-separated ("release-encoders,
 * sequential-guidance,attention-chunk=1,decode-tile=64"; "" for none); g_free. */
I2V_API char *i2v_saving_names(guint saving);

/* Turns on the options of saving in opts and p (those already on stay as they are). */
I2V_API void i2v_saving_apply(guint saving, I2vModelOptions *opts, I2vParams *p);

/* The cheapest set of memory-saving options, on top of what opts and p already ask for, with
 * which p's job fits `budget` bytes: plans the job with none, then adds the options one by one in
 * I2vSaving's order (skipping those already on), and stops at the first set that fits (apply it
 * with i2v_saving_apply); *saving holds only the options it added. TRUE
 * with *saving the set (0: none needed) and plan its plan; FALSE with an I2V_ERROR_NO_MEMORY error
 * naming the need (of the best set) and the budget when none fits, or another error when planning
 * fails. */
I2V_API gboolean i2v_plan_fit(const I2vModelOptions *opts, const I2vParams *p, size_t budget,
                              guint *saving, I2vMemoryPlan *plan, GError **error);

G_END_DECLS
