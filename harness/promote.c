/* promote.c -- figures, verdict and reports of the change-promotion check.
 *
 * DESIGN: the check reads only the run DBs of its arms (DESIGN.md: reports
 * read the run DB). Latency is the SLI's: intended start to first token.
 * Costs come from the response (x-slodrill-cost-usd, usage.cost); where a
 * response named none, the SLO file's price table and the usage tokens give
 * it; a request with neither leaves the average unknown, which rejects: the
 * rule needs the cost shown, not assumed. */
#include "harness/promote.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/buf.h"
#include "harness/slofile.h"

#define PROMOTE_P 0.95
#define PROMOTE_CONF 0.95
/* buf is sticky on failure: append now, check buf_failed once at the end. */
#define PROMOTE_BP(...) do { if (buf_printf(__VA_ARGS__) != 0) { /* checked at the end */ } } while (0)

static int promote_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int promote_is_ok(const struct req_record *q)
{
    return q->outcome == OUTCOME_OK || q->outcome == OUTCOME_SERVED_FROM_CACHE;
}

/* Median and its distribution-free interval over sorted v. */
static void promote_median_ci(const double *v, size_t n, double *med, double *lo, double *hi)
{
    size_t l, h;
    *med = n ? slo_quantile_sorted(v, n, 0.5) : -1;
    *lo = *hi = NAN;
    if (n && slo_quantile_ci_ranks(n, 0.5, PROMOTE_CONF, &l, &h) == 0) {
        *lo = v[l - 1];
        *hi = v[h - 1];
    }
}

static int promote_arm_compute(const struct run_data *d, const char *model, const char *role,
                               const struct slofile *sf, double p95_target,
                               double cost_max, struct promote_arm *a)
{
    struct run_data copy;
    struct req_record *req = NULL;
    double *lat = NULL, *tot = NULL, med;
    size_t i, nlat = 0, ntot = 0, nok = 0;
    double in_sum = 0, out_sum = 0;
    int rc = -1;

    memset(a, 0, sizeof *a);
    snprintf(a->role, sizeof a->role, "%s", role);
    snprintf(a->model, sizeof a->model, "%s", model ? model : "");
    a->total_p50_s = a->total_p95_s = a->avg_input_tokens = a->avg_output_tokens = -1;
    a->p50_lo_s = a->p50_hi_s = NAN;
    req = malloc((d->nreq ? d->nreq : 1) * sizeof *req);
    lat = malloc((d->nreq ? d->nreq : 1) * sizeof *lat);
    tot = malloc((d->nreq ? d->nreq : 1) * sizeof *tot);
    if (req == NULL || lat == NULL || tot == NULL) goto out;
    if (d->nreq) memcpy(req, d->req, d->nreq * sizeof *req);
    for (i = 0; i < d->nreq; i++) {
        struct req_record *q = &req[i];
        if (strncmp(q->error, "dropped", 7) == 0) a->dropped++;
        if (!promote_is_ok(q)) continue;
        nok++;
        if (q->cost_usd >= 0) {
            a->cost_from_response++;
        } else {
            const struct slofile_price *p = sf ? slofile_price_for(sf, q->model) : NULL;
            if (p == NULL && sf) p = slofile_price_for(sf, model);
            if (p && q->input_tokens >= 0 && q->output_tokens >= 0) {
                q->cost_usd = ((double)q->input_tokens * p->input_per_mtok +
                               (double)q->output_tokens * p->output_per_mtok) / 1e6;
                a->cost_from_prices++;
            } else {
                a->cost_unknown++;
            }
        }
        in_sum += q->input_tokens > 0 ? (double)q->input_tokens : 0;
        out_sum += q->output_tokens > 0 ? (double)q->output_tokens : 0;
        if (q->end_us >= 0 && q->intended_us >= 0)
            tot[ntot++] = (double)(q->end_us - q->intended_us) / 1e6;
        {
            double l = slo_request_latency_s(q);
            if (isfinite(l)) lat[nlat++] = l;
        }
    }
    copy = *d;
    copy.req = req;
    if (slo_figures_compute(&copy, INT64_MIN, INT64_MAX, p95_target, &a->f) != 0) goto out;
    if (nok) {
        a->avg_input_tokens = in_sum / (double)nok;
        a->avg_output_tokens = out_sum / (double)nok;
    }
    qsort(lat, nlat, sizeof *lat, promote_cmp_double);
    promote_median_ci(lat, nlat, &med, &a->p50_lo_s, &a->p50_hi_s);
    qsort(tot, ntot, sizeof *tot, promote_cmp_double);
    if (ntot) {
        a->total_p50_s = slo_quantile_sorted(tot, ntot, 0.5);
        a->total_p95_s = slo_quantile_sorted(tot, ntot, 0.95);
    }
    /* Cost of an answer: failures cost nothing and must not make a model look cheap. */
    {
        double sum = 0;
        size_t nc = 0;
        for (i = 0; i < d->nreq; i++)
            if (promote_is_ok(&req[i]) && req[i].cost_usd >= 0) {
                sum += req[i].cost_usd;
                nc++;
            }
        a->cost_counted = nc;
        a->avg_cost_usd = a->cost_unknown || nc == 0 ? -1 : sum / (double)nc;
    }

    /* p95 by exceedance counting. */
    if (a->f.total == 0) {
        snprintf(a->p95_reason, sizeof a->p95_reason, "No request was recorded.");
    } else if (!a->f.gate_possible) {
        snprintf(a->p95_reason, sizeof a->p95_reason,
                 "Only %zu requests: at least %zu are needed before even zero slow ones show "
                 "p95 <= %g s at 95%% confidence.",
                 a->f.total, slo_min_samples(PROMOTE_P, PROMOTE_CONF), p95_target);
    } else {
        a->p95_pass = a->f.over_target <= a->f.over_allowed;
        snprintf(a->p95_reason, sizeof a->p95_reason,
                 "%zu of %zu requests took longer than %g s to the first token or failed; "
                 "p95 <= %g s at 95%% confidence allows at most %zu of %zu.",
                 a->f.over_target, a->f.total, p95_target, p95_target, a->f.over_allowed,
                 a->f.total);
    }
    /* Average cost. */
    if (cost_max < 0) {
        a->cost_pass = 1;
        snprintf(a->cost_reason, sizeof a->cost_reason,
                 "No cost target was given, so cost was not checked.");
    } else if (a->avg_cost_usd < 0) {
        snprintf(a->cost_reason, sizeof a->cost_reason,
                 "%zu answered requests named no cost and no price is known for their model: "
                 "add prices: to the SLO file.",
                 a->cost_unknown ? a->cost_unknown : a->f.total);
    } else {
        a->cost_pass = a->avg_cost_usd <= cost_max;
        snprintf(a->cost_reason, sizeof a->cost_reason,
                 "Average cost $%.6f per answered request over %zu answers, %s the $%g target.",
                 a->avg_cost_usd, a->cost_counted, a->cost_pass ? "within" : "over", cost_max);
    }
    a->passed = a->p95_pass && a->cost_pass;
    rc = 0;
out:
    free(req);
    free(lat);
    free(tot);
    return rc;
}

