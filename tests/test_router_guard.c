/* test_router_guard.c -- budgets and the cache inside the running router, between libcurl and
 * two real fake providers: cache hits (plain and replayed as a stream), tenant isolation,
 * travel mode's stale answers when every provider fails, the rate cap's 429 and retry-after,
 * a budget rejection in OpenAI's format, max_tokens capped, a tenant's monthly cap with its
 * threshold event, and the ledger written for the next start. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "router/ledger.h"
#include "test_router_util.h"

static char dir[64];
static char yaml[4096];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/slodrill-guard-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[128];
    (void)state;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void make_yaml(const char *extra)
{
    snprintf(yaml, sizeof yaml,
             "model_list:\n"
             "  - model_name: app/chat\n"
             "    litellm_params: {model: openai/gpt-4o, api_base: os.environ/P_BASE,\n"
             "                     api_key: os.environ/P_KEY, order: 1}\n"
             "    model_info: {id: primary}\n"
             "  - model_name: app/chat\n"
             "    litellm_params: {model: openai/gpt-4o, api_base: os.environ/S_BASE,\n"
             "                     api_key: os.environ/S_KEY, order: 2}\n"
             "    model_info: {id: secondary}\n"
             "  - model_name: app/mini\n"
             "    litellm_params: {model: openai/gpt-4o-mini, api_base: os.environ/P_BASE,\n"
             "                     api_key: os.environ/P_KEY}\n"
             "    model_info: {id: mini}\n"
             "router_settings: {num_retries: 0, allowed_fails: 100}\n"
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
}

static void fail_all(struct rw *w)
{
    struct fault_spec f;
    fault_spec_defaults(&f, FAULT_HTTP_ERROR);
    f.status = 503;
    assert_int_equal(fake_fault_add(w->primary, &f), 0);
    assert_int_equal(fake_fault_add(w->secondary, &f), 0);
}

static const char *body(const char *tenant, const char *prompt, int stream)
{
    static char b[4096];
    snprintf(b, sizeof b,
             "{\"model\":\"app/chat\",\"stream\":%s,\"metadata\":{\"tenant\":\"%s\","
             "\"feature\":\"support\"},\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}]}",
             stream ? "true" : "false", tenant, prompt);
    return b;
}

static uint64_t fake_requests(struct fake *f)
{
    struct fake_stats s;
    fake_stats_get(f, &s);
    return s.requests;
}

static void cache_hits_and_streams(void **state)
{
    struct rw w;
    struct rw_reply r;
    char extra[256], v[128], c1[2048];
    cJSON *ev;
    int n;
    (void)state;
    snprintf(extra, sizeof extra, "cache: {path: %s/cache.db, ttl: 60s}\n", dir);
    start(&w, extra);
    rw_request(&w, "/v1/chat/completions", body("acme", "Where is my order?", 0), NULL, 5000, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(rw_hdr(&r, "x-slodrill-cache", v, sizeof v), "miss");
    snprintf(c1, sizeof c1, "%s", r.body);
    rw_reply_free(&r);
    /* the same prompt, whitespace aside: from the cache, free, no upstream call */
    n = (int)fake_requests(w.primary);
    rw_request(&w, "/v1/chat/completions", body("acme", "  Where is   my order? ", 0), NULL, 5000,
               &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(rw_hdr(&r, "x-slodrill-cache", v, sizeof v), "hit");
    assert_string_equal(rw_hdr(&r, "x-slodrill-cost-usd", v, sizeof v), "0.00000000");
    assert_string_equal(rw_hdr(&r, "x-slodrill-deployment", v, sizeof v), "cache");
    assert_int_equal((int)fake_requests(w.primary), n);
    {
        cJSON *a = cJSON_Parse(c1), *b2 = cJSON_Parse(r.body);
        const char *t1 = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(
                             cJSON_GetObjectItem(a, "choices"), 0), "message"), "content")->valuestring;
        const char *t2 = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(
                             cJSON_GetObjectItem(b2, "choices"), 0), "message"), "content")->valuestring;
        assert_string_equal(t1, t2);
        cJSON_Delete(a);
        cJSON_Delete(b2);
    }
    rw_reply_free(&r);
    /* a streamed request for it: replayed as a proper stream */
    rw_request(&w, "/v1/chat/completions", body("acme", "Where is my order?", 1), NULL, 5000, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(rw_hdr(&r, "x-slodrill-cache", v, sizeof v), "hit");
    assert_non_null(strstr(rw_hdr(&r, "content-type", v, sizeof v), "text/event-stream"));
    ev = rw_sse_data(r.body);
    assert_true(cJSON_GetArraySize(ev) >= 4);
    assert_string_equal(cJSON_GetArrayItem(ev, cJSON_GetArraySize(ev) - 1)->valuestring, "[DONE]");
    cJSON_Delete(ev);
    rw_reply_free(&r);
    /* another tenant never sees acme's answer */
    rw_request(&w, "/v1/chat/completions", body("globex", "Where is my order?", 0), NULL, 5000, &r);
    assert_string_equal(rw_hdr(&r, "x-slodrill-cache", v, sizeof v), "miss");
    rw_reply_free(&r);
    /* a streamed answer is written through too */
    rw_request(&w, "/v1/chat/completions", body("acme", "Cancel it", 1), NULL, 5000, &r);
    assert_string_equal(rw_hdr(&r, "x-slodrill-cache", v, sizeof v), "miss");
    rw_reply_free(&r);
    rw_request(&w, "/v1/chat/completions", body("acme", "Cancel it", 0), NULL, 5000, &r);
    assert_string_equal(rw_hdr(&r, "x-slodrill-cache", v, sizeof v), "hit");
    assert_non_null(strstr(r.body, "chat.completion"));
    rw_reply_free(&r);
    rw_stop(&w);
}

