/* metrics.c -- the router's counters and histograms in Prometheus text format.
 *
 * DESIGN: the SLO is an edge SLO, so the series the alert rules read count
 * client requests, once each, when they end:
 *   slodrill_requests_total{alias,outcome}        outcome as the run DB names it
 *   slodrill_time_to_first_token_seconds{alias}   arrival to first byte, answered requests
 *   slodrill_request_duration_seconds{alias}      arrival to end, every request
 *   slodrill_cost_usd_total{alias}                what the client's requests cost
 * Upstream attempts (a failure that failover rescued is one of these, never
 * an edge failure) have their own names:
 *   slodrill_upstream_attempts_total{deployment,class}   the core's classes
 *   slodrill_upstream_duration_seconds{deployment}       successful attempts
 *   slodrill_upstream_time_to_first_token_seconds{deployment}
 *   slodrill_tokens_total{deployment,type}               prompt, completion, cache_read, cache_write
 *   slodrill_upstream_cost_usd_total{deployment}
 * Label values come from the config only (a client's unknown model name is
 * counted under alias=""), so a client cannot grow the series. Every
 * alias x outcome pair is exported from the start at 0, so rate() has a
 * first sample. Buckets include the SLO's 2.5 s. docs/reports.md lists the
 * series; text format: https://prometheus.io/docs/instrumenting/exposition_formats/ */
#include "router/metrics.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "router/config.h"

static const double metrics_buckets[] = {0.05, 0.1, 0.25, 0.5, 1, 1.5, 2, 2.5, 5, 10, 30, 60};
#define METRICS_NB (sizeof metrics_buckets / sizeof metrics_buckets[0])

/* The run DB's outcome classes (DESIGN.md), then the client going away. */
static const char *const metrics_outcomes[] = {
    "ok", "retryable_error", "timeout", "client_error", "rejected_by_budget",
    "rate_limited", "served_from_cache", "cancelled"};
#define METRICS_NOUT (sizeof metrics_outcomes / sizeof metrics_outcomes[0])
#define METRICS_OUT_OK 0
#define METRICS_OUT_RETRYABLE 1
#define METRICS_OUT_CACHE 6

struct metrics_hist {
    uint64_t le[METRICS_NB]; /* per bucket, not cumulative */
    uint64_t count;
    double sum;
};

struct metrics_dep {
    uint64_t cls[CORE__CLASS_COUNT];
    struct metrics_hist duration, ttft;
    uint64_t tokens[4]; /* prompt, completion, cache_read, cache_write */
    double cost;
};

struct metrics_edge {
    uint64_t outcome[METRICS_NOUT];
    struct metrics_hist ttft, duration;
    double cost;
};

struct metrics {
    const struct router_config *cfg;
    struct metrics_dep *dep;
    const char **alias;         /* distinct model_name values, config order (borrowed) */
    size_t nalias;
    struct metrics_edge *edge;  /* nalias + 1: the last is alias="" (not in the config) */
};

static const char *const metrics_token_types[] = {"prompt", "completion", "cache_read",
                                                  "cache_write"};

struct metrics *metrics_new(const struct router_config *cfg)
{
    struct metrics *m = calloc(1, sizeof *m), *ret = NULL;
    size_t n = cfg->ndep ? cfg->ndep : 1, i, j;

    if (!m)
        goto out;
    m->cfg = cfg;
    if (!(m->dep = calloc(n, sizeof *m->dep)) || !(m->alias = calloc(n, sizeof *m->alias)))
        goto out;
    for (i = 0; i < cfg->ndep; i++) {
        for (j = 0; j < m->nalias; j++)
            if (!strcmp(m->alias[j], cfg->dep[i].alias))
                break;
        if (j == m->nalias)
            m->alias[m->nalias++] = cfg->dep[i].alias;
    }
    if (!(m->edge = calloc(m->nalias + 1, sizeof *m->edge)))
        goto out;
    ret = m;
    m = NULL;
out:
    metrics_free(m);
    return ret;
}

void metrics_free(struct metrics *m)
{
    if (!m)
        return;
    free(m->dep);
    free(m->alias);
    free(m->edge);
    free(m);
}

static void metrics_observe(struct metrics_hist *h, double v)
{
    size_t i;
    if (v < 0)
        v = 0;
    for (i = 0; i < METRICS_NB; i++)
        if (v <= metrics_buckets[i]) {
            h->le[i]++;
            break;
        }
    h->count++;
    h->sum += v;
}

