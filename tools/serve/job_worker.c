/* The worker thread. */
#include "job_worker.h"

#include <glib/gstdio.h>
#include <stdio.h>

struct JobWorker {
  JobWorkerConfig cfg;
  GThread *thread;
  GCancellable *stop; /* no more claims */
  guint deleted_sub;  /* the events subscription watching for deletions */

  GMutex lock;          /* the fields below */
  char *running;        /* id of the running job, NULL when idle */
  GCancellable *cancel; /* of the running job */
  gboolean deleted;     /* the running job was deleted (not a shutdown) */
  gboolean give_back;   /* shutdown: cancel the running job and queue it again */
};

/* State of the running job for the progress callback. */
typedef struct {
  JobWorker *w;
  const Job *job;
  int last_percent;
  gint64 last_step_ms;  /* the element's elapsed time at the previous step, -1 before the first */
  gint64 start_us;      /* when the job started (monotonic) */
  gint64 first_step_us; /* to the end of its first step: pipeline, model, encoders, one step */
} RunState;

/* Logs a store error the worker can only report (the job goes on or has ended) and frees it. */
static void report(JobWorker *w, GError *err) {
  g_printerr("%s: %s\n", w->cfg.log_name, err->message);
  g_error_free(err);
}

static void on_progress(const RunnerProgress *p, gpointer user) {
  RunState *rs = user;
  JobWorker *w = rs->w;
  const JobParams *params = &rs->job->params;
  if (p->frame == 0) { /* a step: its time, once past the first (which includes the encoders) */
    if (rs->last_step_ms >= 0)
      serve_metrics_add_step(w->cfg.metrics, params->width, params->height, params->num_frames,
                             (p->elapsed_ms - rs->last_step_ms) / 1000.0);
    else
      rs->first_step_us = g_get_monotonic_time() - rs->start_us;
    rs->last_step_ms = p->elapsed_ms;
  }
  /* steps and decoded frames as equal units of work; 100 only when the file is complete */
  int total = p->steps + p->frames;
  int percent = total > 0 ? 99 * (p->step + p->frame) / total : 0;
  if (percent != rs->last_percent) {
    GError *err = NULL;
    if (!w->cfg.queue->ops->set_progress(w->cfg.queue, rs->job->id, percent, &err)) report(w, err);
    rs->last_percent = percent;
  }
  char eta[G_ASCII_DTOSTR_BUF_SIZE], now[G_ASCII_DTOSTR_BUF_SIZE];
  g_ascii_formatd(eta, sizeof(eta), "%.3f", p->eta_ms / 1000.0);
  g_ascii_formatd(now, sizeof(now), "%.6f", g_get_real_time() / 1e6);
  g_autofree char *data = g_strdup_printf(
      "{\"id\":\"%s\",\"progress\":%d,\"step\":%d,\"steps\":%d,\"frame\":%d,\"frames\":%d,"
      "\"eta_seconds\":%s,\"time\":%s}",
      rs->job->id, percent, p->step, p->steps, p->frame, p->frames, eta, now);
  job_events_publish(w->cfg.events, rs->job->id, "progress", data);
}

/* Publishes the job's current video object as an event of type. */
static void publish_video(JobWorker *w, const char *id, const char *type) {
  GError *err = NULL;
  g_autoptr(Job) job = w->cfg.queue->ops->get(w->cfg.queue, id, &err);
  if (job == NULL) { /* deleted meanwhile: the deleted event already went out */
    g_clear_error(&err);
    return;
  }
  g_autofree char *json = job_to_json(job, w->cfg.model_name);
  job_events_publish(w->cfg.events, id, type, json);
}

/* "path:scale" of the job's LoRA for the i2vgen lora property, or NULL. */
static char *lora_spec(JobWorker *w, const JobParams *p) {
  if (p->lora == NULL || w->cfg.lora_dir == NULL) return NULL;
  g_autofree char *file = g_strconcat(p->lora, ".safetensors", NULL);
  g_autofree char *path = g_build_filename(w->cfg.lora_dir, file, NULL);
  char scale[G_ASCII_DTOSTR_BUF_SIZE];
  g_ascii_dtostr(scale, sizeof(scale), p->lora_scale);
  return g_strconcat(path, ":", scale, NULL);
}

/* How long a finished run keeps trying to record its result while the queue's store cannot be
 * reached (a Redis restart or failover), before it leaves the job to be taken over. */
#define RECORD_PATIENCE_US (120 * G_USEC_PER_SEC)

/* TRUE when *err says the store cannot be reached and there is time to try again: the error is
 * logged and cleared, and the caller tries again after a second. */
