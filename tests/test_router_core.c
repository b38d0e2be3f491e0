/* test_router_core.c -- the pure routing core on hand-made clocks: tiers, weights, retries,
 * cooldowns to the millisecond, failover classes, the all-cooling error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "router/config.h"
#include "router/core.h"
#include "router/router.h"

static struct router_config *load_text(const char *yaml)
{
    char path[] = "/tmp/slodrill-core-XXXXXX";
    char err[512];
    int fd = mkstemp(path);
    struct router_config *cfg;
    FILE *f;

    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    assert_non_null(f);
    fputs(yaml, f);
    fclose(f);
    cfg = router_config_load(path, NULL, NULL, NULL, NULL, err, sizeof err);
    unlink(path);
    if (!cfg)
        fail_msg("config: %s", err);
    return cfg;
}

static int dep_index(const struct router_config *cfg, const char *id)
{
    size_t i;
    for (i = 0; i < cfg->ndep; i++)
        if (!strcmp(cfg->dep[i].id, id))
            return (int)i;
    fail_msg("no deployment %s", id);
    return -1;
}

static const char *two_tiers =
    "model_list:\n"
    "  - model_name: app/chat\n"
    "    litellm_params: {model: openai/a, api_base: 'http://127.0.0.1:1/v1', order: 1, weight: 9}\n"
    "    model_info: {id: primary}\n"
    "  - model_name: app/chat\n"
    "    litellm_params: {model: openai/b, api_base: 'http://127.0.0.1:2/v1', order: 2, weight: 1}\n"
    "    model_info: {id: secondary}\n"
    "router_settings: {allowed_fails: 3, cooldown_time: 30}\n";

static void lowest_order_first(void **state)
{
    struct router_config *cfg = load_text(two_tiers);
    struct core *c = core_new(cfg, 7);
    int i, p = dep_index(cfg, "primary"), s = dep_index(cfg, "secondary");
    (void)state;

    for (i = 0; i < 1000; i++) {
        struct core_req *r = core_req_new(c, "app/chat");
        struct core_pick pk;
        assert_int_equal(core_next(c, r, 1000, &pk), 1);
        assert_int_equal(pk.dep, p);
        assert_int_equal(pk.attempt, 1);
        core_req_free(r);
    }
    /* With num_retries 0 a 503 moves straight to the next tier. */
    {
        struct core_req *r = core_req_new(c, "app/chat");
        struct core_pick pk;
        assert_int_equal(core_next(c, r, 1000, &pk), 1);
        assert_int_equal(core_report(c, r, pk.dep, CORE_RETRYABLE, 0, 1100, NULL), CORE_TRY_NEXT);
        assert_int_equal(core_next(c, r, 1100, &pk), 1);
        assert_int_equal(pk.dep, s);
        assert_int_equal(pk.attempt, 2);
        assert_int_equal(pk.fallbacks, 0);
        assert_int_equal(core_report(c, r, pk.dep, CORE_RETRYABLE, 0, 1200, NULL), CORE_TRY_NEXT);
        assert_int_equal(core_next(c, r, 1200, &pk), 0);
        assert_int_equal(core_req_attempts(r), 2);
        core_req_free(r);
    }
    assert_null(core_req_new(c, "no/such"));
    core_free(c);
    router_config_free(cfg);
}

