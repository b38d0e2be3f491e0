/* prompts.c -- prompt sets for the load generator: JSONL files and a built-in set.
 *
 * A prompt file is JSON Lines: one object per line, either
 *   {"messages": [{"role": "user", "content": "..."}], "tenant": "acme",
 *    "user": "u-17", "feature": "chat", "weight": 2}
 * or the short form {"prompt": "text"} (one user message). Blank lines are
 * skipped. Lines are bounded (PROMPT_MAX_LINE bytes) and so is the number of
 * prompts; every error names file:line:col. */
#include "harness/loadgen.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROMPT_MAX_LINE ((size_t)64 * 1024)
#define PROMPT_MAX_COUNT 100000
#define PROMPT_MAX_MESSAGES 256
#define PROMPT_MAX_TAG 63 /* tenant/user/feature: they fill 64-byte record fields */

void prompt_set_free(struct prompt_set *ps)
{
    size_t i;

    if (!ps) return;
    for (i = 0; i < ps->n; i++) {
        free(ps->v[i].messages_json);
        free(ps->v[i].tenant);
        free(ps->v[i].user);
        free(ps->v[i].feature);
    }
    free(ps->v);
    ps->v = NULL;
    ps->n = 0;
}

/* 1-based column of "key" in line (where the error is), 1 when not found. */
static int prompt_key_col(const char *line, const char *key)
{
    char pat[80];
    const char *p;

    snprintf(pat, sizeof pat, "\"%s\"", key);
    p = strstr(line, pat);
    return p ? (int)(p - line) + 1 : 1;
}

static int prompt_tag_ok(const char *s)
{
    size_t n = strlen(s);
    const unsigned char *p;

    if (n == 0 || n > PROMPT_MAX_TAG) return 0;
    for (p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f) return 0; /* sent as a header value */
    return 1;
}

/* Checks a messages array: 1..PROMPT_MAX_MESSAGES objects, each with a string
 * role and a string or array content. Returns NULL when fine, else why. */
static const char *prompt_check_messages(const cJSON *msgs)
{
    const cJSON *m;
    int n = 0;

    if (!cJSON_IsArray(msgs)) return "\"messages\" must be an array of {\"role\", \"content\"}";
    cJSON_ArrayForEach(m, msgs) {
        const cJSON *role, *content;

        if (++n > PROMPT_MAX_MESSAGES) return "too many messages (at most 256)";
        if (!cJSON_IsObject(m)) return "each message must be an object {\"role\", \"content\"}";
        role = cJSON_GetObjectItemCaseSensitive(m, "role");
        content = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (!cJSON_IsString(role) || !role->valuestring[0])
            return "each message needs a \"role\" string (system, user, assistant)";
        if (!cJSON_IsString(content) && !cJSON_IsArray(content))
            return "each message needs a \"content\" string or array";
    }
    if (n == 0) return "\"messages\" is empty; give at least one message";
    return NULL;
}

static char *prompt_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);

    if (d) memcpy(d, s, n);
    return d;
}

/* Builds [{"role":"user","content":text}] as compact JSON; NULL on OOM. */
static char *prompt_user_message(const char *text)
{
    cJSON *arr = cJSON_CreateArray(), *m = cJSON_CreateObject();
    char *out = NULL;

    if (!arr || !m) goto out;
    if (!cJSON_AddStringToObject(m, "role", "user") ||
        !cJSON_AddStringToObject(m, "content", text))
        goto out;
    cJSON_AddItemToArray(arr, m);
    m = NULL;
    out = cJSON_PrintUnformatted(arr);
out:
    cJSON_Delete(m);
    cJSON_Delete(arr);
    return out;
}

static int prompt_set_push(struct prompt_set *ps, size_t *cap, struct prompt *p)
{
    if (ps->n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 32;
        struct prompt *nv = realloc(ps->v, ncap * sizeof *nv);

        if (!nv) return -1;
        ps->v = nv;
        *cap = ncap;
    }
    ps->v[ps->n++] = *p;
    return 0;
}

