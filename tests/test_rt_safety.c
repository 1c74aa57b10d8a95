/* test_rt_safety.c - proves that the JACK process callback never allocates,
 * frees, locks, does file I/O or prints.
 *
 * This executable defines malloc, calloc, realloc, free, pthread_mutex_lock,
 * open, read, write, printf (and the stdio calls printf may be compiled
 * into).  Being in the executable, these definitions interpose every call in
 * the process, including calls made from inside libjack.  Each one checks a
 * thread-local flag that is set only while the daemon's real process
 * callback runs on JACK's real-time thread; a call while the flag is set is
 * counted as a violation, then forwarded so nothing else breaks.
 *
 * The daemon's process callback is private to audio.c.  The client is set up
 * as main does it, with audio_open() and audio_start(); audio.c installs its
 * callback through jack_set_process_callback(), which this executable
 * interposes too: it keeps audio.c's callback and registers a wrapper that
 * sets the flag around it.  The test checks that the wrapper ran on the
 * client's process thread (jack_client_thread_id()) and only there.
 *
 * The test runs against a real JACK server (started by with_jackd.py) for
 * a few hundred periods while it drives every kind of message through the
 * rings: loads (of float and 16-bit buffers), plays beyond the voice count
 * (stealing), reloads of playing slots (buffer release), pings and stops,
 * and MIDI into midi_in from a second client of its own (notes of every
 * slot's kind: one-shot, gate, toggled loop, another channel; running
 * status, CC 120 and 123, SysEx, realtime and garbage bytes).  It
 * first checks that the interposer itself catches calls (a test that cannot
 * fail proves nothing).
 *
 * With --link (a build with Ableton Link) the same runs with Link enabled,
 * so that every period also builds its beat span from Link's audio session
 * state (audio.c, link_clock.c), while a second Link peer in this process
 * changes the session's tempo and start/stop state from the main thread.
 * Link multicasts on every interface: meson runs this only inside a network
 * namespace of its own (unshare -n, lo up), never in the machine's.  The
 * test checks that a peer was seen and that the spans were built.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <jack/jack.h>
#include <jack/midiport.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "audio.h"
#include "engine.h"
#include "link_clock.h"
#include "sample_alloc.h"
#ifdef LOOPERD_HAVE_LINK
#include "link.h"
#endif

static _Thread_local int in_rt;
static atomic_int violations;
static _Atomic(const char *) first_violation;

static void violation(const char *what)
{
    if (!in_rt)
        return;
    in_rt = 0; /* no recursion while we record it */
    const char *none = NULL;
    atomic_compare_exchange_strong(&first_violation, &none, what);
    atomic_fetch_add(&violations, 1);
    in_rt = 1;
}

/* glibc's own allocator entry points: forwarding to them needs no dlsym,
 * which itself may allocate. */
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);

void *malloc(size_t n)
{
    violation("malloc");
    return __libc_malloc(n);
}
void *calloc(size_t a, size_t b)
{
    violation("calloc");
    return __libc_calloc(a, b);
}
void *realloc(void *p, size_t n)
{
    violation("realloc");
    return __libc_realloc(p, n);
}
void free(void *p)
{
    violation("free");
    __libc_free(p);
}

static int (*real_mutex_lock)(pthread_mutex_t *);
static int (*real_open)(const char *, int, ...);
static ssize_t (*real_read)(int, void *, size_t);
static ssize_t (*real_write)(int, const void *, size_t);
static int (*real_vprintf)(const char *, va_list);
static int (*real_vfprintf)(FILE *, const char *, va_list);
static int (*real_puts)(const char *);
static int (*real_fputs)(const char *, FILE *);
static size_t (*real_fwrite)(const void *, size_t, size_t, FILE *);

/* POSIX's way to store dlsym's object pointer into a function pointer
 * without a cast ISO C forbids. */
#define RESOLVE(var, name) (*(void **)&(var) = dlsym(RTLD_NEXT, name))

__attribute__((constructor)) static void resolve(void)
{
    RESOLVE(real_mutex_lock, "pthread_mutex_lock");
    RESOLVE(real_open, "open");
    RESOLVE(real_read, "read");
    RESOLVE(real_write, "write");
    RESOLVE(real_vprintf, "vprintf");
    RESOLVE(real_vfprintf, "vfprintf");
    RESOLVE(real_puts, "puts");
    RESOLVE(real_fputs, "fputs");
    RESOLVE(real_fwrite, "fwrite");
}

