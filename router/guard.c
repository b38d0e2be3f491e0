/* guard.c -- rate caps, spend caps, the degrade ladder, write-through cache and travel mode, on the loop.
 *
 * DESIGN: decisions come from the pure parts (budget_decide, ratelimit_take,
 * budget_level); this file reads the request's tags, asks the stores, sends
 * the answers the guard gives itself, and flushes the stores from a timer
 * (every GUARD_FLUSH_MS, one transaction each) so no request waits on a
 * disk write. Threshold events go to the proxy's event callback and, when
 * configured, to a webhook POSTed with libcurl on the same loop. */
#include "router/guard.h"

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/curlev.h"
#include "common/log.h"
#include "router/budget.h"
#include "router/config.h"
#include "router/core.h"
#include "router/ledger.h"
#include "router/prices.h"
#include "router/ratelimit.h"
#include "router/replay.h"
#include "router/shared.h"
#include "router/kv.h"

#define GUARD_TAG "guard"
#define GUARD_FLUSH_MS 250
#define GUARD_MAX_HOOKS 64

struct guard_hook {
    CURL *easy;
    struct curl_slist *hdrs;
    char *body;
    struct guard_hook *next;
    struct guard *g;
};

struct guard {
    struct event_base *base;
    const struct router_config *cfg;
    const struct core *core;
    const struct budget_config *bcfg;
    const struct cache_config *ccfg;
    proxy_event_fn on_event;
    void *event_arg;
    struct cache *cache;
    struct ledger *ledger;
    struct ratelimit *rl;
    struct event *flush_timer;
    struct curlev *cv;
    struct guard_hook *hooks;
    int nhooks;
    struct shared *sh;        /* what lives in Redis (NULL parts: local) */
    guard_cool_fn cool;       /* applies another instance's cooldown here */
    void *cool_arg;
    int closing;
    struct guard_stats stats;
};

static void guard_wait_free(struct guard_wait *w);
static void guard_push_spend(struct guard *g);

static int64_t guard_wall_ms(void)
{
    return (int64_t)(clock_wall_us() / 1000);
}

static void guard_event(struct guard *g, const char *kind, const char *subject,
                        const char *detail)
{
    log_info(GUARD_TAG, "%s %s: %s", kind, subject, detail);
    if (g->on_event)
        g->on_event(kind, subject, detail, clock_mono_us(), g->event_arg);
}

static void guard_flush(struct guard *g)
{
    char err[512];
    if (g->cache && cache_pending(g->cache) && cache_flush(g->cache, err, sizeof err) != 0)
        log_warn(GUARD_TAG, "%s", err);
    if (shared_has_budgets(g->sh))
        guard_push_spend(g); /* what Redis could not take before, again */
    else if (g->ledger && ledger_dirty(g->ledger) &&
             ledger_flush(g->ledger, err, sizeof err) != 0)
        log_warn(GUARD_TAG, "%s", err);
    shared_flush(g->sh);
}

static void guard_flush_fired(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    guard_flush(arg);
}

struct guard *guard_new(struct event_base *base, const struct router_config *cfg,
                        const struct core *core, proxy_event_fn on_event, void *event_arg,
                        char *err, size_t errlen)
{
    struct guard *g = calloc(1, sizeof *g), *ret = NULL;
    struct timeval tv = {0, GUARD_FLUSH_MS * 1000};

    if (!g) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    g->base = base;
    g->cfg = cfg;
    g->core = core;
    g->bcfg = cfg->budgets;
    g->ccfg = cfg->cache && cfg->cache->enabled ? cfg->cache : NULL;
    g->on_event = on_event;
    g->event_arg = event_arg;
    if (!(g->sh = shared_new(base, cfg, err, errlen)))
        goto out;
    if (g->ccfg && !shared_has_cache(g->sh) && !(g->cache = cache_open(g->ccfg, err, errlen)))
        goto out;
    /* with the budgets in Redis, the ledger is this instance's view of them */
    if (g->bcfg &&
        (!(g->ledger = ledger_open(shared_has_budgets(g->sh) ? ":memory:" : g->bcfg->ledger,
                                   err, errlen)) ||
         !(g->rl = ratelimit_new()))) {
        if (g->ledger)
            snprintf(err, errlen, "out of memory");
        goto out;
    }
    if (g->bcfg && g->bcfg->webhook && !(g->cv = curlev_new(base))) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    if (g->cache || g->ledger || shared_has_cache(g->sh)) {
        if (!(g->flush_timer = event_new(base, -1, EV_PERSIST, guard_flush_fired, g)) ||
            event_add(g->flush_timer, &tv) != 0) {
            snprintf(err, errlen, "out of memory");
            goto out;
        }
    }
    ret = g;
    g = NULL;
out:
    guard_free(g);
    return ret;
}

