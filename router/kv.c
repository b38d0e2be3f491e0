/* kv.c -- asynchronous Redis client: hiredis async contexts on libevent, deadlines, reconnects.
 *
 * DESIGN: each command is a struct kv_op in a FIFO (Redis answers a
 * connection's commands in order, so the head is always the oldest one
 * waiting). One timer watches the head's deadline; a command past it means
 * the server or the path to it is stuck, so the connection is dropped
 * (hiredis then calls every pending callback with NULL, which fails those
 * commands at once) and re-made after a backoff. A cancelled op stays in
 * the FIFO with no callback until hiredis is done with it, so hiredis never
 * holds a dangling pointer. hiredis frees a context itself after a failed
 * connect or a disconnect: our pointer is cleared in those callbacks. */
#include "router/kv.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <netdb.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/clock.h"
#include "common/log.h"

#define KV_TAG "redis"
#define KV_BACKOFF_MIN_MS 100
#define KV_BACKOFF_MAX_MS 5000

struct kv_op {
    struct kv *k;
    kv_reply_fn cb;
    uint64_t sent_us;
    struct kv_op *next, *prev;
    _Alignas(max_align_t) unsigned char ctx[KV_CTX_MAX];
};

struct kv_conn {
    struct kv *k;
    redisAsyncContext *ac;
    int connected;
    int sub;                 /* the pub/sub connection */
    int backoff_ms;
    int failing;             /* a failure was logged; log the next success */
    struct event *retry_ev, *connect_ev;
};

struct kv {
    struct event_base *base;
    struct kv_url u;
    char url[512];           /* without the password, for messages */
    char ip[64];             /* the host, resolved once */
    struct kv_conn cmd, subc;
    struct kv_op *head, *tail;
    size_t inflight;
    struct event *deadline_ev;
    void (*on_connect)(void *arg);
    void *on_connect_arg;
    char *channel;
    void (*on_message)(const char *payload, size_t len, void *arg);
    void *on_message_arg;
    int closing;
    struct kv_stats stats;
};

/* ---- URLs ---- */

static int kv_copy(char *dst, size_t n, const char *s, size_t len)
{
    if (len >= n)
        return -1;
    memcpy(dst, s, len);
    dst[len] = '\0';
    return 0;
}

