/* cmd_cache.c -- `slodrill cache stats|purge`: the router's answer cache, in SQLite or Redis. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/yamlx.h"
#include "harness/commands.h"
#include "router/cache.h"
#include "router/cache_redis.h"

static const char cache_usage[] =
    "usage: slodrill cache stats (CACHE_DB | --config ROUTER_CONFIG | --redis URL)\n"
    "       slodrill cache purge (CACHE_DB | --config ROUTER_CONFIG | --redis URL)\n"
    "                            [--tenant T] [--feature F] [--expired]\n"
    "\n"
    "The router's write-through cache (docs/cache.md). stats prints entries (live,\n"
    "expired) and their size (answers and key texts), hits, lookups and the hit rate\n"
    "over the store's life, and entries per tenant and feature. purge deletes\n"
    "entries: all of them, or those of a tenant and/or feature, or with --expired\n"
    "only the expired ones (travel mode serves those while they are younger than\n"
    "max_stale: purge them to stop it).\n"
    "With --config, the store is the config's cache: the SQLite file cache.path\n"
    "(default slodrill-cache.db) or, with backend: redis, the Redis at cache.url.\n"
    "--redis URL (redis://[:PASSWORD@]HOST[:PORT][/DB] or unix:///path?db=N) reads\n"
    "a Redis without a config. Redis keys are walked with SCAN, never KEYS; connect\n"
    "and commands time out after 2 s.\n"
    "\n"
    "exit codes: 0 done; 2 bad usage, no such cache file, Redis unreachable or\n"
    "refusing (AUTH, SELECT).\n";

/* Where the entries are: a SQLite file, or a Redis URL. */
struct cache_store {
    char path[1024];
    char redis_url[1024]; /* "" for SQLite */
};

static void cache_group_line(const char *tenant, const char *feature, long entries, long hits,
                             void *arg)
{
    (void)arg;
    printf("  %-20s %-20s %8ld %8ld\n", tenant && tenant[0] ? tenant : "(none)",
           feature && feature[0] ? feature : "(none)", entries, hits);
}

/* The figures both backends have, then the table's heading; where is the
 * file or the Redis URL (without a password). */
static void cache_print_stats(const char *where, const struct cache_file_stats *st)
{
    printf("cache %s\n", where);
    printf("entries   %ld (%ld live, %ld expired), %.1f KiB\n", st->entries, st->live,
           st->expired, (double)st->bytes / 1024.0);
    printf("lookups   %lld: %lld hits, %lld stale (travel mode), %lld misses\n", st->lookups,
           st->hit_count, st->stale, st->misses);
    printf("hit rate  %.1f%%\n",
           st->lookups > 0 ? 100.0 * (double)(st->hit_count + st->stale) / (double)st->lookups
                           : 0.0);
    printf("writes    %lld\n", st->writes);
}

static void cache_print_table_head(void)
{
    printf("\n  %-20s %-20s %8s %8s\n", "tenant", "feature", "entries", "hits");
}

/* The store of a router config's cache: section, read as the router reads it. */
static int cache_store_from_config(const char *file, struct cache_store *out, char *err,
                                   size_t errlen)
{
    struct ynode *root = yamlx_load_file(file, err, errlen);
    struct cache_config *cc = NULL;
    const struct ynode *c;
    int rc = -1, w;

    if (!root)
        return -1;
    if (!(c = yamlx_get(root, "cache"))) {
        snprintf(err, errlen, "%s: the config has no cache: section", file);
        goto out;
    }
    if (!(cc = cache_config_parse(c, err, errlen)))
        goto out;
    if (cc->backend && !strcmp(cc->backend, "redis"))
        w = snprintf(out->redis_url, sizeof out->redis_url, "%s", cc->redis_url);
    else
        w = snprintf(out->path, sizeof out->path, "%s", cc->path);
    if (w < 0 || (size_t)w >= sizeof out->path) {
        snprintf(err, errlen, "%s: the cache's path or url is longer than %zu bytes", file,
                 sizeof out->path - 1);
        goto out;
    }
    rc = 0;
out:
    cache_config_free(cc);
    yamlx_free(root);
    return rc;
}

static int cache_sqlite_stats(const char *db, int64_t now, char *err, size_t errlen)
{
    struct cache_file_stats st;
    if (cache_file_stats(db, now, &st, err, errlen) != 0)
        return -1;
    cache_print_stats(db, &st);
    cache_print_table_head();
    return cache_file_groups(db, cache_group_line, NULL, err, errlen);
}

