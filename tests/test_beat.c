/* test_beat.c - the engine's own timeline and the launch grid (beat.h)
 * against docs/timing.md's formulas. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>

#include "beat.h"

#define RATE 48000

/* Until the first tempo change the beat is the frame counter's, exactly. */
static void timeline_from_frames(void **state)
{
    (void)state;
    struct beat_timeline t;
    beat_timeline_init(&t, 120, 4, RATE);
    assert_true(beat_timeline_beat(&t, 0) == 0.0);
    assert_true(beat_timeline_beat(&t, 24000) == 1.0);
    assert_true(beat_timeline_beat(&t, 96000) == 4.0);
    /* Far on (a day of frames): still the formula. */
    uint64_t f = (uint64_t)RATE * 86400 + 12345;
    assert_true(beat_timeline_beat(&t, f) == (double)f * 120 / (60.0 * RATE));
    struct beat_span s = beat_timeline_span(&t, 24000);
    assert_true(s.beat == 1.0);
    assert_true(fabs(s.per_frame - 120 / (60.0 * RATE)) < 1e-18);
    assert_true(s.tempo == 120 && s.quantum == 4 && s.playing);
}

/* A tempo change keeps the beat at its frame and changes the slope after. */
static void tempo_change_continuous(void **state)
{
    (void)state;
    struct beat_timeline t;
    beat_timeline_init(&t, 120, 4, RATE);
    uint64_t f0 = 30000; /* beat 1.25 */
    double before = beat_timeline_beat(&t, f0);
    beat_timeline_set_tempo(&t, 60, f0);
    assert_true(beat_timeline_beat(&t, f0) == before);
    assert_true(fabs(beat_timeline_beat(&t, f0 + 48000) - (before + 1.0)) < 1e-12);
    /* Back up: again continuous. */
    beat_timeline_set_tempo(&t, 180, f0 + 48000);
    assert_true(fabs(beat_timeline_beat(&t, f0 + 48000) - (before + 1.0)) < 1e-12);
    assert_true(fabs(beat_timeline_beat(&t, f0 + 64000) - (before + 2.0)) < 1e-12);
    beat_timeline_set_quantum(&t, 3);
    assert_true(beat_timeline_span(&t, 0).quantum == 3);
    /* A new server's counter from 0: the beat goes on from where it was. */
    double at = beat_timeline_beat(&t, 500000);
    beat_timeline_rebase(&t, 500000, 0);
    assert_true(fabs(beat_timeline_beat(&t, 0) - at) < 1e-12);
    assert_true(fabs(beat_timeline_beat(&t, 16000) - (at + 1.0)) < 1e-12);
}

static void valid_values(void **state)
{
    (void)state;
    assert_true(beat_tempo_valid(20) && beat_tempo_valid(999) && beat_tempo_valid(133.5));
    assert_false(beat_tempo_valid(19.99) || beat_tempo_valid(999.01) || beat_tempo_valid(NAN) ||
                 beat_tempo_valid(INFINITY));
    assert_true(beat_quantum_valid(0.5) && beat_quantum_valid(4) && beat_quantum_valid(7));
    assert_false(beat_quantum_valid(0) || beat_quantum_valid(-4) || beat_quantum_valid(NAN) ||
                 beat_quantum_valid(BEAT_QUANTUM_MAX * 2));
}

/* The grid: multiples of q from the bar line. */
static void grid_points(void **state)
{
    (void)state;
    assert_true(beat_next_point(0.0, 4, 4) == 4.0);
    assert_true(beat_next_point(-0.1, 4, 4) == 0.0);
    assert_true(beat_next_point(3.99, 4, 4) == 4.0);
    assert_true(beat_next_point(4.0, 4, 4) == 8.0);
    assert_true(beat_next_point(5.2, 1, 4) == 6.0);
    assert_true(beat_next_point(5.2, 0.5, 4) == 5.5);
    assert_true(beat_next_point(5.5, 0.5, 4) == 6.0);
    /* q not dividing the quantum: restarts at each bar line. */
    assert_true(beat_next_point(0.5, 3, 4) == 3.0);
    assert_true(beat_next_point(3.0, 3, 4) == 4.0);
    assert_true(beat_next_point(4.0, 3, 4) == 7.0);
    assert_true(beat_next_point(7.5, 3, 4) == 8.0);
    assert_true(beat_next_point(0.1, 1.5, 4) == 1.5);
    assert_true(beat_next_point(3.1, 1.5, 4) == 4.0);
    /* q larger than the quantum: whole multiples of q from beat 0. */
    assert_true(beat_next_point(1.0, 8, 4) == 8.0);
    assert_true(beat_next_point(8.0, 8, 4) == 16.0);
    assert_true(beat_next_point(7.0, 6, 4) == 12.0);
    /* A fractional quantum. */
    assert_true(beat_next_point(0.1, 1, 2.5) == 1.0);
    assert_true(beat_next_point(2.1, 1, 2.5) == 2.5);
    assert_true(beat_next_point(2.5, 1, 2.5) == 3.5);
    /* Rounding just below a point does not skip it. */
    assert_true(beat_next_point(4.0 - 1e-12, 4, 4) == 4.0);
}

/* A launch point's frame: the first frame at or after its instant, and the
 * first point whose frame is not before the span's first frame. */
static void point_frames(void **state)
{
    (void)state;
    struct beat_timeline t;
    beat_timeline_init(&t, 120, 4, RATE);
    /* Period starting on bar 1 (frame 96000): its own first frame counts. */
    struct beat_span s = beat_timeline_span(&t, 96000);
    assert_true(beat_first_unrendered(&s, 4) == 4.0);
    assert_int_equal(beat_frame_offset(&s, 4.0), 0);
    /* The next frame: bar 1 is rendered, bar 2 is next. */
    s = beat_timeline_span(&t, 96001);
    assert_true(beat_first_unrendered(&s, 4) == 8.0);
    assert_int_equal(beat_frame_offset(&s, 8.0), 96000 - 1);
    /* A point between two frames lands on the later one. */
    beat_timeline_init(&t, 133, 4, RATE);
    s = beat_timeline_span(&t, 0);
    double f = 1.0 / (133 / (60.0 * RATE)); /* 21654.1353... frames a beat */
    assert_int_equal(beat_frame_offset(&s, 1.0), (int64_t)ceil(f));
    assert_int_equal(beat_frame_offset(&s, 3.0), (int64_t)ceil(3 * f));
    assert_true(beat_frame_offset(&s, -1.0) < 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(timeline_from_frames), cmocka_unit_test(tempo_change_continuous),
        cmocka_unit_test(valid_values),         cmocka_unit_test(grid_points),
        cmocka_unit_test(point_frames),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
