/* clock.h -- monotonic time for durations, wall time for people. */
#ifndef SLODRILL_CLOCK_H
#define SLODRILL_CLOCK_H

#include <stdint.h>
#include <stddef.h>

/* CLOCK_MONOTONIC in microseconds. Use for every duration. */
uint64_t clock_mono_us(void);

/* CLOCK_REALTIME in microseconds since the Unix epoch. Only for timestamps. */
uint64_t clock_wall_us(void);

/* Formats a wall-clock time (us since epoch) as UTC ISO 8601 with
 * milliseconds, "2026-11-24T04:13:12.345Z", into out (>= 25 bytes). */
void clock_format_utc(uint64_t wall_us, char *out, size_t outlen);

/* Formats UTC as "20261124T041312Z" for folder names (>= 17 bytes). */
void clock_format_compact(uint64_t wall_us, char *out, size_t outlen);

#endif
