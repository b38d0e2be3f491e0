/* test_router_anthropic.c -- Anthropic upstreams: the pure translation (requests, answers,
 * errors, a recorded-shape stream from tests/data), then the router in front of the real fake
 * in Anthropic dialect: streamed and plain answers arrive as OpenAI chunks with [DONE] and a
 * priced usage, 529 fails over to an OpenAI deployment, a 400 comes back in OpenAI's format,
 * error events before and after the first token. Prompt caching: cache_control placed where
 * cache_control_injection_points say (and their config errors), and through the router the
 * second of two identical long-prompt requests reads the fake's cache and costs less. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>

#include "common/sse.h"
#include "router/anthropic.h"
#include "test_router_util.h"

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *s;
    long n;
    if (!f) fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    s = malloc((size_t)n + 1);
    assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return s;
}

static const char *str_at(const cJSON *o, const char *path)
{
    /* "a.b.0.c": objects by name, arrays by index */
    char buf[128], *save = NULL, *tok;
    const cJSON *x = o;
    snprintf(buf, sizeof buf, "%s", path);
    for (tok = strtok_r(buf, ".", &save); tok && x; tok = strtok_r(NULL, ".", &save))
        x = cJSON_IsArray(x) ? cJSON_GetArrayItem(x, (int)strtol(tok, NULL, 10))
                             : cJSON_GetObjectItemCaseSensitive(x, tok);
    return cJSON_IsString(x) ? x->valuestring : NULL;
}

static double num_at(const cJSON *o, const char *path)
{
    char buf[128], *save = NULL, *tok;
    const cJSON *x = o;
    snprintf(buf, sizeof buf, "%s", path);
    for (tok = strtok_r(buf, ".", &save); tok && x; tok = strtok_r(NULL, ".", &save))
        x = cJSON_IsArray(x) ? cJSON_GetArrayItem(x, (int)strtol(tok, NULL, 10))
                             : cJSON_GetObjectItemCaseSensitive(x, tok);
    return cJSON_IsNumber(x) ? x->valuedouble : -1;
}

/* ---- the pure translation ---- */

static void url_shapes(void **state)
{
    char *u;
    (void)state;
    u = anthropic_url("http://127.0.0.1:9");
    assert_string_equal(u, "http://127.0.0.1:9/v1/messages");
    free(u);
    u = anthropic_url("https://api.anthropic.com/v1");
    assert_string_equal(u, "https://api.anthropic.com/v1/messages");
    free(u);
    u = anthropic_url("https://gw.example/anthropic/v1/messages");
    assert_string_equal(u, "https://gw.example/anthropic/v1/messages");
    free(u);
}

static void request_translation(void **state)
{
    const char *in =
        "{\"model\":\"app/chat\",\"stream\":true,\"temperature\":1.7,\"top_p\":0.9,"
        "\"stop\":\"END\",\"user\":\"u-42\",\"stream_options\":{\"include_usage\":true},"
        "\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
        "{\"role\":\"developer\",\"content\":[{\"type\":\"text\",\"text\":\"No emojis.\"}]},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Hi\"},"
        "{\"type\":\"text\",\"text\":\"there\"}]},"
        "{\"role\":\"assistant\",\"content\":\"Hello!\"},"
        "{\"role\":\"assistant\",\"content\":null},"
        "{\"role\":\"user\",\"content\":\"Bye\"}]}";
    cJSON *req = cJSON_Parse(in), *out;
    char err[128], *s;
    const cJSON *msgs;
    (void)state;

    s = anthropic_request(req, "claude-3-5-haiku", NULL, err, sizeof err);
    assert_non_null(s);
    out = cJSON_Parse(s);
    assert_string_equal(str_at(out, "model"), "claude-3-5-haiku");
    assert_string_equal(str_at(out, "system"), "Be brief.\n\nNo emojis.");
    assert_true(num_at(out, "max_tokens") == ANTHROPIC_DEFAULT_MAX_TOKENS);
    assert_true(num_at(out, "temperature") == 1.0); /* clamped to Anthropic's range */
    assert_true(fabs(num_at(out, "top_p") - 0.9) < 1e-12);
    assert_string_equal(str_at(out, "stop_sequences.0"), "END");
    assert_string_equal(str_at(out, "metadata.user_id"), "u-42");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(out, "stream")));
    assert_null(cJSON_GetObjectItem(out, "stream_options"));
    msgs = cJSON_GetObjectItem(out, "messages");
    assert_int_equal(cJSON_GetArraySize(msgs), 3); /* system parts lifted, empty one dropped */
    assert_string_equal(str_at(out, "messages.0.role"), "user");
    assert_string_equal(str_at(out, "messages.0.content"), "Hi\nthere");
    assert_string_equal(str_at(out, "messages.1.role"), "assistant");
    assert_string_equal(str_at(out, "messages.1.content"), "Hello!");
    assert_string_equal(str_at(out, "messages.2.content"), "Bye");
    cJSON_Delete(out);
    free(s);
    /* the client's own limit wins; a stop list stays a list */
    cJSON_Delete(req);
    req = cJSON_Parse("{\"max_completion_tokens\":77,\"stop\":[\"a\",\"b\"],"
                      "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}");
    s = anthropic_request(req, "m", NULL, err, sizeof err);
    out = cJSON_Parse(s);
    assert_true(num_at(out, "max_tokens") == 77);
    assert_string_equal(str_at(out, "stop_sequences.1"), "b");
    assert_null(cJSON_GetObjectItem(out, "stream"));
    assert_null(cJSON_GetObjectItem(out, "system"));
    cJSON_Delete(out);
    free(s);
    cJSON_Delete(req);
}

static void answer_translation(void **state)
{
    size_t len;
    char *body = slurp("tests/data/router_anthropic_message.json", &len);
    struct anthropic_usage u;
    cJSON *j;
    (void)state;

    j = anthropic_response(body, len, 1755137933, &u);
    assert_non_null(j);
    assert_string_equal(str_at(j, "id"), "msg_01XFDUDYJgAACzvnptvVoYEL");
    assert_string_equal(str_at(j, "object"), "chat.completion");
    assert_true(num_at(j, "created") == 1755137933);
    assert_string_equal(str_at(j, "model"), "claude-3-5-haiku-20241022");
    assert_string_equal(str_at(j, "choices.0.message.role"), "assistant");
    assert_string_equal(str_at(j, "choices.0.message.content"), "Hello, world");
    assert_string_equal(str_at(j, "choices.0.finish_reason"), "stop");
    /* prompt_tokens counts the cache too, as OpenAI's does */
    assert_true(num_at(j, "usage.prompt_tokens") == 1112);
    assert_true(num_at(j, "usage.completion_tokens") == 6);
    assert_true(num_at(j, "usage.total_tokens") == 1118);
    assert_true(num_at(j, "usage.prompt_tokens_details.cached_tokens") == 1000);
    assert_int_equal(u.input, 12);
    assert_int_equal(u.cache_creation, 100);
    assert_int_equal(u.cache_read, 1000);
    assert_int_equal(u.output, 6);
    cJSON_Delete(j);
    free(body);
    /* not a Messages answer */
    assert_null(anthropic_response("{\"type\":\"error\"}", 16, 0, &u));
    assert_null(anthropic_response("<html>", 6, 0, &u));
    assert_string_equal(anthropic_finish_reason("max_tokens"), "length");
    assert_string_equal(anthropic_finish_reason("stop_sequence"), "stop");
    assert_string_equal(anthropic_finish_reason("tool_use"), "tool_calls");
    assert_null(anthropic_finish_reason(NULL));
}

static void error_translation(void **state)
{
    const char *ov = "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":"
                     "\"Overloaded\"},\"request_id\":\"req_011CSHoEeqs5C35K2UUqR7Fy\"}";
    const char *credit = "{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\","
                         "\"message\":\"Your credit balance is too low to access the Anthropic "
                         "API.\"}}";
    char *s, type[64];
    cJSON *j;
    (void)state;

    s = anthropic_error(ov, strlen(ov), 529);
    j = cJSON_Parse(s);
    assert_string_equal(str_at(j, "error.message"), "Overloaded");
    assert_string_equal(str_at(j, "error.type"), "service_unavailable_error");
    assert_string_equal(str_at(j, "error.code"), "server_is_overloaded");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "error"), "param")));
    cJSON_Delete(j);
    free(s);
    s = anthropic_error("Bad Gateway", 11, 502);
    j = cJSON_Parse(s);
    assert_non_null(strstr(str_at(j, "error.message"), "HTTP 502: Bad Gateway"));
    assert_string_equal(str_at(j, "error.type"), "server_error");
    cJSON_Delete(j);
    free(s);
    assert_int_equal(anthropic_error_type(ov, strlen(ov), type, sizeof type), 0);
    assert_string_equal(type, "overloaded_error");
    assert_int_equal(anthropic_error_type(credit, strlen(credit), type, sizeof type), 1);
}

