/* lint.c -- finds what a LiteLLM config says that LiteLLM (or slodrill) does not do.
 *
 * DESIGN: structure only. The YAML tree (common/yamlx.h) keeps every key's
 * position; each check walks it and adds findings to a list, sorted by
 * position at the end. The knowledge is in the tables below, each with the
 * LiteLLM source it comes from (litellm/router.py's Router.__init__, the
 * proxy's handling of litellm_settings as module attributes); the user-facing
 * account is docs/routing.md, "Lint". Nothing here resolves os.environ/ or
 * touches the network. */
#include "router/lint.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/yamlx.h"

#define LINT_MAX_FINDINGS 512
#define LINT_MSG 640

struct lint_item {
    int line, col;
    const char *code;
    char msg[LINT_MSG];
};

struct lint {
    struct lint_item *items;
    size_t n;
};

PRINTF_LIKE(4, 5)
static void lint_add(struct lint *l, const struct ynode *at, const char *code, const char *fmt,
                     ...)
{
    struct lint_item *it;
    va_list ap;

    if (l->n >= LINT_MAX_FINDINGS)
        return;
    it = &l->items[l->n++];
    it->line = at->line;
    it->col = at->col;
    it->code = code;
    va_start(ap, fmt);
    vsnprintf(it->msg, sizeof it->msg, fmt, ap);
    va_end(ap);
}

static int lint_in(const char *key, const char *const *list)
{
    for (; *list; list++)
        if (!strcmp(key, *list))
            return 1;
    return 0;
}

/* Levenshtein distance, capped (keys are short). */
static size_t lint_dist(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), i, j;
    size_t row[64], prev, tmp;

    if (la >= 63 || lb >= 63)
        return 99;
    for (j = 0; j <= lb; j++)
        row[j] = j;
    for (i = 1; i <= la; i++) {
        prev = row[0];
        row[0] = i;
        for (j = 1; j <= lb; j++) {
            size_t best = prev + (a[i - 1] != b[j - 1]);
            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            tmp = row[j];
            row[j] = best;
            prev = tmp;
        }
    }
    return row[lb];
}

/* The known key closest to key (distance <= 2, or <= 3 for long keys), or NULL. */
static const char *lint_near(const char *key, const char *const *known)
{
    const char *best = NULL;
    size_t bd = 99, limit = strlen(key) >= 12 ? 3 : 2;
    for (; *known; known++) {
        size_t d = lint_dist(key, *known);
        if (d < bd) {
            bd = d;
            best = *known;
        }
    }
    return bd <= limit ? best : NULL;
}

/* ---- what LiteLLM knows ---- */

/* Router.__init__ arguments the proxy passes from router_settings (it drops
 * any other key without a word). */
static const char *const lint_router_keys[] = {
    "routing_strategy", "routing_strategy_args", "num_retries", "max_fallbacks", "timeout",
    "stream_timeout", "default_litellm_params", "default_max_parallel_requests", "set_verbose",
    "debug_level", "default_fallbacks", "fallbacks", "context_window_fallbacks",
    "content_policy_fallbacks", "model_group_alias", "enable_pre_call_checks",
    "enable_tag_filtering", "retry_after", "retry_policy", "model_group_retry_policy",
    "allowed_fails", "allowed_fails_policy", "cooldown_time", "disable_cooldowns",
    "cache_responses", "cache_kwargs", "caching_groups", "client_ttl", "polling_interval",
    "redis_url", "redis_host", "redis_port", "redis_password", "provider_budget_config",
    "alerting_config", "router_general_settings", "optional_pre_call_checks",
    "ignore_invalid_deployments", "assistants_config", "search_tools", "guardrail_list",
    "model_group_affinity_config", NULL};

/* Keys only slodrill's router reads (LiteLLM drops them). */
static const char *const lint_slodrill_keys[] = {"idle_timeout", "stream_idle_timeout",
                                                 "slodrill_request_log", "slodrill_shared_cooldowns", NULL};

/* litellm_settings keys in common use. The proxy sets each as an attribute
 * of the litellm module, whatever its name: a misspelt one is set and never
 * read. */
