/* The CLIP byte-level BPE tokenizer: transformers' CLIPTokenizer on its default path without
 * ftfy: special tokens split out of the raw text, BERT-style clean-up,
 * NFC, Python lower-casing, the CLIP pre-tokeniser regex, GPT-2's byte alphabet and BPE by
 * merge rank. Symbols are handled as vocab ids throughout: every byte symbol and every merge
 * result is checked to be in the vocab at load time, so encoding cannot meet an unknown token. */
#include "tokenizer.h"

#include <json-glib/json-glib.h>
#include <limits.h>
#include <string.h>

#include <i2v/error.h>
#include "echo.h"
#include "input_file.h"
#include "json_load.h"

/* transformers' CLIPTokenizer.pat (compiled caseless, like there): the special strings, English
 * contractions, runs of letters, single digits, runs of anything else but whitespace. */
#define CLIP_PRETOKENIZER_PATTERN                                                                  \
  "<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|"              \
  "[^\\s\\p{L}\\p{N}]+"

/* Largest merges.txt read (CLIP's is 0.5 MB). */
#define MAX_MERGES_FILE_BYTES ((gsize)64 << 20)

/* Most words whose BPE is kept (a service sees endless new words; the cache starts over when
 * full). */
#define CACHE_MAX_WORDS 16384

/* Marks the last symbol of a word in the vocab and the merges. */
#define END_OF_WORD "</w>"

/* bos, eos, pad and unk: the keys of tokenizer_config.json naming the special tokens. */
#define N_SPECIAL_KEYS 4

struct I2vTokenizer {
  GHashTable *vocab;         /* token string (owned) → GINT_TO_POINTER(id) */
  const char **id_tokens;    /* id → token string (the vocab's keys); ids are 0..vocab size-1 */
  guint64 *merge_pairs;      /* rank → (left id << 32) | right id */
  int *merge_results;        /* rank → id of left + right */
  GHashTable *merge_ranks;   /* &merge_pairs[rank] → GINT_TO_POINTER(rank + 1) */
  int byte_symbols[256];     /* byte → id of its alphabet character */
  int byte_symbols_eow[256]; /* byte → id of its alphabet character + "</w>" (word end) */
  /* the distinct special token strings (vocab keys), NULL-terminated */
  const char *special_tokens[N_SPECIAL_KEYS + 1];
  int bos_id, eos_id, pad_id;
  int max_length;
  GRegex *pretokenizer;
  GMutex cache_lock; /* guards cache: encoding is otherwise read-only and thread-safe */
  GHashTable *cache; /* pre-token (owned) → GArray of int ids, the BPE results so far */
};

/* ---- loading ---- */

/* vocab.json: an object mapping each token string to its id; the ids must be 0..size-1, each
 * used once, so that id_tokens can invert it. */
static gboolean load_vocab(I2vTokenizer *tok, const char *path, GError **error) {
  JsonObject *obj = i2v_json_load_object(path, error);
  if (obj == NULL) return FALSE;
  guint size = json_object_get_size(obj);
  tok->id_tokens = g_new0(const char *, size);
  gboolean ok = TRUE;
  JsonObjectIter iter;
  const char *token;
  JsonNode *node;
  json_object_iter_init(&iter, obj);
  while (ok && json_object_iter_next(&iter, &token, &node)) {
    I2vEcho a, b;
    gint64 id = -1;
    if (JSON_NODE_HOLDS_VALUE(node) && json_node_get_value_type(node) == G_TYPE_INT64)
      id = json_node_get_int(node);
    if (id < 0 || id >= size) {
      g_set_error(error, I2V_ERROR, I2V_ERROR_FORMAT,
                  "%s: key '%s' must map to an integer id in [0, %u) (the vocab size)", path,
                  i2v_echo(token, &a), size);
      ok = FALSE;
    } else if (tok->id_tokens[id] != NULL) {
      g_set_error(error, I2V_ERROR, I2V_ERROR_FORMAT,
                  "%s: id %" G_GINT64_FORMAT " is used by both '%s' and '%s'", path, id,
                  i2v_echo(tok->id_tokens[id], &a), i2v_echo(token, &b));
      ok = FALSE;
    } else {
      char *key = g_strdup(token);
      g_hash_table_insert(tok->vocab, key, GINT_TO_POINTER((int)id));
      tok->id_tokens[id] = key;
    }
  }
  json_object_unref(obj);
  return ok;
}

