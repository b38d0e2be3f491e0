/* alerts.h -- Prometheus alerting rules for an SLO, and a promtool test built from a run.
 *
 * The rules watch the edge series the router exports at /metrics
 * (docs/reports.md lists them): slodrill_requests_total{alias,outcome} (client
 * requests, once each, outcomes as the run DB names them),
 * slodrill_time_to_first_token_seconds_bucket{alias,le}, slodrill_cost_usd_total{alias};
 * every label but outcome and le is summed away. The router shares no code
 * with this file: tests/e2e_alerts.sh checks the rules against a real scrape.
 * With a run DB, alerts_write_test turns the run into those series (each
 * second of the run becomes one minute of series) and predicts, with the
 * evaluation rules of Prometheus 2 (rate's extrapolation, histogram_quantile's
 * interpolation, the for: hold), which alerts fire and when; `promtool test
 * rules` then checks the rules against that prediction. */
#ifndef SLODRILL_ALERTS_H
#define SLODRILL_ALERTS_H

#include <stddef.h>
#include <stdio.h>
#include "common/compiler.h"
#include "reports/rundb.h"
#include "reports/slo.h"

#define ALERTS_MAX 5

struct alerts_spec {
    char name[64];              /* the SLO's name, [A-Za-z0-9_.-] only */
    struct slo_targets slo;
};

/* Fills out from targets (copied) and a name (any text: a service name or
 * a file path, whose folder is dropped; characters outside [A-Za-z0-9_.-]
 * become '-'). */
void alerts_spec_init(struct alerts_spec *out, const char *name, const struct slo_targets *t);

/* Writes the rules file (YAML). -1 when the SLO sets no target or on a write
 * error, with err. */
int alerts_write_rules(FILE *f, const struct alerts_spec *s, const char *source, char *err,
                       size_t errlen) WUR;

/* What the drill would have fired: one line per alert and interval. */
struct alerts_firing {
    char alert[64];
    int from_min, to_min;       /* series minutes = run seconds; to_min -1: still firing */
};

struct alerts_result {
    struct alerts_firing fired[64];
    size_t nfired;
    size_t minutes;             /* evaluation steps written */
    size_t asserts;             /* alert_rule_test entries written */
    size_t skipped;             /* entries left out: the prediction was too close to call */
};

/* Writes a `promtool test rules` file for d that loads rules_file (a path
 * relative to the test file). 0, or -1 with err. */
int alerts_write_test(FILE *f, const struct alerts_spec *s, const struct run_data *d,
                      const char *rules_file, struct alerts_result *res, char *err,
                      size_t errlen) WUR;

#endif
