/* anthropic.c -- OpenAI Chat Completions <-> Anthropic Messages translation, pure.
 *
 * DESIGN: requests go out as Messages bodies (system messages become the
 * top-level system string, everything else user/assistant messages with
 * string content, max_tokens always present; where prompt caching is
 * configured, the marked system prompt or message becomes one text block
 * with cache_control, up to the API's 4); answers, errors and stream
 * events come back as the OpenAI objects a Chat Completions client expects.
 * Wire facts: /work/shared/reference/providers.md and Anthropic's Messages
 * API docs ("Streaming Messages": message_start, content_block_start,
 * content_block_delta, content_block_stop, message_delta with cumulative
 * usage, message_stop; ping and error events). */
#include "router/anthropic.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/yamlx.h"

#define ANT_MAX_TEXT (8u << 20) /* one message's flattened text */

struct anthropic_stream {
    char id[128];
    char model[128];
    int64_t created;
    struct anthropic_usage u;
};

char *anthropic_url(const char *api_base)
{
    struct buf b;
    size_t n = strlen(api_base);
    char *s = NULL;
    int rc;

    buf_init(&b, 0);
    if (n >= 12 && !strcmp(api_base + n - 12, "/v1/messages"))
        rc = buf_puts(&b, api_base);
    else if (n >= 3 && !strcmp(api_base + n - 3, "/v1"))
        rc = buf_printf(&b, "%s/messages", api_base);
    else
        rc = buf_printf(&b, "%s/v1/messages", api_base);
    if (rc == 0)
        s = buf_steal(&b);
    buf_cleanup(&b);
    return s;
}

/* Text of an OpenAI content value: a string, or the text parts of an array
 * joined with "\n". 0 or -1 (too long / out of memory). */
static int ant_flatten(const cJSON *content, struct buf *out)
{
    const cJSON *part;
    int first = 1;

    if (cJSON_IsString(content))
        return buf_puts(out, content->valuestring);
    if (!cJSON_IsArray(content))
        return 0;
    cJSON_ArrayForEach(part, content)
    {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (cJSON_IsString(part))
            t = part;
        if (!cJSON_IsString(t) || !t->valuestring[0])
            continue;
        if (!first && buf_puts(out, "\n") != 0)
            return -1;
        if (buf_puts(out, t->valuestring) != 0)
            return -1;
        first = 0;
    }
    return 0;
}

/* ---- prompt caching on the way out ---- */