static const char *const lint_litellm_keys[] = {
    "drop_params", "set_verbose", "json_logs", "num_retries", "request_timeout", "allowed_fails",
    "callbacks", "success_callback", "failure_callback", "service_callback", "cache",
    "cache_params", "context_window_fallbacks", "content_policy_fallbacks", "fallbacks",
    "default_fallbacks", "turn_off_message_logging", "redact_user_api_key_info",
    "modify_params", "enable_preview_features", "master_key", "max_budget", "budget_duration",
    "default_team_settings", "default_internal_user_params", "upperbound_key_generate_params",
    "force_ipv4", "ssl_verify", "enable_json_schema_validation", "return_response_headers",
    "telemetry", "disable_end_user_cost_tracking", "key_generation_settings", "constants",
    "callback_settings", "langfuse_default_tags", "extra_spend_tag_headers",
    "max_internal_user_budget", "internal_user_budget_duration", "default_key_generate_params",
    "add_function_to_prompt", "cache_responses", "max_fallbacks", "disable_cooldowns",
    "cooldown_time", "routing_strategy", "retry_after", "enable_pre_call_checks", "timeout",
    "stream_timeout", "use_client_credentials_pass_through_routes", NULL};

/* Router settings LiteLLM's Router takes only as its own arguments: in
 * litellm_settings they become module attributes the Router never reads.
 * (router.py: self.cooldown_time = cooldown_time or
 * DEFAULT_COOLDOWN_TIME_SECONDS, and likewise for the others.) */
static const char *const lint_router_only[] = {"cooldown_time", "routing_strategy",
                                                "retry_after", "disable_cooldowns",
                                                "enable_pre_call_checks",
                                                "routing_strategy_args", NULL};
/* ... of which slodrill's router does apply these from litellm_settings
 * (router/config.c, cfg_setting). */
static const char *const lint_slodrill_applies[] = {"cooldown_time", "retry_after",
                                                     "disable_cooldowns", NULL};

/* Router settings the Router falls back to from the litellm module when its
 * argument is unset (num_retries -> litellm.num_retries, allowed_fails ->
 * litellm.allowed_fails). */
static const char *const lint_router_global[] = {"num_retries", "allowed_fails", NULL};

static const char *const lint_top_keys[] = {
    "model_list", "router_settings", "litellm_settings", "general_settings",
    "environment_variables", "include", "credential_list", "guardrails", "callback_settings",
    "mcp_servers", "files_settings", "finetune_settings", "assistant_settings", "search_tools",
    "vector_store_registry", "prompts", NULL};

/* Top-level sections only slodrill's router reads. */
static const char *const lint_slodrill_sections[] = {"budgets", "cache", NULL};

static const char *const lint_entry_keys[] = {"model_name", "litellm_params", "model_info", "rpm",
                                              "tpm", NULL};

static const char *const lint_params_keys[] = {
    "model", "api_base", "base_url", "api_key", "api_version", "order", "weight", "rpm", "tpm",
    "timeout", "stream_timeout", "max_retries", "input_cost_per_token", "output_cost_per_token",
    "input_cost_per_second", "output_cost_per_second", "organization", "custom_llm_provider",
    "region_name", "temperature", "max_tokens", "top_p", "seed", "stop", "drop_params",
    "mock_response", "use_in_pass_through", "merge_reasoning_content_in_choices",
    "extra_headers", "headers", "vertex_project", "vertex_location", "vertex_credentials",
    "aws_access_key_id", "aws_secret_access_key", "aws_region_name", "aws_session_name",
    "aws_role_name", "api_type", "tags", "litellm_credential_name", "cooldown_time",
    "max_parallel_requests", "max_budget", "budget_duration", "tenant_id", "client_id",
    "client_secret", "azure_ad_token", "reasoning_effort", "configurable_clientside_auth_params",
    "litellm_trace_id", "additional_drop_params", "thinking", "cache_control_injection_points",
    NULL};

/* ---- the checks ---- */

static const char lint_stream_timeout[] =
    "stream_timeout is time to first token in slodrill (enforced even after the provider sent "
    "its headers) but the HTTP client timeout of streaming calls in LiteLLM (with the OpenAI "
    "SDK: connecting and each read, so headers sent at once and a late first token are never "
    "cut; other providers differ): the two routers fail over at different moments";

