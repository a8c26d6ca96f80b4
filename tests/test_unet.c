/* UNet tests: every fixture set with golden/unet.safetensors, every case in it (found from its
 * "<case>.sample" tensors): the output and every debug intermediate the golden file records,
 * the parameter count from the manifest, and config / weight errors that name the culprit.
 * Sets without weight files (README-realcfg) use the formula weights of their manifest's seed.
 * A UNet is loaded once per set and shared by that set's tests (the real-size one is 5.7 GB).
 * I2V_TEST_WEIGHTS=files|formula runs the sets with weight files or the formula ones
 * (golden_set_selected; meson: unet-files, and unet-formula in the slow suite). */
#include <string.h>
#include <time.h>
#include <glib/gstdio.h>
#include <unistd.h>

#include <i2v/error.h>
#include "cpu_backend.h"
#include "stream.h"
#include "golden.h"
#include "unet3d.h"

#define GROUP "unet"

/* ---- the shared per-set model ---- */

static I2vBackend *backend;
static I2vStream *stream; /* on backend: the tests' scratch tensors and taps */
static char *loaded_set;
static I2vUnet *loaded_unet;

/* The UNet of set, loaded on first use (the previous set's is freed). */
static I2vUnet *unet_of(const char *set) {
  if (loaded_set != NULL && strcmp(loaded_set, set) == 0) return loaded_unet;
  i2v_unet_free(loaded_unet);
  g_free(loaded_set);
  I2vModelDir *md = golden_open_model(set, NULL);
  GError *err = NULL;
  g_test_timer_start();
  loaded_unet = i2v_unet_load(md, backend, &err);
  g_assert_no_error(err);
  g_test_message("%s: UNet loaded in %.2f s", set, g_test_timer_elapsed());
  loaded_set = g_strdup(set);
  i2v_model_dir_free(md);
  return loaded_unet;
}

/* ---- debug taps against <case>.dbg.<module> ---- */

typedef struct {
  const char *set, *case_name;
  const I2vSafetensors *st;
  int checked, failed;
} TapCheck;

/* Puts tap tensor t (engine layout) into the golden's layout: feature maps [N,h,w,C] →
 * [N,C,h,w]; the temporal encoder's [B,F,h·w,C] → [B·h·w,F,C]; the rest is already equal. */
static float *to_golden_layout(const char *name, const I2vTensor *t, float *x) {
  const int64_t *s = t->shape;
  if (strcmp(name, "image_latents_temporal_encoder") == 0) {
    int64_t B = s[0], F = s[1], P = s[2], C = s[3];
    float *y = g_new(float, B *F *P *C);
    for (int64_t b = 0; b < B; b++)
      for (int64_t f = 0; f < F; f++)
        for (int64_t p = 0; p < P; p++)
          memcpy(y + ((b * P + p) * F + f) * C, x + ((b * F + f) * P + p) * C, sizeof(float) * C);
    g_free(x);
    return y;
  }
  if (t->ndim == 4) {
    float *y = golden_nhwc_to_nchw(x, s[0], s[1], s[2], s[3]);
    g_free(x);
    return y;
  }
  return x;
}

static void check_tap(I2vStream *stream, const char *name, const I2vTensor *t, void *user) {
  TapCheck *tc = user;
  char *gname = g_strdup_printf("%s.dbg.%s", tc->case_name, name);
  if (i2v_safetensors_find(tc->st, gname) != NULL) {
    int64_t n = i2v_tensor_numel(t);
    float *x = g_new(float, n);
    GError *err = NULL;
    if (!i2v_tensor_download_f32(stream, t, x, &err)) {
      g_test_message("tap %s: %s", name, err->message);
      g_error_free(err);
      tc->failed++;
    } else {
      x = to_golden_layout(name, t, x);
      if (!golden_check(tc->st, gname, x, n, golden_atol(tc->set, GROUP, gname), gname))
        tc->failed++;
    }
    tc->checked++;
    g_free(x);
  }
  g_free(gname);
}

/* Number of "<case>.dbg.*" tensors in st. */
static int count_debug(const I2vSafetensors *st, const char *case_name) {
  char *prefix = g_strdup_printf("%s.dbg.", case_name);
  int n = 0;
  for (guint i = 0; i < i2v_safetensors_count(st); i++)
    n += g_str_has_prefix(i2v_safetensors_entry(st, i)->name, prefix);
  g_free(prefix);
  return n;
}

/* ---- inputs ---- */

