/* scenario.c -- loads a drill scenario and checks it before anything runs. */
#include "harness/scenario.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/yamlx.h"

#define SCN_MAX_PROVIDERS 16
#define SCN_MAX_STEPS 256
#define SCN_MAX_HEADERS 32
#define SCN_MAX_ENV 64
#define SCN_MAX_DURATION_S (24.0 * 3600)
#define SCN_MAX_RATE 100000.0

static const char *const top_keys[] = {"name", "description", "seed", "slo", "providers",
                                       "router", "traffic", "timeline", "expect", "stop_if",
                                       NULL};
static const char *const slo_keys[] = {"success_rate", "p95_latency_s", "avg_cost_usd",
                                       "window_days", "monthly_requests", NULL};
static const char *const router_keys[] = {"config", "env", "target", "served_by_header", NULL};
static const char *const traffic_keys[] = {"model", "rate", "ramp_to", "steps", "workers",
                                           "arrival", "duration", "stream", "prompts",
                                           "headers", "max_tokens", "timeout", "max_inflight",
                                           "key", NULL};
static const char *const step_load_keys[] = {"rate", "ramp_to", "duration", NULL};
#define SCN_MAX_LOAD_STEPS 64
static const char *const step_keys[] = {"at", "inject", "clear", "provider", "status",
                                        "probability", "key", "duration", "ms", "after_events",
                                        "retry_after", "mode", NULL};
static const char *const expect_keys[] = {"failover_within_s", "success_rate_min",
                                          "p95_latency_s", "back_on_primary_within_s",
                                          "recover_within_s", "avg_cost_max_usd", NULL};
static const char *const stop_keys[] = {"success_rate_below", "for_s", NULL};

void scenario_free(struct scenario *s)
{
    size_t i;
    if (s == NULL) return;
    free(s->file);
    free(s->name);
    free(s->description);
    free(s->providers);
    free(s->router_config);
    for (i = 0; i < s->nenv; i++) {
        free(s->env[i].name);
        free(s->env[i].value);
    }
    free(s->env);
    free(s->target);
    free(s->served_by_header);
    free(s->model);
    free(s->steps_load);
    free(s->prompts_file);
    free(s->api_key);
    for (i = 0; i < s->nheaders; i++) {
        free((char *)s->headers[i].name);
        free((char *)s->headers[i].value);
    }
    free(s->headers);
    free(s->steps);
    free(s);
}

int scenario_provider_index(const struct scenario *s, const char *name)
{
    size_t i;
    for (i = 0; i < s->nproviders; i++)
        if (strcmp(s->providers[i].name, name) == 0) return (int)i;
    return -1;
}

static int dup_scalar(const struct ynode *n, char **out, char *err, size_t errlen)
{
    const char *v;
    if (yamlx_string(n, &v, err, errlen) != 0) return -1;
    free(*out);
    *out = strdup(v);
    if (*out == NULL) return yamlx_error(err, errlen, n, "out of memory");
    return 0;
}

/* A path as written, else beside the scenario file. */
static char *resolve_path(const char *scn_file, const char *p)
{
    const char *slash;
    char *out;
    size_t dl;
    if (p[0] == '/' || access(p, F_OK) == 0) return strdup(p);
    slash = strrchr(scn_file, '/');
    if (slash == NULL) return strdup(p);
    dl = (size_t)(slash - scn_file) + 1;
    out = malloc(dl + strlen(p) + 1);
    if (out == NULL) return NULL;
    memcpy(out, scn_file, dl);
    memcpy(out + dl, p, strlen(p) + 1);
    if (access(out, F_OK) != 0) {
        free(out);
        return strdup(p);
    }
    return out;
}

static int read_num(const struct ynode *map, const char *key, double lo, double hi, double *out,
                    char *err, size_t errlen)
{
    const struct ynode *n = yamlx_get(map, key);
    if (n == NULL) return 0;
    if (yamlx_double(n, out, err, errlen) != 0) return -1;
    if (*out < lo || *out > hi)
        return yamlx_error(err, errlen, n, "%s must be between %g and %g, found %g", key, lo, hi,
                           *out);
    return 0;
}

