/* options.c - the table of looperd's options, parsing and --help. */
#include "options.h"

#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jack/jack.h>

#include "bank.h"
#include "beat.h"
#include "engine.h"
#include "link_clock.h"

#ifndef LOOPERD_VERSION
#define LOOPERD_VERSION "unknown"
#endif

#define STR_(x) #x
#define STR(x) STR_(x)

enum opt_id {
    OPT_NAME,
    OPT_PORT,
    OPT_DIRT_PORT,
    OPT_LISTEN,
    OPT_ALLOW,
    OPT_NO_CONNECT,
    OPT_CONNECT_ALL,
    OPT_OUTPUTS,
    OPT_SLOTS,
    OPT_VOICES,
    OPT_LATENCY,
    OPT_TEMPO,
    OPT_QUANTUM,
    OPT_QUANT,
    OPT_SAMPLE_DIR,
    OPT_BANK,
    OPT_MAX_SAMPLE_MB,
    OPT_MAX_MEMORY_MB,
    OPT_LIBRARY,
    OPT_LIBRARY_MAX,
    OPT_MIDI_CONNECT,
    OPT_VERBOSE,
    OPT_QUIET,
    OPT_HELP,
    OPT_VERSION,
    OPT_LINK,
    OPT_LINK_START_STOP,
    OPT_COUNT
};

/* One option: what getopt_long needs and what --help says.  `arg` is NULL
 * for an option without an argument; `deflt`, when set, is printed as
 * "(default DEFLT)" after the help text and must be what options_parse()
 * starts from.  The order is the order of --help. */
struct option_spec {
    const char *name;
    char letter;
    const char *arg;
    const char *deflt;
    const char *help;
};

static const struct option_spec specs[OPT_COUNT] = {
    [OPT_NAME] = {"name", 'n', "NAME", "looperd", "JACK client name"},
    [OPT_PORT] = {"port", 'p', "N", "9000", "UDP port for OSC"},
    [OPT_DIRT_PORT] = {"dirt-port", 0, "N", STR(OPTIONS_DIRT_PORT),
                       "a second UDP port serving the same, SuperDirt's, for TidalCycles and "
                       "Strudel; opened with --library or when given; 0: none"},
    [OPT_LISTEN] = {"listen", 'l', "ADDR", "127.0.0.1",
                    "address to listen on, IPv4 or IPv6; :: is every interface, IPv4 too"},
    [OPT_ALLOW] = {"allow", 0, "CIDR", "all", "serve only these sources; repeatable"},
    [OPT_NO_CONNECT] = {"no-connect", 0, NULL, NULL,
                        "do not connect the outputs to the playback ports"},
    [OPT_CONNECT_ALL] = {"connect-all", 0, NULL, NULL,
                         "connect every output pair, not only the first, to the playback ports "
                         "(pair k to ports 2k+1 and 2k+2)"},
    [OPT_OUTPUTS] = {"outputs", 0, "N", STR(ENGINE_DEFAULT_PAIRS),
                     "stereo output pairs, ports out_1..out_2N, at most " STR(ENGINE_MAX_PAIRS)},
    [OPT_SLOTS] = {"slots", 0, "N", STR(ENGINE_DEFAULT_SLOTS),
                   "sample slots, ids 0..N-1, at most " STR(ENGINE_MAX_NUMBERED)},
    [OPT_VOICES] = {"voices", 0, "N", STR(ENGINE_DEFAULT_VOICES),
                    "polyphony, at most " STR(ENGINE_MAX_VOICES)},
    [OPT_LATENCY] = {"latency", 0, "MS", "0",
                     "start plain messages MS after arrival (steady latency); 0: at the next "
                     "period"},
    [OPT_TEMPO] = {"tempo", 0, "BPM", "120", "the beat timeline's tempo, 20 to 999"},
    [OPT_QUANTUM] = {"quantum", 0, "N", "4", "beats per bar, a positive number"},
    [OPT_QUANT] = {"quant", 0, "Q", "0",
                   "launch grid of triggers without a quant key, in beats; 0: now"},
    [OPT_SAMPLE_DIR] = {"sample-dir", 0, "DIR", NULL,
                        "load only files below DIR; relative paths start there"},
    [OPT_BANK] = {"bank", 'b', "FILE", NULL,
                  "load 'id path [gain]' lines at start-up; SIGHUP reloads (a regular file of "
                  "at most 1 MiB)"},
    [OPT_MAX_SAMPLE_MB] = {"max-sample-mb", 0, "N", STR(DEFAULT_MAX_SAMPLE_MB),
                           "largest decoded sample accepted"},
    [OPT_MAX_MEMORY_MB] = {"max-memory-mb", 0, "N", STR(DEFAULT_MAX_MEMORY_MB),
                           "all samples together"},
    [OPT_LIBRARY] = {"library", 0, "DIR", NULL,
                     "a sample library for /dirt/play: each subfolder of DIR is a bank; "
                     "repeatable; SIGHUP and /library/reload rescan"},
    [OPT_LIBRARY_MAX] = {"library-max", 0, "N", STR(LIBRARY_DEFAULT_MAX),
                         "library samples, in slots of their own, at most " STR(
                             ENGINE_MAX_LIBRARY)},
    [OPT_MIDI_CONNECT] = {"midi-connect", 0, "PORT", NULL,
                          "connect JACK MIDI port PORT to midi_in whenever it exists (also when "
                          "it appears later or JACK restarts); repeatable"},
    [OPT_VERBOSE] = {"verbose", 'v', NULL, NULL, "more log lines (repeat for debug)"},
    [OPT_QUIET] = {"quiet", 'q', NULL, NULL, "warnings and errors only"},
    [OPT_HELP] = {"help", 'h', NULL, NULL, "this text"},
    [OPT_VERSION] = {"version", 'V', NULL, NULL, "print the version"},
    [OPT_LINK] = {"link", 0, NULL, NULL,
                  "join the Ableton Link session on the local network (multicast; /link 0|1)"},
    [OPT_LINK_START_STOP] = {"link-start-stop", 0, NULL, NULL,
                             "follow Link's start/stop: quantized launches wait while stopped"},
};

