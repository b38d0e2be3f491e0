/* fake_openai.c -- the OpenAI Chat Completions wire, byte for byte.
 *
 * Follows /work/shared/reference/providers.md: errors pretty-printed with a
 * 4-space indent and a trailing newline (keys message, type, param, code),
 * `application/json; charset=utf-8` except validation 400s; answers
 * pretty-printed with 2 spaces; streams of `data:` events only, a role-only
 * first chunk, an `obfuscation` pad on every chunk, an optional usage chunk
 * with `"choices":[]`, then `data: [DONE]`. */
#include "fakeproviders/fake_int.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <event2/http.h>

#include "common/clock.h"

#define OAI_RPM_LIMIT 10000
#define OAI_TPM_LIMIT 2000000

static int oai_parse(struct fake_req *r, const cJSON *body, struct fake_errinfo *e)
{
    const cJSON *msgs, *m, *v, *so;
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
    cJSON_ArrayForEach(m, msgs)
    {
        bytes += fake_json_text_bytes(cJSON_GetObjectItemCaseSensitive(m, "content"));
        n++;
    }
    r->prompt_tokens = fake_json_estimate_tokens(bytes, n);
    r->stream = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(body, "stream"));
    so = cJSON_GetObjectItemCaseSensitive(body, "stream_options");
    r->include_usage =
        r->stream && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(so, "include_usage"));
    v = cJSON_GetObjectItemCaseSensitive(body, "max_completion_tokens");
    if (!cJSON_IsNumber(v)) v = cJSON_GetObjectItemCaseSensitive(body, "max_tokens");
    if (cJSON_IsNumber(v) && v->valuedouble >= 1 && v->valuedouble < 1e9)
        r->max_tokens = (int)v->valuedouble;
    return 0;
}

/* The x-ratelimit-* family; remaining figures follow the requests served
 * this minute. exhausted: a 429's view (nothing left, reset in retry). */
static void ratelimit_headers(struct fake_req *r, struct evkeyvalq *h, int exhausted,
                              double retry_s)
{
    char v[64];
    unsigned used = fake_window_used(r->f);
    long tok_used = (long)used * (r->prompt_tokens + 40);
    if (used > OAI_RPM_LIMIT) used = OAI_RPM_LIMIT;
    if (tok_used > OAI_TPM_LIMIT) tok_used = OAI_TPM_LIMIT;

    snprintf(v, sizeof v, "%d", OAI_RPM_LIMIT);
    evhttp_add_header(h, "x-ratelimit-limit-requests", v);
    snprintf(v, sizeof v, "%d", OAI_TPM_LIMIT);
    evhttp_add_header(h, "x-ratelimit-limit-tokens", v);
    snprintf(v, sizeof v, "%u", exhausted ? 0u : OAI_RPM_LIMIT - used);
    evhttp_add_header(h, "x-ratelimit-remaining-requests", v);
    snprintf(v, sizeof v, "%ld", exhausted ? 0L : OAI_TPM_LIMIT - tok_used);
    evhttp_add_header(h, "x-ratelimit-remaining-tokens", v);
    fake_go_duration(exhausted ? retry_s : used * 60.0 / OAI_RPM_LIMIT, v, sizeof v);
    evhttp_add_header(h, "x-ratelimit-reset-requests", v);
    fake_go_duration(exhausted ? retry_s : tok_used * 60.0 / OAI_TPM_LIMIT, v, sizeof v);
    evhttp_add_header(h, "x-ratelimit-reset-tokens", v);
}

static void common_headers(struct fake_req *r, struct evkeyvalq *h)
{
    char v[32];
    snprintf(v, sizeof v, "%llu",
             (unsigned long long)((clock_mono_us() - r->t_arrival_us) / 1000));
    evhttp_add_header(h, "openai-organization", "org-slodrill");
    evhttp_add_header(h, "openai-processing-ms", v);
    evhttp_add_header(h, "openai-version", "2020-10-01");
}

static int oai_ok_headers(struct fake_req *r, struct evkeyvalq *h)
{
    evhttp_add_header(h, "Content-Type",
                      r->stream ? "text/event-stream; charset=utf-8" : "application/json");
    common_headers(r, h);
    ratelimit_headers(r, h, 0, 0);
    evhttp_add_header(h, "x-request-id", r->request_id);
    return 0;
}