static int read_dur(const struct ynode *map, const char *key, double hi, double *out, char *err,
                    size_t errlen)
{
    const struct ynode *n = yamlx_get(map, key);
    if (n == NULL) return 0;
    if (yamlx_duration(n, out, err, errlen) != 0) return -1;
    if (*out > hi)
        return yamlx_error(err, errlen, n, "%s must be at most %gs, found %gs", key, hi, *out);
    return 0;
}

static int load_slo(const struct ynode *n, struct slo_targets *t, char *err, size_t errlen)
{
    if (n == NULL) return 0;
    if (yamlx_check_keys(n, slo_keys, "slo", err, errlen) != 0) return -1;
    if (read_num(n, "success_rate", 0, 100, &t->success_rate, err, errlen) != 0 ||
        read_num(n, "p95_latency_s", 0, 3600, &t->p95_latency_s, err, errlen) != 0 ||
        read_num(n, "avg_cost_usd", 0, 1e6, &t->avg_cost_usd, err, errlen) != 0 ||
        read_num(n, "window_days", 0, 366, &t->window_days, err, errlen) != 0 ||
        read_num(n, "monthly_requests", 0, 1e12, &t->monthly_requests, err, errlen) != 0)
        return -1;
    return 0;
}

static int load_expect(const struct ynode *n, struct expectations *e, char *err, size_t errlen)
{
    if (n == NULL) return 0;
    if (yamlx_check_keys(n, expect_keys, "expect", err, errlen) != 0) return -1;
    if (read_num(n, "failover_within_s", 0, 3600, &e->failover_within_s, err, errlen) != 0 ||
        read_num(n, "success_rate_min", 0, 100, &e->success_rate_min, err, errlen) != 0 ||
        read_num(n, "p95_latency_s", 0, 3600, &e->p95_latency_s, err, errlen) != 0 ||
        read_num(n, "back_on_primary_within_s", 0, 86400, &e->back_on_primary_within_s, err,
                 errlen) != 0 ||
        read_num(n, "recover_within_s", 0, 86400, &e->recover_within_s, err, errlen) != 0 ||
        read_num(n, "avg_cost_max_usd", 0, 1e6, &e->avg_cost_max_usd, err, errlen) != 0)
        return -1;
    return 0;
}

/* Checks "${a.b}" references in a template against the providers. */
static int check_template(const struct scenario *s, const struct ynode *n, char *err,
                          size_t errlen)
{
    const char *p = n->scalar;
    while ((p = strstr(p, "${")) != NULL) {
        const char *end = strchr(p, '}');
        const char *dot;
        char name[64], field[16];
        size_t nl;
        if (end == NULL)
            return yamlx_error(err, errlen, n, "unclosed '${' in '%s'; write ${provider.url}",
                               n->scalar);
        dot = memchr(p + 2, '.', (size_t)(end - p - 2));
        if (dot == NULL || (nl = (size_t)(dot - p - 2)) >= sizeof name ||
            (size_t)(end - dot - 1) >= sizeof field)
            return yamlx_error(err, errlen, n,
                               "'%.*s' is not a reference; write ${provider.url} or "
                               "${provider.key}",
                               (int)(end - p + 1), p);
        memcpy(name, p + 2, nl);
        name[nl] = '\0';
        memcpy(field, dot + 1, (size_t)(end - dot - 1));
        field[end - dot - 1] = '\0';
        if (scenario_provider_index(s, name) < 0)
            return yamlx_error(err, errlen, n, "'%s' names no provider of this scenario", name);
        if (strcmp(field, "url") && strcmp(field, "key") && strcmp(field, "port") &&
            strcmp(field, "name"))
            return yamlx_error(err, errlen, n,
                               "unknown field '%s' of provider '%s'; use url, key, port or name",
                               field, name);
        p = end + 1;
    }
    return 0;
}

