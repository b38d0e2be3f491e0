/* bench_fake.c -- load for the fake-provider benchmark (tests/bench.sh).
 *
 *   bench_fake streams URL KEY PID N [RAMP_S] [WINDOW_S]
 *       opens N concurrent streaming chat completions against the OpenAI
 *       fake at URL (ramped over RAMP_S seconds), and once all N streams are
 *       open measures, over WINDOW_S seconds, the token events each stream
 *       receives per second, the resident memory (VmRSS) of process PID,
 *       its CPU, in all and per busy thread (how its loops share it), and
 *       the share of events the fake itself sent more than 10 ms late (its
 *       /_chaos/faults stats: a loop that falls behind keeps the average
 *       pace by sending late events together).
 *   bench_fake latency URL KEY COUNT
 *       COUNT sequential non-streaming requests on one keep-alive
 *       connection; prints the median and p99 time to the whole answer.
 *
 * Prints "name value" lines for bench.sh to read. Exit 0 when the run
 * completed (the figures are judged by bench.sh), 1 when it could not run.
 *
 * DESIGN. The stream client is a bare HTTP/1.1 writer on libevent
 * bufferevents, not libcurl: 10,000 curl handles cost more memory and CPU
 * than the server under test, and only event boundaries ("\n\n") need
 * counting. Once a stream's headers are in, it is read by sweeps every
 * 250 ms, one recv() per stream taking every event queued since: the client
 * then costs a fraction of the server's system calls and leaves the CPU to
 * the fake (whose figures these are). Counting is exact at the window's
 * edges, which are sweeps. */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#define BODY_STREAM                                                                            \
    "{\"model\":\"bench\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":"     \
    "\"Tell me a long story.\"}]}"
#define SWEEP_US 250000 /* how often open streams are read */
#define BODY_PLAIN                                                                             \
    "{\"model\":\"bench\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}"

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* VmRSS or VmHWM of pid in kB; -1 when unreadable. */
static long proc_kb(long pid, const char *field)
{
    char path[64], line[256];
    FILE *fp;
    long kb = -1;
    size_t fl = strlen(field);
    snprintf(path, sizeof path, "/proc/%ld/status", pid);
    fp = fopen(path, "r");
    if (fp == NULL) return -1;
    while (fgets(line, sizeof line, fp) != NULL)
        if (strncmp(line, field, fl) == 0 && line[fl] == ':') {
            kb = strtol(line + fl + 1, NULL, 10);
            break;
        }
    fclose(fp);
    return kb;
}

/* CPU seconds (user + system) process pid has used; -1 when unreadable. */
static double proc_cpu_s(long pid)
{
    char path[64], buf[1024], *p;
    unsigned long ut = 0, st = 0;
    FILE *fp;
    size_t n;
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    fp = fopen(path, "r");
    if (fp == NULL) return -1;
    n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    p = strrchr(buf, ')'); /* the command name may hold spaces */
    if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut,
                            &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

#define MAX_TASKS 64

/* CPU seconds of each thread of pid (from /proc/PID/task), by thread id,
 * and the seconds each spent runnable but waiting for a CPU (schedstat:
 * other processes had it); returns how many were read. */
static int proc_task_cpu(long pid, long *tid, double *cpu, double *wait, int max)
{
    char path[64];
    DIR *d;
    struct dirent *e;
    int n = 0;
    snprintf(path, sizeof path, "/proc/%ld/task", pid);
    d = opendir(path);
    if (d == NULL) return 0;
    while (n < max && (e = readdir(d)) != NULL) {
        char tpath[320], buf[1024], *p;
        unsigned long ut = 0, st = 0;
        FILE *fp;
        size_t k;
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        snprintf(tpath, sizeof tpath, "/proc/%ld/task/%s/stat", pid, e->d_name);
        fp = fopen(tpath, "r");
        if (fp == NULL) continue;
        k = fread(buf, 1, sizeof buf - 1, fp);
        fclose(fp);
        buf[k] = '\0';
        p = strrchr(buf, ')');
        if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
                                &ut, &st) != 2)
            continue;
        tid[n] = strtol(e->d_name, NULL, 10);
        cpu[n] = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
        wait[n] = 0;
        snprintf(tpath, sizeof tpath, "/proc/%ld/task/%s/schedstat", pid, e->d_name);
        if ((fp = fopen(tpath, "r")) != NULL) {
            unsigned long long run_ns, wait_ns;
            if (fscanf(fp, "%llu %llu", &run_ns, &wait_ns) == 2) wait[n] = (double)wait_ns / 1e9;
            fclose(fp);
        }
        n++;
    }
    closedir(d);
    return n;
}

