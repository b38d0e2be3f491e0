/* test_harness_loadgen.c -- the load generator against an in-test evhttp server.
 *
 * The server runs on its own thread and event loop; the generator runs on the
 * test thread's loop and writes a real run DB, read back with rundb_load.
 * The server's behaviour per request comes from an x-test-mode header the
 * generator sends (opts->headers). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/clock.h"
#include "common/net.h"
#include "harness/loadgen.h"
#include "reports/rundb.h"

/* ---- the in-test server ---- */

struct srv {
    struct event_base *base;
    struct evhttp *http;
    int port;
    pthread_t th;
    pthread_mutex_t mu;
    int nreq;               /* requests seen (guarded by mu) */
    int stall_at;           /* the request number (1-based) that blocks the loop 300 ms */
    char first_body[4096];  /* the first request's body and headers */
    char first_auth[128], first_tenant[64], first_accept[64], first_ctype[64], first_extra[64];
};

/* One streaming reply in progress. */
struct sctx {
    struct evhttp_request *req;
    struct event *timer;
    int cut;     /* 1: end without [DONE]; 2: reset the connection; 3: error event */
    int delay_ms; /* content this long after the role chunk (default 50) */
};

static const char ROLE_CHUNK[] =
    "data: {\"id\":\"chatcmpl-t1\",\"object\":\"chat.completion.chunk\",\"model\":\"fake-a-model\","
    "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
    "\"finish_reason\":null}]}\n\n";
static const char CONTENT_CHUNKS[] =
    "data: {\"id\":\"chatcmpl-t1\",\"object\":\"chat.completion.chunk\",\"model\":\"fake-a-model\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"},\"finish_reason\":null}]}\n\n"
    "data: {\"id\":\"chatcmpl-t1\",\"object\":\"chat.completion.chunk\",\"model\":\"fake-a-model\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" world\"},\"finish_reason\":null}]}\n\n";
static const char USAGE_DONE[] =
    "data: {\"id\":\"chatcmpl-t1\",\"object\":\"chat.completion.chunk\",\"model\":\"fake-a-model\","
    "\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"
    "data: {\"id\":\"chatcmpl-t1\",\"object\":\"chat.completion.chunk\",\"model\":\"fake-a-model\","
    "\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2,\"total_tokens\":11}}"
    "\n\n"
    "data: [DONE]\n\n";
static const char ERROR_EVENT[] =
    "data: {\"error\":{\"message\":\"Our servers are currently overloaded.\","
    "\"type\":\"service_unavailable_error\"}}\n\n";

static void srv_chunk(struct evhttp_request *req, const char *s)
{
    struct evbuffer *b = evbuffer_new();

    assert_non_null(b);
    evbuffer_add(b, s, strlen(s));
    evhttp_send_reply_chunk(req, b);
    evbuffer_free(b);
}

static void sctx_free(struct sctx *c)
{
    if (c->timer) event_free(c->timer);
    free(c);
}

/* The client went away (or the server is shutting down) mid-reply. When the
 * client closed, libevent has detached the request and it is ours to free;
 * when the server shuts down, the connection frees it. */
static void srv_on_close(struct evhttp_connection *evcon, void *arg)
{
    struct sctx *c = arg;

    (void)evcon;
    if (evhttp_request_get_connection(c->req) == NULL) evhttp_request_free(c->req);
    sctx_free(c);
}

static void srv_on_content(evutil_socket_t fd, short what, void *arg)
{
    struct sctx *c = arg;
    struct evhttp_connection *evcon = evhttp_request_get_connection(c->req);

    (void)fd;
    (void)what;
    evhttp_connection_set_closecb(evcon, NULL, NULL);
    srv_chunk(c->req, CONTENT_CHUNKS);
    if (c->cut == 2) {
        evhttp_connection_free(evcon); /* a reset mid-stream */
    } else {
        if (c->cut == 3) srv_chunk(c->req, ERROR_EVENT);
        else if (c->cut == 0) srv_chunk(c->req, USAGE_DONE);
        evhttp_send_reply_end(c->req);
    }
    sctx_free(c);
}

static void srv_on_role_sent(struct evhttp_connection *evcon, void *arg)
{
    struct sctx *c = arg;
    struct timeval tv = {0, 50000};

    (void)evcon;
    if (c->delay_ms > 0) {
        tv.tv_sec = c->delay_ms / 1000;
        tv.tv_usec = (c->delay_ms % 1000) * 1000;
    }
    if (!evtimer_pending(c->timer, NULL)) evtimer_add(c->timer, &tv);
}

static void srv_plain(struct evhttp_request *req, int status, const char *ctype,
                      const char *body)
{
    struct evbuffer *b = evbuffer_new();

    assert_non_null(b);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", ctype);
    evbuffer_add(b, body, strlen(body));
    evhttp_send_reply(req, status, "X", b);
    evbuffer_free(b);
}

static void srv_copy_hdr(struct evkeyvalq *in, const char *name, char *dst, size_t len)
{
    const char *v = evhttp_find_header(in, name);

    snprintf(dst, len, "%s", v ? v : "");
}

