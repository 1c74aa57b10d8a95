/* test_mixer.c - the mixer alone (daemon/mixer.c, mixer_interp.c): mixer_start() and
 * mixer_render() on buffers built here, against the formulas of
 * docs/sound.md computed independently in double precision: rate and
 * direction with the 4-point Hermite, begin/end, the neighbour rule, pan,
 * attack/release/sustain, a stop's fade over an envelope, and the
 * position's drift over 10 minutes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mixer.h"
#include "sample_alloc.h"
#include "sample_check.h"

#define RATE 48000u
#define DECLICK 240u /* the engine's 5 ms at 48 kHz */
#define MAXF 200000u /* frames of output a test renders at most */
#define TOL 1e-6

static float out_l[MAXF], out_r[MAXF];

/* A known signal: two sines and a slope, distinct on every frame and on the
 * two channels, below 1 in magnitude. */
static double signal_at(uint32_t i, uint32_t c)
{
    return 0.5 * sin(0.05 * i + 0.3 * c) + 0.3 * cos(0.17 * i + c) + (c ? -1.0 : 1.0) * 1e-5 * i;
}

static struct sample_buffer *make(uint32_t frames, uint32_t channels, uint32_t format)
{
    struct sample_buffer *b = sample_buffer_new_format(frames, channels, RATE, format);
    assert_non_null(b);
    for (uint32_t i = 0; i < frames; i++)
        for (uint32_t c = 0; c < channels; c++) {
            double x = signal_at(i, c);
            if (format == SAMPLE_S16)
                sample_buffer_s16(b)[(size_t)i * channels + c] = (int16_t)lrint(x * 32767.0);
            else
                sample_buffer_channel(b, c)[i] = (float)x;
        }
    return b;
}

static struct sample_buffer *make_flat(uint32_t frames)
{
    struct sample_buffer *b = sample_buffer_new(frames, 1, RATE);
    assert_non_null(b);
    for (uint32_t i = 0; i < frames; i++)
        sample_buffer_channel(b, 0)[i] = 1.0f;
    return b;
}

/* Renders v in periods of `period` frames into out_l/out_r from frame 0
 * until it ends or `max` frames; returns the frames rendered up to the end
 * of the period in which it ended (or max). */
static uint32_t render(struct voice *v, uint32_t period, uint32_t max, bool *ended)
{
    memset(out_l, 0, sizeof(out_l));
    memset(out_r, 0, sizeof(out_r));
    uint32_t at = 0;
    *ended = false;
    while (at + period <= max) {
        mixer_prefetch(v, period);
        bool more = mixer_render(v, out_l + at, out_r + at, period);
        at += period;
        if (!more) {
            *ended = true;
            break;
        }
    }
    return at;
}

/* ---- the reference -------------------------------------------------------- */

struct ref {
    const struct sample_buffer *b;
    int64_t b0, e0; /* the range */
    bool loop, back;
    double rate; /* |rate| */
};

static struct ref ref_of(const struct sample_buffer *b, double begin, double end, bool loop,
                         double rate)
{
    struct ref r = {.b = b, .loop = loop, .back = rate < 0, .rate = fabs(rate)};
    r.b0 = (int64_t)floor(begin * b->frames);
    r.e0 = (int64_t)floor(end * b->frames);
    return r;
}

/* The neighbour rule: a loop wraps inside its range; a one-shot reads the
 * sample's own frames inside [0, N), else 0. */
static double ref_fetch(const struct ref *r, int64_t u, uint32_t c)
{
    int64_t len = r->e0 - r->b0;
    if (r->loop) {
        u %= len;
        if (u < 0)
            u += len;
    }
    int64_t ix = r->back ? r->e0 - 1 - u : r->b0 + u;
    if (ix < 0 || ix >= (int64_t)r->b->frames)
        return 0;
    return sample_buffer_value(r->b, c, (uint32_t)ix);
}

static double hermite(double y0, double y1, double y2, double y3, double x)
{
    double c0 = y1, c1 = 0.5 * (y2 - y0), c2 = y0 - 2.5 * y1 + 2 * y2 - 0.5 * y3,
           c3 = 0.5 * (y3 - y0) + 1.5 * (y1 - y2);
    return ((c3 * x + c2) * x + c1) * x + c0;
}

/* The value of output frame j (gain 1) on channel c, and the one-shot's
 * length in frames: ceil(length / rate). */
static double ref_value(const struct ref *r, uint64_t j, uint32_t c)
{
    double u = (double)j * r->rate;
    if (r->loop)
        u = fmod(u, (double)(r->e0 - r->b0));
    int64_t k = (int64_t)floor(u);
    double x = u - (double)k;
    return hermite(ref_fetch(r, k - 1, c), ref_fetch(r, k, c), ref_fetch(r, k + 1, c),
                   ref_fetch(r, k + 2, c), x);
}

static uint32_t ref_length(const struct ref *r)
{
    return (uint32_t)ceil((double)(r->e0 - r->b0) / r->rate);
}

/* Checks out_l/out_r[0..n) against gains gl, gr times the reference (a
 * mono sample's one channel on both). */
static void check_against(const struct ref *r, uint32_t n, double gl, double gr, const char *what)
{
    uint32_t cr = r->b->channels == 2 ? 1 : 0;
    for (uint32_t j = 0; j < n; j++) {
        double wl = gl * ref_value(r, j, 0), wr = gr * ref_value(r, j, cr);
        if (fabs(out_l[j] - wl) > TOL || fabs(out_r[j] - wr) > TOL)
            fail_msg("%s: frame %u: got %.9f %.9f, want %.9f %.9f", what, j, (double)out_l[j],
                     (double)out_r[j], wl, wr);
    }
}

static void check_silent(uint32_t from, uint32_t to)
{
    for (uint32_t j = from; j < to; j++)
        if (out_l[j] != 0.0f || out_r[j] != 0.0f)
            fail_msg("frame %u sounds after the end: %g %g", j, (double)out_l[j], (double)out_r[j]);
}

static struct play_params params(double rate, double begin, double end)
{
    struct play_params p = {0};
    if (rate != 1.0) {
        p.keys |= PLAY_RATE;
        p.rate = rate;
    }
    if (begin != 0.0) {
        p.keys |= PLAY_BEGIN;
        p.begin = (float)begin;
    }
    if (end != 1.0) {
        p.keys |= PLAY_END;
        p.end = (float)end;
    }
    return p;
}

/* One one-shot at `rate` over [begin, end) of b, rendered in `period`s:
 * the reference on every frame, the exact length, silence after. */