static void lint_unknown(struct lint *l, const struct ynode *key, const char *where,
                         const char *const *known, const char *consequence)
{
    const char *k = key->scalar ? key->scalar : "";
    const char *near = lint_near(k, known);
    if (near)
        lint_add(l, key, "misspelt-key",
                 "'%s' in %s is not a LiteLLM key (did you mean '%s'?); %s", k, where, near,
                 consequence);
    else
        lint_add(l, key, "unknown-key", "'%s' in %s is not a key LiteLLM reads; %s", k, where,
                 consequence);
}

/* The scalar text of map[key], or NULL. */
static const char *lint_text(const struct ynode *map, const char *key)
{
    const struct ynode *v = map && map->type == YNODE_MAP ? yamlx_get(map, key) : NULL;
    return v && v->type == YNODE_SCALAR ? v->scalar : NULL;
}

static void lint_router_settings(struct lint *l, const struct ynode *rs)
{
    size_t i;
    for (i = 0; i < rs->n; i++) {
        const struct ynode *k = rs->keys[i];
        const char *key = k->scalar ? k->scalar : "";
        if (!strcmp(key, "enable_weighted_failover"))
            lint_add(l, k, "not-litellm",
                     "'enable_weighted_failover' is not a LiteLLM setting: LiteLLM's proxy drops "
                     "it without a word; slodrill accepts it and its retries already prefer "
                     "untried deployments of the tier by weight. Remove it, or keep it knowing "
                     "it changes nothing");
        else if (lint_in(key, lint_slodrill_keys))
            lint_add(l, k, "slodrill-only",
                     "'%s' is slodrill's own setting: slodrill's router applies it, LiteLLM's "
                     "proxy drops it without a word",
                     key);
        else if (!strcmp(key, "stream_timeout"))
            lint_add(l, k, "means-otherwise",
                     "%s", lint_stream_timeout);
        else if (!lint_in(key, lint_router_keys))
            lint_unknown(l, k, "router_settings", lint_router_keys,
                         "LiteLLM's proxy passes only the Router's own arguments and drops "
                         "this one without a word");
    }
}

static void lint_litellm_settings(struct lint *l, const struct ynode *ls, const struct ynode *rs)
{
    size_t i;
    for (i = 0; i < ls->n; i++) {
        const struct ynode *k = ls->keys[i];
        const char *key = k->scalar ? k->scalar : "";
        int in_rs = rs && rs->type == YNODE_MAP && yamlx_get(rs, key) != NULL;
        if (lint_in(key, lint_router_only)) {
            int ours = lint_in(key, lint_slodrill_applies);
            lint_add(l, k, "ignored-setting",
                     "'%s' under litellm_settings is ignored by LiteLLM's Router, which reads it "
                     "only from router_settings (here it only sets litellm.%s)%s; %s. Move it to "
                     "router_settings",
                     key, key,
                     !strcmp(key, "cooldown_time") ? ", so the default cooldown of 5 s applies"
                                                   : "",
                     !ours ? "slodrill's router ignores it here too"
                     : in_rs ? "slodrill's router uses router_settings' value"
                             : "slodrill's router applies it here, so the two routers differ");
        } else if (lint_in(key, lint_router_global)) {
            if (in_rs)
                lint_add(l, k, "shadowed-setting",
                         "'%s' is set in both litellm_settings and router_settings; both "
                         "LiteLLM and slodrill use router_settings' value and ignore this one",
                         key);
            else
                lint_add(l, k, "fragile-placement",
                         "'%s' under litellm_settings reaches LiteLLM's Router only as the "
                         "global default litellm.%s (read when router_settings has none, and "
                         "also applied to every plain litellm.completion call); put it in "
                         "router_settings, where the Router reads it",
                         key, key);
        } else if (!lint_in(key, lint_litellm_keys)) {
            lint_unknown(l, k, "litellm_settings", lint_litellm_keys,
                         "LiteLLM sets it as an attribute of the litellm module, where nothing "
                         "may read it");
        }
    }
}

