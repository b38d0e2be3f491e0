/* guard.h -- the proxy's guardrails: rate caps, spend caps, the degrade ladder, the cache, travel mode.
 *
 * The I/O shell around the pure parts (budget.c, ratelimit.c) and the
 * stores (cache.c, ledger.c), on the proxy's loop. The proxy calls
 * guard_admit when a chat request arrives (it may answer it: 429 rate cap,
 * 400 budget, a cache hit), guard_chunk for every stream chunk,
 * guard_success when an answer is complete, and guard_stale when every
 * deployment failed (travel mode). Docs: docs/budgets.md, docs/cache.md. */
#ifndef SLODRILL_ROUTER_GUARD_H
#define SLODRILL_ROUTER_GUARD_H

#include <stddef.h>
#include <stdint.h>
#include "common/compiler.h"
#include "router/cache.h"
#include "router/router.h"

struct event_base;
struct evhttp_request;
struct evkeyvalq;
struct cJSON;
struct core;
struct router_config;
struct guard;
struct replay_acc;
struct budget_feature;

enum guard_verdict {
    GUARD_PROCEED = 0, /* go on: call the providers */
    GUARD_ANSWERED,    /* the guard answered the request */
    GUARD_PENDING      /* waiting on Redis: gr->resume will say which of the two */
};

struct guard_wait;

/* Per request; embedded in the proxy's request, zeroed at start. */
struct guard_req {
    /* set by the caller before guard_admit: called once, on the loop (never
     * from inside guard_admit), when a GUARD_PENDING admission is decided */
    void (*resume)(void *arg, enum guard_verdict v);
    void *resume_arg;
    char tenant[64], user[64], feature[64];
    struct cache_key key;
    int have_key;                     /* the answer may be cached under key */
    struct replay_acc *acc;           /* collects a streamed answer */
    const struct budget_feature *f;
    char budget_steps[192];           /* x-slodrill-budget: the ladder's rungs taken */
    /* when the guard answered: the outcome class (DESIGN.md: served_from_cache,
     * rejected_by_budget, rate_limited) and status, for the request log */
    const char *outcome;
    int status;
    /* private */
    struct guard_wait *wait;          /* an admission waiting on Redis */
    struct cache_entry travel;        /* an expired answer read at admission (Redis), for
                                         travel mode */
    int64_t travel_expires_ms;
};

/* NULL with err when a store cannot be opened; a config without budgets:
 * and cache: gives a guard that does nothing. core, base, cfg borrowed. */
struct guard *guard_new(struct event_base *base, const struct router_config *cfg,
                        const struct core *core, proxy_event_fn on_event, void *event_arg,
                        char *err, size_t errlen) WUR;
/* Flushes the stores and frees. NULL does nothing. */
void guard_free(struct guard *g);

/* A chat request arrived, tagged tenant, user, feature ("" or NULL when
 * untagged; borrowed). body (the parsed request) may be changed in place
 * (messages trimmed, max_tokens capped) and *alias moved to a cheaper alias
 * (borrowed from the config). GUARD_ANSWERED: req has been answered (and is
 * finished); the caller frees its request state. GUARD_PENDING (a shared
 * store in Redis is being asked): req, reqid, body, alias and gr must stay
 * valid until gr->resume is called with GUARD_PROCEED or GUARD_ANSWERED,
 * or guard_req_cleanup(gr) cancels the wait (the client went away). */
enum guard_verdict guard_admit(struct guard *g, struct evhttp_request *req, const char *reqid,
                               struct cJSON *body, const char **alias, int stream,
                               int client_usage, const char *tenant, const char *user,
                               const char *feature, struct guard_req *gr);

/* Headers for an answer the proxy sends (x-slodrill-cache: miss when the
 * request could have been cached, x-slodrill-budget when the ladder acted). */
void guard_headers(const struct guard_req *gr, struct evkeyvalq *h);

/* One OpenAI chunk of the answer being streamed (borrowed). */
void guard_chunk(struct guard_req *gr, const struct cJSON *chunk);

/* The answer succeeded: body is the plain chat.completion (NULL for a
 * stream: the collected chunks are used). cost < 0 unknown. Writes the
 * cache through and the spend into the ledger. */
void guard_success(struct guard *g, struct guard_req *gr, const char *body, size_t len,
                   double cost);

/* Every deployment failed. With travel mode and a cached answer no older
 * than max_stale, answers req from it marked x-slodrill-cache: stale (the
 * caller has added its own headers) and returns 1; else 0. */
int guard_stale(struct guard *g, struct evhttp_request *req, const char *reqid,
                struct guard_req *gr, int stream, int client_usage);

/* Cancels a pending admission; frees what gr holds. */
void guard_req_cleanup(struct guard_req *gr);

/* ---- cooldowns shared with other instances (router_settings.slodrill_shared_cooldowns) ---- */

/* cool(dep, cls, remaining_ms, arg): another instance put dep (an index
 * into the config's model_list) into cooldown for cls (enum core_class) with
 * remaining_ms left; dep -1: an operator cleared every cooldown. Set by the
 * proxy once, after guard_new. */
typedef void (*guard_cool_fn)(int dep, int cls, int64_t remaining_ms, void *arg);
int guard_share_cooldowns(struct guard *g, guard_cool_fn cool, void *arg) WUR;
/* This instance put dep into cooldown (cls: enum core_class) for remaining_ms. */
void guard_cooled(struct guard *g, int dep, int cls, int64_t remaining_ms);
/* An operator cleared every cooldown here. */
void guard_cooldowns_cleared(struct guard *g);

/* 1 when every Redis connection the guard uses is up (tests wait on it). */
int guard_shared_ready(const struct guard *g);

/* Counters for tests. */
struct guard_stats {
    uint64_t rate_limited, denied, degraded, cache_hits, stale_served, writes, overruns;
    uint64_t pending;    /* admissions that waited on Redis */
    uint64_t fallbacks;  /* answers Redis could not give, decided locally instead */
};
void guard_stats_get(const struct guard *g, struct guard_stats *out);

#endif
