/* One I2VGen-XL generation, as diffusers' I2VGenXLPipeline.__call__ computes it (docs/model.md
 * §1): prompts → CLIP text, image → CLIP image embedding and VAE latents, the
 * sampler's loop (DDIM or DPM-Solver++, sampler.h) over the 3D UNet with classifier-free guidance,
 * frame-by-frame VAE decode to RGB8.
 *
 * Batch convention under CFG: row 0 is the unconditional branch (negative prompt, zero image
 * embedding), row 1 the conditional one. Everything sized by the loop is allocated before it;
 * each step only takes scratch (mark/release) and frames reuse one decode buffer.
 *
 * Memory: every stage takes its activations from the one scratch arena and gives them back at
 * its end, so the encoders' activations leave chunks the UNet reuses (the arena is as large as
 * the hungriest stage). With release_encoders each CLIP encoder is loaded at the start of its
 * stage (counted in the stage's time) and freed at its end. The device's used memory is sampled
 * at every stage end (I2vMemoryStats.device_peak). The memory-saving strategies of I2vParams
 * live where their arithmetic is: sequential guidance here (one UNet condition per guidance
 * row), attention chunks in the UNet's transformers, decode tiles in the VAE. */
#include <math.h>
#include <string.h>

#include "noise.h"
#include "session.h"

void i2v_params_init(I2vParams *p) {
  memset(p, 0, sizeof(*p));
  p->prompt = "";
  p->steps = 50;
  p->guidance = 9.0;
  p->frames = 16;
  p->fps = 16;
  p->width = 1280;
  p->height = 704;
  p->decode_chunk_size = 1;
  p->decode_tile_overlap = 8;
  p->motion_strength = 1.0;
}

static gboolean check_range(const char *name, gint64 v, gint64 lo, gint64 hi, GError **error) {
  if (v >= lo && v <= hi) return TRUE;
  g_set_error(error, I2V_ERROR, I2V_ERROR_INVALID,
              "%s %" G_GINT64_FORMAT " is out of range (expected %" G_GINT64_FORMAT
              "..%" G_GINT64_FORMAT ")",
              name, v, lo, hi);
  return FALSE;
}

static gboolean check_side(const char *name, int v, int multiple, GError **error) {
  if (!check_range(name, v, multiple, I2V_MAX_SIDE, error)) return FALSE;
  if (v % multiple == 0) return TRUE;
  g_set_error(error, I2V_ERROR, I2V_ERROR_INVALID,
              "%s %d is not a multiple of %d (the model's VAE down-scale factor)", name, v,
              multiple);
  return FALSE;
}

static gboolean check_text(const char *name, const char *text, GError **error) {
  if (text == NULL || g_utf8_validate(text, -1, NULL)) return TRUE;
  g_set_error(error, I2V_ERROR, I2V_ERROR_INVALID, "%s is not valid UTF-8", name);
  return FALSE;
}

gboolean i2v_params_validate(const I2vModel *m, const I2vParams *p, GError **error) {
  /* without a model: the widest bounds any loadable model allows (its scheduler's range) */
  int multiple = m != NULL ? i2v_vae_downscale(m->vae) : 1;
  if (p->sampler < 0 || p->sampler >= I2V_SAMPLER_COUNT) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_INVALID,
                "sampler %d is unknown (expected I2V_SAMPLER_DDIM or I2V_SAMPLER_DPMPP_2M)",
                (int)p->sampler);
    return FALSE;
  }
  int max_steps =
      m != NULL ? i2v_sampler_max_steps(m->samplers[p->sampler]) : I2V_DDIM_MAX_TRAIN_TIMESTEPS;
  if (!check_range("frames", p->frames, 1, I2V_MAX_FRAMES, error) ||
      !check_range("steps", p->steps, 1, max_steps, error) ||
      !check_range("fps", p->fps, 1, I2V_MAX_FPS, error) ||
      !check_range("decode_chunk_size", p->decode_chunk_size, 1, I2V_MAX_FRAMES, error) ||
      !check_range("attention_chunk", p->attention_chunk, 0, I2V_MAX_FRAMES, error) ||
      !check_range("decode_tile", p->decode_tile, -1, I2V_MAX_SIDE, error) ||
      !check_range("decode_tile_overlap", p->decode_tile_overlap, 0, I2V_MAX_SIDE, error) ||
      !check_side("width", p->width, multiple, error) ||
      !check_side("height", p->height, multiple, error) ||
      !check_text("prompt", p->prompt, error) ||
      !check_text("negative_prompt", p->negative_prompt, error))
    return FALSE;
  int tile = p->decode_tile > 0 ? p->decode_tile : I2V_DECODE_TILE_AUTO;
  if (p->decode_tile >= 0 && p->decode_tile_overlap >= tile) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_INVALID,
                "decode_tile_overlap %d is not smaller than the decode tile of %d latent pixels "
                "(expected an overlap below the tile size)",
                p->decode_tile_overlap, tile);
    return FALSE;
  }
  if (!(p->motion_strength > 0 && p->motion_strength <= 1)) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_INVALID,
                "motion_strength %g is out of range (expected a value in (0, 1]: 1 is full "
                "motion from pure noise, lower keeps closer to the image)",
                p->motion_strength);
    return FALSE;
  }
  if (!(p->guidance >= 0 && p->guidance <= I2V_MAX_GUIDANCE)) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_INVALID,
                "guidance %g is out of range (expected 0..%g; <= 1 turns classifier-free guidance "
                "off)",
                p->guidance, (double)I2V_MAX_GUIDANCE);
    return FALSE;
  }
  return TRUE;
}

