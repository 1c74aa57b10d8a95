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

struct beat_span {
    double beat;      /* beat at the period's first frame, as it leaves the outputs */
    double per_frame; /* beats per frame in this period, > 0 */
    double tempo;     /* beats per minute */
    double quantum;   /* beats per bar, > 0 */
    bool playing;     /* false: quantized starts wait (Link's start/stop) */
};

/* The engine's own timeline: a tempo and a quantum, and the beat at the
 * first frame of the next period.  Audio thread (engine.c). */
struct beat_timeline {
    double tempo, quantum;
    double next_beat;
};

#endif
