/* test_reports_alerts.c -- alerting rules for an SLO and the promtool test built from a run.
 *
 * A synthetic two-minute drill: every request fails from 30 s to 50 s, first
 * tokens take 4 s from 60 s to 90 s, and answers cost $0.02 from 100 s on.
 * The predicted alerts must follow from the for: holds; when promtool (Debian
 * package prometheus) is installed, `promtool check rules` and `promtool test
 * rules` must accept the files, which checks the prediction against
 * Prometheus itself. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "reports/alerts.h"

#define S 1000000LL

static char dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/slodrill-alerts-XXXXXX");
    return mkdtemp(dir) == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    static const char *const names[] = {"run.db", "run.db-wal", "run.db-shm", "rules.yml",
                                        "test.yml", "promtool.log", NULL};
    char p[128];
    size_t i;

    (void)state;
    for (i = 0; names[i]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        (void)unlink(p);
    }
    (void)rmdir(dir);
    return 0;
}

static struct run_data *drill(void)
{
    char path[128], err[256] = "";
    struct rundb *db;
    struct req_record r;
    struct run_data *d;
    int64_t i;

    snprintf(path, sizeof path, "%s/run.db", dir);
    db = rundb_create(path, "synthetic-drill", "{}", 1767225600000000ULL, err, sizeof err);
    if (db == NULL)
        fail_msg("create: %s", err);
    for (i = 0; i < 2400; i++) { /* 120 s at 20/s */
        int64_t t = i * 50000;

        memset(&r, 0, sizeof r);
        r.seq = i;
        r.intended_us = r.started_us = t;
        r.http_status = 200;
        r.outcome = OUTCOME_OK;
        r.cost_usd = t >= 100 * S ? 0.02 : 0.001;
        r.first_byte_us = r.first_token_us = t + (t >= 60 * S && t < 90 * S ? 4 * S : 300000);
        r.end_us = r.first_token_us + 200000;
        if (t >= 30 * S && t < 50 * S) {
            r.outcome = OUTCOME_RETRYABLE_ERROR;
            r.http_status = 503;
            r.first_token_us = -1;
            r.end_us = t + 10000;
            r.cost_usd = -1;
        }
        assert_int_equal(rundb_add_request(db, &r), 0);
    }
    assert_int_equal(rundb_finish(db, "complete", 120 * S), 0);
    d = rundb_load(path, err, sizeof err);
    if (d == NULL)
        fail_msg("load: %s", err);
    return d;
}

static char *slurp(const char *name)
{
    char p[128];
    FILE *f;
    long n;
    char *s;

    snprintf(p, sizeof p, "%s/%s", dir, name);
    f = fopen(p, "rb");
    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    s = calloc(1, (size_t)n + 1);
    if (fread(s, 1, (size_t)n, f) != (size_t)n) {
        free(s);
        s = NULL;
    }
    fclose(f);
    return s;
}

static const struct alerts_firing *fired(const struct alerts_result *res, const char *name)
{
    size_t i;

    for (i = 0; i < res->nfired; i++)
        if (strcmp(res->fired[i].alert, name) == 0)
            return &res->fired[i];
    return NULL;
}

/* 0 when promtool is missing (the test says so), else its exit status. */
static int promtool(const char *args)
{
    char cmd[512];

    if (system("command -v promtool >/dev/null 2>&1") != 0) {
        print_message("promtool not installed: skipping its checks\n");
        return 0;
    }
    snprintf(cmd, sizeof cmd, "cd %s && promtool %s >promtool.log 2>&1", dir, args);
    if (system(cmd) != 0) {
        char *log = slurp("promtool.log");
        print_message("promtool %s failed:\n%s\n", args, log ? log : "");
        free(log);
        return 1;
    }
    return 0;
}

