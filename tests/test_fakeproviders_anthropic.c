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

/* ---- tool use (after the golden tests: they consume the seed's first answers) ---- */

#define TOOLS                                                                                  \
    "\"tools\":[{\"name\":\"search\",\"description\":\"Search the docs\",\"input_schema\":{"     \
    "\"type\":\"object\",\"properties\":{\"query\":{\"type\":\"string\"}}}},{\"name\":\"now\","   \
    "\"input_schema\":{\"type\":\"object\",\"properties\":{}}}]"
#define ASK "What is the refund policy?"
/* 52 bytes; the 2-byte o-umlaut at bytes 47..48 straddles the 48-byte cut: 47 are kept */
#define LONG_ASK "Rückerstattung für Bestellungen aus Zürich,Köln?"
#define LONG_KEPT "Rückerstattung für Bestellungen aus Zürich,K"

/* A tool request body: tools, extra top-level members (may be ""), the messages. */
static char *tool_body(const char *extra, const char *messages, int stream)
{
    static char b[2048];
    snprintf(b, sizeof b, "{\"model\":\"claude-x\",\"max_tokens\":256,%s%s" TOOLS
             ",\"messages\":%s}", stream ? "\"stream\":true," : "", extra, messages);
    return b;
}

static int utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int n = *p < 0x80 ? 0 : (*p & 0xE0) == 0xC0 ? 1 : (*p & 0xF0) == 0xE0 ? 2
                : (*p & 0xF8) == 0xF0 ? 3 : -1;
        if (n < 0) return 0;
        for (p++; n > 0; n--, p++)
            if ((*p & 0xC0) != 0x80) return 0;
    }
    return 1;
}

static void tool_use_plain(void **state)
{
    struct resp r;
    const char *ok[] = {XKEY, VER, NULL};
    char id1[64];
    cJSON *j, *b;
    (void)state;

    post(&r, tool_body("", "[{\"role\":\"user\",\"content\":\"" ASK "\"}]", 0), ok);
    assert_int_equal(r.status, 200);
    j = cJSON_Parse(r.body);
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItem(j, "stop_reason")->valuestring, "tool_use");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "content")), 1);
    b = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "content"), 0);
    assert_string_equal(cJSON_GetObjectItem(b, "type")->valuestring, "tool_use");
    assert_memory_equal(cJSON_GetObjectItem(b, "id")->valuestring, "toolu_", 6);
    assert_true(strlen(cJSON_GetObjectItem(b, "id")->valuestring) > 12);
    snprintf(id1, sizeof id1, "%s", cJSON_GetObjectItem(b, "id")->valuestring);
    assert_string_equal(cJSON_GetObjectItem(b, "name")->valuestring, "search"); /* the first */
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(b, "input"), "query")->valuestring,
                        ASK);
    assert_true(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "usage"), "output_tokens")->valueint > 0);
    cJSON_Delete(j);
    resp_free(&r);

    /* a long question is cut at 48 bytes on a character boundary; each call its own id */
    post(&r, tool_body("", "[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"" LONG_ASK
                           "\"}]}]", 0), ok);
    assert_int_equal(r.status, 200);
    j = cJSON_Parse(r.body);
    b = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "content"), 0);
    assert_string_not_equal(cJSON_GetObjectItem(b, "id")->valuestring, id1);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(b, "input"), "query")->valuestring,
                        LONG_KEPT);
    cJSON_Delete(j);
    resp_free(&r);

    /* tool_choice names the second tool, whose schema has no properties: input {} */
    post(&r, tool_body("\"tool_choice\":{\"type\":\"tool\",\"name\":\"now\"},",
                       "[{\"role\":\"user\",\"content\":\"" ASK "\"}]", 0), ok);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"name\":\"now\",\"input\":{}}]"));
    resp_free(&r);

    /* tool_choice none: the model speaks */
    post(&r, tool_body("\"tool_choice\":{\"type\":\"none\"},",
                       "[{\"role\":\"user\",\"content\":\"" ASK "\"}]", 0), ok);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"stop_reason\":\"end_turn\""));
    assert_null(strstr(r.body, "tool_use"));
    resp_free(&r);

    /* tool_choice naming a tool that is not there: the API's 400 */
    post(&r, tool_body("\"tool_choice\":{\"type\":\"tool\",\"name\":\"nope\"},",
                       "[{\"role\":\"user\",\"content\":\"" ASK "\"}]", 0), ok);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "\"type\":\"invalid_request_error\""));
    resp_free(&r);
}

