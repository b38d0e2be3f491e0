/* test_router_budget.c -- the degrade ladder rung by rung (trim, cap, cheaper alias, cache,
 * reject), safeguard mode, spend levels, the ledger across a restart with once-only threshold
 * events, and the rate cap's retry-after. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/yamlx.h"
#include "router/budget.h"
#include "router/ledger.h"
#include "router/ratelimit.h"

static struct budget_config *cfg_from(const char *yaml)
{
    char err[512];
    struct ynode *root = yamlx_load_string("b.yaml", yaml, strlen(yaml), err, sizeof err);
    struct budget_config *cfg;
    if (!root) {
        fprintf(stderr, "%s\n", err);
        return NULL;
    }
    cfg = budget_config_parse(yamlx_get(root, "budgets"), err, sizeof err);
    if (!cfg)
        fprintf(stderr, "%s\n", err);
    yamlx_free(root);
    return cfg;
}

/* app/chat: $10 in / $30 out per million; app/mini: $0.15 / $0.60. */
static int rates(const char *alias, struct prices_rates *r, void *arg)
{
    (void)arg;
    r->cached_in = r->cache_write = -1;
    if (!strcmp(alias, "app/chat")) {
        r->in = 10e-6;
        r->out = 30e-6;
        return 1;
    }
    if (!strcmp(alias, "app/mini")) {
        r->in = 0.15e-6;
        r->out = 0.60e-6;
        return 1;
    }
    return 0;
}

static int cache_yes(void *arg)
{
    (void)arg;
    return 1;
}

static int cache_no(void *arg)
{
    (void)arg;
    return 0;
}

/* A conversation: system, then n user/assistant turns of about 100 tokens each. */
static cJSON *convo(int n, long max_tokens)
{
    cJSON *b = cJSON_CreateObject(), *m = cJSON_AddArrayToObject(b, "messages"), *x;
    char text[401];
    int i;
    memset(text, 'a', 400);
    text[400] = '\0';
    cJSON_AddStringToObject(b, "model", "app/chat");
    x = cJSON_CreateObject();
    cJSON_AddStringToObject(x, "role", "system");
    cJSON_AddStringToObject(x, "content", "You are terse.");
    cJSON_AddItemToArray(m, x);
    for (i = 0; i < n; i++) {
        x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "role", i % 2 ? "assistant" : "user");
        cJSON_AddStringToObject(x, "content", text);
        cJSON_AddItemToArray(m, x);
    }
    if (max_tokens > 0)
        cJSON_AddNumberToObject(b, "max_tokens", (double)max_tokens);
    return b;
}

static const char *yaml_ladder(const char *ladder)
{
    static char y[1024];
    snprintf(y, sizeof y,
             "budgets:\n  features:\n    chat:\n      max_input_tokens: 500\n"
             "      max_output_tokens: 300\n      max_cost_usd: 0.01\n"
             "      cheaper_alias: app/mini\n      ladder: %s\n",
             ladder);
    return y;
}

static void test_within_limits(void **state)
{
    struct budget_config *cfg = cfg_from(yaml_ladder("[trim_context, cap_max_tokens, reject]"));
    struct budget_env env = {rates, cache_no, NULL};
    struct budget_decision d;
    cJSON *b = convo(1, 100);
    (void)state;
    budget_decide(budget_feature_find(cfg, "chat"), b, "app/chat", 0, &env, &d);
    assert_int_equal(d.action, BUDGET_PROCEED);
    assert_string_equal(d.steps, "");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(b, "messages")), 2);
    assert_int_equal(cJSON_GetObjectItem(b, "max_tokens")->valueint, 100);
    /* no feature entry and no default: nothing applies */
    budget_decide(budget_feature_find(cfg, "other"), b, "app/chat", 0, &env, &d);
    assert_int_equal(d.action, BUDGET_PROCEED);
    cJSON_Delete(b);
    budget_config_free(cfg);
}

