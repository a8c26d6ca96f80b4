/* Checks of the options `i2vgen serve` and `i2vgen worker` share. */
#pragma once

#include "../model_options.h"

G_BEGIN_DECLS

/* Completes and checks the model options of a process that runs videos: --model (default:
 * I2VGEN_MODEL) must be a folder, --variant/--device/--precision well-formed
 * (cmd_model_args_check),
 * --lora-dir (NULL: none) a folder. FALSE with an error naming the option. */
gboolean serve_options_check_model(CmdModelArgs *model, const char *lora_dir, GError **error);

/* Checks a --name (job_files_node_valid); FALSE with an error saying what a name may hold. */
gboolean serve_options_check_name(const char *name, GError **error);

G_END_DECLS