static void srv_handler(struct evhttp_request *req, void *arg)
{
    struct srv *s = arg;
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    const char *mode = evhttp_find_header(in, "x-test-mode");
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct sctx *c;
    int n;

    if (!mode) mode = "sse";
    pthread_mutex_lock(&s->mu);
    n = ++s->nreq;
    if (n == 1) {
        struct evbuffer *body = evhttp_request_get_input_buffer(req);
        size_t len = evbuffer_get_length(body);

        if (len >= sizeof s->first_body) len = sizeof s->first_body - 1;
        evbuffer_copyout(body, s->first_body, len);
        s->first_body[len] = '\0';
        srv_copy_hdr(in, "Authorization", s->first_auth, sizeof s->first_auth);
        srv_copy_hdr(in, "x-tenant-id", s->first_tenant, sizeof s->first_tenant);
        srv_copy_hdr(in, "Accept", s->first_accept, sizeof s->first_accept);
        srv_copy_hdr(in, "Content-Type", s->first_ctype, sizeof s->first_ctype);
        srv_copy_hdr(in, "x-extra", s->first_extra, sizeof s->first_extra);
    }
    pthread_mutex_unlock(&s->mu);
    if (s->stall_at && n == s->stall_at) {
        usleep(300000); /* the whole server stalls */
        event_base_update_cache_time(s->base); /* so its 50 ms timer counts from now */
    }
    net_nodelay(bufferevent_getfd(evhttp_connection_get_bufferevent(evcon)));

    if (strcmp(mode, "503") == 0) {
        evhttp_add_header(out, "x-slodrill-provider", "fake-a");
        srv_plain(req, 503, "application/json; charset=utf-8",
                  "{\n    \"error\": {\n        \"message\": \"Our servers are currently "
                  "overloaded. Please try again later.\",\n        \"type\": "
                  "\"service_unavailable_error\",\n        \"param\": null,\n        \"code\": "
                  "\"server_is_overloaded\"\n    }\n}\n");
        return;
    }
    if (strcmp(mode, "429") == 0) {
        evhttp_add_header(out, "retry-after", "1");
        srv_plain(req, 429, "application/json",
                  "{\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":"
                  "\"This request would exceed your account's rate limit.\"}}");
        return;
    }
    if (strcmp(mode, "401") == 0) {
        srv_plain(req, 401, "application/json",
                  "{\"error\":{\"message\":\"Incorrect API key provided\",\"code\":"
                  "\"invalid_api_key\"}}");
        return;
    }
    if (strcmp(mode, "400") == 0) {
        srv_plain(req, 400, "text/plain", "bad request, plain text");
        return;
    }
    if (strcmp(mode, "json") == 0) {
        evhttp_add_header(out, "x-served-by", "node-7");
        evhttp_add_header(out, "x-request-id", "req_abc");
        srv_plain(req, 200, "application/json",
                  "{\"id\":\"chatcmpl-j1\",\"object\":\"chat.completion\",\"model\":"
                  "\"fake-json-model\",\"choices\":[{\"index\":0,\"message\":{\"role\":"
                  "\"assistant\",\"content\":\"Hi there\"},\"finish_reason\":\"stop\"}],"
                  "\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":3}}");
        return;
    }
    if (strcmp(mode, "badjson") == 0) {
        srv_plain(req, 200, "application/json", "{\"id\": \"x\", \"choices\": [");
        return;
    }
    /* streaming modes: headers + a role-only chunk now, content 50 ms later */
    c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->req = req;
    c->cut = strcmp(mode, "cut") == 0 ? 1 : strcmp(mode, "reset") == 0 ? 2
             : strcmp(mode, "errev") == 0 ? 3 : 0;
    c->delay_ms = strcmp(mode, "slow") == 0 ? 400 : 0;
    evhttp_add_header(out, "Content-Type", "text/event-stream; charset=utf-8");
    evhttp_add_header(out, "x-slodrill-provider", "fake-a");
    evhttp_add_header(out, "x-slodrill-deployment", "dep-a1");
    evhttp_add_header(out, "x-slodrill-attempts", "2");
    evhttp_add_header(out, "x-slodrill-fallbacks", "1");
    evhttp_add_header(out, "x-slodrill-request-id", "rq-42");
    evhttp_add_header(out, "x-slodrill-cost-usd", "0.0012");
    evhttp_send_reply_start(req, 200, "OK");
    evhttp_connection_set_closecb(evcon, srv_on_close, c);
    if (strcmp(mode, "hang") == 0) {
        srv_chunk(req, ROLE_CHUNK);
        return; /* never another byte */
    }
    c->timer = evtimer_new(s->base, srv_on_content, c);
    assert_non_null(c->timer);
    {
        struct evbuffer *b = evbuffer_new();

        assert_non_null(b);
        evbuffer_add(b, ROLE_CHUNK, strlen(ROLE_CHUNK));
        /* content follows 50 ms after the role chunk has left the server */
        evhttp_send_reply_chunk_with_cb(req, b, srv_on_role_sent, c);
        evbuffer_free(b);
    }
}

