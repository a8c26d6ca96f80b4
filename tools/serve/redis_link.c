/* A Redis connection that reconnects. */
#include "redis_link.h"

#include <signal.h>
#include <string.h>

G_DEFINE_QUARK(i2vgen - redis - link - error - quark, redis_link_error)

#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS 2000
/* a reply must come within this; the longest blocking read the service sends waits 1 s */
#define REPLY_TIMEOUT_MS 10000

struct RedisLink {
  char *url;
  char *host, *path; /* one of them: TCP host or unix socket path */
  guint port, db;
  guint patience_ms;
  GMutex lock;
  redisContext *ctx; /* NULL while disconnected */
  guint backoff_ms;  /* the next wait between connection attempts */
};

/* Parses the database number text (empty: 0) into l->db; FALSE when it is not a number. */
static gboolean parse_db(RedisLink *l, const char *text) {
  guint64 db;
  if (text == NULL || *text == '\0') return TRUE;
  if (!g_ascii_string_to_unsigned(text, 10, 0, 65535, &db, NULL)) return FALSE;
  l->db = (guint)db;
  return TRUE;
}

/* Fills host/port or path and db from the URL; FALSE when it has another form. */
static gboolean parse_url(RedisLink *l, const char *url) {
  l->port = 6379;
  if (g_str_has_prefix(url, "unix://")) {
    const char *path = url + strlen("unix://");
    const char *q = strchr(path, '?');
    l->path = q ? g_strndup(path, q - path) : g_strdup(path);
    return l->path[0] == '/' && (q == NULL || (g_str_has_prefix(q, "?db=") && parse_db(l, q + 4)));
  }
  if (!g_str_has_prefix(url, "redis://")) return FALSE;
  const char *host = url + strlen("redis://");
  const char *slash = strchr(host, '/');
  g_autofree char *hostport = slash ? g_strndup(host, slash - host) : g_strdup(host);
  char *colon = strrchr(hostport, ':');
  if (colon != NULL) {
    guint64 port;
    if (!g_ascii_string_to_unsigned(colon + 1, 10, 1, 65535, &port, NULL)) return FALSE;
    l->port = (guint)port;
    *colon = '\0';
  }
  l->host = g_strdup(hostport);
  return l->host[0] != '\0' && (slash == NULL || parse_db(l, slash + 1));
}

/* hiredis writes with write(2): on a connection the server closed (a restart) that raises
 * SIGPIPE, which would kill the process instead of failing the command. The process ignores it,
 * as GIO does for its own sockets. */
static gpointer ignore_sigpipe(gpointer unused) {
  (void)unused;
  signal(SIGPIPE, SIG_IGN);
  return NULL;
}

RedisLink *redis_link_new(const char *url, guint patience_ms, GError **error) {
  static GOnce once = G_ONCE_INIT;
  g_once(&once, ignore_sigpipe, NULL);
  RedisLink *l = g_new0(RedisLink, 1);
  l->url = g_strdup(url);
  l->patience_ms = patience_ms;
  l->backoff_ms = BACKOFF_FIRST_MS;
  g_mutex_init(&l->lock);
  if (!parse_url(l, url)) {
    g_set_error(error, REDIS_LINK_ERROR, REDIS_LINK_ERROR_URL,
                "--queue '%s': expected redis://HOST[:PORT][/DB] or unix:///PATH/redis.sock[?db=N]",
                url);
    redis_link_free(l);
    return NULL;
  }
  return l;
}

void redis_link_free(RedisLink *l) {
  if (l == NULL) return;
  if (l->ctx != NULL) redisFree(l->ctx);
  g_free(l->url);
  g_free(l->host);
  g_free(l->path);
  g_mutex_clear(&l->lock);
  g_free(l);
}

const char *redis_link_url(const RedisLink *l) {
  return l->url;
}

/* One connection attempt (and SELECT db); FALSE with the reason in *why (g_free). */
static gboolean connect_once(RedisLink *l, char **why) {
  struct timeval tv = {REPLY_TIMEOUT_MS / 1000, 0};
  redisContext *c = l->path ? redisConnectUnixWithTimeout(l->path, tv)
                            : redisConnectWithTimeout(l->host, (int)l->port, tv);
  if (c == NULL || c->err) {
    *why = g_strdup(c ? c->errstr : "out of memory");
    if (c != NULL) redisFree(c);
    return FALSE;
  }
  redisSetTimeout(c, tv);
  if (l->db != 0) {
    char db[16];
    g_snprintf(db, sizeof(db), "%u", l->db);
    redisReply *r = redisCommand(c, "SELECT %s", db);
    gboolean ok = r != NULL && r->type != REDIS_REPLY_ERROR;
    *why = ok ? NULL : g_strdup_printf("SELECT %s: %s", db, r ? r->str : c->errstr);
    if (r != NULL) freeReplyObject(r);
    if (!ok) {
      redisFree(c);
      return FALSE;
    }
  }
  l->ctx = c;
  return TRUE;
}

