/* loader.c - see loader.h. */
#include "loader.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "decode.h"
#include "log.h"

int loader_submit(struct loader *l, uint32_t id, const char *path, uint64_t seq,
                  struct reply_ctx *reply)
{
    char *copy = strdup(path);
    if (!copy)
        return -ENOMEM;
    pthread_mutex_lock(&l->lock);
    if (l->count == LOADER_QUEUE || l->stop) {
        pthread_mutex_unlock(&l->lock);
        free(copy);
        return -EBUSY;
    }
    l->queue[(l->head + l->count) % LOADER_QUEUE] =
        (struct load_job){.id = id, .seq = seq, .path = copy, .reply = reply};
    l->count++;
    pthread_cond_signal(&l->cond);
    pthread_mutex_unlock(&l->lock);
    return 0;
}

static void fail_job(struct loader *l, struct load_job *job, const char *reason)
{
    log_info("load %u %s failed: %s", job->id, job->path, reason);
    if (job->reply)
        osc_send(l->proto->osc, &job->reply->peer, "/fail", "ssi", "/load", reason,
                 (int32_t)job->id);
    reply_ctx_free(l->proto, job->reply);
}

/* The load ring is drained every period, so it is full only while the audio
 * thread is not running (JACK stalled or gone): wait a little, then give up
 * rather than hold the queue forever. */
static bool publish(struct loader *l, const struct ctl_msg *m)
{
    for (int tries = 0; tries < 200; tries++) {
        if (ring_push(&l->engine->load, m))
            return true;
        nanosleep(&(struct timespec){.tv_nsec = 5 * 1000 * 1000}, NULL);
    }
    return false;
}

static void run_job(struct loader *l, struct load_job *job)
{
    char err[256];
    struct sample_buffer *buf = NULL;

    if (!engine_buffer_reserve(l->engine)) {
        fail_job(l, job, "busy: too many sample buffers waiting to be freed");
        return;
    }
    int r = decode_file(job->path, l->engine->rate, l->max_bytes, &buf, err, sizeof(err));
    if (r < 0) {
        engine_buffer_unreserve(l->engine);
        fail_job(l, job, err);
        return;
    }
    /* Once published the buffer belongs to the audio thread, which may
     * replace it and have it freed at any moment: read what we log first. */
    uint32_t frames = buf->frames, channels = buf->channels;
    struct ctl_msg m = {.type = CTL_LOAD, .id = job->id, .seq = job->seq, .buf = buf,
                        .reply = job->reply};
    if (!publish(l, &m)) {
        sample_buffer_free(buf);
        engine_buffer_unreserve(l->engine);
        fail_job(l, job, "busy: audio engine not running");
        return;
    }
    log_info("loaded %u %s: %u frames, %u channels", job->id, job->path, frames, channels);
    /* The reply_ctx now travels with the message; the reply thread frees it. */
}

static void *loader_main(void *arg)
{
    struct loader *l = arg;
    pthread_mutex_lock(&l->lock);
    for (;;) {
        while (l->count == 0 && !l->stop)
            pthread_cond_wait(&l->cond, &l->lock);
        if (l->stop)
            break;
        struct load_job job = l->queue[l->head];
        l->head = (l->head + 1) % LOADER_QUEUE;
        l->count--;
        pthread_mutex_unlock(&l->lock);
        run_job(l, &job);
        free(job.path);
        pthread_mutex_lock(&l->lock);
    }
    /* Shutting down: drop what is still queued. */
    while (l->count > 0) {
        struct load_job *job = &l->queue[l->head];
        l->head = (l->head + 1) % LOADER_QUEUE;
        l->count--;
        reply_ctx_free(l->proto, job->reply);
        free(job->path);
    }
    pthread_mutex_unlock(&l->lock);
    return NULL;
}

int loader_start(struct loader *l, struct engine *e, struct protocol *p, size_t max_bytes)
{
    memset(l, 0, sizeof(*l));
    l->engine = e;
    l->proto = p;
    l->max_bytes = max_bytes;
    pthread_mutex_init(&l->lock, NULL);
    pthread_cond_init(&l->cond, NULL);
    int r = pthread_create(&l->thread, NULL, loader_main, l);
    if (r != 0)
        return -r;
    l->started = true;
    return 0;
}

void loader_stop(struct loader *l)
{
    if (!l->started)
        return;
    pthread_mutex_lock(&l->lock);
    l->stop = true;
    pthread_cond_signal(&l->cond);
    pthread_mutex_unlock(&l->lock);
    pthread_join(l->thread, NULL);
    pthread_mutex_destroy(&l->lock);
    pthread_cond_destroy(&l->cond);
    l->started = false;
}
