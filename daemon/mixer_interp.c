/* mixer_interp.c - the mixer's other path: every voice that is not at rate
 * 1 without pan or envelope (mixer.h, MIX_FORWARDS and MIX_BACKWARDS), what
 * docs/sound.md says it plays.  It owns the voice's fixed-point position and
 * its stepping, the Hermite kernels (four frames at a time, eight with AVX2
 * where the CPU has it, chosen at run time), the checked reader for the
 * frames at the edges, and the envelope (attack, release, the stop's fade).
 * mixer.c owns the voice's start and the plain path, and calls
 * mixer_interp_render() once per voice per period: everything a frame
 * costs stays inside this file, where the compiler can inline it.
 *
 * Positions count along the direction of play: u = 0 is the first frame
 * played (sample frame loop_start), u = 1 the next one played, and so on;
 * sample frame loop_start + u forwards, loop_start - u backwards.  u is
 * 32.64 fixed point (pos, frac) and advances by the step (step_int,
 * step_frac), which is |rate| exactly, so the position after n frames is
 * exactly n x |rate| (mod the range's length for a loop): no drift.
 *
 * A frame at u = k + x (0 <= x < 1) is the 4-point, 3rd-order Hermite
 * interpolation of the frames at k-1, k, k+1, k+2 (SuperCollider's
 * cubicinterp, what PlayBuf uses), on the fraction x.  Backwards the four
 * are taken in the direction of play too (sample frames i+1, i, i-1, i-2
 * for i = loop_start - k), which is the same curve, the Hermite being
 * symmetric.  The neighbours outside what is played: for a loop, wrapped
 * inside the range (u mod length); for a one-shot, the sample's own frames
 * where they exist inside [0, N), else 0.  At a whole step (rate 1, 2, -1
 * ...) x is always 0 and the frame is read as it is (the Hermite gives
 * exactly y1 there too).
 *
 * The gain of frame i of a chunk is level x pan law x env x fade:
 * env = clamp(min(attack ramp, release ramp, 1), 0, 1) and fade the stop's
 * ramp ((frames left - 1 - i) / F, 0 on its last frame), each linear in i
 * (a0 + da i, r0 - dr i, f0 - df i).  Each ramp's
 * start is computed from the voice's exact frame counts at the chunk's
 * start, so no error accumulates over chunks.
 *
 * A period goes in chunks: the frames where all four neighbours are direct
 * reads inside the buffer (and, for a loop, inside the range without a
 * wrap) go through the kernel, which has no bound checks; the few at the
 * edges one at a time through the checked reader. */

#include "mixer_interp.h"

#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

__extension__ typedef unsigned __int128 u128; /* gcc and clang: exact step arithmetic */

struct gains {
    float gl, gr; /* level x pan law, left and right */
    float a0, da; /* attack ramp: a0 + da i */
    float r0, dr; /* release ramp: r0 - dr i */
    float f0, df; /* stop's fade: f0 - df i */
};

static inline __attribute__((always_inline)) float cubic(float y0, float y1, float y2, float y3,
                                                         float x)
{
    float c0 = y1;
    float c1 = 0.5f * (y2 - y0);
    float c2 = y0 - 2.5f * y1 + y2 + y2 - 0.5f * y3;
    float c3 = 0.5f * (y3 - y0) + 1.5f * (y1 - y2);
    return ((c3 * x + c2) * x + c1) * x + c0;
}

/* The fraction of u as a float in [0, 1): its top 24 bits, exactly. */
static inline __attribute__((always_inline)) float frac_float(uint64_t frac)
{
    return (float)(int32_t)(frac >> 40) * 0x1p-24f;
}

/* The envelope-and-fade factor of frame i of a chunk. */
static inline __attribute__((always_inline)) float env_at(const struct gains *g, uint32_t i)
{
    float fi = (float)(int32_t)i;
    float a = g->a0 + g->da * fi;
    float r = g->r0 - g->dr * fi;
    float e = a < r ? a : r;
    e = e < 1.0f ? e : 1.0f;
    e = e > 0.0f ? e : 0.0f;
    float f = g->f0 - g->df * fi;
    f = f > 0.0f ? f : 0.0f;
    return e * f;
}

/* Sample ix of channel ch, in format fmt with nch channels. */
static inline __attribute__((always_inline)) float rd(const void *src, const float *src1, int fmt,
                                                      int nch, intptr_t ix, int ch)
{
    if (fmt == SAMPLE_S16)
        return (float)((const int16_t *)src)[ix * nch + (nch == 2 ? ch : 0)] * S16_SCALE;
    return (ch && nch == 2 ? src1 : (const float *)src)[ix];
}

