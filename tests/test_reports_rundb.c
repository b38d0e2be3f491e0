/* test_reports_rundb.c -- run DB round trip, a killed writer, threads, throughput. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "reports/rundb.h"

struct tmp {
    char dir[256];
    char db[300];
};

static int setup(void **state)
{
    struct tmp *t = calloc(1, sizeof *t);

    snprintf(t->dir, sizeof t->dir, "/tmp/slodrill-rundb-XXXXXX");
    if (mkdtemp(t->dir) == NULL) {
        free(t);
        return -1;
    }
    snprintf(t->db, sizeof t->db, "%s/run.db", t->dir);
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    struct tmp *t = *state;
    char p[400];
    const char *suffix[] = {"", "-wal", "-shm", "-journal"};
    size_t i;

    for (i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s%s", t->db, suffix[i]);
        (void)unlink(p);
    }
    (void)rmdir(t->dir);
    free(t);
    return 0;
}

static void make_req(struct req_record *r, int64_t seq)
{
    memset(r, 0, sizeof *r);
    r->seq = seq;
    r->intended_us = seq * 50000;
    r->started_us = r->intended_us + 120;
    r->first_byte_us = r->intended_us + 250000;
    r->first_token_us = seq % 7 == 0 ? -1 : r->intended_us + 300000;
    r->end_us = r->intended_us + 900000;
    r->http_status = seq % 5 == 0 ? 503 : 200;
    r->outcome = seq % 5 == 0 ? OUTCOME_RETRYABLE_ERROR : OUTCOME_OK;
    r->attempts = 1 + (int)(seq % 3);
    r->failover_hops = (int)(seq % 2);
    r->cache_hit = seq % 11 == 0;
    r->stream = 1;
    r->input_tokens = 100 + seq;
    r->output_tokens = 20 + seq;
    r->cost_usd = seq % 3 == 0 ? -1 : 0.0001 * (double)seq;
    snprintf(r->provider, sizeof r->provider, "%s", seq % 4 ? "primary" : "secondary");
    snprintf(r->deployment, sizeof r->deployment, "dep-%lld", (long long)(seq % 2));
    snprintf(r->model, sizeof r->model, "gpt-4o-mini");
    snprintf(r->tenant, sizeof r->tenant, "acme");
    snprintf(r->request_id, sizeof r->request_id, "req_%lld", (long long)seq);
    if (r->outcome != OUTCOME_OK)
        snprintf(r->error, sizeof r->error, "upstream said \"overloaded\" | 503");
}

static void test_round_trip(void **state)
{
    struct tmp *t = *state;
    char err[256] = "";
    struct rundb *db;
    struct run_data *d;
    struct req_record r, *back;
    struct run_event e;
    int64_t s;
    size_t i;

    db = rundb_create(t->db, "rt", "{\"scenario\":{\"name\":\"rt\"}}", 1700000000123456ULL, err,
                      sizeof err);
    assert_non_null(db);
    /* Added out of order: read back sorted by seq and by time. */
    for (s = 99; s >= 0; s--) {
        make_req(&r, s);
        assert_int_equal(rundb_add_request(db, &r), 0);
    }
    assert_int_equal(rundb_event(db, 20000000, "fault_off", "primary", NULL), 0);
    assert_int_equal(rundb_event(db, 8000000, "fault_on", "primary", "revoke_key"), 0);
    memset(&e, 'x', sizeof e); /* not NUL-terminated: must be cut, not overrun */
    e.t_us = 0;
    memcpy(e.kind, "note", 5);
    assert_int_equal(rundb_add_event(db, &e), 0);
    assert_int_equal(rundb_finish(db, "complete", 30000000), 0);

    d = rundb_load(t->db, err, sizeof err);
    assert_non_null(d);
    assert_string_equal(d->name, "rt");
    assert_string_equal(d->status, "complete");
    assert_string_equal(d->meta_json, "{\"scenario\":{\"name\":\"rt\"}}");
    assert_true(d->started_wall_us == 1700000000123456ULL);
    assert_true(d->duration_us == 30000000);
    assert_int_equal(d->nreq, 100);
    assert_int_equal(d->nev, 3);
    for (i = 0; i < d->nreq; i++) {
        back = &d->req[i];
        make_req(&r, (int64_t)i);
        assert_memory_equal(back, &r, sizeof r); /* every field, byte for byte */
    }
    assert_string_equal(d->ev[0].kind, "note");
    assert_int_equal(strlen(d->ev[0].subject), sizeof e.subject - 1);
    assert_int_equal(strlen(d->ev[0].detail), sizeof e.detail - 1);
    assert_string_equal(d->ev[1].kind, "fault_on");
    assert_string_equal(d->ev[1].detail, "revoke_key");
    assert_true(d->ev[2].t_us == 20000000);
    assert_string_equal(d->ev[2].detail, "");
    rundb_data_free(d);

    /* A second create on the same path refuses to overwrite the run. */
    assert_null(rundb_create(t->db, "rt", "{}", 0, err, sizeof err));
    assert_non_null(strstr(err, "exists"));
}

