/* fake.c -- a fake LLM provider: server, fault table, latency model, pacing.
 *
 * DESIGN. evhttp accepts and parses requests; every request becomes a
 * struct fake_req that decides, on arrival, what the caller receives (an error,
 * a held connection, or an answer shaped by the active faults) and then
 * plays it out with one evtimer: a non-streaming answer after ttft + tokens
 * / rate, a stream as headers at once and one event per token, paced. The
 * dialect files write the bytes (struct fake_wire).
 *
 * Connections are tracked (struct fake_conn, found by evhttp connection,
 * forgotten in its close callback) so that egress_block can drop them, cut
 * can end one without the chunked terminator or with a RST, and a request
 * whose connection died is never touched again. A request that is never given an
 * answer (blackhole, stall) is reaped when its client hangs up.
 *
 * Loops. A fake is served by one or more loops (struct fake_loop): the first
 * is the caller's event base, the others run on threads of the fake's own.
 * Each loop has its own evhttp, listening socket (SO_REUSEPORT on the one
 * port, so the kernel spreads connections over the loops), connections,
 * requests and timers; a request lives and dies on the loop that accepted
 * its connection. What the loops share sits behind the fake's mutex: the
 * fault table, the stats, the random stream that seeds each request (so
 * the same requests in the same order give the same answers, however many
 * loops there are), the rate-limit window, the journal and the prompt
 * cache. Listener changes (egress_block refuse, and its clearing) are handed
 * to every loop with event_active, and the caller waits until each has
 * applied them.
 *
 * Writes. A stream step formats every event that is due into one buffer of
 * HTTP chunks and writes it with one send(): one system call per stream per
 * loop turn, however many events were due (docs/performance.md). */
#include "fakeproviders/fake_int.h"

#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <event2/util.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/net.h"

#define FAKE_MAX_BODY (4u << 20)     /* request body bound */
#define FAKE_MAX_HEADERS (64u << 10) /* request header bound */
#define FAKE_MAX_TOKENS 8192         /* answer length bound */
#define FAKE_REAP_MS 200             /* how often held requests are checked */
#define FAKE_TIMER_RES_US 1000       /* the loop's timer resolution */
#define FAKE_BURST 16                /* events one stream sends per loop turn, at most */
#define FAKE_MAX_LAG_US 250000       /* lateness a stream catches up on, at most */
#define FAKE_STEP_OUT (1u << 20)     /* bytes one stream step may write */
#define FAKE_BIND_TRIES 8            /* ephemeral port picks before giving up */

struct fault_slot {
    int active;
    struct fault_spec spec;
    uint64_t expires_us; /* 0 = until cleared */
};

struct fake_conn {
    struct fake_loop *lp;
    struct evhttp_connection *evcon;
    struct bufferevent *bev; /* evcon's, fixed for its life (NULL: none) */
    int fd;                  /* bev's socket, or -1 */
    struct fake_req *active;
    struct fake_conn *next, *prev;
};

/* One event loop serving the fake's port. Everything here but the fields
 * marked "f->mu" belongs to the loop's thread. */
struct fake_loop {
    struct fake *f;
    int idx;                  /* 0: the caller's base */
    struct event_base *base;  /* idx 0 borrowed, others owned */
    pthread_t th;             /* idx > 0: the thread running base */
    int th_started;
    struct evhttp *http;
    struct evhttp_bound_socket *bound;
    int listening;
    struct event *ev_sync, *ev_expire, *ev_reap, *ev_stop;
    struct fake_conn *conns;
    struct fake_req *reqs;
    struct buf scratch_ev, scratch_tok; /* one stream event */
    struct buf out;                     /* one stream step's chunks */
    uint64_t events, events_late;       /* atomic: read by fake_stats_get */

    /* f->mu */
    uint64_t gen_done; /* listener generation applied */
    pthread_t tid;     /* the thread running base, once known */
    int tid_known;
};

struct fake {
    struct fake_spec spec;
    const struct fake_wire *wire;
    char model[160];
    char url[96];
    char tag[80];
    int port;
    struct sockaddr_storage addr; /* where the loops listen (port set per bind) */
    socklen_t addrlen;
    int nloops;
    struct fake_loop *loops;

    pthread_mutex_t mu; /* guards everything below, and the loops' f->mu fields */
    pthread_cond_t cv;
    struct fault_slot faults[FAULT__COUNT];
    struct fake_stats stats;
    uint64_t gen_want;
    struct fake_rng rng;       /* one seed per request */
    struct fake_rng rng_fault; /* fault probability draws */
    struct fake_cache *pcache; /* Anthropic prompt cache */
    struct fake_journal *journal; /* the last requests */
    uint64_t window_start_us;
    unsigned window_used;
};

static const char *tag_of(const struct fake *f) { return f->tag; }

const char *fake_name(const struct fake *f) { return f->spec.name; }
const char *fake_spec_name(const struct fake *f) { return f->spec.name; }
const char *fake_model(const struct fake *f) { return f->model; }
int fake_port(const struct fake *f) { return f->port; }
const char *fake_url(const struct fake *f) { return f->url; }

int fake_threads(const struct fake *f) { return f->nloops; }
void fake_lock(struct fake *f) { pthread_mutex_lock(&f->mu); }
void fake_unlock(struct fake *f) { pthread_mutex_unlock(&f->mu); }

unsigned fake_window_used(struct fake *f)
{
    unsigned n;
    pthread_mutex_lock(&f->mu);
    n = f->window_used;
    pthread_mutex_unlock(&f->mu);
    return n;
}
struct fake_cache *fake_prompt_cache(struct fake *f) { return f->pcache; }
struct fake_journal *fake_journal_of(struct fake *f) { return f->journal; }

/* Notes r in the journal once, with the status its client receives. */
static void journal(struct fake_req *r, int status)
{
    if (r->journaled) return;
    r->journaled = 1;
    pthread_mutex_lock(&r->f->mu);
    fake_journal_note(r->f->journal, r->jmethod, r->jpath, r->jkey, r->jfaults, status,
                      r->stream);
    pthread_mutex_unlock(&r->f->mu);
}

void fake_go_duration(double seconds, char *out, size_t outlen)
{
    if (seconds < 0) seconds = 0;
    if (seconds < 1.0) {
        snprintf(out, outlen, "%dms", (int)lround(seconds * 1000.0));
    } else if (seconds < 60.0) {
        snprintf(out, outlen, "%.3gs", seconds);
    } else {
        int m = (int)(seconds / 60.0);
        snprintf(out, outlen, "%dm%.3gs", m, seconds - 60.0 * m);
    }
}

