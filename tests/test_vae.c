/* The VAE against every fixture set: the encode/decode cases of vae.safetensors (with the
 * intermediates the set records, through a debug tap), the VAE branch of image_preprocess, and
 * the VAE parts of each pipeline run (posterior from vae_input, video from latents_final), fp16
 * weights included. Plus the errors a bad config, a missing tensor or a bad size must give. */
#include <glib/gstdio.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

#include <i2v/error.h>
#include "cpu_backend.h"
#include "stream.h"
#include "golden.h"
#include "vae.h"

/* ---- loading a set's VAE once per (set, variant) ---- */

typedef struct {
  I2vModelDir *md;
  I2vBackend *be;
  I2vStream *stream;
  I2vVae *vae;
} Loaded;

static GHashTable *loaded_cache; /* "set|variant" → Loaded* */

static JsonObject *manifest_files(JsonNode *manifest) {
  return json_object_get_object_member(json_node_get_object(manifest), "files");
}

static Loaded *load_vae(const char *set, const char *variant) {
  if (loaded_cache == NULL)
    loaded_cache = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  char *key = g_strdup_printf("%s|%s", set, variant ? variant : "");
  Loaded *l = g_hash_table_lookup(loaded_cache, key);
  if (l != NULL) {
    g_free(key);
    return l;
  }
  l = g_new0(Loaded, 1);
  GError *err = NULL;
  l->md = golden_open_model(set, variant);
  l->be = i2v_cpu_backend_new(0);
  l->stream = i2v_stream_new(l->be, NULL);
  gint64 t0 = g_get_monotonic_time();
  l->vae = i2v_vae_load(l->md, l->be, &err);
  g_assert_no_error(err);
  g_test_message("%s: VAE loaded in %.2f s", set, (g_get_monotonic_time() - t0) / 1e6);
  g_hash_table_insert(loaded_cache, key, l);
  return l;
}

static void free_loaded(gpointer p) {
  Loaded *l = p;
  i2v_vae_free(l->vae);
  i2v_stream_free(l->stream);
  i2v_backend_free(l->be);
  i2v_model_dir_free(l->md);
  g_free(l);
}

/* ---- comparisons ---- */

static I2vTensor read_golden(const I2vSafetensors *st, const char *name) {
  I2vTensor t;
  GError *err = NULL;
  g_assert_true(i2v_safetensors_read_f32(st, name, &t, &err));
  g_assert_no_error(err);
  return t;
}

static void check(const char *set, const char *group, const I2vSafetensors *st, const char *name,
                  const float *got, int64_t n) {
  double atol = golden_atol(set, group, name);
  g_assert_cmpfloat(atol, >, 0);
  g_assert_true(golden_check(st, name, got, n, atol, group));
}

/* Encodes x [1,3,H,W] and checks the moments and the posterior against "<prefix>moments" etc. */
static void check_encode(I2vVae *vae, I2vStream *stream, const char *set, const char *group,
                         const I2vSafetensors *st, const char *x_name, const char *prefix,
                         const char *moments_name) {
  I2vTensor x = read_golden(st, x_name);
  int height = (int)x.shape[2], width = (int)x.shape[3], s = i2v_vae_downscale(vae);
  int latent = i2v_vae_latent_channels(vae);
  int64_t hw = (int64_t)(height / s) * (width / s);
  float *moments = g_new(float, 2 * latent * hw);
  float *post[3] = {g_new(float, latent *hw), g_new(float, latent *hw), g_new(float, latent *hw)};
  GError *err = NULL;
  gint64 t0 = g_get_monotonic_time();
  g_assert_true(i2v_vae_encode(vae, stream, x.data, height, width, moments, &err));
  g_assert_no_error(err);
  g_test_message("%s: encode %dx%d in %.3f s", x_name, height, width,
                 (g_get_monotonic_time() - t0) / 1e6);
  if (moments_name != NULL) check(set, group, st, moments_name, moments, 2 * latent * hw);
  i2v_vae_posterior(moments, latent, hw, post[0], post[1], post[2]);
  static const char *const parts[] = {"mean", "logvar", "std"};
  for (int i = 0; i < 3; i++) {
    char *name = g_strconcat(prefix, parts[i], NULL);
    check(set, group, st, name, post[i], latent * hw);
    g_free(name);
    g_free(post[i]);
  }
  g_free(moments);
  i2v_host_tensor_free(&x);
}

/* ---- vae.safetensors, with the recorded intermediates through the tap ---- */

typedef struct {
  const char *set;
  const char *case_name;
  const I2vSafetensors *st;
  int compared;
} TapCheck;

