/* shared.c -- slodrill's keys in Redis: cached answers, spend, marks, token buckets, cooldowns.
 *
 * DESIGN: one function per question, each one Redis command (a token bucket
 * is one Lua script, so taking a request is atomic across instances and
 * uses the server's clock, not each instance's). The typed callback and its
 * argument travel in the kv op's context, so a cancelled op frees itself.
 * Cooldowns go both ways: a key per cooling deployment (read back on every
 * connect, so an instance that starts or reconnects mid-cooldown sees it)
 * and a message on one channel (so the others see it at once); messages
 * carry the sender's random origin id so an instance ignores its own. */
#include "router/shared.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "router/budget.h"
#include "router/config.h"
#include "router/kv.h"

#define SHARED_TAG "shared"
#define SHARED_CHANNEL SHARED_PREFIX "cooldowns"
#define SHARED_SPEND_KEEP_S "5356800" /* a month's spend and marks outlive it by a month */
#define SHARED_MAX_KEY 1024

struct shared {
    struct event_base *base;
    const struct router_config *cfg;
    struct kv *kvs[3];
    size_t nkv;
    struct kv *cache_kv, *budget_kv, *cool_kv;
    struct cache_counts counts, flushed;
    char origin[24];
    shared_cool_fn cool_cb;
    void *cool_arg;
};

static const char shared_rate_lua[] =
    "local rate = tonumber(ARGV[1]) "
    "local burst = tonumber(ARGV[2]) "
    "local t = redis.call('TIME') "
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "
    "local v = redis.call('HMGET', KEYS[1], 'tokens', 'at') "
    "local tokens = tonumber(v[1]) "
    "local at = tonumber(v[2]) "
    "if tokens == nil or at == nil then tokens = burst; at = now end "
    "if now > at then tokens = math.min(burst, tokens + (now - at) * rate / 1000); at = now end "
    "local ok, wait = 0, 0 "
    "if tokens >= 1 then tokens = tokens - 1; ok = 1 "
    "else wait = math.floor((1 - tokens) * 1000 / rate) + 1 end "
    "redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(at)) "
    "redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 60000) "
    "return {ok, wait}";

static const char shared_hit_lua[] =
    "if redis.call('EXISTS', KEYS[1]) == 1 then "
    "return redis.call('HINCRBY', KEYS[1], 'hits', 1) end return 0";

/* ---- setup ---- */

static struct kv *shared_kv_for(struct shared *s, const char *url, char *err, size_t errlen)
{
    size_t i;
    struct kv *k;
    char e[512];
    for (i = 0; i < s->nkv; i++)
        if (!strcmp(kv_url(s->kvs[i]), url))
            return s->kvs[i];
    if (!(k = kv_new(s->base, url, e, sizeof e))) {
        snprintf(err, errlen, "%s", e);
        return NULL;
    }
    /* compare by the normalised URL from now on */
    for (i = 0; i < s->nkv; i++)
        if (!strcmp(kv_url(s->kvs[i]), kv_url(k))) {
            kv_free(k);
            return s->kvs[i];
        }
    s->kvs[s->nkv++] = k;
    return k;
}

struct shared *shared_new(struct event_base *base, const struct router_config *cfg, char *err,
                          size_t errlen)
{
    struct shared *s = calloc(1, sizeof *s), *ret = NULL;
    const struct cache_config *cc = cfg->cache;

    if (!s) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    s->base = base;
    s->cfg = cfg;
    snprintf(s->origin, sizeof s->origin, "%08" PRIx64 "%06" PRIx64,
             (clock_wall_us() ^ (uint64_t)(uintptr_t)s) & 0xffffffffu,
             clock_mono_us() & 0xffffffu);
    if (cc && cc->enabled && cc->backend && !strcmp(cc->backend, "redis") && cc->redis_url &&
        !(s->cache_kv = shared_kv_for(s, cc->redis_url, err, errlen)))
        goto out;
    if (cfg->budgets && cfg->budgets->redis_url &&
        !(s->budget_kv = shared_kv_for(s, cfg->budgets->redis_url, err, errlen)))
        goto out;
    if (cfg->shared_cooldowns &&
        !(s->cool_kv = shared_kv_for(s, cfg->shared_cooldowns, err, errlen)))
        goto out;
    ret = s;
    s = NULL;
out:
    shared_free(s);
    return ret;
}

