/* test_reports_report.c -- closeout.md, report.json and junit.xml from a real run DB. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "reports/report.h"

#define S 1000000LL

struct tmp {
    char dir[256];
    char db[300];
    char out[300];
};

static void rm_file(const char *dir, const char *name)
{
    char p[512];

    snprintf(p, sizeof p, "%s/%s", dir, name);
    (void)unlink(p);
}

static int setup(void **state)
{
    struct tmp *t = calloc(1, sizeof *t);

    snprintf(t->dir, sizeof t->dir, "/tmp/slodrill-report-XXXXXX");
    if (mkdtemp(t->dir) == NULL) {
        free(t);
        return -1;
    }
    snprintf(t->db, sizeof t->db, "%s/run.db", t->dir);
    snprintf(t->out, sizeof t->out, "%s/out/nested", t->dir);
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    struct tmp *t = *state;
    char p[400];

    rm_file(t->out, "closeout.md");
    rm_file(t->out, "report.json");
    rm_file(t->out, "report.html");
    rm_file(t->out, "junit.xml");
    (void)rmdir(t->out);
    snprintf(p, sizeof p, "%s/out", t->dir);
    (void)rmdir(p);
    rm_file(t->dir, "run.db");
    rm_file(t->dir, "run.db-wal");
    rm_file(t->dir, "run.db-shm");
    (void)rmdir(t->dir);
    free(t);
    return 0;
}

static const char meta[] =
    "{\"scenario\":{\"name\":\"revoke <b> & \\\"c\\\"\",\"file\":\"scenarios/x.yaml\","
    "\"description\":\"Primary's key is revoked | mid-traffic.\"},"
    "\"slo\":{\"success_rate\":99.5,\"p95_latency_s\":2.5,\"avg_cost_usd\":0.015,"
    "\"window_days\":30,\"monthly_requests\":10000},"
    "\"expect\":{\"failover_within_s\":2,\"success_rate_min\":99.5,\"p95_latency_s\":2.5,"
    "\"back_on_primary_within_s\":40,\"recover_within_s\":10},"
    "\"seed\":7,\"config\":\"scenarios/configs/two-provider.yaml\"}";

/* The synthetic run of test_reports_slo.c, written through the run DB. */
static void write_run(const char *path, int finish)
{
    char err[256] = "";
    struct rundb *db = rundb_create(path, "revoke-20260101T000000Z", meta, 1767225600000000ULL,
                                    err, sizeof err);
    struct req_record r;
    int64_t i;

    if (db == NULL)
        fail_msg("create: %s", err);
    for (i = 0; i < 600; i++) {
        int64_t t = i * 50000, lat;

        memset(&r, 0, sizeof r);
        r.seq = i;
        r.intended_us = t;
        r.started_us = t;
        r.http_status = 200;
        r.outcome = OUTCOME_OK;
        r.cost_usd = -1;
        if (t >= 8 * S && t < 8 * S + 500000) {
            r.outcome = OUTCOME_RETRYABLE_ERROR;
            r.http_status = 401;
            r.first_byte_us = r.end_us = t + 50000;
            r.first_token_us = -1;
            snprintf(r.provider, sizeof r.provider, "primary");
            snprintf(r.error, sizeof r.error, "key <revoked> & \"gone\"\x01\xff");
        } else {
            int sec = t >= 8 * S && t < 20 * S + 300000;
            snprintf(r.provider, sizeof r.provider, "%s", sec ? "secondary" : "primary");
            lat = sec ? 450000 : 300000;
            r.cost_usd = sec ? 0.002 : 0.001;
            r.first_byte_us = t + lat - 1000;
            r.first_token_us = t + lat;
            r.end_us = t + lat + 500000;
        }
        assert_int_equal(rundb_add_request(db, &r), 0);
    }
    assert_int_equal(rundb_event(db, 0, "run_start", NULL, NULL), 0);
    assert_int_equal(rundb_event(db, 8 * S, "fault_on", "primary", "revoke_key"), 0);
    assert_int_equal(rundb_event(db, 20 * S, "fault_off", "primary", "revoke_key"), 0);
    assert_int_equal(rundb_event(db, 25 * S, "note", "scribe", "pager | rang <twice>"), 0);
    if (finish) {
        assert_int_equal(rundb_finish(db, "complete", 30 * S), 0);
    } else {
        assert_int_equal(rundb_flush(db), 0);
        rundb_close(db);
    }
}

static char *slurp(const char *dir, const char *name)
{
    char p[512];
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

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;

    while ((hay = strstr(hay, needle)) != NULL) {
        n++;
        hay += strlen(needle);
    }
    return n;
}

