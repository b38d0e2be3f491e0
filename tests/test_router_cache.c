/* test_router_cache.c -- the write-through cache: normalised keys, parameters that change the
 * answer, tenant isolation, TTL and stale reads, queued writes that survive a reopen, feature
 * opt-out, stats and purge, and stream replay and collection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/yamlx.h"
#include "router/cache.h"
#include "router/replay.h"

static char db_path[64];

static struct cache_config *cfg_from(const char *yaml)
{
    char err[512], text[2048];
    struct ynode *root;
    struct cache_config *cfg;
    snprintf(text, sizeof text, "%s", yaml);
    root = yamlx_load_string("test.yaml", text, strlen(text), err, sizeof err);
    if (!root) {
        fprintf(stderr, "%s\n", err);
        return NULL;
    }
    cfg = cache_config_parse(yamlx_get(root, "cache"), err, sizeof err);
    if (!cfg)
        fprintf(stderr, "%s\n", err);
    yamlx_free(root);
    return cfg;
}

static struct cache_config *cfg_default(void)
{
    char yaml[512];
    snprintf(yaml, sizeof yaml,
             "cache:\n  path: %s\n  ttl: 60s\n  max_stale: 1h\n"
             "  volatile_patterns: ['req-[0-9a-f]{6,}', '[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z']\n"
             "  features: {account: {enabled: false}, faq: {ttl: 10m}}\n",
             db_path);
    return cfg_from(yaml);
}

static int setup(void **state)
{
    int fd;
    (void)state;
    snprintf(db_path, sizeof db_path, "/tmp/slodrill-cache-XXXXXX");
    fd = mkstemp(db_path);
    if (fd < 0)
        return -1;
    close(fd);
    unlink(db_path);
    return 0;
}

static int teardown(void **state)
{
    char p[96];
    (void)state;
    unlink(db_path);
    snprintf(p, sizeof p, "%s-wal", db_path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", db_path);
    unlink(p);
    return 0;
}

static void key_of(const struct cache_config *cfg, const char *tenant, const char *body,
                   struct cache_key *k)
{
    cJSON *j = cJSON_Parse(body);
    assert_non_null(j);
    assert_int_equal(cache_key_make(cfg, tenant, "support", "app/chat", j, k), 0);
    cJSON_Delete(j);
}

static void test_normalise(void **state)
{
    struct cache_config *cfg = cfg_default();
    cJSON *m = cJSON_Parse("[{\"role\":\"system\",\"content\":\"  Be   brief.\\n\"},"
                           "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Order "
                           "req-0a1b2c3d at 2025-08-01T10:00:00.123Z\\t is late\"}]}]");
    char *s;
    (void)state;
    assert_non_null(cfg);
    s = cache_normalise_prompt(cfg, m);
    assert_non_null(s);
    assert_string_equal(s, "system: Be brief.\nuser: Order at is late\n");
    free(s);
    cJSON_Delete(m);
    cache_config_free(cfg);
}

static void test_key_params(void **state)
{
    struct cache_config *cfg = cfg_default();
    struct cache_key a, b;
    (void)state;
    key_of(cfg, "acme",
           "{\"model\":\"app/chat\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi  there\"}],"
           "\"temperature\":0}",
           &a);
    /* stream, user and whitespace do not change the key; order of members neither */
    key_of(cfg, "acme",
           "{\"stream\":true,\"user\":\"u1\",\"temperature\":0,\"model\":\"x\",\"messages\":"
           "[{\"role\":\"user\",\"content\":\" Hi there \"}]}",
           &b);
    assert_string_equal(a.hash, b.hash);
    cache_key_cleanup(&b);
    /* temperature does */
    key_of(cfg, "acme",
           "{\"model\":\"app/chat\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi there\"}],"
           "\"temperature\":0.7}",
           &b);
    assert_string_not_equal(a.hash, b.hash);
    cache_key_cleanup(&b);
    /* another tenant: another key */
    key_of(cfg, "globex",
           "{\"model\":\"app/chat\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi there\"}],"
           "\"temperature\":0}",
           &b);
    assert_string_not_equal(a.hash, b.hash);
    cache_key_cleanup(&b);
    cache_key_cleanup(&a);
    cache_config_free(cfg);
}

static const char answer[] =
    "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"created\":1,\"model\":\"gpt-4o-mini\","
    "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"Your order ships "
    "tomorrow, tracking follows by mail.\"},\"finish_reason\":\"stop\"}],"
    "\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":9,\"total_tokens\":21}}";

