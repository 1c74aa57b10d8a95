/* params.c - see params.h.  docs/protocol.md ("Keys") must say the same. */
#include "params.h"

#include "beat.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* PARAM_VELOCITY is not a play_key: it is the velocity, kept beside. */
#define PARAM_VELOCITY 0u

struct key {
    const char *name;
    uint32_t bit; /* enum play_key, or PARAM_VELOCITY */
    double min, max;
    bool whole;               /* a whole number (sent as an int32 by /get) */
    uint32_t midi;            /* enum midi_key: a slot's MIDI key (bit is 0) */
    const char *const *words; /* the words it takes (their index is the value) */
};

static const char *const noteoff_words[] = {"ignore", "release", "toggle", NULL};
static const char *const mode_words[] = {"play", "loop", NULL};

/* The order /get lists them in. */
static const struct key keys[] = {
    {"velocity", PARAM_VELOCITY, 0, 1, false, 0, NULL},
    {"rate", PLAY_RATE, -16, 16, false, 0, NULL}, /* and |rate| >= 1/16: set_key */
    {"accelerate", PLAY_ACCELERATE, -PARAMS_MAX_ACCELERATE, PARAMS_MAX_ACCELERATE, false, 0, NULL},
    {"begin", PLAY_BEGIN, 0, 1, false, 0, NULL},
    {"end", PLAY_END, 0, 1, false, 0, NULL},
    {"pan", PLAY_PAN, -1, 1, false, 0, NULL},
    {"gain", PLAY_GAIN, 0, 4, false, 0, NULL},
    {"attack", PLAY_ATTACK, 0, 60, false, 0, NULL},
    {"release", PLAY_RELEASE, 0, 60, false, 0, NULL},
    {"sustain", PLAY_SUSTAIN, 0, PARAMS_MAX_SUSTAIN, false, 0, NULL},
    {"cut", PLAY_CUT, -PARAMS_MAX_CUT, PARAMS_MAX_CUT, true, 0, NULL},
    {"out", PLAY_OUT, 0, 0, true, 0, NULL}, /* max: outputs - 1, set_key */
    {"quant", PLAY_QUANT, 0, BEAT_QUANTUM_MAX, false, 0, NULL},
    {"beats", PLAY_BEATS, 0, BEAT_QUANTUM_MAX, false, 0, NULL}, /* and > 0: in_range */
    {"fit", PLAY_FIT, 0, 1, true, 0, NULL},
    /* A slot's MIDI keys (midi.h). */
    {"note", 0, 0, 127, true, MIDI_KEY_NOTE, NULL},
    {"channel", 0, 0, 16, true, MIDI_KEY_CHANNEL, NULL},
    {"velcurve", 0, MIDI_VELCURVE_MIN, MIDI_VELCURVE_MAX, false, MIDI_KEY_VELCURVE, NULL},
    {"noteoff", 0, 0, 2, true, MIDI_KEY_NOTEOFF, noteoff_words},
    {"mode", 0, 0, 1, true, MIDI_KEY_MODE, mode_words},
};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

bool params_osc_number(char type, const lo_arg *a, double *out)
{
    switch (type) {
    case LO_INT32: {
        int32_t v;
        memcpy(&v, a, sizeof(v));
        *out = v;
        return true;
    }
    case LO_INT64: {
        int64_t v;
        memcpy(&v, a, sizeof(v));
        *out = (double)v;
        return true;
    }
    case LO_FLOAT: {
        float v;
        memcpy(&v, a, sizeof(v));
        *out = v;
        return true;
    }
    case LO_DOUBLE: {
        double v;
        memcpy(&v, a, sizeof(v));
        *out = v;
        return true;
    }
    default:
        return false;
    }
}

static const struct key *find(const char *name)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].name, name) == 0)
            return &keys[i];
    return NULL;
}

static bool in_range(const struct key *k, double v, uint32_t outputs)
{
    double max = k->bit == PLAY_OUT ? (double)outputs - 1 : k->max;
    if (!isfinite(v) || v < k->min || v > max)
        return false;
    if (k->whole && v != floor(v))
        return false;
    /* 0 and |rate| < 1/16 would never finish (or barely move). */
    if (k->bit == PLAY_RATE && fabs(v) < 1.0 / 16)
        return false;
    /* A loop of no beats would restart on every frame. */
    if (k->bit == PLAY_BEATS && !(v > 0))
        return false;
    return true;
}

bool params_is_slot_key(const char *name)
{
    const struct key *k = find(name);
    return k && k->midi;
}

