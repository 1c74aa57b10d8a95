/* decode_core.c - the decoder's state and primitives (decode_core.h): the
 * reasons for failing, the output buffer (grow, trim, free), reading blocks
 * (sanitised, counted for the loader's stall watchdog), helper threads, the
 * converter and the one loop that feeds it.  The strategies
 * (decode_direct.c, decode_pipe.c, decode_split.c) are built from these;
 * decode.c's header comment has the design as a whole.
 */
#include "decode_core.h"
#include "decode.h"
#include "sample_alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sndfile.h>
#include <soxr.h>

/* ---- reasons ------------------------------------------------------------ */

int decode_fail(struct decoder *d, int e, const char *fmt, ...)
{
    if (d->err && d->errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(d->err, d->errlen, fmt, ap);
        va_end(ap);
    }
    return e;
}

int decode_fail_nomem(struct decoder *d)
{
    return decode_fail(d, -ENOMEM, "out of memory");
}

/* Copies a libsndfile message without its trailing full stop or newline, or
 * an empty string when it is too long to be useful in a one-line reason. */
void decode_libmsg(char *dst, size_t n, const char *msg)
{
    dst[0] = '\0';
    if (!msg)
        return;
    if (strncmp(msg, "Error : ", 8) == 0)
        msg += 8;
    size_t len = strlen(msg);
    while (len > 0 && (msg[len - 1] == '.' || msg[len - 1] == '\n' || msg[len - 1] == ' '))
        len--;
    if (len == 0 || len > DECODE_LIBMSG_MAX || len >= n)
        return;
    memcpy(dst, msg, len);
    dst[len] = '\0';
}

/* Output frames for `in` input frames: round(in * rate / in_rate), half up,
 * in exact integer arithmetic.  UINT64_MAX when it does not fit. */
uint64_t decode_out_len(const struct decoder *d, uint64_t in)
{
    if (d->in_rate == d->rate)
        return in;
    if (in > (UINT64_MAX - d->in_rate) / d->rate)
        return UINT64_MAX;
    return (in * d->rate + d->in_rate / 2) / d->in_rate;
}

static double mib(uint64_t bytes)
{
    return (double)bytes / (1024.0 * 1024.0);
}

/* The reason for a result longer than max_frames.  `at_least`: the length is
 * a lower bound (still decoding a file of unknown length). */
int decode_fail_too_large(struct decoder *d, uint64_t frames, bool at_least)
{
    if (frames > UINT32_MAX)
        return decode_fail(d, -E2BIG, "file too long (%s%" PRIu64 " frames; at most %" PRIu32 ")",
                           at_least ? "more than " : "", frames, UINT32_MAX);
    uint64_t bytes = frames * sample_frame_bytes(d->format, d->channels);
    /* Round the size up and the limit down, so the two never print equal. */
    return decode_fail(d, -E2BIG, "file too large (%s%.1f MiB decoded; limit %.1f MiB)",
                       at_least ? "more than " : "", ceil(mib(bytes) * 10.0) / 10.0,
                       floor(mib(d->max_bytes) * 10.0) / 10.0);
}

/* ---- output buffer ------------------------------------------------------ */

void decode_release(struct decoder *d)
{
    if (d->soxr)
        soxr_delete(d->soxr);
    if (d->sf)
        sf_close(d->sf); /* closes the descriptor too */
    free(d->scratch);
    sample_buffer_free(d->buf);
}

/* Moves the first `frames` frames of each channel of `d->buf` into a new
 * buffer of `cap` frames. */
int decode_rebuffer(struct decoder *d, uint32_t cap, uint32_t frames)
{
    struct sample_buffer *nb = sample_buffer_new_format(cap, d->channels, d->rate, d->format);
    if (!nb)
        return -ENOMEM;
    if (d->buf && d->format == SAMPLE_S16) {
        memcpy(sample_buffer_s16(nb), sample_buffer_s16(d->buf),
               (size_t)frames * sample_frame_bytes(SAMPLE_S16, d->channels));
    } else if (d->buf) {
        for (uint32_t c = 0; c < d->channels; c++)
            memcpy(sample_buffer_channel(nb, c), sample_buffer_channel(d->buf, c),
                   (size_t)frames * sizeof(float));
    }
    if (d->buf)
        sample_buffer_free(d->buf);
    d->buf = nb;
    return 0;
}

