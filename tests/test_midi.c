/* test_midi.c - midi.h's pure parts: the byte-stream parser (running
 * status, messages split over events, realtime bytes anywhere, SysEx,
 * system common, garbage), the velocity curve and the note -> slots map;
 * and the MIDI keys of params.h (words, ranges, /get) with the defaults
 * table's door to the engine (a full door leaves a slot for pads_flush). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bank.h"
#include "midi.h"
#include "params.h"

#define MAXM 16

struct feed {
    struct midi_parser p;
    struct midi_msg out[MAXM];
    size_t n;
    uint32_t ignored;
};

static void feed(struct feed *f, uint32_t frame, const uint8_t *b, size_t len)
{
    f->n += midi_parse(&f->p, frame, b, len, f->out + f->n, MAXM - f->n, &f->ignored);
}
#define FEED(f, frame, ...)                                                                        \
    do {                                                                                           \
        const uint8_t b_[] = {__VA_ARGS__};                                                        \
        feed(f, frame, b_, sizeof(b_));                                                            \
    } while (0)

static void expect(const struct midi_msg *m, uint32_t frame, uint8_t kind, uint8_t ch, uint8_t a,
                   uint8_t b)
{
    assert_int_equal(m->frame, frame);
    assert_int_equal(m->kind, kind);
    assert_int_equal(m->channel, ch);
    assert_int_equal(m->a, a);
    assert_int_equal(m->b, b);
}

static void test_plain_messages(void **state)
{
    (void)state;
    struct feed f = {0};
    FEED(&f, 3, 0x90, 36, 100, 0x81, 36, 0, 0xbf, 120, 0, 0x95, 40, 0);
    assert_int_equal(f.n, 4);
    expect(&f.out[0], 3, MIDI_NOTE_ON, 1, 36, 100);
    expect(&f.out[1], 3, MIDI_NOTE_OFF, 2, 36, 0);
    expect(&f.out[2], 3, MIDI_CC, 16, 120, 0);
    expect(&f.out[3], 3, MIDI_NOTE_OFF, 6, 40, 0); /* velocity 0 */
    assert_int_equal(f.ignored, 0);
}

static void test_running_status_and_split(void **state)
{
    (void)state;
    struct feed f = {0};
    FEED(&f, 0, 0x90, 36, 100, 37, 90);
    FEED(&f, 5, 38); /* half a message: the rest in the next event */
    FEED(&f, 9, 80, 39);
    FEED(&f, 12, 70);
    assert_int_equal(f.n, 4);
    expect(&f.out[1], 0, MIDI_NOTE_ON, 1, 37, 90);
    expect(&f.out[2], 9, MIDI_NOTE_ON, 1, 38, 80);
    expect(&f.out[3], 12, MIDI_NOTE_ON, 1, 39, 70);
    assert_int_equal(f.ignored, 0);
}

static void test_realtime_anywhere(void **state)
{
    (void)state;
    struct feed f = {0};
    FEED(&f, 1, 0xf8, 0x90, 0xfe, 36, 0xf8, 127, 0xfa);
    FEED(&f, 2, 0xf0, 1, 0xf8, 2, 0xf7, 0x90, 37, 0xff, 1);
    assert_int_equal(f.n, 2);
    expect(&f.out[0], 1, MIDI_NOTE_ON, 1, 36, 127);
    expect(&f.out[1], 2, MIDI_NOTE_ON, 1, 37, 1);
    assert_int_equal(f.ignored, 7); /* six realtime bytes, one SysEx */
}

static void test_sysex_cancels_running_status(void **state)
{
    (void)state;
    struct feed f = {0};
    FEED(&f, 0, 0x90, 36, 100);
    FEED(&f, 1, 0xf0, 0x7e, 36, 100); /* would be a note under running status */
    FEED(&f, 2, 37, 100, 0xf7, 38, 100);
    assert_int_equal(f.n, 1);
    assert_int_equal(f.ignored, 3); /* the SysEx, two data bytes without a status */
    /* A SysEx cut short by a status byte: that message stands. */
    FEED(&f, 3, 0xf0, 1, 2, 0x90, 40, 50);
    assert_int_equal(f.n, 2);
    expect(&f.out[1], 3, MIDI_NOTE_ON, 1, 40, 50);
    assert_int_equal(f.ignored, 4);
}

static void test_system_common_and_garbage(void **state)
{
    (void)state;
    struct feed f = {0};
    FEED(&f, 0, 36, 100);               /* no status yet: 2 */
    FEED(&f, 0, 0xf7);                  /* an end without a start: 1 */
    FEED(&f, 0, 0xf2, 1, 2, 36, 100);   /* song position: 1, then no running status: 2 */
    FEED(&f, 0, 0xf1, 5, 0xf6);         /* MTC quarter frame, tune request: 2 */
    FEED(&f, 0, 0x90, 36, 0x80, 36, 0); /* a note-on cut short: 1, then a note-off */
    FEED(&f, 0, 0xc0, 5, 0xe0, 0, 64, 0xa0, 36, 1, 0xd0, 3); /* other kinds: 4 */
    assert_int_equal(f.n, 1);
    expect(&f.out[0], 0, MIDI_NOTE_OFF, 1, 36, 0);
    assert_int_equal(f.ignored, 13);
}

