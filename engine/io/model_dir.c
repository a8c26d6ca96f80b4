/* A diffusers model directory and the JSON config accessors. */
#include "model_dir.h"

#include <string.h>

#include <i2v/error.h>
#include "echo.h"
#include "json_load.h"

/* The components I2VGenXLPipeline is constructed from (model_index.json keys = folder names). */
static const char *const pipeline_components[] = {
    "unet", "vae", "text_encoder", "image_encoder", "tokenizer", "scheduler", "feature_extractor"};

struct I2vModelDir {
  char *path;
  char *variant;     /* NULL or "fp16" */
  JsonObject *index; /* model_index.json */
  gboolean formula;  /* weights from the README-realcfg formula */
  guint64 seed;
  I2vWeightsRecordFn record; /* weights are recording sources (mkmodel) */
  void *record_user;
  I2vLora *lora; /* merged into the weights (borrowed) */
};

/* Checks that model_index.json names component as ["library", "Class"] and its folder exists. */
static gboolean check_component(I2vModelDir *md, const char *component, GError **error) {
  JsonNode *node = json_object_get_member(md->index, component);
  JsonArray *arr = node != NULL && JSON_NODE_HOLDS_ARRAY(node) ? json_node_get_array(node) : NULL;
  if (node == NULL || JSON_NODE_HOLDS_NULL(node)) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_MISSING,
                "%s/model_index.json: component '%s' of I2VGenXLPipeline is missing", md->path,
                component);
    return FALSE;
  }
  if (arr == NULL || json_array_get_length(arr) != 2 ||
      json_node_get_value_type(json_array_get_element(arr, 0)) != G_TYPE_STRING) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_CONFIG,
                "%s/model_index.json: component '%s' is not a [\"library\", \"Class\"] pair",
                md->path, component);
    return FALSE;
  }
  char *folder = g_build_filename(md->path, component, NULL);
  gboolean ok = g_file_test(folder, G_FILE_TEST_IS_DIR);
  if (!ok)
    g_set_error(error, I2V_ERROR, I2V_ERROR_MISSING, "%s: folder of component '%s' is missing",
                md->path, component);
  g_free(folder);
  return ok;
}

I2vModelDir *i2v_model_dir_open(const char *dir, const char *variant, GError **error) {
  if (variant != NULL && strcmp(variant, "fp16") != 0) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_INVALID,
                "%s: unknown weight variant '%s' (expected 'fp16' or none)", dir, variant);
    return NULL;
  }
  if (!g_file_test(dir, G_FILE_TEST_IS_DIR)) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_MISSING, "%s: model directory not found", dir);
    return NULL;
  }
  I2vModelDir *md = g_new0(I2vModelDir, 1);
  md->path = g_strdup(dir);
  md->variant = g_strdup(variant);
  char *index_path = g_build_filename(dir, "model_index.json", NULL);
  md->index = i2v_json_load_object(index_path, error);
  g_free(index_path);
  gboolean ok = md->index != NULL;
  for (guint i = 0; ok && i < G_N_ELEMENTS(pipeline_components); i++)
    ok = check_component(md, pipeline_components[i], error);
  if (!ok) {
    i2v_model_dir_free(md);
    return NULL;
  }
  return md;
}

void i2v_model_dir_record(I2vModelDir *md, I2vWeightsRecordFn fn, void *user) {
  md->record = fn;
  md->record_user = user;
}

void i2v_model_dir_use_formula(I2vModelDir *md, guint64 seed) {
  md->formula = TRUE;
  md->seed = seed;
}

void i2v_model_dir_free(I2vModelDir *md) {
  if (md == NULL) return;
  if (md->index != NULL) json_object_unref(md->index);
  g_free(md->variant);
  g_free(md->path);
  g_free(md);
}

const char *i2v_model_dir_path(const I2vModelDir *md) {
  return md->path;
}

char *i2v_model_dir_file(const I2vModelDir *md, const char *component, const char *file) {
  return g_build_filename(md->path, component, file, NULL);
}

gboolean i2v_model_dir_config(const I2vModelDir *md, const char *component, I2vConfig *c,
                              GError **error) {
  const char *file = "config.json";
  if (strcmp(component, "scheduler") == 0)
    file = "scheduler_config.json";
  else if (strcmp(component, "feature_extractor") == 0)
    file = "preprocessor_config.json";
  else if (strcmp(component, "tokenizer") == 0)
    file = "tokenizer_config.json";
  char *path = i2v_model_dir_file(md, component, file);
  c->json = i2v_json_load_object(path, error);
  g_snprintf(c->file, sizeof c->file, "%s/%s", component, file);
  g_free(path);
  return c->json != NULL;
}

