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
};

/* Runs every scenario against the config; prints the verdict table to
 * stdout. Returns the exit code: 0 all passed, 1 any failed, 2 bad input
 * (nothing ran). */
int gate_run(const struct gate_opts *o);

#endif
