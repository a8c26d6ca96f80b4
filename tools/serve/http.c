/* The HTTP server: authentication, request bodies, routing and the error shape. */
#include "http_routes.h"

#include <math.h>
#include <string.h>

#include "http_page.h"
#include "job.h"

#define BODY_KEY "i2vgen-request-body"

void http_send_json(SoupServerMessage *msg, guint status, char *json) {
  soup_server_message_set_status(msg, status, NULL);
  soup_server_message_set_response(msg, "application/json", SOUP_MEMORY_TAKE, json, strlen(json));
}

void http_send_error(SoupServerMessage *msg, const ApiError *err, guint retry_after) {
  SoupMessageHeaders *h = soup_server_message_get_response_headers(msg);
  if (err->status == 429 || err->status == 503) {
    char value[16];
    g_snprintf(value, sizeof(value), "%u", retry_after);
    soup_message_headers_replace(h, "Retry-After", value);
  }
  if (err->status == 401) soup_message_headers_replace(h, "WWW-Authenticate", "Bearer");
  http_send_json(msg, err->status, api_error_to_json(err));
}

void http_fail(SoupServerMessage *msg, guint status, const char *code, const char *param,
               const char *format, ...) {
  ApiError e = {status, code, (char *)param, NULL};
  va_list args;
  va_start(args, format);
  e.message = g_strdup_vprintf(format, args);
  va_end(args);
  http_send_error(msg, &e, 1);
  g_free(e.message);
}

RequestBody *http_request_body(SoupServerMessage *msg) {
  return g_object_get_data(G_OBJECT(msg), BODY_KEY);
}

guint http_retry_after(ServeApp *app) {
  return (guint)MAX(1, ceil(serve_metrics_mean_generation(app->metrics)));
}

/* ---- authentication ---- */

/* Compares a presented key with the server's in time independent of where they differ: both
 * are hashed (hiding the length too) and every byte of the digests is compared. */
static gboolean key_matches(const char *given, const char *want) {
  guint8 a[32], b[32];
  gsize na = sizeof(a), nb = sizeof(b);
  GChecksum *ca = g_checksum_new(G_CHECKSUM_SHA256), *cb = g_checksum_new(G_CHECKSUM_SHA256);
  g_checksum_update(ca, (const guchar *)given, -1);
  g_checksum_update(cb, (const guchar *)want, -1);
  g_checksum_get_digest(ca, a, &na);
  g_checksum_get_digest(cb, b, &nb);
  g_checksum_free(ca);
  g_checksum_free(cb);
  guint8 diff = 0;
  for (gsize i = 0; i < sizeof(a); i++) diff |= a[i] ^ b[i];
  return diff == 0;
}

/* TRUE when the request may go on: no key is set, the path is /healthz or a file of the web
 * page (which then asks for the key), or it carries "Authorization: Bearer KEY". Otherwise
 * responds 401. */
static gboolean authorized(ServeApp *app, SoupServerMessage *msg, const char *path) {
  if (app->api_key == NULL || *app->api_key == '\0' || strcmp(path, "/healthz") == 0 ||
      http_page_has(path))
    return TRUE;
  const char *auth =
      soup_message_headers_get_one(soup_server_message_get_request_headers(msg), "Authorization");
  if (auth != NULL && g_ascii_strncasecmp(auth, "Bearer ", 7) == 0 &&
      key_matches(auth + 7, app->api_key))
    return TRUE;
  http_fail(msg, 401, "invalid_api_key", NULL,
            auth == NULL ? "this server needs an API key: send 'Authorization: Bearer KEY'"
                         : "the API key is not this server's");
  return FALSE;
}

/* ---- request bodies ---- */

static void close_after(SoupServerMessage *msg) {
  soup_message_headers_replace(soup_server_message_get_response_headers(msg), "Connection",
                               "close");
}

static void on_chunk(SoupServerMessage *msg, GBytes *chunk, gpointer data) {
  (void)data;
  RequestBody *body = http_request_body(msg);
  if (soup_server_message_get_status(msg) != 0) return; /* refused already: drop the rest */
  GError *err = NULL;
  gsize n;
  const void *d = g_bytes_get_data(chunk, &n);
  if (request_body_write(body, d, n, &err)) return;
  close_after(msg);
  http_fail(msg, request_body_too_large(body) ? 413 : 500,
            request_body_too_large(body) ? "request_too_large" : "server_error", NULL, "%s",
            err->message);
  g_error_free(err);
}

/* libsoup before 3.3 never frees a kept-alive connection that the client closes while it is
 * idle (its socket, descriptor and objects stay until the server exits: one per client
 * connection, so a busy server runs out of descriptors; fixed upstream by libsoup commit
 * d20c6601). With such a library every response says "Connection: close". */
static gboolean soup_leaks_idle_connections(void) {
  return soup_get_major_version() == 3 && soup_get_minor_version() < 3;
}

/* Runs when a request's headers are in, before its body: refuses what can be refused without
 * reading the body (key, drain, a declared size above the limit) and streams the body of a
 * video creation to a file; other routes take no body and discard it unread into memory. */
