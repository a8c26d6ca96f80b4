/* The Lua scripts of the Redis job queue (job_queue_redis.c): every change of a job's state is
 * one script, so that it is atomic across API nodes and workers. Each takes the key prefix as
 * its first argument; the comments in redis_scripts.c give the rest. */
#pragma once

#include "redis_link.h"

G_BEGIN_DECLS

extern RedisScript redis_script_submit, redis_script_start, redis_script_owns,
    redis_script_progress, redis_script_finish, redis_script_release, redis_script_refresh,
    redis_script_remove, redis_script_list, redis_script_count, redis_script_expired;

G_END_DECLS
