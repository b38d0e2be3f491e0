/* net.c -- listening sockets for evhttp servers, and socket options. */
#include "common/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/http.h>
#include <event2/util.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

void net_nodelay(int fd)
{
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

int net_listen_http(struct evhttp *http, const char *host, int port, int *bound_port,
                    struct evhttp_bound_socket **handle, char *err, size_t errlen)
{
    struct addrinfo hints, *ai = NULL;
    char portstr[16];
    int fd = -1, one = 1, rc = -1, gai;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    struct evhttp_bound_socket *bs;

    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(portstr, sizeof portstr, "%d", port);
    if (host == NULL || host[0] == '\0') host = "127.0.0.1";
    if (strcmp(host, "localhost") == 0) host = "127.0.0.1";
    gai = getaddrinfo(host, portstr, &hints, &ai);
    if (gai != 0) {
        snprintf(err, errlen, "cannot resolve listen address %s: %s", host, gai_strerror(gai));
        goto out;
    }
    fd = socket(ai->ai_family, SOCK_STREAM, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        goto out;
    }
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        snprintf(err, errlen, "cannot listen on %s:%d: %s", host, port, strerror(errno));
        goto out;
    }
    if (listen(fd, 4096) != 0 || evutil_make_socket_nonblocking(fd) != 0 ||
        evutil_make_socket_closeonexec(fd) != 0) {
        snprintf(err, errlen, "listen on %s:%d: %s", host, port, strerror(errno));
        goto out;
    }
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
        snprintf(err, errlen, "getsockname: %s", strerror(errno));
        goto out;
    }
    bs = evhttp_accept_socket_with_handle(http, fd);
    if (bs == NULL) {
        snprintf(err, errlen, "cannot accept on %s:%d", host, port);
        goto out;
    }
    fd = -1; /* evhttp owns it now */
    if (handle) *handle = bs;
    if (bound_port) {
        *bound_port = ss.ss_family == AF_INET6
                          ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                          : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    }
    rc = 0;
out:
    if (fd >= 0) close(fd);
    if (ai) freeaddrinfo(ai);
    return rc;
}

int net_split_hostport(const char *s, char *host, size_t hostlen, int *port)
{
    const char *colon, *hs = s, *he;
    char *end;
    long p;

    if (s[0] == '[') {
        he = strchr(s, ']');
        if (he == NULL || he[1] != ':') return -1;
        hs = s + 1;
        colon = he + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL) return -1;
        he = colon;
    }
    if ((size_t)(he - hs) + 1 > hostlen) return -1;
    p = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || *end != '\0' || p < 0 || p > 65535) return -1;
    memcpy(host, hs, (size_t)(he - hs));
    host[he - hs] = '\0';
    *port = (int)p;
    return 0;
}
