/* fake_anthropic.c -- the Anthropic Messages wire, byte for byte.
 *
 * Follows /work/shared/reference/providers.md: compact JSON errors with a
 * request_id, 529 overloaded_error, `request-id` and anthropic-ratelimit-*
 * headers; streams of `event:` + `data:` pairs in the documented order
 * (message_start, content_block_start, ping, content_block_delta x N,
 * content_block_stop, message_delta with cumulative usage, message_stop), the
 * JSON padded with spaces before its closing brace as the real API does.
 *
 * Tool use (Anthropic's "Tool use" docs): a request with tools whose last
 * message is not a tool_result is answered by calling a tool (tool_choice's,
 * else the first) with {"query": <the last message's text, cut>}, or {} when
 * its schema has no properties; stop_reason tool_use. Streamed, the block is
 * content_block_start tool_use, then input_json_delta events (one per token
 * the answer has) whose partial_json joins to the input. After a tool_result
 * the answer is text, as without tools. */
#include "fakeproviders/fake_int.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <event2/http.h>

#include "common/clock.h"

#define ANT_RPM_LIMIT 4000
#define ANT_ITPM_LIMIT 2000000
#define ANT_OTPM_LIMIT 400000
#define ANT_TOOL_NAME_MAX 64  /* the API's limit on a tool name */
#define ANT_TOOL_QUERY_MAX 48 /* bytes of the user's words a tool call's input carries */

/* The first position at or after pos that starts a UTF-8 character: a cut
 * there leaves every piece valid UTF-8. */
static size_t utf8_start(const char *s, size_t len, size_t pos)
{
    while (pos < len && ((unsigned char)s[pos] & 0xC0) == 0x80) pos++;
    return pos;
}

/* The text of a message: its string content, or its first text block. */
static const char *last_text(const cJSON *m)
{
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "content"), *b, *t;
    if (cJSON_IsString(c)) return c->valuestring;
    cJSON_ArrayForEach(b, c)
    {
        t = cJSON_GetObjectItemCaseSensitive(b, "text");
        if (cJSON_IsString(t)) return t->valuestring;
    }
    return "";
}

/* Whether the answer calls a tool, and which with what (r->tool_*): tools
 * given, tool_choice not none, and the last message not a tool result (the
 * model asked and now has what it needed: it speaks). 0, or 1 with *e
 * filled for a request the API would refuse. */
static int ant_tool_plan(struct fake_req *r, const cJSON *body, const cJSON *msgs,
                         struct fake_errinfo *e)
{
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive(body, "tools");
    const cJSON *choice = cJSON_GetObjectItemCaseSensitive(body, "tool_choice");
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(choice, "type");
    const cJSON *last = cJSON_GetArrayItem(msgs, cJSON_GetArraySize(msgs) - 1);
    const cJSON *tool, *b, *t, *name = NULL, *props;
    struct buf in;
    char q[ANT_TOOL_QUERY_MAX + 1];
    const char *text;
    size_t n;
    int rc = 0;