int promote_analyze(const struct run_data *cand, const char *cand_model,
                    const struct run_data *base, const char *base_model,
                    const struct slofile *sf, double p95_target_s, double avg_cost_max_usd,
                    struct promote_result *r)
{
    double *diff = NULL;
    size_t i, j;
    int rc = -1;

    memset(r, 0, sizeof *r);
    r->p95_target_s = p95_target_s;
    r->avg_cost_max_usd = avg_cost_max_usd;
    r->median_diff_s = r->paired_median_s = NAN;
    r->paired_lo_s = r->paired_hi_s = NAN;
    if (promote_arm_compute(cand, cand_model, "candidate", sf, p95_target_s, avg_cost_max_usd,
                            &r->cand) != 0)
        goto out;
    if (base) {
        r->have_base = 1;
        if (promote_arm_compute(base, base_model, "baseline", sf, p95_target_s, avg_cost_max_usd,
                                &r->base) != 0)
            goto out;
        if (r->cand.f.total && r->base.f.total && isfinite(r->cand.f.p50_s) &&
            isfinite(r->base.f.p50_s))
            r->median_diff_s = r->cand.f.p50_s - r->base.f.p50_s;
        diff = malloc((cand->nreq ? cand->nreq : 1) * sizeof *diff);
        if (diff == NULL) goto out;
        /* Both are sorted by seq; pair equal seqs. */
        for (i = 0, j = 0; i < cand->nreq && j < base->nreq;) {
            if (cand->req[i].seq < base->req[j].seq) {
                i++;
            } else if (cand->req[i].seq > base->req[j].seq) {
                j++;
            } else {
                double a = slo_request_latency_s(&cand->req[i]);
                double b = slo_request_latency_s(&base->req[j]);
                if (isfinite(a) && isfinite(b)) diff[r->pairs++] = a - b;
                i++;
                j++;
            }
        }
        qsort(diff, r->pairs, sizeof *diff, promote_cmp_double);
        if (r->pairs)
            promote_median_ci(diff, r->pairs, &r->paired_median_s, &r->paired_lo_s,
                              &r->paired_hi_s);
    }
    r->promote = r->cand.passed;
    rc = 0;
out:
    free(diff);
    return rc;
}

