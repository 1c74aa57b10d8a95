/* bench_onsets.c - onset times of clicks on a JACK port, with two clocks.
 *
 *   bench_onsets --name NAME --connect PORT --seconds S --out FILE
 *
 * A passive JACK client with one input.  It notes the frame of every click
 * (the first sample above 0.5 after at least 2400 frames below it) and, for
 * every cycle, two views of when that cycle's frames sound:
 *
 * - JACK's own: jack_get_cycle_times() - the cycle's first frame, and the
 *   microsecond times (JACK's clock, jack_get_time()) at which that frame and
 *   the next cycle's first frame are due, from JACK's delay-locked loop.
 * - The raw wake-up: CLOCK_REALTIME as the callback starts, with
 *   jack_last_frame_time().
 *
 * All of it goes into preallocated, pre-touched arrays; nothing is
 * allocated, locked or printed in the callback.  Outside the callback, once
 * before "ready" and once at the end, it reads CLOCK_REALTIME minus
 * jack_get_time(): the tightest of 64 readings of the wall clock on both
 * sides of one jack_get_time() (as tests/jack_record.c does).  After S
 * seconds (or SIGTERM/SIGINT) it writes FILE as JSON:
 *
 *   {"rate": R, "period": P, "xruns": X,
 *    "wall_minus_jack_us": [start, end],
 *    "jcycles": [[frame, usecs, next_usecs], ...],
 *    "cycles": [[frame, wall_ns], ...], "onsets": [frame, ...]}
 *
 * Two references for "the frame a wall-clock time W sounds at":
 *
 * - Primary, JACK's mapping: with off = wall_minus_jack_us, W - off is a
 *   time on JACK's clock, and it maps to frame
 *       frame_k + (W - off - usecs_k) / (next_usecs_k - usecs_k) * P
 *   with k the cycle whose [usecs, next_usecs) holds it - what
 *   jack_time_to_frames() does, and what tests/test_timing.py (ClockMap)
 *   measures against.  It is the reference that counts: the DLL follows the
 *   clock that moves the frames (a sound card's; here the dummy backend's
 *   timer), a period's frames leave at the period boundary it estimates, not
 *   when a callback happened to run, and a JACK client that places an event
 *   on a frame (looperd; scsynth) can only do it through this mapping or an
 *   estimate of its own.
 * - Secondary, callback start: the lower envelope of wall_ns - frame / R
 *   over nearby cycles (a callback never starts before its period is due; it
 *   may start late).  It needs no DLL, but it is an estimate from the
 *   earliest wake-up near each event, so it carries the wake-up delay, and
 *   it is what the bench used to report.
 *
 * The two agree to a frame or two while the DLL is settled.  On the dummy
 * backend they part after an xrun: the cycle that follows has times JACK2
 * reports inconsistently (next_usecs before usecs; the reader skips it), and
 * then the wake-ups run milliseconds after the DLL's times, which close in
 * over seconds.  A client that schedules by the DLL (looperd) stays on
 * JACK's clock through that and is tens to hundreds of frames off the
 * callback-start reference; the reader prints the xruns beside the errors.
 */
#include <jack/jack.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "jack_clock.h"

#define MAX_CYCLES (750 * 600) /* ten minutes at 48 kHz / 64 */
#define MAX_ONSETS 100000
#define THRESH 0.5f
#define REARM 2400
#define CLOCK_READINGS 64

static jack_client_t *client;
static jack_port_t *in_port;
static uint32_t(*cyc_frame);
static int64_t *cyc_wall;
static uint32_t *jcyc_frame; /* jack_get_cycle_times() of every cycle */
static uint64_t *jcyc_usecs, *jcyc_next;
static uint32_t *onset;
static atomic_uint ncyc, nons, xruns;
static uint32_t quiet = REARM; /* frames below threshold so far */
static volatile sig_atomic_t stop;

static int process(jack_nframes_t n, void *arg)
{
    (void)arg;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint32_t f0 = jack_last_frame_time(client);
    jack_nframes_t cf = f0;
    jack_time_t cu = 0, nu = 0;
    float period_usecs;
    if (jack_get_cycle_times(client, &cf, &cu, &nu, &period_usecs) != 0)
        cu = nu = 0; /* not available: the reader skips this cycle */
    unsigned c = atomic_load_explicit(&ncyc, memory_order_relaxed);
    if (c < MAX_CYCLES) {
        cyc_frame[c] = f0;
        cyc_wall[c] = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
        jcyc_frame[c] = cf;
        jcyc_usecs[c] = cu;
        jcyc_next[c] = nu;
        atomic_store_explicit(&ncyc, c + 1, memory_order_release);
    }
    const float *x = jack_port_get_buffer(in_port, n);
    for (jack_nframes_t i = 0; i < n; i++) {
        if (x[i] > THRESH || x[i] < -THRESH) {
            if (quiet >= REARM) {
                unsigned k = atomic_load_explicit(&nons, memory_order_relaxed);
                if (k < MAX_ONSETS) {
                    onset[k] = f0 + i;
                    atomic_store_explicit(&nons, k + 1, memory_order_release);
                }
            }
            quiet = 0;
        } else if (quiet < REARM) {
            quiet++;
        }
    }
    return 0;
}

