/*
 * jack_record - a small, gap-checking JACK recorder for the end-to-end tests.
 *
 *   jack_record --name N --connect SRC_L --connect SRC_R --out FILE
 *               [--seconds S]
 *
 * Design
 * ------
 * - The main thread blocks SIGINT, SIGTERM and SIGUSR1 *before* opening the
 *   JACK client, so every thread libjack creates inherits the mask and those
 *   signals can only be taken by the main thread's sigwait(): no handlers,
 *   no busy loop, no async-signal-safety concerns.
 * - The client is opened with JackNoStartServer | JackUseExactName (it
 *   honours JACK_DEFAULT_SERVER like any libjack client).  Once the sample
 *   rate is known the whole recording buffer (S seconds, default 30,
 *   interleaved stereo float) is allocated, written to (so every page is
 *   faulted in) and mlock()ed if permitted - all before jack_activate().
 * - Two input ports in_1/in_2 are registered, the client is activated, and
 *   the --connect sources are connected to in_1 and in_2 in order.  Then the
 *   recorder is "armed": the first process callback after arming is frame 0
 *   of the recording.  That callback posts a semaphore; main waits for it
 *   (bounded), then prints "ready" on stdout and flushes.
 * - The process callback only copies/interleaves port buffers into the
 *   preallocated buffer and updates atomics: no allocation, locking or I/O.
 *   It checks continuity: jack_last_frame_time() of each cycle must equal the
 *   previous cycle's frame time + its nframes (mod 2^32); every mismatch is a
 *   gap.  An xrun callback counts xruns while recording.  Each gap and xrun
 *   also notes where it fell, as a frame index of the recording (the first
 *   MAX_MARKS of each), so a test can tell whether the part it compares was
 *   touched: a gap's index is exact (the first frame after the jump); an
 *   xrun's is the recording's length when the notification arrived, so at
 *   or after the cycle that overran.
 * - When the buffer is full the callback stops recording and wakes main with
 *   pthread_kill(main, SIGUSR1) (once).  The JACK shutdown callback does the
 *   same if the server goes away.
 * - On wake-up main deactivates the client (unless the server is gone), so
 *   the recorded data is stable, and writes FILE as raw little-endian
 *   float32, interleaved L,R frames, no header, plus FILE.json:
 *   {"rate":R, "frames":N, "channels":2, "first_frame_time":T|null,
 *    "gaps":G, "xruns":X, "gap_at":[i, ...], "xrun_at":[i, ...],
 *    ...clock fields below}.  Exit status 0 on success,
 *   1 on runtime errors, 2 on usage errors.
 *
 * Clock fields (for timing tests; readers that do not know them ignore them):
 * - "cycles": [[frame, usecs, next_usecs], ...] for every recorded cycle,
 *   from jack_get_cycle_times() in the process callback (lock-free reads of
 *   JACK's shared timer, into a preallocated array): JACK's own smoothed
 *   frame <-> microsecond mapping, the one jack_time_to_frames() uses.
 *   Entry k is the cycle whose frames start at recording index k * nframes,
 *   even across a gap: a cycle whose times could not be read is logged as
 *   [frame, 0, 0] rather than left out.
 * - "wall_minus_jack_us": [start, end], CLOCK_REALTIME minus jack_get_time()
 *   in microseconds, each the tightest of several readings of the wall clock
 *   on both sides of one jack_get_time(), taken on the main thread when the
 *   recording starts and when it ends.
 * - "raw_minus_jack_us": [start, end], CLOCK_MONOTONIC_RAW
 *   minus jack_get_time(), read the same way at the same moments.
 * - "first_frame_wall_us": the wall-clock time of frame first_frame_time
 *   (its cycle's usecs + the start offset), or null.
 * So a wall-clock time W maps to JACK frame
 *   frame_k + (W - off - usecs_k) / (next_usecs_k - usecs_k) * nframes
 * with k the cycle whose [usecs, next_usecs) holds W - off.
 */

