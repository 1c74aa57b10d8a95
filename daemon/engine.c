/* engine.c - the engine's core: slots, the voice pool's bookkeeping
 * (which voice starts, is stolen, fades or ends), applying requests, and
 * engine_process(), the audio thread's one entry point.  Its other parts
 * own one structure each and meet the core only through engine_impl.h:
 * cut groups (engine_cut.c), musical time, the grid and `beats` loops
 * (engine_time.c), MIDI input (engine_midi.c).  The mixing of a voice is
 * mixer.c's, the timed requests' heap schedule.c's, and what the other
 * threads run engine_doors.c's.
 *
 * engine_process() is the whole real-time path.  It is written so that its
 * running time is bounded by the pool sizes fixed at start-up:
 *  - only the commands already in the ring when the period began are
 *    taken, so a producer that keeps pushing cannot keep the audio thread
 *    in the loop: at most ENGINE_CMD_UNTIMED untimed ones, and of the
 *    timed ones, in the ring or come due in the schedule, at most the
 *    schedule's capacity (ENGINE_SCHED: each holds a place until it is
 *    applied), each pushed onto and popped off the heap at most once
 *    (O(log ENGINE_SCHED) each);
 *  - applying a message never walks the voice pool ("Bounded periods"
 *    below);
 *  - musical time: the quantized requests that come due (each taken from
 *    the grid at most twice), one restart per `beats` loop, and in a period
 *    whose tempo changed one walk of those loops to refit their rates (at
 *    most one per slot; engine_time.c);
 *  - MIDI: at most ENGINE_MIDI_QUEUE messages and one `pad` ring of
 *    defaults (engine_midi.c);
 *  - mixing is O(voices x frames), with no per-voice work for free voices.
 *
 * Bounded periods.  A period may apply ENGINE_CMD_UNTIMED commands and
 * ENGINE_SCHED timed ones, so what one request costs is multiplied by
 * thousands: a walk of up to 512 voice structs per request does not fit in
 * a period.  Every request finds what it needs through bookkeeping kept
 * where voices start, start fading and end (engine.h, voice_links):
 *  - a /play or /loop: the lowest free struct from the `sounding` bitmap
 *    (npool / 64 words), the oldest playing voice at the head of the list of
 *    playing voices, the oldest fading one at the top of the heap of fading
 *    voices, the slot's loop voice in its slot: O(log npool);
 *  - a /stop, a slot's stop or unload: the list of the playing voices (all,
 *    or the slot's), each taken off it as it starts fading: O(1) per voice
 *    faded, and a voice starts fading once, so all of them together in one
 *    period cost at most the voices playing when it began plus those it
 *    started;
 *  - a trigger with a cut group: the group's list of playing voices, found
 *    in a trie of fixed depth (engine_cut.c): O(1) plus O(1) per voice it
 *    fades;
 *  - releasing a buffer: a count of its users (engine.refs), O(1).
 * Which voice is stolen, faded or cut is the same as a walk would choose,
 * and the struct a voice starts in is still the lowest free one, so the
 * mix (summed in index order) is the same too.
 *
 * Releasing buffers: a voice points straight at the immutable buffer it
 * started on, so reloading a slot never disturbs voices that sound; the old
 * buffer stays alive until neither its slot nor any voice refers to it, and
 * only then goes to the trash ring.  Its count of users (engine.refs) drops
 * exactly when a reference disappears (slot replaced or emptied, voice
 * ended or cut), and the last one sends it.
 */
#include "engine_impl.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "memlock.h"
#include "mixer.h"
#include "sample_alloc.h"
#include "schedule.h"

#if defined(__SSE__) || defined(__x86_64__)
#include <xmmintrin.h>
#endif

/* Denormals make every arithmetic operation on a decaying tail dozens of
 * times slower; flush them to zero (FTZ) and treat denormal inputs as zero
 * (DAZ).  Set at every period: it costs a few cycles and stays correct even
 * if the host runs the callback on a different thread. */
static inline void denormals_off(void)
{
#if defined(__SSE__) || defined(__x86_64__)
    _mm_setcsr(_mm_getcsr() | 0x8040);
#elif defined(__aarch64__)
    uint64_t fpcr;
    __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
    __asm__ volatile("msr fpcr, %0" : : "r"(fpcr | (1u << 24)));
#endif
}

