/* ratelimit.c -- token buckets per key in a chained hash table; pure. */
#include "router/ratelimit.h"

#include <stdlib.h>
#include <string.h>

#define RL_BUCKETS 4096

struct rl_entry {
    struct rl_entry *next;
    double tokens;
    int64_t at_ms; /* when tokens was computed */
    char key[];
};

struct ratelimit {
    struct rl_entry *tab[RL_BUCKETS];
    size_t n;
};

struct ratelimit *ratelimit_new(void)
{
    return calloc(1, sizeof(struct ratelimit));
}

void ratelimit_free(struct ratelimit *rl)
{
    size_t i;
    if (!rl)
        return;
    for (i = 0; i < RL_BUCKETS; i++) {
        struct rl_entry *e = rl->tab[i], *next;
        for (; e; e = next) {
            next = e->next;
            free(e);
        }
    }
    free(rl);
}

static unsigned rl_hash(const char *s)
{
    unsigned h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h % RL_BUCKETS;
}

/* Forgets every bucket that has refilled (it holds no state worth keeping). */
static void rl_sweep(struct ratelimit *rl, int64_t now_ms)
{
    size_t i;
    for (i = 0; i < RL_BUCKETS; i++) {
        struct rl_entry **pp = &rl->tab[i];
        while (*pp) {
            struct rl_entry *e = *pp;
            if (now_ms - e->at_ms > 60000) {
                *pp = e->next;
                free(e);
                rl->n--;
            } else {
                pp = &e->next;
            }
        }
    }
}

int ratelimit_take(struct ratelimit *rl, const char *key, double rate, double burst,
                   int64_t now_ms, int64_t *retry_after_ms)
{
    unsigned h = rl_hash(key);
    struct rl_entry *e;
    size_t klen;

    *retry_after_ms = 0;
    if (rate <= 0)
        return 1;
    if (burst < 1)
        burst = 1;
    for (e = rl->tab[h]; e; e = e->next)
        if (!strcmp(e->key, key))
            break;
    if (!e) {
        if (rl->n >= RATELIMIT_MAX_KEYS)
            rl_sweep(rl, now_ms);
        if (rl->n >= RATELIMIT_MAX_KEYS)
            return 1; /* every bucket busy: fail open rather than refuse everyone */
        klen = strlen(key) + 1;
        if (!(e = malloc(sizeof *e + klen)))
            return 1;
        memcpy(e->key, key, klen);
        e->tokens = burst;
        e->at_ms = now_ms;
        e->next = rl->tab[h];
        rl->tab[h] = e;
        rl->n++;
    }
    if (now_ms > e->at_ms) {
        e->tokens += (double)(now_ms - e->at_ms) * rate / 1000.0;
        if (e->tokens > burst)
            e->tokens = burst;
        e->at_ms = now_ms;
    }
    if (e->tokens >= 1.0) {
        e->tokens -= 1.0;
        return 1;
    }
    *retry_after_ms = (int64_t)((1.0 - e->tokens) * 1000.0 / rate) + 1;
    return 0;
}
