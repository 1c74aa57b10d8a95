/* mixer.c - the mixer's kernels and mixer_render(): one voice's period,
 * with its start delay, a fade requested inside the period, the ramp of a
 * fade and the wrap of a loop.
 */
#include "mixer.h"

#include <math.h>

/* The inner loops.  restrict lets the compiler vectorise: the outputs never
 * alias the (read-only) sample data; a and b may alias each other (mono),
 * which restrict allows because neither is written. */
static void mix_const(float *restrict l, float *restrict r, const float *restrict a,
                      const float *restrict b, float g, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        l[i] += g * a[i];
        r[i] += g * b[i];
    }
}

static void mix_ramp(float *restrict l, float *restrict r, const float *restrict a,
                     const float *restrict b, float g, float step, uint32_t n)
{
    /* Written so that it vectorises without -ffast-math: the frame index is
     * converted from a signed int (cvtdq2ps; n < 2^31 always) and the clamp
     * is a plain compare-select (maxps), which fmaxf's NaN rules forbid. */
    for (uint32_t i = 0; i < n; i++) {
        float gi = g - step * (float)(int32_t)(i + 1);
        gi = gi > 0.0f ? gi : 0.0f;
        l[i] += gi * a[i];
        r[i] += gi * b[i];
    }
}

/* 16-bit sources (SAMPLE_S16, sample.h).  A stored integer x stands for
 * x * 2^-15, exactly the float the F32 buffer of the same file holds (a
 * 16-bit integer times a power of two), and these loops play bit for bit
 * what the two above play from that float buffer:
 *  - at a constant gain g, (g * 2^-15) * x, one multiply per sample after
 *    the conversion, as for floats.  Whenever g * 2^-15 is exact (g == 0 or
 *    g >= 2^-111, where it is a normal float), this product and the float
 *    loop's g * (x * 2^-15) are the same real number, rounded by the same
 *    instruction in the same FTZ/DAZ mode, so they are the same float.
 *    mix_buf() checks that once per call and sends a smaller gain (below
 *    -660 dB) to the ramp loop with a zero step instead, which is exact for
 *    any gain;
 *  - in a ramp, gi * (x * 2^-15): the float loop's own expression, with the
 *    stored float computed on the way (one more multiply; fades are rare).
 * `nch` is 1 (mono: its one channel to both outputs) or 2 (interleaved
 * L R L R); each wrapper passes it as a constant, so all four loops
 * vectorise with SSE2: punpcklwd/pcmpgtw to sign-extend (and, for stereo,
 * to split the channels), cvtdq2ps to convert, then mulps/addps. */
#define S16_SCALE 0x1p-15f

static inline __attribute__((always_inline)) void mix_const_s16(float *restrict l,
                                                                float *restrict r,
                                                                const int16_t *restrict s, float gs,
                                                                uint32_t n, uint32_t nch)
{
    for (uint32_t i = 0; i < n; i++) {
        l[i] += gs * (float)s[(size_t)i * nch];
        r[i] += gs * (float)s[(size_t)i * nch + nch - 1];
    }
}

static inline __attribute__((always_inline)) void mix_ramp_s16(float *restrict l, float *restrict r,
                                                               const int16_t *restrict s, float g,
                                                               float step, uint32_t n, uint32_t nch)
{
    for (uint32_t i = 0; i < n; i++) {
        float gi = g - step * (float)(int32_t)(i + 1);
        gi = gi > 0.0f ? gi : 0.0f;
        l[i] += gi * ((float)s[(size_t)i * nch] * S16_SCALE);
        r[i] += gi * ((float)s[(size_t)i * nch + nch - 1] * S16_SCALE);
    }
}

static void mix_const_s16_mono(float *restrict l, float *restrict r, const int16_t *restrict s,
                               float gs, uint32_t n)
{
    mix_const_s16(l, r, s, gs, n, 1);
}

static void mix_const_s16_stereo(float *restrict l, float *restrict r, const int16_t *restrict s,
                                 float gs, uint32_t n)
{
    mix_const_s16(l, r, s, gs, n, 2);
}

static void mix_ramp_s16_mono(float *restrict l, float *restrict r, const int16_t *restrict s,
                              float g, float step, uint32_t n)
{
    mix_ramp_s16(l, r, s, g, step, n, 1);
}

static void mix_ramp_s16_stereo(float *restrict l, float *restrict r, const int16_t *restrict s,
                                float g, float step, uint32_t n)
{
    mix_ramp_s16(l, r, s, g, step, n, 2);
}

