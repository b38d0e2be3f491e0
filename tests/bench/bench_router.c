/* bench_router.c -- the load client of tests/bench.sh's router section: raw HTTP/1.1 on epoll.
 *
 * One thread, non-blocking sockets, no HTTP library: the client's own cost is
 * small and identical whether it talks to a fake directly or through the
 * router, so the difference between the two runs is the router's.
 *
 *   bench_router rate    HOST PORT KEY RATE SECONDS CONNS   open loop at RATE req/s
 *   bench_router pair    HOST PORT_A KEY_A PORT_B KEY_B RATE SECONDS CONNS
 *                        the same open loop, alternating A and B in 0.5 s slices
 *                        so both meet the same machine: a_... and b_... figures
 *   bench_router max     HOST PORT KEY SECONDS CONNS        closed loop: as fast as answered
 *   bench_router ttft    HOST PORT KEY COUNT                sequential streams: first token
 *   bench_router streams HOST PORT KEY COUNT SECONDS PID    COUNT streams held; PID's memory
 *
 * BENCH_MODEL in the environment names the model asked for (default "bench").
 * Prints "name value" lines. Non-streaming requests ask for model "bench" with
 * a one-line prompt; keep-alive connections; latency is from the moment the
 * request was due (open loop: a late send counts against the server) to the
 * last body byte. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define MAX_RESP (1 << 16)

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

struct conn {
    int fd;
    int busy;           /* a request is out */
    uint64_t due_ns;    /* when the request was due (open loop) */
    uint64_t sent_ns;
    char buf[MAX_RESP];
    size_t len;
    int stream;         /* streams: read until EOF */
    uint64_t first_ns;  /* streams: first content */
    long events;
    int status;
};

static const char *g_host;
static void build_requests(const char *key);
static int g_port;
static char g_req[4096], g_sreq[4096];
static size_t g_req_len, g_sreq_len;

