/* runner.c -- plays one scenario: fakes, router, load, fault timeline, reports. */
#include "harness/runner.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/loopthread.h"
#include "common/path.h"
#include "harness/loadgen.h"
#include "reports/report.h"
#include "reports/rundb.h"
#include "router/router.h"

static volatile int last_signal;

int runner_interrupted(void) { return last_signal; }

struct env_map {
    const struct scenario *s;
    char **values; /* expanded, one per s->env */
};

static const char *env_lookup(const char *name, void *arg)
{
    const struct env_map *m = arg;
    size_t i;
    for (i = 0; i < m->s->nenv; i++)
        if (strcmp(m->s->env[i].name, name) == 0) return m->values[i];
    return getenv(name);
}

static void warn_config(const char *msg, void *arg)
{
    (void)arg;
    log_warn("config", "%s", msg);
}

static int env_expand(const struct scenario *s, const char *const *urls, struct env_map *m)
{
    size_t i;
    m->s = s;
    m->values = calloc(s->nenv ? s->nenv : 1, sizeof *m->values);
    if (m->values == NULL) return -1;
    for (i = 0; i < s->nenv; i++) {
        m->values[i] = scenario_expand(s, s->env[i].value, urls);
        if (m->values[i] == NULL) return -1;
    }
    return 0;
}

static void env_free(struct env_map *m)
{
    size_t i;
    if (m->values == NULL) return;
    for (i = 0; i < m->s->nenv; i++) free(m->values[i]);
    free(m->values);
    m->values = NULL;
}

int runner_check_config(const struct scenario *s, const char *config, char *err, size_t errlen)
{
    struct env_map m = {0};
    const char **urls = calloc(s->nproviders ? s->nproviders : 1, sizeof *urls);
    struct router_config *cfg = NULL;
    size_t i;
    int rc = -1;

    if (urls == NULL) goto out;
    for (i = 0; i < s->nproviders; i++) urls[i] = "http://127.0.0.1:9";
    if (env_expand(s, urls, &m) != 0) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    cfg = router_config_load(config, env_lookup, &m, NULL, NULL, err, errlen);
    if (cfg == NULL) goto out;
    rc = 0;
out:
    router_config_free(cfg);
    env_free(&m);
    free(urls);
    return rc;
}

struct router_config *runner_config_load(const struct scenario *s, const char *config,
                                         const char *const *urls, char *err, size_t errlen)
{
    struct env_map m = {0};
    struct router_config *cfg = NULL;

    if (env_expand(s, urls, &m) != 0) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    cfg = router_config_load(config ? config : s->router_config, env_lookup, &m, warn_config,
                             NULL, err, errlen);
out:
    env_free(&m);
    return cfg;
}

/* ---- one run ---- */

struct run;

struct step_timer {
    struct run *run;
    size_t step;
    int auto_clear;  /* the end of a fault with a duration */
    struct event *ev;
};

struct run {
    const struct scenario *s;
    const struct run_opts *o;
    struct event_base *base;
    struct rundb *db;
    struct loadgen *lg;
    struct fake **fakes;
    uint64_t t0;
    struct step_timer *timers;
    size_t ntimers;
    struct event *progress_ev, *stop_ev, *sigint_ev, *sigterm_ev;
    double below_since;      /* run seconds when SR first went below the stop rule; <0 none */
    int stopped;             /* stop rule fired */
    int interrupted;
    int active[FAULT__COUNT * 16]; /* [provider * FAULT__COUNT + kind] */
    int progress_drawn;
    double last_plain;
    double rate_at;          /* progress: when rate_started was taken (run clock, s) */
    uint64_t rate_started;   /* progress: requests started by then */
    double rate;             /* progress: requests started per second since the last line */
};

static int64_t run_now(const struct run *r) { return (int64_t)(clock_mono_us() - r->t0); }

