/* cache.c -- write-through answer cache on SQLite: keys, normalisation, queued writes, stale reads.
 *
 * DESIGN: the key text is "tenant \x1f feature \x1f alias \x1f params \x1f
 * prompt", where params is every request member that can change the answer
 * (everything but model, messages, stream, stream_options, user, metadata,
 * store), sorted by name and printed compactly, and prompt is the messages
 * normalised. The row's primary key is a 128-bit hex digest of that text,
 * and the text itself is stored and compared on read. Writes go to a queue
 * that reads consult first and that cache_flush writes in one transaction
 * (WAL, synchronous=NORMAL): a request never waits on an fsync. */
#include "router/cache.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <regex.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/yamlx.h"
#include "router/kv.h"

#define CACHE_MAX_KEY (1u << 20)
#define CACHE_MAX_PATTERNS 32
#define CACHE_MAX_FEATURES 256
#define CACHE_QUEUE_MAX 64
#define CACHE_DEFAULT_TTL_MS (3600 * 1000LL)
#define CACHE_DEFAULT_STALE_MS (7 * 24 * 3600 * 1000LL)

/* ---- config ---- */

static char *cache_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

void cache_config_free(struct cache_config *cfg)
{
    size_t i;
    if (!cfg)
        return;
    free(cfg->backend);
    free(cfg->path);
    free(cfg->redis_url);
    if (cfg->compiled) {
        regex_t *re = cfg->compiled;
        for (i = 0; i < cfg->npatterns; i++)
            regfree(&re[i]);
        free(re);
    }
    for (i = 0; i < cfg->npatterns; i++)
        free(cfg->patterns[i]);
    free(cfg->patterns);
    for (i = 0; i < cfg->nfeatures; i++)
        free(cfg->features[i].name);
    free(cfg->features);
    free(cfg);
}

static int cache_ms(const struct ynode *n, int64_t *out, char *err, size_t errlen)
{
    double s;
    if (yamlx_duration(n, &s, err, errlen) != 0)
        return -1;
    if (s < 0)
        return yamlx_error(err, errlen, n, "a duration must not be negative");
    *out = (int64_t)(s * 1000.0 + 0.5);
    return 0;
}

static int cache_dupstr(const struct ynode *n, char **out, char *err, size_t errlen)
{
    const char *s;
    if (yamlx_string(n, &s, err, errlen) != 0)
        return -1;
    free(*out);
    if (!(*out = cache_strdup(s)))
        return yamlx_error(err, errlen, n, "out of memory");
    return 0;
}

static int cache_feature_parse(const struct ynode *key, const struct ynode *v,
                               struct cache_feature *f, char *err, size_t errlen)
{
    static const char *const known[] = {"enabled", "ttl", NULL};
    const struct ynode *x;
    f->enabled = 1;
    if (!(f->name = cache_strdup(key->scalar ? key->scalar : "")))
        return yamlx_error(err, errlen, key, "out of memory");
    if (v->type == YNODE_SCALAR) { /* "personal: false" */
        return yamlx_bool(v, &f->enabled, err, errlen);
    }
    if (v->type != YNODE_MAP)
        return yamlx_error(err, errlen, v,
                           "a cache feature is a map, e.g. support: {ttl: 10m} or "
                           "personal: {enabled: false}");
    if (yamlx_check_keys(v, known, "a cache feature", err, errlen) != 0)
        return -1;
    if ((x = yamlx_get(v, "enabled")) && yamlx_bool(x, &f->enabled, err, errlen) != 0)
        return -1;
    if ((x = yamlx_get(v, "ttl")) && cache_ms(x, &f->ttl_ms, err, errlen) != 0)
        return -1;
    return 0;
}

struct cache_config *cache_config_parse(const struct ynode *n, char *err, size_t errlen)
{
    static const char *const known[] = {"enabled", "backend", "path", "url", "redis_url", "ttl",
                                        "travel_mode", "max_stale", "max_entry_bytes",
                                        "volatile_patterns", "features", "default_enabled", NULL};
    struct cache_config *cfg = NULL, *ret = NULL;
    const struct ynode *x;
    size_t i;