static int load_router(struct scenario *s, const struct ynode *n, char *err, size_t errlen)
{
    const struct ynode *c, *env, *t;
    size_t i;
    if (n == NULL) return yamlx_error(err, errlen, NULL, "%s: missing 'router:' (config: FILE or target: URL)", s->file);
    if (yamlx_check_keys(n, router_keys, "router", err, errlen) != 0) return -1;
    c = yamlx_get(n, "config");
    t = yamlx_get(n, "target");
    if ((c == NULL) == (t == NULL))
        return yamlx_error(err, errlen, n,
                           "router needs exactly one of config: (a LiteLLM config file run by "
                           "the built-in router) or target: (the URL of a router to test)");
    if (c) {
        const char *v;
        if (yamlx_string(c, &v, err, errlen) != 0) return -1;
        s->router_config = resolve_path(s->file, v);
        if (s->router_config == NULL) return yamlx_error(err, errlen, c, "out of memory");
        if (access(s->router_config, R_OK) != 0)
            return yamlx_error(err, errlen, c, "cannot read router config '%s'", v);
    } else {
        if (dup_scalar(t, &s->target, err, errlen) != 0) return -1;
        if (strncmp(s->target, "http://", 7) != 0 && strncmp(s->target, "https://", 8) != 0)
            return yamlx_error(err, errlen, t, "target must be an http:// or https:// URL, found '%s'",
                               s->target);
    }
    if (yamlx_get(n, "served_by_header") &&
        dup_scalar(yamlx_get(n, "served_by_header"), &s->served_by_header, err, errlen) != 0)
        return -1;
    env = yamlx_get(n, "env");
    if (env == NULL) return 0;
    if (env->type != YNODE_MAP)
        return yamlx_error(err, errlen, env, "router.env must be a mapping of NAME: value");
    if (env->n > SCN_MAX_ENV)
        return yamlx_error(err, errlen, env, "at most %d env entries", SCN_MAX_ENV);
    s->env = calloc(env->n ? env->n : 1, sizeof *s->env);
    if (s->env == NULL) return yamlx_error(err, errlen, env, "out of memory");
    for (i = 0; i < env->n; i++) {
        const char *v;
        if (yamlx_string(env->items[i], &v, err, errlen) != 0 ||
            check_template(s, env->items[i], err, errlen) != 0)
            return -1;
        s->env[i].name = strdup(env->keys[i]->scalar);
        s->env[i].value = strdup(v);
        s->nenv++;
        if (s->env[i].name == NULL || s->env[i].value == NULL)
            return yamlx_error(err, errlen, env, "out of memory");
    }
    return 0;
}

/* A rate that may be 0 (a pause in a stepped schedule). */
static int rate_or_zero(const struct ynode *v, double *out, char *err, size_t errlen)
{
    if (v->type == YNODE_SCALAR && strcmp(v->scalar, "0") == 0) return *out = 0, 0;
    if (yamlx_rate(v, out, err, errlen) != 0) return -1;
    if (*out > SCN_MAX_RATE)
        return yamlx_error(err, errlen, v, "rate must be at most %g/s", SCN_MAX_RATE);
    return 0;
}

/* The schedule: rate (optionally ramp_to) for duration; or steps:; or
 * workers: for a closed loop. */
