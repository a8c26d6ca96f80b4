/* The CLIP tokenizer against golden/tokenizer.json of every fixture set (BPE strings, unpadded
 * ids, the pipeline's padded ids, truncation), and its errors on broken tokenizer folders. */
#include <errno.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/stat.h>

#include <i2v/error.h>
#include "golden.h"
#include "golden_prompt.h"
#include "tokenizer.h"

/* Whether got[0..n) equals the JSON integer array want; describes the first difference. */
static gboolean same_ids(const int64_t *got, int n, JsonArray *want, GString *why) {
  int n_want = (int)json_array_get_length(want);
  for (int i = 0; i < MIN(n, n_want); i++) {
    if (got[i] != json_array_get_int_element(want, i)) {
      g_string_append_printf(why, "id %d: got %" G_GINT64_FORMAT ", want %" G_GINT64_FORMAT "; ", i,
                             got[i], json_array_get_int_element(want, i));
      return FALSE;
    }
  }
  if (n != n_want) g_string_append_printf(why, "got %d ids, want %d; ", n, n_want);
  return n == n_want;
}

/* Whether the strv got equals the JSON string array want; describes the first difference. */
static gboolean same_strings(char **got, JsonArray *want, GString *why) {
  guint n = g_strv_length(got), n_want = json_array_get_length(want);
  for (guint i = 0; i < MIN(n, n_want); i++) {
    if (strcmp(got[i], json_array_get_string_element(want, i)) != 0) {
      g_string_append_printf(why, "bpe token %u: got '%s', want '%s'; ", i, got[i],
                             json_array_get_string_element(want, i));
      return FALSE;
    }
  }
  if (n != n_want) g_string_append_printf(why, "got %u bpe tokens, want %u; ", n, n_want);
  return n == n_want;
}

/* Checks one golden case; returns TRUE when every output matches, else logs why. */
static gboolean check_case(const I2vTokenizer *tok, JsonObject *c) {
  char *prompt = golden_case_prompt(c);
  GString *why = g_string_new(NULL);
  GError *err = NULL;
  gboolean ok = TRUE;

  char **tokens = i2v_tokenizer_bpe_tokens(tok, prompt, &err);
  g_assert_no_error(err);
  ok &= same_strings(tokens, json_object_get_array_member(c, "bpe_tokens"), why);
  g_strfreev(tokens);

  int n = 0;
  int64_t *ids = i2v_tokenizer_encode(tok, prompt, &n, &err);
  g_assert_no_error(err);
  ok &= same_ids(ids, n, json_object_get_array_member(c, "ids"), why);
  g_free(ids);

  int max = i2v_tokenizer_max_length(tok);
  int64_t *padded = g_new(int64_t, max);
  gboolean truncated = FALSE;
  g_assert_true(i2v_tokenizer_encode_padded(tok, prompt, padded, &truncated, &err));
  g_assert_no_error(err);
  ok &= same_ids(padded, max, json_object_get_array_member(c, "ids_padded"), why);
  if (truncated != json_object_get_boolean_member(c, "truncated")) {
    g_string_append_printf(why, "truncated: got %d; ", truncated);
    ok = FALSE;
  }
  g_free(padded);

  if (!ok)
    g_test_message("case %" G_GINT64_FORMAT " %s: %s", json_object_get_int_member(c, "index"),
                   json_object_get_string_member(c, "prompt"), why->str);
  g_string_free(why, TRUE);
  g_free(prompt);
  return ok;
}

/* Every case of one set's golden/tokenizer.json, with the set's own model/tokenizer. */
static void test_golden_set(gconstpointer data) {
  const char *set = data;
  char *dir = g_build_filename(set, "model", "tokenizer", NULL);
  GError *err = NULL;
  I2vTokenizer *tok = i2v_tokenizer_load(dir, &err);
  g_assert_no_error(err);
  JsonNode *root = golden_json(set, "tokenizer.json");
  JsonObject *golden = json_node_get_object(root);
  g_assert_cmpint(i2v_tokenizer_max_length(tok), ==,
                  json_object_get_int_member(golden, "model_max_length"));
  JsonArray *cases = json_object_get_array_member(golden, "cases");
  guint n_cases = json_array_get_length(cases), n_ok = 0;
  g_assert_cmpuint(n_cases, >, 0);
  for (guint i = 0; i < n_cases; i++)
    n_ok += check_case(tok, json_array_get_object_element(cases, i));
  g_test_message("%s: %u of %u cases match", set, n_ok, n_cases);
  g_assert_cmpuint(n_ok, ==, n_cases);
  json_node_unref(root);
  i2v_tokenizer_free(tok);
  g_free(dir);
}

