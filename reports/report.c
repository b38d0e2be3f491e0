/* report.c -- closeout.md, report.json and junit.xml, computed from a run DB.
 *
 * DESIGN: report_write_all loads the DB, reads targets from its meta_json,
 * computes the metrics (slo.c) and writes each file next to its final name
 * first, then renames it, so a reader never sees half a report. Text that
 * came from the network or a file (error strings, event details) is cleaned
 * to valid UTF-8 and escaped for its format: Markdown table cells, JSON (by
 * cJSON), XML attributes and text. */
#include "reports/report.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#define REPORT_MAX_TIMELINE 300
#define REPORT_MAX_PROVIDERS 16

static void set_err(char *err, size_t errlen, const char *fmt, ...) PRINTF_LIKE(3, 4);

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0 || err[0] != '\0')
        return; /* the first error wins */
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---- meta ---- */

/* Reads obj.key into *out when present; -1 when present but not a number. */
static int meta_number(const cJSON *obj, const char *sect, const char *key, double *out,
                       char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

    if (v == NULL || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < 0) {
        set_err(err, errlen, "run meta: %s.%s must be a number >= 0", sect, key);
        return -1;
    }
    *out = v->valuedouble;
    return 0;
}

int report_read_meta(const char *meta_json, struct slo_targets *slo, struct expectations *exp,
                     char *err, size_t errlen)
{
    cJSON *root = NULL;
    const cJSON *s, *e;
    int rc = -1;

    if (err != NULL && errlen > 0)
        err[0] = '\0';
    slo_targets_unset(slo);
    expectations_unset(exp);
    if (meta_json == NULL || meta_json[0] == '\0') {
        rc = 0;
        goto out;
    }
    root = cJSON_Parse(meta_json);
    if (root == NULL || !cJSON_IsObject(root)) {
        const char *at = cJSON_GetErrorPtr();
        set_err(err, errlen, "run meta: not a JSON object (error at byte %td)",
                at != NULL && root == NULL ? at - meta_json : 0);
        goto out;
    }
    s = cJSON_GetObjectItemCaseSensitive(root, "slo");
    if (s != NULL && !cJSON_IsNull(s)) {
        if (!cJSON_IsObject(s)) {
            set_err(err, errlen, "run meta: slo must be an object");
            goto out;
        }
        if (meta_number(s, "slo", "success_rate", &slo->success_rate, err, errlen) != 0 ||
            meta_number(s, "slo", "p95_latency_s", &slo->p95_latency_s, err, errlen) != 0 ||
            meta_number(s, "slo", "avg_cost_usd", &slo->avg_cost_usd, err, errlen) != 0 ||
            meta_number(s, "slo", "window_days", &slo->window_days, err, errlen) != 0 ||
            meta_number(s, "slo", "monthly_requests", &slo->monthly_requests, err, errlen) != 0)
            goto out;
    }
    e = cJSON_GetObjectItemCaseSensitive(root, "expect");
    if (e != NULL && !cJSON_IsNull(e)) {
        if (!cJSON_IsObject(e)) {
            set_err(err, errlen, "run meta: expect must be an object");
            goto out;
        }
        if (meta_number(e, "expect", "failover_within_s", &exp->failover_within_s, err,
                        errlen) != 0 ||
            meta_number(e, "expect", "success_rate_min", &exp->success_rate_min, err, errlen) !=
                0 ||
            meta_number(e, "expect", "p95_latency_s", &exp->p95_latency_s, err, errlen) != 0 ||
            meta_number(e, "expect", "back_on_primary_within_s", &exp->back_on_primary_within_s,
                        err, errlen) != 0 ||
            meta_number(e, "expect", "recover_within_s", &exp->recover_within_s, err, errlen) !=
                0 ||
            meta_number(e, "expect", "avg_cost_max_usd", &exp->avg_cost_max_usd, err, errlen) !=
                0)
            goto out;
    }
    rc = 0;
out:
    cJSON_Delete(root);
    return rc;
}

/* ---- text helpers ---- */

