/* slofile.c -- loads the SLO file (docs/slo-file.md) with positioned errors. */
#include "harness/slofile.h"

#include <stdio.h>
#include <string.h>

#include "common/yamlx.h"

static const char *const slofile_keys[] = {
    "service", "features", "window_days", "success_rate", "p95_latency_s", "avg_cost_usd",
    "monthly_requests", "requests_per_day", "peak_rps", "failover_target_s",
    "min_success_during_failover", "obs_tool", "retention_days", "trial_days", "maint_minutes",
    "maint_count", "credit_pct", "oncall", "primary_api_base", "prices", NULL};
static const char *const price_keys[] = {"input_per_mtok", "output_per_mtok", NULL};

static int slofile_num(const struct ynode *map, const char *key, double lo, double hi,
                       double *out, char *err, size_t errlen)
{
    const struct ynode *n = yamlx_get(map, key);
    if (n == NULL) return 0;
    if (yamlx_double(n, out, err, errlen) != 0) return -1;
    if (*out < lo || *out > hi)
        return yamlx_error(err, errlen, n, "%s must be between %g and %g, found %g", key, lo, hi,
                           *out);
    return 0;
}

static int slofile_str(const struct ynode *map, const char *key, char *out, size_t outlen,
                       char *err, size_t errlen)
{
    const struct ynode *n = yamlx_get(map, key);
    const char *s;
    if (n == NULL) return 0;
    if (yamlx_string(n, &s, err, errlen) != 0) return -1;
    if (strlen(s) >= outlen)
        return yamlx_error(err, errlen, n, "%s is too long (at most %zu characters)", key,
                           outlen - 1);
    snprintf(out, outlen, "%s", s);
    return 0;
}

static int slofile_features(const struct ynode *n, struct slofile *sf, char *err, size_t errlen)
{
    size_t i;
    if (n == NULL) return 0;
    if (n->type == YNODE_SCALAR) {
        snprintf(sf->features[0], sizeof sf->features[0], "%s", n->scalar);
        sf->nfeatures = 1;
        return 0;
    }
    if (n->type != YNODE_SEQ)
        return yamlx_error(err, errlen, n, "features must be a list of names, like [chat, search]");
    if (n->n > SLOFILE_MAX_FEATURES)
        return yamlx_error(err, errlen, n, "at most %d features", SLOFILE_MAX_FEATURES);
    for (i = 0; i < n->n; i++) {
        const char *s;
        if (yamlx_string(n->items[i], &s, err, errlen) != 0) return -1;
        if (strlen(s) >= sizeof sf->features[0])
            return yamlx_error(err, errlen, n->items[i], "feature name too long");
        snprintf(sf->features[i], sizeof sf->features[i], "%s", s);
    }
    sf->nfeatures = n->n;
    return 0;
}

static int slofile_prices(const struct ynode *n, struct slofile *sf, char *err, size_t errlen)
{
    size_t i;
    if (n == NULL) return 0;
    if (n->type != YNODE_MAP)
        return yamlx_error(err, errlen, n,
                           "prices must map a model name to {input_per_mtok, output_per_mtok}");
    if (n->n > SLOFILE_MAX_PRICES)
        return yamlx_error(err, errlen, n, "at most %d prices", SLOFILE_MAX_PRICES);
    for (i = 0; i < n->n; i++) {
        struct slofile_price *p = &sf->prices[i];
        const struct ynode *v = n->items[i];
        if (strlen(n->keys[i]->scalar) >= sizeof p->model)
            return yamlx_error(err, errlen, n->keys[i], "model name too long");
        if (v->type != YNODE_MAP)
            return yamlx_error(err, errlen, v,
                               "expected { input_per_mtok: USD, output_per_mtok: USD }");
        if (yamlx_check_keys(v, price_keys, "a price", err, errlen) != 0) return -1;
        snprintf(p->model, sizeof p->model, "%s", n->keys[i]->scalar);
        p->input_per_mtok = p->output_per_mtok = -1;
        if (slofile_num(v, "input_per_mtok", 0, 1e6, &p->input_per_mtok, err, errlen) != 0 ||
            slofile_num(v, "output_per_mtok", 0, 1e6, &p->output_per_mtok, err, errlen) != 0)
            return -1;
        if (p->input_per_mtok < 0 || p->output_per_mtok < 0)
            return yamlx_error(err, errlen, v, "a price needs both input_per_mtok and "
                                               "output_per_mtok (USD per million tokens)");
    }
    sf->nprices = n->n;
    return 0;
}

