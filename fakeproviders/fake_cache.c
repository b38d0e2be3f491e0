/* fake_cache.c -- Anthropic prompt caching, as the usage figures show it.
 *
 * DESIGN. A request's prompt is read in the order Anthropic caches it:
 * tools, then system blocks, then each message's content blocks. A block
 * marked "cache_control": {"type": "ephemeral"} (optionally "ttl": "1h") is a
 * breakpoint; the prefix up to and including it is keyed by a hash of every
 * block so far. On a request the longest prefix already cached (and not
 * expired) is read (cache_read_input_tokens); the prefix from there up to the
 * last breakpoint is written (cache_creation_input_tokens); what follows the
 * last breakpoint is plain input_tokens. A read refreshes the entry's TTL
 * (5 minutes, or 1 hour), as the API does. Prefixes shorter than
 * FAKE_CACHE_MIN_TOKENS are not cached, even when marked (the API's minimum
 * for Sonnet and Opus models is 1024 tokens).
 *
 * Token counts use the fakes' usual estimate: ceil(bytes / 4) per text (a
 * tool counts its JSON), plus 3 per message and 3 per request. Lookups happen
 * when the request is parsed; writes only once it is answered (fake.c calls
 * fake_cache_commit), so a request refused with a 429 caches nothing.
 * Loop thread only. */
#include "fakeproviders/fake_int.h"

#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#define FAKE_CACHE_MIN_TOKENS 1024
#define FAKE_CACHE_SLOTS 4096 /* entries kept, at most (open addressing) */
#define FAKE_CACHE_TTL_5M_US (300ULL * 1000000ULL)
#define FAKE_CACHE_TTL_1H_US (3600ULL * 1000000ULL)

struct cache_slot {
    uint64_t hash;     /* 0 = empty */
    uint64_t expires_us;
    uint64_t ttl_us;
};

struct fake_cache {
    struct cache_slot slot[FAKE_CACHE_SLOTS];
};

struct fake_cache *fake_cache_new(void) { return calloc(1, sizeof(struct fake_cache)); }

void fake_cache_free(struct fake_cache *c) { free(c); }

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static struct cache_slot *lookup(struct fake_cache *c, uint64_t hash, uint64_t now)
{
    for (size_t i = 0; i < 8; i++) {
        struct cache_slot *s = &c->slot[(hash + i) % FAKE_CACHE_SLOTS];
        if (s->hash == hash && s->expires_us > now) return s;
    }
    return NULL;
}

/* Inserts or refreshes; an expired or the soonest-expiring slot of the 8
 * probed gives way. */
static void store(struct fake_cache *c, uint64_t hash, uint64_t ttl, uint64_t now)
{
    struct cache_slot *victim = NULL;
    for (size_t i = 0; i < 8; i++) {
        struct cache_slot *s = &c->slot[(hash + i) % FAKE_CACHE_SLOTS];
        if (s->hash == hash) {
            victim = s;
            break;
        }
        if (victim == NULL || s->expires_us < victim->expires_us) victim = s;
    }
    victim->hash = hash;
    victim->ttl_us = ttl > victim->ttl_us || victim->expires_us <= now ? ttl : victim->ttl_us;
    victim->expires_us = now + victim->ttl_us;
}

struct walk {
    uint64_t hash;
    int tokens; /* prefix so far */
    struct fake_req *r;
    int marks;
};

static int text_tokens(size_t bytes) { return (int)((bytes + 3) / 4); }