static void one_shot(struct sample_buffer *b, double rate, double begin, double end,
                     uint32_t period)
{
    _Alignas(64) struct voice v;
    struct play_params p = params(rate, begin, end);
    mixer_start(&v, b, 0.75f, &p, false, 0, RATE, DECLICK);
    struct ref r = ref_of(b, begin, end, false, rate);
    uint32_t len = ref_length(&r);
    assert_true(len + period < MAXF);
    bool ended;
    uint32_t got = render(&v, period, MAXF, &ended);
    assert_true(ended);
    assert_true(got >= len && got < len + period); /* ended in the period of its last frame */
    char what[128];
    snprintf(what, sizeof(what), "rate %g [%g, %g) %s %uch", rate, begin, end,
             b->format == SAMPLE_S16 ? "s16" : "f32", b->channels);
    check_against(&r, len, 0.75, 0.75, what);
    check_silent(len, got);
}

/* The same as a loop for `frames` frames. */
static void looped(struct sample_buffer *b, double rate, double begin, double end, uint32_t period,
                   uint32_t frames)
{
    _Alignas(64) struct voice v;
    struct play_params p = params(rate, begin, end);
    mixer_start(&v, b, 0.5f, &p, true, 0, RATE, DECLICK);
    bool ended;
    uint32_t got = render(&v, period, frames, &ended);
    assert_false(ended);
    struct ref r = ref_of(b, begin, end, true, rate);
    char what[128];
    snprintf(what, sizeof(what), "loop rate %g [%g, %g) %s %uch", rate, begin, end,
             b->format == SAMPLE_S16 ? "s16" : "f32", b->channels);
    check_against(&r, got, 0.5, 0.5, what);
}

/* ---- tests ------------------------------------------------------------- */

static const double rates[] = {2.0, 0.5, 1.37, 16.0, 1.0 / 16, 3.0, -1.37, -0.5, -2.0, -16.0};

static void test_rates_match_the_hermite(void **state)
{
    (void)state;
    for (uint32_t fmt = 0; fmt < 2; fmt++)
        for (uint32_t ch = 1; ch <= 2; ch++) {
            struct sample_buffer *b = make(3001, ch, fmt);
            for (size_t i = 0; i < sizeof(rates) / sizeof(rates[0]); i++) {
                one_shot(b, rates[i], 0, 1, 64);
                one_shot(b, rates[i], 0, 1, 1000);
            }
            sample_buffer_free(b);
        }
}

static void test_every_fraction_is_interpolated(void **state)
{
    /* 1.37 is not a power of two (nor exact in binary): over thousands of
     * frames the fraction takes values all over [0, 1). */
    (void)state;
    struct sample_buffer *b = make(20000, 2, SAMPLE_F32);
    _Alignas(64) struct voice v;
    struct play_params p = params(1.37, 0, 1);
    mixer_start(&v, b, 1.0f, &p, false, 0, RATE, DECLICK);
    assert_int_equal(v.mode, MIX_FORWARDS);
    bool ended;
    render(&v, 128, 16000, &ended);
    struct ref r = ref_of(b, 0, 1, false, 1.37);
    check_against(&r, 14000, 1, 1, "1.37");
    int bins[16] = {0};
    for (uint32_t j = 0; j < 14000; j++) {
        double u = j * 1.37;
        bins[(int)((u - floor(u)) * 16)]++;
    }
    for (int i = 0; i < 16; i++)
        assert_true(bins[i] > 100);
    sample_buffer_free(b);
}

static void test_rate_minus_one_is_the_exact_reverse(void **state)
{
    (void)state;
    for (uint32_t fmt = 0; fmt < 2; fmt++)
        for (uint32_t ch = 1; ch <= 2; ch++) {
            struct sample_buffer *b = make(1000, ch, fmt);
            _Alignas(64) struct voice v;
            struct play_params p = params(-1, 0, 1);
            mixer_start(&v, b, 0.5f, &p, false, 3, RATE, DECLICK);
            assert_int_equal(v.mode, MIX_BACKWARDS);
            bool ended;
            uint32_t got = render(&v, 64, MAXF, &ended);
            assert_true(ended);
            assert_int_equal(got, 1024); /* 3 + 1000 frames: the 16th period */
            for (uint32_t j = 0; j < 1000; j++) {
                assert_true(out_l[3 + j] == 0.5f * sample_buffer_value(b, 0, 999 - j));
                assert_true(out_r[3 + j] == 0.5f * sample_buffer_value(b, 1, 999 - j));
            }
            assert_true(out_l[0] == 0 && out_l[2] == 0);
            check_silent(1003, got);
            sample_buffer_free(b);
        }
}

static void test_begin_end_exact_frames(void **state)
{
    (void)state;
    struct sample_buffer *b = make(999, 2, SAMPLE_S16);
    /* begin 0.3 of 999 = 299.7 -> frame 299; end 0.6 -> 599.4 -> 599. */
    for (int dir = 0; dir < 2; dir++) {
        _Alignas(64) struct voice v;
        struct play_params p = params(dir ? -1 : 1, 0.3, 0.6);
        mixer_start(&v, b, 1.0f, &p, false, 0, RATE, DECLICK);
        assert_int_equal(v.mode, dir ? MIX_BACKWARDS : MIX_PLAIN);
        bool ended;
        uint32_t got = render(&v, 64, MAXF, &ended);
        assert_true(ended);
        for (uint32_t j = 0; j < 300; j++) {
            uint32_t want = dir ? 598 - j : 299 + j;
            assert_true(out_l[j] == sample_buffer_value(b, 0, want));
            assert_true(out_r[j] == sample_buffer_value(b, 1, want));
        }
        check_silent(300, got);
    }
    /* And interpolating, forwards and backwards; and the buffer's edges. */
    for (uint32_t fmt = 0; fmt < 2; fmt++) {
        struct sample_buffer *c = make(2000, 2, fmt);
        one_shot(c, 1.37, 0.3, 0.6, 64);
        one_shot(c, -1.37, 0.3, 0.6, 64);
        one_shot(c, 0.5, 0.999, 1, 64);
        one_shot(c, -0.5, 0, 0.001, 64);
        one_shot(c, 2.5, 0.5, 0.5006, 64);
        sample_buffer_free(c);
    }
    sample_buffer_free(b);
}

