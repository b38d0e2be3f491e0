/* fake_json.c -- JSON string literals for the fakes' hand-written bodies.
 *
 * The fakes write every byte themselves (no cJSON_Print) so that key order,
 * spacing and indentation match what the real providers send. */
#include "fakeproviders/fake_int.h"

#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

int fake_json_str(struct buf *b, const char *s)
{
    int rc = -1;
    const unsigned char *p = (const unsigned char *)s;

    if (buf_puts(b, "\"") != 0) goto out;
    while (*p) {
        const char *esc = NULL;
        char u[8];
        size_t run = 0;
        /* Plain bytes go in one append (this runs for every stream event). */
        while (p[run] >= 0x20 && p[run] != '"' && p[run] != '\\') run++;
        if (run > 0) {
            if (buf_append(b, p, run) != 0) goto out;
            p += run;
            continue;
        }
        switch (*p) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        default:
            if (*p < 0x20) {
                snprintf(u, sizeof u, "\\u%04x", *p);
                esc = u;
            }
        }
        if (esc != NULL && buf_puts(b, esc) != 0) goto out;
        p++;
    }
    if (buf_puts(b, "\"") != 0) goto out;
    rc = 0;
out:
    return rc;
}

size_t fake_json_text_bytes(const struct cJSON *content)
{
    size_t n = 0;
    const cJSON *part;
    if (cJSON_IsString(content)) return strlen(content->valuestring);
    if (!cJSON_IsArray(content)) return 0;
    cJSON_ArrayForEach(part, content)
    {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (cJSON_IsString(t)) n += strlen(t->valuestring);
        else if (cJSON_IsString(part)) n += strlen(part->valuestring);
    }
    return n;
}

int fake_json_estimate_tokens(size_t bytes, int messages)
{
    size_t t = (bytes + 3) / 4 + 3 * (size_t)(messages > 0 ? messages : 0) + 3;
    return t > 10000000 ? 10000000 : (int)t;
}
