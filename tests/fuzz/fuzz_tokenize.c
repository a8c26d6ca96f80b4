/* libFuzzer target: tokenizing arbitrary text with the fixtures' CLIP tokenizer (49408 tokens).
 * The padded encoding, which stops after max_length tokens, must equal the start of the full
 * one; invalid UTF-8 is an error. */
#include <stdint.h>
#include <string.h>

#include "fuzz_common.h"
#include "tokenizer.h"

static I2vTokenizer *tok;

/* The tokenizer folder of the first fixture set that has one (I2V_FIXTURES overrides). */
static char *fixture_tokenizer(void) {
  const char *root = g_getenv("I2V_FIXTURES") ? g_getenv("I2V_FIXTURES") : I2V_DEFAULT_FIXTURES;
  GDir *d = g_dir_open(root, 0, NULL);
  char *found = NULL;
  for (const char *set; d != NULL && found == NULL && (set = g_dir_read_name(d)) != NULL;) {
    char *path = g_build_filename(root, set, "model", "tokenizer", NULL);
    char *vocab = g_build_filename(path, "vocab.json", NULL);
    if (g_file_test(vocab, G_FILE_TEST_IS_REGULAR))
      found = path;
    else
      g_free(path);
    g_free(vocab);
  }
  if (d != NULL) g_dir_close(d);
  if (found == NULL) g_error("no fixture tokenizer under %s", root);
  return found;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  fuzz_quiet();
  char *dir = fixture_tokenizer();
  GError *err = NULL;
  tok = i2v_tokenizer_load(dir, &err);
  if (tok == NULL) g_error("%s", err->message);
  g_free(dir);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = g_strndup((const char *)data, size);
  GError *err = NULL;
  int n = 0, max = i2v_tokenizer_max_length(tok);
  int64_t *ids = i2v_tokenizer_encode(tok, text, &n, &err);
  int64_t *padded = g_new(int64_t, max);
  gboolean truncated = FALSE;
  gboolean ok = i2v_tokenizer_encode_padded(tok, text, padded, &truncated, NULL);
  g_assert(ok == (ids != NULL));
  if (ids != NULL) {
    int kept = MIN(n - 2, max - 2); /* BPE ids the padded form keeps */
    g_assert(truncated == (n - 2 > max - 2));
    g_assert(memcmp(padded, ids, sizeof(int64_t) * (kept + 1)) == 0);
    g_assert(padded[kept + 1] == ids[n - 1]); /* eos */
  } else {
    g_clear_error(&err);
  }
  g_free(padded);
  g_free(ids);
  g_free(text);
  return 0;
}