/* Sets MIDI key k (in range) to v. */
static void set_midi(struct params *p, const struct key *k, double v)
{
    struct midi_keys *m = &p->midi;
    switch (k->midi) {
    case MIDI_KEY_NOTE:
        m->note = (uint8_t)v;
        break;
    case MIDI_KEY_CHANNEL:
        m->channel = (uint8_t)v;
        break;
    case MIDI_KEY_VELCURVE:
        m->velcurve = (float)v;
        break;
    case MIDI_KEY_NOTEOFF:
        m->noteoff = (uint8_t)v;
        break;
    case MIDI_KEY_MODE:
        m->mode = (uint8_t)v;
        break;
    default:
        return;
    }
    m->keys |= k->midi;
}

int params_set_word(struct params *p, const char *name, const char *word)
{
    const struct key *k = find(name);
    if (!k || !k->words)
        return -ENOENT;
    for (unsigned i = 0; k->words[i]; i++)
        if (strcmp(k->words[i], word) == 0) {
            set_midi(p, k, i);
            return 0;
        }
    return -EINVAL;
}

const char *params_word(const char *name, double value)
{
    const struct key *k = find(name);
    if (!k || !k->words || !(value >= 0) || value > k->max)
        return NULL;
    return k->words[(unsigned)value];
}

int params_set(struct params *p, const char *name, double v, uint32_t outputs)
{
    const struct key *k = find(name);
    if (!k)
        return -ENOENT;
    if (!in_range(k, v, outputs) || k->words) /* a word key takes words */
        return -EINVAL;
    if (k->midi) {
        set_midi(p, k, v);
        return 0;
    }
    struct play_params *q = &p->play;
    switch (k->bit) {
    case PARAM_VELOCITY:
        p->has_velocity = true;
        p->velocity = (float)v;
        return 0;
    case PLAY_RATE:
        q->rate = v;
        break;
    case PLAY_BEGIN:
        q->begin = (float)v;
        break;
    case PLAY_END:
        q->end = (float)v;
        break;
    case PLAY_PAN:
        q->pan = (float)v;
        break;
    case PLAY_GAIN:
        q->gain = (float)v;
        break;
    case PLAY_ATTACK:
        q->attack = (float)v;
        break;
    case PLAY_RELEASE:
        q->release = (float)v;
        break;
    case PLAY_SUSTAIN:
        q->sustain = (float)v;
        break;
    case PLAY_CUT:
        q->cut = (int32_t)v;
        break;
    case PLAY_OUT:
        q->out = (uint32_t)v;
        break;
    case PLAY_QUANT:
        q->quant = v;
        break;
    case PLAY_BEATS:
        q->beats = v;
        break;
    case PLAY_FIT:
        q->fit = (uint32_t)v;
        break;
    case PLAY_ACCELERATE:
        q->accelerate = v;
        break;
    default:
        return -ENOENT;
    }
    q->keys |= k->bit;
    return 0;
}

/* The reason for params_set()'s error `err` on key `name`. */
static void reason(int err, const char *name, char why[PARAMS_WHY_MAX])
{
    if (err == -ENOENT)
        snprintf(why, PARAMS_WHY_MAX, "unknown key");
    else
        snprintf(why, PARAMS_WHY_MAX, "bad value for %s", name);
}

int params_parse_osc(struct params *p, int argc, const char *types, lo_arg *const *argv,
                     uint32_t outputs, char why[PARAMS_WHY_MAX])
{
    struct params next = *p;
    for (int i = 0; i < argc; i += 2) {
        if (types[i] != LO_STRING && types[i] != LO_SYMBOL) {
            snprintf(why, PARAMS_WHY_MAX, "a key must be a string");
            return -EINVAL;
        }
        const char *name = (const char *)argv[i];
        const struct key *k = find(name);
        if (!k) {
            reason(-ENOENT, name, why);
            return -EINVAL;
        }
        double v;
        if (i + 1 >= argc) {
            snprintf(why, PARAMS_WHY_MAX, "missing value for %s", k->name);
            return -EINVAL;
        }
        int err;
        if (k->words)
            err = types[i + 1] == LO_STRING || types[i + 1] == LO_SYMBOL
                      ? params_set_word(&next, k->name, (const char *)argv[i + 1])
                      : -EINVAL;
        else
            err = params_osc_number(types[i + 1], argv[i + 1], &v)
                      ? params_set(&next, k->name, v, outputs)
                      : -EINVAL;
        if (err < 0) {
            reason(err, k->name, why);
            return -EINVAL;
        }
    }
    *p = next;
    return 0;
}

