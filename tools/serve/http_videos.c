/* /v1/videos: create, list, retrieve, delete, content. */
#include "http_routes.h"

#include <string.h>

#include "image_input.h"
#include "job_request.h"
#include "request_form.h"

static char *deleted_json(const char *id) {
  return g_strdup_printf("{\"id\":\"%s\",\"object\":\"video.deleted\",\"deleted\":true}", id);
}

/* A queue error as an API error: not found 404, a full queue 429, the store 500. */
static void queue_error(ApiError **err, GError *e) {
  if (g_error_matches(e, JOB_QUEUE_ERROR, JOB_QUEUE_ERROR_NOT_FOUND))
    api_error_take_gerror(err, 404, "not_found", "id", e);
  else if (g_error_matches(e, JOB_QUEUE_ERROR, JOB_QUEUE_ERROR_FULL))
    api_error_take_gerror(err, 429, "queue_full", NULL, e);
  else
    api_error_take_gerror(err, 500, "server_error", NULL, e);
}

static void send_queue_error(ServeApp *app, SoupServerMessage *msg, GError *e) {
  g_autoptr(ApiError) err = NULL;
  queue_error(&err, e);
  http_send_error(msg, err, http_retry_after(app));
}

/* ---- create ---- */

/* The input image's bytes: the file part, a data: URL, or (with --allow-fetch) a fetched URL. */
static GBytes *input_image(ServeApp *app, const RequestForm *form, ApiError **err) {
  GError *e = NULL;
  GBytes *image = NULL;
  if (form->image != NULL) {
    image = g_bytes_ref(form->image);
  } else if (form->image_url == NULL) {
    api_error_set(err, 400, "missing_field", "input_reference",
                  "input_reference is required: the image (PNG, JPEG or WebP) as a file part, or "
                  "input_reference[image_url] with a data: URL");
    return NULL;
  } else if (g_str_has_prefix(form->image_url, "data:")) {
    image = image_input_from_data_url(form->image_url, app->catalog->max_upload, &e);
  } else if (app->allow_fetch) {
    image = image_input_fetch(form->image_url, app->catalog->max_upload, &e);
  } else {
    api_error_set(err, 400, "invalid_value", "input_reference",
                  "input_reference[image_url]: this server does not fetch remote URLs (start it "
                  "with --allow-fetch); send the image as a file part or a data: URL");
    return NULL;
  }
  if (e != NULL)
    api_error_take_gerror(err, e->code == IMAGE_INPUT_ERROR_TOO_LARGE ? 413 : 400,
                          e->code == IMAGE_INPUT_ERROR_TOO_LARGE ? "request_too_large"
                                                                 : "invalid_value",
                          "input_reference", e);
  return image;
}

/* Decodes the image once to refuse what the job could not use: 415 undecodable, 413 too many
 * pixels. */
static gboolean check_image(ServeApp *app, GBytes *image, ApiError **err) {
  I2vImage img;
  GError *e = NULL;
  if (image_input_decode(image, app->catalog->max_pixels, &img, &e)) {
    i2v_image_clear(&img);
    return TRUE;
  }
  gboolean big = e->code == IMAGE_INPUT_ERROR_TOO_LARGE;
  api_error_take_gerror(err, big ? 413 : 415, big ? "image_too_large" : "unsupported_image",
                        "input_reference", e);
  return FALSE;
}

/* Writes the image as the job's input (temporary name, then renamed). */
static gboolean store_input(ServeApp *app, const char *id, GBytes *image, ApiError **err) {
  g_autofree char *tmp = job_files_temp(app->files, ".img");
  g_autofree char *input = job_files_input(app->files, id);
  gsize n;
  const char *d = g_bytes_get_data(image, &n);
  GError *e = NULL;
  if (g_file_set_contents(tmp, d, (gssize)n, &e) && job_files_commit(tmp, input, &e)) return TRUE;
  api_error_take_gerror(err, 500, "server_error", NULL, e);
  return FALSE;
}

/* Everything of a creation that may block: read the form, check the fields and the image,
 * store the image and queue the job. */