static I2vTensor read_host(const I2vSafetensors *st, const char *c, const char *what) {
  char *name = g_strdup_printf("%s.%s", c, what);
  I2vTensor t;
  GError *err = NULL;
  g_assert_true(i2v_safetensors_read_f32(st, name, &t, &err));
  g_assert_no_error(err);
  g_free(name);
  return t;
}

static const int64_t *read_ids(const I2vSafetensors *st, const char *c, const char *what,
                               int64_t *n) {
  char *name = g_strdup_printf("%s.%s", c, what);
  const I2vSafetensorsEntry *e = i2v_safetensors_find(st, name);
  g_assert_nonnull(e);
  g_assert_cmpint(e->dtype, ==, I2V_DTYPE_I64);
  *n = (int64_t)(e->nbytes / sizeof(int64_t));
  g_free(name);
  return e->data;
}

/* A copy of host float tensor h with its shape, in the stream's arena. */
static I2vTensor upload(const I2vTensor *h) {
  GError *err = NULL;
  I2vTensor t = i2v_scratch_tensor(stream, h->ndim, h->shape);
  g_assert_true(i2v_tensor_upload_f32(stream, &t, h->data, &err));
  g_assert_no_error(err);
  return t;
}

/* A [B,C,F,h,w] host video as a backend [B,F,h,w,C] tensor. */
static I2vTensor upload_video(const I2vTensor *h) {
  I2vTensor t;
  GError *err = NULL;
  const int64_t *s = h->shape;
  g_assert_cmpint(h->ndim, ==, 5);
  g_assert_true(i2v_unet_upload_ncfhw(stream, h->data, s[0], s[1], s[2], s[3], s[4], &t, &err));
  g_assert_no_error(err);
  return t;
}

/* Runs case c of set: prepare + forward with the taps checking every debug tensor, then the
 * output. Returns TRUE when everything is within tolerance. */
static gboolean run_case(const char *set, const I2vSafetensors *st, I2vUnet *u, const char *c) {
  I2vTensor sample = read_host(st, c, "sample"), latents = read_host(st, c, "image_latents");
  I2vTensor text = read_host(st, c, "encoder_hidden_states");
  I2vTensor image = read_host(st, c, "image_embeddings");
  int64_t n_fps, n_t;
  const int64_t *fps = read_ids(st, c, "fps", &n_fps), *t = read_ids(st, c, "timestep", &n_t);
  g_assert_cmpint(n_fps, ==, sample.shape[0]);
  g_assert_cmpint(n_t, ==, 1);

  size_t mark = i2v_scratch_mark(stream);
  I2vTensor d_sample = upload_video(&sample), d_latents = upload_video(&latents);
  I2vTensor d_text = upload(&text), d_image = upload(&image), d_out;
  int64_t os[5] = {sample.shape[0], sample.shape[2], sample.shape[3], sample.shape[4],
                   i2v_unet_out_channels(u)};
  GError *err = NULL;
  d_out = i2v_scratch_tensor(stream, 5, os);

  TapCheck tc = {.set = set, .case_name = c, .st = st};
  i2v_stream_set_tap(stream, check_tap, &tc);
  g_test_timer_start();
  I2vUnetCond *cond = i2v_unet_prepare(u, stream, &d_text, &d_image, &d_latents, fps, &err);
  g_assert_no_error(err);
  double t_prep = g_test_timer_elapsed();
  g_test_timer_start();
  clock_t cpu0 = clock();
  gboolean ok = i2v_unet_forward(u, stream, cond, &d_sample, t[0], &d_out, &err);
  g_assert_no_error(err);
  g_assert_true(ok);
  double t_fwd = g_test_timer_elapsed(), cpu_fwd = (double)(clock() - cpu0) / CLOCKS_PER_SEC;
  i2v_stream_set_tap(stream, NULL, NULL);
  int expected = count_debug(st, c);
  g_test_message("%s: prepare %.3f s, forward %.3f s wall / %.3f s CPU (with %d checked taps)", c,
                 t_prep, t_fwd, cpu_fwd, tc.checked);
  if (tc.checked != expected)
    g_test_message("%s: %d debug tensors in the golden file, %d tapped", c, expected, tc.checked);

  int64_t n = i2v_tensor_numel(&sample);
  float *out = g_new(float, n);
  g_assert_true(i2v_unet_download_ncfhw(stream, &d_out, out, &err));
  g_assert_no_error(err);
  char *oname = g_strdup_printf("%s.out", c);
  ok = golden_check(st, oname, out, n, golden_atol(set, GROUP, oname), oname) && tc.failed == 0 &&
       tc.checked == expected;

  g_free(oname);
  g_free(out);
  i2v_unet_cond_free(cond);
  i2v_scratch_release(stream, mark);
  I2vTensor *host[] = {&sample, &latents, &text, &image};
  for (guint i = 0; i < G_N_ELEMENTS(host); i++) i2v_host_tensor_free(host[i]);
  return ok;
}

