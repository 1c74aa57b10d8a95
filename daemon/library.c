/* library.c - see library.h. */
#include "library.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sndfile.h>

#include "log.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static void table_free(struct lib_table *t)
{
    if (!t)
        return;
    for (uint32_t b = 0; b < t->nbanks; b++) {
        for (uint32_t i = 0; i < t->banks[b].n; i++)
            free(t->banks[b].s[i].path);
        free(t->banks[b].s);
        free(t->banks[b].name);
    }
    free(t->banks);
    free(t);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_bank(const void *a, const void *b)
{
    return strcmp(((const struct lib_bank *)a)->name, ((const struct lib_bank *)b)->name);
}

/* The names in `dir` not starting with '.', sorted; NULL on error. */
static char **list_dir(const char *dir, uint32_t *count)
{
    DIR *d = opendir(dir);
    *count = 0;
    if (!d)
        return NULL;
    char **names = NULL;
    uint32_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            uint32_t nc = cap ? cap * 2 : 32;
            char **g = realloc(names, nc * sizeof(*g));
            if (!g)
                break;
            names = g;
            cap = nc;
        }
        if (!(names[n] = strdup(e->d_name)))
            break;
        n++;
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof(*names), cmp_str);
    *count = n;
    return names ? names : calloc(1, sizeof(char *));
}

