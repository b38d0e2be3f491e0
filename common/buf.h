/* buf.h -- a growable byte buffer with a hard size limit.
 *
 * Callers embed struct buf; its fields are read-only outside buf.c. data is
 * always NUL-terminated (the NUL is not counted in len). */
#ifndef SLODRILL_BUF_H
#define SLODRILL_BUF_H

#include <stddef.h>
#include "common/compiler.h"

struct buf {
    char *data;   /* private: NULL until the first append */
    size_t len;   /* private */
    size_t cap;   /* private */
    size_t max;   /* private: appends that would pass this fail */
    int failed;   /* private: an append has failed (sticky until reset) */
};

/* max is the largest len the buffer may reach (0 means 64 MiB). */
void buf_init(struct buf *b, size_t max);
void buf_cleanup(struct buf *b);
void buf_reset(struct buf *b);

/* 0 on success, -1 when the limit would be passed or memory ran out. */
int buf_append(struct buf *b, const void *data, size_t len) WUR;
int buf_puts(struct buf *b, const char *s) WUR;
int buf_printf(struct buf *b, const char *fmt, ...) PRINTF_LIKE(2, 3) WUR;

/* 1 when any append since init or reset failed: lets a writer of many
 * pieces check once at the end. */
int buf_failed(const struct buf *b);

/* Drops the first n bytes. */
void buf_consume(struct buf *b, size_t n);

/* Hands data to the caller (caller frees with free()); the buffer is empty
 * afterwards. Never NULL: an empty buffer gives "". */
char *buf_steal(struct buf *b);

#endif
