/* protocol.h - the OSC requests: validate, answer errors, hand work on.
 *
 * protocol_handle() runs on the OSC thread for every message received.  It
 * never does slow work itself: a /load goes to the loader's queue, /play,
 * /ping and /stop go to the audio thread's command ring.  Replies that can
 * only be given later (/pong after the audio thread saw the ping, /done
 * /load once the loader has published the sample) carry a reply_ctx, a copy
 * of the sender's address, through the queue or the rings; whoever sends
 * the reply frees it.
 *
 * Every live reply_ctx is counted, and the count is capped at the event
 * ring's capacity; the audio thread emits events only for requests that
 * carry one (none for the loader's internal unloads): this is what makes a
 * full event ring impossible (engine.h), so the audio thread never has to
 * drop an answer.
 *
 * One client must not lock the others out (docs/protocol.md, "Limits"):
 *  - a request due more than PROTOCOL_NEAR_S after it arrived is "future":
 *    future requests hold at most PROTOCOL_FUTURE_MAX places (of the reply
 *    budget and of the schedule) in all, and one source (address and port)
 *    at most PROTOCOL_FUTURE_PER_SOURCE, so what waits for later never
 *    starves what is due now;
 *  - PROTOCOL_STOP_RESERVE places of the reply budget, the schedule and the
 *    command ring are kept for /stop (in any form) due now, so a stop gets
 *    through any flood;
 *  - /quit needs none of them; a /quit with a future timetag is refused.
 * The future places are tracked here, on the OSC thread, by due time: a
 * place is given back when its request is due, whatever became of it.
 */
#ifndef LOOPERD_PROTOCOL_H
#define LOOPERD_PROTOCOL_H

#include <stdatomic.h>
#include <stdint.h>

#include "engine.h"
#include "osc.h"

struct loader;
struct audio;

struct reply_ctx {
    struct osc_peer peer;
    uint64_t unload_seq; /* /unload: its sequence number, for loader_forget() */
};

/* Requests due further ahead than this (s) are "future". */
#define PROTOCOL_NEAR_S 2.0
#define PROTOCOL_FUTURE_MAX 512
#define PROTOCOL_FUTURE_PER_SOURCE 128
#define PROTOCOL_STOP_RESERVE 16
/* A /fail echoes at most this many bytes of the request's address. */
#define PROTOCOL_ECHO_MAX 200

/* Who sent a request: address family, port and address bytes. */
struct protocol_source {
    uint16_t family;
    uint16_t port;
    unsigned char addr[16];
};

struct protocol_future {
    uint64_t due_ns; /* CLOCK_MONOTONIC */
    struct protocol_source from;
};

struct protocol {
    struct engine *engine;
    struct osc_server *osc;
    struct loader *loader;
    struct audio *audio;
    _Atomic uint64_t load_seq; /* orders loads and unloads: newer wins */
    uint32_t max_replies;
    _Atomic uint32_t replies_in_flight;
    _Atomic uint64_t refused; /* requests answered "busy" */
    double latency;           /* --latency, s: plain messages start this long after arrival */
    /* Future requests accepted and not yet due; OSC thread only. */
    struct protocol_future future[PROTOCOL_FUTURE_MAX];
    uint32_t nfuture;
};

void protocol_init(struct protocol *p, struct engine *e, struct osc_server *osc,
                   struct loader *loader, struct audio *audio);

/* Timetags further ahead than this are refused: frame times wrap at 2^32. */
#define PROTOCOL_MAX_AHEAD_S 3600.0

/* An osc_handler: `user` is the struct protocol. */
void protocol_handle(void *user, const char *path, lo_message msg, lo_timetag tt,
                     const struct osc_peer *from);

/* NULL when too many replies are already in flight (the caller answers
 * "busy" right away instead).  Leaves PROTOCOL_STOP_RESERVE for /stop. */
struct reply_ctx *reply_ctx_new(struct protocol *p, const struct osc_peer *peer);
void reply_ctx_free(struct protocol *p, struct reply_ctx *r);

#endif