static void free_names(char **names, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* Reads a file's header: false when libsndfile cannot open it. */
static bool probe(const char *path, uint32_t rate, struct lib_sample *s)
{
    SF_INFO info = {0};
    SNDFILE *f = sf_open(path, SFM_READ, &info);
    if (!f)
        return false;
    sf_close(f);
    if (info.samplerate <= 0 || info.channels <= 0 || info.frames <= 0)
        return false;
    int sub = info.format & SF_FORMAT_SUBMASK;
    size_t width =
        sub == SF_FORMAT_PCM_16 || sub == SF_FORMAT_PCM_S8 || sub == SF_FORMAT_PCM_U8 ? 2 : 4;
    double frames = ceil((double)info.frames * rate / info.samplerate);
    s->seconds = (double)info.frames / info.samplerate;
    s->bytes = (size_t)frames * (size_t)(info.channels > 2 ? 2 : info.channels) * width;
    return true;
}

/* One bank's folder: its readable files in order.  0 or -ENOMEM. */
static int scan_bank(const char *folder, const char *name, uint32_t rate, struct lib_bank *out)
{
    uint32_t n;
    char **names = list_dir(folder, &n);
    memset(out, 0, sizeof(*out));
    if (!names)
        return 0;
    out->name = strdup(name);
    out->s = calloc(n ? n : 1, sizeof(*out->s));
    if (!out->name || !out->s) {
        free_names(names, n);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < n; i++) {
        char *path;
        if (asprintf(&path, "%s/%s", folder, names[i]) < 0) {
            free_names(names, n);
            return -ENOMEM;
        }
        struct stat st;
        struct lib_sample *s = &out->s[out->n];
        if (stat(path, &st) < 0 || !S_ISREG(st.st_mode) || !probe(path, rate, s)) {
            free(path);
            continue;
        }
        s->path = path;
        s->dev = st.st_dev;
        s->ino = st.st_ino;
        s->size = (uint64_t)st.st_size;
        s->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
        s->slot = UINT32_MAX;
        out->n++;
    }
    free_names(names, n);
    return 0;
}

/* Every bank of every folder (a later folder's bank replaces an earlier one
 * of the same name), sorted by name.  NULL on ENOMEM. */
static struct lib_table *scan(struct library *lib, uint32_t rate)
{
    struct lib_table *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    uint32_t cap = 0;
    for (unsigned d = 0; d < lib->ndirs; d++) {
        uint32_t n;
        char **names = list_dir(lib->dirs[d], &n);
        if (!names) {
            log_warn("library %s: %s", lib->dirs[d], strerror(errno));
            continue;
        }
        for (uint32_t i = 0; i < n; i++) {
            char *folder;
            struct stat st;
            if (asprintf(&folder, "%s/%s", lib->dirs[d], names[i]) < 0) {
                free_names(names, n);
                goto oom_names;
            }
            if (stat(folder, &st) < 0 || !S_ISDIR(st.st_mode)) {
                free(folder);
                continue;
            }
            struct lib_bank b;
            int r = scan_bank(folder, names[i], rate, &b);
            free(folder);
            if (r < 0) {
                free(b.name);
                for (uint32_t k = 0; k < b.n; k++)
                    free(b.s[k].path);
                free(b.s);
                free_names(names, n);
                goto oom_names;
            }
            /* Replace a bank of the same name from an earlier folder. */
            uint32_t k;
            for (k = 0; k < t->nbanks && strcmp(t->banks[k].name, b.name) != 0; k++)
                ;
            if (k < t->nbanks) {
                log_info("library: bank %s of %s replaces the one found before", b.name,
                         lib->dirs[d]);
                for (uint32_t j = 0; j < t->banks[k].n; j++)
                    free(t->banks[k].s[j].path);
                free(t->banks[k].s);
                free(t->banks[k].name);
                t->nsamples -= t->banks[k].n;
                t->banks[k] = b;
                t->nsamples += b.n;
                continue;
            }
            if (t->nbanks == cap) {
                uint32_t nc = cap ? cap * 2 : 64;
                struct lib_bank *g = realloc(t->banks, nc * sizeof(*g));
                if (!g) {
                    free(b.name);
                    for (uint32_t j = 0; j < b.n; j++)
                        free(b.s[j].path);
                    free(b.s);
                    free_names(names, n);
                    goto oom_names;
                }
                t->banks = g;
                cap = nc;
            }
            t->banks[t->nbanks++] = b;
            t->nsamples += b.n;
        }
        free_names(names, n);
    }
    if (t->nbanks)
        qsort(t->banks, t->nbanks, sizeof(*t->banks), cmp_bank);
    return t;
oom_names:
    table_free(t);
    return NULL;
}

/* The samples of `t` by path, for finding a file's earlier entry. */
static int cmp_sample_ptr(const void *a, const void *b)
{
    return strcmp((*(struct lib_sample *const *)a)->path, (*(struct lib_sample *const *)b)->path);
}

static struct lib_sample **by_path(const struct lib_table *t)
{
    struct lib_sample **v = calloc(t && t->nsamples ? t->nsamples : 1, sizeof(*v));
    if (!v || !t)
        return v;
    uint32_t k = 0;
    for (uint32_t b = 0; b < t->nbanks; b++)
        for (uint32_t i = 0; i < t->banks[b].n; i++)
            v[k++] = &t->banks[b].s[i];
    qsort(v, k, sizeof(*v), cmp_sample_ptr);
    return v;
}

/* The index in `v` of the entry of `path`, or -1. */
static int64_t find_path(struct lib_sample **v, uint32_t n, const char *path)
{
    struct lib_sample key = {.path = (char *)path}, *kp = &key;
    struct lib_sample **hit = n ? bsearch(&kp, v, n, sizeof(*v), cmp_sample_ptr) : NULL;
    return hit ? hit - v : -1;
}

static bool same_file(const struct lib_sample *a, const struct lib_sample *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size && a->mtime_ns == b->mtime_ns;
}

/* Drops bank k of `t` (left out: memory or slots). */
static void drop_bank(struct lib_table *t, uint32_t k)
{
    for (uint32_t j = 0; j < t->banks[k].n; j++)
        free(t->banks[k].s[j].path);
    free(t->banks[k].s);
    free(t->banks[k].name);
    t->nsamples -= t->banks[k].n;
    memmove(&t->banks[k], &t->banks[k + 1], (t->nbanks - k - 1) * sizeof(*t->banks));
    t->nbanks--;
}

/* Keeps the banks, in name order, that fit in the memory left beside the
 * numbered slots' samples and in the library's slots; logs the others. */
static void fit(struct library *lib, struct lib_table *t, const struct lib_table *old)
{
    size_t old_bytes = 0;
    if (old)
        for (uint32_t b = 0; b < old->nbanks; b++)
            for (uint32_t i = 0; i < old->banks[b].n; i++)
                old_bytes += old->banks[b].s[i].bytes;
    size_t used = (size_t)atomic_load(&lib->engine->sample_bytes);
    size_t others = used > old_bytes ? used - old_bytes : 0;
    size_t room = SIZE_MAX;
    if (lib->max_memory)
        room = lib->max_memory > others ? lib->max_memory - others : 0;
    size_t total = 0;
    uint32_t slots = 0, left = 0;
    char names[512];
    size_t nl = 0;
    names[0] = 0;
    for (uint32_t k = 0; k < t->nbanks;) {
        size_t bytes = 0;
        for (uint32_t i = 0; i < t->banks[k].n; i++)
            bytes += t->banks[k].s[i].bytes;
        if (bytes <= room - total && slots + t->banks[k].n <= lib->max) {
            total += bytes;
            slots += t->banks[k].n;
            k++;
            continue;
        }
        if (nl < sizeof(names) - 1) {
            int w =
                snprintf(names + nl, sizeof(names) - nl, "%s%s", left ? " " : "", t->banks[k].name);
            nl = w > 0 ? nl + (size_t)w : nl;
            if (nl >= sizeof(names))
                nl = sizeof(names) - 1;
        }
        left++;
        drop_bank(t, k);
    }
    if (left)
        log_warn("library: %u bank%s left out (beyond --max-memory-mb %zu MiB or --library-max "
                 "%u samples): %s",
                 left, left == 1 ? "" : "s", lib->max_memory / 1048576, lib->max, names);
}

/* Waits for the loader, logging the progress of `t`'s samples. */
static uint32_t count_loaded(struct library *lib, const struct lib_table *t)
{
    uint32_t n = 0;
    for (uint32_t b = 0; b < t->nbanks; b++)
        for (uint32_t i = 0; i < t->banks[b].n; i++)
            n += loader_slot_loaded(lib->loader, t->banks[b].s[i].slot);
    return n;
}

static void wait_loads(struct library *lib, const struct lib_table *t)
{
    double last = now_s();
    while (!loader_wait_idle(lib->loader, 250)) {
        pthread_mutex_lock(&lib->lock);
        bool stop = lib->stop;
        pthread_mutex_unlock(&lib->lock);
        if (stop)
            return;
        uint32_t n = count_loaded(lib, t);
        atomic_store(&lib->loaded, n);
        if (now_s() - last >= 2.0) {
            log_info("library: %u of %u samples loaded", n, t->nsamples);
            last = now_s();
        }
    }
    atomic_store(&lib->loaded, count_loaded(lib, t));
}

static void answer(struct library *lib, struct reply_ctx **r, unsigned n, uint32_t banks,
                   uint32_t samples)
{
    for (unsigned i = 0; i < n; i++)
        reply_library_done(lib->replies, r[i], banks, samples);
}

/* One scan and its loads.  Replies to the reloads that were waiting when
 * it began. */
static void load(struct library *lib, struct reply_ctx **waiting, unsigned nwaiting)
{
    double t0 = now_s();
    struct lib_table *old = lib->cur; /* only this thread changes it */
    struct lib_table *t = scan(lib, loader_rate(lib->loader));
    if (!t) {
        log_error("library: out of memory; the library stays as it was");
        answer(lib, waiting, nwaiting, old ? old->nbanks : 0, old ? old->nsamples : 0);
        return;
    }
    fit(lib, t, old);
    struct lib_sample **prev = by_path(old);
    uint32_t nprev = old ? old->nsamples : 0;
    bool *kept = calloc(nprev ? nprev : 1, sizeof(*kept));
    if (!prev || !kept) {
        free(prev);
        free(kept);
        table_free(t);
        log_error("library: out of memory; the library stays as it was");
        answer(lib, waiting, nwaiting, old ? old->nbanks : 0, old ? old->nsamples : 0);
        return;
    }
    uint32_t loads = 0, same = 0;
    for (uint32_t b = 0; b < t->nbanks; b++) {
        for (uint32_t i = 0; i < t->banks[b].n; i++) {
            struct lib_sample *s = &t->banks[b].s[i];
            int64_t k = find_path(prev, nprev, s->path);
            if (k >= 0) {
                const struct lib_sample *o = prev[k];
                kept[k] = true;
                s->slot = o->slot;
                if (same_file(o, s)) {
                    same++;
                    continue;
                }
            } else if (lib->nfree > 0) {
                s->slot = lib->free_slots[--lib->nfree];
            } else {
                continue; /* cannot happen: fit() kept at most `max` */
            }
            uint64_t seq = atomic_fetch_add(lib->seq, 1) + 1;
            if (loader_submit_bank(lib->loader, s->slot, s->path, seq) == 0)
                loads++;
            else
                log_error("library: %s: out of memory; not loaded", s->path);
        }
    }
    log_notice("library: %u bank%s, %u sample%s: %u to load, %u unchanged", t->nbanks,
               t->nbanks == 1 ? "" : "s", t->nsamples, t->nsamples == 1 ? "" : "s", loads, same);
    atomic_store(&lib->banks, t->nbanks);
    atomic_store(&lib->samples, t->nsamples);
    if (!old) {
        pthread_mutex_lock(&lib->lock);
        lib->cur = t;
        pthread_mutex_unlock(&lib->lock);
    }
    wait_loads(lib, t);
    if (old) {
        pthread_mutex_lock(&lib->lock);
        lib->cur = t;
        pthread_mutex_unlock(&lib->lock);
        /* The files that left: their slots are emptied and freed. */
        uint32_t gone = 0;
        for (uint32_t i = 0; i < nprev; i++) {
            if (kept[i])
                continue;
            uint32_t slot = prev[i]->slot;
            uint64_t seq = atomic_fetch_add(lib->seq, 1) + 1;
            if (loader_submit_bank(lib->loader, slot, NULL, seq) == 0) {
                lib->free_slots[lib->nfree++] = slot;
                gone++;
            } else {
                log_error("library: slot %u: out of memory; not emptied", slot);
            }
        }
        if (gone)
            log_info("library: %u removed file%s emptied", gone, gone == 1 ? "" : "s");
        table_free(old);
    }
    free(prev);
    free(kept);
    log_notice("library loaded: %u bank%s, %u sample%s in %.2f s", t->nbanks,
               t->nbanks == 1 ? "" : "s", atomic_load(&lib->loaded),
               atomic_load(&lib->loaded) == 1 ? "" : "s", now_s() - t0);
    answer(lib, waiting, nwaiting, t->nbanks, t->nsamples);
}

static void *library_main(void *arg)
{
    struct library *lib = arg;
    pthread_setname_np(pthread_self(), "looperd-library");
    pthread_mutex_lock(&lib->lock);
    for (;;) {
        while (!lib->want && !lib->stop)
            pthread_cond_wait(&lib->cond, &lib->lock);
        if (lib->stop)
            break;
        struct reply_ctx *w[LIBRARY_WAITERS];
        unsigned nw = lib->nwaiting;
        memcpy(w, lib->waiting, nw * sizeof(*w));
        lib->nwaiting = 0;
        lib->want = false;
        pthread_mutex_unlock(&lib->lock);
        load(lib, w, nw);
        pthread_mutex_lock(&lib->lock);
    }
    pthread_mutex_unlock(&lib->lock);
    return NULL;
}

int library_start(struct library *lib, struct loader *l, struct engine *e, struct replies *rs,
                  _Atomic uint64_t *seq, const char *const *dirs, unsigned ndirs, uint32_t first,
                  uint32_t max, size_t max_memory)
{
    memset(lib, 0, sizeof(*lib));
    if (ndirs > LIBRARY_MAX_DIRS || first + max > e->nslots)
        return -EINVAL;
    lib->loader = l;
    lib->engine = e;
    lib->replies = rs;
    lib->seq = seq;
    for (unsigned i = 0; i < ndirs; i++)
        lib->dirs[i] = dirs[i];
    lib->ndirs = ndirs;
    lib->first = first;
    lib->max = max;
    lib->max_memory = max_memory;
    lib->free_slots = malloc((max ? max : 1) * sizeof(*lib->free_slots));
    if (!lib->free_slots)
        return -ENOMEM;
    /* Taken from the end: the lowest slots first. */
    for (uint32_t i = 0; i < max; i++)
        lib->free_slots[i] = first + max - 1 - i;
    lib->nfree = max;
    pthread_mutex_init(&lib->lock, NULL);
    pthread_cond_init(&lib->cond, NULL);
    lib->want = true;
    int r = pthread_create(&lib->thread, NULL, library_main, lib);
    if (r != 0) {
        pthread_mutex_destroy(&lib->lock);
        pthread_cond_destroy(&lib->cond);
        free(lib->free_slots);
        lib->free_slots = NULL;
        return -r;
    }
    lib->started = true;
    return 0;
}

int library_reload(struct library *lib, struct reply_ctx *r)
{
    int ret = 0;
    pthread_mutex_lock(&lib->lock);
    if (r && lib->nwaiting >= LIBRARY_WAITERS) {
        ret = -EBUSY;
    } else {
        if (r)
            lib->waiting[lib->nwaiting++] = r;
        lib->want = true;
        pthread_cond_signal(&lib->cond);
    }
    pthread_mutex_unlock(&lib->lock);
    return ret;
}

int library_find(struct library *lib, const char *name, size_t len, double n, struct lib_hit *hit)
{
    int r = -ENOENT;
    pthread_mutex_lock(&lib->lock);
    const struct lib_table *t = lib->cur;
    uint32_t lo = 0, hi = t ? t->nbanks : 0;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        const char *b = t->banks[mid].name;
        int c = strncmp(b, name, len);
        if (c == 0 && b[len] != 0)
            c = 1;
        if (c == 0) {
            const struct lib_bank *bank = &t->banks[mid];
            if (bank->n == 0)
                break;
            /* SuperDirt: wrapAt(n.asInteger), truncation toward zero. */
            double tr = trunc(n);
            int64_t i = fabs(tr) < 9e15 ? (int64_t)tr : 0;
            int64_t m = i % (int64_t)bank->n;
            if (m < 0)
                m += bank->n;
            hit->slot = bank->s[m].slot;
            hit->seconds = bank->s[m].seconds;
            r = 0;
            break;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    pthread_mutex_unlock(&lib->lock);
    if (r == 0 && !loader_slot_loaded(lib->loader, hit->slot))
        r = -EAGAIN;
    return r;
}

void library_stop(struct library *lib)
{
    if (!lib->started)
        return;
    pthread_mutex_lock(&lib->lock);
    lib->stop = true;
    pthread_cond_signal(&lib->cond);
    pthread_mutex_unlock(&lib->lock);
    pthread_join(lib->thread, NULL);
    for (unsigned i = 0; i < lib->nwaiting; i++)
        reply_ctx_free(lib->replies, lib->waiting[i]);
    table_free(lib->cur);
    lib->cur = NULL;
    pthread_mutex_destroy(&lib->lock);
    pthread_cond_destroy(&lib->cond);
    free(lib->free_slots);
    lib->free_slots = NULL;
    lib->started = false;
}
