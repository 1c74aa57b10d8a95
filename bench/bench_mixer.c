/* bench_mixer.c - how fast does the mixer play 32 voices out of memory?
 *
 * 32 stereo voices, each playing its own buffer (together at least three
 * times the last-level cache, and at least 10 s at 48 kHz each, as on a
 * stage where every pad holds a different sample), rendered in JACK-sized
 * periods of 64 frames by the real engine_process().  The buffers are what
 * the daemon builds for a 16-bit 48 kHz WAV: SAMPLE_S16, the integers
 * interleaved (common/sample.h).  A voice that ends is re-triggered at
 * once, so 32 always sound; their start times are staggered so that they
 * read from 32 different places, not in lockstep.
 *
 * The same bytes are then summed in the same access pattern by a plain loop:
 * the memory-read floor, what the mixer would cost if reading the samples
 * (and converting them to float) were all it did.  The ratio of the two says
 * how much the mixer adds on top of the memory traffic it cannot avoid.
 *
 * Each measurement is also made, in the same run, on a second engine whose
 * buffers hold the same samples as planar floats (SAMPLE_F32, what a 24-bit
 * or converted file gets, and what 16-bit files got before), alternating
 * between the two so that both see the same moments of the machine: only
 * ratios measured in the same run mean much on a VM whose speed drifts.
 *
 * A third engine, in the same turns, plays the same 16-bit buffers at
 * rate 1.5 (the interpolating path, daemon/mixer_interp.c): 32 /loop voices,
 * started staggered like the others and never re-triggered.
 *
 * Three measurements:
 *  - back to back: periods rendered one after the other, REPS stretches of
 *    each format in turn; the medians are printed;
 *  - the memory floor, likewise;
 *  - paced as under JACK: one period every 64 / 48000 s with the thread
 *    asleep in between, timing only the engine_process() calls, in blocks
 *    of PACED_BLOCK periods alternating between the formats; the median of
 *    the blocks is printed.  This is what the daemon's callback costs.
 *
 * Then the stage's worst case of that path, on its own: 256 voices (the
 * engine's most), each looping its own 1 s 16-bit stereo buffer at rate 1.5
 * with a pan and a 2 s attack (so the envelope runs all along), paced, the
 * time of one engine_process() of 64 frames; in the same turns the same
 * voices without pan and attack, to show what the envelope costs.
 *
 * It prints numbers and never fails on timing.  Build with
 * -Dbuildtype=release for meaningful numbers (scripts/bench.sh).  The lines
 * "mixer:", "memory floor:" and "mixer, paced:" are the daemon's format, and
 * bench/run_bench.py reads them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "engine.h"
#include "messages.h"
#include "ring.h"
#include "sample_alloc.h"

#define RATE 48000u
#define VOICES 32u
#define MIN_FRAMES (10u * RATE) /* at least 10 s per buffer */
#define PERIOD 64u
#define BATCH 4096u        /* periods between two clock readings */
#define REPS 5             /* back-to-back stretches of each format */
#define REP_SECONDS 0.25   /* each at least this long */
#define LLC_FACTOR 3       /* all buffers together: at least this many LLCs */
#define PACED_SECONDS 12.0 /* the paced run, all engines together */
#define PACED_BLOCK 150u   /* periods of one format in a row (0.2 s) */
#define PACED_SKIP 2u      /* first periods of a block left out (format switch) */
#define NFORMATS 2         /* [0] the daemon's SAMPLE_S16, [1] SAMPLE_F32 */
#define NENGINES 3         /* and [2] SAMPLE_S16 at rate 1.5 */
#define FAST_RATE 1.5

_Static_assert(MIN_FRAMES % PERIOD == 0, "a voice must end exactly at a period boundary");

static const char *const format_name[NFORMATS] = {"16-bit interleaved", "float planar"};

/* Keeps the compiler from dropping work whose result nobody reads. */
static inline void use(const float *l, const float *r)
{
    __asm__ volatile("" : : "r"(l), "r"(r) : "memory");
}

static void die(const char *what)
{
    fprintf(stderr, "bench_mixer: %s\n", what);
    exit(1);
}

/* Noise at -20 dBFS: no denormals, no zeros the hardware could shortcut.
 * The same integers for both formats of buffer `seed`. */
