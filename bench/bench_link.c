/* bench_link - what Ableton Link costs the audio thread per period: the
 * time of link_clock_span() (one capture of Link's audio session state and
 * the beat span built from it, as audio.c calls it every period), with
 * Link enabled and a second peer in the session changing its tempo.
 *
 *   bench_link [CALLS]      prints one JSON line: mean, p50, p99, max (us)
 *
 * Link multicasts on every interface once enabled: bench/run_bench.py runs
 * this only inside a network namespace of its own (unshare -n, lo up),
 * never in the machine's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "link.h"
#include "link_clock.h"

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec * 1e-3;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    long calls = argc > 1 ? strtol(argv[1], NULL, 10) : 20000;
    if (calls < 100)
        calls = 100;
    static struct link_clock lc;
    struct link_peer *other = NULL;
    link_clock_init(&lc, 120.0, true);
    if (link_clock_enable(&lc, true) < 0 || link_create(100.0, &other) < 0 ||
        link_enable(other, true) < 0) {
        fprintf(stderr, "bench_link: cannot start the Link peers\n");
        return 1;
    }
    for (int i = 0; i < 500 && link_clock_peers(&lc) < 1; i++)
        nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
    double *t = malloc(sizeof(double) * (size_t)calls);
    if (!t)
        return 1;
    struct beat_span span;
    const int64_t period_us = 1333; /* 64 frames at 48 kHz */
    double sink = 0;
    for (long i = 0; i < calls; i++) {
        if (i % 1000 == 0)
            link_app_set_tempo(other, 100.0 + (double)(i / 1000 % 20), link_clock_micros());
        int64_t first = link_clock_micros() + 2000;
        double a = now_us();
        link_clock_span(&lc, first, first + period_us, 64, 4.0, &span);
        double b = now_us();
        t[i] = b - a;
        sink += span.beat;
        /* Paced roughly like periods, so caches cool as they would. */
        if (i % 16 == 0)
            nanosleep(&(struct timespec){.tv_nsec = 200 * 1000}, NULL);
    }
    double sum = 0;
    for (long i = 0; i < calls; i++)
        sum += t[i];
    qsort(t, (size_t)calls, sizeof(double), cmp);
    printf("{\"peers\": %u, \"calls\": %ld, \"mean_us\": %.3f, \"p50_us\": %.3f, \"p99_us\": %.3f, "
           "\"max_us\": %.3f, \"sink\": %d}\n",
           link_clock_peers(&lc), calls, sum / (double)calls, t[calls / 2], t[calls * 99 / 100],
           t[calls - 1], sink > 0);
    free(t);
    link_destroy(other);
    link_clock_destroy(&lc);
    return 0;
}
