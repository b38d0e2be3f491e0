/* fake_journal.c -- the fake's request journal: the last FAKE_JOURNAL_MAX
 * API requests (time, method, path, masked key, faults applied, status),
 * served as JSON by GET /_chaos/journal. Loop thread only: requests are
 * noted and the control API answers on the fake's own loop. */
#include "fakeproviders/fake_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"

struct jentry {
    uint64_t wall_us;
    char method[8];
    char path[96];
    char key[32];
    unsigned faults; /* bit per enum fault_kind */
    int status;      /* 0: no answer (egress_block) */
    int stream;
};

struct fake_journal {
    struct jentry e[FAKE_JOURNAL_MAX];
    size_t next, count;
};

struct fake_journal *fake_journal_new(void) { return calloc(1, sizeof(struct fake_journal)); }

void fake_journal_free(struct fake_journal *j) { free(j); }

/* "sk-test-...6789": enough to tell keys apart, never the key. */
static void mask(const char *key, char *out, size_t outlen)
{
    size_t n = key ? strlen(key) : 0;
    if (n == 0) snprintf(out, outlen, "%s", "");
    else if (n <= 12) snprintf(out, outlen, "%.2s...", key);
    else snprintf(out, outlen, "%.8s...%s", key, key + n - 4);
}

void fake_journal_note(struct fake_journal *j, const char *method, const char *path,
                       const char *key, unsigned faults, int status, int stream)
{
    struct jentry *e;
    if (j == NULL) return;
    e = &j->e[j->next];
    j->next = (j->next + 1) % FAKE_JOURNAL_MAX;
    if (j->count < FAKE_JOURNAL_MAX) j->count++;
    e->wall_us = clock_wall_us();
    snprintf(e->method, sizeof e->method, "%s", method ? method : "");
    snprintf(e->path, sizeof e->path, "%s", path ? path : "");
    mask(key, e->key, sizeof e->key);
    e->faults = faults;
    e->status = status;
    e->stream = stream;
}

int fake_journal_json(const struct fake_journal *j, const char *provider, size_t max,
                      struct buf *out)
{
    size_t n = j ? j->count : 0, first;
    int rc = 0;

    if (max > 0 && n > max) n = max;
    rc |= buf_puts(out, "{\"provider\":");
    rc |= fake_json_str(out, provider);
    rc |= buf_puts(out, ",\"entries\":[");
    first = j ? (j->next + FAKE_JOURNAL_MAX - n) % FAKE_JOURNAL_MAX : 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const struct jentry *e = &j->e[(first + i) % FAKE_JOURNAL_MAX];
        char t[40];
        int nf = 0;
        clock_format_utc(e->wall_us, t, sizeof t);
        rc |= buf_printf(out, "%s{\"time\":\"%s\",\"method\":", i ? "," : "", t);
        rc |= fake_json_str(out, e->method);
        rc |= buf_puts(out, ",\"path\":");
        rc |= fake_json_str(out, e->path);
        rc |= buf_puts(out, ",\"key\":");
        rc |= fake_json_str(out, e->key);
        rc |= buf_puts(out, ",\"faults\":[");
        for (int k = 0; k < FAULT__COUNT; k++)
            if (e->faults & (1u << k))
                rc |= buf_printf(out, "%s\"%s\"", nf++ ? "," : "",
                                 fault_kind_name((enum fault_kind)k));
        rc |= buf_printf(out, "],\"status\":%d,\"stream\":%s}", e->status,
                         e->stream ? "true" : "false");
    }
    rc |= buf_puts(out, "]}\n");
    return rc ? -1 : 0;
}
