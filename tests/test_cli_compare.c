/* `i2vgen compare`: identical files agree exactly, different ones are reported per tensor and
 * fail the bound; bad arguments fail with clear messages. */
#include <glib/gstdio.h>
#include <string.h>

#include "golden.h"
#include "tool_run.h"

/* Two pipeline files of the first set that has at least two. */
static void two_pipeline_files(char **a, char **b) {
  char **sets = golden_sets_with("manifest.json");
  *a = *b = NULL;
  for (char **set = sets; *set && *b == NULL; set++) {
    char *dir = g_build_filename(*set, "golden", NULL);
    GDir *d = g_dir_open(dir, 0, NULL);
    for (const char *n; d && *b == NULL && (n = g_dir_read_name(d)) != NULL;) {
      if (!g_str_has_prefix(n, "pipeline_")) continue;
      char **slot = *a == NULL ? a : b;
      *slot = g_build_filename(dir, n, NULL);
    }
    if (d) g_dir_close(d);
    g_free(dir);
  }
  g_strfreev(sets);
  g_assert_nonnull(*b);
}

static void test_identical(void) {
  char *a, *b;
  two_pipeline_files(&a, &b);
  const char *args[] = {"compare", "--max-rel-l2", "0", a, a, NULL};
  ToolRun r = tool_run(args);
  g_assert_cmpint(r.status, ==, 0);
  g_assert_nonnull(strstr(r.out, "WORST rel_l2 0.000e+00"));
  g_assert_nonnull(strstr(r.out, "latents_final"));
  tool_run_clear(&r);
  g_free(a), g_free(b);
}

static void test_different(void) {
  char *a, *b;
  two_pipeline_files(&a, &b);
  const char *report[] = {"compare", a, b, NULL};
  ToolRun r = tool_run(report);
  g_assert_cmpint(r.status, ==, 0); /* no bound: a report only */
  g_assert_nonnull(strstr(r.out, "WORST rel_l2"));
  tool_run_clear(&r);
  const char *bounded[] = {"compare", "--max-rel-l2", "1e-3", a, b, NULL};
  r = tool_run(bounded);
  g_assert_cmpint(r.status, ==, 1);
  g_assert_nonnull(strstr(r.out, "OVER"));
  g_assert_nonnull(strstr(r.err, b));
  tool_run_clear(&r);
  g_free(a), g_free(b);
}

static void test_bad_arguments(void) {
  char *a, *b;
  two_pipeline_files(&a, &b);
  const char *one[] = {"compare", a, NULL};
  tool_expect_failure(one, 2, "two files");
  const char *missing[] = {"compare", a, "/nonexistent/dump.safetensors", NULL};
  tool_expect_failure(missing, 1, "/nonexistent/dump.safetensors");
  /* a file with no float tensor in common */
  char *tmp = g_build_filename(g_get_tmp_dir(), "i2v-compare-empty.safetensors", NULL);
  I2vSafetensorsWriter *w = i2v_safetensors_writer_new();
  int64_t shape[1] = {1};
  float one_value = 1;
  i2v_safetensors_writer_add(w, "unrelated", I2V_DTYPE_F32, 1, shape, &one_value);
  g_assert_true(i2v_safetensors_writer_save(w, tmp, NULL));
  i2v_safetensors_writer_free(w);
  const char *disjoint[] = {"compare", a, tmp, NULL};
  tool_expect_failure(disjoint, 1, "no float tensor in common");
  g_remove(tmp);
  g_free(tmp), g_free(a), g_free(b);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/compare/identical", test_identical);
  g_test_add_func("/compare/different", test_different);
  g_test_add_func("/compare/bad-arguments", test_bad_arguments);
  return g_test_run();
}
