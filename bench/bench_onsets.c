/* bench_onsets.c - onset times of clicks on a JACK port, against the wall clock.
 *
 *   bench_onsets --name NAME --connect PORT --seconds S --out FILE
 *
 * A passive JACK client with one input.  Its process callback reads
 * CLOCK_REALTIME as it starts (the raw wake-up time, not JACK's smoothed
 * estimate) and jack_last_frame_time(), and notes the frame of every click:
 * the first sample above 0.5 after at least 2400 frames below it.  Both go
 * into preallocated arrays; nothing is allocated or printed in the callback.
 * After S seconds (or SIGTERM/SIGINT) it writes FILE as JSON:
 *
 *   {"rate": R, "period": P, "xruns": X,
 *    "cycles": [[frame, wall_ns], ...], "onsets": [frame, ...]}
 *
 * The reader maps a frame to the wall clock through the cycles: the dummy
 * backend has no sound card, so frame F "sounds" when its period is due,
 * which is the lower envelope of wall_ns - frame / R over nearby cycles
 * (a callback never starts before its period is due; it may start late).
 * Why not JACK's own frame <-> time mapping: on the dummy backend its
 * delay-locked loop wanders by tens to hundreds of frames after an xrun,
 * which would swamp the one-frame errors being measured.
 */
#include <jack/jack.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_CYCLES (750 * 600) /* ten minutes at 48 kHz / 64 */
#define MAX_ONSETS 100000
#define THRESH 0.5f
#define REARM 2400

static jack_client_t *client;
static jack_port_t *in_port;
static uint32_t(*cyc_frame);
static int64_t *cyc_wall;
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
    unsigned c = atomic_load_explicit(&ncyc, memory_order_relaxed);
    if (c < MAX_CYCLES) {
        cyc_frame[c] = f0;
        cyc_wall[c] = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
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
    cyc_frame = calloc(MAX_CYCLES, sizeof(*cyc_frame));
    cyc_wall = calloc(MAX_CYCLES, sizeof(*cyc_wall));
    onset = calloc(MAX_ONSETS, sizeof(*onset));
    if (!cyc_frame || !cyc_wall || !onset)
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
    printf("ready\n");
    fflush(stdout);
    for (double t = 0; t < seconds && !stop; t += 0.01)
        usleep(10000);
    jack_deactivate(client);
    unsigned nc = atomic_load(&ncyc), no = atomic_load(&nons);
    FILE *f = fopen(out, "w");
    if (!f)
        return 1;
    fprintf(f, "{\"rate\": %u, \"period\": %u, \"xruns\": %u, \"cycles\": [",
            jack_get_sample_rate(client), jack_get_buffer_size(client), atomic_load(&xruns));
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
