/* Option checks shared by serve and worker. */
#include "serve_options.h"

#include <gio/gio.h>

#include "job_files.h"

gboolean serve_options_check_model(CmdModelArgs *model, const char *lora_dir, GError **error) {
  if (model->model == NULL) model->model = g_strdup(g_getenv("I2VGEN_MODEL"));
  I2vModelOptions checked;
  const char *bad = NULL;
  if (model->model == NULL || !g_file_test(model->model, G_FILE_TEST_IS_DIR))
    bad = "--model DIR: a diffusers model directory of ali-vilab/i2vgen-xl is required (or "
          "I2VGEN_MODEL)";
  else if (!cmd_model_args_check(model, &checked, error))
    return FALSE;
  else if (lora_dir != NULL && !g_file_test(lora_dir, G_FILE_TEST_IS_DIR))
    bad = "--lora-dir: not a folder";
  if (bad != NULL) g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "%s", bad);
  return bad == NULL;
}

gboolean serve_options_check_name(const char *name, GError **error) {
  if (job_files_node_valid(name)) return TRUE;
  g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
              "--name '%s': letters, digits, '.', '_' and '-' only, not starting with '.'", name);
  return FALSE;
}
