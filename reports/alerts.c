/* alerts.c -- Prometheus alerting rules for an SLO, and a promtool test built from a run.
 *
 * DESIGN: the rules are text with the SLO's numbers in them. The test file
 * needs the alerts a run would fire, so this file carries a small evaluator
 * of exactly the expressions it writes, following Prometheus 2's semantics:
 * rate() extrapolates the increase between the first and last sample of the
 * window towards its edges (and not below a counter's zero), sum() adds the
 * per-series rates, histogram_quantile() interpolates linearly inside the
 * bucket where the rank falls, and an alert is pending from the first
 * evaluation where its expression has a result and firing once that has
 * lasted its for: duration. Samples sit at half past each minute, so no
 * sample is ever on a window's edge: the result is the same whether the edge
 * is inclusive (Prometheus 2) or not (Prometheus 3). A prediction within
 * 1e-9 of its threshold is not asserted (floating-point order could tip it). */
#include "reports/alerts.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>


/* The router's histogram buckets (router/metrics.c, docs/reports.md); the
 * test's series use the same so the rules see what production would. The
 * series names below are the router's edge series, written out here and
 * there (the two modules share no header): tests/e2e_alerts.sh runs these
 * rules over a real scrape. */
static const double alerts_le[] = {0.05, 0.1, 0.25, 0.5, 1, 1.5, 2, 2.5, 5, 10, 30, 60};
#define NLE (sizeof alerts_le / sizeof alerts_le[0])
#define FAIL_RE "retryable_error|timeout|rate_limited"
#define ALERTS_MAX_MINUTES 100000

static void set_err(char *err, size_t errlen, const char *fmt, ...) PRINTF_LIKE(3, 4);

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0 || err[0] != '\0')
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---- the SLO ---- */

void alerts_spec_init(struct alerts_spec *out, const char *name, const struct slo_targets *t)
{
    const char *b = name != NULL ? strrchr(name, '/') : NULL;
    size_t i;

    memset(out, 0, sizeof *out);
    out->slo = *t;
    if (b != NULL)
        name = b + 1;
    for (i = 0; name != NULL && name[i] != '\0' && i + 1 < sizeof out->name; i++)
        out->name[i] = isalnum((unsigned char)name[i]) || name[i] == '_' || name[i] == '-' ||
                               name[i] == '.'
                           ? name[i]
                           : '-';
    out->name[i] = '\0';
    if (out->name[0] == '\0')
        snprintf(out->name, sizeof out->name, "slo");
}

/* ---- the rules ---- */

enum alert_id { A_P95, A_SR, A_COST, A_BURN_FAST, A_BURN_SLOW };

struct alert_def {
    const char *name;
    int for_min;
    char expr[1024];
    char summary[256];
    char description[512];
    int set;
};

/* error ratio over window w: failed / all requests */
static void err_ratio(char *out, size_t outlen, const char *w)
{
    snprintf(out, outlen,
             "((sum(rate(slodrill_requests_total{outcome=~\"" FAIL_RE "\"}[%s])) or vector(0)) "
             "/ sum(rate(slodrill_requests_total[%s])))",
             w, w);
}

