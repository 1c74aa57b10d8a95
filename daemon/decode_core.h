/* decode_core.h - INTERNAL to the decoder: its state and primitives, which
 * decode.c and the strategies (decode_direct.c, decode_pipe.c, decode_split.c) use.  Nothing else
 * includes it; the decoder's API is decode.h.
 *
 * One decoder is one load: the file libsndfile has open, the converter, the
 * output buffer and how far it is filled, the limits, and where the reason
 * for a failure goes.  decode.c makes it (open, probe, buffer) and decides
 * which path fills it; the converting paths work on it, or on copies of it
 * with a SNDFILE, converter and reason of their own for their helper
 * threads.  The primitives declared here are decode_core.c's and call
 * nothing above them; see decode.c's header comment for the module as a whole.
 */
#ifndef LOOPERD_DECODE_CORE_H
#define LOOPERD_DECODE_CORE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sndfile.h>
#include <soxr.h>

#include "sample.h"

#define DECODE_BLOCK 65536 /* frames per libsndfile read */

/* Longest libsndfile message worth quoting in a reason. */
#define DECODE_LIBMSG_MAX 80

struct decoder {
    SNDFILE *sf;
    soxr_t soxr; /* NULL when the rates match */
    uint32_t channels;
    uint32_t in_rate;
    uint32_t rate;
    bool known;          /* sf_info.frames is a real count */
    bool sanitize;       /* float/double source: may hold NaN/Inf */
    uint32_t format;     /* of the buffer: SAMPLE_S16 for 16-bit PCM at the engine rate */
    uint64_t in_frames;  /* reported input length (when known) */
    uint64_t out_frames; /* output length for in_frames (when known) */
    uint64_t in_done;    /* input frames decoded so far */
    uint64_t max_frames; /* output frames allowed by max_bytes / uint32 */
    size_t max_bytes;
    struct sample_buffer *buf;
    uint32_t filled; /* output frames written into buf */
    float *scratch;  /* `block` interleaved input frames */
    /* Frames per read into scratch: DECODE_BLOCK, or a known length below
     * it (libsndfile zero-fills what a read asks for beyond the end, so a
     * short file read in a whole block pays for writing, and first faulting
     * in, the rest of it). */
    uint32_t block;
    char *err;
    size_t errlen;
    /* For opening the file a second time (the two halves). */
    int file_fd;        /* the descriptor libsndfile owns: valid while sf is open */
    int file_format;    /* SF_INFO.format as reported */
    bool file_seekable; /* SF_INFO.seekable */
    /* Bumped after every read that returned data (any thread of the load),
     * so the loader can tell a stalled read from a long decode; NULL: none. */
    _Atomic uint64_t *progress;
    uint64_t split_min_frames; /* struct decode_options */
};

/* Counts one read that made progress (struct decoder). */
static inline void decode_progress(const struct decoder *d)
{
    if (d->progress)
        atomic_fetch_add_explicit(d->progress, 1, memory_order_relaxed);
}

/* ---- primitives (decode_core.c) -------------------------------------------- */

/* Writes the reason into d->err (if any) and returns `e`, a negative errno. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
int decode_fail(struct decoder *d, int e, const char *fmt, ...);

/* Copies a libsndfile message without its trailing full stop or newline, or
 * an empty string when it is too long to be useful in a one-line reason. */
void decode_libmsg(char *dst, size_t n, const char *msg);

/* Output frames for `in` input frames: round(in * rate / in_rate), half up,
 * in exact integer arithmetic.  UINT64_MAX when it does not fit. */
uint64_t decode_out_len(const struct decoder *d, uint64_t in);

/* Makes room for at least `want` output frames (clamped to max_frames; the
 * caller checks the limit itself).  Only files of unknown length grow. */
int decode_reserve(struct decoder *d, uint64_t want);

/* Reads up to `want` frames of interleaved floats into `dst`, counting
 * in_done.  Returns the count (0 at the end) or a negative errno, with the
 * reason in d->err, if libsndfile reports an error or an unknown length
 * turns out too large. */
int64_t decode_read_block(struct decoder *d, float *dst, uint64_t want);

/* A converter from the file's rate to the engine's at the daemon's quality
 * (decode.c, "Resampling"); every converter of a load comes from here. */
soxr_t decode_new_converter(const struct decoder *d, soxr_error_t *e);

/* Starts `fn(arg)` on a helper thread (decode.c, "Helper threads").
 * Returns 0 or an errno value. */
int decode_start_helper(pthread_t *thread, void *(*fn)(void *), void *arg);

/* Writes the out-of-memory reason and returns -ENOMEM. */
int decode_fail_nomem(struct decoder *d);

/* The reason for a buffer of `frames` (at_least: or more) over max_bytes;
 * returns -E2BIG. */
int decode_fail_too_large(struct decoder *d, uint64_t frames, bool at_least);

/* Frees what the load holds (buffer, scratch, converter, file). */
void decode_release(struct decoder *d);

/* Replaces d->buf by one of `cap` frames keeping its first `frames`. */
int decode_rebuffer(struct decoder *d, uint32_t cap, uint32_t frames);

/* Sets the buffer's final length to `frames`, trimming spare capacity. */
int decode_finish(struct decoder *d, uint32_t frames);

/* decode_read_block() for either float (sanitised) or, with s16, the file's
 * 16-bit integers straight into `dst`. */
int64_t decode_read_frames(struct decoder *d, void *dst, uint64_t want, bool s16);

/* The output has reached max_frames while the length is unknown: reads on
 * to the end (into d->scratch), which either shows the file fits after all
 * or fails (in decode_read_block) as soon as it cannot. */
int decode_drain(struct decoder *d);

/* ---- feeding the converter (decode_core.c) -------------------------------- */

/* Output frames per channel a window throws away per soxr call. */
#define DECODE_DISCARD 1024

/* Where a converter's output goes: d->buf from d->filled up to `end`, after
 * the first `skip` frames, which go to `discard` (DECODE_DISCARD frames per
 * channel) and are thrown away.  `end` 0: up to the buffer's end, which for
 * a length not known grows as the output comes. */
struct decode_window {
    uint32_t end;
    uint32_t skip;
    float *discard;
};

/* decode_feed(): the window filled before the input was all taken. */
#define DECODE_FULL 1

/* Feeds `n` interleaved frames at `in` through d->soxr into the window, in
 * as many soxr calls as it takes, or with `in` NULL flushes what soxr still
 * holds.  Returns 0 once the input is taken (or nothing more comes out),
 * DECODE_FULL when the window is full first, or a negative errno with the
 * reason in d->err.  Every converting strategy feeds soxr through here, so
 * all of them cut the same input into the same calls. */
int decode_feed(struct decoder *d, struct decode_window *w, const float *in, size_t n);

#endif
