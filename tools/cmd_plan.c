/* i2vgen plan: a job's device memory on CUDA before running it (i2v_plan_memory on the planning
 * device plan:cuda; no GPU needed): per stage the peak and its parts, a table on stdout (unless
 * --json) and one JSON line; with --budget, whether it fits and which memory-saving options would
 * make it fit (i2v_plan_fit: released encoders, sequential guidance, attention chunks, tiles). The
 * model is a diffusers directory or a built-in configuration (--config), whose weights are never
 * read: a plan needs their shapes only. */
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include <i2v/error.h>

#define GIB 1073741824.0

/* Parses a byte count: digits with an optional K, M, G or T (binary: 24G = 24 GiB), optionally
 * followed by "iB" or "B". The error names --budget and the value. */
static gboolean parse_bytes(const char *text, size_t *out, GError **error) {
  char *end = NULL;
  guint64 n = g_ascii_strtoull(text, &end, 10);
  int shift = 0;
  const char *units = "KMGT";
  const char *u = end != text && *end != '\0' ? strchr(units, g_ascii_toupper(*end)) : NULL;
  if (u != NULL) {
    shift = 10 * (int)(u - units + 1);
    end++;
    if (g_ascii_strcasecmp(end, "iB") == 0 || g_ascii_strcasecmp(end, "B") == 0) end += strlen(end);
  }
  if (end == text || *end != '\0' || n == 0 || n > (G_MAXSIZE >> shift)) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_INVALID,
                "--budget '%s': expected a positive byte count, optionally with K, M, G or T "
                "(binary units: 24G = 24 GiB)",
                text);
    return FALSE;
  }
  *out = (size_t)n << shift;
  return TRUE;
}

/* Writes the configuration and tokenizer of `config` into a new temporary directory (g_free;
 * remove with remove_model_dir). */
static char *config_model_dir(const char *config, GError **error) {
  char *dir = g_dir_make_tmp("i2vgen-plan-XXXXXX", error);
  if (dir != NULL && !cmd_write_configs(config, dir, error)) {
    cmd_remove_tree(dir);
    g_clear_pointer(&dir, g_free);
  }
  return dir;
}

static void print_table(const I2vMemoryPlan *plan) {
  printf("%-18s %5s %10s %21s %11s %10s\n", "stage", "runs", "weights", "activations (cap.)",
         "workspaces", "total");
  for (int i = 0; i < plan->n_stages; i++) {
    const I2vPlanStage *e = &plan->stages[i];
    printf("%-18s %5d %8.3f G %8.3f (%7.3f) G %9.3f G %8.3f G\n", e->name, e->runs,
           e->weights / GIB, e->arena_used / GIB, e->arena / GIB, e->workspaces / GIB,
           e->total / GIB);
  }
  printf("peak %.3f GiB (%zu bytes; scratch reserved from the UNet on: %.3f GiB), CUDA context "
         "not included\n",
         plan->peak / GIB, plan->peak, plan->arena_need / GIB);
}

static void add_uint(JsonBuilder *b, const char *name, guint64 v) {
  json_builder_set_member_name(b, name);
  json_builder_add_int_value(b, (gint64)v);
}

