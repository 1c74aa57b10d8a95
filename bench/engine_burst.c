/* engine_burst.c - the worst period of two revisions of the engine, in
 * turns in one process.
 *
 *   bench/engine_ab.sh --burst OLD_REV NEW_REV [ROUNDS]   (builds and runs this)
 *
 * Both engines (engine_burst_core.c, linked once per revision) have 256
 * voices (512 voice structs) over 32 slots.  A measurement: 256 /play, so
 * that 256 voices play; five periods, so that the voices they stole have
 * faded out; then as many untimed requests of one kind as one period may
 * apply (ENGINE_CMD_UNTIMED, before it a full ENGINE_CMD_RING), and the
 * period that applies them is the one timed (with its mix of 64 frames),
 * and the period after it, which mixes the same voices with no request to
 * apply (what mixing alone costs there).  Last, the timed row: up to 4096
 * timed /play sent at once (as many as the side's schedule takes), all
 * due two periods on; timed are the period that takes them off the ring
 * into the schedule and the one they come due in.  Periods are paced like JACK's (one
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
uint32_t old_push_timed(uint32_t n);
float old_run(void);
uint32_t old_active(void);
void new_init(void);
void new_push(uint32_t type, uint32_t n);
uint32_t new_push_timed(uint32_t n);
float new_run(void);
uint32_t new_active(void);

#define PERIOD_NS 1333333L
/* Untimed requests one period may apply: a full command ring before
 * ENGINE_CMD_UNTIMED, as many after it. */
#ifdef ENGINE_CMD_UNTIMED
#define UNTIMED ENGINE_CMD_UNTIMED
#else
#define UNTIMED ENGINE_CMD_RING
#endif
#define TIMED 4096 /* timed /play sent at once, all due in one period */
#define SETTLE 5   /* periods between the refill and the burst */

struct side {
    void (*push)(uint32_t, uint32_t);
    uint32_t (*push_timed)(uint32_t);
    float (*run)(void);
    uint32_t (*active)(void);
};

static const struct side sides[2] = {{old_push, old_push_timed, old_run, old_active},
                                     {new_push, new_push_timed, new_run, new_active}};

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
    s->push(type, UNTIMED);
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

/* One timed measurement on side s: as burst(), with up to TIMED timed
 * /play due two periods on.  Returns seconds of the period they come due
 * in; *intake: of the period that takes them off the ring into the
 * schedule; *next: of the period after the due one; *took: how many the
 * side accepted. */
static double timed_burst(const struct side *s, struct timespec *tick, double *intake, double *next,
                          uint32_t *took)
{
    s->push(CTL_PLAY, 256);
    for (int i = 0; i <= SETTLE; i++) {
        sink += s->run();
        bench_pace(tick, PERIOD_NS);
    }
    *took = s->push_timed(TIMED);
    double t0 = bench_now();
    sink += s->run();
    *intake = bench_now() - t0;
    bench_pace(tick, PERIOD_NS);
    sink += s->run();
    bench_pace(tick, PERIOD_NS);
    t0 = bench_now();
    sink += s->run();
    double due = bench_now() - t0;
    bench_pace(tick, PERIOD_NS);
    t0 = bench_now();
    sink += s->run();
    *next = bench_now() - t0;
    bench_pace(tick, PERIOD_NS);
    return due;
}

static void timed_rows(int rounds, struct timespec *tick)
{
    double *due[2], *in[2], *after[2];
    for (int f = 0; f < 2; f++) {
        due[f] = malloc(sizeof(double) * rounds);
        in[f] = malloc(sizeof(double) * rounds);
        after[f] = malloc(sizeof(double) * rounds);
        if (!due[f] || !in[f] || !after[f])
            exit(1);
    }
    uint32_t took[2] = {0, 0};
    double unused, unused2;
    timed_burst(&sides[0], tick, &unused, &unused2, &took[0]); /* warm-up */
    timed_burst(&sides[1], tick, &unused, &unused2, &took[1]);
    for (int r = 0; r < rounds; r++)
        for (int q = 0; q < 2; q++) {
            int f = (r + q) % 2;
            due[f][r] = timed_burst(&sides[f], tick, &in[f][r], &after[f][r], &took[f]) * 1e6;
            in[f][r] *= 1e6;
            after[f][r] *= 1e6;
        }
    for (int f = 0; f < 2; f++) {
        qsort(due[f], rounds, sizeof(double), bench_cmp_double);
        qsort(in[f], rounds, sizeof(double), bench_cmp_double);
        qsort(after[f], rounds, sizeof(double), bench_cmp_double);
    }
    double m0 = due[0][rounds / 2], m1 = due[1][rounds / 2];
    double a0 = after[0][rounds / 2], a1 = after[1][rounds / 2];
    printf("worst-case period, timed /play sent at once, all due in one period, 256 voices "
           "(512 structs), 64 frames: old took %u, new took %u; the period they come due in: "
           "old %.1f us  new %.1f us (%.0f and %.0f ns a request above the period after it: "
           "old %.1f us  new %.1f us); the period that takes them into the schedule: "
           "old %.1f us  new %.1f us (%.0f and %.0f ns a request); %d rounds\n",
           took[0], took[1], m0, m1, (m0 - a0) * 1e3 / took[0], (m1 - a1) * 1e3 / took[1], a0, a1,
           in[0][rounds / 2], in[1][rounds / 2], in[0][rounds / 2] * 1e3 / took[0],
           in[1][rounds / 2] * 1e3 / took[1], rounds);
    for (int f = 0; f < 2; f++) {
        free(due[f]);
        free(in[f]);
        free(after[f]);
    }
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
               UNTIMED, kinds[k].name, t[0][rounds / 2], t[1][rounds / 2], ratio[rounds / 2],
               ratio[rounds / 4], ratio[3 * rounds / 4], rounds, active[0], active[1],
               after[0][rounds / 2], after[1][rounds / 2]);
    }
    timed_rows(rounds, &tick);
    return 0;
}
