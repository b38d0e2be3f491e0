/* test_router_metrics.c -- GET /metrics as a Prometheus scrape sees it, with the router between
 * two real fakes: a failover is one client request (outcome ok) and two upstream attempts;
 * every edge outcome the alert rules read (client_error, retryable_error, timeout,
 * rate_limited, served_from_cache, rejected_by_budget, cancelled) is counted once per client
 * request under its run-DB name; client-chosen model names cannot grow the series; the edge
 * histograms and cost agree with what the client was told. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <math.h>
#include <sys/stat.h>

#include "test_router_util.h"

static const char *two_yaml =
    "model_list:\n"
    "  - model_name: app/chat\n"
    "    litellm_params:\n"
    "      model: openai/gpt-p\n"
    "      api_base: os.environ/P_BASE\n"
    "      api_key: os.environ/P_KEY\n"
    "      order: 1\n"
    "      input_cost_per_token: 0.000001\n"
    "      output_cost_per_token: 0.000002\n"
    "    model_info: {id: primary}\n"
    "  - model_name: app/chat\n"
    "    litellm_params:\n"
    "      model: openai/gpt-s\n"
    "      api_base: os.environ/S_BASE\n"
    "      api_key: os.environ/S_KEY\n"
    "      order: 2\n"
    "      input_cost_per_token: 0.000003\n"
    "      output_cost_per_token: 0.000004\n"
    "    model_info: {id: secondary}\n"
    "router_settings: {allowed_fails: 100, cooldown_time: 30, stream_timeout: 0.4}\n"
    "general_settings: {master_key: sk-m-1}\n";

#define KEY "Authorization: Bearer sk-m-1"

static const char *stream_body =
    "{\"model\":\"app/chat\",\"stream\":true,"
    "\"messages\":[{\"role\":\"user\",\"content\":\"Hello there, how are you today?\"}]}";

static const char *stream_usage_body =
    "{\"model\":\"app/chat\",\"stream\":true,\"stream_options\":{\"include_usage\":true},"
    "\"messages\":[{\"role\":\"user\",\"content\":\"Hello there, how are you today?\"}]}";

static char dir[64];

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/slodrill-metrics-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    nftw(dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
    return 0;
}

static void start(struct rw *w, const char *extra)
{
    struct fake_spec ps, ss;
    char yaml[4096];
    snprintf(yaml, sizeof yaml, "%s%s", two_yaml, extra ? extra : "");
    rw_spec(&ps, "primary", FAKE_OPENAI);
    rw_spec(&ss, "secondary", FAKE_OPENAI);
    if (rw_start(w, yaml, &ps, &ss) != 0) fail_msg("world did not start");
}

static void add_fault(struct fake *f, const char *text)
{
    struct fault_spec fs;
    char err[256];
    if (fault_spec_parse(text, &fs, err, sizeof err) != 0) fail_msg("fault %s: %s", text, err);
    assert_int_equal(fake_fault_add(f, &fs), 0);
}

/* The value of one sample line "series value" (series with its labels, exactly as exported);
 * -1 when there is no such line. */
static double sample(const char *text, const char *series)
{
    size_t n = strlen(series);
    const char *p = text;
    while ((p = strstr(p, series)) != NULL) {
        if ((p == text || p[-1] == '\n') && p[n] == ' ') return strtod(p + n + 1, NULL);
        p += n;
    }
    return -1;
}

/* Sum of every sample of a metric name (any labels). */
static double sum_of(const char *text, const char *name)
{
    size_t n = strlen(name);
    const char *p = text;
    double s = 0;
    while (p && *p) {
        if (!strncmp(p, name, n) && (p[n] == '{' || p[n] == ' ')) {
            const char *sp = strchr(p, ' ');
            if (p[n] == '{') sp = strstr(p, "} ") ? strstr(p, "} ") + 1 : NULL;
            if (sp) s += strtod(sp + 1, NULL);
        }
        p = strchr(p, '\n');
        if (p) p++;
    }
    return s;
}

