/* test_decode.c - decode_file(): exact PCM pass-through, sample-rate
 * conversion, formats, and every refusal.
 *
 * Fixtures are written at run time with libsndfile into a private mkdtemp()
 * directory, removed again by the group teardown.
 *
 * sf_open_fd() is interposed (defined here, forwarding to libsndfile's via
 * dlsym(RTLD_NEXT)) so a test can make a file report an unknown length
 * (SF_COUNT_MAX), which no regular file does on its own; that drives the
 * decoder's grow-as-you-go path with real data.
 *
 * pthread_create() and pthread_join() are interposed the same way, to see
 * the helper thread of a conversion (its stack size, its signal mask, that
 * it is always joined) and to make its creation fail, which forces the
 * sequential path: the reference the pipelined output must match bit for
 * bit, the two-halves output within float rounding, and whose error
 * reasons both must give word for word.
 *
 * sf_open_virtual(), sf_seek() and pread64() are interposed for the
 * two-halves conversion, which opens the file a second time through
 * libsndfile's virtual I/O (reading with pread) and seeks that handle to
 * the middle: to see that it did, and to make each step fail.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sndfile.h>
#include <soxr.h>

#include "decode.h"
#include "sample_alloc.h"
#include "sample_check.h"

/* What every load here passes: the production default, reset after each test. */
static struct decode_options opts;

#define PI 3.14159265358979323846

static char tmpdir[] = "/tmp/test_decode.XXXXXX";
static char errbuf[256];

/* ---- sf_open_fd interposition ------------------------------------------- */

static bool fake_unknown_length;
static sf_count_t fake_extra_frames; /* added to the reported length */
static bool fake_unseekable;         /* reported as not seekable */

SNDFILE *sf_open_fd(int fd, int mode, SF_INFO *info, int close_desc)
{
    static SNDFILE *(*real)(int, int, SF_INFO *, int);
    if (!real) {
        void *sym = dlsym(RTLD_NEXT, "sf_open_fd");
        if (!sym)
            abort();
        memcpy(&real, &sym, sizeof(sym));
    }
    SNDFILE *sf = real(fd, mode, info, close_desc);
    if (sf && fake_unknown_length)
        info->frames = SF_COUNT_MAX;
    else if (sf)
        info->frames += fake_extra_frames;
    if (sf && fake_unseekable)
        info->seekable = 0;
    return sf;
}

/* ---- pthread_create / pthread_join interposition ------------------------ */

static bool fake_thread_failure; /* pthread_create fails with EAGAIN */
static int fake_thread_failures; /* ... and so do the next this many */
static int threads_created;      /* successful pthread_create calls */
static int threads_joined;       /* successful pthread_join calls */
static atomic_int threads_running;
static size_t thread_stack;  /* stack size the last thread was given (0: default) */
static sigset_t thread_mask; /* the last thread's signal mask, as it started */

struct thread_start {
    void *(*fn)(void *);
    void *arg;
};

static void *thread_trampoline(void *p)
{
    struct thread_start ts = *(struct thread_start *)p;
    free(p);
    pthread_sigmask(SIG_BLOCK, NULL, &thread_mask);
    atomic_fetch_add(&threads_running, 1);
    void *r = ts.fn(ts.arg);
    atomic_fetch_sub(&threads_running, 1);
    return r;
}

static void *next_symbol(const char *name)
{
    void *sym = dlsym(RTLD_NEXT, name);
    if (!sym)
        abort();
    return sym;
}

int pthread_create(pthread_t *thread, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
    static int (*real)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
    if (!real) {
        void *sym = next_symbol("pthread_create");
        memcpy(&real, &sym, sizeof(sym));
    }
    if (fake_thread_failure)
        return EAGAIN;
    if (fake_thread_failures > 0) {
        fake_thread_failures--;
        return EAGAIN;
    }
    thread_stack = 0;
    if (attr && pthread_attr_getstacksize(attr, &thread_stack) != 0)
        abort();
    struct thread_start *ts = malloc(sizeof(*ts));
    if (!ts)
        return EAGAIN;
    *ts = (struct thread_start){fn, arg};
    int e = real(thread, attr, thread_trampoline, ts);
    if (e != 0)
        free(ts);
    else
        threads_created++;
    return e;
}

int pthread_join(pthread_t thread, void **ret)
{
    static int (*real)(pthread_t, void **);
    if (!real) {
        void *sym = next_symbol("pthread_join");
        memcpy(&real, &sym, sizeof(sym));
    }
    int e = real(thread, ret);
    if (e == 0)
        threads_joined++;
    return e;
}

/* ---- sf_open_virtual / sf_seek / pread64 interposition ----------------- */

static int virtual_opens;            /* sf_open_virtual calls that succeeded */
static int virtual_seeks;            /* sf_seek calls on such a handle */
static SNDFILE *last_virtual;        /* the last handle it returned */
static bool fake_virtual_failure;    /* sf_open_virtual fails */
static bool fake_seek_failure;       /* sf_seek on a virtual handle fails */
static atomic_int preads;            /* pread64 calls */
static atomic_int pread_budget = -1; /* calls that succeed before pread64 fails with EIO; -1: all */

SNDFILE *sf_open_virtual(SF_VIRTUAL_IO *io, int mode, SF_INFO *info, void *user)
{
    static SNDFILE *(*real)(SF_VIRTUAL_IO *, int, SF_INFO *, void *);
    if (!real) {
        void *sym = next_symbol("sf_open_virtual");
        memcpy(&real, &sym, sizeof(sym));
    }
    if (fake_virtual_failure)
        return NULL;
    SNDFILE *sf = real(io, mode, info, user);
    if (sf) {
        virtual_opens++;
        last_virtual = sf;
    }
    return sf;
}

sf_count_t sf_seek(SNDFILE *sf, sf_count_t frames, int whence)
{
    static sf_count_t (*real)(SNDFILE *, sf_count_t, int);
    if (!real) {
        void *sym = next_symbol("sf_seek");
        memcpy(&real, &sym, sizeof(sym));
    }
    if (sf && sf == last_virtual) {
        virtual_seeks++;
        if (fake_seek_failure)
            return -1;
    }
    return real(sf, frames, whence);
}

ssize_t pread64(int fd, void *buf, size_t n, off64_t off)
{
    static ssize_t (*real)(int, void *, size_t, off64_t);
    if (!real) {
        void *sym = next_symbol("pread64");
        memcpy(&real, &sym, sizeof(sym));
    }
    atomic_fetch_add(&preads, 1);
    int budget = atomic_load(&pread_budget);
    while (budget >= 0) {
        if (budget == 0) {
            errno = EIO;
            return -1;
        }
        if (atomic_compare_exchange_weak(&pread_budget, &budget, budget - 1))
            break;
    }
    return real(fd, buf, n, off);
}

/* ---- helpers -------------------------------------------------------------- */

static const char *fixture(const char *name)
{
    static char paths[4][512];
    static int next;
    char *p = paths[next++ % 4];
    snprintf(p, sizeof(paths[0]), "%s/%s", tmpdir, name);
    return p;
}

static void write_short(const char *path, int format, int channels, int rate, const short *data,
                        sf_count_t frames)
{
    SF_INFO info = {.samplerate = rate, .channels = channels, .format = format};
    SNDFILE *sf = sf_open(path, SFM_WRITE, &info);
    if (!sf)
        fail_msg("sf_open(%s): %s", path, sf_strerror(NULL));
    if (frames > 0)
        assert_int_equal(sf_writef_short(sf, data, frames), frames);
    assert_int_equal(sf_close(sf), 0);
}

static void write_float(const char *path, int format, int channels, int rate, const float *data,
                        sf_count_t frames)
{
    SF_INFO info = {.samplerate = rate, .channels = channels, .format = format};
    SNDFILE *sf = sf_open(path, SFM_WRITE, &info);
    if (!sf)
        fail_msg("sf_open(%s): %s", path, sf_strerror(NULL));
    if (frames > 0)
        assert_int_equal(sf_writef_float(sf, data, frames), frames);
    assert_int_equal(sf_close(sf), 0);
}

/* Interleaved sines: channel c has frequency freq[c] and amplitude amp[c]. */
static float *make_sines(int channels, int rate, sf_count_t frames, const double *freq,
                         const double *amp)
{
    float *x = malloc((size_t)frames * (size_t)channels * sizeof(float));
    assert_non_null(x);
    for (sf_count_t i = 0; i < frames; i++)
        for (int c = 0; c < channels; c++)
            x[i * channels + c] = (float)(amp[c] * sin(2.0 * PI * freq[c] * (double)i / rate));
    return x;
}

static struct sample_buffer *decode_ok(const char *path, uint32_t rate, size_t max_bytes)
{
    struct sample_buffer *b = (struct sample_buffer *)(uintptr_t)1; /* must be overwritten */
    errbuf[0] = 'x';
    errbuf[1] = '\0';
    int r = decode_file(path, rate, max_bytes, &opts, &b, errbuf, sizeof(errbuf));
    if (r != 0)
        fail_msg("decode_file(%s) = %d (%s)", path, r, errbuf);
    assert_non_null(b);
    assert_string_equal(errbuf, "");
    assert_int_equal(b->rate, rate);
    assert_true(b->frames > 0);
    if (b->format == SAMPLE_S16) {
        assert_ptr_equal(b->s16, b->data);
        assert_null(b->ch[0]);
        assert_null(b->ch[1]);
        assert_true(b->bytes >= sizeof(*b) + (size_t)b->frames * b->channels * sizeof(int16_t));
        return b;
    }
    assert_int_equal(b->format, SAMPLE_F32);
    assert_null(b->s16);
    assert_ptr_equal(b->ch[0], b->data);
    if (b->channels == 2)
        assert_ptr_equal(b->ch[1], b->data + b->frames);
    else
        assert_ptr_equal(b->ch[1], b->ch[0]);
    assert_true(b->bytes >= sizeof(*b) + (size_t)b->frames * b->channels * sizeof(float));
    return b;
}

