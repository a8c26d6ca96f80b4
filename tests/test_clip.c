/* The CLIP text and vision encoders against every fixture set that has their goldens: each
 * case's hidden states (captured with a debug tap), final outputs, the pipeline's clip_skip
 * prompt embeddings, fp16-variant weights through the pipeline goldens, and config / weight
 * errors on a doctored copy of a model directory.
 *
 * I2V_TEST_WEIGHTS=files|formula restricts the run to sets with weight files (the tiny model)
 * or with formula weights (the real-size sets, meson suite "slow"); unset runs both. */
#include <math.h>
#include <string.h>
#include <time.h>

#include <glib/gstdio.h>

#include "clip_text.h"
#include "stream.h"
#include "cpu_backend.h"
#include "clip_vision.h"
#include <i2v/error.h>
#include "golden.h"

/* ---- fixture sets ---- */

/* Copies the int64 values of an I64 golden tensor (any alignment) into ids[n]. */
static void read_ids(const I2vSafetensors *st, const char *name, int64_t *ids, int64_t n) {
  const I2vSafetensorsEntry *e = i2v_safetensors_find(st, name);
  g_assert_nonnull(e);
  g_assert_cmpint(e->dtype, ==, I2V_DTYPE_I64);
  g_assert_cmpuint(e->nbytes, ==, n * sizeof(int64_t));
  memcpy(ids, e->data, e->nbytes);
}

/* Names of st ending in suffix, with the suffix cut off (the case prefixes), sorted. */
static char **prefixes_of(const I2vSafetensors *st, const char *suffix) {
  GPtrArray *out = g_ptr_array_new();
  for (guint i = 0; i < i2v_safetensors_count(st); i++) {
    const char *name = i2v_safetensors_entry(st, i)->name;
    if (g_str_has_suffix(name, suffix))
      g_ptr_array_add(out, g_strndup(name, strlen(name) - strlen(suffix)));
  }
  g_ptr_array_sort(out, (GCompareFunc)g_strcmp0);
  g_ptr_array_add(out, NULL);
  return (char **)g_ptr_array_free(out, FALSE);
}

/* ---- comparing and summarising ---- */

/* The worst error per tensor kind (the name without its case prefix) of one test. */
typedef struct {
  const char *set, *group; /* tolerances.json group */
  GHashTable *worst;       /* kind → double* */
  GPtrArray *kinds;        /* first-seen order, for the summary */
} Errors;

static Errors errors_new(const char *set, const char *group) {
  Errors e = {set, group, g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free),
              g_ptr_array_new_with_free_func(g_free)};
  return e;
}

/* Compares got[n] with golden tensor prefix+kind within its tolerance and records the error. */
static void check(Errors *e, const I2vSafetensors *st, const char *prefix, const char *kind,
                  const float *got, int64_t n) {
  char *name = g_strconcat(prefix, kind, NULL);
  double atol = golden_atol(e->set, e->group, name);
  g_assert_cmpfloat(atol, >, 0); /* every float golden has a tolerance */
  I2vTensor ref;
  GError *err = NULL;
  g_assert_true(i2v_safetensors_read_f32(st, name, &ref, &err));
  g_assert_cmpint(i2v_tensor_numel(&ref), ==, n);
  double diff = golden_max_abs_diff(got, ref.data, n);
  i2v_host_tensor_free(&ref);
  double *worst = g_hash_table_lookup(e->worst, kind);
  if (worst == NULL) {
    worst = g_new0(double, 1);
    g_hash_table_insert(e->worst, g_strdup(kind), worst);
    g_ptr_array_add(e->kinds, g_strdup(kind));
  }
  if (!(diff <= *worst)) *worst = diff;
  g_assert_true(golden_check(st, name, got, n, atol, e->group));
  g_free(name);
}

/* Prints one line with the worst error per kind and frees e. */
static void errors_report(Errors *e, const char *what) {
  GString *s = g_string_new(NULL);
  for (guint i = 0; i < e->kinds->len; i++) {
    const char *kind = g_ptr_array_index(e->kinds, i);
    g_string_append_printf(s, " %s %.2g;", kind, *(double *)g_hash_table_lookup(e->worst, kind));
  }
  g_test_message("SUMMARY %s %s: max abs err%s", what, e->set, s->str);
  g_string_free(s, TRUE);
  g_ptr_array_free(e->kinds, TRUE);
  g_hash_table_unref(e->worst);
}