/* The state of one generation. Host buffers use PyTorch layouts (what the dump callback and the
 * goldens use); backend video tensors are channels-last [B, F, h, w, C] (unet3d.h). */
typedef struct {
  I2vSession *s;
  I2vModel *m;
  I2vStream *st;
  const I2vParams *p;
  const I2vCallbacks *cb;
  GCancellable *cancellable;
  gboolean cfg;             /* classifier-free guidance: batch [uncond, cond] */
  int bc;                   /* guidance rows: 2 with CFG, else 1 */
  int n_cond;               /* UNet calls per step: 2 under sequential guidance, else 1 */
  int64_t lc, f, h, w;      /* latent channels, frames, latent height and width */
  int64_t tokens, dim;      /* text tokens (77), cross-attention width */
  gint64 start_us;          /* generation start (monotonic) */
  gint64 frame_estimate_us; /* decode time per frame, estimated before decoding starts */
  float *text_ctx;          /* [Bc, tokens, dim] */
  float *image_emb;         /* [Bc, 1, dim] */
  float *image_latents;     /* [Bc, lc, F, h, w] */
  float *host_latents;      /* [1, lc, F, h, w] */
  float *dump_buf;          /* [Bc, lc, F, h, w], only with a dump callback */
  float *z, *decoded;       /* one decode chunk: [chunk, lc, h, w], [chunk, 3, H, W] */
  float *video, *frames;    /* [1, 3, F, H, W], [1, F, H, W, 3], only with a dump callback */
  I2vImage rgb;             /* the frame handed to the callback */
  int64_t *timesteps;
  int first_step; /* index into timesteps where the loop starts (motion_strength) */
  I2vTensor text_t, emb_t, image_latents_t, latents, x_in, v_out;
  I2vUnetCond *cond[2]; /* one condition per UNet call of a step, each of bc / n_cond rows */
  I2vSamplerRun *run;   /* the sampler's state between steps */
} Gen;

static gboolean dumping(const Gen *g) {
  return g->cb != NULL && g->cb->dump != NULL;
}

/* Hands a host float32 buffer to the dump callback under name with the given shape. */
static void dump(const Gen *g, const char *name, const float *data, int ndim,
                 const int64_t *shape) {
  if (!dumping(g)) return;
  I2vTensorView t = {.ndim = ndim, .data = data};
  memcpy(t.shape, shape, ndim * sizeof(int64_t));
  g->cb->dump(name, &t, g->cb->user);
}

/* Downloads a channels-last video tensor [B, F, h, w, C] and dumps it as [B, C, F, h, w]. */
static gboolean dump_video(const Gen *g, const char *name, const I2vTensor *t, GError **error) {
  if (!dumping(g)) return TRUE;
  if (!i2v_unet_download_ncfhw(g->st, t, g->dump_buf, error)) return FALSE;
  dump(g, name, g->dump_buf, 5, (int64_t[]){t->shape[0], g->lc, g->f, g->h, g->w});
  return TRUE;
}

