/* main.c -- the slodrill command line: one binary, one subcommand per job. */
#include <dirent.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/yamlx.h"
#include "fakeproviders/fake.h"
#include "harness/commands.h"
#include "harness/gate.h"
#include "harness/runner.h"
#include "harness/scenario.h"
#include "reports/report.h"
#include "router/router.h"

#define SLODRILL_VERSION "0.1.0"

static const char usage_main[] =
    "usage: slodrill COMMAND [ARGS]   (slodrill COMMAND --help for each)\n"
    "\n"
    "commands:\n"
    "  run SCENARIO       play one scenario against fakes and the built-in router\n"
    "  gate CONFIG [SCENARIO...]\n"
    "                     CI gate: a router config through the gate scenarios\n"
    "  report RUN_DB      write every report again from a run DB\n"
    "  router --config FILE --port N\n"
    "                     the OpenAI-compatible router on its own\n"
    "  fake --config FILE run fake providers until SIGINT or SIGTERM\n"
    "  fault add|clear|list URL [FAULT] [--status N] [--key K] ...\n"
    "                     a running fake's faults, through its control API\n"
    "  promote --target URL --model M --samples FILE\n"
    "                     change check: p95 and cost of a model on 200 samples\n"
    "  slo SLO_FILE       write the SLO one-pager and the SOW clause\n"
    "  drill --target URL --key-env VAR --model ALIAS\n"
    "                     the guided Friday failover drill\n"
    "  alerts SLO_OR_SCENARIO [--from-run RUN_DB]\n"
    "                     Prometheus alerting rules for the SLO (and a promtool test)\n"
    "  lint CONFIG        what a LiteLLM config says that LiteLLM does not do\n"
    "  cache stats|purge CACHE_DB\n"
    "                     the router's answer cache: hit rate, entries; purge\n"
    "  version            print the version\n"
    "\n"
    "exit codes: 0 every check held; 1 an SLO or expectation failed;\n"
    "            2 bad usage, config or scenario; 3 a stop condition aborted the run;\n"
    "            130 interrupted (reports are still written).\n"
    "environment: NO_COLOR disables colour; SLODRILL_LOG=error|warn|info|debug.\n";

static const char usage_run[] =
    "usage: slodrill run SCENARIO [--out DIR] [--seed N] [--realtime] [--quiet]\n"
    "\n"
    "Starts the scenario's fake providers and the built-in router (or uses its\n"
    "router target), drives the traffic, plays the fault timeline, and writes\n"
    "run.db, closeout.md, report.json and junit.xml into runs/<name>-<UTC time>/\n"
    "(or DIR). Prints the folder and the closeout summary line.\n"
    "\n"
    "  --out DIR   write into DIR (it must not hold a run already)\n"
    "  --seed N    override the scenario's seed (fake latencies, routing, arrivals)\n"
    "  --realtime  run the load generator's thread at real-time priority (SCHED_FIFO),\n"
    "              so requests start on time even when the fakes, the router or\n"
    "              other programs keep every CPU busy; needs root or CAP_SYS_NICE\n"
    "              (without it: a warning, and the run goes on at normal priority)\n"
    "  --quiet     no progress line and no check list\n"
    "\n"
    "exit codes: 0 pass, 1 a check failed, 2 bad scenario or config,\n"
    "            3 stopped by the scenario's stop_if rule, 130 interrupted.\n";

static const char usage_gate[] =
    "usage: slodrill gate CONFIG [SCENARIO...] [--baseline OLD_CONFIG] [--junit FILE] [--out DIR]\n"
    "                     [--jobs N] [--quiet]\n"
    "\n"
    "Runs the LiteLLM-style CONFIG, unchanged, in the built-in router through\n"
    "each scenario (default: every scenarios/gate/*.yaml), with provider URLs and\n"
    "keys bound to fake providers through the environment each scenario\n"
    "declares. Prints one verdict row per scenario and writes JUnit XML.\n"
    "Everything is checked before anything runs.\n"
    "\n"
    "  --baseline OLD_CONFIG\n"
    "                also run every scenario with the old config (same seeds) and show\n"
    "                TTF, TTR, p95, SR and average cost side by side, old -> new with\n"
    "                the change; reports under <out>/candidate/ and <out>/baseline/.\n"
    "                The verdict, exit code and JUnit cases are CONFIG's; JUnit\n"
    "                suites carry the baseline's figures as properties\n"
    "  --junit FILE  where to write JUnit XML (default: <out>/junit.xml)\n"
    "  --out DIR     folder for the runs (default: runs/gate-<UTC time>)\n"
    "  --jobs N      scenarios run at once, each on its own ports (default 4)\n"
    "  --quiet       no progress lines\n"
    "\n"
    "exit codes: 0 every scenario passed, 1 any failed, 2 bad input (nothing ran).\n";

