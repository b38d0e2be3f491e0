/* rundb.c -- the run DB: a queue drained by one writer thread into SQLite.
 *
 * DESIGN: rundb_add_* copy a record into a growable array under a mutex and
 * return; the writer thread wakes every RUNDB_FLUSH_US, or as soon as
 * RUNDB_BATCH_ROWS are waiting, or when someone flushes, swaps the array for
 * an empty one and inserts the whole batch in one transaction with prepared
 * statements. queued_total counts rows handed in, committed_total rows the
 * writer has dealt with; rundb_flush waits until the second reaches the
 * first. The runs row is written with status "incomplete" at creation and
 * updated only by rundb_finish, so a killed run says so when read back.
 * Times of -1 ("did not happen"), unknown costs and empty strings are stored
 * as NULL, which is what people querying with sqlite3 expect. */
#include "reports/rundb.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define RUNDB_FLUSH_US 100000
#define RUNDB_BATCH_ROWS 4096
/* Rows that may wait for the writer; past this rundb_add_* refuse (the disk
 * is far behind and memory would grow without bound). */
#define RUNDB_MAX_QUEUED (1u << 18)
#define RUNDB_MAX_META (4u << 20)

static const char *const outcome_names[OUTCOME__COUNT] = {
    "ok", "retryable_error", "timeout", "client_error",
    "rejected_by_budget", "rate_limited", "served_from_cache",
};

const char *outcome_name(enum outcome o)
{
    if ((int)o < 0 || o >= OUTCOME__COUNT)
        return "unknown";
    return outcome_names[o];
}

int outcome_from_name(const char *name)
{
    int i, rc = -1;

    if (name == NULL)
        goto out;
    for (i = 0; i < OUTCOME__COUNT; i++) {
        if (strcmp(name, outcome_names[i]) == 0) {
            rc = i;
            goto out;
        }
    }
out:
    return rc;
}

int outcome_is_failure(enum outcome o)
{
    /* DESIGN.md: success rate = 1 - (retryable errors + timeouts) / total.
     * A 429 handed to the client is a retryable error the system did not
     * absorb; a guardrail's deliberate "no" is rejected_by_budget instead. */
    return o == OUTCOME_RETRYABLE_ERROR || o == OUTCOME_TIMEOUT || o == OUTCOME_RATE_LIMITED;
}

struct qitem {
    int is_event;
    union {
        struct req_record r;
        struct run_event e;
    } u;
};

struct rundb {
    sqlite3 *sql;
    sqlite3_stmt *ins_req, *ins_ev;
    pthread_t writer;
    int writer_started;
    pthread_mutex_t mu;
    pthread_cond_t wake;      /* writer waits here */
    pthread_cond_t done;      /* flushers wait here */
    struct qitem *q;          /* guarded by mu */
    size_t nq, capq;
    uint64_t queued_total;    /* guarded by mu */
    uint64_t committed_total; /* guarded by mu */
    uint64_t failed_rows;     /* guarded by mu: rows a commit lost */
    uint64_t refused_rows;    /* guarded by mu: rows refused, queue full */
    int flush_req;            /* guarded by mu */
    int closing;              /* guarded by mu */
    char werr[256];           /* guarded by mu: the writer's first error */
};

static const char schema_sql[] =
    "CREATE TABLE runs("
    " id INTEGER PRIMARY KEY CHECK (id = 1),"
    " name TEXT NOT NULL,"
    " meta_json TEXT NOT NULL,"
    " status TEXT NOT NULL,"
    " started_wall_us INTEGER NOT NULL,"
    " ended_wall_us INTEGER,"
    " duration_us INTEGER);"
    "CREATE TABLE requests("
    " seq INTEGER NOT NULL,"
    " intended_us INTEGER NOT NULL,"
    " started_us INTEGER,"
    " first_byte_us INTEGER,"
    " first_token_us INTEGER,"
    " end_us INTEGER,"
    " http_status INTEGER NOT NULL,"
    " outcome TEXT NOT NULL,"
    " attempts INTEGER NOT NULL,"
    " failover_hops INTEGER NOT NULL,"
    " cache_hit INTEGER NOT NULL,"
    " stream INTEGER NOT NULL,"
    " input_tokens INTEGER NOT NULL,"
    " output_tokens INTEGER NOT NULL,"
    " cost_usd REAL,"
    " provider TEXT, deployment TEXT, model TEXT,"
    " tenant TEXT, user TEXT, feature TEXT,"
    " request_id TEXT, error TEXT);"
    "CREATE TABLE events("
    " id INTEGER PRIMARY KEY,"
    " t_us INTEGER NOT NULL,"
    " kind TEXT NOT NULL,"
    " subject TEXT,"
    " detail TEXT);"
    "CREATE TABLE checks("
    " name TEXT NOT NULL,"
    " phase TEXT NOT NULL,"
    " verdict TEXT NOT NULL,"
    " measured REAL,"
    " target REAL,"
    " unit TEXT,"
    " detail TEXT);";