/* Per-alias checks: order and weight on some deployments but not others. */
static void lint_mixed(struct lint *l, const struct ynode *ml, const char *param,
                       const char *code, const char *what_litellm, const char *what_slodrill)
{
    size_t i, j;
    for (i = 0; i < ml->n; i++) {
        const struct ynode *e = ml->items[i], *p;
        const char *alias = lint_text(e, "model_name");
        (void)p;
        int with = 0, without = 0, first_for_alias = 1;
        if (!alias)
            continue;
        for (j = 0; j < i; j++)
            if (lint_text(ml->items[j], "model_name") &&
                !strcmp(lint_text(ml->items[j], "model_name"), alias))
                first_for_alias = 0;
        if (!first_for_alias)
            continue;
        for (j = 0; j < ml->n; j++) {
            const char *a = lint_text(ml->items[j], "model_name");
            if (!a || strcmp(a, alias))
                continue;
            p = ml->items[j]->type == YNODE_MAP ? yamlx_get(ml->items[j], "litellm_params") : NULL;
            if (p && p->type == YNODE_MAP && yamlx_get(p, param))
                with++;
            else
                without++;
        }
        if (!with || !without)
            continue;
        for (j = 0; j < ml->n; j++) {
            const char *a = lint_text(ml->items[j], "model_name");
            if (!a || strcmp(a, alias))
                continue;
            p = ml->items[j]->type == YNODE_MAP ? yamlx_get(ml->items[j], "litellm_params") : NULL;
            if (p && p->type == YNODE_MAP && yamlx_get(p, param))
                continue;
            lint_add(l, p ? p : ml->items[j], code,
                     "'%s' is set on %d deployment%s of '%s' but not on this one: %s; %s. Set "
                     "%s on every deployment of the alias",
                     param, with, with == 1 ? "" : "s", alias, what_litellm, what_slodrill,
                     param);
        }
    }
}

static long lint_long(const char *s, long dflt)
{
    char *end;
    long v;
    if (!s)
        return dflt;
    v = strtol(s, &end, 10);
    return end != s && *end == '\0' ? v : dflt;
}

static void lint_model_list(struct lint *l, const struct ynode *ml, long num_retries)
{
    size_t i, j;
    for (i = 0; i < ml->n; i++) {
        const struct ynode *e = ml->items[i], *p, *v;
        if (e->type != YNODE_MAP)
            continue;
        for (j = 0; j < e->n; j++)
            if (!lint_in(e->keys[j]->scalar ? e->keys[j]->scalar : "", lint_entry_keys))
                lint_unknown(l, e->keys[j], "a model_list entry", lint_entry_keys,
                             "LiteLLM ignores it");
        p = yamlx_get(e, "litellm_params");
        if (!p || p->type != YNODE_MAP)
            continue;
        for (j = 0; j < p->n; j++) {
            const struct ynode *k = p->keys[j];
            const char *key = k->scalar ? k->scalar : "";
            if (!lint_in(key, lint_params_keys))
                lint_unknown(l, k, "litellm_params", lint_params_keys,
                             "LiteLLM passes litellm_params it does not know on to the provider "
                             "call as request parameters (or drops them with drop_params)");
        }
        if ((v = yamlx_key(p, "stream_timeout")))
            lint_add(l, v, "means-otherwise",
                     "%s", lint_stream_timeout);
        if ((v = yamlx_key(p, "max_retries"))) {
            long mr = lint_long(lint_text(p, "max_retries"), -1);
            if (mr > 0)
                lint_add(l, v, "multiplied-retries",
                         "max_retries: %ld is handed to the provider's SDK client, which "
                         "retries inside every LiteLLM router attempt: up to (1 + num_retries "
                         "%ld) x (1 + %ld) = %ld calls to this deployment per request, and an "
                         "official SDK in front (2 retries by default) triples that to %ld. "
                         "slodrill's router ignores max_retries. Set max_retries: 0 and retry "
                         "with router_settings.num_retries",
                         mr, num_retries, mr, (1 + num_retries) * (1 + mr),
                         3 * (1 + num_retries) * (1 + mr));
        }
    }
    lint_mixed(l, ml, "order", "mixed-order",
               "LiteLLM keeps only the lowest order among healthy deployments, so it sends this "
               "one nothing while any ordered deployment is healthy",
               "slodrill tries it after every ordered tier");
    lint_mixed(l, ml, "weight", "mixed-weight",
               "LiteLLM's simple-shuffle uses weights when the first healthy deployment has "
               "one and gives deployments without a weight 0, so this one has no traffic then",
               "slodrill weighs it by rpm, tpm or 1");
}

