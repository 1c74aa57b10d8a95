/* bench_util.h - the clock, sort and pacing helpers the benchmark programs
 * share (header-only: each program is built on its own, engine_ab.c even
 * outside meson). */
#ifndef LOOPERD_BENCH_UTIL_H
#define LOOPERD_BENCH_UTIL_H

#include <time.h>

/* CLOCK_MONOTONIC in seconds. */
static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* qsort() comparison of doubles, ascending. */
static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sleeps until `*tick` + `ns` and moves *tick there: one JACK-like period
 * after the last, on an absolute clock, so the time spent working does not
 * add up into drift. */
static inline void bench_pace(struct timespec *tick, long ns)
{
    tick->tv_nsec += ns;
    while (tick->tv_nsec >= 1000000000L) {
        tick->tv_nsec -= 1000000000L;
        tick->tv_sec++;
    }
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, tick, NULL);
}

#endif