static int cache_redis_cmd(const char *verb, const char *url, const char *tenant,
                           const char *feature, int expired, int64_t now, char *err,
                           size_t errlen)
{
    struct cache_redis *r = cache_redis_open(url, CACHE_REDIS_TIMEOUT_MS, err, errlen);
    struct cache_redis_walk w;
    int rc = -1;

    if (!r)
        goto out;
    if (!strcmp(verb, "stats")) {
        struct cache_file_stats st;
        memset(&st, 0, sizeof st);
        if (cache_redis_stats(r, now, &st, &w, err, errlen) != 0)
            goto out;
        cache_print_stats(cache_redis_name(r), &st);
        if (w.others)
            printf("skipped   %ld key%s under slodrill:cache: that %s\n", w.others,
                   w.others == 1 ? "" : "s",
                   w.others == 1 ? "is not a cache entry" : "are not cache entries");
        if (w.capped)
            printf("stopped   after %ld keys (the limit): the figures cover those\n",
                   CACHE_REDIS_MAX_KEYS);
        cache_print_table_head();
        cache_redis_groups(r, cache_group_line, NULL);
        if (w.ungrouped)
            printf("  (more groups not shown: %ld entries in tenant/feature pairs past the "
                   "first %d)\n",
                   w.ungrouped, CACHE_REDIS_MAX_GROUPS);
    } else {
        long n = 0;
        if (cache_redis_purge(r, tenant, feature, expired, now, &n, &w, err, errlen) != 0) {
            if (n > 0)
                printf("purged %ld entr%s from %s before the error\n", n, n == 1 ? "y" : "ies",
                       cache_redis_name(r));
            goto out;
        }
        printf("purged %ld entr%s from %s\n", n, n == 1 ? "y" : "ies", cache_redis_name(r));
        if (w.capped)
            printf("stopped after %ld keys (the limit): run purge again for the rest\n",
                   CACHE_REDIS_MAX_KEYS);
    }
    rc = 0;
out:
    cache_redis_close(r);
    return rc;
}

int cmd_cache(int argc, char **argv)
{
    const char *verb = NULL, *db = NULL, *config = NULL, *redis = NULL, *tenant = NULL,
               *feature = NULL;
    struct cache_store store = {"", ""};
    char err[1024];
    int i, expired = 0;
    int64_t now = (int64_t)(clock_wall_us() / 1000);

    for (i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(cache_usage, stdout);
            return 0;
        } else if (!strcmp(argv[i], "--config") && i + 1 < argc) {
            config = argv[++i];
        } else if (!strcmp(argv[i], "--redis") && i + 1 < argc) {
            redis = argv[++i];
        } else if (!strcmp(argv[i], "--tenant") && i + 1 < argc) {
            tenant = argv[++i];
        } else if (!strcmp(argv[i], "--feature") && i + 1 < argc) {
            feature = argv[++i];
        } else if (!strcmp(argv[i], "--expired")) {
            expired = 1;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "slodrill cache: unknown option '%s'\n\n%s", argv[i], cache_usage);
            return 2;
        } else if (!verb) {
            verb = argv[i];
        } else if (!db) {
            db = argv[i];
        } else {
            fprintf(stderr, "slodrill cache: unexpected argument '%s'\n\n%s", argv[i],
                    cache_usage);
            return 2;
        }
    }
    if (!verb || (strcmp(verb, "stats") && strcmp(verb, "purge")) ||
        (!!db + !!config + !!redis) != 1) {
        fputs(cache_usage, stderr);
        return 2;
    }
    if (config) {
        if (cache_store_from_config(config, &store, err, sizeof err) != 0)
            goto fail;
        if (store.redis_url[0])
            redis = store.redis_url;
        else
            db = store.path;
    }
    if (redis) {
        if (cache_redis_cmd(verb, redis, tenant, feature, expired, now, err, sizeof err) != 0)
            goto fail;
    } else if (!strcmp(verb, "stats")) {
        if (cache_sqlite_stats(db, now, err, sizeof err) != 0)
            goto fail;
    } else {
        long n = 0;
        if (cache_file_purge(db, tenant, feature, expired, now, &n, err, sizeof err) != 0)
            goto fail;
        printf("purged %ld entr%s from %s\n", n, n == 1 ? "y" : "ies", db);
    }
    return 0;
fail:
    fprintf(stderr, "slodrill cache: %s\n", err);
    return 2;
}
