/* cmd_drill.c -- `slodrill drill`: the guided Friday failover drill.
 *
 * DESIGN: steady load runs on an event loop of its own thread (the load
 * generator writes the run DB); the main thread talks to the people: it
 * prints each SOP phase, reads the operator's and scribe's lines (stdin or
 * --answers) with poll() so the live figures keep coming, stamps phases and
 * notes into the run DB, and applies the stop condition. The tool never flips
 * the switch on staging: the operator does, and says "done". */
#include <errno.h>
#include <event2/event.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "common/clock.h"
#include "common/path.h"
#include "harness/commands.h"
#include "harness/loadgen.h"
#include "harness/slofile.h"
#include "reports/report.h"
#include "reports/rundb.h"

static const char drill_usage[] =
    "usage: slodrill drill --target URL --model ALIAS [--key-env VAR] [--bypass-url URL]\n"
    "                      [--plan SLO_FILE] [--answers FILE] [--rate R] [--out DIR]\n"
    "\n"
    "The 30-minute Friday failover drill, guided. Drives steady load at the\n"
    "router and walks the drill lead (DL), the operator and the scribe through the\n"
    "SOP: pre-checks, induce failure, watch failover, rollback, verification,\n"
    "closeout. It keeps the clock per phase, shows live success rate, p95 and who\n"
    "serves, stamps every note into the timeline, stops the drill when the\n"
    "success rate stays under the stop line, and writes closeout.md.\n"
    "\n"
    "At each prompt type:  done (the step is done)   note TEXT (scribe's note)\n"
    "                      rollback (end the failure now)   abort (stop the drill)\n"
    "\n"
    "  --plan FILE     SLO file: targets for the checks (default 99.5%, 2.5 s, $0.015)\n"
    "  --answers FILE  read the lines from FILE instead of the terminal (scripted drills)\n"
    "  --rate R        steady load, requests per second (default 5)\n"
    "  --stop-below P  stop when the 10 s success rate stays under P% for 10 s (default 50)\n"
    "  --out DIR       default runs/drill-<UTC time>\n"
    "\n"
    "exit codes: 0 the drill's checks held; 1 a check failed; 2 bad usage;\n"
    "            3 a stop condition (or abort) ended the drill.\n";

struct drill {
    struct event_base *base;
    struct loadgen *lg;
    struct rundb *db;
    pthread_t th;
    int running;
    pthread_mutex_t mu;
    struct loadgen_stats snap; /* copied on the loop every 500 ms */
    struct event *tick;
    uint64_t t0;
    FILE *in;
    double stop_below;
    double below_since;
    int stopped;
};

static int64_t drill_now(const struct drill *d)
{
    uint64_t now = clock_mono_us();
    return now > d->t0 ? (int64_t)(now - d->t0) : 0;
}

static void drill_on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct drill *d = arg;
    struct loadgen_stats st;
    (void)fd;
    (void)what;
    loadgen_get_stats(d->lg, &st);
    pthread_mutex_lock(&d->mu);
    d->snap = st;
    pthread_mutex_unlock(&d->mu);
}

static void drill_on_done(void *arg)
{
    struct drill *d = arg;
    event_base_loopexit(d->base, NULL);
}

static void drill_on_stop(evutil_socket_t fd, short what, void *arg)
{
    struct drill *d = arg;
    (void)fd;
    (void)what;
    loadgen_stop(d->lg);
}

