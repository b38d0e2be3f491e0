/* cmd_fault.c -- `slodrill fault`: add, clear and list a running fake
 * provider's faults through its control API (/_chaos/faults).
 *
 * A short-lived client, so libcurl's easy API is the right tool: there is no
 * event loop to block. The fault is checked with the fakes' own parser
 * (fault_spec_parse) before anything is sent, so a typo is exit 2 with the
 * same message the fake would give. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "common/buf.h"
#include "fakeproviders/fake.h"
#include "harness/commands.h"

#define FAULT_MAX_REPLY (1u << 20)

static const char usage_fault[] =
    "usage: slodrill fault add URL FAULT [--status N] [--key K] [--probability P]\n"
    "                          [--duration S] [--ms MS] [--after-events N]\n"
    "                          [--retry-after S] [--mode M] [--token T]\n"
    "       slodrill fault clear URL [FAULT] [--token T]\n"
    "       slodrill fault list URL [--json] [--token T]\n"
    "       slodrill fault journal URL [--last N] [--json] [--token T]\n"
    "\n"
    "Drives a running fake provider (slodrill fake, or the fakes of a scenario)\n"
    "through its control API. URL is the provider's root URL as `slodrill fake`\n"
    "prints it (a trailing /v1 is ignored). FAULT is one of http_error,\n"
    "rate_limit, overloaded, revoke_key, slow_ttft, slow_tokens, stall, cut,\n"
    "error_event, malformed, egress_block, optionally with parameters in the\n"
    "x-slodrill-fault syntax (\"http_error;status=502\"); the flags add more.\n"
    "A fault of a kind already active replaces it. clear without FAULT clears\n"
    "every fault. Prints the faults active afterwards. journal prints the\n"
    "fake's last requests (at most 256): time, method, path, masked key, faults\n"
    "applied and the status the client got (0: no answer).\n"
    "\n"
    "  --status N        http_error, error_event: the HTTP status (default 503)\n"
    "  --key K           only requests made with API key K\n"
    "  --probability P   the share of requests hit, 0..1 (default 1)\n"
    "  --duration S      clears itself after S (\"30\", \"30s\", \"500ms\")\n"
    "  --ms MS           slow_ttft / slow_tokens delay; cut: after MS\n"
    "  --after-events N  cut, error_event, stall, malformed: after N events\n"
    "  --retry-after S   rate_limit: the retry-after the provider advertises\n"
    "  --mode M          egress_block refuse|blackhole|reset; cut close|reset;\n"
    "                    rate_limit requests|tokens|quota; malformed json|content_type\n"
    "  --token T         the fake's control_token (x-slodrill-token)\n"
    "  --json            list, journal: print the control API's JSON as it is\n"
    "  --last N          journal: only the last N requests\n"
    "\n"
    "exit codes: 0 done; 1 the fake refused (bad fault, wrong token);\n"
    "            2 bad usage, or the fake cannot be reached.\n";

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "slodrill fault: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n\n%s", usage_fault);
    return 2;
}

static size_t collect(char *p, size_t sz, size_t n, void *arg)
{
    struct buf *b = arg;
    return buf_append(b, p, sz * n) == 0 ? sz * n : 0;
}

/* One control API call. 0 with *status and the body in out, or -1 with a
 * reason in err (could not connect, timed out, reply too large). */
