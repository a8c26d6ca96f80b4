/* libFuzzer target: a tokenizer folder. The input is vocab.json, merges.txt, tokenizer_config.json
 * and a prompt, separated by lines "~~~~" (a missing part is an empty file). Loading gives a
 * tokenizer or an error; a tokenizer then encodes the prompt, padded and not. */
#include <stdint.h>
#include <string.h>

#include "fuzz_common.h"
#include "tokenizer.h"

#define SEPARATOR "\n~~~~\n"

static const char *const names[] = {"vocab.json", "merges.txt", "tokenizer_config.json"};
static FuzzFile files[G_N_ELEMENTS(names)];
static char *dir;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  fuzz_quiet();
  dir = fuzz_tmp_dir();
  for (guint i = 0; i < G_N_ELEMENTS(names); i++) {
    fuzz_file_init(&files[i], names[i]);
    fuzz_link(dir, names[i], files[i].path);
  }
  return 0;
}

/* The next part of [*p, end) up to a separator (or the end); advances *p past it. */
static const char *next_part(const char **p, const char *end, size_t *len) {
  const char *start = *p;
  const char *sep = start < end ? g_strstr_len(start, end - start, SEPARATOR) : NULL;
  const char *stop = sep != NULL ? sep : end;
  *len = stop - start;
  *p = sep != NULL ? sep + strlen(SEPARATOR) : end;
  return start;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *p = (const char *)data, *end = p + size;
  for (guint i = 0; i < G_N_ELEMENTS(names); i++) {
    size_t len;
    const char *part = next_part(&p, end, &len);
    fuzz_file_set(&files[i], (const guint8 *)part, len);
  }
  GError *err = NULL;
  I2vTokenizer *tok = i2v_tokenizer_load(dir, &err);
  if (tok == NULL) {
    g_assert(err != NULL);
    g_error_free(err);
    return 0;
  }
  char *prompt = p < end ? g_strndup(p, end - p) : g_strdup("a photo of a cat");
  int max = i2v_tokenizer_max_length(tok), n;
  int64_t *padded = g_new(int64_t, max), *ids = i2v_tokenizer_encode(tok, prompt, &n, &err);
  g_clear_error(&err);
  if (!i2v_tokenizer_encode_padded(tok, prompt, padded, NULL, &err)) g_clear_error(&err);
  g_free(ids);
  g_free(padded);
  g_free(prompt);
  i2v_tokenizer_free(tok);
  return 0;
}
