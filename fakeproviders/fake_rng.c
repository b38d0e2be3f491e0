/* fake_rng.c -- seeded randomness for the fakes: xoshiro256** via splitmix64.
 *
 * Every random choice a fake makes (latency, answer length, words, ids,
 * fault draws) comes from one of these, so a run is reproducible from its
 * seed and the order requests arrive in. */
#include "fakeproviders/fake_int.h"

#include <math.h>
#include <string.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

void fake_rng_seed(struct fake_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

uint64_t fake_rng_next(struct fake_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double fake_rng_unit(struct fake_rng *r)
{
    return (double)(fake_rng_next(r) >> 11) * 0x1.0p-53;
}

/* Standard normal by Box-Muller (one of the pair; simple beats fast here). */
static double rng_normal(struct fake_rng *r)
{
    double u1 = fake_rng_unit(r), u2 = fake_rng_unit(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

double fake_rng_lognormal(struct fake_rng *r, double median, double p95)
{
    double z = rng_normal(r), sigma;
    if (median <= 0) return 0;
    /* ln X ~ N(ln median, sigma) with P95 at median * exp(1.6449 sigma). */
    sigma = p95 > median ? (log(p95) - log(median)) / 1.6448536269514722 : 0;
    return median * exp(sigma * z);
}

void fake_rng_alnum(struct fake_rng *r, char *out, size_t n)
{
    static const char set[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    for (size_t i = 0; i < n; i++) out[i] = set[fake_rng_next(r) % (sizeof set - 1)];
    out[n] = '\0';
}

void fake_rng_hex(struct fake_rng *r, char *out, size_t n)
{
    static const char set[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) out[i] = set[fake_rng_next(r) & 15];
    out[n] = '\0';
}

void fake_rng_word(struct fake_rng *r, char *out, size_t outlen)
{
    static const char *const on[] = {"b", "c", "d", "f", "g", "l", "m", "n", "p",
                                     "r", "s", "t", "v", "st", "tr", "pl", "qu", ""};
    static const char *const nu[] = {"a", "e", "i", "o", "u", "ea", "io", "ou"};
    static const char *const co[] = {"", "", "n", "r", "s", "m", "t", "l"};
    size_t len = 0;
    int syl = 1 + (int)(fake_rng_next(r) % 3);

    if (outlen == 0) return;
    out[0] = '\0';
    for (int i = 0; i < syl; i++) {
        const char *parts[3] = {on[fake_rng_next(r) % (sizeof on / sizeof on[0])],
                                nu[fake_rng_next(r) % (sizeof nu / sizeof nu[0])],
                                co[fake_rng_next(r) % (sizeof co / sizeof co[0])]};
        for (int k = 0; k < 3; k++) {
            size_t pl = strlen(parts[k]);
            if (len + pl + 1 > outlen) return;
            memcpy(out + len, parts[k], pl);
            len += pl;
            out[len] = '\0';
        }
    }
}