static void record_event(struct run *r, const char *kind, const char *subject,
                         const char *detail)
{
    if (rundb_event(r->db, run_now(r), kind, subject, detail) != 0)
        log_warn("runner", "could not record event %s", kind);
}

static void on_router_event(const char *kind, const char *subject, const char *detail,
                            uint64_t now_us, void *arg)
{
    struct run *r = arg;
    if (rundb_event(r->db, (int64_t)(now_us - r->t0), kind, subject, detail) != 0)
        log_warn("runner", "could not record router event %s", kind);
}

static void describe_fault(const struct fault_spec *f, char *out, size_t outlen)
{
    int n = snprintf(out, outlen, "%s", fault_kind_name(f->kind));
    if (n < 0 || (size_t)n >= outlen) return;
    if (f->kind == FAULT_HTTP_ERROR)
        n += snprintf(out + n, outlen - (size_t)n, " status=%d", f->status);
    if ((f->kind == FAULT_SLOW_TTFT || f->kind == FAULT_SLOW_TOKENS) && (size_t)n < outlen)
        n += snprintf(out + n, outlen - (size_t)n, " ms=%g", f->ms);
    if (f->mode[0] && (size_t)n < outlen)
        n += snprintf(out + n, outlen - (size_t)n, " mode=%s", f->mode);
    if (f->probability < 1 && (size_t)n < outlen)
        n += snprintf(out + n, outlen - (size_t)n, " probability=%g", f->probability);
    if (f->key[0] && (size_t)n < outlen)
        n += snprintf(out + n, outlen - (size_t)n, " key=%s", f->key);
    if (f->duration_s > 0 && (size_t)n < outlen)
        snprintf(out + n, outlen - (size_t)n, " duration=%gs", f->duration_s);
}

static void on_step(evutil_socket_t fd, short what, void *arg)
{
    struct step_timer *t = arg;
    struct run *r = t->run;
    const struct scenario_step *st = &r->s->steps[t->step];
    struct fake *f = r->fakes[st->provider];
    const char *pname = r->s->providers[st->provider].name;
    int *active = &r->active[st->provider * FAULT__COUNT + (int)st->fault.kind];
    char desc[256];
    (void)fd;
    (void)what;

    describe_fault(&st->fault, desc, sizeof desc);
    if (st->clear || t->auto_clear) {
        if (!t->auto_clear) fake_fault_clear(f, (int)st->fault.kind);
        if (*active) record_event(r, "fault_off", pname, fault_kind_name(st->fault.kind));
        *active = 0;
        return;
    }
    if (fake_fault_add(f, &st->fault) != 0) {
        log_error("runner", "could not inject %s into %s", desc, pname);
        record_event(r, "note", pname, "fault injection failed");
        return;
    }
    *active = 1;
    record_event(r, "fault_on", pname, desc);
}

