/* decode_split.c - converting a long file in two halves on two threads
 * (the decoder as a whole: decode.c).
 *
 * Two halves.  Pipelined (decode_pipe.c), a load takes max(decode,
 * convert) plus a block: the longer stage sets the time, and the other
 * stage's core waits for it.
 * But the decode itself can be cut: FLAC frames decode independently, and
 * PCM has no decoder state at all.  So decode_split() opens the file a
 * second time, seeks that handle to the middle, and while the loader
 * thread decodes and converts the first half, a helper thread (like the
 * reader: decode.c, "Helper threads") decodes and converts the second
 * with a converter of its own; each writes its output straight into its
 * own part of the final buffer, so nothing is copied, and beside the
 * buffer the second half needs only one block and a converter.  The load
 * then takes about (decode + convert) / 2 whatever their proportion: the
 * pipeline's time when the two stages cost the same, less the more one
 * outweighs the other (docs/performance.md, "The split and the
 * pipeline").  The second handle is libsndfile's virtual I/O on the
 * descriptor the first one owns, reading with pread() at a position of its
 * own: the path is not looked up again (it may name another file by now),
 * neither handle moves the other's file offset, and no second descriptor
 * is needed.  Separate
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
 * is several times the widest reach of soxr HQ's filters
 * (docs/performance.md, "The split's seam"), so every frame it keeps is
 * made from the same input as the single pass's.  The first converter
 * reads on past M (its filter needs the input after N's instant) until it
 * has made exactly N frames, and is not flushed.  The
 * second flushes at the end of the file as the single pass does, into a
 * window that ends at the single pass's length: the same length, exactly.
 * What differs is rounding: soxr filters in FFT blocks, which lie
 * differently in a stream that starts elsewhere, so the second half's
 * samples differ from the single pass's by a few float ulps
 * (tests/test_decode.c bounds it).  That holds only where soxr steps its
 * polyphase filter exactly, for ratios whose fraction it finds with a
 * denominator up to 2048; for others (48000 to 47999 Hz) it steps by a
 * rounded increment, whose error grows from the start of the stream, so a
 * converter started in the middle is a fraction of a sample off.  Those
 * are not split (SPLIT_MAX_PHASES, conservatively: rate / g times the
 * decimation soxr may do before that stage).
 *
 * When the halves are not used: lengths unknown or shorter than
 * decode_default_options.split_min_frames (below that, opening and seeking
 * a second handle, the lead-in and the thread cost about what the split
 * saves: decode.c); files libsndfile cannot seek, or whose seek is not
 * exact and cheap (only PCM, companded PCM and FLAC are split; not the
 * ADPCMs and GSM, whose blocks carry state, nor Vorbis, Opus or MP3); a
 * second handle that does not report the first one's length and format (a
 * length that was only an estimate); a seek that fails; a thread that
 * cannot be had.  Then the pipelined path (decode_pipe.c) runs, and with
 * no thread at all the sequential loop.  Errors: each half reads in blocks
 * that end where the sequential loop's do and stops once its window is
 * full, so together they read what the sequential loop reads, and an error
 * in either fails the load with the sequential loop's reason; the first
 * half's when both fail, since the sequential loop meets it first.  A first
 * half that fails tells the second to stop at its next block.  A read error
 * on the second handle, which virtual I/O would show libsndfile only as a
 * short read, is caught by its pread() wrapper and reported as libsndfile
 * reports one.
 */
#include "decode_split.h"
#include "decode_core.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sndfile.h>
#include <soxr.h>

/* Frames, at the lower of the two rates, that the second half starts
 * before the split point (and the first reads past it at a time): several
 * times the widest reach of soxr HQ's filters (see "The seam"). */
#define SPLIT_LEAD 4096
/* soxr steps its polyphase filter exactly only for ratios whose fraction it
 * finds with a denominator up to 2048 (the most phases it tries at HQ);
 * others step by a rounded increment, and a second converter started in
 * the middle would not keep the first one's phase (see "The seam"). */
