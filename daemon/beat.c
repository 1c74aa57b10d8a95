/* beat.c - see beat.h.  docs/timing.md ("Musical time") says the same. */
#include "beat.h"

#include <math.h>

bool beat_tempo_valid(double bpm)
{
    return isfinite(bpm) && bpm >= BEAT_TEMPO_MIN && bpm <= BEAT_TEMPO_MAX;
}

bool beat_quantum_valid(double quantum)
{
    return isfinite(quantum) && quantum > 0 && quantum <= BEAT_QUANTUM_MAX;
}

void beat_timeline_init(struct beat_timeline *t, double tempo, double quantum, uint32_t rate)
{
    *t = (struct beat_timeline){.tempo = tempo, .quantum = quantum, .rate = rate ? rate : 1};
}

/* Beats per frame at tempo `tempo`. */
static double per_frame(const struct beat_timeline *t)
{
    return t->tempo / (60.0 * t->rate);
}

double beat_timeline_beat(const struct beat_timeline *t, uint64_t frame)
{
    /* Signed: a frame before the anchor (never, on JACK's counter) still
     * gets its beat on the same line. */
    double d = frame >= t->anchor_frame ? (double)(frame - t->anchor_frame)
                                        : -(double)(t->anchor_frame - frame);
    /* (d * tempo) / (60 * rate): one rounding fewer than d * per_frame, so
     * that the first anchor's beats are exact where the test computes them
     * the same way. */
    return t->anchor_beat + d * t->tempo / (60.0 * t->rate);
}

struct beat_span beat_timeline_span(const struct beat_timeline *t, uint64_t frame)
{
    return (struct beat_span){.beat = beat_timeline_beat(t, frame),
                              .per_frame = per_frame(t),
                              .tempo = t->tempo,
                              .quantum = t->quantum,
                              .playing = true};
}

void beat_timeline_set_tempo(struct beat_timeline *t, double tempo, uint64_t frame)
{
    if (tempo == t->tempo)
        return;
    t->anchor_beat = beat_timeline_beat(t, frame);
    t->anchor_frame = frame;
    t->tempo = tempo;
}

void beat_timeline_set_quantum(struct beat_timeline *t, double quantum)
{
    t->quantum = quantum;
}

void beat_timeline_rebase(struct beat_timeline *t, uint64_t expected, uint64_t now)
{
    t->anchor_beat = beat_timeline_beat(t, expected);
    t->anchor_frame = now;
}

/* Beats closer than this to a grid point are on it: rounding in the beat's
 * arithmetic must not push a point a whole step on. */
#define GRID_EPS 1e-9

double beat_next_point(double after, double q, double quantum)
{
    if (q > quantum) {
        /* Whole multiples of q from beat 0. */
        double k = floor(after / q + GRID_EPS) + 1;
        return k * q;
    }
    double bar = floor(after / quantum + GRID_EPS) * quantum;
    if (bar > after) /* within GRID_EPS below a bar line: that bar line is next */
        return bar;
    double k = floor((after - bar) / q + GRID_EPS) + 1;
    double p = bar + k * q;
    double next_bar = bar + quantum;
    /* A point past (or at) the next bar line: the bar line is the point. */
    return p < next_bar - GRID_EPS ? p : next_bar;
}

double beat_first_unrendered(const struct beat_span *s, double q)
{
    /* The point after the previous frame's beat, unless rounding put it on
     * that frame: beat_frame_offset() decides, as it does for starting. */
    double p = beat_next_point(s->beat - s->per_frame, q, s->quantum);
    if (beat_frame_offset(s, p) < 0)
        p = beat_next_point(p, q, s->quantum);
    return p;
}

int64_t beat_frame_offset(const struct beat_span *s, double b)
{
    double f = ceil((b - s->beat) / s->per_frame - 1e-6);
    if (!(f > -4.6e18))
        return -((int64_t)1 << 62);
    if (f > 4.6e18)
        return (int64_t)1 << 62;
    return (int64_t)f;
}
