/* i2vgen serve: the HTTP video-generation service (docs/service.md). Binds the address first (a
 * port in use fails at once), prints the URL, loads the model, then serves until SIGTERM or
 * SIGINT, which drain: new videos are refused with 503, the running job finishes (or, after
 * --drain-timeout seconds or a second signal, is cancelled and queued again), and the server
 * exits 0.
 *
 * With --queue URL it is an API node of a cluster: jobs go to Redis for `i2vgen worker`s
 * (cmd_worker.c), results come from the shared --results folder, no model is loaded here, and
 * SIGTERM stops at once (the jobs are in Redis, not here). */
#include <glib-unix.h>
#include <glib/gstdio.h>
#include <stdio.h>
#include <string.h>

#include "../commands.h"
#include "http.h"
#include "job_events_redis.h"
#include "serve_options.h"

typedef struct {
  CmdModelArgs model; /* --model (default: I2VGEN_MODEL), --variant, --device, --precision */
  char *listen, *lora_dir, *data, *api_key;
  char *default_preset, *model_name;
  char *queue, *results, *name; /* a cluster's API node: Redis URL, shared store, node name */
  int max_queued, max_upload_mb, max_size, max_frames, max_steps, retries, drain_timeout;
  int job_ttl, size_multiple; /* API node: finished jobs' lifetime, the workers' model's sizes */
  gint64 max_pixels;
  gboolean allow_fetch;
} Options;

typedef struct {
  ServeApp app;
  GMainLoop *loop;
  int drain_timeout;
  guint drain_timer;
} Server;

/* Parses "HOST:PORT" or "[V6]:PORT" with a numeric host into a socket address. */
static GSocketAddress *parse_listen(const char *text, GError **error) {
  const char *colon = strrchr(text, ':');
  guint64 port;
  g_autofree char *host = NULL;
  if (colon != NULL) {
    host = g_strndup(text, colon - text);
    if (host[0] == '[' && g_str_has_suffix(host, "]")) {
      char *inner = g_strndup(host + 1, strlen(host) - 2);
      g_free(host);
      host = inner;
    }
  }
  g_autoptr(GInetAddress) addr = host ? g_inet_address_new_from_string(host) : NULL;
  if (addr == NULL || !g_ascii_string_to_unsigned(colon + 1, 10, 0, 65535, &port, NULL)) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                "--listen '%s': expected ADDRESS:PORT with a numeric address, e.g. "
                "127.0.0.1:8000, 0.0.0.0:8000 or [::1]:8000 (port 0: any free port)",
                text);
    return NULL;
  }
  return g_inet_socket_address_new(addr, (guint16)port);
}

/* Binds server to the --listen address; a port in use is one line naming it and what to do. */
static gboolean listen_on(SoupServer *server, const char *listen, GError **error) {
  g_autoptr(GSocketAddress) addr = parse_listen(listen, error);
  if (addr == NULL) return FALSE;
  GError *err = NULL;
  if (soup_server_listen(server, addr, 0, &err)) return TRUE;
  if (g_error_matches(err, G_IO_ERROR, G_IO_ERROR_ADDRESS_IN_USE))
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_ADDRESS_IN_USE,
                "%s is already in use: stop what listens there, or choose another port "
                "(--listen with another PORT, or port 0 for any free one)",
                listen);
  else
    g_set_error(error, err->domain, err->code, "cannot listen on %s: %s", listen, err->message);
  g_error_free(err);
  return FALSE;
}

/* Deletes uploads that belong to no job (a crash between storing the image and queueing). */
static void remove_orphan_uploads(JobFiles *files, JobQueue *queue) {
  GDir *dir = g_dir_open(files->uploads, 0, NULL);
  const char *name;
  while (dir != NULL && (name = g_dir_read_name(dir)) != NULL) {
    GError *err = NULL;
    Job *job = job_id_valid(name) ? queue->ops->get(queue, name, &err) : NULL;
    if (job == NULL && (err == NULL || err->code == JOB_QUEUE_ERROR_NOT_FOUND)) {
      g_autofree char *path = g_build_filename(files->uploads, name, NULL);
      g_remove(path);
    }
    job_free(job);
    g_clear_error(&err);
  }
  if (dir != NULL) g_dir_close(dir);
}

/* Ids a sweep takes from the store at a time. */
#define SWEEP_BATCH 100

/* Removes the files of finished videos whose record expired in the cluster's Redis (--job-ttl):
 * the store hands each id to one API node, which deletes its video, thumbnail and upload, so
 * the shared result store does not keep what the API can no longer serve. */