static void test_full_queue_counts(void **state)
{
    (void)state;
    struct midi_parser p;
    midi_parser_reset(&p);
    struct midi_msg out[2];
    uint32_t ignored = 0;
    const uint8_t b[] = {0x90, 1, 1, 2, 1, 3, 1, 4, 1};
    assert_int_equal(midi_parse(&p, 0, b, sizeof(b), out, 2, &ignored), 2);
    assert_int_equal(ignored, 2);
    /* Every byte value in every state: never more than `max` out. */
    for (int s = 0; s < 256; s++)
        for (int v = 0; v < 256; v++) {
            const uint8_t x[] = {(uint8_t)s, (uint8_t)v, (uint8_t)v, (uint8_t)s};
            size_t n = midi_parse(&p, 0, x, sizeof(x), out, 2, &ignored);
            assert_true(n <= 2);
            for (size_t k = 0; k < n; k++)
                assert_true(out[k].channel >= 1 && out[k].channel <= 16 && out[k].a < 128);
        }
}

static void test_velocity_curve(void **state)
{
    (void)state;
    struct midi_keys k = {0};
    assert_true(midi_velocity(&k, 127) == 1.0f);
    assert_true(midi_velocity(&k, 64) == (float)(64.0 / 127.0));
    k.keys = MIDI_KEY_VELCURVE;
    k.velcurve = 2.0f;
    assert_true(midi_velocity(&k, 64) == (float)pow(64.0 / 127.0, 2.0));
    k.velcurve = 0.5f;
    assert_true(fabsf(midi_velocity(&k, 32) - (float)sqrt(32.0 / 127.0)) < 1e-7f);
}

static void test_map(void **state)
{
    (void)state;
    struct midi_map m;
    assert_int_equal(midi_map_init(&m, 100), 0);
    /* Defaults: slot i on 36 + i while that is a note. */
    assert_int_equal(midi_map_first(&m, 36), 0);
    assert_int_equal(midi_map_next(&m, 0), MIDI_NONE);
    assert_int_equal(midi_map_first(&m, 127), 91);
    assert_int_equal(midi_map_first(&m, 35), MIDI_NONE);
    /* Slots 5 and 7 share 36 with slot 0. */
    midi_map_set(&m, 5, 36);
    midi_map_set(&m, 7, 36);
    int seen[100] = {0}, n = 0;
    for (uint32_t id = midi_map_first(&m, 36); id != MIDI_NONE; id = midi_map_next(&m, id)) {
        seen[id]++;
        n++;
    }
    assert_int_equal(n, 3);
    assert_true(seen[0] && seen[5] && seen[7]);
    assert_int_equal(midi_map_first(&m, 41), MIDI_NONE); /* slot 5's default went */
    midi_map_set(&m, 5, 41);
    midi_map_set(&m, 0, -1);
    assert_int_equal(midi_map_first(&m, 36), 7);
    assert_int_equal(midi_map_next(&m, 7), MIDI_NONE);
    assert_int_equal(midi_map_first(&m, 41), 5);
    midi_map_destroy(&m);
}

static void test_params_midi_keys(void **state)
{
    (void)state;
    struct params p = {0};
    char why[PARAMS_WHY_MAX];
    assert_int_equal(params_parse_text(&p, "noteoff=release", 1, why), 0);
    assert_int_equal(params_parse_text(&p, "mode=loop", 1, why), 0);
    assert_int_equal(params_parse_text(&p, "note=38", 1, why), 0);
    assert_int_equal(params_parse_text(&p, "channel=10", 1, why), 0);
    assert_int_equal(params_parse_text(&p, "velcurve=1.5", 1, why), 0);
    assert_int_equal(midi_noteoff_of(&p.midi), MIDI_OFF_RELEASE);
    assert_int_equal(midi_mode_of(&p.midi), MIDI_MODE_LOOP);
    assert_int_equal(midi_note_of(&p.midi, 3), 38);
    assert_int_equal(midi_channel_of(&p.midi), 10);
    assert_true(p.midi.velcurve == 1.5f);
    const char *bad[] = {"noteoff=gate", "noteoff=1",  "mode=2",     "note=128",   "note=-1",
                         "note=3.5",     "channel=17", "velcurve=0", "velcurve=11"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct params q = p;
        assert_int_equal(params_parse_text(&q, bad[i], 1, why), -EINVAL);
        assert_memory_equal(&q, &p, sizeof(p));
    }
    assert_true(params_is_slot_key("note") && params_is_slot_key("mode"));
    assert_false(params_is_slot_key("gain"));
    /* /get lists them after the sampler's keys, words as words. */
    unsigned i = 0;
    const char *name;
    double v;
    bool whole;
    int found = 0;
    while (params_next(&p, &i, &name, &v, &whole)) {
        if (strcmp(name, "noteoff") == 0) {
            assert_string_equal(params_word(name, v), "release");
            found++;
        } else if (strcmp(name, "mode") == 0) {
            assert_string_equal(params_word(name, v), "loop");
            found++;
        } else if (strcmp(name, "note") == 0) {
            assert_null(params_word(name, v));
            assert_true(whole && v == 38);
            found++;
        }
    }
    assert_int_equal(found, 3);
    /* Merging: a /set of one key keeps the others. */
    struct params c = {0}, m;
    assert_int_equal(params_parse_text(&c, "noteoff=toggle", 1, why), 0);
    params_merge(&m, &p, &c);
    assert_int_equal(midi_noteoff_of(&m.midi), MIDI_OFF_TOGGLE);
    assert_int_equal(midi_note_of(&m.midi, 3), 38);
}

