/* protocol.h - the OSC requests: validate, answer errors, hand work on.
 *
 * protocol_handle() runs on the OSC thread for every message received.  It
 * never does slow work itself: a /load goes to the loader's queue, /play,
 * /ping and /stop go to the audio thread's command ring; /set and /get read
 * and write the slots' defaults (params.h), which a trigger's keys are
 * merged over before it goes to the ring.  Replies that can
 * only be given later carry a reply_ctx through the queue or the rings;
 * whoever sends the reply frees it (replies.h owns the contexts, their
 * budget and every reply format).  Owns the requests' validation, their
 * order (load_seq), the "refused" count and the limits below.
 *
 * One client must not lock the others out (docs/protocol.md, "Limits"):
 *  - a request due more than PROTOCOL_NEAR_S after it arrived is "future":
 *    future requests hold at most PROTOCOL_FUTURE_MAX places (of the reply
 *    budget and of the schedule) in all, and one source (address and port)
 *    at most PROTOCOL_FUTURE_PER_SOURCE, so what waits for later never
 *    starves what is due now (the schedule has 4096 places for requests
 *    other than /stop: at least 3584 are left for those due within
 *    PROTOCOL_NEAR_S);
 *  - past the schedule's places a timed request is refused, "busy:
 *    schedule full", counted in `refused`; one nobody reads the answer of
 *    (/dirt/play) is counted and logged, rate-limited;
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
#include "replies.h"

struct loader;
struct audio;
struct pads;
struct dirt;
struct library;
struct link_clock;

/* Requests due further ahead than this (s) are "future". */
#define PROTOCOL_NEAR_S 2.0
#define PROTOCOL_FUTURE_MAX 512
#define PROTOCOL_FUTURE_PER_SOURCE 128
/* The reply budget's reserve (replies.h) is the one for the schedule and
 * the command ring too. */
#define PROTOCOL_STOP_RESERVE REPLY_STOP_RESERVE

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
    struct replies *replies;
    struct loader *loader;
    struct audio *audio;
    struct pads *pads;         /* each slot's defaults (/set, /get, the bank) */
    uint32_t outputs;          /* output pairs (--outputs): `out` must be below */
    _Atomic uint64_t load_seq; /* orders loads, unloads and /set: newer wins */
    _Atomic uint64_t refused;  /* requests answered "busy" */
    double latency;            /* --latency, s: plain messages start this long after arrival */
    uint32_t numbered;         /* the numbered slots (--slots): ids below it */
    struct library *library;   /* --library, or NULL */
    struct dirt *dirt;         /* /dirt/play's translation, or NULL */
    double quant;              /* --quant: triggers' launch grid without a quant key */
    /* Future requests accepted and not yet due; OSC thread only. */
    struct protocol_future future[PROTOCOL_FUTURE_MAX];
    uint32_t nfuture;
    /* Ableton Link (/link); main sets it, NULL: /link answers /fail. */
    struct link_clock *link;
};

/* `outputs` starts at 1; main sets it from --outputs. */
void protocol_init(struct protocol *p, struct engine *e, struct osc_server *osc,
                   struct replies *replies, struct loader *loader, struct audio *audio,
                   struct pads *pads);

/* Timetags further ahead than this are refused: frame times wrap at 2^32. */
#define PROTOCOL_MAX_AHEAD_S 3600.0

/* An osc_handler: `user` is the struct protocol. */
void protocol_handle(void *user, const char *path, lo_message msg, lo_timetag tt,
                     const struct osc_peer *from);

#endif