#include <errno.h>
#include <getopt.h>
#include <math.h> /* isfinite (a macro, no libm needed) */
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include <jack/jack.h>

#include "jack_clock.h"

#define NCHAN 2
#define MAX_SOURCES NCHAN
#define READY_TIMEOUT_S 10
#define CLOCK_READINGS 64
#define MAX_MARKS 256

struct cycle {
    jack_nframes_t frame;
    jack_time_t usecs;
    jack_time_t next_usecs;
};

struct recorder {
    jack_client_t *client;
    jack_port_t *in[NCHAN];
    float *buf; /* cap_frames * NCHAN interleaved samples */
    size_t cap_frames;
    pthread_t main_thread;
    sem_t first_cycle;

    /* Written by the process thread, read by main. */
    atomic_size_t frames;
    atomic_bool armed;
    atomic_bool full;
    atomic_bool started;
    _Atomic uint32_t first_frame_time;
    atomic_uint gaps;
    size_t gap_at[MAX_MARKS]; /* the first MAX_MARKS gaps' recording indices */

    /* Process thread only (read by main after deactivation). */
    jack_nframes_t expect_time;
    struct cycle *cycles; /* max_cycles entries, preallocated */
    size_t max_cycles;
    atomic_size_t ncycles;

    /* Written by the notification / shutdown threads. */
    atomic_uint xruns;
    size_t xrun_at[MAX_MARKS]; /* written by the notification thread */
    atomic_bool server_gone;
};

static int process_cb(jack_nframes_t nframes, void *arg)
{
    struct recorder *r = arg;

    if (!atomic_load_explicit(&r->armed, memory_order_acquire) ||
        atomic_load_explicit(&r->full, memory_order_relaxed))
        return 0;

    jack_nframes_t now = jack_last_frame_time(r->client);
    bool first = !atomic_load_explicit(&r->started, memory_order_relaxed);
    if (first) {
        atomic_store_explicit(&r->first_frame_time, now, memory_order_relaxed);
    } else if (now != r->expect_time) {
        unsigned g = atomic_fetch_add_explicit(&r->gaps, 1, memory_order_relaxed);
        if (g < MAX_MARKS)
            r->gap_at[g] = atomic_load_explicit(&r->frames, memory_order_relaxed);
    }
    r->expect_time = now + nframes; /* unsigned: wraps like JACK's clock */

    size_t nc = atomic_load_explicit(&r->ncycles, memory_order_relaxed);
    if (nc < r->max_cycles) {
        jack_nframes_t cf;
        jack_time_t cu, nu;
        float period_usecs;
        if (jack_get_cycle_times(r->client, &cf, &cu, &nu, &period_usecs) != 0) {
            cf = now;
            cu = nu = 0;
        }
        r->cycles[nc] = (struct cycle){cf, cu, nu};
        atomic_store_explicit(&r->ncycles, nc + 1, memory_order_release);
    }

    size_t done = atomic_load_explicit(&r->frames, memory_order_relaxed);
    size_t n = r->cap_frames - done;
    if (n > nframes)
        n = nframes;

    const float *src[NCHAN];
    for (int c = 0; c < NCHAN; c++)
        src[c] = jack_port_get_buffer(r->in[c], nframes);
    float *dst = r->buf + done * NCHAN;
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < NCHAN; c++)
            *dst++ = src[c][i];
    atomic_store_explicit(&r->frames, done + n, memory_order_release);

    if (first) {
        atomic_store_explicit(&r->started, true, memory_order_release);
        sem_post(&r->first_cycle);
    }
    if (done + n == r->cap_frames) {
        atomic_store_explicit(&r->full, true, memory_order_release);
        pthread_kill(r->main_thread, SIGUSR1);
    }
    return 0;
}

static int xrun_cb(void *arg)
{
    struct recorder *r = arg;
    if (atomic_load(&r->armed) && !atomic_load(&r->full)) {
        /* The only writer: the index first, then the count that
         * publishes it to main (which may read while this thread runs). */
        unsigned x = atomic_load_explicit(&r->xruns, memory_order_relaxed);
        if (x < MAX_MARKS)
            r->xrun_at[x] = atomic_load_explicit(&r->frames, memory_order_acquire);
        atomic_store_explicit(&r->xruns, x + 1, memory_order_release);
    }
    return 0;
}

