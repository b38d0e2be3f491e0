/* test_router_lint.c -- `slodrill lint`'s findings against golden files: each
 * tests/data/router_lint_NAME.yaml gives exactly the lines of router_lint_NAME.out,
 * in file order; positions point at the key; the kit's configs get only true findings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "router/lint.h"

struct out {
    const char *path;
    char text[32768];
    int n;
};

static void collect(const struct lint_finding *f, void *arg)
{
    struct out *o = arg;
    size_t off = strlen(o->text);
    snprintf(o->text + off, sizeof o->text - off, "%s:%d:%d: %s: %s\n", o->path, f->line, f->col,
             f->code, f->message);
    o->n++;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *s;
    long n;
    if (!f)
        fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    s = calloc(1, (size_t)n + 1);
    assert_non_null(s);
    assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    return s;
}

/* Lints tests/data/router_lint_NAME.yaml and compares with the .out file. */
static int golden(const char *name)
{
    char yaml[128], want_path[128], err[512];
    struct out o;
    char *want;
    int n;

    snprintf(yaml, sizeof yaml, "tests/data/router_lint_%s.yaml", name);
    snprintf(want_path, sizeof want_path, "tests/data/router_lint_%s.out", name);
    memset(&o, 0, sizeof o);
    o.path = yaml;
    n = lint_config(yaml, collect, &o, err, sizeof err);
    if (n < 0)
        fail_msg("%s", err);
    assert_int_equal(n, o.n);
    want = slurp(want_path);
    if (strcmp(o.text, want))
        fail_msg("%s: got\n%s\nwant\n%s", name, o.text, want);
    free(want);
    return n;
}

static int has(const struct out *o, const char *needle)
{
    return strstr(o->text, needle) != NULL;
}

static void settings_in_the_wrong_place(void **state)
{
    struct out o;
    char err[256];
    (void)state;
    assert_int_equal(golden("settings"), 8);
    memset(&o, 0, sizeof o);
    o.path = "s";
    assert_int_equal(lint_config("tests/data/router_lint_settings.yaml", collect, &o, err,
                                 sizeof err),
                     8);
    /* cooldown_time under litellm_settings: ignored by LiteLLM, at its key */
    assert_true(has(&o, "s:9:3: ignored-setting: 'cooldown_time' under litellm_settings"));
    assert_true(has(&o, "default cooldown of 5 s"));
    /* allowed_fails there: reaches the Router only as a global default */
    assert_true(has(&o, "s:10:3: fragile-placement: 'allowed_fails'"));
    /* num_retries in both: router_settings wins */
    assert_true(has(&o, "s:11:3: shadowed-setting: 'num_retries'"));
    assert_true(has(&o, "s:17:3: misspelt-key: 'enable_pre_call_check' in router_settings is not "
                        "a LiteLLM key (did you mean 'enable_pre_call_checks'?)"));
    assert_true(has(&o, "s:18:3: not-litellm: 'enable_weighted_failover'"));
    assert_true(has(&o, "(did you mean 'routing_strategy'?)"));
    assert_true(has(&o, "s:20:3: slodrill-only: 'slodrill_request_log'"));
    /* drop_params and retry_after are fine where they are */
    assert_false(has(&o, "drop_params"));
    assert_false(has(&o, "'retry_after'"));
}

static void deployments_that_multiply_or_mislead(void **state)
{
    struct out o;
    char err[256];
    (void)state;
    assert_int_equal(golden("deployments"), 7);
    memset(&o, 0, sizeof o);
    o.path = "d";
    assert_int_equal(lint_config("tests/data/router_lint_deployments.yaml", collect, &o, err,
                                 sizeof err),
                     7);
    /* (1 + 1) x (1 + 2) = 6 calls per request, 18 behind an SDK */
    assert_true(has(&o, "d:9:7: multiplied-retries: max_retries: 2"));
    assert_true(has(&o, "= 6 calls to this deployment per request"));
    assert_true(has(&o, "triples that to 18"));
    assert_false(has(&o, "d:17:")); /* max_retries: 0 multiplies nothing */
    assert_true(has(&o, "d:10:7: means-otherwise: stream_timeout"));
    assert_true(has(&o, "d:25:3: means-otherwise: stream_timeout")); /* router_settings too */
    assert_true(has(&o, "d:14:7: mixed-order: 'order' is set on 1 deployment of 'app/chat'"));
    assert_true(has(&o, "d:14:7: mixed-weight:"));
    assert_false(has(&o, "'app/cheap'")); /* one deployment: nothing is half set */
    assert_true(has(&o, "(did you mean 'stream_timeout'?)"));
    assert_true(has(&o, "d:20:5: misspelt-key: 'modle_info'"));
}

static void defaults_and_unknown_sections(void **state)
{
    (void)state;
    assert_int_equal(golden("defaults"), 2);
}

static void clean_config_has_nothing(void **state)
{
    (void)state;
    assert_int_equal(golden("clean"), 0);
}

static void kit_configs_only_true_findings(void **state)
{
    /* The kit's configs set stream_timeout per deployment: that, and nothing else. */
    const char *files[] = {"scenarios/configs/two-provider.yaml",
                           "scenarios/configs/single-provider.yaml"};
    const int want[] = {2, 1};
    size_t i;
    (void)state;
    for (i = 0; i < 2; i++) {
        struct out o;
        char err[256];
        const char *p;
        int n = 0;
        memset(&o, 0, sizeof o);
        o.path = files[i];
        assert_int_equal(lint_config(files[i], collect, &o, err, sizeof err), want[i]);
        for (p = o.text; (p = strstr(p, ": means-otherwise: stream_timeout")); p++)
            n++;
        assert_int_equal(n, want[i]);
    }
}

static void unreadable_and_broken(void **state)
{
    char err[256] = "";
    char path[] = "/tmp/slodrill-lint-XXXXXX";
    int fd;
    FILE *f;
    (void)state;
    assert_int_equal(lint_config("/nonexistent/config.yaml", NULL, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "/nonexistent/config.yaml"));
    fd = mkstemp(path);
    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    fputs("model_list:\n  - model_name: [unclosed\n", f);
    fclose(f);
    err[0] = '\0';
    assert_int_equal(lint_config(path, NULL, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, ":3:")); /* positioned */
    f = fopen(path, "w");
    fputs("- just\n- a list\n", f);
    fclose(f);
    assert_int_equal(lint_config(path, NULL, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "is a map"));
    remove(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(settings_in_the_wrong_place),
        cmocka_unit_test(deployments_that_multiply_or_mislead),
        cmocka_unit_test(defaults_and_unknown_sections),
        cmocka_unit_test(clean_config_has_nothing),
        cmocka_unit_test(kit_configs_only_true_findings),
        cmocka_unit_test(unreadable_and_broken),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
