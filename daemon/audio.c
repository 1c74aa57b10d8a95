/* audio.c - see audio.h. */
#include "audio.h"

#include <errno.h>
#include <jack/midiport.h>
#include <jack/thread.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "jack_clock.h"
#include "link_clock.h"
#include "log.h"
#include "memlock.h"

/* libjack reports a missing server in four lines of its own; we say it once,
 * clearly, and keep its words for --verbose.  libjack calls this from any of
 * its threads, also from inside jack_client_close(). */
static void jack_quiet(const char *msg)
{
    log_debug("jack: %s", msg);
}

static uint64_t raw_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC_RAW, &t);
    return (uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u;
}

static inline uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t); /* vDSO: no system call */
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* The quantum the engine counts bars in (--quantum, /quantum), for Link's
 * beat: Link aligns the beat to it.  Audio thread (the engine's own). */
static double period_quantum(const struct engine *e)
{
    return e->timeline.quantum;
}

/* Audio thread.  While Link is enabled, this period's beat span from
 * Link's session state (docs/timing.md, "Ableton Link"): JACK's DLL gives
 * the period's start t0 and the next one's t1 on JACK's clock (a filter
 * from frames to time); the offset of JACK's clock against
 * CLOCK_MONOTONIC_RAW (Link's clock), measured by the owner thread, moves
 * them onto Link's clock, and the playback latency of our outputs moves
 * them to when the frames leave the outputs.  False without Link, or
 * before the offset is measured. */
static bool audio_link_span(struct audio *a, const struct engine_clock *clock, uint32_t nframes,
                            struct beat_span *span)
{
    if (!a->link || clock->t1 <= clock->t0 ||
        !atomic_load_explicit(&a->clock_valid, memory_order_acquire))
        return false;
    double jack_minus_raw_us =
        (double)atomic_load_explicit(&a->jack_minus_raw_ns, memory_order_relaxed) * 1e-3;
    double latency_us =
        (double)atomic_load_explicit(&a->out_latency, memory_order_relaxed) * a->frame_ns * 1e-3;
    double shift = latency_us - jack_minus_raw_us;
    int64_t first = (int64_t)llround((double)clock->t0 + shift);
    int64_t next = (int64_t)llround((double)clock->t1 + shift);
    if (!link_clock_span(a->link, first, next, nframes, period_quantum(a->engine), span))
        return false;
    span->heard_after_us = latency_us;
    return true;
}

/* The JACK process callback. */
static int audio_process(jack_nframes_t nframes, void *arg)
{
    struct audio *a = arg;
    uint64_t start = now_ns();
    float *outs[AUDIO_MAX_PORTS];
    for (unsigned k = 0; k < a->nports; k++)
        outs[k] = jack_port_get_buffer(a->out[k], nframes);
    /* This period's place on JACK's microsecond clock: timed requests are
     * turned into frame offsets against it (RT-safe: it reads the values
     * JACK's DLL computed for this cycle). */
    jack_nframes_t frame;
    jack_time_t t0, t1;
    float period_us;
    struct engine_clock clock = {0};
    if (jack_get_cycle_times(a->client, &frame, &t0, &t1, &period_us) == 0 && t1 > t0) {
        clock.t0 = t0;
        clock.t1 = t1;
        /* The own timeline is a function of this counter (beat.h), so it
         * must not wrap after 2^32 frames (a day at 48 kHz): it is extended
         * by the signed step from the last reading, which is a wrap forward
         * when it crosses 2^32 and a small step back when JACK2 repeats a
         * period's reading around an xrun (seen with the dummy backend). */
        if (a->new_client) {
            a->frame64 = frame;
            clock.new_counter = true;
            a->new_client = false;
        } else {
            a->frame64 += (int64_t)(int32_t)(frame - (uint32_t)a->frame64);
        }
        clock.frame = a->frame64;
        clock.has_frame = true;
    }
    /* JACK's clock now, for the age of untimed triggers: after a stall the
     * cycle times above still follow JACK's smoothed timeline for a while,
     * this does not (RT-safe: a clock read, no system call). */
    clock.now = jack_get_time();
    struct beat_span link_span;
    if (audio_link_span(a, &clock, nframes, &link_span)) {
        clock.link = &link_span;
    } else if (a->has_link_last && a->link && link_clock_enabled(a->link)) {
        /* Link is on, but this period's times cannot place it (JACK2 at an
         * xrun can give a next cycle time before this one): Link's beats
         * go on from the last period's span.  Falling back to the own
         * timeline for a period would mix two counts of beats, and a start
         * waiting for Link's beat B would take the own timeline's next
         * point instead (a bar late, seen). */
        link_span = a->link_last;
        link_span.beat += a->link_last_frames * link_span.per_frame;
        clock.link = &link_span;
    }
    a->has_link_last = clock.link != NULL;
    if (clock.link) {
        a->link_last = link_span;
        a->link_last_frames = nframes;
    }
    /* The period's MIDI input, each event at its frame (RT-safe: reads of
     * the port's buffer). */
    void *midi = jack_port_get_buffer(a->midi_in, nframes);
    uint32_t nev = midi ? jack_midi_get_event_count(midi) : 0;
    for (uint32_t i = 0; i < nev; i++) {
        jack_midi_event_t ev;
        if (jack_midi_event_get(&ev, midi, i) == 0)
            engine_midi_event(a->engine, ev.time, ev.buffer, ev.size);
    }
    engine_process(a->engine, outs, nframes, clock);
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
 * microsecond clock (jack_get_time()).  The owner thread publishes where
 * JACK's clock stands against CLOCK_MONOTONIC_RAW (audio_tick); here the
 * wall clock is read on both sides of a CLOCK_MONOTONIC_RAW reading, the
 * narrowest of three tries (common/jack_clock.h), which places it to about a
 * microsecond without calling libjack.  The audio thread then turns the JACK
 * time into a frame with its own period's clock, so no extrapolation over
 * seconds is involved. */
static bool jack_now(const struct audio *a, double *wall_minus_jack_us, double *now_us)
{
    if (!atomic_load_explicit(&a->clock_valid, memory_order_acquire))
        return false;
    double raw = 0;
    double wall_minus_raw = wall_minus_raw_us(3, &raw); /* jack_clock.h */
    double jack_minus_raw =
        (double)atomic_load_explicit(&a->jack_minus_raw_ns, memory_order_relaxed) * 1e-3;
    *wall_minus_jack_us = wall_minus_raw - jack_minus_raw;
    *now_us = raw + jack_minus_raw;
    return true;
}

bool audio_jack_now_us(const struct audio *a, double *now_us)
{
    double offset_us;
    return jack_now(a, &offset_us, now_us);
}

uint64_t audio_time_of_wall(const struct audio *a, double wall, double *ahead)
{
    double offset_us, now_us;
    if (!jack_now(a, &offset_us, &now_us)) {
        *ahead = 0;
        return 0;
    }
    double t = wall - offset_us * 1e-6; /* seconds on JACK's clock */
    *ahead = t - now_us * 1e-6;
    /* A second back is as late as any; the caller refuses the far future. */
    if (*ahead < -1.0)
        t = now_us * 1e-6 - 1.0;
    return t <= 0 ? 0 : (uint64_t)(t * 1e6 + 0.5);
}

uint64_t audio_time_of_arrival(const struct audio *a, struct timespec rx)
{
    double offset_us, now_us;
    if (!jack_now(a, &offset_us, &now_us))
        return 0;
    if (rx.tv_sec == 0 && rx.tv_nsec == 0)
        return (uint64_t)now_us;
    double t = (double)rx.tv_sec * 1e6 + (double)rx.tv_nsec * 1e-3 - offset_us;
    /* A kernel stamp later than now is a clock step; take now. */
    return t <= 0 ? 0 : t > now_us ? (uint64_t)now_us : (uint64_t)t;
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
    return (float)atomic_load_explicit(&a->dsp_load_ppm, memory_order_relaxed) / 10000.0f;
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

/* Runs on the notification thread: no libjack call, only the atomic; the
 * owner connects (audio_midi_connect). */
static void on_port_registration(jack_port_id_t port, int registered, void *arg)
{
    (void)port;
    struct audio *a = arg;
    if (registered)
        atomic_store(&a->ports_changed, true);
}

/* Runs on the notification thread: no libjack call, only the atomic. */
static int on_buffer_size(jack_nframes_t n, void *arg)
{
    struct audio *a = arg;
    atomic_store(&a->period, n);
    return 0;
}

/* JACK's latency callback, on libjack's notification thread, after the
 * graph changed: in playback mode JACK has just computed how long what our
 * output ports carry takes to reach the outside (the latency of what they
 * are connected to), which is what is read here - the one place where the
 * API says the ranges are current.  Our outputs carry nothing captured, so
 * capture mode has nothing to set. */
static void on_latency(jack_latency_callback_mode_t mode, void *arg)
{
    struct audio *a = arg;
    if (mode != JackPlaybackLatency)
        return;
    uint32_t most = 0;
    for (unsigned k = 0; k < a->nports; k++) {
        jack_latency_range_t r;
        jack_port_get_latency_range(a->out[k], JackPlaybackLatency, &r);
        if (r.max > most)
            most = r.max;
    }
    atomic_store_explicit(&a->out_latency, most, memory_order_relaxed);
}

uint32_t audio_output_latency(const struct audio *a)
{
    return atomic_load_explicit(&a->out_latency, memory_order_relaxed);
}

/* Owner thread, with a client: publishes where JACK's clock stands. */
static void publish_clock(struct audio *a)
{
    double us = jack_minus_raw_us(3); /* jack_clock.h */
    atomic_store_explicit(&a->jack_minus_raw_ns, (int64_t)(us * 1000.0), memory_order_relaxed);
    atomic_store_explicit(&a->clock_valid, true, memory_order_release);
}

void audio_tick(struct audio *a)
{
    if (!a->client || atomic_load(&a->gone))
        return;
    publish_clock(a);
    atomic_store(&a->period, jack_get_buffer_size(a->client));
    float load = jack_cpu_load(a->client);
    atomic_store(&a->dsp_load_ppm, load > 0 ? (uint32_t)(load * 10000.0f) : 0);
}

int audio_open(struct audio *a, const char *name, char *err, size_t errlen)
{
    jack_status_t status = 0;

    a->client = NULL;
    for (unsigned k = 0; k < AUDIO_MAX_PORTS; k++)
        a->out[k] = NULL;
    a->midi_in = NULL;
    a->nports = 0;
    a->active = false;
    for (unsigned i = 0; i < AUDIO_MAX_THREADS; i++)
        atomic_store(&a->threads[i].ready, false);
    atomic_store(&a->nthreads, 0);
    atomic_store(&a->activating, false);
    a->process_tid = 0;
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
    atomic_store(&a->rate, jack_get_sample_rate(a->client));
    atomic_store(&a->period, jack_get_buffer_size(a->client));
    a->new_client = true;
    a->has_link_last = false;
    publish_clock(a);
    return 0;
}

/* The queries below answer 0 while there is no client (no server yet, or it
 * went away), so the OSC side never has to ask first. */
uint32_t audio_rate(const struct audio *a)
{
    return atomic_load(&a->rate);
}
uint32_t audio_period(const struct audio *a)
{
    return atomic_load(&a->period);
}
const char *audio_client_name(const struct audio *a)
{
    return jack_get_client_name(a->client);
}

/* Our port k to the physical playback port k (audio_start); a single
 * playback port takes both of the first pair. */
static void connect_outputs(struct audio *a, unsigned pairs)
{
    const char **ports = jack_get_ports(a->client, NULL, JACK_DEFAULT_AUDIO_TYPE,
                                        JackPortIsPhysical | JackPortIsInput);
    if (!ports || !ports[0]) {
        log_warn("no physical playback ports to connect to");
        jack_free(ports);
        return;
    }
    unsigned nphys = 0;
    while (ports[nphys])
        nphys++;
    unsigned want = 2 * pairs < a->nports ? 2 * pairs : a->nports, k = 0;
    for (; k < want; k++) {
        const char *dst = k < nphys ? ports[k] : k < 2 && nphys == 1 ? ports[0] : NULL;
        if (!dst)
            break; /* the rest have no playback port */
        int r = jack_connect(a->client, jack_port_name(a->out[k]), dst);
        if (r != 0 && r != EEXIST)
            log_warn("cannot connect %s to %s", jack_port_name(a->out[k]), dst);
    }
    if (k < want)
        log_notice("%u playback ports: out_%u to out_%u are not connected", nphys, k + 1, want);
    jack_free(ports);
}

/* Runs on each of libjack's threads, the audio thread among them, before
 * it does anything else: the stack pages the process callback will use are
 * touched here, not in its first period.  Each thread also notes its kernel
 * id, so that a lost client is closed only once its notification thread has
 * ended (audio.h). */
static void audio_thread_init(void *arg)
{
    struct audio *a = arg;
    memlock_touch_stack();
    unsigned i = atomic_fetch_add(&a->nthreads, 1);
    if (i < AUDIO_MAX_THREADS) {
        a->threads[i].self = pthread_self();
        a->threads[i].tid = (pid_t)syscall(SYS_gettid);
        a->threads[i].after_activate = atomic_load(&a->activating);
        atomic_store_explicit(&a->threads[i].ready, true, memory_order_release);
    }
}

/* Registers out_1/out_2 and installs the callbacks, without activating. */
static int audio_prepare(struct audio *a, struct engine *e, char *err, size_t errlen)
{
    a->engine = e;
    a->nports = 2 * e->npairs;
    for (unsigned k = 0; k < a->nports; k++) {
        char name[16];
        snprintf(name, sizeof(name), "out_%u", k + 1);
        a->out[k] =
            jack_port_register(a->client, name, JACK_DEFAULT_AUDIO_TYPE, JackPortIsOutput, 0);
        if (!a->out[k]) {
            snprintf(err, errlen, "cannot register JACK output port %s", name);
            return -EIO;
        }
    }
    a->midi_in =
        jack_port_register(a->client, "midi_in", JACK_DEFAULT_MIDI_TYPE, JackPortIsInput, 0);
    if (!a->midi_in) {
        snprintf(err, errlen, "cannot register JACK MIDI input port midi_in");
        return -EIO;
    }
    a->frame_ns = 1e9 / jack_get_sample_rate(a->client);
    jack_set_port_registration_callback(a->client, on_port_registration, a);
    jack_set_thread_init_callback(a->client, audio_thread_init, a);
    jack_set_process_callback(a->client, audio_process, a);
    jack_set_xrun_callback(a->client, on_xrun, a);
    jack_set_buffer_size_callback(a->client, on_buffer_size, a);
    atomic_store(&a->out_latency, 0);
    jack_set_latency_callback(a->client, on_latency, a);
    jack_on_shutdown(a->client, on_shutdown, a);
    return 0;
}

int audio_start(struct audio *a, struct engine *e, unsigned connect_pairs, char *err, size_t errlen)
{
    int r = audio_prepare(a, e, err, errlen);
    if (r < 0)
        return r;
    /* The client's shared segments are mapped by now; the audio thread's
     * first period must not fault them (or our code) in. */
    a->locked_bytes = memlock_audio_mappings();
    atomic_store(&a->activating, true);
    if (jack_activate(a->client) != 0) {
        snprintf(err, errlen, "cannot activate the JACK client");
        return -EIO;
    }
    a->active = true;
    /* For top -H, ps -L and the page-fault test. */
    pthread_t audio_thread = jack_client_thread_id(a->client);
    pthread_setname_np(audio_thread, "looperd-audio");
    unsigned n = atomic_load(&a->nthreads);
    for (unsigned i = 0; i < n && i < AUDIO_MAX_THREADS; i++)
        if (atomic_load_explicit(&a->threads[i].ready, memory_order_acquire) &&
            pthread_equal(a->threads[i].self, audio_thread))
            a->process_tid = a->threads[i].tid;
    if (connect_pairs)
        connect_outputs(a, connect_pairs);
    atomic_store(&a->ports_changed, true);
    audio_midi_connect(a);
    return 0;
}

unsigned audio_midi_connect(struct audio *a)
{
    if (!a->client || !a->active || atomic_load(&a->gone) || !a->midi_in ||
        !atomic_exchange(&a->ports_changed, false))
        return 0;
    unsigned made = 0;
    const char *mine = jack_port_name(a->midi_in);
    for (unsigned i = 0; i < a->nmidi_connect; i++) {
        const char *src = a->midi_connect[i];
        if (!jack_port_by_name(a->client, src) || jack_port_connected_to(a->midi_in, src))
            continue;
        int r = jack_connect(a->client, src, mine);
        if (r == 0) {
            made++;
            log_notice("MIDI: %s connected to %s", src, mine);
        } else if (r != EEXIST) {
            log_warn("MIDI: cannot connect %s to %s", src, mine);
        }
    }
    return made;
}

/* True while a thread libjack started at activation, other than the
 * process thread (so: the notification thread), still exists. */
static bool notification_thread_alive(struct audio *a)
{
    unsigned n = atomic_load(&a->nthreads);
    for (unsigned i = 0; i < n && i < AUDIO_MAX_THREADS; i++) {
        struct audio_thread *t = &a->threads[i];
        if (!atomic_load_explicit(&t->ready, memory_order_acquire) || !t->after_activate ||
            t->tid == a->process_tid)
            continue;
        char path[64];
        snprintf(path, sizeof(path), "/proc/self/task/%d", (int)t->tid);
        struct stat st;
        if (stat(path, &st) == 0)
            return true;
    }
    return false;
}

/* The closer thread: closes a lost client once libjack's notification
 * thread has ended by itself, so that jack_client_close() never cancels it
 * in the middle of a notification (audio.h). */
static void *closer_main(void *arg)
{
    struct audio *a = arg;
    for (int i = 0; i < AUDIO_NOTIFY_WAIT_S * 100 && notification_thread_alive(a); i++)
        nanosleep(&(struct timespec){.tv_nsec = 10000000}, NULL);
    if (notification_thread_alive(a))
        log_warn("JACK's notification thread is still running %d s after the server went "
                 "away; closing the client anyway",
                 AUDIO_NOTIFY_WAIT_S);
    jack_client_close(a->closing_client);
    atomic_store(&a->close_done, true);
    return NULL;
}

void audio_lost(struct audio *a)
{
    atomic_store(&a->gone, true);
    atomic_store(&a->rate, 0);
    atomic_store(&a->period, 0);
    atomic_store(&a->dsp_load_ppm, 0);
    if (!a->client)
        return;
    a->closing_client = a->client;
    a->client = NULL;
    a->active = false;
    atomic_store(&a->close_done, false);
    a->close_started_us = raw_us();
    if (pthread_create(&a->closer, NULL, closer_main, a) != 0) {
        /* Without a closer the dead client stays open: libjack would close
         * it inside the next jack_client_open(), on this thread, which is
         * what must not happen.  Give up on JACK; the watchdog says so. */
        log_error("cannot start a thread to close the lost JACK client; not reconnecting");
        atomic_store(&a->stuck, true);
        return;
    }
    pthread_setname_np(a->closer, "looperd-close");
    a->closing = true;
}

bool audio_poll_lost(struct audio *a)
{
    if (atomic_load(&a->stuck))
        return false;
    if (!a->closing)
        return true;
    if (atomic_load(&a->close_done)) {
        pthread_join(a->closer, NULL);
        a->closing = false;
        a->closing_client = NULL;
        return true;
    }
    if (raw_us() - a->close_started_us > (uint64_t)AUDIO_CLOSE_DEADLINE_S * 1000000u) {
        /* The closer is blocked inside libjack, holding its locks: no
         * client can be opened in this process any more. */
        pthread_detach(a->closer);
        a->closing = false;
        atomic_store(&a->stuck, true);
        log_error("closing the lost JACK client has not finished in %d s: libjack is stuck "
                  "in this process and looperd cannot reconnect; restart it",
                  AUDIO_CLOSE_DEADLINE_S);
    }
    return false;
}

void audio_remember_links(struct audio *a)
{
    if (!a->client || atomic_load(&a->gone) || !a->active)
        return;
    for (unsigned i = 0; i < a->nports; i++) {
        const char **c = jack_port_get_connections(a->out[i]);
        a->nlinks[i] = 0;
        for (unsigned k = 0; c && c[k] && k < AUDIO_MAX_LINKS; k++)
            snprintf(a->links[i][a->nlinks[i]++], sizeof(a->links[i][0]), "%s", c[k]);
        jack_free(c);
    }
}

unsigned audio_remembered_links(const struct audio *a)
{
    unsigned n = 0;
    for (unsigned i = 0; i < AUDIO_MAX_PORTS; i++)
        n += a->nlinks[i];
    return n;
}

unsigned audio_restore_links(struct audio *a)
{
    unsigned missing = 0;
    if (!a->client)
        return 0;
    for (unsigned i = 0; i < a->nports; i++)
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
    /* A lost client still being closed: let the closer finish first (the
     * exit guard bounds the wait), so that nothing tears libjack down under
     * it. */
    if (a->closing) {
        while (!atomic_load(&a->close_done))
            nanosleep(&(struct timespec){.tv_nsec = 10000000}, NULL);
        pthread_join(a->closer, NULL);
        a->closing = false;
    }
    if (!a->client)
        return;
    if (a->active)
        jack_deactivate(a->client);
    jack_client_close(a->client);
    a->client = NULL;
    a->active = false;
    atomic_store(&a->rate, 0);
    atomic_store(&a->period, 0);
    atomic_store(&a->clock_valid, false);
}
