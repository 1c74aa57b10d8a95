/* audio.h - the JACK client: the output ports (a stereo pair per engine
 * output pair, out_1..out_2N), the MIDI input `midi_in`, and the process
 * callback.
 *
 * This is the only module that talks to JACK.  The process callback fetches
 * the port buffers and calls engine_process(); everything real-time lives
 * in engine.c.
 *
 * Threads.  Only the thread that owns the client (the main thread; while a
 * lost client is being closed, the closer thread below) calls libjack,
 * jack_get_time() included; libjack's own threads run our callbacks.  What
 * other threads need (rate, period, DSP load, JACK's clock against
 * CLOCK_MONOTONIC_RAW, whether the server is there) the owner publishes in
 * atomics, refreshed by audio_tick(); the "any thread" functions below read
 * only those and the system clocks.
 *
 * Losing the server.  JACK calls our shutdown handler on one of its own
 * threads; we only raise SIGUSR1 there and let the main thread decide.
 * jack_client_close() must not run on the main thread then: libjack (jack2)
 * stops its notification thread with an asynchronous pthread_cancel(), and
 * if that thread is at that moment handling a notification it holds a
 * process-wide libjack mutex, which then stays locked for ever and the close
 * (and every later jack_client_open()) blocks on it.  So audio_lost() hands
 * the client to a closer thread that first waits for the notification
 * thread to end on its own (it does once the server's socket closes), and
 * only then closes.  The main thread reconnects once the closer is done;
 * if it is not done in AUDIO_CLOSE_DEADLINE_S, libjack in this process is
 * wedged, the audio side is marked stuck and never reconnects (the
 * watchdog stops, so a supervisor restarts the daemon).
 */
#ifndef LOOPERD_AUDIO_H
#define LOOPERD_AUDIO_H

#include <jack/jack.h>
#include <lo/lo.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "engine.h"

struct link_clock;

#define AUDIO_MAX_LINKS 16
/* --midi-connect PORT given at most this many times. */
#define AUDIO_MAX_MIDI_CONNECT 16
#define AUDIO_MAX_PORTS (2 * ENGINE_MAX_PAIRS)
/* libjack threads of one client we keep track of (process, notification,
 * message buffer; a few spare). */
#define AUDIO_MAX_THREADS 8
/* How long the closer waits for libjack's notification thread to end before
 * it closes anyway, and how long the main thread waits for the closer
 * before it gives the audio side up as stuck. */
#define AUDIO_NOTIFY_WAIT_S 5
#define AUDIO_CLOSE_DEADLINE_S 10

struct audio_thread {
    pthread_t self;
    pid_t tid;           /* kernel thread id */
    bool after_activate; /* started by jack_activate(), not before */
    _Atomic bool ready;  /* the fields above are written */
};

struct audio {
    jack_client_t *client; /* owner thread only */
    jack_port_t *out[AUDIO_MAX_PORTS];
    unsigned nports; /* 2 * the engine's pairs, from audio_prepare on */
    jack_port_t *midi_in;
    /* --midi-connect: ports to connect to midi_in whenever they exist and
     * are not (audio_midi_connect).  `ports_changed` is raised by JACK's
     * port-registration callback (and by audio_start) for the owner. */
    const char *midi_connect[AUDIO_MAX_MIDI_CONNECT];
    unsigned nmidi_connect;
    _Atomic bool ports_changed;
    struct engine *engine;
    bool active;
    _Atomic bool gone;  /* the server went away; reconnecting */
    _Atomic bool stuck; /* a lost client could not be closed: no reconnecting */
    /* Published by the owner thread for every other. */
    _Atomic uint32_t rate;             /* 0 while there is no client */
    _Atomic uint32_t period;           /* 0 while there is no client */
    _Atomic uint32_t dsp_load_ppm;     /* jack_cpu_load(), percent per 10,000 */
    _Atomic int64_t jack_minus_raw_ns; /* jack_get_time() - CLOCK_MONOTONIC_RAW */
    _Atomic bool clock_valid;
    /* libjack's threads of the current client, as they announced themselves
     * through the thread-init callback. */
    struct audio_thread threads[AUDIO_MAX_THREADS];
    _Atomic unsigned nthreads;
    _Atomic bool activating;
    pid_t process_tid;
    /* The closer of a lost client (audio_lost, audio_poll_lost). */
    pthread_t closer;
    jack_client_t *closing_client;
    bool closing;
    _Atomic bool close_done;
    uint64_t close_started_us;
    /* Where our outputs were connected, remembered while the server runs so
     * the connections can be restored when it comes back. */
    char links[AUDIO_MAX_PORTS][AUDIO_MAX_LINKS][256];
    unsigned nlinks[AUDIO_MAX_PORTS];
    double frame_ns;               /* duration of one frame, for the DSP load */
    _Atomic uint64_t xruns;        /* counted by JACK's xrun callback */
    _Atomic uint32_t dsp_peak_ppm; /* worst callback since last taken, per million */
    long locked_bytes;             /* memlock_audio_mappings() at the last start */
    /* JACK's 32-bit frame counter unwrapped to 64 bits (audio thread), and
     * whether the next period is the first of a new client (set before
     * jack_activate(), cleared by the process callback): its counter starts
     * afresh there. */
    uint64_t frame64;
    bool new_client;
    /* Ableton Link (link_clock.h): set before audio_start, NULL without.
     * While Link is enabled the process callback hands the engine a beat
     * span built from Link's session state (audio_link_span). */
    struct link_clock *link;
    /* The last period's Link span and its length (audio thread), carried
     * on through a period that cannot build one (audio_process). */
    struct beat_span link_last;
    uint32_t link_last_frames;
    bool has_link_last;
    /* The playback latency of our outputs, in frames: the largest of
     * their ranges' maxima, as JACK reports them once they are connected;
     * written by JACK's latency callback, read by the process callback. */
    _Atomic uint32_t out_latency;
};

