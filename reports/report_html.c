/* report_html.c -- report.html: the run on one self-contained page, charts in inline SVG.
 *
 * DESIGN: the page is computed from the same run data and metrics as
 * closeout.md and drawn by this file alone: no script, no stylesheet or font
 * from elsewhere (a Content-Security-Policy says so), so it opens from a CI
 * artifact store or a mail attachment. Four charts share one x axis, the run
 * clock in seconds, cut into buckets by each request's intended start (1 s;
 * wider when the run is longer than REPORT_HTML_MAX_BUCKETS seconds): success
 * rate and p95 latency per bucket with the fault windows shaded, who served
 * each bucket as stacked shares, and the latency histogram with the SLO line.
 * Every text that came from the run (names, errors, event details) is cleaned
 * to UTF-8 and escaped (report_xml_escape). */
#include "reports/report.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REPORT_HTML_MAX_BUCKETS 3600
#define REPORT_HTML_SERIES 6        /* providers drawn by name; the rest are "other" */
#define REPORT_HTML_MAX_FAULTS 256  /* shaded windows */
#define REPORT_HTML_MAX_EVENTS 200  /* rows of the events table */
#define REPORT_HTML_HIST_BINS 40

/* Chart geometry (SVG user units). */
#define CW 960.0
#define CH 240.0
#define ML 64.0
#define MR 150.0
#define MT 16.0
#define MB 36.0

static const char *const palette[REPORT_HTML_SERIES] = {"#1f77b4", "#ff7f0e", "#2ca02c",
                                                         "#9467bd", "#8c564b", "#e377c2"};
#define COLOR_FAILED "#d62728"
#define COLOR_OTHER "#b0b0b0"
#define COLOR_FAULT "#f6d5d5"

/* Writes s escaped for HTML text or a quoted attribute. */
static void put_text(FILE *f, const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;
    char small[512], *big = NULL, *out = small;
    size_t cap = n * 6 + 1;

    if (cap > sizeof small) {
        big = malloc(cap);
        if (big == NULL) {
            fputs("?", f);
            return;
        }
        out = big;
    } else {
        cap = sizeof small;
    }
    if (report_xml_escape(s != NULL ? s : "", out, cap) != 0) {
        /* cannot happen with 6 bytes per input byte; out holds what fit */
    }
    fputs(out, f);
    free(big);
}

/* "1.23 s", "failed", "n/a" */
static void fmt_secs(char *out, size_t outlen, double s)
{
    if (isnan(s) || s < 0)
        snprintf(out, outlen, "n/a");
    else if (isinf(s))
        snprintf(out, outlen, "failed");
    else if (s < 10)
        snprintf(out, outlen, "%.3f s", s);
    else
        snprintf(out, outlen, "%.1f s", s);
}