/* CPU seconds used by the process so far. */
static double cpu_seconds(void) {
  return (double)clock() / CLOCKS_PER_SEC;
}

/* ---- capturing hidden states ---- */

/* Host copies of hidden_states.0 … .count-1, filled by the tap the encoders call. */
typedef struct {
  int count;
  float **states;
} HiddenTap;

static void capture_hidden(I2vStream *stream, const char *name, const I2vTensor *t, void *user) {
  HiddenTap *h = user;
  int l;
  if (sscanf(name, "hidden_states.%d", &l) != 1 || l < 0 || l >= h->count) return;
  g_free(h->states[l]);
  h->states[l] = g_new(float, i2v_tensor_numel(t));
  GError *err = NULL;
  g_assert_true(i2v_tensor_download_f32(stream, t, h->states[l], &err));
}

/* Installs capture_hidden on stream for hidden states 0 … count-1. */
static void hidden_tap_install(HiddenTap *h, I2vStream *stream, int count) {
  h->count = count;
  h->states = g_new0(float *, count);
  i2v_stream_set_tap(stream, capture_hidden, h);
}

static void hidden_tap_free(HiddenTap *h) {
  for (int i = 0; i < h->count; i++) g_free(h->states[i]);
  g_free(h->states);
}

/* ---- text encoder ---- */

static void test_text_set(gconstpointer data) {
  const char *set = data;
  I2vSafetensors *st = golden_open(set, "text_encoder.safetensors");
  char **cases = prefixes_of(st, "input_ids");
  int n_cases = g_strv_length(cases);
  g_assert_cmpint(n_cases, >, 0);
  /* every case as one batch (all are padded to the same length) */
  char *first = g_strconcat(cases[0], "input_ids", NULL);
  int len = (int)i2v_safetensors_find(st, first)->shape[1];
  g_free(first);
  int64_t *ids = g_new(int64_t, (int64_t)n_cases * len);
  for (int c = 0; c < n_cases; c++) {
    char *name = g_strconcat(cases[c], "input_ids", NULL);
    read_ids(st, name, ids + (int64_t)c * len, len);
    g_free(name);
  }

  I2vModelDir *md = golden_open_model(set, NULL);
  I2vBackend *be = i2v_cpu_backend_new(0);
  I2vStream *stream = i2v_stream_new(be, NULL);
  GError *err = NULL;
  double t0 = cpu_seconds();
  gint64 w0 = g_get_monotonic_time();
  I2vClipText *m = i2v_clip_text_load(md, be, &err);
  g_assert_no_error(err);
  g_test_message("text %s: load %.2f s CPU, %.2f s wall", set, cpu_seconds() - t0,
                 (g_get_monotonic_time() - w0) / 1e6);
  int L = i2v_clip_text_num_layers(m), C = i2v_clip_text_hidden_size(m);
  int64_t per_case = (int64_t)len * C, all = n_cases * per_case;

  /* all layers + final norm, every hidden state through the tap */
  HiddenTap tap;
  hidden_tap_install(&tap, stream, L + 1);
  float *last = g_new(float, all), *skip = g_new(float, all), *early = g_new(float, all);
  t0 = cpu_seconds();
  w0 = g_get_monotonic_time();
  g_assert_true(i2v_clip_text_forward(m, stream, ids, n_cases, len, L, TRUE, last, &err));
  g_assert_no_error(err);
  g_test_message("text %s: forward of %d x %d tokens, %d layers: %.2f s CPU, %.2f s wall", set,
                 n_cases, len, L, cpu_seconds() - t0, (g_get_monotonic_time() - w0) / 1e6);
  i2v_stream_set_tap(stream, NULL, NULL);
  /* the pipeline's path: penultimate layer + final norm */
  g_assert_true(i2v_clip_text_forward(m, stream, ids, n_cases, len, L - 1, TRUE, skip, &err));
  /* stopping after one layer without the norm gives hidden_states.1 */
  g_assert_true(i2v_clip_text_forward(m, stream, ids, n_cases, len, 1, FALSE, early, &err));

  Errors e = errors_new(set, "text_encoder");
  for (int c = 0; c < n_cases; c++) {
    int64_t off = c * per_case;
    for (int k = 0; k <= L; k++) {
      char kind[40];
      g_snprintf(kind, sizeof kind, "hidden_states.%d", k);
      char *name = g_strconcat(cases[c], kind, NULL);
      if (i2v_safetensors_find(st, name) != NULL) {
        check(&e, st, cases[c], kind, tap.states[k] + off, per_case);
        if (k == 1) check(&e, st, cases[c], kind, early + off, per_case);
      }
      g_free(name);
    }
    check(&e, st, cases[c], "last_hidden_state", last + off, per_case);
    check(&e, st, cases[c], "prompt_embeds_clip_skip1", skip + off, per_case);
    /* row l: the last token after layer l (it attends to every token) */
    char *rows_name = g_strconcat(cases[c], "hidden_states_last_token", NULL);
    if (i2v_safetensors_find(st, rows_name) != NULL) {
      float *rows = g_new(float, (int64_t)(L + 1) * C);
      for (int l = 0; l <= L; l++)
        memcpy(rows + (int64_t)l * C, tap.states[l] + off + (int64_t)(len - 1) * C,
               C * sizeof(float));
      check(&e, st, cases[c], "hidden_states_last_token", rows, (int64_t)(L + 1) * C);
      g_free(rows);
    }
    g_free(rows_name);
  }
  errors_report(&e, "text");

  hidden_tap_free(&tap);
  g_free(last);
  g_free(skip);
  g_free(early);
  g_free(ids);
  g_strfreev(cases);
  i2v_clip_text_free(m);
  i2v_stream_free(stream);
  i2v_backend_free(be);
  i2v_model_dir_free(md);
  i2v_safetensors_close(st);
}

