/* sample_alloc.h - allocating, locking and freeing sample buffers (the
 * layout is common/sample.h's): huge pages where a buffer is big enough,
 * spare mappings kept for reloads, pages locked before publication.  None
 * of it is for the audio thread. */
#ifndef LOOPERD_SAMPLE_ALLOC_H
#define LOOPERD_SAMPLE_ALLOC_H

#include <stddef.h>
#include <stdint.h>

#include "sample.h"

/* Allocates a buffer for `frames` x `channels` (1 or 2) in `format`; the
 * samples are left for the builder to write (not zeroed).  Returns NULL on
 * allocation failure or bad arguments.  Not for the audio thread. */
struct sample_buffer *sample_buffer_new_format(uint32_t frames, uint32_t channels, uint32_t rate,
                                               uint32_t format);

/* Locks the buffer's pages in memory (best effort), so the audio thread
 * never takes a page fault on it.  Call after filling: every frame must have
 * been written (which is what makes each page resident; this does not
 * touch them again). */
void sample_buffer_prefault(struct sample_buffer *b);

/* Frees a buffer; one of a huge page or more may be kept as a spare. */
void sample_buffer_free(struct sample_buffer *b);

/* Spare mappings: freed buffers of a huge page or more are kept,
 * populated and locked, for the next buffers that fit in them, up to
 * `bytes` in all (at most 4 of them).  0, the default, keeps none and
 * gives back any kept.  Thread-safe; not for the audio thread. */
void sample_spares_limit(size_t bytes);

/* Gives back the spares kept for `max_age_ns` or longer (0: all of them);
 * returns the bytes still kept. */
size_t sample_spares_trim(uint64_t max_age_ns);

/* Bytes kept as spares now. */
size_t sample_spares_bytes(void);

#endif
