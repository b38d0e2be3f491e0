/* travel.h -- the browser half of travel mode: a service worker and a demo page the router serves.
 *
 * GET /travel/ is a small page that registers /travel/sw.js and calls the
 * router's chat endpoint with fetch. The service worker answers that
 * endpoint network first; when the network fails (the router or the
 * machine's connection is down) or the router answers 5xx, it answers from
 * the browser's Cache Storage, marked x-slodrill-travel: browser-cache, and
 * when it has nothing saved, with a JSON error in OpenAI's format. The page
 * itself is kept too, so it reloads offline. docs/cache.md. */
#ifndef SLODRILL_ROUTER_TRAVEL_H
#define SLODRILL_ROUTER_TRAVEL_H

#include <stddef.h>

struct evhttp_request;

/* Answers a request for path ("/travel" or "/travel/..."; the trailing '/'
 * already removed): the page, the worker, or 404. GET and HEAD only. */
void travel_serve(struct evhttp_request *req, const char *path);

/* The worker's and the page's text, for tests. Borrowed, static. */
const char *travel_worker_js(size_t *len);
const char *travel_page_html(size_t *len);

#endif