int params_parse_text(struct params *p, const char *token, uint32_t outputs,
                      char why[PARAMS_WHY_MAX])
{
    const char *eq = strchr(token, '=');
    char name[16];
    size_t n = eq ? (size_t)(eq - token) : 0;
    if (!eq || n == 0 || n >= sizeof(name)) {
        snprintf(why, PARAMS_WHY_MAX, eq && n ? "unknown key" : "expected key=value");
        return -EINVAL;
    }
    memcpy(name, token, n);
    name[n] = '\0';
    const struct key *k = find(name);
    if (!k) {
        reason(-ENOENT, name, why);
        return -EINVAL;
    }
    int err;
    if (k->words) {
        err = params_set_word(p, k->name, eq + 1);
    } else {
        char *end;
        errno = 0;
        double v = strtod(eq + 1, &end);
        err = eq[1] && !*end && errno == 0 ? params_set(p, k->name, v, outputs) : -EINVAL;
    }
    if (err < 0) {
        reason(err, k->name, why);
        return -EINVAL;
    }
    return 0;
}

void params_merge(struct params *out, const struct params *base, const struct params *over)
{
    struct params m = *base;
    const struct play_params *o = &over->play;
    uint32_t k = o->keys;
    if (k & PLAY_RATE)
        m.play.rate = o->rate;
    if (k & PLAY_BEGIN)
        m.play.begin = o->begin;
    if (k & PLAY_END)
        m.play.end = o->end;
    if (k & PLAY_PAN)
        m.play.pan = o->pan;
    if (k & PLAY_GAIN)
        m.play.gain = o->gain;
    if (k & PLAY_ATTACK)
        m.play.attack = o->attack;
    if (k & PLAY_RELEASE)
        m.play.release = o->release;
    if (k & PLAY_SUSTAIN)
        m.play.sustain = o->sustain;
    if (k & PLAY_CUT)
        m.play.cut = o->cut;
    if (k & PLAY_OUT)
        m.play.out = o->out;
    if (k & PLAY_QUANT)
        m.play.quant = o->quant;
    if (k & PLAY_BEATS)
        m.play.beats = o->beats;
    if (k & PLAY_FIT)
        m.play.fit = o->fit;
    if (k & PLAY_ACCELERATE)
        m.play.accelerate = o->accelerate;
    m.play.keys |= k;
    if (over->has_velocity) {
        m.has_velocity = true;
        m.velocity = over->velocity;
    }
    const struct midi_keys *om = &over->midi;
    if (om->keys & MIDI_KEY_NOTE)
        m.midi.note = om->note;
    if (om->keys & MIDI_KEY_CHANNEL)
        m.midi.channel = om->channel;
    if (om->keys & MIDI_KEY_VELCURVE)
        m.midi.velcurve = om->velcurve;
    if (om->keys & MIDI_KEY_NOTEOFF)
        m.midi.noteoff = om->noteoff;
    if (om->keys & MIDI_KEY_MODE)
        m.midi.mode = om->mode;
    m.midi.keys |= om->keys;
    *out = m;
}

int params_check(const struct params *p, char why[PARAMS_WHY_MAX])
{
    if (play_begin(&p->play) >= play_end(&p->play)) {
        snprintf(why, PARAMS_WHY_MAX, "begin must be less than end");
        return -EINVAL;
    }
    return 0;
}

