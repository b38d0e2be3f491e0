/* travel.c -- serves the travel-mode service worker and its demo page (texts in this file).
 *
 * DESIGN: the two texts are C string literals so the router stays one
 * binary with nothing to install beside it. The worker is the whole of the
 * browser half: it keys a saved answer by a SHA-256 of who asks
 * (authorization, x-tenant-id, x-feature) and the request body's members
 * (less stream_options, user, metadata, store), since Cache Storage keys
 * are GET URLs and chat requests are POSTs. Both are sent with
 * Cache-Control: no-cache so a browser picks up a new worker at once. */
#include "router/travel.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <string.h>

static const char travel_sw[] =
    "/* slodrill travel mode, the browser half: a service worker that answers the\n"
    " * router's chat endpoint from this browser's Cache Storage when the network\n"
    " * fails. Network first; a saved answer when the router cannot be reached or\n"
    " * answers 5xx; a JSON error in OpenAI's format when there is neither. */\n"
    "'use strict';\n"
    "const CACHE = 'slodrill-travel-v1';\n"
    "const CHAT = /\\/(v1\\/)?chat\\/completions$/;\n"
    "const MAX_SAVED = 1048576; /* bytes: larger answers are not saved */\n"
    "\n"
    "self.addEventListener('install', (ev) => {\n"
    "  ev.waitUntil(caches.open(CACHE)\n"
    "    .then((c) => c.add(new URL('/travel/', self.location).href))\n"
    "    .catch(() => undefined)\n"
    "    .then(() => self.skipWaiting()));\n"
    "});\n"
    "\n"
    "self.addEventListener('activate', (ev) => {\n"
    "  ev.waitUntil(caches.keys()\n"
    "    .then((names) => Promise.all(names.filter((n) => n.startsWith('slodrill-travel-') && n !== CACHE)\n"
    "      .map((n) => caches.delete(n))))\n"
    "    .then(() => self.clients.claim()));\n"
    "});\n"
    "\n"
    "self.addEventListener('fetch', (ev) => {\n"
    "  const req = ev.request;\n"
    "  const url = new URL(req.url);\n"
    "  if (url.origin !== self.location.origin) return;\n"
    "  if (req.method === 'POST' && CHAT.test(url.pathname)) {\n"
    "    ev.respondWith(chat(ev, req));\n"
    "  } else if (req.method === 'GET' && req.mode === 'navigate') {\n"
    "    ev.respondWith(page(req));\n"
    "  }\n"
    "});\n"
    "\n"
    "/* The page: network first, the saved copy offline. */\n"
    "async function page(req) {\n"
    "  const key = req.url.split('#')[0].split('?')[0];\n"
    "  try {\n"
    "    const res = await fetch(req);\n"
    "    if (res.ok) {\n"
    "      const c = await caches.open(CACHE);\n"
    "      await c.put(key, res.clone());\n"
    "    }\n"
    "    return res;\n"
    "  } catch (e) {\n"
    "    const saved = await caches.match(key);\n"
    "    if (saved) return saved;\n"
    "    return new Response('slodrill travel mode: offline, and this page was never saved.\\n',\n"
    "      { status: 503, headers: { 'content-type': 'text/plain; charset=utf-8' } });\n"
    "  }\n"
    "}\n"
    "\n"
    "/* What decides an answer: who asks (key, tenant, feature) and every request\n"
    " * member but the ones that only shape delivery or bookkeeping. */\n"
    "async function keyOf(req, text) {\n"
    "  let body = null;\n"
    "  try { body = JSON.parse(text); } catch (e) { body = text; }\n"
    "  const keep = {};\n"
    "  if (body && typeof body === 'object' && !Array.isArray(body)) {\n"
    "    for (const k of Object.keys(body).sort()) {\n"
    "      if (!['stream_options', 'user', 'metadata', 'store'].includes(k)) keep[k] = body[k];\n"
    "    }\n"
    "  }\n"
    "  const who = [req.headers.get('authorization') || '', req.headers.get('x-tenant-id') || '',\n"
    "    req.headers.get('x-feature') || ''];\n"
    "  const bytes = new TextEncoder().encode(JSON.stringify([who, keep]));\n"
    "  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));\n"
    "  const hex = Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');\n"
    "  return new URL('/travel/saved/' + hex, self.location).href;\n"
    "}\n"
    "\n"
    "async function save(key, res) {\n"
    "  const blob = await res.blob();\n"
    "  if (blob.size > MAX_SAVED) return;\n"
    "  const h = new Headers(res.headers);\n"
    "  h.set('x-slodrill-saved-at', new Date().toISOString());\n"
    "  const c = await caches.open(CACHE);\n"
    "  await c.put(key, new Response(blob, { status: 200, headers: h }));\n"
    "}\n"
    "\n"
    "async function chat(ev, req) {\n"
    "  const text = await req.clone().text();\n"
    "  const key = await keyOf(req, text);\n"
    "  let res = null;\n"
    "  let why = '';\n"
    "  try {\n"
    "    res = await fetch(req);\n"
    "  } catch (e) {\n"
    "    why = 'the router could not be reached (' + ((e && e.message) || String(e)) + ')';\n"
    "  }\n"
    "  if (res && res.status < 500) {\n"
    "    if (res.ok) ev.waitUntil(save(key, res.clone()).catch(() => undefined));\n"
    "    return res;\n"
    "  }\n"
    "  if (res) why = 'the router answered HTTP ' + res.status;\n"
    "  const saved = await caches.match(key);\n"
    "  if (saved) {\n"
    "    const h = new Headers(saved.headers);\n"
    "    h.set('x-slodrill-travel', 'browser-cache');\n"
    "    h.set('x-slodrill-travel-reason', why.replace(/[^\\x20-\\x7e]/g, '?'));\n"
    "    h.set('x-slodrill-cache', 'browser');\n"
    "    return new Response(await saved.blob(), { status: 200, headers: h });\n"
    "  }\n"
    "  if (res) return res; /* the router's own error says more than ours */\n"
    "  const error = {\n"
    "    message: 'Travel mode: ' + why + ', and this browser has no saved answer for this ' +\n"
    "      'request. Ask again once the router is reachable.',\n"
    "    type: 'travel_mode_offline', param: null, code: 'no_saved_answer',\n"
    "  };\n"
    "  return new Response(JSON.stringify({ error }), {\n"
    "    status: 503,\n"
    "    headers: { 'content-type': 'application/json', 'x-slodrill-travel': 'miss' },\n"
    "  });\n"
    "}\n";

