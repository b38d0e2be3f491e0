/* test_fakeproviders_openai.c -- the OpenAI fake on a real socket, driven by libcurl. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>

#include "test_fakeproviders_util.h"

#define KEY_HDR "Authorization: Bearer sk-test-primary-0123456789abcd"
#define BODY "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"Hello there, how are you today?\"}]}"
#define SBODY                                                                                  \
    "{\"model\":\"gpt-4o-mini\",\"stream\":true,\"stream_options\":{\"include_usage\":true},"   \
    "\"messages\":[{\"role\":\"user\",\"content\":\"Hello there, how are you today?\"}]}"

static void url_of(struct tsrv *s, const char *path, char *out, size_t n)
{
    snprintf(out, n, "%s%s", fake_url(s->f), path);
}

static void nonstream_golden(void **state)
{
    struct tsrv s;
    struct fake_spec spec;
    struct resp r;
    char url[256], v[256];
    const char *hdrs[] = {KEY_HDR, "Content-Type: application/json", NULL};
    cJSON *j;
    (void)state;

    tsrv_spec(&spec, "primary", FAKE_OPENAI);
    assert_int_equal(tsrv_start(&s, &spec), 0);
    url_of(&s, "/v1/chat/completions", url, sizeof url);
    http_do(&r, url, NULL, BODY, hdrs, 3000);
    assert_int_equal(r.cc, CURLE_OK);
    assert_int_equal(r.status, 200);
    assert_int_equal(resp_hdr(&r, "Content-Type", v, sizeof v), 0);
    assert_string_equal(v, "application/json");
    assert_int_equal(resp_hdr(&r, "x-slodrill-provider", v, sizeof v), 0);
    assert_string_equal(v, "primary");
    assert_int_equal(resp_hdr(&r, "x-request-id", v, sizeof v), 0);
    assert_memory_equal(v, "req_", 4);
    assert_int_equal(resp_hdr(&r, "openai-processing-ms", v, sizeof v), 0);
    assert_int_equal(resp_hdr(&r, "x-ratelimit-limit-requests", v, sizeof v), 0);
    assert_string_equal(v, "10000");
    assert_int_equal(resp_hdr(&r, "x-ratelimit-remaining-requests", v, sizeof v), 0);
    assert_string_equal(v, "9999");
    assert_int_equal(resp_hdr(&r, "x-ratelimit-reset-requests", v, sizeof v), 0);
    assert_string_equal(v, "6ms");
    assert_true(golden_equal("fake_openai_nonstream.json", r.body, r.len));

    j = cJSON_Parse(r.body);
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItem(j, "model")->valuestring, "primary-model");
    assert_non_null(strstr(cJSON_GetObjectItem(j, "id")->valuestring, "chatcmpl-primary-"));
    {
        cJSON *u = cJSON_GetObjectItem(j, "usage");
        const char *text = cJSON_GetObjectItem(
                               cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0),
                                                   "message"),
                               "content")
                               ->valuestring;
        int words = 1;
        for (const char *p = text; *p; p++) words += *p == ' ';
        assert_int_equal(cJSON_GetObjectItem(u, "completion_tokens")->valueint, words);
        /* 31 bytes of prompt: 8 tokens + 3 per message + 3 */
        assert_int_equal(cJSON_GetObjectItem(u, "prompt_tokens")->valueint, 14);
    }
    cJSON_Delete(j);
    resp_free(&r);

    /* The same seed gives the same answer to the same first request. */
    tsrv_stop(&s);
    assert_int_equal(tsrv_start(&s, &spec), 0);
    url_of(&s, "/v1/chat/completions", url, sizeof url);
    http_do(&r, url, NULL, BODY, hdrs, 3000);
    assert_true(golden_equal("fake_openai_nonstream.json", r.body, r.len));
    resp_free(&r);
    tsrv_stop(&s);
}