/* Frees the rings and pools (not the buffers they may point to). */
static void free_pools(struct engine *e)
{
    ring_destroy(&e->cmd);
    ring_destroy(&e->pad);
    midi_map_destroy(&e->map);
    free(e->pads);
    e->pads = NULL;
    ring_destroy(&e->load);
    ring_destroy(&e->events);
    ring_destroy(&e->trash);
    free(e->slots);
    free(e->voices);
    schedule_destroy(&e->sched);
    schedule_destroy(&e->grid);
    free(e->restarts);
    free(e->restart_heap);
    e->restarts = NULL;
    e->restart_heap = NULL;
    free(e->links);
    free(e->fading);
    free(e->refs);
    free(e->ref_free);
    free(e->cut_nodes);
    free(e->cut_free);
    free(e->cuts);
    e->cuts = NULL;
    free(e->pair);
    e->pair = NULL;
    e->cut_nodes = NULL;
    e->cut_free = NULL;
    e->slots = NULL;
    e->voices = NULL;
    e->links = NULL;
    e->fading = NULL;
    e->refs = NULL;
    e->ref_free = NULL;
}

int engine_init(struct engine *e, uint32_t nslots, uint32_t nvoices, uint32_t npairs, uint32_t rate)
{
    int r;

    if (nslots < 1 || nslots > ENGINE_MAX_SLOTS || nvoices < 1 || nvoices > ENGINE_MAX_VOICES ||
        npairs < 1 || npairs > ENGINE_MAX_PAIRS || rate == 0)
        return -EINVAL;
    memset(e, 0, sizeof(*e));
    e->rate = rate;
    e->midi_slots = nslots; /* all, until engine_set_midi_slots says fewer */
    e->nslots = nslots;
    e->npairs = npairs;
    e->nvoices = nvoices;
    e->fade_frames = (uint32_t)lround(rate * ENGINE_FADE_SECONDS);
    if (e->fade_frames < 1)
        e->fade_frames = 1;
    /* Live buffers: one current per slot, one retired per voice struct at
     * most (a retired buffer lives only while a voice plays it), the load ring's
     * contents and the one the loader is building. */
    e->max_live = nslots + 2 * nvoices + ENGINE_LOAD_RING + 1;

    /* Twice the polyphony in voice structs: a voice that is stolen or
     * stopped fades out in one of the spare ones while its successor starts
     * at once, so making room never clicks and never delays a trigger. */
    e->npool = 2 * nvoices;
    e->slots = calloc(nslots, sizeof(*e->slots));
    e->voice_words = (e->npool + 63) / 64;
    e->voices = aligned_alloc(64, e->npool * sizeof(*e->voices));
    if (e->voices)
        memset(e->voices, 0, e->npool * sizeof(*e->voices));
    /* Buffer entries: every slot's current buffer, and a retired buffer is
     * used by at least one voice, so no more of those than voice structs. */
    e->nrefs = nslots + e->npool;
    e->links = calloc(e->npool, sizeof(*e->links));
    e->fading = calloc(e->npool, sizeof(*e->fading));
    e->refs = calloc(e->nrefs, sizeof(*e->refs));
    e->ref_free = calloc(e->nrefs, sizeof(*e->ref_free));
    /* Cut groups: the root, and for each of at most npool keys its nodes
     * below the root (engine_cut.c). */
    e->ncut_nodes = 1 + (ENGINE_CUT_LEVELS - 1) * e->npool;
    e->cut_nodes = calloc(e->ncut_nodes, sizeof(*e->cut_nodes));
    e->cut_free = calloc(e->ncut_nodes, sizeof(*e->cut_free));
    e->pair = calloc(e->npool, sizeof(*e->pair));
    e->cuts = calloc(e->npool, sizeof(*e->cuts));
    e->restarts = calloc(nslots, sizeof(*e->restarts));
    e->restart_heap = calloc(nslots, sizeof(*e->restart_heap));
    if (!e->restarts || !e->restart_heap) {
        r = -ENOMEM;
        goto fail;
    }
    memlock_touch(e->restarts, nslots * sizeof(*e->restarts));
    memlock_touch(e->restart_heap, nslots * sizeof(*e->restart_heap));
    beat_timeline_init(&e->timeline, BEAT_DEFAULT_TEMPO, BEAT_DEFAULT_QUANTUM, rate);
    e->span = beat_timeline_span(&e->timeline, 0);
    atomic_store(&e->pub.tempo, BEAT_DEFAULT_TEMPO);
    atomic_store(&e->pub.quantum, BEAT_DEFAULT_QUANTUM);
    e->pads = calloc(nslots, sizeof(*e->pads));
    if (!e->pads || midi_map_init(&e->map, nslots) < 0) {
        r = -ENOMEM;
        goto fail;
    }
    for (uint32_t i = 0; i < nslots; i++)
        e->pads[i].id = i;
    memlock_touch(e->pads, nslots * sizeof(*e->pads));
    if (!e->slots || !e->voices || !e->links || !e->fading || !e->refs || !e->ref_free ||
        !e->cut_nodes || !e->cut_free || !e->pair || !e->cuts) {
        r = -ENOMEM;
        goto fail;
    }
    /* calloc leaves fresh pages untouched; the audio thread must not be
     * the first to write them (memlock.h). */
    memlock_touch(e->slots, nslots * sizeof(*e->slots));
    memlock_touch(e->voices, e->npool * sizeof(*e->voices));
    memlock_touch(e->fading, e->npool * sizeof(*e->fading));
    memlock_touch(e->refs, e->nrefs * sizeof(*e->refs));
    memlock_touch(e->cut_free, e->ncut_nodes * sizeof(*e->cut_free));
    memlock_touch(e->pair, e->npool * sizeof(*e->pair));
    for (uint32_t i = 0; i < nslots; i++)
        e->slots[i].ref = e->slots[i].playing = e->slots[i].loop = e->slots[i].rheap = ENGINE_NONE;
    for (uint32_t i = 0; i < e->npool; i++) {
        e->links[i] = (struct voice_links){.prev = ENGINE_NONE,
                                           .next = ENGINE_NONE,
                                           .sprev = ENGINE_NONE,
                                           .snext = ENGINE_NONE,
                                           .heap = ENGINE_NONE,
                                           .ref = ENGINE_NONE,
                                           .release = e->fade_frames};
        e->cuts[i] =
            (struct cut_links){.cprev = ENGINE_NONE, .cnext = ENGINE_NONE, .cleaf = ENGINE_NONE};
    }
    /* Every node empty (which also touches their pages); node 0 is the
     * root, the others on the free stack, the lowest on top. */
    for (uint32_t i = 0; i < e->ncut_nodes; i++)
        for (uint32_t k = 0; k < ENGINE_CUT_FAN; k++)
            e->cut_nodes[i].child[k] = ENGINE_NONE;
    for (uint32_t i = 1; i < e->ncut_nodes; i++)
        e->cut_free[e->ncut_free++] = (uint16_t)(e->ncut_nodes - i);
    e->oldest = e->newest = ENGINE_NONE;
    for (uint32_t i = 0; i < e->nrefs; i++)
        e->ref_free[i] = (uint16_t)(e->nrefs - 1 - i); /* entry 0 on top */
    e->nref_free = e->nrefs;
    if ((r = schedule_init(&e->sched, ENGINE_SCHED)) < 0 ||
        (r = schedule_init_beats(&e->grid, ENGINE_GRID)) < 0 ||
        (r = ring_init(&e->cmd, ENGINE_CMD_RING, sizeof(struct ctl_msg))) < 0 ||
        (r = ring_init(&e->pad, ring_pow2(2 * nslots), sizeof(struct pad_msg))) < 0 ||
        (r = ring_init(&e->load, ENGINE_LOAD_RING, sizeof(struct ctl_msg))) < 0 ||
        (r = ring_init(&e->events, ENGINE_EVENT_RING, sizeof(struct event))) < 0 ||
        (r = ring_init(&e->trash, ring_pow2(e->max_live), sizeof(struct sample_buffer *))) < 0)
        goto fail;
    if (sem_init(&e->wake, 0, 0) < 0) {
        r = -errno;
        goto fail;
    }
    return 0;
fail:
    free_pools(e);
    return r;
}

