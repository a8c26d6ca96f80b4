/* Config accessors (config.h): lookup, type, range, and one message shape for every failure. */
#include "config.h"

#include <math.h>

#include <i2v/error.h>

#include "echo.h"

void i2v_config_clear(I2vConfig *c) {
  if (c->json != NULL) json_object_unref(c->json);
  c->json = NULL;
}

/* What a config value is, for messages ("an integer 4294967296", "a string \"x\"", "an array"):
 * g_free. Long strings are cut (i2v_quote_value). */
static char *describe(JsonNode *node) {
  switch (json_node_get_node_type(node)) {
  case JSON_NODE_OBJECT:
    return g_strdup("an object");
  case JSON_NODE_ARRAY:
    return g_strdup("an array");
  case JSON_NODE_NULL:
    return g_strdup("null");
  case JSON_NODE_VALUE:
    break;
  }
  GType t = json_node_get_value_type(node);
  if (t == G_TYPE_STRING) {
    char *q = i2v_quote_value(json_node_get_string(node)), *d = g_strdup_printf("a string %s", q);
    g_free(q);
    return d;
  }
  if (t == G_TYPE_BOOLEAN) return g_strdup(json_node_get_boolean(node) ? "true" : "false");
  if (t == G_TYPE_INT64)
    return g_strdup_printf("the integer %" G_GINT64_FORMAT, json_node_get_int(node));
  if (t == G_TYPE_DOUBLE) return g_strdup_printf("the number %.17g", json_node_get_double(node));
  return g_strdup("an unknown value");
}

/* "file: key[index] is <what>, expected <expected>" as an I2V_ERROR_CONFIG error; FALSE. */
static gboolean fail(const I2vConfig *c, const char *key, int index, JsonNode *node,
                     const char *expected, GError **error) {
  char *what = node != NULL ? describe(node) : g_strdup("missing");
  char *where = index >= 0 ? g_strdup_printf("%s[%d]", key, index) : g_strdup(key);
  g_set_error(error, I2V_ERROR, I2V_ERROR_CONFIG, "%s: %s is %s, expected %s", c->file, where, what,
              expected);
  g_free(where);
  g_free(what);
  return FALSE;
}

/* The member key, NULL when absent or null. */
static JsonNode *member(const I2vConfig *c, const char *key) {
  JsonNode *node = json_object_get_member(c->json, key);
  return node != NULL && !JSON_NODE_HOLDS_NULL(node) ? node : NULL;
}

static gboolean is_type(JsonNode *node, GType type) {
  return JSON_NODE_HOLDS_VALUE(node) && json_node_get_value_type(node) == type;
}

/* "an integer in lo..hi" for messages (g_free). */
static char *int_range(gint64 lo, gint64 hi) {
  return g_strdup_printf("an integer in %" G_GINT64_FORMAT "..%" G_GINT64_FORMAT, lo, hi);
}

/* node as an integer in [lo, hi] (a JSON integer; 2.0 is accepted as 2, 2.5 is not). */
static gboolean node_int(const I2vConfig *c, const char *key, int index, JsonNode *node, gint64 lo,
                         gint64 hi, int *out, GError **error) {
  char *expected = int_range(lo, hi);
  gint64 v = 0;
  gboolean ok = is_type(node, G_TYPE_INT64);
  if (ok) {
    v = json_node_get_int(node);
  } else if (is_type(node, G_TYPE_DOUBLE)) {
    double d = json_node_get_double(node);
    ok = d == floor(d) && d >= (double)lo && d <= (double)hi;
    v = ok ? (gint64)d : 0;
  }
  ok = ok && v >= lo && v <= hi;
  if (ok)
    *out = (int)v;
  else
    fail(c, key, index, node, expected, error);
  g_free(expected);
  return ok;
}

static gboolean node_double(const I2vConfig *c, const char *key, int index, JsonNode *node,
                            double lo, double hi, double *out, GError **error) {
  gboolean ok = is_type(node, G_TYPE_INT64) || is_type(node, G_TYPE_DOUBLE);
  double v = ok ? json_node_get_double(node) : 0; /* json-glib converts integers */
  ok = ok && isfinite(v) && v >= lo && v <= hi;
  if (ok) {
    *out = v;
    return TRUE;
  }
  char *expected = g_strdup_printf("a number in %g..%g", lo, hi);
  fail(c, key, index, node, expected, error);
  g_free(expected);
  return FALSE;
}

/* An integer key: def when absent or null (required with def NULL). */
static gboolean get_int(const I2vConfig *c, const char *key, gint64 lo, gint64 hi, const int *def,
                        int *out, GError **error) {
  JsonNode *node = member(c, key);
  if (node != NULL) return node_int(c, key, -1, node, lo, hi, out, error);
  if (def != NULL) {
    *out = *def;
    return TRUE;
  }
  char *expected = int_range(lo, hi);
  fail(c, key, -1, NULL, expected, error);
  g_free(expected);
  return FALSE;
}

/* A number key: def when absent or null (required with def NULL). */
static gboolean get_double(const I2vConfig *c, const char *key, double lo, double hi,
                           const double *def, double *out, GError **error) {
  JsonNode *node = member(c, key);
  if (node != NULL) return node_double(c, key, -1, node, lo, hi, out, error);
  if (def != NULL) {
    *out = *def;
    return TRUE;
  }
  char *expected = g_strdup_printf("a number in %g..%g", lo, hi);
  fail(c, key, -1, NULL, expected, error);
  g_free(expected);
  return FALSE;
}

