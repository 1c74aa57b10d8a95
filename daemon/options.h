/* options.h - looperd's command line: one table of the options, from which
 * getopt_long's array and the --help text are both made.
 *
 * The table (options.c) is the only list of options in the code.  The
 * README's options table and docs/looperd.8 are checked against `looperd
 * --help` by tests/test_options.py, so a new option goes into the table and
 * the two documents, or the unit suite fails.
 */
#ifndef LOOPERD_OPTIONS_H
#define LOOPERD_OPTIONS_H

#include <stdbool.h>
#include <stdio.h>

#include "library.h"
#include "osc.h"

/* A 10-minute stereo file at 96 kHz in float is 440 MiB. */
#define DEFAULT_MAX_SAMPLE_MB 512
#define DEFAULT_MAX_MEMORY_MB 4096
/* SuperDirt's port, where TidalCycles and Strudel's OSC bridge send. */
#define OPTIONS_DIRT_PORT 57120
/* --midi-connect given at most this often (audio.h: AUDIO_MAX_MIDI_CONNECT). */
#define OPTIONS_MAX_MIDI_CONNECT 16

struct options {
    const char *name;
    const char *port;
    /* The second socket's port (--dirt-port), NULL for none: after parsing,
     * OPTIONS_DIRT_PORT when --library is given without --dirt-port (and
     * --port is not already that port), and only an explicit
     * --dirt-port's failure to bind stops the start-up (main.c). */
    const char *dirt_port;
    bool dirt_port_given;
    const char *listen;
    const char *sample_dir;
    const char *bank;
    bool connect;
    bool connect_all; /* every output pair, not only the first */
    unsigned long max_sample_mb;
    unsigned long max_memory_mb;
    unsigned long slots;
    unsigned long voices;
    unsigned long outputs; /* stereo output pairs */
    unsigned long latency_ms;
    double tempo, quantum; /* the beat timeline's start (beat.h) */
    double quant;          /* triggers' launch grid without a quant key; 0: now */
    struct osc_allow allow[OSC_MAX_ALLOW];
    unsigned nallow;
    const char *midi_connect[OPTIONS_MAX_MIDI_CONNECT]; /* JACK MIDI ports */
    unsigned nmidi_connect;
    int verbosity;
    const char *library[LIBRARY_MAX_DIRS]; /* --library, repeatable */
    unsigned nlibrary;
    unsigned long library_max;
    bool link;            /* --link: join the Link session at start-up */
    bool link_start_stop; /* --link-start-stop */
};

/* Fills *o from the command line and checks what can be checked before
 * anything slow starts.  --help and --version print and exit(0).  Returns 0,
 * or -EINVAL after a message on stderr (the caller exits with status 2). */
int options_parse(int argc, char **argv, struct options *o);

/* The --help text, generated from the table. */
void options_usage(FILE *f);

#endif
