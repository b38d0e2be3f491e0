/* test_fakeproviders_threads.c -- a fake served by several loop threads:
 * the same seed gives the same answers whichever loop takes a connection,
 * egress_block refuse closes the port on every loop and clearing it opens
 * the same port again, a fixed port is still exclusive, stats and journal
 * count every loop's requests, many concurrent streams keep their pace and
 * bytes, and freeing the fake with streams open ends them cleanly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>

#include "test_fakeproviders_util.h"

#define AUTH "Authorization: Bearer sk-test-primary-0123456789abcd"
#define CT "Content-Type: application/json"
#define BODY "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"
#define SBODY "{\"model\":\"m\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"

static void spec_threads(struct fake_spec *s, int threads)
{
    tsrv_spec(s, "primary", FAKE_OPENAI);
    s->threads = threads;
}

/* One request on a connection of its own (a new connection lands on
 * whichever loop the kernel picks). */
static void post(const struct tsrv *s, struct resp *r, const char *body, const char *fault,
                 long timeout_ms)
{
    char url[256], fh[160];
    const char *hdrs[] = {AUTH, CT, fh, NULL};
    snprintf(url, sizeof url, "%s/v1/chat/completions", fake_url(s->f));
    snprintf(fh, sizeof fh, "x-slodrill-fault: %s", fault ? fault : "");
    if (fault == NULL) hdrs[2] = NULL;
    http_do(r, url, NULL, body, hdrs, timeout_ms);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Per-request randomness comes from one seeded stream the loops share: the
 * same requests in the same order give the same bytes with 4 loops as with
 * 1, though each request here comes on a new connection. */
static void same_answers_on_every_loop(void **state)
{
    struct tsrv a, b;
    struct fake_spec sa, sb;
    struct fake_stats st;
    (void)state;
    spec_threads(&sa, 4);
    spec_threads(&sb, 1);
    assert_int_equal(tsrv_start(&a, &sa), 0);
    assert_int_equal(tsrv_start(&b, &sb), 0);
    assert_int_equal(fake_threads(a.f), 4);
    assert_int_equal(fake_threads(b.f), 1);
    for (int i = 0; i < 16; i++) {
        struct resp ra, rb;
        const char *body = i % 2 ? SBODY : BODY;
        post(&a, &ra, body, NULL, 3000);
        post(&b, &rb, body, NULL, 3000);
        assert_int_equal(ra.cc, CURLE_OK);
        assert_int_equal(ra.status, 200);
        assert_int_equal(rb.status, 200);
        if (ra.len != rb.len || memcmp(ra.body, rb.body, ra.len) != 0)
            fprintf(stderr, "request %d differs:\n%s\n---\n%s\n", i, ra.body, rb.body);
        assert_int_equal(ra.len, rb.len);
        assert_memory_equal(ra.body, rb.body, ra.len);
        resp_free(&ra);
        resp_free(&rb);
    }
    fake_stats_get(a.f, &st);
    assert_int_equal(st.requests, 16);
    assert_int_equal(st.ok, 16);
    assert_int_equal(st.in_flight, 0);
    tsrv_stop(&a);
    tsrv_stop(&b);
}

static long reuse_post(CURL *c, const char *url, struct curl_slist *sl, CURLcode *cc)
{
    long status = 0;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, sl);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, BODY);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 3000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, resp_write);
    *cc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    return status;
}

/* refuse closes the port on every loop: idle keep-alive connections on any
 * loop are dropped and new connections refused; clearing it (by hand, by
 * duration, or through the control API) opens the same port on every loop. */