static bool held_by_slot(const struct engine *e, const struct sample_buffer *b)
{
    for (uint32_t i = 0; i < e->nslots; i++)
        if (e->slots[i].buf == b)
            return true;
    return false;
}

void engine_destroy(struct engine *e)
{
    struct ctl_msg m;
    struct sample_buffer *b;

    if (!e->slots)
        return;
    /* Retired buffers are referenced only by voices: free each once. */
    for (uint32_t i = 0; i < e->npool; i++) {
        const struct sample_buffer *vb = e->voices[i].buf;
        if (!vb || held_by_slot(e, vb))
            continue;
        bool seen = false;
        for (uint32_t j = 0; j < i && !seen; j++)
            seen = e->voices[j].buf == vb;
        if (!seen)
            sample_buffer_free((struct sample_buffer *)vb);
    }
    for (uint32_t i = 0; i < e->nslots; i++)
        sample_buffer_free(e->slots[i].buf);
    while (ring_pop(&e->load, &m))
        sample_buffer_free(m.buf);
    while (ring_pop(&e->trash, &b))
        sample_buffer_free(b);
    sem_destroy(&e->wake);
    free_pools(e);
}

/* ---- audio thread from here on ---------------------------------------- */

static bool push_event(struct engine *e, uint32_t type, uint32_t id, struct reply_ctx *reply)
{
    struct event ev = {.type = type, .id = id, .reply = reply};
    if (!ring_push(&e->events, &ev)) {
        /* Cannot happen while the control side keeps its bound on requests
         * in flight; counted so a test would see it. */
        atomic_fetch_add_explicit(&e->stats.lost_events, 1, memory_order_relaxed);
        return false;
    }
    e->notify = true;
    return true;
}

