/* ledger.c -- monthly spend per tenant and user on SQLite: totals in memory, deltas batched.
 *
 * DESIGN: an entry is loaded from the file the first time it is asked for
 * and then kept; adds change the total at once and queue a delta. A flush
 * adds the deltas in the file (usd = usd + delta), so several routers that
 * share a file never overwrite each other's spend (each sees the others'
 * only after a restart; a shared live view is the Redis backend's job). */
#include "router/ledger.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LEDGER_BUCKETS 1024
#define LEDGER_MAX_ENTRIES 100000

struct ledger_entry {
    struct ledger_entry *next;
    double usd, delta;
    int marks, new_marks; /* bit per level: 60, 85, 95, 100 */
    char *scope, *id, *month;
};

struct ledger {
    sqlite3 *db;
    sqlite3_stmt *get;
    char path[512];
    struct ledger_entry *tab[LEDGER_BUCKETS];
    size_t n;
    int dirty;
};

static const char ledger_schema[] =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=NORMAL;"
    "CREATE TABLE IF NOT EXISTS spend(scope TEXT NOT NULL, id TEXT NOT NULL, month TEXT NOT NULL,"
    " usd REAL NOT NULL DEFAULT 0, marks INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY(scope, id, month));";

struct ledger *ledger_open(const char *path, char *err, size_t errlen)
{
    struct ledger *l = calloc(1, sizeof *l), *ret = NULL;
    char *msg = NULL;