void shared_free(struct shared *s)
{
    size_t i;
    if (!s)
        return;
    shared_flush(s);
    for (i = 0; i < s->nkv; i++)
        kv_free(s->kvs[i]);
    free(s);
}

int shared_has_cache(const struct shared *s)
{
    return s && s->cache_kv;
}

int shared_has_budgets(const struct shared *s)
{
    return s && s->budget_kv;
}

int shared_has_cooldowns(const struct shared *s)
{
    return s && s->cool_kv;
}

int shared_ready(const struct shared *s)
{
    size_t i;
    for (i = 0; s && i < s->nkv; i++)
        if (!kv_ready(s->kvs[i]))
            return 0;
    return 1;
}

/* "slodrill:" a b c, joined with ':'; -1 when too long. */
static int shared_key(char *out, size_t n, const char *a, const char *b, const char *c)
{
    int w = snprintf(out, n, SHARED_PREFIX "%s%s%s%s%s", a, b ? ":" : "", b ? b : "",
                     c ? ":" : "", c ? c : "");
    return w < 0 || (size_t)w >= n ? -1 : 0;
}

static int shared_num(const redisReply *r, double *out)
{
    char buf[64], *end;
    size_t n;
    if (r->type == REDIS_REPLY_INTEGER) {
        *out = (double)r->integer;
        return 0;
    }
    if (r->type != REDIS_REPLY_STRING || r->len == 0 || r->len >= sizeof buf)
        return -1;
    n = r->len;
    memcpy(buf, r->str, n);
    buf[n] = '\0';
    *out = strtod(buf, &end);
    return *end == '\0' ? 0 : -1;
}

/* ---- cache ---- */

struct shared_entry_ctx {
    shared_entry_fn cb;
    void *arg;
    const struct cache_key *k; /* borrowed: the caller cancels the op before freeing it */
};

static void shared_entry_reply(const redisReply *r, void *ctxp)
{
    struct shared_entry_ctx *c = ctxp;
    struct shared_entry e;
    double cost = -1, created = 0, expires = 0;
    const redisReply *const *el;

    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 6) {
        c->cb(0, NULL, c->arg);
        return;
    }
    el = (const redisReply *const *)r->element;
    /* tenant keytext answer cost created_ms expires_ms; the key text is compared
     * in full, so a digest collision never serves another prompt's answer */
    if (el[0]->type != REDIS_REPLY_STRING || el[1]->type != REDIS_REPLY_STRING ||
        el[2]->type != REDIS_REPLY_STRING || strlen(c->k->tenant) != el[0]->len ||
        memcmp(el[0]->str, c->k->tenant, el[0]->len) || el[1]->len != c->k->keylen ||
        memcmp(el[1]->str, c->k->keytext, c->k->keylen) || shared_num(el[4], &created) != 0 ||
        shared_num(el[5], &expires) != 0) {
        c->cb(1, NULL, c->arg);
        return;
    }
    if (shared_num(el[3], &cost) != 0)
        cost = -1;
    e.answer = el[2]->str;
    e.len = el[2]->len;
    e.cost_usd = cost;
    e.created_ms = (int64_t)created;
    e.expires_ms = (int64_t)expires;
    c->cb(1, &e, c->arg);
}

