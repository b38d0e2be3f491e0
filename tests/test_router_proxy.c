/* test_router_proxy.c -- the proxy on a real socket between libcurl and small evhttp
 * upstreams scripted per test: failover on 503 and 401, streams chunk by chunk, 400 as is,
 * stream_timeout, the master key, what goes upstream. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/net.h"
#include "router/router.h"

/* ---- a scripted upstream ---- */

enum up_mode { UP_OK, UP_STATUS, UP_STREAM, UP_STREAM_CUT };

struct upstream {
    struct evhttp *http;
    int port;
    char name[32];
    enum up_mode mode;
    int status;          /* UP_STATUS */
    const char *body;    /* UP_STATUS */
    int events;          /* UP_STREAM: content events */
    int gap_ms;          /* between events */
    int first_ms;        /* before the first content event */
    int requests;        /* counted on the loop thread, read after join or via atomics */
    char last_auth[128];
    char last_model[64];
    int saw_fault_header;
};

struct streamer {
    struct upstream *u;
    struct evhttp_request *req;
    struct event *ev;
    int sent;
};

static void up_send_event(struct evhttp_request *req, const char *json)
{
    struct evbuffer *b = evbuffer_new();
    evbuffer_add_printf(b, "data: %s\n\n", json);
    evhttp_send_reply_chunk(req, b);
    evbuffer_free(b);
}

static void up_stream_done(struct streamer *s)
{
    evhttp_connection_set_closecb(evhttp_request_get_connection(s->req), NULL, NULL);
    evhttp_send_reply_end(s->req);
    event_free(s->ev);
    free(s);
}

/* The client (the proxy) went away mid-stream: libevent frees the request. */
static void up_closed(struct evhttp_connection *evcon, void *arg)
{
    struct streamer *s = arg;
    (void)evcon;
    event_free(s->ev);
    if (!evhttp_request_get_connection(s->req))
        evhttp_request_free(s->req); /* detached by libevent: ours to free */
    free(s);
}

static void up_stream_tick(evutil_socket_t fd, short what, void *arg)
{
    struct streamer *s = arg;
    struct timeval tv = {0, 0};
    char json[512];
    (void)fd;
    (void)what;
    if (s->u->mode == UP_STREAM_CUT && s->sent == 2) {
        /* end the chunked body without [DONE] */
        up_stream_done(s);
        return;
    }
    if (s->sent < s->u->events) {
        snprintf(json, sizeof json,
                 "{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"%s\","
                 "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"tok%d \"},"
                 "\"finish_reason\":null}]}",
                 s->u->name, s->sent);
        up_send_event(s->req, json);
        s->sent++;
        tv.tv_usec = s->u->gap_ms * 1000;
        evtimer_add(s->ev, &tv);
        return;
    }
    up_send_event(s->req, "{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
                          "\"delta\":{},\"finish_reason\":\"stop\"}]}");
    up_send_event(s->req, "[DONE]");
    up_stream_done(s);
}

static void up_handle(struct evhttp_request *req, void *arg)
{
    struct upstream *u = arg;
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    struct evbuffer *body = evhttp_request_get_input_buffer(req);
    struct evbuffer *b;
    const char *auth = evhttp_find_header(in, "Authorization");
    char text[4096];
    size_t n = evbuffer_get_length(body);
    const char *m;

    u->requests++;
    snprintf(u->last_auth, sizeof u->last_auth, "%s", auth ? auth : "");
    if (evhttp_find_header(in, "x-slodrill-fault"))
        u->saw_fault_header = 1;
    if (n >= sizeof text)
        n = sizeof text - 1;
    evbuffer_copyout(body, text, n);
    text[n] = '\0';
    m = strstr(text, "\"model\":\"");
    if (m) {
        size_t k = strcspn(m + 9, "\"");
        snprintf(u->last_model, sizeof u->last_model, "%.*s", (int)k, m + 9);
    }
    evhttp_add_header(out, "x-slodrill-provider", u->name);
    if (u->mode == UP_STATUS) {
        evhttp_add_header(out, "Content-Type", "application/json");
        b = evbuffer_new();
        evbuffer_add(b, u->body, strlen(u->body));
        evhttp_send_reply(req, u->status, "X", b);
        evbuffer_free(b);
        return;
    }
    if (u->mode == UP_OK) {
        char json[512];
        snprintf(json, sizeof json,
                 "{\"id\":\"x\",\"object\":\"chat.completion\",\"model\":\"%s\",\"choices\":[{"
                 "\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"hi from %s\"},"
                 "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":10,"
                 "\"completion_tokens\":20,\"total_tokens\":30}}",
                 u->name, u->name);
        evhttp_add_header(out, "Content-Type", "application/json");
        b = evbuffer_new();
        evbuffer_add(b, json, strlen(json));
        evhttp_send_reply(req, 200, "OK", b);
        evbuffer_free(b);
        return;
    }
    {
        struct streamer *s = calloc(1, sizeof *s);
        struct timeval tv = {u->first_ms / 1000, (u->first_ms % 1000) * 1000};
        evhttp_add_header(out, "Content-Type", "text/event-stream; charset=utf-8");
        evhttp_send_reply_start(req, 200, "OK");
        up_send_event(req, "{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{"
                           "\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
                           "\"finish_reason\":null}]}");
        s->u = u;
        s->req = req;
        s->ev = evtimer_new(evhttp_connection_get_base(evhttp_request_get_connection(req)),
                            up_stream_tick, s);
        evtimer_add(s->ev, &tv);
        evhttp_connection_set_closecb(evhttp_request_get_connection(req), up_closed, s);
    }
}

