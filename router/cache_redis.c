/* cache_redis.c -- `slodrill cache stats|purge` on Redis: SCAN, bounded reads, UNLINK.
 *
 * DESIGN: a walk is SCAN ... MATCH slodrill:cache:* COUNT 500 to the end (or
 * CACHE_REDIS_MAX_KEYS keys), its keys handled in batches of CR_BATCH with
 * two pipelined round trips each: HSTRLEN of every field we look at, then
 * HMGET of the small ones for the keys whose lengths are within bounds. The
 * answer and key text are measured, never read, and a key someone else put
 * under the prefix with a huge field is skipped rather than read into
 * memory. SCAN may return a key twice when the server resizes its table
 * during the walk; counts can then be one off, as with redis-cli --scan.
 * Key layout: router/shared.h. */
#include "router/cache_redis.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "router/kv.h"
#include "router/shared.h"

#define CR_PREFIX SHARED_PREFIX "cache:"
#define CR_COUNTERS CR_PREFIX "counters"
#define CR_SCAN_COUNT "500"
#define CR_BATCH 500
#define CR_MAX_KEY 512       /* a router's key is the prefix and a 32-digit digest */
#define CR_MAX_NAME 127      /* tenant, feature: the router keeps them in char[128] */
#define CR_MAX_NUM 24        /* an integer's text */
#define CR_GROUP_SLOTS 16384 /* a power of two, CACHE_REDIS_MAX_GROUPS at most 61% full */

/* An entry's fields in the order of the HSTRLEN pipeline: the first CR_NREAD
 * are read with HMGET (up to their bound), the others only measured. */
static const char *const cr_fields[] = {"tenant", "feature", "expires_ms", "hits",
                                        "answer", "keytext"};
static const long long cr_bounds[] = {CR_MAX_NAME, CR_MAX_NAME, CR_MAX_NUM, CR_MAX_NUM};
#define CR_NFIELDS 6
#define CR_NREAD 4
#define CR_F_EXPIRES 2

struct cr_entry {
    const char *key; /* borrowed from the SCAN reply */
    size_t keylen;
    int ok;          /* a cache entry, read */
    long long len[CR_NFIELDS];
    char tenant[CR_MAX_NAME + 1], feature[CR_MAX_NAME + 1];
    long long expires_ms, hits, bytes;
};

struct cr_group {
    char tenant[CR_MAX_NAME + 1], feature[CR_MAX_NAME + 1];
    long entries, hits;
    int used;
};

struct cache_redis {
    redisContext *c;
    char addr[300];           /* HOST:PORT or the socket path, for messages */
    char name[340];           /* redis://HOST:PORT/DB */
    int timeout_ms;
    int no_unlink;            /* the server predates UNLINK (Redis 4): DEL instead */
    struct cr_entry batch[CR_BATCH];
    struct cr_group *groups;  /* CR_GROUP_SLOTS while walking; sorted, ngroups, after */
    size_t ngroups;
};

typedef int (*cr_batch_fn)(struct cache_redis *r, const struct cr_entry *e, size_t n, void *arg,
                           char *err, size_t errlen);

/* ---- errors ---- */

/* The connection failed (lost, or a timeout): say which. */
static int cr_io_error(struct cache_redis *r, const char *what, char *err, size_t errlen)
{
    const char *why = r->c->errstr[0] ? r->c->errstr : "connection error";
    /* hiredis reports a read past redisSetTimeout as the errno of the read */
    if (r->c->err == REDIS_ERR_IO &&
        (!strcmp(why, strerror(EAGAIN)) || !strcmp(why, strerror(ETIMEDOUT))))
        snprintf(err, errlen, "Redis at %s did not answer %s within %d ms", r->addr, what,
                 r->timeout_ms);
    else if (r->c->err == REDIS_ERR_PROTOCOL)
        snprintf(err, errlen, "what answers at %s is not Redis (%s, reading %s's reply)", r->addr,
                 why, what);
    else
        snprintf(err, errlen, "lost Redis at %s during %s: %s", r->addr, what, why);
    return -1;
}