/* /unet/<set>/golden: every case of the set's unet.safetensors. */
static void test_golden(gconstpointer data) {
  const char *set = data;
  I2vUnet *u = unet_of(set);
  I2vSafetensors *st = golden_open(set, "unet.safetensors");
  int cases = 0, failed = 0;
  for (guint i = 0; i < i2v_safetensors_count(st); i++) {
    const char *name = i2v_safetensors_entry(st, i)->name;
    if (!g_str_has_suffix(name, ".sample")) continue;
    char *c = g_strndup(name, strlen(name) - strlen(".sample"));
    cases++;
    failed += !run_case(set, st, u, c);
    g_free(c);
  }
  i2v_safetensors_close(st);
  g_assert_cmpint(cases, >, 0);
  g_assert_cmpint(failed, ==, 0);
}

/* /unet/<set>/params: parameters loaded = manifest model.components.unet.params. */
static void test_params(gconstpointer data) {
  const char *set = data;
  JsonNode *root = golden_json(set, "manifest.json");
  JsonObject *m = json_node_get_object(root);
  JsonObject *comp = json_object_get_object_member(
      json_object_get_object_member(json_object_get_object_member(m, "model"), "components"),
      "unet");
  gint64 expected = json_object_get_int_member(comp, "params");
  json_node_unref(root);
  g_assert_cmpint(i2v_unet_num_params(unet_of(set)), ==, expected);
}

/* ---- batching and odd sizes ---- */

/* The first of sets with UNet weight files (small models); NULL and a skip if none. */
static const char *set_with_files(char **sets) {
  for (int i = 0; sets[i] != NULL; i++) {
    guint64 seed;
    if (!golden_formula_seed(sets[i], &seed)) return sets[i];
  }
  g_test_skip("no fixture set with UNet weight files");
  return NULL;
}

/* Host inputs of one call: b videos of f frames of h×w latents. */
typedef struct {
  int64_t b, f, h, w, c, t_len, d;
  float *sample, *latents, *text, *image;
  int64_t *fps;
} Inputs;

/* out [b, c, f, h, w] = unet(in rows first..first+count-1) at timestep t. */
static float *run_rows(I2vUnet *u, const Inputs *in, int64_t first, int64_t count, int64_t t) {
  int64_t video = in->c * in->f * in->h * in->w;
  I2vTensor hs = {.ndim = 5, .shape = {count, in->c, in->f, in->h, in->w}};
  hs.data = in->sample + first * video;
  I2vTensor hl = hs;
  hl.data = in->latents + first * video;
  I2vTensor ht = {.ndim = 3, .shape = {count, in->t_len, in->d}};
  ht.data = in->text + first * in->t_len * in->d;
  I2vTensor hi = {.ndim = 3, .shape = {count, 1, in->d}};
  hi.data = in->image + first * in->d;
  size_t mark = i2v_scratch_mark(stream);
  I2vTensor s = upload_video(&hs), l = upload_video(&hl), tx = upload(&ht), im = upload(&hi);
  int64_t os[5] = {count, in->f, in->h, in->w, i2v_unet_out_channels(u)};
  GError *err = NULL;
  I2vTensor o = i2v_scratch_tensor(stream, 5, os);
  I2vUnetCond *cond = i2v_unet_prepare(u, stream, &tx, &im, &l, in->fps + first, &err);
  g_assert_no_error(err);
  g_assert_true(i2v_unet_forward(u, stream, cond, &s, t, &o, &err));
  g_assert_no_error(err);
  float *out = g_new(float, i2v_tensor_numel(&o));
  g_assert_true(i2v_unet_download_ncfhw(stream, &o, out, &err));
  g_assert_no_error(err);
  i2v_unet_cond_free(cond);
  i2v_scratch_release(stream, mark);
  return out;
}

static float *random_values(GRand *r, int64_t n) {
  float *x = g_new(float, n);
  for (int64_t i = 0; i < n; i++) x[i] = (float)g_rand_double_range(r, -1, 1);
  return x;
}

/* Two different videos at an odd latent size (every level odd, the up-samplers resize to the
 * skips' sizes) in one batch give what each gives alone: catches mixing of batch rows in the
 * per-video GroupNorms, temporal attention, context K/V and time embedding. */
