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
};

void protocol_init(struct protocol *p, struct engine *e, struct osc_server *osc,
                   struct loader *loader, struct audio *audio);

/* Timetags further ahead than this are refused: frame times wrap at 2^32. */
#define PROTOCOL_MAX_AHEAD_S 3600.0

/* An osc_handler: `user` is the struct protocol. */
void protocol_handle(void *user, const char *path, lo_message msg, lo_timetag tt,
                     const struct osc_peer *from);

/* NULL when too many replies are already in flight (the caller answers
 * "busy" right away instead). */
struct reply_ctx *reply_ctx_new(struct protocol *p, const struct osc_peer *peer);
void reply_ctx_free(struct protocol *p, struct reply_ctx *r);

#endif
