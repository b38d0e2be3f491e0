/* test_fakeproviders_pacing.c -- the fake's clock: fast streams keep their
 * pace below the loop's millisecond timer resolution, a ttft-0 answer comes
 * at once, events sent in one burst survive a cut, and a client that reads
 * slowly still receives every byte in order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>

#include <sys/socket.h>

#include "test_fakeproviders_util.h"

#define AUTH "Authorization: Bearer sk-test-primary-0123456789abcd"
#define CT "Content-Type: application/json"

static int under_valgrind(void) { return getenv("SLODRILL_VALGRIND") != NULL; }

static void start(struct tsrv *s, double ttft_ms, double tokens_per_s, double tokens)
{
    struct fake_spec spec;
    tsrv_spec(&spec, "primary", FAKE_OPENAI);
    spec.latency.ttft_median_ms = ttft_ms;
    spec.latency.ttft_p95_ms = ttft_ms;
    spec.latency.tokens_per_s = tokens_per_s;
    spec.latency.output_tokens_median = tokens;
    assert_int_equal(tsrv_start(s, &spec), 0);
}

static void post(struct tsrv *s, struct resp *r, const char *body, const char *const *hdrs,
                 long timeout_ms)
{
    char url[256];
    snprintf(url, sizeof url, "%s/v1/chat/completions", fake_url(s->f));
    http_do(r, url, NULL, body, hdrs, timeout_ms);
}

/* 200 tokens at 2000 tokens/s: 0.5 ms apart, half the loop's timer
 * resolution. Paced on absolute deadlines the stream takes about 100 ms;
 * with one timer per token rounded up to 1 ms it took over 200. */
static void fast_stream_keeps_pace(void **state)
{
    struct tsrv s;
    struct resp r;
    const char *hdrs[] = {AUTH, CT, NULL};
    (void)state;
    start(&s, 0, 2000, 50000);
    post(&s, &r,
         "{\"model\":\"m\",\"stream\":true,\"max_tokens\":200,\"messages\":[{\"role\":\"user\","
         "\"content\":\"hi\"}]}",
         hdrs, 5000);
    assert_int_equal(r.cc, CURLE_OK);
    assert_int_equal(r.status, 200);
    /* role chunk, 200 tokens, finish chunk, [DONE] */
    assert_int_equal(count_events(r.body), 203);
    assert_true(r.t_total_ms > 70); /* never faster than the model */
    if (!under_valgrind()) assert_true(r.t_total_ms < 180);
    resp_free(&r);
    tsrv_stop(&s);
}

/* With no time to first token and a fast pace, a whole answer is the fake's
 * own overhead: well under a millisecond (median of 41, one connection). */
static void ttft_zero_answers_at_once(void **state)
{
    struct tsrv s;
    CURL *c;
    struct curl_slist *sl = NULL;
    char url[256];
    double ms[41] = {0};
    struct resp r;
    (void)state;
    start(&s, 0, 100000, 16);
    snprintf(url, sizeof url, "%s/v1/chat/completions", fake_url(s.f));
    c = curl_easy_init();
    sl = curl_slist_append(sl, AUTH);
    sl = curl_slist_append(sl, CT);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, sl);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 3000L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS,
                     "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, resp_write);
    for (int i = -5; i < 41; i++) {
        long status = 0;
        uint64_t t0;
        memset(&r, 0, sizeof r);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
        t0 = clock_mono_us();
        assert_int_equal(curl_easy_perform(c), CURLE_OK);
        if (i >= 0) ms[i] = (double)(clock_mono_us() - t0) / 1000.0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        assert_int_equal(status, 200);
        assert_non_null(strstr(r.body, "\"completion_tokens\""));
        free(r.body);
    }
    for (int i = 0; i < 41; i++) /* insertion sort, 41 values */
        for (int j = i; j > 0 && ms[j] < ms[j - 1]; j--) {
            double t = ms[j];
            ms[j] = ms[j - 1];
            ms[j - 1] = t;
        }
    fprintf(stderr, "ttft 0: median %.3f ms, max %.3f ms\n", ms[20], ms[40]);
    if (!under_valgrind()) assert_true(ms[20] < 1.0);
    curl_slist_free_all(sl);
    curl_easy_cleanup(c);
    tsrv_stop(&s);
}