static int conn_open(struct conn *c)
{
    struct sockaddr_in a;
    int one = 1;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)g_port);
    inet_pton(AF_INET, g_host, &a.sin_addr);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0)
        return -1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
    c->len = 0;
    c->busy = 0;
    return 0;
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && (errno == EINTR || errno == EAGAIN))
            continue; /* a few hundred bytes: the socket buffer takes them at once */
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* A complete non-streaming response in c->buf: 1, 0 when more is due, -1 bad. */
static int resp_complete(struct conn *c)
{
    char *end, *cl;
    long clen;
    size_t hlen;
    c->buf[c->len < MAX_RESP ? c->len : MAX_RESP - 1] = '\0';
    end = strstr(c->buf, "\r\n\r\n");
    if (!end)
        return c->len >= MAX_RESP - 1 ? -1 : 0;
    hlen = (size_t)(end - c->buf) + 4;
    c->status = (int)strtol(c->buf + 9, NULL, 10); /* "HTTP/1.1 200" */
    cl = strcasestr(c->buf, "\r\ncontent-length:");
    if (!cl || cl > end)
        return -1;
    clen = strtol(cl + 17, NULL, 10);
    return c->len >= hlen + (size_t)clen ? 1 : 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(uint64_t *v, size_t n, double p)
{
    size_t i;
    if (!n)
        return -1;
    i = (size_t)(p * (double)(n - 1) + 0.5);
    return (double)v[i] / 1000.0; /* ns -> us */
}

/* Reads what is there; returns 1 on a completed response, -1 on close/error. */
static int conn_read(struct conn *c)
{
    for (;;) {
        ssize_t r = read(c->fd, c->buf + c->len, MAX_RESP - 1 - c->len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (r <= 0)
            return -1;
        c->len += (size_t)r;
        {
            int k = resp_complete(c);
            if (k != 0)
                return k;
        }
    }
}

/* What a load run measured; a pair run adds its slices into one per side. */
struct load_res {
    uint64_t *lat;
    size_t n, cap;
    uint64_t sent, ok, bad, late, dropped;
};

static int load_res_init(struct load_res *r, size_t cap)
{
    memset(r, 0, sizeof *r);
    r->cap = cap;
    r->lat = malloc(cap * sizeof *r->lat);
    return r->lat ? 0 : -1;
}

static void load_res_print(struct load_res *r, const char *prefix, double seconds)
{
    qsort(r->lat, r->n, sizeof *r->lat, cmp_u64);
    printf("%ssent %llu\n%sok %llu\n%sfailed %llu\n%slate %llu\n%sdropped %llu\n", prefix,
           (unsigned long long)r->sent, prefix, (unsigned long long)r->ok, prefix,
           (unsigned long long)r->bad, prefix, (unsigned long long)r->late, prefix,
           (unsigned long long)r->dropped);
    printf("%sreq_per_s %.0f\n", prefix, (double)r->ok / seconds);
    printf("%slatency_median_us %.1f\n%slatency_p99_us %.1f\n%slatency_p999_us %.1f\n", prefix,
           pct(r->lat, r->n, 0.5), prefix, pct(r->lat, r->n, 0.99), prefix,
           pct(r->lat, r->n, 0.999));
}

/* rate and max: one routine, open loop when rate > 0; adds into *res. */
static int run_load_into(double rate, double seconds, int nconn, struct load_res *res)
{
    struct conn *cs = calloc((size_t)nconn, sizeof *cs);
    size_t cap = res->cap, n = res->n;
    uint64_t *lat = res->lat;
    uint64_t t0, t_end, next_due;
    uint64_t sent = 0, ok = 0, bad = 0, late = 0, dropped = 0;
    int ep = epoll_create1(0), tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    struct epoll_event ev, evs[256];
    int k;

    if (!cs || !lat || ep < 0 || tfd < 0)
        return 1;
    for (k = 0; k < nconn; k++) {
        if (conn_open(&cs[k]) != 0) {
            fprintf(stderr, "connect %s:%d: %s\n", g_host, g_port, strerror(errno));
            return 1;
        }
        ev.events = EPOLLIN;
        ev.data.u32 = (uint32_t)k;
        epoll_ctl(ep, EPOLL_CTL_ADD, cs[k].fd, &ev);
    }
    ev.events = EPOLLIN;
    ev.data.u32 = 0xffffffffu;
    epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev);
    t0 = now_ns() + 20000000ull;
    t_end = t0 + (uint64_t)(seconds * 1e9);
    next_due = t0;
    if (rate <= 0) { /* closed loop: every connection starts at once */
        for (k = 0; k < nconn; k++) {
            cs[k].busy = 1;
            cs[k].due_ns = cs[k].sent_ns = now_ns();
            send_all(cs[k].fd, g_req, g_req_len);
            sent++;
        }
    }
    for (;;) {
        uint64_t now = now_ns();
        int nev;
        if (rate > 0) {
            /* send what is due; a request finding no idle connection is late */
            while (next_due <= now && next_due < t_end) {
                for (k = 0; k < nconn && cs[k].busy; k++)
                    ;
                if (k == nconn) {
                    late++;
                    if (now - next_due > 1000000000ull) { /* 1 s behind: give up on it */
                        dropped++;
                        next_due += (uint64_t)(1e9 / rate);
                        continue;
                    }
                    break;
                }
                cs[k].busy = 1;
                cs[k].due_ns = next_due;
                cs[k].sent_ns = now;
                cs[k].len = 0;
                if (send_all(cs[k].fd, g_req, g_req_len) != 0) {
                    bad++;
                    cs[k].busy = 0;
                }
                sent++;
                next_due += (uint64_t)(1e9 / rate);
            }
            if (next_due < t_end) {
                struct itimerspec its;
                memset(&its, 0, sizeof its);
                its.it_value.tv_sec = (time_t)(next_due / 1000000000ull);
                its.it_value.tv_nsec = (long)(next_due % 1000000000ull);
                timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
            }
        }
        if (now >= t_end) {
            int busy = 0;
            for (k = 0; k < nconn; k++)
                busy += cs[k].busy;
            if (!busy || now > t_end + 5000000000ull)
                break;
        }
        nev = epoll_wait(ep, evs, 256, 50);
        for (k = 0; k < nev; k++) {
            uint32_t id = evs[k].data.u32;
            struct conn *c;
            int r;
            if (id == 0xffffffffu) {
                uint64_t x;
                if (read(tfd, &x, sizeof x) < 0) { /* drained */
                }
                continue;
            }
            c = &cs[id];
            r = conn_read(c);
            if (r == 0)
                continue;
            if (r < 0 || c->status != 200) {
                bad++;
                if (r < 0) {
                    fprintf(stderr, "connection %u closed\n", id);
                    return 1;
                }
            } else {
                ok++;
                if (n < cap)
                    lat[n++] = now_ns() - (rate > 0 ? c->due_ns : c->sent_ns);
            }
            c->busy = 0;
            c->len = 0;
            if (rate <= 0 && now_ns() < t_end) {
                c->busy = 1;
                c->due_ns = c->sent_ns = now_ns();
                send_all(c->fd, g_req, g_req_len);
                sent++;
            }
        }
    }
    res->n = n;
    res->sent += sent;
    res->ok += ok;
    res->bad += bad;
    res->late += late;
    res->dropped += dropped;
    for (k = 0; k < nconn; k++)
        close(cs[k].fd);
    close(ep);
    close(tfd);
    free(cs);
    return bad ? 1 : 0;
}

static int run_load(double rate, double seconds, int nconn)
{
    struct load_res r;
    int rc;
    if (load_res_init(&r, (size_t)(rate > 0 ? rate * seconds + 16 : 4000000)) != 0)
        return 1;
    rc = run_load_into(rate, seconds, nconn, &r);
    load_res_print(&r, "", seconds);
    free(r.lat);
    return rc;
}

/* A and B in alternating 0.5 s slices at the same rate, fresh connections
 * each slice (opened before the slice's clock starts). */
static int run_pair(int port_a, const char *key_a, int port_b, const char *key_b, double rate,
                    double seconds, int nconn)
{
    struct load_res ra, rb;
    double slice = 0.5, done = 0;
    size_t cap = (size_t)(rate * seconds + 16 * (seconds / slice + 1));
    int rc = 0;
    if (load_res_init(&ra, cap) != 0 || load_res_init(&rb, cap) != 0)
        return 1;
    while (done < seconds - 1e-9) {
        double s = seconds - done < slice ? seconds - done : slice;
        g_port = port_a;
        build_requests(key_a);
        rc |= run_load_into(rate, s, nconn, &ra);
        g_port = port_b;
        build_requests(key_b);
        rc |= run_load_into(rate, s, nconn, &rb);
        done += s;
    }
    load_res_print(&ra, "a_", seconds);
    load_res_print(&rb, "b_", seconds);
    free(ra.lat);
    free(rb.lat);
    return rc;
}

/* A stream's bytes so far hold a content delta? */
static int has_content(const char *p, size_t n)
{
    const char *k = memmem(p, n, "\"content\":\"", 11);
    while (k) {
        if ((size_t)(k - p) + 11 < n && k[11] != '"')
            return 1;
        k = memmem(k + 11, n - (size_t)(k + 11 - p), "\"content\":\"", 11);
    }
    return 0;
}

static int run_ttft(int count)
{
    uint64_t *v = malloc((size_t)count * sizeof *v);
    int i, n = 0;
    for (i = 0; i < count; i++) {
        struct conn c;
        uint64_t t;
        int got = 0;
        memset(&c, 0, sizeof c);
        if (conn_open(&c) != 0)
            return 1;
        t = now_ns();
        send_all(c.fd, g_sreq, g_sreq_len);
        for (;;) {
            ssize_t r = read(c.fd, c.buf, sizeof c.buf - 1);
            if (r < 0 && errno == EAGAIN) {
                struct timespec ts = {0, 20000}; /* 20 us: fine-grained enough for a TTFT */
                nanosleep(&ts, NULL);
                continue;
            }
            if (r <= 0)
                break;
            if (!got && has_content(c.buf, (size_t)r)) {
                v[n++] = now_ns() - t;
                got = 1;
            }
        }
        close(c.fd);
    }
    qsort(v, (size_t)n, sizeof *v, cmp_u64);
    printf("streams %d\nwith_first_token %d\nttft_median_us %.1f\nttft_p99_us %.1f\n", count, n,
           pct(v, (size_t)n, 0.5), pct(v, (size_t)n, 0.99));
    free(v);
    return n == count ? 0 : 1;
}

static long rss_kb(int pid, const char *field)
{
    char path[64], line[256];
    long v = -1;
    FILE *f;
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    f = fopen(path, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, field, strlen(field)))
            v = strtol(line + strlen(field) + 1, NULL, 10);
    fclose(f);
    return v;
}