static void progress_line(struct run *r, int final)
{
    struct loadgen_stats st;
    char faults[160] = "";
    size_t off = 0, p;
    int k;
    double el = (double)run_now(r) / 1e6;
    char line[512];
    int draining = 0;

    if (r->o->quiet) return;
    loadgen_get_stats(r->lg, &st);
    for (p = 0; p < r->s->nproviders; p++)
        for (k = 0; k < FAULT__COUNT; k++)
            if (r->active[p * FAULT__COUNT + k] && off < sizeof faults) {
                int w = snprintf(faults + off, sizeof faults - off, "%s%s@%s", off ? "," : "",
                                 fault_kind_name((enum fault_kind)k), r->s->providers[p].name);
                if (w > 0) off += (size_t)w;
            }
    if (el < 0) el = 0;
    /* the sending rate since the last line (about a second) */
    if (el - r->rate_at >= 0.5) {
        r->rate = (double)(st.started - r->rate_started) / (el - r->rate_at);
        r->rate_at = el;
        r->rate_started = st.started;
    }
    /* Past the schedule the generator only waits for answers: say so. */
    if (el > r->s->duration_s) {
        draining = !final;
        el = r->s->duration_s;
    }
    {
        char sr[16], p95[16], share[16];
        if (st.rolling_sr >= 0) snprintf(sr, sizeof sr, "%.2f%%", st.rolling_sr);
        else snprintf(sr, sizeof sr, "-");
        if (st.rolling_p95_s >= 0) snprintf(p95, sizeof p95, "%.2fs", st.rolling_p95_s);
        else snprintf(p95, sizeof p95, "-");
        snprintf(share, sizeof share, "%.0f%%", st.top_share);
        snprintf(line, sizeof line,
                 "%5.1fs/%.0fs (%.0fs left)  %.0f req/s  sent %llu  inflight %llu  ok %llu  "
                 "failed %llu  dropped %llu  SR(10s) %s  p95(10s) %s  served by %s %s%s%s%s",
                 el, r->s->duration_s, r->s->duration_s - el, draining || final ? 0.0 : r->rate,
                 (unsigned long long)st.started,
                 (unsigned long long)st.inflight, (unsigned long long)st.ok,
                 (unsigned long long)st.failed, (unsigned long long)st.dropped, sr, p95,
                 st.top_provider[0] ? st.top_provider : "-", st.top_provider[0] ? share : "",
                 faults[0] ? "  faults: " : "", faults, draining ? "  (draining)" : "");
    }
    if (r->o->progress_tty) {
        fprintf(stderr, "\r%s\033[K%s", line, final ? "\n" : "");
        r->progress_drawn = !final;
    } else if (final || el - r->last_plain >= 5.0) {
        fprintf(stderr, "%s\n", line);
        r->last_plain = el;
    }
    fflush(stderr);
}

static void on_progress(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    progress_line(arg, 0);
}

static void on_signal(evutil_socket_t sig, short what, void *arg);

static void on_stop_check(evutil_socket_t fd, short what, void *arg)
{
    struct run *r = arg;
    struct loadgen_stats st;
    double now = (double)run_now(r) / 1e6;
    (void)fd;
    (void)what;
    if (r->o->cancel && *r->o->cancel && !r->interrupted) {
        on_signal((evutil_socket_t)*r->o->cancel, 0, r);
        return;
    }
    if (r->stopped || r->s->stop_sr_below < 0) return;
    loadgen_get_stats(r->lg, &st);
    if (st.rolling_sr >= 0 && st.rolling_sr < r->s->stop_sr_below) {
        if (r->below_since < 0) r->below_since = now;
        if (now - r->below_since >= r->s->stop_for_s) {
            char detail[256];
            snprintf(detail, sizeof detail,
                     "success rate %.1f%% stayed below %.1f%% for %.1fs: roll back now",
                     st.rolling_sr, r->s->stop_sr_below, now - r->below_since);
            record_event(r, "stop", "stop_if", detail);
            if (!r->o->quiet) {
                if (r->progress_drawn) fputc('\n', stderr);
                fprintf(stderr, "stop condition: %s\n", detail);
            }
            r->stopped = 1;
            loadgen_stop(r->lg);
        }
    } else {
        r->below_since = -1;
    }
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct run *r = arg;
    (void)what;
    if (r->interrupted) return;
    r->interrupted = 1;
    last_signal = (int)sig;
    record_event(r, "stop", "signal", sig == SIGINT ? "interrupted (SIGINT)" : "terminated (SIGTERM)");
    loadgen_stop(r->lg);
}

static void on_load_done(void *arg)
{
    struct run *r = arg;
    event_base_loopexit(r->base, NULL);
}

static void print_checks(const struct run_metrics *m, int color)
{
    size_t i;
    for (i = 0; i < m->nchecks; i++) {
        const struct slo_check *c = &m->checks[i];
        const char *v = c->verdict == CHECK_PASS ? "pass" : c->verdict == CHECK_FAIL ? "FAIL" : "n/a ";
        const char *on = "", *off = "";
        if (color) {
            on = c->verdict == CHECK_PASS ? "\033[32m" : c->verdict == CHECK_FAIL ? "\033[31m" : "\033[33m";
            off = "\033[0m";
        }
        printf("  %s%s%s  %-26s %-7s %s\n", on, v, off, c->name, c->phase, c->detail);
    }
}