static void weights_distribution(void **state)
{
    const char *yaml = "model_list:\n"
                       "  - {model_name: m, litellm_params: {model: openai/a, weight: 9}, model_info: {id: a}}\n"
                       "  - {model_name: m, litellm_params: {model: openai/b, weight: 1}, model_info: {id: b}}\n"
                       "  - {model_name: r, litellm_params: {model: openai/c, rpm: 300}, model_info: {id: c}}\n"
                       "  - {model_name: r, litellm_params: {model: openai/d, rpm: 100}, model_info: {id: d}}\n";
    struct router_config *cfg = load_text(yaml);
    struct core *c = core_new(cfg, 42), *c2 = core_new(cfg, 42);
    int i, na = 0, nc = 0, same = 1;
    int a = dep_index(cfg, "a"), cc = dep_index(cfg, "c");
    (void)state;

    for (i = 0; i < 10000; i++) {
        struct core_req *r = core_req_new(c, "m"), *r2 = core_req_new(c2, "m");
        struct core_pick pk, pk2;
        assert_int_equal(core_next(c, r, 0, &pk), 1);
        assert_int_equal(core_next(c2, r2, 0, &pk2), 1);
        na += pk.dep == a;
        same &= pk.dep == pk2.dep;
        core_req_free(r);
        core_req_free(r2);
        r = core_req_new(c, "r");
        assert_int_equal(core_next(c, r, 0, &pk), 1);
        nc += pk.dep == cc;
        core_req_free(r);
        r2 = core_req_new(c2, "r");
        assert_int_equal(core_next(c2, r2, 0, &pk2), 1);
        same &= pk.dep == pk2.dep;
        core_req_free(r2);
    }
    /* 9:1 -> 9000 expected; binomial sd is 30, so +-150 is 5 sd. */
    assert_in_range(na, 8850, 9150);
    /* rpm stands in for weight when none is given: 3:1 -> 7500, sd 43. */
    assert_in_range(nc, 7280, 7720);
    assert_true(same); /* the same seed gives the same picks */
    core_free(c);
    core_free(c2);
    router_config_free(cfg);
}

static void retry_counts_and_fallbacks(void **state)
{
    const char *yaml =
        "model_list:\n"
        "  - {model_name: a, litellm_params: {model: openai/a1}, model_info: {id: a1}}\n"
        "  - {model_name: a, litellm_params: {model: openai/a2}, model_info: {id: a2}}\n"
        "  - {model_name: a, litellm_params: {model: openai/a3}, model_info: {id: a3}}\n"
        "  - {model_name: b, litellm_params: {model: openai/b1}, model_info: {id: b1}}\n"
        "router_settings:\n"
        "  num_retries: 2\n"
        "  allowed_fails: 100\n"
        "  retry_after: 0.25\n"
        "  fallbacks: [{a: [b]}]\n";
    struct router_config *cfg = load_text(yaml);
    struct core *c = core_new(cfg, 1);
    struct core_req *r = core_req_new(c, "a");
    struct core_pick pk;
    int seen[4] = {0, 0, 0, 0}, n = 0, b1 = dep_index(cfg, "b1");
    int64_t t = 0;
    (void)state;

    while (core_next(c, r, t, &pk) == 1) {
        n++;
        assert_int_equal(pk.attempt, n);
        if (n <= 3) {
            /* in-group retries prefer deployments not tried yet */
            assert_int_equal(seen[pk.dep], 0);
            assert_int_equal(pk.fallbacks, 0);
            assert_int_equal(pk.delay_ms, n == 1 ? 0 : 250);
        } else {
            assert_int_equal(pk.dep, b1);
            assert_int_equal(pk.fallbacks, 1);
            assert_int_equal(pk.delay_ms, n == 4 ? 0 : 250);
        }
        seen[pk.dep]++;
        assert_int_equal(core_report(c, r, pk.dep, CORE_RETRYABLE, 0, t, NULL), CORE_TRY_NEXT);
        t += 10;
        assert_true(n < 20);
    }
    /* 1 + 2 retries in a, then 1 + 2 in the fallback b: never more. */
    assert_int_equal(n, 6);
    assert_int_equal(seen[b1], 3);
    assert_int_equal(core_req_fallbacks(r), 1);
    core_req_free(r);
    core_free(c);
    router_config_free(cfg);
}

