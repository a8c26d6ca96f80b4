/* The model directory and the config accessors: every set's model/ opens, its configs read back
 * the constructor arguments of the manifest, weight files are found (fp32, fp16, shard index,
 * formula); and every failure names the directory / component / file / key at fault. */
#include <glib/gstdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <i2v/error.h>
#include "cpu_backend.h"
#include "stream.h"
#include "golden.h"
#include "json_load.h"
#include "model_dir.h"

static const char *const components[] = {
    "unet", "vae", "text_encoder", "image_encoder", "tokenizer", "scheduler", "feature_extractor"};
static const char *const weight_components[] = {"unet", "vae", "text_encoder", "image_encoder"};

/* ---- helpers ---- */

static void expect_open_error(const char *dir, const char *variant, int code,
                              const char *const *needles) {
  GError *err = NULL;
  g_assert_null(i2v_model_dir_open(dir, variant, &err));
  golden_assert_error(&err, code, needles);
}

static char *set_model(const char *set) {
  return g_build_filename(set, "model", NULL);
}

static I2vModelDir *open_ok(const char *dir, const char *variant) {
  GError *err = NULL;
  I2vModelDir *md = i2v_model_dir_open(dir, variant, &err);
  g_assert_no_error(err);
  return md;
}

/* A temp model directory: model_index.json with index_json and every component folder except
 * skip_folder (NULL: all). Returns the path (g_free; remove with golden_tree_remove). */
static char *make_model_dir(const char *index_json, const char *skip_folder) {
  GError *err = NULL;
  char *dir = g_dir_make_tmp("i2v-md-XXXXXX", &err);
  g_assert_no_error(err);
  char *index = g_build_filename(dir, "model_index.json", NULL);
  g_assert_true(g_file_set_contents(index, index_json, -1, NULL));
  g_free(index);
  for (guint i = 0; i < G_N_ELEMENTS(components); i++) {
    if (g_strcmp0(components[i], skip_folder) == 0) continue;
    char *p = g_build_filename(dir, components[i], NULL);
    g_assert_cmpint(g_mkdir(p, 0755), ==, 0);
    g_free(p);
  }
  return dir;
}

/* The model_index.json text of a set with component key drop left out (NULL: none), or with
 * its value replaced by the JSON text replacement. */
static char *index_text(const char *drop, const char *replacement) {
  GString *s = g_string_new("{\"_class_name\": \"I2VGenXLPipeline\"");
  for (guint i = 0; i < G_N_ELEMENTS(components); i++) {
    const char *lib = g_str_has_suffix(components[i], "_encoder") ||
                              strcmp(components[i], "tokenizer") == 0 ||
                              strcmp(components[i], "feature_extractor") == 0
                          ? "transformers"
                          : "diffusers";
    if (g_strcmp0(components[i], drop) == 0) {
      if (replacement != NULL)
        g_string_append_printf(s, ", \"%s\": %s", components[i], replacement);
      continue;
    }
    g_string_append_printf(s, ", \"%s\": [\"%s\", \"Class\"]", components[i], lib);
  }
  g_string_append(s, "}");
  return g_string_free(s, FALSE);
}

/* Compares the config values of c with a manifest constructor-argument object, through the
 * typed accessors (with ranges wide enough for any value). Returns the number of keys compared. */