static int cr_refused(struct cache_redis *r, const char *what, const redisReply *rep, char *err,
                      size_t errlen)
{
    int n = rep->len > 300 ? 300 : (int)rep->len;
    snprintf(err, errlen, "Redis at %s refused %s: %.*s%s", r->addr, what, n, rep->str,
             !strncmp(rep->str, "NOAUTH", 6)
                 ? " (put the password in the URL: redis://:PASSWORD@HOST:PORT/DB)"
                 : "");
    return -1;
}

/* One command; the reply (caller frees with freeReplyObject), or NULL with
 * err when the connection failed or Redis answered an error. */
static redisReply *cr_command(struct cache_redis *r, const char *what, int argc, const char **argv,
                              const size_t *lens, char *err, size_t errlen)
{
    redisReply *rep = redisCommandArgv(r->c, argc, argv, lens);
    if (!rep) {
        cr_io_error(r, what, err, errlen);
        return NULL;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        cr_refused(r, what, rep, err, errlen);
        freeReplyObject(rep);
        return NULL;
    }
    return rep;
}

/* The next reply of a pipeline, whatever its type; -1 only when the
 * connection failed. */
static int cr_reply(struct cache_redis *r, redisReply **out, const char *what, char *err,
                    size_t errlen)
{
    void *p = NULL;
    if (redisGetReply(r->c, &p) != REDIS_OK || !p)
        return cr_io_error(r, what, err, errlen);
    *out = p;
    return 0;
}

