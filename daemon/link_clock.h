/* link_clock.h - Ableton Link as looperd's musical clock: the session peer
 * behind --link and /link, and the beat span the audio thread builds from
 * Link's session state each period (docs/timing.md, "Ableton Link").
 *
 * Owns: the one Link peer of the process (link.h), made the first time Link
 * is enabled and kept until link_clock_destroy, so that no thread ever sees
 * it go away while the daemon runs.  In a build without Link
 * (LOOPERD_HAVE_LINK unset) every function is there and Link is never
 * enabled: link_clock_enable answers -ENOTSUP.
 *
 * Threads:
 *  - start-up (main, before the audio and OSC threads run, and after they
 *    stopped): link_clock_init, link_clock_destroy;
 *  - control, one thread at a time (main at start-up, then the OSC thread):
 *    link_clock_enable, link_clock_propose_tempo;
 *  - any thread, real-time safe: link_clock_enabled, link_clock_peers,
 *    link_clock_start_stop;
 *  - the audio thread only: link_clock_span.
 *
 * Link multicasts on every network interface it finds once enabled; it is
 * enabled only by --link or /link 1.
 */
#ifndef LOOPERD_LINK_CLOCK_H
#define LOOPERD_LINK_CLOCK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "beat.h"

struct link_peer;

struct link_clock {
    /* NULL until Link is first enabled; written once, by the control
     * thread, with release order; the audio thread reads it with acquire. */
    _Atomic(struct link_peer *) peer;
    double start_bpm; /* the tempo a new peer proposes (--tempo) */
    bool start_stop;  /* --link-start-stop: the span's `playing` is Link's */
    /* Periods whose span came from Link; the audio thread writes it. */
    _Atomic uint64_t spans;
};

/* True when this looperd was built with Link (-Dlink). */
bool link_clock_available(void);

/* Start-up.  Nothing is made yet: the peer comes with the first enable. */
void link_clock_init(struct link_clock *c, double start_bpm, bool start_stop);
/* Start-up, when no other thread uses *c any more: leaves the session and
 * frees the peer. */
void link_clock_destroy(struct link_clock *c);

/* Control.  Joins (on) or leaves the session.  0, -ENOTSUP in a build
 * without Link, -ENOMEM or -EIO when the peer cannot be made. */
int link_clock_enable(struct link_clock *c, bool on);

/* Any thread, real-time safe.  Whether Link is enabled; the peers in the
 * session besides looperd (0 while disabled); whether start/stop is
 * followed (--link-start-stop). */
bool link_clock_enabled(const struct link_clock *c);
unsigned link_clock_peers(const struct link_clock *c);
bool link_clock_start_stop(const struct link_clock *c);

/* Control.  While Link is enabled, proposes `bpm` (20..999) to the session
 * from now on, through Link's app-side session state, and returns true;
 * false while Link is disabled (the caller changes its own timeline
 * instead).  Link sends the tempo as whole microseconds per beat. */
bool link_clock_propose_tempo(struct link_clock *c, double bpm);

/* Audio thread.  While Link is enabled, captures Link's session state and
 * fills *out for one period of `nframes` frames: `first_us` and `next_us`
 * are the host times (Link's clock, CLOCK_MONOTONIC_RAW microseconds) at
 * which this period's first frame and the next period's first frame leave
 * the outputs.  beat = Link's beat at first_us for `quantum` (> 0),
 * per_frame = the beats from there to next_us over nframes, tempo = the
 * session's, playing = Link's start/stop state with --link-start-stop,
 * else true.  Returns false (and leaves *out) while Link is disabled.
 * Only Link's real-time-safe calls: the audio capture and clock arithmetic. */
bool link_clock_span(struct link_clock *c, int64_t first_us, int64_t next_us, uint32_t nframes,
                     double quantum, struct beat_span *out);

/* Any thread: Link's clock now (CLOCK_MONOTONIC_RAW, microseconds). */
int64_t link_clock_now_us(void);

#endif
