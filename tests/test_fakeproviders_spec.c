/* test_fakeproviders_spec.c -- provider specs from YAML and the fault syntax, errors included. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "common/yamlx.h"
#include "fakeproviders/fake.h"

static int load(const char *text, struct fake_spec *s, char *err, size_t errlen)
{
    char lerr[256];
    struct ynode *root = yamlx_load_string("scn.yaml", text, strlen(text), lerr, sizeof lerr);
    int rc;
    if (root == NULL) {
        snprintf(err, errlen, "%s", lerr);
        return -2;
    }
    rc = fake_spec_from_yaml(root, s, err, errlen);
    yamlx_free(root);
    return rc;
}

static void yaml_full(void **state)
{
    struct fake_spec s;
    char err[256] = "";
    (void)state;
    assert_int_equal(load("name: secondary\n"
                          "dialect: anthropic\n"
                          "key: sk-ant-test-secondary\n"
                          "model: claude-test\n"
                          "listen: 127.0.0.1:18101\n"
                          "latency: { ttft_ms: { median: 450, p95: 1200 }, tokens_per_s: 60, "
                          "output_tokens: 120 }\n"
                          "fault_header: false\n"
                          "control_token: tok\n"
                          "seed: 9\n"
                          "threads: 3\n",
                          &s, err, sizeof err),
                     0);
    assert_string_equal(s.name, "secondary");
    assert_int_equal(s.dialect, FAKE_ANTHROPIC);
    assert_string_equal(s.key, "sk-ant-test-secondary");
    assert_string_equal(s.model, "claude-test");
    assert_string_equal(s.host, "127.0.0.1");
    assert_int_equal(s.port, 18101);
    assert_true(s.latency.ttft_median_ms == 450 && s.latency.ttft_p95_ms == 1200);
    assert_true(s.latency.tokens_per_s == 60 && s.latency.output_tokens_median == 120);
    assert_int_equal(s.fault_header, 0);
    assert_string_equal(s.control_token, "tok");
    assert_int_equal(s.seed, 9);
    assert_int_equal(s.threads, 3);
}

static void yaml_defaults(void **state)
{
    struct fake_spec s;
    char err[256] = "";
    (void)state;
    assert_int_equal(load("{ name: primary, dialect: openai, key: k }", &s, err, sizeof err), 0);
    assert_int_equal(s.dialect, FAKE_OPENAI);
    assert_int_equal(s.port, 0);
    assert_string_equal(s.host, "127.0.0.1");
    assert_true(s.latency.ttft_median_ms == 300 && s.latency.ttft_p95_ms == 900);
    assert_int_equal(s.fault_header, 1);
    assert_int_equal(s.seed, 1);
    assert_int_equal(s.threads, 0); /* one loop per CPU */
}

static void expect_err(const char *yaml, const char *want)
{
    struct fake_spec s;
    char err[256] = "";
    assert_int_equal(load(yaml, &s, err, sizeof err), -1);
    if (strstr(err, want) == NULL) fprintf(stderr, "error was: %s\n", err);
    assert_non_null(strstr(err, want));
}

static void yaml_errors(void **state)
{
    (void)state;
    expect_err("name: a\ndialect: gemini\n", "scn.yaml:2:10: unknown dialect 'gemini'");
    expect_err("name: a\nlisten: nowhere\n", "scn.yaml:2:9: listen 'nowhere' is not HOST:PORT");
    expect_err("name: a\nlatncy: {}\n", "scn.yaml:2:1: unknown key 'latncy'");
    expect_err("dialect: openai\n", "scn.yaml:1:1: a provider needs a name");
    expect_err("name: a\nlatency: { ttft_ms: { median: 500, p95: 100 } }\n",
               "is below the median");
    expect_err("name: a\nlatency: { tokens_per_s: 0 }\n", "tokens_per_s must be between");
    expect_err("name: a b\n", "may hold only letters");
    expect_err("name: a\nlatency: { ttft_ms: { median: 1, p59: 2 } }\n", "unknown key 'p59'");
    expect_err("name: a\nthreads: 9\n", "scn.yaml:2:10: threads must be 1 to 8 loop threads");
    expect_err("name: a\nthreads: -1\n", "threads must be 1 to 8");
    expect_err("name: a\nthreads: two\n", "scn.yaml:2:10:");
}

static void fault_syntax(void **state)
{
    struct fault_spec f;
    char err[256];
    (void)state;
    assert_int_equal(fault_spec_parse("http_error;status=503", &f, err, sizeof err), 0);
    assert_int_equal(f.kind, FAULT_HTTP_ERROR);
    assert_int_equal(f.status, 503);
    assert_true(f.probability == 1.0);
    assert_int_equal(fault_spec_parse("rate_limit; retry_after=2 ;mode=quota", &f, err, sizeof err),
                     0);
    assert_true(f.retry_after_s == 2.0);
    assert_string_equal(f.mode, "quota");
    assert_int_equal(fault_spec_parse("cut;after_events=3", &f, err, sizeof err), 0);
    assert_int_equal(f.after_events, 3);
    assert_string_equal(f.mode, "close");
    assert_int_equal(fault_spec_parse("slow_ttft;ms=1500;probability=0.25;key=sk-a;duration=30s",
                                      &f, err, sizeof err),
                     0);
    assert_true(f.ms == 1500 && f.probability == 0.25 && f.duration_s == 30);
    assert_string_equal(f.key, "sk-a");
    assert_int_equal(fault_spec_parse("egress_block;mode=blackhole;duration=500ms", &f, err,
                                      sizeof err),
                     0);
    assert_true(f.duration_s == 0.5);
    assert_int_equal(fault_spec_parse("revoke_key", &f, err, sizeof err), 0);
    assert_int_equal(f.kind, FAULT_REVOKE_KEY);

    assert_int_equal(fault_spec_parse("nope", &f, err, sizeof err), -1);
    assert_non_null(strstr(err, "unknown fault 'nope'"));
    assert_int_equal(fault_spec_parse("http_error;status=99", &f, err, sizeof err), -1);
    assert_non_null(strstr(err, "status=99"));
    assert_int_equal(fault_spec_parse("http_error;probability=1.5", &f, err, sizeof err), -1);
    assert_int_equal(fault_spec_parse("http_error;colour=red", &f, err, sizeof err), -1);
    assert_non_null(strstr(err, "unknown fault parameter 'colour'"));
    assert_int_equal(fault_spec_parse("egress_block;mode=drop", &f, err, sizeof err), -1);
    assert_non_null(strstr(err, "refuse|blackhole|reset"));
    assert_int_equal(fault_spec_parse("http_error;status", &f, err, sizeof err), -1);
    assert_int_equal(fault_spec_parse("slow_ttft;ms=abc", &f, err, sizeof err), -1);

    for (int k = 0; k < FAULT__COUNT; k++)
        assert_int_equal(fault_kind_from_name(fault_kind_name((enum fault_kind)k)), k);
    assert_int_equal(fault_kind_from_name("bogus"), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(yaml_full),
        cmocka_unit_test(yaml_defaults),
        cmocka_unit_test(yaml_errors),
        cmocka_unit_test(fault_syntax),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
