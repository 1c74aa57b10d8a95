/* audio.c - see audio.h. */
#include "audio.h"

#include <errno.h>
#include <jack/thread.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "jack_clock.h"
#include "log.h"
#include "memlock.h"

/* libjack reports a missing server in four lines of its own; we say it once,
 * clearly, and keep its words for --verbose. */
static void jack_quiet(const char *msg)
{
    log_debug("jack: %s", msg);
}

static inline uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t); /* vDSO: no system call */
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

int audio_process(jack_nframes_t nframes, void *arg)
{
    struct audio *a = arg;
    uint64_t start = now_ns();
    float *l = jack_port_get_buffer(a->out[0], nframes);
    float *r = jack_port_get_buffer(a->out[1], nframes);
    /* This period's place on JACK's microsecond clock: timed requests are
     * turned into frame offsets against it (RT-safe: it reads the values
     * JACK's DLL computed for this cycle). */
    jack_nframes_t frame;
    jack_time_t t0, t1;
    float period_us;
    struct engine_clock clock = {0, 0};
    if (jack_get_cycle_times(a->client, &frame, &t0, &t1, &period_us) == 0 && t1 > t0) {
        clock.t0 = t0;
        clock.t1 = t1;
    }
    engine_process(a->engine, l, r, nframes, clock);
    /* Peak DSP load: this callback's share of its period.  A relaxed
     * compare-and-swap loop; the reader resets it with an exchange. */
    uint32_t ppm = (uint32_t)((double)(now_ns() - start) * 1e6 / (a->frame_ns * nframes));
    uint32_t peak = atomic_load_explicit(&a->dsp_peak_ppm, memory_order_relaxed);
    while (ppm > peak &&
           !atomic_compare_exchange_weak_explicit(&a->dsp_peak_ppm, &peak, ppm,
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
    return 0;
}

static int on_xrun(void *arg)
{
    struct audio *a = arg;
    atomic_fetch_add(&a->xruns, 1);
    return 0;
}

/* Seconds between 1900 (NTP's epoch) and 1970 (Unix's). */
#define NTP_UNIX_OFFSET 2208988800.0

/* OSC time is wall-clock time; the audio thread schedules on JACK's own
 * microsecond clock (jack_get_time()).  Reading the wall clock on both
 * sides of one JACK clock reading gives the offset between the two to about
 * a microsecond (the narrowest of three tries, common/jack_clock.h); the audio thread then turns
 * the JACK time into a frame with its own period's clock, so no extrapolation over seconds is
 * involved. */
uint64_t audio_time_of_wall(const struct audio *a, double wall, double *ahead)
{
    if (!a->client) {
        *ahead = 0;
        return 0;
    }
    jack_time_t now = 0;
    double offset = wall_minus_jack_us(3, &now) * 1e-6; /* jack_clock.h */
    double t = wall - offset;                           /* seconds on JACK's clock */
    *ahead = t - (double)now * 1e-6;
    /* A second back is as late as any; the caller refuses the far future. */
    if (*ahead < -1.0)
        t = (double)now * 1e-6 - 1.0;
    return t <= 0 ? 0 : (uint64_t)(t * 1e6 + 0.5);
}

uint64_t audio_time_of_timetag(const struct audio *a, lo_timetag tt, double *ahead)
{
    /* The messages of one bundle share its timetag and must share their
     * start: each conversion reads the clocks afresh, and two readings a few
     * microseconds apart could round to neighbouring frames.  Only the OSC
     * thread converts timetags, so a one-entry cache needs no lock. */
    static lo_timetag last_tt;
    static uint64_t last_when;
    static double last_ahead;
    static const struct audio *last_a;
    if (a == last_a && tt.sec == last_tt.sec && tt.frac == last_tt.frac && last_when) {
        *ahead = last_ahead;
        return last_when;
    }
    double wall = (double)tt.sec - NTP_UNIX_OFFSET + (double)tt.frac / 4294967296.0;
    last_when = audio_time_of_wall(a, wall, ahead);
    last_tt = tt;
    last_ahead = *ahead;
    last_a = a;
    return last_when;
}

float audio_dsp_load(const struct audio *a)
{
    return a->client ? jack_cpu_load(a->client) : 0;
}

float audio_take_dsp_peak(struct audio *a)
{
    return (float)atomic_exchange(&a->dsp_peak_ppm, 0) / 10000.0f;
}

static void on_shutdown(void *arg)
{
    (void)arg;
    kill(getpid(), SIGUSR1);
}

int audio_open(struct audio *a, const char *name, char *err, size_t errlen)
{
    jack_status_t status = 0;

    a->client = NULL;
    a->out[0] = a->out[1] = NULL;
    a->active = false;
    jack_set_error_function(jack_quiet);
    jack_set_info_function(jack_quiet);
    a->client = jack_client_open(name, JackNoStartServer | JackUseExactName, &status);
    if (!a->client) {
        const char *server = getenv("JACK_DEFAULT_SERVER");
        if (status & JackNameNotUnique)
            snprintf(err, errlen, "a JACK client named '%s' already exists (use --name)", name);
        else if (status & (JackServerFailed | JackServerError))
            snprintf(err, errlen,
                     "no JACK server is running (server '%s'); start jackd first, e.g. "
                     "'jackd -d dummy' or 'jackd -d alsa'",
                     server ? server : "default");
        else
            snprintf(err, errlen, "cannot open a JACK client (status 0x%x)", (unsigned)status);
        return -ENOTCONN;
    }
    return 0;
}

/* The queries below answer 0 while there is no client (no server yet, or it
 * went away), so the OSC side never has to ask first. */
uint32_t audio_rate(const struct audio *a)
{
    return a->client ? jack_get_sample_rate(a->client) : 0;
}
uint32_t audio_period(const struct audio *a)
{
    return a->client ? jack_get_buffer_size(a->client) : 0;
}
const char *audio_client_name(const struct audio *a)
{
    return jack_get_client_name(a->client);
}

static void connect_outputs(struct audio *a)
{
    const char **ports = jack_get_ports(a->client, NULL, JACK_DEFAULT_AUDIO_TYPE,
                                        JackPortIsPhysical | JackPortIsInput);
    if (!ports || !ports[0]) {
        log_warn("no physical playback ports to connect to");
        jack_free(ports);
        return;
    }
    for (int i = 0; i < 2; i++) {
        const char *dst = ports[1] ? ports[i] : ports[0];
        int r = jack_connect(a->client, jack_port_name(a->out[i]), dst);
        if (r != 0 && r != EEXIST)
            log_warn("cannot connect %s to %s", jack_port_name(a->out[i]), dst);
    }
    jack_free(ports);
}

/* Runs on each of libjack's threads, the audio thread among them, before
 * it does anything else: the stack pages the process callback will use are
 * touched here, not in its first period. */
static void audio_thread_init(void *arg)
{
    (void)arg;
    memlock_touch_stack();
}

int audio_prepare(struct audio *a, struct engine *e, char *err, size_t errlen)
{
    a->engine = e;
    a->out[0] =
        jack_port_register(a->client, "out_1", JACK_DEFAULT_AUDIO_TYPE, JackPortIsOutput, 0);
    a->out[1] =
        jack_port_register(a->client, "out_2", JACK_DEFAULT_AUDIO_TYPE, JackPortIsOutput, 0);
    if (!a->out[0] || !a->out[1]) {
        snprintf(err, errlen, "cannot register JACK output ports");
        return -EIO;
    }
    a->frame_ns = 1e9 / jack_get_sample_rate(a->client);
    jack_set_thread_init_callback(a->client, audio_thread_init, a);
    jack_set_process_callback(a->client, audio_process, a);
    jack_set_xrun_callback(a->client, on_xrun, a);
    jack_on_shutdown(a->client, on_shutdown, a);
    return 0;
}

int audio_start(struct audio *a, struct engine *e, bool connect, char *err, size_t errlen)
{
    int r = audio_prepare(a, e, err, errlen);
    if (r < 0)
        return r;
    /* The client's shared segments are mapped by now; the audio thread's
     * first period must not fault them (or our code) in. */
    a->locked_bytes = memlock_audio_mappings();
    if (jack_activate(a->client) != 0) {
        snprintf(err, errlen, "cannot activate the JACK client");
        return -EIO;
    }
    a->active = true;
    /* For top -H, ps -L and the page-fault test. */
    pthread_setname_np(jack_client_thread_id(a->client), "looperd-audio");
    if (connect)
        connect_outputs(a);
    return 0;
}

void audio_lost(struct audio *a)
{
    atomic_store(&a->gone, true);
    audio_close(a);
}

void audio_remember_links(struct audio *a)
{
    if (!a->client || atomic_load(&a->gone))
        return;
    for (int i = 0; i < 2; i++) {
        const char **c = jack_port_get_connections(a->out[i]);
        a->nlinks[i] = 0;
        for (unsigned k = 0; c && c[k] && k < AUDIO_MAX_LINKS; k++)
            snprintf(a->links[i][a->nlinks[i]++], sizeof(a->links[i][0]), "%s", c[k]);
        jack_free(c);
    }
}

unsigned audio_restore_links(struct audio *a)
{
    unsigned missing = 0;
    if (!a->client)
        return 0;
    for (int i = 0; i < 2; i++)
        for (unsigned k = 0; k < a->nlinks[i]; k++) {
            int r = jack_connect(a->client, jack_port_name(a->out[i]), a->links[i][k]);
            if (r != 0 && r != EEXIST)
                missing++;
        }
    return missing;
}

bool audio_realtime(const struct audio *a, int *prio)
{
    *prio = 0;
    if (!a->client || !jack_is_realtime(a->client))
        return false;
    *prio = jack_client_real_time_priority(a->client);
    return true;
}

void audio_close(struct audio *a)
{
    if (!a->client)
        return;
    if (a->active)
        jack_deactivate(a->client);
    jack_client_close(a->client);
    a->client = NULL;
    a->active = false;
}
