/* Running one job through the product's own GStreamer pipeline, in this process:
 *
 *   appsrc (the decoded input image) ! i2vgen ! [i2vinterp] ! videoconvert !
 *     video/x-raw,format=I420 ! x264enc ! mp4mux faststart=true ! filesink
 *
 * with the first generated frame kept as a PNG thumbnail and the element's i2vgen-progress
 * messages handed to a callback. The runner loads the model once: a small pipeline holding an
 * i2vgen element in PAUSED keeps it in the element's model cache, so each job's element finds
 * it loaded. Used by `i2vgen serve` and meant for any other process that runs jobs (a worker
 * of a shared queue): it knows nothing of HTTP, queues or the data folder. */
#pragma once

#include <gst/gst.h>

#include "job.h"

G_BEGIN_DECLS

/* The model every job uses (the i2vgen properties of the same names; NULL = the default). */
typedef struct {
  const char *path, *variant, *device, *precision;
} RunnerModel;

typedef struct JobRunner JobRunner;

/* Checks that the GStreamer elements are installed and loads the model; NULL with an error
 * naming the missing element or the model's problem. */
JobRunner *job_runner_new(const RunnerModel *model, GError **error);

/* Frees the runner and releases the model. */
void job_runner_free(JobRunner *runner);

/* The loaded model's i2vgen model-info structure (device, size-multiple, memory of the model and
 * of the running job's session), read live; a new structure (gst_structure_free). Any thread. */
GstStructure *job_runner_model_info(JobRunner *runner);

/* One i2vgen-progress message: step i of n just finished (frame 0), or frame j of m decoded. */
typedef struct {
  int step, steps, frame, frames;
  gint64 elapsed_ms, eta_ms;
} RunnerProgress;

typedef struct {
  const JobParams *params;
  const char *lora;          /* "path[:scale]" for the i2vgen lora property, or NULL */
  const char *input;         /* the input image file (PNG, JPEG or WebP) */
  guint64 max_pixels;        /* the input's decoding bound */
  const char *video_out;     /* where the MP4 is written */
  const char *thumbnail_out; /* where the first frame is written as PNG */
  void (*progress)(const RunnerProgress *p, gpointer user); /* on the calling thread */
  gpointer user;
} RunnerJob;

/* Runs job to the end: TRUE once both files are complete. Cancelling cancel stops the
 * generation within one denoising step (error G_IO_ERROR_CANCELLED). Errors carry the element's
 * message. */
gboolean job_runner_run(JobRunner *runner, const RunnerJob *job, GCancellable *cancel,
                        GError **error);

G_END_DECLS
