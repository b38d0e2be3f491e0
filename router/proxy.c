/* proxy.c -- the OpenAI-compatible routing proxy: evhttp in, curl multi out, one loop.
 *
 * DESIGN: a client request (struct preq) runs a series of upstream attempts
 * (struct patt) chosen by the pure core (router/core.h). Nothing reaches the
 * client until the attempt has produced its first token: a streamed answer's
 * events are held until the first event that carries content, a plain
 * answer's body until it is complete (up to PX_HOLD_MAX, past which it is
 * forwarded as it comes). Until then any failure -- a status, a reset, the
 * stream_timeout, an error event -- moves to the next attempt invisibly.
 * After that, events are forwarded one by one as they arrive, and a failure
 * ends the stream with an OpenAI-style error event. When the core puts a
 * deployment into cooldown, every attempt still waiting on it for its first
 * token is moved at once (a stream_timeout storm costs one timeout, not one
 * per request). Starting an attempt always goes through a timer, never from
 * inside another callback. Semantics: docs/routing.md. */
#include "router/router.h"

#include <ctype.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/curlev.h"
#include "common/log.h"
#include "common/net.h"
#include "common/sse.h"
#include "router/anthropic.h"
#include "router/config.h"
#include "router/core.h"
#include "router/guard.h"
#include "router/prices.h"
#include "router/metrics.h"
#include "router/reqlog.h"
#include "router/travel.h"

#define PX_TAG "router"
#define PX_MAX_CLIENT_BODY (8u << 20)    /* client request body */
#define PX_MAX_CLIENT_HEADERS (64u << 10)
#define PX_MAX_UP_HEADERS (64u << 10)    /* all upstream header bytes of one attempt */
#define PX_MAX_ERR_BODY (64u << 10)      /* kept of an upstream error body */
#define PX_HOLD_MAX (1u << 20)           /* held before the first token */
#define PX_MAX_EVENT (1u << 20)          /* one SSE event */
#define PX_BACKLOG_HIGH (4u << 20)       /* client output buffer: pause upstream */
#define PX_BACKLOG_LOW (1u << 20)        /* ... resume */
#define PX_CONNECT_TIMEOUT_MS 10000
#define PX_MAX_IDLE_UPSTREAM 4096        /* idle upstream connections kept for reuse */
#define PX_RECV_BUFFER_STREAM 2048       /* libcurl's receive buffer for a stream */
#define PX_EASY_POOL 256                 /* idle curl easy handles kept for reuse */
/* freed request and attempt records kept for reuse: a preq is a few kB, and
 * a malloc that large makes glibc consolidate its fast bins every time. Off
 * under ASan, which must see every free. */
#if defined(__SANITIZE_ADDRESS__)
#define PX_OBJ_POOL 0
#else
#define PX_OBJ_POOL 256
#endif

enum px_fail {
    PX_FAIL_NONE = 0,
    PX_FAIL_TTFT,        /* stream_timeout passed before the first token */
    PX_FAIL_IDLE,        /* silence between chunks */
    PX_FAIL_TOOBIG,      /* a bound was passed */
    PX_FAIL_ERROR_EVENT, /* an error event in the stream */
    PX_FAIL_MALFORMED,   /* not JSON where JSON was due */
    PX_FAIL_PREEMPTED,   /* moved: the deployment went into cooldown */
    PX_FAIL_CLIENT_GONE
};

struct preq;

struct patt {
    struct preq *rq;
    int dep;
    CURL *easy;
    struct curl_slist *hdrs;  /* rid_node, then the deployment's fixed headers (not ours) */
    struct curl_slist rid_node;
    char rid_hdr[80];         /* x-slodrill-request-id: ... */
    char *payload;
    int status;
    size_t header_bytes;
    char content_type[128];
    char up_provider[64];
    int64_t retry_after_ms;
    int is_sse;           /* 2xx with text/event-stream */
    struct buf body;      /* error body, or a plain answer held before commit */
    struct sse_parser *sse;
    struct evbuffer *held; /* stream events held before the first token */
    int first_token;
    int done_seen;        /* [DONE] */
    int error_event;      /* an error event was forwarded */
    enum px_fail fail;
    char fail_detail[160];
    struct event *ttft_timer, *idle_timer;
    int paused;
    long in_tokens, out_tokens;  /* prompt (cache included) and completion */
    long cache_read, cache_write; /* Anthropic prompt-cache tokens, priced apart */
    int anthropic;               /* the deployment speaks the Messages API */
    struct anthropic_stream *ant; /* its stream translator (streams only) */
    uint64_t t_start_us, t_first_us; /* clock_mono_us() at start and first token (0 none) */
    struct patt *dnext, *dprev; /* in-flight attempts of the same deployment */
};

struct preq {
    struct proxy *p;
    struct evhttp_request *req; /* NULL once the client went away */
    struct core_req *cr;
    cJSON *body;
    char *raw;            /* the body as the client sent it (NUL-terminated) */
    size_t raw_len;
    const char *alias;    /* borrowed from body */
    int stream;
    int client_usage;     /* the client asked for stream_options.include_usage */
    char id[48];
    struct patt *att;
    struct event *next_ev;   /* starts the next attempt */
    struct event *resume_ev; /* resumes a paused upstream */
    struct core_pick pick;
    int have_pick;
    int committed;
    int attempts, fallbacks, hops;
    int last_dep;         /* deployment of the latest attempt (-1 none) */
    int first_dep;
    char served_provider[64];
    double cost;          /* < 0 unknown */
    int64_t t_start_us;
    uint64_t t_start_wall_us;
    /* for the request log */
    uint64_t t_first_us;  /* first answer byte sent to the client (0: none) */
    int status_sent;      /* HTTP status sent (0: none yet) */
    const char *outcome;  /* NULL until decided */
    char error[256];
    char refused[256];      /* the upstream's dialect cannot say this request: why (400) */
    int last_timeout;     /* the latest failed attempt timed out */
    long in_tokens, out_tokens; /* < 0 unknown */
    int pinned;
    char tenant[64], user[128], feature[64];
    struct guard_req g;   /* budgets and cache (router/guard.h) */
    struct preq *next, *prev;
};

/* What every attempt on a deployment sends alike, built once in proxy_new. */
struct px_dep {
    char *url;
    struct curl_slist *hdrs[2]; /* [stream]: key, content type, accept, no Expect */
    int priced;                 /* rates holds its prices (px_cost) */
    struct prices_rates rates;
};

struct proxy {
    struct event_base *base;
    const struct router_config *cfg;
    struct evhttp *http;
    struct curlev *cv;
    struct core *core;
    struct event *cool_timer;
    int port;
    int bypass;
    int env_proxy; /* a proxy variable is set: curl reads them per transfer */
    proxy_event_fn on_event;
    void *event_arg;
    uint64_t seed, counter;
    struct patt **by_dep;
    struct preq *reqs;
    size_t backlog_high, backlog_low;
    int client_sndbuf;
    struct proxy_stats stats;
    struct metrics *metrics;
    CURL *easy_pool[PX_EASY_POOL]; /* idle easy handles, reset, for the next attempts */
    int n_easy_pool;
    void *free_rq[PX_OBJ_POOL + 1], *free_att[PX_OBJ_POOL + 1]; /* records for reuse */
    struct px_dep *deps;     /* per deployment: URL and fixed headers, built once */
    int n_free_rq, n_free_att;
    struct reqlog *log;      /* NULL: no request log */
    struct guard *guard;     /* budgets, rate caps, cache, travel mode */
};

static int64_t px_now_ms(void)
{
    return (int64_t)(clock_mono_us() / 1000);
}

static void px_event(struct proxy *p, const char *kind, const char *subject, const char *detail)
{
    log_info(PX_TAG, "%s %s: %s", kind, subject, detail);
    if (p->on_event)
        p->on_event(kind, subject, detail, clock_mono_us(), p->event_arg);
}

/* ---- responses ---- */

/* v in decimal into out (at least 12 bytes): snprintf's cost, three times a
 * request, without its format parsing. */
static const char *px_itoa(char *out, int v)
{
    char tmp[12];
    unsigned u = v < 0 ? 0u - (unsigned)v : (unsigned)v;
    size_t n = 0, i = 0;
    do
        tmp[n++] = (char)('0' + u % 10);
    while ((u /= 10) && n < sizeof tmp);
    if (v < 0)
        out[i++] = '-';
    while (n)
        out[i++] = tmp[--n];
    out[i] = '\0';
    return out;
}

static void px_common_headers(struct preq *rq, struct evkeyvalq *h)
{
    const struct router_config *cfg = rq->p->cfg;
    char num[64];
    const struct router_deploy *d = rq->last_dep >= 0 ? &cfg->dep[rq->last_dep] : NULL;

    evhttp_add_header(h, "x-slodrill-request-id", rq->id);
    evhttp_add_header(h, "x-slodrill-deployment", d ? d->id : "none");
    evhttp_add_header(h, "x-slodrill-provider",
                      rq->served_provider[0] ? rq->served_provider : d ? d->provider : "none");
    evhttp_add_header(h, "x-slodrill-model", d ? d->upstream_model : "none");
    evhttp_add_header(h, "x-slodrill-attempts", px_itoa(num, rq->attempts));
    evhttp_add_header(h, "x-slodrill-fallbacks", px_itoa(num, rq->fallbacks));
    evhttp_add_header(h, "x-slodrill-failover-hops", px_itoa(num, rq->hops));
    if (rq->cost >= 0) {
        snprintf(num, sizeof num, "%.8f", rq->cost);
        evhttp_add_header(h, "x-slodrill-cost-usd", num);
    }
    guard_headers(&rq->g, h);
}

static char *px_error_json(const char *message, const char *type, const char *code)
{
    cJSON *root = cJSON_CreateObject(), *e = cJSON_CreateObject();
    char *s = NULL;
    if (root && e) {
        cJSON_AddStringToObject(e, "message", message);
        cJSON_AddStringToObject(e, "type", type);
        cJSON_AddNullToObject(e, "param");
        if (code)
            cJSON_AddStringToObject(e, "code", code);
        else
            cJSON_AddNullToObject(e, "code");
        cJSON_AddItemToObject(root, "error", e);
        e = NULL;
        s = cJSON_PrintUnformatted(root);
    }
    cJSON_Delete(e);
    cJSON_Delete(root);
    return s;
}

/* A whole reply (status, content type, body) to an evhttp request. */
static void px_reply_raw(struct evhttp_request *req, int status, const char *ctype,
                         const char *body, size_t len)
{
    struct evbuffer *out = evbuffer_new();
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", ctype);
    if (out && body)
        evbuffer_add(out, body, len);
    evhttp_send_reply(req, status, NULL, out);
    if (out)
        evbuffer_free(out);
}

static void px_reply_error(struct evhttp_request *req, int status, const char *message,
                           const char *type, const char *code)
{
    char *s = px_error_json(message, type, code);
    px_reply_raw(req, status, "application/json", s ? s : "{}", s ? strlen(s) : 2);
    free(s);
}

/* ---- request bookkeeping ---- */

static void px_att_free(struct patt *a);

static void px_dep_unlink(struct proxy *p, struct patt *a)
{
    if (a->dep < 0)
        return;
    if (a->dprev)
        a->dprev->dnext = a->dnext;
    else if (p->by_dep[a->dep] == a)
        p->by_dep[a->dep] = a->dnext;
    if (a->dnext)
        a->dnext->dprev = a->dprev;
    a->dnext = a->dprev = NULL;
}

static void px_client_closed(struct evhttp_connection *evcon, void *arg);
static void px_route(struct preq *rq, struct evhttp_request *req);
static void px_admitted(void *arg, enum guard_verdict v);

/* Copies at most n - 1 bytes of s into out, NUL-terminated. */
static void px_copy(char *out, size_t n, const char *s)
{
    size_t k = s ? strnlen(s, n - 1) : 0;
    if (k)
        memcpy(out, s, k);
    out[k] = '\0';
}

/* A zeroed record of size n from pool (*count of them), else calloc. */
static void *px_obj_get(void **pool, int *count, size_t n)
{
    void *o;
    if (*count > 0) {
        o = pool[--*count];
        memset(o, 0, n);
        return o;
    }
    return calloc(1, n);
}

/* Takes back a record (NULL does nothing). */
static void px_obj_put(void **pool, int *count, void *o)
{
    if (o && *count < PX_OBJ_POOL)
        pool[(*count)++] = o;
    else
        free(o);
}