void fake_rfc3339(int64_t unix_s, char *out, size_t outlen)
{
    time_t t = (time_t)unix_s;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Learns which thread runs lp (the caller's loop is known once it has run
 * one of our callbacks). */
static void note_loop_thread(struct fake_loop *lp)
{
    if (lp->idx > 0) return; /* set when the thread was started */
    pthread_mutex_lock(&lp->f->mu);
    lp->tid = pthread_self();
    lp->tid_known = 1;
    pthread_mutex_unlock(&lp->f->mu);
}

/* ---- connections and requests ------------------------------------------ */

static void req_free(struct fake_req *r)
{
    if (r == NULL) return;
    pthread_mutex_lock(&r->f->mu);
    r->f->stats.in_flight--;
    pthread_mutex_unlock(&r->f->mu);
    if (r->timer) event_free(r->timer);
    if (r->cut_timer) event_free(r->cut_timer);
    if (r->conn && r->conn->active == r) r->conn->active = NULL;
    if (r->prev) r->prev->next = r->next;
    else r->lp->reqs = r->next;
    if (r->next) r->next->prev = r->prev;
    free(r);
}

/* Call before handing evhttp the last part of a reply: evhttp may free the
 * connection (and run conn_closed_cb) before the call returns. */
static void req_detach(struct fake_req *r)
{
    if (r->conn && r->conn->active == r) r->conn->active = NULL;
    r->conn = NULL;
}

static void conn_unlink(struct fake_conn *c)
{
    if (c->prev) c->prev->next = c->next;
    else c->lp->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    c->next = c->prev = NULL;
}

/* evhttp is freeing the connection. A request of ours on it is finished: if
 * evhttp detached it (the client went away mid-answer), it is ours to free. */
static void conn_closed_cb(struct evhttp_connection *evcon, void *arg)
{
    struct fake_conn *c = arg;
    (void)evcon;
    if (c->active != NULL) {
        struct fake_req *r = c->active;
        if (evhttp_request_get_connection(r->req) == NULL) evhttp_request_free(r->req);
        req_free(r);
    }
    conn_unlink(c);
    free(c);
}

static struct fake_conn *conn_get(struct fake_loop *lp, struct evhttp_connection *evcon)
{
    struct fake_conn *c;
    struct bufferevent *bev;

    for (c = lp->conns; c != NULL; c = c->next)
        if (c->evcon == evcon) return c;
    c = calloc(1, sizeof *c);
    if (c == NULL) return NULL;
    c->lp = lp;
    c->evcon = evcon;
    c->next = lp->conns;
    if (lp->conns) lp->conns->prev = c;
    lp->conns = c;
    evhttp_connection_set_closecb(evcon, conn_closed_cb, c);
    bev = evhttp_connection_get_bufferevent(evcon);
    c->bev = bev;
    c->fd = bev != NULL ? (int)bufferevent_getfd(bev) : -1;
    if (c->fd >= 0) net_nodelay(c->fd);
    return c;
}

static int conn_fd(const struct fake_conn *c)
{
    struct bufferevent *bev = evhttp_connection_get_bufferevent(c->evcon);
    return bev ? (int)bufferevent_getfd(bev) : -1;
}

/* Ends a connection now. reset: RST (SO_LINGER 0) instead of FIN. What was
 * already queued is written first, so a cut stream really shows its first
 * events. The request on it (if any) must already be detached from us. */
static void conn_kill(struct fake_conn *c, int reset)
{
    struct bufferevent *bev = evhttp_connection_get_bufferevent(c->evcon);
    struct evhttp_connection *evcon = c->evcon;
    int fd = conn_fd(c);

    if (bev != NULL && fd >= 0) {
        struct evbuffer *out = bufferevent_get_output(bev);
        int guard = 64;
        /* A socket bufferevent freezes the start of its output buffer (only
         * it may drain it); thaw it for this last write. */
        evbuffer_unfreeze(out, 1);
        while (evbuffer_get_length(out) > 0 && guard-- > 0)
            if (evbuffer_write(out, fd) <= 0) break;
        evbuffer_freeze(out, 1);
        if (reset) {
            /* evhttp shuts the socket down (FIN) before closing it, so
             * SO_LINGER 0 alone would send FIN then RST. Disconnecting with
             * AF_UNSPEC resets at once on Linux (tcp_disconnect) and leaves
             * the descriptor valid for evhttp to close. */
            struct linger lg = {1, 0};
            struct sockaddr sa;
            memset(&sa, 0, sizeof sa);
            sa.sa_family = AF_UNSPEC;
            (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
            (void)connect(fd, &sa, sizeof sa);
        }
    }
    evhttp_connection_free(evcon); /* runs conn_closed_cb, which frees c */
}

/* egress_block refuse: a firewall that refuses new connections. Idle
 * keep-alive connections are dropped now, so the next request has to
 * connect and is refused; a request being answered finishes (as a stateful
 * firewall lets established flows drain) and its connection closes after
 * it ("Connection: close" is consulted by evhttp when the reply ends). */
static void conns_drop_idle(struct fake_loop *lp)
{
    struct fake_conn *c = lp->conns, *next;
    for (; c != NULL; c = next) {
        next = c->next;
        if (c->active != NULL) {
            struct evkeyvalq *h = evhttp_request_get_output_headers(c->active->req);
            if (evhttp_find_header(h, "Connection") == NULL) evhttp_add_header(h, "Connection", "close");
            continue;
        }
        conn_kill(c, 0); /* conn_closed_cb unlinks and frees c */
    }
}

/* ---- fault table ------------------------------------------------------- */

static void purge_expired_locked(struct fake *f, uint64_t now)
{
    for (int i = 0; i < FAULT__COUNT; i++)
        if (f->faults[i].active && f->faults[i].expires_us && now >= f->faults[i].expires_us)
            f->faults[i].active = 0;
}

/* ---- listening ------------------------------------------------------------ */

/* Resolves the listen host once (re-listening after egress_block must not
 * block the loop on a name lookup). */
static int addr_resolve(struct fake *f, char *err, size_t errlen)
{
    struct addrinfo hints, *ai = NULL;
    const char *host = f->spec.host;
    int gai, rc = -1;

    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    if (strcmp(host, "localhost") == 0) host = "127.0.0.1";
    gai = getaddrinfo(host, "0", &hints, &ai);
    if (gai != 0) {
        snprintf(err, errlen, "cannot resolve listen address %s: %s", f->spec.host,
                 gai_strerror(gai));
        goto out;
    }
    if (ai->ai_addrlen > sizeof f->addr) {
        snprintf(err, errlen, "listen address %s: unexpected address size", f->spec.host);
        goto out;
    }
    memcpy(&f->addr, ai->ai_addr, ai->ai_addrlen);
    f->addrlen = (socklen_t)ai->ai_addrlen;
    rc = 0;
out:
    if (ai) freeaddrinfo(ai);
    return rc;
}

static void addr_set_port(struct sockaddr_storage *ss, int port)
{
    if (ss->ss_family == AF_INET6) ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
    else ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
}

static int addr_port(const struct sockaddr_storage *ss)
{
    return ss->ss_family == AF_INET6 ? ntohs(((const struct sockaddr_in6 *)ss)->sin6_port)
                                     : ntohs(((const struct sockaddr_in *)ss)->sin_port);
}

/* A socket bound to the fake's address at port (0 = any), with SO_REUSEPORT
 * when reuseport; listening when listen_too. The fd, or -1 with err. */
static int sock_bind(struct fake *f, int port, int reuseport, int listen_too, int *bound_port,
                     char *err, size_t errlen)
{
    struct sockaddr_storage ss = f->addr, got;
    socklen_t gl = sizeof got;
    int fd = -1, one = 1, ret = -1;

    addr_set_port(&ss, port);
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        goto out;
    }
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
        snprintf(err, errlen, "SO_REUSEPORT: %s", strerror(errno));
        goto out;
    }
    if (bind(fd, (struct sockaddr *)&ss, f->addrlen) != 0) {
        snprintf(err, errlen, "cannot listen on %s:%d: %s", f->spec.host, port, strerror(errno));
        goto out;
    }
    if (listen_too && (listen(fd, 4096) != 0 || evutil_make_socket_nonblocking(fd) != 0)) {
        snprintf(err, errlen, "listen on %s:%d: %s", f->spec.host, port, strerror(errno));
        goto out;
    }
    if (getsockname(fd, (struct sockaddr *)&got, &gl) != 0) {
        snprintf(err, errlen, "getsockname: %s", strerror(errno));
        goto out;
    }
    if (bound_port) *bound_port = addr_port(&got);
    ret = fd;
    fd = -1;
out:
    if (fd >= 0) close(fd);
    return ret;
}

/* Opens lp's listening socket on port (0: ephemeral, single loop only). One
 * loop listens as any server does; several share the port with
 * SO_REUSEPORT. */
