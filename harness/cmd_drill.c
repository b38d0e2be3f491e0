/* cmd_drill.c -- `slodrill drill`: the guided Friday failover drill.
 *
 * DESIGN: steady load runs on an event loop of its own thread (the load
 * generator writes the run DB); the main thread talks to the people: it
 * prints each SOP phase, reads the operator's and scribe's lines (stdin or
 * --answers) with poll() so the live figures keep coming, stamps phases and
 * notes into the run DB, and applies the stop condition. The tool never flips
 * the switch on staging: the operator does, and says "done".
 *
 * Rehearsal (--scenario FILE): the drill starts the scenario's fake providers
 * (one loop thread) and the built-in router with the scenario's config (a
 * second one) and aims the load at them; with --auto it also injects the
 * scenario's first timeline fault at "induce failure" and clears it at
 * rollback. --auto without --scenario is refused: the tool never flips a
 * switch on a real system.
 *
 * A drill that reaches its closeout drains the load (the requests in flight
 * finish and are recorded as they end); a stop condition, abort or end of
 * input cuts them. */
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

#include <cjson/cJSON.h>

#include "common/clock.h"
#include "common/loopthread.h"
#include "common/path.h"
#include "fakeproviders/fake.h"
#include "harness/commands.h"
#include "harness/loadgen.h"
#include "harness/runner.h"
#include "harness/scenario.h"
#include "harness/slofile.h"
#include "reports/report.h"
#include "reports/rundb.h"
#include "router/router.h"

static const char drill_usage[] =
    "usage: slodrill drill --target URL --model ALIAS [--key-env VAR] [--bypass-url URL]\n"
    "                      [--plan SLO_FILE] [--answers FILE] [--rate R] [--out DIR]\n"
    "       slodrill drill --scenario FILE [--auto] [--model ALIAS] [...]   (rehearsal)\n"
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
    "  --scenario FILE rehearsal: start the scenario's fake providers and the built-in\n"
    "                  router with its config, and drill against them (no --target);\n"
    "                  model, rate, prompts and SLO default to the scenario's\n"
    "  --auto          with --scenario only: the tool injects the scenario's first\n"
    "                  timeline fault at \"induce failure\" and clears it at rollback.\n"
    "                  It never flips a switch on a real system: without --scenario\n"
    "                  it is refused\n"
    "\n"
    "At the closeout the load stops and the requests in flight finish (up to 30 s);\n"
    "a stop condition or abort cuts them.\n"
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