struct kv_op *shared_cache_get(struct shared *s, const struct cache_key *k, shared_entry_fn cb,
                               void *arg)
{
    struct shared_entry_ctx c = {cb, arg, k};
    char key[128];
    const char *argv[8] = {"HMGET",   key,     "tenant",     "keytext",
                           "answer",  "cost",  "created_ms", "expires_ms"};
    if (!s || !s->cache_kv || shared_key(key, sizeof key, "cache", k->hash, NULL) != 0)
        return NULL;
    return kv_command(s->cache_kv, shared_entry_reply, &c, sizeof c, 8, argv, NULL);
}

int shared_cache_put(struct shared *s, const struct cache_key *k, const char *answer, size_t len,
                     double cost_usd, int64_t now_ms, int64_t ttl_ms, int64_t keep_ms)
{
    char key[128], cost[40], created[24], expires[24], until[24];
    const char *argv[18];
    size_t lens[18];
    int i;

    if (!s || !s->cache_kv || !k->keytext ||
        shared_key(key, sizeof key, "cache", k->hash, NULL) != 0)
        return -1;
    snprintf(cost, sizeof cost, "%.17g", cost_usd);
    snprintf(created, sizeof created, "%" PRId64, now_ms);
    snprintf(expires, sizeof expires, "%" PRId64, now_ms + ttl_ms);
    snprintf(until, sizeof until, "%" PRId64, now_ms + (keep_ms > ttl_ms ? keep_ms : ttl_ms));
    argv[0] = "HSET";
    argv[1] = key;
    argv[2] = "tenant";
    argv[3] = k->tenant;
    argv[4] = "feature";
    argv[5] = k->feature;
    argv[6] = "alias";
    argv[7] = k->alias;
    argv[8] = "keytext";
    argv[9] = k->keytext;
    argv[10] = "answer";
    argv[11] = answer;
    argv[12] = "cost";
    argv[13] = cost;
    argv[14] = "created_ms";
    argv[15] = created;
    argv[16] = "expires_ms";
    argv[17] = expires;
    for (i = 0; i < 18; i++)
        lens[i] = strlen(argv[i]);
    lens[9] = k->keylen;
    lens[11] = len;
    if (!kv_command(s->cache_kv, NULL, NULL, 0, 18, argv, lens))
        return -1;
    {
        const char *ex[3] = {"PEXPIREAT", key, until};
        if (!kv_command(s->cache_kv, NULL, NULL, 0, 3, ex, NULL))
            return -1;
    }
    s->counts.writes++;
    return 0;
}

void shared_cache_count(struct shared *s, const struct cache_key *k, enum cache_result r)
{
    char key[128];
    if (!s)
        return;
    s->counts.lookups++;
    if (r == CACHE_HIT)
        s->counts.hits++;
    else if (r == CACHE_STALE)
        s->counts.stale++;
    else
        s->counts.misses++;
    if (r != CACHE_MISS && s->cache_kv &&
        shared_key(key, sizeof key, "cache", k->hash, NULL) == 0) {
        const char *argv[4] = {"EVAL", shared_hit_lua, "1", key};
        (void)kv_command(s->cache_kv, NULL, NULL, 0, 4, argv, NULL);
    }
}

void shared_flush(struct shared *s)
{
    static const char *const names[] = {"lookups", "hits", "misses", "stale", "writes"};
    uint64_t now[5], was[5];
    char key[64], num[24];
    int i;

    if (!s || !s->cache_kv || !kv_ready(s->cache_kv) ||
        shared_key(key, sizeof key, "cache", "counters", NULL) != 0)
        return;
    now[0] = s->counts.lookups, was[0] = s->flushed.lookups;
    now[1] = s->counts.hits, was[1] = s->flushed.hits;
    now[2] = s->counts.misses, was[2] = s->flushed.misses;
    now[3] = s->counts.stale, was[3] = s->flushed.stale;
    now[4] = s->counts.writes, was[4] = s->flushed.writes;
    for (i = 0; i < 5; i++) {
        const char *argv[4] = {"HINCRBY", key, names[i], num};
        if (now[i] == was[i])
            continue;
        snprintf(num, sizeof num, "%" PRIu64, now[i] - was[i]);
        if (!kv_command(s->cache_kv, NULL, NULL, 0, 4, argv, NULL))
            return; /* the rest waits for the next flush */
        switch (i) {
        case 0: s->flushed.lookups = now[i]; break;
        case 1: s->flushed.hits = now[i]; break;
        case 2: s->flushed.misses = now[i]; break;
        case 3: s->flushed.stale = now[i]; break;
        default: s->flushed.writes = now[i]; break;
        }
    }
}