static int loop_listen(struct fake_loop *lp, int port, int *bound_port, char *err, size_t errlen)
{
    struct fake *f = lp->f;
    struct evhttp_bound_socket *bs;
    int fd, rc = -1;

    if (f->nloops == 1)
        return net_listen_http(lp->http, f->spec.host, port, bound_port, &lp->bound, err, errlen);
    fd = sock_bind(f, port, 1, 1, bound_port, err, errlen);
    if (fd < 0) goto out;
    bs = evhttp_accept_socket_with_handle(lp->http, fd);
    if (bs == NULL) {
        close(fd);
        snprintf(err, errlen, "cannot accept on %s:%d", f->spec.host, port);
        goto out;
    }
    lp->bound = bs;
    rc = 0;
out:
    return rc;
}

static void loop_unlisten(struct fake_loop *lp)
{
    if (lp->bound != NULL) evhttp_del_accept_socket(lp->http, lp->bound);
    lp->bound = NULL;
    lp->listening = 0;
}

/* Every loop listening on one port. SO_REUSEPORT would let a second process
 * share a fixed port without a word, so the port is first bound plainly
 * (which fails when anyone listens there); port 0 is picked that way too. */
static int loops_listen(struct fake *f, char *err, size_t errlen)
{
    int rc = -1;

    if (f->nloops == 1) {
        if (loop_listen(&f->loops[0], f->spec.port, &f->port, err, errlen) != 0) goto out;
        f->loops[0].listening = 1;
        rc = 0;
        goto out;
    }
    for (int attempt = 0; attempt < FAKE_BIND_TRIES && rc != 0; attempt++) {
        int port = 0, probe, i;
        probe = sock_bind(f, f->spec.port, 0, 0, &port, err, errlen);
        if (probe < 0) goto out;
        close(probe);
        for (i = 0; i < f->nloops; i++) {
            if (loop_listen(&f->loops[i], port, NULL, err, errlen) != 0) break;
            f->loops[i].listening = 1;
        }
        if (i == f->nloops) {
            f->port = port;
            rc = 0;
        } else {
            for (int j = 0; j < i; j++) loop_unlisten(&f->loops[j]);
            if (f->spec.port != 0) goto out; /* a fixed port someone else took */
        }
    }
out:
    return rc;
}

/* ---- loops and listener changes ------------------------------------------ */

/* Runs on lp's loop: brings its listener in line with the table and arms
 * its expiry timer. */
static void sync_cb(evutil_socket_t fd, short what, void *arg)
{
    struct fake_loop *lp = arg;
    struct fake *f = lp->f;
    uint64_t now = clock_mono_us(), next = 0, gen;
    int refuse;
    char err[256];
    (void)fd;
    (void)what;

    note_loop_thread(lp);
    pthread_mutex_lock(&f->mu);
    purge_expired_locked(f, now);
    refuse = f->faults[FAULT_EGRESS_BLOCK].active &&
             strcmp(f->faults[FAULT_EGRESS_BLOCK].spec.mode, "refuse") == 0;
    for (int i = 0; i < FAULT__COUNT; i++)
        if (f->faults[i].active && f->faults[i].expires_us &&
            (next == 0 || f->faults[i].expires_us < next))
            next = f->faults[i].expires_us;
    gen = f->gen_want;
    pthread_mutex_unlock(&f->mu);

    if (refuse && lp->listening) {
        loop_unlisten(lp);
        conns_drop_idle(lp);
        if (lp->idx == 0) log_info(tag_of(f), "egress_block refuse: port %d closed", f->port);
    } else if (!refuse && !lp->listening) {
        if (loop_listen(lp, f->port, NULL, err, sizeof err) == 0) {
            lp->listening = 1;
            if (lp->idx == 0) log_info(tag_of(f), "listening again on port %d", f->port);
        } else {
            /* The port may be briefly taken; try again soon. */
            log_warn(tag_of(f), "re-listen: %s", err);
            if (next == 0 || next > now + 100000) next = now + 100000;
        }
    }
    if (next != 0) {
        struct timeval tv;
        uint64_t d = next > now ? next - now : 0;
        tv.tv_sec = (time_t)(d / 1000000);
        tv.tv_usec = (suseconds_t)(d % 1000000);
        evtimer_add(lp->ev_expire, &tv);
    } else {
        evtimer_del(lp->ev_expire);
    }

    pthread_mutex_lock(&f->mu);
    if (gen > lp->gen_done) lp->gen_done = gen;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

/* 1 when a loop other than the calling thread's has not applied generation
 * g yet (loops whose thread is not known yet are not waited for). */
static int sync_pending_locked(struct fake *f, uint64_t g)
{
    pthread_t self = pthread_self();
    for (int i = 0; i < f->nloops; i++) {
        const struct fake_loop *lp = &f->loops[i];
        if (lp->tid_known && !pthread_equal(lp->tid, self) && lp->gen_done < g) return 1;
    }
    return 0;
}

/* Hands the table change to every loop; waits (bounded) until the loops on
 * other threads have applied it. Called with f->mu held; releases it. */
static void kick_and_wait_locked(struct fake *f)
{
    uint64_t g = ++f->gen_want;
    int wait = sync_pending_locked(f, g);
    struct timespec deadline;

    pthread_mutex_unlock(&f->mu);
    for (int i = 0; i < f->nloops; i++)
        if (f->loops[i].ev_sync != NULL) event_active(f->loops[i].ev_sync, EV_TIMEOUT, 0);
    if (!wait) return;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_nsec += 250 * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&f->mu);
    while (sync_pending_locked(f, g))
        if (pthread_cond_timedwait(&f->cv, &f->mu, &deadline) != 0) break;
    pthread_mutex_unlock(&f->mu);
}

int fake_fault_add(struct fake *f, const struct fault_spec *spec)
{
    if (f == NULL || spec == NULL || (int)spec->kind < 0 || spec->kind >= FAULT__COUNT ||
        !(spec->probability >= 0 && spec->probability <= 1))
        return -1;
    pthread_mutex_lock(&f->mu);
    f->faults[spec->kind].active = 1;
    f->faults[spec->kind].spec = *spec;
    f->faults[spec->kind].spec.key[sizeof spec->key - 1] = '\0';
    f->faults[spec->kind].spec.mode[sizeof spec->mode - 1] = '\0';
    f->faults[spec->kind].expires_us =
        spec->duration_s > 0 ? clock_mono_us() + (uint64_t)(spec->duration_s * 1e6) : 0;
    kick_and_wait_locked(f);
    log_info(tag_of(f), "fault %s on", fault_kind_name(spec->kind));
    return 0;
}

void fake_fault_clear(struct fake *f, int kind)
{
    if (f == NULL || kind >= FAULT__COUNT || kind < -1) return;
    pthread_mutex_lock(&f->mu);
    for (int i = 0; i < FAULT__COUNT; i++)
        if (kind == -1 || kind == i) f->faults[i].active = 0;
    kick_and_wait_locked(f);
}

int fake_fault_list(struct fake *f, struct fault_spec *out, double *remaining_s, int max)
{
    int n = 0;
    uint64_t now = clock_mono_us();
    pthread_mutex_lock(&f->mu);
    purge_expired_locked(f, now);
    for (int i = 0; i < FAULT__COUNT; i++) {
        if (!f->faults[i].active) continue;
        if (n < max) {
            if (out) out[n] = f->faults[i].spec;
            if (remaining_s)
                remaining_s[n] = f->faults[i].expires_us
                                     ? (double)(f->faults[i].expires_us - now) / 1e6
                                     : 0;
        }
        n++;
    }
    pthread_mutex_unlock(&f->mu);
    return n;
}

void fake_stats_get(struct fake *f, struct fake_stats *out)
{
    pthread_mutex_lock(&f->mu);
    *out = f->stats;
    pthread_mutex_unlock(&f->mu);
    out->events = out->events_late = 0;
    for (int i = 0; i < f->nloops; i++) {
        out->events += __atomic_load_n(&f->loops[i].events, __ATOMIC_RELAXED);
        out->events_late += __atomic_load_n(&f->loops[i].events_late, __ATOMIC_RELAXED);
    }
}

static void stat_add(struct fake *f, uint64_t *field)
{
    pthread_mutex_lock(&f->mu);
    (*field)++;
    pthread_mutex_unlock(&f->mu);
}