static void test_loops_wrap_inside_begin_end(void **state)
{
    (void)state;
    struct sample_buffer *b = make(1000, 2, SAMPLE_F32);
    /* Rate 1: the plain path wraps from frame 499 to 250. */
    _Alignas(64) struct voice v;
    struct play_params p = params(1, 0.25, 0.5);
    mixer_start(&v, b, 1.0f, &p, true, 0, RATE, DECLICK);
    assert_int_equal(v.mode, MIX_PLAIN);
    bool ended;
    assert_int_equal(render(&v, 64, 2048, &ended), 2048);
    assert_false(ended);
    for (uint32_t j = 0; j < 2048; j++)
        assert_true(out_l[j] == sample_buffer_value(b, 0, 250 + j % 250));
    /* Backwards at rate 1: 499 down to 250, then 499 again. */
    p = params(-1, 0.25, 0.5);
    mixer_start(&v, b, 1.0f, &p, true, 0, RATE, DECLICK);
    render(&v, 64, 2048, &ended);
    for (uint32_t j = 0; j < 2048; j++)
        assert_true(out_r[j] == sample_buffer_value(b, 1, 499 - j % 250));
    /* Interpolating, with the neighbours wrapped; short loops too. */
    for (uint32_t fmt = 0; fmt < 2; fmt++)
        for (uint32_t ch = 1; ch <= 2; ch++) {
            struct sample_buffer *c = make(1000, ch, fmt);
            looped(c, 1.37, 0.25, 0.5, 64, 5000);
            looped(c, -1.37, 0.25, 0.5, 100, 5000);
            looped(c, 1.5, 0, 1, 64, 5000);
            looped(c, 16, 0.5, 0.501, 64, 640);       /* one frame */
            looped(c, 16, 0.5, 0.502, 64, 640);       /* two */
            looped(c, -3.3, 0.5, 0.503, 64, 640);     /* three */
            looped(c, 1.0 / 16, 0.5, 0.504, 64, 640); /* four */
            sample_buffer_free(c);
        }
    sample_buffer_free(b);
}

static void test_pan_gains(void **state)
{
    (void)state;
    const float pans[] = {-1, -0.5f, 0, 0.3f, 1};
    for (uint32_t ch = 1; ch <= 2; ch++) {
        struct sample_buffer *b = make(500, ch, SAMPLE_F32);
        for (size_t i = 0; i < 5; i++) {
            _Alignas(64) struct voice v;
            struct play_params p = {.keys = PLAY_PAN, .pan = pans[i]};
            mixer_start(&v, b, 0.5f, &p, false, 0, RATE, DECLICK);
            double gl = sqrt(2) * cos((pans[i] + 1) * M_PI / 4);
            double gr = sqrt(2) * sin((pans[i] + 1) * M_PI / 4);
            if (pans[i] == 0) {
                gl = gr = 1; /* exactly today's level */
                assert_int_equal(v.mode, MIX_PLAIN);
            }
            assert_true(fabs(gl * gl + gr * gr - 2) < 1e-12);
            bool ended;
            render(&v, 64, 1000, &ended);
            assert_true(ended);
            for (uint32_t j = 0; j < 500; j++) {
                /* A stereo sample: the same gains on its own channels. */
                double l = sample_buffer_value(b, 0, j), r = sample_buffer_value(b, ch - 1, j);
                assert_true(fabs(out_l[j] - 0.5 * gl * l) < TOL);
                assert_true(fabs(out_r[j] - 0.5 * gr * r) < TOL);
                if (pans[i] == 0)
                    assert_true(out_l[j] == 0.5f * (float)l && out_r[j] == 0.5f * (float)r);
            }
        }
        sample_buffer_free(b);
    }
}

static void test_gain_multiplies_level(void **state)
{
    (void)state;
    struct sample_buffer *b = make(300, 2, SAMPLE_S16);
    _Alignas(64) struct voice v;
    struct play_params p = {.keys = PLAY_GAIN, .gain = 2.5f};
    mixer_start(&v, b, 0.25f, &p, false, 0, RATE, DECLICK);
    assert_int_equal(v.mode, MIX_PLAIN);
    bool ended;
    render(&v, 64, 640, &ended);
    for (uint32_t j = 0; j < 300; j++)
        assert_true(fabs(out_l[j] - 0.625 * sample_buffer_value(b, 0, j)) < TOL);
    sample_buffer_free(b);
}

/* The envelope of docs/sound.md: attack t / A, release (E - t) / R with E
 * the last frame played, the smaller of the two, at most 1. */
static double ref_env(uint64_t t, double a, double r, double e)
{
    double x = 1;
    if (a > 0 && t / a < x)
        x = t / a;
    if (r > 0 && (e - t) / r < x)
        x = (e - t) / r;
    return x > 0 ? x : 0;
}

static void check_env(const struct sample_buffer *b, double rate, bool loop, double a, double r,
                      double e, uint32_t len, uint32_t got, float pan)
{
    struct ref rf = ref_of(b, 0, 1, loop, rate);
    double gl = pan == 0 ? 1 : sqrt(2) * cos((pan + 1) * M_PI / 4);
    double gr = pan == 0 ? 1 : sqrt(2) * sin((pan + 1) * M_PI / 4);
    for (uint32_t j = 0; j < len; j++) {
        double g = ref_env(j, a, r, e);
        double wl = gl * g * ref_value(&rf, j, 0), wr = gr * g * ref_value(&rf, j, 0);
        if (fabs(out_l[j] - wl) > TOL || fabs(out_r[j] - wr) > TOL)
            fail_msg("envelope a %g r %g e %g rate %g: frame %u: got %.9f %.9f, want %.9f %.9f", a,
                     r, e, rate, j, (double)out_l[j], (double)out_r[j], wl, wr);
    }
    check_silent(len, got);
}