static void *srv_main(void *arg)
{
    struct srv *s = arg;

    event_base_loop(s->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

static struct srv *srv_start(void)
{
    struct srv *s = calloc(1, sizeof *s);
    char err[256];

    assert_non_null(s);
    pthread_mutex_init(&s->mu, NULL);
    s->base = event_base_new();
    assert_non_null(s->base);
    s->http = evhttp_new(s->base);
    assert_non_null(s->http);
    evhttp_set_gencb(s->http, srv_handler, s);
    assert_int_equal(net_listen_http(s->http, "127.0.0.1", 0, &s->port, NULL, err, sizeof err),
                     0);
    assert_int_equal(pthread_create(&s->th, NULL, srv_main, s), 0);
    return s;
}

static void srv_stop(struct srv *s)
{
    event_base_loopbreak(s->base);
    pthread_join(s->th, NULL);
    evhttp_free(s->http); /* closes connections: pending replies' contexts go too */
    event_base_free(s->base);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* ---- running the generator ---- */

struct run {
    struct event_base *base;
    struct loadgen *lg;
    int done;
    int stop_after_ms;   /* > 0: loadgen_stop at this time */
    int drain_after_ms;  /* > 0: loadgen_drain at this time */
    uint64_t done_mono_us; /* when on_done ran */
    struct loadgen_stats st;
};

static void run_on_done(void *arg)
{
    struct run *r = arg;

    r->done = 1;
    r->done_mono_us = clock_mono_us();
    loadgen_get_stats(r->lg, &r->st);
    loadgen_free(r->lg); /* allowed here: on_done runs on a loop turn of its own */
    r->lg = NULL;
    event_base_loopbreak(r->base);
}

static void run_on_stop(evutil_socket_t fd, short what, void *arg)
{
    struct run *r = arg;

    (void)fd;
    (void)what;
    loadgen_stop(r->lg);
}

static void run_on_drain(evutil_socket_t fd, short what, void *arg)
{
    struct run *r = arg;

    (void)fd;
    (void)what;
    loadgen_drain(r->lg);
    loadgen_drain(r->lg); /* twice does nothing */
}

static void run_on_guard(evutil_socket_t fd, short what, void *arg)
{
    struct run *r = arg;

    (void)fd;
    (void)what;
    event_base_loopbreak(r->base);
}

static char tmpdir[64];
/* Under valgrind every thread crawls: the schedule and gap timings that
 * hold on a loaded machine do not, so those checks are skipped. */
static int under_valgrind;
static int dbcount;

/* Runs one load against the server with opts (url, db, prompts filled in
 * here when not set); returns what the run DB holds. */
static struct run_data *run_load(struct srv *s, const struct loadgen_opts *o, struct run *r)
{
    char url[128], path[128], err[512];
    struct prompt_set ps = {NULL, 0};
    struct loadgen_opts lo = *o;
    struct rundb *db;
    struct run_data *d;
    struct event *stop_ev = NULL, *drain_ev = NULL, *guard;
    struct timeval gtv = {10, 0};

    if (!lo.prompts) {
        assert_int_equal(prompt_set_builtin(&ps), 0);
        lo.prompts = &ps;
    }
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/chat/completions", s->port);
    snprintf(path, sizeof path, "%s/run%d.db", tmpdir, dbcount++);
    db = rundb_create(path, "loadgen-test", "{}", clock_wall_us(), err, sizeof err);
    if (!db) fail_msg("rundb_create: %s", err);
    if (!lo.url) lo.url = url;
    if (!lo.model) lo.model = "app/chat";
    lo.db = db;
    lo.t0_mono_us = clock_mono_us() + 20000;
    r->base = event_base_new();
    assert_non_null(r->base);
    r->lg = loadgen_new(r->base, &lo, run_on_done, r, err, sizeof err);
    if (!r->lg) fail_msg("loadgen_new: %s", err);
    if (r->stop_after_ms > 0) {
        struct timeval tv = {r->stop_after_ms / 1000, (r->stop_after_ms % 1000) * 1000};
        stop_ev = evtimer_new(r->base, run_on_stop, r);
        evtimer_add(stop_ev, &tv);
    }
    if (r->drain_after_ms > 0) {
        struct timeval tv = {r->drain_after_ms / 1000, (r->drain_after_ms % 1000) * 1000};
        drain_ev = evtimer_new(r->base, run_on_drain, r);
        evtimer_add(drain_ev, &tv);
    }
    guard = evtimer_new(r->base, run_on_guard, r);
    evtimer_add(guard, &gtv);
    event_base_dispatch(r->base);
    if (!r->done) { /* say where it stuck before failing */
        struct loadgen_stats st;
        loadgen_get_stats(r->lg, &st);
        fprintf(stderr, "guard fired: scheduled %lu started %lu done %lu inflight %lu\n",
                (unsigned long)st.scheduled, (unsigned long)st.started, (unsigned long)st.done,
                (unsigned long)st.inflight);
    }
    assert_true(r->done); /* else the 10 s guard fired */
    loadgen_free(r->lg);
    r->lg = NULL;
    if (stop_ev) event_free(stop_ev);
    if (drain_ev) event_free(drain_ev);
    event_free(guard);
    event_base_free(r->base);
    assert_int_equal(rundb_finish(db, "complete", 0), 0);
    prompt_set_free(&ps);
    d = rundb_load(path, err, sizeof err);
    if (!d) fail_msg("rundb_load: %s", err);
    unlink(path);
    {
        char side[160];
        snprintf(side, sizeof side, "%s-wal", path);
        unlink(side);
        snprintf(side, sizeof side, "%s-shm", path);
        unlink(side);
    }
    return d;
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/lgtest.XXXXXX");
    if (!mkdtemp(tmpdir)) return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    rmdir(tmpdir);
    return 0;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* ---- tests ---- */

/* 2 s at 50/s, streamed; the server stalls 300 ms at its 50th request. */
static void test_open_loop_stream(void **state)
{
    struct srv *s = srv_start();
    struct loadgen_header hdrs[] = {{"x-extra", "yes"}};
    struct loadgen_opts o;
    struct run r;
    struct run_data *d;
    int64_t lat[100], max_lat = 0;
    size_t i, behind = 0, gap_ok = 0;
    cJSON *body;

    (void)state;
    memset(&o, 0, sizeof o);
    memset(&r, 0, sizeof r);
    o.api_key = "sk-test-123";
    o.rate = 50;
    o.arrival = ARRIVAL_CONSTANT;
    o.duration_s = 2.0;
    o.stream = 1;
    o.max_tokens = 64;
    o.headers = hdrs;
    o.nheaders = 1;
    o.seed = 3;
    s->stall_at = 50;
    d = run_load(s, &o, &r);

    assert_int_equal(d->nreq, 100); /* exactly the schedule */
    assert_int_equal(r.st.scheduled, 100);
    assert_int_equal(r.st.done, 100);
    assert_int_equal(r.st.ok, 100);
    assert_int_equal(r.st.dropped, 0);
    assert_int_equal(r.st.inflight, 0);
    /* keep-alive reuse (under valgrind answers are slow, so more overlap) */
    assert_true(r.st.connects >= 1 && r.st.connects <= (under_valgrind ? 60u : 20u));
    /* late: started > 1 ms after intended; a few, on a loaded 2-CPU machine */
    if (!under_valgrind) assert_true(r.st.late <= 30);
    assert_true(r.st.rolling_sr > 99.9);
    assert_string_equal(r.st.top_provider, "fake-a");
    assert_true(r.st.top_share > 99.9);
    assert_true(r.st.rolling_p95_s > 0.04);
    { /* the live p95 is read off a histogram: never below the exact order
       * statistic of the run DB's records, at most one bucket (3.1%) above */
        int64_t all[100] = {0};
        double exact;
        for (i = 0; i < d->nreq; i++) {
            const struct req_record *q = &d->req[i];
            all[i] = (q->first_token_us >= 0 ? q->first_token_us : q->end_us) - q->intended_us;
        }
        qsort(all, d->nreq, sizeof all[0], cmp_i64);
        exact = (double)all[94] / 1e6; /* ceil(0.95 * 100) = 95th */
        assert_true(r.st.rolling_p95_s >= exact);
        assert_true(r.st.rolling_p95_s <= exact * (1 + 1.0 / 32) + 1e-6);
    }
    for (i = 0; i < d->nreq; i++) {
        const struct req_record *q = &d->req[i];

        assert_int_equal(q->seq, (int64_t)i);
        assert_int_equal(q->intended_us, (int64_t)i * 20000); /* 20 ms apart */
        assert_int_equal(q->outcome, OUTCOME_OK);
        assert_int_equal(q->http_status, 200);
        assert_true(q->started_us >= q->intended_us);
        if (!under_valgrind) /* the generator kept time */
            assert_true(q->started_us - q->intended_us < 50000);
        assert_true(q->first_byte_us > 0);
        assert_true(q->first_token_us > q->first_byte_us);
        if (q->first_token_us - q->first_byte_us >= 40000) gap_ok++;
        assert_true(q->end_us >= q->first_token_us);
        assert_string_equal(q->provider, "fake-a");
        assert_string_equal(q->deployment, "dep-a1");
        assert_string_equal(q->model, "fake-a-model");
        assert_string_equal(q->request_id, "rq-42");
        assert_int_equal(q->attempts, 2);
        assert_int_equal(q->failover_hops, 1);
        assert_int_equal(q->input_tokens, 9);
        assert_int_equal(q->output_tokens, 2);
        assert_true(fabs(q->cost_usd - 0.0012) < 1e-9);
        assert_int_equal(q->stream, 1);
        assert_true(q->tenant[0] != '\0');
        lat[i] = q->first_token_us - q->intended_us;
        if (lat[i] > max_lat) max_lat = lat[i];
        if (lat[i] >= 150000) behind++;
    }
    /* the role-only chunk is not a token: content came 50 ms after it (all of
     * them normally; a loaded machine or valgrind may delay a first read) */
    if (gap_ok < (under_valgrind ? 50u : 90u)) fail_msg("only %zu of 100 requests saw the 50 ms role-to-content gap", gap_ok);
    /* open loop: the stall shows in the latency of the requests scheduled
     * behind it (from their intended start), not only in the one that hit it */
    assert_true(max_lat >= 330000);
    assert_true(behind >= 6);
    qsort(lat, 100, sizeof lat[0], cmp_i64);
    if (!under_valgrind) assert_true(lat[50] < 120000); /* a median one: 50 ms + a little */

    /* what the server received */
    assert_string_equal(s->first_auth, "Bearer sk-test-123");
    assert_string_equal(s->first_accept, "text/event-stream");
    assert_string_equal(s->first_ctype, "application/json");
    assert_string_equal(s->first_extra, "yes");
    assert_true(s->first_tenant[0] != '\0');
    body = cJSON_Parse(s->first_body);
    assert_non_null(body);
    assert_string_equal(cJSON_GetObjectItem(body, "model")->valuestring, "app/chat");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(body, "stream")));
    assert_int_equal(cJSON_GetObjectItem(body, "max_tokens")->valueint, 64);
    assert_true(cJSON_IsTrue(
        cJSON_GetObjectItem(cJSON_GetObjectItem(body, "stream_options"), "include_usage")));
    assert_true(cJSON_GetArraySize(cJSON_GetObjectItem(body, "messages")) >= 1);
    cJSON_Delete(body);
    rundb_data_free(d);
    srv_stop(s);
}

/* Runs mode at 20/s for 0.1 s (2 requests) and checks both records. */
static void expect_outcome(struct srv *s, const char *url, const char *mode, int stream,
                           enum outcome want, int status, const char *err_prefix)
{
    struct loadgen_header hdrs[] = {{"x-test-mode", mode}};
    struct loadgen_opts o;
    struct run r;
    struct run_data *d;
    size_t i;

    memset(&o, 0, sizeof o);
    memset(&r, 0, sizeof r);
    o.url = url;
    o.rate = 20;
    o.duration_s = 0.1;
    o.stream = stream;
    o.headers = hdrs;
    o.nheaders = 1;
    o.timeout_s = 5;
    d = run_load(s, &o, &r);
    assert_int_equal(d->nreq, 2);
    for (i = 0; i < d->nreq; i++) {
        const struct req_record *q = &d->req[i];

        if (q->outcome != want || q->http_status != status ||
            strncmp(q->error, err_prefix, strlen(err_prefix)) != 0)
            fail_msg("mode %s: outcome %s status %d error '%s'; want %s %d '%s...'", mode,
                     outcome_name(q->outcome), q->http_status, q->error, outcome_name(want),
                     status, err_prefix);
        assert_true(q->end_us >= q->started_us);
    }
    if (outcome_is_failure(want)) assert_int_equal(r.st.failed, 2);
    rundb_data_free(d);
}

static void test_error_outcomes(void **state)
{
    struct srv *s = srv_start();
    char refused[128];
    struct sockaddr_in sa;
    socklen_t sl = sizeof sa;
    int fd;

    (void)state;
    expect_outcome(s, NULL, "503", 1, OUTCOME_RETRYABLE_ERROR, 503,
                   "HTTP 503: Our servers are currently overloaded.");
    expect_outcome(s, NULL, "429", 1, OUTCOME_RATE_LIMITED, 429,
                   "HTTP 429: This request would exceed");
    expect_outcome(s, NULL, "401", 0, OUTCOME_RETRYABLE_ERROR, 401,
                   "HTTP 401: Incorrect API key");
    expect_outcome(s, NULL, "400", 0, OUTCOME_CLIENT_ERROR, 400, "HTTP 400: bad request");
    expect_outcome(s, NULL, "cut", 1, OUTCOME_RETRYABLE_ERROR, 200,
                   "stream cut: ended without data: [DONE]");
    expect_outcome(s, NULL, "reset", 1, OUTCOME_RETRYABLE_ERROR, 200, "stream cut: ");
    expect_outcome(s, NULL, "errev", 1, OUTCOME_RETRYABLE_ERROR, 200,
                   "error event in stream: Our servers are currently overloaded.");
    expect_outcome(s, NULL, "badjson", 0, OUTCOME_RETRYABLE_ERROR, 200, "malformed response");

    /* connection refused: a port that was just free */
    fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    close(fd);
    snprintf(refused, sizeof refused, "http://127.0.0.1:%d/v1/chat/completions",
             ntohs(sa.sin_port));
    expect_outcome(s, refused, "sse", 1, OUTCOME_RETRYABLE_ERROR, 0, "Couldn't connect");
    srv_stop(s);
}

static void test_nonstream_json(void **state)
{
    struct srv *s = srv_start();
    struct loadgen_header hdrs[] = {{"x-test-mode", "json"}};
    struct loadgen_opts o;
    struct run r;
    struct run_data *d;
    size_t i;
    int pass;

    (void)state;
    for (pass = 0; pass < 2; pass++) {
        memset(&o, 0, sizeof o);
        memset(&r, 0, sizeof r);
        o.rate = 20;
        o.duration_s = 0.15;
        o.headers = hdrs;
        o.nheaders = 1;
        o.served_by_header = pass ? "X-Served-By" : NULL;
        d = run_load(s, &o, &r);
        assert_int_equal(d->nreq, 3);
        for (i = 0; i < d->nreq; i++) {
            const struct req_record *q = &d->req[i];

            assert_int_equal(q->outcome, OUTCOME_OK);
            assert_int_equal(q->stream, 0);
            /* unstreamed: the first token is the whole body */
            assert_int_equal(q->first_token_us, q->end_us);
            assert_true(q->first_byte_us <= q->end_us);
            assert_int_equal(q->input_tokens, 12);
            assert_int_equal(q->output_tokens, 3);
            assert_string_equal(q->model, "fake-json-model");
            assert_string_equal(q->provider, pass ? "node-7" : "fake-json-model");
            assert_string_equal(q->request_id, "req_abc");
            assert_true(q->cost_usd < 0); /* unknown */
        }
        rundb_data_free(d);
    }
    assert_string_equal(s->first_accept, "application/json");
    srv_stop(s);
}

/* max_inflight 2 against a server that never finishes; stopped at 400 ms. */
static void test_dropped_and_stop(void **state)
{
    struct srv *s = srv_start();
    struct loadgen_header hdrs[] = {{"x-test-mode", "hang"}};
    struct loadgen_opts o;
    struct run r;
    struct run_data *d;
    size_t i, dropped = 0, aborted = 0;

    (void)state;
    memset(&o, 0, sizeof o);
    memset(&r, 0, sizeof r);
    o.rate = 50;
    o.duration_s = 0.2;
    o.stream = 1;
    o.headers = hdrs;
    o.nheaders = 1;
    o.max_inflight = 2;
    r.stop_after_ms = 400;
    d = run_load(s, &o, &r);
    assert_int_equal(d->nreq, 10);
    for (i = 0; i < d->nreq; i++) {
        const struct req_record *q = &d->req[i];

        assert_int_equal(q->outcome, OUTCOME_TIMEOUT);
        if (strcmp(q->error, "dropped: max_inflight") == 0) {
            dropped++;
            assert_int_equal(q->http_status, 0);
            assert_int_equal(q->started_us, -1);
        } else if (strcmp(q->error, "aborted") == 0) {
            aborted++;
            assert_int_equal(q->http_status, 200);
            assert_true(q->first_byte_us > 0);
            assert_int_equal(q->first_token_us, -1); /* only the role chunk came */
            assert_true(q->end_us >= 300000);
        }
    }
    assert_int_equal(dropped, 8);
    assert_int_equal(aborted, 2);
    assert_int_equal(r.st.dropped, 8);
    assert_int_equal(r.st.failed, 10);
    assert_int_equal(r.st.started, 2);
    assert_true(r.st.rolling_sr < 0.1);
    assert_true(r.st.rolling_p95_s < 0);
    rundb_data_free(d);
    srv_stop(s);
}

static void test_client_timeout(void **state)
{
    struct srv *s = srv_start();
    struct loadgen_header hdrs[] = {{"x-test-mode", "hang"}};
    struct loadgen_opts o;
    struct run r;
    struct run_data *d;

    (void)state;
    memset(&o, 0, sizeof o);
    memset(&r, 0, sizeof r);
    o.rate = 10;
    o.duration_s = 0.1;
    o.stream = 1;
    o.headers = hdrs;
    o.nheaders = 1;
    o.timeout_s = 0.3;
    d = run_load(s, &o, &r);
    assert_int_equal(d->nreq, 1);
    assert_int_equal(d->req[0].outcome, OUTCOME_TIMEOUT);
    assert_string_equal(d->req[0].error, "timeout after 0.3 s (before the first token)");
    assert_true(d->req[0].end_us - d->req[0].started_us >= 290000);
    assert_true(d->req[0].end_us - d->req[0].started_us < 1000000);
    rundb_data_free(d);
    srv_stop(s);
}

/* Poisson arrivals: seeded, so the same seed gives the same schedule. */
static void test_poisson_schedule(void **state)
{
    struct srv *s = srv_start();
    struct loadgen_header hdrs[] = {{"x-test-mode", "json"}};
    int64_t *first = NULL;
    size_t nfirst = 0, i;
    int pass, same = 1;
    uint64_t seeds[3] = {7, 7, 8};
    struct prompt_set weighted;
    char path[128], err[256];
    FILE *f;

    (void)state;
    snprintf(path, sizeof path, "%s/w.jsonl", tmpdir);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"prompt\": \"a\", \"tenant\": \"heavy\", \"weight\": 9}\n"
          "{\"prompt\": \"b\", \"tenant\": \"light\"}\n", f);
    fclose(f);
    assert_int_equal(prompt_set_load(path, &weighted, err, sizeof err), 0);
    unlink(path);
    for (pass = 0; pass < 3; pass++) {
        struct loadgen_opts o;
        struct run r;
        struct run_data *d;
        double mean_gap;

        memset(&o, 0, sizeof o);
        memset(&r, 0, sizeof r);
        o.rate = 400;
        o.arrival = ARRIVAL_POISSON;
        o.duration_s = 0.5;
        o.headers = hdrs;
        o.nheaders = 1;
        o.seed = seeds[pass];
        if (pass == 2) o.prompts = &weighted;
        d = run_load(s, &o, &r);
        assert_true(d->nreq >= 140 && d->nreq <= 260); /* 200 expected */
        assert_int_equal(d->req[0].intended_us, 0);
        assert_true(d->req[d->nreq - 1].intended_us < 500000);
        for (i = 1; i < d->nreq; i++) assert_true(d->req[i].intended_us >= d->req[i - 1].intended_us);
        mean_gap = (double)d->req[d->nreq - 1].intended_us / (double)(d->nreq - 1);
        assert_true(mean_gap > 1700 && mean_gap < 3500);
        for (i = 0; i < d->nreq; i++) assert_int_equal(d->req[i].outcome, OUTCOME_OK);
        if (pass == 0) {
            nfirst = d->nreq;
            first = malloc(nfirst * sizeof *first);
            assert_non_null(first);
            for (i = 0; i < nfirst; i++) first[i] = d->req[i].intended_us;
        } else {
            int eq = d->nreq == nfirst;

            for (i = 0; eq && i < nfirst; i++) eq = first[i] == d->req[i].intended_us;
            if (pass == 1) assert_true(eq);  /* same seed, same schedule */
            else same = eq;
        }
        if (pass == 2) { /* weights 9:1 pick the heavy prompt about 90% of the time */
            size_t heavy = 0;

            for (i = 0; i < d->nreq; i++) heavy += strcmp(d->req[i].tenant, "heavy") == 0;
            assert_true(heavy * 100 >= d->nreq * 80 && heavy * 100 <= d->nreq * 97);
            assert_true(heavy < d->nreq);
        }
        rundb_data_free(d);
    }
    assert_false(same); /* another seed, another schedule */
    free(first);
    prompt_set_free(&weighted);
    srv_stop(s);
}

static void test_bad_options(void **state)
{
    struct event_base *base = event_base_new();
    struct prompt_set ps;
    struct loadgen_opts o;
    struct loadgen_header bad[] = {{"x-bad", "a\r\nInjected: 1"}};
    char err[256];

    (void)state;
    assert_int_equal(prompt_set_builtin(&ps), 0);
    memset(&o, 0, sizeof o);
    o.url = "http://127.0.0.1:1/v1/chat/completions";
    o.model = "m";
    o.prompts = &ps;
    o.rate = 0;
    o.duration_s = 1;
    assert_null(loadgen_new(base, &o, NULL, NULL, err, sizeof err));
    assert_non_null(strstr(err, "rate"));
    o.rate = 10;
    o.headers = bad;
    o.nheaders = 1;
    assert_null(loadgen_new(base, &o, NULL, NULL, err, sizeof err));
    assert_non_null(strstr(err, "x-bad"));
    prompt_set_free(&ps);
    event_base_free(base);
}

/* ---- prompt sets ---- */

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void expect_prompt_error(const char *text, const char *want)
{
    char path[128], err[512], full[256];
    struct prompt_set ps;

    snprintf(path, sizeof path, "%s/p.jsonl", tmpdir);
    write_file(path, text);
    assert_int_equal(prompt_set_load(path, &ps, err, sizeof err), -1);
    snprintf(full, sizeof full, "%s:%s", path, want);
    if (strncmp(err, full, strlen(full)) != 0) fail_msg("got '%s', want '%s...'", err, full);
    assert_null(ps.v);
    unlink(path);
}

static void test_prompts(void **state)
{
    struct prompt_set ps;
    char err[512], path[128];
    size_t i;
    char *big;
    FILE *f;

    (void)state;
    assert_int_equal(prompt_set_load("scenarios/prompts/support.jsonl", &ps, err, sizeof err), 0);
    assert_int_equal(ps.n, 32);
    for (i = 0; i < ps.n; i++) {
        cJSON *m = cJSON_Parse(ps.v[i].messages_json);
        assert_true(cJSON_IsArray(m));
        assert_true(ps.v[i].weight > 0);
        assert_non_null(ps.v[i].tenant);
        cJSON_Delete(m);
    }
    assert_string_equal(ps.v[0].user, "u-1001");
    assert_true(ps.v[2].weight == 3);
    /* the short form becomes one user message */
    assert_string_equal(ps.v[6].messages_json,
                        "[{\"role\":\"user\",\"content\":\"I was billed for an annual plan but "
                        "I only wanted the monthly one. Can I get the difference back?\"}]");
    prompt_set_free(&ps);

    assert_int_equal(prompt_set_builtin(&ps), 0);
    assert_true(ps.n >= 30);
    prompt_set_free(&ps);

    expect_prompt_error("{\"prompt\": \"a\"}\n\n{\"prompt\": \"b\",}\n", "3:16: invalid JSON");
    expect_prompt_error("{\"prompt\": \"a\", \"tennant\": \"x\"}\n",
                        "1:17: unknown key 'tennant'");
    expect_prompt_error("{\"tenant\": \"x\"}\n", "1:1: missing \"messages\"");
    expect_prompt_error("{\"messages\": [{\"content\": \"hi\"}]}\n",
                        "1:2: each message needs a \"role\"");
    expect_prompt_error("{\"prompt\": \"a\", \"weight\": -1}\n", "1:17: \"weight\" must be");
    expect_prompt_error("{\"prompt\": \"a\", \"tenant\": \"a\\nb\"}\n", "1:17: \"tenant\" must be");
    expect_prompt_error("[1, 2]\n", "1:1: expected a JSON object");
    expect_prompt_error("\n\n", "3:1: no prompts");

    /* a line over the bound */
    snprintf(path, sizeof path, "%s/long.jsonl", tmpdir);
    big = malloc(70000);
    assert_non_null(big);
    memset(big, 'a', 69999);
    big[69999] = '\0';
    f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "{\"prompt\": \"ok\"}\n{\"prompt\": \"%s\"}\n", big);
    fclose(f);
    free(big);
    assert_int_equal(prompt_set_load(path, &ps, err, sizeof err), -1);
    assert_non_null(strstr(err, ":2:65537: line longer than 65536 bytes"));
    unlink(path);
    assert_int_equal(prompt_set_load("/nonexistent/x.jsonl", &ps, err, sizeof err), -1);
    assert_non_null(strstr(err, "cannot open"));
}

