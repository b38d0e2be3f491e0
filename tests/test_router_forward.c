/* test_router_forward.c -- the forwarding path's shortcuts keep what the upstream and the client see.
 *
 * A recording upstream (evhttp on the router's loop) keeps the last body it
 * was sent and answers with a body the test sets. A plain request's body
 * reaches the upstream byte for byte with only its model value replaced
 * (JSON-escaped); bodies too unusual for that (an escaped key, bytes after
 * the object) still arrive as JSON with the upstream's model. A plain answer
 * is checked for JSON and its usage priced as before: a broken answer is a
 * failed attempt, usage is the top-level object's (first key wins), a usage
 * that is not a number prices nothing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/thread.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/net.h"
#include "router/router.h"

/* prices: 1e-6 and 2e-6 USD a token; the upstream model has a quote and a
 * backslash so the spliced value must be escaped */
static const char *const FW_YAML =
    "model_list:\n"
    "  - model_name: m\n"
    "    litellm_params:\n"
    "      model: 'openai/up\"q\\x'\n"
    "      api_base: os.environ/UP_BASE\n"
    "      api_key: sk-forward\n"
    "      input_cost_per_token: 0.000001\n"
    "      output_cost_per_token: 0.000002\n"
    "router_settings:\n"
    "  num_retries: 0\n"
    "  allowed_fails: 100\n";

struct fw {
    struct event_base *base;
    struct evhttp *up;
    int up_port;
    struct router_config *cfg;
    struct proxy *proxy;
    pthread_t thread;
    char url[128];
    pthread_mutex_t mu;
    char got[4096];      /* the last body the upstream was sent */
    int got_n;           /* requests the upstream had */
    char answer[4096];   /* what it answers */
};

static void fw_up_handle(struct evhttp_request *req, void *arg)
{
    struct fw *w = arg;
    struct evbuffer *in = evhttp_request_get_input_buffer(req), *out = evbuffer_new();
    size_t n = evbuffer_get_length(in);
    pthread_mutex_lock(&w->mu);
    if (n >= sizeof w->got)
        n = sizeof w->got - 1;
    evbuffer_copyout(in, w->got, n);
    w->got[n] = '\0';
    w->got_n++;
    evbuffer_add(out, w->answer, strlen(w->answer));
    pthread_mutex_unlock(&w->mu);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evhttp_send_reply(req, 200, "OK", out);
    evbuffer_free(out);
}

static const char *fw_env(const char *name, void *arg)
{
    static char base[128];
    struct fw *w = arg;
    if (strcmp(name, "UP_BASE"))
        return NULL;
    snprintf(base, sizeof base, "http://127.0.0.1:%d/v1", w->up_port);
    return base;
}

