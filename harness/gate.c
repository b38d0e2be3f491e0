/* gate.c -- the CI gate: one router config through a suite of scenarios.
 *
 * Every scenario and the config are checked before anything runs, so a typo
 * fails in a second with file:line:col instead of after minutes of traffic.
 * Each scenario then runs with the config under test in place of its own,
 * into a folder of its own; the verdict table and one JUnit file sum up.
 *
 * With --baseline the old config plays every scenario too, beside the new
 * one (same scenario, same seed, run at the same time so both see the same
 * machine), and a second table puts the figures side by side: what the
 * change does. Only the candidate decides the verdict. */
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
    const char *config;   /* the config this row runs; borrowed */
    const char *label;    /* "" or " (baseline)", for progress lines */
    char dir[PATH_MAX];   /* where its reports go */
    struct run_result res;
    int ran;
    char err[512];
    double secs;
};

static int row_passed(const struct gate_row *r)
{
    return r->res.have_metrics && r->res.exit_code == RUN_EXIT_PASS;
}

static void fmt_seconds(char *out, size_t outlen, double v);

/* ---- the baseline's figures ---- */

enum fig { FIG_TTF, FIG_TTR, FIG_P95, FIG_SR, FIG_COST, FIG__COUNT };
static const char *const fig_names[FIG__COUNT] = {"TTF", "TTR", "p95", "SR", "avg cost"};
static const char *const fig_props[FIG__COUNT] = {"ttf_s", "ttr_s", "p95_s", "success_rate",
                                                  "avg_cost_usd"};

/* A figure of a row; NAN when the row has none (did not run, not observed). */
static double fig_value(const struct gate_row *r, enum fig f)
{
    const struct run_metrics *m = &r->res.metrics;
    double v = NAN;

    if (!r->res.have_metrics) return NAN;
    switch (f) {
    case FIG_TTF: v = m->ttf_s; break;
    case FIG_TTR: v = m->ttr_s; break;
    case FIG_P95: v = m->all.p95_s; break;
    case FIG_SR: v = m->all.success_rate; break;
    case FIG_COST: v = m->all.avg_cost_usd; break;
    default: break;
    }
    return !isinf(v) && v < 0 ? NAN : v; /* -1: not observed */
}

static void fig_format(enum fig f, double v, char *out, size_t outlen)
{
    if (isnan(v)) snprintf(out, outlen, "-");
    else if (f == FIG_SR) snprintf(out, outlen, "%.2f%%", v);
    else if (f == FIG_COST) snprintf(out, outlen, "$%.5f", v);
    else fmt_seconds(out, outlen, v);
}

/* What the change did to a figure: the difference and whether that is
 * better or worse (every figure but the success rate is better lower). */
static void fig_change(enum fig f, double old, double nw, char *out, size_t outlen)
{
    int higher_better = f == FIG_SR;
    double d;
    const char *word;

    if (isnan(old) || isnan(nw)) {
        snprintf(out, outlen, "-");
        return;
    }
    if (isinf(old) || isinf(nw)) {
        if (isinf(old) && isinf(nw)) snprintf(out, outlen, "same");
        else snprintf(out, outlen, "%s", isinf(old) ? "better" : "worse");
        return;
    }
    d = nw - old;
    word = (f == FIG_COST ? fabs(d) < 5e-6 : fabs(d) < 0.005) ? "same"
           : (d > 0) == higher_better                         ? "better"
                                                              : "worse";
    if (f == FIG_SR) {
        snprintf(out, outlen, "%+.2f pts, %s", d, word);
    } else if (f == FIG_COST) {
        if (old > 0) snprintf(out, outlen, "%s$%.5f (%+.0f%%), %s", d < 0 ? "-" : "+", fabs(d),
                              100 * d / old, word);
        else snprintf(out, outlen, "%s$%.5f, %s", d < 0 ? "-" : "+", fabs(d), word);
    } else {
        snprintf(out, outlen, "%+.2fs, %s", d, word);
    }
}

