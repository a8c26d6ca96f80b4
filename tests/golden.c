/* Golden fixture helpers shared by the engine tests. */
#include "golden.h"

#include <i2v/error.h>

#include <glib/gstdio.h>
#include <math.h>
#include <string.h>

#include <i2v/error.h>

const char *golden_root(void) {
  const char *env = g_getenv("I2V_FIXTURES");
  return env != NULL && *env ? env : I2V_DEFAULT_FIXTURES;
}

char **golden_sets_with(const char *file) {
  GPtrArray *sets = g_ptr_array_new();
  GError *err = NULL;
  GDir *dir = g_dir_open(golden_root(), 0, &err);
  if (dir == NULL) {
    g_test_message("fixtures root %s: %s", golden_root(), err->message);
    g_test_fail();
    g_error_free(err);
  } else {
    GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
    for (const char *n; (n = g_dir_read_name(dir)) != NULL;) g_ptr_array_add(names, g_strdup(n));
    g_dir_close(dir);
    g_ptr_array_sort(names, (GCompareFunc)g_strcmp0);
    for (guint i = 0; i < names->len; i++) {
      char *set = g_build_filename(golden_root(), g_ptr_array_index(names, i), NULL);
      char *probe = g_build_filename(set, "golden", file, NULL);
      if (g_file_test(probe, G_FILE_TEST_EXISTS))
        g_ptr_array_add(sets, set);
      else
        g_free(set);
      g_free(probe);
    }
    g_ptr_array_unref(names);
  }
  g_ptr_array_add(sets, NULL);
  return (char **)g_ptr_array_free(sets, FALSE);
}

I2vSafetensors *golden_open(const char *set, const char *name) {
  char *path = g_build_filename(set, "golden", name, NULL);
  GError *err = NULL;
  I2vSafetensors *st = i2v_safetensors_open(path, &err);
  if (st == NULL) g_error("golden file %s: %s", path, err->message);
  g_free(path);
  return st;
}

/* Python's json writes non-finite floats as the bare words NaN, Infinity and -Infinity (e.g.
 * schedulers.json's lambda_min_clipped); outside strings they become null, which JSON can hold. */
static void null_non_finite(GString *text) {
  static const char *const words[] = {"-Infinity", "Infinity", "NaN"};
  gboolean in_string = FALSE;
  for (gsize i = 0; i < text->len; i++) {
    char c = text->str[i];
    if (in_string) {
      if (c == '\\')
        i++;
      else if (c == '"')
        in_string = FALSE;
      continue;
    }
    if (c == '"') in_string = TRUE;
    for (guint w = 0; w < G_N_ELEMENTS(words); w++) {
      gsize n = strlen(words[w]);
      if (strncmp(text->str + i, words[w], n) == 0) {
        g_string_erase(text, i, n);
        g_string_insert(text, i, "null");
        i += 3;
        break;
      }
    }
  }
}

JsonNode *golden_json(const char *set, const char *name) {
  char *path = g_build_filename(set, "golden", name, NULL);
  JsonParser *p = json_parser_new();
  GError *err = NULL;
  char *contents = NULL;
  gsize len = 0;
  if (!g_file_get_contents(path, &contents, &len, &err))
    g_error("golden file %s: %s", path, err->message);
  GString *text = g_string_new_len(contents, len);
  g_free(contents);
  null_non_finite(text);
  if (!json_parser_load_from_data(p, text->str, text->len, &err))
    g_error("golden file %s: %s", path, err->message);
  g_string_free(text, TRUE);
  JsonNode *root = json_node_copy(json_parser_get_root(p));
  g_object_unref(p);
  g_free(path);
  return root;
}

double golden_atol(const char *set, const char *group, const char *tensor) {
  JsonNode *root = golden_json(set, "tolerances.json");
  double atol = 0;
  JsonObject *o = json_node_get_object(root);
  o = json_object_has_member(o, "tensors") ? json_object_get_object_member(o, "tensors") : NULL;
  o = o && json_object_has_member(o, group) ? json_object_get_object_member(o, group) : NULL;
  o = o && json_object_has_member(o, tensor) ? json_object_get_object_member(o, tensor) : NULL;
  if (o != NULL && json_object_has_member(o, "recommended_atol"))
    atol = json_object_get_double_member(o, "recommended_atol");
  json_node_unref(root);
  return atol;
}