    if (n->type != YNODE_MAP) {
        yamlx_error(err, errlen, n,
                    "cache: is a map, e.g. cache: {path: cache.db, ttl: 1h, "
                    "volatile_patterns: ['req-[0-9a-f]+']}");
        goto out;
    }
    if (yamlx_check_keys(n, known, "cache", err, errlen) != 0)
        goto out;
    if (!(cfg = calloc(1, sizeof *cfg))) {
        yamlx_error(err, errlen, n, "out of memory");
        goto out;
    }
    cfg->line = n->line;
    cfg->col = n->col;
    cfg->enabled = 1;
    cfg->travel = 1;
    cfg->default_enabled = 1;
    cfg->ttl_ms = CACHE_DEFAULT_TTL_MS;
    cfg->max_stale_ms = CACHE_DEFAULT_STALE_MS;
    cfg->max_entry_bytes = 1u << 20;
    if ((x = yamlx_get(n, "enabled")) && yamlx_bool(x, &cfg->enabled, err, errlen) != 0)
        goto out;
    if ((x = yamlx_get(n, "default_enabled")) &&
        yamlx_bool(x, &cfg->default_enabled, err, errlen) != 0)
        goto out;
    if ((x = yamlx_get(n, "backend")) && cache_dupstr(x, &cfg->backend, err, errlen) != 0)
        goto out;
    if (cfg->backend && strcmp(cfg->backend, "sqlite") && strcmp(cfg->backend, "redis")) {
        yamlx_error(err, errlen, x, "cache backend '%s' is unknown; use sqlite or redis",
                    cfg->backend);
        goto out;
    }
    if ((x = yamlx_get(n, "path")) && cache_dupstr(x, &cfg->path, err, errlen) != 0)
        goto out;
    if (((x = yamlx_get(n, "url")) || (x = yamlx_get(n, "redis_url"))) &&
        cache_dupstr(x, &cfg->redis_url, err, errlen) != 0)
        goto out;
    if (cfg->backend && !strcmp(cfg->backend, "redis")) {
        struct kv_url parsed;
        char uerr[320];
        if (!cfg->redis_url && !(cfg->redis_url = cache_strdup("redis://127.0.0.1:6379/0"))) {
            yamlx_error(err, errlen, n, "out of memory");
            goto out;
        }
        if (kv_url_parse(cfg->redis_url, &parsed, uerr, sizeof uerr) != 0) {
            yamlx_error(err, errlen, x ? x : n, "%s", uerr);
            goto out;
        }
    } else if (cfg->redis_url) {
        yamlx_error(err, errlen, x, "url: is the Redis server of backend: redis; add backend: redis");
        goto out;
    }
    if (!cfg->path && !(cfg->path = cache_strdup("slodrill-cache.db"))) {
        yamlx_error(err, errlen, n, "out of memory");
        goto out;
    }
    if ((x = yamlx_get(n, "ttl")) && cache_ms(x, &cfg->ttl_ms, err, errlen) != 0)
        goto out;
    if ((x = yamlx_get(n, "travel_mode")) && yamlx_bool(x, &cfg->travel, err, errlen) != 0)
        goto out;
    if ((x = yamlx_get(n, "max_stale")) && cache_ms(x, &cfg->max_stale_ms, err, errlen) != 0)
        goto out;
    if ((x = yamlx_get(n, "max_entry_bytes"))) {
        long v;
        if (yamlx_long(x, &v, err, errlen) != 0)
            goto out;
        if (v < 1024 || v > (64L << 20)) {
            yamlx_error(err, errlen, x, "max_entry_bytes must be 1024 to 67108864");
            goto out;
        }
        cfg->max_entry_bytes = (size_t)v;
    }
    if ((x = yamlx_get(n, "volatile_patterns"))) {
        regex_t *re;
        if (x->type != YNODE_SEQ || x->n > CACHE_MAX_PATTERNS) {
            yamlx_error(err, errlen, x,
                        "volatile_patterns is a list of at most %d regular expressions, e.g. "
                        "['req-[0-9a-f]{8,}', '[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z?']",
                        CACHE_MAX_PATTERNS);
            goto out;
        }
        cfg->patterns = calloc(x->n ? x->n : 1, sizeof *cfg->patterns);
        re = calloc(x->n ? x->n : 1, sizeof *re);
        cfg->compiled = re;
        if (!cfg->patterns || !re) {
            yamlx_error(err, errlen, x, "out of memory");
            goto out;
        }
        for (i = 0; i < x->n; i++) {
            char msg[128];
            int e;
            if (cache_dupstr(x->items[i], &cfg->patterns[i], err, errlen) != 0)
                goto out;
            if ((e = regcomp(&re[i], cfg->patterns[i], REG_EXTENDED)) != 0) {
                regerror(e, &re[i], msg, sizeof msg);
                free(cfg->patterns[i]);
                cfg->patterns[i] = NULL;
                yamlx_error(err, errlen, x->items[i],
                            "volatile pattern is not a POSIX extended regex: %s", msg);
                goto out;
            }
            if (regexec(&re[i], "", 0, NULL, 0) == 0) {
                cfg->npatterns = i + 1;
                yamlx_error(err, errlen, x->items[i],
                            "volatile pattern matches the empty string; it would remove nothing "
                            "useful and loop; use + instead of *");
                goto out;
            }
            cfg->npatterns = i + 1;
        }
    }
    if ((x = yamlx_get(n, "features"))) {
        if (x->type != YNODE_MAP || x->n > CACHE_MAX_FEATURES) {
            yamlx_error(err, errlen, x,
                        "features is a map of feature name to settings, e.g. features: "
                        "{support: {ttl: 10m}, account: {enabled: false}}");
            goto out;
        }
        if (!(cfg->features = calloc(x->n ? x->n : 1, sizeof *cfg->features))) {
            yamlx_error(err, errlen, x, "out of memory");
            goto out;
        }
        for (i = 0; i < x->n; i++) {
            cfg->nfeatures = i + 1;
            if (cache_feature_parse(x->keys[i], x->items[i], &cfg->features[i], err, errlen) !=
                0)
                goto out;
        }
    }
    ret = cfg;
    cfg = NULL;
out:
    cache_config_free(cfg);
    return ret;
}

