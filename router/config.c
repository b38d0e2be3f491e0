/* config.c -- loads a LiteLLM-style config.yaml into struct router_config.
 *
 * DESIGN: every scalar goes through cfg_text(), which resolves
 * "os.environ/NAME" wherever a string may stand (LiteLLM's convention), so a
 * number or a URL can come from the environment too. Every error carries the
 * position of the node it is about; keys we do not know, or know but do not
 * apply, are warnings with a position, never silent. The meaning of each key
 * is written down in docs/routing.md. */
#include "router/config.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/yamlx.h"
#include "router/anthropic.h"
#include "router/budget.h"
#include "router/cache.h"
#include "router/kv.h"
#include "router/prices.h"

#define CFG_MAX_DEPLOYMENTS 1024
#define CFG_MAX_FALLBACKS 64

struct cfg_ctx {
    router_env_fn env;
    void *env_arg;
    void (*warn_cb)(const char *msg, void *arg);
    void *warn_arg;
    char *err;
    size_t errlen;
};

static const char *cfg_getenv(const char *name, void *arg)
{
    (void)arg;
    return getenv(name);
}

static char *cfg_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

PRINTF_LIKE(3, 4)
static void cfg_warn(struct cfg_ctx *c, const struct ynode *at, const char *fmt, ...)
{
    char msg[1024];
    int off;
    va_list ap;

    if (!c->warn_cb)
        return;
    off = snprintf(msg, sizeof msg, "%s:%d:%d: warning: ", at->file ? at->file : "?", at->line,
                   at->col);
    if (off < 0 || (size_t)off >= sizeof msg)
        off = 0;
    va_start(ap, fmt);
    vsnprintf(msg + off, sizeof msg - (size_t)off, fmt, ap);
    va_end(ap);
    c->warn_cb(msg, c->warn_arg);
}

/* The text of a scalar with "os.environ/NAME" resolved. Borrowed. */
static int cfg_text(struct cfg_ctx *c, const struct ynode *n, const char *what, const char **out)
{
    const char *s;

    if (n->type != YNODE_SCALAR)
        return yamlx_error(c->err, c->errlen, n, "%s must be a single value, not a %s", what,
                           n->type == YNODE_MAP ? "map" : "list");
    s = n->scalar ? n->scalar : "";
    if (strncmp(s, "os.environ/", 11) == 0) {
        const char *name = s + 11;
        const char *v;
        if (*name == '\0')
            return yamlx_error(c->err, c->errlen, n,
                               "%s names no variable; write os.environ/NAME, e.g. "
                               "os.environ/OPENAI_API_KEY",
                               what);
        v = c->env(name, c->env_arg);
        if (!v)
            return yamlx_error(c->err, c->errlen, n,
                               "%s reads environment variable %s, which is not set; export %s "
                               "or write the value here",
                               what, name, name);
        s = v;
    }
    *out = s;
    return 0;
}

static int cfg_dup(struct cfg_ctx *c, const struct ynode *n, const char *what, char **out)
{
    const char *s;
    if (cfg_text(c, n, what, &s) != 0)
        return -1;
    free(*out);
    *out = cfg_strdup(s);
    if (!*out)
        return yamlx_error(c->err, c->errlen, n, "out of memory");
    return 0;
}

/* A number >= min; example is shown in the message. */
static int cfg_num(struct cfg_ctx *c, const struct ynode *n, const char *what, double min,
                   const char *example, double *out)
{
    const char *s;
    char *end = NULL;
    double v;

    if (cfg_text(c, n, what, &s) != 0)
        return -1;
    errno = 0;
    v = strtod(s, &end);
    if (end == s || errno != 0 || !isfinite(v))
        return yamlx_error(c->err, c->errlen, n, "%s must be a number (got '%s'), e.g. %s", what,
                           s, example);
    while (*end == ' ')
        end++;
    if (*end != '\0')
        return yamlx_error(c->err, c->errlen, n, "%s must be a number (got '%s'), e.g. %s", what,
                           s, example);
    if (v < min)
        return yamlx_error(c->err, c->errlen, n, "%s must be at least %g (got %s), e.g. %s",
                           what, min, s, example);
    *out = v;
    return 0;
}

static int cfg_int(struct cfg_ctx *c, const struct ynode *n, const char *what, long min,
                   const char *example, long *out)
{
    double v;
    if (cfg_num(c, n, what, (double)min, example, &v) != 0)
        return -1;
    if (v != floor(v) || v > (double)INT_MAX)
        return yamlx_error(c->err, c->errlen, n, "%s must be a whole number (got %s), e.g. %s",
                           what, n->scalar ? n->scalar : "", example);
    *out = (long)v;
    return 0;
}

