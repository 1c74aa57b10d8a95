/* main.c - start-up, signals and shutdown of looperd.
 *
 * The main thread owns the life cycle and nothing else: it parses options,
 * builds every fixed-size structure before the JACK client is activated,
 * starts the threads (reply, loader, OSC), then sleeps in sigwait() until
 * SIGINT/SIGTERM (clean exit 0) or SIGUSR1 (the JACK server went away:
 * exit 1 so a supervisor restarts us).  Shutdown runs in the reverse order
 * so that no thread ever sees freed state: the producers stop first, then
 * the audio thread, then the reply thread drains what is left.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audio.h"
#include "engine.h"
#include "loader.h"
#include "log.h"
#include "osc.h"
#include "protocol.h"
#include "reply.h"

#ifndef LOOPERD_VERSION
#define LOOPERD_VERSION "unknown"
#endif

/* A 10-minute stereo file at 96 kHz in float is 440 MiB. */
#define DEFAULT_MAX_SAMPLE_MB 512
#define DEFAULT_MAX_MEMORY_MB 4096

struct options {
    const char *name;
    const char *port;
    const char *listen;
    const char *sample_dir;
    bool connect;
    unsigned long max_sample_mb;
    unsigned long max_memory_mb;
    unsigned long slots;
    unsigned long voices;
    unsigned long latency_ms;
    struct osc_allow allow[OSC_MAX_ALLOW];
    unsigned nallow;
    int verbosity;
};

/* A whole number in [lo, hi], or -EINVAL with a message naming the option. */
static int parse_ulong(const char *opt, const char *text, unsigned long lo, unsigned long hi,
                       unsigned long *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(text, &end, 10);
    if (!*text || *end || errno || v < lo || v > hi || *text == '-') {
        fprintf(stderr, "looperd: %s wants a whole number from %lu to %lu, not '%s'\n", opt, lo,
                hi, text);
        return -EINVAL;
    }
    *out = v;
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: looperd [OPTIONS]\n"
            "Plays audio samples on cue: a JACK client controlled over OSC/UDP.\n\n"
            "  -n, --name NAME          JACK client name (default looperd)\n"
            "  -p, --port N             UDP port for OSC (default 9000)\n"
            "  -l, --listen ADDR        address to listen on, IPv4 or IPv6 (default 127.0.0.1)\n"
            "      --allow CIDR         serve only these sources (repeatable; default: all)\n"
            "      --no-connect         do not connect the outputs to the playback ports\n"
            "      --slots N            sample slots, ids 0..N-1 (default %d, at most %d)\n"
            "      --voices N           polyphony (default %d, at most %d)\n"
            "      --latency MS         start plain messages MS after arrival (steady latency;\n"
            "                           default 0: at the next period)\n"
            "      --sample-dir DIR     load only files below DIR; relative paths start there\n"
            "      --max-sample-mb N    largest decoded sample accepted (default %d)\n"
            "      --max-memory-mb N    all samples together (default %d)\n"
            "  -v, --verbose            more log lines (repeat for debug)\n"
            "  -q, --quiet              warnings and errors only\n"
            "  -h, --help               this text\n"
            "  -V, --version            print the version\n",
            ENGINE_DEFAULT_SLOTS, ENGINE_MAX_SLOTS, ENGINE_DEFAULT_VOICES, ENGINE_MAX_VOICES,
            DEFAULT_MAX_SAMPLE_MB, DEFAULT_MAX_MEMORY_MB);
}