static int control_call(const char *url, const char *method, const char *body,
                        const char *token, long *status, struct buf *out, char *err,
                        size_t errlen)
{
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    char tok[256];
    CURLcode cc;
    int rc = -1;

    if (c == NULL) {
        snprintf(err, errlen, "cannot start libcurl");
        goto out;
    }
    h = curl_slist_append(h, "Content-Type: application/json");
    if (token != NULL) {
        snprintf(tok, sizeof tok, "x-slodrill-token: %s", token);
        h = curl_slist_append(h, tok);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    if (body != NULL) curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    cc = curl_easy_perform(c);
    if (cc != CURLE_OK) {
        snprintf(err, errlen, "%s: %s", url, curl_easy_strerror(cc));
        goto out;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    rc = 0;
out:
    curl_slist_free_all(h);
    if (c) curl_easy_cleanup(c);
    return rc;
}

/* The parameters of a listed fault that matter for its kind, as " k=v"
 * pairs. 0, or -1 when the buffer is full. */
static int describe(const cJSON *f, struct buf *b)
{
    const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(f, "fault"));
    struct fault_spec d;
    int kind = name ? fault_kind_from_name(name) : -1;
    double v;
    const char *s;
    int rc = 0;

    if (kind < 0) return 0;
    fault_spec_defaults(&d, (enum fault_kind)kind);
#define NUM(field) (cJSON_IsNumber(cJSON_GetObjectItem(f, field)) \
                        ? cJSON_GetObjectItem(f, field)->valuedouble : 0)
    if (kind == FAULT_HTTP_ERROR || kind == FAULT_ERROR_EVENT) {
        v = NUM("status");
        if (v != 0) rc |= buf_printf(b, " status=%g", v);
    }
    if ((v = NUM("probability")) != 1) rc |= buf_printf(b, " probability=%g", v);
    if ((s = cJSON_GetStringValue(cJSON_GetObjectItem(f, "key"))) != NULL && s[0])
        rc |= buf_printf(b, " key=%s", s);
    if ((v = NUM("ms")) != 0) rc |= buf_printf(b, " ms=%g", v);
    if (kind == FAULT_CUT || kind == FAULT_ERROR_EVENT || kind == FAULT_STALL ||
        kind == FAULT_MALFORMED)
        rc |= buf_printf(b, " after_events=%g", NUM("after_events"));
    if (kind == FAULT_RATE_LIMIT) rc |= buf_printf(b, " retry_after=%g", NUM("retry_after_s"));
    if ((s = cJSON_GetStringValue(cJSON_GetObjectItem(f, "mode"))) != NULL && s[0])
        rc |= buf_printf(b, " mode=%s", s);
    if ((v = NUM("duration_s")) > 0)
        rc |= buf_printf(b, " duration=%gs (%.1fs left)", v, NUM("remaining_s"));
#undef NUM
    return rc ? -1 : 0;
}

/* Prints the control API's list as a table; 0, or -1 when it is not the
 * JSON the fakes send. */
static int print_list(const char *json)
{
    cJSON *j = cJSON_Parse(json), *faults, *f, *st;
    int rc = -1;
    struct buf b;

    buf_init(&b, 4096);
    if (j == NULL || !cJSON_IsArray(faults = cJSON_GetObjectItem(j, "faults"))) goto out;
    printf("provider %s: %d fault%s active\n",
           cJSON_GetStringValue(cJSON_GetObjectItem(j, "provider"))
               ? cJSON_GetStringValue(cJSON_GetObjectItem(j, "provider"))
               : "?",
           cJSON_GetArraySize(faults), cJSON_GetArraySize(faults) == 1 ? "" : "s");
    cJSON_ArrayForEach(f, faults)
    {
        buf_reset(&b);
        if (describe(f, &b) != 0) buf_reset(&b);
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(f, "fault"));
        if (b.data != NULL && b.data[0] != '\0')
            printf("  %-13s%s\n", name ? name : "?", b.data);
        else
            printf("  %s\n", name ? name : "?");
    }
    st = cJSON_GetObjectItem(j, "stats");
    if (cJSON_IsObject(st))
        printf("requests %.0f: ok %.0f, faulted %.0f, auth failed %.0f\n",
               cJSON_GetNumberValue(cJSON_GetObjectItem(st, "requests")),
               cJSON_GetNumberValue(cJSON_GetObjectItem(st, "ok")),
               cJSON_GetNumberValue(cJSON_GetObjectItem(st, "faulted")),
               cJSON_GetNumberValue(cJSON_GetObjectItem(st, "auth_failed")));
    rc = 0;
out:
    buf_cleanup(&b);
    cJSON_Delete(j);
    return rc;
}

/* Prints the journal, one request a line; 0, or -1 when it is not the
 * JSON the fakes send. */