/* The interpolating kernels work on the four neighbours as one vector
 * (GCC/Clang vector extensions: SSE2 on x86-64, NEON on ARM).  The four
 * are adjacent in memory: one 16-byte load per channel of a float buffer,
 * one of 8 (mono) or 16 (stereo) bytes of a 16-bit one, whichever the
 * direction.  The Hermite is linear in the y's: its value is W . Y with
 * the weights W(x) = ((H3 x + H2) x + H1) x + H0, one vector Horner per
 * frame shared by both channels; backwards the same weights reversed, on
 * the same load.  A 16-bit buffer's 2^-15 goes into the gains. */
typedef float v4f __attribute__((vector_size(16)));
typedef int16_t v4s __attribute__((vector_size(8)));
typedef int16_t v8s __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));
typedef uint32_t v4u __attribute__((vector_size(16)));

/* Four int16 lanes as floats, exactly: each doubled into a 32-bit lane and
 * shifted back (sign-extending whatever the byte order), then cvtdq2ps;
 * gcc converts a v4s lane by lane otherwise. */
#define S16X4(t, a, b, c, d)                                                                       \
    __builtin_convertvector((v4i)__builtin_shufflevector(t, t, a, a, b, b, c, c, d, d) >> 16, v4f)

static const v4f hermite_w[2][4] = {
    /* on y(u-1), y(u), y(u+1), y(u+2), in memory order forwards */
    {{0, 1, 0, 0}, {-0.5f, 0, 0.5f, 0}, {1, -2.5f, 2, -0.5f}, {-0.5f, 1.5f, -1.5f, 0.5f}},
    /* backwards: memory order is y(u+2), y(u+1), y(u), y(u-1) */
    {{0, 0, 1, 0}, {0, 0.5f, 0, -0.5f}, {-0.5f, 2, -2.5f, 1}, {0.5f, -1.5f, 1.5f, -0.5f}},
};

static inline __attribute__((always_inline)) v4f weights(float x, int dir)
{
    const v4f *h = hermite_w[dir < 0];
    v4f vx = {x, x, x, x};
    return ((h[3] * vx + h[2]) * vx + h[1]) * vx + h[0];
}

/* The weights of four frames at once, x their fractions, in memory order
 * (reversed backwards): the same cubics as hermite_w, written on shared
 * terms, w3 = (x^3 - x^2) / 2 and a = (x^2 - x) / 2:
 *   W0 = a - w3, W1 = 1 - x^2 + 3 w3, W2 = x^2 - 3 w3 - a, W3 = w3,
 * twelve operations for the four instead of a Horner each. */
static inline __attribute__((always_inline)) void weights4(v4f x, int dir, v4f w[4])
{
    v4f x2 = x * x;
    v4f x3 = x2 * x;
    v4f w3 = 0.5f * (x3 - x2);
    v4f a = 0.5f * (x2 - x);
    v4f t3 = 3.0f * w3;
    v4f w0 = a - w3, w1 = (1.0f - x2) + t3, w2 = (x2 - t3) - a;
    w[dir > 0 ? 0 : 3] = w0;
    w[dir > 0 ? 1 : 2] = w1;
    w[dir > 0 ? 2 : 1] = w2;
    w[dir > 0 ? 3 : 0] = w3;
}

#ifndef __SSE__
/* Lanes where m is set take a, the others b. */
static inline __attribute__((always_inline)) v4f sel(v4i m, v4f a, v4f b)
{
    return (v4f)(((v4i)a & m) | ((v4i)b & ~m));
}
#endif

/* env_at() of frames i .. i + 3, lane by lane the same operations. */
static inline __attribute__((always_inline)) v4f env4(const struct gains *g, uint32_t i)
{
    v4i ii = {(int32_t)i, (int32_t)i + 1, (int32_t)i + 2, (int32_t)i + 3};
    v4f fi = __builtin_convertvector(ii, v4f);
    v4f one = {1, 1, 1, 1}, zero = {0, 0, 0, 0};
    v4f a = g->a0 + g->da * fi;
    v4f r = g->r0 - g->dr * fi;
    v4f f = g->f0 - g->df * fi;
#ifdef __SSE__
    /* minps(a, b) is a < b ? a : b and maxps(a, b) a > b ? a : b, lane by
     * lane: the same selections in one instruction each. */
    v4f e = (v4f)_mm_min_ps((__m128)a, (__m128)r);
    e = (v4f)_mm_max_ps(_mm_min_ps((__m128)e, (__m128)one), (__m128)zero);
    f = (v4f)_mm_max_ps((__m128)f, (__m128)zero);
#else
    v4f e = sel(a < r, a, r);
    e = sel(e < one, e, one);
    e = sel(e > zero, e, zero);
    f = sel(f > zero, f, zero);
#endif
    return e * f;
}

/* The fractions of four positions as floats, as frac_float() each. */
static inline __attribute__((always_inline)) v4f fracs4(const int32_t xs[4])
{
    v4i xi = {xs[0], xs[1], xs[2], xs[3]};
    return __builtin_convertvector(xi, v4f) * 0x1p-24f;
}