static void cooldown_to_the_millisecond(void **state)
{
    const char *yaml =
        "model_list:\n"
        "  - {model_name: a, litellm_params: {model: openai/a1}, model_info: {id: a1}}\n"
        "router_settings: {allowed_fails: 2, cooldown_time: 5, num_retries: 0}\n";
    struct router_config *cfg = load_text(yaml);
    struct core *c = core_new(cfg, 1);
    struct core_effect eff;
    struct core_req *r;
    struct core_pick pk;
    int ended = 0;
    (void)state;

    /* Three failures spread over more than 60 s: never more than 2 within a minute. */
    r = core_req_new(c, "a");
    core_report(c, r, 0, CORE_RETRYABLE, 0, 0, &eff);
    core_report(c, r, 0, CORE_RETRYABLE, 0, 30000, &eff);
    core_report(c, r, 0, CORE_RETRYABLE, 0, 60000, &eff);
    assert_int_equal(eff.cooled, 0);
    assert_int_equal(core_is_cooling(c, 0, 60000), 0);
    /* 60000, 61000, 62000: the third within 60 s is one more than allowed_fails. */
    core_report(c, r, 0, CORE_RETRYABLE, 0, 61000, &eff);
    assert_int_equal(eff.cooled, 1);
    assert_int_equal(eff.until_ms, 66000);
    assert_int_equal(core_is_cooling(c, 0, 61000), 1);
    assert_int_equal(core_is_cooling(c, 0, 65999), 1);
    assert_int_equal(core_is_cooling(c, 0, 66000), 0);
    assert_int_equal(core_next_expiry(c), 66000);
    core_req_free(r);

    /* While cooling there is nowhere to move a request to; a new request
     * is given exactly one last-resort probe of the cooling deployment. */
    r = core_req_new(c, "a");
    assert_int_equal(core_can_continue(c, r, 65999), 0);
    assert_int_equal(core_can_continue(c, r, 66000), 1);
    assert_int_equal(core_next(c, r, 65999, &pk), 1);
    assert_int_equal(pk.probe, 1);
    assert_int_equal(pk.dep, 0);
    core_report(c, r, 0, CORE_RETRYABLE, 0, 65999, &eff);
    assert_int_equal(eff.cooled, 0);
    assert_int_equal(eff.recovered, 0);
    assert_int_equal(core_next(c, r, 65999, &pk), 0);
    core_req_free(r);
    r = core_req_new(c, "a");
    assert_int_equal(core_next(c, r, 66000, &pk), 1);
    core_req_free(r);
    assert_int_equal(core_expire(c, 65999, NULL, NULL), 0);
    assert_int_equal(core_expire(c, 66000, NULL, NULL), 1);
    (void)ended;
    assert_int_equal(core_next_expiry(c), -1);

    /* The count starts afresh after a cooldown: one failure does not re-cool. */
    r = core_req_new(c, "a");
    core_report(c, r, 0, CORE_RETRYABLE, 0, 66001, &eff);
    assert_int_equal(eff.cooled, 0);
    /* A 429 cools at once, for the provider's retry-after when it is longer. */
    core_report(c, r, 0, CORE_RATE_LIMIT, 12000, 70000, &eff);
    assert_int_equal(eff.cooled, 1);
    assert_int_equal(eff.until_ms, 82000);
    core_req_free(r);
    core_free(c);
    router_config_free(cfg);
}

struct expired {
    int dep[8];
    int n;
};

static void on_expired(int dep, void *arg)
{
    struct expired *e = arg;
    if (e->n < 8)
        e->dep[e->n++] = dep;
}

