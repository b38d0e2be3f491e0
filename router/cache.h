/* cache.h -- the router's write-through answer cache (SQLite), with stale reads for travel mode.
 *
 * Every successful answer is written through, keyed by tenant, feature,
 * model alias, the normalised prompt (trimmed, whitespace folded, volatile
 * ids removed by configurable patterns) and the request parameters that
 * change the answer. The stored value is the answer as an OpenAI
 * chat.completion object; a streamed request answered from the cache is
 * replayed as a stream (router/replay.c). Entries never cross tenants: the
 * tenant is part of the key and checked again on every read. Writes are
 * queued and flushed in one transaction (cache_flush, or when the queue is
 * full), never one synchronous write per request; reads see queued writes.
 * Time is wall-clock milliseconds (TTLs outlive restarts). Semantics:
 * docs/cache.md. */
#ifndef SLODRILL_ROUTER_CACHE_H
#define SLODRILL_ROUTER_CACHE_H

#include <stddef.h>
#include <stdint.h>
#include "common/compiler.h"

struct cJSON;
struct ynode;
struct cache;

/* Per-feature settings. */
struct cache_feature {
    char *name;
    int enabled;     /* 0: never stored or served (personal data) */
    int64_t ttl_ms;  /* 0: the cache's ttl */
};

/* The `cache:` section of a router config. Owned by the router config; free
 * with cache_config_free. */
struct cache_config {
    int enabled;              /* the section is present and enabled: true */
    char *backend;            /* "sqlite" (default) or "redis" */
    char *path;               /* SQLite file; default "slodrill-cache.db" */
    char *redis_url;          /* url: redis://HOST:PORT/DB (backend redis; default
                                 redis://127.0.0.1:6379/0), else NULL */
    int64_t ttl_ms;           /* default 1 h */
    int travel;               /* serve a stale entry when every deployment failed (default 1) */
    int64_t max_stale_ms;     /* how old a stale answer may be; default 7 days */
    size_t max_entry_bytes;   /* answers larger are not stored; default 1 MiB */
    char **patterns;          /* volatile-id patterns (POSIX extended regex) */
    size_t npatterns;
    void *compiled;           /* private: the compiled patterns */
    struct cache_feature *features;
    size_t nfeatures;
    int default_enabled;      /* features not listed; default 1 */
    int line, col;
};

/* Parses a `cache:` map. NULL with "file:line:col: ..." in err. */
struct cache_config *cache_config_parse(const struct ynode *n, char *err, size_t errlen) WUR;
void cache_config_free(struct cache_config *cfg);

/* 1 when answers of feature (NULL or "" = none given) may be cached. */
int cache_feature_enabled(const struct cache_config *cfg, const char *feature);
int64_t cache_feature_ttl_ms(const struct cache_config *cfg, const char *feature);

/* A request's cache key. keytext is the full normalised key (compared on
 * every read, so a hash collision never serves another prompt's answer);
 * hash is its hex digest. Caller frees with cache_key_cleanup. */
struct cache_key {
    char hash[33];
    char *keytext;
    size_t keylen;
    char tenant[128];
    char feature[128];
    char alias[256];
};

/* Builds the key of an OpenAI chat request body (borrowed) for tenant,
 * feature and alias (NULL = ""). -1 when the request cannot be cached
 * (its prompt is over 1 MiB, or out of memory). */
int cache_key_make(const struct cache_config *cfg, const char *tenant, const char *feature,
                   const char *alias, const struct cJSON *body, struct cache_key *k) WUR;
void cache_key_cleanup(struct cache_key *k);

/* The prompt as the key sees it: each message "role: text", normalised.
 * Exposed for tests and docs. Caller frees. NULL on error. */
char *cache_normalise_prompt(const struct cache_config *cfg, const struct cJSON *messages) WUR;

/* Opens (creating) the store of cfg. NULL with err. Caller frees with
 * cache_close, which flushes. */
struct cache *cache_open(const struct cache_config *cfg, char *err, size_t errlen) WUR;
void cache_close(struct cache *c);

enum cache_result { CACHE_MISS = 0, CACHE_HIT = 1, CACHE_STALE = 2 };

/* What an entry written at created_ms, live until expires_ms, is at now_ms:
 * a hit while live; stale when expired but no older than max_stale, with
 * allow_stale and travel mode; else a miss. */
enum cache_result cache_classify(const struct cache_config *cfg, int64_t created_ms,
                                 int64_t expires_ms, int64_t now_ms, int allow_stale);

struct cache_entry {
    char *answer;        /* chat.completion JSON; caller frees with cache_entry_cleanup */
    size_t len;
    int64_t created_ms;  /* wall ms */
    double cost_usd;     /* what the original answer cost (< 0 unknown) */
};

/* Looks k up at now_ms. A live entry is a CACHE_HIT. An expired one no
 * older than max_stale is CACHE_STALE when allow_stale (travel mode), else
 * a miss. Counts the lookup in the store's counters. */
enum cache_result cache_get(struct cache *c, const struct cache_key *k, int64_t now_ms,
                            int allow_stale, struct cache_entry *out);
void cache_entry_cleanup(struct cache_entry *e);

/* Queues an answer (borrowed, copied) for k, live for ttl_ms. 0, or -1 when
 * it is not stored (too big, out of memory). */
int cache_put(struct cache *c, const struct cache_key *k, const char *answer, size_t len,
              double cost_usd, int64_t now_ms, int64_t ttl_ms) WUR;

/* Writes queued entries and counters in one transaction. 0 or -1 with err. */
int cache_flush(struct cache *c, char *err, size_t errlen) WUR;

/* Queued writes, for a timer that flushes when there are some. */
size_t cache_pending(const struct cache *c);

/* Counters since open (also added to the store's counters on flush). */
struct cache_counts {
    uint64_t lookups, hits, misses, stale, writes;
};
void cache_counts_get(const struct cache *c, struct cache_counts *out);

/* ---- the store as `slodrill cache stats|purge` sees it (no cache_config) ---- */

struct cache_file_stats {
    long entries, live, expired, hits;
    long long bytes;
    /* the store's counters over its whole life */
    long long lookups, hit_count, misses, stale, writes;
};

/* Stats of the SQLite store at path, at now_ms. -1 with err. */
int cache_file_stats(const char *path, int64_t now_ms, struct cache_file_stats *out, char *err,
                     size_t errlen) WUR;

/* Calls cb for each (tenant, feature) with its entry count and hits. */
int cache_file_groups(const char *path, void (*cb)(const char *tenant, const char *feature,
                                                   long entries, long hits, void *arg),
                      void *arg, char *err, size_t errlen) WUR;

/* Deletes entries of tenant and/or feature (NULL = any); expired_only keeps
 * live ones. *deleted receives the count. -1 with err. */
int cache_file_purge(const char *path, const char *tenant, const char *feature, int expired_only,
                     int64_t now_ms, long *deleted, char *err, size_t errlen) WUR;

#endif