static void discard(struct engine *e, struct sample_buffer *b)
{
    if (!ring_push(&e->trash, &b)) {
        /* Impossible by the live-buffer bound (engine.h).  Leaking is the
         * only real-time-safe answer if it ever happened. */
        atomic_fetch_add_explicit(&e->stats.lost_events, 1, memory_order_relaxed);
        return;
    }
    e->notify = true;
}

/* Walks the sounding voices (engine.h, `sounding`) in index order, so a
 * free voice struct is never read:
 *     struct sounding_walk w = sounding_begin(e);
 *     for (uint32_t i; sounding_next(&w, &i);) ...
 * A word of the bitmap is copied when the walk reaches it, so the body may
 * end the voice it was given (voice_end() clears its bit) but must not
 * start one. */
struct sounding_walk {
    const uint64_t *words;
    uint32_t nwords, w;
    uint64_t bits; /* the bits of word w not yet given */
};

static inline struct sounding_walk sounding_begin(const struct engine *e)
{
    return (struct sounding_walk){.words = e->sounding,
                                  .nwords = e->voice_words,
                                  .bits = e->voice_words ? e->sounding[0] : 0};
}

static inline bool sounding_next(struct sounding_walk *w, uint32_t *i)
{
    while (w->bits == 0) {
        if (++w->w >= w->nwords)
            return false;
        w->bits = w->words[w->w];
    }
    *i = w->w * 64 + (uint32_t)__builtin_ctzll(w->bits);
    w->bits &= w->bits - 1;
    return true;
}

_Static_assert(ENGINE_MAX_SLOTS + 2 * ENGINE_MAX_VOICES < ENGINE_NONE,
               "voice and buffer-entry indices fit in 16 bits beside ENGINE_NONE");
_Static_assert(ENGINE_MAX_PAIRS <= 256, "an output pair fits engine.pair's bytes");

/* ---- buffer users: engine.refs ----------------------------------------- */

/* A new entry for `b`, counting its slot as its one user so far.  There is
 * always a free one (engine_init: one per slot, one per voice struct; the
 * caller has given back the slot's old entry first). */
static uint16_t ref_new(struct engine *e, const struct sample_buffer *b)
{
    uint16_t r = e->ref_free[--e->nref_free];
    e->refs[r] = (struct buf_ref){.buf = b, .count = 1};
    return r;
}

/* One user of entry r less; the last sends the buffer back for freeing. */
static void ref_drop(struct engine *e, uint16_t r)
{
    struct buf_ref *br = &e->refs[r];
    if (--br->count > 0)
        return;
    discard(e, (struct sample_buffer *)br->buf);
    br->buf = NULL;
    e->ref_free[e->nref_free++] = r;
}

