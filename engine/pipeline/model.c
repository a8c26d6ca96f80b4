/* I2vModel: loading every component of a diffusers I2VGen-XL directory onto a backend, the
 * cross-component consistency checks, the process-wide cache of loaded models (refcounted, keyed
 * by path + variant + resolved device and dtype + weight source + LoRA + release_encoders +
 * threads), the encoders that a release_encoders model lends to its sessions, and its memory. */
#include "model.h"

#include <string.h>

#include "device.h"

/* The cache: key → CacheEntry. The lock guards the table and refcounts only, never a load: a
 * model loads outside it, so loads of different models run in parallel and ref/unref never wait
 * for one; a second caller for a model being loaded waits on the entry (loaded) and takes it. */
typedef struct {
  I2vModel *model; /* NULL while loading */
  gboolean loading;
} CacheEntry;

static GMutex cache_lock;
static GCond cache_loaded;
static GHashTable *cache;

/* What the consistency checks need of the CLIP encoders, read while they are loaded: a model with
 * released encoders frees them before the UNet loads, so that the two never sit on the device
 * together (the load's peak is the larger of the two, not their sum). */
typedef struct {
  int text_hidden, text_positions, vision_projection, vision_image_size;
} EncoderDims;

static EncoderDims encoder_dims(const I2vModel *m) {
  return (EncoderDims){
      i2v_clip_text_hidden_size(m->text.net), i2v_clip_text_max_positions(m->text.net),
      i2v_clip_vision_projection_dim(m->vision.net), i2v_clip_vision_image_size(m->vision.net)};
}

/* The sizes the components exchange must agree (a mixed-up directory fails here, not in an
 * op's shape check). */
static gboolean check_consistency(I2vModel *m, const EncoderDims *enc, GError **error) {
  int cross = i2v_unet_cross_attention_dim(m->unet);
  const struct {
    const char *what;
    int value, expected;
  } checks[] = {
      {"text_encoder/config.json hidden_size", enc->text_hidden, cross},
      {"image_encoder/config.json projection_dim", enc->vision_projection, cross},
      {"vae/config.json latent_channels", i2v_vae_latent_channels(m->vae),
       i2v_unet_in_channels(m->unet)},
      {"unet/config.json out_channels", i2v_unet_out_channels(m->unet),
       i2v_unet_in_channels(m->unet)},
  };
  for (guint i = 0; i < G_N_ELEMENTS(checks); i++) {
    if (checks[i].value != checks[i].expected) {
      g_set_error(error, I2V_ERROR, I2V_ERROR_CONFIG,
                  "%s is %d but the UNet expects %d (unet/config.json cross_attention_dim / "
                  "in_channels)",
                  checks[i].what, checks[i].value, checks[i].expected);
      return FALSE;
    }
  }
  int max_len = i2v_tokenizer_max_length(m->tokenizer);
  if (max_len < 2 || max_len > enc->text_positions) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_CONFIG,
                "tokenizer/tokenizer_config.json model_max_length %d is outside 2..%d "
                "(text_encoder/config.json max_position_embeddings)",
                max_len, enc->text_positions);
    return FALSE;
  }
  return TRUE;
}

static void model_free(I2vModel *m) {
  for (int k = 0; k < I2V_SAMPLER_COUNT; k++) i2v_sampler_free(m->samplers[k]);
  i2v_ddim_free(m->ddim);
  i2v_unet_free(m->unet);
  i2v_vae_free(m->vae);
  i2v_clip_vision_free(m->vision.net);
  i2v_clip_text_free(m->text.net);
  i2v_tokenizer_free(m->tokenizer);
  i2v_model_dir_free(m->md);
  i2v_lora_free(m->lora);
  i2v_backend_free(m->be);
  g_mutex_clear(&m->encoder_lock);
  g_mutex_clear(&m->sessions_lock);
  if (m->sessions != NULL) g_ptr_array_unref(m->sessions);
  g_free(m->key);
  g_free(m);
}

typedef I2vClipVision *(*VisionLoadFn)(I2vModelDir *md, I2vBackend *be, GError **error);
typedef I2vClipText *(*TextLoadFn)(I2vModelDir *md, I2vBackend *be, GError **error);

/* Released encoders are streamed: read layer by layer while they run (they are read again for
 * every job anyway), so neither sits whole beside the UNet and the VAE (the image-encoder stage
 * was the job's peak at 512²×16 with ViT-H's 1.2 GiB in fp16, then the text encoder's 0.66 GiB). */
static VisionLoadFn vision_load(gboolean released) {
  return released ? i2v_clip_vision_load_streamed : i2v_clip_vision_load;
}

static TextLoadFn text_load(gboolean released) {
  return released ? i2v_clip_text_load_streamed : i2v_clip_text_load;
}

/* The tokenizer from the directory's tokenizer/ folder. */
static I2vTokenizer *load_tokenizer(I2vModelDir *md, GError **error) {
  char *dir = g_build_filename(i2v_model_dir_path(md), "tokenizer", NULL);
  I2vTokenizer *tok = i2v_tokenizer_load(dir, error);
  g_free(dir);
  return tok;
}