static int kv_parse_int(const char *s, size_t len, int lo, int hi, int *out)
{
    long v = 0;
    size_t i;
    if (len == 0 || len > 9)
        return -1;
    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

int kv_url_parse(const char *url, struct kv_url *out, char *err, size_t errlen)
{
    const char *p, *at, *end, *slash, *colon;
    int rc = -1;

    memset(out, 0, sizeof *out);
    out->port = 6379;
    if (!strncmp(url, "unix://", 7)) {
        const char *q = strchr(url + 7, '?');
        size_t n = q ? (size_t)(q - (url + 7)) : strlen(url + 7);
        if (n == 0 || url[7] != '/' || kv_copy(out->path, sizeof out->path, url + 7, n) != 0)
            goto bad;
        if (q && strncmp(q, "?db=", 4) == 0) {
            if (kv_parse_int(q + 4, strlen(q + 4), 0, 1000000, &out->db) != 0)
                goto bad;
        } else if (q) {
            goto bad;
        }
        rc = 0;
        goto out;
    }
    if (strncmp(url, "redis://", 8) != 0)
        goto bad;
    p = url + 8;
    end = p + strcspn(p, "/?#");
    if ((at = memchr(p, '@', (size_t)(end - p)))) {
        const char *c = memchr(p, ':', (size_t)(at - p));
        if (c) {
            if (kv_copy(out->user, sizeof out->user, p, (size_t)(c - p)) != 0 ||
                kv_copy(out->password, sizeof out->password, c + 1, (size_t)(at - c - 1)) != 0)
                goto bad;
        } else if (kv_copy(out->password, sizeof out->password, p, (size_t)(at - p)) != 0) {
            goto bad;
        }
        p = at + 1;
    }
    if (*p == '[') { /* [::1]:6379 */
        const char *rb = memchr(p, ']', (size_t)(end - p));
        if (!rb || kv_copy(out->host, sizeof out->host, p + 1, (size_t)(rb - p - 1)) != 0)
            goto bad;
        colon = rb + 1 < end && rb[1] == ':' ? rb + 1 : NULL;
    } else {
        colon = memchr(p, ':', (size_t)(end - p));
        if (kv_copy(out->host, sizeof out->host, p, (size_t)((colon ? colon : end) - p)) != 0)
            goto bad;
    }
    if (!out->host[0])
        goto bad;
    if (colon && kv_parse_int(colon + 1, (size_t)(end - colon - 1), 1, 65535, &out->port) != 0)
        goto bad;
    slash = *end == '/' ? end : NULL;
    if (slash && slash[1] &&
        kv_parse_int(slash + 1, strcspn(slash + 1, "?#"), 0, 1000000, &out->db) != 0)
        goto bad;
    rc = 0;
    goto out;
bad:
    snprintf(err, errlen,
             "'%.200s' is not a Redis URL; use redis://HOST:PORT/DB (e.g. "
             "redis://127.0.0.1:6379/0, with :PASSWORD@ before the host when needed) or "
             "unix:///path/to/redis.sock?db=0",
             url);
out:
    return rc;
}

/* ---- connections ---- */

static void kv_conn_connect(struct kv_conn *c);

static void kv_conn_retry(struct kv_conn *c)
{
    struct timeval tv;
    if (c->k->closing)
        return;
    tv.tv_sec = c->backoff_ms / 1000;
    tv.tv_usec = (c->backoff_ms % 1000) * 1000;
    evtimer_add(c->retry_ev, &tv);
    c->backoff_ms = c->backoff_ms * 2 > KV_BACKOFF_MAX_MS ? KV_BACKOFF_MAX_MS : c->backoff_ms * 2;
}

static void kv_conn_failed(struct kv_conn *c, const char *why)
{
    if (!c->failing && !c->k->closing)
        log_warn(KV_TAG, "%s%s: %s; retrying in the background (until then the router uses "
                         "what it knows locally)",
                 c->k->url, c->sub ? " (pub/sub)" : "", why);
    c->failing = 1;
}

/* Drops c's context now: every pending callback runs with NULL. */
static void kv_conn_drop(struct kv_conn *c, const char *why)
{
    redisAsyncContext *ac = c->ac;
    c->ac = NULL;
    if (c->connected)
        c->k->stats.disconnects++;
    c->connected = 0;
    event_del(c->connect_ev);
    if (why)
        kv_conn_failed(c, why);
    if (ac)
        redisAsyncFree(ac);
    kv_conn_retry(c);
}

static void kv_retry_fired(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    kv_conn_connect(arg);
}

static void kv_connect_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct kv_conn *c = arg;
    (void)fd;
    (void)what;
    if (!c->connected)
        kv_conn_drop(c, "connect timed out");
}

static void kv_sub_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    struct kv_conn *c = priv;
    redisReply *r = reply;
    (void)ac;
    if (!r || c->k->closing || r->type != REDIS_REPLY_ARRAY || r->elements != 3)
        return;
    if (r->element[0]->type == REDIS_REPLY_STRING && !strcmp(r->element[0]->str, "message") &&
        r->element[2]->type == REDIS_REPLY_STRING && c->k->on_message) {
        c->k->stats.messages++;
        c->k->on_message(r->element[2]->str, r->element[2]->len, c->k->on_message_arg);
    }
}

static void kv_setup_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    struct kv_conn *c = priv;
    redisReply *r = reply;
    (void)ac;
    if (r && r->type == REDIS_REPLY_ERROR && !c->k->closing)
        log_warn(KV_TAG, "%s: %s", c->k->url, r->str);
}

static void kv_on_connect_cb(const redisAsyncContext *ac, int status)
{
    struct kv_conn *c = ac->data;
    if (c->ac != ac)
        return;
    if (status != REDIS_OK) {
        char why[160];
        snprintf(why, sizeof why, "cannot connect: %s", ac->errstr ? ac->errstr : "error");
        c->ac = NULL; /* hiredis frees it */
        event_del(c->connect_ev);
        kv_conn_failed(c, why);
        kv_conn_retry(c);
        return;
    }
    c->connected = 1;
    c->backoff_ms = KV_BACKOFF_MIN_MS;
    event_del(c->connect_ev);
    c->k->stats.connects++;
    if (c->failing)
        log_info(KV_TAG, "%s%s: connected", c->k->url, c->sub ? " (pub/sub)" : "");
    c->failing = 0;
    if (!c->sub && c->k->on_connect)
        c->k->on_connect(c->k->on_connect_arg);
}

static void kv_on_disconnect_cb(const redisAsyncContext *ac, int status)
{
    struct kv_conn *c = ac->data;
    (void)status;
    if (c->ac != ac)
        return; /* we dropped it ourselves */
    c->ac = NULL;
    c->connected = 0;
    c->k->stats.disconnects++;
    kv_conn_failed(c, ac->errstr && ac->err ? ac->errstr : "connection closed");
    kv_conn_retry(c);
}