/* A 16-bit buffer (16-bit PCM at the engine rate) holding exactly the
 * integers x[0 .. n * channels), interleaved, which play as x / 32768. */
static void check_s16(const struct sample_buffer *b, const short *x, size_t n, uint32_t channels)
{
    assert_int_equal(b->format, SAMPLE_S16);
    assert_int_equal(b->frames, n);
    assert_int_equal(b->channels, channels);
    for (size_t i = 0; i < n; i++)
        for (uint32_t c = 0; c < channels; c++) {
            short want = x[i * channels + c];
            if (b->s16[i * channels + c] != want ||
                !(sample_buffer_value(b, c, (uint32_t)i) == (float)want / 32768.0f))
                fail_msg("frame %zu channel %u: %d, want %d", i, c, b->s16[i * channels + c], want);
        }
}

/* Expects failure with `want`, a non-empty reason and no buffer. */
static void decode_fails(const char *path, uint32_t rate, size_t max_bytes, int want)
{
    struct sample_buffer *b = (struct sample_buffer *)(uintptr_t)1;
    errbuf[0] = '\0';
    int r = decode_file(path, rate, max_bytes, &opts, &b, errbuf, sizeof(errbuf));
    if (r != want)
        fail_msg("decode_file(%s) = %d (%s), want %d", path, r, errbuf, want);
    assert_null(b);
    assert_true(strlen(errbuf) > 0);
    assert_null(strchr(errbuf, '\n'));
}

/* Frequency from upward zero crossings (linearly interpolated) over the
 * middle 80% of x[0..n). */
static double measure_freq(const float *x, uint32_t n, uint32_t rate)
{
    uint32_t lo = n / 10, hi = n - n / 10;
    double first = -1, last = -1;
    int crossings = 0;
    for (uint32_t i = lo + 1; i < hi; i++) {
        if (x[i - 1] < 0.0f && x[i] >= 0.0f) {
            double t = (double)(i - 1) + (double)x[i - 1] / ((double)x[i - 1] - (double)x[i]);
            if (first < 0)
                first = t;
            last = t;
            crossings++;
        }
    }
    assert_true(crossings > 2);
    return (double)(crossings - 1) * rate / (last - first);
}

static void check_amplitude(const float *x, uint32_t n, double amp)
{
    uint32_t lo = n / 10, hi = n - n / 10;
    double peak = 0, sq = 0;
    for (uint32_t i = lo; i < hi; i++) {
        peak = fmax(peak, fabs(x[i]));
        sq += (double)x[i] * x[i];
    }
    double rms_amp = sqrt(sq / (hi - lo)) * sqrt(2.0);
    if (fabs(peak - amp) > 0.01 * amp || fabs(rms_amp - amp) > 0.01 * amp)
        fail_msg("amplitude: peak %f, rms*sqrt2 %f, want %f", peak, rms_amp, amp);
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    if (remove(path) < 0)
        perror(path);
    return 0;
}

static int group_setup(void **state)
{
    (void)state;
    opts = decode_default_options;
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    return nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int test_teardown(void **state)
{
    (void)state;
    fake_unknown_length = false;
    fake_extra_frames = 0;
    fake_thread_failure = false;
    fake_thread_failures = 0;
    fake_unseekable = false;
    fake_virtual_failure = false;
    fake_seek_failure = false;
    atomic_store(&pread_budget, -1);
    opts = decode_default_options;
    return 0;
}

/* ---- exact pass-through ------------------------------------------------- */

static void test_pcm16_mono_exact(void **state)
{
    (void)state;
    /* Extremes and neighbours of zero, then every 16-bit value. */
    const short head[] = {-32768, 32767, 0, 1, -1, -32767, 32766, 2, -2};
    size_t nhead = sizeof(head) / sizeof(head[0]);
    size_t n = nhead + 65536;
    short *x = malloc(n * sizeof(short));
    assert_non_null(x);
    memcpy(x, head, sizeof(head));
    for (size_t i = 0; i < 65536; i++)
        x[nhead + i] = (short)((long)i - 32768);
    const char *path = fixture("mono16.wav");
    write_short(path, SF_FORMAT_WAV | SF_FORMAT_PCM_16, 1, 48000, x, (sf_count_t)n);

    struct sample_buffer *b = decode_ok(path, 48000, 0);
    check_s16(b, x, n, 1);
    /* The allocation is the integers' size (what /status and the memory
     * limits count), not the floats'. */
    assert_true(b->bytes < sizeof(*b) + n * sizeof(int16_t) + 64);
    assert_true(sample_buffer_value(b, 0, 0) == -1.0f);
    assert_true(sample_buffer_value(b, 1, 1) == 32767.0f / 32768.0f);
    assert_true(sample_buffer_value(b, 0, 2) == 0.0f);
    sample_buffer_free(b);

    /* At another rate it is converted, into floats. */
    b = decode_ok(path, 44100, 0);
    assert_int_equal(b->format, SAMPLE_F32);
    sample_buffer_free(b);
    free(x);
}

/* Stereo, several decode blocks long, distinct patterns per channel. */
static void test_pcm16_stereo_exact(void **state)
{
    (void)state;
    const size_t n = 150001;
    short *x = malloc(n * 2 * sizeof(short));
    assert_non_null(x);
    for (size_t i = 0; i < n; i++) {
        x[2 * i] = (short)((long)((i * 7919u) % 65536u) - 32768);
        x[2 * i + 1] = (short)((long)((i * 104729u + 13u) % 65536u) - 32768);
    }
    x[0] = -32768, x[1] = 32767, x[2] = 1, x[3] = -1, x[4] = 0, x[5] = 0;
    const char *path = fixture("stereo16.wav");
    write_short(path, SF_FORMAT_WAV | SF_FORMAT_PCM_16, 2, 44100, x, (sf_count_t)n);

    struct sample_buffer *b = decode_ok(path, 44100, 0);
    check_s16(b, x, n, 2);
    assert_true(b->bytes < sizeof(*b) + n * 2 * sizeof(int16_t) + 4096); /* mapped: to 4 KiB */
    sample_buffer_free(b);

    /* The same in AIFF (big-endian on disk). */
    path = fixture("stereo16.aiff");
    write_short(path, SF_FORMAT_AIFF | SF_FORMAT_PCM_16, 2, 44100, x, (sf_count_t)n);
    b = decode_ok(path, 44100, 0);
    check_s16(b, x, n, 2);
    sample_buffer_free(b);
    free(x);
}

/* Everything but 16-bit PCM stays float at the engine rate too: 24-bit,
 * 8-bit, float.  24-bit values come through exactly as x / 2^23. */
static void test_other_pcm_stays_float(void **state)
{
    (void)state;
    const size_t n = 5000;
    int *x = malloc(n * 2 * sizeof(int));
    assert_non_null(x);
    for (size_t i = 0; i < 2 * n; i++)
        x[i] = (int)(((i * 2654435761u) & 0xffffff00u)); /* 24 significant bits */
    const char *path = fixture("stereo24.wav");
    SF_INFO info = {.samplerate = 48000, .channels = 2, .format = SF_FORMAT_WAV | SF_FORMAT_PCM_24};
    SNDFILE *sf = sf_open(path, SFM_WRITE, &info);
    assert_non_null(sf);
    assert_int_equal(sf_writef_int(sf, x, (sf_count_t)n), (sf_count_t)n);
    assert_int_equal(sf_close(sf), 0);
    struct sample_buffer *b = decode_ok(path, 48000, 0);
    assert_int_equal(b->format, SAMPLE_F32);
    assert_int_equal(b->frames, n);
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < 2; c++)
            if (!(b->ch[c][i] == (float)(x[2 * i + c] >> 8) / 8388608.0f))
                fail_msg("frame %zu channel %d", i, c);
    sample_buffer_free(b);
    free(x);

    short y[100];
    for (int i = 0; i < 100; i++)
        y[i] = (short)(i * 256 - 12800);
    path = fixture("mono8.wav");
    write_short(path, SF_FORMAT_WAV | SF_FORMAT_PCM_U8, 1, 48000, y, 100);
    b = decode_ok(path, 48000, 0);
    assert_int_equal(b->format, SAMPLE_F32);
    for (int i = 0; i < 100; i++)
        assert_true(b->ch[0][i] == (float)(y[i] >> 8) / 128.0f);
    sample_buffer_free(b);
}

