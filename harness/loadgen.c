/* loadgen.c -- open-loop load generator: libcurl multi_socket on libevent.
 *
 * DESIGN: the schedule is a pure function of (rate, arrival, seed): request
 * k's intended start is k/rate (constant) or a sum of seeded exponential gaps
 * (Poisson), on the run clock (us since t0). One libevent timer is armed for
 * the next intended start; when it fires it starts every request that is due
 * (a bounded batch), then re-arms. The timer is a timerfd on CLOCK_MONOTONIC
 * with an absolute deadline, watched by the loop: libevent's own timers run
 * on CLOCK_MONOTONIC_COARSE (4 ms steps) unless the caller's base was made
 * with EVENT_BASE_FLAG_PRECISE_TIMER, which would make most starts "late".
 * Without timerfd it falls back to an evtimer. A request is handed to curl at once, or,
 * when max_inflight are running, recorded as dropped: the generator never
 * queues, so latency measured from the intended start stays honest.
 *
 * Each request body and header list is built once per prompt when the
 * generator is created; easy handles are reused from a free list, and the
 * multi handle keeps connections alive between requests. Responses are read
 * as they arrive: streams go through common/sse event by event and are never
 * kept; other bodies are kept up to LG_MAX_BODY to read usage and errors. */
#include "harness/loadgen.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <event2/event.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/curlev.h"
#include "common/log.h"
#include "common/sse.h"
#include "reports/rundb.h"

#define LG_TAG "loadgen"
#define LG_MAX_BODY ((size_t)1 << 20)      /* kept non-stream body; one SSE event */
#define LG_MAX_ERR_BODY ((size_t)64 << 10) /* kept of an error body (rest ignored) */
#define LG_MAX_HEADERS ((size_t)64 << 10)  /* response header bytes */
#define LG_LATE_US 1000                    /* started later than this: late */
#define LG_WINDOW_US 10000000              /* rolling figures: last 10 s */
#define LG_BATCH 1024                      /* starts per timer callback */
#define LG_MAX_PROVIDERS 64
#define LG_PROV_NONE 255
#define LG_PROV_OTHER 254

/* What one prompt sends: built once, shared by every request using it. */
struct lg_payload {
    char *body;
    size_t body_len;
    struct curl_slist *headers;
};

/* A stretch of the schedule: rate r0 at start_us going linearly to r1 at
 * start_us + dur_us; cum0 requests are expected before it, n within it. */
struct lg_seg {
    int64_t start_us, dur_us;
    double r0, r1;
    double cum0, n;
};

/* One request; recycled through the free list with its easy handle. */
struct lg_req {
    struct loadgen *lg;
    int guard_refused;          /* x-slodrill-budget said the router refused on purpose */
    CURL *easy;
    struct lg_req *prev, *next; /* in lg->inflight, or next in lg->free_reqs */
    struct req_record rec;
    struct sse_parser *sse;
    struct buf body;            /* non-SSE body, bounded */
    size_t header_bytes;
    long status;                /* status seen at the first body byte */
    int mode;                   /* -1 undecided, 0 plain body, 1 SSE */
    int saw_done;
    int64_t done_us;            /* when data: [DONE] arrived */
    char fail[160];             /* in-band failure (error event, bound): aborts */
    char hdr_provider[64], hdr_model[128], hdr_served[64], hdr_reqid[64];
    char json_model[128], json_id[64];
    char curl_err[CURL_ERROR_SIZE];
};

/* The rolling figures: requests that finished in one LG_SLOT_US slice of
 * time, counted, with their latencies in a log histogram (32 buckets per
 * power of two: a bucket is at most 1/32 = 3.1% wide). Summing the slices of
 * the last 10 s costs the same at 5 req/s and at 5,000, where sorting every
 * latency cost milliseconds on the loop that starts the requests. */
#define LG_SLOT_US 200000
#define LG_NSLOTS ((int)(LG_WINDOW_US / LG_SLOT_US))
#define LG_HIST_SUB 32      /* buckets per power of two */
#define LG_HIST_N (28 * 32) /* up to 2^32 us (71 min); longer ones land in the last */
struct lg_slot {
    int64_t epoch; /* end_us / LG_SLOT_US of what it holds; -1 empty */
    uint32_t n, nfail, nok, nprov;
    uint32_t prov[LG_MAX_PROVIDERS];
    uint32_t hist[LG_HIST_N];
};

struct loadgen {
    struct event_base *base;
    struct curlev *cv;
    struct loadgen_opts o;      /* pointers borrowed */
    void (*on_done)(void *arg);
    void *arg;
    struct event *timer;
    int tfd;                     /* timerfd behind timer, or -1 (evtimer) */
    struct event *done_ev;
    uint64_t t0;
    int64_t duration_us;

    /* schedule: the expected count grows through segments of constant or
     * linearly changing rate; u is the count position of the next request */
    struct lg_seg *segs;
    size_t nsegs, seg_i;
    double u;
    int closed_left;             /* closed loop: idle workers */
    int64_t closed_free_us;      /* closed loop: when the first idle worker became free */
    int64_t next_seq;
    int64_t next_intended_us;
    int sched_over;
    int stopped;
    int draining;                /* loadgen_drain: no new starts, in-flight ones finish */
    struct event *drain_ev;      /* the drain's deadline: cut what is left */
    int done_fired;
    uint64_t rng_arrival, rng_prompt;

    struct lg_payload *payloads; /* one per prompt */
    double *cum_weight;          /* prefix sums of prompt weights */
    size_t nprompts;

    struct lg_req *inflight;
    struct lg_req *free_reqs;
    int warned_db;

    struct loadgen_stats st;     /* counters; rolling figures computed on demand */
    struct lg_slot *slots;       /* LG_NSLOTS, indexed by epoch % LG_NSLOTS */
    char providers[LG_MAX_PROVIDERS][64];
    int nproviders;
};

static void lg_start_one(struct loadgen *lg, int64_t seq, int64_t intended);
static void lg_arm(struct loadgen *lg);

/* ---- small helpers ---- */

static int64_t lg_now(const struct loadgen *lg)
{
    return (int64_t)clock_mono_us() - (int64_t)lg->t0;
}

/* splitmix64: small, seedable, good enough for arrivals and prompt picks. */
static uint64_t lg_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);

    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Uniform in (0, 1]. */
static double lg_unit(uint64_t *s)
{
    return ((double)(lg_rand(s) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
}

/* Copies at most srclen bytes of src into dst (bounded, NUL-terminated),
 * replacing control bytes so records stay printable. */
static void lg_copy(char *dst, size_t dstlen, const char *src, size_t srclen)
{
    size_t i, n = srclen < dstlen - 1 ? srclen : dstlen - 1;

    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)src[i];
        dst[i] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
    }
    dst[n] = '\0';
}

static void lg_copy_str(char *dst, size_t dstlen, const char *src)
{
    lg_copy(dst, dstlen, src ? src : "", src ? strlen(src) : 0);
}

/* ---- building what each prompt sends ---- */

static int lg_header_ok(const char *name, const char *value)
{
    const unsigned char *p;

    if (!name || !name[0] || !value) return 0;
    for (p = (const unsigned char *)name; *p; p++)
        if (*p <= 0x20 || *p >= 0x7f || *p == ':') return 0;
    for (p = (const unsigned char *)value; *p; p++)
        if ((*p < 0x20 && *p != '\t') || *p == 0x7f) return 0;
    return 1;
}

