/* The Lua scripts of the Redis job queue. Keys (P is the prefix, "i2vgen:"):
 *
 *   P job:ID     hash: the job record (status, progress, times, attempts, error, params as
 *                JSON, seq, ttl, entry = its queue stream entry, run = the current run's token)
 *   P jobs       sorted set: job ids by creation sequence (the list order)
 *   P seq        the creation sequence counter
 *   P queued, P running              sets of job ids by status
 *   P completed, P failed            sorted sets of job ids by the Unix time their record expires
 *   P queue      stream: one entry {job: ID} per accepted job; consumer group "workers"
 *   P dead       stream: the dead letters, jobs failed after their retries
 *
 * A run owns its job while the job's run field holds the token its worker drew when it started
 * it: progress, finish and release of a run that lost its job (taken over, deleted) change
 * nothing. Finished records expire after their ttl. */
#include "redis_scripts.h"

/* Ends a job (status completed or failed already set): expiry, status sets, the queue entry
 * acknowledged and deleted. The record expires at the very second its id becomes due for the
 * sweep (the score, "due"), not ttl after this call: a sweep never removes the files of a record
 * that still answers. */
#define TERMINAL                                                                                   \
  "local function terminal(P, k, id, status, now)\n"                                               \
  "  local due = now + tonumber(redis.call('HGET', k, 'ttl'))\n"                                   \
  "  redis.call('EXPIREAT', k, due)\n"                                                             \
  "  redis.call('SREM', P .. 'queued', id)\n"                                                      \
  "  redis.call('SREM', P .. 'running', id)\n"                                                     \
  "  redis.call('ZADD', P .. status, due, id)\n"                                                   \
  "  local entry = redis.call('HGET', k, 'entry')\n"                                               \
  "  redis.call('XACK', P .. 'queue', 'workers', entry)\n"                                         \
  "  redis.call('XDEL', P .. 'queue', entry)\n"                                                    \
  "end\n"

/* P, id, created_at, params, max_queued, ttl → {1, queued before} or {0, queued} when full. A
 * repeated submission of the same id changes nothing. */
RedisScript redis_script_submit = {
    "local P, id = ARGV[1], ARGV[2]\n"
    "local k = P .. 'job:' .. id\n"
    "if redis.call('EXISTS', k) == 1 then return {1, 0} end\n"
    "local queued = redis.call('SCARD', P .. 'queued')\n"
    "if queued >= tonumber(ARGV[5]) then return {0, queued} end\n"
    "local seq = redis.call('INCR', P .. 'seq')\n"
    "local entry = redis.call('XADD', P .. 'queue', '*', 'job', id)\n"
    "redis.call('HSET', k, 'id', id, 'status', 'queued', 'progress', 0, 'created_at', ARGV[3],\n"
    "  'started_at', 0, 'completed_at', 0, 'attempts', 0, 'params', ARGV[4], 'seq', seq,\n"
    "  'ttl', ARGV[6], 'entry', entry, 'run', '')\n"
    "redis.call('ZADD', P .. 'jobs', seq, id)\n"
    "redis.call('SADD', P .. 'queued', id)\n"
    "return {1, queued}\n",
    NULL};

/* P, id, consumer, entry, now, retries, token → 'run' (the job is the caller's now), 'skip' (gone
 * or finished: the entry is acknowledged) or 'dead' (out of retries: failed with reason
 * "interrupted" and copied to the dead letters). A run that already had all its retries started
 * attempts = retries + 1 times. */
