/* test_router_redis.c -- two router instances sharing one real redis-server: a cache entry
 * written by one is a hit on the other (never across tenants), a tenant's spend on one is
 * refused on the other at its cap, one shared rate bucket, a cooldown started by one is seen
 * (and cleared) by the other, a new instance reads back a running cooldown, and with Redis
 * gone a router still answers (local fallback) within its deadline. Also Redis URLs and
 * config errors. Skips when redis-server is not installed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <hiredis/hiredis.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "router/kv.h"
#include "router/ledger.h"
#include "test_router_util.h"

static char dir[64];
static char sock[128];
static char yaml[8192];
static pid_t redis_pid = -1;

static int redis_ping(void)
{
    struct timeval tv = {0, 200000};
    redisContext *c = redisConnectUnixWithTimeout(sock, tv);
    redisReply *r;
    int ok = 0;
    if (!c || c->err) {
        if (c)
            redisFree(c);
        return 0;
    }
    if ((r = redisCommand(c, "PING"))) {
        ok = r->type == REDIS_REPLY_STATUS;
        freeReplyObject(r);
    }
    redisFree(c);
    return ok;
}

/* A command's integer or string reply as text, for asserts ("" when nil/error). */
static void redis_get(char *out, size_t n, const char *fmt, const char *a, const char *b)
{
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectUnixWithTimeout(sock, tv);
    redisReply *r = NULL;
    out[0] = '\0';
    if (c && !c->err && (r = redisCommand(c, fmt, a, b))) {
        if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS)
            snprintf(out, n, "%s", r->str);
        else if (r->type == REDIS_REPLY_INTEGER)
            snprintf(out, n, "%lld", r->integer);
    }
    if (r)
        freeReplyObject(r);
    if (c)
        redisFree(c);
}

static int redis_start(void)
{
    int i;
    if (access("/usr/bin/redis-server", X_OK) != 0)
        return -1;
    redis_pid = fork();
    if (redis_pid < 0)
        return -1;
    if (redis_pid == 0) {
        char conf[256];
        FILE *devnull = freopen("/dev/null", "w", stdout);
        (void)devnull;
        snprintf(conf, sizeof conf, "%s", dir);
        execl("/usr/bin/redis-server", "redis-server", "--port", "0", "--unixsocket", sock,
              "--unixsocketperm", "700", "--save", "", "--appendonly", "no", "--dir", conf,
              (char *)NULL);
        _exit(127);
    }
    for (i = 0; i < 100; i++) { /* 5 s at most */
        if (redis_ping())
            return 0;
        usleep(50000);
    }
    return -1;
}

static void redis_stop(void)
{
    int st, i;
    if (redis_pid <= 0)
        return;
    kill(redis_pid, SIGTERM);
    for (i = 0; i < 100 && waitpid(redis_pid, &st, WNOHANG) == 0; i++)
        usleep(20000);
    if (i == 100) {
        kill(redis_pid, SIGKILL);
        waitpid(redis_pid, &st, 0);
    }
    redis_pid = -1;
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/slodrill-redis-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(sock, sizeof sock, "%s/redis.sock", dir);
    return 0;
}

static int teardown(void **state)
{
    char cmd[128];
    (void)state;
    redis_stop();
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* A fresh server for each test. */
static int test_setup(void **state)
{
    (void)state;
    redis_stop();
    unlink(sock);
    return 0;
}

static void need_redis(void)
{
    if (redis_start() != 0) {
        print_message("redis-server is not installed or did not start: skipped\n");
        skip();
    }
}

static void make_yaml(const char *extra)
{
    snprintf(yaml, sizeof yaml,
             "model_list:\n"
             "  - model_name: app/chat\n"
             "    litellm_params: {model: openai/gpt-4o, api_base: os.environ/P_BASE,\n"
             "                     api_key: os.environ/P_KEY, order: 1,\n"
             "                     input_cost_per_token: 0.001, output_cost_per_token: 0.001}\n"
             "    model_info: {id: primary}\n"
             "  - model_name: app/chat\n"
             "    litellm_params: {model: openai/gpt-4o, api_base: os.environ/S_BASE,\n"
             "                     api_key: os.environ/S_KEY, order: 2,\n"
             "                     input_cost_per_token: 0.001, output_cost_per_token: 0.001}\n"
             "    model_info: {id: secondary}\n"
             "%s",
             extra);
}

static void start(struct rw *w, const char *extra)
{
    struct fake_spec ps, ss;
    make_yaml(extra);
    rw_spec(&ps, "primary", FAKE_OPENAI);
    rw_spec(&ss, "secondary", FAKE_OPENAI);
    assert_int_equal(rw_start(w, yaml, &ps, &ss), 0);
    usleep(100000); /* the instance connects to Redis */
}

static const char *body(const char *tenant, const char *prompt)
{
    static char b[1024];
    snprintf(b, sizeof b,
             "{\"model\":\"app/chat\",\"metadata\":{\"tenant\":\"%s\",\"feature\":\"faq\"},"
             "\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}]}",
             tenant, prompt);
    return b;
}

static const char *content(const struct rw_reply *r, char *out, size_t n)
{
    cJSON *j = cJSON_Parse(r->body);
    cJSON *c = cJSON_GetObjectItem(
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0), "message"),
        "content");
    snprintf(out, n, "%s", cJSON_IsString(c) ? c->valuestring : "");
    cJSON_Delete(j);
    return out;
}