/* Lane 0 + 1 + 2 + 3. */
static inline __attribute__((always_inline)) float hsum(v4f a)
{
    a += __builtin_shufflevector(a, a, 2, 3, 0, 1);
    a += __builtin_shufflevector(a, a, 1, 0, 3, 2);
    return a[0];
}

/* Rows r[j] = frame j's four neighbours; returns the frames' values,
 * sum over t of w[t] x (neighbour t of each frame). */
static inline __attribute__((always_inline)) v4f transpose_dot(const v4f r[4], const v4f w[4])
{
    v4f b0 = __builtin_shufflevector(r[0], r[1], 0, 4, 1, 5);
    v4f b1 = __builtin_shufflevector(r[2], r[3], 0, 4, 1, 5);
    v4f b2 = __builtin_shufflevector(r[0], r[1], 2, 6, 3, 7);
    v4f b3 = __builtin_shufflevector(r[2], r[3], 2, 6, 3, 7);
    return __builtin_shufflevector(b0, b1, 0, 1, 4, 5) * w[0] +
           __builtin_shufflevector(b0, b1, 2, 3, 6, 7) * w[1] +
           __builtin_shufflevector(b2, b3, 0, 1, 4, 5) * w[2] +
           __builtin_shufflevector(b2, b3, 2, 3, 6, 7) * w[3];
}

/* The kernel: n frames from u = (*pk, *pf), every neighbour a direct read
 * (the caller checked).  fmt, nch, dir, interp and env are constants in
 * each instance below. */
