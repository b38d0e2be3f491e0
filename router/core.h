/* core.h -- the pure routing core: pick, classify, retry plan, cooldowns.
 *
 * No sockets, threads, clocks or I/O: state, the request and now_ms are
 * arguments, so the proxy drives it with real time and tests with hand-made
 * times. All decisions are written down in docs/routing.md.
 *
 * A request's life: core_req_new() for the alias the client asked for, then
 * core_next() for each attempt and core_report() with how it ended, until
 * core_report() says CORE_DONE / CORE_RETURN or core_next() says nothing is
 * left; core_req_summary() then words the error. Deployments are indexes into
 * the config's model_list (struct router_config, router/config.h). */
#ifndef SLODRILL_ROUTER_CORE_H
#define SLODRILL_ROUTER_CORE_H

#include <stddef.h>
#include <stdint.h>
#include "common/compiler.h"

struct router_config;
struct core;
struct core_req;

/* How one attempt ended, as far as routing cares. */
enum core_class {
    CORE_OK = 0,     /* 2xx */
    CORE_RETRYABLE,  /* 408, 409, 5xx, 529, connect/reset/timeouts: try elsewhere, counts
                        toward allowed_fails */
    CORE_RATE_LIMIT, /* 429 (not insufficient_quota): try elsewhere, cool at once */
    CORE_AUTH,       /* 401, 402, 403, any 4xx with code insufficient_quota (OpenAI's 429,
                        Anthropic's 400 "credit balance"): the key is bad here; fail over,
                        cool at once */
    CORE_CLIENT,     /* 400, 404, 413, 422 and other 4xx: the request's own fault; return as is */
    CORE_PREEMPTED,  /* the proxy moved the attempt because its deployment went into cooldown
                        meanwhile: try elsewhere, not a new failure */
    CORE__CLASS_COUNT
};
const char *core_class_name(enum core_class c);

/* status: the upstream's HTTP status, 0 when no response came (connection
 * refused, reset, timeout: always retryable). code: the error body's
 * error.code or error.type when known ("insufficient_quota"), else NULL. */
enum core_class core_classify(int status, const char *code);

/* cfg is borrowed and must outlive the core. seed fixes the weighted picks.
 * Caller frees with core_free. */
struct core *core_new(const struct router_config *cfg, uint64_t seed) WUR;
void core_free(struct core *c);

/* NULL when no deployment serves alias (or out of memory: check
 * router_config_has_alias). Caller frees with core_req_free. */
struct core_req *core_req_new(struct core *c, const char *alias) WUR;
void core_req_free(struct core_req *r);

struct core_pick {
    int dep;          /* index into cfg->dep */
    int attempt;      /* 1-based attempt number of this request */
    int fallbacks;    /* model-group fallbacks taken so far (0 = the alias asked for) */
    int64_t delay_ms; /* wait this long before starting (router_settings.retry_after) */
    int probe;        /* 1: every deployment was cooling; this one is tried anyway */
};

/* The next attempt: 1 with *out filled, or 0 when nothing is left to try
 * (attempts used up, or every remaining deployment is cooling).
 *
 * Last resort: when a request finds every deployment of its chain cooling
 * before its first attempt, it is not refused outright. It probes the one
 * whose cooldown ends first (out->probe = 1), once; cooldowns for rate
 * limits are respected and never probed. A probe that succeeds ends that
 * cooldown early (core_report sets eff->recovered). Like Envoy's panic
 * mode, this keeps an all-cooling alias from serving nothing for a whole
 * cooldown_time after the cause went away. */
int core_next(struct core *c, struct core_req *r, int64_t now_ms, struct core_pick *out);

/* 1 when core_next() would find another attempt for r at now_ms (no state
 * changes, no randomness used): the proxy moves a waiting request off a
 * cooled deployment only when there is somewhere to go. Last-resort probes
 * do not count: they are for requests that have not started. */
int core_can_continue(const struct core *c, const struct core_req *r, int64_t now_ms);

enum core_verdict {
    CORE_DONE = 0,  /* success: answer the client */
    CORE_RETURN,    /* client's fault: return the upstream's answer as is */
    CORE_TRY_NEXT,  /* call core_next() again */
};

/* Effects of one report, for the proxy's events and for moving requests. */
struct core_effect {
    int cooled;          /* 1 when this report put dep into cooldown */
    int64_t until_ms;    /* when that cooldown ends */
    int recovered;       /* 1 when a success ended dep's cooldown early */
};