static gboolean sweep_expired(gpointer user) {
  ServeApp *app = user;
  GError *err = NULL;
  guint taken;
  do {
    char **ids = app->queue->ops->expired(app->queue, SWEEP_BATCH, &err);
    for (char **id = ids; id != NULL && *id != NULL; id++)
      if (job_id_valid(*id)) job_files_remove(app->files, *id); /* ids become paths */
    taken = ids != NULL ? g_strv_length(ids) : 0;
    if (taken > 0) g_printerr("i2vgen serve: removed the files of %u expired video(s)\n", taken);
    g_strfreev(ids);
  } while (taken == SWEEP_BATCH);
  if (err != NULL) {
    g_printerr("i2vgen serve: sweeping expired videos: %s (tried again later)\n", err->message);
    g_error_free(err);
  }
  return G_SOURCE_CONTINUE;
}

static void on_worker_stopped(gpointer user) {
  Server *s = user;
  g_main_loop_quit(s->loop);
}

static gboolean drain_timeout(gpointer user) {
  Server *s = user;
  s->drain_timer = 0;
  g_printerr("i2vgen serve: the running video did not finish within --drain-timeout %d s: "
             "cancelling it (it stays queued)\n",
             s->drain_timeout);
  job_worker_stop(s->app.worker, TRUE);
  return G_SOURCE_REMOVE;
}

/* SIGTERM/SIGINT: the first drains, the second gives the running job back at once. An API node
 * runs no job: it stops at once. */
static gboolean on_signal(gpointer user) {
  Server *s = user;
  if (s->app.worker == NULL) {
    s->app.draining = TRUE;
    g_main_loop_quit(s->loop);
  } else if (!s->app.draining) {
    s->app.draining = TRUE;
    g_printerr("i2vgen serve: draining: refusing new videos%s\n",
               job_worker_busy(s->app.worker) ? ", waiting for the running one" : "");
    job_worker_stop(s->app.worker, FALSE);
    s->drain_timer = g_timeout_add_seconds((guint)s->drain_timeout, drain_timeout, s);
  } else {
    job_worker_stop(s->app.worker, TRUE);
  }
  return G_SOURCE_CONTINUE;
}

static gboolean check_options(Options *o, GError **error) {
  if (o->api_key == NULL) o->api_key = g_strdup(g_getenv("I2VGEN_API_KEY"));
  if (o->data == NULL) o->data = g_build_filename(g_get_user_data_dir(), "i2vgen", NULL);
  if (o->results == NULL) o->results = g_strdup(o->data);
  if (o->name == NULL) o->name = job_files_node_name();
  /* an API node of a cluster loads no model */
  if (o->queue == NULL && !serve_options_check_model(&o->model, o->lora_dir, error)) return FALSE;
  if (o->queue != NULL && !serve_options_check_queue(o->queue, error)) return FALSE;
  if (o->queue != NULL && o->lora_dir != NULL && !g_file_test(o->lora_dir, G_FILE_TEST_IS_DIR)) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "--lora-dir: not a folder");
    return FALSE;
  }
  if (o->max_queued < 1 || o->max_upload_mb < 1 || o->max_size < 8 || o->max_frames < 1 ||
      o->max_steps < 1 || o->max_pixels < 1 || o->retries < 0 || o->drain_timeout < 0 ||
      o->job_ttl < 1 || o->size_multiple < 1) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                "--max-queued, --max-upload-mb, --max-frames, --max-steps, --max-image-pixels, "
                "--job-ttl and --size-multiple must be at least 1, --max-size at least 8, "
                "--retries and --drain-timeout at least 0");
    return FALSE;
  }
  return serve_options_check_name(o->name, error);
}

static void options_clear(Options *o) {
  char **strings[] = {&o->listen,     &o->lora_dir, &o->data,    &o->api_key, &o->default_preset,
                      &o->model_name, &o->queue,    &o->results, &o->name};
  for (gsize i = 0; i < G_N_ELEMENTS(strings); i++) g_clear_pointer(strings[i], g_free);
  cmd_model_args_clear(&o->model);
}