RedisScript redis_script_start = {
    TERMINAL
    "local P, id, me, entry, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])\n"
    "local k = P .. 'job:' .. id\n"
    "local st = redis.call('HGET', k, 'status')\n"
    "if not st or st == 'completed' or st == 'failed' then\n"
    "  redis.call('XACK', P .. 'queue', 'workers', entry)\n"
    "  redis.call('XDEL', P .. 'queue', entry)\n"
    "  return 'skip'\n"
    "end\n"
    "if st == 'in_progress' and redis.call('HGET', k, 'run') == ARGV[7] then return 'run' end\n"
    "local attempts = tonumber(redis.call('HGET', k, 'attempts'))\n"
    "if attempts > tonumber(ARGV[6]) then\n"
    "  local msg = 'the worker running this video stopped during each of its ' .. attempts ..\n"
    "    ' attempts (--retries ' .. ARGV[6] .. ' allows ' .. (tonumber(ARGV[6]) + 1) .. ')'\n"
    "  redis.call('HSET', k, 'status', 'failed', 'completed_at', now, 'run', '',\n"
    "    'error_code', 'interrupted', 'error_message', msg)\n"
    "  redis.call('XADD', P .. 'dead', 'MAXLEN', '~', 10000, '*', 'job', id, 'reason',\n"
    "    'interrupted', 'message', msg, 'attempts', attempts, 'last_worker',\n"
    "    redis.call('HGET', k, 'consumer') or '', 'params', redis.call('HGET', k, 'params'))\n"
    "  terminal(P, k, id, 'failed', now)\n"
    "  return 'dead'\n"
    "end\n"
    "redis.call('HSET', k, 'status', 'in_progress', 'progress', 0, 'started_at', now,\n"
    "  'attempts', attempts + 1, 'consumer', me, 'run', ARGV[7], 'entry', entry)\n"
    "redis.call('SREM', P .. 'queued', id)\n"
    "redis.call('SADD', P .. 'running', id)\n"
    "return 'run'\n",
    NULL};

/* P, id, token → 1 while the run owns its job in progress, else 0. */
RedisScript redis_script_owns = {"local k = ARGV[1] .. 'job:' .. ARGV[2]\n"
                                 "if redis.call('HGET', k, 'status') == 'in_progress' and\n"
                                 "   redis.call('HGET', k, 'run') == ARGV[3] then return 1 end\n"
                                 "return 0\n",
                                 NULL};

/* P, id, token, progress → 1, or 0 when the run does not own the job. */
RedisScript redis_script_progress = {
    "local k = ARGV[1] .. 'job:' .. ARGV[2]\n"
    "if redis.call('HGET', k, 'status') ~= 'in_progress' or\n"
    "   redis.call('HGET', k, 'run') ~= ARGV[3] then return 0 end\n"
    "redis.call('HSET', k, 'progress', ARGV[4])\n"
    "return 1\n",
    NULL};

/* P, id, token, status, code, message, now → 1 once the job has that status by this run (a
 * repeated finish too), 0 when the run does not own it. */
RedisScript redis_script_finish = {
    TERMINAL "local P, id, now = ARGV[1], ARGV[2], tonumber(ARGV[7])\n"
             "local k = P .. 'job:' .. id\n"
             "if redis.call('HGET', k, 'run') ~= ARGV[3] then return 0 end\n"
             "local st = redis.call('HGET', k, 'status')\n"
             "if st == ARGV[4] then return 1 end\n"
             "if st ~= 'in_progress' then return 0 end\n"
             "redis.call('HSET', k, 'status', ARGV[4], 'completed_at', now)\n"
             "if ARGV[4] == 'completed' then redis.call('HSET', k, 'progress', 100) end\n"
             "if ARGV[5] ~= '' then\n"
             "  redis.call('HSET', k, 'error_code', ARGV[5], 'error_message', ARGV[6])\n"
             "end\n"
             "terminal(P, k, id, ARGV[4], now)\n"
             "return 1\n",
    NULL};

/* P, id, token, idle_ms → 1 when the job went back to the queue, the attempt not counted, and
 * its entry made idle for idle_ms so that the next worker's XAUTOCLAIM takes it at once. */
RedisScript redis_script_release = {
    "local P, id = ARGV[1], ARGV[2]\n"
    "local k = P .. 'job:' .. id\n"
    "if redis.call('HGET', k, 'status') ~= 'in_progress' or\n"
    "   redis.call('HGET', k, 'run') ~= ARGV[3] then return 0 end\n"
    "redis.call('HSET', k, 'status', 'queued', 'progress', 0, 'started_at', 0, 'run', '')\n"
    "redis.call('HINCRBY', k, 'attempts', -1)\n"
    "redis.call('SREM', P .. 'running', id)\n"
    "redis.call('SADD', P .. 'queued', id)\n"
    "redis.call('XCLAIM', P .. 'queue', 'workers', redis.call('HGET', k, 'consumer'), 0,\n"
    "  redis.call('HGET', k, 'entry'), 'IDLE', ARGV[4], 'JUSTID')\n"
    "return 1\n",
    NULL};

/* P, id, token, consumer → 1 when the run still owns the job and its entry's idle time was
 * reset (the heartbeat of a running job), else 0. */
