/* budget.c -- the `budgets:` config, the degrade ladder and spend levels; pure (docs/budgets.md). */
#include "router/budget.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/yamlx.h"
#include "router/kv.h"

#define BUDGET_MAX_ENTRIES 4096
#define BUDGET_DEFAULT_OUT 1024 /* output assumed when the client sets no max_tokens */
#define BUDGET_MIN_OUT 16       /* cap_max_tokens never goes below this */

static const char *const budget_rung_names[] = {"trim_context", "cap_max_tokens",
                                                "cheaper_alias", "cache", "reject"};

const char *budget_rung_name(enum budget_rung r)
{
    return (unsigned)r < BUDGET_MAX_RUNGS ? budget_rung_names[r] : "?";
}

static char *budget_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

/* ---- config ---- */

static void budget_caps_free(struct budget_cap *c, size_t n)
{
    size_t i;
    for (i = 0; c && i < n; i++)
        free(c[i].id);
    free(c);
}

void budget_config_free(struct budget_config *cfg)
{
    size_t i;
    if (!cfg)
        return;
    free(cfg->ledger);
    free(cfg->webhook);
    free(cfg->redis_url);
    for (i = 0; i < cfg->nfeatures; i++) {
        free(cfg->features[i].name);
        free(cfg->features[i].cheaper_alias);
    }
    free(cfg->features);
    budget_caps_free(cfg->tenants, cfg->ntenants);
    budget_caps_free(cfg->users, cfg->nusers);
    free(cfg);
}

static int budget_dup(const struct ynode *n, char **out, char *err, size_t errlen)
{
    const char *s;
    if (yamlx_string(n, &s, err, errlen) != 0)
        return -1;
    free(*out);
    if (!(*out = budget_strdup(s)))
        return yamlx_error(err, errlen, n, "out of memory");
    return 0;
}

static int budget_nonneg(const struct ynode *n, const char *what, double *out, char *err,
                         size_t errlen)
{
    if (yamlx_double(n, out, err, errlen) != 0)
        return -1;
    if (*out < 0)
        return yamlx_error(err, errlen, n, "%s must be 0 or more", what);
    return 0;
}

static int budget_feature_parse(const struct ynode *key, const struct ynode *v,
                                struct budget_feature *f, char *err, size_t errlen)
{
    static const char *const known[] = {"max_input_tokens", "max_output_tokens", "max_cost_usd",
                                        "cheaper_alias", "ladder", NULL};
    const struct ynode *x;
    size_t i, j;

    if (!(f->name = budget_strdup(key->scalar ? key->scalar : "")))
        return yamlx_error(err, errlen, key, "out of memory");
    for (i = 0; i < BUDGET_MAX_RUNGS; i++)
        f->ladder[i] = (enum budget_rung)i;
    f->nladder = BUDGET_MAX_RUNGS;
    if (v->type != YNODE_MAP)
        return yamlx_error(err, errlen, v,
                           "a budget feature is a map, e.g. chat: {max_cost_usd: 0.01, "
                           "max_output_tokens: 512, ladder: [trim_context, cap_max_tokens, "
                           "reject]}");
    if (yamlx_check_keys(v, known, "a budget feature", err, errlen) != 0)
        return -1;
    if ((x = yamlx_get(v, "max_input_tokens")) &&
        (yamlx_long(x, &f->max_input_tokens, err, errlen) != 0 || f->max_input_tokens < 0))
        return f->max_input_tokens < 0 ? yamlx_error(err, errlen, x, "must be 0 or more") : -1;
    if ((x = yamlx_get(v, "max_output_tokens")) &&
        (yamlx_long(x, &f->max_output_tokens, err, errlen) != 0 || f->max_output_tokens < 0))
        return f->max_output_tokens < 0 ? yamlx_error(err, errlen, x, "must be 0 or more") : -1;
    if ((x = yamlx_get(v, "max_cost_usd")) &&
        budget_nonneg(x, "max_cost_usd", &f->max_cost_usd, err, errlen) != 0)
        return -1;
    if ((x = yamlx_get(v, "cheaper_alias")) && budget_dup(x, &f->cheaper_alias, err, errlen) != 0)
        return -1;
    if ((x = yamlx_get(v, "ladder"))) {
        if (x->type != YNODE_SEQ || x->n == 0 || x->n > BUDGET_MAX_RUNGS)
            return yamlx_error(err, errlen, x,
                               "ladder is a list of rungs in the order to try them: "
                               "trim_context, cap_max_tokens, cheaper_alias, cache, reject");
        for (i = 0; i < x->n; i++) {
            const char *s;
            if (yamlx_string(x->items[i], &s, err, errlen) != 0)
                return -1;
            for (j = 0; j < BUDGET_MAX_RUNGS; j++)
                if (!strcmp(s, budget_rung_names[j]))
                    break;
            if (j == BUDGET_MAX_RUNGS)
                return yamlx_error(err, errlen, x->items[i],
                                   "unknown rung '%s'; expected one of: trim_context, "
                                   "cap_max_tokens, cheaper_alias, cache, reject",
                                   s);
            f->ladder[i] = (enum budget_rung)j;
        }
        f->nladder = x->n;
        for (i = 0; i < f->nladder; i++)
            for (j = 0; j < i; j++)
                if (f->ladder[i] == f->ladder[j])
                    return yamlx_error(err, errlen, x->items[i], "rung '%s' is listed twice",
                                       budget_rung_names[f->ladder[i]]);
    }
    return 0;
}