static void test_write_all(void **state)
{
    struct tmp *t = *state;
    struct run_metrics m;
    char err[256] = "", *md, *json, *xml;
    cJSON *root, *all, *checks, *c;
    size_t i, nfail = 0;
    int found = 0;

    write_run(t->db, 1);
    if (report_write_all(t->db, t->out, &m, err, sizeof err) != 0)
        fail_msg("report: %s", err);
    for (i = 0; i < m.nchecks; i++)
        nfail += m.checks[i].verdict == CHECK_FAIL;

    md = slurp(t->out, "closeout.md");
    assert_non_null(md);
    /* The summary line comes first, as a code line. */
    assert_memory_equal(md, "`TTR=5.5s, p95=0.45s, SR=98.33%`\n", 33);
    assert_non_null(strstr(md, "# Closeout: revoke &lt;b&gt; & \"c\""));
    assert_non_null(strstr(md, "2 of 11 checks failed: success_rate_min, slo_success_rate."));
    assert_non_null(strstr(md, "Primary's key is revoked \\| mid-traffic."));
    assert_non_null(strstr(md, "**Verdict: FAIL.**"));
    assert_non_null(strstr(md, "| 8.000 | fault_on | primary | revoke_key |"));
    assert_non_null(strstr(md, "| 25.000 | note | scribe | pager \\| rang &lt;twice&gt; |"));
    assert_non_null(strstr(md, "| 8.050 | first failure | primary | request 160"));
    assert_non_null(strstr(md, "| 8.500 | last failure | primary | request 169"));
    assert_non_null(strstr(md, "| 8.950 | failover | secondary |"));
    assert_non_null(strstr(md, "| 13.500 | recovered |"));
    assert_non_null(strstr(md, "| 20.600 | back on primary | primary |"));
    /* 16 requests were in flight at 8 s: they count in the fault phase. */
    assert_non_null(strstr(md, "| before | 0.0–8.0 | 144 | 0 | 100.00% |"));
    assert_non_null(strstr(md, "| during | 8.0–20.0 | 256 | 10 | 96.09% |"));
    assert_non_null(strstr(md, "allows 50 failed requests out of 10000"));
    assert_non_null(strstr(md, "would fail 167 requests: 333% of the budget"));
    assert_non_null(strstr(md, "- **success_rate_min** (all): Success rate was 98.33% (10 of "
                               "600 requests failed), 1.17 points below 99.5%."));
    assert_non_null(strstr(md, "## Follow-ups"));
    assert_null(strstr(md, "incomplete run"));
    /* The raw control byte and the invalid UTF-8 byte are not copied. */
    assert_null(strstr(md, "\x01"));
    assert_null(strstr(md, "\xff"));
    free(md);

    json = slurp(t->out, "report.json");
    assert_non_null(json);
    root = cJSON_Parse(json);
    assert_non_null(root);
    assert_string_equal(cJSON_GetObjectItem(root, "schema")->valuestring, "slodrill.report/1");
    assert_string_equal(cJSON_GetObjectItem(root, "verdict")->valuestring, "fail");
    assert_string_equal(cJSON_GetObjectItem(root, "summary")->valuestring,
                        "TTR=5.5s, p95=0.45s, SR=98.33%");
    all = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "phases"), "all");
    assert_int_equal(cJSON_GetObjectItem(all, "requests")->valueint, 600);
    assert_int_equal(cJSON_GetObjectItem(all, "failures")->valueint, 10);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(all, "p99_s"))); /* +inf */
    assert_float_equal(cJSON_GetObjectItem(all, "p95_s")->valuedouble, 0.45, 1e-9);
    assert_float_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(root, "timings"), "ttf_s")
                           ->valuedouble,
                       0.95, 1e-9);
    assert_float_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(root, "timings"), "ttr_s")
                           ->valuedouble,
                       5.5, 1e-9);
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(root, "meta"), "seed")->valueint, 7);
    checks = cJSON_GetObjectItem(root, "checks");
    assert_int_equal((size_t)cJSON_GetArraySize(checks), m.nchecks);
    cJSON_ArrayForEach(c, checks)
    {
        if (strcmp(cJSON_GetObjectItem(c, "name")->valuestring, "success_rate_min") == 0) {
            assert_string_equal(cJSON_GetObjectItem(c, "verdict")->valuestring, "fail");
            assert_float_equal(cJSON_GetObjectItem(c, "measured")->valuedouble,
                               100.0 * 590 / 600, 1e-9);
            found = 1;
        }
    }
    assert_true(found);
    cJSON_Delete(root);
    free(json);

    xml = slurp(t->out, "junit.xml");
    assert_non_null(xml);
    assert_memory_equal(xml, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", 39);
    assert_non_null(strstr(xml, "<testsuite name=\"revoke &lt;b&gt; &amp; &quot;c&quot;\""));
    assert_int_equal(count(xml, "<testsuite "), 1);
    assert_int_equal(count(xml, "<testcase "), m.nchecks);
    assert_int_equal(count(xml, "<failure "), nfail);
    assert_true(nfail >= 2);
    assert_non_null(strstr(xml, "name=\"success_rate_min [all]\""));
    assert_non_null(strstr(xml, "<failure type=\"check\" message=\"Success rate was 98.33% (10 "
                                "of 600 requests failed), 1.17 points below 99.5%.\">"));
    assert_null(strstr(xml, "<b>"));
    free(xml);
    slo_metrics_free(&m);
}

