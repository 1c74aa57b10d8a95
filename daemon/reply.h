/* reply.h - the reply thread: the audio thread's non-real-time half.
 *
 * It sleeps on the engine's semaphore, which the audio thread posts after
 * pushing events or giving back buffers.  Woken, it sends the replies the
 * events stand for (/pong, /done /stop, /done /unload) and frees the
 * buffers from the trash ring.  Freeing a buffer of a huge page or more
 * may keep its mapping as a spare for the next load (sample.c); this thread
 * gives spares back once they have waited REPLY_SPARE_KEEP_NS.  No polling:
 * an idle daemon is asleep here, but for one wake-up a second while spares
 * wait.  (/load is answered by the loader thread: loader.h.)  Owns this
 * thread and what each event means; the replies' formats and contexts are
 * replies.h's.
 *
 * An unload the audio thread applied is reported to `on_unloaded` (set by
 * whoever starts the thread: main gives the loader's loader_forget) before
 * its /done is sent, so a client that sees /done sees the slot empty.
 */
#ifndef LOOPERD_REPLY_H
#define LOOPERD_REPLY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "engine.h"
#include "replies.h"

/* How long a freed sample's mapping is kept for a reload: long enough for
 * a set of loads or a performer's reload of a slot, short enough that an
 * idle daemon soon holds only what it plays. */
#define REPLY_SPARE_KEEP_NS (30ull * 1000000000ull)

/* Slot `id` was emptied by the unload request `seq`. */
typedef void replier_unloaded_fn(void *user, uint32_t id, uint64_t seq);

struct replier {
    struct engine *engine;
    struct replies *replies;
    replier_unloaded_fn *on_unloaded; /* may be NULL */
    void *user;
    pthread_t thread;
    atomic_bool stop;
    bool started;
};

int replier_start(struct replier *r, struct engine *e, struct replies *rs,
                  replier_unloaded_fn *on_unloaded, void *user);
/* Handles what is already queued, then joins the thread. */
void replier_stop(struct replier *r);
/* One pass over both rings (the thread's body; also used at shutdown). */
void replier_drain(struct replier *r);

#endif
