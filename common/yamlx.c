/* yamlx.c -- YAML documents as a small tree that remembers positions.
 *
 * DESIGN: libyaml's event parser feeds a stack of open collections; every
 * node records where it started. Only the first document is read. Anchors,
 * aliases and tags other than the core ones are refused: configs that need
 * them are rare, and silently expanding them hides where a value came from. */
#include "common/yamlx.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#define YAMLX_MAX_DEPTH 64
#define YAMLX_MAX_NODES 1000000
#define YAMLX_MAX_FILE ((long)16 << 20)

static struct ynode *node_new(enum ynode_type t, const char *file, const yaml_mark_t *m)
{
    struct ynode *n = calloc(1, sizeof *n);
    if (n == NULL) return NULL;
    n->type = t;
    n->file = file;
    n->line = (int)m->line + 1;
    n->col = (int)m->column + 1;
    return n;
}

static void node_free(struct ynode *n)
{
    size_t i;
    if (n == NULL) return;
    for (i = 0; i < n->n; i++) {
        if (n->keys) node_free(n->keys[i]);
        node_free(n->items[i]);
    }
    free(n->keys);
    free(n->items);
    free(n->scalar);
    free(n);
}

/* The root node owns the file name every node points to. */
void yamlx_free(struct ynode *root)
{
    char *file;
    if (root == NULL) return;
    file = (char *)root->file;
    node_free(root);
    free(file);
}

/* Appends child to a collection (with key for maps). */
static int add_child(struct ynode *parent, struct ynode *key, struct ynode *child)
{
    struct ynode **items = realloc(parent->items, (parent->n + 1) * sizeof *items);
    if (items == NULL) return -1;
    parent->items = items;
    if (parent->type == YNODE_MAP) {
        struct ynode **keys = realloc(parent->keys, (parent->n + 1) * sizeof *keys);
        if (keys == NULL) return -1;
        parent->keys = keys;
        parent->keys[parent->n] = key;
    }
    parent->items[parent->n++] = child;
    return 0;
}

struct frame {
    struct ynode *node;
    struct ynode *pending_key; /* maps: a key waiting for its value */
};

static struct ynode *load(yaml_parser_t *parser, const char *file, char *err, size_t errlen)
{
    struct frame stack[YAMLX_MAX_DEPTH];
    int depth = 0;
    long nodes = 0;
    struct ynode *root = NULL;
    int done = 0;
    yaml_event_t ev;