static inline __attribute__((always_inline)) void
kernel(float *restrict l, float *restrict r, const void *src, const float *src1, intptr_t base,
       uint32_t sk, uint64_t sf, const struct gains *g, uint32_t n, uint32_t *pk, uint64_t *pf,
       int fmt, int nch, int dir, int interp, int env, uint32_t i0)
{
    uint32_t k = *pk;
    uint64_t fr = *pf;
    float gl0 = g->gl, gr0 = g->gr;
    if (interp && fmt == SAMPLE_S16) {
        gl0 *= S16_SCALE;
        gr0 *= S16_SCALE;
    }
    /* The first of the four in memory: u - 1 forwards, u + 2 backwards. */
    const intptr_t first = dir > 0 ? -1 : -2;
    uint32_t i = i0; /* frames before i0 were mixed already (the wide loop); 0 unless interp */
    if (interp && !(fmt == SAMPLE_S16 && nch == 2)) {
        /* The other formats, four frames at a time likewise: each frame's
         * four neighbours of a channel are one row (one load), and four
         * rows transposed are one vector per neighbour over the frames. */
        for (; i + 4 <= n; i += 4) {
            v4f ra[4], rb[4];
            int32_t xs[4];
            for (int j = 0; j < 4; j++) {
                intptr_t at = base + (intptr_t)dir * (intptr_t)k + first;
                if (fmt == SAMPLE_S16) {
                    v4s t;
                    memcpy(&t, (const int16_t *)src + at, sizeof(t));
                    ra[j] = S16X4(t, 0, 1, 2, 3);
                } else {
                    memcpy(&ra[j], (const float *)src + at, sizeof(ra[j]));
                    if (nch == 2)
                        memcpy(&rb[j], src1 + at, sizeof(rb[j]));
                }
                xs[j] = (int32_t)(fr >> 40);
                uint64_t nf = fr + sf;
                k += sk + (nf < fr);
                fr = nf;
            }
            v4f w[4];
            weights4(fracs4(xs), dir, w);
            v4f yl = transpose_dot(ra, w), yr = nch == 2 ? transpose_dot(rb, w) : yl;
            v4f gl = {gl0, gl0, gl0, gl0}, gr = {gr0, gr0, gr0, gr0};
            if (env) {
                v4f e = env4(g, i);
                gl *= e;
                gr *= e;
            }
            v4f ol, orr;
            memcpy(&ol, l + i, sizeof(ol));
            memcpy(&orr, r + i, sizeof(orr));
            ol += gl * yl;
            orr += gr * yr;
            memcpy(l + i, &ol, sizeof(ol));
            memcpy(r + i, &orr, sizeof(orr));
        }
    }
    if (interp && fmt == SAMPLE_S16 && nch == 2) {
        /* The daemon's format for 16-bit files, four frames at a time: the
         * four loads (each the four neighbours' L R pairs) transposed as
         * 32-bit pairs into one vector per neighbour over the frames, then
         * the weights, the dot products and the outputs in 4-lane vectors.
         * Each 32-bit pair becomes two floats in one operation apiece, the
         * integer times 2^16 (exact): shifted up for the low half, masked
         * for the high one; the 2^-16 goes into the gains. */
        const float s16 = 0x1p-16f;
        const v4f gl1 = {gl0 * s16, gl0 * s16, gl0 * s16, gl0 * s16};
        const v4f gr1 = {gr0 * s16, gr0 * s16, gr0 * s16, gr0 * s16};
        const v4i hi16 = {-65536, -65536, -65536, -65536};
        for (; i + 4 <= n; i += 4) {
            v4i a[4];
            int32_t xs[4];
            for (int j = 0; j < 4; j++) {
                memcpy(&a[j],
                       (const int16_t *)src + (base + (intptr_t)dir * (intptr_t)k + first) * 2,
                       sizeof(a[j]));
                xs[j] = (int32_t)(fr >> 40);
                uint64_t nf = fr + sf;
                k += sk + (nf < fr);
                fr = nf;
            }
            v4i b0 = __builtin_shufflevector(a[0], a[1], 0, 4, 1, 5);
            v4i b1 = __builtin_shufflevector(a[2], a[3], 0, 4, 1, 5);
            v4i b2 = __builtin_shufflevector(a[0], a[1], 2, 6, 3, 7);
            v4i b3 = __builtin_shufflevector(a[2], a[3], 2, 6, 3, 7);
            v4i m[4] = {__builtin_shufflevector(b0, b1, 0, 1, 4, 5),
                        __builtin_shufflevector(b0, b1, 2, 3, 6, 7),
                        __builtin_shufflevector(b2, b3, 0, 1, 4, 5),
                        __builtin_shufflevector(b2, b3, 2, 3, 6, 7)};
            v4f w[4];
            weights4(fracs4(xs), dir, w);
            v4f yl = {0, 0, 0, 0}, yr = {0, 0, 0, 0};
            for (int t = 0; t < 4; t++) {
                v4i up = (v4i)((v4u)m[t] << 16), top = m[t] & hi16;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
                v4i lo = up, hi = top; /* L, R */
#else
                v4i lo = top, hi = up;
#endif
                v4f pl = __builtin_convertvector(lo, v4f) * w[t];
                v4f pr = __builtin_convertvector(hi, v4f) * w[t];
                yl = t ? yl + pl : pl; /* no 0 + first term: one add fewer */
                yr = t ? yr + pr : pr;
            }
            v4f gl = gl1, gr = gr1;
            if (env) {
                v4f e = env4(g, i);
                gl *= e;
                gr *= e;
            }
            v4f ol, orr;
            memcpy(&ol, l + i, sizeof(ol));
            memcpy(&orr, r + i, sizeof(orr));
            ol += gl * yl;
            orr += gr * yr;
            memcpy(l + i, &ol, sizeof(ol));
            memcpy(r + i, &orr, sizeof(orr));
        }
    }
    if (!interp && sk == 1) {
        /* Rate 1 or -1 with a pan or an envelope: consecutive frames, a
         * loop that vectorises like the plain path's. */
        const intptr_t ix0 = base + (intptr_t)dir * (intptr_t)k;
        for (; i < n; i++) {
            intptr_t ix = ix0 + (intptr_t)dir * (intptr_t)i;
            float yl = rd(src, src1, fmt, nch, ix, 0);
            float yr = nch == 2 ? rd(src, src1, fmt, nch, ix, 1) : yl;
            float gl = gl0, gr = gr0;
            if (env) {
                float e = env_at(g, i);
                gl *= e;
                gr *= e;
            }
            l[i] += gl * yl;
            r[i] += gr * yr;
        }
        *pk = k + n;
        return;
    }
    for (; i < n; i++) {
        intptr_t ix = base + (intptr_t)dir * (intptr_t)k;
        float yl, yr;
        if (interp) {
            v4f w = weights(frac_float(fr), dir);
            if (fmt == SAMPLE_S16 && nch == 2) {
                v8s t;
                memcpy(&t, (const int16_t *)src + (ix + first) * 2, sizeof(t));
                v4f lo = S16X4(t, 0, 1, 2, 3);
                v4f hi = S16X4(t, 4, 5, 6, 7);
                v4f p = lo * __builtin_shufflevector(w, w, 0, 0, 1, 1) +
                        hi * __builtin_shufflevector(w, w, 2, 2, 3, 3);
                p += __builtin_shufflevector(p, p, 2, 3, 0, 1);
                yl = p[0];
                yr = p[1];
            } else if (fmt == SAMPLE_S16) {
                v4s t;
                memcpy(&t, (const int16_t *)src + ix + first, sizeof(t));
                yl = yr = hsum(S16X4(t, 0, 1, 2, 3) * w);
            } else {
                v4f a;
                memcpy(&a, (const float *)src + ix + first, sizeof(a));
                a *= w;
                if (nch == 2) {
                    v4f b;
                    memcpy(&b, src1 + ix + first, sizeof(b));
                    b *= w;
                    v4f q = __builtin_shufflevector(a, b, 0, 4, 2, 6) +
                            __builtin_shufflevector(a, b, 1, 5, 3, 7);
                    q += __builtin_shufflevector(q, q, 2, 3, 0, 1);
                    yl = q[0];
                    yr = q[1];
                } else {
                    yl = yr = hsum(a);
                }
            }
        } else {
            yl = rd(src, src1, fmt, nch, ix, 0);
            yr = nch == 2 ? rd(src, src1, fmt, nch, ix, 1) : yl;
        }
        float gl = gl0, gr = gr0;
        if (env) {
            float e = env_at(g, i);
            gl *= e;
            gr *= e;
        }
        l[i] += gl * yl;
        r[i] += gr * yr;
        uint64_t nf = fr + sf;
        k += sk + (nf < fr);
        fr = nf;
    }
    *pk = k;
    *pf = fr;
}

