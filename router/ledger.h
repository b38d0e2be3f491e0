/* ledger.h -- monthly spend per tenant and per user in SQLite, surviving restarts.
 *
 * Spend is kept in memory and written in batches (ledger_flush, called by a
 * timer and at close), one transaction each; threshold events (60, 85, 95,
 * 100 %) are recorded so each fires once per scope and month, across
 * restarts. A month is "YYYY-MM" in UTC, given by the caller. */
#ifndef SLODRILL_ROUTER_LEDGER_H
#define SLODRILL_ROUTER_LEDGER_H

#include <stddef.h>
#include <stdint.h>
#include "common/compiler.h"

struct ledger;

/* Opens (creating) the ledger at path. NULL with err. Caller frees with
 * ledger_close, which flushes. */
struct ledger *ledger_open(const char *path, char *err, size_t errlen) WUR;
void ledger_close(struct ledger *l);

/* Spend of scope ("tenant" or "user") id in month, in USD. */
double ledger_spent(struct ledger *l, const char *scope, const char *id, const char *month);

/* Adds usd to scope/id's month. 0 or -1 (out of memory, too many ids). */
int ledger_add(struct ledger *l, const char *scope, const char *id, const char *month,
               double usd) WUR;

/* 1 when level (60, 85, 95, 100) had not yet been reached by scope/id in
 * month; marks it reached. 0 when it had. */
int ledger_cross(struct ledger *l, const char *scope, const char *id, const char *month,
                 int level);

/* Writes pending spend and marks. 0 or -1 with err. */
int ledger_flush(struct ledger *l, char *err, size_t errlen) WUR;
/* 1 when something waits to be written. */
int ledger_dirty(const struct ledger *l);

/* ---- a ledger that mirrors a shared one (budgets backend: redis) ----
 * Opened on ":memory:", it holds this instance's view: the total last read
 * from the shared store plus what was added here and not yet sent. */

/* The shared store says scope/id spent usd in month (everything sent so far
 * included): the local view becomes usd plus what is still unsent. */
void ledger_observe(struct ledger *l, const char *scope, const char *id, const char *month,
                    double usd);
/* Hands every unsent amount to send (scope, id and month are borrowed and
 * stay valid until ledger_close); an amount send returns 0 for is no longer
 * unsent. */
void ledger_drain(struct ledger *l,
                  int (*send)(const char *scope, const char *id, const char *month, double usd,
                              void *arg),
                  void *arg);
/* A sent amount did not arrive: unsent again (the local total keeps it). */
void ledger_requeue(struct ledger *l, const char *scope, const char *id, const char *month,
                    double usd);

/* "YYYY-MM" (UTC) of a wall-clock time in ms into out (>= 8 bytes). */
void ledger_month(int64_t wall_ms, char *out, size_t outlen);

#endif