void metrics_attempt(struct metrics *m, int dep, enum core_class cls, double duration_s,
                     double ttft_s, const struct metrics_usage *u, double cost)
{
    struct metrics_dep *d;
    if (!m || dep < 0 || (size_t)dep >= m->cfg->ndep || (unsigned)cls >= CORE__CLASS_COUNT)
        return;
    d = &m->dep[dep];
    d->cls[cls]++;
    if (cls == CORE_OK)
        metrics_observe(&d->duration, duration_s);
    if (ttft_s >= 0)
        metrics_observe(&d->ttft, ttft_s);
    if (u) {
        long v[4];
        size_t i;
        v[0] = u->prompt;
        v[1] = u->completion;
        v[2] = u->cache_read;
        v[3] = u->cache_write;
        for (i = 0; i < 4; i++)
            if (v[i] > 0)
                d->tokens[i] += (uint64_t)v[i];
    }
    if (cost > 0)
        d->cost += cost;
}

void metrics_request(struct metrics *m, const char *alias, const char *outcome, double ttft_s,
                     double duration_s, double cost)
{
    struct metrics_edge *e;
    size_t a, o;

    if (!m)
        return;
    for (a = 0; alias && a < m->nalias; a++)
        if (!strcmp(m->alias[a], alias))
            break;
    if (!alias)
        a = m->nalias;
    e = &m->edge[a];
    for (o = 0; outcome && o < METRICS_NOUT; o++)
        if (!strcmp(metrics_outcomes[o], outcome))
            break;
    if (!outcome || o == METRICS_NOUT)
        o = METRICS_OUT_RETRYABLE;
    e->outcome[o]++;
    if (ttft_s >= 0 && (o == METRICS_OUT_OK || o == METRICS_OUT_CACHE))
        metrics_observe(&e->ttft, ttft_s);
    if (duration_s >= 0)
        metrics_observe(&e->duration, duration_s);
    if (cost > 0)
        e->cost += cost;
}

/* A label value: names come from the config; escape \ " and newline anyway. */
static int metrics_label(struct buf *out, const char *s)
{
    int rc = 0;
    for (; *s && rc == 0; s++) {
        if (*s == '\\' || *s == '"')
            rc = buf_printf(out, "\\%c", *s);
        else if (*s == '\n')
            rc = buf_puts(out, "\\n");
        else
            rc = buf_append(out, s, 1);
    }
    return rc;
}

/* name{label="value" (the opening of a sample line; the caller closes it). */
static void metrics_open(struct buf *out, const char *name, const char *label, const char *value)
{
    (void)!buf_printf(out, "%s{%s=\"", name, label);
    (void)!metrics_label(out, value);
    (void)!buf_puts(out, "\"");
}

static void metrics_hist_render(struct buf *out, const char *name, const char *label,
                                const char *value, const struct metrics_hist *h)
{
    char n[128];
    uint64_t cum = 0;
    size_t i;

    snprintf(n, sizeof n, "%s_bucket", name);
    for (i = 0; i < METRICS_NB; i++) {
        cum += h->le[i];
        metrics_open(out, n, label, value);
        (void)!buf_printf(out, ",le=\"%g\"} %llu\n", metrics_buckets[i], (unsigned long long)cum);
    }
    metrics_open(out, n, label, value);
    (void)!buf_printf(out, ",le=\"+Inf\"} %llu\n", (unsigned long long)h->count);
    snprintf(n, sizeof n, "%s_sum", name);
    metrics_open(out, n, label, value);
    (void)!buf_printf(out, "} %.6f\n", h->sum);
    snprintf(n, sizeof n, "%s_count", name);
    metrics_open(out, n, label, value);
    (void)!buf_printf(out, "} %llu\n", (unsigned long long)h->count);
}

