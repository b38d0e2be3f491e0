/* replay.h -- cached answers as streams, and streams collected into cacheable answers; pure.
 *
 * The cache stores an OpenAI chat.completion object. A streamed request
 * answered from the cache gets it back as a proper Chat Completions stream
 * (role chunk, content chunks, a finish chunk, the usage chunk when the
 * client asked for include_usage, data: [DONE]); a streamed answer from a
 * provider is collected, chunk by chunk, into the chat.completion the cache
 * stores. */
#ifndef SLODRILL_ROUTER_REPLAY_H
#define SLODRILL_ROUTER_REPLAY_H

#include <stddef.h>
#include <stdint.h>
#include "common/compiler.h"

struct cJSON;
struct buf;

/* The SSE bytes of a stream replaying answer (a chat.completion; borrowed)
 * under id, appended to out. Content is cut at word boundaries into pieces
 * of at most piece bytes (0 = 24). With include_usage, a final chunk with
 * "choices":[] carries the stored usage and "cost":0 (the cache is free).
 * 0, or -1 when answer is not a chat.completion with a message or out is full. */
int replay_stream(const char *answer, size_t len, const char *id, int64_t created,
                  int include_usage, size_t piece, struct buf *out) WUR;

/* The plain answer for a cache hit: answer with id replaced and, in its
 * usage, "cost":0. Caller frees. NULL when answer is not JSON. */
char *replay_plain(const char *answer, size_t len, const char *id, int64_t created) WUR;

/* Collects a stream into a chat.completion. */
struct replay_acc;

/* max: the most content bytes collected (past it the answer is not
 * cacheable). Caller frees with replay_acc_free. */
struct replay_acc *replay_acc_new(size_t max) WUR;
void replay_acc_free(struct replay_acc *a);

/* One OpenAI chunk (borrowed). A chunk with tool calls, an error, or content
 * past max makes the answer uncacheable. */
void replay_acc_chunk(struct replay_acc *a, const struct cJSON *chunk);

/* The collected chat.completion as JSON text, or NULL when the stream gave
 * nothing cacheable (no content, tool calls, an error, too big). Caller frees. */
char *replay_acc_answer(const struct replay_acc *a) WUR;

#endif
