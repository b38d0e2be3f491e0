/* test_reports_slo.c -- percentiles, intervals, exceedance gate, TTF/TTR and checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reports/slo.h"

/* ---- order statistics ---- */

static void test_quantile_nearest_rank(void **state)
{
    double v[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    double w[200];
    size_t i;

    (void)state;
    /* ceil(p * n)-th smallest. */
    assert_true(slo_quantile_sorted(v, 10, 0.50) == 5);
    assert_true(slo_quantile_sorted(v, 10, 0.95) == 10);
    assert_true(slo_quantile_sorted(v, 10, 0.90) == 9);
    assert_true(slo_quantile_sorted(v, 10, 0.91) == 10);
    assert_true(slo_quantile_sorted(v, 10, 0.01) == 1);
    assert_true(slo_quantile_sorted(v, 10, 1.0) == 10);
    assert_true(slo_quantile_sorted(v, 1, 0.95) == 1);
    assert_true(isnan(slo_quantile_sorted(v, 0, 0.95)));
    /* 0.95 * 200 is 190.00000000000003 in binary: still rank 190. */
    for (i = 0; i < 200; i++)
        w[i] = (double)(i + 1);
    assert_true(slo_quantile_sorted(w, 200, 0.95) == 190);
    assert_true(slo_quantile_sorted(w, 100, 0.95) == 95);
    assert_true(slo_quantile_sorted(w, 20, 0.95) == 19);
}

static void test_ci_ranks(void **state)
{
    size_t lo = 0, hi = 0;

    (void)state;
    /* Median of 10 (hand-computed from Binomial(10, 1/2)): P(B <= 1) =
     * 11/1024 = 0.0107 <= 0.025 < P(B <= 2) = 56/1024, so lo = 2; by
     * symmetry hi = 9; coverage 1 - 2 * 11/1024 = 97.9%. */
    assert_int_equal(slo_quantile_ci_ranks(10, 0.5, 0.95, &lo, &hi), 0);
    assert_int_equal(lo, 2);
    assert_int_equal(hi, 9);
    /* At 90% the same ranks: P(B <= 2) = 0.0547 > 0.05. */
    assert_int_equal(slo_quantile_ci_ranks(10, 0.5, 0.90, &lo, &hi), 0);
    assert_int_equal(lo, 2);
    assert_int_equal(hi, 9);
    /* The textbook median interval for n = 100: x(40) .. x(61). */
    assert_int_equal(slo_quantile_ci_ranks(100, 0.5, 0.95, &lo, &hi), 0);
    assert_int_equal(lo, 40);
    assert_int_equal(hi, 61);
    /* p95 of 200: x(184) .. x(197). */
    assert_int_equal(slo_quantile_ci_ranks(200, 0.95, 0.95, &lo, &hi), 0);
    assert_int_equal(lo, 184);
    assert_int_equal(hi, 197);
    /* p95 of 20: P(all 20 below q) = 0.95^20 = 0.36 > 0.025, no upper rank. */
    assert_int_equal(slo_quantile_ci_ranks(20, 0.95, 0.95, &lo, &hi), -1);
    assert_int_equal(slo_quantile_ci_ranks(0, 0.95, 0.95, &lo, &hi), -1);
    /* 0.95^71 = 0.0262 > 0.025 >= 0.95^72 = 0.0249: 72 samples give an
     * upper rank, the largest one. */
    assert_int_equal(slo_quantile_ci_ranks(71, 0.95, 0.95, &lo, &hi), -1);
    assert_int_equal(slo_quantile_ci_ranks(72, 0.95, 0.95, &lo, &hi), 0);
    assert_int_equal(hi, 72);
    /* Large n stays fast and sane: the interval brackets the point rank. */
    assert_int_equal(slo_quantile_ci_ranks(1000000, 0.95, 0.95, &lo, &hi), 0);
    assert_true(lo < 950000 && hi > 950000);
    assert_true(950000 - lo < 1000 && hi - 950000 < 1000);
}

static void test_exceedances(void **state)
{
    (void)state;
    /* DESIGN.md: with 200 samples at most 4 may exceed. P(Bin(200, .05) <= 4)
     * = 0.0264 <= 0.05 < P(... <= 5) = 0.0623. */
    assert_int_equal(slo_exceedances_allowed(200, 0.95, 0.95), 4);
    assert_int_equal(slo_exceedances_allowed(600, 0.95, 0.95), 20);
    assert_int_equal(slo_exceedances_allowed(1000, 0.99, 0.95), 4);
    /* 0.95^59 = 0.0485 <= 0.05 but 0.95^58 = 0.051: 59 samples needed. */
    assert_int_equal(slo_min_samples(0.95, 0.95), 59);
    assert_int_equal(slo_exceedances_allowed(59, 0.95, 0.95), 0);
    assert_int_equal(slo_min_samples(0.99, 0.95), 299);
}

/* ---- a synthetic run ----
 * 20 requests/s for 30 s (600). Primary serves everything before the fault
 * at 8.0 s (first token after 0.3 s, $0.001). Requests intended in
 * [8.0, 8.5) fail; from 8.5 s the secondary serves (0.45 s, $0.002) until
 * 20.3 s, the fault clears at 20.0 s, from 20.3 s the primary is back. */

#define S 1000000LL

static struct run_data *synthetic(int clear, int with_cost)
{
    struct run_data *d = calloc(1, sizeof *d);
    size_t i;

    d->name = strdup("synthetic");
    d->meta_json = strdup("{}");
    d->status = strdup("complete");
    d->duration_us = 30 * S;
    d->nreq = 600;
    d->req = calloc(d->nreq, sizeof *d->req);
    for (i = 0; i < d->nreq; i++) {
        struct req_record *r = &d->req[i];
        int64_t t = (int64_t)i * 50000;
        int64_t lat;

        r->seq = (int64_t)i;
        r->intended_us = t;
        r->started_us = t + 100;
        r->http_status = 200;
        r->outcome = OUTCOME_OK;
        r->cost_usd = -1;
        if (t >= 8 * S && t < 8 * S + 500000) {
            r->outcome = OUTCOME_RETRYABLE_ERROR;
            r->http_status = 503;
            r->first_byte_us = t + 50000;
            r->first_token_us = -1;
            r->end_us = t + 50000;
            snprintf(r->provider, sizeof r->provider, "primary");
            snprintf(r->error, sizeof r->error, "upstream 401 | \"bad key\" <x>");
            continue;
        }
        if (t >= 8 * S && (!clear || t < 20 * S + 300000)) {
            snprintf(r->provider, sizeof r->provider, "secondary");
            lat = 450000;
            if (with_cost)
                r->cost_usd = 0.002;
        } else {
            snprintf(r->provider, sizeof r->provider, "primary");
            lat = 300000;
            if (with_cost)
                r->cost_usd = 0.001;
        }
        r->first_byte_us = t + lat - 1000;
        r->first_token_us = t + lat;
        r->end_us = t + lat + 500000;
    }
    d->nev = clear ? 2 : 1;
    d->ev = calloc(2, sizeof *d->ev);
    d->ev[0].t_us = 8 * S;
    snprintf(d->ev[0].kind, sizeof d->ev[0].kind, "fault_on");
    snprintf(d->ev[0].subject, sizeof d->ev[0].subject, "primary");
    snprintf(d->ev[0].detail, sizeof d->ev[0].detail, "revoke_key");
    d->ev[1].t_us = 20 * S;
    snprintf(d->ev[1].kind, sizeof d->ev[1].kind, "fault_off");
    snprintf(d->ev[1].subject, sizeof d->ev[1].subject, "primary");
    return d;
}

static const struct slo_check *find_check(const struct run_metrics *m, const char *name,
                                          const char *phase)
{
    size_t i;

    for (i = 0; i < m->nchecks; i++)
        if (strcmp(m->checks[i].name, name) == 0 && strcmp(m->checks[i].phase, phase) == 0)
            return &m->checks[i];
    return NULL;
}

static void std_targets(struct slo_targets *t, struct expectations *e)
{
    slo_targets_unset(t);
    expectations_unset(e);
    t->success_rate = 99.5;
    t->p95_latency_s = 2.5;
    t->avg_cost_usd = 0.015;
    t->window_days = 30;
    t->monthly_requests = 10000;
    e->failover_within_s = 2;
    e->success_rate_min = 99.5;
    e->p95_latency_s = 2.5;
    e->back_on_primary_within_s = 40;
    e->recover_within_s = 10;
}

static void test_figures_phases(void **state)
{
    struct run_data *d = synthetic(1, 1);
    struct slo_figures f;

    (void)state;
    assert_int_equal(slo_figures_compute(d, INT64_MIN, INT64_MAX, 2.5, &f), 0);
    assert_int_equal(f.total, 600);
    assert_int_equal(f.failures, 10);
    assert_int_equal(f.ok, 590);
    assert_float_equal(f.success_rate, 100.0 * 590 / 600, 1e-9);
    /* 354 at 0.30 s, 236 at 0.45 s, 10 failed (+inf). */
    assert_float_equal(f.p50_s, 0.30, 1e-9);
    assert_float_equal(f.p95_s, 0.45, 1e-9); /* rank 570 */
    assert_true(isinf(f.p99_s));             /* rank 594 > 590 */
    assert_float_equal(f.p95_lo_s, 0.45, 1e-9); /* rank 559 */
    assert_float_equal(f.p95_hi_s, 0.45, 1e-9); /* rank 581 <= 590 finite */
    assert_int_equal(f.over_target, 10);
    assert_int_equal(f.over_allowed, 20);
    assert_true(f.gate_possible);
    /* ($0.354 + $0.472 + failures at $0) / 600. */
    assert_float_equal(f.avg_cost_usd, (0.354 + 0.472) / 600, 1e-12);
    assert_int_equal(f.cost_reported, 590);
    assert_float_equal(f.p95_cost_usd, 0.002, 1e-12);

    /* [8 s, 20 s): 240 requests, the 10 failures. */
    assert_int_equal(slo_figures_compute(d, 8 * S, 20 * S, -1, &f), 0);
    assert_int_equal(f.total, 240);
    assert_int_equal(f.failures, 10);
    assert_int_equal(f.over_target, 0);
    assert_int_equal(f.over_allowed, 0);
    /* An empty window. */
    assert_int_equal(slo_figures_compute(d, 40 * S, 50 * S, 2.5, &f), 0);
    assert_int_equal(f.total, 0);
    assert_true(f.success_rate < 0 && f.p95_s < 0);
    rundb_data_free(d);
}

static void test_metrics_timings(void **state)
{
    struct run_data *d = synthetic(1, 1);
    struct slo_targets t;
    struct expectations e;
    struct run_metrics m;
    const struct slo_check *k;

    (void)state;
    std_targets(&t, &e);
    assert_int_equal(slo_metrics_compute(d, &t, &e, &m), 0);
    assert_true(m.first_fault_us == 8 * S);
    assert_true(m.last_clear_us == 20 * S);
    assert_string_equal(m.primary, "primary");
    assert_string_equal(m.failover_to, "secondary");
    /* First secondary success: intended 8.5 s, first token 8.95 s. */
    assert_float_equal(m.ttf_s, 0.95, 1e-9);
    /* Last failure intended at 8.45 s leaves the 5 s window after 13.45 s:
     * the first 100 ms step clear of it is 13.5 s, 5.5 s after the fault. */
    assert_float_equal(m.ttr_s, 5.5, 1e-9);
    /* Primary again from 20.3 s, first token 20.6 s: 0.6 s after the clear. */
    assert_float_equal(m.back_on_primary_s, 0.6, 1e-9);
    /* 16 requests started before 8 s were still running at 8 s: they felt
     * the fault, so they count in "during", not "before". */
    assert_int_equal(m.before.total, 144);
    assert_int_equal(m.during.total, 256);
    assert_int_equal(m.after.total, 200);
    assert_int_equal(m.before.failures + m.after.failures, 0);
    /* Budget: 50 allowed; 10/600 of 10000 = 166.7 spent, 333%. */
    assert_float_equal(m.budget_allowed_reqs, 50, 1e-9);
    assert_float_equal(m.budget_spent_reqs, 10000.0 * 10 / 600, 1e-9);
    assert_float_equal(m.budget_spent_pct, 100.0 * (10000.0 * 10 / 600) / 50, 1e-9);

    k = find_check(&m, "failover_within", "during");
    assert_non_null(k);
    assert_int_equal(k->verdict, CHECK_PASS);
    assert_non_null(strstr(k->detail, "0.95 s"));
    assert_non_null(strstr(k->detail, "within 2 s"));
    k = find_check(&m, "success_rate_min", "all");
    assert_non_null(k);
    assert_int_equal(k->verdict, CHECK_FAIL);
    assert_non_null(strstr(k->detail, "98.33%"));
    assert_non_null(strstr(k->detail, "10 of 600"));
    k = find_check(&m, "p95_latency", "all");
    assert_non_null(k);
    assert_int_equal(k->verdict, CHECK_PASS);
    assert_non_null(strstr(k->detail, "10 of 600"));
    k = find_check(&m, "back_on_primary_within", "after");
    assert_non_null(k);
    assert_int_equal(k->verdict, CHECK_PASS);
    k = find_check(&m, "recover_within", "during");
    assert_non_null(k);
    assert_int_equal(k->verdict, CHECK_PASS);
    assert_non_null(strstr(k->detail, "5.50 s"));
    k = find_check(&m, "slo_p95_latency", "before");
    assert_non_null(k);
    assert_int_equal(k->verdict, CHECK_PASS);
    k = find_check(&m, "slo_p95_latency", "after");
    assert_non_null(k);
    assert_int_equal(k->verdict, CHECK_PASS);
    k = find_check(&m, "slo_avg_cost", "all");
    assert_non_null(k);
    assert_int_equal(k->verdict, CHECK_PASS);
    k = find_check(&m, "run_complete", "all");
    assert_non_null(k);
    assert_int_equal(k->verdict, CHECK_PASS);
    assert_int_equal(m.passed, 0); /* the success rate missed */
    slo_metrics_free(&m);

    /* A tighter failover bound fails and says by how much. */
    e.failover_within_s = 0.5;
    e.success_rate_min = 98;
    t.success_rate = 98;
    assert_int_equal(slo_metrics_compute(d, &t, &e, &m), 0);
    k = find_check(&m, "failover_within", "during");
    assert_int_equal(k->verdict, CHECK_FAIL);
    assert_non_null(strstr(k->detail, "0.45 s over the 0.5 s limit"));
    /* At 98% one failure in a 100-request window is fine: TTR is shorter. */
    assert_true(m.ttr_s >= 0 && m.ttr_s < 5.5);
    slo_metrics_free(&m);
    rundb_data_free(d);
}

static void test_metrics_not_observed(void **state)
{
    struct run_data *d = synthetic(0, 0); /* never cleared, no costs */
    struct slo_targets t;
    struct expectations e;
    struct run_metrics m;
    const struct slo_check *k;

    (void)state;
    std_targets(&t, &e);
    free(d->status);
    d->status = strdup("incomplete");
    d->duration_us = -1;
    assert_int_equal(slo_metrics_compute(d, &t, &e, &m), 0);
    assert_true(m.last_clear_us < 0);
    assert_int_equal(m.after.total, 0);
    assert_int_equal(m.during.total, 456); /* 440 started in it, 16 in flight at 8 s */
    assert_true(m.incomplete);
    /* The end comes from the last record: 29.95 s + 0.45 s + 0.5 s. */
    assert_true(m.end_us == 29950000 + 450000 + 500000);
    k = find_check(&m, "back_on_primary_within", "after");
    assert_non_null(k);
    assert_int_equal(k->verdict, CHECK_FAIL);
    assert_true(isnan(k->measured));
    assert_non_null(strstr(k->detail, "never cleared"));
    k = find_check(&m, "slo_avg_cost", "all");
    assert_non_null(k);
    assert_int_equal(k->verdict, CHECK_NOT_MEASURED);
    k = find_check(&m, "run_complete", "all");
    assert_int_equal(k->verdict, CHECK_FAIL);
    assert_non_null(strstr(k->detail, "never finished"));
    assert_null(find_check(&m, "slo_p95_latency", "after"));
    slo_metrics_free(&m);

    /* No fault at all: failover was expected, so it fails, not skipped. */
    d->nev = 0;
    assert_int_equal(slo_metrics_compute(d, &t, &e, &m), 0);
    assert_true(m.first_fault_us < 0 && m.ttf_s < 0 && m.ttr_s < 0);
    assert_int_equal(m.before.total, 600);
    k = find_check(&m, "failover_within", "during");
    assert_int_equal(k->verdict, CHECK_FAIL);
    assert_non_null(strstr(k->detail, "No fault was injected"));
    k = find_check(&m, "recover_within", "during");
    assert_int_equal(k->verdict, CHECK_FAIL);
    slo_metrics_free(&m);

    /* Recovery that never happens: failures up to the end. */
    d->nev = 1;
    {
        size_t i;
        for (i = 500; i < 600; i++)
            d->req[i].outcome = OUTCOME_TIMEOUT;
    }
    assert_int_equal(slo_metrics_compute(d, &t, &e, &m), 0);
    assert_true(m.ttr_s < 0);
    k = find_check(&m, "recover_within", "during");
    assert_int_equal(k->verdict, CHECK_FAIL);
    assert_non_null(strstr(k->detail, "not observed within the run"));
    /* 110 of 600 failed: p95 is infinite and the gate fails. */
    k = find_check(&m, "p95_latency", "all");
    assert_int_equal(k->verdict, CHECK_FAIL);
    assert_true(isinf(m.all.p95_s));
    slo_metrics_free(&m);
    rundb_data_free(d);
}

static void set_ev(struct run_event *e, int64_t t, const char *kind, const char *subject,
                   const char *detail)
{
    memset(e, 0, sizeof *e);
    e->t_us = t;
    snprintf(e->kind, sizeof e->kind, "%s", kind);
    snprintf(e->subject, sizeof e->subject, "%s", subject);
    snprintf(e->detail, sizeof e->detail, "%s", detail);
}

/* Overlapping and repeated faults: the fault phase ends when the last one
 * still on is cleared. */
static void test_fault_span(void **state)
{
    struct run_data *d = synthetic(1, 0);
    struct run_metrics m;
    struct run_event ev[6];

    (void)state;
    set_ev(&ev[0], 8 * S, "fault_on", "primary", "http_error status=503");
    set_ev(&ev[1], 9 * S, "fault_on", "primary", "http_error status=500"); /* same fault again */
    set_ev(&ev[2], 10 * S, "fault_on", "secondary", "slow_ttft ms=1500");
    set_ev(&ev[3], 12 * S, "fault_off", "primary", "http_error");
    set_ev(&ev[4], 13 * S, "note", "scribe", "paged");
    set_ev(&ev[5], 15 * S, "fault_off", "secondary", "slow_ttft");
    free(d->ev);
    d->ev = ev;
    d->nev = 6;
    assert_int_equal(slo_metrics_compute(d, NULL, NULL, &m), 0);
    assert_true(m.first_fault_us == 8 * S);
    assert_true(m.last_clear_us == 15 * S);
    assert_int_equal(m.during.total, 156); /* 140 started in it, 16 in flight at 8 s */
    assert_int_equal(m.nchecks, 1); /* only run_complete without targets */
    slo_metrics_free(&m);
    /* The secondary's fault never cleared: no "after" phase. */
    d->nev = 5;
    assert_int_equal(slo_metrics_compute(d, NULL, NULL, &m), 0);
    assert_true(m.last_clear_us < 0);
    assert_int_equal(m.after.total, 0);
    slo_metrics_free(&m);
    d->ev = NULL;
    rundb_data_free(d);
}

static void test_p95_gate_small(void **state)
{
    struct run_data *d = synthetic(1, 0);
    struct slo_targets t;
    struct expectations e;
    struct run_metrics m;
    const struct slo_check *k;
    size_t i;

    (void)state;
    /* A promotion-style run: 200 samples, no faults. 4 over 2.5 s pass... */
    d->nreq = 200;
    d->nev = 0;
    for (i = 0; i < 200; i++) {
        d->req[i].outcome = OUTCOME_OK;
        d->req[i].first_token_us = d->req[i].intended_us + 300000;
    }
    for (i = 0; i < 4; i++)
        d->req[i * 37].first_token_us = d->req[i * 37].intended_us + 3 * S;
    slo_targets_unset(&t);
    expectations_unset(&e);
    e.p95_latency_s = 2.5;
    assert_int_equal(slo_metrics_compute(d, &t, &e, &m), 0);
    k = find_check(&m, "p95_latency", "all");
    assert_int_equal(k->verdict, CHECK_PASS);
    assert_float_equal(k->measured, 0.3, 1e-9);
    assert_non_null(strstr(k->detail, "4 of 200"));
    assert_non_null(strstr(k->detail, "up to 4 may"));
    slo_metrics_free(&m);
    /* ...a fifth one fails, although the point p95 is still 0.30 s. */
    d->req[199].outcome = OUTCOME_TIMEOUT;
    assert_int_equal(slo_metrics_compute(d, &t, &e, &m), 0);
    k = find_check(&m, "p95_latency", "all");
    assert_int_equal(k->verdict, CHECK_FAIL);
    assert_float_equal(m.all.p95_s, 0.3, 1e-9);
    assert_non_null(strstr(k->detail, "5 of 200"));
    assert_non_null(strstr(k->detail, "1 more than the 4"));
    slo_metrics_free(&m);
    /* 40 samples cannot show a p95 at all. */
    d->nreq = 40;
    assert_int_equal(slo_metrics_compute(d, &t, &e, &m), 0);
    k = find_check(&m, "p95_latency", "all");
    assert_int_equal(k->verdict, CHECK_FAIL);
    assert_non_null(strstr(k->detail, "at least 59"));
    slo_metrics_free(&m);
    d->nreq = 600;
    rundb_data_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quantile_nearest_rank),
        cmocka_unit_test(test_ci_ranks),
        cmocka_unit_test(test_exceedances),
        cmocka_unit_test(test_figures_phases),
        cmocka_unit_test(test_metrics_timings),
        cmocka_unit_test(test_metrics_not_observed),
        cmocka_unit_test(test_fault_span),
        cmocka_unit_test(test_p95_gate_small),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
