/* loader.c - see loader.h. */
#include "loader.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "decode.h"
#include "log.h"
#include "sample_alloc.h"

/* One job on its worker thread.  `done`, `claimed` and `abandoned` are
 * under l->lock.  The worker claims the job before it answers or publishes
 * anything; the coordinator abandons only a job not claimed, so exactly
 * one of them answers it.  Whoever comes last frees the task: the
 * coordinator when it saw the job end, the worker when it was abandoned
 * (that worker then ends: the coordinator has replaced it). */
struct load_task {
    struct loader *l;
    struct load_job job;
    _Atomic uint64_t progress;    /* decode_fd's */
    struct loader_worker *worker; /* the one running it, once taken */
    bool done;
    bool claimed;
    bool abandoned;
    /* The coordinator's own: a client's job (runs alone), and the watchdog. */
    bool exclusive;
    uint64_t seen;
    struct timespec stall;
};

int loader_submit(struct loader *l, uint32_t id, const char *path, uint64_t seq,
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
        (struct load_job){.id = id, .seq = seq, .path = copy, .reply = reply};
    l->count++;
    pthread_cond_broadcast(&l->cond);
    pthread_mutex_unlock(&l->lock);
    return 0;
}

int loader_submit_bank(struct loader *l, uint32_t id, const char *path, uint64_t seq)
{
    char *copy = NULL;
    if (path && !(copy = strdup(path)))
        return -ENOMEM;
    pthread_mutex_lock(&l->lock);
    struct loaded_slot *ls = &l->slots[id];
    char *old = ls->bank ? ls->bank_path : NULL;
    if (!ls->bank)
        l->nbank++;
    ls->bank = true;
    ls->bank_path = copy;
    ls->bank_seq = seq;
    pthread_cond_broadcast(&l->cond);
    pthread_mutex_unlock(&l->lock);
    free(old);
    return 0;
}

static const char superseded[] = "superseded by a newer load of this slot";

static void fail_job(struct loader *l, struct load_job *job, const char *reason)
{
    if (!job->path)
        log_warn("emptying slot %u failed: %s", job->id, reason);
    else if (job->reconvert)
        log_warn("slot %u %s not converted to the new rate (it plays at the old one): %s", job->id,
                 job->path, reason);
    else if (job->reply || reason == superseded)
        log_info("load %u %s failed: %s", job->id, job->path, reason);
    else
        log_warn("load %u %s failed: %s", job->id, job->path, reason);
    reply_load_failed(l->replies, job->reply, job->id, reason);
    job->reply = NULL;
}

/* The load ring is drained every period.  It fills when the workers
 * publish more than ENGINE_LOAD_RING buffers within one period (a library
 * of short files does), and stays full while the audio thread is not
 * running (JACK stalled or gone): try again every millisecond, so the next
 * period's drain is used at once, and give up after a second rather than
 * hold the queue forever. */
#define PUBLISH_TRIES 1000
#define PUBLISH_WAIT_NS (1 * 1000 * 1000)

enum publish_result { PUBLISHED, SUPERSEDED_BY_NEWER, RING_FULL, OLD_RATE, ABANDONED };

/* Publishes a decoded buffer (m->buf) into slot job->id unless a newer
 * request for the slot took effect first (loader.h: "Order of loads and
 * unloads"), the buffer is not at the running rate, or the job was
 * abandoned.  The checks, the push and the slot's new state are one
 * critical section under l->lock.  On PUBLISHED the slot takes *path (the
 * copy kept for reloading) and *path is set to the old one, for the caller
 * to free outside the lock. */
