/* fault.c -- fault names, defaults and the "NAME;param=value" syntax.
 *
 * The same syntax arrives in the x-slodrill-fault request header, on the
 * command line (slodrill fault add) and in the control API, so it is parsed
 * strictly: unknown names, unknown parameters and bad numbers are errors. */
#include "fakeproviders/fake.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const fault_names[FAULT__COUNT] = {
    [FAULT_HTTP_ERROR] = "http_error",   [FAULT_RATE_LIMIT] = "rate_limit",
    [FAULT_OVERLOADED] = "overloaded",   [FAULT_REVOKE_KEY] = "revoke_key",
    [FAULT_SLOW_TTFT] = "slow_ttft",     [FAULT_SLOW_TOKENS] = "slow_tokens",
    [FAULT_STALL] = "stall",             [FAULT_CUT] = "cut",
    [FAULT_ERROR_EVENT] = "error_event", [FAULT_MALFORMED] = "malformed",
    [FAULT_EGRESS_BLOCK] = "egress_block",
};

const char *fault_kind_name(enum fault_kind k)
{
    if ((int)k < 0 || k >= FAULT__COUNT) return "unknown";
    return fault_names[k];
}

int fault_kind_from_name(const char *name)
{
    for (int i = 0; i < FAULT__COUNT; i++)
        if (strcmp(fault_names[i], name) == 0) return i;
    return -1;
}

void fault_spec_defaults(struct fault_spec *f, enum fault_kind kind)
{
    memset(f, 0, sizeof *f);
    f->kind = kind;
    f->status = 503;
    f->probability = 1.0;
    f->retry_after_s = 1.0;
    switch (kind) {
    case FAULT_SLOW_TTFT: f->ms = 3000; break;
    case FAULT_SLOW_TOKENS: f->ms = 250; break;
    case FAULT_CUT: f->after_events = 3; snprintf(f->mode, sizeof f->mode, "close"); break;
    case FAULT_ERROR_EVENT: f->after_events = 3; f->status = 0; break;
    case FAULT_STALL: f->after_events = 2; break;
    case FAULT_MALFORMED: f->after_events = 1; snprintf(f->mode, sizeof f->mode, "json"); break;
    case FAULT_EGRESS_BLOCK: snprintf(f->mode, sizeof f->mode, "refuse"); break;
    case FAULT_RATE_LIMIT: snprintf(f->mode, sizeof f->mode, "requests"); break;
    default: break;
    }
}

static int parse_num(const char *v, double lo, double hi, double *out)
{
    char *end;
    double d;
    errno = 0;
    d = strtod(v, &end);
    if (end == v || *end != '\0' || errno != 0 || !isfinite(d) || d < lo || d > hi) return -1;
    *out = d;
    return 0;
}

static const char *const mode_ok[FAULT__COUNT][4] = {
    [FAULT_EGRESS_BLOCK] = {"refuse", "blackhole", "reset", NULL},
    [FAULT_CUT] = {"close", "reset", NULL},
    [FAULT_RATE_LIMIT] = {"requests", "tokens", "quota", NULL},
    [FAULT_MALFORMED] = {"json", "content_type", NULL},
};