static void guard_hook_free(struct guard_hook *h)
{
    if (!h)
        return;
    if (h->easy)
        curl_easy_cleanup(h->easy);
    curl_slist_free_all(h->hdrs);
    free(h->body);
    free(h);
}

void guard_free(struct guard *g)
{
    if (!g)
        return;
    g->closing = 1;
    if (g->flush_timer)
        event_free(g->flush_timer);
    if (g->ledger && shared_has_budgets(g->sh))
        guard_push_spend(g);
    shared_free(g->sh); /* commands in flight fail now: their callbacks see closing */
    g->sh = NULL;
    while (g->hooks) {
        struct guard_hook *h = g->hooks;
        g->hooks = h->next;
        curlev_remove(g->cv, h->easy);
        guard_hook_free(h);
    }
    curlev_free(g->cv);
    cache_close(g->cache);
    ledger_close(g->ledger);
    ratelimit_free(g->rl);
    free(g);
}

void guard_stats_get(const struct guard *g, struct guard_stats *out)
{
    if (g)
        *out = g->stats;
    else
        memset(out, 0, sizeof *out);
}

void guard_req_cleanup(struct guard_req *gr)
{
    if (!gr)
        return;
    guard_wait_free(gr->wait);
    gr->wait = NULL;
    cache_entry_cleanup(&gr->travel);
    cache_key_cleanup(&gr->key);
    gr->have_key = 0;
    replay_acc_free(gr->acc);
    gr->acc = NULL;
}

/* ---- answers the guard gives itself ---- */

static void guard_error(struct evhttp_request *req, const char *reqid, int status,
                        const char *message, const char *type, const char *code,
                        int64_t retry_after_ms, const char *budget_hdr)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    cJSON *root = cJSON_CreateObject(), *e = cJSON_CreateObject();
    struct evbuffer *out = evbuffer_new();
    char *s = NULL, num[32];

    if (root && e) {
        cJSON_AddStringToObject(e, "message", message);
        cJSON_AddStringToObject(e, "type", type);
        cJSON_AddNullToObject(e, "param");
        cJSON_AddStringToObject(e, "code", code);
        cJSON_AddItemToObject(root, "error", e);
        e = NULL;
        s = cJSON_PrintUnformatted(root);
    }
    evhttp_add_header(h, "x-slodrill-request-id", reqid);
    evhttp_add_header(h, "Content-Type", "application/json");
    if (budget_hdr)
        evhttp_add_header(h, "x-slodrill-budget", budget_hdr);
    if (retry_after_ms > 0) {
        snprintf(num, sizeof num, "%" PRId64, (retry_after_ms + 999) / 1000);
        evhttp_add_header(h, "retry-after", num);
        snprintf(num, sizeof num, "%" PRId64, retry_after_ms);
        evhttp_add_header(h, "retry-after-ms", num);
    }
    if (out)
        evbuffer_add(out, s ? s : "{}", s ? strlen(s) : 2);
    evhttp_send_reply(req, status, NULL, out);
    if (out)
        evbuffer_free(out);
    free(s);
    cJSON_Delete(e);
    cJSON_Delete(root);
}

/* Sends a cached answer, as a stream when the client asked for one. 0 or -1
 * (the entry is not a usable answer; nothing was sent). */
static int guard_send_cached(struct evhttp_request *req, const char *reqid,
                             const struct cache_entry *e, int stream, int client_usage,
                             const char *state, int own_headers, const char *budget_hdr)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    int64_t created = (int64_t)(clock_wall_us() / 1000000);
    struct buf sse;
    char *plain = NULL;
    struct evbuffer *out = NULL;
    int rc = -1;

    buf_init(&sse, 0);
    if (stream) {
        if (replay_stream(e->answer, e->len, reqid, created, client_usage, 0, &sse) != 0)
            goto out;
    } else if (!(plain = replay_plain(e->answer, e->len, reqid, created))) {
        goto out;
    }
    if (!(out = evbuffer_new()))
        goto out;
    if (own_headers) {
        evhttp_add_header(h, "x-slodrill-request-id", reqid);
        evhttp_add_header(h, "x-slodrill-deployment", "cache");
        evhttp_add_header(h, "x-slodrill-provider", "cache");
        evhttp_add_header(h, "x-slodrill-attempts", "0");
        evhttp_add_header(h, "x-slodrill-fallbacks", "0");
        evhttp_add_header(h, "x-slodrill-failover-hops", "0");
    }
    evhttp_remove_header(h, "x-slodrill-cost-usd");
    evhttp_add_header(h, "x-slodrill-cost-usd", "0.00000000");
    evhttp_remove_header(h, "x-slodrill-cache");
    evhttp_add_header(h, "x-slodrill-cache", state);
    if (budget_hdr && budget_hdr[0])
        evhttp_add_header(h, "x-slodrill-budget", budget_hdr);
    if (stream) {
        evhttp_add_header(h, "Content-Type", "text/event-stream; charset=utf-8");
        evhttp_add_header(h, "Cache-Control", "no-cache");
        evhttp_send_reply_start(req, 200, NULL);
        evbuffer_add(out, sse.data, sse.len);
        evhttp_send_reply_chunk(req, out);
        evhttp_send_reply_end(req);
    } else {
        evhttp_add_header(h, "Content-Type", "application/json");
        evbuffer_add(out, plain, strlen(plain));
        evhttp_send_reply(req, 200, NULL, out);
    }
    rc = 0;