/* Appends "name: value" to *list (an empty value is written "name;", curl's
 * way of sending an empty header). 0 or -1. */
static int lg_add_header(struct curl_slist **list, const char *name, const char *value)
{
    struct buf b;
    struct curl_slist *nl;
    int rc = -1;

    buf_init(&b, 16384);
    if (value[0] ? buf_printf(&b, "%s: %s", name, value) : buf_printf(&b, "%s;", name))
        goto out;
    nl = curl_slist_append(*list, b.data);
    if (!nl) goto out;
    *list = nl;
    rc = 0;
out:
    buf_cleanup(&b);
    return rc;
}

static int lg_payload_build(const struct loadgen *lg, const struct prompt *p,
                            struct lg_payload *pl, char *err, size_t errlen)
{
    const struct loadgen_opts *o = &lg->o;
    cJSON *root = NULL, *msgs = NULL, *so;
    struct buf auth;
    size_t i;
    int rc = -1;

    buf_init(&auth, 8192);
    root = cJSON_CreateObject();
    if (!root) goto oom;
    msgs = p->messages_json ? cJSON_Parse(p->messages_json) : NULL;
    if (!cJSON_IsArray(msgs)) {
        snprintf(err, errlen, "prompt's messages are not a JSON array");
        goto out;
    }
    if (!cJSON_AddStringToObject(root, "model", o->model)) goto oom;
    cJSON_AddItemToObject(root, "messages", msgs);
    msgs = NULL;
    if (!cJSON_AddBoolToObject(root, "stream", o->stream ? 1 : 0)) goto oom;
    if (o->max_tokens > 0 && !cJSON_AddNumberToObject(root, "max_tokens", (double)o->max_tokens))
        goto oom;
    if (o->stream) {
        so = cJSON_AddObjectToObject(root, "stream_options");
        if (!so || !cJSON_AddTrueToObject(so, "include_usage")) goto oom;
    }
    if (p->user && !cJSON_AddStringToObject(root, "user", p->user)) goto oom;
    pl->body = cJSON_PrintUnformatted(root);
    if (!pl->body) goto oom;
    pl->body_len = strlen(pl->body);

    if (o->api_key && o->api_key[0]) {
        if (!lg_header_ok("Authorization", o->api_key) ||
            buf_printf(&auth, "Bearer %s", o->api_key) != 0) {
            snprintf(err, errlen, "API key has control characters or is too long");
            goto out;
        }
        if (lg_add_header(&pl->headers, "Authorization", auth.data) != 0) goto oom;
    }
    if (lg_add_header(&pl->headers, "Content-Type", "application/json") != 0 ||
        lg_add_header(&pl->headers, "Accept",
                      o->stream ? "text/event-stream" : "application/json") != 0)
        goto oom;
    { /* "Expect:" removes curl's 100-continue round trip for large bodies */
        struct curl_slist *nl = curl_slist_append(pl->headers, "Expect:");
        if (!nl) goto oom;
        pl->headers = nl;
    }
    if ((p->tenant && lg_add_header(&pl->headers, "x-tenant-id", p->tenant) != 0) ||
        (p->user && lg_add_header(&pl->headers, "x-user-id", p->user) != 0) ||
        (p->feature && lg_add_header(&pl->headers, "x-feature", p->feature) != 0))
        goto oom;
    for (i = 0; i < o->nheaders; i++)
        if (lg_add_header(&pl->headers, o->headers[i].name, o->headers[i].value) != 0) goto oom;
    rc = 0;
    goto out;
oom:
    snprintf(err, errlen, "out of memory building a request");
out:
    cJSON_Delete(root);
    cJSON_Delete(msgs);
    buf_cleanup(&auth);
    return rc;
}

/* ---- schedule ---- */

/* Builds the segments from opts: steps, a ramp, or one constant stretch. */
static int lg_segs_build(struct loadgen *lg, const struct loadgen_opts *o)
{
    size_t i, n = o->nsteps > 0 ? o->nsteps : 1;
    double t = 0, cum = 0;

    lg->segs = calloc(n, sizeof *lg->segs);
    if (!lg->segs) return -1;
    for (i = 0; i < n; i++) {
        struct lg_seg *g = &lg->segs[i];
        double r0, r1, d;

        if (o->nsteps > 0) {
            r0 = o->steps[i].rate;
            r1 = o->steps[i].ramp_to > 0 ? o->steps[i].ramp_to : r0;
            d = o->steps[i].duration_s;
        } else {
            r0 = o->rate;
            r1 = o->ramp_to > 0 ? o->ramp_to : r0;
            d = o->duration_s;
        }
        g->start_us = (int64_t)llround(t * 1e6);
        g->dur_us = (int64_t)llround(d * 1e6);
        g->r0 = r0;
        g->r1 = r1;
        g->cum0 = cum;
        g->n = (r0 + r1) / 2 * d;
        cum += g->n;
        t += d;
    }
    lg->nsegs = n;
    return 0;
}

/* The run-clock time at which the expected count reaches u, or -1 when the
 * schedule ends first. Within a segment the count is
 * cum0 + r0 s + (r1 - r0) s^2 / (2 D); solved for s in the form that stays
 * exact when r0 is 0 or r1 == r0. */
static int64_t lg_sched_time(struct loadgen *lg, double u)
{
    while (lg->seg_i < lg->nsegs) {
        const struct lg_seg *g = &lg->segs[lg->seg_i];
        double du = u - g->cum0, d = (double)g->dur_us / 1e6, sec;

        if (g->n > 0 && du < g->n) {
            if (du <= 0) {
                sec = 0;
            } else if (g->r1 == g->r0) {
                sec = du / g->r0;
            } else {
                double a = (g->r1 - g->r0) / (2 * d), disc = g->r0 * g->r0 + 4 * a * du;
                sec = 2 * du / (g->r0 + sqrt(disc > 0 ? disc : 0));
            }
            if (sec > d) sec = d;
            return g->start_us + (int64_t)llround(sec * 1e6);
        }
        lg->seg_i++;
    }
    return -1;
}

static void lg_sched_set(struct loadgen *lg, int64_t t)
{
    if (t < 0 || t >= lg->duration_us) lg->sched_over = 1;
    else lg->next_intended_us = t;
}

static void lg_sched_advance(struct loadgen *lg)
{
    lg->next_seq++;
    if (lg->o.closed_workers > 0) return; /* workers start requests as they finish */
    if (lg->o.arrival == ARRIVAL_POISSON) lg->u += -log(lg_unit(&lg->rng_arrival));
    else lg->u = (double)lg->next_seq;
    lg_sched_set(lg, lg_sched_time(lg, lg->u));
}

double loadgen_schedule_length_s(const struct loadgen_opts *opts)
{
    double t = 0;
    size_t i;

    if (!opts) return 0;
    if (opts->nsteps == 0 || opts->closed_workers > 0) return opts->duration_s;
    for (i = 0; i < opts->nsteps; i++) t += opts->steps[i].duration_s;
    return t;
}

