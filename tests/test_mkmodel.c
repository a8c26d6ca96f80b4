/* `i2vgen mkmodel` and the tensor listing behind it: the model directories it writes hold exactly
 * the tensors (names, shapes) of the fixture models, the formula values bit for bit, the fp16
 * variant, deterministic random weights; the real configuration lists the tensors and parameter
 * counts of weights_manifest.json / manifest.json; bad arguments fail with clear messages. */
#include <glib/gstdio.h>
#include <math.h>
#include <string.h>

#include "golden.h"
#include "model_tensors.h"
#include "tool_run.h"
#include "weights.h"

static const char *const weight_files[][2] = {
    {"unet", "diffusion_pytorch_model"},
    {"vae", "diffusion_pytorch_model"},
    {"text_encoder", "model"},
    {"image_encoder", "model"},
};

static char *make_tmp(void) {
  GError *err = NULL;
  char *dir = g_dir_make_tmp("i2v-mkmodel-XXXXXX", &err);
  g_assert_no_error(err);
  return dir;
}

static void rm_rf(const char *path) {
  if (g_file_test(path, G_FILE_TEST_IS_DIR)) {
    GDir *d = g_dir_open(path, 0, NULL);
    for (const char *n; d && (n = g_dir_read_name(d)) != NULL;) {
      char *child = g_build_filename(path, n, NULL);
      rm_rf(child);
      g_free(child);
    }
    if (d) g_dir_close(d);
  }
  g_remove(path);
}

static I2vSafetensors *open_weights(const char *dir, int i, const char *variant) {
  char *file = g_strdup_printf("%s%s%s.safetensors", weight_files[i][1], variant ? "." : "",
                               variant ? variant : "");
  char *path = g_build_filename(dir, weight_files[i][0], file, NULL);
  GError *err = NULL;
  I2vSafetensors *st = i2v_safetensors_open(path, &err);
  g_assert_no_error(err);
  g_free(path);
  g_free(file);
  return st;
}

static void run_ok(const char *const *args) {
  ToolRun r = tool_run(args);
  if (r.status != 0) g_test_message("mkmodel failed: %s", r.err);
  g_assert_cmpint(r.status, ==, 0);
  tool_run_clear(&r);
}

/* Same tensor names and shapes in both files. */
static void check_same_tensors(const I2vSafetensors *got, const I2vSafetensors *ref) {
  g_assert_cmpuint(i2v_safetensors_count(got), ==, i2v_safetensors_count(ref));
  for (guint i = 0; i < i2v_safetensors_count(ref); i++) {
    const I2vSafetensorsEntry *r = i2v_safetensors_entry(ref, i);
    const I2vSafetensorsEntry *g = i2v_safetensors_find(got, r->name);
    if (g == NULL) g_test_message("missing %s", r->name);
    g_assert_nonnull(g);
    g_assert_true(i2v_shape_equal(g->ndim, g->shape, r->ndim, r->shape));
  }
}

/* Every tensor of st equals the formula (rounded to f16 for F16 files). */
static void check_formula_values(const I2vSafetensors *st, guint64 seed) {
  for (guint i = 0; i < i2v_safetensors_count(st); i++) {
    const I2vSafetensorsEntry *e = i2v_safetensors_entry(st, i);
    I2vTensor t = i2v_host_tensor(I2V_DTYPE_F32, e->ndim, e->shape);
    int64_t n = i2v_tensor_numel(&t);
    float *want = t.data, *got = g_new(float, MAX(n, 1));
    i2v_formula_fill(e->name, e->ndim, e->shape, seed, want);
    i2v_convert_to_f32(got, e->data, e->dtype, n);
    for (int64_t k = 0; k < n; k++) {
      float w = e->dtype == I2V_DTYPE_F16 ? i2v_f16_to_f32(i2v_f32_to_f16(want[k])) : want[k];
      if (got[k] != w) g_test_message("%s[%" G_GINT64_FORMAT "]: %g != %g", e->name, k, got[k], w);
      g_assert_true(got[k] == w);
    }
    g_free(got);
    i2v_host_tensor_free(&t);
  }
}

