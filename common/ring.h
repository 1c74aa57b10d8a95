/* ring.h - a lock-free single-producer/single-consumer ring of fixed-size
 * elements.
 *
 * One thread pushes, one thread pops; neither ever blocks, allocates or
 * makes a system call, so both ends may run on a real-time thread.
 *
 * Design (after PipeWire's spa/utils/ringbuffer.h):
 *  - capacity is a power of two fixed at init, so an index is reduced with a
 *    mask and the free-running 32-bit counters may wrap freely: head - tail is
 *    the fill level as long as it never exceeds the capacity;
 *  - `head` is written only by the producer, `tail` only by the consumer;
 *    each sits on its own cache line so the two ends do not false-share;
 *  - memory ordering: the producer copies the element in and then publishes
 *    it with a store-release of head; the consumer reads head with a
 *    load-acquire, so it sees the element's bytes.  Symmetrically the
 *    consumer copies the element out and then releases the slot with a
 *    store-release of tail, which the producer reads with load-acquire before
 *    overwriting that slot.  Each side reads its own counter relaxed.
 *
 * Storage is allocated once by ring_init() (never on the audio thread).
 */
#ifndef LOOPERD_RING_H
#define LOOPERD_RING_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RING_CACHE_LINE 64

struct ring {
    alignas(RING_CACHE_LINE) _Atomic uint32_t head; /* written by producer */
    alignas(RING_CACHE_LINE) _Atomic uint32_t tail; /* written by consumer */
    alignas(RING_CACHE_LINE) uint32_t mask;         /* capacity - 1 */
    uint32_t elem_size;
    unsigned char *data;
};

/* Allocates room for `capacity` elements of `elem_size` bytes.  `capacity`
 * must be a power of two between 2 and 2^30.  Returns 0 or -EINVAL/-ENOMEM. */
int ring_init(struct ring *r, uint32_t capacity, uint32_t elem_size);
void ring_destroy(struct ring *r);

/* Smallest power of two >= n (n >= 1, n <= 2^30). */
uint32_t ring_pow2(uint32_t n);

static inline uint32_t ring_capacity(const struct ring *r)
{
    return r->mask + 1;
}

/* Producer side.  Copies `elem` in; returns false (and changes nothing) when
 * the ring is full. */
bool ring_push(struct ring *r, const void *elem);

/* Consumer side.  Copies the oldest element out; returns false when empty. */
bool ring_pop(struct ring *r, void *elem);

/* Elements waiting.  Exact when called by either end about the other end's
 * progress up to the moment of the call; only a hint to third parties. */
uint32_t ring_count(const struct ring *r);

/* Consumer side: how many elements can be popped now, a snapshot.  head is
 * read with a load-acquire, so everything the producer did before it pushed
 * those elements is visible to the caller from here on -- and, by
 * transitivity, everything that happened before that on any other thread,
 * such as a push to another ring that the producer had seen (or been told
 * of) before pushing.  The count only grows until the consumer pops, and
 * popping at most this many applies exactly the snapshot: elements pushed
 * after the call wait for the next one. */
uint32_t ring_readable(const struct ring *r);

#endif
