/* The job queue shared by API nodes and workers on several machines: Redis Streams with one
 * consumer group (the keys and scripts: redis_scripts.c).
 *
 * A worker reads the queue stream with XREADGROUP and, before each read, takes over with
 * XAUTOCLAIM an entry whose worker has been silent for claim_after (it died, or gave its job
 * back). While it runs a job its heartbeat thread resets the entry's idle time (XCLAIM JUSTID)
 * and refreshes a worker key with a TTL, so a live worker's job is never taken. Every delivery
 * of an entry starts a run (redis_script_start), which counts the attempt; past the retries
 * the job fails with reason "interrupted" and goes to the dead letters. A job completes once:
 * only the run that owns it may finish it, a run taken over discards its result.
 *
 * Connections: one shared link for short commands, one of its own for the worker's blocking
 * reads, one for the heartbeat (so that a long command never delays it). */
#include <string.h>

#include "job_events_redis.h"
#include "job_queue.h"
#include "redis_scripts.h"

#define GROUP "workers"
#define CLAIM_BLOCK_MS "1000" /* a blocking read ends this often to look at the stop flag */
#define PATIENCE_MS 5000      /* how long a command waits for a lost server */
/* a given-back entry looks this idle (ms) to the other workers: taken at their next claim */
#define RELEASE_IDLE_MS "1000000000000"

typedef struct {
  char *entry; /* the queue stream entry of the job */
  char *token; /* the run's token (the job's run field while it owns the job) */
} Claim;

typedef struct {
  JobQueue base;
  RedisQueueConfig cfg; /* strings copied */
  RedisLink *link;      /* short commands, any thread */
  RedisLink *reads;     /* the worker's blocking reads (claim) */
  RedisLink *beats;     /* the heartbeat thread's */
  char *autoclaim_from; /* XAUTOCLAIM cursor: where the last scan stopped */

  GMutex lock;        /* claims, stopping */
  GCond wake;         /* the heartbeat sleeps on it */
  GHashTable *claims; /* job id → Claim* of the jobs this worker runs */
  gboolean stopping;
  GThread *heartbeat;
} RedisQueue;

static void claim_free(Claim *c) {
  g_free(c->entry);
  g_free(c->token);
  g_free(c);
}

/* A link error as a queue error (JOB_QUEUE_ERROR_STORE), keeping the message. */
static void store_error(GError **error, GError *err) {
  g_set_error(error, JOB_QUEUE_ERROR, JOB_QUEUE_ERROR_STORE, "%s", err->message);
  g_error_free(err);
}

/* Runs a script on the shared link; NULL with a store error. */
static redisReply *eval(RedisQueue *q, RedisScript *script, GError **error, const char *a1,
                        const char *a2, const char *a3, const char *a4, const char *a5,
                        const char *a6, const char *a7) {
  GError *err = NULL;
  redisReply *r =
      redis_link_eval(q->link, script, &err, REDIS_KEY_PREFIX, a1, a2, a3, a4, a5, a6, a7, NULL);
  if (r == NULL) store_error(error, err);
  return r;
}

static char *now_text(void) {
  return g_strdup_printf("%" G_GINT64_FORMAT, g_get_real_time() / G_USEC_PER_SEC);
}

/* The string value of field in a flat HGETALL array, or NULL. */
static const char *field(const redisReply *h, const char *name) {
  for (size_t i = 0; i + 1 < h->elements; i += 2)
    if (g_strcmp0(redis_reply_str(h->element[i]), name) == 0)
      return redis_reply_str(h->element[i + 1]);
  return NULL;
}

static gint64 field_int(const redisReply *h, const char *name) {
  gint64 v = 0;
  const char *text = field(h, name);
  if (text != NULL) g_ascii_string_to_signed(text, 10, G_MININT64, G_MAXINT64, &v, NULL);
  return v;
}

