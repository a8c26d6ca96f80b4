/* I2vModel: loading every component of a diffusers I2VGen-XL directory onto a backend, the
 * cross-component consistency checks, the process-wide cache of loaded models (refcounted, keyed
 * by path + variant + device + precision + weight source + release_encoders) and the encoders
 * that a release_encoders model loads for each job. */
#include "model.h"

#include <string.h>

#include "backend.h"
#include "cuda_backend.h"

/* The cache: key → model (borrowed; a model removes itself when its last reference goes). Loads
 * run under the lock so two callers asking for the same model load it once. */
static GMutex cache_lock;
static GHashTable *cache;

/* Maps a device and precision name to a backend (backend.h); *name gets its device name. */
static I2vBackend *backend_for_device(const char *device, const char *precision, char **name,
                                      GError **error) {
  I2vBackend *be = i2v_backend_new_for_device(device, precision, error);
  if (be != NULL) *name = g_strdup(be->name);
  return be;
}

/* The sizes the components exchange must agree (a mixed-up directory fails here, not in an
 * op's shape check). */
static gboolean check_consistency(I2vModel *m, GError **error) {
  int cross = i2v_unet_cross_attention_dim(m->unet);
  const struct {
    const char *what;
    int value, expected;
  } checks[] = {
      {"text_encoder/config.json hidden_size", i2v_clip_text_hidden_size(m->text), cross},
      {"image_encoder/config.json projection_dim", i2v_clip_vision_projection_dim(m->vision),
       cross},
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
  if (max_len < 2 || max_len > i2v_clip_text_max_positions(m->text)) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_CONFIG,
                "tokenizer/tokenizer_config.json model_max_length %d is outside 2..%d "
                "(text_encoder/config.json max_position_embeddings)",
                max_len, i2v_clip_text_max_positions(m->text));
    return FALSE;
  }
  return TRUE;
}

static void model_free(I2vModel *m) {
  i2v_ddim_free(m->ddim);
  i2v_unet_free(m->unet);
  i2v_vae_free(m->vae);
  i2v_clip_vision_free(m->vision);
  i2v_clip_text_free(m->text);
  i2v_tokenizer_free(m->tokenizer);
  i2v_model_dir_free(m->md);
  i2v_lora_free(m->lora);
  if (m->be != NULL) i2v_backend_free(m->be);
  g_mutex_clear(&m->lock);
  g_free(m->device);
  g_free(m->key);
  g_free(m);
}

/* The tokenizer from the directory's tokenizer/ folder. */
static I2vTokenizer *load_tokenizer(I2vModelDir *md, GError **error) {
  char *dir = g_build_filename(i2v_model_dir_path(md), "tokenizer", NULL);
  I2vTokenizer *tok = i2v_tokenizer_load(dir, error);
  g_free(dir);
  return tok;
}

/* Loads every component of opts->path onto a new backend; takes ownership of key. */
static I2vModel *model_new(const I2vModelOptions *opts, char *key, GError **error) {
  I2vModel *m = g_new0(I2vModel, 1);
  m->refcount = 1;
  m->key = key;
  g_mutex_init(&m->lock);
  gboolean ok = (m->be = backend_for_device(opts->device, opts->precision, &m->device, error)) &&
                (m->md = i2v_model_dir_open(opts->path, opts->variant, error));
  if (ok && opts->formula_weights) i2v_model_dir_use_formula(m->md, opts->formula_seed);
  if (ok && opts->lora != NULL && *opts->lora != '\0' &&
      (ok = (m->lora = i2v_lora_open(opts->lora, error)) != NULL))
    i2v_model_dir_use_lora(m->md, m->lora);
  ok = ok && (m->tokenizer = load_tokenizer(m->md, error)) &&
       (m->text = i2v_clip_text_load(m->md, m->be, error)) &&
       (m->vision = i2v_clip_vision_load(m->md, m->be, error)) &&
       (m->vae = i2v_vae_load(m->md, m->be, error)) &&
       (m->unet = i2v_unet_load(m->md, m->be, error)) && (m->ddim = i2v_ddim_load(m->md, error)) &&
       i2v_clip_preprocess_load(m->md, i2v_clip_vision_image_size(m->vision), &m->clip_pp, error) &&
       check_consistency(m, error) && i2v_lora_check_applied(m->lora, error);
  if (!ok) {
    model_free(m);
    return NULL;
  }
  m->release_encoders = opts->release_encoders;
  i2v_model_sample_device_memory(m);
  i2v_model_release_encoders(m); /* loaded for the checks above; the first job loads them again */
  return m;
}

