/* engine.c - the engine proper: slots, the voice pool's bookkeeping (which
 * voice starts, is stolen, fades or ends), applying commands, and
 * engine_process(), the audio thread's one entry point.  The mixing of a
 * voice is mixer.c's, the timed requests' heap schedule.c's, and what the
 * other threads run engine_doors.c's.
 *
 * engine_process() is the whole real-time path.  It is written so that its
 * running time is bounded by the pool sizes fixed at start-up:
 *  - at most one ring capacity of messages is applied per period, so a
 *    producer that keeps pushing cannot keep the audio thread in the loop
 *    (commands: only those already in the ring when the period began; the
 *    timed ones that come due: at most the schedule's capacity);
 *  - applying a message never walks the voice pool ("Bounded periods"
 *    below);
 *  - musical time: the quantized requests that come due (each taken from
 *    the grid at most twice), one restart per `beats` loop, and in a period
 *    whose tempo changed one walk of those loops to refit their rates (at
 *    most one per slot; "Loops locked to the beat");
 *  - mixing is O(voices x frames), with no per-voice work for free voices.
 *
 * Bounded periods.  A period may apply ENGINE_CMD_RING commands and as many
 * timed ones, so what one request costs is multiplied by thousands: a walk
 * of up to 512 voice structs per request does not fit in a period.  Every
 * request finds what it needs through bookkeeping kept where voices start,
 * start fading and end (engine.h, voice_links):
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
 *    in a trie of fixed depth ("Cut groups"): O(1) plus O(1) per voice it
 *    fades;
 *  - releasing a buffer: a count of its users (engine.refs), O(1).
 * Which voice is stolen, faded or cut is the same as a walk would choose,
 * and the struct a voice starts in is still the lowest free one, so the
 * mix (summed in index order) is the same too.
 *
 * Cut groups.  A voice started with cut g > 0 fades out (the declick fade,
 * from its own frame) every playing voice started with the same g, of any
 * slot; g < 0, only those of its own slot with that g.  So a group is a key
 * of 48 bits: g > 0 gives g - 1 (31 bits); g < 0 gives bit 47, the slot (16
 * bits) and -g - 1 (31 bits).  The playing voices of a key are a list
 * (voice_links: cprev, cnext) whose head is a leaf of a 16-ary trie of
 * ENGINE_CUT_LEVELS levels on the key.  Why a trie rather than a hash: its
 * cost is the same fixed number of steps for any key, where chains or
 * probes of a hash grow with the keys that collide, which the group numbers
 * a client sends decide.  A key is in the trie while one of its voices
 * plays, so at most npool keys, each with at most ENGINE_CUT_LEVELS - 1
 * nodes besides the root: the node pool (engine_init) never runs out.
 *
 * Releasing buffers: a voice points straight at the immutable buffer it
 * started on, so reloading a slot never disturbs voices that sound; the old
 * buffer stays alive until neither its slot nor any voice refers to it, and
 * only then goes to the trash ring.  Its count of users (engine.refs) drops
 * exactly when a reference disappears (slot replaced or emptied, voice
 * ended or cut), and the last one sends it.
 */
#include "engine.h"

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
     * below the root ("Cut groups"). */
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

void engine_set_timeline(struct engine *e, double tempo, double quantum)
{
    beat_timeline_init(&e->timeline, tempo, quantum, e->rate);
    e->span = beat_timeline_span(&e->timeline, e->next_frame);
    atomic_store(&e->pub.tempo, tempo);
    atomic_store(&e->pub.quantum, quantum);
}

