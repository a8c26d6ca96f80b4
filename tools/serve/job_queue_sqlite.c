/* The embedded job queue: one SQLite database in WAL mode beside the job files.
 *
 * WAL lets status reads proceed while the worker writes, and with synchronous=FULL a commit is on
 * disk when it returns, so an accepted job survives SIGKILL and power loss. One connection is
 * shared by the HTTP threads and the worker under a mutex (the work per call is a few indexed
 * row operations); claim waits on a condition variable that submit and release signal. */
#include "job_queue.h"

#include <sqlite3.h>
#include <string.h>

typedef struct {
  JobQueue base;
  sqlite3 *db;
  char *path;
  GMutex lock;
  GCond changed; /* a job was queued, or a claim should give up */
} SqliteQueue;

#define COLUMNS                                                                                    \
  "id, status, progress, created_at, started_at, completed_at, attempts, error_code, "             \
  "error_message, params"

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS videos ("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT," /* creation order: the list cursor */
    "  id TEXT NOT NULL UNIQUE,"
    "  status TEXT NOT NULL,"
    "  progress INTEGER NOT NULL DEFAULT 0,"
    "  created_at INTEGER NOT NULL,"
    "  started_at INTEGER NOT NULL DEFAULT 0,"
    "  completed_at INTEGER NOT NULL DEFAULT 0,"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  error_code TEXT,"
    "  error_message TEXT,"
    "  params TEXT NOT NULL);" /* JSON: job_params_add_members */
    "CREATE INDEX IF NOT EXISTS videos_by_status ON videos (status, seq);";

static gboolean store_error(SqliteQueue *q, GError **error, const char *what) {
  g_set_error(error, JOB_QUEUE_ERROR, JOB_QUEUE_ERROR_STORE, "job database %s: %s: %s", q->path,
              what, sqlite3_errmsg(q->db));
  return FALSE;
}

static gboolean exec(SqliteQueue *q, const char *sql, GError **error) {
  if (sqlite3_exec(q->db, sql, NULL, NULL, NULL) == SQLITE_OK) return TRUE;
  return store_error(q, error, sql);
}

/* A prepared statement with its text arguments bound (NULL-terminated list), or NULL. */
static sqlite3_stmt *prepare(SqliteQueue *q, const char *sql, GError **error, ...) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(q->db, sql, -1, &st, NULL) != SQLITE_OK) {
    store_error(q, error, "prepare");
    return NULL;
  }
  va_list args;
  va_start(args, error);
  int i = 1;
  for (const char *arg = va_arg(args, const char *); arg != NULL; arg = va_arg(args, const char *))
    sqlite3_bind_text(st, i++, arg, -1, SQLITE_TRANSIENT);
  va_end(args);
  return st;
}

/* Runs a statement that returns no rows; the number of rows it changed, or -1 on error. */
static int run(SqliteQueue *q, sqlite3_stmt *st, GError **error) {
  if (st == NULL) return -1;
  int rc = sqlite3_step(st);
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE) {
    store_error(q, error, "write");
    return -1;
  }
  return sqlite3_changes(q->db);
}

static const char *column_text(sqlite3_stmt *st, int i) {
  return (const char *)sqlite3_column_text(st, i);
}

/* The job of the current row of a statement selecting COLUMNS. */
static Job *job_from_row(SqliteQueue *q, sqlite3_stmt *st, GError **error) {
  g_autoptr(Job) job = job_new();
  g_strlcpy(job->id, column_text(st, 0), sizeof(job->id));
  if (!job_status_parse(column_text(st, 1), &job->status)) {
    g_set_error(error, JOB_QUEUE_ERROR, JOB_QUEUE_ERROR_STORE,
                "job database %s: job %s has an unknown status '%s'", q->path, job->id,
                column_text(st, 1));
    return NULL;
  }
  job->progress = sqlite3_column_int(st, 2);
  job->created_at = sqlite3_column_int64(st, 3);
  job->started_at = sqlite3_column_int64(st, 4);
  job->completed_at = sqlite3_column_int64(st, 5);
  job->attempts = (guint)sqlite3_column_int(st, 6);
  job->error_code = g_strdup(column_text(st, 7));
  job->error_message = g_strdup(column_text(st, 8));
  GError *err = NULL;
  if (!job_params_from_json(column_text(st, 9), &job->params, &err)) {
    g_set_error(error, JOB_QUEUE_ERROR, JOB_QUEUE_ERROR_STORE,
                "job database %s: job %s has unreadable parameters: %s", q->path, job->id,
                err->message);
    g_error_free(err);
    return NULL;
  }
  return g_steal_pointer(&job);
}

