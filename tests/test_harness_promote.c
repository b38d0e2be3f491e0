/* test_harness_promote.c -- the promotion rule on hand-made runs: the 4-of-200
 * exceedance bound, failures counting as slow, costs from prices, and the
 * SLO file's positioned errors. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness/promote.h"
#include "harness/slofile.h"

/* n requests, the first `slow` of them 3 s to the first token, the first
 * `failed` of the rest failures, the others 0.5 s; cost as given. */
static struct run_data *make_run(size_t n, size_t slow, size_t failed, double cost)
{
    struct run_data *d = calloc(1, sizeof *d);
    size_t i;
    assert_non_null(d);
    d->req = calloc(n, sizeof *d->req);
    assert_non_null(d->req);
    d->nreq = n;
    d->status = strdup("complete");
    d->name = strdup("t");
    d->meta_json = strdup("{}");
    for (i = 0; i < n; i++) {
        struct req_record *r = &d->req[i];
        r->seq = (int64_t)i;
        r->intended_us = (int64_t)i * 100000;
        r->started_us = r->intended_us;
        r->first_byte_us = r->first_token_us = r->intended_us + (i < slow ? 3000000 : 500000);
        r->end_us = r->first_token_us + 200000;
        r->http_status = 200;
        r->outcome = OUTCOME_OK;
        r->input_tokens = 1000;
        r->output_tokens = 500;
        r->cost_usd = cost;
        snprintf(r->model, sizeof r->model, "vendor/model-x");
        if (i >= slow && i < slow + failed) {
            r->outcome = OUTCOME_RETRYABLE_ERROR;
            r->http_status = 503;
            r->first_token_us = -1;
            r->cost_usd = -1;
        }
    }
    return d;
}

static void free_run(struct run_data *d)
{
    size_t i;
    (void)i;
    free(d->req);
    free(d->status);
    free(d->name);
    free(d->meta_json);
    free(d);
}

static void four_slow_of_200_pass(void **state)
{
    struct run_data *d = make_run(200, 4, 0, 0.01);
    struct promote_result r;
    (void)state;
    assert_int_equal(promote_analyze(d, "cand", NULL, NULL, NULL, 2.5, 0.015, &r), 0);
    assert_int_equal(r.cand.f.over_target, 4);
    assert_int_equal(r.cand.f.over_allowed, 4);
    assert_true(r.promote);
    assert_non_null(strstr(r.cand.p95_reason, "allows at most 4 of 200"));
    free_run(d);
}

static void five_slow_of_200_reject(void **state)
{
    struct run_data *d = make_run(200, 5, 0, 0.01);
    struct promote_result r;
    (void)state;
    assert_int_equal(promote_analyze(d, "cand", NULL, NULL, NULL, 2.5, 0.015, &r), 0);
    assert_int_equal(r.cand.f.over_target, 5);
    assert_false(r.promote);
    assert_false(r.cand.p95_pass);
    free_run(d);
}

static void failures_count_as_slow(void **state)
{
    struct run_data *d = make_run(200, 2, 3, 0.01);
    struct promote_result r;
    (void)state;
    assert_int_equal(promote_analyze(d, "cand", NULL, NULL, NULL, 2.5, 0.015, &r), 0);
    assert_int_equal(r.cand.f.over_target, 5);
    assert_false(r.promote);
    /* Failures cost nothing and do not lower the average per answer. */
    assert_true(fabs(r.cand.avg_cost_usd - 0.01) < 1e-12);
    free_run(d);
}

static void cost_over_target_rejects(void **state)
{
    struct run_data *d = make_run(200, 0, 0, 0.02);
    struct promote_result r;
    (void)state;
    assert_int_equal(promote_analyze(d, "cand", NULL, NULL, NULL, 2.5, 0.015, &r), 0);
    assert_true(r.cand.p95_pass);
    assert_false(r.cand.cost_pass);
    assert_false(r.promote);
    assert_non_null(strstr(r.cand.cost_reason, "over the $0.015 target"));
    free_run(d);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void cost_from_price_table(void **state)
{
    struct run_data *d = make_run(200, 0, 0, -1);
    struct promote_result r;
    struct slofile sf;
    char path[] = "/tmp/slodrill-slofile-XXXXXX", err[512];
    int fd = mkstemp(path);
    (void)state;
    assert_true(fd >= 0);
    close(fd);
    write_file(path, "service: Support\nsuccess_rate: 99.5\np95_latency_s: 2.5\n"
                     "avg_cost_usd: 0.015\nprices:\n  model-x: { input_per_mtok: 2, "
                     "output_per_mtok: 8 }\n");
    assert_int_equal(slofile_load(path, &sf, err, sizeof err), 0);
    assert_int_equal(promote_analyze(d, "cand", NULL, NULL, &sf, 2.5, 0.015, &r), 0);
    /* 1000 in x $2/M + 500 out x $8/M = $0.006 */
    assert_true(fabs(r.cand.avg_cost_usd - 0.006) < 1e-12);
    assert_int_equal(r.cand.cost_from_prices, 200);
    assert_true(r.promote);
    /* Without prices the cost is unknown, and that rejects. */
    assert_int_equal(promote_analyze(d, "cand", NULL, NULL, NULL, 2.5, 0.015, &r), 0);
    assert_true(r.cand.avg_cost_usd < 0);
    assert_false(r.promote);
    unlink(path);
    free_run(d);
}

static void paired_comparison(void **state)
{
    struct run_data *c = make_run(200, 200, 0, 0.01); /* all 3 s */
    struct run_data *b = make_run(200, 0, 0, 0.005);  /* all 0.5 s */
    struct promote_result r;
    (void)state;
    assert_int_equal(promote_analyze(c, "cand", b, "base", NULL, 2.5, 0.015, &r), 0);
    assert_true(r.have_base);
    assert_int_equal(r.pairs, 200);
    assert_true(fabs(r.paired_median_s - 2.5) < 1e-9);
    assert_true(fabs(r.median_diff_s - 2.5) < 1e-9);
    assert_false(r.promote);
    assert_true(r.base.passed);
    free_run(c);
    free_run(b);
}

static void slofile_errors_have_positions(void **state)
{
    struct slofile sf;
    char path[] = "/tmp/slodrill-slofile-XXXXXX", err[512];
    int fd = mkstemp(path);
    (void)state;
    assert_true(fd >= 0);
    close(fd);
    write_file(path, "service: X\nsucess_rate: 99.5\n");
    assert_int_equal(slofile_load(path, &sf, err, sizeof err), -1);
    assert_non_null(strstr(err, ":2:1: unknown key 'sucess_rate'"));
    assert_non_null(strstr(err, "success_rate"));
    write_file(path, "success_rate: 120\n");
    assert_int_equal(slofile_load(path, &sf, err, sizeof err), -1);
    assert_non_null(strstr(err, ":1:15: success_rate must be between 0 and 100"));
    /* A scenario file: its slo: block. */
    write_file(path, "name: s\nslo: { success_rate: 99, p95_latency_s: 2 }\nproviders: []\n");
    assert_int_equal(slofile_load(path, &sf, err, sizeof err), 0);
    assert_true(sf.t.success_rate == 99 && sf.t.p95_latency_s == 2);
    assert_string_equal(sf.service, "s");
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(four_slow_of_200_pass),
        cmocka_unit_test(five_slow_of_200_reject),
        cmocka_unit_test(failures_count_as_slow),
        cmocka_unit_test(cost_over_target_rejects),
        cmocka_unit_test(cost_from_price_table),
        cmocka_unit_test(paired_comparison),
        cmocka_unit_test(slofile_errors_have_positions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
