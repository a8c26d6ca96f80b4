/* The options the i2vgen subcommands share (tools/model_options.c): every subcommand that loads a
 * model rejects a malformed --device, --precision, --variant or --threads with exit status 2 and
 * the option named, before anything loads; generate and bench refuse an unknown --sampler;
 * generate refuses prompts that are not UTF-8 and
 * out-of-range parameters before it touches the model (a model folder that does not exist proves
 * the order: loading first would fail with status 1 naming the folder). */
#include <glib.h>

#include "golden.h"
#include "tool_run.h"

/* A model folder that does not exist: an option error must come before any attempt to load it. */
#define NO_MODEL "/nonexistent/i2vgen-model"

typedef struct {
  const char *option, *value;
} BadOption;

static const BadOption bad_model_options[] = {
    {"--device", "gpu"},    {"--device", "cuda:x"},   {"--device", "cuda:99999999999"},
    {"--precision", "fp8"}, {"--precision", "fp16x"}, {"--variant", "fp8"},
    {"--variant", "FP16 "},
};

static const BadOption bad_engine_options[] = {
    {"--threads", "-1"},
    {"--threads", "100000"},
    {"--formula-weights", "seven"},
};

/* Runs subcommand with the model options plus the extra NULL-terminated args, one bad option at
 * a time, and expects status 2 naming the option. (encode takes --model and --variant only.) */
static void expect_bad_options(const char *subcommand, const char *model, const BadOption *bad,
                               gsize n, const char *const *extra) {
  for (gsize i = 0; i < n; i++) {
    GPtrArray *args = g_ptr_array_new();
    g_ptr_array_add(args, (gpointer)subcommand);
    g_ptr_array_add(args, "--model");
    g_ptr_array_add(args, (gpointer)model);
    g_ptr_array_add(args, (gpointer)bad[i].option);
    g_ptr_array_add(args, (gpointer)bad[i].value);
    for (const char *const *e = extra; *e != NULL; e++) g_ptr_array_add(args, (gpointer)*e);
    g_ptr_array_add(args, NULL);
    g_test_message("%s %s '%s'", subcommand, bad[i].option, bad[i].value);
    tool_expect_failure((const char *const *)args->pdata, 2, bad[i].option);
    g_ptr_array_free(args, TRUE);
  }
}

static void test_model_options(void) {
  const char *const generate[] = {"--image", "x.png", "--prompt", "a cat", NULL};
  const char *const none[] = {NULL};
  expect_bad_options("generate", NO_MODEL, bad_model_options, G_N_ELEMENTS(bad_model_options),
                     generate);
  expect_bad_options("generate", NO_MODEL, bad_engine_options, G_N_ELEMENTS(bad_engine_options),
                     generate);
  expect_bad_options("bench", NO_MODEL, bad_model_options, G_N_ELEMENTS(bad_model_options), none);
  expect_bad_options("bench", NO_MODEL, bad_engine_options, G_N_ELEMENTS(bad_engine_options), none);
  const char *const encode_variant[] = {"encode",   "--model", NO_MODEL, "--variant",     "fp8",
                                        "--prompt", "a",       "--out",  "x.safetensors", NULL};
  tool_expect_failure(encode_variant, 2, "--variant");
  /* serve checks that the folder exists first, so it gets a real one */
  char *model = golden_model_with("tokenizer.json");
  const char *const serve[] = {"--listen", "127.0.0.1:0", NULL};
  expect_bad_options("serve", model, bad_model_options, G_N_ELEMENTS(bad_model_options), serve);
  g_free(model);
}

/* i2vgen worker: the model options as every command, and its own, each refused with status 2
 * naming the option before anything connects or loads. */
