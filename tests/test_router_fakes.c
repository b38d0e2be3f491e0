/* test_router_fakes.c -- the router between real fake providers (OpenAI dialect): usage.cost
 * on streams, include_usage given back exactly as asked, failover on 503 counted at the fakes,
 * revoked keys cooling, refused egress, BYPASS_ROUTER, the move of waiting streams when a
 * deployment cools, and backpressure from a slow reader. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>

#include "test_router_util.h"

static const char *two_tier_yaml =
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
    "router_settings: {allowed_fails: 3, cooldown_time: 30, stream_timeout: 1.5}\n";

static const char *chat_body =
    "{\"model\":\"app/chat\",\"messages\":[{\"role\":\"user\",\"content\":\"Hello there, how are "
    "you today?\"}]}";
static const char *stream_usage_body =
    "{\"model\":\"app/chat\",\"stream\":true,\"stream_options\":{\"include_usage\":true},"
    "\"messages\":[{\"role\":\"user\",\"content\":\"Hello there, how are you today?\"}]}";
static const char *stream_body =
    "{\"model\":\"app/chat\",\"stream\":true,"
    "\"messages\":[{\"role\":\"user\",\"content\":\"Hello there, how are you today?\"}]}";

static void start_two(struct rw *w, const char *yaml)
{
    struct fake_spec ps, ss;
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

static int content_chunks(const cJSON *data)
{
    const cJSON *c;
    int n = 0;
    cJSON_ArrayForEach(c, data)
    {
        const cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItem(c, "choices"), 0);
        const cJSON *t = cJSON_GetObjectItem(cJSON_GetObjectItem(ch, "delta"), "content");
        if (cJSON_IsString(t) && t->valuestring[0]) n++;
    }
    return n;
}

/* ---- task 1: cost on streams ---- */

static void stream_usage_carries_cost(void **state)
{
    struct rw w;
    struct rw_reply r;
    cJSON *data;
    const cJSON *last, *usage, *c;
    double p, q, cost;
    int n, i;
    (void)state;

    start_two(&w, two_tier_yaml);
    rw_request(&w, "/v1/chat/completions", stream_usage_body, NULL, 5000, &r);
    assert_int_equal(r.status, 200);
    data = rw_sse_data(r.body);
    n = cJSON_GetArraySize(data);
    assert_true(n >= 4);
    assert_string_equal(cJSON_GetArrayItem(data, n - 1)->valuestring, "[DONE]");
    last = cJSON_GetArrayItem(data, n - 2);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(last, "choices")), 0);
    usage = cJSON_GetObjectItem(last, "usage");
    assert_true(cJSON_IsObject(usage));
    p = cJSON_GetObjectItem(usage, "prompt_tokens")->valuedouble;
    q = cJSON_GetObjectItem(usage, "completion_tokens")->valuedouble;
    assert_true(p > 0 && q > 0);
    assert_true(cJSON_IsNumber(cJSON_GetObjectItem(usage, "cost")));
    cost = cJSON_GetObjectItem(usage, "cost")->valuedouble;
    assert_true(fabs(cost - (p * 1e-6 + q * 2e-6)) < 1e-12);
    /* one content chunk per completion token; every other chunk keeps "usage":null */
    assert_int_equal(content_chunks(data), (int)q);
    for (i = 0; i < n - 2; i++) {
        c = cJSON_GetArrayItem(data, i);
        assert_true(cJSON_IsNull(cJSON_GetObjectItem(c, "usage")));
    }
    cJSON_Delete(data);
    rw_reply_free(&r);
    rw_stop(&w);
}

