/* slo.c -- SLIs, order-statistic intervals, failover timings and checks.
 *
 * DESIGN: everything here is a pure function of a loaded run (struct
 * run_data). Latency is measured from the intended start (open loop), a
 * failed request counts as infinitely slow, and percentiles are exact
 * nearest-rank order statistics. The uncertainty of a quantile comes from the
 * binomial distribution of how many samples fall below it: no assumption on
 * the latency distribution. The binomial CDF is summed from log-space terms
 * (lgamma), which stays accurate for n up to millions. docs/measurement.md
 * defines every figure in words. */
#include "reports/slo.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLO_TTR_WINDOW_US 5000000
#define SLO_TTR_STEP_US 100000
#define SLO_CONF 0.95
#define SLO_P 0.95

void slo_targets_unset(struct slo_targets *t)
{
    t->success_rate = -1;
    t->p95_latency_s = -1;
    t->avg_cost_usd = -1;
    t->window_days = -1;
    t->monthly_requests = -1;
}

void expectations_unset(struct expectations *e)
{
    e->failover_within_s = -1;
    e->success_rate_min = -1;
    e->p95_latency_s = -1;
    e->back_on_primary_within_s = -1;
    e->recover_within_s = -1;
    e->avg_cost_max_usd = -1;
}

/* ---- order statistics ---- */

/* ceil(p * n) without the rounding surprise of 0.95 * 200 = 190.00000000000003. */
static size_t nearest_rank(size_t n, double p)
{
    double x = p * (double)n;
    size_t k = (size_t)x;

    if ((double)k < x - 1e-9 * (x > 1 ? x : 1))
        k++;
    if (k < 1)
        k = 1;
    if (k > n)
        k = n;
    return k;
}

double slo_quantile_sorted(const double *v, size_t n, double p)
{
    if (v == NULL || n == 0 || !(p > 0) || p > 1)
        return NAN;
    return v[nearest_rank(n, p) - 1];
}

/* log P(B = k), B ~ Binomial(n, p), 0 < p < 1; lg_n1 = lgamma(n + 1). */
static double binom_logpmf(size_t n, size_t k, double p, double lg_n1)
{
    return lg_n1 - lgamma((double)k + 1) - lgamma((double)(n - k) + 1) +
           (double)k * log(p) + (double)(n - k) * log1p(-p);
}

/* Largest k in [0, n] with P(B <= k) <= a, or -1 when even P(B = 0) > a.
 * Summed from k = 0 upwards, stopping as soon as the CDF passes a. */
static long binom_lower_cut(size_t n, double p, double a)
{
    double lg = lgamma((double)n + 1), cdf = 0;
    long best = -1;
    size_t k;

    for (k = 0; k <= n; k++) {
        cdf += exp(binom_logpmf(n, k, p, lg));
        if (cdf > a * (1 + 1e-12))
            break;
        best = (long)k;
    }
    return best;
}

/* Smallest h in [0, n] with P(B >= h) <= a, or -1 when even P(B = n) > a.
 * Summed from the top so the small tail keeps its precision. */
static long binom_upper_cut(size_t n, double p, double a)
{
    double lg = lgamma((double)n + 1), tail = 0;
    long best = -1;
    size_t k = n + 1;

    while (k-- > 0) {
        tail += exp(binom_logpmf(n, k, p, lg));
        if (tail > a * (1 + 1e-12))
            break;
        best = (long)k;
    }
    return best;
}

int slo_quantile_ci_ranks(size_t n, double p, double conf, size_t *lo, size_t *hi)
{
    double a = (1 - conf) / 2;
    long l, h;
    int rc = -1;

    if (n == 0 || !(p > 0 && p < 1) || !(conf > 0 && conf < 1))
        goto out;
    /* With B = number of samples below the true quantile q:
     *   v(lo) <= q  <=>  B >= lo,    v(hi) >= q  <=>  B <= hi - 1,
     * so P(v(lo) <= q <= v(hi)) = P(lo <= B <= hi - 1). Leave out at most
     * a = (1 - conf) / 2 of probability on each side. */
    l = binom_lower_cut(n, p, a); /* P(B <= l) <= a: lo = l + 1 */
    h = binom_upper_cut(n, p, a); /* P(B >= h) <= a: hi = h */
    if (l < 0 || h < 1 || (size_t)(l + 1) > (size_t)h)
        goto out;
    *lo = (size_t)l + 1;
    *hi = (size_t)h;
    rc = 0;
out:
    return rc;
}

