/* Shared by the HTTP handler files: responses and the handlers the router calls. */
#pragma once

#include "api_error.h"
#include "http.h"
#include "request_body.h"

G_BEGIN_DECLS

/* Responds with status and a JSON document (taken). */
void http_send_json(SoupServerMessage *msg, guint status, char *json);

/* Responds with err in the OpenAI error shape (429 and 503 also get Retry-After: retry_after). */
void http_send_error(SoupServerMessage *msg, const ApiError *err, guint retry_after);

/* Responds with a new error of status, code, param and message. */
void http_fail(SoupServerMessage *msg, guint status, const char *code, const char *param,
               const char *format, ...) G_GNUC_PRINTF(5, 6);

/* The body the early handler streamed to disk for msg, or NULL; owned by msg. */
RequestBody *http_request_body(SoupServerMessage *msg);

/* Seconds a client should wait before retrying when the queue is full or the server drains. */
guint http_retry_after(ServeApp *app);

/* /v1/videos and /v1/videos/{id}[/content] (http_videos.c) */
void http_videos_create(ServeApp *app, SoupServerMessage *msg);
void http_videos_list(ServeApp *app, SoupServerMessage *msg, GHashTable *query);
void http_videos_get(ServeApp *app, SoupServerMessage *msg, const char *id);
void http_videos_delete(ServeApp *app, SoupServerMessage *msg, const char *id);
void http_videos_content(ServeApp *app, SoupServerMessage *msg, const char *id, GHashTable *query);

/* /v1/videos/{id}/events (http_events.c) */
void http_events_stream(ServeApp *app, SoupServerMessage *msg, const char *id);

/* /healthz, /metrics, /v1/capabilities (http_status.c) */
void http_healthz(ServeApp *app, SoupServerMessage *msg);
void http_metrics(ServeApp *app, SoupServerMessage *msg);
void http_capabilities(ServeApp *app, SoupServerMessage *msg);

/* /v1/crop (http_crop.c) */
void http_crop(SoupServerMessage *msg, GHashTable *query);

G_END_DECLS