static void stream_without_include_usage_sees_none(void **state)
{
    struct rw w;
    struct rw_reply r;
    cJSON *data;
    const cJSON *c;
    int n;
    (void)state;

    start_two(&w, two_tier_yaml);
    rw_request(&w, "/v1/chat/completions", stream_body, NULL, 5000, &r);
    assert_int_equal(r.status, 200);
    assert_null(strstr(r.body, "\"usage\""));
    assert_null(strstr(r.body, "\"choices\":[]"));
    data = rw_sse_data(r.body);
    n = cJSON_GetArraySize(data);
    assert_string_equal(cJSON_GetArrayItem(data, n - 1)->valuestring, "[DONE]");
    assert_true(content_chunks(data) > 0);
    cJSON_ArrayForEach(c, data)
    {
        if (cJSON_IsString(c)) continue;
        assert_true(cJSON_IsObject(c)); /* every chunk is still valid JSON */
        assert_string_equal(cJSON_GetObjectItem(c, "object")->valuestring,
                            "chat.completion.chunk");
    }
    /* the last chunk before [DONE] is the finish chunk */
    c = cJSON_GetArrayItem(data, n - 2);
    assert_string_equal(
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(c, "choices"), 0),
                            "finish_reason")
            ->valuestring,
        "stop");
    cJSON_Delete(data);
    rw_reply_free(&r);
    rw_stop(&w);
}

/* ---- task 3: failures at real fakes ---- */

static void failover_on_503_counted_at_fakes(void **state)
{
    struct rw w;
    struct rw_reply r;
    struct fake_stats ps, ss;
    char v[64];
    int i;
    (void)state;

    start_two(&w, two_tier_yaml);
    add_fault(w.primary, "http_error;status=503");
    for (i = 0; i < 5; i++) {
        rw_request(&w, "/v1/chat/completions", chat_body, NULL, 5000, &r);
        assert_int_equal(r.status, 200);
        assert_string_equal(rw_hdr(&r, "x-slodrill-deployment", v, sizeof v), "secondary");
        assert_string_equal(rw_hdr(&r, "x-slodrill-provider", v, sizeof v), "secondary");
        /* allowed_fails 3: the 4th failure cools the primary, the 5th request skips it */
        assert_string_equal(rw_hdr(&r, "x-slodrill-attempts", v, sizeof v), i < 4 ? "2" : "1");
        assert_non_null(strstr(r.body, "chat.completion"));
        rw_reply_free(&r);
    }
    fake_stats_get(w.primary, &ps);
    fake_stats_get(w.secondary, &ss);
    rw_stop(&w);
    assert_int_equal(ps.requests, 4);
    assert_int_equal(ps.faulted, 4);
    assert_int_equal(ss.requests, 5);
    assert_int_equal(ss.ok, 5);
    assert_non_null(strstr(w.events, "cooldown_start:primary;"));
}