/* The start of a timed stage (I2vStage). */
typedef struct {
  gint64 us;
  double flops;
} StageStart;

static StageStart stage_start(const Gen *g) {
  return (StageStart){g_get_monotonic_time(), i2v_stream_flops(g->st)};
}

/* The steps run by the loop: all of them at motion_strength 1, else the last ⌊s·steps⌋ (at
 * least one), as diffusers' image-to-image pipelines count them. */
static int steps_run(const I2vParams *p) {
  return MAX(1, MIN(p->steps, (int)floor(p->steps * p->motion_strength + 1e-9)));
}

/* Reports a finished stage to the stage callback, after a backend sync so that queued work is
 * counted where it belongs. */
static gboolean stage_end(const Gen *g, StageStart start, const char *name, int index,
                          GError **error) {
  i2v_session_sample_device_memory(g->s);
  if (g->cb == NULL || g->cb->stage == NULL) return TRUE;
  if (!i2v_stream_check(g->st, error)) return FALSE;
  I2vStage s = {.name = name,
                .index = index,
                .us = g_get_monotonic_time() - start.us,
                .flops = i2v_stream_flops(g->st) - start.flops};
  g->cb->stage(&s, g->cb->user);
  return TRUE;
}

static void report(const Gen *g, int step, int frame, gint64 eta_us) {
  if (g->cb == NULL || g->cb->progress == NULL) return;
  I2vProgress pr = {.step = step,
                    .steps = steps_run(g->p),
                    .frame = frame,
                    .frames = g->p->frames,
                    .elapsed_us = g_get_monotonic_time() - g->start_us,
                    .eta_us = eta_us};
  g->cb->progress(&pr, g->cb->user);
}

/* n·size bytes of host memory for a buffer sized by the user's parameters: NULL with an
 * I2V_ERROR_NO_MEMORY error naming the buffer and the size when that much is not available (or
 * does not fit in size_t), never an abort. */
static void *host_buffer(const char *what, int64_t n, size_t size, GError **error) {
  void *p =
      n >= 0 && (size_t)n <= G_MAXSIZE / size ? g_try_malloc0(MAX((size_t)n * size, 1)) : NULL;
  if (p == NULL)
    g_set_error(error, I2V_ERROR, I2V_ERROR_NO_MEMORY,
                "out of host memory for the %s: %" G_GINT64_FORMAT " × %zu bytes", what, n, size);
  return p;
}

/* Sizes and every host buffer of the generation (none is allocated later); FALSE with
 * I2V_ERROR_NO_MEMORY when the parameters need more host memory than there is. */
static gboolean gen_init(Gen *g, I2vSession *s, const I2vParams *p, const I2vCallbacks *cb,
                         GCancellable *cancellable, GError **error) {
  I2vModel *m = s->m;
  memset(g, 0, sizeof(*g));
  g->s = s;
  g->m = m;
  g->st = s->st;
  g->p = p;
  g->cb = cb;
  g->cancellable = cancellable;
  g->start_us = g_get_monotonic_time();
  g->cfg = p->guidance > 1.0; /* do_classifier_free_guidance */
  g->bc = g->cfg ? 2 : 1;
  g->n_cond = g->cfg && p->sequential_guidance ? 2 : 1;
  int sc = i2v_vae_downscale(m->vae);
  g->lc = i2v_vae_latent_channels(m->vae);
  g->f = p->frames;
  g->h = p->height / sc;
  g->w = p->width / sc;
  g->tokens = i2v_tokenizer_max_length(m->tokenizer);
  g->dim = i2v_unet_cross_attention_dim(m->unet);
  int64_t latent_numel = g->lc * g->f * g->h * g->w; /* one video's latents */
  int64_t chunk = MIN(p->decode_chunk_size, p->frames);
  int64_t pixels = (int64_t)p->width * p->height;
  gboolean ok =
      (g->text_ctx = host_buffer("text embeddings", g->bc * g->tokens * g->dim, 4, error)) &&
      (g->image_emb = host_buffer("image embeddings", g->bc * g->dim, 4, error)) &&
      (g->image_latents = host_buffer("image latents", latent_numel * g->bc, 4, error)) &&
      (g->host_latents = host_buffer("latents", latent_numel, 4, error)) &&
      (g->z = host_buffer("decoder input", chunk * g->lc * g->h * g->w, 4, error)) &&
      (g->decoded = host_buffer("decoded frames", chunk * 3 * pixels, 4, error)) &&
      (g->rgb.rgb = host_buffer("output frame", 3 * pixels, 1, error)) &&
      (g->timesteps = host_buffer("timesteps", p->steps, sizeof(int64_t), error));
  g->rgb.width = p->width;
  g->rgb.height = p->height;
  if (ok && dumping(g))
    ok = (g->dump_buf = host_buffer("dump buffer", latent_numel * g->bc, 4, error)) &&
         (g->video = host_buffer("dumped video", 3 * g->f * pixels, 4, error)) &&
         (g->frames = host_buffer("dumped frames", 3 * g->f * pixels, 4, error));
  return ok;
}