static size_t lg_pick_prompt(struct loadgen *lg)
{
    double x = lg_unit(&lg->rng_prompt) * lg->cum_weight[lg->nprompts - 1];
    size_t lo = 0, hi = lg->nprompts - 1;

    while (lo < hi) { /* first index with cum_weight >= x */
        size_t mid = lo + (hi - lo) / 2;
        if (lg->cum_weight[mid] >= x) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

/* ---- finishing requests ---- */

static unsigned char lg_provider_index(struct loadgen *lg, const char *name)
{
    int i;

    if (!name[0]) return LG_PROV_NONE;
    for (i = 0; i < lg->nproviders; i++)
        if (strcmp(lg->providers[i], name) == 0) return (unsigned char)i;
    if (lg->nproviders >= LG_MAX_PROVIDERS) return LG_PROV_OTHER;
    lg_copy_str(lg->providers[lg->nproviders], sizeof lg->providers[0], name);
    return (unsigned char)lg->nproviders++;
}

/* The histogram bucket of a latency in us: exact below 32, then 32 buckets
 * per power of two. */
static size_t lg_hist_index(int64_t us)
{
    uint64_t v = us < 0 ? 0 : (uint64_t)us;
    int e = 0;

    if (v < LG_HIST_SUB) return (size_t)v;
    if (v > UINT32_MAX) return LG_HIST_N - 1;
    while ((v >> (e + 1)) != 0) e++; /* e = floor(log2 v) >= 5 */
    return (size_t)(e - 4) * LG_HIST_SUB + (size_t)((v >> (e - 5)) & (LG_HIST_SUB - 1));
}

/* The largest latency that lands in bucket i (what p95 reports: never low). */
static int64_t lg_hist_upper(size_t i)
{
    int e;

    if (i < LG_HIST_SUB) return (int64_t)i;
    e = (int)(i / LG_HIST_SUB) + 4;
    return (int64_t)((((uint64_t)LG_HIST_SUB + i % LG_HIST_SUB + 1) << (e - 5)) - 1);
}

/* Counts, remembers for the rolling figures, and hands the record to the DB. */
static void lg_record(struct loadgen *lg, const struct req_record *r)
{
    struct lg_slot *sl;
    int failed = outcome_is_failure(r->outcome);
    int ok = r->outcome == OUTCOME_OK || r->outcome == OUTCOME_SERVED_FROM_CACHE;
    int64_t at = r->first_token_us >= 0 ? r->first_token_us : r->end_us;
    int64_t epoch = (r->end_us < 0 ? 0 : r->end_us) / LG_SLOT_US;

    lg->st.done++;
    if (ok) lg->st.ok++;
    if (failed) lg->st.failed++;
    sl = &lg->slots[epoch % LG_NSLOTS];
    if (sl->epoch > epoch) /* ended over 10 s before a newer one: out of the window */
        goto db;
    if (sl->epoch != epoch) { /* a slot from 10 s ago: start it afresh */
        memset(sl, 0, sizeof *sl);
        sl->epoch = epoch;
    }
    sl->n++;
    if (failed) sl->nfail++;
    if (ok) {
        unsigned char p = lg_provider_index(lg, r->provider);

        sl->nok++;
        sl->hist[lg_hist_index(at - r->intended_us)]++;
        if (p < LG_MAX_PROVIDERS) {
            sl->nprov++;
            sl->prov[p]++;
        } else if (p == LG_PROV_OTHER) {
            sl->nprov++;
        }
    }
db:
    if (lg->o.db && rundb_add_request(lg->o.db, r) != 0 && !lg->warned_db) {
        lg->warned_db = 1;
        log_warn(LG_TAG, "run DB refused a request record (closed or out of memory)");
    }
}

static void lg_on_done_event(evutil_socket_t fd, short what, void *arg)
{
    struct loadgen *lg = arg;

    UNUSED(fd);
    UNUSED(what);
    if (lg->on_done) lg->on_done(lg->arg);
}

/* Fires on_done on a later loop turn (never inside curl's or curlev's
 * callbacks, so on_done may free the generator). */
static void lg_check_done(struct loadgen *lg)
{
    if (lg->done_fired || lg->inflight || !(lg->sched_over || lg->stopped)) return;
    lg->done_fired = 1;
    if (lg->drain_ev) event_del(lg->drain_ev); /* nothing left to cut */
    event_active(lg->done_ev, EV_TIMEOUT, 1);
}

static void lg_unlink(struct loadgen *lg, struct lg_req *q)
{
    if (q->prev) q->prev->next = q->next;
    else lg->inflight = q->next;
    if (q->next) q->next->prev = q->prev;
    q->prev = q->next = NULL;
    lg->st.inflight--;
}

static void lg_req_put(struct loadgen *lg, struct lg_req *q)
{
    sse_parser_free(q->sse);
    q->sse = NULL;
    buf_cleanup(&q->body); /* no body is hoarded between requests */
    q->next = lg->free_reqs;
    q->prev = NULL;
    lg->free_reqs = q;
}

static void lg_req_destroy(struct lg_req *q)
{
    if (!q) return;
    sse_parser_free(q->sse);
    buf_cleanup(&q->body);
    if (q->easy) curl_easy_cleanup(q->easy);
    free(q);
}

/* The message of an error body: error.message, error (a string), message, or
 * the start of the body itself. */
static void lg_error_message(const cJSON *root, const char *raw, size_t rawlen, char *out,
                             size_t outlen)
{
    const cJSON *e = root ? cJSON_GetObjectItemCaseSensitive(root, "error") : NULL;
    const cJSON *m = NULL;

    if (cJSON_IsObject(e)) m = cJSON_GetObjectItemCaseSensitive(e, "message");
    else if (cJSON_IsString(e)) m = e;
    if (!cJSON_IsString(m) && root) m = cJSON_GetObjectItemCaseSensitive(root, "message");
    if (cJSON_IsString(m)) lg_copy_str(out, outlen, m->valuestring);
    else lg_copy(out, outlen, raw ? raw : "", raw ? rawlen : 0);
}

/* Usage in OpenAI (prompt/completion) or Anthropic (input/output) names. */
static void lg_read_usage(struct lg_req *q, const cJSON *root)
{
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(root, "usage"), *t;

    if (!cJSON_IsObject(u)) return;
    t = cJSON_GetObjectItemCaseSensitive(u, "prompt_tokens");
    if (!cJSON_IsNumber(t)) t = cJSON_GetObjectItemCaseSensitive(u, "input_tokens");
    if (cJSON_IsNumber(t) && t->valuedouble >= 0) q->rec.input_tokens = (long)t->valuedouble;
    t = cJSON_GetObjectItemCaseSensitive(u, "completion_tokens");
    if (!cJSON_IsNumber(t)) t = cJSON_GetObjectItemCaseSensitive(u, "output_tokens");
    if (cJSON_IsNumber(t) && t->valuedouble >= 0) q->rec.output_tokens = (long)t->valuedouble;
    /* The router's price for this answer (usage.cost, as OpenRouter sends
     * it); a cost header, when one came, says the same. */
    t = cJSON_GetObjectItemCaseSensitive(u, "cost");
    if (cJSON_IsNumber(t) && isfinite(t->valuedouble) && t->valuedouble >= 0 && q->rec.cost_usd < 0)
        q->rec.cost_usd = t->valuedouble;
}

static void lg_read_ids(struct lg_req *q, const cJSON *root)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "id");

    if (!q->json_model[0] && cJSON_IsString(m))
        lg_copy_str(q->json_model, sizeof q->json_model, m->valuestring);
    if (!q->json_id[0] && cJSON_IsString(id))
        lg_copy_str(q->json_id, sizeof q->json_id, id->valuestring);
}