static void auth_cools_at_once(void **state)
{
    struct router_config *cfg = load_text(two_tiers);
    struct core *c = core_new(cfg, 3);
    int p = dep_index(cfg, "primary"), s = dep_index(cfg, "secondary");
    struct core_req *r = core_req_new(c, "app/chat");
    struct core_pick pk;
    struct core_effect eff;
    struct expired ex = {{0}, 0};
    (void)state;

    assert_int_equal(core_next(c, r, 5000, &pk), 1);
    assert_int_equal(pk.dep, p);
    assert_int_equal(core_classify(401, NULL), CORE_AUTH);
    assert_int_equal(core_report(c, r, p, CORE_AUTH, 0, 5010, &eff), CORE_TRY_NEXT);
    assert_int_equal(eff.cooled, 1);
    assert_int_equal(eff.until_ms, 35010);
    assert_int_equal(core_next(c, r, 5010, &pk), 1);
    assert_int_equal(pk.dep, s);
    assert_int_equal(core_report(c, r, s, CORE_OK, 0, 5300, &eff), CORE_DONE);
    assert_int_equal(eff.cooled, 0);
    core_req_free(r);

    /* Later requests go straight to the secondary until the cooldown ends. */
    r = core_req_new(c, "app/chat");
    assert_int_equal(core_next(c, r, 35009, &pk), 1);
    assert_int_equal(pk.dep, s);
    assert_int_equal(pk.attempt, 1);
    core_req_free(r);
    assert_int_equal(core_expire(c, 35010, on_expired, &ex), 1);
    assert_int_equal(ex.n, 1);
    assert_int_equal(ex.dep[0], p);
    r = core_req_new(c, "app/chat");
    assert_int_equal(core_next(c, r, 35010, &pk), 1);
    assert_int_equal(pk.dep, p);
    core_req_free(r);
    core_free(c);
    router_config_free(cfg);
}

static void client_fault_never_fails_over(void **state)
{
    struct router_config *cfg = load_text(two_tiers);
    struct core *c = core_new(cfg, 3);
    int p = dep_index(cfg, "primary");
    struct core_req *r = core_req_new(c, "app/chat");
    struct core_pick pk;
    struct core_effect eff;
    int i;
    (void)state;

    for (i = 0; i < 10; i++) {
        assert_int_equal(core_next(c, r, 100, &pk), 1);
        assert_int_equal(pk.dep, p);
        assert_int_equal(core_report(c, r, p, core_classify(400, "invalid_request_error"), 0, 100,
                                     &eff),
                         CORE_RETURN);
        assert_int_equal(eff.cooled, 0);
        core_req_free(r);
        r = core_req_new(c, "app/chat");
    }
    assert_int_equal(core_is_cooling(c, p, 100), 0);
    core_req_free(r);
    core_free(c);
    router_config_free(cfg);
}

static void can_continue_mirrors_next(void **state)
{
    struct router_config *cfg = load_text(two_tiers);
    struct core *c = core_new(cfg, 3);
    struct core_req *r = core_req_new(c, "app/chat");
    struct core_pick pk;
    int p = dep_index(cfg, "primary"), s = dep_index(cfg, "secondary");
    (void)state;

    assert_int_equal(core_can_continue(c, r, 1000), 1);
    assert_int_equal(core_next(c, r, 1000, &pk), 1);
    assert_int_equal(pk.dep, p);
    /* the primary's tier has spent its one attempt: only the secondary is left */
    assert_int_equal(core_can_continue(c, r, 1000), 1);
    core_cool(c, s, CORE_RETRYABLE, 0, 1000, NULL);
    assert_int_equal(core_can_continue(c, r, 1000), 0);
    assert_int_equal(core_next(c, r, 1000, &pk), 0);
    /* the check used no randomness and changed nothing: a new request still starts on tier 1 */
    core_req_free(r);
    r = core_req_new(c, "app/chat");
    assert_int_equal(core_can_continue(c, r, 1000), 1);
    assert_int_equal(core_next(c, r, 1000, &pk), 1);
    assert_int_equal(pk.dep, p);
    core_req_free(r);
    core_free(c);
    router_config_free(cfg);
}