/* Length of the valid UTF-8 sequence at s (1-4), or 0 when invalid. */
static size_t utf8_seq(const unsigned char *s)
{
    size_t n, i;
    unsigned cp;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        n = 2;
        cp = s[0] & 0x1f;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        n = 3;
        cp = s[0] & 0x0f;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        n = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    for (i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

/* Copies in to out as valid UTF-8 without control characters other than
 * tab/newline ('?' replaces the rest), cut at outlen - 1 on a character
 * boundary. */
static void text_clean(const char *in, char *out, size_t outlen)
{
    const unsigned char *s = (const unsigned char *)(in != NULL ? in : "");
    size_t o = 0;

    while (*s != '\0') {
        size_t n = utf8_seq(s);

        if (n == 0 || (n == 1 && *s < 0x20 && *s != '\t' && *s != '\n') || *s == 0x7f) {
            if (o + 1 >= outlen)
                break;
            out[o++] = '?';
            s++;
            continue;
        }
        if (o + n >= outlen)
            break;
        memcpy(out + o, s, n);
        o += n;
        s += n;
    }
    out[o] = '\0';
}

int report_xml_escape(const char *in, char *out, size_t outlen)
{
    char *clean = NULL;
    size_t o = 0, i, inlen = in != NULL ? strlen(in) : 0;
    int rc = -1;

    if (out == NULL || outlen == 0)
        return -1;
    out[0] = '\0';
    clean = malloc(inlen + 1);
    if (clean == NULL)
        goto out;
    text_clean(in, clean, inlen + 1);
    for (i = 0; clean[i] != '\0'; i++) {
        const char *rep = NULL;
        char one[2] = {clean[i], '\0'};
        size_t n;

        switch (clean[i]) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&quot;"; break;
        case '\'': rep = "&apos;"; break;
        case '\n': rep = "&#10;"; break;
        case '\t': rep = "&#9;"; break;
        default: rep = one; break;
        }
        n = strlen(rep);
        if (o + n >= outlen)
            goto out; /* does not fit: out holds what did */
        memcpy(out + o, rep, n);
        o += n;
        out[o] = '\0';
    }
    rc = 0;
out:
    free(clean);
    return rc;
}

/* Writes s as one Markdown table cell: '|' escaped, '<' and '>' as entities,
 * newlines as spaces. */
static void md_cell(FILE *f, const char *s)
{
    char clean[1024];
    size_t i;

    text_clean(s, clean, sizeof clean);
    for (i = 0; clean[i] != '\0'; i++) {
        if (clean[i] == '|')
            fputs("\\|", f);
        else if (clean[i] == '<')
            fputs("&lt;", f); /* Markdown renders raw HTML tags */
        else if (clean[i] == '>')
            fputs("&gt;", f);
        else if (clean[i] == '\n' || clean[i] == '\t')
            fputc(' ', f);
        else
            fputc(clean[i], f);
    }
}

static void fmt_utc(uint64_t wall_us, char *out, size_t outlen)
{
    time_t t = (time_t)(wall_us / 1000000);
    struct tm tm;

    if (gmtime_r(&t, &tm) == NULL) {
        snprintf(out, outlen, "unknown");
        return;
    }
    snprintf(out, outlen, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (unsigned)((wall_us / 1000) % 1000));
}

/* "0.61 s", "failed" (infinite: failures past the percentile), "n/a". */
static void fmt_s(char *out, size_t outlen, double s)
{
    if (isnan(s) || s < 0)
        snprintf(out, outlen, "n/a");
    else if (isinf(s))
        snprintf(out, outlen, "failed");
    else
        snprintf(out, outlen, "%.2f s", s);
}

static const char *verdict_name(enum check_verdict v)
{
    switch (v) {
    case CHECK_PASS: return "pass";
    case CHECK_FAIL: return "fail";
    default: return "not_measured";
    }
}

static const char *verdict_word(enum check_verdict v)
{
    switch (v) {
    case CHECK_PASS: return "PASS";
    case CHECK_FAIL: return "FAIL";
    default: return "not measured";
    }
}

void report_summary_line(const struct run_metrics *m, char *out, size_t outlen)
{
    char ttr[48], p95[32], sr[32];

    if (m->first_fault_us < 0)
        snprintf(ttr, sizeof ttr, "TTR=n/a");
    else if (m->ttr_s < 0)
        snprintf(ttr, sizeof ttr, "TTR=not recovered");
    else
        snprintf(ttr, sizeof ttr, "TTR=%.1fs", m->ttr_s);
    if (m->all.total == 0 || isnan(m->all.p95_s))
        snprintf(p95, sizeof p95, "p95=n/a");
    else if (isinf(m->all.p95_s))
        snprintf(p95, sizeof p95, "p95=inf");
    else
        snprintf(p95, sizeof p95, "p95=%.2fs", m->all.p95_s);
    if (m->all.total == 0)
        snprintf(sr, sizeof sr, "SR=n/a");
    else
        snprintf(sr, sizeof sr, "SR=%.2f%%", m->all.success_rate);
    snprintf(out, outlen, "%s, %s, %s", ttr, p95, sr);
}

/* ---- the run as the reports see it ---- */

struct ctx {
    const struct run_data *d;
    const struct run_metrics *m;
    const struct slo_targets *slo;
    const struct expectations *exp;
    const char *db_path;
    const char *name;        /* scenario name, else the run's name */
    const char *description; /* may be "" */
    const char *scenario_file;
    const char *config;
    char seed[32];
    char summary[160];
};

static const char *json_str(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

    return cJSON_IsString(v) && v->valuestring != NULL ? v->valuestring : "";
}

/* The [from, to) window of a phase on the run clock, in seconds; -1 none. */
static void phase_window(const struct run_metrics *m, int phase, double *from, double *to)
{
    double end = (double)m->end_us / 1e6;
    double ff = (double)m->first_fault_us / 1e6, lc = (double)m->last_clear_us / 1e6;

    *from = *to = -1;
    switch (phase) {
    case 0: /* before */
        *from = 0;
        *to = m->first_fault_us >= 0 ? ff : end;
        break;
    case 1: /* during */
        if (m->first_fault_us >= 0) {
            *from = ff;
            *to = m->last_clear_us >= 0 ? lc : end;
        }
        break;
    case 2: /* after */
        if (m->last_clear_us >= 0) {
            *from = lc;
            *to = end;
        }
        break;
    default:
        *from = 0;
        *to = end;
        break;
    }
}

static const char *const phase_names[4] = {"before", "during", "after", "all"};

static const struct slo_figures *phase_fig(const struct run_metrics *m, int phase)
{
    switch (phase) {
    case 0: return &m->before;
    case 1: return &m->during;
    case 2: return &m->after;
    default: return &m->all;
    }
}

/* "meets the SLO", "misses: success rate, p95", "no requests", ... */
static void phase_verdict(const struct slo_figures *f, const struct slo_targets *t, char *out,
                          size_t outlen)
{
    int sr_set = t->success_rate >= 0, p95_set = t->p95_latency_s >= 0;
    int sr_bad = 0, p95_bad = 0, p95_few = 0;

    if (f->total == 0) {
        snprintf(out, outlen, "no requests");
        return;
    }
    if (!sr_set && !p95_set) {
        snprintf(out, outlen, "no SLO target");
        return;
    }
    sr_bad = sr_set && f->success_rate < t->success_rate;
    if (p95_set) {
        p95_few = !f->gate_possible;
        p95_bad = !p95_few && f->over_target > f->over_allowed;
    }
    if (sr_bad || p95_bad)
        snprintf(out, outlen, "misses: %s%s%s", sr_bad ? "success rate" : "",
                 sr_bad && p95_bad ? ", " : "", p95_bad ? "p95" : "");
    else if (p95_few)
        snprintf(out, outlen, "%s; too few requests to judge p95",
                 sr_set ? "success rate meets" : "no success-rate target");
    else
        snprintf(out, outlen, "meets the SLO");
}

struct share {
    char name[64];
    size_t n[4];
};

/* Ok requests per provider and phase. Returns the number of providers. */
static size_t provider_shares(const struct run_data *d, const struct run_metrics *m,
                              struct share *sh, size_t max)
{
    size_t ns = 0, i, j;

    for (i = 0; i < d->nreq; i++) {
        const struct req_record *r = &d->req[i];
        int ph;

        if (r->outcome != OUTCOME_OK)
            continue;
        for (j = 0; j < ns; j++)
            if (strncmp(sh[j].name, r->provider, sizeof sh[j].name) == 0)
                break;
        if (j == ns) {
            if (ns == max)
                continue;
            memset(&sh[ns], 0, sizeof sh[ns]);
            snprintf(sh[ns].name, sizeof sh[ns].name, "%.63s", r->provider);
            ns++;
        }
        if (m->first_fault_us < 0 || r->intended_us < m->first_fault_us)
            ph = 0;
        else if (m->last_clear_us < 0 || r->intended_us < m->last_clear_us)
            ph = 1;
        else
            ph = 2;
        sh[j].n[ph]++;
        sh[j].n[3]++;
    }
    return ns;
}

/* ---- closeout.md ---- */

struct tl_row {
    struct run_event e;
    size_t order;
};

static int cmp_tl(const void *a, const void *b)
{
    const struct tl_row *x = a, *y = b;

    if (x->e.t_us != y->e.t_us)
        return (x->e.t_us > y->e.t_us) - (x->e.t_us < y->e.t_us);
    return (x->order > y->order) - (x->order < y->order);
}

static void tl_add(struct tl_row *rows, size_t *n, int64_t t, const char *kind,
                   const char *subject, const char *fmt, ...) PRINTF_LIKE(6, 7);

static void tl_add(struct tl_row *rows, size_t *n, int64_t t, const char *kind,
                   const char *subject, const char *fmt, ...)
{
    struct tl_row *r = &rows[*n];
    va_list ap;

    memset(r, 0, sizeof *r);
    r->e.t_us = t;
    r->order = *n;
    snprintf(r->e.kind, sizeof r->e.kind, "%s", kind);
    snprintf(r->e.subject, sizeof r->e.subject, "%.63s", subject);
    va_start(ap, fmt);
    vsnprintf(r->e.detail, sizeof r->e.detail, fmt, ap);
    va_end(ap);
    (*n)++;
}

static int64_t failure_time(const struct req_record *r)
{
    return r->end_us >= 0 ? r->end_us : r->intended_us;
}

static void describe_failure(const struct req_record *r, char *out, size_t outlen)
{
    char status[24] = "no response";

    if (r->http_status > 0)
        snprintf(status, sizeof status, "HTTP %d", r->http_status);
    snprintf(out, outlen, "request %" PRId64 " (intended start %.3f s): %s, %s%s%.200s", r->seq,
             (double)r->intended_us / 1e6, outcome_name(r->outcome), status,
             r->error[0] ? ", " : "", r->error);
}

static void write_timeline(FILE *f, const struct ctx *c)
{
    const struct run_data *d = c->d;
    const struct run_metrics *m = c->m;
    const struct req_record *first = NULL, *last = NULL;
    struct tl_row *rows = NULL;
    size_t n = 0, i, shown;
    char what[400];

    rows = calloc(d->nev + 8, sizeof *rows);
    if (rows == NULL) {
        fprintf(f, "(out of memory while building the timeline)\n\n");
        return;
    }
    for (i = 0; i < d->nev; i++)
        tl_add(rows, &n, d->ev[i].t_us, d->ev[i].kind, d->ev[i].subject, "%s",
               d->ev[i].detail);
    for (i = 0; i < d->nreq; i++) {
        const struct req_record *r = &d->req[i];
        if (!outcome_is_failure(r->outcome))
            continue;
        if (first == NULL || failure_time(r) < failure_time(first))
            first = r;
        if (last == NULL || failure_time(r) >= failure_time(last))
            last = r;
    }
    if (first != NULL) {
        describe_failure(first, what, sizeof what);
        tl_add(rows, &n, failure_time(first), "first failure", first->provider, "%s", what);
    }
    if (last != NULL && last != first) {
        describe_failure(last, what, sizeof what);
        tl_add(rows, &n, failure_time(last), "last failure", last->provider, "%s", what);
    }
    if (m->ttf_s >= 0)
        tl_add(rows, &n, m->first_fault_us + (int64_t)llround(m->ttf_s * 1e6), "failover",
               m->failover_to, "first success served away from %s: TTF %.2f s",
               m->faulted[0] ? m->faulted : "the faulted provider", m->ttf_s);
    if (m->ttr_s >= 0)
        tl_add(rows, &n, m->first_fault_us + (int64_t)llround(m->ttr_s * 1e6), "recovered", "",
               "rolling 5 s success rate back at %g%% and stayed there: TTR %.1f s",
               m->ttr_target, m->ttr_s);
    if (m->back_on_primary_s >= 0)
        tl_add(rows, &n, m->last_clear_us + (int64_t)llround(m->back_on_primary_s * 1e6),
               "back on primary", m->primary, "first token from %s after the clear: %.2f s",
               m->primary, m->back_on_primary_s);
    qsort(rows, n, sizeof *rows, cmp_tl);

    fprintf(f, "## Timeline\n\nTimes are seconds on the run clock (0 = the first request's "
               "intended start).\n\n");
    if (n == 0) {
        fprintf(f, "No events were recorded.\n\n");
        goto out;
    }
    fprintf(f, "| t (s) | what | subject | detail |\n|---:|---|---|---|\n");
    shown = n < REPORT_MAX_TIMELINE ? n : REPORT_MAX_TIMELINE;
    for (i = 0; i < shown; i++) {
        fprintf(f, "| %.3f | ", (double)rows[i].e.t_us / 1e6);
        md_cell(f, rows[i].e.kind);
        fputs(" | ", f);
        md_cell(f, rows[i].e.subject);
        fputs(" | ", f);
        md_cell(f, rows[i].e.detail);
        fputs(" |\n", f);
    }
    if (shown < n)
        fprintf(f, "\n%zu more rows are in the run DB (table events).\n", n - shown);
    fputc('\n', f);
out:
    free(rows);
}

static void write_slo_table(FILE *f, const struct ctx *c)
{
    const struct run_metrics *m = c->m;
    int ph;

    fprintf(f, "## SLO\n\n");
    {
        char sr[32] = "not set", p95[32] = "not set", cost[32] = "not set";
        if (c->slo->success_rate >= 0)
            snprintf(sr, sizeof sr, ">= %g%%", c->slo->success_rate);
        if (c->slo->p95_latency_s >= 0)
            snprintf(p95, sizeof p95, "<= %g s", c->slo->p95_latency_s);
        if (c->slo->avg_cost_usd >= 0)
            snprintf(cost, sizeof cost, "<= $%g", c->slo->avg_cost_usd);
        fprintf(f, "Targets: success rate %s, p95 latency %s, average cost %s per request.\n\n",
                sr, p95, cost);
    }
    fprintf(f, "| phase | window (s) | requests | failed | success rate | p50 | p95 "
               "(95%% interval) | p99 | over p95 target / allowed | avg cost | verdict |\n"
               "|---|---|---:|---:|---:|---:|---|---:|---:|---:|---|\n");
    for (ph = 0; ph < 4; ph++) {
        const struct slo_figures *g = phase_fig(m, ph);
        char p50[24], p95[24], p99[24], lo[24], hi[24], v[96], over[48], cost[32];
        double from, to;

        phase_window(m, ph, &from, &to);
        if (from < 0) {
            fprintf(f, "| %s | — | 0 | — | — | — | — | — | — | — | no such phase |\n",
                    phase_names[ph]);
            continue;
        }
        fmt_s(p50, sizeof p50, g->p50_s);
        fmt_s(p95, sizeof p95, g->p95_s);
        fmt_s(p99, sizeof p99, g->p99_s);
        fmt_s(lo, sizeof lo, g->p95_lo_s);
        fmt_s(hi, sizeof hi, g->p95_hi_s);
        phase_verdict(g, c->slo, v, sizeof v);
        if (c->slo->p95_latency_s >= 0 && g->total > 0 && g->gate_possible)
            snprintf(over, sizeof over, "%zu / %zu", g->over_target, g->over_allowed);
        else if (c->slo->p95_latency_s >= 0 && g->total > 0)
            snprintf(over, sizeof over, "%zu / too few", g->over_target);
        else
            snprintf(over, sizeof over, "—");
        if (g->avg_cost_usd >= 0)
            snprintf(cost, sizeof cost, "$%.5f", g->avg_cost_usd);
        else
            snprintf(cost, sizeof cost, "unknown");
        if (g->total == 0)
            fprintf(f, "| %s | %.1f–%.1f | 0 | — | — | — | — | — | — | — | %s |\n",
                    phase_names[ph], from, to, v);
        else
            fprintf(f, "| %s | %.1f–%.1f | %zu | %zu | %.2f%% | %s | %s (%s to %s) | %s | %s | "
                       "%s | %s |\n",
                    phase_names[ph], from, to, g->total, g->failures, g->success_rate, p50,
                    p95, lo, hi, p99, over, cost, v);
    }
    fprintf(f, "\nLatency is from each request's intended start to its first token; a failed "
               "request counts as slower than any target (\"failed\" in a percentile column). "
               "\"Over p95 target / allowed\": requests slower than the target, and the most "
               "that may be while still showing p95 within it at 95%% confidence. The phase "
               "verdicts gate `slo_p95_latency` before the fault and after the clear; during the "
               "fault the failover and recovery checks speak.\n\n");
}

/* How the load generator kept its schedule, per phase, and the schedule
 * itself from the generator's "load" events. */
static void write_loadgen(FILE *f, const struct ctx *c)
{
    const struct run_data *d = c->d;
    size_t i, nload = 0;
    int ph, closed = 0;

    fprintf(f, "## Load generator\n\n");
    for (i = 0; i < d->nev; i++) {
        if (strcmp(d->ev[i].kind, "load") != 0)
            continue;
        if (strcmp(d->ev[i].subject, "closed") == 0)
            closed = 1;
        if (nload++ < 20) {
            fprintf(f, "- %.1f s: ", (double)d->ev[i].t_us / 1e6);
            md_cell(f, d->ev[i].detail);
            fputc('\n', f);
        }
    }
    if (nload > 0)
        fputc('\n', f);
    if (closed)
        fprintf(f, "> **Closed loop.** Each worker sent its next request when the previous "
                   "one ended, so a slow system slowed the load down: latency here is from "
                   "each send, and this run measures capacity, not an SLO.\n\n");
    fprintf(f, "| phase | requests | late (sent > %d ms after intended) | dropped (never "
               "sent) | start gap p99 |\n|---|---:|---:|---:|---:|\n",
            SLO_LATE_US / 1000);
    for (ph = 0; ph < 4; ph++) {
        const struct slo_figures *g = phase_fig(c->m, ph);
        char gap[32] = "—";

        if (g->start_gap_p99_s >= 0)
            snprintf(gap, sizeof gap, "%.3f ms", g->start_gap_p99_s * 1e3);
        fprintf(f, "| %s | %zu | %zu | %zu | %s |\n", phase_names[ph], g->total, g->late,
                g->dropped, gap);
    }
    fprintf(f, "\nA late or dropped request still counts from its intended start (dropped "
               "ones as failures): the generator cannot hide its own stalls. Many late "
               "requests mean the machine running slodrill was the bottleneck.\n\n");
}

/* What the router's cache and guardrails did, when they did anything: how
 * many answers came from the cache (and how many of those were stale, served
 * in travel mode because every deployment failed), how many requests a
 * guardrail refused on purpose, and what the answers cost. */
static void write_guards(FILE *f, const struct ctx *c)
{
    const struct slo_figures *all = &c->m->all;
    int ph;

    if (all->from_cache == 0 && all->rejected == 0)
        return;
    fprintf(f, "## Cache and guardrails\n\n| phase | requests | from cache | hit rate | stale "
               "(travel mode) | refused by a guardrail | avg cost |\n"
               "|---|---:|---:|---:|---:|---:|---:|\n");
    for (ph = 0; ph < 4; ph++) {
        const struct slo_figures *g = phase_fig(c->m, ph);
        char rate[16] = "—", cost[32] = "—";
        if (g->total > 0)
            snprintf(rate, sizeof rate, "%.1f%%", 100.0 * (double)g->from_cache / (double)g->total);
        if (g->avg_cost_usd >= 0)
            snprintf(cost, sizeof cost, "$%.5f", g->avg_cost_usd);
        fprintf(f, "| %s | %zu | %zu | %s | %zu | %zu | %s |\n", phase_names[ph], g->total,
                g->from_cache, rate, g->stale, g->rejected, cost);
    }
    fprintf(f, "\nAnswers from the cache cost nothing and count as successes; stale ones "
               "were served because no deployment could answer. A request a guardrail "
               "refused (a budget cap, a tenant's rate cap) is not a failure of the service: "
               "it is the guardrail doing its job, and it counts in the total but not against "
               "the success rate. The router's `x-slodrill-budget` header names the rungs of "
               "the degrade ladder each answer took.\n\n");
}

static void write_checks(FILE *f, const struct ctx *c)
{
    size_t i;

    fprintf(f, "## Checks\n\n| check | phase | verdict | detail |\n|---|---|---|---|\n");
    for (i = 0; i < c->m->nchecks; i++) {
        const struct slo_check *k = &c->m->checks[i];
        fprintf(f, "| %s | %s | %s | ", k->name, k->phase, verdict_word(k->verdict));
        md_cell(f, k->detail);
        fputs(" |\n", f);
    }
    if (c->m->nchecks == 0)
        fprintf(f, "| — | — | — | no checks |\n");
    fputc('\n', f);
}

static void write_budget(FILE *f, const struct ctx *c)
{
    const struct run_metrics *m = c->m;
    double window = c->slo->window_days >= 0 ? c->slo->window_days : 30;

    fprintf(f, "## Error budget\n\n");
    if (m->budget_allowed_reqs < 0) {
        fprintf(f, "Not computed: the SLO needs both success_rate and monthly_requests.\n\n");
        return;
    }
    fprintf(f, "The SLO (%g%% success over %g days) allows %.0f failed requests out of %.0f "
               "a month.\n",
            c->slo->success_rate, window, m->budget_allowed_reqs, c->slo->monthly_requests);
    if (m->budget_spent_reqs < 0) {
        fprintf(f, "This run recorded no requests, so its impact is unknown.\n\n");
        return;
    }
    fprintf(f, "This run failed %zu of %zu requests (%.2f%%). A run like this one, all "
               "month, would fail %.0f requests: %.0f%% of the budget%s.\n\n",
            m->all.failures, m->all.total,
            100.0 * (double)m->all.failures / (double)m->all.total, m->budget_spent_reqs,
            isinf(m->budget_spent_pct) ? 0.0 : m->budget_spent_pct,
            isinf(m->budget_spent_pct)       ? " (the budget is zero)"
            : m->budget_spent_pct > 100.0    ? ", more than the month allows"
                                             : "");
}

/* One follow-up per kind of failed check, in check order. */
static void write_followups(FILE *f, const struct ctx *c)
{
    const struct run_metrics *m = c->m;
    int seen_fo = 0, seen_sr = 0, seen_p95 = 0, seen_bop = 0, seen_ttr = 0, seen_cost = 0;
    int seen_run = 0, any = 0;
    size_t i;

    fprintf(f, "## Follow-ups\n\n");
    for (i = 0; i < m->nchecks; i++) {
        const char *n = m->checks[i].name;

        if (m->checks[i].verdict != CHECK_FAIL)
            continue;
        any = 1;
        if (strcmp(n, "run_complete") == 0 && !seen_run++)
            fprintf(f, "- Find out why the run did not complete (the stop event in the "
                       "timeline, or the process log) and run it again: the other figures "
                       "cover only part of the plan.\n");
        else if (strcmp(n, "failover_within") == 0 && !seen_fo++)
            fprintf(f, "- Failover was slow or absent: check the router's retries before "
                       "fallback, its timeouts (stream_timeout is time to first token) and "
                       "whether the fallback deployment is configured and reachable.\n");
        else if (strstr(n, "success_rate") != NULL && !seen_sr++)
            fprintf(f, "- See which requests failed and why: `sqlite3 %s \"SELECT provider, "
                       "outcome, http_status, error, COUNT(*) FROM requests WHERE outcome IN "
                       "('retryable_error','timeout') GROUP BY 1,2,3,4 ORDER BY 5 DESC\"`.\n",
                    c->db_path);
        else if (strstr(n, "p95") != NULL && !seen_p95++)
            fprintf(f, "- Look at the slowest requests: `sqlite3 %s \"SELECT seq, provider, "
                       "(first_token_us - intended_us) / 1e6 AS s FROM requests ORDER BY s DESC "
                       "LIMIT 20\"`; a slow first token on one provider points at its timeout "
                       "settings.\n",
                    c->db_path);
        else if (strcmp(n, "back_on_primary_within") == 0 && !seen_bop++)
            fprintf(f, "- Traffic did not return to %s in time: check the router's cooldown "
                       "length and how it probes a cooled-down deployment.\n",
                    m->primary[0] ? m->primary : "the primary");
        else if (strcmp(n, "recover_within") == 0 && !seen_ttr++)
            fprintf(f, "- Recovery took too long: failures kept coming after failover; find "
                       "the last failures in the timeline and what served them.\n");
        else if (strstr(n, "cost") != NULL && !seen_cost++)
            fprintf(f, "- Cost per request is over target: compare token counts and prices per "
                       "provider in the run DB, and check which provider served the traffic.\n");
    }
    if (!any)
        fprintf(f, "None from the checks: every check held.\n");
    fputc('\n', f);
}

static int write_closeout(FILE *f, const struct ctx *c)
{
    const struct run_data *d = c->d;
    const struct run_metrics *m = c->m;
    struct share sh[REPORT_MAX_PROVIDERS];
    size_t nfail = 0, i, ns;
    char started[80];

    for (i = 0; i < m->nchecks; i++)
        if (m->checks[i].verdict == CHECK_FAIL)
            nfail++;
    fmt_utc(d->started_wall_us, started, sizeof started);

    fprintf(f, "`%s`\n\n# Closeout: ", c->summary);
    md_cell(f, c->name);
    fputs("\n\n", f);
    if (c->description[0] != '\0') {
        md_cell(f, c->description);
        fputs("\n\n", f);
    }
    if (nfail == 0)
        fprintf(f, "**Verdict: PASS.** All %zu checks held.\n\n", m->nchecks);
    else {
        size_t k = 0;
        fprintf(f, "**Verdict: FAIL.** %zu of %zu checks failed:", nfail, m->nchecks);
        for (i = 0; i < m->nchecks; i++)
            if (m->checks[i].verdict == CHECK_FAIL)
                fprintf(f, "%s %s%s%s", k++ ? "," : "", m->checks[i].name,
                        strcmp(m->checks[i].phase, "all") == 0 ? "" : " ",
                        strcmp(m->checks[i].phase, "all") == 0 ? "" : m->checks[i].phase);
        fprintf(f, ".\n\n");
    }
    if (strcmp(d->status, "complete") != 0 || m->stopped)
        fprintf(f, "> **Warning: incomplete run.** The run's status is \"%s\"%s. Every figure "
                   "below covers only the %.1f s that were recorded.\n\n",
                d->status, m->stopped ? " and a stop condition fired" : "",
                (double)m->end_us / 1e6);

    fprintf(f, "| run | |\n|---|---|\n| name | ");
    md_cell(f, d->name);
    fprintf(f, " |\n| started (UTC) | %s |\n| duration | %.1f s |\n| requests | %zu |\n"
               "| status | %s |\n| run DB | ",
            started, (double)m->end_us / 1e6, d->nreq, d->status);
    md_cell(f, c->db_path);
    fputs(" |\n", f);
    if (c->scenario_file[0]) {
        fputs("| scenario file | ", f);
        md_cell(f, c->scenario_file);
        fputs(" |\n", f);
    }
    if (c->config[0]) {
        fputs("| router config | ", f);
        md_cell(f, c->config);
        fputs(" |\n", f);
    }
    if (c->seed[0])
        fprintf(f, "| seed | %s |\n", c->seed);
    fputc('\n', f);

    write_timeline(f, c);
    write_slo_table(f, c);

    ns = provider_shares(d, m, sh, REPORT_MAX_PROVIDERS);
    fprintf(f, "## Who served\n\nSuccessful requests per provider, by phase.\n\n");
    if (ns == 0) {
        fprintf(f, "No request succeeded.\n\n");
    } else {
        int ph;
        fprintf(f, "| provider | before | during | after | all |\n|---|---:|---:|---:|---:|\n");
        for (i = 0; i < ns; i++) {
            fputs("| ", f);
            md_cell(f, sh[i].name[0] ? sh[i].name : "(unknown)");
            for (ph = 0; ph < 4; ph++)
                fprintf(f, " | %zu", sh[i].n[ph]);
            fputs(" |\n", f);
        }
        fputc('\n', f);
    }

    write_loadgen(f, c);
    write_guards(f, c);
    write_checks(f, c);
    write_budget(f, c);

    fprintf(f, "## Findings\n\n");
    if (nfail == 0)
        fprintf(f, "Nothing missed its target.\n\n");
    else {
        for (i = 0; i < m->nchecks; i++) {
            const struct slo_check *k = &m->checks[i];
            if (k->verdict != CHECK_FAIL)
                continue;
            fprintf(f, "- **%s** (%s): ", k->name, k->phase);
            md_cell(f, k->detail);
            fputc('\n', f);
        }
        fputc('\n', f);
    }
    write_followups(f, c);
    return ferror(f) ? -1 : 0;
}

/* ---- report.json ---- */

static cJSON *num_or_null(double v)
{
    return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull();
}

static cJSON *clean_string(const char *s)
{
    size_t n = strlen(s) + 1;
    char *buf = malloc(n);
    cJSON *j;

    if (buf == NULL)
        return NULL;
    text_clean(s, buf, n);
    j = cJSON_CreateString(buf);
    free(buf);
    return j;
}

/* Adds item to obj; NULL item marks the whole document as failed. */
static void put(cJSON *obj, const char *key, cJSON *item, int *bad)
{
    if (item == NULL || !cJSON_AddItemToObject(obj, key, item)) {
        cJSON_Delete(item);
        *bad = 1;
    }
}

static cJSON *target_or_null(double v)
{
    return v >= 0 ? cJSON_CreateNumber(v) : cJSON_CreateNull();
}

static cJSON *json_figures(const struct slo_figures *g, double from, double to, int *bad)
{
    cJSON *o = cJSON_CreateObject(), *ci;

    if (o == NULL) {
        *bad = 1;
        return NULL;
    }
    put(o, "from_s", from >= 0 ? cJSON_CreateNumber(from) : cJSON_CreateNull(), bad);
    put(o, "to_s", to >= 0 ? cJSON_CreateNumber(to) : cJSON_CreateNull(), bad);
    put(o, "requests", cJSON_CreateNumber((double)g->total), bad);
    put(o, "ok", cJSON_CreateNumber((double)g->ok), bad);
    put(o, "failures", cJSON_CreateNumber((double)g->failures), bad);
    put(o, "timeouts", cJSON_CreateNumber((double)g->timeouts), bad);
    put(o, "client_errors", cJSON_CreateNumber((double)g->client_errors), bad);
    put(o, "rate_limited", cJSON_CreateNumber((double)g->rate_limited), bad);
    put(o, "rejected_by_budget", cJSON_CreateNumber((double)g->rejected), bad);
    put(o, "served_from_cache", cJSON_CreateNumber((double)g->from_cache), bad);
    put(o, "stale_from_cache", cJSON_CreateNumber((double)g->stale), bad);
    put(o, "rejected_by_budget", cJSON_CreateNumber((double)g->rejected), bad);
    put(o, "success_rate", g->total ? num_or_null(g->success_rate) : cJSON_CreateNull(), bad);
    put(o, "p50_s", g->total ? num_or_null(g->p50_s) : cJSON_CreateNull(), bad);
    put(o, "p95_s", g->total ? num_or_null(g->p95_s) : cJSON_CreateNull(), bad);
    put(o, "p95_failed", cJSON_CreateBool(g->total > 0 && isinf(g->p95_s)), bad);
    ci = cJSON_CreateArray();
    if (ci != NULL) {
        cJSON_AddItemToArray(ci, num_or_null(g->p95_lo_s));
        cJSON_AddItemToArray(ci, num_or_null(g->p95_hi_s));
    }
    put(o, "p95_ci95_s", ci, bad);
    put(o, "p99_s", g->total ? num_or_null(g->p99_s) : cJSON_CreateNull(), bad);
    put(o, "over_p95_target", cJSON_CreateNumber((double)g->over_target), bad);
    put(o, "over_p95_allowed", cJSON_CreateNumber((double)g->over_allowed), bad);
    put(o, "p95_gate_possible", cJSON_CreateBool(g->gate_possible), bad);
    put(o, "avg_cost_usd", g->avg_cost_usd >= 0 ? cJSON_CreateNumber(g->avg_cost_usd)
                                                : cJSON_CreateNull(), bad);
    put(o, "p95_cost_usd", g->p95_cost_usd >= 0 ? cJSON_CreateNumber(g->p95_cost_usd)
                                                : cJSON_CreateNull(), bad);
    put(o, "cost_reported", cJSON_CreateNumber((double)g->cost_reported), bad);
    put(o, "late", cJSON_CreateNumber((double)g->late), bad);
    put(o, "dropped", cJSON_CreateNumber((double)g->dropped), bad);
    put(o, "start_gap_p99_s", g->start_gap_p99_s >= 0 ? cJSON_CreateNumber(g->start_gap_p99_s)
                                                      : cJSON_CreateNull(), bad);
    return o;
}

static cJSON *secs_or_null(int64_t us)
{
    return us >= 0 ? cJSON_CreateNumber((double)us / 1e6) : cJSON_CreateNull();
}

static char *build_json(const struct ctx *c)
{
    const struct run_data *d = c->d;
    const struct run_metrics *m = c->m;
    cJSON *root = cJSON_CreateObject(), *o, *meta = NULL;
    char started[80], *text = NULL;
    size_t i;
    int bad = 0, ph;

    if (root == NULL)
        return NULL;
    fmt_utc(d->started_wall_us, started, sizeof started);
    put(root, "schema", cJSON_CreateString("slodrill.report/1"), &bad);
    put(root, "summary", cJSON_CreateString(c->summary), &bad);
    put(root, "verdict", cJSON_CreateString(m->passed ? "pass" : "fail"), &bad);

    o = cJSON_CreateObject();
    put(root, "run", o, &bad);
    if (o != NULL) {
        put(o, "name", clean_string(d->name), &bad);
        put(o, "status", cJSON_CreateString(d->status), &bad);
        put(o, "stopped", cJSON_CreateBool(m->stopped), &bad);
        put(o, "started_utc", cJSON_CreateString(started), &bad);
        put(o, "started_wall_us", cJSON_CreateNumber((double)d->started_wall_us), &bad);
        put(o, "duration_s", cJSON_CreateNumber((double)m->end_us / 1e6), &bad);
        put(o, "requests", cJSON_CreateNumber((double)d->nreq), &bad);
        put(o, "events", cJSON_CreateNumber((double)d->nev), &bad);
        put(o, "db", clean_string(c->db_path), &bad);
    }
    o = cJSON_CreateObject();
    put(root, "scenario", o, &bad);
    if (o != NULL) {
        put(o, "name", clean_string(c->name), &bad);
        put(o, "description", clean_string(c->description), &bad);
        put(o, "file", clean_string(c->scenario_file), &bad);
    }
    /* The run's own description, as the harness stored it. */
    meta = cJSON_Parse(d->meta_json);
    if (meta != NULL)
        put(root, "meta", meta, &bad);
    else
        put(root, "meta", cJSON_CreateNull(), &bad);

    o = cJSON_CreateObject();
    put(root, "slo", o, &bad);
    if (o != NULL) {
        put(o, "success_rate", target_or_null(c->slo->success_rate), &bad);
        put(o, "p95_latency_s", target_or_null(c->slo->p95_latency_s), &bad);
        put(o, "avg_cost_usd", target_or_null(c->slo->avg_cost_usd), &bad);
        put(o, "window_days", target_or_null(c->slo->window_days), &bad);
        put(o, "monthly_requests", target_or_null(c->slo->monthly_requests), &bad);
    }
    o = cJSON_CreateObject();
    put(root, "expect", o, &bad);
    if (o != NULL) {
        put(o, "failover_within_s", target_or_null(c->exp->failover_within_s), &bad);
        put(o, "success_rate_min", target_or_null(c->exp->success_rate_min), &bad);
        put(o, "p95_latency_s", target_or_null(c->exp->p95_latency_s), &bad);
        put(o, "back_on_primary_within_s", target_or_null(c->exp->back_on_primary_within_s),
            &bad);
        put(o, "recover_within_s", target_or_null(c->exp->recover_within_s), &bad);
        put(o, "avg_cost_max_usd", target_or_null(c->exp->avg_cost_max_usd), &bad);
    }
    o = cJSON_CreateObject();
    put(root, "phases", o, &bad);
    for (ph = 0; o != NULL && ph < 4; ph++) {
        double from, to;
        phase_window(m, ph, &from, &to);
        put(o, phase_names[ph], json_figures(phase_fig(m, ph), from, to, &bad), &bad);
    }
    o = cJSON_CreateObject();
    put(root, "timings", o, &bad);
    if (o != NULL) {
        put(o, "first_fault_s", secs_or_null(m->first_fault_us), &bad);
        put(o, "last_clear_s", secs_or_null(m->last_clear_us), &bad);
        put(o, "primary", clean_string(m->primary), &bad);
        put(o, "faulted", clean_string(m->faulted), &bad);
        put(o, "ttf_s", target_or_null(m->ttf_s), &bad);
        put(o, "failover_to", clean_string(m->failover_to), &bad);
        put(o, "ttr_s", target_or_null(m->ttr_s), &bad);
        put(o, "ttr_target", target_or_null(m->ttr_target), &bad);
        put(o, "back_on_primary_s", target_or_null(m->back_on_primary_s), &bad);
    }
    o = cJSON_CreateObject();
    put(root, "error_budget", o, &bad);
    if (o != NULL) {
        put(o, "allowed_requests", target_or_null(m->budget_allowed_reqs), &bad);
        put(o, "spent_requests", target_or_null(m->budget_spent_reqs), &bad);
        put(o, "spent_pct", target_or_null(m->budget_spent_pct), &bad);
    }
    o = cJSON_CreateArray();
    put(root, "checks", o, &bad);
    for (i = 0; o != NULL && i < m->nchecks; i++) {
        const struct slo_check *k = &m->checks[i];
        cJSON *j = cJSON_CreateObject();

        if (j == NULL || !cJSON_AddItemToArray(o, j)) {
            cJSON_Delete(j);
            bad = 1;
            break;
        }
        put(j, "name", cJSON_CreateString(k->name), &bad);
        put(j, "phase", cJSON_CreateString(k->phase), &bad);
        put(j, "verdict", cJSON_CreateString(verdict_name(k->verdict)), &bad);
        put(j, "measured", num_or_null(k->measured), &bad);
        put(j, "target", num_or_null(k->target), &bad);
        put(j, "unit", cJSON_CreateString(k->unit), &bad);
        put(j, "detail", clean_string(k->detail), &bad);
    }
    o = cJSON_CreateArray();
    put(root, "events", o, &bad);
    for (i = 0; o != NULL && i < d->nev; i++) {
        cJSON *j = cJSON_CreateObject();

        if (j == NULL || !cJSON_AddItemToArray(o, j)) {
            cJSON_Delete(j);
            bad = 1;
            break;
        }
        put(j, "t_s", cJSON_CreateNumber((double)d->ev[i].t_us / 1e6), &bad);
        put(j, "kind", clean_string(d->ev[i].kind), &bad);
        put(j, "subject", clean_string(d->ev[i].subject), &bad);
        put(j, "detail", clean_string(d->ev[i].detail), &bad);
    }
    if (!bad)
        text = cJSON_Print(root);
    cJSON_Delete(root);
    return text;
}

/* ---- junit.xml ---- */

/* Writes s escaped for XML; long strings are cut rather than dropped. */
static void xml_put(FILE *f, const char *s)
{
    char out[4096];

    if (report_xml_escape(s, out, sizeof out) != 0) {
        /* too long: out holds the escaped part that fit, which is enough */
    }
    fputs(out, f);
}

int report_write_junit_suite(FILE *f, const char *suite, const struct run_metrics *m)
{
    size_t i, nfail = 0, nskip = 0;

    for (i = 0; i < m->nchecks; i++) {
        nfail += m->checks[i].verdict == CHECK_FAIL;
        nskip += m->checks[i].verdict == CHECK_NOT_MEASURED;
    }
    fputs("  <testsuite name=\"", f);
    xml_put(f, suite);
    fprintf(f, "\" tests=\"%zu\" failures=\"%zu\" errors=\"0\" skipped=\"%zu\" time=\"%.3f\">\n",
            m->nchecks, nfail, nskip, (double)m->end_us / 1e6);
    for (i = 0; i < m->nchecks; i++) {
        const struct slo_check *k = &m->checks[i];

        fputs("    <testcase classname=\"", f);
        xml_put(f, suite);
        fprintf(f, "\" name=\"%s [%s]\" time=\"0\"", k->name, k->phase);
        if (k->verdict == CHECK_PASS) {
            fputs("/>\n", f);
            continue;
        }
        fputs(">\n", f);
        if (k->verdict == CHECK_FAIL) {
            fputs("      <failure type=\"check\" message=\"", f);
            xml_put(f, k->detail);
            fputs("\">", f);
            xml_put(f, k->detail);
            fputs("</failure>\n", f);
        } else {
            fputs("      <skipped message=\"", f);
            xml_put(f, k->detail);
            fputs("\"/>\n", f);
        }
        fputs("    </testcase>\n", f);
    }
    fputs("  </testsuite>\n", f);
    return ferror(f) ? -1 : 0;
}

static int write_junit(FILE *f, const struct ctx *c)
{
    size_t i, nfail = 0;

    for (i = 0; i < c->m->nchecks; i++)
        nfail += c->m->checks[i].verdict == CHECK_FAIL;
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
               "<testsuites name=\"slodrill\" tests=\"%zu\" failures=\"%zu\">\n",
            c->m->nchecks, nfail);
    if (report_write_junit_suite(f, c->name, c->m) != 0)
        return -1;
    fputs("</testsuites>\n", f);
    return ferror(f) ? -1 : 0;
}