static const char travel_page[] =
    "<!doctype html>\n"
    "<html lang=\"en\">\n"
    "<head>\n"
    "<meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<title>slodrill travel mode</title>\n"
    "<style>\n"
    "body { font: 15px/1.4 system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem; }\n"
    "label { display: block; margin-top: .6rem; font-weight: 600; }\n"
    "input, textarea { width: 100%; box-sizing: border-box; font: inherit; padding: .3rem; }\n"
    "button { margin-top: .8rem; font: inherit; padding: .3rem 1rem; }\n"
    "#state { color: #555; }\n"
    "#source { margin-top: 1rem; font-weight: 600; }\n"
    "#source.saved { color: #8a5a00; }\n"
    "#source.offline { color: #a00; }\n"
    "pre { white-space: pre-wrap; background: #f4f4f4; padding: .6rem; }\n"
    "</style>\n"
    "</head>\n"
    "<body>\n"
    "<h1>slodrill travel mode</h1>\n"
    "<p id=\"state\">Starting the service worker&hellip;</p>\n"
    "<p>Questions go to this router's <code>/v1/chat/completions</code>. Answers are saved in this\n"
    "browser; when the router cannot be reached, a saved answer to the same question is shown,\n"
    "marked as such.</p>\n"
    "<form id=\"ask\">\n"
    "<label for=\"model\">Model alias</label>\n"
    "<input id=\"model\" value=\"app/chat\">\n"
    "<label for=\"key\">API key (the router's master_key, if it has one)</label>\n"
    "<input id=\"key\" type=\"password\" autocomplete=\"off\">\n"
    "<label for=\"prompt\">Question</label>\n"
    "<textarea id=\"prompt\" rows=\"3\">Where is my order?</textarea>\n"
    "<button type=\"submit\">Ask</button>\n"
    "</form>\n"
    "<p id=\"source\"></p>\n"
    "<pre id=\"answer\"></pre>\n"
    "<script>\n"
    "'use strict';\n"
    "const state = document.getElementById('state');\n"
    "window.slodrillReady = (async () => {\n"
    "  if (!('serviceWorker' in navigator)) {\n"
    "    state.textContent = 'This browser has no service workers: no travel mode here.';\n"
    "    return false;\n"
    "  }\n"
    "  await navigator.serviceWorker.register('/travel/sw.js', { scope: '/travel/' });\n"
    "  await navigator.serviceWorker.ready;\n"
    "  if (!navigator.serviceWorker.controller) {\n"
    "    await new Promise((ok) => navigator.serviceWorker.addEventListener('controllerchange', ok,\n"
    "      { once: true }));\n"
    "  }\n"
    "  state.textContent = 'Travel mode is on: answers are saved in this browser.';\n"
    "  return true;\n"
    "})().catch((e) => { state.textContent = 'Travel mode is off: ' + e.message; return false; });\n"
    "\n"
    "/* One question; what a person sees, as data (the tests read it too). */\n"
    "async function ask(prompt, model, key) {\n"
    "  const headers = { 'content-type': 'application/json' };\n"
    "  if (key) headers.authorization = 'Bearer ' + key;\n"
    "  const res = await fetch('/v1/chat/completions', {\n"
    "    method: 'POST', headers,\n"
    "    body: JSON.stringify({ model, messages: [{ role: 'user', content: prompt }] }),\n"
    "  });\n"
    "  const out = {\n"
    "    status: res.status,\n"
    "    travel: res.headers.get('x-slodrill-travel') || '',\n"
    "    cache: res.headers.get('x-slodrill-cache') || '',\n"
    "    savedAt: res.headers.get('x-slodrill-saved-at') || '',\n"
    "    deployment: res.headers.get('x-slodrill-deployment') || '',\n"
    "    text: '', error: '',\n"
    "  };\n"
    "  let body = null;\n"
    "  try { body = await res.json(); } catch (e) { out.error = 'not JSON: ' + e.message; }\n"
    "  if (body && body.error) out.error = body.error.message || JSON.stringify(body.error);\n"
    "  if (body && body.choices && body.choices[0] && body.choices[0].message)\n"
    "    out.text = body.choices[0].message.content || '';\n"
    "  if (out.travel === 'browser-cache')\n"
    "    out.source = 'Saved answer from this browser (saved ' + out.savedAt + '): the router could not answer.';\n"
    "  else if (out.travel === 'miss')\n"
    "    out.source = 'Offline, and nothing saved for this question.';\n"
    "  else if (out.cache === 'hit' || out.cache === 'stale')\n"
    "    out.source = 'From the router\\'s cache (' + out.cache + ').';\n"
    "  else if (res.ok)\n"
    "    out.source = 'From the router (' + (out.deployment || 'unknown deployment') + ').';\n"
    "  else\n"
    "    out.source = 'The router answered HTTP ' + res.status + '.';\n"
    "  return out;\n"
    "}\n"
    "window.slodrillAsk = ask;\n"
    "\n"
    "document.getElementById('ask').addEventListener('submit', async (ev) => {\n"
    "  ev.preventDefault();\n"
    "  const src = document.getElementById('source');\n"
    "  const ans = document.getElementById('answer');\n"
    "  src.textContent = 'Asking\\u2026';\n"
    "  src.className = '';\n"
    "  ans.textContent = '';\n"
    "  try {\n"
    "    const r = await ask(document.getElementById('prompt').value,\n"
    "      document.getElementById('model').value, document.getElementById('key').value);\n"
    "    src.textContent = r.source;\n"
    "    src.className = r.travel === 'browser-cache' ? 'saved' : r.travel === 'miss' ? 'offline' : '';\n"
    "    ans.textContent = r.text || r.error;\n"
    "  } catch (e) {\n"
    "    src.textContent = 'Failed: ' + e.message;\n"
    "    src.className = 'offline';\n"
    "  }\n"
    "});\n"
    "</script>\n"
    "</body>\n"
    "</html>\n";