/* The job with id, or NULL (not found is an error). Call with the lock held. */
static Job *get_locked(SqliteQueue *q, const char *id, GError **error) {
  sqlite3_stmt *st = prepare(q, "SELECT " COLUMNS " FROM videos WHERE id = ?", error, id, NULL);
  if (st == NULL) return NULL;
  Job *job = NULL;
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW)
    job = job_from_row(q, st, error);
  else if (rc == SQLITE_DONE)
    g_set_error(error, JOB_QUEUE_ERROR, JOB_QUEUE_ERROR_NOT_FOUND, "no video with id '%s'", id);
  else
    store_error(q, error, "read");
  sqlite3_finalize(st);
  return job;
}

/* An integer from a one-row, one-column query; -1 on error. */
static gint64 query_int(SqliteQueue *q, sqlite3_stmt *st, GError **error) {
  if (st == NULL) return -1;
  gint64 v = -1;
  if (sqlite3_step(st) == SQLITE_ROW)
    v = sqlite3_column_int64(st, 0);
  else
    store_error(q, error, "read");
  sqlite3_finalize(st);
  return v;
}

static gboolean sq_submit(JobQueue *base, const Job *job, guint max_queued, GError **error) {
  SqliteQueue *q = (SqliteQueue *)base;
  g_autofree char *params = job_params_to_json(&job->params);
  char created[24];
  g_snprintf(created, sizeof(created), "%" G_GINT64_FORMAT, job->created_at);

  g_mutex_lock(&q->lock);
  gboolean ok = exec(q, "BEGIN IMMEDIATE", error);
  if (ok) {
    gint64 queued = query_int(
        q, prepare(q, "SELECT count(*) FROM videos WHERE status = 'queued'", error, NULL), error);
    if (queued < 0) {
      ok = FALSE;
    } else if (queued >= max_queued) {
      g_set_error(error, JOB_QUEUE_ERROR, JOB_QUEUE_ERROR_FULL,
                  "the queue is full: %" G_GINT64_FORMAT " videos are waiting (--max-queued %u)",
                  queued, max_queued);
      ok = FALSE;
    } else {
      ok = run(q,
               prepare(q,
                       "INSERT INTO videos (id, status, created_at, params) "
                       "VALUES (?, 'queued', ?, ?)",
                       error, job->id, created, params, NULL),
               error) == 1;
    }
    ok = ok ? exec(q, "COMMIT", error) : (exec(q, "ROLLBACK", NULL), FALSE);
  }
  if (ok) g_cond_broadcast(&q->changed);
  g_mutex_unlock(&q->lock);
  return ok;
}

static Job *sq_get(JobQueue *base, const char *id, GError **error) {
  SqliteQueue *q = (SqliteQueue *)base;
  g_mutex_lock(&q->lock);
  Job *job = get_locked(q, id, error);
  g_mutex_unlock(&q->lock);
  return job;
}