/* "sk-3XSO2" + one star per hidden character + the last 4. */
static int mask_key(struct buf *b, const char *key)
{
    size_t n = strlen(key);
    int rc = 0;
    if (n > 12) {
        rc |= buf_append(b, key, 8);
        for (size_t i = 0; i < n - 12 && rc == 0; i++) rc |= buf_puts(b, "*");
        rc |= buf_append(b, key + n - 4, 4);
    } else if (n > 4) {
        rc |= buf_append(b, key, 2);
        for (size_t i = 0; i < n - 4 && rc == 0; i++) rc |= buf_puts(b, "*");
        rc |= buf_append(b, key + n - 2, 2);
    } else {
        for (size_t i = 0; i < n && rc == 0; i++) rc |= buf_puts(b, "*");
    }
    return rc ? -1 : 0;
}

/* The classic error object. pretty: the 4-space form of an error response;
 * otherwise compact (inside a stream). code/param NULL print as null. */
static int error_json(struct buf *out, int pretty, const char *message, const char *type,
                      const char *param, const char *code)
{
    int rc = 0;
    const char *nl = pretty ? "\n" : "", *i1 = pretty ? "    " : "",
               *i2 = pretty ? "        " : "", *sp = pretty ? " " : "";

    rc |= buf_printf(out, "{%s%s\"error\":%s{%s", nl, i1, sp, nl);
    rc |= buf_printf(out, "%s\"message\":%s", i2, sp);
    rc |= fake_json_str(out, message);
    rc |= buf_printf(out, ",%s%s\"type\":%s", nl, i2, sp);
    rc |= fake_json_str(out, type);
    rc |= buf_printf(out, ",%s%s\"param\":%s", nl, i2, sp);
    rc |= param ? fake_json_str(out, param) : buf_puts(out, "null");
    rc |= buf_printf(out, ",%s%s\"code\":%s", nl, i2, sp);
    rc |= code ? fake_json_str(out, code) : buf_puts(out, "null");
    rc |= buf_printf(out, "%s%s}%s}%s", nl, i1, nl, nl);
    return rc ? -1 : 0;
}

/* Message, type and code OpenAI uses for a status. */
struct oai_err {
    const char *message, *type, *param, *code;
};

static void status_error(struct fake_req *r, int status, struct oai_err *o, struct buf *tmp)
{
    o->param = NULL;
    o->code = NULL;
    switch (status) {
    case 400:
        o->message = "Invalid request.";
        o->type = "invalid_request_error";
        break;
    case 401:
        o->message = "Incorrect API key provided. You can find your API key at "
                     "https://platform.openai.com/account/api-keys.";
        o->type = "invalid_request_error";
        o->code = "invalid_api_key";
        break;
    case 403:
        o->message = "Country, region, or territory not supported";
        o->type = "request_forbidden";
        o->code = "unsupported_country_region_territory";
        break;
    case 404:
        buf_reset(tmp);
        if (buf_printf(tmp, "The model `%s` does not exist or you do not have access to it.",
                       r->req_model[0] ? r->req_model : fake_model(r->f)) == 0)
            o->message = tmp->data;
        else
            o->message = "The model does not exist or you do not have access to it.";
        o->type = "invalid_request_error";
        o->code = "model_not_found";
        break;
    case 429:
        o->message = "Rate limit reached for requests";
        o->type = "requests";
        o->code = "rate_limit_exceeded";
        break;
    case 500:
        o->message = "The server had an error while processing your request. Sorry about that!";
        o->type = "server_error";
        break;
    case 503:
        o->message = "Our servers are currently overloaded. Please try again later.";
        o->type = "service_unavailable_error";
        o->code = "server_is_overloaded";
        break;
    case 504:
        o->message = "Gateway timeout.";
        o->type = "server_error";
        break;
    default:
        o->message = status >= 500 ? "The server had an error processing your request."
                                   : "Invalid request.";
        o->type = status >= 500 ? "server_error" : "invalid_request_error";
    }
}

static int oai_error(struct fake_req *r, const struct fake_errinfo *e, int *status,
                     struct evkeyvalq *h, struct buf *out)
{
    struct buf msg, tmp;
    struct oai_err o = {0};
    const char *ctype = "application/json; charset=utf-8";
    int rc = -1, exhausted = 0, html = 0;
    double retry = 0;
    char v[64];