static void tool_use_streamed(void **state)
{
    struct resp r;
    const char *ok[] = {XKEY, VER, NULL};
    const char *want_pre[] = {"message_start", "content_block_start", "ping"};
    const char *want_post[] = {"content_block_stop", "message_delta", "message_stop"};
    char input[512] = "";
    int n, i = 0, deltas = 0, out_tokens = -1;
    const char *p;
    cJSON *in;
    (void)state;

    post(&r, tool_body("", "[{\"role\":\"user\",\"content\":\"" LONG_ASK "\"}]", 1), ok);
    assert_int_equal(r.status, 200);
    n = count_events(r.body);
    assert_true(n >= 7);
    for (p = r.body; *p; i++) {
        const char *e = strstr(p, "\n\n"), *nl = strchr(p, '\n');
        char name[64], data[4096];
        cJSON *j, *x;
        assert_non_null(e);
        snprintf(name, sizeof name, "%.*s", (int)(nl - p - 7), p + 7);
        snprintf(data, sizeof data, "%.*s", (int)(e - nl - 7), nl + 7);
        j = cJSON_Parse(data);
        assert_non_null(j);
        assert_string_equal(cJSON_GetObjectItem(j, "type")->valuestring, name);
        if (i < 3) assert_string_equal(name, want_pre[i]);
        else if (i >= n - 3) assert_string_equal(name, want_post[i - (n - 3)]);
        else {
            assert_string_equal(name, "content_block_delta");
            x = cJSON_GetObjectItem(j, "delta");
            assert_string_equal(cJSON_GetObjectItem(x, "type")->valuestring, "input_json_delta");
            x = cJSON_GetObjectItem(x, "partial_json");
            assert_true(utf8_valid(x->valuestring)); /* no character cut in two */
            assert_true(strlen(input) + strlen(x->valuestring) < sizeof input);
            memcpy(input + strlen(input), x->valuestring, strlen(x->valuestring) + 1);
            deltas++;
        }
        if (strcmp(name, "content_block_start") == 0) {
            x = cJSON_GetObjectItem(j, "content_block");
            assert_string_equal(cJSON_GetObjectItem(x, "type")->valuestring, "tool_use");
            assert_memory_equal(cJSON_GetObjectItem(x, "id")->valuestring, "toolu_", 6);
            assert_string_equal(cJSON_GetObjectItem(x, "name")->valuestring, "search");
            assert_true(cJSON_IsObject(cJSON_GetObjectItem(x, "input")));
            assert_null(cJSON_GetObjectItem(x, "input")->child);
        }
        if (strcmp(name, "message_delta") == 0) {
            out_tokens = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "usage"), "output_tokens")->valueint;
            assert_string_equal(
                cJSON_GetObjectItem(cJSON_GetObjectItem(j, "delta"), "stop_reason")->valuestring,
                "tool_use");
        }
        cJSON_Delete(j);
        p = e + 2;
    }
    assert_true(deltas >= 2); /* the input arrives in pieces */
    assert_int_equal(out_tokens, deltas);
    in = cJSON_Parse(input); /* the pieces join to the input JSON */
    assert_non_null(in);
    assert_string_equal(cJSON_GetObjectItem(in, "query")->valuestring,
                        LONG_KEPT);
    cJSON_Delete(in);
    resp_free(&r);
}

static void text_after_tool_result(void **state)
{
    struct resp r;
    const char *ok[] = {XKEY, VER, NULL};
    const char *turns =
        "[{\"role\":\"user\",\"content\":\"" ASK "\"},"
        "{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"toolu_1\","
        "\"name\":\"search\",\"input\":{\"query\":\"refunds\"}}]},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_1\","
        "\"content\":\"30 days\"}]}]";
    cJSON *j, *b;
    (void)state;

    post(&r, tool_body("", turns, 0), ok);
    assert_int_equal(r.status, 200);
    j = cJSON_Parse(r.body);
    assert_string_equal(cJSON_GetObjectItem(j, "stop_reason")->valuestring, "end_turn");
    b = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "content"), 0);
    assert_string_equal(cJSON_GetObjectItem(b, "type")->valuestring, "text");
    assert_true(strlen(cJSON_GetObjectItem(b, "text")->valuestring) > 0);
    cJSON_Delete(j);
    resp_free(&r);

    post(&r, tool_body("", turns, 1), ok);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"type\":\"text_delta\""));
    assert_null(strstr(r.body, "input_json_delta"));
    assert_non_null(strstr(r.body, "\"stop_reason\":\"end_turn\""));
    resp_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(nonstream_golden),
        cmocka_unit_test(stream_sequence),
        cmocka_unit_test(errors),
        cmocka_unit_test(stream_faults),
        cmocka_unit_test(tool_use_plain),
        cmocka_unit_test(tool_use_streamed),
        cmocka_unit_test(text_after_tool_result),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    curl_global_cleanup();
    return rc;
}