static int load_shape(struct scenario *s, const struct ynode *n, char *err, size_t errlen)
{
    const struct ynode *v, *steps = yamlx_get(n, "steps"), *workers = yamlx_get(n, "workers");
    size_t i;

    if (steps != NULL) {
        if (yamlx_get(n, "rate") || yamlx_get(n, "ramp_to") || yamlx_get(n, "duration") || workers)
            return yamlx_error(err, errlen, steps,
                               "steps: replaces rate:, ramp_to: and duration:; give either steps "
                               "or a rate with a duration");
        if (steps->type != YNODE_SEQ || steps->n == 0 || steps->n > SCN_MAX_LOAD_STEPS)
            return yamlx_error(err, errlen, steps,
                               "steps must be a list of 1 to %d {rate, duration[, ramp_to]}",
                               SCN_MAX_LOAD_STEPS);
        s->steps_load = calloc(steps->n, sizeof *s->steps_load);
        if (s->steps_load == NULL) return yamlx_error(err, errlen, steps, "out of memory");
        s->duration_s = 0;
        for (i = 0; i < steps->n; i++) {
            const struct ynode *st = steps->items[i];
            struct loadgen_step *ls = &s->steps_load[i];
            if (yamlx_check_keys(st, step_load_keys, "a traffic step", err, errlen) != 0) return -1;
            if ((v = yamlx_get(st, "rate")) == NULL)
                return yamlx_error(err, errlen, st, "a traffic step needs rate: (0 for a pause)");
            if (rate_or_zero(v, &ls->rate, err, errlen) != 0) return -1;
            if ((v = yamlx_get(st, "ramp_to")) != NULL && rate_or_zero(v, &ls->ramp_to, err, errlen) != 0)
                return -1;
            if ((v = yamlx_get(st, "duration")) == NULL)
                return yamlx_error(err, errlen, st, "a traffic step needs duration: (e.g. 10s)");
            if (yamlx_duration(v, &ls->duration_s, err, errlen) != 0) return -1;
            if (ls->duration_s <= 0)
                return yamlx_error(err, errlen, v, "a step's duration must be above 0");
            s->duration_s += ls->duration_s;
            s->nsteps_load++;
        }
        if (s->duration_s > SCN_MAX_DURATION_S)
            return yamlx_error(err, errlen, steps, "the steps add up to more than 24h");
        s->rate = s->steps_load[0].rate;
        return 0;
    }
    v = yamlx_get(n, "duration");
    if (v == NULL) return yamlx_error(err, errlen, n, "traffic needs duration: (e.g. 30s)");
    if (yamlx_duration(v, &s->duration_s, err, errlen) != 0) return -1;
    if (s->duration_s <= 0 || s->duration_s > SCN_MAX_DURATION_S)
        return yamlx_error(err, errlen, v, "duration must be above 0 and at most 24h");
    if (workers != NULL) {
        long w;
        if (yamlx_get(n, "rate") || yamlx_get(n, "ramp_to"))
            return yamlx_error(err, errlen, workers,
                               "workers: (a closed loop) sets its own pace; drop rate:");
        if (yamlx_long(workers, &w, err, errlen) != 0) return -1;
        if (w < 1 || w > 10000)
            return yamlx_error(err, errlen, workers, "workers must be between 1 and 10000");
        s->workers = (int)w;
        return 0;
    }
    v = yamlx_get(n, "rate");
    if (v == NULL) return yamlx_error(err, errlen, n, "traffic needs rate: (e.g. 20/s)");
    if (yamlx_rate(v, &s->rate, err, errlen) != 0) return -1;
    if (s->rate > SCN_MAX_RATE)
        return yamlx_error(err, errlen, v, "rate must be at most %g/s", SCN_MAX_RATE);
    if ((v = yamlx_get(n, "ramp_to")) != NULL) {
        if (yamlx_rate(v, &s->ramp_to, err, errlen) != 0) return -1;
        if (s->ramp_to > SCN_MAX_RATE)
            return yamlx_error(err, errlen, v, "ramp_to must be at most %g/s", SCN_MAX_RATE);
    }
    return 0;
}

static int load_traffic(struct scenario *s, const struct ynode *n, char *err, size_t errlen)
{
    const struct ynode *v;
    if (n == NULL) return yamlx_error(err, errlen, NULL, "%s: missing 'traffic:'", s->file);
    if (yamlx_check_keys(n, traffic_keys, "traffic", err, errlen) != 0) return -1;
    v = yamlx_get(n, "model");
    if (v == NULL) return yamlx_error(err, errlen, n, "traffic needs model: (the alias to call, e.g. app/chat)");
    if (dup_scalar(v, &s->model, err, errlen) != 0) return -1;
    if (load_shape(s, n, err, errlen) != 0) return -1;
    if ((v = yamlx_get(n, "arrival")) != NULL) {
        if (v->type != YNODE_SCALAR ||
            (strcmp(v->scalar, "constant") != 0 && strcmp(v->scalar, "poisson") != 0))
            return yamlx_error(err, errlen, v, "arrival must be constant or poisson");
        s->arrival = strcmp(v->scalar, "poisson") == 0 ? ARRIVAL_POISSON : ARRIVAL_CONSTANT;
    }
    if ((v = yamlx_get(n, "stream")) != NULL && yamlx_bool(v, &s->stream, err, errlen) != 0)
        return -1;
    if ((v = yamlx_get(n, "max_tokens")) != NULL) {
        if (yamlx_long(v, &s->max_tokens, err, errlen) != 0) return -1;
        if (s->max_tokens < 1 || s->max_tokens > 1000000)
            return yamlx_error(err, errlen, v, "max_tokens must be between 1 and 1000000");
    }
    if (read_dur(n, "timeout", 3600, &s->timeout_s, err, errlen) != 0) return -1;
    if ((v = yamlx_get(n, "max_inflight")) != NULL) {
        long m;
        if (yamlx_long(v, &m, err, errlen) != 0) return -1;
        if (m < 1 || m > 100000)
            return yamlx_error(err, errlen, v, "max_inflight must be between 1 and 100000");
        s->max_inflight = (int)m;
    }
    if ((v = yamlx_get(n, "prompts")) != NULL) {
        const char *p;
        if (yamlx_string(v, &p, err, errlen) != 0) return -1;
        s->prompts_file = resolve_path(s->file, p);
        if (s->prompts_file == NULL) return yamlx_error(err, errlen, v, "out of memory");
        if (access(s->prompts_file, R_OK) != 0)
            return yamlx_error(err, errlen, v, "cannot read prompts file '%s'", p);
    }
    if ((v = yamlx_get(n, "key")) != NULL) {
        if (dup_scalar(v, &s->api_key, err, errlen) != 0) return -1;
    }
    if ((v = yamlx_get(n, "headers")) != NULL) {
        size_t i;
        if (v->type != YNODE_MAP)
            return yamlx_error(err, errlen, v, "traffic.headers must be a mapping of Name: value");
        if (v->n > SCN_MAX_HEADERS)
            return yamlx_error(err, errlen, v, "at most %d headers", SCN_MAX_HEADERS);
        s->headers = calloc(v->n ? v->n : 1, sizeof *s->headers);
        if (s->headers == NULL) return yamlx_error(err, errlen, v, "out of memory");
        for (i = 0; i < v->n; i++) {
            const char *hv;
            if (yamlx_string(v->items[i], &hv, err, errlen) != 0) return -1;
            if (strpbrk(v->keys[i]->scalar, " :\r\n") || strpbrk(hv, "\r\n"))
                return yamlx_error(err, errlen, v->keys[i],
                                   "header names may not hold spaces or colons, nor values line breaks");
            s->headers[i].name = strdup(v->keys[i]->scalar);
            s->headers[i].value = strdup(hv);
            s->nheaders++;
            if (s->headers[i].name == NULL || s->headers[i].value == NULL)
                return yamlx_error(err, errlen, v, "out of memory");
        }
    }
    return 0;
}