/* ---- the heap of fading voices, oldest start on top -------------------- */

static void fading_place(struct engine *e, uint32_t pos, struct fade_entry x)
{
    e->fading[pos] = x;
    e->links[x.voice].heap = (uint16_t)pos;
}

/* Moves x, meant for place `pos`, up or down to where it belongs. */
static void fading_settle(struct engine *e, uint32_t pos, struct fade_entry x)
{
    while (pos > 0) {
        uint32_t parent = (pos - 1) / 2;
        if (e->fading[parent].started <= x.started)
            break;
        fading_place(e, pos, e->fading[parent]);
        pos = parent;
    }
    for (;;) {
        uint32_t c = 2 * pos + 1;
        if (c >= e->nfading)
            break;
        if (c + 1 < e->nfading && e->fading[c + 1].started < e->fading[c].started)
            c++;
        if (x.started <= e->fading[c].started)
            break;
        fading_place(e, pos, e->fading[c]);
        pos = c;
    }
    fading_place(e, pos, x);
}

static void fading_add(struct engine *e, uint32_t i)
{
    uint32_t pos = e->nfading++;
    fading_settle(e, pos, (struct fade_entry){.started = e->voices[i].started, .voice = i});
}

static void fading_remove(struct engine *e, uint32_t i)
{
    uint32_t pos = e->links[i].heap;
    e->links[i].heap = ENGINE_NONE;
    struct fade_entry last = e->fading[--e->nfading];
    if (pos < e->nfading)
        fading_settle(e, pos, last);
}

/* ---- the lists of playing voices --------------------------------------- */

/* A new voice is the newest: it goes to the end of the engine's list, and
 * to the front of its slot's (whose order does not matter). */
static void playing_add(struct engine *e, uint32_t i)
{
    struct voice_links *l = &e->links[i];
    struct slot *s = &e->slots[e->voices[i].slot];
    l->prev = e->newest;
    l->next = ENGINE_NONE;
    if (e->newest != ENGINE_NONE)
        e->links[e->newest].next = (uint16_t)i;
    else
        e->oldest = (uint16_t)i;
    e->newest = (uint16_t)i;
    l->sprev = ENGINE_NONE;
    l->snext = s->playing;
    if (s->playing != ENGINE_NONE)
        e->links[s->playing].sprev = (uint16_t)i;
    s->playing = (uint16_t)i;
    if (e->voices[i].loop)
        s->loop = (uint16_t)i;
    if (l->grouped)
        cut_add(e, i);
    e->nplaying++;
}

static void playing_remove(struct engine *e, uint32_t i)
{
    struct voice_links *l = &e->links[i];
    struct slot *s = &e->slots[e->voices[i].slot];
    if (l->prev != ENGINE_NONE)
        e->links[l->prev].next = l->next;
    else
        e->oldest = l->next;
    if (l->next != ENGINE_NONE)
        e->links[l->next].prev = l->prev;
    else
        e->newest = l->prev;
    if (l->sprev != ENGINE_NONE)
        e->links[l->sprev].snext = l->snext;
    else
        s->playing = l->snext;
    if (l->snext != ENGINE_NONE)
        e->links[l->snext].sprev = l->sprev;
    if (s->loop == i)
        s->loop = ENGINE_NONE;
    if (l->grouped)
        cut_remove(e, i);
    l->prev = l->next = l->sprev = l->snext = ENGINE_NONE;
    e->nplaying--;
}

/* ---- voices ------------------------------------------------------------- */

static void voice_end(struct engine *e, struct voice *v)
{
    uint32_t i = (uint32_t)(v - e->voices);
    if (mixer_fading(v))
        fading_remove(e, i);
    else
        playing_remove(e, i);
    v->buf = NULL;
    e->sounding[i / 64] &= ~((uint64_t)1 << (i % 64));
    uint16_t r = e->links[i].ref;
    e->links[i].ref = ENGINE_NONE;
    ref_drop(e, r);
}

/* Fades a voice out over `frames` frames, starting `delay` frames into the
 * current period (so a timed stop, or the voice a timed trigger steals or
 * cuts, fades from the exact frame of the request). */
