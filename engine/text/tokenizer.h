/* The CLIP byte-level BPE tokenizer (transformers' CLIPTokenizer without ftfy), read from a
 * diffusers tokenizer/ folder: vocab.json, merges.txt, tokenizer_config.json. */
#pragma once

#include <glib.h>
#include <stdint.h>

G_BEGIN_DECLS

typedef struct I2vTokenizer I2vTokenizer;

/* Loads the tokenizer from dir (the tokenizer/ folder). merges.txt must hold as many merges as
 * the vocab has room for (vocab size − 2·256 byte symbols − the distinct special tokens): a
 * truncated file is an error, not a different tokenization. Errors name the file and the line or
 * key at fault. Returns a new tokenizer (free with i2v_tokenizer_free) or NULL. */
I2vTokenizer *i2v_tokenizer_load(const char *dir, GError **error);

/* Frees a tokenizer (NULL allowed). */
void i2v_tokenizer_free(I2vTokenizer *tok);

/* model_max_length from tokenizer_config.json (77 for CLIP). */
int i2v_tokenizer_max_length(const I2vTokenizer *tok);

/* Token ids of text as tokenizer(text).input_ids: [bos, BPE ids..., eos], no padding and no
 * truncation. Returns a new array of *n ids (g_free). text must be valid UTF-8 (else NULL with
 * an I2V_ERROR_INVALID error). */
int64_t *i2v_tokenizer_encode(const I2vTokenizer *tok, const char *text, int *n, GError **error);

/* What the pipeline feeds the text encoder: max_length ids, BPE ids truncated to max_length - 2,
 * eos appended, padded with the pad id. ids must hold max_length values. Sets *truncated when
 * ids were dropped. Encoding stops once the ids are known (a long prompt costs no more than its
 * first words). */
gboolean i2v_tokenizer_encode_padded(const I2vTokenizer *tok, const char *text, int64_t *ids,
                                     gboolean *truncated, GError **error);

/* The BPE strings of text (byte-level alphabet, "</w>" word ends), without bos/eos: a new
 * NULL-terminated strv (g_strfreev). For tests and debugging. */
char **i2v_tokenizer_bpe_tokens(const I2vTokenizer *tok, const char *text, GError **error);

G_END_DECLS