static void revoked_key_cools_primary(void **state)
{
    struct rw w;
    struct rw_reply r;
    struct fake_stats ps, ss;
    char v[64];
    (void)state;

    start_two(&w, two_tier_yaml);
    add_fault(w.primary, "revoke_key");
    rw_request(&w, "/v1/chat/completions", stream_body, NULL, 5000, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(rw_hdr(&r, "x-slodrill-attempts", v, sizeof v), "2");
    assert_string_equal(rw_hdr(&r, "x-slodrill-deployment", v, sizeof v), "secondary");
    assert_non_null(strstr(r.body, "data: [DONE]"));
    rw_reply_free(&r);
    /* cooled at once: the next one goes straight to the secondary */
    rw_request(&w, "/v1/chat/completions", chat_body, NULL, 5000, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(rw_hdr(&r, "x-slodrill-attempts", v, sizeof v), "1");
    assert_string_equal(rw_hdr(&r, "x-slodrill-deployment", v, sizeof v), "secondary");
    rw_reply_free(&r);
    fake_stats_get(w.primary, &ps);
    fake_stats_get(w.secondary, &ss);
    rw_stop(&w);
    assert_int_equal(ps.requests, 1);
    assert_int_equal(ps.faulted, 1);
    assert_int_equal(ss.ok, 2);
    assert_non_null(strstr(w.events, "cooldown_start:primary;"));
}

static void egress_refused_fails_over(void **state)
{
    struct rw w;
    struct rw_reply r;
    struct fake_stats ps, ss;
    char v[64];
    (void)state;

    start_two(&w, two_tier_yaml);
    add_fault(w.primary, "egress_block;mode=refuse");
    rw_request(&w, "/v1/chat/completions", stream_body, NULL, 5000, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(rw_hdr(&r, "x-slodrill-attempts", v, sizeof v), "2");
    assert_string_equal(rw_hdr(&r, "x-slodrill-deployment", v, sizeof v), "secondary");
    assert_true(r.total_s < 2.0);
    rw_reply_free(&r);
    fake_stats_get(w.primary, &ps);
    fake_stats_get(w.secondary, &ss);
    rw_stop(&w);
    assert_int_equal(ps.ok, 0);
    assert_int_equal(ss.ok, 1);
}

static void bypass_goes_straight_to_the_first(void **state)
{
    struct rw w;
    struct rw_reply r;
    struct fake_spec psp, ssp;
    struct fake_stats ps, ss;
    char v[64];
    int rc;
    (void)state;

    rw_spec(&psp, "primary", FAKE_OPENAI);
    rw_spec(&ssp, "secondary", FAKE_OPENAI);
    setenv("BYPASS_ROUTER", "true", 1);
    rc = rw_start(&w, two_tier_yaml, &psp, &ssp);
    unsetenv("BYPASS_ROUTER");
    assert_int_equal(rc, 0);
    add_fault(w.primary, "http_error;status=503");
    /* no retries, no failover, no cooldown: the provider's 503 reaches the client, twice */
    rw_request(&w, "/v1/chat/completions", chat_body, NULL, 5000, &r);
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.body, "server_is_overloaded"));
    assert_string_equal(rw_hdr(&r, "x-slodrill-attempts", v, sizeof v), "1");
    assert_string_equal(rw_hdr(&r, "x-slodrill-deployment", v, sizeof v), "primary");
    rw_reply_free(&r);
    rw_request(&w, "/v1/chat/completions", stream_body, NULL, 5000, &r);
    assert_int_equal(r.status, 503);
    rw_reply_free(&r);
    fake_fault_clear(w.primary, -1);
    rw_request(&w, "/v1/chat/completions", chat_body, NULL, 5000, &r);
    assert_int_equal(r.status, 200);
    rw_reply_free(&r);
    fake_stats_get(w.primary, &ps);
    fake_stats_get(w.secondary, &ss);
    rw_stop(&w);
    assert_int_equal(ps.requests, 3);
    assert_int_equal(ss.requests, 0);
    assert_null(strstr(w.events, "cooldown_start"));
}

/* Streams started 100 ms apart all wait on a primary whose first token is 8 s
 * away. The first hits stream_timeout (1.5 s) and cools the primary
 * (allowed_fails 0); the others move to the secondary at that moment instead
 * of each waiting out its own 1.5 s. */
#define MOVE_N 10
static void cooldown_moves_waiting_streams(void **state)
{
    static const char *yaml =
        "model_list:\n"
        "  - model_name: app/chat\n"
        "    litellm_params: {model: openai/gpt-p, api_base: os.environ/P_BASE, "
        "api_key: os.environ/P_KEY, order: 1}\n"
        "    model_info: {id: primary}\n"
        "  - model_name: app/chat\n"
        "    litellm_params: {model: openai/gpt-s, api_base: os.environ/S_BASE, "
        "api_key: os.environ/S_KEY, order: 2}\n"
        "    model_info: {id: secondary}\n"
        "router_settings: {allowed_fails: 0, cooldown_time: 30, stream_timeout: 1.5}\n";
    struct rw w;
    struct rw_reply r[MOVE_N];
    CURL *e[MOVE_N];
    struct curl_slist *h = NULL;
    CURLM *m;
    char url[256], v[64];
    uint64_t t0, start[MOVE_N], end[MOVE_N];
    int added = 0, running = 1, i, fast = 0, done = 0;
    struct fake_stats ps;
    (void)state;

    start_two(&w, yaml);
    add_fault(w.primary, "slow_ttft;ms=8000");
    m = curl_multi_init();
    snprintf(url, sizeof url, "%s/v1/chat/completions", w.url);
    h = curl_slist_append(h, "Content-Type: application/json");
    for (i = 0; i < MOVE_N; i++) {
        memset(&r[i], 0, sizeof r[i]);
        r[i].body = calloc(1, 1);
        e[i] = curl_easy_init();
        curl_easy_setopt(e[i], CURLOPT_URL, url);
        curl_easy_setopt(e[i], CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(e[i], CURLOPT_POSTFIELDS, stream_body);
        curl_easy_setopt(e[i], CURLOPT_HEADERFUNCTION, rw_hdr_cb);
        curl_easy_setopt(e[i], CURLOPT_HEADERDATA, &r[i]);
        curl_easy_setopt(e[i], CURLOPT_WRITEFUNCTION, rw_body_cb);
        curl_easy_setopt(e[i], CURLOPT_WRITEDATA, &r[i]);
        curl_easy_setopt(e[i], CURLOPT_TIMEOUT_MS, 10000L);
        curl_easy_setopt(e[i], CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e[i], CURLOPT_PRIVATE, &r[i]);
        end[i] = start[i] = 0;
    }
    t0 = clock_mono_us();
    while ((running || added < MOVE_N) && clock_mono_us() - t0 < 15000000u) {
        CURLMsg *msg;
        int left;
        uint64_t now = clock_mono_us();
        while (added < MOVE_N && now - t0 >= (uint64_t)added * 100000u) {
            start[added] = now;
            curl_multi_add_handle(m, e[added]);
            added++;
        }
        curl_multi_perform(m, &running);
        while ((msg = curl_multi_info_read(m, &left)) != NULL) {
            if (msg->msg != CURLMSG_DONE) continue;
            for (i = 0; i < MOVE_N; i++)
                if (e[i] == msg->easy_handle) {
                    end[i] = clock_mono_us();
                    r[i].result = msg->data.result;
                    curl_easy_getinfo(e[i], CURLINFO_RESPONSE_CODE, &r[i].status);
                }
        }
        curl_multi_poll(m, NULL, 0, 10, NULL);
    }
    for (i = 0; i < MOVE_N; i++) {
        double lat = end[i] ? (double)(end[i] - start[i]) / 1e6 : 99;
        if (end[i]) done++;
        assert_int_equal(r[i].status, 200);
        assert_non_null(strstr(r[i].body, "data: [DONE]"));
        assert_string_equal(rw_hdr(&r[i], "x-slodrill-deployment", v, sizeof v), "secondary");
        if (lat < 1.2) fast++;
        if (end[i] && (double)(end[i] - t0) / 1e6 > 2.2)
            fail_msg("stream %d ended %.2f s after the first started", i,
                     (double)(end[i] - t0) / 1e6);
        curl_multi_remove_handle(m, e[i]);
        curl_easy_cleanup(e[i]);
        rw_reply_free(&r[i]);
    }
    curl_multi_cleanup(m);
    curl_slist_free_all(h);
    fake_stats_get(w.primary, &ps);
    rw_stop(&w);
    assert_int_equal(done, MOVE_N);
    /* started 0.4 s or more after the first: moved at ~1.5 s, well before their own timeout */
    assert_true(fast >= MOVE_N / 2);
    assert_int_equal(ps.requests, MOVE_N);
    assert_non_null(strstr(w.events, "cooldown_start:primary;"));
}

/* A stream waiting on the only deployment when that deployment cools has
 * nowhere to move: it keeps waiting and receives its answer. */
static void cooldown_keeps_streams_with_nowhere_to_go(void **state)
{
    static const char *yaml =
        "model_list:\n"
        "  - model_name: app/chat\n"
        "    litellm_params: {model: openai/gpt-p, api_base: os.environ/P_BASE, "
        "api_key: os.environ/P_KEY}\n"
        "    model_info: {id: primary}\n"
        "router_settings: {allowed_fails: 0, cooldown_time: 30, stream_timeout: 3}\n";
    struct rw w;
    struct rw_reply b, a;
    CURL *e;
    CURLM *m;
    struct curl_slist *h = NULL;
    char url[256], v[64];
    int running = 1;
    uint64_t t0;
    (void)state;

    start_two(&w, yaml);
    add_fault(w.primary, "slow_ttft;ms=800");
    memset(&b, 0, sizeof b);
    b.body = calloc(1, 1);
    m = curl_multi_init();
    e = curl_easy_init();
    snprintf(url, sizeof url, "%s/v1/chat/completions", w.url);
    h = curl_slist_append(h, "Content-Type: application/json");
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, stream_body);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, rw_hdr_cb);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, &b);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, rw_body_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_multi_add_handle(m, e);
    t0 = clock_mono_us();
    while (clock_mono_us() - t0 < 250000u) {
        curl_multi_perform(m, &running);
        curl_multi_poll(m, NULL, 0, 10, NULL);
    }
    /* B is waiting for its first token; now a 503 cools the only deployment */
    fake_fault_clear(w.primary, -1);
    add_fault(w.primary, "http_error;status=503");
    rw_request(&w, "/v1/chat/completions", chat_body, NULL, 5000, &a);
    assert_int_equal(a.status, 503);
    rw_reply_free(&a);
    while (running && clock_mono_us() - t0 < 10000000u) {
        curl_multi_perform(m, &running);
        curl_multi_poll(m, NULL, 0, 10, NULL);
    }
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &b.status);
    assert_int_equal(b.status, 200);
    assert_string_equal(rw_hdr(&b, "x-slodrill-attempts", v, sizeof v), "1");
    assert_non_null(strstr(b.body, "data: [DONE]"));
    curl_multi_remove_handle(m, e);
    curl_easy_cleanup(e);
    curl_multi_cleanup(m);
    curl_slist_free_all(h);
    rw_reply_free(&b);
    rw_stop(&w);
    assert_non_null(strstr(w.events, "cooldown_start:primary;"));
}