struct collect {
    struct anthropic_stream *s;
    cJSON *chunks; /* array */
    int done;
};

static int collect_event(const char *event, const char *data, size_t len, const char *id,
                         void *arg)
{
    struct collect *c = arg;
    struct anthropic_out o;
    char err[128];
    int i;
    (void)id;
    if (anthropic_stream_event(c->s, event, data, len, &o, err, sizeof err) != 0) return -1;
    for (i = 0; i < o.n; i++) cJSON_AddItemToArray(c->chunks, o.chunk[i]);
    if (o.done) c->done++;
    return 0;
}

static void stream_translation(void **state)
{
    size_t len;
    char *text = slurp("tests/data/router_anthropic_stream.txt", &len), err[128];
    struct collect c;
    struct sse_parser *p;
    struct anthropic_usage u;
    const cJSON *ch;
    int n;
    (void)state;

    c.s = anthropic_stream_new(1755137933);
    c.chunks = cJSON_CreateArray();
    c.done = 0;
    p = sse_parser_new(0, collect_event, &c);
    assert_int_equal(sse_parser_feed(p, text, len, err, sizeof err), 0);
    n = cJSON_GetArraySize(c.chunks);
    /* role, 3 contents, finish, usage */
    assert_int_equal(n, 6);
    assert_int_equal(c.done, 1);
    ch = cJSON_GetArrayItem(c.chunks, 0);
    assert_string_equal(str_at(ch, "object"), "chat.completion.chunk");
    assert_string_equal(str_at(ch, "id"), "msg_014p7gG3wDgGV9EUtLvnow3U");
    assert_string_equal(str_at(ch, "model"), "claude-3-5-haiku-20241022");
    assert_string_equal(str_at(ch, "choices.0.delta.role"), "assistant");
    assert_string_equal(str_at(cJSON_GetArrayItem(c.chunks, 1), "choices.0.delta.content"), "Okay");
    assert_string_equal(str_at(cJSON_GetArrayItem(c.chunks, 3), "choices.0.delta.content"),
                        "'s go");
    ch = cJSON_GetArrayItem(c.chunks, 4);
    assert_string_equal(str_at(ch, "choices.0.finish_reason"), "length");
    ch = cJSON_GetArrayItem(c.chunks, 5);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(ch, "choices")), 0);
    assert_true(num_at(ch, "usage.prompt_tokens") == 472);
    assert_true(num_at(ch, "usage.completion_tokens") == 3); /* message_delta's total */
    anthropic_stream_usage(c.s, &u);
    assert_int_equal(u.output, 3);
    sse_parser_free(p);
    anthropic_stream_free(c.s);
    cJSON_Delete(c.chunks);
    free(text);
}

static void stream_error_event(void **state)
{
    struct anthropic_stream *s = anthropic_stream_new(1);
    struct anthropic_out o;
    char err[128];
    const char *ev = "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":"
                     "\"Overloaded\"}}";
    (void)state;
    assert_int_equal(anthropic_stream_event(s, "error", ev, strlen(ev), &o, err, sizeof err), 0);
    assert_int_equal(o.error, 1);
    assert_int_equal(o.n, 1);
    assert_string_equal(str_at(o.chunk[0], "error.code"), "server_is_overloaded");
    cJSON_Delete(o.chunk[0]);
    assert_int_equal(anthropic_stream_event(s, "ping", "{\"type\": \"ping\"}", 16, &o, err,
                                            sizeof err),
                     0);
    assert_int_equal(o.n, 0);
    assert_int_equal(anthropic_stream_event(s, "message_start", "{\"type\":", 8, &o, err,
                                            sizeof err),
                     -1);
    anthropic_stream_free(s);
}

/* ---- prompt caching on the way out ---- */

static const cJSON *cc_of(const cJSON *o, const char *path)
{
    char buf[128], *save = NULL, *tok;
    const cJSON *x = o;
    snprintf(buf, sizeof buf, "%s", path);
    for (tok = strtok_r(buf, ".", &save); tok && x; tok = strtok_r(NULL, ".", &save))
        x = cJSON_IsArray(x) ? cJSON_GetArrayItem(x, (int)strtol(tok, NULL, 10))
                             : cJSON_GetObjectItemCaseSensitive(x, tok);
    return x;
}

/* cache_control blocks in a Messages body: the system prompt's and the messages'. */
static int count_marks(const cJSON *out)
{
    int i, n = cc_of(out, "system.0.cache_control") != NULL;
    for (i = 0; i < cJSON_GetArraySize(cJSON_GetObjectItem(out, "messages")); i++) {
        char path[64];
        snprintf(path, sizeof path, "messages.%d.content.0.cache_control", i);
        n += cc_of(out, path) != NULL;
    }
    return n;
}

static void cache_points_placed(void **state)
{
    const char *in =
        "{\"messages\":[{\"role\":\"system\",\"content\":\"Rules.\"},"
        "{\"role\":\"developer\",\"content\":\"More rules.\"},"
        "{\"role\":\"user\",\"content\":\"u1\"},{\"role\":\"assistant\",\"content\":\"a1\"},"
        "{\"role\":\"user\",\"content\":\"u2\"},{\"role\":\"assistant\",\"content\":\"a2\"},"
        "{\"role\":\"user\",\"content\":\"u3\"},{\"role\":\"assistant\",\"content\":\"a3\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"u4\"}]}]}";
    struct anthropic_cache_point sys = {ANTHROPIC_ROLE_SYSTEM, 0, 0, 0};
    struct anthropic_cache_point pts[3];
    struct anthropic_opts o = {&sys, 1};
    cJSON *req = cJSON_Parse(in), *out;
    char err[128], *s;
    (void)state;

    /* role: system: the whole system prompt becomes one marked text block */
    s = anthropic_request(req, "m", &o, err, sizeof err);
    out = cJSON_Parse(s);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(out, "system")), 1);
    assert_string_equal(str_at(out, "system.0.type"), "text");
    assert_string_equal(str_at(out, "system.0.text"), "Rules.\n\nMore rules.");
    assert_string_equal(str_at(out, "system.0.cache_control.type"), "ephemeral");
    assert_null(cc_of(out, "system.0.cache_control.ttl"));
    assert_string_equal(str_at(out, "messages.0.content"), "u1"); /* others untouched */
    cJSON_Delete(out);
    free(s);

    /* every user message, and index -1 (the last message) for 1h: 4 marks; the last one's
     * 1h follows 5-minute marks, and the API wants longer TTLs first: 5 minutes */
    memset(pts, 0, sizeof pts);
    pts[0].role = ANTHROPIC_ROLE_USER;
    pts[1].has_index = 1;
    pts[1].index = -1;
    pts[1].ttl_1h = 1;
    o.cache = pts;
    o.ncache = 2;
    s = anthropic_request(req, "m", &o, err, sizeof err);
    out = cJSON_Parse(s);
    assert_true(cJSON_IsString(cJSON_GetObjectItem(out, "system"))); /* not targeted */
    assert_int_equal(count_marks(out), 4);
    assert_string_equal(str_at(out, "messages.0.content.0.text"), "u1");
    assert_string_equal(str_at(out, "messages.0.content.0.cache_control.type"), "ephemeral");
    assert_string_equal(str_at(out, "messages.1.content"), "a1");
    assert_string_equal(str_at(out, "messages.6.content.0.text"), "u4");
    assert_null(cc_of(out, "messages.6.content.0.cache_control.ttl"));
    cJSON_Delete(out);
    free(s);

    /* the system prompt too: 5 wanted, 4 placed -- the system prompt's, then the latest */
    pts[2].role = ANTHROPIC_ROLE_SYSTEM;
    o.ncache = 3;
    s = anthropic_request(req, "m", &o, err, sizeof err);
    out = cJSON_Parse(s);
    assert_int_equal(count_marks(out), 4);
    assert_string_equal(str_at(out, "system.0.cache_control.type"), "ephemeral");
    assert_string_equal(str_at(out, "messages.0.content"), "u1"); /* the oldest: left out */
    assert_string_equal(str_at(out, "messages.2.content.0.cache_control.type"), "ephemeral");
    cJSON_Delete(out);
    free(s);

    /* system and index -1, both 1h: both keep 1h */
    memset(pts, 0, sizeof pts);
    pts[0].role = ANTHROPIC_ROLE_SYSTEM;
    pts[0].ttl_1h = 1;
    pts[1].has_index = 1;
    pts[1].index = -1;
    pts[1].ttl_1h = 1;
    o.ncache = 2;
    s = anthropic_request(req, "m", &o, err, sizeof err);
    out = cJSON_Parse(s);
    assert_int_equal(count_marks(out), 2);
    assert_string_equal(str_at(out, "system.0.cache_control.ttl"), "1h");
    assert_string_equal(str_at(out, "messages.6.content.0.cache_control.ttl"), "1h");
    assert_true(cJSON_IsString(cc_of(out, "messages.5.content")));
    cJSON_Delete(out);
    free(s);
    cJSON_Delete(req);

    /* a client's own cache_control on a content part is kept (LiteLLM passes it through) */
    req = cJSON_Parse("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\","
                      "\"text\":\"doc\",\"cache_control\":{\"type\":\"ephemeral\"}}]},"
                      "{\"role\":\"user\",\"content\":\"q\"}]}");
    s = anthropic_request(req, "m", NULL, err, sizeof err);
    out = cJSON_Parse(s);
    assert_string_equal(str_at(out, "messages.0.content.0.cache_control.type"), "ephemeral");
    assert_string_equal(str_at(out, "messages.1.content"), "q");
    cJSON_Delete(out);
    free(s);
    cJSON_Delete(req);
}

