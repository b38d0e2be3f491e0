/* test_harness_loadgen_bench.c -- how much load one generator thread keeps on schedule.
 *
 * A fake provider (fakeproviders/) answers in a child process of its own (so
 * the two sides do not share a file-descriptor limit or a CPU's event loop).
 * Two measurements, each printed as a "bench:" line:
 *   rate:    open-loop constant arrivals against answers that come at once;
 *            the intended-vs-actual start gap p99 is the figure;
 *   streams: streams whose first token takes seconds, started fast enough to
 *            hold many at once; the peak in flight is the figure.
 * By default (tests/run.sh) the sizes are small and timing is printed, not
 * judged (a shared CI machine wakes threads late: see the "machine floor"
 * line): 1,000 req/s for 2 s and 1,000 concurrent streams. SLODRILL_BENCH=1
 * (tests/bench.sh) runs the real targets and judges them: 5,000 req/s for
 * 10 s with the start gap p99 under 1 ms, and 10,000 concurrent streams. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <pthread.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/loopthread.h"
#include "fakeproviders/fake.h"
#include "harness/loadgen.h"
#include "reports/rundb.h"

static int full;          /* SLODRILL_BENCH=1 */
static int slow_machine;  /* valgrind or sanitizers: report, do not judge timing */
static char tmpdir[64];

static void raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static volatile sig_atomic_t child_stop;

static void child_on_term(int sig)
{
    (void)sig;
    child_stop = 1;
}

static void child_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    if (child_stop) event_base_loopbreak(arg);
}

/* Forks a fake with the given first-token time; returns its pid and port. */
static pid_t fake_start(double ttft_ms, int *port)
{
    int fds[2];
    pid_t pid;

    assert_int_equal(pipe(fds), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct fake_spec spec;
        struct event_base *base;
        struct fake *f;
        struct event *tick;
        struct timeval tv = {0, 50000};
        char err[256];
        int p;

        close(fds[0]);
        signal(SIGTERM, child_on_term);
        raise_nofile();
        base = event_base_new();
        fake_spec_defaults(&spec);
        snprintf(spec.name, sizeof spec.name, "bench");
        spec.latency.ttft_median_ms = spec.latency.ttft_p95_ms = ttft_ms;
        spec.latency.tokens_per_s = 100000;
        spec.latency.output_tokens_median = 2;
        f = base ? fake_new(base, &spec, err, sizeof err) : NULL;
        p = f ? fake_port(f) : -1;
        if (write(fds[1], &p, sizeof p) != (ssize_t)sizeof p) _exit(1);
        close(fds[1]);
        if (!f) _exit(1);
        tick = event_new(base, -1, EV_PERSIST, child_tick, base);
        event_add(tick, &tv);
        event_base_dispatch(base);
        event_free(tick);
        fake_free(f);
        event_base_free(base);
        _exit(0);
    }
    close(fds[1]);
    assert_int_equal(read(fds[0], port, sizeof *port), (ssize_t)sizeof *port);
    close(fds[0]);
    assert_true(*port > 0);
    return pid;
}

static void fake_stop(pid_t pid)
{
    int st;

    kill(pid, SIGTERM);
    assert_int_equal(waitpid(pid, &st, 0), pid);
}

struct run {
    struct event_base *base;
    struct loadgen *lg;
    uint64_t peak_inflight;
    struct loadgen_stats final;
    int done;
};

static void on_done(void *arg)
{
    struct run *r = arg;

    r->done = 1;
    loadgen_get_stats(r->lg, &r->final);
    event_base_loopbreak(r->base);
}

static void on_sample(evutil_socket_t fd, short what, void *arg)
{
    struct run *r = arg;
    struct loadgen_stats st;

    (void)fd;
    (void)what;
    loadgen_get_stats(r->lg, &st);
    if (st.inflight > r->peak_inflight) r->peak_inflight = st.inflight;
}

