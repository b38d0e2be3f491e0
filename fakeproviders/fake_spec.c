/* fake_spec.c -- a fake provider's settings: defaults and the YAML form.
 *
 * The YAML form is one entry of a scenario's providers: list. Errors carry
 * the file, line and column of the offending node (common/yamlx). */
#include "fakeproviders/fake.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/net.h"
#include "common/yamlx.h"

void fake_spec_defaults(struct fake_spec *s)
{
    memset(s, 0, sizeof *s);
    s->dialect = FAKE_OPENAI;
    snprintf(s->host, sizeof s->host, "127.0.0.1");
    s->port = 0;
    s->latency.ttft_median_ms = 300;
    s->latency.ttft_p95_ms = 900;
    s->latency.tokens_per_s = 80;
    s->latency.output_tokens_median = 40;
    s->seed = 1;
    s->fault_header = 1;
}

/* Copies a scalar string into a fixed field, with a positioned error when it
 * does not fit. */
static int get_str(const struct ynode *n, char *dst, size_t dstlen, const char *what, char *err,
                   size_t errlen)
{
    const char *v;
    if (yamlx_string(n, &v, err, errlen) != 0) return -1;
    if (strlen(v) >= dstlen)
        return yamlx_error(err, errlen, n, "%s is longer than %zu bytes", what, dstlen - 1);
    snprintf(dst, dstlen, "%s", v);
    return 0;
}

static int get_pos(const struct ynode *n, double lo, double hi, double *out, const char *what,
                   char *err, size_t errlen)
{
    double d;
    if (yamlx_double(n, &d, err, errlen) != 0) return -1;
    if (!(d >= lo && d <= hi))
        return yamlx_error(err, errlen, n, "%s must be between %g and %g, not %g", what, lo, hi,
                           d);
    *out = d;
    return 0;
}

static int latency_from_yaml(const struct ynode *n, struct fake_latency *l, char *err,
                             size_t errlen)
{
    static const char *const keys[] = {"ttft_ms", "tokens_per_s", "output_tokens", NULL};
    static const char *const tkeys[] = {"median", "p95", NULL};
    const struct ynode *v;
    int rc = -1;

    if (n->type != YNODE_MAP) {
        yamlx_error(err, errlen, n, "latency must be a map {ttft_ms: {median, p95}, "
                                    "tokens_per_s, output_tokens}");
        goto out;
    }
    if (yamlx_check_keys(n, keys, "latency", err, errlen) != 0) goto out;
    if ((v = yamlx_get(n, "ttft_ms")) != NULL) {
        if (v->type == YNODE_SCALAR) {
            /* A bare number is the median; the tail is then three times it. */
            if (get_pos(v, 0, 600000, &l->ttft_median_ms, "ttft_ms", err, errlen) != 0) goto out;
            l->ttft_p95_ms = 3 * l->ttft_median_ms;
        } else if (v->type == YNODE_MAP) {
            const struct ynode *m = yamlx_get(v, "median"), *p = yamlx_get(v, "p95");
            if (yamlx_check_keys(v, tkeys, "ttft_ms", err, errlen) != 0) goto out;
            if (m == NULL) {
                yamlx_error(err, errlen, v, "ttft_ms needs a median (milliseconds)");
                goto out;
            }
            if (get_pos(m, 0, 600000, &l->ttft_median_ms, "ttft_ms.median", err, errlen) != 0)
                goto out;
            l->ttft_p95_ms = l->ttft_median_ms;
            if (p != NULL) {
                if (get_pos(p, 0, 600000, &l->ttft_p95_ms, "ttft_ms.p95", err, errlen) != 0)
                    goto out;
                if (l->ttft_p95_ms < l->ttft_median_ms) {
                    yamlx_error(err, errlen, p, "ttft_ms.p95 (%g) is below the median (%g)",
                                l->ttft_p95_ms, l->ttft_median_ms);
                    goto out;
                }
            }
        } else {
            yamlx_error(err, errlen, v, "ttft_ms must be {median: MS, p95: MS} or a number");
            goto out;
        }
    }
    if ((v = yamlx_get(n, "tokens_per_s")) != NULL &&
        get_pos(v, 0.1, 100000, &l->tokens_per_s, "tokens_per_s", err, errlen) != 0)
        goto out;
    if ((v = yamlx_get(n, "output_tokens")) != NULL &&
        get_pos(v, 1, 100000, &l->output_tokens_median, "output_tokens", err, errlen) != 0)
        goto out;
    rc = 0;
out:
    return rc;
}

