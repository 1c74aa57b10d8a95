/* dirt.c - see dirt.h.  The formulas are SuperDirt's (DirtEvent.sc,
 * DirtOrbit.sc, DirtSoundLibrary.sc, SuperDirtUGens.sc); docs/protocol.md
 * ("/dirt/play") gives each with its source. */
#include "dirt.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "params.h"

void dirt_init(struct dirt *d, struct library *lib, uint32_t outputs)
{
    memset(d, 0, sizeof(*d));
    d->lib = lib;
    d->outputs = outputs ? outputs : 1;
}

enum cause { NO_S = 1u, BAD_VALUE = 2u, NOT_LOADED = 4u, NO_LIBRARY = 8u, TOO_MANY_NAMES = 16u };

static void once(struct dirt *d, enum cause c, const char *what)
{
    if (d->logged & c)
        return;
    d->logged |= c;
    log_warn("/dirt/play: %s (logged once; counted in /status)", what);
}

static void unknown_bank(struct dirt *d, const char *name, size_t len)
{
    atomic_fetch_add_explicit(&d->not_found, 1, memory_order_relaxed);
    if (len >= DIRT_NAME_MAX)
        len = DIRT_NAME_MAX - 1;
    for (unsigned i = 0; i < d->nnamed; i++)
        if (strncmp(d->named[i], name, len) == 0 && d->named[i][len] == 0)
            return;
    if (d->nnamed == DIRT_NAMED) {
        once(d, TOO_MANY_NAMES, "more unknown banks; no longer named");
        return;
    }
    memcpy(d->named[d->nnamed], name, len);
    d->named[d->nnamed][len] = 0;
    d->nnamed++;
    log_warn("/dirt/play: no bank named '%.*s' (logged once)", (int)len, name);
}

/* The keys this translation reads, as given. */
struct dirt_keys {
    const char *s;
    size_t slen;
    bool has_n, has_sustain, has_legato, has_attack, has_release, has_note, has_octave;
    bool unit_c, has_cut;
    double n, speed, begin, end, pan, gain, overgain, amp, cut, legato, sustain, delta;
    double note, octave, attack, release, cps, orbit, channel, accelerate;
};

static bool number(char type, const lo_arg *a, double *v)
{
    return params_osc_number(type, a, v) && isfinite(*v);
}

static bool is_string(char type)
{
    return type == LO_STRING || type == LO_SYMBOL;
}

/* Reads one key's value into `k`.  False: a bad value for a key it
 * honours.  Keys it does not honour are skipped whatever their value. */
static bool read_key(struct dirt_keys *k, const char *key, char type, lo_arg *a)
{
    static const struct {
        const char *name;
        size_t off;
        size_t flag; /* offset of its bool, or SIZE_MAX */
    } nums[] = {
#define NUM(n, f) {#n, offsetof(struct dirt_keys, n), f}
#define HAS(n) offsetof(struct dirt_keys, has_##n)
        NUM(n, HAS(n)),
        NUM(speed, SIZE_MAX),
        NUM(begin, SIZE_MAX),
        NUM(end, SIZE_MAX),
        NUM(pan, SIZE_MAX),
        NUM(gain, SIZE_MAX),
        NUM(overgain, SIZE_MAX),
        NUM(amp, SIZE_MAX),
        NUM(cut, offsetof(struct dirt_keys, has_cut)),
        NUM(legato, HAS(legato)),
        NUM(sustain, HAS(sustain)),
        NUM(delta, SIZE_MAX),
        NUM(note, HAS(note)),
        NUM(octave, HAS(octave)),
        NUM(attack, HAS(attack)),
        NUM(release, HAS(release)),
        NUM(cps, SIZE_MAX),
        NUM(orbit, SIZE_MAX),
        NUM(channel, SIZE_MAX),
        NUM(accelerate, SIZE_MAX),
#undef NUM
#undef HAS
    };
    if (strcmp(key, "s") == 0 || strcmp(key, "sound") == 0) {
        if (!is_string(type))
            return false;
        k->s = (const char *)a; /* no member access: lo_arg is only 4-byte aligned */
        k->slen = strlen(k->s);
        return true;
    }
    if (strcmp(key, "unit") == 0) {
        if (is_string(type))
            k->unit_c = strcmp((const char *)a, "c") == 0;
        return true;
    }
    for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
        if (strcmp(key, nums[i].name) != 0)
            continue;
        double v;
        if (!number(type, a, &v))
            return false;
        *(double *)((char *)k + nums[i].off) = v;
        if (nums[i].flag != SIZE_MAX)
            *(bool *)((char *)k + nums[i].flag) = true;
        return true;
    }
    return true; /* an effect, cycle, _id_, latency, anything else: ignored */
}