static size_t grab(char *p, size_t sz, size_t n, void *arg)
{
    char *dst = arg;
    size_t have = strlen(dst), k = sz * n;
    if (have + k >= 8192) k = 8191 - have;
    memcpy(dst + have, p, k);
    dst[have + k] = '\0';
    return sz * n;
}

/* The fake's own count of stream events sent and sent late (GET
 * /_chaos/faults); -1 when unreadable. */
static int fake_events(const char *url, double *events, double *late)
{
    static char body[8192];
    char u[256];
    const char *p;
    CURL *c = curl_easy_init();
    int rc = -1;
    body[0] = '\0';
    if (c == NULL) return -1;
    snprintf(u, sizeof u, "%s/_chaos/faults", url);
    curl_easy_setopt(c, CURLOPT_URL, u);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, grab);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 2000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (curl_easy_perform(c) == CURLE_OK && (p = strstr(body, "\"events\":")) != NULL) {
        *events = strtod(p + 9, NULL);
        p = strstr(body, "\"events_late\":");
        if (p != NULL) {
            *late = strtod(p + 14, NULL);
            rc = 0;
        }
    }
    curl_easy_cleanup(c);
    return rc;
}

static double self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* ---- streams ------------------------------------------------------------- */

struct stream;

struct bench {
    struct event_base *base;
    struct sockaddr_in addr;
    char request[1024];
    size_t request_len;
    struct stream *s;
    int n, started, open, done, failed, non200;
    uint64_t events;           /* event boundaries seen, all streams */
    uint64_t t0;
    double ramp_s, window_s;
    uint64_t all_open_us;      /* when every stream first had its headers */
    uint64_t window_start_us, window_events;
    int window_open_min;
    double window_cpu_fake, window_cpu_self;
    const char *url;
    double ev0, late0;         /* the fake's event counters at the window's start */
    int have_ev;
    long task_id[MAX_TASKS];   /* the fake's threads at the window's start */
    double task_cpu[MAX_TASKS], task_wait[MAX_TASKS];
    int ntasks;
    long pid, rss_kb_idle, rss_kb_peak;
    struct event *tick;
    uint64_t last_sweep_us;
    int phase;                 /* 0 ramp, 1 settle, 2 window, 3 finished */
};

struct stream {
    struct bench *b;
    struct bufferevent *bev;
    int headers, finished;
    char tail[4];  /* last bytes seen, to find "\r\n\r\n" / "\n\n" across reads */
    size_t hbytes;
};

static void stream_close(struct stream *s, int failed)
{
    struct bench *b = s->b;
    if (s->bev == NULL) return;
    bufferevent_free(s->bev);
    s->bev = NULL;
    if (s->headers && !s->finished) b->open--;
    s->finished = 1;
    if (failed) b->failed++;
    else b->done++;
}

/* Counts event boundaries ("\n\n") in bytes of a stream's body. */
static void count_events(struct stream *s, const char *p, size_t n)
{
    const char *e = p + n, *q;
    if (n == 0) return;
    if (s->tail[3] == '\n' && p[0] == '\n') s->b->events++;
    for (q = p; q < e && (q = memchr(q, '\n', (size_t)(e - q))) != NULL; q++)
        if (q + 1 < e && q[1] == '\n') s->b->events++;
    s->tail[3] = e[-1];
}

/* Until the headers are in, the bufferevent reads; then reading moves to
 * the sweeps (sweep()), which take many events per system call. */