void voice_fade_out(struct engine *e, struct voice *v, uint32_t delay, uint32_t frames)
{
    if (mixer_fading(v))
        return; /* already fading: keep the shorter remaining ramp */
    if (!mixer_fade_out(v, delay, frames)) {
        voice_end(e, v); /* silent voice: nothing to fade */
        return;
    }
    uint32_t i = (uint32_t)(v - e->voices);
    playing_remove(e, i);
    fading_add(e, i);
}

/* A voice struct to start a new voice in.  At full polyphony the oldest
 * playing voice starts fading out (in its own struct) to make room.  Only if
 * every spare struct is also busy fading, the oldest fading voice (the one
 * that started first) is cut. */
static struct voice *voice_alloc(struct engine *e, uint32_t delay)
{
    struct voice *free_v = NULL, *oldest = NULL, *oldest_fading = NULL;

    /* The lowest free index.  Bits past npool in the last word are never
     * set, so they read as free: past npool means none is. */
    for (uint32_t w = 0; w < e->voice_words; w++) {
        uint64_t idle = ~e->sounding[w];
        if (!idle)
            continue;
        uint32_t i = w * 64 + (uint32_t)__builtin_ctzll(idle);
        if (i < e->npool)
            free_v = &e->voices[i];
        break;
    }
    /* Both chosen before the steal, which adds a voice to the fading ones. */
    if (e->nfading > 0)
        oldest_fading = &e->voices[e->fading[0].voice];
    if (e->oldest != ENGINE_NONE)
        oldest = &e->voices[e->oldest];
    if (e->nplaying >= e->nvoices && oldest) {
        voice_fade_out(e, oldest, delay, e->fade_frames);
        atomic_fetch_add_explicit(&e->stats.voices_stolen, 1, memory_order_relaxed);
        if (!oldest->buf && !free_v)
            free_v = oldest; /* it was silent and ended at once */
    }
    if (!free_v) {
        free_v = oldest_fading ? oldest_fading : oldest;
        voice_end(e, free_v);
    }
    return free_v;
}

/* The frames a /stop fades a voice of `p` over: its release, at least the
 * declick fade. */
static uint32_t release_frames(const struct engine *e, const struct play_params *p)
{
    double f = (double)play_release(p) * e->rate;
    if (!(f > e->fade_frames)) /* NaN too */
        return e->fade_frames;
    return f < (double)(UINT32_MAX / 2) ? (uint32_t)lround(f) : UINT32_MAX / 2;
}

void voice_start(struct engine *e, const struct ctl_msg *m, bool loop, uint32_t delay)
{
    /* The group first: the voices it cuts fade in their own structs and no
     * longer count against the polyphony. */
    int32_t cut = play_cut(&m->play);
    if (cut)
        cut_group(e, cut, m->id, delay);
    struct voice *v = voice_alloc(e, delay);
    struct slot *s = &e->slots[m->id];
    const struct sample_buffer *b = s->buf;
    uint32_t i = (uint32_t)(v - e->voices);
    mixer_start(v, b, m->velocity * s->gain, &m->play, loop, delay, e->rate, e->fade_frames);
    v->slot = m->id;
    v->out = play_out(&m->play);
    e->pair[i] = (uint8_t)v->out;
    v->buf = b;
    v->started = ++e->started_counter;
    e->sounding[i / 64] |= (uint64_t)1 << (i % 64);
    e->links[i].ref = s->ref;
    e->links[i].release = release_frames(e, &m->play) & 0x7fffffffu;
    e->links[i].grouped = cut != 0;
    if (cut)
        e->cuts[i].cut = cut;
    e->refs[s->ref].count++;
    playing_add(e, i);
}

/* Fades out every playing voice of slot `id`, each over its release
 * (`release`) or the declick fade; each leaves the slot's list as it starts
 * fading (or ends, if silent). */
void fade_slot(struct engine *e, uint32_t id, uint32_t delay, bool release)
{
    uint16_t i;
    while ((i = e->slots[id].playing) != ENGINE_NONE)
        voice_fade_out(e, &e->voices[i], delay, release ? e->links[i].release : e->fade_frames);
}

/* Applies one request; voices it starts begin `delay` frames into the
 * current period. */
