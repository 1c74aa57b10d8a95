/* jack_clock.h - where JACK's clock stands against the wall clock.
 *
 * Shared by the daemon (audio.c: OSC timetags to JACK time), the recorder
 * of the tests (tests/jack_record.c) and that of the benchmarks
 * (bench/bench_onsets.c), which all turn wall-clock times into JACK time
 * the same way.  jack_get_time() is read between two CLOCK_REALTIME
 * readings; a reading whose bracket is wide was preempted in between
 * (which would place the JACK reading up to half the gap off), so the
 * narrowest of `tries` is kept.  Not for a process callback (it reads the
 * clocks `3 * tries` times).  Header-only: the recorders link nothing of
 * the project's.
 */
#ifndef LOOPERD_JACK_CLOCK_H
#define LOOPERD_JACK_CLOCK_H

#include <jack/jack.h>
#include <time.h>

/* CLOCK_REALTIME minus jack_get_time(), in microseconds.  If `at` is not
 * NULL it gets the jack_get_time() of the reading that was kept. */
static inline double wall_minus_jack_us(int tries, jack_time_t *at)
{
    double best = 0, best_width = -1;
    for (int i = 0; i < tries; i++) {
        struct timespec a, b;
        clock_gettime(CLOCK_REALTIME, &a);
        jack_time_t j = jack_get_time();
        clock_gettime(CLOCK_REALTIME, &b);
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

#endif
