/* report.h -- every report of a run, computed from its run DB.
 *
 * The run's meta_json (written by the harness) carries the SLO targets and
 * expectations in this shape; unknown members are ignored:
 *   { "scenario": { "name": "...", "file": "...", "description": "..." },
 *     "slo":    { "success_rate": 99.5, "p95_latency_s": 2.5, "avg_cost_usd": 0.015,
 *                 "window_days": 30, "monthly_requests": 10000 },
 *     "expect": { "failover_within_s": 2, "success_rate_min": 99.5, "p95_latency_s": 2.5,
 *                 "back_on_primary_within_s": 40, "recover_within_s": 10 },
 *     "seed": 1, "config": "scenarios/configs/two-provider.yaml",
 *     "providers": [ { "name": "primary", "dialect": "openai", "url": "http://..." } ],
 *     "traffic": { "model": "app/chat", "rate": 20, "duration_s": 30, "stream": true } } */
#ifndef SLODRILL_REPORT_H
#define SLODRILL_REPORT_H

#include <stddef.h>
#include <stdio.h>
#include "common/compiler.h"
#include "reports/slo.h"

/* Reads targets and expectations from meta_json. 0, or -1 with err. */
int report_read_meta(const char *meta_json, struct slo_targets *slo, struct expectations *exp,
                     char *err, size_t errlen) WUR;

/* The one-line summary people paste: "TTR=4.2s, p95=0.61s, SR=99.83%"
 * ("TTR=n/a" when no fault was injected). */
void report_summary_line(const struct run_metrics *m, char *out, size_t outlen);

/* One <testsuite> element (indented, no XML declaration) with a <testcase>
 * per check: <failure> for CHECK_FAIL, <skipped> for CHECK_NOT_MEASURED.
 * For `gate`, which puts several scenarios in one file inside its own
 * <testsuites>. suite is escaped here. 0, or -1 on a write error. */
int report_write_junit_suite(FILE *f, const char *suite, const struct run_metrics *m) WUR;

/* Escapes in for XML text and attributes (& < > " ' newline tab), after
 * replacing invalid UTF-8 and control characters with '?'. -1 when out is
 * too small (out then holds the part that fit). */
int report_xml_escape(const char *in, char *out, size_t outlen) WUR;

/* Writes report.html to f: summary figures, four inline-SVG charts (ids
 * chart-success, chart-p95, chart-providers, chart-latency-hist), the phase
 * and checks tables and the events, one self-contained page (no script, no
 * external resource). All pointers borrowed; description may be "". 0, or -1
 * out of memory or on a write error. */
int report_html_write(FILE *f, const struct run_data *d, const struct run_metrics *m,
                      const struct slo_targets *slo, const char *title, const char *description,
                      const char *summary) WUR;

/* Writes closeout.md, report.html, report.json and junit.xml into out_dir (created if
 * missing) from the DB at db_path. When metrics_out is not NULL it receives
 * the computed metrics (caller frees with slo_metrics_free). 0, or -1 with err. */
int report_write_all(const char *db_path, const char *out_dir, struct run_metrics *metrics_out,
                     char *err, size_t errlen) WUR;

#endif
