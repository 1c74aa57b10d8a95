/* engine.h - the audio engine: sample slots, the voice pool, the doors of
 * the other threads into it.  The voice line and the mixer are mixer.h's,
 * the schedule schedule.h's.
 *
 * The engine is everything the JACK process callback touches, and nothing
 * else.  It is a plain data structure plus one function, engine_process(),
 * which drains the control rings and renders N frames into the float
 * buffers of its output pairs; the JACK glue (audio.c) only fetches port buffers and calls it, so
 * the mixer is tested and benchmarked without a JACK server.
 *
 * Ownership and threads:
 *  - engine_init()/engine_destroy() run on the main thread while no audio
 *    thread runs.  All memory (slots, voices, rings) is allocated there; the
 *    sizes are fixed for the life of the process.
 *  - `cmd` ring:    OSC thread -> audio   (ping, stop, play)
 *    `pad` ring:    whoever holds the defaults table's lock -> audio (a
 *                   slot's defaults for MIDI; params.h, struct pads: the
 *                   lock makes its producers one at a time)
 *    `load` ring:   loader     -> audio   (load, carries a sample buffer)
 *    `events` ring: audio -> reply thread (pong, stopped, unloaded)
 *    `trash` ring:  audio -> reply thread (sample buffers to free)
 *    Each ring has exactly one producer and one consumer.
 *  - `wake` is posted by the audio thread after it pushed to `events` or
 *    `trash`, so the reply thread sleeps on it instead of polling.
 *  - Order between the two rings into the audio thread: engine_process()
 *    reads how many commands are waiting (with acquire ordering) before it
 *    drains `load`, and applies only those.  So a command pushed after a
 *    buffer was pushed onto `load` -- or sent by a client after hearing
 *    about it -- is applied after that buffer is in its slot.  This is what
 *    lets the loader answer /done as soon as it has pushed (loader.h).
 *
 * Why the trash ring can never be full: every live sample buffer is counted
 * in `live_buffers` from allocation (engine_buffer_reserve) to free
 * (engine_buffer_unreserve), and the loader refuses a load when the count
 * would exceed `max_live`.  A buffer in the trash ring is live, so the ring
 * never holds more than max_live entries, and its capacity is >= max_live.
 */
#ifndef LOOPERD_ENGINE_H
#define LOOPERD_ENGINE_H

#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "beat.h"
#include "messages.h"
#include "midi.h"
#include "mixer.h"
#include "ring.h"
#include "sample.h"
#include "schedule.h"

#define ENGINE_DEFAULT_SLOTS 32
#define ENGINE_DEFAULT_VOICES 32
/* The numbered slots (--slots) are ids 0..N-1; the sample library
 * (library.h) has its own slots above them, up to ENGINE_MAX_LIBRARY. */
#define ENGINE_MAX_NUMBERED 1024
#define ENGINE_MAX_LIBRARY 16384
#define ENGINE_MAX_SLOTS (ENGINE_MAX_NUMBERED + ENGINE_MAX_LIBRARY)
#define ENGINE_MAX_VOICES 256
#define ENGINE_DEFAULT_PAIRS 1
#define ENGINE_MAX_PAIRS 32 /* stereo output pairs (--outputs) */
#define ENGINE_LOAD_RING 16 /* decoded buffers waiting for the next period */
/* Timed requests sent and not yet applied (in the command ring or the
 * schedule): 4096 for any request, 16 more kept for /stop
 * (PROTOCOL_STOP_RESERVE).  Sized for a dense pattern sent ahead
 * (docs/timing.md, "Capacities"): a burst of 4096 events, all pending at
 * once, is held whole. */
#define ENGINE_SCHED (4096 + 16)
/* Quantized requests waiting on the audio side for their launch point
 * (a timed one holds a place of the schedule as well until it is due). */
#define ENGINE_GRID (4096 + 16)
/* Untimed requests waiting in the command ring for the next period: what
 * one period applies of them at most (engine.c, "Bounded periods"). */
#define ENGINE_CMD_UNTIMED 1024
/* The command ring holds both: every timed request sent and not yet taken
 * has a place of the schedule, every untimed one of ENGINE_CMD_UNTIMED, so
 * the ring itself is never what refuses a request. */
#define ENGINE_CMD_RING 8192
_Static_assert(ENGINE_CMD_RING >= ENGINE_SCHED + ENGINE_CMD_UNTIMED,
               "the command ring holds every request that has a place");
