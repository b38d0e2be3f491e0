/* config.h -- the loaded router config, as the router module's own files see it.
 *
 * router.h keeps struct router_config opaque for everyone else; the core and
 * the proxy read these fields. Everything is owned by the config and freed by
 * router_config_free. Durations are milliseconds; 0 means "not set" where a
 * comment says so. */
#ifndef SLODRILL_ROUTER_CONFIG_H
#define SLODRILL_ROUTER_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include "router/router.h"

/* Provider dialects an upstream speaks (from the model's "prefix/"). */
enum router_dialect { ROUTER_DIALECT_OPENAI = 0, ROUTER_DIALECT_ANTHROPIC = 1 };

/* routing_strategy: how a deployment is chosen inside an order tier. */
enum router_strategy {
    ROUTER_STRATEGY_SHUFFLE = 0, /* simple-shuffle: random by weight (the default) */
    ROUTER_STRATEGY_LEAST_BUSY,  /* least-busy: fewest attempts in flight */
    ROUTER_STRATEGY_LATENCY      /* latency-based-routing: lowest recent time-to-first-token */
};

struct anthropic_cache_point;
struct budget_config;
struct cache_config;

/* One model_list entry. */
struct router_deploy {
    char *id;             /* model_info.id, else "<model_name>#<n>" (n from 1 per alias) */
    char *alias;          /* model_name: what clients ask for */
    char *model;          /* litellm_params.model as written: "openai/gpt-4o-mini" */
    char *upstream_model; /* model without its provider prefix: "gpt-4o-mini" */
    char *api_base;       /* without a trailing '/'; a default per dialect when unset */
    char *api_key;        /* "" when unset */
    char *provider;       /* label: host:port of api_base, else the prefix */
    enum router_dialect dialect;
    int order;            /* lower is tried first; unset = INT_MAX (after all ordered) */
    int order_set;
    double weight;        /* pick weight: weight, else rpm, else tpm, else 1 */
    long rpm, tpm;        /* 0 = not set */
    int64_t timeout_ms;        /* whole attempt; 0 = router default */
    int64_t stream_timeout_ms; /* time to first token; 0 = router default */
    double in_cost, out_cost;  /* USD per token; < 0 unknown */
    int line, col;        /* where the entry starts */
    /* litellm_params.cache_control_injection_points (router/anthropic.h):
     * prompt-cache breakpoints placed on Anthropic requests; NULL/0 none */
    struct anthropic_cache_point *cache_points;
    size_t ncache_points;
};

/* One fallbacks entry: alias -> [to...]. */
struct router_fallback {
    char *alias;
    char **to;
    size_t nto;
    int line, col;        /* of the alias key */
};

struct router_config {
    char *path;
    struct router_deploy *dep;
    size_t ndep;
    struct router_fallback *fb;
    size_t nfb;
    char **default_fb;       /* default_fallbacks, for aliases without an entry */
    size_t ndefault_fb;
    int num_retries;         /* default 0 */
    int allowed_fails;       /* default 3 */
    int64_t cooldown_ms;     /* default 5000 */
    int disable_cooldowns;
    int64_t timeout_ms;      /* default 600000 */
    int64_t stream_timeout_ms; /* default 0 = timeout */
    int64_t idle_timeout_ms; /* between chunks after the first token; default 30000 */
    int64_t retry_after_ms;  /* wait before an in-group retry; default 0 */
    int weighted_failover;   /* enable_weighted_failover (accepted; see docs/routing.md) */
    char *routing_strategy;
    enum router_strategy strategy;
    int64_t latency_ttl_ms;  /* routing_strategy_args.ttl: samples older than this are
                                forgotten; default 3600 s (LiteLLM's) */
    double latency_buffer;   /* routing_strategy_args.lowest_latency_buffer: deployments
                                within (1 + this) x the lowest count as lowest; default 0 */
    char *request_log;       /* router_settings.slodrill_request_log: SQLite file of every
                                request; NULL = none */
    char *master_key;        /* NULL when the proxy is open */
    char *shared_cooldowns;  /* router_settings.slodrill_shared_cooldowns: Redis URL through
                                which instances share cooldowns (router/shared.h); NULL none */
    struct budget_config *budgets; /* budgets: (router/budget.h); NULL when absent */
    struct cache_config *cache;    /* cache: (router/cache.h); NULL when absent */
};

/* Fallback aliases for alias (borrowed; *n receives the count). */
char **router_config_fallbacks(const struct router_config *cfg, const char *alias, size_t *n);

/* 1 when some deployment serves alias. */
int router_config_has_alias(const struct router_config *cfg, const char *alias);

#endif
