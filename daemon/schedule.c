/* schedule.c - the time-ordered schedule of timed requests: a binary
 * min-heap on (time, or beat for the launch grid; then arrival order),
 * fixed capacity.  Audio thread only, after schedule_init.
 */
#include "schedule.h"

#include <errno.h>
#include <stdlib.h>

#include "memlock.h"

int schedule_init(struct schedule *s, uint32_t capacity)
{
    s->heap = calloc(capacity, sizeof(*s->heap));
    s->n = 0;
    s->order = 0;
    s->by_beat = false;
    if (!s->heap)
        return -ENOMEM;
    /* The audio thread must not be the first to write these pages
     * (memlock.h). */
    memlock_touch(s->heap, capacity * sizeof(*s->heap));
    return 0;
}

int schedule_init_beats(struct schedule *s, uint32_t capacity)
{
    int r = schedule_init(s, capacity);
    s->by_beat = true;
    return r;
}

void schedule_destroy(struct schedule *s)
{
    free(s->heap);
    s->heap = NULL;
    s->n = 0;
}

/* Heap order: earlier time first, then arrival order, so requests in one
 * bundle keep their order. */
static bool sched_before(const struct sched_entry *a, const struct sched_entry *b, bool by_beat)
{
    if (by_beat)
        return a->m.beat < b->m.beat ||
               (a->m.beat == b->m.beat && (int32_t)(a->order - b->order) < 0);
    return a->m.when < b->m.when || (a->m.when == b->m.when && (int32_t)(a->order - b->order) < 0);
}

void schedule_push(struct schedule *s, const struct ctl_msg *m)
{
    uint32_t i = s->n++;
    struct sched_entry x = {.m = *m, .order = s->order++};
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (!sched_before(&x, &s->heap[parent], s->by_beat))
            break;
        s->heap[i] = s->heap[parent];
        i = parent;
    }
    s->heap[i] = x;
}

/* Moves `x`, meant for place i, down to where it belongs. */
static void sift_down(struct schedule *s, uint32_t i, struct sched_entry x)
{
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= s->n)
            break;
        if (c + 1 < s->n && sched_before(&s->heap[c + 1], &s->heap[c], s->by_beat))
            c++;
        if (!sched_before(&s->heap[c], &x, s->by_beat))
            break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    s->heap[i] = x;
}

void schedule_pop(struct schedule *s)
{
    struct sched_entry last = s->heap[--s->n];
    if (s->n > 0)
        sift_down(s, 0, last);
}

uint32_t schedule_remove_if(struct schedule *s, bool (*drop)(const struct ctl_msg *, void *),
                            void *ctx)
{
    uint32_t kept = 0;
    for (uint32_t i = 0; i < s->n; i++)
        if (!drop(&s->heap[i].m, ctx))
            s->heap[kept++] = s->heap[i];
    uint32_t removed = s->n - kept;
    s->n = kept;
    /* Floyd's heap construction over what is left: O(n). */
    for (uint32_t i = kept / 2; i-- > 0;)
        sift_down(s, i, s->heap[i]);
    return removed;
}
