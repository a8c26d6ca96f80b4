/* The events stream: XADD from any process, one XREAD BLOCK reader thread per process. The
 * reader keeps the id of the last entry it read, so a reconnection (a Redis restart) resumes
 * where it stopped. */
#include "job_events_redis.h"

#define EVENTS_KEY REDIS_KEY_PREFIX "events"
#define READ_BLOCK_MS "1000" /* the reader looks at its stop flag this often */
#define PATIENCE_MS 5000

struct JobEventsRedis {
  JobEvents *hub;
  RedisLink *writes, *reads;
  char *last; /* the id of the last entry read */
  GThread *thread;
  gint stopping;
};

gboolean job_events_redis_add(RedisLink *link, const char *job_id, const char *type,
                              const char *data, GError **error) {
  g_autoptr(redisReply) r =
      redis_link_command(link, error, "XADD", EVENTS_KEY, "MAXLEN", "~", "100000", "*", "job",
                         job_id, "type", type, "data", data, NULL);
  return r != NULL;
}

static void sink(const char *job_id, const char *type, const char *data, gpointer user) {
  JobEventsRedis *b = user;
  GError *err = NULL;
  if (!job_events_redis_add(b->writes, job_id, type, data, &err)) {
    g_message("redis: event %s of %s lost: %s", type, job_id, err->message);
    g_error_free(err);
  }
}

/* Delivers the entries of one XREAD reply ([[stream, [[id, [k, v...]]...]]]). */
static void deliver(JobEventsRedis *b, const redisReply *r) {
  if (r->type != REDIS_REPLY_ARRAY || r->elements != 1 || r->element[0]->elements != 2) return;
  const redisReply *entries = r->element[0]->element[1];
  for (size_t i = 0; entries->type == REDIS_REPLY_ARRAY && i < entries->elements; i++) {
    const redisReply *e = entries->element[i];
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2) continue;
    g_free(b->last);
    b->last = g_strdup(redis_reply_str(e->element[0]));
    const redisReply *f = e->element[1];
    const char *job = NULL, *type = NULL, *data = NULL;
    for (size_t k = 0; f->type == REDIS_REPLY_ARRAY && k + 1 < f->elements; k += 2) {
      const char *name = redis_reply_str(f->element[k]),
                 *value = redis_reply_str(f->element[k + 1]);
      if (g_strcmp0(name, "job") == 0) job = value;
      if (g_strcmp0(name, "type") == 0) type = value;
      if (g_strcmp0(name, "data") == 0) data = value;
    }
    if (job != NULL && type != NULL && data != NULL) job_events_deliver(b->hub, job, type, data);
  }
}

static gpointer reader_main(gpointer data) {
  JobEventsRedis *b = data;
  while (!g_atomic_int_get(&b->stopping)) {
    GError *err = NULL;
    g_autoptr(redisReply) r =
        redis_link_command(b->reads, &err, "XREAD", "COUNT", "100", "BLOCK", READ_BLOCK_MS,
                           "STREAMS", EVENTS_KEY, b->last, NULL);
    if (r != NULL) {
      deliver(b, r);
    } else { /* the link logged the reconnection attempts; wait a little and go on */
      g_message("redis: reading events: %s", err->message);
      g_error_free(err);
      g_usleep(G_USEC_PER_SEC / 2);
    }
  }
  return NULL;
}

JobEventsRedis *job_events_redis_start(JobEvents *hub, const char *url, GError **error) {
  JobEventsRedis *b = g_new0(JobEventsRedis, 1);
  b->hub = hub;
  b->writes = redis_link_new(url, PATIENCE_MS, error);
  b->reads = b->writes ? redis_link_new(url, PATIENCE_MS, error) : NULL;
  /* start after the newest entry now: the reader's id, not "$", survives a reconnection */
  g_autoptr(redisReply) newest = b->reads
                                     ? redis_link_command(b->reads, error, "XREVRANGE", EVENTS_KEY,
                                                          "+", "-", "COUNT", "1", NULL)
                                     : NULL;
  if (newest == NULL) {
    job_events_redis_stop(b);
    return NULL;
  }
  b->last =
      g_strdup(newest->elements == 1 ? redis_reply_str(newest->element[0]->element[0]) : "0-0");
  job_events_set_sink(hub, sink, b);
  b->thread = g_thread_new("redis-events", reader_main, b);
  return b;
}

void job_events_redis_stop(JobEventsRedis *b) {
  if (b == NULL) return;
  if (b->thread != NULL) {
    g_atomic_int_set(&b->stopping, 1);
    g_thread_join(b->thread);
    job_events_set_sink(b->hub, NULL, NULL);
  }
  redis_link_free(b->writes);
  redis_link_free(b->reads);
  g_free(b->last);
  g_free(b);
}
