/* test_fakeproviders_util.h -- helpers the fake provider tests share: a fake
 * on its own loop thread, and a libcurl easy client that records what a user
 * of the API would see (status, headers, bytes, timings, curl's verdict). */
#ifndef TEST_FAKEPROVIDERS_UTIL_H
#define TEST_FAKEPROVIDERS_UTIL_H

#include <curl/curl.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/clock.h"
#include "fakeproviders/fake.h"

#define TU_UNUSED __attribute__((unused))

struct tsrv {
    struct event_base *base;
    struct fake *f;
    pthread_t th;
    int running;
};

static TU_UNUSED void *tsrv_main(void *arg)
{
    struct tsrv *s = arg;
    event_base_loop(s->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

static TU_UNUSED void tsrv_global_init(void)
{
    static int done;
    if (done) return;
    done = 1;
    signal(SIGPIPE, SIG_IGN);
    evthread_use_pthreads();
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* A spec with small latencies so tests stay fast. */
static TU_UNUSED void tsrv_spec(struct fake_spec *s, const char *name, enum fake_dialect d)
{
    fake_spec_defaults(s);
    snprintf(s->name, sizeof s->name, "%s", name);
    s->dialect = d;
    snprintf(s->key, sizeof s->key, "%s",
             d == FAKE_OPENAI ? "sk-test-primary-0123456789abcd" : "sk-ant-test-secondary");
    s->latency.ttft_median_ms = 5;
    s->latency.ttft_p95_ms = 10;
    s->latency.tokens_per_s = 1000;
    s->latency.output_tokens_median = 8;
    s->seed = 42;
    s->fixed_created = 1755137933;
}

static TU_UNUSED int tsrv_start(struct tsrv *s, const struct fake_spec *spec)
{
    char err[256];
    tsrv_global_init();
    memset(s, 0, sizeof *s);
    s->base = event_base_new();
    if (s->base == NULL) return -1;
    s->f = fake_new(s->base, spec, err, sizeof err);
    if (s->f == NULL) {
        fprintf(stderr, "fake_new: %s\n", err);
        event_base_free(s->base);
        return -1;
    }
    if (pthread_create(&s->th, NULL, tsrv_main, s) != 0) return -1;
    s->running = 1;
    return 0;
}

static TU_UNUSED void tsrv_stop(struct tsrv *s)
{
    if (s->running) {
        /* loopexit, not loopbreak: a break asked before the thread enters
         * the loop is forgotten; the exit is an event that waits for it. */
        event_base_loopexit(s->base, NULL);
        pthread_join(s->th, NULL);
        s->running = 0;
    }
    fake_free(s->f);
    s->f = NULL;
    if (s->base) event_base_free(s->base);
    s->base = NULL;
}

struct resp {
    long status;
    CURLcode cc;
    char *body;
    size_t len;
    char *headers;
    size_t hlen;
    double t_headers_ms, t_first_byte_ms, t_total_ms;
    uint64_t t0;
};

static TU_UNUSED size_t resp_write(char *p, size_t sz, size_t n, void *arg)
{
    struct resp *r = arg;
    size_t k = sz * n;
    char *nb;
    if (r->len == 0 && k > 0) r->t_first_byte_ms = (double)(clock_mono_us() - r->t0) / 1000.0;
    nb = realloc(r->body, r->len + k + 1);
    if (nb == NULL) return 0;
    r->body = nb;
    memcpy(r->body + r->len, p, k);
    r->len += k;
    r->body[r->len] = '\0';
    return k;
}

static TU_UNUSED size_t resp_header(char *p, size_t sz, size_t n, void *arg)
{
    struct resp *r = arg;
    size_t k = sz * n;
    char *nb = realloc(r->headers, r->hlen + k + 1);
    if (nb == NULL) return 0;
    r->headers = nb;
    memcpy(r->headers + r->hlen, p, k);
    r->hlen += k;
    r->headers[r->hlen] = '\0';
    if (k == 2 && p[0] == '\r') r->t_headers_ms = (double)(clock_mono_us() - r->t0) / 1000.0;
    return k;
}

static TU_UNUSED void resp_free(struct resp *r)
{
    free(r->body);
    free(r->headers);
    memset(r, 0, sizeof *r);
}

/* The value of header name (case-insensitive) into out; 0 if found. */
static TU_UNUSED int resp_hdr(const struct resp *r, const char *name, char *out, size_t outlen)
{
    const char *p = r->headers;
    size_t nl = strlen(name);
    while (p != NULL && *p) {
        const char *e = strstr(p, "\r\n");
        if (e == NULL) break;
        if ((size_t)(e - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ') v++;
            snprintf(out, outlen, "%.*s", (int)(e - v), v);
            return 0;
        }
        p = e + 2;
    }
    return -1;
}

/* One request. method NULL = POST when body != NULL, else GET. hdrs: a
 * NULL-terminated list of "Name: value". timeout_ms bounds the whole call. */
static TU_UNUSED void http_do(struct resp *r, const char *url, const char *method, const char *body,
                    const char *const *hdrs, long timeout_ms)
{
    CURL *c = curl_easy_init();
    struct curl_slist *sl = NULL;
    memset(r, 0, sizeof *r);
    r->t0 = clock_mono_us();
    for (int i = 0; hdrs != NULL && hdrs[i] != NULL; i++) sl = curl_slist_append(sl, hdrs[i]);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, resp_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, resp_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, sl);
    if (body != NULL) curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    if (method != NULL) curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    r->cc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    r->t_total_ms = (double)(clock_mono_us() - r->t0) / 1000.0;
    curl_easy_cleanup(c);
    curl_slist_free_all(sl);
    if (r->body == NULL) {
        r->body = calloc(1, 1);
    }
}

/* Reads a golden file under tests/data/ (caller frees). */
static char *read_golden(const char *name, size_t *len)
{
    char path[512];
    FILE *fp;
    char *data = NULL;
    long n;
    snprintf(path, sizeof path, "tests/data/%s", name);
    fp = fopen(path, "rb");
    if (fp == NULL) return NULL;
    if (fseek(fp, 0, SEEK_END) == 0 && (n = ftell(fp)) >= 0 && fseek(fp, 0, SEEK_SET) == 0) {
        data = malloc((size_t)n + 1);
        if (data != NULL && fread(data, 1, (size_t)n, fp) == (size_t)n) {
            data[n] = '\0';
            *len = (size_t)n;
        } else {
            free(data);
            data = NULL;
        }
    }
    fclose(fp);
    return data;
}

/* Compares with a golden file; SLODRILL_GOLDEN_WRITE=NAME rewrites that one
 * instead (review the diff before keeping it). */
static TU_UNUSED int golden_equal(const char *name, const char *got, size_t len)
{
    size_t glen = 0;
    char *g;
    int eq;
    if (getenv("SLODRILL_GOLDEN_WRITE") != NULL &&
        strcmp(getenv("SLODRILL_GOLDEN_WRITE"), name) == 0) {
        char path[512];
        FILE *fp;
        snprintf(path, sizeof path, "tests/data/%s", name);
        fp = fopen(path, "wb");
        if (fp == NULL) return 0;
        fwrite(got, 1, len, fp);
        fclose(fp);
        return 1;
    }
    g = read_golden(name, &glen);
    if (g == NULL) {
        fprintf(stderr, "golden file tests/data/%s missing\n", name);
        return 0;
    }
    eq = glen == len && memcmp(g, got, len) == 0;
    if (!eq) fprintf(stderr, "golden %s differs:\n--- want\n%s\n--- got\n%.*s\n", name, g,
                     (int)len, got);
    free(g);
    return eq;
}

/* Counts SSE events (blank-line separated) in a body. */
static TU_UNUSED int count_events(const char *body)
{
    int n = 0;
    for (const char *p = body; (p = strstr(p, "\n\n")) != NULL; p += 2) n++;
    return n;
}

#endif