/* Six events go out in one loop turn at 100,000 tokens/s, then the cut: all
 * six reach the client before the connection ends. */
static void burst_then_cut_keeps_events(void **state)
{
    struct tsrv s;
    struct resp r;
    const char *hdrs[] = {AUTH, CT, "x-slodrill-fault: cut;after_events=6", NULL};
    (void)state;
    start(&s, 0, 100000, 5000);
    for (int i = 0; i < 5; i++) {
        post(&s, &r,
             "{\"model\":\"m\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":"
             "\"hi\"}]}",
             hdrs, 3000);
        assert_int_equal(r.cc, CURLE_PARTIAL_FILE);
        assert_int_equal(r.status, 200);
        assert_int_equal(count_events(r.body), 6);
        assert_null(strstr(r.body, "[DONE]"));
        resp_free(&r);
    }
    tsrv_stop(&s);
}

/* A small receive buffer, so the fake's socket fills quickly. */
static int small_rcvbuf(void *arg, curl_socket_t fd, curlsocktype purpose)
{
    int v = 4096;
    (void)arg;
    (void)purpose;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof v);
    return CURL_SOCKOPT_OK;
}

/* A client with a 4 kB receive buffer reading at 300 kB/s a stream of about
 * 1 MB sent four times faster: events go out directly while nothing is
 * queued and through the connection's buffer when something is, and every
 * event arrives whole and in order. */
static void slow_reader_gets_every_byte(void **state)
{
    struct tsrv s;
    struct resp r;
    CURL *c;
    struct curl_slist *sl = NULL;
    char url[256];
    int events = 0, tokens = 0, done = 0, bad = 0;
    (void)state;
    start(&s, 0, 5000, 50000);
    snprintf(url, sizeof url, "%s/v1/chat/completions", fake_url(s.f));
    memset(&r, 0, sizeof r);
    c = curl_easy_init();
    sl = curl_slist_append(sl, AUTH);
    sl = curl_slist_append(sl, CT);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, sl);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(c, CURLOPT_MAX_RECV_SPEED_LARGE, (curl_off_t)300000);
    curl_easy_setopt(c, CURLOPT_SOCKOPTFUNCTION, small_rcvbuf);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS,
                     "{\"model\":\"m\",\"stream\":true,\"max_tokens\":4000,\"stream_options\":{"
                     "\"include_usage\":true},\"messages\":[{\"role\":\"user\",\"content\":"
                     "\"hi\"}]}");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, resp_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    assert_true(r.len > 900000);
    /* Every event is "data: JSON\n\n" or the final "data: [DONE]\n\n". */
    for (char *p = r.body, *e; p != NULL && *p; p = e + 2) {
        e = strstr(p, "\n\n");
        if (e == NULL || strncmp(p, "data: ", 6) != 0) {
            bad++;
            break;
        }
        *e = '\0';
        events++;
        if (strcmp(p + 6, "[DONE]") == 0) {
            done = 1;
        } else {
            cJSON *j = cJSON_Parse(p + 6), *ch, *d;
            if (j == NULL) bad++;
            ch = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
            d = cJSON_GetObjectItem(cJSON_GetObjectItem(ch, "delta"), "content");
            if (cJSON_IsString(d) && d->valuestring[0] != '\0') tokens++;
            cJSON_Delete(j);
        }
    }
    assert_int_equal(bad, 0);
    assert_true(done);
    assert_int_equal(tokens, 4000);
    assert_int_equal(events, 4000 + 4); /* role, tokens, finish, usage, [DONE] */
    curl_slist_free_all(sl);
    curl_easy_cleanup(c);
    free(r.body);
    free(r.headers);
    tsrv_stop(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fast_stream_keeps_pace),
        cmocka_unit_test(ttft_zero_answers_at_once),
        cmocka_unit_test(burst_then_cut_keeps_events),
        cmocka_unit_test(slow_reader_gets_every_byte),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