static void metrics_head(struct buf *out, const char *name, const char *type, const char *help)
{
    (void)!buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static uint64_t metrics_edge_total(const struct metrics_edge *e)
{
    uint64_t t = 0;
    size_t o;
    for (o = 0; o < METRICS_NOUT; o++)
        t += e->outcome[o];
    return t;
}

static void metrics_render_edge(const struct metrics *m, struct buf *out)
{
    /* the alias="" row only once something was counted there */
    size_t na = m->nalias + (metrics_edge_total(&m->edge[m->nalias]) ? 1 : 0), a, o;

    metrics_head(out, "slodrill_requests_total", "counter",
                 "Client requests at the router edge, counted once when they end, by model "
                 "alias and outcome (the run DB's classes; cancelled: the client went away).");
    for (a = 0; a < na; a++)
        for (o = 0; o < METRICS_NOUT; o++) {
            metrics_open(out, "slodrill_requests_total", "alias",
                         a < m->nalias ? m->alias[a] : "");
            (void)!buf_printf(out, ",outcome=\"%s\"} %llu\n", metrics_outcomes[o],
                              (unsigned long long)m->edge[a].outcome[o]);
        }
    metrics_head(out, "slodrill_time_to_first_token_seconds", "histogram",
                 "Client request arrival to its first byte sent, for answered requests "
                 "(ok, served_from_cache).");
    for (a = 0; a < na; a++)
        metrics_hist_render(out, "slodrill_time_to_first_token_seconds", "alias",
                            a < m->nalias ? m->alias[a] : "", &m->edge[a].ttft);
    metrics_head(out, "slodrill_request_duration_seconds", "histogram",
                 "Client request arrival to its end, every request.");
    for (a = 0; a < na; a++)
        metrics_hist_render(out, "slodrill_request_duration_seconds", "alias",
                            a < m->nalias ? m->alias[a] : "", &m->edge[a].duration);
    metrics_head(out, "slodrill_cost_usd_total", "counter",
                 "What client requests cost (usage times per-token prices), USD.");
    for (a = 0; a < na; a++) {
        metrics_open(out, "slodrill_cost_usd_total", "alias", a < m->nalias ? m->alias[a] : "");
        (void)!buf_printf(out, "} %.9f\n", m->edge[a].cost);
    }
}

static void metrics_render_upstream(const struct metrics *m, struct buf *out)
{
    const struct router_config *cfg = m->cfg;
    size_t i, t;
    int c;

    metrics_head(out, "slodrill_upstream_attempts_total", "counter",
                 "Upstream attempts by deployment and how they ended (the router core's "
                 "classes).");
    for (i = 0; i < cfg->ndep; i++)
        for (c = 0; c < CORE__CLASS_COUNT; c++) {
            metrics_open(out, "slodrill_upstream_attempts_total", "deployment", cfg->dep[i].id);
            (void)!buf_printf(out, ",class=\"%s\"} %llu\n", core_class_name((enum core_class)c),
                              (unsigned long long)m->dep[i].cls[c]);
        }
    metrics_head(out, "slodrill_upstream_duration_seconds", "histogram",
                 "Successful upstream attempts, start to last byte.");
    for (i = 0; i < cfg->ndep; i++)
        metrics_hist_render(out, "slodrill_upstream_duration_seconds", "deployment",
                            cfg->dep[i].id, &m->dep[i].duration);
    metrics_head(out, "slodrill_upstream_time_to_first_token_seconds", "histogram",
                 "Upstream attempt start to its first token.");
    for (i = 0; i < cfg->ndep; i++)
        metrics_hist_render(out, "slodrill_upstream_time_to_first_token_seconds", "deployment",
                            cfg->dep[i].id, &m->dep[i].ttft);
    metrics_head(out, "slodrill_tokens_total", "counter",
                 "Tokens in upstream answers, from their usage (prompt includes cache reads "
                 "and writes).");
    for (i = 0; i < cfg->ndep; i++)
        for (t = 0; t < 4; t++) {
            metrics_open(out, "slodrill_tokens_total", "deployment", cfg->dep[i].id);
            (void)!buf_printf(out, ",type=\"%s\"} %llu\n", metrics_token_types[t],
                              (unsigned long long)m->dep[i].tokens[t]);
        }
    metrics_head(out, "slodrill_upstream_cost_usd_total", "counter",
                 "Upstream answers' usage times per-token prices, USD, by deployment.");
    for (i = 0; i < cfg->ndep; i++) {
        metrics_open(out, "slodrill_upstream_cost_usd_total", "deployment", cfg->dep[i].id);
        (void)!buf_printf(out, "} %.9f\n", m->dep[i].cost);
    }
}

int metrics_render(const struct metrics *m, struct buf *out)
{
    /* Every append may fail once the buffer is full; buf_failed says so at the end. */
    metrics_render_edge(m, out);
    metrics_render_upstream(m, out);
    return buf_failed(out) ? -1 : 0;
}