static void test_attack_and_release(void **state)
{
    (void)state;
    struct sample_buffer *flat = make_flat(4000), *sig = make(4000, 1, SAMPLE_F32);
    const double rts[] = {1, 1.37, -0.5};
    for (int s = 0; s < 2; s++)
        for (size_t i = 0; i < 3; i++) {
            struct sample_buffer *b = s ? sig : flat;
            _Alignas(64) struct voice v;
            struct play_params p = params(rts[i], 0, 1);
            p.keys |= PLAY_ATTACK | PLAY_RELEASE | PLAY_PAN;
            p.attack = 0.01f;  /* 480 frames */
            p.release = 0.02f; /* 960 */
            p.pan = -0.25f;
            mixer_start(&v, b, 1.0f, &p, false, 5, RATE, DECLICK);
            assert_int_equal(mixer_release_frames(&v), 960);
            struct ref r = ref_of(b, 0, 1, false, rts[i]);
            uint32_t len = ref_length(&r);
            bool ended;
            uint32_t got = render(&v, 64, MAXF, &ended);
            assert_true(ended);
            /* Shift out the 5 frames of delay. */
            memmove(out_l, out_l + 5, (got - 5) * sizeof(float));
            memmove(out_r, out_r + 5, (got - 5) * sizeof(float));
            out_l[got - 5] = out_r[got - 5] = 0;
            check_env(b, rts[i], false, 480, 960, len - 1, len, got - 5, -0.25f);
            assert_true(out_l[0] == 0.0f);       /* frame 0 of an attack is silent */
            assert_true(out_l[len - 1] == 0.0f); /* the release ends on the last frame */
        }
    /* attack 0 is full level on the first frame, on the plain path. */
    _Alignas(64) struct voice v;
    struct play_params p = {.keys = PLAY_ATTACK, .attack = 0};
    mixer_start(&v, flat, 0.5f, &p, false, 0, RATE, DECLICK);
    assert_int_equal(v.mode, MIX_PLAIN);
    bool ended;
    render(&v, 64, 128, &ended);
    assert_true(out_l[0] == 0.5f);
    sample_buffer_free(flat);
    sample_buffer_free(sig);
}

static void test_sustain(void **state)
{
    (void)state;
    struct sample_buffer *b = make(48000, 1, SAMPLE_F32);
    for (int loop = 0; loop < 2; loop++) {
        /* sustain 0.01 s (480 frames), release 0.005 (240): the release
         * starts on frame 480 and ends on frame 720, the last one. */
        _Alignas(64) struct voice v;
        struct play_params p = {.keys = PLAY_SUSTAIN | PLAY_RELEASE | PLAY_RATE,
                                .sustain = 0.01f,
                                .release = 0.005f,
                                .rate = 1.5};
        mixer_start(&v, b, 1.0f, &p, loop, 0, RATE, DECLICK);
        bool ended;
        uint32_t got = render(&v, 64, MAXF, &ended);
        assert_true(ended);
        assert_int_equal(got, 768); /* 721 frames: the 12th period */
        check_env(b, 1.5, loop, 0, 240, 720, 721, got, 0);
        /* Without a release: the declick fade. */
        p.keys &= ~PLAY_RELEASE;
        p.sustain = 0.002f; /* 96 frames */
        mixer_start(&v, b, 1.0f, &p, loop, 0, RATE, DECLICK);
        assert_int_equal(mixer_release_frames(&v), DECLICK);
        got = render(&v, 64, MAXF, &ended);
        assert_true(ended);
        check_env(b, 1.5, loop, 0, DECLICK, 96 + DECLICK, 97 + DECLICK, got, 0);
    }
    /* A sustain longer than a one-shot: its own end, with no ramp. */
    struct sample_buffer *s = make(300, 1, SAMPLE_F32);
    _Alignas(64) struct voice v;
    struct play_params p = {.keys = PLAY_SUSTAIN, .sustain = 1};
    mixer_start(&v, s, 1.0f, &p, false, 0, RATE, DECLICK);
    bool ended;
    uint32_t got = render(&v, 64, MAXF, &ended);
    assert_true(ended);
    check_env(s, 1, false, 0, 0, 0, 300, got, 0);
    sample_buffer_free(s);
    sample_buffer_free(b);
}

static void test_loop_without_sustain_releases_only_when_stopped(void **state)
{
    (void)state;
    struct sample_buffer *b = make_flat(100);
    _Alignas(64) struct voice v;
    struct play_params p = {.keys = PLAY_RELEASE, .release = 0.01f}; /* 480 frames */
    mixer_start(&v, b, 1.0f, &p, true, 0, RATE, DECLICK);
    assert_int_equal(v.mode, MIX_PLAIN); /* a loop's release is its stop's length */
    assert_int_equal(mixer_release_frames(&v), 480);
    bool ended;
    render(&v, 64, 64000, &ended);
    assert_false(ended);
    for (uint32_t j = 0; j < 64000; j++)
        assert_true(out_l[j] == 1.0f);
    assert_true(mixer_fade_out(&v, 0, mixer_release_frames(&v)));
    render(&v, 64, 640, &ended);
    assert_true(ended);
    assert_true(out_l[0] < 1.0f && out_l[478] > 0.0f);
    check_silent(480, 640);
    sample_buffer_free(b);
}

/* A stop's fade multiplies the envelope: during an attack, it ends after
 * the fade's frames; during a release, whichever ends sooner. */
static void test_fade_out_mid_envelope(void **state)
{
    (void)state;
    struct sample_buffer *b = make_flat(48000);
    _Alignas(64) struct voice v;
    struct play_params p = {.keys = PLAY_ATTACK, .attack = 1000.0f / RATE};
    mixer_start(&v, b, 1.0f, &p, false, 0, RATE, DECLICK);
    memset(out_l, 0, sizeof(out_l));
    memset(out_r, 0, sizeof(out_r));
    assert_true(mixer_render(&v, out_l, out_r, 500));
    assert_true(mixer_fade_out(&v, 10, 300));
    assert_true(mixer_fading(&v));
    assert_false(mixer_render(&v, out_l + 500, out_r + 500, 500)); /* ends on frame 809 */
    for (uint32_t t = 0; t < 1500; t++) {
        double f = t < 510 ? 1 : 1 - (double)(t - 509) / 300;
        double want = ref_env(t, 1000, 0, 0) * (f > 0 ? f : 0);
        if (fabs(out_l[t] - want) > TOL)
            fail_msg("attack + fade: frame %u: %.9f, want %.9f", t, (double)out_l[t], want);
    }
    check_silent(810, 1500);

    /* Releasing over 2000 frames at the end of 3000 (frames 999..2999). */
    struct sample_buffer *c = make_flat(3000);
    for (int k = 0; k < 2; k++) {
        uint32_t fade = k ? 4000 : 100; /* ends before / after the release */
        p = (struct play_params){.keys = PLAY_RELEASE, .release = 2000.0f / RATE};
        mixer_start(&v, c, 1.0f, &p, false, 0, RATE, DECLICK);
        memset(out_l, 0, sizeof(out_l));
        assert_true(mixer_render(&v, out_l, out_r, 1500));
        assert_true(mixer_fade_out(&v, 0, fade));
        bool ended;
        memset(out_l + 1500, 0, 10000 * sizeof(float));
        uint32_t at = 1500;
        do {
            ended = !mixer_render(&v, out_l + at, out_r + at, 256);
            at += 256;
        } while (!ended && at < 10000);
        assert_true(ended);
        uint32_t end = k ? 3000 : 1600;
        for (uint32_t t = 0; t < at; t++) {
            double f = t < 1500 ? 1 : 1 - (double)(t - 1499) / fade;
            double want = t < end ? ref_env(t, 0, 2000, 2999) * (f > 0 ? f : 0) : 0;
            if (fabs(out_l[t] - want) > TOL)
                fail_msg("release + fade %u: frame %u: %.9f, want %.9f", fade, t, (double)out_l[t],
                         want);
        }
    }
    sample_buffer_free(c);

    /* A long fade (a 3 s release as a loop's /stop length) in periods of
     * 64 frames: the ramp from its exact count, not accumulated. */
    p = (struct play_params){.keys = PLAY_PAN | PLAY_RELEASE, .pan = 0.5f, .release = 3};
    mixer_start(&v, b, 1.0f, &p, true, 0, RATE, DECLICK);
    assert_int_equal(mixer_release_frames(&v), 3 * RATE);
    assert_true(mixer_fade_out(&v, 0, mixer_release_frames(&v)));
    bool ended;
    uint32_t got = render(&v, 64, MAXF, &ended);
    assert_true(ended);
    double gl = sqrt(2) * cos(1.5 * M_PI / 4);
    for (uint32_t t = 0; t < got; t++) {
        double f = 1 - (double)(t + 1) / (3 * RATE);
        double want = gl * (f > 0 ? f : 0);
        if (fabs(out_l[t] - want) > TOL)
            fail_msg("long fade: frame %u: %.9f, want %.9f", t, (double)out_l[t], want);
    }
    assert_true(out_l[3 * RATE - 2] > 0.0f && out_l[3 * RATE - 1] == 0.0f);
    check_silent(3 * RATE, got);
    sample_buffer_free(b);
}