/* ---- budgets ---- */

struct shared_rate_ctx {
    shared_rate_fn cb;
    void *arg;
};

static void shared_rate_reply(const redisReply *r, void *ctxp)
{
    struct shared_rate_ctx *c = ctxp;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_INTEGER || r->element[1]->type != REDIS_REPLY_INTEGER) {
        if (r && r->type == REDIS_REPLY_ERROR)
            log_warn(SHARED_TAG, "rate script: %s", r->str);
        c->cb(0, 1, 0, c->arg);
        return;
    }
    c->cb(1, r->element[0]->integer == 1, (int64_t)r->element[1]->integer, c->arg);
}

struct kv_op *shared_rate_take(struct shared *s, const char *tenant, double rate_per_s,
                               double burst, shared_rate_fn cb, void *arg)
{
    struct shared_rate_ctx c = {cb, arg};
    char key[SHARED_MAX_KEY], rate[40], b[40];
    const char *argv[6] = {"EVAL", shared_rate_lua, "1", key, rate, b};
    if (!s || !s->budget_kv || shared_key(key, sizeof key, "rate", tenant, NULL) != 0)
        return NULL;
    snprintf(rate, sizeof rate, "%.17g", rate_per_s);
    snprintf(b, sizeof b, "%.17g", burst < 1 ? 1.0 : burst);
    return kv_command(s->budget_kv, shared_rate_reply, &c, sizeof c, 6, argv, NULL);
}

struct shared_usd_ctx {
    shared_usd_fn cb;
    void *arg;
};

static void shared_usd_reply(const redisReply *r, void *ctxp)
{
    struct shared_usd_ctx *c = ctxp;
    double v = 0;
    if (!r || r->type == REDIS_REPLY_ERROR) {
        c->cb(0, 0, c->arg);
        return;
    }
    if (r->type != REDIS_REPLY_NIL && shared_num(r, &v) != 0) {
        c->cb(0, 0, c->arg);
        return;
    }
    c->cb(1, v, c->arg);
}

struct kv_op *shared_spend_get(struct shared *s, const char *scope, const char *id,
                               const char *month, shared_usd_fn cb, void *arg)
{
    struct shared_usd_ctx c = {cb, arg};
    char key[128];
    const char *argv[3] = {"HGET", key, id};
    if (!s || !s->budget_kv || shared_key(key, sizeof key, "spend", scope, month) != 0)
        return NULL;
    return kv_command(s->budget_kv, shared_usd_reply, &c, sizeof c, 3, argv, NULL);
}

struct kv_op *shared_spend_add(struct shared *s, const char *scope, const char *id,
                               const char *month, double usd, shared_usd_fn cb, void *arg)
{
    struct shared_usd_ctx c = {cb, arg};
    char key[128], num[40];
    const char *argv[4] = {"HINCRBYFLOAT", key, id, num};
    const char *ex[3] = {"EXPIRE", key, SHARED_SPEND_KEEP_S};
    struct kv_op *op;
    if (!s || !s->budget_kv || shared_key(key, sizeof key, "spend", scope, month) != 0)
        return NULL;
    snprintf(num, sizeof num, "%.17g", usd);
    op = kv_command(s->budget_kv, cb ? shared_usd_reply : NULL, &c, sizeof c, 4, argv, NULL);
    if (op)
        (void)kv_command(s->budget_kv, NULL, NULL, 0, 3, ex, NULL);
    return op;
}