static const char *row_verdict(const struct gate_row *r)
{
    if (!r->ran) return "-";
    if (!r->res.have_metrics) return "ERROR";
    return row_passed(r) ? "PASS" : "FAIL";
}

/* Writes a suite that the reports module produced, with the baseline's
 * figures as <properties> after its opening line (JUnit's place for them). */
static int write_suite_props(FILE *fp, const char *suite_xml, const struct gate_row *b,
                             const char *baseline)
{
    const char *nl = strchr(suite_xml, '\n');
    char esc[PATH_MAX * 2], val[64];
    int i;

    if (nl == NULL) return -1;
    fwrite(suite_xml, 1, (size_t)(nl - suite_xml) + 1, fp);
    fputs("    <properties>\n", fp);
    if (report_xml_escape(baseline, esc, sizeof esc) != 0) return -1;
    fprintf(fp, "      <property name=\"baseline.config\" value=\"%s\"/>\n", esc);
    fprintf(fp, "      <property name=\"baseline.verdict\" value=\"%s\"/>\n", row_verdict(b));
    for (i = 0; i < FIG__COUNT; i++) {
        double v = fig_value(b, (enum fig)i);
        if (isnan(v)) snprintf(val, sizeof val, "-");
        else if (isinf(v)) snprintf(val, sizeof val, "inf");
        else snprintf(val, sizeof val, i == FIG_COST ? "%.8f" : i == FIG_SR ? "%.2f" : "%.3f", v);
        fprintf(fp, "      <property name=\"baseline.%s\" value=\"%s\"/>\n", fig_props[i], val);
    }
    if (report_xml_escape(b->dir, esc, sizeof esc) != 0) return -1;
    fprintf(fp, "      <property name=\"baseline.reports\" value=\"%s\"/>\n", esc);
    fputs("    </properties>\n", fp);
    fputs(nl + 1, fp);
    return ferror(fp) ? -1 : 0;
}

/* One file for the whole suite: a <testsuite> per scenario, written by the
 * reports module exactly as a single run's junit.xml has it. A scenario that
 * could not run at all becomes a suite with one errored test case. */