static void test_store_tenants_ttl(void **state)
{
    struct cache_config *cfg = cfg_default();
    struct cache *c;
    struct cache_key k, other;
    struct cache_entry e;
    struct cache_counts n;
    char err[256];
    const char *body = "{\"model\":\"app/chat\",\"messages\":[{\"role\":\"user\",\"content\":\"Where "
                       "is my order?\"}]}";
    (void)state;
    assert_non_null(cfg);
    c = cache_open(cfg, err, sizeof err);
    assert_non_null(c);
    key_of(cfg, "acme", body, &k);
    key_of(cfg, "globex", body, &other);
    assert_int_equal(cache_get(c, &k, 1000, 1, &e), CACHE_MISS);
    assert_int_equal(cache_put(c, &k, answer, strlen(answer), 0.0001, 1000, 60000), 0);
    /* read from the queue before any flush */
    assert_int_equal(cache_get(c, &k, 2000, 0, &e), CACHE_HIT);
    assert_int_equal(e.len, strlen(answer));
    assert_memory_equal(e.answer, answer, e.len);
    cache_entry_cleanup(&e);
    /* never across tenants */
    assert_int_equal(cache_get(c, &other, 2000, 1, &e), CACHE_MISS);
    assert_int_equal(cache_flush(c, err, sizeof err), 0);
    assert_int_equal(cache_pending(c), 0);
    assert_int_equal(cache_get(c, &k, 3000, 0, &e), CACHE_HIT);
    cache_entry_cleanup(&e);
    assert_int_equal(cache_get(c, &other, 3000, 1, &e), CACHE_MISS);
    /* expired: a miss, unless stale reads are allowed (travel mode) within max_stale */
    assert_int_equal(cache_get(c, &k, 61001, 0, &e), CACHE_MISS);
    assert_int_equal(cache_get(c, &k, 61001, 1, &e), CACHE_STALE);
    assert_true(e.cost_usd > 0.00009 && e.cost_usd < 0.00011);
    cache_entry_cleanup(&e);
    assert_int_equal(cache_get(c, &k, 1000 + 3600001, 1, &e), CACHE_MISS);
    cache_counts_get(c, &n);
    assert_int_equal(n.hits, 2);
    assert_int_equal(n.stale, 1);
    assert_int_equal(n.writes, 1);
    cache_close(c);
    /* a reopened store still has it */
    c = cache_open(cfg, err, sizeof err);
    assert_non_null(c);
    assert_int_equal(cache_get(c, &k, 4000, 0, &e), CACHE_HIT);
    cache_entry_cleanup(&e);
    cache_close(c);
    cache_key_cleanup(&k);
    cache_key_cleanup(&other);
    cache_config_free(cfg);
}

static void test_features(void **state)
{
    struct cache_config *cfg = cfg_default();
    (void)state;
    assert_int_equal(cache_feature_enabled(cfg, "support"), 1);
    assert_int_equal(cache_feature_enabled(cfg, "account"), 0);
    assert_int_equal(cache_feature_enabled(cfg, NULL), 1);
    assert_int_equal(cache_feature_ttl_ms(cfg, "faq"), 600000);
    assert_int_equal(cache_feature_ttl_ms(cfg, "support"), 60000);
    cache_config_free(cfg);
}

static void test_bad_config(void **state)
{
    (void)state;
    assert_null(cfg_from("cache:\n  volatile_patterns: ['a(']\n"));
    assert_null(cfg_from("cache:\n  volatile_patterns: ['x*']\n"));
    assert_null(cfg_from("cache:\n  tll: 5s\n"));
    assert_null(cfg_from("cache:\n  backend: memcached\n"));
}

static void group_cb(const char *tenant, const char *feature, long entries, long hits, void *arg)
{
    char *out = arg;
    size_t off = strlen(out);
    snprintf(out + off, 256 - off, "%s/%s=%ld,%ld;", tenant, feature, entries, hits);
}