/* Connects, retrying with the backoff for at most the patience. Lock held. */
static gboolean reconnect(RedisLink *l, GError **error) {
  gint64 deadline = g_get_monotonic_time() + (gint64)l->patience_ms * 1000;
  for (;;) {
    g_autofree char *why = NULL;
    if (connect_once(l, &why)) {
      if (l->backoff_ms != BACKOFF_FIRST_MS) g_message("redis %s: connected again", l->url);
      l->backoff_ms = BACKOFF_FIRST_MS;
      return TRUE;
    }
    gint64 now = g_get_monotonic_time();
    if (now >= deadline) {
      g_set_error(error, REDIS_LINK_ERROR, REDIS_LINK_ERROR_CONNECT,
                  "redis %s: cannot connect: %s (retrying)", l->url, why);
      return FALSE;
    }
    g_message("redis %s: cannot connect: %s; trying again in %.1f s", l->url, why,
              l->backoff_ms / 1000.0);
    g_usleep(MIN((gint64)l->backoff_ms * 1000, deadline - now));
    l->backoff_ms = MIN(l->backoff_ms * 2, BACKOFF_MAX_MS);
  }
}

redisReply *redis_link_run(RedisLink *l, int argc, const char *const *argv, GError **error) {
  g_mutex_lock(&l->lock);
  redisReply *r = NULL;
  /* a second try only after a lost connection: the first may not have reached the server */
  for (int attempt = 0; attempt < 2 && r == NULL; attempt++) {
    if (l->ctx == NULL && !reconnect(l, error)) break;
    r = redisCommandArgv(l->ctx, argc, (const char **)argv, NULL);
    if (r == NULL) {
      g_message("redis %s: connection lost (%s); reconnecting", l->url, l->ctx->errstr);
      redisFree(l->ctx);
      l->ctx = NULL;
      if (attempt == 1)
        g_set_error(error, REDIS_LINK_ERROR, REDIS_LINK_ERROR_CONNECT,
                    "redis %s: connection lost during %s", l->url, argv[0]);
    }
  }
  g_mutex_unlock(&l->lock);
  if (r != NULL && r->type == REDIS_REPLY_ERROR) {
    g_set_error(error, REDIS_LINK_ERROR, REDIS_LINK_ERROR_REPLY, "redis %s: %s: %s", l->url,
                argv[0], r->str);
    freeReplyObject(r);
    return NULL;
  }
  return r;
}

/* The arguments of a NULL-terminated list as an array (the strings are borrowed). */
static GPtrArray *collect(const char *first, va_list args) {
  GPtrArray *a = g_ptr_array_new();
  for (const char *s = first; s != NULL; s = va_arg(args, const char *))
    g_ptr_array_add(a, (char *)s);
  return a;
}

redisReply *redis_link_command(RedisLink *l, GError **error, ...) {
  va_list args;
  va_start(args, error);
  const char *first = va_arg(args, const char *);
  g_autoptr(GPtrArray) a = collect(first, args);
  va_end(args);
  return redis_link_run(l, (int)a->len, (const char *const *)a->pdata, error);
}

redisReply *redis_link_eval(RedisLink *l, RedisScript *script, GError **error, ...) {
  if (g_atomic_pointer_get(&script->sha1) == NULL) {
    char *sha1 = g_compute_checksum_for_string(G_CHECKSUM_SHA1, script->source, -1);
    if (!g_atomic_pointer_compare_and_exchange(&script->sha1, NULL, sha1)) g_free(sha1);
  }
  va_list args;
  va_start(args, error);
  const char *first = va_arg(args, const char *);
  g_autoptr(GPtrArray) a = collect(first, args);
  va_end(args);
  /* EVALSHA sha1 0 args...; on NOSCRIPT the same with EVAL and the source */
  g_ptr_array_insert(a, 0, "0");
  g_ptr_array_insert(a, 0, script->sha1);
  g_ptr_array_insert(a, 0, "EVALSHA");
  GError *err = NULL;
  redisReply *r = redis_link_run(l, (int)a->len, (const char *const *)a->pdata, &err);
  if (r == NULL && g_error_matches(err, REDIS_LINK_ERROR, REDIS_LINK_ERROR_REPLY) &&
      strstr(err->message, "NOSCRIPT") != NULL) {
    g_clear_error(&err);
    a->pdata[0] = "EVAL";
    a->pdata[1] = (char *)script->source;
    r = redis_link_run(l, (int)a->len, (const char *const *)a->pdata, &err);
  }
  if (err != NULL) g_propagate_error(error, err);
  return r;
}

gint64 redis_reply_int(const redisReply *r, gint64 fallback) {
  gint64 v;
  if (r == NULL) return fallback;
  if (r->type == REDIS_REPLY_INTEGER) return r->integer;
  if (r->type == REDIS_REPLY_STRING &&
      g_ascii_string_to_signed(r->str, 10, G_MININT64, G_MAXINT64, &v, NULL))
    return v;
  return fallback;
}

const char *redis_reply_str(const redisReply *r) {
  if (r == NULL || (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_STATUS)) return NULL;
  return r->str;
}