/* A decimal integer of at most CR_MAX_NUM characters. */
static int cr_int(const char *s, size_t len, long long *out)
{
    char buf[CR_MAX_NUM + 1], *end;
    long long v;
    if (len == 0 || len > CR_MAX_NUM)
        return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    errno = 0;
    v = strtoll(buf, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

/* A name field (nil = ""), within its bound and without NUL bytes. */
static int cr_name(const redisReply *v, char *out, size_t n)
{
    if (v->type == REDIS_REPLY_NIL) {
        out[0] = '\0';
        return 0;
    }
    if (v->type != REDIS_REPLY_STRING || v->len >= n || memchr(v->str, '\0', v->len))
        return -1;
    memcpy(out, v->str, v->len);
    out[v->len] = '\0';
    return 0;
}

/* ---- connecting ---- */

struct cache_redis *cache_redis_open(const char *url, int timeout_ms, char *err, size_t errlen)
{
    struct cache_redis *r = NULL, *ret = NULL;
    struct kv_url u;
    struct timeval tv;
    redisReply *rep = NULL;

    if (kv_url_parse(url, &u, err, errlen) != 0)
        goto out;
    if (!(r = calloc(1, sizeof *r))) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    r->timeout_ms = timeout_ms;
    if (u.path[0]) {
        snprintf(r->addr, sizeof r->addr, "%s", u.path);
        snprintf(r->name, sizeof r->name, "unix://%s?db=%d", u.path, u.db);
    } else if (strchr(u.host, ':')) { /* an IPv6 address */
        snprintf(r->addr, sizeof r->addr, "[%s]:%d", u.host, u.port);
        snprintf(r->name, sizeof r->name, "redis://[%s]:%d/%d", u.host, u.port, u.db);
    } else {
        snprintf(r->addr, sizeof r->addr, "%s:%d", u.host, u.port);
        snprintf(r->name, sizeof r->name, "redis://%s:%d/%d", u.host, u.port, u.db);
    }
    tv.tv_sec = timeout_ms / 1000;
    tv.tv_usec = (timeout_ms % 1000) * 1000;
    r->c = u.path[0] ? redisConnectUnixWithTimeout(u.path, tv)
                     : redisConnectWithTimeout(u.host, u.port, tv);
    if (!r->c) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    if (r->c->err) {
        snprintf(err, errlen, "cannot reach Redis at %s: %s", r->addr, r->c->errstr);
        goto out;
    }
    if (redisSetTimeout(r->c, tv) != REDIS_OK) {
        snprintf(err, errlen, "cannot set a timeout on the connection to Redis at %s", r->addr);
        goto out;
    }
    if (u.password[0]) {
        const char *argv[3] = {"AUTH", u.user[0] ? u.user : u.password, u.password};
        if (!(rep = cr_command(r, "AUTH", u.user[0] ? 3 : 2, argv, NULL, err, errlen)))
            goto out;
        freeReplyObject(rep);
        rep = NULL;
    }
    if (u.db) {
        char db[16], what[24];
        const char *argv[2] = {"SELECT", db};
        snprintf(db, sizeof db, "%d", u.db);
        snprintf(what, sizeof what, "SELECT %d", u.db);
        if (!(rep = cr_command(r, what, 2, argv, NULL, err, errlen)))
            goto out;
        freeReplyObject(rep);
        rep = NULL;
    }
    ret = r;
    r = NULL;
out:
    memset(u.password, 0, sizeof u.password);
    cache_redis_close(r);
    return ret;
}

void cache_redis_close(struct cache_redis *r)
{
    if (!r)
        return;
    if (r->c)
        redisFree(r->c);
    free(r->groups);
    free(r);
}

const char *cache_redis_name(const struct cache_redis *r)
{
    return r->name;
}

/* ---- walking ---- */

/* Reads r->batch[0..n): lengths of every field, then the small fields of
 * the keys whose lengths are within bounds. Sets each entry's ok. */
static int cr_read_batch(struct cache_redis *r, size_t n, char *err, size_t errlen)
{
    redisReply *rep = NULL;
    size_t i, f;
    int rc = -1;

    for (i = 0; i < n; i++)
        for (f = 0; f < CR_NFIELDS; f++) {
            const char *argv[3] = {"HSTRLEN", r->batch[i].key, cr_fields[f]};
            size_t lens[3] = {7, r->batch[i].keylen, strlen(cr_fields[f])};
            if (redisAppendCommandArgv(r->c, 3, argv, lens) != REDIS_OK)
                goto oom;
        }
    for (i = 0; i < n; i++) {
        struct cr_entry *e = &r->batch[i];
        e->ok = 1;
        for (f = 0; f < CR_NFIELDS; f++) {
            if (cr_reply(r, &rep, "HSTRLEN", err, errlen) != 0)
                goto out;
            if (rep->type == REDIS_REPLY_INTEGER)
                e->len[f] = rep->integer;
            else
                e->ok = 0; /* WRONGTYPE: not a hash */
            freeReplyObject(rep);
            rep = NULL;
        }
        for (f = 0; f < CR_NREAD; f++)
            if (e->len[f] > cr_bounds[f])
                e->ok = 0;
        if (e->len[CR_F_EXPIRES] == 0)
            e->ok = 0; /* no expires_ms: not an entry, or gone since SCAN */
    }
    for (i = 0; i < n; i++) {
        const char *argv[2 + CR_NREAD] = {"HMGET", r->batch[i].key};
        size_t lens[2 + CR_NREAD] = {5, r->batch[i].keylen};
        if (!r->batch[i].ok)
            continue;
        for (f = 0; f < CR_NREAD; f++) {
            argv[2 + f] = cr_fields[f];
            lens[2 + f] = strlen(cr_fields[f]);
        }
        if (redisAppendCommandArgv(r->c, 2 + CR_NREAD, argv, lens) != REDIS_OK)
            goto oom;
    }
    for (i = 0; i < n; i++) {
        struct cr_entry *e = &r->batch[i];
        redisReply **v;
        if (!e->ok)
            continue;
        if (cr_reply(r, &rep, "HMGET", err, errlen) != 0)
            goto out;
        v = rep->element;
        e->hits = 0;
        /* a field may have changed since HSTRLEN: check again */
        if (rep->type != REDIS_REPLY_ARRAY || rep->elements != CR_NREAD ||
            cr_name(v[0], e->tenant, sizeof e->tenant) != 0 ||
            cr_name(v[1], e->feature, sizeof e->feature) != 0 || v[2]->type != REDIS_REPLY_STRING ||
            cr_int(v[2]->str, v[2]->len, &e->expires_ms) != 0 ||
            (v[3]->type != REDIS_REPLY_NIL &&
             (v[3]->type != REDIS_REPLY_STRING || cr_int(v[3]->str, v[3]->len, &e->hits) != 0)))
            e->ok = 0;
        e->bytes = e->len[4] + e->len[5];
        freeReplyObject(rep);
        rep = NULL;
    }
    rc = 0;
    goto out;
oom:
    snprintf(err, errlen, "out of memory");
out:
    if (rep)
        freeReplyObject(rep);
    return rc;
}

static int cr_batch(struct cache_redis *r, size_t n, cr_batch_fn fn, void *arg,
                    struct cache_redis_walk *w, char *err, size_t errlen)
{
    size_t i;
    if (cr_read_batch(r, n, err, errlen) != 0)
        return -1;
    for (i = 0; i < n; i++)
        if (!r->batch[i].ok)
            w->others++;
    return fn(r, r->batch, n, arg, err, errlen);
}

/* SCANs the keys under slodrill:cache: (the counters aside) and hands them
 * to fn in read batches, until the end or CACHE_REDIS_MAX_KEYS. */
static int cr_walk(struct cache_redis *r, cr_batch_fn fn, void *arg, struct cache_redis_walk *w,
                   char *err, size_t errlen)
{
    static const size_t counters_len = sizeof CR_COUNTERS - 1;
    char cursor[32] = "0";
    redisReply *rep = NULL;
    int rc = -1;

    memset(w, 0, sizeof *w);
    do {
        const char *argv[6] = {"SCAN", cursor, "MATCH", CR_PREFIX "*", "COUNT", CR_SCAN_COUNT};
        const redisReply *keys;
        size_t i, n = 0;
        if (!(rep = cr_command(r, "SCAN", 6, argv, NULL, err, errlen)))
            goto out;
        if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
            rep->element[0]->type != REDIS_REPLY_STRING ||
            rep->element[0]->len >= sizeof cursor || rep->element[1]->type != REDIS_REPLY_ARRAY) {
            snprintf(err, errlen, "Redis at %s answered SCAN with something else than a cursor "
                                  "and keys", r->addr);
            goto out;
        }
        memcpy(cursor, rep->element[0]->str, rep->element[0]->len);
        cursor[rep->element[0]->len] = '\0';
        keys = rep->element[1];
        for (i = 0; i < keys->elements; i++) {
            const redisReply *k = keys->element[i];
            if (k->type == REDIS_REPLY_STRING && k->len == counters_len &&
                !memcmp(k->str, CR_COUNTERS, counters_len))
                continue;
            if (w->keys >= CACHE_REDIS_MAX_KEYS) {
                w->capped = 1;
                break;
            }
            w->keys++;
            if (k->type != REDIS_REPLY_STRING || k->len > CR_MAX_KEY) {
                w->others++;
                continue;
            }
            r->batch[n].key = k->str;
            r->batch[n].keylen = k->len;
            if (++n == CR_BATCH) {
                if (cr_batch(r, n, fn, arg, w, err, errlen) != 0)
                    goto out;
                n = 0;
            }
        }
        if (n && cr_batch(r, n, fn, arg, w, err, errlen) != 0)
            goto out;
        freeReplyObject(rep);
        rep = NULL;
    } while (strcmp(cursor, "0") && !w->capped);
    rc = 0;
out:
    if (rep)
        freeReplyObject(rep);
    return rc;
}

/* ---- stats ---- */

/* FNV-1a over tenant, a separator no name holds, and feature. */
static size_t cr_group_hash(const char *tenant, const char *feature)
{
    uint64_t h = 14695981039346656037ull;
    const unsigned char *p;
    for (p = (const unsigned char *)tenant; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    h = (h ^ 0xff) * 1099511628211ull;
    for (p = (const unsigned char *)feature; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    return (size_t)(h & (CR_GROUP_SLOTS - 1));
}

static void cr_group_add(struct cache_redis *r, const struct cr_entry *e,
                         struct cache_redis_walk *w)
{
    size_t i = cr_group_hash(e->tenant, e->feature);
    struct cr_group *g;
    /* ends: at most CACHE_REDIS_MAX_GROUPS of CR_GROUP_SLOTS slots are used */
    for (; r->groups[i].used; i = (i + 1) & (CR_GROUP_SLOTS - 1)) {
        g = &r->groups[i];
        if (!strcmp(g->tenant, e->tenant) && !strcmp(g->feature, e->feature)) {
            g->entries++;
            g->hits += (long)e->hits;
            return;
        }
    }
    if (r->ngroups >= CACHE_REDIS_MAX_GROUPS) {
        w->ungrouped++;
        return;
    }
    g = &r->groups[i];
    memcpy(g->tenant, e->tenant, sizeof g->tenant);
    memcpy(g->feature, e->feature, sizeof g->feature);
    g->entries = 1;
    g->hits = (long)e->hits;
    g->used = 1;
    r->ngroups++;
}

static int cr_group_cmp(const void *a, const void *b)
{
    const struct cr_group *x = a, *y = b;
    int c = strcmp(x->tenant, y->tenant);
    return c ? c : strcmp(x->feature, y->feature);
}

struct cr_stats_ctx {
    struct cache_file_stats *st;
    struct cache_redis_walk *w;
    int64_t now_ms;
};

static int cr_stats_batch(struct cache_redis *r, const struct cr_entry *e, size_t n, void *arg,
                          char *err, size_t errlen)
{
    struct cr_stats_ctx *c = arg;
    size_t i;
    (void)err;
    (void)errlen;
    for (i = 0; i < n; i++) {
        if (!e[i].ok)
            continue;
        c->st->entries++;
        if (e[i].expires_ms > c->now_ms)
            c->st->live++;
        else
            c->st->expired++;
        c->st->hits += (long)e[i].hits;
        c->st->bytes += e[i].bytes;
        cr_group_add(r, &e[i], c->w);
    }
    return 0;
}

/* The counters hash: HSTRLEN first, so a foreign value is never read whole. */
static int cr_counters(struct cache_redis *r, struct cache_file_stats *st, char *err,
                       size_t errlen)
{
    static const char *const names[5] = {"lookups", "hits", "misses", "stale", "writes"};
    long long *dst[5] = {&st->lookups, &st->hit_count, &st->misses, &st->stale, &st->writes};
    const char *argv[7] = {"HMGET", CR_COUNTERS};
    redisReply *rep = NULL;
    int i, bad = 0, rc = -1;

    for (i = 0; i < 5; i++) {
        const char *a[3] = {"HSTRLEN", CR_COUNTERS, names[i]};
        if (redisAppendCommandArgv(r->c, 3, a, NULL) != REDIS_OK) {
            snprintf(err, errlen, "out of memory");
            goto out;
        }
        argv[2 + i] = names[i];
    }
    for (i = 0; i < 5; i++) {
        if (cr_reply(r, &rep, "HSTRLEN", err, errlen) != 0)
            goto out;
        if (rep->type != REDIS_REPLY_INTEGER || rep->integer > CR_MAX_NUM)
            bad = 1;
        freeReplyObject(rep);
        rep = NULL;
    }
    if (!bad) {
        if (!(rep = cr_command(r, "HMGET", 7, argv, NULL, err, errlen)))
            goto out;
        if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 5)
            bad = 1;
        for (i = 0; !bad && i < 5; i++)
            if (rep->element[i]->type == REDIS_REPLY_STRING)
                bad = cr_int(rep->element[i]->str, rep->element[i]->len, dst[i]) != 0;
            else if (rep->element[i]->type != REDIS_REPLY_NIL)
                bad = 1;
    }
    if (bad) {
        snprintf(err, errlen, "%s at %s is not the router's counters (a hash of integers: "
                              "lookups hits misses stale writes)", CR_COUNTERS, r->name);
        goto out;
    }
    rc = 0;
out:
    if (rep)
        freeReplyObject(rep);
    return rc;
}

int cache_redis_stats(struct cache_redis *r, int64_t now_ms, struct cache_file_stats *out,
                      struct cache_redis_walk *walk, char *err, size_t errlen)
{
    struct cache_redis_walk w;
    struct cr_stats_ctx c = {out, &w, now_ms};
    size_t i, n = 0;

    memset(out, 0, sizeof *out);
    if (!r->groups && !(r->groups = malloc(CR_GROUP_SLOTS * sizeof *r->groups))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    memset(r->groups, 0, CR_GROUP_SLOTS * sizeof *r->groups);
    r->ngroups = 0;
    if (cr_walk(r, cr_stats_batch, &c, &w, err, errlen) != 0 ||
        cr_counters(r, out, err, errlen) != 0) {
        r->ngroups = 0;
        return -1;
    }
    /* the table is done with hashing: pack the groups and sort them */
    for (i = 0; i < CR_GROUP_SLOTS; i++)
        if (r->groups[i].used && n++ != i)
            r->groups[n - 1] = r->groups[i];
    qsort(r->groups, r->ngroups, sizeof *r->groups, cr_group_cmp);
    if (walk)
        *walk = w;
    return 0;
}

void cache_redis_groups(const struct cache_redis *r,
                        void (*cb)(const char *tenant, const char *feature, long entries,
                                   long hits, void *arg),
                        void *arg)
{
    size_t i;
    for (i = 0; i < r->ngroups; i++)
        cb(r->groups[i].tenant, r->groups[i].feature, r->groups[i].entries, r->groups[i].hits,
           arg);
}

/* ---- purge ---- */

struct cr_purge_ctx {
    const char *tenant, *feature;
    int expired_only;
    int64_t now_ms;
    long *deleted;
};

static int cr_purge_batch(struct cache_redis *r, const struct cr_entry *e, size_t n, void *arg,
                          char *err, size_t errlen)
{
    struct cr_purge_ctx *c = arg;
    const char *argv[CR_BATCH + 1];
    size_t lens[CR_BATCH + 1], i;
    int argc = 1, rc = 0;
    redisReply *rep;

    for (i = 0; i < n; i++) {
        if (!e[i].ok || (c->tenant && strcmp(e[i].tenant, c->tenant)) ||
            (c->feature && strcmp(e[i].feature, c->feature)) ||
            (c->expired_only && e[i].expires_ms > c->now_ms))
            continue;
        argv[argc] = e[i].key;
        lens[argc++] = e[i].keylen;
    }
    if (argc == 1)
        return 0;
    for (;;) {
        argv[0] = r->no_unlink ? "DEL" : "UNLINK";
        lens[0] = strlen(argv[0]);
        if (!(rep = redisCommandArgv(r->c, argc, argv, lens)))
            return cr_io_error(r, argv[0], err, errlen);
        if (rep->type == REDIS_REPLY_ERROR && !r->no_unlink &&
            strstr(rep->str, "unknown command")) {
            r->no_unlink = 1;
            freeReplyObject(rep);
            continue;
        }
        break;
    }
    if (rep->type == REDIS_REPLY_ERROR)
        rc = cr_refused(r, argv[0], rep, err, errlen);
    else if (rep->type == REDIS_REPLY_INTEGER)
        *c->deleted += (long)rep->integer;
    freeReplyObject(rep);
    return rc;
}

int cache_redis_purge(struct cache_redis *r, const char *tenant, const char *feature,
                      int expired_only, int64_t now_ms, long *deleted,
                      struct cache_redis_walk *walk, char *err, size_t errlen)
{
    struct cache_redis_walk w;
    struct cr_purge_ctx c = {tenant, feature, expired_only, now_ms, deleted};
    int rc;

    *deleted = 0;
    rc = cr_walk(r, cr_purge_batch, &c, &w, err, errlen);
    if (walk)
        *walk = w;
    return rc;
}
