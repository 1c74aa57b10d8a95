/* reply.h - the reply thread: the audio thread's non-real-time half.
 *
 * It sleeps on the engine's semaphore, which the audio thread posts after
 * pushing events or giving back buffers.  Woken, it sends the replies the
 * events stand for (/pong, /done /stop, /done /unload) and frees the
 * buffers from the trash ring.  No polling: an idle daemon is asleep here.
 * (/load is answered by the loader thread: loader.h.)
 */
#ifndef LOOPERD_REPLY_H
#define LOOPERD_REPLY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "engine.h"
#include "protocol.h"

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
