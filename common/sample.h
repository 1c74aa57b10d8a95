/* sample.h - the immutable sample buffer shared with the audio thread.
 *
 * A buffer is built completely by the loader (decoded, converted to the
 * engine rate, its pages locked and touched), then handed to the audio thread
 * by pointer through a ring.  From then on nobody writes it, so the audio
 * thread reads it without any synchronisation beyond the ring's
 * acquire/release.  The audio thread never frees it: when it lets go of a
 * buffer it sends the pointer back through the return ring, and a
 * non-real-time thread calls sample_buffer_free().
 *
 * Frames are stored planar (all of the left channel, then all of the right)
 * so the mixer reads two contiguous float streams and vectorises.  A mono
 * buffer stores one channel and points both `ch` at it, so the mixer needs no
 * branch on the channel count.
 */
#ifndef LOOPERD_SAMPLE_H
#define LOOPERD_SAMPLE_H

#include <stddef.h>
#include <stdint.h>

#define SAMPLE_MAX_CHANNELS 2

struct sample_buffer {
    uint32_t frames;                      /* frames per channel, > 0 */
    uint32_t channels;                    /* 1 or 2 as stored (mono plays on both outputs) */
    uint32_t rate;                        /* sample rate of the data, the engine rate */
    uint32_t flags;                       /* how it was allocated (sample.c) */
    size_t bytes;                         /* size of the whole allocation, for accounting */
    const float *ch[SAMPLE_MAX_CHANNELS]; /* left, right (== left if mono) */
    float data[];                         /* planar: channels * frames floats */
};

/* Allocates a zero-filled buffer for `frames` x `channels` (1 or 2).  Returns
 * NULL on allocation failure or bad arguments.  Not for the audio thread. */
struct sample_buffer *sample_buffer_new(uint32_t frames, uint32_t channels, uint32_t rate);

/* Writable view of channel `c` while the buffer is still private to its
 * builder (before publication). */
static inline float *sample_buffer_channel(struct sample_buffer *b, uint32_t c)
{
    return b->data + (size_t)c * b->frames;
}

/* Locks the buffer's pages in memory (best effort) and touches each page,
 * so the audio thread never takes a page fault on it.  Call after filling. */
void sample_buffer_prefault(struct sample_buffer *b);

void sample_buffer_free(struct sample_buffer *b);

#endif