/* A float file holding NaN/Inf: those become 0, everything else is exact. */
static void test_float_nonfinite(void **state)
{
    (void)state;
    const float x[] = {0.25f, NAN, INFINITY, -INFINITY, -0.5f, 1.5f, -3.0f, 1e-30f};
    const float want[] = {0.25f, 0.0f, 0.0f, 0.0f, -0.5f, 1.5f, -3.0f, 1e-30f};
    const char *path = fixture("nonfinite.wav");
    write_float(path, SF_FORMAT_WAV | SF_FORMAT_FLOAT, 1, 48000, x, 8);
    struct sample_buffer *b = decode_ok(path, 48000, 0);
    assert_int_equal(b->format, SAMPLE_F32);
    assert_int_equal(b->frames, 8);
    for (int i = 0; i < 8; i++)
        assert_true(b->ch[0][i] == want[i]);
    sample_buffer_free(b);
}

/* ---- sample-rate conversion -------------------------------------------- */

/* Writes sines at `in_rate` (one frequency and amplitude per channel) in
 * `format`, converts them to 48 kHz, and checks the length, then each
 * channel's pitch (within 1 Hz) and level (within 1 %). */
static void check_resampled(const char *name, int format, int channels, int in_rate,
                            sf_count_t frames, const double *f, const double *a, uint32_t want)
{
    float *x = make_sines(channels, in_rate, frames, f, a);
    const char *path = fixture(name);
    write_float(path, format, channels, in_rate, x, frames);
    free(x);

    struct sample_buffer *b = decode_ok(path, 48000, 0);
    assert_int_equal(b->format, SAMPLE_F32);
    assert_int_equal(b->channels, channels);
    assert_int_equal(b->frames, want);
    for (int c = 0; c < channels; c++) {
        double freq = measure_freq(b->ch[c], b->frames, 48000);
        if (fabs(freq - f[c]) > 1.0)
            fail_msg("%s channel %d: pitch %f Hz, want %f", name, c, freq, f[c]);
        check_amplitude(b->ch[c], b->frames, a[c]);
    }
    sample_buffer_free(b);
}

static void test_resample_sine(void **state)
{
    (void)state;
    const double f[] = {1000.0}, a[] = {0.5};
    check_resampled("sine44k.wav", SF_FORMAT_WAV | SF_FORMAT_FLOAT, 1, 44100, 44100, f, a, 48000);
}

/* Stereo conversion keeps the channels apart (soxr writes planar output). */
static void test_resample_stereo(void **state)
{
    (void)state;
    const double f[] = {1000.0, 440.0}, a[] = {0.5, 0.25};
    check_resampled("sine44k-stereo.flac", SF_FORMAT_FLAC | SF_FORMAT_PCM_24, 2, 44100, 88200, f, a,
                    96000);
}

static void test_resample_down_and_lengths(void **state)
{
    (void)state;
    struct sample_buffer *b;
    const double f[] = {1000.0}, a[] = {0.5};
    check_resampled("sine96k.wav", SF_FORMAT_WAV | SF_FORMAT_FLOAT, 1, 96000, 96000, f, a, 48000);

    /* Odd lengths: round(frames * rate / in_rate), half up. */
    static const struct {
        int in_rate;
        sf_count_t frames;
        uint32_t rate;
        uint32_t want;
    } cases[] = {
        {44100, 1001, 48000, 1090}, /* 1089.52 */
        {48000, 1001, 44100, 920},  /* 919.67 */
        {22050, 7, 48000, 15},      /* 15.24 */
        {48000, 1, 8000, 1},        /* 0.17, but never empty */
        {8000, 3, 44100, 17},       /* 16.54 */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        short *s = calloc((size_t)cases[i].frames * 2, sizeof(short));
        assert_non_null(s);
        for (sf_count_t k = 0; k < cases[i].frames * 2; k++)
            s[k] = (short)(1000 * (k % 7));
        const char *p = fixture("odd.wav");
        write_short(p, SF_FORMAT_WAV | SF_FORMAT_PCM_16, 2, cases[i].in_rate, s, cases[i].frames);
        free(s);
        b = decode_ok(p, cases[i].rate, 0);
        assert_int_equal(b->format, SAMPLE_F32); /* 16-bit, converted: floats */
        if (b->frames != cases[i].want)
            fail_msg("case %zu: %u frames, want %u", i, b->frames, cases[i].want);
        sample_buffer_free(b);
    }
}

/* ---- other formats ------------------------------------------------------ */

static void test_flac_exact(void **state)
{
    (void)state;
    const size_t n = 70000;
    short *x = malloc(n * 2 * sizeof(short));
    assert_non_null(x);
    for (size_t i = 0; i < n; i++) {
        x[2 * i] = (short)(20000.0 * sin(2.0 * PI * 440.0 * (double)i / 48000.0));
        x[2 * i + 1] = (short)((long)((i * 31u) % 65536u) - 32768);
    }
    const char *path = fixture("stereo.flac");
    write_short(path, SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 2, 48000, x, (sf_count_t)n);
    struct sample_buffer *b = decode_ok(path, 48000, 0);
    check_s16(b, x, n, 2); /* 16-bit FLAC keeps its integers too */
    sample_buffer_free(b);
    free(x);
}

static void test_ogg_vorbis(void **state)
{
    (void)state;
    const double f[] = {440.0, 660.0}, a[] = {0.5, 0.5};
    float *x = make_sines(2, 44100, 44100, f, a);
    const char *path = fixture("stereo.ogg");
    write_float(path, SF_FORMAT_OGG | SF_FORMAT_VORBIS, 2, 44100, x, 44100);
    free(x);

    struct sample_buffer *b = decode_ok(path, 44100, 0);
    assert_int_equal(b->format, SAMPLE_F32);
    assert_int_equal(b->channels, 2);
    assert_int_equal(b->frames, 44100);
    for (int c = 0; c < 2; c++) {
        double freq = measure_freq(b->ch[c], b->frames, 44100);
        if (fabs(freq - f[c]) > 1.0)
            fail_msg("channel %d: pitch %f Hz", c, freq);
    }
    sample_buffer_free(b);

    /* Mono Vorbis, converted on the way in. */
    x = make_sines(1, 44100, 22050, f, a);
    path = fixture("mono.ogg");
    write_float(path, SF_FORMAT_OGG | SF_FORMAT_VORBIS, 1, 44100, x, 22050);
    free(x);
    b = decode_ok(path, 48000, 0);
    assert_int_equal(b->channels, 1);
    assert_int_equal(b->frames, 24000);
    sample_buffer_free(b);
}

/* ---- lengths that are not what the header says ------------------------- */

static long file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (long)st.st_size;
}

/* A WAV whose data chunk claims more than the file holds: libsndfile clamps
 * the length to the data present, and that much loads, exactly. */
static void test_truncated_wav(void **state)
{
    (void)state;
    short x[1000];
    for (int i = 0; i < 1000; i++)
        x[i] = (short)(i * 30 - 15000);
    const char *path = fixture("trunc.wav");
    write_short(path, SF_FORMAT_WAV | SF_FORMAT_PCM_16, 1, 48000, x, 1000);
    long header = file_size(path) - 2000;
    assert_true(header >= 44);
    assert_int_equal(truncate(path, header + 1201), 0); /* 600.5 frames */

    struct sample_buffer *b = decode_ok(path, 48000, 0);
    check_s16(b, x, 600, 1);
    sample_buffer_free(b);

    /* Header only, no data at all. */
    assert_int_equal(truncate(path, header), 0);
    decode_fails(path, 48000, 0, -ENODATA);
    /* Cut inside the header. */
    assert_int_equal(truncate(path, 20), 0);
    decode_fails(path, 48000, 0, -EINVAL);
}

/* A FLAC cut short: STREAMINFO promises more frames than the stream holds,
 * and libFLAC reports lost sync where the data stops.  An error from the
 * decoder means the data cannot be trusted, so the file is refused as
 * corrupt rather than played short. */
static void test_truncated_flac(void **state)
{
    (void)state;
    const size_t n = 200000;
    short *x = malloc(n * 2 * sizeof(short));
    assert_non_null(x);
    srand(1);
    for (size_t i = 0; i < 2 * n; i++)
        x[i] = (short)(rand() % 65536 - 32768); /* noise: compresses poorly */
    const char *path = fixture("trunc.flac");

    static const double keep[] = {0.5, 0.95, 0.999};
    for (size_t k = 0; k < sizeof(keep) / sizeof(keep[0]); k++) {
        write_short(path, SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 2, 48000, x, (sf_count_t)n);
        long size = file_size(path);
        assert_int_equal(truncate(path, (off_t)((double)size * keep[k])), 0);
        decode_fails(path, 48000, 0, -EINVAL);
        assert_non_null(strstr(errbuf, "corrupt"));
        decode_fails(path, 44100, 0, -EINVAL);
    }
    /* Cut right after the metadata: nothing decodes. */
    assert_int_equal(truncate(path, 200), 0);
    decode_fails(path, 48000, 0, -EINVAL);
    free(x);
}

/* A length that overstates the data without any decoder error (an MP3 whose
 * length mpg123 had to estimate): what decodes is kept, exactly, and the
 * buffer shrinks to it, in place for a small excess or by reallocation for a
 * large one.  The sf_open_fd wrapper inflates the reported count. */