static void alert_defs(const struct alerts_spec *s, struct alert_def *a)
{
    const struct slo_targets *t = &s->slo;
    double budget = t->success_rate >= 0 ? 1 - t->success_rate / 100 : -1;
    char r1[256], r2[256];

    memset(a, 0, ALERTS_MAX * sizeof *a);
    a[A_P95].name = "SlodrillLatencyP95High";
    a[A_P95].for_min = 15;
    a[A_P95].set = t->p95_latency_s > 0;
    snprintf(a[A_P95].expr, sizeof a[A_P95].expr,
             "histogram_quantile(0.95, sum by (le) "
             "(rate(slodrill_time_to_first_token_seconds_bucket[5m]))) > %.17g",
             t->p95_latency_s);
    snprintf(a[A_P95].summary, sizeof a[A_P95].summary,
             "p95 time to first token above %g s for 15 minutes", t->p95_latency_s);
    snprintf(a[A_P95].description, sizeof a[A_P95].description,
             "SLO %s promises p95 latency under %g s; the last 5 minutes have been over it "
             "for 15 minutes.", s->name, t->p95_latency_s);

    a[A_SR].name = "SlodrillSuccessRateLow";
    a[A_SR].for_min = 5;
    a[A_SR].set = t->success_rate >= 0;
    err_ratio(r1, sizeof r1, "5m");
    snprintf(a[A_SR].expr, sizeof a[A_SR].expr, "100 * (1 - %s) < %.17g", r1, t->success_rate);
    snprintf(a[A_SR].summary, sizeof a[A_SR].summary,
             "success rate below %g%% for 5 minutes", t->success_rate);
    snprintf(a[A_SR].description, sizeof a[A_SR].description,
             "SLO %s promises %g%% of requests succeed; failures are outcomes " FAIL_RE ".",
             s->name, t->success_rate);

    a[A_COST].name = "SlodrillCostPerRequestHigh";
    a[A_COST].for_min = 15;
    a[A_COST].set = t->avg_cost_usd > 0;
    snprintf(a[A_COST].expr, sizeof a[A_COST].expr,
             "sum(rate(slodrill_cost_usd_total[15m])) / sum(rate(slodrill_requests_total[15m])) "
             "> %.17g",
             t->avg_cost_usd);
    snprintf(a[A_COST].summary, sizeof a[A_COST].summary,
             "average cost per request above $%g for 15 minutes", t->avg_cost_usd);
    snprintf(a[A_COST].description, sizeof a[A_COST].description,
             "SLO %s budgets $%g per request on average; the last 15 minutes have been over "
             "it for 15 minutes.", s->name, t->avg_cost_usd);

    /* Google SRE workbook, "Alerting on SLOs", multiwindow multi-burn-rate. */
    a[A_BURN_FAST].name = "SlodrillErrorBudgetBurnFast";
    a[A_BURN_FAST].set = budget > 0;
    err_ratio(r1, sizeof r1, "1h");
    err_ratio(r2, sizeof r2, "5m");
    snprintf(a[A_BURN_FAST].expr, sizeof a[A_BURN_FAST].expr, "(%s > %.17g) and (%s > %.17g)",
             r1, 14.4 * budget, r2, 14.4 * budget);
    snprintf(a[A_BURN_FAST].summary, sizeof a[A_BURN_FAST].summary,
             "error budget burning 14.4 times too fast (1 h and 5 min)");
    snprintf(a[A_BURN_FAST].description, sizeof a[A_BURN_FAST].description,
             "At this rate SLO %s's budget of %g%% failures is gone in about 2 days of a 30-day "
             "window.", s->name, budget * 100);
    a[A_BURN_SLOW].name = "SlodrillErrorBudgetBurnSlow";
    a[A_BURN_SLOW].set = budget > 0;
    err_ratio(r1, sizeof r1, "6h");
    err_ratio(r2, sizeof r2, "30m");
    snprintf(a[A_BURN_SLOW].expr, sizeof a[A_BURN_SLOW].expr, "(%s > %.17g) and (%s > %.17g)",
             r1, 6 * budget, r2, 6 * budget);
    snprintf(a[A_BURN_SLOW].summary, sizeof a[A_BURN_SLOW].summary,
             "error budget burning 6 times too fast (6 h and 30 min)");
    snprintf(a[A_BURN_SLOW].description, sizeof a[A_BURN_SLOW].description,
             "At this rate SLO %s's budget of %g%% failures is gone in 5 days of a 30-day "
             "window.", s->name, budget * 100);
}

