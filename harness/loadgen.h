/* loadgen.h -- open-loop load generator: libcurl multi_socket on libevent.
 *
 * DESIGN: requests follow a schedule fixed in advance (constant or Poisson
 * arrivals at a rate that is constant, ramps, or steps); each one's latency is measured from its intended
 * start, so a stalled generator or a slow system cannot hide. A request that
 * cannot start because max_inflight requests are running is counted as
 * dropped and recorded, never queued. Each finished request becomes one
 * struct req_record handed to the run DB. Streams are read event by event
 * (common/sse); the first token is the first event carrying content.
 *
 * What a record says (times on the run clock, us since t0_mono_us):
 * - intended_us: the schedule (constant: k/rate; Poisson: seeded exponential
 *   gaps; request 0 is at 0). started_us: when curl got the handle. A request
 *   started more than 1 ms after its intended time counts in stats.late.
 * - first_byte_us: first response body byte. first_token_us: streams, the
 *   first event whose choices[0].delta.content is a non-empty string (role-only
 *   and empty chunks are not tokens); non-streamed responses, the time the
 *   whole body had arrived (= end_us). -1 when it never came.
 * - outcome: 2xx complete -> ok (served_from_cache when the response says
 *   "x-slodrill-cache: hit"); 429 -> rate_limited; 400/404/413/422 ->
 *   client_error; every other status (401/403 too: the harness always sends
 *   a valid key, so an auth error at the edge is the system's fault; 5xx;
 *   1xx/3xx) -> retryable_error; client timeout -> timeout; connection
 *   errors -> retryable_error. A 2xx that fails in-band is retryable_error:
 *   an error event in a stream ({"error":...} or "event: error"), a stream
 *   that ends without "data: [DONE]" ("stream cut: ..."), invalid JSON, a
 *   2xx body that is only an error, a response over the bounds (headers
 *   64 KiB, non-stream body or one SSE event 1 MiB: "response too large").
 *   Stream content is never kept. Error bodies keep their first 64 KiB only,
 *   for the message put in error ("HTTP 503: ...").
 * - dropped: a request due while max_inflight are running is not sent; it
 *   is recorded at once with outcome timeout, error "dropped: max_inflight",
 *   http_status 0, started_us -1, end_us when it was dropped.
 * - who served: provider = the x-slodrill-provider header, else the header
 *   opts->served_by_header names, else the response JSON's "model" (the fakes
 *   stamp their name there); model = x-slodrill-model, else JSON "model";
 *   deployment, attempts, failover_hops from x-slodrill-deployment,
 *   -attempts, -fallbacks; request_id from x-slodrill-request-id, else
 *   x-request-id, else JSON "id"; cost from x-slodrill-cost-usd (also read as
 *   an HTTP trailer), else -1; tokens from the usage object (prompt_tokens /
 *   completion_tokens, or input_tokens / output_tokens).
 *
 * Requests send POST JSON {"model","messages","stream","max_tokens" (when
 * > 0),"stream_options":{"include_usage":true} (streams),"user" (when the
 * prompt has one)} with Authorization: Bearer, Content-Type, Accept,
 * x-tenant-id / x-user-id / x-feature from the prompt, then opts->headers.
 * Thread: everything runs on the event loop's thread. */
#ifndef SLODRILL_LOADGEN_H
#define SLODRILL_LOADGEN_H

#include <stddef.h>
#include <stdint.h>
#include "common/compiler.h"

struct event_base;
struct rundb;

enum arrival { ARRIVAL_CONSTANT, ARRIVAL_POISSON };

struct prompt {
    char *messages_json;  /* a JSON array of chat messages */
    char *tenant, *user, *feature; /* may be NULL */
    double weight;        /* relative pick weight (default 1) */
};

struct prompt_set {
    struct prompt *v;
    size_t n;
};

/* Loads JSONL: each line an object {"messages": [...], "tenant", "user",
 * "feature", "weight"} or {"prompt": "text"} (one user message). Errors say
 * file:line:col. Caller frees with prompt_set_free. */
int prompt_set_load(const char *path, struct prompt_set *out, char *err, size_t errlen) WUR;
/* A built-in set of short support-style prompts, for scenarios without one. */
int prompt_set_builtin(struct prompt_set *out) WUR;
void prompt_set_free(struct prompt_set *ps);

struct loadgen_header { const char *name, *value; };

/* One piece of a stepped schedule: rate for duration_s, or, when ramp_to > 0,
 * a rate going linearly from rate to ramp_to over duration_s. rate may be 0
 * (a pause, or a ramp up from nothing). */
struct loadgen_step {
    double rate;
    double ramp_to;
    double duration_s;
};