/* 10 minutes at 48 kHz of a loop: the position is n x rate mod the loop's
 * length, to 0.01 frame, and the output there is the formula's. */
static void drift(double rate)
{
    struct sample_buffer *b = make(1000, 2, SAMPLE_S16);
    _Alignas(64) struct voice v;
    struct play_params p = params(rate, 0, 1);
    mixer_start(&v, b, 1.0f, &p, true, 0, RATE, DECLICK);
    const uint64_t n = 10ull * 60 * RATE;
    const uint32_t period = 4096;
    static float l[4096], r[4096];
    uint64_t done = 0;
    while (done < n) {
        uint32_t k = n - done < period ? (uint32_t)(n - done) : period;
        assert_true(mixer_render(&v, l, r, k));
        done += k;
    }
    double want = fmod((double)n * fabs(rate), 1000.0);
    double got = v.pos + (double)v.frac * 0x1p-64;
    if (fabs(got - want) > 0.01)
        fail_msg("rate %g after 10 min: position %.6f, want %.6f", rate, got, want);
    memset(out_l, 0, 64 * sizeof(float));
    memset(out_r, 0, 64 * sizeof(float));
    assert_true(mixer_render(&v, out_l, out_r, 64));
    struct ref rf = ref_of(b, 0, 1, true, rate);
    for (uint32_t j = 0; j < 64; j++) {
        double u = fmod((double)(n + j) * fabs(rate), 1000.0);
        int64_t k = (int64_t)floor(u);
        double w = hermite(ref_fetch(&rf, k - 1, 0), ref_fetch(&rf, k, 0), ref_fetch(&rf, k + 1, 0),
                           ref_fetch(&rf, k + 2, 0), u - k);
        if (fabs(out_l[j] - w) > TOL)
            fail_msg("rate %g after 10 min: frame %u: %.9f, want %.9f (u %.6f)", rate, j,
                     (double)out_l[j], w, u);
    }
    sample_buffer_free(b);
}

static void test_no_drift_over_ten_minutes(void **state)
{
    (void)state;
    drift(1.5);
    drift(1.37);
    drift(-1.37);
}

static void test_silent_voice_is_not_faded(void **state)
{
    (void)state;
    struct sample_buffer *b = make(100, 1, SAMPLE_F32);
    _Alignas(64) struct voice v;
    struct play_params p = {.keys = PLAY_RATE | PLAY_GAIN, .rate = 2, .gain = 0};
    mixer_start(&v, b, 1.0f, &p, false, 0, RATE, DECLICK);
    assert_false(mixer_fade_out(&v, 0, 100));
    assert_false(mixer_fading(&v));
    sample_buffer_free(b);
}

/* The 16-bit stereo kernels: where the CPU has AVX2, eight frames at a time
 * (mixer_interp.c, wide_s16s) give the same bits as the four-frame loop
 * that every other x86-64 runs (and that plays a chunk's last n % 8
 * frames): the same voice rendered in periods of 64 frames (all eight at a
 * time) and of 4 (all four at a time), away from the edges, where the
 * checked reader takes over, and without an envelope, whose ramps start
 * afresh at each chunk. */
static void test_wide_and_narrow_kernels_agree(void **state)
{
    (void)state;
    static float wide_l[8192], wide_r[8192];
    const double rs[] = {1.37, -1.37, 1.5, -0.71, 2.25, 1.0 / 3};
    struct sample_buffer *b = make(40000, 2, SAMPLE_S16);
    for (size_t i = 0; i < sizeof(rs) / sizeof(rs[0]); i++) {
        struct play_params p = params(rs[i], 0.25, 0.75);
        p.keys |= PLAY_PAN;
        p.pan = 0.3f;
        _Alignas(64) struct voice v;
        bool ended;
        mixer_start(&v, b, 0.7f, &p, false, 0, RATE, DECLICK);
        assert_int_equal(render(&v, 64, 8192, &ended), 8192);
        memcpy(wide_l, out_l, sizeof(wide_l));
        memcpy(wide_r, out_r, sizeof(wide_r));
        mixer_start(&v, b, 0.7f, &p, false, 0, RATE, DECLICK);
        assert_int_equal(render(&v, 4, 8192, &ended), 8192);
        assert_memory_equal(wide_l, out_l, sizeof(wide_l));
        assert_memory_equal(wide_r, out_r, sizeof(wide_r));
        struct ref r = ref_of(b, 0.25, 0.75, false, rs[i]);
        double gl = 0.7 * sqrt(2) * cos(1.3 * M_PI / 4), gr = 0.7 * sqrt(2) * sin(1.3 * M_PI / 4);
        check_against(&r, 8192, gl, gr, "wide and narrow");
    }
    sample_buffer_free(b);
}

