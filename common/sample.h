/* sample.h - the immutable sample buffer shared with the audio thread.
 *
 * A buffer is built completely by the loader (decoded, converted to the
 * engine rate, its pages locked and touched), then handed to the audio thread
 * by pointer through a ring.  From then on nobody writes it, so the audio
 * thread reads it without any synchronisation beyond the ring's
 * acquire/release.  The audio thread never frees it: when it lets go of a
 * buffer it sends the pointer back through the return ring, and a
 * non-real-time thread calls sample_buffer_free().  This header is the
 * layout, shared with the tests and benchmarks; how buffers are allocated,
 * locked and freed is daemon/sample_alloc.h's.
 *
 * Two storage formats, chosen by the loader (decode.c):
 *  - SAMPLE_F32: 32-bit floats, planar (all of the left channel, then all of
 *    the right), so the mixer reads two contiguous float streams and
 *    vectorises.  A mono buffer stores one channel and points both `ch` at
 *    it, so the mixer needs no branch on the channel count.  Everything that
 *    is not 16-bit PCM at the engine rate: converted files, 24-bit, float.
 *  - SAMPLE_S16: the file's own 16-bit integers, interleaved (L R L R ...;
 *    mono: one channel), standing for x / 32768.  16-bit PCM at the engine
 *    rate, the common case, is stored like this: half the bytes of floats,
 *    and one stream per stereo voice instead of two.  Under JACK the mixer runs a
 *    short period after a sleep, with every voice's samples out of cache, so
 *    what a period costs follows the cache lines and the streams it starts
 *    (docs/performance.md, "CPU per voice-frame").  The mixer converts as
 *    it reads, exactly: what it plays is bit for bit what the float buffer
 *    of the same file would play (daemon/mixer.c, "16-bit sources").
 */
#ifndef LOOPERD_SAMPLE_H
#define LOOPERD_SAMPLE_H

#include <stddef.h>
#include <stdint.h>

#define SAMPLE_MAX_CHANNELS 2

enum sample_format {
    SAMPLE_F32 = 0, /* float, planar: ch[0], ch[1] */
    SAMPLE_S16 = 1, /* int16, interleaved: s16, value x / 32768 */
};

struct sample_buffer {
    uint32_t frames;   /* frames per channel, > 0 */
    uint32_t channels; /* 1 or 2 as stored (mono plays on both outputs) */
    uint32_t rate;     /* sample rate of the data, the engine rate */
    uint32_t flags;    /* how it was allocated (daemon/sample_alloc.c) */
    uint32_t format;   /* enum sample_format */
    size_t bytes;      /* size of the whole allocation, for accounting */
    /* SAMPLE_F32: left, right (== left if mono); NULL for SAMPLE_S16. */
    const float *ch[SAMPLE_MAX_CHANNELS];
    /* SAMPLE_S16: frames x channels integers, interleaved; NULL for F32. */
    const int16_t *s16;
    /* The samples: channels * frames floats (F32) or int16s (S16).  They
     * start on a cache line: a period of 64 16-bit stereo frames that
     * starts on a multiple of 64 (any voice started on a period boundary)
     * then covers 4 lines, not 5 (mixer.h, mixer_prefetch). */
    _Alignas(64) float data[];
};

/* Bytes of one stored frame (all its channels) in `format`. */
static inline size_t sample_frame_bytes(uint32_t format, uint32_t channels)
{
    return (size_t)channels * (format == SAMPLE_S16 ? sizeof(int16_t) : sizeof(float));
}

/* Writable view of channel `c` of a SAMPLE_F32 buffer while it is still
 * private to its builder (before publication). */
static inline float *sample_buffer_channel(struct sample_buffer *b, uint32_t c)
{
    return b->data + (size_t)c * b->frames;
}

/* Writable view of a SAMPLE_S16 buffer's interleaved integers, likewise. */
static inline int16_t *sample_buffer_s16(struct sample_buffer *b)
{
    return (int16_t *)(void *)b->data;
}

#endif