/* MIDI messages one period applies (engine_midi_event); more are counted
 * in midi_ignored. */
#define ENGINE_MIDI_QUEUE 512
/* Events in flight are bounded by the control side (see protocol.c). */
#define ENGINE_EVENT_RING 1024
/* Length of the fade applied by /stop, in seconds: long enough not to click,
 * short enough to feel instant. */
#define ENGINE_FADE_SECONDS 0.005
/* An untimed trigger this much older than the period that would start it
 * (after a stall of the server) is stale: a performer's tap from seconds
 * ago is not music. */
#define ENGINE_STALE_US 1000000u

/* "No voice" / "no entry" in the 16-bit indices of the voice pool's
 * bookkeeping (npool <= 512, nslots + npool <= 17920, cut nodes <= 5633). */
#define ENGINE_NONE 0xffffu

/* Cut groups (engine_cut.c) are found through a trie on a 48-bit
 * key, 4 bits a level: a group > 0 is one key whatever the slot, a group
 * < 0 one key per slot. */
#define ENGINE_CUT_FAN 16
#define ENGINE_CUT_LEVELS 12

struct slot {
    struct sample_buffer *buf; /* current buffer or NULL; owned by the engine */
    uint64_t seq;              /* seq of the load that filled it */
    float gain;                /* the bank's gain for this slot, 1 from /load */
    uint16_t ref;              /* buf's entry in engine.refs, ENGINE_NONE when empty */
    uint16_t playing;          /* first of the slot's playing voices (voice_links.snext) */
    uint16_t loop;             /* the slot's playing loop voice, or ENGINE_NONE */
    uint16_t rheap;            /* its place in engine.restart_heap, ENGINE_NONE if none */
};

/* A `beats` loop's next restart (engine_time.c, "Loops locked to the beat"): the
 * /loop that started it, to apply again at beat `beat`. */
struct restart {
    struct ctl_msg m;
    double beat;
};

/* The voice pool's bookkeeping, beside the voices so that mixing never
 * reads it (it is touched where a voice starts, starts fading or ends).  A
 * sounding voice is either playing (fade_step not > 0) or fading:
 *  - a playing voice is on the engine's list of playing voices, oldest
 *    first (prev/next), and on its slot's list of playing voices
 *    (sprev/snext); one started with a cut group (`grouped`) also on its
 *    group's list (struct cut_links);
 *  - a fading voice is in the heap of fading voices, oldest start first
 *    (heap: its place there).
 * `ref` is the entry of engine.refs that counts the voice's use of its
 * buffer.  `release`: the frames a /stop fades the voice over (its
 * `release`, at least the declick fade).  All indices are voice indices or
 * ENGINE_NONE.  Kept to 16 bytes: a burst of requests misses a line of
 * these per few voices it touches. */
struct voice_links {
    uint16_t prev, next;
    uint16_t sprev, snext;
    uint16_t heap;
    uint16_t ref;
    uint32_t release : 31;
    uint32_t grouped : 1; /* started with a cut group: engine.cuts[i] holds it */
};
_Static_assert(sizeof(struct voice_links) == 16, "four voice_links to a cache line");

/* A voice's cut group, read only for a voice that has one (`grouped`): the
 * group, and its place on the group's list of playing voices (cprev/cnext;
 * the head is child `cchild` of trie node `cleaf`; all ENGINE_NONE while
 * off the list). */
struct cut_links {
    int32_t cut;
    uint16_t cprev, cnext;
    uint16_t cleaf, cchild;
};

/* A node of the cut groups' trie: children are nodes, or at the last level
 * the first voice of a group's list; `used` counts those not ENGINE_NONE. */
struct cut_node {
    uint16_t child[ENGINE_CUT_FAN];
    uint16_t used;
};

/* A fading voice in engine.fading: its start order is the key. */
struct fade_entry {
    uint64_t started;
    uint32_t voice;
};

/* A buffer a slot or a voice uses, and how many of them do: the slot that
 * holds it counts one, every sounding voice on it one more.  When the count
 * reaches 0 the buffer goes to the trash ring, once. */
struct buf_ref {
    const struct sample_buffer *buf;
    uint32_t count;
};

/* Words of the bitmap of sounding voices (engine.sounding). */
#define ENGINE_VOICE_WORDS ((2 * ENGINE_MAX_VOICES + 63) / 64)

