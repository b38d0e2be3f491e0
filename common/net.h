/* net.h -- listening sockets for evhttp servers, and socket options. */
#ifndef SLODRILL_NET_H
#define SLODRILL_NET_H

#include <stddef.h>
#include "common/compiler.h"

struct evhttp;
struct evhttp_bound_socket;

/* Binds http to host:port (port 0 = ephemeral), non-blocking, SO_REUSEADDR,
 * backlog 4096. *bound_port gets the port actually bound; *handle (may be
 * NULL) the bound socket, for evhttp_del_accept_socket. 0 or -1 with err. */
int net_listen_http(struct evhttp *http, const char *host, int port, int *bound_port,
                    struct evhttp_bound_socket **handle, char *err, size_t errlen) WUR;

/* TCP_NODELAY on fd: every server and client here writes small pieces. */
void net_nodelay(int fd);

/* Splits "HOST:PORT" (or "[v6]:PORT"); host gets at most hostlen-1 bytes. */
int net_split_hostport(const char *s, char *host, size_t hostlen, int *port) WUR;

#endif