/* The request's record for the request log, when there is one. */
static void px_log(struct preq *rq)
{
    struct proxy *p = rq->p;
    const struct router_config *cfg = p->cfg;
    const struct router_deploy *d = rq->last_dep >= 0 ? &cfg->dep[rq->last_dep] : NULL;
    uint64_t now = clock_mono_us();
    struct reqlog_rec r;

    if (!p->log)
        return;
    memset(&r, 0, sizeof r);
    px_copy(r.request_id, sizeof r.request_id, rq->id);
    r.start_wall_us = rq->t_start_wall_us;
    r.ttft_ms = rq->t_first_us ? (double)(rq->t_first_us - (uint64_t)rq->t_start_us) / 1000.0 : -1;
    r.duration_ms = (double)(now - (uint64_t)rq->t_start_us) / 1000.0;
    r.status = rq->status_sent;
    px_copy(r.outcome, sizeof r.outcome, rq->outcome ? rq->outcome : "cancelled");
    px_copy(r.alias, sizeof r.alias, rq->alias);
    if (d) {
        px_copy(r.deployment, sizeof r.deployment, d->id);
        px_copy(r.provider, sizeof r.provider,
                rq->served_provider[0] ? rq->served_provider : d->provider);
        px_copy(r.model, sizeof r.model, d->upstream_model);
    }
    r.attempts = rq->attempts;
    r.hops = rq->hops;
    r.fallbacks = rq->fallbacks;
    r.stream = rq->stream;
    r.pinned = rq->pinned;
    r.input_tokens = rq->in_tokens;
    r.output_tokens = rq->out_tokens;
    r.cost_usd = rq->cost;
    px_copy(r.tenant, sizeof r.tenant, rq->tenant);
    px_copy(r.user, sizeof r.user, rq->user);
    px_copy(r.feature, sizeof r.feature, rq->feature);
    px_copy(r.error, sizeof r.error, rq->error);
    if (reqlog_add(p->log, &r) != 0)
        log_debug(PX_TAG, "%s: request record dropped", rq->id);
}

/* Outcome class of an answer with this status (DESIGN.md's classes). */
static const char *px_outcome(int status, int timed_out)
{
    if (status >= 200 && status < 300)
        return "ok";
    if (status == 429)
        return "rate_limited";
    if (status >= 400 && status < 500 && status != 408)
        return "client_error";
    return timed_out ? "timeout" : "retryable_error";
}

static void px_req_free(struct preq *rq)
{
    struct proxy *p;
    if (!rq)
        return;
    p = rq->p;
    px_log(rq);
    /* the edge counters: once per client request, as it ends (router/metrics.h) */
    metrics_request(p->metrics, rq->alias, rq->outcome ? rq->outcome : "cancelled",
                    rq->t_first_us ? (double)(rq->t_first_us - (uint64_t)rq->t_start_us) / 1e6 : -1,
                    (double)(clock_mono_us() - (uint64_t)rq->t_start_us) / 1e6, rq->cost);
    if (rq->att) {
        curlev_remove(p->cv, rq->att->easy);
        px_att_free(rq->att);
        rq->att = NULL;
    }
    if (rq->req) {
        struct evhttp_connection *evcon = evhttp_request_get_connection(rq->req);
        if (evcon)
            evhttp_connection_set_closecb(evcon, NULL, NULL);
    }
    if (rq->next_ev)
        event_free(rq->next_ev);
    if (rq->resume_ev)
        event_free(rq->resume_ev);
    core_req_free(rq->cr);
    guard_req_cleanup(&rq->g);
    cJSON_Delete(rq->body);
    free(rq->raw);
    if (rq->prev)
        rq->prev->next = rq->next;
    else if (p->reqs == rq)
        p->reqs = rq->next;
    if (rq->next)
        rq->next->prev = rq->prev;
    px_obj_put(p->free_rq, &p->n_free_rq, rq);
}

/* Detaches the client (closecb off) before a final send that may free the
 * connection. Returns the request to answer. */
static struct evhttp_request *px_take_req(struct preq *rq)
{
    struct evhttp_request *req = rq->req;
    if (req) {
        struct evhttp_connection *evcon = evhttp_request_get_connection(req);
        if (evcon)
            evhttp_connection_set_closecb(evcon, NULL, NULL);
    }
    rq->req = NULL;
    return req;
}

static void px_client_closed(struct evhttp_connection *evcon, void *arg)
{
    struct preq *rq = arg;
    struct evhttp_request *req = rq->req;
    (void)evcon;
    log_debug(PX_TAG, "%s: client went away", rq->id);
    rq->req = NULL;
    rq->outcome = "cancelled";
    px_copy(rq->error, sizeof rq->error, "the client went away");
    px_req_free(rq);
    /* libevent 2.1 detaches a request the user has not finished from a failed
     * connection and leaves freeing it to us; an attached one it frees itself. */
    if (req && !evhttp_request_get_connection(req))
        evhttp_request_free(req);
}

/* ---- the final answer ---- */

static void px_finish_error(struct preq *rq, int status, const char *msg, const char *type,
                            const char *code, int64_t retry_after_ms)
{
    struct evhttp_request *req = px_take_req(rq);
    rq->status_sent = status;
    rq->outcome = px_outcome(status, rq->last_timeout);
    px_copy(rq->error, sizeof rq->error, msg);
    if (req) {
        struct evkeyvalq *h = evhttp_request_get_output_headers(req);
        px_common_headers(rq, h);
        if (retry_after_ms > 0) {
            char ra[32];
            snprintf(ra, sizeof ra, "%" PRId64, (retry_after_ms + 999) / 1000);
            evhttp_add_header(h, "retry-after", ra);
            snprintf(ra, sizeof ra, "%" PRId64, retry_after_ms);
            evhttp_add_header(h, "retry-after-ms", ra);
        }
        px_reply_error(req, status, msg, type, code);
    }
    px_req_free(rq);
}

/* Nothing is left to try: word the error from the core. */
static void px_finish_exhausted(struct preq *rq)
{
    char msg[1024];
    int status = 503;
    int64_t ra = 0;

    if (rq->req) { /* travel mode: a stale answer from the cache beats an error */
        px_common_headers(rq, evhttp_request_get_output_headers(rq->req));
        if (guard_stale(rq->p->guard, rq->req, rq->id, &rq->g, rq->stream, rq->client_usage)) {
            rq->outcome = rq->g.outcome;
            rq->status_sent = rq->g.status;
            rq->t_first_us = clock_mono_us();
            px_take_req(rq);
            px_req_free(rq);
            return;
        }
        evhttp_clear_headers(evhttp_request_get_output_headers(rq->req));
    }

    if (rq->cr)
        core_req_summary(rq->p->core, rq->cr, px_now_ms(), msg, sizeof msg, &status, &ra);
    else
        snprintf(msg, sizeof msg, "the bypass deployment could not answer");
    if (status == 429)
        px_finish_error(rq, 429, msg, "rate_limit_error", "rate_limit_exceeded", ra);
    else
        px_finish_error(rq, 503, msg, "service_unavailable_error", "no_healthy_deployment", ra);
}

/* Sends response headers once: the commit point. */
static int px_commit(struct preq *rq, struct patt *a)
{
    struct evkeyvalq *h;
    if (rq->committed)
        return 0;
    if (!rq->req)
        return -1;
    if (a->up_provider[0])
        snprintf(rq->served_provider, sizeof rq->served_provider, "%s", a->up_provider);
    h = evhttp_request_get_output_headers(rq->req);
    px_common_headers(rq, h);
    if (a->is_sse) {
        evhttp_add_header(h, "Content-Type", "text/event-stream; charset=utf-8");
        evhttp_add_header(h, "Cache-Control", "no-cache");
    } else {
        evhttp_add_header(h, "Content-Type",
                          a->content_type[0] ? a->content_type : "application/json");
    }
    evhttp_send_reply_start(rq->req, a->status ? a->status : 200, NULL);
    rq->committed = 1;
    rq->status_sent = a->status ? a->status : 200;
    rq->t_first_us = clock_mono_us();
    return 0;
}

static void px_chunk_written(struct evhttp_connection *evcon, void *arg);

static size_t px_backlog(struct preq *rq)
{
    struct evhttp_connection *evcon;
    struct bufferevent *bev;
    if (!rq->req || !(evcon = evhttp_request_get_connection(rq->req)))
        return 0;
    bev = evhttp_connection_get_bufferevent(evcon);
    return bev ? evbuffer_get_length(bufferevent_get_output(bev)) : 0;
}

/* Forwards bytes to the committed client. */
static void px_send(struct preq *rq, const void *data, size_t len)
{
    struct evbuffer *b;
    if (!rq->req || !len)
        return;
    b = evbuffer_new();
    if (!b)
        return;
    evbuffer_add(b, data, len);
    evhttp_send_reply_chunk_with_cb(rq->req, b, px_chunk_written, rq);
    evbuffer_free(b);
    len = px_backlog(rq);
    if (len > rq->p->stats.max_client_backlog)
        rq->p->stats.max_client_backlog = len;
}

static void px_send_error_event(struct preq *rq, const char *msg)
{
    char *s = px_error_json(msg, "server_error", "upstream_stream_error");
    struct buf out;
    buf_init(&out, 0);
    if (s && buf_puts(&out, "data: ") == 0 && buf_puts(&out, s) == 0 &&
        buf_puts(&out, "\n\n") == 0)
        px_send(rq, out.data, out.len);
    buf_cleanup(&out);
    free(s);
}

static void px_end_committed(struct preq *rq)
{
    struct evhttp_request *req = px_take_req(rq);
    if (req)
        evhttp_send_reply_end(req);
    px_req_free(rq);
}

/* ---- attempts ---- */

/* An easy handle for a new attempt: a reset one from the pool, else a new
 * one (allocating a handle per attempt was a tenth of the router's CPU). */
static CURL *px_easy_get(struct proxy *p)
{
    return p->n_easy_pool > 0 ? p->easy_pool[--p->n_easy_pool] : curl_easy_init();
}

/* Takes back a handle no longer in the multi. Not reset: px_attempt_start
 * sets every option an attempt uses, each time, and curl_easy_reset would
 * free and rebuild the handle's defaults for nothing. */
static void px_easy_put(struct proxy *p, CURL *easy)
{
    if (!easy)
        return;
    if (p->n_easy_pool < PX_EASY_POOL) {
        p->easy_pool[p->n_easy_pool++] = easy;
    } else {
        curl_easy_cleanup(easy);
    }
}

static void px_att_free(struct patt *a)
{
    if (!a)
        return;
    px_dep_unlink(a->rq->p, a);
    if (a->dep >= 0)
        core_inflight(a->rq->p->core, a->dep, -1);
    px_easy_put(a->rq->p, a->easy); /* removed from the multi on every path here */
    free(a->payload); /* a->hdrs: our node, then the deployment's shared list */
    buf_cleanup(&a->body);
    sse_parser_free(a->sse);
    anthropic_stream_free(a->ant);
    if (a->held)
        evbuffer_free(a->held);
    if (a->ttft_timer)
        event_free(a->ttft_timer);
    if (a->idle_timer)
        event_free(a->idle_timer);
    px_obj_put(a->rq->p->free_att, &a->rq->p->n_free_att, a);
}

/* Runs px_next_fired from the loop after delay_ms. No delay: made active, so
 * it runs once the current callback returns, in this loop turn (a zero
 * timer would cost another turn: an epoll_wait before the upstream request). */
static void px_schedule_next(struct preq *rq, int64_t delay_ms)
{
    struct timeval tv;
    if (delay_ms <= 0) {
        event_del(rq->next_ev);
        event_active(rq->next_ev, EV_TIMEOUT, 0);
        return;
    }
    tv.tv_sec = (time_t)(delay_ms / 1000);
    tv.tv_usec = (suseconds_t)((delay_ms % 1000) * 1000);
    event_add(rq->next_ev, &tv);
}

