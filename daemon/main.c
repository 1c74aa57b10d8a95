/* main.c - start-up, signals, JACK reconnection and shutdown of looperd.
 *
 * The main thread owns the life cycle and nothing else: it parses options
 * (options.h), builds every fixed-size structure before the JACK client is activated,
 * starts the threads (reply, loader, OSC), loads the bank, tells systemd it
 * is ready, then waits for signals in run(): SIGHUP (reload the bank),
 * SIGUSR1 (raised by JACK's shutdown callback: the server went away; samples
 * and the OSC service stay, and we reconnect every 250 ms until it is back;
 * audio.h says why the lost client is closed on another thread).  The same
 * loop sends the systemd watchdog pings.  SIGINT/SIGTERM (and /quit) are
 * taken by the exit guard thread, which asks run() to return (clean exit 0)
 * and, should the shutdown not finish within SHUTDOWN_DEADLINE_S (a thread
 * stuck in libjack, a decode stuck in read()), ends the process itself with
 * status 0.  Shutdown runs in the reverse order of start-up so that no
 * thread ever sees freed state: the producers stop first, then the audio
 * thread, then the reply thread drains what is left.
 */
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jack/jack.h>

#include "audio.h"
#include "bank.h"
#include "dirt.h"
#include "engine.h"
#include "library.h"
#include "link_clock.h"
#include "loader.h"
#include "log.h"
#include "memlock.h"
#include "notify.h"
#include "options.h"
#include "osc.h"
#include "params.h"
#include "protocol.h"
#include "replies.h"
#include "reply.h"
#include "sample_alloc.h"

#define MAIN_SPARE_MAX ((size_t)64 << 20)
/* From SIGTERM to the process's end, whatever blocks. */
#define SHUTDOWN_DEADLINE_S 5

static void *osc_thread(void *arg)
{
    struct protocol *p = arg;
    osc_run(p->osc, protocol_handle, p);
    return NULL;
}

/* After the audio thread has stopped, whatever still sits in its input rings
 * was never applied: free it here. */
static void free_reply(void *replies, struct reply_ctx *reply)
{
    reply_ctx_free(replies, reply);
}

static void drain_inputs(struct engine *e, struct replies *p)
{
    engine_drain_inputs(e, free_reply, p);
}

/* Everything main() owns, so the helpers below can share it. */
struct daemon {
    struct options opt;
    struct audio audio;
    struct engine engine;
    struct osc_server osc;
    struct replies replies;
    struct protocol proto;
    struct loader loader;
    struct replier replier;
    struct bank bank;
    struct pads pads;
    struct library library;
    struct dirt dirt;
    struct link_clock link;
};

/* The second socket (--dirt-port): SuperDirt's port, where TidalCycles and
 * Strudel's bridge send without being told otherwise.  Asked for, a port
 * that cannot be bound stops the start-up as --port's would; the default
 * one that comes with --library is taken when free and otherwise only
 * reported: it is most likely SuperDirt's own (a live coder who starts
 * looperd beside a running SuperDirt gets a working looperd on --port, and
 * Tidal keeps playing SuperDirt).  Returns 0 or a negative errno. */
static int open_dirt_port(struct daemon *d)
{
    char err[256];
    if (!d->opt.dirt_port)
        return 0;
    int r = osc_add(&d->osc, d->opt.listen, d->opt.dirt_port, err, sizeof(err));
    if (r >= 0)
        return 0;
    if (d->opt.dirt_port_given) {
        log_error("--dirt-port: %s", err);
        return r;
    }
    log_warn("%s (SuperDirt's port: is SuperDirt running?); TidalCycles and Strudel reach "
             "looperd only on %s (--dirt-port N picks another port)",
             err, d->osc.sock[0].addr_text);
    return 0;
}

/* The reply thread's hook: an unload the audio thread applied empties the
 * slot on the control side too (loader.h, "Order of loads and unloads"),
 * and the slot's defaults go with it (params.h). */
static void unloaded(void *daemon, uint32_t id, uint64_t seq)
{
    struct daemon *d = daemon;
    loader_forget(&d->loader, id, seq);
    pads_unloaded(&d->pads, id, seq);
}

/* The defaults table's hook (params.h, struct pads): a slot's defaults as
 * the audio thread plays them from MIDI. */