struct engine_stats {
    _Atomic uint32_t voices_active; /* after the last period */
    _Atomic uint64_t periods;
    _Atomic uint64_t voices_stolen;
    _Atomic uint64_t late;         /* timed requests whose time had passed, and
                                      stale untimed triggers (dropped) */
    _Atomic uint64_t lost_events;  /* must stay 0: see the proof above */
    _Atomic uint64_t midi_ignored; /* MIDI input read and dropped (midi.h) */
};

struct engine {
    uint32_t rate;
    uint32_t nslots;
    uint32_t npairs;  /* stereo output pairs engine_process() renders */
    uint32_t nvoices; /* polyphony: voices that play at full gain */
    uint32_t npool;   /* voice structs: nvoices plus as many to fade out in */
    uint32_t fade_frames;
    struct slot *slots;
    struct voice *voices; /* npool of them, 64-byte aligned */
    /* Bit i set <=> voices[i].buf != NULL.  The one walk of the pool on
     * the audio thread, mixing, goes over the set bits, and a free voice is
     * found as a clear bit, so a free voice struct is never read (nor its
     * cache line missed). */
    uint64_t sounding[ENGINE_VOICE_WORDS];
    uint32_t voice_words; /* words of `sounding` in use: ceil(npool / 64) */
    /* Each voice's output pair (voices[i].out), npool of them: the mix
     * reads it here, on a few lines shared by all voices, and not on the
     * voice's second line, which a voice at rate 1 otherwise never has to
     * bring in (mixer.h). */
    uint8_t *pair;
    uint64_t started_counter;
    /* Everything the pool's requests need is found through these, so one
     * request costs O(log npool) (a /play, a /loop) or O(1) per voice it
     * fades (a /stop, a slot's stop or unload), never a walk of the pool
     * (engine.c, "Bounded periods"). */
    struct voice_links *links; /* npool of them */
    struct cut_links *cuts;    /* npool of them */
    uint16_t oldest, newest;   /* ends of the list of playing voices */
    uint32_t nplaying;         /* voices on it */
    struct fade_entry *fading; /* min-heap of the fading voices, npool places */
    uint32_t nfading;
    /* The cut groups' trie (engine_cut.c): node 0 is the root;
     * the unused ones are on a stack. */
    struct cut_node *cut_nodes;
    uint16_t *cut_free;
    uint32_t ncut_nodes, ncut_free;
    struct buf_ref *refs; /* nrefs entries: one per slot, one per voice struct */
    uint16_t *ref_free;   /* stack of the unused entries of refs */
    uint32_t nrefs, nref_free;
    bool notify; /* audio thread pushed to events or trash this period */

    /* From here to `wake`: the engine's own (engine*.c); other threads go
     * through the doors below. */
    /* Timed requests (schedule.h).  The control side reserves a place in
     * `sched_pending` before it sends a timed request (engine_send), and
     * the audio thread gives it back when the request is applied, so the
     * heap can never overflow. */
    struct schedule sched;
    _Atomic uint32_t sched_pending;
    /* Quantized requests waiting for their launch point, by beat
     * (schedule.h, by_beat); places reserved in `grid_pending` likewise. */
    struct schedule grid;
    _Atomic uint32_t grid_pending;
    /* Untimed requests in the command ring: a place taken by engine_send
     * (at most ENGINE_CMD_UNTIMED), given back as the audio thread takes
     * it off the ring. */
    _Atomic uint32_t cmd_untimed;
    /* Musical time (beat.h): the own timeline, this period's span (the
     * own one or clock.link), the next period's first frame when the clock
     * does not say, and the beats per frame fitted loops were last set
     * for. */
    struct beat_timeline timeline;
    struct beat_span span;
    uint64_t next_frame, period_frame; /* period_frame: this period's first */
    bool counted;                      /* a period with JACK's counter was seen */
    bool linked;                       /* this period's span is clock.link */
    double fit_per_frame;
    /* `beats` loops' next restarts: one per slot at most, a min-heap of
     * slot ids on restarts[id].beat (places in slot.rheap). */
    struct restart *restarts; /* nslots */
    uint16_t *restart_heap;   /* nslots */
    uint32_t nrestart;
    /* This period's span for the other threads (engine_beat_now): a
     * sequence lock, odd while the audio thread writes. */
    struct {
        _Atomic uint32_t seq;
        _Atomic uint64_t t0;                            /* the period's JACK time, us */
        _Atomic double beat, per_frame, tempo, quantum; /* the span's */
    } pub;

