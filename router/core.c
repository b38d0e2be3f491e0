/* core.c -- the pure routing core: deployment choice, retries, fallbacks, cooldowns.
 *
 * DESIGN: a request walks a chain of model groups (the alias asked for,
 * then its fallbacks). Inside a group it walks the order tiers, lowest
 * first; each tier has 1 + num_retries attempts, and every attempt picks
 * among the tier's deployments that are not cooling, preferring ones this
 * request has not tried, by the routing strategy (core_choose: random by
 * weight, fewest in flight, or lowest TTFT EWMA; ties by weight). A pinned
 * request skips all of that for its one deployment. A tier with nothing healthy left is skipped
 * without spending an attempt. Cooldowns are per deployment and shared by
 * every request; they start when failures within 60 s pass allowed_fails, or
 * at once on 401/403/429. Nothing here reads a clock. */
#include "router/core.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "router/config.h"

#define CORE_WINDOW_MS 60000
#define CORE_MAX_ATTEMPTS 64
#define CORE_MAX_CHAIN 65

struct core_dep {
    int64_t *fails;   /* ring of the last allowed_fails + 1 failure times */
    size_t nfails;    /* entries used */
    size_t head;      /* next slot */
    int cooling;      /* cooldown marked active (until core_expire ends it) */
    int64_t until_ms;
    enum core_class cool_class;
    char reason[48];
    int inflight;     /* attempts in flight (the driver's count) */
    double ewma_ms;   /* time-to-first-token EWMA */
    int64_t ewma_at;  /* when the last sample came; 0 = never */
};

struct core {
    const struct router_config *cfg;
    struct core_dep *dep;
    size_t ring;      /* allowed_fails + 1 */
    uint64_t rng;
};

struct core_req {
    const char *chain[CORE_MAX_CHAIN]; /* aliases: asked, then fallbacks (borrowed) */
    size_t nchain;
    size_t ci;           /* current alias */
    int tier_started;
    int tier_order;      /* order value of the current tier */
    int tier_attempts;
    int attempts;
    unsigned char *tried;    /* per deployment: tried by this request */
    unsigned char *excluded; /* per deployment: failed auth for this request */
    int n_fail[CORE__CLASS_COUNT];
    int last_dep;
    int probe_dep;       /* the deployment probed as a last resort, or -1 */
    int pinned;          /* -1, or the one deployment this request may use */
};

static const char *const core_class_names[CORE__CLASS_COUNT] = {
    "ok", "retryable", "rate_limit", "auth", "client", "preempted"};

const char *core_class_name(enum core_class c)
{
    return (unsigned)c < CORE__CLASS_COUNT ? core_class_names[c] : "?";
}

enum core_class core_classify(int status, const char *code)
{
    if (status >= 200 && status < 300)
        return CORE_OK;
    if (status == 0)
        return CORE_RETRYABLE;
    /* out of quota or credit (OpenAI 429, Anthropic 400 "credit balance"): the key's problem */
    if (status >= 400 && status < 500 && code && !strcmp(code, "insufficient_quota"))
        return CORE_AUTH;
    if (status == 429)
        return CORE_RATE_LIMIT;
    if (status == 401 || status == 402 || status == 403)
        return CORE_AUTH;
    if (status == 408 || status == 409 || status == 425)
        return CORE_RETRYABLE;
    if (status >= 400 && status < 500)
        return CORE_CLIENT;
    return CORE_RETRYABLE; /* 5xx, 529, and anything a provider should not send */
}