/* Any thread.  JACK's clock (jack_get_time()'s, us) now, from the owner
 * thread's published offset and this thread's own clock read; false while
 * it is not known. */
bool audio_jack_now_us(const struct audio *a, double *now_us);

/* Connects to the running JACK server (never starts one) as client `name`.
 * Returns 0 or a negative errno with a one-line reason in err.  Counters in
 * *a survive a reconnect; call memset once before the first open. */
int audio_open(struct audio *a, const char *name, char *err, size_t errlen);
/* Any thread: the published rate and period (0 while there is no client). */
uint32_t audio_rate(const struct audio *a);
uint32_t audio_period(const struct audio *a);
/* Owner thread. */
const char *audio_client_name(const struct audio *a);

/* Registers out_1..out_2N, N the engine's output pairs, installs the
 * process callback (which runs engine_process), activates, and connects
 * the first `connect_pairs` output pairs to the physical playback ports:
 * pair k to the ports 2k and 2k + 1 (0-based) where they exist; with a
 * single playback port, the first pair both to it.  0: none.  A failure to
 * connect only warns. */
int audio_start(struct audio *a, struct engine *e, unsigned connect_pairs, char *err,
                size_t errlen);
void audio_close(struct audio *a);

/* Main thread, after the shutdown callback fired: marks the audio side gone
 * until audio_open/audio_start succeed, and hands the dead client to the
 * closer thread.  Never blocks. */
void audio_lost(struct audio *a);
/* Main thread, every tick while gone: true once the lost client is closed
 * and a reconnect may be tried.  Marks the audio side stuck (and logs it)
 * when the closer misses AUDIO_CLOSE_DEADLINE_S. */
bool audio_poll_lost(struct audio *a);
/* Owner thread, every tick: publishes the period, the DSP load and the
 * offset of JACK's clock. */
void audio_tick(struct audio *a);
/* Owner thread, every tick: after a port appeared (or the client
 * started), connects each --midi-connect port that exists and is not
 * connected to midi_in.  Returns how many it connected. */
unsigned audio_midi_connect(struct audio *a);
/* Main thread: remembers the current connections of our outputs. */
void audio_remember_links(struct audio *a);
/* Main thread: how many connections audio_remember_links last saw, on all
 * the outputs together. */
unsigned audio_remembered_links(const struct audio *a);
/* Main thread: reconnects what audio_remember_links saw; returns how many
 * connections are still missing (their other end may come back later). */
unsigned audio_restore_links(struct audio *a);
/* True when JACK runs our process thread with real-time priority; *prio is
 * that priority. */
bool audio_realtime(const struct audio *a, int *prio);

/* Any thread.  JACK's clock time (us, jack_get_time()) of a wall-clock time:
 * seconds since 1970 as a double, or an OSC (NTP) timetag.  *ahead: how far
 * ahead of now it is, in seconds (negative: past).  0 while the owner has
 * not yet published JACK's clock. */
uint64_t audio_time_of_wall(const struct audio *a, double wall, double *ahead);
uint64_t audio_time_of_timetag(const struct audio *a, lo_timetag tt, double *ahead);
/* Any thread: JACK's clock time of a CLOCK_REALTIME time stamp (a packet's
 * arrival; all zero: now), for the staleness of untimed triggers. */
uint64_t audio_time_of_arrival(const struct audio *a, struct timespec rx);

/* Any thread.  The playback latency of our outputs in frames (see
 * out_latency above); 0 while unconnected. */
uint32_t audio_output_latency(const struct audio *a);

/* Any thread.  DSP load in percent: JACK's running average (as of the last
 * audio_tick), and the worst single period since the previous call of
 * audio_take_dsp_peak(). */
float audio_dsp_load(const struct audio *a);
float audio_take_dsp_peak(struct audio *a);

#endif