static guint compare_config(const I2vConfig *c, JsonObject *kwargs) {
  guint compared = 0;
  GList *keys = json_object_get_members(kwargs);
  for (GList *l = keys; l != NULL; l = l->next) {
    const char *key = l->data;
    JsonNode *want = json_object_get_member(kwargs, key);
    GError *err = NULL;
    if (JSON_NODE_HOLDS_NULL(want)) {
      int v;
      g_assert_true(i2v_config_int_or(c, key, G_MININT, G_MAXINT, -12345, &v, &err));
      g_assert_cmpint(v, ==, -12345);
    } else if (JSON_NODE_HOLDS_ARRAY(want)) {
      JsonArray *arr = json_node_get_array(want);
      guint n = json_array_get_length(arr);
      if (n > 0 && json_node_get_value_type(json_array_get_element(arr, 0)) == G_TYPE_STRING) {
        char **got;
        g_assert_true(i2v_config_strings(c, key, (int)n, &got, &err));
        for (guint i = 0; i < n; i++)
          g_assert_cmpstr(got[i], ==, json_array_get_string_element(arr, i));
        g_strfreev(got);
      } else if (n > 0 &&
                 json_node_get_value_type(json_array_get_element(arr, 0)) == G_TYPE_INT64) {
        int *got, got_n;
        g_assert_true(i2v_config_ints(c, key, (int)n, G_MININT, G_MAXINT, &got, &got_n, &err));
        g_assert_cmpint(got_n, ==, n);
        for (guint i = 0; i < n; i++)
          g_assert_cmpint(got[i], ==, json_array_get_int_element(arr, i));
        g_free(got);
      } else {
        continue; /* lists of floats and empty lists: read by no network */
      }
    } else if (JSON_NODE_HOLDS_OBJECT(want)) {
      continue; /* nested objects are no accessor's business */
    } else {
      GType t = json_node_get_value_type(want);
      if (t == G_TYPE_INT64) {
        int v;
        g_assert_true(i2v_config_int(c, key, G_MININT, G_MAXINT, &v, &err));
        g_assert_cmpint(v, ==, json_node_get_int(want));
      } else if (t == G_TYPE_DOUBLE) {
        double v;
        g_assert_true(i2v_config_double(c, key, -1e300, 1e300, &v, &err));
        g_assert_cmpfloat(v, ==, json_node_get_double(want));
      } else if (t == G_TYPE_BOOLEAN) {
        gboolean v;
        g_assert_true(i2v_config_bool_or(c, key, !json_node_get_boolean(want), &v, &err));
        g_assert_cmpint(v, ==, json_node_get_boolean(want));
      } else {
        const char *v;
        g_assert_true(i2v_config_string(c, key, &v, &err));
        g_assert_cmpstr(v, ==, json_node_get_string(want));
      }
    }
    g_assert_no_error(err);
    compared++;
  }
  g_list_free(keys);
  return compared;
}

/* ---- positive ---- */

/* Every set's model/ opens (no variant and fp16), every component config parses, and the
 * configs hold the constructor arguments the manifest lists. */
static void test_open_every_set(void) {
  static const struct {
    const char *kwargs, *component;
  } pairs[] = {{"unet_kwargs", "unet"},
               {"vae_kwargs", "vae"},
               {"scheduler_kwargs", "scheduler"},
               {"text_config", "text_encoder"},
               {"vision_config", "image_encoder"},
               {"tokenizer_kwargs", "tokenizer"}};
  char **sets = golden_sets_with("manifest.json");
  guint opened = 0, compared = 0;
  for (char **s = sets; *s != NULL; s++) {
    char *dir = set_model(*s);
    JsonNode *manifest = golden_json(*s, "manifest.json");
    JsonObject *model = json_object_get_object_member(json_node_get_object(manifest), "model");
    for (int v = 0; v < 2; v++) {
      I2vModelDir *md = open_ok(dir, v ? "fp16" : NULL);
      g_assert_cmpstr(i2v_model_dir_path(md), ==, dir);
      char *file = i2v_model_dir_file(md, "tokenizer", "vocab.json");
      g_assert_true(g_file_test(file, G_FILE_TEST_IS_REGULAR));
      g_free(file);
      for (guint c = 0; c < G_N_ELEMENTS(components); c++) {
        GError *err = NULL;
        I2vConfig cfg;
        g_assert_true(i2v_model_dir_config(md, components[c], &cfg, &err));
        g_assert_no_error(err);
        g_assert_cmpuint(json_object_get_size(cfg.json), >, 0);
        g_assert_true(g_str_has_prefix(cfg.file, components[c]));
        i2v_config_clear(&cfg);
      }
      for (guint p = 0; v == 0 && p < G_N_ELEMENTS(pairs); p++) {
        if (!json_object_has_member(model, pairs[p].kwargs)) continue; /* realcfg lists none */
        I2vConfig cfg;
        g_assert_true(i2v_model_dir_config(md, pairs[p].component, &cfg, NULL));
        compared += compare_config(&cfg, json_object_get_object_member(model, pairs[p].kwargs));
        i2v_config_clear(&cfg);
      }
      i2v_model_dir_free(md);
      opened++;
    }
    json_node_unref(manifest);
    g_free(dir);
  }
  g_strfreev(sets);
  g_test_message("%u model dirs opened, %u config values compared", opened, compared);
  g_assert_cmpuint(opened, >, 0);
}

/* The weights of every component: the fp32 files as the manifest counts them, the fp16 variant
 * with values rounded to half; formula weights for sets without files. */
