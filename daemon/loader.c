/* loader.c - see loader.h. */
#include "loader.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "decode.h"
#include "log.h"
#include "sample.h"

int loader_submit(struct loader *l, uint32_t id, const char *path, float gain, uint64_t seq,
                  struct reply_ctx *reply)
{
    char *copy = NULL;
    if (path && !(copy = strdup(path)))
        return -ENOMEM;
    pthread_mutex_lock(&l->lock);
    if (l->count == LOADER_QUEUE || l->stop) {
        pthread_mutex_unlock(&l->lock);
        free(copy);
        return -EBUSY;
    }
    l->queue[(l->head + l->count) % LOADER_QUEUE] =
        (struct load_job){.id = id, .gain = gain, .seq = seq, .path = copy, .reply = reply};
    l->count++;
    pthread_cond_signal(&l->cond);
    pthread_mutex_unlock(&l->lock);
    return 0;
}

static const char superseded[] = "superseded by a newer load of this slot";

static void fail_job(struct loader *l, struct load_job *job, const char *reason)
{
    if (job->reply || reason == superseded)
        log_info("load %u %s failed: %s", job->id, job->path, reason);
    else
        log_warn("load %u %s failed: %s", job->id, job->path, reason);
    if (job->reply)
        osc_send(l->proto->osc, &job->reply->peer, "/fail", "ssi", "/load", reason,
                 (int32_t)job->id);
    reply_ctx_free(l->proto, job->reply);
}

/* The load ring is drained every period, so it is full only while the audio
 * thread is not running (JACK stalled or gone): wait a little, then give up
 * rather than hold the queue forever. */
#define PUBLISH_TRIES 200
#define PUBLISH_WAIT_NS (5 * 1000 * 1000)

static bool publish(struct loader *l, const struct ctl_msg *m)
{
    for (int tries = 0; tries < PUBLISH_TRIES; tries++) {
        if (ring_push(&l->engine->load, m))
            return true;
        nanosleep(&(struct timespec){.tv_nsec = PUBLISH_WAIT_NS}, NULL);
    }
    return false;
}

enum publish_result { PUBLISHED, SUPERSEDED_BY_NEWER, RING_FULL };

/* Publishes a decoded buffer (m->buf) into slot job->id unless a newer
 * request for the slot took effect first (loader.h: "Order of loads and
 * unloads").  The check, the push and the slot's new state are one
 * critical section under l->lock.  On PUBLISHED the slot takes *path (the
 * copy kept for reloading) and *path is set to the old one, for the caller
 * to free outside the lock. */
static enum publish_result publish_load(struct loader *l, const struct load_job *job,
                                        const struct ctl_msg *m, char **path)
{
    for (int tries = 0; tries < PUBLISH_TRIES; tries++) {
        pthread_mutex_lock(&l->lock);
        struct loaded_slot *ls = &l->slots[job->id];
        if (ls->seq >= job->seq) {
            pthread_mutex_unlock(&l->lock);
            return SUPERSEDED_BY_NEWER;
        }
        if (ring_push(&l->engine->load, m)) {
            char *old = ls->path;
            if (!ls->loaded)
                atomic_fetch_add_explicit(&l->nloaded, 1, memory_order_relaxed);
            *ls = (struct loaded_slot){
                .path = *path, .gain = job->gain, .seq = job->seq, .loaded = true};
            pthread_mutex_unlock(&l->lock);
            *path = old;
            return PUBLISHED;
        }
        pthread_mutex_unlock(&l->lock);
        nanosleep(&(struct timespec){.tv_nsec = PUBLISH_WAIT_NS}, NULL);
    }
    return RING_FULL;
}

/* With --sample-dir, relative paths are taken inside it and the real path
 * (symlinks and ".." resolved) must stay inside it.  Returns the path to
 * open (malloc'd) or NULL with a reason. */
static char *confine(struct loader *l, const char *path, char *err, size_t errlen)
{
    if (!l->sample_dir)
        return strdup(path);
    char *joined = NULL;
    if (path[0] != '/') {
        if (asprintf(&joined, "%s/%s", l->sample_dir, path) < 0)
            return NULL;
        path = joined;
    }
    char *real = realpath(path, NULL);
    int saved = errno;
    free(joined);
    if (!real) {
        snprintf(err, errlen, "%s",
                 saved == ENOENT         ? "no such file"
                 : saved == EACCES       ? "permission denied"
                 : saved == ENAMETOOLONG ? "path too long"
                                         : strerror(saved));
        return NULL;
    }
    size_t n = strlen(l->sample_dir);
    if (strncmp(real, l->sample_dir, n) != 0 || (real[n] != '/' && strcmp(l->sample_dir, "/"))) {
        snprintf(err, errlen, "outside the sample directory");
        free(real);
        return NULL;
    }
    return real;
}