/* ---- the world: one loop thread with the proxy and two upstreams ---- */

struct world {
    struct event_base *base;
    struct upstream a, b;
    struct router_config *cfg;
    struct proxy *proxy;
    pthread_t thread;
    char url[128];
    char events[2048];
    pthread_mutex_t mu;
};

static void on_event(const char *kind, const char *subject, const char *detail, uint64_t now_us,
                     void *arg)
{
    struct world *w = arg;
    size_t off;
    (void)detail;
    (void)now_us;
    pthread_mutex_lock(&w->mu);
    off = strlen(w->events);
    snprintf(w->events + off, sizeof w->events - off, "%s:%s;", kind, subject);
    pthread_mutex_unlock(&w->mu);
}

static void *loop_main(void *arg)
{
    struct world *w = arg;
    event_base_loop(w->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

static void up_start(struct world *w, struct upstream *u, const char *name)
{
    char err[256];
    snprintf(u->name, sizeof u->name, "%s", name);
    u->http = evhttp_new(w->base);
    assert_non_null(u->http);
    evhttp_set_gencb(u->http, up_handle, u);
    if (net_listen_http(u->http, "127.0.0.1", 0, &u->port, NULL, err, sizeof err) != 0)
        fail_msg("listen: %s", err);
}

struct envpair {
    const char *names[8];
    char values[8][128];
    int n;
};

static const char *env_lookup(const char *name, void *arg)
{
    struct envpair *e = arg;
    int i;
    for (i = 0; i < e->n; i++)
        if (!strcmp(e->names[i], name))
            return e->values[i];
    return NULL;
}

static void world_start(struct world *w, const char *yaml)
{
    char path[] = "/tmp/slodrill-proxy-XXXXXX";
    char err[512];
    struct envpair env;
    struct proxy_opts opts;
    int fd;
    FILE *f;

    memset(w, 0, sizeof *w);
    pthread_mutex_init(&w->mu, NULL);
    w->base = event_base_new();
    assert_non_null(w->base);
    up_start(w, &w->a, "prov-a");
    up_start(w, &w->b, "prov-b");
    memset(&env, 0, sizeof env);
    env.names[0] = "A_BASE";
    snprintf(env.values[0], sizeof env.values[0], "http://127.0.0.1:%d/v1", w->a.port);
    env.names[1] = "B_BASE";
    snprintf(env.values[1], sizeof env.values[1], "http://127.0.0.1:%d/v1", w->b.port);
    env.n = 2;
    fd = mkstemp(path);
    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    fputs(yaml, f);
    fclose(f);
    w->cfg = router_config_load(path, env_lookup, &env, NULL, NULL, err, sizeof err);
    unlink(path);
    if (!w->cfg)
        fail_msg("config: %s", err);
    memset(&opts, 0, sizeof opts);
    opts.seed = 1;
    opts.on_event = on_event;
    opts.event_arg = w;
    w->proxy = proxy_new(w->base, w->cfg, &opts, err, sizeof err);
    if (!w->proxy)
        fail_msg("proxy: %s", err);
    snprintf(w->url, sizeof w->url, "http://127.0.0.1:%d", proxy_port(w->proxy));
    assert_int_equal(pthread_create(&w->thread, NULL, loop_main, w), 0);
}

static void world_stop(struct world *w)
{
    event_base_loopbreak(w->base);
    pthread_join(w->thread, NULL);
    proxy_free(w->proxy);
    evhttp_free(w->a.http);
    evhttp_free(w->b.http);
    router_config_free(w->cfg);
    event_base_free(w->base);
    pthread_mutex_destroy(&w->mu);
}

/* ---- a client ---- */

struct reply {
    long status;
    char headers[8192];
    char body[16384];
    size_t blen;
    double first_content_s; /* when the first "tok" arrived, from the start */
    double total_s;
    uint64_t t0;
};

static size_t cl_header(char *ptr, size_t size, size_t n, void *arg)
{
    struct reply *r = arg;
    size_t len = size * n, off = strlen(r->headers);
    if (off + len < sizeof r->headers) {
        memcpy(r->headers + off, ptr, len);
        r->headers[off + len] = '\0';
    }
    return len;
}

static size_t cl_write(char *ptr, size_t size, size_t n, void *arg)
{
    struct reply *r = arg;
    size_t len = size * n;
    if (r->first_content_s < 0 && memmem(ptr, len, "tok", 3))
        r->first_content_s = (double)(clock_mono_us() - r->t0) / 1e6;
    if (r->blen + len < sizeof r->body) {
        memcpy(r->body + r->blen, ptr, len);
        r->blen += len;
        r->body[r->blen] = '\0';
    }
    return len;
}

static void request(struct world *w, const char *path, const char *body, const char *key,
                    const char *extra_header, struct reply *r)
{
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    char url[256], auth[256];

    memset(r, 0, sizeof *r);
    r->first_content_s = -1;
    r->t0 = clock_mono_us();
    snprintf(url, sizeof url, "%s%s", w->url, path);
    h = curl_slist_append(h, "Content-Type: application/json");
    if (key) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
        h = curl_slist_append(h, auth);
    }
    if (extra_header)
        h = curl_slist_append(h, extra_header);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    if (body)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, cl_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, cl_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    r->total_s = (double)(clock_mono_us() - r->t0) / 1e6;
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
}

/* The value of header name in r ("" when absent). */
static const char *hdr(const struct reply *r, const char *name, char *out, size_t outlen)
{
    const char *p = r->headers;
    size_t n = strlen(name);
    out[0] = '\0';
    while ((p = strcasestr(p, name))) {
        if ((p == r->headers || p[-1] == '\n') && p[n] == ':') {
            const char *v = p + n + 1;
            size_t k;
            while (*v == ' ')
                v++;
            k = strcspn(v, "\r\n");
            snprintf(out, outlen, "%.*s", (int)k, v);
            return out;
        }
        p += n;
    }
    return out;
}

static const char *two_tier_yaml =
    "model_list:\n"
    "  - model_name: app/chat\n"
    "    litellm_params:\n"
    "      model: openai/gpt-a\n"
    "      api_base: os.environ/A_BASE\n"
    "      api_key: sk-a\n"
    "      order: 1\n"
    "      input_cost_per_token: 0.000001\n"
    "      output_cost_per_token: 0.000002\n"
    "    model_info: {id: primary}\n"
    "  - model_name: app/chat\n"
    "    litellm_params:\n"
    "      model: openai/gpt-b\n"
    "      api_base: os.environ/B_BASE\n"
    "      api_key: sk-b\n"
    "      order: 2\n"
    "      input_cost_per_token: 0.000001\n"
    "      output_cost_per_token: 0.000002\n"
    "    model_info: {id: secondary}\n"
    "router_settings: {allowed_fails: 3, cooldown_time: 30, stream_timeout: 0.4, idle_timeout: 2}\n";

static const char *chat_body = "{\"model\":\"app/chat\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
static const char *stream_body =
    "{\"model\":\"app/chat\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";

static void failover_on_503(void **state)
{
    struct world w;
    struct reply r;
    char v[128];
    (void)state;

    world_start(&w, two_tier_yaml);
    w.a.mode = UP_STATUS;
    w.a.status = 503;
    w.a.body = "{\"error\":{\"message\":\"Our servers are currently overloaded.\",\"type\":"
               "\"service_unavailable_error\",\"param\":null,\"code\":\"server_is_overloaded\"}}";
    w.b.mode = UP_OK;
    request(&w, "/v1/chat/completions", chat_body, NULL, "x-slodrill-fault: revoke_key", &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "hi from prov-b"));
    assert_string_equal(hdr(&r, "x-slodrill-attempts", v, sizeof v), "2");
    assert_string_equal(hdr(&r, "x-slodrill-deployment", v, sizeof v), "secondary");
    assert_string_equal(hdr(&r, "x-slodrill-provider", v, sizeof v), "prov-b");
    assert_string_equal(hdr(&r, "x-slodrill-model", v, sizeof v), "gpt-b");
    assert_string_equal(hdr(&r, "x-slodrill-failover-hops", v, sizeof v), "1");
    assert_string_equal(hdr(&r, "x-slodrill-fallbacks", v, sizeof v), "0");
    /* 10 prompt x 1e-6 + 20 completion x 2e-6 */
    assert_string_equal(hdr(&r, "x-slodrill-cost-usd", v, sizeof v), "0.00005000");
    assert_true(strlen(hdr(&r, "x-slodrill-request-id", v, sizeof v)) > 4);
    world_stop(&w);
    assert_int_equal(w.a.requests, 1);
    assert_int_equal(w.b.requests, 1);
    /* what went upstream: the deployment's key and model, never the client's fault header */
    assert_string_equal(w.a.last_auth, "Bearer sk-a");
    assert_string_equal(w.b.last_auth, "Bearer sk-b");
    assert_string_equal(w.b.last_model, "gpt-b");
    assert_int_equal(w.a.saw_fault_header, 0);
}

