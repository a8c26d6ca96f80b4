/* The worker: a thread that claims jobs from a queue one at a time and runs each through the
 * runner, recording progress in the queue, publishing events (progress, completed, failed) and
 * moving the finished files into place. A job deleted while it runs (a "deleted" event) is
 * cancelled within one step; a run that no longer owns its job at the end (another worker took
 * it over) discards its result. Shared by every process that executes jobs. */
#pragma once

#include "job_events.h"
#include "job_files.h"
#include "job_queue.h"
#include "job_runner.h"
#include "metrics.h"

G_BEGIN_DECLS

typedef struct {
  JobQueue *queue;
  JobEvents *events; /* "deleted" events of the running job cancel it */
  JobFiles *files;
  JobRunner *runner;
  ServeMetrics *metrics;
  const char *log_name;   /* how its log lines start: "i2vgen serve", "i2vgen worker" */
  const char *model_name; /* in the video objects of events */
  const char *lora_dir;   /* where job LoRA names are found */
  guint64 max_pixels;     /* the input images' decoding bound */
  /* Called in the default main context once the thread has ended (after job_worker_stop). */
  void (*stopped)(gpointer user);
  gpointer user;
} JobWorkerConfig;

typedef struct JobWorker JobWorker;

/* Starts the worker thread (cfg is copied; what it points to must outlive the worker). */
JobWorker *job_worker_start(const JobWorkerConfig *cfg);

/* Stops claiming jobs. The running job, if any, finishes, unless cancel_running: then it is
 * cancelled within one step and given back to the queue without counting the attempt. */
void job_worker_stop(JobWorker *w, gboolean cancel_running);

/* TRUE while a job runs. */
gboolean job_worker_busy(JobWorker *w);

/* Waits for the thread (stop first) and frees the worker. */
void job_worker_free(JobWorker *w);

G_END_DECLS
