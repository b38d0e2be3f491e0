/* curlev.h -- libcurl's multi_socket API driven by a libevent loop.
 *
 * One struct curlev per event loop. Add easy handles; each finishes with one
 * call of its done callback, on the loop, after which the handle is no longer
 * in the multi and the caller owns it again. Shape after curl's
 * docs/examples/multi-event.c. */
#ifndef SLODRILL_CURLEV_H
#define SLODRILL_CURLEV_H

#include <curl/curl.h>
#include "common/compiler.h"

struct event_base;
struct curlev;

/* result is CURLE_OK or the transfer's error. Called from the loop, never
 * from inside curlev_add. The callback may add or remove other handles and
 * may free this easy handle. */
typedef void (*curlev_done_cb)(CURL *easy, CURLcode result, void *arg);

/* base is borrowed and must outlive the curlev. Caller frees with
 * curlev_free. */
struct curlev *curlev_new(struct event_base *base) WUR;
/* Removes and forgets every handle still running (their callbacks are not
 * called; the caller still owns those easy handles). */
void curlev_free(struct curlev *cv);

/* Starts a transfer. The easy handle stays the caller's (curlev never frees
 * it); do not touch its options until done or curlev_remove. Uses
 * CURLOPT_PRIVATE, CURLOPT_OPENSOCKETFUNCTION and CURLOPT_CLOSESOCKETFUNCTION
 * internally (idle kept-alive sockets stay registered with the loop): do
 * not set them. 0 or -1. */
int curlev_add(struct curlev *cv, CURL *easy, curlev_done_cb cb, void *arg) WUR;

/* Cancels a running transfer without calling its callback. Safe to call for
 * a handle that is not running. Not from inside one of that handle's own
 * curl callbacks (write, header): there, return an error from the callback
 * to abort, and the done callback reports it. */
void curlev_remove(struct curlev *cv, CURL *easy);

/* Transfers running now. */
int curlev_running(const struct curlev *cv);

/* The multi handle, for options such as CURLMOPT_MAX_HOST_CONNECTIONS. */
CURLM *curlev_multi(struct curlev *cv);

/* After curl_easy_pause(easy, CURLPAUSE_CONT) from outside a curl callback,
 * call this so the loop notices soon. */
void curlev_kick(struct curlev *cv);

#endif