/* mixer_set_rate() (fit): a plain voice goes on from the same frame on the
 * other path at the new speed; rate 1 leaves it plain. */
static void test_set_rate_goes_on_from_the_same_frame(void **state)
{
    (void)state;
    struct sample_buffer *b = make(4000, 1, SAMPLE_F32);
    _Alignas(64) struct voice v;
    struct play_params p = params(1.0, 0, 1);
    mixer_start(&v, b, 0.5f, &p, true, 0, RATE, DECLICK);
    v.buf = b;
    mixer_set_rate(&v, 1.0);
    assert_int_equal(v.mode, MIX_PLAIN);
    memset(out_l, 0, sizeof(out_l));
    memset(out_r, 0, sizeof(out_r));
    assert_true(mixer_render(&v, out_l, out_r, 64));
    const float *s = sample_buffer_channel(b, 0);
    for (uint32_t k = 0; k < 64; k++)
        assert_true(out_l[k] == 0.5f * s[k]);
    mixer_set_rate(&v, -0.5); /* the magnitude: it keeps its direction */
    assert_int_equal(v.mode, MIX_FORWARDS);
    assert_true(mixer_render(&v, out_l + 64, out_r + 64, 64));
    for (uint32_t k = 0; k < 64; k++) {
        double pos = 64 + 0.5 * k;
        uint32_t i = (uint32_t)floor(pos);
        double want = 0.5 * hermite(s[i - 1], s[i], s[i + 1], s[i + 2], pos - i);
        assert_true(fabs(out_l[64 + k] - want) < 1e-6);
        assert_true(fabs(out_r[64 + k] - want) < 1e-6);
    }
    sample_buffer_free(b);
}

/* ---- accelerate: the glide (mixer.h, docs/sound.md "Glide") ------------- */

/* The reference glide: SuperDirt's Line.kr(r0, r1, G) at control rate,
 * block k (frames [64k, 64k + 64) of the voice) at r0 + k ((r1 - r0) / n)
 * while k < n (so that a rate at 0 rounds as the mixer's does), r1 after, n = max(1, round(G /
 * 64)); the magnitude held in 1/16..16, the sign giving the direction (0 keeps it).  Followed as a
 * sample position x in double precision, frame by frame; the value at x is
 * the Hermite of its neighbours by the rule of ref_fetch (a loop's wrap in
 * its range, a one-shot's frames of [0, N), else 0).  Fills want[c][j]
 * (gain 1) and returns the frames played before a one-shot ends (max for
 * a loop). */
struct glide_ref {
    const struct sample_buffer *b;
    int64_t b0, e0;
    bool loop;
    double r0, r1;
    uint32_t n;
};

static double gref_fetch(const struct glide_ref *g, int64_t ix, uint32_t c)
{
    if (g->loop) {
        int64_t len = g->e0 - g->b0;
        ix = g->b0 + ((ix - g->b0) % len + len) % len;
    }
    if (ix < 0 || ix >= (int64_t)g->b->frames)
        return 0;
    return sample_buffer_value(g->b, c, (uint32_t)ix);
}

static double gref_value(const struct glide_ref *g, double x, uint32_t c)
{
    double k = floor(x);
    int64_t i = (int64_t)k;
    return hermite(gref_fetch(g, i - 1, c), gref_fetch(g, i, c), gref_fetch(g, i + 1, c),
                   gref_fetch(g, i + 2, c), x - k);
}

static double *gwant[2];

/* The reference's two channels, for one test. */
static void gwant_alloc(void)
{
    gwant[0] = calloc(MAXF, sizeof(double));
    gwant[1] = calloc(MAXF, sizeof(double));
    assert_non_null(gwant[0]);
    assert_non_null(gwant[1]);
}

static void gwant_free(void)
{
    free(gwant[0]);
    free(gwant[1]);
}

static uint32_t glide_reference(const struct glide_ref *g, uint32_t max)
{
    bool back = g->r0 < 0;
    double x = back ? (double)(g->e0 - 1) : (double)g->b0, mag = 0;
    uint32_t cr = g->b->channels == 2 ? 1 : 0;
    for (uint32_t j = 0; j < max; j++) {
        if (j % 64 == 0) {
            uint32_t k = j / 64;
            double r = k < g->n ? g->r0 + (g->r1 - g->r0) / g->n * k : g->r1;
            bool nb = r < 0 ? true : r > 0 ? false : back;
            if (nb != back && !g->loop) {
                /* Turned around past the last frame by a fraction: from it. */
                if (!back && x > (double)(g->e0 - 1))
                    x = (double)(g->e0 - 1);
                if (back && x < (double)g->b0)
                    x = (double)g->b0;
            }
            back = nb;
            mag = fmin(fmax(fabs(r), 1.0 / 16), 16.0);
        }
        if (!g->loop && (back ? x <= (double)(g->b0 - 1) : x >= (double)g->e0))
            return j;
        gwant[0][j] = gref_value(g, x, 0);
        gwant[1][j] = gref_value(g, x, cr);
        x += back ? -mag : mag;
    }
    return max;
}

static uint32_t glide_blocks(double frames)
{
    double n = floor(frames / 64 + 0.5);
    return n >= 1 ? (uint32_t)n : 0; /* 0: Line's counter 0, r1 from the start */
}

/* Checks out_l/out_r[at .. at + n) against gain g times gwant[.][0 .. n). */
static void check_glide(uint32_t at, uint32_t n, double g, const char *what)
{
    for (uint32_t j = 0; j < n; j++) {
        double wl = g * gwant[0][j], wr = g * gwant[1][j];
        if (fabs(out_l[at + j] - wl) > TOL || fabs(out_r[at + j] - wr) > TOL)
            fail_msg("%s: frame %u: got %.9f %.9f, want %.9f %.9f", what, j, (double)out_l[at + j],
                     (double)out_r[at + j], wl, wr);
    }
}

static struct play_params glide_params(double rate, double accel, double begin, double end)
{
    struct play_params p = params(rate, begin, end);
    p.keys |= PLAY_ACCELERATE;
    p.accelerate = accel;
    return p;
}

/* A gliding one-shot over its range at the average speed (the rule without
 * sustain), rendered in `period`s starting `delay` frames into the first:
 * every frame against the reference, its exact length, silence after. */