I2vClipText *i2v_model_text_encoder(I2vModel *m, GError **error) {
  if (m->text == NULL) m->text = i2v_clip_text_load(m->md, m->be, error);
  return m->text;
}

I2vClipVision *i2v_model_vision_encoder(I2vModel *m, GError **error) {
  if (m->vision == NULL) m->vision = i2v_clip_vision_load(m->md, m->be, error);
  return m->vision;
}

void i2v_model_release_encoders(I2vModel *m) {
  if (!m->release_encoders) return;
  i2v_model_sample_device_memory(m); /* the peak counts the encoders while they were there */
  /* the clip config was read at load (clip_pp); the sizes the checks compared cannot change,
   * since the same files (or formula) are read again */
  i2v_clip_text_free(m->text);
  i2v_clip_vision_free(m->vision);
  m->text = NULL;
  m->vision = NULL;
}

void i2v_model_sample_device_memory(I2vModel *m) {
  size_t used, total;
  m->be->mem->device_memory(m->be, &used, &total);
  m->device_peak = MAX(m->device_peak, used);
}

I2vModel *i2v_model_load(const I2vModelOptions *opts, GError **error) {
  if (opts == NULL || opts->path == NULL) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_INVALID, "no model path given");
    return NULL;
  }
  char *path = g_canonicalize_filename(opts->path, NULL);
  char *weights = opts->formula_weights
                      ? g_strdup_printf("formula:%" G_GINT64_MODIFIER "x", opts->formula_seed)
                      : g_strdup("files");
  /* the key names the device "auto" resolves to (backend.h: CUDA device 0 when there is one) */
  const char *device = opts->device == NULL || strcmp(opts->device, "auto") == 0
                           ? (i2v_cuda_device_count() > 0 ? "cuda:0" : "cpu")
                       : strcmp(opts->device, "cuda") == 0 ? "cuda:0"
                                                           : opts->device;
  char *key = g_strdup_printf("%s|%s|%s|%s|%s|%s|%s", path, opts->variant ? opts->variant : "",
                              device, opts->precision ? opts->precision : "default", weights,
                              opts->lora ? opts->lora : "",
                              opts->release_encoders ? "release-encoders" : "keep-encoders");
  g_free(path);
  g_free(weights);

  g_mutex_lock(&cache_lock);
  if (cache == NULL) cache = g_hash_table_new(g_str_hash, g_str_equal);
  I2vModel *m = g_hash_table_lookup(cache, key);
  if (m != NULL) {
    m->refcount++;
    g_free(key);
  } else {
    m = model_new(opts, key, error);
    if (m != NULL) g_hash_table_insert(cache, m->key, m);
  }
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
  if (last) g_hash_table_remove(cache, m->key);
  g_mutex_unlock(&cache_lock);
  if (last) model_free(m);
}

void i2v_model_memory(I2vModel *m, I2vMemoryStats *out) {
  g_mutex_lock(&m->lock); /* not in the middle of a generation */
  out->persistent = m->be->persistent_bytes;
  out->persistent_peak = m->be->persistent_peak;
  out->scratch = m->be->mem->scratch_capacity(m->be);
  m->be->mem->device_memory(m->be, &out->device_used, &out->device_total);
  out->device_peak = MAX(m->device_peak, out->device_used);
  g_mutex_unlock(&m->lock);
}

const char *i2v_model_device(const I2vModel *m) {
  return m->device;
}

int i2v_model_size_multiple(const I2vModel *m) {
  return i2v_vae_downscale(m->vae);
}

int i2v_model_latent_channels(const I2vModel *m) {
  return i2v_vae_latent_channels(m->vae);
}
