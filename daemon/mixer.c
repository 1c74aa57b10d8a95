/* mixer.c - the mixer's entry points and its plain path: mixer_start(),
 * mixer_set_rate(), mixer_fade_out() and mixer_render(), which plays a voice
 * at rate 1 without pan or envelope (the plain path: its start delay, a fade
 * requested inside the period, the ramp of a fade and the wrap of a loop)
 * with the kernels below, and hands every other voice to the other path
 * (mixer_interp.c: rate, direction, cubic interpolation, pan, attack,
 * release, sustain).  A gliding voice (`accelerate`, mixer.h) goes to the
 * other path one 64-frame block at a time, its step set here between the
 * blocks.  All are described in docs/sound.md.
 *
 * Why two files: the plain path is a handful of loops that play bit for
 * bit what the buffers hold, and the other path is a family of
 * interpolating kernels with run-time dispatch and an edge reader; they
 * share the voice (mixer.h) and the 16-bit scale (mixer_interp.h) and
 * nothing else, so each can be read and changed without the other.  The
 * step between them is one call per voice per period, never per frame.
 */
#include "mixer.h"

#include <math.h>

#include "mixer_interp.h"

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
 * to split the channels), cvtdq2ps to convert, then mulps/addps.  The
 * 2^-15 is S16_SCALE (mixer_interp.h). */

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

static bool render_plain(struct voice *v, float *out_l, float *out_r, uint32_t nframes)
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
            v->pos = v->loop_start; /* seamless: the next frame is the first, same period */
        }
    }
    return true;
}

/* |rate|, held within 1/16..16 (NaN: 1/16). */
static double step_of(double rate)
{
    double mag = fabs(rate);
    if (!(mag >= 1.0 / 16))
        mag = 1.0 / 16;
    return mag > 16 ? 16 : mag;
}

/* Sets v's step to step_of(rate). */
static void set_step(struct voice *v, double rate)
{
    double mag = step_of(rate);
    v->step_int = (uint32_t)mag;
    v->step_frac = (uint64_t)((mag - v->step_int) * 0x1p64); /* exact: a double's bits */
}

/* Turns a voice on the other path around where it is: the same sample
 * position, u' = (L - 1) - u, counted from the range's other end.  A
 * one-shot past its last frame by a fraction (u' < 0) starts its way back
 * on that frame; a loop's wraps. */
static void reverse(struct voice *v)
{
    uint32_t last = v->frames - 1;
    if (v->frac == 0) {
        v->pos = last - v->pos;
    } else if (v->pos < last) {
        v->pos = last - v->pos - 1;
        v->frac = 0 - v->frac;
    } else if (v->loop) {
        v->pos = last; /* u' = L - frac: the wrap of -frac */
        v->frac = 0 - v->frac;
    } else {
        v->pos = 0;
        v->frac = 0;
    }
    v->loop_start = v->mode & MIX_BACKWARDS ? v->loop_start - last : v->loop_start + last;
    v->mode ^= MIX_FORWARDS | MIX_BACKWARDS;
}

/* The next block of v's glide: its rate, and its direction if the rate
 * changed sign (0 keeps the direction).  From block glide_n on the rate
 * is the line's last one for good: the glide is over. */
static void glide_next(struct voice *v)
{
    v->glide_k++;
    v->glide_left = MIX_BLOCK;
    double r = v->glide_r0 + v->glide_dr * (double)v->glide_k;
    if (v->glide_k >= v->glide_n) {
        r = v->glide_r1;
        v->mode &= (uint8_t)~MIX_GLIDE;
    }
    bool back = (v->mode & MIX_BACKWARDS) != 0;
    if (back ? r > 0 : r < 0)
        reverse(v);
    set_step(v, r);
}

/* A gliding voice's period: the other path's render in chunks that end
 * on the glide's block boundaries, the step set between them; the period's
 * start delay and a fade requested inside it are passed on relative to
 * each chunk.  Once the glide is over, the rest of the period in one. */