static void compare_tap(I2vStream *stream, const char *name, const I2vTensor *t, void *user) {
  TapCheck *tc = user;
  char *golden = g_strdup_printf("%s.dbg.%s", tc->case_name, name);
  if (i2v_safetensors_find(tc->st, golden) != NULL) {
    g_assert_cmpint(t->ndim, ==, 4);
    int64_t n = i2v_tensor_numel(t);
    float *nhwc = g_new(float, n);
    GError *err = NULL;
    g_assert_true(i2v_tensor_download_f32(stream, t, nhwc, &err));
    float *nchw = golden_nhwc_to_nchw(nhwc, t->shape[0], t->shape[1], t->shape[2], t->shape[3]);
    check(tc->set, "vae", tc->st, golden, nchw, n);
    tc->compared++;
    g_free(nhwc);
    g_free(nchw);
  }
  g_free(golden);
}

static void run_vae_case(const char *set, Loaded *l, const I2vSafetensors *st, JsonObject *c) {
  const char *name = json_object_get_string_member(c, "name");
  const char *kind = json_object_get_string_member(c, "kind");
  guint n_debug = json_object_has_member(c, "debug")
                      ? json_array_get_length(json_object_get_array_member(c, "debug"))
                      : 0;
  TapCheck tc = {set, name, st, 0};
  i2v_stream_set_tap(l->stream, compare_tap, &tc);
  char *prefix = g_strconcat(name, ".", NULL);
  double flops = i2v_stream_flops(l->stream);
  if (strcmp(kind, "encode") == 0) {
    char *x = g_strconcat(prefix, "x", NULL), *mo = g_strconcat(prefix, "moments", NULL);
    check_encode(l->vae, l->stream, set, "vae", st, x, prefix, mo);
    g_free(x);
    g_free(mo);
  } else {
    g_assert_cmpstr(kind, ==, "decode");
    char *lat_name = g_strconcat(prefix, "latents", NULL), *z_name = g_strconcat(prefix, "z", NULL);
    char *out_name = g_strconcat(prefix, "decoded", NULL);
    I2vTensor latents = read_golden(st, lat_name);
    int64_t nz = i2v_tensor_numel(&latents);
    float *z = g_new(float, nz);
    i2v_vae_unscale_latents(l->vae, latents.data, nz, z);
    g_assert_true(golden_check(st, z_name, z, nz, 0, "vae z (exact)"));
    int n = (int)latents.shape[0], h = (int)latents.shape[2], w = (int)latents.shape[3];
    int s = i2v_vae_downscale(l->vae);
    int64_t n_out = (int64_t)n * 3 * h * s * w * s;
    float *out = g_new(float, n_out);
    GError *err = NULL;
    gint64 t0 = g_get_monotonic_time();
    g_assert_true(i2v_vae_decode(l->vae, l->stream, z, n, h, w, out, &err));
    g_assert_no_error(err);
    g_test_message("%s: decode %dx%dx%d in %.3f s", name, n, h, w,
                   (g_get_monotonic_time() - t0) / 1e6);
    check(set, "vae", st, out_name, out, n_out);
    i2v_host_tensor_free(&latents);
    g_free(z);
    g_free(out);
    g_free(lat_name);
    g_free(z_name);
    g_free(out_name);
  }
  i2v_stream_set_tap(l->stream, NULL, NULL);
  g_test_message("%s: %.2f GFLOP", name, (i2v_stream_flops(l->stream) - flops) / 1e9);
  /* every intermediate the set recorded must have been seen */
  g_assert_cmpint(tc.compared, ==, n_debug);
  g_free(prefix);
}

static void test_vae_cases(void) {
  char **sets = golden_sets_with("vae.safetensors");
  g_assert_nonnull(sets[0]);
  for (char **set = sets; *set != NULL; set++) {
    Loaded *l = load_vae(*set, NULL);
    I2vSafetensors *st = golden_open(*set, "vae.safetensors");
    JsonNode *man = golden_json(*set, "manifest.json");
    JsonArray *cases = json_object_get_array_member(
        json_object_get_object_member(manifest_files(man), "vae"), "cases");
    g_assert_cmpuint(json_array_get_length(cases), >, 0);
    for (guint i = 0; i < json_array_get_length(cases); i++)
      run_vae_case(*set, l, st, json_array_get_object_element(cases, i));
    json_node_unref(man);
    i2v_safetensors_close(st);
  }
  g_strfreev(sets);
}

/* ---- image_preprocess: the VAE branch for every size ---- */

