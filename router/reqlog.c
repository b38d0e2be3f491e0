/* reqlog.c -- the router's request log: records queued on the loop, written by a thread.
 *
 * DESIGN: reqlog_add() copies the record into a pending array under a mutex
 * (a memcpy, never I/O) and signals the writer. The writer swaps the pending
 * array for its spare one and writes the whole batch in one transaction, so
 * under load one COMMIT carries many rows and at rest a row lands within
 * milliseconds. WAL with synchronous=NORMAL: a crash of the machine may lose
 * the last batches, a crash of the router loses only what was still queued.
 * Past REQLOG_MAX_PENDING waiting records, new ones are dropped and counted
 * rather than letting a stalled disk grow the router's memory. */
#include "router/reqlog.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/log.h"

#define RL_TAG "router:log"

struct reqlog {
    sqlite3 *db;
    sqlite3_stmt *ins;
    pthread_t thread;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t wake;   /* writer: something queued, or stop */
    pthread_cond_t done;   /* flushers: a batch was written */
    struct reqlog_rec *pend, *spare;
    size_t npend, cap_pend, cap_spare;
    int stop;
    struct reqlog_stats st;
};

static const char rl_schema[] =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=NORMAL;"
    "CREATE TABLE IF NOT EXISTS requests ("
    " id INTEGER PRIMARY KEY,"
    " request_id TEXT NOT NULL,"
    " started_at TEXT NOT NULL,"        /* UTC ISO 8601, for people */
    " start_unix_us INTEGER NOT NULL,"
    " ttft_ms REAL,"                    /* NULL: no answer byte (an error) */
    " duration_ms REAL NOT NULL,"
    " status INTEGER NOT NULL,"
    " outcome TEXT NOT NULL,"
    " alias TEXT NOT NULL,"
    " deployment TEXT,"
    " provider TEXT,"
    " model TEXT,"
    " attempts INTEGER NOT NULL,"
    " failover_hops INTEGER NOT NULL,"
    " fallbacks INTEGER NOT NULL,"
    " stream INTEGER NOT NULL,"
    " pinned INTEGER NOT NULL,"
    " cache_hit INTEGER NOT NULL DEFAULT 0,"
    " input_tokens INTEGER,"
    " output_tokens INTEGER,"
    " cost_usd REAL,"
    " tenant TEXT,"
    " user TEXT,"
    " feature TEXT,"
    " error TEXT);"
    "CREATE INDEX IF NOT EXISTS requests_start ON requests(start_unix_us);";

static const char rl_insert[] =
    "INSERT INTO requests (request_id, started_at, start_unix_us, ttft_ms, duration_ms, status,"
    " outcome, alias, deployment, provider, model, attempts, failover_hops, fallbacks, stream,"
    " pinned, input_tokens, output_tokens, cost_usd, tenant, user, feature, error)"
    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)";

/* Binds a string, NULL when empty. */
static void rl_text(sqlite3_stmt *s, int i, const char *v)
{
    if (v[0])
        sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(s, i);
}