const char *travel_worker_js(size_t *len)
{
    if (len)
        *len = sizeof travel_sw - 1;
    return travel_sw;
}

const char *travel_page_html(size_t *len)
{
    if (len)
        *len = sizeof travel_page - 1;
    return travel_page;
}

static void travel_reply(struct evhttp_request *req, int status, const char *type,
                         const char *body, size_t len)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    struct evbuffer *out = evbuffer_new();
    evhttp_add_header(h, "Content-Type", type);
    evhttp_add_header(h, "Cache-Control", "no-cache");
    evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
    if (out && evhttp_request_get_command(req) != EVHTTP_REQ_HEAD)
        evbuffer_add(out, body, len);
    evhttp_send_reply(req, status, NULL, out);
    if (out)
        evbuffer_free(out);
}

void travel_serve(struct evhttp_request *req, const char *path)
{
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    const char *uri = evhttp_request_get_uri(req);
    static const char notfound[] = "{\"error\":{\"message\":\"no such travel-mode file; the page "
                                   "is /travel/\",\"type\":\"invalid_request_error\","
                                   "\"param\":null,\"code\":\"not_found\"}}";

    if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
        static const char only[] = "{\"error\":{\"message\":\"use GET\",\"type\":"
                                   "\"invalid_request_error\",\"param\":null,\"code\":null}}";
        travel_reply(req, 405, "application/json", only, sizeof only - 1);
        return;
    }
    if (!strcmp(path, "/travel")) {
        /* the worker's scope is /travel/: the page must be under it */
        if (uri && strncmp(uri, "/travel/", 8) != 0) {
            evhttp_add_header(evhttp_request_get_output_headers(req), "Location", "/travel/");
            travel_reply(req, 301, "text/plain; charset=utf-8", "/travel/\n", 9);
            return;
        }
        travel_reply(req, 200, "text/html; charset=utf-8", travel_page, sizeof travel_page - 1);
    } else if (!strcmp(path, "/travel/index.html")) {
        travel_reply(req, 200, "text/html; charset=utf-8", travel_page, sizeof travel_page - 1);
    } else if (!strcmp(path, "/travel/sw.js")) {
        travel_reply(req, 200, "text/javascript; charset=utf-8", travel_sw, sizeof travel_sw - 1);
    } else {
        travel_reply(req, 404, "application/json", notfound, sizeof notfound - 1);
    }
}