gboolean golden_formula_seed(const char *set, guint64 *seed) {
  JsonNode *root = golden_json(set, "manifest.json");
  JsonObject *o = json_node_get_object(root);
  JsonObject *w =
      json_object_has_member(o, "weights") ? json_object_get_object_member(o, "weights") : NULL;
  const char *hex = w ? json_object_get_string_member_with_default(w, "seed_hex", NULL) : NULL;
  if (hex != NULL) {
    char *end = NULL;
    *seed = g_ascii_strtoull(hex, &end, 16); /* accepts the 0x prefix */
    g_assert_true(end != hex && *end == '\0');
  }
  json_node_unref(root);
  return hex != NULL;
}

gboolean golden_set_selected(const char *set) {
  const char *want = g_getenv("I2V_TEST_WEIGHTS");
  guint64 seed;
  if (want == NULL || *want == '\0') return TRUE;
  return strcmp(want, golden_formula_seed(set, &seed) ? "formula" : "files") == 0;
}

char *golden_model_with(const char *file) {
  char **sets = golden_sets_with(file);
  g_assert_nonnull(sets[0]);
  char *dir = g_build_filename(sets[0], "model", NULL);
  g_strfreev(sets);
  return dir;
}

I2vModelDir *golden_open_model(const char *set, const char *variant) {
  char *dir = g_build_filename(set, "model", NULL);
  GError *err = NULL;
  I2vModelDir *md = i2v_model_dir_open(dir, variant, &err);
  g_assert_no_error(err);
  guint64 seed;
  if (golden_formula_seed(set, &seed)) i2v_model_dir_use_formula(md, seed);
  g_free(dir);
  return md;
}

char *golden_tmp_dir(const char *prefix) {
  char *tmpl = g_strdup_printf("%s-XXXXXX", prefix);
  GError *err = NULL;
  char *dir = g_dir_make_tmp(tmpl, &err);
  g_assert_no_error(err);
  g_free(tmpl);
  return dir;
}

void golden_assert_error(GError **err, int code, const char *const *needles) {
  g_assert_nonnull(*err);
  g_test_message("expected error: %s", (*err)->message);
  g_assert_true((*err)->domain == I2V_ERROR);
  if (code >= 0) g_assert_cmpint((*err)->code, ==, code);
  for (const char *const *n = needles; *n != NULL; n++)
    if (strstr((*err)->message, *n) == NULL)
      g_error("message '%s' does not name '%s'", (*err)->message, *n);
  g_clear_error(err);
}

I2vTensor golden_upload(I2vStream *stream, const I2vSafetensors *st, const char *name) {
  I2vTensor host, t;
  GError *err = NULL;
  g_assert_true(i2v_safetensors_read_f32(st, name, &host, &err));
  t = i2v_scratch_tensor(stream, host.ndim, host.shape);
  g_assert_true(i2v_tensor_upload_f32(stream, &t, host.data, &err));
  g_assert_no_error(err);
  i2v_host_tensor_free(&host);
  return t;
}

double golden_max_abs_diff(const float *a, const float *b, int64_t n) {
  double m = 0;
  for (int64_t i = 0; i < n; i++) {
    double d = fabs((double)a[i] - (double)b[i]);
    if (!(d <= m)) m = d; /* NaN propagates as the maximum */
  }
  return m;
}

double golden_rel_l2(const float *got, const float *ref, int64_t n) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; i++) {
    double d = (double)got[i] - ref[i];
    num += d * d;
    den += (double)ref[i] * ref[i];
  }
  return sqrt(num) / MAX(sqrt(den), 1e-30);
}