static gboolean store_retry(JobWorker *w, const Job *job, GError **err, gint64 deadline) {
  if (!g_error_matches(*err, JOB_QUEUE_ERROR, JOB_QUEUE_ERROR_STORE) ||
      g_get_monotonic_time() >= deadline || g_cancellable_is_cancelled(w->stop))
    return FALSE;
  g_printerr("%s: %s: %s; trying again to record the finished video\n", w->cfg.log_name, job->id,
             (*err)->message);
  g_clear_error(err);
  g_usleep(G_USEC_PER_SEC);
  return TRUE;
}

/* Moves the finished files into videos/ and marks the job completed; FALSE with error when the
 * files cannot be moved, or the store cannot be reached for RECORD_PATIENCE_US
 * (JOB_QUEUE_ERROR_STORE: the job is left to be taken over, never failed for it). A job deleted
 * meanwhile leaves no files behind; a job this run no longer owns keeps the files of the run that
 * owns it (*discarded). */
static gboolean complete(JobWorker *w, const Job *job, const char *video_tmp, const char *thumb_tmp,
                         gboolean *discarded, GError **error) {
  gint64 deadline = g_get_monotonic_time() + RECORD_PATIENCE_US;
  GError *err = NULL;
  do {
    *discarded = !w->cfg.queue->ops->owns(w->cfg.queue, job->id, &err);
  } while (err != NULL && store_retry(w, job, &err, deadline));
  if (err != NULL) {
    g_propagate_error(error, err);
    return FALSE;
  }
  if (*discarded) return TRUE;
  g_autofree char *video = job_files_video(w->cfg.files, job->id);
  g_autofree char *thumb = job_files_thumbnail(w->cfg.files, job->id);
  if (!job_files_commit(thumb_tmp, thumb, error) || !job_files_commit(video_tmp, video, error))
    return FALSE;
  gboolean finished; /* finish is idempotent: a try that reached the store counts once */
  do {
    finished = w->cfg.queue->ops->finish(w->cfg.queue, job->id, JOB_COMPLETED, NULL, NULL, &err);
  } while (!finished && err != NULL && store_retry(w, job, &err, deadline));
  if (!finished) {
    if (err != NULL) {
      g_propagate_error(error, err);
      return FALSE;
    }
    job_files_remove(w->cfg.files, job->id); /* deleted while the files were moved */
  }
  return TRUE;
}

/* Gives the job back to the queue (nothing changes when the run no longer owns it). */
static void release(JobWorker *w, const char *id) {
  GError *err = NULL;
  if (!w->cfg.queue->ops->release(w->cfg.queue, id, &err)) report(w, err);
}

/* Marks the job failed with code and message. */
static void fail(JobWorker *w, const Job *job, const char *code, const char *message) {
  GError *err = NULL;
  if (!w->cfg.queue->ops->finish(w->cfg.queue, job->id, JOB_FAILED, code, message, &err) &&
      err != NULL)
    report(w, err);
}