static int budget_cap_parse(const struct ynode *key, const struct ynode *v, int tenant,
                            struct budget_cap *c, char *err, size_t errlen)
{
    static const char *const known_t[] = {"monthly_usd", "rate", "burst", NULL};
    static const char *const known_u[] = {"monthly_usd", NULL};
    const struct ynode *x;

    if (!(c->id = budget_strdup(key->scalar ? key->scalar : "")))
        return yamlx_error(err, errlen, key, "out of memory");
    if (v->type != YNODE_MAP)
        return yamlx_error(err, errlen, v,
                           tenant ? "a tenant is a map, e.g. acme: {monthly_usd: 100, rate: 5/s, "
                                    "burst: 10}"
                                  : "a user is a map, e.g. default: {monthly_usd: 5}");
    if (yamlx_check_keys(v, tenant ? known_t : known_u, tenant ? "a tenant" : "a user", err,
                         errlen) != 0)
        return -1;
    if ((x = yamlx_get(v, "monthly_usd")) &&
        budget_nonneg(x, "monthly_usd", &c->monthly_usd, err, errlen) != 0)
        return -1;
    if ((x = yamlx_get(v, "rate"))) {
        if (yamlx_rate(x, &c->rate_per_s, err, errlen) != 0)
            return -1;
        if (c->rate_per_s <= 0)
            return yamlx_error(err, errlen, x, "rate must be more than 0, e.g. 5/s");
    }
    if ((x = yamlx_get(v, "burst"))) {
        if (budget_nonneg(x, "burst", &c->burst, err, errlen) != 0)
            return -1;
        if (c->burst < 1)
            return yamlx_error(err, errlen, x, "burst must be at least 1 request");
    }
    if (c->rate_per_s > 0 && c->burst < 1)
        c->burst = c->rate_per_s > 1 ? c->rate_per_s : 1;
    return 0;
}

static int budget_caps_parse(const struct ynode *n, const char *what, int tenant,
                             struct budget_cap **out, size_t *nout, char *err, size_t errlen)
{
    size_t i;
    if (n->type != YNODE_MAP || n->n > BUDGET_MAX_ENTRIES)
        return yamlx_error(err, errlen, n, "%s is a map of id to caps (at most %d)", what,
                           BUDGET_MAX_ENTRIES);
    if (!(*out = calloc(n->n ? n->n : 1, sizeof **out)))
        return yamlx_error(err, errlen, n, "out of memory");
    for (i = 0; i < n->n; i++) {
        *nout = i + 1;
        if (budget_cap_parse(n->keys[i], n->items[i], tenant, &(*out)[i], err, errlen) != 0)
            return -1;
    }
    return 0;
}

struct budget_config *budget_config_parse(const struct ynode *n, char *err, size_t errlen)
{
    static const char *const known[] = {"ledger", "webhook", "features", "tenants", "users",
                                        "backend", "url", NULL};
    struct budget_config *cfg = NULL, *ret = NULL;
    const struct ynode *x;
    size_t i;

