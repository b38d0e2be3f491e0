/* cmd_alerts.c -- `slodrill alerts`: Prometheus alerting rules for an SLO, and a promtool test from a run. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "common/path.h"
#include "harness/commands.h"
#include "harness/slofile.h"
#include "reports/alerts.h"
#include "reports/rundb.h"

static const char usage_alerts[] =
    "usage: slodrill alerts SLO_OR_SCENARIO [--from-run RUN_DB] [--out DIR]\n"
    "\n"
    "Writes DIR/slodrill-alerts.rules.yml: Prometheus alerting rules for the SLO\n"
    "(an SLO file, docs/slo-file.md, or the slo: block of a scenario): p95 time to\n"
    "first token over target for 15m, success rate under target for 5m, average\n"
    "cost per request over budget for 15m, and the SRE workbook's burn-rate pairs\n"
    "(14.4x over 1h and 5m; 6x over 6h and 30m), all severity: page, on the series\n"
    "the router exports at /metrics.\n"
    "\n"
    "With --from-run it also writes DIR/slodrill-alerts.test.yml, a `promtool test\n"
    "rules` file built from the run's requests (each second of the run becomes one\n"
    "minute of series), and prints which alerts would have fired and when.\n"
    "\n"
    "  --from-run RUN_DB  the run.db of a drill\n"
    "  --out DIR          where to write (default: the current folder)\n"
    "\n"
    "exit codes: 0 written; 2 bad usage, SLO file or run DB.\n";

static int alerts_usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "slodrill: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n\n%s", usage_alerts);
    return 2;
}

/* Writes path through path.tmp and a rename. */
static int alerts_open(const char *dir, const char *name, char *path, size_t pathlen,
                       char *tmp, size_t tmplen, FILE **f)
{
    if ((size_t)snprintf(path, pathlen, "%s/%s", dir, name) >= pathlen ||
        (size_t)snprintf(tmp, tmplen, "%s.tmp", path) >= tmplen) {
        fprintf(stderr, "slodrill: output path too long\n");
        return -1;
    }
    *f = fopen(tmp, "w");
    if (*f == NULL) {
        fprintf(stderr, "slodrill: cannot write %s: %s\n", tmp, strerror(errno));
        return -1;
    }
    return 0;
}

static int alerts_close(FILE *f, int ok, const char *path, const char *tmp)
{
    if (fclose(f) != 0) ok = 0;
    if (!ok || rename(tmp, path) != 0) {
        if (ok) fprintf(stderr, "slodrill: cannot rename %s: %s\n", tmp, strerror(errno));
        (void)remove(tmp);
        return -1;
    }
    return 0;
}

int cmd_alerts(int argc, char **argv)
{
    const char *file = NULL, *run = NULL, *out = ".";
    char err[1024] = "", path[4096], tmp[4200];
    struct alerts_spec spec;
    struct slofile sf;
    struct alerts_result res;
    struct run_data *d = NULL;
    FILE *f = NULL;
    size_t i;
    int a, code = 2;

    for (a = 0; a < argc; a++) {
        if (strcmp(argv[a], "--help") == 0 || strcmp(argv[a], "-h") == 0) {
            fputs(usage_alerts, stdout);
            return 0;
        } else if (strcmp(argv[a], "--from-run") == 0 && a + 1 < argc) {
            run = argv[++a];
        } else if (strcmp(argv[a], "--out") == 0 && a + 1 < argc) {
            out = argv[++a];
        } else if (argv[a][0] == '-') {
            return alerts_usage("unknown option '%s'", argv[a]);
        } else if (file == NULL) {
            file = argv[a];
        } else {
            return alerts_usage("one SLO file at a time; '%s' is one too many", argv[a]);
        }
    }
    if (file == NULL) return alerts_usage("%s", "which SLO? give a scenario or an SLO file");
    if (slofile_load(file, &sf, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        goto out;
    }
    alerts_spec_init(&spec, sf.service[0] ? sf.service : file, &sf.t);
    {   /* "support.yaml" names the SLO "support" */
        char *dot = strstr(spec.name, ".yaml");
        if (dot == NULL) dot = strstr(spec.name, ".yml");
        if (dot != NULL && !sf.service[0]) *dot = '\0';
    }
    if (run != NULL && (d = rundb_load(run, err, sizeof err)) == NULL) {
        fprintf(stderr, "slodrill: %s\n", err);
        goto out;
    }
    if (path_mkdirs(out) != 0) {
        fprintf(stderr, "slodrill: cannot create %s: %s\n", out, strerror(errno));
        goto out;
    }
    if (alerts_open(out, "slodrill-alerts.rules.yml", path, sizeof path, tmp, sizeof tmp, &f))
        goto out;
    if (alerts_close(f, alerts_write_rules(f, &spec, file, err, sizeof err) == 0, path, tmp)) {
        if (err[0]) fprintf(stderr, "slodrill: %s\n", err);
        goto out;
    }
    printf("rules: %s\n", path);
    if (d != NULL) {
        if (alerts_open(out, "slodrill-alerts.test.yml", path, sizeof path, tmp, sizeof tmp, &f))
            goto out;
        if (alerts_close(f, alerts_write_test(f, &spec, d, "slodrill-alerts.rules.yml", &res, err,
                                              sizeof err) == 0,
                         path, tmp)) {
            if (err[0]) fprintf(stderr, "slodrill: %s\n", err);
            goto out;
        }
        printf("test: %s (promtool test rules; each second of the run is one minute of "
               "series)\n", path);
        if (res.nfired == 0) printf("during this drill no alert would have fired\n");
        for (i = 0; i < res.nfired; i++) {
            if (res.fired[i].to_min >= 0)
                printf("%s would have fired at %d s and resolved at %d s\n", res.fired[i].alert,
                       res.fired[i].from_min, res.fired[i].to_min);
            else
                printf("%s would have fired at %d s and still be firing at the end\n",
                       res.fired[i].alert, res.fired[i].from_min);
        }
        if (res.skipped)
            printf("(%zu of %zu checks left out: too close to their threshold to call)\n",
                   res.skipped, res.skipped + res.asserts);
    }
    code = 0;
out:
    rundb_data_free(d);
    return code;
}