static uint64_t fake_requests(struct fake *f)
{
    struct fake_stats s;
    fake_stats_get(f, &s);
    return s.requests;
}

static char events_of(struct rw *w, const char *needle)
{
    char found;
    pthread_mutex_lock(&w->mu);
    found = strstr(w->events, needle) != NULL;
    pthread_mutex_unlock(&w->mu);
    return found;
}

static const char cache_redis[] = "cache: {backend: redis, url: 'unix://%s', ttl: 1h}\n";

static void shared_cache_entry(void **state)
{
    struct rw a, b;
    struct rw_reply r;
    char h[128], first[512], second[512], extra[512], v[64];
    int i;
    (void)state;
    need_redis();
    snprintf(extra, sizeof extra, cache_redis, sock);
    start(&a, extra);
    start(&b, extra);

    rw_request(&a, "/v1/chat/completions", body("acme", "Where is my order?"), NULL, 5000, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(rw_hdr(&r, "x-slodrill-cache", h, sizeof h), "miss");
    content(&r, first, sizeof first);
    assert_true(first[0] != '\0');
    rw_reply_free(&r);

    /* the other instance answers it from the shared entry, without its providers */
    for (i = 0; i < 20; i++) {
        rw_request(&b, "/v1/chat/completions", body("acme", "  Where is   my order? "), NULL,
                   5000, &r);
        if (!strcmp(rw_hdr(&r, "x-slodrill-cache", h, sizeof h), "hit"))
            break;
        rw_reply_free(&r);
        usleep(50000);
    }
    assert_int_equal(r.status, 200);
    assert_string_equal(rw_hdr(&r, "x-slodrill-cache", h, sizeof h), "hit");
    assert_string_equal(rw_hdr(&r, "x-slodrill-deployment", h, sizeof h), "cache");
    assert_string_equal(rw_hdr(&r, "x-slodrill-cost-usd", h, sizeof h), "0.00000000");
    assert_string_equal(content(&r, second, sizeof second), first);
    rw_reply_free(&r);
    assert_int_equal(fake_requests(b.primary) + fake_requests(b.secondary), i);

    /* never across tenants */
    rw_request(&b, "/v1/chat/completions", body("globex", "Where is my order?"), NULL, 5000, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(rw_hdr(&r, "x-slodrill-cache", h, sizeof h), "miss");
    rw_reply_free(&r);

    /* the counters reach Redis with the next flush */
    usleep(400000);
    redis_get(v, sizeof v, "HGET %s %s", "slodrill:cache:counters", "hits");
    assert_true(strtol(v, NULL, 10) >= 1);
    rw_stop(&a);
    rw_stop(&b);
}

static void shared_spend_and_rate(void **state)
{
    struct rw a, b;
    struct rw_reply r;
    char h[128], extra[1024], v[64], msg[2048];
    int i, refused = 0;
    (void)state;
    need_redis();
    /* one answer costs far more than acme's cap: the next request anywhere is refused */
    snprintf(extra, sizeof extra,
             "budgets:\n"
             "  backend: redis\n"
             "  url: 'unix://%s'\n"
             "  tenants:\n"
             "    acme: {monthly_usd: 0.001}\n"
             "    burst: {rate: 0.5/s, burst: 2}\n",
             sock);
    start(&a, extra);
    start(&b, extra);

    rw_request(&a, "/v1/chat/completions", body("acme", "Hello"), NULL, 5000, &r);
    assert_int_equal(r.status, 200);
    rw_reply_free(&r);
    for (i = 0; i < 20 && !refused; i++) {
        rw_request(&b, "/v1/chat/completions", body("acme", "Hello again"), NULL, 5000, &r);
        if (r.status == 400) {
            refused = 1;
            snprintf(msg, sizeof msg, "%s", r.body);
        }
        rw_reply_free(&r);
        if (!refused)
            usleep(50000);
    }
    assert_true(refused);
    assert_non_null(strstr(msg, "budget_exceeded"));
    assert_non_null(strstr(msg, "tenant 'acme'"));
    {
        char month[8];
        char key[64];
        ledger_month((int64_t)(clock_wall_us() / 1000), month, sizeof month);
        snprintf(key, sizeof key, "slodrill:spend:tenant:%s", month);
        redis_get(v, sizeof v, "HGET %s %s", key, "acme");
        assert_true(strtod(v, NULL) > 0.001);
    }

    /* one bucket for both: 2 requests of burst, then 429 on the other instance */
    rw_request(&a, "/v1/chat/completions", body("burst", "one"), NULL, 5000, &r);
    assert_int_equal(r.status, 200);
    rw_reply_free(&r);
    rw_request(&b, "/v1/chat/completions", body("burst", "two"), NULL, 5000, &r);
    assert_int_equal(r.status, 200);
    rw_reply_free(&r);
    rw_request(&a, "/v1/chat/completions", body("burst", "three"), NULL, 5000, &r);
    assert_int_equal(r.status, 429);
    assert_true(strtol(rw_hdr(&r, "retry-after", h, sizeof h), NULL, 10) >= 1);
    rw_reply_free(&r);
    rw_stop(&a);
    rw_stop(&b);
}

static void shared_cooldowns(void **state)
{
    struct rw a, b, c;
    struct rw_reply r;
    struct fault_spec f;
    char h[128], extra[512];
    int i;
    (void)state;
    need_redis();
    snprintf(extra, sizeof extra,
             "router_settings: {num_retries: 0, cooldown_time: 30,\n"
             "                  slodrill_shared_cooldowns: 'unix://%s'}\n",
             sock);
    start(&a, extra);
    start(&b, extra);

    /* A's primary has a revoked key: A cools it and fails over */
    fault_spec_defaults(&f, FAULT_REVOKE_KEY);
    assert_int_equal(fake_fault_add(a.primary, &f), 0);
    rw_request(&a, "/v1/chat/completions", body("acme", "hi"), NULL, 5000, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(rw_hdr(&r, "x-slodrill-deployment", h, sizeof h), "secondary");
    rw_reply_free(&r);
    assert_true(events_of(&a, "cooldown_start:primary;"));

    /* B hears of it and goes straight to its secondary, one attempt */
    for (i = 0; i < 50 && !events_of(&b, "cooldown_start:primary;"); i++)
        usleep(20000);
    assert_true(events_of(&b, "cooldown_start:primary;"));
    rw_request(&b, "/v1/chat/completions", body("acme", "hi"), NULL, 5000, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(rw_hdr(&r, "x-slodrill-deployment", h, sizeof h), "secondary");
    assert_string_equal(rw_hdr(&r, "x-slodrill-attempts", h, sizeof h), "1");
    rw_reply_free(&r);
    assert_int_equal(fake_requests(b.primary), 0);

    /* an instance started now reads the running cooldown back */
    start(&c, extra);
    for (i = 0; i < 50 && !events_of(&c, "cooldown_start:primary;"); i++)
        usleep(20000);
    assert_true(events_of(&c, "cooldown_start:primary;"));
    rw_request(&c, "/admin/deployments", NULL, NULL, 5000, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "cooldown_reason"));
    rw_reply_free(&r);

    /* an operator's clear on A clears B too */
    rw_request(&a, "/admin/cooldowns/clear", "{}", NULL, 5000, &r);
    assert_int_equal(r.status, 200);
    rw_reply_free(&r);
    for (i = 0; i < 50 && !events_of(&b, "cooldown_end:primary;"); i++)
        usleep(20000);
    assert_true(events_of(&b, "cooldown_end:primary;"));
    rw_request(&b, "/v1/chat/completions", body("acme", "hi again"), NULL, 5000, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(rw_hdr(&r, "x-slodrill-deployment", h, sizeof h), "primary");
    rw_reply_free(&r);
    rw_stop(&a);
    rw_stop(&b);
    rw_stop(&c);
}

static void redis_down_falls_back(void **state)
{
    struct rw a;
    struct rw_reply r;
    char h[128], extra[1024];
    int i, limited = 0;
    (void)state;
    need_redis();
    snprintf(extra, sizeof extra,
             "cache: {backend: redis, url: 'unix://%s'}\n"
             "budgets:\n"
             "  backend: redis\n"
             "  url: 'unix://%s'\n"
             "  tenants: {acme: {rate: 1/s, burst: 2}}\n",
             sock, sock);
    start(&a, extra);
    redis_stop();
    /* answered, not stuck: a miss, and the rate cap from this instance's own bucket */
    for (i = 0; i < 4; i++) {
        rw_request(&a, "/v1/chat/completions", body("acme", "still there?"), NULL, 5000, &r);
        assert_true(r.total_s < 1.0);
        if (r.status == 429)
            limited++;
        else {
            assert_int_equal(r.status, 200);
            assert_string_equal(rw_hdr(&r, "x-slodrill-cache", h, sizeof h), "miss");
        }
        rw_reply_free(&r);
    }
    assert_int_equal(limited, 2);
    rw_stop(&a);
}

static void urls_and_config(void **state)
{
    struct kv_url u;
    char err[512], path[] = "/tmp/slodrill-redis-cfg-XXXXXX";
    struct router_config *cfg;
    FILE *f;
    int fd;
    (void)state;
    assert_int_equal(kv_url_parse("redis://127.0.0.1:6390/2", &u, err, sizeof err), 0);
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 6390);
    assert_int_equal(u.db, 2);
    assert_int_equal(kv_url_parse("redis://:s3cret@cache.internal", &u, err, sizeof err), 0);
    assert_string_equal(u.password, "s3cret");
    assert_string_equal(u.host, "cache.internal");
    assert_int_equal(u.port, 6379);
    assert_int_equal(kv_url_parse("redis://app:pw@[::1]:7000/1", &u, err, sizeof err), 0);
    assert_string_equal(u.user, "app");
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 7000);
    assert_int_equal(kv_url_parse("unix:///run/redis.sock?db=3", &u, err, sizeof err), 0);
    assert_string_equal(u.path, "/run/redis.sock");
    assert_int_equal(u.db, 3);
    assert_int_equal(kv_url_parse("http://127.0.0.1:6379", &u, err, sizeof err), -1);
    assert_non_null(strstr(err, "redis://HOST:PORT/DB"));
    assert_int_equal(kv_url_parse("redis://127.0.0.1:99999", &u, err, sizeof err), -1);

    /* a bad URL in the config is a positioned error */
    make_yaml("cache: {backend: redis, url: 'redis://127.0.0.1:notaport'}\n");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    fputs(yaml, f);
    fclose(f);
    {
        struct rw_env env;
        snprintf(env.p_base, sizeof env.p_base, "http://127.0.0.1:1/v1");
        snprintf(env.s_base, sizeof env.s_base, "http://127.0.0.1:1/v1");
        cfg = router_config_load(path, rw_env_lookup, &env, NULL, NULL, err, sizeof err);
        assert_null(cfg);
        assert_non_null(strstr(err, ":12:30:")); /* at the url */
        assert_non_null(strstr(err, "not a Redis URL"));
        f = fopen(path, "w");
        make_yaml("budgets: {url: 'redis://127.0.0.1:6379/0'}\n");
        fputs(yaml, f);
        fclose(f);
        cfg = router_config_load(path, rw_env_lookup, &env, NULL, NULL, err, sizeof err);
        assert_null(cfg);
        assert_non_null(strstr(err, "add backend: redis"));
    }
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(urls_and_config),
        cmocka_unit_test_setup(shared_cache_entry, test_setup),
        cmocka_unit_test_setup(shared_spend_and_rate, test_setup),
        cmocka_unit_test_setup(shared_cooldowns, test_setup),
        cmocka_unit_test_setup(redis_down_falls_back, test_setup),
    };
    rw_global_init();
    return cmocka_run_group_tests(tests, setup, teardown);
}