/* ---- vision encoder ---- */

/* Reads a [B, channels, S, S] pixel tensor and checks it fits the encoder; returns B. */
static int read_pixels(const I2vSafetensors *st, const char *name, const I2vClipVision *m,
                       I2vTensor *px) {
  GError *err = NULL;
  g_assert_true(i2v_safetensors_read_f32(st, name, px, &err));
  g_assert_cmpint(px->ndim, ==, 4);
  g_assert_cmpint(px->shape[2], ==, i2v_clip_vision_image_size(m));
  g_assert_cmpint(px->shape[3], ==, i2v_clip_vision_image_size(m));
  return (int)px->shape[0];
}

/* One case: pixel values prefix+"pixel_values" through all layers, every golden compared. */
static void check_vision_case(Errors *e, const I2vSafetensors *st, I2vClipVision *m,
                              I2vStream *stream, const char *prefix) {
  char *px_name = g_strconcat(prefix, "pixel_values", NULL);
  I2vTensor px;
  int B = read_pixels(st, px_name, m, &px);
  int L = i2v_clip_vision_num_layers(m), C = i2v_clip_vision_hidden_size(m);
  int T = i2v_clip_vision_num_tokens(m), P = i2v_clip_vision_projection_dim(m);
  int64_t all = (int64_t)B * T * C;
  float *embeds = g_new(float, (int64_t)B *P), *last = g_new(float, all);
  float *early = g_new(float, all);
  HiddenTap tap;
  hidden_tap_install(&tap, stream, L + 1);
  GError *err = NULL;
  double t0 = cpu_seconds();
  gint64 w0 = g_get_monotonic_time();
  g_assert_true(i2v_clip_vision_forward(m, stream, px.data, B, embeds, L, last, &err));
  g_assert_no_error(err);
  g_test_message("vision %s: forward of %d x %d tokens, %d layers: %.2f s CPU, %.2f s wall", e->set,
                 B, T, L, cpu_seconds() - t0, (g_get_monotonic_time() - w0) / 1e6);
  i2v_stream_set_tap(stream, NULL, NULL);
  /* the embeddings alone: the encoder stops before the first layer */
  g_assert_true(i2v_clip_vision_forward(m, stream, px.data, B, NULL, 0, early, &err));

  for (int k = 0; k <= L; k++) {
    char kind[40];
    g_snprintf(kind, sizeof kind, "hidden_states.%d", k);
    char *name = g_strconcat(prefix, kind, NULL);
    if (i2v_safetensors_find(st, name) != NULL) check(e, st, prefix, kind, tap.states[k], all);
    if (k == 0) check(e, st, prefix, kind, early, all);
    g_free(name);
  }
  char *name = g_strconcat(prefix, "last_hidden_state", NULL);
  if (i2v_safetensors_find(st, name) != NULL) check(e, st, prefix, "last_hidden_state", last, all);
  g_free(name);
  check(e, st, prefix, "image_embeds", embeds, (int64_t)B * P);
  /* row l: the class token of the first image after layer l */
  name = g_strconcat(prefix, "hidden_states_cls", NULL);
  if (i2v_safetensors_find(st, name) != NULL) {
    float *rows = g_new(float, (int64_t)(L + 1) * C);
    for (int l = 0; l <= L; l++) memcpy(rows + (int64_t)l * C, tap.states[l], C * sizeof(float));
    check(e, st, prefix, "hidden_states_cls", rows, (int64_t)(L + 1) * C);
    g_free(rows);
  }
  g_free(name);

  hidden_tap_free(&tap);
  g_free(embeds);
  g_free(last);
  g_free(early);
  i2v_host_tensor_free(&px);
  g_free(px_name);
}

