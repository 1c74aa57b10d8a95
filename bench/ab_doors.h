/* ab_doors.h - the engine's doors for bench/engine_ab.sh's cores, whatever
 * the revision: from engine_doors.c on they are the engine's own
 * functions; before it (engine_ab.sh defines AB_RINGS) the same acts on
 * the engine's rings directly.  The sample buffers' allocation is declared
 * in daemon/sample_alloc.h where the revision has one, else in sample.h. */
#ifndef LOOPERD_AB_DOORS_H
#define LOOPERD_AB_DOORS_H

#include "engine.h"
#if __has_include("sample_alloc.h")
#include "sample_alloc.h"
#endif

/* engine_init and engine_process on one stereo pair, whatever the
 * revision: from the output pairs on (ENGINE_MAX_PAIRS) they take the
 * pairs, before it two buffers. */
#ifdef ENGINE_MAX_PAIRS
static inline int ab_engine_init(struct engine *e, uint32_t nslots, uint32_t nvoices, uint32_t rate)
{
    return engine_init(e, nslots, nvoices, 1, rate);
}
static inline void ab_engine_process(struct engine *e, float *l, float *r, uint32_t nframes,
                                     struct engine_clock c)
{
    float *outs[2] = {l, r};
    engine_process(e, outs, nframes, c);
}
#else
#define ab_engine_init engine_init
#define ab_engine_process engine_process
#endif

#ifdef AB_RINGS
#include "ring.h"
static inline int engine_send(struct engine *e, const struct ctl_msg *m, uint32_t keep)
{
    (void)keep;
    return ring_push(&e->cmd, m) ? 0 : -1;
}
static inline bool engine_publish(struct engine *e, const struct ctl_msg *m)
{
    return ring_push(&e->load, m);
}
static inline uint32_t engine_loads_waiting(const struct engine *e)
{
    return ring_count(&e->load);
}
static inline bool engine_take_event(struct engine *e, struct event *ev)
{
    return ring_pop(&e->events, ev);
}
#endif

#endif