static const struct cache_feature *cache_feature_find(const struct cache_config *cfg,
                                                      const char *feature)
{
    size_t i;
    for (i = 0; i < cfg->nfeatures; i++)
        if (!strcmp(cfg->features[i].name, feature ? feature : ""))
            return &cfg->features[i];
    return NULL;
}

int cache_feature_enabled(const struct cache_config *cfg, const char *feature)
{
    const struct cache_feature *f;
    if (!cfg || !cfg->enabled)
        return 0;
    f = cache_feature_find(cfg, feature);
    return f ? f->enabled : cfg->default_enabled;
}

int64_t cache_feature_ttl_ms(const struct cache_config *cfg, const char *feature)
{
    const struct cache_feature *f = cache_feature_find(cfg, feature);
    return f && f->ttl_ms > 0 ? f->ttl_ms : cfg->ttl_ms;
}

/* ---- keys ---- */

/* Appends that rely on buf's sticky failure flag: checked once at the end. */
static void cache_bputs(struct buf *b, const char *s)
{
    if (buf_puts(b, s) != 0)
        return;
}

static void cache_bappend(struct buf *b, const char *s, size_t n)
{
    if (buf_append(b, s, n) != 0)
        return;
}

/* Appends s with whitespace folded to one space and trimmed at both ends. */
static void cache_fold(struct buf *out, const char *s)
{
    int space = 0, any = 0;
    for (; *s; s++) {
        if (isspace((unsigned char)*s)) {
            space = 1;
            continue;
        }
        if (space && any)
            cache_bappend(out, " ", 1);
        space = 0;
        any = 1;
        cache_bappend(out, s, 1);
    }
}

/* Removes every match of every pattern from text (in place, NUL-terminated). */
static void cache_strip_patterns(const struct cache_config *cfg, char *text)
{
    const regex_t *re = cfg->compiled;
    size_t i;
    for (i = 0; re && i < cfg->npatterns; i++) {
        char *p = text;
        regmatch_t m;
        int guard = 0;
        while (*p && regexec(&re[i], p, 1, &m, p == text ? 0 : REG_NOTBOL) == 0 &&
               guard++ < 100000) {
            if (m.rm_eo <= m.rm_so) /* empty match: step over one byte */
                break;
            memmove(p + m.rm_so, p + m.rm_eo, strlen(p + m.rm_eo) + 1);
            p += m.rm_so;
        }
    }
}

/* The text of a message's content: a string, or the text parts of an array
 * joined with "\n"; other parts (images) as their compact JSON. */