out:
    if (out)
        evbuffer_free(out);
    free(plain);
    buf_cleanup(&sse);
    return rc;
}

/* ---- admission ---- */

static void guard_tag(char *dst, size_t n, const char *v)
{
    size_t k = v ? strlen(v) : 0;
    if (k >= n)
        k = n - 1;
    if (k)
        memcpy(dst, v, k);
    dst[k] = '\0';
}

/* Worst-case rates over the deployments of alias that are not cooling (all
 * of them when every one is): a failover to a pricier deployment shows up
 * in the estimate at once. */
struct guard_env {
    struct guard *g;
    int cached; /* a live entry was found for the request as sent */
};

static int guard_rates(const char *alias, struct prices_rates *out, void *arg)
{
    struct guard_env *env = arg;
    const struct router_config *cfg = env->g->cfg;
    int64_t now = (int64_t)(clock_mono_us() / 1000);
    int pass, found = 0;
    size_t i;

    out->in = out->out = out->cached_in = out->cache_write = -1;
    for (pass = 0; pass < 2 && !found; pass++)
        for (i = 0; i < cfg->ndep; i++) {
            const struct router_deploy *d = &cfg->dep[i];
            struct prices_rates r;
            if (strcmp(d->alias, alias) ||
                (pass == 0 && env->g->core && core_is_cooling(env->g->core, (int)i, now)))
                continue;
            if (!prices_rates_for(d->model, d->in_cost, d->out_cost, &r))
                continue;
            if (!found || r.in + r.out > out->in + out->out)
                *out = r;
            found = 1;
        }
    return found;
}

static int guard_cached(void *arg)
{
    return ((struct guard_env *)arg)->cached;
}

/* Spend levels of tenant and user now: the higher one. *what names it. */
static int guard_spend_level(struct guard *g, const struct guard_req *gr, const char *month,
                             char *what, size_t whatlen)
{
    const struct budget_cap *tc = budget_tenant_cap(g->bcfg, gr->tenant);
    const struct budget_cap *uc = budget_user_cap(g->bcfg, gr->user);
    int lt = 0, lu = 0;
    double st = 0, su = 0;

    what[0] = '\0';
    if (tc && tc->monthly_usd > 0) {
        st = ledger_spent(g->ledger, "tenant", gr->tenant, month);
        lt = budget_level(st, tc->monthly_usd);
    }
    if (uc && uc->monthly_usd > 0 && gr->user[0]) {
        su = ledger_spent(g->ledger, "user", gr->user, month);
        lu = budget_level(su, uc->monthly_usd);
    }
    if (lt >= lu && lt > 0)
        snprintf(what, whatlen, "tenant '%s' has spent $%.4f of its $%.2f monthly cap",
                 gr->tenant, st, tc->monthly_usd);
    else if (lu > 0)
        snprintf(what, whatlen, "user '%s' has spent $%.4f of its $%.2f monthly cap", gr->user,
                 su, uc->monthly_usd);
    return lt > lu ? lt : lu;
}

/* ---- the facts an admission decides on ----
 *
 * Gathered from the local stores at once, or from Redis (shared.c) by
 * commands sent together; a fact Redis cannot give is taken locally (the
 * instance's own token bucket, a cache miss, the spend last seen). The
 * decision runs when the last answer is in, on the next loop turn. */

enum { GW_RATE = 0, GW_CACHE, GW_TENANT, GW_USER, GW_NOPS };

struct guard_wait {
    struct guard *g;
    struct guard_req *gr;
    struct evhttp_request *req;
    const char *reqid;
    cJSON *body;
    const char **alias;
    int stream, client_usage;
    char month[8];
    struct kv_op *ops[GW_NOPS];
    int pending;
    struct event *ev;
    /* facts */
    int rate_denied;
    int64_t retry_ms;
    enum cache_result cr;
    struct cache_entry hit;
};

