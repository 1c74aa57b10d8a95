/* osc.c - see osc.h for why we own the socket. */
#include "osc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"

/* A burst of triggers from a sequencer must not be lost in the kernel while
 * the OSC thread is busy: ask for a receive buffer well above the default. */
#define OSC_RCVBUF (4 * 1024 * 1024)

/* Binds one socket as osc.h says; on failure *k is closed (fd -1). */
static int open_socket(struct osc_socket *k, const char *listen_addr, const char *port, char *err,
                       size_t errlen)
{
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC,
        .ai_socktype = SOCK_DGRAM,
        .ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV,
    };
    struct addrinfo *ai = NULL;
    int r;

    memset(k, 0, sizeof(*k));
    k->fd = -1;
    r = getaddrinfo(listen_addr, port, &hints, &ai);
    if (r != 0) {
        snprintf(err, errlen, "cannot listen on %s port %s: %s", listen_addr, port,
                 gai_strerror(r));
        return -EINVAL;
    }
    k->fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (k->fd < 0) {
        r = -errno;
        snprintf(err, errlen, "socket: %s", strerror(errno));
        goto fail;
    }
    if (ai->ai_family == AF_INET6) {
        /* "::" means every interface, IPv4 ones included: a dual-stack
         * socket, whose IPv4 sources arrive as ::ffff:a.b.c.d (osc_allowed
         * matches them against IPv4 rules).  Any other IPv6 address is
         * IPv6 only. */
        const struct in6_addr *a6 = &((const struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
        int v6only = !IN6_IS_ADDR_UNSPECIFIED(a6);
        if (setsockopt(k->fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only)) < 0 && !v6only) {
            r = -errno;
            snprintf(err, errlen, "cannot listen on %s for IPv4 too: %s", listen_addr,
                     strerror(errno));
            goto fail;
        }
    }
    int rcv = OSC_RCVBUF;
    if (setsockopt(k->fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof(rcv)) < 0)
        (void)setsockopt(k->fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
    int one = 1;
    (void)setsockopt(k->fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one));
    if (bind(k->fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        r = -errno;
        snprintf(err, errlen, "cannot listen on %s port %s: %s", listen_addr, port,
                 strerror(errno));
        goto fail;
    }
    struct sockaddr_storage bound;
    socklen_t blen = sizeof(bound);
    if (getsockname(k->fd, (struct sockaddr *)&bound, &blen) == 0) {
        char host[INET6_ADDRSTRLEN] = "?", serv[16] = "?";
        getnameinfo((struct sockaddr *)&bound, blen, host, sizeof(host), serv, sizeof(serv),
                    NI_NUMERICHOST | NI_NUMERICSERV);
        snprintf(k->addr_text, sizeof(k->addr_text), "%s%s%s:%s",
                 bound.ss_family == AF_INET6 ? "[" : "", host,
                 bound.ss_family == AF_INET6 ? "]" : "", serv);
        k->port = (uint16_t)atoi(serv);
    }
    freeaddrinfo(ai);
    return 0;
fail:
    freeaddrinfo(ai);
    if (k->fd >= 0)
        close(k->fd);
    k->fd = -1;
    return r;
}

int osc_open(struct osc_server *s, const char *listen_addr, const char *port, char *err,
             size_t errlen)
{
    memset(s, 0, sizeof(*s));
    for (unsigned i = 0; i < OSC_MAX_SOCKETS; i++)
        s->sock[i].fd = -1;
    s->stop_fd = eventfd(0, EFD_CLOEXEC);
    if (s->stop_fd < 0) {
        int r = -errno;
        snprintf(err, errlen, "eventfd: %s", strerror(errno));
        return r;
    }
    int r = osc_add(s, listen_addr, port, err, errlen);
    if (r < 0) {
        osc_close(s);
        return r;
    }
    return 0;
}

int osc_add(struct osc_server *s, const char *listen_addr, const char *port, char *err,
            size_t errlen)
{
    if (s->nsock == OSC_MAX_SOCKETS) {
        snprintf(err, errlen, "at most %d OSC sockets", OSC_MAX_SOCKETS);
        return -ENOSPC;
    }
    int r = open_socket(&s->sock[s->nsock], listen_addr, port, err, errlen);
    if (r < 0)
        return r;
    return (int)s->nsock++;
}

void osc_close(struct osc_server *s)
{
    for (unsigned i = 0; i < OSC_MAX_SOCKETS; i++) {
        if (s->sock[i].fd >= 0)
            close(s->sock[i].fd);
        s->sock[i].fd = -1;
    }
    s->nsock = 0;
    if (s->stop_fd >= 0)
        close(s->stop_fd);
    s->stop_fd = -1;
}

void osc_stop(struct osc_server *s)
{
    uint64_t one = 1;
    ssize_t n = write(s->stop_fd, &one, sizeof(one));
    (void)n;
}

int osc_parse_allow(const char *text, struct osc_allow *a)
{
    char buf[INET6_ADDRSTRLEN + 8];
    if (strlen(text) >= sizeof(buf))
        return -EINVAL;
    strcpy(buf, text);
    char *slash = strchr(buf, '/');
    if (slash)
        *slash = '\0';
    memset(a, 0, sizeof(*a));
    if (inet_pton(AF_INET, buf, a->net) == 1) {
        a->family = AF_INET;
        a->prefix = 32;
    } else if (inet_pton(AF_INET6, buf, a->net) == 1) {
        a->family = AF_INET6;
        a->prefix = 128;
    } else {
        return -EINVAL;
    }
    if (slash) {
        char *end;
        unsigned long p = strtoul(slash + 1, &end, 10);
        if (!slash[1] || *end || p > a->prefix)
            return -EINVAL;
        a->prefix = (unsigned)p;
    }
    return 0;
}

static bool prefix_match(const unsigned char *addr, const unsigned char *net, unsigned prefix)
{
    unsigned full = prefix / 8, rest = prefix % 8;
    if (memcmp(addr, net, full) != 0)
        return false;
    if (rest == 0)
        return true;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (addr[full] & mask) == (net[full] & mask);
}

bool osc_allowed(const struct osc_server *s, const struct osc_peer *from)
{
    if (s->nallow == 0)
        return true;
    const unsigned char *v4 = NULL, *v6 = NULL;
    if (from->addr.ss_family == AF_INET) {
        v4 = (const unsigned char *)&((const struct sockaddr_in *)&from->addr)->sin_addr;
    } else if (from->addr.ss_family == AF_INET6) {
        const struct in6_addr *a6 = &((const struct sockaddr_in6 *)&from->addr)->sin6_addr;
        v6 = (const unsigned char *)a6;
        /* An IPv4 client of a dual-stack socket: its IPv4 address. */
        if (IN6_IS_ADDR_V4MAPPED(a6))
            v4 = v6 + 12;
    }
    for (unsigned i = 0; i < s->nallow; i++) {
        const struct osc_allow *a = &s->allow[i];
        const unsigned char *addr = a->family == AF_INET ? v4 : a->family == AF_INET6 ? v6 : NULL;
        if (addr && prefix_match(addr, a->net, a->prefix))
            return true;
    }
    return false;
}

static uint32_t rd32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int dispatch(unsigned char *data, size_t len, lo_timetag tt, int depth,
                    const struct osc_peer *from, osc_handler fn, void *user)
{
    if (len < 4 || len % 4 != 0)
        return -EBADMSG;
    if (data[0] == '/') {
        /* lo_message_deserialise validates the whole message (path, type
         * tags, argument sizes) before we look at any of it. */
        int result = 0;
        lo_message m = lo_message_deserialise(data, len, &result);
        if (!m)
            return -EBADMSG;
        if (fn) /* NULL: validating only */
            fn(user, (const char *)data, m, tt, from);
        lo_message_free(m);
        return 1;
    }
    if (len < 16 || memcmp(data, "#bundle", 8) != 0 || depth >= OSC_MAX_BUNDLE_DEPTH)
        return -EBADMSG;
    lo_timetag inner = {.sec = rd32(data + 8), .frac = rd32(data + 12)};
    int count = 0;
    size_t off = 16;
    while (off < len) {
        if (len - off < 4)
            return -EBADMSG;
        uint32_t n = rd32(data + off);
        off += 4;
        if (n > len - off)
            return -EBADMSG;
        int r = dispatch(data + off, n, inner, depth + 1, from, fn, user);
        if (r < 0)
            return r;
        count += r;
        off += n;
    }
    return count;
}

int osc_dispatch_packet(const void *data, size_t len, const struct osc_peer *from, osc_handler fn,
                        void *user)
{
    /* liblo's deserialiser takes a non-const pointer; give it a private,
     * aligned copy so the caller's bytes are never touched. */
    uint32_t copy[OSC_MAX_PACKET / 4];
    if (len > sizeof(copy))
        return -EBADMSG;
    /* A packet is handled whole or not at all: validate every element of a
     * bundle first, so a malformed element further on cannot leave the
     * elements before it done while the packet is counted as dropped. */
    memcpy(copy, data, len);
    int r = dispatch((unsigned char *)copy, len, LO_TT_IMMEDIATE, 0, from, NULL, NULL);
    if (r < 0 || !fn)
        return r;
    memcpy(copy, data, len);
    return dispatch((unsigned char *)copy, len, LO_TT_IMMEDIATE, 0, from, fn, user);
}

/* Reads and dispatches what socket `i` has queued, at most OSC_BATCH
 * packets. */
static void drain(struct osc_server *s, unsigned i, unsigned char *buf, osc_handler fn, void *user)
{
    for (int k = 0; k < OSC_BATCH; k++) {
        struct osc_peer from = {.len = sizeof(from.addr), .sock = i};
        union {
            char buf[CMSG_SPACE(sizeof(struct timespec))];
            struct cmsghdr align;
        } control;
        struct iovec iov = {.iov_base = buf, .iov_len = OSC_MAX_PACKET + 1};
        struct msghdr mh = {
            .msg_name = &from.addr,
            .msg_namelen = sizeof(from.addr),
            .msg_iov = &iov,
            .msg_iovlen = 1,
            .msg_control = control.buf,
            .msg_controllen = sizeof(control.buf),
        };
        ssize_t n = recvmsg(s->sock[i].fd, &mh, MSG_DONTWAIT | MSG_TRUNC);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                log_warn("recvmsg: %s", strerror(errno));
            return;
        }
        from.len = mh.msg_namelen;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS)
                memcpy(&from.rx, CMSG_DATA(c), sizeof(from.rx));
        if (!osc_allowed(s, &from)) {
            atomic_fetch_add(&s->denied_packets, 1);
            continue;
        }
        if ((size_t)n > OSC_MAX_PACKET) {
            atomic_fetch_add(&s->dropped_packets, 1);
            log_warn("dropped an oversized packet (%zd bytes; at most %d)", n, OSC_MAX_PACKET);
            continue;
        }
        if (osc_dispatch_packet(buf, (size_t)n, &from, fn, user) < 0) {
            atomic_fetch_add(&s->dropped_packets, 1);
            log_warn("dropped a malformed packet (%zd bytes)", n);
        }
    }
}