static void refuse_on_every_loop(void **state)
{
    struct tsrv s;
    struct fake_spec spec;
    struct fault_spec fs;
    CURL *kept[8];
    struct curl_slist *sl = NULL;
    char url[256];
    int port;
    (void)state;
    spec_threads(&spec, 4);
    assert_int_equal(tsrv_start(&s, &spec), 0);
    port = fake_port(s.f);
    snprintf(url, sizeof url, "%s/v1/chat/completions", fake_url(s.f));
    sl = curl_slist_append(sl, AUTH);
    sl = curl_slist_append(sl, CT);

    /* Eight kept-alive connections, spread over the loops. */
    for (int i = 0; i < 8; i++) {
        struct resp r = {0};
        CURLcode cc;
        kept[i] = curl_easy_init();
        curl_easy_setopt(kept[i], CURLOPT_WRITEDATA, &r);
        assert_int_equal(reuse_post(kept[i], url, sl, &cc), 200);
        assert_int_equal(cc, CURLE_OK);
        resp_free(&r);
    }
    fault_spec_defaults(&fs, FAULT_EGRESS_BLOCK);
    assert_int_equal(fake_fault_add(s.f, &fs), 0);
    for (int i = 0; i < 8; i++) {
        struct resp r = {0};
        CURLcode cc;
        curl_easy_setopt(kept[i], CURLOPT_WRITEDATA, &r);
        (void)reuse_post(kept[i], url, sl, &cc);
        assert_int_equal(cc, CURLE_COULDNT_CONNECT); /* dropped, and no way back in */
        resp_free(&r);
        curl_easy_cleanup(kept[i]);
    }
    for (int i = 0; i < 16; i++) {
        struct resp r;
        post(&s, &r, BODY, NULL, 2000);
        assert_int_equal(r.cc, CURLE_COULDNT_CONNECT);
        resp_free(&r);
    }
    fake_fault_clear(s.f, FAULT_EGRESS_BLOCK);
    assert_int_equal(fake_port(s.f), port);
    for (int i = 0; i < 16; i++) {
        struct resp r;
        post(&s, &r, BODY, NULL, 2000);
        assert_int_equal(r.cc, CURLE_OK);
        assert_int_equal(r.status, 200);
        resp_free(&r);
    }

    /* With a duration it clears itself on every loop. */
    fs.duration_s = 0.3;
    assert_int_equal(fake_fault_add(s.f, &fs), 0);
    for (int i = 0; i < 8; i++) {
        struct resp r;
        post(&s, &r, BODY, NULL, 2000);
        assert_int_equal(r.cc, CURLE_COULDNT_CONNECT);
        resp_free(&r);
    }
    sleep_ms(500);
    for (int i = 0; i < 16; i++) {
        struct resp r;
        post(&s, &r, BODY, NULL, 2000);
        assert_int_equal(r.status, 200);
        resp_free(&r);
    }

    /* Through the control API: the call lands on one loop, which waits for
     * the others before it answers. */
    {
        struct resp r;
        char curl_url[256];
        const char *hdrs[] = {CT, NULL};
        snprintf(curl_url, sizeof curl_url, "%s/_chaos/faults", fake_url(s.f));
        http_do(&r, curl_url, NULL, "{\"spec\":\"egress_block\"}", hdrs, 2000);
        assert_int_equal(r.status, 200);
        resp_free(&r);
    }
    for (int i = 0; i < 16; i++) {
        struct resp r;
        post(&s, &r, BODY, NULL, 2000);
        assert_int_equal(r.cc, CURLE_COULDNT_CONNECT);
        resp_free(&r);
    }
    fake_fault_clear(s.f, -1);
    for (int i = 0; i < 16; i++) {
        struct resp r;
        post(&s, &r, BODY, NULL, 2000);
        assert_int_equal(r.status, 200);
        resp_free(&r);
    }
    assert_int_equal(fake_port(s.f), port);
    curl_slist_free_all(sl);
    tsrv_stop(&s);
}

/* SO_REUSEPORT must not let a second fake share a port someone listens on. */
static void fixed_port_is_exclusive(void **state)
{
    struct tsrv a;
    struct fake_spec sa, sb;
    struct event_base *base = event_base_new();
    struct fake *f;
    char err[256] = "";
    (void)state;
    assert_non_null(base);
    spec_threads(&sa, 2);
    assert_int_equal(tsrv_start(&a, &sa), 0);
    for (int t = 1; t <= 3; t++) {
        spec_threads(&sb, t);
        sb.port = fake_port(a.f);
        err[0] = '\0';
        f = fake_new(base, &sb, err, sizeof err);
        assert_null(f);
        if (strstr(err, "cannot listen") == NULL) fprintf(stderr, "error was: %s\n", err);
        assert_non_null(strstr(err, "cannot listen"));
    }
    /* Once the first is gone, the port is free for a threaded fake. */
    spec_threads(&sb, 3);
    sb.port = fake_port(a.f);
    tsrv_stop(&a);
    f = fake_new(base, &sb, err, sizeof err);
    if (f == NULL) fprintf(stderr, "fake_new: %s\n", err);
    assert_non_null(f);
    assert_int_equal(fake_port(f), sb.port);
    assert_int_equal(fake_threads(f), 3);
    fake_free(f);
    event_base_free(base);
}

