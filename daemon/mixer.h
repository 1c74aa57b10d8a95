/* mixer.h - the voice line and the mixer: what a sounding voice is, and
 * how one is mixed into a period's outputs.  Where per-voice playback
 * parameters go.
 *
 * The kernels are private to the mixer: the plain path's (float and 16-bit,
 * constant gain and fade ramp) to mixer.c, the other path's (interpolation,
 * pan, envelope) to mixer_interp.c; mixer_render() is called once per
 * sounding voice per period and chooses among them once per call, so
 * nothing is indirect per frame.
 * mixer_prefetch() is inline: the engine issues it for every voice before
 * rendering any.  Audio thread only; no allocation, no system calls.
 */
#ifndef LOOPERD_MIXER_H
#define LOOPERD_MIXER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "messages.h"
#include "sample.h"

/* One voice, three cache lines.  What a period reads of a voice playing at
 * rate 1 without an envelope (`mode` 0, the plain path) is its samples and
 * the first line, nothing else: the buffer's layout is copied there when
 * the voice starts (src, src1, frames, format, channels), so mixing never
 * goes through the buffer's header.  Why: between two periods the thread
 * sleeps and the caches and TLB go cold, so a period costs about one miss
 * per distinct line it touches (docs/performance.md, "CPU per
 * voice-frame"), and a header on another page would be one more, and one
 * that must come back before the samples' addresses are known.  The second
 * line holds the engine's bookkeeping (slot, buf, started, out: read where
 * a voice starts, fades or ends, and for its outputs) and what only the
 * other path reads (docs/sound.md says what it plays).  The third holds a
 * glide's line (`accelerate`); only a voice whose `mode` has MIX_GLIDE
 * reads it, so every other voice touches the same two lines as before.
 *
 * The plain path: frames [loop_start, frames) of the sample, `pos` the
 * next one, `gain` the gain now, `fade_step` its fall per frame once
 * stopped.  The other path (`mode` != 0: any other rate, a pan, an
 * envelope) counts along the direction of play in a 32.64 fixed-point
 * position u = pos + frac / 2^64 (frames from the first one played,
 * exact: the step is the rate's double to the last bit), over a range of
 * `frames` frames starting at sample frame `loop_start` (forwards) or
 * ending there (MIX_BACKWARDS: `loop_start` is the range's last frame);
 * `gain` and `gain_r` are the left and right gains (level times the pan
 * law), `fade_left` the frames a stop's fade has left and `fade_step` its
 * fall per frame (1 / its length).
 *
 * A glide (MIX_GLIDE): SuperDirt's Line.kr.  Block k (frames [64k, 64k +
 * 64) of the voice) plays at the step of rate r0 + k (r1 - r0) / n while
 * k < n, r1 from block n on, its magnitude held within 1/16..16 (0 keeps
 * the direction); a rate of the other sign reverses the voice there, from
 * the same place.  The
 * mixer renders a gliding voice's period in chunks that end on block
 * boundaries and sets the step between them; once the line ends, the
 * flag goes and the voice is an ordinary one at r1. */
enum mixer_mode {
    MIX_PLAIN = 0,     /* rate 1, no pan, no envelope: the kernels of today */
    MIX_FORWARDS = 1,  /* the other path, forwards */
    MIX_BACKWARDS = 2, /* the other path, backwards */
    MIX_GLIDE = 4,     /* with one of the two above: its rate glides (line 3) */
};

#define MIX_NO_RELEASE UINT64_MAX /* rel_left: no release planned */