void promote_summary(const struct promote_result *r, char *out, size_t outlen)
{
    const struct promote_arm *a = &r->cand;
    char cost[48];
    if (a->avg_cost_usd >= 0) snprintf(cost, sizeof cost, "$%.6f", a->avg_cost_usd);
    else snprintf(cost, sizeof cost, "unknown");
    char p95[32];
    if (isfinite(a->f.p95_s) && a->f.p95_s >= 0) snprintf(p95, sizeof p95, "%.2fs", a->f.p95_s);
    else snprintf(p95, sizeof p95, "%s", a->f.total ? "failed" : "n/a");
    snprintf(out, outlen, "%s %s: p95=%s (%zu of %zu over %gs, %zu allowed), avg cost=%s",
             r->promote ? "PROMOTE" : "REJECT", a->model, p95,
             a->f.over_target, a->f.total, r->p95_target_s, a->f.over_allowed, cost);
}

static void promote_fmt_s(char *out, size_t n, double v)
{
    if (isnan(v)) snprintf(out, n, "n/a");
    else if (isinf(v)) snprintf(out, n, "failed");
    else if (v < 0) snprintf(out, n, "n/a");
    else snprintf(out, n, "%.3f s", v);
}

static void promote_md_arm(struct buf *b, const struct promote_arm *a)
{
    char p50[32], p95[32], lo[32], hi[32], mlo[32], mhi[32], t50[32], t95[32], cost[32];
    promote_fmt_s(p50, sizeof p50, a->f.p50_s);
    promote_fmt_s(p95, sizeof p95, a->f.p95_s);
    promote_fmt_s(lo, sizeof lo, a->f.p95_lo_s);
    promote_fmt_s(hi, sizeof hi, a->f.p95_hi_s);
    promote_fmt_s(mlo, sizeof mlo, a->p50_lo_s);
    promote_fmt_s(mhi, sizeof mhi, a->p50_hi_s);
    promote_fmt_s(t50, sizeof t50, a->total_p50_s);
    promote_fmt_s(t95, sizeof t95, a->total_p95_s);
    if (a->avg_cost_usd >= 0) snprintf(cost, sizeof cost, "$%.6f", a->avg_cost_usd);
    else snprintf(cost, sizeof cost, "unknown");
    PROMOTE_BP(b,
                     "| %s `%s` | %zu | %zu | %.2f%% | %s (%s to %s) | %s (%s to %s) | %s / %s | "
                     "%.0f / %.0f | %s |\n",
                     a->role, a->model, a->f.total, a->f.failures + a->f.client_errors,
                     a->f.success_rate >= 0 ? a->f.success_rate : 0.0, p50, mlo, mhi, p95, lo, hi,
                     t50, t95, a->avg_input_tokens > 0 ? a->avg_input_tokens : 0.0,
                     a->avg_output_tokens > 0 ? a->avg_output_tokens : 0.0, cost);
}

static cJSON *promote_json_num(double v)
{
    return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull();
}

