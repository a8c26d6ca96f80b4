/* `i2vgen plan` (the planning device plan:cuda, no GPU): the JSON line's fields are consistent
 * (each stage's total is its weights + arena + workspaces, the activations fit the arena, the peak
 * is the largest stage, the denoising steps and the decode run in one reserved block of exactly
 * arena_need, more frames never need less), the
 * real configuration plans in about a second with the encoders' weights gone when released,
 * --budget says fits / does not fit just above / below the peak and names the option that makes
 * it fit, and bad arguments fail clearly. */
#include <json-glib/json-glib.h>
#include <string.h>

#include <i2v/i2v.h>

#include "golden.h"
#include "tool_run.h"

/* Runs plan with args (NULL-terminated, "plan" and "--json" added) and returns the parsed JSON
 * line (json_node_unref). */
static JsonNode *plan(const char *const *args) {
  GPtrArray *argv = g_ptr_array_new();
  g_ptr_array_add(argv, "plan");
  g_ptr_array_add(argv, "--json");
  for (const char *const *a = args; *a != NULL; a++) g_ptr_array_add(argv, (gpointer)*a);
  g_ptr_array_add(argv, NULL);
  ToolRun r = tool_run((const char *const *)argv->pdata);
  g_test_message("%s%s", r.err, r.out);
  g_assert_cmpint(r.status, ==, 0);
  JsonNode *root = json_from_string(r.out, NULL);
  g_assert_nonnull(root);
  tool_run_clear(&r);
  g_ptr_array_unref(argv);
  return root;
}

static gint64 member(JsonObject *o, const char *name) {
  g_assert_true(json_object_has_member(o, name));
  return json_object_get_int_member(o, name);
}

/* Checks the invariants of a plan's JSON; returns stage `name`'s object (owned by root). */
static JsonObject *check_plan(JsonNode *root, const char *name) {
  JsonObject *o = json_node_get_object(root), *found = NULL;
  JsonArray *stages = json_object_get_array_member(o, "stages");
  gint64 peak = 0, reserved = 0;
  for (guint i = 0; i < json_array_get_length(stages); i++) {
    JsonObject *s = json_array_get_object_element(stages, i);
    gint64 total = member(s, "total");
    g_assert_cmpint(total, ==, member(s, "weights") + member(s, "arena") + member(s, "workspaces"));
    g_assert_cmpint(member(s, "activations"), <=, member(s, "arena"));
    const char *stage = json_object_get_string_member(s, "name");
    if (strcmp(stage, "unet_step") == 0 || strcmp(stage, "vae_decode_frame") == 0) {
      g_assert_cmpint(member(s, "arena"), ==, member(o, "arena_need"));
      reserved++;
    }
    g_assert_cmpint(member(s, "runs"), >=, 1);
    peak = MAX(peak, total);
    if (strcmp(json_object_get_string_member(s, "name"), name) == 0) found = s;
  }
  g_assert_cmpint(member(o, "peak"), ==, peak);
  g_assert_cmpint(reserved, ==, 2);
  g_assert_nonnull(found);
  return found;
}

static void test_tiny(void) {
  char *model = golden_model_with("tokenizer.json");
  const char *two[] = {"--model",  model, "--width", "16", "--height", "16",
                       "--frames", "2",   "--steps", "2",  NULL};
  const char *six[] = {"--model",  model, "--width", "16", "--height", "16",
                       "--frames", "6",   "--steps", "2",  NULL};
  JsonNode *a = plan(two), *b = plan(six);
  JsonObject *step_a = check_plan(a, "unet_step"), *step_b = check_plan(b, "unet_step");
  g_assert_cmpint(member(step_a, "runs"), ==, 2);
  g_assert_cmpint(member(step_b, "activations"), >, member(step_a, "activations"));
  g_assert_cmpint(member(check_plan(b, "vae_decode_frame"), "runs"), ==, 6);
  json_node_unref(a), json_node_unref(b);

  /* on the tiny model at 64×64×32 the UNet's activations dominate (smaller jobs peak in the
   * encoders' 64 MiB scratch chunk), so the strategies lower the peak: a budget of the
   * need with every option (as i2v_plan_fit's last set: tiles of 64) takes more than released
   * encoders, one under it fits with none */
  char budget[32];
  const char *all[] = {"--model",
                       model,
                       "--width",
                       "64",
                       "--height",
                       "64",
                       "--frames",
                       "32",
                       "--steps",
                       "2",
                       "--release-encoders",
                       "--sequential-guidance",
                       "--attention-chunk",
                       "1",
                       "--decode-tile",
                       "64",
                       NULL};
  const char *asked[] = {"--model", model,     "--width", "64",       "--height", "64", "--frames",
                         "32",      "--steps", "2",       "--budget", budget,     NULL};
  JsonNode *saved = plan(all);
  gint64 least = member(json_node_get_object(saved), "peak");
  g_snprintf(budget, sizeof budget, "%" G_GINT64_FORMAT, least);
  JsonNode *fits = plan(asked);
  JsonObject *o = json_node_get_object(fits);
  g_assert_false(json_object_get_boolean_member(o, "fits")); /* as asked */
  g_assert_true(g_str_has_prefix(json_object_get_string_member(o, "saving"),
                                 "release-encoders,sequential-guidance"));
  g_snprintf(budget, sizeof budget, "%" G_GINT64_FORMAT, least - 1);
  JsonNode *never = plan(asked);
  g_assert_true(json_object_get_null_member(json_node_get_object(never), "saving"));
  json_node_unref(saved), json_node_unref(fits), json_node_unref(never);
  g_free(model);
}

/* The real configuration at a small size: weights of ~2.5 G fp16 parameters, fewer during the
 * UNet with the encoders released; a budget just above / below the peak (the tiny test covers
 * a budget nothing fits). */