static void guard_wait_free(struct guard_wait *w)
{
    int i;
    if (!w)
        return;
    for (i = 0; i < GW_NOPS; i++)
        kv_cancel(w->ops[i]);
    if (w->ev)
        event_free(w->ev);
    cache_entry_cleanup(&w->hit);
    free(w);
}

static void guard_wait_done(struct guard_wait *w, int slot)
{
    w->ops[slot] = NULL;
    if (--w->pending == 0)
        event_active(w->ev, EV_TIMEOUT, 0);
}

static void guard_rate_local(struct guard_wait *w, const struct budget_cap *tc)
{
    int64_t ra = 0;
    if (!ratelimit_take(w->g->rl, w->gr->tenant, tc->rate_per_s, tc->burst,
                        (int64_t)(clock_mono_us() / 1000), &ra)) {
        w->rate_denied = 1;
        w->retry_ms = ra;
    }
}

static void guard_rate_cb(int ok, int allowed, int64_t retry_ms, void *arg)
{
    struct guard_wait *w = arg;
    if (!ok) { /* Redis could not say: this instance's own bucket decides */
        w->g->stats.fallbacks++;
        guard_rate_local(w, budget_tenant_cap(w->g->bcfg, w->gr->tenant));
    } else if (!allowed) {
        w->rate_denied = 1;
        w->retry_ms = retry_ms > 0 ? retry_ms : 1;
    }
    guard_wait_done(w, GW_RATE);
}

static int guard_entry_copy(struct cache_entry *out, const struct shared_entry *e)
{
    if (!(out->answer = malloc(e->len + 1)))
        return -1;
    memcpy(out->answer, e->answer, e->len);
    out->answer[e->len] = '\0';
    out->len = e->len;
    out->cost_usd = e->cost_usd;
    out->created_ms = e->created_ms;
    return 0;
}

static void guard_entry_cb(int ok, const struct shared_entry *e, void *arg)
{
    struct guard_wait *w = arg;
    struct guard *g = w->g;
    int64_t now = guard_wall_ms();
    if (!ok)
        g->stats.fallbacks++;
    if (ok && e) {
        w->cr = cache_classify(g->ccfg, e->created_ms, e->expires_ms, now, 0);
        if (w->cr == CACHE_HIT && guard_entry_copy(&w->hit, e) != 0)
            w->cr = CACHE_MISS;
        /* an expired answer is kept for travel mode, should every deployment fail */
        if (w->cr == CACHE_MISS &&
            cache_classify(g->ccfg, e->created_ms, e->expires_ms, now, 1) == CACHE_STALE &&
            guard_entry_copy(&w->gr->travel, e) == 0)
            w->gr->travel_expires_ms = e->expires_ms;
    }
    shared_cache_count(g->sh, &w->gr->key, w->cr);
    guard_wait_done(w, GW_CACHE);
}

static void guard_tenant_spend_cb(int ok, double usd, void *arg)
{
    struct guard_wait *w = arg;
    if (ok)
        ledger_observe(w->g->ledger, "tenant", w->gr->tenant, w->month, usd);
    else
        w->g->stats.fallbacks++;
    guard_wait_done(w, GW_TENANT);
}

static void guard_user_spend_cb(int ok, double usd, void *arg)
{
    struct guard_wait *w = arg;
    if (ok)
        ledger_observe(w->g->ledger, "user", w->gr->user, w->month, usd);
    else
        w->g->stats.fallbacks++;
    guard_wait_done(w, GW_USER);
}

/* The decision, from the facts: rate cap, cache, spend caps and the ladder. */
static enum guard_verdict guard_decide(struct guard_wait *w)
{
    struct guard *g = w->g;
    struct guard_req *gr = w->gr;
    struct evhttp_request *req = w->req;
    const char *reqid = w->reqid;
    struct guard_env env;
    enum guard_verdict v = GUARD_PROCEED;

    /* 1. rate cap: 429 with when the bucket has a request again */
    if (w->rate_denied) {
        const struct budget_cap *tc = budget_tenant_cap(g->bcfg, gr->tenant);
        char msg[256];
        snprintf(msg, sizeof msg,
                 "Rate limit reached for tenant '%s': %g requests per second, bursts of "
                 "%g. Please try again in %" PRId64 " ms.",
                 gr->tenant, tc ? tc->rate_per_s : 0, tc ? tc->burst : 0, w->retry_ms);
        g->stats.rate_limited++;
        gr->outcome = "rate_limited";
        gr->status = 429;
        guard_error(req, reqid, 429, msg, "requests", "rate_limit_exceeded", w->retry_ms,
                    "rate_cap");
        v = GUARD_ANSWERED;
        goto out;
    }