/* On x86-64 with AVX2 (checked at run time: the daemon is built for the
 * baseline), the 16-bit stereo interpolating loop eight frames at a time
 * in 8-lane vectors: lane for lane the same operations as the 4-lane loop
 * of kernel(), in the same order (no fused multiply-add), so the same bits
 * on every machine, in half the instructions. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(MIX_NO_WIDE)
#define MIX_WIDE 1
#define WIDE __attribute__((target("avx2"), always_inline)) static inline

typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));
typedef uint32_t v8u __attribute__((vector_size(32)));

WIDE v8f env8(const struct gains *g, uint32_t i)
{
    v8i ii = {0, 1, 2, 3, 4, 5, 6, 7};
    v8f fi = __builtin_convertvector(ii + (int32_t)i, v8f);
    v8f one = {1, 1, 1, 1, 1, 1, 1, 1}, zero = {0, 0, 0, 0, 0, 0, 0, 0};
    v8f a = g->a0 + g->da * fi;
    v8f r = g->r0 - g->dr * fi;
    v8f f = g->f0 - g->df * fi;
    v8f e = (v8f)_mm256_min_ps((__m256)a, (__m256)r);
    e = (v8f)_mm256_max_ps(_mm256_min_ps((__m256)e, (__m256)one), (__m256)zero);
    f = (v8f)_mm256_max_ps((__m256)f, (__m256)zero);
    return e * f;
}

/* The loads and steps of eight frames (wide_s16s()), `op` adc forwards,
 * sbb backwards. */
#define WIDE_STEP(op) "add %[sf], %[fr]\n\t" op " %[sk], %[at]\n\t"
#define WIDE_LO(c, op) "vmovdqu (%[p],%[at],4), %x[" c "]\n\t" WIDE_STEP(op)
#define WIDE_HI(c, op) "vinserti128 $1, (%[p],%[at],4), %t[" c "], %t[" c "]\n\t" WIDE_STEP(op)
#define WIDE_LOADS(op)                                                                             \
    WIDE_LO("c0", op)                                                                              \
    WIDE_LO("c1", op)                                                                              \
    WIDE_LO("c2", op)                                                                              \
    WIDE_LO("c3", op) WIDE_HI("c0", op) WIDE_HI("c1", op) WIDE_HI("c2", op) WIDE_HI("c3", op)

/* Frames i .. (n rounded down to 8) of kernel()'s 16-bit stereo
 * interpolating loop; returns where it stopped. */
