/* test_common_curlev.c -- curl on a libevent loop: kept-alive connections, parked sockets, cleanup.
 *
 * An evhttp server and curlev share one loop, driven by the test thread.
 * Sequential transfers reuse one connection (its socket stays registered
 * while idle); a server that closes idle connections does not break the next
 * transfer; cancelled and finished transfers, and curlev_free with idle
 * connections parked, leave nothing behind (run under ASan). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>

#include "common/clock.h"
#include "common/curlev.h"
#include "common/net.h"

struct cvt {
    struct event_base *base;
    struct evhttp *http;
    struct curlev *cv;
    int port;
    int served;
};

struct xf {
    CURL *easy;
    int done;
    CURLcode res;
    long status;
    long connects; /* new connections this transfer made */
    char body[256];
    size_t len;
};

static void cvt_handle(struct evhttp_request *req, void *arg)
{
    struct cvt *t = arg;
    struct evbuffer *out = evbuffer_new();
    evbuffer_add_printf(out, "answer %d", ++t->served);
    evhttp_send_reply(req, 200, "OK", out);
    evbuffer_free(out);
}

static size_t xf_write(char *p, size_t size, size_t n, void *arg)
{
    struct xf *x = arg;
    size_t len = size * n, room = sizeof x->body - 1 - x->len;
    memcpy(x->body + x->len, p, len < room ? len : room);
    x->len += len < room ? len : room;
    x->body[x->len] = '\0';
    return len;
}

static void xf_done(CURL *easy, CURLcode res, void *arg)
{
    struct xf *x = arg;
    x->done = 1;
    x->res = res;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &x->status);
    curl_easy_getinfo(easy, CURLINFO_NUM_CONNECTS, &x->connects);
}

static void cvt_start(struct cvt *t, struct xf *x)
{
    char url[64];
    memset(x, 0, sizeof *x);
    assert_non_null(x->easy = curl_easy_init());
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", t->port);
    curl_easy_setopt(x->easy, CURLOPT_URL, url);
    curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, xf_write);
    curl_easy_setopt(x->easy, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, 5000L);
    assert_int_equal(curlev_add(t->cv, x->easy, xf_done, x), 0);
}

/* Runs the loop until x is done (at most 5 s). */
static void cvt_wait(struct cvt *t, struct xf *x)
{
    uint64_t until = clock_mono_us() + 5000000;
    while (!x->done && clock_mono_us() < until)
        event_base_loop(t->base, EVLOOP_ONCE);
    assert_true(x->done);
}

/* Runs the loop for ms milliseconds. */
static void cvt_spin(struct cvt *t, int ms)
{
    uint64_t until = clock_mono_us() + (uint64_t)ms * 1000;
    struct timeval tv = {0, 10000};
    while (clock_mono_us() < until) {
        event_base_loopexit(t->base, &tv);
        event_base_loop(t->base, 0);
    }
}

static int cvt_setup(void **state)
{
    struct cvt *t = calloc(1, sizeof *t);
    char err[128];
    struct timeval idle = {0, 200000};
    assert_non_null(t);
    assert_non_null(t->base = event_base_new());
    assert_non_null(t->http = evhttp_new(t->base));
    evhttp_set_gencb(t->http, cvt_handle, t);
    evhttp_set_timeout_tv(t->http, &idle); /* closes connections idle for 200 ms */
    assert_int_equal(net_listen_http(t->http, "127.0.0.1", 0, &t->port, NULL, err, sizeof err), 0);
    assert_non_null(t->cv = curlev_new(t->base));
    *state = t;
    return 0;
}

static int cvt_teardown(void **state)
{
    struct cvt *t = *state;
    curlev_free(t->cv); /* idle connections still cached and parked */
    evhttp_free(t->http);
    event_base_free(t->base);
    free(t);
    return 0;
}

/* Ten transfers one after another: one connection, every answer right. */
static void keepalive_reuses_one_connection(void **state)
{
    struct cvt *t = *state;
    long connects = 0;
    int i;
    for (i = 0; i < 10; i++) {
        struct xf x;
        char want[32];
        cvt_start(t, &x);
        cvt_wait(t, &x);
        assert_int_equal(x.res, CURLE_OK);
        assert_int_equal(x.status, 200);
        snprintf(want, sizeof want, "answer %d", t->served);
        assert_string_equal(x.body, want);
        connects += x.connects;
        curl_easy_cleanup(x.easy);
    }
    assert_int_equal(connects, 1);
    assert_int_equal(curlev_running(t->cv), 0);
}

/* The server closes the idle connection while its socket is parked: the loop
 * does not spin on it, and the next transfer opens a new one and succeeds. */
static void server_closes_idle_connection(void **state)
{
    struct cvt *t = *state;
    struct xf x;
    cvt_start(t, &x);
    cvt_wait(t, &x);
    assert_int_equal(x.res, CURLE_OK);
    curl_easy_cleanup(x.easy);
    {
        struct rusage r0, r1;
        double cpu;
        getrusage(RUSAGE_SELF, &r0);
        cvt_spin(t, 500); /* the server's 200 ms idle timeout passes */
        getrusage(RUSAGE_SELF, &r1);
        cpu = (double)(r1.ru_utime.tv_sec - r0.ru_utime.tv_sec + r1.ru_stime.tv_sec -
                       r0.ru_stime.tv_sec) +
              (double)(r1.ru_utime.tv_usec - r0.ru_utime.tv_usec + r1.ru_stime.tv_usec -
                       r0.ru_stime.tv_usec) / 1e6;
        assert_true(cpu < 0.25); /* a closed socket left registered would spin the loop */
    }
    cvt_start(t, &x);
    cvt_wait(t, &x);
    assert_int_equal(x.res, CURLE_OK);
    assert_int_equal(x.status, 200);
    assert_int_equal(x.connects, 1);
    curl_easy_cleanup(x.easy);
}

/* Several at once, one cancelled: the others finish, the cancelled one's
 * callback never runs, and its handle can be used again. */
static void concurrent_and_cancelled(void **state)
{
    struct cvt *t = *state;
    struct xf x[4];
    int i;
    for (i = 0; i < 4; i++)
        cvt_start(t, &x[i]);
    curlev_remove(t->cv, x[2].easy);
    assert_int_equal(curlev_running(t->cv), 3);
    for (i = 0; i < 4; i++)
        if (i != 2)
            cvt_wait(t, &x[i]);
    assert_false(x[2].done);
    for (i = 0; i < 4; i++)
        if (i != 2)
            assert_int_equal(x[i].status, 200);
    assert_int_equal(curlev_add(t->cv, x[2].easy, xf_done, &x[2]), 0);
    cvt_wait(t, &x[2]);
    assert_int_equal(x[2].status, 200);
    for (i = 0; i < 4; i++)
        curl_easy_cleanup(x[i].easy);
    assert_int_equal(curlev_running(t->cv), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(keepalive_reuses_one_connection, cvt_setup, cvt_teardown),
        cmocka_unit_test_setup_teardown(server_closes_idle_connection, cvt_setup, cvt_teardown),
        cmocka_unit_test_setup_teardown(concurrent_and_cancelled, cvt_setup, cvt_teardown),
    };
    int rc;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
