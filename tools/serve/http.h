/* The HTTP API of `i2vgen serve` (libsoup 3): the OpenAI-shaped /v1/videos endpoints, their
 * Server-Sent Events, /v1/capabilities, /healthz and /metrics. Every handler runs in the default
 * main context; work that blocks (reading and checking an upload) runs in a thread while the
 * request is paused. */
#pragma once

#include <libsoup/soup.h>

#include "catalog.h"
#include "job_events.h"
#include "job_files.h"
#include "job_queue.h"
#include "job_runner.h"
#include "job_worker.h"
#include "metrics.h"

G_BEGIN_DECLS

/* What the handlers work with; owned by the caller of serve_http_new, read-only but draining. */
typedef struct {
  const ServeCatalog *catalog;
  JobQueue *queue;
  JobEvents *events;
  JobFiles *files;
  ServeMetrics *metrics;
  JobRunner *runner;
  JobWorker *worker;
  const char *api_key;  /* NULL or "": no authentication */
  gboolean allow_fetch; /* input_reference[image_url] may be http(s) */
  gboolean draining;    /* set on SIGTERM: new videos are refused with 503 (main context only) */
} ServeApp;

/* A server routing every request to the API handlers (not listening yet). */
SoupServer *serve_http_new(ServeApp *app);

G_END_DECLS
