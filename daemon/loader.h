/* loader.h - the loader: decode and convert files off the OSC and audio
 * threads, then publish the buffer to the audio thread.
 *
 * Requests.  A client's /load waits in a small bounded FIFO (a full queue
 * is answered "busy", never waited on by the OSC thread).  Work the daemon
 * gives itself -- a bank's entries (loader_submit_bank) and the
 * reconversion of every sample after a sample-rate change (loader_set_rate)
 * -- is kept per slot instead, at most one of each per slot, so it never
 * fills the FIFO: a bank of as many entries as there are slots is taken
 * whole.  The coordinator thread takes the FIFO first, then the per-slot
 * work.  A client's load runs alone: it starts once nothing else runs and
 * nothing starts beside it, so a client's loads run one at a time, in the
 * order sent.  The daemon's own work runs on up to `workers` jobs at once
 * (min(online CPUs, LOADER_WORKERS): a library of short files is bound by
 * each file's fixed costs, which spread over the cores), never two jobs of
 * one slot at once, so a slot's loads and empties still apply in order.
 * Every worker is as nice as the coordinator (loader.c, be_nice).
 *
 * Workers.  Jobs run on a pool of persistent worker threads, at most
 * LOADER_WORKERS (struct loader_worker), started as they are needed (one
 * more whenever a job starts and every live worker has one) and then kept:
 * a worker waits for the next job handed off to it, and when its job ends
 * it takes it out of the running ones and starts whatever may start next
 * itself, so a library of short files never waits for the coordinator
 * between two files.  They inherit the coordinator's nice value.
 *
 * Stalled reads.  The coordinator watches every running job: the decoder
 * counts every read that returned data (decode_fd's `progress`; taking the
 * job counts as one), and a job that makes no progress for LOADER_STALL_MS
 * (a read that blocks forever: a stalled network mount, a /proc file that
 * waits) is abandoned: answered /fail, its worker detached and its place in
 * the pool given to a new one, so the other jobs go on.  The abandoned
 * worker is left blocked; if its read ever returns it drops whatever it
 * decoded and ends, publishing and answering nothing.  At most
 * LOADER_MAX_STALLED of them exist at once (each holds a thread, a
 * descriptor and at most one sample's buffer); a job that finds that many
 * is refused with /fail at once.
 *
 * Replies.  The worker answers every /load itself, through replies.h
 * (reply_load_failed, reply_load_done): /fail when it cannot load the
 * file, and /done as soon as the buffer is on the engine's load
 * ring, without waiting for the audio thread to take it.  That is safe
 * because the audio thread applies a command only after every load
 * published before the command was sent (engine_process takes a snapshot
 * of the command ring before it drains the load ring), so whatever a
 * client sends after /done -- /play, /loop, a bundle, /unload -- finds the
 * sample, and /status counts slots here, on the control side
 * (loader_slots_loaded).
 *
 * Order of loads and unloads of one slot.  Every /load and /unload gets a
 * sequence number when it is received; the newest request decides.  Each
 * slot's entry in `slots` holds the sequence number of the newest load
 * published into it or unload applied to it.  A decoded buffer is
 * published only if its own number is newer; else the load is answered
 * /fail "superseded by a newer load of this slot" and nothing changes.  A
 * reconversion re-does the slot's current load under the same number, and
 * is published only while that load is still the slot's newest.  The check
 * and the push happen under `lock`, which loader_forget() takes too (so
 * do the check of --max-memory-mb and the charge of the buffer's bytes, so
 * that workers finishing at once cannot each find room for one more).  An
 * unload changes this state only once the audio thread has applied it
 * (the reply thread calls loader_forget() on its event, before /done,
 * through the hook main gives it: reply.h): an unload refused, or a timed
 * one dropped before its time, leaves the slot as it was.  The audio thread keeps its own check and
 * silently drops a buffer older than its slot's last request.
 *
 * Sample rate.  The loader decodes at `rate` (loader_set_rate).  A buffer
 * is published only if its rate (sample_buffer.rate) is the running rate,
 * checked under `lock`; a decode that finished at an old rate is run again
 * at the new one.  loader_set_rate() marks every loaded slot for
 * reconversion under the same lock, so a buffer published at the old rate
 * is converted again too.
 *
 * Opening (item 8 of issue 14).  With --sample-dir the path is resolved and
 * opened in one step, openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)
 * below a descriptor of the directory, so no symlink swapped in at any
 * moment can lead outside; the file is decoded from that descriptor.
 */
#ifndef LOOPERD_LOADER_H
#define LOOPERD_LOADER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "replies.h"

#define LOADER_QUEUE 64
/* How much nicer than the rest of the daemon the loader and its decoder
 * threads run (loader.c, be_nice). */
#define LOADER_NICE 10
/* A job that makes no progress this long is abandoned with /fail. */
#define LOADER_STALL_MS 5000
/* Abandoned jobs that may still hold a thread at once. */
#define LOADER_MAX_STALLED 4
/* The most jobs that run at once: the daemon's own work (a bank's entries,
 * reconversions) on min(online CPUs, this) workers; a client's load always
 * alone. */
#define LOADER_WORKERS 4

