/* libFuzzer target: the JSON files of a model folder. The bytes are parsed by the bounded loader
 * (json_load.h) and every member is read by every config accessor; then the same bytes are
 * model_index.json + unet/config.json of a model folder and a safetensors shard index (its shard
 * names must stay in the folder). Each step succeeds or fails with an error, nothing else. */
#include <stdint.h>

#include "config.h"
#include "fuzz_common.h"
#include "json_load.h"
#include "model_dir.h"
#include "safetensors.h"

static FuzzFile file;
static char *model, *index_path;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  fuzz_quiet();
  fuzz_file_init(&file, "fuzz.json");
  model = fuzz_tmp_dir();
  static const char *const folders[] = {
      "unet",      "vae",       "text_encoder",     "image_encoder",
      "tokenizer", "scheduler", "feature_extractor"};
  for (guint i = 0; i < G_N_ELEMENTS(folders); i++) {
    char *folder = g_build_filename(model, folders[i], NULL);
    g_mkdir_with_parents(folder, 0700);
    g_free(folder);
  }
  fuzz_link(model, "model_index.json", file.path);
  fuzz_link(model, "unet/config.json", file.path);
  fuzz_link(model, "unet/diffusion_pytorch_model.safetensors.index.json", file.path);
  index_path =
      g_build_filename(model, "unet", "diffusion_pytorch_model.safetensors.index.json", NULL);
  return 0;
}

/* Every accessor on every member of obj (errors and defaults are fine, crashes are not). */
static void read_every_member(JsonObject *obj) {
  I2vConfig c = {.json = obj, .file = "fuzz.json"};
  static const char *const choices[] = {"linear", "scaled_linear", NULL};
  GList *keys = json_object_get_members(obj);
  for (GList *k = keys; k != NULL; k = k->next) {
    const char *key = k->data;
    GError *err = NULL;
    int i, *ia = NULL, n;
    double d, da[2];
    const char *s;
    gboolean b;
    char **sa = NULL;
    if (!i2v_config_int(&c, key, G_MININT, G_MAXINT, &i, &err)) g_clear_error(&err);
    if (!i2v_config_int_or(&c, key, 1, 8, 2, &i, &err)) g_clear_error(&err);
    if (!i2v_config_double(&c, key, -1e30, 1e30, &d, &err)) g_clear_error(&err);
    if (!i2v_config_double_or(&c, key, 0, 1, 0.5, &d, &err)) g_clear_error(&err);
    if (!i2v_config_string(&c, key, &s, &err)) g_clear_error(&err);
    if (!i2v_config_bool_or(&c, key, FALSE, &b, &err)) g_clear_error(&err);
    if (!i2v_config_ints(&c, key, 16, G_MININT, G_MAXINT, &ia, &n, &err)) g_clear_error(&err);
    if (!i2v_config_doubles(&c, key, 2, -1, 1, da, &err)) g_clear_error(&err);
    if (!i2v_config_strings(&c, key, -1, &sa, &err)) g_clear_error(&err);
    if (!i2v_config_choice(&c, key, "linear", choices, &i, &err)) g_clear_error(&err);
    g_free(ia);
    g_strfreev(sa);
  }
  g_list_free(keys);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  GError *err = NULL;
  JsonObject *obj = i2v_json_parse_object((const char *)data, size, "fuzz.json", &err);
  if (obj != NULL) {
    read_every_member(obj);
    json_object_unref(obj);
  } else {
    g_assert(err != NULL);
    g_clear_error(&err);
  }
  fuzz_file_set(&file, data, size);
  I2vModelDir *md = i2v_model_dir_open(model, NULL, &err);
  if (md != NULL) {
    I2vConfig cfg = {0};
    if (i2v_model_dir_config(md, "unet", &cfg, &err)) i2v_config_clear(&cfg);
    g_clear_error(&err);
    I2vWeights *w = i2v_model_dir_weights(md, "unet", &err);
    i2v_weights_free(w);
    i2v_model_dir_free(md);
  }
  g_clear_error(&err);
  I2vSafetensors *st = i2v_safetensors_open(index_path, &err);
  i2v_safetensors_close(st);
  g_clear_error(&err);
  return 0;
}