bool params_next(const struct params *p, unsigned *i, const char **name, double *value, bool *whole)
{
    const struct play_params *q = &p->play;
    for (; *i < NKEYS; (*i)++) {
        const struct key *k = &keys[*i];
        bool given = k->midi                    ? (p->midi.keys & k->midi) != 0
                     : k->bit == PARAM_VELOCITY ? p->has_velocity
                                                : (q->keys & k->bit) != 0;
        if (!given)
            continue;
        double v = 0;
        switch (k->midi ? 0xffffffffu : k->bit) {
        case 0xffffffffu:
            v = k->midi == MIDI_KEY_NOTE       ? p->midi.note
                : k->midi == MIDI_KEY_CHANNEL  ? p->midi.channel
                : k->midi == MIDI_KEY_VELCURVE ? p->midi.velcurve
                : k->midi == MIDI_KEY_NOTEOFF  ? p->midi.noteoff
                                               : p->midi.mode;
            break;
        case PARAM_VELOCITY:
            v = p->velocity;
            break;
        case PLAY_RATE:
            v = q->rate;
            break;
        case PLAY_BEGIN:
            v = q->begin;
            break;
        case PLAY_END:
            v = q->end;
            break;
        case PLAY_PAN:
            v = q->pan;
            break;
        case PLAY_GAIN:
            v = q->gain;
            break;
        case PLAY_ATTACK:
            v = q->attack;
            break;
        case PLAY_RELEASE:
            v = q->release;
            break;
        case PLAY_SUSTAIN:
            v = q->sustain;
            break;
        case PLAY_CUT:
            v = q->cut;
            break;
        case PLAY_OUT:
            v = q->out;
            break;
        case PLAY_QUANT:
            v = q->quant;
            break;
        case PLAY_BEATS:
            v = q->beats;
            break;
        case PLAY_FIT:
            v = q->fit;
            break;
        case PLAY_ACCELERATE:
            v = q->accelerate;
            break;
        default:
            break;
        }
        *name = k->name;
        *value = v;
        *whole = k->whole;
        (*i)++;
        return true;
    }
    return false;
}

int pads_init(struct pads *t, uint32_t nslots)
{
    memset(t, 0, sizeof(*t));
    size_t n = nslots ? nslots : 1;
    t->slot = calloc(n, sizeof(*t->slot));
    t->seq = calloc(n, sizeof(*t->seq));
    t->dirty = calloc(n, sizeof(*t->dirty));
    if (!t->slot || !t->seq || !t->dirty) {
        free(t->slot);
        free(t->seq);
        free(t->dirty);
        t->slot = NULL;
        t->seq = NULL;
        t->dirty = NULL;
        return -ENOMEM;
    }
    t->nslots = nslots;
    pthread_mutex_init(&t->lock, NULL);
    return 0;
}

void pads_destroy(struct pads *t)
{
    if (!t->slot)
        return;
    pthread_mutex_destroy(&t->lock);
    free(t->slot);
    free(t->seq);
    free(t->dirty);
    t->slot = NULL;
    t->seq = NULL;
    t->dirty = NULL;
}

void pads_set_publish(struct pads *t, pads_publish_fn fn, void *ctx)
{
    t->publish = fn;
    t->publish_ctx = ctx;
}

/* Under t->lock: slot `id` changed; hand its defaults to the engine, or
 * leave it for pads_flush(). */
static void publish_locked(struct pads *t, uint32_t id)
{
    if (!t->publish)
        return;
    bool ok = t->publish(t->publish_ctx, id, &t->slot[id]);
    if (ok && t->dirty[id]) {
        t->dirty[id] = false;
        t->ndirty--;
    } else if (!ok && !t->dirty[id]) {
        t->dirty[id] = true;
        t->ndirty++;
    }
}

void pads_flush(struct pads *t)
{
    pthread_mutex_lock(&t->lock);
    for (uint32_t id = 0; t->ndirty > 0 && id < t->nslots; id++)
        if (t->dirty[id]) {
            publish_locked(t, id);
            if (t->dirty[id])
                break; /* still full: the next tick */
        }
    pthread_mutex_unlock(&t->lock);
}

void pads_get(struct pads *t, uint32_t id, struct params *out)
{
    pthread_mutex_lock(&t->lock);
    *out = t->slot[id];
    pthread_mutex_unlock(&t->lock);
}

void pads_put(struct pads *t, uint32_t id, const struct params *p, uint64_t seq)
{
    pthread_mutex_lock(&t->lock);
    t->slot[id] = *p;
    t->seq[id] = seq;
    publish_locked(t, id);
    pthread_mutex_unlock(&t->lock);
}

int pads_update(struct pads *t, uint32_t id, const struct params *changes, uint64_t seq,
                char why[PARAMS_WHY_MAX])
{
    pthread_mutex_lock(&t->lock);
    struct params next;
    params_merge(&next, &t->slot[id], changes);
    int err = params_check(&next, why);
    if (err == 0) {
        t->slot[id] = next;
        t->seq[id] = seq;
        publish_locked(t, id);
    }
    pthread_mutex_unlock(&t->lock);
    return err;
}

void pads_unloaded(struct pads *t, uint32_t id, uint64_t seq)
{
    pthread_mutex_lock(&t->lock);
    if (seq > t->seq[id]) {
        t->slot[id] = (struct params){0};
        t->seq[id] = seq;
        publish_locked(t, id);
    }
    pthread_mutex_unlock(&t->lock);
}
