/* i2vgen mkmodel: writes a complete diffusers-format I2VGen-XL model directory with synthetic
 * weights for any configuration (the tiny test config, the real i2vgen-xl config, or the configs of
 * another model directory). Tensor names and shapes are not listed here: the engine's own network
 * loaders are run against a recording weight source, so mkmodel writes exactly what the loaders
 * read. Weights are either the README-realcfg formula ("hash", bit-exact with the fixtures) or
 * Gaussian values of the same scale ("random"). */
#include <errno.h>
#include <gio/gio.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include <i2v/error.h>
#include "model_tensors.h"

/* Configuration files of a model directory, relative to it. */
static const char *const config_files[] = {
    "model_index.json",
    "unet/config.json",
    "vae/config.json",
    "text_encoder/config.json",
    "image_encoder/config.json",
    "scheduler/scheduler_config.json",
    "feature_extractor/preprocessor_config.json",
};
static const char *const tokenizer_files[] = {"vocab.json", "merges.txt", "tokenizer_config.json",
                                              "special_tokens_map.json"};

typedef struct {
  char *name;
  int ndim;
  int64_t shape[I2V_MAX_DIMS];
} Recorded;

typedef struct {
  gboolean hash; /* formula weights; else Gaussian */
  guint64 seed;
  I2vDType dtype; /* F32 or F16 */
} Init;

static gboolean write_bytes(const char *path, const void *data, gsize size, GError **error) {
  char *dir = g_path_get_dirname(path);
  int rc = g_mkdir_with_parents(dir, 0755);
  g_free(dir);
  if (rc != 0) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_IO, "cannot create the folder of %s: %s", path,
                g_strerror(errno));
    return FALSE;
  }
  return g_file_set_contents(path, data, (gssize)size, error);
}

/* Copies a file of the built-in resource tree (/i2vgen/NAME/...) or of a model directory. */
static gboolean copy_file(const char *src_dir, const char *resource_dir, const char *rel,
                          const char *out_dir, GError **error) {
  char *dst = g_build_filename(out_dir, rel, NULL);
  gboolean ok;
  if (src_dir != NULL) {
    char *src = g_build_filename(src_dir, rel, NULL), *data = NULL;
    gsize size = 0;
    ok = g_file_get_contents(src, &data, &size, error) && write_bytes(dst, data, size, error);
    g_free(data);
    g_free(src);
  } else {
    char *path = g_strconcat(resource_dir, "/", rel, NULL);
    GBytes *bytes = g_resources_lookup_data(path, G_RESOURCE_LOOKUP_FLAGS_NONE, error);
    ok = bytes != NULL;
    if (ok) {
      gsize size;
      const void *data = g_bytes_get_data(bytes, &size);
      ok = write_bytes(dst, data, size, error);
      g_bytes_unref(bytes);
    }
    g_free(path);
  }
  g_free(dst);
  return ok;
}

gboolean cmd_write_configs(const char *config, const char *out_dir, GError **error) {
  const char *src_dir = NULL;
  char *resource_dir = NULL;
  if (strcmp(config, "tiny") == 0 || strcmp(config, "i2vgen-xl") == 0)
    resource_dir = g_strconcat("/i2vgen/", config, NULL);
  else
    src_dir = config; /* a directory: checked by the caller */
  gboolean ok = TRUE;
  for (guint i = 0; ok && i < G_N_ELEMENTS(config_files); i++)
    ok = copy_file(src_dir, resource_dir, config_files[i], out_dir, error);
  /* the tokenizer: the source directory's own, else the built-in CLIP BPE files */
  char *tok_dir = src_dir ? g_build_filename(src_dir, "tokenizer", NULL) : NULL;
  gboolean own_tokenizer = tok_dir && g_file_test(tok_dir, G_FILE_TEST_IS_DIR);
  for (guint i = 0; ok && i < G_N_ELEMENTS(tokenizer_files); i++) {
    char *rel = g_build_filename("tokenizer", tokenizer_files[i], NULL);
    ok = copy_file(own_tokenizer ? src_dir : NULL, "/i2vgen", rel, out_dir, error);
    g_free(rel);
  }
  g_free(tok_dir);
  g_free(resource_dir);
  return ok;
}