/* Seconds (a number, or "2s"/"250ms") -> milliseconds. */
static int cfg_ms(struct cfg_ctx *c, const struct ynode *n, const char *what, int64_t *out)
{
    const char *s;
    double v;

    if (cfg_text(c, n, what, &s) != 0)
        return -1;
    if (yamlx_parse_duration(s, &v) != 0 || !isfinite(v) || v < 0)
        return yamlx_error(c->err, c->errlen, n,
                           "%s must be a duration in seconds (got '%s'), e.g. 30 or 2.5 or 250ms",
                           what, s);
    if (v > 86400.0 * 365)
        return yamlx_error(c->err, c->errlen, n, "%s is longer than a year (got '%s')", what, s);
    *out = (int64_t)llround(v * 1000.0);
    return 0;
}

static int cfg_bool(struct cfg_ctx *c, const struct ynode *n, const char *what, int *out)
{
    const char *s;
    if (cfg_text(c, n, what, &s) != 0)
        return -1;
    if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE") || !strcmp(s, "yes") ||
        !strcmp(s, "on") || !strcmp(s, "1"))
        *out = 1;
    else if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE") ||
             !strcmp(s, "no") || !strcmp(s, "off") || !strcmp(s, "0"))
        *out = 0;
    else
        return yamlx_error(c->err, c->errlen, n, "%s must be true or false (got '%s')", what, s);
    return 0;
}

static int cfg_in(const char *key, const char *const *list)
{
    for (; *list; list++)
        if (!strcmp(key, *list))
            return 1;
    return 0;
}

/* Warns about keys of map in neither known nor ignored; ignored keys get
 * their own warning ("accepted, has no effect"). */
static void cfg_check_keys(struct cfg_ctx *c, const struct ynode *map, const char *what,
                           const char *const *known, const char *const *ignored)
{
    size_t i;
    for (i = 0; i < map->n; i++) {
        const struct ynode *k = map->keys[i];
        const char *key = k->scalar ? k->scalar : "";
        if (cfg_in(key, known))
            continue;
        if (ignored && cfg_in(key, ignored))
            cfg_warn(c, k, "'%s' in %s is accepted but has no effect in slodrill's router", key,
                     what);
        else
            cfg_warn(c, k, "unknown key '%s' in %s; it is ignored", key, what);
    }
}

static int cfg_map(struct cfg_ctx *c, const struct ynode *n, const char *what)
{
    if (n->type != YNODE_MAP)
        return yamlx_error(c->err, c->errlen, n, "%s must be a map of key: value", what);
    return 0;
}

/* "openai/gpt-4o" -> dialect and the part after the prefix. */
static int cfg_model(struct cfg_ctx *c, const struct ynode *n, struct router_deploy *d)
{
    const char *slash = strchr(d->model, '/');
    const char *up = d->model;

    d->dialect = ROUTER_DIALECT_OPENAI;
    if (slash) {
        size_t plen = (size_t)(slash - d->model);
        if (plen == 9 && !strncmp(d->model, "anthropic", 9)) {
            d->dialect = ROUTER_DIALECT_ANTHROPIC;
            up = slash + 1;
        } else if ((plen == 6 && !strncmp(d->model, "openai", 6)) ||
                   (plen == 4 && !strncmp(d->model, "text", 4)) ||
                   (plen == 5 && !strncmp(d->model, "azure", 5)) ||
                   (plen == 17 && !strncmp(d->model, "openai_compatible", 17)) ||
                   (plen == 11 && !strncmp(d->model, "hosted_vllm", 11))) {
            up = slash + 1;
        } else {
            cfg_warn(c, n,
                     "model '%s': provider prefix is not openai/ or anthropic/; it is called as "
                     "an OpenAI-compatible API with the model name unchanged",
                     d->model);
        }
    } else if (!strncmp(d->model, "claude", 6)) {
        d->dialect = ROUTER_DIALECT_ANTHROPIC;
    }
    if (*up == '\0')
        return yamlx_error(c->err, c->errlen, n,
                           "model '%s' has no model name after the provider prefix, e.g. "
                           "openai/gpt-4o-mini",
                           d->model);
    d->upstream_model = cfg_strdup(up);
    if (!d->upstream_model)
        return yamlx_error(c->err, c->errlen, n, "out of memory");
    return 0;
}

/* Provider label: host:port of api_base, else the model prefix. */
static int cfg_provider_label(struct router_deploy *d)
{
    const char *p = strstr(d->api_base, "://");
    char label[256];
    size_t i = 0;

    if (p) {
        p += 3;
        while (*p && *p != '/' && *p != '?' && i + 1 < sizeof label)
            label[i++] = *p++;
    }
    label[i] = '\0';
    if (i == 0) {
        const char *slash = strchr(d->model, '/');
        size_t n = slash ? (size_t)(slash - d->model) : strlen(d->model);
        if (n >= sizeof label)
            n = sizeof label - 1;
        memcpy(label, d->model, n);
        label[n] = '\0';
    }
    d->provider = cfg_strdup(label);
    return d->provider ? 0 : -1;
}

static const char *const cfg_params_known[] = {
    "model", "api_base", "base_url", "api_key", "order", "weight", "rpm", "tpm", "timeout",
    "stream_timeout", "max_retries", "input_cost_per_token", "output_cost_per_token",
    "cache_control_injection_points", NULL};
