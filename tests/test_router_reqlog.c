/* test_router_reqlog.c -- the router's request log: the writer alone (N records -> N rows,
 * batched, bounded), then the router between real fakes writing one row per client request
 * with who served, attempts, hops, tokens, cost, tenant/user/feature, pins and failures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <sqlite3.h>

#include "test_router_util.h"
#include "router/reqlog.h"

static void tmp_db(char *path, size_t n)
{
    int fd;
    snprintf(path, n, "/tmp/slodrill-reqlog-XXXXXX");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    unlink(path);
}

static void rm_db(const char *path)
{
    char p[256];
    unlink(path);
    snprintf(p, sizeof p, "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", path);
    unlink(p);
}

/* One integer from a query. */
static long long q_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *s = NULL;
    long long v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    if (sqlite3_step(s) == SQLITE_ROW)
        v = sqlite3_column_type(s, 0) == SQLITE_NULL ? -999 : sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return v;
}

static void writer_alone(void **state)
{
    char path[64];
    char err[256];
    struct reqlog *l;
    struct reqlog_stats st;
    sqlite3 *db;
    int i;
    (void)state;

    tmp_db(path, sizeof path);
    l = reqlog_open(path, err, sizeof err);
    if (!l)
        fail_msg("%s", err);
    for (i = 0; i < 5000; i++) {
        struct reqlog_rec r;
        memset(&r, 0, sizeof r);
        snprintf(r.request_id, sizeof r.request_id, "r-%d", i);
        r.start_wall_us = 1700000000000000ull + (uint64_t)i * 1000;
        r.ttft_ms = i % 2 ? 12.5 : -1;
        r.duration_ms = 40;
        r.status = i % 2 ? 200 : 503;
        snprintf(r.outcome, sizeof r.outcome, "%s", i % 2 ? "ok" : "retryable_error");
        snprintf(r.alias, sizeof r.alias, "app/chat");
        snprintf(r.deployment, sizeof r.deployment, "primary");
        r.attempts = 1 + i % 3;
        r.input_tokens = i % 2 ? 10 : -1;
        r.output_tokens = -1;
        r.cost_usd = i % 2 ? 0.001 : -1;
        snprintf(r.tenant, sizeof r.tenant, "t%d", i % 7);
        assert_int_equal(reqlog_add(l, &r), 0);
    }
    assert_int_equal(reqlog_flush(l, 5000), 0);
    reqlog_stats_get(l, &st);
    assert_int_equal(st.queued, 5000);
    assert_int_equal(st.written, 5000);
    assert_int_equal(st.dropped, 0);
    /* readable by another connection while the writer is open (WAL) */
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(q_int(db, "SELECT count(*) FROM requests"), 5000);
    assert_int_equal(q_int(db, "SELECT count(*) FROM requests WHERE ttft_ms IS NULL"), 2500);
    assert_int_equal(q_int(db, "SELECT count(*) FROM requests WHERE outcome='ok' AND status=200"),
                     2500);
    assert_int_equal(q_int(db, "SELECT sum(attempts) FROM requests"), 5000 / 3 * 6 + 1 + 2);
    assert_int_equal(q_int(db, "SELECT count(*) FROM requests WHERE cost_usd IS NULL"), 2500);
    assert_int_equal(q_int(db, "SELECT count(DISTINCT tenant) FROM requests"), 7);
    assert_int_equal(q_int(db, "SELECT count(*) FROM requests WHERE started_at LIKE "
                               "'2023-11-14T22:13:2%Z'"),
                     5000);
    sqlite3_close(db);
    reqlog_close(l);
    rm_db(path);
}

static void unwritable_path_is_an_error(void **state)
{
    char err[256] = "";
    (void)state;
    assert_null(reqlog_open("/nonexistent-dir/x/requests.db", err, sizeof err));
    assert_non_null(strstr(err, "/nonexistent-dir/x/requests.db"));
}

/* ---- the router writing it ---- */

