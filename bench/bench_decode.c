/* bench_decode.c - the reference times for the /load rows of the benchmark.
 *
 *   bench_decode FILE RATE [REPEATS]
 *
 * Measures, in this process and with the file in the page cache:
 *  - decode:  libsndfile alone, sf_readf_float() of the whole file into one
 *             preallocated, pre-touched interleaved buffer in blocks of 65536
 *             frames (the same block size as the daemon's decoder);
 *  - convert: when the file's rate differs from RATE, the same decode fed
 *             block by block to libsoxr at SOXR_HQ (the daemon's setting),
 *             writing split (planar) output into a pre-touched buffer: what
 *             "decode + sample-rate conversion done alone" costs.
 *  - daemon:  the daemon's own decode_file() (decode.c: decode, deinterleave
 *             or convert, lock and touch the buffer; 16-bit PCM at RATE is
 *             read as integers straight into it), in this process: the
 *             loader's share of a /load, without the OSC and audio-thread
 *             hops around it.  For a conversion also "unsplit": the same
 *             with the two-halves split turned off (struct decode_options' split_min_frames),
 *             which leaves the pipelined path, run alternately with it.
 *             BENCH_SPLIT_MIN_FRAMES moves the split's threshold for the
 *             first (to time the split on files shorter than it).
 * Each is run REPEATS times (default 7); the minimum and median are printed
 * as one JSON line.  It never fails on timing.
 *
 *   bench_decode --make-flac FILE SECONDS RATE
 *
 * writes a stereo 16-bit FLAC test file (a few tones under light noise, so
 * it compresses like music rather than like silence).
 */
#include <math.h>
#include <sndfile.h>
#include <soxr.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"
#include "decode.h"
#include "sample_alloc.h"

#define BLOCK 65536

static void die(const char *what)
{
    fprintf(stderr, "bench_decode: %s\n", what);
    exit(1);
}

static double decode_once(const char *path, float *dst, sf_count_t *frames, int *ch, int *rate)
{
    SF_INFO info;
    memset(&info, 0, sizeof(info));
    double t0 = bench_now();
    SNDFILE *sf = sf_open(path, SFM_READ, &info);
    if (!sf)
        die(sf_strerror(NULL));
    sf_count_t done = 0;
    for (;;) {
        sf_count_t got = sf_readf_float(sf, dst + done * info.channels, BLOCK);
        if (got <= 0)
            break;
        done += got;
    }
    sf_close(sf);
    double t1 = bench_now();
    *frames = done;
    *ch = info.channels;
    *rate = info.samplerate;
    return t1 - t0;
}

/* SOXR_HQ, the daemon's setting, unless BENCH_SOXR_QUALITY names another
 * (LQ, MQ, HQ, VHQ) to compare the cost of each. */
static unsigned long quality = SOXR_HQ;
static const char *quality_name = "SOXR_HQ";

static double convert_once(const char *path, float *scratch, float *out0, float *out1, size_t olen,
                           unsigned rate)
{
    SF_INFO info;
    memset(&info, 0, sizeof(info));
    double t0 = bench_now();
    SNDFILE *sf = sf_open(path, SFM_READ, &info);
    if (!sf)
        die(sf_strerror(NULL));
    soxr_error_t err = NULL;
    soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_S);
    soxr_quality_spec_t q = soxr_quality_spec(quality, 0);
    soxr_t s = soxr_create(info.samplerate, rate, (unsigned)info.channels, &err, &io, &q, NULL);
    if (!s)
        die(err ? err : "soxr_create");
    size_t odone_total = 0;
    for (int flush = 0; !flush;) {
        sf_count_t got = sf_readf_float(sf, scratch, BLOCK);
        if (got <= 0)
            flush = 1;
        size_t used = 0;
        do {
            size_t idone = 0, odone = 0;
            float *outs[2] = {out0 + odone_total, out1 + odone_total};
            err = soxr_process(s, flush ? NULL : scratch + used * info.channels,
                               flush ? 0 : (size_t)got - used, &idone, (void *)outs,
                               olen - odone_total, &odone);
            if (err)
                die(err);
            used += idone;
            odone_total += odone;
            if (flush || odone_total >= olen)
                break;
        } while (used < (size_t)got);
    }
    soxr_delete(s);
    sf_close(sf);
    return bench_now() - t0;
}