/* One "param=value" pair. */
static int apply_param(struct fault_spec *f, const char *k, const char *v, char *err,
                       size_t errlen)
{
    int rc = -1;
    double d;

    if (strcmp(k, "status") == 0) {
        if (parse_num(v, 100, 599, &d) != 0 || d != floor(d)) {
            snprintf(err, errlen, "status=%s: expected an HTTP status 100..599", v);
            goto out;
        }
        f->status = (int)d;
    } else if (strcmp(k, "probability") == 0 || strcmp(k, "p") == 0) {
        if (parse_num(v, 0, 1, &d) != 0) {
            snprintf(err, errlen, "probability=%s: expected a number from 0 to 1", v);
            goto out;
        }
        f->probability = d;
    } else if (strcmp(k, "key") == 0) {
        if (strlen(v) >= sizeof f->key) {
            snprintf(err, errlen, "key is longer than %zu bytes", sizeof f->key - 1);
            goto out;
        }
        snprintf(f->key, sizeof f->key, "%s", v);
    } else if (strcmp(k, "duration") == 0 || strcmp(k, "duration_s") == 0) {
        size_t n = strlen(v);
        int ms = n > 2 && strcmp(v + n - 2, "ms") == 0;
        char tmp[64];
        if (n >= sizeof tmp) goto bad_duration;
        snprintf(tmp, sizeof tmp, "%s", v);
        if (ms) tmp[n - 2] = '\0';
        else if (n > 1 && tmp[n - 1] == 's') tmp[n - 1] = '\0';
        if (parse_num(tmp, 0, 86400 * 365.0, &d) != 0) goto bad_duration;
        f->duration_s = ms ? d / 1000.0 : d;
    } else if (strcmp(k, "ms") == 0) {
        if (parse_num(v, 0, 3600e3, &d) != 0) {
            snprintf(err, errlen, "ms=%s: expected milliseconds, 0..3600000", v);
            goto out;
        }
        f->ms = d;
    } else if (strcmp(k, "after_events") == 0 || strcmp(k, "after") == 0) {
        if (parse_num(v, 0, 1e6, &d) != 0 || d != floor(d)) {
            snprintf(err, errlen, "after_events=%s: expected a whole number of events", v);
            goto out;
        }
        f->after_events = (int)d;
    } else if (strcmp(k, "retry_after") == 0 || strcmp(k, "retry_after_s") == 0) {
        if (parse_num(v, 0, 86400, &d) != 0) {
            snprintf(err, errlen, "retry_after=%s: expected seconds, 0..86400", v);
            goto out;
        }
        f->retry_after_s = d;
    } else if (strcmp(k, "mode") == 0) {
        const char *const *ok = mode_ok[f->kind];
        int found = 0;
        for (int i = 0; ok[i] != NULL; i++) found |= strcmp(ok[i], v) == 0;
        if (!found) {
            if (ok[0] == NULL)
                snprintf(err, errlen, "%s takes no mode", fault_kind_name(f->kind));
            else
                snprintf(err, errlen, "mode=%s: %s expects %s%s%s%s%s", v,
                         fault_kind_name(f->kind), ok[0], ok[1] ? "|" : "", ok[1] ? ok[1] : "",
                         ok[1] && ok[2] ? "|" : "", ok[1] && ok[2] ? ok[2] : "");
            goto out;
        }
        snprintf(f->mode, sizeof f->mode, "%s", v);
    } else {
        snprintf(err, errlen,
                 "unknown fault parameter '%s' (expected status, probability, key, duration, "
                 "ms, after_events, retry_after or mode)",
                 k);
        goto out;
    }
    rc = 0;
out:
    return rc;
bad_duration:
    snprintf(err, errlen, "duration=%s: expected seconds (\"30\", \"30s\", \"500ms\")", v);
    return -1;
}

static char *trim(char *s)
{
    char *e;
    while (*s == ' ' || *s == '\t') s++;
    e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t')) *--e = '\0';
    return s;
}

int fault_spec_parse(const char *text, struct fault_spec *f, char *err, size_t errlen)
{
    char tmp[512], *save = NULL, *tok, *name;
    int rc = -1, kind;

    if (strlen(text) >= sizeof tmp) {
        snprintf(err, errlen, "fault spec longer than %zu bytes", sizeof tmp - 1);
        goto out;
    }
    snprintf(tmp, sizeof tmp, "%s", text);
    tok = strtok_r(tmp, ";", &save);
    name = tok ? trim(tok) : tmp;
    kind = fault_kind_from_name(name);
    if (kind < 0) {
        snprintf(err, errlen,
                 "unknown fault '%s' (expected http_error, rate_limit, overloaded, revoke_key, "
                 "slow_ttft, slow_tokens, stall, cut, error_event, malformed or egress_block)",
                 name);
        goto out;
    }
    fault_spec_defaults(f, (enum fault_kind)kind);
    while ((tok = strtok_r(NULL, ";", &save)) != NULL) {
        char *kv = trim(tok), *eq;
        if (*kv == '\0') continue;
        eq = strchr(kv, '=');
        if (eq == NULL) {
            snprintf(err, errlen, "fault parameter '%s' has no '=value'", kv);
            goto out;
        }
        *eq = '\0';
        if (apply_param(f, trim(kv), trim(eq + 1), err, errlen) != 0) goto out;
    }
    rc = 0;
out:
    return rc;
}