/* SuperCollider's fold(-1, 1): reflects at the ends. */
static double fold1(double x)
{
    double r = fmod(x + 1.0, 4.0);
    if (r < 0)
        r += 4.0;
    return r <= 2.0 ? r - 1.0 : 3.0 - r;
}

int dirt_translate(struct dirt *d, int argc, const char *types, lo_arg *const *argv, uint32_t rate,
                   struct ctl_msg *out)
{
    /* DirtOrbit's defaultParentEvent. */
    struct dirt_keys k = {
        .speed = 1, .end = 1, .pan = 0.5, .gain = 1, .amp = 0.4, .delta = 1, .cps = 1};
    for (int i = 0; i + 1 < argc; i += 2) {
        if (!is_string(types[i]) ||
            !read_key(&k, (const char *)argv[i], types[i + 1], argv[i + 1])) {
            atomic_fetch_add_explicit(&d->bad, 1, memory_order_relaxed);
            once(d, BAD_VALUE, "a key that is not a string, or a bad value");
            return -EINVAL;
        }
    }
    if (!k.s || k.slen == 0) {
        atomic_fetch_add_explicit(&d->not_found, 1, memory_order_relaxed);
        once(d, NO_S, "an event without s");
        return -ENOENT;
    }
    /* "name:index": the index after the colon (DirtEvent.splitName). */
    const char *colon = memchr(k.s, ':', k.slen);
    size_t nlen = k.slen;
    if (colon) {
        nlen = (size_t)(colon - k.s);
        char *end;
        double v = strtod(colon + 1, &end);
        if (end != colon + 1 && isfinite(v)) {
            k.n = v;
            k.has_n = true;
        }
    }
    if (!d->lib) {
        atomic_fetch_add_explicit(&d->not_found, 1, memory_order_relaxed);
        once(d, NO_LIBRARY, "no --library: nothing to play");
        return -ENOENT;
    }
    struct lib_hit hit;
    int r = library_find(d->lib, k.s, nlen, k.has_n ? k.n : 0, &hit);
    if (r == -ENOENT) {
        unknown_bank(d, k.s, nlen);
        return r;
    }
    if (r == -EAGAIN) {
        atomic_fetch_add_explicit(&d->not_loaded, 1, memory_order_relaxed);
        once(d, NOT_LOADED, "a sample asked for before its file was loaded: skipped");
        return r;
    }

    /* Range: clamped to the sample; orderTimeSpan swaps a reversed one. */
    double begin = fmin(fmax(k.begin, 0.0), 1.0), end = fmin(fmax(k.end, 0.0), 1.0);
    if (begin > end) {
        double t = begin;
        begin = end;
        end = t;
    }
    double length = end - begin;
    /* The pitch of a sample: unitDuration = duration * 60.midicps / freq,
     * freq = (note + octave*12).midicps with the orbit's octave 5 as
     * middle C, so the ratio is 2^(note/12). */
    double semis = (k.has_note ? k.note : 0) + (k.has_octave ? (k.octave - 5) * 12 : 0);
    double ratio = exp2(semis / 12.0);
    double unit_dur = hit.seconds / ratio;
    double speed = k.speed;
    if (k.unit_c)
        speed = speed * k.cps * unit_dur; /* calcTimeSpan, unit \c */
    double play_rate = speed * ratio;
    double mag = fabs(play_rate);
    if (!(mag >= 1.0 / 16 && mag <= 16) || !(k.amp >= 0) || k.cps <= 0 ||
        !(k.orbit >= 0 && k.orbit <= DIRT_MAX_ORBIT) || fabs(k.cut) > PARAMS_MAX_CUT ||
        (k.has_sustain && !(k.sustain >= 0)) || (k.has_legato && !(k.legato >= 0)) ||
        (k.has_attack && !(k.attack >= 0 && k.attack <= 60)) ||
        (k.has_release && !(k.release >= 0 && k.release <= 60)) ||
        fabs(k.accelerate) > PARAMS_MAX_ACCELERATE) {
        atomic_fetch_add_explicit(&d->bad, 1, memory_order_relaxed);
        once(d, BAD_VALUE,
             "a value out of range (speed beyond 1/16..16, amp < 0, orbit, cut, accelerate)");
        return -EINVAL;
    }
    /* calcTimeSpan: the sample's own length at this speed, and the note's
     * (sustain, or delta x legato), whichever is shorter.  With accelerate,
     * endSpeed = speed x (1 + accelerate) and the speed is their average,
     * avgSpeed = speed.abs + endSpeed.abs * 0.5, which sclang reads left to
     * right: (|speed| + |endSpeed|) / 2. */
    double accel = k.accelerate;
    double avg_speed = accel != 0 ? (fabs(speed) + fabs(speed * (1.0 + accel))) * 0.5 : fabs(speed);
    double natural = unit_dur * length / avg_speed;
    double sustain = k.has_sustain ? k.sustain : k.has_legato ? k.delta * k.legato : natural;
    bool cut_short = sustain < natural;
    if (!cut_short)
        sustain = natural;
    if (sustain < 8.0 / (rate ? rate : 48000))
        return -ERANGE;                           /* SuperDirt drops it too (minSustain) */
    double fade = fmin(0.001, sustain * 0.19098); /* fadeTime */

