/* replay.c -- cached chat.completions replayed as Chat Completions streams, and streams collected.
 *
 * Stream shape follows OpenAI's (providers.md): a role chunk with
 * "content":"", content chunks, a chunk with "delta":{} and the
 * finish_reason, the usage chunk with "choices":[] only when asked for,
 * then data: [DONE]. */
#include "router/replay.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"

#define REPLAY_PIECE 24

static cJSON *replay_chunk(const char *id, int64_t created, const char *model)
{
    cJSON *c = cJSON_CreateObject();
    if (!c)
        return NULL;
    if (!cJSON_AddStringToObject(c, "id", id) ||
        !cJSON_AddStringToObject(c, "object", "chat.completion.chunk") ||
        !cJSON_AddNumberToObject(c, "created", (double)created) ||
        !cJSON_AddStringToObject(c, "model", model)) {
        cJSON_Delete(c);
        return NULL;
    }
    return c;
}

/* Appends "data: <chunk>\n\n" and frees chunk. */
static int replay_emit(struct buf *out, cJSON *chunk)
{
    char *s = chunk ? cJSON_PrintUnformatted(chunk) : NULL;
    int rc = -1;
    if (s && buf_puts(out, "data: ") == 0 && buf_puts(out, s) == 0 && buf_puts(out, "\n\n") == 0)
        rc = 0;
    free(s);
    cJSON_Delete(chunk);
    return rc;
}

/* A chunk with one choice: delta built by the caller (taken), finish or NULL. */
static cJSON *replay_choice_chunk(const char *id, int64_t created, const char *model,
                                  cJSON *delta, const char *finish)
{
    cJSON *c = replay_chunk(id, created, model), *arr, *ch;
    if (!c || !(arr = cJSON_AddArrayToObject(c, "choices")) || !(ch = cJSON_CreateObject())) {
        cJSON_Delete(delta);
        cJSON_Delete(c);
        return NULL;
    }
    cJSON_AddItemToArray(arr, ch);
    cJSON_AddNumberToObject(ch, "index", 0);
    cJSON_AddItemToObject(ch, "delta", delta ? delta : cJSON_CreateObject());
    if (finish)
        cJSON_AddStringToObject(ch, "finish_reason", finish);
    else
        cJSON_AddNullToObject(ch, "finish_reason");
    return c;
}

/* Length of the next piece of text: up to max bytes, ending after a space
 * when there is one, never inside a UTF-8 sequence. */
static size_t replay_piece(const char *s, size_t n, size_t max)
{
    size_t i, cut;
    if (n <= max)
        return n;
    cut = max;
    for (i = max; i > max / 2; i--)
        if (s[i - 1] == ' ') {
            cut = i;
            break;
        }
    while (cut > 1 && ((unsigned char)s[cut] & 0xC0) == 0x80)
        cut--;
    return cut;
}

int replay_stream(const char *answer, size_t len, const char *id, int64_t created,
                  int include_usage, size_t piece, struct buf *out)
{
    cJSON *root = cJSON_ParseWithLength(answer, len), *delta;
    const cJSON *choice, *msg, *content, *finish, *model, *usage;
    const char *text, *m;
    size_t n, off = 0;
    int rc = -1;

    if (!piece)
        piece = REPLAY_PIECE;
    choice = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "choices"), 0);
    msg = cJSON_GetObjectItemCaseSensitive(choice, "message");
    if (!cJSON_IsObject(msg))
        goto out;
    content = cJSON_GetObjectItemCaseSensitive(msg, "content");
    finish = cJSON_GetObjectItemCaseSensitive(choice, "finish_reason");
    model = cJSON_GetObjectItemCaseSensitive(root, "model");
    m = cJSON_IsString(model) ? model->valuestring : "cache";
    text = cJSON_IsString(content) ? content->valuestring : "";
    n = strlen(text);
    if (!(delta = cJSON_CreateObject()) || !cJSON_AddStringToObject(delta, "role", "assistant") ||
        !cJSON_AddStringToObject(delta, "content", "")) {
        cJSON_Delete(delta);
        goto out;
    }
    if (replay_emit(out, replay_choice_chunk(id, created, m, delta, NULL)) != 0)
        goto out;
    while (off < n) {
        size_t k = replay_piece(text + off, n - off, piece);
        char *part = malloc(k + 1);
        if (!part)
            goto out;
        memcpy(part, text + off, k);
        part[k] = '\0';
        delta = cJSON_CreateObject();
        if (!delta || !cJSON_AddStringToObject(delta, "content", part)) {
            free(part);
            cJSON_Delete(delta);
            goto out;
        }
        free(part);
        if (replay_emit(out, replay_choice_chunk(id, created, m, delta, NULL)) != 0)
            goto out;
        off += k;
    }
    if (replay_emit(out, replay_choice_chunk(id, created, m, NULL,
                                             cJSON_IsString(finish) ? finish->valuestring
                                                                    : "stop")) != 0)
        goto out;
    usage = cJSON_GetObjectItemCaseSensitive(root, "usage");
    if (include_usage) {
        cJSON *c = replay_chunk(id, created, m), *u;
        if (!c || !cJSON_AddArrayToObject(c, "choices")) {
            cJSON_Delete(c);
            goto out;
        }
        u = cJSON_IsObject(usage) ? cJSON_Duplicate(usage, 1) : cJSON_CreateObject();
        if (!u) {
            cJSON_Delete(c);
            goto out;
        }
        cJSON_DeleteItemFromObjectCaseSensitive(u, "cost");
        cJSON_AddNumberToObject(u, "cost", 0);
        cJSON_AddItemToObject(c, "usage", u);
        if (replay_emit(out, c) != 0)
            goto out;
    }
    if (buf_puts(out, "data: [DONE]\n\n") != 0)
        goto out;
    rc = 0;
