/* test_fakeproviders_cache.c -- Anthropic prompt caching in the fake: the
 * usage figures of first sight, a read within the TTL, expiry after 5
 * minutes or 1 hour, the longest cached prefix, the 1024-token minimum, and
 * the same figures over HTTP, streaming and not.
 *
 * Golden numbers follow the fakes' estimate: a text costs ceil(bytes / 4)
 * tokens, a message 3 more, a request 3 more, a tool its JSON's bytes / 4. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>

#include "fakeproviders/fake_int.h"
#include "test_fakeproviders_util.h"

#define MIN_US (60ULL * 1000000ULL)

/* A request body: a system block of sys_bytes 'a's marked for caching
 * (ttl "" = 5 minutes), then one user message. Caller frees. */
static char *body_of(size_t sys_bytes, const char *ttl, const char *user, int stream)
{
    char *sys = malloc(sys_bytes + 1), *out;
    size_t n = sys_bytes + strlen(user) + 512;
    memset(sys, 'a', sys_bytes);
    sys[sys_bytes] = '\0';
    out = malloc(n);
    snprintf(out, n,
             "{\"model\":\"claude-x\",\"max_tokens\":64,%s\"system\":[{\"type\":\"text\","
             "\"text\":\"%s\",\"cache_control\":{\"type\":\"ephemeral\"%s%s%s}}],"
             "\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}]}",
             stream ? "\"stream\":true," : "", sys, ttl[0] ? ",\"ttl\":\"" : "", ttl,
             ttl[0] ? "\"" : "", user);
    free(sys);
    return out;
}

struct usage {
    int input, creation, read;
};

/* Looks the body up at now and, like an answered request, commits it. */
static struct usage play(struct fake_cache *c, const char *body, uint64_t now)
{
    struct fake_req r;
    cJSON *j = cJSON_Parse(body);
    struct usage u;
    memset(&r, 0, sizeof r);
    r.prompt_tokens = -1;
    fake_cache_lookup(c, &r, j, now);
    fake_cache_commit(c, &r, now);
    cJSON_Delete(j);
    u.input = r.prompt_tokens;
    u.creation = r.cache_creation;
    u.read = r.cache_read;
    return u;
}

#define ASSERT_USAGE(play_call, in, cr, rd)                                                    \
    do {                                                                                       \
        struct usage u_ = (play_call);                                                         \
        assert_int_equal(u_.input, (in));                                                      \
        assert_int_equal(u_.creation, (cr));                                                   \
        assert_int_equal(u_.read, (rd));                                                       \
    } while (0)

/* 4800 bytes of system = 1200 tokens; prefix 3 + 1200 = 1203.
 * "Hello" = 2 tokens + 3 for the message: 5 uncached. */
static void first_sight_then_read_then_expiry(void **state)
{
    struct fake_cache *c = fake_cache_new();
    char *b = body_of(4800, "", "Hello", 0), *b2 = body_of(4800, "", "Hello again, friend", 0);
    uint64_t t0 = 1000000;
    (void)state;
    ASSERT_USAGE(play(c, b, t0), 5, 1203, 0);               /* written */
    ASSERT_USAGE(play(c, b, t0 + 1000), 5, 0, 1203);        /* read */
    ASSERT_USAGE(play(c, b2, t0 + 2 * MIN_US), 8, 0, 1203); /* same prefix, new question */
    /* The read at 2 min refreshed the TTL: still there at 6 min... */
    ASSERT_USAGE(play(c, b, t0 + 6 * MIN_US), 5, 0, 1203);
    /* ...and gone 5 min after the last read. */
    ASSERT_USAGE(play(c, b, t0 + 11 * MIN_US + 1), 5, 1203, 0);
    free(b);
    free(b2);
    fake_cache_free(c);
}

static void one_hour_ttl(void **state)
{
    struct fake_cache *c = fake_cache_new();
    char *b = body_of(4800, "1h", "Hello", 0);
    (void)state;
    ASSERT_USAGE(play(c, b, 0 + 1), 5, 1203, 0);
    ASSERT_USAGE(play(c, b, 59 * MIN_US), 5, 0, 1203);
    ASSERT_USAGE(play(c, b, 59 * MIN_US + 61 * MIN_US), 5, 1203, 0);
    free(b);
    fake_cache_free(c);
}

/* Under 1024 tokens nothing is cached, marked or not: 800 tokens of system. */
static void below_minimum(void **state)
{
    struct fake_cache *c = fake_cache_new();
    char *b = body_of(3200, "", "Hello", 0);
    (void)state;
    ASSERT_USAGE(play(c, b, 1), 808, 0, 0);
    ASSERT_USAGE(play(c, b, 2), 808, 0, 0);
    free(b);
    fake_cache_free(c);
}

/* Two breakpoints: a tool (its JSON is 4100 bytes: 1025 tokens) and the
 * first user message (4000 bytes: 1000 tokens + 3). A second conversation
 * with the same tool reads the tool's prefix and writes its own. */
