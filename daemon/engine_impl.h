/* engine_impl.h - the engine's private seams: what its parts (engine.c,
 * engine_cut.c, engine_time.c, engine_midi.c) call of one another.  Only
 * engine*.c include this; everyone else goes through engine.h's doors.
 *
 * The engine is one data structure (struct engine, engine.h) split by
 * concern rather than by thread: every function here runs on the audio
 * thread, inside engine_process(), under its rules (bounded, no
 * allocation, no locks, no system calls).  The core owns the voice pool's
 * bookkeeping and applying requests; the other parts own one structure
 * each and call back into the core only through the few functions below,
 * so the calls between parts go one way per function and the header has
 * no include circles: it includes engine.h, nothing includes it but
 * engine*.c.
 */
#ifndef LOOPERD_ENGINE_IMPL_H
#define LOOPERD_ENGINE_IMPL_H

#include "engine.h"

/* ---- the core (engine.c) ------------------------------------------------ */

/* Applies one request (a ctl_msg of any type); voices it starts begin
 * `delay` (< the period's frames) frames into the current period. */
void apply(struct engine *e, const struct ctl_msg *m, uint32_t delay);
/* Starts a voice of slot m->id (which holds a buffer), `loop` or one-shot,
 * `delay` frames in: first cuts m's cut group, then takes a voice struct
 * (stealing the oldest at full polyphony), then puts it on its lists. */
void voice_start(struct engine *e, const struct ctl_msg *m, bool loop, uint32_t delay);
/* Playing voice v starts fading out over `frames` frames from `delay`
 * (leaving the lists of playing voices, its cut group's too); a voice
 * already fading keeps its ramp, a silent one ends at once. */
void voice_fade_out(struct engine *e, struct voice *v, uint32_t delay, uint32_t frames);
/* Every playing voice of slot `id` fades out from `delay`, over its release
 * (`release`) or the declick fade. */
void fade_slot(struct engine *e, uint32_t id, uint32_t delay, bool release);

/* ---- cut groups (engine_cut.c) ------------------------------------------ */

/* Puts playing voice i (links[i].grouped, cuts[i].cut set) at the front of
 * its group's list; O(ENGINE_CUT_LEVELS). */
void cut_add(struct engine *e, uint32_t i);
/* Takes voice i off its group's list (freeing the trie's nodes it alone
 * used). */
void cut_remove(struct engine *e, uint32_t i);
/* Fades out, over the declick fade from `delay`, every playing voice of cut
 * group g (!= 0) as a voice of `slot` sees it. */
void cut_group(struct engine *e, int32_t g, uint32_t slot, uint32_t delay);

/* ---- musical time (engine_time.c) --------------------------------------- */

/* This period's musical time, before anything is applied: its first frame
 * (the clock's, or counted), the span (Link's or the own timeline's). */
void span_begin(struct engine *e, const struct engine_clock *c, uint32_t nframes);
/* After the mix: this period's span for engine_beat_now (sequence lock). */
void span_publish(struct engine *e, const struct engine_clock *c);
/* A /loop of a slot holding a buffer, on an output pair there is: one loop
 * voice per slot; with `beats`, restarted every N beats (and `fit`). */
void loop_start(struct engine *e, const struct ctl_msg *m, uint32_t delay);
/* Slot id's pending restart goes, if it has one; O(log nslots). */
void restart_cancel(struct engine *e, uint32_t id);
/* Every pending restart goes (a /stop): O(slots with one). */
void restart_clear(struct engine *e);
/* The quantized /play and /loop of slot id (ENGINE_NONE: of every slot)
 * still waiting in the grid go, their places given back (a /stop that is
 * not itself on the grid: what the performer stopped does not start at
 * the next bar).  O(requests in the grid), once per such /stop. */
void grid_cancel_starts(struct engine *e, uint32_t id);
/* A quantized request (engine_quantized) whose launch point is not before
 * offset `from`: applied now if its frame is in this period, else into the
 * grid (its place there reserved by engine_send). */
void launch(struct engine *e, struct ctl_msg m, uint32_t nframes, uint32_t from);
/* In a period whose tempo changed, every fitted loop's rate follows it. */
void fit_follow(struct engine *e);
/* The grid's requests whose launch point's frame is in this period. */
void launch_due(struct engine *e, uint32_t nframes);
/* The `beats` loops' restarts whose frame is in this period, one each. */
void restart_due(struct engine *e, uint32_t nframes);

/* ---- MIDI (engine_midi.c) ----------------------------------------------- */

/* The slots' defaults sent on the `pad` ring, then this period's MIDI
 * messages (engine_midi_event), each at its frame (clamped below nframes). */
void midi_period(struct engine *e, uint32_t nframes);

#endif
