/* i2vgen tokenize: the token ids of prompts, as the pipeline feeds them to the text encoder. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include <i2v/error.h>
#include "tokenizer.h"

/* Prints n ids space-separated on one line. */
static void print_ids(const int64_t *ids, int n) {
  for (int i = 0; i < n; i++) printf("%s%" G_GINT64_FORMAT, i > 0 ? " " : "", ids[i]);
  putchar('\n');
}

/* Prints the ids of text: padded and truncated to the model's max length, or when no_pad the
 * plain tokenizer(text).input_ids. */
static gboolean tokenize_text(const I2vTokenizer *tok, const char *text, gboolean no_pad,
                              GError **error) {
  if (no_pad) {
    int n = 0;
    int64_t *ids = i2v_tokenizer_encode(tok, text, &n, error);
    if (ids == NULL) return FALSE;
    print_ids(ids, n);
    g_free(ids);
    return TRUE;
  }
  int max = i2v_tokenizer_max_length(tok);
  int64_t *ids = g_new(int64_t, max);
  gboolean ok = i2v_tokenizer_encode_padded(tok, text, ids, NULL, error);
  if (ok) print_ids(ids, max);
  g_free(ids);
  return ok;
}

int cmd_tokenize(int argc, char **argv) {
  char *model = NULL;
  gboolean no_pad = FALSE;
  GOptionEntry entries[] = {
      {"model", 'm', 0, G_OPTION_ARG_FILENAME, &model,
       "model directory (tokenizer files in DIR/tokenizer)", "DIR"},
      {"no-pad", 0, 0, G_OPTION_ARG_NONE, &no_pad,
       "print tokenizer(TEXT).input_ids: no padding, no truncation", NULL},
      G_OPTION_ENTRY_NULL,
  };
  GOptionContext *ctx =
      g_option_context_new("TEXT... - print the token ids of each TEXT, one line each");
  g_option_context_add_main_entries(ctx, entries, NULL);
  GError *err = NULL;
  gboolean parsed = g_option_context_parse(ctx, &argc, &argv, &err);
  /* GOption leaves a "--" separator in argv when a TEXT after it starts with '-' */
  int first_text = parsed && argc > 1 && strcmp(argv[1], "--") == 0 ? 2 : 1;
  int status = 0;
  if (!parsed || model == NULL || argc <= first_text) {
    fprintf(stderr, "i2vgen tokenize: %s\n",
            err != NULL     ? err->message
            : model == NULL ? "--model DIR is required"
                            : "no TEXT given");
    g_clear_error(&err);
    status = 2;
  } else if (!g_file_test(model, G_FILE_TEST_IS_DIR)) {
    g_set_error(&err, I2V_ERROR, I2V_ERROR_IO, "model directory %s: not found", model);
    status = cmd_fail("tokenize", err);
  } else {
    char *dir = g_build_filename(model, "tokenizer", NULL);
    I2vTokenizer *tok = i2v_tokenizer_load(dir, &err);
    gboolean ok = tok != NULL;
    for (int i = first_text; ok && i < argc; i++) ok = tokenize_text(tok, argv[i], no_pad, &err);
    if (!ok) status = cmd_fail("tokenize", err);
    i2v_tokenizer_free(tok);
    g_free(dir);
  }
  g_option_context_free(ctx);
  g_free(model);
  return status;
}