RedisScript redis_script_refresh = {
    "local P, id = ARGV[1], ARGV[2]\n"
    "local k = P .. 'job:' .. id\n"
    "if redis.call('HGET', k, 'run') ~= ARGV[3] then return 0 end\n"
    "local entry = redis.call('HGET', k, 'entry')\n"
    "local p = redis.call('XPENDING', P .. 'queue', 'workers', entry, entry, 1)\n"
    "if not p[1] or p[1][2] ~= ARGV[4] then return 0 end\n"
    "redis.call('XCLAIM', P .. 'queue', 'workers', ARGV[4], 0, entry, 'JUSTID')\n"
    "return 1\n",
    NULL};

/* P, id → the status the deleted job had, or nil when there is none. Its queue entry goes too. */
RedisScript redis_script_remove = {
    "local P, id = ARGV[1], ARGV[2]\n"
    "local k = P .. 'job:' .. id\n"
    "local st = redis.call('HGET', k, 'status')\n"
    "if not st then return false end\n"
    "local entry = redis.call('HGET', k, 'entry')\n"
    "redis.call('XACK', P .. 'queue', 'workers', entry)\n"
    "redis.call('XDEL', P .. 'queue', entry)\n"
    "redis.call('DEL', k)\n"
    "redis.call('ZREM', P .. 'jobs', id)\n"
    "for _, s in ipairs({'queued', 'running'}) do redis.call('SREM', P .. s, id) end\n"
    "for _, s in ipairs({'completed', 'failed'}) do redis.call('ZREM', P .. s, id) end\n"
    "return st\n",
    NULL};

/* P, after ('' = from the start), ascending ('1'/'0'), n → up to n records (HGETALL arrays) in
 * creation order after the job after; an error "NOTFOUND" when after is unknown. Ids whose
 * record expired are dropped from the list on the way. */
RedisScript redis_script_list = {
    "local P, after, asc, n = ARGV[1], ARGV[2], ARGV[3] == '1', tonumber(ARGV[4])\n"
    "local from = asc and '-inf' or '+inf'\n"
    "if after ~= '' then\n"
    "  local s = redis.call('ZSCORE', P .. 'jobs', after)\n"
    "  if not s then return redis.error_reply('NOTFOUND') end\n"
    "  from = '(' .. s\n"
    "end\n"
    "local out = {}\n"
    "while #out < n do\n"
    "  local ids\n"
    "  if asc then\n"
    "    ids = redis.call('ZRANGEBYSCORE', P .. 'jobs', from, '+inf', 'WITHSCORES', 'LIMIT', 0,\n"
    "      n - #out)\n"
    "  else\n"
    "    ids = redis.call('ZREVRANGEBYSCORE', P .. 'jobs', from, '-inf', 'WITHSCORES', 'LIMIT',\n"
    "      0, n - #out)\n"
    "  end\n"
    "  if #ids == 0 then break end\n"
    "  for i = 1, #ids, 2 do\n"
    "    local h = redis.call('HGETALL', P .. 'job:' .. ids[i])\n"
    "    if #h == 0 then redis.call('ZREM', P .. 'jobs', ids[i]) else out[#out + 1] = h end\n"
    "    from = '(' .. ids[i + 1]\n"
    "  end\n"
    "end\n"
    "return out\n",
    NULL};

/* P, now → {queued, in_progress, completed, failed}; finished jobs whose record expired are not
 * counted (redis_script_expired takes them out of the sets). */
RedisScript redis_script_count = {
    "local P, now = ARGV[1], ARGV[2]\n"
    "local out = {redis.call('SCARD', P .. 'queued'), redis.call('SCARD', P .. 'running')}\n"
    "for _, s in ipairs({'completed', 'failed'}) do\n"
    "  out[#out + 1] = redis.call('ZCOUNT', P .. s, '(' .. now, '+inf')\n"
    "end\n"
    "return out\n",
    NULL};

/* P, now, n → up to n ids of finished jobs whose record expired by now, taken out of the sets:
 * each id is returned once, to one caller, however many API nodes sweep. */
RedisScript redis_script_expired = {
    "local P, now, n = ARGV[1], ARGV[2], tonumber(ARGV[3])\n"
    "local out = {}\n"
    "for _, s in ipairs({'completed', 'failed'}) do\n"
    "  local ids = redis.call('ZRANGEBYSCORE', P .. s, '-inf', now, 'LIMIT', 0, n - #out)\n"
    "  for _, id in ipairs(ids) do\n"
    "    redis.call('ZREM', P .. s, id)\n"
    "    out[#out + 1] = id\n"
    "  end\n"
    "  if #out >= n then break end\n"
    "end\n"
    "return out\n",
    NULL};