int pthread_mutex_lock(pthread_mutex_t *m)
{
    violation("pthread_mutex_lock");
    return real_mutex_lock(m);
}
int open(const char *path, int flags, ...)
{
    violation("open");
    va_list ap;
    va_start(ap, flags);
    int mode = (flags & (O_CREAT | O_TMPFILE)) ? va_arg(ap, int) : 0;
    va_end(ap);
    return real_open(path, flags, mode);
}
ssize_t read(int fd, void *buf, size_t n)
{
    violation("read");
    return real_read(fd, buf, n);
}
ssize_t write(int fd, const void *buf, size_t n)
{
    violation("write");
    return real_write(fd, buf, n);
}
int printf(const char *fmt, ...)
{
    violation("printf");
    va_list ap;
    va_start(ap, fmt);
    int r = real_vprintf(fmt, ap);
    va_end(ap);
    return r;
}
int fprintf(FILE *f, const char *fmt, ...)
{
    violation("fprintf");
    va_list ap;
    va_start(ap, fmt);
    int r = real_vfprintf(f, fmt, ap);
    va_end(ap);
    return r;
}
int puts(const char *s)
{
    violation("puts");
    return real_puts(s);
}
int fputs(const char *s, FILE *f)
{
    violation("fputs");
    return real_fputs(s, f);
}
size_t fwrite(const void *p, size_t a, size_t b, FILE *f)
{
    violation("fwrite");
    return real_fwrite(p, a, b, f);
}

/* ---- the daemon's process callback, wrapped ---------------------------- */

static JackProcessCallback daemon_process; /* what audio.c installed */
static void *daemon_process_arg;
static int registrations;
static atomic_int callbacks;
/* The thread of the first callback; later callbacks on any other thread. */
static pthread_t callback_thread;
static atomic_bool callback_thread_seen;
static atomic_int callbacks_elsewhere;

static int checked_process(jack_nframes_t n, void *arg)
{
    (void)arg;
    if (!atomic_load_explicit(&callback_thread_seen, memory_order_acquire)) {
        callback_thread = pthread_self();
        atomic_store_explicit(&callback_thread_seen, true, memory_order_release);
    } else if (!pthread_equal(callback_thread, pthread_self())) {
        atomic_fetch_add(&callbacks_elsewhere, 1);
    }
    in_rt = 1;
    int r = daemon_process(n, daemon_process_arg);
    in_rt = 0;
    atomic_fetch_add(&callbacks, 1);
    return r;
}

int jack_set_process_callback(jack_client_t *client, JackProcessCallback cb, void *arg)
{
    static int (*real)(jack_client_t *, JackProcessCallback, void *);
    if (!real)
        RESOLVE(real, "jack_set_process_callback");
    registrations++;
    daemon_process = cb;
    daemon_process_arg = arg;
    return real(client, checked_process, NULL);
}

/* ---- the MIDI sender ----------------------------------------------------
 * A second client whose process callback writes MIDI into the daemon's
 * midi_in each period.  Its callback is registered past the interposer
 * (RTLD_NEXT), so it is neither counted nor checked: only the daemon's is. */

static jack_port_t *midi_out;
static atomic_uint midi_periods;

static int midi_process(jack_nframes_t n, void *arg)
{
    (void)arg;
    void *buf = jack_port_get_buffer(midi_out, n);
    jack_midi_clear_buffer(buf);
    unsigned r = atomic_fetch_add(&midi_periods, 1);
    uint8_t note = (uint8_t)(36 + r % 4);
    const uint8_t on[] = {0x90, note, (uint8_t)(1 + r % 127)},
                  run[] = {(uint8_t)(36 + (r + 1) % 4), 90};
    const uint8_t off[] = {0x80, note, 0}, ch2[] = {0x91, 39, 100}, rt[] = {0xf8};
    const uint8_t sysex[] = {0xf0, 0x7e, 36, 100}, sysex_end[] = {37, 0xf7, 38, 100};
    const uint8_t cc120[] = {0xb0, 120, 0}, cc123[] = {0xb1, 123, 0}, cc7[] = {0xb0, 7, 100};
    const uint8_t split[] = {0x90}, garbage[] = {0xf2, 1};
    struct {
        const uint8_t *b;
        size_t n;
    } ev[] = {{on, 3},
              {run, 2},
              {rt, 1},
              {ch2, 3},
              {sysex, 4},
              {sysex_end, 4},
              {off, 3},
              {cc7, 3},
              {split, 1},
              {garbage, 2},
              {r % 7 ? on : cc120, 3},
              {r % 11 ? off : cc123, 3}};
    size_t nev = sizeof(ev) / sizeof(ev[0]);
    for (size_t k = 0; k < nev; k++)
        jack_midi_event_write(buf, (jack_nframes_t)(k * (n - 1) / nev), ev[k].b, ev[k].n);
    return 0;
}

