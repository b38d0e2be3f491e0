/* router.h -- the OpenAI-compatible routing proxy, as the harness uses it.
 *
 * router_config_* reads a LiteLLM-style config.yaml; proxy_* serves it on an
 * evhttp socket driven by one event loop, calling upstreams with libcurl
 * multi_socket on the same loop. The routing decisions themselves live in the
 * pure core (router/core.h). */
#ifndef SLODRILL_ROUTER_H
#define SLODRILL_ROUTER_H

#include <stddef.h>
#include <stdint.h>
#include "common/compiler.h"

struct event_base;
struct router_config;
struct proxy;

/* Looks up NAME for "os.environ/NAME"; returns a borrowed string or NULL
 * when unset (which is a positioned error where the value is needed). */
typedef const char *(*router_env_fn)(const char *name, void *arg);

/* Loads and checks a config. env may be NULL (then getenv is used). Warnings
 * (unknown keys, ignored settings) go to warn_cb when not NULL, each as
 * "file:line:col: ...". NULL on error with "file:line:col: ..." in err.
 * Caller frees with router_config_free. */
struct router_config *router_config_load(const char *path, router_env_fn env, void *env_arg,
                                         void (*warn_cb)(const char *msg, void *arg),
                                         void *warn_arg, char *err, size_t errlen) WUR;
void router_config_free(struct router_config *cfg);

/* The key clients must present as "Authorization: Bearer KEY", or NULL when
 * the config sets none (general_settings or litellm_settings master_key).
 * Borrowed. */
const char *router_config_master_key(const struct router_config *cfg);

/* Deployments in model_list order, for reports and the harness. */
struct router_deploy_info {
    const char *id;       /* model_info.id, else "<model_name>#<n>" */
    const char *alias;    /* model_name */
    const char *model;    /* litellm_params.model as written */
    const char *provider; /* label: api_base host:port, else the model prefix */
    const char *api_base;
    int order;            /* INT_MAX when unset */
    double weight;
    double input_cost_per_token, output_cost_per_token; /* < 0 unknown */
};
size_t router_config_count(const struct router_config *cfg);
/* Fills out with borrowed strings; -1 when i is out of range. */
int router_config_deployment(const struct router_config *cfg, size_t i,
                             struct router_deploy_info *out) WUR;

/* Events the proxy reports as they happen (cooldown_start, cooldown_end).
 * Called on the proxy's loop thread; subject is the deployment id, detail
 * a short reason. now_us is clock_mono_us(). */
typedef void (*proxy_event_fn)(const char *kind, const char *subject, const char *detail,
                               uint64_t now_us, void *arg);

struct proxy_opts {
    const char *host;       /* default "127.0.0.1" */
    int port;               /* 0 = ephemeral */
    uint64_t seed;          /* routing randomness */
    proxy_event_fn on_event;
    void *event_arg;
    const char *log_path;   /* SQLite request log (router/reqlog.h); NULL: the config's
                               router_settings.slodrill_request_log, else none */
};

/* Starts listening at once. base and cfg are borrowed and must outlive the
 * proxy. Caller frees with proxy_free. */
struct proxy *proxy_new(struct event_base *base, const struct router_config *cfg,
                        const struct proxy_opts *opts, char *err, size_t errlen) WUR;
/* Stops accepting, aborts upstream transfers, frees. NULL does nothing. */
void proxy_free(struct proxy *p);
int proxy_port(const struct proxy *p);

/* Counters for tests and /metrics. Read them on the proxy's loop thread, or
 * after that loop stopped. */
struct proxy_stats {
    uint64_t requests;          /* chat requests accepted */
    uint64_t upstream_pauses;   /* times an upstream was paused for a slow client */
    uint64_t upstream_resumes;
    size_t max_client_backlog;  /* most bytes ever queued for one client */
};
void proxy_stats_get(const struct proxy *p, struct proxy_stats *out);

/* Waits (up to timeout_ms, off the loop thread) until every request record
 * handed to the request log so far is on disk. 0 when written or when there
 * is no log; -1 on timeout. For tests. */
int proxy_log_flush(struct proxy *p, int timeout_ms) WUR;

/* Client output bytes past which the upstream is paused (default 4 MiB),
 * and below which it resumes (default 1 MiB). For tests; low < high. */
void proxy_set_backlog_limits(struct proxy *p, size_t high, size_t low);

/* SO_SNDBUF for client connections accepted from now on (0 = the kernel's
 * autotuning, the default). Lets a test see backpressure on loopback, where
 * the kernel would otherwise queue megabytes before the router notices. */
void proxy_set_client_sndbuf(struct proxy *p, int bytes);

#endif