static bool render_glide(struct voice *v, float *out_l, float *out_r, uint32_t nframes)
{
    uint32_t off = v->delay;
    uint32_t fade_at = v->fade_in;
    v->delay = 0;
    while (off < nframes) {
        bool gliding = (v->mode & MIX_GLIDE) != 0;
        uint32_t n = nframes - off;
        if (gliding && n > v->glide_left)
            n = v->glide_left;
        v->mode &= (uint8_t)~MIX_GLIDE; /* mixer_interp.c sees a direction only */
        v->fade_in = fade_at > off ? fade_at - off : 0;
        bool on = mixer_interp_render(v, out_l + off, out_r + off, n);
        if (!gliding)
            return on;
        v->mode |= MIX_GLIDE;
        if (!on)
            return false;
        off += n;
        v->glide_left -= n;
        if (v->glide_left == 0)
            glide_next(v);
    }
    return true;
}

bool mixer_render(struct voice *v, float *out_l, float *out_r, uint32_t nframes)
{
    if (v->mode == MIX_PLAIN)
        return render_plain(v, out_l, out_r, nframes);
    if (v->mode & MIX_GLIDE)
        return render_glide(v, out_l, out_r, nframes);
    return mixer_interp_render(v, out_l, out_r, nframes);
}

static uint32_t frames_of(float seconds, uint32_t rate)
{
    if (!(seconds > 0))
        return 0;
    double f = round((double)seconds * rate);
    return f >= 4294967295.0 ? UINT32_MAX : (uint32_t)f;
}

/* The range [*b0, *e0) of `p` in a buffer of n frames: at least one frame,
 * inside the buffer. */
static void range_of(uint32_t n, const struct play_params *p, uint32_t *b0, uint32_t *e0)
{
    double fb = play_begin(p), fe = play_end(p);
    *b0 = fb > 0 ? (uint32_t)fmin(floor(fb * n), n - 1.0) : 0;
    *e0 = fe < 1 ? (fe > 0 ? (uint32_t)floor(fe * n) : 0) : n;
    if (*e0 <= *b0)
        *e0 = *b0 + 1;
}

uint32_t mixer_range_frames(const struct sample_buffer *b, const struct play_params *p)
{
    uint32_t b0, e0;
    range_of(b->frames, p, &b0, &e0);
    return e0 - b0;
}

void mixer_set_rate(struct voice *v, double rate)
{
    if (v->fade_step > 0)
        return;
    v->mode &= (uint8_t)~MIX_GLIDE; /* this rate wins over a glide's */
    if (v->mode == MIX_PLAIN) {
        if (step_of(rate) == 1.0)
            return;
        /* The same frames from the same place on the other path: u counts
         * from the range's first frame; no pan, envelope or release. */
        uint32_t b0 = v->loop_start, e0 = v->frames;
        v->mode = MIX_FORWARDS;
        v->pos -= b0;
        v->frac = 0;
        v->frames = e0 - b0;
        v->loop_start = b0;
        v->nframes = v->buf->frames;
        v->gain_r = v->gain;
        v->fade_left = 0;
        v->attack = 0;
        v->attack_t = 0;
        v->release = v->stop_frames;
        v->rel_left = MIX_NO_RELEASE;
    }
    set_step(v, rate);
}