static int16_t noise(uint32_t *x)
{
    *x = *x * 1664525u + 1013904223u;
    int32_t v = ((int32_t)(*x >> 16) - 32768) / 10; /* -3276 .. 3276 */
    return (int16_t)(v ? v : 1);
}

static void fill(struct sample_buffer *b, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 1;
    if (b->format == SAMPLE_S16) {
        int16_t *p = sample_buffer_s16(b);
        for (size_t i = 0; i < (size_t)b->frames * b->channels; i++)
            p[i] = noise(&x);
        return;
    }
    for (uint32_t i = 0; i < b->frames; i++)
        for (uint32_t c = 0; c < b->channels; c++)
            sample_buffer_channel(b, c)[i] = (float)noise(&x) / 32768.0f;
}

/* Size of the last-level cache in bytes, or 0 if unknown.  sysfs first:
 * glibc's sysconf() reports nonsense under some hypervisors. */
static long llc_bytes(void)
{
    long best = 0;
    int best_level = 0;
    for (int i = 0; i < 16; i++) {
        char path[96];
        int level = 0;
        long size = 0;
        char unit = 0;
        snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu0/cache/index%d/level", i);
        FILE *f = fopen(path, "r");
        if (!f)
            break;
        if (fscanf(f, "%d", &level) != 1)
            level = 0;
        fclose(f);
        snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu0/cache/index%d/size", i);
        f = fopen(path, "r");
        if (!f)
            continue;
        if (fscanf(f, "%ld%c", &size, &unit) >= 1) {
            size *= unit == 'K' ? 1024 : unit == 'M' ? 1024 * 1024 : 1;
            if (level > best_level || (level == best_level && size > best)) {
                best_level = level;
                best = size;
            }
        }
        fclose(f);
    }
    if (best > 0)
        return best;
    best = sysconf(_SC_LEVEL3_CACHE_SIZE);
    if (best <= 0)
        best = sysconf(_SC_LEVEL2_CACHE_SIZE);
    return best > 0 ? best : 0;
}

/* The floor's inner loops: the mixer's without the gain (for 16-bit, the
 * conversion stays: the floor reads the same bytes and makes the same
 * floats).  restrict as in the mixer, so both get the same vectorisation. */
static void sum_period_s16(float *restrict l, float *restrict r, const int16_t *restrict s)
{
    for (uint32_t j = 0; j < PERIOD; j++) {
        l[j] += (float)s[2 * j];
        r[j] += (float)s[2 * j + 1];
    }
}

static void sum_period_f32(float *restrict l, float *restrict r, const float *restrict a,
                           const float *restrict b)
{
    for (uint32_t j = 0; j < PERIOD; j++) {
        l[j] += a[j];
        r[j] += b[j];
    }
}

/* One engine with its 32 buffers and voices. */
struct bench {
    struct engine e;
    struct sample_buffer *bufs[VOICES];
    uint64_t next_start[VOICES]; /* period at which voice k is (re)triggered */
    uint64_t p;                  /* periods rendered */
    double rate;                 /* 1: one-shots re-triggered; else loops at this rate */
    uint32_t pos[VOICES];        /* the floor's place in each buffer */
    size_t total;                /* bytes of all buffers */
    float out_l[PERIOD], out_r[PERIOD];
};

static uint32_t frames;             /* per buffer */
static uint32_t periods_per_buffer; /* frames / PERIOD */
static uint64_t stagger;            /* periods between two voices' starts */

static void publish(struct engine *e, const struct ctl_msg *m)
{
    if (!engine_publish(e, m))
        die("the load ring is full");
}

static void send(struct engine *e, const struct ctl_msg *m)
{
    if (engine_send(e, m, 0) != 0)
        die("the command ring is full");
}

/* Period p's place on JACK's microsecond clock, as audio.c passes it. */
static struct engine_clock clock_of(uint64_t p)
{
    struct engine_clock c = {.t0 = p * PERIOD * 1000000u / RATE,
                             .t1 = (p + 1) * PERIOD * 1000000u / RATE};
    return c;
}