/* Frees the host side of a generation (its device tensors are in the session's arena). */
static void gen_clear(Gen *g) {
  for (int b = 0; b < g->n_cond; b++) i2v_unet_cond_free(g->cond[b]);
  i2v_sampler_run_free(g->run);
  g_free(g->text_ctx);
  g_free(g->image_emb);
  g_free(g->image_latents);
  g_free(g->host_latents);
  g_free(g->dump_buf);
  g_free(g->z);
  g_free(g->decoded);
  g_free(g->video);
  g_free(g->frames);
  g_free(g->timesteps);
  i2v_image_clear(&g->rgb);
}

/* Text conditioning (docs/model.md §1 step 1): [negative; prompt] under CFG, each padded to the
 * tokenizer's length (longer prompts are truncated, as the reference does), through the first
 * num_layers − 1 CLIP layers + the final LayerNorm (clip_skip 1). */
static gboolean encode_prompts(Gen *g, GError **error) {
  const char *rows[2] = {g->p->negative_prompt ? g->p->negative_prompt : "",
                         g->p->prompt ? g->p->prompt : ""};
  StageStart start = stage_start(g);
  const I2vClipText *text = i2v_model_text_encoder_acquire(g->m, error);
  if (text == NULL) return FALSE;
  gboolean ok = i2v_encode_prompts(g->m->tokenizer, text, g->st, g->cfg ? rows : rows + 1, g->bc,
                                   g->text_ctx, error);
  i2v_model_text_encoder_release(g->m);
  if (!ok || !stage_end(g, start, "text_encoder", 0, error)) return FALSE;
  int64_t one[3] = {1, g->tokens, g->dim};
  dump(g, "encoder_hidden_states", g->text_ctx, 3, (int64_t[]){g->bc, g->tokens, g->dim});
  dump(g, "prompt_embeds", g->text_ctx + (g->bc - 1) * g->tokens * g->dim, 3, one);
  if (g->cfg) dump(g, "negative_prompt_embeds", g->text_ctx, 3, one);
  return TRUE;
}

/* Global image conditioning (docs/model.md §1 step 2): center-crop-wide to a width × width square,
 * BILINEAR to the CLIP input size, CLIP-normalise, projected image embedding; zeros for the
 * unconditional row. */
static gboolean encode_image_clip(Gen *g, const I2vImage *image, GError **error) {
  int size = g->m->clip_pp.size;
  float *emb = g->image_emb + (g->bc - 1) * g->dim; /* the unconditional row stays zero */
  StageStart start = stage_start(g);
  const I2vClipVision *vision = i2v_model_vision_encoder_acquire(g->m, error);
  if (vision == NULL) return FALSE;
  float *pixels = g_new(float, 3 * size * size); /* the model's CLIP input size */
  gboolean ok = i2v_encode_image_clip(vision, g->st, &g->m->clip_pp, image, g->p->width, NULL,
                                      pixels, emb, error);
  i2v_model_vision_encoder_release(g->m);
  ok = ok && stage_end(g, start, "image_encoder", 0, error);
  if (ok) {
    dump(g, "clip_pixel_values", pixels, 4, (int64_t[]){1, 3, size, size});
    dump(g, "image_embeddings", g->image_emb, 3, (int64_t[]){g->bc, 1, g->dim});
  }
  g_free(pixels);
  return ok;
}

