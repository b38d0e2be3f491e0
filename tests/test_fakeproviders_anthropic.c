/* test_fakeproviders_anthropic.c -- the Anthropic fake on a real socket, driven by libcurl. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>

#include "test_fakeproviders_util.h"

#define XKEY "x-api-key: sk-ant-test-secondary"
#define VER "anthropic-version: 2023-06-01"
#define BODY                                                                                   \
    "{\"model\":\"claude-x\",\"max_tokens\":256,\"system\":\"Be brief.\",\"messages\":[{\"role\":" \
    "\"user\",\"content\":\"Hello there, how are you today?\"}]}"
#define SBODY                                                                                  \
    "{\"model\":\"claude-x\",\"max_tokens\":256,\"stream\":true,\"messages\":[{\"role\":"       \
    "\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Hello there, how are you today?\"}]}]}"

static struct tsrv S;

static int setup(void **state)
{
    struct fake_spec spec;
    (void)state;
    tsrv_spec(&spec, "secondary", FAKE_ANTHROPIC);
    return tsrv_start(&S, &spec);
}

static int teardown(void **state)
{
    (void)state;
    tsrv_stop(&S);
    return 0;
}

static void post(struct resp *r, const char *body, const char *const *hdrs)
{
    char url[256];
    snprintf(url, sizeof url, "%s/v1/messages", fake_url(S.f));
    http_do(r, url, NULL, body, hdrs, 3000);
}

/* Runs first: its answer is the seed's first and matches the golden file. */
static void nonstream_golden(void **state)
{
    struct resp r;
    char v[256];
    const char *hdrs[] = {XKEY, VER, NULL};
    cJSON *j, *u;
    (void)state;
    post(&r, BODY, hdrs);
    assert_int_equal(r.cc, CURLE_OK);
    assert_int_equal(r.status, 200);
    assert_int_equal(resp_hdr(&r, "Content-Type", v, sizeof v), 0);
    assert_string_equal(v, "application/json");
    assert_int_equal(resp_hdr(&r, "request-id", v, sizeof v), 0);
    assert_memory_equal(v, "req_011C", 8);
    assert_int_equal(resp_hdr(&r, "x-slodrill-provider", v, sizeof v), 0);
    assert_string_equal(v, "secondary");
    assert_int_equal(resp_hdr(&r, "anthropic-ratelimit-requests-limit", v, sizeof v), 0);
    assert_string_equal(v, "4000");
    assert_int_equal(resp_hdr(&r, "anthropic-ratelimit-requests-remaining", v, sizeof v), 0);
    assert_string_equal(v, "3999");
    assert_int_equal(resp_hdr(&r, "anthropic-ratelimit-tokens-reset", v, sizeof v), 0);
    assert_int_equal(strlen(v), 20); /* 2026-11-24T04:13:12Z */
    assert_true(golden_equal("fake_anthropic_nonstream.json", r.body, r.len));
    j = cJSON_Parse(r.body);
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItem(j, "model")->valuestring, "secondary-model");
    assert_non_null(strstr(cJSON_GetObjectItem(j, "id")->valuestring, "msg_secondary_"));
    u = cJSON_GetObjectItem(j, "usage");
    /* 31 + 9 bytes: 10 tokens + 3 per message + 3 */
    assert_int_equal(cJSON_GetObjectItem(u, "input_tokens")->valueint, 16);
    assert_int_equal(cJSON_GetObjectItem(u, "cache_read_input_tokens")->valueint, 0);
    cJSON_Delete(j);
    resp_free(&r);
}

static void stream_sequence(void **state)
{
    struct resp r;
    char v[256];
    const char *hdrs[] = {"Authorization: Bearer sk-ant-test-secondary",
                          "anthropic-version: 2099-01-01", NULL};
    const char *want_pre[] = {"message_start", "content_block_start", "ping"};
    const char *want_post[] = {"content_block_stop", "message_delta", "message_stop"};
    int n, deltas = 0, i = 0, out_tokens = -1;
    const char *p;
    (void)state;

    post(&r, SBODY, hdrs); /* Bearer auth and any version are fine */
    assert_int_equal(r.cc, CURLE_OK);
    assert_int_equal(r.status, 200);
    assert_int_equal(resp_hdr(&r, "Content-Type", v, sizeof v), 0);
    assert_string_equal(v, "text/event-stream; charset=utf-8");
    /* Second request of the seed (the tests run in order on one fake). */
    assert_true(golden_equal("fake_anthropic_stream.txt", r.body, r.len));
    n = count_events(r.body);
    assert_true(n >= 7);
    for (p = r.body; *p; i++) {
        const char *e = strstr(p, "\n\n"), *nl = strchr(p, '\n');
        char name[64], data[4096];
        cJSON *j;
        assert_non_null(e);
        assert_memory_equal(p, "event: ", 7);
        snprintf(name, sizeof name, "%.*s", (int)(nl - p - 7), p + 7);
        assert_memory_equal(nl + 1, "data: ", 6);
        snprintf(data, sizeof data, "%.*s", (int)(e - nl - 7), nl + 7);
        j = cJSON_Parse(data);
        assert_non_null(j);
        assert_string_equal(cJSON_GetObjectItem(j, "type")->valuestring, name);
        if (i < 3) assert_string_equal(name, want_pre[i]);
        else if (i >= n - 3) assert_string_equal(name, want_post[i - (n - 3)]);
        else {
            assert_string_equal(name, "content_block_delta");
            deltas++;
        }
        if (strcmp(name, "ping") == 0) assert_string_equal(data, "{\"type\": \"ping\"}");
        if (strcmp(name, "message_start") == 0) {
            cJSON *u = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "message"), "usage");
            assert_non_null(cJSON_GetObjectItem(u, "cache_creation_input_tokens"));
            assert_non_null(cJSON_GetObjectItem(u, "cache_read_input_tokens"));
        }
        if (strcmp(name, "message_delta") == 0) {
            out_tokens = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "usage"), "output_tokens")->valueint;
            assert_string_equal(
                cJSON_GetObjectItem(cJSON_GetObjectItem(j, "delta"), "stop_reason")->valuestring,
                "end_turn");
        }
        cJSON_Delete(j);
        p = e + 2;
    }
    assert_int_equal(out_tokens, deltas); /* cumulative: the total */
    assert_null(strstr(r.body, "[DONE]"));
    resp_free(&r);
}

