/* `i2vgen bench` on the tiny model: the JSON line has every stage with the right counts, positive
 * times and FLOPs, the memory fields (no device memory on the CPU); the FLOP-bound ratio appears
 * with --peak-tflops; --release-encoders is reported; bad arguments fail clearly. */
#include <json-glib/json-glib.h>
#include <math.h>
#include <string.h>

#include "golden.h"
#include "tool_run.h"

static void test_json_line(void) {
  char *model = golden_model_with("tokenizer.json");
  const char *args[] = {"bench",     "--model",
                        model,       "--width",
                        "16",        "--height",
                        "16",        "--frames",
                        "3",         "--steps",
                        "2",         "--peak-tflops",
                        "1",         "--release-encoders",
                        "--sampler", "dpmpp-2m",
                        NULL};
  ToolRun r = tool_run(args);
  g_test_message("%s%s", r.err, r.out);
  g_assert_cmpint(r.status, ==, 0);
  JsonParser *p = json_parser_new();
  g_assert_true(json_parser_load_from_data(p, r.out, -1, NULL));
  JsonObject *o = json_node_get_object(json_parser_get_root(p));
  g_assert_cmpstr(json_object_get_string_member(o, "device"), ==, "cpu");
  g_assert_cmpint(json_object_get_int_member(o, "unet_step_n"), ==, 2);
  g_assert_cmpstr(json_object_get_string_member(o, "sampler"), ==, "dpmpp-2m");
  g_assert_cmpint(json_object_get_int_member(o, "vae_decode_frame_n"), ==, 3);
  const char *stages[] = {"text_encoder", "image_encoder", "vae_encoder",
                          "unet_prepare", "unet_step",     "vae_decode_frame"};
  for (guint i = 0; i < G_N_ELEMENTS(stages); i++) {
    char *t = g_strconcat(stages[i], "_s", NULL), *f = g_strconcat(stages[i], "_tflop", NULL);
    g_assert_cmpfloat(json_object_get_double_member(o, t), >, 0);
    g_assert_cmpfloat(json_object_get_double_member(o, f), >, 0);
    g_free(t), g_free(f);
  }
  g_assert_cmpfloat(json_object_get_double_member(o, "peak_rss_mb"), >, 1);
  g_assert_cmpfloat(json_object_get_double_member(o, "persistent_peak_mb"), >, 0);
  g_assert_cmpfloat(json_object_get_double_member(o, "scratch_mb"), >, 0);
  g_assert_cmpfloat(fabs(json_object_get_double_member(o, "engine_peak_mb") -
                         json_object_get_double_member(o, "persistent_peak_mb") -
                         json_object_get_double_member(o, "scratch_mb")),
                    <=, 0.15); /* each printed to 0.1 MB */
  const char *device_fields[] = {"device_used_mb", "device_peak_mb", "device_total_mb"};
  for (guint i = 0; i < G_N_ELEMENTS(device_fields); i++)
    g_assert_cmpfloat(json_object_get_double_member(o, device_fields[i]), ==, 0); /* CPU */
  g_assert_true(json_object_get_boolean_member(o, "release_encoders"));
  double job50 = json_object_get_double_member(o, "job50_s");
  double bound = json_object_get_double_member(o, "flop_bound_s");
  g_assert_cmpfloat(bound, >, 0);
  g_assert_cmpfloat(fabs(json_object_get_double_member(o, "ratio_to_bound") - job50 / bound), <,
                    1e-3 * job50 / bound);
  g_object_unref(p);
  tool_run_clear(&r);
  g_free(model);
}

static void test_bad_arguments(void) {
  char *model = golden_model_with("tokenizer.json");
  const char *no_model[] = {"bench", NULL};
  tool_expect_failure(no_model, 2, "--model");
  const char *bad_seed[] = {"bench", "--model", model, "--formula-weights", "seven", NULL};
  tool_expect_failure(bad_seed, 2, "'seven'");
  const char *missing[] = {"bench", "--model", "/nonexistent/model-dir", NULL};
  tool_expect_failure(missing, 1, "/nonexistent/model-dir");
  const char *zero_frames[] = {"bench", "--model", model, "--frames", "0", NULL};
  tool_expect_failure(zero_frames, 2, "frames") /* checked before loading */;
  g_free(model);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/bench/json-line", test_json_line);
  g_test_add_func("/bench/bad-arguments", test_bad_arguments);
  return g_test_run();
}