static void test_worker_options(void) {
  char *model = golden_model_with("tokenizer.json");
  const char *const cluster[] = {"--queue", "unix:///nonexistent/redis.sock", "--results",
                                 g_get_tmp_dir(), NULL};
  expect_bad_options("worker", model, bad_model_options, G_N_ELEMENTS(bad_model_options), cluster);
  static const BadOption bad_worker[] = {{"--claim-after", "0"},
                                         {"--claim-after", "1e9"},
                                         {"--retries", "-1"},
                                         {"--name", "../up"},
                                         {"--name", ".hidden"}};
  expect_bad_options("worker", model, bad_worker, G_N_ELEMENTS(bad_worker), cluster);
  /* the cluster's own two: the queue URL's form, the store folder */
  const char *const store[] = {"--results", g_get_tmp_dir(), NULL};
  static const BadOption bad_queue[] = {
      {"--queue", "http://redis:6379"}, {"--queue", "redis://host:99999"}, {"--queue", "unix://x"}};
  expect_bad_options("worker", model, bad_queue, G_N_ELEMENTS(bad_queue), store);
  const char *const queue[] = {"--queue", "redis://127.0.0.1:6379/0", NULL};
  static const BadOption bad_results[] = {{"--results", "/nonexistent/store"}};
  expect_bad_options("worker", model, bad_results, G_N_ELEMENTS(bad_results), queue);
  /* serve --queue checks its URL the same way */
  const char *const api[] = {"--listen", "127.0.0.1:0", NULL};
  expect_bad_options("serve", model, bad_queue, G_N_ELEMENTS(bad_queue), api);
  g_free(model);
}

static void test_generate_checks_before_loading(void) {
  /* prompts arrive as bytes: invalid UTF-8 is named with its offset, not passed on */
  const char *const bad_prompt[] = {"generate", "--model",  NO_MODEL,     "--image",
                                    "x.png",    "--prompt", "caf\xc3 au", NULL};
  tool_expect_failure(bad_prompt, 2, "--prompt");
  const char *const bad_negative[] = {"generate", "--model",  NO_MODEL, "--image",
                                      "x.png",    "--prompt", "a cat",  "--negative-prompt",
                                      "\xff",     NULL};
  tool_expect_failure(bad_negative, 2, "--negative-prompt");
  /* parameters out of range: status 2 naming the parameter, the model never opened */
  const char *const params[][2] = {{"--steps", "0"},      {"--steps", "1000000"}, {"--frames", "0"},
                                   {"--width", "-8"},     {"--height", "0"},      {"--fps", "0"},
                                   {"--guidance", "nan"}, {"--guidance", "1e308"}};
  for (gsize i = 0; i < G_N_ELEMENTS(params); i++) {
    const char *const args[] = {"generate", "--model", NO_MODEL,     "--image",    "x.png",
                                "--prompt", "a cat",   params[i][0], params[i][1], NULL};
    g_test_message("generate %s %s", params[i][0], params[i][1]);
    tool_expect_failure(args, 2, params[i][0] + 2);
  }
  /* a stray argument is named rather than ignored */
  const char *const stray[] = {"generate", "--model", NO_MODEL, "--image", "x.png",
                               "--prompt", "a cat",   "extra",  NULL};
  tool_expect_failure(stray, 2, "extra");
  const char *const bench_steps[] = {"bench", "--model", NO_MODEL, "--steps", "0", NULL};
  tool_expect_failure(bench_steps, 2, "steps");
  /* an unknown sampler: the option, the value and the samplers there are */
  const char *const generate_sampler[] = {"generate", "--model", NO_MODEL,    "--image", "x.png",
                                          "--prompt", "a cat",   "--sampler", "euler",   NULL};
  tool_expect_failure(generate_sampler, 2,
                      "--sampler: unknown sampler \"euler\" (expected ddim or dpmpp-2m)");
  const char *const bench_sampler[] = {"bench", "--model", NO_MODEL, "--sampler", "dpm", NULL};
  tool_expect_failure(bench_sampler, 2, "--sampler: unknown sampler \"dpm\"");
  /* a known one (any case) passes the checks: the failure is then the missing image (status 1) */
  const char *const generate_dpmpp[] = {"generate", "--model", NO_MODEL,    "--image",  "x.png",
                                        "--prompt", "a cat",   "--sampler", "DPMPP-2M", NULL};
  tool_expect_failure(generate_dpmpp, 1, "x.png");
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/cli/options/model", test_model_options);
  g_test_add_func("/cli/options/worker", test_worker_options);
  g_test_add_func("/cli/options/generate_checks_before_loading",
                  test_generate_checks_before_loading);
  return g_test_run();
}
