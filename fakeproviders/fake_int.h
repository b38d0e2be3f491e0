/* fake_int.h -- private structures shared by the fake provider's files.
 *
 * Not for use outside fakeproviders/. fake.c owns the server, the fault table
 * and the request state machine; fake_openai.c and fake_anthropic.c write the
 * bytes of one dialect each through struct fake_wire; fake_rng.c is the
 * seeded randomness; fake_json.c the JSON string escaping both dialects use. */
#ifndef SLODRILL_FAKE_INT_H
#define SLODRILL_FAKE_INT_H

#include <stddef.h>
#include <stdint.h>
#include "common/buf.h"
#include "common/compiler.h"
#include "fakeproviders/fake.h"

struct evkeyvalq;
struct evhttp_request;
struct cJSON;

/* xoshiro256** seeded through splitmix64: small, fast, reproducible. */
struct fake_rng {
    uint64_t s[4];
};
void fake_rng_seed(struct fake_rng *r, uint64_t seed);
uint64_t fake_rng_next(struct fake_rng *r);
/* Uniform in [0, 1). */
double fake_rng_unit(struct fake_rng *r);
/* Log-normal with the given median and 95th percentile (p95 <= median gives
 * the median every time). */
double fake_rng_lognormal(struct fake_rng *r, double median, double p95);
/* n random characters of [A-Za-z0-9] plus a NUL (out has n + 1 bytes). */
void fake_rng_alnum(struct fake_rng *r, char *out, size_t n);
/* n random lowercase hex digits plus a NUL. */
void fake_rng_hex(struct fake_rng *r, char *out, size_t n);
/* A pronounceable pseudo-word of 1..3 syllables into out (>= 16 bytes). */
void fake_rng_word(struct fake_rng *r, char *out, size_t outlen);

/* Appends s as a JSON string literal, quotes included. */
int fake_json_str(struct buf *b, const char *s) WUR;
/* Bytes of text in a message content: a string, or an array of parts whose
 * "text" members count. */
size_t fake_json_text_bytes(const struct cJSON *content);
/* ceil(bytes / 4) + 3 per message + 3: the usual rough token estimate. */
int fake_json_estimate_tokens(size_t bytes, int messages);

/* Errors the dialects know how to phrase. */
enum fake_err {
    FAKE_ERR_BAD_KEY,      /* wrong or revoked key (key = what was sent) */
    FAKE_ERR_NO_KEY,       /* no key at all */
    FAKE_ERR_RATE_LIMIT,   /* 429; mode requests|tokens|quota */
    FAKE_ERR_OVERLOADED,   /* Anthropic 529, OpenAI 503 */
    FAKE_ERR_HTTP,         /* status N with the dialect's body for N */
    FAKE_ERR_BAD_JSON,     /* body is not JSON */
    FAKE_ERR_MISSING,      /* required field missing (field = its name) */
    FAKE_ERR_NOT_FOUND     /* unknown path */
};

struct fake_errinfo {
    enum fake_err kind;
    int status;               /* FAKE_ERR_HTTP */
    const char *key;          /* FAKE_ERR_BAD_KEY */
    const char *mode;         /* FAKE_ERR_RATE_LIMIT */
    const char *field;        /* FAKE_ERR_MISSING */
    const char *method, *path;/* FAKE_ERR_NOT_FOUND */
    double retry_after_s;     /* FAKE_ERR_RATE_LIMIT */
    const char *message;      /* FAKE_ERR_HTTP: overrides the usual text */
};

/* A prompt-caching breakpoint (fake_cache.c). */
#define FAKE_CACHE_MARKS 4 /* the API's limit of cache_control blocks */
struct fake_cache_mark {
    uint64_t hash;   /* the prompt prefix up to and including the block */
    int tokens;      /* that prefix's tokens */
    uint64_t ttl_us; /* 5 minutes, or 1 hour */
};

/* What one request asked for, and what it is given. Private to the fake. */
struct fake_req {
    struct fake *f;
    struct fake_loop *lp;   /* the loop (thread) this request lives on */
    struct fake_conn *conn;
    struct evhttp_request *req;
    struct event *timer, *cut_timer;
    struct fake_req *next, *prev;

    /* parsed request */
    int stream, include_usage, max_tokens;
    int prompt_tokens;      /* uncached input tokens */
    int cache_read, cache_creation; /* Anthropic prompt caching */
    int cache_marks, cache_marks_seen;
    struct fake_cache_mark cache_mark[FAKE_CACHE_MARKS];
    char req_model[128];    /* the model the caller named */
    /* Anthropic tool use (fake_anthropic.c): the answer is a tool_use block */
    int tool_use;
    char tool_name[72];     /* the API allows 64 bytes */
    char tool_input[512];   /* the input, as JSON text */

    /* generated answer */
    struct fake_rng rng_text, rng_time, rng_misc;
    int out_tokens;         /* tokens the answer has */
    int sent_tokens;        /* token events sent so far */
    int capped;             /* out_tokens was cut by max_tokens */
    char id[160];           /* chatcmpl-NAME-xxx / msg_NAME_xxx */
    char request_id[64];    /* x-request-id / request-id */
    int64_t created;        /* Unix seconds */
    uint64_t t_arrival_us;
    uint64_t due_us;        /* when the next step is due (monotonic): pacing
                               runs on absolute deadlines, so a late timer
                               does not slow the stream down */
    int forgiven;           /* the next event's lateness was forgiven: late */