static void warn_keep(const char *msg, void *arg)
{
    char *w = arg;
    size_t off = strlen(w);
    snprintf(w + off, 1024 - off, "%s\n", msg);
}

/* A config text -> loaded (NULL on error, err filled); warnings into warn (1024 bytes). */
static struct router_config *load_yaml(const char *text, char *err, size_t errlen, char *warn)
{
    char path[] = "/tmp/slodrill-antcfg-XXXXXX";
    int fd = mkstemp(path);
    struct router_config *cfg;
    FILE *f;
    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    fputs(text, f);
    fclose(f);
    warn[0] = '\0';
    cfg = router_config_load(path, NULL, NULL, warn_keep, warn, err, errlen);
    unlink(path);
    return cfg;
}

static void cache_points_config(void **state)
{
    char err[512], warn[1024], text[1024];
    struct router_config *cfg;
    static const struct {
        const char *points, *want;
    } bad[] = {
        {"[{location: tool, role: system}]", ":5:51: location must be message"},
        {"[{location: message, role: tool}]", ":5:66: role must be system, user or assistant"},
        {"[{location: message}]", ":5:40: an injection point needs a role or an index"},
        {"[{location: message, index: last}]", ":5:67: "},
        {"[{location: message, role: user, control: {type: ephemeral, ttl: 2h}}]",
         ":5:104: control.ttl must be 5m or 1h"},
        {"[{location: message, role: user, rol: x}]", ":5:72: unknown key 'rol'"},
        {"{location: message, role: system}", ":5:39: cache_control_injection_points must be a list"},
    };
    size_t i;
    (void)state;

    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(text, sizeof text,
                 "model_list:\n  - model_name: a\n    litellm_params:\n      model: anthropic/c\n"
                 "      cache_control_injection_points: %s\n",
                 bad[i].points);
        err[0] = '\0';
        cfg = load_yaml(text, err, sizeof err, warn);
        if (cfg || !strstr(err, bad[i].want))
            fail_msg("%s: got '%s', want '%s'", bad[i].points, err, bad[i].want);
    }
    cfg = load_yaml("model_list:\n  - model_name: a\n    litellm_params:\n"
                    "      model: anthropic/c\n      cache_control_injection_points:\n"
                    "        - location: message\n          role: system\n"
                    "        - {location: message, index: -1, control: {type: ephemeral, ttl: 1h}}\n"
                    "  - model_name: b\n    litellm_params:\n      model: openai/g\n"
                    "      cache_control_injection_points: [{location: message, role: system}]\n",
                    err, sizeof err, warn);
    assert_non_null(cfg);
    assert_null(strstr(warn, "unknown key"));
    /* an OpenAI deployment: accepted, said to have no effect */
    assert_non_null(strstr(warn, "has no effect on 'openai/g'"));
    router_config_free(cfg);
}

/* ---- tool calls and images ---- */

/* The Messages body for an OpenAI request text (opts may be NULL); fails the test when the
 * translation refuses it. Caller frees. */
static char *translate(const char *in, const struct anthropic_opts *o)
{
    cJSON *req = cJSON_Parse(in);
    char err[256], *s;
    if (!req) fail_msg("test input is not JSON: %s", in);
    s = anthropic_request(req, "claude-x", o, err, sizeof err);
    cJSON_Delete(req);
    if (!s) fail_msg("translation refused: %s", err);
    return s;
}

/* The translation's error for an OpenAI request text that must be refused. */
static void refused(const char *in, const char *want)
{
    cJSON *req = cJSON_Parse(in);
    char err[256] = "", *s;
    if (!req) fail_msg("test input is not JSON: %s", in);
    s = anthropic_request(req, "claude-x", NULL, err, sizeof err);
    cJSON_Delete(req);
    if (s || !strstr(err, want)) fail_msg("%s: got '%s' (%s), want '%s'", in, err, s ? s : "NULL", want);
}

/* A whole agent turn: tools, a forced call, two calls answered by two tool messages that
 * share one user turn with the user's next words. Byte for byte. */
static void request_tools_golden(void **state)
{
    const char *in =
        "{\"model\":\"app/agent\",\"tool_choice\":\"required\",\"parallel_tool_calls\":false,"
        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
        "\"description\":\"Weather for a city\",\"parameters\":{\"type\":\"object\","
        "\"properties\":{\"city\":{\"type\":\"string\"}},\"required\":[\"city\"]}}},"
        "{\"type\":\"function\",\"function\":{\"name\":\"now\"}}],"
        "\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
        "{\"role\":\"user\",\"content\":\"Weather in Paris and Rome?\"},"
        "{\"role\":\"assistant\",\"content\":\"Checking.\",\"tool_calls\":["
        "{\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
        "\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}},"
        "{\"id\":\"call_2\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
        "\"arguments\":\"{\\\"city\\\": \\\"Rome\\\"}\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"call_1\",\"content\":\"18C\"},"
        "{\"role\":\"tool\",\"tool_call_id\":\"call_2\",\"content\":[{\"type\":\"text\","
        "\"text\":\"21C\"}]},"
        "{\"role\":\"user\",\"content\":\"And tomorrow?\"}]}";
    const char *want =
        "{\"model\":\"claude-x\",\"max_tokens\":1024,\"system\":\"Be brief.\",\"messages\":["
        "{\"role\":\"user\",\"content\":\"Weather in Paris and Rome?\"},"
        "{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"Checking.\"},"
        "{\"type\":\"tool_use\",\"id\":\"call_1\",\"name\":\"get_weather\",\"input\":{\"city\":"
        "\"Paris\"}},{\"type\":\"tool_use\",\"id\":\"call_2\",\"name\":\"get_weather\","
        "\"input\":{\"city\":\"Rome\"}}]},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"call_1\","
        "\"content\":\"18C\"},{\"type\":\"tool_result\",\"tool_use_id\":\"call_2\",\"content\":"
        "\"21C\"},{\"type\":\"text\",\"text\":\"And tomorrow?\"}]}],"
        "\"tools\":[{\"name\":\"get_weather\",\"description\":\"Weather for a city\","
        "\"input_schema\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}},"
        "\"required\":[\"city\"]}},{\"name\":\"now\",\"input_schema\":{\"type\":\"object\","
        "\"properties\":{}}}],"
        "\"tool_choice\":{\"type\":\"any\",\"disable_parallel_tool_use\":true}}";
    char *s;
    (void)state;

    s = translate(in, NULL);
    assert_string_equal(s, want);
    free(s);
}

/* The tool-call details one by one: tool_choice variants, legacy functions, empty arguments,
 * empty results, results after a plain assistant answer, and the refusals. */