struct load_job {
    uint32_t id;
    uint64_t seq;
    char *path;              /* NULL: empty the slot (a bank's entry that left) */
    struct reply_ctx *reply; /* NULL: an internal job (bank, reconversion) */
    bool reconvert;          /* the slot's current load again, at the new rate */
    bool client;             /* from the FIFO: runs alone (loader.c, next_job) */
};

/* The control side's view of a slot: the newest request that took effect
 * on it, what it holds (the path, to load it again when the sample rate
 * changes; NULL if it is empty, or if the copy of the path failed), and
 * the daemon's own work waiting for it. */
struct loaded_slot {
    char *path;
    uint64_t seq; /* newest load published or unload applied */
    bool loaded;  /* a sample was published and not unloaded since */
    bool stale;   /* loaded at a rate that is no longer the running one */
    /* A bank's entry waiting (loader_submit_bank): load bank_path, or
     * empty the slot when it is NULL. */
    bool bank;
    char *bank_path;
    uint64_t bank_seq;
    bool running; /* a worker has a job of this slot */
};

struct loader_limits {
    size_t max_sample_bytes; /* one decoded sample (--max-sample-mb) */
    size_t max_memory_bytes; /* all samples together (--max-memory-mb) */
    const char *sample_dir;  /* only files below it (--sample-dir), or NULL */
};

struct load_task;
struct loader;

/* A thread of the pool that runs jobs (loader.c, worker_main). */
struct loader_worker {
    struct loader *l;
    pthread_t thread;
    bool live; /* started, and neither joined nor abandoned */
};

struct loader {
    struct engine *engine;
    struct replies *replies;
    struct loader_limits limits;
    char *sample_dir; /* realpath of limits.sample_dir */
    int dir_fd;       /* O_PATH descriptor of it, or -1 */
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond; /* work for the coordinator, or its task ended */
    struct load_job queue[LOADER_QUEUE];
    uint32_t head, count;
    uint32_t nbank, nstale; /* slots with `bank` / `stale` set */
    uint32_t scan;          /* where the search for per-slot work goes on */
    uint32_t workers;       /* jobs that may run at once: min(CPUs, LOADER_WORKERS) */
    struct load_task *tasks[LOADER_WORKERS]; /* the running ones, `running` of them */
    uint32_t running;
    struct load_task *handoff[LOADER_WORKERS]; /* started, not yet taken by a worker */
    uint32_t nhandoff;
    pthread_cond_t work; /* a task was handed off, or stop */
    struct loader_worker pool[LOADER_WORKERS];
    uint32_t nlive; /* pool entries live */
    bool exclusive; /* a client's job runs: nothing else starts */
    bool stop;
    bool started;
    uint32_t stalled; /* abandoned workers still running */
    _Atomic uint32_t rate;
    pthread_cond_t idle;
    struct loaded_slot *slots; /* engine->nslots entries, under `lock` */
    _Atomic uint32_t nloaded;  /* slots with `loaded` set */
};

/* Returns 0, or a negative errno with a reason in err (bad --sample-dir, a
 * kernel without openat2). */
int loader_start(struct loader *l, struct engine *e, struct replies *replies,
                 const struct loader_limits *limits, char *err, size_t errlen);
/* Queues a client's load; on success the job owns `reply`.  -EBUSY when
 * the queue is full, -ENOMEM.  Any thread.  A load carries no gain: gains
 * are the slot's defaults (params.h), which a load leaves as they are. */
int loader_submit(struct loader *l, uint32_t id, const char *path, uint64_t seq,
                  struct reply_ctx *reply);
/* A bank's entry for slot `id`: load `path` (NULL: empty the slot).  It
 * replaces an entry of an earlier bank still waiting for the slot.  0 or
 * -ENOMEM.  Any thread. */
int loader_submit_bank(struct loader *l, uint32_t id, const char *path, uint64_t seq);
/* Slot `id` was emptied by the request `seq` (the audio thread applied
 * it); a load requested before `seq` and not yet published will be
 * superseded.  Any thread. */
void loader_forget(struct loader *l, uint32_t id, uint64_t seq);
/* Slots holding a sample, as requests have left them: a load counts from
 * its /done on, an unload from the moment it is applied.  Any thread. */
uint32_t loader_slots_loaded(struct loader *l);
/* Slot `id` holds a sample, as requests have left it (loader_slots_loaded's
 * rule).  Any thread; takes `lock` briefly. */
bool loader_slot_loaded(struct loader *l, uint32_t id);
/* The rate every published buffer is at: the JACK rate of the last
 * (re)connection, kept while the server is gone.  Any thread. */
uint32_t loader_rate(struct loader *l);
/* The running sample rate: loads decode at it, and if it changed every
 * loaded slot is converted again (keeping its place in the order of
 * requests).  Any thread. */
void loader_set_rate(struct loader *l, uint32_t rate);
/* Waits until no client's load or bank entry waits and no job runs; false
 * on timeout. */
bool loader_wait_idle(struct loader *l, int timeout_ms);
/* Finishes the current job, drops the rest, joins the thread. */
void loader_stop(struct loader *l);

#endif