static enum publish_result publish_load(struct loader *l, struct load_task *t,
                                        const struct ctl_msg *m, char **path)
{
    const struct load_job *job = &t->job;
    for (int tries = 0; tries < PUBLISH_TRIES; tries++) {
        pthread_mutex_lock(&l->lock);
        struct loaded_slot *ls = &l->slots[job->id];
        enum publish_result r = PUBLISHED;
        if (t->abandoned)
            r = ABANDONED;
        else if (job->reconvert ? !ls->loaded || ls->seq != job->seq : ls->seq >= job->seq)
            r = SUPERSEDED_BY_NEWER;
        else if (m->buf->rate != atomic_load(&l->rate))
            r = OLD_RATE;
        if (r != PUBLISHED) {
            pthread_mutex_unlock(&l->lock);
            return r;
        }
        if (engine_publish(l->engine, m)) {
            t->claimed = true;
            char *old = ls->path;
            if (!ls->loaded)
                atomic_fetch_add_explicit(&l->nloaded, 1, memory_order_relaxed);
            if (ls->stale)
                l->nstale--;
            ls->path = *path;
            ls->seq = job->seq;
            ls->loaded = true;
            ls->stale = false;
            pthread_mutex_unlock(&l->lock);
            *path = old;
            return PUBLISHED;
        }
        pthread_mutex_unlock(&l->lock);
        atomic_fetch_add_explicit(&t->progress, 1, memory_order_relaxed);
        nanosleep(&(struct timespec){.tv_nsec = PUBLISH_WAIT_NS}, NULL);
    }
    return RING_FULL;
}

/* ---- opening ------------------------------------------------------------ */

/* `path` without the directory `dir` it starts with (no leading '/'), or
 * NULL when it does not start with it. */
static const char *below(const char *dir, const char *path)
{
    size_t n = strlen(dir);
    if (strcmp(dir, "/") == 0)
        n = 0;
    else if (strncmp(path, dir, n) != 0 || (path[n] != '/' && path[n] != '\0'))
        return NULL;
    path += n;
    while (*path == '/')
        path++;
    return *path ? path : ".";
}

static long sys_openat2(int dirfd, const char *path, int flags)
{
    struct open_how how = {
        .flags = (uint64_t)flags,
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
    };
    return syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
}

static const char no_openat2[] =
    "--sample-dir needs openat2() (Linux 5.6 or later), which this kernel lacks";

/* Opens the file a load names (loader.h, "Opening"): a descriptor to hand
 * to decode_fd(), or a negative errno with the reason in err. */
static int open_sample(struct loader *l, const char *path, char *err, size_t errlen)
{
    if (!l->sample_dir) {
        int fd = open(path, DECODE_OPEN_FLAGS);
        return fd >= 0 ? fd : decode_open_error(errno, err, errlen);
    }
    const char *rel = path;
    if (path[0] == '/') {
        rel = below(l->sample_dir, path);
        if (!rel)
            rel = below(l->limits.sample_dir, path);
        if (!rel) {
            snprintf(err, errlen, "outside the sample directory");
            return -EXDEV;
        }
    }
    long fd = -1;
    /* EAGAIN: a rename or mount during the walk, and the kernel could not
     * rule out an escape through ".."; trying again is what it asks. */
    for (int tries = 0; tries < 16; tries++) {
        fd = sys_openat2(l->dir_fd, rel, DECODE_OPEN_FLAGS);
        if (fd >= 0 || (errno != EAGAIN && errno != EINTR))
            break;
    }
    if (fd >= 0)
        return (int)fd;
    switch (errno) {
    case EXDEV:
        snprintf(err, errlen, "outside the sample directory");
        return -EXDEV;
    case ELOOP:
        snprintf(err, errlen,
                 "outside the sample directory (a /proc magic link) or too many symbolic links");
        return -ELOOP;
    case ENOSYS:
        snprintf(err, errlen, "%s", no_openat2);
        return -ENOSYS;
    case EAGAIN:
        snprintf(err, errlen, "busy: the sample directory kept changing while opening");
        return -EAGAIN;
    default:
        return decode_open_error(errno, err, errlen);
    }
}

/* ---- one job ------------------------------------------------------------ */

/* Empties slot job->id for a bank's entry that left: through the load ring,
 * so it stays ordered with this thread's loads.  The engine answers no
 * event for it (it carries no reply); the control side forgets the slot
 * once the request is on the ring. */