struct loadgen_opts {
    const char *url;            /* full URL, ".../v1/chat/completions"; borrowed */
    const char *api_key;        /* Bearer token, may be NULL; borrowed */
    const char *model;          /* model alias sent in the body; borrowed */
    double rate;                /* requests per second */
    enum arrival arrival;
    double duration_s;          /* schedule length */
    int stream;
    long max_tokens;            /* 0 = not sent */
    const struct prompt_set *prompts; /* borrowed */
    const struct loadgen_header *headers; size_t nheaders; /* borrowed */
    uint64_t seed;
    double timeout_s;           /* client-side timeout per request (default 30) */
    int max_inflight;           /* default 10000 */
    const char *served_by_header; /* extra header naming who served (NULL = ours) */
    struct rundb *db;           /* borrowed; records go here */
    uint64_t t0_mono_us;        /* run clock zero (clock_mono_us()); schedule starts here */

    /* Schedule shapes; all zero = the constant rate above for duration_s.
     * ramp_to > 0: the rate goes linearly from rate to ramp_to over
     * duration_s. nsteps > 0: the schedule is steps[] in order (rate,
     * ramp_to and duration_s above are ignored; the length is the sum of the
     * steps); copied. Arrivals follow `arrival` within any shape: constant
     * places request k where the expected count reaches k, Poisson draws a
     * non-homogeneous Poisson process with that rate. */
    double ramp_to;
    const struct loadgen_step *steps;
    size_t nsteps;
    /* > 0: closed loop instead of a schedule, for capacity probes only: this
     * many workers, each sending its next request as soon as the previous
     * one ends, until duration_s has passed. A request's intended start is
     * then when its worker became free, so a slow system slows the load and
     * hides its own latency (coordinated omission): never gate an SLO on a
     * closed-loop run. rate, ramp_to and steps are ignored. */
    int closed_workers;
};

/* The schedule's length in seconds for opts (the sum of the steps, or
 * duration_s). */
double loadgen_schedule_length_s(const struct loadgen_opts *opts);

/* Live figures for the progress line. Thread: the loop's.
 * scheduled: requests whose intended time has come; started: handed to curl;
 * done: recorded (dropped ones included); ok: outcome ok or served_from_cache;
 * failed: outcomes that count against the success rate (retryable_error,
 * timeout; dropped ones included); rate_limited and client_error count in
 * done only. Rolling figures cover requests that finished in the last 10 s:
 * success rate = 100 * (1 - failed / finished); p95 = exact order statistic
 * of (first token, else end) - intended over the ok ones; top provider =
 * who served most of the ok ones. connects: TCP connections opened (keep-alive
 * reuse keeps it far below started). */
struct loadgen_stats {
    uint64_t scheduled, started, done, ok, failed, dropped, late, inflight;
    uint64_t connects;
    double rolling_sr;          /* percent over the last 10 s of finished requests; -1 none */
    double rolling_p95_s;       /* over the last 10 s; -1 none */
    char top_provider[64];      /* who served most in the last 10 s; "" none */
    double top_share;           /* its share, percent; -1 none */
};

struct loadgen;

/* base and opts' pointers are borrowed and must outlive the generator (the
 * prompts and headers are copied into per-prompt request bodies at once).
 * The schedule starts at opts->t0_mono_us (0 = now). Creates its own curlev
 * on base. on_done (may be NULL) is called once, on the loop, on a turn of
 * its own (it may call loadgen_free), when the schedule is over (or
 * loadgen_stop or loadgen_drain was called) and every request has finished. NULL on bad
 * options with the reason in err. Caller frees with loadgen_free. */
struct loadgen *loadgen_new(struct event_base *base, const struct loadgen_opts *opts,
                            void (*on_done)(void *arg), void *arg, char *err,
                            size_t errlen) WUR;
/* Stops scheduling; running requests are cut and recorded as timeouts with
 * error "aborted". on_done follows on a later loop turn. Not from inside the
 * generator's own callbacks; calling it twice does nothing. */
void loadgen_stop(struct loadgen *lg);
/* Ends the load on purpose, gently: stops scheduling new requests and lets
 * the ones in flight finish and be recorded as they end (on_done follows the
 * last one). Bounded by the per-request timeout: whatever is still running
 * timeout_s + 1 s later is cut as loadgen_stop cuts it. Same calling rules as
 * loadgen_stop; loadgen_stop after a drain cuts what is left at once; a drain
 * after a stop, or a second drain, does nothing. */
void loadgen_drain(struct loadgen *lg);
void loadgen_get_stats(const struct loadgen *lg, struct loadgen_stats *out);
/* Frees everything. Requests still running are cancelled WITHOUT a record:
 * call loadgen_stop first to record them (and before closing the run DB).
 * NULL does nothing. */
void loadgen_free(struct loadgen *lg);

#endif