static void test_image_preprocess(void) {
  char **sets = golden_sets_with("image_preprocess.safetensors");
  for (char **set = sets; *set != NULL; set++) {
    Loaded *l = load_vae(*set, NULL);
    I2vSafetensors *st = golden_open(*set, "image_preprocess.safetensors");
    JsonNode *man = golden_json(*set, "manifest.json");
    JsonArray *sizes = json_object_get_array_member(
        json_object_get_object_member(manifest_files(man), "image_preprocess"), "sizes");
    g_assert_cmpuint(json_array_get_length(sizes), >, 0);
    for (guint i = 0; i < json_array_get_length(sizes); i++) {
      const char *key =
          json_object_get_string_member(json_array_get_object_element(sizes, i), "key");
      char *prefix = g_strdup_printf("%s.vae.", key);
      char *x = g_strconcat(prefix, "input", NULL), *mo = g_strconcat(prefix, "moments", NULL);
      check_encode(l->vae, l->stream, *set, "image_preprocess", st, x, prefix, mo);
      g_free(x);
      g_free(mo);
      g_free(prefix);
    }
    json_node_unref(man);
    i2v_safetensors_close(st);
  }
  g_strfreev(sets);
}

/* ---- pipeline runs: posterior of vae_input, frame-by-frame decode of latents_final ---- */

static void test_pipeline_vae(void) {
  char **sets = golden_sets_with("manifest.json");
  int runs = 0;
  for (char **set = sets; *set != NULL; set++) {
    JsonNode *man = golden_json(*set, "manifest.json");
    JsonObject *files = manifest_files(man);
    JsonArray *pipes = json_object_has_member(files, "pipeline")
                           ? json_object_get_array_member(files, "pipeline")
                           : NULL;
    for (guint i = 0; pipes != NULL && i < json_array_get_length(pipes); i++) {
      JsonObject *p = json_array_get_object_element(pipes, i);
      const char *weights = json_object_get_string_member(p, "weights");
      Loaded *l = load_vae(*set, strstr(weights, "fp16") != NULL ? "fp16" : NULL);
      I2vSafetensors *st = golden_open(*set, json_object_get_string_member(p, "file"));
      char *group = g_strdup_printf("pipeline_%s", json_object_get_string_member(p, "name"));
      check_encode(l->vae, l->stream, *set, group, st, "vae_input", "vae_", NULL);
      I2vTensor latents = read_golden(st, "latents_final");
      int s = i2v_vae_downscale(l->vae);
      int64_t n = i2v_tensor_numel(&latents) / latents.shape[1] * 3 * s * s;
      float *video = g_new(float, n);
      GError *err = NULL;
      g_assert_true(i2v_vae_decode_video(l->vae, l->stream, latents.data, (int)latents.shape[2],
                                         (int)latents.shape[3], (int)latents.shape[4], video,
                                         &err));
      g_assert_no_error(err);
      check(*set, group, st, "video", video, n);
      g_free(video);
      i2v_host_tensor_free(&latents);
      i2v_safetensors_close(st);
      g_free(group);
      runs++;
    }
    json_node_unref(man);
  }
  g_assert_cmpint(runs, >, 0);
  g_strfreev(sets);
}

/* ---- errors ---- */

/* A scratch model directory: every component of src linked, vae/ a real folder whose
 * config.json is src's with edit applied and whose weights are linked (or written by the test). */
typedef void (*ConfigEdit)(JsonObject *cfg);

static char *make_model_dir(const char *src_model, ConfigEdit edit, gboolean link_weights) {
  GError *err = NULL;
  char *dir = g_dir_make_tmp("test-vae-XXXXXX", &err);
  g_assert_no_error(err);
  GDir *d = g_dir_open(src_model, 0, &err);
  g_assert_no_error(err);
  for (const char *n; (n = g_dir_read_name(d)) != NULL;) {
    if (strcmp(n, "vae") == 0) continue;
    char *from = g_build_filename(src_model, n, NULL), *to = g_build_filename(dir, n, NULL);
    g_assert_cmpint(symlink(from, to), ==, 0);
    g_free(from);
    g_free(to);
  }
  g_dir_close(d);
  char *vae_src = g_build_filename(src_model, "vae", NULL),
       *vae = g_build_filename(dir, "vae", NULL);
  g_assert_cmpint(g_mkdir(vae, 0755), ==, 0);
  if (link_weights) {
    d = g_dir_open(vae_src, 0, &err);
    g_assert_no_error(err);
    for (const char *n; (n = g_dir_read_name(d)) != NULL;) {
      if (!g_str_has_suffix(n, ".safetensors")) continue;
      char *from = g_build_filename(vae_src, n, NULL), *to = g_build_filename(vae, n, NULL);
      g_assert_cmpint(symlink(from, to), ==, 0);
      g_free(from);
      g_free(to);
    }
    g_dir_close(d);
  }
  char *cfg_src = g_build_filename(vae_src, "config.json", NULL);
  JsonParser *parser = json_parser_new();
  g_assert_true(json_parser_load_from_file(parser, cfg_src, &err));
  if (edit != NULL) edit(json_node_get_object(json_parser_get_root(parser)));
  JsonGenerator *gen = json_generator_new();
  json_generator_set_root(gen, json_parser_get_root(parser));
  char *cfg = g_build_filename(vae, "config.json", NULL);
  g_assert_true(json_generator_to_file(gen, cfg, &err));
  g_object_unref(gen);
  g_object_unref(parser);
  g_free(cfg);
  g_free(cfg_src);
  g_free(vae_src);
  g_free(vae);
  return dir;
}