static void failover_on_401_cools(void **state)
{
    struct world w;
    struct reply r;
    char v[128];
    (void)state;

    world_start(&w, two_tier_yaml);
    w.a.mode = UP_STATUS;
    w.a.status = 401;
    w.a.body = "{\"error\":{\"message\":\"Incorrect API key provided: sk-a.\",\"type\":"
               "\"invalid_request_error\",\"param\":null,\"code\":\"invalid_api_key\"}}";
    w.b.mode = UP_OK;
    request(&w, "/v1/chat/completions", chat_body, NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(hdr(&r, "x-slodrill-attempts", v, sizeof v), "2");
    /* the primary cools at once: the next request goes straight to the secondary */
    request(&w, "/v1/chat/completions", chat_body, NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(hdr(&r, "x-slodrill-attempts", v, sizeof v), "1");
    assert_string_equal(hdr(&r, "x-slodrill-deployment", v, sizeof v), "secondary");
    /* both keys bad: the client's key was fine, so 503, never 401 */
    w.b.mode = UP_STATUS;
    w.b.status = 401;
    w.b.body = w.a.body;
    request(&w, "/v1/chat/completions", chat_body, NULL, NULL, &r);
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.body, "\"error\""));
    assert_non_null(strstr(r.body, "primary cooling down"));
    world_stop(&w);
    assert_int_equal(w.a.requests, 1);
    assert_int_equal(w.b.requests, 3);
    assert_non_null(strstr(w.events, "cooldown_start:primary;"));
    assert_non_null(strstr(w.events, "cooldown_start:secondary;"));
}