static int write_junit(const char *path, struct gate_row *rows, const struct gate_row *brows,
                       const char *baseline, size_t n)
{
    size_t i, j, tests = 0, failures = 0, errors = 0;
    FILE *fp = fopen(path, "w"), *out;
    char *suite = NULL;
    size_t suitelen = 0;
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
        /* with a baseline each suite goes through memory first, to add the
         * baseline's properties inside it */
        out = fp;
        if (brows) {
            out = open_memstream(&suite, &suitelen);
            if (out == NULL) {
                rc = -1;
                break;
            }
        }
        if (rows[i].res.have_metrics) {
            rc = report_write_junit_suite(out, rows[i].s->name, &rows[i].res.metrics);
        } else {
            char name[256], msg[1024];
            if (report_xml_escape(rows[i].s->name, name, sizeof name) != 0 ||
                report_xml_escape(rows[i].err[0] ? rows[i].err : "did not run", msg, sizeof msg) != 0)
                rc = -1;
            fprintf(out, "  <testsuite name=\"%s\" tests=\"1\" failures=\"0\" errors=\"1\">\n"
                         "    <testcase name=\"run\" classname=\"%s\">\n"
                         "      <error message=\"%s\"/>\n    </testcase>\n  </testsuite>\n",
                    name, name, msg);
        }
        if (brows) {
            if (fclose(out) != 0) rc = -1;
            if (rc == 0) rc = write_suite_props(fp, suite, &brows[i], baseline);
            free(suite);
            suite = NULL;
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
    else snprintf(out, outlen, "-");
}

static volatile sig_atomic_t gate_cancel;

static void gate_on_signal(int sig) { gate_cancel = sig; }

/* Runs are handed to a few worker threads; each run has its own loops and
 * ephemeral ports, so they do not meet. */
struct gate_pool {
    pthread_mutex_t mu;
    const struct gate_opts *o;
    struct gate_row **jobs;
    size_t njobs, next, done;
};

static void *gate_worker(void *arg)
{
    struct gate_pool *gp = arg;
    const struct gate_opts *o = gp->o;

    for (;;) {
        struct run_opts ro;
        struct gate_row *row;
        uint64_t t;
        size_t i;

        pthread_mutex_lock(&gp->mu);
        i = gp->next++;
        pthread_mutex_unlock(&gp->mu);
        if (i >= gp->njobs || gate_cancel) break;
        row = gp->jobs[i];
        memset(&ro, 0, sizeof ro);
        ro.config_override = row->config;
        ro.out_dir = row->dir;
        ro.quiet = 1;
        ro.cancel = &gate_cancel;
        t = clock_mono_us();
        row->ran = 1;
        if (runner_run(row->s, &ro, &row->res, row->err, sizeof row->err) != 0)
            snprintf(row->res.out_dir, sizeof row->res.out_dir, "%s", row->dir);
        row->secs = (double)(clock_mono_us() - t) / 1e6;
        pthread_mutex_lock(&gp->mu);
        gp->done++;
        if (!o->quiet)
            fprintf(stderr, "[%zu/%zu] %-28s %s%s (%.0f s)%s%s\n", gp->done, gp->njobs,
                    row->s->name, row_passed(row) ? "pass" : "FAIL", row->label, row->secs,
                    row->err[0] ? ": " : "", row->err);
        pthread_mutex_unlock(&gp->mu);
    }
    return NULL;
}

/* Runs every job, o->jobs at a time; the exit code so far. */
static int run_all(const struct gate_opts *o, struct gate_row **jobs, size_t njobs)
{
    struct gate_pool gp;
    pthread_t th[16];
    struct sigaction sa, old_int, old_term;
    size_t nth = o->jobs > 0 ? (size_t)o->jobs : 4, i, started = 0;

    if (nth > 16) nth = 16;
    if (nth > njobs) nth = njobs;
    memset(&gp, 0, sizeof gp);
    pthread_mutex_init(&gp.mu, NULL);
    gp.o = o;
    gp.jobs = jobs;
    gp.njobs = njobs;
    gate_cancel = 0;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = gate_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    if (!o->quiet) {
        if (o->baseline)
            fprintf(stderr, "gate: %zu scenarios with the candidate and the baseline, %zu runs "
                            "at a time\n", o->nscenarios, nth);
        else
            fprintf(stderr, "gate: %zu scenarios, %zu at a time\n", o->nscenarios, nth);
    }
    for (i = 0; i < nth; i++)
        if (pthread_create(&th[started], NULL, gate_worker, &gp) == 0) started++;
    if (started == 0) gate_worker(&gp);
    for (i = 0; i < started; i++) pthread_join(th[i], NULL);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    pthread_mutex_destroy(&gp.mu);
    return gate_cancel ? RUN_EXIT_INTERRUPTED : 0;
}

/* The side-by-side table: per scenario the verdict and the figures, old ->
 * new with the change. */
static void print_compare(const struct gate_opts *o, const struct gate_row *rows,
                          const struct gate_row *brows)
{
    size_t i;
    int f;

    printf("\nwhat the change does: baseline %s -> candidate %s\n", o->baseline, o->config);
    printf("%-28s %-9s %10s    %-10s  %s\n", "scenario", "figure", "baseline", "candidate",
           "change");
    for (i = 0; i < o->nscenarios; i++) {
        const struct gate_row *n = &rows[i], *b = &brows[i];
        const char *vo = row_verdict(b), *vn = row_verdict(n), *vc;

        if (!n->ran && !b->ran) continue;
        if (strcmp(vo, vn) == 0) vc = strcmp(vn, "PASS") == 0 ? "same" : "still failing";
        else if (strcmp(vn, "PASS") == 0) vc = "fixed";
        else if (strcmp(vo, "PASS") == 0) vc = "regressed";
        else vc = "-";
        printf("%-28s %-9s %10s -> %-10s  %s\n", n->s->name, "verdict", vo, vn, vc);
        for (f = 0; f < FIG__COUNT; f++) {
            char ov[32], nv[32], ch[64];
            double a = fig_value(b, (enum fig)f), z = fig_value(n, (enum fig)f);
            fig_format((enum fig)f, a, ov, sizeof ov);
            fig_format((enum fig)f, z, nv, sizeof nv);
            fig_change((enum fig)f, a, z, ch, sizeof ch);
            printf("%-28s %-9s %10s -> %-10s  %s\n", "", fig_names[f], ov, nv, ch);
        }
    }
}

int gate_run(const struct gate_opts *o)
{
    size_t n = o->nscenarios ? o->nscenarios : 1;
    struct gate_row *rows = calloc(n, sizeof *rows), *brows = NULL;
    struct gate_row **jobs = calloc(2 * n, sizeof *jobs);
    char out_root[PATH_MAX], junit[PATH_MAX + 16];
    size_t i, j, npass = 0, bpass = 0, njobs = 0;
    int code = 2;

    if (o->baseline) brows = calloc(n, sizeof *brows);
    if (rows == NULL || jobs == NULL || (o->baseline && brows == NULL)) goto out;
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
        if (o->baseline && runner_check_config(rows[i].s, o->baseline, err, sizeof err) != 0) {
            fprintf(stderr, "%s\n(the baseline config, with %s)\n", err, o->scenarios[i]);
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
    /* The jobs: with a baseline, each scenario's two runs side by side. */
    for (i = 0; i < o->nscenarios; i++) {
        rows[i].config = o->config;
        rows[i].label = "";
        snprintf(rows[i].dir, sizeof rows[i].dir, "%.*s%s/%s", (int)(sizeof rows[i].dir - 100),
                 out_root, o->baseline ? "/candidate" : "", rows[i].s->name);
        jobs[njobs++] = &rows[i];
        if (o->baseline) {
            brows[i].s = rows[i].s;
            brows[i].config = o->baseline;
            brows[i].label = " (baseline)";
            snprintf(brows[i].dir, sizeof brows[i].dir, "%.*s/baseline/%s",
                     (int)(sizeof brows[i].dir - 100), out_root, rows[i].s->name);
            jobs[njobs++] = &brows[i];
        }
    }

    code = run_all(o, jobs, njobs);
    /* The table. */
    if (o->baseline) printf("\ngate: %s (candidate; baseline %s)\n", o->config, o->baseline);
    else printf("\ngate: %s\n", o->config);
    printf("%-28s %-7s %9s %9s %9s %9s  %s\n", "scenario", "verdict", "TTF", "TTR", "p95", "SR",
           "why");
    for (i = 0; i < o->nscenarios; i++) {
        const struct run_metrics *m = &rows[i].res.metrics;
        int pass = row_passed(&rows[i]);
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
        if (brows && row_passed(&brows[i])) bpass++;
    }
    if (o->baseline) {
        print_compare(o, rows, brows);
        printf("%zu of %zu scenarios passed with the candidate (%zu with the baseline); reports "
               "under %s/candidate/ and %s/baseline/\n", npass, o->nscenarios, bpass, out_root,
               out_root);
    } else {
        printf("%zu of %zu scenarios passed; reports under %s/\n", npass, o->nscenarios, out_root);
    }
    if (o->junit) snprintf(junit, sizeof junit, "%s", o->junit);
    else snprintf(junit, sizeof junit, "%s/junit.xml", out_root);
    if (write_junit(junit, rows, brows, o->baseline, o->nscenarios) != 0) {
        fprintf(stderr, "cannot write %s: %s\n", junit, strerror(errno));
        if (code == 0) code = 1;
    } else {
        printf("junit: %s\n", junit);
    }
out:
    for (i = 0; rows && i < o->nscenarios; i++) {
        if (rows[i].res.have_metrics) slo_metrics_free(&rows[i].res.metrics);
        if (brows && brows[i].res.have_metrics) slo_metrics_free(&brows[i].res.metrics);
        scenario_free((struct scenario *)rows[i].s);
    }
    free(rows);
    free(brows);
    free(jobs);
    return code;
}
