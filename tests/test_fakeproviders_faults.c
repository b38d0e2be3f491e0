/* test_fakeproviders_faults.c -- every fault as a client sees it: statuses,
 * headers, cut streams, refused and silent connections, seeded probability. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>

#include "test_fakeproviders_util.h"

#define KEY_HDR "Authorization: Bearer sk-test-primary-0123456789abcd"
#define BODY "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}]}"
#define SBODY "{\"model\":\"m\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}]}"

static struct tsrv S;

static int setup(void **state)
{
    struct fake_spec spec;
    (void)state;
    tsrv_spec(&spec, "primary", FAKE_OPENAI);
    spec.latency.output_tokens_median = 12;
    spec.latency.ttft_p95_ms = 5; /* exactly 5 ms */
    return tsrv_start(&S, &spec);
}

static int teardown(void **state)
{
    (void)state;
    tsrv_stop(&S);
    return 0;
}

static void post(struct resp *r, const char *body, const char *fault, long timeout_ms)
{
    char url[256], fh[256];
    const char *hdrs[] = {KEY_HDR, fault ? fh : NULL, NULL};
    snprintf(url, sizeof url, "%s/v1/chat/completions", fake_url(S.f));
    snprintf(fh, sizeof fh, "x-slodrill-fault: %s", fault ? fault : "");
    http_do(r, url, NULL, body, hdrs, timeout_ms);
}

static void slow_ttft(void **state)
{
    struct resp r;
    (void)state;
    post(&r, SBODY, "slow_ttft;ms=300", 3000);
    assert_int_equal(r.cc, CURLE_OK);
    assert_int_equal(r.status, 200);
    /* headers at once (under valgrind a first request alone can take 250 ms) */
    assert_true(r.t_headers_ms < (getenv("SLODRILL_VALGRIND") ? 1000 : 250));
    assert_true(r.t_first_byte_ms >= 300); /* first event after the delay */
    assert_non_null(strstr(r.body, "data: [DONE]\n\n"));
    resp_free(&r);
    post(&r, BODY, "slow_ttft;ms=250", 3000);
    assert_int_equal(r.status, 200);
    assert_true(r.t_headers_ms >= 250);
    resp_free(&r);
}

static void slow_tokens(void **state)
{
    struct resp r;
    (void)state;
    post(&r, SBODY, "slow_tokens;ms=40", 5000);
    assert_int_equal(r.status, 200);
    /* 12 tokens: 11 gaps of at least 40 ms */
    assert_true(r.t_total_ms - r.t_first_byte_ms >= 11 * 40);
    resp_free(&r);
}

static void cut_close_and_reset(void **state)
{
    struct resp r;
    (void)state;
    post(&r, SBODY, "cut;after_events=3", 3000);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.cc, CURLE_PARTIAL_FILE); /* chunked body without its terminator */
    assert_int_equal(count_events(r.body), 3);
    assert_null(strstr(r.body, "[DONE]"));
    resp_free(&r);

    post(&r, SBODY, "cut;after_events=2;mode=reset", 3000);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.cc, CURLE_RECV_ERROR); /* connection reset by peer */
    assert_null(strstr(r.body, "[DONE]"));
    resp_free(&r);

    /* cut after a time: the stream is slowed so the cut lands mid-way */
    {
        struct fault_spec fs;
        fault_spec_defaults(&fs, FAULT_SLOW_TOKENS);
        fs.ms = 20;
        assert_int_equal(fake_fault_add(S.f, &fs), 0);
        post(&r, SBODY, "cut;ms=60", 3000);
        fake_fault_clear(S.f, FAULT_SLOW_TOKENS);
        assert_int_equal(r.cc, CURLE_PARTIAL_FILE);
        assert_true(r.t_total_ms >= 50 && r.t_total_ms < 1000); /* timers may fire a tick early */
        assert_true(count_events(r.body) >= 2 && count_events(r.body) < 10);
        resp_free(&r);
    }

    post(&r, BODY, "cut", 3000);
    assert_int_equal(r.cc, CURLE_PARTIAL_FILE);
    resp_free(&r);
}

static void error_event(void **state)
{
    struct resp r;
    const char *last;
    (void)state;
    post(&r, SBODY, "error_event;after_events=2", 3000);
    assert_int_equal(r.cc, CURLE_OK); /* the HTTP body ends cleanly */
    assert_int_equal(r.status, 200);
    assert_int_equal(count_events(r.body), 3);
    last = strstr(r.body, "data: {\"error\":");
    assert_non_null(last);
    assert_string_equal(last, "data: {\"error\":{\"message\":\"The server had an error while "
                              "processing your request. Sorry about that!\",\"type\":"
                              "\"server_error\",\"param\":null,\"code\":null}}\n\n");
    resp_free(&r);
}

