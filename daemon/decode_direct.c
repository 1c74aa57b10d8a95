/* decode_direct.c - the same-rate strategy (decode_direct.h). */
#include "decode_direct.h"
#include "decode_core.h"

#include <stdint.h>

/* Same rate: the decoded samples go into the buffer unchanged.  16-bit PCM
 * is read as the file's integers straight into the buffer, interleaved as
 * the mixer reads them (SAMPLE_S16); anything else as floats. */
int decode_direct(struct decoder *d)
{
    for (;;) {
        int r;
        if (!d->known && (r = decode_reserve(d, (uint64_t)d->filled + DECODE_BLOCK)) < 0)
            return r;
        uint64_t room = d->buf->frames - d->filled;
        if (room == 0)
            return d->known ? 0 : decode_drain(d); /* known: all the frames reported */
        uint64_t want = room < DECODE_BLOCK ? room : DECODE_BLOCK;
        if (d->format == SAMPLE_S16) {
            int16_t *dst = sample_buffer_s16(d->buf) + (size_t)d->filled * d->channels;
            int64_t got = decode_read_frames(d, dst, want, true);
            if (got <= 0)
                return (int)got;
            d->filled += (uint32_t)got;
        } else if (d->channels == 1) {
            /* Mono: libsndfile writes straight into the buffer. */
            int64_t got = decode_read_block(d, sample_buffer_channel(d->buf, 0) + d->filled, want);
            if (got <= 0)
                return (int)got;
            d->filled += (uint32_t)got;
        } else {
            /* Stereo: read interleaved, deinterleave into the buffer. */
            int64_t got = decode_read_block(d, d->scratch, want < d->block ? want : d->block);
            if (got <= 0)
                return (int)got;
            float *l = sample_buffer_channel(d->buf, 0) + d->filled;
            float *rr = sample_buffer_channel(d->buf, 1) + d->filled;
            const float *in = d->scratch;
            for (int64_t i = 0; i < got; i++) {
                l[i] = in[2 * i];
                rr[i] = in[2 * i + 1];
            }
            d->filled += (uint32_t)got;
        }
    }
}