static void shutdown_cb(void *arg)
{
    struct recorder *r = arg;
    atomic_store(&r->server_gone, true);
    pthread_kill(r->main_thread, SIGUSR1);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: jack_record --name NAME --connect SRC_L "
               "--connect SRC_R --out FILE [--seconds S]\n");
}

static bool host_is_little_endian(void)
{
    const uint16_t probe = 1;
    unsigned char b;
    memcpy(&b, &probe, 1);
    return b == 1;
}

static int write_raw(const char *path, const float *buf, size_t nsamples)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "jack_record: %s: %s\n", path, strerror(errno));
        return -1;
    }
    bool ok = true;
    if (host_is_little_endian()) {
        ok = fwrite(buf, sizeof(float), nsamples, f) == nsamples;
    } else {
        unsigned char tmp[4096 * 4];
        size_t i = 0;
        while (ok && i < nsamples) {
            size_t k = 0;
            for (; k < 4096 && i < nsamples; k++, i++) {
                uint32_t u;
                memcpy(&u, &buf[i], 4);
                tmp[4 * k + 0] = (unsigned char)(u & 0xff);
                tmp[4 * k + 1] = (unsigned char)((u >> 8) & 0xff);
                tmp[4 * k + 2] = (unsigned char)((u >> 16) & 0xff);
                tmp[4 * k + 3] = (unsigned char)((u >> 24) & 0xff);
            }
            ok = fwrite(tmp, 4, k, f) == k;
        }
    }
    if (fclose(f) != 0)
        ok = false;
    if (!ok)
        fprintf(stderr, "jack_record: writing %s failed: %s\n", path, strerror(errno));
    return ok ? 0 : -1;
}

static void write_marks(FILE *f, const char *key, const size_t *at, unsigned count)
{
    fprintf(f, ", \"%s\": [", key);
    for (unsigned i = 0; i < count && i < MAX_MARKS; i++)
        fprintf(f, "%s%zu", i ? ", " : "", at[i]);
    fputs("]", f);
}

static int write_meta(const char *path, const struct recorder *r, jack_nframes_t rate,
                      const double off[2], const double raw_off[2])
{
    size_t len = strlen(path);
    char *meta = malloc(len + sizeof ".json");
    if (!meta) {
        fprintf(stderr, "jack_record: out of memory\n");
        return -1;
    }
    memcpy(meta, path, len);
    memcpy(meta + len, ".json", sizeof ".json");

    FILE *f = fopen(meta, "w");
    if (!f) {
        fprintf(stderr, "jack_record: %s: %s\n", meta, strerror(errno));
        free(meta);
        return -1;
    }
    char fft[16] = "null";
    if (atomic_load(&r->started))
        snprintf(fft, sizeof fft, "%lu", (unsigned long)atomic_load(&r->first_frame_time));
    /* One reading each, so a count and its marks agree. */
    unsigned gaps = atomic_load(&r->gaps);
    unsigned xruns = atomic_load_explicit(&r->xruns, memory_order_acquire);
    fprintf(f,
            "{\"rate\": %lu, \"frames\": %zu, \"channels\": %d, "
            "\"first_frame_time\": %s, \"gaps\": %u, \"xruns\": %u",
            (unsigned long)rate, atomic_load(&r->frames), NCHAN, fft, gaps, xruns);
    write_marks(f, "gap_at", r->gap_at, gaps);
    write_marks(f, "xrun_at", r->xrun_at, xruns);
    size_t nc = atomic_load_explicit(&r->ncycles, memory_order_acquire);
    fprintf(f, ", \"wall_minus_jack_us\": [%.3f, %.3f]", off[0], off[1]);
    fprintf(f, ", \"raw_minus_jack_us\": [%.3f, %.3f]", raw_off[0], raw_off[1]);
    if (nc > 0)
        fprintf(f, ", \"first_frame_wall_us\": %.3f", (double)r->cycles[0].usecs + off[0]);
    else
        fputs(", \"first_frame_wall_us\": null", f);
    fputs(", \"cycles\": [", f);
    for (size_t i = 0; i < nc; i++)
        fprintf(f, "%s[%lu, %llu, %llu]", i ? ", " : "", (unsigned long)r->cycles[i].frame,
                (unsigned long long)r->cycles[i].usecs,
                (unsigned long long)r->cycles[i].next_usecs);
    fputs("]}\n", f);
    int rc = 0;
    if (ferror(f) || fclose(f) != 0) {
        fprintf(stderr, "jack_record: writing %s failed\n", meta);
        rc = -1;
    }
    free(meta);
    return rc;
}