static int on_xrun(void *arg)
{
    (void)arg;
    atomic_fetch_add(&xruns, 1);
    return 0;
}

/* n bytes, every page written now (0xff, so the compiler cannot turn it
 * into calloc) and locked if permitted, so the callback takes no page
 * faults; the contents are overwritten before they are read. */
static void *prefaulted(size_t n)
{
    void *p = malloc(n);
    if (p) {
        memset(p, 0xff, n);
        (void)mlock(p, n); /* best effort; needs RLIMIT_MEMLOCK */
    }
    return p;
}

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

int main(int argc, char **argv)
{
    const char *name = "bench_onsets", *src = NULL, *out = NULL;
    double seconds = 30;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--name"))
            name = argv[i + 1];
        else if (!strcmp(argv[i], "--connect"))
            src = argv[i + 1];
        else if (!strcmp(argv[i], "--seconds"))
            seconds = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--out"))
            out = argv[i + 1];
    }
    if (!out) {
        fprintf(stderr, "usage: bench_onsets --name N [--connect PORT] --seconds S --out FILE\n");
        return 2;
    }
    cyc_frame = prefaulted(MAX_CYCLES * sizeof(*cyc_frame));
    cyc_wall = prefaulted(MAX_CYCLES * sizeof(*cyc_wall));
    jcyc_frame = prefaulted(MAX_CYCLES * sizeof(*jcyc_frame));
    jcyc_usecs = prefaulted(MAX_CYCLES * sizeof(*jcyc_usecs));
    jcyc_next = prefaulted(MAX_CYCLES * sizeof(*jcyc_next));
    onset = prefaulted(MAX_ONSETS * sizeof(*onset));
    if (!cyc_frame || !cyc_wall || !jcyc_frame || !jcyc_usecs || !jcyc_next || !onset)
        return 1;
    jack_status_t st;
    client = jack_client_open(name, JackNoStartServer, &st);
    if (!client) {
        fprintf(stderr, "bench_onsets: no JACK server (0x%x)\n", (unsigned)st);
        return 1;
    }
    in_port = jack_port_register(client, "in", JACK_DEFAULT_AUDIO_TYPE, JackPortIsInput, 0);
    jack_set_process_callback(client, process, NULL);
    jack_set_xrun_callback(client, on_xrun, NULL);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    if (!in_port || jack_activate(client)) {
        fprintf(stderr, "bench_onsets: cannot activate\n");
        return 1;
    }
    if (src && jack_connect(client, src, jack_port_name(in_port))) {
        fprintf(stderr, "bench_onsets: cannot connect %s\n", src);
        return 1;
    }
    double off[2];
    off[0] = wall_minus_jack_us(CLOCK_READINGS, NULL);
    printf("ready\n");
    fflush(stdout);
    for (double t = 0; t < seconds && !stop; t += 0.01)
        usleep(10000);
    off[1] = wall_minus_jack_us(CLOCK_READINGS, NULL);
    jack_deactivate(client);
    unsigned nc = atomic_load(&ncyc), no = atomic_load(&nons);
    FILE *f = fopen(out, "w");
    if (!f)
        return 1;
    fprintf(f, "{\"rate\": %u, \"period\": %u, \"xruns\": %u", jack_get_sample_rate(client),
            jack_get_buffer_size(client), atomic_load(&xruns));
    fprintf(f, ", \"wall_minus_jack_us\": [%.3f, %.3f], \"jcycles\": [", off[0], off[1]);
    const char *sep = "";
    for (unsigned i = 0; i < nc; i++) {
        if (!jcyc_usecs[i])
            continue;
        fprintf(f, "%s[%u, %llu, %llu]", sep, jcyc_frame[i], (unsigned long long)jcyc_usecs[i],
                (unsigned long long)jcyc_next[i]);
        sep = ", ";
    }
    fprintf(f, "], \"cycles\": [");
    for (unsigned i = 0; i < nc; i++)
        fprintf(f, "%s[%u, %lld]", i ? ", " : "", cyc_frame[i], (long long)cyc_wall[i]);
    fprintf(f, "], \"onsets\": [");
    for (unsigned i = 0; i < no; i++)
        fprintf(f, "%s%u", i ? ", " : "", onset[i]);
    fprintf(f, "]}\n");
    fclose(f);
    jack_client_close(client);
    return 0;
}