/* The id of token, or -1 when the vocab lacks it. */
static int vocab_id(const I2vTokenizer *tok, const char *token) {
  gpointer value;
  return g_hash_table_lookup_extended(tok->vocab, token, NULL, &value) ? GPOINTER_TO_INT(value)
                                                                       : -1;
}

/* GPT-2's bytes_to_unicode: printable bytes stand for themselves, the 68 others map in
 * increasing order to U+0100, U+0101, ... Looks up both forms of each byte's symbol (plain and
 * word-final) in the vocab. */
static gboolean load_byte_symbols(I2vTokenizer *tok, const char *vocab_path, GError **error) {
  int n_unprintable = 0;
  for (int b = 0; b < 256; b++) {
    gboolean printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    gunichar c = printable ? (gunichar)b : (gunichar)(256 + n_unprintable++);
    char sym[8 + sizeof END_OF_WORD] = {0};
    int len = g_unichar_to_utf8(c, sym);
    tok->byte_symbols[b] = vocab_id(tok, sym);
    strcpy(sym + len, END_OF_WORD);
    tok->byte_symbols_eow[b] = vocab_id(tok, sym);
    if (tok->byte_symbols[b] < 0 || tok->byte_symbols_eow[b] < 0) {
      g_set_error(error, I2V_ERROR, I2V_ERROR_FORMAT,
                  "%s: the symbol of byte 0x%02x ('%.*s' or '%s') is missing", vocab_path, b, len,
                  sym, sym);
      return FALSE;
    }
  }
  return TRUE;
}

/* Splits line at ASCII whitespace in place (like Python's str.split()) into at most max fields;
 * returns the number of fields found, counting past max. */
static int split_fields(char *line, char **fields, int max) {
  int n = 0;
  for (char *p = line; *p != '\0';) {
    while (g_ascii_isspace(*p)) *p++ = '\0';
    if (*p == '\0') break;
    if (n < max) fields[n] = p;
    n++;
    while (*p != '\0' && !g_ascii_isspace(*p)) p++;
  }
  return n;
}

/* Ends the line starting at line (in place) and returns the next one, NULL after the last.
 * (Line by line rather than g_strsplit(), whose strstr() calls are quadratic under ASan.) */
static char *split_line(char *line) {
  char *end = strchr(line, '\n');
  if (end == NULL) return NULL;
  *end = '\0';
  return end + 1;
}

/* merges.txt: a "#version" header line, then one "left right" merge per line, the rank being
 * its index; both symbols and their concatenation must be vocab tokens. The vocab holds one
 * result per merge (see i2v_tokenizer_load), so the file must have at least n_merges merges (a
 * truncated file would tokenize differently without a word); like transformers, lines past
 * n_merges are not used. */