    if (!cJSON_IsArray(tools) || cJSON_GetArraySize(tools) == 0) return 0;
    if (cJSON_IsString(ct) && strcmp(ct->valuestring, "none") == 0) return 0;
    cJSON_ArrayForEach(b, cJSON_GetObjectItemCaseSensitive(last, "content"))
    {
        t = cJSON_GetObjectItemCaseSensitive(b, "type");
        if (cJSON_IsString(t) && strcmp(t->valuestring, "tool_result") == 0) return 0;
    }
    tool = cJSON_GetArrayItem(tools, 0);
    if (cJSON_IsString(ct) && strcmp(ct->valuestring, "tool") == 0) {
        const cJSON *want = cJSON_GetObjectItemCaseSensitive(choice, "name");
        cJSON_ArrayForEach(tool, tools)
        {
            name = cJSON_GetObjectItemCaseSensitive(tool, "name");
            if (cJSON_IsString(want) && cJSON_IsString(name) &&
                strcmp(want->valuestring, name->valuestring) == 0)
                break;
        }
        if (tool == NULL) {
            e->kind = FAKE_ERR_HTTP;
            e->status = 400;
            e->message = "tool_choice.name: the named tool is not in tools";
            return 1;
        }
    }
    name = cJSON_GetObjectItemCaseSensitive(tool, "name");
    if (!cJSON_IsString(name)) {
        e->kind = FAKE_ERR_MISSING;
        e->field = "tools.0.name";
        return 1;
    }
    if (strlen(name->valuestring) > ANT_TOOL_NAME_MAX) {
        e->kind = FAKE_ERR_HTTP;
        e->status = 400;
        e->message = "tools.0.name: String should have at most 64 characters";
        return 1;
    }
    snprintf(r->tool_name, sizeof r->tool_name, "%s", name->valuestring);
    props = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(tool, "input_schema"),
                                             "properties");
    buf_init(&in, sizeof r->tool_input - 1);
    if (cJSON_IsObject(props) && props->child != NULL) {
        text = last_text(last);
        n = strlen(text);
        if (n > ANT_TOOL_QUERY_MAX) {
            n = ANT_TOOL_QUERY_MAX;
            while (n > 0 && ((unsigned char)text[n] & 0xC0) == 0x80) n--; /* whole characters */
        }
        memcpy(q, text, n);
        q[n] = '\0';
        rc |= buf_puts(&in, "{\"query\":");
        rc |= fake_json_str(&in, q);
        rc |= buf_puts(&in, "}");
    } else {
        rc |= buf_puts(&in, "{}");
    }
    if (rc == 0) {
        snprintf(r->tool_input, sizeof r->tool_input, "%s", in.data);
        r->tool_use = 1;
    } else {
        e->kind = FAKE_ERR_HTTP; /* cannot happen: 48 bytes escape to at most 288 */
        e->status = 500;
    }
    buf_cleanup(&in);
    return rc ? 1 : 0;
}

static int ant_parse(struct fake_req *r, const cJSON *body, struct fake_errinfo *e)
{
    const cJSON *msgs, *m, *v;
    size_t bytes = 0;
    int n = 0;

    if (body == NULL || !cJSON_IsObject(body)) {
        e->kind = FAKE_ERR_BAD_JSON;
        return 1;
    }
    v = cJSON_GetObjectItemCaseSensitive(body, "model");
    if (!cJSON_IsString(v)) {
        e->kind = FAKE_ERR_MISSING;
        e->field = "model";
        return 1;
    }
    snprintf(r->req_model, sizeof r->req_model, "%s", v->valuestring);
    msgs = cJSON_GetObjectItemCaseSensitive(body, "messages");
    if (!cJSON_IsArray(msgs)) {
        e->kind = FAKE_ERR_MISSING;
        e->field = "messages";
        return 1;
    }
    v = cJSON_GetObjectItemCaseSensitive(body, "max_tokens");
    if (!cJSON_IsNumber(v)) {
        e->kind = FAKE_ERR_MISSING;
        e->field = "max_tokens";
        return 1;
    }
    if (v->valuedouble >= 1 && v->valuedouble < 1e9) r->max_tokens = (int)v->valuedouble;
    cJSON_ArrayForEach(m, msgs)
    {
        bytes += fake_json_text_bytes(cJSON_GetObjectItemCaseSensitive(m, "content"));
        n++;
    }
    bytes += fake_json_text_bytes(cJSON_GetObjectItemCaseSensitive(body, "system"));
    r->prompt_tokens = fake_json_estimate_tokens(bytes, n);
    fake_lock(r->f);
    fake_cache_lookup(fake_prompt_cache(r->f), r, body, clock_mono_us());
    fake_unlock(r->f);
    if (r->cache_marks_seen > FAKE_CACHE_MARKS) {
        e->kind = FAKE_ERR_HTTP;
        e->status = 400;
        e->message = "A maximum of 4 blocks with cache_control may be provided.";
        return 1;
    }
    if (ant_tool_plan(r, body, msgs, e) != 0) return 1;
    r->stream = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(body, "stream"));
    r->include_usage = 1;
    return 0;
}