/* Local image conditioning (docs/model.md §1 step 3): VAE posterior sample of the center-crop-wide
 * image (mean + exp(½·clamp(logvar)).noise) × scaling_factor as frame 0, then the frame-position
 * mask k/(F−1) for frames k ≥ 1; both CFG rows identical. */
static gboolean encode_image_vae(Gen *g, const I2vImage *image, GError **error) {
  int W = g->p->width, H = g->p->height;
  int64_t hw = g->h * g->w, lc = g->lc;
  float *input = host_buffer("VAE input", 3 * (int64_t)W * H, 4, error);
  float *moments = input ? host_buffer("VAE moments", 2 * lc * hw, 4, error) : NULL;
  float *noise = moments ? host_buffer("VAE posterior", 4 * lc * hw, 4, error) : NULL;
  if (noise == NULL) {
    g_free(input);
    g_free(moments);
    return FALSE;
  }
  float *std = noise + lc * hw, *logvar = std + lc * hw, *z0 = logvar + lc * hw; /* and noise */
  StageStart start = stage_start(g);
  gboolean ok = i2v_encode_image_vae(g->m->vae, g->st, image, W, H, NULL, input, moments, error);
  /* The decoder costs about twice the encoder: a first guess for the progress ETA. */
  g->frame_estimate_us = 2 * (g_get_monotonic_time() - start.us);
  ok = ok && stage_end(g, start, "vae_encoder", 0, error);
  if (ok) {
    if (g->p->vae_posterior_noise != NULL)
      memcpy(noise, g->p->vae_posterior_noise, lc * hw * sizeof(float));
    else
      i2v_noise_normal(g->p->seed, I2V_NOISE_STREAM_POSTERIOR, noise, lc * hw);
    i2v_vae_posterior(moments, (int)lc, hw, NULL, logvar, std);
    float scaling = (float)i2v_vae_scaling_factor(g->m->vae);
    for (int64_t i = 0; i < lc * hw; i++) z0[i] = (moments[i] + std[i] * noise[i]) * scaling;
    int64_t per_video = lc * g->f * hw;
    for (int64_t c = 0; c < lc; c++) {
      memcpy(g->image_latents + c * g->f * hw, z0 + c * hw, hw * sizeof(float));
      for (int64_t k = 1; k < g->f; k++) {
        float mask = (float)((double)k / (double)(g->f - 1));
        float *frame = g->image_latents + (c * g->f + k) * hw;
        for (int64_t i = 0; i < hw; i++) frame[i] = mask;
      }
    }
    if (g->cfg) memcpy(g->image_latents + per_video, g->image_latents, per_video * sizeof(float));
    int64_t lat[4] = {1, lc, g->h, g->w};
    dump(g, "vae_input", input, 4, (int64_t[]){1, 3, H, W});
    dump(g, "vae_mean", moments, 4, lat);
    dump(g, "vae_logvar", logvar, 4, lat);
    dump(g, "vae_std", std, 4, lat);
    dump(g, "vae_posterior_noise", noise, 4, lat);
    dump(g, "image_latents", g->image_latents, 5, (int64_t[]){g->bc, lc, g->f, g->h, g->w});
  }
  g_free(noise);
  g_free(moments);
  g_free(input);
  return ok;
}

/* A new tensor in the session's arena holding host float32 data of the given shape. */
static gboolean upload(I2vStream *st, const float *data, int ndim, const int64_t *shape,
                       I2vTensor *out, GError **error) {
  *out = i2v_scratch_tensor(st, ndim, shape);
  return i2v_tensor_upload_f32(st, out, data, error);
}

/* The latents a loop that starts at step first_step (motion_strength < 1) starts from, in
 * host_latents: the image's latent z (frame 0 of the conditioning latents) on every frame, noised
 * to that step's level as the sampler's add_noise does (DDIM: √ᾱ_t·z + √(1−ᾱ_t)·noise). */
static const float *start_from_image(Gen *g, const float *noise) {
  double signal, noise_level;
  i2v_sampler_start_levels(g->run, &signal, &noise_level);
  float a = (float)signal, b = (float)noise_level;
  int64_t hw = g->h * g->w;
  for (int64_t c = 0; c < g->lc; c++) {
    const float *z = g->image_latents + c * g->f * hw; /* batch 0, channel c, frame 0 */
    for (int64_t f = 0; f < g->f; f++) {
      int64_t at = (c * g->f + f) * hw;
      for (int64_t i = 0; i < hw; i++) g->host_latents[at + i] = a * z[i] + b * noise[at + i];
    }
  }
  dump(g, "start_latents", g->host_latents, 5, (int64_t[]){1, g->lc, g->f, g->h, g->w});
  return g->host_latents;
}