static void stall_and_blackhole(void **state)
{
    struct resp r;
    struct fault_spec fs;
    (void)state;
    struct fake_stats st;
    post(&r, SBODY, "stall", 400);
    assert_int_equal(r.cc, CURLE_OPERATION_TIMEDOUT);
    assert_int_equal(r.status, 200);
    assert_int_equal(count_events(r.body), 2); /* role chunk + one token, then silence */
    resp_free(&r);
    /* The client hung up: the held request is let go within a few reaps. */
    for (int i = 0; i < 50; i++) {
        struct timespec ts = {0, 20 * 1000000L};
        fake_stats_get(S.f, &st);
        if (st.in_flight == 0) break;
        nanosleep(&ts, NULL);
    }
    assert_int_equal(st.in_flight, 0);

    fault_spec_defaults(&fs, FAULT_EGRESS_BLOCK);
    snprintf(fs.mode, sizeof fs.mode, "blackhole");
    assert_int_equal(fake_fault_add(S.f, &fs), 0);
    post(&r, BODY, NULL, 300);
    assert_int_equal(r.cc, CURLE_OPERATION_TIMEDOUT);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.len, 0);
    resp_free(&r);
    fake_fault_clear(S.f, FAULT_EGRESS_BLOCK);
    post(&r, BODY, NULL, 3000);
    assert_int_equal(r.status, 200);
    resp_free(&r);
}

static void egress_refuse_same_port(void **state)
{
    struct resp r;
    struct fault_spec fs;
    int port = fake_port(S.f);
    (void)state;

    fault_spec_defaults(&fs, FAULT_EGRESS_BLOCK); /* mode refuse */
    assert_int_equal(fake_fault_add(S.f, &fs), 0);
    post(&r, BODY, NULL, 2000);
    assert_int_equal(r.cc, CURLE_COULDNT_CONNECT);
    resp_free(&r);
    fake_fault_clear(S.f, FAULT_EGRESS_BLOCK);
    assert_int_equal(fake_port(S.f), port);
    post(&r, BODY, NULL, 2000);
    assert_int_equal(r.cc, CURLE_OK);
    assert_int_equal(r.status, 200);
    resp_free(&r);

    /* With a duration it clears itself, on the same port. */
    fs.duration_s = 0.3;
    assert_int_equal(fake_fault_add(S.f, &fs), 0);
    post(&r, BODY, NULL, 2000);
    assert_int_equal(r.cc, CURLE_COULDNT_CONNECT);
    resp_free(&r);
    {
        struct timespec ts = {0, 500 * 1000000L};
        nanosleep(&ts, NULL);
    }
    post(&r, BODY, NULL, 2000);
    assert_int_equal(r.status, 200);
    resp_free(&r);

    post(&r, BODY, "egress_block;mode=reset", 2000);
    assert_int_equal(r.cc, CURLE_RECV_ERROR);
    resp_free(&r);
}

static void *slow_stream_client(void *arg)
{
    post(arg, SBODY, "slow_ttft;ms=400", 3000);
    return NULL;
}

/* refuse acts like a stateful firewall: new connections are refused, but an
 * answer already under way drains to its end (and its connection closes). */
static void egress_refuse_lets_answers_drain(void **state)
{
    struct resp r, held;
    struct fault_spec fs;
    pthread_t th;
    struct timespec ts = {0, 150 * 1000000L};
    (void)state;
    pthread_create(&th, NULL, slow_stream_client, &held);
    nanosleep(&ts, NULL);
    fault_spec_defaults(&fs, FAULT_EGRESS_BLOCK);
    assert_int_equal(fake_fault_add(S.f, &fs), 0);
    post(&r, BODY, NULL, 2000);
    assert_int_equal(r.cc, CURLE_COULDNT_CONNECT);
    resp_free(&r);
    pthread_join(th, NULL);
    assert_int_equal(held.cc, CURLE_OK);
    assert_int_equal(held.status, 200);
    assert_non_null(strstr(held.body, "data: [DONE]"));
    resp_free(&held);
    fake_fault_clear(S.f, FAULT_EGRESS_BLOCK);
    post(&r, BODY, NULL, 2000);
    assert_int_equal(r.status, 200);
    resp_free(&r);
}