/* A complete non-stream 2xx body: usage and who served; NULL when fine,
 * else why the response is a failure. */
static const char *lg_read_body(struct lg_req *q)
{
    cJSON *root = NULL;
    const char *why = NULL;

    if (q->body.len == 0) {
        why = q->rec.stream ? "stream cut: empty body" : "malformed response: empty body";
        goto out;
    }
    root = cJSON_ParseWithLength(q->body.data, q->body.len);
    if (!cJSON_IsObject(root)) {
        why = "malformed response: body is not a JSON object";
        goto out;
    }
    lg_read_ids(q, root);
    lg_read_usage(q, root);
    if (cJSON_GetObjectItemCaseSensitive(root, "error") &&
        !cJSON_GetObjectItemCaseSensitive(root, "choices")) {
        char msg[160];

        lg_error_message(root, NULL, 0, msg, sizeof msg);
        snprintf(q->fail, sizeof q->fail, "error in 2xx body: %.130s", msg);
        why = q->fail;
    }
out:
    cJSON_Delete(root);
    return why;
}

static enum outcome lg_status_class(long status)
{
    if (status == 429) return OUTCOME_RATE_LIMITED;
    if (status == 400 || status == 404 || status == 413 || status == 422)
        return OUTCOME_CLIENT_ERROR;
    return OUTCOME_RETRYABLE_ERROR; /* other 4xx (401/403 too), 5xx, 1xx/3xx */
}

/* Fills outcome and error from what happened. */
static void lg_classify(struct lg_req *q, CURLcode result)
{
    struct req_record *r = &q->rec;
    long st = r->http_status;
    const char *why;

    if (q->fail[0]) {
        r->outcome = OUTCOME_RETRYABLE_ERROR;
        lg_copy_str(r->error, sizeof r->error, q->fail);
    } else if (q->mode == 1 && q->saw_done) {
        r->outcome = OUTCOME_OK; /* the stream ended properly, whatever came after */
    } else if (st > 0 && (st < 200 || st > 299)) {
        cJSON *root = q->body.len ? cJSON_ParseWithLength(q->body.data, q->body.len) : NULL;
        char msg[160];

        r->outcome = q->guard_refused ? OUTCOME_REJECTED_BY_BUDGET : lg_status_class(st);
        lg_error_message(root, q->body.data, q->body.len, msg, sizeof msg);
        snprintf(r->error, sizeof r->error, "HTTP %ld%s%s", st, msg[0] ? ": " : "", msg);
        cJSON_Delete(root);
    } else if (result == CURLE_OPERATION_TIMEDOUT) {
        r->outcome = OUTCOME_TIMEOUT;
        snprintf(r->error, sizeof r->error, "timeout after %.1f s (%s)", q->lg->o.timeout_s,
                 r->first_token_us >= 0   ? "after the first token"
                 : r->first_byte_us >= 0 ? "before the first token"
                 : st > 0                ? "before the first byte"
                                         : "no response");
    } else if (result != CURLE_OK) {
        r->outcome = OUTCOME_RETRYABLE_ERROR;
        snprintf(r->error, sizeof r->error, "%s%.60s: %.170s",
                 q->mode == 1 ? "stream cut: " : "", curl_easy_strerror(result),
                 q->curl_err[0] ? q->curl_err : "-");
    } else if (q->mode == 1) {
        r->outcome = OUTCOME_RETRYABLE_ERROR;
        snprintf(r->error, sizeof r->error, "stream cut: ended without data: [DONE]");
    } else if ((why = lg_read_body(q)) != NULL) {
        r->outcome = OUTCOME_RETRYABLE_ERROR;
        lg_copy_str(r->error, sizeof r->error, why);
    } else {
        r->outcome = OUTCOME_OK;
    }
    if (r->outcome == OUTCOME_OK) {
        if (q->mode != 1) r->first_token_us = r->end_us; /* whole body = first token */
        if (r->cache_hit) r->outcome = OUTCOME_SERVED_FROM_CACHE;
        r->error[0] = '\0';
    }
    /* who served: our router's header, the configured header, the body's model */
    if (q->hdr_provider[0]) lg_copy_str(r->provider, sizeof r->provider, q->hdr_provider);
    else if (q->hdr_served[0]) lg_copy_str(r->provider, sizeof r->provider, q->hdr_served);
    else lg_copy_str(r->provider, sizeof r->provider, q->json_model);
    lg_copy_str(r->model, sizeof r->model, q->hdr_model[0] ? q->hdr_model : q->json_model);
    if (!r->request_id[0])
        lg_copy_str(r->request_id, sizeof r->request_id, q->hdr_reqid[0] ? q->hdr_reqid
                                                                          : q->json_id);
}

static void lg_on_xfer_done(CURL *easy, CURLcode result, void *arg)
{
    struct lg_req *q = arg;
    struct loadgen *lg = q->lg;
    long status = 0, connects = 0;

    q->rec.end_us = q->saw_done ? q->done_us : lg_now(lg);
    if (curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK)
        q->rec.http_status = (int)status;
    if (curl_easy_getinfo(easy, CURLINFO_NUM_CONNECTS, &connects) == CURLE_OK && connects > 0)
        lg->st.connects += (uint64_t)connects;
    lg_classify(q, result);
    lg_unlink(lg, q);
    lg_record(lg, &q->rec);
    lg_req_put(lg, q);
    if (lg->o.closed_workers > 0 && !lg->stopped && !lg->sched_over) {
        /* this worker goes again at once: from the timer, on the next loop
         * turn, not from inside curl's callback */
        if (lg->closed_left++ == 0) lg->closed_free_us = lg_now(lg);
        lg->next_intended_us = lg_now(lg);
        lg_arm(lg);
    }
    lg_check_done(lg);
}

/* ---- reading the response ---- */

static int lg_on_event(const char *event, const char *data, size_t len, const char *id,
                       void *arg)
{
    struct lg_req *q = arg;
    cJSON *root = NULL;
    const cJSON *e, *ch, *delta, *content;
    int rc = 0;

    UNUSED(id);
    if (q->saw_done) goto out;
    if (len == 6 && memcmp(data, "[DONE]", 6) == 0) {
        q->saw_done = 1;
        q->done_us = lg_now(q->lg);
        goto out;
    }
    root = cJSON_ParseWithLength(data, len);
    if (!root) {
        if (len == 0) goto out; /* an empty keep-alive event */
        snprintf(q->fail, sizeof q->fail, "malformed stream event: invalid JSON");
        rc = -1;
        goto out;
    }
    e = cJSON_GetObjectItemCaseSensitive(root, "error");
    if ((e && !cJSON_IsNull(e)) || (event && strcmp(event, "error") == 0)) {
        char msg[120];

        lg_error_message(root, data, len, msg, sizeof msg);
        snprintf(q->fail, sizeof q->fail, "error event in stream: %s", msg);
        rc = -1;
        goto out;
    }
    lg_read_ids(q, root);
    lg_read_usage(q, root);
    if (q->rec.first_token_us < 0) {
        ch = cJSON_GetObjectItemCaseSensitive(root, "choices");
        ch = cJSON_IsArray(ch) ? cJSON_GetArrayItem(ch, 0) : NULL;
        delta = ch ? cJSON_GetObjectItemCaseSensitive(ch, "delta") : NULL;
        content = delta ? cJSON_GetObjectItemCaseSensitive(delta, "content") : NULL;
        if (cJSON_IsString(content) && content->valuestring[0])
            q->rec.first_token_us = lg_now(q->lg);
    }
out:
    cJSON_Delete(root);
    return rc;
}