static void test_overstated_length(void **state)
{
    (void)state;
    const size_t n = 100000;
    short *x = malloc(n * 2 * sizeof(short));
    assert_non_null(x);
    for (size_t i = 0; i < 2 * n; i++)
        x[i] = (short)((long)((i * 7919u) % 65536u) - 32768);
    const char *path = fixture("overstated.wav");
    write_short(path, SF_FORMAT_WAV | SF_FORMAT_PCM_16, 2, 48000, x, (sf_count_t)n);

    static const sf_count_t extra[] = {1, 5000, 300000};
    for (size_t k = 0; k < 3; k++) {
        fake_extra_frames = extra[k];
        struct sample_buffer *b = decode_ok(path, 48000, 0);
        check_s16(b, x, n, 2);
        sample_buffer_free(b);

        /* Converted: the length follows the frames actually decoded. */
        b = decode_ok(path, 44100, 0);
        assert_int_equal(b->frames, 91875); /* round(100000 * 44100 / 48000) */
        sample_buffer_free(b);
    }
    /* The limit is checked against the reported length, before decoding. */
    fake_extra_frames = 300000;
    decode_fails(path, 48000, n * 2 * sizeof(int16_t), -E2BIG);
    /* A length no buffer can hold is refused before allocating anything,
     * with or without a limit, also where the conversion would overflow. */
    fake_extra_frames = (sf_count_t)UINT32_MAX;
    decode_fails(path, 48000, 0, -E2BIG);
    assert_non_null(strstr(errbuf, "file too long"));
    fake_extra_frames = INT64_MAX - (sf_count_t)n - 1;
    decode_fails(path, 48000, 0, -E2BIG);
    decode_fails(path, 44100, 0, -E2BIG);
    decode_fails(path, 96000, 1 << 20, -E2BIG);
    free(x);

    /* Reported frames but none there at all. */
    path = fixture("overstated-empty.wav");
    write_short(path, SF_FORMAT_WAV | SF_FORMAT_PCM_16, 1, 48000, NULL, 0);
    fake_extra_frames = 1000;
    decode_fails(path, 48000, 0, -EINVAL);
    assert_string_equal(errbuf, "corrupt or truncated audio data");
}

/* Lengths the file does not report (SF_COUNT_MAX): the buffer grows as data
 * arrives, and the limit still holds. */
static void test_unknown_length(void **state)
{
    (void)state;
    const size_t n = 300007;
    short *x = malloc(n * sizeof(short));
    assert_non_null(x);
    for (size_t i = 0; i < n; i++)
        x[i] = (short)((long)((i * 7919u) % 65536u) - 32768);
    const char *path = fixture("unknown.wav");
    write_short(path, SF_FORMAT_WAV | SF_FORMAT_PCM_16, 1, 48000, x, (sf_count_t)n);

    fake_unknown_length = true;
    struct sample_buffer *b = decode_ok(path, 48000, 0);
    check_s16(b, x, n, 1);
    sample_buffer_free(b);

    /* Exactly at the limit (the integers' size), and one byte short of it. */
    b = decode_ok(path, 48000, n * sizeof(int16_t));
    check_s16(b, x, n, 1);
    sample_buffer_free(b);
    decode_fails(path, 48000, n * sizeof(int16_t) - 1, -E2BIG);
    decode_fails(path, 48000, 100000, -E2BIG);
    decode_fails(path, 48000, 1, -E2BIG);
    free(x);

    /* Stereo, converted. */
    const double f[] = {1000.0, 440.0}, a[] = {0.5, 0.25};
    float *y = make_sines(2, 44100, 88200, f, a);
    path = fixture("unknown-stereo.wav");
    write_float(path, SF_FORMAT_WAV | SF_FORMAT_FLOAT, 2, 44100, y, 88200);
    free(y);
    for (int limited = 0; limited < 2; limited++) {
        b = decode_ok(path, 48000, limited ? 96000 * 2 * sizeof(float) : 0);
        assert_int_equal(b->frames, 96000);
        for (int c = 0; c < 2; c++) {
            double freq = measure_freq(b->ch[c], b->frames, 48000);
            if (fabs(freq - f[c]) > 1.0)
                fail_msg("channel %d: pitch %f Hz", c, freq);
            check_amplitude(b->ch[c], b->frames, a[c]);
        }
        sample_buffer_free(b);
    }
    decode_fails(path, 48000, 96000 * 2 * sizeof(float) - 1, -E2BIG);
}

/* ---- the conversion pipeline (decode on a reader thread) ---------------- */

/* These tests are about the pipelined path, which the two-halves split
 * (further down) takes over for long files of most formats: they turn the
 * split off, as bench_decode does to compare the two. */

#define BLOCK 65536 /* DECODE_BLOCK (daemon/decode_core.h) */

/* decode_file() with the reader thread made impossible: the sequential
 * path.  Returns its result; the reason is in errbuf. */
static int decode_sequential(const char *path, uint32_t rate, size_t max_bytes,
                             struct sample_buffer **b)
{
    int created = threads_created;
    fake_thread_failure = true;
    errbuf[0] = '\0';
    int r = decode_file(path, rate, max_bytes, &opts, b, errbuf, sizeof(errbuf));
    fake_thread_failure = false;
    assert_int_equal(threads_created, created);
    return r;
}

/* Checks that exactly `n` threads were started since `created` and that
 * every one of them was joined and has finished. */
static void check_threads(int created, int n)
{
    assert_int_equal(threads_created, created + n);
    assert_int_equal(threads_joined, threads_created);
    assert_int_equal(atomic_load(&threads_running), 0);
}

/* Same frames, same channels, same bits (NaN and -0 included). */
static void assert_same_buffer(const struct sample_buffer *a, const struct sample_buffer *b)
{
    assert_int_equal(a->frames, b->frames);
    assert_int_equal(a->channels, b->channels);
    assert_int_equal(a->rate, b->rate);
    assert_int_equal(a->format, SAMPLE_F32);
    assert_int_equal(b->format, SAMPLE_F32);
    for (uint32_t c = 0; c < a->channels; c++)
        for (uint32_t i = 0; i < a->frames; i++)
            if (memcmp(&a->ch[c][i], &b->ch[c][i], sizeof(float)) != 0)
                fail_msg("channel %u frame %u: %.9g vs %.9g", c, i, a->ch[c][i], b->ch[c][i]);
}

/* Stereo 16-bit noise of `frames` frames at `rate` in `format`. */
static void write_noise(const char *path, int format, int rate, size_t frames)
{
    short *x = malloc(frames * 2 * sizeof(short));
    assert_non_null(x);
    uint32_t seed = 12345;
    for (size_t i = 0; i < 2 * frames; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (short)(seed >> 16);
    }
    write_short(path, format, 2, rate, x, (sf_count_t)frames);
    free(x);
}

/* The conversion done here on one thread, as plainly as it can be: the
 * file read in blocks of BLOCK frames by libsndfile, each fed to soxr
 * (SOXR_HQ, interleaved in, split out) with the calls decode_pipe.c makes
 * for a file of known length, into a buffer of round(frames * rate /
 * in_rate) frames, the rest zero. */
static struct sample_buffer *soxr_reference(const char *path, uint32_t rate)
{
    SF_INFO info;
    memset(&info, 0, sizeof(info));
    SNDFILE *sf = sf_open(path, SFM_READ, &info);
    assert_non_null(sf);
    uint32_t ch = (uint32_t)info.channels;
    uint64_t in_rate = (uint64_t)info.samplerate;
    uint32_t out = (uint32_t)(((uint64_t)info.frames * rate + in_rate / 2) / in_rate);
    struct sample_buffer *y = sample_buffer_new(out, ch, rate);
    assert_non_null(y);
    for (uint32_t c = 0; c < ch; c++)
        memset(sample_buffer_channel(y, c), 0, (size_t)out * sizeof(float));
    float *blk = malloc((size_t)BLOCK * ch * sizeof(float));
    assert_non_null(blk);

    soxr_error_t e = NULL;
    soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_S);
    soxr_quality_spec_t q = soxr_quality_spec(SOXR_HQ, 0);
    soxr_t s = soxr_create((double)in_rate, rate, ch, &e, &io, &q, NULL);
    assert_non_null(s);
    assert_null(e);
    uint32_t filled = 0;
    sf_count_t got;
    while (filled < out && (got = sf_readf_float(sf, blk, BLOCK)) > 0) {
        const float *in = blk;
        size_t left = (size_t)got;
        while (left > 0 && filled < out) {
            float *outs[2] = {sample_buffer_channel(y, 0) + filled,
                              sample_buffer_channel(y, ch - 1) + filled};
            size_t idone = 0, odone = 0;
            assert_null(soxr_process(s, in, left, &idone, outs, out - filled, &odone));
            assert_true(idone > 0 || odone > 0);
            filled += (uint32_t)odone;
            in += idone * ch;
            left -= idone;
        }
    }
    while (filled < out) {
        float *outs[2] = {sample_buffer_channel(y, 0) + filled,
                          sample_buffer_channel(y, ch - 1) + filled};
        size_t odone = 0;
        assert_null(soxr_process(s, NULL, 0, NULL, outs, out - filled, &odone));
        if (odone == 0)
            break;
        filled += (uint32_t)odone;
    }
    soxr_delete(s);
    sf_close(sf);
    free(blk);
    return y;
}

/* A conversion many blocks long runs on the reader thread, which has its
 * 1 MiB stack and every asynchronous signal blocked, and is joined; its
 * output is bit for bit the single-threaded conversion's, done here and by
 * decode_pipe.c's own sequential path. */