static gboolean load_merges(I2vTokenizer *tok, const char *path, int n_merges, GError **error) {
  GBytes *bytes = i2v_input_read(path, MAX_MERGES_FILE_BYTES, error);
  if (bytes == NULL) return FALSE;
  gsize len;
  const char *data = g_bytes_get_data(bytes, &len);
  char *text = g_strndup(data != NULL ? data : "", len); /* NUL-terminated for the line split */
  g_bytes_unref(bytes);
  g_strchomp(text); /* trailing newlines end no merge */
  char *line = text, *next = split_line(text);
  gboolean ok = g_str_has_prefix(line, "#version");
  if (!ok)
    g_set_error(error, I2V_ERROR, I2V_ERROR_FORMAT, "%s line 1: expected the '#version' header",
                path);
  tok->merge_pairs = g_new(guint64, MAX(n_merges, 1));
  tok->merge_results = g_new(int, MAX(n_merges, 1));
  int rank = 0;
  for (int line_no = 2; ok && rank < n_merges && next != NULL; rank++, line_no++) {
    line = next;
    next = split_line(line);
    char *sym[2];
    int n = split_fields(line, sym, 2);
    if (n != 2) {
      g_set_error(error, I2V_ERROR, I2V_ERROR_FORMAT,
                  "%s line %d: expected two symbols separated by a space, found %d", path, line_no,
                  n);
      ok = FALSE;
      break;
    }
    char *joined = g_strconcat(sym[0], sym[1], NULL);
    int left = vocab_id(tok, sym[0]), right = vocab_id(tok, sym[1]), merged = vocab_id(tok, joined);
    const char *missing = left < 0 ? sym[0] : right < 0 ? sym[1] : merged < 0 ? joined : NULL;
    if (missing != NULL) {
      I2vEcho a, b, m;
      g_set_error(error, I2V_ERROR, I2V_ERROR_FORMAT,
                  "%s line %d: merge '%s %s' uses '%s', which is not in vocab.json", path, line_no,
                  i2v_echo(sym[0], &a), i2v_echo(sym[1], &b), i2v_echo(missing, &m));
      ok = FALSE;
    } else {
      tok->merge_pairs[rank] = ((guint64)left << 32) | (guint32)right;
      tok->merge_results[rank] = merged;
      g_hash_table_insert(tok->merge_ranks, &tok->merge_pairs[rank], GINT_TO_POINTER(rank + 1));
    }
    g_free(joined);
  }
  if (ok && rank < n_merges) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_FORMAT,
                "%s: %d merges, but vocab.json's %u tokens need %d (vocab = 2 x 256 byte symbols + "
                "one token per merge + %d special tokens): a truncated merges.txt?",
                path, rank, g_hash_table_size(tok->vocab), n_merges,
                (int)g_strv_length((char **)tok->special_tokens));
    ok = FALSE;
  }
  g_free(text);
  return ok;
}

/* A special token of tokenizer_config.json: a plain string or an AddedToken object with a
 * "content" string. Returns it (owned by obj) or NULL. */
static const char *config_token(JsonObject *obj, const char *key) {
  JsonNode *node = json_object_get_member(obj, key);
  if (node != NULL && JSON_NODE_HOLDS_OBJECT(node))
    node = json_object_get_member(json_node_get_object(node), "content");
  if (node == NULL || !JSON_NODE_HOLDS_VALUE(node) ||
      json_node_get_value_type(node) != G_TYPE_STRING)
    return NULL;
  return json_node_get_string(node);
}

/* tokenizer_config.json: model_max_length and the bos / eos / pad / unk token strings, which
 * must be vocab tokens. unk is checked but never used: no lookup can miss (see the top). */
static gboolean load_config(I2vTokenizer *tok, const char *path, GError **error) {
  JsonObject *obj = i2v_json_load_object(path, error);
  if (obj == NULL) return FALSE;
  gboolean ok = TRUE;
  JsonNode *max = json_object_get_member(obj, "model_max_length");
  if (max == NULL || !JSON_NODE_HOLDS_VALUE(max) || json_node_get_value_type(max) != G_TYPE_INT64 ||
      json_node_get_int(max) < 2 || json_node_get_int(max) > 1 << 20) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_CONFIG,
                "%s: key 'model_max_length' must be an integer in [2, %d]", path, 1 << 20);
    ok = FALSE;
  } else {
    tok->max_length = (int)json_node_get_int(max);
  }
  static const char *const keys[N_SPECIAL_KEYS] = {"bos_token", "eos_token", "pad_token",
                                                   "unk_token"};
  int ids[N_SPECIAL_KEYS];
  int n_distinct = 0;
  for (int k = 0; ok && k < N_SPECIAL_KEYS; k++) {
    const char *token = config_token(obj, keys[k]);
    ids[k] = token != NULL ? vocab_id(tok, token) : -1;
    if (token == NULL) {
      g_set_error(error, I2V_ERROR, I2V_ERROR_CONFIG, "%s: key '%s' is missing or not a string",
                  path, keys[k]);
      ok = FALSE;
    } else if (ids[k] < 0) {
      I2vEcho shown;
      g_set_error(error, I2V_ERROR, I2V_ERROR_CONFIG, "%s: %s '%s' is not in vocab.json", path,
                  keys[k], i2v_echo(token, &shown));
      ok = FALSE;
    } else if (!g_strv_contains(tok->special_tokens, token)) {
      tok->special_tokens[n_distinct++] = tok->id_tokens[ids[k]];
    }
  }
  if (ok) {
    tok->bos_id = ids[0];
    tok->eos_id = ids[1];
    tok->pad_id = ids[2];
  }
  json_object_unref(obj);
  return ok;
}

