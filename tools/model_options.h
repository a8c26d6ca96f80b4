/* The model options the i2vgen subcommands share, parsed once and checked before anything loads:
 * --model, --variant, --device, --precision (where the model comes from and runs), and for the
 * subcommands that drive the engine themselves --threads, --lora, --formula-weights and
 * --release-encoders. */
#pragma once

#include <glib.h>
#include <i2v/i2v.h>

typedef enum {
  CMD_MODEL_DIR = 1 << 0,    /* --model, --variant */
  CMD_MODEL_DEVICE = 1 << 1, /* --device, --precision */
  CMD_MODEL_ENGINE = 1 << 2, /* --threads, --lora, --formula-weights, --release-encoders */
  CMD_MODEL_ALL = CMD_MODEL_DIR | CMD_MODEL_DEVICE | CMD_MODEL_ENGINE,
} CmdModelOptionSet;

/* What the options hold after parsing (strings owned; cmd_model_args_clear frees them). */
typedef struct {
  char *model, *variant, *device, *precision, *lora, *formula_seed;
  int threads;
  gboolean release_encoders;
} CmdModelArgs;

/* Adds the options of set, writing into a, to ctx's main group (so --help lists them with the
 * subcommand's own). a must outlive the parse. */
void cmd_model_add_options(GOptionContext *ctx, CmdModelArgs *a, CmdModelOptionSet set);

/* Checks the parsed options (a model given, --variant, --device, --precision, --threads and
 * --formula-weights well-formed) and fills o, whose strings point into a. FALSE with an error
 * naming the option and its value. */
gboolean cmd_model_args_check(const CmdModelArgs *a, I2vModelOptions *o, GError **error);

/* Frees the strings of a and zeroes it. */
void cmd_model_args_clear(CmdModelArgs *a);