static const char usage_report[] =
    "usage: slodrill report RUN_DB [--out DIR]\n"
    "\n"
    "Recomputes closeout.md, report.json and junit.xml from a run DB (also one\n"
    "left by a killed run: its report says it is incomplete). Writes next to\n"
    "the DB unless --out is given.\n"
    "\n"
    "exit codes: 0 the run's checks held, 1 a check failed, 2 unreadable DB.\n";

static const char usage_router[] =
    "usage: slodrill router --config FILE [--host 127.0.0.1] --port N [--seed N] [--log FILE]\n"
    "\n"
    "Serves the OpenAI-compatible API with the config's routing: order tiers,\n"
    "weights, in-group retries, failover, cooldowns. os.environ/NAME values are\n"
    "read from the environment. Runs until SIGINT or SIGTERM. Prints\n"
    "'router http://HOST:PORT' once listening.\n"
    "--log FILE writes every request's record to a SQLite file (table requests;\n"
    "router_settings.slodrill_request_log does the same from the config).\n"
    "\n"
    "exit codes: 0 stopped by a signal, 2 bad config or address.\n";

static const char usage_fake[] =
    "usage: slodrill fake --config FILE\n"
    "\n"
    "Runs the fake providers listed under providers: in FILE (a scenario file\n"
    "works), each at its listen: HOST:PORT or an ephemeral loopback port.\n"
    "Prints one line 'NAME URL' per provider once all listen, then runs until\n"
    "SIGINT or SIGTERM. Faults can be picked per request with the\n"
    "x-slodrill-fault header.\n"
    "\n"
    "exit codes: 0 stopped by a signal, 2 bad file or address.\n";

static int want_color(FILE *fp)
{
    const char *nc = getenv("NO_COLOR");
    const char *term = getenv("TERM");
    if (nc && nc[0]) return 0;
    if (term && strcmp(term, "dumb") == 0) return 0;
    return isatty(fileno(fp));
}

static int is_help(const char *a) { return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0; }

static int bad_usage(const char *usage, const char *fmt, const char *arg)
{
    fprintf(stderr, "slodrill: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n\n%s", usage);
    return 2;
}