    /* 2. the cache, for the request as the client sent it */
    if (w->cr == CACHE_HIT &&
        guard_send_cached(req, reqid, &w->hit, w->stream, w->client_usage, "hit", 1, NULL) == 0) {
        g->stats.cache_hits++;
        gr->outcome = "served_from_cache";
        gr->status = 200;
        v = GUARD_ANSWERED;
        goto out;
    }

    /* 3. spend caps and the ladder */
    if (g->bcfg) {
        struct budget_decision d;
        struct budget_env benv;
        char what[256];
        int level;

        level = guard_spend_level(g, gr, w->month, what, sizeof what);
        if (level >= 100) {
            char msg[512];
            snprintf(msg, sizeof msg,
                     "Budget exceeded: %s; requests are refused until the month ends or the "
                     "cap is raised (budgets: in the router config).",
                     what);
            g->stats.denied++;
            gr->outcome = "rejected_by_budget";
            gr->status = 400;
            guard_error(req, reqid, 400, msg, "budget_exceeded", "budget_exceeded", 0,
                        "rejected");
            v = GUARD_ANSWERED;
            goto out;
        }
        gr->f = budget_feature_find(g->bcfg, gr->feature);
        env.g = g;
        env.cached = w->cr == CACHE_HIT;
        benv.rates = guard_rates;
        benv.cached = guard_cached;
        benv.arg = &env;
        budget_decide(gr->f, w->body, *w->alias, level >= 95, &benv, &d);
        snprintf(gr->budget_steps, sizeof gr->budget_steps, "%s%s", level >= 95 ? "safeguard;" : "",
                 d.steps);
        if (d.steps[0])
            g->stats.degraded++;
        if (d.action == BUDGET_DENY) {
            char msg[512];
            snprintf(msg, sizeof msg, "Budget guardrail: %s. Shorten the conversation or lower "
                                      "max_tokens.",
                     d.why);
            g->stats.denied++;
            gr->outcome = "rejected_by_budget";
            gr->status = 400;
            guard_error(req, reqid, 400, msg, "budget_exceeded", "budget_exceeded", 0,
                        "rejected");
            v = GUARD_ANSWERED;
            goto out;
        }
        if (d.action == BUDGET_SERVE_CACHE && w->hit.answer &&
            guard_send_cached(req, reqid, &w->hit, w->stream, w->client_usage, "hit", 1,
                              gr->budget_steps) == 0) {
            g->stats.cache_hits++;
            gr->outcome = "served_from_cache";
            gr->status = 200;
            v = GUARD_ANSWERED;
            goto out;
        }
        *w->alias = d.alias;
        if (level >= 95 && ledger_cross(g->ledger, "safeguard", gr->tenant, w->month, 95))
            guard_event(g, "budget_safeguard", gr->tenant, what);
    }
    if (gr->have_key && w->stream)
        gr->acc = replay_acc_new(g->ccfg->max_entry_bytes);
out:
    return v;
}

static void guard_wait_fired(evutil_socket_t fd, short what, void *arg)
{
    struct guard_wait *w = arg;
    struct guard_req *gr = w->gr;
    enum guard_verdict v;
    (void)fd;
    (void)what;
    gr->wait = NULL;
    v = guard_decide(w);
    guard_wait_free(w); /* its event is this one: libevent allows freeing it here */
    if (gr->resume)
        gr->resume(gr->resume_arg, v); /* may free gr */
}

enum guard_verdict guard_admit(struct guard *g, struct evhttp_request *req, const char *reqid,
                               cJSON *body, const char **alias, int stream, int client_usage,
                               const char *tenant, const char *user, const char *feature,
                               struct guard_req *gr)
{
    struct guard_wait *w = NULL;
    enum guard_verdict v = GUARD_PROCEED;
    const struct budget_cap *tc = NULL, *uc = NULL;

    guard_tag(gr->tenant, sizeof gr->tenant, tenant);
    guard_tag(gr->user, sizeof gr->user, user);
    guard_tag(gr->feature, sizeof gr->feature, feature);
    /* no budgets and no cache: nothing to decide (no wait record, no clock) */
    if (!g || (!g->bcfg && !g->cache && !shared_has_cache(g->sh)))
        return GUARD_PROCEED;
    if (!(w = calloc(1, sizeof *w)))
        goto out;
    w->g = g;
    w->gr = gr;
    w->req = req;
    w->reqid = reqid;
    w->body = body;
    w->alias = alias;
    w->stream = stream;
    w->client_usage = client_usage;
    ledger_month(guard_wall_ms(), w->month, sizeof w->month);
    if (!(w->ev = event_new(g->base, -1, 0, guard_wait_fired, w)))
        goto out; /* out of memory: no guard for this one */