static void run_unload(struct loader *l, struct load_task *t)
{
    struct ctl_msg m = {.type = CTL_UNLOAD, .id = t->job.id, .seq = t->job.seq};
    for (int tries = 0; tries < PUBLISH_TRIES; tries++) {
        pthread_mutex_lock(&l->lock);
        bool pushed = !t->abandoned && engine_publish(l->engine, &m);
        pthread_mutex_unlock(&l->lock);
        if (pushed) {
            loader_forget(l, t->job.id, t->job.seq);
            return;
        }
        nanosleep(&(struct timespec){.tv_nsec = PUBLISH_WAIT_NS}, NULL);
    }
    log_warn("cannot empty slot %u: audio engine not running", t->job.id);
}

/* Claims the job for its worker (struct load_task): true when it may
 * answer; false when it was abandoned, and must not touch the reply,
 * publish, or log as if it still counted. */
static bool claim(struct loader *l, struct load_task *t)
{
    pthread_mutex_lock(&l->lock);
    bool mine = !t->abandoned;
    t->claimed = mine;
    pthread_mutex_unlock(&l->lock);
    return mine;
}

static void run_job(struct loader *l, struct load_task *t)
{
    struct load_job *job = &t->job;
    char err[256];
    struct sample_buffer *buf = NULL;

    if (!job->path) {
        run_unload(l, t);
        return;
    }
    for (;;) {
        uint32_t rate = atomic_load(&l->rate);
        int fd = open_sample(l, job->path, err, sizeof(err));
        if (fd < 0) {
            if (claim(l, t))
                fail_job(l, job, err);
            return;
        }
        if (!engine_buffer_reserve(l->engine)) {
            close(fd);
            if (claim(l, t))
                fail_job(l, job, "busy: too many sample buffers waiting to be freed");
            return;
        }
        int r = decode_fd(fd, rate, l->limits.max_sample_bytes, &decode_default_options,
                          &t->progress, &buf, err, sizeof(err));
        if (r < 0) {
            engine_buffer_unreserve(l->engine);
            if (claim(l, t))
                fail_job(l, job, err);
            return;
        }
        /* The check and the charge are one step, so that workers finishing
         * at once cannot each find room for one more. */
        pthread_mutex_lock(&l->lock);
        uint64_t used = atomic_load(&l->engine->sample_bytes);
        bool over = l->limits.max_memory_bytes && used + buf->bytes > l->limits.max_memory_bytes;
        if (!over)
            engine_buffer_charge(l->engine, buf);
        pthread_mutex_unlock(&l->lock);
        if (over) {
            snprintf(err, sizeof(err),
                     "sample memory limit reached (%.1f MiB in use, this sample %.1f MiB, limit "
                     "%.0f MiB)",
                     used / 1048576.0, buf->bytes / 1048576.0,
                     l->limits.max_memory_bytes / 1048576.0);
            sample_buffer_free(buf);
            engine_buffer_unreserve(l->engine);
            if (claim(l, t))
                fail_job(l, job, err);
            return;
        }
        /* Once published the buffer belongs to the audio thread, which may
         * replace it and have it freed at any moment: read what we answer
         * and log first. */
        uint32_t frames = buf->frames, channels = buf->channels;
        /* The slot's gain in the engine stays 1: gains are the pads'
         * defaults (params.h), applied to each voice. */
        struct ctl_msg m = {
            .type = CTL_LOAD, .id = job->id, .seq = job->seq, .buf = buf, .velocity = 1.0f};
        char *copy = strdup(job->path); /* NULL: not reloaded after a rate change */
        enum publish_result pr = publish_load(l, t, &m, &copy);
        free(copy); /* on PUBLISHED, the slot's previous path */
        switch (pr) {
        case PUBLISHED:
            break;
        case OLD_RATE:
            /* The rate changed while this decoded: again, at the new one. */
            engine_buffer_free(l->engine, buf);
            log_info("load %u %s: the sample rate changed during the decode; again at %u Hz",
                     job->id, job->path, atomic_load(&l->rate));
            continue;
        case ABANDONED:
            engine_buffer_free(l->engine, buf);
            return;
        case SUPERSEDED_BY_NEWER:
            engine_buffer_free(l->engine, buf);
            /* A reconversion whose slot changed since: nothing to say. */
            if (!job->reconvert && claim(l, t))
                fail_job(l, job, superseded);
            return;
        case RING_FULL:
            engine_buffer_free(l->engine, buf);
            if (claim(l, t))
                fail_job(l, job, "busy: audio engine not running");
            return;
        }
        /* The buffer is on the load ring: whatever the client sends after
         * this reply is applied after it (loader.h). */
        reply_load_done(l->replies, job->reply, job->id, frames, channels);
        job->reply = NULL;
        log_info("%s %u %s: %u frames, %u channels", job->reconvert ? "converted" : "loaded",
                 job->id, job->path, frames, channels);
        return;
    }
}