I2vTokenizer *i2v_tokenizer_load(const char *dir, GError **error) {
  I2vTokenizer *tok = g_new0(I2vTokenizer, 1);
  tok->vocab = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  tok->merge_ranks = g_hash_table_new(g_int64_hash, g_int64_equal);
  tok->cache =
      g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify)g_array_unref);
  g_mutex_init(&tok->cache_lock);
  char *vocab_path = g_build_filename(dir, "vocab.json", NULL);
  char *merges_path = g_build_filename(dir, "merges.txt", NULL);
  char *config_path = g_build_filename(dir, "tokenizer_config.json", NULL);
  gboolean ok = load_vocab(tok, vocab_path, error) && load_byte_symbols(tok, vocab_path, error) &&
                load_config(tok, config_path, error);
  if (ok) {
    /* CLIP's vocab is the 256 byte symbols, the same 256 with "</w>", one result per merge and
     * the distinct special tokens (49408 = 512 + 48894 merges + <|startoftext|>, <|endoftext|>):
     * that fixes how many merges are in use. */
    int n_special = (int)g_strv_length((char **)tok->special_tokens);
    int n_merges = (int)g_hash_table_size(tok->vocab) - 2 * 256 - n_special;
    if (n_merges < 0) {
      g_set_error(error, I2V_ERROR, I2V_ERROR_FORMAT,
                  "%s: %u tokens, fewer than the 2 x 256 byte symbols and %d special tokens a CLIP "
                  "vocab holds",
                  vocab_path, g_hash_table_size(tok->vocab), n_special);
      ok = FALSE;
    }
    ok = ok && load_merges(tok, merges_path, n_merges, error);
  }
  if (ok) {
    GError *err = NULL;
    tok->pretokenizer =
        g_regex_new(CLIP_PRETOKENIZER_PATTERN, G_REGEX_CASELESS | G_REGEX_OPTIMIZE, 0, &err);
    if (tok->pretokenizer == NULL) { /* a GLib without Unicode properties: nothing to fix here */
      g_set_error(error, I2V_ERROR, I2V_ERROR_BACKEND, "tokenizer regex: %s", err->message);
      g_error_free(err);
      ok = FALSE;
    }
  }
  g_free(vocab_path);
  g_free(merges_path);
  g_free(config_path);
  if (!ok) {
    i2v_tokenizer_free(tok);
    return NULL;
  }
  return tok;
}

void i2v_tokenizer_free(I2vTokenizer *tok) {
  if (tok == NULL) return;
  g_hash_table_unref(tok->vocab);
  g_free(tok->id_tokens);
  g_hash_table_unref(tok->merge_ranks);
  g_free(tok->merge_pairs);
  g_free(tok->merge_results);
  if (tok->pretokenizer != NULL) g_regex_unref(tok->pretokenizer);
  g_hash_table_unref(tok->cache);
  g_mutex_clear(&tok->cache_lock);
  g_free(tok);
}

int i2v_tokenizer_max_length(const I2vTokenizer *tok) {
  return tok->max_length;
}

/* ---- text normalisation (BERT's BasicTokenizer as CLIPTokenizer configures it) ---- */