static bool publish_pad(void *engine, uint32_t id, const struct params *p)
{
    struct pad_msg m = {.id = id, .play = p->play, .midi = p->midi};
    return engine_pad_send(engine, &m);
}

static uint64_t mono_usec(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u;
}

/* The loader has handed every buffer to the audio thread; wait (briefly)
 * until the audio thread has taken them and finished a period since, so
 * that "ready" means the bank's samples really are in their slots. */
static void wait_applied(struct engine *e)
{
    for (int i = 0; i < 400 && engine_loads_waiting(e) > 0; i++)
        nanosleep(&(struct timespec){.tv_nsec = 5000000}, NULL);
    uint64_t p0 = atomic_load(&e->stats.periods);
    for (int i = 0; i < 400 && atomic_load(&e->stats.periods) < p0 + 2; i++)
        nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
}

/* Waits for the loader to finish the bank (at most BANK_WAIT_S), keeping
 * the systemd watchdog fed while the audio thread runs (or JACK is gone,
 * as run() does), then for the audio thread to take the buffers. */
#define BANK_WAIT_S 300
static void wait_bank(struct daemon *d)
{
    uint64_t wd = notify_watchdog_usec();
    int step_ms = wd ? (int)(wd / 2000 < 500 ? wd / 2000 : 500) : 500;
    if (step_ms < 1)
        step_ms = 1;
    uint64_t start = mono_usec(), periods = atomic_load(&d->engine.stats.periods);
    while (!loader_wait_idle(&d->loader, step_ms)) {
        if (mono_usec() - start > (uint64_t)BANK_WAIT_S * 1000000u) {
            log_warn("the bank is still loading after %d minutes; going on", BANK_WAIT_S / 60);
            return;
        }
        uint64_t now = atomic_load(&d->engine.stats.periods);
        if (wd && (now != periods || atomic_load(&d->audio.gone)))
            notify_send("WATCHDOG=1");
        periods = now;
    }
    wait_applied(&d->engine);
}

/* Loads the slots of the bank file that changed since `d->bank`, empties
 * those that left it, and returns once they are loaded (wait_bank).  Every
 * slot in the bank gets exactly its line's gain and keys as its defaults,
 * loaded again or not (a /set since the last reading is undone); a slot
 * that left the bank loses its defaults with its sample.  At
 * start-up d->bank is empty, so all load.  Every entry goes to the loader
 * (one per slot: loader_submit_bank), whatever the size of the bank; an
 * entry that could not be handed over is not recorded as applied, so the
 * next SIGHUP tries it again.  A bank file that cannot be read is refused
 * (and the bank applied before stays): a negative errno. */
static int apply_bank(struct daemon *d)
{
    struct bank next = {0};
    int bad = bank_read(d->opt.bank, (uint32_t)d->opt.slots, d->proto.outputs, &next);
    if (bad < 0) {
        log_error("bank %s refused: %s%s", d->opt.bank, bank_strerror(bad),
                  d->bank.entries ? "; the bank loaded before stays" : "");
        return bad;
    }
    unsigned loads = 0, unloads = 0;
    for (uint32_t id = 0; id < next.nslots; id++) {
        struct bank_entry *n = &next.entries[id];
        bool had = d->bank.entries && d->bank.entries[id].path;
        uint64_t seq = atomic_fetch_add(&d->proto.load_seq, 1) + 1;
        if (n->path)
            pads_put(&d->pads, id, &n->params, seq);
        /* The gain is a default, not part of the load. */
        if (bank_changed(&d->bank, &next, id)) {
            if (loader_submit_bank(&d->loader, id, n->path, seq) == 0) {
                loads++;
            } else {
                log_error("bank: slot %u: out of memory; not loaded", id);
                free(n->path);
                n->path = NULL;
            }
        } else if (had && !n->path) {
            if (loader_submit_bank(&d->loader, id, NULL, seq) == 0) {
                pads_put(&d->pads, id, &(struct params){0}, seq);
                unloads++;
            } else {
                /* Still in the slot: keep it in the record, to empty it
                 * on the next reload. */
                log_error("bank: slot %u: out of memory; not emptied", id);
                n->path = d->bank.entries[id].path;
                n->params = d->bank.entries[id].params;
                n->mtime = d->bank.entries[id].mtime;
                d->bank.entries[id].path = NULL;
            }
        }
    }
    bank_free(&d->bank);
    d->bank = next;
    log_notice("bank %s: %u slot%s to load, %u to empty, %d bad line%s", d->opt.bank, loads,
               loads == 1 ? "" : "s", unloads, bad, bad == 1 ? "" : "s");
    wait_bank(d);
    return 0;
}