/* The JSON line: the job, every stage, the peak and, with a budget, the verdict. */
static char *plan_json(const I2vModelOptions *mo, const I2vParams *p, const I2vMemoryPlan *plan,
                       size_t budget, gboolean fits, const char *saving) {
  JsonBuilder *b = json_builder_new();
  json_builder_begin_object(b);
  add_uint(b, "width", p->width);
  add_uint(b, "height", p->height);
  add_uint(b, "frames", p->frames);
  add_uint(b, "steps", p->steps);
  json_builder_set_member_name(b, "precision");
  json_builder_add_string_value(b, mo->precision ? mo->precision : "fp16");
  json_builder_set_member_name(b, "sampler");
  json_builder_add_string_value(b, i2v_sampler_name(p->sampler));
  json_builder_set_member_name(b, "release_encoders");
  json_builder_add_boolean_value(b, mo->release_encoders);
  json_builder_set_member_name(b, "sequential_guidance");
  json_builder_add_boolean_value(b, p->sequential_guidance);
  add_uint(b, "attention_chunk", p->attention_chunk);
  json_builder_set_member_name(b, "decode_tile");
  json_builder_add_int_value(b, p->decode_tile);
  json_builder_set_member_name(b, "stages");
  json_builder_begin_array(b);
  for (int i = 0; i < plan->n_stages; i++) {
    const I2vPlanStage *e = &plan->stages[i];
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "name");
    json_builder_add_string_value(b, e->name);
    add_uint(b, "runs", e->runs);
    add_uint(b, "weights", e->weights);
    add_uint(b, "activations", e->arena_used);
    add_uint(b, "arena", e->arena);
    add_uint(b, "workspaces", e->workspaces);
    add_uint(b, "total", e->total);
    json_builder_end_object(b);
  }
  json_builder_end_array(b);
  add_uint(b, "peak", plan->peak);
  add_uint(b, "arena_need", plan->arena_need);
  if (budget > 0) {
    add_uint(b, "budget", budget);
    json_builder_set_member_name(b, "fits");
    json_builder_add_boolean_value(b, fits);
    json_builder_set_member_name(b, "saving");
    if (saving != NULL)
      json_builder_add_string_value(b, saving);
    else
      json_builder_add_null_value(b);
  }
  json_builder_end_object(b);
  JsonNode *root = json_builder_get_root(b);
  char *text = json_to_string(root, FALSE);
  json_node_unref(root);
  g_object_unref(b);
  return text;
}

/* Plans, and with a budget finds the cheapest saving that fits; prints the results. 0, or 1 with
 * err set. A job that does not fit is a result (exit 0 with fits false), not an error. */
static int run_plan(I2vModelOptions *mo, I2vParams *p, size_t budget, gboolean json_only,
                    GError **err) {
  I2vMemoryPlan plan, as_asked;
  if (!i2v_plan_memory(mo, p, &as_asked, err)) return 1;
  gboolean fits = budget == 0 || as_asked.peak <= budget;
  char *saving = NULL;
  if (!fits) {
    guint chosen = 0;
    GError *none = NULL;
    if (i2v_plan_fit(mo, p, budget, &chosen, &plan, &none))
      saving = i2v_saving_names(chosen);
    else if (g_error_matches(none, I2V_ERROR, I2V_ERROR_NO_MEMORY))
      g_clear_error(&none);
    else {
      g_propagate_error(err, none);
      return 1;
    }
  }
  if (!json_only) {
    print_table(&as_asked);
    if (budget > 0 && fits)
      printf("fits the budget of %.3f GiB\n", budget / GIB);
    else if (budget > 0 && saving != NULL)
      printf("does not fit the budget of %.3f GiB; fits with %s (peak %.3f GiB)\n", budget / GIB,
             saving, plan.peak / GIB);
    else if (budget > 0)
      printf("does not fit the budget of %.3f GiB with any memory-saving option\n", budget / GIB);
  }
  char *line = plan_json(mo, p, &as_asked, budget, fits, saving);
  printf("%s\n", line);
  g_free(line);
  g_free(saving);
  return 0;
}