static void ratelimit_headers(struct fake_req *r, struct evkeyvalq *h, int exhausted,
                              double retry_s)
{
    static const struct {
        const char *name;
        long limit;
    } fam[] = {{"requests", ANT_RPM_LIMIT},
               {"input-tokens", ANT_ITPM_LIMIT},
               {"output-tokens", ANT_OTPM_LIMIT},
               {"tokens", ANT_ITPM_LIMIT + ANT_OTPM_LIMIT}};
    unsigned used = fake_window_used(r->f);
    int64_t now = (int64_t)(clock_wall_us() / 1000000);
    char name[80], v[64], reset[40];

    fake_rfc3339(now + (exhausted ? (int64_t)ceil(retry_s) : 1), reset, sizeof reset);
    for (size_t i = 0; i < sizeof fam / sizeof fam[0]; i++) {
        long spent = i == 0 ? (long)used : (long)used * (r->prompt_tokens + 40);
        long left = exhausted ? 0 : fam[i].limit - (spent < fam[i].limit ? spent : fam[i].limit);
        snprintf(name, sizeof name, "anthropic-ratelimit-%s-limit", fam[i].name);
        snprintf(v, sizeof v, "%ld", fam[i].limit);
        evhttp_add_header(h, name, v);
        snprintf(name, sizeof name, "anthropic-ratelimit-%s-remaining", fam[i].name);
        snprintf(v, sizeof v, "%ld", left);
        evhttp_add_header(h, name, v);
        snprintf(name, sizeof name, "anthropic-ratelimit-%s-reset", fam[i].name);
        evhttp_add_header(h, name, reset);
    }
}

static int ant_ok_headers(struct fake_req *r, struct evkeyvalq *h)
{
    evhttp_add_header(h, "Content-Type",
                      r->stream ? "text/event-stream; charset=utf-8" : "application/json");
    evhttp_add_header(h, "request-id", r->request_id);
    evhttp_add_header(h, "anthropic-organization-id", "00000000-0000-4000-8000-510d7111a0e5");
    ratelimit_headers(r, h, 0, 0);
    return 0;
}

struct ant_err {
    const char *type, *message;
};

static void status_error(struct fake_req *r, int status, struct ant_err *o, struct buf *tmp)
{
    switch (status) {
    case 400: *o = (struct ant_err){"invalid_request_error", "Invalid request"}; break;
    case 401: *o = (struct ant_err){"authentication_error", "invalid x-api-key"}; break;
    case 403:
        *o = (struct ant_err){"permission_error",
                              "Your API key does not have permission to use the specified "
                              "resource."};
        break;
    case 404:
        buf_reset(tmp);
        *o = (struct ant_err){"not_found_error", "model: not found"};
        if (buf_printf(tmp, "model: %s", r->req_model[0] ? r->req_model : fake_model(r->f)) ==
            0)
            o->message = tmp->data;
        break;
    case 413:
        *o = (struct ant_err){"request_too_large",
                              "Request exceeds the maximum allowed number of bytes."};
        break;
    case 429:
        *o = (struct ant_err){"rate_limit_error", "This request would exceed your account's "
                                                  "rate limit. Please try again later."};
        break;
    case 504: *o = (struct ant_err){"timeout_error", "Request timeout"}; break;
    case 529: *o = (struct ant_err){"overloaded_error", "Overloaded"}; break;
    default:
        if (status >= 500) *o = (struct ant_err){"api_error", "Internal server error"};
        else *o = (struct ant_err){"invalid_request_error", "Invalid request"};
    }
}

