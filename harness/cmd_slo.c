/* cmd_slo.c -- `slodrill slo`: the SLO one-pager and the SOW clause from the SLO file.
 *
 * Figures the file does not give are left as visible "[set KEY]" markers so a
 * page is never published with an invented number. With --from-run the
 * measured figures of a run sit beside the targets. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/path.h"
#include "harness/commands.h"
#include "harness/slofile.h"
#include "reports/report.h"
#include "reports/rundb.h"
#include "reports/slo.h"

static const char slo_usage[] =
    "usage: slodrill slo SLO_FILE [--from-run RUN_DB] [--out DIR]\n"
    "\n"
    "Writes slo.md (scope, SLIs and how they are measured, targets, error budget\n"
    "in requests, burn-rate policy, change management, exclusions) and sow.md (the\n"
    "client-facing SOW clause) from the SLO file (docs/slo-file.md; a scenario's\n"
    "slo: block works too). Figures the file leaves out show as [set KEY].\n"
    "With --from-run, the run's measured figures are added beside the targets.\n"
    "\n"
    "  --from-run RUN_DB  a run.db from slodrill run, gate or drill\n"
    "  --out DIR          where to write (default: the current folder)\n"
    "\n"
    "exit codes: 0 written; 1 the run missed a target; 2 bad file or usage.\n";

#define SLO_BP(...) do { if (buf_printf(__VA_ARGS__) != 0) { /* checked once at the end */ } } while (0)

/* A number or a visible marker naming the key that would set it. */
static const char *slo_num(char *out, size_t n, double v, const char *fmt, const char *key)
{
    if (v < 0) snprintf(out, n, "[set %s]", key);
    else snprintf(out, n, fmt, v);
    return out;
}

static const char *slo_str(const char *v, const char *marker)
{
    return v && v[0] ? v : marker;
}

static void slo_features(const struct slofile *sf, char *out, size_t n)
{
    size_t i, off = 0;
    out[0] = '\0';
    if (sf->nfeatures == 0) {
        snprintf(out, n, "[set features]");
        return;
    }
    for (i = 0; i < sf->nfeatures && off < n; i++) {
        int w = snprintf(out + off, n - off, "%s%s", i ? ", " : "", sf->features[i]);
        if (w < 0) break;
        off += (size_t)w;
    }
}