/* Everything after the options: returns the exit status. */
static int serve(Options *o) {
  Server s = {.drain_timeout = o->drain_timeout};
  ServeApp *app = &s.app;
  GError *err = NULL;
  guint requeued = 0, failed = 0;
  g_autofree char *db = g_build_filename(o->data, "i2vgen.db", NULL);
  RedisQueueConfig rc = {.job_ttl_s = (guint)o->job_ttl, .model_name = o->model_name};
  g_autoptr(JobFiles) files =
      job_files_open(o->queue ? o->results : o->data, o->queue ? o->name : NULL, &err);
  g_autoptr(JobQueue) queue = NULL;
  if (files != NULL)
    queue = o->queue ? job_queue_redis_open(o->queue, &rc, &err)
                     : job_queue_sqlite_open(db, (guint)o->retries, &requeued, &failed, &err);
  if (queue == NULL) return cmd_fail("serve", err);
  if (requeued + failed > 0)
    g_printerr("i2vgen serve: %u interrupted video(s) queued again, %u failed after %d "
               "retries\n",
               requeued, failed, o->retries);
  /* an API node cannot tell another node's upload in flight from an orphan */
  if (o->queue == NULL) remove_orphan_uploads(files, queue);

  g_autoptr(SoupServer) server = serve_http_new(app);
  if (!listen_on(server, o->listen, &err)) return cmd_fail("serve", err);
  GSList *uris = soup_server_get_uris(server);
  g_autofree char *url = g_uri_to_string(uris->data);
  g_slist_free_full(uris, (GDestroyNotify)g_uri_unref);
  printf("i2vgen serve: listening on %s\n", url);
  fflush(stdout);

  guint multiple = (guint)o->size_multiple;
  JobRunner *runner = NULL;
  if (o->queue == NULL) {
    gint64 t0 = g_get_monotonic_time();
    RunnerModel rm = {o->model.model, o->model.variant, o->model.device, o->model.precision};
    runner = job_runner_new(&rm, &err);
    if (runner == NULL) return cmd_fail("serve", err);
    g_autoptr(GstStructure) info = job_runner_model_info(runner);
    gst_structure_get_uint(info, "size-multiple", &multiple);
    g_printerr("i2vgen serve: model %s loaded on %s in %.1f s\n", o->model.model,
               gst_structure_get_string(info, "device"), (g_get_monotonic_time() - t0) / 1e6);
  }
  ServeLimits limits = {.max_size = (guint)o->max_size,
                        .max_frames = (guint)o->max_frames,
                        .max_steps = (guint)o->max_steps,
                        .max_pixels = (guint64)o->max_pixels,
                        .max_upload = (gsize)o->max_upload_mb * 1024 * 1024,
                        .max_queued = (guint)o->max_queued,
                        .default_preset = o->default_preset,
                        .lora_dir = o->lora_dir,
                        .model_name = o->model_name,
                        .size_multiple = multiple};
  g_autoptr(ServeCatalog) catalog = serve_catalog_new(&limits, &err);
  JobEvents *events = job_events_new(g_main_context_default());
  JobEventsRedis *bridge = NULL;
  if (catalog != NULL && o->queue != NULL) bridge = job_events_redis_start(events, o->queue, &err);
  if (catalog == NULL || (o->queue != NULL && bridge == NULL)) {
    job_events_free(events);
    job_runner_free(runner);
    return cmd_fail("serve", err);
  }

  s.loop = g_main_loop_new(NULL, FALSE);
  g_autoptr(ServeMetrics) metrics = serve_metrics_new();
  *app = (ServeApp){.catalog = catalog,
                    .queue = queue,
                    .events = events,
                    .files = files,
                    .metrics = metrics,
                    .runner = runner,
                    .api_key = o->api_key,
                    .allow_fetch = o->allow_fetch};
  JobWorkerConfig wc = {.queue = queue,
                        .events = events,
                        .files = files,
                        .runner = runner,
                        .metrics = metrics,
                        .log_name = "i2vgen serve",
                        .model_name = o->model_name,
                        .lora_dir = o->lora_dir,
                        .max_pixels = (guint64)o->max_pixels,
                        .stopped = on_worker_stopped,
                        .user = &s};
  if (o->queue == NULL) app->worker = job_worker_start(&wc);
  /* expired records are looked for every job-ttl, at least once a minute */
  guint sweep =
      o->queue != NULL ? g_timeout_add_seconds(MIN(o->job_ttl, 60), sweep_expired, app) : 0;
  guint sigterm = g_unix_signal_add(SIGTERM, on_signal, &s);
  guint sigint = g_unix_signal_add(SIGINT, on_signal, &s);
  g_main_loop_run(s.loop);

  g_source_remove(sigterm);
  g_source_remove(sigint);
  if (sweep != 0) g_source_remove(sweep);
  if (s.drain_timer != 0) g_source_remove(s.drain_timer);
  soup_server_disconnect(server);
  job_worker_free(app->worker);
  job_runner_free(runner);
  job_events_redis_stop(bridge);
  job_events_free(events);
  g_main_loop_unref(s.loop);
  g_printerr("i2vgen serve: stopped\n");
  return 0;
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(Options, options_clear)

int cmd_serve(int argc, char **argv) {
  g_auto(Options) o = {.max_queued = 100,
                       .max_upload_mb = 20,
                       .max_size = 1280,
                       .max_frames = 64,
                       .max_steps = 150,
                       .max_pixels = 4096 * 4096,
                       .retries = 2,
                       .drain_timeout = 60,
                       .job_ttl = 7 * 24 * 3600,
                       .size_multiple = 8};
  GOptionEntry entries[] = {
      {"listen", 0, 0, G_OPTION_ARG_STRING, &o.listen,
       "ADDRESS:PORT to serve on (127.0.0.1:8000; 0.0.0.0:PORT exposes it; port 0 picks a free "
       "one and prints it)",
       "ADDR:PORT"},
      {"lora-dir", 0, 0, G_OPTION_ARG_FILENAME, &o.lora_dir,
       "folder of NAME.safetensors LoRA files requests may name (the allow-list)", "DIR"},
      {"data", 0, 0, G_OPTION_ARG_FILENAME, &o.data,
       "job database and files (default: $XDG_DATA_HOME/i2vgen)", "DIR"},
      {"max-queued", 0, 0, G_OPTION_ARG_INT, &o.max_queued,
       "videos that may wait; more get 429 (100)", "N"},
      {"api-key", 0, 0, G_OPTION_ARG_STRING, &o.api_key,
       "require 'Authorization: Bearer KEY' (default: I2VGEN_API_KEY; none: open)", "KEY"},
      {"max-upload-mb", 0, 0, G_OPTION_ARG_INT, &o.max_upload_mb,
       "largest request body in MiB; more get 413 (20)", "N"},
      {"max-size", 0, 0, G_OPTION_ARG_INT, &o.max_size, "largest width or height (1280)", "N"},
      {"max-frames", 0, 0, G_OPTION_ARG_INT, &o.max_frames, "most frames per video (64)", "N"},
      {"max-steps", 0, 0, G_OPTION_ARG_INT, &o.max_steps, "most denoising steps (150)", "N"},
      {"max-image-pixels", 0, 0, G_OPTION_ARG_INT64, &o.max_pixels,
       "most pixels of an input image, checked before decoding (16777216)", "N"},
      {"retries", 0, 0, G_OPTION_ARG_INT, &o.retries,
       "runs a video interrupted by a crash gets again before it fails (2)", "N"},
      {"drain-timeout", 0, 0, G_OPTION_ARG_INT, &o.drain_timeout,
       "seconds SIGTERM waits for the running video before queueing it again (60)", "S"},
      {"default-preset", 0, 0, G_OPTION_ARG_STRING, &o.default_preset,
       "preset of requests that name none (standard)", "NAME"},
      {"model-name", 0, 0, G_OPTION_ARG_STRING, &o.model_name,
       "the model name in video objects and the accepted 'model' field (i2vgen-xl)", "NAME"},
      {"queue", 0, 0, G_OPTION_ARG_STRING, &o.queue,
       "be an API node of a cluster: jobs go to this Redis (redis://HOST:PORT/DB or "
       "unix:///PATH) for `i2vgen worker`s; no model is loaded here (default: the embedded "
       "queue in --data)",
       "URL"},
      {"results", 0, 0, G_OPTION_ARG_FILENAME, &o.results,
       "with --queue: the result store shared with the workers (a folder, e.g. on a network "
       "file system; default: --data)",
       "DIR"},
      {"job-ttl", 0, 0, G_OPTION_ARG_INT, &o.job_ttl,
       "with --queue: seconds a finished video's record and files are kept (604800)", "S"},
      {"size-multiple", 0, 0, G_OPTION_ARG_INT, &o.size_multiple,
       "with --queue: what width and height must be multiples of, the workers' model's (8)", "N"},
      {"name", 0, 0, G_OPTION_ARG_STRING, &o.name,
       "with --queue: this node's name, its temporary folder in the store (HOST-PID)", "NAME"},
      {"allow-fetch", 0, 0, G_OPTION_ARG_NONE, &o.allow_fetch,
       "let input_reference[image_url] be an http(s) URL the server downloads", NULL},
      {NULL}};
  GOptionContext *ctx = g_option_context_new("- serve the HTTP video-generation API");
  g_option_context_add_main_entries(ctx, entries, NULL);
  cmd_model_add_options(ctx, &o.model, CMD_MODEL_DIR | CMD_MODEL_DEVICE);
  GError *err = NULL;
  gboolean ok = g_option_context_parse(ctx, &argc, &argv, &err);
  g_option_context_free(ctx);
  if (!ok) {
    cmd_fail("serve", err);
    return 2;
  }
  if (o.listen == NULL) o.listen = g_strdup("127.0.0.1:8000");
  if (o.default_preset == NULL) o.default_preset = g_strdup("standard");
  if (o.model_name == NULL) o.model_name = g_strdup("i2vgen-xl");
  if (!check_options(&o, &err)) {
    cmd_fail("serve", err);
    return 2;
  }
  gst_init(NULL, NULL);
  return serve(&o);
}
