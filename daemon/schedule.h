/* schedule.h - the time-ordered schedule: timed requests waiting on the
 * audio side for their period (or, by_beat, their launch point), earliest first, and in arrival
 * order among requests for the same time (the requests of one bundle keep their order).
 *
 * A fixed-capacity binary heap of small keys (16 bytes: the time, the
 * arrival order, where the request is), the requests themselves in a pool
 * beside it, so that a push or a pop moves O(log n) keys and copies one
 * request.  It has no room check of its own:
 * its owner never pushes more than the capacity it was made with (the
 * engine counts places before a request is sent, engine.h).  Only the
 * audio thread uses it, or another thread while no audio thread runs.
 */
#ifndef LOOPERD_SCHEDULE_H
#define LOOPERD_SCHEDULE_H

#include <stdbool.h>
#include <stdint.h>

#include "messages.h"

struct sched_key {
    uint64_t key;   /* m.when, or for by_beat m.beat's bits in an order-preserving form */
    uint32_t order; /* arrival order, wrapping */
    uint32_t msg;   /* the request's place in msgs */
};

struct schedule {
    struct sched_key *heap;
    struct ctl_msg *msgs; /* capacity of them */
    uint32_t *free;       /* the places of msgs not in use, a stack */
    uint32_t nfree;
    bool by_beat;   /* keyed on m.beat (quantized requests), else on m.when */
    uint32_t n;     /* entries in the heap */
    uint32_t order; /* the next arrival order */
};

/* Allocates room for `capacity` entries.  Returns 0 or -ENOMEM. */
int schedule_init(struct schedule *s, uint32_t capacity);
/* The same, ordered by launch point (ctl_msg.beat) instead of time. */
int schedule_init_beats(struct schedule *s, uint32_t capacity);
void schedule_destroy(struct schedule *s);

/* Adds a request; the caller ensures there is room. */
void schedule_push(struct schedule *s, const struct ctl_msg *m);

/* The earliest request; only when s->n > 0.  Valid until the next pop or
 * push. */
static inline const struct ctl_msg *schedule_top(const struct schedule *s)
{
    return &s->msgs[s->heap[0].msg];
}

/* The i-th request in heap order (not time order), i < s->n: for a walk
 * of all of them. */
static inline const struct ctl_msg *schedule_at(const struct schedule *s, uint32_t i)
{
    return &s->msgs[s->heap[i].msg];
}

/* Removes the earliest request; only when s->n > 0. */
void schedule_pop(struct schedule *s);

/* Removes every request drop() is true of (it may look, not change);
 * returns how many.  O(s->n): for a /stop, which may do it once. */
uint32_t schedule_remove_if(struct schedule *s, bool (*drop)(const struct ctl_msg *, void *),
                            void *ctx);

/* Removes every request. */
void schedule_clear(struct schedule *s);

#endif