static size_t lg_on_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct lg_req *q = ud;
    size_t n = size * nmemb;
    char err[160];

    if (q->rec.first_byte_us < 0) q->rec.first_byte_us = lg_now(q->lg);
    if (q->mode < 0) {
        char *ct = NULL;

        if (curl_easy_getinfo(q->easy, CURLINFO_RESPONSE_CODE, &q->status) != CURLE_OK)
            q->status = 0;
        if (curl_easy_getinfo(q->easy, CURLINFO_CONTENT_TYPE, &ct) != CURLE_OK) ct = NULL;
        q->mode = (q->rec.stream && q->status >= 200 && q->status <= 299 &&
                   (!ct || strcasestr(ct, "text/event-stream")))
                      ? 1
                      : 0;
        if (q->mode == 1) {
            q->sse = sse_parser_new(LG_MAX_BODY, lg_on_event, q);
            if (!q->sse) {
                snprintf(q->fail, sizeof q->fail, "out of memory");
                return 0;
            }
        }
    }
    if (q->mode == 1) {
        if (q->saw_done) return n; /* anything after [DONE] is ignored */
        if (sse_parser_feed(q->sse, ptr, n, err, sizeof err) != 0) {
            if (!q->fail[0]) snprintf(q->fail, sizeof q->fail, "response too large: %.130s", err);
            return 0; /* aborts the transfer */
        }
        return n;
    }
    if (q->status >= 200 && q->status <= 299) {
        if (q->body.len + n > LG_MAX_BODY) {
            snprintf(q->fail, sizeof q->fail, "response too large (over %zu bytes)",
                     LG_MAX_BODY);
            return 0;
        }
        if (buf_append(&q->body, ptr, n) != 0) {
            snprintf(q->fail, sizeof q->fail, "out of memory");
            return 0;
        }
    } else if (q->body.len < LG_MAX_ERR_BODY) { /* error bodies: keep the start */
        size_t keep = LG_MAX_ERR_BODY - q->body.len;

        if (buf_append(&q->body, ptr, n < keep ? n : keep) != 0) return 0;
    }
    return n;
}

static int lg_hdr_is(const char *name, size_t nlen, const char *want)
{
    return strlen(want) == nlen && strncasecmp(name, want, nlen) == 0;
}

static long lg_hdr_long(const char *v, size_t vlen)
{
    char tmp[32];
    char *end;
    long x;

    lg_copy(tmp, sizeof tmp, v, vlen);
    x = strtol(tmp, &end, 10);
    return (end == tmp || x < 0 || x > 1000000) ? 0 : x;
}

static size_t lg_on_header(char *ptr, size_t size, size_t nitems, void *ud)
{
    struct lg_req *q = ud;
    struct req_record *r = &q->rec;
    size_t n = size * nitems, nlen, vlen;
    const char *colon, *v;

    q->header_bytes += n;
    if (q->header_bytes > LG_MAX_HEADERS) {
        snprintf(q->fail, sizeof q->fail, "response headers too large (over %zu bytes)",
                 LG_MAX_HEADERS);
        return 0;
    }
    if (n >= 5 && memcmp(ptr, "HTTP/", 5) == 0) { /* a new response (after 1xx): forget */
        q->hdr_provider[0] = q->hdr_model[0] = q->hdr_served[0] = q->hdr_reqid[0] = '\0';
        r->deployment[0] = r->request_id[0] = '\0';
        r->attempts = r->failover_hops = r->cache_hit = 0;
        r->cost_usd = -1;
        return n;
    }
    colon = memchr(ptr, ':', n);
    if (!colon) return n;
    nlen = (size_t)(colon - ptr);
    v = colon + 1;
    vlen = n - nlen - 1;
    while (vlen && (*v == ' ' || *v == '\t')) v++, vlen--;
    while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' ' ||
                    v[vlen - 1] == '\t'))
        vlen--;
    if (lg_hdr_is(ptr, nlen, "x-slodrill-provider")) {
        lg_copy(q->hdr_provider, sizeof q->hdr_provider, v, vlen);
    } else if (lg_hdr_is(ptr, nlen, "x-slodrill-deployment")) {
        lg_copy(r->deployment, sizeof r->deployment, v, vlen);
    } else if (lg_hdr_is(ptr, nlen, "x-slodrill-model")) {
        lg_copy(q->hdr_model, sizeof q->hdr_model, v, vlen);
    } else if (lg_hdr_is(ptr, nlen, "x-slodrill-attempts")) {
        r->attempts = (int)lg_hdr_long(v, vlen);
    } else if (lg_hdr_is(ptr, nlen, "x-slodrill-fallbacks")) {
        r->failover_hops = (int)lg_hdr_long(v, vlen);
    } else if (lg_hdr_is(ptr, nlen, "x-slodrill-request-id")) {
        lg_copy(r->request_id, sizeof r->request_id, v, vlen);
    } else if (lg_hdr_is(ptr, nlen, "x-request-id")) {
        lg_copy(q->hdr_reqid, sizeof q->hdr_reqid, v, vlen);
    } else if (lg_hdr_is(ptr, nlen, "x-slodrill-cache")) {
        /* 1: a fresh answer from the cache; 2: a stale one (travel mode). */
        r->cache_hit = vlen == 3 && strncasecmp(v, "hit", 3) == 0     ? 1
                       : vlen == 5 && strncasecmp(v, "stale", 5) == 0 ? 2
                                                                       : 0;
    } else if (lg_hdr_is(ptr, nlen, "x-slodrill-budget")) {
        /* A guardrail's own "no" (budget exceeded, the tenant's rate cap),
         * as opposed to a failure the router could not absorb. */
        q->guard_refused = (vlen >= 8 && strncasecmp(v, "rejected", 8) == 0) ||
                           (vlen >= 8 && strncasecmp(v, "rate_cap", 8) == 0);
    } else if (lg_hdr_is(ptr, nlen, "x-slodrill-cost-usd")) {
        char tmp[48], *end;
        double c;

        lg_copy(tmp, sizeof tmp, v, vlen);
        c = strtod(tmp, &end);
        if (end != tmp && isfinite(c) && c >= 0) r->cost_usd = c;
    }
    if (q->lg->o.served_by_header && lg_hdr_is(ptr, nlen, q->lg->o.served_by_header))
        lg_copy(q->hdr_served, sizeof q->hdr_served, v, vlen);
    return n;
}

/* ---- starting requests ---- */

static struct lg_req *lg_req_get(struct loadgen *lg)
{
    struct lg_req *q = lg->free_reqs;
    long timeout_ms = (long)(lg->o.timeout_s * 1000.0);