/* The job of a record (an HGETALL array); NULL with a store error when it is damaged. */
static Job *job_from_hash(const redisReply *h, GError **error) {
  g_autoptr(Job) job = job_new();
  const char *id = field(h, "id"), *status = field(h, "status"), *params = field(h, "params");
  GError *err = NULL;
  if (id == NULL || !job_id_valid(id) || status == NULL ||
      !job_status_parse(status, &job->status) || params == NULL ||
      !job_params_from_json(params, &job->params, &err)) {
    g_set_error(error, JOB_QUEUE_ERROR, JOB_QUEUE_ERROR_STORE,
                "redis: the record of job %s is damaged (status '%s'%s%s)", id ? id : "?",
                status ? status : "missing", err ? ": " : "", err ? err->message : "");
    g_clear_error(&err);
    return NULL;
  }
  g_strlcpy(job->id, id, sizeof(job->id));
  job->progress = (int)field_int(h, "progress");
  job->created_at = field_int(h, "created_at");
  job->started_at = field_int(h, "started_at");
  job->completed_at = field_int(h, "completed_at");
  job->attempts = (guint)field_int(h, "attempts");
  job->error_code = g_strdup(field(h, "error_code"));
  job->error_message = g_strdup(field(h, "error_message"));
  return g_steal_pointer(&job);
}

static gboolean rq_submit(JobQueue *base, const Job *job, guint max_queued, GError **error) {
  RedisQueue *q = (RedisQueue *)base;
  g_autofree char *params = job_params_to_json(&job->params);
  g_autofree char *created = g_strdup_printf("%" G_GINT64_FORMAT, job->created_at);
  g_autofree char *max = g_strdup_printf("%u", max_queued);
  g_autofree char *ttl = g_strdup_printf("%u", q->cfg.job_ttl_s);
  g_autoptr(redisReply) r =
      eval(q, &redis_script_submit, error, job->id, created, params, max, ttl, NULL, NULL);
  if (r == NULL) return FALSE;
  if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 && redis_reply_int(r->element[0], 0) == 1)
    return TRUE;
  g_set_error(error, JOB_QUEUE_ERROR, JOB_QUEUE_ERROR_FULL,
              "the queue is full: %" G_GINT64_FORMAT " videos are waiting (--max-queued %u)",
              r->elements == 2 ? redis_reply_int(r->element[1], 0) : 0, max_queued);
  return FALSE;
}

static Job *rq_get(JobQueue *base, const char *id, GError **error) {
  RedisQueue *q = (RedisQueue *)base;
  g_autofree char *key = g_strconcat(REDIS_KEY_PREFIX "job:", id, NULL);
  GError *err = NULL;
  g_autoptr(redisReply) r = redis_link_command(q->link, &err, "HGETALL", key, NULL);
  if (r == NULL) {
    store_error(error, err);
    return NULL;
  }
  if (r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
    g_set_error(error, JOB_QUEUE_ERROR, JOB_QUEUE_ERROR_NOT_FOUND, "no video with id '%s'", id);
    return NULL;
  }
  return job_from_hash(r, error);
}

static GPtrArray *rq_list(JobQueue *base, guint limit, const char *after, gboolean ascending,
                          gboolean *has_more, GError **error) {
  RedisQueue *q = (RedisQueue *)base;
  g_autofree char *n = g_strdup_printf("%u", limit + 1); /* one more tells has_more */
  GError *err = NULL;
  g_autoptr(redisReply) r = redis_link_eval(q->link, &redis_script_list, &err, REDIS_KEY_PREFIX,
                                            after ? after : "", ascending ? "1" : "0", n, NULL);
  if (r == NULL) {
    if (strstr(err->message, "NOTFOUND") != NULL) {
      g_set_error(error, JOB_QUEUE_ERROR, JOB_QUEUE_ERROR_NOT_FOUND, "no video with id '%s'",
                  after);
      g_error_free(err);
    } else {
      store_error(error, err);
    }
    return NULL;
  }
  g_autoptr(GPtrArray) jobs = g_ptr_array_new_with_free_func((GDestroyNotify)job_free);
  for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
    Job *job = job_from_hash(r->element[i], error);
    if (job == NULL) return NULL;
    g_ptr_array_add(jobs, job);
  }
  *has_more = jobs->len > limit;
  if (*has_more) g_ptr_array_set_size(jobs, limit);
  return g_steal_pointer(&jobs);
}