static void cache_content(struct buf *out, const cJSON *content)
{
    const cJSON *part;
    int first = 1;
    if (cJSON_IsString(content)) {
        cache_bputs(out, content->valuestring);
        return;
    }
    if (!cJSON_IsArray(content)) {
        if (content && !cJSON_IsNull(content)) {
            char *s = cJSON_PrintUnformatted(content);
            if (s)
                cache_bputs(out, s);
            free(s);
        }
        return;
    }
    cJSON_ArrayForEach(part, content)
    {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (!first)
            cache_bputs(out, "\n");
        first = 0;
        if (cJSON_IsString(t)) {
            cache_bputs(out, t->valuestring);
        } else {
            char *s = cJSON_PrintUnformatted(part);
            if (s)
                cache_bputs(out, s);
            free(s);
        }
    }
}

char *cache_normalise_prompt(const struct cache_config *cfg, const cJSON *messages)
{
    struct buf out, raw;
    const cJSON *m;
    char *ret = NULL;

    buf_init(&out, CACHE_MAX_KEY);
    buf_init(&raw, CACHE_MAX_KEY);
    cJSON_ArrayForEach(m, messages)
    {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        const cJSON *x;
        buf_reset(&raw);
        cache_content(&raw, cJSON_GetObjectItemCaseSensitive(m, "content"));
        /* tool calls and names change the answer too */
        if ((x = cJSON_GetObjectItemCaseSensitive(m, "tool_calls")) ||
            (x = cJSON_GetObjectItemCaseSensitive(m, "function_call"))) {
            char *s = cJSON_PrintUnformatted(x);
            if (s) {
                cache_bputs(&raw, " ");
                cache_bputs(&raw, s);
            }
            free(s);
        }
        if (buf_failed(&raw))
            goto out;
        if (raw.data)
            cache_strip_patterns(cfg, raw.data);
        cache_bputs(&out, cJSON_IsString(role) ? role->valuestring : "?");
        cache_bputs(&out, ": ");
        cache_fold(&out, raw.data ? raw.data : "");
        cache_bputs(&out, "\n");
    }
    if (buf_failed(&out))
        goto out;
    ret = buf_steal(&out);
out:
    buf_cleanup(&out);
    buf_cleanup(&raw);
    return ret;
}

static int cache_param_cmp(const void *a, const void *b)
{
    const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
    return strcmp(x->string, y->string);
}

static int cache_param_ignored(const char *name)
{
    static const char *const ignored[] = {"model", "messages", "stream", "stream_options",
                                          "user", "metadata", "store", NULL};
    size_t i;
    for (i = 0; ignored[i]; i++)
        if (!strcmp(ignored[i], name))
            return 1;
    return 0;
}

/* Two 64-bit FNV-1a variants with different bases and a final mix: a
 * digest for the primary key, not for security (the text is compared). */
static void cache_digest(const char *s, size_t n, char out[33])
{
    uint64_t h1 = 0xcbf29ce484222325ULL, h2 = 0x84222325cbf29ce4ULL;
    size_t i;
    for (i = 0; i < n; i++) {
        h1 = (h1 ^ (unsigned char)s[i]) * 0x100000001b3ULL;
        h2 = (h2 ^ (unsigned char)s[i]) * 0x100000001b3ULL;
        h2 ^= h2 >> 29;
    }
    h1 ^= h1 >> 33;
    h1 *= 0xff51afd7ed558ccdULL;
    h1 ^= h1 >> 33;
    h2 ^= h2 >> 31;
    h2 *= 0xc4ceb9fe1a85ec53ULL;
    h2 ^= h2 >> 33;
    snprintf(out, 33, "%016llx%016llx", (unsigned long long)h1, (unsigned long long)h2);
}

void cache_key_cleanup(struct cache_key *k)
{
    if (!k)
        return;
    free(k->keytext);
    k->keytext = NULL;
    k->keylen = 0;
}