static void rate_limit_and_overloaded(void **state)
{
    struct resp r;
    char v[128];
    cJSON *j;
    (void)state;
    post(&r, BODY, "rate_limit;retry_after=2", 3000);
    assert_int_equal(r.status, 429);
    assert_int_equal(resp_hdr(&r, "retry-after", v, sizeof v), 0);
    assert_string_equal(v, "2");
    assert_int_equal(resp_hdr(&r, "retry-after-ms", v, sizeof v), 0);
    assert_string_equal(v, "2000");
    assert_int_equal(resp_hdr(&r, "x-ratelimit-remaining-requests", v, sizeof v), 0);
    assert_string_equal(v, "0");
    assert_int_equal(resp_hdr(&r, "x-ratelimit-reset-requests", v, sizeof v), 0);
    assert_string_equal(v, "2s");
    j = cJSON_Parse(r.body);
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "error"), "code")->valuestring,
                        "rate_limit_exceeded");
    cJSON_Delete(j);
    resp_free(&r);

    post(&r, BODY, "rate_limit;mode=quota", 3000);
    assert_int_equal(r.status, 429);
    assert_int_equal(resp_hdr(&r, "retry-after", v, sizeof v), -1);
    assert_non_null(strstr(r.body, "\"code\": \"insufficient_quota\""));
    resp_free(&r);

    post(&r, BODY, "overloaded", 3000);
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.body, "\"code\": \"server_is_overloaded\""));
    resp_free(&r);

    post(&r, BODY, "http_error;status=502", 3000);
    assert_int_equal(r.status, 502);
    assert_non_null(strstr(r.body, "<title>502 Bad Gateway</title>"));
    resp_free(&r);

    post(&r, BODY, "no_such_fault", 3000);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "unknown fault 'no_such_fault'"));
    resp_free(&r);
}

static void malformed(void **state)
{
    struct resp r;
    char v[128];
    cJSON *j;
    (void)state;
    post(&r, BODY, "malformed", 3000);
    assert_int_equal(r.status, 200);
    j = cJSON_Parse(r.body);
    assert_null(j);
    resp_free(&r);
    post(&r, SBODY, "malformed;after_events=1", 3000);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.cc, CURLE_OK);
    {
        /* the second event's JSON is broken, the rest is fine */
        const char *e2 = strstr(r.body, "\n\n") + 2;
        const char *end = strstr(e2, "\n\n");
        j = cJSON_ParseWithLength(e2 + 6, (size_t)(end - e2 - 6));
        assert_null(j);
    }
    resp_free(&r);
    post(&r, BODY, "malformed;mode=content_type", 3000);
    assert_int_equal(r.status, 200);
    assert_int_equal(resp_hdr(&r, "Content-Type", v, sizeof v), 0);
    assert_string_equal(v, "text/html; charset=utf-8");
    resp_free(&r);
}

/* One pass of n requests against a fresh fake with seed; statuses into out. */
static void pass(uint64_t seed, long *out, int n)
{
    struct tsrv s;
    struct fake_spec spec;
    struct fault_spec fs;
    char url[256];
    const char *hdrs[] = {KEY_HDR, NULL};
    tsrv_spec(&spec, "p", FAKE_OPENAI);
    spec.key[0] = '\0'; /* any key */
    spec.seed = seed;
    spec.latency.ttft_median_ms = 1;
    spec.latency.ttft_p95_ms = 1;
    spec.latency.output_tokens_median = 2;
    assert_int_equal(tsrv_start(&s, &spec), 0);
    fault_spec_defaults(&fs, FAULT_HTTP_ERROR);
    fs.probability = 0.5;
    assert_int_equal(fake_fault_add(s.f, &fs), 0);
    snprintf(url, sizeof url, "%s/v1/chat/completions", fake_url(s.f));
    for (int i = 0; i < n; i++) {
        struct resp r;
        http_do(&r, url, NULL, BODY, hdrs, 3000);
        out[i] = r.status;
        resp_free(&r);
    }
    tsrv_stop(&s);
}

static void probability_reproducible(void **state)
{
    long a[30], b[30], c[30];
    int n503 = 0, diff = 0;
    (void)state;
    pass(7, a, 30);
    pass(7, b, 30);
    pass(8, c, 30);
    for (int i = 0; i < 30; i++) {
        assert_int_equal(a[i], b[i]);
        assert_true(a[i] == 200 || a[i] == 503);
        n503 += a[i] == 503;
        diff += a[i] != c[i];
    }
    assert_true(n503 >= 5 && n503 <= 25);
    assert_true(diff > 0);
}