static char *scrape(struct rw *w)
{
    struct rw_reply r;
    char *s;
    rw_request(w, "/metrics", NULL, KEY, 5000, &r);
    assert_int_equal(r.status, 200);
    s = r.body;
    r.body = NULL;
    return s;
}

#define REQ(series) "slodrill_requests_total{alias=\"app/chat\",outcome=\"" series "\"}"

/* The brief's case: a 503 on the primary, the secondary answers. One client request, one
 * edge count (ok); two upstream attempts. */
static void failover_is_one_request_two_attempts(void **state)
{
    struct rw w;
    struct rw_reply r;
    char v[64], *m;
    cJSON *data;
    double cost;
    int n;
    (void)state;

    start(&w, NULL);
    add_fault(w.primary, "http_error;status=503");
    rw_request(&w, "/v1/chat/completions", stream_usage_body, KEY, 5000, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(rw_hdr(&r, "x-slodrill-attempts", v, sizeof v), "2");
    data = rw_sse_data(r.body);
    n = cJSON_GetArraySize(data);
    assert_true(n >= 3);
    cost = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(data, n - 2), "usage"),
                               "cost")->valuedouble;
    assert_true(cost > 0);
    cJSON_Delete(data);
    rw_reply_free(&r);

    m = scrape(&w);
    assert_true(sample(m, REQ("ok")) == 1);
    assert_true(sample(m, REQ("retryable_error")) == 0);
    assert_true(sample(m, REQ("timeout")) == 0);
    assert_true(sum_of(m, "slodrill_requests_total") == 1);
    assert_true(sample(m, "slodrill_upstream_attempts_total{deployment=\"primary\",class=\"retryable\"}") == 1);
    assert_true(sample(m, "slodrill_upstream_attempts_total{deployment=\"secondary\",class=\"ok\"}") == 1);
    assert_true(sum_of(m, "slodrill_upstream_attempts_total") == 2);
    /* the edge latency the p95 rule reads: one answered request, under 2.5 s */
    assert_true(sample(m, "slodrill_time_to_first_token_seconds_bucket{alias=\"app/chat\",le=\"2.5\"}") == 1);
    assert_true(sample(m, "slodrill_time_to_first_token_seconds_bucket{alias=\"app/chat\",le=\"+Inf\"}") == 1);
    assert_true(sample(m, "slodrill_time_to_first_token_seconds_count{alias=\"app/chat\"}") == 1);
    assert_true(sample(m, "slodrill_request_duration_seconds_count{alias=\"app/chat\"}") == 1);
    /* what the client was told it cost, and what the deployment's answers cost */
    assert_true(fabs(sample(m, "slodrill_cost_usd_total{alias=\"app/chat\"}") - cost) < 1e-8);
    assert_true(fabs(sample(m, "slodrill_upstream_cost_usd_total{deployment=\"secondary\"}") - cost) < 1e-8);
    assert_true(sample(m, "slodrill_upstream_cost_usd_total{deployment=\"primary\"}") == 0);
    assert_true(sample(m, "slodrill_tokens_total{deployment=\"secondary\",type=\"completion\"}") > 0);
    /* the edge names carry no deployment label: the rules sum them as they are */
    assert_null(strstr(m, "slodrill_requests_total{deployment"));
    assert_null(strstr(m, "slodrill_cost_usd_total{deployment"));
    assert_null(strstr(m, "slodrill_time_to_first_token_seconds_bucket{deployment"));
    assert_non_null(strstr(m, "# TYPE slodrill_requests_total counter\n"));
    assert_non_null(strstr(m, "# TYPE slodrill_time_to_first_token_seconds histogram\n"));
    free(m);
    rw_stop(&w);
}

/* Polls the scrape until series reaches want (the router counts a request when it has
 * finished with it, which may be a moment after the client saw the end). */
