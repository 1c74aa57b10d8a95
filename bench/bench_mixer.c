/* bench_mixer.c - how fast does the mixer play 32 voices out of memory?
 *
 * 32 stereo voices, each playing its own 10 s buffer at 48 kHz (123 MB in
 * all, far more than any last-level cache, as on a stage where every pad
 * holds a different sample), rendered in JACK-sized periods of 64 frames by
 * the real engine_process().  A voice that ends is re-triggered at once, so
 * 32 always sound; their start times are staggered so that they read from 32
 * different places, not in lockstep.
 *
 * The same bytes are then summed in the same access pattern by a plain loop:
 * the memory-read floor, what the mixer would cost if reading the samples
 * were all it did.  The ratio of the two says how much the mixer adds on top
 * of the memory traffic it cannot avoid.
 *
 * It prints numbers and never fails on timing.  Build with
 * -Dbuildtype=release for meaningful numbers (scripts/bench.sh).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "messages.h"
#include "ring.h"
#include "sample.h"

#define RATE 48000u
#define VOICES 32u
#define MIN_FRAMES (10u * RATE) /* at least 10 s per buffer */
#define PERIOD 64u
#define BATCH 4096u       /* periods between two clock readings */
#define MIN_SECONDS 1.0   /* measure at least this long */
#define LLC_FACTOR 3      /* all buffers together: at least this many LLCs */
#define PACED_SECONDS 3.0 /* the paced run: periods at the real rate */

_Static_assert(MIN_FRAMES % PERIOD == 0, "a voice must end exactly at a period boundary");

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

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