static void *drill_loop(void *arg)
{
    struct drill *d = arg;
    event_base_loop(d->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

static void drill_event(struct drill *d, const char *kind, const char *subject, const char *detail)
{
    if (rundb_event(d->db, drill_now(d), kind, subject, detail) != 0)
        fprintf(stderr, "drill: could not record %s\n", kind);
}

static void drill_status(struct drill *d, const char *phase, uint64_t phase_start, uint64_t fault_at)
{
    struct loadgen_stats st;
    char since[48] = "";
    pthread_mutex_lock(&d->mu);
    st = d->snap;
    pthread_mutex_unlock(&d->mu);
    if (fault_at)
        snprintf(since, sizeof since, "  since fault %.0fs", (double)(clock_mono_us() - fault_at) / 1e6);
    printf("  [%s %3.0fs]%s  SR(10s) %s%.2f%%  p95(10s) %.2fs  served by %s (%.0f%%)  sent %llu  failed %llu\n",
           phase, (double)(clock_mono_us() - phase_start) / 1e6, since,
           st.rolling_sr < 0 ? "~" : "", st.rolling_sr < 0 ? 0.0 : st.rolling_sr,
           st.rolling_p95_s < 0 ? 0.0 : st.rolling_p95_s, st.top_provider[0] ? st.top_provider : "-",
           st.top_share < 0 ? 0.0 : st.top_share, (unsigned long long)st.started,
           (unsigned long long)st.failed);
    fflush(stdout);
    /* The stop condition. */
    if (st.rolling_sr >= 0 && st.rolling_sr < d->stop_below && !d->stopped) {
        double now = (double)drill_now(d) / 1e6;
        if (d->below_since < 0) d->below_since = now;
        if (now - d->below_since >= 10) {
            char det[160];
            snprintf(det, sizeof det, "success rate %.1f%% under %.0f%% for 10 s: roll back now",
                     st.rolling_sr, d->stop_below);
            printf("STOP: %s\n", det);
            drill_event(d, "stop", "stop_if", det);
            d->stopped = 1;
        }
    } else {
        d->below_since = -1;
    }
}

/* Waits for a line; prints the live status every 2 s meanwhile. Notes are
 * stamped and waiting goes on. Returns "done", "rollback", "abort" or "eof".
 * A phase past budget_s (0 = none) gets one warning, stamped as a note. */
static const char *drill_wait(struct drill *d, const char *phase, uint64_t fault_at,
                              double budget_s)
{
    static char line[1024];
    uint64_t start = clock_mono_us(), last = 0;
    int fd = fileno(d->in), warned = 0;
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        int r;
        if (d->stopped) return "abort";
        if (budget_s > 0 && !warned && (double)(clock_mono_us() - start) / 1e6 >= budget_s) {
            char det[128];
            snprintf(det, sizeof det, "%s ran over its %.0f min budget", phase, budget_s / 60);
            printf("DL: %s; the whole drill is meant to fit in 30 minutes.\n", det);
            drill_event(d, "note", phase, det);
            warned = 1;
        }
        if (clock_mono_us() - last >= 2000000) {
            drill_status(d, phase, start, fault_at);
            last = clock_mono_us();
        }
        r = poll(&p, 1, 250);
        if (r <= 0) continue;
        if (fgets(line, sizeof line, d->in) == NULL) return "eof";
        line[strcspn(line, "\r\n")] = '\0';
        if (strncmp(line, "note ", 5) == 0) {
            drill_event(d, "note", phase, line + 5);
            printf("  noted at %.1fs: %s\n", (double)drill_now(d) / 1e6, line + 5);
        } else if (strncmp(line, "wait ", 5) == 0) {
            /* Scripted drills: "wait N" lets N seconds of load pass. */
            double s = strtod(line + 5, NULL);
            uint64_t until = clock_mono_us() + (uint64_t)(s > 0 && s < 3600 ? s * 1e6 : 0);
            while (clock_mono_us() < until && !d->stopped) {
                usleep(250000);
                if (clock_mono_us() - last >= 2000000) {
                    drill_status(d, phase, start, fault_at);
                    last = clock_mono_us();
                }
            }
        } else if (strcmp(line, "done") == 0 || strcmp(line, "y") == 0 || strcmp(line, "yes") == 0) {
            return "done";
        } else if (strcmp(line, "rollback") == 0) {
            return "rollback";
        } else if (strcmp(line, "abort") == 0) {
            return "abort";
        } else if (line[0]) {
            printf("  (type done, note TEXT, rollback or abort)\n");
        }
        fflush(stdout);
    }
}

static size_t drill_sink(char *p, size_t size, size_t n, void *arg)
{
    size_t *total = arg;
    (void)p;
    *total += size * n;
    return *total > (size_t)1 << 20 ? 0 : size * n; /* bounded: 1 MiB an answer */
}

/* Sends n plain requests on the bypass path, one after another, from the
 * conversation thread (not an event loop: blocking here stalls no one), and
 * stamps the result. Returns how many answered 2xx. */
static int drill_bypass(struct drill *d, const char *url, const char *key, const char *model,
                        int n)
{
    char full[2048], auth[1100], body[512], det[256];
    struct curl_slist *h = NULL;
    CURL *e = curl_easy_init();
    double ms[64];
    int i, ok = 0;
    size_t tl = strlen(url);
    int v1 = tl >= 3 && strcmp(url + tl - 3, "/v1") == 0;

    if (e == NULL) return 0;
    snprintf(full, sizeof full, "%s%s/chat/completions", url, v1 ? "" : "/v1");
    snprintf(body, sizeof body,
             "{\"model\":\"%.200s\",\"messages\":[{\"role\":\"user\",\"content\":\"Ping\"}],"
             "\"max_tokens\":16}", model);
    h = curl_slist_append(h, "Content-Type: application/json");
    if (key) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %.1000s", key);
        h = curl_slist_append(h, auth);
    }
    for (i = 0; i < n && i < 64; i++) {
        size_t total = 0;
        long status = 0;
        uint64_t t = clock_mono_us();
        curl_easy_reset(e);
        curl_easy_setopt(e, CURLOPT_URL, full);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, drill_sink);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, &total);
        curl_easy_setopt(e, CURLOPT_TIMEOUT, 30L);
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        if (curl_easy_perform(e) == CURLE_OK &&
            curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK && status / 100 == 2)
            ok++;
        ms[i] = (double)(clock_mono_us() - t) / 1000.0;
    }
    {
        double mx = 0;
        for (i = 0; i < n && i < 64; i++) mx = ms[i] > mx ? ms[i] : mx;
        snprintf(det, sizeof det, "bypass path: %d of %d requests answered 2xx (slowest %.0f ms)", ok, n, mx);
    }
    printf("  %s\n", det);
    drill_event(d, "note", "bypass", det);
    curl_slist_free_all(h);
    curl_easy_cleanup(e);
    return ok;
}