static void bench_init(struct bench *b, uint32_t format, double rate)
{
    b->rate = rate;
    struct engine *e = &b->e;
    if (engine_init(e, VOICES, VOICES, 1, RATE) < 0) /* one slot per voice */
        die("engine_init failed");
    for (uint32_t k = 0; k < VOICES; k++) {
        if (!engine_buffer_reserve(e))
            die("engine_buffer_reserve refused a buffer");
        b->bufs[k] = sample_buffer_new_format(frames, 2, RATE, format);
        if (!b->bufs[k])
            die("out of memory");
        fill(b->bufs[k], k);
        sample_buffer_prefault(b->bufs[k]);
        b->total += b->bufs[k]->bytes;
    }
    /* Publish the buffers through the load ring, as the loader does. */
    uint64_t seq = 0;
    for (uint32_t k = 0; k < VOICES; k++) {
        if (engine_loads_waiting(e) == ENGINE_LOAD_RING)
            engine_process(e, (float *[]){b->out_l, b->out_r}, PERIOD, (struct engine_clock){0});
        struct ctl_msg m = {
            .type = CTL_LOAD, .id = k, .seq = ++seq, .buf = b->bufs[k], .velocity = 1.0f};
        publish(e, &m);
    }
    engine_process(e, (float *[]){b->out_l, b->out_r}, PERIOD, (struct engine_clock){0});
    for (uint32_t k = 0; k < VOICES; k++)
        if (e->slots[k].buf != b->bufs[k])
            die("not every buffer was loaded");
    /* Voice k starts at period k * stagger, then every periods_per_buffer
     * periods: it plays periods [start, start + periods_per_buffer) and is
     * re-triggered for the period right after its last one. */
    for (uint32_t k = 0; k < VOICES; k++)
        b->next_start[k] = (uint64_t)k * stagger;
}

/* Renders the next period (re-triggering the voices due). */
static void bench_period(struct bench *b)
{
    for (uint32_t k = 0; k < VOICES; k++) {
        if (b->next_start[k] == b->p) {
            struct ctl_msg m = {.type = CTL_PLAY, .id = k, .velocity = 0.8f};
            if (b->rate != 1.0) {
                m.type = CTL_LOOP;
                m.play.keys = PLAY_RATE;
                m.play.rate = b->rate;
            }
            send(&b->e, &m);
            b->next_start[k] = b->rate != 1.0 ? UINT64_MAX : b->next_start[k] + periods_per_buffer;
        }
    }
    engine_process(&b->e, (float *[]){b->out_l, b->out_r}, PERIOD, clock_of(b->p));
    use(b->out_l, b->out_r);
    b->p++;
}

/* Back to back for at least `seconds`: seconds per period. */
static double run_back_to_back(struct bench *b, double seconds)
{
    uint64_t n = 0;
    double spent = 0;
    while (spent < seconds) {
        double t0 = bench_now();
        for (uint32_t i = 0; i < BATCH; i++)
            bench_period(b);
        spent += bench_now() - t0;
        n += BATCH;
    }
    return spent / (double)n;
}

/* The floor: where the mixer's voice k is now, read on in the same order. */
static void floor_start(struct bench *b)
{
    for (uint32_t k = 0; k < VOICES; k++) {
        uint64_t since = b->p - (uint64_t)k * stagger;
        b->pos[k] = (uint32_t)(since % periods_per_buffer) * PERIOD;
    }
}

static double run_floor(struct bench *b, double seconds, double *checksum)
{
    uint64_t n = 0;
    double spent = 0;
    while (spent < seconds) {
        double t0 = bench_now();
        for (uint32_t i = 0; i < BATCH; i++) {
            memset(b->out_l, 0, sizeof(b->out_l));
            memset(b->out_r, 0, sizeof(b->out_r));
            for (uint32_t k = 0; k < VOICES; k++) {
                const struct sample_buffer *s = b->bufs[k];
                if (s->format == SAMPLE_S16)
                    sum_period_s16(b->out_l, b->out_r, s->s16 + 2 * (size_t)b->pos[k]);
                else
                    sum_period_f32(b->out_l, b->out_r, s->ch[0] + b->pos[k], s->ch[1] + b->pos[k]);
                b->pos[k] += PERIOD;
                if (b->pos[k] >= frames)
                    b->pos[k] = 0;
            }
            use(b->out_l, b->out_r);
        }
        spent += bench_now() - t0;
        n += BATCH;
        *checksum += b->out_l[0] + b->out_r[0];
    }
    return spent / (double)n;
}