    if (q) {
        lg->free_reqs = q->next;
        q->next = NULL;
        return q;
    }
    q = calloc(1, sizeof *q);
    if (!q) return NULL;
    q->lg = lg;
    buf_init(&q->body, LG_MAX_BODY);
    q->easy = curl_easy_init();
    if (!q->easy) {
        free(q);
        return NULL;
    }
    /* Options that never change for this handle; the per-prompt ones are set
     * at each start. */
    curl_easy_setopt(q->easy, CURLOPT_URL, lg->o.url);
    curl_easy_setopt(q->easy, CURLOPT_POST, 1L);
    curl_easy_setopt(q->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(q->easy, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(q->easy, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(q->easy, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms < 10000 ? timeout_ms : 10000L);
    curl_easy_setopt(q->easy, CURLOPT_WRITEFUNCTION, lg_on_write);
    curl_easy_setopt(q->easy, CURLOPT_WRITEDATA, q);
    curl_easy_setopt(q->easy, CURLOPT_HEADERFUNCTION, lg_on_header);
    curl_easy_setopt(q->easy, CURLOPT_HEADERDATA, q);
    curl_easy_setopt(q->easy, CURLOPT_ERRORBUFFER, q->curl_err);
    curl_easy_setopt(q->easy, CURLOPT_USERAGENT, "slodrill-loadgen/1");
    return q;
}

static void lg_rec_init(struct loadgen *lg, struct req_record *r, int64_t seq,
                        int64_t intended, const struct prompt *p)
{
    memset(r, 0, sizeof *r);
    r->seq = seq;
    r->intended_us = intended;
    r->started_us = r->first_byte_us = r->first_token_us = r->end_us = -1;
    r->stream = lg->o.stream ? 1 : 0;
    r->cost_usd = -1;
    lg_copy_str(r->tenant, sizeof r->tenant, p->tenant);
    lg_copy_str(r->user, sizeof r->user, p->user);
    lg_copy_str(r->feature, sizeof r->feature, p->feature);
}

static void lg_start_one(struct loadgen *lg, int64_t seq, int64_t intended)
{
    size_t pi = lg_pick_prompt(lg);
    const struct prompt *p = &lg->o.prompts->v[pi];
    const struct lg_payload *pl = &lg->payloads[pi];
    struct lg_req *q = NULL;
    struct req_record drop;
    const char *why = NULL;

    lg->st.scheduled++;
    if (lg->st.inflight >= (uint64_t)lg->o.max_inflight) {
        lg->st.dropped++;
        why = "dropped: max_inflight";
        goto fail;
    }
    q = lg_req_get(lg);
    if (!q) {
        why = "could not start: out of memory";
        goto fail;
    }
    lg_rec_init(lg, &q->rec, seq, intended, p);
    q->header_bytes = 0;
    q->status = 0;
    q->mode = -1;
    q->saw_done = 0;
    q->guard_refused = 0;
    q->done_us = -1;
    q->fail[0] = q->curl_err[0] = '\0';
    q->hdr_provider[0] = q->hdr_model[0] = q->hdr_served[0] = q->hdr_reqid[0] = '\0';
    q->json_model[0] = q->json_id[0] = '\0';
    curl_easy_setopt(q->easy, CURLOPT_POSTFIELDS, pl->body);
    curl_easy_setopt(q->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)pl->body_len);
    curl_easy_setopt(q->easy, CURLOPT_HTTPHEADER, pl->headers);
    q->rec.started_us = lg_now(lg);
    if (curlev_add(lg->cv, q->easy, lg_on_xfer_done, q) != 0) {
        lg_req_put(lg, q);
        q = NULL;
        why = "could not start: curl refused the transfer";
        goto fail;
    }
    lg->st.started++;
    if (q->rec.started_us - intended > LG_LATE_US) lg->st.late++;
    q->next = lg->inflight;
    q->prev = NULL;
    if (lg->inflight) lg->inflight->prev = q;
    lg->inflight = q;
    lg->st.inflight++;
    return;
fail:
    /* recorded at once as a timeout: the request never reached the system */
    lg_rec_init(lg, &drop, seq, intended, p);
    drop.end_us = lg_now(lg);
    drop.outcome = OUTCOME_TIMEOUT;
    lg_copy_str(drop.error, sizeof drop.error, why);
    lg_record(lg, &drop);
}

static void lg_on_timer(evutil_socket_t fd, short what, void *arg);

static void lg_arm(struct loadgen *lg)
{
    int64_t d;
    struct timeval tv;

    if (lg->sched_over || lg->stopped) {
        if (lg->timer) event_del(lg->timer); /* a timerfd event would keep the loop busy */
            return;
    }
    if (lg->tfd >= 0) {
        uint64_t at = lg->t0 + (uint64_t)lg->next_intended_us; /* absolute, CLOCK_MONOTONIC */
        struct itimerspec its;

        memset(&its, 0, sizeof its);
        its.it_value.tv_sec = (time_t)(at / 1000000);
        its.it_value.tv_nsec = (long)(at % 1000000) * 1000;
        if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0) its.it_value.tv_nsec = 1;
        if (timerfd_settime(lg->tfd, TFD_TIMER_ABSTIME, &its, NULL) == 0) return;
        log_warn(LG_TAG, "timerfd_settime failed; schedule falls back to a coarse timer");
        event_del(lg->timer);
        event_free(lg->timer);
        close(lg->tfd);
        lg->tfd = -1;
        lg->timer = evtimer_new(lg->base, lg_on_timer, lg);
        if (!lg->timer) {
            log_error(LG_TAG, "out of memory: the schedule stops here");
            return;
        }
    }
    event_base_update_cache_time(lg->base); /* the deadline counts from now */
    d = lg->next_intended_us - lg_now(lg);
    if (d < 0) d = 0;
    tv.tv_sec = (time_t)(d / 1000000);
    tv.tv_usec = (suseconds_t)(d % 1000000);
    evtimer_add(lg->timer, &tv);
}

static void lg_on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct loadgen *lg = arg;
    int batch = 0;

    UNUSED(what);
    if (lg->tfd >= 0 && fd == lg->tfd) {
        uint64_t expirations;
        ssize_t n = read(lg->tfd, &expirations, sizeof expirations); /* clear it */
        UNUSED(n);
    }
    if (lg->o.closed_workers > 0) { /* closed loop: start the idle workers, then wait */
        int64_t now = lg_now(lg);

        if (now >= lg->duration_us) lg->sched_over = 1;
        while (!lg->sched_over && !lg->stopped && batch < LG_BATCH && lg->closed_left > 0) {
            lg_start_one(lg, lg->next_seq++, lg->closed_free_us);
            lg->closed_left--;
            batch++;
        }
        lg->next_intended_us = lg->closed_left > 0 ? now : lg->duration_us;
        lg_arm(lg);
        lg_check_done(lg);
        return;
    }
    while (!lg->sched_over && !lg->stopped && batch < LG_BATCH &&
           lg->next_intended_us <= lg_now(lg)) {
        lg_start_one(lg, lg->next_seq, lg->next_intended_us);
        lg_sched_advance(lg);
        batch++;
    }
    lg_arm(lg);
    lg_check_done(lg);
}

/* ---- schedule checks ---- */

static int lg_rate_ok(double r)
{
    return isfinite(r) && r >= 0 && r <= 1e6;
}

