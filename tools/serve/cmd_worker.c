/* i2vgen worker: a GPU node of a cluster (docs/service.md, "Scaling out"). Loads the model once,
 * then takes the videos `i2vgen serve --queue` API nodes put in Redis, runs each through the
 * service's own pipeline (job_worker.c, job_runner.c), publishes progress on the events stream
 * and writes the results into the shared result store. SIGTERM or SIGINT gives the running video
 * back to the queue (the next worker takes it at once) and exits 0. */
#include <glib-unix.h>
#include <stdio.h>

#include "../commands.h"
#include "job_events_redis.h"
#include "job_worker.h"
#include "serve_options.h"

typedef struct {
  CmdModelArgs model; /* --model (default: I2VGEN_MODEL), --variant, --device, --precision */
  char *queue, *results, *name, *lora_dir, *model_name;
  double claim_after;
  int retries;
  gint64 max_pixels;
} Options;

typedef struct {
  GMainLoop *loop;
  JobWorker *worker;
} Worker;

static void on_stopped(gpointer user) {
  Worker *w = user;
  g_main_loop_quit(w->loop);
}

/* SIGTERM/SIGINT: the running video goes back to the queue within one step, then the loop ends. */
static gboolean on_signal(gpointer user) {
  Worker *w = user;
  g_printerr("i2vgen worker: stopping: giving the running video back to the queue\n");
  job_worker_stop(w->worker, TRUE);
  return G_SOURCE_CONTINUE;
}

static gboolean check_options(Options *o, GError **error) {
  if (o->name == NULL) o->name = job_files_node_name();
  if (o->model_name == NULL) o->model_name = g_strdup("i2vgen-xl");
  const char *bad = NULL;
  if (o->queue == NULL)
    bad = "--queue URL: the Redis of the cluster is required (redis://HOST:PORT/DB or "
          "unix:///PATH/redis.sock)";
  else if (o->results == NULL || !g_file_test(o->results, G_FILE_TEST_IS_DIR))
    bad = "--results DIR: the result store the API nodes serve from is required (an existing "
          "folder)";
  else if (!(o->claim_after >= 0.1 && o->claim_after <= 86400) || o->retries < 0 ||
           o->max_pixels < 1)
    bad = "--claim-after must be from 0.1 to 86400 seconds, --retries at least 0, "
          "--max-image-pixels at least 1";
  if (bad != NULL) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "%s", bad);
    return FALSE;
  }
  return serve_options_check_model(&o->model, o->lora_dir, error) &&
         serve_options_check_name(o->name, error);
}

