/* curlev.c -- libcurl's multi_socket API driven by a libevent loop.
 *
 * DESIGN: curl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION) and
 * when to call it back (CURLMOPT_TIMERFUNCTION); libevent tells curl when a
 * socket is ready. Per-socket context hangs off curl's socket pointer and is
 * freed on CURL_POLL_REMOVE. A timeout of 0 is never acted on inside curl's
 * callback: it makes the timer event active, so curl runs again once it has
 * returned, in the same loop turn (a zero-delay timer cost a turn: an
 * epoll_wait before every new transfer went out); after a few such runs in a
 * row with no socket event between them, a zero-delay timer again, so one
 * busy transfer cannot keep the loop from polling. Finished
 * transfers are collected after every socket_action and their done
 * callbacks run after curl has returned.
 *
 * Kept-alive connections cost no epoll_ctl per transfer (measured by the
 * router benchmark, docs/performance.md): a socket curl lets go of
 * (CURL_POLL_REMOVE: its connection went back to curl's cache) stays
 * registered with the loop, parked, until the next transfer takes the
 * connection again. curl's sockets are opened and closed through
 * CURLOPT_OPENSOCKETFUNCTION / CLOSESOCKETFUNCTION, so a parked one is let go
 * of before its descriptor is closed; a parked socket that turns readable
 * (the peer closed it) is let go of at once. */
#include "common/curlev.h"

#include <event2/event.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"

struct sockctx;

struct curlev {
    struct event_base *base;
    CURLM *multi;
    struct event *timer;
    int running;
    int in_check;
    int count;
    int zero_runs;      /* timeouts of 0 run at once since the last socket event */
    struct xfer *xfers; /* every transfer added and not yet done */
    /* by descriptor, the sockets curl opened through us (cv_open) */
    struct sockslot *socks;
    size_t nsocks;
};

struct sockslot {
    struct sockctx *sc; /* its context, also while parked */
    int ours;           /* opened by cv_open: its close comes through cv_close */
};

/* What curlev keeps per transfer, reached through CURLOPT_PRIVATE. */
struct xfer {
    curlev_done_cb cb;
    void *arg;
    CURL *easy;
    struct xfer *prev, *next;
};

static void xfer_unlink(struct curlev *cv, struct xfer *x)
{
    if (x->prev) x->prev->next = x->next;
    else cv->xfers = x->next;
    if (x->next) x->next->prev = x->prev;
    cv->count--;
}

struct sockctx {
    struct curlev *cv;
    curl_socket_t fd;
    struct event *ev;
    short kind;  /* what ev waits for (EV_READ, EV_WRITE, EV_PERSIST) */
    int parked;  /* curl let go of it; the socket is open, kept for reuse */
};

static struct sockslot *cv_slot(struct curlev *cv, curl_socket_t s, int grow)
{
    if (s < 0)
        return NULL;
    if ((size_t)s >= cv->nsocks) {
        size_t n = cv->nsocks ? cv->nsocks : 64, i;
        struct sockslot *ns;
        if (!grow)
            return NULL;
        while (n <= (size_t)s)
            n *= 2;
        if (!(ns = realloc(cv->socks, n * sizeof *ns)))
            return NULL;
        for (i = cv->nsocks; i < n; i++) {
            ns[i].sc = NULL;
            ns[i].ours = 0;
        }
        cv->socks = ns;
        cv->nsocks = n;
    }
    return &cv->socks[s];
}

static void sockctx_free(struct curlev *cv, struct sockctx *sc)
{
    struct sockslot *sl = cv_slot(cv, sc->fd, 0);
    if (sl && sl->sc == sc)
        sl->sc = NULL;
    if (sc->ev)
        event_free(sc->ev);
    free(sc);
}

/* CURLOPT_OPENSOCKETFUNCTION: a socket as curl would open it, noted as ours. */
static curl_socket_t cv_open(void *clientp, curlsocktype purpose, struct curl_sockaddr *a)
{
    struct curlev *cv = clientp;
    curl_socket_t s;
    struct sockslot *sl;
    (void)purpose;
    s = socket(a->family, a->socktype, a->protocol);
    if (s != CURL_SOCKET_BAD && (sl = cv_slot(cv, s, 1)) != NULL) {
        if (sl->sc) /* a stale context (cannot happen: closes come through cv_close) */
            sockctx_free(cv, sl->sc);
        sl->ours = 1;
    }
    return s;
}

/* CURLOPT_CLOSESOCKETFUNCTION: lets go of a parked socket before closing it. */
static int cv_close(void *clientp, curl_socket_t s)
{
    struct curlev *cv = clientp;
    struct sockslot *sl = cv_slot(cv, s, 0);
    if (sl) {
        if (sl->sc)
            sockctx_free(cv, sl->sc);
        sl->ours = 0;
    }
    return close(s);
}

/* The easy handle is out of the multi: it is the caller's again, without
 * our options. */
static void easy_release(CURL *easy)
{
    curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
    curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, NULL);
    curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, NULL);
    curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION, NULL);
    curl_easy_setopt(easy, CURLOPT_CLOSESOCKETDATA, NULL);
}

/* One ended transfer: out of the multi, then its callback. */
static void finish(struct curlev *cv, CURL *easy, CURLcode res)
{
    struct xfer *x = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
    curl_multi_remove_handle(cv->multi, easy);
    easy_release(easy);
    if (x) {
        curlev_done_cb cb = x->cb;
        void *arg = x->arg;
        xfer_unlink(cv, x);
        free(x);
        cb(easy, res, arg);
    }
}

