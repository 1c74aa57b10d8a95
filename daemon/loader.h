/* loader.h - the loader thread: decode and convert files off the OSC and
 * audio threads, then publish the buffer to the audio thread.
 *
 * Requests wait in a small bounded FIFO (a full queue is answered "busy",
 * never waited on by the OSC thread).  One worker decodes them in order, so
 * a long file delays later loads but never /ping or /play.  The worker
 * answers every /load itself: /fail when it cannot load the file, and
 * /done as soon as the buffer is on the engine's load ring, without waiting
 * for the audio thread to take it.  That is safe because the audio thread
 * applies a command only after every load published before the command was
 * sent (engine_process takes a snapshot of the command ring before it
 * drains the load ring), so whatever a client sends after /done -- /play,
 * /loop, a bundle, /unload -- finds the sample, and /status counts slots
 * here, on the control side (loader_slots_loaded).
 *
 * Order of loads and unloads of one slot.  Every /load and /unload gets a
 * sequence number when it is received; the newest request decides.  Each
 * slot's entry in `slots` holds the sequence number of the newest load
 * published into it or unload requested of it.  A decoded buffer is
 * published only if its own number is newer; else the load is answered
 * /fail "superseded by a newer load of this slot" and nothing changes.  The
 * check and the push happen under `lock`, which loader_forget() (an unload)
 * takes too, so an unload is either seen by that check or comes after the
 * push: then its command reaches the audio thread after the buffer and
 * empties the slot after it -- the order in which the two were requested,
 * with the load already answered /done.  The audio thread keeps its own
 * check and silently drops a buffer older than its slot's last request.
 */
#ifndef LOOPERD_LOADER_H
#define LOOPERD_LOADER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "protocol.h"

#define LOADER_QUEUE 64
/* How much nicer than the rest of the daemon the loader and its decoder
 * threads run (loader.c, be_nice). */
#define LOADER_NICE 10

struct load_job {
    uint32_t id;
    float gain;
    uint64_t seq;
    char *path;
    struct reply_ctx *reply; /* NULL: an internal load (bank, reconversion) */
};

/* The control side's view of a slot: the newest request that took effect
 * on it, and what it holds (the path, to load it again when the sample rate
 * changes; NULL if it is empty, or if the copy of the path failed). */
struct loaded_slot {
    char *path;
    float gain;
    uint64_t seq; /* newest load published or unload requested */
    bool loaded;  /* a sample was published and not unloaded since */
};

struct loader_limits {
    size_t max_sample_bytes; /* one decoded sample (--max-sample-mb) */
    size_t max_memory_bytes; /* all samples together (--max-memory-mb) */
    const char *sample_dir;  /* only files below it (--sample-dir), or NULL */
};

struct loader {
    struct engine *engine;
    struct protocol *proto;
    struct loader_limits limits;
    char *sample_dir; /* realpath of limits.sample_dir */
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct load_job queue[LOADER_QUEUE];
    uint32_t head, count;
    bool busy; /* a job is being decoded */
    bool stop;
    bool started;
    pthread_cond_t idle;
    struct loaded_slot *slots; /* engine->nslots entries, under `lock` */
    _Atomic uint32_t nloaded;  /* slots with `loaded` set */
};

/* Returns 0, or a negative errno with a reason in err (bad --sample-dir). */
int loader_start(struct loader *l, struct engine *e, struct protocol *p,
                 const struct loader_limits *limits, char *err, size_t errlen);
/* Queues a load (or, with path NULL, emptying the slot); on success the job
 * owns `reply`.  -EBUSY when the queue is full, -ENOMEM.  Any thread. */
int loader_submit(struct loader *l, uint32_t id, const char *path, float gain, uint64_t seq,
                  struct reply_ctx *reply);
/* Forgets what slot `id` held (it was unloaded by request `seq`); a load
 * requested before `seq` and not yet published will be superseded.  Call
 * it before the unload is sent to the audio thread.  Any thread. */
void loader_forget(struct loader *l, uint32_t id, uint64_t seq);
/* Slots holding a sample, as requests have left them: a load counts from
 * its /done on, an unload from the moment it is received.  Any thread. */
uint32_t loader_slots_loaded(struct loader *l);
/* Queues every loaded slot again (after a sample-rate change).  `seq` gives
 * each a fresh sequence number. */
void loader_reload_all(struct loader *l, _Atomic uint64_t *seq);
/* Waits until the queue is empty and no job runs; false on timeout. */
bool loader_wait_idle(struct loader *l, int timeout_ms);
/* Finishes the current job, drops the rest, joins the thread. */
void loader_stop(struct loader *l);

#endif
