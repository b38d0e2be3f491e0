/* curlev.c -- libcurl's multi_socket API driven by a libevent loop.
 *
 * DESIGN: curl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION) and
 * when to call it back (CURLMOPT_TIMERFUNCTION); libevent tells curl when a
 * socket is ready. Per-socket context hangs off curl's socket pointer and is
 * freed on CURL_POLL_REMOVE. A timeout of 0 is never acted on inside curl's
 * callback: it arms a zero-delay timer, so curl is not re-entered. Finished
 * transfers are collected after every socket_action and their done
 * callbacks run after curl has returned. */
#include "common/curlev.h"

#include <event2/event.h>
#include <stdlib.h>

#include "common/log.h"

struct curlev {
    struct event_base *base;
    CURLM *multi;
    struct event *timer;
    int running;
    int in_check;
    int count;
    struct xfer *xfers; /* every transfer added and not yet done */
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
};

static void check_done(struct curlev *cv)
{
    CURLMsg *msg;
    int left;

    if (cv->in_check) return;
    cv->in_check = 1;
    while ((msg = curl_multi_info_read(cv->multi, &left)) != NULL) {
        CURL *easy;
        CURLcode res;
        struct xfer *x = NULL;
        if (msg->msg != CURLMSG_DONE) continue;
        easy = msg->easy_handle;
        res = msg->data.result;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
        curl_multi_remove_handle(cv->multi, easy);
        curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
        if (x) {
            curlev_done_cb cb = x->cb;
            void *arg = x->arg;
            xfer_unlink(cv, x);
            free(x);
            cb(easy, res, arg);
        }
    }
    cv->in_check = 0;
}

static void on_socket(evutil_socket_t fd, short what, void *arg)
{
    struct curlev *cv = arg;
    int flags = 0;
    if (what & EV_READ) flags |= CURL_CSELECT_IN;
    if (what & EV_WRITE) flags |= CURL_CSELECT_OUT;
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
    (void)easy;

    if (what == CURL_POLL_REMOVE) {
        if (sc) {
            event_free(sc->ev);
            free(sc);
            curl_multi_assign(cv->multi, s, NULL);
        }
        return 0;
    }
    if (sc == NULL) {
        sc = calloc(1, sizeof *sc);
        if (sc == NULL) return -1;
        sc->cv = cv;
        sc->fd = s;
        curl_multi_assign(cv->multi, s, sc);
    } else {
        event_free(sc->ev);
        sc->ev = NULL;
    }
    {
        short kind = EV_PERSIST;
        if (what & CURL_POLL_IN) kind |= EV_READ;
        if (what & CURL_POLL_OUT) kind |= EV_WRITE;
        sc->ev = event_new(cv->base, s, kind, on_socket, cv);
        if (sc->ev == NULL || event_add(sc->ev, NULL) != 0) return -1;
    }
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
    if (cv == NULL) return;
    while (cv->xfers) curlev_remove(cv, cv->xfers->easy);
    if (cv->multi) curl_multi_cleanup(cv->multi);
    if (cv->timer) event_free(cv->timer);
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
    if (curl_multi_add_handle(cv->multi, easy) != CURLM_OK) {
        curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
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
    curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
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