/* The "load" event the generator leaves at run-clock 0. */
static const struct run_event *load_event(const struct run_data *d)
{
    size_t i;

    for (i = 0; i < d->nev; i++)
        if (strcmp(d->ev[i].kind, "load") == 0) return &d->ev[i];
    return NULL;
}

/* Constant arrivals ramping 20/s -> 100/s over 1 s: 60 requests, request k
 * where the expected count 20 t + 40 t^2 reaches k. */
static void test_ramp_schedule(void **state)
{
    struct srv *s = srv_start();
    struct loadgen_header hdrs[] = {{"x-test-mode", "json"}};
    struct loadgen_opts o;
    struct run r;
    struct run_data *d;
    const struct run_event *ev;
    size_t i;

    (void)state;
    memset(&o, 0, sizeof o);
    memset(&r, 0, sizeof r);
    o.rate = 20;
    o.ramp_to = 100;
    o.duration_s = 1;
    o.headers = hdrs;
    o.nheaders = 1;
    assert_float_equal(loadgen_schedule_length_s(&o), 1.0, 1e-12);
    d = run_load(s, &o, &r);
    assert_int_equal(d->nreq, 60);
    for (i = 0; i < d->nreq; i++) {
        double k = (double)i, t = (-20 + sqrt(400 + 160 * k)) / 80; /* 40 t^2 + 20 t = k */
        assert_int_equal(d->req[i].seq, (int64_t)i);
        assert_true(llabs(d->req[i].intended_us - (int64_t)llround(t * 1e6)) <= 1);
        assert_int_equal(d->req[i].outcome, OUTCOME_OK);
    }
    /* gaps shrink as the rate grows: 50 ms at the start, about 10 ms at the end */
    assert_true(d->req[1].intended_us - d->req[0].intended_us > 40000);
    assert_true(d->req[59].intended_us - d->req[58].intended_us < 11000);
    ev = load_event(d);
    assert_non_null(ev);
    assert_int_equal(ev->t_us, 0);
    assert_string_equal(ev->subject, "open");
    assert_string_equal(ev->detail, "constant arrivals ramping 20/s -> 100/s over 1 s");
    rundb_data_free(d);
    srv_stop(s);
}