static void run_job(struct loader *l, struct load_job *job)
{
    char err[256];
    struct sample_buffer *buf = NULL;

    if (!job->path) {
        /* An internal unload (a slot that left the bank): it goes through
         * the load ring so it stays ordered with this thread's loads. */
        struct ctl_msg m = {.type = CTL_UNLOAD, .id = job->id, .seq = job->seq};
        loader_forget(l, job->id, job->seq);
        if (!publish(l, &m))
            log_warn("cannot empty slot %u: audio engine not running", job->id);
        return;
    }

    char *path = confine(l, job->path, err, sizeof(err));
    if (!path) {
        fail_job(l, job, err);
        return;
    }
    if (!engine_buffer_reserve(l->engine)) {
        free(path);
        fail_job(l, job, "busy: too many sample buffers waiting to be freed");
        return;
    }
    int r = decode_file(path, l->engine->rate, l->limits.max_sample_bytes, &buf, err, sizeof(err));
    free(path);
    if (r < 0) {
        engine_buffer_unreserve(l->engine);
        fail_job(l, job, err);
        return;
    }
    uint64_t used = atomic_load(&l->engine->sample_bytes);
    if (l->limits.max_memory_bytes && used + buf->bytes > l->limits.max_memory_bytes) {
        snprintf(err, sizeof(err),
                 "sample memory limit reached (%.1f MiB in use, this sample %.1f MiB, limit "
                 "%.0f MiB)",
                 used / 1048576.0, buf->bytes / 1048576.0, l->limits.max_memory_bytes / 1048576.0);
        sample_buffer_free(buf);
        engine_buffer_unreserve(l->engine);
        fail_job(l, job, err);
        return;
    }
    engine_buffer_charge(l->engine, buf);
    /* Once published the buffer belongs to the audio thread, which may
     * replace it and have it freed at any moment: read what we answer and
     * log first. */
    uint32_t frames = buf->frames, channels = buf->channels;
    struct ctl_msg m = {
        .type = CTL_LOAD, .id = job->id, .seq = job->seq, .buf = buf, .velocity = job->gain};
    char *copy = strdup(job->path); /* NULL: not reloaded after a rate change */
    switch (publish_load(l, job, &m, &copy)) {
    case PUBLISHED:
        break;
    case SUPERSEDED_BY_NEWER:
        free(copy);
        engine_buffer_free(l->engine, buf);
        fail_job(l, job, superseded);
        return;
    case RING_FULL:
        free(copy);
        engine_buffer_free(l->engine, buf);
        fail_job(l, job, "busy: audio engine not running");
        return;
    }
    free(copy); /* the slot's previous path */
    /* The buffer is on the load ring: whatever the client sends after this
     * reply is applied after it (loader.h). */
    if (job->reply) {
        osc_send(l->proto->osc, &job->reply->peer, "/done", "siii", "/load", (int32_t)job->id,
                 (int32_t)frames, (int32_t)channels);
        reply_ctx_free(l->proto, job->reply);
    }
    log_info("loaded %u %s: %u frames, %u channels", job->id, job->path, frames, channels);
}

/* Decoding is bulk work that can keep both cores busy for tens of
 * milliseconds (a long FLAC decodes and converts on two threads).  The OSC
 * thread, which turns a /play into a ring message, and the reply thread must
 * win the CPU the moment a packet or an event arrives, so the loader runs
 * LOADER_NICE steps nicer than the rest of the process.  Linux keeps the
 * nice value per thread (setpriority(PRIO_PROCESS, 0) sets the calling
 * thread's) and a new thread inherits it, so the decoder threads the loader
 * starts are just as nice.  Raising one's own nice value needs no privilege;
 * on an idle machine it costs the load nothing. */
static void be_nice(void)
{
    errno = 0;
    int cur = getpriority(PRIO_PROCESS, 0);
    if (cur == -1 && errno != 0)
        return;
    int want = cur + LOADER_NICE > 19 ? 19 : cur + LOADER_NICE;
    if (setpriority(PRIO_PROCESS, 0, want) < 0)
        log_warn("loader: cannot lower its priority: %s", strerror(errno));
}

