/* ratelimit.h -- per-tenant rate caps as token buckets; pure (now is an argument).
 *
 * Each key (a tenant) has a bucket of `burst` requests refilled at `rate`
 * per second. A request takes one; an empty bucket says when the next one
 * is due, which the proxy sends as retry-after. Keys are bounded: past
 * RATELIMIT_MAX_KEYS the fullest buckets (idle tenants) are forgotten. */
#ifndef SLODRILL_ROUTER_RATELIMIT_H
#define SLODRILL_ROUTER_RATELIMIT_H

#include <stdint.h>
#include "common/compiler.h"

#define RATELIMIT_MAX_KEYS 65536

struct ratelimit;

struct ratelimit *ratelimit_new(void) WUR;
void ratelimit_free(struct ratelimit *rl);

/* Takes one request from key's bucket at now_ms. 1 when allowed; 0 when
 * not, with *retry_after_ms (>= 1) until a request would be allowed. */
int ratelimit_take(struct ratelimit *rl, const char *key, double rate_per_s, double burst,
                   int64_t now_ms, int64_t *retry_after_ms);

#endif
