/* test_reports_html.c -- report.html and the late/dropped figures, from a real run DB. */
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
#include <unistd.h>

#include "reports/report.h"

#define S 1000000LL

static char dir[64];

static const char *const outputs[] = {"closeout.md", "report.html", "report.json", "junit.xml",
                                      "run.db", "run.db-wal", "run.db-shm", NULL};

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/slodrill-html-XXXXXX");
    return mkdtemp(dir) == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    char p[128];
    size_t i;

    (void)state;
    for (i = 0; outputs[i] != NULL; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, outputs[i]);
        (void)unlink(p);
    }
    (void)rmdir(dir);
    return 0;
}

static const char meta[] =
    "{\"scenario\":{\"name\":\"revoke <i>key</i>\",\"description\":\"a & b\"},"
    "\"slo\":{\"success_rate\":99.5,\"p95_latency_s\":2.5,\"avg_cost_usd\":0.015,"
    "\"window_days\":30,\"monthly_requests\":10000},"
    "\"expect\":{\"failover_within_s\":2}}";

/* 30 s at 20/s: primary serves, its key is revoked 8-20 s (ten failures at
 * 8.0-8.5 s, then the secondary serves); every 50th request went out 3 ms
 * late; three requests at 25 s were dropped by the generator. */
static void write_run(const char *path)
{
    char err[256] = "";
    struct rundb *db = rundb_create(path, "html-test", meta, 1767225600000000ULL, err, sizeof err);
    struct req_record r;
    int64_t i;

    if (db == NULL)
        fail_msg("create: %s", err);
    for (i = 0; i < 600; i++) {
        int64_t t = i * 50000;

        memset(&r, 0, sizeof r);
        r.seq = i;
        r.intended_us = t;
        r.started_us = t + (i % 50 == 49 ? 3000 : 200);
        r.http_status = 200;
        r.outcome = OUTCOME_OK;
        r.cost_usd = 0.001;
        if (t >= 8 * S && t < 8 * S + 500000) {
            r.outcome = OUTCOME_RETRYABLE_ERROR;
            r.http_status = 401;
            r.first_byte_us = r.end_us = t + 50000;
            r.first_token_us = -1;
            r.cost_usd = -1;
            snprintf(r.provider, sizeof r.provider, "primary");
        } else if (i >= 500 && i < 503) {
            r.outcome = OUTCOME_TIMEOUT;
            r.http_status = 0;
            r.started_us = r.first_byte_us = r.first_token_us = -1;
            r.end_us = t;
            r.cost_usd = -1;
            snprintf(r.error, sizeof r.error, "dropped: max_inflight");
        } else {
            int sec = t >= 8 * S && t < 20 * S + 300000;
            int64_t lat = sec ? 450000 : 300000 + (i % 10) * 10000;
            snprintf(r.provider, sizeof r.provider, "%s", sec ? "secondary" : "primary");
            r.first_byte_us = t + lat - 1000;
            r.first_token_us = t + lat;
            r.end_us = t + lat + 500000;
        }
        assert_int_equal(rundb_add_request(db, &r), 0);
    }
    assert_int_equal(rundb_event(db, 0, "load", "open", "constant 20/s for 30 s"), 0);
    assert_int_equal(rundb_event(db, 8 * S, "fault_on", "primary", "revoke_key"), 0);
    assert_int_equal(rundb_event(db, 20 * S, "fault_off", "primary", "revoke_key"), 0);
    assert_int_equal(rundb_event(db, 22 * S, "note", "scribe", "<script>alert(1)</script>"), 0);
    assert_int_equal(rundb_finish(db, "complete", 30 * S), 0);
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

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;

    while ((hay = strstr(hay, needle)) != NULL) {
        n++;
        hay += strlen(needle);
    }
    return n;
}