#define SPLIT_MAX_PHASES 2048

/* The second handle's file: pread() at a position of its own on the
 * descriptor the first handle owns, so the two never move each other's
 * file offset, and the path is not opened again. */
struct vfile {
    int fd;
    sf_count_t pos;
    int error;                  /* errno of a failed read: libsndfile would see only a short read */
    _Atomic uint64_t *progress; /* the load's (struct decoder) */
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
        if (vf->progress)
            atomic_fetch_add_explicit(vf->progress, 1, memory_order_relaxed);
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

/* What one half reads and where its output goes: its window of the
 * buffer, after the second half's lead-in thrown away (out.skip). */
struct span {
    uint64_t pos;     /* input frame the handle is at */
    uint64_t read_to; /* read whole blocks up to here, then `lead` frames at a time */
    uint64_t lead;
    struct decode_window out;
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
    char err[256];  /* longer than any reason decode_read_block() gives */
    uint64_t start; /* the input frame it starts at */
    int result;
    atomic_bool cancel;
    pthread_t thread;
};

/* A read error the second handle's file saw: the sequential path's reason
 * for the same error. */
static int fail_read(struct decoder *d)
{
    char msg[DECODE_LIBMSG_MAX + 1];
    decode_libmsg(msg, sizeof(msg), sf_error_number(SF_ERR_SYSTEM));
    if (msg[0])
        return decode_fail(d, -EIO, "read error (%s)", msg);
    return decode_fail(d, -EIO, "read error");
}

/* Converts one half: reads from s->pos in blocks that end where the
 * sequential path's end (multiples of DECODE_BLOCK), feeds soxr
 * (decode_feed), and stops once the window is full; at the end of the
 * input, flushes soxr into what is left of the window. */
static int span_convert(struct decoder *d, struct span *s)
{
    int r;
    for (;;) {
        if (d->filled == s->out.end)
            return 0;
        if (s->cancel && atomic_load_explicit(s->cancel, memory_order_relaxed))
            return 0; /* the caller does not look at this half's output */
        uint64_t want = DECODE_BLOCK - s->pos % DECODE_BLOCK;
        uint64_t cap = s->pos < s->read_to ? s->read_to - s->pos : s->lead;
        if (want > cap)
            want = cap;
        int64_t got = decode_read_block(d, d->scratch, want);
        if (got >= 0 && s->vf && s->vf->error)
            return fail_read(d);
        if (got < 0)
            return (int)got;
        if (got == 0)
            break;
        s->pos += (uint64_t)got;
        if ((r = decode_feed(d, &s->out, d->scratch, (size_t)got)) < 0)
            return r;
    }
    r = decode_feed(d, &s->out, NULL, 0);
    return r < 0 ? r : 0;
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
    free(h->span.out.discard);
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
    if (!d->known || d->in_frames < d->split_min_frames || !d->file_seekable ||
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
    uint64_t out_mid = mid / p * q; /* decode_out_len(mid), exactly */
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
    h->vf.progress = d->progress;
    h->span = (struct span){.pos = h->start,
                            .read_to = UINT64_MAX,
                            .lead = lead,
                            .out = {.end = d->buf->frames, .skip = (uint32_t)(lead / p * q)},
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
    h->span.out.discard = malloc((size_t)DECODE_DISCARD * d->channels * sizeof(float));
    if (!h->d.scratch || !h->span.out.discard)
        goto fail;
    soxr_error_t e = NULL;
    h->d.soxr = decode_new_converter(d, &e);
    if (!h->d.soxr || e)
        goto fail;
    if (decode_start_helper(&h->thread, half_main, h) != 0)
        goto fail;

    *first = (struct span){
        .pos = 0, .read_to = mid + lead, .lead = lead, .out = {.end = (uint32_t)out_mid}};
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
bool decode_split(struct decoder *d, int *r)
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
    if (d->filled < first.out.end)
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