static void stream_framing(void **state)
{
    struct tsrv s;
    struct fake_spec spec;
    struct resp r;
    char url[256], v[256];
    const char *hdrs[] = {KEY_HDR, NULL};
    int n;
    (void)state;

    tsrv_spec(&spec, "primary", FAKE_OPENAI);
    assert_int_equal(tsrv_start(&s, &spec), 0);
    url_of(&s, "/v1/chat/completions", url, sizeof url);
    http_do(&r, url, NULL, SBODY, hdrs, 3000);
    assert_int_equal(r.cc, CURLE_OK);
    assert_int_equal(r.status, 200);
    assert_int_equal(resp_hdr(&r, "Content-Type", v, sizeof v), 0);
    assert_string_equal(v, "text/event-stream; charset=utf-8");
    assert_int_equal(resp_hdr(&r, "Transfer-Encoding", v, sizeof v), 0);
    assert_string_equal(v, "chunked");
    assert_true(golden_equal("fake_openai_stream.txt", r.body, r.len));

    /* Framing: only data: events, role-only first, [DONE] last. */
    n = count_events(r.body);
    assert_true(n >= 5);
    {
        const char *p = r.body, *last = NULL, *prev = NULL;
        int i = 0;
        while (*p) {
            const char *e = strstr(p, "\n\n");
            assert_non_null(e);
            assert_memory_equal(p, "data: ", 6);
            assert_null(memchr(p, '\n', (size_t)(e - p)) == NULL ? NULL : "multi-line event");
            if (i == 0)
                assert_non_null(strstr(p, "\"delta\":{\"role\":\"assistant\",\"content\":\"\","
                                          "\"refusal\":null}"));
            if (i < n - 2) {
                char line[4096];
                snprintf(line, sizeof line, "%.*s", (int)(e - p), p);
                assert_non_null(strstr(line, "\"usage\":null"));
                assert_non_null(strstr(line, "\"obfuscation\":\""));
                assert_non_null(strstr(line, "\"model\":\"primary-model\""));
            }
            prev = last;
            last = p;
            p = e + 2;
            i++;
        }
        assert_string_equal(last, "data: [DONE]\n\n");
        assert_non_null(strstr(prev, "\"choices\":[],\"usage\":{\"prompt_tokens\":14,"));
        assert_non_null(strstr(r.body, "\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}"));
    }
    resp_free(&r);

    /* Without include_usage: no usage fields at all. */
    http_do(&r, url, NULL,
            "{\"model\":\"m\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
            hdrs, 3000);
    assert_int_equal(r.status, 200);
    assert_null(strstr(r.body, "usage"));
    assert_non_null(strstr(r.body, "data: [DONE]\n\n"));
    resp_free(&r);
    tsrv_stop(&s);
}

static void error_bodies(void **state)
{
    struct tsrv s;
    struct fake_spec spec;
    struct resp r;
    struct fake_stats st;
    struct fault_spec fs;
    char url[256], v[256];
    const char *bad[] = {"Authorization: Bearer sk-3XSO2abcdefghijklmnopqrstuvwxyzDBtc", NULL};
    const char *h503[] = {KEY_HDR, "x-slodrill-fault: http_error;status=503", NULL};
    const char *h500[] = {KEY_HDR, "x-slodrill-fault: http_error;status=500", NULL};
    const char *h404[] = {KEY_HDR, "x-slodrill-fault: http_error;status=404", NULL};
    const char *ok[] = {KEY_HDR, NULL};
    (void)state;

    tsrv_spec(&spec, "primary", FAKE_OPENAI);
    assert_int_equal(tsrv_start(&s, &spec), 0);
    url_of(&s, "/v1/chat/completions", url, sizeof url);

    http_do(&r, url, NULL, BODY, bad, 3000);
    assert_int_equal(r.status, 401);
    assert_int_equal(resp_hdr(&r, "Content-Type", v, sizeof v), 0);
    assert_string_equal(v, "application/json; charset=utf-8");
    assert_true(golden_equal("fake_openai_401.json", r.body, r.len));
    resp_free(&r);

    http_do(&r, url, NULL, BODY, h503, 3000);
    assert_int_equal(r.status, 503);
    assert_true(golden_equal("fake_openai_503.json", r.body, r.len));
    resp_free(&r);

    http_do(&r, url, NULL, BODY, h500, 3000);
    assert_int_equal(r.status, 500);
    assert_true(golden_equal("fake_openai_500.json", r.body, r.len));
    resp_free(&r);

    /* The recorded 404 from providers.md, exactly 224 bytes. */
    http_do(&r, url, NULL,
            "{\"model\":\"gpt-4.1-nano-wrong\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
            h404, 3000);
    assert_int_equal(r.status, 404);
    assert_int_equal(r.len, 224);
    assert_true(golden_equal("fake_openai_404_model.json", r.body, r.len));
    resp_free(&r);

    /* revoke_key: the valid key now receives the invalid-key 401. */
    fault_spec_defaults(&fs, FAULT_REVOKE_KEY);
    assert_int_equal(fake_fault_add(s.f, &fs), 0);
    http_do(&r, url, NULL, BODY, ok, 3000);
    assert_int_equal(r.status, 401);
    assert_non_null(strstr(r.body, "Incorrect API key provided: sk-test-******************abcd."));
    assert_non_null(strstr(r.body, "\"code\": \"invalid_api_key\""));
    resp_free(&r);
    fake_fault_clear(s.f, FAULT_REVOKE_KEY);
    http_do(&r, url, NULL, BODY, ok, 3000);
    assert_int_equal(r.status, 200);
    resp_free(&r);

    /* A body that is not JSON, a missing field, an unknown path. */
    http_do(&r, url, NULL, "{not json", ok, 3000);
    assert_int_equal(r.status, 400);
    assert_int_equal(resp_hdr(&r, "Content-Type", v, sizeof v), 0);
    assert_string_equal(v, "application/json");
    assert_non_null(strstr(r.body, "We could not parse the JSON body"));
    resp_free(&r);
    http_do(&r, url, NULL, "{\"model\":\"x\"}", ok, 3000);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "\"param\": \"messages\""));
    resp_free(&r);
    url_of(&s, "/v1/nothing", url, sizeof url);
    http_do(&r, url, NULL, BODY, ok, 3000);
    assert_int_equal(r.status, 404);
    assert_non_null(strstr(r.body, "Invalid URL (POST /v1/nothing)"));
    resp_free(&r);

    fake_stats_get(s.f, &st);
    assert_int_equal(st.auth_failed, 1);
    assert_int_equal(st.faulted, 4);
    tsrv_stop(&s);
}