    if (n->type != YNODE_MAP) {
        yamlx_error(err, errlen, n,
                    "budgets: is a map with features:, tenants:, users: and ledger:");
        goto out;
    }
    if (yamlx_check_keys(n, known, "budgets", err, errlen) != 0)
        goto out;
    if (!(cfg = calloc(1, sizeof *cfg))) {
        yamlx_error(err, errlen, n, "out of memory");
        goto out;
    }
    cfg->line = n->line;
    cfg->col = n->col;
    if ((x = yamlx_get(n, "ledger")) && budget_dup(x, &cfg->ledger, err, errlen) != 0)
        goto out;
    if (!cfg->ledger && !(cfg->ledger = budget_strdup("slodrill-ledger.db"))) {
        yamlx_error(err, errlen, n, "out of memory");
        goto out;
    }
    if ((x = yamlx_get(n, "backend"))) {
        const char *b = x->type == YNODE_SCALAR && x->scalar ? x->scalar : "";
        if (strcmp(b, "sqlite") && strcmp(b, "redis")) {
            yamlx_error(err, errlen, x, "budgets backend '%s' is unknown; use sqlite or redis", b);
            goto out;
        }
        if (!strcmp(b, "redis")) {
            const struct ynode *u = yamlx_get(n, "url");
            char uerr[320];
            struct kv_url parsed;
            if (u && budget_dup(u, &cfg->redis_url, err, errlen) != 0)
                goto out;
            if (!u && !(cfg->redis_url = budget_strdup("redis://127.0.0.1:6379/0"))) {
                yamlx_error(err, errlen, n, "out of memory");
                goto out;
            }
            if (kv_url_parse(cfg->redis_url, &parsed, uerr, sizeof uerr) != 0) {
                yamlx_error(err, errlen, u, "%s", uerr);
                goto out;
            }
        }
    }
    if (!cfg->redis_url && (x = yamlx_get(n, "url"))) {
        yamlx_error(err, errlen, x, "url: is the Redis server of backend: redis; add backend: redis");
        goto out;
    }
    if ((x = yamlx_get(n, "webhook"))) {
        if (budget_dup(x, &cfg->webhook, err, errlen) != 0)
            goto out;
        if (strncmp(cfg->webhook, "http://", 7) && strncmp(cfg->webhook, "https://", 8)) {
            yamlx_error(err, errlen, x, "webhook must be an http:// or https:// URL");
            goto out;
        }
    }
    if ((x = yamlx_get(n, "features"))) {
        if (x->type != YNODE_MAP || x->n > BUDGET_MAX_ENTRIES) {
            yamlx_error(err, errlen, x,
                        "features is a map of feature name to limits, e.g. features: {chat: "
                        "{max_cost_usd: 0.01}}");
            goto out;
        }
        if (!(cfg->features = calloc(x->n ? x->n : 1, sizeof *cfg->features))) {
            yamlx_error(err, errlen, x, "out of memory");
            goto out;
        }
        for (i = 0; i < x->n; i++) {
            cfg->nfeatures = i + 1;
            if (budget_feature_parse(x->keys[i], x->items[i], &cfg->features[i], err, errlen) !=
                0)
                goto out;
        }
    }
    if ((x = yamlx_get(n, "tenants")) &&
        budget_caps_parse(x, "tenants", 1, &cfg->tenants, &cfg->ntenants, err, errlen) != 0)
        goto out;
    if ((x = yamlx_get(n, "users")) &&
        budget_caps_parse(x, "users", 0, &cfg->users, &cfg->nusers, err, errlen) != 0)
        goto out;
    ret = cfg;
    cfg = NULL;
out:
    budget_config_free(cfg);
    return ret;
}

const struct budget_feature *budget_feature_find(const struct budget_config *cfg,
                                                 const char *feature)
{
    const struct budget_feature *def = NULL;
    size_t i;
    if (!cfg)
        return NULL;
    for (i = 0; i < cfg->nfeatures; i++) {
        if (feature && !strcmp(cfg->features[i].name, feature))
            return &cfg->features[i];
        if (!strcmp(cfg->features[i].name, "default"))
            def = &cfg->features[i];
    }
    return def;
}

static const struct budget_cap *budget_cap_find(const struct budget_cap *v, size_t n,
                                                const char *id)
{
    const struct budget_cap *def = NULL;
    size_t i;
    for (i = 0; i < n; i++) {
        if (id && id[0] && !strcmp(v[i].id, id))
            return &v[i];
        if (!strcmp(v[i].id, "default"))
            def = &v[i];
    }
    return def;
}

