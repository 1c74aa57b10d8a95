/* reply.c - see reply.h. */
#include "reply.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include "sample_alloc.h"

static void answer(struct replier *r, const struct event *ev)
{
    switch (ev->type) {
    case EV_PONG:
        reply_pong(r->replies, ev->reply);
        break;
    case EV_STOPPED:
        reply_stop_done(r->replies, ev->reply);
        break;
    case EV_UNLOADED:
        /* Applied: now the control side forgets the slot (loader.h). */
        if (ev->reply && r->on_unloaded)
            r->on_unloaded(r->user, ev->id, ev->reply->unload_seq);
        reply_unload_done(r->replies, ev->reply, ev->id);
        break;
    default:
        reply_ctx_free(r->replies, ev->reply);
        break;
    }
}

void replier_drain(struct replier *r)
{
    struct event ev;
    struct sample_buffer *b;

    while (engine_take_event(r->engine, &ev))
        answer(r, &ev);
    while ((b = engine_take_trash(r->engine)) != NULL)
        engine_buffer_free(r->engine, b);
}

/* Waits for the audio thread's post; while spare mappings wait to be given
 * back, for at most a second. */
static void wait_wake(struct replier *r)
{
    if (sample_spares_bytes() == 0) {
        engine_wait(r->engine, NULL);
        return;
    }
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    t.tv_sec += 1;
    engine_wait(r->engine, &t);
}

static void *replier_main(void *arg)
{
    struct replier *r = arg;
    for (;;) {
        wait_wake(r);
        replier_drain(r);
        sample_spares_trim(REPLY_SPARE_KEEP_NS);
        if (atomic_load(&r->stop))
            return NULL;
    }
}

int replier_start(struct replier *r, struct engine *e, struct replies *rs,
                  replier_unloaded_fn *on_unloaded, void *user)
{
    memset(r, 0, sizeof(*r));
    r->engine = e;
    r->replies = rs;
    r->on_unloaded = on_unloaded;
    r->user = user;
    int err = pthread_create(&r->thread, NULL, replier_main, r);
    if (err != 0)
        return -err;
    pthread_setname_np(r->thread, "looperd-reply");
    r->started = true;
    return 0;
}

void replier_stop(struct replier *r)
{
    if (!r->started)
        return;
    atomic_store(&r->stop, true);
    engine_wake(r->engine);
    pthread_join(r->thread, NULL);
    r->started = false;
}