static int print_journal(const char *json)
{
    cJSON *j = cJSON_Parse(json), *entries, *e, *f;
    int rc = -1;

    if (j == NULL || !cJSON_IsArray(entries = cJSON_GetObjectItem(j, "entries"))) goto out;
    cJSON_ArrayForEach(e, entries)
    {
        const char *t = cJSON_GetStringValue(cJSON_GetObjectItem(e, "time"));
        const char *m = cJSON_GetStringValue(cJSON_GetObjectItem(e, "method"));
        const char *p = cJSON_GetStringValue(cJSON_GetObjectItem(e, "path"));
        const char *k = cJSON_GetStringValue(cJSON_GetObjectItem(e, "key"));
        int n = 0;
        printf("%s %3.0f %-6s %s%s key=%s faults=", t ? t : "?",
               cJSON_GetNumberValue(cJSON_GetObjectItem(e, "status")), m ? m : "?",
               p ? p : "?", cJSON_IsTrue(cJSON_GetObjectItem(e, "stream")) ? " (stream)" : "",
               k && k[0] ? k : "-");
        cJSON_ArrayForEach(f, cJSON_GetObjectItem(e, "faults"))
            if (cJSON_IsString(f)) printf("%s%s", n++ ? "," : "", f->valuestring);
        printf("%s\n", n ? "" : "-");
    }
    rc = 0;
out:
    cJSON_Delete(j);
    return rc;
}

/* Appends ";name=value" to the fault text; -1 when the value holds ';'. */
static int add_param(struct buf *spec, const char *name, const char *value)
{
    if (strchr(value, ';') != NULL || strchr(value, '=') != NULL) return -1;
    return buf_printf(spec, ";%s=%s", name, value);
}

