/* test_router_strategy.c -- routing strategies in the pure core on hand-made clocks:
 * least-busy by in-flight counts, latency-based-routing by TTFT EWMA with its ttl and
 * buffer, rpm/tpm standing in for weight, pinned requests; then the same strategies
 * through the proxy between real fakes (the proxy feeds the core its counts and TTFTs). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "router/config.h"
#include "router/core.h"
#include "router/router.h"
#include "test_router_util.h"

static struct router_config *load_text(const char *yaml)
{
    char path[] = "/tmp/slodrill-strat-XXXXXX";
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

/* Three deployments of one alias in one tier; settings appended. */
static char *three(const char *settings)
{
    static char buf[2048];
    snprintf(buf, sizeof buf,
             "model_list:\n"
             "  - model_name: app/chat\n"
             "    litellm_params: {model: openai/a, api_base: 'http://127.0.0.1:1/v1', weight: 1}\n"
             "    model_info: {id: a}\n"
             "  - model_name: app/chat\n"
             "    litellm_params: {model: openai/b, api_base: 'http://127.0.0.1:2/v1', weight: 1}\n"
             "    model_info: {id: b}\n"
             "  - model_name: app/chat\n"
             "    litellm_params: {model: openai/c, api_base: 'http://127.0.0.1:3/v1', weight: 1}\n"
             "    model_info: {id: c}\n"
             "router_settings:\n%s",
             settings);
    return buf;
}

/* The deployment the next new request's first attempt goes to. */
static int first_pick(struct core *c, int64_t now)
{
    struct core_req *r = core_req_new(c, "app/chat");
    struct core_pick pk;
    int d;
    assert_non_null(r);
    assert_int_equal(core_next(c, r, now, &pk), 1);
    d = pk.dep;
    core_req_free(r);
    return d;
}

static void config_reads_strategies(void **state)
{
    struct router_config *cfg;
    (void)state;
    cfg = load_text(three("  routing_strategy: least-busy\n"));
    assert_int_equal(cfg->strategy, ROUTER_STRATEGY_LEAST_BUSY);
    router_config_free(cfg);
    cfg = load_text(three("  routing_strategy: latency-based-routing\n"
                          "  routing_strategy_args: {ttl: 30, lowest_latency_buffer: 0.5}\n"));
    assert_int_equal(cfg->strategy, ROUTER_STRATEGY_LATENCY);
    assert_int_equal(cfg->latency_ttl_ms, 30000);
    assert_true(fabs(cfg->latency_buffer - 0.5) < 1e-12);
    router_config_free(cfg);
    cfg = load_text(three("  num_retries: 0\n"));
    assert_int_equal(cfg->strategy, ROUTER_STRATEGY_SHUFFLE);
    assert_int_equal(cfg->latency_ttl_ms, 3600000); /* LiteLLM's default: an hour */
    router_config_free(cfg);
}

static void least_busy_picks_fewest_in_flight(void **state)
{
    struct router_config *cfg = load_text(three("  routing_strategy: least-busy\n"));
    struct core *c = core_new(cfg, 3);
    int a = dep_index(cfg, "a"), b = dep_index(cfg, "b"), cc = dep_index(cfg, "c");
    int i, seen[3] = {0, 0, 0};
    (void)state;

    core_inflight(c, a, +1);
    core_inflight(c, a, +1);
    core_inflight(c, b, +1);
    for (i = 0; i < 200; i++)
        assert_int_equal(first_pick(c, 1000), cc);
    /* c is busy too: now b and c tie with one each, a has two */
    core_inflight(c, cc, +1);
    for (i = 0; i < 400; i++) {
        int d = first_pick(c, 1000);
        assert_true(d == b || d == cc);
        seen[d]++;
    }
    assert_true(seen[b] > 100 && seen[cc] > 100); /* ties go by weight (1:1) */
    /* a's attempts end: a is the least busy again; counts never go negative */
    core_inflight(c, a, -1);
    core_inflight(c, a, -1);
    core_inflight(c, a, -1);
    assert_int_equal(core_inflight_get(c, a), 0);
    assert_int_equal(first_pick(c, 1000), a);
    core_free(c);
    router_config_free(cfg);
}

