/* GET /v1/videos/{id}/events: the job's events as Server-Sent Events. A client first gets the
 * current state (the video object as a "video" event, and the last progress event while the job
 * runs), then every event until the terminal one (completed, failed or deleted), after which
 * the response ends. A comment line every 15 s keeps proxies from closing an idle stream. */
#include "http_routes.h"

#include <string.h>

#define KEEPALIVE_SECONDS 15

typedef struct {
  ServeApp *app;
  SoupServerMessage *msg; /* a reference until the response is finished */
  guint sub;              /* the events subscription, 0 once ended */
  guint keepalive;        /* timeout source, 0 once ended */
  guint64 seq;            /* the last event written: older ones still being delivered are skipped */
} Stream;

/* Queues one event (an "id:" line when seq > 0) and lets libsoup write it. */
static void write_event(Stream *s, const char *type, guint64 seq, const char *data) {
  GString *text = g_string_new(NULL);
  if (seq > 0) g_string_append_printf(text, "id: %" G_GUINT64_FORMAT "\n", seq);
  s->seq = MAX(s->seq, seq);
  g_string_append_printf(text, "event: %s\ndata: %s\n\n", type, data);
  gsize len = text->len;
  soup_message_body_append(soup_server_message_get_response_body(s->msg), SOUP_MEMORY_TAKE,
                           g_string_free(text, FALSE), len);
  soup_server_message_unpause(s->msg);
}

/* Ends the subscription and the keep-alive (idempotent). */
static void stream_stop(Stream *s) {
  if (s->sub != 0) job_events_unsubscribe(s->app->events, s->sub);
  if (s->keepalive != 0) g_source_remove(s->keepalive);
  s->sub = s->keepalive = 0;
}

/* After the terminal event: no more events, the response ends. */
static void stream_end(Stream *s) {
  stream_stop(s);
  soup_message_body_complete(soup_server_message_get_response_body(s->msg));
  soup_server_message_unpause(s->msg);
}

static void on_event(const JobEvent *ev, gpointer user) {
  Stream *s = user;
  if (ev->seq <= s->seq) return; /* published before the state this client got first */
  write_event(s, ev->type, ev->seq, ev->data);
  if (job_event_is_terminal(ev->type)) stream_end(s);
}

static gboolean keep_alive(gpointer user) {
  Stream *s = user;
  static const char comment[] = ": keep-alive\n\n";
  soup_message_body_append(soup_server_message_get_response_body(s->msg), SOUP_MEMORY_STATIC,
                           comment, strlen(comment));
  soup_server_message_unpause(s->msg);
  return G_SOURCE_CONTINUE;
}

/* The response is over: complete, or the client went away. */
static void on_finished(SoupServerMessage *msg, Stream *s) {
  stream_stop(s);
  g_signal_handlers_disconnect_by_data(msg, s);
  g_object_unref(s->msg);
  g_free(s);
}

void http_events_stream(ServeApp *app, SoupServerMessage *msg, const char *id) {
  GError *e = NULL;
  g_autoptr(Job) job = app->queue->ops->get(app->queue, id, &e);
  if (job == NULL) {
    gboolean missing = g_error_matches(e, JOB_QUEUE_ERROR, JOB_QUEUE_ERROR_NOT_FOUND);
    http_fail(msg, missing ? 404 : 500, missing ? "not_found" : "server_error",
              missing ? "id" : NULL, "%s", e->message);
    g_error_free(e);
    return;
  }
  SoupMessageHeaders *h = soup_server_message_get_response_headers(msg);
  soup_message_headers_set_content_type(h, "text/event-stream", NULL);
  soup_message_headers_replace(h, "Cache-Control", "no-cache");
  soup_message_headers_replace(h, "X-Accel-Buffering", "no"); /* nginx: do not buffer */
  soup_message_headers_set_encoding(h, SOUP_ENCODING_CHUNKED);
  soup_message_body_set_accumulate(soup_server_message_get_response_body(msg), FALSE);
  soup_server_message_set_status(msg, 200, NULL);

  Stream *s = g_new0(Stream, 1);
  s->app = app;
  s->msg = g_object_ref(msg);
  g_signal_connect(msg, "finished", G_CALLBACK(on_finished), s);
  g_autofree char *video = job_to_json(job, app->catalog->model_name);
  if (job->status == JOB_COMPLETED || job->status == JOB_FAILED) {
    write_event(s, job_status_name(job->status), 0, video);
    stream_end(s);
    return;
  }
  /* events published after this handler are delivered later in this context: none is lost
   * between reading the state and subscribing */
  s->sub = job_events_subscribe(app->events, id, on_event, s);
  s->keepalive = g_timeout_add_seconds(KEEPALIVE_SECONDS, keep_alive, s);
  write_event(s, "video", 0, video);
  g_autoptr(JobEvent) last = job_events_last_progress(app->events, id);
  if (last != NULL && job->status == JOB_IN_PROGRESS)
    write_event(s, last->type, last->seq, last->data);
}
