/* promote.h -- the change-promotion check: a candidate model on N sample requests.
 *
 * The rule (the SLO's change management): a model or provider change is
 * promoted only when it meets the p95 latency target on the samples at 95%
 * confidence and its average cost per request stays within the SLO. "p95 <=
 * T at 95% confidence" is shown by counting requests slower than T (failures
 * count as slower): with 200 samples at most 4 may be (slo_exceedances_allowed).
 * promote_analyze is pure (run data in, figures and a verdict out);
 * promote_write writes promotion.md and promotion.json. */
#ifndef SLODRILL_PROMOTE_H
#define SLODRILL_PROMOTE_H

#include <stddef.h>
#include "common/compiler.h"
#include "reports/rundb.h"
#include "reports/slo.h"

struct slofile;

struct promote_arm {
    char role[16];            /* "candidate" or "baseline" */
    char model[128];          /* the model asked for */
    struct slo_figures f;     /* first-token latency figures, p95 target exceedances */
    double total_p50_s, total_p95_s; /* whole-answer latency over ok requests; -1 none */
    double p50_lo_s, p50_hi_s;       /* 95% interval of the median first token; NAN too few */
    double avg_input_tokens, avg_output_tokens; /* over ok requests; -1 none */
    size_t dropped;           /* not sent: the concurrency bound was full */
    size_t cost_from_response, cost_from_prices, cost_unknown; /* where each ok cost came from */
    size_t cost_counted;      /* answers the average is over */
    double avg_cost_usd;      /* per answered request; -1 unknown */
    int p95_pass, cost_pass;  /* 1 pass, 0 fail */
    int passed;
    char p95_reason[512], cost_reason[512];
};

struct promote_result {
    double p95_target_s, avg_cost_max_usd; /* < 0 unset (cost then not checked) */
    struct promote_arm cand, base;
    int have_base;
    /* Pairwise (same seeded prompt sequence; pair k = the k-th request of each arm). */
    size_t pairs;             /* pairs where both were answered */
    double median_diff_s;     /* median first token: candidate - baseline */
    double paired_median_s;   /* median of per-pair differences */
    double paired_lo_s, paired_hi_s; /* 95% sign-test interval of that; NAN too few */
    int promote;              /* the verdict */
};

/* Fills r from the candidate's (and, when base is not NULL, the baseline's)
 * run data. sf (may be NULL) supplies prices for requests whose response gave
 * no cost. -1 only when out of memory. */
int promote_analyze(const struct run_data *cand, const char *cand_model,
                    const struct run_data *base, const char *base_model,
                    const struct slofile *sf, double p95_target_s, double avg_cost_max_usd,
                    struct promote_result *r) WUR;

/* Writes dir/promotion.md and dir/promotion.json. target is shown as given.
 * 0, or -1 with err. */
int promote_write(const struct promote_result *r, const char *dir, const char *target,
                  char *err, size_t errlen) WUR;

/* The one-line verdict people paste, into out. */
void promote_summary(const struct promote_result *r, char *out, size_t outlen);

#endif