static const char *const cfg_params_ignored[] = {
    "api_version", "organization", "custom_llm_provider", "region_name", "temperature",
    "max_tokens", "drop_params", "mock_response", "use_in_pass_through", "merge_reasoning_content_in_choices",
    "extra_headers", "headers", "vertex_project", "vertex_location", "aws_region_name",
    "api_type", "tags", "litellm_credential_name", NULL};

static int cfg_deployment(struct cfg_ctx *c, const struct ynode *item, struct router_deploy *d)
{
    static const char *const known[] = {"model_name", "litellm_params", "model_info", "rpm",
                                        "tpm", NULL};
    const struct ynode *name, *params, *info, *v;
    double num;
    long l;

    d->line = item->line;
    d->col = item->col;
    d->order = INT_MAX;
    d->weight = 0;
    d->in_cost = d->out_cost = -1;
    if (cfg_map(c, item, "a model_list entry") != 0)
        return -1;
    cfg_check_keys(c, item, "a model_list entry", known, NULL);
    name = yamlx_get(item, "model_name");
    if (!name)
        return yamlx_error(c->err, c->errlen, item,
                           "model_list entry has no model_name; add the alias clients ask for, "
                           "e.g. model_name: app/chat");
    if (cfg_dup(c, name, "model_name", &d->alias) != 0)
        return -1;
    if (d->alias[0] == '\0')
        return yamlx_error(c->err, c->errlen, name, "model_name is empty; e.g. app/chat");
    params = yamlx_get(item, "litellm_params");
    if (!params)
        return yamlx_error(c->err, c->errlen, item,
                           "model_list entry '%s' has no litellm_params; add at least "
                           "litellm_params: { model: openai/gpt-4o-mini }",
                           d->alias);
    if (cfg_map(c, params, "litellm_params") != 0)
        return -1;
    cfg_check_keys(c, params, "litellm_params", cfg_params_known, cfg_params_ignored);
    v = yamlx_get(params, "model");
    if (!v)
        return yamlx_error(c->err, c->errlen, params,
                           "litellm_params has no model; e.g. model: openai/gpt-4o-mini");
    if (cfg_dup(c, v, "model", &d->model) != 0 || cfg_model(c, v, d) != 0)
        return -1;
    if ((v = yamlx_get(params, "api_base")) || (v = yamlx_get(params, "base_url"))) {
        size_t n;
        if (cfg_dup(c, v, "api_base", &d->api_base) != 0)
            return -1;
        if (strncmp(d->api_base, "http://", 7) && strncmp(d->api_base, "https://", 8))
            return yamlx_error(c->err, c->errlen, v,
                               "api_base '%s' is not an http:// or https:// URL, e.g. "
                               "http://127.0.0.1:8080/v1",
                               d->api_base);
        n = strlen(d->api_base);
        while (n > 0 && d->api_base[n - 1] == '/')
            d->api_base[--n] = '\0';
    } else {
        d->api_base = cfg_strdup(d->dialect == ROUTER_DIALECT_ANTHROPIC
                                     ? "https://api.anthropic.com"
                                     : "https://api.openai.com/v1");
        if (!d->api_base)
            return yamlx_error(c->err, c->errlen, params, "out of memory");
    }
    if ((v = yamlx_get(params, "api_key"))) {
        if (cfg_dup(c, v, "api_key", &d->api_key) != 0)
            return -1;
    } else {
        d->api_key = cfg_strdup("");
        if (!d->api_key)
            return yamlx_error(c->err, c->errlen, params, "out of memory");
    }
    if ((v = yamlx_get(params, "order"))) {
        if (cfg_int(c, v, "order", 0, "order: 1 (lower is tried first)", &l) != 0)
            return -1;
        d->order = (int)l;
        d->order_set = 1;
    }
    if ((v = yamlx_get(item, "rpm")) || (v = yamlx_get(params, "rpm"))) {
        if (cfg_int(c, v, "rpm", 0, "rpm: 500", &l) != 0)
            return -1;
        d->rpm = l;
    }
    if ((v = yamlx_get(item, "tpm")) || (v = yamlx_get(params, "tpm"))) {
        if (cfg_int(c, v, "tpm", 0, "tpm: 100000", &l) != 0)
            return -1;
        d->tpm = l;
    }
    if ((v = yamlx_get(params, "weight"))) {
        if (cfg_num(c, v, "weight", 0, "weight: 9", &num) != 0)
            return -1;
        if (num <= 0)
            return yamlx_error(c->err, c->errlen, v,
                               "weight must be greater than 0 (got %s); to take a deployment "
                               "out, remove it or give it a higher order",
                               v->scalar);
        d->weight = num;
    }
    if (d->weight <= 0)
        d->weight = d->rpm > 0 ? (double)d->rpm : d->tpm > 0 ? (double)d->tpm : 1.0;
    if ((v = yamlx_get(params, "timeout")) && cfg_ms(c, v, "timeout", &d->timeout_ms) != 0)
        return -1;
    if ((v = yamlx_get(params, "stream_timeout")) &&
        cfg_ms(c, v, "stream_timeout", &d->stream_timeout_ms) != 0)
        return -1;
    if ((v = yamlx_get(params, "max_retries"))) {
        if (cfg_int(c, v, "max_retries", 0, "max_retries: 0", &l) != 0)
            return -1;
        if (l > 0)
            cfg_warn(c, v,
                     "max_retries: %ld is an SDK-level retry in LiteLLM that multiplies the "
                     "router's retries; slodrill's router is the only retry loop and ignores it "
                     "(use router_settings.num_retries)",
                     l);
    }
    if ((v = yamlx_get(params, "input_cost_per_token")) &&
        cfg_num(c, v, "input_cost_per_token", 0, "input_cost_per_token: 0.00000015", &d->in_cost) !=
            0)
        return -1;
    if ((v = yamlx_get(params, "output_cost_per_token")) &&
        cfg_num(c, v, "output_cost_per_token", 0, "output_cost_per_token: 0.0000006",
                &d->out_cost) != 0)
        return -1;
    if ((v = yamlx_get(params, "cache_control_injection_points"))) {
        if (anthropic_cache_points_parse(v, &d->cache_points, &d->ncache_points, c->err,
                                         c->errlen) != 0)
            return -1;
        if (d->dialect != ROUTER_DIALECT_ANTHROPIC)
            cfg_warn(c, v, "cache_control_injection_points has no effect on '%s': only "
                           "Anthropic deployments take cache_control (OpenAI caches prompts "
                           "on its own)", d->model);
    }
    info = yamlx_get(item, "model_info");
    if (info) {
        if (cfg_map(c, info, "model_info") != 0)
            return -1;
        if ((v = yamlx_get(info, "id")) && cfg_dup(c, v, "model_info.id", &d->id) != 0)
            return -1;
        if (d->id && d->id[0] == '\0')
            return yamlx_error(c->err, c->errlen, v, "model_info.id is empty; e.g. id: primary");
    }
    if (cfg_provider_label(d) != 0)
        return yamlx_error(c->err, c->errlen, item, "out of memory");
    return 0;
}