/* Steps: 50/s for 0.4 s, a 0.2 s pause, then 0 -> 100/s over 0.4 s (20
 * requests each side of the pause); then the same steps with Poisson
 * arrivals, whose count is random but whose pause holds. */
static void test_steps_schedule(void **state)
{
    struct srv *s = srv_start();
    struct loadgen_header hdrs[] = {{"x-test-mode", "json"}};
    struct loadgen_step steps[] = {{50, 0, 0.4}, {0, 0, 0.2}, {0, 100, 0.4}};
    struct loadgen_opts o;
    struct run r;
    struct run_data *d;
    size_t i, first_half = 0;
    int pass;

    (void)state;
    for (pass = 0; pass < 2; pass++) {
        memset(&o, 0, sizeof o);
        memset(&r, 0, sizeof r);
        o.steps = steps;
        o.nsteps = 3;
        o.rate = 999;       /* ignored with steps */
        o.duration_s = 60;  /* ignored with steps */
        o.arrival = pass ? ARRIVAL_POISSON : ARRIVAL_CONSTANT;
        o.seed = 3;
        o.headers = hdrs;
        o.nheaders = 1;
        assert_float_equal(loadgen_schedule_length_s(&o), 1.0, 1e-12);
        d = run_load(s, &o, &r);
        for (i = 0; i < d->nreq; i++) {
            int64_t t = d->req[i].intended_us;
            assert_true(t < 400000 || (t >= 600000 && t < 1000000)); /* nothing in the pause */
            if (i > 0) assert_true(t >= d->req[i - 1].intended_us);
        }
        if (pass == 0) {
            assert_int_equal(d->nreq, 40);
            for (i = 0; i < 20; i++) assert_int_equal(d->req[i].intended_us, (int64_t)i * 20000);
            assert_int_equal(d->req[20].intended_us, 600000); /* the ramp starts at zero */
            /* 0 -> 100/s over 0.4 s: count 125 s^2, so request 20 + j at sqrt(j / 125) */
            assert_true(llabs(d->req[25].intended_us - (600000 + (int64_t)llround(sqrt(5.0 / 125) * 1e6))) <= 1);
            assert_string_equal(load_event(d)->detail,
                                "constant arrivals, 3 steps: 50/s for 0.4 s, 0/s for 0.2 s, "
                                "0->100/s for 0.4 s");
        } else {
            assert_true(d->nreq >= 22 && d->nreq <= 60); /* 40 expected */
            for (i = 0; i < d->nreq; i++) first_half += d->req[i].intended_us < 400000;
            assert_true(first_half >= 7 && first_half <= 35);
            assert_non_null(strstr(load_event(d)->detail, "poisson arrivals, 3 steps"));
        }
        rundb_data_free(d);
    }
    srv_stop(s);
}