static void test_schema_visible_to_sqlite(void **state)
{
    struct tmp *t = *state;
    char err[256] = "";
    struct rundb *db = rundb_create(t->db, "s", "{}", 1, err, sizeof err);
    struct req_record r;
    sqlite3 *sql = NULL;
    sqlite3_stmt *st = NULL;

    assert_non_null(db);
    make_req(&r, 5);
    assert_int_equal(rundb_add_request(db, &r), 0);
    assert_int_equal(rundb_finish(db, "aborted", 1000), 0);

    assert_int_equal(sqlite3_open_v2(t->db, &sql, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(sql, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), RUNDB_SCHEMA_VERSION);
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_prepare_v2(sql, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    /* Outcomes by name; unknown times and cost as NULL; checks table exists. */
    assert_int_equal(sqlite3_prepare_v2(sql,
                                        "SELECT outcome, cost_usd IS NULL, first_token_us,"
                                        " (SELECT COUNT(*) FROM checks),"
                                        " (SELECT status FROM runs) FROM requests",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "retryable_error");
    assert_int_equal(sqlite3_column_int(st, 1), 0);
    assert_int_equal(sqlite3_column_int64(st, 2), 5 * 50000 + 300000);
    assert_int_equal(sqlite3_column_int(st, 3), 0);
    assert_string_equal((const char *)sqlite3_column_text(st, 4), "aborted");
    sqlite3_finalize(st);
    /* A future schema is refused with a clear message. */
    sqlite3_close(sql);
    assert_int_equal(sqlite3_open(t->db, &sql), SQLITE_OK);
    assert_int_equal(sqlite3_exec(sql, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(sql);
    assert_null(rundb_load(t->db, err, sizeof err));
    assert_non_null(strstr(err, "schema version 99"));
    /* Not a DB at all. */
    assert_null(rundb_load("/nonexistent/run.db", err, sizeof err));
}

/* The child writes, flushes and is killed with SIGKILL: nothing closes the
 * DB, as when the harness crashes or is killed mid-run. */
static void test_killed_writer(void **state)
{
    struct tmp *t = *state;
    char err[256] = "";
    struct run_data *d;
    pid_t pid;
    int status = 0;

    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct rundb *db = rundb_create(t->db, "killed", "{}", 42, err, sizeof err);
        struct req_record r;
        int64_t s;

        if (db == NULL)
            _exit(2);
        for (s = 0; s < 500; s++) {
            make_req(&r, s);
            if (rundb_add_request(db, &r) != 0)
                _exit(3);
        }
        if (rundb_event(db, 1000, "fault_on", "primary", "revoke_key") != 0 ||
            rundb_flush(db) != 0)
            _exit(4);
        /* Rows after the flush may or may not make it; those before must. */
        make_req(&r, 500);
        if (rundb_add_request(db, &r) != 0)
            _exit(6);
        raise(SIGKILL);
        _exit(5);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    d = rundb_load(t->db, err, sizeof err);
    if (d == NULL)
        fail_msg("load: %s", err);
    assert_string_equal(d->status, "incomplete");
    assert_true(d->duration_us == -1);
    assert_true(d->nreq >= 500);
    assert_int_equal(d->req[499].seq, 499);
    assert_int_equal(d->nev, 1);
    assert_string_equal(d->ev[0].kind, "fault_on");
    rundb_data_free(d);
}

/* Reading while the writer is alive (WAL), then rundb_close without finish. */
static void test_reader_during_run(void **state)
{
    struct tmp *t = *state;
    char err[256] = "";
    struct rundb *db = rundb_create(t->db, "live", "{}", 7, err, sizeof err);
    struct run_data *d;
    struct req_record r;
    int64_t s;

    assert_non_null(db);
    for (s = 0; s < 10; s++) {
        make_req(&r, s);
        assert_int_equal(rundb_add_request(db, &r), 0);
    }
    assert_int_equal(rundb_flush(db), 0);
    d = rundb_load(t->db, err, sizeof err);
    assert_non_null(d);
    assert_string_equal(d->status, "incomplete");
    assert_int_equal(d->nreq, 10);
    rundb_data_free(d);
    /* The writer commits on its own within the 100 ms interval. */
    make_req(&r, 10);
    assert_int_equal(rundb_add_request(db, &r), 0);
    usleep(400000);
    d = rundb_load(t->db, err, sizeof err);
    assert_non_null(d);
    assert_int_equal(d->nreq, 11);
    rundb_data_free(d);
    rundb_close(db);
    d = rundb_load(t->db, err, sizeof err);
    assert_non_null(d);
    assert_string_equal(d->status, "incomplete");
    rundb_data_free(d);
}

struct producer {
    struct rundb *db;
    int64_t first, n;
    int failed;
};

static void *produce(void *arg)
{
    struct producer *p = arg;
    struct req_record r;
    int64_t s;

    for (s = p->first; s < p->first + p->n; s++) {
        make_req(&r, s);
        if (rundb_add_request(p->db, &r) != 0)
            p->failed++;
    }
    return NULL;
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Four threads add 200,000 rows; all arrive; the rate is printed. */
static void test_threads_and_throughput(void **state)
{
    struct tmp *t = *state;
    char err[256] = "";
    struct rundb *db = rundb_create(t->db, "bench", "{}", 7, err, sizeof err);
    struct producer p[4];
    pthread_t th[4];
    struct run_data *d;
    const int64_t per = getenv("SLODRILL_SANITIZED") ? 10000 : 50000;
    double t0, t1;
    size_t i;

    assert_non_null(db);
    t0 = now_s();
    for (i = 0; i < 4; i++) {
        p[i].db = db;
        p[i].first = (int64_t)i * per;
        p[i].n = per;
        p[i].failed = 0;
        assert_int_equal(pthread_create(&th[i], NULL, produce, &p[i]), 0);
    }
    for (i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(p[i].failed, 0);
    }
    assert_int_equal(rundb_flush(db), 0);
    t1 = now_s();
    assert_int_equal(rundb_last_error(db, err, sizeof err), 0);
    assert_int_equal(rundb_finish(db, "complete", 1), 0);
    printf("rundb throughput: %lld request rows from 4 threads committed in %.3f s = %.0f "
           "rows/s (target >= 50000)\n",
           (long long)(4 * per), t1 - t0, (double)(4 * per) / (t1 - t0));
    d = rundb_load(t->db, err, sizeof err);
    assert_non_null(d);
    assert_int_equal(d->nreq, (size_t)(4 * per));
    for (i = 0; i < d->nreq; i++)
        assert_int_equal(d->req[i].seq, (int64_t)i);
    rundb_data_free(d);
}

static void test_outcome_names(void **state)
{
    int o;

    (void)state;
    for (o = 0; o < OUTCOME__COUNT; o++)
        assert_int_equal(outcome_from_name(outcome_name((enum outcome)o)), o);
    assert_string_equal(outcome_name(OUTCOME_SERVED_FROM_CACHE), "served_from_cache");
    assert_int_equal(outcome_from_name("nope"), -1);
    assert_int_equal(outcome_from_name(NULL), -1);
    assert_true(outcome_is_failure(OUTCOME_TIMEOUT));
    assert_true(outcome_is_failure(OUTCOME_RETRYABLE_ERROR));
    assert_false(outcome_is_failure(OUTCOME_CLIENT_ERROR));
    assert_true(outcome_is_failure(OUTCOME_RATE_LIMITED));
    assert_false(outcome_is_failure(OUTCOME_SERVED_FROM_CACHE));
    assert_int_equal(rundb_finish(NULL, "complete", 0), 0);
    rundb_close(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_outcome_names),
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schema_visible_to_sqlite, setup, teardown),
        cmocka_unit_test_setup_teardown(test_killed_writer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reader_during_run, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads_and_throughput, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