/* Makes room for at least `want` output frames (clamped to max_frames; the
 * caller checks the limit itself).  Only files of unknown length grow, by
 * half again each time so the copies stay amortised O(n). */
int decode_reserve(struct decoder *d, uint64_t want)
{
    if (want > d->max_frames)
        want = d->max_frames;
    uint32_t cap = d->buf ? d->buf->frames : 0;
    if (want <= cap)
        return 0;
    uint64_t grown = (uint64_t)cap + cap / 2;
    if (grown < want)
        grown = want;
    if (grown > d->max_frames)
        grown = d->max_frames;
    return decode_rebuffer(d, (uint32_t)grown, d->filled) < 0 ? decode_fail_nomem(d) : 0;
}

/* Gives the buffer exactly `frames` frames: zero-pads up to it, or drops the
 * tail.  A small excess is dropped in place (a planar channel 1 moves
 * down; `bytes` still describes the allocation, so accounting stays true); a
 * large one, e.g. a truncated file whose header promised much more, is given
 * back by copying into a right-sized buffer. */
int decode_finish(struct decoder *d, uint32_t frames)
{
    int r = decode_reserve(d, frames);
    if (r < 0)
        return r;
    struct sample_buffer *b = d->buf;
    if (d->filled < frames && d->format == SAMPLE_S16) {
        memset(sample_buffer_s16(b) + (size_t)d->filled * d->channels, 0,
               (size_t)(frames - d->filled) * sample_frame_bytes(SAMPLE_S16, d->channels));
    } else if (d->filled < frames) {
        for (uint32_t c = 0; c < d->channels; c++)
            memset(sample_buffer_channel(b, c) + d->filled, 0,
                   (size_t)(frames - d->filled) * sizeof(float));
    }
    d->filled = frames;
    if (frames == b->frames)
        return 0;
    uint32_t excess = b->frames - frames;
    if (excess > b->frames / 8 && decode_rebuffer(d, frames, frames) == 0)
        return 0;
    /* In place (also the fallback if the smaller allocation failed).
     * Interleaved integers simply end earlier. */
    if (d->format == SAMPLE_S16) {
        b->frames = frames;
        return 0;
    }
    if (d->channels == 2)
        memmove(b->data + frames, b->data + b->frames, (size_t)frames * sizeof(float));
    b->frames = frames;
    b->ch[0] = b->data;
    b->ch[1] = d->channels == 2 ? b->data + frames : b->data;
    return 0;
}

/* ---- decoding ------------------------------------------------------------ */

static void sanitize(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            x[i] = 0.0f;
}

/* Reads up to `want` frames into `dst`, as floats or (`s16`) as 16-bit
 * integers.  Returns the count (0 at the end) or a negative errno if
 * libsndfile reports an error. */
int64_t decode_read_frames(struct decoder *d, void *dst, uint64_t want, bool s16)
{
    sf_count_t got = s16 ? sf_readf_short(d->sf, dst, (sf_count_t)want)
                         : sf_readf_float(d->sf, dst, (sf_count_t)want);
    int e = sf_error(d->sf);
    if (e != SF_ERR_NO_ERROR) {
        char msg[DECODE_LIBMSG_MAX + 1];
        decode_libmsg(msg, sizeof(msg), sf_error_number(e));
        int code = e == SF_ERR_SYSTEM ? -EIO : -EINVAL;
        const char *what = e == SF_ERR_SYSTEM ? "read error" : "corrupt audio data";
        if (msg[0])
            return decode_fail(d, code, "%s (%s)", what, msg);
        return decode_fail(d, code, "%s", what);
    }
    if (got <= 0)
        return 0;
    decode_progress(d);
    if (d->sanitize && !s16)
        sanitize(dst, (size_t)got * d->channels);
    d->in_done += (uint64_t)got;
    /* Unknown length: fail as soon as the result is certain to be too big. */
    if (!d->known && decode_out_len(d, d->in_done) > d->max_frames)
        return decode_fail_too_large(d, decode_out_len(d, d->in_done), true);
    return got;
}

int64_t decode_read_block(struct decoder *d, float *dst, uint64_t want)
{
    return decode_read_frames(d, dst, want, false);
}

