/* sample_check.h - the tests' reading and making of sample buffers
 * (common/sample.h): a float buffer in one call, and any buffer's value as
 * the mixer plays it.  Production builds its buffers through the decoder
 * and the mixer reads the streams itself, so neither is in the daemon. */
#ifndef LOOPERD_TEST_SAMPLE_CHECK_H
#define LOOPERD_TEST_SAMPLE_CHECK_H

#include <stdint.h>

#include "sample_alloc.h"

/* A SAMPLE_F32 buffer (sample_buffer_new_format). */
static inline struct sample_buffer *sample_buffer_new(uint32_t frames, uint32_t channels,
                                                      uint32_t rate)
{
    return sample_buffer_new_format(frames, channels, rate, SAMPLE_F32);
}

/* The value of frame `i` of channel `c` (for a mono buffer, either `c` is
 * its one channel) as the mixer plays it at gain 1, in either format. */
static inline float sample_buffer_value(const struct sample_buffer *b, uint32_t c, uint32_t i)
{
    if (c >= b->channels)
        c = 0;
    if (b->format == SAMPLE_S16)
        return (float)b->s16[(size_t)i * b->channels + c] * 0x1p-15f;
    return b->ch[c][i];
}

#endif