/* Picks the next attempt (or answers with the error) on the next loop turn. */
static void px_plan_next(struct preq *rq)
{
    struct proxy *p = rq->p;
    rq->have_pick = 0;
    if (rq->cr && core_next(p->core, rq->cr, px_now_ms(), &rq->pick) == 1) {
        rq->have_pick = 1;
        px_schedule_next(rq, rq->pick.delay_ms > 0 ? rq->pick.delay_ms : 0);
        return;
    }
    if (!rq->cr && rq->attempts == 0 && rq->last_dep >= 0) {
        /* bypass: the one deployment, once */
        rq->pick.dep = rq->last_dep;
        rq->pick.attempt = 1;
        rq->pick.fallbacks = 0;
        rq->pick.delay_ms = 0;
        rq->have_pick = 1;
        px_schedule_next(rq, 0);
        return;
    }
    px_schedule_next(rq, 0); /* have_pick 0: the timer answers with the error */
}

static void px_cool_timer_arm(struct proxy *p);

static void px_move_waiting(struct proxy *p, int dep, struct patt *except);

static void px_attempt_end(struct patt *a, CURLcode result);

static void px_cost(struct preq *rq, const struct patt *a);

/* Classifies an ended attempt, reports to the core, and decides. */
static void px_after_attempt(struct preq *rq, struct patt *a, enum core_class cls,
                             const char *why)
{
    struct proxy *p = rq->p;
    struct core_effect eff = {0, 0, 0};
    enum core_verdict v = cls == CORE_OK ? CORE_DONE : cls == CORE_CLIENT ? CORE_RETURN
                                                                          : CORE_TRY_NEXT;
    int dep = a->dep;

    if (rq->cr)
        v = core_report(p->core, rq->cr, dep, cls, a->retry_after_ms, px_now_ms(), &eff);
    if (cls == CORE_OK || rq->committed) {
        int known = a->in_tokens > 0 || a->out_tokens > 0;
        rq->in_tokens = known ? a->in_tokens : -1;
        rq->out_tokens = known ? a->out_tokens : -1;
    }
    {
        uint64_t now = clock_mono_us();
        double ttft = a->t_first_us ? (double)(a->t_first_us - a->t_start_us) / 1e6 : -1;
        if (cls == CORE_OK)
            px_cost(rq, a);
        struct metrics_usage mu = {a->in_tokens, a->out_tokens, a->cache_read, a->cache_write};
        metrics_attempt(p->metrics, dep, cls, (double)(now - a->t_start_us) / 1e6, ttft,
                        cls == CORE_OK ? &mu : NULL, cls == CORE_OK ? rq->cost : -1);
    }
    if (cls != CORE_OK)
        log_info(PX_TAG, "%s: attempt %d on %s failed (%s): %s", rq->id, rq->attempts,
                 p->cfg->dep[dep].id, core_class_name(cls), why);
    if (eff.recovered) {
        px_event(p, "cooldown_end", p->cfg->dep[dep].id,
                 "a last-resort probe succeeded while every deployment was cooling");
        px_cool_timer_arm(p);
    }
    if (eff.cooled) {
        char detail[512];
        guard_cooled(p->guard, dep, cls, eff.until_ms - px_now_ms()); /* shared, when set */
        snprintf(detail, sizeof detail, "%s: %.300s; back in %.1f s", core_class_name(cls), why,
                 (double)(eff.until_ms - px_now_ms()) / 1000.0);
        px_event(p, "cooldown_start", p->cfg->dep[dep].id, detail);
        px_cool_timer_arm(p);
        px_move_waiting(p, dep, a);
    }
    (void)v;
}

static void px_fail_committed(struct preq *rq, struct patt *a, const char *why)
{
    (void)a;
    px_send_error_event(rq, why);
    px_end_committed(rq);
}

/* Holds or forwards one SSE event. */
static int px_forward_event(struct patt *a, const char *event, const char *data, size_t len)
{
    struct preq *rq = a->rq;
    struct buf out;
    int rc = -1;

    buf_init(&out, PX_MAX_EVENT + 256);
    if (sse_write(&out, (event && strcmp(event, "message")) ? event : NULL, data, len) != 0)
        goto out;
    if (rq->committed) {
        px_send(rq, out.data, out.len);
    } else {
        if (evbuffer_get_length(a->held) + out.len > PX_HOLD_MAX) {
            a->fail = PX_FAIL_TOOBIG;
            snprintf(a->fail_detail, sizeof a->fail_detail,
                     "more than %u bytes of events before the first token", PX_HOLD_MAX);
            goto out;
        }
        evbuffer_add(a->held, out.data, out.len);
    }
    rc = 0;
out:
    buf_cleanup(&out);
    return rc;
}

static int px_has_content(const cJSON *j)
{
    const cJSON *choices = cJSON_GetObjectItemCaseSensitive(j, "choices"), *c;
    cJSON_ArrayForEach(c, choices)
    {
        const cJSON *delta = cJSON_GetObjectItemCaseSensitive(c, "delta"), *x;
        if (!delta)
            delta = cJSON_GetObjectItemCaseSensitive(c, "message");
        x = cJSON_GetObjectItemCaseSensitive(c, "text");
        if (cJSON_IsString(x) && x->valuestring[0])
            return 1;
        if (!delta)
            continue;
        x = cJSON_GetObjectItemCaseSensitive(delta, "content");
        if (cJSON_IsString(x) && x->valuestring[0])
            return 1;
        x = cJSON_GetObjectItemCaseSensitive(delta, "refusal");
        if (cJSON_IsString(x) && x->valuestring[0])
            return 1;
        x = cJSON_GetObjectItemCaseSensitive(delta, "tool_calls");
        if (cJSON_IsArray(x) && cJSON_GetArraySize(x) > 0)
            return 1;
        x = cJSON_GetObjectItemCaseSensitive(delta, "reasoning_content");
        if (cJSON_IsString(x) && x->valuestring[0])
            return 1;
    }
    return 0;
}

static void px_take_usage(struct patt *a, const cJSON *j)
{
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(j, "usage"), *x;
    if (!cJSON_IsObject(u))
        return;
    x = cJSON_GetObjectItemCaseSensitive(u, "prompt_tokens");
    if (cJSON_IsNumber(x))
        a->in_tokens = (long)x->valuedouble;
    x = cJSON_GetObjectItemCaseSensitive(u, "completion_tokens");
    if (cJSON_IsNumber(x))
        a->out_tokens = (long)x->valuedouble;
    /* OpenAI's automatic prompt caching: priced apart (router/prices.c) */
    x = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(u, "prompt_tokens_details"),
                                         "cached_tokens");
    if (cJSON_IsNumber(x) && !a->anthropic)
        a->cache_read = (long)x->valuedouble;
}

/* ---- a plain answer, checked and its usage read without building a tree ----
 *
 * The same acceptance as cJSON_ParseWithLength (one value, whitespace is any
 * byte up to 0x20, numbers as strtod reads them, nesting up to 1000, bytes
 * after the value ignored) and the same usage px_take_usage would take
 * (first key wins, unescaped key names), at a fraction of the cost: no tree,
 * no allocation. */
enum px_jsu { PXJ_NONE, PXJ_TOP, PXJ_USAGE, PXJ_DETAILS };

struct px_jnum {
    long v;
    int met;   /* the key was met (later duplicates are ignored, as cJSON finds the first) */
    int isnum; /* its value was a number */
};

struct px_jscan {
    const char *p, *end;
    struct px_jnum in, out, cached;
    int seen_usage, seen_details;
};

static int px_jscan_value(struct px_jscan *j, int depth, enum px_jsu ctx, struct px_jnum *num);

static void px_jscan_ws(struct px_jscan *j)
{
    while (j->p < j->end && (unsigned char)*j->p <= 32)
        j->p++;
}

static int px_jscan_hex4(const char *p)
{
    int i;
    for (i = 0; i < 4; i++)
        if (!isxdigit((unsigned char)p[i]))
            return -1;
    return 0;
}

/* A string at j->p; k and klen get its raw bytes (escapes left as they are). */
static int px_jscan_string(struct px_jscan *j, const char **k, size_t *klen)
{
    const char *q;
    if (j->p >= j->end || *j->p != '"')
        return -1;
    for (q = j->p + 1; q < j->end; q++) {
        if (*q == '"') {
            *k = j->p + 1;
            *klen = (size_t)(q - j->p - 1);
            j->p = q + 1;
            return 0;
        }
        if (*q == '\\') {
            if (++q >= j->end)
                return -1;
            if (*q == 'u') {
                if (j->end - q < 5 || px_jscan_hex4(q + 1) != 0)
                    return -1;
                q += 4;
            } else if (!strchr("\"\\/bfnrt", *q) || !*q) {
                return -1;
            }
        }
    }
    return -1;
}

static int px_jscan_numchar(char c)
{
    return (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.' || c == 'e' || c == 'E';
}

static int px_jscan_number(struct px_jscan *j, struct px_jnum *num)
{
    char tmp[64], *e;
    size_t n = 0, i;
    double v;
    while (j->p + n < j->end && n < sizeof tmp - 1 && px_jscan_numchar(j->p[n]))
        n++;
    /* a plain integer (the usual case: token counts, indexes) as strtod reads it */
    i = n > 0 && j->p[0] == '-';
    if (n > i && n - i <= 15) {
        long x = 0;
        size_t k;
        for (k = i; k < n && j->p[k] >= '0' && j->p[k] <= '9'; k++)
            x = x * 10 + (j->p[k] - '0');
        if (k == n) {
            j->p += n;
            if (num) {
                num->v = i ? -x : x;
                num->isnum = 1;
            }
            return 0;
        }
    }
    memcpy(tmp, j->p, n);
    tmp[n] = '\0';
    v = strtod(tmp, &e);
    if (e == tmp)
        return -1;
    j->p += e - tmp;
    if (num) {
        num->v = (long)v;
        num->isnum = 1;
    }
    return 0;
}

static int px_jscan_object(struct px_jscan *j, int depth, enum px_jsu ctx)
{
    j->p++;
    px_jscan_ws(j);
    if (j->p < j->end && *j->p == '}') {
        j->p++;
        return 0;
    }
    for (;;) {
        const char *k;
        size_t kl;
        enum px_jsu sub = PXJ_NONE;
        struct px_jnum *num = NULL;
        px_jscan_ws(j);
        if (px_jscan_string(j, &k, &kl) != 0)
            return -1;
        px_jscan_ws(j);
        if (j->p >= j->end || *j->p != ':')
            return -1;
        j->p++;
        px_jscan_ws(j);
#define PXJ_KEY(s) (kl == sizeof s - 1 && !memcmp(k, s, kl))
        if (ctx == PXJ_TOP && PXJ_KEY("usage") && !j->seen_usage++)
            sub = PXJ_USAGE;
        else if (ctx == PXJ_USAGE && PXJ_KEY("prompt_tokens_details") && !j->seen_details++)
            sub = PXJ_DETAILS;
        else if (ctx == PXJ_USAGE && PXJ_KEY("prompt_tokens") && !j->in.met++)
            num = &j->in;
        else if (ctx == PXJ_USAGE && PXJ_KEY("completion_tokens") && !j->out.met++)
            num = &j->out;
        else if (ctx == PXJ_DETAILS && PXJ_KEY("cached_tokens") && !j->cached.met++)
            num = &j->cached;
#undef PXJ_KEY
        if (px_jscan_value(j, depth + 1, sub, num) != 0)
            return -1;
        px_jscan_ws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            continue;
        }
        if (j->p < j->end && *j->p == '}') {
            j->p++;
            return 0;
        }
        return -1;
    }
}

/* One value at j->p. ctx: what an object here is (usage, its details);
 * num: where a number here goes (isnum stays 0 when it is not one). */
static int px_jscan_value(struct px_jscan *j, int depth, enum px_jsu ctx, struct px_jnum *num)
{
    const char *k;
    size_t kl;
    if (depth > 1000 || j->p >= j->end)
        return -1;
    switch (*j->p) {
    case '{':
        return px_jscan_object(j, depth, ctx);
    case '[':
        j->p++;
        px_jscan_ws(j);
        if (j->p < j->end && *j->p == ']') {
            j->p++;
            return 0;
        }
        for (;;) {
            px_jscan_ws(j);
            if (px_jscan_value(j, depth + 1, PXJ_NONE, NULL) != 0)
                return -1;
            px_jscan_ws(j);
            if (j->p < j->end && *j->p == ',') {
                j->p++;
                continue;
            }
            if (j->p < j->end && *j->p == ']') {
                j->p++;
                return 0;
            }
            return -1;
        }
    case '"':
        return px_jscan_string(j, &k, &kl);
    case 'n':
    case 't':
    case 'f': {
        static const char *const lit[] = {"null", "true", "false"};
        size_t i;
        for (i = 0; i < 3; i++) {
            size_t n = strlen(lit[i]);
            if ((size_t)(j->end - j->p) >= n && !memcmp(j->p, lit[i], n)) {
                j->p += n;
                return 0;
            }
        }
        return -1;
    }
    default:
        return px_jscan_number(j, num);
    }
}