static Job *create_job(ServeApp *app, const char *content_type, RequestBody *body, ApiError **err) {
  GError *e = NULL;
  g_autoptr(GBytes) bytes = request_body_finish(body, &e);
  if (bytes == NULL) {
    api_error_take_gerror(err, 500, "server_error", NULL, e);
    return NULL;
  }
  RequestForm form;
  if (!request_form_parse(content_type, bytes, &form, err)) return NULL;
  g_autoptr(Job) job = job_new();
  g_autoptr(GBytes) image = NULL;
  gboolean ok = job_request_parse(app->catalog, form.fields, &job->params, err) &&
                (image = input_image(app, &form, err)) != NULL && check_image(app, image, err);
  request_form_clear(&form);
  if (!ok) return NULL;
  job_id_new(job->id);
  job->status = JOB_QUEUED;
  job->created_at = g_get_real_time() / G_USEC_PER_SEC;
  if (!store_input(app, job->id, image, err)) return NULL;
  if (!app->queue->ops->submit(app->queue, job, app->catalog->max_queued, &e)) {
    job_files_remove_input(app->files, job->id);
    queue_error(err, e);
    return NULL;
  }
  return g_steal_pointer(&job);
}

typedef struct {
  ServeApp *app;
  SoupServerMessage *msg; /* a reference, paused while the thread works */
  char *content_type;
  Job *job;
  ApiError *error;
} Creation;

static void creation_free(Creation *c) {
  g_object_unref(c->msg);
  g_free(c->content_type);
  job_free(c->job);
  api_error_free(c->error);
  g_free(c);
}

static void create_in_thread(GTask *task, gpointer source, gpointer data, GCancellable *cancel) {
  Creation *c = data;
  (void)task;
  (void)source;
  (void)cancel;
  c->job = create_job(c->app, c->content_type, http_request_body(c->msg), &c->error);
}

static void create_done(GObject *source, GAsyncResult *result, gpointer data) {
  Creation *c = g_task_get_task_data(G_TASK(result));
  (void)source;
  (void)data;
  if (c->job != NULL)
    http_send_json(c->msg, 200, job_to_json(c->job, c->app->catalog->model_name));
  else
    http_send_error(c->msg, c->error, http_retry_after(c->app));
  soup_server_message_unpause(c->msg);
}

void http_videos_create(ServeApp *app, SoupServerMessage *msg) {
  if (http_request_body(msg) == NULL) { /* the early handler refused it */
    http_fail(msg, 500, "server_error", NULL, "the request body was not received");
    return;
  }
  Creation *c = g_new0(Creation, 1);
  c->app = app;
  c->msg = g_object_ref(msg);
  c->content_type = g_strdup(
      soup_message_headers_get_one(soup_server_message_get_request_headers(msg), "Content-Type"));
  soup_server_message_pause(msg);
  GTask *task = g_task_new(NULL, NULL, create_done, NULL);
  g_task_set_task_data(task, c, (GDestroyNotify)creation_free);
  g_task_run_in_thread(task, create_in_thread);
  g_object_unref(task);
}

/* ---- list, retrieve, delete ---- */

void http_videos_list(ServeApp *app, SoupServerMessage *msg, GHashTable *query) {
  const char *limit_text = query ? g_hash_table_lookup(query, "limit") : NULL;
  const char *after = query ? g_hash_table_lookup(query, "after") : NULL;
  const char *order = query ? g_hash_table_lookup(query, "order") : NULL;
  guint64 limit = 20;
  if (limit_text != NULL && !g_ascii_string_to_unsigned(limit_text, 10, 1, 100, &limit, NULL)) {
    http_fail(msg, 400, "invalid_value", "limit", "limit '%s': expected an integer from 1 to 100",
              limit_text);
    return;
  }
  if (order != NULL && strcmp(order, "asc") != 0 && strcmp(order, "desc") != 0) {
    http_fail(msg, 400, "invalid_value", "order", "order '%s': expected 'asc' or 'desc'", order);
    return;
  }
  if (after != NULL && !job_id_valid(after)) {
    http_fail(msg, 400, "invalid_value", "after",
              "after '%s': expected the id of a video ('video_' and 32 hexadecimal digits)", after);
    return;
  }
  gboolean has_more = FALSE;
  GError *e = NULL;
  g_autoptr(GPtrArray) jobs = app->queue->ops->list(app->queue, (guint)limit, after,
                                                    g_strcmp0(order, "asc") == 0, &has_more, &e);
  if (jobs == NULL) {
    g_autoptr(ApiError) err = NULL;
    queue_error(&err, e);
    if (err->status == 404) { /* the cursor, not the resource, is what is missing */
      err->status = 400;
      g_free(err->param);
      err->param = g_strdup("after");
    }
    http_send_error(msg, err, 1);
    return;
  }
  g_autoptr(JsonBuilder) b = json_builder_new();
  json_builder_begin_object(b);
  json_builder_set_member_name(b, "object");
  json_builder_add_string_value(b, "list");
  json_builder_set_member_name(b, "data");
  json_builder_begin_array(b);
  for (guint i = 0; i < jobs->len; i++)
    job_add_json(g_ptr_array_index(jobs, i), app->catalog->model_name, b);
  json_builder_end_array(b);
  const char *ends[2] = {"first_id", "last_id"};
  for (int i = 0; i < 2; i++) {
    json_builder_set_member_name(b, ends[i]);
    if (jobs->len > 0)
      json_builder_add_string_value(
          b, ((Job *)g_ptr_array_index(jobs, i == 0 ? 0 : jobs->len - 1))->id);
    else
      json_builder_add_null_value(b);
  }
  json_builder_set_member_name(b, "has_more");
  json_builder_add_boolean_value(b, has_more);
  json_builder_end_object(b);
  g_autoptr(JsonNode) root = json_builder_get_root(b);
  http_send_json(msg, 200, json_to_string(root, FALSE));
}