static int load_step(struct scenario *s, const struct ynode *n, struct scenario_step *st,
                     char *err, size_t errlen)
{
    const struct ynode *at, *inj, *clr, *prov, *v;
    const char *kname;
    int kind;

    if (n->type != YNODE_MAP)
        return yamlx_error(err, errlen, n, "a timeline step is a mapping such as "
                                           "{ at: 8s, inject: revoke_key, provider: primary }");
    if (yamlx_check_keys(n, step_keys, "a timeline step", err, errlen) != 0) return -1;
    at = yamlx_get(n, "at");
    inj = yamlx_get(n, "inject");
    clr = yamlx_get(n, "clear");
    prov = yamlx_get(n, "provider");
    if (at == NULL) return yamlx_error(err, errlen, n, "timeline step needs at: (e.g. 8s)");
    if (yamlx_duration(at, &st->at_s, err, errlen) != 0) return -1;
    if (st->at_s > s->duration_s)
        return yamlx_error(err, errlen, at, "at %gs is after the traffic ends (%gs)", st->at_s,
                           s->duration_s);
    if ((inj == NULL) == (clr == NULL))
        return yamlx_error(err, errlen, n, "timeline step needs exactly one of inject: or clear:");
    if (yamlx_string(inj ? inj : clr, &kname, err, errlen) != 0) return -1;
    kind = fault_kind_from_name(kname);
    if (kind < 0)
        return yamlx_error(err, errlen, inj ? inj : clr,
                           "unknown fault '%s'; expected one of: http_error, rate_limit, "
                           "overloaded, revoke_key, slow_ttft, slow_tokens, stall, cut, "
                           "error_event, malformed, egress_block",
                           kname);
    st->clear = clr != NULL;
    fault_spec_defaults(&st->fault, (enum fault_kind)kind);
    if (prov == NULL) return yamlx_error(err, errlen, n, "timeline step needs provider: NAME");
    if (prov->type != YNODE_SCALAR || (st->provider = scenario_provider_index(s, prov->scalar)) < 0)
        return yamlx_error(err, errlen, prov, "'%s' names no provider of this scenario",
                           prov->type == YNODE_SCALAR ? prov->scalar : "?");
    if ((v = yamlx_get(n, "status")) != NULL) {
        long st_code;
        if (yamlx_long(v, &st_code, err, errlen) != 0) return -1;
        if (st_code < 400 || st_code > 599)
            return yamlx_error(err, errlen, v, "status must be an HTTP error status (400-599)");
        st->fault.status = (int)st_code;
    }
    if (read_num(n, "probability", 0, 1, &st->fault.probability, err, errlen) != 0 ||
        read_dur(n, "duration", SCN_MAX_DURATION_S, &st->fault.duration_s, err, errlen) != 0 ||
        read_num(n, "ms", 0, 3600000, &st->fault.ms, err, errlen) != 0 ||
        read_dur(n, "retry_after", 86400, &st->fault.retry_after_s, err, errlen) != 0)
        return -1;
    if ((v = yamlx_get(n, "after_events")) != NULL) {
        long a;
        if (yamlx_long(v, &a, err, errlen) != 0) return -1;
        if (a < 0 || a > 1000000) return yamlx_error(err, errlen, v, "after_events must be 0 or more");
        st->fault.after_events = (int)a;
    }
    if ((v = yamlx_get(n, "key")) != NULL) {
        const char *k;
        if (yamlx_string(v, &k, err, errlen) != 0) return -1;
        snprintf(st->fault.key, sizeof st->fault.key, "%s", k);
    }
    if ((v = yamlx_get(n, "mode")) != NULL) {
        const char *m;
        if (yamlx_string(v, &m, err, errlen) != 0) return -1;
        if (strlen(m) >= sizeof st->fault.mode)
            return yamlx_error(err, errlen, v, "mode '%s' is too long", m);
        snprintf(st->fault.mode, sizeof st->fault.mode, "%s", m);
    }
    if (st->fault.kind == FAULT_EGRESS_BLOCK && st->fault.mode[0] &&
        strcmp(st->fault.mode, "refuse") && strcmp(st->fault.mode, "blackhole") &&
        strcmp(st->fault.mode, "reset"))
        return yamlx_error(err, errlen, yamlx_get(n, "mode"),
                           "egress_block mode must be refuse, blackhole or reset");
    return 0;
}

