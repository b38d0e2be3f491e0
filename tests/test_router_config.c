/* test_router_config.c -- loading LiteLLM configs: values, os.environ, positioned errors, warnings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "router/config.h"
#include "router/router.h"

static const char *env_fn(const char *name, void *arg)
{
    (void)arg;
    if (!strcmp(name, "PROVIDER_A_KEY"))
        return "sk-a";
    if (!strcmp(name, "PROVIDER_A_API_BASE"))
        return "http://127.0.0.1:9001/v1/";
    if (!strcmp(name, "PROVIDER_B_KEY"))
        return "sk-ant-b";
    if (!strcmp(name, "PROVIDER_B_API_BASE"))
        return "http://127.0.0.1:9002";
    return NULL;
}

static const char *env_missing_b(const char *name, void *arg)
{
    if (!strcmp(name, "PROVIDER_B_KEY"))
        return NULL;
    return env_fn(name, arg);
}

struct warns {
    char text[4096];
    int n;
};

static void on_warn(const char *msg, void *arg)
{
    struct warns *w = arg;
    size_t off = strlen(w->text);
    snprintf(w->text + off, sizeof w->text - off, "%s\n", msg);
    w->n++;
}

static void loads_two_provider(void **state)
{
    char err[512];
    struct warns w;
    struct router_config *cfg;
    struct router_deploy_info info;
    (void)state;

    memset(&w, 0, sizeof w);
    cfg = router_config_load("tests/data/router_two_provider.yaml", env_fn, NULL, on_warn, &w,
                             err, sizeof err);
    if (!cfg)
        fail_msg("%s", err);
    assert_int_equal(router_config_count(cfg), 2);
    assert_int_equal(router_config_deployment(cfg, 0, &info), 0);
    assert_string_equal(info.id, "app/chat#1");
    assert_string_equal(info.provider, "127.0.0.1:9001");
    assert_string_equal(info.api_base, "http://127.0.0.1:9001/v1");
    assert_int_equal(info.order, 1);
    assert_true(info.weight == 9.0);
    assert_string_equal(cfg->dep[0].api_key, "sk-a");
    assert_string_equal(cfg->dep[0].upstream_model, "gpt-4o-mini");
    assert_int_equal(cfg->dep[0].stream_timeout_ms, 2000);
    assert_int_equal(cfg->dep[0].timeout_ms, 30000);
    assert_int_equal(cfg->dep[1].dialect, ROUTER_DIALECT_ANTHROPIC);
    assert_string_equal(cfg->dep[1].id, "app/chat#2");
    assert_string_equal(cfg->dep[1].upstream_model, "claude-3-5-haiku");
    assert_int_equal(cfg->cooldown_ms, 30000);
    assert_int_equal(cfg->allowed_fails, 3);
    assert_int_equal(cfg->num_retries, 0);
    assert_int_equal(router_config_deployment(cfg, 2, &info), -1);
    assert_string_equal(router_config_master_key(cfg), "sk-local-dev-key");
    /* warnings carry positions: the typo, the SDK retries, the ignored database_url */
    assert_non_null(strstr(w.text, "tests/data/router_two_provider.yaml:26:3: warning: unknown key 'colldown_time' in router_settings"));
    assert_non_null(strstr(w.text, "router_two_provider.yaml:12:20: warning: max_retries: 3"));
    assert_non_null(strstr(w.text, ":29:3: warning: 'database_url' in litellm_settings has no effect"));
    router_config_free(cfg);
}

static void unset_env_is_positioned(void **state)
{
    char err[512];
    struct router_config *cfg;
    (void)state;

    cfg = router_config_load("tests/data/router_two_provider.yaml", env_missing_b, NULL, NULL,
                             NULL, err, sizeof err);
    assert_null(cfg);
    assert_string_equal(err, "tests/data/router_two_provider.yaml:16:16: api_key reads environment "
                             "variable PROVIDER_B_KEY, which is not set; export PROVIDER_B_KEY or "
                             "write the value here");
}

static void bad_weight_is_positioned(void **state)
{
    char err[512];
    struct router_config *cfg;
    (void)state;

    cfg = router_config_load("tests/data/router_bad_weight.yaml", env_fn, NULL, NULL, NULL, err,
                             sizeof err);
    assert_null(cfg);
    assert_string_equal(err, "tests/data/router_bad_weight.yaml:5:15: weight must be a number "
                             "(got 'heavy'), e.g. weight: 9");
}

static void unknown_fallback_alias(void **state)
{
    char err[512];
    struct router_config *cfg;
    (void)state;

    cfg = router_config_load("tests/data/router_bad_fallback.yaml", env_fn, NULL, NULL, NULL, err,
                             sizeof err);
    assert_null(cfg);
    assert_non_null(strstr(err, "router_bad_fallback.yaml:5:16: fallbacks for 'app/chat' name 'app/backup'"));
}

static void missing_file(void **state)
{
    char err[512];
    (void)state;
    assert_null(router_config_load("tests/data/router_no_such.yaml", env_fn, NULL, NULL, NULL, err,
                                   sizeof err));
    assert_non_null(strstr(err, "router_no_such.yaml"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(loads_two_provider),
        cmocka_unit_test(unset_env_is_positioned),
        cmocka_unit_test(bad_weight_is_positioned),
        cmocka_unit_test(unknown_fallback_alias),
        cmocka_unit_test(missing_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