out:
    cJSON_Delete(root);
    return rc;
}

char *replay_plain(const char *answer, size_t len, const char *id, int64_t created)
{
    cJSON *root = cJSON_ParseWithLength(answer, len), *usage;
    char *s = NULL;
    if (!cJSON_IsObject(root))
        goto out;
    cJSON_DeleteItemFromObjectCaseSensitive(root, "id");
    cJSON_DeleteItemFromObjectCaseSensitive(root, "created");
    cJSON_AddStringToObject(root, "id", id);
    cJSON_AddNumberToObject(root, "created", (double)created);
    usage = cJSON_GetObjectItemCaseSensitive(root, "usage");
    if (cJSON_IsObject(usage)) {
        cJSON_DeleteItemFromObjectCaseSensitive(usage, "cost");
        cJSON_AddNumberToObject(usage, "cost", 0);
    }
    s = cJSON_PrintUnformatted(root);
out:
    cJSON_Delete(root);
    return s;
}

/* ---- collecting a stream ---- */

struct replay_acc {
    struct buf content;
    char id[128];
    char model[128];
    char finish[32];
    long prompt, completion;
    int have_usage;
    int bad;
};

struct replay_acc *replay_acc_new(size_t max)
{
    struct replay_acc *a = calloc(1, sizeof *a);
    if (a)
        buf_init(&a->content, max ? max : (1u << 20));
    return a;
}

void replay_acc_free(struct replay_acc *a)
{
    if (!a)
        return;
    buf_cleanup(&a->content);
    free(a);
}

static void replay_copy(char *dst, size_t n, const cJSON *s)
{
    if (cJSON_IsString(s) && !dst[0]) {
        size_t k = strlen(s->valuestring);
        if (k >= n)
            k = n - 1;
        memcpy(dst, s->valuestring, k);
        dst[k] = '\0';
    }
}

void replay_acc_chunk(struct replay_acc *a, const cJSON *chunk)
{
    const cJSON *choices, *c, *u;
    if (!a || a->bad)
        return;
    if (cJSON_GetObjectItemCaseSensitive(chunk, "error")) {
        a->bad = 1;
        return;
    }
    replay_copy(a->id, sizeof a->id, cJSON_GetObjectItemCaseSensitive(chunk, "id"));
    replay_copy(a->model, sizeof a->model, cJSON_GetObjectItemCaseSensitive(chunk, "model"));
    u = cJSON_GetObjectItemCaseSensitive(chunk, "usage");
    if (cJSON_IsObject(u)) {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(u, "prompt_tokens");
        const cJSON *q = cJSON_GetObjectItemCaseSensitive(u, "completion_tokens");
        if (cJSON_IsNumber(p))
            a->prompt = (long)p->valuedouble;
        if (cJSON_IsNumber(q))
            a->completion = (long)q->valuedouble;
        a->have_usage = 1;
    }
    choices = cJSON_GetObjectItemCaseSensitive(chunk, "choices");
    cJSON_ArrayForEach(c, choices)
    {
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(c, "delta"), *x;
        const cJSON *idx = cJSON_GetObjectItemCaseSensitive(c, "index");
        if (cJSON_IsNumber(idx) && idx->valuedouble != 0) {
            a->bad = 1; /* n > 1: not cached */
            return;
        }
        if (cJSON_GetObjectItemCaseSensitive(d, "tool_calls") ||
            cJSON_GetObjectItemCaseSensitive(d, "function_call")) {
            a->bad = 1;
            return;
        }
        x = cJSON_GetObjectItemCaseSensitive(d, "content");
        if (cJSON_IsString(x) && x->valuestring[0] && buf_puts(&a->content, x->valuestring) != 0)
            a->bad = 1;
        replay_copy(a->finish, sizeof a->finish, cJSON_GetObjectItemCaseSensitive(c, "finish_reason"));
    }
}

char *replay_acc_answer(const struct replay_acc *a)
{
    cJSON *root = NULL, *choices, *ch, *msg, *u;
    char *s = NULL;

    if (!a || a->bad || !a->content.len)
        return NULL;
    if (!(root = cJSON_CreateObject()))
        goto out;
    cJSON_AddStringToObject(root, "id", a->id[0] ? a->id : "chatcmpl-cache");
    cJSON_AddStringToObject(root, "object", "chat.completion");
    cJSON_AddNumberToObject(root, "created", 0);
    cJSON_AddStringToObject(root, "model", a->model[0] ? a->model : "unknown");
    if (!(choices = cJSON_AddArrayToObject(root, "choices")) || !(ch = cJSON_CreateObject()))
        goto out;
    cJSON_AddItemToArray(choices, ch);
    cJSON_AddNumberToObject(ch, "index", 0);
    if (!(msg = cJSON_AddObjectToObject(ch, "message")))
        goto out;
    cJSON_AddStringToObject(msg, "role", "assistant");
    cJSON_AddStringToObject(msg, "content", a->content.data);
    cJSON_AddStringToObject(ch, "finish_reason", a->finish[0] ? a->finish : "stop");
    if (a->have_usage && (u = cJSON_AddObjectToObject(root, "usage"))) {
        cJSON_AddNumberToObject(u, "prompt_tokens", (double)a->prompt);
        cJSON_AddNumberToObject(u, "completion_tokens", (double)a->completion);
        cJSON_AddNumberToObject(u, "total_tokens", (double)(a->prompt + a->completion));
    }
    s = cJSON_PrintUnformatted(root);
out:
    cJSON_Delete(root);
    return s;
}