static int load_timeline(struct scenario *s, const struct ynode *n, char *err, size_t errlen)
{
    size_t i;
    if (n == NULL) return 0;
    if (n->type != YNODE_SEQ) return yamlx_error(err, errlen, n, "timeline must be a list of steps");
    if (n->n > SCN_MAX_STEPS)
        return yamlx_error(err, errlen, n, "at most %d timeline steps", SCN_MAX_STEPS);
    s->steps = calloc(n->n ? n->n : 1, sizeof *s->steps);
    if (s->steps == NULL) return yamlx_error(err, errlen, n, "out of memory");
    for (i = 0; i < n->n; i++) {
        if (load_step(s, n->items[i], &s->steps[i], err, errlen) != 0) return -1;
        s->nsteps++;
    }
    return 0;
}

static int load_providers(struct scenario *s, const struct ynode *n, char *err, size_t errlen)
{
    size_t i, j;
    if (n == NULL) return 0;
    if (n->type != YNODE_SEQ) return yamlx_error(err, errlen, n, "providers must be a list");
    if (n->n > SCN_MAX_PROVIDERS)
        return yamlx_error(err, errlen, n, "at most %d providers", SCN_MAX_PROVIDERS);
    s->providers = calloc(n->n ? n->n : 1, sizeof *s->providers);
    if (s->providers == NULL) return yamlx_error(err, errlen, n, "out of memory");
    for (i = 0; i < n->n; i++) {
        fake_spec_defaults(&s->providers[i]);
        if (fake_spec_from_yaml(n->items[i], &s->providers[i], err, errlen) != 0) return -1;
        /* Each provider its own stream of latencies unless it names a seed. */
        if (yamlx_get(n->items[i], "seed") == NULL)
            s->providers[i].seed = s->seed * 1000003u + i + 1;
        for (j = 0; j < i; j++)
            if (strcmp(s->providers[j].name, s->providers[i].name) == 0)
                return yamlx_error(err, errlen, n->items[i], "provider name '%s' is used twice",
                                   s->providers[i].name);
        s->nproviders++;
    }
    return 0;
}

struct scenario *scenario_load(const char *path, char *err, size_t errlen)
{
    struct ynode *root = NULL;
    struct scenario *s = NULL, *ret = NULL;
    const struct ynode *v;