static cJSON *promote_json_arm(const struct promote_arm *a)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL) return NULL;
    cJSON_AddStringToObject(o, "model", a->model);
    cJSON_AddNumberToObject(o, "requests", (double)a->f.total);
    cJSON_AddNumberToObject(o, "failures", (double)a->f.failures);
    cJSON_AddNumberToObject(o, "client_errors", (double)a->f.client_errors);
    cJSON_AddNumberToObject(o, "dropped", (double)a->dropped);
    cJSON_AddItemToObject(o, "success_rate", promote_json_num(a->f.success_rate));
    cJSON_AddItemToObject(o, "ttft_p50_s", promote_json_num(a->f.p50_s));
    cJSON_AddItemToObject(o, "ttft_p50_lo_s", promote_json_num(a->p50_lo_s));
    cJSON_AddItemToObject(o, "ttft_p50_hi_s", promote_json_num(a->p50_hi_s));
    cJSON_AddItemToObject(o, "ttft_p95_s", promote_json_num(a->f.p95_s));
    cJSON_AddItemToObject(o, "ttft_p95_lo_s", promote_json_num(a->f.p95_lo_s));
    cJSON_AddItemToObject(o, "ttft_p95_hi_s", promote_json_num(a->f.p95_hi_s));
    cJSON_AddItemToObject(o, "total_p50_s", promote_json_num(a->total_p50_s));
    cJSON_AddItemToObject(o, "total_p95_s", promote_json_num(a->total_p95_s));
    cJSON_AddNumberToObject(o, "over_target", (double)a->f.over_target);
    cJSON_AddNumberToObject(o, "over_allowed", (double)a->f.over_allowed);
    cJSON_AddItemToObject(o, "avg_input_tokens", promote_json_num(a->avg_input_tokens));
    cJSON_AddItemToObject(o, "avg_output_tokens", promote_json_num(a->avg_output_tokens));
    cJSON_AddItemToObject(o, "avg_cost_usd", a->avg_cost_usd >= 0 ? cJSON_CreateNumber(a->avg_cost_usd)
                                                                  : cJSON_CreateNull());
    cJSON_AddNumberToObject(o, "cost_from_response", (double)a->cost_from_response);
    cJSON_AddNumberToObject(o, "cost_from_prices", (double)a->cost_from_prices);
    cJSON_AddNumberToObject(o, "cost_counted", (double)a->cost_counted);
    cJSON_AddBoolToObject(o, "p95_pass", a->p95_pass);
    cJSON_AddBoolToObject(o, "cost_pass", a->cost_pass);
    cJSON_AddStringToObject(o, "p95_reason", a->p95_reason);
    cJSON_AddStringToObject(o, "cost_reason", a->cost_reason);
    cJSON_AddBoolToObject(o, "passed", a->passed);
    return o;
}

static int promote_write_file(const char *path, const char *text, char *err, size_t errlen)
{
    FILE *fp = fopen(path, "w");
    int rc = -1;
    if (fp == NULL) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    if (fputs(text, fp) >= 0) rc = 0;
    if (fclose(fp) != 0) rc = -1;
    if (rc != 0) snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
    return rc;
}

