/* decode.c - audio file to sample buffer (see decode.h).
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
 * of the buffer: about (decode + convert) / 2 (see "Two halves").  Files
 * that cannot be cut so overlap the two stages instead: a reader thread
 * decodes the next blocks while the loader thread converts the previous
 * one, and the load takes about max(decode, convert) plus one block instead
 * of their sum (see "The reader thread").  The two come to the same when
 * decoding and converting cost the same, as for that FLAC; the halves are
 * faster the more one of the two outweighs the other (a 44.1 kHz WAV
 * decodes in a fifth of its conversion's time).
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
 * The reader thread.  decode_resampled() decodes on a second thread and
 * converts on the calling one.  Three blocks circulate between them under a
 * mutex and two condition variables: one being converted, one decoded and
 * waiting, one being decoded, so either side can get a block ahead before
 * it has to wait for the other.  The reader owns the SNDFILE, and a copy of
 * the decoder through which read_block() counts in_done and writes its
 * reason into a private buffer; it reads exactly the blocks the sequential
 * loop reads, in the same order, so soxr gets the same input in the same
 * calls and the output is bit-identical.  It only ever reads ahead: results
 * are taken in order, and a decoder error (or an unknown length found too
 * large) becomes the load's error, with its reason, only when the converter
 * reaches that block, so a file whose output completes before a bad block
 * loads just as it does sequentially.  Every way out of the converter (end
 * of input, output complete, a limit exceeded, an error on either side)
 * goes through one place that stops the reader, joins it, and only then
 * takes back in_done and the reason.  The thread gets 1 MiB of stack like
 * the loader (decoders keep big arrays on the stack; the daemon's default
 * is 256 KiB) and starts with every signal blocked but the synchronous
 * ones, so each signal still goes to a thread that would have taken it
 * without the reader (the daemon's own are blocked everywhere and taken by
 * the main thread's sigtimedwait).  It has the loader's ordinary priority: the
 * real-time audio thread preempts either whenever it needs a core.
 * Known lengths of two blocks or less stay sequential: with one block there
 * is nothing to overlap, and with two at most one block's decode (about a
 * millisecond) against starting the thread and mapping its stack and two
 * more blocks (all locked when the daemon runs under mlockall), which the
 * first time costs up to as much.
 * If the thread or its blocks cannot be had, the same loop runs on the
 * calling thread alone: slower, never a failed load.
 *
 * Two halves.  Pipelined, a load takes max(decode, convert) plus a block:
 * the longer stage sets the time, and the other stage's core waits for it.
 * But the decode itself can be cut: FLAC frames decode independently, and
 * PCM has no decoder state at all.  So decode_split() opens the file a
 * second time, seeks that handle to the middle, and while the loader
 * thread decodes and converts the first half, a helper thread (started
 * like the reader: stack, signals, name) decodes and converts the second
 * with a converter of its own; each writes its output straight into its
 * own part of the final buffer, so nothing is copied, and beside the
 * buffer the second half needs only one block and a converter.  The load
 * then takes about (decode + convert) / 2 whatever their proportion: the
 * same as the pipeline for 60 s of 44.1 kHz FLAC, whose decode and
 * conversion cost about 40 ms each, but 0.6-0.9x of the pipeline's time
 * here for a 44.1 kHz WAV (decoding is a fifth of the conversion) or for
 * a 96 kHz FLAC (decoding is three times the conversion).  The second
 * handle is libsndfile's virtual I/O on the descriptor the first one owns,
 * reading with pread() at a position of its own: the path is not looked
 * up again (it may name another file by now), neither handle moves the
 * other's file offset, and no second descriptor is needed.  Separate
 * SNDFILE handles and soxr instances share no state (both converters are
 * made on the loader thread), the two halves of the buffer are disjoint,
 * and pthread_join() makes the helper's writes visible, so nothing is
 * locked.
 *
 * The seam.  The result must be the single pass's.  Input frame m and
 * output frame n fall on the same instant only when m = k * in_rate / g
 * and n = k * rate / g (g their gcd: multiples of 147 and 160 for 44.1 to
 * 48 kHz), so the split point M is the middle rounded to such an m: there
 * the split output frame N = M * rate / in_rate exactly, and both
 * converters' filters have the same phase.  The second converter starts
 * SPLIT_LEAD frames (at the lower rate, rounded up to a multiple of
 * in_rate / g) before M and throws away exactly the output frames before
 * N, which it computed from a stream that starts in silence.  SPLIT_LEAD
 * is 3.5 times the widest reach of soxr HQ's filters measured (impulse
 * response above 1e-9: 900 frames each way at 44.1 to 48 kHz, 1185 at 8
 * to 48 kHz, at the lower rate), so every frame it keeps is made from the
 * same input as the single pass's (the tests still pass with 256).  The
 * first converter reads on past M (its filter needs the input after N's
 * instant) until it has made exactly N frames, and is not flushed.  The
 * second flushes at the end of the file as the single pass does, into a
 * window that ends at the single pass's length: the same length, exactly.
 * What differs is rounding: soxr filters in FFT blocks, which lie
 * differently in a stream that starts elsewhere, so the second half's
 * samples differ from the single pass's by a few float ulps (at most
 * 4.2e-7 in the tests, with peaks of 0.6).  That holds only where soxr
 * steps its polyphase filter exactly, for ratios whose fraction it finds
 * with a denominator up to 2048; for others (48000 to 47999 Hz) it steps
 * by a rounded increment, whose error grows from the start of the stream,
 * so a converter started in the middle is a fraction of a sample off
 * (5e-5 measured).  Those are not split (SPLIT_MAX_PHASES, conservatively:
 * rate / g times the decimation soxr may do before that stage).
 *
 * When the halves are not used: lengths unknown or shorter than
 * decode_split_min_frames (four blocks, 6 s at 44.1 kHz: below that,
 * opening and seeking a second handle, the lead-in and the thread cost
 * about what the split saves); files libsndfile cannot seek, or whose seek
 * is not exact and cheap (only PCM, companded PCM and FLAC are split; not
 * the ADPCMs and GSM, whose blocks carry state, nor Vorbis, Opus or MP3); a
 * second handle that does not report the first one's length and format (a
 * length that was only an estimate); a seek that fails; a thread that
 * cannot be had.  Then the pipelined path above runs as before, and with no
 * thread at all the sequential loop.  Errors: each half reads in blocks
 * that end where the sequential loop's do and stops once its window is
 * full, so together they read what the sequential loop reads, and an error
 * in either fails the load with the sequential loop's reason; the first
 * half's when both fail, since the sequential loop meets it first.  A first
 * half that fails tells the second to stop at its next block.  A read error
 * on the second handle, which virtual I/O would show libsndfile only as a
 * short read, is caught by its pread() wrapper and reported as libsndfile
 * reports one.
 */