static void options_clear(Options *o) {
  char **strings[] = {&o->queue, &o->results, &o->name, &o->lora_dir, &o->model_name};
  for (gsize i = 0; i < G_N_ELEMENTS(strings); i++) g_clear_pointer(strings[i], g_free);
  cmd_model_args_clear(&o->model);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(Options, options_clear)

/* Everything after the options: returns the exit status. */
static int work(Options *o) {
  GError *err = NULL;
  g_autoptr(JobFiles) files = job_files_open(o->results, o->name, &err);
  if (files == NULL) return cmd_fail("worker", err);
  gint64 t0 = g_get_monotonic_time();
  RunnerModel rm = {o->model.model, o->model.variant, o->model.device, o->model.precision};
  JobRunner *runner = job_runner_new(&rm, &err);
  if (runner == NULL) return cmd_fail("worker", err);
  g_autoptr(GstStructure) info = job_runner_model_info(runner);
  g_autoptr(ServeMetrics) metrics = serve_metrics_new();
  RedisQueueConfig rc = {.consumer = o->name,
                         .claim_after_ms = (guint)(o->claim_after * 1000),
                         .retries = (guint)o->retries,
                         .metrics = metrics,
                         .model_name = o->model_name};
  JobQueue *queue = job_queue_redis_open(o->queue, &rc, &err);
  JobEvents *events = job_events_new(g_main_context_default());
  JobEventsRedis *bridge = queue ? job_events_redis_start(events, o->queue, &err) : NULL;
  if (bridge == NULL) {
    job_events_free(events);
    job_queue_free(queue);
    job_runner_free(runner);
    return cmd_fail("worker", err);
  }
  g_printerr("i2vgen worker: %s ready: model %s on %s (loaded in %.1f s), queue %s\n", o->name,
             o->model.model, gst_structure_get_string(info, "device"),
             (g_get_monotonic_time() - t0) / 1e6, o->queue);

  Worker w = {.loop = g_main_loop_new(NULL, FALSE)};
  JobWorkerConfig wc = {.queue = queue,
                        .events = events,
                        .files = files,
                        .runner = runner,
                        .metrics = metrics,
                        .log_name = "i2vgen worker",
                        .model_name = o->model_name,
                        .lora_dir = o->lora_dir,
                        .max_pixels = (guint64)o->max_pixels,
                        .stopped = on_stopped,
                        .user = &w};
  w.worker = job_worker_start(&wc);
  guint sigterm = g_unix_signal_add(SIGTERM, on_signal, &w);
  guint sigint = g_unix_signal_add(SIGINT, on_signal, &w);
  g_main_loop_run(w.loop);

  g_source_remove(sigterm);
  g_source_remove(sigint);
  job_worker_free(w.worker);
  job_events_redis_stop(bridge);
  job_events_free(events);
  job_queue_free(queue); /* the heartbeat ends, the worker key goes */
  job_runner_free(runner);
  g_main_loop_unref(w.loop);
  g_printerr("i2vgen worker: %s stopped\n", o->name);
  return 0;
}

int cmd_worker(int argc, char **argv) {
  g_auto(Options) o = {.claim_after = 30, .retries = 2, .max_pixels = 4096 * 4096};
  GOptionEntry entries[] = {
      {"queue", 0, 0, G_OPTION_ARG_STRING, &o.queue,
       "the cluster's Redis: redis://HOST[:PORT][/DB] or unix:///PATH/redis.sock[?db=N]", "URL"},
      {"results", 0, 0, G_OPTION_ARG_FILENAME, &o.results,
       "the result store shared with the API nodes (their --results folder)", "DIR"},
      {"name", 0, 0, G_OPTION_ARG_STRING, &o.name,
       "this worker's name in the consumer group, the metrics and the store (HOST-PID)", "NAME"},
      {"claim-after", 0, 0, G_OPTION_ARG_DOUBLE, &o.claim_after,
       "seconds a running video's worker may be silent before another takes the video over (30)",
       "S"},
      {"retries", 0, 0, G_OPTION_ARG_INT, &o.retries,
       "runs a video whose worker died gets again before it fails as interrupted (2)", "N"},
      {"lora-dir", 0, 0, G_OPTION_ARG_FILENAME, &o.lora_dir,
       "folder of the NAME.safetensors LoRA files videos may name (the API nodes' --lora-dir)",
       "DIR"},
      {"max-image-pixels", 0, 0, G_OPTION_ARG_INT64, &o.max_pixels,
       "most pixels of an input image, checked before decoding (16777216)", "N"},
      {"model-name", 0, 0, G_OPTION_ARG_STRING, &o.model_name,
       "the model name in video objects (the API nodes' --model-name; i2vgen-xl)", "NAME"},
      {NULL}};
  GOptionContext *ctx = g_option_context_new("- run the videos of a cluster's Redis queue");
  g_option_context_add_main_entries(ctx, entries, NULL);
  cmd_model_add_options(ctx, &o.model, CMD_MODEL_DIR | CMD_MODEL_DEVICE);
  GError *err = NULL;
  gboolean ok = g_option_context_parse(ctx, &argc, &argv, &err) &&
                cmd_no_arguments(argc, argv, &err) && check_options(&o, &err);
  g_option_context_free(ctx);
  if (!ok) {
    cmd_fail("worker", err);
    return 2;
  }
  gst_init(NULL, NULL);
  return work(&o);
}