static void all_cooling_error(void **state)
{
    struct router_config *cfg = load_text(two_tiers);
    struct core *c = core_new(cfg, 3);
    struct core_req *r = core_req_new(c, "app/chat");
    struct core_pick pk;
    char msg[512];
    int status;
    int64_t ra;
    (void)state;

    assert_int_equal(core_next(c, r, 1000, &pk), 1);
    core_report(c, r, pk.dep, CORE_AUTH, 0, 1000, NULL);
    assert_int_equal(core_next(c, r, 1000, &pk), 1);
    core_report(c, r, pk.dep, CORE_RATE_LIMIT, 40000, 2000, NULL);
    assert_int_equal(core_next(c, r, 2000, &pk), 0);
    core_req_summary(c, r, 2000, msg, sizeof msg, &status, &ra);
    assert_int_equal(status, 503); /* an auth failure is not the client's rate limit */
    assert_int_equal(ra, 29000);   /* primary returns at 31000 */
    assert_non_null(strstr(msg, "primary cooling down after auth, back in 29.0 s"));
    assert_non_null(strstr(msg, "secondary cooling down after rate_limit, back in 40.0 s"));
    core_req_free(r);

    /* A new request while both cool probes the primary (its cooldown ends
     * first, and it is not a rate limit) once; when that fails too, the
     * error names them both. */
    r = core_req_new(c, "app/chat");
    assert_int_equal(core_next(c, r, 3000, &pk), 1);
    assert_int_equal(pk.probe, 1);
    assert_string_equal(cfg->dep[pk.dep].id, "primary");
    core_report(c, r, pk.dep, CORE_AUTH, 0, 3000, NULL);
    assert_int_equal(core_next(c, r, 3000, &pk), 0);
    assert_int_equal(core_req_attempts(r), 1);
    core_req_summary(c, r, 3000, msg, sizeof msg, &status, &ra);
    assert_int_equal(status, 503);
    assert_int_equal(ra, 28000);
    assert_non_null(strstr(msg, "primary"));
    assert_non_null(strstr(msg, "secondary"));
    core_req_free(r);

    /* Only rate limits: 429. */
    core_expire(c, 100000, NULL, NULL);
    r = core_req_new(c, "app/chat");
    assert_int_equal(core_next(c, r, 100000, &pk), 1);
    core_report(c, r, pk.dep, core_classify(429, "rate_limit_exceeded"), 2000, 100000, NULL);
    assert_int_equal(core_next(c, r, 100000, &pk), 1);
    core_report(c, r, pk.dep, CORE_RATE_LIMIT, 0, 100000, NULL);
    assert_int_equal(core_next(c, r, 100000, &pk), 0);
    core_req_summary(c, r, 100000, msg, sizeof msg, &status, &ra);
    assert_int_equal(status, 429);
    assert_int_equal(ra, 30000);
    core_req_free(r);
    core_free(c);
    router_config_free(cfg);
}

/* The demo's trap: the primary cools for a revoked key, its key comes back,
 * then the secondary cools for slow first tokens. With every deployment
 * cooling, a probe finds the primary healthy and ends its cooldown early. */
static void probe_ends_cooldown(void **state)
{
    struct router_config *cfg = load_text(two_tiers);
    struct core *c = core_new(cfg, 5);
    struct core_req *r, *early;
    struct core_pick pk;
    struct core_effect eff;
    int i;
    (void)state;

    /* A stream that started on the primary before anything went wrong. */
    early = core_req_new(c, "app/chat");
    assert_int_equal(core_next(c, early, 7000, &pk), 1);
    r = core_req_new(c, "app/chat");
    assert_int_equal(core_next(c, r, 8000, &pk), 1);
    assert_string_equal(cfg->dep[pk.dep].id, "primary");
    core_report(c, r, pk.dep, CORE_AUTH, 0, 8000, &eff);
    assert_int_equal(eff.cooled, 1); /* until 38000 */
    core_req_free(r);
    for (i = 0; i < 4; i++) { /* four timeouts on the secondary: until 57000 */
        r = core_req_new(c, "app/chat");
        assert_int_equal(core_next(c, r, 27000 + i, &pk), 1);
        assert_string_equal(cfg->dep[pk.dep].id, "secondary");
        core_report(c, r, pk.dep, CORE_RETRYABLE, 0, 27000 + i, &eff);
        core_req_free(r);
    }
    assert_int_equal(eff.cooled, 1);
    /* The early stream ending well says nothing about the cooldown. */
    assert_int_equal(core_report(c, early, 0, CORE_OK, 0, 27500, &eff), CORE_DONE);
    assert_int_equal(eff.recovered, 0);
    assert_int_equal(core_is_cooling(c, 0, 27500), 1);
    core_req_free(early);
    r = core_req_new(c, "app/chat");
    assert_int_equal(core_next(c, r, 28000, &pk), 1);
    assert_int_equal(pk.probe, 1);
    assert_string_equal(cfg->dep[pk.dep].id, "primary");
    assert_int_equal(core_report(c, r, pk.dep, CORE_OK, 0, 28400, &eff), CORE_DONE);
    assert_int_equal(eff.recovered, 1);
    assert_int_equal(core_is_cooling(c, pk.dep, 28400), 0);
    core_req_free(r);
    /* The next request goes to the primary in the ordinary way. */
    r = core_req_new(c, "app/chat");
    assert_int_equal(core_next(c, r, 28500, &pk), 1);
    assert_int_equal(pk.probe, 0);
    assert_string_equal(cfg->dep[pk.dep].id, "primary");
    core_req_free(r);
    core_free(c);
    router_config_free(cfg);
}