static void test_weights_every_set(void) {
  char **sets = golden_sets_with("manifest.json");
  I2vBackend *be = i2v_cpu_backend_new(0);
  I2vStream *stream = i2v_stream_new(be, NULL);
  guint from_files = 0, formula = 0;
  for (char **s = sets; *s != NULL; s++) {
    char *dir = set_model(*s);
    JsonNode *manifest = golden_json(*s, "manifest.json");
    JsonObject *comps = json_object_get_object_member(
        json_object_get_object_member(json_node_get_object(manifest), "model"), "components");
    char *probe = g_build_filename(dir, "unet", "diffusion_pytorch_model.safetensors", NULL);
    gboolean has_files = g_file_test(probe, G_FILE_TEST_EXISTS);
    g_free(probe);
    I2vModelDir *md32 = open_ok(dir, NULL), *md16 = open_ok(dir, "fp16");
    for (guint c = 0; c < G_N_ELEMENTS(weight_components) && has_files; c++) {
      const char *comp = weight_components[c];
      GError *err = NULL;
      I2vWeights *w32 = i2v_model_dir_weights(md32, comp, &err);
      g_assert_no_error(err);
      I2vWeights *w16 = i2v_model_dir_weights(md16, comp, &err);
      g_assert_no_error(err);
      /* nothing loaded yet: every tensor is unused */
      gint64 want =
          json_object_get_int_member(json_object_get_object_member(comps, comp), "tensors");
      g_assert_cmpint(i2v_weights_log_unused(w32), ==, want);
      g_assert_cmpint(i2v_weights_log_unused(w16), ==, want);
      g_assert_false(i2v_weights_has(w32, "no.such.tensor"));
      /* the fp16 variant's tensors are the fp32 ones rounded to half */
      const char *base = g_str_has_suffix(comp, "_encoder") ? "model" : "diffusion_pytorch_model";
      char *f = g_strdup_printf("%s.safetensors", base);
      char *path = i2v_model_dir_file(md32, comp, f);
      I2vSafetensors *st = i2v_safetensors_open(path, &err);
      g_assert_no_error(err);
      guint differ = 0;
      for (guint i = 0; i < i2v_safetensors_count(st); i++) {
        const I2vSafetensorsEntry *e = i2v_safetensors_entry(st, i);
        I2vTensor a, h;
        g_assert_true(
            i2v_weights_load(w32, be, e->name, e->ndim, e->shape, I2V_LAYOUT_AS_IS, &a, &err));
        g_assert_true(
            i2v_weights_load(w16, be, e->name, e->ndim, e->shape, I2V_LAYOUT_AS_IS, &h, &err));
        g_assert_no_error(err);
        const float *va = a.data, *vh = h.data;
        for (int64_t k = 0; k < i2v_tensor_numel(&a); k++) {
          g_assert_cmpfloat(vh[k], ==, i2v_f16_to_f32(i2v_f32_to_f16(va[k])));
          differ += vh[k] != va[k];
        }
        i2v_tensor_free(&a);
        i2v_tensor_free(&h);
      }
      g_assert_cmpuint(differ, >, 0); /* the variant really is another file */
      g_assert_cmpint(i2v_weights_log_unused(w32), ==, 0);
      i2v_safetensors_close(st);
      g_free(path);
      g_free(f);
      i2v_weights_free(w32);
      i2v_weights_free(w16);
      from_files++;
    }
    if (!has_files) {
      /* formula sets: every name is available, values are the formula's for the given seed */
      i2v_model_dir_use_formula(md32, 42);
      GError *err = NULL;
      I2vWeights *w = i2v_model_dir_weights(md32, "unet", &err);
      g_assert_no_error(err);
      g_assert_true(i2v_weights_has(w, "conv_in.weight"));
      I2vTensor t;
      int64_t shape[] = {5, 3};
      g_assert_true(i2v_weights_load(w, be, "x.weight", 2, shape, I2V_LAYOUT_AS_IS, &t, &err));
      float ref[15];
      i2v_formula_fill("x.weight", 2, shape, 42, ref);
      g_assert_cmpmem(t.data, sizeof ref, ref, sizeof ref);
      i2v_tensor_free(&t);
      i2v_weights_free(w);
      formula++;
    }
    i2v_model_dir_free(md32);
    i2v_model_dir_free(md16);
    json_node_unref(manifest);
    g_free(dir);
  }
  g_strfreev(sets);
  i2v_stream_free(stream);
  i2v_backend_free(be);
  g_test_message("%u components from files, %u formula sets", from_files, formula);
}