static void stream_chunk_by_chunk(void **state)
{
    struct world w;
    struct reply r;
    char v[128];
    (void)state;

    world_start(&w, two_tier_yaml);
    w.a.mode = UP_STREAM;
    w.a.events = 4;
    w.a.gap_ms = 250;
    w.a.first_ms = 50;
    request(&w, "/v1/chat/completions", stream_body, NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(hdr(&r, "content-type", v, sizeof v), "text/event-stream"));
    assert_string_equal(hdr(&r, "x-slodrill-deployment", v, sizeof v), "primary");
    /* the first token arrives long before the stream ends: nothing was buffered */
    assert_true(r.first_content_s >= 0);
    assert_true(r.first_content_s < 0.4);
    assert_true(r.total_s > 0.8);
    assert_non_null(strstr(r.body, "tok0"));
    assert_non_null(strstr(r.body, "tok3"));
    assert_non_null(strstr(r.body, "\"role\":\"assistant\""));
    assert_non_null(strstr(r.body, "data: [DONE]\n\n"));
    world_stop(&w);
}

static void stream_timeout_fails_over(void **state)
{
    struct world w;
    struct reply r;
    char v[128];
    (void)state;

    world_start(&w, two_tier_yaml);
    /* headers and a role chunk at once, the first token only after 3 s */
    w.a.mode = UP_STREAM;
    w.a.events = 2;
    w.a.first_ms = 3000;
    w.a.gap_ms = 10;
    w.b.mode = UP_STREAM;
    w.b.events = 2;
    w.b.first_ms = 10;
    w.b.gap_ms = 10;
    request(&w, "/v1/chat/completions", stream_body, NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(hdr(&r, "x-slodrill-deployment", v, sizeof v), "secondary");
    assert_string_equal(hdr(&r, "x-slodrill-attempts", v, sizeof v), "2");
    assert_true(r.total_s < 1.5);
    assert_non_null(strstr(r.body, "data: [DONE]"));
    /* only one role chunk reached the client: the primary's was held back */
    {
        const char *first = strstr(r.body, "\"role\"");
        assert_non_null(first);
        assert_null(strstr(first + 1, "\"role\""));
    }
    world_stop(&w);
}

static void cut_after_first_token_ends_with_error_event(void **state)
{
    struct world w;
    struct reply r;
    (void)state;

    world_start(&w, two_tier_yaml);
    w.a.mode = UP_STREAM_CUT;
    w.a.events = 5;
    w.a.first_ms = 10;
    w.a.gap_ms = 20;
    w.b.mode = UP_OK;
    request(&w, "/v1/chat/completions", stream_body, NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "tok1"));
    assert_null(strstr(r.body, "data: [DONE]"));
    assert_non_null(strstr(r.body, "data: {\"error\":{"));
    world_stop(&w);
    assert_int_equal(w.b.requests, 0); /* no failover once bytes were sent */
}

