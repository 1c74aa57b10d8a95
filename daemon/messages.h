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

#include <stdbool.h>
#include <stdint.h>

#include "midi.h"
#include "sample.h"

struct reply_ctx; /* defined by the control side; opaque here */

/* How one voice plays (CTL_PLAY, CTL_LOOP): the trigger's keys over its
 * slot's defaults, already checked and merged by the control side
 * (docs/protocol.md gives each key's meaning and range).  Only the keys
 * whose bit is set in `keys` were given; every other one has its default
 * (play_*() below), so a zeroed struct plays as a plain /play.  The audio
 * thread turns these into frames and gains when the voice starts. */
enum play_key {
    PLAY_RATE = 1u << 0,        /* playback speed; < 0 backwards; 1/16 <= |rate| <= 16 */
    PLAY_BEGIN = 1u << 1,       /* fraction of the length where playing starts, [0, 1) */
    PLAY_END = 1u << 2,         /* fraction where it stops, (begin, 1]; default 1 */
    PLAY_PAN = 1u << 3,         /* -1 left .. 1 right, equal power; default 0 */
    PLAY_GAIN = 1u << 4,        /* linear, 0..4, on top of velocity; default 1 */
    PLAY_ATTACK = 1u << 5,      /* seconds of linear fade-in, 0..60 */
    PLAY_RELEASE = 1u << 6,     /* seconds of linear fade-out at the end, 0..60 */
    PLAY_SUSTAIN = 1u << 7,     /* seconds from the first frame to the release */
    PLAY_CUT = 1u << 8,         /* cut group; > 0 any slot's, < 0 this slot's */
    PLAY_OUT = 1u << 9,         /* output pair, 0-based */
    PLAY_QUANT = 1u << 10,      /* launch grid in beats, 0 = now (beat.h); also /stop's */
    PLAY_BEATS = 1u << 11,      /* /loop: restart every `beats` beats from its start */
    PLAY_FIT = 1u << 12,        /* with beats: the rate makes the range span them */
    PLAY_ACCELERATE = 1u << 13, /* the rate glides to rate x (1 + accelerate), -256..256 */
};

struct play_params {
    uint32_t keys; /* enum play_key bits: which fields below were given */
    int32_t cut;
    uint32_t out;
    float begin, end, pan, gain;
    float attack, release, sustain;
    double rate;
    double quant, beats;
    uint32_t fit; /* 0 or 1 */
    /* Not a key: how long the glide of `accelerate` lasts, in seconds, when
     * > 0 (/dirt/play: SuperDirt's sustain); 0: the mixer's own rule (the
     * voice's sustain, else its range at the glide's average rate). */
    float glide;
    double accelerate;
};

static inline double play_rate(const struct play_params *p)
{
    return p->keys & PLAY_RATE ? p->rate : 1.0;
}
static inline float play_begin(const struct play_params *p)
{
    return p->keys & PLAY_BEGIN ? p->begin : 0.0f;
}
static inline float play_end(const struct play_params *p)
{
    return p->keys & PLAY_END ? p->end : 1.0f;
}
static inline float play_pan(const struct play_params *p)
{
    return p->keys & PLAY_PAN ? p->pan : 0.0f;
}
static inline float play_gain(const struct play_params *p)
{
    return p->keys & PLAY_GAIN ? p->gain : 1.0f;
}
static inline float play_attack(const struct play_params *p)
{
    return p->keys & PLAY_ATTACK ? p->attack : 0.0f;
}
static inline float play_release(const struct play_params *p)
{
    return p->keys & PLAY_RELEASE ? p->release : 0.0f;
}
/* < 0: no sustain (the voice plays to its end, or loops until stopped). */
static inline float play_sustain(const struct play_params *p)
{
    return p->keys & PLAY_SUSTAIN ? p->sustain : -1.0f;
}
static inline int32_t play_cut(const struct play_params *p)
{
    return p->keys & PLAY_CUT ? p->cut : 0;
}
static inline uint32_t play_out(const struct play_params *p)
{
    return p->keys & PLAY_OUT ? p->out : 0;
}

static inline double play_quant(const struct play_params *p)
{
    return p->keys & PLAY_QUANT ? p->quant : 0.0;
}
/* 0: none (the loop wraps at the sample's end as always). */
static inline double play_beats(const struct play_params *p)
{
    return p->keys & PLAY_BEATS ? p->beats : 0.0;
}
static inline bool play_fit(const struct play_params *p)
{
    return (p->keys & PLAY_FIT) && p->fit;
}
/* 0: none (the rate is fixed). */
static inline double play_accelerate(const struct play_params *p)
{
    return p->keys & PLAY_ACCELERATE ? p->accelerate : 0.0;
}

enum ctl_type {
    CTL_PING = 1,  /* answer with EV_PONG */
    CTL_STOP,      /* fade out every voice, answer with EV_STOPPED */
    CTL_LOAD,      /* publish `buf` into slot `id` unless `seq` is stale;
                      unanswered (the loader sent /done when it pushed it) */
    CTL_PLAY,      /* start a one-shot voice of slot `id` at `velocity` */
    CTL_LOOP,      /* (re)start the looping voice of slot `id` */
    CTL_STOP_SLOT, /* fade out the voices of slot `id` */
    CTL_UNLOAD,    /* fade out slot `id`'s voices and empty it; EV_UNLOADED */
    CTL_TEMPO,     /* the own timeline's tempo becomes `beat` (BPM) */
    CTL_QUANTUM,   /* the own timeline's quantum becomes `beat` (beats) */
};

/* ctl_msg.flags */
#define CTL_TIMED 1u   /* apply at JACK time `when`, not at the next period */
#define CTL_ON_GRID 2u /* audio side only: its launch point `beat` is found */

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
    struct play_params play;   /* CTL_PLAY, CTL_LOOP; CTL_STOP, CTL_STOP_SLOT: quant */
    double beat;               /* CTL_TEMPO, CTL_QUANTUM: the value; a quantized
                                  request waiting on the audio side: its launch point */
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

/* A slot's defaults as the audio thread needs them to start a voice from
 * MIDI: its keys, over which a note-on's velocity goes (engine_pad_send).
 * The control side sends one whenever a slot's defaults change. */
struct pad_msg {
    uint32_t id;
    struct play_params play;
    struct midi_keys midi;
};

#endif
