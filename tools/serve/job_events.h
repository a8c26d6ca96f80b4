/* Job events: what happens to a job (progress after every step and frame, start, completion,
 * failure, deletion), published from any thread and delivered in order, in one GMainContext, to
 * the subscribers of that job or of all jobs. The SSE endpoint and the worker's cancellation
 * listen here. The hub remembers the last progress event of every running job so a client that
 * (re)connects gets the current state first; a hub for several machines can feed this one from
 * Redis without its subscribers changing.
 *
 * Event types: "video" (the job's video object: on start), "progress", and the terminal
 * "completed", "failed" and "deleted". data is a JSON object. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct {
  char *job_id;
  char *type;
  char *data;  /* JSON */
  guint64 seq; /* per job, from 1: the order of the job's events (SSE "id") */
} JobEvent;

/* TRUE for the types after which a job has no more events. */
gboolean job_event_is_terminal(const char *type);

/* Frees an event (NULL allowed). */
void job_event_free(JobEvent *ev);

typedef struct JobEvents JobEvents;

typedef void (*JobEventFunc)(const JobEvent *ev, gpointer user);

/* A hub delivering in context (a reference is taken). */
JobEvents *job_events_new(GMainContext *context);

/* Frees the hub; pending deliveries are dropped. */
void job_events_free(JobEvents *hub);

/* Publishes an event of job_id (any thread); type and data are copied. */
void job_events_publish(JobEvents *hub, const char *job_id, const char *type, const char *data);

/* Calls func for every later event of job_id (NULL: of every job) in the hub's context;
 * returns the subscription's id (never 0). */
guint job_events_subscribe(JobEvents *hub, const char *job_id, JobEventFunc func, gpointer user);

/* Where a hub sends what is published instead of delivering it itself: to the other processes
 * of a cluster (job_events_redis.c), which hand every event back with job_events_deliver. */
typedef void (*JobEventSink)(const char *job_id, const char *type, const char *data, gpointer user);

/* Makes publish send to sink (NULL: deliver here again); set before publishing. */
void job_events_set_sink(JobEvents *hub, JobEventSink sink, gpointer user);

/* Delivers an event to this hub's subscribers (any thread): what publish does without a sink. */
void job_events_deliver(JobEvents *hub, const char *job_id, const char *type, const char *data);

/* Ends a subscription (from the hub's context; also from within its own callback). */
void job_events_unsubscribe(JobEvents *hub, guint id);

/* A copy of the last progress event of job_id while it runs, or NULL (job_event_free). */
JobEvent *job_events_last_progress(JobEvents *hub, const char *job_id);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(JobEvent, job_event_free)

G_END_DECLS
