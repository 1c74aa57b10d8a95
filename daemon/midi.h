/* midi.h - MIDI as the engine reads it: a parser that treats the input as
 * one MIDI byte stream, each slot's MIDI keys, and the map from a note to
 * the slots that claim it.
 *
 * Pure: no allocation but midi_map_init(), no locks, no I/O, so the audio
 * thread uses all of it, and it is unit-tested without JACK
 * (tests/test_midi.c).
 *
 * The parser trusts nothing about how the bytes were cut into events:
 * a message may continue in the next event (its frame is that of the
 * event holding its last byte), data bytes without a status byte continue
 * the running status, realtime bytes (0xf8..0xff) are dropped wherever
 * they are, even inside a message or a SysEx, and SysEx or a system common
 * message cancels the running status.  Only complete note-on, note-off and
 * control change messages come out; everything else is counted as ignored
 * (docs/protocol.md, "MIDI").
 */
#ifndef LOOPERD_MIDI_H
#define LOOPERD_MIDI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A slot that names no note claims MIDI_DEFAULT_NOTE + its id (General
 * MIDI drums: slot 0 is C1), if that is a note at all. */
#define MIDI_DEFAULT_NOTE 36
#define MIDI_NOTES 128
#define MIDI_CHANNELS 16
/* The largest `velcurve` exponent, and the smallest. */
#define MIDI_VELCURVE_MAX 10.0
#define MIDI_VELCURVE_MIN 0.1
/* "No slot" in the map's lists. */
#define MIDI_NONE 0xffffu

enum midi_noteoff { MIDI_OFF_IGNORE = 0, MIDI_OFF_RELEASE, MIDI_OFF_TOGGLE };
enum midi_mode { MIDI_MODE_PLAY = 0, MIDI_MODE_LOOP };

/* Which fields of struct midi_keys were given (the others: defaults). */
enum midi_key {
    MIDI_KEY_NOTE = 1u << 0,
    MIDI_KEY_CHANNEL = 1u << 1,
    MIDI_KEY_VELCURVE = 1u << 2,
    MIDI_KEY_NOTEOFF = 1u << 3,
    MIDI_KEY_MODE = 1u << 4,
};

/* A slot's MIDI keys (docs/protocol.md, "MIDI"); zeroed = all defaults. */
struct midi_keys {
    uint32_t keys;   /* enum midi_key bits */
    uint8_t note;    /* 0..127 */
    uint8_t channel; /* 1..16, 0 any */
    uint8_t noteoff; /* enum midi_noteoff */
    uint8_t mode;    /* enum midi_mode */
    float velcurve;  /* exponent; 1 linear */
};

/* The note slot `id` claims with keys `k`, or -1 for none. */
static inline int midi_note_of(const struct midi_keys *k, uint32_t id)
{
    if (k->keys & MIDI_KEY_NOTE)
        return k->note;
    return id + MIDI_DEFAULT_NOTE < MIDI_NOTES ? (int)(id + MIDI_DEFAULT_NOTE) : -1;
}
static inline uint8_t midi_channel_of(const struct midi_keys *k)
{
    return k->keys & MIDI_KEY_CHANNEL ? k->channel : 0;
}
static inline uint8_t midi_noteoff_of(const struct midi_keys *k)
{
    return k->keys & MIDI_KEY_NOTEOFF ? k->noteoff : MIDI_OFF_IGNORE;
}
static inline uint8_t midi_mode_of(const struct midi_keys *k)
{
    return k->keys & MIDI_KEY_MODE ? k->mode : MIDI_MODE_PLAY;
}
/* A slot on channel `slot_ch` (0: any) hears a message on channel `ch`. */
static inline bool midi_hears(uint8_t slot_ch, uint8_t ch)
{
    return slot_ch == 0 || slot_ch == ch;
}
/* A note-on's velocity 1..127 through the slot's curve: (v / 127) ^ velcurve,
 * in [0, 1]. */
float midi_velocity(const struct midi_keys *k, uint8_t velocity);

/* ---- the parser ---------------------------------------------------------- */

enum midi_kind { MIDI_NOTE_ON = 1, MIDI_NOTE_OFF, MIDI_CC };

/* One message for the engine.  A note-on of velocity 0 comes out as a
 * note-off. */
struct midi_msg {
    uint32_t frame;  /* of the period, as given to midi_parse() */
    uint8_t kind;    /* enum midi_kind */
    uint8_t channel; /* 1..16 */
    uint8_t a, b;    /* note and velocity, or controller and value */
};

struct midi_parser {
    uint8_t running; /* status of the message being read, 0 none */
    uint8_t need;    /* data bytes it takes */
    uint8_t have;    /* data bytes read so far */
    uint8_t data[2];
    bool open;  /* a status byte was read and its message is not complete */
    bool sysex; /* inside a SysEx */
};

void midi_parser_reset(struct midi_parser *p);

/* Feeds the n bytes of one event at `frame`.  Each complete message of
 * the three kinds goes to out[] while there is room (up to max); the
 * return value is how many did.  *ignored grows by one for each byte or
 * message that was read and dropped: realtime bytes, data bytes without a
 * status, SysEx and system common messages, channel messages of other
 * kinds, and messages beyond `max`. */
size_t midi_parse(struct midi_parser *p, uint32_t frame, const uint8_t *bytes, size_t n,
                  struct midi_msg *out, size_t max, uint32_t *ignored);

/* ---- the note -> slots map ---------------------------------------------- */

/* For each note, the list of the slots claiming it (head, next, prev):
 * finding the claimants of a note costs O(claimants), changing a slot's
 * note O(1). */
struct midi_map {
    uint32_t nslots;
    uint16_t head[MIDI_NOTES];
    uint16_t *next, *prev; /* nslots each */
    int16_t *note;         /* nslots: the note each claims, -1 none */
};

/* Every slot claims its default note.  nslots <= 0xfffe.  0 or -ENOMEM. */
int midi_map_init(struct midi_map *m, uint32_t nslots);
void midi_map_destroy(struct midi_map *m);
/* Slot `id` claims `note` (-1: none) from now on. */
void midi_map_set(struct midi_map *m, uint32_t id, int note);
/* The first slot claiming `note` (< 128), then the next; MIDI_NONE at the end. */
static inline uint32_t midi_map_first(const struct midi_map *m, uint8_t note)
{
    return m->head[note & 0x7f];
}
static inline uint32_t midi_map_next(const struct midi_map *m, uint32_t id)
{
    return m->next[id];
}

#endif
