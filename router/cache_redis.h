/* cache_redis.h -- the Redis cache as `slodrill cache stats|purge` sees it (blocking hiredis).
 *
 * Reads the keys router/shared.c writes: a hash slodrill:cache:<digest> per
 * entry (tenant feature alias keytext answer cost created_ms expires_ms
 * hits) and the hash slodrill:cache:counters (docs/cache.md). This is the
 * command line's view: hiredis's synchronous API with a connect and command
 * timeout, never on a router's event loop. Entries are walked with SCAN
 * (never KEYS), so a big cache does not stall the server; figures come out
 * as the SQLite store's (struct cache_file_stats), so both print alike. */
#ifndef SLODRILL_ROUTER_CACHE_REDIS_H
#define SLODRILL_ROUTER_CACHE_REDIS_H

#include <stddef.h>
#include <stdint.h>
#include "common/compiler.h"
#include "router/cache.h"

#define CACHE_REDIS_TIMEOUT_MS 2000      /* connect, and each command */
#define CACHE_REDIS_MAX_KEYS 10000000L   /* keys walked per call; past it the walk stops */
#define CACHE_REDIS_MAX_GROUPS 10000     /* tenant/feature pairs kept for the table */

struct cache_redis;

/* What a walk saw beside the entries. */
struct cache_redis_walk {
    long keys;      /* keys SCAN returned under slodrill:cache: (the counters key aside) */
    long others;    /* of those, not cache entries: another type, fields missing or over
                       their bounds, or gone during the walk; never counted nor purged */
    long ungrouped; /* entries of tenant/feature pairs past the first CACHE_REDIS_MAX_GROUPS */
    int capped;     /* the walk stopped at CACHE_REDIS_MAX_KEYS */
};

/* Connects to url (redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] or
 * unix:///path[?db=N], parsed by kv_url_parse), authenticates and selects
 * the database; timeout_ms bounds the connect and every command. NULL with
 * err ("cannot reach Redis at 127.0.0.1:6379: Connection refused", a
 * refused AUTH or SELECT, a bad URL). Caller frees with cache_redis_close. */
struct cache_redis *cache_redis_open(const char *url, int timeout_ms, char *err,
                                     size_t errlen) WUR;
/* NULL does nothing. */
void cache_redis_close(struct cache_redis *r);

/* redis://HOST:PORT/DB or unix://PATH?db=N, without the password, for
 * messages. Borrowed. */
const char *cache_redis_name(const struct cache_redis *r);

/* Walks every entry at now_ms: out gets the counts (live: expires_ms after
 * now_ms; bytes: the answer and key text, by HSTRLEN) and the counters
 * hash; walk (may be NULL) what else was seen. Keeps the tenant/feature
 * table for cache_redis_groups. -1 with err. */
int cache_redis_stats(struct cache_redis *r, int64_t now_ms, struct cache_file_stats *out,
                      struct cache_redis_walk *walk, char *err, size_t errlen) WUR;

/* Calls cb for each (tenant, feature) of the last cache_redis_stats, in
 * byte order of tenant then feature, with its entries and hits. */
void cache_redis_groups(const struct cache_redis *r,
                        void (*cb)(const char *tenant, const char *feature, long entries,
                                   long hits, void *arg),
                        void *arg);

/* Deletes (UNLINK, in batches) the entries of tenant and/or feature (NULL =
 * any); expired_only keeps live ones. *deleted receives the count Redis
 * reported deleted; walk (may be NULL) what else was seen. An entry a
 * router rewrites between the read and the delete can go too: it is a
 * cache, the next request writes it again. -1 with err (*deleted then
 * counts what went before the error). */
int cache_redis_purge(struct cache_redis *r, const char *tenant, const char *feature,
                      int expired_only, int64_t now_ms, long *deleted,
                      struct cache_redis_walk *walk, char *err, size_t errlen) WUR;

#endif