static void early_handler(SoupServer *server, SoupServerMessage *msg, const char *path,
                          GHashTable *query, gpointer data) {
  ServeApp *app = data;
  (void)server;
  (void)query;
  if (soup_leaks_idle_connections()) close_after(msg);
  SoupMessageBody *req = soup_server_message_get_request_body(msg);
  soup_message_body_set_accumulate(req, FALSE);
  if (!authorized(app, msg, path)) {
    close_after(msg);
    return;
  }
  if (strcmp(soup_server_message_get_method(msg), SOUP_METHOD_POST) != 0 ||
      strcmp(path, "/v1/videos") != 0)
    return;
  SoupMessageHeaders *h = soup_server_message_get_request_headers(msg);
  if (app->draining) {
    close_after(msg);
    http_fail(msg, 503, "server_draining", NULL,
              "the server is shutting down and accepts no new videos; retry on another "
              "instance or after it restarts");
    return;
  }
  gsize limit = app->catalog->max_upload;
  if (soup_message_headers_get_encoding(h) == SOUP_ENCODING_CONTENT_LENGTH &&
      soup_message_headers_get_content_length(h) > (goffset)limit) {
    close_after(msg);
    http_fail(msg, 413, "request_too_large", NULL,
              "the request body is %" G_GOFFSET_FORMAT
              " bytes; this server accepts at most %" G_GSIZE_FORMAT " bytes (--max-upload-mb)",
              soup_message_headers_get_content_length(h), limit);
    return;
  }
  g_autofree char *path_tmp = job_files_temp(app->files, ".body");
  g_object_set_data_full(G_OBJECT(msg), BODY_KEY, request_body_new(path_tmp, limit),
                         (GDestroyNotify)request_body_free);
  g_signal_connect(msg, "got-chunk", G_CALLBACK(on_chunk), NULL);
}

/* ---- routing ---- */

static gboolean method_is(SoupServerMessage *msg, const char *method) {
  return strcmp(soup_server_message_get_method(msg), method) == 0;
}

static void method_not_allowed(SoupServerMessage *msg, const char *path, const char *allow) {
  soup_message_headers_replace(soup_server_message_get_response_headers(msg), "Allow", allow);
  http_fail(msg, 405, "method_not_allowed", NULL, "%s %s: this endpoint answers %s",
            soup_server_message_get_method(msg), path, allow);
}

/* GET (or HEAD, which libsoup answers without the body). */
static gboolean is_get(SoupServerMessage *msg) {
  return method_is(msg, SOUP_METHOD_GET) || method_is(msg, SOUP_METHOD_HEAD);
}

/* /v1/videos/{id}[/content|/events] */
static void route_video(ServeApp *app, SoupServerMessage *msg, const char *path, const char *rest,
                        GHashTable *query) {
  g_auto(GStrv) parts = g_strsplit(rest, "/", 3);
  const char *id = parts[0], *sub = parts[1];
  if (parts[1] != NULL && parts[2] != NULL) sub = "?";
  if (!job_id_valid(id)) {
    http_fail(msg, 404, "not_found", "id",
              "no video with id '%s' (ids are 'video_' and 32 hexadecimal digits)", id);
  } else if (sub == NULL) {
    if (is_get(msg))
      http_videos_get(app, msg, id);
    else if (method_is(msg, SOUP_METHOD_DELETE))
      http_videos_delete(app, msg, id);
    else
      method_not_allowed(msg, path, "GET, DELETE");
  } else if (strcmp(sub, "content") == 0 || strcmp(sub, "events") == 0) {
    if (!is_get(msg))
      method_not_allowed(msg, path, "GET");
    else if (strcmp(sub, "content") == 0)
      http_videos_content(app, msg, id, query);
    else
      http_events_stream(app, msg, id);
  } else {
    http_fail(msg, 404, "not_found", NULL, "no endpoint %s", path);
  }
}

/* The endpoints that only answer GET. */
static const struct {
  const char *path;
  void (*get)(ServeApp *app, SoupServerMessage *msg);
} get_endpoints[] = {
    {"/v1/capabilities", http_capabilities},
    {"/healthz", http_healthz},
    {"/metrics", http_metrics},
};

static void route(SoupServer *server, SoupServerMessage *msg, const char *path, GHashTable *query,
                  gpointer data) {
  ServeApp *app = data;
  (void)server;
  if (strcmp(path, "/v1/videos") == 0) {
    if (method_is(msg, SOUP_METHOD_POST))
      http_videos_create(app, msg);
    else if (is_get(msg))
      http_videos_list(app, msg, query);
    else
      method_not_allowed(msg, path, "GET, POST");
    return;
  }
  if (g_str_has_prefix(path, "/v1/videos/")) {
    route_video(app, msg, path, path + strlen("/v1/videos/"), query);
    return;
  }
  if (strcmp(path, "/v1/crop") == 0 || http_page_has(path)) {
    if (!is_get(msg))
      method_not_allowed(msg, path, "GET");
    else if (http_page_has(path))
      http_page_send(msg, path);
    else
      http_crop(msg, query);
    return;
  }
  for (gsize i = 0; i < G_N_ELEMENTS(get_endpoints); i++)
    if (strcmp(path, get_endpoints[i].path) == 0) {
      if (is_get(msg))
        get_endpoints[i].get(app, msg);
      else
        method_not_allowed(msg, path, "GET");
      return;
    }
  http_fail(msg, 404, "not_found", NULL,
            "no endpoint %s (the API is under /v1/videos; see docs/service.md)", path);
}

SoupServer *serve_http_new(ServeApp *app) {
  SoupServer *server = soup_server_new("server-header", "i2vgen-serve ", NULL);
  soup_server_add_early_handler(server, NULL, early_handler, app, NULL);
  soup_server_add_handler(server, NULL, route, app, NULL);
  return server;
}
