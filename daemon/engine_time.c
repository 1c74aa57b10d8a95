/* engine_time.c - the engine's musical time: the period's span and its
 * publication, quantized requests waiting in the grid for their launch
 * point, `beats` loops and their restarts, and `fit` loops following the
 * tempo.  engine_process() (engine.c) calls it at fixed points of the
 * period (engine_impl.h); what it starts or restarts it hands back to the
 * core's apply(), so the voices stay the core's alone.
 *
 * Launch points.  A quantized request takes the first launch point of its
 * quant not before its frame (beat.h).  It is applied at once if that
 * frame is in this period, else it waits in the grid keyed by the beat, not
 * the frame, so a tempo change moves it to the new tempo's time for the
 * same beat.  Its place in the grid was reserved by engine_send(), so the
 * grid never overflows.
 *
 * Loops locked to the beat.  A /loop with `beats N` plays its range once
 * per cycle (the voice does not wrap: a shorter sample is followed by
 * silence, a longer one is cut) and restarts every N beats counted from
 * its launch point: the restart is the same /loop applied again at
 * beat + N, so the old voice's declick fade starts on the restart frame
 * under the new voice at full level.  Each slot has at most one restart
 * pending (engine.restarts), in a min-heap of slot ids by beat:
 * O(log nslots) to add or cancel one.  Restarts are computed from beats,
 * not frames, so a tempo change moves them and the cycle never drifts.
 *
 * Bounds per period: each grid entry is taken at most twice, one restart
 * per pending one, and in a period whose tempo changed one walk of the
 * pending restarts to refit the `fit` loops (at most one per slot).
 */
#include "engine_impl.h"

#include <math.h>

#include "mixer.h"
#include "schedule.h"

void engine_set_timeline(struct engine *e, double tempo, double quantum)
{
    beat_timeline_init(&e->timeline, tempo, quantum, e->rate);
    e->span = beat_timeline_span(&e->timeline, e->next_frame);
    atomic_store(&e->pub.tempo, tempo);
    atomic_store(&e->pub.quantum, quantum);
}

/* ---- audio thread from here on ---------------------------------------- */

/* This period's musical time (beat.h). */
void span_begin(struct engine *e, const struct engine_clock *c, uint32_t nframes)
{
    e->period_frame = c->has_frame ? c->frame : e->next_frame;
    if (c->has_frame) {
        if (c->new_counter && e->counted && e->period_frame != e->next_frame)
            beat_timeline_rebase(&e->timeline, e->next_frame, e->period_frame);
        e->counted = true;
    }
    e->next_frame = e->period_frame + nframes;
    e->linked = c->link != NULL;
    e->span = c->link ? *c->link : beat_timeline_span(&e->timeline, e->period_frame);
}

