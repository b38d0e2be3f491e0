/* cmd_cache.c -- `slodrill cache stats|purge`: the router's answer cache, read from its SQLite file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/yamlx.h"
#include "harness/commands.h"
#include "router/cache.h"

static const char cache_usage[] =
    "usage: slodrill cache stats (CACHE_DB | --config ROUTER_CONFIG)\n"
    "       slodrill cache purge (CACHE_DB | --config ROUTER_CONFIG) [--tenant T] [--feature F]\n"
    "                            [--expired]\n"
    "\n"
    "The router's write-through cache (docs/cache.md). stats prints entries (live,\n"
    "expired), hits, lookups and the hit rate over the file's life, and entries per\n"
    "tenant and feature. purge deletes entries: all of them, or those of a tenant\n"
    "and/or feature, or with --expired only the expired ones (travel mode serves\n"
    "those while they are younger than max_stale: purge them to stop it).\n"
    "With --config, the file is the config's cache.path (default slodrill-cache.db).\n"
    "\n"
    "exit codes: 0 done; 2 bad usage or no such cache file.\n";

static void cache_group_line(const char *tenant, const char *feature, long entries, long hits,
                             void *arg)
{
    (void)arg;
    printf("  %-20s %-20s %8ld %8ld\n", tenant && tenant[0] ? tenant : "(none)",
           feature && feature[0] ? feature : "(none)", entries, hits);
}

/* cache.path of a router config (without resolving anything else). */
static int cache_path_from_config(const char *file, char *out, size_t outlen, char *err,
                                  size_t errlen)
{
    struct ynode *root = yamlx_load_file(file, err, errlen);
    const struct ynode *c, *p;
    const char *s = "slodrill-cache.db";
    int rc = -1;
    if (!root)
        return -1;
    c = yamlx_get(root, "cache");
    if (!c) {
        snprintf(err, errlen, "%s: the config has no cache: section", file);
        goto out;
    }
    if ((p = yamlx_get(c, "path")) && yamlx_string(p, &s, err, errlen) != 0)
        goto out;
    snprintf(out, outlen, "%s", s);
    rc = 0;
out:
    yamlx_free(root);
    return rc;
}

int cmd_cache(int argc, char **argv)
{
    const char *verb = NULL, *db = NULL, *config = NULL, *tenant = NULL, *feature = NULL;
    char path[1024], err[1024];
    int i, expired = 0, code = 2;
    int64_t now = (int64_t)(clock_wall_us() / 1000);

    for (i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(cache_usage, stdout);
            return 0;
        } else if (!strcmp(argv[i], "--config") && i + 1 < argc) {
            config = argv[++i];
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
    if (!verb || (strcmp(verb, "stats") && strcmp(verb, "purge")) || (!db == !config)) {
        fputs(cache_usage, stderr);
        return 2;
    }
    if (config) {
        if (cache_path_from_config(config, path, sizeof path, err, sizeof err) != 0) {
            fprintf(stderr, "slodrill cache: %s\n", err);
            return 2;
        }
        db = path;
    }
    if (!strcmp(verb, "stats")) {
        struct cache_file_stats st;
        if (cache_file_stats(db, now, &st, err, sizeof err) != 0) {
            fprintf(stderr, "slodrill cache: %s\n", err);
            return 2;
        }
        printf("cache %s\n", db);
        printf("entries   %ld (%ld live, %ld expired), %.1f KiB\n", st.entries, st.live,
               st.expired, (double)st.bytes / 1024.0);
        printf("lookups   %lld: %lld hits, %lld stale (travel mode), %lld misses\n", st.lookups,
               st.hit_count, st.stale, st.misses);
        printf("hit rate  %.1f%%\n",
               st.lookups > 0 ? 100.0 * (double)(st.hit_count + st.stale) / (double)st.lookups
                              : 0.0);
        printf("writes    %lld\n", st.writes);
        printf("\n  %-20s %-20s %8s %8s\n", "tenant", "feature", "entries", "hits");
        if (cache_file_groups(db, cache_group_line, NULL, err, sizeof err) != 0) {
            fprintf(stderr, "slodrill cache: %s\n", err);
            return 2;
        }
        code = 0;
    } else {
        long n = 0;
        if (cache_file_purge(db, tenant, feature, expired, now, &n, err, sizeof err) != 0) {
            fprintf(stderr, "slodrill cache: %s\n", err);
            return 2;
        }
        printf("purged %ld entr%s from %s\n", n, n == 1 ? "y" : "ies", db);
        code = 0;
    }
    return code;
}
