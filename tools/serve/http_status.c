/* /healthz, /metrics and /v1/capabilities. */
#include "http_routes.h"

#include <string.h>

/* The loaded model's info, or NULL on an API node of a cluster (its workers hold the model). */
static GstStructure *model_info(ServeApp *app) {
  return app->runner ? job_runner_model_info(app->runner) : NULL;
}

/* Responds 500 with e's message and frees it. */
static void fail_store(SoupServerMessage *msg, GError *e) {
  http_fail(msg, 500, "server_error", NULL, "%s", e->message);
  g_error_free(e);
}

/* The job counts by status; FALSE after responding 500. */
static gboolean counts(ServeApp *app, SoupServerMessage *msg, guint out[JOB_STATUS_COUNT]) {
  GError *e = NULL;
  if (app->queue->ops->count(app->queue, out, &e)) return TRUE;
  fail_store(msg, e);
  return FALSE;
}

void http_healthz(ServeApp *app, SoupServerMessage *msg) {
  guint n[JOB_STATUS_COUNT];
  if (!counts(app, msg, n)) return;
  g_autoptr(GstStructure) info = model_info(app);
  const char *device = info ? gst_structure_get_string(info, "device") : NULL;
  g_autofree char *json = g_strdup_printf(
      "{\"status\":\"%s\",\"model\":{\"name\":\"%s\",\"loaded\":%s,\"device\":\"%s\"},"
      "\"queue_depth\":%u,\"running\":%u}",
      app->draining ? "draining" : "ok", app->catalog->model_name, info ? "true" : "false",
      device ? device : "", n[JOB_QUEUED], n[JOB_IN_PROGRESS]);
  /* a draining server answers 503 so that load balancers send new work elsewhere */
  http_send_json(msg, app->draining ? 503 : 200, g_steal_pointer(&json));
}

void http_metrics(ServeApp *app, SoupServerMessage *msg) {
  guint n[JOB_STATUS_COUNT];
  if (!counts(app, msg, n)) return;
  g_autoptr(GstStructure) info = model_info(app);
  /* a cluster's: the sum of what every worker published, and the queue's own metrics */
  g_autoptr(ServeMetrics) cluster = app->queue->ops->cluster_metrics ? serve_metrics_new() : NULL;
  g_autoptr(GString) extra = g_string_new(NULL);
  GError *e = NULL;
  if (cluster != NULL && !app->queue->ops->cluster_metrics(app->queue, cluster, extra, &e)) {
    fail_store(msg, e);
    return;
  }
  GString *out = g_string_new(NULL);
  serve_metrics_render(cluster ? cluster : app->metrics, n, info, out);
  g_string_append(out, extra->str);
  gsize len = out->len;
  soup_server_message_set_status(msg, 200, NULL);
  soup_server_message_set_response(msg, "text/plain; version=0.0.4; charset=utf-8",
                                   SOUP_MEMORY_TAKE, g_string_free(out, FALSE), len);
}

void http_capabilities(ServeApp *app, SoupServerMessage *msg) {
  http_send_json(msg, 200, serve_catalog_to_json(app->catalog));
}
