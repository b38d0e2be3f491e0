/* gate.h -- the CI gate: one router config through a suite of scenarios. */
#ifndef SLODRILL_GATE_H
#define SLODRILL_GATE_H

#include <stddef.h>
#include "common/compiler.h"

struct gate_opts {
    const char *config;           /* the LiteLLM config under test */
    const char *const *scenarios; /* scenario files */
    size_t nscenarios;
    const char *junit;            /* NULL: <out>/junit.xml */
    const char *out_dir;          /* NULL: runs/gate-<UTC time> */
    int quiet, progress_tty, color;
    int jobs;                     /* scenarios run at once (0: up to 4) */
    const char *baseline;         /* NULL, or the old config to compare against */
};

/* Runs every scenario against the config; prints the verdict table to
 * stdout. Returns the exit code: 0 all passed, 1 any failed, 2 bad input
 * (nothing ran), 130 interrupted.
 *
 * With a baseline, every scenario also runs with the old config (same seed,
 * same time, its own ports); reports go under <out>/candidate/<scenario> and
 * <out>/baseline/<scenario>, and a second table shows per scenario the
 * verdict, TTF, TTR, p95, success rate and average cost, old -> new with the
 * change. The exit code, the verdict table and the JUnit test cases are the
 * candidate's; each JUnit suite carries the baseline's figures as
 * <properties> (baseline.verdict, baseline.ttf_s, ...). */
int gate_run(const struct gate_opts *o);

#endif