/* One block of the prompt: extends the prefix; at a breakpoint, notes it. */
static void block(struct walk *w, const cJSON *b, int tokens)
{
    char *s = cJSON_PrintUnformatted(b);
    const cJSON *cc = cJSON_IsObject(b) ? cJSON_GetObjectItemCaseSensitive(b, "cache_control")
                                        : NULL;
    if (s != NULL) {
        w->hash = fnv(w->hash, s, strlen(s) + 1);
        free(s);
    }
    w->tokens += tokens;
    if (cJSON_IsObject(cc)) w->r->cache_marks_seen++;
    if (cJSON_IsObject(cc) && w->marks < FAKE_CACHE_MARKS) {
        const cJSON *ttl = cJSON_GetObjectItemCaseSensitive(cc, "ttl");
        struct fake_cache_mark *m = &w->r->cache_mark[w->marks++];
        m->hash = w->hash ? w->hash : 1;
        m->tokens = w->tokens;
        m->ttl_us = cJSON_IsString(ttl) && strcmp(ttl->valuestring, "1h") == 0
                        ? FAKE_CACHE_TTL_1H_US
                        : FAKE_CACHE_TTL_5M_US;
    }
}

static int content_tokens(const cJSON *b)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(b, "text");
    if (cJSON_IsString(t)) return text_tokens(strlen(t->valuestring));
    if (cJSON_IsString(b)) return text_tokens(strlen(b->valuestring));
    {
        char *s = cJSON_PrintUnformatted(b); /* images, tool results: their JSON */
        int n = s ? text_tokens(strlen(s)) : 0;
        free(s);
        return n;
    }
}

void fake_cache_lookup(struct fake_cache *c, struct fake_req *r, const cJSON *body,
                       uint64_t now_us)
{
    struct walk w = {.hash = 14695981039346656037ULL, .tokens = 3, .r = r, .marks = 0};
    const cJSON *it, *m, *part;
    int total, read = 0, last = 0;

    r->cache_marks = r->cache_marks_seen = 0;
    r->cache_read = r->cache_creation = 0;
    if (c == NULL || !cJSON_IsObject(body)) return;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(body, "tools"))
    {
        char *s = cJSON_PrintUnformatted(it);
        block(&w, it, s ? text_tokens(strlen(s)) : 0);
        free(s);
    }
    it = cJSON_GetObjectItemCaseSensitive(body, "system");
    if (cJSON_IsString(it)) {
        block(&w, it, text_tokens(strlen(it->valuestring)));
    } else {
        cJSON_ArrayForEach(part, it) { block(&w, part, content_tokens(part)); }
    }
    cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(body, "messages"))
    {
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        w.tokens += 3;
        if (cJSON_IsString(role)) w.hash = fnv(w.hash, role->valuestring, strlen(role->valuestring));
        if (cJSON_IsString(content)) {
            block(&w, content, text_tokens(strlen(content->valuestring)));
        } else {
            cJSON_ArrayForEach(part, content) { block(&w, part, content_tokens(part)); }
        }
    }
    total = w.tokens;
    r->cache_marks = w.marks;
    if (w.marks == 0) return;

    /* The longest cached prefix is read; the rest up to the last
     * breakpoint is written (when long enough to cache at all). */
    for (int i = w.marks - 1; i >= 0; i--)
        if (r->cache_mark[i].tokens >= FAKE_CACHE_MIN_TOKENS &&
            lookup(c, r->cache_mark[i].hash, now_us) != NULL) {
            read = r->cache_mark[i].tokens;
            break;
        }
    last = r->cache_mark[w.marks - 1].tokens;
    r->cache_read = read;
    r->cache_creation = last >= FAKE_CACHE_MIN_TOKENS && last > read ? last - read : 0;
    r->prompt_tokens = total - r->cache_read - r->cache_creation;
    if (r->prompt_tokens < 0) r->prompt_tokens = 0;
}

void fake_cache_commit(struct fake_cache *c, const struct fake_req *r, uint64_t now_us)
{
    if (c == NULL) return;
    for (int i = 0; i < r->cache_marks; i++) {
        const struct fake_cache_mark *m = &r->cache_mark[i];
        if (m->tokens < FAKE_CACHE_MIN_TOKENS) continue;
        if (m->tokens <= r->cache_read) {
            struct cache_slot *s = lookup(c, m->hash, now_us);
            if (s != NULL) s->expires_us = now_us + s->ttl_us; /* a read refreshes */
            continue;
        }
        store(c, m->hash, m->ttl_us, now_us);
    }
}
