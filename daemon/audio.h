/* audio.h - the JACK client: two output ports and the process callback.
 *
 * This is the only module that talks to JACK.  The process callback fetches
 * the two port buffers and calls engine_process(); everything real-time
 * lives in engine.c.  When the server goes away JACK calls our shutdown
 * handler on one of its own threads; we only raise SIGUSR1 there and let the
 * main thread decide.
 */
#ifndef LOOPERD_AUDIO_H
#define LOOPERD_AUDIO_H

#include <jack/jack.h>
#include <lo/lo.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine.h"

#define AUDIO_MAX_LINKS 16

struct audio {
    jack_client_t *client;
    jack_port_t *out[2];
    struct engine *engine;
    bool active;
    _Atomic bool gone; /* the server went away; reconnecting */
    /* Where our outputs were connected, remembered while the server runs so
     * the connections can be restored when it comes back. */
    char links[2][AUDIO_MAX_LINKS][256];
    unsigned nlinks[2];
    double frame_ns;               /* duration of one frame, for the DSP load */
    _Atomic uint64_t xruns;        /* counted by JACK's xrun callback */
    _Atomic uint32_t dsp_peak_ppm; /* worst callback since last taken, per million */
    long locked_bytes;             /* memlock_audio_mappings() at the last start */
};

/* Connects to the running JACK server (never starts one) as client `name`.
 * Returns 0 or a negative errno with a one-line reason in err.  Counters in
 * *a survive a reconnect; call memset once before the first open. */
int audio_open(struct audio *a, const char *name, char *err, size_t errlen);
uint32_t audio_rate(const struct audio *a);
uint32_t audio_period(const struct audio *a);
const char *audio_client_name(const struct audio *a);

/* Registers out_1/out_2 and installs audio_process() as the process
 * callback, without activating. */
int audio_prepare(struct audio *a, struct engine *e, char *err, size_t errlen);
/* audio_prepare(), then activates, and unless !connect connects the outputs
 * to the first two physical playback ports (a failure to connect only warns). */
int audio_start(struct audio *a, struct engine *e, bool connect, char *err, size_t errlen);
void audio_close(struct audio *a);

/* Main thread, after the shutdown callback fired: releases the dead client
 * and marks the audio side gone until audio_open/audio_start succeed. */
void audio_lost(struct audio *a);
/* Main thread: remembers the current connections of our outputs. */
void audio_remember_links(struct audio *a);
/* Main thread: reconnects what audio_remember_links saw; returns how many
 * connections are still missing (their other end may come back later). */
unsigned audio_restore_links(struct audio *a);
/* True when JACK runs our process thread with real-time priority; *prio is
 * that priority. */
bool audio_realtime(const struct audio *a, int *prio);

/* JACK's clock time (us, jack_get_time()) of a wall-clock time: seconds
 * since 1970 as a double, or an OSC (NTP) timetag.  *ahead: how far ahead of
 * now it is, in seconds (negative: past).  0 while there is no client. */
uint64_t audio_time_of_wall(const struct audio *a, double wall, double *ahead);
uint64_t audio_time_of_timetag(const struct audio *a, lo_timetag tt, double *ahead);

/* DSP load in percent: JACK's running average, and the worst single period
 * since the previous call of audio_take_dsp_peak(). */
float audio_dsp_load(const struct audio *a);
float audio_take_dsp_peak(struct audio *a);

/* The JACK process callback (exported for the real-time safety test). */
int audio_process(jack_nframes_t nframes, void *arg);

#endif