static void test_vision_set(gconstpointer data) {
  const char *set = data;
  I2vSafetensors *st = golden_open(set, "image_encoder.safetensors");
  char **cases = prefixes_of(st, "pixel_values");
  g_assert_cmpint(g_strv_length(cases), >, 0);
  I2vModelDir *md = golden_open_model(set, NULL);
  I2vBackend *be = i2v_cpu_backend_new(0);
  I2vStream *stream = i2v_stream_new(be, NULL);
  GError *err = NULL;
  double t0 = cpu_seconds();
  gint64 w0 = g_get_monotonic_time();
  I2vClipVision *m = i2v_clip_vision_load(md, be, &err);
  g_assert_no_error(err);
  g_test_message("vision %s: load %.2f s CPU, %.2f s wall", set, cpu_seconds() - t0,
                 (g_get_monotonic_time() - w0) / 1e6);
  Errors e = errors_new(set, "image_encoder");
  for (char **c = cases; *c != NULL; c++) check_vision_case(&e, st, m, stream, *c);
  errors_report(&e, "vision");
  g_strfreev(cases);
  i2v_clip_vision_free(m);
  i2v_stream_free(stream);
  i2v_backend_free(be);
  i2v_model_dir_free(md);
  i2v_safetensors_close(st);
}

/* ---- fp16 weights: the pipeline goldens computed from the fp16 variant ---- */

/* Reads a JSON int array into a new int64 array; *n its length. */
static int64_t *json_ids(JsonArray *a, int *n) {
  *n = (int)json_array_get_length(a);
  int64_t *ids = g_new(int64_t, *n);
  for (int i = 0; i < *n; i++) ids[i] = json_array_get_int_element(a, i);
  return ids;
}

/* prompt (and, with CFG, negative prompt) embeddings and the CLIP image embedding of one
 * pipeline case, from the weights of variant. */