struct kv_op *shared_mark(struct shared *s, const char *scope, const char *id, const char *month,
                          int level, shared_usd_fn cb, void *arg)
{
    struct shared_usd_ctx c = {cb, arg};
    char key[128], field[SHARED_MAX_KEY];
    const char *argv[4] = {"HSETNX", key, field, "1"};
    const char *ex[3] = {"EXPIRE", key, SHARED_SPEND_KEEP_S};
    struct kv_op *op;
    int w = snprintf(field, sizeof field, "%s|%d", id, level);
    if (!s || !s->budget_kv || w < 0 || (size_t)w >= sizeof field ||
        shared_key(key, sizeof key, "marks", scope, month) != 0)
        return NULL;
    op = kv_command(s->budget_kv, cb ? shared_usd_reply : NULL, &c, sizeof c, 4, argv, NULL);
    if (op)
        (void)kv_command(s->budget_kv, NULL, NULL, 0, 3, ex, NULL);
    return op;
}

/* ---- cooldowns ---- */

static int64_t shared_wall_ms(void)
{
    return (int64_t)(clock_wall_us() / 1000);
}

/* "<until> <class> <origin>": applies it to dep_id when still running. */
static void shared_cool_value(struct shared *s, const char *dep_id, const char *v, size_t len)
{
    char buf[160], cls[48] = "", origin[32] = "";
    long long until = 0;
    int64_t left;
    if (len >= sizeof buf)
        return;
    memcpy(buf, v, len);
    buf[len] = '\0';
    if (sscanf(buf, "%lld %47s %31s", &until, cls, origin) < 2)
        return;
    left = (int64_t)until - shared_wall_ms();
    if (left > 0 && s->cool_cb)
        s->cool_cb(dep_id, cls, left, s->cool_arg);
}

struct shared_mget_ctx {
    struct shared *s;
};

static void shared_cool_mget_reply(const redisReply *r, void *ctxp)
{
    struct shared *s = ((struct shared_mget_ctx *)ctxp)->s;
    size_t i;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != s->cfg->ndep)
        return;
    for (i = 0; i < r->elements; i++)
        if (r->element[i]->type == REDIS_REPLY_STRING)
            shared_cool_value(s, s->cfg->dep[i].id, r->element[i]->str, r->element[i]->len);
}

/* On every connect: the cooldowns that are running now. */
static void shared_cool_resync(void *arg)
{
    struct shared *s = arg;
    struct shared_mget_ctx c = {s};
    const char **argv = calloc(s->cfg->ndep + 1, sizeof *argv);
    char **keys = calloc(s->cfg->ndep + 1, sizeof *keys);
    size_t i, n = 0;

    if (!argv || !keys || !s->cfg->ndep)
        goto out;
    argv[0] = "MGET";
    for (i = 0; i < s->cfg->ndep; i++) {
        size_t len = strlen(SHARED_PREFIX "cooldown:") + strlen(s->cfg->dep[i].id) + 1;
        if (!(keys[i] = malloc(len)))
            goto out;
        snprintf(keys[i], len, SHARED_PREFIX "cooldown:%s", s->cfg->dep[i].id);
        argv[++n] = keys[i];
    }
    (void)kv_command(s->cool_kv, shared_cool_mget_reply, &c, sizeof c, (int)n + 1, argv, NULL);
out:
    for (i = 0; keys && i < s->cfg->ndep; i++)
        free(keys[i]);
    free(keys);
    free(argv);
}