static void expire_cb(evutil_socket_t fd, short what, void *arg)
{
    sync_cb(fd, what, arg);
}

/* ---- sending ------------------------------------------------------------ */

static const char *reason_of(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 529: return "Overloaded";
    default: return status < 400 ? "OK" : status < 500 ? "Client Error" : "Server Error";
    }
}

static void add_common_headers(struct fake_req *r, struct evkeyvalq *h)
{
    evhttp_add_header(h, "x-slodrill-provider", r->f->spec.name);
}

static int send_buf(struct evhttp_request *req, int status, const struct buf *b)
{
    struct evbuffer *eb = evbuffer_new();
    if (eb == NULL) return -1;
    if (b->len > 0 && evbuffer_add(eb, b->data, b->len) != 0) {
        evbuffer_free(eb);
        return -1;
    }
    evhttp_send_reply(req, status, reason_of(status), eb);
    evbuffer_free(eb);
    return 0;
}

static int send_chunk(struct evhttp_request *req, const struct buf *b)
{
    struct evbuffer *eb = evbuffer_new();
    if (eb == NULL) return -1;
    if (evbuffer_add(eb, b->data, b->len) != 0) {
        evbuffer_free(eb);
        return -1;
    }
    evhttp_send_reply_chunk(req, eb);
    evbuffer_free(eb);
    return 0;
}

/* Frames one stream event as an HTTP/1.1 chunk (RFC 9112 7.1) at the end of
 * lp->out, the bytes this stream step writes. */
static int stream_queue(struct fake_loop *lp, const struct buf *ev)
{
    static const char hex[] = "0123456789abcdef";
    char head[24];
    size_t n = ev->len, hl = 0;
    int rc = 0;

    if (n == 0) return 0;
    do {
        head[sizeof head - 3 - hl++] = hex[n & 15];
        n >>= 4;
    } while (n != 0);
    memcpy(head + sizeof head - 2, "\r\n", 2);
    rc |= buf_append(&lp->out, head + sizeof head - 2 - hl, hl + 2);
    rc |= buf_append(&lp->out, ev->data, ev->len);
    rc |= buf_append(&lp->out, "\r\n", 2);
    return rc ? -1 : 0;
}

/* Writes what this step queued on r's connection. When nothing is queued
 * there, the chunks go straight to the socket in one send(): no evbuffer
 * copies and no EPOLLOUT round trip, which is most of what 10,000 paced
 * streams cost (docs/performance.md). What the socket does not take, and
 * everything while anything is queued, goes through the connection's
 * bufferevent, so the bytes stay in order and evhttp still meets errors and
 * closes. -1 when the bytes could not be queued. */
static int stream_flush(struct fake_req *r)
{
    struct buf *o = &r->lp->out;
    struct evhttp_connection *evcon;
    struct bufferevent *bev = NULL;
    int fd = -1, rc = -1;
    ssize_t n = 0;

    if (r->conn != NULL) {
        bev = r->conn->bev;
        fd = r->conn->fd;
    } else if ((evcon = evhttp_request_get_connection(r->req)) != NULL) {
        bev = evhttp_connection_get_bufferevent(evcon);
        fd = bev ? (int)bufferevent_getfd(bev) : -1;
    }
    if (o->len == 0 || bev == NULL) { /* nothing to write, or nowhere to */
        rc = 0;
        goto out;
    }
    if (fd >= 0 && evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
        n = send(fd, o->data, o->len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) n = 0; /* EAGAIN, or an error the bufferevent will meet */
    }
    if ((size_t)n < o->len && bufferevent_write(bev, o->data + n, o->len - (size_t)n) != 0)
        goto out;
    rc = 0;
out:
    buf_reset(o);
    return rc;
}

/* Answers with a dialect error and frees r. */
static void reply_error(struct fake_req *r, const struct fake_errinfo *e)
{
    struct buf body;
    struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
    int status = 500;

    buf_init(&body, 1 << 16);
    add_common_headers(r, h);
    if (r->f->wire->error(r, e, &status, h, &body) != 0) {
        log_error(tag_of(r->f), "error body did not fit");
        buf_reset(&body);
    }
    journal(r, status);
    req_detach(r);
    if (send_buf(r->req, status, &body) != 0) log_error(tag_of(r->f), "out of memory");
    buf_cleanup(&body);
    req_free(r);
}

static void reply_http(struct fake_req *r, int status, const char *msg)
{
    struct fake_errinfo e = {.kind = FAKE_ERR_HTTP, .status = status, .message = msg};
    reply_error(r, &e);
}

/* Ends r's connection without finishing the response (cut), or with a RST.
 * Frees r; evhttp frees the request with the connection. */
static void cut_now(struct fake_req *r, int reset)
{
    struct fake_conn *c = r->conn;
    req_free(r);
    if (c != NULL) conn_kill(c, reset);
}

/* Runs r's next step at due_us. The loop's timers have millisecond
 * resolution and fire late rather than early, so a step due within a
 * millisecond has a zero timeout: it runs right after the next poll (never
 * starving I/O), and a fake with no time to first token answers at once. */
static void schedule_at(struct fake_req *r, uint64_t due_us)
{
    uint64_t now = clock_mono_us(), d = due_us > now ? due_us - now : 0;
    struct timeval tv = {0, 0};
    r->due_us = due_us;
    if (d >= FAKE_TIMER_RES_US) {
        tv.tv_sec = (time_t)(d / 1000000);
        tv.tv_usec = (suseconds_t)(d % 1000000);
    }
    evtimer_add(r->timer, &tv);
}

/* ms from now (and from the arrival when the request is new). */
static void schedule(struct fake_req *r, double ms)
{
    if (!(ms > 0)) ms = 0;
    schedule_at(r, clock_mono_us() + (uint64_t)(ms * 1000.0));
}

/* Delay before the next token event: the model's pace with +-50% jitter,
 * plus any slow_tokens fault. */
static double next_interval(struct fake_req *r)
{
    double base = 1000.0 / r->f->spec.latency.tokens_per_s;
    return base * (0.5 + fake_rng_unit(&r->rng_time)) + r->extra_tok_ms;
}

static int token_text(struct fake_req *r, int i, struct buf *out)
{
    char w[32];
    fake_rng_word(&r->rng_text, w, sizeof w);
    if (i == 0 && w[0] >= 'a' && w[0] <= 'z') w[0] = (char)(w[0] - 'a' + 'A');
    if (i != 0 && buf_puts(out, " ") != 0) return -1;
    return buf_puts(out, w);
}

/* Breaks the JSON of one serialized event (or body): keeps the front half. */
static void corrupt(struct buf *b)
{
    size_t keep = b->len / 2;
    int sse = b->len > 2 && b->data[b->len - 1] == '\n' && b->data[b->len - 2] == '\n';
    char *s = buf_steal(b);
    if (buf_append(b, s, keep) != 0 || (sse && buf_puts(b, "\n\n") != 0)) buf_reset(b);
    free(s);
}

static void finish_ok(struct fake_req *r)
{
    if (!r->faulted) stat_add(r->f, &r->f->stats.ok);
    req_free(r);
}

/* One step of a stream: every event that is due, written at once; then the
 * wait for the next one, or the stream's end. */