static void test_pipeline_matches_single_thread(void **state)
{
    (void)state;
    opts.split_min_frames = UINT64_MAX; /* the pipelined path (see above) */
    const size_t n = 5 * BLOCK + 4321;
    short *x = malloc(n * 2 * sizeof(short));
    assert_non_null(x);
    uint32_t seed = 7;
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        double t = (double)i / 44100.0;
        x[2 * i] = (short)(12000.0 * sin(2.0 * PI * 440.0 * t) + (double)(seed >> 22));
        x[2 * i + 1] = (short)(9000.0 * sin(2.0 * PI * 3300.0 * t) - (double)(seed >> 21));
    }
    const char *path = fixture("pipeline.flac");
    write_short(path, SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 2, 44100, x, (sf_count_t)n);
    free(x);

    sigset_t before, after;
    pthread_sigmask(SIG_BLOCK, NULL, &before);
    int created = threads_created;
    struct sample_buffer *b = decode_ok(path, 48000, 0);
    check_threads(created, 1);
    assert_int_equal(b->frames, 361362); /* round(332001 * 48000 / 44100) */
    assert_int_equal(b->channels, 2);

    /* The reader thread: 1 MiB of stack, signals blocked (the daemon's own,
     * and any other a process may be sent) but the synchronous ones.  The
     * caller's mask is as it was. */
    assert_int_equal(thread_stack, 1024 * 1024);
    static const int blocked[] = {SIGINT,  SIGTERM, SIGHUP,  SIGUSR1, SIGUSR2,
                                  SIGALRM, SIGCHLD, SIGPIPE, SIGQUIT};
    for (size_t i = 0; i < sizeof(blocked) / sizeof(blocked[0]); i++) {
        if (!sigismember(&thread_mask, blocked[i]))
            fail_msg("signal %d not blocked in the reader thread", blocked[i]);
        assert_false(sigismember(&before, blocked[i])); /* blocked by decode.c */
    }
    assert_false(sigismember(&thread_mask, SIGSEGV));
    assert_false(sigismember(&thread_mask, SIGBUS));
    pthread_sigmask(SIG_BLOCK, NULL, &after);
    for (int sig = 1; sig < SIGRTMIN; sig++)
        assert_int_equal(sigismember(&before, sig), sigismember(&after, sig));

    /* Not just any plausible output: exactly the single-threaded one. */
    struct sample_buffer *ref = soxr_reference(path, 48000);
    assert_same_buffer(b, ref);
    sample_buffer_free(ref);

    /* The thread cannot be started: the load goes on sequentially, same bits. */
    struct sample_buffer *seq = NULL;
    assert_int_equal(decode_sequential(path, 48000, 0, &seq), 0);
    assert_string_equal(errbuf, "");
    assert_same_buffer(b, seq);
    sample_buffer_free(seq);
    sample_buffer_free(b);

    /* Downwards too, and mono. */
    x = malloc(n * sizeof(short));
    assert_non_null(x);
    for (size_t i = 0; i < n; i++)
        x[i] = (short)(16000.0 * sin(2.0 * PI * 1000.0 * (double)i / 96000.0) + (double)(i % 97));
    path = fixture("pipeline-mono.wav");
    write_short(path, SF_FORMAT_WAV | SF_FORMAT_PCM_16, 1, 96000, x, (sf_count_t)n);
    free(x);
    created = threads_created;
    b = decode_ok(path, 44100, 0);
    check_threads(created, 1);
    assert_int_equal(b->frames, 152513); /* round(332001 * 44100 / 96000) */
    assert_int_equal(decode_sequential(path, 44100, 0, &seq), 0);
    assert_same_buffer(b, seq);
    sample_buffer_free(seq);
    sample_buffer_free(b);
}

/* Known lengths of up to two blocks convert without a thread; one frame
 * more and the reader starts. */
static void test_pipeline_short_files_sequential(void **state)
{
    (void)state;
    opts.split_min_frames = UINT64_MAX; /* the pipelined path (see above) */
    static const struct {
        size_t frames;
        int threads;
    } cases[] = {{1000, 0}, {BLOCK, 0}, {2 * BLOCK, 0}, {2 * BLOCK + 1, 1}};
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        const char *path = fixture("short.wav");
        write_noise(path, SF_FORMAT_WAV | SF_FORMAT_PCM_16, 44100, cases[k].frames);
        int created = threads_created;
        struct sample_buffer *b = decode_ok(path, 48000, 0);
        check_threads(created, cases[k].threads);
        struct sample_buffer *ref = soxr_reference(path, 48000);
        assert_same_buffer(b, ref);
        sample_buffer_free(ref);
        sample_buffer_free(b);
    }
}

/* A FLAC cut short fails on the reader thread, at the start, in the middle
 * or at the very end: refused as corrupt, with the sequential path's code
 * and reason word for word, and the thread joined. */
static void test_pipeline_corrupt_flac(void **state)
{
    (void)state;
    opts.split_min_frames = UINT64_MAX; /* the pipelined path (see above) */
    const size_t n = 400000;
    const char *path = fixture("pipeline-trunc.flac");
    static const double keep[] = {0.1, 0.5, 0.95, 0.999};
    for (size_t k = 0; k < sizeof(keep) / sizeof(keep[0]); k++) {
        write_noise(path, SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 44100, n);
        long size = file_size(path);
        assert_int_equal(truncate(path, (off_t)((double)size * keep[k])), 0);

        struct sample_buffer *b = NULL;
        assert_int_equal(decode_sequential(path, 48000, 0, &b), -EINVAL);
        assert_null(b);
        char want[sizeof(errbuf)];
        snprintf(want, sizeof(want), "%s", errbuf);
        assert_true(strncmp(want, "corrupt audio data", 18) == 0);

        int created = threads_created;
        decode_fails(path, 48000, 0, -EINVAL);
        check_threads(created, 1);
        assert_string_equal(errbuf, want);

        /* A reason buffer too short for it gets the same truncation. */
        char tiny[12];
        b = NULL;
        assert_int_equal(decode_file(path, 48000, 0, &opts, &b, tiny, sizeof(tiny)), -EINVAL);
        assert_null(b);
        assert_true(strncmp(tiny, want, sizeof(tiny) - 1) == 0);
        assert_int_equal(strlen(tiny), sizeof(tiny) - 1);
    }
}

/* The reader reads ahead of the converter, but its errors count only when
 * the converter gets to them: a file whose reported length is complete
 * before a bad block loads (the sequential path never reads that block),
 * with no reason left behind.  The length is understated by the sf_open_fd
 * wrapper (libsndfile itself reads on); the cut lies just past the third
 * block, which the converter needs almost all of, so the reader has long
 * failed on the fourth by then. */
static void test_pipeline_error_after_output_complete(void **state)
{
    (void)state;
    opts.split_min_frames = UINT64_MAX; /* the pipelined path (see above) */
    const size_t n = 400000;
    const char *path = fixture("pipeline-early.flac");
    write_noise(path, SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 44100, n);
    long size = file_size(path);
    assert_int_equal(truncate(path, (off_t)((double)size * (3.0 * BLOCK + 3000) / (double)n)), 0);
    decode_fails(path, 48000, 0, -EINVAL); /* the whole of it does not load */

    fake_extra_frames = (sf_count_t)(3 * BLOCK - 4000) - (sf_count_t)n;
    struct sample_buffer *seq = NULL;
    if (decode_sequential(path, 48000, 0, &seq) != 0)
        fail_msg("sequential: %s", errbuf);
    assert_int_equal(seq->frames, 209641); /* round(192608 * 48000 / 44100) */
    for (int i = 0; i < 5; i++) {
        int created = threads_created;
        struct sample_buffer *b = decode_ok(path, 48000, 0); /* errbuf stays empty */
        check_threads(created, 1);
        assert_same_buffer(b, seq);
        sample_buffer_free(b);
    }
    sample_buffer_free(seq);
}

/* Unknown length on the reader thread: the buffer grows as blocks come,
 * and max_bytes, hit while converting or while draining the rest, fails
 * with the sequential path's code and reason. */
static void test_pipeline_unknown_length(void **state)
{
    (void)state;
    opts.split_min_frames = UINT64_MAX; /* the pipelined path (see above) */
    const size_t n = 400000;
    const char *path = fixture("pipeline-unknown.wav");
    write_noise(path, SF_FORMAT_WAV | SF_FORMAT_PCM_16, 44100, n);
    const uint32_t want = 435374; /* round(400000 * 48000 / 44100) */
    const size_t exact = (size_t)want * 2 * sizeof(float);

    fake_unknown_length = true;
    struct sample_buffer *seq = NULL;
    assert_int_equal(decode_sequential(path, 48000, 0, &seq), 0);
    assert_int_equal(seq->frames, want);
    for (int limited = 0; limited < 2; limited++) {
        int created = threads_created;
        struct sample_buffer *b = decode_ok(path, 48000, limited ? exact : 0);
        check_threads(created, 1);
        assert_same_buffer(b, seq);
        sample_buffer_free(b);
    }
    sample_buffer_free(seq);

    /* Over the limit: found by the reader on the last block (one byte
     * over), on the fourth (twice over: 262144 frames make 285326), and on
     * the first, before the converter has had anything. */
    static const size_t limits[] = {exact - 1, exact / 2, 100000};
    static const char *const reasons[] = {
        "file too large (more than 3.4 MiB decoded; limit 3.3 MiB)",
        "file too large (more than 2.2 MiB decoded; limit 1.6 MiB)",
        "file too large (more than 0.6 MiB decoded; limit 0.0 MiB)",
    };
    for (size_t k = 0; k < sizeof(limits) / sizeof(limits[0]); k++) {
        struct sample_buffer *b = NULL;
        assert_int_equal(decode_sequential(path, 48000, limits[k], &b), -E2BIG);
        assert_null(b);
        assert_string_equal(errbuf, reasons[k]);
        int created = threads_created;
        decode_fails(path, 48000, limits[k], -E2BIG);
        check_threads(created, 1);
        assert_string_equal(errbuf, reasons[k]);
    }
}