static void classify_table(void **state)
{
    (void)state;
    assert_int_equal(core_classify(200, NULL), CORE_OK);
    assert_int_equal(core_classify(0, NULL), CORE_RETRYABLE);
    assert_int_equal(core_classify(408, NULL), CORE_RETRYABLE);
    assert_int_equal(core_classify(500, NULL), CORE_RETRYABLE);
    assert_int_equal(core_classify(502, NULL), CORE_RETRYABLE);
    assert_int_equal(core_classify(503, NULL), CORE_RETRYABLE);
    assert_int_equal(core_classify(504, NULL), CORE_RETRYABLE);
    assert_int_equal(core_classify(529, NULL), CORE_RETRYABLE);
    assert_int_equal(core_classify(429, "rate_limit_exceeded"), CORE_RATE_LIMIT);
    assert_int_equal(core_classify(429, "insufficient_quota"), CORE_AUTH);
    assert_int_equal(core_classify(401, "invalid_api_key"), CORE_AUTH);
    assert_int_equal(core_classify(403, NULL), CORE_AUTH);
    assert_int_equal(core_classify(400, NULL), CORE_CLIENT);
    assert_int_equal(core_classify(404, NULL), CORE_CLIENT);
    assert_int_equal(core_classify(413, NULL), CORE_CLIENT);
    assert_int_equal(core_classify(422, NULL), CORE_CLIENT);
}

static void unordered_after_ordered_and_preempt(void **state)
{
    const char *yaml =
        "model_list:\n"
        "  - {model_name: m, litellm_params: {model: openai/x}, model_info: {id: unordered}}\n"
        "  - {model_name: m, litellm_params: {model: openai/y, order: 5}, model_info: {id: ordered}}\n";
    struct router_config *cfg = load_text(yaml);
    struct core *c = core_new(cfg, 9);
    struct core_req *r = core_req_new(c, "m");
    struct core_pick pk;
    struct core_effect eff;
    (void)state;

    assert_int_equal(core_next(c, r, 0, &pk), 1);
    assert_int_equal(pk.dep, dep_index(cfg, "ordered"));
    /* Moved away because its deployment cooled meanwhile: not a new failure. */
    assert_int_equal(core_report(c, r, pk.dep, CORE_PREEMPTED, 0, 10, &eff), CORE_TRY_NEXT);
    assert_int_equal(eff.cooled, 0);
    assert_int_equal(core_next(c, r, 10, &pk), 1);
    assert_int_equal(pk.dep, dep_index(cfg, "unordered"));
    core_req_free(r);
    core_free(c);
    router_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(lowest_order_first),
        cmocka_unit_test(weights_distribution),
        cmocka_unit_test(retry_counts_and_fallbacks),
        cmocka_unit_test(cooldown_to_the_millisecond),
        cmocka_unit_test(auth_cools_at_once),
        cmocka_unit_test(client_fault_never_fails_over),
        cmocka_unit_test(all_cooling_error),
        cmocka_unit_test(probe_ends_cooldown),
        cmocka_unit_test(can_continue_mirrors_next),
        cmocka_unit_test(classify_table),
        cmocka_unit_test(unordered_after_ordered_and_preempt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
