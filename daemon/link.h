/* link.h - Ableton Link for looperd's C code: one session peer, its clock,
 * and its session state (tempo, beat timeline, start/stop) as plain values.
 *
 * Owns: one ableton::Link object and the audio thread's captured session
 * state.  Implemented in link.cpp, the project's only C++; built only with
 * -Dlink (LOOPERD_HAVE_LINK).  No function lets a C++ exception out.
 *
 * Threads:
 *  - "start-up": the thread that creates and destroys the object, while no
 *    other thread uses it (link_create, link_destroy).
 *  - "control": any thread but the audio thread; these calls may block
 *    briefly or allocate (link_enable, link_set_start_stop_sync, link_app_*).
 *  - "audio": ONE thread (the JACK process callback); these calls use only
 *    Link's real-time-safe operations - captureAudioSessionState,
 *    commitAudioSessionState, SessionState arithmetic and clock reads - and
 *    never allocate, lock or wait (link_audio_*, link_clock_micros,
 *    link_is_enabled, link_peers).
 * Link's own advice: change the session state from the audio thread while
 * it runs; the app-side commits are for when it does not.
 *
 * Times are microseconds of Link's clock (link_clock_micros); beats are
 * doubles.  Only the phase within a quantum is shared by the peers, not the
 * beat count.
 */
#ifndef LOOPERD_LINK_H
#define LOOPERD_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct link_peer;

/* A session state read at one host time for one quantum. */
struct link_snapshot {
    double tempo;           /* beats per minute */
    double beat;            /* beat at host_us (magnitude local to this peer) */
    double phase;           /* beat within [0, quantum) at host_us (shared) */
    int64_t host_us;        /* the time asked about */
    double quantum;         /* the quantum asked about */
    int64_t next_bar_us;    /* time of the first bar line (phase 0) after host_us */
    bool playing;           /* start/stop state */
    int64_t play_change_us; /* time the start/stop state took or takes effect */
};

/* Link's clock now: CLOCK_MONOTONIC_RAW in microseconds on Linux.  Any
 * thread; real-time safe. */
int64_t link_clock_micros(void);

/* Start-up.  A disabled peer with the given tempo (BPM, Link clamps it to
 * 20..999).  Allocates, starts Link's network thread.  0 or -ENOMEM/-EINVAL. */
int link_create(double bpm, struct link_peer **out);
/* Start-up.  Leaves the session, joins Link's threads, frees.  NULL is ok. */
void link_destroy(struct link_peer *l);

/* Control.  Join (true) or leave (false) the session; network I/O starts or
 * stops on Link's thread.  0 or -ENOMEM. */
int link_enable(struct link_peer *l, bool on);
/* Any thread, real-time safe. */
bool link_is_enabled(const struct link_peer *l);
/* Any thread, real-time safe.  Peers in the session besides this one. */
size_t link_peers(const struct link_peer *l);
/* Control.  Share start/stop with the peers that also do. */
int link_set_start_stop_sync(struct link_peer *l, bool on);
/* Any thread. */
bool link_start_stop_sync(const struct link_peer *l);

/* Audio.  Capture the session state into the object (replacing the previous
 * capture) and read it at host_us for quantum (> 0) into *out. */
void link_audio_capture(struct link_peer *l, int64_t host_us, double quantum,
                        struct link_snapshot *out);
/* Audio.  Read the last capture (and the edits made to it since). */
double link_audio_beat_at(const struct link_peer *l, int64_t host_us, double quantum);
double link_audio_phase_at(const struct link_peer *l, int64_t host_us, double quantum);
int64_t link_audio_time_at_beat(const struct link_peer *l, double beat, double quantum);
/* Audio.  Edit the last capture; nothing reaches the session before
 * link_audio_commit.  With peers, request_beat_at maps the beat to the next
 * time after host_us with the same phase (Link's quantized launch). */
void link_audio_set_tempo(struct link_peer *l, double bpm, int64_t host_us);
void link_audio_request_beat_at(struct link_peer *l, double beat, int64_t host_us, double quantum);
void link_audio_set_playing(struct link_peer *l, bool playing, int64_t host_us);
/* Audio.  Commit the edited capture to the session. */
void link_audio_commit(struct link_peer *l);

/* Control.  The same reads and edits through Link's app-side session state,
 * each a capture (and commit) of its own; safe from several threads. */
int link_app_capture(const struct link_peer *l, int64_t host_us, double quantum,
                     struct link_snapshot *out);
int64_t link_app_time_at_beat(const struct link_peer *l, double beat, double quantum);
int link_app_set_tempo(struct link_peer *l, double bpm, int64_t host_us);
int link_app_request_beat_at(struct link_peer *l, double beat, int64_t host_us, double quantum);
int link_app_set_playing(struct link_peer *l, bool playing, int64_t host_us);

#ifdef __cplusplus
}
#endif

#endif
