/* reply.h - the reply thread: the audio thread's non-real-time half.
 *
 * It sleeps on the engine's semaphore, which the audio thread posts after
 * pushing events or giving back buffers.  Woken, it sends the replies the
 * events stand for (/pong, /done /stop, /done /unload) and frees the
 * buffers from the trash ring.  Freeing a buffer of a huge page or more
 * may keep its mapping as a spare for the next load (sample.c); this thread
 * gives spares back once they have waited REPLY_SPARE_KEEP_NS.  No polling:
 * an idle daemon is asleep here, but for one wake-up a second while spares
 * wait.  (/load is answered by the loader thread: loader.h.)
 */
#ifndef LOOPERD_REPLY_H
#define LOOPERD_REPLY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "engine.h"
#include "protocol.h"

/* How long a freed sample's mapping is kept for a reload: long enough for
 * a set of loads or a performer's reload of a slot, short enough that an
 * idle daemon soon holds only what it plays. */
#define REPLY_SPARE_KEEP_NS (30ull * 1000000000ull)

struct replier {
    struct engine *engine;
    struct protocol *proto;
    pthread_t thread;
    atomic_bool stop;
    bool started;
};

int replier_start(struct replier *r, struct engine *e, struct protocol *p);
/* Handles what is already queued, then joins the thread. */
void replier_stop(struct replier *r);
/* One pass over both rings (the thread's body; also used at shutdown). */
void replier_drain(struct replier *r);

#endif