/* The weight file base name: diffusers saves "diffusion_pytorch_model", transformers "model"
 * (model_index.json names the library of each component). */
static const char *weights_base(const I2vModelDir *md, const char *component, GError **error) {
  JsonNode *node = json_object_get_member(md->index, component);
  JsonArray *arr = node != NULL && JSON_NODE_HOLDS_ARRAY(node) ? json_node_get_array(node) : NULL;
  const char *library = arr != NULL ? json_array_get_string_element(arr, 0) : NULL;
  if (g_strcmp0(library, "diffusers") == 0) return "diffusion_pytorch_model";
  if (g_strcmp0(library, "transformers") == 0) return "model";
  g_set_error(error, I2V_ERROR, I2V_ERROR_CONFIG,
              "%s/model_index.json: component '%s' has library '%s', expected 'diffusers' or "
              "'transformers' (a component with weights)",
              md->path, component, library != NULL ? library : "(none)");
  return NULL;
}

/* The paths a component's weights may have for md's variant: [0] the single file, [1] the
 * shard index (diffusers' names: the variant goes before the last suffix). FALSE with error when
 * the component has no weights. */
static gboolean weight_candidates(const I2vModelDir *md, const char *component, char **paths,
                                  GError **error) {
  const char *base = weights_base(md, component, error);
  if (base == NULL) return FALSE;
  char *single, *index;
  if (md->variant != NULL) {
    single = g_strdup_printf("%s.%s.safetensors", base, md->variant);
    index = g_strdup_printf("%s.safetensors.index.%s.json", base, md->variant);
  } else {
    single = g_strdup_printf("%s.safetensors", base);
    index = g_strdup_printf("%s.safetensors.index.json", base);
  }
  paths[0] = i2v_model_dir_file(md, component, single);
  paths[1] = i2v_model_dir_file(md, component, index);
  g_free(single);
  g_free(index);
  return TRUE;
}

char *i2v_model_dir_weight_path(const I2vModelDir *md, const char *component, GError **error) {
  char *paths[2];
  if (!weight_candidates(md, component, paths, error)) return NULL;
  g_free(paths[1]);
  return paths[0];
}

void i2v_model_dir_use_lora(I2vModelDir *md, I2vLora *lora) {
  md->lora = lora;
}

/* The weight source of component, before the LoRA is attached. */
static I2vWeights *open_weights(const I2vModelDir *md, const char *component, GError **error) {
  char *candidates[2];
  if (!weight_candidates(md, component, candidates, error)) return NULL;
  if (md->record != NULL || md->formula) {
    g_free(candidates[0]);
    g_free(candidates[1]);
    return md->record != NULL ? i2v_weights_new_recorder(component, md->record, md->record_user)
                              : i2v_weights_new_formula(md->seed, component);
  }
  I2vWeights *w = NULL;
  for (guint i = 0; i < G_N_ELEMENTS(candidates) && w == NULL; i++) {
    /* a name that exists in the folder, even as a broken or looping symlink, is opened (and
     * its problem reported) rather than skipped */
    if (!g_file_test(candidates[i], G_FILE_TEST_EXISTS) &&
        !g_file_test(candidates[i], G_FILE_TEST_IS_SYMLINK))
      continue;
    I2vSafetensors *st = i2v_safetensors_open(candidates[i], error);
    if (st == NULL) break;
    w = i2v_weights_new_safetensors(st, component);
  }
  if (w == NULL && (error == NULL || *error == NULL))
    g_set_error(error, I2V_ERROR, I2V_ERROR_MISSING,
                "%s: no weight file for component '%s': neither %s nor %s exists", md->path,
                component, candidates[0], candidates[1]);
  g_free(candidates[0]);
  g_free(candidates[1]);
  return w;
}

I2vWeights *i2v_model_dir_weights(const I2vModelDir *md, const char *component, GError **error) {
  I2vWeights *w = open_weights(md, component, error);
  if (w != NULL && md->lora != NULL) i2v_weights_set_lora(w, md->lora);
  return w;
}