/* The UNet's loop invariants of each of the n_cond calls a step makes: all bc guidance rows in
 * one condition, or one condition per row under sequential guidance. */
static gboolean prepare_conds(Gen *g, GError **error) {
  int64_t fps[2] = {g->p->fps, g->p->fps}, rows = g->bc / g->n_cond;
  for (int b = 0; b < g->n_cond; b++) {
    I2vTensor text = i2v_tensor_rows(&g->text_t, b * rows, rows);
    I2vTensor emb = i2v_tensor_rows(&g->emb_t, b * rows, rows);
    I2vTensor latents = i2v_tensor_rows(&g->image_latents_t, b * rows, rows);
    g->cond[b] = i2v_unet_prepare(g->m->unet, g->st, &text, &emb, &latents, fps, error);
    if (g->cond[b] == NULL) return FALSE;
    i2v_unet_cond_set_attention_chunk(g->cond[b], g->p->attention_chunk);
  }
  return TRUE;
}

/* Uploads the conditioning, computes the UNet's loop invariants and sets up the latents: the
 * initial noise (explicit or from the seed; noised image latents below full motion strength),
 * the CFG input, the output and x̂0 tensors. */
static gboolean prepare_loop(Gen *g, GError **error) {
  I2vStream *st = g->st;
  StageStart start = stage_start(g);
  /* a reservation (i2v_session_reserve) is made here, not before the encoders, so that with
   * released encoders their weights never sit beside the UNet's whole arena */
  size_t reserve = g->s->reserve;
  if (reserve > 0 && i2v_scratch_mark(st) == 0 && !i2v_stream_reserve(st, reserve, error))
    return FALSE;
  if (!upload(st, g->text_ctx, 3, (int64_t[]){g->bc, g->tokens, g->dim}, &g->text_t, error) ||
      !upload(st, g->image_emb, 3, (int64_t[]){g->bc, 1, g->dim}, &g->emb_t, error) ||
      !i2v_unet_upload_ncfhw(st, g->image_latents, g->bc, g->lc, g->f, g->h, g->w,
                             &g->image_latents_t, error) ||
      !prepare_conds(g, error) || !stage_end(g, start, "unet_prepare", 0, error))
    return FALSE;

  const float *noise = g->p->init_latents;
  if (noise == NULL) {
    i2v_noise_normal(g->p->seed, I2V_NOISE_STREAM_LATENTS, g->host_latents,
                     g->lc * g->f * g->h * g->w);
    noise = g->host_latents;
  }
  dump(g, "init_latents", noise, 5, (int64_t[]){1, g->lc, g->f, g->h, g->w});
  const I2vSampler *sampler = g->m->samplers[g->p->sampler];
  int64_t out_shape[5] = {g->bc, g->f, g->h, g->w, g->lc};
  int64_t one_shape[5] = {1, g->f, g->h, g->w, g->lc};
  g->first_step = g->p->steps - steps_run(g->p);
  if (!i2v_sampler_timesteps(sampler, g->p->steps, g->timesteps, error) ||
      !(g->run = i2v_sampler_start(sampler, st, g->p->steps, g->first_step, 5, one_shape, error)))
    return FALSE;
  if (g->first_step > 0) noise = start_from_image(g, noise);
  if (g->cfg && g->n_cond == 1) g->x_in = i2v_scratch_tensor(st, 5, out_shape);
  g->v_out = i2v_scratch_tensor(st, 5, out_shape);
  return i2v_unet_upload_ncfhw(st, noise, 1, g->lc, g->f, g->h, g->w, &g->latents, error);
}

/* Step i's intermediates for the dump callback (golden names). */
static gboolean dump_step(const Gen *g, int i, const char *what, const I2vTensor *t,
                          GError **error) {
  if (!dumping(g)) return TRUE;
  char name[64];
  g_snprintf(name, sizeof(name), "step%d.%s", i, what);
  return dump_video(g, name, t, error);
}