/* --config <fixture model dir> --init hash: the fixture's tensors, formula values, same configs. */
static void test_hash_copy_of_fixture(void) {
  char **sets = golden_sets_with("tokenizer.json");
  for (char **set = sets; *set; set++) {
    char *src = g_build_filename(*set, "model", NULL), *tmp = make_tmp();
    char *out = g_build_filename(tmp, "m", NULL);
    const char *args[] = {"mkmodel",    "--config",           src,     "--init", "hash",
                          "--set-seed", "0x8000000000000001", "--out", out,      NULL};
    run_ok(args);
    for (guint i = 0; i < G_N_ELEMENTS(weight_files); i++) {
      I2vSafetensors *got = open_weights(out, i, NULL), *ref = open_weights(src, i, NULL);
      check_same_tensors(got, ref);
      check_formula_values(got, 0x8000000000000001ULL);
      i2v_safetensors_close(got);
      i2v_safetensors_close(ref);
    }
    const char *same[] = {"unet/config.json", "vae/config.json", "model_index.json",
                          "tokenizer/vocab.json", "scheduler/scheduler_config.json"};
    for (guint i = 0; i < G_N_ELEMENTS(same); i++) {
      char *a = g_build_filename(src, same[i], NULL), *b = g_build_filename(out, same[i], NULL);
      char *da, *db;
      gsize na, nb;
      g_assert_true(g_file_get_contents(a, &da, &na, NULL) &&
                    g_file_get_contents(b, &db, &nb, NULL));
      g_assert_cmpmem(da, na, db, nb);
      g_free(da), g_free(db), g_free(a), g_free(b);
    }
    rm_rf(tmp);
    g_free(out), g_free(tmp), g_free(src);
  }
  g_strfreev(sets);
}

/* The built-in tiny config in f16: the fp16 variant file names, loadable with variant "fp16". */
static void test_builtin_tiny_f16(void) {
  char *tmp = make_tmp(), *out = g_build_filename(tmp, "m", NULL);
  const char *args[] = {"mkmodel", "--config", "tiny",  "--dtype", "f16",
                        "--init",  "hash",     "--out", out,       NULL};
  run_ok(args);
  for (guint i = 0; i < G_N_ELEMENTS(weight_files); i++) {
    I2vSafetensors *st = open_weights(out, i, "fp16");
    g_assert_cmpint(i2v_safetensors_entry(st, 0)->dtype, ==, I2V_DTYPE_F16);
    check_formula_values(st, 0);
    i2v_safetensors_close(st);
  }
  GError *err = NULL;
  I2vModelDir *md = i2v_model_dir_open(out, "fp16", &err);
  g_assert_no_error(err);
  I2vWeights *w = i2v_model_dir_weights(md, "unet", &err);
  g_assert_no_error(err);
  i2v_weights_free(w);
  i2v_model_dir_free(md);
  rm_rf(tmp);
  g_free(out), g_free(tmp);
}

static GBytes *read_file(const char *dir, int i) {
  char *file = g_strdup_printf("%s.safetensors", weight_files[i][1]);
  char *path = g_build_filename(dir, weight_files[i][0], file, NULL);
  GMappedFile *f = g_mapped_file_new(path, FALSE, NULL);
  g_assert_nonnull(f);
  GBytes *b = g_mapped_file_get_bytes(f);
  g_mapped_file_unref(f);
  g_free(path), g_free(file);
  return b;
}