static double wait_sample(struct rw *w, const char *series, double want)
{
    double v = -1;
    int i;
    for (i = 0; i < 100; i++) {
        char *m = scrape(w);
        v = sample(m, series);
        free(m);
        if (v == want) break;
        usleep(20000);
    }
    return v;
}

/* Failures at the edge under the run DB's names. */
static void failures_by_outcome(void **state)
{
    struct rw w;
    struct rw_reply r;
    char *m;
    (void)state;

    start(&w, NULL);
    /* both deployments fail: a 503 for the client, one retryable_error */
    add_fault(w.primary, "http_error;status=503");
    add_fault(w.secondary, "http_error;status=500");
    rw_request(&w, "/v1/chat/completions", stream_body, KEY, 5000, &r);
    assert_int_equal(r.status, 503);
    rw_reply_free(&r);
    /* both slow: stream_timeout (0.4 s) on each, the client's 503 is a timeout */
    fake_fault_clear(w.primary, -1);
    fake_fault_clear(w.secondary, -1);
    add_fault(w.primary, "slow_ttft;ms=3000");
    add_fault(w.secondary, "slow_ttft;ms=3000");
    rw_request(&w, "/v1/chat/completions", stream_body, KEY, 5000, &r);
    assert_int_equal(r.status, 503);
    rw_reply_free(&r);
    /* a client that hangs up mid-stream: cancelled, neither success nor failure (the router
     * notices when it next writes) */
    fake_fault_clear(w.primary, -1);
    fake_fault_clear(w.secondary, -1);
    add_fault(w.primary, "slow_tokens;ms=250");
    rw_request(&w, "/v1/chat/completions", stream_body, KEY, 400, &r);
    assert_int_equal(r.result, CURLE_OPERATION_TIMEDOUT);
    assert_int_equal(r.status, 200);
    rw_reply_free(&r);
    assert_true(wait_sample(&w, REQ("cancelled"), 1) == 1);
    /* one ordinary answer */
    fake_fault_clear(w.primary, -1);
    fake_fault_clear(w.secondary, -1);
    rw_request(&w, "/v1/chat/completions",
               "{\"model\":\"app/chat\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
               KEY, 5000, &r);
    assert_int_equal(r.status, 200);
    rw_reply_free(&r);
    /* a model nobody serves, twice under different names: one series, alias="" */
    rw_request(&w, "/v1/chat/completions",
               "{\"model\":\"no/such-1\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
               KEY, 5000, &r);
    assert_int_equal(r.status, 404);
    rw_reply_free(&r);
    rw_request(&w, "/v1/chat/completions",
               "{\"model\":\"no/such-2\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
               KEY, 5000, &r);
    assert_int_equal(r.status, 404);
    rw_reply_free(&r);
    /* both 429: rate_limited (last: a 429 cools both deployments) */
    add_fault(w.primary, "rate_limit;retry_after=1");
    add_fault(w.secondary, "rate_limit;retry_after=1");
    rw_request(&w, "/v1/chat/completions", stream_body, KEY, 5000, &r);
    assert_int_equal(r.status, 429);
    rw_reply_free(&r);

    m = scrape(&w);
    assert_true(sample(m, REQ("retryable_error")) == 1);
    assert_true(sample(m, REQ("timeout")) == 1);
    assert_true(sample(m, REQ("cancelled")) == 1);
    assert_true(sample(m, REQ("ok")) == 1);
    assert_true(sample(m, REQ("rate_limited")) == 1);
    assert_true(sample(m, REQ("client_error")) == 0);
    assert_true(sample(m, "slodrill_requests_total{alias=\"\",outcome=\"client_error\"}") == 2);
    assert_null(strstr(m, "no/such"));
    assert_true(sum_of(m, "slodrill_requests_total") == 7);
    /* only the answered request has an edge time to first token; every request a duration */
    assert_true(sample(m, "slodrill_time_to_first_token_seconds_count{alias=\"app/chat\"}") == 1);
    assert_true(sample(m, "slodrill_time_to_first_token_seconds_bucket{alias=\"app/chat\",le=\"+Inf\"}") == 1);
    assert_true(sample(m, "slodrill_request_duration_seconds_count{alias=\"app/chat\"}") == 5);
    /* the attempts behind them: 503 + 500, 2 timeouts, 1 ok, 2 x 429 (the abandoned one is
     * no attempt that ended) */
    assert_true(sample(m, "slodrill_upstream_attempts_total{deployment=\"primary\",class=\"rate_limit\"}") == 1);
    assert_true(sample(m, "slodrill_upstream_attempts_total{deployment=\"secondary\",class=\"retryable\"}") == 2);
    assert_true(sum_of(m, "slodrill_upstream_attempts_total") == 7);
    free(m);
    rw_stop(&w);
}

