/* messages.h - the fixed-size messages between the engine and the other
 * threads (engine.h's doors).
 *
 * Every message is a small plain struct copied by value.  Nothing in them
 * is owned by the audio thread except a sample buffer handed over by
 * CTL_LOAD; the engine gives buffers back through engine_take_trash().
 *
 * `reply` is an opaque token owned by the control side (who asked, where to
 * answer).  The audio thread never dereferences it: it copies it from the
 * request into the matching event, which is how a /pong finds its way back
 * to the sender after a round trip through the audio thread.
 */
#ifndef LOOPERD_MESSAGES_H
#define LOOPERD_MESSAGES_H

#include <stdint.h>

#include "sample.h"

struct reply_ctx; /* defined by the control side; opaque here */

enum ctl_type {
    CTL_PING = 1,  /* answer with EV_PONG */
    CTL_STOP,      /* fade out every voice, answer with EV_STOPPED */
    CTL_LOAD,      /* publish `buf` into slot `id` unless `seq` is stale;
                      unanswered (the loader sent /done when it pushed it) */
    CTL_PLAY,      /* start a one-shot voice of slot `id` at `velocity` */
    CTL_LOOP,      /* (re)start the looping voice of slot `id` */
    CTL_STOP_SLOT, /* fade out the voices of slot `id` */
    CTL_UNLOAD,    /* fade out slot `id`'s voices and empty it; EV_UNLOADED */
};

/* ctl_msg.flags */
#define CTL_TIMED 1u /* apply at JACK time `when`, not at the next period */

struct ctl_msg {
    uint32_t type;             /* enum ctl_type */
    uint32_t id;               /* slot */
    float velocity;            /* linear gain, already clamped to [0, 1];
                                  CTL_LOAD: the slot's gain */
    uint32_t flags;            /* CTL_TIMED */
    uint64_t when;             /* CTL_TIMED: JACK time (jack_get_time(), us) */
    uint64_t seq;              /* CTL_LOAD, CTL_UNLOAD: request order, newer wins */
    uint64_t arrived;          /* untimed CTL_PLAY, CTL_LOOP: JACK time (us) the
                                  request arrived, 0 unknown; see ENGINE_STALE_US */
    struct sample_buffer *buf; /* CTL_LOAD: ownership moves to the audio side */
    struct reply_ctx *reply;   /* echoed in the event; may be NULL */
};

enum ev_type {
    EV_PONG = 1, /* reply to CTL_PING */
    EV_STOPPED,  /* reply to CTL_STOP */
    EV_UNLOADED, /* reply to CTL_UNLOAD */
};

struct event {
    uint32_t type; /* enum ev_type */
    uint32_t id;
    struct reply_ctx *reply;
};

#endif