static void stream_step(struct fake_req *r)
{
    struct fake *f = r->f;
    struct fake_loop *lp = r->lp;
    struct buf *ev = &lp->scratch_ev, *t = &lp->scratch_tok;
    int total = r->npre + r->out_tokens + r->npost, burst = 0;
    enum { GO_WAIT, GO_END, GO_STALL, GO_CUT, GO_ERROR, GO_OVERFLOW } next = GO_WAIT;
    uint64_t t_step = clock_mono_us(), nev = 0, nlate = 0;

    buf_reset(&lp->out);
    for (;;) {
        double delay = 0;
        int k;
        buf_reset(ev);
        if (r->pos >= total) {
            next = GO_END;
            break;
        }
        if (r->pos == r->stall_after) {
            next = GO_STALL;
            break;
        }
        if (r->pos == r->cut_after) {
            next = GO_CUT;
            break;
        }
        if (r->pos == r->error_after) {
            if (f->wire->error_event(r, r->error_status, ev) != 0 || stream_queue(lp, ev) != 0)
                log_error(tag_of(f), "error event did not fit");
            next = GO_ERROR;
            break;
        }
        k = r->pos - r->npre;
        if (r->pos < r->npre) {
            if (f->wire->pre(r, r->pos, ev) != 0) next = GO_OVERFLOW;
        } else if (k < r->out_tokens) {
            buf_reset(t);
            if (token_text(r, k, t) != 0 || f->wire->token(r, t->data, ev) != 0)
                next = GO_OVERFLOW;
            r->sent_tokens++;
        } else {
            if (f->wire->post(r, k - r->out_tokens, ev) != 0) next = GO_OVERFLOW;
        }
        if (next == GO_OVERFLOW) break;
        if (r->pos == r->malformed_after) corrupt(ev);
        if (stream_queue(lp, ev) != 0) {
            next = GO_OVERFLOW;
            break;
        }
        nev++;
        if (r->forgiven || t_step > r->due_us + FAKE_LATE_MS * 1000u) nlate++;
        r->forgiven = 0;
        r->pos++;
        k = r->pos - r->npre;
        if (k >= 1 && k < r->out_tokens) delay = next_interval(r);
        if (delay > 0) {
            /* The next token is due an interval after this one was due, not
             * after now: lateness does not add up. */
            uint64_t now = clock_mono_us(), due = r->due_us + (uint64_t)(delay * 1000.0);
            /* An overloaded loop forgives lateness past FAKE_MAX_LAG_US
             * instead of bursting the backlog into memory. */
            if (due + FAKE_MAX_LAG_US < now) {
                due = now;
                r->forgiven = 1;
            }
            if (due >= now + FAKE_TIMER_RES_US || ++burst >= FAKE_BURST) {
                schedule_at(r, due);
                break;
            }
            r->due_us = due;
        }
    }
    /* What was queued goes out before the stream ends, stalls or is cut. */
    if (stream_flush(r) != 0) next = GO_OVERFLOW;
    __atomic_fetch_add(&lp->events, nev, __ATOMIC_RELAXED);
    if (nlate > 0) __atomic_fetch_add(&lp->events_late, nlate, __ATOMIC_RELAXED);
    switch (next) {
    case GO_WAIT:
        break;
    case GO_END:
        req_detach(r);
        evhttp_send_reply_end(r->req);
        finish_ok(r);
        break;
    case GO_STALL:
        r->held = 1; /* silent from here on; the reaper notices a hang-up */
        break;
    case GO_CUT:
        cut_now(r, r->cut_reset);
        break;
    case GO_ERROR:
        req_detach(r);
        evhttp_send_reply_end(r->req);
        req_free(r);
        break;
    case GO_OVERFLOW:
        log_error(tag_of(f), "stream event did not fit; cutting the stream");
        cut_now(r, 0);
        break;
    }
}

/* The non-streaming answer, all at once. */
static void body_send(struct fake_req *r)
{
    struct buf text, body;
    struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);

    buf_init(&text, 1 << 20);
    buf_init(&body, 2 << 20);
    for (int i = 0; i < r->out_tokens; i++)
        if (token_text(r, i, &text) != 0) goto overflow;
    r->sent_tokens = r->out_tokens;
    if (r->malformed_ctype) {
        if (buf_puts(&body, "<html><head><title>502 Bad Gateway</title></head><body>"
                            "<center><h1>502 Bad Gateway</h1></center></body></html>\n") != 0)
            goto overflow;
        evhttp_add_header(h, "Content-Type", "text/html; charset=utf-8");
        add_common_headers(r, h);
        req_detach(r);
        send_buf(r->req, 200, &body);
        req_free(r);
        goto out;
    }
    if (r->f->wire->body(r, text.data, &body) != 0) goto overflow;
    add_common_headers(r, h);
    if (r->f->wire->ok_headers(r, h) != 0) goto overflow;
    if (r->malformed_after >= 0) corrupt(&body);
    if (r->cut_after >= 0 || r->cut_ms > 0) {
        /* Half the body, chunked, then the connection ends. */
        struct buf half;
        buf_init(&half, 0);
        if (buf_append(&half, body.data, body.len / 2) == 0) {
            evhttp_send_reply_start(r->req, 200, "OK");
            send_chunk(r->req, &half);
        }
        buf_cleanup(&half);
        cut_now(r, r->cut_reset);
        goto out;
    }
    req_detach(r);
    send_buf(r->req, 200, &body);
    finish_ok(r);
    goto out;
overflow:
    log_error(tag_of(r->f), "answer did not fit");
    reply_http(r, 500, NULL);
out:
    buf_cleanup(&text);
    buf_cleanup(&body);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct fake_req *r = arg;
    (void)fd;
    (void)what;
    if (r->stream) stream_step(r);
    else body_send(r);
}

static void cut_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct fake_req *r = arg;
    (void)fd;
    (void)what;
    cut_now(r, r->cut_reset);
}

/* egress_block reset: the connection is reset as soon as it says anything. */
static void reset_cb(evutil_socket_t fd, short what, void *arg)
{
    struct fake_req *r = arg;
    (void)fd;
    (void)what;
    cut_now(r, 1);
}

/* Held requests (blackhole, stall): frees them once the client hangs up. */
static void reap_cb(evutil_socket_t fd, short what, void *arg)
{
    struct fake_loop *lp = arg;
    struct fake_req *r, *next;
    (void)fd;
    (void)what;
    note_loop_thread(lp);
    for (r = lp->reqs; r != NULL; r = next) {
        char c;
        ssize_t n;
        int cfd;
        next = r->next;
        if (!r->held || r->conn == NULL) continue;
        cfd = conn_fd(r->conn);
        if (cfd < 0) continue;
        n = recv(cfd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            if (next != NULL && next->conn == r->conn) next = next->next;
            cut_now(r, 0);
        }
    }
}

/* ---- the request ---------------------------------------------------------- */

struct applied {
    int on[FAULT__COUNT];
    struct fault_spec spec[FAULT__COUNT];
};

static const char *request_key(struct fake *f, struct evhttp_request *req)
{
    struct evkeyvalq *h = evhttp_request_get_input_headers(req);
    const char *a = evhttp_find_header(h, "Authorization");
    if (f->spec.dialect == FAKE_ANTHROPIC) {
        const char *k = evhttp_find_header(h, "x-api-key");
        if (k != NULL) return k;
    }
    if (a != NULL && strncasecmp(a, "Bearer ", 7) == 0) {
        a += 7;
        while (*a == ' ') a++;
        return a;
    }
    return NULL;
}

/* Which faults hit this request: the table's (each drawn against its
 * probability and key scope) plus the one in x-slodrill-fault. Draws happen
 * for every active fault in a fixed order, so a seed replays exactly. */