/* A thread that runs decoders: they need a larger stack than the
 * process's default (DECODE_STACK_SIZE).  Returns 0 or an errno. */
static int start_decoder_thread(pthread_t *thread, void *(*fn)(void *), void *arg)
{
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, DECODE_STACK_SIZE);
    int r = pthread_create(thread, &attr, fn, arg);
    pthread_attr_destroy(&attr);
    return r;
}

/* A worker (loader.h, "Workers"): takes the tasks handed off to it, one at
 * a time, until the loader stops, or until a task of its own is abandoned,
 * after which it frees that task and ends (the coordinator detached it and
 * started another in its place). */
static void fill(struct loader *l);
static struct load_task *take_task(struct loader *l, uint32_t i);

static void *worker_main(void *arg)
{
    struct loader_worker *w = arg;
    struct loader *l = w->l;
    pthread_mutex_lock(&l->lock);
    for (;;) {
        while (l->nhandoff == 0 && !l->stop)
            pthread_cond_wait(&l->work, &l->lock);
        if (l->nhandoff == 0)
            break; /* stopping, and nothing left for it */
        struct load_task *t = l->handoff[0];
        l->nhandoff--;
        memmove(&l->handoff[0], &l->handoff[1], l->nhandoff * sizeof(l->handoff[0]));
        t->worker = w;
        /* The watchdog counts from here: however long the task waited
         * for a worker, it has made no read yet. */
        atomic_fetch_add_explicit(&t->progress, 1, memory_order_relaxed);
        pthread_mutex_unlock(&l->lock);
        run_job(l, t);
        pthread_mutex_lock(&l->lock);
        t->done = true;
        if (t->abandoned) {
            l->stalled--;
            pthread_mutex_unlock(&l->lock);
            log_info("load %u %s: the abandoned read returned; nothing published", t->job.id,
                     t->job.path);
            free(t->job.path);
            free(t);
            return NULL;
        }
        /* The worker takes its own task out and starts what may start
         * now, without a round trip through the coordinator. */
        for (uint32_t i = 0; i < l->running; i++)
            if (l->tasks[i] == t) {
                take_task(l, i);
                break;
            }
        pthread_mutex_unlock(&l->lock);
        free(t->job.path);
        free(t);
        /* A buffer this job freed (a load refused, superseded or cut short)
         * may have been kept as a spare, which the reply thread gives back
         * in time; it only watches the clock while it knows of spares, so
         * wake it (reply.h). */
        if (sample_spares_bytes() > 0)
            engine_wake(l->engine);
        pthread_mutex_lock(&l->lock);
        fill(l);
        if (l->running == 0) {
            if (l->count == 0 && l->nbank == 0)
                pthread_cond_broadcast(&l->idle);
            pthread_cond_broadcast(&l->cond); /* a stop waits for this */
        }
    }
    pthread_mutex_unlock(&l->lock);
    return NULL;
}

/* Under the lock: starts a worker in a free place of the pool.  0 or an
 * errno. */
static int start_worker(struct loader *l)
{
    for (uint32_t i = 0; i < LOADER_WORKERS; i++) {
        struct loader_worker *w = &l->pool[i];
        if (w->live)
            continue;
        w->l = l;
        int r = start_decoder_thread(&w->thread, worker_main, w);
        if (r != 0)
            return r;
        pthread_setname_np(w->thread, "looperd-load");
        w->live = true;
        l->nlive++;
        return 0;
    }
    return EAGAIN; /* cannot happen: at most `workers` jobs run */
}