    if (!l) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    snprintf(l->path, sizeof l->path, "%s", path);
    if (sqlite3_open_v2(path, &l->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", path, l->db ? sqlite3_errmsg(l->db) : "cannot open");
        goto out;
    }
    sqlite3_busy_timeout(l->db, 2000);
    if (sqlite3_exec(l->db, ledger_schema, NULL, NULL, &msg) != SQLITE_OK ||
        sqlite3_prepare_v2(l->db,
                           "SELECT usd, marks FROM spend WHERE scope = ?1 AND id = ?2 AND "
                           "month = ?3",
                           -1, &l->get, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", path, msg ? msg : sqlite3_errmsg(l->db));
        goto out;
    }
    ret = l;
    l = NULL;
out:
    sqlite3_free(msg);
    ledger_close(l);
    return ret;
}

void ledger_close(struct ledger *l)
{
    char err[256];
    size_t i;
    if (!l)
        return;
    if (l->db && l->get && ledger_flush(l, err, sizeof err) != 0)
        fprintf(stderr, "slodrill: ledger: %s\n", err); /* at exit there is no one else to tell */
    for (i = 0; i < LEDGER_BUCKETS; i++) {
        struct ledger_entry *e = l->tab[i], *next;
        for (; e; e = next) {
            next = e->next;
            free(e->scope);
            free(e->id);
            free(e->month);
            free(e);
        }
    }
    sqlite3_finalize(l->get);
    sqlite3_close(l->db);
    free(l);
}

static unsigned ledger_hash(const char *a, const char *b, const char *c)
{
    unsigned h = 2166136261u;
    const char *parts[3] = {a, b, c};
    int i;
    for (i = 0; i < 3; i++) {
        const char *s = parts[i];
        for (; *s; s++)
            h = (h ^ (unsigned char)*s) * 16777619u;
        h = (h ^ 0x1f) * 16777619u;
    }
    return h % LEDGER_BUCKETS;
}

static char *ledger_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

static struct ledger_entry *ledger_entry(struct ledger *l, const char *scope, const char *id,
                                         const char *month)
{
    unsigned h = ledger_hash(scope, id, month);
    struct ledger_entry *e;

    for (e = l->tab[h]; e; e = e->next)
        if (!strcmp(e->id, id) && !strcmp(e->scope, scope) && !strcmp(e->month, month))
            return e;
    if (l->n >= LEDGER_MAX_ENTRIES || !(e = calloc(1, sizeof *e)))
        return NULL;
    e->scope = ledger_strdup(scope);
    e->id = ledger_strdup(id);
    e->month = ledger_strdup(month);
    if (!e->scope || !e->id || !e->month) {
        free(e->scope);
        free(e->id);
        free(e->month);
        free(e);
        return NULL;
    }
    sqlite3_reset(l->get);
    sqlite3_bind_text(l->get, 1, scope, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(l->get, 2, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(l->get, 3, month, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(l->get) == SQLITE_ROW) {
        e->usd = sqlite3_column_double(l->get, 0);
        e->marks = sqlite3_column_int(l->get, 1);
    }
    sqlite3_reset(l->get);
    e->next = l->tab[h];
    l->tab[h] = e;
    l->n++;
    return e;
}

double ledger_spent(struct ledger *l, const char *scope, const char *id, const char *month)
{
    struct ledger_entry *e = ledger_entry(l, scope, id, month);
    return e ? e->usd : 0;
}

int ledger_add(struct ledger *l, const char *scope, const char *id, const char *month, double usd)
{
    struct ledger_entry *e = ledger_entry(l, scope, id, month);
    if (!e)
        return -1;
    if (usd > 0) {
        e->usd += usd;
        e->delta += usd;
        l->dirty = 1;
    }
    return 0;
}

static int ledger_bit(int level)
{
    return level >= 100 ? 8 : level >= 95 ? 4 : level >= 85 ? 2 : level >= 60 ? 1 : 0;
}

int ledger_cross(struct ledger *l, const char *scope, const char *id, const char *month,
                 int level)
{
    struct ledger_entry *e = ledger_entry(l, scope, id, month);
    int bit = ledger_bit(level);
    if (!e || !bit || (e->marks & bit))
        return 0;
    e->marks |= bit;
    e->new_marks |= bit;
    l->dirty = 1;
    return 1;
}

int ledger_dirty(const struct ledger *l)
{
    return l->dirty;
}

int ledger_flush(struct ledger *l, char *err, size_t errlen)
{
    sqlite3_stmt *up = NULL;
    size_t i;
    int rc = -1, began = 0;

    if (!l->dirty)
        return 0;
    if (sqlite3_exec(l->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        goto fail;
    began = 1;
    if (sqlite3_prepare_v2(l->db,
                           "INSERT INTO spend(scope, id, month, usd, marks) VALUES "
                           "(?1, ?2, ?3, ?4, ?5) ON CONFLICT(scope, id, month) DO UPDATE SET "
                           "usd = usd + excluded.usd, marks = marks | excluded.marks",
                           -1, &up, NULL) != SQLITE_OK)
        goto fail;
    for (i = 0; i < LEDGER_BUCKETS; i++) {
        struct ledger_entry *e;
        for (e = l->tab[i]; e; e = e->next) {
            if (e->delta == 0 && !e->new_marks)
                continue;
            sqlite3_reset(up);
            sqlite3_bind_text(up, 1, e->scope, -1, SQLITE_STATIC);
            sqlite3_bind_text(up, 2, e->id, -1, SQLITE_STATIC);
            sqlite3_bind_text(up, 3, e->month, -1, SQLITE_STATIC);
            sqlite3_bind_double(up, 4, e->delta);
            sqlite3_bind_int(up, 5, e->new_marks);
            if (sqlite3_step(up) != SQLITE_DONE)
                goto fail;
        }
    }
    if (sqlite3_exec(l->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        goto fail;
    began = 0;
    for (i = 0; i < LEDGER_BUCKETS; i++) {
        struct ledger_entry *e;
        for (e = l->tab[i]; e; e = e->next)
            e->delta = 0, e->new_marks = 0;
    }
    l->dirty = 0;
    rc = 0;
    goto out;
fail:
    snprintf(err, errlen, "%s: cannot write the ledger: %s", l->path, sqlite3_errmsg(l->db));
    if (began)
        sqlite3_exec(l->db, "ROLLBACK", NULL, NULL, NULL);
out:
    sqlite3_finalize(up);
    return rc;
}

void ledger_observe(struct ledger *l, const char *scope, const char *id, const char *month,
                    double usd)
{
    struct ledger_entry *e = ledger_entry(l, scope, id, month);
    if (e)
        e->usd = usd + e->delta;
}

void ledger_drain(struct ledger *l,
                  int (*send)(const char *scope, const char *id, const char *month, double usd,
                              void *arg),
                  void *arg)
{
    size_t i;
    int left = 0;
    if (!l->dirty)
        return;
    for (i = 0; i < LEDGER_BUCKETS; i++) {
        struct ledger_entry *e;
        for (e = l->tab[i]; e; e = e->next) {
            if (e->delta == 0)
                continue;
            if (send(e->scope, e->id, e->month, e->delta, arg) == 0)
                e->delta = 0;
            else
                left = 1;
        }
    }
    l->dirty = left;
}

void ledger_requeue(struct ledger *l, const char *scope, const char *id, const char *month,
                    double usd)
{
    struct ledger_entry *e = ledger_entry(l, scope, id, month);
    if (e && usd > 0) {
        e->delta += usd;
        l->dirty = 1;
    }
}

void ledger_month(int64_t wall_ms, char *out, size_t outlen)
{
    time_t t = (time_t)(wall_ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, outlen, "%04d-%02d", tm.tm_year + 1900, tm.tm_mon + 1);
}
