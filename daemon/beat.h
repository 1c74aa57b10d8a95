/* beat.h - musical time as one period sees it: the beat at its first
 * frame and how fast the beat moves through it.
 *
 * Everything musical the engine does (quantized starts and stops, loops
 * locked to N beats, rates fitted to the tempo, /beat) is computed from a
 * struct beat_span, one per period, whoever keeps the timeline: the
 * engine's own (struct beat_timeline: --tempo, /tempo, --quantum) or an
 * Ableton Link session (audio.c builds the span from Link's session state
 * on the audio thread).  A span is linear inside its period: a tempo change
 * takes effect at a period boundary, keeping the beat continuous.
 *
 * The grid (docs/timing.md): bar lines are the beats that are whole
 * multiples of the quantum; beat b is a launch point for quant q > 0 when
 * b - bar is a whole multiple of q for the bar line `bar` at or before b.
 * So a q that does not divide the quantum restarts at every bar line (q 3
 * in a 4-beat bar: 0, 3, 4, 7, 8, ...), and a q larger than the quantum
 * counts whole multiples of q from beat 0 instead (q 8 in a 4-beat bar:
 * 0, 8, 16, ...; q 6: 0, 6, 12, ...), since a bar line cannot hold it.
 *
 * Plain data and pure functions; no thread of its own, nothing allocated.
 */
#ifndef LOOPERD_BEAT_H
#define LOOPERD_BEAT_H

#include <stdbool.h>
#include <stdint.h>

#define BEAT_TEMPO_MIN 20.0
#define BEAT_TEMPO_MAX 999.0
#define BEAT_DEFAULT_TEMPO 120.0
#define BEAT_DEFAULT_QUANTUM 4.0
/* The largest quantum and quant accepted (beats): far beyond any music,
 * small enough that beats stay exact in a double for years. */
#define BEAT_QUANTUM_MAX 1024.0

struct beat_span {
    double beat;      /* beat at the period's first frame, as it leaves the outputs */
    double per_frame; /* beats per frame in this period, > 0 */
    double tempo;     /* beats per minute */
    double quantum;   /* beats per bar, > 0 */
    bool playing;     /* false: quantized starts wait (Link's start/stop) */
    /* How far after the period's start (on JACK's clock, us) `beat` holds
     * for a listener: the output latency with Link, whose beat is the
     * session's at the moment the frame is heard; 0 for the own timeline. */
    double heard_after_us;
};

/* The engine's own timeline: a tempo and a quantum, anchored so that the
 * beat of any frame is a pure function of JACK's frame counter:
 *     beat(f) = anchor_beat + (f - anchor_frame) * tempo / (60 * rate)
 * with anchor (0, 0) until the first tempo change, and the anchor moved to
 * the first frame of the period a change applies in (its beat kept).  So
 * until then beat(f) = f * tempo / (60 * rate) exactly, whatever periods
 * were skipped.  Audio thread (engine_time.c, engine.c). */
struct beat_timeline {
    double tempo, quantum;
    uint32_t rate;
    uint64_t anchor_frame;
    double anchor_beat;
};

/* True for a tempo in BEAT_TEMPO_MIN..BEAT_TEMPO_MAX and a quantum in
 * (0, BEAT_QUANTUM_MAX]. */
bool beat_tempo_valid(double bpm);
bool beat_quantum_valid(double quantum);

/* A timeline at `tempo` and `quantum` (both valid), `rate` frames a second. */
void beat_timeline_init(struct beat_timeline *t, double tempo, double quantum, uint32_t rate);

/* The beat of frame `frame` (JACK's frame counter, unwrapped to 64 bits). */
double beat_timeline_beat(const struct beat_timeline *t, uint64_t frame);

/* The span of the period whose first frame is `frame`. */
struct beat_span beat_timeline_span(const struct beat_timeline *t, uint64_t frame);

/* The tempo from the period whose first frame is `frame` on, the beat at
 * that frame kept. */
void beat_timeline_set_tempo(struct beat_timeline *t, double tempo, uint64_t frame);
void beat_timeline_set_quantum(struct beat_timeline *t, double quantum);

/* JACK's frame counter went back (a new server counts from 0): frame
 * `now` gets the beat frame `expected` would have had, the tempo kept. */
void beat_timeline_rebase(struct beat_timeline *t, uint64_t expected, uint64_t now);

/* The first launch point for quant q (> 0) in a bar of `quantum` beats
 * that is strictly after beat `after` (see the grid above). */
double beat_next_point(double after, double q, double quantum);

/* The first launch point for q whose frame is at or after the span's first
 * frame: the first one strictly after the beat of the frame before it. */
double beat_first_unrendered(const struct beat_span *s, double q);

/* The frame offset from the span's first frame of beat b's frame (the
 * first frame at or after its instant): ceil((b - beat) / per_frame), with
 * a tolerance of a millionth of a frame for rounding.  May be negative or
 * beyond the period; clamped to +-2^62. */
int64_t beat_frame_offset(const struct beat_span *s, double b);

#endif