static void cfg_free_strv(char **v, size_t n)
{
    size_t i;
    if (!v)
        return;
    for (i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* A list of alias strings. */
static int cfg_aliases(struct cfg_ctx *c, const struct ynode *n, const char *what, char ***out,
                       size_t *nout)
{
    size_t i;
    char **v = NULL;
    int rc = -1;

    if (n->type == YNODE_SCALAR) {
        v = calloc(1, sizeof *v);
        if (!v || cfg_dup(c, n, what, &v[0]) != 0)
            goto out;
        *out = v;
        *nout = 1;
        v = NULL;
        rc = 0;
        goto out;
    }
    if (n->type != YNODE_SEQ) {
        yamlx_error(c->err, c->errlen, n, "%s must be a list of model_name aliases", what);
        goto out;
    }
    if (n->n > CFG_MAX_FALLBACKS) {
        yamlx_error(c->err, c->errlen, n, "%s lists %zu aliases; at most %d", what, n->n,
                    CFG_MAX_FALLBACKS);
        goto out;
    }
    v = calloc(n->n ? n->n : 1, sizeof *v);
    if (!v)
        goto out;
    for (i = 0; i < n->n; i++)
        if (cfg_dup(c, n->items[i], what, &v[i]) != 0)
            goto out;
    *out = v;
    *nout = n->n;
    v = NULL;
    rc = 0;
out:
    if (v)
        cfg_free_strv(v, n->type == YNODE_SEQ ? n->n : 1);
    return rc;
}

/* fallbacks: [{alias: [a, b]}, ...] (a single map is accepted too). */
static int cfg_fallbacks(struct cfg_ctx *c, struct router_config *cfg, const struct ynode *n)
{
    size_t i, j, count = 0;
    const struct ynode *const *maps;
    size_t nmaps;
    const struct ynode *one[1];

    if (n->type == YNODE_MAP) {
        one[0] = n;
        maps = one;
        nmaps = 1;
    } else if (n->type == YNODE_SEQ) {
        maps = (const struct ynode *const *)n->items;
        nmaps = n->n;
    } else {
        return yamlx_error(c->err, c->errlen, n,
                           "fallbacks must be a list of maps, e.g. fallbacks: [{\"app/chat\": "
                           "[\"app/backup\"]}]");
    }
    for (i = 0; i < nmaps; i++) {
        if (maps[i]->type != YNODE_MAP)
            return yamlx_error(c->err, c->errlen, maps[i],
                               "each fallbacks entry must be a map alias: [fallback aliases], "
                               "e.g. {\"app/chat\": [\"app/backup\"]}");
        count += maps[i]->n;
    }
    if (count > CFG_MAX_FALLBACKS)
        return yamlx_error(c->err, c->errlen, n, "fallbacks has %zu entries; at most %d", count,
                           CFG_MAX_FALLBACKS);
    for (i = 0; i < cfg->nfb; i++) {
        free(cfg->fb[i].alias);
        cfg_free_strv(cfg->fb[i].to, cfg->fb[i].nto);
    }
    free(cfg->fb);
    cfg->nfb = 0;
    cfg->fb = calloc(count ? count : 1, sizeof *cfg->fb);
    if (!cfg->fb)
        return yamlx_error(c->err, c->errlen, n, "out of memory");
    for (i = 0; i < nmaps; i++) {
        for (j = 0; j < maps[i]->n; j++) {
            struct router_fallback *f = &cfg->fb[cfg->nfb];
            f->alias = cfg_strdup(maps[i]->keys[j]->scalar ? maps[i]->keys[j]->scalar : "");
            if (!f->alias)
                return yamlx_error(c->err, c->errlen, n, "out of memory");
            f->line = maps[i]->keys[j]->line;
            f->col = maps[i]->keys[j]->col;
            cfg->nfb++;
            if (cfg_aliases(c, maps[i]->items[j], "fallbacks", &f->to, &f->nto) != 0)
                return -1;
        }
    }
    return 0;
}

/* Settings shared by router_settings and litellm_settings. Returns 1 when
 * key was one of them, 0 when not, -1 on error. */
static int cfg_setting(struct cfg_ctx *c, struct router_config *cfg, const char *key,
                       const struct ynode *v)
{
    long l;

    if (!strcmp(key, "num_retries")) {
        if (cfg_int(c, v, "num_retries", 0, "num_retries: 1", &l) != 0)
            return -1;
        if (l > 16)
            return yamlx_error(c->err, c->errlen, v, "num_retries %ld is too many; at most 16",
                               l);
        cfg->num_retries = (int)l;
    } else if (!strcmp(key, "timeout") || !strcmp(key, "request_timeout")) {
        if (cfg_ms(c, v, key, &cfg->timeout_ms) != 0)
            return -1;
        if (cfg->timeout_ms <= 0)
            return yamlx_error(c->err, c->errlen, v, "%s must be more than 0 seconds", key);
    } else if (!strcmp(key, "stream_timeout")) {
        if (cfg_ms(c, v, key, &cfg->stream_timeout_ms) != 0)
            return -1;
    } else if (!strcmp(key, "fallbacks")) {
        if (cfg_fallbacks(c, cfg, v) != 0)
            return -1;
    } else if (!strcmp(key, "default_fallbacks")) {
        cfg_free_strv(cfg->default_fb, cfg->ndefault_fb);
        cfg->default_fb = NULL;
        cfg->ndefault_fb = 0;
        if (cfg_aliases(c, v, key, &cfg->default_fb, &cfg->ndefault_fb) != 0)
            return -1;
    } else if (!strcmp(key, "allowed_fails")) {
        if (cfg_int(c, v, "allowed_fails", 0, "allowed_fails: 3", &l) != 0)
            return -1;
        if (l > 10000)
            return yamlx_error(c->err, c->errlen, v, "allowed_fails %ld is too many; at most 10000",
                               l);
        cfg->allowed_fails = (int)l;
    } else if (!strcmp(key, "cooldown_time")) {
        if (cfg_ms(c, v, key, &cfg->cooldown_ms) != 0)
            return -1;
    } else if (!strcmp(key, "retry_after")) {
        if (cfg_ms(c, v, key, &cfg->retry_after_ms) != 0)
            return -1;
    } else if (!strcmp(key, "disable_cooldowns")) {
        if (cfg_bool(c, v, key, &cfg->disable_cooldowns) != 0)
            return -1;
    } else {
        return 0;
    }
    return 1;
}

/* routing_strategy_args: ttl and lowest_latency_buffer (latency-based-routing). */
static int cfg_strategy_args(struct cfg_ctx *c, struct router_config *cfg,
                             const struct ynode *m)
{
    static const char *const known[] = {"ttl", "lowest_latency_buffer", NULL};
    const struct ynode *v;

    if (cfg_map(c, m, "routing_strategy_args") != 0)
        return -1;
    cfg_check_keys(c, m, "routing_strategy_args", known, NULL);
    if ((v = yamlx_get(m, "ttl"))) {
        if (cfg_ms(c, v, "routing_strategy_args.ttl", &cfg->latency_ttl_ms) != 0)
            return -1;
        if (cfg->latency_ttl_ms <= 0)
            return yamlx_error(c->err, c->errlen, v,
                               "routing_strategy_args.ttl must be more than 0 seconds, e.g. 60");
    }
    if ((v = yamlx_get(m, "lowest_latency_buffer")) &&
        cfg_num(c, v, "routing_strategy_args.lowest_latency_buffer", 0,
                "lowest_latency_buffer: 0.5", &cfg->latency_buffer) != 0)
        return -1;
    return 0;
}

static int cfg_router_settings(struct cfg_ctx *c, struct router_config *cfg,
                               const struct ynode *rs)
{
    static const char *const ignored[] = {
        "context_window_fallbacks", "content_policy_fallbacks", "allowed_fails_policy",
        "retry_policy", "enable_pre_call_checks", "redis_host", "redis_port", "redis_password",
        "redis_url", "routing_groups", "model_group_alias",
        "cache_responses", "set_verbose", "debug_level", "optional_pre_call_checks",
        "provider_budget_config", NULL};
    size_t i;

    if (cfg_map(c, rs, "router_settings") != 0)
        return -1;
    for (i = 0; i < rs->n; i++) {
        const char *key = rs->keys[i]->scalar ? rs->keys[i]->scalar : "";
        const struct ynode *v = rs->items[i];
        int r = cfg_setting(c, cfg, key, v);
        if (r < 0)
            return -1;
        if (r > 0)
            continue;
        if (!strcmp(key, "routing_strategy")) {
            if (cfg_dup(c, v, key, &cfg->routing_strategy) != 0)
                return -1;
            if (!strcmp(cfg->routing_strategy, "simple-shuffle"))
                cfg->strategy = ROUTER_STRATEGY_SHUFFLE;
            else if (!strcmp(cfg->routing_strategy, "least-busy"))
                cfg->strategy = ROUTER_STRATEGY_LEAST_BUSY;
            else if (!strcmp(cfg->routing_strategy, "latency-based-routing"))
                cfg->strategy = ROUTER_STRATEGY_LATENCY;
            else
                cfg_warn(c, v,
                         "routing_strategy '%s' is not implemented; slodrill picks by order "
                         "then weight (simple-shuffle); it knows simple-shuffle, least-busy and "
                         "latency-based-routing",
                         cfg->routing_strategy);
        } else if (!strcmp(key, "routing_strategy_args")) {
            if (cfg_strategy_args(c, cfg, v) != 0)
                return -1;
        } else if (!strcmp(key, "slodrill_request_log")) {
            if (cfg_dup(c, v, key, &cfg->request_log) != 0)
                return -1;
            if (cfg->request_log[0] == '\0') {
                free(cfg->request_log);
                cfg->request_log = NULL;
            }
        } else if (!strcmp(key, "slodrill_shared_cooldowns")) {
            struct kv_url parsed;
            char uerr[320];
            if (cfg_dup(c, v, key, &cfg->shared_cooldowns) != 0)
                return -1;
            if (kv_url_parse(cfg->shared_cooldowns, &parsed, uerr, sizeof uerr) != 0)
                return yamlx_error(c->err, c->errlen, v, "%s", uerr);
        } else if (!strcmp(key, "enable_weighted_failover")) {
            if (cfg_bool(c, v, key, &cfg->weighted_failover) != 0)
                return -1;
        } else if (!strcmp(key, "idle_timeout") || !strcmp(key, "stream_idle_timeout")) {
            if (cfg_ms(c, v, key, &cfg->idle_timeout_ms) != 0)
                return -1;
            if (cfg->idle_timeout_ms <= 0)
                return yamlx_error(c->err, c->errlen, v, "%s must be more than 0 seconds", key);
        } else if (cfg_in(key, ignored)) {
            cfg_warn(c, rs->keys[i],
                     "'%s' in router_settings is accepted but has no effect in slodrill's router",
                     key);
        } else {
            cfg_warn(c, rs->keys[i], "unknown key '%s' in router_settings; it is ignored", key);
        }
    }
    return 0;
}

static int cfg_litellm_settings(struct cfg_ctx *c, struct router_config *cfg,
                                const struct ynode *ls, const struct ynode *rs)
{
    size_t i;

    if (cfg_map(c, ls, "litellm_settings") != 0)
        return -1;
    for (i = 0; i < ls->n; i++) {
        const char *key = ls->keys[i]->scalar ? ls->keys[i]->scalar : "";
        const struct ynode *v = ls->items[i];
        int r;
        /* router_settings wins where both set a key. */
        if (rs && rs->type == YNODE_MAP &&
            (yamlx_get(rs, key) ||
             (!strcmp(key, "request_timeout") && yamlx_get(rs, "timeout")))) {
            cfg_warn(c, ls->keys[i],
                     "'%s' is also set in router_settings, which wins; this one is ignored", key);
            continue;
        }
        if (!strcmp(key, "master_key")) {
            if (cfg_dup(c, v, "master_key", &cfg->master_key) != 0)
                return -1;
            continue;
        }
        r = cfg_setting(c, cfg, key, v);
        if (r < 0)
            return -1;
        if (r == 0)
            cfg_warn(c, ls->keys[i],
                     "'%s' in litellm_settings has no effect in slodrill's router", key);
    }
    return 0;
}

static int cfg_check(struct cfg_ctx *c, struct router_config *cfg)
{
    size_t i, j;

    for (i = 0; i < cfg->ndep; i++)
        for (j = 0; j < i; j++)
            if (!strcmp(cfg->dep[i].id, cfg->dep[j].id)) {
                char at[64];
                snprintf(at, sizeof at, "%d:%d", cfg->dep[j].line, cfg->dep[j].col);
                c->err[0] = '\0';
                snprintf(c->err, c->errlen,
                         "%s:%d:%d: deployment id '%s' is used twice (first at line %s); give "
                         "each model_info.id a different value",
                         cfg->path, cfg->dep[i].line, cfg->dep[i].col, cfg->dep[i].id, at);
                return -1;
            }
    for (i = 0; i < cfg->nfb; i++) {
        const struct router_fallback *f = &cfg->fb[i];
        if (!router_config_has_alias(cfg, f->alias)) {
            snprintf(c->err, c->errlen,
                     "%s:%d:%d: fallbacks has an entry for '%s', which no model_list entry has "
                     "as model_name; use one of the model_name aliases",
                     cfg->path, f->line, f->col, f->alias);
            return -1;
        }
        for (j = 0; j < f->nto; j++)
            if (!router_config_has_alias(cfg, f->to[j])) {
                snprintf(c->err, c->errlen,
                         "%s:%d:%d: fallbacks for '%s' name '%s', which no model_list entry has "
                         "as model_name; use one of the model_name aliases",
                         cfg->path, f->line, f->col, f->alias, f->to[j]);
                return -1;
            }
    }
    for (j = 0; j < cfg->ndefault_fb; j++)
        if (!router_config_has_alias(cfg, cfg->default_fb[j])) {
            snprintf(c->err, c->errlen,
                     "%s: default_fallbacks names '%s', which no model_list entry has as "
                     "model_name",
                     cfg->path, cfg->default_fb[j]);
            return -1;
        }
    return 0;
}

/* Deployments without input_cost_per_token / output_cost_per_token get the
 * price table's (router/prices.c) when their model is in it. */
static void cfg_default_prices(struct router_config *cfg)
{
    size_t i;
    for (i = 0; i < cfg->ndep; i++) {
        struct router_deploy *d = &cfg->dep[i];
        struct prices_rates r;
        if ((d->in_cost < 0 || d->out_cost < 0) &&
            prices_rates_for(d->model, d->in_cost, d->out_cost, &r)) {
            d->in_cost = r.in;
            d->out_cost = r.out;
        }
    }
}

static int cfg_load(struct cfg_ctx *c, struct router_config *cfg, const struct ynode *root)
{
    static const char *const top_known[] = {"model_list", "router_settings", "litellm_settings",
                                            "general_settings", "budgets", "cache", NULL};
    static const char *const top_ignored[] = {"environment_variables", "include",
                                              "credential_list", "guardrails", NULL};
    const struct ynode *ml, *rs, *ls, *gs, *v;
    size_t i;

    if (root->type != YNODE_MAP)
        return yamlx_error(c->err, c->errlen, root,
                           "a router config is a map with model_list: and router_settings:");
    cfg_check_keys(c, root, "the config", top_known, top_ignored);
    ml = yamlx_get(root, "model_list");
    if (!ml)
        return yamlx_error(c->err, c->errlen, root,
                           "config has no model_list; add at least one deployment, e.g. "
                           "model_list: [{model_name: app/chat, litellm_params: {model: "
                           "openai/gpt-4o-mini}}]");
    if (ml->type != YNODE_SEQ || ml->n == 0)
        return yamlx_error(c->err, c->errlen, ml,
                           "model_list must be a non-empty list of deployments");
    if (ml->n > CFG_MAX_DEPLOYMENTS)
        return yamlx_error(c->err, c->errlen, ml, "model_list has %zu entries; at most %d",
                           ml->n, CFG_MAX_DEPLOYMENTS);
    cfg->dep = calloc(ml->n, sizeof *cfg->dep);
    if (!cfg->dep)
        return yamlx_error(c->err, c->errlen, ml, "out of memory");
    for (i = 0; i < ml->n; i++) {
        cfg->ndep++;
        if (cfg_deployment(c, ml->items[i], &cfg->dep[i]) != 0)
            return -1;
    }
    /* Readable ids for entries without model_info.id: alias#n per alias. */
    for (i = 0; i < cfg->ndep; i++) {
        size_t j, n = 1;
        char id[512];
        if (cfg->dep[i].id)
            continue;
        for (j = 0; j < i; j++)
            if (!strcmp(cfg->dep[j].alias, cfg->dep[i].alias))
                n++;
        snprintf(id, sizeof id, "%s#%zu", cfg->dep[i].alias, n);
        cfg->dep[i].id = cfg_strdup(id);
        if (!cfg->dep[i].id)
            return yamlx_error(c->err, c->errlen, ml, "out of memory");
    }
    rs = yamlx_get(root, "router_settings");
    ls = yamlx_get(root, "litellm_settings");
    gs = yamlx_get(root, "general_settings");
    if (ls && cfg_litellm_settings(c, cfg, ls, rs) != 0)
        return -1;
    if (rs && cfg_router_settings(c, cfg, rs) != 0)
        return -1;
    if (gs) {
        if (cfg_map(c, gs, "general_settings") != 0)
            return -1;
        for (i = 0; i < gs->n; i++) {
            const char *key = gs->keys[i]->scalar ? gs->keys[i]->scalar : "";
            if (strcmp(key, "master_key"))
                cfg_warn(c, gs->keys[i],
                         "'%s' in general_settings has no effect in slodrill's router", key);
        }
        if ((v = yamlx_get(gs, "master_key")) &&
            cfg_dup(c, v, "master_key", &cfg->master_key) != 0)
            return -1;
    }
    if (cfg->master_key && cfg->master_key[0] == '\0') {
        free(cfg->master_key);
        cfg->master_key = NULL;
    }
    /* slodrill's own sections beside LiteLLM's keys (docs/budgets.md, docs/cache.md) */
    if ((v = yamlx_get(root, "budgets")) &&
        !(cfg->budgets = budget_config_parse(v, c->err, c->errlen)))
        return -1;
    if ((v = yamlx_get(root, "cache")) && !(cfg->cache = cache_config_parse(v, c->err, c->errlen)))
        return -1;
    cfg_default_prices(cfg);
    return cfg_check(c, cfg);
}

struct router_config *router_config_load(const char *path, router_env_fn env, void *env_arg,
                                         void (*warn_cb)(const char *msg, void *arg),
                                         void *warn_arg, char *err, size_t errlen)
{
    struct cfg_ctx c;
    struct ynode *root = NULL;
    struct router_config *cfg = NULL, *ret = NULL;

    if (errlen)
        err[0] = '\0';
    c.env = env ? env : cfg_getenv;
    c.env_arg = env_arg;
    c.warn_cb = warn_cb;
    c.warn_arg = warn_arg;
    c.err = err;
    c.errlen = errlen;
    root = yamlx_load_file(path, err, errlen);
    if (!root)
        goto out;
    cfg = calloc(1, sizeof *cfg);
    if (!cfg || !(cfg->path = cfg_strdup(path))) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto out;
    }
    cfg->num_retries = 0;
    cfg->allowed_fails = 3;
    cfg->cooldown_ms = 5000;
    cfg->timeout_ms = 600000;
    cfg->idle_timeout_ms = 30000;
    cfg->latency_ttl_ms = 3600000;
    if (cfg_load(&c, cfg, root) != 0)
        goto out;
    ret = cfg;
    cfg = NULL;
out:
    router_config_free(cfg);
    yamlx_free(root);
    return ret;
}

void router_config_free(struct router_config *cfg)
{
    size_t i;

    if (!cfg)
        return;
    for (i = 0; i < cfg->ndep; i++) {
        struct router_deploy *d = &cfg->dep[i];
        free(d->id);
        free(d->alias);
        free(d->model);
        free(d->upstream_model);
        free(d->api_base);
        free(d->api_key);
        free(d->provider);
        free(d->cache_points);
    }
    free(cfg->dep);
    for (i = 0; i < cfg->nfb; i++) {
        free(cfg->fb[i].alias);
        cfg_free_strv(cfg->fb[i].to, cfg->fb[i].nto);
    }
    free(cfg->fb);
    cfg_free_strv(cfg->default_fb, cfg->ndefault_fb);
    free(cfg->routing_strategy);
    free(cfg->request_log);
    free(cfg->master_key);
    budget_config_free(cfg->budgets);
    cache_config_free(cfg->cache);
    free(cfg->shared_cooldowns);
    free(cfg->path);
    free(cfg);
}

const char *router_config_master_key(const struct router_config *cfg)
{
    return cfg ? cfg->master_key : NULL;
}

size_t router_config_count(const struct router_config *cfg)
{
    return cfg ? cfg->ndep : 0;
}

int router_config_deployment(const struct router_config *cfg, size_t i,
                             struct router_deploy_info *out)
{
    const struct router_deploy *d;
    if (!cfg || i >= cfg->ndep)
        return -1;
    d = &cfg->dep[i];
    out->id = d->id;
    out->alias = d->alias;
    out->model = d->model;
    out->provider = d->provider;
    out->api_base = d->api_base;
    out->order = d->order;
    out->weight = d->weight;
    out->input_cost_per_token = d->in_cost;
    out->output_cost_per_token = d->out_cost;
    return 0;
}

char **router_config_fallbacks(const struct router_config *cfg, const char *alias, size_t *n)
{
    size_t i;
    for (i = 0; i < cfg->nfb; i++)
        if (!strcmp(cfg->fb[i].alias, alias)) {
            *n = cfg->fb[i].nto;
            return cfg->fb[i].to;
        }
    *n = cfg->ndefault_fb;
    return cfg->default_fb;
}

int router_config_has_alias(const struct router_config *cfg, const char *alias)
{
    size_t i;
    for (i = 0; i < cfg->ndep; i++)
        if (!strcmp(cfg->dep[i].alias, alias))
            return 1;
    return 0;
}
