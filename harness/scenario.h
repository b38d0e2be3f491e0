/* scenario.h -- a drill scenario (a YAML file under scenarios/) loaded and checked.
 *
 * The format is DESIGN.md's "Scenario" contract. Loading checks everything
 * (unknown keys, types, providers named by the timeline, env templates)
 * before anything runs; errors say file:line:col. */
#ifndef SLODRILL_SCENARIO_H
#define SLODRILL_SCENARIO_H

#include <stddef.h>
#include <stdint.h>
#include "common/compiler.h"
#include "fakeproviders/fake.h"
#include "harness/loadgen.h"
#include "reports/slo.h"

struct ynode;

struct scenario_env {
    char *name;
    char *value;   /* template: "${primary.url}/v1", "${secondary.key}", literal text */
};

struct scenario_step {
    double at_s;
    int clear;                 /* 1: clear the fault kind; 0: inject */
    int provider;              /* index into providers */
    struct fault_spec fault;   /* kind (and parameters when injecting) */
};

struct scenario {
    char *file;
    char *name;
    char *description;
    uint64_t seed;
    struct slo_targets slo;
    struct expectations expect;

    struct fake_spec *providers;
    size_t nproviders;

    char *router_config;       /* resolved path, or NULL with target */
    struct scenario_env *env;
    size_t nenv;
    char *target;              /* external router root URL, or NULL */
    char *served_by_header;    /* header naming who served, for external routers */

    /* traffic */
    char *model;
    double rate;
    double ramp_to;            /* > 0: the rate ramps to this over the duration */
    struct loadgen_step *steps_load; /* traffic.steps, or NULL */
    size_t nsteps_load;
    int workers;               /* > 0: closed loop (capacity probes only) */
    enum arrival arrival;
    double duration_s;         /* the whole schedule (the sum of steps when given) */
    int stream;
    long max_tokens;
    double timeout_s;
    int max_inflight;
    char *prompts_file;        /* NULL: built-in prompts */
    char *api_key;             /* NULL: the router config's master_key */
    struct loadgen_header *headers;
    size_t nheaders;

    struct scenario_step *steps;
    size_t nsteps;

    double stop_sr_below;      /* percent; < 0 none */
    double stop_for_s;
};

/* Loads and checks path. Relative file paths inside (router.config,
 * traffic.prompts) are taken from the working directory when they exist
 * there, else from the scenario file's folder. Caller frees with
 * scenario_free. NULL with "file:line:col: ..." in err. */
struct scenario *scenario_load(const char *path, char *err, size_t errlen) WUR;
void scenario_free(struct scenario *s);

/* Index of the provider named name, or -1. */
int scenario_provider_index(const struct scenario *s, const char *name);

/* Expands "${NAME.url}", "${NAME.key}", "${NAME.port}" and "${NAME.name}"
 * using urls[i] as provider i's root URL. Caller frees. NULL on an unknown
 * reference (already checked at load time). */
char *scenario_expand(const struct scenario *s, const char *tmpl, const char *const *urls);

/* The run's meta JSON (reports/report.h shape). urls may be NULL. Caller
 * frees. */
char *scenario_meta_json(const struct scenario *s, const char *config_used,
                         const char *const *urls);

#endif