gboolean i2v_config_int(const I2vConfig *c, const char *key, gint64 lo, gint64 hi, int *out,
                        GError **error) {
  return get_int(c, key, lo, hi, NULL, out, error);
}

gboolean i2v_config_int_or(const I2vConfig *c, const char *key, gint64 lo, gint64 hi, int def,
                           int *out, GError **error) {
  return get_int(c, key, lo, hi, &def, out, error);
}

gboolean i2v_config_double(const I2vConfig *c, const char *key, double lo, double hi, double *out,
                           GError **error) {
  return get_double(c, key, lo, hi, NULL, out, error);
}

gboolean i2v_config_double_or(const I2vConfig *c, const char *key, double lo, double hi, double def,
                              double *out, GError **error) {
  return get_double(c, key, lo, hi, &def, out, error);
}

/* The array under key with its length checked against [min_n, max_n]; NULL with an error. */
static JsonArray *array(const I2vConfig *c, const char *key, int min_n, int max_n, const char *of,
                        GError **error) {
  JsonNode *node = member(c, key);
  JsonArray *arr = node != NULL && JSON_NODE_HOLDS_ARRAY(node) ? json_node_get_array(node) : NULL;
  guint len = arr != NULL ? json_array_get_length(arr) : 0;
  if (arr != NULL && (int)len >= min_n && len <= (guint)max_n) return arr;
  char *expected = min_n == max_n ? g_strdup_printf("an array of %d %s", min_n, of)
                                  : g_strdup_printf("an array of %d..%d %s", min_n, max_n, of);
  if (arr != NULL) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_CONFIG, "%s: %s has %u entries, expected %s", c->file,
                key, len, expected);
  } else {
    fail(c, key, -1, node, expected, error);
  }
  g_free(expected);
  return NULL;
}

gboolean i2v_config_ints(const I2vConfig *c, const char *key, int max_n, gint64 lo, gint64 hi,
                         int **out, int *n, GError **error) {
  JsonArray *arr = array(c, key, 1, max_n, "integers", error);
  if (arr == NULL) return FALSE;
  int len = (int)json_array_get_length(arr);
  int *values = g_new0(int, len);
  for (int i = 0; i < len; i++) {
    if (!node_int(c, key, i, json_array_get_element(arr, i), lo, hi, &values[i], error)) {
      g_free(values);
      return FALSE;
    }
  }
  *out = values;
  *n = len;
  return TRUE;
}

gboolean i2v_config_doubles(const I2vConfig *c, const char *key, int n, double lo, double hi,
                            double *out, GError **error) {
  JsonArray *arr = array(c, key, n, n, "numbers", error);
  for (int i = 0; arr != NULL && i < n; i++)
    if (!node_double(c, key, i, json_array_get_element(arr, i), lo, hi, &out[i], error))
      return FALSE;
  return arr != NULL;
}

gboolean i2v_config_string(const I2vConfig *c, const char *key, const char **out, GError **error) {
  JsonNode *node = member(c, key);
  if (node != NULL && is_type(node, G_TYPE_STRING)) {
    *out = json_node_get_string(node);
    return TRUE;
  }
  return fail(c, key, -1, node, "a string", error);
}

gboolean i2v_config_strings(const I2vConfig *c, const char *key, int n, char ***out,
                            GError **error) {
  JsonArray *arr = array(c, key, n < 0 ? 0 : n, n < 0 ? G_MAXINT : n, "strings", error);
  if (arr == NULL) return FALSE;
  guint len = json_array_get_length(arr);
  char **values = g_new0(char *, len + 1);
  for (guint i = 0; i < len; i++) {
    JsonNode *el = json_array_get_element(arr, i);
    if (!is_type(el, G_TYPE_STRING)) {
      fail(c, key, (int)i, el, "a string", error);
      g_strfreev(values);
      return FALSE;
    }
    values[i] = g_strdup(json_node_get_string(el));
  }
  *out = values;
  return TRUE;
}

gboolean i2v_config_bool_or(const I2vConfig *c, const char *key, gboolean def, gboolean *out,
                            GError **error) {
  JsonNode *node = member(c, key);
  if (node == NULL) {
    *out = def;
    return TRUE;
  }
  if (is_type(node, G_TYPE_BOOLEAN)) {
    *out = json_node_get_boolean(node);
    return TRUE;
  }
  return fail(c, key, -1, node, "true or false", error);
}

gboolean i2v_config_choice(const I2vConfig *c, const char *key, const char *def,
                           const char *const *choices, int *index, GError **error) {
  JsonNode *node = member(c, key);
  const char *v = node == NULL                   ? def
                  : is_type(node, G_TYPE_STRING) ? json_node_get_string(node)
                                                 : NULL;
  for (int i = 0; v != NULL && choices[i] != NULL; i++) {
    if (g_strcmp0(v, choices[i]) == 0) {
      *index = i;
      return TRUE;
    }
  }
  char *list = g_strjoinv("\", \"", (char **)choices);
  char *expected = g_strdup_printf("one of \"%s\"", list);
  fail(c, key, -1, node, expected, error);
  g_free(expected);
  g_free(list);
  return FALSE;
}