static void least_busy_driven_like_the_proxy(void **state)
{
    /* Each pick starts an attempt that stays in flight: 30 requests spread 10/10/10. */
    struct router_config *cfg = load_text(three("  routing_strategy: least-busy\n"));
    struct core *c = core_new(cfg, 5);
    int i, n[3] = {0, 0, 0};
    (void)state;

    for (i = 0; i < 30; i++) {
        int d = first_pick(c, 1000);
        core_inflight(c, d, +1);
        n[d]++;
    }
    assert_int_equal(n[0], 10);
    assert_int_equal(n[1], 10);
    assert_int_equal(n[2], 10);
    core_free(c);
    router_config_free(cfg);
}

static void latency_ewma_and_ttl(void **state)
{
    struct router_config *cfg =
        load_text(three("  routing_strategy: latency-based-routing\n"
                        "  routing_strategy_args: {ttl: 10}\n"));
    struct core *c = core_new(cfg, 9);
    int a = dep_index(cfg, "a"), b = dep_index(cfg, "b"), cc = dep_index(cfg, "c");
    int i;
    (void)state;

    assert_true(core_latency_ms(c, a, 1000) < 0); /* never measured */
    core_observe_ttft(c, a, 100, 1000);
    assert_true(fabs(core_latency_ms(c, a, 1000) - 100) < 1e-9);
    core_observe_ttft(c, a, 200, 2000); /* 0.3 x 200 + 0.7 x 100 */
    assert_true(fabs(core_latency_ms(c, a, 2000) - 130) < 1e-9);
    core_observe_ttft(c, b, 50, 2000);
    /* c was never measured: it counts as 0 ms and is tried first */
    for (i = 0; i < 50; i++)
        assert_int_equal(first_pick(c, 2000), cc);
    core_observe_ttft(c, cc, 400, 2000);
    for (i = 0; i < 100; i++)
        assert_int_equal(first_pick(c, 2000), b);
    /* b slows down: three slow first tokens pull its EWMA past a's 130 */
    core_observe_ttft(c, b, 300, 3000); /* 125 */
    assert_int_equal(first_pick(c, 3000), b);
    core_observe_ttft(c, b, 300, 3500); /* 177.5 */
    assert_true(fabs(core_latency_ms(c, b, 3500) - 177.5) < 1e-9);
    assert_int_equal(first_pick(c, 3500), a);
    core_observe_ttft(c, cc, 400, 3500);
    /* ttl 10 s: a's last sample (at 2 s) still holds at 12 s, and is forgotten
     * after: a is unmeasured again and is tried, while b's and c's (3.5 s) hold */
    assert_true(fabs(core_latency_ms(c, a, 12000) - 130) < 1e-9);
    assert_int_equal(first_pick(c, 12001), a);
    assert_true(core_latency_ms(c, a, 12001) < 0);
    assert_true(core_latency_ms(c, b, 12001) > 0);
    /* a fresh sample after the ttl starts the EWMA afresh, not from the old value */
    core_observe_ttft(c, a, 500, 12001);
    assert_true(fabs(core_latency_ms(c, a, 12001) - 500) < 1e-9);
    assert_int_equal(first_pick(c, 12001), b);
    core_free(c);
    router_config_free(cfg);
}

static void latency_buffer_spreads_near_ties(void **state)
{
    struct router_config *cfg =
        load_text(three("  routing_strategy: latency-based-routing\n"
                        "  routing_strategy_args: {lowest_latency_buffer: 0.5}\n"));
    struct core *c = core_new(cfg, 11);
    int a = dep_index(cfg, "a"), b = dep_index(cfg, "b"), cc = dep_index(cfg, "c");
    int i, n[3] = {0, 0, 0};
    (void)state;

    core_observe_ttft(c, a, 100, 1000);
    core_observe_ttft(c, b, 140, 1000); /* within 1.5 x 100 */
    core_observe_ttft(c, cc, 151, 1000); /* just outside */
    for (i = 0; i < 1000; i++)
        n[first_pick(c, 1000)]++;
    assert_int_equal(n[cc], 0);
    assert_true(n[a] > 400 && n[b] > 400);
    core_free(c);
    router_config_free(cfg);
}