/* ---- the coordinator ---------------------------------------------------- */

/* Decoding is bulk work that can keep both cores busy for tens of
 * milliseconds (a long FLAC decodes and converts on two threads).  The OSC
 * thread, which turns a /play into a ring message, and the reply thread must
 * win the CPU the moment a packet or an event arrives, so the loader runs
 * LOADER_NICE steps nicer than the rest of the process.  Linux keeps the
 * nice value per thread (setpriority(PRIO_PROCESS, 0) sets the calling
 * thread's) and a new thread inherits it, so the workers and decoder
 * threads the loader starts are just as nice.  Raising one's own nice value
 * needs no privilege; on an idle machine it costs the load nothing. */
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

/* Under the lock: the next job to start, or false when there is none or it
 * must wait.  A client's job first, and alone: it starts once no other job
 * runs, and none starts beside it, so clients see their loads one at a time
 * and in order, as they asked.  Then a slot's own work, a bank's entry
 * before any reconversion, up to l->workers at once, never two of one slot
 * at once (so a slot's loads and empties still apply in their order). */
static bool next_job(struct loader *l, struct load_job *job)
{
    if (l->exclusive)
        return false;
    if (l->count > 0) {
        if (l->running > 0)
            return false;
        *job = l->queue[l->head];
        job->client = true;
        l->head = (l->head + 1) % LOADER_QUEUE;
        l->count--;
        return true;
    }
    if (l->running >= l->workers || l->nbank + l->nstale == 0)
        return false;
    uint32_t n = l->engine->nslots;
    bool bank = l->nbank > 0;
    for (uint32_t k = 0; k < n; k++) {
        uint32_t id = (l->scan + k) % n;
        struct loaded_slot *ls = &l->slots[id];
        if ((bank ? !ls->bank : !ls->stale) || ls->running)
            continue;
        l->scan = (id + 1) % n;
        if (bank) {
            *job = (struct load_job){.id = id, .seq = ls->bank_seq, .path = ls->bank_path};
            ls->bank = false;
            ls->bank_path = NULL;
            l->nbank--;
            return true;
        }
        ls->stale = false;
        l->nstale--;
        char *copy = ls->path ? strdup(ls->path) : NULL;
        if (!copy) {
            log_warn("slot %u not converted to the new rate: out of memory", id);
            continue;
        }
        *job = (struct load_job){.id = id, .seq = ls->seq, .path = copy, .reconvert = true};
        return true;
    }
    return false;
}

static void deadline_in(struct timespec *t, long ms)
{
    clock_gettime(CLOCK_MONOTONIC, t);
    t->tv_sec += ms / 1000;
    t->tv_nsec += (ms % 1000) * 1000000L;
    if (t->tv_nsec >= 1000000000L) {
        t->tv_sec++;
        t->tv_nsec -= 1000000000L;
    }
}

static bool passed(const struct timespec *t)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > t->tv_sec || (now.tv_sec == t->tv_sec && now.tv_nsec >= t->tv_nsec);
}

/* Under the lock: fails `job` (not started) with `reason`.  Lets go of the
 * lock while it answers. */
static void refuse(struct loader *l, struct load_job *job, const char *reason)
{
    pthread_mutex_unlock(&l->lock);
    fail_job(l, job, reason);
    free(job->path);
    pthread_mutex_lock(&l->lock);
}

/* Under the lock: starts `job` on a worker of its own, watched by
 * watch_tasks(). */
static void start_task(struct loader *l, struct load_job *job)
{
    if (l->stalled >= LOADER_MAX_STALLED) {
        refuse(l, job, "busy: too many loads stalled on files that cannot be read");
        return;
    }
    struct load_task *t = calloc(1, sizeof(*t));
    if (!t) {
        refuse(l, job, "out of memory");
        return;
    }
    t->l = l;
    t->job = *job;
    t->exclusive = job->client;
    atomic_init(&t->progress, 0);
    /* Every running job has a worker, or one that will be free for it:
     * one more job may need one more worker. */
    if (l->nlive <= l->running && start_worker(l) != 0 && l->nlive == 0) {
        free(t);
        refuse(l, job, "busy: cannot start a loader thread");
        return;
    }
    l->handoff[l->nhandoff++] = t;
    pthread_cond_signal(&l->work);
    deadline_in(&t->stall, LOADER_STALL_MS);
    l->tasks[l->running++] = t;
    l->slots[job->id].running = true;
    if (t->exclusive)
        l->exclusive = true;
}