#include "decode.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sndfile.h>
#include <soxr.h>

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
    float *scratch;  /* DECODE_BLOCK interleaved input frames */
    char *err;
    size_t errlen;
    /* For opening the file a second time (the two halves). */
    int file_fd;        /* the descriptor libsndfile owns: valid while sf is open */
    int file_format;    /* SF_INFO.format as reported */
    bool file_seekable; /* SF_INFO.seekable */
};

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static int
fail(struct decoder *d, int e, const char *fmt, ...)
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
    return fail(d, -ENOMEM, "out of memory");
}

/* Copies a libsndfile message without its trailing full stop or newline, or
 * an empty string when it is too long to be useful in a one-line reason. */
static void libmsg(char *dst, size_t n, const char *msg)
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
static uint64_t out_len(const struct decoder *d, uint64_t in)
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
        return fail(d, -E2BIG, "file too long (%s%" PRIu64 " frames; at most %" PRIu32 ")",
                    at_least ? "more than " : "", frames, UINT32_MAX);
    uint64_t bytes = frames * sample_frame_bytes(d->format, d->channels);
    /* Round the size up and the limit down, so the two never print equal. */
    return fail(d, -E2BIG, "file too large (%s%.1f MiB decoded; limit %.1f MiB)",
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
static int reserve(struct decoder *d, uint64_t want)
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
    int r = reserve(d, frames);
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
        libmsg(msg, sizeof(msg), sf_error_number(e));
        int code = e == SF_ERR_SYSTEM ? -EIO : -EINVAL;
        const char *what = e == SF_ERR_SYSTEM ? "read error" : "corrupt audio data";
        if (msg[0])
            return fail(d, code, "%s (%s)", what, msg);
        return fail(d, code, "%s", what);
    }
    if (got <= 0)
        return 0;
    if (d->sanitize && !s16)
        sanitize(dst, (size_t)got * d->channels);
    d->in_done += (uint64_t)got;
    /* Unknown length: fail as soon as the result is certain to be too big. */
    if (!d->known && out_len(d, d->in_done) > d->max_frames)
        return fail_too_large(d, out_len(d, d->in_done), true);
    return got;
}

static int64_t read_block(struct decoder *d, float *dst, uint64_t want)
{
    return read_frames(d, dst, want, false);
}

/* ---- the reader thread ---------------------------------------------------- */

#define PIPE_BLOCKS 3 /* one being converted, one waiting, one being decoded */

/* Known lengths up to this many input frames convert sequentially (see the
 * header comment: a thread does not pay off for them). */
#define PIPE_MIN_FRAMES (2 * (uint64_t)DECODE_BLOCK)

/* The queue between the reader thread, which decodes, and the converter
 * (the calling thread), which runs soxr.  The reader fills block[tail],
 * tail = (head + count) % PIPE_BLOCKS, with no lock held: no other block is
 * free then, and the converter never touches a block outside the `count`
 * from `head`.  The converter keeps the block it is converting counted
 * until it asks for the next one. */