static void test_batch_odd_size(void) {
  char **sets = golden_sets_with("unet.safetensors");
  const char *set = set_with_files(sets);
  if (set == NULL) {
    g_strfreev(sets);
    return;
  }
  I2vUnet *u = unet_of(set);
  GRand *r = g_rand_new_with_seed(7);
  Inputs in = {.b = 2,
               .f = 3,
               .h = 7,
               .w = 9,
               .c = i2v_unet_in_channels(u),
               .t_len = 77,
               .d = i2v_unet_cross_attention_dim(u)};
  int64_t video = in.c * in.f * in.h * in.w;
  in.sample = random_values(r, in.b * video);
  in.latents = random_values(r, in.b * video);
  in.text = random_values(r, in.b * in.t_len * in.d);
  in.image = random_values(r, in.b * in.d);
  int64_t fps[2] = {8, 16};
  in.fps = fps;
  float *both = run_rows(u, &in, 0, 2, 500);
  for (int64_t b = 0; b < in.b; b++) {
    float *alone = run_rows(u, &in, b, 1, 500);
    double diff = golden_max_abs_diff(alone, both + b * video, video);
    g_test_message("video %" G_GINT64_FORMAT ": batched vs alone max abs diff %.3g", b, diff);
    g_assert_cmpfloat(diff, <=, 1e-5);
    g_free(alone);
  }
  /* the two videos differ, so a batch that repeated video 0 would fail above */
  g_assert_cmpfloat(golden_max_abs_diff(both, both + video, video), >, 1e-3);
  g_free(both);
  g_free(in.sample);
  g_free(in.latents);
  g_free(in.text);
  g_free(in.image);
  g_rand_free(r);
  g_strfreev(sets);
}

/* ---- errors ---- */

/* A copy of the tiny set's model dir in a temp dir whose unet/config.json is edited by edit and
 * whose unet weights lack tensor drop (NULL: symlink the original file). Returns the dir. */
static char *edited_model(const char *set, void (*edit)(JsonObject *cfg), const char *drop) {
  GError *err = NULL;
  char *tmp = g_dir_make_tmp("unet-test-XXXXXX", &err);
  g_assert_no_error(err);
  char *src = g_build_filename(set, "model", NULL);
  GDir *dir = g_dir_open(src, 0, &err);
  g_assert_no_error(err);
  for (const char *n; (n = g_dir_read_name(dir)) != NULL;) {
    if (strcmp(n, "unet") == 0) continue;
    char *from = g_build_filename(src, n, NULL), *to = g_build_filename(tmp, n, NULL);
    g_assert_cmpint(symlink(from, to), ==, 0);
    g_free(from);
    g_free(to);
  }
  g_dir_close(dir);
  char *unet = g_build_filename(tmp, "unet", NULL);
  g_assert_cmpint(g_mkdir(unet, 0700), ==, 0);

  char *cfg_path = g_build_filename(src, "unet", "config.json", NULL);
  JsonParser *p = json_parser_new();
  g_assert_true(json_parser_load_from_file(p, cfg_path, &err));
  JsonNode *root = json_node_copy(json_parser_get_root(p));
  g_object_unref(p);
  if (edit != NULL) edit(json_node_get_object(root));
  char *json = json_to_string(root, TRUE), *out_cfg = g_build_filename(unet, "config.json", NULL);
  g_assert_true(g_file_set_contents(out_cfg, json, -1, &err));

  char *weights = g_build_filename(src, "unet", "diffusion_pytorch_model.safetensors", NULL);
  char *out_w = g_build_filename(unet, "diffusion_pytorch_model.safetensors", NULL);
  if (drop == NULL) {
    g_assert_cmpint(symlink(weights, out_w), ==, 0);
  } else {
    I2vSafetensors *st = i2v_safetensors_open(weights, &err);
    g_assert_no_error(err);
    I2vSafetensorsWriter *w = i2v_safetensors_writer_new();
    for (guint i = 0; i < i2v_safetensors_count(st); i++) {
      const I2vSafetensorsEntry *e = i2v_safetensors_entry(st, i);
      if (strcmp(e->name, drop) != 0)
        i2v_safetensors_writer_add(w, e->name, e->dtype, e->ndim, e->shape, e->data);
    }
    g_assert_true(i2v_safetensors_writer_save(w, out_w, &err));
    i2v_safetensors_writer_free(w);
    i2v_safetensors_close(st);
  }
  g_free(weights);
  g_free(out_w);
  g_free(json);
  g_free(out_cfg);
  g_free(cfg_path);
  json_node_unref(root);
  g_free(unet);
  g_free(src);
  return tmp;
}