/* A YAML double-quoted scalar. */
static void yq(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void write_labels(FILE *f, const struct alerts_spec *s, const struct alert_def *a,
                         const char *indent)
{
    fprintf(f, "%sseverity: page\n%sslo: ", indent, indent);
    yq(f, s->name);
    fprintf(f, "\n");
    (void)a;
}

int alerts_write_rules(FILE *f, const struct alerts_spec *s, const char *source, char *err,
                       size_t errlen)
{
    struct alert_def a[ALERTS_MAX];
    int i, any = 0;

    alert_defs(s, a);
    for (i = 0; i < ALERTS_MAX; i++)
        any |= a[i].set;
    if (!any) {
        set_err(err, errlen, "the SLO sets none of success_rate (below 100), p95_latency_s, "
                             "avg_cost_usd: nothing to alert on");
        return -1;
    }
    fprintf(f, "# Prometheus alerting rules for SLO \"%s\", written by slodrill alerts from %s.\n"
               "# Series (the router's /metrics, the edge: one count per client request):\n"
               "# slodrill_requests_total{outcome}, slodrill_time_to_first_token_seconds_bucket{le},\n"
               "# slodrill_cost_usd_total; other labels (alias) are summed away.\n"
               "# Failures are outcomes " FAIL_RE ". Burn-rate pairs from the\n"
               "# Google SRE workbook (14.4x over 1h and 5m; 6x over 6h and 30m, for a 30-day "
               "window).\n"
               "# Check with: promtool check rules FILE\n"
               "groups:\n  - name: slodrill-slo-%s\n    rules:\n",
            s->name, source, s->name);
    for (i = 0; i < ALERTS_MAX; i++) {
        if (!a[i].set)
            continue;
        fprintf(f, "      - alert: %s\n        expr: ", a[i].name);
        yq(f, a[i].expr);
        fputc('\n', f);
        if (a[i].for_min > 0)
            fprintf(f, "        for: %dm\n", a[i].for_min);
        fprintf(f, "        labels:\n");
        write_labels(f, s, &a[i], "          ");
        fprintf(f, "        annotations:\n          summary: ");
        yq(f, a[i].summary);
        fprintf(f, "\n          description: ");
        yq(f, a[i].description);
        fputc('\n', f);
    }
    if (ferror(f)) {
        set_err(err, errlen, "write error");
        return -1;
    }
    return 0;
}

/* ---- the run as series ---- */

/* Series values: sample i sits at (i + 0.5) minutes and holds what had
 * ended by run time (i + 0.5) seconds. */
struct series {
    size_t n;                        /* samples */
    double *out[OUTCOME__COUNT];     /* requests_total by outcome */
    double *le[NLE + 1];             /* cumulative buckets; the last is +Inf */
    double *cost;
};

static void series_free(struct series *s)
{
    size_t i;

    for (i = 0; i < OUTCOME__COUNT; i++)
        free(s->out[i]);
    for (i = 0; i <= NLE; i++)
        free(s->le[i]);
    free(s->cost);
}

static int series_build(const struct run_data *d, struct series *s)
{
    int64_t end = d->duration_us > 0 ? d->duration_us : 0;
    size_t i, j;

    memset(s, 0, sizeof *s);
    for (i = 0; i < d->nreq; i++)
        if (d->req[i].end_us > end)
            end = d->req[i].end_us;
    s->n = (size_t)(end / 1000000) + 2;
    if (s->n > ALERTS_MAX_MINUTES)
        return -1;
    for (i = 0; i < OUTCOME__COUNT; i++)
        if ((s->out[i] = calloc(s->n, sizeof(double))) == NULL)
            return -1;
    for (i = 0; i <= NLE; i++)
        if ((s->le[i] = calloc(s->n, sizeof(double))) == NULL)
            return -1;
    if ((s->cost = calloc(s->n, sizeof(double))) == NULL)
        return -1;
    /* increments at the first sample at or after each request's end */
    for (i = 0; i < d->nreq; i++) {
        const struct req_record *r = &d->req[i];
        int64_t t = r->end_us >= 0 ? r->end_us : r->intended_us;
        size_t k = t <= 500000 ? 0 : (size_t)ceil(((double)t - 500000) / 1e6);
        double lat;

        if (k >= s->n)
            k = s->n - 1;
        if ((unsigned)r->outcome < OUTCOME__COUNT)
            s->out[r->outcome][k] += 1;
        if (r->cost_usd > 0)
            s->cost[k] += r->cost_usd;
        if (r->outcome == OUTCOME_OK || r->outcome == OUTCOME_SERVED_FROM_CACHE) {
            lat = slo_request_latency_s(r);
            if (isfinite(lat)) {
                for (j = 0; j < NLE; j++)
                    if (lat <= alerts_le[j])
                        s->le[j][k] += 1;
                s->le[NLE][k] += 1;
            }
        }
    }
    for (i = 1; i < s->n; i++) { /* to cumulative counters */
        for (j = 0; j < OUTCOME__COUNT; j++)
            s->out[j][i] += s->out[j][i - 1];
        for (j = 0; j <= NLE; j++)
            s->le[j][i] += s->le[j][i - 1];
        s->cost[i] += s->cost[i - 1];
    }
    return 0;
}

/* ---- Prometheus 2 semantics for what the rules use ---- */

/* rate(v[w]) evaluated at minute k: samples i with (i + 0.5) in [k - w, k].
 * 0 with *out, or -1 when there is no result (fewer than two samples). */
static int prom_rate(const double *v, size_t n, long k, long w, double *out)
{
    long lo = k - w, hi = k - 1, i;
    double first, last, result, start, endd, sampled, avg, thr, ext, dzero;

    if (lo < 0)
        lo = 0;
    if (hi > (long)n - 1)
        hi = (long)n - 1;
    if (hi - lo + 1 < 2)
        return -1;
    first = v[lo];
    last = v[hi];
    result = last - first;
    {
        double lastv = 0;
        for (i = lo; i <= hi; i++) { /* counter resets (none here, but as Prometheus does) */
            if (v[i] < lastv)
                result += lastv;
            lastv = v[i];
        }
    }
    start = ((double)lo + 0.5) * 60 - (double)(k - w) * 60; /* seconds from range start */
    endd = (double)k * 60 - ((double)hi + 0.5) * 60;
    sampled = (double)(hi - lo) * 60;
    avg = sampled / (double)(hi - lo);
    if (result > 0 && first >= 0) {
        dzero = sampled * (first / result);
        if (dzero < start)
            start = dzero;
    }
    thr = avg * 1.1;
    ext = sampled;
    ext += start < thr ? start : avg / 2;
    ext += endd < thr ? endd : avg / 2;
    result = result * (ext / sampled);
    *out = result / ((double)w * 60);
    return 0;
}

/* sum(rate(...)) over the given series: -1 when none has a result. */
static int prom_sum_rate(double *const *v, size_t nv, size_t n, long k, long w, double *out)
{
    size_t i;
    double sum = 0, r;
    int any = 0;

    for (i = 0; i < nv; i++) {
        if (prom_rate(v[i], n, k, w, &r) == 0) {
            sum += r;
            any = 1;
        }
    }
    *out = sum;
    return any ? 0 : -1;
}

/* The error ratio expression: -1 when it has no result. */
static int prom_err_ratio(const struct series *s, long k, long w, double *out)
{
    double *fail[3] = {s->out[OUTCOME_RETRYABLE_ERROR], s->out[OUTCOME_TIMEOUT],
                       s->out[OUTCOME_RATE_LIMITED]};
    double f, t;

    if (prom_sum_rate(fail, 3, s->n, k, w, &f) != 0)
        f = 0; /* or vector(0) */
    if (prom_sum_rate(s->out, OUTCOME__COUNT, s->n, k, w, &t) != 0)
        return -1;
    *out = f / t;
    return 0;
}

/* histogram_quantile(q, buckets) as Prometheus 2 computes it for classic
 * buckets (bucketQuantile): NAN when it cannot. */
static double prom_bucket_quantile(double q, const double *count)
{
    double c[NLE + 1], maxc = -INFINITY, rank, start = 0, cnt;
    size_t i, b;

    for (i = 0; i <= NLE; i++) { /* ensureMonotonic */
        c[i] = count[i];
        if (c[i] > maxc)
            maxc = c[i];
        else if (c[i] < maxc)
            c[i] = maxc;
    }
    if (c[NLE] == 0 || isnan(c[NLE]))
        return NAN;
    rank = q * c[NLE];
    for (b = 0; b < NLE; b++) /* sort.Search over all but +Inf */
        if (c[b] >= rank)
            break;
    if (b == NLE)
        return alerts_le[NLE - 1];
    if (b == 0 && alerts_le[0] <= 0)
        return alerts_le[0];
    cnt = c[b];
    if (b > 0) {
        start = alerts_le[b - 1];
        cnt -= c[b - 1];
        rank -= c[b - 1];
    }
    return start + (alerts_le[b] - start) * (rank / cnt);
}

static int near(double a, double b)
{
    double m = fabs(b) > 1 ? fabs(b) : 1;
    return fabs(a - b) <= 1e-9 * m;
}

/* Does alert a's expression have a result at minute k? *close is set when a
 * compared value sits within rounding of its threshold. */
static int alert_true(const struct alerts_spec *sp, const struct series *s, int a, long k,
                      int *close)
{
    const struct slo_targets *t = &sp->slo;
    double budget = 1 - t->success_rate / 100, x, y, rates[NLE + 1];
    size_t i;

    switch (a) {
    case A_P95:
        for (i = 0; i <= NLE; i++)
            if (prom_rate(s->le[i], s->n, k, 5, &rates[i]) != 0)
                return 0;
        x = prom_bucket_quantile(0.95, rates);
        if (isnan(x))
            return 0;
        *close |= near(x, t->p95_latency_s);
        return x > t->p95_latency_s;
    case A_SR:
        if (prom_err_ratio(s, k, 5, &x) != 0)
            return 0;
        x = 100 * (1 - x);
        if (isnan(x))
            return 0;
        *close |= near(x, t->success_rate);
        return x < t->success_rate;
    case A_COST:
        if (prom_sum_rate(&s->cost, 1, s->n, k, 15, &x) != 0 ||
            prom_sum_rate(s->out, OUTCOME__COUNT, s->n, k, 15, &y) != 0)
            return 0;
        x = x / y;
        if (isnan(x))
            return 0;
        *close |= near(x, t->avg_cost_usd);
        return x > t->avg_cost_usd;
    default: {
        long wl = a == A_BURN_FAST ? 60 : 360, ws = a == A_BURN_FAST ? 5 : 30;
        double f = a == A_BURN_FAST ? 14.4 : 6;
        if (prom_err_ratio(s, k, wl, &x) != 0 || prom_err_ratio(s, k, ws, &y) != 0)
            return 0;
        if (isnan(x) || isnan(y))
            return 0;
        *close |= near(x, f * budget) || near(y, f * budget);
        return x > f * budget && y > f * budget;
    }
    }
}

static void write_values(FILE *f, const double *v, size_t n)
{
    size_t i;

    fputs("'", f);
    for (i = 0; i < n; i++)
        fprintf(f, "%s_ %.17g", i ? " " : "", v[i]);
    fputs("'", f);
}

int alerts_write_test(FILE *f, const struct alerts_spec *sp, const struct run_data *d,
                      const char *rules_file, struct alerts_result *res, char *err,
                      size_t errlen)
{
    struct alert_def a[ALERTS_MAX];
    struct series s;
    int *firing = NULL, *doubt = NULL;
    size_t i, j, nmin, step;
    int rc = -1, ai;

    memset(res, 0, sizeof *res);
    alert_defs(sp, a);
    if (series_build(d, &s) != 0) {
        set_err(err, errlen, "the run is too long or memory ran out (at most %d s)",
                ALERTS_MAX_MINUTES);
        goto out;
    }
    nmin = s.n; /* evaluate minutes 0..n */
    firing = calloc((nmin + 1) * ALERTS_MAX, sizeof *firing);
    doubt = calloc((nmin + 1) * ALERTS_MAX, sizeof *doubt);
    if (firing == NULL || doubt == NULL) {
        set_err(err, errlen, "out of memory");
        goto out;
    }
    /* the alert state machine, one evaluation a minute */
    for (ai = 0; ai < ALERTS_MAX; ai++) {
        long active_at = -1;
        int unsure = 0;

        if (!a[ai].set)
            continue;
        for (i = 0; i <= nmin; i++) {
            int close = 0, on = alert_true(sp, &s, ai, (long)i, &close);

            unsure |= close;
            if (on && active_at < 0)
                active_at = (long)i;
            if (!on)
                active_at = -1;
            firing[i * ALERTS_MAX + (size_t)ai] =
                active_at >= 0 && (long)i - active_at >= a[ai].for_min;
            doubt[i * ALERTS_MAX + (size_t)ai] = unsure;
        }
    }
    /* firing intervals, for the summary */
    for (ai = 0; ai < ALERTS_MAX; ai++) {
        if (!a[ai].set)
            continue;
        for (i = 0; i <= nmin; i++) {
            int on = firing[i * ALERTS_MAX + (size_t)ai];
            int prev = i > 0 && firing[(i - 1) * ALERTS_MAX + (size_t)ai];
            if (on && !prev && res->nfired < sizeof res->fired / sizeof res->fired[0]) {
                struct alerts_firing *x = &res->fired[res->nfired++];
                snprintf(x->alert, sizeof x->alert, "%s", a[ai].name);
                x->from_min = (int)i;
                x->to_min = -1;
            } else if (!on && prev && res->nfired > 0) {
                for (j = res->nfired; j-- > 0;)
                    if (strcmp(res->fired[j].alert, a[ai].name) == 0) {
                        res->fired[j].to_min = (int)i;
                        break;
                    }
            }
        }
    }

    fprintf(f, "# promtool test rules: what SLO \"%s\" would have paged during run %s.\n"
               "# Scale: each second of the run is one minute of series (a sample every minute,\n"
               "# at half past, holding what had finished by that second), so for: 5m is 5 s of\n"
               "# the drill. Ratios (success rate, cost per request, burn rates) do not change\n"
               "# with the scale; request counts per minute are counts per second of the run.\n",
            sp->name, d->name);
    if (res->nfired == 0)
        fprintf(f, "# Prediction: no alert fires.\n");
    for (i = 0; i < res->nfired; i++) {
        if (res->fired[i].to_min >= 0)
            fprintf(f, "# Prediction: %s fires at minute %d, resolves at minute %d.\n",
                    res->fired[i].alert, res->fired[i].from_min, res->fired[i].to_min);
        else
            fprintf(f, "# Prediction: %s fires at minute %d, still firing at the end.\n",
                    res->fired[i].alert, res->fired[i].from_min);
    }
    fprintf(f, "rule_files:\n  - ");
    yq(f, rules_file);
    fprintf(f, "\nevaluation_interval: 1m\ntests:\n  - interval: 30s\n    input_series:\n");
    for (i = 0; i < OUTCOME__COUNT; i++) {
        fprintf(f, "      - series: 'slodrill_requests_total{outcome=\"%s\"}'\n        values: ",
                outcome_name((enum outcome)i));
        write_values(f, s.out[i], s.n);
        fputc('\n', f);
    }
    for (i = 0; i <= NLE; i++) {
        if (i < NLE)
            fprintf(f, "      - series: 'slodrill_time_to_first_token_seconds_bucket{le=\"%g\"}'"
                       "\n        values: ",
                    alerts_le[i]);
        else
            fprintf(f, "      - series: 'slodrill_time_to_first_token_seconds_bucket{le=\"+Inf\"}'"
                       "\n        values: ");
        write_values(f, s.le[i], s.n);
        fputc('\n', f);
    }
    fprintf(f, "      - series: 'slodrill_cost_usd_total'\n        values: ");
    write_values(f, s.cost, s.n);
    fprintf(f, "\n    alert_rule_test:\n");
    step = nmin <= 180 ? 1 : (nmin + 119) / 120;
    for (ai = 0; ai < ALERTS_MAX; ai++) {
        if (!a[ai].set)
            continue;
        for (i = 0; i <= nmin; i++) {
            size_t at = i * ALERTS_MAX + (size_t)ai;
            int change = (i > 0 && firing[at] != firing[at - ALERTS_MAX]) ||
                         (i < nmin && firing[at] != firing[at + ALERTS_MAX]);
            if (i % step != 0 && !change && i != nmin)
                continue;
            if (doubt[at]) {
                res->skipped++;
                continue;
            }
            res->asserts++;
            fprintf(f, "      - eval_time: %zum\n        alertname: %s\n", i, a[ai].name);
            if (!firing[at]) {
                fprintf(f, "        exp_alerts: []\n");
                continue;
            }
            fprintf(f, "        exp_alerts:\n          - exp_labels:\n");
            write_labels(f, sp, &a[ai], "              ");
            fprintf(f, "            exp_annotations:\n              summary: ");
            yq(f, a[ai].summary);
            fprintf(f, "\n              description: ");
            yq(f, a[ai].description);
            fputc('\n', f);
        }
    }
    res->minutes = nmin + 1;
    if (ferror(f)) {
        set_err(err, errlen, "write error");
        goto out;
    }
    rc = 0;
out:
    free(firing);
    free(doubt);
    series_free(&s);
    return rc;
}