struct reader {
    /* The reader's own view of the decoder, through which read_block()
     * counts in_done and writes its reason (into `err`, not the caller's
     * buffer).  Only the reader thread touches it, and the SNDFILE it holds,
     * until it is joined. */
    struct decoder src;
    char err[256]; /* longer than any reason read_block() gives */
    float *block[PIPE_BLOCKS];
    int64_t got[PIPE_BLOCKS]; /* read_block()'s result for each filled block */
    pthread_mutex_t lock;
    pthread_cond_t more; /* a block was filled (reader -> converter) */
    pthread_cond_t room; /* a block was freed, or stop (converter -> reader) */
    unsigned head;       /* the oldest filled block */
    unsigned count;      /* filled blocks, the one being converted included */
    bool stop;           /* the converter wants no more */
    pthread_t thread;
    /* Converter side only. */
    bool held;    /* block[head] is being converted */
    bool ended;   /* took the last result (0 or an error) */
    bool failed;  /* ... and it was an error: src's reason is the load's */
    int64_t last; /* that result */
};

/* Reads blocks into the queue until the end, an error, or stop.  The
 * blocks, their sizes and order are exactly the sequential loop's. */
static void *reader_main(void *arg)
{
    struct reader *rd = arg;
    unsigned tail = 0;
    for (;;) {
        pthread_mutex_lock(&rd->lock);
        while (rd->count == PIPE_BLOCKS && !rd->stop)
            pthread_cond_wait(&rd->room, &rd->lock);
        bool stop = rd->stop;
        pthread_mutex_unlock(&rd->lock);
        if (stop)
            return NULL;
        int64_t got = read_block(&rd->src, rd->block[tail], DECODE_BLOCK);
        pthread_mutex_lock(&rd->lock);
        rd->got[tail] = got;
        rd->count++;
        pthread_cond_signal(&rd->more);
        pthread_mutex_unlock(&rd->lock);
        if (got <= 0)
            return NULL; /* the end or an error: nothing more to read */
        tail = (tail + 1) % PIPE_BLOCKS;
    }
}

static void reader_free(struct reader *rd)
{
    for (int i = 1; i < PIPE_BLOCKS; i++) /* block[0] is d->scratch */
        free(rd->block[i]);
}

/* Starts `fn(arg)` on a helper thread for the conversion: 1 MiB of stack
 * like the loader (the decoders keep big arrays on the stack), named
 * "looperd-decode", and with every signal blocked but the synchronous ones
 * (see the header comment).  Returns 0 or an errno value. */
static int start_helper(pthread_t *thread, void *(*fn)(void *), void *arg)
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

/* Sets up the queue and starts the reader thread, which from then on owns
 * d->sf and the read state.  Returns false, with nothing left to undo, when
 * any of it cannot be had; the caller then converts sequentially. */
static bool reader_start(struct reader *rd, struct decoder *d)
{
    memset(rd, 0, sizeof(*rd));
    rd->src = *d;
    rd->src.soxr = NULL; /* none of the reader's business */
    rd->src.buf = NULL;
    rd->src.scratch = NULL;
    rd->src.err = rd->err;
    rd->src.errlen = sizeof(rd->err);
    rd->block[0] = d->scratch;
    for (int i = 1; i < PIPE_BLOCKS; i++)
        if (!(rd->block[i] = malloc((size_t)DECODE_BLOCK * d->channels * sizeof(float))))
            goto no_lock;
    if (pthread_mutex_init(&rd->lock, NULL) != 0)
        goto no_lock;
    if (pthread_cond_init(&rd->more, NULL) != 0)
        goto no_more;
    if (pthread_cond_init(&rd->room, NULL) != 0)
        goto no_room;
    if (start_helper(&rd->thread, reader_main, rd) == 0)
        return true;
    pthread_cond_destroy(&rd->room);
no_room:
    pthread_cond_destroy(&rd->more);
no_more:
    pthread_mutex_destroy(&rd->lock);
no_lock:
    reader_free(rd);
    return false;
}

/* Stops the reader wherever it is (waiting for room, or within a block that
 * it then finishes), joins it, and gives its state back to `d`: in_done,
 * and the reason if the converter took the reader's error. */
static void reader_stop(struct reader *rd, struct decoder *d)
{
    pthread_mutex_lock(&rd->lock);
    rd->stop = true;
    pthread_cond_signal(&rd->room);
    pthread_mutex_unlock(&rd->lock);
    pthread_join(rd->thread, NULL);

    d->in_done = rd->src.in_done;
    if (rd->failed && d->err && d->errlen > 0)
        snprintf(d->err, d->errlen, "%s", rd->err);
    pthread_cond_destroy(&rd->room);
    pthread_cond_destroy(&rd->more);
    pthread_mutex_destroy(&rd->lock);
    reader_free(rd);
}

