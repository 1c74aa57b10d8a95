/* sample_alloc.c - the sample buffers' allocation policy: huge pages where
 * a buffer is big enough, spare mappings kept for reloads, pages locked and
 * populated before publication (beside memlock.c, the daemon's other
 * memory policy).  The API is sample_alloc.h's, the buffer's layout
 * common/sample.h's. */
#include "sample_alloc.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

/* Buffers of at least a huge page get huge pages: mapped 2 MiB-aligned with
 * MADV_HUGEPAGE given before any page is touched, so filling (and locking)
 * a 60 s sample takes a dozen page faults instead of thousands, and the
 * mixer's reads take fewer TLB misses.  The mapping starts PROT_NONE
 * because a daemon under mlockall(MCL_FUTURE) without MCL_ONFAULT has every
 * new readable mapping populated at once, which would be too early for the
 * advice.
 *
 * The mapping is as long as the buffer (to a 4 KiB page), not rounded up
 * to whole huge pages: the kernel gives huge pages to the 2 MiB stretches
 * that fit and small ones to the tail.  Rounding up would waste a MiB per
 * buffer on average (32 ten-second samples: 11 MiB).  The small pages of
 * the tail are populated in one call (MADV_POPULATE_WRITE, Linux 5.14)
 * rather than by a fault each (docs/performance.md, "Sample memory"). */
#define HUGE_PAGE ((size_t)2 << 20)
#define SAMPLE_MAPPED 1u

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

