/* engine_doors.c - the engine's functions for every thread but the audio
 * thread: the door each of them has into the engine (engine.h says which
 * thread may call which), and the budget of live sample buffers.
 *
 * Each ring has one producer and one consumer, and each end is reached
 * from exactly one function group here, so "one producer, one consumer" is
 * a property of this file rather than a convention of its callers.
 */
#include "engine.h"

#include <errno.h>

#include "sample_alloc.h"

/* Takes a place of `pending` unless `limit` are taken. */
static bool place_take(_Atomic uint32_t *pending, uint32_t limit)
{
    uint32_t n = atomic_load_explicit(pending, memory_order_relaxed);
    do {
        if (n >= limit)
            return false;
    } while (!atomic_compare_exchange_weak_explicit(pending, &n, n + 1, memory_order_relaxed,
                                                    memory_order_relaxed));
    return true;
}

bool engine_quantized(const struct ctl_msg *m)
{
    return (m->type == CTL_PLAY || m->type == CTL_LOOP || m->type == CTL_STOP ||
            m->type == CTL_STOP_SLOT) &&
           !(m->flags & CTL_ON_GRID) && play_quant(&m->play) > 0;
}

/* ---- OSC thread --------------------------------------------------------- */

int engine_send(struct engine *e, const struct ctl_msg *m, uint32_t keep)
{
    bool timed = m->flags & CTL_TIMED;
    bool quantized = engine_quantized(m);
    _Atomic uint32_t *place = timed ? &e->sched_pending : &e->cmd_untimed;
    uint32_t limit = timed ? ENGINE_SCHED : ENGINE_CMD_UNTIMED;
    if (!place_take(place, limit - keep))
        return timed ? -ENOSPC : -EAGAIN;
    int r = -ENOSPC;
    if (quantized && !place_take(&e->grid_pending, ENGINE_GRID - keep))
        goto give_back;
    /* Every request in the ring has a place of one of the two, so the ring
     * has room (engine.h); the check costs nothing and keeps it so. */
    r = -EAGAIN;
    if (ring_push(&e->cmd, m))
        return 0;
    if (quantized)
        atomic_fetch_sub_explicit(&e->grid_pending, 1, memory_order_relaxed);
give_back:
    atomic_fetch_sub_explicit(place, 1, memory_order_relaxed);
    return r;
}

uint32_t engine_cmds_waiting(const struct engine *e)
{
    return ring_count(&e->cmd);
}

uint32_t engine_sched_pending(const struct engine *e)
{
    return atomic_load_explicit(&e->sched_pending, memory_order_relaxed);
}

bool engine_beat_now(const struct engine *e, double now_us, double *beat, double *tempo,
                     double *quantum)
{
    struct engine *w = (struct engine *)e; /* atomics are read, never written */
    for (;;) {
        uint32_t s1 = atomic_load_explicit(&w->pub.seq, memory_order_acquire);
        uint64_t t0 = atomic_load_explicit(&w->pub.t0, memory_order_relaxed);
        double b = atomic_load_explicit(&w->pub.beat, memory_order_relaxed);
        double pf = atomic_load_explicit(&w->pub.per_frame, memory_order_relaxed);
        double t = atomic_load_explicit(&w->pub.tempo, memory_order_relaxed);
        double q = atomic_load_explicit(&w->pub.quantum, memory_order_relaxed);
        atomic_thread_fence(memory_order_acquire);
        uint32_t s2 = atomic_load_explicit(&w->pub.seq, memory_order_relaxed);
        if (s1 & 1 || s1 != s2)
            continue;
        *tempo = t;
        *quantum = q;
        if (s1 == 0) { /* no period yet: the timeline's start */
            *beat = 0;
            return false;
        }
        /* From the period's first frame to now, at the span's slope. */
        *beat = t0 && now_us > (double)t0 ? b + (now_us - (double)t0) * 1e-6 * e->rate * pf : b;
        return true;
    }
}

/* ---- the holder of the defaults table's lock ---------------------------- */

bool engine_pad_send(struct engine *e, const struct pad_msg *m)
{
    return m->id < e->nslots && ring_push(&e->pad, m);
}