int anthropic_cache_points_parse(const struct ynode *list, struct anthropic_cache_point **out,
                                 size_t *nout, char *err, size_t errlen)
{
    static const char *const keys[] = {"location", "role", "index", "control", NULL};
    static const char *const ckeys[] = {"type", "ttl", NULL};
    struct anthropic_cache_point *v = NULL;
    size_t i;
    int rc = -1;

    *out = NULL;
    *nout = 0;
    if (list->type != YNODE_SEQ || list->n == 0) {
        yamlx_error(err, errlen, list,
                    "cache_control_injection_points must be a list, e.g. "
                    "[{location: message, role: system}]");
        goto out;
    }
    if (list->n > ANTHROPIC_MAX_CACHE_POINTS) {
        yamlx_error(err, errlen, list, "cache_control_injection_points has %zu entries; at most %d",
                    list->n, ANTHROPIC_MAX_CACHE_POINTS);
        goto out;
    }
    if (!(v = calloc(list->n, sizeof *v))) {
        yamlx_error(err, errlen, list, "out of memory");
        goto out;
    }
    for (i = 0; i < list->n; i++) {
        const struct ynode *e = list->items[i], *x, *c;
        struct anthropic_cache_point *p = &v[i];
        const char *s;

        if (e->type != YNODE_MAP) {
            yamlx_error(err, errlen, e, "an injection point is a map, e.g. "
                                        "{location: message, role: system}");
            goto out;
        }
        if (yamlx_check_keys(e, keys, "a cache_control_injection_points entry", err, errlen) != 0)
            goto out;
        x = yamlx_get(e, "location");
        if (!x || yamlx_string(x, &s, err, errlen) != 0 || strcmp(s, "message")) {
            yamlx_error(err, errlen, x ? x : e,
                        "location must be message (LiteLLM's only injection location)");
            goto out;
        }
        if ((x = yamlx_get(e, "role"))) {
            if (yamlx_string(x, &s, err, errlen) != 0)
                goto out;
            if (!strcmp(s, "system"))
                p->role = ANTHROPIC_ROLE_SYSTEM;
            else if (!strcmp(s, "user"))
                p->role = ANTHROPIC_ROLE_USER;
            else if (!strcmp(s, "assistant"))
                p->role = ANTHROPIC_ROLE_ASSISTANT;
            else {
                yamlx_error(err, errlen, x, "role must be system, user or assistant (got '%s')",
                            s);
                goto out;
            }
        }
        if ((x = yamlx_get(e, "index"))) {
            if (yamlx_long(x, &p->index, err, errlen) != 0)
                goto out;
            p->has_index = 1;
        }
        if (p->role == ANTHROPIC_ROLE_ANY && !p->has_index) {
            yamlx_error(err, errlen, e, "an injection point needs a role or an index, e.g. "
                                        "role: system, or index: -1 (the last message)");
            goto out;
        }
        if ((c = yamlx_get(e, "control"))) {
            if (c->type != YNODE_MAP) {
                yamlx_error(err, errlen, c, "control must be a map, e.g. {type: ephemeral, ttl: 1h}");
                goto out;
            }
            if (yamlx_check_keys(c, ckeys, "control", err, errlen) != 0)
                goto out;
            if ((x = yamlx_get(c, "type")) &&
                (yamlx_string(x, &s, err, errlen) != 0 || strcmp(s, "ephemeral"))) {
                yamlx_error(err, errlen, x, "control.type must be ephemeral (the only cache type)");
                goto out;
            }
            if ((x = yamlx_get(c, "ttl"))) {
                if (yamlx_string(x, &s, err, errlen) != 0)
                    goto out;
                if (!strcmp(s, "1h"))
                    p->ttl_1h = 1;
                else if (strcmp(s, "5m")) {
                    yamlx_error(err, errlen, x, "control.ttl must be 5m or 1h (got '%s')", s);
                    goto out;
                }
            }
        }
    }
    *out = v;
    *nout = list->n;
    v = NULL;
    rc = 0;
out:
    free(v);
    return rc;
}

/* An OpenAI role as an injection point names it. */
static enum anthropic_role ant_role(const char *r)
{
    if (!strcmp(r, "system") || !strcmp(r, "developer"))
        return ANTHROPIC_ROLE_SYSTEM;
    if (!strcmp(r, "assistant"))
        return ANTHROPIC_ROLE_ASSISTANT;
    if (!strcmp(r, "user"))
        return ANTHROPIC_ROLE_USER;
    return ANTHROPIC_ROLE_ANY; /* tool and function results: only an index reaches them */
}

/* Whether client message i of n is a breakpoint: 0 no, 1 five minutes, 2
 * one hour. From the configured points, and the client's own cache_control
 * on a content part (kept, as LiteLLM passes it through). */