    while (!done) {
        struct ynode *n = NULL;
        if (!yaml_parser_parse(parser, &ev)) {
            const yaml_mark_t *m = &parser->problem_mark;
            snprintf(err, errlen, "%s:%d:%d: YAML syntax error: %s%s%s", file,
                     (int)m->line + 1, (int)m->column + 1,
                     parser->problem ? parser->problem : "unknown problem",
                     parser->context ? " " : "", parser->context ? parser->context : "");
            goto fail;
        }
        switch (ev.type) {
        case YAML_STREAM_START_EVENT:
        case YAML_DOCUMENT_START_EVENT:
            break;
        case YAML_STREAM_END_EVENT:
        case YAML_DOCUMENT_END_EVENT:
            done = 1;
            break;
        case YAML_ALIAS_EVENT:
            snprintf(err, errlen,
                     "%s:%d:%d: YAML aliases (*name) are not supported; write the value out",
                     file, (int)ev.start_mark.line + 1, (int)ev.start_mark.column + 1);
            goto fail_ev;
        case YAML_SCALAR_EVENT:
            n = node_new(YNODE_SCALAR, file, &ev.start_mark);
            if (n == NULL) goto oom;
            n->scalar = malloc(ev.data.scalar.length + 1);
            if (n->scalar == NULL) {
                node_free(n);
                goto oom;
            }
            memcpy(n->scalar, ev.data.scalar.value, ev.data.scalar.length);
            n->scalar[ev.data.scalar.length] = '\0';
            n->quoted = ev.data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
                        ev.data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE;
            break;
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT:
            if (depth >= YAMLX_MAX_DEPTH) {
                snprintf(err, errlen, "%s:%d:%d: nesting deeper than %d levels", file,
                         (int)ev.start_mark.line + 1, (int)ev.start_mark.column + 1,
                         YAMLX_MAX_DEPTH);
                goto fail_ev;
            }
            n = node_new(ev.type == YAML_MAPPING_START_EVENT ? YNODE_MAP : YNODE_SEQ, file,
                         &ev.start_mark);
            if (n == NULL) goto oom;
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            n = stack[--depth].node;
            break;
        default:
            break;
        }

        if (n != NULL && ++nodes > YAMLX_MAX_NODES) {
            snprintf(err, errlen, "%s: more than %d YAML nodes", file, YAMLX_MAX_NODES);
            if (ev.type != YAML_SEQUENCE_END_EVENT && ev.type != YAML_MAPPING_END_EVENT)
                node_free(n);
            goto fail_ev;
        }
        if (n != NULL && (ev.type == YAML_SEQUENCE_START_EVENT ||
                          ev.type == YAML_MAPPING_START_EVENT)) {
            /* Attach now (so it is freed with its parent on error), then open. */
            if (depth == 0 && root == NULL) {
                root = n;
            } else if (depth > 0) {
                struct frame *f = &stack[depth - 1];
                if (f->node->type == YNODE_MAP && f->pending_key == NULL) {
                    snprintf(err, errlen, "%s:%d:%d: a mapping key must be a plain value", file,
                             n->line, n->col);
                    node_free(n);
                    goto fail_ev;
                }
                if (add_child(f->node, f->pending_key, n) != 0) {
                    node_free(n);
                    goto oom;
                }
                f->pending_key = NULL;
            }
            stack[depth].node = n;
            stack[depth].pending_key = NULL;
            depth++;
        } else if (n != NULL && ev.type == YAML_SCALAR_EVENT) {
            if (depth == 0) {
                if (root == NULL) root = n;
                else node_free(n);
            } else {
                struct frame *f = &stack[depth - 1];
                if (f->node->type == YNODE_MAP && f->pending_key == NULL) {
                    size_t i;
                    for (i = 0; i < f->node->n; i++) {
                        if (strcmp(f->node->keys[i]->scalar, n->scalar) == 0) {
                            snprintf(err, errlen,
                                     "%s:%d:%d: duplicate key '%s' (first at line %d)", file,
                                     n->line, n->col, n->scalar, f->node->keys[i]->line);
                            node_free(n);
                            goto fail_ev;
                        }
                    }
                    f->pending_key = n;
                } else {
                    if (add_child(f->node, f->pending_key, n) != 0) {
                        node_free(n);
                        goto oom;
                    }
                    f->pending_key = NULL;
                }
            }
        }
        yaml_event_delete(&ev);
    }
    if (root == NULL) {
        yaml_mark_t m = {0, 0, 0};
        root = node_new(YNODE_MAP, file, &m);
        if (root == NULL) goto oom_noev;
    } else if (root->type == YNODE_SCALAR && root->scalar[0] == '\0') {
        root->type = YNODE_MAP;
    }
    return root;

oom:
    snprintf(err, errlen, "%s: out of memory", file);
fail_ev:
    yaml_event_delete(&ev);
fail:
    /* Pending keys of open frames are not yet attached. */
    while (depth > 0) {
        depth--;
        node_free(stack[depth].pending_key);
    }
    node_free(root);
    return NULL;
oom_noev:
    snprintf(err, errlen, "%s: out of memory", file);
    return NULL;
}