static void request_tool_details(void **state)
{
    static const struct {
        const char *extra, *want; /* want: the tool_choice printed, "" none */
    } choice[] = {
        {"\"tool_choice\":\"auto\"", "{\"type\":\"auto\"}"},
        {"\"tool_choice\":\"none\"", "{\"type\":\"none\"}"},
        {"\"tool_choice\":\"none\",\"parallel_tool_calls\":false", "{\"type\":\"none\"}"},
        {"\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"now\"}}",
         "{\"type\":\"tool\",\"name\":\"now\"}"},
        {"\"tool_choice\":\"auto\",\"parallel_tool_calls\":false",
         "{\"type\":\"auto\",\"disable_parallel_tool_use\":true}"},
        {"\"parallel_tool_calls\":false", "{\"type\":\"auto\",\"disable_parallel_tool_use\":true}"},
        {"\"parallel_tool_calls\":true", ""},
        {"\"tool_choice\":null", ""},
    };
    char in[1024], *s;
    cJSON *out;
    size_t i;
    (void)state;

    for (i = 0; i < sizeof choice / sizeof choice[0]; i++) {
        char *tc;
        snprintf(in, sizeof in,
                 "{\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"now\"}}],%s,"
                 "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
                 choice[i].extra);
        s = translate(in, NULL);
        out = cJSON_Parse(s);
        assert_string_equal(str_at(out, "tools.0.name"), "now");
        tc = cJSON_GetObjectItem(out, "tool_choice")
                 ? cJSON_PrintUnformatted(cJSON_GetObjectItem(out, "tool_choice"))
                 : strdup("");
        if (strcmp(tc, choice[i].want))
            fail_msg("%s: tool_choice %s, want %s", choice[i].extra, tc, choice[i].want);
        free(tc);
        cJSON_Delete(out);
        free(s);
    }

    /* no tools: neither tools nor a tool_choice go out (the API refuses a lone tool_choice) */
    s = translate("{\"tool_choice\":\"auto\",\"tools\":[],\"messages\":[{\"role\":\"user\","
                  "\"content\":\"hi\"}]}",
                  NULL);
    assert_null(strstr(s, "tool"));
    free(s);

    /* legacy functions/function_call, a function_call turn and its function result */
    s = translate("{\"functions\":[{\"name\":\"now\",\"parameters\":{\"type\":\"object\"}}],"
                  "\"function_call\":{\"name\":\"now\"},\"messages\":["
                  "{\"role\":\"user\",\"content\":\"time?\"},"
                  "{\"role\":\"assistant\",\"content\":null,\"function_call\":{\"name\":\"now\","
                  "\"arguments\":\"\"}},"
                  "{\"role\":\"function\",\"name\":\"now\",\"content\":\"12:00\"}]}",
                  NULL);
    out = cJSON_Parse(s);
    assert_string_equal(str_at(out, "tools.0.name"), "now");
    assert_string_equal(str_at(out, "tools.0.input_schema.type"), "object");
    assert_string_equal(str_at(out, "tool_choice.type"), "tool");
    assert_string_equal(str_at(out, "tool_choice.name"), "now");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(out, "messages")), 3);
    assert_string_equal(str_at(out, "messages.1.content.0.type"), "tool_use"); /* no text block */
    assert_string_equal(str_at(out, "messages.1.content.0.id"), "toolu_fn_1");
    assert_true(cJSON_IsObject(cc_of(out, "messages.1.content.0.input"))); /* "" -> {} */
    assert_null(cc_of(out, "messages.1.content.0.input")->child);
    assert_string_equal(str_at(out, "messages.2.role"), "user");
    assert_string_equal(str_at(out, "messages.2.content.0.type"), "tool_result");
    assert_string_equal(str_at(out, "messages.2.content.0.tool_use_id"), "toolu_fn_1");
    assert_string_equal(str_at(out, "messages.2.content.0.content"), "12:00");
    cJSON_Delete(out);
    free(s);

    /* an empty result has no content member (the API refuses empty text); the next
     * assistant turn closes the user turn, so a later user message stands alone */
    s = translate("{\"messages\":[{\"role\":\"user\",\"content\":\"go\"},"
                  "{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\","
                  "\"function\":{\"name\":\"ping\",\"arguments\":\"{}\"}}]},"
                  "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"\"},"
                  "{\"role\":\"assistant\",\"content\":\"Done.\"},"
                  "{\"role\":\"user\",\"content\":\"thanks\"}]}",
                  NULL);
    out = cJSON_Parse(s);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(out, "messages")), 5);
    assert_string_equal(str_at(out, "messages.2.content.0.tool_use_id"), "c1");
    assert_null(cc_of(out, "messages.2.content.0.content"));
    assert_string_equal(str_at(out, "messages.3.content"), "Done.");
    assert_string_equal(str_at(out, "messages.4.content"), "thanks");
    assert_null(strstr(s, "\"tools\"")); /* none given: none sent */
    cJSON_Delete(out);
    free(s);

    /* what the translation refuses, with the place named */
    refused("{\"tool_choice\":\"sometimes\",\"tools\":[{\"type\":\"function\",\"function\":"
            "{\"name\":\"a\"}}],\"messages\":[]}",
            "tool_choice must be auto, required, none");
    refused("{\"tools\":[{\"type\":\"custom\",\"custom\":{\"name\":\"a\"}}],\"messages\":[]}",
            "tools[0]: only function tools");
    refused("{\"tools\":[{\"type\":\"function\",\"function\":{\"description\":\"x\"}}],"
            "\"messages\":[]}",
            "tools[0]: a tool needs function.name");
    refused("{\"messages\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\","
            "\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":\"a\","
            "\"arguments\":\"{\\\"x\\\":\"}}]}]}",
            "messages[1]: the arguments of tool call c1 are not a JSON object");
    refused("{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c1\","
            "\"type\":\"function\",\"function\":{\"name\":\"a\",\"arguments\":\"[1,2]\"}}]}]}",
            "are not a JSON object");
    refused("{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"type\":\"function\","
            "\"function\":{\"name\":\"a\",\"arguments\":\"{}\"}}]}]}",
            "messages[0]: a tool call needs an id");
    refused("{\"messages\":[{\"role\":\"tool\",\"content\":\"r\"}]}",
            "messages[0]: a tool message needs tool_call_id");
    refused("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
            "\"image_url\":{\"url\":\"ftp://x/cat.png\"}}]}]}",
            "messages[0]: an image URL must be http(s) or a base64 data: URL");
    refused("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
            "\"image_url\":{\"url\":\"data:image/png,iVBOR\"}}]}]}",
            "must be data:<media type>;base64,<data>");
    refused("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
            "\"image_url\":{}}]}]}",
            "an image_url part needs image_url.url");
}

/* Images: a data: URL becomes a base64 source, an http(s) URL a url source, text parts
 * text blocks, in the client's order; a message without images keeps the string form. */
static void request_images(void **state)
{
    const char *in =
        "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},"
        "{\"type\":\"text\",\"text\":\"b\"}]},"
        "{\"role\":\"assistant\",\"content\":\"ok\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"What is this?\"},"
        "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,iVBORw0KGgo=\"}},"
        "{\"type\":\"text\",\"text\":\"\"},"
        "{\"type\":\"image_url\",\"image_url\":{\"url\":\"https://example.com/cat.jpg\","
        "\"detail\":\"high\"}},"
        "{\"type\":\"input_audio\",\"input_audio\":{\"data\":\"x\",\"format\":\"wav\"}},"
        "{\"type\":\"text\",\"text\":\"Short answer.\"}]}]}";
    const char *want =
        "[{\"type\":\"text\",\"text\":\"What is this?\"},"
        "{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":\"image/png\","
        "\"data\":\"iVBORw0KGgo=\"}},"
        "{\"type\":\"image\",\"source\":{\"type\":\"url\",\"url\":\"https://example.com/cat.jpg\"}},"
        "{\"type\":\"text\",\"text\":\"Short answer.\"}]";
    char *s, *c;
    cJSON *out;
    (void)state;

    s = translate(in, NULL);
    out = cJSON_Parse(s);
    assert_string_equal(str_at(out, "messages.0.content"), "a\nb"); /* no image: a string */
    assert_string_equal(str_at(out, "messages.1.content"), "ok");
    c = cJSON_PrintUnformatted(cJSON_GetObjectItem(cJSON_GetArrayItem(
        cJSON_GetObjectItem(out, "messages"), 2), "content"));
    assert_string_equal(c, want);
    free(c);
    cJSON_Delete(out);
    free(s);

    /* an image alone is a message too; image_url as a bare string (LiteLLM accepts it) */
    s = translate("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
                  "\"image_url\":\"http://img.example/x.gif\"}]}]}",
                  NULL);
    out = cJSON_Parse(s);
    assert_string_equal(str_at(out, "messages.0.content.0.source.url"), "http://img.example/x.gif");
    assert_int_equal(cJSON_GetArraySize(cc_of(out, "messages.0.content")), 1);
    cJSON_Delete(out);
    free(s);
}

/* Cache marks on messages sent as blocks: a marked client message's last block carries the
 * mark, also inside a merged user turn; the limit of 4 still holds. */