static const char *yaml_fmt =
    "model_list:\n"
    "  - model_name: app/chat\n"
    "    litellm_params:\n"
    "      model: openai/gpt-p\n"
    "      api_base: os.environ/P_BASE\n"
    "      api_key: os.environ/P_KEY\n"
    "      order: 1\n"
    "      input_cost_per_token: 0.000001\n"
    "      output_cost_per_token: 0.000002\n"
    "    model_info: {id: primary}\n"
    "  - model_name: app/chat\n"
    "    litellm_params:\n"
    "      model: anthropic/claude-s\n"
    "      api_base: os.environ/S_BASE\n"
    "      api_key: os.environ/S_KEY\n"
    "      order: 2\n"
    "    model_info: {id: secondary}\n"
    "router_settings: {allowed_fails: 100, cooldown_time: 1, slodrill_request_log: '%s'}\n";

#define BODY "\"messages\":[{\"role\":\"user\",\"content\":\"Hello there, how are you?\"}]"

static void add_fault(struct fake *f, const char *text)
{
    struct fault_spec fs;
    char err[256];
    if (fault_spec_parse(text, &fs, err, sizeof err) != 0)
        fail_msg("fault %s: %s", text, err);
    assert_int_equal(fake_fault_add(f, &fs), 0);
}

/* Sends one request and returns its status; id receives x-slodrill-request-id. */
static long chat(struct rw *w, const char *body, const char *extra, char *id, size_t idlen)
{
    struct rw_reply r;
    long st;
    rw_request(w, "/v1/chat/completions", body, extra, 10000, &r);
    assert_int_equal(r.result, CURLE_OK);
    rw_hdr(&r, "x-slodrill-request-id", id, idlen);
    st = r.status;
    rw_reply_free(&r);
    return st;
}