/* A client that reads slowly through a small socket buffer: the router pauses
 * the upstream instead of queueing the whole answer, and the stream still
 * arrives complete. */
static void slow_reader_pauses_upstream(void **state)
{
    static const char *yaml = "model_list:\n"
                              "  - model_name: app/chat\n"
                              "    litellm_params: {model: openai/gpt-p, api_base: "
                              "os.environ/P_BASE, api_key: os.environ/P_KEY}\n"
                              "    model_info: {id: primary}\n";
    static const char *body = "{\"model\":\"app/chat\",\"stream\":true,\"max_tokens\":3000,"
                              "\"messages\":[{\"role\":\"user\",\"content\":\"write a lot\"}]}";
    const size_t high = 32768, low = 8192;
    struct rw w;
    struct fake_spec psp, ssp;
    struct proxy_stats st;
    struct sockaddr_in sa;
    char req[1024], buf[2048];
    char *got = NULL;
    size_t glen = 0;
    int fd, rcv = 4096, n;
    uint64_t t0;
    (void)state;

    rw_spec(&psp, "primary", FAKE_OPENAI);
    rw_spec(&ssp, "secondary", FAKE_OPENAI);
    psp.latency.output_tokens_median = 20000; /* capped by max_tokens at 3000 */
    psp.latency.tokens_per_s = 1e9; /* as fast as the loop goes */
    assert_int_equal(rw_setup(&w, yaml, &psp, &ssp), 0);
    proxy_set_backlog_limits(w.proxy, high, low);
    proxy_set_client_sndbuf(w.proxy, 16384);
    assert_int_equal(rw_run(&w), 0);

    fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)proxy_port(w.proxy));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    n = snprintf(req, sizeof req,
                 "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 "Content-Type: application/json\r\nContent-Length: %zu\r\n"
                 "Connection: close\r\n\r\n%s",
                 strlen(body), body);
    assert_int_equal(write(fd, req, (size_t)n), n);
    t0 = clock_mono_us();
    for (;;) {
        struct pollfd pfd = {fd, POLLIN, 0};
        ssize_t k;
        if (clock_mono_us() - t0 > 30000000u) fail_msg("slow reader: no end after 30 s");
        if (poll(&pfd, 1, 1000) <= 0) continue;
        k = read(fd, buf, sizeof buf);
        if (k <= 0) break;
        {
            char *ng = realloc(got, glen + (size_t)k + 1);
            if (!ng) fail_msg("out of memory");
            got = ng;
        }
        memcpy(got + glen, buf, (size_t)k);
        glen += (size_t)k;
        got[glen] = '\0';
        usleep(2000); /* read slowly: about 1 MB/s */
    }
    close(fd);
    rw_stop(&w);
    st = w.stats;
    assert_non_null(got);
    assert_non_null(strstr(got, "HTTP/1.1 200"));
    assert_non_null(strstr(got, "data: [DONE]"));
    assert_true(glen > 400 * 1024);
    /* the upstream was paused and resumed; the client's queue stayed near the mark */
    assert_true(st.upstream_pauses >= 1);
    assert_true(st.upstream_resumes >= 1);
    assert_true(st.max_client_backlog <= high + 64 * 1024);
    assert_true(st.max_client_backlog < glen / 4);
    free(got);
}

