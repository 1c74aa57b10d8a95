/* decode.c - audio file to sample buffer (see decode.h): opens and probes
 * the file, sizes the buffer and chooses the strategy that fills it.
 * Nothing here is real-time.
 *
 * The files, each calling only those below it.  decode_core.c holds the
 * decoder's state and primitives (struct decoder, reasons, growing and
 * trimming the buffer, reading and sanitizing blocks, draining a length
 * not known, the progress count, converters and feeding them, helper
 * threads).  On it sit the strategies: decode_direct.c (the engine rate,
 * copied straight in), decode_pipe.c (the conversion loop, with a reader
 * thread decoding ahead) and decode_split.c (two halves on two threads).
 *
 * Choosing.  At the engine rate the loader thread copies the samples in
 * (16-bit PCM as the file's integers: SAMPLE_S16, sample.h); beside the
 * decode that costs next to nothing.  A conversion costs about as much as
 * the decode (docs/performance.md, "Loads"), so a long file is cut in two
 * at its middle and each half decoded and converted on a thread of its own
 * (decode_split.c); a file that cannot be cut overlaps its decode with its
 * conversion instead (decode_pipe.c).
 *
 * Opening safely.  The path comes from the network, so it may name
 * anything.  It is opened O_NONBLOCK (a FIFO without a writer or a device
 * waiting for carrier would block the loader for ever) and O_NOCTTY (a
 * daemon must never acquire a controlling terminal), then fstat()ed: only
 * regular files go on, checked on the descriptor so the path cannot be
 * swapped in between.  O_NONBLOCK is then cleared and the descriptor handed
 * to sf_open_fd(), which owns it from then on (it closes it on failure as
 * well as in sf_close()).
 *
 * Exact pass-through.  SFC_SET_NORM_FLOAT is on, so integer PCM arrives as
 * x / 2^(bits-1), exact because the scale is a power of two, and at the
 * engine rate those floats are stored unchanged: a sample plays bit for bit
 * as libsndfile decoded it.  16-bit PCM at the engine rate is stored as the
 * integers x, and the mixer plays x * 2^-15: the same floats (mixer.c,
 * "16-bit sources").  The one exception: NaN and Inf in a float or double
 * file would poison the whole mix bus (and smear across a resampler's
 * filter), so those samples, and only those, become 0.
 *
 * Length.  libsndfile's frame count sizes the buffer, so the common case
 * (exact counts) allocates once and decodes straight into it.  It is an
 * upper bound (libsndfile never returns more) and may be an overestimate
 * (an MP3 without a Xing header): the buffer is then trimmed to what was
 * decoded.  A decoder error refuses the whole file as corrupt: a sample
 * that silently ends early or glitches is worse than a clear /fail.  A
 * format that cannot tell its length reports SF_COUNT_MAX, and the buffer
 * grows geometrically.  Either way `max_bytes` is enforced on the size the
 * output will have, before allocating when the length is known and as soon
 * as it is exceeded when not, so a lying header cannot make the loader
 * allocate past the cap.
 *
 * Resampling.  libsoxr, fed the interleaved blocks as they are decoded,
 * writes planar output straight into the final buffer.  The output length
 * is round(frames * rate / in_rate) exactly (soxr's flush may land a frame
 * short or long: the window ends there, or the tail is zero-padded).
 * SOXR_HQ is the cheapest quality without audible artefacts
 * (docs/performance.md, "Converter setting").  soxr runs single-threaded:
 * its own threads would compete with the decode for the same cores.
 *
 * Helper threads.  The reader (decode_pipe.c) and the second half
 * (decode_split.c) run on threads started by decode_start_helper() and are
 * always joined before decode_file() returns.  They have the loader's stack
 * size (DECODE_STACK_SIZE) and priority, and block every signal but the
 * synchronous ones, so each signal still goes to a thread that would have
 * taken it without them.
 */
#include "decode.h"
#include "decode_core.h"
#include "decode_direct.h"
#include "decode_pipe.h"
#include "decode_split.h"
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

/* ---- choosing a strategy --------------------------------------------------- */

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

/* Four blocks, 6 s at 44.1 kHz: below that the second open, the seek, the
 * converter and the helper's start cost about what the halves win, so the
 * threshold sits where they clearly do not lose (docs/performance.md, "The
 * split and the pipeline"). */
const struct decode_options decode_default_options = {.split_min_frames =
                                                          4 * (uint64_t)DECODE_BLOCK};

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
        return decode_fail_nomem(d);
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
            return decode_fail_too_large(d, d->out_frames, false);
        first = d->out_frames;
    } else {
        first = decode_out_len(d, DECODE_BLOCK) + 1024;
        if (first > d->max_frames)
            first = d->max_frames;
        if (first == 0)
            return decode_fail_too_large(d, 1, true);
    }
    if (decode_rebuffer(d, (uint32_t)first, 0) < 0)
        return decode_fail_nomem(d);

    /* Mono floats and 16-bit integers at the engine rate decode in place;
     * everything else needs one block of interleaved floats (so does the
     * drain of an unknown length). */
    if ((d->channels > 1 && d->format == SAMPLE_F32) || d->in_rate != d->rate || !d->known) {
        d->block = d->known && d->in_frames < DECODE_BLOCK ? (uint32_t)d->in_frames : DECODE_BLOCK;
        d->scratch = malloc((size_t)d->block * d->channels * sizeof(float));
        if (!d->scratch)
            return decode_fail_nomem(d);
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
        r = decode_fail_too_large(&d, frames, false);
        goto out;
    }
    if ((r = decode_finish(&d, (uint32_t)frames)) < 0)
        goto out;

    sample_buffer_prefault(d.buf);
    *out = d.buf;
    d.buf = NULL;
    r = 0;
out:
    decode_release(&d);
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
