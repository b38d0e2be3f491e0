/* sse.h -- incremental text/event-stream parser and writer.
 *
 * The parser follows the WHATWG "event stream interpretation": lines end in
 * CRLF, LF or CR; "data:" lines are joined with "\n"; a blank line dispatches
 * the event; lines starting with ':' are comments; an optional single space
 * after the colon is removed. Events are handed over whole, never per read. */
#ifndef SLODRILL_SSE_H
#define SLODRILL_SSE_H

#include <stddef.h>
#include "common/compiler.h"

struct sse_parser;

/* One dispatched event. event is "message" when no "event:" line came.
 * Pointers are borrowed, valid during the callback only. Return 0 to go on,
 * -1 to stop parsing (sse_parser_feed then returns -1 with "stopped"). */
typedef int (*sse_event_cb)(const char *event, const char *data, size_t data_len,
                            const char *id, void *arg);

/* max_event bounds one event's bytes (0 means 1 MiB). Caller frees with
 * sse_parser_free. */
struct sse_parser *sse_parser_new(size_t max_event, sse_event_cb cb, void *arg) WUR;
void sse_parser_free(struct sse_parser *p);

/* Feeds bytes as they arrive. -1 on an event over the bound or a stop from
 * the callback; err gets the reason. */
int sse_parser_feed(struct sse_parser *p, const char *data, size_t len, char *err,
                    size_t errlen) WUR;

/* Events dispatched so far. */
size_t sse_parser_events(const struct sse_parser *p);

/* Bytes held of an event not yet complete (a stream that ends with this > 0
 * was cut mid-event). */
size_t sse_parser_pending(const struct sse_parser *p);

struct buf;

/* Appends one event to out: "event: NAME\n" when event is not NULL, one
 * "data: " line per line of data, then a blank line. 0 or -1 (buffer full). */
int sse_write(struct buf *out, const char *event, const char *data, size_t len) WUR;

#endif