int cmd_run(int argc, char **argv)
{
    const char *file = NULL;
    struct run_opts o;
    struct run_result res;
    struct scenario *s;
    char err[1024] = "";
    int i, code;

    memset(&o, 0, sizeof o);
    for (i = 0; i < argc; i++) {
        if (is_help(argv[i])) {
            fputs(usage_run, stdout);
            return 0;
        } else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc) {
            o.out_dir = argv[++i];
        } else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
            char *end;
            o.seed = strtoull(argv[++i], &end, 10);
            if (*end != '\0' || argv[i][0] == '\0')
                return bad_usage(usage_run, "--seed takes a whole number, not '%s'", argv[i]);
            o.seed_set = 1;
        } else if (strcmp(argv[i], "--quiet") == 0 || strcmp(argv[i], "-q") == 0) {
            o.quiet = 1;
        } else if (strcmp(argv[i], "--realtime") == 0) {
            o.realtime = 1;
        } else if (argv[i][0] == '-') {
            return bad_usage(usage_run, "unknown option '%s'", argv[i]);
        } else if (file == NULL) {
            file = argv[i];
        } else {
            return bad_usage(usage_run, "one scenario at a time; '%s' is one too many", argv[i]);
        }
    }
    if (file == NULL) return bad_usage(usage_run, "%s", "which scenario? give a YAML file");
    s = scenario_load(file, err, sizeof err);
    if (s == NULL) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    o.progress_tty = isatty(STDERR_FILENO);
    o.color = want_color(stdout);
    if (runner_run(s, &o, &res, err, sizeof err) != 0) {
        fprintf(stderr, "slodrill: %s\n", err);
        code = res.exit_code == RUN_EXIT_PASS ? RUN_EXIT_FAIL : res.exit_code;
    } else {
        printf("%s\n", res.summary);
        printf("%s: %s\n", res.exit_code == 0 ? "PASS" : res.exit_code == 3 ? "STOPPED" : "FAIL",
               res.out_dir);
        code = res.exit_code;
    }
    if (res.have_metrics) slo_metrics_free(&res.metrics);
    scenario_free(s);
    return code;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int cmd_gate(int argc, char **argv)
{
    struct gate_opts o;
    const char **files = calloc((size_t)argc + 1, sizeof *files);
    char **owned = NULL;
    size_t nowned = 0, i;
    int code = 2, a;

    memset(&o, 0, sizeof o);
    if (files == NULL) return 2;
    for (a = 0; a < argc; a++) {
        if (is_help(argv[a])) {
            fputs(usage_gate, stdout);
            code = 0;
            goto out;
        } else if (strcmp(argv[a], "--junit") == 0 && a + 1 < argc) {
            o.junit = argv[++a];
        } else if (strcmp(argv[a], "--baseline") == 0 && a + 1 < argc) {
            o.baseline = argv[++a];
        } else if (strcmp(argv[a], "--out") == 0 && a + 1 < argc) {
            o.out_dir = argv[++a];
        } else if (strcmp(argv[a], "--jobs") == 0 && a + 1 < argc) {
            char *end;
            long j = strtol(argv[++a], &end, 10);
            if (*end != '\0' || j < 1 || j > 16) {
                code = bad_usage(usage_gate, "--jobs takes 1 to 16, not '%s'", argv[a]);
                goto out;
            }
            o.jobs = (int)j;
        } else if (strcmp(argv[a], "--quiet") == 0 || strcmp(argv[a], "-q") == 0) {
            o.quiet = 1;
        } else if (argv[a][0] == '-') {
            code = bad_usage(usage_gate, "unknown option '%s'", argv[a]);
            goto out;
        } else if (o.config == NULL) {
            o.config = argv[a];
        } else {
            files[o.nscenarios++] = argv[a];
        }
    }
    if (o.config == NULL) {
        code = bad_usage(usage_gate, "%s", "which router config? give a LiteLLM config.yaml");
        goto out;
    }
    if (o.nscenarios == 0) {
        DIR *d = opendir("scenarios/gate");
        struct dirent *e;
        if (d == NULL) {
            code = bad_usage(usage_gate, "%s", "no scenarios given and no scenarios/gate/ here");
            goto out;
        }
        owned = calloc(256, sizeof *owned);
        while (owned && (e = readdir(d)) != NULL && nowned < 256) {
            size_t l = strlen(e->d_name);
            if (l > 5 && strcmp(e->d_name + l - 5, ".yaml") == 0) {
                char *p = malloc(l + 20);
                if (p == NULL) break;
                snprintf(p, l + 20, "scenarios/gate/%s", e->d_name);
                owned[nowned++] = p;
            }
        }
        closedir(d);
        if (nowned == 0) {
            code = bad_usage(usage_gate, "%s", "scenarios/gate/ holds no .yaml scenarios");
            goto out;
        }
        qsort(owned, nowned, sizeof *owned, cmp_str);
        free(files);
        files = (const char **)owned;
        owned = NULL;
        o.nscenarios = nowned;
    }
    o.scenarios = files;
    o.progress_tty = isatty(STDERR_FILENO);
    o.color = want_color(stdout);
    code = gate_run(&o);
    if (nowned) {
        for (i = 0; i < nowned; i++) free((char *)files[i]);
    }
out:
    free(files);
    free(owned);
    return code;
}

