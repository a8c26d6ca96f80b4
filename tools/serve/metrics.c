/* Service metrics in the Prometheus text format. */
#include "metrics.h"

#include <json-glib/json-glib.h>
#include <stdio.h>
#include <unistd.h>

/* Upper bounds of the generation-time histogram, in seconds. */
static const double buckets[] = {0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800};
#define N_BUCKETS G_N_ELEMENTS(buckets)

typedef struct {
  double sum;
  guint64 count;
} Summary;

static const char *const results[] = {"completed", "failed", "cancelled"};
#define N_RESULTS G_N_ELEMENTS(results)

struct ServeMetrics {
  GMutex lock;
  guint64 finished[N_RESULTS];
  guint64 histogram[N_BUCKETS + 1]; /* last: above every bound */
  double generation_sum;
  guint64 generation_count;
  GHashTable *steps; /* "WxH/F" → Summary* */
};

ServeMetrics *serve_metrics_new(void) {
  ServeMetrics *m = g_new0(ServeMetrics, 1);
  g_mutex_init(&m->lock);
  m->steps = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
  return m;
}

void serve_metrics_free(ServeMetrics *m) {
  if (m == NULL) return;
  g_hash_table_destroy(m->steps);
  g_mutex_clear(&m->lock);
  g_free(m);
}

/* The step summary of key ("WxH/F"), made when missing. Lock held. */
static Summary *step_summary(ServeMetrics *m, const char *key) {
  Summary *s = g_hash_table_lookup(m->steps, key);
  if (s == NULL) {
    s = g_new0(Summary, 1);
    g_hash_table_insert(m->steps, g_strdup(key), s);
  }
  return s;
}

void serve_metrics_add_step(ServeMetrics *m, guint width, guint height, guint frames,
                            double seconds) {
  g_autofree char *key = g_strdup_printf("%ux%u/%u", width, height, frames);
  g_mutex_lock(&m->lock);
  Summary *s = step_summary(m, key);
  s->sum += seconds;
  s->count++;
  g_mutex_unlock(&m->lock);
}

void serve_metrics_add_finished(ServeMetrics *m, const char *result, double seconds) {
  g_mutex_lock(&m->lock);
  for (gsize i = 0; i < N_RESULTS; i++)
    if (g_strcmp0(result, results[i]) == 0) m->finished[i]++;
  if (g_strcmp0(result, "completed") == 0) {
    gsize b = 0;
    while (b < N_BUCKETS && seconds > buckets[b]) b++;
    m->histogram[b]++;
    m->generation_sum += seconds;
    m->generation_count++;
  }
  g_mutex_unlock(&m->lock);
}

double serve_metrics_mean_generation(ServeMetrics *m) {
  g_mutex_lock(&m->lock);
  double mean = m->generation_count ? m->generation_sum / m->generation_count : 0;
  g_mutex_unlock(&m->lock);
  return mean;
}

/* Adds n numbers to b as an array. */
static void add_array(JsonBuilder *b, const char *name, const double *v, gsize n) {
  json_builder_set_member_name(b, name);
  json_builder_begin_array(b);
  for (gsize i = 0; i < n; i++) json_builder_add_double_value(b, v[i]);
  json_builder_end_array(b);
}

char *serve_metrics_to_json(ServeMetrics *m) {
  g_autoptr(JsonBuilder) b = json_builder_new();
  double finished[N_RESULTS], histogram[N_BUCKETS + 1];
  g_mutex_lock(&m->lock);
  for (gsize i = 0; i < N_RESULTS; i++) finished[i] = (double)m->finished[i];
  for (gsize i = 0; i <= N_BUCKETS; i++) histogram[i] = (double)m->histogram[i];
  double generation[2] = {m->generation_sum, (double)m->generation_count};
  json_builder_begin_object(b);
  add_array(b, "finished", finished, N_RESULTS);
  add_array(b, "histogram", histogram, N_BUCKETS + 1);
  add_array(b, "generation", generation, 2);
  json_builder_set_member_name(b, "steps");
  json_builder_begin_object(b);
  GHashTableIter it;
  gpointer key, value;
  g_hash_table_iter_init(&it, m->steps);
  while (g_hash_table_iter_next(&it, &key, &value)) {
    Summary *s = value;
    double pair[2] = {s->sum, (double)s->count};
    add_array(b, key, pair, 2);
  }
  json_builder_end_object(b);
  json_builder_end_object(b);
  g_mutex_unlock(&m->lock);
  g_autoptr(JsonNode) root = json_builder_get_root(b);
  return json_to_string(root, FALSE);
}