    /* rate cap first: a refused request looks nothing up */
    if (g->bcfg && (tc = budget_tenant_cap(g->bcfg, gr->tenant)) && tc->rate_per_s > 0) {
        if ((w->ops[GW_RATE] =
                 shared_rate_take(g->sh, gr->tenant, tc->rate_per_s, tc->burst, guard_rate_cb, w)))
            w->pending++;
        else
            guard_rate_local(w, tc);
    }
    if (!w->rate_denied && (g->cache || shared_has_cache(g->sh)) &&
        cache_feature_enabled(g->ccfg, gr->feature) &&
        cache_key_make(g->ccfg, gr->tenant, gr->feature, *alias, body, &gr->key) == 0) {
        gr->have_key = 1;
        if (g->cache) {
            w->cr = cache_get(g->cache, &gr->key, guard_wall_ms(), 0, &w->hit);
        } else if ((w->ops[GW_CACHE] = shared_cache_get(g->sh, &gr->key, guard_entry_cb, w))) {
            w->pending++;
        } else {
            g->stats.fallbacks++;
            shared_cache_count(g->sh, &gr->key, CACHE_MISS);
        }
    }
    if (!w->rate_denied && g->bcfg && shared_has_budgets(g->sh)) {
        if ((tc || (tc = budget_tenant_cap(g->bcfg, gr->tenant))) && tc->monthly_usd > 0 &&
            (w->ops[GW_TENANT] = shared_spend_get(g->sh, "tenant", gr->tenant, w->month,
                                                  guard_tenant_spend_cb, w)))
            w->pending++;
        if ((uc = budget_user_cap(g->bcfg, gr->user)) && uc->monthly_usd > 0 && gr->user[0] &&
            (w->ops[GW_USER] = shared_spend_get(g->sh, "user", gr->user, w->month,
                                                guard_user_spend_cb, w)))
            w->pending++;
    }
    if (w->pending) {
        g->stats.pending++;
        gr->wait = w;
        w = NULL;
        v = GUARD_PENDING;
        goto out;
    }
    v = guard_decide(w);
out:
    guard_wait_free(w);
    return v;
}

void guard_headers(const struct guard_req *gr, struct evkeyvalq *h)
{
    if (gr->have_key)
        evhttp_add_header(h, "x-slodrill-cache", "miss");
    if (gr->budget_steps[0])
        evhttp_add_header(h, "x-slodrill-budget", gr->budget_steps);
}

void guard_chunk(struct guard_req *gr, const cJSON *chunk)
{
    if (gr->acc)
        replay_acc_chunk(gr->acc, chunk);
}

/* ---- after the answer ---- */

static void guard_hook_done(CURL *easy, CURLcode result, void *arg)
{
    struct guard_hook *h = arg, **pp;
    struct guard *g = h->g;
    long status = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    if (result != CURLE_OK || status < 200 || status >= 300)
        log_warn(GUARD_TAG, "budget webhook failed: %s (HTTP %ld)", curl_easy_strerror(result),
                 status);
    for (pp = &g->hooks; *pp; pp = &(*pp)->next)
        if (*pp == h) {
            *pp = h->next;
            break;
        }
    g->nhooks--;
    guard_hook_free(h);
}

