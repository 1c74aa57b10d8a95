/* dirt.h - SuperDirt's /dirt/play: its keys turned into one trigger of a
 * library sample.
 *
 * Owns the translation of a /dirt/play's string keys and values (Tidal's
 * and Strudel's vocabulary) into a CTL_PLAY of the library sample they
 * name, with SuperDirt's formulas for level, pan, length and speed
 * (docs/protocol.md, "/dirt/play", cites where each comes from), and the
 * counts of events that play nothing.  Tidal never reads replies: an event
 * that cannot play is counted and its cause logged once (an unknown bank:
 * once per name, for the first DIRT_NAMED names), never answered.
 *
 * OSC thread only, but for the counts, which any thread reads.
 */
#ifndef LOOPERD_DIRT_H
#define LOOPERD_DIRT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <lo/lo.h>

#include "library.h"
#include "messages.h"

/* Unknown bank names remembered (each logged once); later ones are only
 * counted. */
#define DIRT_NAMED 64
#define DIRT_NAME_MAX 64
/* Orbits are 0..DIRT_MAX_ORBIT: each has cut groups of its own. */
#define DIRT_MAX_ORBIT 999

struct dirt {
    struct library *lib;
    uint32_t outputs;            /* output pairs: orbit modulo this */
    _Atomic uint64_t not_found;  /* no such bank, or no `s` */
    _Atomic uint64_t not_loaded; /* the sample's file was not loaded yet */
    _Atomic uint64_t bad;        /* a value out of range or of the wrong type */
    char named[DIRT_NAMED][DIRT_NAME_MAX];
    unsigned nnamed;
    unsigned logged; /* causes logged once: bit per cause */
};

void dirt_init(struct dirt *d, struct library *lib, uint32_t outputs);

/* Reads a /dirt/play's arguments into a CTL_PLAY (id, velocity, keys) in
 * `out`.  0: play it; < 0: play nothing (counted, logged once).  `rate`:
 * the running sample rate. */
int dirt_translate(struct dirt *d, int argc, const char *types, lo_arg *const *argv, uint32_t rate,
                   struct ctl_msg *out);

#endif
