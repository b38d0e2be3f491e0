/* kv.h -- an asynchronous Redis client on the router's libevent loop (hiredis async API).
 *
 * One kv is one Redis server (a redis:// or unix:// URL) with two
 * connections: one for commands and, once kv_subscribe was called, one for
 * pub/sub. Nothing blocks the loop: connects are non-blocking (a host name
 * is resolved once, in kv_new, at startup), every command has a deadline
 * (KV_TIMEOUT_MS from when it was sent; a command past it drops the
 * connection, which fails every command in flight), and a lost connection
 * is re-made with a growing backoff. While there is no connection, commands
 * are refused at once (kv_command returns NULL) so callers fall back on
 * what they know locally. Semantics of the keys slodrill keeps in Redis:
 * router/shared.h and docs/cache.md. */
#ifndef SLODRILL_ROUTER_KV_H
#define SLODRILL_ROUTER_KV_H

#include <stddef.h>
#include <stdint.h>
#include "common/compiler.h"

struct event_base;
struct redisReply;
struct kv;
struct kv_op;

#define KV_TIMEOUT_MS 250        /* a command's deadline */
#define KV_CONNECT_TIMEOUT_MS 1000
#define KV_MAX_INFLIGHT 8192     /* commands waiting for a reply; past it kv_command refuses */

/* A parsed server address. */
struct kv_url {
    char host[256];     /* "" for a unix socket */
    int port;           /* default 6379 */
    char path[256];     /* unix socket path, "" for TCP */
    char password[128]; /* "" none */
    char user[64];      /* ACL user, "" none */
    int db;             /* SELECTed after connecting; default 0 */
};

/* Parses redis://[[user]:password@]host[:port][/db] or unix:///path[?db=N].
 * 0, or -1 with err. */
int kv_url_parse(const char *url, struct kv_url *out, char *err, size_t errlen) WUR;

/* Starts connecting to url on base (borrowed; must outlive the kv). NULL
 * with err only for a bad URL or a host name that does not resolve; an
 * unreachable server is retried in the background. Caller frees with
 * kv_free. */
struct kv *kv_new(struct event_base *base, const char *url, char *err, size_t errlen) WUR;
/* Drops the connections; commands in flight fail (their callbacks run with
 * NULL, inside this call). NULL does nothing. */
void kv_free(struct kv *k);

/* 1 when the command connection is up. */
int kv_ready(const struct kv *k);
/* The URL, for messages. Borrowed. */
const char *kv_url(const struct kv *k);

/* A reply (borrowed, valid during the call), or NULL when the command
 * failed: no connection, the deadline passed, the connection was lost. A
 * Redis error reply is passed as is (type REDIS_REPLY_ERROR). ctx is the
 * op's copy of what kv_command was given. */
typedef void (*kv_reply_fn)(const struct redisReply *r, void *ctx);

#define KV_CTX_MAX 64

/* Sends argv (argc strings; argvlen NULL = NUL-terminated). ctx (ctxlen
 * bytes, at most KV_CTX_MAX) is copied into the op and freed with it, so a
 * cancelled op leaks nothing. cb (NULL = no answer wanted) is called
 * exactly once, later, on the loop, unless the op is cancelled first.
 * Returns the op, borrowed (valid until cb is called or kv_cancel), or NULL
 * when there is no connection or too much is in flight (cb is not called). */
struct kv_op *kv_command(struct kv *k, kv_reply_fn cb, const void *ctx, size_t ctxlen, int argc,
                         const char **argv, const size_t *argvlen);
/* The callback of op will not be called. op is invalid afterwards. */
void kv_cancel(struct kv_op *op);

/* Called on every (re)connect of the command connection, e.g. to read back
 * shared state missed while disconnected. */
void kv_on_connect(struct kv *k, void (*fn)(void *arg), void *arg);

/* Subscribes to channel (copied) on a connection of its own, again after
 * every reconnect; cb gets each message's payload (borrowed). One channel
 * per kv. 0 or -1 (out of memory, already subscribed). */
int kv_subscribe(struct kv *k, const char *channel,
                 void (*cb)(const char *payload, size_t len, void *arg), void *arg) WUR;

/* Counters for tests and logs. */
struct kv_stats {
    uint64_t connects, disconnects, sent, replies, failed, timeouts, refused, messages;
};
void kv_stats_get(const struct kv *k, struct kv_stats *out);

#endif
