/* The service's own measurements for GET /metrics (Prometheus text format): videos finished by
 * result, seconds per denoising step by size and frame count, a histogram of generation times.
 * Thread-safe: the worker records, HTTP handlers render. */
#pragma once

#include <gst/gst.h>

#include "job.h"

G_BEGIN_DECLS

typedef struct ServeMetrics ServeMetrics;

/* Empty metrics (free with serve_metrics_free). */
ServeMetrics *serve_metrics_new(void);

/* Frees m (NULL allowed). */
void serve_metrics_free(ServeMetrics *m);

/* One denoising step of a width×height, frames-frame job took seconds. */
void serve_metrics_add_step(ServeMetrics *m, guint width, guint height, guint frames,
                            double seconds);

/* A video ended: result is "completed", "failed" or "cancelled"; seconds from its start. */
void serve_metrics_add_finished(ServeMetrics *m, const char *result, double seconds);

/* The mean generation time of completed videos, or 0 before the first. */
double serve_metrics_mean_generation(ServeMetrics *m);

/* m's counters as a JSON document, for another process to add up (serve_metrics_merge_json);
 * a new string (g_free). */
char *serve_metrics_to_json(ServeMetrics *m);

/* Adds the counters of a serve_metrics_to_json document to m; FALSE with an error when json is
 * not one. */
gboolean serve_metrics_merge_json(ServeMetrics *m, const char *json, GError **error);

/* Appends every metric in the Prometheus text format to out: ours, the job counts by status
 * (counts), the model's memory (model_info, the i2vgen model-info structure; NULL: unknown)
 * and the process's resident memory. */
void serve_metrics_render(ServeMetrics *m, const guint counts[JOB_STATUS_COUNT],
                          const GstStructure *model_info, GString *out);

/* The resident memory of this process in bytes (/proc/self/statm), 0 when unknown. */
guint64 serve_resident_bytes(void);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(ServeMetrics, serve_metrics_free)

G_END_DECLS