static void *fw_loop(void *arg)
{
    struct fw *w = arg;
    event_base_loop(w->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

static int fw_setup(void **state)
{
    struct fw *w = calloc(1, sizeof *w);
    char path[] = "/tmp/slodrill-fw-XXXXXX", err[256];
    struct proxy_opts opts;
    FILE *f;
    int fd;

    assert_non_null(w);
    pthread_mutex_init(&w->mu, NULL);
    assert_non_null(w->base = event_base_new());
    assert_non_null(w->up = evhttp_new(w->base));
    evhttp_set_gencb(w->up, fw_up_handle, w);
    assert_int_equal(net_listen_http(w->up, "127.0.0.1", 0, &w->up_port, NULL, err, sizeof err), 0);
    assert_true((fd = mkstemp(path)) >= 0);
    assert_non_null(f = fdopen(fd, "w"));
    fputs(FW_YAML, f);
    fclose(f);
    w->cfg = router_config_load(path, fw_env, w, NULL, NULL, err, sizeof err);
    unlink(path);
    if (!w->cfg)
        fail_msg("config: %s", err);
    memset(&opts, 0, sizeof opts);
    opts.seed = 3;
    if (!(w->proxy = proxy_new(w->base, w->cfg, &opts, err, sizeof err)))
        fail_msg("proxy: %s", err);
    snprintf(w->url, sizeof w->url, "http://127.0.0.1:%d/v1/chat/completions",
             proxy_port(w->proxy));
    assert_int_equal(pthread_create(&w->thread, NULL, fw_loop, w), 0);
    *state = w;
    return 0;
}

static int fw_teardown(void **state)
{
    struct fw *w = *state;
    event_base_loopbreak(w->base);
    pthread_join(w->thread, NULL);
    proxy_free(w->proxy);
    evhttp_free(w->up);
    router_config_free(w->cfg);
    event_base_free(w->base);
    pthread_mutex_destroy(&w->mu);
    free(w);
    return 0;
}

static void fw_set_answer(struct fw *w, const char *a)
{
    pthread_mutex_lock(&w->mu);
    snprintf(w->answer, sizeof w->answer, "%s", a);
    w->got[0] = '\0';
    pthread_mutex_unlock(&w->mu);
}

struct fw_resp {
    long status;
    char body[8192];
    size_t len;
    char cost[64]; /* x-slodrill-cost-usd, "" when absent */
};

static size_t fw_body_cb(char *p, size_t size, size_t n, void *arg)
{
    struct fw_resp *r = arg;
    size_t len = size * n, room = sizeof r->body - 1 - r->len;
    memcpy(r->body + r->len, p, len < room ? len : room);
    r->len += len < room ? len : room;
    r->body[r->len] = '\0';
    return len;
}

static size_t fw_hdr_cb(char *p, size_t size, size_t n, void *arg)
{
    struct fw_resp *r = arg;
    size_t len = size * n;
    static const char name[] = "x-slodrill-cost-usd:";
    if (len > sizeof name && !strncasecmp(p, name, sizeof name - 1)) {
        size_t v = sizeof name - 1, e = len;
        while (v < len && p[v] == ' ')
            v++;
        while (e > v && (p[e - 1] == '\r' || p[e - 1] == '\n'))
            e--;
        snprintf(r->cost, sizeof r->cost, "%.*s", (int)(e - v), p + v);
    }
    return len;
}

static void fw_post(struct fw *w, const char *body, struct fw_resp *r)
{
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    memset(r, 0, sizeof *r);
    assert_non_null(c);
    curl_easy_setopt(c, CURLOPT_URL, w->url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, fw_body_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, fw_hdr_cb);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
}

static void fw_got(struct fw *w, char *out, size_t n)
{
    pthread_mutex_lock(&w->mu);
    snprintf(out, n, "%s", w->got);
    pthread_mutex_unlock(&w->mu);
}

static const char *const FW_ANSWER =
    "{\n  \"id\": \"chatcmpl-1\",\n  \"object\": \"chat.completion\",\n"
    "  \"choices\": [{\"index\": 0, \"message\": {\"role\": \"assistant\", \"content\": \"hi \\\"there\\\"\"},"
    " \"usage\": {\"prompt_tokens\": 999}, \"finish_reason\": \"stop\"}],\n"
    "  \"usage\": {\"prompt_tokens\": 11, \"completion_tokens\": 7, \"total_tokens\": 18,"
    " \"prompt_tokens_details\": {\"cached_tokens\": 0}, \"prompt_tokens\": 500}\n}\n";

/* The body reaches the upstream as the client wrote it, only the model value
 * replaced; the answer reaches the client as it is, priced from its
 * top-level usage (11 in, 7 out; the nested one and the duplicate ignored). */
static void splice_keeps_body(void **state)
{
    struct fw *w = *state;
    struct fw_resp r;
    char got[4096];
    const char *body = "{ \"messages\": [{\"role\": \"user\", \"content\": \"a \\\"model\\\": \\\"b\\\"\"}],"
                       "\n  \"model\" :  \"m\", \"temperature\": 0.5, \"metadata\": {\"model\": \"x\"}, "
                       "\"n\": 1 }\n";
    const char *want = "{ \"messages\": [{\"role\": \"user\", \"content\": \"a \\\"model\\\": \\\"b\\\"\"}],"
                       "\n  \"model\" :  \"up\\\"q\\\\x\", \"temperature\": 0.5, \"metadata\": {\"model\": "
                       "\"x\"}, \"n\": 1 }\n";

    fw_set_answer(w, FW_ANSWER);
    fw_post(w, body, &r);
    assert_int_equal(r.status, 200);
    fw_got(w, got, sizeof got);
    assert_string_equal(got, want);
    assert_string_equal(r.body, FW_ANSWER);
    assert_string_equal(r.cost, "0.00002500"); /* 11 x 1e-6 + 7 x 2e-6 */
}

/* Bodies the splice leaves alone still reach the upstream as JSON carrying
 * the upstream's model and everything else the client sent. */
static void unusual_bodies_still_forwarded(void **state)
{
    struct fw *w = *state;
    static const char *const bodies[] = {
        "{\"mod\\u0065l\": \"m\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"seed\": 4}",
        "{\"model\": \"m\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"seed\": 4} trailing",
        "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"seed\": 4, \"model\": \"m\"}",
    };
    size_t i;

    fw_set_answer(w, FW_ANSWER);
    for (i = 0; i < sizeof bodies / sizeof *bodies; i++) {
        struct fw_resp r;
        char got[4096];
        cJSON *j;
        const cJSON *msgs;
        fw_post(w, bodies[i], &r);
        assert_int_equal(r.status, 200);
        fw_got(w, got, sizeof got);
        assert_null(strstr(got, "trailing"));
        assert_non_null(j = cJSON_Parse(got));
        assert_string_equal(cJSON_GetObjectItemCaseSensitive(j, "model")->valuestring, "up\"q\\x");
        assert_int_equal(cJSON_GetObjectItemCaseSensitive(j, "seed")->valueint, 4);
        msgs = cJSON_GetObjectItemCaseSensitive(j, "messages");
        assert_int_equal(cJSON_GetArraySize(msgs), 1);
        cJSON_Delete(j);
    }
}

/* A 200 whose body is not JSON is a failed attempt (503 here: nothing else
 * to try), whatever is broken in it; an answer whose usage numbers are not
 * numbers is served unpriced. */
static void answer_checked_and_priced(void **state)
{
    struct fw *w = *state;
    static const char *const broken[] = {
        "{\"id\": \"x\", \"choices\": [",
        "{\"id\": \"x\" \"usage\": {}}",
        "{\"id\": \"\\q\"}",
        "{\"id\": \"x\", \"n\": -}",
        "nul",
        "",
    };
    const char *body = "{\"model\": \"m\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}";
    struct fw_resp r;
    size_t i;

    for (i = 0; i < sizeof broken / sizeof *broken; i++) {
        fw_set_answer(w, broken[i]);
        fw_post(w, body, &r);
        assert_int_equal(r.status, 503);
    }
    /* cJSON takes a value and ignores what follows it: so does the check */
    fw_set_answer(w, "\xEF\xBB\xBF {\"usage\": {\"prompt_tokens\": 3, \"completion_tokens\": 1e1}} ]]");
    fw_post(w, body, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.cost, "0.00002300"); /* 3 x 1e-6 + 10 x 2e-6 */
    fw_set_answer(w, "{\"usage\": {\"prompt_tokens\": \"3\", \"completion_tokens\": null}}");
    fw_post(w, body, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.cost, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(splice_keeps_body),
        cmocka_unit_test(unusual_bodies_still_forwarded),
        cmocka_unit_test(answer_checked_and_priced),
    };
    int rc;
    evthread_use_pthreads();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = cmocka_run_group_tests(tests, fw_setup, fw_teardown);
    curl_global_cleanup();
    return rc;
}
