/* yamlx.h -- YAML documents as a small tree that remembers positions.
 *
 * libyaml's event parser builds the tree; every node keeps the file name,
 * line and column (both 1-based) it started at, so config and scenario
 * errors print as "file:line:col: what is wrong, and what would be right".
 * Anchors and aliases are refused; nesting and size are bounded. The struct is
 * exposed for reading; treat it as read-only. */
#ifndef SLODRILL_YAMLX_H
#define SLODRILL_YAMLX_H

#include <stddef.h>
#include "common/compiler.h"

enum ynode_type { YNODE_SCALAR, YNODE_MAP, YNODE_SEQ };

struct ynode {
    enum ynode_type type;
    const char *file;     /* shared by the whole document */
    int line, col;        /* 1-based */
    char *scalar;         /* YNODE_SCALAR: the text, NUL-terminated */
    int quoted;           /* YNODE_SCALAR: written in quotes */
    size_t n;             /* YNODE_MAP: pairs; YNODE_SEQ: items */
    struct ynode **keys;  /* YNODE_MAP: key nodes (scalars) */
    struct ynode **items; /* YNODE_MAP: values; YNODE_SEQ: items */
};

/* Loads the first document of a file (an empty file gives an empty map).
 * Caller frees with yamlx_free. NULL on error, with "file:line:col: ..." in
 * err. */
struct ynode *yamlx_load_file(const char *path, char *err, size_t errlen) WUR;
/* The same from memory; name is used in positions. */
struct ynode *yamlx_load_string(const char *name, const char *text, size_t len, char *err,
                                size_t errlen) WUR;
void yamlx_free(struct ynode *root);

/* Lookups return borrowed nodes or NULL. */
struct ynode *yamlx_get(const struct ynode *map, const char *key);
/* The key node of a map entry (for positions of unknown keys). */
struct ynode *yamlx_key(const struct ynode *map, const char *key);

/* Writes "file:line:col: " + message into err. Always returns -1, so a
 * parser can `return yamlx_error(...)`. */
int yamlx_error(char *err, size_t errlen, const struct ynode *at, const char *fmt, ...)
    PRINTF_LIKE(4, 5);

/* Typed reads of a scalar node. Each returns 0, or -1 with a positioned
 * message in err naming what was expected. */
int yamlx_string(const struct ynode *n, const char **out, char *err, size_t errlen) WUR;
int yamlx_double(const struct ynode *n, double *out, char *err, size_t errlen) WUR;
int yamlx_long(const struct ynode *n, long *out, char *err, size_t errlen) WUR;
int yamlx_bool(const struct ynode *n, int *out, char *err, size_t errlen) WUR;
/* "8s", "250ms", "1.5s", "2m", "1h" or a bare number of seconds -> seconds. */
int yamlx_duration(const struct ynode *n, double *out, char *err, size_t errlen) WUR;
/* "20/s", "1200/m", "20" -> requests per second. */
int yamlx_rate(const struct ynode *n, double *out, char *err, size_t errlen) WUR;

/* Checks that every key of map is in allowed (NULL-terminated). On the first
 * unknown key: -1 and "file:line:col: unknown key 'x' in <what>; expected one
 * of: a, b, c" (with a "did you mean" when one is close). */
int yamlx_check_keys(const struct ynode *map, const char *const *allowed, const char *what,
                     char *err, size_t errlen) WUR;

/* Parses a duration or rate from text (shared with CLI flags). */
int yamlx_parse_duration(const char *s, double *out);
int yamlx_parse_rate(const char *s, double *out);

#endif