/* ---- the two halves (decode and convert on two threads) ----------------- */

/* The two halves' output against the sequential path's: soxr filters in
 * blocks (FFT convolution) that lie differently in the second half's
 * stream, so the same sums are rounded differently; that is all that may
 * differ (a few float ulps of signals below full scale). */
#define SPLIT_TOLERANCE 1e-6

/* Tones under noise, peaks about 0.6 (as floats, which libsndfile
 * converts to `format`): content up to the top of the band, as music has,
 * so any error in the filter's phase at the seam would show. */
static void write_music(const char *path, int format, int channels, int rate, size_t frames)
{
    float *x = malloc(frames * (size_t)channels * sizeof(float));
    assert_non_null(x);
    uint32_t seed = 99;
    for (size_t i = 0; i < frames; i++) {
        double t = (double)i / rate;
        for (int c = 0; c < channels; c++) {
            seed = seed * 1664525u + 1013904223u;
            double noise = ((double)(seed >> 8) / 16777216.0 - 0.5) * 0.2;
            double v = 0.3 * sin(2.0 * PI * (c ? 330.0 : 440.0) * t) +
                       0.15 * sin(2.0 * PI * (c ? 5100.0 : 3300.0) * t) + noise;
            x[i * (size_t)channels + (size_t)c] = (float)v;
        }
    }
    write_float(path, format, channels, rate, x, (sf_count_t)frames);
    free(x);
}

/* The output frame where decode_split.c's second half starts: the input's
 * middle, rounded to a multiple of in_rate / gcd frames (where input and
 * output frames line up), converted. */
static uint32_t seam_of(size_t frames, uint32_t in_rate, uint32_t rate)
{
    uint64_t a = in_rate, b = rate;
    while (b) {
        uint64_t t = a % b;
        a = b;
        b = t;
    }
    uint64_t p = in_rate / a, q = rate / a;
    return (uint32_t)(((uint64_t)frames / 2 + p / 2) / p * q);
}

/* The largest |x - y| over every frame and channel, and in *near the same
 * within `w` frames of `seam`. */
static double max_diff(const struct sample_buffer *x, const struct sample_buffer *y, uint32_t seam,
                       uint32_t w, double *near)
{
    double all = 0;
    *near = 0;
    for (uint32_t c = 0; c < x->channels; c++)
        for (uint32_t i = 0; i < x->frames; i++) {
            double d = fabs((double)x->ch[c][i] - (double)y->ch[c][i]);
            if (!(d <= all)) /* NaN included */
                all = d;
            if (i + w >= seam && i < seam + w && !(d <= *near))
                *near = d;
        }
    return all;
}

/* Converts `path` (`frames` at `in_rate`) to `rate`, expecting the two
 * halves (`split`) or the pipeline, and checks the result against the
 * sequential path: the same length, round(frames * rate / in_rate); the
 * same bits from the pipeline; within SPLIT_TOLERANCE from the halves,
 * near the seam as everywhere else.  Returns the largest difference. */
static double check_split(const char *path, uint32_t in_rate, uint32_t rate, size_t frames,
                          bool split)
{
    int created = threads_created, opens = virtual_opens, seeks = virtual_seeks;
    struct sample_buffer *b = decode_ok(path, rate, 0);
    check_threads(created, 1);
    assert_int_equal(virtual_opens - opens, split ? 1 : 0);
    assert_int_equal(virtual_seeks - seeks, split ? 1 : 0);

    struct sample_buffer *seq = NULL;
    assert_int_equal(decode_sequential(path, rate, 0, &seq), 0);
    uint32_t want = (uint32_t)(((uint64_t)frames * rate + in_rate / 2) / in_rate);
    assert_int_equal(seq->frames, want);
    assert_int_equal(b->frames, want);
    assert_int_equal(b->channels, seq->channels);
    double all = 0, near = 0;
    if (split) {
        uint32_t seam = seam_of(frames, in_rate, rate);
        all = max_diff(b, seq, seam, 4096, &near);
        print_message("      %u -> %u Hz, %u ch, %zu frames: max |diff| %.3g; %.3g within 4096 "
                      "frames of the seam (output frame %u)\n",
                      in_rate, rate, b->channels, frames, all, near, seam);
        if (!(all <= SPLIT_TOLERANCE))
            fail_msg("max |diff| %.3g (near the seam %.3g)", all, near);
    } else {
        assert_same_buffer(b, seq);
    }
    sample_buffer_free(seq);
    sample_buffer_free(b);
    return all;
}

/* Long files convert in two halves on two threads, the second half's on a
 * helper with the reader's stack and signal mask, always joined; the
 * result is the sequential one within float rounding, at and around the
 * seam too, for rates up and down, mono and stereo, odd lengths and
 * lengths at the threshold (one frame below it: the pipeline, same bits). */
static void test_split_matches_sequential(void **state)
{
    (void)state;
    const size_t t = (size_t)opts.split_min_frames;
    assert_true(t > 2 * BLOCK && t < 16 * BLOCK);
    static const struct {
        int format;
        int channels;
        uint32_t in_rate;
        uint32_t rate;
        long extra; /* frames beyond the threshold */
        bool split;
    } cases[] = {
        {SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 2, 44100, 48000, -1, false},
        {SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 2, 44100, 48000, 0, true},
        {SF_FORMAT_WAV | SF_FORMAT_PCM_16, 1, 44100, 48000, 12345, true},
        {SF_FORMAT_WAV | SF_FORMAT_PCM_24, 2, 48000, 44100, 7777, true},
        {SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 1, 48000, 44100, 3 * BLOCK + 1, true},
        {SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 2, 22050, 48000, 101, true},
        {SF_FORMAT_WAV | SF_FORMAT_FLOAT, 1, 22050, 48000, 0, true},
        {SF_FORMAT_FLAC | SF_FORMAT_PCM_24, 1, 96000, 48000, 99, true},
        {SF_FORMAT_WAV | SF_FORMAT_PCM_16, 2, 96000, 48000, 4 * BLOCK + 3, true},
        {SF_FORMAT_AIFF | SF_FORMAT_PCM_16, 2, 11025, 96000, 1, true},
        {SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 2, 44100, 48000, 30 * 44100 - 4 * BLOCK, true},
    };
    double worst = 0;
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        size_t frames = (size_t)((long)t + cases[k].extra);
        const char *path = fixture(
            (cases[k].format & SF_FORMAT_TYPEMASK) == SF_FORMAT_FLAC ? "split.flac" : "split.snd");
        write_music(path, cases[k].format, cases[k].channels, (int)cases[k].in_rate, frames);
        sigset_t before, after;
        pthread_sigmask(SIG_BLOCK, NULL, &before);
        double d = check_split(path, cases[k].in_rate, cases[k].rate, frames, cases[k].split);
        worst = d > worst ? d : worst;
        if (k == 1) {
            /* The second half's thread: as the reader's (see above). */
            assert_int_equal(thread_stack, 1024 * 1024);
            static const int blocked[] = {SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGALRM, SIGPIPE};
            for (size_t i = 0; i < sizeof(blocked) / sizeof(blocked[0]); i++)
                assert_true(sigismember(&thread_mask, blocked[i]));
            assert_false(sigismember(&thread_mask, SIGSEGV));
            pthread_sigmask(SIG_BLOCK, NULL, &after);
            for (int sig = 1; sig < SIGRTMIN; sig++)
                assert_int_equal(sigismember(&before, sig), sigismember(&after, sig));
        }
    }
    print_message("      worst max |diff| %.3g (bound %.0e)\n", worst, SPLIT_TOLERANCE);
}

/* Expects `path` converted to `rate` without the two halves (no second
 * handle opened, or given up on), on `threads` helper threads, bit for bit
 * as `ref`. */
static void expect_unsplit(const char *path, uint32_t rate, const struct sample_buffer *ref,
                           int threads, bool opened)
{
    int created = threads_created, opens = virtual_opens;
    struct sample_buffer *b = decode_ok(path, rate, 0);
    check_threads(created, threads);
    assert_int_equal(virtual_opens - opens, opened ? 1 : 0);
    assert_same_buffer(b, ref);
    sample_buffer_free(b);
}

/* The conversion done with the split turned off. */
static struct sample_buffer *decode_unsplit(const char *path, uint32_t rate)
{
    uint64_t keep = opts.split_min_frames;
    opts.split_min_frames = UINT64_MAX;
    int opens = virtual_opens;
    struct sample_buffer *b = decode_ok(path, rate, 0);
    assert_int_equal(virtual_opens, opens);
    opts.split_min_frames = keep;
    return b;
}

/* Whenever the halves cannot work or may not be exact, the file converts
 * as before (pipelined, or sequential without threads), bit for bit, and
 * nothing is left open: unknown or unreliable lengths, files that cannot
 * seek or whose seek is not exact, ratios soxr does not step exactly, the
 * second open, the seek or the thread failing. */