static void test_incomplete_run(void **state)
{
    struct tmp *t = *state;
    char err[256] = "", *md, *xml;

    write_run(t->db, 0);
    if (report_write_all(t->db, t->out, NULL, err, sizeof err) != 0)
        fail_msg("report: %s", err);
    md = slurp(t->out, "closeout.md");
    assert_non_null(md);
    assert_non_null(strstr(md, "**Warning: incomplete run.**"));
    assert_non_null(strstr(md, "\"incomplete\""));
    free(md);
    xml = slurp(t->out, "junit.xml");
    assert_non_null(strstr(xml, "name=\"run_complete [all]\" time=\"0\">"));
    assert_non_null(strstr(xml, "The run never finished"));
    free(xml);
}

static void test_errors(void **state)
{
    struct tmp *t = *state;
    char err[256] = "";

    assert_int_equal(report_write_all("/nonexistent/run.db", t->out, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "/nonexistent/run.db"));
    write_run(t->db, 1);
    /* An output path under a regular file cannot be created. */
    err[0] = '\0';
    assert_int_equal(report_write_all(t->db, "/dev/null/x", NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "cannot create"));
}

static void test_read_meta(void **state)
{
    struct slo_targets s;
    struct expectations e;
    char err[256] = "";

    (void)state;
    assert_int_equal(report_read_meta(meta, &s, &e, err, sizeof err), 0);
    assert_float_equal(s.success_rate, 99.5, 0);
    assert_float_equal(s.monthly_requests, 10000, 0);
    assert_float_equal(e.back_on_primary_within_s, 40, 0);
    assert_true(e.avg_cost_max_usd < 0);
    assert_int_equal(report_read_meta("{}", &s, &e, err, sizeof err), 0);
    assert_true(s.success_rate < 0 && e.failover_within_s < 0);
    assert_int_equal(report_read_meta("{\"slo\":{\"success_rate\":\"high\"}}", &s, &e, err,
                                      sizeof err),
                     -1);
    assert_string_equal(err, "run meta: slo.success_rate must be a number >= 0");
    assert_int_equal(report_read_meta("{\"expect\":[1]}", &s, &e, err, sizeof err), -1);
    assert_non_null(strstr(err, "expect must be an object"));
    assert_int_equal(report_read_meta("{\"slo\":", &s, &e, err, sizeof err), -1);
    assert_non_null(strstr(err, "not a JSON object"));
}

static void test_xml_escape(void **state)
{
    char out[128], small[8];

    (void)state;
    assert_int_equal(report_xml_escape("a<b>&\"c'\nd\te", out, sizeof out), 0);
    assert_string_equal(out, "a&lt;b&gt;&amp;&quot;c&apos;&#10;d&#9;e");
    /* Invalid UTF-8, a control byte, an overlong encoding: '?'. Valid
     * multi-byte characters stay. */
    assert_int_equal(report_xml_escape("x\xff\x01y\xc0\xafz é 🙂", out, sizeof out), 0);
    assert_string_equal(out, "x??y??z é 🙂");
    /* A truncated sequence at the end. */
    assert_int_equal(report_xml_escape("ok\xe2\x82", out, sizeof out), 0);
    assert_string_equal(out, "ok??");
    assert_int_equal(report_xml_escape("<<<<", small, sizeof small), -1);
    assert_string_equal(small, "&lt;");
    assert_int_equal(report_xml_escape(NULL, out, sizeof out), 0);
    assert_string_equal(out, "");
}

static void test_summary_line(void **state)
{
    struct run_metrics m;
    char line[128];

    (void)state;
    memset(&m, 0, sizeof m);
    m.first_fault_us = -1;
    m.all.total = 200;
    m.all.p95_s = 0.612;
    m.all.success_rate = 99.833;
    report_summary_line(&m, line, sizeof line);
    assert_string_equal(line, "TTR=n/a, p95=0.61s, SR=99.83%");
    m.first_fault_us = 8 * S;
    m.ttr_s = 4.2;
    report_summary_line(&m, line, sizeof line);
    assert_string_equal(line, "TTR=4.2s, p95=0.61s, SR=99.83%");
    m.ttr_s = -1;
    m.all.p95_s = INFINITY;
    report_summary_line(&m, line, sizeof line);
    assert_string_equal(line, "TTR=not recovered, p95=inf, SR=99.83%");
    m.all.total = 0;
    report_summary_line(&m, line, sizeof line);
    assert_string_equal(line, "TTR=not recovered, p95=n/a, SR=n/a");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_xml_escape),
        cmocka_unit_test(test_summary_line),
        cmocka_unit_test(test_read_meta),
        cmocka_unit_test_setup_teardown(test_write_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_incomplete_run, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