static void glide_one_shot(struct sample_buffer *b, double rate, double accel, double begin,
                           double end, uint32_t period, uint32_t delay)
{
    _Alignas(64) struct voice v;
    struct play_params p = glide_params(rate, accel, begin, end);
    mixer_start(&v, b, 0.75f, &p, false, delay, RATE, DECLICK);
    struct glide_ref g = {.b = b,
                          .b0 = (int64_t)floor(begin * b->frames),
                          .e0 = (int64_t)floor(end * b->frames),
                          .r0 = rate,
                          .r1 = rate * (1 + accel)};
    g.n = glide_blocks((double)(g.e0 - g.b0) / ((fabs(g.r0) + fabs(g.r1)) / 2));
    if (((v.mode & MIX_GLIDE) != 0) != (g.n > 0))
        fail_msg("rate %g accelerate %g [%g %g): mode %u, n %u L %d", rate, accel, begin, end,
                 v.mode, g.n, (int)(g.e0 - g.b0));
    uint32_t len = glide_reference(&g, MAXF - 2 * period - delay);
    assert_true(len < MAXF - 2 * period - delay);
    bool ended;
    uint32_t got = render(&v, period, MAXF, &ended);
    assert_true(ended);
    char what[160];
    snprintf(what, sizeof(what), "rate %g accelerate %g [%g, %g) %s %uch period %u delay %u", rate,
             accel, begin, end, b->format == SAMPLE_S16 ? "s16" : "f32", b->channels, period,
             delay);
    if (!(got >= delay + len && got < delay + len + period))
        fail_msg("%s: ended in the period up to %u, its last frame %u", what, got, delay + len);
    check_silent(0, delay);
    check_glide(delay, len, 0.75, what);
    check_silent(delay + len, got);
}

static void test_glide_one_shots_follow_the_blocks(void **state)
{
    (void)state;
    static const double cases[][4] = {
        /* rate, accelerate, begin, end */
        {1.0, 1.0, 0, 1},         /* up an octave */
        {-1.5, 0.5, 0, 1},        /* backwards, faster */
        {1.37, -0.6, 0.1, 0.8},   /* slower, a range */
        {2.0, -2.0, 0, 1},        /* through 0: turns around, ends at its start */
        {-1.0, -3.0, 0.25, 0.75}, /* the same backwards, in a range */
        {8.0, 3.0, 0, 1},         /* to 32: held at 16 */
        {0.5, -1.0, 0, 0.2},      /* to 0: held at 1/16 */
        {1.0, 1.0, 0, 0.005},     /* G 10 frames: r1 from the first frame */
        {1.0, -3.0, 0.5, 0.505},  /* the same, turned around at once */
    };
    gwant_alloc();
    static const uint32_t periods[][2] = {{64, 0}, {100, 0}, {100, 30}, {37, 5}, {1000, 999}};
    for (uint32_t fmt = 0; fmt < 2; fmt++)
        for (uint32_t ch = 1; ch <= 2; ch++) {
            struct sample_buffer *b = make(3001, ch, fmt);
            for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
                for (size_t q = 0; q < sizeof(periods) / sizeof(periods[0]); q++)
                    glide_one_shot(b, cases[i][0], cases[i][1], cases[i][2], cases[i][3],
                                   periods[q][0], periods[q][1]);
            sample_buffer_free(b);
        }
    gwant_free();
}

/* A loop glides over one pass at its average speed, then goes on at the
 * last rate (the glide over: an ordinary voice); with `sustain` the glide
 * lasts the sustain, and the control side's `glide` overrides both. */
static void test_glide_loops_and_lengths(void **state)
{
    (void)state;
    gwant_alloc();
    struct sample_buffer *b = make(3001, 2, SAMPLE_S16);
    struct glide_ref g = {.b = b, .b0 = 300, .e0 = 2700, .loop = true, .r0 = -1.37, .r1 = 2.74};
    /* One pass at (1.37 + 2.74) / 2: 2400 / 2.055 frames. */
    g.n = glide_blocks(2400 / 2.055);
    uint32_t frames = 30000;
    glide_reference(&g, frames);
    for (uint32_t period = 64; period <= 100; period += 36) {
        _Alignas(64) struct voice v;
        struct play_params p = glide_params(-1.37, -3.0, 0.1, 0.9);
        mixer_start(&v, b, 0.5f, &p, true, 0, RATE, DECLICK);
        bool ended;
        uint32_t got = render(&v, period, frames, &ended);
        assert_false(ended);
        assert_false(v.mode & MIX_GLIDE); /* over: the last rate for good */
        assert_int_equal(v.mode, MIX_FORWARDS);
        check_glide(0, got, 0.5, period == 64 ? "loop, period 64" : "loop, period 100");
    }
    /* With sustain 0.1 s: the glide lasts 4800 frames (75 blocks); the
     * frames before the release checked. */
    struct glide_ref s = {.b = b, .b0 = 0, .e0 = 3001, .loop = true, .r0 = 0.8, .r1 = 2.0, .n = 75};
    glide_reference(&s, 4800);
    _Alignas(64) struct voice v;
    struct play_params p = glide_params(0.8, 1.5, 0, 1);
    p.keys |= PLAY_SUSTAIN;
    p.sustain = 0.1f;
    mixer_start(&v, b, 1.0f, &p, true, 0, RATE, DECLICK);
    assert_int_equal(v.glide_n, 75);
    bool ended;
    render(&v, 100, 4800, &ended);
    check_glide(0, 4800, 1.0, "sustain");
    /* `glide` (the control side's length, /dirt/play) wins: 0.05 s, 38 blocks. */
    p.glide = 0.05f;
    mixer_start(&v, b, 1.0f, &p, true, 0, RATE, DECLICK);
    assert_int_equal(v.glide_n, 38);
    s.n = 38;
    glide_reference(&s, 4800);
    render(&v, 100, 4800, &ended);
    check_glide(0, 4800, 1.0, "glide");
    sample_buffer_free(b);
    gwant_free();
}

/* A voice that does not glide is the voice it was: `accelerate 0` is no
 * key at all, bit for bit and on the same path; a fitted loop and
 * mixer_set_rate() end a glide. */
