/* engine_burst.c - the worst period of two revisions of the engine, in
 * turns in one process.
 *
 *   bench/engine_ab.sh --burst OLD_REV NEW_REV [ROUNDS]   (builds and runs this)
 *
 * Both engines (engine_burst_core.c, linked once per revision) have 256
 * voices (512 voice structs) over 32 slots.  A measurement: 256 /play, so
 * that 256 voices play; five periods, so that the voices they stole have
 * faded out; then a full command ring (ENGINE_CMD_RING) of one kind of
 * request, and the period that applies it is the one timed (with its mix
 * of 64 frames), and the period after it, which mixes the same voices
 * with no request to apply (what mixing alone costs there).  Periods are paced like JACK's (one
 * per 1.333 ms, asleep in between), the two engines alternate measurement by measurement, which one
 * goes first alternates by round.  Prints, for each kind, the median time of that period for each
 * engine and the median of the per-round ratios new / old with its quartiles; never fails on
 * timing. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "bench_util.h"
#include "engine.h"

void old_init(void);
void old_push(uint32_t type, uint32_t n);
float old_run(void);
uint32_t old_active(void);
void new_init(void);
void new_push(uint32_t type, uint32_t n);
float new_run(void);
uint32_t new_active(void);

#define PERIOD_NS 1333333L
#define SETTLE 5 /* periods between the refill and the burst */

struct side {
    void (*push)(uint32_t, uint32_t);
    float (*run)(void);
    uint32_t (*active)(void);
};

static const struct side sides[2] = {{old_push, old_run, old_active},
                                     {new_push, new_run, new_active}};

static volatile float sink;

/* One measurement on side s: seconds of the period that applies the ring;
 * *next: of the period after it. */
static double burst(const struct side *s, uint32_t type, struct timespec *tick, double *next)
{
    s->push(CTL_PLAY, 256);
    for (int i = 0; i <= SETTLE; i++) {
        sink += s->run();
        bench_pace(tick, PERIOD_NS);
    }
    s->push(type, ENGINE_CMD_RING);
    double t0 = bench_now();
    sink += s->run();
    double t1 = bench_now();
    bench_pace(tick, PERIOD_NS);
    double t2 = bench_now();
    sink += s->run();
    *next = bench_now() - t2;
    bench_pace(tick, PERIOD_NS);
    return t1 - t0;
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 30;
    if (rounds < 4)
        rounds = 4;
    old_init();
    new_init();
    static const struct {
        uint32_t type;
        const char *name;
    } kinds[] = {{CTL_PLAY, "/play"}, {CTL_LOOP, "/loop"}, {CTL_STOP_SLOT, "/stop id"}};
    double *t[2] = {malloc(sizeof(double) * rounds), malloc(sizeof(double) * rounds)};
    double *ratio = malloc(sizeof(double) * rounds);
    double *after[2] = {malloc(sizeof(double) * rounds), malloc(sizeof(double) * rounds)};
    if (!t[0] || !t[1] || !ratio || !after[0] || !after[1])
        return 1;
    struct timespec tick;
    clock_gettime(CLOCK_MONOTONIC, &tick);
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        double unused;
        burst(&sides[0], kinds[k].type, &tick, &unused); /* warm-up, untimed */
        burst(&sides[1], kinds[k].type, &tick, &unused);
        uint32_t active[2] = {0, 0};
        for (int r = 0; r < rounds; r++) {
            for (int q = 0; q < 2; q++) {
                int f = (r + q) % 2;
                t[f][r] = burst(&sides[f], kinds[k].type, &tick, &after[f][r]) * 1e6;
                after[f][r] *= 1e6;
                active[f] = sides[f].active();
            }
            ratio[r] = t[1][r] / t[0][r];
        }
        qsort(t[0], rounds, sizeof(double), bench_cmp_double);
        qsort(t[1], rounds, sizeof(double), bench_cmp_double);
        qsort(ratio, rounds, sizeof(double), bench_cmp_double);
        qsort(after[0], rounds, sizeof(double), bench_cmp_double);
        qsort(after[1], rounds, sizeof(double), bench_cmp_double);
        printf("worst-case period, %u x %s, 256 voices (512 structs), 64 frames: "
               "old %.1f us  new %.1f us  new/old %.3f (quartiles %.3f..%.3f, %d rounds; "
               "%u and %u voices sounding after it; the period after it, no requests: "
               "old %.1f us  new %.1f us)\n",
               ENGINE_CMD_RING, kinds[k].name, t[0][rounds / 2], t[1][rounds / 2],
               ratio[rounds / 2], ratio[rounds / 4], ratio[3 * rounds / 4], rounds, active[0],
               active[1], after[0][rounds / 2], after[1][rounds / 2]);
    }
    return 0;
}