static jack_client_t *midi_sender(const struct audio *a)
{
    int (*real)(jack_client_t *, JackProcessCallback, void *);
    *(void **)&real = dlsym(RTLD_NEXT, "jack_set_process_callback");
    jack_client_t *c = jack_client_open("rt_safety_midi", JackNoStartServer, NULL);
    if (!c || !real)
        return NULL;
    midi_out = jack_port_register(c, "out", JACK_DEFAULT_MIDI_TYPE, JackPortIsOutput, 0);
    if (!midi_out || real(c, midi_process, NULL) != 0 || jack_activate(c) != 0 ||
        jack_connect(c, jack_port_name(midi_out), jack_port_name(a->midi_in)) != 0) {
        jack_client_close(c);
        return NULL;
    }
    return c;
}

/* Slot defaults of every MIDI kind, through the pad door. */
static void midi_pads(struct engine *e)
{
    struct pad_msg m[] = {
        {.id = 1,
         .midi = {.keys = MIDI_KEY_NOTEOFF, .noteoff = MIDI_OFF_RELEASE},
         .play = {.keys = PLAY_RELEASE, .release = 0.002f}},
        {.id = 2,
         .midi = {.keys = MIDI_KEY_NOTEOFF | MIDI_KEY_MODE | MIDI_KEY_VELCURVE,
                  .noteoff = MIDI_OFF_TOGGLE,
                  .mode = MIDI_MODE_LOOP,
                  .velcurve = 2}},
        {.id = 3, .midi = {.keys = MIDI_KEY_CHANNEL | MIDI_KEY_NOTE, .channel = 2, .note = 39}},
        {.id = 0, .midi = {.keys = MIDI_KEY_NOTE, .note = 37}}, /* shares slot 1's note */
    };
    for (size_t k = 0; k < sizeof(m) / sizeof(m[0]); k++)
        while (!engine_pad_send(e, &m[k]))
            nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
}

/* ---- the test ---------------------------------------------------------- */

static int failures;
#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            failures++;                                                                            \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                        \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
        }                                                                                          \
    } while (0)

/* The interposer must catch what it claims to: run each forbidden call with
 * the flag set on this thread and count. */
static void self_check(void)
{
    in_rt = 1;
    void *volatile p = malloc(16); /* volatile: GCC may drop an unused pair */
    free(p);
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&m);
    pthread_mutex_unlock(&m);
    ssize_t w = write(-1, "", 0);
    (void)w;
    printf("%s", getenv("PATH") ? "" : " "); /* not foldable to nothing */
    in_rt = 0;
    CHECK(atomic_load(&violations) == 5, "interposer saw %d of 5 calls", atomic_load(&violations));
    atomic_store(&violations, 0);
    atomic_store(&first_violation, NULL);
}

/* A buffer in either storage format (sample.h), so both mixers run. */
static struct sample_buffer *make_buf(struct engine *e, uint32_t frames, uint32_t channels,
                                      uint32_t format)
{
    if (!engine_buffer_reserve(e))
        return NULL;
    struct sample_buffer *b = sample_buffer_new_format(frames, channels, e->rate, format);
    if (!b)
        return NULL;
    for (uint32_t i = 0; i < frames; i++)
        for (uint32_t c = 0; c < channels; c++) {
            int x = 8192 * ((int)(i % 100) - 50) / 50;
            if (format == SAMPLE_S16)
                sample_buffer_s16(b)[(size_t)i * channels + c] = (int16_t)x;
            else
                sample_buffer_channel(b, c)[i] = (float)x / 32768.0f;
        }
    sample_buffer_prefault(b);
    return b;
}

static uint64_t pongs, loaded, freed;