static void guard_webhook(struct guard *g, const char *scope, const char *id, int level,
                          double spent, double cap, const char *month)
{
    struct guard_hook *h;
    cJSON *j;
    if (!g->cv || g->nhooks >= GUARD_MAX_HOOKS || !(h = calloc(1, sizeof *h)))
        return;
    h->g = g;
    if ((j = cJSON_CreateObject())) {
        cJSON_AddStringToObject(j, "event", "budget_threshold");
        cJSON_AddStringToObject(j, "scope", scope);
        cJSON_AddStringToObject(j, "id", id);
        cJSON_AddStringToObject(j, "month", month);
        cJSON_AddNumberToObject(j, "percent", level);
        cJSON_AddNumberToObject(j, "spent_usd", spent);
        cJSON_AddNumberToObject(j, "cap_usd", cap);
        h->body = cJSON_PrintUnformatted(j);
        cJSON_Delete(j);
    }
    if (!h->body || !(h->easy = curl_easy_init()) ||
        !(h->hdrs = curl_slist_append(NULL, "Content-Type: application/json"))) {
        guard_hook_free(h);
        return;
    }
    curl_easy_setopt(h->easy, CURLOPT_URL, g->bcfg->webhook);
    curl_easy_setopt(h->easy, CURLOPT_HTTPHEADER, h->hdrs);
    curl_easy_setopt(h->easy, CURLOPT_POSTFIELDS, h->body);
    curl_easy_setopt(h->easy, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(h->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    if (curlev_add(g->cv, h->easy, guard_hook_done, h) != 0) {
        guard_hook_free(h);
        return;
    }
    h->next = g->hooks;
    g->hooks = h;
    g->nhooks++;
}

static void guard_threshold(struct guard *g, const char *scope, const char *id,
                            const char *month, int level, double spent, double cap)
{
    char subject[160], detail[256];
    snprintf(subject, sizeof subject, "%s:%s", scope, id);
    snprintf(detail, sizeof detail, "%d%% of the $%.2f monthly cap spent ($%.4f in %s)%s", level,
             cap, spent, month,
             level >= 100 ? "; refusing" : level >= 95 ? "; safeguard mode" : "");
    guard_event(g, "budget_threshold", subject, detail);
    guard_webhook(g, scope, id, level, spent, cap, month);
}

/* A threshold this instance crossed, raised only if no other instance
 * raised it first (the mark in Redis is set once). */
struct guard_mark {
    struct guard *g;
    char scope[16], id[128], month[8];
    int level;
    double spent, cap;
};

static void guard_mark_cb(int ok, double newly, void *arg)
{
    struct guard_mark *m = arg;
    if (!m->g->closing && (!ok || newly > 0)) /* Redis could not say: better twice than never */
        guard_threshold(m->g, m->scope, m->id, m->month, m->level, m->spent, m->cap);
    free(m);
}

/* Spend sent to Redis; the reply is the new shared total. */
struct guard_add {
    struct guard *g;
    const char *scope, *id, *month; /* borrowed from the ledger's entry */
    double usd;
};

static void guard_add_cb(int ok, double total, void *arg)
{
    struct guard_add *a = arg;
    if (!a->g->closing) {
        if (ok)
            ledger_observe(a->g->ledger, a->scope, a->id, a->month, total);
        else
            ledger_requeue(a->g->ledger, a->scope, a->id, a->month, a->usd);
    }
    free(a);
}

static int guard_send_spend(const char *scope, const char *id, const char *month, double usd,
                            void *arg)
{
    struct guard *g = arg;
    struct guard_add *a = malloc(sizeof *a);
    if (!a)
        return -1;
    a->g = g;
    a->scope = scope;
    a->id = id;
    a->month = month;
    a->usd = usd;
    if (!shared_spend_add(g->sh, scope, id, month, usd, guard_add_cb, a)) {
        free(a);
        return -1; /* stays unsent: the flush timer tries again */
    }
    return 0;
}

static void guard_push_spend(struct guard *g)
{
    if (g->ledger)
        ledger_drain(g->ledger, guard_send_spend, g);
}

static void guard_spend(struct guard *g, const char *scope, const char *id,
                        const struct budget_cap *cap, const char *month, double cost)
{
    double spent;
    int level;
    if (!cap || cap->monthly_usd <= 0 || !id[0])
        return;
    if (ledger_add(g->ledger, scope, id, month, cost) != 0)
        log_warn(GUARD_TAG, "ledger: cannot track %s '%s'", scope, id);
    if (shared_has_budgets(g->sh))
        guard_push_spend(g);
    spent = ledger_spent(g->ledger, scope, id, month);
    level = budget_level(spent, cap->monthly_usd);
    if (level > 0 && ledger_cross(g->ledger, scope, id, month, level)) {
        struct guard_mark *m = NULL;
        if (shared_has_budgets(g->sh) && (m = calloc(1, sizeof *m))) {
            m->g = g;
            snprintf(m->scope, sizeof m->scope, "%s", scope);
            snprintf(m->id, sizeof m->id, "%s", id);
            snprintf(m->month, sizeof m->month, "%s", month);
            m->level = level;
            m->spent = spent;
            m->cap = cap->monthly_usd;
            if (shared_mark(g->sh, scope, id, month, level, guard_mark_cb, m))
                return;
            free(m);
        }
        guard_threshold(g, scope, id, month, level, spent, cap->monthly_usd);
    }
}

void guard_success(struct guard *g, struct guard_req *gr, const char *body, size_t len,
                   double cost)
{
    char *collected = NULL;
    if (!g)
        return;
    if ((g->cache || shared_has_cache(g->sh)) && gr->have_key) {
        const char *ans = body;
        size_t n = len;
        if (!ans && gr->acc && (collected = replay_acc_answer(gr->acc))) {
            ans = collected;
            n = strlen(collected);
        }
        if (ans && n && g->cache &&
            cache_put(g->cache, &gr->key, ans, n, cost, guard_wall_ms(),
                      cache_feature_ttl_ms(g->ccfg, gr->feature)) == 0)
            g->stats.writes++;
        else if (ans && n && !g->cache && n <= g->ccfg->max_entry_bytes &&
                 shared_cache_put(g->sh, &gr->key, ans, n, cost, guard_wall_ms(),
                                  cache_feature_ttl_ms(g->ccfg, gr->feature),
                                  g->ccfg->travel ? g->ccfg->max_stale_ms : 0) == 0)
            g->stats.writes++;
    }
    if (g->bcfg && cost > 0) {
        char month[8];
        ledger_month(guard_wall_ms(), month, sizeof month);
        guard_spend(g, "tenant", gr->tenant, budget_tenant_cap(g->bcfg, gr->tenant), month, cost);
        guard_spend(g, "user", gr->user, budget_user_cap(g->bcfg, gr->user), month, cost);
        if (budget_over_after(gr->f, cost)) {
            char detail[160];
            g->stats.overruns++;
            snprintf(detail, sizeof detail, "answer cost $%.6f, over max_cost_usd $%.6f", cost,
                     gr->f->max_cost_usd);
            guard_event(g, "budget_overrun", gr->f->name, detail);
        }
    }
    free(collected);
    replay_acc_free(gr->acc);
    gr->acc = NULL;
}

int guard_stale(struct guard *g, struct evhttp_request *req, const char *reqid,
                struct guard_req *gr, int stream, int client_usage)
{
    struct cache_entry e = {0};
    enum cache_result r = CACHE_MISS;
    int rc = 0;
    if (!g || !gr->have_key || !g->ccfg || !g->ccfg->travel || !req)
        return 0;
    if (g->cache) {
        r = cache_get(g->cache, &gr->key, guard_wall_ms(), 1, &e);
    } else if (gr->travel.answer) {
        /* Redis: the expired answer read at admission (no second round trip
         * when every deployment has already failed) */
        r = cache_classify(g->ccfg, gr->travel.created_ms, gr->travel_expires_ms,
                           guard_wall_ms(), 1);
        if (r != CACHE_MISS) {
            e = gr->travel;
            memset(&gr->travel, 0, sizeof gr->travel);
            shared_cache_count(g->sh, &gr->key, r);
        }
    }
    if (r != CACHE_MISS &&
        guard_send_cached(req, reqid, &e, stream, client_usage,
                          r == CACHE_STALE ? "stale" : "hit", 0, NULL) == 0) {
        if (r == CACHE_STALE)
            g->stats.stale_served++;
        else
            g->stats.cache_hits++;
        gr->outcome = "served_from_cache";
        gr->status = 200;
        rc = 1;
    }
    cache_entry_cleanup(&e);
    return rc;
}

/* ---- cooldowns shared through Redis ---- */

static void guard_cool_msg(const char *dep_id, const char *cls, int64_t remaining_ms, void *arg)
{
    struct guard *g = arg;
    int c = CORE_RETRYABLE, k;
    size_t i;
    if (!g->cool || g->closing)
        return;
    if (!dep_id) {
        g->cool(-1, 0, 0, g->cool_arg);
        return;
    }
    for (i = 0; i < g->cfg->ndep; i++)
        if (!strcmp(g->cfg->dep[i].id, dep_id))
            break;
    if (i == g->cfg->ndep) {
        log_debug(GUARD_TAG, "a shared cooldown names '%s', which this config does not have",
                  dep_id);
        return;
    }
    for (k = 0; k < CORE__CLASS_COUNT; k++)
        if (!strcmp(core_class_name((enum core_class)k), cls))
            c = k;
    g->cool((int)i, c, remaining_ms, g->cool_arg);
}

int guard_share_cooldowns(struct guard *g, guard_cool_fn cool, void *arg)
{
    if (!g)
        return 0;
    g->cool = cool;
    g->cool_arg = arg;
    return shared_cool_listen(g->sh, guard_cool_msg, g);
}

void guard_cooled(struct guard *g, int dep, int cls, int64_t remaining_ms)
{
    if (!g || !shared_has_cooldowns(g->sh) || dep < 0 || (size_t)dep >= g->cfg->ndep)
        return;
    shared_cool_publish(g->sh, g->cfg->dep[dep].id, core_class_name((enum core_class)cls),
                        remaining_ms);
}

void guard_cooldowns_cleared(struct guard *g)
{
    if (g)
        shared_cool_clear(g->sh);
}

int guard_shared_ready(const struct guard *g)
{
    return !g || shared_ready(g->sh);
}