/* ---- loader ------------------------------------------------------------- */

bool engine_publish(struct engine *e, const struct ctl_msg *m)
{
    return ring_push(&e->load, m);
}

uint32_t engine_loads_waiting(const struct engine *e)
{
    return ring_count(&e->load);
}

/* ---- reply thread ------------------------------------------------------- */

bool engine_take_event(struct engine *e, struct event *ev)
{
    return ring_pop(&e->events, ev);
}

struct sample_buffer *engine_take_trash(struct engine *e)
{
    struct sample_buffer *b;
    return ring_pop(&e->trash, &b) ? b : NULL;
}

bool engine_wait(struct engine *e, const struct timespec *deadline)
{
    int r;
    do
        r = deadline ? sem_clockwait(&e->wake, CLOCK_MONOTONIC, deadline) : sem_wait(&e->wake);
    while (r < 0 && errno == EINTR);
    return r == 0;
}

void engine_wake(struct engine *e)
{
    sem_post(&e->wake);
}

/* ---- main thread, audio stopped ------------------------------------------ */

uint32_t engine_scheduled(const struct engine *e)
{
    return e->sched.n;
}

uint32_t engine_drop_timed(struct engine *e, engine_reply_fn drop, void *ctx)
{
    uint32_t n = e->sched.n;
    for (uint32_t i = 0; i < n; i++) {
        drop(ctx, schedule_at(&e->sched, i)->reply);
        atomic_fetch_sub_explicit(&e->sched_pending, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&e->stats.late, 1, memory_order_relaxed);
    }
    schedule_clear(&e->sched);
    /* Quantized requests waiting for their launch point go too. */
    for (uint32_t i = 0; i < e->grid.n; i++) {
        drop(ctx, schedule_at(&e->grid, i)->reply);
        atomic_fetch_sub_explicit(&e->grid_pending, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&e->stats.late, 1, memory_order_relaxed);
    }
    n += e->grid.n;
    schedule_clear(&e->grid);
    return n;
}

void engine_drain_inputs(struct engine *e, engine_reply_fn drop, void *ctx)
{
    struct ctl_msg m;
    while (ring_pop(&e->cmd, &m)) {
        drop(ctx, m.reply);
        atomic_fetch_sub_explicit(m.flags & CTL_TIMED ? &e->sched_pending : &e->cmd_untimed, 1,
                                  memory_order_relaxed);
    }
    /* Timed requests still waiting for their time (a /ping an hour ahead). */
    for (uint32_t i = 0; i < e->sched.n; i++)
        drop(ctx, schedule_at(&e->sched, i)->reply);
    schedule_clear(&e->sched);
    for (uint32_t i = 0; i < e->grid.n; i++)
        drop(ctx, schedule_at(&e->grid, i)->reply);
    schedule_clear(&e->grid);
    while (ring_pop(&e->load, &m)) {
        if (m.buf) /* an unload carries none */
            engine_buffer_free(e, m.buf);
        drop(ctx, m.reply);
    }
}

/* ---- the budget of live buffers: any thread but the audio thread -------- */

bool engine_buffer_reserve(struct engine *e)
{
    uint32_t n = atomic_load_explicit(&e->live_buffers, memory_order_relaxed);
    do {
        if (n >= e->max_live)
            return false;
    } while (!atomic_compare_exchange_weak_explicit(&e->live_buffers, &n, n + 1,
                                                    memory_order_relaxed, memory_order_relaxed));
    return true;
}

void engine_buffer_unreserve(struct engine *e)
{
    atomic_fetch_sub_explicit(&e->live_buffers, 1, memory_order_relaxed);
}

void engine_buffer_charge(struct engine *e, const struct sample_buffer *b)
{
    atomic_fetch_add_explicit(&e->sample_bytes, b->bytes, memory_order_relaxed);
}

void engine_buffer_free(struct engine *e, struct sample_buffer *b)
{
    atomic_fetch_sub_explicit(&e->sample_bytes, b->bytes, memory_order_relaxed);
    sample_buffer_free(b);
    engine_buffer_unreserve(e);
}
