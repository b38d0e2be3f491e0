/* fake_control.c -- the fakes' control API: /_chaos/faults.
 *
 *   GET    /_chaos/faults            {"provider":..,"faults":[..],"stats":{..}}
 *   POST   /_chaos/faults            body {"fault":"http_error","status":503,...}
 *                                    or {"spec":"http_error;status=503"}
 *   DELETE /_chaos/faults[?kind=K]   clears K, or every fault
 *
 *   GET    /_chaos/journal[?n=N]     {"provider":..,"entries":[..]}: the last
 *                                    requests, oldest first (fake_journal.c)
 *
 * Protected by x-slodrill-token when the fake has a control_token. Answers
 * are compact JSON; errors {"error":"..."} with 400 or 401. */
#include "fakeproviders/fake_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#define CONTROL_MAX_BODY 8192

static void reply(struct evhttp_request *req, int status, const char *reason, struct buf *b)
{
    struct evbuffer *eb = evbuffer_new();
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    if (eb != NULL && b->len > 0) (void)evbuffer_add(eb, b->data, b->len);
    evhttp_send_reply(req, status, reason, eb);
    if (eb != NULL) evbuffer_free(eb);
}

static void reply_err(struct evhttp_request *req, int status, const char *msg)
{
    struct buf b;
    buf_init(&b, 4096);
    if (buf_puts(&b, "{\"error\":") != 0 || fake_json_str(&b, msg) != 0 ||
        buf_puts(&b, "}\n") != 0)
        buf_reset(&b);
    reply(req, status, status == 401 ? "Unauthorized" : "Bad Request", &b);
    buf_cleanup(&b);
}

static int list_json(struct fake *f, struct buf *b)
{
    struct fault_spec fs[FAULT__COUNT];
    double left[FAULT__COUNT];
    struct fake_stats st;
    int n = fake_fault_list(f, fs, left, FAULT__COUNT), rc = 0;

    if (n > FAULT__COUNT) n = FAULT__COUNT;
    fake_stats_get(f, &st);
    rc |= buf_puts(b, "{\"provider\":");
    rc |= fake_json_str(b, fake_name(f));
    rc |= buf_puts(b, ",\"faults\":[");
    for (int i = 0; i < n; i++) {
        rc |= buf_printf(b,
                         "%s{\"fault\":\"%s\",\"status\":%d,\"probability\":%g,\"key\":",
                         i ? "," : "", fault_kind_name(fs[i].kind), fs[i].status,
                         fs[i].probability);
        rc |= fake_json_str(b, fs[i].key);
        rc |= buf_printf(b,
                         ",\"duration_s\":%g,\"remaining_s\":%.3f,\"ms\":%g,\"after_events\":%d,"
                         "\"retry_after_s\":%g,\"mode\":",
                         fs[i].duration_s, left[i], fs[i].ms, fs[i].after_events,
                         fs[i].retry_after_s);
        rc |= fake_json_str(b, fs[i].mode);
        rc |= buf_puts(b, "}");
    }
    rc |= buf_printf(b,
                     "],\"stats\":{\"requests\":%llu,\"ok\":%llu,\"faulted\":%llu,"
                     "\"auth_failed\":%llu,\"events\":%llu,\"events_late\":%llu}}\n",
                     (unsigned long long)st.requests, (unsigned long long)st.ok,
                     (unsigned long long)st.faulted, (unsigned long long)st.auth_failed,
                     (unsigned long long)st.events, (unsigned long long)st.events_late);
    return rc ? -1 : 0;
}

/* Turns a JSON object into the header syntax and parses that, so both
 * forms obey exactly the same rules. */
