/* runner.h -- plays one scenario: fakes, router, load, fault timeline, reports.
 *
 * DESIGN: three event loops on three threads. The fakes share one loop, the
 * built-in router has its own (so its latency is not the fakes' or the load
 * generator's), and the load generator, the fault timeline, the progress line
 * and the stop rule run on the caller's loop. Faults cross threads through
 * fake_fault_add/clear (thread-safe); router events reach the run DB through
 * its thread-safe queue. Everything is measured on one monotonic run clock
 * whose zero is the first request's intended start. */
#ifndef SLODRILL_RUNNER_H
#define SLODRILL_RUNNER_H

#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include "common/compiler.h"
#include "harness/scenario.h"
#include "reports/slo.h"

struct run_opts {
    const char *config_override; /* gate: this LiteLLM config instead of the scenario's */
    const char *out_dir;         /* NULL: <runs_root>/<name>-<UTC time> */
    const char *runs_root;       /* default "runs" */
    uint64_t seed;               /* used when seed_set */
    int seed_set;
    int quiet;                   /* no progress line */
    int realtime;                /* the generator's thread asks for SCHED_FIFO (thread_realtime) */
    int progress_tty;            /* 1: redraw one line; 0: a plain line every 5 s */
    int color;                   /* ANSI colours in the final summary */
    /* NULL: the run handles SIGINT/SIGTERM itself. Otherwise the caller
     * does (several runs at once cannot all own the signals) and sets
     * *cancel to the signal number; the run then ends as interrupted. */
    volatile sig_atomic_t *cancel;
};

/* Exit codes, as DESIGN.md and the README document them. */
enum {
    RUN_EXIT_PASS = 0,
    RUN_EXIT_FAIL = 1,
    RUN_EXIT_USAGE = 2,
    RUN_EXIT_STOPPED = 3,
    RUN_EXIT_INTERRUPTED = 130
};

struct run_result {
    char out_dir[PATH_MAX];
    char summary[256];           /* "TTR=..s, p95=..s, SR=..%" */
    int exit_code;
    struct run_metrics metrics;  /* caller frees with slo_metrics_free */
    int have_metrics;
};

/* Plays s; fills res (res->exit_code is the process exit code to use). -1
 * only when nothing could run (bad config, ports, output folder): err says
 * why and res->exit_code is RUN_EXIT_USAGE or RUN_EXIT_FAIL. */
int runner_run(const struct scenario *s, const struct run_opts *o, struct run_result *res,
               char *err, size_t errlen) WUR;

/* Checks that the router config loads with the scenario's environment
 * (provider URLs stubbed), without starting anything. */
int runner_check_config(const struct scenario *s, const char *config, char *err,
                        size_t errlen) WUR;

struct router_config;

/* Loads the router config (NULL: the scenario's own) with the scenario's
 * router.env expanded for provider root URLs urls[i] (borrowed), as a run
 * does; for callers that start the fakes and the router themselves (drill
 * --auto). Caller frees with router_config_free. NULL with the reason in err. */
struct router_config *runner_config_load(const struct scenario *s, const char *config,
                                         const char *const *urls, char *err,
                                         size_t errlen) WUR;

/* The signal that interrupted the last run, or 0. */
int runner_interrupted(void);

#endif
