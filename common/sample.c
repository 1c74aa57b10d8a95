/* sample.c - allocation of the immutable sample buffers (see sample.h). */
#include "sample.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct sample_buffer *sample_buffer_new(uint32_t frames, uint32_t channels, uint32_t rate)
{
    if (frames == 0 || channels < 1 || channels > SAMPLE_MAX_CHANNELS)
        return NULL;
    size_t floats = (size_t)frames * channels;
    if (floats > (SIZE_MAX - sizeof(struct sample_buffer)) / sizeof(float))
        return NULL;
    size_t bytes = sizeof(struct sample_buffer) + floats * sizeof(float);
    /* 64-byte alignment keeps the start of each channel friendly to SIMD
     * loads; calloc-like zeroing is left to the decoder, which writes every
     * frame anyway. */
    size_t rounded = (bytes + 63) & ~(size_t)63;
    struct sample_buffer *b = aligned_alloc(64, rounded);
    if (!b)
        return NULL;
    memset(b, 0, sizeof(*b));
    b->frames = frames;
    b->channels = channels;
    b->rate = rate;
    b->bytes = rounded;
    b->ch[0] = b->data;
    b->ch[1] = channels == 2 ? b->data + frames : b->data;
    return b;
}

void sample_buffer_prefault(struct sample_buffer *b)
{
    /* mlock fails without CAP_IPC_LOCK or enough RLIMIT_MEMLOCK; touching
     * every page still makes it resident, which is what matters most. */
    (void)mlock(b, b->bytes);
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0)
        page = 4096;
    volatile const unsigned char *p = (volatile const unsigned char *)b;
    unsigned char sink = 0;
    for (size_t off = 0; off < b->bytes; off += (size_t)page)
        sink ^= p[off];
    (void)sink;
}

void sample_buffer_free(struct sample_buffer *b)
{
    if (!b)
        return;
    (void)munlock(b, b->bytes);
    free(b);
}