int cmd_plan(int argc, char **argv) {
  char *model = NULL, *config = NULL, *variant = NULL, *precision = NULL, *sampler = NULL,
       *budget_text = NULL;
  gboolean release = FALSE, json_only = FALSE;
  I2vParams p;
  i2v_params_init(&p);
  GOptionEntry entries[] = {
      {"model", 0, 0, G_OPTION_ARG_FILENAME, &model, "diffusers model directory", "DIR"},
      {"config", 0, 0, G_OPTION_ARG_STRING, &config,
       "a built-in configuration instead of --model: i2vgen-xl or tiny", "CFG"},
      {"variant", 0, 0, G_OPTION_ARG_STRING, &variant, "weight variant of --model: fp16", "V"},
      {"precision", 0, 0, G_OPTION_ARG_STRING, &precision, "fp16 (default), bf16 or fp32", "P"},
      {"release-encoders", 0, 0, G_OPTION_ARG_NONE, &release,
       "plan with the CLIP encoders freed after conditioning", NULL},
      {"width", 0, 0, G_OPTION_ARG_INT, &p.width, "frame width (1280)", "W"},
      {"height", 0, 0, G_OPTION_ARG_INT, &p.height, "frame height (704)", "H"},
      {"frames", 0, 0, G_OPTION_ARG_INT, &p.frames, "frames (16)", "F"},
      {"steps", 0, 0, G_OPTION_ARG_INT, &p.steps, "denoising steps (50)", "N"},
      {"guidance", 0, 0, G_OPTION_ARG_DOUBLE, &p.guidance, "guidance scale (9; <= 1: one branch)",
       "G"},
      {"sampler", 0, 0, G_OPTION_ARG_STRING, &sampler, "ddim (default) or dpmpp-2m", "S"},
      {"budget", 0, 0, G_OPTION_ARG_STRING, &budget_text,
       "device memory to fit, e.g. 24G (binary units); says which options make the job fit",
       "BYTES"},
      {"json", 0, 0, G_OPTION_ARG_NONE, &json_only, "print the JSON line only", NULL},
      G_OPTION_ENTRY_NULL};
  GOptionContext *ctx = g_option_context_new("- plan a job's CUDA device memory (no GPU needed)");
  g_option_context_add_main_entries(ctx, entries, NULL);
  cmd_add_memory_options(ctx, &p);
  GError *err = NULL;
  size_t budget = 0;
  I2vPrecision prec;
  int status = 0;
  char *dir = NULL;
  if (!g_option_context_parse(ctx, &argc, &argv, &err) || !cmd_no_arguments(argc, argv, &err)) {
    status = 2;
  } else if ((model == NULL) == (config == NULL)) {
    err = g_error_new(I2V_ERROR, I2V_ERROR_INVALID, "give one of --model DIR and --config CFG");
    status = 2;
  } else if (config != NULL && strcmp(config, "i2vgen-xl") != 0 && strcmp(config, "tiny") != 0) {
    err = g_error_new(I2V_ERROR, I2V_ERROR_INVALID, "--config '%s': expected i2vgen-xl or tiny",
                      config);
    status = 2;
  } else if (variant != NULL && strcmp(variant, "fp16") != 0) {
    err = g_error_new(I2V_ERROR, I2V_ERROR_INVALID, "--variant '%s': expected fp16", variant);
    status = 2;
  } else if (!i2v_precision_parse(precision, &prec, &err)) {
    g_prefix_error(&err, "--precision: ");
    status = 2;
  } else if (!cmd_parse_sampler(sampler, &p.sampler, &err) ||
             (budget_text != NULL && !parse_bytes(budget_text, &budget, &err)) ||
             !i2v_params_validate(NULL, &p, &err)) {
    status = 2;
  }
  if (status == 0 && config != NULL && (dir = config_model_dir(config, &err)) == NULL) status = 1;
  if (status == 0) {
    I2vModelOptions mo = {.path = dir != NULL ? dir : model,
                          .variant = variant,
                          .precision = precision,
                          .formula_weights = dir != NULL,
                          .release_encoders = release};
    status = run_plan(&mo, &p, budget, json_only, &err);
  }
  if (dir != NULL) cmd_remove_tree(dir);
  if (status != 0) cmd_fail("plan", err);
  g_option_context_free(ctx);
  char *strings[] = {model, config, variant, precision, sampler, budget_text, dir};
  for (guint i = 0; i < G_N_ELEMENTS(strings); i++) g_free(strings[i]);
  return status;
}
