/* fake.h -- a scriptable fake LLM provider on a real socket.
 *
 * One struct fake is one provider (OpenAI or Anthropic dialect) served by
 * evhttp on one port. Its first loop is the event loop it was created on;
 * with threads > 1 it also runs threads - 1 loops of its own, each with its
 * own listening socket on the same port (SO_REUSEPORT: the kernel spreads
 * connections over them). Faults can be added and cleared from any thread
 * (a mutex guards the fault table and everything the loops share).
 *
 * The fakes share no wire-format code with the router (DESIGN.md): every byte
 * they send is written here. */
#ifndef SLODRILL_FAKE_H
#define SLODRILL_FAKE_H

#include <stddef.h>
#include <stdint.h>
#include "common/compiler.h"

struct event_base;
struct ynode;

enum fake_dialect { FAKE_OPENAI, FAKE_ANTHROPIC };

struct fake_latency {
    double ttft_median_ms, ttft_p95_ms;  /* log-normal time to first token */
    double tokens_per_s;                 /* mean output rate */
    double output_tokens_median;         /* log-normal answer length, >= 1 */
};

struct fake_spec {
    char name[64];
    enum fake_dialect dialect;
    char key[128];           /* the one valid key ("" accepts any) */
    char model[128];         /* model name reported ("" = "<name>-model") */
    char host[64];           /* listen host, default 127.0.0.1 */
    int port;                /* 0 = ephemeral */
    struct fake_latency latency;
    uint64_t seed;
    int fault_header;        /* honour x-slodrill-fault (default 1) */
    char control_token[64];  /* control API token ("" = none required) */
    int64_t fixed_created;   /* > 0: every "created" field says this Unix time
                                (golden tests); 0 = the wall clock */
    int threads;             /* loop threads serving the port, 1..FAKE_MAX_THREADS;
                                0 = one per CPU this process may run on */
};

#define FAKE_MAX_THREADS 8

/* Defaults: openai, 127.0.0.1:0, ttft 300/900 ms, 80 tok/s, 40 tokens,
 * seed 1, fault_header on, threads 0 (one per CPU, at most 8). */
void fake_spec_defaults(struct fake_spec *s);

/* Fills a spec from one entry of a scenario's providers: list (a map with
 * name, dialect, key, model, listen, latency: {ttft_ms: {median, p95},
 * tokens_per_s, output_tokens}, fault_header, control_token, seed, threads).
 * Errors are positioned. */
int fake_spec_from_yaml(const struct ynode *n, struct fake_spec *s, char *err,
                        size_t errlen) WUR;

enum fault_kind {
    FAULT_HTTP_ERROR, FAULT_RATE_LIMIT, FAULT_OVERLOADED, FAULT_REVOKE_KEY,
    FAULT_SLOW_TTFT, FAULT_SLOW_TOKENS, FAULT_STALL, FAULT_CUT, FAULT_ERROR_EVENT,
    FAULT_MALFORMED, FAULT_EGRESS_BLOCK, FAULT__COUNT
};
/* "http_error", ...; -1 for unknown names. */
const char *fault_kind_name(enum fault_kind k);
int fault_kind_from_name(const char *name);

struct fault_spec {
    enum fault_kind kind;
    int status;              /* http_error: status (default 503) */
    double probability;      /* per request, 0..1 (default 1) */
    char key[128];           /* only requests with this key ("" = all) */
    double duration_s;       /* clears itself after this (<= 0 = until cleared) */
    double ms;               /* slow_ttft, slow_tokens: delay; cut: after ms */
    int after_events;        /* cut, error_event: after N events */
    double retry_after_s;    /* rate_limit */
    char mode[16];           /* egress_block: refuse|blackhole|reset; cut: close|reset;
                                rate_limit: requests|tokens|quota */
};

void fault_spec_defaults(struct fault_spec *f, enum fault_kind kind);
/* Parses "NAME[;param=value...]" (the x-slodrill-fault header syntax:
 * status, probability, key, duration, ms, after_events, retry_after, mode). */
int fault_spec_parse(const char *text, struct fault_spec *f, char *err, size_t errlen) WUR;

struct fake;

/* Starts listening at once; the extra loop threads (spec->threads > 1) start
 * serving at once, the first loop when the caller runs base. base is
 * borrowed and must be thread-aware (evthread_use_pthreads() before it was
 * created) when threads > 1 or faults are changed from other threads.
 * Caller frees with fake_free. */
struct fake *fake_new(struct event_base *base, const struct fake_spec *spec, char *err,
                      size_t errlen) WUR;
/* Stops the fake's own threads, then frees everything. Call it on the thread
 * that runs base, or once base no longer runs. */
void fake_free(struct fake *f);
/* How many loops serve the port (spec->threads, resolved). */
int fake_threads(const struct fake *f);

const char *fake_name(const struct fake *f);
int fake_port(const struct fake *f);
/* Root URL, "http://127.0.0.1:PORT" (no /v1). Borrowed. */
const char *fake_url(const struct fake *f);

/* Thread-safe. A second fault of the same kind replaces the first. */
int fake_fault_add(struct fake *f, const struct fault_spec *spec) WUR;
/* Clears faults of this kind; kind -1 clears all. Thread-safe. */
void fake_fault_clear(struct fake *f, int kind);
/* Copies up to max active faults into out and returns how many there are;
 * remaining_s (may be NULL) receives each one's seconds left (0 = until
 * cleared). Thread-safe. */
int fake_fault_list(struct fake *f, struct fault_spec *out, double *remaining_s, int max);

/* Listener changes (egress_block refuse on, or cleared) happen on each loop's
 * thread. fake_fault_add/clear wait up to 250 ms for every loop that runs on
 * another thread (the first loop: once it has run) to apply them; on a loop
 * thread, that loop applies them when the current callback returns. */

/* Requests received (thread-safe counters, for tests and reports). */
/* requests: API requests received (control API calls not counted); ok:
 * answered in full with no fault; faulted: hit by at least one fault;
 * auth_failed: wrong or missing key (revoke_key counts as faulted);
 * in_flight: requests still open (streaming, waiting, or held silent by
 * blackhole/stall until their client hangs up); events: stream events sent;
 * events_late: those sent more than FAKE_LATE_MS after they were due (an
 * overloaded fake keeps the average pace by sending late events together). */
struct fake_stats {
    uint64_t requests, ok, faulted, auth_failed;
    uint64_t in_flight;
    uint64_t events, events_late;
};
#define FAKE_LATE_MS 10
void fake_stats_get(struct fake *f, struct fake_stats *out);

#endif