int decode_drain(struct decoder *d)
{
    int64_t got;
    while ((got = decode_read_block(d, d->scratch, d->block)) > 0)
        ;
    return (int)got;
}

/* ---- feeding the converter -------------------------------------------------- */

static uint32_t window_end(const struct decoder *d, const struct decode_window *w)
{
    return w->end ? w->end : d->buf->frames;
}

/* Room to ask for ahead of soxr output: what `n` input frames can produce,
 * plus slack for the filter's history. */
static uint64_t feed_room(const struct decoder *d, uint64_t n)
{
    return (uint64_t)d->filled + decode_out_len(d, n) + 1024;
}

/* Runs soxr once: into the discard block while output is to be skipped,
 * else into the free part of the window.  `in` NULL flushes. */
static int feed_step(struct decoder *d, struct decode_window *w, const float *in, size_t ilen,
                     size_t *idone, size_t *odone)
{
    float *outs[SAMPLE_MAX_CHANNELS];
    size_t olen;
    for (uint32_t c = 0; c < d->channels; c++)
        outs[c] = w->skip > 0 ? w->discard + (size_t)c * DECODE_DISCARD
                              : sample_buffer_channel(d->buf, c) + d->filled;
    if (w->skip > 0)
        olen = w->skip < DECODE_DISCARD ? w->skip : DECODE_DISCARD;
    else
        olen = window_end(d, w) - d->filled;
    soxr_error_t e = soxr_process(d->soxr, in, ilen, idone, outs, olen, odone);
    if (e)
        return decode_fail(d, -EIO, "sample-rate conversion failed (%s)", e);
    if (w->skip > 0)
        w->skip -= (uint32_t)*odone;
    else
        d->filled += (uint32_t)*odone;
    return 0;
}

int decode_feed(struct decoder *d, struct decode_window *w, const float *in, size_t n)
{
    bool flush = in == NULL;
    while (flush || n > 0) {
        int r;
        if (!d->known && w->end == 0 && (r = decode_reserve(d, feed_room(d, n))) < 0)
            return r;
        if (d->filled == window_end(d, w))
            return DECODE_FULL;
        size_t idone = 0, odone = 0;
        if ((r = feed_step(d, w, in, n, &idone, &odone)) < 0)
            return r;
        if (flush) {
            if (odone == 0)
                return 0;
            continue;
        }
        if (idone == 0 && odone == 0)
            return decode_fail(d, -EIO, "sample-rate conversion stalled");
        in += idone * d->channels;
        n -= idone;
    }
    return 0;
}

/* ---- helper threads and converters ---------------------------------------- */

/* Starts `fn(arg)` on a helper thread for the conversion: 1 MiB of stack
 * like the loader (the decoders keep big arrays on the stack), named
 * "looperd-decode", and with every signal blocked but the synchronous ones
 * (decode.c, "Helper threads").  Returns 0 or an errno value. */
int decode_start_helper(pthread_t *thread, void *(*fn)(void *), void *arg)
{
    pthread_attr_t attr;
    sigset_t all, old;
    int e = pthread_attr_init(&attr);
    if (e != 0)
        return e;
    e = pthread_attr_setstacksize(&attr, DECODE_STACK_SIZE);
    if (e == 0) {
        /* The thread starts with this thread's mask: block every signal it
         * could be picked for, so signals go where they would without it.
         * Not the synchronous ones: a fault of its own is delivered to it
         * whatever the mask, and blocked it would kill without a word from
         * any handler. */
        sigfillset(&all);
        sigdelset(&all, SIGSEGV);
        sigdelset(&all, SIGBUS);
        sigdelset(&all, SIGFPE);
        sigdelset(&all, SIGILL);
        pthread_sigmask(SIG_BLOCK, &all, &old);
        e = pthread_create(thread, &attr, fn, arg);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (e == 0)
            (void)pthread_setname_np(*thread, "looperd-decode");
    }
    pthread_attr_destroy(&attr);
    return e;
}

/* A converter from the file's rate to the engine's at the daemon's quality
 * (decode.c, "Resampling"); every converter of a load comes from here. */
soxr_t decode_new_converter(const struct decoder *d, soxr_error_t *e)
{
    soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_S);
    soxr_quality_spec_t q = soxr_quality_spec(SOXR_HQ, 0);
    return soxr_create(d->in_rate, d->rate, d->channels, e, &io, &q, NULL);
}
