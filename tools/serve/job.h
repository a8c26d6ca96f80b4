/* A video job of the service: its id, status, progress, timestamps and generation parameters,
 * and the OpenAI-shaped "video" object clients see. Storage-independent: the queue
 * implementations (job_queue.h) keep these records. */
#pragma once

#include <glib.h>
#include <i2v/i2v.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

typedef enum {
  JOB_QUEUED,
  JOB_IN_PROGRESS,
  JOB_COMPLETED,
  JOB_FAILED,
} JobStatus;

#define JOB_STATUS_COUNT 4

/* "queued", "in_progress", "completed", "failed"; static. */
const char *job_status_name(JobStatus status);

/* Parses a status name; FALSE for anything else. */
gboolean job_status_parse(const char *name, JobStatus *out);

/* Ids are "video_" and 32 lowercase hex digits: 128 random bits, URL- and file-name-safe. */
#define JOB_ID_PREFIX "video_"
#define JOB_ID_LEN 38

/* Writes a new random id (getrandom) into out. */
void job_id_new(char out[JOB_ID_LEN + 1]);

/* TRUE when id has exactly the shape job_id_new makes (checked before any file access). */
gboolean job_id_valid(const char *id);

/* Generation settings of a job: the request's values after presets, defaults and checks. */
typedef struct {
  char *prompt, *negative_prompt; /* negative NULL = none */
  char *preset;                   /* the preset the values started from */
  char *lora;                     /* a name of the server's LoRA allow-list, or NULL */
  double lora_scale;
  guint width, height, num_frames, fps, steps;
  I2vSamplerKind sampler;
  guint interpolate; /* i2vinterp factor: output frames and rate ×interpolate (1 = none) */
  double guidance_scale, motion_strength;
  guint64 seed;
} JobParams;

/* Frees the strings of p and zeroes it. */
void job_params_clear(JobParams *p);

/* Adds p's fields as members of the object b is building (the names the API uses). */
void job_params_add_members(const JobParams *p, JsonBuilder *b);

/* Reads p from an object with job_params_add_members' members; FALSE with an error naming the
 * missing or mistyped member. */
gboolean job_params_from_object(JsonObject *o, JobParams *p, GError **error);

/* p as the JSON object text of job_params_add_members' members (how the stores keep it); a new
 * string (g_free). */
char *job_params_to_json(const JobParams *p);

/* Reads p from job_params_to_json's text; FALSE with an error saying what is wrong. */
gboolean job_params_from_json(const char *text, JobParams *p, GError **error);

/* The clip's length in seconds: num_frames / fps (interpolation keeps the duration). */
double job_params_seconds(const JobParams *p);

typedef struct {
  char id[JOB_ID_LEN + 1];
  JobStatus status;
  int progress;                                /* 0..100 */
  gint64 created_at, started_at, completed_at; /* Unix seconds; 0 = not yet */
  guint attempts;                              /* runs started (a retry after a crash adds one) */
  char *error_code, *error_message;            /* set when failed */
  JobParams params;
} Job;

/* A zeroed job (free with job_free). */
Job *job_new(void);

/* Frees job and its strings (NULL allowed). */
void job_free(Job *job);

/* The video object for job ("object": "video", status, progress, size, seconds, error, the
 * parameters); model is the served model's name. A new string (g_free). */
char *job_to_json(const Job *job, const char *model);

/* Adds the video object of job as a value to b (for lists and events). */
void job_add_json(const Job *job, const char *model, JsonBuilder *b);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(Job, job_free)

G_END_DECLS