static void check_pipeline_case(const char *set, JsonObject *pc, const char *variant) {
  const char *name = json_object_get_string_member(pc, "name");
  I2vSafetensors *st = golden_open(set, json_object_get_string_member(pc, "file"));
  char *group = g_strconcat("pipeline_", name, NULL);
  Errors e = errors_new(set, group);
  I2vModelDir *md = golden_open_model(set, variant);
  I2vBackend *be = i2v_cpu_backend_new(0);
  I2vStream *stream = i2v_stream_new(be, NULL);
  GError *err = NULL;

  I2vClipText *text = i2v_clip_text_load(md, be, &err);
  g_assert_no_error(err);
  int L = i2v_clip_text_num_layers(text), C = i2v_clip_text_hidden_size(text);
  const char *id_keys[] = {"prompt_ids", "negative_prompt_ids"};
  const char *golden_keys[] = {"prompt_embeds", "negative_prompt_embeds"};
  for (int i = 0; i < 2; i++) {
    JsonNode *node = json_object_get_member(pc, id_keys[i]);
    if (node == NULL || JSON_NODE_HOLDS_NULL(node)) continue; /* no CFG: no negative prompt */
    int len;
    int64_t *ids = json_ids(json_node_get_array(node), &len);
    float *out = g_new(float, (int64_t)len *C);
    g_assert_true(i2v_clip_text_forward(text, stream, ids, 1, len, L - 1, TRUE, out, &err));
    g_assert_no_error(err);
    check(&e, st, "", golden_keys[i], out, (int64_t)len * C);
    g_free(out);
    g_free(ids);
  }
  i2v_clip_text_free(text);

  I2vClipVision *vision = i2v_clip_vision_load(md, be, &err);
  g_assert_no_error(err);
  I2vTensor px;
  int B = read_pixels(st, "clip_pixel_values", vision, &px);
  int P = i2v_clip_vision_projection_dim(vision);
  float *embeds = g_new(float, (int64_t)B *P);
  g_assert_true(i2v_clip_vision_forward(vision, stream, px.data, B, embeds, 0, NULL, &err));
  g_assert_no_error(err);
  /* image_embeddings = [zeros; image_embeds] under CFG: compare the last B rows */
  I2vTensor ref;
  g_assert_true(i2v_safetensors_read_f32(st, "image_embeddings", &ref, &err));
  int64_t skip = i2v_tensor_numel(&ref) - (int64_t)B * P;
  g_assert_cmpint(skip, >=, 0);
  double atol = golden_atol(set, group, "image_embeddings");
  double diff = golden_max_abs_diff(embeds, (float *)ref.data + skip, (int64_t)B * P);
  g_test_message("%s image_embeddings (conditional half): max abs err %.3g (atol %.3g)", group,
                 diff, atol);
  g_assert_cmpfloat(diff, <=, atol);
  g_test_message("SUMMARY pipeline %s %s: image_embeddings %.2g", name, variant ? variant : "",
                 diff);
  errors_report(&e, group);
  i2v_host_tensor_free(&ref);
  i2v_host_tensor_free(&px);
  g_free(embeds);
  i2v_clip_vision_free(vision);
  i2v_stream_free(stream);
  i2v_backend_free(be);
  i2v_model_dir_free(md);
  i2v_safetensors_close(st);
  g_free(group);
}

/* Every pipeline case of the set computed from the fp16 weight variant. */
static void test_fp16_set(gconstpointer data) {
  const char *set = data;
  JsonNode *root = golden_json(set, "manifest.json");
  JsonArray *cases = json_object_get_array_member(
      json_object_get_object_member(json_node_get_object(root), "files"), "pipeline");
  int n = 0;
  for (guint i = 0; i < json_array_get_length(cases); i++) {
    JsonObject *pc = json_array_get_object_element(cases, i);
    const char *weights = json_object_get_string_member_with_default(pc, "weights", "");
    if (strstr(weights, ".fp16.") == NULL) continue;
    check_pipeline_case(set, pc, "fp16");
    n++;
  }
  if (n == 0) g_test_message("%s: no pipeline case uses fp16 weights", set);
  json_node_unref(root);
}

/* ---- errors on a doctored model directory ---- */

/* Rewrites component/model.safetensors of dir without tensor drop, and with tensor grow (if
 * not NULL) one element longer in its last dimension. */
static void edit_weights(const char *dir, const char *component, const char *drop,
                         const char *grow) {
  char *path = g_build_filename(dir, component, "model.safetensors", NULL);
  GError *err = NULL;
  I2vSafetensors *st = i2v_safetensors_open(path, &err);
  g_assert_no_error(err);
  I2vSafetensorsWriter *w = i2v_safetensors_writer_new();
  for (guint i = 0; i < i2v_safetensors_count(st); i++) {
    const I2vSafetensorsEntry *e = i2v_safetensors_entry(st, i);
    if (drop != NULL && strcmp(e->name, drop) == 0) continue;
    if (grow != NULL && strcmp(e->name, grow) == 0) {
      int64_t shape[I2V_MAX_DIMS];
      memcpy(shape, e->shape, sizeof shape);
      shape[e->ndim - 1]++;
      I2vTensor t = i2v_host_tensor(e->dtype, e->ndim, shape);
      i2v_safetensors_writer_add(w, e->name, e->dtype, e->ndim, shape, t.data);
      i2v_host_tensor_free(&t);
    } else {
      i2v_safetensors_writer_add(w, e->name, e->dtype, e->ndim, e->shape, e->data);
    }
  }
  i2v_safetensors_close(st);
  g_assert_true(i2v_safetensors_writer_save(w, path, &err));
  g_assert_no_error(err);
  i2v_safetensors_writer_free(w);
  g_free(path);
}

/* Loads both encoders from dir; exactly one must fail, with code (-1: any) and every needle in
 * its message. */
