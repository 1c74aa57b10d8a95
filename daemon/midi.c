/* midi.c - see midi.h. */
#include "midi.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

float midi_velocity(const struct midi_keys *k, uint8_t velocity)
{
    double v = (double)(velocity & 0x7f) / 127.0;
    if ((k->keys & MIDI_KEY_VELCURVE) && k->velcurve != 1.0f)
        v = pow(v, (double)k->velcurve);
    return (float)v;
}

void midi_parser_reset(struct midi_parser *p)
{
    memset(p, 0, sizeof(*p));
}

/* Data bytes a status byte takes. */
static uint8_t data_bytes(uint8_t status)
{
    switch (status & 0xf0) {
    case 0xc0:
    case 0xd0:
        return 1;
    case 0xf0:
        return status == 0xf2 ? 2 : status == 0xf1 || status == 0xf3 ? 1 : 0;
    default:
        return 2;
    }
}

/* A complete message of status `s`. */
static void emit(uint8_t s, const uint8_t *d, uint32_t frame, struct midi_msg *out, size_t max,
                 size_t *n, uint32_t *ignored)
{
    uint8_t kind = 0;
    switch (s & 0xf0) {
    case 0x80:
        kind = MIDI_NOTE_OFF;
        break;
    case 0x90:
        kind = d[1] ? MIDI_NOTE_ON : MIDI_NOTE_OFF;
        break;
    case 0xb0:
        kind = MIDI_CC;
        break;
    default:
        break;
    }
    if (!kind || *n >= max) {
        (*ignored)++;
        return;
    }
    out[(*n)++] = (struct midi_msg){
        .frame = frame, .kind = kind, .channel = (uint8_t)((s & 0x0f) + 1), .a = d[0], .b = d[1]};
}

size_t midi_parse(struct midi_parser *p, uint32_t frame, const uint8_t *bytes, size_t nbytes,
                  struct midi_msg *out, size_t max, uint32_t *ignored)
{
    size_t n = 0;
    for (size_t i = 0; i < nbytes; i++) {
        uint8_t b = bytes[i];
        if (b >= 0xf8) { /* realtime: anywhere, changes nothing */
            (*ignored)++;
            continue;
        }
        if (b & 0x80) {
            if (p->sysex) {
                /* The SysEx ends here: with its end byte, or cut short by
                 * another status. */
                p->sysex = false;
                (*ignored)++;
                if (b == 0xf7)
                    continue;
            }
            if (p->open)
                (*ignored)++; /* a message cut short */
            p->open = false;
            p->have = 0;
            if (b == 0xf0) {
                p->sysex = true;
                p->running = 0;
                continue;
            }
            if (b == 0xf7) { /* an end without a start */
                (*ignored)++;
                p->running = 0;
                continue;
            }
            p->running = b;
            p->need = data_bytes(b);
            if (p->need == 0) { /* 0xf4..0xf6 */
                (*ignored)++;
                p->running = 0;
                continue;
            }
            p->open = true;
            continue;
        }
        if (p->sysex)
            continue; /* its data, counted once at its end */
        if (!p->running) {
            (*ignored)++; /* data without a status */
            continue;
        }
        p->data[p->have++] = b;
        p->open = true;
        if (p->have < p->need)
            continue;
        p->have = 0;
        p->open = false;
        if (p->running >= 0xf0) {
            /* System common: no running status after it. */
            (*ignored)++;
            p->running = 0;
            continue;
        }
        if (p->need == 1)
            p->data[1] = 0;
        emit(p->running, p->data, frame, out, max, &n, ignored);
    }
    return n;
}

static void unlink_slot(struct midi_map *m, uint32_t id)
{
    int note = m->note[id];
    if (note < 0)
        return;
    uint16_t prev = m->prev[id], next = m->next[id];
    if (prev != MIDI_NONE)
        m->next[prev] = next;
    else
        m->head[note] = next;
    if (next != MIDI_NONE)
        m->prev[next] = prev;
    m->prev[id] = m->next[id] = MIDI_NONE;
    m->note[id] = -1;
}

void midi_map_set(struct midi_map *m, uint32_t id, int note)
{
    if (id >= m->nslots || note == m->note[id])
        return;
    unlink_slot(m, id);
    if (note < 0 || note >= MIDI_NOTES)
        return;
    m->note[id] = (int16_t)note;
    m->prev[id] = MIDI_NONE;
    m->next[id] = m->head[note];
    if (m->head[note] != MIDI_NONE)
        m->prev[m->head[note]] = (uint16_t)id;
    m->head[note] = (uint16_t)id;
}

int midi_map_init(struct midi_map *m, uint32_t nslots)
{
    memset(m, 0, sizeof(*m));
    size_t n = nslots ? nslots : 1;
    m->next = malloc(n * sizeof(*m->next));
    m->prev = malloc(n * sizeof(*m->prev));
    m->note = malloc(n * sizeof(*m->note));
    if (!m->next || !m->prev || !m->note || nslots >= MIDI_NONE) {
        midi_map_destroy(m);
        return -ENOMEM;
    }
    m->nslots = nslots;
    for (int k = 0; k < MIDI_NOTES; k++)
        m->head[k] = MIDI_NONE;
    for (uint32_t id = 0; id < nslots; id++) {
        m->next[id] = m->prev[id] = MIDI_NONE;
        m->note[id] = -1;
    }
    /* From the highest, so each list reads lowest slot first. */
    struct midi_keys none = {0};
    for (uint32_t id = nslots; id-- > 0;)
        midi_map_set(m, id, midi_note_of(&none, id));
    return 0;
}

void midi_map_destroy(struct midi_map *m)
{
    free(m->next);
    free(m->prev);
    free(m->note);
    m->next = m->prev = NULL;
    m->note = NULL;
    m->nslots = 0;
}