    /* MIDI (engine_midi.c): each slot's defaults as the control side
     * last sent them (`pad` ring, engine_pad_send), the note -> slots map
     * made from them, the parser's state between periods, the messages of
     * the period being rendered, and the notes held (channel, note). */
    struct pad_msg *pads; /* nslots */
    struct midi_map map;
    uint32_t midi_slots; /* slots below it claim notes (engine_set_midi_slots) */
    struct midi_parser parser;
    struct midi_msg midi[ENGINE_MIDI_QUEUE];
    uint32_t nmidi;
    uint64_t held[MIDI_CHANNELS][MIDI_NOTES / 64];

    struct ring cmd;
    struct ring pad;
    struct ring load;
    struct ring events;
    struct ring trash;
    sem_t wake;

    uint32_t max_live;
    _Atomic uint32_t live_buffers;
    _Atomic uint64_t sample_bytes; /* bytes of all live buffers, for /status */
    struct engine_stats stats;
};

/* Allocates everything.  nslots in 1..ENGINE_MAX_SLOTS, nvoices in
 * 1..ENGINE_MAX_VOICES, npairs (stereo output pairs) in 1..ENGINE_MAX_PAIRS,
 * rate > 0.  Returns 0 or a negative errno. */
int engine_init(struct engine *e, uint32_t nslots, uint32_t nvoices, uint32_t npairs,
                uint32_t rate);

/* Main thread before the audio thread runs: the own timeline's tempo and
 * quantum (valid: beat.h), --tempo and --quantum. */
void engine_set_timeline(struct engine *e, double tempo, double quantum);

/* Main thread before the audio thread runs: only slots 0..n-1 (the
 * numbered ones) claim MIDI notes; the library's slots above them never
 * do (a default claim of note 36 + id would give notes to library samples). */
void engine_set_midi_slots(struct engine *e, uint32_t n);

/* Frees every buffer still held (slots, rings) and the engine's memory.  Only
 * when no thread uses the engine any more. */
void engine_destroy(struct engine *e);

/* The period being rendered, on JACK's microsecond clock: it starts at t0
 * and the next one at t1 (jack_get_cycle_times()).  Timed requests due in
 * [t0, t1) start at their proportional frame offset inside the period.
 * `now` is JACK's clock as the period is rendered (jack_get_time(); 0:
 * unknown): an untimed /play or /loop that arrived more than
 * ENGINE_STALE_US before it is dropped and counted late. */
struct engine_clock {
    uint64_t t0, t1;
    uint64_t now;
    /* JACK's frame counter at the period's first frame, unwrapped to 64
     * bits (jack_get_cycle_times()), when has_frame; otherwise the engine
     * counts the frames it rendered.  The own timeline is a function of it
     * (beat.h). */
    uint64_t frame;
    bool has_frame;
    /* The first period of a new JACK client: its counter starts afresh,
     * and after the first client (a new server) the timeline is rebased so
     * the beat goes on.  Any other step of the counter is followed as it
     * is, so the timeline stays the function of JACK's counter that other
     * clients can compute. */
    bool new_counter;
    /* Musical time from elsewhere (Ableton Link), or NULL: the engine's
     * own timeline. */
    const struct beat_span *link;
};

/* The real-time entry point: applies waiting control messages (the loads
 * first, then the commands that were waiting when it began), then
 * overwrites the 2 * npairs buffers outs[0..2 * npairs) (pair k: left
 * outs[2k], right outs[2k + 1]) with `nframes` mixed frames, each voice in
 * its own pair.  Bounded time, no allocation, no locks, no system calls
 * other than sem_post. */
void engine_process(struct engine *e, float *const *outs, uint32_t nframes,
                    struct engine_clock clock);

/* Audio thread, before engine_process() of the same period: the bytes of
 * one MIDI input event at frame `frame` of the period (JACK's order: by
 * frame).  engine_process() then applies each note-on, note-off and
 * controller at its own frame. */
void engine_midi_event(struct engine *e, uint32_t frame, const uint8_t *bytes, size_t n);

/* ---- the doors: which thread may call what ------------------------------
 * Everything below but engine_process() is in engine_doors.c.  The rings,
 * the schedule and `wake` are the engine's own: no other file reaches
 * them, so each ring's one producer and one consumer are the functions
 * listed under one thread each. */