static void drill_phase(struct drill *d, const char *name, const char *budget, const char *text)
{
    printf("\n== %s (%s) at %.0fs ==\n%s", name, budget, (double)drill_now(d) / 1e6, text);
    fflush(stdout);
    drill_event(d, "phase", name, budget);
}

int cmd_drill(int argc, char **argv)
{
    const char *target = NULL, *model = NULL, *key_env = NULL, *bypass = NULL, *plan = NULL;
    const char *answers = NULL, *out = NULL, *key = NULL, *w;
    double rate = 5;
    struct drill d;
    struct slofile sf;
    struct prompt_set ps = {0};
    struct run_metrics m;
    char err[1024] = "", dir[PATH_MAX], dbp[PATH_MAX + 16], url[2048], meta[512], line[256];
    int i, code = 2, have_m = 0, ended = 0;
    uint64_t fault_at = 0;

    memset(&d, 0, sizeof d);
    memset(&m, 0, sizeof m);
    d.stop_below = 50;
    d.below_since = -1;
    pthread_mutex_init(&d.mu, NULL);
    for (i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(drill_usage, stdout);
            code = 0;
            goto out;
        } else if (strcmp(a, "--auto") == 0) {
            fprintf(stderr, "slodrill drill: --auto is not available yet; the operator induces the failure\n");
            goto out;
        } else if (v == NULL) {
            fprintf(stderr, "slodrill drill: '%s' needs a value, or is unknown\n", a);
            goto out;
        } else if (strcmp(a, "--target") == 0) { target = v; i++;
        } else if (strcmp(a, "--model") == 0) { model = v; i++;
        } else if (strcmp(a, "--key-env") == 0) { key_env = v; i++;
        } else if (strcmp(a, "--bypass-url") == 0) { bypass = v; i++;
        } else if (strcmp(a, "--plan") == 0) { plan = v; i++;
        } else if (strcmp(a, "--answers") == 0) { answers = v; i++;
        } else if (strcmp(a, "--out") == 0) { out = v; i++;
        } else if (strcmp(a, "--rate") == 0 || strcmp(a, "--stop-below") == 0) {
            char *end;
            double x = strtod(v, &end);
            if (*end || end == v || x <= 0 || x > 10000) {
                fprintf(stderr, "slodrill drill: %s takes a positive number, not '%s'\n", a, v);
                goto out;
            }
            if (a[2] == 'r') rate = x;
            else d.stop_below = x;
            i++;
        } else {
            fprintf(stderr, "slodrill drill: unknown option '%s'\n", a);
            goto out;
        }
    }
    if (target == NULL || model == NULL) {
        fprintf(stderr, "slodrill drill: --target URL and --model ALIAS are required\n\n%s", drill_usage);
        goto out;
    }
    if (key_env && ((key = getenv(key_env)) == NULL || key[0] == '\0')) {
        fprintf(stderr, "slodrill drill: the environment variable %s (--key-env) is not set\n", key_env);
        goto out;
    }
    if (plan) {
        if (slofile_load(plan, &sf, err, sizeof err) != 0) {
            fprintf(stderr, "%s\n", err);
            goto out;
        }
    } else {
        memset(&sf, 0, sizeof sf);
        slo_targets_unset(&sf.t);
    }
    if (sf.t.success_rate < 0) sf.t.success_rate = 99.5;
    if (sf.t.p95_latency_s < 0) sf.t.p95_latency_s = 2.5;
    if (sf.t.avg_cost_usd < 0) sf.t.avg_cost_usd = 0.015;
    d.in = answers ? fopen(answers, "r") : stdin;
    if (d.in == NULL) {
        fprintf(stderr, "slodrill drill: cannot read %s: %s\n", answers, strerror(errno));
        goto out;
    }
    if (prompt_set_builtin(&ps) != 0) goto out;
    {
        size_t tl = strlen(target);
        int v1 = tl >= 3 && strcmp(target + tl - 3, "/v1") == 0;
        snprintf(url, sizeof url, "%s%s/chat/completions", target, v1 ? "" : "/v1");
    }
    if (out) {
        snprintf(dir, sizeof dir, "%s", out);
    } else {
        char stamp[32];
        clock_format_compact(clock_wall_us(), stamp, sizeof stamp);
        snprintf(dir, sizeof dir, "runs/drill-%s", stamp);
    }
    if (path_mkdirs(dir) != 0) {
        fprintf(stderr, "slodrill drill: cannot create %s: %s\n", dir, strerror(errno));
        goto out;
    }
    snprintf(dbp, sizeof dbp, "%s/run.db", dir);
    snprintf(meta, sizeof meta,
             "{\"scenario\":{\"name\":\"drill\",\"description\":\"Guided failover drill\"},"
             "\"slo\":{\"success_rate\":%g,\"p95_latency_s\":%g,\"avg_cost_usd\":%g%s%.0f}}",
             sf.t.success_rate, sf.t.p95_latency_s, sf.t.avg_cost_usd,
             sf.t.monthly_requests >= 0 ? ",\"monthly_requests\":" : ",\"window_days\":",
             sf.t.monthly_requests >= 0 ? sf.t.monthly_requests : 30.0);
    d.t0 = clock_mono_us() + 100000;
    d.db = rundb_create(dbp, "drill", meta, clock_wall_us() + 100000, err, sizeof err);
    d.base = event_base_new();
    if (d.db == NULL || d.base == NULL) {
        fprintf(stderr, "slodrill drill: %s\n", err[0] ? err : "out of memory");
        goto out;
    }
    {
        struct loadgen_opts lo;
        struct timeval half = {0, 500000};
        memset(&lo, 0, sizeof lo);
        lo.url = url;
        lo.api_key = key;
        lo.model = model;
        lo.rate = rate;
        lo.arrival = ARRIVAL_CONSTANT;
        lo.duration_s = 45 * 60; /* the drill ends it sooner */
        lo.stream = 1;
        lo.prompts = &ps;
        lo.seed = 1;
        lo.timeout_s = 30;
        lo.db = d.db;
        lo.t0_mono_us = d.t0;
        d.lg = loadgen_new(d.base, &lo, drill_on_done, &d, err, sizeof err);
        if (d.lg == NULL) {
            fprintf(stderr, "slodrill drill: %s\n", err);
            goto out;
        }
        d.tick = event_new(d.base, -1, EV_PERSIST, drill_on_tick, &d);
        if (d.tick == NULL || event_add(d.tick, &half) != 0) goto out;
    }
    if (pthread_create(&d.th, NULL, drill_loop, &d) != 0) goto out;
    d.running = 1;
    drill_event(&d, "run_start", "drill", target);

    printf("Failover drill on %s (alias %s), steady load %g/s. Run DB: %s\n"
           "Roles: drill lead (DL) runs the clock and calls rollback; operator flips keys or\n"
           "firewall rules and watches; scribe types 'note TEXT' at any prompt.\n",
           target, model, rate, dbp);
    drill_phase(&d, "pre-checks", "5 min",
                "DL: open the on-call channel with \"Failover drill (non-customer impacting)\".\n"
                "Baseline figures follow. Confirm the bypass path answers");
    if (bypass) printf(" (%s)", bypass);
    printf(", then type done.\n");
    if (bypass) drill_bypass(&d, bypass, key, model, 1);
    w = drill_wait(&d, "pre-checks", 0, 5 * 60);
    if (strcmp(w, "done") != 0) goto end;
    drill_phase(&d, "induce-failure", "5-10 min",
                "Operator, choose one and say done when it is in place:\n"
                "  A (preferred) revoke or rotate the primary provider's key in the router\n"
                "  B block egress to the primary's API base for 10 minutes\n"
                "  C lower stream_timeout on the primary to 10-50 ms\n");
    w = drill_wait(&d, "induce-failure", 0, 10 * 60);
    if (strcmp(w, "done") != 0) goto end;
    fault_at = clock_mono_us();
    drill_event(&d, "fault_on", "primary", "operator induced the failure");
    drill_phase(&d, "watch-failover", "live",
                "Watch who serves, SR and p95. Type rollback when the DL calls it.\n");
    w = drill_wait(&d, "watch-failover", fault_at, 0);
    if (strcmp(w, "abort") == 0 || strcmp(w, "eof") == 0) goto end;
    drill_phase(&d, "rollback", "2 min",
                "Operator: restore the key or remove the rule; clear manual cooldowns; redeploy\n"
                "the router config if edited. Type done when health checks are green.\n");
    w = drill_wait(&d, "rollback", fault_at, 2 * 60);
    if (strcmp(w, "done") != 0) goto end;
    drill_event(&d, "fault_off", "primary", "operator rolled back");
    drill_phase(&d, "verification", "8-12 min",
                "Watching the recovery. The bypass path gets 10 requests (with --bypass-url);\n"
                "confirm parity, file issues for broken env vars, stale keys or missing\n"
                "alerts; then done.\n");
    if (bypass) drill_bypass(&d, bypass, key, model, 10);
    w = drill_wait(&d, "verification", 0, 12 * 60);
    ended = strcmp(w, "done") == 0;