/* Parses one non-blank line into *p (fields owned by *p on success). */
static int prompt_parse_line(const char *path, long lineno, const char *line, size_t len,
                             struct prompt *p, char *err, size_t errlen)
{
    static const char *const tags[] = {"tenant", "user", "feature"};
    cJSON *root = NULL;
    const cJSON *it, *msgs, *text, *w;
    const char *end = NULL, *why;
    char **tagdst[3];
    int rc = -1, i;

    memset(p, 0, sizeof *p);
    p->weight = 1.0;
    tagdst[0] = &p->tenant;
    tagdst[1] = &p->user;
    tagdst[2] = &p->feature;

    root = cJSON_ParseWithLengthOpts(line, len, &end, 0);
    if (!root) {
        int col = end ? (int)(end - line) + 1 : 1;
        snprintf(err, errlen, "%s:%ld:%d: invalid JSON; each line must be one object such as "
                 "{\"prompt\": \"text\"} or {\"messages\": [...]}", path, lineno, col);
        goto out;
    }
    if (!cJSON_IsObject(root)) {
        snprintf(err, errlen, "%s:%ld:1: expected a JSON object such as {\"prompt\": \"text\"}",
                 path, lineno);
        goto out;
    }
    cJSON_ArrayForEach(it, root) {
        static const char *const known[] = {"messages", "prompt", "tenant", "user", "feature",
                                            "weight", NULL};
        int k, ok = 0;

        for (k = 0; known[k]; k++)
            if (strcmp(it->string, known[k]) == 0) ok = 1;
        if (!ok) {
            snprintf(err, errlen, "%s:%ld:%d: unknown key '%.40s'; expected one of: messages, "
                     "prompt, tenant, user, feature, weight", path, lineno,
                     prompt_key_col(line, it->string), it->string);
            goto out;
        }
    }
    msgs = cJSON_GetObjectItemCaseSensitive(root, "messages");
    text = cJSON_GetObjectItemCaseSensitive(root, "prompt");
    if (msgs && text) {
        snprintf(err, errlen, "%s:%ld:%d: give either \"messages\" or \"prompt\", not both",
                 path, lineno, prompt_key_col(line, "prompt"));
        goto out;
    }
    if (msgs) {
        why = prompt_check_messages(msgs);
        if (why) {
            snprintf(err, errlen, "%s:%ld:%d: %s", path, lineno,
                     prompt_key_col(line, "messages"), why);
            goto out;
        }
        p->messages_json = cJSON_PrintUnformatted(msgs);
    } else if (text) {
        if (!cJSON_IsString(text) || !text->valuestring[0]) {
            snprintf(err, errlen, "%s:%ld:%d: \"prompt\" must be a non-empty string", path,
                     lineno, prompt_key_col(line, "prompt"));
            goto out;
        }
        p->messages_json = prompt_user_message(text->valuestring);
    } else {
        snprintf(err, errlen, "%s:%ld:1: missing \"messages\" (or \"prompt\")", path, lineno);
        goto out;
    }
    if (!p->messages_json) {
        snprintf(err, errlen, "%s:%ld:1: out of memory", path, lineno);
        goto out;
    }
    for (i = 0; i < 3; i++) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, tags[i]);

        if (!t || cJSON_IsNull(t)) continue;
        if (!cJSON_IsString(t) || !prompt_tag_ok(t->valuestring)) {
            snprintf(err, errlen, "%s:%ld:%d: \"%s\" must be a string of 1 to %d printable "
                     "bytes (it is sent as a header)", path, lineno,
                     prompt_key_col(line, tags[i]), tags[i], PROMPT_MAX_TAG);
            goto out;
        }
        *tagdst[i] = prompt_strdup(t->valuestring);
        if (!*tagdst[i]) {
            snprintf(err, errlen, "%s:%ld:1: out of memory", path, lineno);
            goto out;
        }
    }
    w = cJSON_GetObjectItemCaseSensitive(root, "weight");
    if (w) {
        if (!cJSON_IsNumber(w) || !isfinite(w->valuedouble) || w->valuedouble <= 0 ||
            w->valuedouble > 1e6) {
            snprintf(err, errlen, "%s:%ld:%d: \"weight\" must be a number above 0 (at most "
                     "1000000)", path, lineno, prompt_key_col(line, "weight"));
            goto out;
        }
        p->weight = w->valuedouble;
    }
    rc = 0;