/* --seed: deterministic, seed-dependent, Gaussian with the formula's variance. */
static void test_random_weights(void) {
  char *tmp = make_tmp();
  char *out[3] = {g_build_filename(tmp, "a", NULL), g_build_filename(tmp, "b", NULL),
                  g_build_filename(tmp, "c", NULL)};
  const char *seeds[3] = {"5", "5", "6"};
  for (int k = 0; k < 3; k++) {
    const char *args[] = {"mkmodel", "--config", "tiny", "--seed", seeds[k], "--out", out[k], NULL};
    run_ok(args);
  }
  GBytes *a = read_file(out[0], 0), *b = read_file(out[1], 0), *c = read_file(out[2], 0);
  g_assert_true(g_bytes_equal(a, b));
  g_assert_false(g_bytes_equal(a, c));
  g_bytes_unref(a), g_bytes_unref(b), g_bytes_unref(c);
  /* the largest UNet tensor: mean ≈ 0, variance ≈ s²/3 of its formula rule */
  I2vSafetensors *st = open_weights(out[0], 0, NULL);
  const I2vSafetensorsEntry *big = NULL;
  for (guint i = 0; i < i2v_safetensors_count(st); i++) {
    const I2vSafetensorsEntry *e = i2v_safetensors_entry(st, i);
    if (e->ndim >= 2 && (big == NULL || e->nbytes > big->nbytes)) big = e;
  }
  int64_t n = (int64_t)(big->nbytes / 4);
  const float *v = big->data;
  double sum = 0, sum2 = 0;
  for (int64_t i = 0; i < n; i++) sum += v[i], sum2 += (double)v[i] * v[i];
  gboolean norm;
  double s = i2v_formula_scale(big->name, big->ndim, big->shape, &norm);
  double var = sum2 / n - (sum / n) * (sum / n);
  g_test_message("%s: %" G_GINT64_FORMAT " values, mean %.4g, var %.4g (want %.4g)", big->name, n,
                 sum / n, var, s * s / 3);
  g_assert_cmpfloat(fabs(sum / n), <, 4 * sqrt(s * s / 3 / n) + 1e-9);
  g_assert_cmpfloat(fabs(var / (s * s / 3) - 1), <, 0.1);
  i2v_safetensors_close(st);
  rm_rf(tmp);
  for (int k = 0; k < 3; k++) g_free(out[k]);
  g_free(tmp);
}

/* The built-in i2vgen-xl configuration equals the real configuration files of the fixtures. */
static void test_builtin_real_configs(void) {
  char **sets = golden_sets_with("weights_manifest.json");
  g_assert_nonnull(sets[0]);
  char *tmp = make_tmp(), *out = g_build_filename(tmp, "m", NULL);
  const char *args[] = {"mkmodel", "--config", "i2vgen-xl", "--configs-only", "--out", out, NULL};
  run_ok(args);
  const char *files[] = {"model_index.json",
                         "unet/config.json",
                         "vae/config.json",
                         "text_encoder/config.json",
                         "image_encoder/config.json",
                         "scheduler/scheduler_config.json",
                         "feature_extractor/preprocessor_config.json",
                         "tokenizer/vocab.json",
                         "tokenizer/merges.txt",
                         "tokenizer/tokenizer_config.json"};
  for (guint i = 0; i < G_N_ELEMENTS(files); i++) {
    char *a = g_build_filename(sets[0], "model", files[i], NULL);
    char *b = g_build_filename(out, files[i], NULL);
    char *da, *db;
    gsize na, nb;
    g_assert_true(g_file_get_contents(a, &da, &na, NULL));
    g_assert_true(g_file_get_contents(b, &db, &nb, NULL));
    g_assert_cmpmem(da, na, db, nb);
    g_free(da), g_free(db), g_free(a), g_free(b);
  }
  char *unet_weights = g_build_filename(out, "unet", "diffusion_pytorch_model.safetensors", NULL);
  g_assert_false(g_file_test(unet_weights, G_FILE_TEST_EXISTS));
  g_free(unet_weights);
  rm_rf(tmp);
  g_free(out), g_free(tmp);
  g_strfreev(sets);
}

typedef struct {
  GHashTable *shapes; /* name → "[..]" */
  gint64 params;
} Listing;

static void collect(const char *component, const char *name, int ndim, const int64_t *shape,
                    void *user) {
  (void)component;
  Listing *l = user;
  char buf[128];
  g_hash_table_insert(l->shapes, g_strdup(name),
                      g_strdup(i2v_shape_format(ndim, shape, buf, sizeof buf)));
  int64_t n = 1;
  for (int d = 0; d < ndim; d++) n *= shape[d];
  l->params += n;
}

/* The real configuration's networks read exactly the tensors of weights_manifest.json, and their
 * parameter counts are manifest.json's (the reference implementation's). No weight is read or
 * allocated. */
