/* schedule.c - the time-ordered schedule of timed requests: a binary
 * min-heap of keys on (time, or beat for the launch grid; then arrival
 * order), the requests in a pool beside it, fixed capacity.  Audio thread
 * only, after schedule_init.
 */
#include "schedule.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "memlock.h"

static uint32_t capacity_of(const struct schedule *s)
{
    return s->n + s->nfree;
}

int schedule_init(struct schedule *s, uint32_t capacity)
{
    s->heap = calloc(capacity, sizeof(*s->heap));
    s->msgs = calloc(capacity, sizeof(*s->msgs));
    s->free = calloc(capacity, sizeof(*s->free));
    s->n = 0;
    s->nfree = 0;
    s->order = 0;
    s->by_beat = false;
    if (!s->heap || !s->msgs || !s->free) {
        schedule_destroy(s);
        return -ENOMEM;
    }
    s->nfree = capacity;
    schedule_clear(s);
    /* The audio thread must not be the first to write these pages
     * (memlock.h). */
    memlock_touch(s->heap, capacity * sizeof(*s->heap));
    memlock_touch(s->msgs, capacity * sizeof(*s->msgs));
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
    free(s->msgs);
    free(s->free);
    s->heap = NULL;
    s->msgs = NULL;
    s->free = NULL;
    s->n = s->nfree = 0;
}

void schedule_clear(struct schedule *s)
{
    uint32_t cap = capacity_of(s);
    s->n = 0;
    /* Place 0 on top, so places are used lowest first. */
    for (uint32_t i = 0; i < cap; i++)
        s->free[i] = cap - 1 - i;
    s->nfree = cap;
}

/* A double as a uint64_t of the same order (IEEE 754: flip the sign bit
 * of a positive number, every bit of a negative one). */
static uint64_t beat_key(double beat)
{
    uint64_t b;
    memcpy(&b, &beat, sizeof(b));
    return b >> 63 ? ~b : b | (1ull << 63);
}

/* Heap order: earlier time first, then arrival order, so requests in one
 * bundle keep their order. */
static inline bool before(const struct sched_key *a, const struct sched_key *b)
{
    return a->key < b->key || (a->key == b->key && (int32_t)(a->order - b->order) < 0);
}

/* Moves `x`, meant for place i, up to where it belongs. */
static void sift_up(struct schedule *s, uint32_t i, struct sched_key x)
{
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (!before(&x, &s->heap[parent]))
            break;
        s->heap[i] = s->heap[parent];
        i = parent;
    }
    s->heap[i] = x;
}

void schedule_push(struct schedule *s, const struct ctl_msg *m)
{
    uint32_t place = s->free[--s->nfree];
    s->msgs[place] = *m;
    struct sched_key x = {
        .key = s->by_beat ? beat_key(m->beat) : m->when, .order = s->order++, .msg = place};
    sift_up(s, s->n++, x);
}

/* Moves `x`, meant for place i, down to where it belongs. */
static void sift_down(struct schedule *s, uint32_t i, struct sched_key x)
{
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= s->n)
            break;
        if (c + 1 < s->n && before(&s->heap[c + 1], &s->heap[c]))
            c++;
        if (!before(&s->heap[c], &x))
            break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    s->heap[i] = x;
}

/* Bottom-up: the hole at the top goes down to a leaf along the earlier
 * child (one comparison a level), and the last key, which belongs near
 * the bottom, rises from there (a level or two): about half the
 * comparisons of sifting it down from the top. */
void schedule_pop(struct schedule *s)
{
    s->free[s->nfree++] = s->heap[0].msg;
    struct sched_key last = s->heap[--s->n];
    uint32_t n = s->n, i = 0;
    if (n == 0)
        return;
    for (uint32_t c; (c = 2 * i + 1) < n; i = c) {
        if (c + 1 < n && before(&s->heap[c + 1], &s->heap[c]))
            c++;
        s->heap[i] = s->heap[c];
    }
    sift_up(s, i, last);
}

uint32_t schedule_remove_if(struct schedule *s, bool (*drop)(const struct ctl_msg *, void *),
                            void *ctx)
{
    uint32_t kept = 0;
    for (uint32_t i = 0; i < s->n; i++) {
        if (drop(&s->msgs[s->heap[i].msg], ctx))
            s->free[s->nfree++] = s->heap[i].msg;
        else
            s->heap[kept++] = s->heap[i];
    }
    uint32_t removed = s->n - kept;
    s->n = kept;
    /* Floyd's heap construction over what is left: O(n). */
    for (uint32_t i = kept / 2; i-- > 0;)
        sift_down(s, i, s->heap[i]);
    return removed;
}
