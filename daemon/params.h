/* params.h - the keys of a trigger (/play, /loop), of /set and of a bank
 * line, and each slot's defaults (a pad's settings).
 *
 * Owns the key table (names, ranges, which are whole numbers), reading keys
 * from OSC arguments and from bank text "key=value", merging a trigger's
 * keys over its slot's defaults, and the table of those defaults.  The
 * meaning of each key is the mixer's (messages.h, docs/protocol.md); this
 * module only says what is a valid value.
 *
 * Rules, the same everywhere (docs/protocol.md, "Keys"):
 *  - a key given twice in one request or line: the last one wins;
 *  - begin < end is checked on what would play: a trigger's keys merged
 *    over its slot's defaults, or a slot's defaults after a /set;
 *  - nothing is half applied: a request or line with any bad key changes
 *    nothing.
 *
 * Threads.  The parsing functions are pure.  The defaults table (struct
 * pads) is used by the OSC thread (/set, /get, triggers), the main thread
 * (the bank) and the reply thread (an applied /unload clears a slot); its
 * mutex is held only to copy a slot's entry in or out.  The audio thread
 * never touches it: what it needs travels in ctl_msg.play.
 */
#ifndef LOOPERD_PARAMS_H
#define LOOPERD_PARAMS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lo/lo.h>

#include "messages.h"

/* The longest reason a parse error gives ("bad value for release", ...). */
#define PARAMS_WHY_MAX 64
/* `sustain` is at most this many seconds. */
#define PARAMS_MAX_SUSTAIN 3600.0
/* `accelerate` is within this (either sign).  A bound on the number only:
 * the glide's rate is held within 1/16..16 (mixer.h), and the end rate's
 * ratio to the start's, 1 + accelerate, needs no more than 256 to go from
 * one end of that range to the other. */
#define PARAMS_MAX_ACCELERATE 256.0
/* `cut` groups are whole numbers in this range (either sign). */
#define PARAMS_MAX_CUT 1000000

/* A set of keys: those a trigger gave, or a slot's defaults.  Only the
 * keys whose bit is in play.keys (and velocity when has_velocity) are
 * given. */
struct params {
    struct play_params play;
    bool has_velocity;
    float velocity;        /* 0..1 */
    struct midi_keys midi; /* a slot's MIDI keys (/set, the bank; not triggers) */
};

/* True when `name` is one of a slot's MIDI keys (note, channel, velcurve,
 * noteoff, mode), which /set and the bank take but a trigger does not. */
bool params_is_slot_key(const char *name);

/* Sets a key whose value is a word (noteoff ignore|release|toggle, mode
 * play|loop).  0, -ENOENT for a key that takes no word, -EINVAL for a
 * word it does not know. */
int params_set_word(struct params *p, const char *name, const char *word);

/* The numbers a client may send (i, h, f, d), as a double.  liblo's argv
 * points into the packed message, only 4-byte aligned: the value is copied
 * out, not read through the union. */
bool params_osc_number(char type, const lo_arg *a, double *out);

/* Sets key `name` to `v` in `p`.  `outputs`: the number of output pairs
 * (`out` must be below it).  0, -ENOENT for an unknown key, -EINVAL for a
 * value out of its range (or not whole, for cut, out and fit). */
int params_set(struct params *p, const char *name, double v, uint32_t outputs);

/* Reads argc OSC arguments as key value pairs into `p` (over what it
 * holds).  0, or -EINVAL with the reason in `why` ("unknown key", "bad
 * value for KEY", "missing value for KEY", "a key must be a string"). */
int params_parse_osc(struct params *p, int argc, const char *types, lo_arg *const *argv,
                     uint32_t outputs, char why[PARAMS_WHY_MAX]);

/* Reads one bank token "key=value" into `p`.  0 or -EINVAL with `why`. */
int params_parse_text(struct params *p, const char *token, uint32_t outputs,
                      char why[PARAMS_WHY_MAX]);

/* `over`'s keys over `base`'s, into `out` (which may be `base`). */
void params_merge(struct params *out, const struct params *base, const struct params *over);

/* The checks between keys, on a merged set: 0, or -EINVAL with `why`. */
int params_check(const struct params *p, char why[PARAMS_WHY_MAX]);

/* One given key of `p` after another, in the table's order: call with
 * *i = 0, then again while it returns true.  *whole: the value is a whole
 * number (cut, out, fit), to be sent as an integer. */
bool params_next(const struct params *p, unsigned *i, const char **name, double *value,
                 bool *whole);
/* The word a key's value stands for (noteoff, mode), NULL for a number:
 * for /get, after params_next() gave `name` and `value`. */
const char *params_word(const char *name, double value);

/* Every slot's defaults.  Each change carries its request's sequence
 * number (protocol.h's load_seq, which orders loads and unloads too), so
 * that an /unload applied late (the next period, or a bundle's time) clears
 * only the defaults set before it was requested. */
/* The engine's copy.  Every change of a slot is handed, under `lock`, to
 * `publish` (main.c: engine_pad_send); so its producer end is only ever
 * entered by one thread at a time, the mutex ordering each producer after
 * the last.  A change that does not fit (false) leaves its slot `dirty`
 * for pads_flush(), which the main thread calls every tick, so the audio
 * side ends with every slot's latest defaults. */
typedef bool (*pads_publish_fn)(void *ctx, uint32_t id, const struct params *p);

struct pads {
    pthread_mutex_t lock;
    uint32_t nslots;
    struct params *slot; /* nslots, under `lock` */
    uint64_t *seq;       /* nslots: the request that last changed the slot */
    pads_publish_fn publish;
    void *publish_ctx;
    bool *dirty;     /* nslots, under `lock`: its last change not published */
    uint32_t ndirty; /* under `lock` */
};

/* 0 or -ENOMEM. */
int pads_init(struct pads *t, uint32_t nslots);
void pads_destroy(struct pads *t);
/* Before any other thread uses `t`: where changes go (NULL: nowhere). */
void pads_set_publish(struct pads *t, pads_publish_fn fn, void *ctx);
/* Publishes the changes that did not fit before; main thread, each tick. */
void pads_flush(struct pads *t);
/* A copy of slot `id`'s defaults. */
void pads_get(struct pads *t, uint32_t id, struct params *out);
/* Slot `id`'s defaults become exactly `p` (the bank; /set id: none). */
void pads_put(struct pads *t, uint32_t id, const struct params *p, uint64_t seq);
/* /set: `changes` over slot `id`'s defaults, if the result passes
 * params_check(); otherwise nothing changes and -EINVAL with `why`. */
int pads_update(struct pads *t, uint32_t id, const struct params *changes, uint64_t seq,
                char why[PARAMS_WHY_MAX]);
/* The unload request `seq` emptied slot `id`: its defaults go, unless a
 * later request set them. */
void pads_unloaded(struct pads *t, uint32_t id, uint64_t seq);

#endif