struct ynode *yamlx_load_string(const char *name, const char *text, size_t len, char *err,
                                size_t errlen)
{
    yaml_parser_t parser;
    struct ynode *root;
    char *file = strdup(name ? name : "<string>");

    if (file == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (!yaml_parser_initialize(&parser)) {
        snprintf(err, errlen, "%s: cannot start the YAML parser", file);
        free(file);
        return NULL;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    root = load(&parser, file, err, errlen);
    yaml_parser_delete(&parser);
    if (root == NULL) free(file);
    return root;
}

struct ynode *yamlx_load_file(const char *path, char *err, size_t errlen)
{
    FILE *fp = NULL;
    char *text = NULL;
    long size;
    struct ynode *root = NULL;

    fp = fopen(path, "rb");
    if (fp == NULL) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        goto out;
    }
    if (fseek(fp, 0, SEEK_END) != 0 || (size = ftell(fp)) < 0 || fseek(fp, 0, SEEK_SET) != 0) {
        snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        goto out;
    }
    if (size > YAMLX_MAX_FILE) {
        snprintf(err, errlen, "%s: file is larger than %ld bytes", path, YAMLX_MAX_FILE);
        goto out;
    }
    text = malloc((size_t)size + 1);
    if (text == NULL || fread(text, 1, (size_t)size, fp) != (size_t)size) {
        snprintf(err, errlen, "%s: cannot read", path);
        goto out;
    }
    text[size] = '\0';
    root = yamlx_load_string(path, text, (size_t)size, err, errlen);
out:
    if (fp) fclose(fp);
    free(text);
    return root;
}

struct ynode *yamlx_get(const struct ynode *map, const char *key)
{
    size_t i;
    if (map == NULL || map->type != YNODE_MAP) return NULL;
    for (i = 0; i < map->n; i++)
        if (strcmp(map->keys[i]->scalar, key) == 0) return map->items[i];
    return NULL;
}

struct ynode *yamlx_key(const struct ynode *map, const char *key)
{
    size_t i;
    if (map == NULL || map->type != YNODE_MAP) return NULL;
    for (i = 0; i < map->n; i++)
        if (strcmp(map->keys[i]->scalar, key) == 0) return map->keys[i];
    return NULL;
}

int yamlx_error(char *err, size_t errlen, const struct ynode *at, const char *fmt, ...)
{
    va_list ap;
    int n = 0;
    if (at) n = snprintf(err, errlen, "%s:%d:%d: ", at->file, at->line, at->col);
    if (n < 0 || (size_t)n >= errlen) return -1;
    va_start(ap, fmt);
    vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

static const char *type_name(const struct ynode *n)
{
    switch (n->type) {
    case YNODE_MAP: return "a mapping";
    case YNODE_SEQ: return "a list";
    default: return "a value";
    }
}

int yamlx_string(const struct ynode *n, const char **out, char *err, size_t errlen)
{
    if (n == NULL || n->type != YNODE_SCALAR)
        return yamlx_error(err, errlen, n, "expected a string, found %s", n ? type_name(n) : "nothing");
    *out = n->scalar;
    return 0;
}

int yamlx_double(const struct ynode *n, double *out, char *err, size_t errlen)
{
    char *end;
    double v;
    if (n == NULL || n->type != YNODE_SCALAR)
        return yamlx_error(err, errlen, n, "expected a number, found %s", n ? type_name(n) : "nothing");
    errno = 0;
    v = strtod(n->scalar, &end);
    if (end == n->scalar || *end != '\0' || errno != 0 || !isfinite(v))
        return yamlx_error(err, errlen, n, "expected a number, found '%s'", n->scalar);
    *out = v;
    return 0;
}

int yamlx_long(const struct ynode *n, long *out, char *err, size_t errlen)
{
    char *end;
    long v;
    if (n == NULL || n->type != YNODE_SCALAR)
        return yamlx_error(err, errlen, n, "expected a whole number, found %s",
                           n ? type_name(n) : "nothing");
    errno = 0;
    v = strtol(n->scalar, &end, 10);
    if (end == n->scalar || *end != '\0' || errno != 0)
        return yamlx_error(err, errlen, n, "expected a whole number, found '%s'", n->scalar);
    *out = v;
    return 0;
}

int yamlx_bool(const struct ynode *n, int *out, char *err, size_t errlen)
{
    static const char *const yes[] = {"true", "True", "TRUE", "yes", "Yes", "on", "On", NULL};
    static const char *const no[] = {"false", "False", "FALSE", "no", "No", "off", "Off", NULL};
    int i;
    if (n == NULL || n->type != YNODE_SCALAR)
        return yamlx_error(err, errlen, n, "expected true or false, found %s",
                           n ? type_name(n) : "nothing");
    for (i = 0; yes[i]; i++)
        if (strcmp(n->scalar, yes[i]) == 0) return *out = 1, 0;
    for (i = 0; no[i]; i++)
        if (strcmp(n->scalar, no[i]) == 0) return *out = 0, 0;
    return yamlx_error(err, errlen, n, "expected true or false, found '%s'", n->scalar);
}

int yamlx_parse_duration(const char *s, double *out)
{
    char *end;
    double v, mul = 1.0;
    errno = 0;
    v = strtod(s, &end);
    if (end == s || errno != 0 || !isfinite(v) || v < 0) return -1;
    while (*end == ' ') end++;
    if (*end == '\0' || strcmp(end, "s") == 0) mul = 1.0;
    else if (strcmp(end, "ms") == 0) mul = 0.001;
    else if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0) mul = 60.0;
    else if (strcmp(end, "h") == 0) mul = 3600.0;
    else return -1;
    *out = v * mul;
    return 0;
}

int yamlx_parse_rate(const char *s, double *out)
{
    char *end;
    double v;
    errno = 0;
    v = strtod(s, &end);
    if (end == s || errno != 0 || !isfinite(v) || v <= 0) return -1;
    while (*end == ' ') end++;
    if (*end == '\0' || strcmp(end, "/s") == 0) *out = v;
    else if (strcmp(end, "/m") == 0 || strcmp(end, "/min") == 0) *out = v / 60.0;
    else if (strcmp(end, "/h") == 0) *out = v / 3600.0;
    else return -1;
    return 0;
}

int yamlx_duration(const struct ynode *n, double *out, char *err, size_t errlen)
{
    if (n == NULL || n->type != YNODE_SCALAR || yamlx_parse_duration(n->scalar, out) != 0)
        return yamlx_error(err, errlen, n,
                           "expected a duration such as 30s, 250ms, 2m or a number of seconds%s%s%s",
                           n && n->scalar ? ", found '" : "", n && n->scalar ? n->scalar : "",
                           n && n->scalar ? "'" : "");
    return 0;
}

int yamlx_rate(const struct ynode *n, double *out, char *err, size_t errlen)
{
    if (n == NULL || n->type != YNODE_SCALAR || yamlx_parse_rate(n->scalar, out) != 0)
        return yamlx_error(err, errlen, n,
                           "expected a positive rate such as 20/s, 600/m or 20%s%s%s",
                           n && n->scalar ? ", found '" : "", n && n->scalar ? n->scalar : "",
                           n && n->scalar ? "'" : "");
    return 0;
}

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), i, j;
    size_t row[65];
    if (lb > 64 || la > 64) return 99;
    for (j = 0; j <= lb; j++) row[j] = j;
    for (i = 1; i <= la; i++) {
        size_t prev = row[0];
        row[0] = i;
        for (j = 1; j <= lb; j++) {
            size_t cur = row[j];
            size_t cost = tolower((unsigned char)a[i - 1]) == tolower((unsigned char)b[j - 1]) ? 0 : 1;
            size_t best = prev + cost;
            if (row[j] + 1 < best) best = row[j] + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            prev = cur;
        }
    }
    return row[lb];
}

