/* reqlog.h -- the router's own request log: one SQLite row per client request.
 *
 * The proxy hands each finished request's record to reqlog_add() on its loop
 * thread; a writer thread of its own batches them into the file in one
 * transaction per wake-up, so the loop never waits on the disk. The router
 * does not link reports/: this is its own small writer, with its own table
 * (schema in docs/routing.md, "Request log"). */
#ifndef SLODRILL_ROUTER_REQLOG_H
#define SLODRILL_ROUTER_REQLOG_H

#include <stddef.h>
#include <stdint.h>
#include "common/compiler.h"

/* Records waiting for the writer past which new ones are dropped (and
 * counted): a disk that stalls cannot grow the router's memory unbounded. */
#define REQLOG_MAX_PENDING 50000

/* One request as the client saw it. Strings are copied (and cut to size). */
struct reqlog_rec {
    char request_id[48];
    uint64_t start_wall_us;  /* arrival, wall clock (Unix us) */
    double ttft_ms;          /* arrival to the first answer byte sent; < 0 none (errors) */
    double duration_ms;      /* arrival to the end of the answer */
    int status;              /* HTTP status sent to the client (0: none, client gone) */
    char outcome[24];        /* ok, retryable_error, timeout, client_error, rate_limited,
                                cancelled */
    char alias[128];         /* the model the client asked for */
    char deployment[128];    /* model_info.id that served (or was tried last); "" none */
    char provider[64];
    char model[128];         /* model name sent upstream */
    int attempts, hops, fallbacks;
    int stream;
    int pinned;              /* the client chose the deployment */
    long input_tokens, output_tokens; /* < 0 unknown */
    double cost_usd;         /* < 0 unknown */
    char tenant[64], user[128], feature[64];
    char error[256];         /* what went wrong, "" when ok */
};

struct reqlog;

/* Opens (creates) the SQLite file at path with the requests table, in WAL
 * mode, and starts the writer thread. NULL with err on failure. Caller
 * frees with reqlog_close. */
struct reqlog *reqlog_open(const char *path, char *err, size_t errlen) WUR;

/* Queues a copy of rec; never blocks on the disk. -1 when it was dropped
 * (REQLOG_MAX_PENDING waiting, or out of memory). Any thread. */
int reqlog_add(struct reqlog *l, const struct reqlog_rec *rec) WUR;

/* Writes what is queued, stops the writer, closes the file. NULL does nothing. */
void reqlog_close(struct reqlog *l);

struct reqlog_stats {
    uint64_t queued, written, dropped, failed; /* failed: rows SQLite refused */
};
void reqlog_stats_get(struct reqlog *l, struct reqlog_stats *out);

/* Blocks until everything queued so far is written or timeout_ms passed;
 * 0 when written. For tests and shutdown, never on the loop. */
int reqlog_flush(struct reqlog *l, int timeout_ms) WUR;

#endif