/* Loads every component of opts->path onto be (taken over, also on failure). */
static I2vModel *model_new(const I2vModelOptions *opts, I2vBackend *be, GError **error) {
  I2vModel *m = g_new0(I2vModel, 1);
  m->refcount = 1;
  m->be = be;
  g_mutex_init(&m->encoder_lock);
  g_mutex_init(&m->sessions_lock);
  m->sessions = g_ptr_array_new();
  gboolean ok = (m->md = i2v_model_dir_open(opts->path, opts->variant, error)) != NULL;
  if (ok && opts->formula_weights) i2v_model_dir_use_formula(m->md, opts->formula_seed);
  if (ok && opts->lora != NULL && *opts->lora != '\0' &&
      (ok = (m->lora = i2v_lora_open(opts->lora, error)) != NULL))
    i2v_model_dir_use_lora(m->md, m->lora);
  /* the text encoder whole even when released: a LoRA's text-encoder modules are applied to its
   * layers as they load, and i2v_lora_check_applied below needs them all seen */
  ok = ok && (m->tokenizer = load_tokenizer(m->md, error)) &&
       (m->text.net = i2v_clip_text_load(m->md, m->be, error)) &&
       (m->vision.net = vision_load(opts->release_encoders)(m->md, m->be, error));
  EncoderDims enc = ok ? encoder_dims(m) : (EncoderDims){0};
  m->release_encoders = opts->release_encoders;
  if (ok && m->release_encoders) { /* loaded for the checks; the first job loads them again */
    i2v_model_sample_device_memory(m);
    i2v_clip_text_free(m->text.net);
    i2v_clip_vision_free(m->vision.net);
    m->text.net = m->vision.net = NULL;
  }
  ok = ok && (m->vae = i2v_vae_load(m->md, m->be, error)) &&
       (m->unet = i2v_unet_load(m->md, m->be, error)) && (m->ddim = i2v_ddim_load(m->md, error)) &&
       i2v_clip_preprocess_load(m->md, enc.vision_image_size, &m->clip_pp, error) &&
       check_consistency(m, &enc, error) && i2v_lora_check_applied(m->lora, error);
  if (!ok) {
    model_free(m);
    return NULL;
  }
  for (int k = 0; k < I2V_SAMPLER_COUNT; k++) m->samplers[k] = i2v_sampler_new(k, m->ddim);
  i2v_model_sample_device_memory(m);
  return m;
}

typedef void *(*EncoderLoadFn)(I2vModelDir *md, I2vBackend *be, GError **error);

static void *encoder_acquire(I2vModel *m, I2vEncoderSlot *slot, EncoderLoadFn load,
                             GError **error) {
  g_mutex_lock(&m->encoder_lock);
  if (slot->net == NULL) slot->net = load(m->md, m->be, error);
  void *net = slot->net;
  if (net != NULL) slot->users++;
  g_mutex_unlock(&m->encoder_lock);
  return net;
}

static void encoder_release(I2vModel *m, I2vEncoderSlot *slot, GDestroyNotify free_net) {
  g_mutex_lock(&m->encoder_lock);
  if (--slot->users == 0 && m->release_encoders) {
    i2v_model_sample_device_memory(m); /* the peak counts the encoder while it was there */
    free_net(slot->net);
    slot->net = NULL;
  }
  g_mutex_unlock(&m->encoder_lock);
}

const I2vClipText *i2v_model_text_encoder_acquire(I2vModel *m, GError **error) {
  return encoder_acquire(m, &m->text, (EncoderLoadFn)text_load(m->release_encoders), error);
}

const I2vClipVision *i2v_model_vision_encoder_acquire(I2vModel *m, GError **error) {
  return encoder_acquire(m, &m->vision, (EncoderLoadFn)vision_load(m->release_encoders), error);
}

void i2v_model_text_encoder_release(I2vModel *m) {
  encoder_release(m, &m->text, (GDestroyNotify)i2v_clip_text_free);
}

void i2v_model_vision_encoder_release(I2vModel *m) {
  encoder_release(m, &m->vision, (GDestroyNotify)i2v_clip_vision_free);
}