int fake_spec_from_yaml(const struct ynode *n, struct fake_spec *s, char *err, size_t errlen)
{
    static const char *const keys[] = {"name",         "dialect",      "key",
                                       "model",        "listen",       "latency",
                                       "fault_header", "control_token", "seed",
                                       "threads",      NULL};
    const struct ynode *v;
    int rc = -1;

    fake_spec_defaults(s);
    if (n == NULL || n->type != YNODE_MAP) {
        if (n != NULL)
            yamlx_error(err, errlen, n, "a provider must be a map {name, dialect, key, ...}");
        else
            snprintf(err, errlen, "missing provider entry");
        goto out;
    }
    if (yamlx_check_keys(n, keys, "provider", err, errlen) != 0) goto out;

    if ((v = yamlx_get(n, "name")) == NULL) {
        yamlx_error(err, errlen, n, "a provider needs a name");
        goto out;
    }
    if (get_str(v, s->name, sizeof s->name, "name", err, errlen) != 0) goto out;
    if (s->name[0] == '\0') {
        yamlx_error(err, errlen, v, "a provider name cannot be empty");
        goto out;
    }
    for (const char *c = s->name; *c; c++) {
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '-' || *c == '_' || *c == '.')) {
            yamlx_error(err, errlen, v,
                        "provider name '%s' may hold only letters, digits, '-', '_' and '.'",
                        s->name);
            goto out;
        }
    }
    if ((v = yamlx_get(n, "dialect")) != NULL) {
        const char *d;
        if (yamlx_string(v, &d, err, errlen) != 0) goto out;
        if (strcmp(d, "openai") == 0) s->dialect = FAKE_OPENAI;
        else if (strcmp(d, "anthropic") == 0) s->dialect = FAKE_ANTHROPIC;
        else {
            yamlx_error(err, errlen, v, "unknown dialect '%s'; expected openai or anthropic", d);
            goto out;
        }
    }
    if ((v = yamlx_get(n, "key")) != NULL &&
        get_str(v, s->key, sizeof s->key, "key", err, errlen) != 0)
        goto out;
    if ((v = yamlx_get(n, "model")) != NULL &&
        get_str(v, s->model, sizeof s->model, "model", err, errlen) != 0)
        goto out;
    if ((v = yamlx_get(n, "listen")) != NULL) {
        const char *hp;
        if (yamlx_string(v, &hp, err, errlen) != 0) goto out;
        if (net_split_hostport(hp, s->host, sizeof s->host, &s->port) != 0) {
            yamlx_error(err, errlen, v, "listen '%s' is not HOST:PORT (e.g. 127.0.0.1:8101)", hp);
            goto out;
        }
        if (s->host[0] == '\0') snprintf(s->host, sizeof s->host, "127.0.0.1");
    }
    if ((v = yamlx_get(n, "latency")) != NULL &&
        latency_from_yaml(v, &s->latency, err, errlen) != 0)
        goto out;
    if ((v = yamlx_get(n, "fault_header")) != NULL &&
        yamlx_bool(v, &s->fault_header, err, errlen) != 0)
        goto out;
    if ((v = yamlx_get(n, "control_token")) != NULL &&
        get_str(v, s->control_token, sizeof s->control_token, "control_token", err, errlen) != 0)
        goto out;
    if ((v = yamlx_get(n, "seed")) != NULL) {
        long seed;
        if (yamlx_long(v, &seed, err, errlen) != 0) goto out;
        if (seed < 0) {
            yamlx_error(err, errlen, v, "seed must be 0 or more");
            goto out;
        }
        s->seed = (uint64_t)seed;
    }
    if ((v = yamlx_get(n, "threads")) != NULL) {
        long t;
        if (yamlx_long(v, &t, err, errlen) != 0) goto out;
        if (t < 0 || t > FAKE_MAX_THREADS) {
            yamlx_error(err, errlen, v,
                        "threads must be 1 to %d loop threads, or 0 for one per CPU; not %ld",
                        FAKE_MAX_THREADS, t);
            goto out;
        }
        s->threads = (int)t;
    }
    rc = 0;
out:
    return rc;
}
