/* cmd_promote.c -- `slodrill promote`: a candidate model on N sample requests. */
#include <errno.h>
#include <event2/event.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/clock.h"
#include "common/yamlx.h"
#include "common/path.h"
#include "harness/commands.h"
#include "harness/loadgen.h"
#include "harness/promote.h"
#include "harness/slofile.h"
#include "reports/rundb.h"

static const char promote_usage[] =
    "usage: slodrill promote --target URL --model CANDIDATE --samples FILE\n"
    "                        [--baseline MODEL] [--count 200] [--slo FILE] [--key-env VAR]\n"
    "                        [--out DIR] [--rate R] [--concurrency C] [--stream|--no-stream]\n"
    "\n"
    "The change-management check: sends COUNT requests drawn from the sample\n"
    "prompts (JSONL, seeded so every run draws the same) to an OpenAI-compatible\n"
    "URL at a fixed rate and bounded concurrency, and promotes the candidate only\n"
    "when p95 time to first token meets the target at 95% confidence (with 200\n"
    "samples at most 4 may be slower; failures count as slower) and the average\n"
    "cost per request is within the SLO. With --baseline the current model runs\n"
    "interleaved beside it and the report compares them pair by pair.\n"
    "Writes promotion.md, promotion.json and a run DB per arm into DIR\n"
    "(default runs/promote-<UTC time>).\n"
    "\n"
    "  --target URL       router or provider root (/v1 is added unless present)\n"
    "  --model M          the candidate model or alias\n"
    "  --baseline M       the current model, run beside it\n"
    "  --samples FILE     JSONL prompts ({\"messages\": [...]} or {\"prompt\": \"...\"})\n"
    "  --count N          requests per arm (default 200)\n"
    "  --slo FILE         p95_latency_s, avg_cost_usd and prices: (default 2.5 s, $0.015)\n"
    "  --key-env VAR      send the key in $VAR as Authorization: Bearer\n"
    "  --rate R           requests per second per arm (default 5)\n"
    "  --concurrency C    requests in flight per arm at most (default 16); a request\n"
    "                     due while C are in flight is not sent and counts as failed\n"
    "  --timeout S        per request (default 30)\n"
    "  --seed N           prompt draw (default 1)\n"
    "\n"
    "exit codes: 0 promote, 1 reject, 2 bad input, 130 interrupted.\n";

static int promote_bad(const char *fmt, const char *arg)
{
    fprintf(stderr, "slodrill promote: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n(slodrill promote --help shows the usage)\n");
    return 2;
}

struct promote_run {
    struct event_base *base;
    int pending;
    int interrupted;
    struct loadgen *lg[2];
};

static void promote_on_done(void *arg)
{
    struct promote_run *pr = arg;
    if (--pr->pending == 0) event_base_loopexit(pr->base, NULL);
}

static void promote_on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct promote_run *pr = arg;
    int i;
    (void)sig;
    (void)what;
    if (pr->interrupted) return;
    pr->interrupted = 1;
    for (i = 0; i < 2; i++)
        if (pr->lg[i]) loadgen_stop(pr->lg[i]);
}

static int promote_num(const char *s, double lo, double hi, double *out)
{
    char *end;
    double v;
    errno = 0;
    v = strtod(s, &end);
    if (errno || end == s || *end != '\0' || !(v >= lo && v <= hi)) return -1;
    *out = v;
    return 0;
}