void apply(struct engine *e, const struct ctl_msg *m, uint32_t delay)
{
    switch (m->type) {
    case CTL_PING:
        push_event(e, EV_PONG, 0, m->reply);
        break;
    case CTL_STOP:
        /* Each voice over its release; the fading voices fade on as they
         * are. */
        while (e->oldest != ENGINE_NONE)
            voice_fade_out(e, &e->voices[e->oldest], delay, e->links[e->oldest].release);
        /* No loop restarts after a stop, nor quantized starts waiting for
         * a launch point (unless the stop itself waited for one). */
        restart_clear(e);
        if (!(m->flags & CTL_ON_GRID))
            grid_cancel_starts(e, ENGINE_NONE);
        push_event(e, EV_STOPPED, 0, m->reply);
        break;
    case CTL_LOAD: {
        /* The loader has answered the /load already.  A buffer older than
         * the slot's last load or unload is dropped without a word: the
         * loader never publishes one (it checks the same order under its
         * lock), and if it did, the newer request would rightly stand. */
        if (m->id >= e->nslots || m->seq < e->slots[m->id].seq) {
            discard(e, m->buf);
            break;
        }
        struct slot *s = &e->slots[m->id];
        struct sample_buffer *old = s->buf;
        s->buf = m->buf;
        s->seq = m->seq;
        s->gain = m->velocity;
        if (old == m->buf)
            break; /* the same buffer again: its entry stands */
        /* The old entry first: its place may be the one the new takes. */
        if (old)
            ref_drop(e, s->ref);
        s->ref = ref_new(e, m->buf);
        break;
    }
    case CTL_PLAY:
        /* An empty slot is ignored by design; an output pair we do not
         * have, refused by the control side, is ignored too. */
        if (m->id < e->nslots && e->slots[m->id].buf && play_out(&m->play) < e->npairs)
            voice_start(e, m, false, delay);
        break;
    case CTL_LOOP:
        if (m->id >= e->nslots || !e->slots[m->id].buf || play_out(&m->play) >= e->npairs)
            break;
        loop_start(e, m, delay);
        break;
    case CTL_STOP_SLOT:
        if (m->id < e->nslots) {
            restart_cancel(e, m->id);
            if (!(m->flags & CTL_ON_GRID))
                grid_cancel_starts(e, m->id);
            fade_slot(e, m->id, delay, true);
        }
        break;
    case CTL_TEMPO:
        /* From this period's first frame, the beat there kept. */
        if (beat_tempo_valid(m->beat)) {
            beat_timeline_set_tempo(&e->timeline, m->beat, e->period_frame);
            if (!e->linked)
                e->span = beat_timeline_span(&e->timeline, e->period_frame);
        }
        break;
    case CTL_QUANTUM:
        if (beat_quantum_valid(m->beat)) {
            beat_timeline_set_quantum(&e->timeline, m->beat);
            if (!e->linked)
                e->span.quantum = m->beat;
        }
        break;
    case CTL_UNLOAD: {
        if (m->id >= e->nslots)
            break;
        struct slot *s = &e->slots[m->id];
        if (m->seq >= s->seq) {
            /* A load requested before this unload must not refill the slot. */
            struct sample_buffer *old = s->buf;
            restart_cancel(e, m->id);
            fade_slot(e, m->id, delay, false);
            s->buf = NULL;
            s->seq = m->seq;
            if (old) {
                ref_drop(e, s->ref);
                s->ref = ENGINE_NONE;
            }
        }
        /* The loader's own unloads carry no reply: no event (protocol.h). */
        if (m->reply)
            push_event(e, EV_UNLOADED, m->id, m->reply);
        break;
    }
    default:
        break;
    }
}

/* A timed request due in this period (or already past): the audio thread
 * turns its time into a frame offset with this period's own clock reading,
 * which is more exact than any mapping made earlier on another thread.  A
 * quantized one then takes the first launch point at or after that
 * frame. */
