/* Loading JSON from files the engine does not control (safetensors headers, config.json,
 * vocab.json, shard indexes, tokenizer / scheduler / preprocessor configs). Every JSON parse of
 * the engine goes through here, so the rules hold everywhere:
 *  - nesting deeper than I2V_JSON_MAX_DEPTH is refused by a pre-scan before json-glib sees the
 *    text (json-glib's parser recurses once per level: 200000 '[' overflow the stack);
 *  - comments and single-quoted strings (json-glib extensions, not JSON) are refused: they could
 *    hide brackets from the pre-scan;
 *  - the root must be an object (every file the engine reads is one);
 *  - a key twice in one object is refused (json-glib silently keeps the last: a second "dtype" or
 *    a second tensor of the same name must not win unnoticed);
 *  - empty or blank text is an error, not json-glib's Json-CRITICAL;
 *  - syntax errors give the line, column and kind of the error, never the text around it (the
 *    file may not be JSON at all: its bytes are not repeated in a message). */
#pragma once

#include <json-glib/json-glib.h>

G_BEGIN_DECLS

/* Deepest nesting of arrays and objects accepted (the files above need 4). */
#define I2V_JSON_MAX_DEPTH 64

/* Largest JSON file read (vocab.json is 1 MB; a safetensors header has its own limit). */
#define I2V_JSON_MAX_FILE_BYTES ((gsize)64 << 20)

/* Parses len bytes of text as a JSON object under the rules above; label names the text in
 * messages (a path, or "PATH: header"). Returns a new reference (json_object_unref) or NULL with
 * an I2V_ERROR_FORMAT error. */
JsonObject *i2v_json_parse_object(const char *text, gsize len, const char *label, GError **error);

/* Reads the regular file path (input_file.h, at most I2V_JSON_MAX_FILE_BYTES) and parses it with
 * i2v_json_parse_object. Returns a new reference or NULL with an error naming path. */
JsonObject *i2v_json_load_object(const char *path, GError **error);

G_END_DECLS
