/* decode.c - audio file to sample buffer (see decode.h): opening and
 * probing the file, the output buffer, the reads, the same-rate path, and
 * which conversion runs for any other rate.
 *
 * Pipeline: open + fstat -> libsndfile (float, interleaved, 64k-frame blocks)
 * -> either a plain deinterleave (same rate) or libsoxr (other rate) -> the
 * planar sample buffer the audio thread will play.  16-bit PCM at the
 * engine rate skips all of it: libsndfile's integers are read straight into
 * the buffer, which keeps them (SAMPLE_S16, sample.h).  Nothing here is
 * real-time.  At the engine rate it all runs on the loader thread: the
 * deinterleave costs next to nothing beside the decode.  A conversion costs
 * about as much as the decode itself (60 s of 44.1 kHz stereo FLAC: ~41 ms
 * to decode, ~40 ms more for soxr to 48 kHz), and the machine has two
 * cores.  A long file is therefore cut in two at its middle, and each half
 * is decoded and converted on a thread of its own, straight into its part
 * of the buffer: about (decode + convert) / 2 (decode_split.c).  Files
 * that cannot be cut so overlap the two stages instead: a reader thread
 * decodes the next blocks while the loader thread converts the previous
 * one, and the load takes about max(decode, convert) plus one block instead
 * of their sum (decode_pipe.c).  The two come to the same when decoding
 * and converting cost the same, as for that FLAC; the halves are faster
 * the more one of the two outweighs the other (a 44.1 kHz WAV decodes in a
 * fifth of its conversion's time).
 *
 * The files.  This one owns a load from the path to the finished buffer:
 * it opens and probes the file, sizes and trims the buffer, reads and
 * sanitizes blocks, copies a file at the engine rate straight in, makes the
 * converters and starts the helper threads, and for another rate hands the
 * decoder to decode_split.c (two halves on two threads) or, when the file
 * does not qualify, to decode_pipe.c (the conversion loop, with a reader
 * thread decoding ahead).  decode_impl.h, internal to these three files,
 * holds struct decoder and the helpers they share.
 *
 * Opening safely.  The path comes from the network, so it may name anything.
 * It is opened O_NONBLOCK (a FIFO without a writer, or a device waiting for
 * carrier, would otherwise block the loader forever) and O_NOCTTY (a daemon
 * must never acquire a controlling terminal by opening a tty),
 * then fstat()ed: only regular files go on.  Checking the open descriptor,
 * not the path, leaves no window for the path to be swapped in between.
 * O_NONBLOCK is then cleared (it means nothing for a regular file, but
 * libsndfile should see an ordinary descriptor) and the descriptor is handed
 * to sf_open_fd(), which owns it from then on: libsndfile closes it on
 * failure as well as in sf_close().
 *
 * Exact pass-through.  SFC_SET_NORM_FLOAT is on, so integer PCM arrives as
 * x / 2^(bits-1): for 16-bit that is x / 32768.0f, exact because the scale is
 * a power of two.  At the engine rate those floats are stored unchanged, so
 * a sample plays back bit for bit as libsndfile decoded it.  16-bit PCM at
 * the engine rate is stored as the integers x themselves (sf_readf_short),
 * half the bytes, and the mixer plays x * 2^-15: the same floats, bit for
 * bit (daemon/engine.c).  The one exception: a float or double file may
 * hold NaN or Inf, which would poison the whole mix bus (and smear across a
 * resampler's filter); those samples, and only those, are replaced by 0.
 *
 * Length.  libsndfile's frame count is used as the size of the buffer, so the
 * common case (WAV, AIFF, FLAC, Ogg: exact counts) allocates once, exactly,
 * and decodes straight into it.  libsndfile never returns more frames than
 * it reported (sf_readf_float stops at sf_info.frames), so the count is an
 * upper bound.  It may be an overestimate (an MP3 without a Xing header,
 * whose length mpg123 estimated), in which case the buffer is shrunk to what
 * was actually decoded.  A truncated WAV or AIFF needs nothing special:
 * libsndfile clamps the length to the data present when it opens the file.
 * A decoder error, though, refuses the whole file as corrupt (a FLAC cut
 * short reports lost sync): a sample that silently ends early or glitches
 * is worse than a clear /fail.  A format that cannot tell its length
 * reports SF_COUNT_MAX; then the buffer grows geometrically as data comes in.
 * Either way `max_bytes` is enforced on the size the output will have, before
 * allocating when the length is known and as soon as it is exceeded when it
 * is not, so a lying header cannot make the loader allocate past the cap.
 *
 * Resampling.  libsoxr, fed the interleaved blocks as they are decoded and
 * writing its output in split (planar) form straight into the final buffer,
 * so the converted audio is never copied.  The output length is
 * round(frames * rate / in_rate) exactly: soxr's own flush may land a frame
 * short or long, so the tail is trimmed (the output window simply ends there)
 * or zero-padded.  Quality is SOXR_HQ: 20-bit precision (aliasing and
 * imaging about 125 dB down, below the noise floor of any 16-bit source and
 * of the analogue chain after the DAC) with a flat passband (rolloff
 * <= 0.01 dB); it is the cheapest setting without audible artefacts.
 * SOXR_VHQ (28-bit) costs noticeably more CPU and filter memory for a
 * difference nobody can hear; SOXR_MQ and SOXR_LQ (16-bit, wider transition
 * band starting lower) let audible aliasing through and roll off the top of
 * the audio band.  soxr itself runs single-threaded (the default runtime
 * spec): its own threads would only compete with the decode for the same
 * two cores.
 *
 * Helper threads.  The reader (decode_pipe.c) and the second half
 * (decode_split.c) each run on a thread of their own, started by
 * decode_start_helper() and always joined before decode_file() returns.
 * The thread gets 1 MiB of stack like the loader (decoders keep big arrays
 * on the stack; the daemon's default is 256 KiB) and starts with every
 * signal blocked but the synchronous ones, so each signal still goes to a
 * thread that would have taken it without the helper (the daemon's own are
 * blocked everywhere and taken by the main thread's sigtimedwait).  It has
 * the loader's ordinary priority: the real-time audio thread preempts
 * either whenever it needs a core.
 */
