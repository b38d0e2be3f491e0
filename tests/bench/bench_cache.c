/* bench_cache.c -- what a cache lookup adds to a request: key (normalise, pattern strip,
 * digest) plus the SQLite read of a hit, on a store of 10,000 entries. Prints
 * "cache_lookup_median_us X", "cache_lookup_p95_us X", "cache_lookup_p99_us X". */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/yamlx.h"
#include "router/cache.h"

#define N 10000

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static cJSON *request(int i)
{
    char b[512];
    snprintf(b, sizeof b,
             "{\"model\":\"app/chat\",\"temperature\":0,\"messages\":[{\"role\":\"system\","
             "\"content\":\"You are a concise support agent for an online store.\"},{\"role\":"
             "\"user\",\"content\":\"Question %d about my order req-0a1b2c3d4e, sent today?\"}]}",
             i);
    return cJSON_Parse(b);
}

int main(int argc, char **argv)
{
    static double t[N];
    const char *dir = argc > 1 ? argv[1] : "/tmp";
    const char *ans = "{\"object\":\"chat.completion\",\"choices\":[{\"index\":0,\"message\":{"
                      "\"role\":\"assistant\",\"content\":\"A fine answer of a few dozen words, "
                      "as support answers go.\"},\"finish_reason\":\"stop\"}]}";
    char err[512], y[512], path[400];
    struct ynode *root;
    struct cache_config *cfg;
    struct cache *c;
    int i, rc = 1;

    snprintf(path, sizeof path, "%s/bench-cache.db", dir);
    unlink(path);
    snprintf(y, sizeof y, "cache: {path: '%s', volatile_patterns: ['req-[0-9a-f]{8,}']}\n", path);
    if (!(root = yamlx_load_string("bench", y, strlen(y), err, sizeof err)) ||
        !(cfg = cache_config_parse(yamlx_get(root, "cache"), err, sizeof err)) ||
        !(c = cache_open(cfg, err, sizeof err))) {
        fprintf(stderr, "bench_cache: %s\n", err);
        return 1;
    }
    for (i = 0; i < N; i++) { /* fill */
        struct cache_key k;
        cJSON *j = request(i);
        if (cache_key_make(cfg, "acme", "faq", "app/chat", j, &k) == 0 &&
            cache_put(c, &k, ans, strlen(ans), 0.001, 1000, 3600000) != 0)
            fprintf(stderr, "bench_cache: put failed\n");
        cache_key_cleanup(&k);
        cJSON_Delete(j);
    }
    if (cache_flush(c, err, sizeof err) != 0) {
        fprintf(stderr, "bench_cache: %s\n", err);
        goto out;
    }
    for (i = 0; i < N; i++) { /* every lookup a hit, in another order */
        struct cache_key k;
        struct cache_entry e;
        cJSON *j = request((i * 7919) % N);
        uint64_t t0 = clock_mono_us();
        if (cache_key_make(cfg, "acme", "faq", "app/chat", j, &k) != 0 ||
            cache_get(c, &k, 2000, 0, &e) != CACHE_HIT) {
            fprintf(stderr, "bench_cache: lookup %d missed\n", i);
            goto out;
        }
        t[i] = (double)(clock_mono_us() - t0);
        cache_entry_cleanup(&e);
        cache_key_cleanup(&k);
        cJSON_Delete(j);
    }
    qsort(t, N, sizeof t[0], cmp);
    printf("cache_lookup_median_us %.1f\ncache_lookup_p95_us %.1f\ncache_lookup_p99_us %.1f\n",
           t[N / 2], t[N * 95 / 100], t[N * 99 / 100]);
    rc = 0;
out:
    cache_close(c);
    cache_config_free(cfg);
    yamlx_free(root);
    unlink(path);
    return rc;
}