/* A round step near range/n: 1, 2 or 5 times a power of ten. */
static double nice_step(double range, int n)
{
    double raw = range / n, p, m;

    if (!(raw > 0) || !isfinite(raw))
        return 1;
    p = pow(10, floor(log10(raw)));
    m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

struct axis {
    double x0, x1, y0, y1; /* data ranges */
};

static double px(const struct axis *a, double x)
{
    return ML + (x - a->x0) / (a->x1 - a->x0) * (CW - ML - MR);
}

static double py(const struct axis *a, double y)
{
    return CH - MB - (y - a->y0) / (a->y1 - a->y0) * (CH - MT - MB);
}

/* ---- what the charts show, computed once ---- */

struct fault_win {
    double from, to;   /* seconds on the run clock */
    char label[96];
};

struct bucket {
    size_t total, failures;
    size_t served[REPORT_HTML_SERIES + 1]; /* ok by series; last = other providers */
    double p95;                              /* -1 none; +inf failed */
};

struct view {
    double end_s, bucket_s;
    size_t nb;
    struct bucket *b;
    char series[REPORT_HTML_SERIES][64];
    size_t nseries;
    struct fault_win *fw;
    size_t nfw;
};

struct lat_item {
    size_t bucket;
    double lat;
};

static int cmp_lat_item(const void *a, const void *b)
{
    const struct lat_item *x = a, *y = b;

    if (x->bucket != y->bucket)
        return (x->bucket > y->bucket) - (x->bucket < y->bucket);
    return (x->lat > y->lat) - (x->lat < y->lat);
}

static int ok_outcome(enum outcome o)
{
    return o == OUTCOME_OK || o == OUTCOME_SERVED_FROM_CACHE;
}

/* The first word of a fault event's detail: its kind. */
static void fault_kind(const struct run_event *e, char *out, size_t outlen)
{
    size_t n = strcspn(e->detail, " \t");

    if (n >= outlen)
        n = outlen - 1;
    memcpy(out, e->detail, n);
    out[n] = '\0';
}

/* Fault windows: a fault_on opens one for (subject, kind); the fault_off of
 * the same pair closes it, a fault_off whose kind matches nothing closes every
 * window of its subject (docs/measurement.md, Phases). Open ones end at the
 * run's end. */
static void find_faults(const struct run_data *d, struct view *v)
{
    struct open_fault {
        char subject[64], kind[32];
        size_t win;
    } open[64];
    size_t nopen = 0, i, j;

    memset(open, 0, sizeof open);
    for (i = 0; i < d->nev; i++) {
        const struct run_event *e = &d->ev[i];
        char kind[32];
        int on = strcmp(e->kind, "fault_on") == 0, off = strcmp(e->kind, "fault_off") == 0;
        int matched = 0;

        if (!on && !off)
            continue;
        fault_kind(e, kind, sizeof kind);
        for (j = 0; j < nopen; j++)
            if (strcmp(open[j].subject, e->subject) == 0 && strcmp(open[j].kind, kind) == 0)
                break;
        if (on) {
            if (j < nopen || nopen == sizeof open / sizeof open[0] ||
                v->nfw == REPORT_HTML_MAX_FAULTS)
                continue; /* already on (or too many to draw) */
            v->fw[v->nfw].from = (double)e->t_us / 1e6;
            v->fw[v->nfw].to = v->end_s;
            snprintf(v->fw[v->nfw].label, sizeof v->fw[v->nfw].label, "%.40s %.40s",
                     kind, e->subject);
            snprintf(open[nopen].subject, sizeof open[nopen].subject, "%s", e->subject);
            snprintf(open[nopen].kind, sizeof open[nopen].kind, "%s", kind);
            open[nopen++].win = v->nfw++;
            continue;
        }
        for (j = 0; j < nopen;) {
            int same = strcmp(open[j].subject, e->subject) == 0;
            if (same && strcmp(open[j].kind, kind) == 0)
                matched = 1;
            j++;
        }
        for (j = 0; j < nopen;) {
            int same = strcmp(open[j].subject, e->subject) == 0;
            if (same && (!matched || strcmp(open[j].kind, kind) == 0)) {
                v->fw[open[j].win].to = (double)e->t_us / 1e6;
                open[j] = open[--nopen];
            } else {
                j++;
            }
        }
    }
}

static int view_build(const struct run_data *d, const struct run_metrics *m, struct view *v)
{
    struct lat_item *li = NULL;
    size_t counts[64], i, j, nl = 0;
    char names[64][64];
    size_t nnames = 0;
    int rc = -1;

    memset(v, 0, sizeof *v);
    v->end_s = (double)m->end_us / 1e6;
    if (!(v->end_s > 0))
        v->end_s = 1;
    v->bucket_s = 1;
    if (v->end_s > REPORT_HTML_MAX_BUCKETS)
        v->bucket_s = ceil(v->end_s / REPORT_HTML_MAX_BUCKETS);
    v->nb = (size_t)ceil(v->end_s / v->bucket_s);
    if (v->nb == 0)
        v->nb = 1;
    v->b = calloc(v->nb, sizeof *v->b);
    v->fw = calloc(REPORT_HTML_MAX_FAULTS, sizeof *v->fw);
    li = malloc((d->nreq ? d->nreq : 1) * sizeof *li);
    if (v->b == NULL || v->fw == NULL || li == NULL)
        goto out;

    /* The providers that served most get a colour each, in that order. */
    memset(counts, 0, sizeof counts);
    for (i = 0; i < d->nreq; i++) {
        if (!ok_outcome(d->req[i].outcome))
            continue;
        for (j = 0; j < nnames; j++)
            if (strcmp(names[j], d->req[i].provider) == 0)
                break;
        if (j == nnames) {
            if (nnames == 64)
                continue;
            snprintf(names[nnames++], sizeof names[0], "%s", d->req[i].provider);
        }
        counts[j]++;
    }
    while (v->nseries < REPORT_HTML_SERIES) {
        size_t best = SIZE_MAX;
        for (j = 0; j < nnames; j++)
            if (counts[j] > 0 && (best == SIZE_MAX || counts[j] > counts[best]))
                best = j;
        if (best == SIZE_MAX)
            break;
        snprintf(v->series[v->nseries++], sizeof v->series[0], "%s",
                 names[best][0] ? names[best] : "(unknown)");
        snprintf(names[best], sizeof names[0], "%s", names[best][0] ? names[best] : "(unknown)");
        counts[best] = 0;
    }

    for (i = 0; i < d->nreq; i++) {
        const struct req_record *r = &d->req[i];
        double t = (double)r->intended_us / 1e6;
        size_t k = t <= 0 ? 0 : (size_t)(t / v->bucket_s);
        struct bucket *b;

        if (k >= v->nb)
            k = v->nb - 1;
        b = &v->b[k];
        b->total++;
        if (outcome_is_failure(r->outcome))
            b->failures++;
        if (ok_outcome(r->outcome)) {
            const char *p = r->provider[0] ? r->provider : "(unknown)";
            for (j = 0; j < v->nseries; j++)
                if (strcmp(v->series[j], p) == 0)
                    break;
            b->served[j]++; /* j == nseries: other */
        }
        li[nl].bucket = k;
        li[nl++].lat = slo_request_latency_s(r);
    }
    qsort(li, nl, sizeof *li, cmp_lat_item);
    for (i = 0; i < v->nb; i++)
        v->b[i].p95 = -1;
    for (i = 0; i < nl;) {
        size_t k = li[i].bucket, n = 0, rank;
        while (i + n < nl && li[i + n].bucket == k)
            n++;
        rank = (size_t)ceil(0.95 * (double)n - 1e-9);
        if (rank < 1)
            rank = 1;
        v->b[k].p95 = li[i + rank - 1].lat;
        i += n;
    }
    find_faults(d, v);
    rc = 0;
out:
    free(li);
    return rc;
}

static void view_free(struct view *v)
{
    free(v->b);
    free(v->fw);
}

/* ---- drawing ---- */

static void svg_open(FILE *f, const char *id, const char *title)
{
    fprintf(f, "<svg id=\"%s\" class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" "
               "viewBox=\"0 0 %.0f %.0f\" role=\"img\" aria-labelledby=\"%s-title\">"
               "<title id=\"%s-title\">",
            id, CW, CH, id, id);
    put_text(f, title);
    fputs("</title>\n", f);
}

/* Shaded fault windows with their names. */
static void draw_faults(FILE *f, const struct view *v, const struct axis *a)
{
    size_t i;

    for (i = 0; i < v->nfw; i++) {
        double x0 = px(a, v->fw[i].from), x1 = px(a, v->fw[i].to);
        if (x1 < x0 + 1)
            x1 = x0 + 1;
        fprintf(f, "<rect class=\"fault\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                   "fill=\"" COLOR_FAULT "\"><title>fault ",
                x0, MT, x1 - x0, CH - MT - MB);
        put_text(f, v->fw[i].label);
        fprintf(f, ": %.1f–%.1f s</title></rect>\n", v->fw[i].from, v->fw[i].to);
        fprintf(f, "<text class=\"flabel\" x=\"%.1f\" y=\"%.1f\">", x0 + 3, MT + 11);
        put_text(f, v->fw[i].label);
        fputs("</text>\n", f);
    }
}

/* Axes, grid and tick labels; ylabel is a plain literal. */
static void draw_axes(FILE *f, const struct axis *a, const char *yfmt, const char *ylabel)
{
    double step = nice_step(a->x1 - a->x0, 10), t;

    fprintf(f, "<g class=\"axes\">\n");
    for (t = ceil(a->x0 / step) * step; t <= a->x1 + 1e-9; t += step) {
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"grid\"/>"
                   "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%g</text>\n",
                px(a, t), MT, px(a, t), CH - MB, px(a, t), CH - MB + 14, t);
    }
    step = nice_step(a->y1 - a->y0, 4);
    for (t = ceil(a->y0 / step) * step; t <= a->y1 + 1e-9 * step; t += step) {
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"grid\"/>"
                   "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">",
                ML, py(a, t), CW - MR, py(a, t), ML - 6, py(a, t) + 4);
        fprintf(f, yfmt, t);
        fputs("</text>\n", f);
    }
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"axis\"/>"
               "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"axis\"/>\n",
            ML, CH - MB, CW - MR, CH - MB, ML, MT, ML, CH - MB);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
            (ML + CW - MR) / 2, CH - 4, "run clock (s)");
    fprintf(f, "<text x=\"14\" y=\"%.1f\" text-anchor=\"middle\" transform=\"rotate(-90 14 "
               "%.1f)\">%s</text>\n</g>\n",
            (MT + CH - MB) / 2, (MT + CH - MB) / 2, ylabel);
}