out:
    if (rc != 0) {
        free(p->messages_json);
        free(p->tenant);
        free(p->user);
        free(p->feature);
        memset(p, 0, sizeof *p);
    }
    cJSON_Delete(root);
    return rc;
}

int prompt_set_load(const char *path, struct prompt_set *out, char *err, size_t errlen)
{
    struct prompt_set ps = {NULL, 0};
    size_t cap = 0;
    FILE *f = NULL;
    char *line = NULL;
    long lineno = 0;
    int rc = -1;

    out->v = NULL;
    out->n = 0;
    f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        goto out;
    }
    line = malloc(PROMPT_MAX_LINE + 2);
    if (!line) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto out;
    }
    while (fgets(line, (int)(PROMPT_MAX_LINE + 2), f)) {
        size_t len = strlen(line), i;
        struct prompt p;
        int blank = 1;

        lineno++;
        if (len > 0 && line[len - 1] == '\n') {
            line[--len] = '\0';
        } else if (len > PROMPT_MAX_LINE) {
            snprintf(err, errlen, "%s:%ld:%zu: line longer than %zu bytes", path, lineno,
                     PROMPT_MAX_LINE + 1, PROMPT_MAX_LINE);
            goto out;
        }
        if (len > 0 && line[len - 1] == '\r') line[--len] = '\0';
        if (lineno == 1 && len >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0) {
            memmove(line, line + 3, len - 2); /* a UTF-8 byte order mark */
            len -= 3;
        }
        for (i = 0; i < len; i++)
            if (line[i] != ' ' && line[i] != '\t') blank = 0;
        if (blank) continue;
        if (ps.n >= PROMPT_MAX_COUNT) {
            snprintf(err, errlen, "%s:%ld:1: more than %d prompts", path, lineno,
                     PROMPT_MAX_COUNT);
            goto out;
        }
        if (prompt_parse_line(path, lineno, line, len, &p, err, errlen) != 0) goto out;
        if (prompt_set_push(&ps, &cap, &p) != 0) {
            free(p.messages_json);
            free(p.tenant);
            free(p.user);
            free(p.feature);
            snprintf(err, errlen, "%s:%ld:1: out of memory", path, lineno);
            goto out;
        }
    }
    if (ferror(f)) {
        snprintf(err, errlen, "%s:%ld:1: read error: %s", path, lineno + 1, strerror(errno));
        goto out;
    }
    if (ps.n == 0) {
        snprintf(err, errlen, "%s:%ld:1: no prompts in file; write one JSON object per line, "
                 "such as {\"prompt\": \"text\"}", path, lineno + 1);
        goto out;
    }
    *out = ps;
    ps.v = NULL;
    ps.n = 0;
    rc = 0;
out:
    prompt_set_free(&ps);
    free(line);
    if (f) fclose(f);
    return rc;
}

/* The built-in set: customer-support questions in our own words. A few appear
 * twice (and carry weight) so a router's cache has something to hit. */