int yamlx_check_keys(const struct ynode *map, const char *const *allowed, const char *what,
                     char *err, size_t errlen)
{
    size_t i;
    if (map == NULL) return 0;
    if (map->type != YNODE_MAP)
        return yamlx_error(err, errlen, map, "%s must be a mapping (key: value), found %s", what,
                           type_name(map));
    for (i = 0; i < map->n; i++) {
        const char *k = map->keys[i]->scalar;
        const char *best = NULL;
        size_t bestd = 3, j;
        char list[512];
        size_t off = 0;
        for (j = 0; allowed[j]; j++) {
            size_t d;
            if (strcmp(k, allowed[j]) == 0) break;
            d = edit_distance(k, allowed[j]);
            if (d < bestd) bestd = d, best = allowed[j];
        }
        if (allowed[j]) continue;
        list[0] = '\0';
        for (j = 0; allowed[j] && off < sizeof list; j++) {
            int w = snprintf(list + off, sizeof list - off, "%s%s", j ? ", " : "", allowed[j]);
            if (w < 0) break;
            off += (size_t)w;
        }
        if (best)
            return yamlx_error(err, errlen, map->keys[i], "unknown key '%s' in %s; did you mean '%s'?",
                               k, what, best);
        return yamlx_error(err, errlen, map->keys[i], "unknown key '%s' in %s; expected one of: %s",
                           k, what, list);
    }
    return 0;
}
