/* mixer_interp.h - what mixer.c and mixer_interp.c share, private to the
 * mixer: only mixer*.c include this.  mixer_interp.c owns the other path
 * (mode != MIX_PLAIN, mixer.h); mixer.c starts its voices and hands each
 * one to it once per period.  Audio thread only where mixer.h says so. */
#ifndef LOOPERD_MIXER_INTERP_H
#define LOOPERD_MIXER_INTERP_H

#include <stdbool.h>
#include <stdint.h>

#include "mixer.h"

/* A stored 16-bit integer x stands for x * S16_SCALE (mixer.c, "16-bit sources"). */
#define S16_SCALE 0x1p-15f

/* mixer_render() of a voice on the other path (mixer.h's contract). */
bool mixer_interp_render(struct voice *v, float *out_l, float *out_r, uint32_t nframes);

/* Frames a one-shot plays from u = 0 to past its range's end at v's step:
 * ceil(frames / |rate|), exactly. */
uint64_t mixer_interp_played(const struct voice *v);

#endif
