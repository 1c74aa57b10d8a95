/* engine_midi.c - MIDI input applied to the engine: the note -> slots
 * map made from the slots' defaults, the notes held, and what a note-on,
 * note-off or controller does.  JACK's MIDI events are parsed as they are
 * read (engine_midi_event) and applied by engine_process() after the
 * period's requests (midi_period, engine_impl.h), each at its own frame,
 * through the core's apply() and fades, as a timed request would be.
 *
 * A note-on finds the slots claiming its note through e->map (midi.h):
 * O(claimants) per message, never a walk of the slots.  Each claimant that
 * hears the channel plays as its defaults say (e->pads, as the control
 * side last sent them), its velocity the note's through the slot's
 * `velcurve`; an empty claimant does nothing (but the note was claimed).
 * A slot with `quant` starts on its next launch point (engine_time.c).
 * A note-off (or a note-on of velocity 0) releases, per slot `noteoff`:
 * `release` fades the slot's playing voices over their release; `toggle`
 * acts on note-ons only (the next note-on of the note stops what the first
 * started).  CC 120 fades every playing voice of the slots hearing its
 * channel with the declick fade (a walk of the playing voices: O(voices));
 * CC 123 is a note-off for each note held (e->held) on its channel, and
 * for slots of any channel, on every channel.
 *
 * Bounds per period: at most ENGINE_MIDI_QUEUE messages (more are counted
 * in midi_ignored as they are parsed) and one pad ring's capacity of
 * defaults.
 */
#include "engine_impl.h"

void engine_set_midi_slots(struct engine *e, uint32_t n)
{
    e->midi_slots = n < e->nslots ? n : e->nslots;
    for (uint32_t id = e->midi_slots; id < e->nslots; id++)
        midi_map_set(&e->map, id, -1);
}

/* ---- audio thread from here on ---------------------------------------- */

static bool slot_hears(const struct engine *e, uint32_t id, uint8_t channel)
{
    return midi_hears(midi_channel_of(&e->pads[id].midi), channel);
}

static void midi_note_on(struct engine *e, uint32_t id, uint8_t velocity, uint32_t delay,
                         uint32_t nframes)
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
    /* A slot with `quant` waits for its launch point, as an OSC trigger
     * does, taking a place of the grid as engine_send() would; with every
     * place taken it starts on its own frame (launch() applies at once
     * whatever finds the grid full). */
    if (engine_quantized(&m) &&
        atomic_load_explicit(&e->grid_pending, memory_order_relaxed) < ENGINE_GRID) {
        atomic_fetch_add_explicit(&e->grid_pending, 1, memory_order_relaxed);
        launch(e, m, nframes, delay);
        return;
    }
    apply(e, &m, delay);
}

static void midi_note_off(struct engine *e, uint32_t id, uint32_t delay)
{
    if (midi_noteoff_of(&e->pads[id].midi) == MIDI_OFF_RELEASE)
        fade_slot(e, id, delay, true);
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

static void midi_apply(struct engine *e, const struct midi_msg *m, uint32_t nframes,
                       uint32_t *ignored)
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
                midi_note_on(e, id, m->b, m->frame, nframes);
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
void midi_period(struct engine *e, uint32_t nframes)
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
        midi_apply(e, &m, nframes, &ignored);
    }
    e->nmidi = 0;
    if (ignored)
        atomic_fetch_add_explicit(&e->stats.midi_ignored, ignored, memory_order_relaxed);
}