static int ant_mark(const struct anthropic_opts *o, long i, long n, enum anthropic_role role,
                    const cJSON *content)
{
    const cJSON *part;
    int mark = 0;
    size_t k;

    for (k = 0; o && k < o->ncache; k++) {
        const struct anthropic_cache_point *p = &o->cache[k];
        long idx = p->index < 0 ? n + p->index : p->index;
        if ((p->has_index && idx != i) || (p->role != ANTHROPIC_ROLE_ANY && p->role != role))
            continue;
        if ((p->ttl_1h ? 2 : 1) > mark)
            mark = p->ttl_1h ? 2 : 1;
    }
    if (cJSON_IsArray(content)) {
        cJSON_ArrayForEach(part, content)
        {
            const cJSON *cc = cJSON_GetObjectItemCaseSensitive(part, "cache_control");
            const cJSON *ttl = cJSON_GetObjectItemCaseSensitive(cc, "ttl");
            int m = cJSON_IsString(ttl) && !strcmp(ttl->valuestring, "1h") ? 2 : 1;
            if (cJSON_IsObject(cc) && m > mark)
                mark = m;
        }
    }
    return mark;
}

/* [{"type":"text","text":text,"cache_control":{"type":"ephemeral"[,"ttl":"1h"]}}] */
static cJSON *ant_cached_text(const char *text, int mark)
{
    cJSON *arr = cJSON_CreateArray(), *b = cJSON_CreateObject(), *cc = cJSON_CreateObject();
    cJSON *ret = NULL;

    if (!arr || !b || !cc || !cJSON_AddStringToObject(cc, "type", "ephemeral") ||
        (mark == 2 && !cJSON_AddStringToObject(cc, "ttl", "1h")) ||
        !cJSON_AddStringToObject(b, "type", "text") || !cJSON_AddStringToObject(b, "text", text))
        goto out;
    cJSON_AddItemToObject(b, "cache_control", cc);
    cc = NULL;
    cJSON_AddItemToArray(arr, b);
    b = NULL;
    ret = arr;
    arr = NULL;
out:
    cJSON_Delete(cc);
    cJSON_Delete(b);
    cJSON_Delete(arr);
    return ret;
}

/* Keeps at most ANTHROPIC_MAX_BREAKPOINTS marks (the system prompt's, then
 * the latest messages'; the API refuses a fifth) and, as the API requires
 * longer TTLs before shorter ones, makes every mark after a 5-minute one a
 * 5-minute one. */
static void ant_marks_fit(int *sys_mark, int *mark, size_t n)
{
    int budget = ANTHROPIC_MAX_BREAKPOINTS, short_seen = 0;
    size_t j;

    if (*sys_mark)
        budget--;
    for (j = n; j-- > 0;) {
        if (mark[j] && budget > 0)
            budget--;
        else
            mark[j] = 0;
    }
    short_seen = *sys_mark == 1;
    for (j = 0; j < n; j++) {
        if (mark[j] == 2 && short_seen)
            mark[j] = 1;
        if (mark[j] == 1)
            short_seen = 1;
    }
}