    /* timing and shaping faults */
    double ttft_ms, interval_ms, extra_ttft_ms, extra_tok_ms;
    int pos;                /* next event index */
    int npre, npost;        /* events before / after the tokens */
    int cut_after;          /* -1 = none */
    double cut_ms;          /* > 0: cut this long after the headers */
    int cut_reset;
    int error_after, error_status; /* error_event: after N events */
    int stall_after;
    int malformed_after, malformed_ctype;
    int headers_sent;
    int held;               /* never answered (blackhole, stall) */
    /* for the journal */
    int journaled;
    unsigned jfaults;
    const char *jkey;       /* borrowed from the request's headers */
    char jmethod[8], jpath[96];
    int faulted;
};

/* One dialect's bytes. Every function appends to out (or sets headers) and
 * returns 0, or -1 when a buffer is full. */
struct fake_wire {
    /* Reads the request body (NULL when it was not JSON). Fills stream,
     * include_usage, max_tokens, prompt_tokens. On a request the provider
     * would refuse: 1 with *e filled. */
    int (*parse)(struct fake_req *r, const struct cJSON *body, struct fake_errinfo *e);
    /* Headers of a successful response (content type included). */
    int (*ok_headers)(struct fake_req *r, struct evkeyvalq *h);
    /* Status, headers and body of an error response. */
    int (*error)(struct fake_req *r, const struct fake_errinfo *e, int *status,
                 struct evkeyvalq *h, struct buf *out);
    /* Whole non-streaming answer; text is the answer's words. */
    int (*body)(struct fake_req *r, const char *text, struct buf *out);
    /* Streaming: how many events precede the tokens and follow them. */
    int (*npre)(struct fake_req *r);
    int (*npost)(struct fake_req *r);
    int (*pre)(struct fake_req *r, int i, struct buf *out);
    int (*token)(struct fake_req *r, const char *text, struct buf *out);
    int (*post)(struct fake_req *r, int i, struct buf *out);
    /* An error event inside a 200 stream, for status (0 = the dialect's usual). */
    int (*error_event)(struct fake_req *r, int status, struct buf *out);
    /* GET /v1/models. */
    int (*models)(struct fake_req *r, struct buf *out);
};

extern const struct fake_wire fake_openai_wire;
extern const struct fake_wire fake_anthropic_wire;

/* Accessors the wire files need. */
const char *fake_model(const struct fake *f);
const char *fake_spec_name(const struct fake *f);
/* Requests served so far in the current rate-limit minute (for headers).
 * Thread-safe. */
unsigned fake_window_used(struct fake *f);

/* The fake's mutex: what its loops share (the prompt cache, the journal)
 * is touched only between fake_lock and fake_unlock. Never held across a
 * call into evhttp or into fake_fault_add/clear. */
void fake_lock(struct fake *f);
void fake_unlock(struct fake *f);

/* Anthropic prompt caching (fake_cache.c); one cache per Anthropic fake,
 * shared by its loops: call under fake_lock. lookup fills r->cache_read, cache_creation and marks and
 * lowers r->prompt_tokens to the uncached rest; commit writes the marks once
 * the request is answered. fake_prompt_cache is NULL for OpenAI fakes. */
struct fake_cache;
struct fake_cache *fake_cache_new(void);
void fake_cache_free(struct fake_cache *c);
void fake_cache_lookup(struct fake_cache *c, struct fake_req *r, const struct cJSON *body,
                       uint64_t now_us);
void fake_cache_commit(struct fake_cache *c, const struct fake_req *r, uint64_t now_us);
struct fake_cache *fake_prompt_cache(struct fake *f);

/* The request journal (fake_journal.c): the last FAKE_JOURNAL_MAX requests,
 * shared by the fake's loops: call under fake_lock. faults has bit (1 << kind) per fault applied; status 0
 * means no answer (egress_block, stall before any byte). */
#define FAKE_JOURNAL_MAX 256
struct fake_journal;
struct fake_journal *fake_journal_new(void);
void fake_journal_free(struct fake_journal *j);
void fake_journal_note(struct fake_journal *j, const char *method, const char *path,
                       const char *key, unsigned faults, int status, int stream);
/* {"provider":..,"entries":[oldest..newest]}; max 0 = all kept. */
int fake_journal_json(const struct fake_journal *j, const char *provider, size_t max,
                      struct buf *out) WUR;
struct fake_journal *fake_journal_of(struct fake *f);
/* Serves GET /_chaos/journal[?n=N] (same token rule as the faults). */
void fake_control_journal(struct fake *f, const char *token, struct evhttp_request *req);

/* Serves /_chaos/faults (GET list, POST add, DELETE clear) and answers req.
 * token "" means no x-slodrill-token is required. */
void fake_control_handle(struct fake *f, const char *token, struct evhttp_request *req);

/* Formats a duration the way OpenAI's x-ratelimit-reset-* headers do
 * ("120ms", "6s", "1m30s"). */
void fake_go_duration(double seconds, char *out, size_t outlen);
/* RFC 3339 UTC ("2026-11-24T04:13:12Z") for a Unix time. */
void fake_rfc3339(int64_t unix_s, char *out, size_t outlen);

#endif
