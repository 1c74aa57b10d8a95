/* loader.h - the loader thread: decode and convert files off the OSC and
 * audio threads, then publish the buffer to the audio thread.
 *
 * Requests wait in a small bounded FIFO (a full queue is answered "busy",
 * never waited on by the OSC thread).  One worker decodes them in order, so
 * a long file delays later loads but never /ping or /play.  The worker
 * answers failures itself; success is answered by the reply thread once the
 * audio thread has installed the buffer, i.e. when it is really playable.
 */
#ifndef LOOPERD_LOADER_H
#define LOOPERD_LOADER_H

#include <pthread.h>
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

/* What the loader last published into a slot, to load it again when the
 * sample rate changes. */
struct loaded_slot {
    char *path;
    float gain;
    uint64_t seq;
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
};

/* Returns 0, or a negative errno with a reason in err (bad --sample-dir). */
int loader_start(struct loader *l, struct engine *e, struct protocol *p,
                 const struct loader_limits *limits, char *err, size_t errlen);
/* Queues a load (or, with path NULL, emptying the slot); on success the job
 * owns `reply`.  -EBUSY when the queue is full, -ENOMEM.  Any thread. */
int loader_submit(struct loader *l, uint32_t id, const char *path, float gain, uint64_t seq,
                  struct reply_ctx *reply);
/* Forgets what slot `id` held (it was unloaded by request `seq`). */
void loader_forget(struct loader *l, uint32_t id, uint64_t seq);
/* Queues every loaded slot again (after a sample-rate change).  `seq` gives
 * each a fresh sequence number. */
void loader_reload_all(struct loader *l, _Atomic uint64_t *seq);
/* Waits until the queue is empty and no job runs; false on timeout. */
bool loader_wait_idle(struct loader *l, int timeout_ms);
/* Finishes the current job, drops the rest, joins the thread. */
void loader_stop(struct loader *l);

#endif