    buf_init(&msg, 1 << 14);
    buf_init(&tmp, 1 << 14);
    switch (e->kind) {
    case FAKE_ERR_BAD_KEY:
        *status = 401;
        if (buf_puts(&msg, "Incorrect API key provided: ") != 0 ||
            mask_key(&msg, e->key ? e->key : "") != 0 ||
            buf_puts(&msg, ". You can find your API key at "
                           "https://platform.openai.com/account/api-keys.") != 0)
            goto out;
        o = (struct oai_err){msg.data, "invalid_request_error", NULL, "invalid_api_key"};
        break;
    case FAKE_ERR_NO_KEY:
        *status = 401;
        o = (struct oai_err){
            "You didn't provide an API key. You need to provide your API key in an "
            "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or "
            "as the password field (with blank username) if you're accessing the API from your "
            "browser and are prompted for a username and password. You can obtain an API key "
            "from https://platform.openai.com/account/api-keys.",
            "invalid_request_error", NULL, NULL};
        break;
    case FAKE_ERR_RATE_LIMIT:
        *status = 429;
        retry = e->retry_after_s;
        if (e->mode != NULL && strcmp(e->mode, "quota") == 0) {
            o = (struct oai_err){
                "You exceeded your current quota, please check your plan and billing details. "
                "For more information on this error, read the docs: "
                "https://platform.openai.com/docs/guides/error-codes/api-errors.",
                "insufficient_quota", NULL, "insufficient_quota"};
            break;
        }
        {
            int tokens = e->mode != NULL && strcmp(e->mode, "tokens") == 0;
            char d[32];
            fake_go_duration(retry, d, sizeof d);
            if (buf_printf(&msg,
                           "Rate limit reached for %s in organization org-slodrill on %s: "
                           "Limit %d, Used %d, Requested %d. Please try again in %s. Visit "
                           "https://platform.openai.com/account/rate-limits to learn more.",
                           fake_model(r->f),
                           tokens ? "tokens per min (TPM)" : "requests per min (RPM)",
                           tokens ? OAI_TPM_LIMIT : OAI_RPM_LIMIT,
                           tokens ? OAI_TPM_LIMIT - 10 : OAI_RPM_LIMIT,
                           tokens ? r->prompt_tokens + 40 : 1, d) != 0)
                goto out;
            o = (struct oai_err){msg.data, tokens ? "tokens" : "requests", NULL,
                                 "rate_limit_exceeded"};
        }
        exhausted = 1;
        break;
    case FAKE_ERR_OVERLOADED:
        *status = 503;
        status_error(r, 503, &o, &tmp);
        break;
    case FAKE_ERR_HTTP:
        *status = e->status;
        status_error(r, e->status, &o, &tmp);
        if (e->message != NULL) o.message = e->message;
        if (e->status == 400) ctype = "application/json";
        if (e->status == 429) {
            exhausted = 1;
            retry = 1;
        }
        html = e->status == 502;
        break;
    case FAKE_ERR_BAD_JSON:
        *status = 400;
        ctype = "application/json";
        o = (struct oai_err){
            "We could not parse the JSON body of your request. (HINT: This likely means you "
            "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, "
            "but what was sent was not valid JSON. If you have trouble figuring out how to fix "
            "this, please contact us through our help center at help.openai.com.)",
            "invalid_request_error", NULL, NULL};
        break;
    case FAKE_ERR_MISSING:
        *status = 400;
        ctype = "application/json";
        if (buf_printf(&msg, "Missing required parameter: '%s'.", e->field) != 0) goto out;
        o = (struct oai_err){msg.data, "invalid_request_error", e->field,
                             "missing_required_parameter"};
        break;
    case FAKE_ERR_NOT_FOUND:
        *status = 404;
        if (buf_printf(&msg, "Invalid URL (%s %s)", e->method, e->path) != 0) goto out;
        o = (struct oai_err){msg.data, "invalid_request_error", NULL, NULL};
        break;
    }

