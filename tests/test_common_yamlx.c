/* test_common_yamlx.c -- YAML tree, positions, typed reads and their error messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "common/yamlx.h"

static struct ynode *load(const char *text, char *err, size_t errlen)
{
    return yamlx_load_string("t.yaml", text, strlen(text), err, errlen);
}

static void positions(void **state)
{
    char err[256];
    struct ynode *r = load("a: 1\nlist:\n  - { x: 2s, y: 20/s }\n  - three\n", err, sizeof err);
    struct ynode *list, *m;
    double d;
    (void)state;
    assert_non_null(r);
    list = yamlx_get(r, "list");
    assert_int_equal(list->type, YNODE_SEQ);
    assert_int_equal(list->n, 2);
    m = list->items[0];
    assert_int_equal(m->line, 3);
    assert_int_equal(m->col, 5);
    assert_int_equal(yamlx_duration(yamlx_get(m, "x"), &d, err, sizeof err), 0);
    assert_true(d == 2.0);
    assert_int_equal(yamlx_rate(yamlx_get(m, "y"), &d, err, sizeof err), 0);
    assert_true(d == 20.0);
    assert_int_equal(yamlx_get(m, "y")->line, 3);
    assert_int_equal(yamlx_get(m, "y")->col, 17);
    yamlx_free(r);
}

static void typed_errors(void **state)
{
    char err[256];
    struct ynode *r = load("rate: fast\nn: 1.5\nb: maybe\n", err, sizeof err);
    double d;
    long l;
    int b;
    (void)state;
    assert_int_equal(yamlx_rate(yamlx_get(r, "rate"), &d, err, sizeof err), -1);
    assert_string_equal(err, "t.yaml:1:7: expected a positive rate such as 20/s, 600/m or 20, found 'fast'");
    assert_int_equal(yamlx_long(yamlx_get(r, "n"), &l, err, sizeof err), -1);
    assert_string_equal(err, "t.yaml:2:4: expected a whole number, found '1.5'");
    assert_int_equal(yamlx_bool(yamlx_get(r, "b"), &b, err, sizeof err), -1);
    assert_string_equal(err, "t.yaml:3:4: expected true or false, found 'maybe'");
    yamlx_free(r);
}

static void syntax_error_position(void **state)
{
    char err[256];
    struct ynode *r = load("a: 1\nb: [1, 2\nc: 3\n", err, sizeof err);
    (void)state;
    assert_null(r);
    assert_non_null(strstr(err, "t.yaml:"));
    assert_non_null(strstr(err, "YAML syntax error"));
}

static void refuses_aliases_and_duplicates(void **state)
{
    char err[256];
    (void)state;
    assert_null(load("a: &x 1\nb: *x\n", err, sizeof err));
    assert_string_equal(err, "t.yaml:2:4: YAML aliases (*name) are not supported; write the value out");
    assert_null(load("a: 1\nb: 2\na: 3\n", err, sizeof err));
    assert_string_equal(err, "t.yaml:3:1: duplicate key 'a' (first at line 1)");
}

static void unknown_keys(void **state)
{
    char err[256];
    static const char *const allowed[] = {"name", "duration", "rate", NULL};
    struct ynode *r = load("name: x\nduraton: 3s\n", err, sizeof err);
    (void)state;
    assert_int_equal(yamlx_check_keys(r, allowed, "traffic", err, sizeof err), -1);
    assert_string_equal(err, "t.yaml:2:1: unknown key 'duraton' in traffic; did you mean 'duration'?");
    yamlx_free(r);
    r = load("zzz: 1\n", err, sizeof err);
    assert_int_equal(yamlx_check_keys(r, allowed, "traffic", err, sizeof err), -1);
    assert_string_equal(err, "t.yaml:1:1: unknown key 'zzz' in traffic; expected one of: name, duration, rate");
    yamlx_free(r);
}

static void durations(void **state)
{
    double d;
    (void)state;
    assert_int_equal(yamlx_parse_duration("250ms", &d), 0);
    assert_true(d > 0.2499 && d < 0.2501);
    assert_int_equal(yamlx_parse_duration("2m", &d), 0);
    assert_true(d == 120.0);
    assert_int_equal(yamlx_parse_duration("1.5", &d), 0);
    assert_true(d == 1.5);
    assert_int_equal(yamlx_parse_duration("-1s", &d), -1);
    assert_int_equal(yamlx_parse_duration("3 weeks", &d), -1);
    assert_int_equal(yamlx_parse_rate("600/m", &d), 0);
    assert_true(d == 10.0);
    assert_int_equal(yamlx_parse_rate("0/s", &d), -1);
}

static void empty_and_deep(void **state)
{
    char err[256];
    char deep[400];
    size_t i;
    struct ynode *r = load("", err, sizeof err);
    (void)state;
    assert_non_null(r);
    assert_int_equal(r->type, YNODE_MAP);
    assert_int_equal(r->n, 0);
    yamlx_free(r);
    for (i = 0; i < 100; i++) deep[i] = '[';
    deep[100] = '\0';
    assert_null(load(deep, err, sizeof err));
    assert_non_null(strstr(err, "nesting deeper than 64"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(positions),      cmocka_unit_test(typed_errors),
        cmocka_unit_test(syntax_error_position), cmocka_unit_test(refuses_aliases_and_duplicates),
        cmocka_unit_test(unknown_keys),   cmocka_unit_test(durations),
        cmocka_unit_test(empty_and_deep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
