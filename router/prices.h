/* prices.h -- list prices of common OpenAI and Anthropic models, and the cost of one answer.
 *
 * The table is the default when a deployment's config gives no
 * input_cost_per_token / output_cost_per_token (the config always wins).
 * Prices are USD per million tokens as the providers published them on
 * PRICES_DATE; they change, so docs/budgets.md tells users to check them.
 * Pure: no I/O. */
#ifndef SLODRILL_ROUTER_PRICES_H
#define SLODRILL_ROUTER_PRICES_H

#include <stddef.h>

#define PRICES_DATE "2025-08-15"

enum prices_vendor { PRICES_OPENAI = 0, PRICES_ANTHROPIC = 1 };

/* One row of the table. cached_in is what a prompt-cache read costs per
 * million tokens: OpenAI's "cached input" price; for Anthropic a tenth of
 * the input price. Anthropic cache writes cost 1.25x the input price for the
 * 5-minute TTL (2x for 1 h); OpenAI bills no writes. */
struct price {
    const char *model; /* without provider prefix or date suffix: "gpt-4o-mini" */
    enum prices_vendor vendor;
    double in, out, cached_in; /* USD per million tokens */
};

/* The row for a model name as a config writes it: a provider prefix
 * ("openai/", "anthropic/") and a date suffix ("-2024-07-18", "-20241022",
 * "-latest") are ignored. NULL when the model is not in the table. Borrowed
 * (static storage). */
const struct price *prices_find(const char *model);

/* The table itself, for docs and tests: *n receives the row count. */
const struct price *prices_table(size_t *n);

/* Per-token rates of one deployment. in/out < 0 mean unknown. cached_in and
 * cache_write are per cache-read / cache-write token; < 0 means "derive":
 * 0.1 x in and 1.25 x in (Anthropic's rule, also our fallback). */
struct prices_rates {
    double in, out, cached_in, cache_write;
};

/* Rates for a deployment: the config's per-token costs when both are set
 * (cfg_in/cfg_out >= 0), else the table's for model; cached rates from the
 * table when its input price is the one in use, else derived. Returns 1
 * when rates are known, 0 when not (r->in and r->out are then -1). */
int prices_rates_for(const char *model, double cfg_in, double cfg_out,
                     struct prices_rates *r);

/* Usage as providers report it. prompt counts every input token, cache
 * reads and writes included (OpenAI's prompt_tokens; Anthropic's input +
 * cache_creation + cache_read). */
struct prices_usage {
    long prompt, completion, cache_read, cache_write;
};

/* USD for usage at rates; -1 when the rates are unknown or the usage empty. */
double prices_cost(const struct prices_rates *r, const struct prices_usage *u);

/* Worst-case USD of a call before it is made: in_tokens at the input rate
 * and out_tokens at the output rate (no cache discount assumed). -1 when
 * unknown. */
double prices_estimate(const struct prices_rates *r, long in_tokens, long out_tokens);

#endif