    if (html) {
        /* OpenAI's edge answers a 502 with its own HTML page. */
        ctype = "text/html";
        if (buf_puts(out, "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
                          "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>"
                          "cloudflare</center>\r\n</body>\r\n</html>\r\n") != 0)
            goto out;
    } else if (error_json(out, 1, o.message, o.type, o.param, o.code) != 0) {
        goto out;
    }
    evhttp_add_header(h, "Content-Type", ctype);
    common_headers(r, h);
    if (*status == 429) {
        if (retry > 0 && !(e->mode != NULL && strcmp(e->mode, "quota") == 0)) {
            snprintf(v, sizeof v, "%d", (int)ceil(retry));
            evhttp_add_header(h, "retry-after", v);
            snprintf(v, sizeof v, "%d", (int)lround(retry * 1000));
            evhttp_add_header(h, "retry-after-ms", v);
        }
    }
    ratelimit_headers(r, h, exhausted, retry);
    evhttp_add_header(h, "x-request-id", r->request_id);
    rc = 0;
out:
    buf_cleanup(&msg);
    buf_cleanup(&tmp);
    return rc;
}

static int usage_json(struct fake_req *r, struct buf *out, int pretty)
{
    int p = r->prompt_tokens, c = r->sent_tokens;
    if (pretty)
        return buf_printf(out,
                          "  \"usage\": {\n"
                          "    \"prompt_tokens\": %d,\n"
                          "    \"completion_tokens\": %d,\n"
                          "    \"total_tokens\": %d,\n"
                          "    \"prompt_tokens_details\": {\n"
                          "      \"cached_tokens\": 0,\n"
                          "      \"audio_tokens\": 0\n"
                          "    },\n"
                          "    \"completion_tokens_details\": {\n"
                          "      \"reasoning_tokens\": 0,\n"
                          "      \"audio_tokens\": 0,\n"
                          "      \"accepted_prediction_tokens\": 0,\n"
                          "      \"rejected_prediction_tokens\": 0\n"
                          "    }\n"
                          "  },\n",
                          p, c, p + c);
    return buf_printf(out,
                      "\"usage\":{\"prompt_tokens\":%d,\"completion_tokens\":%d,"
                      "\"total_tokens\":%d,\"prompt_tokens_details\":{\"cached_tokens\":0,"
                      "\"audio_tokens\":0},\"completion_tokens_details\":{\"reasoning_tokens\":0,"
                      "\"audio_tokens\":0,\"accepted_prediction_tokens\":0,"
                      "\"rejected_prediction_tokens\":0}}",
                      p, c, p + c);
}

static int oai_body(struct fake_req *r, const char *text, struct buf *out)
{
    int rc = 0;
    rc |= buf_puts(out, "{\n  \"id\": ");
    rc |= fake_json_str(out, r->id);
    rc |= buf_printf(out, ",\n  \"object\": \"chat.completion\",\n  \"created\": %lld,\n"
                          "  \"model\": ",
                     (long long)r->created);
    rc |= fake_json_str(out, fake_model(r->f));
    rc |= buf_puts(out, ",\n  \"choices\": [\n    {\n      \"index\": 0,\n"
                        "      \"message\": {\n        \"role\": \"assistant\",\n"
                        "        \"content\": ");
    rc |= fake_json_str(out, text);
    rc |= buf_printf(out,
                     ",\n        \"refusal\": null,\n        \"annotations\": []\n      },\n"
                     "      \"logprobs\": null,\n      \"finish_reason\": \"%s\"\n    }\n  ],\n",
                     r->capped ? "length" : "stop");
    rc |= usage_json(r, out, 1);
    rc |= buf_puts(out, "  \"service_tier\": \"default\",\n  \"system_fingerprint\": null\n}\n");
    return rc ? -1 : 0;
}

static int oai_npre(struct fake_req *r)
{
    (void)r;
    return 1;
}

static int oai_npost(struct fake_req *r)
{
    return 2 + (r->include_usage ? 1 : 0);
}

/* v in decimal at the end of out (no printf: this runs for every event). */
static const char *fmt_i64(char *out, size_t outlen, int64_t v)
{
    char *p = out + outlen - 1;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    *p = '\0';
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0 && p > out + 1);
    if (v < 0) *--p = '-';
    return p;
}

