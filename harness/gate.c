/* gate.c -- the CI gate: one router config through a suite of scenarios.
 *
 * Every scenario and the config are checked before anything runs, so a typo
 * fails in a second with file:line:col instead of after minutes of traffic.
 * Each scenario then runs with the config under test in place of its own,
 * into a folder of its own; the verdict table and one JUnit file sum up. */
#include "harness/gate.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/clock.h"
#include "harness/runner.h"
#include "harness/scenario.h"
#include "reports/report.h"

struct gate_row {
    const struct scenario *s;
    struct run_result res;
    int ran;
    char err[512];
    double secs;
};

/* One file for the whole suite: a <testsuite> per scenario, written by the
 * reports module exactly as a single run's junit.xml has it. A scenario that
 * could not run at all becomes a suite with one errored test case. */
static int write_junit(const char *path, struct gate_row *rows, size_t n)
{
    size_t i, j, tests = 0, failures = 0, errors = 0;
    FILE *fp = fopen(path, "w");
    int rc = 0;

    if (fp == NULL) return -1;
    for (i = 0; i < n; i++) {
        if (!rows[i].res.have_metrics) {
            errors++;
            continue;
        }
        tests += rows[i].res.metrics.nchecks;
        for (j = 0; j < rows[i].res.metrics.nchecks; j++)
            failures += rows[i].res.metrics.checks[j].verdict == CHECK_FAIL;
    }
    fprintf(fp, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                "<testsuites name=\"slodrill gate\" tests=\"%zu\" failures=\"%zu\" errors=\"%zu\">\n",
            tests + errors, failures, errors);
    for (i = 0; i < n && rc == 0; i++) {
        if (rows[i].res.have_metrics) {
            rc = report_write_junit_suite(fp, rows[i].s->name, &rows[i].res.metrics);
        } else {
            char name[256], msg[1024];
            if (report_xml_escape(rows[i].s->name, name, sizeof name) != 0 ||
                report_xml_escape(rows[i].err[0] ? rows[i].err : "did not run", msg, sizeof msg) != 0)
                rc = -1;
            fprintf(fp, "  <testsuite name=\"%s\" tests=\"1\" failures=\"0\" errors=\"1\">\n"
                        "    <testcase name=\"run\" classname=\"%s\">\n"
                        "      <error message=\"%s\"/>\n    </testcase>\n  </testsuite>\n",
                    name, name, msg);
        }
    }
    fprintf(fp, "</testsuites>\n");
    if (ferror(fp)) rc = -1;
    if (fclose(fp) != 0) rc = -1;
    return rc;
}

/* The detail of the failing check that says most, for the table: the
 * success rate first (the figure people promise), then latency, then the
 * rest, and "the run was stopped" last. */
static const char *first_failure(const struct run_metrics *m)
{
    static const char *const order[] = {"success_rate", "p95", "failover", "recover", "back_on",
                                        "", NULL};
    size_t i, k;
    for (k = 0; order[k]; k++)
        for (i = 0; i < m->nchecks; i++)
            if (m->checks[i].verdict == CHECK_FAIL && strstr(m->checks[i].name, order[k]) &&
                strcmp(m->checks[i].name, "run_complete") != 0)
                return m->checks[i].detail;
    for (i = 0; i < m->nchecks; i++)
        if (m->checks[i].verdict == CHECK_FAIL) return m->checks[i].detail;
    return "";
}

static void fmt_seconds(char *out, size_t outlen, double v)
{
    if (isinf(v)) snprintf(out, outlen, "inf");
    else if (v >= 0) snprintf(out, outlen, "%.2fs", v);
}

static volatile sig_atomic_t gate_cancel;

static void gate_on_signal(int sig) { gate_cancel = sig; }

/* Scenarios are handed to a few worker threads; each run has its own loops
 * and ephemeral ports, so they do not meet. */
struct gate_pool {
    pthread_mutex_t mu;
    const struct gate_opts *o;
    struct gate_row *rows;
    const char *out_root;
    size_t next, done;
};

static void *gate_worker(void *arg)
{
    struct gate_pool *gp = arg;
    const struct gate_opts *o = gp->o;

    for (;;) {
        struct run_opts ro;
        struct gate_row *row;
        char dir[PATH_MAX];
        uint64_t t;
        size_t i;

        pthread_mutex_lock(&gp->mu);
        i = gp->next++;
        pthread_mutex_unlock(&gp->mu);
        if (i >= o->nscenarios || gate_cancel) break;
        row = &gp->rows[i];
        memset(&ro, 0, sizeof ro);
        ro.config_override = o->config;
        snprintf(dir, sizeof dir, "%.*s/%s", (int)(sizeof dir - 80), gp->out_root, row->s->name);
        ro.out_dir = dir;
        ro.quiet = 1;
        ro.cancel = &gate_cancel;
        t = clock_mono_us();
        row->ran = 1;
        if (runner_run(row->s, &ro, &row->res, row->err, sizeof row->err) != 0)
            snprintf(row->res.out_dir, sizeof row->res.out_dir, "%s", dir);
        row->secs = (double)(clock_mono_us() - t) / 1e6;
        pthread_mutex_lock(&gp->mu);
        gp->done++;
        if (!o->quiet)
            fprintf(stderr, "[%zu/%zu] %-28s %s (%.0f s)%s%s\n", gp->done, o->nscenarios,
                    row->s->name,
                    row->res.have_metrics && row->res.exit_code == RUN_EXIT_PASS ? "pass" : "FAIL",
                    row->secs, row->err[0] ? ": " : "", row->err);
        pthread_mutex_unlock(&gp->mu);
    }
    return NULL;
}