void http_videos_get(ServeApp *app, SoupServerMessage *msg, const char *id) {
  GError *e = NULL;
  g_autoptr(Job) job = app->queue->ops->get(app->queue, id, &e);
  if (job == NULL)
    send_queue_error(app, msg, e);
  else
    http_send_json(msg, 200, job_to_json(job, app->catalog->model_name));
}

void http_videos_delete(ServeApp *app, SoupServerMessage *msg, const char *id) {
  GError *e = NULL;
  JobStatus was;
  if (!app->queue->ops->remove(app->queue, id, &was, &e)) {
    send_queue_error(app, msg, e);
    return;
  }
  /* the worker cancels the job if it runs it; event streams of the job end */
  g_autofree char *json = deleted_json(id);
  job_events_publish(app->events, id, "deleted", json);
  job_files_remove(app->files, id);
  http_send_json(msg, 200, deleted_json(id));
}

/* ---- content ---- */

void http_videos_content(ServeApp *app, SoupServerMessage *msg, const char *id, GHashTable *query) {
  const char *variant = query ? g_hash_table_lookup(query, "variant") : NULL;
  gboolean thumbnail = g_strcmp0(variant, "thumbnail") == 0;
  if (variant != NULL && !thumbnail && strcmp(variant, "video") != 0) {
    http_fail(msg, 400, "invalid_value", "variant",
              "variant '%s': expected 'video' (the MP4) or 'thumbnail' (PNG of the first frame)",
              variant);
    return;
  }
  GError *e = NULL;
  g_autoptr(Job) job = app->queue->ops->get(app->queue, id, &e);
  if (job == NULL) {
    send_queue_error(app, msg, e);
    return;
  }
  if (job->status != JOB_COMPLETED) {
    http_fail(msg, 409, "video_not_ready", "id",
              "video %s is %s (%d%%): its content exists once it is completed", id,
              job_status_name(job->status), job->progress);
    return;
  }
  g_autofree char *path =
      thumbnail ? job_files_thumbnail(app->files, id) : job_files_video(app->files, id);
  g_autoptr(GMappedFile) file = g_mapped_file_new(path, FALSE, &e);
  if (file == NULL) {
    g_autoptr(ApiError) err = NULL;
    api_error_take_gerror(&err, 500, "server_error", NULL, e);
    http_send_error(msg, err, 1);
    return;
  }
  /* a complete body with status 200: libsoup answers Range requests from it (206) */
  g_autoptr(GBytes) bytes = g_mapped_file_get_bytes(file);
  SoupMessageHeaders *h = soup_server_message_get_response_headers(msg);
  soup_message_headers_set_content_type(h, thumbnail ? "image/png" : "video/mp4", NULL);
  soup_message_headers_replace(h, "Accept-Ranges", "bytes");
  soup_message_body_append_bytes(soup_server_message_get_response_body(msg), bytes);
  soup_server_message_set_status(msg, 200, NULL);
}