static void read_cb(struct bufferevent *bev, void *arg)
{
    struct stream *s = arg;
    struct bench *b = s->b;
    struct evbuffer *in = bufferevent_get_input(bev);
    char chunk[4096];
    int n;

    while (!s->headers && (n = evbuffer_remove(in, chunk, sizeof chunk)) > 0) {
        for (int i = 0; i < n; i++) {
            char c = chunk[i];
            s->tail[0] = s->tail[1];
            s->tail[1] = s->tail[2];
            s->tail[2] = s->tail[3];
            s->tail[3] = c;
            if (s->hbytes++ == 9 && c != '2') b->non200++; /* "HTTP/1.1 2" */
            if (memcmp(s->tail, "\r\n\r\n", 4) == 0) {
                s->headers = 1;
                b->open++;
                if (b->open == b->n && b->all_open_us == 0) b->all_open_us = now_us();
                count_events(s, chunk + i + 1, (size_t)(n - i - 1));
                bufferevent_disable(bev, EV_READ);
                break;
            }
        }
    }
}

/* Reads what every open stream has received: one recv() per stream. */
static void sweep(struct bench *b)
{
    static char big[1 << 16];
    for (int i = 0; i < b->started; i++) {
        struct stream *s = &b->s[i];
        ssize_t n;
        if (s->bev == NULL || !s->headers) continue;
        n = recv((int)bufferevent_getfd(s->bev), big, sizeof big, MSG_DONTWAIT);
        if (n > 0) count_events(s, big, (size_t)n);
        else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            stream_close(s, 0);
    }
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct stream *s = arg;
    (void)bev;
    if (what & BEV_EVENT_CONNECTED) {
        int one = 1;
        setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        return;
    }
    /* EOF: the stream ended (chunked end or close); ERROR: a failure. */
    stream_close(s, (what & BEV_EVENT_ERROR) != 0 || !s->headers);
}