static void test_trim(void **state)
{
    struct budget_config *cfg = cfg_from(yaml_ladder("[trim_context, reject]"));
    struct budget_env env = {rates, cache_no, NULL};
    struct budget_decision d;
    cJSON *b = convo(9, 100), *m;
    (void)state;
    budget_decide(budget_feature_find(cfg, "chat"), b, "app/chat", 0, &env, &d);
    assert_int_equal(d.action, BUDGET_PROCEED);
    m = cJSON_GetObjectItem(b, "messages");
    /* 9 turns of 104 + system 8 + 3: keep the system and the last 4 turns (<= 500) */
    assert_int_equal(d.trimmed, 5);
    assert_int_equal(cJSON_GetArraySize(m), 5);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(m, 0), "role")->valuestring,
                        "system");
    assert_true(d.est_in <= 500);
    assert_string_equal(d.steps, "trim_context:5");
    cJSON_Delete(b);
    budget_config_free(cfg);
}

static void test_cap(void **state)
{
    struct budget_config *cfg = cfg_from(yaml_ladder("[cap_max_tokens, reject]"));
    struct budget_env env = {rates, cache_no, NULL};
    struct budget_decision d;
    cJSON *b = convo(1, 2000);
    (void)state;
    budget_decide(budget_feature_find(cfg, "chat"), b, "app/chat", 0, &env, &d);
    assert_int_equal(d.action, BUDGET_PROCEED);
    /* 115 tokens in at $10/M leave $0.00885 for output: 295 tokens at $30/M */
    assert_int_equal(d.capped_to, 295);
    assert_int_equal(cJSON_GetObjectItem(b, "max_tokens")->valueint, 295);
    assert_true(d.est_cost <= 0.01);
    cJSON_Delete(b);
    /* cost binds before the output ceiling: 4 turns ~ 427 tokens in = $0.00427, room 191 out */
    b = convo(4, 300);
    budget_decide(budget_feature_find(cfg, "chat"), b, "app/chat", 0, &env, &d);
    assert_int_equal(d.action, BUDGET_PROCEED);
    assert_true(d.capped_to > 150 && d.capped_to < 300);
    assert_true(d.est_cost <= 0.01 + 1e-12);
    cJSON_Delete(b);
    budget_config_free(cfg);
}

static void test_cheaper(void **state)
{
    struct budget_config *cfg = cfg_from(
        "budgets:\n  features:\n    default:\n      max_cost_usd: 0.002\n"
        "      cheaper_alias: app/mini\n      ladder: [cheaper_alias, reject]\n");
    struct budget_env env = {rates, cache_no, NULL};
    struct budget_decision d;
    cJSON *b = convo(1, 200);
    (void)state;
    /* 111 in x $10/M + 200 out x $30/M = $0.0071 > $0.002: app/mini costs $0.00014 */
    budget_decide(budget_feature_find(cfg, "anything"), b, "app/chat", 0, &env, &d);
    assert_int_equal(d.action, BUDGET_PROCEED);
    assert_int_equal(d.switched, 1);
    assert_string_equal(d.alias, "app/mini");
    assert_true(d.est_cost < 0.0002);
    cJSON_Delete(b);
    budget_config_free(cfg);
}

static void test_cache_then_reject(void **state)
{
    struct budget_config *cfg =
        cfg_from(yaml_ladder("[cache, reject]"));
    struct budget_env env = {rates, cache_yes, NULL};
    struct budget_decision d;
    cJSON *b = convo(9, 100);
    (void)state;
    budget_decide(budget_feature_find(cfg, "chat"), b, "app/chat", 0, &env, &d);
    assert_int_equal(d.action, BUDGET_SERVE_CACHE);
    assert_string_equal(d.steps, "cache:1");
    env.cached = cache_no;
    budget_decide(budget_feature_find(cfg, "chat"), b, "app/chat", 0, &env, &d);
    assert_int_equal(d.action, BUDGET_DENY);
    assert_non_null(strstr(d.why, "max_input_tokens"));
    assert_non_null(strstr(d.why, "'chat'"));
    /* untouched when denied without trimming */
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(b, "messages")), 10);
    cJSON_Delete(b);
    budget_config_free(cfg);
}