    struct play_params p = {0};
    if (play_rate != 1.0) {
        p.keys |= PLAY_RATE;
        p.rate = play_rate;
    }
    if (begin > 0) {
        p.keys |= PLAY_BEGIN | PLAY_ATTACK;
        p.begin = (float)begin;
        p.attack = (float)fade; /* fadeInTime */
    }
    if (end < 1) {
        p.keys |= PLAY_END;
        p.end = (float)end;
    }
    if (k.has_attack) {
        p.keys |= PLAY_ATTACK;
        p.attack = (float)k.attack;
    }
    /* A glide always ends by SuperDirt's gate (sustain, then fadeTime): its
     * speed in kr blocks reaches the range's end only about when the
     * length says.  Its Line.kr runs over the synth's sustain, the length
     * less fadeTime and fadeInTime (calcTimeSpan's ~sustain). */
    if (cut_short || accel != 0) {
        p.keys |= PLAY_SUSTAIN | PLAY_RELEASE;
        p.sustain = (float)(sustain - fade);
        p.release = (float)fade;
    }
    if (accel != 0) {
        p.keys |= PLAY_ACCELERATE;
        p.accelerate = accel;
        p.glide = (float)(sustain - fade - (begin > 0 ? fade : 0));
    }
    if (k.has_release) {
        p.keys |= PLAY_RELEASE;
        p.release = (float)k.release;
    }
    /* finaliseParameters: pan + channel / numChannels, then bipolar; Pan2
     * and Balance2 fold it.  The mixer's pan law is Pan2's times sqrt(2). */
    double pan = fold1((k.pan + k.channel / 2.0) * 2.0 - 1.0);
    if (pan != 0.0) {
        p.keys |= PLAY_PAN;
        p.pan = (float)pan;
    }
    /* amp = (min(gain, 2) + overgain)^4 * amp. */
    double g = fmin(k.gain, 2.0) + k.overgain;
    double level = g * g * g * g * k.amp * M_SQRT1_2;
    if (!(level > 0))
        return -ERANGE; /* silent: nothing to start */
    p.keys |= PLAY_GAIN;
    p.gain = (float)fmin(level, 64.0);
    uint32_t orbit = (uint32_t)k.orbit;
    p.keys |= PLAY_OUT;
    p.out = orbit % d->outputs;
    /* Cut groups per orbit: cut > 0 cuts every sample of the group, cut < 0
     * only the same sample (cutAll), here the same slot. */
    int32_t cut = (int32_t)trunc(k.cut);
    if (cut != 0) {
        int64_t g64 = (int64_t)(orbit + 1) * (PARAMS_MAX_CUT + 1) + (cut > 0 ? cut : -cut);
        p.keys |= PLAY_CUT;
        p.cut = (int32_t)(cut > 0 ? g64 : -g64);
    }
    *out = (struct ctl_msg){.type = CTL_PLAY, .id = hit.slot, .velocity = 1.0f, .play = p};
    return 0;
}