static void log_privileges(struct daemon *d, bool locked)
{
    int prio;
    bool rt = audio_realtime(&d->audio, &prio);
    char rtbuf[48];
    snprintf(rtbuf, sizeof(rtbuf), "real-time priority %d", prio);
    char lockbuf[96];
    snprintf(lockbuf, sizeof(lockbuf),
             "locked as touched (mlockall; %.1f MiB of audio-thread "
             "mappings locked up front)",
             (double)d->audio.locked_bytes / (1024.0 * 1024.0));
    log_notice("memory %s; audio thread %s",
               locked ? lockbuf : "NOT locked (mlockall refused: raise LimitMEMLOCK)",
               rt ? rtbuf : "NOT real-time (JACK runs without -R or lacks RTPRIO)");
}

/* The signal that asked for the shutdown (SIGINT, SIGTERM), 0 before. */
static _Atomic int quit_signal;
static pthread_t main_thread;

/* The exit guard: takes SIGINT/SIGTERM, wakes run() (SIGUSR2) to shut down
 * in order, and ends the process if that has not happened in
 * SHUTDOWN_DEADLINE_S.  Its last words go straight to stderr with write():
 * whatever is stuck may hold stdio's lock. */
static void *exit_guard(void *arg)
{
    const sigset_t *quit = arg;
    int sig = 0;
    while (sigwait(quit, &sig) != 0)
        ;
    atomic_store(&quit_signal, sig);
    pthread_kill(main_thread, SIGUSR2);
    struct timespec left = {.tv_sec = SHUTDOWN_DEADLINE_S};
    while (nanosleep(&left, &left) != 0)
        ;
    char line[160];
    int n = snprintf(line, sizeof(line), "%sshutdown did not finish within %d s; exiting now\n",
                     getenv("JOURNAL_STREAM") ? "<3>" : "looperd: error: ", SHUTDOWN_DEADLINE_S);
    if (n > 0)
        (void)!write(STDERR_FILENO, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
    _exit(0);
}

/* The output pairs to connect to the playback ports at start-up. */
static unsigned connect_pairs(const struct daemon *d)
{
    return !d->opt.connect ? 0 : d->opt.connect_all ? (unsigned)d->opt.outputs : 1;
}

/* JACK is back: the same engine, samples and voices carry on.  If the rate
 * changed, every slot is decoded and converted again for the new rate. */
static bool reconnect(struct daemon *d)
{
    char err[256];
    if (audio_open(&d->audio, d->opt.name, err, sizeof(err)) < 0)
        return false;
    uint32_t rate = audio_rate(&d->audio);
    bool rate_changed = rate != d->engine.rate;
    if (rate_changed) {
        /* The audio thread is stopped; the loader has a rate of its own
         * (loader_set_rate, below), and buffers at the old rate play until
         * their conversion replaces them. */
        log_warn("JACK now runs at %u Hz (was %u): converting every sample again", rate,
                 d->engine.rate);
        d->engine.rate = rate;
        d->engine.fade_frames = (uint32_t)(rate * ENGINE_FADE_SECONDS + 0.5);
    }
    /* Timed requests were meant for the old server's timeline; starting
     * them after the gap would fire a burst of stale triggers at once, so
     * they are dropped (and counted late).  The
     * audio thread is not running, so this thread may touch its heap. */
    uint32_t dropped = engine_drop_timed(&d->engine, free_reply, &d->replies);
    if (dropped)
        log_warn("dropped %u timed requests made for the old JACK server", dropped);
    /* Restore the connections we had; with none remembered (the server died
     * within a second of our start), connect as at start-up. */
    unsigned connect = audio_remembered_links(&d->audio) == 0 ? connect_pairs(d) : 0;
    if (audio_start(&d->audio, &d->engine, connect, err, sizeof(err)) < 0) {
        log_warn("JACK is back but %s", err);
        audio_close(&d->audio);
        return false;
    }
    unsigned missing = audio_restore_links(&d->audio);
    atomic_store(&d->audio.gone, false);
    if (rate_changed)
        loader_set_rate(&d->loader, rate);
    log_notice("JACK server is back: client '%s' at %u Hz, period %u%s",
               audio_client_name(&d->audio), rate, audio_period(&d->audio),
               missing ? "; some connections could not be restored yet" : "");
    notify_send("STATUS=Playing: JACK at %u Hz, period %u", rate, audio_period(&d->audio));
    return true;
}

/* The main thread's loop: signals, reconnecting to JACK, watchdog pings.
 * Returns the exit status. */
static int run(struct daemon *d, const sigset_t *sigs)
{
    uint64_t wd = notify_watchdog_usec();
    /* Wake often enough for the watchdog (half its interval) and to retry
     * JACK promptly, but not so often that an idle daemon burns CPU. */
    uint64_t tick = 250000;
    if (wd && wd / 2 < tick)
        tick = wd / 2;
    uint64_t last_periods = atomic_load(&d->engine.stats.periods);
    uint64_t next_wd = 0, next_links = 0, next_retry = 0;
    bool stuck = false;

    for (;;) {
        struct timespec ts = {.tv_sec = (time_t)(tick / 1000000u),
                              .tv_nsec = (long)(tick % 1000000u) * 1000};
        int sig = sigtimedwait(sigs, NULL, &ts);
        uint64_t now = mono_usec();
        log_tick();
        int quit = atomic_load(&quit_signal);
        if (quit) {
            log_notice("shutting down (%s)", strsignal(quit));
            notify_send("STOPPING=1");
            return 0;
        }
        if (sig == SIGHUP && d->opt.nlibrary) {
            log_notice("SIGHUP: rescanning the library");
            library_reload(&d->library, NULL);
        }
        if (sig == SIGHUP) {
            if (d->opt.bank) {
                notify_send("RELOADING=1");
                apply_bank(d);
                notify_send("READY=1");
            } else if (!d->opt.nlibrary) {
                log_notice("SIGHUP: no --bank to reload");
            }
        }
        bool gone = atomic_load(&d->audio.gone);
        if (sig == SIGUSR1 && !gone) {
            log_error("the JACK server went away; samples are kept, reconnecting");
            notify_send("STATUS=JACK server gone; reconnecting");
            audio_lost(&d->audio);
            gone = true;
        }
        /* The lost client is closed on its own thread; retry only once that
         * is done (audio.h). */
        if (gone && audio_poll_lost(&d->audio) && now >= next_retry) {
            next_retry = now + 250000;
            /* The old client's threads are gone; a shutdown signal one of
             * them raised late must not be taken for the new client's. */
            sigset_t lost;
            sigemptyset(&lost);
            sigaddset(&lost, SIGUSR1);
            while (sigtimedwait(&lost, NULL, &(struct timespec){0}) == SIGUSR1)
                ;
            gone = !reconnect(d);
        }
        if (!stuck && atomic_load(&d->audio.stuck)) {
            stuck = true;
            notify_send("STATUS=JACK client stuck in libjack; cannot reconnect, restart looperd");
        }
        pads_flush(&d->pads);
        if (!gone) {
            audio_tick(&d->audio);
            audio_midi_connect(&d->audio);
            if (now >= next_links) {
                next_links = now + 1000000;
                audio_remember_links(&d->audio);
            }
        }
        if (wd && now >= next_wd) {
            /* Ping only while the audio thread really runs (its period count
             * moves), or while we are knowingly waiting for JACK and can
             * still reconnect: a stuck audio thread, or a lost client libjack
             * cannot close, stops the pings and systemd restarts us. */
            uint64_t periods = atomic_load(&d->engine.stats.periods);
            if ((gone && !stuck) || periods != last_periods) {
                notify_send("WATCHDOG=1");
                next_wd = now + wd / 2;
            }
            last_periods = periods;
        }
    }
}

int main(int argc, char **argv)
{
    static struct daemon daemon;
    struct daemon *d = &daemon;
    pthread_t osc_tid;
    char err[256];
    int status = 1;
    bool osc_running = false;

    if (options_parse(argc, argv, &d->opt) < 0)
        return 2;
    log_init(d->opt.verbosity < 0 ? LOG_WARNING : d->opt.verbosity == 0 ? LOG_INFO : LOG_DEBUG);
    notify_init();

    /* Block the signals we wait for before any thread exists (libjack starts
     * threads in jack_client_open), so they all inherit the mask and only
     * the main loop ever takes them.  SIGPIPE is ignored outright. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);
    sigaddset(&sigs, SIGUSR1);
    sigaddset(&sigs, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* SIGINT/SIGTERM go to the exit guard, the rest to run(). */
    static sigset_t quit_sigs;
    sigemptyset(&quit_sigs);
    sigaddset(&quit_sigs, SIGINT);
    sigaddset(&quit_sigs, SIGTERM);
    sigdelset(&sigs, SIGINT);
    sigdelset(&sigs, SIGTERM);

    /* Locked memory is memory nobody else can have.  Under MCL_ONFAULT a
     * stack costs only the pages it touches, but on a kernel without it
     * (memlock_all's fallback) every thread's whole stack is resident, and
     * glibc's default (8 MiB, from RLIMIT_STACK) for each of libjack's
     * threads and ours would pin tens of MiB for nothing: 256 KiB is plenty
     * for all of them (the loader, which runs the decoders, asks for more
     * itself).  One malloc arena for the few threads that allocate: each
     * arena keeps its own free memory, which stays touched and locked. */
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) == 0) {
        if (pthread_attr_setstacksize(&attr, 256 * 1024) == 0)
            pthread_setattr_default_np(&attr);
        pthread_attr_destroy(&attr);
    }
    mallopt(M_ARENA_MAX, 1);

    main_thread = pthread_self();
    pthread_t guard_tid;
    if (pthread_create(&guard_tid, NULL, exit_guard, &quit_sigs) != 0) {
        log_error("cannot start the exit guard thread");
        return 1;
    }
    pthread_detach(guard_tid);

    /* Lock memory as it is touched, so neither the audio thread nor a
     * sample ever takes a page fault (memlock.h says why "as touched" and
     * how the audio thread's pages get touched first).  Refused without
     * CAP_IPC_LOCK or a large enough RLIMIT_MEMLOCK; we say so below and
     * carry on. */
    bool locked = memlock_all() == 0;

    notify_send("STATUS=Connecting to JACK");
    if (audio_open(&d->audio, d->opt.name, err, sizeof(err)) < 0) {
        log_error("%s", err);
        return 1;
    }
    uint32_t rate = audio_rate(&d->audio);
    _Static_assert(OPTIONS_MAX_MIDI_CONNECT <= AUDIO_MAX_MIDI_CONNECT, "--midi-connect fits");
    for (unsigned i = 0; i < d->opt.nmidi_connect; i++)
        d->audio.midi_connect[i] = d->opt.midi_connect[i];
    d->audio.nmidi_connect = d->opt.nmidi_connect;
    uint32_t library_slots = d->opt.nlibrary ? (uint32_t)d->opt.library_max : 0;
    if (engine_init(&d->engine, (uint32_t)d->opt.slots + library_slots, (uint32_t)d->opt.voices,
                    (uint32_t)d->opt.outputs, rate) < 0) {
        log_error("out of memory");
        goto out_audio;
    }
    if (osc_open(&d->osc, d->opt.listen, d->opt.port, err, sizeof(err)) < 0) {
        log_error("%s", err);
        goto out_engine;
    }
    if (open_dirt_port(d) < 0) {
        osc_close(&d->osc);
        goto out_engine;
    }
    /* Ableton Link: the peer is made (and multicasts) only once enabled,
     * by --link here or /link 1 later. */
    link_clock_init(&d->link, d->opt.tempo, d->opt.link_start_stop);
    d->audio.link = &d->link;
    if (d->opt.link) {
        int lr = link_clock_enable(&d->link, true);
        if (lr < 0) {
            log_error("--link: cannot start Ableton Link: %s", strerror(-lr));
            goto out_osc;
        }
        log_notice("Ableton Link enabled%s",
                   d->opt.link_start_stop ? ", following start/stop" : "");
    }
    memcpy(d->osc.allow, d->opt.allow, sizeof(d->opt.allow));
    d->osc.nallow = d->opt.nallow;
    /* Events come only from requests that carry a reply_ctx (the engine
     * emits none for the loader's internal unloads): keep them within the
     * event ring. */
    replies_init(&d->replies, &d->osc, ENGINE_EVENT_RING);
    if (pads_init(&d->pads, d->engine.nslots) < 0) {
        log_error("out of memory");
        goto out_osc;
    }
    pads_set_publish(&d->pads, publish_pad, &d->engine);
    protocol_init(&d->proto, &d->engine, &d->osc, &d->replies, &d->loader, &d->audio, &d->pads);
    d->proto.latency = d->opt.latency_ms / 1000.0;
    d->proto.outputs = (uint32_t)d->opt.outputs;
    d->proto.numbered = (uint32_t)d->opt.slots;
    d->proto.quant = d->opt.quant;
    engine_set_timeline(&d->engine, d->opt.tempo, d->opt.quantum);
    engine_set_midi_slots(&d->engine, (uint32_t)d->opt.slots);
    d->proto.link = &d->link;
    struct loader_limits limits = {
        .max_sample_bytes = d->opt.max_sample_mb * 1024 * 1024,
        .max_memory_bytes = d->opt.max_memory_mb * 1024 * 1024,
        .sample_dir = d->opt.sample_dir,
    };
    /* Freed sample mappings kept for reloads (sample.c): a quarter of the
     * memory limit, at most 64 MiB (two 60 s stereo samples at 48 kHz). */
    sample_spares_limit(limits.max_memory_bytes / 4 < MAIN_SPARE_MAX ? limits.max_memory_bytes / 4
                                                                     : MAIN_SPARE_MAX);
    if (replier_start(&d->replier, &d->engine, &d->replies, unloaded, d) < 0) {
        log_error("cannot start the reply thread");
        goto out_threads;
    }
    if (loader_start(&d->loader, &d->engine, &d->replies, &limits, err, sizeof(err)) < 0) {
        log_error("%s", err);
        goto out_threads;
    }
    if (audio_start(&d->audio, &d->engine, connect_pairs(d), err, sizeof(err)) < 0) {
        log_error("%s", err);
        goto out_threads;
    }
    log_privileges(d, locked);
    if (d->opt.bank) {
        notify_send("STATUS=Loading the bank %s", d->opt.bank);
        if (apply_bank(d) < 0)
            goto out_threads;
    }
    /* After the bank: "ready" does not wait for the library, which loads
     * in the background (library.h). */
    if (d->opt.nlibrary) {
        int lr = library_start(&d->library, &d->loader, &d->engine, &d->replies, &d->proto.load_seq,
                               d->opt.library, d->opt.nlibrary, (uint32_t)d->opt.slots,
                               library_slots, limits.max_memory_bytes);
        if (lr < 0) {
            log_error("cannot start the library: %s", strerror(-lr));
            goto out_threads;
        }
        d->proto.library = &d->library;
    }
    dirt_init(&d->dirt, d->opt.nlibrary ? &d->library : NULL, (uint32_t)d->opt.outputs);
    d->proto.dirt = &d->dirt;
    if (pthread_create(&osc_tid, NULL, osc_thread, &d->proto) != 0) {
        log_error("cannot start the OSC thread");
        goto out_threads;
    }
    pthread_setname_np(osc_tid, "looperd-osc");
    osc_running = true;
    char where[192];
    if (d->osc.nsock > 1)
        snprintf(where, sizeof(where), "%.63s and %.63s (for TidalCycles and Strudel)",
                 d->osc.sock[0].addr_text, d->osc.sock[1].addr_text);
    else
        snprintf(where, sizeof(where), "%.63s", d->osc.sock[0].addr_text);
    log_notice("ready: JACK client '%s' at %u Hz, period %u; OSC on udp %s",
               audio_client_name(&d->audio), rate, audio_period(&d->audio), where);
    notify_send("READY=1\nSTATUS=Playing: JACK at %u Hz, period %u; OSC on udp %s", rate,
                audio_period(&d->audio), where);

    status = run(d, &sigs);

out_threads:
    if (osc_running) {
        osc_stop(&d->osc);
        pthread_join(osc_tid, NULL);
    }
    library_stop(&d->library);
    loader_stop(&d->loader);
    audio_close(&d->audio);
    replier_stop(&d->replier);
    if (d->replier.engine)
        replier_drain(&d->replier);
    drain_inputs(&d->engine, &d->replies);
    bank_free(&d->bank);
    pads_destroy(&d->pads);
out_osc:
    osc_close(&d->osc);
    link_clock_destroy(&d->link);
out_engine:
    engine_destroy(&d->engine);
    sample_spares_limit(0);
out_audio:
    audio_close(&d->audio);
    return status;
}
