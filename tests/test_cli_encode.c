/* `i2vgen encode` (the built tool, path in $I2VGEN_TOOL) on every pipeline case of every set
 * with weight files: each tensor it writes against the golden pipeline file (u8 images exact,
 * floats within tolerances.json), --decode of latents_final against video; and its exit statuses
 * and messages on bad arguments. */
#include <glib/gstdio.h>
#include <string.h>
#include <sys/wait.h>

#include "golden.h"
#include "tool_run.h"

/* u8 tensors are exact: same shape, same bytes. */
static void check_u8(const I2vSafetensors *got, const I2vSafetensors *ref, const char *name) {
  const I2vSafetensorsEntry *g = i2v_safetensors_find(got, name),
                            *r = i2v_safetensors_find(ref, name);
  g_assert_nonnull(g);
  g_assert_nonnull(r);
  g_assert_true(g->dtype == I2V_DTYPE_U8 && r->dtype == I2V_DTYPE_U8);
  g_assert_true(i2v_shape_equal(g->ndim, g->shape, r->ndim, r->shape));
  g_assert_cmpmem(g->data, g->nbytes, r->data, r->nbytes);
}

/* Float tensor got_name of the tool's file against ref_name of the golden file. */
static void check_f32(const char *set, const char *group, const I2vSafetensors *got,
                      const I2vSafetensors *ref, const char *got_name, const char *ref_name) {
  I2vTensor g;
  GError *err = NULL;
  g_assert_true(i2v_safetensors_read_f32(got, got_name, &g, &err));
  g_assert_no_error(err);
  double atol = golden_atol(set, group, ref_name); /* absent: exact */
  g_assert_true(golden_check(ref, ref_name, g.data, i2v_tensor_numel(&g), atol, group));
  i2v_host_tensor_free(&g);
}

/* image_embeds [1, proj] is the last row of the golden image_embeddings [2B, 1, proj]. */
static void check_image_embeds(const char *set, const char *group, const I2vSafetensors *got,
                               const I2vSafetensors *ref) {
  I2vTensor g, r;
  GError *err = NULL;
  g_assert_true(i2v_safetensors_read_f32(got, "image_embeds", &g, &err));
  g_assert_true(i2v_safetensors_read_f32(ref, "image_embeddings", &r, &err));
  g_assert_no_error(err);
  int64_t n = i2v_tensor_numel(&g);
  const float *last = (const float *)r.data + i2v_tensor_numel(&r) - n;
  double diff = golden_max_abs_diff(g.data, last, n);
  double atol = golden_atol(set, group, "image_embeddings");
  g_test_message("%s image_embeds vs image_embeddings[-1]: max abs err %.3g (atol %.3g)", group,
                 diff, atol);
  g_assert_cmpfloat(diff, <=, atol);
  i2v_host_tensor_free(&g);
  i2v_host_tensor_free(&r);
}

static void run_case(const char *set, JsonObject *p, const char *tmp) {
  JsonObject *call = json_object_get_object_member(p, "call");
  const char *name = json_object_get_string_member(p, "name");
  char *model = g_build_filename(set, "model", NULL);
  char *image = g_build_filename(set, "golden", "input_image.png", NULL);
  char *golden = g_build_filename(set, "golden", json_object_get_string_member(p, "file"), NULL);
  char *out = g_build_filename(tmp, "encode.safetensors", NULL);
  char *height = g_strdup_printf("%" G_GINT64_FORMAT, json_object_get_int_member(call, "height"));
  char *width = g_strdup_printf("%" G_GINT64_FORMAT, json_object_get_int_member(call, "width"));
  gboolean fp16 = strstr(json_object_get_string_member(p, "weights"), "fp16") != NULL;
  const char *args[] = {"encode",
                        "--model",
                        model,
                        "--prompt",
                        json_object_get_string_member(call, "prompt"),
                        "--image",
                        image,
                        "--height",
                        height,
                        "--width",
                        width,
                        "--decode",
                        golden,
                        "--out",
                        out,
                        fp16 ? "--variant" : NULL,
                        "fp16",
                        NULL};
  gint64 t0 = g_get_monotonic_time();
  ToolRun run = tool_run(args);
  g_test_message("%s: i2vgen encode ran %.2f s; stderr: %s", name,
                 (g_get_monotonic_time() - t0) / 1e6, run.err);
  g_assert_cmpint(run.status, ==, 0);
  g_assert_cmpstr(run.out, ==, "");

  GError *err = NULL;
  I2vSafetensors *got = i2v_safetensors_open(out, &err);
  g_assert_no_error(err);
  I2vSafetensors *ref = i2v_safetensors_open(golden, &err);
  g_assert_no_error(err);
  char *group = g_strdup_printf("pipeline_%s", name);
  check_u8(got, ref, "clip_input_u8");
  check_u8(got, ref, "vae_input_u8");
  static const char *const floats[] = {"prompt_embeds", "clip_pixel_values", "vae_input",
                                       "vae_mean",      "vae_logvar",        "vae_std",
                                       "video"};
  for (guint i = 0; i < G_N_ELEMENTS(floats); i++)
    check_f32(set, group, got, ref, floats[i], floats[i]);
  check_image_embeds(set, group, got, ref);
  /* nothing else was written */
  g_assert_cmpuint(i2v_safetensors_count(got), ==, G_N_ELEMENTS(floats) + 3);
  i2v_safetensors_close(got);
  i2v_safetensors_close(ref);
  g_unlink(out);
  tool_run_clear(&run);
  g_free(group);
  g_free(model);
  g_free(image);
  g_free(golden);
  g_free(out);
  g_free(height);
  g_free(width);
}