static void models_and_no_key(void **state)
{
    struct tsrv s;
    struct fake_spec spec;
    struct resp r;
    char url[256];
    const char *ok[] = {KEY_HDR, NULL};
    (void)state;

    tsrv_spec(&spec, "primary", FAKE_OPENAI);
    snprintf(spec.model, sizeof spec.model, "gpt-4o-mini-2024-07-18");
    assert_int_equal(tsrv_start(&s, &spec), 0);
    url_of(&s, "/v1/models", url, sizeof url);
    http_do(&r, url, NULL, NULL, ok, 3000);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"id\": \"gpt-4o-mini-2024-07-18\""));
    resp_free(&r);
    url_of(&s, "/v1/chat/completions", url, sizeof url);
    http_do(&r, url, NULL, BODY, NULL, 3000);
    assert_int_equal(r.status, 401);
    assert_non_null(strstr(r.body, "You didn't provide an API key."));
    resp_free(&r);
    http_do(&r, url, NULL, BODY, ok, 3000);
    assert_non_null(strstr(r.body, "\"model\": \"gpt-4o-mini-2024-07-18\""));
    resp_free(&r);
    tsrv_stop(&s);
}

/* Non-streaming answers wait ttft + tokens / rate; streams send headers at once. */
static void latency_model(void **state)
{
    struct tsrv s;
    struct fake_spec spec;
    struct resp r;
    char url[256];
    const char *ok[] = {KEY_HDR, NULL};
    (void)state;

    tsrv_spec(&spec, "primary", FAKE_OPENAI);
    spec.latency.ttft_median_ms = 400;
    spec.latency.ttft_p95_ms = 400; /* no spread: exactly 400 ms */
    spec.latency.tokens_per_s = 100;
    spec.latency.output_tokens_median = 11;
    assert_int_equal(tsrv_start(&s, &spec), 0);
    url_of(&s, "/v1/chat/completions", url, sizeof url);
    http_do(&r, url, NULL, SBODY, ok, 5000);
    assert_int_equal(r.status, 200);
    assert_true(r.t_headers_ms < 300);
    assert_true(r.t_first_byte_ms >= 395);
    /* the rest takes (tokens - 1) intervals of 5..15 ms */
    assert_true(r.t_total_ms > r.t_first_byte_ms);
    resp_free(&r);
    http_do(&r, url, NULL, BODY, ok, 5000);
    assert_int_equal(r.status, 200);
    assert_true(r.t_headers_ms >= 395);
    resp_free(&r);
    tsrv_stop(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(nonstream_golden),  cmocka_unit_test(stream_framing),
        cmocka_unit_test(error_bodies),      cmocka_unit_test(models_and_no_key),
        cmocka_unit_test(latency_model),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