/* A dashed horizontal target line with its label at the right. */
static void draw_target(FILE *f, const struct axis *a, double y, const char *label)
{
    if (y < a->y0 || y > a->y1)
        return;
    fprintf(f, "<line class=\"target\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>"
               "<text class=\"tlabel\" x=\"%.1f\" y=\"%.1f\">",
            ML, py(a, y), CW - MR, py(a, y), CW - MR + 4, py(a, y) + 4);
    put_text(f, label);
    fputs("</text>\n", f);
}

static void chart_success(FILE *f, const struct view *v, const struct slo_targets *slo)
{
    struct axis a = {0, v->end_s, 0, 100};
    size_t i, drawn = 0;
    char label[64];
    int pen = 0;

    svg_open(f, "chart-success", "Success rate per second");
    draw_faults(f, v, &a);
    draw_axes(f, &a, "%g%%", "success rate (%)");
    if (slo->success_rate >= 0) {
        snprintf(label, sizeof label, "SLO %g%%", slo->success_rate);
        draw_target(f, &a, slo->success_rate, label);
    }
    fputs("<path class=\"series sr\" d=\"", f);
    for (i = 0; i < v->nb; i++) {
        const struct bucket *b = &v->b[i];
        double sr;
        if (b->total == 0) {
            pen = 0;
            continue;
        }
        sr = 100.0 * (1.0 - (double)b->failures / (double)b->total);
        fprintf(f, "%c%.1f %.1f", pen ? 'L' : 'M', px(&a, ((double)i + 0.5) * v->bucket_s),
                py(&a, sr));
        pen = 1;
        drawn++;
    }
    fputs("\"/>\n", f);
    for (i = 0; i < v->nb; i++) { /* points, with the figures on hover */
        const struct bucket *b = &v->b[i];
        double sr;
        if (b->total == 0)
            continue;
        sr = 100.0 * (1.0 - (double)b->failures / (double)b->total);
        fprintf(f, "<circle class=\"pt%s\" cx=\"%.1f\" cy=\"%.1f\" r=\"2\"><title>%g–%g s: "
                   "%.2f%% (%zu of %zu failed)</title></circle>\n",
                b->failures ? " bad" : "", px(&a, ((double)i + 0.5) * v->bucket_s), py(&a, sr),
                (double)i * v->bucket_s, (double)(i + 1) * v->bucket_s, sr, b->failures,
                b->total);
    }
    if (drawn == 0)
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">no requests</text>\n",
                (ML + CW - MR) / 2, CH / 2);
    fputs("</svg>\n", f);
}

