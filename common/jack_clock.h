/* jack_clock.h - where JACK's clock stands against the wall clock.
 *
 * Shared by the daemon (audio.c: OSC timetags to JACK time), the recorder
 * of the tests (tests/jack_record.c) and that of the benchmarks
 * (bench/bench_onsets.c), which all turn wall-clock times into JACK time
 * the same way.  One clock is read between two readings of another; a
 * reading whose bracket is wide was preempted in between (which would place
 * the middle reading up to half the gap off), so the narrowest of `tries`
 * is kept.  Not for a process callback (it reads the clocks `3 * tries`
 * times).  Header-only: the recorders link nothing of the project's.
 *
 * The daemon splits the mapping in two, because only the thread that owns
 * the JACK client may call libjack (jack_get_time() included): that thread
 * measures jack_minus_raw_us() (JACK's clock against CLOCK_MONOTONIC_RAW,
 * which do not drift against each other) and publishes it; any other
 * thread reads wall_minus_raw_us() itself, on the spot, and adds the two.
 */
#ifndef LOOPERD_JACK_CLOCK_H
#define LOOPERD_JACK_CLOCK_H

#include <jack/jack.h>
#include <time.h>

/* The clock `clk` minus jack_get_time(), in microseconds: of `tries`
 * readings of `clk` on both sides of one jack_get_time(), the narrowest
 * pair.  If `at` is not NULL it gets the jack_get_time() of that reading. */
static inline double clock_minus_jack_us(clockid_t clk, int tries, jack_time_t *at)
{
    double best = 0, best_width = -1;
    for (int i = 0; i < tries; i++) {
        struct timespec a, b;
        clock_gettime(clk, &a);
        jack_time_t j = jack_get_time();
        clock_gettime(clk, &b);
        double ua = a.tv_sec * 1e6 + a.tv_nsec * 1e-3;
        double ub = b.tv_sec * 1e6 + b.tv_nsec * 1e-3;
        if (best_width < 0 || ub - ua < best_width) {
            best_width = ub - ua;
            best = (ua + ub) * 0.5 - (double)j;
            if (at)
                *at = j;
        }
    }
    return best;
}

/* CLOCK_REALTIME minus jack_get_time(), in microseconds. */
static inline double wall_minus_jack_us(int tries, jack_time_t *at)
{
    return clock_minus_jack_us(CLOCK_REALTIME, tries, at);
}

/* jack_get_time() minus CLOCK_MONOTONIC_RAW, in microseconds. */
static inline double jack_minus_raw_us(int tries)
{
    return -clock_minus_jack_us(CLOCK_MONOTONIC_RAW, tries, NULL);
}

/* CLOCK_REALTIME minus CLOCK_MONOTONIC_RAW, in microseconds; no libjack.
 * *raw_at gets the CLOCK_MONOTONIC_RAW reading (us) that was kept. */
static inline double wall_minus_raw_us(int tries, double *raw_at)
{
    double best = 0, best_width = -1;
    for (int i = 0; i < tries; i++) {
        struct timespec a, m, b;
        clock_gettime(CLOCK_REALTIME, &a);
        clock_gettime(CLOCK_MONOTONIC_RAW, &m);
        clock_gettime(CLOCK_REALTIME, &b);
        double ua = a.tv_sec * 1e6 + a.tv_nsec * 1e-3;
        double ub = b.tv_sec * 1e6 + b.tv_nsec * 1e-3;
        double um = m.tv_sec * 1e6 + m.tv_nsec * 1e-3;
        if (best_width < 0 || ub - ua < best_width) {
            best_width = ub - ua;
            best = (ua + ub) * 0.5 - um;
            *raw_at = um;
        }
    }
    return best;
}

#endif