void mixer_start(struct voice *v, const struct sample_buffer *b, float level,
                 const struct play_params *p, bool loop, uint32_t delay, uint32_t rate,
                 uint32_t declick)
{
    uint32_t n = b->frames;
    double speed = play_rate(p);
    float pan = play_pan(p);
    if (!(pan >= -1.0f && pan <= 1.0f))
        pan = 0.0f; /* the control side refuses these */
    float sustain = play_sustain(p);
    uint32_t attack = frames_of(play_attack(p), rate);
    uint32_t release = frames_of(play_release(p), rate);
    if (declick < 1)
        declick = 1;

    uint32_t b0, e0;
    range_of(n, p, &b0, &e0);

    v->src = b->format == SAMPLE_S16 ? (const void *)b->s16 : (const void *)b->ch[0];
    v->src1 = b->ch[1];
    v->fade_step = 0;
    v->fade_in = 0;
    v->delay = delay;
    v->format = (uint8_t)b->format;
    v->channels = (uint8_t)b->channels;
    v->loop = loop;
    v->stop_frames = release > declick ? release : declick;
    level *= play_gain(p);
    /* A fitted loop's rate is the tempo's: it does not glide. */
    double accel = play_fit(p) && play_beats(p) > 0 ? 0.0 : play_accelerate(p);
    bool glide = accel != 0.0 && isfinite(accel);

    if (speed == 1.0 && !glide && pan == 0.0f && attack == 0 && !(sustain >= 0) &&
        (loop || release == 0)) {
        v->mode = MIX_PLAIN;
        v->frames = e0;
        v->pos = b0;
        v->loop_start = b0;
        v->gain = level;
        return;
    }

    bool back = speed < 0;
    if (!(fabs(speed) > 0))
        speed = 1.0; /* the control side refuses these; never 0 */
    v->mode = back ? MIX_BACKWARDS : MIX_FORWARDS;
    set_step(v, speed);
    v->frames = e0 - b0;
    v->loop_start = back ? e0 - 1 : b0;
    v->pos = 0;
    v->frac = 0;
    v->nframes = n;

    float gl = 1.0f, gr = 1.0f;
    if (pan != 0.0f) {
        double q = (pan + 1.0) * (M_PI / 4);
        gl = (float)(M_SQRT2 * cos(q));
        gr = (float)(M_SQRT2 * sin(q));
    }
    v->gain = level * gl;
    v->gain_r = level * gr;
    v->fade_left = 0;
    v->attack = attack;
    v->attack_t = 0;

    /* The glide: SuperDirt's Line.kr(r0, r1, G), in blocks (mixer.h), over
     * G frames: the control side's `glide`, else the sustain, else the
     * range at the glide's average speed, L / ((|r0| + |r1|) / 2).  Its
     * blocks: n = round(G / MIX_BLOCK), Line's counter; n = 0 (G < 32
     * frames) plays r1 from the first frame, as Line does. */
    double g_frames = 0;
    if (glide) {
        double r1 = speed * (1.0 + accel);
        if (p->glide > 0)
            g_frames = (double)p->glide * rate;
        else if (sustain >= 0)
            g_frames = (double)sustain * rate;
        else
            g_frames = (double)v->frames / ((fabs(speed) + fabs(r1)) * 0.5);
        double nb = floor(g_frames / MIX_BLOCK + 0.5);
        v->glide_n = nb >= 1 ? (nb < 4294967295.0 ? (uint32_t)nb : UINT32_MAX) : 0;
        v->glide_r0 = speed;
        v->glide_r1 = r1;
        v->glide_dr = v->glide_n ? (r1 - speed) / v->glide_n : 0.0;
        v->glide_k = 0;
        v->glide_left = MIX_BLOCK;
        v->mode |= MIX_GLIDE;
        if (v->glide_n == 0)
            glide_next(v); /* past the line at once: r1, no glide */
    }

    /* The release: its ramp reaches 0 on the last frame played, frame
     * `end`.  A one-shot with a release ends on its last frame T - 1 (T =
     * ceil(length / |rate|) frames in all); a sustain's starts on frame
     * `sustain` and lasts `release` frames, or the declick fade without a
     * release. */
    uint64_t end = UINT64_MAX;
    v->release = release ? release : declick;
    if (!loop && release) {
        /* A gliding one-shot without sustain: its last frame is taken to
         * be its glide's (its length at the average speed). */
        if (!glide)
            end = mixer_interp_played(v) - 1;
        else if (!(sustain >= 0))
            end = g_frames >= 1 ? (uint64_t)fmin(round(g_frames), 0x1p63) - 1 : 0;
    }
    if (sustain >= 0) {
        uint64_t e = (uint64_t)frames_of(sustain, rate) + v->release;
        if (e < end)
            end = e;
    }
    v->rel_left = end == UINT64_MAX ? MIX_NO_RELEASE : end + 1;
}

bool mixer_fade_out(struct voice *v, uint32_t delay, uint32_t frames)
{
    if (v->fade_step > 0)
        return true; /* already fading: keep the shorter remaining ramp */
    if (v->mode != MIX_PLAIN) {
        if (!(v->gain > 0 || v->gain_r > 0))
            return false;
        if (frames < 1)
            frames = 1;
        v->fade_step = 1.0f / (float)frames;
        v->fade_left = frames;
        v->fade_in = delay;
        return true;
    }
    float step = v->gain / (float)frames;
    if (!(step > 0))
        return false;
    v->fade_step = step;
    v->fade_in = delay;
    return true;
}