/* The CJK Unified Ideograph blocks BERT puts spaces around (not Hiragana, Katakana or Hangul). */
static gboolean is_cjk_ideograph(gunichar c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
         (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
         (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/* Unicode category C* (Cc, Cf, Cs, Co, Cn). */
static gboolean is_other_category(gunichar c) {
  switch (g_unichar_type(c)) {
  case G_UNICODE_CONTROL:
  case G_UNICODE_FORMAT:
  case G_UNICODE_UNASSIGNED:
  case G_UNICODE_PRIVATE_USE:
  case G_UNICODE_SURROGATE:
    return TRUE;
  default:
    return FALSE;
  }
}

/* Python's str.isspace(): category Zs, Zl, Zp or bidi class WS / B / S (ASCII and U+0085). */
static gboolean is_python_space(gunichar c) {
  GUnicodeType t = g_unichar_type(c);
  return (c >= '\t' && c <= '\r') || (c >= 0x1C && c <= 0x1F) || c == ' ' || c == 0x85 ||
         t == G_UNICODE_SPACE_SEPARATOR || t == G_UNICODE_LINE_SEPARATOR ||
         t == G_UNICODE_PARAGRAPH_SEPARATOR;
}

/* BERT's _clean_text and _tokenize_chinese_chars: drops NUL, U+FFFD and C* characters but tab,
 * newline and carriage return; turns those three and Zs into a space; spaces out CJK ideographs. */
static void clean_text(const char *text, gsize len, GString *out) {
  for (const char *p = text; p < text + len; p = g_utf8_next_char(p)) {
    gunichar c = g_utf8_get_char(p);
    gboolean keep_space = c == '\t' || c == '\n' || c == '\r';
    if (c == 0 || c == 0xFFFD || (is_other_category(c) && !keep_space)) continue;
    if (keep_space || c == ' ' || g_unichar_type(c) == G_UNICODE_SPACE_SEPARATOR) {
      g_string_append_c(out, ' ');
    } else if (is_cjk_ideograph(c)) {
      g_string_append_c(out, ' ');
      g_string_append_unichar(out, c);
      g_string_append_c(out, ' ');
    } else {
      g_string_append_unichar(out, c);
    }
  }
}

/* Unicode's Cased property as the Final_Sigma rule sees it: letters Lu / Ll / Lt and the
 * Other_Lowercase / Other_Uppercase symbols GLib has no category for. (The cased modifier
 * letters and U+0345 are left out: being case-ignorable, the rule skips them first.) */
static gboolean is_cased(gunichar c) {
  GUnicodeType t = g_unichar_type(c);
  return t == G_UNICODE_UPPERCASE_LETTER || t == G_UNICODE_LOWERCASE_LETTER ||
         t == G_UNICODE_TITLECASE_LETTER || c == 0xAA || c == 0xBA ||
         (c >= 0x2160 && c <= 0x217F) ||   /* Roman numerals */
         (c >= 0x24B6 && c <= 0x24E9) ||   /* circled Latin letters */
         (c >= 0x1F130 && c <= 0x1F149) || /* squared, negative circled, negative squared */
         (c >= 0x1F150 && c <= 0x1F169) || (c >= 0x1F170 && c <= 0x1F189);
}

/* Unicode's Case_Ignorable property: marks, format characters, modifiers and the word-internal
 * punctuation of Word_Break MidLetter, MidNumLet and Single_Quote. */
static gboolean is_case_ignorable(gunichar c) {
  static const gunichar word_internal[] = {'\'',   '.',    ':',    0xB7,   0x387,  0x55F,
                                           0x5F4,  0x2018, 0x2019, 0x2024, 0x2027, 0xFE13,
                                           0xFE52, 0xFE55, 0xFF07, 0xFF0E, 0xFF1A};
  switch (g_unichar_type(c)) {
  case G_UNICODE_NON_SPACING_MARK:
  case G_UNICODE_ENCLOSING_MARK:
  case G_UNICODE_FORMAT:
  case G_UNICODE_MODIFIER_LETTER:
  case G_UNICODE_MODIFIER_SYMBOL:
    return TRUE;
  default:
    break;
  }
  for (gsize i = 0; i < G_N_ELEMENTS(word_internal); i++)
    if (c == word_internal[i]) return TRUE;
  return FALSE;
}

/* Python's Final_Sigma rule for the capital sigma at word[i]: final (ς) when a cased letter
 * precedes it and none follows, skipping case-ignorable characters both ways. */
static gboolean is_final_sigma(const gunichar *word, glong len, glong i) {
  glong j = i - 1;
  while (j >= 0 && is_case_ignorable(word[j])) j--;
  if (j < 0 || !is_cased(word[j])) return FALSE;
  j = i + 1;
  while (j < len && is_case_ignorable(word[j])) j++;
  return j == len || !is_cased(word[j]);
}

/* The simple lower-case mapping. g_unichar_tolower() only maps letters (Lu, Lt), so the two
 * blocks of upper-case symbols that have a lower-case form are added here. */
static gunichar simple_lower(gunichar c) {
  if (c >= 0x2160 && c <= 0x216F) return c + 0x10; /* Roman numerals Ⅰ..Ⅿ → ⅰ..ⅿ */
  if (c >= 0x24B6 && c <= 0x24CF) return c + 0x1A; /* circled Ⓐ..Ⓩ → ⓐ..ⓩ */
  return g_unichar_tolower(c);
}

/* Appends Python's str.lower() of the word: the simple lower-case mapping except İ → i + U+0307
 * (the one unconditional multi-character lowering) and Final_Sigma. Written out rather than
 * g_utf8_strdown(), whose result depends on the locale (Turkish: I → ı). */
static void python_lower(const gunichar *word, glong len, GString *out) {
  for (glong i = 0; i < len; i++) {
    gunichar c = word[i];
    if (c == 0x130)
      g_string_append(out, "i\xcc\x87");
    else if (c == 0x3A3)
      g_string_append_unichar(out, is_final_sigma(word, len, i) ? 0x3C2 : 0x3C3);
    else
      g_string_append_unichar(out, simple_lower(c));
  }
}

/* BasicTokenizer.tokenize joined by spaces: clean, NFC, split on whitespace, lower-case each
 * word (no accent stripping, no punctuation split). Returns a new string (g_free). */
static char *normalize_text(const char *text, gsize len) {
  GString *cleaned = g_string_new(NULL);
  clean_text(text, len, cleaned);
  char *nfc = g_utf8_normalize(cleaned->str, cleaned->len, G_NORMALIZE_NFC);
  g_string_free(cleaned, TRUE);
  glong n;
  gunichar *chars = g_utf8_to_ucs4_fast(nfc, -1, &n);
  g_free(nfc);
  GString *out = g_string_new(NULL);
  for (glong i = 0; i < n;) {
    if (is_python_space(chars[i])) {
      i++;
      continue;
    }
    glong start = i;
    while (i < n && !is_python_space(chars[i])) i++;
    if (out->len > 0) g_string_append_c(out, ' ');
    python_lower(chars + start, i - start, out);
  }
  g_free(chars);
  return g_string_free(out, FALSE);
}

/* ---- BPE ---- */

/* The rank of merging the adjacent symbols (left, right), or -1 when no merge joins them. */
static int merge_rank(const I2vTokenizer *tok, int left, int right) {
  guint64 key = ((guint64)left << 32) | (guint32)right;
  return GPOINTER_TO_INT(g_hash_table_lookup(tok->merge_ranks, &key)) - 1;
}

/* One symbol of a word during BPE: a doubly linked list over the word's bytes (a merge keeps the
 * left symbol's slot and unlinks the right one; -1 ends the list, id -1 marks a merged-away
 * slot). */
typedef struct {
  int id, prev, next;
} Symbol;

/* A possible merge: the pair starting at symbol pos, of the given rank. */
typedef struct {
  int rank, pos;
} Candidate;

static gboolean candidate_before(Candidate a, Candidate b) {
  return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos);
}

/* Adds c to the binary min-heap heap (ordered by rank, then position). */
static void heap_push(GArray *heap, Candidate c) {
  g_array_append_val(heap, c);
  Candidate *h = (Candidate *)heap->data;
  for (guint i = heap->len - 1; i > 0 && candidate_before(h[i], h[(i - 1) / 2]); i = (i - 1) / 2) {
    Candidate t = h[i];
    h[i] = h[(i - 1) / 2];
    h[(i - 1) / 2] = t;
  }
}

/* Removes and returns the first candidate of a non-empty heap. */
static Candidate heap_pop(GArray *heap) {
  Candidate *h = (Candidate *)heap->data, top = h[0];
  h[0] = h[heap->len - 1];
  g_array_set_size(heap, heap->len - 1);
  for (guint i = 0;;) {
    guint l = 2 * i + 1, r = l + 1, m = i;
    if (l < heap->len && candidate_before(h[l], h[m])) m = l;
    if (r < heap->len && candidate_before(h[r], h[m])) m = r;
    if (m == i) break;
    Candidate t = h[i];
    h[i] = h[m];
    h[m] = t;
    i = m;
  }
  return top;
}

/* Records the merge of symbol pos with its right neighbour, if the pair has a rank. */
static void add_candidate(const I2vTokenizer *tok, const Symbol *sym, int pos, GArray *to) {
  if (pos < 0 || sym[pos].next < 0) return;
  int rank = merge_rank(tok, sym[pos].id, sym[sym[pos].next].id);
  if (rank >= 0) heap_push(to, (Candidate){rank, pos});
}

/* BPE of one pre-token: its bytes as alphabet symbols, the last one word-final, then the
 * lowest-ranked adjacent pair is merged at every (non-overlapping, left to right) occurrence
 * until no pair has a rank. Returns a new array of the resulting ids.
 *
 * O(n log n) in the word's length n (the textbook loop rescans the word per merge: a 32 K-letter
 * word took 31 s): the ranked pairs wait in a heap ordered by (rank, position). One round pops
 * every candidate of the lowest rank, left to right, skipping those a previous merge changed
 * (their ids no longer make the pair); the pairs a merge creates join the heap only after the
 * round, since the loop above merges every occurrence of one pair before it looks for the next
 * pair. A new pair never equals the one being merged (a merge result is longer than either
 * half), so a round sees exactly the occurrences the loop would. */
static GArray *bpe(const I2vTokenizer *tok, const char *piece, gsize len) {
  int n = (int)len;
  Symbol *sym = g_new(Symbol, MAX(n, 1));
  for (int i = 0; i < n; i++) {
    const int *symbols = i + 1 == n ? tok->byte_symbols_eow : tok->byte_symbols;
    sym[i] = (Symbol){symbols[(guint8)piece[i]], i - 1, i + 1 < n ? i + 1 : -1};
  }
  GArray *heap = g_array_new(FALSE, FALSE, sizeof(Candidate));
  GArray *created = g_array_new(FALSE, FALSE, sizeof(Candidate)); /* this round's new pairs */
  for (int i = 0; i + 1 < n; i++) add_candidate(tok, sym, i, heap);
  while (heap->len > 0) {
    int rank = g_array_index(heap, Candidate, 0).rank;
    while (heap->len > 0 && g_array_index(heap, Candidate, 0).rank == rank) {
      int pos = heap_pop(heap).pos, right = sym[pos].next;
      if (sym[pos].id < 0 || right < 0 ||
          (((guint64)sym[pos].id << 32) | (guint32)sym[right].id) != tok->merge_pairs[rank])
        continue; /* changed by an earlier merge */
      sym[pos].id = tok->merge_results[rank];
      sym[pos].next = sym[right].next;
      if (sym[right].next >= 0) sym[sym[right].next].prev = pos;
      sym[right].id = -1;
      add_candidate(tok, sym, sym[pos].prev, created);
      add_candidate(tok, sym, pos, created);
    }
    for (guint i = 0; i < created->len; i++) heap_push(heap, g_array_index(created, Candidate, i));
    g_array_set_size(created, 0);
  }
  GArray *ids = g_array_sized_new(FALSE, FALSE, sizeof(int), len);
  for (int i = n > 0 ? 0 : -1; i >= 0; i = sym[i].next) g_array_append_val(ids, sym[i].id);
  g_array_unref(created);
  g_array_unref(heap);
  g_free(sym);
  return ids;
}

/* Appends the ids of one pre-token: a special token's id, or its (cached) BPE. */
static void encode_pretoken(I2vTokenizer *tok, const char *piece, gsize len, GArray *ids) {
  char *key = g_strndup(piece, len);
  if (g_strv_contains(tok->special_tokens, key)) {
    int id = vocab_id(tok, key);
    g_array_append_val(ids, id);
    g_free(key);
    return;
  }
  g_mutex_lock(&tok->cache_lock);
  GArray *word = g_hash_table_lookup(tok->cache, key);
  if (word == NULL) {
    word = bpe(tok, piece, len);
    if (g_hash_table_size(tok->cache) >= CACHE_MAX_WORDS) g_hash_table_remove_all(tok->cache);
    g_hash_table_insert(tok->cache, key, word);
  } else {
    g_free(key);
  }
  g_array_append_vals(ids, word->data, word->len);
  g_mutex_unlock(&tok->cache_lock);
}

/* Normalises a stretch of text without special tokens and appends the ids of its pre-tokens,
 * stopping once ids holds more than limit. */
static void encode_plain(I2vTokenizer *tok, const char *text, gsize len, guint limit, GArray *ids) {
  char *normal = normalize_text(text, len);
  GMatchInfo *match;
  g_regex_match(tok->pretokenizer, normal, 0, &match);
  for (; ids->len <= limit && g_match_info_matches(match); g_match_info_next(match, NULL)) {
    int start, end;
    g_match_info_fetch_pos(match, 0, &start, &end);
    encode_pretoken(tok, normal + start, end - start, ids);
  }
  g_match_info_free(match);
  g_free(normal);
}

/* The length of the longest special token starting at p, 0 if none. */
static gsize special_token_at(const I2vTokenizer *tok, const char *p) {
  gsize best = 0;
  for (const char *const *s = tok->special_tokens; *s != NULL; s++) {
    gsize len = strlen(*s);
    if (len > best && strncmp(p, *s, len) == 0) best = len;
  }
  return best;
}

/* The ids of text without bos / eos: special tokens written in the raw text (exact match) are
 * split out first, the text between them is normalised and BPE-encoded. Stops once more than
 * limit ids exist (G_MAXUINT: all of them), so a long prompt costs no more than the tokens the
 * text encoder keeps. Returns a new array of int ids, or NULL with an error if text is not
 * UTF-8. */
static GArray *encode_ids(const I2vTokenizer *ctok, const char *text, guint limit, GError **error) {
  const char *bad;
  if (!g_utf8_validate(text, -1, &bad)) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_INVALID,
                "prompt text is not valid UTF-8 (bad byte 0x%02x at offset %td)", (guint8)*bad,
                bad - text);
    return NULL;
  }
  I2vTokenizer *tok = (I2vTokenizer *)ctok; /* only the locked BPE cache changes */
  GArray *ids = g_array_new(FALSE, FALSE, sizeof(int));
  const char *plain = text;
  for (const char *p = text; *p != '\0' && ids->len <= limit;) {
    gsize special = special_token_at(tok, p);
    if (special == 0) {
      p++;
      continue;
    }
    encode_plain(tok, plain, p - plain, limit, ids);
    if (ids->len <= limit) encode_pretoken(tok, p, special, ids);
    p += special;
    plain = p;
  }
  if (ids->len <= limit) encode_plain(tok, plain, strlen(plain), limit, ids);
  return ids;
}