static void on_guard(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    event_base_loopbreak(((struct run *)arg)->base);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Back to the normal scheduling class after thread_realtime. */
static void thread_normal(void)
{
    struct sched_param sp;

    memset(&sp, 0, sizeof sp);
    assert_int_equal(pthread_setschedparam(pthread_self(), SCHED_OTHER, &sp), 0);
}

/* Runs one load against the fake at port; returns the run DB's contents. */
static struct run_data *drive(int port, const struct loadgen_opts *o, struct run *r,
                              double guard_s, int realtime)
{
    char url[128], path[160], err[256];
    struct prompt_set ps;
    struct loadgen_opts lo = *o;
    struct rundb *db;
    struct run_data *d;
    struct event *sample, *guard;
    struct timeval stv = {0, 100000}, gtv = {(time_t)guard_s, 0};

    assert_int_equal(prompt_set_builtin(&ps), 0);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/chat/completions", port);
    snprintf(path, sizeof path, "%s/bench.db", tmpdir);
    db = rundb_create(path, "bench", "{}", clock_wall_us(), err, sizeof err);
    if (!db) fail_msg("rundb_create: %s", err);
    /* as `slodrill run --realtime`: this thread only, after the DB writer
     * started (the fake is a child process of its own) */
    if (realtime && thread_realtime(err, sizeof err) != 0) fail_msg("%s", err);
    lo.url = url;
    lo.model = "bench-model";
    lo.api_key = "sk-bench";
    lo.prompts = &ps;
    lo.db = db;
    lo.t0_mono_us = clock_mono_us() + 50000;
    memset(r, 0, sizeof *r);
    r->base = event_base_new();
    assert_non_null(r->base);
    r->lg = loadgen_new(r->base, &lo, on_done, r, err, sizeof err);
    if (!r->lg) fail_msg("loadgen_new: %s", err);
    sample = event_new(r->base, -1, EV_PERSIST, on_sample, r);
    guard = evtimer_new(r->base, on_guard, r);
    event_add(sample, &stv);
    evtimer_add(guard, &gtv);
    event_base_dispatch(r->base);
    if (!r->done) loadgen_stop(r->lg); /* the guard fired: record what is left */
    loadgen_free(r->lg);
    event_free(sample);
    event_free(guard);
    event_base_free(r->base);
    if (realtime) thread_normal(); /* later children must not inherit it */
    assert_int_equal(rundb_finish(db, "complete", 0), 0);
    prompt_set_free(&ps);
    d = rundb_load(path, err, sizeof err);
    if (!d) fail_msg("rundb_load: %s", err);
    unlink(path);
    snprintf(path, sizeof path, "%s/bench.db-wal", tmpdir);
    unlink(path);
    snprintf(path, sizeof path, "%s/bench.db-shm", tmpdir);
    unlink(path);
    assert_true(r->done);
    return d;
}

/* The machine's floor: how late a thread sleeping on an absolute timerfd
 * wakes, at the same rate, with nothing else to do. p99 in ms. */
static double wake_floor_p99_ms(double rate, double secs)
{
    int fd = timerfd_create(CLOCK_MONOTONIC, 0);
    size_t n = (size_t)(rate * secs), i;
    int64_t *g = malloc(n * sizeof *g);
    uint64_t t0 = clock_mono_us() + 1000;
    double p99;

    assert_true(fd >= 0);
    assert_non_null(g);
    for (i = 0; i < n; i++) {
        uint64_t at = t0 + (uint64_t)((double)i * 1e6 / rate), x;
        struct itimerspec its;

        memset(&its, 0, sizeof its);
        its.it_value.tv_sec = (time_t)(at / 1000000);
        its.it_value.tv_nsec = (long)(at % 1000000) * 1000;
        assert_int_equal(timerfd_settime(fd, TFD_TIMER_ABSTIME, &its, NULL), 0);
        if (clock_mono_us() < at && read(fd, &x, sizeof x) != (ssize_t)sizeof x) {
            /* interrupted: the lateness below still counts */
        }
        g[i] = (int64_t)(clock_mono_us() - at);
    }
    close(fd);
    qsort(g, n, sizeof *g, cmp_i64);
    p99 = (double)g[(size_t)ceil(0.99 * (double)n) - 1] / 1e3;
    free(g);
    return p99;
}

/* Open loop at a high rate against answers that come at once; realtime as
 * `slodrill run --realtime`. */
static void rate_run(int realtime)
{
    double rate = full ? 5000 : 1000, secs = full ? 10 : 2, bound_ms = 1.0;
    struct loadgen_opts o;
    struct run r;
    struct run_data *d;
    int64_t *gap;
    size_t i, n = 0, ok = 0, late = 0, dropped = 0;
    double p50, p99, p999, max;
    int port;
    pid_t pid;

    pid = fake_start(0, &port);
    memset(&o, 0, sizeof o);
    o.rate = rate;
    o.duration_s = secs;
    o.stream = 0;
    o.max_inflight = 20000;
    o.timeout_s = 10;
    d = drive(port, &o, &r, secs + 30, realtime);
    fake_stop(pid);
    gap = malloc(d->nreq * sizeof *gap);
    assert_non_null(gap);
    for (i = 0; i < d->nreq; i++) {
        const struct req_record *q = &d->req[i];
        if (q->outcome == OUTCOME_OK) ok++;
        if (q->started_us < 0) {
            dropped++;
            continue;
        }
        gap[n] = q->started_us - q->intended_us;
        if (gap[n] > 1000) late++;
        n++;
    }
    if (full) { /* where lateness happened: the worst start gap in each second */
        int64_t worst[64] = {0};
        size_t sec;
        for (i = 0; i < d->nreq; i++) {
            const struct req_record *q = &d->req[i];
            sec = (size_t)(q->intended_us / 1000000);
            if (q->started_us >= 0 && sec < 64 && q->started_us - q->intended_us > worst[sec])
                worst[sec] = q->started_us - q->intended_us;
        }
        printf("bench: worst start gap per second (ms):");
        for (sec = 0; sec < (size_t)secs && sec < 64; sec++) printf(" %.1f", (double)worst[sec] / 1e3);
        printf("\n");
    }
    qsort(gap, n, sizeof *gap, cmp_i64);
    p50 = n ? gap[(size_t)ceil(0.50 * n) - 1] / 1e3 : NAN;
    p99 = n ? gap[(size_t)ceil(0.99 * n) - 1] / 1e3 : NAN;
    p999 = n ? gap[(size_t)ceil(0.999 * n) - 1] / 1e3 : NAN;
    max = n ? gap[n - 1] / 1e3 : NAN;
    printf("bench: machine floor: a bare timerfd sleeper at %.0f/s wakes with p99 %.3f ms late\n",
           rate, wake_floor_p99_ms(rate, 2));
    printf("bench: rate %.0f req/s for %.0f s, %s: %zu requests, %zu ok, %zu late (> 1 ms), "
           "%zu dropped, %llu connections; start gap p50 %.3f ms, p99 %.3f ms, p99.9 %.3f ms, max %.3f ms "
           "(target p99 < %.1f ms%s)\n",
           rate, secs, realtime ? "--realtime" : "normal priority", d->nreq, ok, late, dropped, (unsigned long long)r.final.connects, p50, p99, p999, max, bound_ms,
           !full || slow_machine ? ", not judged in this mode" : "");
    fflush(stdout);
    assert_int_equal(d->nreq, (size_t)(rate * secs));
    if (!slow_machine) {
        assert_true(ok * 100 >= d->nreq * 99);
        assert_int_equal(dropped, 0);
    }
    /* timing is judged by bench.sh only, and on the --realtime run: at
     * normal priority the fake's threads take the generator's CPU at times
     * on a 2-CPU machine (docs/performance.md) */
    if (full && !slow_machine && realtime) assert_true(p99 < bound_ms);
    free(gap);
    rundb_data_free(d);
}

static void test_rate(void **state)
{
    char why[160];

    (void)state;
    rate_run(0);
    if (!full) return;
    /* ask first, so a refusal fails here, before a fake is started */
    if (thread_realtime(why, sizeof why) != 0) {
        printf("bench: rate --realtime: %s\n", why);
        fail_msg("%s", why);
    }
    thread_normal();
    rate_run(1);
}

/* Streams whose first token takes seconds: many at once. */
static void test_concurrent_streams(void **state)
{
    double target = full ? 10000 : 1000, ttft_ms = full ? 6000 : 2000;
    double rate = full ? 2000 : 1000, secs = target / rate * 1.2;
    struct loadgen_opts o;
    struct run r;
    struct run_data *d;
    size_t i, ok = 0;
    int port;
    pid_t pid;
    struct rusage ru;

    (void)state;
    pid = fake_start(ttft_ms, &port);
    memset(&o, 0, sizeof o);
    o.rate = rate;
    o.duration_s = secs;
    o.stream = 1;
    o.max_inflight = 30000;
    o.timeout_s = 30;
    d = drive(port, &o, &r, secs + ttft_ms / 1000 + 60, 0);
    fake_stop(pid);
    for (i = 0; i < d->nreq; i++) ok += d->req[i].outcome == OUTCOME_OK;
    getrusage(RUSAGE_SELF, &ru);
    printf("bench: streams: %zu started at %.0f/s with a %.0f s first token: peak %llu in "
           "flight (target %.0f), %zu ok; max RSS %ld MiB\n",
           d->nreq, rate, ttft_ms / 1000, (unsigned long long)r.peak_inflight, target, ok,
           ru.ru_maxrss / 1024);
    fflush(stdout);
    if (!slow_machine) {
        assert_true((double)r.peak_inflight >= target);
        assert_true(ok * 100 >= d->nreq * 99);
    }
    rundb_data_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rate),
        cmocka_unit_test(test_concurrent_streams),
    };
    const char *b = getenv("SLODRILL_BENCH");
    int rc;

    full = b != NULL && strcmp(b, "1") == 0;
    slow_machine = getenv("SLODRILL_VALGRIND") != NULL || getenv("SLODRILL_SANITIZED") != NULL;
    raise_nofile();
    snprintf(tmpdir, sizeof tmpdir, "/tmp/lgbench.XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    evthread_use_pthreads();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    rmdir(tmpdir);
    return rc;
}