#include "decode.h"
#include "decode_impl.h"

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

static int fail_nomem(struct decoder *d)
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
static int fail_too_large(struct decoder *d, uint64_t frames, bool at_least)
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

static void release(struct decoder *d)
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
static int rebuffer(struct decoder *d, uint32_t cap, uint32_t frames)
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
    return rebuffer(d, (uint32_t)grown, d->filled) < 0 ? fail_nomem(d) : 0;
}

/* Gives the buffer exactly `frames` frames: zero-pads up to it, or drops the
 * tail.  A small excess is dropped in place (a planar channel 1 moves
 * down; `bytes` still describes the allocation, so accounting stays true); a
 * large one, e.g. a truncated file whose header promised much more, is given
 * back by copying into a right-sized buffer. */
static int finish(struct decoder *d, uint32_t frames)
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
    if (excess > b->frames / 8 && rebuffer(d, frames, frames) == 0)
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
static int64_t read_frames(struct decoder *d, void *dst, uint64_t want, bool s16)
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
        return fail_too_large(d, decode_out_len(d, d->in_done), true);
    return got;
}

int64_t decode_read_block(struct decoder *d, float *dst, uint64_t want)
{
    return read_frames(d, dst, want, false);
}

/* ---- helper threads and converters ---------------------------------------- */

/* Starts `fn(arg)` on a helper thread for the conversion: 1 MiB of stack
 * like the loader (the decoders keep big arrays on the stack), named
 * "looperd-decode", and with every signal blocked but the synchronous ones
 * (see "Helper threads").  Returns 0 or an errno value. */
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
 * (see "Resampling"); every converter of a load comes from here. */