end:
    if (!ended && !d.stopped) {
        drill_event(&d, "stop", "operator", strcmp(w, "eof") == 0 ? "input ended before the closeout"
                                                                    : "the drill was aborted");
        d.stopped = 1;
    }
    drill_phase(&d, "closeout", "3 min", "Stopping the load and writing the closeout.\n");
    event_base_once(d.base, -1, EV_TIMEOUT, drill_on_stop, &d, NULL);
    pthread_join(d.th, NULL);
    d.running = 0;
    drill_event(&d, "run_end", "drill", d.stopped ? "stopped" : "complete");
    if (rundb_finish(d.db, d.stopped ? "aborted" : "complete", drill_now(&d)) != 0)
        fprintf(stderr, "drill: some rows were lost\n");
    d.db = NULL;
    if (report_write_all(dbp, dir, &m, err, sizeof err) != 0) {
        fprintf(stderr, "slodrill drill: %s\n", err);
        code = 1;
        goto out;
    }
    have_m = 1;
    report_summary_line(&m, line, sizeof line);
    printf("Post in the on-call channel:\n  %s\ncloseout: %s/closeout.md\n", line, dir);
    code = d.stopped ? 3 : m.passed ? 0 : 1;
out:
    if (d.running) {
        event_base_once(d.base, -1, EV_TIMEOUT, drill_on_stop, &d, NULL);
        pthread_join(d.th, NULL);
    }
    if (d.tick) event_free(d.tick);
    if (d.lg) loadgen_free(d.lg);
    if (d.db) rundb_close(d.db);
    if (d.base) event_base_free(d.base);
    if (d.in && d.in != stdin) fclose(d.in);
    if (have_m) slo_metrics_free(&m);
    prompt_set_free(&ps);
    pthread_mutex_destroy(&d.mu);
    return code;
}