/* Column text of the row with request_id id ("" for NULL). */
static void row_text(sqlite3 *db, const char *id, const char *col, char *out, size_t n)
{
    char sql[256];
    sqlite3_stmt *s = NULL;
    snprintf(sql, sizeof sql, "SELECT %s FROM requests WHERE request_id = ?", col);
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    out[0] = '\0';
    if (sqlite3_step(s) != SQLITE_ROW)
        fail_msg("no row for request %s", id);
    if (sqlite3_column_type(s, 0) != SQLITE_NULL)
        snprintf(out, n, "%s", (const char *)sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
}

static void expect(sqlite3 *db, const char *id, const char *col, const char *want)
{
    char got[512];
    row_text(db, id, col, got, sizeof got);
    if (strcmp(got, want))
        fail_msg("request %s: %s is '%s', want '%s'", id, col, got, want);
}

static double row_num(sqlite3 *db, const char *id, const char *col)
{
    char got[64];
    row_text(db, id, col, got, sizeof got);
    return got[0] ? strtod(got, NULL) : -1;
}

static void router_writes_one_row_per_request(void **state)
{
    char path[64], yaml[2048], ids[12][48];
    struct fake_spec ps, ss;
    struct rw w;
    sqlite3 *db;
    int i, n = 0;
    (void)state;

    tmp_db(path, sizeof path);
    snprintf(yaml, sizeof yaml, yaml_fmt, path);
    rw_spec(&ps, "primary", FAKE_OPENAI);
    rw_spec(&ss, "secondary", FAKE_ANTHROPIC);
    if (rw_start(&w, yaml, &ps, &ss) != 0)
        fail_msg("world did not start");

    /* 0-3: plain, tagged by headers */
    for (i = 0; i < 4; i++)
        assert_int_equal(chat(&w, "{\"model\":\"app/chat\"," BODY "}",
                              "x-tenant-id: acme\r\nx-user-id: u-1\r\nx-feature: search", ids[n++],
                              48),
                         200);
    /* 4-5: streams, tagged by the body */
    for (i = 0; i < 2; i++)
        assert_int_equal(chat(&w,
                              "{\"model\":\"app/chat\",\"stream\":true,\"user\":\"bob\","
                              "\"metadata\":{\"tenant\":\"t2\",\"feature\":\"summary\"}," BODY "}",
                              NULL, ids[n++], 48),
                         200);
    /* 6: unknown alias */
    assert_int_equal(chat(&w, "{\"model\":\"no/such\"," BODY "}", NULL, ids[n++], 48), 404);
    /* 7: pinned to the secondary by header */
    assert_int_equal(chat(&w, "{\"model\":\"app/chat\"," BODY "}", "x-slodrill-deployment: secondary",
                          ids[n++], 48),
                     200);
    /* 8: pinned by metadata to an id that does not exist */
    assert_int_equal(chat(&w, "{\"model\":\"app/chat\",\"metadata\":{\"deployment\":\"nope\"}," BODY "}",
                          NULL, ids[n++], 48),
                     400);
    /* 9: the primary's key revoked: served by the secondary after one failover */
    add_fault(w.primary, "revoke_key");
    assert_int_equal(chat(&w, "{\"model\":\"app/chat\"," BODY "}", NULL, ids[n++], 48), 200);
    fake_fault_clear(w.primary, -1);
    /* 10: both fail with 503 (the primary still cools for its 401: one attempt, or two) */
    add_fault(w.primary, "http_error;status=503");
    add_fault(w.secondary, "http_error;status=503");
    assert_int_equal(chat(&w, "{\"model\":\"app/chat\"," BODY "}", NULL, ids[n++], 48), 503);
    fake_fault_clear(w.primary, -1);
    fake_fault_clear(w.secondary, -1);
    /* 11: a stream pinned by metadata */
    assert_int_equal(chat(&w,
                          "{\"model\":\"app/chat\",\"stream\":true,"
                          "\"metadata\":{\"deployment\":\"primary\"}," BODY "}",
                          NULL, ids[n++], 48),
                     200);

    assert_int_equal(proxy_log_flush(w.proxy, 5000), 0);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(q_int(db, "SELECT count(*) FROM requests"), n);
    assert_int_equal(q_int(db, "SELECT count(DISTINCT request_id) FROM requests"), n);
    for (i = 0; i < n; i++)
        assert_true(ids[i][0] != '\0');

    for (i = 0; i < 4; i++) {
        expect(db, ids[i], "status", "200");
        expect(db, ids[i], "outcome", "ok");
        expect(db, ids[i], "deployment", "primary");
        expect(db, ids[i], "provider", "primary"); /* the fake's own x-slodrill-provider */
        expect(db, ids[i], "model", "gpt-p");
        expect(db, ids[i], "attempts", "1");
        expect(db, ids[i], "failover_hops", "0");
        expect(db, ids[i], "stream", "0");
        expect(db, ids[i], "tenant", "acme");
        expect(db, ids[i], "user", "u-1");
        expect(db, ids[i], "feature", "search");
        expect(db, ids[i], "alias", "app/chat");
        assert_true(row_num(db, ids[i], "input_tokens") > 0);
        assert_true(row_num(db, ids[i], "output_tokens") > 0);
        assert_true(fabs(row_num(db, ids[i], "cost_usd") -
                         (row_num(db, ids[i], "input_tokens") * 0.000001 +
                          row_num(db, ids[i], "output_tokens") * 0.000002)) < 1e-12);
        assert_true(row_num(db, ids[i], "ttft_ms") > 0);
        assert_true(row_num(db, ids[i], "duration_ms") >= row_num(db, ids[i], "ttft_ms"));
        expect(db, ids[i], "error", "");
    }
    for (i = 4; i < 6; i++) {
        expect(db, ids[i], "outcome", "ok");
        expect(db, ids[i], "stream", "1");
        expect(db, ids[i], "tenant", "t2");
        expect(db, ids[i], "user", "bob");
        expect(db, ids[i], "feature", "summary");
        assert_true(row_num(db, ids[i], "output_tokens") > 0); /* from the usage we asked for */
        assert_true(row_num(db, ids[i], "cost_usd") > 0);
        assert_true(row_num(db, ids[i], "ttft_ms") > 0);
    }
    expect(db, ids[6], "status", "404");
    expect(db, ids[6], "outcome", "client_error");
    expect(db, ids[6], "alias", "no/such");
    expect(db, ids[6], "attempts", "0");
    expect(db, ids[6], "ttft_ms", "");
    expect(db, ids[7], "deployment", "secondary");
    expect(db, ids[7], "pinned", "1");
    expect(db, ids[7], "model", "claude-s");
    expect(db, ids[7], "cost_usd", ""); /* no prices configured */
    expect(db, ids[8], "status", "400");
    expect(db, ids[8], "outcome", "client_error");
    {
        char e[512];
        row_text(db, ids[8], "error", e, sizeof e);
        assert_non_null(strstr(e, "'nope'"));
    }
    expect(db, ids[9], "deployment", "secondary");
    expect(db, ids[9], "attempts", "2");
    expect(db, ids[9], "failover_hops", "1");
    expect(db, ids[9], "outcome", "ok");
    expect(db, ids[10], "status", "503");
    expect(db, ids[10], "outcome", "retryable_error");
    expect(db, ids[10], "ttft_ms", "");
    {
        char e[512];
        row_text(db, ids[10], "error", e, sizeof e);
        assert_non_null(strstr(e, "no deployment of 'app/chat' could answer"));
    }
    expect(db, ids[11], "deployment", "primary");
    expect(db, ids[11], "pinned", "1");
    expect(db, ids[11], "stream", "1");
    sqlite3_close(db);

    rw_stop(&w);
    /* closed cleanly: still n rows, readable after the router is gone */
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(q_int(db, "SELECT count(*) FROM requests"), n);
    sqlite3_close(db);
    rm_db(path);
}

static void many_requests_many_rows(void **state)
{
    /* 300 concurrent requests over 50 connections: 300 rows, none lost, none doubled. */
    char path[64], yaml[2048];
    struct fake_spec ps, ss;
    struct rw w;
    sqlite3 *db;
    (void)state;

    tmp_db(path, sizeof path);
    snprintf(yaml, sizeof yaml, yaml_fmt, path);
    rw_spec(&ps, "primary", FAKE_OPENAI);
    rw_spec(&ss, "secondary", FAKE_ANTHROPIC);
    ps.latency.ttft_median_ms = 1;
    ps.latency.ttft_p95_ms = 2;
    if (rw_start(&w, yaml, &ps, &ss) != 0)
        fail_msg("world did not start");
    {
        CURLM *m = curl_multi_init();
        CURL *e[300];
        static struct rw_reply sink[300];
        struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
        char url[160];
        int i, running = 1, ok = 0;
        uint64_t t0 = clock_mono_us();
        CURLMsg *msg;
        int left;

        snprintf(url, sizeof url, "%s/v1/chat/completions", w.url);
        for (i = 0; i < 300; i++) {
            e[i] = curl_easy_init();
            curl_easy_setopt(e[i], CURLOPT_URL, url);
            curl_easy_setopt(e[i], CURLOPT_HTTPHEADER, h);
            curl_easy_setopt(e[i], CURLOPT_POSTFIELDS, "{\"model\":\"app/chat\"," BODY "}");
            curl_easy_setopt(e[i], CURLOPT_WRITEFUNCTION, rw_body_cb);
            curl_easy_setopt(e[i], CURLOPT_TIMEOUT_MS, 20000L);
            memset(&sink[i], 0, sizeof sink[i]);
            curl_easy_setopt(e[i], CURLOPT_WRITEDATA, &sink[i]);
            curl_multi_add_handle(m, e[i]);
        }
        curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, 50L);
        while (running && clock_mono_us() - t0 < 30000000ull) {
            curl_multi_perform(m, &running);
            curl_multi_poll(m, NULL, 0, 100, NULL);
        }
        while ((msg = curl_multi_info_read(m, &left)))
            if (msg->msg == CURLMSG_DONE && msg->data.result == CURLE_OK)
                ok++;
        for (i = 0; i < 300; i++) {
            curl_multi_remove_handle(m, e[i]);
            curl_easy_cleanup(e[i]);
            rw_reply_free(&sink[i]);
        }
        curl_slist_free_all(h);
        curl_multi_cleanup(m);
        assert_int_equal(ok, 300);
    }
    rw_stop(&w); /* closing the proxy writes what is queued */
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(q_int(db, "SELECT count(*) FROM requests"), 300);
    assert_int_equal(q_int(db, "SELECT count(DISTINCT request_id) FROM requests"), 300);
    assert_int_equal(q_int(db, "SELECT count(*) FROM requests WHERE outcome = 'ok' AND "
                               "deployment = 'primary' AND output_tokens > 0"),
                     300);
    sqlite3_close(db);
    rm_db(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(writer_alone),
        cmocka_unit_test(unwritable_path_is_an_error),
        cmocka_unit_test(router_writes_one_row_per_request),
        cmocka_unit_test(many_requests_many_rows),
    };
    rw_global_init();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