struct voice {
    /* ---- line 1: the plain (rate-1) path ---- */
    const void *src;     /* SAMPLE_S16: the interleaved integers; SAMPLE_F32: channel 0 */
    const float *src1;   /* SAMPLE_F32: channel 1 (== src when mono); unused for S16 */
    uint32_t frames;     /* plain: the frame where playing stops; else the range's length */
    uint32_t pos;        /* plain: next frame to play; else u's whole frames */
    float gain;          /* plain: the gain now; else the left gain */
    float fade_step;     /* > 0 once fading: the gain's fall per frame (plain), else 1 / the fade's
                            length */
    uint32_t fade_in;    /* frame of this period at which a requested fade starts */
    uint32_t delay;      /* frames of this period to wait before starting */
    uint32_t loop_start; /* plain: where a loop wraps to; else see above */
    uint8_t format;      /* the buffer's (enum sample_format) */
    uint8_t channels;    /* the buffer's, 1 or 2 */
    bool loop;           /* wraps around at the end instead of ending */
    uint8_t mode;        /* enum mixer_mode */
    uint64_t frac;       /* u's fraction, in 2^-64 frames */
    uint64_t step_frac;  /* the step's fraction, likewise */
    /* ---- line 2: the engine's (engine.c), and the mixer's other path ---- */
    _Alignas(64) uint32_t slot;
    uint32_t out;                    /* output pair */
    const struct sample_buffer *buf; /* NULL when the voice is free */
    uint64_t started;                /* start order, for stealing the oldest */
    float gain_r;                    /* the right gain */
    uint32_t fade_left;              /* once stopped: frames of its fade still to play */
    uint32_t step_int;               /* the step's whole frames, 0..16 */
    uint32_t nframes;                /* the buffer's length (the neighbours' bound) */
    uint32_t attack;                 /* frames of the fade-in, 0: none */
    uint32_t attack_t;               /* frames played, counted up to `attack` */
    uint32_t release;                /* frames of the release's ramp (>= 1 when planned) */
    uint32_t stop_frames;            /* mixer_release_frames() */
    uint64_t rel_left;               /* frames left to play before the release's end,
                                        MIX_NO_RELEASE if none */
    /* ---- line 3: a glide (`accelerate`), read only while MIX_GLIDE is set ---- */
    _Alignas(64) double glide_r0; /* the line's first rate (signed) */
    double glide_dr;              /* its change per block, (r1 - r0) / glide_n */
    double glide_r1;              /* its last rate, from block glide_n on */
    uint32_t glide_k;             /* the block playing, counted from the voice's first frame */
    uint32_t glide_n;             /* the line's blocks (0: none, r1 from the start) */
    uint32_t glide_left;          /* frames of block glide_k still to play, 1..MIX_BLOCK */
};
_Static_assert(sizeof(struct voice) == 192, "a voice is three cache lines");

/* A glide's rate changes once per block of this many frames from the
 * voice's first frame: scsynth's control period (its default block size),
 * where SuperDirt's Line.kr computes the rate. */
#define MIX_BLOCK 64

/* Starts voice v on buffer b at linear gain `level` (velocity times the
 * slot's gain), as `p` says (messages.h; docs/sound.md), `delay` frames
 * into the current period (< nframes of that period); a loop when `loop`.
 * `rate` is the engine's sample rate, for the parameters in seconds, and
 * `declick` the engine's declick fade in frames (>= 1): the release of a
 * `sustain` without a `release`, and the shortest a /stop may take.  Sets
 * the mixer's fields only: the engine sets its own (slot, out, buf,
 * started).  Plays on the plain path, bit for bit as before these keys
 * existed, when rate is 1 and there is no pan, attack, sustain, accelerate
 * and (for a one-shot) release.  `accelerate` glides the rate (see above);
 * with `fit` and `beats` it does nothing. */
void mixer_start(struct voice *v, const struct sample_buffer *b, float level,
                 const struct play_params *p, bool loop, uint32_t delay, uint32_t rate,
                 uint32_t declick);

/* Changes a sounding voice's speed to |rate| (clamped to 1/16..16), in
 * its direction, from the next frame it renders on: a voice on the plain
 * path moves to the other path, where it goes on from the same frame.  A
 * voice already fading keeps its speed; rate 1 leaves a plain voice as it
 * is.  A glide ends there: this rate is the voice's from then on.  For
 * `fit` (engine_time.c), which follows the tempo. */
void mixer_set_rate(struct voice *v, double rate);

/* The frames of b that `p`'s begin and end select (mixer_start's range). */
uint32_t mixer_range_frames(const struct sample_buffer *b, const struct play_params *p);

/* Frames a /stop of v should fade over: its `release`, at least the
 * declick fade given to mixer_start(). */
static inline uint32_t mixer_release_frames(const struct voice *v)
{
    return v->stop_frames;
}

/* True once v has started fading out (mixer_fade_out). */
static inline bool mixer_fading(const struct voice *v)
{
    return v->fade_step > 0;
}

/* Fades v out to silence over `frames` frames (>= 1), starting `delay`
 * frames into the current period.  A voice already fading keeps its own
 * fade.  On the other path the fade multiplies the envelope, so a voice
 * already releasing ends at the sooner of its release's end and the fade's,
 * never louder than either.  Returns false, changing nothing, when v is silent: nothing to fade,
 * the caller ends it. */
