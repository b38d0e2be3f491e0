/* prices.c -- list prices of common models (PRICES_DATE) and the cost of an answer.
 *
 * Sources: the providers' public pricing pages (platform.openai.com/docs/pricing,
 * docs.anthropic.com/en/docs/about-claude/pricing) as of PRICES_DATE. A model
 * name matches after its provider prefix and date suffix are removed, so
 * "openai/gpt-4o-mini-2024-07-18" is "gpt-4o-mini"; there is no prefix
 * matching beyond that ("gpt-4o-mini" must never be priced as "gpt-4o"). */
#include "router/prices.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

/* USD per million tokens: input, output, cached input (OpenAI's published
 * cached-input price; Anthropic's cache read = 0.1 x input). 0 cached_in
 * means the model has no discounted cached input: reads cost the input price. */
static const struct price prices_v[] = {
    /* OpenAI */
    {"gpt-5", PRICES_OPENAI, 1.25, 10.00, 0.125},
    {"gpt-5-mini", PRICES_OPENAI, 0.25, 2.00, 0.025},
    {"gpt-5-nano", PRICES_OPENAI, 0.05, 0.40, 0.005},
    {"gpt-4.1", PRICES_OPENAI, 2.00, 8.00, 0.50},
    {"gpt-4.1-mini", PRICES_OPENAI, 0.40, 1.60, 0.10},
    {"gpt-4.1-nano", PRICES_OPENAI, 0.10, 0.40, 0.025},
    {"gpt-4o", PRICES_OPENAI, 2.50, 10.00, 1.25},
    {"gpt-4o-mini", PRICES_OPENAI, 0.15, 0.60, 0.075},
    {"o3", PRICES_OPENAI, 2.00, 8.00, 0.50},
    {"o4-mini", PRICES_OPENAI, 1.10, 4.40, 0.275},
    {"o3-mini", PRICES_OPENAI, 1.10, 4.40, 0.55},
    {"o1", PRICES_OPENAI, 15.00, 60.00, 7.50},
    {"gpt-4-turbo", PRICES_OPENAI, 10.00, 30.00, 0},
    {"gpt-3.5-turbo", PRICES_OPENAI, 0.50, 1.50, 0},
    /* Anthropic */
    {"claude-opus-4-1", PRICES_ANTHROPIC, 15.00, 75.00, 1.50},
    {"claude-opus-4", PRICES_ANTHROPIC, 15.00, 75.00, 1.50},
    {"claude-sonnet-4", PRICES_ANTHROPIC, 3.00, 15.00, 0.30},
    {"claude-3-7-sonnet", PRICES_ANTHROPIC, 3.00, 15.00, 0.30},
    {"claude-3-5-sonnet", PRICES_ANTHROPIC, 3.00, 15.00, 0.30},
    {"claude-3-5-haiku", PRICES_ANTHROPIC, 0.80, 4.00, 0.08},
    {"claude-3-haiku", PRICES_ANTHROPIC, 0.25, 1.25, 0.03},
    {"claude-3-opus", PRICES_ANTHROPIC, 15.00, 75.00, 1.50},
};

#define PRICES_N (sizeof prices_v / sizeof prices_v[0])
#define PRICES_MAX_NAME 128

const struct price *prices_table(size_t *n)
{
    *n = PRICES_N;
    return prices_v;
}

static int prices_digits(const char *s, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i]))
            return 0;
    return 1;
}

/* Strips a date or "-latest" suffix in place: -YYYY-MM-DD, -YYYYMMDD, @YYYYMMDD, -latest. */
static void prices_strip_suffix(char *s)
{
    size_t n = strlen(s);
    char *at = strchr(s, '@');
    if (at) {
        *at = '\0';
        return;
    }
    if (n > 7 && !strcmp(s + n - 7, "-latest")) {
        s[n - 7] = '\0';
        return;
    }
    if (n > 11 && s[n - 11] == '-' && prices_digits(s + n - 10, 4) && s[n - 6] == '-' &&
        prices_digits(s + n - 5, 2) && s[n - 3] == '-' && prices_digits(s + n - 2, 2)) {
        s[n - 11] = '\0';
        return;
    }
    if (n > 9 && s[n - 9] == '-' && prices_digits(s + n - 8, 8))
        s[n - 9] = '\0';
}

const struct price *prices_find(const char *model)
{
    char name[PRICES_MAX_NAME];
    const char *slash;
    size_t i;
    int pass;

    if (!model)
        return NULL;
    slash = strrchr(model, '/');
    if (slash)
        model = slash + 1;
    if (strlen(model) >= sizeof name)
        return NULL;
    snprintf(name, sizeof name, "%s", model);
    for (i = 0; name[i]; i++)
        name[i] = (char)tolower((unsigned char)name[i]);
    for (pass = 0; pass < 2; pass++) {
        for (i = 0; i < PRICES_N; i++)
            if (!strcmp(prices_v[i].model, name))
                return &prices_v[i];
        prices_strip_suffix(name);
    }
    return NULL;
}

int prices_rates_for(const char *model, double cfg_in, double cfg_out, struct prices_rates *r)
{
    const struct price *p = prices_find(model);
    int from_table = 0;

    r->in = r->out = r->cached_in = r->cache_write = -1;
    if (cfg_in >= 0 && cfg_out >= 0) {
        r->in = cfg_in;
        r->out = cfg_out;
    } else if (p) {
        r->in = p->in / 1e6;
        r->out = p->out / 1e6;
        from_table = 1;
    } else {
        return 0;
    }
    if (p && (from_table || p->in / 1e6 == r->in)) {
        r->cached_in = p->cached_in > 0 ? p->cached_in / 1e6 : r->in;
        r->cache_write = p->vendor == PRICES_ANTHROPIC ? 1.25 * r->in : r->in;
    } else {
        r->cached_in = 0.1 * r->in;
        r->cache_write = 1.25 * r->in;
    }
    return 1;
}

double prices_cost(const struct prices_rates *r, const struct prices_usage *u)
{
    double plain, cr, cw;
    if (r->in < 0 || r->out < 0 || (u->prompt <= 0 && u->completion <= 0))
        return -1;
    plain = (double)(u->prompt - u->cache_read - u->cache_write);
    if (plain < 0)
        plain = 0;
    cr = r->cached_in >= 0 ? r->cached_in : 0.1 * r->in;
    cw = r->cache_write >= 0 ? r->cache_write : 1.25 * r->in;
    return plain * r->in + (double)u->cache_read * cr + (double)u->cache_write * cw +
           (double)u->completion * r->out;
}

double prices_estimate(const struct prices_rates *r, long in_tokens, long out_tokens)
{
    if (r->in < 0 || r->out < 0)
        return -1;
    return (double)(in_tokens > 0 ? in_tokens : 0) * r->in +
           (double)(out_tokens > 0 ? out_tokens : 0) * r->out;
}