static void key_scope_and_stats(void **state)
{
    struct resp r;
    struct fault_spec fs;
    struct fake_stats before, after;
    (void)state;
    fake_stats_get(S.f, &before);
    assert_int_equal(fault_spec_parse("http_error;status=500;key=sk-other", &fs, NULL, 0), 0);
    assert_int_equal(fake_fault_add(S.f, &fs), 0);
    post(&r, BODY, NULL, 3000);
    assert_int_equal(r.status, 200); /* our key is out of the fault's scope */
    resp_free(&r);
    fake_fault_clear(S.f, -1);
    post(&r, BODY, "http_error", 3000);
    assert_int_equal(r.status, 503);
    resp_free(&r);
    fake_stats_get(S.f, &after);
    assert_int_equal(after.requests - before.requests, 2);
    assert_int_equal(after.ok - before.ok, 1);
    assert_int_equal(after.faulted - before.faulted, 1);
}

static void control_api(void **state)
{
    struct tsrv s;
    struct fake_spec spec;
    struct resp r;
    char url[256], curl_[256];
    const char *tok[] = {"x-slodrill-token: s3cret", NULL};
    const char *key[] = {KEY_HDR, NULL};
    (void)state;
    tsrv_spec(&spec, "ctl", FAKE_OPENAI);
    snprintf(spec.control_token, sizeof spec.control_token, "s3cret");
    assert_int_equal(tsrv_start(&s, &spec), 0);
    snprintf(url, sizeof url, "%s/_chaos/faults", fake_url(s.f));
    snprintf(curl_, sizeof curl_, "%s/v1/chat/completions", fake_url(s.f));

    http_do(&r, url, NULL, NULL, NULL, 3000);
    assert_int_equal(r.status, 401);
    resp_free(&r);
    http_do(&r, url, NULL, "{\"fault\":\"http_error\",\"status\":500,\"duration\":\"30s\"}", tok,
            3000);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"fault\":\"http_error\",\"status\":500"));
    resp_free(&r);
    http_do(&r, curl_, NULL, BODY, key, 3000);
    assert_int_equal(r.status, 500);
    resp_free(&r);
    http_do(&r, url, NULL, "{\"spec\":\"slow_ttft;ms=10\"}", tok, 3000);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    http_do(&r, url, NULL, "{\"fault\":\"bogus\"}", tok, 3000);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "unknown fault 'bogus'"));
    resp_free(&r);
    http_do(&r, url, NULL, NULL, tok, 3000);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"slow_ttft\""));
    resp_free(&r);
    {
        char du[300];
        snprintf(du, sizeof du, "%s?kind=http_error", url);
        http_do(&r, du, "DELETE", NULL, tok, 3000);
        assert_int_equal(r.status, 200);
        assert_null(strstr(r.body, "http_error"));
        assert_non_null(strstr(r.body, "slow_ttft"));
        resp_free(&r);
    }
    http_do(&r, url, "DELETE", NULL, tok, 3000);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"faults\":[]"));
    resp_free(&r);
    http_do(&r, curl_, NULL, BODY, key, 3000);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    tsrv_stop(&s);
}

/* fake_fault_add from several threads while requests run: no races (TSan-
 * and ASan-clean), and the table ends in the last state written. */
static void *flipper(void *arg)
{
    struct fault_spec fs;
    fault_spec_defaults(&fs, FAULT_SLOW_TOKENS);
    fs.ms = 1;
    for (int i = 0; i < 50; i++) {
        if (fake_fault_add(arg, &fs) != 0) return (void *)1;
        fake_fault_clear(arg, FAULT_SLOW_TOKENS);
    }
    return NULL;
}

static void concurrent_faults(void **state)
{
    pthread_t th[3];
    struct resp r;
    (void)state;
    for (int i = 0; i < 3; i++) pthread_create(&th[i], NULL, flipper, S.f);
    for (int i = 0; i < 5; i++) {
        post(&r, SBODY, NULL, 3000);
        assert_int_equal(r.status, 200);
        resp_free(&r);
    }
    for (int i = 0; i < 3; i++) {
        void *rv;
        pthread_join(th[i], &rv);
        assert_null(rv);
    }
    assert_int_equal(fake_fault_list(S.f, NULL, NULL, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(slow_ttft),
        cmocka_unit_test(slow_tokens),
        cmocka_unit_test(cut_close_and_reset),
        cmocka_unit_test(error_event),
        cmocka_unit_test(stall_and_blackhole),
        cmocka_unit_test(egress_refuse_same_port),
        cmocka_unit_test(egress_refuse_lets_answers_drain),
        cmocka_unit_test(rate_limit_and_overloaded),
        cmocka_unit_test(malformed),
        cmocka_unit_test(key_scope_and_stats),
        cmocka_unit_test(concurrent_faults),
        cmocka_unit_test(probability_reproducible),
        cmocka_unit_test(control_api),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    curl_global_cleanup();
    return rc;
}