static void *loader_main(void *arg)
{
    struct loader *l = arg;
    be_nice();
    pthread_mutex_lock(&l->lock);
    for (;;) {
        while (l->count == 0 && !l->stop)
            pthread_cond_wait(&l->cond, &l->lock);
        if (l->stop)
            break;
        struct load_job job = l->queue[l->head];
        l->head = (l->head + 1) % LOADER_QUEUE;
        l->count--;
        l->busy = true;
        pthread_mutex_unlock(&l->lock);
        run_job(l, &job);
        free(job.path);
        /* A buffer this job freed (a load refused, superseded or cut
         * short) may have been kept as a spare, which the reply thread
         * gives back in time; it only watches the clock while it knows of
         * spares, so wake it (reply.h). */
        if (sample_spares_bytes() > 0)
            sem_post(&l->engine->wake);
        pthread_mutex_lock(&l->lock);
        l->busy = false;
        if (l->count == 0)
            pthread_cond_broadcast(&l->idle);
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

int loader_start(struct loader *l, struct engine *e, struct protocol *p,
                 const struct loader_limits *limits, char *err, size_t errlen)
{
    memset(l, 0, sizeof(*l));
    l->engine = e;
    l->proto = p;
    l->limits = *limits;
    if (limits->sample_dir) {
        l->sample_dir = realpath(limits->sample_dir, NULL);
        if (!l->sample_dir) {
            int saved = errno;
            snprintf(err, errlen, "--sample-dir %s: %s", limits->sample_dir, strerror(saved));
            return -saved;
        }
    }
    l->slots = calloc(e->nslots, sizeof(*l->slots));
    if (!l->slots) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    pthread_mutex_init(&l->lock, NULL);
    pthread_cond_init(&l->cond, NULL);
    pthread_cond_init(&l->idle, NULL);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, DECODE_STACK_SIZE);
    int r = pthread_create(&l->thread, &attr, loader_main, l);
    pthread_attr_destroy(&attr);
    if (r != 0) {
        snprintf(err, errlen, "cannot start the loader thread");
        free(l->sample_dir);
        l->sample_dir = NULL;
        free(l->slots);
        l->slots = NULL;
        return -r;
    }
    pthread_setname_np(l->thread, "looperd-loader");
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
    pthread_cond_destroy(&l->idle);
    for (uint32_t i = 0; i < l->engine->nslots; i++)
        free(l->slots[i].path);
    free(l->slots);
    l->slots = NULL;
    free(l->sample_dir);
    l->sample_dir = NULL;
    l->started = false;
}

void loader_forget(struct loader *l, uint32_t id, uint64_t seq)
{
    pthread_mutex_lock(&l->lock);
    struct loaded_slot *ls = &l->slots[id];
    char *old = NULL;
    if (seq > ls->seq) {
        old = ls->path;
        if (ls->loaded)
            atomic_fetch_sub_explicit(&l->nloaded, 1, memory_order_relaxed);
        *ls = (struct loaded_slot){.seq = seq};
    }
    pthread_mutex_unlock(&l->lock);
    free(old);
}

uint32_t loader_slots_loaded(struct loader *l)
{
    return atomic_load_explicit(&l->nloaded, memory_order_relaxed);
}

void loader_reload_all(struct loader *l, _Atomic uint64_t *seq)
{
    for (uint32_t id = 0; id < l->engine->nslots; id++) {
        pthread_mutex_lock(&l->lock);
        char *path = l->slots[id].path ? strdup(l->slots[id].path) : NULL;
        float gain = l->slots[id].gain;
        pthread_mutex_unlock(&l->lock);
        if (!path)
            continue;
        if (loader_submit(l, id, path, gain, atomic_fetch_add(seq, 1) + 1, NULL) < 0)
            log_warn("cannot queue slot %u for conversion to the new rate", id);
        free(path);
    }
}

bool loader_wait_idle(struct loader *l, int timeout_ms)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    bool ok = true;
    pthread_mutex_lock(&l->lock);
    while ((l->count > 0 || l->busy) && ok)
        ok = pthread_cond_timedwait(&l->idle, &l->lock, &deadline) == 0;
    pthread_mutex_unlock(&l->lock);
    return ok;
}
