/* cmd_lint.c -- `slodrill lint CONFIG`: what a LiteLLM config says that LiteLLM does not do. */
#include <stdio.h>
#include <string.h>

#include "harness/commands.h"
#include "router/lint.h"

static const char usage_lint[] =
    "usage: slodrill lint CONFIG\n"
    "\n"
    "Reads a LiteLLM config.yaml (without resolving os.environ/ values) and\n"
    "reports, as FILE:LINE:COL: CODE: what happens, keys LiteLLM ignores\n"
    "silently (cooldown_time under litellm_settings, enable_weighted_failover,\n"
    "misspelt and unknown keys), keys that do something else than they read\n"
    "(stream_timeout), settings that multiply (max_retries per deployment with\n"
    "num_retries and SDK retries) and half-set order or weight within an alias.\n"
    "docs/routing.md, \"Lint\", explains each finding.\n"
    "\n"
    "exit codes: 0 nothing found, 1 findings, 2 the file cannot be read or is not YAML.\n";

struct lint_out {
    const char *path;
    int n;
};

static void print_finding(const struct lint_finding *f, void *arg)
{
    struct lint_out *o = arg;
    printf("%s:%d:%d: %s: %s\n", o->path, f->line, f->col, f->code, f->message);
    o->n++;
}

int cmd_lint(int argc, char **argv)
{
    struct lint_out o = {NULL, 0};
    char err[1024] = "";
    int i, n;

    for (i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage_lint, stdout);
            return 0;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "slodrill lint: unknown option '%s'\n\n%s", argv[i], usage_lint);
            return 2;
        } else if (o.path) {
            fprintf(stderr, "slodrill lint: one config at a time; '%s' is one too many\n\n%s",
                    argv[i], usage_lint);
            return 2;
        }
        o.path = argv[i];
    }
    if (!o.path) {
        fprintf(stderr, "slodrill lint: which config? give a LiteLLM config.yaml\n\n%s",
                usage_lint);
        return 2;
    }
    n = lint_config(o.path, print_finding, &o, err, sizeof err);
    if (n < 0) {
        fprintf(stderr, "slodrill lint: %s\n", err);
        return 2;
    }
    fprintf(stderr, "%s: %d finding%s\n", o.path, n, n == 1 ? "" : "s");
    fflush(stdout);
    return n > 0 ? 1 : 0;
}