static void test_html_page(void **state)
{
    char db[128], err[256] = "", *html;
    struct run_metrics m;

    (void)state;
    snprintf(db, sizeof db, "%s/run.db", dir);
    write_run(db);
    if (report_write_all(db, dir, &m, err, sizeof err) != 0)
        fail_msg("report: %s", err);
    html = slurp("report.html");
    assert_non_null(html);
    assert_memory_equal(html, "<!DOCTYPE html>", 15);
    /* The four charts, each once, as inline SVG. */
    assert_int_equal(count(html, "<svg "), 4);
    assert_int_equal(count(html, "<svg id=\"chart-success\""), 1);
    assert_int_equal(count(html, "<svg id=\"chart-p95\""), 1);
    assert_int_equal(count(html, "<svg id=\"chart-providers\""), 1);
    assert_int_equal(count(html, "<svg id=\"chart-latency-hist\""), 1);
    assert_int_equal(count(html, "</svg>"), 4);
    /* Self-contained: no script, no external resource. */
    assert_null(strstr(html, "<script"));
    assert_null(strstr(html, " src="));
    assert_null(strstr(html, "href="));
    assert_null(strstr(html, "url("));
    assert_null(strstr(html, "@import"));
    assert_int_equal(count(html, "http"), count(html, "http://www.w3.org/2000/svg") +
                                               count(html, "http-equiv"));
    /* Text from the run is escaped. */
    assert_non_null(strstr(html, "&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert_non_null(strstr(html, "<h1>revoke &lt;i&gt;key&lt;/i&gt; "));
    assert_non_null(strstr(html, "<p>a &amp; b</p>"));
    /* Figures: the summary, the failing second, the fault window, targets. */
    assert_non_null(strstr(html, "id=\"summary\">TTR="));
    assert_non_null(strstr(html, "8–9 s: 50.00% (10 of 20 failed)"));
    assert_non_null(strstr(html, "0–1 s: 100.00% (0 of 20 failed)"));
    assert_non_null(strstr(html, "<title>fault revoke_key primary: 8.0–20.0 s</title>"));
    assert_int_equal(count(html, "class=\"fault\""), 3); /* shaded in the three time charts */
    assert_non_null(strstr(html, ">SLO 99.5%<"));
    assert_non_null(strstr(html, ">SLO p95 2.5 s<"));
    assert_non_null(strstr(html, "8–9 s: p95 failed"));
    assert_non_null(strstr(html, "0–1 s: p95 0.390 s"));
    /* who served: both providers and the failures, in the legend and as series */
    assert_non_null(strstr(html, "data-series=\"primary\""));
    assert_non_null(strstr(html, "data-series=\"secondary\""));
    assert_non_null(strstr(html, "data-series=\"failed\""));
    /* histogram: answered and failed counts, the measured p95 */
    assert_non_null(strstr(html, ">587 answered<"));
    assert_non_null(strstr(html, ">13 failed (not drawn)<"));
    assert_non_null(strstr(html, "measured p95 0.450 s"));
    /* cards and tables: late and dropped, checks */
    assert_non_null(strstr(html, "<div class=\"v\">12 / 3</div>"));
    assert_non_null(strstr(html, "<table id=\"checks\">"));
    assert_int_equal(count(html, "<span class=\"verdict "), m.nchecks + 1);
    assert_non_null(strstr(html, "1 s buckets"));
    free(html);
    slo_metrics_free(&m);
}

static void test_late_dropped_figures(void **state)
{
    char db[128], err[256] = "", *md, *json;
    struct run_metrics m;
    cJSON *root, *all, *before;

    (void)state;
    snprintf(db, sizeof db, "%s/run.db", dir);
    write_run(db);
    if (report_write_all(db, dir, &m, err, sizeof err) != 0)
        fail_msg("report: %s", err);
    assert_int_equal(m.all.late, 12);
    assert_int_equal(m.all.dropped, 3);
    assert_int_equal(m.before.late, 2); /* 49 and 99; 149 was still running at 8 s */
    assert_float_equal(m.all.start_gap_p99_s, 0.003, 1e-9);
    assert_float_equal(m.before.start_gap_p99_s, 0.003, 1e-9); /* 2 of 144 > 1% */

    md = slurp("closeout.md");
    assert_non_null(md);
    assert_non_null(strstr(md, "## Load generator"));
    assert_non_null(strstr(md, "- 0.0 s: constant 20/s for 30 s"));
    assert_non_null(strstr(md, "| all | 600 | 12 | 3 | 3.000 ms |"));
    assert_null(strstr(md, "Closed loop"));
    free(md);

    json = slurp("report.json");
    root = cJSON_Parse(json);
    assert_non_null(root);
    all = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "phases"), "all");
    before = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "phases"), "before");
    assert_int_equal(cJSON_GetObjectItem(all, "late")->valueint, 12);
    assert_int_equal(cJSON_GetObjectItem(all, "dropped")->valueint, 3);
    assert_int_equal(cJSON_GetObjectItem(before, "dropped")->valueint, 0);
    assert_float_equal(cJSON_GetObjectItem(all, "start_gap_p99_s")->valuedouble, 0.003, 1e-9);
    cJSON_Delete(root);
    free(json);
    slo_metrics_free(&m);
}

/* Two hours with a request a minute: buckets widen to keep the page small;
 * a closed-loop run says so in the closeout. */
static void test_long_closed_run(void **state)
{
    char db[128], err[256] = "", *html, *md;
    struct rundb *w;
    struct req_record r;
    int64_t i;

    (void)state;
    snprintf(db, sizeof db, "%s/run.db", dir);
    w = rundb_create(db, "long", "{}", 1767225600000000ULL, err, sizeof err);
    assert_non_null(w);
    for (i = 0; i < 120; i++) {
        memset(&r, 0, sizeof r);
        r.seq = i;
        r.intended_us = r.started_us = i * 60 * S;
        r.first_byte_us = r.first_token_us = r.intended_us + 100000;
        r.end_us = r.intended_us + 200000;
        r.http_status = 200;
        r.outcome = OUTCOME_OK;
        r.cost_usd = -1;
        snprintf(r.provider, sizeof r.provider, "p%d", (int)(i % 9)); /* > 6 series */
        assert_int_equal(rundb_add_request(w, &r), 0);
    }
    assert_int_equal(rundb_event(w, 0, "load", "closed", "closed loop: 4 workers for 7200 s"), 0);
    assert_int_equal(rundb_finish(w, "complete", 7200 * S), 0);
    if (report_write_all(db, dir, NULL, err, sizeof err) != 0)
        fail_msg("report: %s", err);
    html = slurp("report.html");
    assert_non_null(html);
    assert_non_null(strstr(html, "2 s buckets (the run is long)"));
    assert_non_null(strstr(html, "data-series=\"other\""));
    assert_int_equal(count(html, "data-series="), 7); /* six providers and "other" */
    assert_true(strlen(html) < 2000000);
    free(html);
    md = slurp("closeout.md");
    assert_non_null(strstr(md, "**Closed loop.**"));
    free(md);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_html_page, setup, teardown),
        cmocka_unit_test_setup_teardown(test_late_dropped_figures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_closed_run, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