int slofile_load(const char *path, struct slofile *sf, char *err, size_t errlen)
{
    struct ynode *root = NULL;
    const struct ynode *m;
    int rc = -1;

    memset(sf, 0, sizeof *sf);
    slo_targets_unset(&sf->t);
    sf->requests_per_day = sf->peak_rps = sf->failover_target_s = -1;
    sf->min_success_during_failover = sf->retention_days = sf->trial_days = -1;
    sf->maint_minutes = sf->maint_count = sf->credit_pct = -1;
    root = yamlx_load_file(path, err, errlen);
    if (root == NULL) goto out;
    if (root->type != YNODE_MAP) {
        (void)yamlx_error(err, errlen, root, "expected a map of SLO keys (service, success_rate, ...)");
        goto out;
    }
    m = root;
    /* A scenario: read its slo: block and its name. */
    if (yamlx_get(root, "slo") != NULL && yamlx_get(root, "providers") != NULL) {
        const struct ynode *nm = yamlx_get(root, "name");
        m = yamlx_get(root, "slo");
        if (m->type != YNODE_MAP) {
            (void)yamlx_error(err, errlen, m, "slo: must be a map");
            goto out;
        }
        if (nm && nm->type == YNODE_SCALAR) snprintf(sf->service, sizeof sf->service, "%s", nm->scalar);
    }
    if (yamlx_check_keys(m, slofile_keys, "the SLO file", err, errlen) != 0) goto out;
    if (slofile_str(m, "service", sf->service, sizeof sf->service, err, errlen) != 0 ||
        slofile_features(yamlx_get(m, "features"), sf, err, errlen) != 0 ||
        slofile_num(m, "success_rate", 0, 100, &sf->t.success_rate, err, errlen) != 0 ||
        slofile_num(m, "p95_latency_s", 0, 3600, &sf->t.p95_latency_s, err, errlen) != 0 ||
        slofile_num(m, "avg_cost_usd", 0, 1e6, &sf->t.avg_cost_usd, err, errlen) != 0 ||
        slofile_num(m, "window_days", 1, 366, &sf->t.window_days, err, errlen) != 0 ||
        slofile_num(m, "monthly_requests", 0, 1e12, &sf->t.monthly_requests, err, errlen) != 0 ||
        slofile_num(m, "requests_per_day", 0, 1e11, &sf->requests_per_day, err, errlen) != 0 ||
        slofile_num(m, "peak_rps", 0, 1e7, &sf->peak_rps, err, errlen) != 0 ||
        slofile_num(m, "failover_target_s", 0, 3600, &sf->failover_target_s, err, errlen) != 0 ||
        slofile_num(m, "min_success_during_failover", 0, 100, &sf->min_success_during_failover,
                    err, errlen) != 0 ||
        slofile_num(m, "retention_days", 0, 36500, &sf->retention_days, err, errlen) != 0 ||
        slofile_num(m, "trial_days", 0, 366, &sf->trial_days, err, errlen) != 0 ||
        slofile_num(m, "maint_minutes", 0, 100000, &sf->maint_minutes, err, errlen) != 0 ||
        slofile_num(m, "maint_count", 0, 1000, &sf->maint_count, err, errlen) != 0 ||
        slofile_num(m, "credit_pct", 0, 100, &sf->credit_pct, err, errlen) != 0 ||
        slofile_str(m, "obs_tool", sf->obs_tool, sizeof sf->obs_tool, err, errlen) != 0 ||
        slofile_str(m, "oncall", sf->oncall, sizeof sf->oncall, err, errlen) != 0 ||
        slofile_str(m, "primary_api_base", sf->primary_api_base, sizeof sf->primary_api_base, err,
                    errlen) != 0 ||
        slofile_prices(yamlx_get(m, "prices"), sf, err, errlen) != 0)
        goto out;
    /* Monthly volume from the daily one when only that is given. */
    if (sf->t.monthly_requests < 0 && sf->requests_per_day >= 0)
        sf->t.monthly_requests = sf->requests_per_day * (sf->t.window_days > 0 ? sf->t.window_days : 30);
    rc = 0;
out:
    yamlx_free(root);
    return rc;
}

const struct slofile_price *slofile_price_for(const struct slofile *sf, const char *model)
{
    const char *slash;
    size_t i;
    if (model == NULL || model[0] == '\0') return NULL;
    for (i = 0; i < sf->nprices; i++)
        if (strcmp(sf->prices[i].model, model) == 0) return &sf->prices[i];
    slash = strrchr(model, '/');
    if (slash)
        for (i = 0; i < sf->nprices; i++)
            if (strcmp(sf->prices[i].model, slash + 1) == 0) return &sf->prices[i];
    return NULL;
}
