/* OpenAI-shaped API errors. */
#include "api_error.h"

static ApiError *api_error_new_valist(guint status, const char *code, const char *param,
                                      const char *format, va_list args) {
  ApiError *e = g_new0(ApiError, 1);
  e->status = status;
  e->code = code;
  e->param = g_strdup(param);
  e->message = g_strdup_vprintf(format, args);
  return e;
}

void api_error_set(ApiError **err, guint status, const char *code, const char *param,
                   const char *format, ...) {
  if (err == NULL || *err != NULL) return;
  va_list args;
  va_start(args, format);
  *err = api_error_new_valist(status, code, param, format, args);
  va_end(args);
}

void api_error_take_gerror(ApiError **err, guint status, const char *code, const char *param,
                           GError *error) {
  api_error_set(err, status, code, param, "%s", error->message);
  g_error_free(error);
}

const char *api_error_type(guint status) {
  if (status == 401) return "authentication_error";
  if (status == 429) return "rate_limit_error";
  if (status >= 500) return "server_error";
  return "invalid_request_error";
}

char *api_error_to_json(const ApiError *err) {
  g_autoptr(JsonBuilder) b = json_builder_new();
  json_builder_begin_object(b);
  json_builder_set_member_name(b, "error");
  json_builder_begin_object(b);
  json_builder_set_member_name(b, "message");
  json_builder_add_string_value(b, err->message);
  json_builder_set_member_name(b, "type");
  json_builder_add_string_value(b, api_error_type(err->status));
  json_builder_set_member_name(b, "param");
  if (err->param != NULL)
    json_builder_add_string_value(b, err->param);
  else
    json_builder_add_null_value(b);
  json_builder_set_member_name(b, "code");
  json_builder_add_string_value(b, err->code);
  json_builder_end_object(b);
  json_builder_end_object(b);
  g_autoptr(JsonNode) root = json_builder_get_root(b);
  return json_to_string(root, FALSE);
}

void api_error_free(ApiError *err) {
  if (err == NULL) return;
  g_free(err->param);
  g_free(err->message);
  g_free(err);
}