static int slo_write(const char *dir, const char *name, struct buf *b)
{
    char path[PATH_MAX + 32];
    FILE *fp;
    int rc = -1;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    fp = fopen(path, "w");
    if (fp == NULL) {
        fprintf(stderr, "slodrill slo: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (fputs(b->data ? b->data : "", fp) >= 0) rc = 0;
    if (fclose(fp) != 0) rc = -1;
    if (rc != 0) fprintf(stderr, "slodrill slo: cannot write %s\n", path);
    return rc;
}

int cmd_slo(int argc, char **argv)
{
    const char *file = NULL, *run = NULL, *out = ".";
    struct slofile sf;
    struct run_data *d = NULL;
    struct run_metrics m;
    struct buf b;
    char err[1024] = "", a[64], p[64], c[64], w[64], mr[64], bud[64], feats[1100], t[64], date[32];
    int i, code = 2, have_m = 0;
    double budget = -1;

    memset(&m, 0, sizeof m);
    buf_init(&b, 0);
    for (i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(slo_usage, stdout);
            code = 0;
            goto out;
        } else if (strcmp(argv[i], "--from-run") == 0 && i + 1 < argc) {
            run = argv[++i];
        } else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc) {
            out = argv[++i];
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "slodrill slo: unknown option '%s'\n\n%s", argv[i], slo_usage);
            goto out;
        } else if (file == NULL) {
            file = argv[i];
        } else {
            fprintf(stderr, "slodrill slo: one SLO file at a time; '%s' is one too many\n", argv[i]);
            goto out;
        }
    }
    if (file == NULL) {
        fprintf(stderr, "slodrill slo: which SLO file? (see docs/slo-file.md)\n\n%s", slo_usage);
        goto out;
    }
    if (slofile_load(file, &sf, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        goto out;
    }
    if (sf.t.window_days < 0) sf.t.window_days = 30;
    if (run) {
        d = rundb_load(run, err, sizeof err);
        if (d == NULL) {
            fprintf(stderr, "slodrill slo: %s\n", err);
            goto out;
        }
        if (slo_metrics_compute(d, &sf.t, NULL, &m) != 0) {
            fprintf(stderr, "slodrill slo: out of memory\n");
            goto out;
        }
        have_m = 1;
    }
    if (path_mkdirs(out) != 0) {
        fprintf(stderr, "slodrill slo: cannot create %s: %s\n", out, strerror(errno));
        goto out;
    }
    if (sf.t.success_rate >= 0 && sf.t.monthly_requests >= 0)
        budget = (1.0 - sf.t.success_rate / 100.0) * sf.t.monthly_requests;
    slo_num(a, sizeof a, sf.t.success_rate, "%g", "success_rate");
    slo_num(p, sizeof p, sf.t.p95_latency_s, "%g", "p95_latency_s");
    slo_num(c, sizeof c, sf.t.avg_cost_usd, "%g", "avg_cost_usd");
    slo_num(w, sizeof w, sf.t.window_days, "%g", "window_days");
    slo_num(mr, sizeof mr, sf.t.monthly_requests, "%.0f", "monthly_requests");
    slo_num(bud, sizeof bud, budget, "%.0f", "success_rate and monthly_requests");
    slo_features(&sf, feats, sizeof feats);
    clock_format_utc(clock_wall_us(), date, sizeof date);
    date[10] = '\0';

    /* ---- slo.md ---- */
    SLO_BP(&b, "# %s — Reliability SLO (client-facing)\n\nLast updated: %s\n\n## Scope\n\n",
           slo_str(sf.service, "[set service]"), date);
    SLO_BP(&b, "- Covered features: %s.\n", feats);
    {
        char rpd[64], peak[64];
        SLO_BP(&b, "- Traffic profile: %s requests a day; peak %s requests a second.\n",
               slo_num(rpd, sizeof rpd, sf.requests_per_day, "%.0f", "requests_per_day"),
               slo_num(peak, sizeof peak, sf.peak_rps, "%g", "peak_rps"));
    }
    SLO_BP(&b, "- Measurement window: rolling %s days.\n\n", w);
    SLO_BP(&b, "## SLIs (how we measure)\n\n"
               "- **Success rate** = 1 − (retryable errors + timeouts) / total requests, counted "
               "at the router's edge. Requests refused for the caller's own mistake (400, 404, "
               "413, 422) are not failures.\n"
               "- **p95 latency** = time from the request arriving at our API edge to its first "
               "token (or first byte when not streamed); an exact order statistic over every "
               "request, failures counted as slower than any target, reported with its 95%% "
               "confidence interval.\n"
               "- **Cost per request** = provider charges plus gateway fees divided by total "
               "requests, reported as average and p95.\n\n");
    SLO_BP(&b, "## Targets\n\n| SLI | target |%s\n|---|---|%s\n", have_m ? " measured (drill run) |" : "",
           have_m ? "---|" : "");
    if (have_m) {
        char sr[48], p95[96], cost[48];
        if (m.all.success_rate >= 0) snprintf(sr, sizeof sr, "%.2f%%", m.all.success_rate);
        else snprintf(sr, sizeof sr, "n/a");
        if (isfinite(m.all.p95_s) && m.all.p95_s >= 0) {
            if (isnan(m.all.p95_lo_s)) snprintf(p95, sizeof p95, "%.2f s", m.all.p95_s);
            else if (isfinite(m.all.p95_hi_s))
                snprintf(p95, sizeof p95, "%.2f s (95%% CI %.2f–%.2f s)", m.all.p95_s, m.all.p95_lo_s,
                         m.all.p95_hi_s);
            else snprintf(p95, sizeof p95, "%.2f s (95%% CI %.2f s to failed)", m.all.p95_s, m.all.p95_lo_s);
        } else {
            snprintf(p95, sizeof p95, "failed");
        }
        if (m.all.avg_cost_usd >= 0) snprintf(cost, sizeof cost, "$%.5f", m.all.avg_cost_usd);
        else snprintf(cost, sizeof cost, "not reported");
        SLO_BP(&b, "| Success rate | ≥ %s%% over %s days | %s |\n", a, w, sr);
        SLO_BP(&b, "| p95 latency | ≤ %s s | %s |\n", p, p95);
        SLO_BP(&b, "| Average cost per request | ≤ $%s | %s |\n\n", c, cost);
        SLO_BP(&b, "Measured over %zu requests of run `%s` (%s). %s\n\n", m.all.total, d->name,
               run, m.passed ? "Every target held." : "At least one target was missed.");
    } else {
        SLO_BP(&b, "| Success rate | ≥ %s%% over %s days |\n| p95 latency | ≤ %s s |\n"
                   "| Average cost per request | ≤ $%s |\n\n", a, w, p, c);
    }
    SLO_BP(&b, "## Error budget\n\nBudget = 1 − %s/100 of requests. Over %s days and %s requests, "
               "**%s failed requests are allowed**.",
           a, w, mr, bud);
    if (have_m && m.budget_spent_reqs >= 0)
        SLO_BP(&b, " The drill run failed %zu of %zu requests; at that rate a month would spend "
                   "%.0f requests, %.0f%% of the budget.",
               m.all.failures, m.all.total, m.budget_spent_reqs, m.budget_spent_pct);
    SLO_BP(&b, "\n\n## Measurement and tooling\n\n- Source of truth: %s.\n- Clocks in UTC; "
               "retention %s days.\n- Drills and change checks: `slodrill` (run DB per run, "
               "readable with `sqlite3`).\n\n",
           slo_str(sf.obs_tool, "[set obs_tool]"),
           slo_num(t, sizeof t, sf.retention_days, "%g", "retention_days"));
    SLO_BP(&b, "## Burn-rate policy\n\n"
               "- **Fast burn**: success-rate burn rate above 2× for 1 hour (failures at twice "
               "the rate the budget allows): open an incident, fail over to the secondary "
               "provider, freeze launches.\n"
               "- **Slow burn**: more than 50%% of the month's error budget spent by day 15, or "
               "80%% by day 25: reduce model cost, enable prompt caching, review prompts and "
               "context.\n\n");
    {
        char td[64];
        SLO_BP(&b, "## Change management\n\nAny model or provider change must meet the p95 "
                   "latency target (%s s) on 200 sample requests and keep the average cost "
                   "within the SLO ($%s) for %s days before promotion. `slodrill promote` runs "
                   "the 200-sample check: p95 ≤ %s s is shown at 95%% confidence only when at "
                   "most 4 of the 200 take longer (failures count as longer).\n\n",
               p, c, slo_num(td, sizeof td, sf.trial_days, "%g", "trial_days"), p);
    }
    {
        char mm[64], mc[64];
        SLO_BP(&b, "## Exclusions\n\n- Scheduled maintenance: at most %s minutes, %s times a "
                   "quarter, announced 48 hours ahead.\n- Abuse, or use outside the stated "
                   "limits.\n\n",
               slo_num(mm, sizeof mm, sf.maint_minutes, "%g", "maint_minutes"),
               slo_num(mc, sizeof mc, sf.maint_count, "%g", "maint_count"));
    }
    SLO_BP(&b, "## Contact and status\n\n- Incidents: %s. Reviewed monthly.\n",
           slo_str(sf.oncall, "[set oncall]"));
    if (buf_failed(&b) || slo_write(out, "slo.md", &b) != 0) goto out;

    /* ---- sow.md ---- */
    buf_reset(&b);
    SLO_BP(&b, "# SOW clause: Reliability SLO\n\n"
               "*Plain and measurable. Not legal advice: have your counsel review it.*\n\n");
    SLO_BP(&b, "- **Service.** We operate an AI inference service (the \"Service\") for %s that "
               "routes requests across approved model providers. We commit to the service level "
               "objectives below, measured at our API edge over a rolling %s-day window.\n",
           slo_str(sf.service, "[set service]"), w);
    SLO_BP(&b, "- **Objectives.** Success rate at least %s%%; p95 end-to-end latency (to the "
               "first token) at most %s seconds; average cost per request at most $%s.\n",
           a, p, c);
    SLO_BP(&b, "- **Measurement.** Standard telemetry across providers; monthly reports, and "
               "failover-drill results on request.\n");
    SLO_BP(&b, "- **Error budget and remediation.** With %s requests a window, at most %s may "
               "fail. If the budget is used up within a window we (1) pause changes that put "
               "reliability at risk, (2) put mitigations first (provider pinning, prompt caching, "
               "smaller context), and (3) hold a joint review.\n",
           mr, bud);
    {
        char mm[64], mc[64];
        SLO_BP(&b, "- **Exclusions.** Scheduled maintenance (at most %s minutes, %s times a "
                   "quarter, announced 48 hours ahead), abuse by third parties, or use outside "
                   "the agreed rate and volume limits.\n",
               slo_num(mm, sizeof mm, sf.maint_minutes, "%g", "maint_minutes"),
               slo_num(mc, sizeof mc, sf.maint_count, "%g", "maint_count"));
    }
    SLO_BP(&b, "- **Credits.** If we miss the success-rate objective over a full %s-day window, "
               "we credit %s%% of that month's AI usage fees.\n",
           w, slo_num(t, sizeof t, sf.credit_pct, "%g", "credit_pct"));
    SLO_BP(&b, "- **Transparency.** We run a 30-minute failover drill at least quarterly and on "
               "every major provider change, and share its summary.\n");
    if (have_m) {
        char line[256];
        report_summary_line(&m, line, sizeof line);
        SLO_BP(&b, "\nLatest drill (%s): %s.\n", d->name, line);
    }
    if (buf_failed(&b) || slo_write(out, "sow.md", &b) != 0) goto out;
    printf("wrote %s/slo.md and %s/sow.md\n", out, out);
    code = have_m && !m.passed ? 1 : 0;
out:
    if (have_m) slo_metrics_free(&m);
    rundb_data_free(d);
    buf_cleanup(&b);
    return code;
}