/* ---- task 4: /metrics and /admin ---- */

static double metric(const char *text, const char *series)
{
    const char *p = strstr(text, series);
    if (!p) fail_msg("no series %s in:\n%s", series, text);
    return strtod(p + strlen(series), NULL);
}

static void metrics_and_admin(void **state)
{
    char yaml[4096];
    struct rw w;
    struct rw_reply r;
    const char *key = "Authorization: Bearer sk-m-1";
    cJSON *j;
    const cJSON *d;
    char v[64];
    double now_ms = (double)(clock_wall_us() / 1000);
    (void)state;

    snprintf(yaml, sizeof yaml, "%sgeneral_settings: {master_key: sk-m-1}\n", two_tier_yaml);
    start_two(&w, yaml);
    add_fault(w.primary, "revoke_key");
    rw_request(&w, "/v1/chat/completions", stream_body, key, 5000, &r);
    assert_int_equal(r.status, 200);
    rw_reply_free(&r);

    rw_request(&w, "/metrics", NULL, NULL, 5000, &r);
    assert_int_equal(r.status, 401);
    rw_reply_free(&r);
    rw_request(&w, "/metrics", NULL, key, 5000, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(rw_hdr(&r, "content-type", v, sizeof v), "text/plain"));
    /* upstream attempts per deployment (the edge view: tests/test_router_metrics.c) */
    assert_true(metric(r.body, "slodrill_upstream_attempts_total{deployment=\"primary\",class=\"auth\"} ") == 1);
    assert_true(metric(r.body, "slodrill_upstream_attempts_total{deployment=\"secondary\",class=\"ok\"} ") == 1);
    assert_true(metric(r.body, "slodrill_upstream_attempts_total{deployment=\"primary\",class=\"ok\"} ") == 0);
    assert_true(metric(r.body, "slodrill_upstream_time_to_first_token_seconds_bucket{deployment=\"secondary\",le=\"2.5\"} ") == 1);
    assert_true(metric(r.body, "slodrill_upstream_time_to_first_token_seconds_count{deployment=\"primary\"} ") == 0);
    assert_true(metric(r.body, "slodrill_upstream_duration_seconds_bucket{deployment=\"secondary\",le=\"+Inf\"} ") == 1);
    assert_true(metric(r.body, "slodrill_tokens_total{deployment=\"secondary\",type=\"completion\"} ") > 0);
    /* the client asked for no usage, yet the stream was priced: the router asked upstream */
    assert_true(metric(r.body, "slodrill_upstream_cost_usd_total{deployment=\"secondary\"} ") > 0);
    assert_true(metric(r.body, "slodrill_upstream_cost_usd_total{deployment=\"primary\"} ") == 0);
    /* the one client request, at the edge */
    assert_true(metric(r.body, "slodrill_requests_total{alias=\"app/chat\",outcome=\"ok\"} ") == 1);
    assert_true(metric(r.body, "slodrill_cost_usd_total{alias=\"app/chat\"} ") > 0);
    rw_reply_free(&r);

    rw_request(&w, "/admin/deployments", NULL, NULL, 5000, &r);
    assert_int_equal(r.status, 401);
    rw_reply_free(&r);
    rw_request(&w, "/admin/deployments", NULL, key, 5000, &r);
    assert_int_equal(r.status, 200);
    j = cJSON_Parse(r.body);
    d = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "data"), 0);
    assert_string_equal(cJSON_GetObjectItem(d, "id")->valuestring, "primary");
    assert_string_equal(cJSON_GetObjectItem(d, "alias")->valuestring, "app/chat");
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(d, "healthy")));
    assert_true(cJSON_GetObjectItem(d, "cooldown_until_ms")->valuedouble > now_ms + 20000);
    assert_int_equal(cJSON_GetObjectItem(d, "fails_in_window")->valueint, 0); /* a cooldown clears it */
    d = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "data"), 1);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(d, "healthy")));
    assert_true(cJSON_GetObjectItem(d, "cooldown_until_ms")->valuedouble == 0);
    cJSON_Delete(j);
    rw_reply_free(&r);

    rw_request(&w, "/admin/cooldowns/clear", "", key, 5000, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"cleared\":1}");
    rw_reply_free(&r);
    rw_request(&w, "/admin/deployments", NULL, key, 5000, &r);
    assert_non_null(strstr(r.body, "\"id\":\"primary\",\"alias\":\"app/chat\""));
    assert_null(strstr(r.body, "\"healthy\":false"));
    rw_reply_free(&r);
    /* one 503: counted in the window, not yet cooling (allowed_fails 3) */
    fake_fault_clear(w.primary, -1);
    add_fault(w.primary, "http_error;status=503");
    rw_request(&w, "/v1/chat/completions", chat_body, key, 5000, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(rw_hdr(&r, "x-slodrill-attempts", v, sizeof v), "2");
    rw_reply_free(&r);
    rw_request(&w, "/admin/deployments", NULL, key, 5000, &r);
    j = cJSON_Parse(r.body);
    d = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "data"), 0);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(d, "healthy")));
    assert_int_equal(cJSON_GetObjectItem(d, "fails_in_window")->valueint, 1);
    cJSON_Delete(j);
    rw_reply_free(&r);
    /* back on the primary at once */
    fake_fault_clear(w.primary, -1);
    rw_request(&w, "/v1/chat/completions", chat_body, key, 5000, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(rw_hdr(&r, "x-slodrill-deployment", v, sizeof v), "primary");
    assert_string_equal(rw_hdr(&r, "x-slodrill-attempts", v, sizeof v), "1");
    rw_reply_free(&r);
    rw_stop(&w);
    assert_non_null(strstr(w.events, "cooldown_end:primary;"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(stream_usage_carries_cost),
        cmocka_unit_test(stream_without_include_usage_sees_none),
        cmocka_unit_test(failover_on_503_counted_at_fakes),
        cmocka_unit_test(revoked_key_cools_primary),
        cmocka_unit_test(egress_refused_fails_over),
        cmocka_unit_test(bypass_goes_straight_to_the_first),
        cmocka_unit_test(cooldown_moves_waiting_streams),
        cmocka_unit_test(cooldown_keeps_streams_with_nowhere_to_go),
        cmocka_unit_test(slow_reader_pauses_upstream),
        cmocka_unit_test(metrics_and_admin),
    };
    int rc;
    if (getenv("TEST_FILTER")) cmocka_set_test_filter(getenv("TEST_FILTER"));
    rw_global_init();
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