static void *map_huge(size_t len)
{
    unsigned char *raw =
        mmap(NULL, len + HUGE_PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (raw == MAP_FAILED)
        return NULL;
    unsigned char *start =
        (unsigned char *)(((uintptr_t)raw + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
    if (start > raw)
        munmap(raw, (size_t)(start - raw));
    size_t tail = (size_t)(raw + len + HUGE_PAGE - (start + len));
    if (tail)
        munmap(start + len, tail);
    (void)madvise(start, len, MADV_HUGEPAGE);
    if (mprotect(start, len, PROT_READ | PROT_WRITE) < 0) {
        munmap(start, len);
        return NULL;
    }
    /* Older kernels: EINVAL, and the decoder's writes fault the pages in. */
    (void)madvise(start, len, MADV_POPULATE_WRITE);
    return start;
}

/* Spare mappings.  A mapped buffer that is freed can be kept, its pages
 * populated and locked, for the next buffer that fits in it, rather than
 * unmapped.  Why: on a VM whose guest hands free memory back to the host,
 * fresh memory is backed again on first touch, now and then at many times
 * the usual cost (docs/performance.md, "Sample memory"), and each munmap
 * of a mapping in the daemon's address space sends a TLB shootdown to the
 * CPU the audio thread runs on.  Reloading a sample -- the buffer before the
 * slot's current one is freed when the next load replaces it -- then costs
 * neither: the third load of the same file finds the first one's mapping.
 *
 * Bounded: at most SPARE_MAX mappings and spare_limit bytes (0, the
 * default, keeps none: only the daemon asks for spares), the oldest given
 * back first when a new one does not fit, and sample_spares_trim() gives
 * back those kept too long.  A spare is taken for a buffer that needs at
 * least three quarters of it, best fit first, so little is wasted; the
 * buffer's `bytes` is then the whole mapping, and counts as such.  The lock
 * is taken by the loader (allocating) and the reply thread (freeing), never
 * by the audio thread. */
#define SPARE_MAX 4

struct spare {
    void *p;
    size_t bytes;
    uint64_t freed_ns; /* CLOCK_MONOTONIC */
};

static pthread_mutex_t spare_lock = PTHREAD_MUTEX_INITIALIZER;
static struct spare spares[SPARE_MAX];
static unsigned nspares;
static size_t spare_bytes, spare_limit;

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* Removes spares[i] (under the lock) and returns it. */
static struct spare spare_remove(unsigned i)
{
    struct spare s = spares[i];
    spares[i] = spares[--nspares];
    spare_bytes -= s.bytes;
    return s;
}

static unsigned spare_oldest(void)
{
    unsigned o = 0;
    for (unsigned i = 1; i < nspares; i++)
        if (spares[i].freed_ns < spares[o].freed_ns)
            o = i;
    return o;
}

/* Under the lock: removes the oldest spares into out[] until `incoming`
 * more bytes (0: none, and no new entry) fit within the limits.  Returns
 * how many were removed; the caller unmaps them once the lock is let go
 * (munmap of a large mapping takes a while). */
static unsigned spare_evict(size_t incoming, struct spare *out)
{
    unsigned nout = 0;
    while (nspares > 0 &&
           (nspares + (incoming > 0) > SPARE_MAX || spare_bytes + incoming > spare_limit))
        out[nout++] = spare_remove(spare_oldest());
    return nout;
}

static void spare_unmap(const struct spare *out, unsigned nout)
{
    for (unsigned i = 0; i < nout; i++)
        munmap(out[i].p, out[i].bytes);
}

/* A spare for a mapping of `need` bytes, or NULL; *got is its size. */
static void *spare_take(size_t need, size_t *got)
{
    void *p = NULL;
    pthread_mutex_lock(&spare_lock);
    unsigned best = nspares;
    for (unsigned i = 0; i < nspares; i++)
        if (spares[i].bytes >= need && spares[i].bytes - need <= spares[i].bytes / 4 &&
            (best == nspares || spares[i].bytes < spares[best].bytes))
            best = i;
    if (best < nspares) {
        struct spare s = spare_remove(best);
        p = s.p;
        *got = s.bytes;
    }
    pthread_mutex_unlock(&spare_lock);
    return p;
}

/* Keeps the mapping p of `bytes` as a spare if it may; false: unmap it. */
static bool spare_keep(void *p, size_t bytes)
{
    struct spare out[SPARE_MAX];
    unsigned nout = 0;
    bool kept = false;
    pthread_mutex_lock(&spare_lock);
    if (bytes <= spare_limit) {
        nout = spare_evict(bytes, out);
        spares[nspares++] = (struct spare){.p = p, .bytes = bytes, .freed_ns = now_ns()};
        spare_bytes += bytes;
        kept = true;
    }
    pthread_mutex_unlock(&spare_lock);
    spare_unmap(out, nout);
    return kept;
}

size_t sample_spares_trim(uint64_t max_age_ns)
{
    struct spare out[SPARE_MAX];
    unsigned nout = 0;
    uint64_t now = now_ns();
    pthread_mutex_lock(&spare_lock);
    for (unsigned i = 0; i < nspares;) {
        if (now - spares[i].freed_ns >= max_age_ns)
            out[nout++] = spare_remove(i); /* the last one moved to i */
        else
            i++;
    }
    size_t left = spare_bytes;
    pthread_mutex_unlock(&spare_lock);
    spare_unmap(out, nout);
    return left;
}

void sample_spares_limit(size_t bytes)
{
    struct spare out[SPARE_MAX];
    pthread_mutex_lock(&spare_lock);
    spare_limit = bytes;
    unsigned nout = spare_evict(0, out); /* what no longer fits; with 0, all */
    pthread_mutex_unlock(&spare_lock);
    spare_unmap(out, nout);
}

size_t sample_spares_bytes(void)
{
    pthread_mutex_lock(&spare_lock);
    size_t n = spare_bytes;
    pthread_mutex_unlock(&spare_lock);
    return n;
}

/* Smaller buffers come from the heap (stereo at 48 kHz: 16-bit samples up
 * to about 10.9 s, float ones up to about 5.4 s).  When the heap has to
 * grow for one, its pages are fresh, and the decoder writing them would
 * take a page fault for each 4 KiB, which costs more than the decode of a
 * 16-bit file at the engine rate (docs/performance.md, "Sample memory").
 * They are populated in one call here instead.  Pages the heap already had
 * in place cost a short walk.  MADV_POPULATE_WRITE maps them writable
 * without changing a byte, so the range is widened to whole pages even
 * where they hold other heap data.  Older kernels: EINVAL, and the
 * decoder's writes fault the pages in. */
static void populate_heap(void *p, size_t len)
{
    uintptr_t lo = (uintptr_t)p & ~(uintptr_t)4095;
    uintptr_t hi = ((uintptr_t)p + len + 4095) & ~(uintptr_t)4095;
    (void)madvise((void *)lo, hi - lo, MADV_POPULATE_WRITE);
}

struct sample_buffer *sample_buffer_new_format(uint32_t frames, uint32_t channels, uint32_t rate,
                                               uint32_t format)
{
    if (frames == 0 || channels < 1 || channels > SAMPLE_MAX_CHANNELS ||
        (format != SAMPLE_F32 && format != SAMPLE_S16))
        return NULL;
    size_t frame_bytes = sample_frame_bytes(format, channels);
    if (frames > (SIZE_MAX - sizeof(struct sample_buffer) - 4096) / frame_bytes)
        return NULL;
    size_t bytes = sizeof(struct sample_buffer) + (size_t)frames * frame_bytes;
    /* 64-byte alignment keeps the start of each channel friendly to SIMD
     * loads; calloc-like zeroing is left to the decoder, which writes every
     * frame anyway. */
    size_t rounded = (bytes + 63) & ~(size_t)63;
    uint32_t flags = 0;
    struct sample_buffer *b;
    if (rounded >= HUGE_PAGE) {
        rounded = (rounded + 4095) & ~(size_t)4095;
        size_t got;
        if ((b = spare_take(rounded, &got)))
            rounded = got; /* populated and locked already */
        else
            b = map_huge(rounded);
        flags = SAMPLE_MAPPED;
    } else {
        b = aligned_alloc(64, rounded);
        if (b)
            populate_heap(b, rounded);
    }
    if (!b)
        return NULL;
    memset(b, 0, sizeof(*b));
    b->flags = flags;
    b->frames = frames;
    b->channels = channels;
    b->rate = rate;
    b->format = format;
    b->bytes = rounded;
    if (format == SAMPLE_S16) {
        b->s16 = sample_buffer_s16(b);
    } else {
        b->ch[0] = b->data;
        b->ch[1] = channels == 2 ? b->data + frames : b->data;
    }
    return b;
}

void sample_buffer_prefault(struct sample_buffer *b)
{
    /* Every page is resident already: the builder wrote every frame (and
     * sample_buffer_new_format the header), so there is nothing to fault
     * in; what is left is to keep them.  Under the daemon's
     * mlockall(MCL_FUTURE | MCL_ONFAULT) the mapping is lock-on-fault and
     * its pages were locked as they were written; mlock2(MLOCK_ONFAULT)
     * then finds the flags as it would set them and returns at once, where
     * plain mlock() would switch the mapping to VM_LOCKED and walk every
     * page again.  Without mlockall it locks the pages present, i.e. all.
     * Best effort: it fails without CAP_IPC_LOCK or enough RLIMIT_MEMLOCK,
     * and the pages stay resident as written.  A kernel older than 4.4
     * has no mlock2 (ENOSYS) or no MLOCK_ONFAULT (EINVAL): plain mlock. */
    if (mlock2(b, b->bytes, MLOCK_ONFAULT) < 0 && (errno == ENOSYS || errno == EINVAL))
        (void)mlock(b, b->bytes);
}

void sample_buffer_free(struct sample_buffer *b)
{
    if (!b)
        return;
    if (b->flags & SAMPLE_MAPPED) {
        if (!spare_keep(b, b->bytes))
            munmap(b, b->bytes); /* unlocks too */
        return;
    }
    /* No munlock: a heap buffer shares its first and last pages with
     * other heap data, maybe a buffer that is playing, and munlock would
     * unlock those whole pages.  Under the daemon's mlockall the heap
     * stays locked anyway; free() gives the pages back when it can. */
    free(b);
}
