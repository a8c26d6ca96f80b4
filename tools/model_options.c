/* The model options of the i2vgen subcommands (model_options.h). */
#include "model_options.h"

#include <string.h>

#include "commands.h"
#include <i2v/error.h>

/* More threads than this is a typo, not a machine. */
#define MAX_THREADS 1024

void cmd_model_add_options(GOptionContext *ctx, CmdModelArgs *a, CmdModelOptionSet set) {
  const GOptionEntry dir[] = {
      {"model", 0, 0, G_OPTION_ARG_FILENAME, &a->model, "diffusers model directory", "DIR"},
      {"variant", 0, 0, G_OPTION_ARG_STRING, &a->variant,
       "weight variant: fp16 for the *.fp16.safetensors files", "V"},
      G_OPTION_ENTRY_NULL};
  const GOptionEntry device[] = {
      {"device", 0, 0, G_OPTION_ARG_STRING, &a->device, "auto (default), cpu, cuda or cuda:N", "D"},
      {"precision", 0, 0, G_OPTION_ARG_STRING, &a->precision,
       "fp32, fp16 or bf16 (default: the device's own)", "P"},
      G_OPTION_ENTRY_NULL};
  const GOptionEntry engine[] = {
      {"threads", 0, 0, G_OPTION_ARG_INT, &a->threads, "CPU threads (0, the default: every core)",
       "N"},
      {"lora", 0, 0, G_OPTION_ARG_FILENAME, &a->lora,
       "LoRA styles merged into the weights: PATH[:SCALE][,PATH[:SCALE]...]", "SPEC"},
      {"formula-weights", 0, 0, G_OPTION_ARG_STRING, &a->formula_seed,
       "weights from the realcfg formula with this set seed instead of weight files", "SEED"},
      {"release-encoders", 0, 0, G_OPTION_ARG_NONE, &a->release_encoders,
       "free the CLIP encoders after conditioning (lower peak memory, slower start)", NULL},
      G_OPTION_ENTRY_NULL};
  /* GLib copies the entries, so the arrays may live on this stack */
  if (set & CMD_MODEL_DIR) g_option_context_add_main_entries(ctx, dir, NULL);
  if (set & CMD_MODEL_DEVICE) g_option_context_add_main_entries(ctx, device, NULL);
  if (set & CMD_MODEL_ENGINE) g_option_context_add_main_entries(ctx, engine, NULL);
}

gboolean cmd_model_args_check(const CmdModelArgs *a, I2vModelOptions *o, GError **error) {
  memset(o, 0, sizeof(*o));
  I2vDeviceKind kind;
  int index;
  I2vPrecision precision;
  if (a->model == NULL) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_INVALID, "--model DIR is required");
    return FALSE;
  }
  if (a->variant != NULL && strcmp(a->variant, "fp16") != 0) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_INVALID,
                "--variant '%s': expected fp16 (or no --variant for the full-precision files)",
                a->variant);
    return FALSE;
  }
  if (!i2v_device_parse(a->device, &kind, &index, error)) {
    g_prefix_error(error, "--device: ");
    return FALSE;
  }
  if (!i2v_precision_parse(a->precision, &precision, error)) {
    g_prefix_error(error, "--precision: ");
    return FALSE;
  }
  if (a->threads < 0 || a->threads > MAX_THREADS) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_INVALID, "--threads %d: expected 0 (every core) to %d",
                a->threads, MAX_THREADS);
    return FALSE;
  }
  if (a->formula_seed != NULL &&
      !cmd_parse_u64(a->formula_seed, "--formula-weights", &o->formula_seed, error))
    return FALSE;
  o->path = a->model;
  o->variant = a->variant;
  o->device = a->device;
  o->precision = a->precision;
  o->threads = a->threads;
  o->lora = a->lora;
  o->formula_weights = a->formula_seed != NULL;
  o->release_encoders = a->release_encoders;
  return TRUE;
}

void cmd_model_args_clear(CmdModelArgs *a) {
  char *strings[] = {a->model, a->variant, a->device, a->precision, a->lora, a->formula_seed};
  for (guint i = 0; i < G_N_ELEMENTS(strings); i++) g_free(strings[i]);
  memset(a, 0, sizeof(*a));
}
