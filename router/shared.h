/* shared.h -- the state several router instances share through Redis: cache, spend, rate caps, cooldowns.
 *
 * Each part has its own server (cache: url, budgets: url,
 * router_settings.slodrill_shared_cooldowns; one connection per distinct
 * URL). Every call is asynchronous on the router's loop (router/kv.h) and
 * returns the kv op (for kv_cancel) or NULL when Redis cannot be asked now,
 * in which case the caller decides on what it knows locally. Keys (all
 * under "slodrill:"; docs/cache.md and docs/budgets.md list them):
 *   cache:<hash>               hash: tenant feature alias keytext answer cost
 *                              created_ms expires_ms hits; expires with max_stale
 *   cache:counters             hash: lookups hits misses stale writes
 *   rate:<tenant>              hash: tokens at (a token bucket, taken in one Lua script
 *                              with the server's clock)
 *   spend:<scope>:<month>      hash: id -> USD (HINCRBYFLOAT)
 *   marks:<scope>:<month>      hash: "<id>|<level>" -> 1 (HSETNX: a threshold fires once)
 *   cooldown:<deployment id>   "<until wall ms> <class> <origin>", expiring with it
 * and the channel slodrill:cooldowns ("start ..." and "clear ..." messages). */
#ifndef SLODRILL_ROUTER_SHARED_H
#define SLODRILL_ROUTER_SHARED_H

#include <stddef.h>
#include <stdint.h>
#include "common/compiler.h"
#include "router/cache.h"

struct event_base;
struct router_config;
struct kv_op;
struct shared;

#define SHARED_PREFIX "slodrill:"

/* Connects what cfg shares (nothing: a shared that does nothing). NULL with
 * err for a bad URL. cfg and base borrowed. Caller frees with shared_free. */
struct shared *shared_new(struct event_base *base, const struct router_config *cfg, char *err,
                          size_t errlen) WUR;
void shared_free(struct shared *s);

/* Which parts live in Redis. */
int shared_has_cache(const struct shared *s);
int shared_has_budgets(const struct shared *s);
int shared_has_cooldowns(const struct shared *s);

/* ---- cache ---- */

/* A stored answer as read; answer borrowed for the call. */
struct shared_entry {
    const char *answer;
    size_t len;
    double cost_usd;
    int64_t created_ms, expires_ms; /* wall ms */
};
/* ok 0: Redis failed (treat as a miss). e NULL: no entry for the key (or
 * one whose key text or tenant differ). */
typedef void (*shared_entry_fn)(int ok, const struct shared_entry *e, void *arg);
struct kv_op *shared_cache_get(struct shared *s, const struct cache_key *k, shared_entry_fn cb,
                               void *arg);
/* Stores an answer (copied) live for ttl_ms, kept until max_stale_ms after
 * now for travel mode. 0, or -1 when not sent. */
int shared_cache_put(struct shared *s, const struct cache_key *k, const char *answer, size_t len,
                     double cost_usd, int64_t now_ms, int64_t ttl_ms, int64_t keep_ms) WUR;
/* Counts a lookup's result (sent with shared_flush); a hit also counts in
 * the entry's hits. */
void shared_cache_count(struct shared *s, const struct cache_key *k, enum cache_result r);

/* ---- budgets ---- */

/* ok 0: Redis failed. allowed 1/0; retry_ms when not. */
typedef void (*shared_rate_fn)(int ok, int allowed, int64_t retry_ms, void *arg);
struct kv_op *shared_rate_take(struct shared *s, const char *tenant, double rate_per_s,
                               double burst, shared_rate_fn cb, void *arg);

/* ok 0: Redis failed. usd: the total (0 when none). */
typedef void (*shared_usd_fn)(int ok, double usd, void *arg);
struct kv_op *shared_spend_get(struct shared *s, const char *scope, const char *id,
                               const char *month, shared_usd_fn cb, void *arg);
/* Adds usd; cb (may be NULL) gets the new total. */
struct kv_op *shared_spend_add(struct shared *s, const char *scope, const char *id,
                               const char *month, double usd, shared_usd_fn cb, void *arg);
/* Marks level reached; cb's usd is 1 when this call set it (the event is
 * ours to raise), 0 when another instance (or an earlier call) had. */
struct kv_op *shared_mark(struct shared *s, const char *scope, const char *id, const char *month,
                          int level, shared_usd_fn cb, void *arg);

/* ---- cooldowns ---- */

/* Another instance cooled dep_id (an id of the config's model_list) for
 * remaining_ms more, for cls (core_class_name); or, with dep_id NULL, an
 * operator cleared every cooldown. */
typedef void (*shared_cool_fn)(const char *dep_id, const char *cls, int64_t remaining_ms,
                               void *arg);
/* Starts listening (and reads back live cooldowns on every connect). */
int shared_cool_listen(struct shared *s, shared_cool_fn cb, void *arg) WUR;
/* This instance cooled dep_id for remaining_ms: tell the others. */
void shared_cool_publish(struct shared *s, const char *dep_id, const char *cls,
                         int64_t remaining_ms);
/* An operator cleared every cooldown here: clear them everywhere. */
void shared_cool_clear(struct shared *s);

/* Sends counters kept since the last call. */
void shared_flush(struct shared *s);

/* For tests: 1 when every configured connection is up. */
int shared_ready(const struct shared *s);

#endif