int cache_key_make(const struct cache_config *cfg, const char *tenant, const char *feature,
                   const char *alias, const cJSON *body, struct cache_key *k)
{
    struct buf t;
    const cJSON *x;
    const cJSON *params[64];
    size_t np = 0, i;
    char *prompt = NULL;
    int rc = -1;

    memset(k, 0, sizeof *k);
    buf_init(&t, CACHE_MAX_KEY);
    snprintf(k->tenant, sizeof k->tenant, "%s", tenant ? tenant : "");
    snprintf(k->feature, sizeof k->feature, "%s", feature ? feature : "");
    snprintf(k->alias, sizeof k->alias, "%s", alias ? alias : "");
    if (!(prompt = cache_normalise_prompt(cfg, cJSON_GetObjectItemCaseSensitive(body, "messages"))))
        goto out;
    cJSON_ArrayForEach(x, body)
    {
        if (!x->string || cache_param_ignored(x->string))
            continue;
        if (np == sizeof params / sizeof params[0])
            goto out; /* a request with this many parameters is not cached */
        params[np++] = x;
    }
    qsort(params, np, sizeof params[0], cache_param_cmp);
    if (buf_printf(&t, "%s\x1f%s\x1f%s\x1f", k->tenant, k->feature, k->alias) != 0)
        goto out;
    for (i = 0; i < np; i++) {
        char *s = cJSON_PrintUnformatted(params[i]);
        if (!s)
            goto out;
        if (buf_printf(&t, "%s=%s;", params[i]->string, s) != 0) {
            free(s);
            goto out;
        }
        free(s);
    }
    cache_bputs(&t, "\x1f");
    cache_bputs(&t, prompt);
    if (buf_failed(&t))
        goto out;
    k->keylen = t.len;
    k->keytext = buf_steal(&t);
    cache_digest(k->keytext, k->keylen, k->hash);
    rc = 0;
out:
    free(prompt);
    buf_cleanup(&t);
    return rc;
}

/* ---- the store ---- */

struct cache_item {
    char hash[33];
    char *tenant, *feature, *alias;
    char *keytext;
    size_t keylen;
    char *answer;
    size_t len;
    double cost;
    int64_t created_ms, expires_ms;
};

struct cache {
    const struct cache_config *cfg;
    sqlite3 *db;
    sqlite3_stmt *get;
    struct cache_item q[CACHE_QUEUE_MAX];
    size_t nq;
    char hits[CACHE_QUEUE_MAX][33]; /* hashes to count a hit for on flush */
    size_t nhits;
    struct cache_counts counts, flushed;
};

static const char cache_schema[] =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=NORMAL;"
    "CREATE TABLE IF NOT EXISTS cache_entries("
    " hash TEXT PRIMARY KEY, tenant TEXT NOT NULL, feature TEXT NOT NULL, alias TEXT NOT NULL,"
    " keytext BLOB NOT NULL, answer BLOB NOT NULL, cost_usd REAL,"
    " created_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL, hits INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS cache_by_tenant ON cache_entries(tenant, feature);"
    "CREATE TABLE IF NOT EXISTS cache_counters(name TEXT PRIMARY KEY, n INTEGER NOT NULL);";

static void cache_item_clear(struct cache_item *it)
{
    free(it->tenant);
    free(it->feature);
    free(it->alias);
    free(it->keytext);
    free(it->answer);
    memset(it, 0, sizeof *it);
}

