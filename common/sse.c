/* sse.c -- incremental text/event-stream parser and writer.
 *
 * Follows the WHATWG HTML "event stream interpretation" (section 9.2.6):
 * bytes are split into lines at CRLF, LF or CR (a CR at the end of one read
 * may pair with an LF at the start of the next); each line is a field; a
 * blank line dispatches the collected event. The parser keeps only the
 * partial line and the event being collected, both under one bound. */
#include "common/sse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"

#define SSE_DEFAULT_MAX ((size_t)1 << 20)

struct sse_parser {
    sse_event_cb cb;
    void *arg;
    size_t max;
    struct buf line;   /* the current, unfinished line */
    struct buf data;   /* data lines of the event, joined by \n */
    struct buf event;  /* event type */
    struct buf id;
    int has_data;
    int after_cr;      /* the last byte seen was CR */
    size_t events;
};

struct sse_parser *sse_parser_new(size_t max_event, sse_event_cb cb, void *arg)
{
    struct sse_parser *p = calloc(1, sizeof *p);
    if (p == NULL) return NULL;
    p->cb = cb;
    p->arg = arg;
    p->max = max_event ? max_event : SSE_DEFAULT_MAX;
    buf_init(&p->line, p->max);
    buf_init(&p->data, p->max);
    buf_init(&p->event, 256);
    buf_init(&p->id, 1024);
    return p;
}

void sse_parser_free(struct sse_parser *p)
{
    if (p == NULL) return;
    buf_cleanup(&p->line);
    buf_cleanup(&p->data);
    buf_cleanup(&p->event);
    buf_cleanup(&p->id);
    free(p);
}

size_t sse_parser_events(const struct sse_parser *p) { return p->events; }

size_t sse_parser_pending(const struct sse_parser *p)
{
    return p->line.len + p->data.len + p->event.len + (size_t)p->has_data;
}

static int dispatch(struct sse_parser *p, char *err, size_t errlen)
{
    int rc = 0;
    if (p->has_data) {
        const char *name = p->event.len ? p->event.data : "message";
        p->events++;
        if (p->cb(name, p->data.data ? p->data.data : "", p->data.len,
                  p->id.len ? p->id.data : NULL, p->arg) != 0) {
            snprintf(err, errlen, "stopped");
            rc = -1;
        }
    }
    buf_reset(&p->data);
    buf_reset(&p->event);
    p->has_data = 0;
    return rc;
}

static int field(struct sse_parser *p, const char *line, size_t len, char *err, size_t errlen)
{
    const char *colon = memchr(line, ':', len);
    size_t nlen = colon ? (size_t)(colon - line) : len;
    const char *val = colon ? colon + 1 : line + len;
    size_t vlen = colon ? len - nlen - 1 : 0;

    if (len == 0) return dispatch(p, err, errlen);
    if (nlen == 0) return 0; /* comment */
    if (vlen > 0 && val[0] == ' ') {
        val++;
        vlen--;
    }
    if (nlen == 4 && memcmp(line, "data", 4) == 0) {
        if ((p->has_data && buf_append(&p->data, "\n", 1) != 0) ||
            buf_append(&p->data, val, vlen) != 0)
            goto toobig;
        p->has_data = 1;
    } else if (nlen == 5 && memcmp(line, "event", 5) == 0) {
        buf_reset(&p->event);
        if (buf_append(&p->event, val, vlen) != 0) goto toobig;
    } else if (nlen == 2 && memcmp(line, "id", 2) == 0) {
        if (memchr(val, '\0', vlen) == NULL) {
            buf_reset(&p->id);
            if (buf_append(&p->id, val, vlen) != 0) goto toobig;
        }
    }
    /* "retry" and unknown fields are ignored, as the spec says. */
    return 0;
toobig:
    snprintf(err, errlen, "server-sent event larger than %zu bytes", p->max);
    return -1;
}

int sse_parser_feed(struct sse_parser *p, const char *data, size_t len, char *err,
                    size_t errlen)
{
    size_t i = 0;

    while (i < len) {
        size_t j = i;
        if (p->after_cr) {
            p->after_cr = 0;
            if (data[i] == '\n') {
                i++;
                continue;
            }
        }
        while (j < len && data[j] != '\n' && data[j] != '\r') j++;
        if (j == len) {
            if (p->line.len + p->data.len + (len - i) > p->max ||
                buf_append(&p->line, data + i, len - i) != 0) {
                snprintf(err, errlen, "server-sent event larger than %zu bytes", p->max);
                return -1;
            }
            break;
        }
        if (data[j] == '\r') p->after_cr = 1;
        if (p->line.len) {
            if (buf_append(&p->line, data + i, j - i) != 0) {
                snprintf(err, errlen, "server-sent event larger than %zu bytes", p->max);
                return -1;
            }
            if (field(p, p->line.data, p->line.len, err, errlen) != 0) return -1;
            buf_reset(&p->line);
        } else if (field(p, data + i, j - i, err, errlen) != 0) {
            return -1;
        }
        i = j + 1;
    }
    return 0;
}

int sse_write(struct buf *out, const char *event, const char *data, size_t len)
{
    size_t i = 0;

    if (event && buf_printf(out, "event: %s\n", event) != 0) return -1;
    do {
        const char *nl = memchr(data + i, '\n', len - i);
        size_t n = nl ? (size_t)(nl - (data + i)) : len - i;
        if (buf_puts(out, "data: ") != 0 || buf_append(out, data + i, n) != 0 ||
            buf_puts(out, "\n") != 0)
            return -1;
        i += n + 1;
    } while (i <= len);
    return buf_puts(out, "\n");
}
