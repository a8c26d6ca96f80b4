/* The job queue of the service: where accepted jobs, their status and progress live, and where
 * a worker claims the next one. An interface, so that another store (Redis Streams for several
 * machines) can sit beside the embedded one (job_queue_sqlite.c) without the HTTP layer or the
 * worker changing.
 *
 * Semantics every implementation keeps:
 *   - submit is durable when it returns: a crash afterwards does not lose the job;
 *   - claim hands each queued job to one worker (oldest first), moves it to in_progress and
 *     counts the attempt; a job whose worker died is queued again (or failed once it has used
 *     its retries) by the implementation's own recovery;
 *   - finish completes a job once: a second finish (a duplicate run) changes nothing, and a run
 *     that no longer owns its job (owns) discards its result;
 *   - every function may be called from any thread. */
#pragma once

#include "job.h"
#include "metrics.h"

G_BEGIN_DECLS

#define JOB_QUEUE_ERROR (job_queue_error_quark())

typedef enum {
  JOB_QUEUE_ERROR_FULL,      /* submit: the queue holds max_queued jobs */
  JOB_QUEUE_ERROR_NOT_FOUND, /* no job with that id */
  JOB_QUEUE_ERROR_STORE,     /* the store failed (disk, database); the message says how */
} JobQueueErrorCode;

/* The GQuark of the JOB_QUEUE_ERROR domain. */
GQuark job_queue_error_quark(void);

typedef struct JobQueue JobQueue;

typedef struct {
  /* Adds job (status queued) unless max_queued jobs are queued already (JOB_QUEUE_ERROR_FULL). */
  gboolean (*submit)(JobQueue *q, const Job *job, guint max_queued, GError **error);
  /* The job with id (a new Job), or NULL with JOB_QUEUE_ERROR_NOT_FOUND. */
  Job *(*get)(JobQueue *q, const char *id, GError **error);
  /* Up to limit jobs (Job*, the array frees them) in creation order (newest first unless
   * ascending) after the job with id after (NULL: from the start); *has_more tells whether more
   * follow. An unknown after is JOB_QUEUE_ERROR_NOT_FOUND. */
  GPtrArray *(*list)(JobQueue *q, guint limit, const char *after, gboolean ascending,
                     gboolean *has_more, GError **error);
  /* Deletes the job with id; *was (may be NULL) gets its status before. */
  gboolean (*remove)(JobQueue *q, const char *id, JobStatus *was, GError **error);
  /* Blocks until a job is queued, then claims it (in_progress, one more attempt) and returns it;
   * NULL without error when stop is cancelled. */
  Job *(*claim)(JobQueue *q, GCancellable *stop, GError **error);
  /* Records the progress (0..100) of a claimed job. */
  gboolean (*set_progress)(JobQueue *q, const char *id, int progress, GError **error);
  /* Ends a claimed job: completed (code and message NULL) or failed. FALSE without error when
   * the job is no longer in progress (deleted meanwhile, or already finished). */
  gboolean (*finish)(JobQueue *q, const char *id, JobStatus status, const char *code,
                     const char *message, GError **error);
  /* TRUE while the caller's claim of the job is current: it is in progress and was not taken
   * over by another worker (which happens when this one looked dead) nor deleted. */
  gboolean (*owns)(JobQueue *q, const char *id, GError **error);
  /* Gives a claimed job back to the queue without counting the attempt (shutdown). */
  gboolean (*release)(JobQueue *q, const char *id, GError **error);
  /* The number of jobs in each status (indexed by JobStatus). */
  gboolean (*count)(JobQueue *q, guint counts[JOB_STATUS_COUNT], GError **error);
  /* Optional, for stores shared by several processes (NULL otherwise): adds the metrics every
   * worker published to into, and appends the store's own (workers alive, pending jobs per
   * worker, dead letters) to out in the Prometheus text format. */
  gboolean (*cluster_metrics)(JobQueue *q, ServeMetrics *into, GString *out, GError **error);
  /* Optional, for stores whose finished records expire (NULL otherwise): takes up to limit ids
   * of finished jobs whose record has expired, each given to one caller once, so that their
   * files can be removed. A new NULL-terminated array (g_strfreev), or NULL with an error. */
  char **(*expired)(JobQueue *q, guint limit, GError **error);
  void (*free)(JobQueue *q);
} JobQueueOps;

struct JobQueue {
  const JobQueueOps *ops;
};

/* The embedded store: an SQLite database (WAL) at path, created when missing. Jobs that were in
 * progress when the last server stopped are queued again if they have used at most retries
 * retries (attempts <= retries), else failed with code "interrupted"; *requeued and *failed (may
 * be NULL) count them. */
JobQueue *job_queue_sqlite_open(const char *path, guint retries, guint *requeued, guint *failed,
                                GError **error);

/* What a Redis queue (job_queue_redis.c) needs besides its URL. */
typedef struct {
  /* A worker's name: the consumer it claims as, its heartbeat and its published metrics. NULL on
   * an API node, which never claims. */
  const char *consumer;
  guint claim_after_ms;   /* a claimed job whose worker was silent this long is taken over */
  guint retries;          /* runs a job interrupted by a dead worker gets again before it fails */
  guint job_ttl_s;        /* how long a finished job's record is kept (set at submission) */
  ServeMetrics *metrics;  /* a worker's own, published with every heartbeat; may be NULL */
  const char *model_name; /* in the video object of the event of a job failed for retries */
} RedisQueueConfig;

/* The store shared by API nodes and workers: Redis Streams with one consumer group
 * (job_queue_redis.c documents the keys). A worker (cfg->consumer set) also starts its heartbeat.
 * NULL with an error naming the URL when it is malformed or the server cannot be reached. */
JobQueue *job_queue_redis_open(const char *url, const RedisQueueConfig *cfg, GError **error);

/* Frees q (NULL allowed); closes its store. */
void job_queue_free(JobQueue *q);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(JobQueue, job_queue_free)

G_END_DECLS