/* A shard index is found when no single file exists (also for the fp16 variant's name). */
static void test_shard_index_found(void) {
  char *idx = index_text(NULL, NULL);
  char *dir = make_model_dir(idx, NULL);
  g_free(idx);
  I2vSafetensorsWriter *wr = i2v_safetensors_writer_new();
  float v[4] = {1, 2, 3, 4};
  int64_t shape[] = {4};
  i2v_safetensors_writer_add(wr, "conv_in.bias", I2V_DTYPE_F32, 1, shape, v);
  char *shard = g_build_filename(dir, "unet", "shard-1.safetensors", NULL);
  g_assert_true(i2v_safetensors_writer_save(wr, shard, NULL));
  i2v_safetensors_writer_free(wr);
  const char *index_json = "{\"weight_map\": {\"conv_in.bias\": \"shard-1.safetensors\"}}";
  const char *names[] = {"diffusion_pytorch_model.safetensors.index.json",
                         "diffusion_pytorch_model.safetensors.index.fp16.json"};
  for (int variant = 0; variant < 2; variant++) {
    char *p = g_build_filename(dir, "unet", names[variant], NULL);
    g_assert_true(g_file_set_contents(p, index_json, -1, NULL));
    I2vModelDir *md = open_ok(dir, variant ? "fp16" : NULL);
    GError *err = NULL;
    I2vWeights *w = i2v_model_dir_weights(md, "unet", &err);
    g_assert_no_error(err);
    g_assert_true(i2v_weights_has(w, "conv_in.bias"));
    g_assert_cmpuint(i2v_weights_log_unused(w), ==, 1);
    i2v_weights_free(w);
    i2v_model_dir_free(md);
    g_unlink(p);
    g_free(p);
  }
  g_free(shard);
  golden_tree_remove(dir);
  g_free(dir);
}

/* model_index.json without a component, with a null component, or a component folder missing. */
static void test_missing_component(void) {
  for (guint c = 0; c < G_N_ELEMENTS(components); c++) {
    char *idx = index_text(components[c], NULL);
    char *dir = make_model_dir(idx, NULL);
    char *quoted = g_strdup_printf("'%s'", components[c]);
    expect_open_error(dir, NULL, I2V_ERROR_MISSING,
                      (const char *[]){dir, "model_index.json", quoted, "missing", NULL});
    golden_tree_remove(dir);
    g_free(dir);
    g_free(idx);
    idx = index_text(NULL, NULL);
    dir = make_model_dir(idx, components[c]);
    expect_open_error(dir, "fp16", I2V_ERROR_MISSING,
                      (const char *[]){dir, quoted, "folder", NULL});
    golden_tree_remove(dir);
    g_free(dir);
    g_free(idx);
    g_free(quoted);
  }
  char *idx = index_text("vae", "null");
  char *dir = make_model_dir(idx, NULL);
  expect_open_error(dir, NULL, I2V_ERROR_MISSING, (const char *[]){"'vae'", "missing", NULL});
  golden_tree_remove(dir);
  g_free(dir);
  g_free(idx);
  idx = index_text("unet", "\"I2VGenXLUNet\"");
  dir = make_model_dir(idx, NULL);
  expect_open_error(dir, NULL, I2V_ERROR_CONFIG,
                    (const char *[]){"'unet'", "model_index.json", NULL});
  golden_tree_remove(dir);
  g_free(dir);
  g_free(idx);
}

/* model_index.json that is missing, not JSON or not an object; a directory that is missing. */
static void test_bad_index(void) {
  char *dir = make_model_dir("[\"unet\"]", NULL);
  expect_open_error(dir, NULL, I2V_ERROR_FORMAT,
                    (const char *[]){"model_index.json", "expected a JSON object", NULL});
  char *index = g_build_filename(dir, "model_index.json", NULL);
  g_assert_true(g_file_set_contents(index, "{\"unet\": [", -1, NULL));
  expect_open_error(dir, NULL, I2V_ERROR_FORMAT, (const char *[]){index, NULL});
  g_unlink(index);
  expect_open_error(dir, NULL, I2V_ERROR_MISSING, (const char *[]){index, "not found", NULL});
  g_free(index);
  golden_tree_remove(dir);
  expect_open_error(dir, NULL, I2V_ERROR_MISSING, (const char *[]){dir, "not found", NULL});
  g_free(dir);
}