static void check_done(struct curlev *cv)
{
    CURLMsg *msg;
    int left;

    if (cv->in_check) return;
    cv->in_check = 1;
    while ((msg = curl_multi_info_read(cv->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE) continue;
        finish(cv, msg->easy_handle, msg->data.result);
    }
    cv->in_check = 0;
}

static void on_socket(evutil_socket_t fd, short what, void *arg)
{
    struct sockctx *sc = arg;
    struct curlev *cv = sc->cv;
    int flags = 0;
    if (sc->parked) {
        /* an idle kept-alive connection turned readable: the peer closed it
         * (curl finds out when it next looks); stop watching it */
        event_free(sc->ev);
        sc->ev = NULL;
        sc->kind = 0;
        return;
    }
    if (what & EV_READ) flags |= CURL_CSELECT_IN;
    if (what & EV_WRITE) flags |= CURL_CSELECT_OUT;
    cv->zero_runs = 0;
    curl_multi_socket_action(cv->multi, fd, flags, &cv->running);
    check_done(cv);
    if (cv->running <= 0 && evtimer_pending(cv->timer, NULL)) evtimer_del(cv->timer);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct curlev *cv = arg;
    (void)fd;
    (void)what;
    curl_multi_socket_action(cv->multi, CURL_SOCKET_TIMEOUT, 0, &cv->running);
    check_done(cv);
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    struct curlev *cv = userp;
    (void)multi;
    if (timeout_ms < 0) {
        evtimer_del(cv->timer);
    } else if (timeout_ms == 0 && cv->zero_runs < 4) {
        /* after curl returns, in this loop turn: active, not a zero timer */
        cv->zero_runs++;
        evtimer_del(cv->timer);
        event_active(cv->timer, EV_TIMEOUT, 0);
    } else {
        struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
        evtimer_add(cv->timer, &tv);
    }
    return 0;
}

static int socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    struct curlev *cv = userp;
    struct sockctx *sc = socketp;
    struct sockslot *sl = cv_slot(cv, s, 0);
    short kind = EV_PERSIST;
    (void)easy;

    if (what == CURL_POLL_REMOVE) {
        if (sc) {
            curl_multi_assign(cv->multi, s, NULL);
            if (sl && sl->ours && sl->sc == sc && sc->ev)
                sc->parked = 1; /* cv_close lets go of it, or the next transfer takes it */
            else
                sockctx_free(cv, sc);
        }
        return 0;
    }
    if (what & CURL_POLL_IN) kind |= EV_READ;
    if (what & CURL_POLL_OUT) kind |= EV_WRITE;
    if (sc == NULL && sl && sl->sc) { /* a parked socket taken again */
        sc = sl->sc;
        sc->parked = 0;
        curl_multi_assign(cv->multi, s, sc);
    }
    if (sc == NULL) {
        sc = calloc(1, sizeof *sc);
        if (sc == NULL) return -1;
        sc->cv = cv;
        sc->fd = s;
        curl_multi_assign(cv->multi, s, sc);
        if (sl && sl->ours)
            sl->sc = sc;
    }
    if (sc->ev && sc->kind == kind)
        return 0; /* already waiting for just that */
    if (sc->ev) {
        event_free(sc->ev);
        sc->ev = NULL;
    }
    sc->kind = kind;
    sc->ev = event_new(cv->base, s, kind, on_socket, sc);
    if (sc->ev == NULL || event_add(sc->ev, NULL) != 0) return -1;
    return 0;
}

struct curlev *curlev_new(struct event_base *base)
{
    struct curlev *cv = calloc(1, sizeof *cv);
    if (cv == NULL) return NULL;
    cv->base = base;
    cv->multi = curl_multi_init();
    cv->timer = evtimer_new(base, on_timer, cv);
    if (cv->multi == NULL || cv->timer == NULL) {
        curlev_free(cv);
        return NULL;
    }
    curl_multi_setopt(cv->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(cv->multi, CURLMOPT_SOCKETDATA, cv);
    curl_multi_setopt(cv->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(cv->multi, CURLMOPT_TIMERDATA, cv);
    return cv;
}

void curlev_free(struct curlev *cv)
{
    size_t i;
    if (cv == NULL) return;
    while (cv->xfers) curlev_remove(cv, cv->xfers->easy);
    if (cv->multi) curl_multi_cleanup(cv->multi); /* closes the cache through cv_close */
    for (i = 0; i < cv->nsocks; i++)
        if (cv->socks[i].sc) sockctx_free(cv, cv->socks[i].sc);
    if (cv->timer) event_free(cv->timer);
    free(cv->socks);
    free(cv);
}

int curlev_add(struct curlev *cv, CURL *easy, curlev_done_cb cb, void *arg)
{
    struct xfer *x = calloc(1, sizeof *x);
    if (x == NULL) return -1;
    x->cb = cb;
    x->arg = arg;
    x->easy = easy;
    curl_easy_setopt(easy, CURLOPT_PRIVATE, x);
    curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, cv_open);
    curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, cv);
    curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION, cv_close);
    curl_easy_setopt(easy, CURLOPT_CLOSESOCKETDATA, cv);
    if (curl_multi_add_handle(cv->multi, easy) != CURLM_OK) {
        easy_release(easy);
        free(x);
        return -1;
    }
    x->next = cv->xfers;
    if (cv->xfers) cv->xfers->prev = x;
    cv->xfers = x;
    cv->count++;
    return 0;
}

void curlev_remove(struct curlev *cv, CURL *easy)
{
    struct xfer *x = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
    if (x == NULL) return;
    curl_multi_remove_handle(cv->multi, easy);
    easy_release(easy);
    xfer_unlink(cv, x);
    free(x);
}

int curlev_running(const struct curlev *cv) { return cv->count; }

CURLM *curlev_multi(struct curlev *cv) { return cv->multi; }

void curlev_kick(struct curlev *cv)
{
    struct timeval tv = {0, 0};
    evtimer_add(cv->timer, &tv);
}