static void travel_mode_serves_stale(void **state)
{
    struct rw w;
    struct rw_reply r;
    char extra[256], v[128];
    cJSON *ev;
    (void)state;
    snprintf(extra, sizeof extra, "cache: {path: %s/cache.db, ttl: 1s, max_stale: 1h}\n", dir);
    start(&w, extra);
    rw_request(&w, "/v1/chat/completions", body("acme", "Opening hours?", 1), NULL, 5000, &r);
    assert_int_equal(r.status, 200);
    rw_reply_free(&r);
    usleep(1200 * 1000); /* the entry expires */
    fail_all(&w);
    rw_request(&w, "/v1/chat/completions", body("acme", "Opening hours?", 1), NULL, 5000, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(rw_hdr(&r, "x-slodrill-cache", v, sizeof v), "stale");
    assert_string_equal(rw_hdr(&r, "x-slodrill-attempts", v, sizeof v), "2");
    ev = rw_sse_data(r.body);
    assert_string_equal(cJSON_GetArrayItem(ev, cJSON_GetArraySize(ev) - 1)->valuestring, "[DONE]");
    cJSON_Delete(ev);
    rw_reply_free(&r);
    /* nothing cached for this prompt: the error, as before */
    rw_request(&w, "/v1/chat/completions", body("acme", "Something new", 0), NULL, 5000, &r);
    assert_int_equal(r.status, 503);
    rw_reply_free(&r);
    /* another tenant: no stale answer of acme's either */
    rw_request(&w, "/v1/chat/completions", body("globex", "Opening hours?", 0), NULL, 5000, &r);
    assert_int_equal(r.status, 503);
    rw_reply_free(&r);
    rw_stop(&w);
}

static void rate_cap_429(void **state)
{
    struct rw w;
    struct rw_reply r;
    char extra[512], v[128];
    int i, limited = 0;
    (void)state;
    snprintf(extra, sizeof extra,
             "budgets:\n  ledger: %s/ledger.db\n  tenants:\n    acme: {rate: 1/s, burst: 2}\n",
             dir);
    start(&w, extra);
    for (i = 0; i < 3; i++) {
        rw_request(&w, "/v1/chat/completions", body("acme", "hi", 0), NULL, 5000, &r);
        if (r.status == 429) {
            limited++;
            assert_non_null(strstr(r.body, "rate_limit_exceeded"));
            assert_string_equal(rw_hdr(&r, "retry-after", v, sizeof v), "1");
            assert_true(strtol(rw_hdr(&r, "retry-after-ms", v, sizeof v), NULL, 10) > 0);
        }
        rw_reply_free(&r);
    }
    assert_int_equal(limited, 1);
    /* other tenants have their own bucket (no cap for them) */
    rw_request(&w, "/v1/chat/completions", body("globex", "hi", 0), NULL, 5000, &r);
    assert_int_equal(r.status, 200);
    rw_reply_free(&r);
    rw_stop(&w);
}

static void ladder_and_monthly_cap(void **state)
{
    struct rw w;
    struct rw_reply r;
    char extra[1024], v[256], path[128], err[256], big[3000];
    struct ledger *l;
    double spent;
    (void)state;
    snprintf(extra, sizeof extra,
             "budgets:\n  ledger: %s/ledger.db\n"
             "  features:\n    support:\n      max_input_tokens: 200\n"
             "      max_output_tokens: 50\n      ladder: [cap_max_tokens, reject]\n"
             "  tenants:\n    tiny: {monthly_usd: 0.000001}\n",
             dir);
    start(&w, extra);
    /* max_tokens 500 is capped to 50 */
    rw_request(&w, "/v1/chat/completions",
               "{\"model\":\"app/chat\",\"max_tokens\":500,\"metadata\":{\"feature\":\"support\"},"
               "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
               NULL, 5000, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(rw_hdr(&r, "x-slodrill-budget", v, sizeof v), "cap_max_tokens:50");
    rw_reply_free(&r);
    /* a prompt over max_input_tokens with no trim rung: rejected, OpenAI's format */
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    rw_request(&w, "/v1/chat/completions", body("acme", big, 0), NULL, 5000, &r);
    assert_int_equal(r.status, 400);
    assert_string_equal(rw_hdr(&r, "x-slodrill-budget", v, sizeof v), "rejected");
    assert_non_null(strstr(r.body, "\"code\":\"budget_exceeded\""));
    assert_non_null(strstr(r.body, "max_input_tokens"));
    rw_reply_free(&r);
    /* tenant tiny: the first answer spends the cap, the next is refused */
    rw_request(&w, "/v1/chat/completions", body("tiny", "hello", 0), NULL, 5000, &r);
    assert_int_equal(r.status, 200);
    rw_reply_free(&r);
    rw_request(&w, "/v1/chat/completions", body("tiny", "hello again", 0), NULL, 5000, &r);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "tenant 'tiny' has spent"));
    rw_reply_free(&r);
    rw_stop(&w);
    assert_non_null(strstr(w.events, "budget_threshold:tenant:tiny;"));
    /* the ledger outlives the router */
    snprintf(path, sizeof path, "%s/ledger.db", dir);
    l = ledger_open(path, err, sizeof err);
    assert_non_null(l);
    {
        char month[8];
        ledger_month((int64_t)(clock_wall_us() / 1000), month, sizeof month);
        spent = ledger_spent(l, "tenant", "tiny", month);
    }
    assert_true(spent > 0.000001);
    ledger_close(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(cache_hits_and_streams, setup, teardown),
        cmocka_unit_test_setup_teardown(travel_mode_serves_stale, setup, teardown),
        cmocka_unit_test_setup_teardown(rate_cap_429, setup, teardown),
        cmocka_unit_test_setup_teardown(ladder_and_monthly_cap, setup, teardown),
    };
    rw_global_init();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