static gboolean rq_remove(JobQueue *base, const char *id, JobStatus *was, GError **error) {
  RedisQueue *q = (RedisQueue *)base;
  g_autoptr(redisReply) r =
      eval(q, &redis_script_remove, error, id, NULL, NULL, NULL, NULL, NULL, NULL);
  if (r == NULL) return FALSE;
  JobStatus status;
  if (!job_status_parse(redis_reply_str(r), &status)) {
    g_set_error(error, JOB_QUEUE_ERROR, JOB_QUEUE_ERROR_NOT_FOUND, "no video with id '%s'", id);
    return FALSE;
  }
  if (was != NULL) *was = status;
  return TRUE;
}

/* Creates the consumer group (and the stream) unless it exists. */
static gboolean create_group(RedisLink *link, GError **error) {
  GError *err = NULL;
  g_autoptr(redisReply) r = redis_link_command(
      link, &err, "XGROUP", "CREATE", REDIS_KEY_PREFIX "queue", GROUP, "0", "MKSTREAM", NULL);
  if (r != NULL || strstr(err->message, "BUSYGROUP") != NULL) {
    g_clear_error(&err);
    return TRUE;
  }
  store_error(error, err);
  return FALSE;
}

/* The entry id and job id of the first message of a stream-entry array ([[id, [k, v...]]]). */
static gboolean first_message(const redisReply *msgs, char **entry, char **id) {
  if (msgs == NULL || msgs->type != REDIS_REPLY_ARRAY || msgs->elements == 0) return FALSE;
  const redisReply *m = msgs->element[0];
  if (m->type != REDIS_REPLY_ARRAY || m->elements != 2 || m->element[1]->type != REDIS_REPLY_ARRAY)
    return FALSE;
  *entry = g_strdup(redis_reply_str(m->element[0]));
  *id = g_strdup(field(m->element[1], "job"));
  return *entry != NULL;
}

/* The next entry for this worker: one silent for claim_after first (XAUTOCLAIM), else a new one
 * (XREADGROUP, waiting up to CLAIM_BLOCK_MS). FALSE with *entry NULL when there is none. */
static gboolean next_entry(RedisQueue *q, char **entry, char **id, GError **error) {
  g_autofree char *idle = g_strdup_printf("%u", q->cfg.claim_after_ms);
  GError *err = NULL;
  *entry = *id = NULL;
  g_autoptr(redisReply) a =
      redis_link_command(q->reads, &err, "XAUTOCLAIM", REDIS_KEY_PREFIX "queue", GROUP,
                         q->cfg.consumer, idle, q->autoclaim_from, "COUNT", "1", NULL);
  if (a != NULL && a->type == REDIS_REPLY_ARRAY && a->elements >= 2) {
    g_free(q->autoclaim_from); /* "0-0" once the scan went round the pending entries */
    q->autoclaim_from = g_strdup(redis_reply_str(a->element[0]));
    if (first_message(a->element[1], entry, id)) return TRUE;
  }
  if (err == NULL) {
    g_autoptr(redisReply) r = redis_link_command(
        q->reads, &err, "XREADGROUP", "GROUP", GROUP, q->cfg.consumer, "COUNT", "1", "BLOCK",
        CLAIM_BLOCK_MS, "STREAMS", REDIS_KEY_PREFIX "queue", ">", NULL);
    if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
        r->element[0]->elements == 2 && first_message(r->element[0]->element[1], entry, id))
      return TRUE;
  }
  if (err == NULL) return FALSE;
  /* a server that lost its data (no persistence) lost the group: make it again */
  if (strstr(err->message, "NOGROUP") != NULL) {
    g_clear_error(&err);
    create_group(q->reads, error);
    return FALSE;
  }
  store_error(error, err);
  return FALSE;
}