/* The span for /beat and /status (engine_beat_now): a sequence lock. */
void span_publish(struct engine *e, const struct engine_clock *c)
{
    uint32_t seq = atomic_load_explicit(&e->pub.seq, memory_order_relaxed);
    atomic_store_explicit(&e->pub.seq, seq + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    /* The JACK time at which the span's beat holds, for extrapolating "now". */
    atomic_store_explicit(&e->pub.t0, c->t0 + (uint64_t)llround(e->span.heard_after_us),
                          memory_order_relaxed);
    atomic_store_explicit(&e->pub.beat, e->span.beat, memory_order_relaxed);
    atomic_store_explicit(&e->pub.per_frame, e->span.per_frame, memory_order_relaxed);
    atomic_store_explicit(&e->pub.tempo, e->span.tempo, memory_order_relaxed);
    atomic_store_explicit(&e->pub.quantum, e->span.quantum, memory_order_relaxed);
    atomic_store_explicit(&e->pub.seq, seq + 2, memory_order_release);
}

static bool restart_before(const struct engine *e, uint16_t a, uint16_t b)
{
    return e->restarts[a].beat < e->restarts[b].beat;
}

static void restart_place(struct engine *e, uint32_t pos, uint16_t id)
{
    e->restart_heap[pos] = id;
    e->slots[id].rheap = (uint16_t)pos;
}

static void restart_settle(struct engine *e, uint32_t pos, uint16_t id)
{
    while (pos > 0) {
        uint32_t parent = (pos - 1) / 2;
        if (!restart_before(e, id, e->restart_heap[parent]))
            break;
        restart_place(e, pos, e->restart_heap[parent]);
        pos = parent;
    }
    for (;;) {
        uint32_t c = 2 * pos + 1;
        if (c >= e->nrestart)
            break;
        if (c + 1 < e->nrestart && restart_before(e, e->restart_heap[c + 1], e->restart_heap[c]))
            c++;
        if (!restart_before(e, e->restart_heap[c], id))
            break;
        restart_place(e, pos, e->restart_heap[c]);
        pos = c;
    }
    restart_place(e, pos, id);
}

/* Slot id's pending restart goes, if it has one. */
void restart_cancel(struct engine *e, uint32_t id)
{
    uint16_t pos = e->slots[id].rheap;
    if (pos == ENGINE_NONE)
        return;
    e->slots[id].rheap = ENGINE_NONE;
    uint16_t last = e->restart_heap[--e->nrestart];
    if (pos < e->nrestart)
        restart_settle(e, pos, last);
}

/* Slot id restarts `m` at `beat` (replacing a pending restart). */
static void restart_set(struct engine *e, uint32_t id, const struct ctl_msg *m, double beat)
{
    restart_cancel(e, id);
    e->restarts[id].m = *m;
    e->restarts[id].beat = beat;
    restart_settle(e, e->nrestart++, (uint16_t)id);
}

/* Every pending restart goes: one walk of the heap, at most one per slot. */
void restart_clear(struct engine *e)
{
    for (uint32_t k = 0; k < e->nrestart; k++)
        e->slots[e->restart_heap[k]].rheap = ENGINE_NONE;
    e->nrestart = 0;
}

/* A quantized start waiting in the grid, of slot *id (ENGINE_NONE: any). */
static bool waiting_start(const struct ctl_msg *m, void *ctx)
{
    uint32_t id = *(const uint32_t *)ctx;
    return (m->type == CTL_PLAY || m->type == CTL_LOOP) && (id == ENGINE_NONE || m->id == id);
}

void grid_cancel_starts(struct engine *e, uint32_t id)
{
    uint32_t n = schedule_remove_if(&e->grid, waiting_start, &id);
    if (n)
        atomic_fetch_sub_explicit(&e->grid_pending, n, memory_order_relaxed);
}

/* `fit`: the speed at which slot id's range of `p` lasts `p`'s beats at the
 * span's tempo, in the direction `p`'s rate gives. */
static double fit_rate(const struct engine *e, uint32_t id, const struct play_params *p)
{
    double range = mixer_range_frames(e->slots[id].buf, p);
    double r = range * e->span.per_frame / play_beats(p);
    return play_rate(p) < 0 ? -r : r;
}

/* The tempo changed: every fitted loop playing follows it from this
 * period.  A walk of the pending restarts (one per slot with a `beats`
 * loop), done in the period of a change only. */
void fit_follow(struct engine *e)
{
    if (e->span.per_frame == e->fit_per_frame)
        return;
    e->fit_per_frame = e->span.per_frame;
    for (uint32_t k = 0; k < e->nrestart; k++) {
        uint16_t id = e->restart_heap[k];
        const struct play_params *p = &e->restarts[id].m.play;
        uint16_t v = e->slots[id].loop;
        if (play_fit(p) && v != ENGINE_NONE && e->slots[id].buf)
            mixer_set_rate(&e->voices[v], fit_rate(e, id, p));
    }
}

/* A /loop: one loop voice per slot, the running one fading out under the
 * restarted one; with `beats`, a cycle of N beats from its launch point. */
void loop_start(struct engine *e, const struct ctl_msg *m, uint32_t delay)
{
    struct slot *s = &e->slots[m->id];
    if (s->loop != ENGINE_NONE)
        voice_fade_out(e, &e->voices[s->loop], delay, e->fade_frames);
    double beats = play_beats(&m->play);
    if (!(beats > 0)) {
        restart_cancel(e, m->id);
        voice_start(e, m, true, delay);
        return;
    }
    struct ctl_msg v = *m;
    if (play_fit(&m->play)) {
        v.play.rate = fit_rate(e, m->id, &m->play);
        v.play.keys |= PLAY_RATE;
    }
    voice_start(e, &v, false, delay);
    if (s->playing != ENGINE_NONE && e->voices[s->playing].slot == m->id &&
        !mixer_fading(&e->voices[s->playing]))
        s->loop = s->playing; /* the voice just started: the front of the slot's list */
    double at = m->flags & CTL_ON_GRID ? m->beat : e->span.beat + delay * e->span.per_frame;
    restart_set(e, m->id, m, at + beats);
}

/* A quantized request (engine_quantized) whose launch point may not have
 * its frame before offset `from` of this period: the first launch point of
 * its quant from there (beat.h).  It starts now if that frame is in this
 * period, else it waits in the grid, keyed by the beat, so that a tempo
 * change moves it to the new tempo's time for the same beat.  Its place in
 * the grid was reserved by engine_send(). */
void launch(struct engine *e, struct ctl_msg m, uint32_t nframes, uint32_t from)
{
    struct beat_span s = e->span;
    s.beat += from * s.per_frame;
    m.beat = beat_first_unrendered(&s, play_quant(&m.play));
    m.flags |= CTL_ON_GRID;
    int64_t off = beat_frame_offset(&e->span, m.beat);
    if ((e->span.playing && off < (int64_t)nframes) || e->grid.n >= ENGINE_GRID) {
        apply(e, &m, off > 0 && off < (int64_t)nframes ? (uint32_t)off : 0);
        atomic_fetch_sub_explicit(&e->grid_pending, 1, memory_order_relaxed);
        return;
    }
    schedule_push(&e->grid, &m);
}

/* The grid's requests whose launch point's frame is in this period, in
 * beat order; one whose frame went by unrendered (a span that jumped, or
 * waited for Link's play) takes the next point of its quant.  Bounded:
 * each entry is taken at most twice. */
void launch_due(struct engine *e, uint32_t nframes)
{
    while (e->grid.n > 0 && e->span.playing) {
        int64_t off = beat_frame_offset(&e->span, schedule_top(&e->grid)->beat);
        if (off >= (int64_t)nframes)
            break;
        struct ctl_msg m = *schedule_top(&e->grid);
        schedule_pop(&e->grid);
        if (off < 0) {
            m.beat = beat_first_unrendered(&e->span, play_quant(&m.play));
            off = beat_frame_offset(&e->span, m.beat);
            if (off >= (int64_t)nframes) {
                schedule_push(&e->grid, &m);
                continue;
            }
        }
        apply(e, &m, off > 0 ? (uint32_t)off : 0);
        atomic_fetch_sub_explicit(&e->grid_pending, 1, memory_order_relaxed);
    }
}

/* The `beats` loops whose restart's frame is in this period: at most one
 * restart per pending one, so a cycle shorter than a period restarts once a
 * period (the next restart, already due, then counts on from the next
 * period's first frame) rather than without bound. */
void restart_due(struct engine *e, uint32_t nframes)
{
    for (uint32_t budget = e->nrestart; budget > 0 && e->nrestart > 0; budget--) {
        uint16_t id = e->restart_heap[0];
        struct ctl_msg m = e->restarts[id].m;
        m.beat = e->restarts[id].beat;
        int64_t off = beat_frame_offset(&e->span, m.beat);
        if (off >= (int64_t)nframes)
            break;
        restart_cancel(e, id);
        if (off < 0) { /* the span jumped past it: count on from now */
            off = 0;
            m.beat = e->span.beat;
        }
        m.flags |= CTL_ON_GRID;
        apply(e, &m, (uint32_t)off);
    }
}