/* One row; 0 or -1. */
static int rl_write_one(struct reqlog *l, const struct reqlog_rec *r)
{
    sqlite3_stmt *s = l->ins;
    char when[32];
    int rc;

    clock_format_utc(r->start_wall_us, when, sizeof when);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    sqlite3_bind_text(s, 1, r->request_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 2, when, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 3, (sqlite3_int64)r->start_wall_us);
    if (r->ttft_ms >= 0)
        sqlite3_bind_double(s, 4, r->ttft_ms);
    else
        sqlite3_bind_null(s, 4);
    sqlite3_bind_double(s, 5, r->duration_ms);
    sqlite3_bind_int(s, 6, r->status);
    sqlite3_bind_text(s, 7, r->outcome, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 8, r->alias, -1, SQLITE_TRANSIENT);
    rl_text(s, 9, r->deployment);
    rl_text(s, 10, r->provider);
    rl_text(s, 11, r->model);
    sqlite3_bind_int(s, 12, r->attempts);
    sqlite3_bind_int(s, 13, r->hops);
    sqlite3_bind_int(s, 14, r->fallbacks);
    sqlite3_bind_int(s, 15, r->stream);
    sqlite3_bind_int(s, 16, r->pinned);
    if (r->input_tokens >= 0)
        sqlite3_bind_int64(s, 17, r->input_tokens);
    if (r->output_tokens >= 0)
        sqlite3_bind_int64(s, 18, r->output_tokens);
    if (r->cost_usd >= 0)
        sqlite3_bind_double(s, 19, r->cost_usd);
    rl_text(s, 20, r->tenant);
    rl_text(s, 21, r->user);
    rl_text(s, 22, r->feature);
    rl_text(s, 23, r->error);
    rc = sqlite3_step(s);
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* A batch in one transaction; returns rows written. */
static size_t rl_write_batch(struct reqlog *l, const struct reqlog_rec *recs, size_t n)
{
    size_t i, ok = 0;
    char *msg = NULL;

    if (sqlite3_exec(l->db, "BEGIN", NULL, NULL, &msg) != SQLITE_OK) {
        log_error(RL_TAG, "BEGIN: %s", msg ? msg : "?");
        sqlite3_free(msg);
        return 0;
    }
    for (i = 0; i < n; i++)
        if (rl_write_one(l, &recs[i]) == 0)
            ok++;
    if (sqlite3_exec(l->db, "COMMIT", NULL, NULL, &msg) != SQLITE_OK) {
        log_error(RL_TAG, "COMMIT: %s", msg ? msg : "?");
        sqlite3_free(msg);
        sqlite3_exec(l->db, "ROLLBACK", NULL, NULL, NULL);
        return 0;
    }
    return ok;
}

static void *rl_writer(void *arg)
{
    struct reqlog *l = arg;
    struct reqlog_rec *batch;
    size_t n, cap, ok;

    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (l->npend == 0 && !l->stop)
            pthread_cond_wait(&l->wake, &l->mu);
        if (l->npend == 0 && l->stop)
            break;
        /* take the pending array, leave the spare one for new records */
        batch = l->pend;
        n = l->npend;
        cap = l->cap_pend;
        l->pend = l->spare;
        l->cap_pend = l->cap_spare;
        l->npend = 0;
        l->spare = NULL;
        l->cap_spare = 0;
        pthread_mutex_unlock(&l->mu);

        ok = rl_write_batch(l, batch, n);

        pthread_mutex_lock(&l->mu);
        l->st.written += ok;
        l->st.failed += n - ok;
        if (ok < n)
            log_error(RL_TAG, "%zu of %zu request records could not be written", n - ok, n);
        /* the batch array becomes the spare (keep the larger one) */
        if (!l->spare) {
            l->spare = batch;
            l->cap_spare = cap;
        } else {
            free(batch);
        }
        pthread_cond_broadcast(&l->done);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

struct reqlog *reqlog_open(const char *path, char *err, size_t errlen)
{
    struct reqlog *l = NULL, *ret = NULL;
    char *msg = NULL;

    l = calloc(1, sizeof *l);
    if (!l) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->wake, NULL);
    pthread_cond_init(&l->done, NULL);
    if (sqlite3_open_v2(path, &l->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        snprintf(err, errlen, "request log %s: %s", path,
                 l->db ? sqlite3_errmsg(l->db) : "cannot open");
        goto out;
    }
    sqlite3_busy_timeout(l->db, 2000);
    if (sqlite3_exec(l->db, rl_schema, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, errlen, "request log %s: %s", path, msg ? msg : sqlite3_errmsg(l->db));
        goto out;
    }
    if (sqlite3_prepare_v2(l->db, rl_insert, -1, &l->ins, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "request log %s: %s", path, sqlite3_errmsg(l->db));
        goto out;
    }
    if (pthread_create(&l->thread, NULL, rl_writer, l) != 0) {
        snprintf(err, errlen, "request log: cannot start the writer thread");
        goto out;
    }
    l->started = 1;
    ret = l;
    l = NULL;
out:
    sqlite3_free(msg);
    reqlog_close(l);
    return ret;
}

int reqlog_add(struct reqlog *l, const struct reqlog_rec *rec)
{
    int rc = -1;

    pthread_mutex_lock(&l->mu);
    if (l->npend >= REQLOG_MAX_PENDING)
        goto out;
    if (l->npend == l->cap_pend) {
        size_t cap = l->cap_pend ? l->cap_pend * 2 : 64;
        struct reqlog_rec *n;
        if (cap > REQLOG_MAX_PENDING)
            cap = REQLOG_MAX_PENDING;
        n = realloc(l->pend, cap * sizeof *n);
        if (!n)
            goto out;
        l->pend = n;
        l->cap_pend = cap;
    }
    l->pend[l->npend++] = *rec;
    l->st.queued++;
    if (l->npend == 1)
        pthread_cond_signal(&l->wake);
    rc = 0;
out:
    if (rc != 0)
        l->st.dropped++;
    pthread_mutex_unlock(&l->mu);
    return rc;
}

int reqlog_flush(struct reqlog *l, int timeout_ms)
{
    struct timespec until;
    uint64_t target;
    int rc = 0;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&l->mu);
    target = l->st.queued;
    while (l->st.written + l->st.failed < target) {
        if (pthread_cond_timedwait(&l->done, &l->mu, &until) == ETIMEDOUT) {
            rc = l->st.written + l->st.failed < target ? -1 : 0;
            break;
        }
    }
    pthread_mutex_unlock(&l->mu);
    return rc;
}

void reqlog_close(struct reqlog *l)
{
    if (!l)
        return;
    if (l->started) {
        pthread_mutex_lock(&l->mu);
        l->stop = 1;
        pthread_cond_signal(&l->wake);
        pthread_mutex_unlock(&l->mu);
        pthread_join(l->thread, NULL);
    }
    if (l->st.dropped)
        log_warn(RL_TAG, "%llu request records were dropped (the writer fell behind)",
                 (unsigned long long)l->st.dropped);
    sqlite3_finalize(l->ins);
    if (l->db)
        sqlite3_close(l->db);
    free(l->pend);
    free(l->spare);
    pthread_cond_destroy(&l->wake);
    pthread_cond_destroy(&l->done);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

void reqlog_stats_get(struct reqlog *l, struct reqlog_stats *out)
{
    pthread_mutex_lock(&l->mu);
    *out = l->st;
    pthread_mutex_unlock(&l->mu);
}