static const char ins_req_sql[] =
    "INSERT INTO requests(seq, intended_us, started_us, first_byte_us, first_token_us,"
    " end_us, http_status, outcome, attempts, failover_hops, cache_hit, stream,"
    " input_tokens, output_tokens, cost_usd, provider, deployment, model, tenant, user,"
    " feature, request_id, error)"
    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)";

static const char ins_ev_sql[] =
    "INSERT INTO events(t_us, kind, subject, detail) VALUES (?,?,?,?)";

static void set_err(char *err, size_t errlen, const char *what, sqlite3 *sql)
{
    if (err == NULL || errlen == 0)
        return;
    if (sql != NULL)
        snprintf(err, errlen, "%s: %s", what, sqlite3_errmsg(sql));
    else
        snprintf(err, errlen, "%s", what);
}

/* Copies src into a fixed field, always NUL-terminated, cut if too long. */
static void copy_field(char *dst, size_t dstlen, const char *src)
{
    size_t n;

    if (src == NULL) {
        dst[0] = '\0';
        return;
    }
    n = strnlen(src, dstlen - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static int bind_time(sqlite3_stmt *st, int col, int64_t v)
{
    if (v < 0)
        return sqlite3_bind_null(st, col);
    return sqlite3_bind_int64(st, col, v);
}

/* Binds a fixed-size field: bounded read, "" as NULL. */
static int bind_field(sqlite3_stmt *st, int col, const char *s, size_t cap)
{
    size_t n = strnlen(s, cap);

    if (n == 0)
        return sqlite3_bind_null(st, col);
    return sqlite3_bind_text(st, col, s, (int)n, SQLITE_STATIC);
}

static int insert_request(struct rundb *db, const struct req_record *r)
{
    sqlite3_stmt *st = db->ins_req;
    int rc = -1;

    if (sqlite3_bind_int64(st, 1, r->seq) != SQLITE_OK ||
        sqlite3_bind_int64(st, 2, r->intended_us) != SQLITE_OK ||
        bind_time(st, 3, r->started_us) != SQLITE_OK ||
        bind_time(st, 4, r->first_byte_us) != SQLITE_OK ||
        bind_time(st, 5, r->first_token_us) != SQLITE_OK ||
        bind_time(st, 6, r->end_us) != SQLITE_OK ||
        sqlite3_bind_int(st, 7, r->http_status) != SQLITE_OK ||
        sqlite3_bind_text(st, 8, outcome_name(r->outcome), -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_int(st, 9, r->attempts) != SQLITE_OK ||
        sqlite3_bind_int(st, 10, r->failover_hops) != SQLITE_OK ||
        sqlite3_bind_int(st, 11, r->cache_hit) != SQLITE_OK ||
        sqlite3_bind_int(st, 12, r->stream) != SQLITE_OK ||
        sqlite3_bind_int64(st, 13, r->input_tokens) != SQLITE_OK ||
        sqlite3_bind_int64(st, 14, r->output_tokens) != SQLITE_OK ||
        (r->cost_usd < 0 ? sqlite3_bind_null(st, 15)
                         : sqlite3_bind_double(st, 15, r->cost_usd)) != SQLITE_OK ||
        bind_field(st, 16, r->provider, sizeof r->provider) != SQLITE_OK ||
        bind_field(st, 17, r->deployment, sizeof r->deployment) != SQLITE_OK ||
        bind_field(st, 18, r->model, sizeof r->model) != SQLITE_OK ||
        bind_field(st, 19, r->tenant, sizeof r->tenant) != SQLITE_OK ||
        bind_field(st, 20, r->user, sizeof r->user) != SQLITE_OK ||
        bind_field(st, 21, r->feature, sizeof r->feature) != SQLITE_OK ||
        bind_field(st, 22, r->request_id, sizeof r->request_id) != SQLITE_OK ||
        bind_field(st, 23, r->error, sizeof r->error) != SQLITE_OK)
        goto out;
    if (sqlite3_step(st) != SQLITE_DONE)
        goto out;
    rc = 0;
out:
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

static int insert_event(struct rundb *db, const struct run_event *e)
{
    sqlite3_stmt *st = db->ins_ev;
    int rc = -1;

    if (sqlite3_bind_int64(st, 1, e->t_us) != SQLITE_OK ||
        sqlite3_bind_text(st, 2, e->kind, (int)strnlen(e->kind, sizeof e->kind),
                          SQLITE_STATIC) != SQLITE_OK ||
        bind_field(st, 3, e->subject, sizeof e->subject) != SQLITE_OK ||
        bind_field(st, 4, e->detail, sizeof e->detail) != SQLITE_OK)
        goto out;
    if (sqlite3_step(st) != SQLITE_DONE)
        goto out;
    rc = 0;
out:
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

/* Inserts a batch in one transaction. Writer thread only; no lock held. */
static int commit_batch(struct rundb *db, const struct qitem *items, size_t n, char *err,
                        size_t errlen)
{
    size_t i;
    int rc = -1, began = 0;

    if (sqlite3_exec(db->sql, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
        set_err(err, errlen, "run DB: begin", db->sql);
        goto out;
    }
    began = 1;
    for (i = 0; i < n; i++) {
        int r = items[i].is_event ? insert_event(db, &items[i].u.e)
                                  : insert_request(db, &items[i].u.r);
        if (r != 0) {
            set_err(err, errlen, "run DB: insert", db->sql);
            goto out;
        }
    }
    if (sqlite3_exec(db->sql, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        set_err(err, errlen, "run DB: commit", db->sql);
        goto out;
    }
    began = 0;
    rc = 0;
out:
    if (began)
        (void)sqlite3_exec(db->sql, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

static void deadline_in(struct timespec *ts, long us)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_nsec += (us % 1000000) * 1000;
    ts->tv_sec += us / 1000000 + ts->tv_nsec / 1000000000;
    ts->tv_nsec %= 1000000000;
}

static void *writer_main(void *arg)
{
    struct rundb *db = arg;
    struct qitem *spare = NULL;
    size_t spare_cap = 0;

    pthread_mutex_lock(&db->mu);
    for (;;) {
        struct timespec until;
        struct qitem *batch;
        size_t n, cap;
        uint64_t target;
        char err[256] = "";
        int r;

        deadline_in(&until, RUNDB_FLUSH_US);
        while (!db->closing && !db->flush_req && db->nq < RUNDB_BATCH_ROWS) {
            if (pthread_cond_timedwait(&db->wake, &db->mu, &until) == ETIMEDOUT)
                break;
        }
        if (db->closing && db->nq == 0) {
            db->committed_total = db->queued_total;
            pthread_cond_broadcast(&db->done);
            break;
        }
        /* Take the queue; hand the writer's spare array to the producers. */
        batch = db->q;
        n = db->nq;
        cap = db->capq;
        db->q = spare;
        db->capq = spare_cap;
        db->nq = 0;
        target = db->queued_total;
        db->flush_req = 0;
        pthread_mutex_unlock(&db->mu);

        r = n > 0 ? commit_batch(db, batch, n, err, sizeof err) : 0;

        pthread_mutex_lock(&db->mu);
        if (r != 0) {
            db->failed_rows += n;
            if (db->werr[0] == '\0')
                copy_field(db->werr, sizeof db->werr, err);
        }
        db->committed_total = target;
        pthread_cond_broadcast(&db->done);
        spare = batch;
        spare_cap = cap;
    }
    pthread_mutex_unlock(&db->mu);
    free(spare);
    return NULL;
}

static int exec_sql(sqlite3 *sql, const char *s, char *err, size_t errlen)
{
    char *msg = NULL;
    int rc = -1;

    if (sqlite3_exec(sql, s, NULL, NULL, &msg) != SQLITE_OK) {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "run DB: %s", msg != NULL ? msg : "error");
        goto out;
    }
    rc = 0;
out:
    sqlite3_free(msg);
    return rc;
}

struct rundb *rundb_create(const char *path, const char *name, const char *meta_json,
                           uint64_t started_wall_us, char *err, size_t errlen)
{
    struct rundb *db = NULL, *ret = NULL;
    sqlite3_stmt *st = NULL;
    char pragma[64];
    int fd = -1, mu_ok = 0, wake_ok = 0, done_ok = 0;

    if (path == NULL || name == NULL) {
        set_err(err, errlen, "run DB: path and name are required", NULL);
        goto out;
    }
    if (meta_json == NULL)
        meta_json = "{}";
    if (strlen(meta_json) > RUNDB_MAX_META) {
        set_err(err, errlen, "run DB: meta_json is larger than 4 MiB", NULL);
        goto out;
    }
    /* Refuse to overwrite an earlier run: the file must not exist. */
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "run DB %s: %s", path, strerror(errno));
        goto out;
    }
    close(fd);
    fd = -1;

    db = calloc(1, sizeof *db);
    if (db == NULL) {
        set_err(err, errlen, "run DB: out of memory", NULL);
        goto out;
    }
    if (pthread_mutex_init(&db->mu, NULL) != 0)
        goto nomem;
    mu_ok = 1;
    {
        pthread_condattr_t ca;
        if (pthread_condattr_init(&ca) != 0)
            goto nomem;
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        wake_ok = pthread_cond_init(&db->wake, &ca) == 0;
        pthread_condattr_destroy(&ca);
        if (!wake_ok)
            goto nomem;
    }
    if (pthread_cond_init(&db->done, NULL) != 0)
        goto nomem;
    done_ok = 1;

    if (sqlite3_open_v2(path, &db->sql, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX,
                        NULL) != SQLITE_OK) {
        set_err(err, errlen, "run DB: open", db->sql);
        goto out;
    }
    sqlite3_busy_timeout(db->sql, 5000);
    snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d;", RUNDB_SCHEMA_VERSION);
    if (exec_sql(db->sql, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;", err,
                 errlen) != 0 ||
        exec_sql(db->sql, "BEGIN", err, errlen) != 0 ||
        exec_sql(db->sql, schema_sql, err, errlen) != 0 ||
        exec_sql(db->sql, pragma, err, errlen) != 0)
        goto out;
    if (sqlite3_prepare_v2(db->sql,
                           "INSERT INTO runs(id, name, meta_json, status, started_wall_us)"
                           " VALUES (1, ?, ?, 'incomplete', ?)",
                           -1, &st, NULL) != SQLITE_OK ||
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(st, 2, meta_json, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_int64(st, 3, (sqlite3_int64)started_wall_us) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_DONE) {
        set_err(err, errlen, "run DB: runs row", db->sql);
        goto out;
    }
    if (exec_sql(db->sql, "COMMIT", err, errlen) != 0)
        goto out;
    if (sqlite3_prepare_v2(db->sql, ins_req_sql, -1, &db->ins_req, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db->sql, ins_ev_sql, -1, &db->ins_ev, NULL) != SQLITE_OK) {
        set_err(err, errlen, "run DB: prepare", db->sql);
        goto out;
    }
    if (pthread_create(&db->writer, NULL, writer_main, db) != 0) {
        set_err(err, errlen, "run DB: cannot start the writer thread", NULL);
        goto out;
    }
    db->writer_started = 1;
    ret = db;
    db = NULL;
    goto out;
nomem:
    set_err(err, errlen, "run DB: out of memory", NULL);
out:
    sqlite3_finalize(st);
    if (db != NULL) {
        sqlite3_finalize(db->ins_req);
        sqlite3_finalize(db->ins_ev);
        sqlite3_close(db->sql);
        if (done_ok)
            pthread_cond_destroy(&db->done);
        if (wake_ok)
            pthread_cond_destroy(&db->wake);
        if (mu_ok)
            pthread_mutex_destroy(&db->mu);
        free(db);
        (void)unlink(path); /* db exists only once we created the file */
    }
    return ret;
}

static int enqueue(struct rundb *db, const struct req_record *r, const struct run_event *e)
{
    int rc = -1;

    if (db == NULL)
        return -1;
    pthread_mutex_lock(&db->mu);
    if (db->closing)
        goto out;
    if (db->nq >= RUNDB_MAX_QUEUED) {
        db->refused_rows++;
        goto out;
    }
    if (db->nq == db->capq) {
        size_t ncap = db->capq ? db->capq * 2 : 1024;
        struct qitem *nq = realloc(db->q, ncap * sizeof *nq);
        if (nq == NULL) {
            db->refused_rows++;
            goto out;
        }
        db->q = nq;
        db->capq = ncap;
    }
    if (e != NULL) {
        db->q[db->nq].is_event = 1;
        db->q[db->nq].u.e = *e;
        db->q[db->nq].u.e.kind[sizeof e->kind - 1] = '\0';
        db->q[db->nq].u.e.subject[sizeof e->subject - 1] = '\0';
        db->q[db->nq].u.e.detail[sizeof e->detail - 1] = '\0';
    } else {
        db->q[db->nq].is_event = 0;
        db->q[db->nq].u.r = *r;
    }
    db->nq++;
    db->queued_total++;
    if (db->nq == RUNDB_BATCH_ROWS)
        pthread_cond_signal(&db->wake);
    rc = 0;
out:
    pthread_mutex_unlock(&db->mu);
    return rc;
}

int rundb_add_request(struct rundb *db, const struct req_record *r)
{
    if (r == NULL)
        return -1;
    return enqueue(db, r, NULL);
}

int rundb_add_event(struct rundb *db, const struct run_event *e)
{
    if (e == NULL)
        return -1;
    return enqueue(db, NULL, e);
}

int rundb_event(struct rundb *db, int64_t t_us, const char *kind, const char *subject,
                const char *detail)
{
    struct run_event e;

    memset(&e, 0, sizeof e);
    e.t_us = t_us;
    copy_field(e.kind, sizeof e.kind, kind);
    copy_field(e.subject, sizeof e.subject, subject);
    copy_field(e.detail, sizeof e.detail, detail);
    return rundb_add_event(db, &e);
}

int rundb_flush(struct rundb *db)
{
    uint64_t target;
    int rc = -1;

    if (db == NULL)
        return -1;
    pthread_mutex_lock(&db->mu);
    target = db->queued_total;
    db->flush_req = 1;
    pthread_cond_signal(&db->wake);
    while (db->committed_total < target)
        pthread_cond_wait(&db->done, &db->mu);
    if (db->failed_rows == 0 && db->refused_rows == 0)
        rc = 0;
    pthread_mutex_unlock(&db->mu);
    return rc;
}

/* Drains the queue, stops the writer; afterwards db->sql is ours alone. */
static void stop_writer(struct rundb *db)
{
    if (!db->writer_started)
        return;
    pthread_mutex_lock(&db->mu);
    db->closing = 1;
    pthread_cond_signal(&db->wake);
    pthread_mutex_unlock(&db->mu);
    pthread_join(db->writer, NULL);
    db->writer_started = 0;
}

static void destroy(struct rundb *db)
{
    sqlite3_finalize(db->ins_req);
    sqlite3_finalize(db->ins_ev);
    sqlite3_close(db->sql);
    pthread_cond_destroy(&db->done);
    pthread_cond_destroy(&db->wake);
    pthread_mutex_destroy(&db->mu);
    free(db->q);
    free(db);
}

int rundb_finish(struct rundb *db, const char *status, int64_t duration_us)
{
    sqlite3_stmt *st = NULL;
    struct timespec now;
    int rc = -1;

    if (db == NULL)
        return 0;
    stop_writer(db);
    if (status == NULL || (strcmp(status, "complete") != 0 && strcmp(status, "aborted") != 0 &&
                           strcmp(status, "failed") != 0))
        status = "failed";
    clock_gettime(CLOCK_REALTIME, &now);
    if (sqlite3_prepare_v2(db->sql,
                           "UPDATE runs SET status = ?, ended_wall_us = ?, duration_us = ?"
                           " WHERE id = 1",
                           -1, &st, NULL) != SQLITE_OK ||
        sqlite3_bind_text(st, 1, status, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_int64(st, 2, (sqlite3_int64)now.tv_sec * 1000000 + now.tv_nsec / 1000) !=
            SQLITE_OK ||
        bind_time(st, 3, duration_us) != SQLITE_OK || sqlite3_step(st) != SQLITE_DONE)
        goto out;
    if (db->failed_rows == 0 && db->refused_rows == 0)
        rc = 0;
out:
    sqlite3_finalize(st);
    destroy(db);
    return rc;
}

void rundb_close(struct rundb *db)
{
    if (db == NULL)
        return;
    stop_writer(db);
    destroy(db);
}

int rundb_last_error(struct rundb *db, char *err, size_t errlen)
{
    int rc = 0;

    if (db == NULL)
        return 0;
    pthread_mutex_lock(&db->mu);
    if (db->werr[0] != '\0' || db->refused_rows > 0) {
        rc = -1;
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "%s%s%" PRIu64 " rows lost in commits, %" PRIu64
                     " refused (queue full)",
                     db->werr, db->werr[0] ? "; " : "", db->failed_rows, db->refused_rows);
    }
    pthread_mutex_unlock(&db->mu);
    return rc;
}

/* ---- reading ---- */

static char *dup_col(sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    int n = sqlite3_column_bytes(st, col);
    char *s = malloc((size_t)n + 1);

    if (s == NULL)
        return NULL;
    if (t != NULL)
        memcpy(s, t, (size_t)n);
    s[n] = '\0';
    return s;
}

static void col_field(sqlite3_stmt *st, int col, char *dst, size_t dstlen)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    size_t n = (size_t)sqlite3_column_bytes(st, col);

    if (t == NULL)
        n = 0;
    if (n > dstlen - 1)
        n = dstlen - 1;
    if (n > 0)
        memcpy(dst, t, n);
    dst[n] = '\0';
}

static int64_t col_time(sqlite3_stmt *st, int col)
{
    if (sqlite3_column_type(st, col) == SQLITE_NULL)
        return -1;
    return sqlite3_column_int64(st, col);
}

static int count_rows(sqlite3 *sql, const char *q, int64_t *n)
{
    sqlite3_stmt *st = NULL;
    int rc = -1;

    if (sqlite3_prepare_v2(sql, q, -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW)
        goto out;
    *n = sqlite3_column_int64(st, 0);
    rc = 0;
out:
    sqlite3_finalize(st);
    return rc;
}

void rundb_data_free(struct run_data *d)
{
    if (d == NULL)
        return;
    free(d->name);
    free(d->meta_json);
    free(d->status);
    free(d->req);
    free(d->ev);
    free(d);
}

struct run_data *rundb_load(const char *path, char *err, size_t errlen)
{
    sqlite3 *sql = NULL;
    sqlite3_stmt *st = NULL;
    struct run_data *d = NULL, *ret = NULL;
    int64_t nreq = 0, nev = 0, version = 0;
    size_t i;

    if (path == NULL || access(path, R_OK) != 0) {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "run DB %s: %s", path ? path : "(null)", strerror(errno));
        goto out;
    }
    if (sqlite3_open_v2(path, &sql, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        set_err(err, errlen, "run DB: open", sql);
        goto out;
    }
    sqlite3_busy_timeout(sql, 5000);
    if (count_rows(sql, "PRAGMA user_version", &version) != 0) {
        set_err(err, errlen, "run DB: not a SQLite database", sql);
        goto out;
    }
    if (version != RUNDB_SCHEMA_VERSION) {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen,
                     version == 0 ? "run DB %s: not a slodrill run DB (no schema version)"
                                  : "run DB %s: schema version %" PRId64
                                    " is not the one this slodrill reads (%d)",
                     path, version, RUNDB_SCHEMA_VERSION);
        goto out;
    }
    d = calloc(1, sizeof *d);
    if (d == NULL)
        goto nomem;
    if (sqlite3_prepare_v2(sql,
                           "SELECT name, meta_json, status, started_wall_us, duration_us"
                           " FROM runs WHERE id = 1",
                           -1, &st, NULL) != SQLITE_OK) {
        set_err(err, errlen, "run DB: runs", sql);
        goto out;
    }
    if (sqlite3_step(st) != SQLITE_ROW) {
        set_err(err, errlen, "run DB: the runs table has no row", NULL);
        goto out;
    }
    d->name = dup_col(st, 0);
    d->meta_json = dup_col(st, 1);
    d->status = dup_col(st, 2);
    if (d->name == NULL || d->meta_json == NULL || d->status == NULL)
        goto nomem;
    d->started_wall_us = (uint64_t)sqlite3_column_int64(st, 3);
    d->duration_us = col_time(st, 4);
    sqlite3_finalize(st);
    st = NULL;
    if (strcmp(d->status, "complete") != 0 && strcmp(d->status, "aborted") != 0 &&
        strcmp(d->status, "failed") != 0) {
        free(d->status);
        d->status = strdup("incomplete");
        if (d->status == NULL)
            goto nomem;
        d->duration_us = -1;
    }

    if (count_rows(sql, "SELECT COUNT(*) FROM requests", &nreq) != 0 ||
        count_rows(sql, "SELECT COUNT(*) FROM events", &nev) != 0) {
        set_err(err, errlen, "run DB: count", sql);
        goto out;
    }
    if (nreq > RUNDB_MAX_LOAD_REQUESTS || nev > RUNDB_MAX_LOAD_EVENTS) {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen,
                     "run DB %s: %" PRId64 " requests and %" PRId64
                     " events; reports read at most %d and %d",
                     path, nreq, nev, RUNDB_MAX_LOAD_REQUESTS, RUNDB_MAX_LOAD_EVENTS);
        goto out;
    }
    d->req = calloc(nreq > 0 ? (size_t)nreq : 1, sizeof *d->req);
    d->ev = calloc(nev > 0 ? (size_t)nev : 1, sizeof *d->ev);
    if (d->req == NULL || d->ev == NULL)
        goto nomem;

    if (sqlite3_prepare_v2(sql,
                           "SELECT seq, intended_us, started_us, first_byte_us, first_token_us,"
                           " end_us, http_status, outcome, attempts, failover_hops, cache_hit,"
                           " stream, input_tokens, output_tokens, cost_usd, provider,"
                           " deployment, model, tenant, user, feature, request_id, error"
                           " FROM requests ORDER BY seq, rowid",
                           -1, &st, NULL) != SQLITE_OK) {
        set_err(err, errlen, "run DB: requests", sql);
        goto out;
    }
    for (i = 0; i < (size_t)nreq && sqlite3_step(st) == SQLITE_ROW; i++) {
        struct req_record *r = &d->req[i];
        const char *oname = (const char *)sqlite3_column_text(st, 7);
        int o = outcome_from_name(oname);

        r->seq = sqlite3_column_int64(st, 0);
        r->intended_us = sqlite3_column_int64(st, 1);
        r->started_us = col_time(st, 2);
        r->first_byte_us = col_time(st, 3);
        r->first_token_us = col_time(st, 4);
        r->end_us = col_time(st, 5);
        r->http_status = sqlite3_column_int(st, 6);
        /* An outcome this build does not know is treated as a failure. */
        r->outcome = o < 0 ? OUTCOME_RETRYABLE_ERROR : (enum outcome)o;
        r->attempts = sqlite3_column_int(st, 8);
        r->failover_hops = sqlite3_column_int(st, 9);
        r->cache_hit = sqlite3_column_int(st, 10);
        r->stream = sqlite3_column_int(st, 11);
        r->input_tokens = (long)sqlite3_column_int64(st, 12);
        r->output_tokens = (long)sqlite3_column_int64(st, 13);
        r->cost_usd = sqlite3_column_type(st, 14) == SQLITE_NULL ? -1
                                                                : sqlite3_column_double(st, 14);
        col_field(st, 15, r->provider, sizeof r->provider);
        col_field(st, 16, r->deployment, sizeof r->deployment);
        col_field(st, 17, r->model, sizeof r->model);
        col_field(st, 18, r->tenant, sizeof r->tenant);
        col_field(st, 19, r->user, sizeof r->user);
        col_field(st, 20, r->feature, sizeof r->feature);
        col_field(st, 21, r->request_id, sizeof r->request_id);
        col_field(st, 22, r->error, sizeof r->error);
    }
    d->nreq = i;
    sqlite3_finalize(st);
    st = NULL;

    if (sqlite3_prepare_v2(sql, "SELECT t_us, kind, subject, detail FROM events ORDER BY t_us, id",
                           -1, &st, NULL) != SQLITE_OK) {
        set_err(err, errlen, "run DB: events", sql);
        goto out;
    }
    for (i = 0; i < (size_t)nev && sqlite3_step(st) == SQLITE_ROW; i++) {
        struct run_event *e = &d->ev[i];
        e->t_us = sqlite3_column_int64(st, 0);
        col_field(st, 1, e->kind, sizeof e->kind);
        col_field(st, 2, e->subject, sizeof e->subject);
        col_field(st, 3, e->detail, sizeof e->detail);
    }
    d->nev = i;
    ret = d;
    d = NULL;
    goto out;
nomem:
    set_err(err, errlen, "run DB: out of memory", NULL);
out:
    sqlite3_finalize(st);
    sqlite3_close(sql);
    rundb_data_free(d);
    return ret;
}