char *anthropic_request(const cJSON *openai, const char *model, const struct anthropic_opts *opts,
                        char *err, size_t errlen)
{
    cJSON *out = NULL, *msgs = NULL, **am_of = NULL, *sys;
    const cJSON *in_msgs, *m, *v;
    struct buf system, text;
    char *s = NULL;
    double max_tokens = ANTHROPIC_DEFAULT_MAX_TOKENS;
    int *mark = NULL, sys_mark = 0;
    long i = 0, n;
    size_t nout = 0, j;

    buf_init(&system, ANT_MAX_TEXT);
    buf_init(&text, ANT_MAX_TEXT);
    in_msgs = cJSON_GetObjectItemCaseSensitive(openai, "messages");
    if (!cJSON_IsArray(in_msgs)) {
        snprintf(err, errlen, "messages must be an array");
        goto out;
    }
    n = cJSON_GetArraySize(in_msgs);
    if (!(mark = calloc((size_t)n + 1, sizeof *mark)) ||
        !(am_of = calloc((size_t)n + 1, sizeof *am_of)))
        goto oom;
    if (!(out = cJSON_CreateObject()) || !cJSON_AddStringToObject(out, "model", model))
        goto oom;
    v = cJSON_GetObjectItemCaseSensitive(openai, "max_completion_tokens");
    if (!cJSON_IsNumber(v))
        v = cJSON_GetObjectItemCaseSensitive(openai, "max_tokens");
    if (cJSON_IsNumber(v) && v->valuedouble >= 1 && v->valuedouble < 1e9)
        max_tokens = (double)(long)v->valuedouble;
    if (!cJSON_AddNumberToObject(out, "max_tokens", max_tokens))
        goto oom;
    if (!(msgs = cJSON_CreateArray()))
        goto oom;
    for (m = in_msgs->child; m; m = m->next, i++) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        const char *r = cJSON_IsString(role) ? role->valuestring : "user";
        int mk = ant_mark(opts, i, n, ant_role(r), content);
        cJSON *am;

        buf_reset(&text);
        if (ant_flatten(content, &text) != 0)
            goto toolong;
        if (!text.len)
            continue; /* Anthropic rejects empty text content */
        if (!strcmp(r, "system") || !strcmp(r, "developer")) {
            if ((system.len && buf_puts(&system, "\n\n") != 0) ||
                buf_append(&system, text.data, text.len) != 0)
                goto toolong;
            if (mk > sys_mark)
                sys_mark = mk;
            continue;
        }
        /* tool and function results have no plain equivalent: sent as the user's words */
        if (strcmp(r, "assistant"))
            r = "user";
        if (!(am = cJSON_CreateObject()))
            goto oom;
        cJSON_AddItemToArray(msgs, am);
        if (!cJSON_AddStringToObject(am, "role", r) ||
            !cJSON_AddStringToObject(am, "content", text.data))
            goto oom;
        am_of[nout] = am;
        mark[nout++] = mk;
    }
    if (!system.len)
        sys_mark = 0;
    ant_marks_fit(&sys_mark, mark, nout);
    for (j = 0; j < nout; j++) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(am_of[j], "content");
        cJSON *blocks;
        if (!mark[j])
            continue;
        if (!(blocks = ant_cached_text(c->valuestring, mark[j])))
            goto oom;
        if (!cJSON_ReplaceItemInObjectCaseSensitive(am_of[j], "content", blocks)) {
            cJSON_Delete(blocks);
            goto oom;
        }
    }
    if (system.len) {
        /* the system prompt: a string, or one text block carrying the breakpoint */
        sys = sys_mark ? ant_cached_text(system.data, sys_mark) : cJSON_CreateString(system.data);
        if (!sys)
            goto oom;
        cJSON_AddItemToObject(out, "system", sys);
    }
    cJSON_AddItemToObject(out, "messages", msgs);
    msgs = NULL;
    v = cJSON_GetObjectItemCaseSensitive(openai, "temperature");
    if (cJSON_IsNumber(v)) {
        /* OpenAI allows 0..2, Anthropic 0..1 */
        double t = v->valuedouble < 0 ? 0 : v->valuedouble > 1 ? 1 : v->valuedouble;
        if (!cJSON_AddNumberToObject(out, "temperature", t))
            goto oom;
    }
    v = cJSON_GetObjectItemCaseSensitive(openai, "top_p");
    if (cJSON_IsNumber(v) && !cJSON_AddNumberToObject(out, "top_p", v->valuedouble))
        goto oom;
    v = cJSON_GetObjectItemCaseSensitive(openai, "stop");
    if (cJSON_IsString(v) || cJSON_IsArray(v)) {
        cJSON *seq = cJSON_AddArrayToObject(out, "stop_sequences");
        const cJSON *x;
        if (!seq)
            goto oom;
        if (cJSON_IsString(v)) {
            if (!cJSON_AddItemToArray(seq, cJSON_CreateString(v->valuestring)))
                goto oom;
        } else {
            cJSON_ArrayForEach(x, v)
            {
                if (cJSON_IsString(x) && x->valuestring[0] &&
                    !cJSON_AddItemToArray(seq, cJSON_CreateString(x->valuestring)))
                    goto oom;
            }
        }
    }
    v = cJSON_GetObjectItemCaseSensitive(openai, "user");
    if (cJSON_IsString(v) && v->valuestring[0]) {
        cJSON *md = cJSON_AddObjectToObject(out, "metadata");
        if (!md || !cJSON_AddStringToObject(md, "user_id", v->valuestring))
            goto oom;
    }
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(openai, "stream")) &&
        !cJSON_AddTrueToObject(out, "stream"))
        goto oom;
    s = cJSON_PrintUnformatted(out);
    if (!s)
        goto oom;
    goto out;