/* Stats and the journal count the requests of every loop. */
static void stats_and_journal_across_loops(void **state)
{
    struct tsrv s;
    struct fake_spec spec;
    struct fake_stats st;
    struct resp r;
    char url[256];
    cJSON *j, *entries, *e;
    int n200 = 0, n503 = 0;
    (void)state;
    spec_threads(&spec, 4);
    assert_int_equal(tsrv_start(&s, &spec), 0);
    for (int i = 0; i < 20; i++) {
        post(&s, &r, i % 2 ? SBODY : BODY, i % 4 == 0 ? "http_error" : NULL, 3000);
        assert_int_equal(r.status, i % 4 == 0 ? 503 : 200);
        resp_free(&r);
    }
    fake_stats_get(s.f, &st);
    assert_int_equal(st.requests, 20);
    assert_int_equal(st.ok, 15);
    assert_int_equal(st.faulted, 5);
    snprintf(url, sizeof url, "%s/_chaos/journal", fake_url(s.f));
    http_do(&r, url, NULL, NULL, NULL, 2000);
    assert_int_equal(r.status, 200);
    j = cJSON_Parse(r.body);
    assert_non_null(j);
    entries = cJSON_GetObjectItemCaseSensitive(j, "entries");
    assert_int_equal(cJSON_GetArraySize(entries), 20);
    cJSON_ArrayForEach(e, entries)
    {
        int status = cJSON_GetObjectItemCaseSensitive(e, "status")->valueint;
        n200 += status == 200;
        n503 += status == 503;
    }
    assert_int_equal(n200, 15);
    assert_int_equal(n503, 5);
    cJSON_Delete(j);
    resp_free(&r);
    tsrv_stop(&s);
}

/* ---- many concurrent streams, one curl multi in the test thread -------- */

#define NSTREAMS 120

struct mstream {
    struct resp r;
    CURL *c;
};

/* NSTREAMS streams of 40 tokens at 200 tokens/s (mean 5 ms apart, each
 * interval at least 2.5 ms) on 2 loops: each arrives whole and in order,
 * never faster than the model allows, all within a few seconds. */
static void many_streams_keep_pace(void **state)
{
    struct tsrv s;
    struct fake_spec spec;
    static struct mstream m[NSTREAMS];
    struct curl_slist *sl = NULL;
    CURLM *multi = curl_multi_init();
    char url[256];
    int running = 1;
    uint64_t t0, deadline;
    const char *body = "{\"model\":\"m\",\"stream\":true,\"max_tokens\":40,\"messages\":"
                       "[{\"role\":\"user\",\"content\":\"hi\"}]}";
    (void)state;
    spec_threads(&spec, 2);
    spec.latency.ttft_median_ms = spec.latency.ttft_p95_ms = 20;
    spec.latency.tokens_per_s = 200;
    spec.latency.output_tokens_median = 1000; /* always capped at 40 */
    assert_int_equal(tsrv_start(&s, &spec), 0);
    snprintf(url, sizeof url, "%s/v1/chat/completions", fake_url(s.f));
    sl = curl_slist_append(sl, AUTH);
    sl = curl_slist_append(sl, CT);
    curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, 0L);
    t0 = clock_mono_us();
    for (int i = 0; i < NSTREAMS; i++) {
        memset(&m[i], 0, sizeof m[i]);
        m[i].r.t0 = t0;
        m[i].c = curl_easy_init();
        curl_easy_setopt(m[i].c, CURLOPT_URL, url);
        curl_easy_setopt(m[i].c, CURLOPT_HTTPHEADER, sl);
        curl_easy_setopt(m[i].c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(m[i].c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(m[i].c, CURLOPT_TIMEOUT_MS, 20000L);
        curl_easy_setopt(m[i].c, CURLOPT_WRITEFUNCTION, resp_write);
        curl_easy_setopt(m[i].c, CURLOPT_WRITEDATA, &m[i].r);
        curl_easy_setopt(m[i].c, CURLOPT_PRIVATE, &m[i]);
        curl_multi_add_handle(multi, m[i].c);
    }
    deadline = t0 + 25000000u;
    while (running > 0 && clock_mono_us() < deadline) {
        CURLMsg *msg;
        int left;
        curl_multi_perform(multi, &running);
        while ((msg = curl_multi_info_read(multi, &left)) != NULL) {
            struct mstream *ms;
            if (msg->msg != CURLMSG_DONE) continue;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&ms);
            ms->r.cc = msg->data.result;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &ms->r.status);
            ms->r.t_total_ms = (double)(clock_mono_us() - t0) / 1000.0;
        }
        if (running > 0) curl_multi_poll(multi, NULL, 0, 50, NULL);
    }
    assert_int_equal(running, 0);
    for (int i = 0; i < NSTREAMS; i++) {
        const char *done;
        assert_int_equal(m[i].r.cc, CURLE_OK);
        assert_int_equal(m[i].r.status, 200);
        /* role chunk, 40 tokens, finish chunk, [DONE] */
        assert_int_equal(count_events(m[i].r.body), 43);
        done = strstr(m[i].r.body, "data: [DONE]\n\n");
        assert_non_null(done);
        assert_int_equal((size_t)(done - m[i].r.body) + 14, m[i].r.len);
        assert_non_null(strstr(m[i].r.body, "\"finish_reason\":\"length\""));
        /* 20 ms to the first token, then 39 intervals of at least 2.5 ms
         * (a late client only adds to this) */
        assert_true(m[i].r.t_total_ms >= 20.0 + 97.0);
        curl_multi_remove_handle(multi, m[i].c);
        curl_easy_cleanup(m[i].c);
        resp_free(&m[i].r);
    }
    curl_multi_cleanup(multi);
    curl_slist_free_all(sl);
    {
        /* The fake counts every event it sent, on every loop. */
        struct fake_stats st;
        fake_stats_get(s.f, &st);
        assert_int_equal(st.events, NSTREAMS * 43);
        assert_true(st.events_late <= st.events);
        assert_int_equal(st.ok, NSTREAMS);
    }
    tsrv_stop(&s);
}