/* An attempt on dep ended with cls. retry_after_ms is the provider's
 * retry-after (0 when none); now_ms is when it ended. eff may be NULL. */
enum core_verdict core_report(struct core *c, struct core_req *r, int dep, enum core_class cls,
                              int64_t retry_after_ms, int64_t now_ms, struct core_effect *eff);

/* Puts dep into cooldown now for the usual time (or retry_after_ms if
 * longer), whatever its count; for a deployment that is unreachable in a way
 * no single request sees. 1 when it started a cooldown. */
int core_cool(struct core *c, int dep, enum core_class why, int64_t retry_after_ms,
              int64_t now_ms, struct core_effect *eff);

/* After core_next() returned 0: the error for the client. *status is 429
 * when every failure (or every cooling deployment) was a rate limit, else
 * 503; *retry_after_ms is when the first cooling deployment returns (0 when
 * none is cooling). msg names the deployments tried and those cooling with
 * when they return. */
void core_req_summary(const struct core *c, const struct core_req *r, int64_t now_ms, char *msg,
                      size_t msglen, int *status, int64_t *retry_after_ms);

int core_req_attempts(const struct core_req *r);
int core_req_fallbacks(const struct core_req *r);

/* Cooldowns. */
int core_is_cooling(const struct core *c, int dep, int64_t now_ms);
/* When dep's cooldown ends (0 when not cooling). */
int64_t core_cooling_until(const struct core *c, int dep);
/* The earliest end of a cooldown still marked active, or -1 when none: the
 * proxy sets a timer for it. */
int64_t core_next_expiry(const struct core *c);
/* Ends cooldowns due at now_ms, calling cb(dep) for each. Returns how many. */
int core_expire(struct core *c, int64_t now_ms, void (*cb)(int dep, void *arg), void *arg);

/* Failures of dep counted within the last 60 s (at most allowed_fails + 1). */
int core_fails_in_window(const struct core *c, int dep, int64_t now_ms);

/* Ends every cooldown now and forgets the failure counts (an operator's
 * "clear cooldowns"), calling cb(dep) for each cooldown ended. Returns how
 * many. */
int core_clear_cooldowns(struct core *c, void (*cb)(int dep, void *arg), void *arg);

/* The reason dep is cooling ("401", "429", "3 fails in 60 s", ...), "" when not. */
const char *core_cool_reason(const struct core *c, int dep);

/* Weighted pick among deps (indexes into cfg->dep) with the core's RNG;
 * exposed for tests of the distribution. -1 when n is 0. */
int core_pick_weighted(struct core *c, const int *deps, size_t n);

/* ---- routing strategies (cfg->strategy; docs/routing.md) ----
 *
 * Inside a tier, core_next() chooses among the candidates by the config's
 * routing_strategy: simple-shuffle (random by weight), least-busy (fewest
 * attempts in flight; ties by weight), latency-based-routing (lowest
 * time-to-first-token EWMA; a deployment with no sample younger than the
 * ttl counts as 0 ms, so it is tried and measured; candidates within
 * lowest_latency_buffer of the lowest tie, and ties go by weight). */

/* The driver's count of attempts in flight on dep: +1 when one starts, -1
 * when it ends, whatever the reason (least-busy reads it). */
void core_inflight(struct core *c, int dep, int delta);
int core_inflight_get(const struct core *c, int dep);

/* A time to first token on dep (ms), observed at now_ms. A first token that
 * never came (stream_timeout) is observed as the time waited. Folds into an
 * EWMA with weight CORE_EWMA_ALPHA; a sample after the ttl starts afresh. */
#define CORE_EWMA_ALPHA 0.3
void core_observe_ttft(struct core *c, int dep, double ttft_ms, int64_t now_ms);
/* dep's TTFT EWMA in ms, or -1 when no sample is younger than the ttl. */
double core_latency_ms(const struct core *c, int dep, int64_t now_ms);

/* Pins r to dep (an x-slodrill-deployment header, or metadata.deployment):
 * no choice, no fallbacks; dep gets 1 + num_retries attempts, even while
 * cooling (an operator checking a cooled deployment: such an attempt is a
 * probe, and its success ends the cooldown); an auth failure ends it. Call
 * before the first core_next(). */
void core_req_pin(struct core_req *r, int dep);

#endif
