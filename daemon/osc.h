/* osc.h - the OSC/UDP sockets: receive, unpack bundles, send replies.
 *
 * We own the socket instead of letting liblo open it, because liblo 0.31
 * always binds every interface and we listen on loopback unless told
 * otherwise.  liblo still does the OSC work: lo_message_deserialise() checks
 * and unpacks each message and lo_message_serialise() builds the replies.
 * Bundles are unpacked here (they are a trivial container), which keeps the
 * timetag of each message in our hands and never queues anything: liblo's
 * own queue dispatched future bundles early and with the wrong sender.
 *
 * One server, up to OSC_MAX_SOCKETS sockets (--port, and --dirt-port for
 * TidalCycles and Strudel): osc_open() binds the first, osc_add() more.
 * They are the same service: one OSC thread polls them all, one --allow
 * list and one pair of drop counters cover them all, and every message goes
 * to the same handler whichever socket it came in on.  The handler learns
 * which (osc_peer.sock), and a reply to that peer leaves from that same
 * socket: a client that sends from a bound port and checks where answers
 * come from (SuperDirt's handshake, a Tidal or Strudel peer) sees them come
 * from the port it sent to.  Under a flood on one socket the others are
 * still served: osc_run() reads at most OSC_BATCH packets from a socket
 * before it polls all of them again.
 *
 * Threads: osc_run() is the OSC thread's loop.  osc_send() may be called
 * from any thread (it is one sendto() on a socket that lives as long as the
 * server).
 */
#ifndef LOOPERD_OSC_H
#define LOOPERD_OSC_H

#include <lo/lo.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

/* Largest datagram we accept; anything larger is dropped and counted. */
#define OSC_MAX_PACKET 8192
/* Nesting limit for bundles inside bundles. */
#define OSC_MAX_BUNDLE_DEPTH 8
/* Sockets one server serves: --port and --dirt-port. */
#define OSC_MAX_SOCKETS 2
/* Packets read from one socket before every socket is polled again. */
#define OSC_BATCH 64

struct osc_peer {
    struct sockaddr_storage addr;
    socklen_t len;
    /* Wall-clock time the kernel received the packet (SO_TIMESTAMPNS), so
     * --latency counts from arrival, not from when the OSC thread got to
     * run; zero when unknown. */
    struct timespec rx;
    /* The server's socket it came in on (osc_open's is 0, osc_add's 1...);
     * replies to it leave from that socket.  Zero, the first socket, for a
     * peer made by hand. */
    unsigned sock;
};

/* Called once per message found in a packet.  `tt` is the enclosing bundle's
 * timetag, or LO_TT_IMMEDIATE for a bare message. */
typedef void (*osc_handler)(void *user, const char *path, lo_message msg, lo_timetag tt,
                            const struct osc_peer *from);

#define OSC_MAX_ALLOW 16

/* One --allow CIDR: an address family, network bytes and prefix length. */
struct osc_allow {
    int family;
    unsigned char net[16];
    unsigned prefix;
};

/* One bound socket. */
struct osc_socket {
    int fd;
    uint16_t port;      /* as bound (port "0" asks for any free one) */
    char addr_text[64]; /* "127.0.0.1:9000", "[::1]:57120" */
};

struct osc_server {
    struct osc_socket sock[OSC_MAX_SOCKETS];
    unsigned nsock;
    int stop_fd; /* eventfd that wakes osc_run() for shutdown */
    struct osc_allow allow[OSC_MAX_ALLOW];
    unsigned nallow;                  /* 0: every source is served */
    _Atomic uint64_t dropped_packets; /* oversized or malformed */
    _Atomic uint64_t denied_packets;  /* from sources --allow does not cover */
};

/* Parses "ADDR[/PREFIX]" (IPv4 or IPv6) into *a.  Returns 0 or -EINVAL. */
int osc_parse_allow(const char *text, struct osc_allow *a);
/* True when `from` is covered by one of the server's --allow entries, or no
 * entry was given.  An IPv4-mapped IPv6 source (::ffff:a.b.c.d, an IPv4
 * client of a dual-stack socket) matches IPv4 entries by its IPv4 address,
 * and IPv6 entries as it is. */
bool osc_allowed(const struct osc_server *s, const struct osc_peer *from);

/* Makes the server with its first socket (index 0), bound to `listen_addr`
 * (numeric IPv4 or IPv6) port `port` ("0": any free port); "::" is
 * dual-stack (IPv4 too), other IPv6 addresses IPv6 only.  Returns 0 or a
 * negative errno, with a reason in err. */
int osc_open(struct osc_server *s, const char *listen_addr, const char *port, char *err,
             size_t errlen);
/* One more socket, bound as osc_open() binds, before osc_run() starts.
 * Returns its index (osc_peer.sock of what comes in on it) or a negative
 * errno (-EADDRINUSE: the port is taken), with a reason in err; the server
 * and its other sockets are unchanged then. */
int osc_add(struct osc_server *s, const char *listen_addr, const char *port, char *err,
            size_t errlen);
/* Closes every socket. */
void osc_close(struct osc_server *s);

/* Receives and dispatches until osc_stop(). */
void osc_run(struct osc_server *s, osc_handler fn, void *user);
void osc_stop(struct osc_server *s);

/* Unpacks one datagram (message or bundle) and calls fn for each message.
 * Returns the number of messages dispatched, or -EBADMSG when the packet (or
 * any part of it) is malformed: a packet is handled whole or not at all.
 * `fn` NULL only validates.  Pure: no socket involved, so fuzzers call it
 * directly. */
int osc_dispatch_packet(const void *data, size_t len, const struct osc_peer *from, osc_handler fn,
                        void *user);

/* Sends a message built by the caller (who still owns and frees it), from
 * the socket `to` came in on: 0 or a negative errno. */
int osc_send_message(struct osc_server *s, const struct osc_peer *to, const char *path,
                     lo_message m);
/* Sends one message to `to` from the socket it came in on:
 * osc_send(s, to, "/done", "si", "/load", 3).  The macro appends liblo's
 * end-of-arguments marker.  Returns 0 or a negative errno. */
#define osc_send(s, to, path, ...) osc_send_((s), (to), (path), __VA_ARGS__, LO_ARGS_END)
int osc_send_(struct osc_server *s, const struct osc_peer *to, const char *path, const char *types,
              ...);

#endif