/* The door: accepts `room` slots, then refuses. */
static int room;
static uint32_t last_id, published;
static bool door(void *ctx, uint32_t id, const struct params *p)
{
    (void)ctx;
    (void)p;
    if (room <= 0)
        return false;
    room--;
    last_id = id;
    published++;
    return true;
}

static void test_pads_publish_and_flush(void **state)
{
    (void)state;
    struct pads t;
    char why[PARAMS_WHY_MAX];
    assert_int_equal(pads_init(&t, 8), 0);
    pads_set_publish(&t, door, NULL);
    struct params c = {0};
    assert_int_equal(params_parse_text(&c, "note=60", 1, why), 0);
    room = 1;
    assert_int_equal(pads_update(&t, 3, &c, 1, why), 0);
    assert_int_equal(published, 1);
    assert_int_equal(last_id, 3);
    /* A full door: the change stays on the control side, dirty. */
    pads_put(&t, 4, &c, 2);
    pads_unloaded(&t, 3, 3);
    assert_int_equal(published, 1);
    assert_int_equal(t.ndirty, 2);
    pads_flush(&t); /* still full */
    assert_int_equal(t.ndirty, 2);
    room = 1;
    pads_flush(&t);
    assert_int_equal(t.ndirty, 1);
    room = 5;
    pads_flush(&t);
    assert_int_equal(t.ndirty, 0);
    assert_int_equal(published, 3);
    pads_destroy(&t);
}

/* examples/banks/gm-drums.bank (the path is the first argument): every
 * line good, the hi-hats in one cut group, the loop toggled. */
static const char *example_bank;
static void test_example_bank(void **state)
{
    (void)state;
    struct bank b = {0};
    assert_non_null(example_bank);
    /* A copy beside empty files of the names it gives (bank_read() wants
     * the files; what they hold is the loader's business). */
    char dir[] = "/tmp/looperd-gm-XXXXXX", path[512], line[512];
    assert_non_null(mkdtemp(dir));
    FILE *in = fopen(example_bank, "r");
    assert_non_null(in);
    snprintf(path, sizeof(path), "%s/gm.bank", dir);
    FILE *out = fopen(path, "w");
    assert_non_null(out);
    int files = 0;
    while (fgets(line, sizeof(line), in)) {
        fputs(line, out);
        char name[256];
        unsigned id;
        if (line[0] != '#' && sscanf(line, "%u %255s", &id, name) == 2) {
            char f[800];
            snprintf(f, sizeof(f), "%s/%s", dir, name);
            FILE *w = fopen(f, "w");
            assert_non_null(w);
            fclose(w);
            files++;
        }
    }
    fclose(in);
    fclose(out);
    assert_int_equal(bank_read(path, 32, 1, &b), 0);
    int n = 0;
    for (uint32_t id = 0; id < b.nslots; id++)
        if (b.entries[id].path) {
            n++;
            assert_int_equal(midi_channel_of(&b.entries[id].params.midi), 10);
        }
    assert_int_equal(n, 18);
    assert_int_equal(midi_note_of(&b.entries[6].params.midi, 6), 42);
    assert_int_equal(play_cut(&b.entries[8].params.play), 1);
    assert_int_equal(midi_mode_of(&b.entries[16].params.midi), MIDI_MODE_LOOP);
    assert_int_equal(midi_noteoff_of(&b.entries[16].params.midi), MIDI_OFF_TOGGLE);
    assert_int_equal(midi_noteoff_of(&b.entries[17].params.midi), MIDI_OFF_RELEASE);
    bank_free(&b);
    char cmd[64];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(files, 18);
}

int main(int argc, char **argv)
{
    example_bank = argc > 1 ? argv[1] : NULL;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_messages),
        cmocka_unit_test(test_running_status_and_split),
        cmocka_unit_test(test_realtime_anywhere),
        cmocka_unit_test(test_sysex_cancels_running_status),
        cmocka_unit_test(test_system_common_and_garbage),
        cmocka_unit_test(test_full_queue_counts),
        cmocka_unit_test(test_velocity_curve),
        cmocka_unit_test(test_map),
        cmocka_unit_test(test_params_midi_keys),
        cmocka_unit_test(test_pads_publish_and_flush),
        cmocka_unit_test(test_example_bank),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
