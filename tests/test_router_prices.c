/* test_router_prices.c -- the price table: model-name matching with prefixes and dated
 * suffixes, the config overriding it, and the cost of usage with Anthropic cache reads
 * and writes and OpenAI cached input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <string.h>

#include "router/prices.h"

#define NEAR(a, b) assert_true(fabs((a) - (b)) < 1e-12)

static void test_match_names(void **state)
{
    const struct price *p;
    (void)state;
    p = prices_find("openai/gpt-4o-mini-2024-07-18");
    assert_non_null(p);
    assert_string_equal(p->model, "gpt-4o-mini");
    p = prices_find("gpt-4o-2024-08-06");
    assert_non_null(p);
    assert_string_equal(p->model, "gpt-4o"); /* not gpt-4o-mini */
    p = prices_find("anthropic/claude-sonnet-4-20250514");
    assert_non_null(p);
    assert_string_equal(p->model, "claude-sonnet-4");
    assert_int_equal(p->vendor, PRICES_ANTHROPIC);
    p = prices_find("claude-3-5-haiku-latest");
    assert_non_null(p);
    assert_string_equal(p->model, "claude-3-5-haiku");
    p = prices_find("GPT-4.1-MINI");
    assert_non_null(p);
    NEAR(p->in, 0.40);
    p = prices_find("claude-3-5-sonnet@20241022");
    assert_non_null(p);
    assert_null(prices_find("gpt-4o-minix"));
    assert_null(prices_find("fast-model"));
    assert_null(prices_find(NULL));
    assert_null(prices_find("gpt-4")); /* no prefix matching */
}

static void test_table_sane(void **state)
{
    size_t n, i, j;
    const struct price *t = prices_table(&n);
    (void)state;
    assert_true(n >= 15);
    for (i = 0; i < n; i++) {
        assert_true(t[i].in > 0 && t[i].out >= t[i].in);
        assert_true(t[i].cached_in >= 0 && t[i].cached_in < t[i].in);
        for (j = 0; j < i; j++)
            assert_string_not_equal(t[i].model, t[j].model);
        assert_ptr_equal(prices_find(t[i].model), &t[i]);
    }
}

static void test_config_wins(void **state)
{
    struct prices_rates r;
    (void)state;
    assert_int_equal(prices_rates_for("openai/gpt-4o-mini", 1e-6, 2e-6, &r), 1);
    NEAR(r.in, 1e-6);
    NEAR(r.out, 2e-6);
    NEAR(r.cached_in, 1e-7); /* derived: the table's cached price was for another input price */
    assert_int_equal(prices_rates_for("openai/gpt-4o-mini", -1, -1, &r), 1);
    NEAR(r.in, 0.15e-6);
    NEAR(r.out, 0.60e-6);
    NEAR(r.cached_in, 0.075e-6);
    /* only one of the two set: the table (a half-priced config is not trusted) */
    assert_int_equal(prices_rates_for("openai/gpt-4o-mini", 5e-6, -1, &r), 1);
    NEAR(r.in, 0.15e-6);
    assert_int_equal(prices_rates_for("openai/fast-model", -1, -1, &r), 0);
    assert_true(r.in < 0 && r.out < 0);
    assert_int_equal(prices_rates_for("openai/fast-model", 1.5e-7, 6e-7, &r), 1);
}

static void test_cost(void **state)
{
    struct prices_rates r;
    struct prices_usage u = {1000, 500, 0, 0};
    double c;
    (void)state;
    assert_int_equal(prices_rates_for("anthropic/claude-sonnet-4-20250514", -1, -1, &r), 1);
    c = prices_cost(&r, &u);
    NEAR(c, 1000 * 3e-6 + 500 * 15e-6);
    /* 1000 prompt tokens of which 600 cache reads and 300 cache writes */
    u.cache_read = 600;
    u.cache_write = 300;
    c = prices_cost(&r, &u);
    NEAR(c, 100 * 3e-6 + 600 * 0.3e-6 + 300 * 3.75e-6 + 500 * 15e-6);
    /* OpenAI cached input at the published cached price */
    assert_int_equal(prices_rates_for("gpt-4.1", -1, -1, &r), 1);
    u.prompt = 2000;
    u.cache_read = 1024;
    u.cache_write = 0;
    u.completion = 100;
    c = prices_cost(&r, &u);
    NEAR(c, 976 * 2e-6 + 1024 * 0.5e-6 + 100 * 8e-6);
    /* nothing used: unknown, not zero */
    u.prompt = u.completion = u.cache_read = 0;
    assert_true(prices_cost(&r, &u) < 0);
    NEAR(prices_estimate(&r, 1000, 100), 1000 * 2e-6 + 100 * 8e-6);
    r.in = -1;
    assert_true(prices_estimate(&r, 1, 1) < 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_match_names),
        cmocka_unit_test(test_table_sane),
        cmocka_unit_test(test_config_wins),
        cmocka_unit_test(test_cost),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