/* Mixes frames [pos, pos + n) of voice v's samples into l[0..n) and
 * r[0..n), with the gain falling by `step` per frame from g (mix_ramp).
 * The branch on the format is taken once per call: a voice makes one call
 * per period, two or three when it wraps or starts a fade. */
static void mix_buf_ramp(const struct voice *v, uint32_t pos, float *l, float *r, float g,
                         float step, uint32_t n)
{
    if (v->format == SAMPLE_S16) {
        const int16_t *s = (const int16_t *)v->src + (size_t)pos * v->channels;
        if (v->channels == 2)
            mix_ramp_s16_stereo(l, r, s, g, step, n);
        else
            mix_ramp_s16_mono(l, r, s, g, step, n);
    } else {
        mix_ramp(l, r, (const float *)v->src + pos, v->src1 + pos, g, step, n);
    }
}

/* The same at a constant gain g (mix_const). */
static void mix_buf(const struct voice *v, uint32_t pos, float *l, float *r, float g, uint32_t n)
{
    if (v->format == SAMPLE_S16) {
        const int16_t *s = (const int16_t *)v->src + (size_t)pos * v->channels;
        float gs = g * S16_SCALE;
        if (gs * (1.0f / S16_SCALE) != g) /* g < 2^-111: not exact (see above) */
            mix_buf_ramp(v, pos, l, r, g, 0.0f, n);
        else if (v->channels == 2)
            mix_const_s16_stereo(l, r, s, gs, n);
        else
            mix_const_s16_mono(l, r, s, gs, n);
    } else {
        mix_const(l, r, (const float *)v->src + pos, v->src1 + pos, g, n);
    }
}

bool mixer_render(struct voice *v, float *out_l, float *out_r, uint32_t nframes)
{
    uint32_t off = 0;
    /* The frame of this period at which a requested fade begins: it counts
     * from the period's start, like `delay`, and holds for this period only. */
    uint32_t fade_at = v->fade_in;
    v->fade_in = 0;

    if (v->delay) {
        off = v->delay; /* < nframes (mixer.h) */
        v->delay = 0;
    }
    while (off < nframes) {
        uint32_t n = v->frames - v->pos;
        if (n > nframes - off)
            n = nframes - off;
        if (v->fade_step > 0 && fade_at > off) {
            /* A fade requested for a frame further into the period: full
             * gain up to there. */
            if (n > fade_at - off)
                n = fade_at - off;
            mix_buf(v, v->pos, out_l + off, out_r + off, v->gain, n);
        } else if (v->fade_step > 0) {
            /* The ramp reaches zero on frame ceil(gain / step). */
            float left = ceilf(v->gain / v->fade_step);
            if (left <= (float)n) {
                mix_buf_ramp(v, v->pos, out_l + off, out_r + off, v->gain, v->fade_step,
                             (uint32_t)left);
                return false;
            }
            mix_buf_ramp(v, v->pos, out_l + off, out_r + off, v->gain, v->fade_step, n);
            v->gain -= v->fade_step * (float)n;
        } else {
            mix_buf(v, v->pos, out_l + off, out_r + off, v->gain, n);
        }
        v->pos += n;
        off += n;
        if (v->pos >= v->frames) {
            if (!v->loop)
                return false;
            v->pos = 0; /* seamless: the next frame is frame 0, same period */
        }
    }
    return true;
}

void mixer_start(struct voice *v, const struct sample_buffer *b, float level,
                 const struct play_params *p, bool loop, uint32_t delay, uint32_t rate)
{
    (void)p;
    (void)rate;
    v->src = b->format == SAMPLE_S16 ? (const void *)b->s16 : (const void *)b->ch[0];
    v->src1 = b->ch[1];
    v->frames = b->frames;
    v->pos = 0;
    v->gain = level;
    v->fade_step = 0;
    v->fade_in = 0;
    v->delay = delay;
    v->format = (uint8_t)b->format;
    v->channels = (uint8_t)b->channels;
    v->loop = loop;
}

bool mixer_fade_out(struct voice *v, uint32_t delay, uint32_t frames)
{
    if (v->fade_step > 0)
        return true; /* already fading: keep the shorter remaining ramp */
    float step = v->gain / (float)frames;
    if (!(step > 0))
        return false;
    v->fade_step = step;
    v->fade_in = delay;
    return true;
}