int cmd_report(int argc, char **argv)
{
    const char *db = NULL, *out = NULL;
    char dir[4096], err[1024] = "", line[256];
    struct run_metrics m;
    int i, code;

    for (i = 0; i < argc; i++) {
        if (is_help(argv[i])) {
            fputs(usage_report, stdout);
            return 0;
        } else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc) {
            out = argv[++i];
        } else if (argv[i][0] == '-') {
            return bad_usage(usage_report, "unknown option '%s'", argv[i]);
        } else if (db == NULL) {
            db = argv[i];
        } else {
            return bad_usage(usage_report, "one run DB at a time; '%s' is one too many", argv[i]);
        }
    }
    if (db == NULL) return bad_usage(usage_report, "%s", "which run DB? give the run.db path");
    if (out == NULL) {
        const char *slash = strrchr(db, '/');
        if (slash) snprintf(dir, sizeof dir, "%.*s", (int)(slash - db), db);
        else snprintf(dir, sizeof dir, ".");
        out = dir;
    }
    if (access(db, R_OK) != 0) {
        fprintf(stderr, "slodrill: cannot read %s\n", db);
        return 2;
    }
    if (report_write_all(db, out, &m, err, sizeof err) != 0) {
        fprintf(stderr, "slodrill: %s\n", err);
        return 2;
    }
    report_summary_line(&m, line, sizeof line);
    printf("%s\n%s: %s\n", line, m.passed ? "PASS" : "FAIL", out);
    code = m.passed ? 0 : 1;
    slo_metrics_free(&m);
    return code;
}

static void on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    event_base_loopexit(arg, NULL);
}

/* Adds SIGINT and SIGTERM handlers that end base's loop. */
static int stop_on_signals(struct event_base *base, struct event **a, struct event **b)
{
    *a = evsignal_new(base, SIGINT, on_stop_signal, base);
    *b = evsignal_new(base, SIGTERM, on_stop_signal, base);
    if (*a == NULL || *b == NULL || event_add(*a, NULL) != 0 || event_add(*b, NULL) != 0)
        return -1;
    return 0;
}

static void warn_print(const char *msg, void *arg)
{
    (void)arg;
    fprintf(stderr, "warning: %s\n", msg);
}

int cmd_router(int argc, char **argv)
{
    const char *config = NULL;
    struct proxy_opts po;
    struct router_config *cfg = NULL;
    struct proxy *p = NULL;
    struct event_base *base = NULL;
    struct event *sa = NULL, *sb = NULL;
    char err[1024] = "";
    int i, code = 2, port_set = 0;

    memset(&po, 0, sizeof po);
    po.host = "127.0.0.1";
    po.seed = 1;
    for (i = 0; i < argc; i++) {
        if (is_help(argv[i])) {
            fputs(usage_router, stdout);
            return 0;
        } else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config = argv[++i];
        } else if (strcmp(argv[i], "--host") == 0 && i + 1 < argc) {
            po.host = argv[++i];
        } else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end != '\0' || v < 0 || v > 65535)
                return bad_usage(usage_router, "--port takes 0-65535, not '%s'", argv[i]);
            po.port = (int)v;
            port_set = 1;
        } else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
            char *end;
            po.seed = strtoull(argv[++i], &end, 10);
            if (*end != '\0') return bad_usage(usage_router, "--seed takes a number, not '%s'", argv[i]);
        } else if (strcmp(argv[i], "--log") == 0 && i + 1 < argc) {
            po.log_path = argv[++i];
        } else {
            return bad_usage(usage_router, "unknown argument '%s'", argv[i]);
        }
    }
    if (config == NULL) return bad_usage(usage_router, "%s", "--config FILE is required");
    if (!port_set) return bad_usage(usage_router, "%s", "--port N is required (0 picks a free port)");
    cfg = router_config_load(config, NULL, NULL, warn_print, NULL, err, sizeof err);
    if (cfg == NULL) {
        fprintf(stderr, "%s\n", err);
        goto out;
    }
    {
        /* epoll changes gathered per loop turn: a socket whose interest
         * flips and flips back within one turn costs no epoll_ctl */
        struct event_config *ec = event_config_new();
        if (ec) event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
        base = ec ? event_base_new_with_config(ec) : NULL;
        if (ec) event_config_free(ec);
    }
    if (base == NULL) goto out;
    p = proxy_new(base, cfg, &po, err, sizeof err);
    if (p == NULL) {
        fprintf(stderr, "slodrill: %s\n", err);
        goto out;
    }
    if (stop_on_signals(base, &sa, &sb) != 0) goto out;
    printf("router http://%s:%d\n", po.host, proxy_port(p));
    fflush(stdout);
    event_base_dispatch(base);
    code = 0;