static const struct {
    const char *tenant, *feature, *text;
    double weight;
} prompt_builtin_v[] = {
    {"acme", "support-chat", "My order #4471 says delivered but nothing arrived. What should I do?", 1},
    {"acme", "support-chat", "How do I reset my password if I no longer have access to my old email?", 2},
    {"acme", "support-chat", "Can I change the shipping address after placing an order?", 1},
    {"acme", "support-chat", "The app logs me out every few minutes on my phone. Any fix?", 1},
    {"acme", "support-chat", "What is your refund policy for items bought on sale?", 2},
    {"acme", "billing", "I was charged twice for the same subscription this month.", 1},
    {"acme", "billing", "How do I download an invoice with my company's VAT number on it?", 1},
    {"acme", "billing", "Why did my plan price go up without notice?", 1},
    {"acme", "billing", "Can I switch from monthly to annual billing and keep my discount?", 1},
    {"globex", "support-chat", "The export to CSV button does nothing in Firefox.", 1},
    {"globex", "support-chat", "How many users can I add on the team plan?", 1},
    {"globex", "support-chat", "Is there a way to undo deleting a project?", 1},
    {"globex", "support-chat", "Your status page says all green but I get error 502 on login.", 1},
    {"globex", "summarize", "Summarize this ticket in two sentences: customer reports the mobile "
                            "app crashes when uploading photos larger than 10 MB on Android 14; "
                            "reinstalling did not help; they need it fixed before Friday.", 1},
    {"globex", "summarize", "Summarize: user cannot connect the Slack integration, receives 'invalid "
                            "state' after approving, tried two browsers, workspace admin confirmed "
                            "the app is allowed.", 1},
    {"globex", "triage", "Classify this message as billing, bug, how-to or account: 'I can't find "
                         "where to turn off the weekly digest emails.'", 1},
    {"globex", "triage", "Classify this message as billing, bug, how-to or account: 'The dashboard "
                         "shows yesterday's numbers even after refresh.'", 1},
    {"initech", "support-chat", "Do you offer a discount for non-profits?", 1},
    {"initech", "support-chat", "How do I enable two-factor authentication for my whole team?", 1},
    {"initech", "support-chat", "Where can I see which devices are signed in to my account?", 1},
    {"initech", "support-chat", "The verification code email never arrives. I checked spam.", 2},
    {"initech", "support-chat", "Can I get my data exported before I close my account?", 1},
    {"initech", "reply-draft", "Draft a polite reply to a customer whose replacement part is "
                               "back-ordered for three weeks; offer a partial refund.", 1},
    {"initech", "reply-draft", "Write a short apology for a two-hour outage of our booking page "
                               "this morning, without technical jargon.", 1},
    {"umbrella", "support-chat", "What are your support hours on weekends?", 1},
    {"umbrella", "support-chat", "How do I cancel my subscription?", 3},
    {"umbrella", "support-chat", "I bought the wrong size. How do I exchange it?", 1},
    {"umbrella", "support-chat", "Is my card information stored on your servers?", 1},
    {"umbrella", "support-chat", "How do I reset my password if I no longer have access to my old email?", 1},
    {"umbrella", "support-chat", "How do I cancel my subscription?", 1},
    {"umbrella", "translate", "Translate to Spanish: 'Your refund has been processed and should "
                              "appear within 5 business days.'", 1},
};

int prompt_set_builtin(struct prompt_set *out)
{
    size_t n = sizeof prompt_builtin_v / sizeof prompt_builtin_v[0], i;
    struct prompt_set ps = {NULL, 0};
    int rc = -1;

    out->v = NULL;
    out->n = 0;
    ps.v = calloc(n, sizeof *ps.v);
    if (!ps.v) goto out;
    for (i = 0; i < n; i++) {
        struct prompt *p = &ps.v[i];

        ps.n = i + 1;
        p->messages_json = prompt_user_message(prompt_builtin_v[i].text);
        p->tenant = prompt_strdup(prompt_builtin_v[i].tenant);
        p->feature = prompt_strdup(prompt_builtin_v[i].feature);
        p->weight = prompt_builtin_v[i].weight;
        if (!p->messages_json || !p->tenant || !p->feature) goto out;
    }
    *out = ps;
    ps.v = NULL;
    ps.n = 0;
    rc = 0;
out:
    prompt_set_free(&ps);
    return rc;
}