static int stream_start(struct bench *b, struct stream *s)
{
    s->b = b;
    s->bev = bufferevent_socket_new(b->base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (s->bev == NULL) return -1;
    bufferevent_setcb(s->bev, read_cb, NULL, event_cb, s);
    bufferevent_enable(s->bev, EV_READ | EV_WRITE);
    if (bufferevent_write(s->bev, b->request, b->request_len) != 0) return -1;
    if (bufferevent_socket_connect(s->bev, (struct sockaddr *)&b->addr, sizeof b->addr) != 0) {
        bufferevent_free(s->bev);
        s->bev = NULL;
        return -1;
    }
    return 0;
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bench *b = arg;
    uint64_t t = now_us();
    double el = (double)(t - b->t0) / 1e6;
    (void)fd;
    (void)what;

    if (b->phase == 0) {
        int want = b->ramp_s > 0 ? (int)((double)b->n * el / b->ramp_s) : b->n;
        if (want > b->n) want = b->n;
        while (b->started < want) {
            if (stream_start(b, &b->s[b->started]) != 0) b->failed++;
            b->started++;
        }
        if (b->started == b->n) b->phase = 1;
    } else if (b->phase == 1) {
        if (t - b->last_sweep_us >= SWEEP_US) {
            sweep(b);
            b->last_sweep_us = t;
        }
        /* Settle a second after the last stream opened (or give up after
         * 30 s: the figures then show how many were open). */
        if ((b->all_open_us != 0 && t - b->all_open_us > 1000000) || el > b->ramp_s + 30) {
            b->phase = 2;
            sweep(b);
            t = now_us();
            b->last_sweep_us = t;
            b->window_start_us = t;
            b->window_events = b->events;
            b->window_open_min = b->open;
            b->window_cpu_fake = proc_cpu_s(b->pid);
            b->window_cpu_self = self_cpu_s();
            b->ntasks = proc_task_cpu(b->pid, b->task_id, b->task_cpu, b->task_wait, MAX_TASKS);
            b->have_ev = fake_events(b->url, &b->ev0, &b->late0) == 0;
        }
    } else if (b->phase == 2) {
        long kb;
        if (t - b->last_sweep_us >= SWEEP_US) {
            sweep(b);
            b->last_sweep_us = t = now_us();
        }
        kb = proc_kb(b->pid, "VmRSS");
        if (kb > b->rss_kb_peak) b->rss_kb_peak = kb;
        if (b->open < b->window_open_min) b->window_open_min = b->open;
        if ((double)(t - b->window_start_us) / 1e6 >= b->window_s) {
            double w;
            sweep(b);
            t = now_us();
            w = (double)(t - b->window_start_us) / 1e6;
            uint64_t ev = b->events - b->window_events;
            printf("streams_requested %d\n", b->n);
            printf("streams_open_min %d\n", b->window_open_min);
            printf("streams_failed %d\n", b->failed);
            printf("streams_non200 %d\n", b->non200);
            printf("ramp_to_all_open_s %.2f\n",
                   b->all_open_us ? (double)(b->all_open_us - b->t0) / 1e6 : -1.0);
            printf("window_s %.2f\n", w);
            printf("events_per_s_total %.0f\n", (double)ev / w);
            printf("tokens_per_s_per_stream %.2f\n",
                   b->window_open_min > 0 ? (double)ev / w / b->window_open_min : 0.0);
            printf("fake_cpu_pct %.0f\n", 100.0 * (proc_cpu_s(b->pid) - b->window_cpu_fake) / w);
            printf("client_cpu_pct %.0f\n", 100.0 * (self_cpu_s() - b->window_cpu_self) / w);
            {
                /* Each busy thread's share: how the loops split the work. */
                long tid[MAX_TASKS];
                double cpu[MAX_TASKS], wait[MAX_TASKS], waited = 0;
                int n = proc_task_cpu(b->pid, tid, cpu, wait, MAX_TASKS), busy = 0;
                printf("fake_thread_cpu_pct");
                for (int i = 0; i < n; i++)
                    for (int j = 0; j < b->ntasks; j++)
                        if (tid[i] == b->task_id[j] && cpu[i] - b->task_cpu[j] > 0.01 * w) {
                            printf("%s%.0f", busy++ ? "," : " ",
                                   100.0 * (cpu[i] - b->task_cpu[j]) / w);
                            waited += wait[i] - b->task_wait[j];
                        }
                printf("%s\n", busy ? "" : " -");
                /* > 0: the busy threads were ready to run but the CPUs were
                 * taken (by the client, or by other processes). */
                printf("fake_cpu_wait_pct %.0f\n", 100.0 * waited / w);
            }
            {
                double ev1, late1;
                if (b->have_ev && fake_events(b->url, &ev1, &late1) == 0 && ev1 > b->ev0)
                    printf("events_late_pct %.1f\n", 100.0 * (late1 - b->late0) / (ev1 - b->ev0));
                else
                    printf("events_late_pct -1\n");
            }
            printf("rss_idle_mb %.1f\n", (double)b->rss_kb_idle / 1024.0);
            printf("rss_peak_mb %.1f\n", (double)b->rss_kb_peak / 1024.0);
            printf("rss_per_stream_kb %.1f\n",
                   b->window_open_min > 0
                       ? (double)(b->rss_kb_peak - b->rss_kb_idle) / b->window_open_min
                       : 0.0);
            fflush(stdout);
            b->phase = 3;
            event_base_loopbreak(b->base);
        }
    }
}

static int parse_url(const char *url, struct sockaddr_in *sa, char *hostport, size_t hplen)
{
    char host[64];
    int port;
    if (sscanf(url, "http://%63[0-9.]:%d", host, &port) != 2 || port <= 0 || port > 65535)
        return -1;
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &sa->sin_addr) != 1) return -1;
    snprintf(hostport, hplen, "%s:%d", host, port);
    return 0;
}