    root = yamlx_load_file(path, err, errlen);
    if (root == NULL) goto out;
    s = calloc(1, sizeof *s);
    if (s == NULL) goto out;
    s->file = strdup(path);
    s->seed = 1;
    s->stream = 1;
    s->timeout_s = 30;
    s->max_inflight = 10000;
    s->stop_sr_below = -1;
    s->stop_for_s = 5;
    slo_targets_unset(&s->slo);
    expectations_unset(&s->expect);
    if (root->type != YNODE_MAP) {
        yamlx_error(err, errlen, root, "a scenario is a mapping with name:, providers:, router:, "
                                       "traffic: and timeline:");
        goto out;
    }
    if (yamlx_check_keys(root, top_keys, "the scenario", err, errlen) != 0) goto out;
    v = yamlx_get(root, "name");
    if (v == NULL) {
        yamlx_error(err, errlen, root, "the scenario needs a name:");
        goto out;
    }
    if (dup_scalar(v, &s->name, err, errlen) != 0) goto out;
    if (strpbrk(s->name, "/\\ \t") || s->name[0] == '\0' || strlen(s->name) > 64) {
        yamlx_error(err, errlen, v, "name must be 1-64 characters without spaces or slashes "
                                    "(it names the output folder)");
        goto out;
    }
    if ((v = yamlx_get(root, "description")) && dup_scalar(v, &s->description, err, errlen) != 0)
        goto out;
    if ((v = yamlx_get(root, "seed")) != NULL) {
        long seed;
        if (yamlx_long(v, &seed, err, errlen) != 0) goto out;
        s->seed = (uint64_t)seed;
    }
    if (load_slo(yamlx_get(root, "slo"), &s->slo, err, errlen) != 0 ||
        load_providers(s, yamlx_get(root, "providers"), err, errlen) != 0 ||
        load_traffic(s, yamlx_get(root, "traffic"), err, errlen) != 0 ||
        load_router(s, yamlx_get(root, "router"), err, errlen) != 0 ||
        load_timeline(s, yamlx_get(root, "timeline"), err, errlen) != 0 ||
        load_expect(yamlx_get(root, "expect"), &s->expect, err, errlen) != 0)
        goto out;
    if ((v = yamlx_get(root, "stop_if")) != NULL) {
        if (yamlx_check_keys(v, stop_keys, "stop_if", err, errlen) != 0 ||
            read_num(v, "success_rate_below", 0, 100, &s->stop_sr_below, err, errlen) != 0 ||
            read_dur(v, "for_s", 3600, &s->stop_for_s, err, errlen) != 0)
            goto out;
        if (yamlx_get(v, "success_rate_below") == NULL) {
            yamlx_error(err, errlen, v, "stop_if needs success_rate_below: (percent)");
            goto out;
        }
    }
    if (s->router_config && s->nproviders == 0) {
        yamlx_error(err, errlen, root, "the built-in router needs at least one provider to call");
        goto out;
    }
    ret = s;
    s = NULL;
out:
    if (ret == NULL && err[0] == '\0') snprintf(err, errlen, "%s: out of memory", path);
    scenario_free(s);
    yamlx_free(root);
    return ret;
}

char *scenario_expand(const struct scenario *s, const char *tmpl, const char *const *urls)
{
    size_t cap = strlen(tmpl) + 1, len = 0;
    char *out = malloc(cap);
    const char *p = tmpl;

    if (out == NULL) return NULL;
    while (*p) {
        const char *val = NULL;
        char port[16];
        const char *end, *dot;
        size_t vl, nl;
        if (p[0] == '$' && p[1] == '{' && (end = strchr(p, '}')) != NULL &&
            (dot = memchr(p + 2, '.', (size_t)(end - p - 2))) != NULL) {
            char name[64];
            int i;
            nl = (size_t)(dot - p - 2);
            if (nl >= sizeof name) goto bad;
            memcpy(name, p + 2, nl);
            name[nl] = '\0';
            i = scenario_provider_index(s, name);
            if (i < 0) goto bad;
            if (strncmp(dot + 1, "url}", 4) == 0) val = urls ? urls[i] : "";
            else if (strncmp(dot + 1, "key}", 4) == 0) val = s->providers[i].key;
            else if (strncmp(dot + 1, "name}", 5) == 0) val = s->providers[i].name;
            else if (strncmp(dot + 1, "port}", 5) == 0) {
                const char *c = urls ? strrchr(urls[i], ':') : NULL;
                snprintf(port, sizeof port, "%s", c ? c + 1 : "");
                val = port;
            } else
                goto bad;
            vl = strlen(val);
            p = end + 1;
        } else {
            val = p;
            vl = 1;
            p++;
        }
        if (len + vl + 1 > cap) {
            char *n2;
            while (len + vl + 1 > cap) cap *= 2;
            n2 = realloc(out, cap);
            if (n2 == NULL) goto bad;
            out = n2;
        }
        memcpy(out + len, val, vl);
        len += vl;
    }
    out[len] = '\0';
    return out;
bad:
    free(out);
    return NULL;
}