static void test_invalid_utf8(gconstpointer data) {
  char *dir = g_build_filename(data, "model", "tokenizer", NULL);
  I2vTokenizer *tok = i2v_tokenizer_load(dir, NULL);
  g_assert_nonnull(tok);
  GError *err = NULL;
  int n = -1;
  g_assert_null(i2v_tokenizer_encode(tok, "caf\xc3 au lait", &n, &err));
  g_assert_error(err, I2V_ERROR, I2V_ERROR_INVALID);
  g_assert_nonnull(strstr(err->message, "UTF-8"));
  g_assert_nonnull(strstr(err->message, "offset 3"));
  g_error_free(err);
  i2v_tokenizer_free(tok);
  g_free(dir);
}

/* ---- broken tokenizer folders: a copy of a good one with one file replaced or removed ---- */

static const char *const tokenizer_files[] = {"vocab.json", "merges.txt", "tokenizer_config.json"};

/* A fresh temp dir holding copies of the tokenizer files of the first golden set. */
static char *copy_good_tokenizer(void) {
  char **sets = golden_sets_with("tokenizer.json");
  g_assert_nonnull(sets[0]);
  char *tmp = g_dir_make_tmp("i2v-tok-XXXXXX", NULL);
  g_assert_nonnull(tmp);
  for (gsize i = 0; i < G_N_ELEMENTS(tokenizer_files); i++) {
    char *src = g_build_filename(sets[0], "model", "tokenizer", tokenizer_files[i], NULL);
    char *dst = g_build_filename(tmp, tokenizer_files[i], NULL);
    char *text;
    gsize len;
    g_assert_true(g_file_get_contents(src, &text, &len, NULL));
    g_assert_true(g_file_set_contents(dst, text, len, NULL));
    g_free(text);
    g_free(src);
    g_free(dst);
  }
  g_strfreev(sets);
  return tmp;
}

static void remove_tokenizer_copy(char *tmp) {
  for (gsize i = 0; i < G_N_ELEMENTS(tokenizer_files); i++) {
    char *path = g_build_filename(tmp, tokenizer_files[i], NULL);
    g_remove(path);
    g_free(path);
  }
  g_assert_cmpint(g_rmdir(tmp), ==, 0);
  g_free(tmp);
}

/* A way to break a good tokenizer folder and what the load error must then say. */
typedef struct {
  const char *name;
  const char *file;                /* the file replaced (or removed when edit is NULL) */
  char *(*edit)(const char *good); /* the broken content from the good one (g_free) */
  I2vErrorCode code;
  const char *mentions; /* besides the file's path */
} Breakage;