static void drill_on_drain(evutil_socket_t fd, short what, void *arg)
{
    struct drill *d = arg;
    (void)fd;
    (void)what;
    loadgen_drain(d->lg);
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

/* ---- rehearsal: the scenario's fakes and the built-in router ---- */

/* An event loop on a thread of its own. */
struct rehearsal {
    struct scenario *s;
    struct loopthread fakes_loop, router_loop;
    struct fake **fakes;
    char **urls;                 /* provider root URLs */
    struct router_config *cfg;
    struct proxy *proxy;
    char target[64];             /* the router's root URL */
    int step;                    /* the timeline step --auto injects; -1 none */
    int fault_on;                /* --auto's fault is in place */
};

/* Router events (cooldowns, probes) into the drill's timeline. Runs on the
 * router's thread; the run DB's queue is thread-safe, and d->db is set before
 * the router starts and outlives it. */
static void drill_on_router_event(const char *kind, const char *subject, const char *detail,
                                  uint64_t now_us, void *arg)
{
    struct drill *d = arg;
    if (d->db && rundb_event(d->db, now_us > d->t0 ? (int64_t)(now_us - d->t0) : 0, kind,
                             subject, detail) != 0)
        fprintf(stderr, "drill: could not record router event %s\n", kind);
}

/* The first timeline step that injects a fault, or -1. */
static int rehearsal_first_fault(const struct scenario *s)
{
    size_t i;
    for (i = 0; i < s->nsteps; i++)
        if (!s->steps[i].clear) return (int)i;
    return -1;
}

/* Starts the fakes, then the router aimed at them. */
static int rehearsal_start(struct rehearsal *rh, struct drill *d, char *err, size_t errlen)
{
    const struct scenario *s = rh->s;
    struct proxy_opts po;
    size_t i;
    int rc = -1;

    rh->fakes_loop.base = event_base_new();
    rh->router_loop.base = event_base_new();
    rh->fakes = calloc(s->nproviders ? s->nproviders : 1, sizeof *rh->fakes);
    rh->urls = calloc(s->nproviders ? s->nproviders : 1, sizeof *rh->urls);
    if (!rh->fakes_loop.base || !rh->router_loop.base || !rh->fakes || !rh->urls) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    for (i = 0; i < s->nproviders; i++) {
        rh->fakes[i] = fake_new(rh->fakes_loop.base, &s->providers[i], err, errlen);
        if (rh->fakes[i] == NULL) goto out;
        rh->urls[i] = strdup(fake_url(rh->fakes[i]));
        if (rh->urls[i] == NULL) {
            snprintf(err, errlen, "out of memory");
            goto out;
        }
    }
    rh->cfg = runner_config_load(s, NULL, (const char *const *)rh->urls, err, errlen);
    if (rh->cfg == NULL) goto out;
    memset(&po, 0, sizeof po);
    po.host = "127.0.0.1";
    po.seed = s->seed;
    po.on_event = drill_on_router_event;
    po.event_arg = d;
    rh->proxy = proxy_new(rh->router_loop.base, rh->cfg, &po, err, errlen);
    if (rh->proxy == NULL) goto out;
    snprintf(rh->target, sizeof rh->target, "http://127.0.0.1:%d", proxy_port(rh->proxy));
    if (loopthread_start(&rh->fakes_loop) != 0 || loopthread_start(&rh->router_loop) != 0) {
        snprintf(err, errlen, "cannot start a thread");
        goto out;
    }
    rc = 0;
out:
    return rc;
}

/* Stops and frees everything rehearsal_start made; safe on a partial start. */
static void rehearsal_stop(struct rehearsal *rh)
{
    size_t i, n = rh->s ? rh->s->nproviders : 0;

    for (i = 0; rh->fakes && i < n; i++)
        if (rh->fakes[i]) fake_fault_clear(rh->fakes[i], -1);
    loopthread_stop(&rh->router_loop);
    loopthread_stop(&rh->fakes_loop);
    proxy_free(rh->proxy);
    rh->proxy = NULL;
    router_config_free(rh->cfg);
    rh->cfg = NULL;
    for (i = 0; rh->fakes && i < n; i++) fake_free(rh->fakes[i]);
    free(rh->fakes);
    rh->fakes = NULL;
    for (i = 0; rh->urls && i < n; i++) free(rh->urls[i]);
    free(rh->urls);
    rh->urls = NULL;
    if (rh->router_loop.base) event_base_free(rh->router_loop.base);
    if (rh->fakes_loop.base) event_base_free(rh->fakes_loop.base);
    rh->router_loop.base = rh->fakes_loop.base = NULL;
}

/* "revoke_key on primary", "http_error status=503 on primary". */
static void rehearsal_describe(const struct rehearsal *rh, char *out, size_t outlen)
{
    const struct scenario_step *st = &rh->s->steps[rh->step];
    const struct fault_spec *f = &st->fault;
    char extra[96] = "";

    if (f->kind == FAULT_HTTP_ERROR) snprintf(extra, sizeof extra, " status=%d", f->status);
    else if (f->kind == FAULT_SLOW_TTFT || f->kind == FAULT_SLOW_TOKENS)
        snprintf(extra, sizeof extra, " ms=%g", f->ms);
    else if (f->mode[0]) snprintf(extra, sizeof extra, " mode=%s", f->mode);
    snprintf(out, outlen, "%s%s on %s", fault_kind_name(f->kind), extra,
             rh->s->providers[st->provider].name);
}

/* --auto: injects the step's fault, held until rollback (a duration in the
 * scenario does not apply: the drill lead calls the rollback). */
static int rehearsal_inject(struct rehearsal *rh, struct drill *d)
{
    const struct scenario_step *st = &rh->s->steps[rh->step];
    struct fault_spec f = st->fault;
    char desc[192], det[256];

    f.duration_s = 0;
    rehearsal_describe(rh, desc, sizeof desc);
    if (fake_fault_add(rh->fakes[st->provider], &f) != 0) {
        printf("Tool: could not inject %s; ending the drill.\n", desc);
        return -1;
    }
    rh->fault_on = 1;
    snprintf(det, sizeof det, "drill --auto injected %s", desc);
    drill_event(d, "fault_on", rh->s->providers[st->provider].name, det);
    printf("Tool: injected %s (--auto).\n", desc);
    fflush(stdout);
    return 0;
}

static void rehearsal_clear(struct rehearsal *rh, struct drill *d, const char *why)
{
    const struct scenario_step *st;
    char desc[192], det[256];

    if (!rh->fault_on) return;
    st = &rh->s->steps[rh->step];
    fake_fault_clear(rh->fakes[st->provider], (int)st->fault.kind);
    rh->fault_on = 0;
    rehearsal_describe(rh, desc, sizeof desc);
    snprintf(det, sizeof det, "drill --auto cleared %s (%s)", desc, why);
    drill_event(d, "fault_off", rh->s->providers[st->provider].name, det);
    printf("Tool: cleared %s.\n", desc);
    fflush(stdout);
}

/* The run's meta: the SLO targets, and with a scenario its failover bound. */
static char *drill_meta(const struct slofile *sf, const struct scenario *s)
{
    cJSON *root = cJSON_CreateObject(), *o;
    char desc[256];
    char *out = NULL;

    if (root == NULL) return NULL;
    if (s) snprintf(desc, sizeof desc, "Guided failover drill (rehearsal of %.200s)", s->name);
    else snprintf(desc, sizeof desc, "Guided failover drill");
    o = cJSON_AddObjectToObject(root, "scenario");
    if (o == NULL || !cJSON_AddStringToObject(o, "name", "drill") ||
        !cJSON_AddStringToObject(o, "description", desc))
        goto out;
    o = cJSON_AddObjectToObject(root, "slo");
    if (o == NULL || !cJSON_AddNumberToObject(o, "success_rate", sf->t.success_rate) ||
        !cJSON_AddNumberToObject(o, "p95_latency_s", sf->t.p95_latency_s) ||
        !cJSON_AddNumberToObject(o, "avg_cost_usd", sf->t.avg_cost_usd) ||
        !cJSON_AddNumberToObject(o, "window_days",
                                 sf->t.window_days >= 0 ? sf->t.window_days : 30.0))
        goto out;
    if (sf->t.monthly_requests >= 0 &&
        !cJSON_AddNumberToObject(o, "monthly_requests", sf->t.monthly_requests))
        goto out;
    if (s && s->expect.failover_within_s >= 0) {
        o = cJSON_AddObjectToObject(root, "expect");
        if (o == NULL ||
            !cJSON_AddNumberToObject(o, "failover_within_s", s->expect.failover_within_s))
            goto out;
    }
    out = cJSON_PrintUnformatted(root);
out:
    cJSON_Delete(root);
    return out;
}

int cmd_drill(int argc, char **argv)
{
    const char *target = NULL, *model = NULL, *key_env = NULL, *bypass = NULL, *plan = NULL;
    const char *answers = NULL, *out = NULL, *key = NULL, *scen = NULL, *w = "eof";
    double rate = 5;
    int rate_set = 0, autom = 0;
    struct drill d;
    struct rehearsal rh;
    struct slofile sf;
    struct prompt_set ps = {0};
    struct run_metrics m;
    char err[1024] = "", dir[PATH_MAX], dbp[PATH_MAX + 16], url[2048], line[256];
    char *meta = NULL;
    int i, code = 2, have_m = 0, ended = 0;
    uint64_t fault_at = 0;

    memset(&d, 0, sizeof d);
    memset(&rh, 0, sizeof rh);
    memset(&m, 0, sizeof m);
    rh.step = -1;
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
            autom = 1;
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
        } else if (strcmp(a, "--scenario") == 0) { scen = v; i++;
        } else if (strcmp(a, "--rate") == 0 || strcmp(a, "--stop-below") == 0) {
            char *end;
            double x = strtod(v, &end);
            if (*end || end == v || x <= 0 || x > 10000) {
                fprintf(stderr, "slodrill drill: %s takes a positive number, not '%s'\n", a, v);
                goto out;
            }
            if (a[2] == 'r') {
                rate = x;
                rate_set = 1;
            } else {
                d.stop_below = x;
            }
            i++;
        } else {
            fprintf(stderr, "slodrill drill: unknown option '%s'\n", a);
            goto out;
        }
    }
    if (autom && scen == NULL) {
        fprintf(stderr, "slodrill drill: --auto is for rehearsals only and needs --scenario FILE "
                        "(fake providers and the built-in router it starts itself). On a real "
                        "system the operator induces the failure: drop --auto.\n");
        goto out;
    }
    if (scen && target) {
        fprintf(stderr, "slodrill drill: --scenario starts its own router to drill against; "
                        "drop --target (or drop --scenario to drill a real router)\n");
        goto out;
    }
    if (scen) {
        rh.s = scenario_load(scen, err, sizeof err);
        if (rh.s == NULL) {
            fprintf(stderr, "%s\n", err);
            goto out;
        }
        if (rh.s->target || rh.s->router_config == NULL) {
            fprintf(stderr, "%s: a rehearsal runs the built-in router; this scenario names a "
                            "router target instead of a config\n", scen);
            goto out;
        }
        rh.step = rehearsal_first_fault(rh.s);
        if (autom && rh.step < 0) {
            fprintf(stderr, "%s: --auto injects the scenario's first timeline fault, and its "
                            "timeline injects none\n", scen);
            goto out;
        }
        if (model == NULL) model = rh.s->model;
        if (!rate_set && rh.s->rate > 0) rate = rh.s->rate;
    }
    if ((target == NULL && scen == NULL) || model == NULL) {
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
        if (rh.s) sf.t = rh.s->slo;
    }
    if (sf.t.success_rate < 0) sf.t.success_rate = 99.5;
    if (sf.t.p95_latency_s < 0) sf.t.p95_latency_s = 2.5;
    if (sf.t.avg_cost_usd < 0) sf.t.avg_cost_usd = 0.015;
    d.in = answers ? fopen(answers, "r") : stdin;
    if (d.in == NULL) {
        fprintf(stderr, "slodrill drill: cannot read %s: %s\n", answers, strerror(errno));
        goto out;
    }
    if (rh.s && rh.s->prompts_file ? prompt_set_load(rh.s->prompts_file, &ps, err, sizeof err)
                                   : prompt_set_builtin(&ps)) {
        fprintf(stderr, "%s\n", err[0] ? err : "slodrill drill: out of memory");
        goto out;
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
    meta = drill_meta(&sf, rh.s);
    d.t0 = clock_mono_us() + 100000;
    d.db = meta ? rundb_create(dbp, "drill", meta, clock_wall_us() + 100000, err, sizeof err) : NULL;
    d.base = event_base_new();
    if (d.db == NULL || d.base == NULL) {
        fprintf(stderr, "slodrill drill: %s\n", err[0] ? err : "out of memory");
        goto out;
    }
    if (rh.s) {
        if (rehearsal_start(&rh, &d, err, sizeof err) != 0) {
            fprintf(stderr, "slodrill drill: %s\n", err);
            goto out;
        }
        target = rh.target;
        if (key == NULL) key = rh.s->api_key ? rh.s->api_key : router_config_master_key(rh.cfg);
    }
    {
        size_t tl = strlen(target);
        int v1 = tl >= 3 && strcmp(target + tl - 3, "/v1") == 0;
        snprintf(url, sizeof url, "%s%s/chat/completions", target, v1 ? "" : "/v1");
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
        lo.stream = rh.s ? rh.s->stream : 1;
        lo.prompts = &ps;
        lo.seed = rh.s ? rh.s->seed : 1;
        lo.timeout_s = rh.s && rh.s->timeout_s > 0 ? rh.s->timeout_s : 30;
        if (rh.s) {
            lo.max_tokens = rh.s->max_tokens;
            lo.headers = rh.s->headers;
            lo.nheaders = rh.s->nheaders;
        }
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
    drill_event(&d, "run_start", "drill", rh.s ? rh.s->file : target);

    printf("Failover drill on %s (alias %s), steady load %g/s. Run DB: %s\n"
           "Roles: drill lead (DL) runs the clock and calls rollback; operator flips keys or\n"
           "firewall rules and watches; scribe types 'note TEXT' at any prompt.\n",
           target, model, rate, dbp);
    if (rh.s) {
        size_t k;
        printf("Rehearsal of %s: the built-in router and these fake providers run here.\n",
               rh.s->name);
        for (k = 0; k < rh.s->nproviders; k++)
            printf("  %-12s %s\n", rh.s->providers[k].name, rh.urls[k]);
    }
    drill_phase(&d, "pre-checks", "5 min",
                "DL: open the on-call channel with \"Failover drill (non-customer impacting)\".\n"
                "Baseline figures follow. Confirm the bypass path answers");
    if (bypass) printf(" (%s)", bypass);
    printf(", then type done.\n");
    if (bypass) drill_bypass(&d, bypass, key, model, 1);
    w = drill_wait(&d, "pre-checks", 0, 5 * 60);
    if (strcmp(w, "done") != 0) goto end;
    if (autom) {
        char desc[192];
        rehearsal_describe(&rh, desc, sizeof desc);
        drill_phase(&d, "induce-failure", "5-10 min", "");
        printf("Rehearsal (--auto): the tool induces the failure itself: %s.\n", desc);
        fflush(stdout);
        if (rehearsal_inject(&rh, &d) != 0) {
            w = "abort";
            goto end;
        }
    } else {
        drill_phase(&d, "induce-failure", "5-10 min",
                    "Operator, choose one and say done when it is in place:\n"
                    "  A (preferred) revoke or rotate the primary provider's key in the router\n"
                    "  B block egress to the primary's API base for 10 minutes\n"
                    "  C lower stream_timeout on the primary to 10-50 ms\n");
        if (rh.s && rh.s->nproviders)
            printf("Rehearsal: for A, slodrill fault add %s revoke_key\n", rh.urls[0]);
        w = drill_wait(&d, "induce-failure", 0, 10 * 60);
        if (strcmp(w, "done") != 0) goto end;
    }
    fault_at = clock_mono_us();
    if (!autom) drill_event(&d, "fault_on", "primary", "operator induced the failure");
    drill_phase(&d, "watch-failover", "live",
                "Watch who serves, SR and p95. Type rollback when the DL calls it.\n");
    w = drill_wait(&d, "watch-failover", fault_at, 0);
    if (strcmp(w, "abort") == 0 || strcmp(w, "eof") == 0) goto end;
    if (autom) {
        drill_phase(&d, "rollback", "2 min", "");
        rehearsal_clear(&rh, &d, "rollback");
        printf("Clear manual cooldowns if any; type done when health checks are green.\n");
        fflush(stdout);
    } else {
        drill_phase(&d, "rollback", "2 min",
                    "Operator: restore the key or remove the rule; clear manual cooldowns; redeploy\n"
                    "the router config if edited. Type done when health checks are green.\n");
    }
    w = drill_wait(&d, "rollback", fault_at, 2 * 60);
    if (strcmp(w, "done") != 0) goto end;
    if (!autom) drill_event(&d, "fault_off", "primary", "operator rolled back");
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
    rehearsal_clear(&rh, &d, "the drill ended");
    drill_phase(&d, "closeout", "3 min", "");
    if (d.stopped) {
        printf("Stopping the load (requests in flight are cut) and writing the closeout.\n");
        event_base_once(d.base, -1, EV_TIMEOUT, drill_on_stop, &d, NULL);
    } else {
        pthread_mutex_lock(&d.mu);
        printf("Stopping the load: %llu requests in flight may finish (at most %.0f s), then "
               "the closeout.\n", (unsigned long long)d.snap.inflight,
               rh.s && rh.s->timeout_s > 0 ? rh.s->timeout_s : 30.0);
        pthread_mutex_unlock(&d.mu);
        event_base_once(d.base, -1, EV_TIMEOUT, drill_on_drain, &d, NULL);
    }
    fflush(stdout);
    pthread_join(d.th, NULL);
    d.running = 0;
    rehearsal_stop(&rh); /* the router's events are in; nothing writes the DB after this */
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
    rehearsal_stop(&rh);
    if (d.tick) event_free(d.tick);
    if (d.lg) loadgen_free(d.lg);
    if (d.db) rundb_close(d.db);
    if (d.base) event_base_free(d.base);
    if (d.in && d.in != stdin) fclose(d.in);
    if (have_m) slo_metrics_free(&m);
    prompt_set_free(&ps);
    scenario_free(rh.s);
    free(meta);
    pthread_mutex_destroy(&d.mu);
    return code;
}