static void test_split_fallbacks(void **state)
{
    (void)state;
    const size_t n = 2 * (size_t)opts.split_min_frames + 1001;
    const char *path = fixture("fallback.flac");
    write_music(path, SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 2, 44100, n);
    int fds = count_fds();
    struct sample_buffer *ref = decode_unsplit(path, 48000);

    fake_virtual_failure = true; /* the second open */
    expect_unsplit(path, 48000, ref, 1, false);
    fake_virtual_failure = false;

    int seeks = virtual_seeks;
    fake_seek_failure = true; /* the seek to the middle */
    expect_unsplit(path, 48000, ref, 1, true);
    assert_int_equal(virtual_seeks, seeks + 1);
    fake_seek_failure = false;

    fake_thread_failures = 1; /* the halves' thread; the reader's starts */
    expect_unsplit(path, 48000, ref, 1, true);
    fake_thread_failure = true; /* every thread: sequential */
    expect_unsplit(path, 48000, ref, 0, true);
    fake_thread_failure = false;

    fake_unseekable = true; /* libsndfile says it cannot seek */
    expect_unsplit(path, 48000, ref, 1, false);
    fake_unseekable = false;
    sample_buffer_free(ref);

    /* A reported length that is not the real one: the second handle,
     * which sees the file as it is, does not agree, and the load goes on
     * as before with the length it finds. */
    fake_extra_frames = 5000;
    ref = decode_unsplit(path, 48000);
    assert_int_equal(ref->frames, (uint32_t)((n * 48000 + 22050) / 44100)); /* the real length */
    expect_unsplit(path, 48000, ref, 1, true);
    sample_buffer_free(ref);
    fake_extra_frames = 0;

    /* Unknown length: never split. */
    fake_unknown_length = true;
    ref = decode_unsplit(path, 48000);
    expect_unsplit(path, 48000, ref, 1, false);
    sample_buffer_free(ref);
    fake_unknown_length = false;

    /* A ratio soxr steps with a rounded increment (48000 / 47999). */
    ref = decode_unsplit(path, 47999);
    expect_unsplit(path, 47999, ref, 1, false);
    sample_buffer_free(ref);

    /* Formats whose seek is not exact or starts from the wrong state. */
    static const struct {
        const char *name;
        int format;
    } inexact[] = {
        {"fallback.ogg", SF_FORMAT_OGG | SF_FORMAT_VORBIS},
        {"fallback-ima.wav", SF_FORMAT_WAV | SF_FORMAT_IMA_ADPCM},
        {"fallback-gsm.wav", SF_FORMAT_WAV | SF_FORMAT_GSM610},
    };
    for (size_t k = 0; k < sizeof(inexact) / sizeof(inexact[0]); k++) {
        const char *p = fixture(inexact[k].name);
        int ch = (inexact[k].format & SF_FORMAT_SUBMASK) == SF_FORMAT_GSM610 ? 1 : 2;
        write_music(p, inexact[k].format, ch, 44100, n);
        ref = decode_unsplit(p, 48000);
        expect_unsplit(p, 48000, ref, 1, false);
        sample_buffer_free(ref);
    }
    assert_int_equal(count_fds(), fds);
}

/* An error in either half fails the load with the sequential path's code
 * and reason, word for word, the earlier one when both halves fail; the
 * helper is joined either way.  Cuts and damage in the second half (the
 * seek to the middle works), in the first, and in both; and a read error
 * that only the second handle's pread sees. */
static void test_split_errors(void **state)
{
    (void)state;
    const size_t n = 400000;
    assert_true(n >= opts.split_min_frames);
    const char *path = fixture("split-bad.flac");
    static const struct {
        double at;   /* where, as a fraction of the file */
        double also; /* a second place, or 0 */
        bool cut;    /* truncated there, else 64 bytes overwritten */
        bool split;  /* the seek to the middle still works */
    } cases[] = {
        {0.95, 0, true, true},  {0.999, 0, true, true},  {0.75, 0, false, true},
        {0.25, 0, false, true}, {0.1, 0.8, false, true}, {0.2, 0, true, false},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        write_noise(path, SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 44100, n);
        long size = file_size(path);
        if (cases[k].cut) {
            assert_int_equal(truncate(path, (off_t)((double)size * cases[k].at)), 0);
        } else {
            FILE *fp = fopen(path, "r+b");
            assert_non_null(fp);
            for (int w = 0; w < 2; w++) {
                double at = w ? cases[k].also : cases[k].at;
                if (at == 0)
                    continue;
                assert_int_equal(fseek(fp, (long)((double)size * at), SEEK_SET), 0);
                for (int i = 0; i < 64; i++)
                    fputc(0x5a ^ i, fp);
            }
            fclose(fp);
        }
        struct sample_buffer *b = NULL;
        int want_r = decode_sequential(path, 48000, 0, &b);
        assert_null(b);
        assert_int_equal(want_r, -EINVAL);
        char want[sizeof(errbuf)];
        snprintf(want, sizeof(want), "%s", errbuf);
        assert_true(strncmp(want, "corrupt audio data", 18) == 0);

        int created = threads_created, seeks = virtual_seeks;
        decode_fails(path, 48000, 0, -EINVAL);
        check_threads(created, 1);
        if (cases[k].split)
            assert_int_equal(virtual_seeks, seeks + 1);
        assert_string_equal(errbuf, want);
    }

    /* The second handle's reads fail (EIO) once it has seeked. */
    write_noise(path, SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 44100, n);
    atomic_store(&preads, 0);
    struct sample_buffer *b = decode_ok(path, 48000, 0); /* how many reads a good load makes */
    sample_buffer_free(b);
    int all = atomic_load(&preads);
    assert_true(all > 20);
    int created = threads_created, seeks = virtual_seeks;
    atomic_store(&pread_budget, all / 2);
    decode_fails(path, 48000, 0, -EIO);
    check_threads(created, 1);
    assert_int_equal(virtual_seeks, seeks + 1);
    assert_true(strncmp(errbuf, "read error", 10) == 0);
}

/* ---- refusals ------------------------------------------------------------ */

static void test_missing_and_bad_paths(void **state)
{
    (void)state;
    decode_fails(fixture("does-not-exist.wav"), 48000, 0, -ENOENT);
    decode_fails("", 48000, 0, -ENOENT);

    char *longpath = malloc(8192);
    assert_non_null(longpath);
    memset(longpath, 'a', 8191);
    longpath[0] = '/';
    longpath[8191] = '\0';
    decode_fails(longpath, 48000, 0, -ENAMETOOLONG);
    free(longpath);

    /* A regular file used as a directory. */
    const char *text = fixture("text.txt");
    FILE *fp = fopen(text, "w");
    assert_non_null(fp);
    fputs("This is plain text, not audio.\n", fp);
    fclose(fp);
    char below[600];
    snprintf(below, sizeof(below), "%s/x.wav", text);
    decode_fails(below, 48000, 0, -ENOTDIR);

    /* No path, no engine rate. */
    struct sample_buffer *b = NULL;
    assert_int_equal(decode_file(NULL, 48000, 0, &opts, &b, errbuf, sizeof(errbuf)), -EINVAL);
    assert_int_equal(decode_file(text, 0, 0, &opts, &b, errbuf, sizeof(errbuf)), -EINVAL);
    assert_null(b);
    /* A NULL or empty reason buffer is allowed. */
    assert_int_equal(decode_file(fixture("nope.wav"), 48000, 0, &opts, &b, NULL, 0), -ENOENT);
    assert_int_equal(decode_file(fixture("nope.wav"), 48000, 0, &opts, &b, errbuf, 0), -ENOENT);
}

static void test_directory(void **state)
{
    (void)state;
    const char *dir = fixture("subdir");
    assert_int_equal(mkdir(dir, 0700), 0);
    decode_fails(dir, 48000, 0, -EISDIR);
    assert_string_equal(errbuf, "is a directory");
}