static void longest_prefix_is_read(void **state)
{
    struct fake_cache *c = fake_cache_new();
    char desc[4034 + 1], body[12000], user[4001];
    const char *tool_fmt = "{\"name\":\"t\",\"description\":\"%s\",\"cache_control\":{\"type\":"
                           "\"ephemeral\"}}";
    char tool[4200];
    uint64_t now = 5;
    (void)state;
    memset(desc, 'd', sizeof desc - 1);
    desc[sizeof desc - 1] = '\0';
    snprintf(tool, sizeof tool, tool_fmt, desc);
    assert_int_equal(strlen(tool), 4100);
    memset(user, 'u', 4000);
    user[4000] = '\0';
    snprintf(body, sizeof body,
             "{\"model\":\"m\",\"max_tokens\":8,\"tools\":[%s],\"messages\":[{\"role\":\"user\","
             "\"content\":[{\"type\":\"text\",\"text\":\"%s\",\"cache_control\":{\"type\":"
             "\"ephemeral\"}}]},{\"role\":\"user\",\"content\":\"Hi\"}]}",
             tool, user);
    /* tool 1025 (prefix 1028), message 3 + 1000 (prefix 2031), "Hi" 3 + 1. */
    ASSERT_USAGE(play(c, body, now), 4, 2031, 0);
    ASSERT_USAGE(play(c, body, now + 1), 4, 0, 2031);
    user[0] = 'v'; /* another conversation, same tools */
    snprintf(body, sizeof body,
             "{\"model\":\"m\",\"max_tokens\":8,\"tools\":[%s],\"messages\":[{\"role\":\"user\","
             "\"content\":[{\"type\":\"text\",\"text\":\"%s\",\"cache_control\":{\"type\":"
             "\"ephemeral\"}}]},{\"role\":\"user\",\"content\":\"Hi\"}]}",
             tool, user);
    ASSERT_USAGE(play(c, body, now + 2), 4, 1003, 1028);
    fake_cache_free(c);
}

/* Over HTTP: the non-streaming usage, then the streaming message_start and
 * message_delta of the same prompt read from the cache; five breakpoints are
 * refused like the API does. */
static void over_http(void **state)
{
    struct tsrv s;
    struct fake_spec spec;
    struct resp r;
    char url[256];
    const char *hdrs[] = {"x-api-key: sk-ant-test-secondary", "anthropic-version: 2023-06-01",
                          NULL};
    char *b = body_of(4800, "", "Hello", 0), *bs = body_of(4800, "", "Hello", 1);
    cJSON *j, *u;
    (void)state;
    tsrv_spec(&spec, "secondary", FAKE_ANTHROPIC);
    assert_int_equal(tsrv_start(&s, &spec), 0);
    snprintf(url, sizeof url, "%s/v1/messages", fake_url(s.f));

    /* A refused request (429) caches nothing. */
    {
        const char *rl[] = {hdrs[0], hdrs[1], "x-slodrill-fault: rate_limit", NULL};
        http_do(&r, url, NULL, b, rl, 3000);
        assert_int_equal(r.status, 429);
        resp_free(&r);
    }
    http_do(&r, url, NULL, b, hdrs, 3000);
    assert_int_equal(r.status, 200);
    j = cJSON_Parse(r.body);
    u = cJSON_GetObjectItem(j, "usage");
    assert_int_equal(cJSON_GetObjectItem(u, "input_tokens")->valueint, 5);
    assert_int_equal(cJSON_GetObjectItem(u, "cache_creation_input_tokens")->valueint, 1203);
    assert_int_equal(cJSON_GetObjectItem(u, "cache_read_input_tokens")->valueint, 0);
    cJSON_Delete(j);
    resp_free(&r);

    http_do(&r, url, NULL, bs, hdrs, 3000);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"usage\":{\"input_tokens\":5,\"cache_creation_input_tokens\":0,"
                                   "\"cache_read_input_tokens\":1203,\"output_tokens\":1,"));
    assert_non_null(strstr(r.body, "\"usage\":{\"input_tokens\":5,\"cache_creation_input_tokens\":0,"
                                   "\"cache_read_input_tokens\":1203,\"output_tokens\":"));
    assert_non_null(strstr(r.body, "event: message_stop"));
    resp_free(&r);

    {
        const char *five = "{\"model\":\"m\",\"max_tokens\":8,\"system\":["
                           "{\"type\":\"text\",\"text\":\"a\",\"cache_control\":{\"type\":\"ephemeral\"}},"
                           "{\"type\":\"text\",\"text\":\"b\",\"cache_control\":{\"type\":\"ephemeral\"}},"
                           "{\"type\":\"text\",\"text\":\"c\",\"cache_control\":{\"type\":\"ephemeral\"}},"
                           "{\"type\":\"text\",\"text\":\"d\",\"cache_control\":{\"type\":\"ephemeral\"}},"
                           "{\"type\":\"text\",\"text\":\"e\",\"cache_control\":{\"type\":\"ephemeral\"}}"
                           "],\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}";
        http_do(&r, url, NULL, five, hdrs, 3000);
        assert_int_equal(r.status, 400);
        assert_non_null(strstr(r.body, "\"type\":\"invalid_request_error\""));
        assert_non_null(strstr(r.body, "A maximum of 4 blocks with cache_control"));
        resp_free(&r);
    }
    free(b);
    free(bs);
    tsrv_stop(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(first_sight_then_read_then_expiry),
        cmocka_unit_test(one_hour_ttl),
        cmocka_unit_test(below_minimum),
        cmocka_unit_test(longest_prefix_is_read),
        cmocka_unit_test(over_http),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