/* Noise at -20 dBFS: no denormals, no zeros the hardware could shortcut. */
static void fill(struct sample_buffer *b, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 1;
    for (uint32_t c = 0; c < b->channels; c++) {
        float *p = sample_buffer_channel(b, c);
        for (uint32_t i = 0; i < b->frames; i++) {
            x = x * 1664525u + 1013904223u;
            p[i] = ((float)(x >> 8) / 16777216.0f - 0.5f) * 0.2f;
        }
    }
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

/* The floor's inner loop: the mixer's without the gain.  restrict as in the
 * mixer, so both get the same vectorisation. */
static void sum_period(float *restrict l, float *restrict r, const float *restrict a,
                       const float *restrict b)
{
    for (uint32_t j = 0; j < PERIOD; j++) {
        l[j] += a[j];
        r[j] += b[j];
    }
}

static void push(struct ring *r, const struct ctl_msg *m)
{
    if (!ring_push(r, m))
        die("a control ring is full");
}

static void play(struct engine *e, uint32_t slot)
{
    struct ctl_msg m = {.type = CTL_PLAY, .id = slot, .velocity = 0.8f};
    push(&e->cmd, &m);
}

/* Period p's place on JACK's microsecond clock, as audio.c passes it. */
static struct engine_clock clock_of(uint64_t p)
{
    struct engine_clock c = {.t0 = p * PERIOD * 1000000u / RATE,
                             .t1 = (p + 1) * PERIOD * 1000000u / RATE};
    return c;
}

struct result {
    uint64_t periods;
    double seconds;
};

static double ns_per_voice_frame(struct result r)
{
    return r.seconds * 1e9 / ((double)r.periods * PERIOD * VOICES);
}

int main(void)
{
    static struct engine eng;
    struct engine *e = &eng;
    struct sample_buffer *bufs[VOICES];
    static float out_l[PERIOD], out_r[PERIOD];

    if (engine_init(e, VOICES, VOICES, RATE) < 0) /* one slot per voice */
        die("engine_init failed");

    /* Buffers large enough that together they dwarf the last-level cache. */
    long llc = llc_bytes();
    uint64_t want = (uint64_t)llc * LLC_FACTOR / (VOICES * 2 * sizeof(float));
    want = (want + PERIOD - 1) / PERIOD * PERIOD;
    if (want > 60u * 60u * RATE)
        want = 60u * 60u * RATE; /* an hour per voice is plenty */
    const uint32_t frames = want > MIN_FRAMES ? (uint32_t)want : MIN_FRAMES;
    const uint32_t periods_per_buffer = frames / PERIOD;

    size_t total = 0;
    for (uint32_t k = 0; k < VOICES; k++) {
        if (!engine_buffer_reserve(e))
            die("engine_buffer_reserve refused a buffer");
        bufs[k] = sample_buffer_new(frames, 2, RATE);
        if (!bufs[k])
            die("out of memory");
        fill(bufs[k], k);
        sample_buffer_prefault(bufs[k]);
        total += bufs[k]->bytes;
    }

    printf("bench_mixer: %u stereo voices over %u distinct buffers of %u frames, %.1f MiB in all",
           VOICES, VOICES, frames, (double)total / 1048576);
    if (llc > 0)
        printf(" (last-level cache %.1f MiB%s)", (double)llc / 1048576,
               (size_t)llc * 2 > total ? ": NOT much larger, numbers flattered" : "");
    printf("; periods of %u frames at %u Hz\n", PERIOD, RATE);

    /* Publish the buffers through the load ring, as the loader does. */
    uint64_t seq = 0;
    for (uint32_t k = 0; k < VOICES; k++) {
        if (ring_count(&e->load) == ring_capacity(&e->load))
            engine_process(e, out_l, out_r, PERIOD, (struct engine_clock){0, 0});
        struct ctl_msg m = {
            .type = CTL_LOAD, .id = k, .seq = ++seq, .buf = bufs[k], .velocity = 1.0f};
        push(&e->load, &m);
    }
    engine_process(e, out_l, out_r, PERIOD, (struct engine_clock){0, 0});
    struct event ev;
    uint32_t loaded = 0;
    while (ring_pop(&e->events, &ev))
        loaded += ev.type == EV_LOADED;
    if (loaded != VOICES)
        die("not every buffer was loaded");

    /* ---- the mixer ---------------------------------------------------- */

    /* Voice k starts at period k * stagger, then every periods_per_buffer
     * periods: it plays periods [start, start + periods_per_buffer) and is
     * re-triggered for the period right after its last one. */
    const uint64_t stagger = periods_per_buffer / VOICES;
    uint64_t next_start[VOICES];
    for (uint32_t k = 0; k < VOICES; k++)
        next_start[k] = (uint64_t)k * stagger;

    uint64_t p = 0;
    /* Warm-up, untimed: until all 32 sound, then one more buffer's length. */
    const uint64_t warm = (uint64_t)VOICES * stagger + periods_per_buffer;
    struct result mix = {0, 0};
    for (;;) {
        bool timing = p >= warm;
        double t0 = now();
        for (uint32_t i = 0; i < BATCH; i++, p++) {
            for (uint32_t k = 0; k < VOICES; k++) {
                if (next_start[k] == p) {
                    play(e, k);
                    next_start[k] += periods_per_buffer;
                }
            }
            /* No timed requests here: the clock does not matter. */
            engine_process(e, out_l, out_r, PERIOD, (struct engine_clock){0, 0});
            use(out_l, out_r);
        }
        double t1 = now();
        if (timing) {
            mix.periods += BATCH;
            mix.seconds += t1 - t0;
            if (mix.seconds >= MIN_SECONDS)
                break;
        }
    }
    /* ---- the same, paced as under JACK ---------------------------------
     * One period every 64 / 48000 s, the thread asleep in between, timing
     * only the engine_process() calls: what the callback really costs when
     * each voice reads a few cache lines per period and the caches and
     * prefetchers have gone cold in between (the loop above runs the
     * periods back to back, which flatters it). */
    struct result paced = {0, 0};
    {
        struct timespec tick;
        clock_gettime(CLOCK_MONOTONIC, &tick);
        const long period_ns = (long)(1e9 * PERIOD / RATE);
        for (uint64_t n = 0; n < (uint64_t)(PACED_SECONDS * RATE / PERIOD); n++, p++) {
            for (uint32_t k = 0; k < VOICES; k++) {
                if (next_start[k] == p) {
                    play(e, k);
                    next_start[k] += periods_per_buffer;
                }
            }
            double t0 = now();
            engine_process(e, out_l, out_r, PERIOD, clock_of(p));
            double t1 = now();
            use(out_l, out_r);
            paced.periods++;
            paced.seconds += t1 - t0;
            tick.tv_nsec += period_ns;
            if (tick.tv_nsec >= 1000000000L) {
                tick.tv_nsec -= 1000000000L;
                tick.tv_sec++;
            }
            clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &tick, NULL);
        }
    }

    uint32_t active = atomic_load(&e->stats.voices_active);
    float peak = 0;
    for (uint32_t i = 0; i < PERIOD; i++)
        peak = out_l[i] > peak ? out_l[i] : peak;

    /* ---- the memory-read floor: same bytes, same order, plain sums ----- */

    uint32_t pos[VOICES];
    for (uint32_t k = 0; k < VOICES; k++) {
        /* Where the mixer's voice k would be at period p. */
        uint64_t since = p - (uint64_t)k * stagger;
        pos[k] = (uint32_t)(since % periods_per_buffer) * PERIOD;
    }
    struct result floor_ = {0, 0};
    double checksum = 0;
    for (uint64_t batches = 0;; batches++) {
        double t0 = now();
        for (uint32_t i = 0; i < BATCH; i++) {
            memset(out_l, 0, sizeof(out_l));
            memset(out_r, 0, sizeof(out_r));
            for (uint32_t k = 0; k < VOICES; k++) {
                sum_period(out_l, out_r, bufs[k]->ch[0] + pos[k], bufs[k]->ch[1] + pos[k]);
                pos[k] += PERIOD;
                if (pos[k] >= frames)
                    pos[k] = 0;
            }
            use(out_l, out_r);
        }
        double t1 = now();
        checksum += out_l[0] + out_r[0];
        if (batches == 0)
            continue; /* warm-up */
        floor_.periods += BATCH;
        floor_.seconds += t1 - t0;
        if (floor_.seconds >= MIN_SECONDS)
            break;
    }

    double m = ns_per_voice_frame(mix), f = ns_per_voice_frame(floor_);
    printf("mixer:        %7.3f ns per voice-frame  (%llu periods in %.2f s; %u voices active, "
           "peak %.2f)\n",
           m, (unsigned long long)mix.periods, mix.seconds, active, (double)peak);
    printf("memory floor: %7.3f ns per voice-frame  (%llu periods in %.2f s; checksum %.3g)\n", f,
           (unsigned long long)floor_.periods, floor_.seconds, checksum);
    printf("ratio:        %7.2f x the floor\n", m / f);
    printf("mixer, paced: %7.3f ns per voice-frame  (%llu periods one per %.3f ms, asleep in "
           "between, as under JACK)\n",
           ns_per_voice_frame(paced), (unsigned long long)paced.periods, 1e3 * PERIOD / RATE);
    printf("32 voices at %u Hz use %.2f%% of one core\n", RATE, m * VOICES * RATE / 1e9 * 100.0);

    engine_destroy(e);
    return 0;
}