/* Says on the events stream that a job failed without a run (out of retries). */
static void announce_failed(RedisQueue *q, const char *id) {
  GError *err = NULL;
  g_autoptr(Job) job = rq_get(&q->base, id, &err);
  g_autofree char *json = job ? job_to_json(job, q->cfg.model_name) : NULL;
  if (json == NULL || !job_events_redis_add(q->link, id, "failed", json, &err)) {
    g_message("redis: cannot announce that %s failed: %s", id, err->message);
    g_error_free(err);
  }
}

static Job *rq_claim(JobQueue *base, GCancellable *stop, GError **error) {
  RedisQueue *q = (RedisQueue *)base;
  g_autofree char *retries = g_strdup_printf("%u", q->cfg.retries);
  while (!g_cancellable_is_cancelled(stop)) {
    g_autofree char *entry = NULL, *id = NULL;
    GError *err = NULL;
    if (!next_entry(q, &entry, &id, &err)) {
      if (err == NULL) continue;
      g_propagate_error(error, err);
      return NULL;
    }
    char token[JOB_ID_LEN + 1];
    job_id_new(token);
    g_autofree char *now = now_text();
    g_autoptr(redisReply) r = eval(q, &redis_script_start, error, id ? id : "", q->cfg.consumer,
                                   entry, now, retries, token, NULL);
    if (r == NULL) return NULL;
    const char *verdict = redis_reply_str(r);
    if (g_strcmp0(verdict, "dead") == 0) {
      g_message("redis: %s failed: its workers stopped during each of its %u runs", id,
                q->cfg.retries + 1);
      announce_failed(q, id);
    }
    if (g_strcmp0(verdict, "run") != 0) continue;
    Job *job = rq_get(base, id, error);
    if (job == NULL) return NULL;
    Claim *c = g_new(Claim, 1);
    c->entry = g_steal_pointer(&entry);
    c->token = g_strdup(token);
    g_mutex_lock(&q->lock);
    g_hash_table_replace(q->claims, g_strdup(id), c);
    g_mutex_unlock(&q->lock);
    return job;
  }
  return NULL;
}

/* The token of this worker's run of id (a new string), or NULL when it runs no such job. */
static char *token_of(RedisQueue *q, const char *id) {
  g_mutex_lock(&q->lock);
  Claim *c = g_hash_table_lookup(q->claims, id);
  char *token = c ? g_strdup(c->token) : NULL;
  g_mutex_unlock(&q->lock);
  return token;
}

/* Runs a script of the run of id taking (P, id, token, a4..a6); its integer result, 0 when this
 * worker runs no such job, -1 with a store error. */
static gint64 run_script(RedisQueue *q, RedisScript *script, const char *id, const char *a4,
                         const char *a5, const char *a6, const char *a7, GError **error) {
  g_autofree char *token = token_of(q, id);
  if (token == NULL) return 0;
  g_autoptr(redisReply) r = eval(q, script, error, id, token, a4, a5, a6, a7, NULL);
  return r ? redis_reply_int(r, 0) : -1;
}

static gboolean rq_set_progress(JobQueue *base, const char *id, int progress, GError **error) {
  char value[16];
  g_snprintf(value, sizeof(value), "%d", progress);
  return run_script((RedisQueue *)base, &redis_script_progress, id, value, NULL, NULL, NULL,
                    error) >= 0;
}

static gboolean rq_owns(JobQueue *base, const char *id, GError **error) {
  return run_script((RedisQueue *)base, &redis_script_owns, id, NULL, NULL, NULL, NULL, error) == 1;
}

/* Forgets this worker's run of id. */
static void forget(RedisQueue *q, const char *id) {
  g_mutex_lock(&q->lock);
  g_hash_table_remove(q->claims, id);
  g_mutex_unlock(&q->lock);
}

static gboolean rq_finish(JobQueue *base, const char *id, JobStatus status, const char *code,
                          const char *message, GError **error) {
  RedisQueue *q = (RedisQueue *)base;
  g_autofree char *now = now_text();
  gint64 done = run_script(q, &redis_script_finish, id, job_status_name(status), code ? code : "",
                           message ? message : "", now, error);
  if (done >= 0) forget(q, id);
  return done == 1;
}