soxr_t decode_new_converter(const struct decoder *d, soxr_error_t *e)
{
    soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_S);
    soxr_quality_spec_t q = soxr_quality_spec(SOXR_HQ, 0);
    return soxr_create(d->in_rate, d->rate, d->channels, e, &io, &q, NULL);
}

/* ---- the same rate, or another ------------------------------------------- */

/* Same rate: the decoded samples go into the buffer unchanged.  16-bit PCM
 * is read as the file's integers straight into the buffer, interleaved as
 * the mixer reads them (SAMPLE_S16); anything else as floats. */
static int decode_direct(struct decoder *d)
{
    for (;;) {
        int r;
        if (!d->known && (r = decode_reserve(d, (uint64_t)d->filled + DECODE_BLOCK)) < 0)
            return r;
        uint64_t room = d->buf->frames - d->filled;
        if (room == 0)
            return d->known ? 0 : decode_drain(d, NULL); /* known: all the frames reported */
        uint64_t want = room < DECODE_BLOCK ? room : DECODE_BLOCK;
        if (d->format == SAMPLE_S16) {
            int16_t *dst = sample_buffer_s16(d->buf) + (size_t)d->filled * d->channels;
            int64_t got = read_frames(d, dst, want, true);
            if (got <= 0)
                return (int)got;
            d->filled += (uint32_t)got;
        } else if (d->channels == 1) {
            /* Mono: libsndfile writes straight into the buffer. */
            int64_t got = decode_read_block(d, sample_buffer_channel(d->buf, 0) + d->filled, want);
            if (got <= 0)
                return (int)got;
            d->filled += (uint32_t)got;
        } else {
            /* Stereo: read interleaved, deinterleave into the buffer. */
            int64_t got = decode_read_block(d, d->scratch, want);
            if (got <= 0)
                return (int)got;
            float *l = sample_buffer_channel(d->buf, 0) + d->filled;
            float *rr = sample_buffer_channel(d->buf, 1) + d->filled;
            const float *in = d->scratch;
            for (int64_t i = 0; i < got; i++) {
                l[i] = in[2 * i];
                rr[i] = in[2 * i + 1];
            }
            d->filled += (uint32_t)got;
        }
    }
}

/* Other rate: in two halves on two threads when the file qualifies
 * (decode_split.c), else through the conversion loop with a reader thread
 * decoding ahead, or all here (decode_pipe.c). */
static int decode_resampled(struct decoder *d)
{
    int r;
    if (decode_split(d, &r))
        return r;
    return decode_pipe(d);
}

/* ---- opening ------------------------------------------------------------- */

static int open_fail(struct decoder *d, int e)
{
    switch (e) {
    case ENOENT:
        return decode_fail(d, -ENOENT, "no such file");
    case ENOTDIR:
        return decode_fail(d, -ENOTDIR, "no such file (a path component is not a directory)");
    case EACCES:
    case EPERM:
        return decode_fail(d, -EACCES, "permission denied");
    case ENAMETOOLONG:
        return decode_fail(d, -ENAMETOOLONG, "path too long");
    case ELOOP:
        return decode_fail(d, -ELOOP, "too many levels of symbolic links");
    case ENXIO: /* a socket, or a device without a driver */
    case ENODEV:
        return decode_fail(d, -EINVAL, "not a regular file");
    case ENOMEM:
        return fail_nomem(d);
    default: {
        char buf[128];
        return decode_fail(d, -e, "cannot open (%s)", strerror_r(e, buf, sizeof(buf)));
    }
    }
}

/* Checks that `fd` (opened O_NONBLOCK) is a regular file and hands it to
 * libsndfile, which owns it from then on; closes it on every failure. */