static GPtrArray *sq_list(JobQueue *base, guint limit, const char *after, gboolean ascending,
                          gboolean *has_more, GError **error) {
  SqliteQueue *q = (SqliteQueue *)base;
  g_autoptr(GPtrArray) jobs = g_ptr_array_new_with_free_func((GDestroyNotify)job_free);
  g_mutex_lock(&q->lock);
  gint64 from = ascending ? 0 : G_MAXINT64;
  if (after != NULL) {
    sqlite3_stmt *st = prepare(q, "SELECT seq FROM videos WHERE id = ?", error, after, NULL);
    int rc = st ? sqlite3_step(st) : SQLITE_ERROR;
    if (rc == SQLITE_ROW)
      from = sqlite3_column_int64(st, 0);
    else if (rc == SQLITE_DONE)
      g_set_error(error, JOB_QUEUE_ERROR, JOB_QUEUE_ERROR_NOT_FOUND, "no video with id '%s'",
                  after);
    else if (st != NULL)
      store_error(q, error, "read");
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW) {
      g_mutex_unlock(&q->lock);
      return NULL;
    }
  }
  sqlite3_stmt *st =
      prepare(q,
              ascending ? "SELECT " COLUMNS " FROM videos WHERE seq > ? ORDER BY seq ASC LIMIT ?"
                        : "SELECT " COLUMNS " FROM videos WHERE seq < ? ORDER BY seq DESC LIMIT ?",
              error, NULL);
  gboolean ok = st != NULL;
  if (ok) {
    sqlite3_bind_int64(st, 1, from);
    sqlite3_bind_int64(st, 2, (gint64)limit + 1); /* one more tells has_more */
    int rc;
    while (ok && (rc = sqlite3_step(st)) == SQLITE_ROW) {
      Job *job = job_from_row(q, st, error);
      ok = job != NULL;
      if (ok) g_ptr_array_add(jobs, job);
    }
    if (ok && rc != SQLITE_DONE) ok = store_error(q, error, "read");
    sqlite3_finalize(st);
  }
  g_mutex_unlock(&q->lock);
  if (!ok) return NULL;
  *has_more = jobs->len > limit;
  if (*has_more) g_ptr_array_set_size(jobs, limit);
  return g_steal_pointer(&jobs);
}

static gboolean sq_remove(JobQueue *base, const char *id, JobStatus *was, GError **error) {
  SqliteQueue *q = (SqliteQueue *)base;
  g_mutex_lock(&q->lock);
  Job *job = get_locked(q, id, error);
  gboolean ok = job != NULL;
  if (ok && was != NULL) *was = job->status;
  ok = ok && run(q, prepare(q, "DELETE FROM videos WHERE id = ?", error, id, NULL), error) >= 0;
  g_mutex_unlock(&q->lock);
  job_free(job);
  return ok;
}

/* The oldest queued job claimed for this caller, NULL when none (or on error). Lock held. */
static Job *claim_locked(SqliteQueue *q, GError **error) {
  sqlite3_stmt *st =
      prepare(q, "SELECT id FROM videos WHERE status = 'queued' ORDER BY seq LIMIT 1", error, NULL);
  if (st == NULL) return NULL;
  int rc = sqlite3_step(st);
  char *id = rc == SQLITE_ROW ? g_strdup(column_text(st, 0)) : NULL;
  sqlite3_finalize(st);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) store_error(q, error, "read");
  if (id == NULL) return NULL;
  char now[24];
  g_snprintf(now, sizeof(now), "%" G_GINT64_FORMAT, g_get_real_time() / G_USEC_PER_SEC);
  Job *job = NULL;
  if (run(q,
          prepare(q,
                  "UPDATE videos SET status = 'in_progress', progress = 0, started_at = ?, "
                  "attempts = attempts + 1 WHERE id = ?",
                  error, now, id, NULL),
          error) == 1)
    job = get_locked(q, id, error);
  g_free(id);
  return job;
}

static void wake_claim(GCancellable *stop, SqliteQueue *q) {
  (void)stop;
  g_mutex_lock(&q->lock);
  g_cond_broadcast(&q->changed);
  g_mutex_unlock(&q->lock);
}