static void chart_p95(FILE *f, const struct view *v, const struct slo_targets *slo)
{
    struct axis a = {0, v->end_s, 0, 1};
    double ymax = 0;
    size_t i;
    char label[64];
    int pen = 0;

    for (i = 0; i < v->nb; i++)
        if (isfinite(v->b[i].p95) && v->b[i].p95 > ymax)
            ymax = v->b[i].p95;
    if (slo->p95_latency_s > 0 && slo->p95_latency_s * 1.25 > ymax)
        ymax = slo->p95_latency_s * 1.25;
    if (!(ymax > 0))
        ymax = 1;
    a.y1 = ymax * 1.08;
    svg_open(f, "chart-p95", "p95 latency per second");
    draw_faults(f, v, &a);
    draw_axes(f, &a, "%g", "p95 latency (s)");
    if (slo->p95_latency_s >= 0) {
        snprintf(label, sizeof label, "SLO p95 %g s", slo->p95_latency_s);
        draw_target(f, &a, slo->p95_latency_s, label);
    }
    fputs("<path class=\"series p95\" d=\"", f);
    for (i = 0; i < v->nb; i++) {
        double y = v->b[i].p95;
        if (!(y >= 0) || isinf(y)) {
            pen = 0;
            continue;
        }
        fprintf(f, "%c%.1f %.1f", pen ? 'L' : 'M', px(&a, ((double)i + 0.5) * v->bucket_s),
                py(&a, y));
        pen = 1;
    }
    fputs("\"/>\n", f);
    for (i = 0; i < v->nb; i++) {
        double y = v->b[i].p95, x = px(&a, ((double)i + 0.5) * v->bucket_s);
        if (!(y >= 0))
            continue;
        if (isinf(y))
            fprintf(f, "<rect class=\"failedmark\" x=\"%.1f\" y=\"%.1f\" width=\"5\" "
                       "height=\"5\"><title>%g–%g s: p95 failed (more than 5%% of the "
                       "requests failed)</title></rect>\n",
                    x - 2.5, MT, (double)i * v->bucket_s, (double)(i + 1) * v->bucket_s);
        else
            fprintf(f, "<circle class=\"pt%s\" cx=\"%.1f\" cy=\"%.1f\" r=\"2\"><title>%g–%g s: "
                       "p95 %.3f s</title></circle>\n",
                    slo->p95_latency_s >= 0 && y > slo->p95_latency_s ? " bad" : "", x,
                    py(&a, y), (double)i * v->bucket_s, (double)(i + 1) * v->bucket_s, y);
    }
    fprintf(f, "<text class=\"note\" x=\"%.1f\" y=\"%.1f\">red squares: p95 failed</text>\n",
            CW - MR + 4, MT + 10);
    fputs("</svg>\n", f);
}

static void legend_entry(FILE *f, int row, const char *color, const char *name)
{
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"10\" height=\"10\" fill=\"%s\"/>"
               "<text class=\"legend\" x=\"%.1f\" y=\"%.1f\">",
            CW - MR + 8, MT + 4 + row * 16.0, color, CW - MR + 22, MT + 13 + row * 16.0);
    put_text(f, name);
    fputs("</text>\n", f);
}

/* Stacked shares per bucket: each served provider, other providers, failed,
 * and the rest (client errors, budget rejections) left blank. */
static void chart_providers(FILE *f, const struct view *v)
{
    struct axis a = {0, v->end_s, 0, 100};
    size_t s, i, nser = v->nseries + 2; /* + other + failed */
    int row = 0;
    double *base = calloc(v->nb, sizeof *base);

    svg_open(f, "chart-providers", "Who served, share of requests per second");
    draw_faults(f, v, &a);
    draw_axes(f, &a, "%g%%", "share of requests (%)");
    if (base == NULL) {
        fputs("</svg>\n", f);
        return;
    }
    for (s = 0; s < nser; s++) {
        const char *color = s < v->nseries ? palette[s] : s == v->nseries ? COLOR_OTHER
                                                                           : COLOR_FAILED;
        size_t any = 0;

        for (i = 0; i < v->nb; i++) {
            const struct bucket *b = &v->b[i];
            any += s < v->nseries ? b->served[s] : s == v->nseries ? b->served[v->nseries]
                                                                    : b->failures;
        }
        if (any == 0 && s >= v->nseries)
            continue;
        fprintf(f, "<path class=\"share\" data-series=\"");
        put_text(f, s < v->nseries ? v->series[s] : s == v->nseries ? "other" : "failed");
        fprintf(f, "\" fill=\"%s\" d=\"", color);
        /* one rectangle per bucket with requests, as path segments */
        for (i = 0; i < v->nb; i++) {
            const struct bucket *b = &v->b[i];
            size_t n = s < v->nseries ? b->served[s] : s == v->nseries ? b->served[v->nseries]
                                                                        : b->failures;
            double h, x0, x1;
            if (b->total == 0 || n == 0)
                continue;
            h = 100.0 * (double)n / (double)b->total;
            x0 = px(&a, (double)i * v->bucket_s);
            x1 = px(&a, fmin((double)(i + 1) * v->bucket_s, v->end_s)); /* last bucket: to the end */
            fprintf(f, "M%.1f %.1fH%.1fV%.1fH%.1fZ", x0, py(&a, base[i]), x1,
                    py(&a, base[i] + h), x0);
            base[i] += h;
        }
        fputs("\"/>\n", f);
        legend_entry(f, row++, color,
                     s < v->nseries ? v->series[s] : s == v->nseries ? "other" : "failed");
    }
    free(base);
    fputs("</svg>\n", f);
}