static int make_flac(const char *path, double seconds, int rate)
{
    SF_INFO info = {.samplerate = rate, .channels = 2, .format = SF_FORMAT_FLAC | SF_FORMAT_PCM_16};
    SNDFILE *sf = sf_open(path, SFM_WRITE, &info);
    if (!sf)
        die(sf_strerror(NULL));
    static float blk[BLOCK * 2];
    sf_count_t total = (sf_count_t)(seconds * rate), done = 0;
    uint32_t x = 12345;
    while (done < total) {
        sf_count_t n = total - done < BLOCK ? total - done : BLOCK;
        for (sf_count_t i = 0; i < n; i++) {
            double t = (double)(done + i) / rate;
            x = x * 1664525u + 1013904223u;
            float noise = ((float)(x >> 8) / 16777216.0f - 0.5f) * 0.02f;
            blk[2 * i] =
                (float)(0.3 * sin(2 * M_PI * 220 * t) + 0.1 * sin(2 * M_PI * 3300 * t)) + noise;
            blk[2 * i + 1] =
                (float)(0.3 * sin(2 * M_PI * 330 * t) + 0.1 * sin(2 * M_PI * 5100 * t)) - noise;
        }
        if (sf_writef_float(sf, blk, n) != n)
            die("write failed");
        done += n;
    }
    sf_close(sf);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "--make-flac") == 0)
        return make_flac(argv[2], atof(argv[3]), atoi(argv[4]));
    if (argc < 3)
        die("usage: bench_decode FILE RATE [REPEATS]");
    const char *qn = getenv("BENCH_SOXR_QUALITY");
    if (qn && *qn) {
        static const struct {
            const char *n;
            unsigned long q;
            const char *full;
        } qs[] = {{"LQ", SOXR_LQ, "SOXR_LQ"},
                  {"MQ", SOXR_MQ, "SOXR_MQ"},
                  {"HQ", SOXR_HQ, "SOXR_HQ"},
                  {"VHQ", SOXR_VHQ, "SOXR_VHQ"}};
        for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++)
            if (strcmp(qn, qs[i].n) == 0) {
                quality = qs[i].q;
                quality_name = qs[i].full;
            }
    }
    const char *path = argv[1];
    unsigned rate = (unsigned)atoi(argv[2]);
    int reps = argc > 3 ? atoi(argv[3]) : 7;
    if (reps < 1 || reps > 100)
        reps = 7;

    SF_INFO info;
    memset(&info, 0, sizeof(info));
    SNDFILE *sf = sf_open(path, SFM_READ, &info);
    if (!sf)
        die(sf_strerror(NULL));
    sf_close(sf);
    if (info.channels < 1 || info.channels > 2)
        die("1 or 2 channels only");
    size_t n = (size_t)info.frames * (size_t)info.channels + BLOCK * 2;
    float *dst = malloc(n * sizeof(float));
    size_t olen = (size_t)((double)info.frames * rate / info.samplerate) + 4096;
    float *o0 = malloc(olen * sizeof(float)), *o1 = malloc(olen * sizeof(float));
    if (!dst || !o0 || !o1)
        die("out of memory");
    memset(dst, 0, n * sizeof(float)); /* touched: page faults are not decode time */
    memset(o0, 0, olen * sizeof(float));
    memset(o1, 0, olen * sizeof(float));

    double dec[100], conv[100];
    sf_count_t frames = 0;
    int ch = 0, in_rate = 0;
    decode_once(path, dst, &frames, &ch, &in_rate); /* warm the page cache */
    for (int i = 0; i < reps; i++)
        dec[i] = decode_once(path, dst, &frames, &ch, &in_rate);
    qsort(dec, (size_t)reps, sizeof(double), bench_cmp_double);
    printf("{\"file\": \"%s\", \"frames\": %lld, \"channels\": %d, \"rate\": %d, "
           "\"decode_min_ms\": %.3f, \"decode_median_ms\": %.3f",
           path, (long long)frames, ch, in_rate, dec[0] * 1e3, dec[reps / 2] * 1e3);
    if ((unsigned)in_rate != rate) {
        for (int i = 0; i < reps; i++)
            conv[i] = convert_once(path, dst, o0, o1, olen, rate);
        qsort(conv, (size_t)reps, sizeof(double), bench_cmp_double);
        printf(", \"convert_quality\": \"%s\", \"decode_convert_min_ms\": %.3f, "
               "\"decode_convert_median_ms\": %.3f",
               quality_name, conv[0] * 1e3, conv[reps / 2] * 1e3);
    }
    /* decode_file() as the daemon runs it and, for a conversion, in the
     * same run with the two-halves split turned off (the pipelined path),
     * the two alternating so that a slow stretch of the VM hits both. */
    bool ab = (unsigned)in_rate != rate;
    const char *smf = getenv("BENCH_SPLIT_MIN_FRAMES");
    struct decode_options opts = decode_default_options;
    if (smf && *smf)
        opts.split_min_frames = strtoull(smf, NULL, 10);
    const uint64_t split_default = opts.split_min_frames;
    double dd[100], dp[100];
    for (int i = 0; i < reps; i++) {
        for (int k = 0; k < (ab ? 2 : 1); k++) {
            bool split = ((i + k) % 2 == 0) || !ab;
            opts.split_min_frames = split ? split_default : UINT64_MAX;
            struct sample_buffer *b = NULL;
            char err[256];
            double t0 = bench_now();
            if (decode_file(path, rate, 0, &opts, &b, err, sizeof(err)) < 0)
                die(err);
            (split ? dd : dp)[i] = bench_now() - t0;
            sample_buffer_free(b);
        }
    }
    qsort(dd, (size_t)reps, sizeof(double), bench_cmp_double);
    printf(", \"daemon_decode_min_ms\": %.3f, \"daemon_decode_median_ms\": %.3f", dd[0] * 1e3,
           dd[reps / 2] * 1e3);
    if (ab) {
        qsort(dp, (size_t)reps, sizeof(double), bench_cmp_double);
        printf(
            ", \"daemon_decode_unsplit_min_ms\": %.3f, \"daemon_decode_unsplit_median_ms\": %.3f",
            dp[0] * 1e3, dp[reps / 2] * 1e3);
    }
    printf("}\n");
    free(dst);
    free(o0);
    free(o1);
    return 0;
}