/* getopt_long's value for an option without a letter: above every char. */
#define LONG_ONLY 256

/* Where the help text starts, and the width it wraps at. */
#define HELP_COLUMN 27
#define HELP_WIDTH 79

/* Prints `text` from column `col` on, wrapping at spaces before HELP_WIDTH
 * and indenting continuation lines to HELP_COLUMN. */
static void print_wrapped(FILE *f, int col, const char *text)
{
    while (*text) {
        size_t room = (size_t)(HELP_WIDTH - col);
        size_t len = strlen(text);
        size_t cut = len;
        if (len > room) {
            cut = room;
            while (cut > 0 && text[cut] != ' ')
                cut--;
            if (cut == 0)
                cut = strcspn(text, " ");
        }
        fprintf(f, "%.*s\n", (int)cut, text);
        text += cut;
        while (*text == ' ')
            text++;
        if (*text) {
            fprintf(f, "%*s", HELP_COLUMN, "");
            col = HELP_COLUMN;
        }
    }
}

void options_usage(FILE *f)
{
    fprintf(f, "Usage: looperd [OPTIONS]\n"
               "Plays audio samples on cue: a JACK client controlled over OSC/UDP.\n\n");
    for (int i = 0; i < OPT_COUNT; i++) {
        const struct option_spec *s = &specs[i];
        char head[64];
        if (s->letter)
            snprintf(head, sizeof(head), "  -%c, --%s%s%s", s->letter, s->name, s->arg ? " " : "",
                     s->arg ? s->arg : "");
        else
            snprintf(head, sizeof(head), "      --%s%s%s", s->name, s->arg ? " " : "",
                     s->arg ? s->arg : "");
        int col = fprintf(f, "%-*s ", HELP_COLUMN - 1, head);
        char help[256];
        if (s->deflt)
            snprintf(help, sizeof(help), "%s (default %s)", s->help, s->deflt);
        else
            snprintf(help, sizeof(help), "%s", s->help);
        print_wrapped(f, col, help);
    }
}

/* A whole number in [lo, hi], or -EINVAL with a message naming the option. */
static int parse_ulong(const char *opt, const char *text, unsigned long lo, unsigned long hi,
                       unsigned long *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(text, &end, 10);
    if (!*text || *end || errno || v < lo || v > hi || *text == '-') {
        fprintf(stderr, "looperd: %s wants a whole number from %lu to %lu, not '%s'\n", opt, lo, hi,
                text);
        return -EINVAL;
    }
    *out = v;
    return 0;
}

/* A number for which ok(v) holds, or -EINVAL with a message naming the
 * option. */
static int parse_double(const char *opt, const char *text, bool (*ok)(double), const char *want,
                        double *out)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (!*text || *end || errno || !ok(v)) {
        fprintf(stderr, "looperd: %s wants %s, not '%s'\n", opt, want, text);
        return -EINVAL;
    }
    *out = v;
    return 0;
}

static bool quant_ok(double v)
{
    return v == 0 || beat_quantum_valid(v);
}

/* What can be checked before anything slow starts: the reasons JACK or a
 * later step would only report confusingly, or not at all.  Also settles
 * --dirt-port's default, which depends on --library and --port. */