static void cache_marks_on_blocks(void **state)
{
    const char *in =
        "{\"messages\":[{\"role\":\"system\",\"content\":\"Rules.\"},"
        "{\"role\":\"user\",\"content\":\"u1\"},"
        "{\"role\":\"assistant\",\"content\":\"Let me look.\",\"tool_calls\":[{\"id\":\"c1\","
        "\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"r1\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"look\"},"
        "{\"type\":\"image_url\",\"image_url\":{\"url\":\"https://e.x/a.png\"}}]}]}";
    struct anthropic_cache_point pts[4];
    struct anthropic_opts o = {pts, 2};
    cJSON *out;
    char *s;
    (void)state;

    /* every user message, and the tool result by index (3) */
    memset(pts, 0, sizeof pts);
    pts[0].role = ANTHROPIC_ROLE_USER;
    pts[1].has_index = 1;
    pts[1].index = 3;
    s = translate(in, &o);
    out = cJSON_Parse(s);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(out, "messages")), 3);
    /* the string-form user message: one marked text block, as before */
    assert_string_equal(str_at(out, "messages.0.content.0.text"), "u1");
    assert_string_equal(str_at(out, "messages.0.content.0.cache_control.type"), "ephemeral");
    /* the assistant turn is not targeted */
    assert_null(cc_of(out, "messages.1.content.0.cache_control"));
    assert_null(cc_of(out, "messages.1.content.1.cache_control"));
    /* the merged user turn: the result's block (its client message's last) and the image
     * (the last of the user's), not the text between */
    assert_string_equal(str_at(out, "messages.2.content.0.type"), "tool_result");
    assert_string_equal(str_at(out, "messages.2.content.0.cache_control.type"), "ephemeral");
    assert_null(cc_of(out, "messages.2.content.1.cache_control"));
    assert_string_equal(str_at(out, "messages.2.content.2.type"), "image");
    assert_string_equal(str_at(out, "messages.2.content.2.cache_control.type"), "ephemeral");
    assert_int_equal(cJSON_GetArraySize(cc_of(out, "messages.2.content")), 3);
    cJSON_Delete(out);
    free(s);

    /* + the assistant: its last block, the tool_use, carries it; 4 marks */
    pts[2].role = ANTHROPIC_ROLE_ASSISTANT;
    o.ncache = 3;
    s = translate(in, &o);
    out = cJSON_Parse(s);
    assert_string_equal(str_at(out, "messages.0.content.0.cache_control.type"), "ephemeral");
    assert_null(cc_of(out, "messages.1.content.0.cache_control"));
    assert_string_equal(str_at(out, "messages.1.content.1.type"), "tool_use");
    assert_string_equal(str_at(out, "messages.1.content.1.cache_control.type"), "ephemeral");
    assert_non_null(cc_of(out, "messages.2.content.0.cache_control"));
    assert_non_null(cc_of(out, "messages.2.content.2.cache_control"));
    cJSON_Delete(out);
    free(s);
    /* + the system prompt: 5 wanted, 4 out; the oldest message's mark gives way */
    pts[3].role = ANTHROPIC_ROLE_SYSTEM;
    o.ncache = 4;
    s = translate(in, &o);
    out = cJSON_Parse(s);
    assert_string_equal(str_at(out, "system.0.cache_control.type"), "ephemeral");
    assert_true(cJSON_IsString(cc_of(out, "messages.0.content")));
    assert_non_null(cc_of(out, "messages.1.content.1.cache_control"));
    assert_non_null(cc_of(out, "messages.2.content.0.cache_control"));
    assert_non_null(cc_of(out, "messages.2.content.2.cache_control"));
    cJSON_Delete(out);
    free(s);
}

/* tool_use blocks come back as tool_calls whose arguments are the input as a JSON string;
 * content is null when there is no text. */
static void answer_tool_calls(void **state)
{
    const char *only = "{\"id\":\"msg_01T\",\"type\":\"message\",\"role\":\"assistant\","
                       "\"model\":\"claude-x\",\"content\":[{\"type\":\"tool_use\",\"id\":"
                       "\"toolu_01A\",\"name\":\"get_weather\",\"input\":{\"city\":\"Paris\","
                       "\"days\":[1, 2]}}],\"stop_reason\":\"tool_use\",\"stop_sequence\":null,"
                       "\"usage\":{\"input_tokens\":10,\"output_tokens\":5}}";
    const char *both = "{\"id\":\"msg_01U\",\"type\":\"message\",\"role\":\"assistant\","
                       "\"model\":\"claude-x\",\"content\":[{\"type\":\"text\",\"text\":"
                       "\"Let me check.\"},{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":"
                       "\"a\",\"input\":{}},{\"type\":\"tool_use\",\"id\":\"toolu_2\",\"name\":"
                       "\"b\",\"input\":{\"q\":\"x\\\"y\"}}],\"stop_reason\":\"tool_use\","
                       "\"usage\":{\"input_tokens\":10,\"output_tokens\":9}}";
    struct anthropic_usage u;
    cJSON *j, *args;
    (void)state;

    j = anthropic_response(only, strlen(only), 1, &u);
    assert_non_null(j);
    assert_true(cJSON_IsNull(cc_of(j, "choices.0.message.content")));
    assert_string_equal(str_at(j, "choices.0.finish_reason"), "tool_calls");
    assert_int_equal(cJSON_GetArraySize(cc_of(j, "choices.0.message.tool_calls")), 1);
    assert_string_equal(str_at(j, "choices.0.message.tool_calls.0.id"), "toolu_01A");
    assert_string_equal(str_at(j, "choices.0.message.tool_calls.0.type"), "function");
    assert_string_equal(str_at(j, "choices.0.message.tool_calls.0.function.name"), "get_weather");
    assert_string_equal(str_at(j, "choices.0.message.tool_calls.0.function.arguments"),
                        "{\"city\":\"Paris\",\"days\":[1,2]}");
    assert_int_equal(u.output, 5);
    cJSON_Delete(j);

    j = anthropic_response(both, strlen(both), 1, &u);
    assert_non_null(j);
    assert_string_equal(str_at(j, "choices.0.message.content"), "Let me check.");
    assert_int_equal(cJSON_GetArraySize(cc_of(j, "choices.0.message.tool_calls")), 2);
    assert_string_equal(str_at(j, "choices.0.message.tool_calls.0.function.arguments"), "{}");
    assert_string_equal(str_at(j, "choices.0.message.tool_calls.1.function.name"), "b");
    args = cJSON_Parse(str_at(j, "choices.0.message.tool_calls.1.function.arguments"));
    assert_string_equal(str_at(args, "q"), "x\"y");
    cJSON_Delete(args);
    cJSON_Delete(j);

    /* no tools: no tool_calls member, content stays a string */
    j = anthropic_response("{\"type\":\"message\",\"content\":[]}", 32, 1, &u);
    assert_non_null(j);
    assert_string_equal(str_at(j, "choices.0.message.content"), "");
    assert_null(cc_of(j, "choices.0.message.tool_calls"));
    cJSON_Delete(j);
}

/* A recorded-shape stream with text, then two tool_use blocks (the second at Anthropic
 * index 2): a chunk per tool start with index, id, type and name, then argument fragments
 * that join to the input; finish_reason tool_calls. */
static const char tool_stream[] =
    "event: message_start\n"
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01Tool\",\"type\":\"message\","
    "\"role\":\"assistant\",\"model\":\"claude-x\",\"content\":[],\"stop_reason\":null,"
    "\"usage\":{\"input_tokens\":400,\"output_tokens\":1}}   }\n\n"
    "event: content_block_start\n"
    "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\","
    "\"text\":\"\"}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
    "\"text\":\"Let me check.\"}}\n\n"
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
    "event: content_block_start\n"
    "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":"
    "\"tool_use\",\"id\":\"toolu_01A\",\"name\":\"get_weather\",\"input\":{}}}\n\n"
    "event: ping\ndata: {\"type\": \"ping\"}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":"
    "\"input_json_delta\",\"partial_json\":\"\"}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":"
    "\"input_json_delta\",\"partial_json\":\"{\\\"city\\\": \\\"Pa\"}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":"
    "\"input_json_delta\",\"partial_json\":\"ris\\\"}\"}}\n\n"
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n"
    "event: content_block_start\n"
    "data: {\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":"
    "\"tool_use\",\"id\":\"toolu_01B\",\"name\":\"now\",\"input\":{}}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":"
    "\"input_json_delta\",\"partial_json\":\"{}\"}}\n\n"
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":2}\n\n"
    "event: message_delta\n"
    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\","
    "\"stop_sequence\":null},\"usage\":{\"output_tokens\":42}}\n\n"
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