static int cache_db_open(const char *path, int create, sqlite3 **db, char *err, size_t errlen)
{
    int flags = SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0) | SQLITE_OPEN_NOMUTEX;
    char *msg = NULL;
    if (sqlite3_open_v2(path, db, flags, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", path, *db ? sqlite3_errmsg(*db) : "cannot open");
        sqlite3_close(*db);
        *db = NULL;
        return -1;
    }
    sqlite3_busy_timeout(*db, 2000);
    if (sqlite3_exec(*db, cache_schema, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", path, msg ? msg : "cannot create the cache tables");
        sqlite3_free(msg);
        sqlite3_close(*db);
        *db = NULL;
        return -1;
    }
    return 0;
}

struct cache *cache_open(const struct cache_config *cfg, char *err, size_t errlen)
{
    struct cache *c = calloc(1, sizeof *c), *ret = NULL;
    if (!c) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    c->cfg = cfg;
    if (cache_db_open(cfg->path, 1, &c->db, err, errlen) != 0)
        goto out;
    if (sqlite3_prepare_v2(c->db,
                           "SELECT keytext, answer, cost_usd, created_ms, expires_ms FROM "
                           "cache_entries WHERE hash = ?1 AND tenant = ?2",
                           -1, &c->get, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", cfg->path, sqlite3_errmsg(c->db));
        goto out;
    }
    ret = c;
    c = NULL;
out:
    cache_close(c);
    return ret;
}

void cache_close(struct cache *c)
{
    size_t i;
    char err[256];
    if (!c)
        return;
    if (c->db && cache_flush(c, err, sizeof err) != 0)
        fprintf(stderr, "slodrill: cache: %s\n", err); /* nowhere else to say it at exit */
    for (i = 0; i < c->nq; i++)
        cache_item_clear(&c->q[i]);
    sqlite3_finalize(c->get);
    sqlite3_close(c->db);
    free(c);
}

void cache_entry_cleanup(struct cache_entry *e)
{
    if (!e)
        return;
    free(e->answer);
    e->answer = NULL;
    e->len = 0;
}

enum cache_result cache_classify(const struct cache_config *cfg, int64_t created_ms,
                                 int64_t expires_ms, int64_t now_ms, int allow_stale)
{
    if (now_ms < expires_ms)
        return CACHE_HIT;
    if (allow_stale && cfg->travel && now_ms - created_ms <= cfg->max_stale_ms)
        return CACHE_STALE;
    return CACHE_MISS;
}

static enum cache_result cache_judge(const struct cache *c, int64_t created, int64_t expires,
                                     int64_t now_ms, int allow_stale)
{
    return cache_classify(c->cfg, created, expires, now_ms, allow_stale);
}

static int cache_fill(struct cache_entry *out, const void *answer, size_t len, double cost,
                      int64_t created)
{
    out->answer = malloc(len + 1);
    if (!out->answer)
        return -1;
    memcpy(out->answer, answer, len);
    out->answer[len] = '\0';
    out->len = len;
    out->cost_usd = cost;
    out->created_ms = created;
    return 0;
}

static void cache_note_hit(struct cache *c, const char *hash)
{
    if (c->nhits < CACHE_QUEUE_MAX)
        memcpy(c->hits[c->nhits++], hash, 33);
}

enum cache_result cache_get(struct cache *c, const struct cache_key *k, int64_t now_ms,
                            int allow_stale, struct cache_entry *out)
{
    enum cache_result r = CACHE_MISS;
    size_t i;

    memset(out, 0, sizeof *out);
    c->counts.lookups++;
    /* newest queued write first */
    for (i = c->nq; i-- > 0;) {
        const struct cache_item *it = &c->q[i];
        if (strcmp(it->hash, k->hash) || strcmp(it->tenant, k->tenant) ||
            it->keylen != k->keylen || memcmp(it->keytext, k->keytext, k->keylen))
            continue;
        r = cache_judge(c, it->created_ms, it->expires_ms, now_ms, allow_stale);
        if (r != CACHE_MISS && cache_fill(out, it->answer, it->len, it->cost, it->created_ms) != 0)
            r = CACHE_MISS;
        goto done;
    }
    sqlite3_reset(c->get);
    sqlite3_bind_text(c->get, 1, k->hash, -1, SQLITE_STATIC);
    sqlite3_bind_text(c->get, 2, k->tenant, -1, SQLITE_STATIC);
    if (sqlite3_step(c->get) == SQLITE_ROW) {
        const void *kt = sqlite3_column_blob(c->get, 0);
        size_t kl = (size_t)sqlite3_column_bytes(c->get, 0);
        if (kl == k->keylen && kt && !memcmp(kt, k->keytext, kl)) {
            r = cache_judge(c, sqlite3_column_int64(c->get, 3), sqlite3_column_int64(c->get, 4),
                            now_ms, allow_stale);
            if (r != CACHE_MISS &&
                cache_fill(out, sqlite3_column_blob(c->get, 1),
                           (size_t)sqlite3_column_bytes(c->get, 1),
                           sqlite3_column_type(c->get, 2) == SQLITE_NULL
                               ? -1
                               : sqlite3_column_double(c->get, 2),
                           sqlite3_column_int64(c->get, 3)) != 0)
                r = CACHE_MISS;
        }
    }
    sqlite3_reset(c->get);
done:
    if (r == CACHE_HIT)
        c->counts.hits++;
    else if (r == CACHE_STALE)
        c->counts.stale++;
    else
        c->counts.misses++;
    if (r != CACHE_MISS)
        cache_note_hit(c, k->hash);
    return r;
}

int cache_put(struct cache *c, const struct cache_key *k, const char *answer, size_t len,
              double cost_usd, int64_t now_ms, int64_t ttl_ms)
{
    struct cache_item *it;
    char err[256];
    size_t i;

    if (len > c->cfg->max_entry_bytes || !k->keytext)
        return -1;
    if (c->nq == CACHE_QUEUE_MAX && cache_flush(c, err, sizeof err) != 0)
        return -1;
    /* a newer answer for the same key replaces a queued one */
    for (i = 0; i < c->nq; i++)
        if (!strcmp(c->q[i].hash, k->hash)) {
            cache_item_clear(&c->q[i]);
            c->q[i] = c->q[--c->nq];
            memset(&c->q[c->nq], 0, sizeof c->q[c->nq]);
            break;
        }
    it = &c->q[c->nq];
    memcpy(it->hash, k->hash, sizeof it->hash);
    it->tenant = cache_strdup(k->tenant);
    it->feature = cache_strdup(k->feature);
    it->alias = cache_strdup(k->alias);
    it->keytext = malloc(k->keylen + 1);
    it->answer = malloc(len + 1);
    if (!it->tenant || !it->feature || !it->alias || !it->keytext || !it->answer) {
        cache_item_clear(it);
        return -1;
    }
    memcpy(it->keytext, k->keytext, k->keylen);
    it->keytext[k->keylen] = '\0';
    it->keylen = k->keylen;
    memcpy(it->answer, answer, len);
    it->answer[len] = '\0';
    it->len = len;
    it->cost = cost_usd;
    it->created_ms = now_ms;
    it->expires_ms = now_ms + (ttl_ms > 0 ? ttl_ms : c->cfg->ttl_ms);
    c->nq++;
    c->counts.writes++;
    return 0;
}

size_t cache_pending(const struct cache *c)
{
    return c->nq + c->nhits + (c->counts.lookups != c->flushed.lookups ? 1 : 0);
}

void cache_counts_get(const struct cache *c, struct cache_counts *out)
{
    *out = c->counts;
}

static int cache_counter_add(sqlite3 *db, sqlite3_stmt *st, const char *name, uint64_t delta)
{
    (void)db;
    if (!delta)
        return 0;
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)delta);
    return sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
}