/* Checks the schedule options. */
static int lg_check_schedule(const struct loadgen_opts *o, char *err,
                             size_t errlen)
{
    double total = 0, len = 0;
    size_t i;

    if (o->closed_workers < 0 || o->closed_workers > 100000) {
        snprintf(err, errlen, "closed-loop workers must be between 1 and 100000 (got %d)",
                 o->closed_workers);
        return -1;
    }
    if (o->closed_workers > 0 || o->nsteps == 0) {
        if (!isfinite(o->duration_s) || o->duration_s < 0 || o->duration_s > 1e7) {
            snprintf(err, errlen, "duration must be between 0 and 10000000 s (got %g)",
                     o->duration_s);
            return -1;
        }
    }
    if (o->closed_workers > 0) return 0;
    if (o->nsteps == 0) {
        if (!lg_rate_ok(o->rate) || !lg_rate_ok(o->ramp_to) || o->rate > 1e6 ||
            !(o->rate > 0 || o->ramp_to > 0)) {
            snprintf(err, errlen, "rate must be above 0 and at most 1000000/s (got %g%s%g)",
                     o->rate, o->ramp_to > 0 ? " ramping to " : "", o->ramp_to > 0 ? o->ramp_to : 0.0);
            return -1;
        }
        return 0;
    }
    if (!o->steps || o->nsteps > 10000) {
        snprintf(err, errlen, "a stepped schedule has 1 to 10000 steps (got %zu)", o->nsteps);
        return -1;
    }
    for (i = 0; i < o->nsteps; i++) {
        const struct loadgen_step *st = &o->steps[i];

        if (!lg_rate_ok(st->rate) || !lg_rate_ok(st->ramp_to)) {
            snprintf(err, errlen, "step %zu: rates must be between 0 and 1000000/s", i + 1);
            return -1;
        }
        if (!isfinite(st->duration_s) || !(st->duration_s > 0) || st->duration_s > 1e7) {
            snprintf(err, errlen, "step %zu: duration must be above 0 s (got %g)", i + 1,
                     st->duration_s);
            return -1;
        }
        total += (st->rate + (st->ramp_to > 0 ? st->ramp_to : st->rate)) / 2 * st->duration_s;
        len += st->duration_s;
    }
    if (!(total > 0) || len > 1e7) {
        snprintf(err, errlen, "the steps must send something and last at most 10000000 s");
        return -1;
    }
    return 0;
}

/* Writes the schedule to the run DB as a "load" event at run-clock 0, so
 * reports say what the load was (and warn about a closed loop). */
static void lg_describe(struct loadgen *lg, const struct loadgen_opts *o)
{
    struct buf b;
    const char *arr = o->arrival == ARRIVAL_POISSON ? "poisson" : "constant";
    size_t i;

    buf_init(&b, 500);
    if (o->closed_workers > 0) {
        (void)!buf_printf(&b, "closed loop: %d workers for %g s", o->closed_workers,
                          o->duration_s);
    } else if (o->nsteps > 0) {
        (void)!buf_printf(&b, "%s arrivals, %zu steps:", arr, o->nsteps);
        for (i = 0; i < o->nsteps && !buf_failed(&b); i++) {
            if (o->steps[i].ramp_to > 0)
                (void)!buf_printf(&b, " %g->%g/s for %g s", o->steps[i].rate,
                                  o->steps[i].ramp_to, o->steps[i].duration_s);
            else
                (void)!buf_printf(&b, " %g/s for %g s", o->steps[i].rate,
                                  o->steps[i].duration_s);
            if (i + 1 < o->nsteps) (void)!buf_puts(&b, ",");
        }
    } else if (o->ramp_to > 0) {
        (void)!buf_printf(&b, "%s arrivals ramping %g/s -> %g/s over %g s", arr, o->rate,
                          o->ramp_to, o->duration_s);
    } else {
        (void)!buf_printf(&b, "%s arrivals at %g/s for %g s", arr, o->rate, o->duration_s);
    }
    if (buf_failed(&b)) (void)!buf_puts(&b, " ...");
    if (rundb_event(o->db, 0, "load", o->closed_workers > 0 ? "closed" : "open",
                    b.data ? b.data : "") != 0)
        log_warn(LG_TAG, "run DB refused the load event");
    buf_cleanup(&b);
    UNUSED(lg);
}

/* ---- public ---- */

struct loadgen *loadgen_new(struct event_base *base, const struct loadgen_opts *opts,
                            void (*on_done)(void *arg), void *arg, char *err, size_t errlen)
{
    struct loadgen *lg = NULL, *ret = NULL;
    double sum = 0;
    size_t i;

    if (!base || !opts || !opts->url || !opts->url[0] || !opts->model || !opts->model[0]) {
        snprintf(err, errlen, "load generator needs an event loop, a URL and a model");
        goto out;
    }
    if (lg_check_schedule(opts, err, errlen) != 0) goto out;
    if (!opts->prompts || opts->prompts->n == 0) {
        snprintf(err, errlen, "load generator needs at least one prompt");
        goto out;
    }
    for (i = 0; i < opts->nheaders; i++) {
        if (!lg_header_ok(opts->headers[i].name, opts->headers[i].value)) {
            snprintf(err, errlen, "header '%.60s': names are tokens without ':' and values "
                     "have no line breaks", opts->headers[i].name ? opts->headers[i].name : "");
            goto out;
        }
    }
    if (opts->served_by_header && !lg_header_ok(opts->served_by_header, "")) {
        snprintf(err, errlen, "served-by header name '%.60s' is not a valid header name",
                 opts->served_by_header);
        goto out;
    }
    lg = calloc(1, sizeof *lg);
    if (!lg) goto oom;
    lg->tfd = -1;
    lg->base = base;
    lg->o = *opts;
    if (!(lg->o.timeout_s > 0)) lg->o.timeout_s = 30;
    if (lg->o.timeout_s < 0.001) lg->o.timeout_s = 0.001; /* curl: 0 ms = no timeout */
    if (lg->o.timeout_s > 86400) lg->o.timeout_s = 86400;
    if (lg->o.max_inflight <= 0) lg->o.max_inflight = 10000;
    if (lg->o.max_inflight < lg->o.closed_workers) lg->o.max_inflight = lg->o.closed_workers;
    lg->o.steps = NULL; /* copied into the segments below */
    lg->on_done = on_done;
    lg->arg = arg;
    lg->t0 = opts->t0_mono_us ? opts->t0_mono_us : clock_mono_us();
    lg->duration_us = (int64_t)llround(loadgen_schedule_length_s(opts) * 1e6);
    if (lg_segs_build(lg, opts) != 0) goto oom;
    lg->closed_left = opts->closed_workers;
    lg->rng_arrival = opts->seed ^ 0x6172726976616cULL;  /* independent streams */
    lg->rng_prompt = opts->seed ^ 0x70726f6d707473ULL;
    lg->nprompts = opts->prompts->n;
    lg->payloads = calloc(lg->nprompts, sizeof *lg->payloads);
    lg->cum_weight = calloc(lg->nprompts, sizeof *lg->cum_weight);
    if (!lg->payloads || !lg->cum_weight) goto oom;
    for (i = 0; i < lg->nprompts; i++) {
        double w = opts->prompts->v[i].weight;

        sum += (w > 0 && isfinite(w)) ? w : 1.0;
        lg->cum_weight[i] = sum;
        if (lg_payload_build(lg, &opts->prompts->v[i], &lg->payloads[i], err, errlen) != 0)
            goto out;
    }
    lg->slots = calloc(LG_NSLOTS, sizeof *lg->slots);
    for (i = 0; lg->slots && i < (size_t)LG_NSLOTS; i++) lg->slots[i].epoch = -1;
    lg->cv = curlev_new(base);
    lg->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (lg->tfd >= 0) {
        lg->timer = event_new(base, lg->tfd, EV_READ | EV_PERSIST, lg_on_timer, lg);
        if (lg->timer && event_add(lg->timer, NULL) != 0) goto oom;
    } else {
        lg->timer = evtimer_new(base, lg_on_timer, lg);
    }

    lg->done_ev = event_new(base, -1, 0, lg_on_done_event, lg);
    if (!lg->slots || !lg->cv || !lg->timer || !lg->done_ev) goto oom;

    lg->next_seq = 0;
    if (opts->closed_workers > 0) lg->next_intended_us = 0;
    else lg_sched_set(lg, lg_sched_time(lg, 0)); /* request 0: where the rate starts */
    if (opts->db) lg_describe(lg, opts);
    lg_arm(lg);
    lg_check_done(lg);
    ret = lg;
    lg = NULL;
    goto out;
oom:
    snprintf(err, errlen, "out of memory");
out:
    loadgen_free(lg);
    return ret;
}