/* Latency histogram of the answered requests, with the SLO line and the
 * measured p95. Failed requests have no latency: the caption counts them. */
static void chart_hist(FILE *f, const struct run_data *d, const struct run_metrics *m,
                       const struct slo_targets *slo)
{
    size_t bins[REPORT_HTML_HIST_BINS], i, maxc = 1, nfin = 0, over = 0;
    double hi = 0, w, x0, x1;
    struct axis a;
    char label[64];
    double *lat = malloc((d->nreq ? d->nreq : 1) * sizeof *lat);

    memset(bins, 0, sizeof bins);
    svg_open(f, "chart-latency-hist", "Latency histogram");
    if (lat == NULL) {
        fputs("</svg>\n", f);
        return;
    }
    for (i = 0; i < d->nreq; i++) {
        double l = slo_request_latency_s(&d->req[i]);
        if (isfinite(l) && l >= 0)
            lat[nfin++] = l;
    }
    /* Range: up to the 99th finite latency or past the target, whichever is more. */
    for (i = 0; i < nfin; i++)
        if (lat[i] > hi)
            hi = lat[i];
    if (isfinite(m->all.p99_s) && m->all.p99_s > 0 && m->all.p99_s * 1.5 < hi)
        hi = m->all.p99_s * 1.5;
    if (slo->p95_latency_s > 0 && slo->p95_latency_s * 1.3 > hi)
        hi = slo->p95_latency_s * 1.3;
    if (!(hi > 0))
        hi = 1;
    w = hi / REPORT_HTML_HIST_BINS;
    for (i = 0; i < nfin; i++) {
        size_t k = (size_t)(lat[i] / w);
        if (k >= REPORT_HTML_HIST_BINS) {
            k = REPORT_HTML_HIST_BINS - 1;
            over++;
        }
        bins[k]++;
    }
    for (i = 0; i < REPORT_HTML_HIST_BINS; i++)
        if (bins[i] > maxc)
            maxc = bins[i];
    a.x0 = 0;
    a.x1 = hi;
    a.y0 = 0;
    a.y1 = (double)maxc * 1.1;
    /* the x axis of this chart is latency, not the run clock */
    {
        double step = nice_step(hi, 10), t;
        fputs("<g class=\"axes\">\n", f);
        for (t = 0; t <= hi + 1e-9 * step; t += step)
            fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"grid\"/>"
                       "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%g</text>\n",
                    px(&a, t), MT, px(&a, t), CH - MB, px(&a, t), CH - MB + 14, t);
        step = nice_step(a.y1, 4);
        for (t = 0; t <= a.y1; t += step)
            fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"grid\"/>"
                       "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n",
                    ML, py(&a, t), CW - MR, py(&a, t), ML - 6, py(&a, t) + 4, t);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"axis\"/>\n"
                   "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">latency to first token "
                   "(s)</text>\n<text x=\"14\" y=\"%.1f\" text-anchor=\"middle\" "
                   "transform=\"rotate(-90 14 %.1f)\">requests</text>\n</g>\n",
                ML, CH - MB, CW - MR, CH - MB, (ML + CW - MR) / 2, CH - 4, (MT + CH - MB) / 2,
                (MT + CH - MB) / 2);
    }
    for (i = 0; i < REPORT_HTML_HIST_BINS; i++) {
        if (bins[i] == 0)
            continue;
        x0 = px(&a, (double)i * w);
        x1 = px(&a, (double)(i + 1) * w);
        fprintf(f, "<rect class=\"bin\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\">"
                   "<title>%.3f–%.3f s%s: %zu requests</title></rect>\n",
                x0 + 0.5, py(&a, (double)bins[i]), x1 - x0 - 1, CH - MB - py(&a, (double)bins[i]),
                (double)i * w, (double)(i + 1) * w,
                i == REPORT_HTML_HIST_BINS - 1 && over ? " and slower" : "", bins[i]);
    }
    if (slo->p95_latency_s >= 0 && slo->p95_latency_s <= hi) {
        snprintf(label, sizeof label, "SLO p95 %g s", slo->p95_latency_s);
        fprintf(f, "<line class=\"target slo\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>"
                   "<text class=\"tlabel\" x=\"%.1f\" y=\"%.1f\">",
                px(&a, slo->p95_latency_s), MT, px(&a, slo->p95_latency_s), CH - MB,
                px(&a, slo->p95_latency_s) + 4, MT + 10);
        put_text(f, label);
        fputs("</text>\n", f);
    }
    if (isfinite(m->all.p95_s) && m->all.p95_s >= 0 && m->all.p95_s <= hi)
        fprintf(f, "<line class=\"measured\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>"
                   "<text class=\"mlabel\" x=\"%.1f\" y=\"%.1f\">measured p95 %.3f s</text>\n",
                px(&a, m->all.p95_s), MT + 14, px(&a, m->all.p95_s), CH - MB,
                px(&a, m->all.p95_s) + 4, MT + 24, m->all.p95_s);
    fprintf(f, "<text class=\"note\" x=\"%.1f\" y=\"%.1f\">%zu answered</text>\n"
               "<text class=\"note\" x=\"%.1f\" y=\"%.1f\">%zu failed (not drawn)</text>\n",
            CW - MR + 4, MT + 50, nfin, CW - MR + 4, MT + 66, m->all.failures);
    if (over)
        fprintf(f, "<text class=\"note\" x=\"%.1f\" y=\"%.1f\">%zu past %.2f s in the last "
                   "bar</text>\n",
                CW - MR + 4, MT + 82, over, hi);
    free(lat);
    fputs("</svg>\n", f);
}