static void test_unknown_variant(void) {
  char **sets = golden_sets_with("manifest.json");
  if (sets[0] != NULL) {
    char *dir = set_model(sets[0]);
    expect_open_error(dir, "fp8", I2V_ERROR_INVALID, (const char *[]){"'fp8'", "variant", NULL});
    expect_open_error(dir, "", I2V_ERROR_INVALID, (const char *[]){"''", "variant", NULL});
    g_free(dir);
  }
  g_strfreev(sets);
}

/* No weight file: the error names both candidates, for each variant and component library. */
static void test_missing_weights(void) {
  char *idx = index_text(NULL, NULL);
  char *dir = make_model_dir(idx, NULL);
  g_free(idx);
  static const struct {
    const char *variant, *component, *single, *index;
  } cases[] = {
      {NULL, "unet", "unet/diffusion_pytorch_model.safetensors",
       "unet/diffusion_pytorch_model.safetensors.index.json"},
      {"fp16", "vae", "vae/diffusion_pytorch_model.fp16.safetensors",
       "vae/diffusion_pytorch_model.safetensors.index.fp16.json"},
      {NULL, "text_encoder", "text_encoder/model.safetensors",
       "text_encoder/model.safetensors.index.json"},
      {"fp16", "image_encoder", "image_encoder/model.fp16.safetensors",
       "image_encoder/model.safetensors.index.fp16.json"},
  };
  for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
    I2vModelDir *md = open_ok(dir, cases[i].variant);
    GError *err = NULL;
    g_assert_null(i2v_model_dir_weights(md, cases[i].component, &err));
    char *quoted = g_strdup_printf("'%s'", cases[i].component);
    golden_assert_error(&err, I2V_ERROR_MISSING,
                        (const char *[]){quoted, cases[i].single, cases[i].index, NULL});
    g_free(quoted);
    i2v_model_dir_free(md);
  }
  /* a present but corrupt weight file is reported as such, not as missing */
  char *bad = g_build_filename(dir, "unet", "diffusion_pytorch_model.safetensors", NULL);
  g_assert_true(g_file_set_contents(bad, "xx", 2, NULL));
  I2vModelDir *md = open_ok(dir, NULL);
  GError *err = NULL;
  g_assert_null(i2v_model_dir_weights(md, "unet", &err));
  golden_assert_error(&err, I2V_ERROR_FORMAT, (const char *[]){bad, "shorter", NULL});
  /* components without weights */
  g_assert_null(i2v_model_dir_weights(md, "scheduler", &err));
  golden_assert_error(&err, -1, (const char *[]){"'scheduler'", NULL});
  i2v_model_dir_free(md);
  g_free(bad);
  golden_tree_remove(dir);
  g_free(dir);
}

/* A config file that is missing or not an object names the file. */
static void test_bad_config(void) {
  char *idx = index_text(NULL, NULL);
  char *dir = make_model_dir(idx, NULL);
  g_free(idx);
  I2vModelDir *md = open_ok(dir, NULL);
  GError *err = NULL;
  I2vConfig cfg;
  g_assert_false(i2v_model_dir_config(md, "scheduler", &cfg, &err));
  golden_assert_error(&err, I2V_ERROR_MISSING,
                      (const char *[]){"scheduler/scheduler_config.json", NULL});
  char *path = i2v_model_dir_file(md, "vae", "config.json");
  g_assert_true(g_file_set_contents(path, "3", -1, NULL));
  g_assert_false(i2v_model_dir_config(md, "vae", &cfg, &err));
  golden_assert_error(&err, I2V_ERROR_FORMAT,
                      (const char *[]){"vae/config.json", "JSON object", NULL});
  g_assert_true(g_file_set_contents(path, "{\"a\": ", -1, NULL));
  g_assert_false(i2v_model_dir_config(md, "vae", &cfg, &err));
  golden_assert_error(&err, I2V_ERROR_FORMAT, (const char *[]){"vae/config.json", NULL});
  g_free(path);
  i2v_model_dir_free(md);
  golden_tree_remove(dir);
  g_free(dir);
}

/* Files a careless user or an attacker could put in a model folder: a directory or a symlink loop
 * as the weight file ("mmap() failed: No such device", "neither ... exists" before), a FIFO as a
 * config (open() blocked forever), and configs that are empty (a Json-CRITICAL, fatal under
 * G_DEBUG=fatal-criticals), nested 100000 deep (a stack overflow in json-glib) or with a key
 * twice. A huge config value is repeated shortened. */