WIDE uint32_t wide_s16s(float *restrict l, float *restrict r, const void *src, intptr_t base,
                        uint32_t sk, uint64_t sf, const struct gains *g, uint32_t n, uint32_t *pk,
                        uint64_t *pf, int dir, int env)
{
    uint32_t k = *pk;
    const float s16 = S16_SCALE * 0x1p-16f;
    const float gls = g->gl * s16, grs = g->gr * s16;
    const v8f gl1 = {gls, gls, gls, gls, gls, gls, gls, gls};
    const v8f gr1 = {grs, grs, grs, grs, grs, grs, grs, grs};
    const v8i hi16 = {-65536, -65536, -65536, -65536, -65536, -65536, -65536, -65536};
    /* The first of each frame's four neighbours, in frames (one 32-bit L R
     * pair each), stepped along the direction of play: an add and an add
     * with carry a frame, nothing else scalar. */
    const char *bytes = src;
    const intptr_t at0 = base + (intptr_t)dir * (intptr_t)k + (dir > 0 ? -1 : -2);
    intptr_t at = at0;
    uint64_t fr = *pf;
    const uint64_t sk64 = sk;
    /* The fractions, eight at a time in 64-bit lanes (the even frames in
     * one vector, the odd in the other), each advanced by 8 steps mod 2^64
     * per eight frames: the same bits as the scalar fr of each frame. */
    const uint64_t s2 = 2 * sf;
    __m256i fe = _mm256_set_epi64x((long long)(fr + 3 * s2), (long long)(fr + 2 * s2),
                                   (long long)(fr + s2), (long long)fr);
    __m256i fo = _mm256_add_epi64(fe, _mm256_set1_epi64x((long long)sf));
    const __m256i f8 = _mm256_set1_epi64x((long long)(8 * sf));
    uint32_t i = 0;
    for (; i + 8 <= n; i += 8) {
        /* Frame j's 16 bytes into the low half of c[j % 4] (j < 4) or its
         * high half, each load followed by the step: fr += sf; at += sk +
         * carry (backwards at -= sk + borrow).  In one block: gcc's own code
         * for the same steps keeps eight chains in registers it then spills,
         * and loads the halves separately to join them. */
        v8i c[4];
        if (dir > 0)
            __asm__(WIDE_LOADS("adc")
                    : [c0] "=&x"(c[0]), [c1] "=&x"(c[1]), [c2] "=&x"(c[2]), [c3] "=&x"(c[3]),
                      [fr] "+r"(fr), [at] "+r"(at)
                    : [p] "r"(bytes), [sf] "r"(sf), [sk] "r"(sk64)
                    : "cc", "memory");
        else
            __asm__(WIDE_LOADS("sbb")
                    : [c0] "=&x"(c[0]), [c1] "=&x"(c[1]), [c2] "=&x"(c[2]), [c3] "=&x"(c[3]),
                      [fr] "+r"(fr), [at] "+r"(at)
                    : [p] "r"(bytes), [sf] "r"(sf), [sk] "r"(sk64)
                    : "cc", "memory");
        /* Then kernel()'s transpose in each 128-bit half: lane j of m[t] is
         * frame j's neighbour t. */
        v8i b0 = __builtin_shufflevector(c[0], c[1], 0, 8, 1, 9, 4, 12, 5, 13);
        v8i b1 = __builtin_shufflevector(c[2], c[3], 0, 8, 1, 9, 4, 12, 5, 13);
        v8i b2 = __builtin_shufflevector(c[0], c[1], 2, 10, 3, 11, 6, 14, 7, 15);
        v8i b3 = __builtin_shufflevector(c[2], c[3], 2, 10, 3, 11, 6, 14, 7, 15);
        v8i m[4] = {__builtin_shufflevector(b0, b1, 0, 1, 8, 9, 4, 5, 12, 13),
                    __builtin_shufflevector(b0, b1, 2, 3, 10, 11, 6, 7, 14, 15),
                    __builtin_shufflevector(b2, b3, 0, 1, 8, 9, 4, 5, 12, 13),
                    __builtin_shufflevector(b2, b3, 2, 3, 10, 11, 6, 7, 14, 15)};
        /* The top 24 bits of each fraction (frac_float()), the even frames'
         * in the low 32-bit lanes, the odd ones' shifted into the high: the
         * frames in lane order 0 1 2 3 4 5 6 7, as after the transpose. */
        __m256i xe = _mm256_srli_epi64(fe, 40),
                xo = _mm256_slli_epi64(_mm256_srli_epi64(fo, 40), 32);
        v8i xi = (v8i)_mm256_blend_epi32(xe, xo, 0xAA);
        fe = _mm256_add_epi64(fe, f8);
        fo = _mm256_add_epi64(fo, f8);
        v8f x = __builtin_convertvector(xi, v8f) * 0x1p-24f;
        v8f x2 = x * x;
        v8f x3 = x2 * x;
        v8f w3 = 0.5f * (x3 - x2);
        v8f h = 0.5f * (x2 - x);
        v8f t3 = 3.0f * w3;
        v8f w[4];
        w[dir > 0 ? 0 : 3] = h - w3;
        w[dir > 0 ? 1 : 2] = (1.0f - x2) + t3;
        w[dir > 0 ? 2 : 1] = (x2 - t3) - h;
        w[dir > 0 ? 3 : 0] = w3;
        v8f yl = {0, 0, 0, 0, 0, 0, 0, 0}, yr = yl;
        for (int t = 0; t < 4; t++) {
            v8i up = (v8i)((v8u)m[t] << 16), top = m[t] & hi16;
            v8f pl = __builtin_convertvector(up, v8f) * w[t]; /* L: the low half */
            v8f pr = __builtin_convertvector(top, v8f) * w[t];
            yl = t ? yl + pl : pl;
            yr = t ? yr + pr : pr;
        }
        v8f gl = gl1, gr = gr1;
        if (env) {
            v8f e = env8(g, i);
            gl *= e;
            gr *= e;
        }
        v8f ol, orr;
        memcpy(&ol, l + i, sizeof(ol));
        memcpy(&orr, r + i, sizeof(orr));
        ol += gl * yl;
        orr += gr * yr;
        memcpy(l + i, &ol, sizeof(ol));
        memcpy(r + i, &orr, sizeof(orr));
    }
    *pk = k + (uint32_t)(dir > 0 ? at - at0 : at0 - at);
    *pf = fr;
    return i;
}

#define KERNEL_WIDE(name, dir, env)                                                                \
    __attribute__((target("avx2"))) static void name##_w(                                          \
        float *restrict l, float *restrict r, const void *src, const float *src1, intptr_t base,   \
        uint32_t sk, uint64_t sf, const struct gains *g, uint32_t n, uint32_t *pk, uint64_t *pf)   \
    {                                                                                              \
        uint32_t i = wide_s16s(l, r, src, base, sk, sf, g, n, pk, pf, dir, env);                   \
        if (i < n) /* the last n % 8 frames */                                                     \
            kernel(l, r, src, src1, base, sk, sf, g, n, pk, pf, SAMPLE_S16, 2, dir, 1, env, i);    \
    }