/* Closed loop: 4 workers for 0.5 s against answers that come at once. Never
 * more than 4 requests in flight; each starts when its worker is free. */
static void test_closed_loop(void **state)
{
    struct srv *s = srv_start();
    struct loadgen_header hdrs[] = {{"x-test-mode", "json"}};
    struct loadgen_opts o;
    struct run r;
    struct run_data *d;
    int64_t *starts, *ends;
    size_t i, j, maxc = 0, cur = 0;

    (void)state;
    memset(&o, 0, sizeof o);
    memset(&r, 0, sizeof r);
    o.closed_workers = 4;
    o.duration_s = 0.5;
    o.headers = hdrs;
    o.nheaders = 1;
    d = run_load(s, &o, &r);
    assert_true(d->nreq >= 20); /* a loopback answer takes well under 100 ms */
    assert_int_equal(r.st.dropped, 0);
    starts = malloc(d->nreq * sizeof *starts);
    ends = malloc(d->nreq * sizeof *ends);
    for (i = 0; i < d->nreq; i++) {
        assert_int_equal(d->req[i].outcome, OUTCOME_OK);
        assert_true(d->req[i].intended_us < 500000);
        assert_true(d->req[i].started_us - d->req[i].intended_us < 100000);
        starts[i] = d->req[i].started_us;
        ends[i] = d->req[i].end_us;
    }
    for (i = 0; i < 4; i++) assert_int_equal(d->req[i].intended_us, 0);
    qsort(starts, d->nreq, sizeof *starts, cmp_i64);
    qsort(ends, d->nreq, sizeof *ends, cmp_i64);
    for (i = 0, j = 0; i < d->nreq;) { /* sweep: an end at the same time as a start goes first */
        if (j < d->nreq && ends[j] <= starts[i]) {
            cur--;
            j++;
        } else {
            cur++;
            i++;
            if (cur > maxc) maxc = cur;
        }
    }
    assert_true(maxc <= 4);
    assert_true(maxc >= 2);
    assert_string_equal(load_event(d)->subject, "closed");
    assert_string_equal(load_event(d)->detail, "closed loop: 4 workers for 0.5 s");
    free(starts);
    free(ends);
    rundb_data_free(d);
    srv_stop(s);
}