static int spec_from_json(const cJSON *o, struct fault_spec *fs, char *err, size_t errlen)
{
    static const char *const params[] = {"status", "probability", "key", "duration",
                                         "duration_s", "ms", "after_events", "retry_after",
                                         "retry_after_s", "mode", NULL};
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "spec"), *it;
    struct buf s;
    int rc = -1;

    buf_init(&s, 1024);
    if (cJSON_IsString(name)) {
        rc = fault_spec_parse(name->valuestring, fs, err, errlen);
        goto out;
    }
    name = cJSON_GetObjectItemCaseSensitive(o, "fault");
    if (!cJSON_IsString(name)) name = cJSON_GetObjectItemCaseSensitive(o, "kind");
    if (!cJSON_IsString(name)) {
        snprintf(err, errlen, "expected {\"fault\": NAME, ...} or {\"spec\": \"NAME;k=v\"}");
        goto out;
    }
    if (buf_puts(&s, name->valuestring) != 0) goto toolong;
    cJSON_ArrayForEach(it, o)
    {
        int known = 0;
        if (strcmp(it->string, "fault") == 0 || strcmp(it->string, "kind") == 0) continue;
        for (int i = 0; params[i]; i++) known |= strcmp(params[i], it->string) == 0;
        if (!known) {
            snprintf(err, errlen, "unknown field '%s'", it->string);
            goto out;
        }
        if (cJSON_IsString(it)) {
            if (strchr(it->valuestring, ';') != NULL) {
                snprintf(err, errlen, "field '%s' may not contain ';'", it->string);
                goto out;
            }
            if (buf_printf(&s, ";%s=%s", it->string, it->valuestring) != 0) goto toolong;
        } else if (cJSON_IsNumber(it)) {
            if (buf_printf(&s, ";%s=%.17g", it->string, it->valuedouble) != 0) goto toolong;
        } else {
            snprintf(err, errlen, "field '%s' must be a string or a number", it->string);
            goto out;
        }
    }
    rc = fault_spec_parse(s.data, fs, err, errlen);
    goto out;
toolong:
    snprintf(err, errlen, "fault spec too long");
out:
    buf_cleanup(&s);
    return rc;
}

void fake_control_handle(struct fake *f, const char *token, struct evhttp_request *req)
{
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    const char *t = evhttp_find_header(in, "x-slodrill-token");
    struct buf b;
    cJSON *body = NULL;
    char err[256];

    buf_init(&b, 1 << 16);
    if (token != NULL && token[0] != '\0' && (t == NULL || strcmp(t, token) != 0)) {
        reply_err(req, 401, "missing or wrong x-slodrill-token");
        goto out;
    }
    if (m == EVHTTP_REQ_POST) {
        struct evbuffer *eb = evhttp_request_get_input_buffer(req);
        size_t n = evbuffer_get_length(eb);
        struct fault_spec fs;
        const char *p;
        if (n == 0 || n > CONTROL_MAX_BODY) {
            reply_err(req, 400, "expected a JSON body of at most 8192 bytes");
            goto out;
        }
        p = (const char *)evbuffer_pullup(eb, -1);
        body = p ? cJSON_ParseWithLength(p, n) : NULL;
        if (!cJSON_IsObject(body)) {
            reply_err(req, 400, "body is not a JSON object");
            goto out;
        }
        if (spec_from_json(body, &fs, err, sizeof err) != 0) {
            reply_err(req, 400, err);
            goto out;
        }
        if (fake_fault_add(f, &fs) != 0) {
            reply_err(req, 400, "fault rejected");
            goto out;
        }
    } else if (m == EVHTTP_REQ_DELETE) {
        const char *uri = evhttp_request_get_uri(req), *q = strchr(uri, '?');
        int kind = -1;
        if (q != NULL && strncmp(q + 1, "kind=", 5) == 0) {
            kind = fault_kind_from_name(q + 6);
            if (kind < 0) {
                snprintf(err, sizeof err, "unknown fault '%.100s'", q + 6);
                reply_err(req, 400, err);
                goto out;
            }
        }
        fake_fault_clear(f, kind);
    } else if (m != EVHTTP_REQ_GET) {
        reply_err(req, 400, "use GET, POST or DELETE");
        goto out;
    }
    if (list_json(f, &b) != 0) buf_reset(&b);
    reply(req, 200, "OK", &b);
out:
    cJSON_Delete(body);
    buf_cleanup(&b);
}

void fake_control_journal(struct fake *f, const char *token, struct evhttp_request *req)
{
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    const char *t = evhttp_find_header(in, "x-slodrill-token");
    const char *uri = evhttp_request_get_uri(req), *q = strchr(uri, '?');
    struct buf b;
    long n = 0;

    buf_init(&b, 1 << 20);
    if (token != NULL && token[0] != '\0' && (t == NULL || strcmp(t, token) != 0)) {
        reply_err(req, 401, "missing or wrong x-slodrill-token");
        goto out;
    }
    if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
        reply_err(req, 400, "use GET");
        goto out;
    }
    if (q != NULL && strncmp(q + 1, "n=", 2) == 0) {
        char *end;
        n = strtol(q + 3, &end, 10);
        if (end == q + 3 || *end != '\0' || n < 1 || n > FAKE_JOURNAL_MAX) {
            reply_err(req, 400, "n must be a whole number from 1 to 256");
            goto out;
        }
    }
    fake_lock(f);
    if (fake_journal_json(fake_journal_of(f), fake_name(f), (size_t)n, &b) != 0) buf_reset(&b);
    fake_unlock(f);
    reply(req, 200, "OK", &b);
out:
    buf_cleanup(&b);
}