static void put_num(cJSON *o, const char *k, double v)
{
    if (v >= 0) cJSON_AddNumberToObject(o, k, v);
}

char *scenario_meta_json(const struct scenario *s, const char *config_used,
                         const char *const *urls)
{
    cJSON *root = cJSON_CreateObject(), *o, *arr;
    char *out;
    size_t i;

    if (root == NULL) return NULL;
    o = cJSON_AddObjectToObject(root, "scenario");
    cJSON_AddStringToObject(o, "name", s->name);
    cJSON_AddStringToObject(o, "file", s->file);
    if (s->description) cJSON_AddStringToObject(o, "description", s->description);
    o = cJSON_AddObjectToObject(root, "slo");
    put_num(o, "success_rate", s->slo.success_rate);
    put_num(o, "p95_latency_s", s->slo.p95_latency_s);
    put_num(o, "avg_cost_usd", s->slo.avg_cost_usd);
    put_num(o, "window_days", s->slo.window_days);
    put_num(o, "monthly_requests", s->slo.monthly_requests);
    o = cJSON_AddObjectToObject(root, "expect");
    put_num(o, "failover_within_s", s->expect.failover_within_s);
    put_num(o, "success_rate_min", s->expect.success_rate_min);
    put_num(o, "p95_latency_s", s->expect.p95_latency_s);
    put_num(o, "back_on_primary_within_s", s->expect.back_on_primary_within_s);
    put_num(o, "recover_within_s", s->expect.recover_within_s);
    put_num(o, "avg_cost_max_usd", s->expect.avg_cost_max_usd);
    cJSON_AddNumberToObject(root, "seed", (double)s->seed);
    if (config_used) cJSON_AddStringToObject(root, "config", config_used);
    if (s->target) cJSON_AddStringToObject(root, "target", s->target);
    arr = cJSON_AddArrayToObject(root, "providers");
    for (i = 0; i < s->nproviders; i++) {
        cJSON *p = cJSON_CreateObject();
        cJSON_AddStringToObject(p, "name", s->providers[i].name);
        cJSON_AddStringToObject(p, "dialect",
                                s->providers[i].dialect == FAKE_ANTHROPIC ? "anthropic" : "openai");
        if (urls) cJSON_AddStringToObject(p, "url", urls[i]);
        cJSON_AddItemToArray(arr, p);
    }
    o = cJSON_AddObjectToObject(root, "traffic");
    cJSON_AddStringToObject(o, "model", s->model);
    cJSON_AddNumberToObject(o, "rate", s->rate);
    if (s->ramp_to > 0) cJSON_AddNumberToObject(o, "ramp_to", s->ramp_to);
    if (s->nsteps_load) cJSON_AddNumberToObject(o, "steps", (double)s->nsteps_load);
    if (s->workers) cJSON_AddNumberToObject(o, "workers", s->workers);
    cJSON_AddStringToObject(o, "arrival", s->arrival == ARRIVAL_POISSON ? "poisson" : "constant");
    cJSON_AddNumberToObject(o, "duration_s", s->duration_s);
    cJSON_AddBoolToObject(o, "stream", s->stream);
    arr = cJSON_AddArrayToObject(root, "timeline");
    for (i = 0; i < s->nsteps; i++) {
        cJSON *p = cJSON_CreateObject();
        cJSON_AddNumberToObject(p, "at_s", s->steps[i].at_s);
        cJSON_AddStringToObject(p, s->steps[i].clear ? "clear" : "inject",
                                fault_kind_name(s->steps[i].fault.kind));
        cJSON_AddStringToObject(p, "provider", s->providers[s->steps[i].provider].name);
        cJSON_AddItemToArray(arr, p);
    }
    out = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return out;
}