size_t slo_exceedances_allowed(size_t n, double p, double conf)
{
    long k;

    if (n == 0 || !(p > 0 && p < 1) || !(conf > 0 && conf < 1))
        return 0;
    /* If the true p-quantile were above T, each sample would exceed T with
     * probability at least 1 - p. Seeing at most k exceedances must then be
     * no likelier than 1 - conf: P(Binomial(n, 1 - p) <= k) <= 1 - conf. */
    k = binom_lower_cut(n, 1 - p, 1 - conf);
    return k < 0 ? 0 : (size_t)k;
}

size_t slo_min_samples(double p, double conf)
{
    double n;

    if (!(p > 0 && p < 1) || !(conf > 0 && conf < 1))
        return 0;
    /* Zero exceedances prove it once p^n <= 1 - conf. */
    n = ceil(log(1 - conf) / log(p) - 1e-9);
    return n < 1 ? 1 : (size_t)n;
}

/* ---- per-request figures ---- */

static int is_ok(enum outcome o)
{
    return o == OUTCOME_OK || o == OUTCOME_SERVED_FROM_CACHE;
}

/* When the response began for the user: first token, else first byte, else
 * the end; -1 when none is known. */
static int64_t response_us(const struct req_record *r)
{
    if (r->first_token_us >= 0)
        return r->first_token_us;
    if (r->first_byte_us >= 0)
        return r->first_byte_us;
    return r->end_us;
}