bool mixer_fade_out(struct voice *v, uint32_t delay, uint32_t frames);

/* Mixes voice v into out_l[0..nframes) and out_r[0..nframes) (adding to
 * them), from frame v->delay of the period on; v->delay and v->fade_in are
 * < nframes and hold for this period only.  Returns false when the voice
 * is done (its sample ended without loop, or its fade reached zero). */
bool mixer_render(struct voice *v, float *out_l, float *out_r, uint32_t nframes);

/* Asks for this period's sample lines of every sounding voice before any of
 * them is mixed.  Why: between two periods the thread sleeps and the
 * samples are far out of cache, so each voice's first read is a DRAM miss
 * (and, in a VM, often a nested page walk).  Mixed voice after voice, those
 * misses come one at a time, since each voice's loop depends on the one
 * before through the output buffers; issued together up front they overlap,
 * and the period costs about one memory latency instead of one per stream.
 * Only the lines of this period are touched, so nothing useful is evicted:
 * at 64 frames, 4 per channel of a float buffer, 4 in all for a 16-bit
 * stereo one (interleaved: one stream) and 2 for 16-bit mono.  A hint only: it never faults, and a
 * voice wrapping around its loop simply misses on the wrapped part. */
static inline void mixer_prefetch_span(const void *start, size_t bytes)
{
    uintptr_t p = (uintptr_t)start & ~(uintptr_t)63;
    uintptr_t end = (uintptr_t)start + bytes;
    for (; p < end; p += 64)
        __builtin_prefetch((const void *)p, 0, 3);
}

/* The other path's prefetch: the lines of the frames this period reads,
 * clamped to the buffer.  From u = pos + frac, n frames at step s read
 * frames pos - 1 .. floor(u + (n - 1) s) + 2 along the direction of play,
 * at most floor((n - 1) s) + 5 of them; the bound below is that, rounded
 * up, in integers only (the pass over all voices stays short, so the
 * misses on many voices overlap). */
static inline void mixer_prefetch_other(const struct voice *v, uint32_t nframes)
{
    uint64_t n1 = nframes - v->delay - 1;
    uint64_t span = n1 * v->step_int + ((n1 * (v->step_frac >> 32)) >> 32) + 6;
    if (span > 1024)
        span = 1024; /* a hint: the first 1024 frames of a fast voice */
    int64_t lo, hi;  /* sample frames [lo, hi) */
    if (v->mode & MIX_BACKWARDS) {
        hi = (int64_t)v->loop_start - (int64_t)v->pos + 2;
        lo = hi - (int64_t)span;
    } else {
        lo = (int64_t)v->loop_start + (int64_t)v->pos - 1;
        hi = lo + (int64_t)span;
    }
    if (lo < 0)
        lo = 0;
    if (hi > (int64_t)v->nframes)
        hi = v->nframes;
    if (lo >= hi)
        return;
    size_t nf = (size_t)(hi - lo);
    if (v->format == SAMPLE_S16) {
        mixer_prefetch_span((const int16_t *)v->src + (size_t)lo * v->channels,
                            nf * sample_frame_bytes(SAMPLE_S16, v->channels));
        return;
    }
    mixer_prefetch_span((const float *)v->src + lo, nf * sizeof(float));
    if (v->src1 != v->src)
        mixer_prefetch_span(v->src1 + lo, nf * sizeof(float));
}

static inline void mixer_prefetch(const struct voice *v, uint32_t nframes)
{
    if (v->mode != MIX_PLAIN) {
        mixer_prefetch_other(v, nframes);
        return;
    }
    uint32_t n = v->frames - v->pos;
    if (n > nframes - v->delay)
        n = nframes - v->delay;
    if (v->format == SAMPLE_S16) {
        /* One interleaved stream, mono or stereo. */
        mixer_prefetch_span((const int16_t *)v->src + (size_t)v->pos * v->channels,
                            (size_t)n * sample_frame_bytes(SAMPLE_S16, v->channels));
        return;
    }
    mixer_prefetch_span((const float *)v->src + v->pos, (size_t)n * sizeof(float));
    if (v->src1 != v->src) /* mono: one channel read twice */
        mixer_prefetch_span(v->src1 + v->pos, (size_t)n * sizeof(float));
}

#endif