toolong:
    snprintf(err, errlen, "a message is longer than %u bytes", ANT_MAX_TEXT);
    goto out;
oom:
    snprintf(err, errlen, "out of memory");
out:
    free(mark);
    free(am_of);
    cJSON_Delete(msgs);
    cJSON_Delete(out);
    buf_cleanup(&system);
    buf_cleanup(&text);
    return s;
}

const char *anthropic_finish_reason(const char *stop_reason)
{
    if (!stop_reason)
        return NULL;
    if (!strcmp(stop_reason, "max_tokens"))
        return "length";
    if (!strcmp(stop_reason, "tool_use"))
        return "tool_calls";
    if (!strcmp(stop_reason, "refusal"))
        return "content_filter";
    return "stop"; /* end_turn, stop_sequence, pause_turn, anything new */
}

static long ant_num(const cJSON *obj, const char *name, long dflt)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsNumber(x) && x->valuedouble >= 0 && x->valuedouble < 1e15
               ? (long)x->valuedouble
               : dflt;
}

static void ant_take_usage(const cJSON *u, struct anthropic_usage *out)
{
    if (!cJSON_IsObject(u))
        return;
    out->input = ant_num(u, "input_tokens", out->input);
    out->cache_creation = ant_num(u, "cache_creation_input_tokens", out->cache_creation);
    out->cache_read = ant_num(u, "cache_read_input_tokens", out->cache_read);
    out->output = ant_num(u, "output_tokens", out->output);
}

/* The OpenAI usage object for u. NULL when out of memory. Cache reads are
 * prompt_tokens_details.cached_tokens, as OpenAI reports its own; both
 * cache figures also go out under Anthropic's names, as LiteLLM's usage
 * carries them (a cache write costs more than plain input). */
