/* engine_burst_core.c - one side of `bench/engine_ab.sh --burst`: the
 * largest voice pool the daemon allows (--voices 256: 512 voice structs)
 * and the most commands one period may apply (a full command ring of
 * untimed ones, or a full schedule of timed ones coming due at once).
 *
 * Compiled once per engine revision with AB(x) defined to a prefix, like
 * engine_ab_core.c, and linked with that revision's engine into one object
 * exporting only the prefixed functions; engine_burst.c drives both.  32
 * slots hold distinct 16-bit stereo buffers of 5 s, long enough that no
 * voice ends while it is measured. */
#include <stdio.h>
#include <stdlib.h>

#include "ab_doors.h"
#include "engine.h"
#include "messages.h"
#include "sample.h"

#define RATE 48000u
#define SLOTS 32u
#define VOICES 256u
#define PERIOD 64u
#define FRAMES (5u * RATE)

static struct engine e;
static uint64_t p;
static uint32_t next_slot;
static float out_l[PERIOD], out_r[PERIOD];

static void die(const char *what)
{
    fprintf(stderr, "engine_burst: %s\n", what);
    exit(1);
}

static void run(void)
{
    struct engine_clock c = {.t0 = p * PERIOD * 1000000u / RATE,
                             .t1 = (p + 1) * PERIOD * 1000000u / RATE};
    ab_engine_process(&e, out_l, out_r, PERIOD, c);
    p++;
    struct event ev;
    while (engine_take_event(&e, &ev))
        ;
}

void AB(init)(void)
{
    if (ab_engine_init(&e, SLOTS, VOICES, RATE) < 0)
        die("engine_init failed");
    for (uint32_t k = 0; k < SLOTS; k++) {
        if (!engine_buffer_reserve(&e))
            die("engine_buffer_reserve refused");
        struct sample_buffer *b = sample_buffer_new_format(FRAMES, 2, RATE, SAMPLE_S16);
        if (!b)
            die("out of memory");
        int16_t *s = sample_buffer_s16(b);
        uint32_t x = k * 2654435761u + 1;
        for (size_t i = 0; i < (size_t)FRAMES * 2; i++) {
            x = x * 1664525u + 1013904223u;
            s[i] = (int16_t)((((int32_t)(x >> 16) - 32768) / 10) | 1);
        }
        sample_buffer_prefault(b);
        if (engine_loads_waiting(&e) == ENGINE_LOAD_RING)
            run();
        struct ctl_msg m = {.type = CTL_LOAD, .id = k, .seq = k + 1, .buf = b, .velocity = 1.0f};
        if (!engine_publish(&e, &m))
            die("load ring full");
    }
    run();
}

/* Pushes n commands of `type` (CTL_PLAY, CTL_LOOP, CTL_STOP_SLOT), the
 * slots taken in turn. */
void AB(push)(uint32_t type, uint32_t n)
{
    for (uint32_t k = 0; k < n; k++) {
        struct ctl_msg m = {.type = type, .id = next_slot++ % SLOTS, .velocity = 0.5f};
        if (engine_send(&e, &m, 0) != 0)
            die("command ring full");
    }
}

/* Pushes up to n timed /play (the slots in turn) due in the period after
 * next, spread over its frames; returns how many the engine took (its
 * schedule, or before the doors its command ring, may hold fewer). */
uint32_t AB(push_timed)(uint32_t n)
{
    uint64_t due = (p + 2) * PERIOD;
    for (uint32_t k = 0; k < n; k++) {
        struct ctl_msg m = {.type = CTL_PLAY,
                            .id = next_slot++ % SLOTS,
                            .velocity = 0.5f,
                            .flags = CTL_TIMED,
                            .when = (due + k % PERIOD) * 1000000u / RATE};
        if (engine_send(&e, &m, 0) != 0)
            return k;
    }
    return n;
}

/* One period; returns a sample of the mix so that it cannot be optimised
 * away. */
float AB(run)(void)
{
    run();
    return out_l[0] + out_r[PERIOD - 1];
}

uint32_t AB(active)(void)
{
    return atomic_load(&e.stats.voices_active);
}