static void errors(void **state)
{
    struct resp r;
    char v[256], rid[128], want[512];
    const char *bad[] = {"x-api-key: wrong", VER, NULL};
    const char *none[] = {VER, NULL};
    const char *ov[] = {XKEY, VER, "x-slodrill-fault: overloaded", NULL};
    const char *rl[] = {XKEY, VER, "x-slodrill-fault: rate_limit;retry_after=3", NULL};
    const char *ok[] = {XKEY, VER, NULL};
    (void)state;

    post(&r, BODY, bad);
    assert_int_equal(r.status, 401);
    assert_int_equal(resp_hdr(&r, "Content-Type", v, sizeof v), 0);
    assert_string_equal(v, "application/json");
    assert_int_equal(resp_hdr(&r, "request-id", rid, sizeof rid), 0);
    snprintf(want, sizeof want,
             "{\"type\":\"error\",\"error\":{\"type\":\"authentication_error\",\"message\":"
             "\"invalid x-api-key\"},\"request_id\":\"%s\"}",
             rid);
    assert_string_equal(r.body, want);
    resp_free(&r);

    post(&r, BODY, none);
    assert_int_equal(r.status, 401);
    assert_non_null(strstr(r.body, "x-api-key header is required"));
    resp_free(&r);

    post(&r, BODY, ov);
    assert_int_equal(r.status, 529);
    assert_int_equal(resp_hdr(&r, "request-id", rid, sizeof rid), 0);
    snprintf(want, sizeof want,
             "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":"
             "\"Overloaded\"},\"request_id\":\"%s\"}",
             rid);
    assert_string_equal(r.body, want);
    resp_free(&r);

    post(&r, BODY, rl);
    assert_int_equal(r.status, 429);
    assert_int_equal(resp_hdr(&r, "retry-after", v, sizeof v), 0);
    assert_string_equal(v, "3");
    assert_int_equal(resp_hdr(&r, "anthropic-ratelimit-requests-remaining", v, sizeof v), 0);
    assert_string_equal(v, "0");
    assert_non_null(strstr(r.body, "\"type\":\"rate_limit_error\""));
    resp_free(&r);

    post(&r, "{\"model\":\"m\",\"messages\":[]}", ok);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "\"message\":\"max_tokens: Field required\""));
    resp_free(&r);

    {
        char url[256];
        snprintf(url, sizeof url, "%s/v1/chat/completions", fake_url(S.f));
        http_do(&r, url, NULL, BODY, ok, 3000);
        assert_int_equal(r.status, 404);
        assert_non_null(strstr(r.body, "\"type\":\"not_found_error\""));
        resp_free(&r);
    }
}

static void stream_faults(void **state)
{
    struct resp r;
    const char *ee[] = {XKEY, VER, "x-slodrill-fault: error_event;after_events=4", NULL};
    const char *cut[] = {XKEY, VER, "x-slodrill-fault: cut;after_events=4", NULL};
    const char *e;
    (void)state;

    post(&r, SBODY, ee);
    assert_int_equal(r.cc, CURLE_OK);
    assert_int_equal(r.status, 200);
    assert_int_equal(count_events(r.body), 5);
    e = strstr(r.body, "event: error\n");
    assert_non_null(e);
    assert_string_equal(e, "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":"
                           "\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n");
    assert_null(strstr(r.body, "message_stop"));
    resp_free(&r);

    post(&r, SBODY, cut);
    assert_int_equal(r.cc, CURLE_PARTIAL_FILE);
    assert_int_equal(count_events(r.body), 4);
    resp_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(nonstream_golden),
        cmocka_unit_test(stream_sequence),
        cmocka_unit_test(errors),
        cmocka_unit_test(stream_faults),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    curl_global_cleanup();
    return rc;
}