int promote_write(const struct promote_result *r, const char *dir, const char *target, char *err,
                  size_t errlen)
{
    struct buf b;
    char path[4200], line[512], d1[32], d2[32], d3[32], d4[32];
    cJSON *root = NULL;
    char *json = NULL;
    const struct promote_arm *c = &r->cand;
    int rc = -1;

    buf_init(&b, 0);
    promote_summary(r, line, sizeof line);
    PROMOTE_BP(&b, "# Promotion check: %s\n\n**%s**\n\n", c->model, line);
    PROMOTE_BP(&b,
                     "Rule (change management): a model or provider change is promoted only when "
                     "it meets the p95 latency target on the sample requests and keeps the "
                     "average cost per request within the SLO.\n\n"
                     "- Target: `%s`\n- p95 target (time to first token): %g s\n",
                     target, r->p95_target_s);
    if (r->avg_cost_max_usd >= 0)
        PROMOTE_BP(&b, "- Average cost target: $%g per request\n", r->avg_cost_max_usd);
    else
        PROMOTE_BP(&b, "- Average cost target: none given\n");
    PROMOTE_BP(&b, "\n## Verdict\n\n- p95: **%s**. %s\n- Cost: **%s**. %s\n",
                     c->p95_pass ? "pass" : "fail", c->p95_reason, c->cost_pass ? "pass" : "fail",
                     c->cost_reason);
    if (c->dropped)
        PROMOTE_BP(&b, "- %zu candidate requests were not sent because the concurrency bound "
                       "was full; they count as failures (raise --concurrency).\n", c->dropped);
    if (r->have_base && r->base.dropped)
        PROMOTE_BP(&b, "- %zu baseline requests were not sent because the concurrency bound "
                       "was full.\n", r->base.dropped);
    PROMOTE_BP(&b,
                     "\n## Figures\n\n| arm | requests | failed | success | first token p50 "
                     "(95%% CI) | first token p95 (95%% CI) | whole answer p50 / p95 | tokens in / "
                     "out | avg cost |\n|---|---|---|---|---|---|---|---|---|\n");
    promote_md_arm(&b, c);
    if (r->have_base) promote_md_arm(&b, &r->base);
    if (r->have_base) {
        promote_fmt_s(d1, sizeof d1, fabs(r->median_diff_s));
        promote_fmt_s(d2, sizeof d2, fabs(r->paired_median_s));
        promote_fmt_s(d3, sizeof d3, r->paired_lo_s);
        promote_fmt_s(d4, sizeof d4, r->paired_hi_s);
        PROMOTE_BP(&b,
                         "\n## Candidate against baseline\n\nBoth arms ran interleaved with the "
                         "same seeded prompt sequence, so request k of one is paired with request "
                         "k of the other.\n\n- Median first token: the candidate is %s %s than "
                         "the baseline.\n- Over %zu answered pairs the median per-pair "
                         "difference is %s%s (95%% sign-test interval %+.3f s to %+.3f s).\n"
                         "- p95: candidate %s, baseline %s (the baseline %s the target).\n",
                         d1, isnan(r->median_diff_s) ? "(n/a)" : r->median_diff_s > 0 ? "slower"
                                                                                     : "faster",
                         r->pairs, r->paired_median_s < 0 ? "-" : "+", d2,
                         isnan(r->paired_lo_s) ? 0.0 : r->paired_lo_s,
                         isnan(r->paired_hi_s) ? 0.0 : r->paired_hi_s,
                         c->p95_pass ? "meets the target" : "misses the target",
                         r->base.p95_pass ? "meets it" : "misses it",
                         r->base.passed ? "would also pass" : "would not pass");
        (void)d3;
        (void)d4;
        if (c->avg_cost_usd >= 0 && r->base.avg_cost_usd >= 0)
            PROMOTE_BP(&b, "- Average cost: candidate $%.6f, baseline $%.6f (%+.1f%%).\n",
                             c->avg_cost_usd, r->base.avg_cost_usd,
                             r->base.avg_cost_usd > 0
                                 ? 100.0 * (c->avg_cost_usd - r->base.avg_cost_usd) / r->base.avg_cost_usd
                                 : 0.0);
    }
    PROMOTE_BP(&b,
                     "\n## How sure this is\n\nA p95 from %zu samples is uncertain: the 95%% "
                     "interval above says how much. The gate therefore counts requests over the "
                     "target instead of comparing the point value: at 95%% confidence, %zu "
                     "samples show p95 <= %g s only when at most %zu of them are slower (failures "
                     "count as slower). Latency is measured from each request's scheduled start "
                     "to its first token.\n",
                     c->f.total, c->f.total, r->p95_target_s, c->f.over_allowed);
    if (buf_failed(&b)) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    snprintf(path, sizeof path, "%s/promotion.md", dir);
    if (promote_write_file(path, b.data, err, errlen) != 0) goto out;

    root = cJSON_CreateObject();
    if (root == NULL) goto oom;
    cJSON_AddStringToObject(root, "verdict", r->promote ? "promote" : "reject");
    cJSON_AddStringToObject(root, "summary", line);
    cJSON_AddStringToObject(root, "target", target);
    cJSON_AddNumberToObject(root, "p95_target_s", r->p95_target_s);
    cJSON_AddItemToObject(root, "avg_cost_max_usd",
                          r->avg_cost_max_usd >= 0 ? cJSON_CreateNumber(r->avg_cost_max_usd)
                                                   : cJSON_CreateNull());
    cJSON_AddItemToObject(root, "candidate", promote_json_arm(c));
    if (r->have_base) {
        cJSON *cmp = cJSON_CreateObject();
        cJSON_AddItemToObject(root, "baseline", promote_json_arm(&r->base));
        if (cmp) {
            cJSON_AddNumberToObject(cmp, "pairs", (double)r->pairs);
            cJSON_AddItemToObject(cmp, "median_diff_s", promote_json_num(r->median_diff_s));
            cJSON_AddItemToObject(cmp, "paired_median_diff_s", promote_json_num(r->paired_median_s));
            cJSON_AddItemToObject(cmp, "paired_lo_s", promote_json_num(r->paired_lo_s));
            cJSON_AddItemToObject(cmp, "paired_hi_s", promote_json_num(r->paired_hi_s));
            cJSON_AddItemToObject(root, "comparison", cmp);
        }
    }
    json = cJSON_Print(root);
    if (json == NULL) goto oom;
    snprintf(path, sizeof path, "%s/promotion.json", dir);
    if (promote_write_file(path, json, err, errlen) != 0) goto out;
    rc = 0;
    goto out;
oom:
    snprintf(err, errlen, "out of memory");
out:
    cJSON_free(json);
    cJSON_Delete(root);
    buf_cleanup(&b);
    return rc;
}