static void apply_timed(struct engine *e, const struct ctl_msg *m, struct engine_clock c,
                        uint32_t nframes)
{
    uint32_t delay = 0;
    if (m->when < c.t0) {
        atomic_fetch_add_explicit(&e->stats.late, 1, memory_order_relaxed);
    } else if (c.t1 > c.t0) {
        uint64_t d = ((m->when - c.t0) * nframes + (c.t1 - c.t0) / 2) / (c.t1 - c.t0);
        delay = d < nframes ? (uint32_t)d : nframes - 1;
    }
    atomic_fetch_sub_explicit(&e->sched_pending, 1, memory_order_relaxed);
    if (engine_quantized(m))
        launch(e, *m, nframes, delay);
    else
        apply(e, m, delay);
}

/* An untimed /play or /loop that waited too long (the server stalled) is
 * dropped rather than fired with everything else that waited. */
static inline bool stale(const struct ctl_msg *m, struct engine_clock c)
{
    return (m->type == CTL_PLAY || m->type == CTL_LOOP) && m->arrived && c.now &&
           c.now > m->arrived + ENGINE_STALE_US;
}

void engine_process(struct engine *e, float *const *outs, uint32_t nframes,
                    struct engine_clock clock)
{
    struct ctl_msg m;

    denormals_off();

    span_begin(e, &clock, nframes);

    /* Commands are applied up to a snapshot of the command ring taken
     * before the load ring is drained (ring_readable(): acquire).  A
     * command sent after a load was published -- e.g. a /play sent once the
     * loader's /done arrived -- is therefore either in the snapshot, and
     * then its load is already visible and applied just below, or it waits
     * for the next period; it never finds the slot before its load.  The
     * snapshot is at most the ring's capacity, so it also bounds the work. */
    uint32_t ncmd = ring_readable(&e->cmd);
    for (uint32_t k = ring_capacity(&e->load); k > 0 && ring_pop(&e->load, &m); k--)
        apply(e, &m, 0);
    for (; ncmd > 0 && ring_pop(&e->cmd, &m); ncmd--) {
        if (!(m.flags & CTL_TIMED)) {
            atomic_fetch_sub_explicit(&e->cmd_untimed, 1, memory_order_relaxed);
            if (stale(&m, clock)) {
                atomic_fetch_add_explicit(&e->stats.late, 1, memory_order_relaxed);
                if (engine_quantized(&m))
                    atomic_fetch_sub_explicit(&e->grid_pending, 1, memory_order_relaxed);
            } else if (engine_quantized(&m))
                launch(e, m, nframes, 0);
            else
                apply(e, &m, 0);
        } else if (m.when >= clock.t1 && e->sched.n < ENGINE_SCHED)
            schedule_push(&e->sched, &m);
        else
            apply_timed(e, &m, clock, nframes); /* due now (or, impossibly, no room) */
    }
    /* Every timed request in the snapshot or the heap holds a place of the
     * schedule, so this period applies at most ENGINE_SCHED of them (from
     * either), each once, and pushes at most as many. */
    while (e->sched.n > 0 && schedule_top(&e->sched)->when < clock.t1) {
        m = *schedule_top(&e->sched);
        schedule_pop(&e->sched);
        apply_timed(e, &m, clock, nframes);
    }
    /* Musical time: fitted loops follow the tempo, then what is due on the
     * grid, then the loops' restarts. */
    fit_follow(e);
    launch_due(e, nframes);
    restart_due(e, nframes);
    midi_period(e, nframes);

    for (uint32_t k = 0; k < 2 * e->npairs; k++)
        memset(outs[k], 0, nframes * sizeof(float));

    /* Both passes go in index order (the order of the sums, so the output
     * does not depend on the bitmap). */
    struct sounding_walk w = sounding_begin(e);
    for (uint32_t i; sounding_next(&w, &i);)
        mixer_prefetch(&e->voices[i], nframes);
    uint32_t active = 0;
    w = sounding_begin(e);
    for (uint32_t i; sounding_next(&w, &i);) {
        /* < npairs: voice_start() starts no other. */
        uint32_t k = e->pair[i];
        if (mixer_render(&e->voices[i], outs[2 * k], outs[2 * k + 1], nframes))
            active++;
        else
            voice_end(e, &e->voices[i]);
    }

    if (e->notify) {
        e->notify = false;
        sem_post(&e->wake);
    }

    span_publish(e, &clock);

    atomic_store_explicit(&e->stats.voices_active, active, memory_order_relaxed);
    atomic_fetch_add_explicit(&e->stats.periods, 1, memory_order_relaxed);
}