static void lg_on_drain_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct loadgen *lg = arg;

    UNUSED(fd);
    UNUSED(what);
    log_warn(LG_TAG, "%llu requests still running %.1f s after the drain began: cut",
             (unsigned long long)lg->st.inflight, lg->o.timeout_s + 1);
    loadgen_stop(lg); /* a timer of our own, not curl's callbacks: allowed */
}

void loadgen_drain(struct loadgen *lg)
{
    double d;
    struct timeval tv;

    if (!lg || lg->stopped || lg->draining) return;
    lg->draining = 1;
    lg->sched_over = 1; /* no further starts, open or closed loop */
    if (lg->timer) event_del(lg->timer);
    /* curl's own CURLOPT_TIMEOUT_MS ends every transfer within timeout_s of
     * its start; the deadline is the backstop should one outlive it. */
    if (lg->inflight) {
        lg->drain_ev = evtimer_new(lg->base, lg_on_drain_deadline, lg);
        d = lg->o.timeout_s + 1;
        tv.tv_sec = (time_t)d;
        tv.tv_usec = (suseconds_t)((d - (double)tv.tv_sec) * 1e6);
        if (!lg->drain_ev || evtimer_add(lg->drain_ev, &tv) != 0) {
            log_warn(LG_TAG, "out of memory: the drain cuts what is in flight now");
            loadgen_stop(lg);
            return;
        }
    }
    lg_check_done(lg);
}

void loadgen_stop(struct loadgen *lg)
{
    int64_t now;

    if (!lg || lg->stopped) return;
    lg->stopped = 1;
    if (lg->timer) event_del(lg->timer);
    if (lg->drain_ev) event_del(lg->drain_ev);
    now = lg_now(lg);
    while (lg->inflight) {
        struct lg_req *q = lg->inflight;
        long status = 0;

        curlev_remove(lg->cv, q->easy);
        if (curl_easy_getinfo(q->easy, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK)
            q->rec.http_status = (int)status;
        q->rec.end_us = now;
        q->rec.outcome = OUTCOME_TIMEOUT;
        lg_copy_str(q->rec.error, sizeof q->rec.error, "aborted");
        lg_copy_str(q->rec.provider, sizeof q->rec.provider,
                    q->hdr_provider[0] ? q->hdr_provider : q->json_model);
        lg_unlink(lg, q);
        lg_record(lg, &q->rec);
        lg_req_put(lg, q);
    }
    lg_check_done(lg);
}

void loadgen_get_stats(const struct loadgen *lg, struct loadgen_stats *out)
{
    int64_t now = lg_now(lg), first = (now - LG_WINDOW_US) / LG_SLOT_US + 1, k;
    uint64_t n = 0, nfail = 0, nok = 0, nprov = 0, counts[LG_MAX_PROVIDERS];
    uint64_t hist[LG_HIST_N];
    int top = -1, i;

    *out = lg->st;
    out->rolling_sr = -1;
    out->rolling_p95_s = -1;
    out->top_provider[0] = '\0';
    out->top_share = -1;
    memset(counts, 0, sizeof counts);
    memset(hist, 0, sizeof hist);
    /* the slots of the last 10 s (the current one still filling) */
    for (k = first; k <= now / LG_SLOT_US; k++) {
        const struct lg_slot *sl = &lg->slots[(k < 0 ? 0 : k) % LG_NSLOTS];
        size_t b;

        if (k < 0 || sl->epoch != k) continue;
        n += sl->n;
        nfail += sl->nfail;
        nok += sl->nok;
        nprov += sl->nprov;
        for (i = 0; i < LG_MAX_PROVIDERS; i++) counts[i] += sl->prov[i];
        if (sl->nok)
            for (b = 0; b < LG_HIST_N; b++) hist[b] += sl->hist[b];
    }
    if (n) out->rolling_sr = 100.0 * (1.0 - (double)nfail / (double)n);
    if (nok) {
        /* the bucket holding the order statistic ceil(0.95 n), by its top */
        uint64_t want = (uint64_t)ceil(0.95 * (double)nok), seen = 0;
        size_t b;

        if (want < 1) want = 1;
        for (b = 0; b < LG_HIST_N; b++) {
            seen += hist[b];
            if (seen >= want) break;
        }
        out->rolling_p95_s = (double)lg_hist_upper(b < LG_HIST_N ? b : LG_HIST_N - 1) / 1e6;
    }
    for (i = 0; i < lg->nproviders && i < LG_MAX_PROVIDERS; i++)
        if (counts[i] && (top < 0 || counts[i] > counts[top])) top = i;
    if (top >= 0 && nprov) {
        lg_copy_str(out->top_provider, sizeof out->top_provider, lg->providers[top]);
        out->top_share = 100.0 * (double)counts[top] / (double)nprov;
    }
}

void loadgen_free(struct loadgen *lg)
{
    size_t i;

    if (!lg) return;
    if (lg->timer) event_free(lg->timer); /* deletes it first */
    if (lg->tfd >= 0) close(lg->tfd);
    if (lg->done_ev) event_free(lg->done_ev);
    if (lg->drain_ev) event_free(lg->drain_ev);
    while (lg->inflight) { /* not recorded: call loadgen_stop first for that */
        struct lg_req *q = lg->inflight;

        if (lg->cv) curlev_remove(lg->cv, q->easy);
        lg_unlink(lg, q);
        lg_req_destroy(q);
    }
    while (lg->free_reqs) {
        struct lg_req *q = lg->free_reqs;

        lg->free_reqs = q->next;
        lg_req_destroy(q);
    }
    curlev_free(lg->cv);
    if (lg->payloads) {
        for (i = 0; i < lg->nprompts; i++) {
            cJSON_free(lg->payloads[i].body);
            curl_slist_free_all(lg->payloads[i].headers);
        }
    }
    free(lg->payloads);
    free(lg->segs);
    free(lg->cum_weight);
    free(lg->slots);
    free(lg);
}