static int check_options(struct options *o)
{
    unsigned long port = strtoul(o->port, NULL, 10);
    if (o->dirt_port && strtoul(o->dirt_port, NULL, 10) == port) {
        fprintf(stderr,
                "looperd: --dirt-port and --port are both %lu: give them different ports "
                "(or --dirt-port 0 for none)\n",
                port);
        return -EINVAL;
    }
    /* SuperDirt's port comes with a library, unless --port already is it. */
    if (!o->dirt_port_given && o->nlibrary && port != OPTIONS_DIRT_PORT)
        o->dirt_port = specs[OPT_DIRT_PORT].deflt;
    /* jack_client_name_size() counts the terminating NUL.  JACK2's says 65
     * but refuses names of 64 characters or more, reporting it as a server
     * failure (jack2 issue #181), so no longer name goes to JACK. */
    size_t name_max = (size_t)jack_client_name_size() - 1;
    if (name_max > 63)
        name_max = 63;
    if (!*o->name || strlen(o->name) > name_max) {
        fprintf(stderr, "looperd: --name must be 1 to %zu characters (JACK's limit), not %zu\n",
                name_max, strlen(o->name));
        return -EINVAL;
    }
    if (o->connect_all && !o->connect) {
        fprintf(stderr, "looperd: --connect-all and --no-connect contradict each other\n");
        return -EINVAL;
    }
    if ((o->link || o->link_start_stop) && !link_clock_available()) {
        fprintf(stderr, "looperd: --%s: this looperd is built without Ableton Link (-Dlink)\n",
                o->link ? "link" : "link-start-stop");
        return -EINVAL;
    }
    if (o->sample_dir) {
        struct stat st;
        if (stat(o->sample_dir, &st) < 0) {
            fprintf(stderr, "looperd: --sample-dir %s: %s\n", o->sample_dir, strerror(errno));
            return -EINVAL;
        }
        if (!S_ISDIR(st.st_mode)) {
            fprintf(stderr, "looperd: --sample-dir %s: not a directory\n", o->sample_dir);
            return -EINVAL;
        }
    }
    for (unsigned i = 0; i < o->nlibrary; i++) {
        struct stat st;
        if (stat(o->library[i], &st) < 0) {
            fprintf(stderr, "looperd: --library %s: %s\n", o->library[i], strerror(errno));
            return -EINVAL;
        }
        if (!S_ISDIR(st.st_mode)) {
            fprintf(stderr, "looperd: --library %s: not a directory\n", o->library[i]);
            return -EINVAL;
        }
    }
    if (o->bank) {
        int err = bank_check(o->bank);
        if (err < 0) {
            fprintf(stderr, "looperd: --bank %s: %s\n", o->bank, bank_strerror(err));
            return -EINVAL;
        }
    }
    return 0;
}