static Job *sq_claim(JobQueue *base, GCancellable *stop, GError **error) {
  SqliteQueue *q = (SqliteQueue *)base;
  /* connected before taking the lock: the handler runs at once when stop is already cancelled */
  gulong handler = g_cancellable_connect(stop, G_CALLBACK(wake_claim), q, NULL);
  g_mutex_lock(&q->lock);
  Job *job = NULL;
  GError *err = NULL;
  while (!g_cancellable_is_cancelled(stop) && (job = claim_locked(q, &err)) == NULL && err == NULL)
    g_cond_wait(&q->changed, &q->lock);
  g_mutex_unlock(&q->lock);
  g_cancellable_disconnect(stop, handler);
  if (err != NULL) g_propagate_error(error, err);
  return job;
}

static gboolean sq_set_progress(JobQueue *base, const char *id, int progress, GError **error) {
  SqliteQueue *q = (SqliteQueue *)base;
  char value[16];
  g_snprintf(value, sizeof(value), "%d", progress);
  g_mutex_lock(&q->lock);
  gboolean ok =
      run(q,
          prepare(q, "UPDATE videos SET progress = ? WHERE id = ? AND status = 'in_progress'",
                  error, value, id, NULL),
          error) >= 0;
  g_mutex_unlock(&q->lock);
  return ok;
}

static gboolean sq_finish(JobQueue *base, const char *id, JobStatus status, const char *code,
                          const char *message, GError **error) {
  SqliteQueue *q = (SqliteQueue *)base;
  char now[24];
  g_snprintf(now, sizeof(now), "%" G_GINT64_FORMAT, g_get_real_time() / G_USEC_PER_SEC);
  g_mutex_lock(&q->lock);
  sqlite3_stmt *st = prepare(q,
                             "UPDATE videos SET status = ?, completed_at = ?, error_code = ?, "
                             "error_message = ?, progress = CASE WHEN ? = 'completed' THEN 100 "
                             "ELSE progress END WHERE id = ? AND status = 'in_progress'",
                             error, NULL);
  if (st != NULL) {
    sqlite3_bind_text(st, 1, job_status_name(status), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, now, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, code, -1, SQLITE_TRANSIENT); /* NULL binds SQL NULL */
    sqlite3_bind_text(st, 4, message, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 5, job_status_name(status), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, id, -1, SQLITE_TRANSIENT);
  }
  int changed = run(q, st, error);
  g_mutex_unlock(&q->lock);
  return changed == 1;
}

static gboolean sq_owns(JobQueue *base, const char *id, GError **error) {
  SqliteQueue *q = (SqliteQueue *)base;
  GError *err = NULL;
  g_mutex_lock(&q->lock);
  Job *job = get_locked(q, id, &err);
  g_mutex_unlock(&q->lock);
  /* one worker per database: a job in progress is that worker's; a deleted one is nobody's */
  gboolean owns = job != NULL && job->status == JOB_IN_PROGRESS;
  job_free(job);
  if (err != NULL && !g_error_matches(err, JOB_QUEUE_ERROR, JOB_QUEUE_ERROR_NOT_FOUND))
    g_propagate_error(error, err);
  else
    g_clear_error(&err);
  return owns;
}

static gboolean sq_release(JobQueue *base, const char *id, GError **error) {
  SqliteQueue *q = (SqliteQueue *)base;
  g_mutex_lock(&q->lock);
  int changed = run(q,
                    prepare(q,
                            "UPDATE videos SET status = 'queued', progress = 0, started_at = 0, "
                            "attempts = attempts - 1 WHERE id = ? AND status = 'in_progress'",
                            error, id, NULL),
                    error);
  if (changed > 0) g_cond_broadcast(&q->changed);
  g_mutex_unlock(&q->lock);
  return changed >= 0;
}

static gboolean sq_count(JobQueue *base, guint counts[JOB_STATUS_COUNT], GError **error) {
  SqliteQueue *q = (SqliteQueue *)base;
  memset(counts, 0, sizeof(guint) * JOB_STATUS_COUNT);
  g_mutex_lock(&q->lock);
  sqlite3_stmt *st = prepare(q, "SELECT status, count(*) FROM videos GROUP BY status", error, NULL);
  gboolean ok = st != NULL;
  int rc = SQLITE_DONE;
  while (ok && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    JobStatus s;
    if (job_status_parse(column_text(st, 0), &s)) counts[s] = (guint)sqlite3_column_int(st, 1);
  }
  if (ok && rc != SQLITE_DONE) ok = store_error(q, error, "read");
  sqlite3_finalize(st);
  g_mutex_unlock(&q->lock);
  return ok;
}