/* Under the lock: takes task i out of the running ones. */
static struct load_task *take_task(struct loader *l, uint32_t i)
{
    struct load_task *t = l->tasks[i];
    l->tasks[i] = l->tasks[--l->running];
    l->slots[t->job.id].running = false;
    if (t->exclusive)
        l->exclusive = false;
    return t;
}

/* Under the lock: abandons the jobs that made no progress for
 * LOADER_STALL_MS (loader.h, "Stalled reads").  Lets go of the lock while
 * it answers.  (A job that ends is taken out by its worker.) */
static void watch_tasks(struct loader *l)
{
    for (uint32_t i = 0; i < l->running;) {
        struct load_task *t = l->tasks[i];
        uint64_t p = atomic_load_explicit(&t->progress, memory_order_relaxed);
        if (p != t->seen) {
            t->seen = p;
            deadline_in(&t->stall, LOADER_STALL_MS);
        } else if (passed(&t->stall) && !t->claimed && t->worker) {
            /* Abandoned: the worker frees the task if it ever ends, and
             * ends; its place in the pool is free for another. */
            take_task(l, i);
            t->abandoned = true;
            l->stalled++;
            struct load_job j = t->job;
            t->job.reply = NULL;
            pthread_detach(t->worker->thread);
            t->worker->live = false;
            l->nlive--;
            pthread_mutex_unlock(&l->lock);
            j.path = j.path ? j.path : "";
            fail_job(l, &j, "no progress reading the file for 5 s: abandoned");
            pthread_mutex_lock(&l->lock);
            i = 0;
            continue;
        }
        i++;
    }
}

/* Under the lock: starts every job that may start now. */
static void fill(struct loader *l)
{
    struct load_job job;
    while (!l->stop && next_job(l, &job))
        start_task(l, &job);
}

static void *loader_main(void *arg)
{
    struct loader *l = arg;
    be_nice();
    pthread_mutex_lock(&l->lock);
    for (;;) {
        fill(l);
        if (l->running == 0) {
            if (l->count == 0 && l->nbank == 0)
                pthread_cond_broadcast(&l->idle);
            if (l->stop)
                break;
            pthread_cond_wait(&l->cond, &l->lock);
            continue;
        }
        struct timespec tick;
        deadline_in(&tick, 250);
        pthread_cond_timedwait(&l->cond, &l->lock, &tick);
        watch_tasks(l);
    }
    /* Shutting down: drop what is still queued. */
    while (l->count > 0) {
        struct load_job *job = &l->queue[l->head];
        l->head = (l->head + 1) % LOADER_QUEUE;
        l->count--;
        reply_ctx_free(l->replies, job->reply);
        free(job->path);
    }
    pthread_mutex_unlock(&l->lock);
    return NULL;
}

