/* Video job records and their JSON. */
#include "job.h"

#include <string.h>
#include <sys/random.h>

static const char *const status_names[JOB_STATUS_COUNT] = {"queued", "in_progress", "completed",
                                                           "failed"};

const char *job_status_name(JobStatus status) {
  return status_names[status];
}

gboolean job_status_parse(const char *name, JobStatus *out) {
  for (int i = 0; i < JOB_STATUS_COUNT; i++)
    if (g_strcmp0(name, status_names[i]) == 0) {
      *out = (JobStatus)i;
      return TRUE;
    }
  return FALSE;
}

void job_id_new(char out[JOB_ID_LEN + 1]) {
  guint8 bits[16];
  gsize got = 0;
  while (got < sizeof(bits)) { /* getrandom of 16 bytes only fails when interrupted */
    gssize n = getrandom(bits + got, sizeof(bits) - got, 0);
    if (n > 0) got += (gsize)n;
  }
  strcpy(out, JOB_ID_PREFIX);
  for (gsize i = 0; i < sizeof(bits); i++)
    g_snprintf(out + strlen(JOB_ID_PREFIX) + 2 * i, 3, "%02x", bits[i]);
}

gboolean job_id_valid(const char *id) {
  if (id == NULL || strlen(id) != JOB_ID_LEN || !g_str_has_prefix(id, JOB_ID_PREFIX)) return FALSE;
  for (const char *c = id + strlen(JOB_ID_PREFIX); *c; c++)
    if (!g_ascii_isdigit(*c) && !(*c >= 'a' && *c <= 'f')) return FALSE;
  return TRUE;
}

void job_params_clear(JobParams *p) {
  g_free(p->prompt);
  g_free(p->negative_prompt);
  g_free(p->preset);
  g_free(p->lora);
  memset(p, 0, sizeof(*p));
}

double job_params_seconds(const JobParams *p) {
  return p->fps > 0 ? (double)p->num_frames / p->fps : 0;
}

static void add_string(JsonBuilder *b, const char *name, const char *value) {
  json_builder_set_member_name(b, name);
  if (value != NULL)
    json_builder_add_string_value(b, value);
  else
    json_builder_add_null_value(b);
}

static void add_int(JsonBuilder *b, const char *name, gint64 value) {
  json_builder_set_member_name(b, name);
  json_builder_add_int_value(b, value);
}

static void add_double(JsonBuilder *b, const char *name, double value) {
  json_builder_set_member_name(b, name);
  json_builder_add_double_value(b, value);
}

void job_params_add_members(const JobParams *p, JsonBuilder *b) {
  add_string(b, "prompt", p->prompt);
  add_string(b, "negative_prompt", p->negative_prompt);
  add_string(b, "preset", p->preset);
  add_string(b, "lora", p->lora);
  add_double(b, "lora_scale", p->lora_scale);
  add_int(b, "width", p->width);
  add_int(b, "height", p->height);
  add_int(b, "num_frames", p->num_frames);
  add_int(b, "fps", p->fps);
  add_int(b, "steps", p->steps);
  add_string(b, "sampler", i2v_sampler_name(p->sampler));
  add_int(b, "interpolate", p->interpolate);
  add_double(b, "guidance_scale", p->guidance_scale);
  add_double(b, "motion_strength", p->motion_strength);
  /* a JSON number loses 64-bit seeds in most clients: the seed is a decimal string */
  char seed[24];
  g_snprintf(seed, sizeof(seed), "%" G_GUINT64_FORMAT, p->seed);
  add_string(b, "seed", seed);
}

/* The string member name of o (NULL when null); FALSE when missing or not a string. */
static gboolean get_string(JsonObject *o, const char *name, char **out, GError **error) {
  JsonNode *n = json_object_get_member(o, name);
  if (n != NULL && JSON_NODE_HOLDS_NULL(n)) {
    *out = NULL;
    return TRUE;
  }
  if (n == NULL || !JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_STRING) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                "job parameters: member '%s' missing or not a string", name);
    return FALSE;
  }
  *out = g_strdup(json_node_get_string(n));
  return TRUE;
}

static gboolean get_number(JsonObject *o, const char *name, double *out, GError **error) {
  JsonNode *n = json_object_get_member(o, name);
  if (n == NULL || !JSON_NODE_HOLDS_VALUE(n) ||
      (json_node_get_value_type(n) != G_TYPE_INT64 &&
       json_node_get_value_type(n) != G_TYPE_DOUBLE)) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                "job parameters: member '%s' missing or not a number", name);
    return FALSE;
  }
  *out = json_node_get_double(n);
  return TRUE;
}

