/* mixer.h - the voice line and the mixer: what a sounding voice is, and
 * how one is mixed into a period's outputs.  Where per-voice playback
 * parameters go.
 *
 * The kernels (float and 16-bit, constant gain and fade ramp) are private
 * to mixer.c; mixer_render() is called once per sounding voice per period
 * and chooses among them once per call, so nothing is indirect per frame.
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

/* One voice, two cache lines.  What a period reads of a voice playing at
 * rate 1 without an envelope is its samples and the first line, nothing
 * else: the buffer's layout is copied there when the voice starts (src,
 * src1, frames, format, channels), so mixing never goes through the
 * buffer's header.  Why: between two periods the thread sleeps and the
 * caches and TLB go cold, so a period costs about one miss per distinct
 * line it touches (docs/performance.md, "CPU per voice-frame"), and a
 * header on another page would be one more, and one that must come back
 * before the samples' addresses are known.  The second line holds the
 * engine's bookkeeping (slot, buf, started, out: read where a voice
 * starts, fades or ends, and for its outputs) and what only the other
 * playback paths read. */
struct voice {
    /* ---- line 1: the rate-1 path ---- */
    const void *src;   /* SAMPLE_S16: the interleaved integers; SAMPLE_F32: channel 0 */
    const float *src1; /* SAMPLE_F32: channel 1 (== src when mono); unused for S16 */
    uint32_t frames;   /* the buffer's */
    uint32_t pos;      /* next frame to play */
    float gain;
    float fade_step;  /* > 0 while fading out: subtracted from gain per frame */
    uint32_t fade_in; /* frame of this period at which a requested fade starts */
    uint32_t delay;   /* frames of this period to wait before starting */
    uint8_t format;   /* the buffer's (enum sample_format) */
    uint8_t channels; /* the buffer's, 1 or 2 */
    bool loop;        /* wraps to frame 0 at the end instead of ending */
    /* ---- line 2: the engine's (engine.c), and the mixer's other paths ---- */
    _Alignas(64) uint32_t slot;
    uint32_t out;                    /* output pair */
    const struct sample_buffer *buf; /* NULL when the voice is free */
    uint64_t started;                /* start order, for stealing the oldest */
};
_Static_assert(sizeof(struct voice) == 128, "a voice is two cache lines");

/* Starts voice v on buffer b at linear gain `level` (velocity times the
 * slot's gain), as `p` says (messages.h), `delay` frames into the current
 * period (< nframes of that period); a loop when `loop`.  `rate` is the
 * engine's sample rate, for the parameters in seconds.  Sets the mixer's
 * fields only: the engine sets its own (slot, out, buf, started). */
void mixer_start(struct voice *v, const struct sample_buffer *b, float level,
                 const struct play_params *p, bool loop, uint32_t delay, uint32_t rate);

/* True once v has started fading out (mixer_fade_out). */
static inline bool mixer_fading(const struct voice *v)
{
    return v->fade_step > 0;
}

/* Fades v out to silence over `frames` frames (>= 1), starting `delay`
 * frames into the current period.  A voice already fading keeps its own
 * fade.  Returns false, changing nothing, when v is silent: nothing to fade,
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

static inline void mixer_prefetch(const struct voice *v, uint32_t nframes)
{
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
