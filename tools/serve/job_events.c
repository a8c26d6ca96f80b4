/* The in-process job event hub. Events go through one FIFO drained by one idle source in the
 * hub's context, so each subscriber sees a job's events in the order they were published. */
#include "job_events.h"

#include <string.h>

typedef struct {
  char *job_id; /* NULL: every job */
  JobEventFunc func;
  gpointer user;
} Subscription;

struct JobEvents {
  GMainContext *context;
  GMutex lock;       /* pending, dispatch, seq, last */
  GQueue pending;    /* JobEvent* not yet delivered */
  GSource *dispatch; /* the idle source draining pending, NULL when none */
  GHashTable *seq;   /* job id → guint64* last sequence number */
  GHashTable *last;  /* job id → JobEvent* last progress */
  GHashTable *subs;  /* id → Subscription*; only touched in the hub's context */
  guint next_sub;
  JobEventSink sink; /* NULL: publish delivers here */
  gpointer sink_user;
};

gboolean job_event_is_terminal(const char *type) {
  return g_strcmp0(type, "completed") == 0 || g_strcmp0(type, "failed") == 0 ||
         g_strcmp0(type, "deleted") == 0;
}

void job_event_free(JobEvent *ev) {
  if (ev == NULL) return;
  g_free(ev->job_id);
  g_free(ev->type);
  g_free(ev->data);
  g_free(ev);
}

static JobEvent *event_copy(const JobEvent *ev) {
  JobEvent *c = g_new(JobEvent, 1);
  c->job_id = g_strdup(ev->job_id);
  c->type = g_strdup(ev->type);
  c->data = g_strdup(ev->data);
  c->seq = ev->seq;
  return c;
}

static void subscription_free(Subscription *s) {
  g_free(s->job_id);
  g_free(s);
}

JobEvents *job_events_new(GMainContext *context) {
  JobEvents *hub = g_new0(JobEvents, 1);
  hub->context = g_main_context_ref(context);
  g_mutex_init(&hub->lock);
  g_queue_init(&hub->pending);
  hub->seq = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
  hub->last =
      g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify)job_event_free);
  hub->subs =
      g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, (GDestroyNotify)subscription_free);
  return hub;
}

void job_events_free(JobEvents *hub) {
  if (hub == NULL) return;
  if (hub->dispatch != NULL) {
    g_source_destroy(hub->dispatch);
    g_source_unref(hub->dispatch);
  }
  g_queue_clear_full(&hub->pending, (GDestroyNotify)job_event_free);
  g_hash_table_destroy(hub->seq);
  g_hash_table_destroy(hub->last);
  g_hash_table_destroy(hub->subs);
  g_mutex_clear(&hub->lock);
  g_main_context_unref(hub->context);
  g_free(hub);
}

/* Delivers ev to every subscription of its job or of all jobs. The ids are collected first: a
 * callback may end its own or another subscription. */
static void deliver(JobEvents *hub, const JobEvent *ev) {
  g_autoptr(GArray) ids = g_array_new(FALSE, FALSE, sizeof(guint));
  GHashTableIter it;
  gpointer key, value;
  g_hash_table_iter_init(&it, hub->subs);
  while (g_hash_table_iter_next(&it, &key, &value)) {
    Subscription *s = value;
    if (s->job_id == NULL || strcmp(s->job_id, ev->job_id) == 0) {
      guint id = GPOINTER_TO_UINT(key);
      g_array_append_val(ids, id);
    }
  }
  for (guint i = 0; i < ids->len; i++) {
    Subscription *s =
        g_hash_table_lookup(hub->subs, GUINT_TO_POINTER(g_array_index(ids, guint, i)));
    if (s != NULL) s->func(ev, s->user);
  }
}

static gboolean dispatch_pending(gpointer data) {
  JobEvents *hub = data;
  for (;;) {
    g_mutex_lock(&hub->lock);
    JobEvent *ev = g_queue_pop_head(&hub->pending);
    if (ev == NULL) {
      g_source_unref(hub->dispatch);
      hub->dispatch = NULL;
    }
    g_mutex_unlock(&hub->lock);
    if (ev == NULL) return G_SOURCE_REMOVE;
    deliver(hub, ev);
    job_event_free(ev);
  }
}

void job_events_set_sink(JobEvents *hub, JobEventSink sink, gpointer user) {
  hub->sink = sink;
  hub->sink_user = user;
}

void job_events_publish(JobEvents *hub, const char *job_id, const char *type, const char *data) {
  if (hub->sink != NULL)
    hub->sink(job_id, type, data, hub->sink_user);
  else
    job_events_deliver(hub, job_id, type, data);
}

void job_events_deliver(JobEvents *hub, const char *job_id, const char *type, const char *data) {
  JobEvent *ev = g_new(JobEvent, 1);
  ev->job_id = g_strdup(job_id);
  ev->type = g_strdup(type);
  ev->data = g_strdup(data);
  g_mutex_lock(&hub->lock);
  guint64 *seq = g_hash_table_lookup(hub->seq, job_id);
  if (seq == NULL) {
    seq = g_new0(guint64, 1);
    g_hash_table_insert(hub->seq, g_strdup(job_id), seq);
  }
  ev->seq = ++*seq;
  if (strcmp(type, "progress") == 0)
    g_hash_table_insert(hub->last, g_strdup(job_id), event_copy(ev));
  else if (job_event_is_terminal(type)) {
    /* a job has no events after these: forget it (a re-queued job is not terminal, so its
     * events keep counting up across runs) */
    g_hash_table_remove(hub->last, job_id);
    g_hash_table_remove(hub->seq, job_id);
  }
  g_queue_push_tail(&hub->pending, ev);
  if (hub->dispatch == NULL) {
    hub->dispatch = g_idle_source_new();
    g_source_set_callback(hub->dispatch, dispatch_pending, hub, NULL);
    g_source_attach(hub->dispatch, hub->context);
  }
  g_mutex_unlock(&hub->lock);
}

guint job_events_subscribe(JobEvents *hub, const char *job_id, JobEventFunc func, gpointer user) {
  Subscription *s = g_new0(Subscription, 1);
  s->job_id = g_strdup(job_id);
  s->func = func;
  s->user = user;
  guint id = ++hub->next_sub;
  g_hash_table_insert(hub->subs, GUINT_TO_POINTER(id), s);
  return id;
}

void job_events_unsubscribe(JobEvents *hub, guint id) {
  g_hash_table_remove(hub->subs, GUINT_TO_POINTER(id));
}

JobEvent *job_events_last_progress(JobEvents *hub, const char *job_id) {
  g_mutex_lock(&hub->lock);
  JobEvent *last = g_hash_table_lookup(hub->last, job_id);
  JobEvent *copy = last ? event_copy(last) : NULL;
  g_mutex_unlock(&hub->lock);
  return copy;
}