static void remove_tree(const char *path) {
  if (g_file_test(path, G_FILE_TEST_IS_DIR) && !g_file_test(path, G_FILE_TEST_IS_SYMLINK)) {
    GDir *dir = g_dir_open(path, 0, NULL);
    for (const char *n; dir != NULL && (n = g_dir_read_name(dir)) != NULL;) {
      char *child = g_build_filename(path, n, NULL);
      remove_tree(child);
      g_free(child);
    }
    if (dir != NULL) g_dir_close(dir);
    g_rmdir(path);
  } else {
    g_unlink(path);
  }
}

/* Loading the edited model fails with code in I2V_ERROR and a message holding every needle. */
static void expect_load_error(void (*edit)(JsonObject *cfg), const char *drop, int code,
                              const char *const *needles) {
  char **sets = golden_sets_with("unet.safetensors");
  const char *set = set_with_files(sets);
  if (set == NULL) {
    g_strfreev(sets);
    return;
  }
  char *dir = edited_model(set, edit, drop);
  GError *err = NULL;
  I2vModelDir *md = i2v_model_dir_open(dir, NULL, &err);
  g_assert_no_error(err);
  I2vUnet *u = i2v_unet_load(md, backend, &err);
  g_assert_null(u);
  golden_assert_error(&err, code, needles);
  i2v_model_dir_free(md);
  remove_tree(dir);
  g_free(dir);
  g_strfreev(sets);
}

static void edit_block_type(JsonObject *cfg) {
  JsonArray *a = json_object_get_array_member(cfg, "down_block_types");
  JsonArray *b = json_array_new();
  for (guint i = 0; i < json_array_get_length(a); i++)
    json_array_add_string_element(b, i == 0 ? "FancyDownBlock3D"
                                            : json_array_get_string_element(a, i));
  json_object_set_array_member(cfg, "down_block_types", b);
}

static void test_unknown_block_type(void) {
  const char *needles[] = {"unet/config.json", "down_block_types", "FancyDownBlock3D", NULL};
  expect_load_error(edit_block_type, NULL, I2V_ERROR_CONFIG, needles);
}

static void edit_head_dim(JsonObject *cfg) {
  /* 3 divides no channel count of a power-of-two width */
  json_object_set_int_member(cfg, "attention_head_dim", 3);
}

static void test_heads_not_dividing(void) {
  const char *needles[] = {"unet/config.json", "attention_head_dim", "3 does not divide", NULL};
  expect_load_error(edit_head_dim, NULL, I2V_ERROR_CONFIG, needles);
}

static void edit_drop_groups(JsonObject *cfg) {
  json_object_remove_member(cfg, "norm_num_groups");
}

static void test_missing_key(void) {
  const char *needles[] = {"unet/config.json", "norm_num_groups", NULL};
  expect_load_error(edit_drop_groups, NULL, I2V_ERROR_CONFIG, needles);
}

static void test_missing_tensor(void) {
  const char *name = "mid_block.temp_convs.0.conv4.3.weight";
  const char *needles[] = {name, NULL};
  expect_load_error(NULL, name, I2V_ERROR_MISSING, needles);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  backend = i2v_cpu_backend_new(0);
  stream = i2v_stream_new(backend, NULL);
  char **sets = golden_sets_with("unet.safetensors");
  /* per set: golden then params, so each set's UNet is loaded once */
  for (int i = 0; sets[i] != NULL; i++) {
    if (!golden_set_selected(sets[i])) continue;
    char *base = g_path_get_basename(sets[i]);
    char *p = g_strdup_printf("/unet/%s/golden", base);
    g_test_add_data_func(p, sets[i], test_golden);
    g_free(p);
    p = g_strdup_printf("/unet/%s/params", base);
    g_test_add_data_func(p, sets[i], test_params);
    g_free(p);
    g_free(base);
  }
  g_test_add_func("/unet/batch-odd-size", test_batch_odd_size);
  g_test_add_func("/unet/errors/unknown-block-type", test_unknown_block_type);
  g_test_add_func("/unet/errors/heads-not-dividing", test_heads_not_dividing);
  g_test_add_func("/unet/errors/missing-config-key", test_missing_key);
  g_test_add_func("/unet/errors/missing-tensor", test_missing_tensor);
  int rc = g_test_run();
  i2v_unet_free(loaded_unet);
  g_free(loaded_set);
  g_strfreev(sets);
  i2v_stream_free(stream);
  i2v_backend_free(backend);
  return rc;
}
