/* slofile.h -- the SLO file: the team's promise and the figures that fill slo.md.
 *
 * YAML (docs/slo-file.md). The five SLO keys are the scenario's slo: keys
 * (success_rate, p95_latency_s, avg_cost_usd, window_days, monthly_requests);
 * a scenario file works too (its slo: block is read). Everything else fills
 * the SLO one-pager and the SOW clause, and prices: gives per-model prices
 * for requests whose response names no cost. */
#ifndef SLODRILL_SLOFILE_H
#define SLODRILL_SLOFILE_H

#include <stddef.h>
#include "common/compiler.h"
#include "reports/slo.h"

#define SLOFILE_MAX_FEATURES 16
#define SLOFILE_MAX_PRICES 32

struct slofile_price {
    char model[128];
    double input_per_mtok, output_per_mtok; /* USD per million tokens */
};

/* Numbers are < 0 and strings "" when the file does not set them. */
struct slofile {
    char service[128];
    char features[SLOFILE_MAX_FEATURES][64];
    size_t nfeatures;
    struct slo_targets t;          /* success_rate, p95_latency_s, avg_cost_usd, window_days,
                                      monthly_requests */
    double requests_per_day, peak_rps;
    double failover_target_s, min_success_during_failover;
    double retention_days, trial_days, maint_minutes, maint_count, credit_pct;
    char obs_tool[128], oncall[128], primary_api_base[256];
    struct slofile_price prices[SLOFILE_MAX_PRICES];
    size_t nprices;
};

/* Loads path. Unknown keys, wrong types and out-of-range values are errors
 * with file:line:col. 0 or -1. */
int slofile_load(const char *path, struct slofile *out, char *err, size_t errlen) WUR;

/* The price for model (exact name, else the part after the last '/'), or
 * NULL. Borrowed from sf. */
const struct slofile_price *slofile_price_for(const struct slofile *sf, const char *model);

#endif