/* The next decoded block for the converter, as read_block() returns it: the
 * frame count, 0 at the end, or a negative errno.  Without a reader thread
 * it is read here into d->scratch; with one it comes from the queue (and
 * the block converted before is handed back).  The reader's reason reaches
 * d->err in reader_stop(). */
static int64_t next_block(struct decoder *d, struct reader *rd, const float **in)
{
    if (!rd) {
        *in = d->scratch;
        return read_block(d, d->scratch, DECODE_BLOCK);
    }
    if (rd->ended) { /* the reader has nothing more: never wait for it */
        *in = NULL;
        return rd->last;
    }
    pthread_mutex_lock(&rd->lock);
    if (rd->held) {
        rd->head = (rd->head + 1) % PIPE_BLOCKS;
        rd->count--;
        pthread_cond_signal(&rd->room);
    }
    while (rd->count == 0)
        pthread_cond_wait(&rd->more, &rd->lock);
    int64_t got = rd->got[rd->head];
    pthread_mutex_unlock(&rd->lock);
    rd->held = true;
    *in = rd->block[rd->head];
    if (got <= 0) {
        rd->ended = true;
        rd->failed = got < 0;
        rd->last = got;
    }
    return got;
}

/* ---- decoding, continued -------------------------------------------------- */

/* The output has reached max_frames while the length is unknown: read on
 * to the end, which either shows the file fits after all or fails (in
 * read_block) as soon as it cannot. */
static int drain(struct decoder *d, struct reader *rd)
{
    const float *in;
    int64_t got;
    while ((got = next_block(d, rd, &in)) > 0)
        ;
    return (int)got;
}

/* Same rate: the decoded samples go into the buffer unchanged.  16-bit PCM
 * is read as the file's integers straight into the buffer, interleaved as
 * the mixer reads them (SAMPLE_S16); anything else as floats. */