static void test_real_config(void) {
  const char *kept_args[] = {"--config", "i2vgen-xl", "--width", "64", "--height", "64",
                             "--frames", "2",         "--steps", "1",  NULL};
  const char *released_args[] = {
      "--config", "i2vgen-xl", "--width", "64", "--height",           "64",
      "--frames", "2",         "--steps", "1",  "--release-encoders", NULL};
  JsonNode *kept = plan(kept_args), *released = plan(released_args);
  gint64 w_kept = member(check_plan(kept, "unet_step"), "weights");
  gint64 w_released = member(check_plan(released, "unet_step"), "weights");
  g_assert_cmpint(member(check_plan(kept, "load"), "weights"), >, (gint64)4 << 30);
  g_assert_cmpint(w_released, <, w_kept - ((gint64)1 << 30)); /* ~1 G encoder parameters */
  gint64 peak = member(json_node_get_object(kept), "peak");
  gint64 peak_released = member(json_node_get_object(released), "peak");
  g_assert_cmpint(peak_released, <, peak);
  /* released encoders are streamed: beside the UNet and VAE sit one layer at a time (~40 MB of
   * the vision encoder's ~1.2 GB, ~25 MB of the text encoder's ~0.7 GB) and the weights around
   * the layers (the text encoder's token table: ~100 MB) */
  gint64 vision_extra = member(check_plan(released, "image_encoder"), "weights") - w_released;
  gint64 text_extra = member(check_plan(released, "text_encoder"), "weights") - w_released;
  g_test_message("beside the UNet: streamed text encoder %" G_GINT64_FORMAT
                 ", streamed vision encoder %" G_GINT64_FORMAT " bytes",
                 text_extra, vision_extra);
  g_assert_cmpint(text_extra, >, (gint64)100 << 20);
  g_assert_cmpint(text_extra, <, (gint64)200 << 20);
  g_assert_cmpint(vision_extra, <, (gint64)100 << 20);

  char above[32], below[32];
  g_snprintf(above, sizeof above, "%" G_GINT64_FORMAT, peak + 1);
  g_snprintf(below, sizeof below, "%" G_GINT64_FORMAT, peak - 1);
  const char *fit_args[] = {"--config", "i2vgen-xl", "--width", "64",      "--height",
                            "64",       "--frames",  "2",       "--steps", "1",
                            "--budget", above,       NULL};
  JsonNode *fit = plan(fit_args);
  g_assert_true(json_object_get_boolean_member(json_node_get_object(fit), "fits"));
  fit_args[11] = below;
  JsonNode *nofit = plan(fit_args);
  JsonObject *o = json_node_get_object(nofit);
  g_assert_false(json_object_get_boolean_member(o, "fits"));
  g_assert_cmpstr(json_object_get_string_member(o, "saving"), ==, "release-encoders");
  json_node_unref(kept), json_node_unref(released), json_node_unref(fit), json_node_unref(nofit);
}

static void test_bad_arguments(void) {
  const char *none[] = {"plan", "--width", "64", NULL};
  tool_expect_failure(none, 2, "--model DIR and --config");
  const char *both[] = {"plan", "--model", "x", "--config", "tiny", NULL};
  tool_expect_failure(both, 2, "--model DIR and --config");
  const char *config[] = {"plan", "--config", "huge", NULL};
  tool_expect_failure(config, 2, "--config 'huge'");
  const char *budget[] = {"plan", "--config", "tiny", "--budget", "24X", NULL};
  tool_expect_failure(budget, 2, "--budget '24X'");
  const char *zero[] = {"plan", "--config", "tiny", "--budget", "0", NULL};
  tool_expect_failure(zero, 2, "--budget '0'");
  const char *width[] = {"plan", "--config", "i2vgen-xl", "--width", "13", NULL};
  tool_expect_failure(width, 1, "width 13 is not a multiple of 8");
  const char *precision[] = {"plan", "--config", "tiny", "--precision", "fp8", NULL};
  tool_expect_failure(precision, 2, "--precision");
  const char *missing[] = {"plan", "--model", "/nonexistent", NULL};
  tool_expect_failure(missing, 1, "/nonexistent");
}

/* i2v_plan_memory keeps the plans it made: the same job again is answered from memory, equal
 * byte for byte and at once; a job of another size is planned anew. */
static void test_memo(void) {
  char *model = golden_model_with("tokenizer.json");
  I2vModelOptions o = {.path = model, .precision = "fp16"};
  I2vParams p;
  i2v_params_init(&p);
  p.width = p.height = 16, p.frames = 3, p.steps = 2;
  I2vMemoryPlan first, again, longer;
  GError *err = NULL;
  gint64 t0 = g_get_monotonic_time();
  g_assert_true(i2v_plan_memory(&o, &p, &first, &err));
  gint64 t1 = g_get_monotonic_time();
  g_assert_true(i2v_plan_memory(&o, &p, &again, &err));
  gint64 t2 = g_get_monotonic_time();
  g_test_message("planned in %" G_GINT64_FORMAT " us, again in %" G_GINT64_FORMAT " us", t1 - t0,
                 t2 - t1);
  g_assert_true(memcmp(&first, &again, sizeof first) == 0);
  g_assert_cmpint(t2 - t1, <, (t1 - t0) / 5);
  p.frames = 9;
  g_assert_true(i2v_plan_memory(&o, &p, &longer, &err));
  g_assert_cmpuint(longer.arena_need, >, first.arena_need);
  g_free(model);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/cli/plan/tiny", test_tiny);
  g_test_add_func("/cli/plan/real-config", test_real_config);
  g_test_add_func("/cli/plan/bad-arguments", test_bad_arguments);
  g_test_add_func("/plan/memo", test_memo);
  return g_test_run();
}
