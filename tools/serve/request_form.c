/* Form bodies: multipart/form-data and JSON. */
#include "request_form.h"

#include <json-glib/json-glib.h>
#include <libsoup/soup.h>
#include <string.h>

#include "json_load.h"

void request_form_clear(RequestForm *f) {
  g_clear_pointer(&f->fields, g_hash_table_unref);
  g_clear_pointer(&f->image, g_bytes_unref);
  g_clear_pointer(&f->image_url, g_free);
}

/* Adds a text field; a second value for the same name is an error. */
static gboolean add_field(RequestForm *f, const char *name, const char *value, ApiError **err) {
  if (g_hash_table_contains(f->fields, name)) {
    api_error_set(err, 400, "invalid_value", name, "field '%s' is given more than once", name);
    return FALSE;
  }
  g_hash_table_insert(f->fields, g_strdup(name), g_strdup(value));
  return TRUE;
}

/* TRUE when no image was given yet, else an error: one image per request. */
static gboolean image_not_given(const RequestForm *f, ApiError **err) {
  if (f->image_url == NULL && f->image == NULL) return TRUE;
  api_error_set(err, 400, "invalid_value", "input_reference",
                "input_reference is given more than once");
  return FALSE;
}

static gboolean set_image_url(RequestForm *f, const char *url, ApiError **err) {
  if (!image_not_given(f, err)) return FALSE;
  f->image_url = g_strdup(url);
  return TRUE;
}

/* The text of a part: UTF-8 without NUL bytes. */
static char *part_text(GBytes *body, const char *name, ApiError **err) {
  gsize n;
  const char *d = g_bytes_get_data(body, &n);
  if (memchr(d, '\0', n) != NULL || !g_utf8_validate_len(d, n, NULL)) {
    api_error_set(err, 400, "invalid_value", name, "field '%s' is not UTF-8 text", name);
    return NULL;
  }
  return g_strndup(d, n);
}

static gboolean parse_multipart(const char *content_type, GBytes *body, RequestForm *f,
                                ApiError **err) {
  SoupMessageHeaders *headers = soup_message_headers_new(SOUP_MESSAGE_HEADERS_MULTIPART);
  soup_message_headers_append(headers, "Content-Type", content_type);
  SoupMultipart *mp = soup_multipart_new_from_message(headers, body);
  soup_message_headers_unref(headers);
  if (mp == NULL) {
    api_error_set(err, 400, "invalid_body", NULL,
                  "the multipart/form-data body is malformed (boundary or part headers)");
    return FALSE;
  }
  gboolean ok = TRUE;
  for (int i = 0; ok && i < soup_multipart_get_length(mp); i++) {
    SoupMessageHeaders *ph;
    GBytes *pb;
    soup_multipart_get_part(mp, i, &ph, &pb);
    char *disposition = NULL;
    GHashTable *params = NULL;
    const char *name = NULL;
    if (soup_message_headers_get_content_disposition(ph, &disposition, &params))
      name = g_hash_table_lookup(params, "name");
    if (name == NULL || g_strcmp0(disposition, "form-data") != 0) {
      api_error_set(err, 400, "invalid_body", NULL,
                    "part %d of the multipart body has no Content-Disposition: form-data; name=...",
                    i + 1);
      ok = FALSE;
    } else if (strcmp(name, "input_reference") == 0 && g_hash_table_contains(params, "filename")) {
      ok = image_not_given(f, err);
      if (ok) f->image = g_bytes_ref(pb);
    } else {
      char *text = part_text(pb, name, err);
      ok = text != NULL;
      if (ok &&
          (strcmp(name, "input_reference") == 0 || strcmp(name, "input_reference[image_url]") == 0))
        ok = set_image_url(f, text, err);
      else if (ok)
        ok = add_field(f, name, text, err);
      g_free(text);
    }
    g_free(disposition);
    if (params != NULL) g_hash_table_destroy(params);
  }
  soup_multipart_free(mp);
  return ok;
}

/* A JSON member as field text: strings as they are, numbers in C locale. */
static gboolean json_member_text(JsonNode *n, const char *name, char **out, ApiError **err) {
  if (JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_STRING) {
    *out = g_strdup(json_node_get_string(n));
  } else if (JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_INT64) {
    *out = g_strdup_printf("%" G_GINT64_FORMAT, json_node_get_int(n));
  } else if (JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_DOUBLE) {
    *out = g_malloc(G_ASCII_DTOSTR_BUF_SIZE);
    g_ascii_dtostr(*out, G_ASCII_DTOSTR_BUF_SIZE, json_node_get_double(n));
  } else {
    api_error_set(err, 400, "invalid_value", name, "field '%s': expected a string or a number",
                  name);
    return FALSE;
  }
  return TRUE;
}

static gboolean parse_json(GBytes *body, RequestForm *f, ApiError **err) {
  gsize n;
  const char *d = g_bytes_get_data(body, &n);
  GError *e = NULL;
  /* bounded nesting: json-glib recurses once per level, and a body is anyone's */
  g_autoptr(JsonObject) o = i2v_json_parse_object(n ? d : "", n, "the JSON body", &e);
  if (o == NULL) {
    api_error_set(err, 400, "invalid_body", NULL, "%s", e->message);
    g_clear_error(&e);
    return FALSE;
  }
  g_autoptr(GList) members = json_object_get_members(o);
  gboolean ok = TRUE;
  for (GList *m = members; ok && m != NULL; m = m->next) {
    const char *name = m->data;
    JsonNode *v = json_object_get_member(o, name);
    if (JSON_NODE_HOLDS_NULL(v)) continue;
    if (strcmp(name, "input_reference") == 0 && JSON_NODE_HOLDS_OBJECT(v)) {
      const char *url =
          json_object_get_string_member_with_default(json_node_get_object(v), "image_url", NULL);
      ok = url != NULL;
      if (ok)
        ok = set_image_url(f, url, err);
      else
        api_error_set(err, 400, "invalid_value", "input_reference",
                      "input_reference: expected {\"image_url\": \"data:...\"}");
      continue;
    }
    char *text = NULL;
    ok = json_member_text(v, name, &text, err);
    if (ok && strcmp(name, "input_reference") == 0)
      ok = set_image_url(f, text, err);
    else if (ok)
      ok = add_field(f, name, text, err);
    g_free(text);
  }
  return ok;
}

gboolean request_form_parse(const char *content_type, GBytes *body, RequestForm *f,
                            ApiError **err) {
  memset(f, 0, sizeof(*f));
  f->fields = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
  g_autofree char *media = NULL;
  if (content_type != NULL) {
    const char *semi = strchr(content_type, ';');
    media = g_ascii_strdown(content_type, semi ? semi - content_type : -1);
    g_strstrip(media);
  }
  gboolean ok;
  if (g_strcmp0(media, "multipart/form-data") == 0) {
    ok = parse_multipart(content_type, body, f, err);
  } else if (g_strcmp0(media, "application/json") == 0) {
    ok = parse_json(body, f, err);
  } else {
    api_error_set(err, 415, "unsupported_content_type", NULL,
                  "Content-Type '%s': expected multipart/form-data or application/json",
                  content_type ? content_type : "(none)");
    ok = FALSE;
  }
  if (!ok) request_form_clear(f);
  return ok;
}