static void latency_respects_tiers_and_cooldowns(void **state)
{
    /* Strategy works inside a tier: the slow primary tier still goes first, and
     * a cooling fast deployment is not picked. */
    struct router_config *cfg = load_text(
        "model_list:\n"
        "  - model_name: app/chat\n"
        "    litellm_params: {model: openai/a, api_base: 'http://127.0.0.1:1/v1', order: 1}\n"
        "    model_info: {id: a}\n"
        "  - model_name: app/chat\n"
        "    litellm_params: {model: openai/b, api_base: 'http://127.0.0.1:2/v1', order: 1}\n"
        "    model_info: {id: b}\n"
        "  - model_name: app/chat\n"
        "    litellm_params: {model: openai/c, api_base: 'http://127.0.0.1:3/v1', order: 2}\n"
        "    model_info: {id: c}\n"
        "router_settings: {routing_strategy: latency-based-routing, cooldown_time: 5}\n");
    struct core *c = core_new(cfg, 13);
    int a = dep_index(cfg, "a"), b = dep_index(cfg, "b"), cc = dep_index(cfg, "c");
    struct core_effect eff;
    struct core_req *r;
    struct core_pick pk;
    (void)state;

    core_observe_ttft(c, a, 900, 1000);
    core_observe_ttft(c, b, 100, 1000);
    core_observe_ttft(c, cc, 1, 1000);
    assert_int_equal(first_pick(c, 1000), b);
    r = core_req_new(c, "app/chat");
    assert_int_equal(core_next(c, r, 1000, &pk), 1);
    assert_int_equal(pk.dep, b);
    core_report(c, r, b, CORE_AUTH, 0, 1000, &eff); /* 401: cooled at once */
    assert_int_equal(eff.cooled, 1);
    core_req_free(r);
    assert_int_equal(first_pick(c, 2000), a);
    assert_int_equal(first_pick(c, 6001), b); /* cooldown over */
    core_free(c);
    router_config_free(cfg);
}

static void rpm_and_tpm_stand_in_for_weight(void **state)
{
    struct router_config *cfg = load_text(
        "model_list:\n"
        "  - model_name: app/chat\n"
        "    litellm_params: {model: openai/a, api_base: 'http://127.0.0.1:1/v1', rpm: 900}\n"
        "    model_info: {id: a}\n"
        "  - model_name: app/chat\n"
        "    rpm: 100\n"
        "    litellm_params: {model: openai/b, api_base: 'http://127.0.0.1:2/v1'}\n"
        "    model_info: {id: b}\n"
        "  - model_name: app/other\n"
        "    litellm_params: {model: openai/c, api_base: 'http://127.0.0.1:3/v1', tpm: 3000}\n"
        "    model_info: {id: c}\n"
        "  - model_name: app/other\n"
        "    litellm_params: {model: openai/d, api_base: 'http://127.0.0.1:4/v1', tpm: 1000, "
        "weight: 3000}\n"
        "    model_info: {id: d}\n");
    struct core *c = core_new(cfg, 17);
    int a = dep_index(cfg, "a"), n_a = 0, i;
    (void)state;

    assert_true(fabs(cfg->dep[a].weight - 900) < 1e-9);
    assert_true(fabs(cfg->dep[dep_index(cfg, "b")].weight - 100) < 1e-9);
    assert_true(fabs(cfg->dep[dep_index(cfg, "c")].weight - 3000) < 1e-9);
    assert_true(fabs(cfg->dep[dep_index(cfg, "d")].weight - 3000) < 1e-9); /* weight wins */
    for (i = 0; i < 10000; i++)
        if (first_pick(c, 1000) == a)
            n_a++;
    assert_true(n_a > 8800 && n_a < 9200); /* 90 % within a few sigma */
    core_free(c);
    router_config_free(cfg);
}