/* COUNT streams opened over ~5 s, held SECONDS; the open count and PID's RSS. */
static int run_streams(int count, double seconds, int pid)
{
    struct conn *cs = calloc((size_t)count, sizeof *cs);
    int ep = epoll_create1(0), k, open_now = 0, first = 0, ramp_done = 0, closed = 0;
    int open_min = -1;
    struct epoll_event ev, evs[512];
    uint64_t t0 = now_ns(), t_hold = 0, events = 0, events_hold0 = 0;
    long rss_peak = 0;
    char sink[65536];

    if (!cs || ep < 0)
        return 1;
    for (;;) {
        uint64_t now = now_ns();
        int want = ramp_done ? count : (int)((double)count * (double)(now - t0) / 5e9) + 1, nev;
        while (!ramp_done && open_now + closed < want && open_now + closed < count) {
            struct conn *c = &cs[open_now + closed];
            if (conn_open(c) != 0) {
                fprintf(stderr, "stream %d: connect: %s\n", open_now + closed, strerror(errno));
                return 1;
            }
            send_all(c->fd, g_sreq, g_sreq_len);
            ev.events = EPOLLIN;
            ev.data.u32 = (uint32_t)(open_now + closed);
            epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
            open_now++;
        }
        if (!ramp_done && open_now + closed >= count) {
            ramp_done = 1;
            t_hold = now_ns() + 2000000000ull; /* let the last ones get going */
            events_hold0 = 0;
        }
        if (ramp_done && now >= t_hold) {
            long r = rss_kb(pid, "VmRSS:");
            if (r > rss_peak)
                rss_peak = r;
            if (events_hold0 == 0)
                events_hold0 = events + 1;
            if (open_min < 0 || open_now < open_min)
                open_min = open_now;
            if (now >= t_hold + (uint64_t)(seconds * 1e9))
                break;
        }
        nev = epoll_wait(ep, evs, 512, 100);
        for (k = 0; k < nev; k++) {
            struct conn *c = &cs[evs[k].data.u32];
            ssize_t r = read(c->fd, sink, sizeof sink);
            if (r <= 0) {
                if (r < 0 && errno == EAGAIN)
                    continue;
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
                c->fd = -1;
                open_now--;
                closed++;
                continue;
            }
            if (!c->first_ns && has_content(sink, (size_t)r)) {
                c->first_ns = now_ns();
                first++;
            }
            /* events: count "data:" lines */
            {
                const char *p = sink;
                size_t left = (size_t)r;
                while ((p = memmem(p, left, "data:", 5))) {
                    events++;
                    p += 5;
                    left = (size_t)r - (size_t)(p - sink);
                }
            }
        }
    }
    printf("streams_target %d\nstreams_open_min %d\nstreams_with_first_token %d\n", count,
           open_min, first);
    printf("streams_closed_early %d\n", closed);
    printf("events_per_s %.0f\n", (double)(events - (events_hold0 ? events_hold0 - 1 : 0)) / seconds);
    printf("rss_peak_mb %.1f\nhwm_mb %.1f\n", (double)rss_peak / 1024.0,
           (double)rss_kb(pid, "VmHWM:") / 1024.0);
    for (k = 0; k < count; k++)
        if (cs[k].fd > 0)
            close(cs[k].fd);
    free(cs);
    close(ep);
    return open_min >= count ? 0 : 1;
}