gboolean job_params_from_object(JsonObject *o, JobParams *p, GError **error) {
  memset(p, 0, sizeof(*p));
  struct {
    const char *name;
    guint *field;
  } uints[] = {{"width", &p->width}, {"height", &p->height}, {"num_frames", &p->num_frames},
               {"fps", &p->fps},     {"steps", &p->steps},   {"interpolate", &p->interpolate}};
  struct {
    const char *name;
    double *field;
  } doubles[] = {{"lora_scale", &p->lora_scale},
                 {"guidance_scale", &p->guidance_scale},
                 {"motion_strength", &p->motion_strength}};
  char *seed = NULL;
  gboolean ok = get_string(o, "prompt", &p->prompt, error) &&
                get_string(o, "negative_prompt", &p->negative_prompt, error) &&
                get_string(o, "preset", &p->preset, error) &&
                get_string(o, "lora", &p->lora, error) && get_string(o, "seed", &seed, error);
  for (gsize i = 0; ok && i < G_N_ELEMENTS(uints); i++) {
    double v;
    ok = get_number(o, uints[i].name, &v, error);
    if (ok) *uints[i].field = (guint)v;
  }
  for (gsize i = 0; ok && i < G_N_ELEMENTS(doubles); i++)
    ok = get_number(o, doubles[i].name, doubles[i].field, error);
  /* records written before samplers existed have none: they ran DDIM */
  char *sampler = NULL;
  if (ok && json_object_has_member(o, "sampler") &&
      (!get_string(o, "sampler", &sampler, error) ||
       !i2v_sampler_parse(sampler, &p->sampler, error)))
    ok = FALSE;
  g_free(sampler);
  if (ok &&
      (seed == NULL || !g_ascii_string_to_unsigned(seed, 10, 0, G_MAXUINT64, &p->seed, NULL))) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                "job parameters: member 'seed' is not a decimal 64-bit number");
    ok = FALSE;
  }
  g_free(seed);
  if (!ok) job_params_clear(p);
  return ok;
}

char *job_params_to_json(const JobParams *p) {
  g_autoptr(JsonBuilder) b = json_builder_new();
  json_builder_begin_object(b);
  job_params_add_members(p, b);
  json_builder_end_object(b);
  g_autoptr(JsonNode) root = json_builder_get_root(b);
  return json_to_string(root, FALSE);
}

gboolean job_params_from_json(const char *text, JobParams *p, GError **error) {
  g_autoptr(JsonParser) parser = json_parser_new();
  if (!json_parser_load_from_data(parser, text, -1, error)) return FALSE;
  if (!JSON_NODE_HOLDS_OBJECT(json_parser_get_root(parser))) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "job parameters: not a JSON object");
    return FALSE;
  }
  return job_params_from_object(json_node_get_object(json_parser_get_root(parser)), p, error);
}

Job *job_new(void) {
  return g_new0(Job, 1);
}

void job_free(Job *job) {
  if (job == NULL) return;
  g_free(job->error_code);
  g_free(job->error_message);
  job_params_clear(&job->params);
  g_free(job);
}

/* A timestamp member: the Unix time, or null for 0. */
static void add_time(JsonBuilder *b, const char *name, gint64 t) {
  json_builder_set_member_name(b, name);
  if (t > 0)
    json_builder_add_int_value(b, t);
  else
    json_builder_add_null_value(b);
}

void job_add_json(const Job *job, const char *model, JsonBuilder *b) {
  const JobParams *p = &job->params;
  json_builder_begin_object(b);
  add_string(b, "id", job->id);
  add_string(b, "object", "video");
  add_string(b, "model", model);
  add_string(b, "status", job_status_name(job->status));
  add_int(b, "progress", job->progress);
  add_time(b, "created_at", job->created_at);
  add_time(b, "started_at", job->started_at);
  add_time(b, "completed_at", job->completed_at);
  char text[64];
  g_snprintf(text, sizeof(text), "%ux%u", p->width, p->height);
  add_string(b, "size", text);
  /* OpenAI's seconds is a string; ours may be fractional (frames / fps) */
  g_ascii_formatd(text, sizeof(text), "%g", job_params_seconds(p));
  add_string(b, "seconds", text);
  json_builder_set_member_name(b, "error");
  if (job->status == JOB_FAILED) {
    json_builder_begin_object(b);
    add_string(b, "code", job->error_code);
    add_string(b, "message", job->error_message);
    json_builder_end_object(b);
  } else {
    json_builder_add_null_value(b);
  }
  add_int(b, "attempts", job->attempts);
  job_params_add_members(p, b);
  json_builder_end_object(b);
}

char *job_to_json(const Job *job, const char *model) {
  g_autoptr(JsonBuilder) b = json_builder_new();
  job_add_json(job, model, b);
  g_autoptr(JsonNode) root = json_builder_get_root(b);
  return json_to_string(root, FALSE);
}