/* A drain at 500 ms of a 10 s schedule whose answers take 450 ms: nothing
 * starts after it, the requests in flight end normally (none "aborted"),
 * and the generator is done soon after the last of them. */
static void test_drain(void **state)
{
    struct srv *s = srv_start();
    struct loadgen_header hdrs[] = {{"x-test-mode", "slow"}};
    struct loadgen_opts o;
    struct run r;
    struct run_data *d;
    size_t i, after_drain = 0;
    uint64_t t0;

    (void)state;
    memset(&o, 0, sizeof o);
    memset(&r, 0, sizeof r);
    o.rate = 20;
    o.duration_s = 10;
    o.stream = 1;
    o.headers = hdrs;
    o.nheaders = 1;
    r.drain_after_ms = 520; /* the schedule starts 20 ms in: 10 or 11 requests due */
    t0 = clock_mono_us();
    d = run_load(s, &o, &r);
    assert_true(d->nreq >= 9 && d->nreq <= 12);
    for (i = 0; i < d->nreq; i++) {
        const struct req_record *q = &d->req[i];

        assert_int_equal(q->outcome, OUTCOME_OK);
        assert_string_equal(q->error, "");
        assert_true(q->intended_us <= 510000);
        assert_true(q->first_token_us > q->started_us);
        if (q->end_us > 510000) after_drain++;
    }
    assert_true(after_drain >= 5); /* in flight at the drain, and let finish */
    assert_int_equal(r.st.failed, 0);
    assert_int_equal(r.st.inflight, 0);
    assert_int_equal(r.st.done, d->nreq);
    if (!under_valgrind) assert_true(r.done_mono_us - t0 < 2000000);
    rundb_data_free(d);
    srv_stop(s);
}