/* A held plain answer: 0 when it is JSON (and its usage taken into a, as
 * px_take_usage would), -1 when not. */
static int px_answer_scan(struct patt *a, const char *s, size_t n)
{
    struct px_jscan j;
    memset(&j, 0, sizeof j);
    j.p = s;
    j.end = s + n;
    if (n >= 3 && !memcmp(s, "\xEF\xBB\xBF", 3)) /* cJSON skips a UTF-8 BOM */
        j.p += 3;
    px_jscan_ws(&j);
    if (px_jscan_value(&j, 0, PXJ_TOP, NULL) != 0)
        return -1;
    if (j.in.isnum)
        a->in_tokens = j.in.v;
    if (j.out.isnum)
        a->out_tokens = j.out.v;
    if (j.cached.isnum && !a->anthropic)
        a->cache_read = j.cached.v;
    return 0;
}

static void px_idle_arm(struct patt *a)
{
    const struct router_config *cfg = a->rq->p->cfg;
    struct timeval tv;
    int64_t ms = cfg->idle_timeout_ms;
    if (!a->idle_timer || ms <= 0)
        return;
    tv.tv_sec = (time_t)(ms / 1000);
    tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
    event_add(a->idle_timer, &tv);
}

static void px_first_token(struct patt *a)
{
    struct preq *rq = a->rq;
    a->first_token = 1;
    a->t_first_us = clock_mono_us();
    core_observe_ttft(rq->p->core, a->dep, (double)(a->t_first_us - a->t_start_us) / 1000.0,
                      px_now_ms());
    if (a->ttft_timer)
        event_del(a->ttft_timer);
    px_dep_unlink(rq->p, a); /* no longer movable */
    px_idle_arm(a);
}

/* The end of a stream: OpenAI's [DONE], or Anthropic's message_stop. */
static int px_on_done(struct patt *a)
{
    struct preq *rq = a->rq;

    a->done_seen = 1;
    if (!rq->committed) {
        if (px_commit(rq, a) != 0)
            return -1;
        px_first_token(a);
        if (evbuffer_get_length(a->held))
            evhttp_send_reply_chunk_with_cb(rq->req, a->held, px_chunk_written, rq);
    }
    return px_forward_event(a, NULL, "[DONE]", 6);
}

/* One OpenAI chunk, j parsed; raw/rawlen its bytes as the upstream sent
 * them, or NULL for a chunk we made (translated). Takes the usage, prices
 * it into usage.cost, gives the client exactly the usage it asked for,
 * commits at the first content, forwards. */
static int px_on_chunk(struct patt *a, const char *event, cJSON *j, const char *raw,
                       size_t rawlen)
{
    struct preq *rq = a->rq;
    cJSON *usage;
    char *s = NULL;
    int modified = raw == NULL, rc = -1;

    if (cJSON_GetObjectItemCaseSensitive(j, "error") || (event && !strcmp(event, "error"))) {
        if (!rq->committed) {
            const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
            const cJSON *m = e ? cJSON_GetObjectItemCaseSensitive(e, "message") : NULL;
            a->fail = PX_FAIL_ERROR_EVENT;
            snprintf(a->fail_detail, sizeof a->fail_detail, "error event before the first token: %s",
                     cJSON_IsString(m) ? m->valuestring : "(no message)");
            goto out;
        }
        a->error_event = 1;
        goto forward;
    }
    px_take_usage(a, j);
    guard_chunk(&rq->g, j);
    usage = cJSON_GetObjectItemCaseSensitive(j, "usage");
    if (cJSON_IsObject(usage)) {
        px_cost(rq, a);
        if (rq->client_usage && rq->cost >= 0 && !cJSON_GetObjectItemCaseSensitive(usage, "cost")) {
            if (!cJSON_AddNumberToObject(usage, "cost", rq->cost))
                goto out;
            modified = 1;
        }
    }
    if (usage && !rq->client_usage) {
        /* we asked for usage, the client did not: drop the usage-only chunk, strip the rest */
        const cJSON *choices = cJSON_GetObjectItemCaseSensitive(j, "choices");
        if (cJSON_IsArray(choices) && cJSON_GetArraySize(choices) == 0) {
            rc = 0;
            goto out;
        }
        cJSON_DeleteItemFromObjectCaseSensitive(j, "usage");
        modified = 1;
    }
    if (!rq->committed && px_has_content(j)) {
        if (px_commit(rq, a) != 0)
            goto out;
        px_first_token(a);
        if (evbuffer_get_length(a->held))
            evhttp_send_reply_chunk_with_cb(rq->req, a->held, px_chunk_written, rq);
    }
forward:
    if (modified) {
        if (!(s = cJSON_PrintUnformatted(j)))
            goto out;
        raw = s;
        rawlen = strlen(s);
    }
    rc = px_forward_event(a, event, raw, rawlen);
out:
    free(s);
    return rc;
}

/* One event of an Anthropic stream, translated to OpenAI chunks. */
static int px_on_anthropic_event(struct patt *a, const char *event, const char *data, size_t len)
{
    struct anthropic_out o;
    struct anthropic_usage u;
    char err[128];
    int i, rc = 0;

    if (anthropic_stream_event(a->ant, event, data, len, &o, err, sizeof err) != 0) {
        if (a->fail == PX_FAIL_NONE) {
            a->fail = PX_FAIL_MALFORMED;
            snprintf(a->fail_detail, sizeof a->fail_detail, "anthropic stream: %s", err);
        }
        return -1;
    }
    anthropic_stream_usage(a->ant, &u);
    a->in_tokens = u.input + u.cache_creation + u.cache_read;
    a->out_tokens = u.output;
    a->cache_read = u.cache_read;
    a->cache_write = u.cache_creation;
    for (i = 0; i < o.n; i++) {
        if (rc == 0 && px_on_chunk(a, NULL, o.chunk[i], NULL, 0) != 0)
            rc = -1;
        cJSON_Delete(o.chunk[i]);
    }
    if (rc == 0 && o.done)
        rc = px_on_done(a);
    return rc;
}

static int px_on_event(const char *event, const char *data, size_t len, const char *id,
                       void *arg)
{
    struct patt *a = arg;
    struct preq *rq = a->rq;
    cJSON *j = NULL;
    int rc = -1;
    (void)id;

    if (a->ant)
        return px_on_anthropic_event(a, event, data, len);
    if (len == 6 && !memcmp(data, "[DONE]", 6))
        return px_on_done(a);
    j = cJSON_ParseWithLength(data, len);
    if (!j || !cJSON_IsObject(j)) {
        if (!rq->committed) {
            a->fail = PX_FAIL_MALFORMED;
            snprintf(a->fail_detail, sizeof a->fail_detail, "stream event is not JSON");
            goto out;
        }
        rc = px_forward_event(a, event, data, len);
        goto out;
    }
    rc = px_on_chunk(a, event, j, data, len);
out:
    cJSON_Delete(j);
    return rc;
}

static size_t px_header_cb(char *ptr, size_t size, size_t nitems, void *arg)
{
    struct patt *a = arg;
    size_t len = size * nitems;
    char line[512];
    size_t n;
    char *colon, *v;

    a->header_bytes += len;
    if (a->header_bytes > PX_MAX_UP_HEADERS) {
        a->fail = PX_FAIL_TOOBIG;
        snprintf(a->fail_detail, sizeof a->fail_detail, "upstream headers over %u bytes",
                 PX_MAX_UP_HEADERS);
        return 0;
    }
    if (len >= 5 && !strncmp(ptr, "HTTP/", 5)) {
        const char *sp = memchr(ptr, ' ', len);
        a->status = 0;
        a->content_type[0] = '\0';
        a->up_provider[0] = '\0';
        a->retry_after_ms = 0;
        if (sp) {
            int i;
            for (i = 1; i <= 3 && (size_t)(sp - ptr) + (size_t)i < len && isdigit((unsigned char)sp[i]); i++)
                a->status = a->status * 10 + (sp[i] - '0');
        }
        return len;
    }
    n = len < sizeof line - 1 ? len : sizeof line - 1;
    memcpy(line, ptr, n);
    line[n] = '\0';
    while (n > 0 && (line[n - 1] == '\r' || line[n - 1] == '\n'))
        line[--n] = '\0';
    colon = strchr(line, ':');
    if (!colon)
        return len;
    *colon = '\0';
    v = colon + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    if (!strcasecmp(line, "content-type")) {
        snprintf(a->content_type, sizeof a->content_type, "%s", v);
    } else if (!strcasecmp(line, "x-slodrill-provider")) {
        snprintf(a->up_provider, sizeof a->up_provider, "%s", v);
    } else if (!strcasecmp(line, "retry-after-ms")) {
        char *end;
        double ms = strtod(v, &end);
        if (end != v && ms > 0 && ms < 86400e3)
            a->retry_after_ms = (int64_t)ms;
    } else if (!strcasecmp(line, "retry-after") && a->retry_after_ms == 0) {
        char *end;
        double s = strtod(v, &end);
        if (end != v && s > 0 && s < 86400)
            a->retry_after_ms = (int64_t)(s * 1000);
    }
    return len;
}

static size_t px_write_cb(char *ptr, size_t size, size_t nmemb, void *arg)
{
    struct patt *a = arg;
    struct preq *rq = a->rq;
    size_t len = size * nmemb;
    char err[128];

    if (a->status < 200 || a->status >= 300) {
        /* an error body: keep the first PX_MAX_ERR_BODY bytes */
        size_t room = PX_MAX_ERR_BODY > a->body.len ? PX_MAX_ERR_BODY - a->body.len : 0;
        if (room && buf_append(&a->body, ptr, len < room ? len : room) != 0)
            return 0;
        return len;
    }
    if (rq->committed && px_backlog(rq) > rq->p->backlog_high) {
        a->paused = 1;
        rq->p->stats.upstream_pauses++;
        return CURL_WRITEFUNC_PAUSE;
    }
    if (!a->sse && !a->body.data && !a->first_token) {
        /* first body byte of a 2xx: decide how to read it */
        a->is_sse = rq->stream && strstr(a->content_type, "text/event-stream") != NULL;
        if (a->is_sse) {
            a->sse = sse_parser_new(PX_MAX_EVENT, px_on_event, a);
            if (!a->sse)
                return 0;
            if (a->anthropic &&
                !(a->ant = anthropic_stream_new((int64_t)(clock_wall_us() / 1000000))))
                return 0;
        }
    }
    if (a->first_token)
        px_idle_arm(a);
    if (a->is_sse) {
        if (sse_parser_feed(a->sse, ptr, len, err, sizeof err) != 0) {
            if (a->fail == PX_FAIL_NONE) {
                a->fail = PX_FAIL_TOOBIG;
                snprintf(a->fail_detail, sizeof a->fail_detail, "stream: %s", err);
            }
            return 0;
        }
        return len;
    }
    /* A plain answer: the first byte is its first token. */
    if (!a->first_token)
        px_first_token(a);
    if (rq->committed) {
        px_send(rq, ptr, len);
        return len;
    }
    if (a->body.len + len > PX_HOLD_MAX && a->anthropic) {
        /* a Messages answer is translated whole: it must fit */
        a->fail = PX_FAIL_TOOBIG;
        snprintf(a->fail_detail, sizeof a->fail_detail, "answer over %u bytes", PX_HOLD_MAX);
        return 0;
    }
    if (a->body.len + len > PX_HOLD_MAX) {
        /* too big to hold: forward from here on */
        if (px_commit(rq, a) != 0)
            return 0;
        px_send(rq, a->body.data, a->body.len);
        buf_reset(&a->body);
        px_send(rq, ptr, len);
        return len;
    }
    if (buf_append(&a->body, ptr, len) != 0)
        return 0;
    return len;
}