/* One chunk: the common head, the choices part, usage, obfuscation pad. */
static int chunk(struct fake_req *r, struct buf *out, const char *choices_fmt, const char *text,
                 const char *finish, int usage)
{
    char pad[24], num[24];
    int rc = 0;
    fake_rng_alnum(&r->rng_misc, pad, 2 + fake_rng_next(&r->rng_misc) % 14);
    rc |= buf_puts(out, "data: {\"id\":");
    rc |= fake_json_str(out, r->id);
    rc |= buf_puts(out, ",\"object\":\"chat.completion.chunk\",\"created\":");
    rc |= buf_puts(out, fmt_i64(num, sizeof num, r->created));
    rc |= buf_puts(out, ",\"model\":");
    rc |= fake_json_str(out, fake_model(r->f));
    rc |= buf_puts(out, ",\"service_tier\":\"default\",\"system_fingerprint\":null,\"choices\":");
    if (choices_fmt == NULL) {
        rc |= buf_puts(out, "[]");
    } else {
        rc |= buf_puts(out, "[{\"index\":0,\"delta\":");
        if (strcmp(choices_fmt, "role") == 0) {
            rc |= buf_puts(out, "{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null}");
        } else if (strcmp(choices_fmt, "content") == 0) {
            rc |= buf_puts(out, "{\"content\":");
            rc |= fake_json_str(out, text);
            rc |= buf_puts(out, "}");
        } else {
            rc |= buf_puts(out, "{}");
        }
        rc |= buf_puts(out, ",\"logprobs\":null,\"finish_reason\":");
        if (finish != NULL) {
            rc |= buf_puts(out, "\"");
            rc |= buf_puts(out, finish);
            rc |= buf_puts(out, "\"");
        } else {
            rc |= buf_puts(out, "null");
        }
        rc |= buf_puts(out, "}]");
    }
    if (usage == 1) rc |= buf_puts(out, ",\"usage\":null");
    if (usage == 2) {
        rc |= buf_puts(out, ",");
        rc |= usage_json(r, out, 0);
    }
    rc |= buf_puts(out, ",\"obfuscation\":\"");
    rc |= buf_puts(out, pad);
    rc |= buf_puts(out, "\"}\n\n");
    return rc ? -1 : 0;
}

static int oai_pre(struct fake_req *r, int i, struct buf *out)
{
    (void)i;
    return chunk(r, out, "role", NULL, NULL, r->include_usage ? 1 : 0);
}

static int oai_token(struct fake_req *r, const char *text, struct buf *out)
{
    return chunk(r, out, "content", text, NULL, r->include_usage ? 1 : 0);
}

static int oai_post(struct fake_req *r, int i, struct buf *out)
{
    if (i == 0)
        return chunk(r, out, "final", NULL, r->capped ? "length" : "stop",
                     r->include_usage ? 1 : 0);
    if (i == 1 && r->include_usage) return chunk(r, out, NULL, NULL, NULL, 2);
    return buf_puts(out, "data: [DONE]\n\n");
}

static int oai_error_event(struct fake_req *r, int status, struct buf *out)
{
    struct oai_err o;
    struct buf tmp;
    int rc;
    buf_init(&tmp, 1 << 12);
    status_error(r, status ? status : 500, &o, &tmp);
    rc = buf_puts(out, "data: ") != 0 || error_json(out, 0, o.message, o.type, o.param, o.code) ||
         buf_puts(out, "\n\n") != 0;
    buf_cleanup(&tmp);
    return rc ? -1 : 0;
}

static int oai_models(struct fake_req *r, struct buf *out)
{
    int rc = 0;
    rc |= buf_puts(out, "{\n  \"object\": \"list\",\n  \"data\": [\n    {\n      \"id\": ");
    rc |= fake_json_str(out, fake_model(r->f));
    rc |= buf_puts(out, ",\n      \"object\": \"model\",\n      \"created\": 1686935002,\n"
                        "      \"owned_by\": \"system\"\n    }\n  ]\n}\n");
    return rc ? -1 : 0;
}

const struct fake_wire fake_openai_wire = {
    .parse = oai_parse,
    .ok_headers = oai_ok_headers,
    .error = oai_error,
    .body = oai_body,
    .npre = oai_npre,
    .npost = oai_npost,
    .pre = oai_pre,
    .token = oai_token,
    .post = oai_post,
    .error_event = oai_error_event,
    .models = oai_models,
};
