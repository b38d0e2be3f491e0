/* test_router_util.h -- the router between two real fake providers, on one loop thread,
 * and a libcurl client that records what a user sees (status, headers, body, timings). */
#ifndef TEST_ROUTER_UTIL_H
#define TEST_ROUTER_UTIL_H

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/clock.h"
#include "fakeproviders/fake.h"
#include "router/router.h"

#define RW_UNUSED __attribute__((unused))
#define RW_KEY_OAI "sk-test-primary-0123456789abcd"
#define RW_KEY_ANT "sk-ant-test-secondary"

struct rw {
    struct event_base *base;
    struct fake *primary, *secondary;
    struct router_config *cfg;
    struct proxy *proxy;
    pthread_t thread;
    char url[128];
    char events[4096];
    pthread_mutex_t mu;
    struct proxy_stats stats; /* the proxy's counters, filled by rw_stop */
};

/* A fake spec with small latencies so tests stay fast. */
static RW_UNUSED void rw_spec(struct fake_spec *s, const char *name, enum fake_dialect d)
{
    fake_spec_defaults(s);
    snprintf(s->name, sizeof s->name, "%s", name);
    s->dialect = d;
    snprintf(s->key, sizeof s->key, "%s", d == FAKE_OPENAI ? RW_KEY_OAI : RW_KEY_ANT);
    s->latency.ttft_median_ms = 5;
    s->latency.ttft_p95_ms = 10;
    s->latency.tokens_per_s = 2000;
    s->latency.output_tokens_median = 8;
    s->seed = 42;
}

static RW_UNUSED void rw_on_event(const char *kind, const char *subject, const char *detail,
                                  uint64_t now_us, void *arg)
{
    struct rw *w = arg;
    size_t off;
    (void)detail;
    (void)now_us;
    pthread_mutex_lock(&w->mu);
    off = strlen(w->events);
    snprintf(w->events + off, sizeof w->events - off, "%s:%s;", kind, subject);
    pthread_mutex_unlock(&w->mu);
}