static char *promote_meta(const char *role, const char *model, const char *target, double rate,
                          double count, const struct slofile *sf)
{
    cJSON *root = cJSON_CreateObject(), *o;
    char *s = NULL;
    if (root == NULL) return NULL;
    o = cJSON_AddObjectToObject(root, "scenario");
    if (o) {
        char name[192];
        snprintf(name, sizeof name, "promote-%s", role);
        cJSON_AddStringToObject(o, "name", name);
        cJSON_AddStringToObject(o, "description", "slodrill promote: sample requests to one model");
    }
    o = cJSON_AddObjectToObject(root, "slo");
    if (o && sf) {
        if (sf->t.p95_latency_s >= 0) cJSON_AddNumberToObject(o, "p95_latency_s", sf->t.p95_latency_s);
        if (sf->t.avg_cost_usd >= 0) cJSON_AddNumberToObject(o, "avg_cost_usd", sf->t.avg_cost_usd);
    }
    o = cJSON_AddObjectToObject(root, "traffic");
    if (o) {
        cJSON_AddStringToObject(o, "model", model);
        cJSON_AddStringToObject(o, "target", target);
        cJSON_AddNumberToObject(o, "rate", rate);
        cJSON_AddNumberToObject(o, "count", count);
    }
    s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

int cmd_promote(int argc, char **argv)
{
    const char *target = NULL, *model = NULL, *baseline = NULL, *samples = NULL, *slo = NULL;
    const char *key_env = NULL, *out = NULL, *key = NULL;
    double count = 200, rate = 5, conc = 16, timeout = 30, seedd = 1;
    int stream = 1, i, code = 2, narms;
    struct slofile sf;
    struct prompt_set ps = {0};
    struct promote_run pr;
    struct rundb *db[2] = {NULL, NULL};
    struct run_data *data[2] = {NULL, NULL};
    struct event *sa = NULL, *sb = NULL;
    struct promote_result res;
    char err[1024] = "", dir[PATH_MAX], dbpath[2][PATH_MAX + 32], url[2048], line[512];
    char *meta = NULL;
    uint64_t t0;

    memset(&pr, 0, sizeof pr);
    memset(&sf, 0, sizeof sf);
    for (i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(promote_usage, stdout);
            return 0;
        } else if (strcmp(a, "--stream") == 0) {
            stream = 1;
        } else if (strcmp(a, "--no-stream") == 0) {
            stream = 0;
        } else if (v == NULL) {
            return promote_bad("'%s' needs a value, or is unknown", a);
        } else if (strcmp(a, "--target") == 0) { target = v; i++;
        } else if (strcmp(a, "--model") == 0) { model = v; i++;
        } else if (strcmp(a, "--baseline") == 0) { baseline = v; i++;
        } else if (strcmp(a, "--samples") == 0) { samples = v; i++;
        } else if (strcmp(a, "--slo") == 0) { slo = v; i++;
        } else if (strcmp(a, "--key-env") == 0) { key_env = v; i++;
        } else if (strcmp(a, "--out") == 0) { out = v; i++;
        } else if (strcmp(a, "--count") == 0) {
            if (promote_num(v, 1, 100000, &count) != 0 || count != floor(count))
                return promote_bad("--count takes a whole number 1-100000, not '%s'", v);
            i++;
        } else if (strcmp(a, "--rate") == 0) {
            if (promote_num(v, 0.01, 10000, &rate) != 0)
                return promote_bad("--rate takes requests per second (0.01-10000), not '%s'", v);
            i++;
        } else if (strcmp(a, "--concurrency") == 0) {
            if (promote_num(v, 1, 10000, &conc) != 0 || conc != floor(conc))
                return promote_bad("--concurrency takes a whole number 1-10000, not '%s'", v);
            i++;
        } else if (strcmp(a, "--timeout") == 0) {
            if (yamlx_parse_duration(v, &timeout) != 0 || timeout <= 0 || timeout > 3600)
                return promote_bad("--timeout takes seconds (like 30 or 30s), not '%s'", v);
            i++;
        } else if (strcmp(a, "--seed") == 0) {
            if (promote_num(v, 0, 1e15, &seedd) != 0)
                return promote_bad("--seed takes a whole number, not '%s'", v);
            i++;
        } else {
            return promote_bad("unknown option '%s'", a);
        }
    }
    if (target == NULL) return promote_bad("%s", "--target URL is required");
    if (model == NULL) return promote_bad("%s", "--model CANDIDATE is required");
    if (samples == NULL) return promote_bad("%s", "--samples FILE is required");
    if (strncmp(target, "http://", 7) != 0 && strncmp(target, "https://", 8) != 0)
        return promote_bad("--target must be an http:// or https:// URL, not '%s'", target);
    if (slo) {
        if (slofile_load(slo, &sf, err, sizeof err) != 0) {
            fprintf(stderr, "%s\n", err);
            return 2;
        }
    } else {
        slo_targets_unset(&sf.t);
    }
    if (sf.t.p95_latency_s < 0) sf.t.p95_latency_s = 2.5;
    if (sf.t.avg_cost_usd < 0 && slo == NULL) sf.t.avg_cost_usd = 0.015;
    if (key_env) {
        key = getenv(key_env);
        if (key == NULL || key[0] == '\0')
            return promote_bad("the environment variable %s (--key-env) is not set", key_env);
    }
    if (prompt_set_load(samples, &ps, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    {
        size_t tl = strlen(target);
        int slash = tl > 0 && target[tl - 1] == '/';
        int v1 = tl - (size_t)slash >= 3 && strncmp(target + tl - (size_t)slash - 3, "/v1", 3) == 0;
        snprintf(url, sizeof url, "%.*s%s/chat/completions", (int)(tl - (size_t)slash), target,
                 v1 ? "" : "/v1");
    }
    if (out) {
        snprintf(dir, sizeof dir, "%s", out);
    } else {
        char stamp[32];
        clock_format_compact(clock_wall_us(), stamp, sizeof stamp);
        snprintf(dir, sizeof dir, "runs/promote-%s", stamp);
    }
    narms = baseline ? 2 : 1;
    snprintf(dbpath[0], sizeof dbpath[0], "%s/candidate.db", dir);
    snprintf(dbpath[1], sizeof dbpath[1], "%s/baseline.db", dir);
    if (path_mkdirs(dir) != 0) {
        fprintf(stderr, "slodrill promote: cannot create %s: %s\n", dir, strerror(errno));
        goto out;
    }
    for (i = 0; i < narms; i++)
        if (access(dbpath[i], F_OK) == 0) {
            fprintf(stderr, "slodrill promote: %s already holds a check; choose another --out\n", dir);
            goto out;
        }

    pr.base = event_base_new();
    if (pr.base == NULL) goto out;
    t0 = clock_mono_us() + 100000;
    for (i = 0; i < narms; i++) {
        struct loadgen_opts lo;
        const char *m = i == 0 ? model : baseline;
        free(meta);
        meta = promote_meta(i == 0 ? "candidate" : "baseline", m, target, rate, count, &sf);
        db[i] = rundb_create(dbpath[i], i == 0 ? "promote-candidate" : "promote-baseline",
                             meta ? meta : "{}", clock_wall_us() + 100000, err, sizeof err);
        if (db[i] == NULL) {
            fprintf(stderr, "slodrill promote: %s\n", err);
            goto out;
        }
        memset(&lo, 0, sizeof lo);
        lo.url = url;
        lo.api_key = key;
        lo.model = m;
        lo.rate = rate;
        lo.arrival = ARRIVAL_CONSTANT;
        lo.duration_s = (count - 0.5) / rate; /* exactly count arrivals at k/rate */
        lo.stream = stream;
        lo.prompts = &ps;
        lo.seed = (uint64_t)seedd;             /* the same draw for both arms */
        lo.timeout_s = timeout;
        lo.max_inflight = (int)conc;
        lo.db = db[i];
        /* The baseline half a period later: the arms interleave. */
        lo.t0_mono_us = t0 + (i == 1 ? (uint64_t)(0.5e6 / rate) : 0);
        pr.lg[i] = loadgen_new(pr.base, &lo, promote_on_done, &pr, err, sizeof err);
        if (pr.lg[i] == NULL) {
            fprintf(stderr, "slodrill promote: %s\n", err);
            goto out;
        }
        pr.pending++;
    }
    sa = evsignal_new(pr.base, SIGINT, promote_on_signal, &pr);
    sb = evsignal_new(pr.base, SIGTERM, promote_on_signal, &pr);
    if (sa == NULL || sb == NULL || event_add(sa, NULL) != 0 || event_add(sb, NULL) != 0) goto out;
    fprintf(stderr, "promote: %.0f requests per arm to %s at %g/s (about %.0f s)\n", count, url,
            rate, count / rate);
    event_base_dispatch(pr.base);

    for (i = 0; i < narms; i++) {
        int64_t dur = (int64_t)(clock_mono_us() - t0);
        if (rundb_finish(db[i], pr.interrupted ? "aborted" : "complete", dur) != 0)
            fprintf(stderr, "slodrill promote: some rows of %s were lost\n", dbpath[i]);
        db[i] = NULL;
        data[i] = rundb_load(dbpath[i], err, sizeof err);
        if (data[i] == NULL) {
            fprintf(stderr, "slodrill promote: %s\n", err);
            code = 1;
            goto out;
        }
    }
    if (promote_analyze(data[0], model, data[1], baseline, &sf, sf.t.p95_latency_s,
                        sf.t.avg_cost_usd, &res) != 0 ||
        promote_write(&res, dir, target, err, sizeof err) != 0) {
        fprintf(stderr, "slodrill promote: %s\n", err[0] ? err : "out of memory");
        code = 1;
        goto out;
    }
    promote_summary(&res, line, sizeof line);
    printf("%s\n  p95: %s\n  cost: %s\n", line, res.cand.p95_reason, res.cand.cost_reason);
    if (res.have_base) {
        char bl[512];
        struct promote_result only = res;
        only.cand = res.base;
        only.promote = res.base.passed;
        promote_summary(&only, bl, sizeof bl);
        printf("  baseline: %s\n", bl);
    }
    printf("%s: %s/promotion.md\n", res.promote ? "PROMOTE" : "REJECT", dir);
    code = pr.interrupted ? 130 : res.promote ? 0 : 1;
out:
    for (i = 0; i < 2; i++) {
        if (pr.lg[i]) {
            loadgen_free(pr.lg[i]);
        }
        if (db[i]) rundb_close(db[i]);
        rundb_data_free(data[i]);
    }
    if (sa) event_free(sa);
    if (sb) event_free(sb);
    if (pr.base) event_base_free(pr.base);
    prompt_set_free(&ps);
    free(meta);
    return code;
}
