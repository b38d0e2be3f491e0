/* lint.h -- `slodrill lint`: what a LiteLLM config says that LiteLLM does not do.
 *
 * Reads a LiteLLM-style config.yaml (structure only: os.environ/ values are
 * not resolved) and reports, each with its line and column, keys LiteLLM
 * ignores silently, keys that mean something else in LiteLLM than they read
 * (or than in slodrill's router), and settings that multiply or shadow each
 * other. The facts behind every finding are in docs/routing.md, "Lint". */
#ifndef SLODRILL_ROUTER_LINT_H
#define SLODRILL_ROUTER_LINT_H

#include <stddef.h>
#include "common/compiler.h"

struct lint_finding {
    int line, col;
    const char *code;    /* short id: ignored-setting, misspelt-key, unknown-key, ... */
    const char *message; /* one sentence or two: what happens, and what to write instead */
};

/* Lints the config at path; cb gets each finding in file order (borrowed
 * strings, valid during the call). Returns the number of findings, or -1
 * with "file:line:col: ..." in err when the file cannot be read or is not
 * YAML, or is not a map. */
int lint_config(const char *path, void (*cb)(const struct lint_finding *f, void *arg), void *arg,
                char *err, size_t errlen) WUR;

#endif