/* ---- freeing the fake with streams open -------------------------------- */

struct slow {
    const struct tsrv *s;
    struct resp r;
};

static void *slow_client(void *arg)
{
    struct slow *sc = arg;
    post(sc->s, &sc->r, SBODY, NULL, 8000);
    return NULL;
}

/* fake_free stops the loop threads and ends every open stream: each client
 * returns at once with a transfer cut short, not a timeout. */
static void free_with_streams_open(void **state)
{
    struct tsrv s;
    struct fake_spec spec;
    struct slow sc[8];
    pthread_t th[8];
    struct fake_stats st;
    uint64_t t0;
    (void)state;
    spec_threads(&spec, 4);
    spec.latency.ttft_median_ms = spec.latency.ttft_p95_ms = 0;
    spec.latency.tokens_per_s = 20;
    spec.latency.output_tokens_median = 500; /* about 25 s: still open when freed */
    assert_int_equal(tsrv_start(&s, &spec), 0);
    for (int i = 0; i < 8; i++) {
        memset(&sc[i], 0, sizeof sc[i]);
        sc[i].s = &s;
        assert_int_equal(pthread_create(&th[i], NULL, slow_client, &sc[i]), 0);
    }
    t0 = clock_mono_us();
    do {
        sleep_ms(20);
        fake_stats_get(s.f, &st);
    } while (st.in_flight < 8 && clock_mono_us() - t0 < 3000000u);
    assert_int_equal(st.in_flight, 8);
    sleep_ms(200); /* a few events each */
    t0 = clock_mono_us();
    tsrv_stop(&s);
    for (int i = 0; i < 8; i++) pthread_join(th[i], NULL);
    assert_true(clock_mono_us() - t0 < 3000000u);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(sc[i].r.status, 200);
        assert_true(sc[i].r.cc == CURLE_PARTIAL_FILE || sc[i].r.cc == CURLE_RECV_ERROR);
        assert_true(count_events(sc[i].r.body) >= 2);
        assert_null(strstr(sc[i].r.body, "[DONE]"));
        resp_free(&sc[i].r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(same_answers_on_every_loop),
        cmocka_unit_test(refuse_on_every_loop),
        cmocka_unit_test(fixed_port_is_exclusive),
        cmocka_unit_test(stats_and_journal_across_loops),
        cmocka_unit_test(many_streams_keep_pace),
        cmocka_unit_test(free_with_streams_open),
    };
    int rc;
    tsrv_global_init();
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