/* ---- the page ---- */

static const char page_css[] =
    "body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:24px auto;"
    "max-width:1000px;color:#222;padding:0 12px}"
    "h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 6px}"
    ".summary{font-family:ui-monospace,Menlo,Consolas,monospace;background:#f3f3f3;"
    "padding:6px 10px;border-radius:4px;display:inline-block}"
    ".verdict{font-weight:700;padding:2px 8px;border-radius:4px;color:#fff}"
    ".pass{background:#2e7d32}.fail{background:#c62828}.nm{background:#777}"
    ".cards{display:flex;flex-wrap:wrap;gap:10px;margin:14px 0}"
    ".card{border:1px solid #ddd;border-radius:6px;padding:8px 12px;min-width:120px}"
    ".card .k{font-size:12px;color:#666}.card .v{font-size:20px;font-weight:600}"
    ".card .s{font-size:12px;color:#666}"
    ".warn{background:#fff4e5;border-left:4px solid #f0a020;padding:8px 12px}"
    "table{border-collapse:collapse;width:100%;font-size:13px}"
    "th,td{border-bottom:1px solid #e4e4e4;text-align:left;padding:4px 6px;vertical-align:top}"
    "td.n{text-align:right;font-variant-numeric:tabular-nums}"
    "svg.chart{width:100%;height:auto;display:block;margin:4px 0 2px}"
    "svg text{font:11px system-ui,sans-serif;fill:#444}"
    "svg .grid{stroke:#ececec}svg .axis{stroke:#888}"
    "svg .series{fill:none;stroke-width:1.6}svg .sr{stroke:#1f77b4}svg .p95{stroke:#6a3d9a}"
    "svg .pt{fill:#1f77b4}svg .pt.bad{fill:#d62728}svg .failedmark{fill:#d62728}"
    "svg .target{stroke:#d62728;stroke-dasharray:6 4;stroke-width:1.4}"
    "svg .measured{stroke:#333;stroke-width:1.2}svg .tlabel{fill:#d62728}"
    "svg .bin{fill:#7aa6d6}svg .flabel{fill:#a33;font-size:10px}"
    ".cap{font-size:12px;color:#555;margin:0 0 10px}";

static void card(FILE *f, const char *k, const char *v, const char *sub)
{
    fputs("<div class=\"card\"><div class=\"k\">", f);
    put_text(f, k);
    fputs("</div><div class=\"v\">", f);
    put_text(f, v);
    fputs("</div>", f);
    if (sub != NULL && sub[0]) {
        fputs("<div class=\"s\">", f);
        put_text(f, sub);
        fputs("</div>", f);
    }
    fputs("</div>\n", f);
}

static const char *verdict_class(enum check_verdict v)
{
    return v == CHECK_PASS ? "pass" : v == CHECK_FAIL ? "fail" : "nm";
}

static const char *verdict_text(enum check_verdict v)
{
    return v == CHECK_PASS ? "PASS" : v == CHECK_FAIL ? "FAIL" : "not measured";
}

