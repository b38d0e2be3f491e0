/* metrics.h -- the router's counters and histograms, rendered in Prometheus text format.
 *
 * Pure bookkeeping for GET /metrics. Two views, under distinct names:
 *   - the edge: one count per client request when it ends, by model_name
 *     alias and outcome (the run DB's class names), with its time to first
 *     token, duration and cost: what the SLO and the alert rules read;
 *   - upstream attempts per deployment, by the core's class: what failover
 *     hid from clients.
 * The series and their meaning are listed in docs/reports.md; the alert
 * rules (reports/alerts.c) are tested against a real scrape. Text format 0.0.4. */
#ifndef SLODRILL_ROUTER_METRICS_H
#define SLODRILL_ROUTER_METRICS_H

#include <stddef.h>
#include "common/compiler.h"
#include "router/core.h"

struct router_config;
struct buf;
struct metrics;

/* cfg is borrowed and must outlive the metrics (its aliases and deployment
 * ids are the label values). Caller frees with metrics_free. */
struct metrics *metrics_new(const struct router_config *cfg) WUR;
void metrics_free(struct metrics *m);

/* Tokens of one answer as the provider reported them; < 0 unknown. prompt
 * counts every input token, cache reads and writes included. */
struct metrics_usage {
    long prompt, completion, cache_read, cache_write;
};

/* One attempt on dep ended with cls after duration_s; ttft_s is its time to
 * first token (< 0 when none came); u (may be NULL) and cost (< 0 unknown)
 * count for answers that carried usage. */
void metrics_attempt(struct metrics *m, int dep, enum core_class cls, double duration_s,
                     double ttft_s, const struct metrics_usage *u, double cost);

/* One client request ended. alias: the model_name it was served under
 * (borrowed; NULL or a name the config does not have counts under
 * alias=""); outcome: "ok", "retryable_error", "timeout", "client_error",
 * "rejected_by_budget", "rate_limited", "served_from_cache" or "cancelled"
 * (anything else counts as "retryable_error"); ttft_s: arrival to the first
 * byte sent (< 0 none; observed for ok and served_from_cache only, as the
 * SLO's latency is); duration_s: arrival to the end; cost: what the request
 * cost (< 0 unknown). */
void metrics_request(struct metrics *m, const char *alias, const char *outcome, double ttft_s,
                     double duration_s, double cost);

/* Appends the exposition text to out. 0 or -1 (buffer full). */
int metrics_render(const struct metrics *m, struct buf *out) WUR;

#endif
