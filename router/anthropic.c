/* anthropic.c -- OpenAI Chat Completions <-> Anthropic Messages translation, pure.
 *
 * DESIGN: requests go out as Messages bodies (system messages become the
 * top-level system string, everything else user/assistant messages with
 * string content, max_tokens always present; where prompt caching is
 * configured, the marked system prompt or message becomes one text block
 * with cache_control, up to the API's 4); answers, errors and stream
 * events come back as the OpenAI objects a Chat Completions client expects.
 * Tool calls and images ride as content blocks (Anthropic's "Tool use" and
 * "Vision" docs): a message with a tool_use, tool_result or image block has
 * an array of blocks, every other message keeps the string form; tool
 * results and the user message after them share one user turn, as the API
 * wants every result of a turn at the start of the next user message.
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
#define ANT_MAX_MEDIA 64         /* a data: URL's media type, e.g. image/png */

struct anthropic_stream {
    char id[128];
    char model[128];
    int64_t created;
    struct anthropic_usage u;
    int ntools; /* tool_use blocks started: the next one's OpenAI index */
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

/* {"type":"ephemeral"[,"ttl":"1h"]} for mark 1 or 2. NULL when out of memory. */
static cJSON *ant_cache_control(int mark)
{
    cJSON *cc = cJSON_CreateObject();
    if (!cc || !cJSON_AddStringToObject(cc, "type", "ephemeral") ||
        (mark == 2 && !cJSON_AddStringToObject(cc, "ttl", "1h"))) {
        cJSON_Delete(cc);
        return NULL;
    }
    return cc;
}

/* [{"type":"text","text":text,"cache_control":{"type":"ephemeral"[,"ttl":"1h"]}}] */
static cJSON *ant_cached_text(const char *text, int mark)
{
    cJSON *arr = cJSON_CreateArray(), *b = cJSON_CreateObject(), *cc = ant_cache_control(mark);
    cJSON *ret = NULL;

    if (!arr || !b || !cc || !cJSON_AddStringToObject(b, "type", "text") ||
        !cJSON_AddStringToObject(b, "text", text))
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

/* ---- tools and images on the way out ---- */

/* Appends {"type":"text","text":s} to blocks. The block, or NULL (out of memory). */
static cJSON *ant_add_text(cJSON *blocks, const char *s)
{
    cJSON *b = cJSON_CreateObject();
    if (!b || !cJSON_AddStringToObject(b, "type", "text") ||
        !cJSON_AddStringToObject(b, "text", s)) {
        cJSON_Delete(b);
        return NULL;
    }
    cJSON_AddItemToArray(blocks, b);
    return b;
}

/* Appends an image block for an image_url part of message i: a base64
 * data: URL (RFC 2397) as a base64 source, an http(s) URL as a url source;
 * any other URL has no place in the API. 0, or -1 with err. */
static int ant_add_image(cJSON *blocks, const cJSON *part, long i, char *err, size_t errlen)
{
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(part, "image_url");
    const char *url, *comma, *semi;
    cJSON *b = NULL, *src;
    char media[ANT_MAX_MEDIA];
    int rc = -1;

    if (cJSON_IsObject(u))
        u = cJSON_GetObjectItemCaseSensitive(u, "url");
    if (!cJSON_IsString(u)) {
        snprintf(err, errlen, "messages[%ld]: an image_url part needs image_url.url", i);
        goto out;
    }
    url = u->valuestring;
    if (!(b = cJSON_CreateObject()) || !cJSON_AddStringToObject(b, "type", "image") ||
        !(src = cJSON_AddObjectToObject(b, "source")))
        goto oom;
    if (!strncmp(url, "data:", 5)) {
        comma = strchr(url + 5, ',');
        semi = strchr(url + 5, ';');
        if (!comma || comma - (url + 5) < 7 || memcmp(comma - 7, ";base64", 7) || !comma[1] ||
            semi == url + 5) {
            snprintf(err, errlen,
                     "messages[%ld]: an image data: URL must be data:<media type>;base64,<data>",
                     i);
            goto out;
        }
        if (semi - (url + 5) >= (long)sizeof media) {
            snprintf(err, errlen, "messages[%ld]: an image's media type is longer than %d bytes",
                     i, ANT_MAX_MEDIA - 1);
            goto out;
        }
        snprintf(media, sizeof media, "%.*s", (int)(semi - (url + 5)), url + 5);
        if (!cJSON_AddStringToObject(src, "type", "base64") ||
            !cJSON_AddStringToObject(src, "media_type", media) ||
            !cJSON_AddStringToObject(src, "data", comma + 1))
            goto oom;
    } else if (!strncmp(url, "https://", 8) || !strncmp(url, "http://", 7)) {
        if (!cJSON_AddStringToObject(src, "type", "url") ||
            !cJSON_AddStringToObject(src, "url", url))
            goto oom;
    } else {
        snprintf(err, errlen,
                 "messages[%ld]: an image URL must be http(s) or a base64 data: URL (got '%.32s')",
                 i, url);
        goto out;
    }
    cJSON_AddItemToArray(blocks, b);
    b = NULL;
    rc = 0;
    goto out;
oom:
    snprintf(err, errlen, "out of memory");
out:
    cJSON_Delete(b);
    return rc;
}

/* Whether a user content value has an image part: it then goes as blocks. */
static int ant_has_image(const cJSON *content)
{
    const cJSON *part, *t;
    if (!cJSON_IsArray(content))
        return 0;
    cJSON_ArrayForEach(part, content)
    {
        t = cJSON_GetObjectItemCaseSensitive(part, "type");
        if (cJSON_IsString(t) && !strcmp(t->valuestring, "image_url"))
            return 1;
    }
    return 0;
}

/* A user content array as blocks, in order: text parts as text blocks
 * (empty ones dropped: the API rejects them), image_url parts as image
 * blocks; other parts (audio, files) have no equivalent here and are
 * dropped, as ant_flatten drops them. 0, or -1 with err. */
static int ant_add_parts(cJSON *blocks, const cJSON *content, long i, char *err, size_t errlen)
{
    const cJSON *part, *t, *x;
    cJSON_ArrayForEach(part, content)
    {
        t = cJSON_GetObjectItemCaseSensitive(part, "type");
        x = cJSON_IsString(part) ? part : cJSON_GetObjectItemCaseSensitive(part, "text");
        if (cJSON_IsString(t) && !strcmp(t->valuestring, "image_url")) {
            if (ant_add_image(blocks, part, i, err, errlen) != 0)
                return -1;
        } else if (cJSON_IsString(x) && x->valuestring[0]) {
            if (strlen(x->valuestring) > ANT_MAX_TEXT) {
                snprintf(err, errlen, "a message is longer than %u bytes", ANT_MAX_TEXT);
                return -1;
            }
            if (!ant_add_text(blocks, x->valuestring)) {
                snprintf(err, errlen, "out of memory");
                return -1;
            }
        }
    }
    return 0;
}

/* Appends a tool_use block for one call of message i: id, and fn's name and
 * arguments. arguments is JSON text and input a JSON object, so it must
 * parse as one (empty or absent: {}); anything else is the client's error,
 * not something to guess at. 0, or -1 with err. */
static int ant_add_tool_use(cJSON *blocks, const char *id, const cJSON *fn, long i, char *err,
                            size_t errlen)
{
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(fn, "name");
    const cJSON *args = cJSON_GetObjectItemCaseSensitive(fn, "arguments");
    cJSON *b = NULL, *input = NULL;
    int rc = -1;

    if (!id || !id[0]) {
        snprintf(err, errlen, "messages[%ld]: a tool call needs an id", i);
        goto out;
    }
    if (!cJSON_IsString(name) || !name->valuestring[0]) {
        snprintf(err, errlen, "messages[%ld]: tool call %s needs function.name", i, id);
        goto out;
    }
    if (cJSON_IsString(args) && args->valuestring[0]) {
        input = cJSON_Parse(args->valuestring);
        if (!cJSON_IsObject(input)) {
            snprintf(err, errlen,
                     "messages[%ld]: the arguments of tool call %s are not a JSON object: '%.40s'",
                     i, id, args->valuestring);
            goto out;
        }
    } else if (cJSON_IsObject(args)) {
        input = cJSON_Duplicate(args, 1); /* lenient clients send the object itself */
    } else {
        input = cJSON_CreateObject();
    }
    if (!input || !(b = cJSON_CreateObject()) || !cJSON_AddStringToObject(b, "type", "tool_use") ||
        !cJSON_AddStringToObject(b, "id", id) ||
        !cJSON_AddStringToObject(b, "name", name->valuestring)) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    cJSON_AddItemToObject(b, "input", input);
    input = NULL;
    cJSON_AddItemToArray(blocks, b);
    b = NULL;
    rc = 0;
out:
    cJSON_Delete(input);
    cJSON_Delete(b);
    return rc;
}

/* Appends {"type":"tool_result","tool_use_id":id,"content":"<text>"}; the
 * content is left out when the result has no text (the API refuses empty
 * text, not an absent content). text is scratch. 0, or -1 with err. */
static int ant_add_tool_result(cJSON *blocks, const char *id, const cJSON *content,
                               struct buf *text, char *err, size_t errlen)
{
    cJSON *b = NULL;

    buf_reset(text);
    if (ant_flatten(content, text) != 0) {
        snprintf(err, errlen, "a message is longer than %u bytes", ANT_MAX_TEXT);
        return -1;
    }
    if (!(b = cJSON_CreateObject()) || !cJSON_AddStringToObject(b, "type", "tool_result") ||
        !cJSON_AddStringToObject(b, "tool_use_id", id) ||
        (text->len && !cJSON_AddStringToObject(b, "content", text->data))) {
        cJSON_Delete(b);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    cJSON_AddItemToArray(blocks, b);
    return 0;
}

/* tools (or the legacy functions) and tool_choice (or function_call,
 * parallel_tool_calls) into out. Without tools nothing is sent: the API
 * refuses a tool_choice without tools. 0, or -1 with err. */
static int ant_tools(cJSON *out, const cJSON *openai, char *err, size_t errlen)
{
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive(openai, "tools");
    const cJSON *t, *fn, *x, *choice, *par;
    cJSON *arr, *o, *tc = NULL;
    int legacy = 0, k = 0, rc = -1;

    if (!cJSON_IsArray(tools) || !cJSON_GetArraySize(tools)) {
        tools = cJSON_GetObjectItemCaseSensitive(openai, "functions");
        legacy = 1;
    }
    if (!cJSON_IsArray(tools) || !cJSON_GetArraySize(tools))
        return 0;
    if (!(arr = cJSON_AddArrayToObject(out, "tools")))
        goto oom;
    cJSON_ArrayForEach(t, tools)
    {
        fn = legacy ? t : cJSON_GetObjectItemCaseSensitive(t, "function");
        x = cJSON_GetObjectItemCaseSensitive(t, "type");
        if (!legacy && cJSON_IsString(x) && strcmp(x->valuestring, "function")) {
            snprintf(err, errlen, "tools[%d]: only function tools can go to Anthropic (got '%.32s')",
                     k, x->valuestring);
            goto out;
        }
        x = cJSON_GetObjectItemCaseSensitive(fn, "name");
        if (!cJSON_IsString(x) || !x->valuestring[0]) {
            snprintf(err, errlen, "%s[%d]: a tool needs %sname", legacy ? "functions" : "tools", k,
                     legacy ? "" : "function.");
            goto out;
        }
        if (!(o = cJSON_CreateObject()))
            goto oom;
        cJSON_AddItemToArray(arr, o);
        if (!cJSON_AddStringToObject(o, "name", x->valuestring))
            goto oom;
        x = cJSON_GetObjectItemCaseSensitive(fn, "description");
        if (cJSON_IsString(x) && !cJSON_AddStringToObject(o, "description", x->valuestring))
            goto oom;
        /* input_schema is required there; a function without parameters takes none */
        x = cJSON_GetObjectItemCaseSensitive(fn, "parameters");
        if (cJSON_IsObject(x)) {
            cJSON *schema = cJSON_Duplicate(x, 1);
            if (!schema)
                goto oom;
            cJSON_AddItemToObject(o, "input_schema", schema);
        } else {
            cJSON *schema = cJSON_AddObjectToObject(o, "input_schema");
            if (!schema || !cJSON_AddStringToObject(schema, "type", "object") ||
                !cJSON_AddObjectToObject(schema, "properties"))
                goto oom;
        }
        k++;
    }
    choice = cJSON_GetObjectItemCaseSensitive(openai, "tool_choice");
    if (!choice)
        choice = cJSON_GetObjectItemCaseSensitive(openai, "function_call");
    if (choice && !cJSON_IsNull(choice)) {
        if (!(tc = cJSON_CreateObject()))
            goto oom;
        fn = cJSON_GetObjectItemCaseSensitive(choice, "function");
        x = cJSON_GetObjectItemCaseSensitive(fn ? fn : choice, "name");
        if (cJSON_IsString(choice) && !strcmp(choice->valuestring, "auto")) {
            if (!cJSON_AddStringToObject(tc, "type", "auto"))
                goto oom;
        } else if (cJSON_IsString(choice) && !strcmp(choice->valuestring, "required")) {
            if (!cJSON_AddStringToObject(tc, "type", "any"))
                goto oom;
        } else if (cJSON_IsString(choice) && !strcmp(choice->valuestring, "none")) {
            if (!cJSON_AddStringToObject(tc, "type", "none"))
                goto oom;
        } else if (cJSON_IsObject(choice) && cJSON_IsString(x) && x->valuestring[0]) {
            if (!cJSON_AddStringToObject(tc, "type", "tool") ||
                !cJSON_AddStringToObject(tc, "name", x->valuestring))
                goto oom;
        } else {
            snprintf(err, errlen, "tool_choice must be auto, required, none or "
                                  "{\"type\":\"function\",\"function\":{\"name\":...}}");
            goto out;
        }
    }
    /* OpenAI's switch is top-level, Anthropic's sits in tool_choice (meaningless with none) */
    par = cJSON_GetObjectItemCaseSensitive(openai, "parallel_tool_calls");
    if (cJSON_IsFalse(par)) {
        if (!tc && (!(tc = cJSON_CreateObject()) || !cJSON_AddStringToObject(tc, "type", "auto")))
            goto oom;
        x = cJSON_GetObjectItemCaseSensitive(tc, "type");
        if (strcmp(x->valuestring, "none") && !cJSON_AddTrueToObject(tc, "disable_parallel_tool_use"))
            goto oom;
    }
    if (tc) {
        cJSON_AddItemToObject(out, "tool_choice", tc);
        tc = NULL;
    }
    rc = 0;
    goto out;
oom:
    snprintf(err, errlen, "out of memory");
out:
    cJSON_Delete(tc);
    return rc;
}

char *anthropic_request(const cJSON *openai, const char *model, const struct anthropic_opts *opts,
                        char *err, size_t errlen)
{
    cJSON *out = NULL, *msgs = NULL, **am_of = NULL, **last_of = NULL, *sys, *blocks = NULL;
    cJSON *open = NULL; /* the user turn holding tool results, while more may join it */
    const cJSON *in_msgs, *m, *v;
    struct buf system, text;
    char *s = NULL, fn_id[32] = "";
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
        !(am_of = calloc((size_t)n + 1, sizeof *am_of)) ||
        !(last_of = calloc((size_t)n + 1, sizeof *last_of)))
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
        const cJSON *calls = cJSON_GetObjectItemCaseSensitive(m, "tool_calls");
        const cJSON *fcall = cJSON_GetObjectItemCaseSensitive(m, "function_call");
        const char *r = cJSON_IsString(role) ? role->valuestring : "user";
        int mk = ant_mark(opts, i, n, ant_role(r), content), results = 0;
        cJSON *am, *last = NULL, *b;

        buf_reset(&text);
        if (!strcmp(r, "system") || !strcmp(r, "developer")) {
            if (ant_flatten(content, &text) != 0)
                goto toolong;
            if (!text.len)
                continue; /* Anthropic rejects empty text content */
            if ((system.len && buf_puts(&system, "\n\n") != 0) ||
                buf_append(&system, text.data, text.len) != 0)
                goto toolong;
            if (mk > sys_mark)
                sys_mark = mk;
            continue;
        }
        if (!strcmp(r, "tool") || (!strcmp(r, "function") && fn_id[0])) {
            /* a result answers the tool_use of the same id */
            const cJSON *tid = cJSON_GetObjectItemCaseSensitive(m, "tool_call_id");
            const char *id = strcmp(r, "tool") ? fn_id : cJSON_IsString(tid) ? tid->valuestring : "";
            if (!id[0]) {
                snprintf(err, errlen, "messages[%ld]: a tool message needs tool_call_id", i);
                goto out;
            }
            if (!(blocks = cJSON_CreateArray()))
                goto oom;
            if (ant_add_tool_result(blocks, id, content, &text, err, errlen) != 0)
                goto out;
            results = 1;
            r = "user";
        } else if (!strcmp(r, "assistant") &&
                   ((cJSON_IsArray(calls) && cJSON_GetArraySize(calls)) || cJSON_IsObject(fcall))) {
            /* its words first, then one tool_use per call */
            const cJSON *c, *cid;
            if (ant_flatten(content, &text) != 0)
                goto toolong;
            if (!(blocks = cJSON_CreateArray()) || (text.len && !ant_add_text(blocks, text.data)))
                goto oom;
            if (cJSON_IsArray(calls) && cJSON_GetArraySize(calls)) {
                cJSON_ArrayForEach(c, calls)
                {
                    cid = cJSON_GetObjectItemCaseSensitive(c, "id");
                    if (ant_add_tool_use(blocks, cJSON_IsString(cid) ? cid->valuestring : NULL,
                                         cJSON_GetObjectItemCaseSensitive(c, "function"), i, err,
                                         errlen) != 0)
                        goto out;
                }
            } else {
                /* legacy function_call has no id: one is made for the result that follows */
                snprintf(fn_id, sizeof fn_id, "toolu_fn_%ld", i);
                if (ant_add_tool_use(blocks, fn_id, fcall, i, err, errlen) != 0)
                    goto out;
            }
        } else {
            /* a function result with no call before it has nothing to answer: the user's words */
            if (strcmp(r, "assistant"))
                r = "user";
            if (!strcmp(r, "user") && ant_has_image(content)) {
                if (!(blocks = cJSON_CreateArray()))
                    goto oom;
                if (ant_add_parts(blocks, content, i, err, errlen) != 0)
                    goto out;
            } else if (ant_flatten(content, &text) != 0) {
                goto toolong;
            }
        }
        if (blocks && !cJSON_GetArraySize(blocks)) {
            cJSON_Delete(blocks);
            blocks = NULL;
            continue;
        }
        if (!blocks && !text.len)
            continue; /* Anthropic rejects empty text content */
        if (open && !strcmp(r, "user")) {
            /* more results, or the user's words after them: the same user turn */
            cJSON *c = cJSON_GetObjectItemCaseSensitive(open, "content");
            if (blocks) {
                while ((b = cJSON_DetachItemFromArray(blocks, 0))) {
                    cJSON_AddItemToArray(c, b);
                    last = b;
                }
            } else if (!(last = ant_add_text(c, text.data))) {
                goto oom;
            }
            am = open;
            if (!results)
                open = NULL; /* results go first in a turn: later ones start another */
        } else {
            if (!(am = cJSON_CreateObject()))
                goto oom;
            cJSON_AddItemToArray(msgs, am);
            if (!cJSON_AddStringToObject(am, "role", r))
                goto oom;
            if (blocks) {
                last = cJSON_GetArrayItem(blocks, cJSON_GetArraySize(blocks) - 1);
                cJSON_AddItemToObject(am, "content", blocks);
                blocks = NULL;
            } else if (!cJSON_AddStringToObject(am, "content", text.data)) {
                goto oom;
            }
            open = results ? am : NULL;
        }
        cJSON_Delete(blocks);
        blocks = NULL;
        am_of[nout] = am;
        last_of[nout] = last;
        mark[nout++] = mk;
    }
    if (!system.len)
        sys_mark = 0;
    ant_marks_fit(&sys_mark, mark, nout);
    for (j = 0; j < nout; j++) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(am_of[j], "content");
        cJSON *cc;
        if (!mark[j])
            continue;
        if (last_of[j]) {
            /* blocks: the client message's last one carries the breakpoint */
            if (!(cc = ant_cache_control(mark[j])))
                goto oom;
            cJSON_AddItemToObject(last_of[j], "cache_control", cc);
            continue;
        }
        if (!(blocks = ant_cached_text(c->valuestring, mark[j])))
            goto oom;
        if (!cJSON_ReplaceItemInObjectCaseSensitive(am_of[j], "content", blocks))
            goto oom;
        blocks = NULL;
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
    if (ant_tools(out, openai, err, errlen) != 0)
        goto out;
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
    free(last_of);
    cJSON_Delete(blocks);
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

/* A tool_use block as an OpenAI tool call: {"id","type":"function","function":
 * {"name","arguments"}}, arguments being input printed as compact JSON (an
 * absent input: {}). NULL when out of memory. */
static cJSON *ant_tool_call(const cJSON *blk)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(blk, "id");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(blk, "name");
    const cJSON *input = cJSON_GetObjectItemCaseSensitive(blk, "input");
    cJSON *tc = cJSON_CreateObject(), *fn;
    char *args = input ? cJSON_PrintUnformatted(input) : NULL;

    if (!tc || (input && !args) ||
        !cJSON_AddStringToObject(tc, "id", cJSON_IsString(id) ? id->valuestring : "") ||
        !cJSON_AddStringToObject(tc, "type", "function") ||
        !(fn = cJSON_AddObjectToObject(tc, "function")) ||
        !cJSON_AddStringToObject(fn, "name", cJSON_IsString(name) ? name->valuestring : "") ||
        !cJSON_AddStringToObject(fn, "arguments", args ? args : "{}")) {
        cJSON_Delete(tc);
        tc = NULL;
    }
    free(args);
    return tc;
}

cJSON *anthropic_response(const char *body, size_t len, int64_t created,
                          struct anthropic_usage *u)
{
    cJSON *in = cJSON_ParseWithLength(body, len), *out = NULL, *ret = NULL, *calls = NULL;
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
        if (!cJSON_IsString(bt))
            continue;
        if (!strcmp(bt->valuestring, "text") && cJSON_IsString(t) &&
            buf_puts(&text, t->valuestring) != 0)
            goto out;
        if (!strcmp(bt->valuestring, "tool_use")) {
            cJSON *tc;
            if (!calls && !(calls = cJSON_CreateArray()))
                goto out;
            if (!(tc = ant_tool_call(blk)))
                goto out;
            cJSON_AddItemToArray(calls, tc);
        }
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
        /* only tool calls: content is null, as OpenAI sends it */
        !(text.len || !calls ? cJSON_AddStringToObject(msg, "content", text.data ? text.data : "")
                             : cJSON_AddNullToObject(msg, "content")))
        goto out;
    if (calls) {
        cJSON_AddItemToObject(msg, "tool_calls", calls);
        calls = NULL;
    }
    if (!cJSON_AddNullToObject(msg, "refusal") || !cJSON_AddNullToObject(choice, "logprobs") ||
        !(finish ? cJSON_AddStringToObject(choice, "finish_reason", finish)
                 : cJSON_AddNullToObject(choice, "finish_reason")))
        goto out;
    if (!(usage = ant_usage_json(u)))
        goto out;
    cJSON_AddItemToObject(out, "usage", usage);
    ret = out;
    out = NULL;
out:
    cJSON_Delete(calls);
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

/* A chunk with one choice: delta role/content as given, tool_calls [tc]
 * when tc is given (taken: freed on failure too), finish_reason. */
static cJSON *ant_delta_chunk(const struct anthropic_stream *s, const char *role,
                              const char *content, cJSON *tc, const char *finish)
{
    cJSON *c = ant_chunk(s), *choices, *ch, *d, *arr;
    if (!c) {
        cJSON_Delete(tc);
        return NULL;
    }
    if (!(choices = cJSON_AddArrayToObject(c, "choices")) || !(ch = cJSON_CreateObject()))
        goto fail;
    cJSON_AddItemToArray(choices, ch);
    if (!cJSON_AddNumberToObject(ch, "index", 0) || !(d = cJSON_AddObjectToObject(ch, "delta")))
        goto fail;
    if (role && !cJSON_AddStringToObject(d, "role", role))
        goto fail;
    if (content && !cJSON_AddStringToObject(d, "content", content))
        goto fail;
    if (tc) {
        if (!(arr = cJSON_AddArrayToObject(d, "tool_calls")))
            goto fail;
        cJSON_AddItemToArray(arr, tc);
        tc = NULL;
    }
    if (!cJSON_AddNullToObject(ch, "logprobs") ||
        !(finish ? cJSON_AddStringToObject(ch, "finish_reason", finish)
                 : cJSON_AddNullToObject(ch, "finish_reason")))
        goto fail;
    return c;
fail:
    cJSON_Delete(tc);
    cJSON_Delete(c);
    return NULL;
}

/* One streamed tool call delta for OpenAI index k: {"index":k,"id","type":
 * "function","function":{"name","arguments":""}} when the block starts (id
 * and name given), {"index":k,"function":{"arguments":partial}} after.
 * NULL when out of memory. */
static cJSON *ant_tool_delta(int k, const char *id, const char *name, const char *partial)
{
    cJSON *tc = cJSON_CreateObject(), *fn;
    if (!tc || !cJSON_AddNumberToObject(tc, "index", k) ||
        (id && (!cJSON_AddStringToObject(tc, "id", id) ||
                !cJSON_AddStringToObject(tc, "type", "function"))) ||
        !(fn = cJSON_AddObjectToObject(tc, "function")) ||
        (name && !cJSON_AddStringToObject(fn, "name", name)) ||
        !cJSON_AddStringToObject(fn, "arguments", partial)) {
        cJSON_Delete(tc);
        return NULL;
    }
    return tc;
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
        out->chunk[out->n++] = ant_delta_chunk(s, "assistant", "", NULL, NULL);
    } else if (!strcmp(type, "content_block_start") || !strcmp(type, "content_block_delta")) {
        cJSON *tc;
        x = cJSON_GetObjectItemCaseSensitive(
            j, !strcmp(type, "content_block_start") ? "content_block" : "delta");
        y = cJSON_GetObjectItemCaseSensitive(x, "text");
        t = cJSON_GetObjectItemCaseSensitive(x, "type");
        if (cJSON_IsString(t) && (!strcmp(t->valuestring, "text_delta") ||
                                  !strcmp(t->valuestring, "text")) &&
            cJSON_IsString(y) && y->valuestring[0]) {
            out->chunk[out->n++] = ant_delta_chunk(s, NULL, y->valuestring, NULL, NULL);
        } else if (cJSON_IsString(t) && !strcmp(t->valuestring, "tool_use")) {
            /* a tool call starts: OpenAI numbers them 0, 1, ... in the choice */
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(x, "id");
            const cJSON *name = cJSON_GetObjectItemCaseSensitive(x, "name");
            tc = ant_tool_delta(s->ntools++, cJSON_IsString(id) ? id->valuestring : "",
                                cJSON_IsString(name) ? name->valuestring : "", "");
            out->chunk[out->n++] = tc ? ant_delta_chunk(s, NULL, NULL, tc, NULL) : NULL;
        } else if (cJSON_IsString(t) && !strcmp(t->valuestring, "input_json_delta") &&
                   s->ntools > 0) {
            /* the arguments as they come; the deltas of one block join to its input JSON.
             * Blocks stream one at a time, so a delta belongs to the last tool started. */
            y = cJSON_GetObjectItemCaseSensitive(x, "partial_json");
            if (cJSON_IsString(y) && y->valuestring[0]) {
                tc = ant_tool_delta(s->ntools - 1, NULL, NULL, y->valuestring);
                out->chunk[out->n++] = tc ? ant_delta_chunk(s, NULL, NULL, tc, NULL) : NULL;
            }
        }
    } else if (!strcmp(type, "message_delta")) {
        x = cJSON_GetObjectItemCaseSensitive(j, "delta");
        y = cJSON_GetObjectItemCaseSensitive(x, "stop_reason");
        ant_take_usage(cJSON_GetObjectItemCaseSensitive(j, "usage"), &s->u);
        if (cJSON_IsString(y))
            out->chunk[out->n++] =
                ant_delta_chunk(s, NULL, NULL, NULL, anthropic_finish_reason(y->valuestring));
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
