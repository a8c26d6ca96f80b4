/* Running the built i2vgen tool (path in $I2VGEN_TOOL) from the CLI tests. */
#pragma once

#include <glib.h>

/* The result of one run of the tool. */
typedef struct {
  char *out, *err;
  int status; /* exit status, -1 if it did not exit normally */
} ToolRun;

/* Runs i2vgen with args (NULL-terminated) and returns its output and exit status; free the
 * strings with tool_run_clear. */
ToolRun tool_run(const char *const *args);

/* Runs i2vgen with args and asserts it exits with status, naming culprit on stderr. */
void tool_expect_failure(const char *const *args, int status, const char *culprit);

/* Frees the captured output of run. */
void tool_run_clear(ToolRun *run);
