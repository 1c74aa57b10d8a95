/* decode_pipe.c - the conversion loop, and the reader thread that decodes
 * ahead of it (the decoder as a whole: decode.c).
 *
 * Every file at another rate that is not converted in two halves
 * (decode_split.c: lengths unknown or short, formats that cannot seek
 * exactly, ratios soxr does not step exactly, a second handle or thread
 * that cannot be had) goes through here: convert() feeds the decoded
 * blocks to the decoder's one converter (decode_feed, decode_core.c),
 * whose output lands in the buffer directly, and flushes soxr at the end
 * of the input.
 *
 * The reader thread.  decode_pipe() decodes on a second thread and
 * converts on the calling one.  Three blocks circulate between them under a
 * mutex and two condition variables: one being converted, one decoded and
 * waiting, one being decoded, so either side can get a block ahead before
 * it has to wait for the other.  The reader owns the SNDFILE, and a copy of
 * the decoder through which decode_read_block() counts in_done and writes
 * its reason into a private buffer; it reads exactly the blocks the
 * sequential loop reads, in the same order, so soxr gets the same input in the same
 * calls and the output is bit-identical.  It only ever reads ahead: results
 * are taken in order, and a decoder error (or an unknown length found too
 * large) becomes the load's error, with its reason, only when the converter
 * reaches that block, so a file whose output completes before a bad block
 * loads just as it does sequentially.  Every way out of the converter (end
 * of input, output complete, a limit exceeded, an error on either side)
 * goes through one place that stops the reader, joins it, and only then
 * takes back in_done and the reason.  The reader is a helper thread like
 * the second half's (decode.c, "Helper threads").
 * Known lengths of two blocks or less stay sequential: with one block there
 * is nothing to overlap, and with two at most one block's decode against
 * starting the thread and mapping its stack and two more blocks (all
 * locked when the daemon runs under mlockall), which the first time costs
 * up to as much.
 * If the thread or its blocks cannot be had, the same loop runs on the
 * calling thread alone: slower, never a failed load.
 */
#include "decode_pipe.h"
#include "decode_core.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <soxr.h>

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
    /* The reader's own view of the decoder, through which decode_read_block()
     * counts in_done and writes its reason (into `err`, not the caller's
     * buffer).  Only the reader thread touches it, and the SNDFILE it holds,
     * until it is joined. */
    struct decoder src;
    char err[256]; /* longer than any reason decode_read_block() gives */
    float *block[PIPE_BLOCKS];
    int64_t got[PIPE_BLOCKS]; /* decode_read_block()'s result for each filled block */
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
        int64_t got = decode_read_block(&rd->src, rd->block[tail], DECODE_BLOCK);
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
    if (decode_start_helper(&rd->thread, reader_main, rd) == 0)
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

/* The next decoded block for the converter, as decode_read_block() returns it: the
 * frame count, 0 at the end, or a negative errno.  Without a reader thread
 * it is read here into d->scratch; with one it comes from the queue (and
 * the block converted before is handed back).  The reader's reason reaches
 * d->err in reader_stop(). */
static int64_t next_block(struct decoder *d, struct reader *rd, const float **in)
{
    if (!rd) {
        *in = d->scratch;
        return decode_read_block(d, d->scratch, d->block);
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

/* ---- the conversion loop -------------------------------------------------- */

/* decode_drain(), through the reader's queue when there is a reader. */
static int drain(struct decoder *d, struct reader *rd)
{
    if (!rd)
        return decode_drain(d);
    const float *in;
    int64_t got;
    while ((got = next_block(d, rd, &in)) > 0)
        ;
    return (int)got;
}

/* Other rate: decoded blocks (from `rd`, or read here when it is NULL) go
 * through soxr (decode_feed), whose split output lands in the buffer
 * directly.  Stops early once a known-length output is full. */
static int convert(struct decoder *d, struct reader *rd)
{
    struct decode_window all = {0}; /* the whole buffer, grown as needed */
    int r;
    for (;;) {
        const float *in;
        int64_t got = next_block(d, rd, &in);
        if (got < 0)
            return (int)got;
        if (got == 0)
            break;
        if ((r = decode_feed(d, &all, in, (size_t)got)) < 0)
            return r;
        if (r == DECODE_FULL)
            return d->known ? 0 : drain(d, rd); /* known: output complete */
    }
    /* End of input: drain what soxr still holds. */
    r = decode_feed(d, &all, NULL, 0);
    return r < 0 ? r : 0;
}

/* Converts with decoding on a reader thread, or all here for a short file
 * or when the thread cannot be had (see the header comment).  Whichever
 * way convert() returns, the reader is stopped and joined before its state
 * is looked at. */
int decode_pipe(struct decoder *d)
{
    struct reader rd;
    if ((d->known && d->in_frames <= PIPE_MIN_FRAMES) || !reader_start(&rd, d))
        return convert(d, NULL);
    int r = convert(d, &rd);
    reader_stop(&rd, d);
    return r;
}