static void test_order_matters(void **state)
{
    /* reject first: nothing else is tried */
    struct budget_config *cfg = cfg_from(yaml_ladder("[reject, trim_context]"));
    struct budget_env env = {rates, cache_yes, NULL};
    struct budget_decision d;
    cJSON *b = convo(9, 100);
    (void)state;
    budget_decide(budget_feature_find(cfg, "chat"), b, "app/chat", 0, &env, &d);
    assert_int_equal(d.action, BUDGET_DENY);
    assert_int_equal(d.trimmed, 0);
    cJSON_Delete(b);
    budget_config_free(cfg);
}

static void test_safeguard(void **state)
{
    struct budget_config *cfg = cfg_from(
        "budgets:\n  features:\n    chat:\n      max_output_tokens: 300\n"
        "      max_cost_usd: 0.02\n      cheaper_alias: app/mini\n");
    struct budget_env env = {rates, cache_no, NULL};
    struct budget_decision d;
    cJSON *b = convo(1, 0);
    (void)state;
    /* within limits: normal mode does nothing */
    budget_decide(budget_feature_find(cfg, "chat"), b, "app/chat", 0, &env, &d);
    assert_int_equal(d.action, BUDGET_PROCEED);
    assert_string_equal(d.alias, "app/chat");
    assert_null(cJSON_GetObjectItem(b, "max_tokens"));
    /* safeguard: every rung applies: max_tokens set, cheaper alias */
    budget_decide(budget_feature_find(cfg, "chat"), b, "app/chat", 1, &env, &d);
    assert_int_equal(d.action, BUDGET_PROCEED);
    assert_string_equal(d.alias, "app/mini");
    assert_int_equal(cJSON_GetObjectItem(b, "max_tokens")->valueint, 300);
    env.cached = cache_yes;
    budget_decide(budget_feature_find(cfg, "chat"), b, "app/chat", 1, &env, &d);
    assert_int_equal(d.action, BUDGET_SERVE_CACHE);
    cJSON_Delete(b);
    budget_config_free(cfg);
}

static void test_levels_and_config(void **state)
{
    struct budget_config *cfg;
    (void)state;
    assert_int_equal(budget_level(59, 100), 0);
    assert_int_equal(budget_level(60, 100), 60);
    assert_int_equal(budget_level(90, 100), 85);
    assert_int_equal(budget_level(96, 100), 95);
    assert_int_equal(budget_level(100, 100), 100);
    assert_int_equal(budget_level(100, 0), 0);
    cfg = cfg_from("budgets:\n  tenants:\n    acme: {monthly_usd: 50, rate: 5/s, burst: 10}\n"
                   "    default: {monthly_usd: 1}\n  users:\n    default: {monthly_usd: 0.5}\n");
    assert_non_null(cfg);
    assert_true(budget_tenant_cap(cfg, "acme")->rate_per_s == 5);
    assert_true(budget_tenant_cap(cfg, "acme")->burst == 10);
    assert_true(budget_tenant_cap(cfg, "globex")->monthly_usd == 1);
    assert_true(budget_user_cap(cfg, "u1")->monthly_usd == 0.5);
    assert_string_equal(cfg->ledger, "slodrill-ledger.db");
    budget_config_free(cfg);
    assert_null(cfg_from("budgets:\n  features:\n    chat: {ladder: [trim, reject]}\n"));
    assert_null(cfg_from("budgets:\n  features:\n    chat: {ladder: [reject, reject]}\n"));
    assert_null(cfg_from("budgets:\n  features:\n    chat: {max_cost: 1}\n"));
    assert_null(cfg_from("budgets:\n  tenants:\n    acme: {rate: 0/s}\n"));
    assert_null(cfg_from("budgets:\n  webhook: ftp://x\n"));
}