static int error_json(struct fake_req *r, struct buf *out, const struct ant_err *o, int with_id)
{
    int rc = 0;
    rc |= buf_puts(out, "{\"type\":\"error\",\"error\":{\"type\":");
    rc |= fake_json_str(out, o->type);
    rc |= buf_puts(out, ",\"message\":");
    rc |= fake_json_str(out, o->message);
    rc |= buf_puts(out, "}");
    if (with_id) {
        rc |= buf_puts(out, ",\"request_id\":");
        rc |= fake_json_str(out, r->request_id);
    }
    rc |= buf_puts(out, "}");
    return rc ? -1 : 0;
}

static int ant_error(struct fake_req *r, const struct fake_errinfo *e, int *status,
                     struct evkeyvalq *h, struct buf *out)
{
    struct buf msg, tmp;
    struct ant_err o = {"api_error", "Internal server error"};
    int rc = -1, exhausted = 0;
    double retry = 0;
    char v[32];

    buf_init(&msg, 1 << 12);
    buf_init(&tmp, 1 << 12);
    switch (e->kind) {
    case FAKE_ERR_BAD_KEY:
        *status = 401;
        status_error(r, 401, &o, &tmp);
        break;
    case FAKE_ERR_NO_KEY:
        *status = 401;
        o = (struct ant_err){"authentication_error", "x-api-key header is required"};
        break;
    case FAKE_ERR_RATE_LIMIT:
        if (e->mode != NULL && strcmp(e->mode, "quota") == 0) {
            *status = 400;
            o = (struct ant_err){"invalid_request_error",
                                 "Your credit balance is too low to access the Anthropic API. "
                                 "Please go to Plans & Billing to upgrade or purchase credits."};
            break;
        }
        *status = 429;
        status_error(r, 429, &o, &tmp);
        retry = e->retry_after_s;
        exhausted = 1;
        break;
    case FAKE_ERR_OVERLOADED:
        *status = 529;
        status_error(r, 529, &o, &tmp);
        break;
    case FAKE_ERR_HTTP:
        *status = e->status;
        status_error(r, e->status, &o, &tmp);
        if (e->message != NULL) o.message = e->message;
        if (e->status == 429) {
            retry = 1;
            exhausted = 1;
        }
        break;
    case FAKE_ERR_BAD_JSON:
        *status = 400;
        o = (struct ant_err){"invalid_request_error",
                             "There was an error parsing the body of your request"};
        break;
    case FAKE_ERR_MISSING:
        *status = 400;
        if (buf_printf(&msg, "%s: Field required", e->field) != 0) goto out;
        o = (struct ant_err){"invalid_request_error", msg.data};
        break;
    case FAKE_ERR_NOT_FOUND:
        *status = 404;
        o = (struct ant_err){"not_found_error", "Not Found"};
        break;
    }
    if (error_json(r, out, &o, 1) != 0) goto out;
    evhttp_add_header(h, "Content-Type", "application/json");
    evhttp_add_header(h, "request-id", r->request_id);
    if (*status == 429) {
        snprintf(v, sizeof v, "%d", (int)ceil(retry));
        evhttp_add_header(h, "retry-after", v);
    }
    if (*status == 429 || *status == 200) ratelimit_headers(r, h, exhausted, retry);
    rc = 0;
out:
    buf_cleanup(&msg);
    buf_cleanup(&tmp);
    return rc;
}

/* A tool call's input is always whole (the answer's length only decides
 * how many pieces it streams in), so a tool call ends with tool_use. */
static const char *stop_reason(const struct fake_req *r)
{
    return r->tool_use ? "tool_use" : r->capped ? "max_tokens" : "end_turn";
}

/* "id":"toolu_...","name":... of the tool call: the id takes the message
 * id's random part, unique per request. */