static gboolean rq_release(JobQueue *base, const char *id, GError **error) {
  RedisQueue *q = (RedisQueue *)base;
  gint64 back = run_script(q, &redis_script_release, id, RELEASE_IDLE_MS, NULL, NULL, NULL, error);
  if (back >= 0) forget(q, id);
  return back >= 0;
}

static gboolean rq_count(JobQueue *base, guint counts[JOB_STATUS_COUNT], GError **error) {
  RedisQueue *q = (RedisQueue *)base;
  g_autofree char *now = now_text();
  g_autoptr(redisReply) r =
      eval(q, &redis_script_count, error, now, NULL, NULL, NULL, NULL, NULL, NULL);
  if (r == NULL) return FALSE;
  for (int s = 0; s < JOB_STATUS_COUNT; s++)
    counts[s] = (guint)(r->type == REDIS_REPLY_ARRAY && (size_t)s < r->elements
                            ? redis_reply_int(r->element[s], 0)
                            : 0);
  return TRUE;
}

static char **rq_expired(JobQueue *base, guint limit, GError **error) {
  RedisQueue *q = (RedisQueue *)base;
  g_autofree char *now = now_text();
  g_autofree char *n = g_strdup_printf("%u", limit);
  g_autoptr(redisReply) r =
      eval(q, &redis_script_expired, error, now, n, NULL, NULL, NULL, NULL, NULL);
  if (r == NULL) return NULL;
  GPtrArray *ids = g_ptr_array_new();
  for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++)
    if (r->element[i]->type == REDIS_REPLY_STRING)
      g_ptr_array_add(ids, g_strndup(r->element[i]->str, r->element[i]->len));
  g_ptr_array_add(ids, NULL);
  return (char **)g_ptr_array_free(ids, FALSE);
}

/* ---- the cluster's metrics (API nodes) ---- */

static void sample(GString *out, const char *name, const char *labels, gint64 value) {
  g_string_append_printf(out, "%s%s%s%s %" G_GINT64_FORMAT "\n", name, labels ? "{" : "",
                         labels ? labels : "", labels ? "}" : "", value);
}