static void client_gives_up_midway(void **state)
{
    struct world w;
    CURL *c;
    char url[256];
    struct reply r;
    struct curl_slist *h = NULL;
    (void)state;

    world_start(&w, two_tier_yaml);
    w.a.mode = UP_STREAM;
    w.a.events = 50;
    w.a.first_ms = 10;
    w.a.gap_ms = 100;
    memset(&r, 0, sizeof r);
    r.first_content_s = -1;
    c = curl_easy_init();
    snprintf(url, sizeof url, "%s/v1/chat/completions", w.url);
    h = curl_slist_append(h, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, stream_body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, cl_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 350L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    assert_int_equal(curl_easy_perform(c), CURLE_OPERATION_TIMEDOUT);
    assert_non_null(strstr(r.body, "tok0"));
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    /* the proxy lets go of the upstream; the next request is served as usual */
    w.a.mode = UP_OK;
    usleep(200000);
    request(&w, "/v1/chat/completions", chat_body, NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    world_stop(&w);
}

static void client_fault_returned_as_is(void **state)
{
    struct world w;
    struct reply r;
    char v[128];
    const char *body400 = "{\"error\":{\"message\":\"bad messages\",\"type\":"
                          "\"invalid_request_error\",\"param\":\"messages\",\"code\":null}}";
    (void)state;

    world_start(&w, two_tier_yaml);
    w.a.mode = UP_STATUS;
    w.a.status = 400;
    w.a.body = body400;
    w.b.mode = UP_OK;
    request(&w, "/v1/chat/completions", chat_body, NULL, NULL, &r);
    assert_int_equal(r.status, 400);
    assert_string_equal(r.body, body400);
    assert_string_equal(hdr(&r, "x-slodrill-attempts", v, sizeof v), "1");
    /* an unknown alias is the client's fault too */
    request(&w, "/v1/chat/completions", "{\"model\":\"nope\",\"messages\":[]}", NULL, NULL, &r);
    assert_int_equal(r.status, 404);
    assert_non_null(strstr(r.body, "model_not_found"));
    world_stop(&w);
    assert_int_equal(w.b.requests, 0);
}

static void master_key_enforced(void **state)
{
    struct world w;
    struct reply r;
    char yaml[4096];
    (void)state;

    snprintf(yaml, sizeof yaml, "%sgeneral_settings: {master_key: sk-master-1}\n", two_tier_yaml);
    world_start(&w, yaml);
    w.a.mode = UP_OK;
    request(&w, "/v1/chat/completions", chat_body, NULL, NULL, &r);
    assert_int_equal(r.status, 401);
    assert_non_null(strstr(r.body, "\"error\""));
    request(&w, "/v1/chat/completions", chat_body, "sk-master-2", NULL, &r);
    assert_int_equal(r.status, 401);
    request(&w, "/v1/chat/completions", chat_body, "sk-master-1", NULL, &r);
    assert_int_equal(r.status, 200);
    request(&w, "/v1/models", NULL, "sk-master-1", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"id\":\"app/chat\""));
    request(&w, "/health/liveliness", NULL, NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    world_stop(&w);
    assert_int_equal(w.a.requests, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(failover_on_503),
        cmocka_unit_test(failover_on_401_cools),
        cmocka_unit_test(stream_chunk_by_chunk),
        cmocka_unit_test(stream_timeout_fails_over),
        cmocka_unit_test(cut_after_first_token_ends_with_error_event),
        cmocka_unit_test(client_gives_up_midway),
        cmocka_unit_test(client_fault_returned_as_is),
        cmocka_unit_test(master_key_enforced),
    };
    int rc;
    if (getenv("TEST_FILTER"))
        cmocka_set_test_filter(getenv("TEST_FILTER"));
    evthread_use_pthreads();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