static int tool_head(struct fake_req *r, struct buf *out)
{
    const char *rnd = strrchr(r->id, '_');
    int rc = 0;
    rc |= buf_printf(out, "\"id\":\"toolu_%s\",\"name\":", rnd ? rnd + 1 : r->id);
    rc |= fake_json_str(out, r->tool_name);
    return rc ? -1 : 0;
}

static int ant_body(struct fake_req *r, const char *text, struct buf *out)
{
    int rc = 0;
    rc |= buf_puts(out, "{\"id\":");
    rc |= fake_json_str(out, r->id);
    rc |= buf_puts(out, ",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
    rc |= fake_json_str(out, fake_model(r->f));
    if (r->tool_use) {
        rc |= buf_puts(out, ",\"content\":[{\"type\":\"tool_use\",");
        rc |= tool_head(r, out);
        rc |= buf_printf(out, ",\"input\":%s", r->tool_input);
    } else {
        rc |= buf_puts(out, ",\"content\":[{\"type\":\"text\",\"text\":");
        rc |= fake_json_str(out, text);
    }
    rc |= buf_printf(out,
                     "}],\"stop_reason\":\"%s\",\"stop_sequence\":null,\"usage\":{"
                     "\"input_tokens\":%d,\"cache_creation_input_tokens\":%d,"
                     "\"cache_read_input_tokens\":%d,\"output_tokens\":%d,"
                     "\"service_tier\":\"standard\"}}",
                     stop_reason(r), r->prompt_tokens, r->cache_creation, r->cache_read,
                     r->sent_tokens);
    return rc ? -1 : 0;
}

static int ant_npre(struct fake_req *r)
{
    (void)r;
    return 3;
}

static int ant_npost(struct fake_req *r)
{
    (void)r;
    return 3;
}

/* The spaces real streams put before an event's closing brace. */
static int pad_close(struct fake_req *r, struct buf *out)
{
    static const char spaces[] = "               }\n\n"; /* 15 spaces */
    size_t n = (size_t)(fake_rng_next(&r->rng_misc) % 16);
    int rc = buf_append(out, spaces + 15 - n, n + 3);
    return rc ? -1 : 0;
}

static int ant_pre(struct fake_req *r, int i, struct buf *out)
{
    int rc = 0;
    switch (i) {
    case 0:
        rc |= buf_puts(out, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":"
                            "{\"id\":");
        rc |= fake_json_str(out, r->id);
        rc |= buf_puts(out, ",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
        rc |= fake_json_str(out, fake_model(r->f));
        rc |= buf_printf(out,
                         ",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,"
                         "\"usage\":{\"input_tokens\":%d,\"cache_creation_input_tokens\":%d,"
                         "\"cache_read_input_tokens\":%d,\"output_tokens\":1,"
                         "\"service_tier\":\"standard\"}}",
                         r->prompt_tokens, r->cache_creation, r->cache_read);
        rc |= pad_close(r, out);
        break;
    case 1:
        if (r->tool_use) {
            rc |= buf_puts(out, "event: content_block_start\ndata: {\"type\":"
                                "\"content_block_start\",\"index\":0,\"content_block\":{\"type\":"
                                "\"tool_use\",");
            rc |= tool_head(r, out);
            rc |= buf_puts(out, ",\"input\":{}}");
        } else {
            rc |= buf_puts(out, "event: content_block_start\ndata: {\"type\":\"content_block_start\","
                                "\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}");
        }
        rc |= pad_close(r, out);
        break;
    default: rc |= buf_puts(out, "event: ping\ndata: {\"type\": \"ping\"}\n\n"); break;
    }
    return rc ? -1 : 0;
}

/* Piece k (r->sent_tokens) of out_tokens of the tool input: cut at whole
 * characters, the pieces join to the input. */
static int tool_piece(struct fake_req *r, struct buf *out)
{
    const char *in = r->tool_input;
    size_t len = strlen(in), n = r->out_tokens > 0 ? (size_t)r->out_tokens : 1;
    size_t k = (size_t)r->sent_tokens, a, b;
    char piece[sizeof r->tool_input];

    a = k >= n ? len : utf8_start(in, len, k * len / n);
    b = k + 1 >= n ? len : utf8_start(in, len, (k + 1) * len / n);
    memcpy(piece, in + a, b - a);
    piece[b - a] = '\0';
    return fake_json_str(out, piece);
}

static int ant_token(struct fake_req *r, const char *text, struct buf *out)
{
    int rc = 0;
    if (r->tool_use) {
        rc |= buf_puts(out, "event: content_block_delta\ndata: {\"type\":\"content_block_delta\","
                            "\"index\":0,\"delta\":{\"type\":\"input_json_delta\","
                            "\"partial_json\":");
        rc |= tool_piece(r, out);
        rc |= buf_puts(out, "}");
        rc |= pad_close(r, out);
        return rc ? -1 : 0;
    }
    rc |= buf_puts(out, "event: content_block_delta\ndata: {\"type\":\"content_block_delta\","
                        "\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":");
    rc |= fake_json_str(out, text);
    rc |= buf_puts(out, "}");
    rc |= pad_close(r, out);
    return rc ? -1 : 0;
}

static int ant_post(struct fake_req *r, int i, struct buf *out)
{
    int rc = 0;
    switch (i) {
    case 0:
        rc |= buf_puts(out, "event: content_block_stop\ndata: {\"type\":\"content_block_stop\","
                            "\"index\":0");
        rc |= pad_close(r, out);
        break;
    case 1:
        rc |= buf_printf(out,
                         "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{"
                         "\"stop_reason\":\"%s\",\"stop_sequence\":null},\"usage\":{"
                         "\"input_tokens\":%d,\"cache_creation_input_tokens\":%d,"
                         "\"cache_read_input_tokens\":%d,\"output_tokens\":%d}",
                         stop_reason(r), r->prompt_tokens, r->cache_creation, r->cache_read,
                         r->sent_tokens);
        rc |= pad_close(r, out);
        break;
    default:
        rc |= buf_puts(out, "event: message_stop\ndata: {\"type\":\"message_stop\"");
        rc |= pad_close(r, out);
    }
    return rc ? -1 : 0;
}

static int ant_error_event(struct fake_req *r, int status, struct buf *out)
{
    struct ant_err o;
    struct buf tmp;
    int rc;
    buf_init(&tmp, 1 << 12);
    status_error(r, status ? status : 529, &o, &tmp);
    rc = buf_puts(out, "event: error\ndata: ") != 0 || error_json(r, out, &o, 0) != 0 ||
         buf_puts(out, "\n\n") != 0;
    buf_cleanup(&tmp);
    return rc ? -1 : 0;
}

static int ant_models(struct fake_req *r, struct buf *out)
{
    int rc = 0;
    const char *m = fake_model(r->f);
    rc |= buf_puts(out, "{\"data\":[{\"type\":\"model\",\"id\":");
    rc |= fake_json_str(out, m);
    rc |= buf_puts(out, ",\"display_name\":");
    rc |= fake_json_str(out, m);
    rc |= buf_puts(out, ",\"created_at\":\"2025-02-19T00:00:00Z\"}],\"has_more\":false,"
                        "\"first_id\":");
    rc |= fake_json_str(out, m);
    rc |= buf_puts(out, ",\"last_id\":");
    rc |= fake_json_str(out, m);
    rc |= buf_puts(out, "}");
    return rc ? -1 : 0;
}

const struct fake_wire fake_anthropic_wire = {
    .parse = ant_parse,
    .ok_headers = ant_ok_headers,
    .error = ant_error,
    .body = ant_body,
    .npre = ant_npre,
    .npost = ant_npost,
    .pre = ant_pre,
    .token = ant_token,
    .post = ant_post,
    .error_event = ant_error_event,
    .models = ant_models,
};