static void pinned_request_skips_the_choice(void **state)
{
    struct router_config *cfg = load_text(
        "model_list:\n"
        "  - model_name: app/chat\n"
        "    litellm_params: {model: openai/a, api_base: 'http://127.0.0.1:1/v1', order: 1}\n"
        "    model_info: {id: primary}\n"
        "  - model_name: app/chat\n"
        "    litellm_params: {model: openai/b, api_base: 'http://127.0.0.1:2/v1', order: 2}\n"
        "    model_info: {id: secondary}\n"
        "  - model_name: app/other\n"
        "    litellm_params: {model: openai/c, api_base: 'http://127.0.0.1:3/v1'}\n"
        "    model_info: {id: other}\n"
        "router_settings: {num_retries: 1, retry_after: 0.25, cooldown_time: 30,\n"
        "                  fallbacks: [{app/chat: [app/other]}]}\n");
    struct core *c = core_new(cfg, 19);
    int p = dep_index(cfg, "primary"), s = dep_index(cfg, "secondary");
    struct core_req *r;
    struct core_pick pk;
    struct core_effect eff;
    int i;
    (void)state;

    /* the secondary, never the primary tier that would come first */
    for (i = 0; i < 50; i++) {
        r = core_req_new(c, "app/chat");
        core_req_pin(r, s);
        assert_int_equal(core_next(c, r, 1000, &pk), 1);
        assert_int_equal(pk.dep, s);
        assert_int_equal(pk.probe, 0);
        core_req_free(r);
    }
    /* 1 + num_retries attempts on it, spaced by retry_after; no failover, no fallbacks */
    r = core_req_new(c, "app/chat");
    core_req_pin(r, s);
    assert_int_equal(core_next(c, r, 1000, &pk), 1);
    assert_int_equal(pk.delay_ms, 0);
    assert_int_equal(core_report(c, r, s, CORE_RETRYABLE, 0, 1100, NULL), CORE_TRY_NEXT);
    assert_false(core_can_continue(c, r, 1100)); /* nowhere else to move to */
    assert_int_equal(core_next(c, r, 1100, &pk), 1);
    assert_int_equal(pk.dep, s);
    assert_int_equal(pk.attempt, 2);
    assert_int_equal(pk.delay_ms, 250);
    assert_int_equal(core_report(c, r, s, CORE_RETRYABLE, 0, 1200, NULL), CORE_TRY_NEXT);
    assert_int_equal(core_next(c, r, 1200, &pk), 0);
    core_req_free(r);
    /* a cooling deployment is still tried when pinned; its success ends the cooldown */
    r = core_req_new(c, "app/chat");
    assert_int_equal(core_next(c, r, 2000, &pk), 1);
    assert_int_equal(pk.dep, p);
    core_report(c, r, p, CORE_AUTH, 0, 2000, &eff);
    assert_int_equal(eff.cooled, 1);
    core_req_free(r);
    assert_true(core_is_cooling(c, p, 2500));
    r = core_req_new(c, "app/chat");
    core_req_pin(r, p);
    assert_int_equal(core_next(c, r, 2500, &pk), 1);
    assert_int_equal(pk.dep, p);
    assert_int_equal(pk.probe, 1); /* a pinned attempt on a cooling deployment probes it */
    assert_int_equal(core_report(c, r, p, CORE_OK, 0, 2600, &eff), CORE_DONE);
    assert_int_equal(eff.recovered, 1);
    assert_false(core_is_cooling(c, p, 2600));
    core_req_free(r);
    /* an auth failure on the pinned deployment ends the request at once */
    r = core_req_new(c, "app/chat");
    core_req_pin(r, p);
    assert_int_equal(core_next(c, r, 3000, &pk), 1);
    core_report(c, r, p, CORE_AUTH, 0, 3000, NULL);
    assert_int_equal(core_next(c, r, 3000, &pk), 0);
    core_req_free(r);
    core_free(c);
    router_config_free(cfg);
}

/* ---- through the proxy ---- */

static const char *proxy_yaml_fmt =
    "model_list:\n"
    "  - model_name: app/chat\n"
    "    litellm_params: {model: openai/p, api_base: os.environ/P_BASE, api_key: os.environ/P_KEY}\n"
    "    model_info: {id: primary}\n"
    "  - model_name: app/chat\n"
    "    litellm_params: {model: openai/s, api_base: os.environ/S_BASE, api_key: os.environ/S_KEY}\n"
    "    model_info: {id: secondary}\n"
    "router_settings: {routing_strategy: %s}\n";

#define CHAT "{\"model\":\"app/chat\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"

static void start_world(struct rw *w, const char *strategy)
{
    char yaml[1024];
    struct fake_spec ps, ss;
    snprintf(yaml, sizeof yaml, proxy_yaml_fmt, strategy);
    rw_spec(&ps, "primary", FAKE_OPENAI);
    rw_spec(&ss, "secondary", FAKE_OPENAI);
    if (rw_start(w, yaml, &ps, &ss) != 0)
        fail_msg("world did not start");
}

