/* The i2vgen tool on hostile arguments: a pattern of 100 KB (near the kernel's limit for one
 * argument) is repeated shortened in the error, and images that are no regular file are named for
 * what they are ("not found" before; a FIFO blocked). The tool fails cleanly in each case. */
#include <glib/gstdio.h>
#include <string.h>
#include <sys/stat.h>

#include "golden.h"
#include "tool_run.h"

/* Runs the tool with args, expects a failure whose stderr names every needle and stays short. */
static void expect_short_failure(const char *const *args, const char *const *needles) {
  ToolRun r = tool_run(args);
  g_test_message("exit %d, %zu bytes of stderr: %.300s", r.status, strlen(r.err), r.err);
  g_assert_cmpint(r.status, !=, 0);
  g_assert_cmpuint(strlen(r.err), <, 2000);
  for (const char *const *n = needles; *n != NULL; n++) g_assert_nonnull(strstr(r.err, *n));
  tool_run_clear(&r);
}

static void test_long_out_pattern(void) {
  char *model = golden_model_with("tokenizer.json");
  GString *pattern = g_string_new(NULL);
  for (int i = 0; i < 100000; i++) g_string_append_c(pattern, 'p');
  g_string_append(pattern, "%s.png"); /* not a %d pattern */
  const char *args[] = {"generate", "--model", model,   "--image",    "x.png",
                        "--prompt", "a cat",   "--out", pattern->str, NULL};
  expect_short_failure(args, (const char *const[]){"--out", "ppp", "(100006 bytes)", NULL});
  g_string_free(pattern, TRUE);
  g_free(model);
}

static void test_image_not_regular(void) {
  char *model = golden_model_with("tokenizer.json");
  char *dir = g_dir_make_tmp("test-cli-hostile-XXXXXX", NULL);
  char *fifo = g_build_filename(dir, "fifo.png", NULL);
  char *out = g_build_filename(dir, "out.safetensors", NULL);
  g_assert_cmpint(mkfifo(fifo, 0600), ==, 0);
  const char *encode[] = {"encode", "--model", model, "--image", fifo, "--out", out, NULL};
  expect_short_failure(encode, (const char *const[]){fifo, "is a FIFO", NULL});
  const char *generate[] = {"generate", "--model", model, "--image", dir, "--prompt", "x", NULL};
  expect_short_failure(generate, (const char *const[]){dir, "is a directory", NULL});
  g_assert_false(g_file_test(out, G_FILE_TEST_EXISTS));
  g_remove(fifo);
  g_rmdir(dir);
  g_free(out);
  g_free(fifo);
  g_free(dir);
  g_free(model);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/cli/hostile/long-out-pattern", test_long_out_pattern);
  g_test_add_func("/cli/hostile/image-not-regular", test_image_not_regular);
  return g_test_run();
}