static void test_no_glide_is_unchanged(void **state)
{
    (void)state;
    static float ref_l[MAXF], ref_r[MAXF];
    struct sample_buffer *b = make(5000, 2, SAMPLE_S16);
    struct play_params cases[] = {params(1.0, 0, 1), params(1.37, 0.1, 0.9), params(-2.0, 0, 1)};
    cases[1].keys |= PLAY_PAN;
    cases[1].pan = 0.3f;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        for (int loop = 0; loop < 2; loop++) {
            _Alignas(64) struct voice v, w;
            bool ended;
            mixer_start(&v, b, 0.7f, &cases[i], loop, 17, RATE, DECLICK);
            uint32_t got = render(&v, 100, 12000, &ended);
            memcpy(ref_l, out_l, sizeof(out_l));
            memcpy(ref_r, out_r, sizeof(out_r));
            struct play_params q = cases[i];
            q.keys |= PLAY_ACCELERATE;
            q.accelerate = 0;
            mixer_start(&w, b, 0.7f, &q, loop, 17, RATE, DECLICK);
            assert_false(w.mode & MIX_GLIDE);
            assert_int_equal(w.mode, i == 0 ? MIX_PLAIN : i == 1 ? MIX_FORWARDS : MIX_BACKWARDS);
            assert_int_equal(render(&w, 100, 12000, &ended), got);
            assert_memory_equal(out_l, ref_l, sizeof(out_l));
            assert_memory_equal(out_r, ref_r, sizeof(out_r));
        }
    /* fit with beats: the tempo's rate, no glide. */
    _Alignas(64) struct voice v;
    struct play_params p = glide_params(1.0, 1.0, 0, 1);
    p.keys |= PLAY_FIT | PLAY_BEATS;
    p.fit = 1;
    p.beats = 4;
    mixer_start(&v, b, 1.0f, &p, false, 0, RATE, DECLICK);
    assert_int_equal(v.mode, MIX_PLAIN);
    /* mixer_set_rate(): its rate from then on. */
    p = glide_params(1.0, 1.0, 0, 1);
    mixer_start(&v, b, 1.0f, &p, true, 0, RATE, DECLICK);
    v.buf = b;
    assert_int_equal(v.mode, MIX_FORWARDS | MIX_GLIDE);
    bool ended;
    render(&v, 100, 300, &ended);
    mixer_set_rate(&v, 1.5);
    assert_int_equal(v.mode, MIX_FORWARDS);
    assert_int_equal(v.step_int, 1);
    assert_true(v.step_frac == 0x8000000000000000ull);
    sample_buffer_free(b);
}

/* A gliding one-shot's release: with sustain S it ends on S + R as any
 * voice's; without, on its glide's last frame, round(G) - 1. */
static void test_glide_release(void **state)
{
    (void)state;
    struct sample_buffer *b = make_flat(48000);
    for (int sus = 0; sus < 2; sus++) {
        _Alignas(64) struct voice v;
        struct play_params p = glide_params(1.0, 1.0, 0, 0.05); /* L 2400, G 1600 */
        p.keys |= PLAY_RELEASE;
        p.release = 0.002f; /* 96 frames */
        if (sus) {
            p.keys |= PLAY_SUSTAIN;
            p.sustain = 0.01f; /* 480 frames */
        }
        uint32_t e = sus ? 480 + 96 : 1599;
        mixer_start(&v, b, 1.0f, &p, false, 0, RATE, DECLICK);
        bool ended;
        uint32_t got = render(&v, 100, MAXF, &ended);
        assert_true(ended);
        assert_true(got > e && got <= e + 100);
        for (uint32_t t = 0; t <= e; t++) {
            double want = fmin(1.0, (double)(e - t) / 96);
            if (fabs(out_l[t] - want) > TOL)
                fail_msg("sustain %d: frame %u: got %.9f, want %.9f", sus, t, (double)out_l[t],
                         want);
        }
        check_silent(e + 1, got);
    }
    sample_buffer_free(b);
}

/* A stop inside a period of a gliding voice: full level up to its frame,
 * then the other path's fade, 1 - (i + 1) / F, over the glide's frames. */
static void test_glide_fade_out(void **state)
{
    (void)state;
    gwant_alloc();
    struct sample_buffer *b = make(3001, 2, SAMPLE_F32);
    struct glide_ref g = {.b = b, .b0 = 0, .e0 = 3001, .r0 = 1.0, .r1 = 2.5};
    g.n = glide_blocks(3001 / 1.75);
    glide_reference(&g, 2000);
    _Alignas(64) struct voice v;
    struct play_params p = glide_params(1.0, 1.5, 0, 1);
    mixer_start(&v, b, 1.0f, &p, false, 0, RATE, DECLICK);
    memset(out_l, 0, sizeof(out_l));
    memset(out_r, 0, sizeof(out_r));
    const uint32_t period = 100, at = 537, f = 240; /* the fade: frames 537 .. 776 */
    uint32_t t = 0;
    bool more = true;
    for (; more && t < 2000; t += period) {
        if (t + period > at && t <= at)
            assert_true(mixer_fade_out(&v, at - t, f));
        more = mixer_render(&v, out_l + t, out_r + t, period);
    }
    assert_false(more);
    assert_int_equal(t, 800); /* ended in the period of its last frame, 776 */
    for (uint32_t j = 0; j < t; j++) {
        double e = j < at ? 1.0 : j < at + f ? 1.0 - (double)(j - at + 1) / f : 0.0;
        double wl = e * gwant[0][j], wr = e * gwant[1][j];
        if (fabs(out_l[j] - wl) > TOL || fabs(out_r[j] - wr) > TOL)
            fail_msg("frame %u: got %.9f %.9f, want %.9f %.9f", j, (double)out_l[j],
                     (double)out_r[j], wl, wr);
    }
    sample_buffer_free(b);
    gwant_free();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rates_match_the_hermite),
        cmocka_unit_test(test_every_fraction_is_interpolated),
        cmocka_unit_test(test_rate_minus_one_is_the_exact_reverse),
        cmocka_unit_test(test_begin_end_exact_frames),
        cmocka_unit_test(test_loops_wrap_inside_begin_end),
        cmocka_unit_test(test_pan_gains),
        cmocka_unit_test(test_gain_multiplies_level),
        cmocka_unit_test(test_attack_and_release),
        cmocka_unit_test(test_sustain),
        cmocka_unit_test(test_loop_without_sustain_releases_only_when_stopped),
        cmocka_unit_test(test_fade_out_mid_envelope),
        cmocka_unit_test(test_no_drift_over_ten_minutes),
        cmocka_unit_test(test_silent_voice_is_not_faded),
        cmocka_unit_test(test_set_rate_goes_on_from_the_same_frame),
        cmocka_unit_test(test_glide_one_shots_follow_the_blocks),
        cmocka_unit_test(test_glide_loops_and_lengths),
        cmocka_unit_test(test_no_glide_is_unchanged),
        cmocka_unit_test(test_glide_release),
        cmocka_unit_test(test_glide_fade_out),
        cmocka_unit_test(test_wide_and_narrow_kernels_agree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