double slo_request_latency_s(const struct req_record *r)
{
    int64_t t;

    if (outcome_is_failure(r->outcome))
        return INFINITY;
    t = response_us(r);
    if (t < 0)
        return INFINITY;
    return (double)(t - r->intended_us) / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* Which requests a set of figures covers. */
struct span {
    int64_t from_us, to_us; /* intended start in [from, to) */
    int64_t ends_before;    /* and, when not INT64_MAX, over before this */
    int64_t live_from;      /* and, when not INT64_MIN, still running at this time */
};

/* When a request was last running: its end, else its intended start. */
static int64_t last_alive_us(const struct req_record *r)
{
    return r->end_us >= 0 ? r->end_us : r->intended_us;
}

static int in_span(const struct req_record *r, const struct span *sp)
{
    if (r->intended_us < sp->from_us || r->intended_us >= sp->to_us) return 0;
    if (sp->ends_before != INT64_MAX && last_alive_us(r) >= sp->ends_before) return 0;
    if (sp->live_from != INT64_MIN && last_alive_us(r) < sp->live_from) return 0;
    return 1;
}

static int figures(const struct run_data *d, const struct span *sp, double p95_target_s,
                   struct slo_figures *out);

int slo_figures_compute(const struct run_data *d, int64_t from_us, int64_t to_us,
                        double p95_target_s, struct slo_figures *out)
{
    struct span sp = {from_us, to_us, INT64_MAX, INT64_MIN};
    return figures(d, &sp, p95_target_s, out);
}

static int figures(const struct run_data *d, const struct span *sp, double p95_target_s,
                   struct slo_figures *out)
{
    double *lat = NULL, *cost = NULL, *gap = NULL, cost_sum = 0;
    size_t i, n = 0, nc = 0, ng = 0, lo, hi;
    int rc = -1;

    memset(out, 0, sizeof *out);
    out->success_rate = out->p50_s = out->p95_s = out->p99_s = -1;
    out->p95_lo_s = out->p95_hi_s = NAN;
    out->avg_cost_usd = out->p95_cost_usd = -1;
    out->start_gap_p99_s = -1;
    lat = malloc((d->nreq ? d->nreq : 1) * sizeof *lat);
    cost = malloc((d->nreq ? d->nreq : 1) * sizeof *cost);
    gap = malloc((d->nreq ? d->nreq : 1) * sizeof *gap);
    if (lat == NULL || cost == NULL || gap == NULL)
        goto out;
    for (i = 0; i < d->nreq; i++) {
        const struct req_record *r = &d->req[i];

        if (!in_span(r, sp))
            continue;
        out->total++;
        if (is_ok(r->outcome))
            out->ok++;
        if (outcome_is_failure(r->outcome))
            out->failures++;
        switch (r->outcome) {
        case OUTCOME_CLIENT_ERROR: out->client_errors++; break;
        case OUTCOME_TIMEOUT: out->timeouts++; break;
        case OUTCOME_RATE_LIMITED: out->rate_limited++; break;
        case OUTCOME_REJECTED_BY_BUDGET: out->rejected++; break;
        case OUTCOME_SERVED_FROM_CACHE:
            out->from_cache++;
            if (r->cache_hit == 2)
                out->stale++;
            break;
        default: break;
        }
        lat[n++] = slo_request_latency_s(r);
        /* A request that was not served and reported no cost was not
         * charged; a served one without a cost is unknown and left out. */
        if (r->cost_usd >= 0) {
            cost[nc++] = r->cost_usd;
            cost_sum += r->cost_usd;
        } else if (!is_ok(r->outcome)) {
            cost[nc++] = 0;
        }
        if (r->cost_usd >= 0)
            out->cost_reported++;
        if (r->started_us < 0) {
            out->dropped++;
        } else {
            int64_t g = r->started_us - r->intended_us;
            gap[ng++] = (double)g / 1e6;
            if (g > SLO_LATE_US)
                out->late++;
        }
    }
    if (ng > 0) {
        qsort(gap, ng, sizeof *gap, cmp_double);
        out->start_gap_p99_s = slo_quantile_sorted(gap, ng, 0.99);
    }
    if (n > 0) {
        qsort(lat, n, sizeof *lat, cmp_double);
        out->success_rate = 100.0 * (1.0 - (double)out->failures / (double)n);
        out->p50_s = slo_quantile_sorted(lat, n, 0.50);
        out->p95_s = slo_quantile_sorted(lat, n, SLO_P);
        out->p99_s = slo_quantile_sorted(lat, n, 0.99);
        if (slo_quantile_ci_ranks(n, SLO_P, SLO_CONF, &lo, &hi) == 0) {
            out->p95_lo_s = lat[lo - 1];
            out->p95_hi_s = lat[hi - 1];
        }
    }
    if (out->cost_reported > 0 && nc > 0) {
        qsort(cost, nc, sizeof *cost, cmp_double);
        out->avg_cost_usd = cost_sum / (double)nc;
        out->p95_cost_usd = slo_quantile_sorted(cost, nc, SLO_P);
        out->cost_counted = nc;
    }
    if (p95_target_s >= 0 && n > 0) {
        for (i = 0; i < n; i++)
            if (lat[i] > p95_target_s)
                out->over_target++;
        out->over_allowed = slo_exceedances_allowed(n, SLO_P, SLO_CONF);
        out->gate_possible = n >= slo_min_samples(SLO_P, SLO_CONF);
    }
    rc = 0;
out:
    free(lat);
    free(cost);
    free(gap);
    return rc;
}

/* ---- timings ---- */

static int64_t run_end_us(const struct run_data *d)
{
    int64_t end = 0;
    size_t i;

    if (d->duration_us >= 0)
        return d->duration_us;
    for (i = 0; i < d->nreq; i++) {
        if (d->req[i].end_us > end)
            end = d->req[i].end_us;
        if (d->req[i].intended_us > end)
            end = d->req[i].intended_us;
    }
    for (i = 0; i < d->nev; i++)
        if (d->ev[i].t_us > end)
            end = d->ev[i].t_us;
    return end;
}

/* A fault's identity: its subject and the first word of its detail (the
 * fault kind: "revoke_key", "http_error status=503" -> "http_error"). */
struct fault_key {
    char subject[64];
    char kind[32];
};

static void fault_key_of(const struct run_event *e, struct fault_key *k)
{
    size_t n = strcspn(e->detail, " ;(\t");

    snprintf(k->subject, sizeof k->subject, "%s", e->subject);
    if (n >= sizeof k->kind)
        n = sizeof k->kind - 1;
    memcpy(k->kind, e->detail, n);
    k->kind[n] = '\0';
}

#define SLO_MAX_ACTIVE_FAULTS 64

/* First fault_on; the fault_off that left no fault active, if that is the
 * state at the end of the run. A fault is on from its fault_on until a
 * fault_off with the same subject and kind (injecting the same fault twice
 * keeps one fault on); a fault_off whose kind matches nothing active clears
 * every fault of its subject. */
static void fault_span(const struct run_data *d, int64_t *first_on, int64_t *last_clear,
                       char *subject, size_t sublen)
{
    struct fault_key act[SLO_MAX_ACTIVE_FAULTS], k;
    size_t nact = 0, i, j;
    int overflow = 0;

    *first_on = -1;
    *last_clear = -1;
    subject[0] = '\0';
    for (i = 0; i < d->nev; i++) {
        const struct run_event *e = &d->ev[i];
        int on = strcmp(e->kind, "fault_on") == 0, off = strcmp(e->kind, "fault_off") == 0;

        if (!on && !off)
            continue;
        fault_key_of(e, &k);
        for (j = 0; j < nact; j++)
            if (strcmp(act[j].subject, k.subject) == 0 && strcmp(act[j].kind, k.kind) == 0)
                break;
        if (on) {
            if (*first_on < 0) {
                *first_on = e->t_us;
                snprintf(subject, sublen, "%s", e->subject);
            }
            if (j == nact) {
                if (nact < SLO_MAX_ACTIVE_FAULTS)
                    act[nact++] = k;
                else
                    overflow = 1;
            }
            continue;
        }
        if (nact == 0)
            continue; /* clearing what was not on */
        if (j < nact) {
            act[j] = act[--nact];
        } else {
            for (j = nact; j-- > 0;)
                if (strcmp(act[j].subject, k.subject) == 0)
                    act[j] = act[--nact];
        }
        if (nact == 0 && !overflow)
            *last_clear = e->t_us;
    }
    if (nact > 0 || overflow)
        *last_clear = -1;
}

struct tally {
    char name[64];
    size_t n;
};

/* The provider that served most ok requests with intended start < before_us. */
static void busiest_provider(const struct run_data *d, int64_t before_us, char *out,
                             size_t outlen)
{
    struct tally t[16];
    size_t nt = 0, i, j, best = 0;

    memset(t, 0, sizeof t);
    out[0] = '\0';
    for (i = 0; i < d->nreq; i++) {
        const struct req_record *r = &d->req[i];

        if (r->intended_us >= before_us || r->outcome != OUTCOME_OK || r->provider[0] == '\0')
            continue;
        for (j = 0; j < nt; j++)
            if (strncmp(t[j].name, r->provider, sizeof t[j].name) == 0)
                break;
        if (j == nt) {
            if (nt == sizeof t / sizeof t[0])
                continue; /* more providers than any drill has: ignore the rest */
            snprintf(t[nt].name, sizeof t[nt].name, "%s", r->provider);
            nt++;
        }
        t[j].n++;
    }
    for (j = 0; j < nt; j++)
        if (t[j].n > t[best].n)
            best = j;
    if (nt > 0)
        snprintf(out, outlen, "%s", t[best].name);
}

static int provider_seen(const struct run_data *d, const char *name)
{
    size_t i;

    for (i = 0; i < d->nreq; i++)
        if (strncmp(d->req[i].provider, name, sizeof d->req[i].provider) == 0)
            return 1;
    return 0;
}

struct point {
    int64_t t;
    int fail;
};

static int cmp_point(const void *a, const void *b)
{
    const struct point *x = a, *y = b;

    return (x->t > y->t) - (x->t < y->t);
}

/* TTR in us after fault_us, 0 when the rolling success rate never dropped
 * below thr, -1 when it was still below at the end. */
static int64_t time_to_recover(const struct run_data *d, int64_t fault_us, double thr,
                               int *err)
{
    struct point *p = NULL;
    size_t n = 0, i, head = 0, tail = 0, fails = 0;
    int64_t t, last_t, last_bad = -1, ttr = -1;

    *err = 0;
    p = malloc((d->nreq ? d->nreq : 1) * sizeof *p);
    if (p == NULL) {
        *err = 1;
        goto out;
    }
    for (i = 0; i < d->nreq; i++) {
        p[n].t = d->req[i].intended_us;
        p[n].fail = outcome_is_failure(d->req[i].outcome);
        n++;
    }
    qsort(p, n, sizeof *p, cmp_point);
    last_t = n > 0 ? p[n - 1].t : fault_us;
    if (last_t < fault_us)
        last_t = fault_us;
    /* Window (t - 5 s, t], stepped every 100 ms from the fault to the last
     * intended start; head/tail slide over the sorted points. */
    for (t = fault_us;; t += SLO_TTR_STEP_US) {
        int64_t now = t < last_t ? t : last_t;
        size_t total;

        while (head < n && p[head].t <= now)
            fails += (size_t)p[head++].fail;
        while (tail < head && p[tail].t <= now - SLO_TTR_WINDOW_US)
            fails -= (size_t)p[tail++].fail;
        total = head - tail;
        if (total > 0 && 100.0 * (1.0 - (double)fails / (double)total) < thr)
            last_bad = now;
        if (now >= last_t)
            break;
    }
    if (last_bad < 0)
        ttr = 0;
    else if (last_bad >= last_t)
        ttr = -1;
    else
        ttr = last_bad + SLO_TTR_STEP_US - fault_us;
    if (ttr > 0 && last_bad + SLO_TTR_STEP_US > last_t)
        ttr = last_t - fault_us;
out:
    free(p);
    return ttr;
}

/* ---- checks ---- */

struct checks {
    struct slo_check *v;
    size_t n, cap;
    int oom;
};

static void add_check(struct checks *c, const char *name, const char *phase,
                      enum check_verdict v, double measured, double target, const char *unit,
                      const char *fmt, ...) PRINTF_LIKE(8, 9);

static void add_check(struct checks *c, const char *name, const char *phase,
                      enum check_verdict v, double measured, double target, const char *unit,
                      const char *fmt, ...)
{
    struct slo_check *k;
    va_list ap;

    if (c->n == c->cap) {
        size_t ncap = c->cap ? c->cap * 2 : 16;
        struct slo_check *nv = realloc(c->v, ncap * sizeof *nv);
        if (nv == NULL) {
            c->oom = 1;
            return;
        }
        c->v = nv;
        c->cap = ncap;
    }
    k = &c->v[c->n++];
    memset(k, 0, sizeof *k);
    snprintf(k->name, sizeof k->name, "%s", name);
    snprintf(k->phase, sizeof k->phase, "%s", phase);
    k->verdict = v;
    k->measured = measured;
    k->target = target;
    snprintf(k->unit, sizeof k->unit, "%s", unit);
    va_start(ap, fmt);
    vsnprintf(k->detail, sizeof k->detail, fmt, ap);
    va_end(ap);
}

static double us_to_s(int64_t us)
{
    return (double)us / 1e6;
}

/* A duration bound: measured seconds (or < 0 when not observed) vs limit. */
static void check_within(struct checks *c, const char *name, const char *phase,
                         const char *what, double measured, double limit, const char *extra,
                         const char *unobserved)
{
    if (measured < 0)
        add_check(c, name, phase, CHECK_FAIL, NAN, limit, "s", "%s", unobserved);
    else if (measured <= limit)
        add_check(c, name, phase, CHECK_PASS, measured, limit, "s",
                  "%s took %.2f s%s, within %g s.", what, measured, extra, limit);
    else
        add_check(c, name, phase, CHECK_FAIL, measured, limit, "s",
                  "%s took %.2f s%s, %.2f s over the %g s limit.", what, measured, extra,
                  measured - limit, limit);
}

static void check_success_rate(struct checks *c, const char *name, const struct slo_figures *f,
                               double min)
{
    if (f->total == 0)
        add_check(c, name, "all", CHECK_FAIL, NAN, min, "%",
                  "No requests were recorded, so the success rate is unknown.");
    else if (f->success_rate >= min)
        add_check(c, name, "all", CHECK_PASS, f->success_rate, min, "%",
                  "Success rate was %.2f%% (%zu of %zu requests failed), at or above %g%%.",
                  f->success_rate, f->failures, f->total, min);
    else
        add_check(c, name, "all", CHECK_FAIL, f->success_rate, min, "%",
                  "Success rate was %.2f%% (%zu of %zu requests failed), %.2f points below "
                  "%g%%.",
                  f->success_rate, f->failures, f->total, min - f->success_rate, min);
}

static void fmt_latency(char *out, size_t outlen, double s)
{
    if (isnan(s))
        snprintf(out, outlen, "n/a");
    else if (isinf(s))
        snprintf(out, outlen, "failed");
    else
        snprintf(out, outlen, "%.2f s", s);
}

/* p95 <= target at 95% confidence, by counting exceedances. */
static void check_p95(struct checks *c, const char *name, const char *phase,
                      const struct slo_figures *f, double target, int few_is_fail)
{
    char p95[32], lo[32], hi[32], interval[96];
    size_t need = slo_min_samples(SLO_P, SLO_CONF);
    double measured = f->total > 0 && isfinite(f->p95_s) ? f->p95_s : NAN;

    fmt_latency(p95, sizeof p95, f->p95_s);
    fmt_latency(lo, sizeof lo, f->p95_lo_s);
    fmt_latency(hi, sizeof hi, f->p95_hi_s);
    if (isnan(f->p95_lo_s))
        snprintf(interval, sizeof interval, "too few samples for a 95%% interval");
    else
        snprintf(interval, sizeof interval, "95%% interval %s to %s", lo, hi);
    if (f->total == 0) {
        add_check(c, name, phase, few_is_fail ? CHECK_FAIL : CHECK_NOT_MEASURED, NAN, target,
                  "s", "No requests in this phase, so p95 could not be measured.");
    } else if (!f->gate_possible) {
        add_check(c, name, phase, few_is_fail ? CHECK_FAIL : CHECK_NOT_MEASURED, measured,
                  target, "s",
                  "p95 was %s over only %zu requests; at least %zu are needed to show p95 <= "
                  "%g s at 95%% confidence.",
                  p95, f->total, need, target);
    } else if (f->over_target <= f->over_allowed) {
        add_check(c, name, phase, CHECK_PASS, measured, target, "s",
                  "p95 was %s (%s); %zu of %zu requests took longer than %g s, and up to %zu "
                  "may.",
                  p95, interval, f->over_target, f->total, target, f->over_allowed);
    } else {
        add_check(c, name, phase, CHECK_FAIL, measured, target, "s",
                  "p95 was %s (%s); %zu of %zu requests took longer than %g s or failed, %zu "
                  "more than the %zu that still show p95 <= %g s at 95%% confidence.",
                  p95, interval, f->over_target, f->total, target,
                  f->over_target - f->over_allowed, f->over_allowed, target);
    }
}

static void check_cost(struct checks *c, const char *name, const struct slo_figures *f,
                       double max)
{
    if (f->avg_cost_usd < 0)
        add_check(c, name, "all", CHECK_NOT_MEASURED, NAN, max, "usd",
                  "No request reported its cost, so the average cost is unknown.");
    else if (f->avg_cost_usd <= max)
        add_check(c, name, "all", CHECK_PASS, f->avg_cost_usd, max, "usd",
                  "Average cost was $%.5f per request over %zu requests, within $%g.",
                  f->avg_cost_usd, f->cost_counted, max);
    else
        add_check(c, name, "all", CHECK_FAIL, f->avg_cost_usd, max, "usd",
                  "Average cost was $%.5f per request over %zu requests, $%.5f over the $%g "
                  "limit.",
                  f->avg_cost_usd, f->cost_counted, f->avg_cost_usd - max, max);
}

static const char *stop_detail(const struct run_data *d, int64_t *t)
{
    size_t i;

    for (i = 0; i < d->nev; i++) {
        if (strcmp(d->ev[i].kind, "stop") == 0) {
            *t = d->ev[i].t_us;
            return d->ev[i].detail[0] ? d->ev[i].detail : "a stop condition fired";
        }
    }
    *t = -1;
    return NULL;
}

static void build_checks(const struct run_data *d, const struct slo_targets *slo,
                         const struct expectations *exp, struct run_metrics *m,
                         const char *faulted, double ttr_thr, struct checks *c)
{
    char extra[128], msg[320];
    int64_t stop_t;
    const char *stop = stop_detail(d, &stop_t);
    double end_s = us_to_s(m->end_us);

    /* The run itself: a gate must not pass on half a run. */
    if (stop != NULL)
        add_check(c, "run_complete", "all", CHECK_FAIL, end_s, NAN, "s",
                  "The run was stopped at %.1f s: %s.", us_to_s(stop_t), stop);
    else if (strcmp(d->status, "complete") == 0)
        add_check(c, "run_complete", "all", CHECK_PASS, end_s, NAN, "s",
                  "The run completed (%.1f s, %zu requests).", end_s, d->nreq);
    else if (strcmp(d->status, "incomplete") == 0)
        add_check(c, "run_complete", "all", CHECK_FAIL, end_s, NAN, "s",
                  "The run never finished: its data ends at %.1f s (%zu requests).", end_s,
                  d->nreq);
    else
        add_check(c, "run_complete", "all", CHECK_FAIL, end_s, NAN, "s",
                  "The run ended with status %s at %.1f s (%zu requests).", d->status, end_s,
                  d->nreq);

    if (exp->failover_within_s >= 0) {
        if (m->first_fault_us < 0)
            snprintf(msg, sizeof msg, "No fault was injected, so failover could not be timed.");
        else
            snprintf(msg, sizeof msg,
                     "No request that started after the fault at %.1f s was served by a "
                     "provider other than %s within the run.",
                     us_to_s(m->first_fault_us), faulted[0] ? faulted : "the faulted one");
        snprintf(extra, sizeof extra, " (to %s)", m->failover_to);
        check_within(c, "failover_within", "during", "Failover", m->ttf_s,
                     exp->failover_within_s, extra, msg);
    }
    if (exp->success_rate_min >= 0)
        check_success_rate(c, "success_rate_min", &m->all, exp->success_rate_min);
    if (exp->p95_latency_s >= 0)
        check_p95(c, "p95_latency", "all", &m->all, exp->p95_latency_s, 1);
    if (exp->back_on_primary_within_s >= 0) {
        if (m->first_fault_us < 0)
            snprintf(msg, sizeof msg,
                     "No fault was injected, so the return to the primary could not be timed.");
        else if (m->last_clear_us < 0)
            snprintf(msg, sizeof msg,
                     "The fault was never cleared within the run, so the return to the primary "
                     "could not be timed.");
        else if (m->primary[0] == '\0')
            snprintf(msg, sizeof msg,
                     "No provider served a request before the fault, so there is no primary "
                     "to return to.");
        else
            snprintf(msg, sizeof msg,
                     "%s served no request that started after the fault was cleared at %.1f s "
                     "(%.1f s of run left): not observed within the run.",
                     m->primary, us_to_s(m->last_clear_us),
                     us_to_s(m->end_us - m->last_clear_us));
        snprintf(extra, sizeof extra, " (first token from %s after the clear)",
                 m->primary[0] ? m->primary : "the primary");
        check_within(c, "back_on_primary_within", "after", "Return to the primary",
                     m->back_on_primary_s, exp->back_on_primary_within_s, extra, msg);
    }
    if (exp->recover_within_s >= 0) {
        if (m->first_fault_us < 0)
            snprintf(msg, sizeof msg, "No fault was injected, so recovery could not be timed.");
        else if (ttr_thr < 0)
            snprintf(msg, sizeof msg,
                     "No success-rate target is set, so there is nothing to recover to.");
        else
            snprintf(msg, sizeof msg,
                     "The rolling 5 s success rate did not get back to %g%% and stay there "
                     "before the run ended: not observed within the run.",
                     ttr_thr);
        snprintf(extra, sizeof extra, " (rolling 5 s success rate back to %g%%)", ttr_thr);
        check_within(c, "recover_within", "during", "Recovery", m->ttr_s,
                     exp->recover_within_s, extra, msg);
    }
    if (exp->avg_cost_max_usd >= 0)
        check_cost(c, "avg_cost_max", &m->all, exp->avg_cost_max_usd);

    if (slo->success_rate >= 0)
        check_success_rate(c, "slo_success_rate", &m->all, slo->success_rate);
    if (slo->p95_latency_s >= 0) {
        check_p95(c, "slo_p95_latency", "all", &m->all, slo->p95_latency_s, 1);
        if (m->first_fault_us >= 0) {
            /* Per phase: latency must hold before the fault and after the
             * clear; during the fault the failover checks speak. */
            check_p95(c, "slo_p95_latency", "before", &m->before, slo->p95_latency_s, 0);
            if (m->last_clear_us >= 0)
                check_p95(c, "slo_p95_latency", "after", &m->after, slo->p95_latency_s, 0);
        }
    }
    if (slo->avg_cost_usd >= 0)
        check_cost(c, "slo_avg_cost", &m->all, slo->avg_cost_usd);
}

int slo_metrics_compute(const struct run_data *d, const struct slo_targets *slo,
                        const struct expectations *exp, struct run_metrics *out)
{
    struct slo_targets noslo;
    struct expectations noexp;
    struct checks c = {0};
    char faulted[64];
    double p95t, ttr_thr;
    int64_t to_before, ttr;
    size_t i;
    int rc = -1, err = 0;

    memset(out, 0, sizeof *out);
    out->ttf_s = out->ttr_s = out->back_on_primary_s = -1;
    out->budget_allowed_reqs = out->budget_spent_reqs = out->budget_spent_pct = -1;
    if (d == NULL)
        goto out;
    if (slo == NULL) {
        slo_targets_unset(&noslo);
        slo = &noslo;
    }
    if (exp == NULL) {
        expectations_unset(&noexp);
        exp = &noexp;
    }
    out->incomplete = strcmp(d->status, "incomplete") == 0;
    out->end_us = run_end_us(d);
    fault_span(d, &out->first_fault_us, &out->last_clear_us, faulted, sizeof faulted);
    for (i = 0; i < d->nev; i++)
        if (strcmp(d->ev[i].kind, "stop") == 0)
            out->stopped = 1;

    p95t = slo->p95_latency_s >= 0 ? slo->p95_latency_s : exp->p95_latency_s;
    to_before = out->first_fault_us >= 0 ? out->first_fault_us : INT64_MAX;
    /* Phases: "before" holds requests over before the first fault began;
     * "during" every request alive at some point between the first fault
     * and the last clear (a request in flight when a fault strikes feels
     * it); "after" those that started after the last clear. */
    {
        struct span before = {INT64_MIN, to_before, to_before, INT64_MIN};
        if (slo_figures_compute(d, INT64_MIN, INT64_MAX, p95t, &out->all) != 0 ||
            figures(d, &before, p95t, &out->before) != 0)
            goto out;
    }
    if (out->first_fault_us >= 0) {
        int64_t to = out->last_clear_us >= 0 ? out->last_clear_us : INT64_MAX;
        struct span during = {INT64_MIN, to, INT64_MAX, out->first_fault_us};
        if (figures(d, &during, p95t, &out->during) != 0)
            goto out;
    } else if (slo_figures_compute(d, 0, 0, p95t, &out->during) != 0) {
        goto out;
    }
    if (out->last_clear_us >= 0) {
        if (slo_figures_compute(d, out->last_clear_us, INT64_MAX, p95t, &out->after) != 0)
            goto out;
    } else if (slo_figures_compute(d, 0, 0, p95t, &out->after) != 0) {
        goto out;
    }

    busiest_provider(d, to_before, out->primary, sizeof out->primary);
    /* The faulted provider is the fault's subject when it served anything,
     * else the primary. */
    if (faulted[0] == '\0' || !provider_seen(d, faulted))
        snprintf(faulted, sizeof faulted, "%s", out->primary);
    snprintf(out->faulted, sizeof out->faulted, "%s", faulted);

    if (out->first_fault_us >= 0) {
        int64_t best = -1;

        for (i = 0; i < d->nreq; i++) {
            const struct req_record *r = &d->req[i];
            int64_t t = response_us(r);

            if (r->intended_us < out->first_fault_us || r->outcome != OUTCOME_OK ||
                r->provider[0] == '\0' || t < 0 ||
                strncmp(r->provider, faulted, sizeof r->provider) == 0)
                continue;
            if (best < 0 || t < best) {
                best = t;
                snprintf(out->failover_to, sizeof out->failover_to, "%s", r->provider);
            }
        }
        if (best >= 0)
            out->ttf_s = us_to_s(best - out->first_fault_us);
    }

    ttr_thr = slo->success_rate >= 0 ? slo->success_rate : exp->success_rate_min;
    out->ttr_target = ttr_thr;
    if (out->first_fault_us >= 0 && ttr_thr >= 0) {
        ttr = time_to_recover(d, out->first_fault_us, ttr_thr, &err);
        if (err)
            goto out;
        if (ttr >= 0)
            out->ttr_s = us_to_s(ttr);
    }

    if (out->last_clear_us >= 0 && out->primary[0] != '\0') {
        int64_t best = -1;

        for (i = 0; i < d->nreq; i++) {
            const struct req_record *r = &d->req[i];
            int64_t t = response_us(r);

            if (r->intended_us < out->last_clear_us || r->outcome != OUTCOME_OK || t < 0 ||
                strncmp(r->provider, out->primary, sizeof r->provider) != 0)
                continue;
            if (best < 0 || t < best)
                best = t;
        }
        if (best >= 0)
            out->back_on_primary_s = us_to_s(best - out->last_clear_us);
    }

    if (slo->success_rate >= 0 && slo->monthly_requests >= 0) {
        out->budget_allowed_reqs = (1.0 - slo->success_rate / 100.0) * slo->monthly_requests;
        if (out->all.total > 0) {
            out->budget_spent_reqs =
                (double)out->all.failures / (double)out->all.total * slo->monthly_requests;
            if (out->budget_allowed_reqs > 0)
                out->budget_spent_pct = 100.0 * out->budget_spent_reqs / out->budget_allowed_reqs;
            else
                out->budget_spent_pct = out->budget_spent_reqs > 0 ? INFINITY : 0;
        }
    }

    build_checks(d, slo, exp, out, faulted, ttr_thr, &c);
    if (c.oom)
        goto out;
    out->checks = c.v;
    out->nchecks = c.n;
    c.v = NULL;
    out->passed = 1;
    for (i = 0; i < out->nchecks; i++)
        if (out->checks[i].verdict == CHECK_FAIL)
            out->passed = 0;
    rc = 0;
out:
    free(c.v);
    return rc;
}

void slo_metrics_free(struct run_metrics *m)
{
    if (m == NULL)
        return;
    free(m->checks);
    m->checks = NULL;
    m->nchecks = 0;
}