static void test_ledger_restart(void **state)
{
    char path[] = "/tmp/slodrill-ledger-XXXXXX", p2[96], err[256];
    struct ledger *l;
    int fd = mkstemp(path);
    (void)state;
    assert_true(fd >= 0);
    close(fd);
    unlink(path);
    l = ledger_open(path, err, sizeof err);
    assert_non_null(l);
    assert_true(ledger_spent(l, "tenant", "acme", "2025-08") == 0);
    assert_int_equal(ledger_add(l, "tenant", "acme", "2025-08", 1.25), 0);
    assert_int_equal(ledger_add(l, "tenant", "acme", "2025-08", 0.75), 0);
    assert_int_equal(ledger_add(l, "tenant", "acme", "2025-09", 5), 0);
    assert_int_equal(ledger_add(l, "user", "acme", "2025-08", 0.5), 0);
    assert_int_equal(ledger_cross(l, "tenant", "acme", "2025-08", 60), 1);
    assert_int_equal(ledger_cross(l, "tenant", "acme", "2025-08", 60), 0);
    assert_true(ledger_dirty(l));
    assert_int_equal(ledger_flush(l, err, sizeof err), 0);
    assert_false(ledger_dirty(l));
    assert_int_equal(ledger_add(l, "tenant", "acme", "2025-08", 1), 0); /* flushed by close */
    ledger_close(l);
    l = ledger_open(path, err, sizeof err);
    assert_non_null(l);
    assert_true(ledger_spent(l, "tenant", "acme", "2025-08") > 2.999 &&
                ledger_spent(l, "tenant", "acme", "2025-08") < 3.001);
    assert_true(ledger_spent(l, "tenant", "acme", "2025-09") == 5);
    assert_true(ledger_spent(l, "user", "acme", "2025-08") == 0.5);
    assert_true(ledger_spent(l, "tenant", "globex", "2025-08") == 0);
    /* a threshold event fires once per month, restarts included */
    assert_int_equal(ledger_cross(l, "tenant", "acme", "2025-08", 60), 0);
    assert_int_equal(ledger_cross(l, "tenant", "acme", "2025-08", 85), 1);
    ledger_close(l);
    assert_null(ledger_open("/nonexistent/dir/l.db", err, sizeof err));
    {
        char m[8];
        ledger_month(1754006400000LL, m, sizeof m); /* 2025-08-01T00:00:00Z */
        assert_string_equal(m, "2025-08");
    }
    unlink(path);
    snprintf(p2, sizeof p2, "%s-wal", path);
    unlink(p2);
    snprintf(p2, sizeof p2, "%s-shm", path);
    unlink(p2);
}

static void test_ratelimit(void **state)
{
    struct ratelimit *rl = ratelimit_new();
    int64_t ra;
    int i;
    (void)state;
    /* 2/s, burst 3: three at once, the fourth waits 500 ms */
    for (i = 0; i < 3; i++)
        assert_int_equal(ratelimit_take(rl, "acme", 2, 3, 1000, &ra), 1);
    assert_int_equal(ratelimit_take(rl, "acme", 2, 3, 1000, &ra), 0);
    assert_true(ra >= 500 && ra <= 501);
    /* another tenant has its own bucket */
    assert_int_equal(ratelimit_take(rl, "globex", 2, 3, 1000, &ra), 1);
    assert_int_equal(ratelimit_take(rl, "acme", 2, 3, 1400, &ra), 0);
    assert_true(ra >= 100 && ra <= 101);
    assert_int_equal(ratelimit_take(rl, "acme", 2, 3, 1500, &ra), 1);
    /* sustained: one per 500 ms */
    assert_int_equal(ratelimit_take(rl, "acme", 2, 3, 1600, &ra), 0);
    assert_int_equal(ratelimit_take(rl, "acme", 2, 3, 2000, &ra), 1);
    /* no rate: always allowed */
    assert_int_equal(ratelimit_take(rl, "acme", 0, 0, 2000, &ra), 1);
    ratelimit_free(rl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_within_limits), cmocka_unit_test(test_trim),
        cmocka_unit_test(test_cap),           cmocka_unit_test(test_cheaper),
        cmocka_unit_test(test_cache_then_reject), cmocka_unit_test(test_order_matters),
        cmocka_unit_test(test_safeguard),     cmocka_unit_test(test_levels_and_config),
        cmocka_unit_test(test_ledger_restart), cmocka_unit_test(test_ratelimit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