static void write_cards(FILE *f, const struct run_data *d, const struct run_metrics *m,
                        const struct slo_targets *slo)
{
    char v[64], s[128], a[32], b[32];

    fputs("<div class=\"cards\" id=\"figures\">\n", f);
    if (m->all.total)
        snprintf(v, sizeof v, "%.2f%%", m->all.success_rate);
    else
        snprintf(v, sizeof v, "n/a");
    if (slo->success_rate >= 0)
        snprintf(s, sizeof s, "target %g%%; %zu of %zu failed", slo->success_rate,
                 m->all.failures, m->all.total);
    else
        snprintf(s, sizeof s, "%zu of %zu failed", m->all.failures, m->all.total);
    card(f, "success rate", v, s);

    fmt_secs(v, sizeof v, m->all.p95_s);
    fmt_secs(a, sizeof a, m->all.p95_lo_s);
    fmt_secs(b, sizeof b, m->all.p95_hi_s);
    if (isnan(m->all.p95_lo_s))
        snprintf(s, sizeof s, "95%% interval: too few samples");
    else if (isinf(m->all.p95_lo_s))
        snprintf(s, sizeof s, "more than 5%% of requests failed");
    else
        snprintf(s, sizeof s, "95%% interval %s to %s", a, b);
    if (slo->p95_latency_s >= 0) {
        size_t l = strlen(s);
        snprintf(s + l, sizeof s - l, "; target %g s", slo->p95_latency_s);
    }
    card(f, "p95 latency", v, s);

    if (m->all.avg_cost_usd >= 0)
        snprintf(v, sizeof v, "$%.5f", m->all.avg_cost_usd);
    else
        snprintf(v, sizeof v, "unknown");
    if (slo->avg_cost_usd >= 0)
        snprintf(s, sizeof s, "per request; target $%g", slo->avg_cost_usd);
    else
        snprintf(s, sizeof s, "per request");
    card(f, "average cost", v, s);

    fmt_secs(v, sizeof v, m->ttf_s);
    snprintf(s, sizeof s, "%s%s%s", m->failover_to[0] ? "to " : "", m->failover_to,
             m->first_fault_us < 0 ? "no fault injected" : "");
    card(f, "time to failover", v, s);
    if (m->first_fault_us >= 0 && m->ttr_s < 0)
        snprintf(v, sizeof v, "not recovered");
    else
        fmt_secs(v, sizeof v, m->ttr_s);
    card(f, "time to recover", v, m->ttr_target >= 0 ? "rolling 5 s success rate" : "");
    fmt_secs(v, sizeof v, m->back_on_primary_s);
    card(f, "back on primary", v, m->primary);
    snprintf(v, sizeof v, "%zu", d->nreq);
    snprintf(s, sizeof s, "over %.1f s", (double)m->end_us / 1e6);
    card(f, "requests", v, s);
    snprintf(v, sizeof v, "%zu / %zu", m->all.late, m->all.dropped);
    if (m->all.start_gap_p99_s >= 0)
        snprintf(s, sizeof s, "start gap p99 %.3f ms", m->all.start_gap_p99_s * 1e3);
    else
        snprintf(s, sizeof s, "nothing was sent");
    card(f, "late / dropped", v, s);
    if (m->budget_spent_pct >= 0 && isfinite(m->budget_spent_pct)) {
        snprintf(v, sizeof v, "%.0f%%", m->budget_spent_pct);
        card(f, "error budget", v, "a month like this run");
    }
    fputs("</div>\n", f);
}

/* A check's figure in its unit: "99.50%", "1.234 s", "$0.00012". */
static void fmt_measure(char *out, size_t outlen, double v, const char *unit)
{
    if (!isfinite(v))
        snprintf(out, outlen, "—");
    else if (strcmp(unit, "%") == 0)
        snprintf(out, outlen, "%.2f%%", v);
    else if (strcmp(unit, "s") == 0)
        snprintf(out, outlen, "%.3f s", v);
    else if (strcmp(unit, "usd") == 0)
        snprintf(out, outlen, "$%.5f", v);
    else
        snprintf(out, outlen, "%g %s", v, unit);
}

static void write_checks_table(FILE *f, const struct run_metrics *m)
{
    size_t i;
    char meas[48], targ[48];

    fputs("<h2>Checks</h2>\n<table id=\"checks\"><thead><tr><th>check</th><th>phase</th>"
          "<th>verdict</th><th>measured</th><th>target</th><th>detail</th></tr></thead>"
          "<tbody>\n",
          f);
    for (i = 0; i < m->nchecks; i++) {
        const struct slo_check *k = &m->checks[i];
        fmt_measure(meas, sizeof meas, k->measured, k->unit);
        fmt_measure(targ, sizeof targ, k->target, k->unit);
        fputs("<tr><td>", f);
        put_text(f, k->name);
        fputs("</td><td>", f);
        put_text(f, k->phase);
        fprintf(f, "</td><td><span class=\"verdict %s\">%s</span></td><td class=\"n\">",
                verdict_class(k->verdict), verdict_text(k->verdict));
        put_text(f, meas);
        fputs("</td><td class=\"n\">", f);
        put_text(f, targ);
        fputs("</td><td>", f);
        put_text(f, k->detail);
        fputs("</td></tr>\n", f);
    }
    if (m->nchecks == 0)
        fputs("<tr><td colspan=\"6\">no checks</td></tr>\n", f);
    fputs("</tbody></table>\n", f);
}

static void write_phase_table(FILE *f, const struct run_metrics *m)
{
    static const char *const names[4] = {"before", "during", "after", "all"};
    const struct slo_figures *g[4] = {&m->before, &m->during, &m->after, &m->all};
    char p50[32], p95[32], p99[32], gap[32];
    int ph;

    fputs("<h2>Phases</h2>\n<table id=\"phases\"><thead><tr><th>phase</th><th>requests</th>"
          "<th>failed</th><th>success rate</th><th>p50</th><th>p95</th><th>p99</th>"
          "<th>late</th><th>dropped</th><th>start gap p99</th></tr></thead><tbody>\n",
          f);
    for (ph = 0; ph < 4; ph++) {
        if (g[ph]->total == 0) {
            fprintf(f, "<tr><td>%s</td><td class=\"n\">0</td><td colspan=\"8\">—</td></tr>\n",
                    names[ph]);
            continue;
        }
        fmt_secs(p50, sizeof p50, g[ph]->p50_s);
        fmt_secs(p95, sizeof p95, g[ph]->p95_s);
        fmt_secs(p99, sizeof p99, g[ph]->p99_s);
        if (g[ph]->start_gap_p99_s >= 0)
            snprintf(gap, sizeof gap, "%.3f ms", g[ph]->start_gap_p99_s * 1e3);
        else
            snprintf(gap, sizeof gap, "—");
        fprintf(f, "<tr><td>%s</td><td class=\"n\">%zu</td><td class=\"n\">%zu</td>"
                   "<td class=\"n\">%.2f%%</td><td class=\"n\">%s</td><td class=\"n\">%s</td>"
                   "<td class=\"n\">%s</td><td class=\"n\">%zu</td><td class=\"n\">%zu</td>"
                   "<td class=\"n\">%s</td></tr>\n",
                names[ph], g[ph]->total, g[ph]->failures, g[ph]->success_rate, p50, p95, p99,
                g[ph]->late, g[ph]->dropped, gap);
    }
    fputs("</tbody></table>\n", f);
}