/* The UNet's output of one step into v_out: one call on [latents; latents] (CFG), or on the
 * latents once per guidance row (sequential guidance, or no CFG). */
static gboolean unet_step(Gen *g, int64_t timestep, GError **error) {
  if (g->n_cond == 1) {
    const I2vTensor *sample = &g->latents;
    if (g->cfg) {
      I2vTensor rows[2] = {i2v_tensor_rows(&g->x_in, 0, 1), i2v_tensor_rows(&g->x_in, 1, 1)};
      i2v_op_copy(g->st, &rows[0], &g->latents);
      i2v_op_copy(g->st, &rows[1], &g->latents);
      sample = &g->x_in;
    }
    return i2v_unet_forward(g->m->unet, g->st, g->cond[0], sample, timestep, &g->v_out, error);
  }
  for (int b = 0; b < g->n_cond; b++) {
    I2vTensor out = i2v_tensor_rows(&g->v_out, b, 1);
    if (!i2v_unet_forward(g->m->unet, g->st, g->cond[b], &g->latents, timestep, &out, error))
      return FALSE;
  }
  return TRUE;
}

/* The denoising loop (docs/model.md §1 step 5): UNet on [latents; latents], v = u + g·(c − u), the
 * sampler's step in place. */
static gboolean denoise(Gen *g, GError **error) {
  I2vStream *st = g->st;
  int n = g->p->steps;
  gint64 loop_start = g_get_monotonic_time();
  I2vTensor uncond = i2v_tensor_rows(&g->v_out, 0, 1);
  for (int i = g->first_step; i < n; i++) {
    if (g_cancellable_set_error_if_cancelled(g->cancellable, error)) return FALSE;
    StageStart start = stage_start(g);
    size_t mark = i2v_scratch_mark(st);
    const I2vTensor *x0 = NULL;
    gboolean ok =
        unet_step(g, g->timesteps[i], error) && dump_step(g, i, "unet_out", &g->v_out, error);
    if (ok && g->cfg) {
      /* Same float32 rounding as diffusers: d = c − u, then u + g·d. */
      I2vTensor cond = i2v_tensor_rows(&g->v_out, 1, 1);
      i2v_op_axpby(st, &cond, 1.0f, &cond, -1.0f, &uncond);
      i2v_op_axpby(st, &uncond, 1.0f, &uncond, (float)g->p->guidance, &cond);
    }
    if (ok) x0 = i2v_sampler_step(g->run, &uncond, &g->latents);
    i2v_scratch_release(st, mark);
    ok = ok && i2v_stream_check(st, error) && stage_end(g, start, "unet_step", i, error) &&
         dump_step(g, i, "noise_pred", &uncond, error) &&
         dump_step(g, i, "pred_original_sample", x0, error) &&
         dump_step(g, i, "latents", &g->latents, error);
    if (!ok) return FALSE;
    int done = i + 1 - g->first_step;
    gint64 per_step = (g_get_monotonic_time() - loop_start) / done;
    report(g, done, 0, per_step * (n - i - 1) + g->frame_estimate_us * g->p->frames);
  }
  return TRUE;
}

/* Post-processing (docs/model.md §1 step 6) of one decoded frame x [3, H, W]: clamp(x/2 + 0.5, 0,
 * 1), then round-half-even(y·255) to RGB8; also the float frame and video for the dump callback. */
static void postprocess_frame(Gen *g, const float *x, int64_t f) {
  int64_t pixels = (int64_t)g->p->width * g->p->height;
  for (int64_t c = 0; c < 3; c++) {
    for (int64_t i = 0; i < pixels; i++) {
      float y = fminf(fmaxf(x[c * pixels + i] / 2 + 0.5f, 0.0f), 1.0f);
      g->rgb.rgb[i * 3 + c] = (guint8)rintf(y * 255.0f);
      if (g->frames != NULL) {
        g->frames[(f * pixels + i) * 3 + c] = y;
        g->video[(c * g->f + f) * pixels + i] = x[c * pixels + i];
      }
    }
  }
}

/* The VAE tile side in latent pixels the parameters ask for (0: whole frames). */
static int decode_tile(const Gen *g) {
  if (g->p->decode_tile != 0) return MAX(g->p->decode_tile, 0);
  return MAX(g->h, g->w) > I2V_DECODE_TILE_AUTO_ABOVE ? I2V_DECODE_TILE_AUTO : 0;
}

