/* anthropic.h -- OpenAI Chat Completions <-> Anthropic Messages translation, pure.
 *
 * The proxy speaks OpenAI to its clients; deployments whose model has the
 * anthropic/ prefix are called with the Messages API. These functions
 * translate requests, answers, errors and stream events; they do no I/O and
 * read no clock (created times are arguments). Mapping: docs/routing.md. */
#ifndef SLODRILL_ROUTER_ANTHROPIC_H
#define SLODRILL_ROUTER_ANTHROPIC_H

#include <stddef.h>
#include <stdint.h>
#include "common/compiler.h"

struct cJSON;
struct ynode;

#define ANTHROPIC_VERSION "2023-06-01"
#define ANTHROPIC_DEFAULT_MAX_TOKENS 1024
#define ANTHROPIC_MAX_BREAKPOINTS 4   /* the API's limit of cache_control blocks a request */
#define ANTHROPIC_MAX_CACHE_POINTS 16 /* injection points one deployment may list */

/* Prompt caching: where the router places "cache_control": {"type":
 * "ephemeral"} on the way out. One entry of LiteLLM's litellm_params
 * cache_control_injection_points (location: message, role and/or index,
 * optional control: {type: ephemeral, ttl: 5m|1h}). docs/routing.md. */
enum anthropic_role {
    ANTHROPIC_ROLE_ANY = 0, /* only index given */
    ANTHROPIC_ROLE_SYSTEM,  /* system and developer messages: the system prompt */
    ANTHROPIC_ROLE_USER,
    ANTHROPIC_ROLE_ASSISTANT
};

struct anthropic_cache_point {
    enum anthropic_role role;
    int has_index;
    long index; /* into the client's messages; negative counts from the end (-1: the last) */
    int ttl_1h; /* control.ttl: 1h (else the default 5 minutes) */
};

/* Per-deployment translation options; NULL means none. */
struct anthropic_opts {
    const struct anthropic_cache_point *cache; /* borrowed */
    size_t ncache;
};

/* Parses a cache_control_injection_points value (a YAML list, borrowed).
 * *out is malloc'ed (caller frees with free), *nout its count. 0, or -1
 * with "file:line:col: ..." in err. */
int anthropic_cache_points_parse(const struct ynode *list, struct anthropic_cache_point **out,
                                 size_t *nout, char *err, size_t errlen) WUR;

/* Token counts as Anthropic reports them (input excludes the cache). */
struct anthropic_usage {
    long input, cache_creation, cache_read, output;
};

/* The Messages API URL for an api_base: BASE/v1/messages, BASE/messages when
 * BASE ends in /v1, BASE itself when it ends in /v1/messages. Caller frees. */
char *anthropic_url(const char *api_base) WUR;

/* An OpenAI chat request (borrowed) as a Messages request body for model.
 * opts (borrowed, may be NULL): cache breakpoints to place. A client's own
 * cache_control on a content part is kept too. At most
 * ANTHROPIC_MAX_BREAKPOINTS are placed: the system prompt's first, then the
 * latest messages'; a message sent as blocks carries its mark on its last
 * block. tools/functions, tool_choice/function_call, parallel_tool_calls,
 * assistant tool_calls, tool results and image_url parts are translated
 * (docs/routing.md). Caller frees. NULL with err when the request cannot be
 * expressed: out of memory, or the client's mistake (messages not an
 * array, tool call arguments that are not a JSON object, a tool message
 * without tool_call_id, an image URL that is neither http(s) nor a base64
 * data: URL, a non-function tool, an unknown tool_choice), with err naming
 * the place ("messages[3]: ...", "tools[0]: ...", "tool_choice ..."). */
char *anthropic_request(const struct cJSON *openai, const char *model,
                        const struct anthropic_opts *opts, char *err, size_t errlen) WUR;

/* A Messages answer as an OpenAI chat.completion object; created is the Unix
 * time to report. Text blocks join into message.content, tool_use blocks
 * become message.tool_calls (content null when there is no text). *u
 * receives the usage. NULL when body is not a Messages answer. Caller frees
 * with cJSON_Delete. */
struct cJSON *anthropic_response(const char *body, size_t len, int64_t created,
                                 struct anthropic_usage *u) WUR;

/* An Anthropic error body (or any body) as an OpenAI error body for status.
 * Caller frees. */
char *anthropic_error(const char *body, size_t len, int status) WUR;

/* The error.type of an Anthropic error body into type ("" when none), and 1
 * when the message says the account ran out of credit (a 400 that is really
 * the key's problem, like OpenAI's insufficient_quota). */
int anthropic_error_type(const char *body, size_t len, char *type, size_t typelen);

/* "end_turn" -> "stop" and so on; NULL stays NULL. Borrowed. */
const char *anthropic_finish_reason(const char *stop_reason);

/* Stream translation, one SSE event at a time. */
struct anthropic_stream;

/* created: the Unix time every chunk reports. Caller frees with
 * anthropic_stream_free. */
struct anthropic_stream *anthropic_stream_new(int64_t created) WUR;
void anthropic_stream_free(struct anthropic_stream *s);

/* What one event became: up to two OpenAI chunks (caller owns them and frees
 * with cJSON_Delete), whether the stream is complete (message_stop: the
 * caller sends data: [DONE] after the chunks), and whether it was an error
 * event (chunk[0] is then {"error":{...}} in OpenAI's format). */
struct anthropic_out {
    struct cJSON *chunk[2];
    int n;
    int done;
    int error;
};

/* Translates one event (event name and its data). 0, or -1 with err when the
 * data is not JSON. A tool_use block start yields a delta.tool_calls chunk
 * with index (tool blocks counted from 0), id, type and name; its
 * input_json_delta events yield argument fragments for that index.
 * message_stop yields a usage chunk ("choices":[]) and done. */
int anthropic_stream_event(struct anthropic_stream *s, const char *event, const char *data,
                           size_t len, struct anthropic_out *out, char *err, size_t errlen) WUR;

/* Usage seen so far (message_start, then message_delta's running totals). */
void anthropic_stream_usage(const struct anthropic_stream *s, struct anthropic_usage *u);

#endif