static void write_events_table(FILE *f, const struct run_data *d)
{
    size_t i, shown = d->nev < REPORT_HTML_MAX_EVENTS ? d->nev : REPORT_HTML_MAX_EVENTS;

    fputs("<h2>Events</h2>\n<table id=\"events\"><thead><tr><th>t (s)</th><th>kind</th>"
          "<th>subject</th><th>detail</th></tr></thead><tbody>\n",
          f);
    for (i = 0; i < shown; i++) {
        fprintf(f, "<tr><td class=\"n\">%.3f</td><td>", (double)d->ev[i].t_us / 1e6);
        put_text(f, d->ev[i].kind);
        fputs("</td><td>", f);
        put_text(f, d->ev[i].subject);
        fputs("</td><td>", f);
        put_text(f, d->ev[i].detail);
        fputs("</td></tr>\n", f);
    }
    if (d->nev == 0)
        fputs("<tr><td colspan=\"4\">no events</td></tr>\n", f);
    fputs("</tbody></table>\n", f);
    if (shown < d->nev)
        fprintf(f, "<p class=\"cap\">%zu more events are in the run DB (table events).</p>\n",
                d->nev - shown);
}

int report_html_write(FILE *f, const struct run_data *d, const struct run_metrics *m,
                      const struct slo_targets *slo, const char *title, const char *description,
                      const char *summary)
{
    struct view v;
    char bucket_note[96];
    int rc = -1;

    if (view_build(d, m, &v) != 0)
        goto out;
    if (v.bucket_s > 1)
        snprintf(bucket_note, sizeof bucket_note, "%g s buckets (the run is long)", v.bucket_s);
    else
        snprintf(bucket_note, sizeof bucket_note, "1 s buckets");

    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
          "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
          "style-src 'unsafe-inline'\">\n"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
          "<meta name=\"generator\" content=\"slodrill\">\n<title>slodrill: ",
          f);
    put_text(f, title);
    fprintf(f, "</title>\n<style>%s</style></head>\n<body>\n", page_css);
    fputs("<h1>", f);
    put_text(f, title);
    fprintf(f, " <span class=\"verdict %s\" id=\"verdict\">%s</span></h1>\n",
            m->passed ? "pass" : "fail", m->passed ? "PASS" : "FAIL");
    if (description != NULL && description[0]) {
        fputs("<p>", f);
        put_text(f, description);
        fputs("</p>\n", f);
    }
    fputs("<p><span class=\"summary\" id=\"summary\">", f);
    put_text(f, summary);
    fputs("</span></p>\n", f);
    if (strcmp(d->status, "complete") != 0 || m->stopped) {
        fputs("<p class=\"warn\"><b>Incomplete run.</b> Status \"", f);
        put_text(f, d->status);
        fprintf(f, "\"%s: the figures cover the %.1f s that were recorded.</p>\n",
                m->stopped ? ", a stop condition fired" : "", (double)m->end_us / 1e6);
    }
    write_cards(f, d, m, slo);

    fprintf(f, "<h2>Success rate</h2>\n<p class=\"cap\">Per second of intended start (%s); "
               "shaded: a fault was on. A request that failed (retryable error or timeout) "
               "counts against the rate.</p>\n",
            bucket_note);
    chart_success(f, &v, slo);
    fprintf(f, "<h2>p95 latency</h2>\n<p class=\"cap\">Nearest-rank p95 of the requests that "
               "were meant to start in each second (%s), from intended start to first token; a "
               "failure counts as slower than any target.</p>\n",
            bucket_note);
    chart_p95(f, &v, slo);
    fprintf(f, "<h2>Who served</h2>\n<p class=\"cap\">Share of each second's requests served "
               "by each provider (%s); red: failed; the gap to 100%% is client errors and "
               "budget rejections.</p>\n",
            bucket_note);
    chart_providers(f, &v);
    fputs("<h2>Latency distribution</h2>\n<p class=\"cap\">Requests that were answered, by "
          "latency from intended start to first token.</p>\n",
          f);
    chart_hist(f, d, m, slo);

    write_phase_table(f, m);
    write_checks_table(f, m);
    write_events_table(f, d);
    fputs("<p class=\"cap\">Written by slodrill from run DB ", f);
    put_text(f, d->name);
    fputs(". Definitions: docs/measurement.md.</p>\n</body></html>\n", f);
    rc = ferror(f) ? -1 : 0;
out:
    view_free(&v);
    return rc;
}