int loader_start(struct loader *l, struct engine *e, struct replies *replies,
                 const struct loader_limits *limits, char *err, size_t errlen)
{
    memset(l, 0, sizeof(*l));
    l->engine = e;
    l->replies = replies;
    l->limits = *limits;
    l->dir_fd = -1;
    atomic_init(&l->rate, e->rate);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    l->workers = ncpu < 1 ? 1 : ncpu > LOADER_WORKERS ? LOADER_WORKERS : (uint32_t)ncpu;
    if (limits->sample_dir) {
        l->sample_dir = realpath(limits->sample_dir, NULL);
        if (!l->sample_dir) {
            int saved = errno;
            snprintf(err, errlen, "--sample-dir %s: %s", limits->sample_dir, strerror(saved));
            return -saved;
        }
        l->dir_fd = open(l->sample_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        int saved = errno;
        long probe = l->dir_fd < 0 ? -1 : sys_openat2(l->dir_fd, ".", O_PATH | O_CLOEXEC);
        if (probe >= 0)
            close((int)probe);
        else if (l->dir_fd >= 0)
            saved = errno;
        if (probe < 0) {
            snprintf(err, errlen, "--sample-dir %s: %s", limits->sample_dir,
                     saved == ENOSYS ? no_openat2 : strerror(saved));
            if (l->dir_fd >= 0)
                close(l->dir_fd);
            free(l->sample_dir);
            l->sample_dir = NULL;
            return -saved;
        }
    }
    l->slots = calloc(e->nslots, sizeof(*l->slots));
    if (!l->slots) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    pthread_mutex_init(&l->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&l->cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&l->idle, NULL);
    pthread_cond_init(&l->work, NULL);
    int r = start_decoder_thread(&l->thread, loader_main, l);
    if (r != 0) {
        snprintf(err, errlen, "cannot start the loader thread");
        if (l->dir_fd >= 0)
            close(l->dir_fd);
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
    pthread_cond_broadcast(&l->cond);
    pthread_mutex_unlock(&l->lock);
    pthread_join(l->thread, NULL);
    /* The workers: every job they took has ended (the coordinator waited
     * for them), so they wait for work, and end when woken. */
    pthread_mutex_lock(&l->lock);
    pthread_cond_broadcast(&l->work);
    pthread_mutex_unlock(&l->lock);
    for (uint32_t i = 0; i < LOADER_WORKERS; i++) {
        if (l->pool[i].live)
            pthread_join(l->pool[i].thread, NULL);
        l->pool[i].live = false;
    }
    l->nlive = 0;
    pthread_mutex_lock(&l->lock);
    uint32_t stalled = l->stalled;
    for (uint32_t i = 0; i < l->engine->nslots; i++) {
        free(l->slots[i].path);
        free(l->slots[i].bank_path);
        l->slots[i].path = l->slots[i].bank_path = NULL;
    }
    pthread_mutex_unlock(&l->lock);
    /* Abandoned workers may still wake up and take the lock: it stays. */
    if (stalled == 0) {
        pthread_mutex_destroy(&l->lock);
        pthread_cond_destroy(&l->cond);
        pthread_cond_destroy(&l->idle);
        pthread_cond_destroy(&l->work);
        free(l->slots);
        l->slots = NULL;
    }
    if (l->dir_fd >= 0)
        close(l->dir_fd);
    l->dir_fd = -1;
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
        if (ls->stale)
            l->nstale--;
        ls->path = NULL;
        ls->loaded = false;
        ls->stale = false;
        ls->seq = seq;
    }
    pthread_mutex_unlock(&l->lock);
    free(old);
}

uint32_t loader_slots_loaded(struct loader *l)
{
    return atomic_load_explicit(&l->nloaded, memory_order_relaxed);
}

bool loader_slot_loaded(struct loader *l, uint32_t id)
{
    if (id >= l->engine->nslots)
        return false;
    pthread_mutex_lock(&l->lock);
    bool loaded = l->slots[id].loaded;
    pthread_mutex_unlock(&l->lock);
    return loaded;
}

uint32_t loader_rate(struct loader *l)
{
    return atomic_load_explicit(&l->rate, memory_order_relaxed);
}

void loader_set_rate(struct loader *l, uint32_t rate)
{
    pthread_mutex_lock(&l->lock);
    if (rate != atomic_load(&l->rate)) {
        atomic_store(&l->rate, rate);
        for (uint32_t id = 0; id < l->engine->nslots; id++) {
            struct loaded_slot *ls = &l->slots[id];
            if (ls->loaded && ls->path && !ls->stale) {
                ls->stale = true;
                l->nstale++;
            }
        }
        pthread_cond_broadcast(&l->cond);
    }
    pthread_mutex_unlock(&l->lock);
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
    while ((l->count > 0 || l->nbank > 0 || l->running > 0) && ok)
        ok = pthread_cond_timedwait(&l->idle, &l->lock, &deadline) == 0;
    pthread_mutex_unlock(&l->lock);
    return ok;
}