/* A reply token to let go (the control side frees it). */
typedef void (*engine_reply_fn)(void *ctx, struct reply_ctx *reply);

/* OSC thread.  Sends a command to the audio thread.  A CTL_TIMED one also
 * takes a place in the schedule, given back when the audio thread applies
 * it; a quantized one (engine_quantized) a place of the grid likewise.
 * An untimed one takes one of the ENGINE_CMD_UNTIMED places of the
 * command ring, given back when the audio thread takes it.  `keep` places
 * of each (untimed, the schedule, the grid) stay unused (the caller's
 * reserve for requests that must always get through).  Returns 0, -EAGAIN
 * when the command ring has no place for an untimed request, -ENOSPC when
 * the schedule (or the grid) has none for a timed (quantized) one. */
int engine_send(struct engine *e, const struct ctl_msg *m, uint32_t keep);
/* OSC thread (any thread: a hint).  Commands not yet taken. */
uint32_t engine_cmds_waiting(const struct engine *e);
/* Any thread (a hint).  Places of the schedule taken: timed requests sent
 * and not yet applied. */
uint32_t engine_sched_pending(const struct engine *e);

/* Any thread.  The beat at JACK time `now_us` (jack_get_time()'s clock),
 * extrapolated from the last period's span, and its tempo and quantum;
 * before the first period, false with beat 0 and the timeline's start. */
bool engine_beat_now(const struct engine *e, double now_us, double *beat, double *tempo,
                     double *quantum);

/* True when `m` is quantized: it takes a place of the grid (engine_send). */
bool engine_quantized(const struct ctl_msg *m);
/* Whoever holds the defaults table's lock (params.h, struct pads: the
 * OSC, main and reply threads, one at a time): slot m->id's defaults for
 * MIDI.  False when the ring is full (the caller tries again later). */
bool engine_pad_send(struct engine *e, const struct pad_msg *m);

/* Loader.  Hands a CTL_LOAD (with its buffer) or a CTL_UNLOAD to the audio
 * thread; false when the load ring is full (nothing changed). */
bool engine_publish(struct engine *e, const struct ctl_msg *m);
/* Any thread (a hint).  Loads and unloads not yet taken. */
uint32_t engine_loads_waiting(const struct engine *e);

/* Reply thread.  Takes the next event; false when there is none. */
bool engine_take_event(struct engine *e, struct event *ev);
/* Reply thread.  Takes the next buffer the audio thread let go (to free
 * with engine_buffer_free), NULL when there is none. */
struct sample_buffer *engine_take_trash(struct engine *e);
/* Reply thread.  Sleeps until the audio thread pushed an event or trash,
 * engine_wake() was called, or CLOCK_MONOTONIC reaches `deadline` (NULL:
 * no deadline; a deadline already passed: only takes a wake-up already
 * posted).  True when woken, false when the deadline passed. */
bool engine_wait(struct engine *e, const struct timespec *deadline);
/* Any thread but the audio thread.  Wakes engine_wait(). */
void engine_wake(struct engine *e);

/* Main thread while no audio thread runs (or the audio thread itself).
 * Timed requests in the schedule, taken from the command ring. */
uint32_t engine_scheduled(const struct engine *e);
/* Main thread while no audio thread runs.  Drops every timed request in
 * the schedule, counted late, its place given back, its reply token passed
 * to `drop`; returns how many. */
uint32_t engine_drop_timed(struct engine *e, engine_reply_fn drop, void *ctx);
/* Main thread after the audio thread stopped for good.  Frees what waits
 * in the inputs: commands and timed requests (tokens to `drop`) and loads
 * (their buffers freed). */
void engine_drain_inputs(struct engine *e, engine_reply_fn drop, void *ctx);

/* Any thread but the audio thread: the budget of live sample buffers.
 * engine_buffer_reserve counts a new live buffer against max_live before it
 * is allocated; false when the budget is used up (the caller reports
 * "busy"). */
bool engine_buffer_reserve(struct engine *e);
/* Gives back a reservation that never got a buffer. */
void engine_buffer_unreserve(struct engine *e);
/* Counts a freshly built buffer's bytes (after engine_buffer_reserve). */
void engine_buffer_charge(struct engine *e, const struct sample_buffer *b);
/* Frees a charged buffer and returns its place and bytes.  A buffer the
 * audio thread lets go comes back through engine_take_trash. */
void engine_buffer_free(struct engine *e, struct sample_buffer *b);

#endif