static int lint_cmp(const void *a, const void *b)
{
    const struct lint_item *x = a, *y = b;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    if (x->col != y->col)
        return x->col < y->col ? -1 : 1;
    return 0;
}

int lint_config(const char *path, void (*cb)(const struct lint_finding *f, void *arg), void *arg,
                char *err, size_t errlen)
{
    struct ynode *root = NULL;
    const struct ynode *ml, *rs, *ls, *v;
    struct lint l = {NULL, 0};
    long num_retries;
    size_t i;
    int rc = -1;

    root = yamlx_load_file(path, err, errlen);
    if (!root)
        goto out;
    if (root->type != YNODE_MAP) {
        yamlx_error(err, errlen, root, "a LiteLLM config is a map with model_list: first");
        goto out;
    }
    l.items = calloc(LINT_MAX_FINDINGS, sizeof *l.items);
    if (!l.items) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto out;
    }
    ml = yamlx_get(root, "model_list");
    rs = yamlx_get(root, "router_settings");
    ls = yamlx_get(root, "litellm_settings");
    for (i = 0; i < root->n; i++) {
        const char *key = root->keys[i]->scalar ? root->keys[i]->scalar : "";
        if (lint_in(key, lint_slodrill_sections))
            lint_add(&l, root->keys[i], "slodrill-only",
                     "'%s' is slodrill's own section (docs/%s.md): slodrill's router applies it, "
                     "LiteLLM ignores top-level sections it does not know, so under LiteLLM "
                     "none of it exists",
                     key, !strcmp(key, "budgets") ? "budgets" : "cache");
        else if (!lint_in(key, lint_top_keys))
            lint_unknown(&l, root->keys[i], "the config", lint_top_keys, "LiteLLM ignores it");
    }
    if (!ml)
        lint_add(&l, root, "no-model-list",
                 "there is no model_list: neither LiteLLM nor slodrill has anything to route to");
    /* LiteLLM's Router: num_retries argument, else litellm.num_retries, else
     * openai.DEFAULT_MAX_RETRIES (2). slodrill's default is 0. */
    num_retries = lint_long(lint_text(rs, "num_retries"), -1);
    if (num_retries < 0)
        num_retries = lint_long(lint_text(ls, "num_retries"), -1);
    if (num_retries < 0) {
        num_retries = 2;
        lint_add(&l, rs && rs->type == YNODE_MAP ? rs : root, "default-differs",
                 "num_retries is not set: LiteLLM's Router then retries twice "
                 "(openai.DEFAULT_MAX_RETRIES), slodrill's router not at all; say which you "
                 "mean with router_settings.num_retries");
    }
    if (rs && rs->type == YNODE_MAP)
        lint_router_settings(&l, rs);
    if (ls && ls->type == YNODE_MAP)
        lint_litellm_settings(&l, ls, rs);
    if (ml && ml->type == YNODE_SEQ)
        lint_model_list(&l, ml, num_retries);
    if ((v = yamlx_get(root, "general_settings")) && v->type == YNODE_MAP &&
        (v = yamlx_key(v, "enable_pre_call_checks")))
        lint_add(&l, v, "ignored-setting",
                 "enable_pre_call_checks belongs in router_settings; general_settings does not "
                 "pass it to the Router");
    qsort(l.items, l.n, sizeof *l.items, lint_cmp);
    for (i = 0; i < l.n; i++) {
        struct lint_finding f;
        f.line = l.items[i].line;
        f.col = l.items[i].col;
        f.code = l.items[i].code;
        f.message = l.items[i].msg;
        if (cb)
            cb(&f, arg);
    }
    rc = (int)l.n;
out:
    free(l.items);
    yamlx_free(root);
    return rc;
}