static int faults_for(struct fake_req *r, const char *key, struct applied *ap, char *err,
                      size_t errlen)
{
    struct fake *f = r->f;
    struct fault_slot snap[FAULT__COUNT];
    struct fault_spec fs;
    const char *hdr;
    double u[FAULT__COUNT], uh = 0;
    int rc = -1, parsed = 0;

    memset(ap, 0, sizeof *ap);
    hdr = f->spec.fault_header
              ? evhttp_find_header(evhttp_request_get_input_headers(r->req), "x-slodrill-fault")
              : NULL;
    if (hdr != NULL) parsed = fault_spec_parse(hdr, &fs, err, errlen) == 0;
    /* One request's draws are taken together, under the lock the loops
     * share, so concurrent requests on other loops cannot interleave. */
    pthread_mutex_lock(&f->mu);
    purge_expired_locked(f, clock_mono_us());
    memcpy(snap, f->faults, sizeof snap);
    for (int i = 0; i < FAULT__COUNT; i++)
        if (snap[i].active) u[i] = fake_rng_unit(&f->rng_fault);
    if (parsed && fs.probability < 1.0) uh = fake_rng_unit(&f->rng_fault);
    pthread_mutex_unlock(&f->mu);
    if (hdr != NULL && !parsed) goto out;
    for (int i = 0; i < FAULT__COUNT; i++) {
        if (!snap[i].active) continue;
        if (snap[i].spec.key[0] != '\0' && (key == NULL || strcmp(key, snap[i].spec.key) != 0))
            continue;
        if (u[i] >= snap[i].spec.probability) continue;
        ap->on[i] = 1;
        ap->spec[i] = snap[i].spec;
    }
    if (parsed && (fs.probability >= 1.0 || uh < fs.probability) &&
        (fs.key[0] == '\0' || (key != NULL && strcmp(key, fs.key) == 0))) {
        ap->on[fs.kind] = 1;
        ap->spec[fs.kind] = fs;
    }
    rc = 0;
out:
    return rc;
}

/* Counts an API request: the rate-limit window and the stats. */
static void window_tick(struct fake *f)
{
    uint64_t now = clock_mono_us();
    pthread_mutex_lock(&f->mu);
    if (now - f->window_start_us >= 60000000ULL) {
        f->window_start_us = now;
        f->window_used = 0;
    }
    f->window_used++;
    f->stats.requests++;
    pthread_mutex_unlock(&f->mu);
}

static struct fake_req *req_new(struct fake_loop *lp, struct evhttp_request *req,
                                struct fake_conn *c)
{
    struct fake *f = lp->f;
    struct fake_req *r = calloc(1, sizeof *r);
    uint64_t seed;
    char rnd[40];

    if (r == NULL) return NULL;
    r->f = f;
    r->lp = lp;
    r->req = req;
    r->conn = c;
    r->t_arrival_us = clock_mono_us();
    r->created = f->spec.fixed_created > 0 ? f->spec.fixed_created
                                           : (int64_t)(clock_wall_us() / 1000000);
    r->cut_after = r->stall_after = r->error_after = r->malformed_after = -1;
    pthread_mutex_lock(&f->mu);
    seed = fake_rng_next(&f->rng);
    f->stats.in_flight++;
    pthread_mutex_unlock(&f->mu);
    fake_rng_seed(&r->rng_text, seed ^ 0x7465787400000000ULL);
    fake_rng_seed(&r->rng_time, seed ^ 0x74696d6500000000ULL);
    fake_rng_seed(&r->rng_misc, seed ^ 0x6d69736300000000ULL);
    if (f->spec.dialect == FAKE_OPENAI) {
        fake_rng_alnum(&r->rng_misc, rnd, 24);
        snprintf(r->id, sizeof r->id, "chatcmpl-%s-%s", f->spec.name, rnd);
        fake_rng_hex(&r->rng_misc, rnd, 32);
        snprintf(r->request_id, sizeof r->request_id, "req_%s", rnd);
    } else {
        fake_rng_alnum(&r->rng_misc, rnd, 24);
        snprintf(r->id, sizeof r->id, "msg_%s_%s", f->spec.name, rnd);
        fake_rng_alnum(&r->rng_misc, rnd, 24);
        snprintf(r->request_id, sizeof r->request_id, "req_011C%s", rnd);
    }
    r->next = lp->reqs;
    if (lp->reqs) lp->reqs->prev = r;
    lp->reqs = r;
    if (c != NULL) c->active = r;
    r->timer = evtimer_new(lp->base, timer_cb, r);
    if (r->timer == NULL) {
        req_free(r);
        return NULL;
    }
    return r;
}

/* Parses the JSON body; NULL when it is not JSON. */
static cJSON *body_json(struct evhttp_request *req)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    const char *p;
    if (n == 0 || n > FAKE_MAX_BODY) return NULL;
    p = (const char *)evbuffer_pullup(in, -1);
    if (p == NULL) return NULL;
    return cJSON_ParseWithLength(p, n);
}

/* Decides the answer's length and pace and starts playing it. */
static void answer(struct fake_req *r, const struct applied *ap)
{
    struct fake *f = r->f;
    const struct fake_latency *lat = &f->spec.latency;
    double n;

    /* The request is answered: what it marked for caching is cached now. */
    if (r->cache_marks > 0) {
        pthread_mutex_lock(&f->mu);
        fake_cache_commit(f->pcache, r, clock_mono_us());
        pthread_mutex_unlock(&f->mu);
    }

    r->ttft_ms = fake_rng_lognormal(&r->rng_time, lat->ttft_median_ms, lat->ttft_p95_ms);
    if (r->ttft_ms > 600000) r->ttft_ms = 600000;
    n = round(fake_rng_lognormal(&r->rng_time, lat->output_tokens_median,
                                 lat->output_tokens_median * 2.0));
    if (n < 1) n = 1;
    if (n > FAKE_MAX_TOKENS) n = FAKE_MAX_TOKENS;
    r->out_tokens = (int)n;
    if (r->max_tokens > 0 && r->out_tokens > r->max_tokens) {
        r->out_tokens = r->max_tokens;
        r->capped = 1;
    }

    if (ap->on[FAULT_SLOW_TTFT]) r->extra_ttft_ms = ap->spec[FAULT_SLOW_TTFT].ms;
    if (ap->on[FAULT_SLOW_TOKENS]) r->extra_tok_ms = ap->spec[FAULT_SLOW_TOKENS].ms;
    if (ap->on[FAULT_STALL]) r->stall_after = ap->spec[FAULT_STALL].after_events;
    if (ap->on[FAULT_CUT]) {
        r->cut_reset = strcmp(ap->spec[FAULT_CUT].mode, "reset") == 0;
        if (ap->spec[FAULT_CUT].ms > 0) r->cut_ms = ap->spec[FAULT_CUT].ms;
        else r->cut_after = ap->spec[FAULT_CUT].after_events;
    }
    if (ap->on[FAULT_ERROR_EVENT]) {
        r->error_after = ap->spec[FAULT_ERROR_EVENT].after_events;
        r->error_status = ap->spec[FAULT_ERROR_EVENT].status;
    }
    if (ap->on[FAULT_MALFORMED]) {
        if (strcmp(ap->spec[FAULT_MALFORMED].mode, "content_type") == 0) r->malformed_ctype = 1;
        else r->malformed_after = ap->spec[FAULT_MALFORMED].after_events;
    }

    if (!r->stream) {
        double total = r->ttft_ms + r->extra_ttft_ms;
        if (r->stall_after >= 0) {
            r->held = 1; /* a non-streaming stall is silence */
            journal(r, 0);
            return;
        }
        if (r->error_after >= 0) {
            struct fake_errinfo e = {.kind = FAKE_ERR_HTTP, .status = r->error_status};
            if (e.status == 0) e.kind = FAKE_ERR_OVERLOADED;
            if (f->spec.dialect == FAKE_OPENAI && e.status == 0) {
                e.kind = FAKE_ERR_HTTP;
                e.status = 500;
            }
            reply_error(r, &e);
            return;
        }
        for (int i = 1; i < r->out_tokens; i++) total += next_interval(r);
        journal(r, 200);
        schedule(r, total);
        return;
    }

    /* Streaming: headers now, the first event when the first token is ready. */
    {
        struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
        add_common_headers(r, h);
        journal(r, 200);
        if (r->malformed_ctype) {
            evhttp_add_header(h, "Content-Type", "text/html; charset=utf-8");
            r->npre = r->npost = 0;
            r->out_tokens = 0;
            evhttp_send_reply_start(r->req, 200, "OK");
            {
                struct buf b;
                buf_init(&b, 0);
                if (buf_puts(&b, "<html><body><h1>Upstream error</h1></body></html>\n") == 0)
                    send_chunk(r->req, &b);
                buf_cleanup(&b);
            }
            req_detach(r);
            evhttp_send_reply_end(r->req);
            req_free(r);
            return;
        }
        if (f->wire->ok_headers(r, h) != 0) {
            reply_http(r, 500, NULL);
            return;
        }
        r->npre = f->wire->npre(r);
        r->npost = f->wire->npost(r);
        evhttp_send_reply_start(r->req, 200, "OK");
        r->headers_sent = 1;
        if (r->cut_ms > 0) {
            struct timeval tv = {(time_t)(r->cut_ms / 1000),
                                 (suseconds_t)fmod(r->cut_ms * 1000.0, 1e6)};
            r->cut_timer = evtimer_new(r->lp->base, cut_timer_cb, r);
            if (r->cut_timer) evtimer_add(r->cut_timer, &tv);
        }
        schedule(r, r->ttft_ms + r->extra_ttft_ms);
    }
}

