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
    struct guard_stats stats;
};

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
    if (g->ledger && ledger_dirty(g->ledger) && ledger_flush(g->ledger, err, sizeof err) != 0)
        log_warn(GUARD_TAG, "%s", err);
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
    if (g->ccfg && !(g->cache = cache_open(g->ccfg, err, errlen)))
        goto out;
    if (g->bcfg && (!(g->ledger = ledger_open(g->bcfg->ledger, err, errlen)) ||
                    !(g->rl = ratelimit_new()))) {
        if (g->ledger)
            snprintf(err, errlen, "out of memory");
        goto out;
    }
    if (g->bcfg && g->bcfg->webhook && !(g->cv = curlev_new(base))) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    if (g->cache || g->ledger) {
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
    if (g->flush_timer)
        event_free(g->flush_timer);
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

enum guard_verdict guard_admit(struct guard *g, struct evhttp_request *req, const char *reqid,
                               cJSON *body, const char **alias, int stream, int client_usage,
                               const char *tenant, const char *user, const char *feature,
                               struct guard_req *gr)
{
    struct cache_entry hit = {0};
    enum cache_result cr = CACHE_MISS;
    struct guard_env env;
    enum guard_verdict v = GUARD_PROCEED;

    guard_tag(gr->tenant, sizeof gr->tenant, tenant);
    guard_tag(gr->user, sizeof gr->user, user);
    guard_tag(gr->feature, sizeof gr->feature, feature);
    if (!g)
        goto out;

    /* 1. rate cap: 429 with when the bucket has a request again */
    if (g->bcfg) {
        const struct budget_cap *tc = budget_tenant_cap(g->bcfg, gr->tenant);
        int64_t ra = 0;
        if (tc && tc->rate_per_s > 0 &&
            !ratelimit_take(g->rl, gr->tenant, tc->rate_per_s, tc->burst,
                            (int64_t)(clock_mono_us() / 1000), &ra)) {
            char msg[256];
            snprintf(msg, sizeof msg,
                     "Rate limit reached for tenant '%s': %g requests per second, bursts of "
                     "%g. Please try again in %" PRId64 " ms.",
                     gr->tenant, tc->rate_per_s, tc->burst, ra);
            g->stats.rate_limited++;
            gr->outcome = "rate_limited";
            gr->status = 429;
            guard_error(req, reqid, 429, msg, "requests", "rate_limit_exceeded", ra, "rate_cap");
            v = GUARD_ANSWERED;
            goto out;
        }
    }

    /* 2. the cache, for the request as the client sent it */
    if (g->cache && cache_feature_enabled(g->ccfg, gr->feature) &&
        cache_key_make(g->ccfg, gr->tenant, gr->feature, *alias, body, &gr->key) == 0) {
        gr->have_key = 1;
        cr = cache_get(g->cache, &gr->key, guard_wall_ms(), 0, &hit);
        if (cr == CACHE_HIT &&
            guard_send_cached(req, reqid, &hit, stream, client_usage, "hit", 1, NULL) == 0) {
            g->stats.cache_hits++;
            gr->outcome = "served_from_cache";
            gr->status = 200;
            v = GUARD_ANSWERED;
            goto out;
        }
    }

    /* 3. spend caps and the ladder */
    if (g->bcfg) {
        struct budget_decision d;
        struct budget_env benv;
        char month[8], what[256];
        int level;

        ledger_month(guard_wall_ms(), month, sizeof month);
        level = guard_spend_level(g, gr, month, what, sizeof what);
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
        env.cached = cr == CACHE_HIT;
        benv.rates = guard_rates;
        benv.cached = guard_cached;
        benv.arg = &env;
        budget_decide(gr->f, body, *alias, level >= 95, &benv, &d);
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
        if (d.action == BUDGET_SERVE_CACHE && hit.answer &&
            guard_send_cached(req, reqid, &hit, stream, client_usage, "hit", 1,
                              gr->budget_steps) == 0) {
            g->stats.cache_hits++;
            gr->outcome = "served_from_cache";
            gr->status = 200;
            v = GUARD_ANSWERED;
            goto out;
        }
        *alias = d.alias;
        if (level >= 95 && ledger_cross(g->ledger, "safeguard", gr->tenant, month, 95))
            guard_event(g, "budget_safeguard", gr->tenant, what);
    }
    if (gr->have_key && stream)
        gr->acc = replay_acc_new(g->ccfg->max_entry_bytes);
out:
    cache_entry_cleanup(&hit);
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

static void guard_spend(struct guard *g, const char *scope, const char *id,
                        const struct budget_cap *cap, const char *month, double cost)
{
    double spent;
    int level;
    if (!cap || cap->monthly_usd <= 0 || !id[0])
        return;
    if (ledger_add(g->ledger, scope, id, month, cost) != 0)
        log_warn(GUARD_TAG, "ledger: cannot track %s '%s'", scope, id);
    spent = ledger_spent(g->ledger, scope, id, month);
    level = budget_level(spent, cap->monthly_usd);
    if (level > 0 && ledger_cross(g->ledger, scope, id, month, level)) {
        char subject[160], detail[256];
        snprintf(subject, sizeof subject, "%s:%s", scope, id);
        snprintf(detail, sizeof detail, "%d%% of the $%.2f monthly cap spent ($%.4f in %s)%s",
                 level, cap->monthly_usd, spent, month,
                 level >= 100 ? "; refusing" : level >= 95 ? "; safeguard mode" : "");
        guard_event(g, "budget_threshold", subject, detail);
        guard_webhook(g, scope, id, level, spent, cap->monthly_usd, month);
    }
}

void guard_success(struct guard *g, struct guard_req *gr, const char *body, size_t len,
                   double cost)
{
    char *collected = NULL;
    if (!g)
        return;
    if (g->cache && gr->have_key) {
        const char *ans = body;
        size_t n = len;
        if (!ans && gr->acc && (collected = replay_acc_answer(gr->acc))) {
            ans = collected;
            n = strlen(collected);
        }
        if (ans && n && cache_put(g->cache, &gr->key, ans, n, cost, guard_wall_ms(),
                                  cache_feature_ttl_ms(g->ccfg, gr->feature)) == 0)
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
    struct cache_entry e;
    enum cache_result r;
    int rc = 0;
    if (!g || !g->cache || !gr->have_key || !g->ccfg->travel || !req)
        return 0;
    r = cache_get(g->cache, &gr->key, guard_wall_ms(), 1, &e);
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