/* Replaces the first occurrence of from in text by to: new string. */
static char *replace_once(const char *text, const char *from, const char *to) {
  const char *at = strstr(text, from);
  g_assert_nonnull(at);
  return g_strdup_printf("%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
}

static char *vocab_not_object(const char *good) {
  (void)good;
  return g_strdup("[\"a\", 1]");
}
static char *vocab_string_id(const char *good) {
  return replace_once(good, "\"in</w>\": ", "\"in</w>\": [], \"in-was</w>\": ");
}
static char *vocab_drop_in(const char *good) {
  return replace_once(good, "\"in\": ", "\"in-renamed\": ");
}
static char *vocab_drop_endoftext(const char *good) {
  return replace_once(good, "\"<|endoftext|>\"", "\"<|end-of-text|>\"");
}
static char *merges_three_symbols(const char *good) {
  return replace_once(good, "\ni n\n", "\ni n x\n");
}
static char *merges_no_header(const char *good) {
  return g_strdup(strchr(good, '\n') + 1);
}
static char *config_no_max_length(const char *good) {
  return replace_once(good, "\"model_max_length\"", "\"max_len\"");
}
static char *config_bad_eos(const char *good) {
  return replace_once(good, "\"eos_token\": \"<|endoftext|>\"", "\"eos_token\": \"<|eot|>\"");
}
static char *config_no_bos(const char *good) {
  return replace_once(good, "\"bos_token\"", "\"bos_tokn\"");
}
/* merges.txt cut after the first third of its lines, or to the header line alone: accepted before
 * (only the merges present were used), tokenizing differently without a word. */
static char *merges_keep_lines(const char *good, int keep) {
  const char *end = good;
  for (int i = 0; i < keep && end != NULL; i++) end = strchr(end, '\n') + 1;
  return g_strndup(good, end - good);
}
static char *merges_first_third(const char *good) {
  int lines = 0;
  for (const char *p = good; (p = strchr(p, '\n')) != NULL; p++) lines++;
  return merges_keep_lines(good, lines / 3);
}
static char *merges_header_only(const char *good) {
  return merges_keep_lines(good, 1);
}
/* A vocab value nested 100000 arrays deep (a stack overflow in json-glib before), and a vocab
 * with a token twice (json-glib kept the second id). */
static char *vocab_nested(const char *good) {
  GString *deep = g_string_new("\"in</w>\": ");
  for (int i = 0; i < 100000; i++) g_string_append_c(deep, '[');
  for (int i = 0; i < 100000; i++) g_string_append_c(deep, ']');
  g_string_append(deep, ", \"in-was</w>\": ");
  char *bad = replace_once(good, "\"in</w>\": ", deep->str);
  g_string_free(deep, TRUE);
  return bad;
}
static char *vocab_duplicate(const char *good) {
  return replace_once(good, "\"in\": ", "\"in\": 0, \"in\": ");
}
static char *config_empty(const char *good) {
  (void)good;
  return g_strdup("");
}
static char *not_json(const char *good) {
  (void)good;
  return g_strdup("{\"unterminated\": ");
}

static const Breakage breakages[] = {
    {"missing-vocab", "vocab.json", NULL, I2V_ERROR_MISSING, "not found"},
    {"missing-merges", "merges.txt", NULL, I2V_ERROR_MISSING, "not found"},
    {"missing-config", "tokenizer_config.json", NULL, I2V_ERROR_MISSING, "not found"},
    {"vocab-not-json", "vocab.json", not_json, I2V_ERROR_FORMAT, "invalid JSON"},
    {"vocab-not-object", "vocab.json", vocab_not_object, I2V_ERROR_FORMAT, "JSON object"},
    {"vocab-string-id", "vocab.json", vocab_string_id, I2V_ERROR_FORMAT, "'in</w>'"},
    {"merge-symbol-not-in-vocab", "merges.txt", vocab_drop_in, I2V_ERROR_FORMAT, "'in'"},
    {"merges-three-symbols", "merges.txt", merges_three_symbols, I2V_ERROR_FORMAT, "line 2"},
    {"merges-no-header", "merges.txt", merges_no_header, I2V_ERROR_FORMAT, "line 1"},
    {"special-not-in-vocab", "tokenizer_config.json", vocab_drop_endoftext, I2V_ERROR_CONFIG,
     "'<|endoftext|>'"},
    {"config-not-json", "tokenizer_config.json", not_json, I2V_ERROR_FORMAT, "invalid JSON"},
    {"config-no-max-length", "tokenizer_config.json", config_no_max_length, I2V_ERROR_CONFIG,
     "'model_max_length'"},
    {"config-eos-unknown", "tokenizer_config.json", config_bad_eos, I2V_ERROR_CONFIG,
     "eos_token '<|eot|>'"},
    {"config-no-bos", "tokenizer_config.json", config_no_bos, I2V_ERROR_CONFIG, "'bos_token'"},
    {"merges-first-third", "merges.txt", merges_first_third, I2V_ERROR_FORMAT,
     "truncated merges.txt"},
    {"merges-header-only", "merges.txt", merges_header_only, I2V_ERROR_FORMAT, ": 0 merges"},
    {"vocab-nested", "vocab.json", vocab_nested, I2V_ERROR_FORMAT, "nested deeper than 64"},
    {"vocab-duplicate", "vocab.json", vocab_duplicate, I2V_ERROR_FORMAT, "'in' appears twice"},
    {"config-empty", "tokenizer_config.json", config_empty, I2V_ERROR_FORMAT, "empty"},
};

/* Breaks a copy of a good tokenizer as b says and checks the load error names the culprit.
 * Two breakages edit vocab.json yet blame another file (the one using the missing token). */
static void test_breakage(gconstpointer data) {
  const Breakage *b = data;
  char *tmp = copy_good_tokenizer();
  gboolean edits_vocab = b->edit == vocab_drop_in || b->edit == vocab_drop_endoftext;
  char *target = g_build_filename(tmp, edits_vocab ? "vocab.json" : b->file, NULL);
  if (b->edit == NULL) {
    g_assert_cmpint(g_remove(target), ==, 0);
  } else {
    char *good;
    g_assert_true(g_file_get_contents(target, &good, NULL, NULL));
    char *bad = b->edit(good);
    g_assert_true(g_file_set_contents(target, bad, -1, NULL));
    g_free(good);
    g_free(bad);
  }
  GError *err = NULL;
  I2vTokenizer *tok = i2v_tokenizer_load(tmp, &err);
  g_assert_null(tok);
  g_assert_nonnull(err);
  g_test_message("%s: %s", b->name, err->message);
  char *blamed = g_build_filename(tmp, b->file, NULL);
  g_assert_nonnull(strstr(err->message, blamed));
  g_assert_nonnull(strstr(err->message, b->mentions));
  g_assert_error(err, I2V_ERROR, (gint)b->code);
  g_error_free(err);
  g_free(blamed);
  g_free(target);
  remove_tokenizer_copy(tmp);
}

/* Each tokenizer file replaced by a FIFO (open() blocked forever before) or a directory ("not
 * found" before) fails naming the file and what it is. */
static void test_not_regular(void) {
  for (gsize i = 0; i < G_N_ELEMENTS(tokenizer_files); i++)
    for (int fifo = 0; fifo < 2; fifo++) {
      char *tmp = copy_good_tokenizer();
      char *path = g_build_filename(tmp, tokenizer_files[i], NULL);
      g_assert_cmpint(g_remove(path), ==, 0);
      g_assert_cmpint(fifo ? mkfifo(path, 0600) : g_mkdir(path, 0700), ==, 0);
      GError *err = NULL;
      g_assert_null(i2v_tokenizer_load(tmp, &err));
      golden_assert_error(&err, I2V_ERROR_IO,
                          (const char *[]){path, fifo ? "is a FIFO" : "is a directory", NULL});
      g_free(path);
      remove_tokenizer_copy(tmp);
    }
}

/* Reference BPE on strings, the textbook loop: merge the lowest-ranked adjacent pair at every
 * occurrence, left to right, until no pair has a rank. word holds lower-case ASCII letters (their
 * own byte symbols); ranks maps "left right" to rank + 1. Returns the symbols (g_strfreev). */
static char **naive_bpe(GHashTable *ranks, const char *word) {
  GPtrArray *sym = g_ptr_array_new();
  for (const char *c = word; *c != '\0'; c++)
    g_ptr_array_add(sym, c[1] == '\0' ? g_strdup_printf("%c</w>", *c) : g_strndup(c, 1));
  for (;;) {
    int best = 0; /* rank + 1 */
    for (guint i = 0; i + 1 < sym->len; i++) {
      char *pair = g_strdup_printf("%s %s", (char *)sym->pdata[i], (char *)sym->pdata[i + 1]);
      int r = GPOINTER_TO_INT(g_hash_table_lookup(ranks, pair));
      if (r > 0 && (best == 0 || r < best)) best = r;
      g_free(pair);
    }
    if (best == 0) break;
    GPtrArray *next = g_ptr_array_new();
    for (guint i = 0; i < sym->len;) {
      char *pair = i + 1 < sym->len
                       ? g_strdup_printf("%s %s", (char *)sym->pdata[i], (char *)sym->pdata[i + 1])
                       : NULL;
      if (pair != NULL && GPOINTER_TO_INT(g_hash_table_lookup(ranks, pair)) == best) {
        g_ptr_array_add(next, g_strconcat(sym->pdata[i], sym->pdata[i + 1], NULL));
        g_free(sym->pdata[i]);
        g_free(sym->pdata[i + 1]);
        i += 2;
      } else {
        g_ptr_array_add(next, sym->pdata[i++]);
      }
      g_free(pair);
    }
    g_ptr_array_free(sym, TRUE);
    sym = next;
  }
  g_ptr_array_add(sym, NULL);
  return (char **)g_ptr_array_free(sym, FALSE);
}

/* The merge ranks of dir/merges.txt: "left right" → rank + 1 (new table). */
static GHashTable *read_ranks(const char *dir) {
  char *path = g_build_filename(dir, "merges.txt", NULL), *text;
  g_assert_true(g_file_get_contents(path, &text, NULL, NULL));
  char **lines = g_strsplit(text, "\n", -1);
  GHashTable *ranks = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  for (int i = 1; lines[i] != NULL; i++)
    if (lines[i][0] != '\0' && !g_hash_table_contains(ranks, lines[i]))
      g_hash_table_insert(ranks, g_strdup(lines[i]), GINT_TO_POINTER(i));
  g_strfreev(lines);
  g_free(text);
  g_free(path);
  return ranks;
}

/* The heap-based BPE gives the textbook loop's symbols on words of every shape (random letters,
 * a few letters repeated, one letter repeated: many equal pairs overlapping), and a 32768-letter
 * word (31 s in the textbook loop) keeps the padded encoding equal to the start of the full one. */
static void test_long_words(gconstpointer data) {
  char *dir = g_build_filename(data, "model", "tokenizer", NULL);
  I2vTokenizer *tok = i2v_tokenizer_load(dir, NULL);
  g_assert_nonnull(tok);
  GHashTable *ranks = read_ranks(dir);
  GRand *rand = g_rand_new_with_seed(7);
  const char *alphabets[] = {"abcdefghijklmnopqrstuvwxyz", "aeinrst", "ab", "a"};
  for (int k = 0; k < 200; k++) {
    const char *alphabet = alphabets[k % G_N_ELEMENTS(alphabets)];
    int len = g_rand_int_range(rand, 1, 300);
    char *word = g_malloc(len + 1);
    for (int i = 0; i < len; i++)
      word[i] = alphabet[g_rand_int_range(rand, 0, (int)strlen(alphabet))];
    word[len] = '\0';
    char **want = naive_bpe(ranks, word), **got = i2v_tokenizer_bpe_tokens(tok, word, NULL);
    g_assert_nonnull(got);
    if (!g_strv_equal((const char *const *)want, (const char *const *)got))
      g_error("word %s: BPE differs from the reference loop", word);
    g_strfreev(want);
    g_strfreev(got);
    g_free(word);
  }
  int len = 32768, n = 0, max = i2v_tokenizer_max_length(tok);
  char *word = g_malloc(len + 1);
  for (int i = 0; i < len; i++) word[i] = (char)('a' + g_rand_int_range(rand, 0, 26));
  word[len] = '\0';
  GError *err = NULL;
  int64_t *all = i2v_tokenizer_encode(tok, word, &n, &err), *padded = g_new(int64_t, max);
  gboolean truncated = FALSE;
  g_assert_true(i2v_tokenizer_encode_padded(tok, word, padded, &truncated, &err));
  g_assert_no_error(err);
  g_assert_true(truncated);
  g_assert_cmpint(n, >, max);
  g_assert_cmpmem(padded, sizeof(int64_t) * (max - 1), all, sizeof(int64_t) * (max - 1));
  g_assert_cmpint(padded[max - 1], ==, all[n - 1]); /* eos */
  g_free(padded);
  g_free(all);
  g_free(word);
  g_rand_free(rand);
  g_hash_table_unref(ranks);
  i2v_tokenizer_free(tok);
  g_free(dir);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  char **sets = golden_sets_with("tokenizer.json");
  for (char **s = sets; *s != NULL; s++) {
    char *base = g_path_get_basename(*s);
    char *path = g_strdup_printf("/tokenizer/golden/%s", base);
    g_test_add_data_func(path, *s, test_golden_set);
    g_free(path);
    path = g_strdup_printf("/tokenizer/invalid-utf8/%s", base);
    g_test_add_data_func(path, *s, test_invalid_utf8);
    g_free(path);
    path = g_strdup_printf("/tokenizer/long-words/%s", base);
    g_test_add_data_func(path, *s, test_long_words);
    g_free(path);
    g_free(base);
  }
  for (gsize i = 0; i < G_N_ELEMENTS(breakages); i++) {
    char *path = g_strdup_printf("/tokenizer/error/%s", breakages[i].name);
    g_test_add_data_func(path, &breakages[i], test_breakage);
    g_free(path);
  }
  g_test_add_func("/tokenizer/error/not-regular", test_not_regular);
  int status = g_test_run();
  g_strfreev(sets);
  return status;
}