static void handle(struct evhttp_request *req, void *arg)
{
    struct fake_loop *lp = arg;
    struct fake *f = lp->f;
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct fake_conn *c = NULL;
    struct fake_req *r = NULL;
    struct applied ap;
    const char *uri = evhttp_request_get_uri(req), *key;
    char path[256], err[256];
    size_t plen;
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    int route; /* 1 = completions/messages, 2 = models */
    cJSON *body = NULL;
    struct fake_errinfo e;

    note_loop_thread(lp);
    plen = strcspn(uri ? uri : "", "?");
    if (plen >= sizeof path) plen = sizeof path - 1;
    memcpy(path, uri ? uri : "", plen);
    path[plen] = '\0';

    if (strcmp(path, "/_chaos/faults") == 0) {
        fake_control_handle(f, f->spec.control_token, req);
        goto out;
    }
    if (strcmp(path, "/_chaos/journal") == 0) {
        fake_control_journal(f, f->spec.control_token, req);
        goto out;
    }
    window_tick(f);
    if (evcon != NULL) c = conn_get(lp, evcon);
    r = req_new(lp, req, c);
    if (r == NULL) {
        evhttp_send_reply(req, 500, "Internal Server Error", NULL);
        goto out;
    }
    key = request_key(f, req);
    r->jkey = key;
    snprintf(r->jpath, sizeof r->jpath, "%.95s", path);
    snprintf(r->jmethod, sizeof r->jmethod, "%s",
             method == EVHTTP_REQ_GET ? "GET" : method == EVHTTP_REQ_POST ? "POST"
                                          : method == EVHTTP_REQ_DELETE ? "DELETE" : "OTHER");
    if (faults_for(r, key, &ap, err, sizeof err) != 0) {
        char msg[400];
        snprintf(msg, sizeof msg, "x-slodrill-fault: %s", err);
        reply_http(r, 400, msg);
        r = NULL;
        goto out;
    }
    for (int i = 0; i < FAULT__COUNT; i++) {
        r->faulted |= ap.on[i];
        if (ap.on[i]) r->jfaults |= 1u << i;
    }
    if (r->faulted) stat_add(f, &f->stats.faulted);

    /* egress_block: nothing a provider would say reaches the client. */
    if (ap.on[FAULT_EGRESS_BLOCK]) {
        journal(r, 0);
        if (strcmp(ap.spec[FAULT_EGRESS_BLOCK].mode, "blackhole") == 0) {
            r->held = 1;
        } else {
            /* reset, or refuse racing the listener close: RST on the next turn */
            event_free(r->timer);
            r->timer = evtimer_new(lp->base, reset_cb, r);
            if (r->timer) schedule(r, 0);
        }
        r = NULL;
        goto out;
    }

    route = 0;
    if (strcmp(path, "/v1/models") == 0 && method == EVHTTP_REQ_GET) route = 2;
    else if (f->spec.dialect == FAKE_OPENAI && strcmp(path, "/v1/chat/completions") == 0 &&
             method == EVHTTP_REQ_POST)
        route = 1;
    else if (f->spec.dialect == FAKE_ANTHROPIC && strcmp(path, "/v1/messages") == 0 &&
             method == EVHTTP_REQ_POST)
        route = 1;
    if (route == 0) {
        memset(&e, 0, sizeof e);
        e.kind = FAKE_ERR_NOT_FOUND;
        e.method = method == EVHTTP_REQ_GET ? "GET" : method == EVHTTP_REQ_POST ? "POST"
                                                    : method == EVHTTP_REQ_DELETE ? "DELETE"
                                                                                   : "OTHER";
        e.path = path;
        reply_error(r, &e);
        r = NULL;
        goto out;
    }

    /* Keys: missing, wrong, or revoked by a fault. */
    memset(&e, 0, sizeof e);
    if (key == NULL || key[0] == '\0') {
        e.kind = FAKE_ERR_NO_KEY;
        stat_add(f, &f->stats.auth_failed);
        reply_error(r, &e);
        r = NULL;
        goto out;
    }
    if ((f->spec.key[0] != '\0' && strcmp(key, f->spec.key) != 0) || ap.on[FAULT_REVOKE_KEY]) {
        e.kind = FAKE_ERR_BAD_KEY;
        e.key = key;
        if (!ap.on[FAULT_REVOKE_KEY]) stat_add(f, &f->stats.auth_failed);
        reply_error(r, &e);
        r = NULL;
        goto out;
    }

    if (route == 2) {
        struct buf b;
        struct evkeyvalq *h = evhttp_request_get_output_headers(req);
        buf_init(&b, 1 << 16);
        add_common_headers(r, h);
        evhttp_add_header(h, "Content-Type", "application/json");
        journal(r, 200);
        req_detach(r);
        if (f->wire->models(r, &b) == 0) send_buf(req, 200, &b);
        else evhttp_send_reply(req, 500, "Internal Server Error", NULL);
        buf_cleanup(&b);
        finish_ok(r);
        r = NULL;
        goto out;
    }

    body = body_json(req);
    memset(&e, 0, sizeof e);
    if (f->wire->parse(r, body, &e) != 0) {
        reply_error(r, &e);
        r = NULL;
        goto out;
    }

    memset(&e, 0, sizeof e);
    if (ap.on[FAULT_RATE_LIMIT]) {
        e.kind = FAKE_ERR_RATE_LIMIT;
        e.mode = ap.spec[FAULT_RATE_LIMIT].mode;
        e.retry_after_s = ap.spec[FAULT_RATE_LIMIT].retry_after_s;
    } else if (ap.on[FAULT_OVERLOADED]) {
        e.kind = FAKE_ERR_OVERLOADED;
    } else if (ap.on[FAULT_HTTP_ERROR]) {
        e.kind = FAKE_ERR_HTTP;
        e.status = ap.spec[FAULT_HTTP_ERROR].status;
    } else {
        answer(r, &ap);
        r = NULL;
        goto out;
    }
    reply_error(r, &e);
    r = NULL;
out:
    cJSON_Delete(body);
}

/* ---- lifetime -------------------------------------------------------------- */

/* One per CPU this process may run on (taskset narrows it), at most
 * FAKE_MAX_THREADS. */
static int auto_threads(void)
{
    cpu_set_t set;
    int n = 1;
    if (sched_getaffinity(0, sizeof set, &set) == 0) n = CPU_COUNT(&set);
    if (n < 1) n = 1;
    if (n > FAKE_MAX_THREADS) n = FAKE_MAX_THREADS;
    return n;
}

/* An own loop's thread asked to stop: the break is taken on the loop
 * itself, so a stop requested before the loop started is not lost. */
static void stop_cb(evutil_socket_t fd, short what, void *arg)
{
    struct fake_loop *lp = arg;
    (void)fd;
    (void)what;
    event_base_loopbreak(lp->base);
}