static void record_tensor(const char *component, const char *name, int ndim, const int64_t *shape,
                          void *user) {
  (void)component;
  GArray *list = user;
  Recorded r = {.name = g_strdup(name), .ndim = ndim};
  memcpy(r.shape, shape, sizeof(int64_t) * ndim);
  g_array_append_val(list, r);
}

static void recorded_clear(gpointer p) {
  g_free(((Recorded *)p)->name);
}

/* The tensors component's loader reads (names and shapes). */
static GArray *list_tensors(const char *out_dir, const char *component, GError **error) {
  GArray *list = g_array_new(FALSE, FALSE, sizeof(Recorded));
  g_array_set_clear_func(list, recorded_clear);
  if (!i2v_model_dir_list_tensors(out_dir, component, record_tensor, list, error))
    g_clear_pointer(&list, g_array_unref);
  return list;
}

static guint64 splitmix_next(guint64 *state) {
  guint64 z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/* Gaussian weights with the variance of the formula's values for the same tensor (its rule
 * scale s: U(-s, s) has variance s²/3; norm scales 1 + N(0, s²/3)), from a SplitMix64 stream keyed
 * by the tensor name and seed, Box–Muller in double. */
static void fill_random(const Recorded *r, guint64 seed, float *out, int64_t n) {
  gboolean norm;
  double sd = i2v_formula_scale(r->name, r->ndim, r->shape, &norm) / sqrt(3.0);
  guint64 state = seed ^ (g_str_hash(r->name) * 0x9e3779b97f4a7c15ULL);
  for (int64_t i = 0; i < n; i++) {
    double u1 = ((double)(splitmix_next(&state) >> 11) + 0.5) * 0x1p-53;
    double u2 = (double)(splitmix_next(&state) >> 11) * 0x1p-53;
    double g = sqrt(-2.0 * log(u1)) * cos(2.0 * G_PI * u2);
    out[i] = (float)((norm ? 1.0 : 0.0) + g * sd);
  }
}

typedef struct {
  const Recorded *tensor;
  const Init *init;
} FillJob;

/* Writer callback: the values of one tensor in the output dtype. */
static void fill_tensor(void *dst, int64_t n, void *user) {
  const FillJob *job = user;
  float *f32 = job->init->dtype == I2V_DTYPE_F32 ? dst : g_new(float, n);
  if (job->init->hash)
    i2v_formula_fill(job->tensor->name, job->tensor->ndim, job->tensor->shape, job->init->seed,
                     f32);
  else
    fill_random(job->tensor, job->init->seed, f32, n);
  if (f32 != dst) {
    uint16_t *h = dst;
    for (int64_t i = 0; i < n; i++) h[i] = i2v_f32_to_f16(f32[i]);
    g_free(f32);
  }
}

/* Writes the weights of one component: every tensor its loader reads, filled per init, under
 * the file name the model directory has for the dtype's variant. */
static gboolean write_component(const char *out_dir, const char *component, const Init *init,
                                GError **error) {
  I2vModelDir *md =
      i2v_model_dir_open(out_dir, init->dtype == I2V_DTYPE_F16 ? "fp16" : NULL, error);
  char *path = md ? i2v_model_dir_weight_path(md, component, error) : NULL;
  i2v_model_dir_free(md);
  GArray *list = path ? list_tensors(out_dir, component, error) : NULL;
  if (list == NULL) {
    g_free(path);
    return FALSE;
  }
  I2vSafetensorsWriter *w = i2v_safetensors_writer_new();
  FillJob *jobs = g_new(FillJob, list->len);
  for (guint i = 0; i < list->len; i++) {
    const Recorded *r = &g_array_index(list, Recorded, i);
    jobs[i] = (FillJob){.tensor = r, .init = init};
    i2v_safetensors_writer_add_lazy(w, r->name, init->dtype, r->ndim, r->shape, fill_tensor,
                                    &jobs[i]);
  }
  gboolean ok = i2v_safetensors_writer_save(w, path, error);
  if (ok) fprintf(stderr, "mkmodel: %s (%u tensors)\n", path, list->len);
  g_free(path);
  g_free(jobs);
  i2v_safetensors_writer_free(w);
  g_array_unref(list);
  return ok;
}

int cmd_mkmodel(int argc, char **argv) {
  char *config = NULL, *dtype = NULL, *init_name = NULL, *set_seed = NULL, *seed = NULL,
       *out = NULL;
  gboolean configs_only = FALSE;
  GOptionEntry entries[] = {
      {"config", 0, 0, G_OPTION_ARG_STRING, &config, "tiny, i2vgen-xl or a model DIR", "CFG"},
      {"dtype", 0, 0, G_OPTION_ARG_STRING, &dtype, "f32 (default) or f16 (fp16 variant)", "T"},
      {"init", 0, 0, G_OPTION_ARG_STRING, &init_name, "random (default) or hash", "KIND"},
      {"set-seed", 0, 0, G_OPTION_ARG_STRING, &set_seed, "set seed of --init hash (0x-hex)", "S"},
      {"seed", 0, 0, G_OPTION_ARG_STRING, &seed, "seed of --init random", "S"},
      {"out", 0, 0, G_OPTION_ARG_FILENAME, &out, "output model directory", "DIR"},
      {"configs-only", 0, 0, G_OPTION_ARG_NONE, &configs_only,
       "write the configuration and tokenizer files only, no weights", NULL},
      {NULL}};
  GOptionContext *ctx = g_option_context_new("- write a diffusers-format model directory");
  g_option_context_add_main_entries(ctx, entries, NULL);
  GError *err = NULL;
  int status = 0;
  Init init = {.dtype = I2V_DTYPE_F32};
  if (!g_option_context_parse(ctx, &argc, &argv, &err)) {
    status = 2;
  } else if (config == NULL || out == NULL) {
    err = g_error_new(I2V_ERROR, I2V_ERROR_INVALID, "--config and --out are required");
    status = 2;
  } else if (strcmp(config, "tiny") != 0 && strcmp(config, "i2vgen-xl") != 0 &&
             !g_file_test(config, G_FILE_TEST_IS_DIR)) {
    err = g_error_new(I2V_ERROR, I2V_ERROR_INVALID,
                      "--config '%s': expected 'tiny', 'i2vgen-xl' or a model directory", config);
    status = 2;
  } else if (dtype && strcmp(dtype, "f32") != 0 && strcmp(dtype, "f16") != 0) {
    err = g_error_new(I2V_ERROR, I2V_ERROR_INVALID, "--dtype '%s': expected f32 or f16", dtype);
    status = 2;
  } else if (init_name && strcmp(init_name, "hash") != 0 && strcmp(init_name, "random") != 0) {
    err = g_error_new(I2V_ERROR, I2V_ERROR_INVALID, "--init '%s': expected random or hash",
                      init_name);
    status = 2;
  } else {
    init.hash = init_name && strcmp(init_name, "hash") == 0;
    init.dtype = dtype && strcmp(dtype, "f16") == 0 ? I2V_DTYPE_F16 : I2V_DTYPE_F32;
    const char *seed_text = init.hash ? set_seed : seed;
    const char *seed_option = init.hash ? "--set-seed" : "--seed";
    if (seed_text != NULL && !cmd_parse_u64(seed_text, seed_option, &init.seed, &err)) status = 2;
  }
  if (status == 0 && !cmd_write_configs(config, out, &err)) status = 1;
  for (guint i = 0; status == 0 && !configs_only && i2v_weight_components[i] != NULL; i++)
    if (!write_component(out, i2v_weight_components[i], &init, &err)) status = 1;
  if (status != 0) cmd_fail("mkmodel", err);
  g_option_context_free(ctx);
  g_free(config);
  g_free(dtype);
  g_free(init_name);
  g_free(set_seed);
  g_free(seed);
  g_free(out);
  return status;
}