static int decode_direct(struct decoder *d)
{
    for (;;) {
        int r;
        if (!d->known && (r = reserve(d, (uint64_t)d->filled + DECODE_BLOCK)) < 0)
            return r;
        uint64_t room = d->buf->frames - d->filled;
        if (room == 0)
            return d->known ? 0 : drain(d, NULL); /* known: all the frames reported */
        uint64_t want = room < DECODE_BLOCK ? room : DECODE_BLOCK;
        if (d->format == SAMPLE_S16) {
            int16_t *dst = sample_buffer_s16(d->buf) + (size_t)d->filled * d->channels;
            int64_t got = read_frames(d, dst, want, true);
            if (got <= 0)
                return (int)got;
            d->filled += (uint32_t)got;
        } else if (d->channels == 1) {
            /* Mono: libsndfile writes straight into the buffer. */
            int64_t got = read_block(d, sample_buffer_channel(d->buf, 0) + d->filled, want);
            if (got <= 0)
                return (int)got;
            d->filled += (uint32_t)got;
        } else {
            /* Stereo: read interleaved, deinterleave into the buffer. */
            int64_t got = read_block(d, d->scratch, want);
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

/* Runs soxr once into the free part of the buffer.  `in` NULL flushes. */
static int soxr_step(struct decoder *d, const float *in, size_t ilen, size_t *idone, size_t *odone)
{
    float *outs[SAMPLE_MAX_CHANNELS];
    for (uint32_t c = 0; c < d->channels; c++)
        outs[c] = sample_buffer_channel(d->buf, c) + d->filled;
    size_t olen = d->buf->frames - d->filled;
    soxr_error_t e = soxr_process(d->soxr, in, ilen, idone, outs, olen, odone);
    if (e)
        return fail(d, -EIO, "sample-rate conversion failed (%s)", e);
    d->filled += (uint32_t)*odone;
    return 0;
}

/* Room to ask for ahead of soxr output: what `n` input frames can produce,
 * plus slack for the filter's history. */
static uint64_t soxr_room(const struct decoder *d, uint64_t n)
{
    return (uint64_t)d->filled + out_len(d, n) + 1024;
}

/* Other rate: decoded blocks (from `rd`, or read here when it is NULL) go
 * through soxr, whose split output lands in the buffer directly.  Stops
 * early once a known-length output is full. */
static int convert(struct decoder *d, struct reader *rd)
{
    int r;
    for (;;) {
        const float *in;
        int64_t got = next_block(d, rd, &in);
        if (got < 0)
            return (int)got;
        if (got == 0)
            break;
        size_t left = (size_t)got;
        while (left > 0) {
            if (!d->known && (r = reserve(d, soxr_room(d, left))) < 0)
                return r;
            if (d->filled == d->buf->frames)
                return d->known ? 0 : drain(d, rd); /* known: output complete */
            size_t idone = 0, odone = 0;
            if ((r = soxr_step(d, in, left, &idone, &odone)) < 0)
                return r;
            if (idone == 0 && odone == 0)
                return fail(d, -EIO, "sample-rate conversion stalled");
            in += idone * d->channels;
            left -= idone;
        }
    }
    /* End of input: drain what soxr still holds. */
    for (;;) {
        if (!d->known && (r = reserve(d, soxr_room(d, 0))) < 0)
            return r;
        if (d->filled == d->buf->frames)
            return 0;
        size_t odone = 0;
        if ((r = soxr_step(d, NULL, 0, NULL, &odone)) < 0)
            return r;
        if (odone == 0)
            return 0;
    }
}

/* ---- two halves on two threads --------------------------------------------- */

/* Frames, at the lower of the two rates, that the second half starts
 * before the split point (and the first reads past it at a time): about
 * 3.5 times the widest reach of soxr HQ's filters measured (1185 frames at
 * the lower rate, 8 kHz to 48 kHz; see "The seam"). */
#define SPLIT_LEAD 4096
/* soxr steps its polyphase filter exactly only for ratios whose fraction it
 * finds with a denominator up to 2048 (the most phases it tries at HQ);
 * others step by a rounded increment, and a second converter started in
 * the middle would not keep the first one's phase (see "The seam"). */
#define SPLIT_MAX_PHASES 2048
/* Output frames per channel thrown away per soxr call (second half). */
#define SPLIT_DISCARD 1024

/* Four blocks, 6 s at 44.1 kHz.  Measured here, a FLAC of 2.7 blocks loads
 * a little faster in halves (a WAV clearly), one of 1.7 blocks a little
 * slower than sequentially: the second open, the seek (0.2 ms for FLAC),
 * the converter and the thread's start cost 0.3-0.5 ms on the loader
 * thread before either half begins.  Below four blocks what the halves win
 * is under a millisecond, within this VM's noise, so the threshold sits
 * where they clearly do not lose. */
uint64_t decode_split_min_frames = 4 * (uint64_t)DECODE_BLOCK;

/* A converter from the file's rate to the engine's at the daemon's quality
 * (see "Resampling"); both halves' come from here. */
static soxr_t new_converter(const struct decoder *d, soxr_error_t *e)
{
    soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_S);
    soxr_quality_spec_t q = soxr_quality_spec(SOXR_HQ, 0);
    return soxr_create(d->in_rate, d->rate, d->channels, e, &io, &q, NULL);
}

/* The second handle's file: pread() at a position of its own on the
 * descriptor the first handle owns, so the two never move each other's
 * file offset, and the path is not opened again. */
struct vfile {
    int fd;
    sf_count_t pos;
    int error; /* errno of a failed read: libsndfile would see only a short read */
};

static sf_count_t vf_length(void *user)
{
    struct stat st;
    return fstat(((struct vfile *)user)->fd, &st) < 0 ? -1 : (sf_count_t)st.st_size;
}

static sf_count_t vf_seek(sf_count_t offset, int whence, void *user)
{
    struct vfile *vf = user;
    sf_count_t base = whence == SEEK_CUR ? vf->pos : whence == SEEK_END ? vf_length(user) : 0;
    if (base < 0 || (offset < 0 && base + offset < 0))
        return -1;
    vf->pos = base + offset;
    return vf->pos;
}

static sf_count_t vf_read(void *dst, sf_count_t count, void *user)
{
    struct vfile *vf = user;
    sf_count_t done = 0;
    while (done < count) {
        ssize_t n = pread(vf->fd, (char *)dst + done, (size_t)(count - done), vf->pos);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && !vf->error)
            vf->error = errno;
        if (n <= 0)
            break;
        done += n;
        vf->pos += n;
    }
    return done;
}

static sf_count_t vf_write(const void *src, sf_count_t count, void *user)
{
    (void)src, (void)count, (void)user;
    return 0; /* opened for reading only */
}

static sf_count_t vf_tell(void *user)
{
    return ((struct vfile *)user)->pos;
}

static SF_VIRTUAL_IO split_io = {vf_length, vf_seek, vf_read, vf_write, vf_tell};

/* What one half reads and where its output goes. */
struct span {
    uint64_t pos;     /* input frame the handle is at */
    uint64_t read_to; /* read whole blocks up to here, then `lead` frames at a time */
    uint64_t lead;
    uint32_t skip;             /* output frames still to throw away (the second half's lead-in) */
    uint32_t end;              /* the output window ends here */
    float *discard;            /* SPLIT_DISCARD frames per channel, for `skip` */
    struct vfile *vf;          /* the second handle's file, or NULL */
    const atomic_bool *cancel; /* the other half failed: stop reading */
};

/* The second half: its own decoder (a copy of the caller's with its own
 * SNDFILE, converter, block and reason), writing into the same buffer at
 * and after the split point. */
struct half {
    struct decoder d;
    struct span span;
    struct vfile vf;
    char err[256];  /* longer than any reason read_block() gives */
    uint64_t start; /* the input frame it starts at */
    int result;
    atomic_bool cancel;
    pthread_t thread;
};

/* Runs soxr once: into the discard block while output is to be skipped,
 * else into the free part of the span's window.  `in` NULL flushes. */
static int span_step(struct decoder *d, struct span *s, const float *in, size_t ilen, size_t *idone,
                     size_t *odone)
{
    float *outs[SAMPLE_MAX_CHANNELS];
    size_t olen;
    for (uint32_t c = 0; c < d->channels; c++)
        outs[c] = s->skip > 0 ? s->discard + (size_t)c * SPLIT_DISCARD
                              : sample_buffer_channel(d->buf, c) + d->filled;
    if (s->skip > 0)
        olen = s->skip < SPLIT_DISCARD ? s->skip : SPLIT_DISCARD;
    else
        olen = s->end - d->filled;
    soxr_error_t e = soxr_process(d->soxr, in, ilen, idone, outs, olen, odone);
    if (e)
        return fail(d, -EIO, "sample-rate conversion failed (%s)", e);
    if (s->skip > 0)
        s->skip -= (uint32_t)*odone;
    else
        d->filled += (uint32_t)*odone;
    return 0;
}

/* A read error the second handle's file saw: the sequential path's reason
 * for the same error. */
static int fail_read(struct decoder *d)
{
    char msg[DECODE_LIBMSG_MAX + 1];
    libmsg(msg, sizeof(msg), sf_error_number(SF_ERR_SYSTEM));
    if (msg[0])
        return fail(d, -EIO, "read error (%s)", msg);
    return fail(d, -EIO, "read error");
}

/* Converts one half: reads from s->pos in blocks that end where the
 * sequential path's end (multiples of DECODE_BLOCK), feeds soxr, and stops
 * once the window is full; at the end of the input, flushes soxr into
 * what is left of the window, as convert() does. */
static int span_convert(struct decoder *d, struct span *s)
{
    int r;
    for (;;) {
        if (d->filled == s->end)
            return 0;
        if (s->cancel && atomic_load_explicit(s->cancel, memory_order_relaxed))
            return 0; /* the caller does not look at this half's output */
        uint64_t want = DECODE_BLOCK - s->pos % DECODE_BLOCK;
        uint64_t cap = s->pos < s->read_to ? s->read_to - s->pos : s->lead;
        if (want > cap)
            want = cap;
        int64_t got = read_block(d, d->scratch, want);
        if (got >= 0 && s->vf && s->vf->error)
            return fail_read(d);
        if (got < 0)
            return (int)got;
        if (got == 0)
            break;
        s->pos += (uint64_t)got;
        const float *in = d->scratch;
        size_t left = (size_t)got;
        while (left > 0 && d->filled < s->end) {
            size_t idone = 0, odone = 0;
            if ((r = span_step(d, s, in, left, &idone, &odone)) < 0)
                return r;
            if (idone == 0 && odone == 0)
                return fail(d, -EIO, "sample-rate conversion stalled");
            in += idone * d->channels;
            left -= idone;
        }
    }
    for (;;) {
        if (d->filled == s->end)
            return 0;
        size_t idone = 0, odone = 0;
        if ((r = span_step(d, s, NULL, 0, &idone, &odone)) < 0)
            return r;
        if (odone == 0)
            return 0;
    }
}

static void *half_main(void *arg)
{
    struct half *h = arg;
    h->result = span_convert(&h->d, &h->span);
    return NULL;
}

static void half_free(struct half *h)
{
    if (h->d.soxr)
        soxr_delete(h->d.soxr);
    if (h->d.sf)
        sf_close(h->d.sf); /* a virtual file: the descriptor stays open */
    free(h->d.scratch);
    free(h->span.discard);
}

static uint64_t gcd(uint64_t a, uint64_t b)
{
    while (b) {
        uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* The sample formats whose seek libsndfile does to the exact frame at
 * once: each frame stands alone (plain PCM and the companded ones), or, for
 * FLAC, whose frames decode independently, libFLAC's seek decodes up to the
 * exact sample.  Not the ADPCMs, GSM, Vorbis, Opus or MP3: their seeks are
 * approximate, or they start decoding from a state the stream before the
 * point set up. */
static bool seeks_exactly(int format)
{
    switch (format & SF_FORMAT_SUBMASK) {
    case SF_FORMAT_PCM_S8:
    case SF_FORMAT_PCM_16:
    case SF_FORMAT_PCM_24:
    case SF_FORMAT_PCM_32:
    case SF_FORMAT_PCM_U8:
    case SF_FORMAT_FLOAT:
    case SF_FORMAT_DOUBLE:
    case SF_FORMAT_ULAW:
    case SF_FORMAT_ALAW:
        return true;
    default:
        return false;
    }
}

/* Sets up the second half and starts its thread: the file opened again,
 * the handle seeked to the lead-in before the split point, a converter of
 * its own.  Returns false, with nothing left to undo, when the file does
 * not qualify or any of it cannot be had; the caller then converts the
 * whole file itself.  On success `first` describes the caller's half. */
static bool split_start(struct half *h, struct decoder *d, struct span *first)
{
    if (!d->known || d->in_frames < decode_split_min_frames || !d->file_seekable ||
        !seeks_exactly(d->file_format))
        return false;
    /* Input frames in multiples of p become output frames in multiples of
     * q exactly: a split point there has the same filter phase in both. */
    uint64_t g = gcd(d->in_rate, d->rate), p = d->in_rate / g, q = d->rate / g;
    uint64_t down = ((uint64_t)d->in_rate + d->rate - 1) / d->rate; /* ceil(in / out) */
    if (q * down > SPLIT_MAX_PHASES)
        return false;
    uint64_t lower = d->in_rate < d->rate ? d->in_rate : d->rate;
    uint64_t lead = (SPLIT_LEAD * (uint64_t)d->in_rate + lower - 1) / lower;
    lead = (lead + p - 1) / p * p;
    uint64_t mid = (d->in_frames / 2 + p / 2) / p * p;
    if (mid < 2 * lead || mid + 2 * lead > d->in_frames)
        return false;               /* either half no longer than the lead: nothing to gain */
    uint64_t out_mid = mid / p * q; /* out_len(mid), exactly */
    if (out_mid == 0 || out_mid >= d->out_frames)
        return false;

    memset(h, 0, sizeof(*h));
    h->d = *d;
    h->d.sf = NULL;
    h->d.soxr = NULL;
    h->d.scratch = NULL;
    h->d.in_done = 0;
    h->d.filled = (uint32_t)out_mid;
    h->d.err = h->err;
    h->d.errlen = sizeof(h->err);
    h->start = mid - lead;
    h->vf.fd = d->file_fd;
    h->span = (struct span){.pos = h->start,
                            .read_to = UINT64_MAX,
                            .lead = lead,
                            .skip = (uint32_t)(lead / p * q),
                            .end = d->buf->frames,
                            .vf = &h->vf,
                            .cancel = &h->cancel};
    atomic_init(&h->cancel, false);

    SF_INFO info;
    memset(&info, 0, sizeof(info));
    h->d.sf = sf_open_virtual(&split_io, SFM_READ, &info, &h->vf);
    if (!h->d.sf || info.frames != (sf_count_t)d->in_frames || info.channels != (int)d->channels ||
        info.samplerate != (int)d->in_rate || info.format != d->file_format)
        goto fail;
    sf_command(h->d.sf, SFC_SET_NORM_FLOAT, NULL, SF_TRUE);
    if (sf_seek(h->d.sf, (sf_count_t)h->start, SEEK_SET) != (sf_count_t)h->start)
        goto fail;
    h->d.scratch = malloc((size_t)DECODE_BLOCK * d->channels * sizeof(float));
    h->span.discard = malloc((size_t)SPLIT_DISCARD * d->channels * sizeof(float));
    if (!h->d.scratch || !h->span.discard)
        goto fail;
    soxr_error_t e = NULL;
    h->d.soxr = new_converter(d, &e);
    if (!h->d.soxr || e)
        goto fail;
    if (start_helper(&h->thread, half_main, h) != 0)
        goto fail;

    *first = (struct span){.pos = 0, .read_to = mid + lead, .lead = lead, .end = (uint32_t)out_mid};
    return true;
fail:
    half_free(h);
    return false;
}

/* Converts the file in two halves when it qualifies: this thread the first
 * up to the split point, a helper the second from there.  Returns false,
 * with nothing done, when it does not; else true, with the load's result
 * in *r and d's state (filled, in_done, the reason) as the sequential path
 * would leave it. */
static bool decode_split(struct decoder *d, int *r)
{
    struct half h;
    struct span first;
    if (!split_start(&h, d, &first))
        return false;
    *r = span_convert(d, &first);
    if (*r < 0)
        atomic_store_explicit(&h.cancel, true, memory_order_relaxed);
    pthread_join(h.thread, NULL);
    half_free(&h);
    if (*r < 0)
        return true; /* the earlier error is the one the sequential path meets */
    if (d->filled < first.end)
        return true; /* the input ended before the split point: all here */
    if (h.result < 0) {
        if (d->err && d->errlen > 0)
            snprintf(d->err, d->errlen, "%s", h.err);
        *r = h.result;
        return true;
    }
    d->filled = h.d.filled;
    if (h.start + h.d.in_done > d->in_done)
        d->in_done = h.start + h.d.in_done;
    return true;
}

/* Converts with decoding on a reader thread, or all here for a short file
 * or when the thread cannot be had (see the header comment).  Whichever
 * way convert() returns, the reader is stopped and joined before its state
 * is looked at. */
static int decode_resampled(struct decoder *d)
{
    int r;
    if (decode_split(d, &r))
        return r;
    struct reader rd;
    if ((d->known && d->in_frames <= PIPE_MIN_FRAMES) || !reader_start(&rd, d))
        return convert(d, NULL);
    r = convert(d, &rd);
    reader_stop(&rd, d);
    return r;
}

/* ---- opening ------------------------------------------------------------- */

static int open_fail(struct decoder *d, int e)
{
    switch (e) {
    case ENOENT:
        return fail(d, -ENOENT, "no such file");
    case ENOTDIR:
        return fail(d, -ENOTDIR, "no such file (a path component is not a directory)");
    case EACCES:
    case EPERM:
        return fail(d, -EACCES, "permission denied");
    case ENAMETOOLONG:
        return fail(d, -ENAMETOOLONG, "path too long");
    case ELOOP:
        return fail(d, -ELOOP, "too many levels of symbolic links");
    case ENXIO: /* a socket, or a device without a driver */
    case ENODEV:
        return fail(d, -EINVAL, "not a regular file");
    case ENOMEM:
        return fail_nomem(d);
    default: {
        char buf[128];
        return fail(d, -e, "cannot open (%s)", strerror_r(e, buf, sizeof(buf)));
    }
    }
}

/* Opens `path` as a regular file and hands it to libsndfile. */
static int open_audio(struct decoder *d, const char *path, SF_INFO *info)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return open_fail(d, errno);

    struct stat st;
    int r = 0;
    if (fstat(fd, &st) < 0) {
        char buf[128];
        int e = errno;
        r = fail(d, -e, "cannot stat (%s)", strerror_r(e, buf, sizeof(buf)));
    } else if (S_ISDIR(st.st_mode)) {
        r = fail(d, -EISDIR, "is a directory");
    } else if (!S_ISREG(st.st_mode)) {
        r = fail(d, -EINVAL, "not a regular file");
    } else {
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
            char buf[128];
            int e = errno;
            r = fail(d, -e, "cannot open (%s)", strerror_r(e, buf, sizeof(buf)));
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
        libmsg(msg, sizeof(msg), sf_strerror(NULL));
        if (msg[0])
            return fail(d, -EINVAL, "not an audio file or unsupported format (%s)", msg);
        return fail(d, -EINVAL, "not an audio file or unsupported format");
    }
    d->file_fd = fd;
    d->file_format = info->format;
    d->file_seekable = info->seekable != 0;
    return 0;
}

/* Validates the stream and sets up the length, limit and converter. */
static int prepare(struct decoder *d, const SF_INFO *info)
{
    if (info->channels < 1)
        return fail(d, -EINVAL, "not an audio file or unsupported format (no channels)");
    if (info->channels > SAMPLE_MAX_CHANNELS)
        return fail(d, -E2BIG, "too many channels (%d; at most %d)", info->channels,
                    SAMPLE_MAX_CHANNELS);
    if (info->samplerate <= 0)
        return fail(d, -EINVAL, "invalid sample rate (%d Hz)", info->samplerate);
    if (info->frames <= 0)
        return fail(d, -ENODATA, "no audio frames");

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
        d->out_frames = out_len(d, d->in_frames);
        if (d->out_frames == 0)
            d->out_frames = 1; /* one input frame, downsampled a lot */
        if (d->out_frames > d->max_frames)
            return fail_too_large(d, d->out_frames, false);
        first = d->out_frames;
    } else {
        first = out_len(d, DECODE_BLOCK) + 1024;
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
        d->soxr = new_converter(d, &e);
        if (!d->soxr || e) {
            if (d->soxr) {
                soxr_delete(d->soxr);
                d->soxr = NULL;
            }
            return fail(d, -EINVAL, "cannot convert %" PRIu32 " Hz to %" PRIu32 " Hz (%s)",
                        d->in_rate, d->rate, e ? e : "soxr_create failed");
        }
    }
    return 0;
}

int decode_file(const char *path, uint32_t rate, size_t max_bytes, struct sample_buffer **out,
                char *err, size_t errlen)
{
    struct decoder d = {.rate = rate, .max_bytes = max_bytes, .err = err, .errlen = errlen};
    SF_INFO info;
    int r;

    if (err && errlen > 0)
        err[0] = '\0';
    if (out)
        *out = NULL;
    if (!path || !out)
        return fail(&d, -EINVAL, "invalid arguments");
    if (rate == 0)
        return fail(&d, -EINVAL, "invalid engine rate");

    if ((r = open_audio(&d, path, &info)) < 0 || (r = prepare(&d, &info)) < 0)
        goto out;

    r = d.soxr ? decode_resampled(&d) : decode_direct(&d);
    if (r < 0)
        goto out;

    /* The output length: what the file reported, unless it ran out early. */
    if (d.in_done == 0) {
        r = d.known ? fail(&d, -EINVAL, "corrupt or truncated audio data")
                    : fail(&d, -ENODATA, "no audio frames");
        goto out;
    }
    uint64_t frames;
    if (d.known && (d.in_done >= d.in_frames || d.filled == d.buf->frames))
        frames = d.out_frames; /* complete (or output full before EOF) */
    else
        frames = out_len(&d, d.in_done);
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
