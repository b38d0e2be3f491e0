/* budget.h -- budget guardrails: the `budgets:` config, the degrade ladder, spend-cap levels; pure.
 *
 * Per feature: max input tokens, max output tokens and max cost per request,
 * estimated before the call from the prompt and max_tokens. A request over a
 * limit walks the feature's ladder in the order the config gives: trim the
 * context (oldest non-system messages first), cap max_tokens, switch to a
 * cheaper alias, answer from the cache, and only then reject. Per tenant and
 * per user monthly caps give levels (60, 85, 95, 100 %); above 95 % the
 * ladder applies to every request (safeguard mode). No I/O, no clock: the
 * caller passes prices, the cache probe and spend. Semantics: docs/budgets.md. */
#ifndef SLODRILL_ROUTER_BUDGET_H
#define SLODRILL_ROUTER_BUDGET_H

#include <stddef.h>
#include <stdint.h>
#include "common/compiler.h"
#include "router/prices.h"

struct cJSON;
struct ynode;

enum budget_rung { BUDGET_TRIM = 0, BUDGET_CAP, BUDGET_CHEAPER, BUDGET_CACHE, BUDGET_REJECT };
#define BUDGET_MAX_RUNGS 5

struct budget_feature {
    char *name;                 /* "default" applies to features not listed */
    long max_input_tokens;      /* 0: no limit */
    long max_output_tokens;     /* 0: no limit */
    double max_cost_usd;        /* 0: no limit */
    char *cheaper_alias;        /* NULL: the cheaper_alias rung does nothing */
    enum budget_rung ladder[BUDGET_MAX_RUNGS];
    size_t nladder;
};

/* A monthly spend cap and a rate cap for one tenant or user ("default" for
 * those not listed). */
struct budget_cap {
    char *id;
    double monthly_usd;  /* 0: no cap */
    double rate_per_s;   /* 0: no rate cap (tenants only) */
    double burst;        /* bucket size; default max(1, rate_per_s) */
};

struct budget_config {
    char *ledger;         /* SQLite file of monthly spend; default "slodrill-ledger.db" */
    char *webhook;        /* POSTed a JSON event at each threshold; NULL none */
    char *redis_url;      /* backend: redis: spend, marks and rate buckets shared through
                             this server (router/shared.h); NULL: the SQLite ledger */
    struct budget_feature *features;
    size_t nfeatures;
    struct budget_cap *tenants, *users;
    size_t ntenants, nusers;
    int line, col;
};

/* Parses a `budgets:` map. NULL with "file:line:col: ..." in err. */
struct budget_config *budget_config_parse(const struct ynode *n, char *err, size_t errlen) WUR;
void budget_config_free(struct budget_config *cfg);

/* The feature's limits (its own, else "default", else NULL). Borrowed. */
const struct budget_feature *budget_feature_find(const struct budget_config *cfg,
                                                 const char *feature);
/* The cap of a tenant / user (its own, else "default", else NULL). Borrowed. */
const struct budget_cap *budget_tenant_cap(const struct budget_config *cfg, const char *tenant);
const struct budget_cap *budget_user_cap(const struct budget_config *cfg, const char *user);

const char *budget_rung_name(enum budget_rung r);

/* Rough tokens of a text: one per 4 bytes, at least 1 for non-empty text
 * (the ladder needs an estimate before the call, not a tokenizer). */
long budget_text_tokens(const char *s);
/* Estimated prompt tokens of a messages array: each message's text plus 4,
 * plus 3 for the reply's priming. */
long budget_prompt_tokens(const struct cJSON *messages);

/* Highest spend level reached: 0, 60, 85, 95 or 100 (% of cap). 0 when no cap. */
int budget_level(double spent_usd, double cap_usd);

/* What the caller supplies to the ladder. */
struct budget_env {
    /* Worst-case rates of the deployments an alias would use now. 0 when unknown. */
    int (*rates)(const char *alias, struct prices_rates *out, void *arg);
    /* 1 when the cache holds a live answer for the request as the client sent it. */
    int (*cached)(void *arg);
    void *arg;
};

enum budget_action { BUDGET_PROCEED = 0, BUDGET_SERVE_CACHE, BUDGET_DENY };

struct budget_decision {
    enum budget_action action;
    const char *alias;     /* the alias to call (borrowed: the request's or cheaper_alias) */
    int trimmed;           /* messages removed */
    long capped_to;        /* max_tokens set (0: unchanged) */
    int switched;          /* 1: moved to the cheaper alias */
    long est_in, est_out;  /* estimates after the ladder */
    double est_cost;       /* worst-case USD after the ladder (< 0 unknown) */
    char steps[160];       /* the rungs taken, "trim_context:2,cap_max_tokens:256" ("" none) */
    char why[320];         /* for a denial: which limit, with the figures */
};

/* Walks f's ladder for body (an OpenAI chat request; messages and
 * max_tokens are changed in place) asked for alias. safeguard: every rung
 * applies even within limits (spend above 95 % of a cap). f NULL: proceed. */
void budget_decide(const struct budget_feature *f, struct cJSON *body, const char *alias,
                   int safeguard, const struct budget_env *env, struct budget_decision *d);

/* After the call: 1 when the answer's real cost passed the feature's max. */
int budget_over_after(const struct budget_feature *f, double cost_usd);

#endif