/* "start\t<origin>\t<until>\t<class>\t<dep id>" or "clear\t<origin>". */
static void shared_cool_message(const char *payload, size_t len, void *arg)
{
    struct shared *s = arg;
    char buf[1024], *f[5], *p;
    int n = 0;
    if (len >= sizeof buf || !s->cool_cb)
        return;
    memcpy(buf, payload, len);
    buf[len] = '\0';
    for (p = buf; n < 5 && p; n++) {
        f[n] = p;
        if (n < 4 && (p = strchr(p, '\t')))
            *p++ = '\0';
        else
            p = NULL;
    }
    if (n < 2 || !strcmp(f[1], s->origin))
        return; /* our own */
    if (!strcmp(f[0], "clear")) {
        s->cool_cb(NULL, NULL, 0, s->cool_arg);
    } else if (!strcmp(f[0], "start") && n == 5) {
        long long until = strtoll(f[2], NULL, 10);
        int64_t left = (int64_t)until - shared_wall_ms();
        if (left > 0)
            s->cool_cb(f[4], f[3], left, s->cool_arg);
    }
}

int shared_cool_listen(struct shared *s, shared_cool_fn cb, void *arg)
{
    if (!s || !s->cool_kv)
        return 0;
    s->cool_cb = cb;
    s->cool_arg = arg;
    kv_on_connect(s->cool_kv, shared_cool_resync, s);
    if (kv_ready(s->cool_kv))
        shared_cool_resync(s);
    return kv_subscribe(s->cool_kv, SHARED_CHANNEL, shared_cool_message, s);
}

void shared_cool_publish(struct shared *s, const char *dep_id, const char *cls,
                         int64_t remaining_ms)
{
    char key[SHARED_MAX_KEY], val[160], px[24], msg[SHARED_MAX_KEY + 128];
    long long until;
    if (!s || !s->cool_kv || remaining_ms <= 0 ||
        shared_key(key, sizeof key, "cooldown", dep_id, NULL) != 0)
        return;
    until = (long long)(shared_wall_ms() + remaining_ms);
    snprintf(val, sizeof val, "%lld %s %s", until, cls, s->origin);
    snprintf(px, sizeof px, "%" PRId64, remaining_ms);
    snprintf(msg, sizeof msg, "start\t%s\t%lld\t%s\t%s", s->origin, until, cls, dep_id);
    {
        const char *set[5] = {"SET", key, val, "PX", px};
        const char *pub[3] = {"PUBLISH", SHARED_CHANNEL, msg};
        if (!kv_command(s->cool_kv, NULL, NULL, 0, 5, set, NULL) ||
            !kv_command(s->cool_kv, NULL, NULL, 0, 3, pub, NULL))
            log_warn(SHARED_TAG, "cannot share the cooldown of %s: Redis is not reachable",
                     dep_id);
    }
}

void shared_cool_clear(struct shared *s)
{
    char msg[64];
    const char **argv;
    char **keys;
    size_t i, n = 0;
    if (!s || !s->cool_kv)
        return;
    argv = calloc(s->cfg->ndep + 1, sizeof *argv);
    keys = calloc(s->cfg->ndep + 1, sizeof *keys);
    if (argv && keys && s->cfg->ndep) {
        argv[0] = "DEL";
        for (i = 0; i < s->cfg->ndep; i++) {
            size_t len = strlen(SHARED_PREFIX "cooldown:") + strlen(s->cfg->dep[i].id) + 1;
            if (!(keys[i] = malloc(len)))
                break;
            snprintf(keys[i], len, SHARED_PREFIX "cooldown:%s", s->cfg->dep[i].id);
            argv[++n] = keys[i];
        }
        if (n == s->cfg->ndep)
            (void)kv_command(s->cool_kv, NULL, NULL, 0, (int)n + 1, argv, NULL);
    }
    for (i = 0; keys && i < s->cfg->ndep; i++)
        free(keys[i]);
    free(keys);
    free(argv);
    snprintf(msg, sizeof msg, "clear\t%s", s->origin);
    {
        const char *pub[3] = {"PUBLISH", SHARED_CHANNEL, msg};
        (void)kv_command(s->cool_kv, NULL, NULL, 0, 3, pub, NULL);
    }
}