static void *loop_main(void *arg)
{
    struct fake_loop *lp = arg;
    event_base_loop(lp->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

/* Sets up loop idx on base (NULL: a base of its own); not listening yet. */
static int loop_init(struct fake *f, int idx, struct event_base *base, char *err, size_t errlen)
{
    struct fake_loop *lp = &f->loops[idx];
    int rc = -1;

    lp->f = f;
    lp->idx = idx;
    buf_init(&lp->scratch_ev, 1 << 16);
    buf_init(&lp->scratch_tok, 256);
    buf_init(&lp->out, FAKE_STEP_OUT);
    lp->base = base != NULL ? base : event_base_new();
    if (lp->base == NULL) {
        snprintf(err, errlen, "fake %s: cannot create an event loop", f->spec.name);
        goto out;
    }
    lp->http = evhttp_new(lp->base);
    lp->ev_sync = event_new(lp->base, -1, 0, sync_cb, lp);
    lp->ev_expire = evtimer_new(lp->base, expire_cb, lp);
    lp->ev_reap = event_new(lp->base, -1, EV_PERSIST, reap_cb, lp);
    lp->ev_stop = idx > 0 ? event_new(lp->base, -1, 0, stop_cb, lp) : NULL;
    if (lp->http == NULL || lp->ev_sync == NULL || lp->ev_expire == NULL || lp->ev_reap == NULL ||
        (idx > 0 && lp->ev_stop == NULL)) {
        snprintf(err, errlen, "fake %s: out of memory", f->spec.name);
        goto out;
    }
    evhttp_set_max_body_size(lp->http, FAKE_MAX_BODY);
    evhttp_set_max_headers_size(lp->http, FAKE_MAX_HEADERS);
    evhttp_set_allowed_methods(lp->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_DELETE);
    evhttp_set_default_content_type(lp->http, NULL);
    evhttp_set_gencb(lp->http, handle, lp);
    {
        struct timeval tv = {0, FAKE_REAP_MS * 1000};
        if (event_add(lp->ev_reap, &tv) != 0) {
            snprintf(err, errlen, "fake %s: cannot arm a timer", f->spec.name);
            goto out;
        }
    }
    rc = 0;
out:
    return rc;
}

/* Stops an own loop's thread (waits for it). */
static void loop_stop(struct fake_loop *lp)
{
    if (!lp->th_started) return;
    event_active(lp->ev_stop, EV_TIMEOUT, 0);
    pthread_join(lp->th, NULL);
    lp->th_started = 0;
}

/* Frees what loop lp holds; its thread has stopped (or lp is the caller's). */
static void loop_cleanup(struct fake_loop *lp)
{
    /* Our requests first (their timers), then evhttp with its connections. */
    while (lp->reqs != NULL) {
        struct fake_req *r = lp->reqs;
        if (r->conn == NULL && r->req != NULL && evhttp_request_get_connection(r->req) == NULL)
            evhttp_request_free(r->req);
        req_free(r);
    }
    if (lp->http) evhttp_free(lp->http);
    lp->http = NULL;
    while (lp->conns != NULL) {
        struct fake_conn *c = lp->conns;
        conn_unlink(c);
        free(c);
    }
    if (lp->ev_sync) event_free(lp->ev_sync);
    if (lp->ev_expire) event_free(lp->ev_expire);
    if (lp->ev_reap) event_free(lp->ev_reap);
    if (lp->ev_stop) event_free(lp->ev_stop);
    lp->ev_sync = lp->ev_expire = lp->ev_reap = lp->ev_stop = NULL;
    buf_cleanup(&lp->scratch_ev);
    buf_cleanup(&lp->scratch_tok);
    buf_cleanup(&lp->out);
    if (lp->idx > 0 && lp->base != NULL) event_base_free(lp->base);
    lp->base = NULL;
}

struct fake *fake_new(struct event_base *base, const struct fake_spec *spec, char *err,
                      size_t errlen)
{
    struct fake *f = NULL, *ret = NULL;
    int n;

    if (spec->name[0] == '\0') {
        snprintf(err, errlen, "a fake provider needs a name");
        goto out;
    }
    if (!(spec->latency.tokens_per_s > 0)) {
        snprintf(err, errlen, "fake %s: tokens_per_s must be above 0", spec->name);
        goto out;
    }
    if (spec->threads < 0 || spec->threads > FAKE_MAX_THREADS) {
        snprintf(err, errlen, "fake %s: threads must be 0 (one per CPU) to %d, not %d",
                 spec->name, FAKE_MAX_THREADS, spec->threads);
        goto out;
    }
    n = spec->threads > 0 ? spec->threads : auto_threads();
    /* The fake's own loops are woken from other threads. */
    if (n > 1 && evthread_use_pthreads() != 0) {
        snprintf(err, errlen, "fake %s: libevent has no thread support", spec->name);
        goto out;
    }
    f = calloc(1, sizeof *f);
    if (f == NULL) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    if ((f->loops = calloc((size_t)n, sizeof *f->loops)) == NULL) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    f->nloops = n;
    f->spec = *spec;
    f->spec.threads = n;
    f->spec.name[sizeof f->spec.name - 1] = '\0';
    f->spec.key[sizeof f->spec.key - 1] = '\0';
    f->spec.model[sizeof f->spec.model - 1] = '\0';
    f->spec.host[sizeof f->spec.host - 1] = '\0';
    if (f->spec.host[0] == '\0') snprintf(f->spec.host, sizeof f->spec.host, "127.0.0.1");
    f->wire = spec->dialect == FAKE_ANTHROPIC ? &fake_anthropic_wire : &fake_openai_wire;
    if (f->spec.model[0] != '\0') snprintf(f->model, sizeof f->model, "%s", f->spec.model);
    else snprintf(f->model, sizeof f->model, "%s-model", f->spec.name);
    snprintf(f->tag, sizeof f->tag, "fake:%s", f->spec.name);
    fake_rng_seed(&f->rng, spec->seed);
    fake_rng_seed(&f->rng_fault, spec->seed ^ 0x6661756c74000000ULL);
    f->window_start_us = clock_mono_us();

    if ((f->journal = fake_journal_new()) == NULL ||
        (f->spec.dialect == FAKE_ANTHROPIC && (f->pcache = fake_cache_new()) == NULL)) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    for (int i = 0; i < n; i++)
        if (loop_init(f, i, i == 0 ? base : NULL, err, errlen) != 0) goto out;
    if (n > 1 && addr_resolve(f, err, errlen) != 0) goto out;
    if (loops_listen(f, err, errlen) != 0) goto out;
    snprintf(f->url, sizeof f->url, "http://%s%s%s:%d", strchr(f->spec.host, ':') ? "[" : "",
             f->spec.host, strchr(f->spec.host, ':') ? "]" : "", f->port);
    for (int i = 1; i < n; i++) {
        struct fake_loop *lp = &f->loops[i];
        if (pthread_create(&lp->th, NULL, loop_main, lp) != 0) {
            snprintf(err, errlen, "fake %s: cannot start a loop thread", f->spec.name);
            goto out;
        }
        lp->th_started = 1;
        pthread_mutex_lock(&f->mu);
        lp->tid = lp->th;
        lp->tid_known = 1;
        pthread_mutex_unlock(&f->mu);
    }
    ret = f;
    f = NULL;
out:
    fake_free(f);
    return ret;
}

void fake_free(struct fake *f)
{
    if (f == NULL) return;
    /* The own threads first: after this, nothing runs on the fake but the
     * caller. */
    for (int i = 1; f->loops != NULL && i < f->nloops; i++) loop_stop(&f->loops[i]);
    for (int i = 0; f->loops != NULL && i < f->nloops; i++)
        if (f->loops[i].f != NULL) loop_cleanup(&f->loops[i]);
    free(f->loops);
    fake_cache_free(f->pcache);
    fake_journal_free(f->journal);
    pthread_cond_destroy(&f->cv);
    pthread_mutex_destroy(&f->mu);
    free(f);
}