static int run_streams(int argc, char **argv)
{
    struct bench b;
    char hostport[96];
    struct timeval tv = {0, 20000};
    int rc = 1;

    memset(&b, 0, sizeof b);
    if (argc < 4) goto out;
    if (parse_url(argv[0], &b.addr, hostport, sizeof hostport) != 0) {
        fprintf(stderr, "bench_fake: URL must be http://IPv4:PORT\n");
        goto out;
    }
    b.url = argv[0];
    b.pid = strtol(argv[2], NULL, 10);
    b.n = (int)strtol(argv[3], NULL, 10);
    b.ramp_s = argc > 4 ? strtod(argv[4], NULL) : 4.0;
    b.window_s = argc > 5 ? strtod(argv[5], NULL) : 5.0;
    if (b.n <= 0 || b.n > 100000 || b.pid <= 0) goto out;
    b.request_len = (size_t)snprintf(b.request, sizeof b.request,
                                     "POST /v1/chat/completions HTTP/1.1\r\nHost: %s\r\n"
                                     "Authorization: Bearer %s\r\n"
                                     "Content-Type: application/json\r\n"
                                     "Content-Length: %zu\r\n\r\n%s",
                                     hostport, argv[1], strlen(BODY_STREAM), BODY_STREAM);
    if (b.request_len >= sizeof b.request) goto out;
    b.s = calloc((size_t)b.n, sizeof *b.s);
    b.base = event_base_new();
    if (b.s == NULL || b.base == NULL) goto out;
    b.rss_kb_idle = proc_kb(b.pid, "VmRSS");
    b.tick = event_new(b.base, -1, EV_PERSIST, tick_cb, &b);
    if (b.tick == NULL || event_add(b.tick, &tv) != 0) goto out;
    b.t0 = now_us();
    event_base_dispatch(b.base);
    rc = b.phase == 3 ? 0 : 1;
out:
    if (b.s != NULL)
        for (int i = 0; i < b.n; i++) stream_close(&b.s[i], 0);
    free(b.s);
    if (b.tick) event_free(b.tick);
    if (b.base) event_base_free(b.base);
    if (rc != 0 && argc < 4)
        fprintf(stderr, "usage: bench_fake streams URL KEY PID N [RAMP_S] [WINDOW_S]\n");
    return rc;
}

/* ---- latency --------------------------------------------------------------- */

static size_t sink(char *p, size_t sz, size_t n, void *arg)
{
    (void)p;
    (void)arg;
    return sz * n;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int run_latency(int argc, char **argv)
{
    CURL *c = NULL;
    struct curl_slist *h = NULL;
    double *ms = NULL;
    char url[256], auth[256];
    int count, bad = 0, rc = 1;

    if (argc < 3) {
        fprintf(stderr, "usage: bench_fake latency URL KEY COUNT\n");
        goto out;
    }
    count = (int)strtol(argv[2], NULL, 10);
    if (count <= 0 || count > 1000000) goto out;
    ms = calloc((size_t)count, sizeof *ms);
    c = curl_easy_init();
    if (ms == NULL || c == NULL) goto out;
    snprintf(url, sizeof url, "%s/v1/chat/completions", argv[0]);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", argv[1]);
    h = curl_slist_append(h, auth);
    h = curl_slist_append(h, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, BODY_PLAIN);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
    for (int i = -50; i < count; i++) { /* 50 warm-up requests */
        long status = 0;
        uint64_t t = now_us();
        CURLcode cc = curl_easy_perform(c);
        double d = (double)(now_us() - t) / 1000.0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        if (cc != CURLE_OK || status != 200) bad++;
        if (i >= 0) ms[i] = d;
    }
    qsort(ms, (size_t)count, sizeof *ms, cmp_double);
    printf("latency_requests %d\n", count);
    printf("latency_failed %d\n", bad);
    printf("latency_median_ms %.3f\n", ms[count / 2]);
    printf("latency_p99_ms %.3f\n", ms[(size_t)((double)count * 0.99)]);
    rc = 0;
out:
    curl_slist_free_all(h);
    if (c) curl_easy_cleanup(c);
    free(ms);
    return rc;
}

int main(int argc, char **argv)
{
    struct rlimit rl;
    int rc = 2;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (argc >= 2 && strcmp(argv[1], "streams") == 0) rc = run_streams(argc - 2, argv + 2);
    else if (argc >= 2 && strcmp(argv[1], "latency") == 0) rc = run_latency(argc - 2, argv + 2);
    else fprintf(stderr, "usage: bench_fake streams|latency ...\n");
    curl_global_cleanup();
    return rc;
}