const struct budget_cap *budget_tenant_cap(const struct budget_config *cfg, const char *tenant)
{
    return cfg ? budget_cap_find(cfg->tenants, cfg->ntenants, tenant) : NULL;
}

const struct budget_cap *budget_user_cap(const struct budget_config *cfg, const char *user)
{
    return cfg ? budget_cap_find(cfg->users, cfg->nusers, user) : NULL;
}

/* ---- estimates ---- */

long budget_text_tokens(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    return n ? (long)((n + 3) / 4) : 0;
}

static long budget_message_tokens(const cJSON *m)
{
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "content"), *part;
    long t = 4;
    if (cJSON_IsString(c))
        return t + budget_text_tokens(c->valuestring);
    cJSON_ArrayForEach(part, c)
    {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (cJSON_IsString(x))
            t += budget_text_tokens(x->valuestring);
        else
            t += 85; /* an image part at low detail, the smallest it costs */
    }
    return t;
}

long budget_prompt_tokens(const cJSON *messages)
{
    const cJSON *m;
    long t = 3;
    cJSON_ArrayForEach(m, messages)
    t += budget_message_tokens(m);
    return t;
}

int budget_level(double spent, double cap)
{
    double pct;
    if (cap <= 0)
        return 0;
    pct = spent / cap * 100.0;
    return pct >= 100 ? 100 : pct >= 95 ? 95 : pct >= 85 ? 85 : pct >= 60 ? 60 : 0;
}

/* ---- the ladder ---- */

struct budget_state {
    const struct budget_feature *f;
    cJSON *body;
    struct prices_rates rates;
    int have_rates;
    long in, out;
    int out_set; /* the client (or the ladder) set max_tokens */
};

static double budget_cost_of(const struct budget_state *s)
{
    return s->have_rates ? prices_estimate(&s->rates, s->in, s->out) : -1;
}

/* Which limit is passed: 'i'nput, 'o'utput, 'c'ost, or 0. */
static int budget_violation(const struct budget_state *s)
{
    double c;
    if (s->f->max_input_tokens > 0 && s->in > s->f->max_input_tokens)
        return 'i';
    if (s->f->max_output_tokens > 0 && s->out > s->f->max_output_tokens)
        return 'o';
    c = budget_cost_of(s);
    if (s->f->max_cost_usd > 0 && c > s->f->max_cost_usd)
        return 'c';
    return 0;
}

static long budget_requested_out(const cJSON *body, int *set)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(body, "max_completion_tokens");
    if (!cJSON_IsNumber(x))
        x = cJSON_GetObjectItemCaseSensitive(body, "max_tokens");
    *set = cJSON_IsNumber(x) && x->valuedouble > 0;
    return *set ? (long)x->valuedouble : BUDGET_DEFAULT_OUT;
}

static void budget_set_out(cJSON *body, long n)
{
    int had_mct = cJSON_GetObjectItemCaseSensitive(body, "max_completion_tokens") != NULL;
    cJSON_DeleteItemFromObjectCaseSensitive(body, "max_tokens");
    cJSON_DeleteItemFromObjectCaseSensitive(body, "max_completion_tokens");
    cJSON_AddNumberToObject(body, had_mct ? "max_completion_tokens" : "max_tokens", (double)n);
}

static void budget_step(struct budget_decision *d, const char *name, long n)
{
    size_t off = strlen(d->steps);
    if (off < sizeof d->steps)
        snprintf(d->steps + off, sizeof d->steps - off, "%s%s:%ld", off ? "," : "", name, n);
}

/* Oldest non-system message that is not the last one: its index, or -1. */
static int budget_oldest_trimmable(const cJSON *messages)
{
    int n = cJSON_GetArraySize(messages), i;
    for (i = 0; i < n - 1; i++) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(messages, i), "role");
        if (!cJSON_IsString(role) ||
            (strcmp(role->valuestring, "system") && strcmp(role->valuestring, "developer")))
            return i;
    }
    return -1;
}

