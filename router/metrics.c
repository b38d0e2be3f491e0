/* metrics.c -- per-deployment counters and histograms in Prometheus text format.
 *
 * slodrill_requests_total{deployment,outcome}: upstream attempts by how they
 * ended (the core's classes); slodrill_request_duration_seconds: successful
 * attempts, start to last byte; slodrill_time_to_first_token_seconds:
 * attempts that produced a first token; slodrill_tokens_total{type};
 * slodrill_cost_usd_total. Buckets include the SLO's 2.5 s. Text format:
 * https://prometheus.io/docs/instrumenting/exposition_formats/ */
#include "router/metrics.h"

#include <stdint.h>
#include <stdlib.h>

#include "common/buf.h"
#include "router/config.h"

static const double metrics_buckets[] = {0.05, 0.1, 0.25, 0.5, 1, 1.5, 2, 2.5, 5, 10, 30, 60};
#define METRICS_NB (sizeof metrics_buckets / sizeof metrics_buckets[0])

struct metrics_hist {
    uint64_t le[METRICS_NB]; /* per bucket, not cumulative */
    uint64_t count;
    double sum;
};

struct metrics_dep {
    uint64_t outcome[CORE__CLASS_COUNT];
    struct metrics_hist duration, ttft;
    uint64_t prompt_tokens, completion_tokens;
    double cost;
};

struct metrics {
    const struct router_config *cfg;
    struct metrics_dep *dep;
};

struct metrics *metrics_new(const struct router_config *cfg)
{
    struct metrics *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->cfg = cfg;
    m->dep = calloc(cfg->ndep ? cfg->ndep : 1, sizeof *m->dep);
    if (!m->dep) {
        free(m);
        return NULL;
    }
    return m;
}

void metrics_free(struct metrics *m)
{
    if (!m)
        return;
    free(m->dep);
    free(m);
}

static void metrics_observe(struct metrics_hist *h, double v)
{
    size_t i;
    for (i = 0; i < METRICS_NB; i++)
        if (v <= metrics_buckets[i]) {
            h->le[i]++;
            break;
        }
    h->count++;
    h->sum += v;
}

void metrics_attempt(struct metrics *m, int dep, enum core_class cls, double duration_s,
                     double ttft_s, long prompt_tokens, long completion_tokens, double cost)
{
    struct metrics_dep *d;
    if (!m || dep < 0 || (size_t)dep >= m->cfg->ndep || (unsigned)cls >= CORE__CLASS_COUNT)
        return;
    d = &m->dep[dep];
    d->outcome[cls]++;
    if (cls == CORE_OK)
        metrics_observe(&d->duration, duration_s);
    if (ttft_s >= 0)
        metrics_observe(&d->ttft, ttft_s);
    if (prompt_tokens > 0)
        d->prompt_tokens += (uint64_t)prompt_tokens;
    if (completion_tokens > 0)
        d->completion_tokens += (uint64_t)completion_tokens;
    if (cost > 0)
        d->cost += cost;
}

/* A label value: ids come from the config; escape \ " and newline anyway. */
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

static void metrics_hist_render(struct buf *out, const char *name, const char *dep,
                                const struct metrics_hist *h)
{
    uint64_t cum = 0;
    size_t i;
    for (i = 0; i < METRICS_NB; i++) {
        cum += h->le[i];
        (void)!buf_printf(out, "%s_bucket{deployment=\"", name);
        (void)!metrics_label(out, dep);
        (void)!buf_printf(out, "\",le=\"%g\"} %llu\n", metrics_buckets[i], (unsigned long long)cum);
    }
    (void)!buf_printf(out, "%s_bucket{deployment=\"", name);
    (void)!metrics_label(out, dep);
    (void)!buf_printf(out, "\",le=\"+Inf\"} %llu\n", (unsigned long long)h->count);
    (void)!buf_printf(out, "%s_sum{deployment=\"", name);
    (void)!metrics_label(out, dep);
    (void)!buf_printf(out, "\"} %.6f\n", h->sum);
    (void)!buf_printf(out, "%s_count{deployment=\"", name);
    (void)!metrics_label(out, dep);
    (void)!buf_printf(out, "\"} %llu\n", (unsigned long long)h->count);
}

int metrics_render(const struct metrics *m, struct buf *out)
{
    const struct router_config *cfg = m->cfg;
    size_t i;
    int c;

    /* Every append below may fail once the buffer is full; buf_failed says so at the end. */
    (void)!buf_puts(out, "# HELP slodrill_requests_total Upstream attempts by deployment and "
                         "how they ended.\n# TYPE slodrill_requests_total counter\n");
    for (i = 0; i < cfg->ndep; i++)
        for (c = 0; c < CORE__CLASS_COUNT; c++) {
            (void)!buf_puts(out, "slodrill_requests_total{deployment=\"");
            (void)!metrics_label(out, cfg->dep[i].id);
            (void)!buf_printf(out, "\",outcome=\"%s\"} %llu\n", core_class_name((enum core_class)c),
                              (unsigned long long)m->dep[i].outcome[c]);
        }
    (void)!buf_puts(out, "# HELP slodrill_request_duration_seconds Successful upstream attempts, "
                         "start to last byte.\n# TYPE slodrill_request_duration_seconds "
                         "histogram\n");
    for (i = 0; i < cfg->ndep; i++)
        metrics_hist_render(out, "slodrill_request_duration_seconds", cfg->dep[i].id,
                            &m->dep[i].duration);
    (void)!buf_puts(out, "# HELP slodrill_time_to_first_token_seconds Upstream attempt start to "
                         "its first token.\n# TYPE slodrill_time_to_first_token_seconds "
                         "histogram\n");
    for (i = 0; i < cfg->ndep; i++)
        metrics_hist_render(out, "slodrill_time_to_first_token_seconds", cfg->dep[i].id,
                            &m->dep[i].ttft);
    (void)!buf_puts(out, "# HELP slodrill_tokens_total Tokens in answers, from their usage.\n"
                         "# TYPE slodrill_tokens_total counter\n");
    for (i = 0; i < cfg->ndep; i++) {
        (void)!buf_puts(out, "slodrill_tokens_total{deployment=\"");
        (void)!metrics_label(out, cfg->dep[i].id);
        (void)!buf_printf(out, "\",type=\"prompt\"} %llu\n",
                          (unsigned long long)m->dep[i].prompt_tokens);
        (void)!buf_puts(out, "slodrill_tokens_total{deployment=\"");
        (void)!metrics_label(out, cfg->dep[i].id);
        (void)!buf_printf(out, "\",type=\"completion\"} %llu\n",
                          (unsigned long long)m->dep[i].completion_tokens);
    }
    (void)!buf_puts(out, "# HELP slodrill_cost_usd_total Usage times per-token prices, USD.\n"
                         "# TYPE slodrill_cost_usd_total counter\n");
    for (i = 0; i < cfg->ndep; i++) {
        (void)!buf_puts(out, "slodrill_cost_usd_total{deployment=\"");
        (void)!metrics_label(out, cfg->dep[i].id);
        (void)!buf_printf(out, "\"} %.9f\n", m->dep[i].cost);
    }
    return buf_failed(out) ? -1 : 0;
}