/* Runs every scenario, o->jobs at a time; the exit code so far. */
static int run_all(const struct gate_opts *o, struct gate_row *rows, const char *out_root)
{
    struct gate_pool gp;
    pthread_t th[16];
    struct sigaction sa, old_int, old_term;
    size_t jobs = o->jobs > 0 ? (size_t)o->jobs : 4, i, started = 0;

    if (jobs > 16) jobs = 16;
    if (jobs > o->nscenarios) jobs = o->nscenarios;
    memset(&gp, 0, sizeof gp);
    pthread_mutex_init(&gp.mu, NULL);
    gp.o = o;
    gp.rows = rows;
    gp.out_root = out_root;
    gate_cancel = 0;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = gate_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    if (!o->quiet)
        fprintf(stderr, "gate: %zu scenarios, %zu at a time\n", o->nscenarios, jobs);
    for (i = 0; i < jobs; i++)
        if (pthread_create(&th[started], NULL, gate_worker, &gp) == 0) started++;
    if (started == 0) gate_worker(&gp);
    for (i = 0; i < started; i++) pthread_join(th[i], NULL);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    pthread_mutex_destroy(&gp.mu);
    return gate_cancel ? RUN_EXIT_INTERRUPTED : 0;
}

int gate_run(const struct gate_opts *o)
{
    struct gate_row *rows = calloc(o->nscenarios ? o->nscenarios : 1, sizeof *rows);
    char out_root[PATH_MAX], junit[PATH_MAX + 16];
    size_t i, j, npass = 0;
    int code = 2;

    if (rows == NULL) return 2;
    /* Check everything before anything runs. */
    for (i = 0; i < o->nscenarios; i++) {
        char err[1024] = "";
        rows[i].s = scenario_load(o->scenarios[i], err, sizeof err);
        if (rows[i].s == NULL) {
            fprintf(stderr, "%s\n", err);
            goto out;
        }
        if (rows[i].s->target) {
            fprintf(stderr, "%s: the gate runs the built-in router; this scenario has a router "
                            "target instead of a config\n", o->scenarios[i]);
            goto out;
        }
        for (j = 0; j < i; j++)
            if (strcmp(rows[j].s->name, rows[i].s->name) == 0) {
                fprintf(stderr, "%s: scenario name '%s' is also used by %s\n", o->scenarios[i],
                        rows[i].s->name, o->scenarios[j]);
                goto out;
            }
        if (runner_check_config(rows[i].s, o->config, err, sizeof err) != 0) {
            fprintf(stderr, "%s\n", err);
            goto out;
        }
    }
    if (o->out_dir) {
        snprintf(out_root, sizeof out_root, "%s", o->out_dir);
    } else {
        char stamp[32];
        clock_format_compact(clock_wall_us(), stamp, sizeof stamp);
        snprintf(out_root, sizeof out_root, "runs/gate-%s", stamp);
    }

    code = run_all(o, rows, out_root);
    /* The table. */
    printf("\ngate: %s\n", o->config);
    printf("%-28s %-7s %9s %9s %9s %9s  %s\n", "scenario", "verdict", "TTF", "TTR", "p95", "SR",
           "why");
    for (i = 0; i < o->nscenarios; i++) {
        const struct run_metrics *m = &rows[i].res.metrics;
        int pass = rows[i].res.have_metrics && rows[i].res.exit_code == RUN_EXIT_PASS;
        if (!rows[i].ran) continue;
        char ttf[16] = "-", ttr[16] = "-", p95[16] = "-", sr[16] = "-";
        const char *on = "", *off = "";
        if (rows[i].res.have_metrics) {
            fmt_seconds(ttf, sizeof ttf, m->ttf_s);
            fmt_seconds(ttr, sizeof ttr, m->ttr_s);
            fmt_seconds(p95, sizeof p95, m->all.p95_s);
            if (m->all.success_rate >= 0) snprintf(sr, sizeof sr, "%.2f%%", m->all.success_rate);
        }
        if (o->color) {
            on = pass ? "\033[32m" : "\033[31m";
            off = "\033[0m";
        }
        printf("%-28s %s%-7s%s %9s %9s %9s %9s  %s%s\n", rows[i].s->name, on, pass ? "PASS" : "FAIL",
               off, ttf, ttr, p95, sr,
               rows[i].res.exit_code == RUN_EXIT_STOPPED ? "(stopped early) " : "",
               pass ? "" : rows[i].res.have_metrics ? first_failure(m) : rows[i].err);
        if (pass) npass++;
        else if (code == 0) code = 1;
    }
    printf("%zu of %zu scenarios passed; reports under %s/\n", npass, o->nscenarios, out_root);
    if (o->junit) snprintf(junit, sizeof junit, "%s", o->junit);
    else snprintf(junit, sizeof junit, "%s/junit.xml", out_root);
    if (write_junit(junit, rows, o->nscenarios) != 0) {
        fprintf(stderr, "cannot write %s: %s\n", junit, strerror(errno));
        if (code == 0) code = 1;
    } else {
        printf("junit: %s\n", junit);
    }
out:
    for (i = 0; i < o->nscenarios; i++) {
        if (rows[i].res.have_metrics) slo_metrics_free(&rows[i].res.metrics);
        scenario_free((struct scenario *)rows[i].s);
    }
    free(rows);
    return code;
}