/* Sets with weight files (formula-weight sets have none for the tool to read). */
static gboolean has_weight_files(const char *set) {
  JsonNode *man = golden_json(set, "manifest.json");
  gboolean formula = json_object_has_member(json_node_get_object(man), "weights");
  json_node_unref(man);
  return !formula;
}

static void test_pipeline_cases(void) {
  char **sets = golden_sets_with("manifest.json");
  GError *err = NULL;
  char *tmp = g_dir_make_tmp("test-cli-encode-XXXXXX", &err);
  g_assert_no_error(err);
  int runs = 0;
  for (char **set = sets; *set != NULL; set++) {
    if (!has_weight_files(*set)) continue;
    JsonNode *man = golden_json(*set, "manifest.json");
    JsonObject *files = json_object_get_object_member(json_node_get_object(man), "files");
    JsonArray *pipes = json_object_has_member(files, "pipeline")
                           ? json_object_get_array_member(files, "pipeline")
                           : NULL;
    for (guint i = 0; pipes != NULL && i < json_array_get_length(pipes); i++, runs++)
      run_case(*set, json_array_get_object_element(pipes, i), tmp);
    json_node_unref(man);
  }
  g_assert_cmpint(runs, >, 0);
  g_rmdir(tmp);
  g_free(tmp);
  g_strfreev(sets);
}

/* The first set with weight files and a VAE golden (for the error cases). */
static char *any_set(void) {
  char **sets = golden_sets_with("vae.safetensors");
  char *found = NULL;
  for (char **set = sets; *set != NULL && found == NULL; set++)
    if (has_weight_files(*set)) found = g_strdup(*set);
  g_strfreev(sets);
  g_assert_nonnull(found);
  return found;
}

static void test_bad_arguments(void) {
  char *set = any_set();
  char *model = g_build_filename(set, "model", NULL);
  char *image = g_build_filename(set, "golden", "input_image.png", NULL);
  char *no_image = g_build_filename(set, "golden", "no-such-image.png", NULL);
  char *not_pipeline = g_build_filename(set, "golden", "vae.safetensors", NULL);
  GError *err = NULL;
  char *tmp = g_dir_make_tmp("test-cli-encode-XXXXXX", &err);
  g_assert_no_error(err);
  char *out = g_build_filename(tmp, "out.safetensors", NULL);

  const char *no_out[] = {"encode", "--model", model, "--image", image, NULL};
  tool_expect_failure(no_out, 2, "--out");
  const char *missing_image[] = {"encode", "--model", model, "--image",
                                 no_image, "--out",   out,   NULL};
  tool_expect_failure(missing_image, 1, no_image);
  const char *no_latents[] = {"encode",     "--model", model, "--decode",
                              not_pipeline, "--out",   out,   NULL};
  tool_expect_failure(no_latents, 1, "latents_final");
  const char *bad_size[] = {"encode",   "--model", model,   "--image", image,
                            "--height", "0",       "--out", out,       NULL};
  tool_expect_failure(bad_size, 2, "--height");
  g_assert_false(g_file_test(out, G_FILE_TEST_EXISTS)); /* failures write nothing */

  g_rmdir(tmp);
  g_free(tmp);
  g_free(out);
  g_free(not_pipeline);
  g_free(no_image);
  g_free(image);
  g_free(model);
  g_free(set);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/cli/encode/pipeline", test_pipeline_cases);
  g_test_add_func("/cli/encode/bad_arguments", test_bad_arguments);
  return g_test_run();
}