static void drain(struct engine *e)
{
    struct event ev;
    struct sample_buffer *b;
    while (engine_take_event(e, &ev))
        pongs += ev.type == EV_PONG;
    while ((b = engine_take_trash(e)) != NULL) {
        sample_buffer_free(b);
        engine_buffer_unreserve(e);
        freed++;
    }
}

/* Sends as the OSC thread does; waits while the command ring is full.
 * False when the schedule is full (the request is not sent). */
static bool send_cmd(struct engine *e, struct ctl_msg m)
{
    int r;
    while ((r = engine_send(e, &m, 0)) == -EAGAIN)
        nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
    return r == 0;
}

static void publish(struct engine *e, struct ctl_msg m)
{
    while (!engine_publish(e, &m))
        nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
}

int main(int argc, char **argv)
{
    static struct audio audio;
    struct engine e;
    char err[256];
    bool with_link = argc > 1 && strcmp(argv[1], "--link") == 0;
    static struct link_clock lc;
    unsigned link_peers_seen = 0;
#ifdef LOOPERD_HAVE_LINK
    struct link_peer *other = NULL;
#endif

    self_check();

    if (with_link) {
#ifdef LOOPERD_HAVE_LINK
        link_clock_init(&lc, 120.0, true);
        if (link_clock_enable(&lc, true) < 0 || link_create(100.0, &other) < 0 ||
            link_enable(other, true) < 0 || link_set_start_stop_sync(other, true) < 0) {
            fprintf(stderr, "FAIL: cannot start the Link peers\n");
            return 1;
        }
        for (int i = 0; i < 500 && link_clock_peers(&lc) < 1; i++)
            nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
        link_peers_seen = link_clock_peers(&lc);
        audio.link = &lc;
#else
        fprintf(stderr, "FAIL: --link, but this build has no Ableton Link\n");
        return 1;
#endif
    }

    if (audio_open(&audio, "rt_safety_test", err, sizeof(err)) < 0) {
        fprintf(stderr, "FAIL: %s\n", err);
        return 1;
    }
    if (engine_init(&e, ENGINE_DEFAULT_SLOTS, 8, 2, audio_rate(&audio)) < 0) {
        fprintf(stderr, "FAIL: engine_init\n");
        return 1;
    }
    if (audio_start(&audio, &e, 0, err, sizeof(err)) < 0) {
        fprintf(stderr, "FAIL: audio_start: %s\n", err);
        return 1;
    }
    if (registrations != 1 || !daemon_process || daemon_process_arg != &audio) {
        fprintf(stderr, "FAIL: audio_start did not install one process callback for its client\n");
        return 1;
    }
    pthread_t process_thread = jack_client_thread_id(audio.client);
    midi_pads(&e);
    jack_client_t *sender = midi_sender(&audio);
    if (!sender) {
        fprintf(stderr, "FAIL: cannot start the MIDI sender\n");
        return 1;
    }

    uint64_t seq = 0;
    uint32_t period = audio_period(&audio);
    /* Samples a few periods long so voices end, start and overlap often;
     * mono and stereo, float and 16-bit. */
    for (int round = 0; round < 200; round++) {
        uint32_t id = (uint32_t)round % 4;
        if (round % 5 == 0) {
            loaded++;
            publish(&e,
                    (struct ctl_msg){.type = CTL_LOAD,
                                     .id = id,
                                     .seq = ++seq,
                                     .velocity = 1,
                                     .buf = make_buf(&e, period * 3 + 17, 1 + round % 2,
                                                     (round / 10) % 2 ? SAMPLE_S16 : SAMPLE_F32)});
        }
        /* More than the 8 voices: stealing; on both output pairs, in cut
         * groups of any slot and of one slot, with releases for /stop. */
        for (int k = 0; k < 12; k++)
            send_cmd(&e, (struct ctl_msg){.type = CTL_PLAY,
                                          .id = (id + k) % 4,
                                          .velocity = 0.5f,
                                          .play = {.keys = PLAY_OUT | PLAY_CUT | PLAY_RELEASE,
                                                   .out = (uint32_t)k % 2,
                                                   .cut = k % 3 == 0   ? 0
                                                          : k % 3 == 1 ? 7
                                                                       : -7,
                                                   .release = 0.001f * (float)(k % 4)}});
        send_cmd(&e, (struct ctl_msg){.type = CTL_PING});
        /* Loops, timed triggers and timed fades (the schedule heap and the
         * per-period time-to-frame conversion), slot stops and unloads. */
        send_cmd(&e, (struct ctl_msg){.type = CTL_LOOP, .id = (id + 1) % 4, .velocity = 0.25f});
        send_cmd(&e, (struct ctl_msg){.type = CTL_PLAY,
                                      .id = id,
                                      .velocity = 0.5f,
                                      .flags = CTL_TIMED,
                                      .when = jack_get_time() + 1000u * (round % 13)});
        send_cmd(&e, (struct ctl_msg){.type = CTL_STOP_SLOT,
                                      .id = (id + 2) % 4,
                                      .flags = CTL_TIMED,
                                      .when = jack_get_time() + 700u * (round % 7)});
        if (round % 17 == 0)
            send_cmd(&e, (struct ctl_msg){.type = CTL_STOP});
        if (round % 23 == 11)
            send_cmd(&e, (struct ctl_msg){.type = CTL_UNLOAD, .id = 3, .seq = ++seq});
#ifdef LOOPERD_HAVE_LINK
        /* The session changes under the audio thread's captures. */
        if (other && round % 10 == 0) {
            link_app_set_tempo(other, 90.0 + round % 40, link_clock_micros());
            link_app_set_playing(other, round % 20 == 0, link_clock_micros());
        }
#endif
        nanosleep(&(struct timespec){.tv_nsec = 6 * 1000 * 1000}, NULL);
        drain(&e);
    }
    /* Let the last messages through, and the last timed requests fall due:
     * after a stall JACK's clock runs behind the wall clock for a while, so
     * one 12 ms ahead may take many periods. */
    for (int i = 0; i < 100 && (pongs < 200 || engine_sched_pending(&e) != 0); i++) {
        nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
        drain(&e);
    }
    bool on_process_thread = atomic_load_explicit(&callback_thread_seen, memory_order_acquire) &&
                             pthread_equal(callback_thread, process_thread);
    jack_deactivate(sender);
    jack_client_close(sender);
    audio_close(&audio);
    drain(&e);

    int n = atomic_load(&callbacks);
    const char *what = atomic_load(&first_violation);
    printf("callbacks %d, pongs %lu, loads %lu, buffers released %lu, violations %d%s%s\n", n,
           (unsigned long)pongs, (unsigned long)loaded, (unsigned long)freed,
           atomic_load(&violations), what ? ", first: " : "", what ? what : "");
    CHECK(n >= 100, "only %d process callbacks ran", n);
    CHECK(on_process_thread, "the callback did not run on the client's process thread");
    CHECK(atomic_load(&callbacks_elsewhere) == 0, "%d callbacks on another thread",
          atomic_load(&callbacks_elsewhere));
    CHECK(pongs == 200, "pongs %lu", (unsigned long)pongs);
    CHECK(engine_loads_waiting(&e) == 0, "%u of %lu loads never taken", engine_loads_waiting(&e),
          (unsigned long)loaded);
    CHECK(engine_sched_pending(&e) == 0, "timed requests never applied");
    CHECK(freed >= 30, "released %lu: the release path was not exercised", (unsigned long)freed);
    CHECK(atomic_load(&violations) == 0, "%d forbidden calls in the process callback, first: %s",
          atomic_load(&violations), what ? what : "?");
    CHECK(atomic_load(&e.stats.lost_events) == 0, "lost events");
    if (with_link) {
        uint64_t spans = atomic_load(&lc.spans);
        printf("link: peers seen %u, periods with a span from Link %lu\n", link_peers_seen,
               (unsigned long)spans);
        CHECK(link_peers_seen >= 1, "the Link peers did not find each other");
        CHECK(spans >= 100, "only %lu periods built their span from Link", (unsigned long)spans);
#ifdef LOOPERD_HAVE_LINK
        link_destroy(other);
#endif
        link_clock_destroy(&lc);
    }
    unsigned mp = atomic_load(&midi_periods);
    uint64_t ignored = atomic_load(&e.stats.midi_ignored);
    printf("MIDI: %u periods sent, %lu ignored\n", mp, (unsigned long)ignored);
    CHECK(mp >= 100, "the MIDI sender ran only %u periods", mp);
    CHECK(ignored >= 5ull * mp / 2, "MIDI ignored %lu for %u periods: not parsed?",
          (unsigned long)ignored, mp);
    engine_destroy(&e);
    printf("%s\n", failures ? "FAILED" : "OK");
    return failures ? 1 : 0;
}
