/* Running the built i2vgen tool from the CLI tests. */
#include "tool_run.h"

#include <string.h>
#include <sys/wait.h>

ToolRun tool_run(const char *const *args) {
  const char *tool = g_getenv("I2VGEN_TOOL");
  g_assert_nonnull(tool);
  GPtrArray *argv = g_ptr_array_new();
  g_ptr_array_add(argv, (char *)tool);
  for (const char *const *a = args; *a != NULL; a++) g_ptr_array_add(argv, (char *)*a);
  g_ptr_array_add(argv, NULL);
  ToolRun run = {NULL, NULL, -1};
  int wait_status;
  GError *err = NULL;
  g_assert_true(g_spawn_sync(NULL, (char **)argv->pdata, NULL, G_SPAWN_DEFAULT, NULL, NULL,
                             &run.out, &run.err, &wait_status, &err));
  g_assert_no_error(err);
  if (WIFEXITED(wait_status)) run.status = WEXITSTATUS(wait_status);
  g_ptr_array_unref(argv);
  return run;
}

void tool_run_clear(ToolRun *run) {
  g_free(run->out);
  g_free(run->err);
}

void tool_expect_failure(const char *const *args, int status, const char *culprit) {
  ToolRun r = tool_run(args);
  g_test_message("exit %d, stderr: %s", r.status, r.err);
  g_assert_cmpint(r.status, ==, status);
  g_assert_nonnull(strstr(r.err, culprit));
  tool_run_clear(&r);
}
