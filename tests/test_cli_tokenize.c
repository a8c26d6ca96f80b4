/* `i2vgen tokenize` (the built tool, path in $I2VGEN_TOOL): its printed ids against the golden
 * cases of every set with golden/tokenizer.json, --no-pad, and its exit statuses on errors. */
#include <glib/gstdio.h>
#include <string.h>
#include <sys/wait.h>

#include "golden.h"
#include "tool_run.h"
#include "golden_prompt.h"

/* A golden id array as the tool prints it: ids separated by single spaces. */
static char *ids_line(JsonArray *ids) {
  GString *line = g_string_new(NULL);
  for (guint i = 0; i < json_array_get_length(ids); i++)
    g_string_append_printf(line, "%s%" G_GINT64_FORMAT, i > 0 ? " " : "",
                           json_array_get_int_element(ids, i));
  return g_string_free(line, FALSE);
}

/* Runs the tool once on every prompt of set (with extra_option, or none) and checks line i
 * against the case's member ids_key. */
static void check_set(const char *set, const char *extra_option, const char *ids_key) {
  JsonNode *root = golden_json(set, "tokenizer.json");
  JsonArray *cases = json_object_get_array_member(json_node_get_object(root), "cases");
  guint n_cases = json_array_get_length(cases);
  g_assert_cmpuint(n_cases, >, 0);
  char *model = g_build_filename(set, "model", NULL);
  GPtrArray *args = g_ptr_array_new_with_free_func(g_free);
  g_ptr_array_add(args, g_strdup("tokenize"));
  g_ptr_array_add(args, g_strdup("--model"));
  g_ptr_array_add(args, g_strdup(model));
  if (extra_option != NULL) g_ptr_array_add(args, g_strdup(extra_option));
  g_ptr_array_add(args, g_strdup("--")); /* prompts may start with '-' */
  for (guint i = 0; i < n_cases; i++)
    g_ptr_array_add(args, golden_case_prompt(json_array_get_object_element(cases, i)));
  g_ptr_array_add(args, NULL);

  ToolRun run = tool_run((const char *const *)args->pdata);
  g_assert_cmpstr(run.err, ==, "");
  g_assert_cmpint(run.status, ==, 0);
  char **lines = g_strsplit(run.out, "\n", -1);
  g_assert_cmpuint(g_strv_length(lines), ==, n_cases + 1); /* the output ends with a newline */
  guint n_ok = 0;
  for (guint i = 0; i < n_cases; i++) {
    JsonObject *c = json_array_get_object_element(cases, i);
    char *want = ids_line(json_object_get_array_member(c, ids_key));
    if (strcmp(lines[i], want) == 0)
      n_ok++;
    else
      g_test_message("case %u %s: printed\n  %s\nwant\n  %s", i,
                     json_object_get_string_member(c, "prompt"), lines[i], want);
    g_free(want);
  }
  g_test_message("%s %s: %u of %u cases match", set, ids_key, n_ok, n_cases);
  g_assert_cmpuint(n_ok, ==, n_cases);
  g_strfreev(lines);
  tool_run_clear(&run);
  g_ptr_array_unref(args);
  g_free(model);
  json_node_unref(root);
}

static void test_padded(gconstpointer set) {
  check_set(set, NULL, "ids_padded");
}

static void test_no_pad(gconstpointer set) {
  check_set(set, "--no-pad", "ids");
}

static void test_missing_model_dir(void) {
  char *tmp = g_dir_make_tmp("i2v-cli-XXXXXX", NULL);
  char *missing = g_build_filename(tmp, "no-such-model", NULL);
  const char *args[] = {"tokenize", "--model", missing, "a photo of a cat", NULL};
  ToolRun run = tool_run(args);
  g_assert_cmpint(run.status, ==, 1);
  g_assert_cmpstr(run.out, ==, "");
  g_assert_nonnull(strstr(run.err, missing));
  tool_run_clear(&run);
  g_assert_cmpint(g_rmdir(tmp), ==, 0);
  g_free(missing);
  g_free(tmp);
}

static void test_bad_usage(void) {
  const char *no_model[] = {"tokenize", "a photo of a cat", NULL};
  ToolRun run = tool_run(no_model);
  g_assert_cmpint(run.status, ==, 2);
  g_assert_nonnull(strstr(run.err, "--model"));
  tool_run_clear(&run);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  char **sets = golden_sets_with("tokenizer.json");
  for (char **s = sets; *s != NULL; s++) {
    char *base = g_path_get_basename(*s);
    char *path = g_strdup_printf("/cli/tokenize/padded/%s", base);
    g_test_add_data_func(path, *s, test_padded);
    g_free(path);
    path = g_strdup_printf("/cli/tokenize/no-pad/%s", base);
    g_test_add_data_func(path, *s, test_no_pad);
    g_free(path);
    g_free(base);
  }
  g_test_add_func("/cli/tokenize/missing-model-dir", test_missing_model_dir);
  g_test_add_func("/cli/tokenize/bad-usage", test_bad_usage);
  int status = g_test_run();
  g_strfreev(sets);
  return status;
}