static void expect_load_error(const char *dir, int code, const char *needle1, const char *needle2) {
  GError *err = NULL;
  I2vModelDir *md = i2v_model_dir_open(dir, NULL, &err);
  g_assert_no_error(err);
  I2vBackend *be = i2v_cpu_backend_new(0);
  I2vStream *stream = i2v_stream_new(be, NULL);
  I2vClipText *text = i2v_clip_text_load(md, be, &err);
  I2vClipVision *vision = err == NULL ? i2v_clip_vision_load(md, be, &err) : NULL;
  g_assert_true(text == NULL || vision == NULL);
  golden_assert_error(&err, code, (const char *[]){needle1, needle2, NULL});
  i2v_clip_text_free(text);
  i2v_clip_vision_free(vision);
  i2v_stream_free(stream);
  i2v_backend_free(be);
  i2v_model_dir_free(md);
}

static void test_bad_model(gconstpointer data) {
  const char *set = data;
  char *dir = golden_model_copy(set);
  golden_config_set(dir, "text_encoder", "config.json", "hidden_act", "\"gelu_fancy\"");
  expect_load_error(dir, I2V_ERROR_CONFIG, "text_encoder/config.json", "gelu_fancy");
  golden_model_remove(dir);

  dir = golden_model_copy(set);
  golden_config_set(dir, "image_encoder", "config.json", "intermediate_size", NULL);
  expect_load_error(dir, I2V_ERROR_CONFIG, "image_encoder/config.json", "intermediate_size");
  golden_model_remove(dir);

  dir = golden_model_copy(set);
  edit_weights(dir, "text_encoder", "text_model.encoder.layers.0.mlp.fc2.bias", NULL);
  expect_load_error(dir, -1, "text_model.encoder.layers.0.mlp.fc2.bias", "text_encoder");
  golden_model_remove(dir);

  dir = golden_model_copy(set);
  edit_weights(dir, "image_encoder", NULL, "vision_model.post_layernorm.weight");
  expect_load_error(dir, -1, "vision_model.post_layernorm.weight", "image_encoder");
  golden_model_remove(dir);
}

/* image_embeds of a fixed pattern image from the model in dir. */
static float *embed_pattern(const char *dir, int *n) {
  GError *err = NULL;
  I2vModelDir *md = i2v_model_dir_open(dir, NULL, &err);
  g_assert_no_error(err);
  I2vBackend *be = i2v_cpu_backend_new(0);
  I2vStream *stream = i2v_stream_new(be, NULL);
  I2vClipVision *m = i2v_clip_vision_load(md, be, &err);
  g_assert_no_error(err);
  int S = i2v_clip_vision_image_size(m);
  float *px = g_new(float, 3 * S * S);
  for (int i = 0; i < 3 * S * S; i++) px[i] = sinf(0.37f * i);
  *n = i2v_clip_vision_projection_dim(m);
  float *out = g_new(float, *n);
  g_assert_true(i2v_clip_vision_forward(m, stream, px, 1, out, 0, NULL, &err));
  g_free(px);
  i2v_clip_vision_free(m);
  i2v_stream_free(stream);
  i2v_backend_free(be);
  i2v_model_dir_free(md);
  return out;
}

/* Without hidden_act the encoders use transformers' default, quick_gelu: the same result as the
 * model's own config when that says quick_gelu, a different one otherwise. */
static void test_default_act(gconstpointer data) {
  const char *set = data;
  char *dir = golden_model_copy(set);
  char *cfg_path = g_build_filename(dir, "image_encoder", "config.json", NULL);
  JsonParser *p = json_parser_new();
  GError *err = NULL;
  g_assert_true(json_parser_load_from_file(p, cfg_path, &err));
  gboolean was_quick =
      g_strcmp0(json_object_get_string_member_with_default(
                    json_node_get_object(json_parser_get_root(p)), "hidden_act", "quick_gelu"),
                "quick_gelu") == 0;
  g_object_unref(p);
  g_free(cfg_path);
  int n;
  float *own = embed_pattern(dir, &n);
  golden_config_set(dir, "image_encoder", "config.json", "hidden_act", NULL);
  float *dflt = embed_pattern(dir, &n);
  double diff = golden_max_abs_diff(own, dflt, n);
  g_test_message("config act %s quick_gelu: max |own - default| = %.3g",
                 was_quick ? "is" : "is not", diff);
  if (was_quick)
    g_assert_cmpfloat(diff, ==, 0);
  else
    g_assert_cmpfloat(diff, >, 0);
  g_free(own);
  g_free(dflt);
  golden_model_remove(dir);
}

