/* metrics.h -- per-deployment counters and histograms, rendered in Prometheus text format.
 *
 * Pure bookkeeping for GET /metrics: the proxy records each upstream attempt
 * as it ends; metrics_render writes the exposition text (format 0.0.4). */
#ifndef SLODRILL_ROUTER_METRICS_H
#define SLODRILL_ROUTER_METRICS_H

#include <stddef.h>
#include "common/compiler.h"
#include "router/core.h"

struct router_config;
struct buf;
struct metrics;

/* cfg is borrowed and must outlive the metrics. Caller frees with metrics_free. */
struct metrics *metrics_new(const struct router_config *cfg) WUR;
void metrics_free(struct metrics *m);

/* One attempt on dep ended with cls after duration_s; ttft_s is its time to
 * first token (< 0 when none came); tokens and cost (< 0 unknown) count for
 * answers that carried usage. */
void metrics_attempt(struct metrics *m, int dep, enum core_class cls, double duration_s,
                     double ttft_s, long prompt_tokens, long completion_tokens, double cost);

/* Appends the exposition text to out. 0 or -1 (buffer full). */
int metrics_render(const struct metrics *m, struct buf *out) WUR;

#endif