int runner_run(const struct scenario *s, const struct run_opts *o, struct run_result *res,
               char *err, size_t errlen)
{
    struct run r;
    struct event_base *fake_base = NULL, *router_base = NULL;
    struct loopthread fake_lt = {0}, router_lt = {0};
    struct router_config *cfg = NULL;
    struct proxy *proxy = NULL;
    struct env_map envm = {0};
    struct prompt_set prompts = {0};
    char **urls = NULL;
    char *meta = NULL, *router_url = NULL;
    char db_path[PATH_MAX + 16];
    const char *config = o->config_override ? o->config_override : s->router_config;
    const char *key = NULL;
    size_t i;
    int rc = -1;
    uint64_t seed = o->seed_set ? o->seed : s->seed;

    memset(&r, 0, sizeof r);
    memset(res, 0, sizeof *res);
    res->exit_code = RUN_EXIT_FAIL;
    r.s = s;
    r.o = o;
    r.below_since = -1;
    last_signal = 0;
    if (s->nproviders > 16) {
        snprintf(err, errlen, "at most 16 providers");
        goto out;
    }

    /* Output folder. */
    if (o->out_dir) {
        snprintf(res->out_dir, sizeof res->out_dir, "%s", o->out_dir);
    } else {
        char stamp[32];
        clock_format_compact(clock_wall_us(), stamp, sizeof stamp);
        snprintf(res->out_dir, sizeof res->out_dir, "%s/%s-%s", o->runs_root ? o->runs_root : "runs",
                 s->name, stamp);
    }
    if (path_mkdirs(res->out_dir) != 0) {
        snprintf(err, errlen, "cannot create output folder %s: %s", res->out_dir, strerror(errno));
        goto out;
    }
    snprintf(db_path, sizeof db_path, "%s/run.db", res->out_dir);
    if (access(db_path, F_OK) == 0) {
        snprintf(err, errlen, "%s already holds a run (run.db); choose another --out", res->out_dir);
        res->exit_code = RUN_EXIT_USAGE;
        goto out;
    }

    /* Prompts. */
    if (s->prompts_file ? prompt_set_load(s->prompts_file, &prompts, err, errlen)
                        : prompt_set_builtin(&prompts)) {
        res->exit_code = RUN_EXIT_USAGE;
        goto out;
    }

    /* Fakes. */
    fake_base = event_base_new();
    router_base = event_base_new();
    r.base = event_base_new();
    r.fakes = calloc(s->nproviders ? s->nproviders : 1, sizeof *r.fakes);
    urls = calloc(s->nproviders ? s->nproviders : 1, sizeof *urls);
    if (fake_base == NULL || router_base == NULL || r.base == NULL || r.fakes == NULL ||
        urls == NULL) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    fake_lt.base = fake_base;
    router_lt.base = router_base;
    for (i = 0; i < s->nproviders; i++) {
        struct fake_spec spec = s->providers[i];
        if (o->seed_set) spec.seed = seed * 1000003u + i + 1;
        r.fakes[i] = fake_new(fake_base, &spec, err, errlen);
        if (r.fakes[i] == NULL) goto out;
        urls[i] = strdup(fake_url(r.fakes[i]));
        if (urls[i] == NULL) goto out;
    }

    /* Router, or the external target. */
    if (s->target == NULL) {
        struct proxy_opts po;
        char buf[128];
        if (env_expand(s, (const char *const *)urls, &envm) != 0) {
            snprintf(err, errlen, "out of memory");
            goto out;
        }
        cfg = router_config_load(config, env_lookup, &envm, warn_config, NULL, err, errlen);
        if (cfg == NULL) {
            res->exit_code = RUN_EXIT_USAGE;
            goto out;
        }
        memset(&po, 0, sizeof po);
        po.host = "127.0.0.1";
        po.port = 0;
        po.seed = seed;
        po.on_event = on_router_event;
        po.event_arg = &r;
        proxy = proxy_new(router_base, cfg, &po, err, errlen);
        if (proxy == NULL) goto out;
        snprintf(buf, sizeof buf, "http://127.0.0.1:%d/v1/chat/completions", proxy_port(proxy));
        router_url = strdup(buf);
        key = router_config_master_key(cfg);
    } else {
        size_t tl = strlen(s->target);
        int has_v1 = tl >= 3 && strcmp(s->target + tl - 3, "/v1") == 0;
        int slash = tl > 0 && s->target[tl - 1] == '/';
        size_t need = tl + 32;
        router_url = malloc(need);
        if (router_url)
            snprintf(router_url, need, "%.*s%s/chat/completions", (int)(tl - (size_t)slash),
                     s->target, has_v1 ? "" : "/v1");
    }
    if (router_url == NULL) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    if (s->api_key) key = s->api_key;

    /* Run DB. */
    meta = scenario_meta_json(s, s->target ? NULL : config, (const char *const *)urls);
    r.t0 = clock_mono_us() + 200000; /* schedule starts in 200 ms: loops are up by then */
    r.db = rundb_create(db_path, s->name, meta ? meta : "{}",
                        clock_wall_us() + (r.t0 - clock_mono_us()), err, errlen);
    if (r.db == NULL) goto out;

    /* Load generator. */
    {
        struct loadgen_opts lo;
        memset(&lo, 0, sizeof lo);
        lo.url = router_url;
        lo.api_key = key;
        lo.model = s->model;
        lo.rate = s->rate;
        lo.ramp_to = s->ramp_to;
        lo.steps = s->steps_load;
        lo.nsteps = s->nsteps_load;
        lo.closed_workers = s->workers;
        lo.arrival = s->arrival;
        lo.duration_s = s->duration_s;
        lo.stream = s->stream;
        lo.max_tokens = s->max_tokens;
        lo.prompts = &prompts;
        lo.headers = s->headers;
        lo.nheaders = s->nheaders;
        lo.seed = seed;
        lo.timeout_s = s->timeout_s;
        lo.max_inflight = s->max_inflight;
        lo.served_by_header = s->served_by_header;
        lo.db = r.db;
        lo.t0_mono_us = r.t0;
        r.lg = loadgen_new(r.base, &lo, on_load_done, &r, err, errlen);
        if (r.lg == NULL) goto out;
    }

    /* Timeline: a timer per step, plus the end of faults with a duration. */
    r.timers = calloc(s->nsteps * 2 + 1, sizeof *r.timers);
    if (r.timers == NULL) goto out;
    for (i = 0; i < s->nsteps; i++) {
        int pass;
        for (pass = 0; pass < 2; pass++) {
            double at = s->steps[i].at_s;
            struct step_timer *t;
            struct timeval tv;
            uint64_t due, now = clock_mono_us();
            if (pass == 1) {
                if (s->steps[i].clear || s->steps[i].fault.duration_s <= 0) continue;
                at += s->steps[i].fault.duration_s;
            }
            t = &r.timers[r.ntimers++];
            t->run = &r;
            t->step = i;
            t->auto_clear = pass;
            t->ev = evtimer_new(r.base, on_step, t);
            if (t->ev == NULL) goto out;
            due = r.t0 + (uint64_t)(at * 1e6);
            tv.tv_sec = due > now ? (time_t)((due - now) / 1000000u) : 0;
            tv.tv_usec = due > now ? (suseconds_t)((due - now) % 1000000u) : 0;
            evtimer_add(t->ev, &tv);
        }
    }
    {
        struct timeval sec = {1, 0}, half = {0, 250000};
        r.progress_ev = event_new(r.base, -1, EV_PERSIST, on_progress, &r);
        r.stop_ev = event_new(r.base, -1, EV_PERSIST, on_stop_check, &r);
        if (!r.progress_ev || !r.stop_ev) goto out;
        event_add(r.progress_ev, &sec);
        event_add(r.stop_ev, &half);
        if (o->cancel == NULL) {
            r.sigint_ev = evsignal_new(r.base, SIGINT, on_signal, &r);
            r.sigterm_ev = evsignal_new(r.base, SIGTERM, on_signal, &r);
            if (!r.sigint_ev || !r.sigterm_ev) goto out;
            event_add(r.sigint_ev, NULL);
            event_add(r.sigterm_ev, NULL);
        }
    }

    if (loopthread_start(&fake_lt) != 0 || loopthread_start(&router_lt) != 0) {
        snprintf(err, errlen, "cannot start threads");
        goto out;
    }
    if (rundb_event(r.db, 0, "run_start", s->name, s->target ? s->target : config) != 0)
        log_warn("runner", "could not record run_start");
    if (o->realtime) { /* this thread only: the fakes, router and DB writer started before */
        char why[160];
        if (thread_realtime(why, sizeof why) != 0)
            log_warn("runner", "--realtime: %s; the schedule runs at normal priority", why);
    }
    event_base_dispatch(r.base);
    progress_line(&r, 1);

    /* Wind down: clear faults, stop the loops, seal the DB, write reports. */
    for (i = 0; i < s->nproviders; i++) fake_fault_clear(r.fakes[i], -1);
    if (rundb_event(r.db, run_now(&r), "run_end", s->name,
                    r.stopped ? "stopped by stop_if" : r.interrupted ? "interrupted" : "complete") != 0)
        log_warn("runner", "could not record run_end");
    loopthread_stop(&router_lt);
    loopthread_stop(&fake_lt);
    if (rundb_finish(r.db, r.stopped || r.interrupted ? "aborted" : "complete", run_now(&r)) != 0)
        log_warn("runner", "could not seal the run DB");
    r.db = NULL;

    if (report_write_all(db_path, res->out_dir, &res->metrics, err, errlen) != 0) goto out;
    res->have_metrics = 1;
    report_summary_line(&res->metrics, res->summary, sizeof res->summary);
    if (r.interrupted) res->exit_code = RUN_EXIT_INTERRUPTED;
    else if (r.stopped) res->exit_code = RUN_EXIT_STOPPED;
    else res->exit_code = res->metrics.passed ? RUN_EXIT_PASS : RUN_EXIT_FAIL;
    if (!o->quiet) print_checks(&res->metrics, o->color);
    rc = 0;
out:
    if (rc != 0 && res->exit_code == RUN_EXIT_PASS) res->exit_code = RUN_EXIT_FAIL;
    loopthread_stop(&router_lt);
    loopthread_stop(&fake_lt);
    if (r.lg) loadgen_free(r.lg);
    for (i = 0; i < r.ntimers; i++)
        if (r.timers[i].ev) event_free(r.timers[i].ev);
    free(r.timers);
    if (r.progress_ev) event_free(r.progress_ev);
    if (r.stop_ev) event_free(r.stop_ev);
    if (r.sigint_ev) event_free(r.sigint_ev);
    if (r.sigterm_ev) event_free(r.sigterm_ev);
    if (r.db) {
        (void)rundb_finish(r.db, "failed", run_now(&r));
    }
    proxy_free(proxy);
    router_config_free(cfg);
    for (i = 0; r.fakes && i < s->nproviders; i++) fake_free(r.fakes[i]);
    free(r.fakes);
    for (i = 0; urls && i < s->nproviders; i++) free(urls[i]);
    free(urls);
    env_free(&envm);
    prompt_set_free(&prompts);
    free(meta);
    free(router_url);
    if (r.base) event_base_free(r.base);
    if (router_base) event_base_free(router_base);
    if (fake_base) event_base_free(fake_base);
    return rc;
}