static void kv_conn_connect(struct kv_conn *c)
{
    struct kv *k = c->k;
    redisAsyncContext *ac;
    struct timeval tv = {KV_CONNECT_TIMEOUT_MS / 1000, (KV_CONNECT_TIMEOUT_MS % 1000) * 1000};

    if (k->closing || c->ac)
        return;
    ac = k->u.path[0] ? redisAsyncConnectUnix(k->u.path) : redisAsyncConnect(k->ip, k->u.port);
    if (!ac || ac->err) {
        char why[160];
        snprintf(why, sizeof why, "cannot connect: %s", ac && ac->errstr ? ac->errstr : "error");
        if (ac)
            redisAsyncFree(ac);
        kv_conn_failed(c, why);
        kv_conn_retry(c);
        return;
    }
    ac->data = c;
    if (redisLibeventAttach(ac, k->base) != REDIS_OK) {
        redisAsyncFree(ac);
        kv_conn_failed(c, "cannot attach to the event loop");
        kv_conn_retry(c);
        return;
    }
    redisAsyncSetConnectCallback(ac, kv_on_connect_cb);
    redisAsyncSetDisconnectCallback(ac, kv_on_disconnect_cb);
    c->ac = ac;
    evtimer_add(c->connect_ev, &tv);
    /* queued now, sent once connected */
    if (k->u.password[0]) {
        if (k->u.user[0])
            redisAsyncCommand(ac, kv_setup_reply, c, "AUTH %s %s", k->u.user, k->u.password);
        else
            redisAsyncCommand(ac, kv_setup_reply, c, "AUTH %s", k->u.password);
    }
    if (c->sub)
        redisAsyncCommand(ac, kv_sub_reply, c, "SUBSCRIBE %s", k->channel);
    else if (k->u.db)
        redisAsyncCommand(ac, kv_setup_reply, c, "SELECT %d", k->u.db);
}

static int kv_conn_init(struct kv *k, struct kv_conn *c, int sub)
{
    c->k = k;
    c->sub = sub;
    c->backoff_ms = KV_BACKOFF_MIN_MS;
    c->retry_ev = evtimer_new(k->base, kv_retry_fired, c);
    c->connect_ev = evtimer_new(k->base, kv_connect_timeout, c);
    return c->retry_ev && c->connect_ev ? 0 : -1;
}

static void kv_conn_cleanup(struct kv_conn *c)
{
    if (c->ac) {
        redisAsyncContext *ac = c->ac;
        c->ac = NULL;
        redisAsyncFree(ac);
    }
    if (c->retry_ev)
        event_free(c->retry_ev);
    if (c->connect_ev)
        event_free(c->connect_ev);
    c->retry_ev = c->connect_ev = NULL;
}

/* ---- commands ---- */

static void kv_deadline_arm(struct kv *k)
{
    uint64_t now = clock_mono_us(), due;
    struct timeval tv;
    if (!k->head) {
        event_del(k->deadline_ev);
        return;
    }
    if (evtimer_pending(k->deadline_ev, NULL))
        return;
    due = k->head->sent_us + (uint64_t)KV_TIMEOUT_MS * 1000;
    due = due > now ? due - now : 0;
    tv.tv_sec = (time_t)(due / 1000000);
    tv.tv_usec = (suseconds_t)(due % 1000000);
    evtimer_add(k->deadline_ev, &tv);
}

static void kv_deadline_fired(evutil_socket_t fd, short what, void *arg)
{
    struct kv *k = arg;
    (void)fd;
    (void)what;
    if (k->head && k->head->sent_us + (uint64_t)KV_TIMEOUT_MS * 1000 <= clock_mono_us()) {
        char why[96];
        k->stats.timeouts++;
        snprintf(why, sizeof why, "no reply within %d ms", KV_TIMEOUT_MS);
        kv_conn_drop(&k->cmd, why); /* fails every pending op */
    }
    kv_deadline_arm(k);
}

static void kv_unlink(struct kv *k, struct kv_op *op)
{
    if (op->prev)
        op->prev->next = op->next;
    else
        k->head = op->next;
    if (op->next)
        op->next->prev = op->prev;
    else
        k->tail = op->prev;
    k->inflight--;
}

static void kv_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    struct kv_op *op = priv;
    struct kv *k = op->k;
    (void)ac;
    kv_unlink(k, op);
    if (reply)
        k->stats.replies++;
    else
        k->stats.failed++;
    if (op->cb)
        op->cb(reply, op->ctx);
    free(op);
    if (!k->closing) {
        event_del(k->deadline_ev);
        kv_deadline_arm(k);
    }
}

