/* ring.c - see ring.h for the design and the memory-ordering argument. */
#include "ring.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

uint32_t ring_pow2(uint32_t n)
{
    uint32_t p = 1;
    while (p < n)
        p <<= 1;
    return p;
}

int ring_init(struct ring *r, uint32_t capacity, uint32_t elem_size)
{
    if (capacity < 2 || capacity > (1u << 30) || (capacity & (capacity - 1)) || elem_size == 0)
        return -EINVAL;
    memset(r, 0, sizeof(*r));
    /* Cache-line aligned so element copies do not straddle the counters'
     * lines; zeroed so the pages are touched now, not on the audio thread. */
    size_t bytes = (size_t)capacity * elem_size;
    bytes = (bytes + RING_CACHE_LINE - 1) / RING_CACHE_LINE * RING_CACHE_LINE;
    r->data = aligned_alloc(RING_CACHE_LINE, bytes);
    if (!r->data)
        return -ENOMEM;
    memset(r->data, 0, bytes);
    r->mask = capacity - 1;
    r->elem_size = elem_size;
    atomic_init(&r->head, 0);
    atomic_init(&r->tail, 0);
    return 0;
}

void ring_destroy(struct ring *r)
{
    free(r->data);
    r->data = NULL;
}

bool ring_push(struct ring *r, const void *elem)
{
    uint32_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    uint32_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
    if (head - tail > r->mask)
        return false;
    memcpy(r->data + (size_t)(head & r->mask) * r->elem_size, elem, r->elem_size);
    atomic_store_explicit(&r->head, head + 1, memory_order_release);
    return true;
}

bool ring_pop(struct ring *r, void *elem)
{
    uint32_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    uint32_t head = atomic_load_explicit(&r->head, memory_order_acquire);
    if (head == tail)
        return false;
    memcpy(elem, r->data + (size_t)(tail & r->mask) * r->elem_size, r->elem_size);
    atomic_store_explicit(&r->tail, tail + 1, memory_order_release);
    return true;
}

uint32_t ring_readable(const struct ring *r)
{
    /* tail is the caller's own counter: relaxed.  head: acquire, pairing
     * with the producer's store-release in ring_push(). */
    uint32_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    uint32_t head = atomic_load_explicit(&r->head, memory_order_acquire);
    return head - tail;
}

uint32_t ring_count(const struct ring *r)
{
    uint32_t head = atomic_load_explicit(&r->head, memory_order_acquire);
    uint32_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
    return head - tail;
}