/* Bad forward arguments are errors naming the value, not crashes. */
static void test_bad_input(gconstpointer data) {
  I2vModelDir *md = golden_open_model(data, NULL);
  I2vBackend *be = i2v_cpu_backend_new(0);
  I2vStream *stream = i2v_stream_new(be, NULL);
  GError *err = NULL;
  I2vClipText *text = i2v_clip_text_load(md, be, &err);
  g_assert_no_error(err);
  I2vClipVision *vision = i2v_clip_vision_load(md, be, &err);
  g_assert_no_error(err);
  int len = i2v_clip_text_max_positions(text), C = i2v_clip_text_hidden_size(text);
  int64_t *ids = g_new0(int64_t, len + 1);
  float *out = g_new(float, (int64_t)(len + 1) * C);

  ids[len - 1] = 1 << 30; /* beyond any vocabulary */
  g_assert_false(i2v_clip_text_forward(text, stream, ids, 1, len, 1, TRUE, out, &err));
  g_assert_error(err, I2V_ERROR, I2V_ERROR_INVALID);
  g_assert_nonnull(strstr(err->message, "1073741824"));
  g_clear_error(&err);
  ids[len - 1] = 0;
  g_assert_false(i2v_clip_text_forward(text, stream, ids, 1, len + 1, 1, TRUE, out, &err));
  g_assert_error(err, I2V_ERROR, I2V_ERROR_INVALID);
  g_clear_error(&err);
  int L = i2v_clip_text_num_layers(text);
  g_assert_false(i2v_clip_text_forward(text, stream, ids, 1, len, L + 1, TRUE, out, &err));
  g_assert_error(err, I2V_ERROR, I2V_ERROR_INVALID);
  g_clear_error(&err);
  /* the encoder still works after refused calls */
  g_assert_true(i2v_clip_text_forward(text, stream, ids, 1, len, L, TRUE, out, &err));

  int S = i2v_clip_vision_image_size(vision);
  float *px = g_new0(float, 3 * S * S), *hidden = g_new(float, 1);
  g_assert_false(i2v_clip_vision_forward(vision, stream, px, 1, NULL,
                                         i2v_clip_vision_num_layers(vision) + 1, hidden, &err));
  g_assert_error(err, I2V_ERROR, I2V_ERROR_INVALID);
  g_clear_error(&err);

  g_free(px);
  g_free(hidden);
  g_free(ids);
  g_free(out);
  i2v_clip_text_free(text);
  i2v_clip_vision_free(vision);
  i2v_stream_free(stream);
  i2v_backend_free(be);
  i2v_model_dir_free(md);
}

/* ---- registration ---- */

/* Adds /clip/<what>/<set name> for every selected set that has golden file. */
static void add_per_set(const char *what, const char *file, GTestDataFunc fn, GPtrArray *keep,
                        gboolean need_files) {
  char **sets = golden_sets_with(file);
  for (char **s = sets; *s != NULL; s++) {
    guint64 seed;
    if (!golden_set_selected(*s) || (need_files && golden_formula_seed(*s, &seed))) continue;
    char *base = g_path_get_basename(*s);
    char *path = g_strdup_printf("/clip/%s/%s", what, base);
    char *set = g_strdup(*s);
    g_ptr_array_add(keep, set);
    g_test_add_data_func(path, set, fn);
    g_free(path);
    g_free(base);
  }
  g_strfreev(sets);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  GPtrArray *keep = g_ptr_array_new_with_free_func(g_free);
  add_per_set("text", "text_encoder.safetensors", test_text_set, keep, FALSE);
  add_per_set("vision", "image_encoder.safetensors", test_vision_set, keep, FALSE);
  add_per_set("fp16", "manifest.json", test_fp16_set, keep, TRUE);
  add_per_set("default-act", "image_encoder.safetensors", test_default_act, keep, TRUE);
  add_per_set("bad-input", "image_encoder.safetensors", test_bad_input, keep, TRUE);
  add_per_set("bad-model", "text_encoder.safetensors", test_bad_model, keep, TRUE);
  int rc = g_test_run();
  g_ptr_array_unref(keep);
  return rc;
}