/* The numbers of member name of o (an array of n numbers) into v; FALSE when it is not. */
static gboolean get_array(JsonObject *o, const char *name, double *v, guint n) {
  JsonNode *node = json_object_get_member(o, name);
  JsonArray *a = node && JSON_NODE_HOLDS_ARRAY(node) ? json_node_get_array(node) : NULL;
  if (a == NULL || json_array_get_length(a) != n) return FALSE;
  for (guint i = 0; i < n; i++) {
    JsonNode *e = json_array_get_element(a, i);
    if (!JSON_NODE_HOLDS_VALUE(e)) return FALSE;
    v[i] = json_node_get_double(e);
  }
  return TRUE;
}

gboolean serve_metrics_merge_json(ServeMetrics *m, const char *json, GError **error) {
  g_autoptr(JsonParser) parser = json_parser_new();
  double finished[N_RESULTS], histogram[N_BUCKETS + 1], generation[2];
  JsonObject *o = NULL, *steps = NULL;
  if (json_parser_load_from_data(parser, json, -1, NULL) &&
      JSON_NODE_HOLDS_OBJECT(json_parser_get_root(parser)))
    o = json_node_get_object(json_parser_get_root(parser));
  if (o != NULL && json_object_has_member(o, "steps") &&
      JSON_NODE_HOLDS_OBJECT(json_object_get_member(o, "steps")))
    steps = json_object_get_object_member(o, "steps");
  if (steps == NULL || !get_array(o, "finished", finished, N_RESULTS) ||
      !get_array(o, "histogram", histogram, N_BUCKETS + 1) ||
      !get_array(o, "generation", generation, 2)) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                "worker metrics: expected {finished, histogram, generation, steps}, got '%.80s'",
                json);
    return FALSE;
  }
  g_autoptr(GList) keys = json_object_get_members(steps);
  g_mutex_lock(&m->lock);
  for (gsize i = 0; i < N_RESULTS; i++) m->finished[i] += (guint64)finished[i];
  for (gsize i = 0; i <= N_BUCKETS; i++) m->histogram[i] += (guint64)histogram[i];
  m->generation_sum += generation[0];
  m->generation_count += (guint64)generation[1];
  for (GList *k = keys; k != NULL; k = k->next) {
    double pair[2];
    if (!get_array(steps, k->data, pair, 2)) continue;
    Summary *s = step_summary(m, k->data);
    s->sum += pair[0];
    s->count += (guint64)pair[1];
  }
  g_mutex_unlock(&m->lock);
  return TRUE;
}

guint64 serve_resident_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  unsigned long size = 0, resident = 0;
  gboolean ok = f != NULL && fscanf(f, "%lu %lu", &size, &resident) == 2;
  if (f != NULL) fclose(f);
  return ok ? (guint64)resident * (guint64)sysconf(_SC_PAGESIZE) : 0;
}

