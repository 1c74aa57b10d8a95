/* jack_clock.h - where JACK's clock stands against the wall clock.
 *
 * Shared by the recorders of the tests (jack_record.c) and of the
 * benchmarks (bench/bench_onsets.c), which both turn wall-clock times
 * (OSC timetags, send times) into JACK frames.  jack_get_time() is read
 * between two CLOCK_REALTIME readings; a reading whose bracket is wide was
 * preempted in between, so the narrowest of `tries` is kept.  Not for a
 * process callback (it reads the clocks `3 * tries` times).
 */
#ifndef LOOPERD_JACK_CLOCK_H
#define LOOPERD_JACK_CLOCK_H

#include <jack/jack.h>
#include <time.h>

/* CLOCK_REALTIME minus jack_get_time(), in microseconds. */
static inline double wall_minus_jack_us(int tries)
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
        }
    }
    return best;
}

#endif