/* Loading dir's VAE (formula weights when formula) must fail with code and a message holding
 * every string of culprits. */
static void expect_load_error(const char *dir, gboolean formula, int code,
                              const char *const *culprits) {
  GError *err = NULL;
  I2vModelDir *md = i2v_model_dir_open(dir, NULL, &err);
  g_assert_no_error(err);
  if (formula) i2v_model_dir_use_formula(md, 1);
  I2vBackend *be = i2v_cpu_backend_new(0);
  I2vStream *stream = i2v_stream_new(be, NULL);
  I2vVae *vae = i2v_vae_load(md, be, &err);
  g_assert_null(vae);
  golden_assert_error(&err, code, culprits);
  i2v_stream_free(stream);
  i2v_backend_free(be);
  i2v_model_dir_free(md);
}

/* The first set whose VAE has a weight file (the negative tests need real files to edit). */
static char *model_with_vae_file(void) {
  char **sets = golden_sets_with("vae.safetensors");
  char *found = NULL;
  for (char **set = sets; *set != NULL && found == NULL; set++) {
    char *model = g_build_filename(*set, "model", NULL);
    char *file = g_build_filename(model, "vae", "diffusion_pytorch_model.safetensors", NULL);
    if (g_file_test(file, G_FILE_TEST_EXISTS))
      found = model;
    else
      g_free(model);
    g_free(file);
  }
  g_strfreev(sets);
  if (found == NULL) g_test_skip("no fixture set with a VAE weight file");
  return found;
}

static void edit_unknown_down_type(JsonObject *cfg) {
  JsonArray *a = json_object_get_array_member(cfg, "down_block_types");
  json_array_remove_element(a, json_array_get_length(a) - 1);
  json_array_add_string_element(a, "AttnDownEncoderBlock2D");
}

static void edit_unknown_up_type(JsonObject *cfg) {
  JsonArray *a = json_object_get_array_member(cfg, "up_block_types");
  json_array_remove_element(a, 0);
  json_array_add_string_element(a, "UpBlock2D");
}

static void edit_drop_latent_channels(JsonObject *cfg) {
  json_object_remove_member(cfg, "latent_channels");
}

static void test_config_errors(void) {
  char *model = model_with_vae_file();
  if (model == NULL) return;
  static const struct {
    ConfigEdit edit;
    const char *culprits[4];
  } cases[] = {
      {edit_unknown_down_type, {"vae/config.json", "down_block_types", "AttnDownEncoderBlock2D"}},
      {edit_unknown_up_type, {"vae/config.json", "up_block_types", "UpBlock2D"}},
      {edit_drop_latent_channels, {"vae/config.json", "latent_channels"}},
  };
  for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
    char *dir = make_model_dir(model, cases[i].edit, TRUE);
    expect_load_error(dir, FALSE, I2V_ERROR_CONFIG, cases[i].culprits);
    golden_tree_remove(dir);
    g_free(dir);
  }
  g_free(model);
}