/* splitmix64: small, good enough for weighted picks, fixed by the seed. */
static uint64_t core_rand(struct core *c)
{
    uint64_t z = (c->rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

struct core *core_new(const struct router_config *cfg, uint64_t seed)
{
    struct core *c = calloc(1, sizeof *c);
    size_t i;

    if (!c)
        return NULL;
    c->cfg = cfg;
    c->rng = seed;
    c->ring = (size_t)cfg->allowed_fails + 1;
    c->dep = calloc(cfg->ndep ? cfg->ndep : 1, sizeof *c->dep);
    if (!c->dep)
        goto fail;
    for (i = 0; i < cfg->ndep; i++) {
        c->dep[i].fails = calloc(c->ring, sizeof *c->dep[i].fails);
        if (!c->dep[i].fails)
            goto fail;
    }
    return c;
fail:
    core_free(c);
    return NULL;
}

void core_free(struct core *c)
{
    size_t i;
    if (!c)
        return;
    if (c->dep)
        for (i = 0; i < c->cfg->ndep; i++)
            free(c->dep[i].fails);
    free(c->dep);
    free(c);
}

static int core_in_chain(const struct core_req *r, const char *alias)
{
    size_t i;
    for (i = 0; i < r->nchain; i++)
        if (!strcmp(r->chain[i], alias))
            return 1;
    return 0;
}

struct core_req *core_req_new(struct core *c, const char *alias)
{
    const struct router_config *cfg = c->cfg;
    struct core_req *r;
    size_t i, nfb, ndep = cfg->ndep ? cfg->ndep : 1;
    char **fb;

    if (!router_config_has_alias(cfg, alias))
        return NULL;
    r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->tried = calloc(ndep, 1);
    r->excluded = calloc(ndep, 1);
    if (!r->tried || !r->excluded) {
        core_req_free(r);
        return NULL;
    }
    r->last_dep = -1;
    r->probe_dep = -1;
    r->pinned = -1;
    /* The alias itself, then its fallbacks (or default_fallbacks), each once. */
    for (i = 0; i < cfg->ndep; i++)
        if (!strcmp(cfg->dep[i].alias, alias)) {
            r->chain[r->nchain++] = cfg->dep[i].alias;
            break;
        }
    fb = router_config_fallbacks(cfg, alias, &nfb);
    for (i = 0; i < nfb && r->nchain < CORE_MAX_CHAIN; i++)
        if (!core_in_chain(r, fb[i]) && router_config_has_alias(cfg, fb[i]))
            r->chain[r->nchain++] = fb[i];
    return r;
}

void core_req_free(struct core_req *r)
{
    if (!r)
        return;
    free(r->tried);
    free(r->excluded);
    free(r);
}

int core_req_attempts(const struct core_req *r)
{
    return r->attempts;
}

int core_req_fallbacks(const struct core_req *r)
{
    return r->nchain ? (int)(r->ci < r->nchain ? r->ci : r->nchain - 1) : 0;
}

int core_is_cooling(const struct core *c, int dep, int64_t now_ms)
{
    const struct core_dep *d = &c->dep[dep];
    return d->cooling && now_ms < d->until_ms;
}

int64_t core_cooling_until(const struct core *c, int dep)
{
    return c->dep[dep].cooling ? c->dep[dep].until_ms : 0;
}

const char *core_cool_reason(const struct core *c, int dep)
{
    return c->dep[dep].cooling ? c->dep[dep].reason : "";
}

int core_pick_weighted(struct core *c, const int *deps, size_t n)
{
    double total = 0, x;
    size_t i;

    if (n == 0)
        return -1;
    for (i = 0; i < n; i++)
        total += c->cfg->dep[deps[i]].weight;
    /* 53 random bits -> [0, 1). */
    x = (double)(core_rand(c) >> 11) * (1.0 / 9007199254740992.0) * total;
    for (i = 0; i < n; i++) {
        x -= c->cfg->dep[deps[i]].weight;
        if (x < 0)
            return deps[i];
    }
    return deps[n - 1];
}

void core_inflight(struct core *c, int dep, int delta)
{
    if (dep < 0 || (size_t)dep >= c->cfg->ndep)
        return;
    c->dep[dep].inflight += delta;
    if (c->dep[dep].inflight < 0)
        c->dep[dep].inflight = 0;
}

int core_inflight_get(const struct core *c, int dep)
{
    return c->dep[dep].inflight;
}

void core_observe_ttft(struct core *c, int dep, double ttft_ms, int64_t now_ms)
{
    struct core_dep *d;
    if (dep < 0 || (size_t)dep >= c->cfg->ndep || !(ttft_ms >= 0))
        return;
    d = &c->dep[dep];
    if (core_latency_ms(c, dep, now_ms) < 0)
        d->ewma_ms = ttft_ms;
    else
        d->ewma_ms = CORE_EWMA_ALPHA * ttft_ms + (1.0 - CORE_EWMA_ALPHA) * d->ewma_ms;
    d->ewma_at = now_ms > 0 ? now_ms : 1;
}

double core_latency_ms(const struct core *c, int dep, int64_t now_ms)
{
    const struct core_dep *d = &c->dep[dep];
    if (d->ewma_at == 0 || now_ms - d->ewma_at > c->cfg->latency_ttl_ms)
        return -1;
    return d->ewma_ms;
}

void core_req_pin(struct core_req *r, int dep)
{
    r->pinned = dep;
}

/* Chooses among deps (n > 0) by the config's routing strategy; keeps only
 * the best by the strategy's measure in deps, then picks by weight. */
static int core_choose(struct core *c, int *deps, size_t n, int64_t now_ms)
{
    const struct router_config *cfg = c->cfg;
    size_t i, k = 0;

    if (cfg->strategy == ROUTER_STRATEGY_LEAST_BUSY) {
        int best = c->dep[deps[0]].inflight;
        for (i = 1; i < n; i++)
            if (c->dep[deps[i]].inflight < best)
                best = c->dep[deps[i]].inflight;
        for (i = 0; i < n; i++)
            if (c->dep[deps[i]].inflight == best)
                deps[k++] = deps[i];
        n = k;
    } else if (cfg->strategy == ROUTER_STRATEGY_LATENCY) {
        double best = -1, lat;
        for (i = 0; i < n; i++) {
            lat = core_latency_ms(c, deps[i], now_ms);
            if (lat < 0)
                lat = 0; /* never measured (or forgotten): try it */
            if (best < 0 || lat < best)
                best = lat;
        }
        for (i = 0; i < n; i++) {
            lat = core_latency_ms(c, deps[i], now_ms);
            if (lat < 0)
                lat = 0;
            if (lat <= best * (1.0 + cfg->latency_buffer))
                deps[k++] = deps[i];
        }
        n = k;
    }
    return core_pick_weighted(c, deps, n);
}

/* Smallest order value > after (or >= INT_MIN when !started) among the
 * deployments of alias; 0 when there is none. */
static int core_next_tier(const struct core *c, const char *alias, int started, int after,
                          int *order)
{
    const struct router_config *cfg = c->cfg;
    size_t i;
    int found = 0;

    for (i = 0; i < cfg->ndep; i++) {
        int o = cfg->dep[i].order;
        if (strcmp(cfg->dep[i].alias, alias))
            continue;
        if (started && o <= after)
            continue;
        if (!found || o < *order) {
            *order = o;
            found = 1;
        }
    }
    return found;
}

/* Moves r to the next tier, or the next alias when the tiers ran out.
 * 0 when the chain is exhausted. */
static int core_advance(const struct core *c, struct core_req *r)
{
    int order = 0;
    while (r->ci < r->nchain) {
        if (core_next_tier(c, r->chain[r->ci], r->tier_started, r->tier_order, &order)) {
            r->tier_started = 1;
            r->tier_order = order;
            r->tier_attempts = 0;
            return 1;
        }
        r->ci++;
        r->tier_started = 0;
    }
    return 0;
}

/* The deployment of r's chain whose cooldown ends first, not cooling for a
 * rate limit; -1 when there is none. */
static int core_probe_target(const struct core *c, const struct core_req *r, int64_t now_ms)
{
    const struct router_config *cfg = c->cfg;
    size_t i;
    int best = -1;

    for (i = 0; i < cfg->ndep; i++) {
        const struct core_dep *d = &c->dep[i];
        if (!core_in_chain(r, cfg->dep[i].alias) || r->excluded[i] || r->tried[i])
            continue;
        if (!core_is_cooling(c, (int)i, now_ms) || d->cool_class == CORE_RATE_LIMIT)
            continue;
        if (best < 0 || d->until_ms < c->dep[best].until_ms)
            best = (int)i;
    }
    return best;
}

int core_next(struct core *c, struct core_req *r, int64_t now_ms, struct core_pick *out)
{
    const struct router_config *cfg = c->cfg;
    int *pool = NULL, *untried = NULL;
    int budget = 1 + cfg->num_retries;
    int rc = 0;

    if (cfg->ndep == 0 || r->attempts >= CORE_MAX_ATTEMPTS)
        goto out;
    pool = malloc(cfg->ndep * sizeof *pool);
    untried = malloc(cfg->ndep * sizeof *untried);
    if (!pool || !untried)
        goto out;
    if (r->pinned >= 0) {
        /* pinned: that deployment only, 1 + num_retries times */
        if (r->attempts >= budget || r->excluded[r->pinned])
            goto out;
        out->dep = r->pinned;
        out->attempt = ++r->attempts;
        out->fallbacks = 0;
        out->delay_ms = r->attempts > 1 ? cfg->retry_after_ms : 0;
        /* a pinned attempt on a cooling deployment is a probe of it */
        out->probe = core_is_cooling(c, r->pinned, now_ms);
        if (out->probe)
            r->probe_dep = r->pinned;
        r->tried[r->pinned] = 1;
        r->last_dep = r->pinned;
        rc = 1;
        goto out;
    }
    if (!r->tier_started && !core_advance(c, r))
        goto out;
    for (;;) {
        size_t i, np = 0, nu = 0;
        if (r->tier_attempts < budget) {
            const char *alias = r->chain[r->ci];
            for (i = 0; i < cfg->ndep; i++) {
                if (strcmp(cfg->dep[i].alias, alias) || cfg->dep[i].order != r->tier_order)
                    continue;
                if (r->excluded[i] || core_is_cooling(c, (int)i, now_ms))
                    continue;
                pool[np++] = (int)i;
                if (!r->tried[i])
                    untried[nu++] = (int)i;
            }
        }
        if (np > 0) {
            int d = nu > 0 ? core_choose(c, untried, nu, now_ms) : core_choose(c, pool, np, now_ms);
            out->dep = d;
            out->attempt = ++r->attempts;
            out->fallbacks = (int)r->ci;
            /* retry_after spaces retries; a move to another tier or group is not delayed. */
            out->delay_ms = r->tier_attempts > 0 ? cfg->retry_after_ms : 0;
            out->probe = 0;
            r->tier_attempts++;
            r->tried[d] = 1;
            r->last_dep = d;
            rc = 1;
            goto out;
        }
        if (!core_advance(c, r))
            break;
    }
    if (r->attempts == 0) {
        int d = core_probe_target(c, r, now_ms);
        if (d >= 0) {
            out->dep = d;
            out->attempt = ++r->attempts;
            out->fallbacks = 0;
            out->delay_ms = 0;
            out->probe = 1;
            r->probe_dep = d;
            r->tried[d] = 1;
            r->last_dep = d;
            rc = 1;
        }
    }
out:
    free(pool);
    free(untried);
    return rc;
}

static void core_start_cooldown(struct core *c, int dep, enum core_class why,
                                int64_t retry_after_ms, int64_t now_ms, const char *reason,
                                struct core_effect *eff)
{
    struct core_dep *d = &c->dep[dep];
    int64_t span = c->cfg->cooldown_ms;

    if (retry_after_ms > span)
        span = retry_after_ms;
    d->cooling = 1;
    d->until_ms = now_ms + span;
    d->cool_class = why;
    snprintf(d->reason, sizeof d->reason, "%s", reason);
    d->nfails = 0;
    d->head = 0;
    if (eff) {
        eff->cooled = 1;
        eff->until_ms = d->until_ms;
    }
}

int core_cool(struct core *c, int dep, enum core_class why, int64_t retry_after_ms,
              int64_t now_ms, struct core_effect *eff)
{
    if (eff) {
        eff->cooled = 0;
        eff->recovered = 0;
    }
    if (c->cfg->disable_cooldowns || core_is_cooling(c, dep, now_ms))
        return 0;
    if (c->cfg->cooldown_ms <= 0 && retry_after_ms <= 0)
        return 0;
    core_start_cooldown(c, dep, why, retry_after_ms, now_ms, core_class_name(why), eff);
    return 1;
}

/* Records a failure; 1 when it pushes dep past allowed_fails within 60 s. */
static int core_count_fail(struct core *c, int dep, int64_t now_ms)
{
    struct core_dep *d = &c->dep[dep];
    size_t oldest;

    d->fails[d->head] = now_ms;
    d->head = (d->head + 1) % c->ring;
    if (d->nfails < c->ring)
        d->nfails++;
    if (d->nfails < c->ring)
        return 0;
    oldest = d->head; /* ring full: the slot about to be overwritten is the oldest */
    return now_ms - d->fails[oldest] < CORE_WINDOW_MS;
}

enum core_verdict core_report(struct core *c, struct core_req *r, int dep, enum core_class cls,
                              int64_t retry_after_ms, int64_t now_ms, struct core_effect *eff)
{
    char reason[48];

    if (eff) {
        eff->cooled = 0;
        eff->recovered = 0;
    }
    if ((unsigned)cls < CORE__CLASS_COUNT)
        r->n_fail[cls]++;
    switch (cls) {
    case CORE_OK:
        if (r->probe_dep == dep && core_is_cooling(c, dep, now_ms)) {
            /* A probe got through: whatever cooled it has passed. A request
             * that merely started before the cooldown and ends well now
             * says nothing about it, and ends nothing. */
            c->dep[dep].cooling = 0;
            c->dep[dep].until_ms = 0;
            c->dep[dep].nfails = 0;
            c->dep[dep].head = 0;
            if (eff)
                eff->recovered = 1;
        }
        return CORE_DONE;
    case CORE_CLIENT:
        return CORE_RETURN;
    case CORE_PREEMPTED:
        return CORE_TRY_NEXT;
    case CORE_AUTH:
    case CORE_RATE_LIMIT:
        if (cls == CORE_AUTH)
            r->excluded[dep] = 1;
        core_count_fail(c, dep, now_ms);
        core_cool(c, dep, cls, retry_after_ms, now_ms, eff);
        return CORE_TRY_NEXT;
    case CORE_RETRYABLE:
    default:
        if (core_count_fail(c, dep, now_ms) && !c->cfg->disable_cooldowns &&
            !core_is_cooling(c, dep, now_ms) &&
            (c->cfg->cooldown_ms > 0 || retry_after_ms > 0)) {
            snprintf(reason, sizeof reason, "%d fails in 60 s", c->cfg->allowed_fails + 1);
            core_start_cooldown(c, dep, CORE_RETRYABLE, retry_after_ms, now_ms, reason, eff);
        }
        return CORE_TRY_NEXT;
    }
}

int64_t core_next_expiry(const struct core *c)
{
    int64_t best = -1;
    size_t i;
    for (i = 0; i < c->cfg->ndep; i++)
        if (c->dep[i].cooling && (best < 0 || c->dep[i].until_ms < best))
            best = c->dep[i].until_ms;
    return best;
}

int core_expire(struct core *c, int64_t now_ms, void (*cb)(int dep, void *arg), void *arg)
{
    size_t i;
    int n = 0;
    for (i = 0; i < c->cfg->ndep; i++) {
        struct core_dep *d = &c->dep[i];
        if (d->cooling && now_ms >= d->until_ms) {
            d->cooling = 0;
            d->reason[0] = '\0';
            n++;
            if (cb)
                cb((int)i, arg);
        }
    }
    return n;
}

void core_req_summary(const struct core *c, const struct core_req *r, int64_t now_ms, char *msg,
                      size_t msglen, int *status, int64_t *retry_after_ms)
{
    const struct router_config *cfg = c->cfg;
    size_t i, off = 0, k;
    int ncool = 0, ncool_rl = 0, nfail;
    int64_t first_back = 0;

    nfail = r->n_fail[CORE_RETRYABLE] + r->n_fail[CORE_AUTH] + r->n_fail[CORE_RATE_LIMIT];
#define SUM_ADD(...)                                                                   \
    do {                                                                               \
        if (off < msglen) {                                                            \
            int w_ = snprintf(msg + off, msglen - off, __VA_ARGS__);                   \
            if (w_ > 0)                                                                \
                off += (size_t)w_;                                                     \
        }                                                                              \
    } while (0)
    if (msglen)
        msg[0] = '\0';
    SUM_ADD("no deployment of '%s' could answer", r->nchain ? r->chain[0] : "?");
    if (r->attempts > 0)
        SUM_ADD(": %d attempt%s failed (%d retryable, %d auth, %d rate-limited)", r->attempts,
                r->attempts == 1 ? "" : "s", r->n_fail[CORE_RETRYABLE] + r->n_fail[CORE_PREEMPTED],
                r->n_fail[CORE_AUTH], r->n_fail[CORE_RATE_LIMIT]);
    for (k = 0; k < r->nchain; k++)
        for (i = 0; i < cfg->ndep; i++) {
            if (strcmp(cfg->dep[i].alias, r->chain[k]) || !core_is_cooling(c, (int)i, now_ms))
                continue;
            SUM_ADD("%s%s cooling down after %s, back in %.1f s", ncool ? "; " : ". ",
                    cfg->dep[i].id, c->dep[i].reason,
                    (double)(c->dep[i].until_ms - now_ms) / 1000.0);
            if (!ncool || c->dep[i].until_ms < first_back)
                first_back = c->dep[i].until_ms;
            ncool++;
            if (c->dep[i].cool_class == CORE_RATE_LIMIT)
                ncool_rl++;
        }
#undef SUM_ADD
    if (nfail > 0)
        *status = r->n_fail[CORE_RATE_LIMIT] == nfail ? 429 : 503;
    else
        *status = ncool > 0 && ncool_rl == ncool ? 429 : 503;
    *retry_after_ms = ncool > 0 ? first_back - now_ms : 0;
}

int core_fails_in_window(const struct core *c, int dep, int64_t now_ms)
{
    const struct core_dep *d = &c->dep[dep];
    size_t i;
    int n = 0;
    for (i = 0; i < d->nfails; i++)
        if (now_ms - d->fails[i] < CORE_WINDOW_MS)
            n++;
    return n;
}

int core_clear_cooldowns(struct core *c, void (*cb)(int dep, void *arg), void *arg)
{
    size_t i;
    int n = 0;
    for (i = 0; i < c->cfg->ndep; i++) {
        struct core_dep *d = &c->dep[i];
        d->nfails = 0;
        d->head = 0;
        if (!d->cooling)
            continue;
        d->cooling = 0;
        d->reason[0] = '\0';
        n++;
        if (cb)
            cb((int)i, arg);
    }
    return n;
}

int core_can_continue(const struct core *c, const struct core_req *r, int64_t now_ms)
{
    const struct router_config *cfg = c->cfg;
    int budget = 1 + cfg->num_retries;
    size_t k, i;

    if (cfg->ndep == 0 || r->attempts >= CORE_MAX_ATTEMPTS || r->pinned >= 0)
        return 0;
    for (k = r->ci; k < r->nchain; k++)
        for (i = 0; i < cfg->ndep; i++) {
            const struct router_deploy *d = &cfg->dep[i];
            if (strcmp(d->alias, r->chain[k]) || r->excluded[i] ||
                core_is_cooling(c, (int)i, now_ms))
                continue;
            /* in the current alias, the current tier only while it has attempts left */
            if (k == r->ci && r->tier_started &&
                (d->order < r->tier_order ||
                 (d->order == r->tier_order && r->tier_attempts >= budget)))
                continue;
            return 1;
        }
    return 0;
}