/* A drain waits at most for the per-request timeout: requests that never
 * answer end as timeouts (curl's own), not as "aborted", and the generator
 * is done about timeout_s after the drain. */
static void test_drain_bounded(void **state)
{
    struct srv *s = srv_start();
    struct loadgen_header hdrs[] = {{"x-test-mode", "hang"}};
    struct loadgen_opts o;
    struct run r;
    struct run_data *d;
    size_t i;
    uint64_t t0;

    (void)state;
    memset(&o, 0, sizeof o);
    memset(&r, 0, sizeof r);
    o.rate = 10;
    o.duration_s = 10;
    o.stream = 1;
    o.headers = hdrs;
    o.nheaders = 1;
    o.timeout_s = 0.4;
    r.drain_after_ms = 270; /* requests at 0, 100 and 200 ms are running */
    t0 = clock_mono_us();
    d = run_load(s, &o, &r);
    assert_int_equal(d->nreq, 3);
    for (i = 0; i < d->nreq; i++) {
        assert_int_equal(d->req[i].outcome, OUTCOME_TIMEOUT);
        assert_string_equal(d->req[i].error, "timeout after 0.4 s (before the first token)");
    }
    if (!under_valgrind) {
        assert_true(r.done_mono_us - t0 >= 600000);  /* the last one's timeout */
        assert_true(r.done_mono_us - t0 < 1500000);
    }
    rundb_data_free(d);
    srv_stop(s);
}

/* A stop after a drain cuts what is still running at once. */
static void test_drain_then_stop(void **state)
{
    struct srv *s = srv_start();
    struct loadgen_header hdrs[] = {{"x-test-mode", "hang"}};
    struct loadgen_opts o;
    struct run r;
    struct run_data *d;
    size_t i;

    (void)state;
    memset(&o, 0, sizeof o);
    memset(&r, 0, sizeof r);
    o.rate = 10;
    o.duration_s = 10;
    o.stream = 1;
    o.headers = hdrs;
    o.nheaders = 1;
    o.timeout_s = 5;
    r.drain_after_ms = 170;
    r.stop_after_ms = 400;
    d = run_load(s, &o, &r);
    assert_int_equal(d->nreq, 2);
    for (i = 0; i < d->nreq; i++) {
        assert_string_equal(d->req[i].error, "aborted");
        assert_true(d->req[i].end_us >= 350000 && d->req[i].end_us < 1000000);
    }
    assert_true(r.done);
    rundb_data_free(d);
    srv_stop(s);
}

static void test_bad_schedules(void **state)
{
    struct event_base *base = event_base_new();
    struct prompt_set ps;
    struct loadgen_opts o;
    struct loadgen_step zero_len[] = {{10, 0, 1}, {10, 0, 0}};
    struct loadgen_step silent[] = {{0, 0, 1}};
    char err[256];

    (void)state;
    assert_int_equal(prompt_set_builtin(&ps), 0);
    memset(&o, 0, sizeof o);
    o.url = "http://127.0.0.1:1/v1/chat/completions";
    o.model = "m";
    o.prompts = &ps;
    o.duration_s = 1;
    o.steps = zero_len;
    o.nsteps = 2;
    assert_null(loadgen_new(base, &o, NULL, NULL, err, sizeof err));
    assert_non_null(strstr(err, "step 2: duration must be above 0 s"));
    o.steps = silent;
    o.nsteps = 1;
    assert_null(loadgen_new(base, &o, NULL, NULL, err, sizeof err));
    assert_non_null(strstr(err, "must send something"));
    o.nsteps = 0;
    o.rate = 0;
    o.ramp_to = -5;
    assert_null(loadgen_new(base, &o, NULL, NULL, err, sizeof err));
    assert_non_null(strstr(err, "rate"));
    o.ramp_to = 0;
    o.closed_workers = -1;
    assert_null(loadgen_new(base, &o, NULL, NULL, err, sizeof err));
    assert_non_null(strstr(err, "closed-loop workers"));
    prompt_set_free(&ps);
    event_base_free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prompts),
        cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_open_loop_stream),
        cmocka_unit_test(test_error_outcomes),
        cmocka_unit_test(test_nonstream_json),
        cmocka_unit_test(test_dropped_and_stop),
        cmocka_unit_test(test_client_timeout),
        cmocka_unit_test(test_poisson_schedule),
        cmocka_unit_test(test_ramp_schedule),
        cmocka_unit_test(test_steps_schedule),
        cmocka_unit_test(test_closed_loop),
        cmocka_unit_test(test_bad_schedules),
        cmocka_unit_test(test_drain),
        cmocka_unit_test(test_drain_bounded),
        cmocka_unit_test(test_drain_then_stop),
    };
    int rc;

    under_valgrind = getenv("SLODRILL_VALGRIND") != NULL;
    evthread_use_pthreads();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = cmocka_run_group_tests(tests, setup, teardown);
    curl_global_cleanup();
    return rc;
}