/* A weight file without decoder.conv_out.bias: the error names the tensor. */
static void test_missing_tensor(void) {
  char *model = model_with_vae_file();
  if (model == NULL) return;
  char *dir = make_model_dir(model, NULL, FALSE);
  char *src = g_build_filename(model, "vae", "diffusion_pytorch_model.safetensors", NULL);
  char *dst = g_build_filename(dir, "vae", "diffusion_pytorch_model.safetensors", NULL);
  GError *err = NULL;
  I2vSafetensors *st = i2v_safetensors_open(src, &err);
  g_assert_no_error(err);
  I2vSafetensorsWriter *w = i2v_safetensors_writer_new();
  const char *dropped = "decoder.conv_out.bias";
  for (guint i = 0; i < i2v_safetensors_count(st); i++) {
    const I2vSafetensorsEntry *e = i2v_safetensors_entry(st, i);
    if (strcmp(e->name, dropped) != 0)
      i2v_safetensors_writer_add(w, e->name, e->dtype, e->ndim, e->shape, e->data);
  }
  g_assert_true(i2v_safetensors_writer_save(w, dst, &err));
  i2v_safetensors_writer_free(w);
  i2v_safetensors_close(st);
  const char *culprits[] = {dropped, NULL};
  expect_load_error(dir, FALSE, I2V_ERROR_MISSING, culprits);
  golden_tree_remove(dir);
  g_free(dir);
  g_free(src);
  g_free(dst);
  g_free(model);
}

/* Two levels of 8 channels: downscale 2 (formula weights, so no file is needed). */
static void edit_two_levels(JsonObject *cfg) {
  JsonArray *blocks = json_array_new(), *down = json_array_new(), *up = json_array_new();
  for (int i = 0; i < 2; i++) {
    json_array_add_int_element(blocks, 8);
    json_array_add_string_element(down, "DownEncoderBlock2D");
    json_array_add_string_element(up, "UpDecoderBlock2D");
  }
  json_object_set_array_member(cfg, "block_out_channels", blocks);
  json_object_set_array_member(cfg, "down_block_types", down);
  json_object_set_array_member(cfg, "up_block_types", up);
  json_object_set_int_member(cfg, "norm_num_groups", 2);
  json_object_set_int_member(cfg, "layers_per_block", 1);
}

/* Sizes that are not multiples of the downscale are refused with the size and the factor;
 * a good size runs and the decoder maps the latent size back to the image size. */
static void test_bad_size(void) {
  char *model = model_with_vae_file();
  if (model == NULL) return;
  char *dir = make_model_dir(model, edit_two_levels, FALSE);
  GError *err = NULL;
  I2vModelDir *md = i2v_model_dir_open(dir, NULL, &err);
  g_assert_no_error(err);
  i2v_model_dir_use_formula(md, 7);
  I2vBackend *be = i2v_cpu_backend_new(0);
  I2vStream *stream = i2v_stream_new(be, NULL);
  I2vVae *vae = i2v_vae_load(md, be, &err);
  g_assert_no_error(err);
  g_assert_cmpint(i2v_vae_downscale(vae), ==, 2);
  int latent = i2v_vae_latent_channels(vae);
  float x[3 * 8 * 10], moments[2 * 4 * 4 * 5], image[3 * 8 * 10];
  for (guint i = 0; i < G_N_ELEMENTS(x); i++) x[i] = (float)((i * 37) % 17) / 8.0f - 1.0f;
  g_assert_false(i2v_vae_encode(vae, stream, x, 7, 10, moments, &err));
  g_assert_error(err, I2V_ERROR, I2V_ERROR_INVALID);
  g_assert_nonnull(strstr(err->message, "7x10"));
  g_assert_nonnull(strstr(err->message, "factor 2"));
  g_clear_error(&err);
  g_assert_cmpint(latent, ==, 4);
  g_assert_true(i2v_vae_encode(vae, stream, x, 8, 10, moments, &err));
  g_assert_no_error(err);
  /* decode the posterior mean: the first latent channels of the moments */
  g_assert_true(i2v_vae_decode(vae, stream, moments, 1, 4, 5, image, &err));
  g_assert_no_error(err);
  for (guint i = 0; i < G_N_ELEMENTS(image); i++) g_assert_true(isfinite(image[i]));
  i2v_vae_free(vae);
  i2v_stream_free(stream);
  i2v_backend_free(be);
  i2v_model_dir_free(md);
  golden_tree_remove(dir);
  g_free(dir);
  g_free(model);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/vae/cases", test_vae_cases);
  g_test_add_func("/vae/image_preprocess", test_image_preprocess);
  g_test_add_func("/vae/pipeline", test_pipeline_vae);
  g_test_add_func("/vae/config_errors", test_config_errors);
  g_test_add_func("/vae/missing_tensor", test_missing_tensor);
  g_test_add_func("/vae/bad_size", test_bad_size);
  int rc = g_test_run();
  if (loaded_cache != NULL) {
    GList *values = g_hash_table_get_values(loaded_cache);
    g_list_free_full(values, free_loaded);
    g_hash_table_unref(loaded_cache);
  }
  return rc;
}