static long num(const char *s)
{
    return strtol(s, NULL, 10);
}

/* The model asked for: BENCH_MODEL, default "bench". */
static void build_requests(const char *key)
{
    const char *model = getenv("BENCH_MODEL") ? getenv("BENCH_MODEL") : "bench";
    char body[256], sbody[256];
    snprintf(body, sizeof body,
             "{\"model\":\"%s\",\"messages\":[{\"role\":\"user\",\"content\":\"ping\"}]}", model);
    snprintf(sbody, sizeof sbody,
             "{\"model\":\"%s\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":"
             "\"ping\"}]}",
             model);
    g_req_len = (size_t)snprintf(g_req, sizeof g_req,
                                 "POST /v1/chat/completions HTTP/1.1\r\nHost: %s:%d\r\n"
                                 "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
                                 "Content-Length: %zu\r\n\r\n%s",
                                 g_host, g_port, key, strlen(body), body);
    g_sreq_len = (size_t)snprintf(g_sreq, sizeof g_sreq,
                                  "POST /v1/chat/completions HTTP/1.1\r\nHost: %s:%d\r\n"
                                  "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
                                  "Connection: close\r\nContent-Length: %zu\r\n\r\n%s",
                                  g_host, g_port, key, strlen(sbody), sbody);
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: bench_router rate|max|ttft|streams HOST PORT KEY ...\n");
        return 2;
    }
    g_host = argv[2];
    g_port = (int)num(argv[3]);
    build_requests(argv[4]);
    if (!strcmp(argv[1], "pair") && argc == 10)
        return run_pair((int)num(argv[3]), argv[4], (int)num(argv[5]), argv[6],
                        strtod(argv[7], NULL), strtod(argv[8], NULL), (int)num(argv[9]));
    if (!strcmp(argv[1], "rate") && argc == 8)
        return run_load(strtod(argv[5], NULL), strtod(argv[6], NULL), (int)num(argv[7]));
    if (!strcmp(argv[1], "max") && argc == 7)
        return run_load(0, strtod(argv[5], NULL), (int)num(argv[6]));
    if (!strcmp(argv[1], "ttft") && argc == 6)
        return run_ttft((int)num(argv[5]));
    if (!strcmp(argv[1], "streams") && argc == 8)
        return run_streams((int)num(argv[5]), strtod(argv[6], NULL), (int)num(argv[7]));
    fprintf(stderr, "bench_router: bad arguments\n");
    return 2;
}