static void stream_tool_calls(void **state)
{
    struct collect c;
    struct sse_parser *p;
    char err[128], args[256] = "";
    const cJSON *ch;
    cJSON *in;
    int i;
    (void)state;

    c.s = anthropic_stream_new(1);
    c.chunks = cJSON_CreateArray();
    c.done = 0;
    p = sse_parser_new(0, collect_event, &c);
    assert_int_equal(sse_parser_feed(p, tool_stream, strlen(tool_stream), err, sizeof err), 0);
    /* role, text, tool 0 start, 2 fragments (the empty one: none), tool 1 start, 1 fragment,
     * finish, usage */
    assert_int_equal(cJSON_GetArraySize(c.chunks), 9);
    assert_int_equal(c.done, 1);
    assert_string_equal(str_at(cJSON_GetArrayItem(c.chunks, 1), "choices.0.delta.content"),
                        "Let me check.");
    ch = cJSON_GetArrayItem(c.chunks, 2);
    assert_string_equal(str_at(ch, "object"), "chat.completion.chunk");
    assert_string_equal(str_at(ch, "id"), "msg_01Tool");
    assert_true(num_at(ch, "choices.0.delta.tool_calls.0.index") == 0);
    assert_string_equal(str_at(ch, "choices.0.delta.tool_calls.0.id"), "toolu_01A");
    assert_string_equal(str_at(ch, "choices.0.delta.tool_calls.0.type"), "function");
    assert_string_equal(str_at(ch, "choices.0.delta.tool_calls.0.function.name"), "get_weather");
    assert_string_equal(str_at(ch, "choices.0.delta.tool_calls.0.function.arguments"), "");
    assert_null(cc_of(ch, "choices.0.delta.content"));
    assert_true(cJSON_IsNull(cc_of(ch, "choices.0.finish_reason")));
    for (i = 3; i <= 4; i++) {
        ch = cJSON_GetArrayItem(c.chunks, i);
        assert_true(num_at(ch, "choices.0.delta.tool_calls.0.index") == 0);
        assert_null(cc_of(ch, "choices.0.delta.tool_calls.0.id")); /* only the first has it */
        assert_null(cc_of(ch, "choices.0.delta.tool_calls.0.function.name"));
        snprintf(args + strlen(args), sizeof args - strlen(args), "%s",
                 str_at(ch, "choices.0.delta.tool_calls.0.function.arguments"));
    }
    in = cJSON_Parse(args);
    assert_string_equal(str_at(in, "city"), "Paris");
    cJSON_Delete(in);
    ch = cJSON_GetArrayItem(c.chunks, 5);
    assert_true(num_at(ch, "choices.0.delta.tool_calls.0.index") == 1); /* counted from 0 */
    assert_string_equal(str_at(ch, "choices.0.delta.tool_calls.0.id"), "toolu_01B");
    assert_string_equal(str_at(ch, "choices.0.delta.tool_calls.0.function.name"), "now");
    ch = cJSON_GetArrayItem(c.chunks, 6);
    assert_true(num_at(ch, "choices.0.delta.tool_calls.0.index") == 1);
    assert_string_equal(str_at(ch, "choices.0.delta.tool_calls.0.function.arguments"), "{}");
    assert_string_equal(str_at(cJSON_GetArrayItem(c.chunks, 7), "choices.0.finish_reason"),
                        "tool_calls");
    assert_true(num_at(cJSON_GetArrayItem(c.chunks, 8), "usage.completion_tokens") == 42);
    sse_parser_free(p);
    anthropic_stream_free(c.s);
    cJSON_Delete(c.chunks);
}

/* ---- through the router, against the real fake ---- */

static const char *yaml =
    "model_list:\n"
    "  - model_name: app/claude\n"
    "    litellm_params:\n"
    "      model: anthropic/claude-3-5-haiku\n"
    "      api_base: os.environ/S_BASE\n"
    "      api_key: os.environ/S_KEY\n"
    "      input_cost_per_token: 0.0000008\n"
    "      output_cost_per_token: 0.000004\n"
    "    model_info: {id: claude}\n"
    "  - model_name: app/chat\n"
    "    litellm_params: {model: anthropic/claude-3-5-haiku, api_base: os.environ/S_BASE, "
    "api_key: os.environ/S_KEY, order: 1}\n"
    "    model_info: {id: secondary}\n"
    "  - model_name: app/chat\n"
    "    litellm_params: {model: openai/gpt-p, api_base: os.environ/P_BASE, "
    "api_key: os.environ/P_KEY, order: 2}\n"
    "    model_info: {id: primary}\n"
    "router_settings: {allowed_fails: 3, cooldown_time: 30, stream_timeout: 2}\n";

static void start(struct rw *w)
{
    struct fake_spec ps, ss;
    rw_spec(&ps, "primary", FAKE_OPENAI);
    rw_spec(&ss, "secondary", FAKE_ANTHROPIC);
    if (rw_start(w, yaml, &ps, &ss) != 0) fail_msg("world did not start");
}

static void add_fault(struct fake *f, const char *text)
{
    struct fault_spec fs;
    char err[256];
    if (fault_spec_parse(text, &fs, err, sizeof err) != 0) fail_msg("fault %s: %s", text, err);
    assert_int_equal(fake_fault_add(f, &fs), 0);
}

static void stream_arrives_as_openai_chunks(void **state)
{
    struct rw w;
    struct rw_reply r;
    cJSON *data;
    const cJSON *c, *last;
    int n, i, contents = 0, roles = 0;
    double p, q;
    char v[64];
    (void)state;

    start(&w);
    rw_request(&w, "/v1/chat/completions",
               "{\"model\":\"app/claude\",\"stream\":true,\"stream_options\":{\"include_usage\":"
               "true},\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
               "{\"role\":\"user\",\"content\":\"Hello there, how are you?\"}]}",
               NULL, 5000, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(rw_hdr(&r, "content-type", v, sizeof v), "text/event-stream"));
    assert_string_equal(rw_hdr(&r, "x-slodrill-provider", v, sizeof v), "secondary");
    assert_string_equal(rw_hdr(&r, "x-slodrill-deployment", v, sizeof v), "claude");
    assert_null(strstr(r.body, "event:")); /* OpenAI streams are data-only */
    data = rw_sse_data(r.body);
    n = cJSON_GetArraySize(data);
    assert_true(n >= 5);
    assert_string_equal(cJSON_GetArrayItem(data, n - 1)->valuestring, "[DONE]");
    for (i = 0; i < n - 1; i++) {
        c = cJSON_GetArrayItem(data, i);
        assert_true(cJSON_IsObject(c));
        assert_string_equal(str_at(c, "object"), "chat.completion.chunk");
        assert_non_null(strstr(str_at(c, "id"), "msg_secondary_"));
        if (str_at(c, "choices.0.delta.role")) roles++;
        if (str_at(c, "choices.0.delta.content") && str_at(c, "choices.0.delta.content")[0])
            contents++;
    }
    assert_int_equal(roles, 1);
    assert_string_equal(str_at(cJSON_GetArrayItem(data, 0), "choices.0.delta.role"), "assistant");
    assert_string_equal(str_at(cJSON_GetArrayItem(data, n - 3), "choices.0.finish_reason"),
                        "stop");
    last = cJSON_GetArrayItem(data, n - 2);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(last, "choices")), 0);
    p = num_at(last, "usage.prompt_tokens");
    q = num_at(last, "usage.completion_tokens");
    assert_true(p > 0 && q > 0);
    assert_int_equal(contents, (int)q);
    assert_true(fabs(num_at(last, "usage.cost") - (p * 0.0000008 + q * 0.000004)) < 1e-12);
    cJSON_Delete(data);
    rw_reply_free(&r);
    /* without include_usage: no usage chunk */
    rw_request(&w, "/v1/chat/completions",
               "{\"model\":\"app/claude\",\"stream\":true,\"messages\":[{\"role\":\"user\","
               "\"content\":\"Hi\"}]}",
               NULL, 5000, &r);
    assert_int_equal(r.status, 200);
    assert_null(strstr(r.body, "\"usage\""));
    assert_non_null(strstr(r.body, "data: [DONE]\n\n"));
    rw_reply_free(&r);
    rw_stop(&w);
}

static void plain_answer_arrives_as_openai(void **state)
{
    struct rw w;
    struct rw_reply r;
    cJSON *j;
    char v[64], want[64];
    double p, q;
    (void)state;

    start(&w);
    rw_request(&w, "/v1/chat/completions",
               "{\"model\":\"app/claude\",\"messages\":[{\"role\":\"user\",\"content\":"
               "\"Hello there, how are you?\"}]}",
               NULL, 5000, &r);
    assert_int_equal(r.status, 200);
    j = cJSON_Parse(r.body);
    assert_non_null(j);
    assert_string_equal(str_at(j, "object"), "chat.completion");
    assert_non_null(strstr(str_at(j, "id"), "msg_secondary_"));
    assert_true(strlen(str_at(j, "choices.0.message.content")) > 0);
    assert_string_equal(str_at(j, "choices.0.finish_reason"), "stop");
    p = num_at(j, "usage.prompt_tokens");
    q = num_at(j, "usage.completion_tokens");
    assert_true(p > 0 && q > 0);
    snprintf(want, sizeof want, "%.8f", p * 0.0000008 + q * 0.000004);
    assert_string_equal(rw_hdr(&r, "x-slodrill-cost-usd", v, sizeof v), want);
    cJSON_Delete(j);
    rw_reply_free(&r);
    /* max_tokens reached: "length" */
    rw_request(&w, "/v1/chat/completions",
               "{\"model\":\"app/claude\",\"max_tokens\":2,\"messages\":[{\"role\":\"user\","
               "\"content\":\"Hi\"}]}",
               NULL, 5000, &r);
    assert_int_equal(r.status, 200);
    j = cJSON_Parse(r.body);
    assert_string_equal(str_at(j, "choices.0.finish_reason"), "length");
    assert_true(num_at(j, "usage.completion_tokens") == 2);
    cJSON_Delete(j);
    rw_reply_free(&r);
    rw_stop(&w);
}