static void test_fifo_does_not_block(void **state)
{
    (void)state;
    const char *path = fixture("fifo");
    assert_int_equal(mkfifo(path, 0600), 0);
    struct timespec t0, t1;
    alarm(10); /* if it blocked, the default SIGALRM kills the test */
    clock_gettime(CLOCK_MONOTONIC, &t0);
    decode_fails(path, 48000, 0, -EINVAL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    alarm(0);
    double dt = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    assert_true(dt < 1.0);
    assert_string_equal(errbuf, "not a regular file");
}

static void test_devices_and_sockets(void **state)
{
    (void)state;
    decode_fails("/dev/null", 48000, 0, -EINVAL);
    assert_string_equal(errbuf, "not a regular file");
    decode_fails("/dev/zero", 48000, 0, -EINVAL);

    const char *path = fixture("sock");
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(s >= 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
    decode_fails(path, 48000, 0, -EINVAL);
    close(s);
}

static void test_permission_denied(void **state)
{
    (void)state;
    short x[10] = {0};
    const char *path = fixture("noread.wav");
    write_short(path, SF_FORMAT_WAV | SF_FORMAT_PCM_16, 1, 48000, x, 10);
    assert_int_equal(chmod(path, 0), 0);
    if (geteuid() != 0) {
        decode_fails(path, 48000, 0, -EACCES);
        assert_string_equal(errbuf, "permission denied");
        return;
    }
    /* Root reads anything: try as nobody in a child instead. */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (setgid(65534) < 0 || setuid(65534) < 0)
            _exit(2);
        struct sample_buffer *b = NULL;
        int r = decode_file(path, 48000, 0, &opts, &b, errbuf, sizeof(errbuf));
        _exit(r == -EACCES && b == NULL && strcmp(errbuf, "permission denied") == 0 ? 0 : 1);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) == 2)
        skip(); /* cannot drop privileges here */
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_not_audio(void **state)
{
    (void)state;
    const char *path = fixture("notes.txt");
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    for (int i = 0; i < 100; i++)
        fprintf(fp, "line %d: this is a text file, not a sound file\n", i);
    fclose(fp);
    decode_fails(path, 48000, 0, -EINVAL);
    assert_non_null(strstr(errbuf, "not an audio file"));

    path = fixture("empty.wav");
    fp = fopen(path, "w");
    assert_non_null(fp);
    fclose(fp);
    decode_fails(path, 48000, 0, -EINVAL);
}

static void test_too_many_channels(void **state)
{
    (void)state;
    short x[300] = {0};
    const char *path = fixture("three.wav");
    write_short(path, SF_FORMAT_WAV | SF_FORMAT_PCM_16, 3, 48000, x, 100);
    decode_fails(path, 48000, 0, -E2BIG);
    assert_string_equal(errbuf, "too many channels (3; at most 2)");
}

static void test_zero_frames(void **state)
{
    (void)state;
    const char *path = fixture("zero.wav");
    write_short(path, SF_FORMAT_WAV | SF_FORMAT_PCM_16, 1, 48000, NULL, 0);
    decode_fails(path, 48000, 0, -ENODATA);
    assert_string_equal(errbuf, "no audio frames");
    path = fixture("zero.aiff");
    write_short(path, SF_FORMAT_AIFF | SF_FORMAT_PCM_24, 2, 44100, NULL, 0);
    decode_fails(path, 48000, 0, -ENODATA);
}

static void test_max_bytes(void **state)
{
    (void)state;
    short x[2000] = {0};
    const char *path = fixture("small.wav");
    write_short(path, SF_FORMAT_WAV | SF_FORMAT_PCM_16, 2, 48000, x, 1000);
    /* 1000 frames x 2 channels x 2 bytes = 4000 bytes stored: 16-bit at the
     * engine rate keeps its integers. */
    struct sample_buffer *b = decode_ok(path, 48000, 4000);
    assert_int_equal(b->frames, 1000);
    assert_int_equal(b->format, SAMPLE_S16);
    sample_buffer_free(b);
    decode_fails(path, 48000, 3999, -E2BIG);
    assert_non_null(strstr(errbuf, "file too large"));
    assert_non_null(strstr(errbuf, "MiB"));

    /* The limit applies to the size at the output rate, in floats once
     * converted: 1000 frames at 48k become 2000 at 96k (16000 bytes). */
    b = decode_ok(path, 96000, 16000);
    assert_int_equal(b->frames, 2000);
    sample_buffer_free(b);
    decode_fails(path, 96000, 15999, -E2BIG);
    b = decode_ok(path, 24000, 4000);
    assert_int_equal(b->frames, 500);
    sample_buffer_free(b);

    /* Mono counts one channel. */
    path = fixture("small-mono.wav");
    write_short(path, SF_FORMAT_WAV | SF_FORMAT_PCM_16, 1, 48000, x, 1000);
    b = decode_ok(path, 48000, 2000);
    sample_buffer_free(b);
    decode_fails(path, 48000, 1999, -E2BIG);
    assert_string_equal(errbuf, "file too large (0.1 MiB decoded; limit 0.0 MiB)");

    /* 16-bit, in MiB terms: 10 s of stereo at 48 kHz is 1.8 MiB stored. */
    short *pcm = calloc(48000 * 10 * 2, sizeof(short));
    assert_non_null(pcm);
    path = fixture("ten-seconds-16.wav");
    write_short(path, SF_FORMAT_WAV | SF_FORMAT_PCM_16, 2, 48000, pcm, 48000 * 10);
    free(pcm);
    decode_fails(path, 48000, 1024 * 1024, -E2BIG);
    assert_string_equal(errbuf, "file too large (1.9 MiB decoded; limit 1.0 MiB)");
    b = decode_ok(path, 48000, 2 * 1024 * 1024);
    assert_int_equal(b->format, SAMPLE_S16);
    sample_buffer_free(b);

    /* A big limit, in MiB terms. */
    float *big = calloc(48000 * 10, sizeof(float));
    assert_non_null(big);
    path = fixture("ten-seconds.wav");
    write_float(path, SF_FORMAT_WAV | SF_FORMAT_FLOAT, 1, 48000, big, 48000 * 10);
    free(big);
    decode_fails(path, 48000, 1024 * 1024, -E2BIG);
    assert_string_equal(errbuf, "file too large (1.9 MiB decoded; limit 1.0 MiB)");
}

/* No descriptor survives any outcome. */
static void test_no_fd_leaks(void **state)
{
    (void)state;
    short x[200] = {0};
    const char *ok = fixture("fdcheck.wav");
    write_short(ok, SF_FORMAT_WAV | SF_FORMAT_PCM_16, 2, 48000, x, 100);
    const char *three = fixture("fdcheck3.wav");
    write_short(three, SF_FORMAT_WAV | SF_FORMAT_PCM_16, 3, 48000, x, 50);
    const char *text = fixture("fdcheck.txt");
    FILE *fp = fopen(text, "w");
    assert_non_null(fp);
    fputs("not audio\n", fp);
    fclose(fp);
    const char *dir = fixture("fdcheck.d");
    assert_int_equal(mkdir(dir, 0700), 0);

    int before = count_fds();
    for (int i = 0; i < 20; i++) {
        struct sample_buffer *b = NULL;
        assert_int_equal(decode_file(ok, 48000, 0, &opts, &b, errbuf, sizeof(errbuf)), 0);
        sample_buffer_free(b);
        assert_int_equal(decode_file(ok, 44100, 0, &opts, &b, errbuf, sizeof(errbuf)), 0);
        sample_buffer_free(b);
        assert_int_equal(decode_file(ok, 48000, 10, &opts, &b, errbuf, sizeof(errbuf)), -E2BIG);
        assert_int_equal(decode_file(three, 48000, 0, &opts, &b, errbuf, sizeof(errbuf)), -E2BIG);
        assert_int_equal(decode_file(text, 48000, 0, &opts, &b, errbuf, sizeof(errbuf)), -EINVAL);
        assert_int_equal(decode_file(dir, 48000, 0, &opts, &b, errbuf, sizeof(errbuf)), -EISDIR);
        assert_int_equal(decode_file("/dev/null", 48000, 0, &opts, &b, errbuf, sizeof(errbuf)),
                         -EINVAL);
    }
    assert_int_equal(count_fds(), before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_pcm16_mono_exact, test_teardown),
        cmocka_unit_test_teardown(test_pcm16_stereo_exact, test_teardown),
        cmocka_unit_test_teardown(test_other_pcm_stays_float, test_teardown),
        cmocka_unit_test_teardown(test_float_nonfinite, test_teardown),
        cmocka_unit_test_teardown(test_resample_sine, test_teardown),
        cmocka_unit_test_teardown(test_resample_stereo, test_teardown),
        cmocka_unit_test_teardown(test_resample_down_and_lengths, test_teardown),
        cmocka_unit_test_teardown(test_flac_exact, test_teardown),
        cmocka_unit_test_teardown(test_ogg_vorbis, test_teardown),
        cmocka_unit_test_teardown(test_truncated_wav, test_teardown),
        cmocka_unit_test_teardown(test_truncated_flac, test_teardown),
        cmocka_unit_test_teardown(test_overstated_length, test_teardown),
        cmocka_unit_test_teardown(test_unknown_length, test_teardown),
        cmocka_unit_test_teardown(test_pipeline_matches_single_thread, test_teardown),
        cmocka_unit_test_teardown(test_pipeline_short_files_sequential, test_teardown),
        cmocka_unit_test_teardown(test_pipeline_corrupt_flac, test_teardown),
        cmocka_unit_test_teardown(test_pipeline_error_after_output_complete, test_teardown),
        cmocka_unit_test_teardown(test_pipeline_unknown_length, test_teardown),
        cmocka_unit_test_teardown(test_split_matches_sequential, test_teardown),
        cmocka_unit_test_teardown(test_split_fallbacks, test_teardown),
        cmocka_unit_test_teardown(test_split_errors, test_teardown),
        cmocka_unit_test_teardown(test_missing_and_bad_paths, test_teardown),
        cmocka_unit_test_teardown(test_directory, test_teardown),
        cmocka_unit_test_teardown(test_fifo_does_not_block, test_teardown),
        cmocka_unit_test_teardown(test_devices_and_sockets, test_teardown),
        cmocka_unit_test_teardown(test_permission_denied, test_teardown),
        cmocka_unit_test_teardown(test_not_audio, test_teardown),
        cmocka_unit_test_teardown(test_too_many_channels, test_teardown),
        cmocka_unit_test_teardown(test_zero_frames, test_teardown),
        cmocka_unit_test_teardown(test_max_bytes, test_teardown),
        cmocka_unit_test_teardown(test_no_fd_leaks, test_teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