static void test_hostile_files(void) {
  char *idx = index_text(NULL, NULL);
  char *dir = make_model_dir(idx, NULL);
  g_free(idx);
  I2vModelDir *md = open_ok(dir, NULL);
  GError *err = NULL;
  char *weights = g_build_filename(dir, "unet", "diffusion_pytorch_model.safetensors", NULL);
  g_assert_cmpint(g_mkdir(weights, 0700), ==, 0);
  g_assert_null(i2v_model_dir_weights(md, "unet", &err));
  golden_assert_error(&err, I2V_ERROR_IO, (const char *[]){weights, "is a directory", NULL});
  char *loop = g_build_filename(dir, "vae", "diffusion_pytorch_model.safetensors", NULL);
  g_assert_cmpint(symlink(loop, loop), ==, 0);
  g_assert_null(i2v_model_dir_weights(md, "vae", &err));
  golden_assert_error(&err, I2V_ERROR_IO, (const char *[]){loop, "symlink loop", NULL});
  char *cfg = i2v_model_dir_file(md, "text_encoder", "config.json");
  g_assert_cmpint(mkfifo(cfg, 0600), ==, 0);
  I2vConfig config = {0};
  g_assert_false(i2v_model_dir_config(md, "text_encoder", &config, &err));
  golden_assert_error(&err, I2V_ERROR_IO, (const char *[]){cfg, "is a FIFO", NULL});
  g_free(cfg);
  cfg = i2v_model_dir_file(md, "scheduler", "scheduler_config.json");
  const struct {
    const char *text, *why;
  } bad[] = {{"", "empty"},
             {" \n", "empty"},
             {"{\"beta_end\": 0.02, \"beta_end\": 2}", "'beta_end' appears twice"}};
  for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
    g_assert_true(g_file_set_contents(cfg, bad[i].text, -1, NULL));
    g_assert_false(i2v_model_dir_config(md, "scheduler", &config, &err));
    golden_assert_error(&err, I2V_ERROR_FORMAT, (const char *[]){cfg, bad[i].why, NULL});
  }
  GString *deep = g_string_new("{\"sample_size\": ");
  for (int i = 0; i < 100000; i++) g_string_append(deep, "[");
  for (int i = 0; i < 100000; i++) g_string_append(deep, "]");
  g_string_append(deep, "}");
  g_assert_true(g_file_set_contents(cfg, deep->str, -1, NULL));
  g_assert_false(i2v_model_dir_config(md, "scheduler", &config, &err));
  golden_assert_error(&err, I2V_ERROR_FORMAT, (const char *[]){cfg, "nested deeper", NULL});
  g_string_free(deep, TRUE);
  GString *big = g_string_new("{\"act\": \"");
  for (int i = 0; i < 1000000; i++) g_string_append_c(big, 'x');
  g_string_append(big, "\"}");
  g_assert_true(g_file_set_contents(cfg, big->str, -1, NULL));
  g_assert_true(i2v_model_dir_config(md, "scheduler", &config, &err));
  g_assert_no_error(err);
  int v;
  g_assert_false(i2v_config_int(&config, "act", 0, 1, &v, &err));
  g_assert_cmpuint(strlen(err->message), <, 1000);
  golden_assert_error(&err, I2V_ERROR_CONFIG, (const char *[]){"act is", "xxx…", "bytes)", NULL});
  i2v_config_clear(&config);
  g_string_free(big, TRUE);
  g_free(cfg);
  g_free(loop);
  g_free(weights);
  i2v_model_dir_free(md);
  golden_tree_remove(dir);
  g_free(dir);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/model-dir/open-every-set", test_open_every_set);
  g_test_add_func("/model-dir/weights-every-set", test_weights_every_set);
  g_test_add_func("/model-dir/shard-index-found", test_shard_index_found);
  g_test_add_func("/model-dir/bad/missing-component", test_missing_component);
  g_test_add_func("/model-dir/bad/index", test_bad_index);
  g_test_add_func("/model-dir/bad/unknown-variant", test_unknown_variant);
  g_test_add_func("/model-dir/bad/missing-weights", test_missing_weights);
  g_test_add_func("/model-dir/bad/config", test_bad_config);
  g_test_add_func("/model-dir/bad/hostile-files", test_hostile_files);
  return g_test_run();
}