out:
    proxy_free(p);
    if (sa) event_free(sa);
    if (sb) event_free(sb);
    if (base) event_base_free(base);
    router_config_free(cfg);
    return code;
}

int cmd_fake(int argc, char **argv)
{
    const char *file = NULL;
    struct ynode *root = NULL;
    const struct ynode *list;
    struct fake **fakes = NULL;
    size_t n = 0, i;
    struct event_base *base = NULL;
    struct event *sa = NULL, *sb = NULL;
    char err[1024] = "";
    int a, code = 2;

    for (a = 0; a < argc; a++) {
        if (is_help(argv[a])) {
            fputs(usage_fake, stdout);
            return 0;
        } else if (strcmp(argv[a], "--config") == 0 && a + 1 < argc) {
            file = argv[++a];
        } else {
            return bad_usage(usage_fake, "unknown argument '%s'", argv[a]);
        }
    }
    if (file == NULL) return bad_usage(usage_fake, "%s", "--config FILE is required");
    root = yamlx_load_file(file, err, sizeof err);
    if (root == NULL) {
        fprintf(stderr, "%s\n", err);
        goto out;
    }
    list = yamlx_get(root, "providers");
    if (list == NULL || list->type != YNODE_SEQ || list->n == 0) {
        (void)yamlx_error(err, sizeof err, list ? list : root,
                          "expected providers: with a list of fake providers");
        fprintf(stderr, "%s\n", err);
        goto out;
    }
    base = event_base_new();
    fakes = calloc(list->n, sizeof *fakes);
    if (base == NULL || fakes == NULL) goto out;
    for (i = 0; i < list->n; i++) {
        struct fake_spec spec;
        fake_spec_defaults(&spec);
        if (fake_spec_from_yaml(list->items[i], &spec, err, sizeof err) != 0) {
            fprintf(stderr, "%s\n", err);
            goto out;
        }
        if (yamlx_get(list->items[i], "seed") == NULL) spec.seed = i + 1;
        fakes[n] = fake_new(base, &spec, err, sizeof err);
        if (fakes[n] == NULL) {
            fprintf(stderr, "slodrill: %s: %s\n", spec.name, err);
            goto out;
        }
        n++;
    }
    if (stop_on_signals(base, &sa, &sb) != 0) goto out;
    for (i = 0; i < n; i++) printf("%s %s\n", fake_name(fakes[i]), fake_url(fakes[i]));
    fflush(stdout);
    event_base_dispatch(base);
    code = 0;
out:
    for (i = 0; i < n; i++) fake_free(fakes[i]);
    free(fakes);
    if (sa) event_free(sa);
    if (sb) event_free(sb);
    if (base) event_base_free(base);
    yamlx_free(root);
    return code;
}

static const struct command commands[] = {
    {"run", cmd_run},       {"gate", cmd_gate},   {"report", cmd_report},
    {"router", cmd_router}, {"fake", cmd_fake},   COMMANDS_MORE
    {NULL, NULL},
};

const struct command *command_find(const char *name)
{
    size_t i;
    for (i = 0; commands[i].name; i++)
        if (strcmp(commands[i].name, name) == 0) return &commands[i];
    return NULL;
}

int main(int argc, char **argv)
{
    const char *cmd;
    int code;

    if (argc < 2) {
        fputs(usage_main, stderr);
        return 2;
    }
    cmd = argv[1];
    if (is_help(cmd) || strcmp(cmd, "help") == 0) {
        fputs(usage_main, stdout);
        return 0;
    }
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("slodrill %s\n", SLODRILL_VERSION);
        return 0;
    }
    signal(SIGPIPE, SIG_IGN);
    if (evthread_use_pthreads() != 0 || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "slodrill: cannot initialise libevent threads or libcurl\n");
        return 1;
    }
    {
        const struct command *c = command_find(cmd);
        if (c == NULL) {
            fprintf(stderr, "slodrill: unknown command '%s'\n\n%s", cmd, usage_main);
            code = 2;
        } else {
            code = c->fn(argc - 2, argv + 2);
        }
    }
    curl_global_cleanup();
    libevent_global_shutdown();
    return code;
}