static int open_audio_fd(struct decoder *d, int fd, SF_INFO *info)
{
    struct stat st;
    int r = 0;
    if (fstat(fd, &st) < 0) {
        char buf[128];
        int e = errno;
        r = decode_fail(d, -e, "cannot stat (%s)", strerror_r(e, buf, sizeof(buf)));
    } else if (S_ISDIR(st.st_mode)) {
        r = decode_fail(d, -EISDIR, "is a directory");
    } else if (!S_ISREG(st.st_mode)) {
        r = decode_fail(d, -EINVAL, "not a regular file");
    } else {
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
            char buf[128];
            int e = errno;
            r = decode_fail(d, -e, "cannot open (%s)", strerror_r(e, buf, sizeof(buf)));
        }
    }
    if (r < 0) {
        close(fd);
        return r;
    }
    /* The whole file is read front to back once: ask for big read-ahead. */
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);

    memset(info, 0, sizeof(*info));                  /* format 0: let libsndfile detect it */
    d->sf = sf_open_fd(fd, SFM_READ, info, SF_TRUE); /* owns fd, even on failure */
    if (!d->sf) {
        char msg[DECODE_LIBMSG_MAX + 1];
        decode_libmsg(msg, sizeof(msg), sf_strerror(NULL));
        if (msg[0])
            return decode_fail(d, -EINVAL, "not an audio file or unsupported format (%s)", msg);
        return decode_fail(d, -EINVAL, "not an audio file or unsupported format");
    }
    d->file_fd = fd;
    d->file_format = info->format;
    d->file_seekable = info->seekable != 0;
    return 0;
}

/* Opens `path` as a regular file and hands it to libsndfile. */
static int open_audio(struct decoder *d, const char *path, SF_INFO *info)
{
    int fd = open(path, DECODE_OPEN_FLAGS);
    if (fd < 0)
        return open_fail(d, errno);
    return open_audio_fd(d, fd, info);
}

/* Validates the stream and sets up the length, limit and converter. */
static int prepare(struct decoder *d, const SF_INFO *info)
{
    if (info->channels < 1)
        return decode_fail(d, -EINVAL, "not an audio file or unsupported format (no channels)");
    if (info->channels > SAMPLE_MAX_CHANNELS)
        return decode_fail(d, -E2BIG, "too many channels (%d; at most %d)", info->channels,
                           SAMPLE_MAX_CHANNELS);
    if (info->samplerate <= 0)
        return decode_fail(d, -EINVAL, "invalid sample rate (%d Hz)", info->samplerate);
    if (info->frames <= 0)
        return decode_fail(d, -ENODATA, "no audio frames");

    d->channels = (uint32_t)info->channels;
    d->in_rate = (uint32_t)info->samplerate;
    int sub = info->format & SF_FORMAT_SUBMASK;
    d->sanitize = sub == SF_FORMAT_FLOAT || sub == SF_FORMAT_DOUBLE;
    /* 16-bit PCM at the engine rate keeps its integers (sample.h); the
     * limit counts the bytes of the format stored. */
    d->format = sub == SF_FORMAT_PCM_16 && d->in_rate == d->rate ? SAMPLE_S16 : SAMPLE_F32;

    d->max_frames = UINT32_MAX;
    if (d->max_bytes > 0) {
        uint64_t f = d->max_bytes / sample_frame_bytes(d->format, d->channels);
        if (f < d->max_frames)
            d->max_frames = f;
    }

    /* Integer PCM as x / 2^(bits-1) (the default, made explicit). */
    sf_command(d->sf, SFC_SET_NORM_FLOAT, NULL, SF_TRUE);

    d->known = info->frames != SF_COUNT_MAX;
    uint64_t first; /* initial capacity */
    if (d->known) {
        d->in_frames = (uint64_t)info->frames;
        d->out_frames = decode_out_len(d, d->in_frames);
        if (d->out_frames == 0)
            d->out_frames = 1; /* one input frame, downsampled a lot */
        if (d->out_frames > d->max_frames)
            return fail_too_large(d, d->out_frames, false);
        first = d->out_frames;
    } else {
        first = decode_out_len(d, DECODE_BLOCK) + 1024;
        if (first > d->max_frames)
            first = d->max_frames;
        if (first == 0)
            return fail_too_large(d, 1, true);
    }
    if (rebuffer(d, (uint32_t)first, 0) < 0)
        return fail_nomem(d);

    /* Mono floats and 16-bit integers at the engine rate decode in place;
     * everything else needs one block of interleaved floats (so does the
     * drain of an unknown length). */
    if ((d->channels > 1 && d->format == SAMPLE_F32) || d->in_rate != d->rate || !d->known) {
        d->scratch = malloc((size_t)DECODE_BLOCK * d->channels * sizeof(float));
        if (!d->scratch)
            return fail_nomem(d);
    }

    if (d->in_rate != d->rate) {
        soxr_error_t e = NULL;
        d->soxr = decode_new_converter(d, &e);
        if (!d->soxr || e) {
            if (d->soxr) {
                soxr_delete(d->soxr);
                d->soxr = NULL;
            }
            return decode_fail(d, -EINVAL, "cannot convert %" PRIu32 " Hz to %" PRIu32 " Hz (%s)",
                               d->in_rate, d->rate, e ? e : "soxr_create failed");
        }
    }
    return 0;
}

