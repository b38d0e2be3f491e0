/* log.c -- leveled logging to stderr, one line per message, thread-safe. */
#include "common/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"

static int level = -1;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static enum log_level level_from_env(void)
{
    const char *s = getenv("SLODRILL_LOG");
    if (s == NULL) return LOG_WARN;
    if (strcmp(s, "error") == 0) return LOG_ERROR;
    if (strcmp(s, "info") == 0) return LOG_INFO;
    if (strcmp(s, "debug") == 0) return LOG_DEBUG;
    return LOG_WARN;
}

void log_set_level(enum log_level l) { level = (int)l; }

enum log_level log_get_level(void)
{
    if (level < 0) level = (int)level_from_env();
    return (enum log_level)level;
}

void log_msg(enum log_level l, const char *tag, const char *fmt, ...)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    char line[2048];
    char ts[32];
    va_list ap;
    int n;

    if ((int)l > (int)log_get_level()) return;
    clock_format_utc(clock_wall_us(), ts, sizeof ts);
    n = snprintf(line, sizeof line, "%s %s %s: ", ts, names[l], tag ? tag : "-");
    if (n < 0 || (size_t)n >= sizeof line) n = 0;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&log_lock);
    fprintf(stderr, "%s\n", line);
    pthread_mutex_unlock(&log_lock);
}