void engine_set_midi_slots(struct engine *e, uint32_t n)
{
    e->midi_slots = n < e->nslots ? n : e->nslots;
    for (uint32_t id = e->midi_slots; id < e->nslots; id++)
        midi_map_set(&e->map, id, -1);
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

/* ---- cut groups: lists of playing voices in a trie of fixed depth ------ */

/* The key of group g for a voice of `slot` ("Cut groups"); g != 0. */
static inline uint64_t cut_key(int32_t g, uint32_t slot)
{
    if (g > 0)
        return (uint64_t)g - 1;
    return (uint64_t)1 << 47 | (uint64_t)slot << 31 | ((uint64_t)(-(int64_t)g) - 1);
}

_Static_assert(4 * ENGINE_CUT_LEVELS >= 48, "the trie spans the 48 bits of a cut key");
_Static_assert(ENGINE_MAX_SLOTS <= 65536, "a slot fits the 16 bits of a cut key");
_Static_assert(ENGINE_MAX_PAIRS <= 256, "an output pair fits engine.pair's bytes");
_Static_assert(1 + (ENGINE_CUT_LEVELS - 1) * 2 * ENGINE_MAX_VOICES < ENGINE_NONE,
               "cut nodes are 16-bit indices beside ENGINE_NONE");

/* The child of `key` at `level` (0: the root's). */
static inline uint32_t cut_nibble(uint64_t key, uint32_t level)
{
    return (uint32_t)(key >> (4 * (ENGINE_CUT_LEVELS - 1 - level))) & (ENGINE_CUT_FAN - 1);
}

/* The last-level node on key's path, whose child cut_nibble(key,
 * ENGINE_CUT_LEVELS - 1) is the head of the group's list.  With `make`, the
 * nodes missing on the way are taken from the free stack (there are always
 * enough: "Cut groups"); without, ENGINE_NONE when one is missing. */
static uint16_t cut_leaf(struct engine *e, uint64_t key, bool make)
{
    uint16_t n = 0;
    for (uint32_t level = 0; level + 1 < ENGINE_CUT_LEVELS; level++) {
        uint16_t *c = &e->cut_nodes[n].child[cut_nibble(key, level)];
        if (*c == ENGINE_NONE) {
            if (!make)
                return ENGINE_NONE;
            *c = e->cut_free[--e->ncut_free];
            e->cut_nodes[n].used++;
        }
        n = *c;
    }
    return n;
}

/* Key's list has just become empty: frees the nodes of its path that hold
 * nothing else, from the leaf up (never the root). */
static void cut_prune(struct engine *e, uint64_t key)
{
    uint16_t path[ENGINE_CUT_LEVELS];
    path[0] = 0;
    for (uint32_t level = 0; level + 1 < ENGINE_CUT_LEVELS; level++)
        path[level + 1] = e->cut_nodes[path[level]].child[cut_nibble(key, level)];
    for (uint32_t level = ENGINE_CUT_LEVELS - 1; level > 0; level--) {
        if (--e->cut_nodes[path[level]].used > 0)
            return;
        e->cut_nodes[path[level - 1]].child[cut_nibble(key, level - 1)] = ENGINE_NONE;
        e->cut_free[e->ncut_free++] = path[level];
    }
    e->cut_nodes[0].used--;
}

/* Puts playing voice i (grouped) at the front of its group's list. */
static void cut_add(struct engine *e, uint32_t i)
{
    struct cut_links *l = &e->cuts[i];
    uint64_t key = cut_key(l->cut, e->voices[i].slot);
    uint16_t leaf = cut_leaf(e, key, true);
    uint32_t k = cut_nibble(key, ENGINE_CUT_LEVELS - 1);
    uint16_t *head = &e->cut_nodes[leaf].child[k];
    l->cleaf = leaf;
    l->cchild = (uint16_t)k;
    l->cprev = ENGINE_NONE;
    l->cnext = *head;
    if (*head != ENGINE_NONE)
        e->cuts[*head].cprev = (uint16_t)i;
    else
        e->cut_nodes[leaf].used++;
    *head = (uint16_t)i;
}

static void cut_remove(struct engine *e, uint32_t i)
{
    struct cut_links *l = &e->cuts[i];
    if (l->cprev != ENGINE_NONE)
        e->cuts[l->cprev].cnext = l->cnext;
    else
        e->cut_nodes[l->cleaf].child[l->cchild] = l->cnext;
    if (l->cnext != ENGINE_NONE)
        e->cuts[l->cnext].cprev = l->cprev;
    else if (l->cprev == ENGINE_NONE)
        cut_prune(e, cut_key(l->cut, e->voices[i].slot));
    l->cprev = l->cnext = l->cleaf = ENGINE_NONE;
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
static void voice_fade_out(struct engine *e, struct voice *v, uint32_t delay, uint32_t frames)
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

/* Fades out, over the declick fade from frame `delay`, every playing voice
 * of cut group g (!= 0) as a voice of `slot` sees it ("Cut groups"); each
 * leaves the group's list as it starts fading (or ends, if silent). */
static void cut_group(struct engine *e, int32_t g, uint32_t slot, uint32_t delay)
{
    uint64_t key = cut_key(g, slot);
    uint16_t leaf = cut_leaf(e, key, false);
    if (leaf == ENGINE_NONE)
        return;
    uint16_t i = e->cut_nodes[leaf].child[cut_nibble(key, ENGINE_CUT_LEVELS - 1)];
    while (i != ENGINE_NONE) {
        uint16_t next = e->cuts[i].cnext; /* the leaf may be freed with the last */
        voice_fade_out(e, &e->voices[i], delay, e->fade_frames);
        i = next;
    }
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

static void voice_start(struct engine *e, const struct ctl_msg *m, bool loop, uint32_t delay)
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
static void fade_slot(struct engine *e, uint32_t id, uint32_t delay, bool release)
{
    uint16_t i;
    while ((i = e->slots[id].playing) != ENGINE_NONE)
        voice_fade_out(e, &e->voices[i], delay, release ? e->links[i].release : e->fade_frames);
}

/* ---- loops locked to the beat --------------------------------------------
 * A /loop with `beats N` plays its range once per cycle (the voice does not
 * wrap: a shorter sample is followed by silence, a longer one is cut) and
 * restarts every N beats counted from its launch point: the restart is the
 * same /loop applied again at beat + N, so the old voice's declick fade
 * starts on the restart frame under the new voice at full level.  Each
 * slot has at most one restart pending (engine.restarts), in a min-heap of
 * slot ids by beat: O(log nslots) to add or cancel one.  Restarts are
 * computed from beats, not frames, so a tempo change moves them and the
 * cycle never drifts. */

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
static void restart_cancel(struct engine *e, uint32_t id)
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
static void fit_follow(struct engine *e)
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
static void loop_start(struct engine *e, const struct ctl_msg *m, uint32_t delay)
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

/* Applies one request; voices it starts begin `delay` frames into the
 * current period. */
static void apply(struct engine *e, const struct ctl_msg *m, uint32_t delay)
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
        /* No loop restarts after a stop: one walk of the pending restarts,
         * at most one per slot. */
        for (uint32_t k = 0; k < e->nrestart; k++)
            e->slots[e->restart_heap[k]].rheap = ENGINE_NONE;
        e->nrestart = 0;
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

/* A quantized request (engine_quantized) whose launch point may not have
 * its frame before offset `from` of this period: the first launch point of
 * its quant from there (beat.h).  It starts now if that frame is in this
 * period, else it waits in the grid, keyed by the beat, so that a tempo
 * change moves it to the new tempo's time for the same beat.  Its place in
 * the grid was reserved by engine_send(). */
static void launch(struct engine *e, struct ctl_msg m, uint32_t nframes, uint32_t from)
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
static void launch_due(struct engine *e, uint32_t nframes)
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
static void restart_due(struct engine *e, uint32_t nframes)
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

/* ---- MIDI ----------------------------------------------------------------
 * A note-on finds the slots claiming its note through e->map (midi.h):
 * O(claimants) per message, never a walk of the slots.  Each claimant that
 * hears the channel plays as its defaults say (e->pads, as the control
 * side last sent them), its velocity the note's through the slot's
 * `velcurve`; an empty claimant does nothing (but the note was claimed).
 * A note-off (or a note-on of velocity 0) releases, per slot `noteoff`:
 * `release` fades the slot's playing voices over their release; `toggle`
 * acts on note-ons only (the next note-on of the note stops what the first
 * started).  CC 120 fades every playing voice of the slots hearing its
 * channel with the declick fade (a walk of the playing voices: O(voices));
 * CC 123 is a note-off for each note held (e->held) on its channel, and
 * for slots of any channel, on every channel.  Everything acts at its own
 * frame, as a timed request does. */

static bool slot_hears(const struct engine *e, uint32_t id, uint8_t channel)
{
    return midi_hears(midi_channel_of(&e->pads[id].midi), channel);
}

static void midi_note_on(struct engine *e, uint32_t id, uint8_t velocity, uint32_t delay)
{
    const struct pad_msg *pd = &e->pads[id];
    struct slot *s = &e->slots[id];
    if (!s->buf)
        return;
    bool loop = midi_mode_of(&pd->midi) == MIDI_MODE_LOOP;
    if (midi_noteoff_of(&pd->midi) == MIDI_OFF_TOGGLE) {
        uint16_t on = loop ? s->loop : s->playing;
        if (on != ENGINE_NONE) {
            fade_slot(e, id, delay, true);
            return;
        }
    }
    struct ctl_msg m = {.type = loop ? CTL_LOOP : CTL_PLAY,
                        .id = id,
                        .velocity = midi_velocity(&pd->midi, velocity),
                        .play = pd->play};
    apply(e, &m, delay);
}

static void midi_note_off(struct engine *e, uint32_t id, uint32_t delay)
{
    if (midi_noteoff_of(&e->pads[id].midi) == MIDI_OFF_RELEASE)
        fade_slot(e, id, delay, true);
}

static inline bool held(const struct engine *e, uint8_t channel, uint8_t note)
{
    return (e->held[channel - 1][note / 64] >> (note % 64)) & 1;
}

static inline void hold(struct engine *e, uint8_t channel, uint8_t note, bool on)
{
    uint64_t bit = (uint64_t)1 << (note % 64);
    if (on)
        e->held[channel - 1][note / 64] |= bit;
    else
        e->held[channel - 1][note / 64] &= ~bit;
}

/* CC 123 on `channel`: a note-off for every note held that a slot hears
 * (on its channel: the slots of that channel and those of any; on the
 * others: those of any channel). */
static void all_notes_off(struct engine *e, uint8_t channel, uint32_t delay)
{
    for (uint8_t ch = 1; ch <= MIDI_CHANNELS; ch++)
        for (uint32_t w = 0; w < MIDI_NOTES / 64; w++)
            for (uint64_t bits = e->held[ch - 1][w]; bits; bits &= bits - 1) {
                uint8_t note = (uint8_t)(w * 64 + (uint32_t)__builtin_ctzll(bits));
                for (uint32_t id = midi_map_first(&e->map, note); id != MIDI_NONE;
                     id = midi_map_next(&e->map, id)) {
                    uint8_t sc = midi_channel_of(&e->pads[id].midi);
                    if (sc == 0 || (ch == channel && sc == channel))
                        midi_note_off(e, id, delay);
                }
            }
    for (uint32_t w = 0; w < MIDI_NOTES / 64; w++)
        e->held[channel - 1][w] = 0;
}

/* CC 120 on `channel`: every playing voice of a slot hearing it fades out
 * with the declick fade. */
static void all_sound_off(struct engine *e, uint8_t channel, uint32_t delay)
{
    uint16_t i = e->oldest;
    while (i != ENGINE_NONE) {
        uint16_t next = e->links[i].next; /* i leaves the list as it fades */
        if (slot_hears(e, e->voices[i].slot, channel))
            voice_fade_out(e, &e->voices[i], delay, e->fade_frames);
        i = next;
    }
}

static void midi_apply(struct engine *e, const struct midi_msg *m, uint32_t *ignored)
{
    switch (m->kind) {
    case MIDI_NOTE_ON:
    case MIDI_NOTE_OFF: {
        bool on = m->kind == MIDI_NOTE_ON, claimed = false;
        hold(e, m->channel, m->a, on);
        for (uint32_t id = midi_map_first(&e->map, m->a); id != MIDI_NONE;
             id = midi_map_next(&e->map, id)) {
            if (!slot_hears(e, id, m->channel))
                continue;
            claimed = true;
            if (on)
                midi_note_on(e, id, m->b, m->frame);
            else
                midi_note_off(e, id, m->frame);
        }
        if (on && !claimed)
            (*ignored)++;
        break;
    }
    case MIDI_CC:
        if (m->a == 120)
            all_sound_off(e, m->channel, m->frame);
        else if (m->a == 123)
            all_notes_off(e, m->channel, m->frame);
        else
            (*ignored)++;
        break;
    default:
        (*ignored)++;
        break;
    }
}

void engine_midi_event(struct engine *e, uint32_t frame, const uint8_t *bytes, size_t n)
{
    uint32_t ignored = 0;
    e->nmidi += (uint32_t)midi_parse(&e->parser, frame, bytes, n, e->midi + e->nmidi,
                                     ENGINE_MIDI_QUEUE - e->nmidi, &ignored);
    if (ignored)
        atomic_fetch_add_explicit(&e->stats.midi_ignored, ignored, memory_order_relaxed);
}

/* The slots' defaults the control side sent (at most the ring's capacity,
 * so a sender that keeps pushing cannot hold the period), then this
 * period's MIDI messages, each at its frame (< nframes). */
static void midi_period(struct engine *e, uint32_t nframes)
{
    struct pad_msg pm;
    for (uint32_t k = ring_capacity(&e->pad); k > 0 && ring_pop(&e->pad, &pm); k--) {
        if (pm.id >= e->nslots)
            continue;
        e->pads[pm.id] = pm;
        if (pm.id < e->midi_slots)
            midi_map_set(&e->map, pm.id, midi_note_of(&pm.midi, pm.id));
    }
    uint32_t ignored = 0;
    for (uint32_t k = 0; k < e->nmidi; k++) {
        struct midi_msg m = e->midi[k];
        if (m.frame >= nframes)
            m.frame = nframes ? nframes - 1 : 0;
        midi_apply(e, &m, &ignored);
    }
    e->nmidi = 0;
    if (ignored)
        atomic_fetch_add_explicit(&e->stats.midi_ignored, ignored, memory_order_relaxed);
}

void engine_process(struct engine *e, float *const *outs, uint32_t nframes,
                    struct engine_clock clock)
{
    struct ctl_msg m;

    denormals_off();

    /* This period's musical time (beat.h). */
    e->period_frame = clock.has_frame ? clock.frame : e->next_frame;
    if (e->period_frame < e->next_frame) /* a new JACK server: the beat goes on */
        beat_timeline_rebase(&e->timeline, e->next_frame, e->period_frame);
    e->next_frame = e->period_frame + nframes;
    e->linked = clock.link != NULL;
    e->span = clock.link ? *clock.link : beat_timeline_span(&e->timeline, e->period_frame);

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
    /* Bounded by ENGINE_SCHED, and each entry is applied once. */
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

    /* The span for /beat and /status (engine_beat_now): a sequence lock. */
    uint32_t seq = atomic_load_explicit(&e->pub.seq, memory_order_relaxed);
    atomic_store_explicit(&e->pub.seq, seq + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    /* The JACK time at which the span's beat holds, for extrapolating "now". */
    atomic_store_explicit(&e->pub.t0, clock.t0 + (uint64_t)llround(e->span.heard_after_us),
                          memory_order_relaxed);
    atomic_store_explicit(&e->pub.beat, e->span.beat, memory_order_relaxed);
    atomic_store_explicit(&e->pub.per_frame, e->span.per_frame, memory_order_relaxed);
    atomic_store_explicit(&e->pub.tempo, e->span.tempo, memory_order_relaxed);
    atomic_store_explicit(&e->pub.quantum, e->span.quantum, memory_order_relaxed);
    atomic_store_explicit(&e->pub.seq, seq + 2, memory_order_release);

    atomic_store_explicit(&e->stats.voices_active, active, memory_order_relaxed);
    atomic_fetch_add_explicit(&e->stats.periods, 1, memory_order_relaxed);
}