#endif

typedef void kernel_fn(float *restrict l, float *restrict r, const void *src, const float *src1,
                       intptr_t base, uint32_t sk, uint64_t sf, const struct gains *g, uint32_t n,
                       uint32_t *pk, uint64_t *pf);

#define KERNEL(name, fmt, nch, dir, interp, env)                                                   \
    static void name(float *restrict l, float *restrict r, const void *src, const float *src1,     \
                     intptr_t base, uint32_t sk, uint64_t sf, const struct gains *g, uint32_t n,   \
                     uint32_t *pk, uint64_t *pf)                                                   \
    {                                                                                              \
        kernel(l, r, src, src1, base, sk, sf, g, n, pk, pf, fmt, nch, dir, interp, env, 0);        \
    }
#define KERNELS_DIR(p, fmt, nch, dir)                                                              \
    KERNEL(p##_d, fmt, nch, dir, 0, 0)                                                             \
    KERNEL(p##_de, fmt, nch, dir, 0, 1)                                                            \
    KERNEL(p##_i, fmt, nch, dir, 1, 0)                                                             \
    KERNEL(p##_ie, fmt, nch, dir, 1, 1)
#define KERNELS(p, fmt, nch)                                                                       \
    KERNELS_DIR(p##_f, fmt, nch, 1)                                                                \
    KERNELS_DIR(p##_b, fmt, nch, -1)

KERNELS(k_s16m, SAMPLE_S16, 1)
KERNELS(k_s16s, SAMPLE_S16, 2)
KERNELS(k_f32m, SAMPLE_F32, 1)
KERNELS(k_f32s, SAMPLE_F32, 2)

#define ROW(p)                                                                                     \
    {                                                                                              \
        p##_f_d, p##_f_de, p##_f_i, p##_f_ie, p##_b_d, p##_b_de, p##_b_i, p##_b_ie                 \
    }
/* [format x 2 + stereo][backwards x 4 + interp x 2 + env] */
static kernel_fn *const kernels[4][8] = {ROW(k_f32m), ROW(k_f32s), ROW(k_s16m), ROW(k_s16s)};

#ifdef MIX_WIDE
KERNEL_WIDE(k_s16s_f_i, 1, 0)
KERNEL_WIDE(k_s16s_f_ie, 1, 1)
KERNEL_WIDE(k_s16s_b_i, -1, 0)
KERNEL_WIDE(k_s16s_b_ie, -1, 1)
/* The 16-bit stereo row with the wide interpolating kernels. */
static kernel_fn *const kernels_s16s_wide[8] = {
    k_s16s_f_d, k_s16s_f_de, k_s16s_f_i_w, k_s16s_f_ie_w,
    k_s16s_b_d, k_s16s_b_de, k_s16s_b_i_w, k_s16s_b_ie_w,
};
#endif

/* Sample value at u = `u` whole frames along the direction of play, with
 * the neighbour rule above. */
static float fetch(const struct voice *v, int64_t u, int ch)
{
    if (v->loop) {
        int64_t len = v->frames;
        u %= len;
        if (u < 0)
            u += len;
    }
    int64_t ix = v->mode == MIX_BACKWARDS ? (int64_t)v->loop_start - u : (int64_t)v->loop_start + u;
    if (ix < 0 || ix >= (int64_t)v->nframes)
        return 0.0f;
    if (v->format == SAMPLE_S16)
        return (float)((const int16_t *)v->src)[ix * v->channels + (v->channels == 2 ? ch : 0)] *
               S16_SCALE;
    return (ch ? v->src1 : (const float *)v->src)[ix];
}

/* One frame through the checked reader. */
static void frame_checked(struct voice *v, float *l, float *r, const struct gains *g, bool env)
{
    int64_t k = v->pos;
    float x = frac_float(v->frac);
    float yl = cubic(fetch(v, k - 1, 0), fetch(v, k, 0), fetch(v, k + 1, 0), fetch(v, k + 2, 0), x);
    float yr = v->channels == 2 ? cubic(fetch(v, k - 1, 1), fetch(v, k, 1), fetch(v, k + 1, 1),
                                        fetch(v, k + 2, 1), x)
                                : yl;
    float e = env ? env_at(g, 0) : 1.0f;
    *l += (g->gl * e) * yl;
    *r += (g->gr * e) * yr;
    uint64_t nf = v->frac + v->step_frac;
    v->pos += v->step_int + (nf < v->frac);
    v->frac = nf;
}

static inline u128 step_of(const struct voice *v)
{
    return ((u128)v->step_int << 64) | v->step_frac;
}

/* How many of the next frames (at most n) have all four neighbours inside
 * the buffer (and a loop's inside its range, unwrapped), a one-shot's
 * position also before the range's end: the kernel's frames. */
static uint32_t safe_frames(const struct voice *v, uint32_t n)
{
    int64_t len = v->frames, b = v->loop_start, nf = v->nframes, lo, hi;
    if (v->loop) {
        lo = 1;
        hi = len - 3;
    } else {
        if (v->mode == MIX_FORWARDS) {
            lo = 1 - b;
            hi = nf - 3 - b;
        } else {
            lo = b + 2 - nf;
            hi = b - 2;
        }
        if (hi > len - 1)
            hi = len - 1;
    }
    int64_t k = v->pos;
    if (k < lo || k > hi)
        return 0;
    if (k + (int64_t)(n - 1) * (v->step_int + 1) <= hi)
        return n; /* the common case: the whole chunk, by a bound on the step */
    /* Frames j = 0 .. m-1 are safe while floor(u + j * step) <= hi. */
    double step = (double)v->step_int + (double)v->step_frac * 0x1p-64;
    double q = (double)(hi - k) / step + 1.0;
    uint64_t m = q >= (double)n ? n : (uint64_t)q;
    u128 u = ((u128)(uint64_t)k << 64) | v->frac, s = step_of(v);
    while (m > 0 && (int64_t)((u + (u128)(m - 1) * s) >> 64) > hi)
        m--; /* the double's rounding, corrected exactly */
    return (uint32_t)m;
}

bool mixer_interp_render(struct voice *v, float *out_l, float *out_r, uint32_t nframes)
{
    uint32_t off = v->delay;
    uint32_t fade_at = v->fade_in;
    v->delay = 0;
    v->fade_in = 0;
    kernel_fn *const *row = kernels[(v->format == SAMPLE_S16) * 2 + (v->channels == 2)];
#ifdef MIX_WIDE
    /* A load and a bit test (libgcc's CPU model, filled in at start-up). */
    if (v->format == SAMPLE_S16 && v->channels == 2 && __builtin_cpu_supports("avx2"))
        row = kernels_s16s_wide;
#endif
    row += (v->mode == MIX_BACKWARDS) * 4;
    const int interp = v->step_frac != 0 || v->frac != 0;
    const intptr_t base = v->loop_start;

    while (off < nframes) {
        if (!v->loop && v->pos >= v->frames)
            return false; /* past the range's end */
        if (v->rel_left == 0)
            return false; /* the release's last frame was played */
        uint32_t n = nframes - off;
        struct gains g = {.gl = v->gain, .gr = v->gain_r, .a0 = 2.0f, .r0 = 2.0f, .f0 = 1.0f};
        bool env = false, last = false;

        if (v->rel_left != MIX_NO_RELEASE) {
            if (v->rel_left < n)
                n = (uint32_t)v->rel_left;
            uint64_t before = v->rel_left - 1; /* frames after this one to the release's end */
            if (before > v->release) {
                /* Not releasing yet: up to the frame where the ramp is 1. */
                if (before - v->release < n)
                    n = (uint32_t)(before - v->release);
            } else {
                g.r0 = (float)((double)before / (double)v->release);
                g.dr = 1.0f / (float)v->release;
                env = true;
            }
        }
        if (v->attack_t < v->attack) {
            if (v->attack - v->attack_t < n)
                n = v->attack - v->attack_t;
            g.a0 = (float)((double)v->attack_t / (double)v->attack);
            g.da = 1.0f / (float)v->attack;
            env = true;
        }
        if (v->fade_step > 0) {
            if (fade_at > off) {
                /* A fade requested for a frame further into the period. */
                if (n > fade_at - off)
                    n = fade_at - off;
            } else {
                /* The ramp reaches zero on the last of its frames. */
                if (v->fade_left <= n) {
                    n = v->fade_left;
                    last = true;
                }
                g.f0 = (float)(v->fade_left - 1) * v->fade_step;
                g.df = v->fade_step;
                env = true;
            }
        }

        uint32_t m = safe_frames(v, n);
        if (m == 0) {
            n = 1;
            frame_checked(v, out_l + off, out_r + off, &g, env);
        } else {
            n = m;
            uint32_t k = v->pos;
            uint64_t fr = v->frac;
            row[interp * 2 + env](out_l + off, out_r + off, v->src, v->src1, base, v->step_int,
                                  v->step_frac, &g, n, &k, &fr);
            v->pos = k;
            v->frac = fr;
        }
        off += n;
        if (v->loop && v->pos >= v->frames)
            v->pos %= v->frames;
        if (v->rel_left != MIX_NO_RELEASE)
            v->rel_left -= n;
        v->attack_t = v->attack - v->attack_t < n ? v->attack : v->attack_t + n;
        if (g.df > 0) {
            if (last && n == v->fade_left)
                return false;
            v->fade_left -= n;
        }
    }
    if (!v->loop && v->pos >= v->frames)
        return false;
    return v->rel_left != 0;
}

uint64_t mixer_interp_played(const struct voice *v)
{
    u128 len = (u128)v->frames << 64, s = step_of(v);
    return (uint64_t)((len + s - 1) / s);
}