static void test_file_stats_purge(void **state)
{
    struct cache_config *cfg = cfg_default();
    struct cache *c;
    struct cache_key k1, k2;
    struct cache_entry e;
    struct cache_file_stats st;
    char err[256], groups[256] = "";
    long deleted;
    (void)state;
    c = cache_open(cfg, err, sizeof err);
    assert_non_null(c);
    key_of(cfg, "acme", "{\"messages\":[{\"role\":\"user\",\"content\":\"one\"}]}", &k1);
    key_of(cfg, "globex", "{\"messages\":[{\"role\":\"user\",\"content\":\"two\"}]}", &k2);
    assert_int_equal(cache_put(c, &k1, answer, strlen(answer), -1, 1000, 1000), 0);
    assert_int_equal(cache_put(c, &k2, answer, strlen(answer), -1, 1000, 100000), 0);
    assert_int_equal(cache_get(c, &k2, 1500, 0, &e), CACHE_HIT);
    cache_entry_cleanup(&e);
    assert_int_equal(cache_get(c, &k1, 1500, 0, &e), CACHE_HIT);
    cache_entry_cleanup(&e);
    assert_int_equal(cache_get(c, &k2, 1500, 0, &e), CACHE_HIT);
    cache_entry_cleanup(&e);
    cache_close(c);
    assert_int_equal(cache_file_stats(db_path, 5000, &st, err, sizeof err), 0);
    assert_int_equal(st.entries, 2);
    assert_int_equal(st.live, 1);
    assert_int_equal(st.expired, 1);
    assert_int_equal(st.lookups, 3);
    assert_int_equal(st.hit_count, 3);
    assert_int_equal(cache_file_groups(db_path, group_cb, groups, err, sizeof err), 0);
    assert_string_equal(groups, "acme/support=1,1;globex/support=1,2;");
    assert_int_equal(cache_file_purge(db_path, NULL, NULL, 1, 5000, &deleted, err, sizeof err), 0);
    assert_int_equal(deleted, 1);
    assert_int_equal(cache_file_purge(db_path, "globex", NULL, 0, 5000, &deleted, err, sizeof err),
                     0);
    assert_int_equal(deleted, 1);
    assert_int_equal(cache_file_stats(db_path, 5000, &st, err, sizeof err), 0);
    assert_int_equal(st.entries, 0);
    assert_int_equal(cache_file_stats("/nonexistent/x.db", 0, &st, err, sizeof err), -1);
    cache_key_cleanup(&k1);
    cache_key_cleanup(&k2);
    cache_config_free(cfg);
}

static void test_replay_roundtrip(void **state)
{
    struct buf out;
    struct replay_acc *acc;
    const char *p;
    char *again, *plain;
    int chunks = 0, usage_chunks = 0, done = 0;
    cJSON *j;
    (void)state;
    buf_init(&out, 0);
    assert_int_equal(replay_stream(answer, strlen(answer), "sdr-1", 42, 1, 8, &out), 0);
    acc = replay_acc_new(0);
    for (p = out.data; p && *p;) {
        const char *eol = strstr(p, "\n\n");
        assert_non_null(eol);
        assert_true(!strncmp(p, "data: ", 6));
        if (!strncmp(p + 6, "[DONE]", 6)) {
            done++;
        } else {
            cJSON *c = cJSON_ParseWithLength(p + 6, (size_t)(eol - p - 6));
            const cJSON *ch;
            assert_non_null(c);
            assert_string_equal(cJSON_GetObjectItem(c, "id")->valuestring, "sdr-1");
            ch = cJSON_GetObjectItem(c, "choices");
            if (cJSON_GetArraySize(ch) == 0) {
                usage_chunks++;
                assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(c, "usage"), "cost")->valueint, 0);
            }
            replay_acc_chunk(acc, c);
            chunks++;
            cJSON_Delete(c);
        }
        p = eol + 2;
    }
    assert_int_equal(done, 1);
    assert_int_equal(usage_chunks, 1);
    assert_true(chunks >= 6); /* role, several pieces of 8 bytes, finish, usage */
    again = replay_acc_answer(acc);
    assert_non_null(again);
    j = cJSON_Parse(again);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(
                            cJSON_GetObjectItem(j, "choices"), 0), "message"), "content")->valuestring,
                        "Your order ships tomorrow, tracking follows by mail.");
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "usage"), "completion_tokens")->valueint, 9);
    cJSON_Delete(j);
    free(again);
    replay_acc_free(acc);
    plain = replay_plain(answer, strlen(answer), "sdr-2", 7);
    assert_non_null(strstr(plain, "\"id\":\"sdr-2\""));
    assert_non_null(strstr(plain, "\"cost\":0"));
    free(plain);
    /* tool calls are not cacheable */
    acc = replay_acc_new(0);
    j = cJSON_Parse("{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"id\":\"x\"}]}}]}");
    replay_acc_chunk(acc, j);
    cJSON_Delete(j);
    assert_null(replay_acc_answer(acc));
    replay_acc_free(acc);
    assert_int_equal(replay_stream("{}", 2, "x", 0, 0, 0, &out), -1);
    buf_cleanup(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_normalise, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_params, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_tenants_ttl, setup, teardown),
        cmocka_unit_test_setup_teardown(test_features, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_stats_purge, setup, teardown),
        cmocka_unit_test(test_replay_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