struct kv_op *kv_command(struct kv *k, kv_reply_fn cb, const void *ctx, size_t ctxlen, int argc,
                         const char **argv, const size_t *argvlen)
{
    struct kv_op *op;
    if (!k || !k->cmd.ac || k->closing || k->inflight >= KV_MAX_INFLIGHT || ctxlen > KV_CTX_MAX) {
        if (k)
            k->stats.refused++;
        return NULL;
    }
    if (!(op = calloc(1, sizeof *op)))
        return NULL;
    op->k = k;
    op->cb = cb;
    if (ctxlen)
        memcpy(op->ctx, ctx, ctxlen);
    op->sent_us = clock_mono_us();
    if (redisAsyncCommandArgv(k->cmd.ac, kv_reply, op, argc, argv, argvlen) != REDIS_OK) {
        free(op);
        k->stats.refused++;
        return NULL;
    }
    op->prev = k->tail;
    if (k->tail)
        k->tail->next = op;
    else
        k->head = op;
    k->tail = op;
    k->inflight++;
    k->stats.sent++;
    kv_deadline_arm(k);
    return op;
}

void kv_cancel(struct kv_op *op)
{
    if (op)
        op->cb = NULL;
}

/* ---- the object ---- */

static int kv_resolve(struct kv *k, char *err, size_t errlen)
{
    struct addrinfo hints, *res = NULL;
    int e;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    /* Once, at startup: a later reconnect must not block the loop on DNS. */
    if ((e = getaddrinfo(k->u.host, NULL, &hints, &res)) != 0 || !res) {
        snprintf(err, errlen, "%s: cannot resolve '%s': %s", k->url, k->u.host,
                 e ? gai_strerror(e) : "no address");
        if (res)
            freeaddrinfo(res);
        return -1;
    }
    if (res->ai_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)(void *)res->ai_addr)->sin_addr, k->ip,
                  sizeof k->ip);
    else
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)(void *)res->ai_addr)->sin6_addr, k->ip,
                  sizeof k->ip);
    freeaddrinfo(res);
    return 0;
}

struct kv *kv_new(struct event_base *base, const char *url, char *err, size_t errlen)
{
    struct kv *k = calloc(1, sizeof *k), *ret = NULL;

    if (!k) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    k->base = base;
    if (kv_url_parse(url, &k->u, err, errlen) != 0)
        goto out;
    if (k->u.path[0])
        snprintf(k->url, sizeof k->url, "unix://%s", k->u.path);
    else
        snprintf(k->url, sizeof k->url, "redis://%s:%d/%d", k->u.host, k->u.port, k->u.db);
    if (!k->u.path[0] && kv_resolve(k, err, errlen) != 0)
        goto out;
    if (kv_conn_init(k, &k->cmd, 0) != 0 || kv_conn_init(k, &k->subc, 1) != 0 ||
        !(k->deadline_ev = evtimer_new(base, kv_deadline_fired, k))) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    kv_conn_connect(&k->cmd);
    ret = k;
    k = NULL;
out:
    kv_free(k);
    return ret;
}

void kv_free(struct kv *k)
{
    struct kv_op *op;
    if (!k)
        return;
    k->closing = 1;
    kv_conn_cleanup(&k->cmd); /* fails the pending ops: their callbacks run with NULL */
    kv_conn_cleanup(&k->subc);
    while (k->head) { /* none are left; defensive */
        op = k->head;
        kv_unlink(k, op);
        free(op);
    }
    if (k->deadline_ev)
        event_free(k->deadline_ev);
    free(k->channel);
    free(k);
}

int kv_ready(const struct kv *k)
{
    return k && k->cmd.connected;
}

const char *kv_url(const struct kv *k)
{
    return k->url;
}

void kv_on_connect(struct kv *k, void (*fn)(void *arg), void *arg)
{
    k->on_connect = fn;
    k->on_connect_arg = arg;
}

int kv_subscribe(struct kv *k, const char *channel,
                 void (*cb)(const char *payload, size_t len, void *arg), void *arg)
{
    size_t n = strlen(channel) + 1;
    if (k->channel || !(k->channel = malloc(n)))
        return -1;
    memcpy(k->channel, channel, n);
    k->on_message = cb;
    k->on_message_arg = arg;
    kv_conn_connect(&k->subc);
    return 0;
}

void kv_stats_get(const struct kv *k, struct kv_stats *out)
{
    *out = k->stats;
}
