/* engine_ab.c - two revisions of the engine, paced like JACK, in turns.
 *
 *   bench/engine_ab.sh OLD_REV NEW_REV      (builds and runs this)
 *
 * What the CPU row of run_bench.py measures moves by 1.5x over minutes on
 * a VM, far more than most changes to the mixer; two builds run one after
 * the other cannot be compared.  Here both engines live in one process
 * (engine_ab_core.c, linked once per revision) and play the same 32 voices
 * of 16-bit samples, one 64-frame period every 1.333 ms with the thread
 * asleep in between, in blocks of BLOCK periods that alternate between
 * them, so both see the same moments of the machine.  Only the
 * engine_process() calls are timed.  Prints the median ns per voice-frame
 * of each and the median of the per-round ratios new / old with its
 * quartiles.  Never fails on timing. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "bench_util.h"

void old_init(uint32_t frames);
float old_period(void);
uint32_t old_active(void);
void new_init(uint32_t frames);
float new_period(void);
uint32_t new_active(void);

#define FRAMES 786432u /* 16.4 s at 48 kHz, 3 MiB of 16-bit stereo per voice */
#define BLOCK 150      /* periods of one engine in a row (0.2 s) */
#define SKIP 2         /* first periods of a block left out (the switch) */
#define PERIOD_NS 1333333L

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 40;
    if (rounds < 4)
        rounds = 4;
    float (*period[2])(void) = {old_period, new_period};
    old_init(FRAMES);
    new_init(FRAMES);
    volatile float sink = 0;
    for (uint32_t i = 0; i < FRAMES / 64 + 100; i++) /* every voice sounding */
        sink += old_period() + new_period();

    double *t[2] = {malloc(sizeof(double) * rounds), malloc(sizeof(double) * rounds)};
    double *ratio = malloc(sizeof(double) * rounds);
    if (!t[0] || !t[1] || !ratio)
        return 1;
    struct timespec tick;
    clock_gettime(CLOCK_MONOTONIC, &tick);
    for (int r = 0; r < rounds; r++) {
        for (int q = 0; q < 2; q++) {
            int f = (r + q) % 2; /* alternate which goes first */
            double spent = 0;
            for (int i = 0; i < BLOCK; i++) {
                double t0 = bench_now();
                sink += period[f]();
                double t1 = bench_now();
                if (i >= SKIP)
                    spent += t1 - t0;
                bench_pace(&tick, PERIOD_NS);
            }
            t[f][r] = spent / (BLOCK - SKIP) * 1e9 / (64.0 * 32.0);
        }
        ratio[r] = t[1][r] / t[0][r];
    }
    qsort(t[0], rounds, sizeof(double), bench_cmp_double);
    qsort(t[1], rounds, sizeof(double), bench_cmp_double);
    qsort(ratio, rounds, sizeof(double), bench_cmp_double);
    printf("paced ns per voice-frame (%u and %u voices active): old %.3f  new %.3f  "
           "new/old %.3f (quartiles %.3f..%.3f, %d rounds)\n",
           old_active(), new_active(), t[0][rounds / 2], t[1][rounds / 2], ratio[rounds / 2],
           ratio[rounds / 4], ratio[3 * rounds / 4], rounds);
    return 0;
}