static void px_ttft_fired(evutil_socket_t fd, short what, void *arg)
{
    struct patt *a = arg;
    (void)fd;
    (void)what;
    a->fail = PX_FAIL_TTFT;
    snprintf(a->fail_detail, sizeof a->fail_detail, "no first token within stream_timeout");
    /* the first token took at least this long: latency-based routing learns it */
    core_observe_ttft(a->rq->p->core, a->dep, (double)(clock_mono_us() - a->t_start_us) / 1000.0,
                      px_now_ms());
    curlev_remove(a->rq->p->cv, a->easy);
    px_attempt_end(a, CURLE_OPERATION_TIMEDOUT);
}

static void px_idle_fired(evutil_socket_t fd, short what, void *arg)
{
    struct patt *a = arg;
    (void)fd;
    (void)what;
    a->fail = PX_FAIL_IDLE;
    snprintf(a->fail_detail, sizeof a->fail_detail, "stream went silent for %.1f s",
             (double)a->rq->p->cfg->idle_timeout_ms / 1000.0);
    curlev_remove(a->rq->p->cv, a->easy);
    px_attempt_end(a, CURLE_OPERATION_TIMEDOUT);
}

static void px_curl_done(CURL *easy, CURLcode result, void *arg)
{
    (void)easy;
    px_attempt_end(arg, result);
}

/* error.code, else error.type, of an upstream error body (OpenAI or Anthropic). */
static void px_error_code(const struct buf *body, char *code, size_t codelen)
{
    cJSON *j;
    const cJSON *e, *c;
    code[0] = '\0';
    if (!body->len)
        return;
    j = cJSON_ParseWithLength(body->data, body->len);
    if (!j)
        return;
    e = cJSON_GetObjectItemCaseSensitive(j, "error");
    if (cJSON_IsObject(e)) {
        c = cJSON_GetObjectItemCaseSensitive(e, "code");
        if (!cJSON_IsString(c))
            c = cJSON_GetObjectItemCaseSensitive(e, "type");
        if (cJSON_IsString(c))
            snprintf(code, codelen, "%s", c->valuestring);
    }
    cJSON_Delete(j);
}

/* usage x prices (router/prices.c). Anthropic prompt-cache reads cost a
 * tenth of the input price and writes 1.25 times it (providers.md); OpenAI's
 * cached input is priced at the table's cached price when the model is in
 * the table, else as plain input. */
static void px_cost(struct preq *rq, const struct patt *a)
{
    const struct router_deploy *d = &rq->p->cfg->dep[a->dep];
    struct prices_rates r;
    struct prices_usage u;
    double c;
    if (d->in_cost < 0 || d->out_cost < 0 || (a->in_tokens <= 0 && a->out_tokens <= 0))
        return;
    if (!rq->p->deps[a->dep].priced) /* looked up once, in px_deps_build */
        return;
    r = rq->p->deps[a->dep].rates;
    u.prompt = a->in_tokens;
    u.completion = a->out_tokens;
    u.cache_read = a->cache_read;
    u.cache_write = a->cache_write;
    if ((c = prices_cost(&r, &u)) >= 0)
        rq->cost = c;
}

/* Replaces a held Messages answer with its OpenAI translation. 0 or -1. */
static int px_translate_answer(struct patt *a)
{
    struct anthropic_usage u;
    cJSON *j = anthropic_response(a->body.data ? a->body.data : "", a->body.len,
                                  (int64_t)(clock_wall_us() / 1000000), &u);
    char *s = NULL;
    int rc = -1;

    if (!j || !(s = cJSON_PrintUnformatted(j)))
        goto out;
    a->in_tokens = u.input + u.cache_creation + u.cache_read;
    a->out_tokens = u.output;
    a->cache_read = u.cache_read;
    a->cache_write = u.cache_creation;
    buf_reset(&a->body);
    if (buf_puts(&a->body, s) != 0)
        goto out;
    snprintf(a->content_type, sizeof a->content_type, "application/json");
    rc = 0;
out:
    free(s);
    cJSON_Delete(j);
    return rc;
}

/* The attempt is over (curl finished, or we aborted it). Decides what next. */
static void px_attempt_end(struct patt *a, CURLcode result)
{
    struct preq *rq = a->rq;
    char why[256];
    enum core_class cls;

    rq->att = NULL;
    if (a->ttft_timer)
        event_del(a->ttft_timer);
    if (a->idle_timer)
        event_del(a->idle_timer);
    px_dep_unlink(rq->p, a);
    if (a->up_provider[0])
        snprintf(rq->served_provider, sizeof rq->served_provider, "%s", a->up_provider);

    if (a->fail == PX_FAIL_PREEMPTED) {
        cls = CORE_PREEMPTED;
        snprintf(why, sizeof why, "%s", a->fail_detail);
    } else if (a->fail != PX_FAIL_NONE) {
        cls = CORE_RETRYABLE;
        snprintf(why, sizeof why, "%s", a->fail_detail);
    } else if (result != CURLE_OK) {
        cls = CORE_RETRYABLE;
        snprintf(why, sizeof why, "%s", curl_easy_strerror(result));
    } else if (a->status >= 200 && a->status < 300) {
        cls = CORE_OK;
        why[0] = '\0';
        if (a->is_sse && a->error_event) {
            cls = CORE_RETRYABLE;
            snprintf(why, sizeof why, "error event in the stream");
        } else if (a->is_sse && !a->done_seen) {
            cls = CORE_RETRYABLE;
            snprintf(why, sizeof why, "stream ended without [DONE]");
        } else if (!a->is_sse && !rq->committed && a->anthropic) {
            if (px_translate_answer(a) != 0) {
                cls = CORE_RETRYABLE;
                snprintf(why, sizeof why, "answer is not a Messages API answer");
            }
        } else if (!a->is_sse && !rq->committed) {
            if (px_answer_scan(a, a->body.data ? a->body.data : "", a->body.len) != 0) {
                cls = CORE_RETRYABLE;
                snprintf(why, sizeof why, "answer is not JSON");
            }
        }
    } else {
        char code[64];
        if (a->anthropic && anthropic_error_type(a->body.data, a->body.len, code, sizeof code))
            snprintf(code, sizeof code, "insufficient_quota");
        else
            px_error_code(&a->body, code, sizeof code);
        cls = core_classify(a->status, code[0] ? code : NULL);
        snprintf(why, sizeof why, "HTTP %d%s%s", a->status, code[0] ? " " : "", code);
    }

    if (cls != CORE_OK)
        rq->last_timeout = a->fail == PX_FAIL_TTFT || a->fail == PX_FAIL_IDLE ||
                           result == CURLE_OPERATION_TIMEDOUT;
    px_after_attempt(rq, a, cls, why);

    if (rq->committed) {
        /* Bytes reached the client: no failover, finish this stream. */
        rq->outcome = cls == CORE_OK ? "ok" : rq->last_timeout ? "timeout" : "retryable_error";
        if (cls != CORE_OK)
            px_copy(rq->error, sizeof rq->error, why);
        if (cls == CORE_OK) {
            px_cost(rq, a);
            guard_success(rq->p->guard, &rq->g, NULL, 0, rq->cost);
            px_att_free(a);
            px_end_committed(rq);
        } else if (!a->is_sse || a->error_event) {
            /* a plain answer cut short cannot carry an event; an error event was sent */
            px_att_free(a);
            px_end_committed(rq);
        } else {
            px_att_free(a);
            px_fail_committed(rq, NULL, why);
        }
        return;
    }
    if (cls == CORE_OK) {
        struct evhttp_request *req;
        if (a->is_sse) { /* a stream that ended without content: send what was held */
            rq->outcome = "ok";
            if (px_commit(rq, a) == 0 && evbuffer_get_length(a->held))
                evhttp_send_reply_chunk_with_cb(rq->req, a->held, px_chunk_written, rq);
            px_att_free(a);
            px_end_committed(rq);
            return;
        }
        px_cost(rq, a);
        guard_success(rq->p->guard, &rq->g, a->body.data, a->body.len, rq->cost);
        req = px_take_req(rq);
        rq->status_sent = a->status;
        rq->outcome = "ok";
        rq->t_first_us = clock_mono_us();
        if (req) {
            px_common_headers(rq, evhttp_request_get_output_headers(req));
            px_reply_raw(req, a->status, a->content_type[0] ? a->content_type : "application/json",
                         a->body.data, a->body.len);
        }
        px_att_free(a);
        px_req_free(rq);
        return;
    }
    if (cls == CORE_CLIENT || (!rq->cr && a->status >= 300)) {
        /* the request's own fault (or the bypass path): the upstream's answer as is,
         * in OpenAI's error format when the upstream spoke Anthropic's */
        struct evhttp_request *req = px_take_req(rq);
        rq->status_sent = a->status;
        rq->outcome = px_outcome(a->status, 0);
        px_copy(rq->error, sizeof rq->error, why);
        if (req) {
            px_common_headers(rq, evhttp_request_get_output_headers(req));
            if (a->anthropic) {
                char *e = anthropic_error(a->body.data, a->body.len, a->status);
                px_reply_raw(req, a->status, "application/json", e ? e : "{}",
                             e ? strlen(e) : 2);
                free(e);
            } else {
                px_reply_raw(req, a->status,
                             a->content_type[0] ? a->content_type : "application/json",
                             a->body.data, a->body.len);
            }
        }
        px_att_free(a);
        px_req_free(rq);
        return;
    }
    px_att_free(a);
    px_plan_next(rq);
}

/* JSON text scanning for px_model_span: p at the token, end bounds it.
 * Each returns the position after what it skipped, or NULL. */
static const char *px_js_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

static const char *px_js_string(const char *p, const char *end, int *escaped)
{
    if (p >= end || *p != '"')
        return NULL;
    for (p++; p < end; p++) {
        if (*p == '\\') {
            if (escaped)
                *escaped = 1;
            p++;
        } else if (*p == '"') {
            return p + 1;
        }
    }
    return NULL;
}

static const char *px_js_value(const char *p, const char *end)
{
    int depth = 0;
    if (p < end && *p == '"')
        return px_js_string(p, end, NULL);
    while (p < end) {
        if (*p == '"') {
            if (!(p = px_js_string(p, end, NULL)))
                return NULL;
            continue;
        }
        if (*p == '{' || *p == '[') {
            depth++;
        } else if (*p == '}' || *p == ']') {
            if (depth == 0)
                return p;
            if (--depth == 0)
                return p + 1;
        } else if (depth == 0 && (*p == ',' || *p == ' ' || *p == '\t' || *p == '\n' ||
                                  *p == '\r')) {
            return p;
        }
        p++;
    }
    return depth == 0 ? p : NULL;
}

/* Where the one top-level "model" string value lies in the client's JSON
 * object text (quotes included): 0, or -1 when the text is not that simple
 * (no such key or more than one, an escaped key, trailing bytes): the caller
 * then rewrites through cJSON. */
static int px_model_span(const char *s, size_t n, size_t *vs, size_t *ve)
{
    const char *end = s + n, *p = px_js_ws(s, end), *k, *ke, *v;
    int found = 0;
    if (p >= end || *p != '{')
        return -1;
    p = px_js_ws(p + 1, end);
    if (p < end && *p == '}')
        return -1;
    for (;;) {
        int esc = 0;
        k = p;
        if (!(ke = px_js_string(p, end, &esc)) || esc)
            return -1;
        p = px_js_ws(ke, end);
        if (p >= end || *p != ':')
            return -1;
        v = px_js_ws(p + 1, end);
        if (!(p = px_js_value(v, end)))
            return -1;
        if (ke - k == 7 && !memcmp(k, "\"model\"", 7)) {
            if (found++ || v >= end || *v != '"')
                return -1;
            *vs = (size_t)(v - s);
            *ve = (size_t)(p - s);
        }
        p = px_js_ws(p, end);
        if (p < end && *p == ',') {
            p = px_js_ws(p + 1, end);
            continue;
        }
        if (p >= end || *p != '}')
            return -1;
        p = px_js_ws(p + 1, end);
        return found == 1 && p == end ? 0 : -1;
    }
}

/* The client's text with its model value replaced by model (JSON-escaped):
 * the body need not be parsed back and printed again. NULL when the text is
 * not simple enough (px_model_span) or out of memory. */