static RW_UNUSED void *rw_loop(void *arg)
{
    struct rw *w = arg;
    event_base_loop(w->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

struct rw_env {
    char p_base[128], s_base[128];
};

/* P_BASE: the primary's /v1 URL (OpenAI clients add /v1); S_BASE: the
 * secondary's root URL when it speaks Anthropic, else its /v1 URL. */
static RW_UNUSED const char *rw_env_lookup(const char *name, void *arg)
{
    struct rw_env *e = arg;
    if (!strcmp(name, "P_BASE")) return e->p_base;
    if (!strcmp(name, "S_BASE")) return e->s_base;
    if (!strcmp(name, "P_KEY")) return RW_KEY_OAI;
    if (!strcmp(name, "S_KEY")) return RW_KEY_ANT;
    return NULL;
}

/* Makes both fakes and the proxy for yaml (a LiteLLM config using
 * os.environ/P_BASE, S_BASE, P_KEY, S_KEY) on one loop, not yet running.
 * The secondary's key is RW_KEY_ANT whatever its dialect. */
static RW_UNUSED int rw_setup(struct rw *w, const char *yaml, struct fake_spec *ps,
                              struct fake_spec *ss)
{
    char path[] = "/tmp/slodrill-rw-XXXXXX";
    char err[512];
    struct rw_env env;
    struct proxy_opts opts;
    int fd;
    FILE *f;

    memset(w, 0, sizeof *w);
    pthread_mutex_init(&w->mu, NULL);
    snprintf(ss->key, sizeof ss->key, "%s", RW_KEY_ANT);
    if (!(w->base = event_base_new())) return -1;
    if (!(w->primary = fake_new(w->base, ps, err, sizeof err)) ||
        !(w->secondary = fake_new(w->base, ss, err, sizeof err))) {
        fprintf(stderr, "fake_new: %s\n", err);
        return -1;
    }
    snprintf(env.p_base, sizeof env.p_base, "%s/v1", fake_url(w->primary));
    snprintf(env.s_base, sizeof env.s_base, "%s%s", fake_url(w->secondary),
             ss->dialect == FAKE_ANTHROPIC ? "" : "/v1");
    fd = mkstemp(path);
    if (fd < 0) return -1;
    f = fdopen(fd, "w");
    fputs(yaml, f);
    fclose(f);
    w->cfg = router_config_load(path, rw_env_lookup, &env, NULL, NULL, err, sizeof err);
    unlink(path);
    if (!w->cfg) {
        fprintf(stderr, "config: %s\n", err);
        return -1;
    }
    memset(&opts, 0, sizeof opts);
    opts.seed = 7;
    opts.on_event = rw_on_event;
    opts.event_arg = w;
    if (!(w->proxy = proxy_new(w->base, w->cfg, &opts, err, sizeof err))) {
        fprintf(stderr, "proxy: %s\n", err);
        return -1;
    }
    snprintf(w->url, sizeof w->url, "http://127.0.0.1:%d", proxy_port(w->proxy));
    return 0;
}

/* Runs the loop thread (after rw_setup and any settings). */
static RW_UNUSED int rw_run(struct rw *w)
{
    return pthread_create(&w->thread, NULL, rw_loop, w) == 0 ? 0 : -1;
}

static RW_UNUSED int rw_start(struct rw *w, const char *yaml, struct fake_spec *ps,
                              struct fake_spec *ss)
{
    if (rw_setup(w, yaml, ps, ss) != 0) return -1;
    return rw_run(w);
}

static RW_UNUSED void rw_stop(struct rw *w)
{
    event_base_loopbreak(w->base);
    pthread_join(w->thread, NULL);
    proxy_stats_get(w->proxy, &w->stats);
    proxy_free(w->proxy);
    fake_free(w->primary);
    fake_free(w->secondary);
    router_config_free(w->cfg);
    event_base_free(w->base);
    pthread_mutex_destroy(&w->mu);
}

static RW_UNUSED void rw_global_init(void)
{
    signal(SIGPIPE, SIG_IGN);
    evthread_use_pthreads();
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- the client ---- */

#define RW_MAX_BODY (4u << 20)

struct rw_reply {
    long status;
    CURLcode result;
    char headers[16384];
    char *body; /* NUL-terminated; freed by rw_reply_free */
    size_t blen;
    double total_s;
};

static RW_UNUSED size_t rw_hdr_cb(char *ptr, size_t size, size_t n, void *arg)
{
    struct rw_reply *r = arg;
    size_t len = size * n, off = strlen(r->headers);
    if (off + len < sizeof r->headers) {
        memcpy(r->headers + off, ptr, len);
        r->headers[off + len] = '\0';
    }
    return len;
}

static RW_UNUSED size_t rw_body_cb(char *ptr, size_t size, size_t n, void *arg)
{
    struct rw_reply *r = arg;
    size_t len = size * n;
    char *nb;
    if (r->blen + len > RW_MAX_BODY) return 0;
    nb = realloc(r->body, r->blen + len + 1);
    if (!nb) return 0;
    r->body = nb;
    memcpy(r->body + r->blen, ptr, len);
    r->blen += len;
    r->body[r->blen] = '\0';
    return len;
}

static RW_UNUSED void rw_reply_free(struct rw_reply *r)
{
    free(r->body);
    r->body = NULL;
}

/* POST body (or GET when NULL) to w's path; extra is one more header line
 * or NULL. Bounded at timeout_ms. */
static RW_UNUSED void rw_request(struct rw *w, const char *path, const char *body,
                                 const char *extra, long timeout_ms, struct rw_reply *r)
{
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    char url[256];
    uint64_t t0 = clock_mono_us();

    memset(r, 0, sizeof *r);
    r->body = calloc(1, 1);
    snprintf(url, sizeof url, "%s%s", w->url, path);
    h = curl_slist_append(h, "Content-Type: application/json");
    if (extra) h = curl_slist_append(h, extra);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    if (body) curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, rw_hdr_cb);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, rw_body_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    r->result = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    r->total_s = (double)(clock_mono_us() - t0) / 1e6;
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
}

/* A response header's value ("" when absent). */
static RW_UNUSED const char *rw_hdr(const struct rw_reply *r, const char *name, char *out,
                                    size_t outlen)
{
    const char *p = r->headers;
    size_t n = strlen(name);
    out[0] = '\0';
    while ((p = strcasestr(p, name)) != NULL) {
        if ((p == r->headers || p[-1] == '\n') && p[n] == ':') {
            const char *v = p + n + 1;
            size_t k;
            while (*v == ' ') v++;
            k = strcspn(v, "\r\n");
            if (k >= outlen) k = outlen - 1;
            memcpy(out, v, k);
            out[k] = '\0';
            break;
        }
        p += n;
    }
    return out;
}

/* The data: payloads of an SSE body, in order, as a JSON array of parsed
 * objects; "[DONE]" is the string "[DONE]"; a payload that is not JSON is
 * the JSON null. Caller frees with cJSON_Delete. */
static RW_UNUSED cJSON *rw_sse_data(const char *body)
{
    cJSON *arr = cJSON_CreateArray();
    const char *p = body;
    while (p && *p) {
        const char *eol = strchr(p, '\n');
        size_t n = eol ? (size_t)(eol - p) : strlen(p);
        if (n >= 6 && !strncmp(p, "data: ", 6)) {
            if (n - 6 == 6 && !strncmp(p + 6, "[DONE]", 6)) {
                cJSON_AddItemToArray(arr, cJSON_CreateString("[DONE]"));
            } else {
                cJSON *j = cJSON_ParseWithLength(p + 6, n - 6);
                cJSON_AddItemToArray(arr, j ? j : cJSON_CreateNull());
            }
        }
        p = eol ? eol + 1 : NULL;
    }
    return arr;
}

#endif