static void header(GString *out, const char *name, const char *help) {
  g_string_append_printf(out, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
}

/* Workers whose heartbeat key is alive, by name. */
static gboolean render_workers(RedisQueue *q, GString *out, GError **error) {
  GError *err = NULL;
  g_autoptr(redisReply) names =
      redis_link_command(q->link, &err, "SMEMBERS", REDIS_KEY_PREFIX "workers", NULL);
  if (names == NULL) {
    store_error(error, err);
    return FALSE;
  }
  gint64 alive = 0;
  GString *each = g_string_new(NULL);
  for (size_t i = 0; i < names->elements; i++) {
    const char *name = redis_reply_str(names->element[i]);
    g_autofree char *key = g_strconcat(REDIS_KEY_PREFIX "worker:", name, NULL);
    g_autoptr(redisReply) r = redis_link_command(q->link, &err, "EXISTS", key, NULL);
    if (r == NULL) break;
    g_autofree char *labels = g_strdup_printf("worker=\"%s\"", name);
    sample(each, "i2vgen_worker_up", labels, redis_reply_int(r, 0));
    alive += redis_reply_int(r, 0);
  }
  if (err != NULL) {
    g_string_free(each, TRUE);
    store_error(error, err);
    return FALSE;
  }
  header(out, "i2vgen_workers_alive", "Workers whose heartbeat is current.");
  sample(out, "i2vgen_workers_alive", NULL, alive);
  header(out, "i2vgen_worker_up", "1 while the worker's heartbeat is current, by worker.");
  g_string_append(out, each->str);
  g_string_free(each, TRUE);
  return TRUE;
}

/* Entries delivered and not acknowledged, by consumer; the dead letters. */
static gboolean render_pending(RedisQueue *q, GString *out, GError **error) {
  GError *err = NULL;
  g_autoptr(redisReply) p =
      redis_link_command(q->link, &err, "XPENDING", REDIS_KEY_PREFIX "queue", GROUP, NULL);
  g_autoptr(redisReply) dead =
      p ? redis_link_command(q->link, &err, "XLEN", REDIS_KEY_PREFIX "dead", NULL) : NULL;
  if (dead == NULL) {
    store_error(error, err);
    return FALSE;
  }
  header(out, "i2vgen_queue_pending", "Videos a worker has taken and not finished, by worker.");
  const redisReply *consumers =
      p->type == REDIS_REPLY_ARRAY && p->elements == 4 ? p->element[3] : NULL;
  for (size_t i = 0; consumers && consumers->type == REDIS_REPLY_ARRAY && i < consumers->elements;
       i++) {
    const redisReply *c = consumers->element[i];
    if (c->type != REDIS_REPLY_ARRAY || c->elements != 2) continue;
    g_autofree char *labels = g_strdup_printf("consumer=\"%s\"", redis_reply_str(c->element[0]));
    sample(out, "i2vgen_queue_pending", labels, redis_reply_int(c->element[1], 0));
  }
  header(out, "i2vgen_dead_letters", "Videos failed after their retries (the dead-letter stream).");
  sample(out, "i2vgen_dead_letters", NULL, redis_reply_int(dead, 0));
  return TRUE;
}

static gboolean rq_cluster_metrics(JobQueue *base, ServeMetrics *into, GString *out,
                                   GError **error) {
  RedisQueue *q = (RedisQueue *)base;
  GError *err = NULL;
  g_autoptr(redisReply) all =
      redis_link_command(q->link, &err, "HGETALL", REDIS_KEY_PREFIX "metrics", NULL);
  if (all == NULL) {
    store_error(error, err);
    return FALSE;
  }
  for (size_t i = 0; i + 1 < all->elements; i += 2)
    if (!serve_metrics_merge_json(into, redis_reply_str(all->element[i + 1]), &err)) {
      g_message("redis: metrics of worker %s: %s", redis_reply_str(all->element[i]), err->message);
      g_clear_error(&err);
    }
  return render_workers(q, out, error) && render_pending(q, out, error);
}

/* ---- the worker's heartbeat ---- */

/* One beat: the worker key (with what it runs), the idle time of its entries, its metrics. */
static void beat(RedisQueue *q, guint ttl_ms) {
  g_autoptr(GPtrArray) runs = g_ptr_array_new_with_free_func(g_free);
  g_mutex_lock(&q->lock);
  GHashTableIter it;
  gpointer id, value;
  g_hash_table_iter_init(&it, q->claims);
  while (g_hash_table_iter_next(&it, &id, &value)) {
    g_ptr_array_add(runs, g_strdup(id));
    g_ptr_array_add(runs, g_strdup(((Claim *)value)->token));
  }
  g_mutex_unlock(&q->lock);
  g_autofree char *key = g_strconcat(REDIS_KEY_PREFIX "worker:", q->cfg.consumer, NULL);
  g_autofree char *ttl = g_strdup_printf("%u", ttl_ms);
  g_autofree char *running = g_strdup(runs->len ? g_ptr_array_index(runs, 0) : "");
  GError *err = NULL;
  g_autoptr(redisReply) set =
      redis_link_command(q->beats, &err, "SET", key, running, "PX", ttl, NULL);
  g_autoptr(redisReply) add =
      set ? redis_link_command(q->beats, &err, "SADD", REDIS_KEY_PREFIX "workers", q->cfg.consumer,
                               NULL)
          : NULL;
  for (guint i = 0; add != NULL && i < runs->len; i += 2) {
    g_autoptr(redisReply) r = redis_link_eval(
        q->beats, &redis_script_refresh, &err, REDIS_KEY_PREFIX, g_ptr_array_index(runs, i),
        g_ptr_array_index(runs, i + 1), q->cfg.consumer, NULL);
    if (r != NULL && redis_reply_int(r, 0) == 0) { /* said once: the run is forgotten */
      g_message("redis: job %s is no longer this worker's (deleted, or taken over by another "
                "worker while this one looked dead): its result here will be discarded",
                (char *)g_ptr_array_index(runs, i));
      forget(q, g_ptr_array_index(runs, i));
    }
    if (r == NULL) break;
  }
  if (err == NULL && q->cfg.metrics != NULL) {
    g_autofree char *json = serve_metrics_to_json(q->cfg.metrics);
    g_autoptr(redisReply) r = redis_link_command(q->beats, &err, "HSET", REDIS_KEY_PREFIX "metrics",
                                                 q->cfg.consumer, json, NULL);
  }
  if (err != NULL) {
    g_message("redis: heartbeat of %s: %s", q->cfg.consumer, err->message);
    g_error_free(err);
  }
}

static gpointer heartbeat_main(gpointer data) {
  RedisQueue *q = data;
  /* three beats within claim_after: one late beat does not make the worker look dead */
  guint interval_ms = CLAMP(q->cfg.claim_after_ms / 3, 50, 1000);
  g_mutex_lock(&q->lock);
  while (!q->stopping) {
    g_mutex_unlock(&q->lock);
    beat(q, MAX(q->cfg.claim_after_ms, 3 * interval_ms));
    g_mutex_lock(&q->lock);
    gint64 until = g_get_monotonic_time() + (gint64)interval_ms * 1000;
    while (!q->stopping && g_cond_wait_until(&q->wake, &q->lock, until))
      ;
  }
  g_mutex_unlock(&q->lock);
  return NULL;
}

static void rq_free(JobQueue *base) {
  RedisQueue *q = (RedisQueue *)base;
  if (q->heartbeat != NULL) {
    g_mutex_lock(&q->lock);
    q->stopping = TRUE;
    g_cond_signal(&q->wake);
    g_mutex_unlock(&q->lock);
    g_thread_join(q->heartbeat);
    /* the worker is gone: no need to wait for its key to expire */
    g_autofree char *key = g_strconcat(REDIS_KEY_PREFIX "worker:", q->cfg.consumer, NULL);
    GError *err = NULL;
    g_autoptr(redisReply) r = redis_link_command(q->beats, &err, "DEL", key, NULL);
    g_clear_error(&err);
  }
  redis_link_free(q->link);
  redis_link_free(q->reads);
  redis_link_free(q->beats);
  g_hash_table_destroy(q->claims);
  g_free((char *)q->cfg.consumer);
  g_free((char *)q->cfg.model_name);
  g_free(q->autoclaim_from);
  g_mutex_clear(&q->lock);
  g_cond_clear(&q->wake);
  g_free(q);
}

static const JobQueueOps redis_ops = {
    .submit = rq_submit,
    .get = rq_get,
    .list = rq_list,
    .remove = rq_remove,
    .claim = rq_claim,
    .set_progress = rq_set_progress,
    .finish = rq_finish,
    .owns = rq_owns,
    .release = rq_release,
    .count = rq_count,
    .cluster_metrics = rq_cluster_metrics,
    .expired = rq_expired,
    .free = rq_free,
};

JobQueue *job_queue_redis_open(const char *url, const RedisQueueConfig *cfg, GError **error) {
  RedisQueue *q = g_new0(RedisQueue, 1);
  q->base.ops = &redis_ops;
  q->cfg = *cfg;
  q->cfg.consumer = g_strdup(cfg->consumer);
  q->cfg.model_name = g_strdup(cfg->model_name);
  q->autoclaim_from = g_strdup("0-0");
  g_mutex_init(&q->lock);
  g_cond_init(&q->wake);
  q->claims = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify)claim_free);
  GError *err = NULL;
  q->link = redis_link_new(url, PATIENCE_MS, &err);
  g_autoptr(redisReply) ping = q->link ? redis_link_command(q->link, &err, "PING", NULL) : NULL;
  if (ping == NULL || !create_group(q->link, &err)) {
    g_propagate_error(error, err);
    rq_free(&q->base);
    return NULL;
  }
  if (cfg->consumer != NULL) {
    q->reads = redis_link_new(url, PATIENCE_MS, NULL);
    q->beats = redis_link_new(url, PATIENCE_MS, NULL);
    q->heartbeat = g_thread_new("redis-heartbeat", heartbeat_main, q);
  }
  return &q->base;
}