static void budget_trim(struct budget_state *s, struct budget_decision *d)
{
    cJSON *messages = cJSON_GetObjectItemCaseSensitive(s->body, "messages");
    for (;;) {
        int v = budget_violation(s), i;
        if (v != 'i' && v != 'c')
            break;
        if ((i = budget_oldest_trimmable(messages)) < 0)
            break;
        cJSON_DeleteItemFromArray(messages, i);
        d->trimmed++;
        s->in = budget_prompt_tokens(messages);
    }
    if (d->trimmed)
        budget_step(d, "trim_context", d->trimmed);
}

static void budget_cap(struct budget_state *s, struct budget_decision *d)
{
    long fit = s->out;
    if (s->f->max_output_tokens > 0 && fit > s->f->max_output_tokens)
        fit = s->f->max_output_tokens;
    if (s->f->max_cost_usd > 0 && s->have_rates && s->rates.out > 0) {
        double room = (s->f->max_cost_usd - (double)s->in * s->rates.in) / s->rates.out;
        if (room < (double)fit)
            fit = room < BUDGET_MIN_OUT ? BUDGET_MIN_OUT : (long)room;
    }
    if (fit < s->out || !s->out_set) {
        s->out = fit;
        s->out_set = 1;
        budget_set_out(s->body, fit);
        d->capped_to = fit;
        budget_step(d, "cap_max_tokens", fit);
    }
}

void budget_decide(const struct budget_feature *f, cJSON *body, const char *alias, int safeguard,
                   const struct budget_env *env, struct budget_decision *d)
{
    struct budget_state s;
    size_t i;
    int v;

    memset(d, 0, sizeof *d);
    d->alias = alias;
    d->est_cost = -1;
    if (!f)
        return;
    memset(&s, 0, sizeof s);
    s.f = f;
    s.body = body;
    s.have_rates = env && env->rates && env->rates(alias, &s.rates, env->arg);
    s.in = budget_prompt_tokens(cJSON_GetObjectItemCaseSensitive(body, "messages"));
    s.out = budget_requested_out(body, &s.out_set);
    if (s.out_set == 0 && f->max_output_tokens > 0 && f->max_output_tokens < s.out)
        s.out = f->max_output_tokens; /* the estimate assumes the feature's own ceiling */
    for (i = 0; i < f->nladder && (safeguard || budget_violation(&s)); i++) {
        switch (f->ladder[i]) {
        case BUDGET_TRIM:
            budget_trim(&s, d);
            break;
        case BUDGET_CAP:
            budget_cap(&s, d);
            break;
        case BUDGET_CHEAPER:
            if (f->cheaper_alias && strcmp(f->cheaper_alias, d->alias)) {
                struct prices_rates r;
                d->alias = f->cheaper_alias;
                d->switched = 1;
                s.have_rates = env && env->rates && env->rates(d->alias, &r, env->arg);
                if (s.have_rates)
                    s.rates = r;
                budget_step(d, "cheaper_alias", 1);
            }
            break;
        case BUDGET_CACHE:
            if (env && env->cached && env->cached(env->arg)) {
                budget_step(d, "cache", 1);
                d->action = BUDGET_SERVE_CACHE;
                goto done;
            }
            break;
        case BUDGET_REJECT:
            i = f->nladder; /* reject below if a limit is still passed */
            goto judge;
        }
    }
judge:
    if ((v = budget_violation(&s)) != 0) {
        d->action = BUDGET_DENY;
        if (v == 'i')
            snprintf(d->why, sizeof d->why,
                     "the prompt is about %ld tokens; feature '%s' allows %ld (max_input_tokens)",
                     s.in, f->name, f->max_input_tokens);
        else if (v == 'o')
            snprintf(d->why, sizeof d->why,
                     "max_tokens %ld is over feature '%s''s max_output_tokens %ld", s.out,
                     f->name, f->max_output_tokens);
        else
            snprintf(d->why, sizeof d->why,
                     "this request could cost $%.6f (about %ld tokens in, up to %ld out); "
                     "feature '%s' allows $%.6f per request (max_cost_usd)",
                     budget_cost_of(&s), s.in, s.out, f->name, f->max_cost_usd);
    }
done:
    d->est_in = s.in;
    d->est_out = s.out;
    d->est_cost = budget_cost_of(&s);
}

int budget_over_after(const struct budget_feature *f, double cost_usd)
{
    return f && f->max_cost_usd > 0 && cost_usd > f->max_cost_usd;
}