static double median(const double *v, size_t n)
{
    double *t = malloc(n * sizeof(*t));
    if (!t)
        die("out of memory");
    memcpy(t, v, n * sizeof(*t));
    qsort(t, n, sizeof(*t), bench_cmp_double);
    double m = n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
    free(t);
    return m;
}

/* ---- 256 voices at rate 1.5 (the "stage" row) ------------------------- */
#define STAGE_VOICES 256u
#define STAGE_PERIODS 1200u /* paced, 1.6 s: inside the 2 s attack */
#define STAGE_BLOCK 100u

struct stage {
    struct engine e;
    float out_l[PERIOD], out_r[PERIOD];
    uint64_t p;
};

static void stage_init(struct stage *b, bool env)
{
    struct engine *e = &b->e;
    if (engine_init(e, STAGE_VOICES, STAGE_VOICES, 1, RATE) < 0)
        die("engine_init failed");
    uint64_t seq = 0;
    for (uint32_t k = 0; k < STAGE_VOICES; k++) {
        if (!engine_buffer_reserve(e))
            die("engine_buffer_reserve refused a buffer");
        struct sample_buffer *buf = sample_buffer_new_format(RATE, 2, RATE, SAMPLE_S16);
        if (!buf)
            die("out of memory");
        fill(buf, 1000 + k);
        sample_buffer_prefault(buf);
        if (engine_loads_waiting(e) == ENGINE_LOAD_RING)
            engine_process(e, (float *[]){b->out_l, b->out_r}, PERIOD, (struct engine_clock){0});
        struct ctl_msg m = {.type = CTL_LOAD, .id = k, .seq = ++seq, .buf = buf, .velocity = 1.0f};
        publish(e, &m);
    }
    engine_process(e, (float *[]){b->out_l, b->out_r}, PERIOD, (struct engine_clock){0});
    for (uint32_t k = 0; k < STAGE_VOICES; k++) {
        struct ctl_msg m = {.type = CTL_LOOP, .id = k, .velocity = 0.1f};
        m.play.keys = PLAY_RATE;
        m.play.rate = FAST_RATE;
        if (env) {
            m.play.keys |= PLAY_PAN | PLAY_ATTACK | PLAY_RELEASE;
            m.play.pan = (float)k / 127.5f - 1.0f;
            m.play.attack = 2.0f;
            m.play.release = 0.5f;
        }
        send(e, &m);
    }
    b->p = 1;
}

/* Paced, the two engines taking turns in blocks: seconds per period, median
 * of the periods, into out[0] (with envelopes) and out[1] (without). */
static void stage_run(double out[2], uint32_t active[2])
{
    static struct stage st[2];
    stage_init(&st[0], true);
    stage_init(&st[1], false);
    double *t[2] = {malloc(STAGE_PERIODS * sizeof(double)), malloc(STAGE_PERIODS * sizeof(double))};
    if (!t[0] || !t[1])
        die("out of memory");
    struct timespec tick;
    clock_gettime(CLOCK_MONOTONIC, &tick);
    const long period_ns = (long)(1e9 * PERIOD / RATE);
    uint32_t n[2] = {0, 0};
    for (uint32_t r = 0; r < STAGE_PERIODS / STAGE_BLOCK; r++) {
        for (int q = 0; q < 2; q++) {
            int f = (int)((r + (uint32_t)q) % 2);
            struct stage *b = &st[f];
            for (uint32_t i = 0; i < STAGE_BLOCK; i++) {
                double t0 = bench_now();
                engine_process(&b->e, (float *[]){b->out_l, b->out_r}, PERIOD, clock_of(b->p));
                double t1 = bench_now();
                use(b->out_l, b->out_r);
                b->p++;
                if (i >= PACED_SKIP)
                    t[f][n[f]++] = t1 - t0;
                bench_pace(&tick, period_ns);
            }
        }
    }
    for (int f = 0; f < 2; f++) {
        out[f] = median(t[f], n[f]);
        active[f] = atomic_load(&st[f].e.stats.voices_active);
        engine_destroy(&st[f].e);
        free(t[f]);
    }
}