size_t i2v_model_sample_device_memory(I2vModel *m) {
  size_t used, total;
  i2v_backend_device_memory(m->be, &used, &total);
  size_t peak = __atomic_load_n(&m->device_peak, __ATOMIC_RELAXED);
  while (peak < used && !__atomic_compare_exchange_n(&m->device_peak, &peak, used, TRUE,
                                                     __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
  return used;
}

void i2v_model_add_session(I2vModel *m, I2vSession *s) {
  g_mutex_lock(&m->sessions_lock);
  g_ptr_array_add(m->sessions, s);
  g_mutex_unlock(&m->sessions_lock);
}

void i2v_model_remove_session(I2vModel *m, I2vSession *s) {
  g_mutex_lock(&m->sessions_lock);
  g_ptr_array_remove_fast(m->sessions, s);
  g_mutex_unlock(&m->sessions_lock);
}

/* The cache key of a model on backend be: the device and dtype be resolved "auto" and the default
 * precision to, so that "auto" and "cpu" (or "cuda:0") share one loaded model. */
static char *cache_key(const I2vModelOptions *opts, I2vBackend *be) {
  char *path = g_canonicalize_filename(opts->path, NULL);
  char *weights = opts->formula_weights
                      ? g_strdup_printf("formula:%" G_GINT64_MODIFIER "x", opts->formula_seed)
                      : g_strdup("files");
  char *key = g_strdup_printf(
      "%s|%s|%s|%s|%s|%s|%s|%d", path, opts->variant ? opts->variant : "", i2v_backend_name(be),
      i2v_dtype_name(i2v_backend_act_dtype(be)), weights, opts->lora ? opts->lora : "",
      opts->release_encoders ? "release-encoders" : "keep-encoders", opts->threads);
  g_free(path);
  g_free(weights);
  return key;
}

/* Checks what i2v_model_load takes before a backend is made; FALSE with error otherwise. */
static gboolean options_valid(const I2vModelOptions *opts, GError **error) {
  if (opts == NULL || opts->path == NULL) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_INVALID, "no model path given");
    return FALSE;
  }
  if (opts->threads < 0) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_INVALID,
                "threads %d is out of range (expected 0 for every core, or a count)",
                opts->threads);
    return FALSE;
  }
  return TRUE;
}

I2vModel *i2v_model_load_uncached(const I2vModelOptions *opts, GError **error) {
  if (!options_valid(opts, error)) return NULL;
  I2vBackend *be = i2v_backend_new_for_device(opts->device, opts->precision, opts->threads, error);
  return be != NULL ? model_new(opts, be, error) : NULL;
}

I2vModel *i2v_model_load(const I2vModelOptions *opts, GError **error) {
  if (!options_valid(opts, error)) return NULL;
  /* making a backend allocates nothing: it resolves the device, and is dropped for a cached
   * model */
  I2vBackend *be = i2v_backend_new_for_device(opts->device, opts->precision, opts->threads, error);
  if (be == NULL) return NULL;
  char *key = cache_key(opts, be);

  g_mutex_lock(&cache_lock);
  if (cache == NULL) cache = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
  CacheEntry *e;
  while ((e = g_hash_table_lookup(cache, key)) != NULL && e->loading)
    g_cond_wait(&cache_loaded, &cache_lock);
  if (e != NULL) {
    e->model->refcount++;
    g_mutex_unlock(&cache_lock);
    g_free(key);
    i2v_backend_free(be);
    return e->model;
  }
  e = g_new0(CacheEntry, 1);
  e->loading = TRUE;
  g_hash_table_insert(cache, g_strdup(key), e);
  g_mutex_unlock(&cache_lock);

  I2vModel *m = model_new(opts, be, error);

  g_mutex_lock(&cache_lock);
  if (m != NULL) {
    m->key = key;
    e->model = m;
    e->loading = FALSE;
  } else {
    g_hash_table_remove(cache, key); /* a waiter loads again and gets its own error */
    g_free(key);
  }
  g_cond_broadcast(&cache_loaded);
  g_mutex_unlock(&cache_lock);
  return m;
}

I2vModel *i2v_model_ref(I2vModel *m) {
  g_mutex_lock(&cache_lock);
  m->refcount++;
  g_mutex_unlock(&cache_lock);
  return m;
}

void i2v_model_unref(I2vModel *m) {
  if (m == NULL) return;
  g_mutex_lock(&cache_lock);
  gboolean last = --m->refcount == 0;
  if (last && m->key != NULL) g_hash_table_remove(cache, m->key); /* not an uncached one */
  g_mutex_unlock(&cache_lock);
  if (last) model_free(m);
}

const char *i2v_model_device(const I2vModel *m) {
  return i2v_backend_name(m->be);
}

gboolean i2v_model_releases_encoders(const I2vModel *m) {
  return m->release_encoders;
}

void i2v_model_memory(I2vModel *m, I2vMemoryStats *out) {
  out->persistent = i2v_backend_persistent(m->be);
  out->persistent_peak = i2v_backend_persistent_peak(m->be);
  out->scratch = 0;
  g_mutex_lock(&m->sessions_lock);
  for (guint i = 0; i < m->sessions->len; i++)
    out->scratch += i2v_session_scratch(g_ptr_array_index(m->sessions, i));
  g_mutex_unlock(&m->sessions_lock);
  i2v_backend_device_memory(m->be, &out->device_used, &out->device_total);
  out->device_peak = MAX(__atomic_load_n(&m->device_peak, __ATOMIC_RELAXED), out->device_used);
}

int i2v_model_size_multiple(const I2vModel *m) {
  return i2v_vae_downscale(m->vae);
}

int i2v_model_latent_channels(const I2vModel *m) {
  return i2v_vae_latent_channels(m->vae);
}