static void overloaded_fails_over_to_openai(void **state)
{
    struct rw w;
    struct rw_reply r;
    struct fake_stats ps, ss;
    char v[64];
    (void)state;

    start(&w);
    add_fault(w.secondary, "overloaded");
    rw_request(&w, "/v1/chat/completions",
               "{\"model\":\"app/chat\",\"stream\":true,\"messages\":[{\"role\":\"user\","
               "\"content\":\"Hi\"}]}",
               NULL, 5000, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(rw_hdr(&r, "x-slodrill-deployment", v, sizeof v), "primary");
    assert_string_equal(rw_hdr(&r, "x-slodrill-attempts", v, sizeof v), "2");
    assert_non_null(strstr(r.body, "data: [DONE]"));
    rw_reply_free(&r);
    fake_stats_get(w.primary, &ps);
    fake_stats_get(w.secondary, &ss);
    rw_stop(&w);
    assert_int_equal(ss.requests, 1);
    assert_int_equal(ss.faulted, 1);
    assert_int_equal(ps.ok, 1);
}

static void client_error_in_openai_format(void **state)
{
    struct rw w;
    struct rw_reply r;
    struct fake_stats ps;
    cJSON *j;
    (void)state;

    start(&w);
    add_fault(w.secondary, "http_error;status=400");
    rw_request(&w, "/v1/chat/completions",
               "{\"model\":\"app/chat\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}",
               NULL, 5000, &r);
    assert_int_equal(r.status, 400);
    j = cJSON_Parse(r.body);
    assert_non_null(j);
    assert_string_equal(str_at(j, "error.type"), "invalid_request_error");
    assert_string_equal(str_at(j, "error.message"), "Invalid request");
    assert_null(cJSON_GetObjectItem(j, "type")); /* not Anthropic's envelope */
    cJSON_Delete(j);
    rw_reply_free(&r);
    fake_stats_get(w.primary, &ps);
    rw_stop(&w);
    assert_int_equal(ps.requests, 0); /* the client's fault: no failover */
}

static void error_events_before_and_after_first_token(void **state)
{
    struct rw w;
    struct rw_reply r;
    char v[64];
    cJSON *data;
    const cJSON *last;
    int n;
    const char *body = "{\"model\":\"app/chat\",\"stream\":true,\"messages\":[{\"role\":\"user\","
                       "\"content\":\"Hi\"}]}";
    (void)state;

    start(&w);
    /* after message_start, before any text: invisible failover */
    add_fault(w.secondary, "error_event;after_events=2");
    rw_request(&w, "/v1/chat/completions", body, NULL, 5000, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(rw_hdr(&r, "x-slodrill-deployment", v, sizeof v), "primary");
    assert_non_null(strstr(r.body, "data: [DONE]"));
    assert_null(strstr(r.body, "\"error\""));
    rw_reply_free(&r);
    /* after two text deltas: the client sees them, then an OpenAI-style error event */
    add_fault(w.secondary, "error_event;after_events=5");
    fake_fault_clear(w.primary, -1);
    rw_request(&w, "/v1/chat/completions", body, NULL, 5000, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(rw_hdr(&r, "x-slodrill-deployment", v, sizeof v), "secondary");
    assert_null(strstr(r.body, "[DONE]"));
    data = rw_sse_data(r.body);
    n = cJSON_GetArraySize(data);
    assert_true(n >= 3);
    last = cJSON_GetArrayItem(data, n - 1);
    assert_string_equal(str_at(last, "error.code"), "server_is_overloaded");
    assert_non_null(str_at(cJSON_GetArrayItem(data, 1), "choices.0.delta.content"));
    cJSON_Delete(data);
    rw_reply_free(&r);
    rw_stop(&w);
}

/* An agent's two turns through the router to the real fake: with tools the answer is a
 * tool call in OpenAI's shape, plain and streamed; sending the call and its result back
 * is answered in words. */
static void tool_calls_through_router(void **state)
{
    static const char *tools =
        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"search_docs\","
        "\"description\":\"Search the docs\",\"parameters\":{\"type\":\"object\","
        "\"properties\":{\"query\":{\"type\":\"string\"}},\"required\":[\"query\"]}}}]";
    struct rw w;
    struct rw_reply r;
    char body[2048], args[512] = "", id[128] = "", name[64] = "";
    cJSON *j, *data, *in;
    const cJSON *c;
    int i, n, starts = 0;
    (void)state;

    start(&w);
    snprintf(body, sizeof body,
             "{\"model\":\"app/claude\",%s,\"messages\":[{\"role\":\"user\",\"content\":"
             "\"Find the refund policy\"}]}",
             tools);
    rw_request(&w, "/v1/chat/completions", body, NULL, 5000, &r);
    assert_int_equal(r.status, 200);
    j = cJSON_Parse(r.body);
    assert_string_equal(str_at(j, "choices.0.finish_reason"), "tool_calls");
    assert_true(cJSON_IsNull(cc_of(j, "choices.0.message.content")));
    assert_string_equal(str_at(j, "choices.0.message.tool_calls.0.type"), "function");
    assert_string_equal(str_at(j, "choices.0.message.tool_calls.0.function.name"), "search_docs");
    assert_memory_equal(str_at(j, "choices.0.message.tool_calls.0.id"), "toolu_", 6);
    snprintf(id, sizeof id, "%s", str_at(j, "choices.0.message.tool_calls.0.id"));
    in = cJSON_Parse(str_at(j, "choices.0.message.tool_calls.0.function.arguments"));
    assert_string_equal(str_at(in, "query"), "Find the refund policy");
    cJSON_Delete(in);
    cJSON_Delete(j);
    rw_reply_free(&r);

    /* streamed: one start chunk with id and name, fragments that join to the arguments */
    snprintf(body, sizeof body,
             "{\"model\":\"app/claude\",\"stream\":true,%s,\"messages\":[{\"role\":\"user\","
             "\"content\":\"Find the refund policy\"}]}",
             tools);
    rw_request(&w, "/v1/chat/completions", body, NULL, 5000, &r);
    assert_int_equal(r.status, 200);
    data = rw_sse_data(r.body);
    n = cJSON_GetArraySize(data);
    assert_string_equal(cJSON_GetArrayItem(data, n - 1)->valuestring, "[DONE]");
    for (i = 0; i < n - 1; i++) {
        c = cJSON_GetArrayItem(data, i);
        if (str_at(c, "choices.0.delta.tool_calls.0.id")) {
            starts++;
            snprintf(name, sizeof name, "%s",
                     str_at(c, "choices.0.delta.tool_calls.0.function.name"));
        }
        if (cc_of(c, "choices.0.delta.tool_calls")) {
            assert_true(num_at(c, "choices.0.delta.tool_calls.0.index") == 0);
            snprintf(args + strlen(args), sizeof args - strlen(args), "%s",
                     str_at(c, "choices.0.delta.tool_calls.0.function.arguments"));
        }
    }
    assert_int_equal(starts, 1);
    assert_string_equal(name, "search_docs");
    in = cJSON_Parse(args);
    assert_string_equal(str_at(in, "query"), "Find the refund policy");
    cJSON_Delete(in);
    assert_string_equal(str_at(cJSON_GetArrayItem(data, n - 2), "choices.0.finish_reason"),
                        "tool_calls");
    cJSON_Delete(data);
    rw_reply_free(&r);

    /* the second turn: the call and its result go back; the answer is words */
    snprintf(body, sizeof body,
             "{\"model\":\"app/claude\",%s,\"messages\":[{\"role\":\"user\",\"content\":"
             "\"Find the refund policy\"},{\"role\":\"assistant\",\"content\":null,"
             "\"tool_calls\":[{\"id\":\"%s\",\"type\":\"function\",\"function\":{\"name\":"
             "\"search_docs\",\"arguments\":\"{\\\"query\\\":\\\"refund\\\"}\"}}]},"
             "{\"role\":\"tool\",\"tool_call_id\":\"%s\",\"content\":\"Refunds within 30 days.\"}]}",
             tools, id, id);
    rw_request(&w, "/v1/chat/completions", body, NULL, 5000, &r);
    assert_int_equal(r.status, 200);
    j = cJSON_Parse(r.body);
    assert_string_equal(str_at(j, "choices.0.finish_reason"), "stop");
    assert_true(strlen(str_at(j, "choices.0.message.content")) > 0);
    assert_null(cc_of(j, "choices.0.message.tool_calls"));
    cJSON_Delete(j);
    rw_reply_free(&r);

    /* arguments that are not a JSON object cannot become a tool_use input:
     * a 400 in OpenAI's format, nothing sent upstream, no failover */
    snprintf(body, sizeof body,
             "{\"model\":\"app/claude\",%s,\"messages\":[{\"role\":\"user\",\"content\":"
             "\"Find it\"},{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":"
             "\"c1\",\"type\":\"function\",\"function\":{\"name\":\"search_docs\","
             "\"arguments\":\"not json\"}}]},{\"role\":\"tool\",\"tool_call_id\":\"c1\","
             "\"content\":\"x\"}]}",
             tools);
    rw_request(&w, "/v1/chat/completions", body, NULL, 5000, &r);
    assert_int_equal(r.status, 400);
    j = cJSON_Parse(r.body);
    assert_string_equal(str_at(j, "error.type"), "invalid_request_error");
    assert_non_null(strstr(str_at(j, "error.message"), "not a JSON object"));
    {
        char v[16];
        assert_string_equal(rw_hdr(&r, "x-slodrill-attempts", v, sizeof v), "0");
    }
    cJSON_Delete(j);
    rw_reply_free(&r);
    rw_stop(&w);
}

/* Two identical requests with a long system prompt (over the 1,024-token minimum): with
 * cache_control_injection_points the first writes the cache and the second reads it, and
 * costs less; without, nothing is cached and both cost the same. */
static const char *cache_yaml =
    "model_list:\n"
    "  - model_name: app/cached\n"
    "    litellm_params:\n"
    "      model: anthropic/claude-sonnet-4\n"
    "      api_base: os.environ/S_BASE\n"
    "      api_key: os.environ/S_KEY\n"
    "      input_cost_per_token: 0.000003\n"
    "      output_cost_per_token: 0.000015\n"
    "      cache_control_injection_points:\n"
    "        - location: message\n"
    "          role: system\n"
    "  - model_name: app/plain\n"
    "    litellm_params:\n"
    "      model: anthropic/claude-sonnet-4\n"
    "      api_base: os.environ/S_BASE\n"
    "      api_key: os.environ/S_KEY\n"
    "      input_cost_per_token: 0.000003\n"
    "      output_cost_per_token: 0.000015\n";

/* A chat body for alias with a system prompt of about 1,600 tokens (the fakes count 4 bytes
 * a token), varied by tag so tests do not share cache entries. Caller frees. */
static char *long_prompt_body(const char *alias, const char *tag, int stream)
{
    cJSON *b = cJSON_CreateObject(), *msgs, *m;
    char *sys = malloc(6500 + 1), *s;
    int i;
    for (i = 0; i < 6500; i++) sys[i] = "Policy clause; "[i % 15];
    memcpy(sys, tag, strlen(tag));
    sys[6500] = '\0';
    cJSON_AddStringToObject(b, "model", alias);
    if (stream) {
        cJSON_AddTrueToObject(b, "stream");
        cJSON_AddTrueToObject(cJSON_AddObjectToObject(b, "stream_options"), "include_usage");
    }
    msgs = cJSON_AddArrayToObject(b, "messages");
    m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", "system");
    cJSON_AddStringToObject(m, "content", sys);
    cJSON_AddItemToArray(msgs, m);
    m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", "user");
    cJSON_AddStringToObject(m, "content", "Which clause covers refunds?");
    cJSON_AddItemToArray(msgs, m);
    s = cJSON_PrintUnformatted(b);
    cJSON_Delete(b);
    free(sys);
    return s;
}

struct cached_answer {
    double cost, prompt, cached, written;
};

/* One request; cost and usage from a plain answer's header and body, or a stream's usage
 * chunk. */
static void ask(struct rw *w, const char *body, int stream, struct cached_answer *a)
{
    struct rw_reply r;
    char v[64];
    cJSON *j;
    const cJSON *u;

    rw_request(w, "/v1/chat/completions", body, NULL, 5000, &r);
    assert_int_equal(r.status, 200);
    if (stream) {
        cJSON *data = rw_sse_data(r.body);
        int n = cJSON_GetArraySize(data);
        assert_string_equal(cJSON_GetArrayItem(data, n - 1)->valuestring, "[DONE]");
        j = cJSON_Duplicate(cJSON_GetArrayItem(data, n - 2), 1);
        cJSON_Delete(data);
        u = cJSON_GetObjectItem(j, "usage");
        a->cost = num_at(u, "cost");
    } else {
        j = cJSON_Parse(r.body);
        u = cJSON_GetObjectItem(j, "usage");
        a->cost = strtod(rw_hdr(&r, "x-slodrill-cost-usd", v, sizeof v), NULL);
    }
    assert_true(cJSON_IsObject(u));
    a->prompt = num_at(u, "prompt_tokens");
    a->cached = num_at(u, "prompt_tokens_details.cached_tokens");
    a->written = num_at(u, "cache_creation_input_tokens");
    assert_true(a->cost > 0 && a->prompt > 1024);
    cJSON_Delete(j);
    rw_reply_free(&r);
}

static void prompt_cache_lowers_cost(void **state)
{
    struct rw w;
    struct fake_spec ps, ss;
    struct cached_answer a1, a2, p1, p2, s1, s2;
    char *b;
    (void)state;

    rw_spec(&ps, "primary", FAKE_OPENAI);
    rw_spec(&ss, "secondary", FAKE_ANTHROPIC);
    if (rw_start(&w, cache_yaml, &ps, &ss) != 0) fail_msg("world did not start");

    b = long_prompt_body("app/cached", "A1", 0);
    ask(&w, b, 0, &a1);
    ask(&w, b, 0, &a2);
    free(b);
    /* the first wrote the system prompt to the cache, the second read it */
    assert_true(a1.cached == 0 && a1.written > 1024);
    assert_true(a2.cached == a1.written && a2.written == 0);
    assert_true(a2.prompt == a1.prompt);
    assert_true(a2.cost < a1.cost);
    /* the read at a tenth of the input price, the write at 1.25 times: the prompt parts of
     * the two costs differ by 1.15 x the cached tokens x the input price (outputs aside) */
    assert_true(a1.cost - a2.cost > 1.0 * a1.written * 0.000003);

    /* the same prompt without injection points: no cache_control, nothing cached */
    b = long_prompt_body("app/plain", "P1", 0);
    ask(&w, b, 0, &p1);
    ask(&w, b, 0, &p2);
    free(b);
    assert_true(p1.cached == 0 && p2.cached == 0 && p1.written == 0 && p2.written == 0);
    assert_true(a2.cost < p2.cost);

    /* streamed: usage.cost falls the same way */
    b = long_prompt_body("app/cached", "S1", 1);
    ask(&w, b, 1, &s1);
    ask(&w, b, 1, &s2);
    free(b);
    assert_true(s1.written > 1024 && s2.cached == s1.written);
    assert_true(s2.cost < s1.cost);
    rw_stop(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(url_shapes),
        cmocka_unit_test(request_translation),
        cmocka_unit_test(answer_translation),
        cmocka_unit_test(error_translation),
        cmocka_unit_test(stream_translation),
        cmocka_unit_test(stream_error_event),
        cmocka_unit_test(cache_points_placed),
        cmocka_unit_test(cache_points_config),
        cmocka_unit_test(request_tools_golden),
        cmocka_unit_test(request_tool_details),
        cmocka_unit_test(request_images),
        cmocka_unit_test(cache_marks_on_blocks),
        cmocka_unit_test(answer_tool_calls),
        cmocka_unit_test(stream_tool_calls),
        cmocka_unit_test(stream_arrives_as_openai_chunks),
        cmocka_unit_test(plain_answer_arrives_as_openai),
        cmocka_unit_test(overloaded_fails_over_to_openai),
        cmocka_unit_test(client_error_in_openai_format),
        cmocka_unit_test(error_events_before_and_after_first_token),
        cmocka_unit_test(tool_calls_through_router),
        cmocka_unit_test(prompt_cache_lowers_cost),
    };
    int rc;
    if (getenv("TEST_FILTER")) cmocka_set_test_filter(getenv("TEST_FILTER"));
    rw_global_init();
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