int cache_flush(struct cache *c, char *err, size_t errlen)
{
    sqlite3_stmt *ins = NULL, *hit = NULL, *cnt = NULL;
    size_t i;
    int rc = -1, began = 0;

    if (!c->nq && !c->nhits && !memcmp(&c->counts, &c->flushed, sizeof c->counts))
        return 0;
    if (sqlite3_exec(c->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        goto fail;
    began = 1;
    if (sqlite3_prepare_v2(c->db,
                           "INSERT OR REPLACE INTO cache_entries(hash, tenant, feature, alias, "
                           "keytext, answer, cost_usd, created_ms, expires_ms, hits) VALUES "
                           "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 0)",
                           -1, &ins, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(c->db, "UPDATE cache_entries SET hits = hits + 1 WHERE hash = ?1", -1,
                           &hit, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(c->db,
                           "INSERT INTO cache_counters(name, n) VALUES (?1, ?2) "
                           "ON CONFLICT(name) DO UPDATE SET n = n + excluded.n",
                           -1, &cnt, NULL) != SQLITE_OK)
        goto fail;
    for (i = 0; i < c->nq; i++) {
        const struct cache_item *it = &c->q[i];
        sqlite3_reset(ins);
        sqlite3_bind_text(ins, 1, it->hash, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 2, it->tenant, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 3, it->feature, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 4, it->alias, -1, SQLITE_STATIC);
        sqlite3_bind_blob(ins, 5, it->keytext, (int)it->keylen, SQLITE_STATIC);
        sqlite3_bind_blob(ins, 6, it->answer, (int)it->len, SQLITE_STATIC);
        if (it->cost >= 0)
            sqlite3_bind_double(ins, 7, it->cost);
        else
            sqlite3_bind_null(ins, 7);
        sqlite3_bind_int64(ins, 8, it->created_ms);
        sqlite3_bind_int64(ins, 9, it->expires_ms);
        if (sqlite3_step(ins) != SQLITE_DONE)
            goto fail;
    }
    for (i = 0; i < c->nhits; i++) {
        sqlite3_reset(hit);
        sqlite3_bind_text(hit, 1, c->hits[i], -1, SQLITE_STATIC);
        if (sqlite3_step(hit) != SQLITE_DONE)
            goto fail;
    }
    if (cache_counter_add(c->db, cnt, "lookups", c->counts.lookups - c->flushed.lookups) ||
        cache_counter_add(c->db, cnt, "hits", c->counts.hits - c->flushed.hits) ||
        cache_counter_add(c->db, cnt, "misses", c->counts.misses - c->flushed.misses) ||
        cache_counter_add(c->db, cnt, "stale", c->counts.stale - c->flushed.stale) ||
        cache_counter_add(c->db, cnt, "writes", c->counts.writes - c->flushed.writes))
        goto fail;
    if (sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        goto fail;
    began = 0;
    for (i = 0; i < c->nq; i++)
        cache_item_clear(&c->q[i]);
    c->nq = 0;
    c->nhits = 0;
    c->flushed = c->counts;
    rc = 0;
    goto out;
fail:
    snprintf(err, errlen, "%s: cannot write the cache: %s", c->cfg->path, sqlite3_errmsg(c->db));
    if (began)
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
out:
    sqlite3_finalize(ins);
    sqlite3_finalize(hit);
    sqlite3_finalize(cnt);
    return rc;
}

/* ---- the CLI's view ---- */

static int cache_file_db(const char *path, sqlite3 **db, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: no such cache file", path);
        return -1;
    }
    fclose(f);
    return cache_db_open(path, 0, db, err, errlen);
}

int cache_file_stats(const char *path, int64_t now_ms, struct cache_file_stats *out, char *err,
                     size_t errlen)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int rc = -1;

    memset(out, 0, sizeof *out);
    if (cache_file_db(path, &db, err, errlen) != 0)
        goto out;
    if (sqlite3_prepare_v2(db,
                           "SELECT count(*), coalesce(sum(expires_ms > ?1), 0), "
                           "coalesce(sum(hits), 0), coalesce(sum(length(answer) + "
                           "length(keytext)), 0) FROM cache_entries",
                           -1, &st, NULL) != SQLITE_OK)
        goto fail;
    sqlite3_bind_int64(st, 1, now_ms);
    if (sqlite3_step(st) != SQLITE_ROW)
        goto fail;
    out->entries = (long)sqlite3_column_int64(st, 0);
    out->live = (long)sqlite3_column_int64(st, 1);
    out->expired = out->entries - out->live;
    out->hits = (long)sqlite3_column_int64(st, 2);
    out->bytes = sqlite3_column_int64(st, 3);
    sqlite3_finalize(st);
    st = NULL;
    if (sqlite3_prepare_v2(db, "SELECT name, n FROM cache_counters", -1, &st, NULL) != SQLITE_OK)
        goto fail;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        long long n = sqlite3_column_int64(st, 1);
        if (!name)
            continue;
        if (!strcmp(name, "lookups"))
            out->lookups = n;
        else if (!strcmp(name, "hits"))
            out->hit_count = n;
        else if (!strcmp(name, "misses"))
            out->misses = n;
        else if (!strcmp(name, "stale"))
            out->stale = n;
        else if (!strcmp(name, "writes"))
            out->writes = n;
    }
    rc = 0;
    goto out;
fail:
    snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(db));
out:
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rc;
}

int cache_file_groups(const char *path,
                      void (*cb)(const char *tenant, const char *feature, long entries, long hits,
                                 void *arg),
                      void *arg, char *err, size_t errlen)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int rc = -1, s;

    if (cache_file_db(path, &db, err, errlen) != 0)
        goto out;
    if (sqlite3_prepare_v2(db,
                           "SELECT tenant, feature, count(*), sum(hits) FROM cache_entries "
                           "GROUP BY tenant, feature ORDER BY tenant, feature",
                           -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(db));
        goto out;
    }
    while ((s = sqlite3_step(st)) == SQLITE_ROW)
        cb((const char *)sqlite3_column_text(st, 0), (const char *)sqlite3_column_text(st, 1),
           (long)sqlite3_column_int64(st, 2), (long)sqlite3_column_int64(st, 3), arg);
    if (s != SQLITE_DONE) {
        snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(db));
        goto out;
    }
    rc = 0;
out:
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rc;
}

int cache_file_purge(const char *path, const char *tenant, const char *feature, int expired_only,
                     int64_t now_ms, long *deleted, char *err, size_t errlen)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int rc = -1;

    *deleted = 0;
    if (cache_file_db(path, &db, err, errlen) != 0)
        goto out;
    if (sqlite3_prepare_v2(db,
                           "DELETE FROM cache_entries WHERE (?1 IS NULL OR tenant = ?1) AND "
                           "(?2 IS NULL OR feature = ?2) AND (?3 = 0 OR expires_ms <= ?4)",
                           -1, &st, NULL) != SQLITE_OK)
        goto fail;
    if (tenant)
        sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    if (feature)
        sqlite3_bind_text(st, 2, feature, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, expired_only ? 1 : 0);
    sqlite3_bind_int64(st, 4, now_ms);
    if (sqlite3_step(st) != SQLITE_DONE)
        goto fail;
    *deleted = (long)sqlite3_changes(db);
    rc = 0;
    goto out;
fail:
    snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(db));
out:
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rc;
}