/* ---- files ---- */

static int mkdir_p(const char *dir, char *err, size_t errlen)
{
    char path[4096];
    size_t i, n = strlen(dir);

    if (n == 0 || n >= sizeof path) {
        set_err(err, errlen, "report folder name is empty or too long");
        return -1;
    }
    memcpy(path, dir, n + 1);
    for (i = 1; i <= n; i++) {
        if (path[i] != '/' && path[i] != '\0')
            continue;
        path[i] = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST) {
            set_err(err, errlen, "cannot create %s: %s", path, strerror(errno));
            return -1;
        }
        path[i] = i < n ? '/' : '\0';
    }
    return 0;
}

enum kind { K_CLOSEOUT, K_JUNIT, K_HTML };

/* Writes dir/name through dir/name.tmp and a rename. */
static int write_file(const char *dir, const char *name, const struct ctx *c, enum kind k,
                      const char *text, char *err, size_t errlen)
{
    char path[4096], tmp[4200];
    FILE *f = NULL;
    int rc = -1, r;

    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path) {
        set_err(err, errlen, "report path too long");
        goto out;
    }
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    f = fopen(tmp, "w");
    if (f == NULL) {
        set_err(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        goto out;
    }
    if (text != NULL)
        r = fputs(text, f) < 0 || fputc('\n', f) == EOF ? -1 : 0;
    else if (k == K_CLOSEOUT)
        r = write_closeout(f, c);
    else if (k == K_HTML)
        r = report_html_write(f, c->d, c->m, c->slo, c->name, c->description, c->summary);
    else
        r = write_junit(f, c);
    if (fclose(f) != 0)
        r = -1;
    f = NULL;
    if (r != 0) {
        set_err(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        (void)remove(tmp);
        goto out;
    }
    if (rename(tmp, path) != 0) {
        set_err(err, errlen, "cannot rename %s: %s", tmp, strerror(errno));
        (void)remove(tmp);
        goto out;
    }
    rc = 0;
out:
    return rc;
}

int report_write_all(const char *db_path, const char *out_dir, struct run_metrics *metrics_out,
                     char *err, size_t errlen)
{
    struct run_data *d = NULL;
    struct run_metrics m;
    struct slo_targets slo;
    struct expectations exp;
    struct ctx c;
    cJSON *meta = NULL;
    const cJSON *sc, *seed;
    char *json = NULL;
    int rc = -1, have_m = 0;

    memset(&m, 0, sizeof m);
    memset(&c, 0, sizeof c);
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (db_path == NULL || out_dir == NULL) {
        set_err(err, errlen, "report: a run DB and an output folder are required");
        goto out;
    }
    d = rundb_load(db_path, err, errlen);
    if (d == NULL)
        goto out;
    if (report_read_meta(d->meta_json, &slo, &exp, err, errlen) != 0)
        goto out;
    if (slo_metrics_compute(d, &slo, &exp, &m) != 0) {
        set_err(err, errlen, "report: out of memory computing the metrics");
        goto out;
    }
    have_m = 1;

    meta = cJSON_Parse(d->meta_json);
    sc = cJSON_GetObjectItemCaseSensitive(meta, "scenario");
    c.d = d;
    c.m = &m;
    c.slo = &slo;
    c.exp = &exp;
    c.db_path = db_path;
    c.name = json_str(sc, "name");
    if (c.name[0] == '\0')
        c.name = d->name;
    c.description = json_str(sc, "description");
    c.scenario_file = json_str(sc, "file");
    c.config = json_str(meta, "config");
    seed = cJSON_GetObjectItemCaseSensitive(meta, "seed");
    if (cJSON_IsNumber(seed))
        snprintf(c.seed, sizeof c.seed, "%.0f", seed->valuedouble);
    else if (cJSON_IsString(seed))
        snprintf(c.seed, sizeof c.seed, "%.31s", seed->valuestring);
    report_summary_line(&m, c.summary, sizeof c.summary);

    if (mkdir_p(out_dir, err, errlen) != 0)
        goto out;
    json = build_json(&c);
    if (json == NULL) {
        set_err(err, errlen, "report: out of memory building report.json");
        goto out;
    }
    if (write_file(out_dir, "closeout.md", &c, K_CLOSEOUT, NULL, err, errlen) != 0 ||
        write_file(out_dir, "report.html", &c, K_HTML, NULL, err, errlen) != 0 ||
        write_file(out_dir, "report.json", &c, K_CLOSEOUT, json, err, errlen) != 0 ||
        write_file(out_dir, "junit.xml", &c, K_JUNIT, NULL, err, errlen) != 0)
        goto out;
    if (metrics_out != NULL) {
        *metrics_out = m;
        have_m = 0; /* handed over */
    }
    rc = 0;
out:
    if (have_m)
        slo_metrics_free(&m);
    free(json);
    cJSON_Delete(meta);
    rundb_data_free(d);
    return rc;
}