static char *px_payload_splice(const struct preq *rq, const char *model)
{
    size_t vs = 0, ve = 0, i, o = 0, mlen = strlen(model);
    char *s;
    if (!rq->raw || px_model_span(rq->raw, rq->raw_len, &vs, &ve) != 0 ||
        mlen > PX_MAX_CLIENT_BODY || !(s = malloc(rq->raw_len - (ve - vs) + 6 * mlen + 3)))
        return NULL;
    memcpy(s, rq->raw, vs);
    o = vs;
    s[o++] = '"';
    for (i = 0; i < mlen; i++) {
        unsigned char c = (unsigned char)model[i];
        if (c == '"' || c == '\\') {
            s[o++] = '\\';
            s[o++] = (char)c;
        } else if (c < 0x20) {
            static const char hex[] = "0123456789abcdef";
            memcpy(s + o, "\\u00", 4);
            s[o + 4] = hex[c >> 4];
            s[o + 5] = hex[c & 15];
            o += 6;
        } else {
            s[o++] = (char)c;
        }
    }
    s[o++] = '"';
    memcpy(s + o, rq->raw + ve, rq->raw_len - ve);
    o += rq->raw_len - ve;
    s[o] = '\0';
    return s;
}

/* The body for one deployment: the client's with model replaced and, on
 * streams, usage asked for (it prices the answer); for an Anthropic
 * deployment, the Messages translation. */
static char *px_payload(struct preq *rq, const struct router_deploy *d)
{
    cJSON *copy = NULL, *so;
    char *s = NULL;
    char err[256];

    if (d->dialect == ROUTER_DIALECT_ANTHROPIC) {
        struct anthropic_opts ao = {d->cache_points, d->ncache_points};
        s = anthropic_request(rq->body, d->upstream_model, &ao, err, sizeof err);
        if (!s) {
            log_warn(PX_TAG, "%s: %s", rq->id, err);
            if (strcmp(err, "out of memory") != 0) /* the client's request, not the router */
                px_copy(rq->refused, sizeof rq->refused, err);
        }
        goto out;
    }
    /* a plain request: only the model changes, in the client's own text */
    if (!rq->stream && (s = px_payload_splice(rq, d->upstream_model)))
        goto out;
    if (!(copy = cJSON_Duplicate(rq->body, 1)))
        goto out;
    cJSON_DeleteItemFromObjectCaseSensitive(copy, "model");
    if (!cJSON_AddStringToObject(copy, "model", d->upstream_model))
        goto out;
    if (rq->stream) {
        so = cJSON_GetObjectItemCaseSensitive(copy, "stream_options");
        if (!cJSON_IsObject(so)) {
            cJSON_DeleteItemFromObjectCaseSensitive(copy, "stream_options");
            so = cJSON_AddObjectToObject(copy, "stream_options");
        }
        if (!so)
            goto out;
        cJSON_DeleteItemFromObjectCaseSensitive(so, "include_usage");
        if (!cJSON_AddTrueToObject(so, "include_usage"))
            goto out;
    }
    s = cJSON_PrintUnformatted(copy);
out:
    cJSON_Delete(copy);
    return s;
}

static int px_attempt_start(struct preq *rq)
{
    struct proxy *p = rq->p;
    const struct router_config *cfg = p->cfg;
    int dep = rq->pick.dep;
    const struct router_deploy *d = &cfg->dep[dep];
    struct patt *a = NULL;
    int64_t timeout_ms, ttft_ms;
    int rc = -1;

    a = px_obj_get(p->free_att, &p->n_free_att, sizeof *a);
    if (!a)
        goto out;
    a->rq = rq;
    a->dep = -1;
    a->t_start_us = clock_mono_us();
    buf_init(&a->body, 0);
    a->anthropic = d->dialect == ROUTER_DIALECT_ANTHROPIC;
    if (!(a->held = evbuffer_new()) || !(a->easy = px_easy_get(p)) ||
        !(a->payload = px_payload(rq, d)))
        goto out;
    /* the URL and the fixed headers were built once (px_deps_build); this
     * attempt adds its request id in front of them */
    curl_easy_setopt(a->easy, CURLOPT_URL, p->deps[dep].url);
    snprintf(a->rid_hdr, sizeof a->rid_hdr, "x-slodrill-request-id: %s", rq->id);
    a->rid_node.data = a->rid_hdr;
    a->rid_node.next = p->deps[dep].hdrs[rq->stream ? 1 : 0];
    a->hdrs = &a->rid_node;
    timeout_ms = d->timeout_ms > 0 ? d->timeout_ms : cfg->timeout_ms;
    ttft_ms = d->stream_timeout_ms > 0 ? d->stream_timeout_ms : cfg->stream_timeout_ms;
    curl_easy_setopt(a->easy, CURLOPT_HTTPHEADER, a->hdrs);
    curl_easy_setopt(a->easy, CURLOPT_POSTFIELDS, a->payload);
    curl_easy_setopt(a->easy, CURLOPT_POSTFIELDSIZE, (long)strlen(a->payload));
    curl_easy_setopt(a->easy, CURLOPT_HEADERFUNCTION, px_header_cb);
    curl_easy_setopt(a->easy, CURLOPT_HEADERDATA, a);
    curl_easy_setopt(a->easy, CURLOPT_WRITEFUNCTION, px_write_cb);
    curl_easy_setopt(a->easy, CURLOPT_WRITEDATA, a);
    curl_easy_setopt(a->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(a->easy, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(a->easy, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(a->easy, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(timeout_ms < PX_CONNECT_TIMEOUT_MS ? timeout_ms : PX_CONNECT_TIMEOUT_MS));
    curl_easy_setopt(a->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    /* No proxy variable at start: say so, or curl looks them up again for
     * every transfer. */
    curl_easy_setopt(a->easy, CURLOPT_PROXY, p->env_proxy ? NULL : "");
    /* libcurl's receive buffer is per transfer (16 KiB by default): with
     * 10,000 streams open that is 160 MB. Stream events are small, so
     * streams get a small one; plain answers keep the default. */
    curl_easy_setopt(a->easy, CURLOPT_BUFFERSIZE,
                     rq->stream ? (long)PX_RECV_BUFFER_STREAM : (long)CURL_MAX_WRITE_SIZE);
    if (!(a->ttft_timer = evtimer_new(p->base, px_ttft_fired, a)) ||
        !(a->idle_timer = evtimer_new(p->base, px_idle_fired, a)))
        goto out;
    if (curlev_add(p->cv, a->easy, px_curl_done, a) != 0)
        goto out;
    if (ttft_ms > 0 && ttft_ms < timeout_ms) {
        struct timeval tv;
        tv.tv_sec = (time_t)(ttft_ms / 1000);
        tv.tv_usec = (suseconds_t)((ttft_ms % 1000) * 1000);
        evtimer_add(a->ttft_timer, &tv);
    }
    /* Count the attempt and link it where a cooldown can find it. */
    a->dep = dep;
    core_inflight(p->core, dep, +1);
    a->dnext = p->by_dep[dep];
    if (a->dnext)
        a->dnext->dprev = a;
    p->by_dep[dep] = a;
    if (rq->first_dep < 0)
        rq->first_dep = dep;
    if (dep != rq->last_dep && rq->last_dep >= 0)
        rq->hops++;
    rq->last_dep = dep;
    rq->attempts++;
    rq->fallbacks = rq->pick.fallbacks;
    rq->served_provider[0] = '\0';
    rq->att = a;
    a = NULL;
    rc = 0;
out:
    px_att_free(a);
    return rc;
}

static void px_next_fired(evutil_socket_t fd, short what, void *arg)
{
    struct preq *rq = arg;
    (void)fd;
    (void)what;
    if (!rq->have_pick) {
        px_finish_exhausted(rq);
        return;
    }
    rq->have_pick = 0;
    if (px_attempt_start(rq) == 0)
        return;
    if (rq->refused[0]) {
        /* a request Anthropic's API cannot take (a tool call whose arguments
         * are not an object, an image URL neither data: nor http(s)): the
         * client's to fix, like a provider's 400, so no failover, no cooldown */
        char msg[sizeof rq->refused];
        memcpy(msg, rq->refused, sizeof msg);
        px_finish_error(rq, 400, msg, "invalid_request_error", NULL, 0);
        return;
    }
    log_error(PX_TAG, "%s: could not start an upstream transfer", rq->id);
    px_finish_error(rq, 500, "the router could not start an upstream request", "server_error",
                    "internal_error", 0);
}

/* A deployment went into cooldown: move every attempt still waiting on it
 * for its first token. */
static void px_move_waiting(struct proxy *p, int dep, struct patt *except)
{
    struct patt *a, *next;
    size_t n = 0, i;
    struct patt **list;

    for (a = p->by_dep[dep]; a; a = a->dnext)
        n++;
    if (!n)
        return;
    list = calloc(n, sizeof *list);
    if (!list)
        return;
    n = 0;
    for (a = p->by_dep[dep]; a; a = next) {
        next = a->dnext;
        /* only when there is somewhere else to go: else it keeps waiting here */
        if (a != except && !a->first_token && !a->rq->committed && a->rq->cr &&
            core_can_continue(p->core, a->rq->cr, px_now_ms()))
            list[n++] = a;
    }
    for (i = 0; i < n; i++) {
        a = list[i];
        a->fail = PX_FAIL_PREEMPTED;
        snprintf(a->fail_detail, sizeof a->fail_detail, "moved: %s went into cooldown",
                 p->cfg->dep[dep].id);
        curlev_remove(p->cv, a->easy);
        px_attempt_end(a, CURLE_ABORTED_BY_CALLBACK);
    }
    free(list);
}

static void px_cool_expired(int dep, void *arg)
{
    struct proxy *p = arg;
    px_event(p, "cooldown_end", p->cfg->dep[dep].id, "cooldown over");
}

static void px_cool_fired(evutil_socket_t fd, short what, void *arg)
{
    struct proxy *p = arg;
    (void)fd;
    (void)what;
    core_expire(p->core, px_now_ms(), px_cool_expired, p);
    px_cool_timer_arm(p);
}

static void px_cool_timer_arm(struct proxy *p)
{
    int64_t when = core_next_expiry(p->core), now = px_now_ms(), d;
    struct timeval tv;
    event_del(p->cool_timer);
    if (when < 0)
        return;
    d = when > now ? when - now : 0;
    tv.tv_sec = (time_t)(d / 1000);
    tv.tv_usec = (suseconds_t)((d % 1000) * 1000);
    evtimer_add(p->cool_timer, &tv);
}

static void px_resume_fired(evutil_socket_t fd, short what, void *arg)
{
    struct preq *rq = arg;
    (void)fd;
    (void)what;
    if (rq->att && rq->att->paused) {
        rq->att->paused = 0;
        rq->p->stats.upstream_resumes++;
        curl_easy_pause(rq->att->easy, CURLPAUSE_CONT);
        curlev_kick(rq->p->cv);
    }
}

static void px_chunk_written(struct evhttp_connection *evcon, void *arg)
{
    struct preq *rq = arg;
    (void)evcon;
    if (rq->att && rq->att->paused && px_backlog(rq) < rq->p->backlog_low && rq->resume_ev)
        event_active(rq->resume_ev, EV_TIMEOUT, 0);
}

/* ---- the HTTP side ---- */

static int px_ct_equal(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), i, n = la > lb ? la : lb;
    unsigned char diff = (unsigned char)(la != lb);
    for (i = 0; i < n; i++) {
        unsigned char x = i < la ? (unsigned char)a[i] : 0;
        unsigned char y = i < lb ? (unsigned char)b[i] : 0;
        diff |= (unsigned char)(x ^ y);
    }
    return diff == 0;
}

static int px_authorized(struct proxy *p, struct evhttp_request *req)
{
    const struct evkeyvalq *h = evhttp_request_get_input_headers(req);
    const char *auth, *key = NULL;
    if (!p->cfg->master_key)
        return 1;
    auth = evhttp_find_header(h, "Authorization");
    if (auth && !strncasecmp(auth, "Bearer ", 7)) {
        key = auth + 7;
        while (*key == ' ')
            key++;
    }
    if (!key)
        key = evhttp_find_header(h, "x-api-key");
    return key && px_ct_equal(key, p->cfg->master_key);
}

static void px_models(struct proxy *p, struct evhttp_request *req)
{
    cJSON *root = cJSON_CreateObject(), *data = cJSON_CreateArray();
    char *s = NULL;
    size_t i, j;

    if (!root || !data) {
        cJSON_Delete(data);
        goto out;
    }
    cJSON_AddStringToObject(root, "object", "list");
    cJSON_AddItemToObject(root, "data", data);
    for (i = 0; i < p->cfg->ndep; i++) {
        cJSON *m;
        for (j = 0; j < i; j++)
            if (!strcmp(p->cfg->dep[j].alias, p->cfg->dep[i].alias))
                break;
        if (j < i || !(m = cJSON_CreateObject()))
            continue;
        cJSON_AddStringToObject(m, "id", p->cfg->dep[i].alias);
        cJSON_AddStringToObject(m, "object", "model");
        cJSON_AddNumberToObject(m, "created", 0);
        cJSON_AddStringToObject(m, "owned_by", "slodrill");
        cJSON_AddItemToArray(data, m);
    }
    s = cJSON_PrintUnformatted(root);
out:
    if (s)
        px_reply_raw(req, 200, "application/json", s, strlen(s));
    else
        px_reply_error(req, 500, "out of memory", "server_error", NULL);
    free(s);
    cJSON_Delete(root);
}

/* Answers a chat request the router refuses before any attempt (its own fault). */
static void px_reject(struct preq *rq, struct evhttp_request *req, int status, const char *msg,
                      const char *code)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), "x-slodrill-request-id", rq->id);
    px_reply_error(req, status, msg, "invalid_request_error", code);
    rq->status_sent = status;
    rq->outcome = "client_error";
    px_copy(rq->error, sizeof rq->error, msg);
}