int main(int argc, char **argv)
{
    const char *name = NULL;
    const char *out = NULL;
    const char *sources[MAX_SOURCES];
    int nsources = 0;
    double seconds = 30.0;

    static const struct option opts[] = {
        {"name", required_argument, NULL, 'n'}, {"connect", required_argument, NULL, 'c'},
        {"out", required_argument, NULL, 'o'},  {"seconds", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},       {NULL, 0, NULL, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, "n:c:o:s:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'n':
            name = optarg;
            break;
        case 'c':
            if (nsources == MAX_SOURCES) {
                fprintf(stderr,
                        "jack_record: at most %d "
                        "--connect\n",
                        MAX_SOURCES);
                return 2;
            }
            sources[nsources++] = optarg;
            break;
        case 'o':
            out = optarg;
            break;
        case 's': {
            char *end;
            errno = 0;
            seconds = strtod(optarg, &end);
            if (errno || end == optarg || *end || !isfinite(seconds) || seconds <= 0 ||
                seconds > 3600) {
                fprintf(stderr,
                        "jack_record: bad --seconds "
                        "'%s'\n",
                        optarg);
                return 2;
            }
            break;
        }
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!name || !out || optind != argc) {
        usage(stderr);
        return 2;
    }

    /* Before any JACK thread exists, so they all inherit the mask. */
    sigset_t waitset;
    sigemptyset(&waitset);
    sigaddset(&waitset, SIGINT);
    sigaddset(&waitset, SIGTERM);
    sigaddset(&waitset, SIGUSR1);
    int err = pthread_sigmask(SIG_BLOCK, &waitset, NULL);
    if (err) {
        fprintf(stderr, "jack_record: pthread_sigmask: %s\n", strerror(err));
        return 1;
    }

    static struct recorder rec; /* static: zeroed, outlives all threads */
    struct recorder *r = &rec;
    r->main_thread = pthread_self();
    if (sem_init(&r->first_cycle, 0, 0) != 0) {
        perror("jack_record: sem_init");
        return 1;
    }

    int rc = 1;
    bool activated = false;
    jack_status_t status;
    r->client = jack_client_open(name, JackNoStartServer | JackUseExactName, &status);
    if (!r->client) {
        fprintf(stderr,
                "jack_record: jack_client_open('%s') failed, "
                "status 0x%x\n",
                name, (unsigned)status);
        return 1;
    }

    jack_nframes_t rate = jack_get_sample_rate(r->client);
    /* Round up without libm (the meson target links jack + threads only). */
    double want = seconds * (double)rate;
    if (want > (double)(SIZE_MAX / (NCHAN * sizeof(float))) - 1) {
        fprintf(stderr, "jack_record: recording too long\n");
        goto out;
    }
    r->cap_frames = (size_t)want;
    if ((double)r->cap_frames < want || r->cap_frames == 0)
        r->cap_frames++;
    size_t bytes = r->cap_frames * NCHAN * sizeof(float);
    r->buf = malloc(bytes);
    if (!r->buf) {
        fprintf(stderr, "jack_record: cannot allocate %zu bytes\n", bytes);
        goto out;
    }
    memset(r->buf, 0, bytes);   /* fault every page in now */
    (void)mlock(r->buf, bytes); /* best effort; needs RLIMIT_MEMLOCK */

    /* One entry per cycle; generous in case the period shrinks. */
    jack_nframes_t bufsize = jack_get_buffer_size(r->client);
    if (bufsize < 16)
        bufsize = 16;
    r->max_cycles = r->cap_frames / 16 + 2;
    if (r->max_cycles > r->cap_frames / bufsize * 4 + 64)
        r->max_cycles = r->cap_frames / bufsize * 4 + 64;
    r->cycles = calloc(r->max_cycles, sizeof *r->cycles);
    if (!r->cycles) {
        fprintf(stderr, "jack_record: cannot allocate the cycle log\n");
        goto out;
    }
    (void)mlock(r->cycles, r->max_cycles * sizeof *r->cycles);

    for (int c = 0; c < NCHAN; c++) {
        char pname[16];
        snprintf(pname, sizeof pname, "in_%d", c + 1);
        r->in[c] =
            jack_port_register(r->client, pname, JACK_DEFAULT_AUDIO_TYPE, JackPortIsInput, 0);
        if (!r->in[c]) {
            fprintf(stderr, "jack_record: cannot register %s\n", pname);
            goto out;
        }
    }
    if (jack_set_process_callback(r->client, process_cb, r) ||
        jack_set_xrun_callback(r->client, xrun_cb, r)) {
        fprintf(stderr, "jack_record: cannot set callbacks\n");
        goto out;
    }
    jack_on_shutdown(r->client, shutdown_cb, r);

    if (jack_activate(r->client)) {
        fprintf(stderr, "jack_record: cannot activate\n");
        goto out;
    }
    activated = true;

    for (int i = 0; i < nsources; i++) {
        const char *dst = jack_port_name(r->in[i]);
        err = jack_connect(r->client, sources[i], dst);
        if (err && err != EEXIST) {
            fprintf(stderr,
                    "jack_record: cannot connect %s -> "
                    "%s\n",
                    sources[i], dst);
            goto out;
        }
    }

    double clock_off[2], raw_off[2];
    clock_off[0] = wall_minus_jack_us(CLOCK_READINGS, NULL);
    raw_off[0] = clock_minus_jack_us(CLOCK_MONOTONIC_RAW, CLOCK_READINGS, NULL);
    atomic_store_explicit(&r->armed, true, memory_order_release);

    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += READY_TIMEOUT_S;
    while (sem_timedwait(&r->first_cycle, &deadline) != 0) {
        if (errno == EINTR)
            continue;
        fprintf(stderr, "jack_record: no process cycle within %d s\n", READY_TIMEOUT_S);
        goto out;
    }
    fputs("ready\n", stdout);
    fflush(stdout);

    int sig = 0;
    err = sigwait(&waitset, &sig);
    if (err) {
        fprintf(stderr, "jack_record: sigwait: %s\n", strerror(err));
        goto out;
    }
    if (atomic_load(&r->server_gone))
        fprintf(stderr, "jack_record: JACK server went away\n");
    clock_off[1] = wall_minus_jack_us(CLOCK_READINGS, NULL);
    raw_off[1] = clock_minus_jack_us(CLOCK_MONOTONIC_RAW, CLOCK_READINGS, NULL);

    if (!atomic_load(&r->server_gone) && jack_deactivate(r->client))
        fprintf(stderr, "jack_record: jack_deactivate failed\n");
    activated = false;

    size_t frames = atomic_load_explicit(&r->frames, memory_order_acquire);
    if (write_raw(out, r->buf, frames * NCHAN) == 0 &&
        write_meta(out, r, rate, clock_off, raw_off) == 0)
        rc = 0;

out:
    if (activated && !atomic_load(&r->server_gone))
        jack_deactivate(r->client);
    jack_client_close(r->client);
    free(r->buf);
    free(r->cycles);
    sem_destroy(&r->first_cycle);
    return rc;
}
