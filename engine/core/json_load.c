/* Bounded JSON loading (see json_load.h). */
#include "json_load.h"

#include <stdio.h>
#include <string.h>

#include <i2v/error.h>
#include "echo.h"
#include "input_file.h"

/* Fails when arrays and objects in text nest deeper than I2V_JSON_MAX_DEPTH. Brackets inside
 * strings do not count; a backslash escapes the next byte (enough to find where a string ends:
 * json-glib checks the escapes themselves). json-glib also takes single-quoted strings and
 * comments, which would hide brackets from this count (or show it brackets json-glib skips), so
 * both are refused here: no model file has them, JSON has neither. */
static gboolean check_structure(const char *text, gsize len, const char *label, GError **error) {
  int depth = 0, line = 1;
  gboolean in_string = FALSE;
  for (gsize i = 0; i < len; i++) {
    char c = text[i];
    if (c == '\n') line++;
    if (in_string) {
      if (c == '\\')
        i++;
      else if (c == '"')
        in_string = FALSE;
    } else if (c == '"') {
      in_string = TRUE;
    } else if (c == '\'' || c == '/') {
      g_set_error(error, I2V_ERROR, I2V_ERROR_FORMAT,
                  "%s: invalid JSON at line %d: a single-quoted string or a comment (neither is "
                  "JSON)",
                  label, line);
      return FALSE;
    } else if (c == '[' || c == '{') {
      if (++depth > I2V_JSON_MAX_DEPTH) {
        g_set_error(error, I2V_ERROR, I2V_ERROR_FORMAT,
                    "%s: JSON nested deeper than %d levels (line %d, byte %" G_GSIZE_FORMAT
                    "); no file of a model needs more",
                    label, I2V_JSON_MAX_DEPTH, line, i);
        return FALSE;
      }
    } else if (c == ']' || c == '}') {
      depth--;
    }
  }
  return TRUE;
}

/* json-glib's parser error codes in words. */
static const char *parse_error_kind(int code) {
  switch (code) {
  case JSON_PARSER_ERROR_TRAILING_COMMA:
    return "a trailing comma";
  case JSON_PARSER_ERROR_MISSING_COMMA:
    return "a missing comma";
  case JSON_PARSER_ERROR_MISSING_COLON:
    return "a missing colon";
  case JSON_PARSER_ERROR_INVALID_BAREWORD:
    return "an invalid value or word";
  case JSON_PARSER_ERROR_EMPTY_MEMBER_NAME:
    return "an empty member name";
  case JSON_PARSER_ERROR_INVALID_DATA:
    return "invalid data (not UTF-8?)";
  default:
    return "a syntax error";
  }
}

/* The error for a json-glib parse failure err: its position and kind. json-glib's own message
 * quotes the text it stopped at, which is left out (see the top). */
static void set_parse_error(const GError *err, const char *label, GError **error) {
  int line = 0, column = 0;
  const char *pos = strstr(err->message, ">:"); /* "<data>:LINE:COLUMN: Parse error: ..." */
  if (err->domain == JSON_PARSER_ERROR && pos != NULL &&
      sscanf(pos + 2, "%d:%d:", &line, &column) == 2)
    g_set_error(error, I2V_ERROR, I2V_ERROR_FORMAT, "%s: invalid JSON at line %d, column %d: %s",
                label, line, column, parse_error_kind(err->code));
  else
    g_set_error(error, I2V_ERROR, I2V_ERROR_FORMAT, "%s: invalid JSON: %s", label,
                parse_error_kind(err->domain == JSON_PARSER_ERROR ? err->code : -1));
}

/* Duplicate-key detection: json-glib emits "object-member" after storing each member, so an
 * object whose size did not grow with the member just stored already had that key. */
typedef struct {
  GHashTable *members; /* JsonObject * → members seen so far */
  char *duplicate;     /* the first key seen twice */
} MemberCount;

static void on_object_member(JsonParser *parser, JsonObject *object, const char *name,
                             gpointer user) {
  (void)parser;
  MemberCount *mc = user;
  guint seen = GPOINTER_TO_UINT(g_hash_table_lookup(mc->members, object)) + 1;
  g_hash_table_insert(mc->members, object, GUINT_TO_POINTER(seen));
  if (seen != json_object_get_size(object) && mc->duplicate == NULL) mc->duplicate = g_strdup(name);
}

/* The JSON type of node in words, for "found an array". */
static const char *node_kind(JsonNode *node) {
  switch (json_node_get_node_type(node)) {
  case JSON_NODE_OBJECT:
    return "an object";
  case JSON_NODE_ARRAY:
    return "an array";
  case JSON_NODE_NULL:
    return "null";
  default:
    return json_node_get_value_type(node) == G_TYPE_STRING ? "a string" : "a number or boolean";
  }
}

JsonObject *i2v_json_parse_object(const char *text, gsize len, const char *label, GError **error) {
  gsize blank = 0;
  while (blank < len && g_ascii_isspace(text[blank])) blank++;
  if (blank == len) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_FORMAT, "%s: empty, expected a JSON object", label);
    return NULL;
  }
  if (len > G_MAXSSIZE) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_FORMAT, "%s: too large for a JSON text", label);
    return NULL;
  }
  if (!check_structure(text, len, label, error)) return NULL;
  JsonParser *parser = json_parser_new();
  MemberCount mc = {g_hash_table_new(NULL, NULL), NULL};
  g_signal_connect(parser, "object-member", G_CALLBACK(on_object_member), &mc);
  GError *err = NULL;
  JsonObject *obj = NULL;
  if (!json_parser_load_from_data(parser, text, (gssize)len, &err)) {
    set_parse_error(err, label, error);
    g_error_free(err);
  } else if (mc.duplicate != NULL) {
    I2vEcho e;
    g_set_error(error, I2V_ERROR, I2V_ERROR_FORMAT,
                "%s: key '%s' appears twice in one JSON object (which one counts is ambiguous)",
                label, i2v_echo(mc.duplicate, &e));
  } else if (!JSON_NODE_HOLDS_OBJECT(json_parser_get_root(parser))) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_FORMAT,
                "%s: expected a JSON object at the top level, found %s", label,
                node_kind(json_parser_get_root(parser)));
  } else {
    obj = json_object_ref(json_node_get_object(json_parser_get_root(parser)));
  }
  g_hash_table_unref(mc.members);
  g_free(mc.duplicate);
  g_object_unref(parser);
  return obj;
}

JsonObject *i2v_json_load_object(const char *path, GError **error) {
  GBytes *bytes = i2v_input_read(path, I2V_JSON_MAX_FILE_BYTES, error);
  if (bytes == NULL) return NULL;
  gsize len;
  const char *text = g_bytes_get_data(bytes, &len);
  JsonObject *obj = i2v_json_parse_object(text != NULL ? text : "", len, path, error);
  g_bytes_unref(bytes);
  return obj;
}