gboolean golden_check(const I2vSafetensors *st, const char *name, const float *got, int64_t n,
                      double atol, const char *label) {
  I2vTensor ref;
  GError *err = NULL;
  if (!i2v_safetensors_read_f32(st, name, &ref, &err)) {
    g_test_message("%s: %s", label, err->message);
    g_error_free(err);
    return FALSE;
  }
  gboolean ok = i2v_tensor_numel(&ref) == n;
  if (!ok) {
    g_test_message("%s: %s has %" G_GINT64_FORMAT " elements, got %" G_GINT64_FORMAT, label, name,
                   i2v_tensor_numel(&ref), n);
  } else {
    const float *r = ref.data;
    double worst = 0;
    int64_t at = 0;
    for (int64_t i = 0; i < n; i++) {
      double d = fabs((double)got[i] - (double)r[i]);
      if (!(d <= worst)) {
        worst = d;
        at = i;
      }
    }
    ok = worst <= atol;
    g_test_message("%s %s: max abs err %.3g (atol %.3g) at %" G_GINT64_FORMAT
                   " (got %.7g ref %.7g)%s",
                   label, name, worst, atol, at, got[at], r[at], ok ? "" : "  FAIL");
  }
  i2v_host_tensor_free(&ref);
  return ok;
}

float *golden_nhwc_to_nchw(const float *x, int64_t n, int64_t h, int64_t w, int64_t c) {
  float *y = g_new(float, n *h *w *c);
  for (int64_t b = 0; b < n; b++)
    for (int64_t i = 0; i < h * w; i++)
      for (int64_t k = 0; k < c; k++) y[(b * c + k) * h * w + i] = x[(b * h * w + i) * c + k];
  return y;
}

/* Copies the regular files of src into dst (created), and the folders one level deep. */
static void copy_tree(const char *src, const char *dst, int depth) {
  GError *err = NULL;
  if (depth > 0) g_assert_cmpint(g_mkdir(dst, 0700), ==, 0);
  GDir *dir = g_dir_open(src, 0, &err);
  g_assert_no_error(err);
  for (const char *n; (n = g_dir_read_name(dir)) != NULL;) {
    char *from = g_build_filename(src, n, NULL), *to = g_build_filename(dst, n, NULL);
    if (g_file_test(from, G_FILE_TEST_IS_DIR)) {
      if (depth == 0) copy_tree(from, to, depth + 1);
    } else {
      char *bytes;
      gsize size;
      g_assert_true(g_file_get_contents(from, &bytes, &size, &err));
      g_assert_true(g_file_set_contents(to, bytes, size, &err));
      g_free(bytes);
    }
    g_free(from);
    g_free(to);
  }
  g_dir_close(dir);
}

char *golden_model_copy(const char *set) {
  GError *err = NULL;
  char *dst = g_dir_make_tmp("i2v-model-XXXXXX", &err);
  g_assert_no_error(err);
  char *src = g_build_filename(set, "model", NULL);
  copy_tree(src, dst, 0);
  g_free(src);
  return dst;
}

void golden_tree_remove(const char *dir) {
  GDir *d = g_dir_open(dir, 0, NULL);
  for (const char *n; d != NULL && (n = g_dir_read_name(d)) != NULL;) {
    char *path = g_build_filename(dir, n, NULL);
    if (g_file_test(path, G_FILE_TEST_IS_DIR) && !g_file_test(path, G_FILE_TEST_IS_SYMLINK))
      golden_tree_remove(path);
    else
      g_unlink(path);
    g_free(path);
  }
  if (d != NULL) g_dir_close(d);
  g_rmdir(dir);
}

void golden_model_remove(char *dir) {
  golden_tree_remove(dir);
  g_free(dir);
}

void golden_config_set(const char *dir, const char *component, const char *file, const char *key,
                       const char *value) {
  char *path = g_build_filename(dir, component, file, NULL);
  JsonParser *p = json_parser_new();
  GError *err = NULL;
  g_assert_true(json_parser_load_from_file(p, path, &err));
  JsonObject *o = json_node_get_object(json_parser_get_root(p));
  if (value != NULL) {
    JsonParser *v = json_parser_new();
    g_assert_true(json_parser_load_from_data(v, value, -1, &err));
    json_object_set_member(o, key, json_node_copy(json_parser_get_root(v)));
    g_object_unref(v);
  } else {
    json_object_remove_member(o, key);
  }
  JsonGenerator *g = json_generator_new();
  json_generator_set_root(g, json_parser_get_root(p));
  g_assert_true(json_generator_to_file(g, path, &err));
  g_object_unref(g);
  g_object_unref(p);
  g_free(path);
}
