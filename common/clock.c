/* clock.c -- monotonic time for durations, wall time for people. */
#include "common/clock.h"

#include <stdio.h>
#include <time.h>

static uint64_t ts_us(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t clock_mono_us(void) { return ts_us(CLOCK_MONOTONIC); }
uint64_t clock_wall_us(void) { return ts_us(CLOCK_REALTIME); }

void clock_format_utc(uint64_t wall_us, char *out, size_t outlen)
{
    time_t secs = (time_t)(wall_us / 1000000u);
    struct tm tm;
    gmtime_r(&secs, &tm);
    snprintf(out, outlen, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (unsigned)(wall_us % 1000000u / 1000u));
}

void clock_format_compact(uint64_t wall_us, char *out, size_t outlen)
{
    time_t secs = (time_t)(wall_us / 1000000u);
    struct tm tm;
    gmtime_r(&secs, &tm);
    snprintf(out, outlen, "%04d%02d%02dT%02d%02d%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}