static void run_one(JobWorker *w, Job *job) {
  g_mutex_lock(&w->lock);
  w->running = g_strdup(job->id);
  w->cancel = g_cancellable_new();
  w->deleted = FALSE;
  if (w->give_back) g_cancellable_cancel(w->cancel); /* stopped with cancel_running meanwhile */
  GCancellable *cancel = g_object_ref(w->cancel);
  g_mutex_unlock(&w->lock);
  publish_video(w, job->id, "video");

  g_autofree char *input = job_files_input(w->cfg.files, job->id);
  g_autofree char *video_tmp = job_files_temp(w->cfg.files, ".mp4");
  g_autofree char *thumb_tmp = job_files_temp(w->cfg.files, ".png");
  g_autofree char *lora = lora_spec(w, &job->params);
  gint64 start = g_get_monotonic_time();
  RunState rs = {w, job, -1, -1, start, 0};
  RunnerJob rj = {.params = &job->params,
                  .lora = lora,
                  .input = input,
                  .max_pixels = w->cfg.max_pixels,
                  .video_out = video_tmp,
                  .thumbnail_out = thumb_tmp,
                  .progress = on_progress,
                  .user = &rs};
  GError *err = NULL;
  gboolean discarded = FALSE;
  gboolean ok = job_runner_run(w->cfg.runner, &rj, cancel, &err) &&
                complete(w, job, video_tmp, thumb_tmp, &discarded, &err);
  double seconds = (g_get_monotonic_time() - start) / 1e6;

  g_mutex_lock(&w->lock);
  gboolean deleted = w->deleted;
  g_clear_pointer(&w->running, g_free);
  g_clear_object(&w->cancel);
  g_mutex_unlock(&w->lock);
  const char *result;
  if (ok && discarded) {
    result = "cancelled";
    release(w, job->id); /* the queue forgets this run */
    g_printerr("%s: %s ran to the end but is no longer this run's (deleted, or taken over by "
               "another worker): this result is discarded\n",
               w->cfg.log_name, job->id);
  } else if (ok) {
    result = "completed";
    job_files_remove_input(w->cfg.files, job->id);
    publish_video(w, job->id, "completed");
    g_printerr("%s: %s completed in %.2f s (first step after %.2f s)\n", w->cfg.log_name, job->id,
               seconds, rs.first_step_us / 1e6);
  } else if (g_error_matches(err, JOB_QUEUE_ERROR, JOB_QUEUE_ERROR_STORE)) {
    result = "failed";
    /* not marked failed: the video may well be made, and the store is what failed; the job
     * stays claimed and is taken over (Redis: after --claim-after; SQLite: at the next start) */
    g_printerr("%s: %s: the result cannot be recorded: %s; left to be taken over\n",
               w->cfg.log_name, job->id, err->message);
  } else if (g_error_matches(err, G_IO_ERROR, G_IO_ERROR_CANCELLED)) {
    result = "cancelled";
    /* shutdown: back to the queue, this attempt not counted; deleted: the queue forgets it */
    release(w, job->id);
    g_printerr("%s: %s %s after %.2f s\n", w->cfg.log_name, job->id,
               deleted ? "deleted" : "given back to the queue", seconds);
  } else {
    result = "failed";
    fail(w, job, "generation_failed", err->message);
    job_files_remove_input(w->cfg.files, job->id);
    publish_video(w, job->id, "failed");
    g_printerr("%s: %s failed: %s\n", w->cfg.log_name, job->id, err->message);
  }
  serve_metrics_add_finished(w->cfg.metrics, result, seconds);
  g_clear_error(&err);
  g_unlink(video_tmp);
  g_unlink(thumb_tmp);
  g_object_unref(cancel);
}

static gboolean call_stopped(gpointer data) {
  JobWorker *w = data;
  w->cfg.stopped(w->cfg.user);
  return G_SOURCE_REMOVE;
}

static gpointer worker_main(gpointer data) {
  JobWorker *w = data;
  while (!g_cancellable_is_cancelled(w->stop)) {
    GError *err = NULL;
    Job *job = w->cfg.queue->ops->claim(w->cfg.queue, w->stop, &err);
    if (job != NULL) {
      run_one(w, job);
      job_free(job);
    } else if (err != NULL) { /* the store failed: say so and try again shortly */
      g_printerr("%s: cannot take the next job: %s\n", w->cfg.log_name, err->message);
      g_error_free(err);
      if (!g_cancellable_is_cancelled(w->stop)) g_usleep(G_USEC_PER_SEC);
    }
  }
  if (w->cfg.stopped != NULL) g_idle_add_full(G_PRIORITY_DEFAULT, call_stopped, w, NULL);
  return NULL;
}

/* A deleted job that is running is cancelled (in the events' context). */
static void on_event(const JobEvent *ev, gpointer user) {
  JobWorker *w = user;
  if (g_strcmp0(ev->type, "deleted") != 0) return;
  g_mutex_lock(&w->lock);
  if (w->running != NULL && g_strcmp0(w->running, ev->job_id) == 0) {
    w->deleted = TRUE;
    g_cancellable_cancel(w->cancel);
  }
  g_mutex_unlock(&w->lock);
}

JobWorker *job_worker_start(const JobWorkerConfig *cfg) {
  JobWorker *w = g_new0(JobWorker, 1);
  w->cfg = *cfg;
  w->stop = g_cancellable_new();
  g_mutex_init(&w->lock);
  w->deleted_sub = job_events_subscribe(cfg->events, NULL, on_event, w);
  w->thread = g_thread_new("job-worker", worker_main, w);
  return w;
}

void job_worker_stop(JobWorker *w, gboolean cancel_running) {
  g_cancellable_cancel(w->stop);
  if (!cancel_running) return;
  g_mutex_lock(&w->lock);
  w->give_back = TRUE;
  if (w->cancel != NULL) g_cancellable_cancel(w->cancel);
  g_mutex_unlock(&w->lock);
}

gboolean job_worker_busy(JobWorker *w) {
  g_mutex_lock(&w->lock);
  gboolean busy = w->running != NULL;
  g_mutex_unlock(&w->lock);
  return busy;
}

void job_worker_free(JobWorker *w) {
  if (w == NULL) return;
  g_thread_join(w->thread);
  job_events_unsubscribe(w->cfg.events, w->deleted_sub);
  g_object_unref(w->stop);
  g_free(w->running);
  g_mutex_clear(&w->lock);
  g_free(w);
}