void osc_run(struct osc_server *s, osc_handler fn, void *user)
{
    unsigned char buf[OSC_MAX_PACKET + 1];
    struct pollfd pfd[OSC_MAX_SOCKETS + 1];
    unsigned n = s->nsock;

    for (unsigned i = 0; i < n; i++)
        pfd[i] = (struct pollfd){.fd = s->sock[i].fd, .events = POLLIN};
    pfd[n] = (struct pollfd){.fd = s->stop_fd, .events = POLLIN};
    for (;;) {
        /* Level-triggered: a socket left with packets queued after its
         * batch makes poll() return at once. */
        if (poll(pfd, n + 1, -1) < 0) {
            if (errno == EINTR)
                continue;
            log_error("poll: %s", strerror(errno));
            return;
        }
        if (pfd[n].revents)
            return;
        for (unsigned i = 0; i < n; i++)
            if (pfd[i].revents & POLLIN)
                drain(s, i, buf, fn, user);
    }
}

int osc_send_message(struct osc_server *s, const struct osc_peer *to, const char *path,
                     lo_message m)
{
    unsigned char buf[1024];
    size_t size = sizeof(buf);

    if (lo_message_length(m, path) > sizeof(buf))
        return -EMSGSIZE;
    if (!lo_message_serialise(m, path, buf, &size))
        return -EINVAL;
    unsigned i = to->sock < s->nsock ? to->sock : 0;
    if (sendto(s->sock[i].fd, buf, size, 0, (const struct sockaddr *)&to->addr, to->len) < 0)
        return -errno;
    return 0;
}

int osc_send_(struct osc_server *s, const struct osc_peer *to, const char *path, const char *types,
              ...)
{
    va_list ap;
    int r = 0;

    lo_message m = lo_message_new();
    if (!m)
        return -ENOMEM;
    va_start(ap, types);
    if (lo_message_add_varargs(m, types, ap) < 0)
        r = -EINVAL;
    va_end(ap);
    if (r == 0)
        r = osc_send_message(s, to, path, m);
    lo_message_free(m);
    return r;
}