/* Who served one plain request. */
static void served_by(struct rw *w, char *out, size_t n)
{
    struct rw_reply r;
    rw_request(w, "/v1/chat/completions", CHAT, NULL, 10000, &r);
    assert_int_equal(r.status, 200);
    rw_hdr(&r, "x-slodrill-deployment", out, n);
    rw_reply_free(&r);
}

static void add_fault(struct fake *f, const char *text)
{
    struct fault_spec fs;
    char err[256];
    if (fault_spec_parse(text, &fs, err, sizeof err) != 0)
        fail_msg("fault %s: %s", text, err);
    assert_int_equal(fake_fault_add(f, &fs), 0);
}

static void proxy_latency_based_learns_the_slow_one(void **state)
{
    /* The primary takes 150 ms to its first byte, the secondary 5 ms. Once
     * both are measured, every request goes to the secondary. */
    struct rw w;
    char who[64];
    int i, n_sec = 0;
    (void)state;
    start_world(&w, "latency-based-routing");
    add_fault(w.primary, "slow_ttft;ms=150");
    served_by(&w, who, sizeof who); /* both unmeasured: either */
    served_by(&w, who, sizeof who); /* the other one, still unmeasured */
    for (i = 0; i < 10; i++) {
        served_by(&w, who, sizeof who);
        if (!strcmp(who, "secondary"))
            n_sec++;
    }
    rw_stop(&w);
    assert_int_equal(n_sec, 10);
}

static void proxy_least_busy_avoids_the_busy_one(void **state)
{
    /* A slow stream holds one attempt open on whichever deployment it got;
     * every plain request meanwhile goes to the other one. */
    struct rw w;
    CURLM *m;
    CURL *e;
    struct curl_slist *h;
    struct rw_reply sink;
    char url[160], who[64], busy[64] = "";
    int i, running = 1, n_other = 0;
    uint64_t t0;
    (void)state;
    start_world(&w, "least-busy");
    add_fault(w.primary, "slow_tokens;ms=400");
    add_fault(w.secondary, "slow_tokens;ms=400");
    memset(&sink, 0, sizeof sink);
    m = curl_multi_init();
    e = curl_easy_init();
    h = curl_slist_append(NULL, "Content-Type: application/json");
    snprintf(url, sizeof url, "%s/v1/chat/completions", w.url);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS,
                     "{\"model\":\"app/chat\",\"stream\":true,\"messages\":[{\"role\":\"user\","
                     "\"content\":\"hi\"}]}");
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, rw_hdr_cb);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, &sink);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, rw_body_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 20000L);
    curl_multi_add_handle(m, e);
    /* until the stream has its headers: then we know where it is */
    t0 = clock_mono_us();
    while (running && !busy[0] && clock_mono_us() - t0 < 5000000u) {
        curl_multi_perform(m, &running);
        curl_multi_poll(m, NULL, 0, 20, NULL);
        rw_hdr(&sink, "x-slodrill-deployment", busy, sizeof busy);
    }
    assert_true(busy[0] != '\0');
    /* the idle one answers fast again; the busy one's stream stays slow (3 s) */
    fake_fault_clear(strcmp(busy, "primary") ? w.primary : w.secondary, -1);
    for (i = 0; i < 8; i++) {
        served_by(&w, who, sizeof who);
        if (strcmp(who, busy))
            n_other++;
    }
    curl_multi_remove_handle(m, e);
    curl_easy_cleanup(e);
    curl_slist_free_all(h);
    curl_multi_cleanup(m);
    rw_reply_free(&sink);
    rw_stop(&w);
    assert_int_equal(n_other, 8);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(config_reads_strategies),
        cmocka_unit_test(least_busy_picks_fewest_in_flight),
        cmocka_unit_test(least_busy_driven_like_the_proxy),
        cmocka_unit_test(latency_ewma_and_ttl),
        cmocka_unit_test(latency_buffer_spreads_near_ties),
        cmocka_unit_test(latency_respects_tiers_and_cooldowns),
        cmocka_unit_test(rpm_and_tpm_stand_in_for_weight),
        cmocka_unit_test(pinned_request_skips_the_choice),
        cmocka_unit_test(proxy_latency_based_learns_the_slow_one),
        cmocka_unit_test(proxy_least_busy_avoids_the_busy_one),
    };
    rw_global_init();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