/* Decodes z = latents·(1/scaling_factor) in chunks of decode_chunk_size frames (in spatial tiles
 * when decode_tile says so), handing each frame to the callback as soon as it exists. */
static gboolean decode(Gen *g, GError **error) {
  int64_t hw = g->h * g->w, lc = g->lc, F = g->f;
  int64_t chunk = MIN(g->p->decode_chunk_size, F);
  int64_t pixels = (int64_t)g->p->width * g->p->height;
  if (!i2v_unet_download_ncfhw(g->st, &g->latents, g->host_latents, error)) return FALSE;
  dump(g, "latents_final", g->host_latents, 5, (int64_t[]){1, lc, F, g->h, g->w});
  gint64 decode_start = g_get_monotonic_time();
  for (int64_t f0 = 0; f0 < F; f0 += chunk) {
    if (g_cancellable_set_error_if_cancelled(g->cancellable, error)) return FALSE;
    int64_t n = MIN(chunk, F - f0);
    StageStart start = stage_start(g);
    for (int64_t k = 0; k < n; k++) /* [C, F, h, w] → [n, C, h, w] */
      for (int64_t c = 0; c < lc; c++)
        i2v_vae_unscale_latents(g->m->vae, g->host_latents + (c * F + f0 + k) * hw, hw,
                                g->z + (k * lc + c) * hw);
    if (!i2v_vae_decode_tiled(g->m->vae, g->st, g->z, (int)n, (int)g->h, (int)g->w, decode_tile(g),
                              g->p->decode_tile_overlap, g->decoded, error) ||
        !stage_end(g, start, "vae_decode_frame", (int)f0, error))
      return FALSE;
    for (int64_t k = 0; k < n; k++) {
      int64_t f = f0 + k;
      postprocess_frame(g, g->decoded + k * 3 * pixels, f);
      I2vFrame frame = {.index = (int)f, .count = (int)F, .image = &g->rgb};
      if (g->cb != NULL && g->cb->frame != NULL && !g->cb->frame(&frame, g->cb->user)) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_CANCELLED,
                    "generation stopped by the frame callback after frame %d of %d", (int)f + 1,
                    (int)F);
        return FALSE;
      }
      gint64 per_frame = (g_get_monotonic_time() - decode_start) / (f + 1);
      report(g, steps_run(g->p), (int)f + 1, per_frame * (F - f - 1));
    }
  }
  dump(g, "video", g->video, 5, (int64_t[]){1, 3, F, g->p->height, g->p->width});
  dump(g, "frames", g->frames, 5, (int64_t[]){1, F, g->p->height, g->p->width, 3});
  return TRUE;
}

gboolean i2v_generate(I2vSession *s, const I2vImage *image, const I2vParams *p,
                      const I2vCallbacks *cb, GCancellable *cancellable, GError **error) {
  g_return_val_if_fail(s != NULL && p != NULL, FALSE);
  if (image == NULL || image->width <= 0 || image->height <= 0 || image->rgb == NULL) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_INVALID,
                "input image is %d×%d (expected a non-empty RGB8 image)", image ? image->width : 0,
                image ? image->height : 0);
    return FALSE;
  }
  if (!i2v_params_validate(s->m, p, error) ||
      g_cancellable_set_error_if_cancelled(cancellable, error))
    return FALSE;
  if (!g_atomic_int_compare_and_exchange(&s->running, 0, 1)) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_INVALID,
                "the session is already generating (one generation at a time per session: make "
                "another session on the model to run two at once)");
    return FALSE;
  }
  Gen g;
  size_t mark = i2v_scratch_mark(s->st);
  gboolean ok = gen_init(&g, s, p, cb, cancellable, error) && encode_prompts(&g, error) &&
                encode_image_clip(&g, image, error) && encode_image_vae(&g, image, error) &&
                prepare_loop(&g, error) && denoise(&g, error) && decode(&g, error);
  if (!ok) i2v_stream_check(s->st, NULL); /* drop a sticky error left by an aborted run */
  i2v_scratch_release(s->st, mark);
  gen_clear(&g);
  g_atomic_int_set(&s->running, 0);
  return ok;
}