int64_t *i2v_tokenizer_encode(const I2vTokenizer *tok, const char *text, int *n, GError **error) {
  GArray *bpe_ids = encode_ids(tok, text, G_MAXUINT, error);
  if (bpe_ids == NULL) return NULL;
  *n = (int)bpe_ids->len + 2;
  int64_t *ids = g_new(int64_t, *n);
  ids[0] = tok->bos_id;
  for (guint i = 0; i < bpe_ids->len; i++) ids[i + 1] = g_array_index(bpe_ids, int, i);
  ids[*n - 1] = tok->eos_id;
  g_array_unref(bpe_ids);
  return ids;
}

gboolean i2v_tokenizer_encode_padded(const I2vTokenizer *tok, const char *text, int64_t *ids,
                                     gboolean *truncated, GError **error) {
  int room = tok->max_length - 2;
  GArray *bpe_ids = encode_ids(tok, text, (guint)room, error); /* one more tells truncation */
  if (bpe_ids == NULL) return FALSE;
  int kept = MIN((int)bpe_ids->len, room);
  ids[0] = tok->bos_id;
  for (int i = 0; i < kept; i++) ids[i + 1] = g_array_index(bpe_ids, int, i);
  ids[kept + 1] = tok->eos_id;
  for (int i = kept + 2; i < tok->max_length; i++) ids[i] = tok->pad_id;
  if (truncated != NULL) *truncated = (int)bpe_ids->len > room;
  g_array_unref(bpe_ids);
  return TRUE;
}

char **i2v_tokenizer_bpe_tokens(const I2vTokenizer *tok, const char *text, GError **error) {
  GArray *bpe_ids = encode_ids(tok, text, G_MAXUINT, error);
  if (bpe_ids == NULL) return NULL;
  char **tokens = g_new(char *, bpe_ids->len + 1);
  for (guint i = 0; i < bpe_ids->len; i++)
    tokens[i] = g_strdup(tok->id_tokens[g_array_index(bpe_ids, int, i)]);
  tokens[bpe_ids->len] = NULL;
  g_array_unref(bpe_ids);
  return tokens;
}