static void header(GString *out, const char *name, const char *type, const char *help) {
  g_string_append_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Appends "name{labels} value" with a locale-independent number. */
static void sample(GString *out, const char *name, const char *labels, double value) {
  char num[G_ASCII_DTOSTR_BUF_SIZE];
  g_ascii_formatd(num, sizeof(num), "%.17g", value);
  g_string_append_printf(out, "%s%s%s%s %s\n", name, labels ? "{" : "", labels ? labels : "",
                         labels ? "}" : "", num);
}

static void render_memory(const GstStructure *info, GString *out) {
  static const struct {
    const char *field, *metric, *kind;
  } fields[] = {
      {"persistent-bytes", "i2vgen_model_memory_bytes", "persistent"},
      {"persistent-peak-bytes", "i2vgen_model_memory_bytes", "persistent_peak"},
      {"scratch-bytes", "i2vgen_model_memory_bytes", "scratch"},
      {"device-used-bytes", "i2vgen_device_memory_bytes", "used"},
      {"device-total-bytes", "i2vgen_device_memory_bytes", "total"},
      {"device-peak-bytes", "i2vgen_device_memory_bytes", "peak"},
  };
  header(out, "i2vgen_model_memory_bytes", "gauge",
         "Memory the loaded model holds: weights (persistent, and its peak) and the reused "
         "activation arena (scratch), as of the end of the last video.");
  for (gsize i = 0; i < G_N_ELEMENTS(fields); i++) {
    if (i == 3)
      header(out, "i2vgen_device_memory_bytes", "gauge",
             "The GPU's memory as the driver reports it at the end of the last video (used by all "
             "processes), total, and the peak sampled during generations; 0 on the CPU.");
    guint64 v = 0;
    if (info == NULL || !gst_structure_get_uint64(info, fields[i].field, &v)) continue;
    g_autofree char *labels = g_strdup_printf("kind=\"%s\"", fields[i].kind);
    sample(out, fields[i].metric, labels, (double)v);
  }
}

void serve_metrics_render(ServeMetrics *m, const guint counts[JOB_STATUS_COUNT],
                          const GstStructure *model_info, GString *out) {
  header(out, "i2vgen_videos", "gauge", "Videos in the job store by status.");
  for (int s = 0; s < JOB_STATUS_COUNT; s++) {
    g_autofree char *labels = g_strdup_printf("status=\"%s\"", job_status_name((JobStatus)s));
    sample(out, "i2vgen_videos", labels, counts[s]);
  }
  header(out, "i2vgen_queue_depth", "gauge", "Videos waiting for the worker.");
  sample(out, "i2vgen_queue_depth", NULL, counts[JOB_QUEUED]);

  g_mutex_lock(&m->lock);
  header(out, "i2vgen_videos_finished_total", "counter",
         "Videos that ended since the server started, by result.");
  for (gsize i = 0; i < N_RESULTS; i++) {
    g_autofree char *labels = g_strdup_printf("result=\"%s\"", results[i]);
    sample(out, "i2vgen_videos_finished_total", labels, (double)m->finished[i]);
  }
  header(out, "i2vgen_step_seconds", "summary",
         "Seconds per denoising step (after the first, which includes the encoders) by output "
         "size and frame count.");
  g_autoptr(GList) keys = g_list_sort(g_hash_table_get_keys(m->steps), (GCompareFunc)g_strcmp0);
  for (GList *k = keys; k != NULL; k = k->next) {
    Summary *s = g_hash_table_lookup(m->steps, k->data);
    g_auto(GStrv) parts = g_strsplit(k->data, "/", 2);
    g_autofree char *labels = g_strdup_printf("size=\"%s\",frames=\"%s\"", parts[0], parts[1]);
    sample(out, "i2vgen_step_seconds_sum", labels, s->sum);
    sample(out, "i2vgen_step_seconds_count", labels, (double)s->count);
  }
  header(out, "i2vgen_generation_seconds", "histogram",
         "Seconds from a video's start to its complete file, for completed videos.");
  guint64 cumulative = 0;
  for (gsize b = 0; b <= N_BUCKETS; b++) {
    cumulative += m->histogram[b];
    char bound[G_ASCII_DTOSTR_BUF_SIZE] = "+Inf";
    if (b < N_BUCKETS) g_ascii_formatd(bound, sizeof(bound), "%g", buckets[b]);
    g_autofree char *labels = g_strdup_printf("le=\"%s\"", bound);
    sample(out, "i2vgen_generation_seconds_bucket", labels, (double)cumulative);
  }
  sample(out, "i2vgen_generation_seconds_sum", NULL, m->generation_sum);
  sample(out, "i2vgen_generation_seconds_count", NULL, (double)m->generation_count);
  g_mutex_unlock(&m->lock);

  render_memory(model_info, out);
  header(out, "process_resident_memory_bytes", "gauge", "Resident memory of the server process.");
  sample(out, "process_resident_memory_bytes", NULL, (double)serve_resident_bytes());
}