static void test_rules_and_prediction(void **state)
{
    struct slo_targets t = {99.5, 2.5, 0.015, 30, 10000};
    struct alerts_spec spec;
    struct alerts_result res;
    struct run_data *d = drill();
    const struct alerts_firing *a;
    char p[128], err[256] = "", *rules, *test;
    FILE *f;

    (void)state;
    alerts_spec_init(&spec, "scenarios/Acme support <chat>.yaml", &t);
    assert_string_equal(spec.name, "Acme-support--chat-.yaml");
    alerts_spec_init(&spec, "Acme support", &t);
    assert_string_equal(spec.name, "Acme-support");

    snprintf(p, sizeof p, "%s/rules.yml", dir);
    f = fopen(p, "w");
    assert_int_equal(alerts_write_rules(f, &spec, "test", err, sizeof err), 0);
    fclose(f);
    rules = slurp("rules.yml");
    assert_non_null(strstr(rules, "- alert: SlodrillLatencyP95High\n"));
    assert_non_null(strstr(rules, "histogram_quantile(0.95, sum by (le) "
                                  "(rate(slodrill_time_to_first_token_seconds_bucket[5m]))) > 2.5"));
    assert_non_null(strstr(rules, "- alert: SlodrillSuccessRateLow\n"));
    assert_non_null(strstr(rules, "< 99.5\"\n        for: 5m\n"));
    assert_non_null(strstr(rules, "slodrill_requests_total{outcome=~\\\"retryable_error|timeout|"
                                  "rate_limited\\\"}[1h]"));
    assert_non_null(strstr(rules, "- alert: SlodrillCostPerRequestHigh\n"));
    assert_non_null(strstr(rules, "- alert: SlodrillErrorBudgetBurnFast\n"));
    assert_non_null(strstr(rules, "- alert: SlodrillErrorBudgetBurnSlow\n"));
    assert_non_null(strstr(rules, "> 0.072")); /* 14.4 x 0.5% */
    assert_non_null(strstr(rules, "> 0.03")); /* 6 x 0.5% */
    assert_non_null(strstr(rules, "severity: page"));
    free(rules);

    snprintf(p, sizeof p, "%s/test.yml", dir);
    f = fopen(p, "w");
    assert_int_equal(alerts_write_test(f, &spec, d, "rules.yml", &res, err, sizeof err), 0);
    fclose(f);
    /* Failures end at 30-50 s: the 5 min success rate drops at once and the
     * alert fires after its 5 min hold; it resolves a few minutes after 50. */
    a = fired(&res, "SlodrillSuccessRateLow");
    assert_non_null(a);
    assert_true(a->from_min >= 35 && a->from_min <= 37);
    assert_true(a->to_min >= 51 && a->to_min <= 57);
    a = fired(&res, "SlodrillErrorBudgetBurnFast");
    assert_non_null(a);
    assert_true(a->from_min >= 32 && a->from_min <= 34); /* 1 h ratio: 3 bad minutes of 33 > 7.2% */
    assert_non_null(fired(&res, "SlodrillErrorBudgetBurnSlow"));
    /* 4 s first tokens from 60 s: p95 over 2.5 s after 15 min of it */
    a = fired(&res, "SlodrillLatencyP95High");
    assert_non_null(a);
    assert_true(a->from_min >= 75 && a->from_min <= 80);
    assert_true(a->to_min >= 94 && a->to_min <= 100); /* slow ones end by 94 s, + 5 min window */
    /* $0.02 from 100 s: the 15 min average passes $0.015 around 108 s, then 15 min hold */
    a = fired(&res, "SlodrillCostPerRequestHigh");
    assert_true(a == NULL || a->from_min >= 115);
    assert_true(res.asserts >= 5 * 100);
    test = slurp("test.yml");
    assert_non_null(strstr(test, "# Scale: each second of the run is one minute of series"));
    assert_non_null(strstr(test, "rule_files:\n  - \"rules.yml\"\n"));
    assert_non_null(strstr(test, "      - series: 'slodrill_requests_total{outcome=\"ok\"}'\n"
                                 "        values: '_ "));
    assert_non_null(strstr(test, "slodrill_time_to_first_token_seconds_bucket{le=\"+Inf\"}"));
    assert_non_null(strstr(test, "      - eval_time: 40m\n        alertname: "
                                 "SlodrillSuccessRateLow\n        exp_alerts:\n"));
    assert_non_null(strstr(test, "      - eval_time: 10m\n        alertname: "
                                 "SlodrillSuccessRateLow\n        exp_alerts: []\n"));
    free(test);

    assert_int_equal(promtool("check rules rules.yml"), 0);
    assert_int_equal(promtool("test rules test.yml"), 0);
    rundb_data_free(d);
}

static void test_partial_slo(void **state)
{
    struct slo_targets t = {-1, 2.5, -1, -1, -1}, none = {-1, -1, -1, -1, -1};
    struct alerts_spec spec;
    char p[128], err[256] = "", *rules;
    FILE *f;

    (void)state;
    alerts_spec_init(&spec, "p95-only", &t);
    snprintf(p, sizeof p, "%s/rules.yml", dir);
    f = fopen(p, "w");
    assert_int_equal(alerts_write_rules(f, &spec, "test", err, sizeof err), 0);
    fclose(f);
    rules = slurp("rules.yml");
    assert_non_null(strstr(rules, "SlodrillLatencyP95High"));
    assert_null(strstr(rules, "SlodrillSuccessRateLow"));
    assert_null(strstr(rules, "alert: SlodrillErrorBudgetBurn"));
    free(rules);
    assert_int_equal(promtool("check rules rules.yml"), 0);
    alerts_spec_init(&spec, "nothing", &none);
    f = fopen(p, "w");
    assert_int_equal(alerts_write_rules(f, &spec, "test", err, sizeof err), -1);
    fclose(f);
    assert_non_null(strstr(err, "nothing to alert on"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rules_and_prediction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partial_slo, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