/* The guard's answers: a cache hit is served_from_cache (with a latency), a budget refusal
 * rejected_by_budget; neither costs anything. */
static void cache_and_budget_outcomes(void **state)
{
    struct rw w;
    struct rw_reply r;
    char extra[1024], big[3000], body[3200], v[64], *m;
    double cost;
    (void)state;

    snprintf(extra, sizeof extra,
             "cache:\n  path: %s/cache.db\n  ttl: 1h\n"
             "budgets:\n  ledger: %s/ledger.db\n"
             "  features:\n    support:\n      max_input_tokens: 200\n"
             "      ladder: [reject]\n",
             dir, dir);
    start(&w, extra);
    rw_request(&w, "/v1/chat/completions",
               "{\"model\":\"app/chat\",\"messages\":[{\"role\":\"user\",\"content\":\"Opening hours?\"}]}",
               KEY, 5000, &r);
    assert_int_equal(r.status, 200);
    cost = strtod(rw_hdr(&r, "x-slodrill-cost-usd", v, sizeof v), NULL);
    assert_true(cost > 0);
    rw_reply_free(&r);
    rw_request(&w, "/v1/chat/completions",
               "{\"model\":\"app/chat\",\"messages\":[{\"role\":\"user\",\"content\":\"Opening hours?\"}]}",
               KEY, 5000, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(rw_hdr(&r, "x-slodrill-cache", v, sizeof v), "hit");
    rw_reply_free(&r);
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    snprintf(body, sizeof body,
             "{\"model\":\"app/chat\",\"metadata\":{\"feature\":\"support\"},"
             "\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}]}",
             big);
    rw_request(&w, "/v1/chat/completions", body, KEY, 5000, &r);
    assert_int_equal(r.status, 400);
    assert_string_equal(rw_hdr(&r, "x-slodrill-budget", v, sizeof v), "rejected");
    rw_reply_free(&r);

    m = scrape(&w);
    assert_true(sample(m, REQ("ok")) == 1);
    assert_true(sample(m, REQ("served_from_cache")) == 1);
    assert_true(sample(m, REQ("rejected_by_budget")) == 1);
    assert_true(sample(m, REQ("client_error")) == 0);
    assert_true(sum_of(m, "slodrill_requests_total") == 3);
    /* the cache hit is an answered request: the p95 rule sees its latency */
    assert_true(sample(m, "slodrill_time_to_first_token_seconds_count{alias=\"app/chat\"}") == 2);
    /* only the upstream answer cost money: one attempt, at the edge the same figure */
    assert_true(fabs(sample(m, "slodrill_cost_usd_total{alias=\"app/chat\"}") - cost) < 1e-8);
    assert_true(sum_of(m, "slodrill_upstream_attempts_total") == 1);
    free(m);
    rw_stop(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(failover_is_one_request_two_attempts),
        cmocka_unit_test(failures_by_outcome),
        cmocka_unit_test(cache_and_budget_outcomes),
    };
    int rc;
    if (getenv("TEST_FILTER")) cmocka_set_test_filter(getenv("TEST_FILTER"));
    rw_global_init();
    rc = cmocka_run_group_tests(tests, setup, teardown);
    curl_global_cleanup();
    return rc;
}
