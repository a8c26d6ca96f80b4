/* Errors the HTTP API reports, in the OpenAI error shape:
 * {"error": {"message", "type", "param", "code"}} with an HTTP status. */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

typedef struct {
  guint status;     /* HTTP status: 400, 401, 404, 409, 413, 415, 429, 500, 503 */
  const char *code; /* machine-readable, static: "invalid_value", "not_found", ... */
  char *param;      /* the request field at fault, or NULL */
  char *message;    /* what was wrong and what is accepted */
} ApiError;

/* Sets *err (when err is not NULL and *err is NULL) to a new error; param may be NULL. */
void api_error_set(ApiError **err, guint status, const char *code, const char *param,
                   const char *format, ...) G_GNUC_PRINTF(5, 6);

/* An error for a GError of another layer with the given status and code; the message is
 * error's. */
void api_error_take_gerror(ApiError **err, guint status, const char *code, const char *param,
                           GError *error);

/* The OpenAI error "type" of an HTTP status ("invalid_request_error", "authentication_error",
 * "rate_limit_error", "server_error"); static. */
const char *api_error_type(guint status);

/* The error as a JSON document; a new string (g_free). */
char *api_error_to_json(const ApiError *err);

/* Frees err (NULL allowed). */
void api_error_free(ApiError *err);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(ApiError, api_error_free)

G_END_DECLS
