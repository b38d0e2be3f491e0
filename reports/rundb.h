/* rundb.h -- the run DB: every request and event of a run, in SQLite.
 *
 * DESIGN: writers (the load generator, the runner, the router's event hook,
 * possibly on different threads) hand records to rundb_add_*, which copy them
 * into a queue under a mutex and return at once. A writer thread commits the
 * queue in one transaction every flush interval (100 ms) or every 4096 rows,
 * so nothing blocks an event loop and a run killed half-way loses at most the
 * last interval. WAL mode; the schema carries a version (PRAGMA user_version).
 * Readers (reports) open the file on their own with rundb_load. */
#ifndef SLODRILL_RUNDB_H
#define SLODRILL_RUNDB_H

#include <stddef.h>
#include <stdint.h>
#include "common/compiler.h"

#define RUNDB_SCHEMA_VERSION 1

/* Outcome classes at the router edge (DESIGN.md). Stored as their names. */
enum outcome {
    OUTCOME_OK = 0,
    OUTCOME_RETRYABLE_ERROR,    /* 5xx, 401/403 at the edge, connection errors */
    OUTCOME_TIMEOUT,            /* the client gave up */
    OUTCOME_CLIENT_ERROR,       /* 400, 404, 413, 422: the request's own fault */
    OUTCOME_REJECTED_BY_BUDGET, /* a guardrail said no */
    OUTCOME_RATE_LIMITED,       /* 429 */
    OUTCOME_SERVED_FROM_CACHE,  /* ok, from the router's cache */
    OUTCOME__COUNT
};
const char *outcome_name(enum outcome o);
/* -1 for an unknown name. */
int outcome_from_name(const char *name);
/* 1 when the class counts against the success-rate SLI. */
int outcome_is_failure(enum outcome o);

/* Times are microseconds on the run clock: 0 is the run's start (the first
 * request's intended start). -1 means "did not happen". */
struct req_record {
    int64_t seq;               /* 0, 1, 2, ... in schedule order */
    int64_t intended_us;       /* open-loop schedule */
    int64_t started_us;        /* when the request actually went out */
    int64_t first_byte_us;     /* first response byte */
    int64_t first_token_us;    /* first event carrying content (or body, unstreamed) */
    int64_t end_us;
    int http_status;           /* 0 when no response */
    enum outcome outcome;
    int attempts;              /* upstream attempts the router reported (0 unknown) */
    int failover_hops;         /* deployments beyond the first (0 unknown or none) */
    int cache_hit;             /* 0 no; 1 a fresh cache answer; 2 a stale one (travel mode) */
    int stream;
    long input_tokens, output_tokens;
    double cost_usd;           /* -1 unknown */
    char provider[64];         /* who served: provider name ("" unknown) */
    char deployment[64];       /* router deployment id ("" unknown) */
    char model[128];           /* model that served */
    char tenant[64], user[64], feature[64];
    char request_id[64];
    char error[256];           /* short reason when not ok */
};

/* Events share the run clock. kind: "fault_on", "fault_off", "cooldown_start",
 * "cooldown_end", "phase", "note", "stop", "run_start", "run_end". */
struct run_event {
    int64_t t_us;
    char kind[32];
    char subject[64];   /* provider, deployment, phase name; "" none */
    char detail[512];   /* free text or JSON */
};

struct rundb;

/* Creates path (fails if it exists) with the schema, WAL, and a runs row.
 * meta_json describes the run (scenario, SLO, expectations, seed, config) as
 * JSON; stored verbatim and read back by reports. started_wall_us is the wall
 * time of run-clock 0. Caller closes with rundb_close. */
struct rundb *rundb_create(const char *path, const char *name, const char *meta_json,
                           uint64_t started_wall_us, char *err, size_t errlen) WUR;

/* Thread-safe, never blocks on disk. Records are copied. -1 only after close
 * started, out of memory, or when 262144 rows already wait for the writer
 * (the disk is far behind); such rows are counted and rundb_last_error says
 * how many. */
int rundb_add_request(struct rundb *db, const struct req_record *r) WUR;
int rundb_add_event(struct rundb *db, const struct run_event *e) WUR;
/* Convenience: an event from parts (strings may be NULL). */
int rundb_event(struct rundb *db, int64_t t_us, const char *kind, const char *subject,
                const char *detail) WUR;

/* Blocks until everything queued so far is committed. -1 when any row was
 * lost so far (a failed commit or a refused add); see rundb_last_error. */
int rundb_flush(struct rundb *db) WUR;

/* 0 when no row was lost; otherwise -1 and err says why and how many. */
int rundb_last_error(struct rundb *db, char *err, size_t errlen) WUR;

/* Marks the run complete (ended_wall_us, status: "complete", "aborted" or
 * "failed"; anything else is stored as "failed"), commits the rest, stops the
 * writer, closes and frees db (do not call rundb_close after it). db may be
 * NULL. -1 when rows were lost or the update failed; db is freed either way.
 * A run never finished this way reads back as "incomplete". rundb_close
 * alone commits the rest and frees db but leaves the run "incomplete". */
int rundb_finish(struct rundb *db, const char *status, int64_t duration_us);
void rundb_close(struct rundb *db);

/* ---- reading ---- */

struct run_data {
    char *name;
    char *meta_json;        /* as stored */
    char *status;           /* "complete", "aborted", "failed", "incomplete" */
    uint64_t started_wall_us;
    int64_t duration_us;    /* -1 when incomplete: use the last record's end */
    struct req_record *req; /* sorted by seq */
    size_t nreq;
    struct run_event *ev;   /* sorted by t_us */
    size_t nev;
};

/* Bounds on what rundb_load reads into memory. */
#define RUNDB_MAX_LOAD_REQUESTS 2000000
#define RUNDB_MAX_LOAD_EVENTS 200000

/* Loads a run DB (read-only), also one still being written or left by a
 * killed process. Fails on a schema version other than RUNDB_SCHEMA_VERSION.
 * Caller frees with rundb_data_free. */
struct run_data *rundb_load(const char *path, char *err, size_t errlen) WUR;
void rundb_data_free(struct run_data *d);

#endif