/* Applies one option; `arg` is its argument or NULL. */
static int apply(struct options *o, enum opt_id id, char *arg)
{
    const unsigned long max_mb = SIZE_MAX / (1024 * 1024);
    switch (id) {
    case OPT_NAME:
        o->name = arg;
        return 0;
    case OPT_PORT: {
        unsigned long v;
        if (parse_ulong("--port", arg, 0, 65535, &v) < 0)
            return -EINVAL;
        o->port = arg;
        return 0;
    }
    case OPT_DIRT_PORT: {
        unsigned long v;
        if (parse_ulong("--dirt-port", arg, 0, 65535, &v) < 0)
            return -EINVAL;
        o->dirt_port = v ? arg : NULL;
        o->dirt_port_given = true;
        return 0;
    }
    case OPT_LISTEN:
        o->listen = arg;
        return 0;
    case OPT_BANK:
        o->bank = arg;
        return 0;
    case OPT_NO_CONNECT:
        o->connect = false;
        return 0;
    case OPT_CONNECT_ALL:
        o->connect_all = true;
        return 0;
    case OPT_OUTPUTS:
        return parse_ulong("--outputs", arg, 1, ENGINE_MAX_PAIRS, &o->outputs);
    case OPT_MAX_SAMPLE_MB:
        return parse_ulong("--max-sample-mb", arg, 1, max_mb, &o->max_sample_mb);
    case OPT_MAX_MEMORY_MB:
        return parse_ulong("--max-memory-mb", arg, 1, max_mb, &o->max_memory_mb);
    case OPT_SLOTS:
        return parse_ulong("--slots", arg, 1, ENGINE_MAX_NUMBERED, &o->slots);
    case OPT_VOICES:
        return parse_ulong("--voices", arg, 1, ENGINE_MAX_VOICES, &o->voices);
    case OPT_LATENCY:
        return parse_ulong("--latency", arg, 0, 1000, &o->latency_ms);
    case OPT_TEMPO:
        return parse_double("--tempo", arg, beat_tempo_valid, "a tempo from 20 to 999 BPM",
                            &o->tempo);
    case OPT_QUANTUM:
        return parse_double("--quantum", arg, beat_quantum_valid, "a positive number of beats",
                            &o->quantum);
    case OPT_QUANT:
        return parse_double("--quant", arg, quant_ok, "0 or a positive number of beats", &o->quant);
    case OPT_SAMPLE_DIR:
        o->sample_dir = arg;
        return 0;
    case OPT_ALLOW:
        if (o->nallow == OSC_MAX_ALLOW) {
            fprintf(stderr, "looperd: at most %d --allow\n", OSC_MAX_ALLOW);
            return -EINVAL;
        }
        if (osc_parse_allow(arg, &o->allow[o->nallow]) < 0) {
            fprintf(stderr, "looperd: --allow wants ADDR or ADDR/PREFIX, not '%s'\n", arg);
            return -EINVAL;
        }
        o->nallow++;
        return 0;
    case OPT_LIBRARY:
        if (o->nlibrary == LIBRARY_MAX_DIRS) {
            fprintf(stderr, "looperd: at most %d --library\n", LIBRARY_MAX_DIRS);
            return -EINVAL;
        }
        o->library[o->nlibrary++] = arg;
        return 0;
    case OPT_LIBRARY_MAX:
        return parse_ulong("--library-max", arg, 1, ENGINE_MAX_LIBRARY, &o->library_max);
    case OPT_MIDI_CONNECT:
        if (o->nmidi_connect == OPTIONS_MAX_MIDI_CONNECT) {
            fprintf(stderr, "looperd: at most %d --midi-connect\n", OPTIONS_MAX_MIDI_CONNECT);
            return -EINVAL;
        }
        o->midi_connect[o->nmidi_connect++] = arg;
        return 0;
    case OPT_VERBOSE:
        o->verbosity++;
        return 0;
    case OPT_QUIET:
        o->verbosity = -1;
        return 0;
    case OPT_HELP:
        options_usage(stdout);
        exit(0);
    case OPT_VERSION:
        printf("looperd %s\n", LOOPERD_VERSION);
        exit(0);
    case OPT_LINK:
        o->link = true;
        return 0;
    case OPT_LINK_START_STOP:
        o->link_start_stop = true;
        return 0;
    case OPT_COUNT:
        break;
    }
    return -EINVAL;
}

int options_parse(int argc, char **argv, struct options *o)
{
    struct option longopts[OPT_COUNT + 1];
    /* Each letter, with ':' if it takes an argument. */
    char shortopts[2 * OPT_COUNT + 1];
    size_t ns = 0;
    for (int i = 0; i < OPT_COUNT; i++) {
        const struct option_spec *s = &specs[i];
        longopts[i] = (struct option){s->name, s->arg ? required_argument : no_argument, NULL,
                                      s->letter ? s->letter : LONG_ONLY + i};
        if (s->letter) {
            shortopts[ns++] = s->letter;
            if (s->arg)
                shortopts[ns++] = ':';
        }
    }
    longopts[OPT_COUNT] = (struct option){NULL, 0, NULL, 0};
    shortopts[ns] = '\0';

    *o = (struct options){
        .name = specs[OPT_NAME].deflt,
        .port = specs[OPT_PORT].deflt,
        .listen = specs[OPT_LISTEN].deflt,
        .connect = true,
        .max_sample_mb = DEFAULT_MAX_SAMPLE_MB,
        .max_memory_mb = DEFAULT_MAX_MEMORY_MB,
        .slots = ENGINE_DEFAULT_SLOTS,
        .voices = ENGINE_DEFAULT_VOICES,
        .outputs = ENGINE_DEFAULT_PAIRS,
        .library_max = LIBRARY_DEFAULT_MAX,
        .tempo = BEAT_DEFAULT_TEMPO,
        .quantum = BEAT_DEFAULT_QUANTUM,
    };
    int c;
    while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        int id = -1;
        if (c >= LONG_ONLY && c < LONG_ONLY + OPT_COUNT)
            id = c - LONG_ONLY;
        for (int i = 0; id < 0 && c != '?' && c != ':' && i < OPT_COUNT; i++)
            if (specs[i].letter == c)
                id = i;
        if (id < 0) {
            options_usage(stderr);
            return -EINVAL;
        }
        if (apply(o, (enum opt_id)id, optarg) < 0)
            return -EINVAL;
    }
    if (optind < argc) {
        fprintf(stderr, "looperd: unexpected argument '%s'\n", argv[optind]);
        return -EINVAL;
    }
    return check_options(o);
}
