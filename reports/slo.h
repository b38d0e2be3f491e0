/* slo.h -- the SLIs of DESIGN.md computed from a run, and the checks.
 *
 * Pure functions over struct run_data: no I/O. Definitions (docs/measurement.md):
 * - success rate = 1 - failures / total, failures = outcome_is_failure();
 * - latency = first token (or first byte when no token came) minus the
 *   intended start; a failed request counts as slower than any target;
 * - percentiles are exact order statistics, nearest-rank: the ceil(p*n)-th
 *   smallest; the 95% interval is distribution-free (binomial order
 *   statistics);
 * - TTF = first fault_on to the first token of the first ok request served by
 *   another provider that started after the fault;
 * - TTR = first fault_on until the rolling success rate (window 5 s) is at or
 *   above the SLO and stays there to the end of the run;
 * - back on primary = last fault_off until the primary (the provider that
 *   served most before the first fault) serves again. */
#ifndef SLODRILL_SLO_H
#define SLODRILL_SLO_H

#include <stddef.h>
#include <stdint.h>
#include "common/compiler.h"
#include "reports/rundb.h"

/* Targets; a negative value means "not set". */
struct slo_targets {
    double success_rate;      /* percent, e.g. 99.5 */
    double p95_latency_s;
    double avg_cost_usd;
    double window_days;
    double monthly_requests;
};

/* Scenario expectations; negative means "not checked". */
struct expectations {
    double failover_within_s;
    double success_rate_min;   /* percent */
    double p95_latency_s;
    double back_on_primary_within_s;
    double recover_within_s;   /* TTR bound */
    double avg_cost_max_usd;
};

void slo_targets_unset(struct slo_targets *t);
void expectations_unset(struct expectations *e);

/* Figures over one set of requests. */
struct slo_figures {
    size_t total, ok, failures, client_errors;
    size_t timeouts, rate_limited, rejected, from_cache; /* by outcome */
    size_t stale;                 /* from_cache answers that were stale (travel mode) */
    double success_rate;          /* percent; -1 when total == 0 */
    double p50_s, p95_s, p99_s;   /* -1 when total == 0; +inf possible */
    double p95_lo_s, p95_hi_s;    /* 95% distribution-free interval; NAN when
                                   * too few samples for one */
    double avg_cost_usd, p95_cost_usd; /* -1 when no request reported a cost */
    size_t cost_reported;         /* requests that reported a cost */
    size_t cost_counted;          /* requests the cost average is over (unserved
                                   * ones without a cost count as $0) */
    size_t over_target;           /* requests slower than the p95 target (failures count) */
    size_t over_allowed;          /* the most that may exceed for "p95 <= T at 95%" */
    int gate_possible;            /* total >= slo_min_samples(0.95, 0.95) */
    /* The load generator's honesty (docs/measurement.md, "Late and dropped"):
     * late: sent more than SLO_LATE_US after their intended start; dropped:
     * never sent (started_us < 0: max_inflight reached, or could not start).
     * start_gap_p99_s: nearest-rank p99 of started - intended over the sent
     * requests (-1 when none was sent). */
    size_t late, dropped;
    double start_gap_p99_s;
};

/* A request sent later than this after its intended start counts as late
 * (the load generator's own threshold). */
#define SLO_LATE_US 1000

/* Computes figures over requests whose intended start lies in [from_us, to_us).
 * p95_target_s < 0 leaves over_target/over_allowed 0. -1 out of memory. */
int slo_figures_compute(const struct run_data *d, int64_t from_us, int64_t to_us,
                        double p95_target_s, struct slo_figures *out) WUR;

/* Latency of one request in seconds: first token, else first byte, else end,
 * minus the intended start; +inf for a failure or when nothing is known. */
double slo_request_latency_s(const struct req_record *r);

/* Nearest-rank order statistic of sorted v[0..n-1]; p in (0,1]. */
double slo_quantile_sorted(const double *v, size_t n, double p);
/* Ranks (1-based) lo..hi such that [v(lo), v(hi)] covers the p-quantile with
 * at least conf probability, distribution-free. -1 when n is too small. */
int slo_quantile_ci_ranks(size_t n, double p, double conf, size_t *lo, size_t *hi);
/* The largest k such that "at most k of n exceed T" still shows the
 * p-quantile <= T at confidence conf (binomial tail):
 * P(Binomial(n, 1 - p) <= k) <= 1 - conf. (200, 0.95, 0.95) gives 4.
 * Also 0 when no k works (n < slo_min_samples): check that first. */
size_t slo_exceedances_allowed(size_t n, double p, double conf);
/* The fewest samples for which even zero exceedances show the p-quantile
 * <= T at confidence conf: smallest n with p^n <= 1 - conf (59 for 0.95/0.95). */
size_t slo_min_samples(double p, double conf);

enum check_verdict { CHECK_PASS, CHECK_FAIL, CHECK_NOT_MEASURED };

struct slo_check {
    char name[64];       /* "success_rate", "p95_latency", "failover_within", ... */
    char phase[16];      /* "all", "before", "during", "after" */
    enum check_verdict verdict;
    double measured;     /* in unit; NAN when not measured */
    double target;
    char unit[8];        /* "%", "s", "usd" */
    char detail[512];    /* one plain sentence: why it passed or failed */
};

struct run_metrics {
    struct slo_figures all, before, during, after;
    int64_t first_fault_us, last_clear_us;  /* -1 when none / never cleared */
    int64_t end_us;               /* end of the run on the run clock */
    char faulted[64];             /* provider TTF counts away from */
    double ttr_target;            /* success rate TTR recovers to; -1 none */
    double ttf_s, ttr_s, back_on_primary_s; /* -1 when not observed */
    char primary[64], failover_to[64];
    double budget_allowed_reqs;   /* (1 - SLO) x monthly requests */
    double budget_spent_reqs;     /* failure fraction of this run x monthly requests */
    double budget_spent_pct;
    int stopped;                  /* a "stop" event is present */
    int incomplete;               /* status "incomplete" */
    struct slo_check *checks;
    size_t nchecks;
    int passed;                   /* no check is CHECK_FAIL */
};

/* Computes everything; checks come from targets and expectations. Caller
 * frees with slo_metrics_free. */
int slo_metrics_compute(const struct run_data *d, const struct slo_targets *slo,
                        const struct expectations *exp, struct run_metrics *out) WUR;
void slo_metrics_free(struct run_metrics *m);

#endif