int cmd_fault(int argc, char **argv)
{
    static const struct {
        const char *flag, *param;
    } flags[] = {{"--status", "status"},
                 {"--key", "key"},
                 {"--probability", "probability"},
                 {"--duration", "duration"},
                 {"--ms", "ms"},
                 {"--after-events", "after_events"},
                 {"--retry-after", "retry_after"},
                 {"--mode", "mode"}};
    const char *action = NULL, *url = NULL, *fault = NULL, *token = NULL, *last = NULL;
    int json = 0, nparams = 0, code = 2;
    struct buf spec, body, reply, endpoint;
    char err[512];
    long status = 0;

    buf_init(&spec, 1024);
    buf_init(&body, 4096);
    buf_init(&reply, FAULT_MAX_REPLY);
    buf_init(&endpoint, 2048);
    for (int a = 0; a < argc; a++) {
        const char *arg = argv[a];
        size_t i;
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            fputs(usage_fault, stdout);
            code = 0;
            goto out;
        }
        if (strcmp(arg, "--json") == 0) {
            json = 1;
            continue;
        }
        if (strcmp(arg, "--token") == 0 || strcmp(arg, "--last") == 0) {
            if (a + 1 >= argc) {
                code = usage_error("%s needs a value", arg);
                goto out;
            }
            if (arg[2] == 't') token = argv[++a];
            else last = argv[++a];
            continue;
        }
        for (i = 0; i < sizeof flags / sizeof flags[0]; i++)
            if (strcmp(arg, flags[i].flag) == 0) break;
        if (i < sizeof flags / sizeof flags[0]) {
            if (a + 1 >= argc) {
                code = usage_error("%s needs a value", arg);
                goto out;
            }
            if (add_param(&spec, flags[i].param, argv[++a]) != 0) {
                code = usage_error("the value of %s may not hold ';' or '='", arg);
                goto out;
            }
            nparams++;
            continue;
        }
        if (arg[0] == '-' && arg[1] == '-') {
            code = usage_error("unknown option '%s'", arg);
            goto out;
        }
        if (action == NULL) action = arg;
        else if (url == NULL) url = arg;
        else if (fault == NULL) fault = arg;
        else {
            code = usage_error("unexpected argument '%s'", arg);
            goto out;
        }
    }
    if (action == NULL) {
        code = usage_error("%s", "expected add, clear or list");
        goto out;
    }
    if (strcmp(action, "add") != 0 && strcmp(action, "clear") != 0 &&
        strcmp(action, "list") != 0 && strcmp(action, "journal") != 0) {
        code = usage_error("unknown action '%s' (expected add, clear, list or journal)", action);
        goto out;
    }
    if (url == NULL) {
        code = usage_error("%s", "expected the fake's URL (as `slodrill fake` prints it)");
        goto out;
    }
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
        code = usage_error("URL '%s' must start with http://", url);
        goto out;
    }
    {
        size_t n = strlen(url);
        while (n > 0 && url[n - 1] == '/') n--;
        if (n >= 3 && strncmp(url + n - 3, "/v1", 3) == 0) n -= 3;
        if (buf_append(&endpoint, url, n) != 0 ||
            buf_puts(&endpoint, strcmp(action, "journal") == 0 ? "/_chaos/journal"
                                                               : "/_chaos/faults") != 0) {
            code = usage_error("%s", "URL too long");
            goto out;
        }
    }

    if (strcmp(action, "add") == 0) {
        struct fault_spec fs;
        char *full;
        if (fault == NULL) {
            code = usage_error("%s", "add needs a FAULT (e.g. revoke_key, http_error)");
            goto out;
        }
        /* FAULT first, then the flags' parameters (later ones win). */
        full = buf_steal(&spec);
        if (buf_puts(&spec, fault) != 0 || buf_puts(&spec, full) != 0) {
            free(full);
            code = usage_error("%s", "fault too long");
            goto out;
        }
        free(full);
        if (fault_spec_parse(spec.data, &fs, err, sizeof err) != 0) {
            fprintf(stderr, "slodrill fault: %s\n", err);
            code = 2;
            goto out;
        }
        if (buf_puts(&body, "{\"spec\":") != 0) goto out;
        {
            cJSON *s = cJSON_CreateString(spec.data);
            char *p = s ? cJSON_PrintUnformatted(s) : NULL;
            int bad = p == NULL || buf_puts(&body, p) != 0 || buf_puts(&body, "}") != 0;
            free(p);
            cJSON_Delete(s);
            if (bad) goto out;
        }
        if (control_call(endpoint.data, "POST", body.data, token, &status, &reply, err,
                         sizeof err) != 0) {
            fprintf(stderr, "slodrill fault: cannot reach the fake: %s\n", err);
            goto out;
        }
    } else if (strcmp(action, "clear") == 0) {
        if (nparams > 0) {
            code = usage_error("%s", "clear takes no fault parameters");
            goto out;
        }
        if (fault != NULL) {
            if (fault_kind_from_name(fault) < 0) {
                code = usage_error("unknown fault '%s'", fault);
                goto out;
            }
            if (buf_printf(&endpoint, "?kind=%s", fault) != 0) goto out;
        }
        if (control_call(endpoint.data, "DELETE", NULL, token, &status, &reply, err,
                         sizeof err) != 0) {
            fprintf(stderr, "slodrill fault: cannot reach the fake: %s\n", err);
            goto out;
        }
    } else if (strcmp(action, "journal") == 0) {
        if (fault != NULL || nparams > 0) {
            code = usage_error("%s", "journal takes only URL (and --last, --json, --token)");
            goto out;
        }
        if (last != NULL) {
            char *end;
            long n = strtol(last, &end, 10);
            if (end == last || *end != '\0' || n < 1 || n > 256) {
                code = usage_error("--last %s: expected a whole number from 1 to 256", last);
                goto out;
            }
            if (buf_printf(&endpoint, "?n=%ld", n) != 0) goto out;
        }
        if (control_call(endpoint.data, "GET", NULL, token, &status, &reply, err,
                         sizeof err) != 0) {
            fprintf(stderr, "slodrill fault: cannot reach the fake: %s\n", err);
            goto out;
        }
    } else {
        if (fault != NULL || nparams > 0) {
            code = usage_error("%s", "list takes only URL (and --json, --token)");
            goto out;
        }
        if (control_call(endpoint.data, "GET", NULL, token, &status, &reply, err,
                         sizeof err) != 0) {
            fprintf(stderr, "slodrill fault: cannot reach the fake: %s\n", err);
            goto out;
        }
    }

    if (status != 200) {
        cJSON *j = cJSON_Parse(reply.data ? reply.data : "");
        const char *msg = cJSON_GetStringValue(cJSON_GetObjectItem(j, "error"));
        fprintf(stderr, "slodrill fault: the fake refused (HTTP %ld): %s\n", status,
                msg ? msg : (reply.data ? reply.data : ""));
        cJSON_Delete(j);
        code = status == 404 ? 2 : 1; /* 404: not a slodrill fake at that URL */
        goto out;
    }
    if (json) {
        fputs(reply.data ? reply.data : "", stdout);
    } else if ((strcmp(action, "journal") == 0 ? print_journal(reply.data ? reply.data : "")
                                                : print_list(reply.data ? reply.data : "")) != 0) {
        fprintf(stderr, "slodrill fault: %s did not answer like a slodrill fake\n", url);
        goto out;
    }
    code = 0;
out:
    buf_cleanup(&spec);
    buf_cleanup(&body);
    buf_cleanup(&reply);
    buf_cleanup(&endpoint);
    return code;
}