static void sq_free(JobQueue *base) {
  SqliteQueue *q = (SqliteQueue *)base;
  sqlite3_close(q->db);
  g_free(q->path);
  g_mutex_clear(&q->lock);
  g_cond_clear(&q->changed);
  g_free(q);
}

static const JobQueueOps sqlite_ops = {
    .submit = sq_submit,
    .get = sq_get,
    .list = sq_list,
    .remove = sq_remove,
    .claim = sq_claim,
    .set_progress = sq_set_progress,
    .finish = sq_finish,
    .owns = sq_owns,
    .release = sq_release,
    .count = sq_count,
    .free = sq_free,
};

/* Queues the jobs a dead server left in progress again, or fails those out of retries. */
static gboolean recover(SqliteQueue *q, guint retries, guint *requeued, guint *failed,
                        GError **error) {
  char limit[16], now[24];
  g_snprintf(limit, sizeof(limit), "%u", retries);
  g_snprintf(now, sizeof(now), "%" G_GINT64_FORMAT, g_get_real_time() / G_USEC_PER_SEC);
  int back = run(q,
                 prepare(q,
                         "UPDATE videos SET status = 'queued', progress = 0, started_at = 0 "
                         "WHERE status = 'in_progress' AND attempts <= CAST(? AS INTEGER)",
                         error, limit, NULL),
                 error);
  if (back < 0) return FALSE;
  int dead = run(q,
                 prepare(q,
                         "UPDATE videos SET status = 'failed', completed_at = ?, "
                         "error_code = 'interrupted', error_message = 'the server stopped "
                         "during each of the ' || attempts || ' attempts to generate this video "
                         "(--retries ' || ? || ' allows ' || (CAST(? AS INTEGER) + 1) || ')' "
                         "WHERE status = 'in_progress'",
                         error, now, limit, limit, NULL),
                 error);
  if (dead < 0) return FALSE;
  if (requeued != NULL) *requeued = (guint)back;
  if (failed != NULL) *failed = (guint)dead;
  return TRUE;
}

JobQueue *job_queue_sqlite_open(const char *path, guint retries, guint *requeued, guint *failed,
                                GError **error) {
  SqliteQueue *q = g_new0(SqliteQueue, 1);
  q->base.ops = &sqlite_ops;
  q->path = g_strdup(path);
  g_mutex_init(&q->lock);
  g_cond_init(&q->changed);
  gboolean ok =
      sqlite3_open_v2(path, &q->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) == SQLITE_OK;
  if (!ok) store_error(q, error, "open");
  ok = ok && sqlite3_busy_timeout(q->db, 5000) == SQLITE_OK;
  if (ok) {
    sqlite3_stmt *st = prepare(q, "PRAGMA journal_mode = WAL", error, NULL);
    ok = st != NULL && sqlite3_step(st) == SQLITE_ROW &&
         g_ascii_strcasecmp(column_text(st, 0), "wal") == 0;
    if (st != NULL && !ok)
      g_set_error(error, JOB_QUEUE_ERROR, JOB_QUEUE_ERROR_STORE,
                  "job database %s: cannot switch to write-ahead logging (journal mode '%s'); "
                  "is the --data folder on a local file system?",
                  path, column_text(st, 0) ? column_text(st, 0) : "?");
    sqlite3_finalize(st);
  }
  ok = ok && exec(q, "PRAGMA synchronous = FULL", error) && exec(q, schema, error) &&
       recover(q, retries, requeued, failed, error);
  if (!ok) {
    sq_free(&q->base);
    return NULL;
  }
  return &q->base;
}