/* Seconds per period -> ns per voice-frame. */
static double ns(double seconds_per_period)
{
    return seconds_per_period * 1e9 / ((double)PERIOD * VOICES);
}

int main(void)
{
    static struct bench bench[NENGINES];

    /* Buffers large enough that together, in the daemon's format, they dwarf
     * the last-level cache.  The float ones hold the same frames. */
    long llc = llc_bytes();
    uint64_t want = (uint64_t)llc * LLC_FACTOR / (VOICES * sample_frame_bytes(SAMPLE_S16, 2));
    want = (want + PERIOD - 1) / PERIOD * PERIOD;
    if (want > 60u * 60u * RATE)
        want = 60u * 60u * RATE; /* an hour per voice is plenty */
    frames = want > MIN_FRAMES ? (uint32_t)want : MIN_FRAMES;
    periods_per_buffer = frames / PERIOD;
    stagger = periods_per_buffer / VOICES;

    bench_init(&bench[0], SAMPLE_S16, 1.0);
    bench_init(&bench[1], SAMPLE_F32, 1.0);
    bench_init(&bench[2], SAMPLE_S16, FAST_RATE);

    printf("bench_mixer: %u stereo voices over %u distinct buffers of %u frames (%.1f s), "
           "%.1f MiB in all as 16-bit (%.1f MiB as floats)",
           VOICES, VOICES, frames, (double)frames / RATE, (double)bench[0].total / 1048576,
           (double)bench[1].total / 1048576);
    if (llc > 0)
        printf(" (last-level cache %.1f MiB%s)", (double)llc / 1048576,
               (size_t)llc * 2 > bench[0].total ? ": NOT much larger, numbers flattered" : "");
    printf("; periods of %u frames at %u Hz\n", PERIOD, RATE);

    /* Warm-up, untimed: until all 32 sound, then one more buffer's length. */
    const uint64_t warm = (uint64_t)VOICES * stagger + periods_per_buffer;
    for (int f = 0; f < NENGINES; f++)
        while (bench[f].p < warm)
            bench_period(&bench[f]);

    /* ---- back to back, the formats taking turns ----------------------- */
    double mix[NENGINES][REPS], mix_ratio[REPS];
    for (int r = 0; r < REPS; r++) {
        for (int q = 0; q < NENGINES; q++) {
            int f = (r + q) % NENGINES; /* alternate which goes first */
            mix[f][r] = run_back_to_back(&bench[f], REP_SECONDS);
        }
        mix_ratio[r] = mix[0][r] / mix[1][r];
    }

    /* ---- paced as under JACK -------------------------------------------
     * One period every 64 / 48000 s, the thread asleep in between, timing
     * only the engine_process() calls: what the callback really costs when
     * each voice reads a few cache lines per period and the caches and
     * prefetchers have gone cold in between (the loop above runs the
     * periods back to back, which flatters it).  Blocks of PACED_BLOCK
     * periods take turns between the formats; the first PACED_SKIP of each
     * block are left out, so a switch costs neither. */
    const uint32_t rounds =
        (uint32_t)(PACED_SECONDS * RATE / PERIOD / (PACED_BLOCK * NENGINES) + 0.5);
    double *paced[NENGINES], *paced_ratio = malloc(rounds * sizeof(double));
    for (int f = 0; f < NENGINES; f++)
        paced[f] = malloc(rounds * sizeof(double));
    if (!paced[0] || !paced[1] || !paced[2] || !paced_ratio)
        die("out of memory");
    {
        struct timespec tick;
        clock_gettime(CLOCK_MONOTONIC, &tick);
        const long period_ns = (long)(1e9 * PERIOD / RATE);
        for (uint32_t r = 0; r < rounds; r++) {
            for (int q = 0; q < NENGINES; q++) {
                int f = (int)((r + (uint32_t)q) % NENGINES);
                double spent = 0;
                for (uint32_t i = 0; i < PACED_BLOCK; i++) {
                    double t0 = bench_now();
                    bench_period(&bench[f]);
                    double t1 = bench_now();
                    if (i >= PACED_SKIP)
                        spent += t1 - t0;
                    bench_pace(&tick, period_ns);
                }
                paced[f][r] = spent / (double)(PACED_BLOCK - PACED_SKIP);
            }
            paced_ratio[r] = paced[0][r] / paced[1][r];
        }
    }

    uint32_t active[NENGINES];
    float peak[NENGINES];
    for (int f = 0; f < NENGINES; f++) {
        active[f] = atomic_load(&bench[f].e.stats.voices_active);
        peak[f] = 0;
        for (uint32_t i = 0; i < PERIOD; i++)
            peak[f] = bench[f].out_l[i] > peak[f] ? bench[f].out_l[i] : peak[f];
    }

    /* ---- the memory-read floor: same bytes, same order, plain sums ----- */
    double flo[NFORMATS][REPS], checksum = 0;
    for (int f = 0; f < NFORMATS; f++) {
        floor_start(&bench[f]);
        run_floor(&bench[f], REP_SECONDS, &checksum); /* warm-up */
    }
    for (int r = 0; r < REPS; r++)
        for (int q = 0; q < NFORMATS; q++) {
            int f = (r + q) % NFORMATS;
            flo[f][r] = run_floor(&bench[f], REP_SECONDS, &checksum);
        }

    double m = ns(median(mix[0], REPS)), fl = ns(median(flo[0], REPS));
    double pc = ns(median(paced[0], rounds));
    printf("mixer:        %7.3f ns per voice-frame  (16-bit interleaved buffers, as the daemon "
           "builds them for a 16-bit WAV; median of %d x %.2f s; %u voices active, peak %.2f)\n",
           m, REPS, REP_SECONDS, active[0], (double)peak[0]);
    printf("memory floor: %7.3f ns per voice-frame  (the same bytes summed; checksum %.3g)\n", fl,
           checksum);
    printf("ratio:        %7.2f x the floor\n", m / fl);
    printf("mixer, paced: %7.3f ns per voice-frame  (median of %u blocks of %u periods, one per "
           "%.3f ms, asleep in between, as under JACK)\n",
           pc, rounds, PACED_BLOCK, 1e3 * PERIOD / RATE);
    printf("32 voices at %u Hz use %.2f%% of one core (back to back)\n", RATE,
           m * VOICES * RATE / 1e9 * 100.0);
    printf("same run, %s buffers of the same samples (%u voices active, peak %.2f):\n",
           format_name[1], active[1], (double)peak[1]);
    printf("  float mixer:        %7.3f ns per voice-frame; 16-bit / float %.2f (median of the "
           "%d pairs)\n",
           ns(median(mix[1], REPS)), median(mix_ratio, REPS), REPS);
    printf("  float memory floor: %7.3f ns per voice-frame\n", ns(median(flo[1], REPS)));
    printf("  float mixer, paced: %7.3f ns per voice-frame; 16-bit / float %.2f (median of the "
           "%u pairs of blocks)\n",
           ns(median(paced[1], rounds)), median(paced_ratio, rounds), rounds);

    printf("mixer, rate %.1f: %7.3f ns per voice-frame back to back, %.3f paced  (the same 16-bit "
           "buffers as %u loops, interpolated; %u voices active, peak %.2f)\n",
           FAST_RATE, ns(median(mix[2], REPS)), ns(median(paced[2], rounds)), VOICES, active[2],
           (double)peak[2]);

    for (int f = 0; f < NENGINES; f++) {
        engine_destroy(&bench[f].e);
        free(paced[f]);
    }
    free(paced_ratio);

    double stage[2];
    uint32_t stage_active[2];
    stage_run(stage, stage_active);
    printf("stage, %u voices at rate %.1f with pan and attack: %.1f us per period of %u frames "
           "(%.3f ns per voice-frame, paced, median; %u active); without pan and attack %.1f us "
           "(%.3f ns)\n",
           STAGE_VOICES, FAST_RATE, stage[0] * 1e6, PERIOD,
           stage[0] * 1e9 / ((double)PERIOD * STAGE_VOICES), stage_active[0], stage[1] * 1e6,
           stage[1] * 1e9 / ((double)PERIOD * STAGE_VOICES));
    return 0;
}
