/* Job events across processes: a hub (job_events.h) joined to the events stream in Redis, so
 * that an API node's event streams see the progress of a job running on a worker elsewhere, and
 * a worker sees the deletion made on any API node. */
#pragma once

#include "job_events.h"
#include "redis_link.h"

G_BEGIN_DECLS

/* Appends one event to the events stream (capped at the newest 100000). */
gboolean job_events_redis_add(RedisLink *link, const char *job_id, const char *type,
                              const char *data, GError **error);

typedef struct JobEventsRedis JobEventsRedis;

/* Joins hub to the events stream at url: what the hub publishes goes to the stream, and a thread
 * delivers every later event of the stream (this process's own too) to the hub. NULL with an
 * error naming the URL. */
JobEventsRedis *job_events_redis_start(JobEvents *hub, const char *url, GError **error);

/* Stops the thread (within a second), detaches the hub and frees b (NULL allowed). */
void job_events_redis_stop(JobEventsRedis *b);

G_END_DECLS