static cJSON *ant_usage_json(const struct anthropic_usage *u)
{
    cJSON *o = cJSON_CreateObject(), *d;
    long prompt = u->input + u->cache_creation + u->cache_read;
    if (!o)
        return NULL;
    if (!cJSON_AddNumberToObject(o, "prompt_tokens", (double)prompt) ||
        !cJSON_AddNumberToObject(o, "completion_tokens", (double)u->output) ||
        !cJSON_AddNumberToObject(o, "total_tokens", (double)(prompt + u->output)) ||
        !(d = cJSON_AddObjectToObject(o, "prompt_tokens_details")) ||
        !cJSON_AddNumberToObject(d, "cached_tokens", (double)u->cache_read) ||
        !cJSON_AddNumberToObject(o, "cache_creation_input_tokens", (double)u->cache_creation) ||
        !cJSON_AddNumberToObject(o, "cache_read_input_tokens", (double)u->cache_read)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

cJSON *anthropic_response(const char *body, size_t len, int64_t created,
                          struct anthropic_usage *u)
{
    cJSON *in = cJSON_ParseWithLength(body, len), *out = NULL, *ret = NULL;
    cJSON *choices, *choice, *msg, *usage;
    const cJSON *type, *content, *blk, *id, *model, *stop;
    struct buf text;
    const char *finish;

    buf_init(&text, ANT_MAX_TEXT);
    memset(u, 0, sizeof *u);
    type = cJSON_GetObjectItemCaseSensitive(in, "type");
    content = cJSON_GetObjectItemCaseSensitive(in, "content");
    if (!cJSON_IsString(type) || strcmp(type->valuestring, "message") || !cJSON_IsArray(content))
        goto out;
    cJSON_ArrayForEach(blk, content)
    {
        const cJSON *bt = cJSON_GetObjectItemCaseSensitive(blk, "type");
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(blk, "text");
        if (cJSON_IsString(bt) && !strcmp(bt->valuestring, "text") && cJSON_IsString(t) &&
            buf_puts(&text, t->valuestring) != 0)
            goto out;
    }
    ant_take_usage(cJSON_GetObjectItemCaseSensitive(in, "usage"), u);
    id = cJSON_GetObjectItemCaseSensitive(in, "id");
    model = cJSON_GetObjectItemCaseSensitive(in, "model");
    stop = cJSON_GetObjectItemCaseSensitive(in, "stop_reason");
    finish = anthropic_finish_reason(cJSON_IsString(stop) ? stop->valuestring : NULL);
    if (!(out = cJSON_CreateObject()) ||
        !cJSON_AddStringToObject(out, "id", cJSON_IsString(id) ? id->valuestring : "msg") ||
        !cJSON_AddStringToObject(out, "object", "chat.completion") ||
        !cJSON_AddNumberToObject(out, "created", (double)created) ||
        !cJSON_AddStringToObject(out, "model", cJSON_IsString(model) ? model->valuestring : "") ||
        !(choices = cJSON_AddArrayToObject(out, "choices")) || !(choice = cJSON_CreateObject()))
        goto out;
    cJSON_AddItemToArray(choices, choice);
    if (!cJSON_AddNumberToObject(choice, "index", 0) ||
        !(msg = cJSON_AddObjectToObject(choice, "message")) ||
        !cJSON_AddStringToObject(msg, "role", "assistant") ||
        !cJSON_AddStringToObject(msg, "content", text.data ? text.data : "") ||
        !cJSON_AddNullToObject(msg, "refusal") || !cJSON_AddNullToObject(choice, "logprobs") ||
        !(finish ? cJSON_AddStringToObject(choice, "finish_reason", finish)
                 : cJSON_AddNullToObject(choice, "finish_reason")))
        goto out;
    if (!(usage = ant_usage_json(u)))
        goto out;
    cJSON_AddItemToObject(out, "usage", usage);
    ret = out;
    out = NULL;
out:
    cJSON_Delete(out);
    cJSON_Delete(in);
    buf_cleanup(&text);
    return ret;
}

int anthropic_error_type(const char *body, size_t len, char *type, size_t typelen)
{
    cJSON *j = cJSON_ParseWithLength(body ? body : "", len);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error"), *t, *m;
    int credit = 0;

    if (typelen)
        type[0] = '\0';
    t = cJSON_GetObjectItemCaseSensitive(e, "type");
    m = cJSON_GetObjectItemCaseSensitive(e, "message");
    if (cJSON_IsString(t))
        snprintf(type, typelen, "%s", t->valuestring);
    if (cJSON_IsString(m) && strstr(m->valuestring, "credit balance"))
        credit = 1;
    cJSON_Delete(j);
    return credit;
}

/* Anthropic error.type -> OpenAI type and code. */
static void ant_map_error(const char *atype, const char *msg, int status, const char **type,
                          const char **code)
{
    *type = status >= 500 ? "server_error" : "invalid_request_error";
    *code = NULL;
    if (!atype)
        return;
    if (!strcmp(atype, "authentication_error")) {
        *code = "invalid_api_key";
    } else if (!strcmp(atype, "permission_error")) {
        *code = "permission_denied";
    } else if (!strcmp(atype, "not_found_error")) {
        *code = msg && !strncmp(msg, "model:", 6) ? "model_not_found" : "not_found";
    } else if (!strcmp(atype, "request_too_large")) {
        *code = "request_too_large";
    } else if (!strcmp(atype, "rate_limit_error")) {
        *type = "requests";
        *code = "rate_limit_exceeded";
    } else if (!strcmp(atype, "overloaded_error")) {
        *type = "service_unavailable_error";
        *code = "server_is_overloaded";
    } else if (!strcmp(atype, "timeout_error")) {
        *type = "server_error";
        *code = "timeout";
    } else if (!strcmp(atype, "api_error")) {
        *type = "server_error";
    }
}

/* {"error":{"message","type","param":null,"code"}} for an Anthropic error
 * object (borrowed, may be NULL). */
static cJSON *ant_error_obj(const cJSON *e, int status, const char *fallback_msg)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(e, "type");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "message");
    const char *msg = cJSON_IsString(m) ? m->valuestring : fallback_msg;
    const char *type, *code;
    cJSON *root = cJSON_CreateObject(), *o;

    ant_map_error(cJSON_IsString(t) ? t->valuestring : NULL, msg, status, &type, &code);
    if (!root || !(o = cJSON_AddObjectToObject(root, "error")) ||
        !cJSON_AddStringToObject(o, "message", msg) ||
        !cJSON_AddStringToObject(o, "type", type) || !cJSON_AddNullToObject(o, "param") ||
        !(code ? cJSON_AddStringToObject(o, "code", code) : cJSON_AddNullToObject(o, "code"))) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

char *anthropic_error(const char *body, size_t len, int status)
{
    cJSON *j = cJSON_ParseWithLength(body ? body : "", len), *o;
    char fallback[256];
    char *s = NULL;

    snprintf(fallback, sizeof fallback, "the upstream answered HTTP %d: %.*s", status,
             (int)(len < 160 ? len : 160), body ? body : "");
    o = ant_error_obj(cJSON_GetObjectItemCaseSensitive(j, "error"), status, fallback);
    if (o)
        s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    cJSON_Delete(j);
    return s;
}

struct anthropic_stream *anthropic_stream_new(int64_t created)
{
    struct anthropic_stream *s = calloc(1, sizeof *s);
    if (s) {
        s->created = created;
        snprintf(s->id, sizeof s->id, "msg");
    }
    return s;
}

void anthropic_stream_free(struct anthropic_stream *s)
{
    free(s);
}

void anthropic_stream_usage(const struct anthropic_stream *s, struct anthropic_usage *u)
{
    *u = s->u;
}

/* A chunk head; choices is left for the caller. */
static cJSON *ant_chunk(const struct anthropic_stream *s)
{
    cJSON *c = cJSON_CreateObject();
    if (!c || !cJSON_AddStringToObject(c, "id", s->id) ||
        !cJSON_AddStringToObject(c, "object", "chat.completion.chunk") ||
        !cJSON_AddNumberToObject(c, "created", (double)s->created) ||
        !cJSON_AddStringToObject(c, "model", s->model)) {
        cJSON_Delete(c);
        return NULL;
    }
    return c;
}

/* A chunk with one choice: delta role/content as given, finish_reason. */
static cJSON *ant_delta_chunk(const struct anthropic_stream *s, const char *role,
                              const char *content, const char *finish)
{
    cJSON *c = ant_chunk(s), *choices, *ch, *d;
    if (!c)
        return NULL;
    if (!(choices = cJSON_AddArrayToObject(c, "choices")) || !(ch = cJSON_CreateObject()))
        goto fail;
    cJSON_AddItemToArray(choices, ch);
    if (!cJSON_AddNumberToObject(ch, "index", 0) || !(d = cJSON_AddObjectToObject(ch, "delta")))
        goto fail;
    if (role && !cJSON_AddStringToObject(d, "role", role))
        goto fail;
    if (content && !cJSON_AddStringToObject(d, "content", content))
        goto fail;
    if (!cJSON_AddNullToObject(ch, "logprobs") ||
        !(finish ? cJSON_AddStringToObject(ch, "finish_reason", finish)
                 : cJSON_AddNullToObject(ch, "finish_reason")))
        goto fail;
    return c;
fail:
    cJSON_Delete(c);
    return NULL;
}

static cJSON *ant_usage_chunk(const struct anthropic_stream *s)
{
    cJSON *c = ant_chunk(s), *u;
    if (!c)
        return NULL;
    if (!cJSON_AddArrayToObject(c, "choices") || !(u = ant_usage_json(&s->u))) {
        cJSON_Delete(c);
        return NULL;
    }
    cJSON_AddItemToObject(c, "usage", u);
    return c;
}

int anthropic_stream_event(struct anthropic_stream *s, const char *event, const char *data,
                           size_t len, struct anthropic_out *out, char *err, size_t errlen)
{
    cJSON *j = cJSON_ParseWithLength(data, len);
    const cJSON *t, *x, *y;
    const char *type;
    int rc = -1;

    memset(out, 0, sizeof *out);
    if (!cJSON_IsObject(j)) {
        snprintf(err, errlen, "stream event is not JSON");
        goto out;
    }
    t = cJSON_GetObjectItemCaseSensitive(j, "type");
    type = cJSON_IsString(t) ? t->valuestring : event ? event : "";
    if (!strcmp(type, "message_start")) {
        x = cJSON_GetObjectItemCaseSensitive(j, "message");
        y = cJSON_GetObjectItemCaseSensitive(x, "id");
        if (cJSON_IsString(y))
            snprintf(s->id, sizeof s->id, "%s", y->valuestring);
        y = cJSON_GetObjectItemCaseSensitive(x, "model");
        if (cJSON_IsString(y))
            snprintf(s->model, sizeof s->model, "%s", y->valuestring);
        ant_take_usage(cJSON_GetObjectItemCaseSensitive(x, "usage"), &s->u);
        out->chunk[out->n++] = ant_delta_chunk(s, "assistant", "", NULL);
    } else if (!strcmp(type, "content_block_start") || !strcmp(type, "content_block_delta")) {
        x = cJSON_GetObjectItemCaseSensitive(
            j, !strcmp(type, "content_block_start") ? "content_block" : "delta");
        y = cJSON_GetObjectItemCaseSensitive(x, "text");
        t = cJSON_GetObjectItemCaseSensitive(x, "type");
        if (cJSON_IsString(t) && (!strcmp(t->valuestring, "text_delta") ||
                                  !strcmp(t->valuestring, "text")) &&
            cJSON_IsString(y) && y->valuestring[0])
            out->chunk[out->n++] = ant_delta_chunk(s, NULL, y->valuestring, NULL);
    } else if (!strcmp(type, "message_delta")) {
        x = cJSON_GetObjectItemCaseSensitive(j, "delta");
        y = cJSON_GetObjectItemCaseSensitive(x, "stop_reason");
        ant_take_usage(cJSON_GetObjectItemCaseSensitive(j, "usage"), &s->u);
        if (cJSON_IsString(y))
            out->chunk[out->n++] =
                ant_delta_chunk(s, NULL, NULL, anthropic_finish_reason(y->valuestring));
    } else if (!strcmp(type, "message_stop")) {
        out->chunk[out->n++] = ant_usage_chunk(s);
        out->done = 1;
    } else if (!strcmp(type, "error") || (event && !strcmp(event, "error"))) {
        out->chunk[out->n++] =
            ant_error_obj(cJSON_GetObjectItemCaseSensitive(j, "error"), 500, "stream error");
        out->error = 1;
    }
    /* ping, content_block_stop, and events not yet known: nothing */
    if (out->n && !out->chunk[out->n - 1]) {
        out->n--;
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    rc = 0;
out:
    if (rc != 0) {
        while (out->n > 0)
            cJSON_Delete(out->chunk[--out->n]);
    }
    cJSON_Delete(j);
    return rc;
}