static int parse_options(int argc, char **argv, struct options *o)
{
    enum {
        OPT_NO_CONNECT = 256,
        OPT_MAX_SAMPLE_MB,
        OPT_MAX_MEMORY_MB,
        OPT_SAMPLE_DIR,
        OPT_ALLOW,
        OPT_SLOTS,
        OPT_VOICES,
        OPT_LATENCY,
    };
    static const struct option longopts[] = {
        {"name", required_argument, NULL, 'n'},
        {"port", required_argument, NULL, 'p'},
        {"listen", required_argument, NULL, 'l'},
        {"no-connect", no_argument, NULL, OPT_NO_CONNECT},
        {"max-sample-mb", required_argument, NULL, OPT_MAX_SAMPLE_MB},
        {"max-memory-mb", required_argument, NULL, OPT_MAX_MEMORY_MB},
        {"sample-dir", required_argument, NULL, OPT_SAMPLE_DIR},
        {"allow", required_argument, NULL, OPT_ALLOW},
        {"slots", required_argument, NULL, OPT_SLOTS},
        {"voices", required_argument, NULL, OPT_VOICES},
        {"latency", required_argument, NULL, OPT_LATENCY},
        {"verbose", no_argument, NULL, 'v'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    *o = (struct options){
        .name = "looperd",
        .port = "9000",
        .listen = "127.0.0.1",
        .connect = true,
        .max_sample_mb = DEFAULT_MAX_SAMPLE_MB,
        .max_memory_mb = DEFAULT_MAX_MEMORY_MB,
        .slots = ENGINE_DEFAULT_SLOTS,
        .voices = ENGINE_DEFAULT_VOICES,
    };
    const unsigned long max_mb = SIZE_MAX / (1024 * 1024);
    int c;
    while ((c = getopt_long(argc, argv, "n:p:l:vqhV", longopts, NULL)) != -1) {
        switch (c) {
        case 'n':
            o->name = optarg;
            break;
        case 'p': {
            unsigned long v;
            if (parse_ulong("--port", optarg, 0, 65535, &v) < 0)
                return -EINVAL;
            o->port = optarg;
            break;
        }
        case 'l':
            o->listen = optarg;
            break;
        case OPT_NO_CONNECT:
            o->connect = false;
            break;
        case OPT_MAX_SAMPLE_MB:
            if (parse_ulong("--max-sample-mb", optarg, 1, max_mb, &o->max_sample_mb) < 0)
                return -EINVAL;
            break;
        case OPT_MAX_MEMORY_MB:
            if (parse_ulong("--max-memory-mb", optarg, 1, max_mb, &o->max_memory_mb) < 0)
                return -EINVAL;
            break;
        case OPT_SLOTS:
            if (parse_ulong("--slots", optarg, 1, ENGINE_MAX_SLOTS, &o->slots) < 0)
                return -EINVAL;
            break;
        case OPT_VOICES:
            if (parse_ulong("--voices", optarg, 1, ENGINE_MAX_VOICES, &o->voices) < 0)
                return -EINVAL;
            break;
        case OPT_LATENCY:
            if (parse_ulong("--latency", optarg, 0, 1000, &o->latency_ms) < 0)
                return -EINVAL;
            break;
        case OPT_SAMPLE_DIR:
            o->sample_dir = optarg;
            break;
        case OPT_ALLOW:
            if (o->nallow == OSC_MAX_ALLOW) {
                fprintf(stderr, "looperd: at most %d --allow\n", OSC_MAX_ALLOW);
                return -EINVAL;
            }
            if (osc_parse_allow(optarg, &o->allow[o->nallow]) < 0) {
                fprintf(stderr, "looperd: --allow wants ADDR or ADDR/PREFIX, not '%s'\n", optarg);
                return -EINVAL;
            }
            o->nallow++;
            break;
        case 'v':
            o->verbosity++;
            break;
        case 'q':
            o->verbosity = -1;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        case 'V':
            printf("looperd %s\n", LOOPERD_VERSION);
            exit(0);
        default:
            usage(stderr);
            return -EINVAL;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "looperd: unexpected argument '%s'\n", argv[optind]);
        return -EINVAL;
    }
    return 0;
}

static void *osc_thread(void *arg)
{
    struct protocol *p = arg;
    osc_run(p->osc, protocol_handle, p);
    return NULL;
}

/* After the audio thread has stopped, whatever still sits in its input rings
 * was never applied: free it here. */
static void drain_inputs(struct engine *e, struct protocol *p)
{
    struct ctl_msg m;
    while (ring_pop(&e->cmd, &m))
        reply_ctx_free(p, m.reply);
    while (ring_pop(&e->load, &m)) {
        engine_buffer_free(e, m.buf);
        reply_ctx_free(p, m.reply);
    }
}

int main(int argc, char **argv)
{
    struct options opt;
    struct audio audio;
    struct engine engine;
    struct osc_server osc;
    struct protocol proto;
    struct loader loader = {0};
    struct replier replier = {0};
    pthread_t osc_tid;
    char err[256];
    int status = 1;

    if (parse_options(argc, argv, &opt) < 0)
        return 2;
    log_init(opt.verbosity < 0 ? LOG_WARNING : opt.verbosity == 0 ? LOG_INFO : LOG_DEBUG);

    /* Block the signals we wait for before any thread exists (libjack starts
     * threads in jack_client_open), so they all inherit the mask and only
     * sigwait() below ever takes them.  SIGPIPE is ignored outright. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (audio_open(&audio, opt.name, err, sizeof(err)) < 0) {
        log_error("%s", err);
        return 1;
    }
    uint32_t rate = audio_rate(&audio);
    if (engine_init(&engine, (uint32_t)opt.slots, (uint32_t)opt.voices, rate) < 0) {
        log_error("out of memory");
        goto out_audio;
    }
    if (osc_open(&osc, opt.listen, opt.port, err, sizeof(err)) < 0) {
        log_error("%s", err);
        goto out_engine;
    }
    memcpy(osc.allow, opt.allow, sizeof(opt.allow));
    osc.nallow = opt.nallow;
    protocol_init(&proto, &engine, &osc, &loader, &audio);
    proto.latency_frames = (uint32_t)((uint64_t)opt.latency_ms * rate / 1000);
    struct loader_limits limits = {
        .max_sample_bytes = opt.max_sample_mb * 1024 * 1024,
        .max_memory_bytes = opt.max_memory_mb * 1024 * 1024,
        .sample_dir = opt.sample_dir,
    };
    if (replier_start(&replier, &engine, &proto) < 0) {
        log_error("cannot start the reply thread");
        goto out_threads;
    }
    if (loader_start(&loader, &engine, &proto, &limits, err, sizeof(err)) < 0) {
        log_error("%s", err);
        goto out_threads;
    }
    if (audio_start(&audio, &engine, opt.connect, err, sizeof(err)) < 0) {
        log_error("%s", err);
        goto out_threads;
    }
    if (pthread_create(&osc_tid, NULL, osc_thread, &proto) != 0) {
        log_error("cannot start the OSC thread");
        goto out_threads;
    }
    log_notice("ready: JACK client '%s' at %u Hz, period %u; OSC on udp %s", audio_client_name(&audio),
               rate, audio_period(&audio), osc.addr_text);

    int sig = 0;
    sigwait(&sigs, &sig);
    if (sig == SIGUSR1) {
        log_error("the JACK server went away; exiting");
        status = 1;
    } else {
        log_notice("shutting down (%s)", strsignal(sig));
        status = 0;
    }

    osc_stop(&osc);
    pthread_join(osc_tid, NULL);
out_threads:
    loader_stop(&loader);
    audio_close(&audio);
    replier_stop(&replier);
    replier_drain(&replier);
    drain_inputs(&engine, &proto);
    osc_close(&osc);
out_engine:
    engine_destroy(&engine);
out_audio:
    audio_close(&audio);
    return status;
}