/* A string member of obj, or NULL. */
static const char *px_json_str(const cJSON *obj, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Tenant, user and feature: x-tenant-id, x-user-id, x-feature headers, else
 * the body's metadata.tenant / metadata.user (or user) / metadata.feature. */
static void px_tags(struct preq *rq, struct evhttp_request *req)
{
    const struct evkeyvalq *h = evhttp_request_get_input_headers(req);
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(rq->body, "metadata");
    const char *v;

    if (!cJSON_IsObject(md))
        md = NULL;
    if ((v = evhttp_find_header(h, "x-tenant-id")) || (md && (v = px_json_str(md, "tenant"))) ||
        (md && (v = px_json_str(md, "tenant_id"))))
        px_copy(rq->tenant, sizeof rq->tenant, v);
    if ((v = evhttp_find_header(h, "x-user-id")) || (v = px_json_str(rq->body, "user")) ||
        (md && (v = px_json_str(md, "user"))) || (md && (v = px_json_str(md, "user_id"))))
        px_copy(rq->user, sizeof rq->user, v);
    if ((v = evhttp_find_header(h, "x-feature")) || (md && (v = px_json_str(md, "feature"))))
        px_copy(rq->feature, sizeof rq->feature, v);
}

/* A pinned request: x-slodrill-deployment: ID, else metadata.deployment.
 * 0 (pinned or not), -1 with msg when the id names no deployment of the
 * alias. */
static int px_pin(struct preq *rq, struct evhttp_request *req, char *msg, size_t msglen)
{
    const struct router_config *cfg = rq->p->cfg;
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(rq->body, "metadata");
    const char *id = evhttp_find_header(evhttp_request_get_input_headers(req),
                                        "x-slodrill-deployment");
    size_t i;

    if (!id && cJSON_IsObject(md))
        id = px_json_str(md, "deployment");
    if (!id)
        return 0;
    for (i = 0; i < cfg->ndep; i++)
        if (!strcmp(cfg->dep[i].id, id))
            break;
    if (i == cfg->ndep) {
        snprintf(msg, msglen, "no deployment has the id '%.100s' (x-slodrill-deployment / "
                              "metadata.deployment name a model_info.id)", id);
        return -1;
    }
    if (strcmp(cfg->dep[i].alias, rq->alias)) {
        snprintf(msg, msglen, "deployment '%.100s' serves '%.100s', not '%.100s'", id,
                 cfg->dep[i].alias, rq->alias);
        return -1;
    }
    rq->pinned = 1;
    if (rq->cr)
        core_req_pin(rq->cr, (int)i);
    else
        rq->last_dep = (int)i; /* bypass: the pinned one, once */
    return 0;
}

static void px_chat(struct proxy *p, struct evhttp_request *req)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    struct preq *rq = NULL;
    const cJSON *model, *stream;
    char *text = NULL;

    text = malloc(len + 1);
    if (!text) {
        px_reply_error(req, 500, "out of memory", "server_error", NULL);
        goto out;
    }
    evbuffer_copyout(in, text, len);
    text[len] = '\0';
    rq = px_obj_get(p->free_rq, &p->n_free_rq, sizeof *rq);
    if (!rq) {
        px_reply_error(req, 500, "out of memory", "server_error", NULL);
        goto out;
    }
    rq->p = p;
    rq->last_dep = rq->first_dep = -1;
    rq->cost = -1;
    rq->in_tokens = rq->out_tokens = -1;
    rq->t_start_us = (int64_t)clock_mono_us();
    rq->t_start_wall_us = clock_wall_us();
    snprintf(rq->id, sizeof rq->id, "sdr-%08" PRIx64 "-%06" PRIu64, p->seed & 0xffffffffu,
             ++p->counter);
    rq->next = p->reqs;
    if (p->reqs)
        p->reqs->prev = rq;
    p->reqs = rq;
    rq->body = cJSON_ParseWithLength(text, len);
    rq->raw = text; /* kept for px_payload_splice */
    rq->raw_len = len;
    text = NULL;
    if (!rq->body || !cJSON_IsObject(rq->body)) {
        px_reject(rq, req, 400, "the request body is not a JSON object", "invalid_json");
        goto out;
    }
    model = cJSON_GetObjectItemCaseSensitive(rq->body, "model");
    stream = cJSON_GetObjectItemCaseSensitive(rq->body, "stream");
    rq->stream = cJSON_IsTrue(stream);
    rq->client_usage =
        rq->stream && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
                          cJSON_GetObjectItemCaseSensitive(rq->body, "stream_options"),
                          "include_usage"));
    if (!cJSON_IsString(model) || !model->valuestring[0]) {
        px_reject(rq, req, 400, "you must provide a model parameter", "missing_model");
        goto out;
    }
    if (!cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(rq->body, "messages"))) {
        px_reject(rq, req, 400, "you must provide a messages parameter (an array)",
                  "missing_messages");
        goto out;
    }
    rq->alias = model->valuestring;
    px_tags(rq, req);
    p->stats.requests++;
    if (p->cfg->budgets) { /* the budget ladder may edit the body: no splicing its text */
        free(rq->raw);
        rq->raw = NULL;
    }
    if (!p->bypass) {
        enum guard_verdict gv;
        rq->g.resume = px_admitted;
        rq->g.resume_arg = rq;
        gv = guard_admit(p->guard, req, rq->id, rq->body, &rq->alias, rq->stream,
                         rq->client_usage, rq->tenant, rq->user, rq->feature, &rq->g);
        if (gv == GUARD_ANSWERED) {
            rq->outcome = rq->g.outcome;
            rq->status_sent = rq->g.status;
            rq->t_first_us = clock_mono_us();
            goto out;
        }
        if (gv == GUARD_PENDING) { /* asking Redis (router/shared.h); px_admitted goes on */
            rq->req = req;
            evhttp_connection_set_closecb(evhttp_request_get_connection(req), px_client_closed,
                                          rq);
            rq = NULL;
            goto out;
        }
    }
    px_route(rq, req);
    rq = NULL;
out:
    free(text);
    if (rq)
        px_req_free(rq);
}

/* The guard let rq through (or answered it itself, or it is waiting on
 * Redis): pick the first deployment. Takes rq. */
static void px_route(struct preq *rq, struct evhttp_request *req)
{
    struct proxy *p = rq->p;
    char msg[512];

    if (p->bypass) {
        size_t i;
        for (i = 0; i < p->cfg->ndep; i++)
            if (!strcmp(p->cfg->dep[i].alias, rq->alias))
                break;
        rq->last_dep = i < p->cfg->ndep ? (int)i : 0;
    } else {
        rq->cr = core_req_new(p->core, rq->alias);
        if (!rq->cr) {
            snprintf(msg, sizeof msg,
                     "The model `%s` does not exist: no model_list entry has it as model_name.",
                     rq->alias);
            px_reject(rq, req, 404, msg, "model_not_found");
            goto out;
        }
    }
    if (px_pin(rq, req, msg, sizeof msg) != 0) {
        px_reject(rq, req, 400, msg, "deployment_not_found");
        goto out;
    }
    if (!(rq->next_ev = evtimer_new(p->base, px_next_fired, rq)) ||
        !(rq->resume_ev = event_new(p->base, -1, 0, px_resume_fired, rq))) {
        px_reply_error(req, 500, "out of memory", "server_error", NULL);
        goto out;
    }
    rq->req = req;
    evhttp_connection_set_closecb(evhttp_request_get_connection(req), px_client_closed, rq);
    px_plan_next(rq);
    if (p->bypass)
        rq->last_dep = rq->pick.dep;
    rq = NULL;
out:
    if (rq)
        px_req_free(rq);
}

/* A guard admission that waited on Redis is decided. */
static void px_admitted(void *arg, enum guard_verdict v)
{
    struct preq *rq = arg;
    struct evhttp_request *req = px_take_req(rq);
    if (v == GUARD_ANSWERED) {
        rq->outcome = rq->g.outcome;
        rq->status_sent = rq->g.status;
        rq->t_first_us = clock_mono_us();
        px_req_free(rq);
        return;
    }
    px_route(rq, req);
}

static void px_cool_cleared(int dep, void *arg)
{
    struct proxy *p = arg;
    px_event(p, "cooldown_end", p->cfg->dep[dep].id, "cleared by an operator");
}

/* Another router instance put dep into cooldown, or (dep -1) an operator
 * cleared every cooldown there (router_settings.slodrill_shared_cooldowns):
 * the same here, ending when the other instance's cooldown ends. */
static void px_shared_cool(int dep, int cls, int64_t remaining_ms, void *arg)
{
    struct proxy *p = arg;
    struct core_effect eff = {0, 0, 0};
    int64_t now = px_now_ms(), span = p->cfg->cooldown_ms;
    char detail[160];
    int started;

    if (dep < 0) {
        core_clear_cooldowns(p->core, px_cool_cleared, p);
        px_cool_timer_arm(p);
        return;
    }
    /* core_cool lasts max(cooldown_time, retry_after) from the now it is
     * given: a shorter remainder is had by giving it an earlier now */
    if (remaining_ms >= span)
        started = core_cool(p->core, dep, (enum core_class)cls, remaining_ms, now, &eff);
    else
        started = core_cool(p->core, dep, (enum core_class)cls, 0, now - (span - remaining_ms),
                            &eff);
    if (!started || !eff.cooled)
        return;
    snprintf(detail, sizeof detail, "shared: %s on another router instance; back in %.1f s",
             core_class_name((enum core_class)cls), (double)(eff.until_ms - now) / 1000.0);
    px_event(p, "cooldown_start", p->cfg->dep[dep].id, detail);
    px_cool_timer_arm(p);
    px_move_waiting(p, dep, NULL);
}

/* GET /admin/deployments: each deployment's health as the core sees it now. */
static char *px_deployments_json(struct proxy *p)
{
    cJSON *root = cJSON_CreateObject(), *arr;
    int64_t now = px_now_ms(), wall = (int64_t)(clock_wall_us() / 1000);
    char *s = NULL;
    size_t i;

    if (!root || !(arr = cJSON_AddArrayToObject(root, "data")))
        goto out;
    for (i = 0; i < p->cfg->ndep; i++) {
        const struct router_deploy *d = &p->cfg->dep[i];
        int cooling = core_is_cooling(p->core, (int)i, now);
        int64_t until = cooling ? core_cooling_until(p->core, (int)i) : 0;
        cJSON *o = cJSON_CreateObject();
        if (!o)
            goto out;
        cJSON_AddItemToArray(arr, o);
        if (!cJSON_AddStringToObject(o, "id", d->id) ||
            !cJSON_AddStringToObject(o, "alias", d->alias) ||
            !cJSON_AddStringToObject(o, "provider", d->provider) ||
            !cJSON_AddStringToObject(o, "model", d->model) ||
            !cJSON_AddBoolToObject(o, "healthy", !cooling) ||
            /* Unix ms, for people; 0 when not cooling */
            !cJSON_AddNumberToObject(o, "cooldown_until_ms",
                                     cooling ? (double)(wall + (until - now)) : 0) ||
            !cJSON_AddNumberToObject(o, "cooldown_remaining_ms",
                                     cooling ? (double)(until - now) : 0) ||
            !cJSON_AddStringToObject(o, "cooldown_reason",
                                     cooling ? core_cool_reason(p->core, (int)i) : "") ||
            !cJSON_AddNumberToObject(o, "fails_in_window",
                                     core_fails_in_window(p->core, (int)i, now)))
            goto out;
    }
    s = cJSON_PrintUnformatted(root);
out:
    cJSON_Delete(root);
    return s;
}