static void test_real_config_tensor_list(void) {
  char **sets = golden_sets_with("weights_manifest.json");
  for (char **set = sets; *set; set++) {
    JsonNode *wm = golden_json(*set, "weights_manifest.json");
    JsonNode *man = golden_json(*set, "manifest.json");
    JsonObject *comps = json_object_get_object_member(
        json_object_get_object_member(json_node_get_object(man), "model"), "components");
    char *model = g_build_filename(*set, "model", NULL);
    for (const char *const *c = i2v_weight_components; *c; c++) {
      Listing l = {g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free), 0};
      GError *err = NULL;
      g_assert_true(i2v_model_dir_list_tensors(model, *c, collect, &l, &err));
      g_assert_no_error(err);
      JsonObject *wc = json_object_get_object_member(
          json_object_get_object_member(json_node_get_object(wm), "components"), *c);
      JsonArray *list = json_object_get_array_member(wc, "list");
      g_assert_cmpuint(json_array_get_length(list), ==, g_hash_table_size(l.shapes));
      for (guint i = 0; i < json_array_get_length(list); i++) {
        JsonObject *t = json_array_get_object_element(list, i);
        const char *name = json_object_get_string_member(t, "name");
        JsonArray *shape = json_object_get_array_member(t, "shape");
        int64_t dims[I2V_MAX_DIMS];
        int nd = (int)json_array_get_length(shape);
        for (int d = 0; d < nd; d++) dims[d] = json_array_get_int_element(shape, d);
        char buf[128];
        const char *got = g_hash_table_lookup(l.shapes, name);
        if (got == NULL) g_test_message("%s: %s not read by the loader", *c, name);
        g_assert_cmpstr(got, ==, i2v_shape_format(nd, dims, buf, sizeof buf));
      }
      gint64 want = json_object_get_int_member(json_object_get_object_member(comps, *c), "params");
      g_test_message("%s: %u tensors, %" G_GINT64_FORMAT " parameters", *c,
                     g_hash_table_size(l.shapes), l.params);
      g_assert_cmpint(l.params, ==, want);
      g_hash_table_unref(l.shapes);
    }
    g_free(model);
    json_node_unref(wm);
    json_node_unref(man);
  }
  g_strfreev(sets);
}

static void test_bad_arguments(void) {
  char *tmp = make_tmp(), *out = g_build_filename(tmp, "m", NULL);
  const char *no_out[] = {"mkmodel", "--config", "tiny", NULL};
  tool_expect_failure(no_out, 2, "--out");
  const char *bad_config[] = {"mkmodel", "--config", "huge", "--out", out, NULL};
  tool_expect_failure(bad_config, 2, "'huge'");
  const char *bad_dtype[] = {"mkmodel", "--config", "tiny", "--dtype", "f64", "--out", out, NULL};
  tool_expect_failure(bad_dtype, 2, "'f64'");
  const char *bad_init[] = {"mkmodel", "--config", "tiny", "--init", "zeros", "--out", out, NULL};
  tool_expect_failure(bad_init, 2, "'zeros'");
  const char *bad_seed[] = {"mkmodel",    "--config", "tiny",  "--init", "hash",
                            "--set-seed", "0xZZ",     "--out", out,      NULL};
  tool_expect_failure(bad_seed, 2, "'0xZZ'");
  /* a file where the output directory should go */
  char *file = g_build_filename(tmp, "file", NULL);
  g_file_set_contents(file, "x", 1, NULL);
  char *under_file = g_build_filename(file, "m", NULL);
  const char *unwritable[] = {"mkmodel", "--config", "tiny", "--out", under_file, NULL};
  tool_expect_failure(unwritable, 1, under_file);
  /* a config directory whose unet config is broken: the loader's error names it */
  char *bad_dir = g_build_filename(tmp, "bad", NULL);
  const char *copy[] = {"mkmodel", "--config", "tiny", "--configs-only", "--out", bad_dir, NULL};
  run_ok(copy);
  char *cfg = g_build_filename(bad_dir, "unet", "config.json", NULL);
  g_file_set_contents(cfg, "{\"_class_name\": \"I2VGenXLUNet\"}", -1, NULL);
  const char *broken[] = {"mkmodel", "--config", bad_dir, "--out", out, NULL};
  tool_expect_failure(broken, 1, "unet/config.json");
  rm_rf(tmp);
  g_free(cfg), g_free(bad_dir), g_free(under_file), g_free(file), g_free(out), g_free(tmp);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/mkmodel/hash-copy-of-fixture", test_hash_copy_of_fixture);
  g_test_add_func("/mkmodel/builtin-tiny-f16", test_builtin_tiny_f16);
  g_test_add_func("/mkmodel/random-weights", test_random_weights);
  g_test_add_func("/mkmodel/builtin-real-configs", test_builtin_real_configs);
  g_test_add_func("/mkmodel/real-config-tensor-list", test_real_config_tensor_list);
  g_test_add_func("/mkmodel/bad-arguments", test_bad_arguments);
  return g_test_run();
}
