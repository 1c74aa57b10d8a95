/* library.h - the sample library: folders of named banks (--library DIR).
 *
 * Owns the scan of the library's folders, the table of banks (name -> its
 * samples in order), which engine slot holds each sample, and the loading
 * and reloading of them through the loader.  The meaning of an index is
 * SuperDirt's (docs/protocol.md, "The sample library").
 *
 * Layout.  Every subfolder of a --library DIR is a bank named after the
 * folder; its samples are the files in it that libsndfile can open, sorted
 * by name in byte order, dot files left out.  A bank of the same name in a
 * later DIR replaces an earlier one (SuperDirt's loadSoundFiles does the
 * same).  A library sample lives in an engine slot of its own, in the range
 * [first, first + max) above the numbered slots, taken from a free list, so
 * the numbered slots are never used and no request walks the library.
 *
 * Threads.  The library's own thread scans the folders (at start-up, and on
 * each library_reload(): /library/reload, SIGHUP), submits the loads and
 * empties to the loader as a bank's entries (loader_submit_bank), waits
 * for the loader, logs the progress, and swaps the new table in.  The
 * table is read by the OSC thread (library_find) under `lock`, held only
 * for a binary search or the swap.  The audio thread never sees any of it.
 *
 * Reloads.  A file whose path, device, inode, size and modification time
 * are unchanged keeps its slot and is not loaded again; a changed one is
 * loaded again into its slot; a new one gets a free slot; a removed one's
 * slot is emptied once the new table is in use, then freed.  The new table
 * is swapped in when its loads are done (at start-up at once, so that
 * /status shows the progress and a sample not loaded yet is skipped).
 *
 * Memory.  Before loading, each file's decoded size at the running rate is
 * estimated from its header (16-bit PCM or less stays 16-bit, as the
 * loader stores it; anything else is float); banks are taken in name order
 * while they fit in --max-memory-mb beside the numbered slots' samples and
 * in `max` slots; the others are left out, and the log names them.
 */
#ifndef LOOPERD_LIBRARY_H
#define LOOPERD_LIBRARY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "loader.h"
#include "replies.h"

#define LIBRARY_MAX_DIRS 16
#define LIBRARY_DEFAULT_MAX 4096
/* /library/reload requests waiting for one reload: later ones are refused. */
#define LIBRARY_WAITERS 16

struct lib_sample {
    char *path;
    uint32_t slot;
    double seconds; /* the file's length, frames / its own rate */
    uint64_t dev, ino, size;
    int64_t mtime_ns;
    size_t bytes; /* the estimate of its decoded size */
};

struct lib_bank {
    char *name;
    uint32_t n;
    struct lib_sample *s; /* n, sorted by file name */
};

struct lib_table {
    uint32_t nbanks, nsamples;
    struct lib_bank *banks; /* sorted by name (strcmp) */
};

struct library {
    struct loader *loader;
    struct engine *engine;
    struct replies *replies;
    _Atomic uint64_t *seq; /* protocol's load_seq: orders every load and unload */
    const char *dirs[LIBRARY_MAX_DIRS];
    unsigned ndirs;
    uint32_t first, max;
    size_t max_memory; /* --max-memory-mb in bytes, 0: none */

    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct lib_table *cur; /* under lock */
    bool want, stop;       /* under lock: a reload asked for; shut down */
    struct reply_ctx *waiting[LIBRARY_WAITERS];
    unsigned nwaiting; /* under lock */

    uint32_t *free_slots; /* the library thread's own */
    uint32_t nfree;
    pthread_t thread;
    bool started;

    /* For /status. */
    _Atomic uint32_t banks, samples, loaded;
};

/* A sample found: its slot and its file's length. */
struct lib_hit {
    uint32_t slot;
    double seconds;
};

/* Starts the thread, which loads the library at once.  `dirs`: ndirs
 * folders (kept by pointer).  Slots [first, first + max) of `e` are the
 * library's.  0 or a negative errno. */
int library_start(struct library *lib, struct loader *l, struct engine *e, struct replies *rs,
                  _Atomic uint64_t *seq, const char *const *dirs, unsigned ndirs, uint32_t first,
                  uint32_t max, size_t max_memory);
/* Asks for a rescan.  `r` (may be NULL: SIGHUP) is answered "/done
 * /library/reload banks samples" once the new table is in use; -EBUSY
 * when LIBRARY_WAITERS wait already (r is left to the caller).  Any
 * thread. */
int library_reload(struct library *lib, struct reply_ctx *r);
/* Bank `name` (len bytes), index n (truncated toward zero, then modulo the
 * bank's size).  0; -ENOENT: no such bank (or an empty one); -EAGAIN: its
 * file is not loaded yet.  OSC thread. */
int library_find(struct library *lib, const char *name, size_t len, double n, struct lib_hit *hit);
/* Joins the thread and frees everything (the slots' samples are the
 * engine's).  Answers no waiting reload. */
void library_stop(struct library *lib);

#endif