/* /metrics and /admin/... (the master key was checked). */
static void px_admin(struct proxy *p, struct evhttp_request *req, const char *path,
                     enum evhttp_cmd_type cmd)
{
    struct buf out;
    char *s = NULL;

    buf_init(&out, 16u << 20);
    if (!strcmp(path, "/metrics")) {
        if (cmd != EVHTTP_REQ_GET)
            px_reply_error(req, 405, "use GET", "invalid_request_error", NULL);
        else if (metrics_render(p->metrics, &out) != 0)
            px_reply_error(req, 500, "metrics did not fit", "server_error", NULL);
        else
            px_reply_raw(req, 200, "text/plain; version=0.0.4; charset=utf-8", out.data, out.len);
    } else if (!strcmp(path, "/admin/deployments")) {
        if (cmd != EVHTTP_REQ_GET)
            px_reply_error(req, 405, "use GET", "invalid_request_error", NULL);
        else if (!(s = px_deployments_json(p)))
            px_reply_error(req, 500, "out of memory", "server_error", NULL);
        else
            px_reply_raw(req, 200, "application/json", s, strlen(s));
    } else if (!strcmp(path, "/admin/cooldowns/clear")) {
        if (cmd != EVHTTP_REQ_POST) {
            px_reply_error(req, 405, "use POST", "invalid_request_error", NULL);
        } else {
            int n = core_clear_cooldowns(p->core, px_cool_cleared, p);
            guard_cooldowns_cleared(p->guard);
            px_cool_timer_arm(p);
            if (buf_printf(&out, "{\"cleared\":%d}", n) != 0)
                px_reply_error(req, 500, "out of memory", "server_error", NULL);
            else
                px_reply_raw(req, 200, "application/json", out.data, out.len);
        }
    } else {
        px_reply_error(req, 404, "no such route", "invalid_request_error", "not_found");
    }
    free(s);
    buf_cleanup(&out);
}

static void px_handle(struct evhttp_request *req, void *arg)
{
    struct proxy *p = arg;
    const char *uri = evhttp_request_get_uri(req);
    char path[256];
    size_t n;
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);

    /* TCP_NODELAY comes from the listening socket (accepted sockets inherit
     * it): no setsockopt per request */
    if (evcon && p->client_sndbuf > 0) {
        struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
        if (bev && bufferevent_getfd(bev) >= 0)
            setsockopt(bufferevent_getfd(bev), SOL_SOCKET, SO_SNDBUF, &p->client_sndbuf,
                       sizeof p->client_sndbuf);
    }
    n = strcspn(uri, "?");
    if (n >= sizeof path)
        n = sizeof path - 1;
    memcpy(path, uri, n);
    path[n] = '\0';
    while (n > 1 && path[n - 1] == '/')
        path[--n] = '\0';

    if (!strcmp(path, "/health/liveliness") || !strcmp(path, "/health/liveness")) {
        px_reply_raw(req, 200, "application/json", "\"I'm alive!\"", 12);
        return;
    }
    if (!strcmp(path, "/health/readiness")) {
        const char *s = "{\"status\":\"healthy\"}";
        px_reply_raw(req, 200, "application/json", s, strlen(s));
        return;
    }
    if (!strcmp(path, "/metrics") || !strncmp(path, "/admin/", 7)) {
        if (!px_authorized(p, req)) {
            px_reply_error(req, 401,
                           "Authentication Error: the API key is missing or does not match the "
                           "router's master_key",
                           "authentication_error", "invalid_api_key");
            return;
        }
        px_admin(p, req, path, cmd);
        return;
    }
    if (!strcmp(path, "/v1/chat/completions") || !strcmp(path, "/chat/completions") ||
        !strcmp(path, "/v1/models") || !strcmp(path, "/models")) {
        if (!px_authorized(p, req)) {
            px_reply_error(req, 401,
                           "Authentication Error: the API key is missing or does not match the "
                           "router's master_key",
                           "authentication_error", "invalid_api_key");
            return;
        }
        if (strstr(path, "models") && !strstr(path, "chat")) {
            if (cmd != EVHTTP_REQ_GET) {
                px_reply_error(req, 405, "use GET", "invalid_request_error", NULL);
                return;
            }
            px_models(p, req);
            return;
        }
        if (cmd != EVHTTP_REQ_POST) {
            px_reply_error(req, 405, "use POST", "invalid_request_error", NULL);
            return;
        }
        px_chat(p, req);
        return;
    }
    if (!strcmp(path, "/travel") || !strncmp(path, "/travel/", 8)) {
        travel_serve(req, path); /* the browser half of travel mode (router/travel.h) */
        return;
    }
    px_reply_error(req, 404, "no such route", "invalid_request_error", "not_found");
}

/* Each deployment's URL and fixed request headers. 0 or -1 (out of memory). */
static int px_deps_build(struct proxy *p)
{
    struct buf tmp;
    size_t i;
    int k, rc = -1;

    buf_init(&tmp, 8192);
    if (!(p->deps = calloc(p->cfg->ndep ? p->cfg->ndep : 1, sizeof *p->deps)))
        goto out;
    for (i = 0; i < p->cfg->ndep; i++) {
        const struct router_deploy *d = &p->cfg->dep[i];
        struct px_dep *x = &p->deps[i];
        int ant = d->dialect == ROUTER_DIALECT_ANTHROPIC;
        /* Messages API: POST BASE/v1/messages, x-api-key, anthropic-version */
        if (!(x->url = ant ? anthropic_url(d->api_base) : NULL) && ant)
            goto out;
        if (!ant) {
            buf_reset(&tmp);
            if (buf_printf(&tmp, "%s/chat/completions", d->api_base) != 0 ||
                !(x->url = strdup(tmp.data)))
                goto out;
        }
        /* the prices px_cost applies: the table's row or the config's */
        if ((x->priced = prices_rates_for(d->model, d->in_cost, d->out_cost, &x->rates) != 0) &&
            d->dialect == ROUTER_DIALECT_OPENAI && !prices_find(d->model))
            x->rates.cached_in = x->rates.in;
        for (k = 0; k < 2; k++) {
            struct curl_slist *l = NULL, *n;
            buf_reset(&tmp);
            if (ant ? buf_printf(&tmp, "x-api-key: %s", d->api_key)
                    : buf_printf(&tmp, "Authorization: Bearer %s", d->api_key))
                goto out;
            if (!(n = curl_slist_append(l, tmp.data)))
                goto out;
            x->hdrs[k] = l = n;
            if ((ant && !curl_slist_append(l, "anthropic-version: " ANTHROPIC_VERSION)) ||
                !curl_slist_append(l, "Content-Type: application/json") ||
                !curl_slist_append(l, k ? "Accept: text/event-stream" : "Accept: application/json") ||
                !curl_slist_append(l, "Expect:"))
                goto out;
        }
    }
    rc = 0;
out:
    buf_cleanup(&tmp);
    return rc;
}

static void px_deps_free(struct proxy *p)
{
    size_t i;
    if (!p->deps)
        return;
    for (i = 0; i < p->cfg->ndep; i++) {
        free(p->deps[i].url);
        curl_slist_free_all(p->deps[i].hdrs[0]);
        curl_slist_free_all(p->deps[i].hdrs[1]);
    }
    free(p->deps);
}

struct proxy *proxy_new(struct event_base *base, const struct router_config *cfg,
                        const struct proxy_opts *opts, char *err, size_t errlen)
{
    struct proxy *p = NULL, *ret = NULL;
    struct evhttp_bound_socket *bound = NULL;
    const char *host = opts && opts->host ? opts->host : "127.0.0.1";
    const char *bypass = getenv("BYPASS_ROUTER");

    p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    p->base = base;
    p->cfg = cfg;
    p->seed = opts ? opts->seed : 0;
    p->on_event = opts ? opts->on_event : NULL;
    p->event_arg = opts ? opts->event_arg : NULL;
    p->bypass = bypass && (!strcasecmp(bypass, "true") || !strcmp(bypass, "1"));
    {
        static const char *const vars[] = {"http_proxy", "https_proxy", "HTTPS_PROXY",
                                           "all_proxy", "ALL_PROXY"};
        size_t k;
        for (k = 0; k < sizeof vars / sizeof vars[0]; k++)
            if (getenv(vars[k]) && getenv(vars[k])[0])
                p->env_proxy = 1;
    }
    p->backlog_high = PX_BACKLOG_HIGH;
    p->backlog_low = PX_BACKLOG_LOW;
    p->by_dep = calloc(cfg->ndep ? cfg->ndep : 1, sizeof *p->by_dep);
    p->core = core_new(cfg, p->seed);
    p->cv = curlev_new(base);
    p->http = evhttp_new(base);
    p->cool_timer = evtimer_new(base, px_cool_fired, p);
    p->metrics = metrics_new(cfg);
    if (!p->by_dep || !p->core || !p->cv || !p->http || !p->cool_timer || !p->metrics ||
        px_deps_build(p) != 0) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    {
        const char *log_path = opts && opts->log_path ? opts->log_path : cfg->request_log;
        if (log_path && log_path[0] && !(p->log = reqlog_open(log_path, err, errlen)))
            goto out;
    }
    if (!(p->guard = guard_new(base, cfg, p->core, p->on_event, p->event_arg, err, errlen)))
        goto out;
    if (guard_share_cooldowns(p->guard, px_shared_cool, p) != 0) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    /* Keep-alive to the providers: libcurl's default cache (4 x the transfers in
     * flight when a connection returns) closes and reopens connections under
     * load; a fixed, generous cache keeps them. */
    curl_multi_setopt(curlev_multi(p->cv), CURLMOPT_MAXCONNECTS, (long)PX_MAX_IDLE_UPSTREAM);
    evhttp_set_max_body_size(p->http, PX_MAX_CLIENT_BODY);
    evhttp_set_max_headers_size(p->http, PX_MAX_CLIENT_HEADERS);
    evhttp_set_allowed_methods(p->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_OPTIONS);
    evhttp_set_gencb(p->http, px_handle, p);
    if (net_listen_http(p->http, host, opts ? opts->port : 0, &p->port, &bound, err, errlen) != 0)
        goto out;
    net_nodelay(evhttp_bound_socket_get_fd(bound)); /* inherited by every accepted socket */
    if (p->bypass)
        log_warn(PX_TAG, "BYPASS_ROUTER is set: every request goes to the first deployment of "
                         "its alias, once, with no retries or failover");
    ret = p;
    p = NULL;
out:
    proxy_free(p);
    return ret;
}

void proxy_free(struct proxy *p)
{
    if (!p)
        return;
    if (p->http)
        evhttp_free(p->http); /* closes client connections: their closecbs free requests */
    while (p->reqs)
        px_req_free(p->reqs);
    reqlog_close(p->log); /* writes what is queued */
    guard_free(p->guard); /* flushes the cache and the ledger */
    if (p->cool_timer)
        event_free(p->cool_timer);
    while (p->n_easy_pool > 0)
        curl_easy_cleanup(p->easy_pool[--p->n_easy_pool]);
    while (p->n_free_rq > 0)
        free(p->free_rq[--p->n_free_rq]);
    while (p->n_free_att > 0)
        free(p->free_att[--p->n_free_att]);
    curlev_free(p->cv);
    core_free(p->core);
    metrics_free(p->metrics);
    px_deps_free(p);
    free(p->by_dep);
    free(p);
}

int proxy_log_flush(struct proxy *p, int timeout_ms)
{
    return p->log ? reqlog_flush(p->log, timeout_ms) : 0;
}

int proxy_port(const struct proxy *p)
{
    return p ? p->port : -1;
}

void proxy_stats_get(const struct proxy *p, struct proxy_stats *out)
{
    *out = p->stats;
}

void proxy_set_backlog_limits(struct proxy *p, size_t high, size_t low)
{
    p->backlog_high = high;
    p->backlog_low = low < high ? low : high / 2;
}

void proxy_set_client_sndbuf(struct proxy *p, int bytes)
{
    p->client_sndbuf = bytes;
}
