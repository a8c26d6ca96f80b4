/* One connection to a Redis server, named by URL (redis://HOST[:PORT][/DB] or
 * unix:///PATH[?db=N]), that survives the server going away: a command on a lost connection
 * reconnects with a backoff of 0.1 s doubling to 2 s, for at most the link's patience, and says
 * so in the log. Commands are serialised by a mutex, so one link may be shared by threads; a
 * thread that blocks (XREADGROUP BLOCK, XREAD BLOCK) uses a link of its own. Scripts run with
 * EVALSHA, loaded again (EVAL) when the server has forgotten them (a restart). */
#pragma once

#include <glib.h>
#include <hiredis/hiredis.h>

G_BEGIN_DECLS

/* Every key the service keeps in Redis starts with this. */
#define REDIS_KEY_PREFIX "i2vgen:"

#define REDIS_LINK_ERROR (redis_link_error_quark())

typedef enum {
  REDIS_LINK_ERROR_URL,     /* the URL is not one of the accepted forms */
  REDIS_LINK_ERROR_CONNECT, /* no connection within the link's patience */
  REDIS_LINK_ERROR_REPLY,   /* the server answered with an error */
} RedisLinkErrorCode;

/* The GQuark of the REDIS_LINK_ERROR domain. */
GQuark redis_link_error_quark(void);

typedef struct RedisLink RedisLink;

/* A link to url (not connected until the first command); patience_ms bounds how long a command
 * waits for a lost server to come back. NULL with an error naming the URL and the forms
 * expected. */
RedisLink *redis_link_new(const char *url, guint patience_ms, GError **error);

/* Closes the connection and frees l (NULL allowed). */
void redis_link_free(RedisLink *l);

/* The URL of the link (owned by l). */
const char *redis_link_url(const RedisLink *l);

/* Runs the command of argc arguments (NUL-terminated strings) and returns its reply
 * (freeReplyObject), or NULL with an error: the connection could not be made again, or the
 * server answered with an error (REDIS_LINK_ERROR_REPLY, its message). A command cut off by a
 * lost connection is sent again once reconnected: every command and script the service sends
 * may run twice. */
redisReply *redis_link_run(RedisLink *l, int argc, const char *const *argv, GError **error);

/* redis_link_run with the arguments as a NULL-terminated list. */
redisReply *redis_link_command(RedisLink *l, GError **error, ...) G_GNUC_NULL_TERMINATED;

/* A Lua script and its SHA1 (computed on first use). Static storage: {source} */
typedef struct {
  const char *source;
  char *sha1;
} RedisScript;

/* Runs script with no keys (the scripts build their keys from a prefix argument) and the
 * NULL-terminated arguments; reply or NULL as redis_link_run. */
redisReply *redis_link_eval(RedisLink *l, RedisScript *script, GError **error,
                            ...) G_GNUC_NULL_TERMINATED;

/* The integer of a reply (a number string too); fallback for anything else. */
gint64 redis_reply_int(const redisReply *r, gint64 fallback);

/* The string of a reply (a status too), or NULL (nil, others); owned by r. */
const char *redis_reply_str(const redisReply *r);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(redisReply, freeReplyObject)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(RedisLink, redis_link_free)

G_END_DECLS