/* The load, from an open file (fd >= 0) or a path. */
static int decode_any(const char *path, int fd, uint32_t rate, size_t max_bytes,
                      const struct decode_options *opts, _Atomic uint64_t *progress,
                      struct sample_buffer **out, char *err, size_t errlen)
{
    if (!opts)
        opts = &decode_default_options;
    struct decoder d = {.rate = rate,
                        .max_bytes = max_bytes,
                        .err = err,
                        .errlen = errlen,
                        .progress = progress,
                        .split_min_frames = opts->split_min_frames};
    SF_INFO info;
    int r;

    if (err && errlen > 0)
        err[0] = '\0';
    if (out)
        *out = NULL;
    if ((!path && fd < 0) || !out) {
        if (fd >= 0)
            close(fd);
        return decode_fail(&d, -EINVAL, "invalid arguments");
    }
    if (rate == 0) {
        if (fd >= 0)
            close(fd);
        return decode_fail(&d, -EINVAL, "invalid engine rate");
    }

    r = fd >= 0 ? open_audio_fd(&d, fd, &info) : open_audio(&d, path, &info);
    if (r < 0 || (r = prepare(&d, &info)) < 0)
        goto out;

    r = d.soxr ? decode_resampled(&d) : decode_direct(&d);
    if (r < 0)
        goto out;

    /* The output length: what the file reported, unless it ran out early. */
    if (d.in_done == 0) {
        r = d.known ? decode_fail(&d, -EINVAL, "corrupt or truncated audio data")
                    : decode_fail(&d, -ENODATA, "no audio frames");
        goto out;
    }
    uint64_t frames;
    if (d.known && (d.in_done >= d.in_frames || d.filled == d.buf->frames))
        frames = d.out_frames; /* complete (or output full before EOF) */
    else
        frames = decode_out_len(&d, d.in_done);
    if (frames == 0)
        frames = 1;
    if (frames > d.max_frames) {
        r = fail_too_large(&d, frames, false);
        goto out;
    }
    if ((r = finish(&d, (uint32_t)frames)) < 0)
        goto out;

    sample_buffer_prefault(d.buf);
    *out = d.buf;
    d.buf = NULL;
    r = 0;
out:
    release(&d);
    return r;
}

int decode_file(const char *path, uint32_t rate, size_t max_bytes,
                const struct decode_options *opts, struct sample_buffer **out, char *err,
                size_t errlen)
{
    return decode_any(path, -1, rate, max_bytes, opts, NULL, out, err, errlen);
}

int decode_fd(int fd, uint32_t rate, size_t max_bytes, const struct decode_options *opts,
              _Atomic uint64_t *progress, struct sample_buffer **out, char *err, size_t errlen)
{
    return decode_any(NULL, fd < 0 ? -1 : fd, rate, max_bytes, opts, progress, out, err, errlen);
}

int decode_open_error(int e, char *err, size_t errlen)
{
    struct decoder d = {.err = err, .errlen = errlen};
    return open_fail(&d, e);
}
