/* engine_ab_core.c - one side of bench/engine_ab.sh: 32 stereo voices of
 * 16-bit samples on one engine, rendered a period at a time.
 *
 * Compiled once per engine revision with AB(x) defined to a prefix
 * (old_x, new_x) and that revision's headers, then linked with that
 * revision's engine into one relocatable object that exports only the
 * three prefixed functions, so two revisions of the same code can live in
 * one process (engine_ab.c) and take turns on the same machine moments.
 * The voices are the bench_mixer's: distinct 3 MiB buffers (96 MiB in all,
 * beyond the last-level cache), staggered, re-triggered when they end; with
 * AB_RATE defined (engine_ab.sh --rate), loops at that rate instead, as
 * bench_mixer's rate-1.5 row, started staggered and never re-triggered. */
#include <stdio.h>
#include <stdlib.h>

#include "ab_doors.h"
#include "engine.h"
#include "messages.h"
#include "sample.h"

#define RATE 48000u
#define VOICES 32u
#define PERIOD 64u

static struct engine e;
static struct sample_buffer *bufs[VOICES];
static uint64_t next_start[VOICES], p;
static uint32_t periods_per_buffer;
static float out_l[PERIOD], out_r[PERIOD];

static void die(const char *what)
{
    fprintf(stderr, "engine_ab: %s\n", what);
    exit(1);
}

void AB(init)(uint32_t frames)
{
    periods_per_buffer = frames / PERIOD;
    if (ab_engine_init(&e, VOICES, VOICES, RATE) < 0)
        die("engine_init failed");
    for (uint32_t k = 0; k < VOICES; k++) {
        if (!engine_buffer_reserve(&e))
            die("engine_buffer_reserve refused");
        bufs[k] = sample_buffer_new_format(frames, 2, RATE, SAMPLE_S16);
        if (!bufs[k])
            die("out of memory");
        int16_t *s = sample_buffer_s16(bufs[k]);
        uint32_t x = k * 2654435761u + 1;
        for (size_t i = 0; i < (size_t)frames * 2; i++) {
            x = x * 1664525u + 1013904223u;
            s[i] = (int16_t)((((int32_t)(x >> 16) - 32768) / 10) | 1);
        }
        sample_buffer_prefault(bufs[k]);
    }
    for (uint32_t k = 0; k < VOICES; k++) {
        if (engine_loads_waiting(&e) == ENGINE_LOAD_RING)
            ab_engine_process(&e, out_l, out_r, PERIOD, (struct engine_clock){0});
        struct ctl_msg m = {
            .type = CTL_LOAD, .id = k, .seq = k + 1, .buf = bufs[k], .velocity = 1.0f};
        if (!engine_publish(&e, &m))
            die("load ring full");
    }
    ab_engine_process(&e, out_l, out_r, PERIOD, (struct engine_clock){0});
    for (uint32_t k = 0; k < VOICES; k++)
        next_start[k] = (uint64_t)k * (periods_per_buffer / VOICES);
}

/* One period (re-triggering the voices due); returns a sample of the mix,
 * so that the work cannot be optimised away. */
float AB(period)(void)
{
    for (uint32_t k = 0; k < VOICES; k++) {
        if (next_start[k] == p) {
            struct ctl_msg m = {.type = CTL_PLAY, .id = k, .velocity = 0.8f};
#ifdef AB_RATE
            m.type = CTL_LOOP;
            m.play.keys = PLAY_RATE;
            m.play.rate = AB_RATE;
#endif
            if (engine_send(&e, &m, 0) != 0)
                die("command ring full");
#ifdef AB_RATE
            next_start[k] = UINT64_MAX;
#else
            next_start[k] += periods_per_buffer;
#endif
        }
    }
    struct engine_clock c = {.t0 = p * PERIOD * 1000000u / RATE,
                             .t1 = (p + 1) * PERIOD * 1000000u / RATE};
    ab_engine_process(&e, out_l, out_r, PERIOD, c);
    p++;
    return out_l[0] + out_r[PERIOD - 1];
}

uint32_t AB(active)(void)
{
    return atomic_load(&e.stats.voices_active);
}
