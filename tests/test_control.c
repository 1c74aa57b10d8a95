/* test_control.c - the control side's pure parts: log escaping and rate
 * limiting (with a test clock), --allow matching of IPv4-mapped sources,
 * what bank_read() refuses (without blocking on a FIFO), and the keys of
 * triggers, /set and bank lines (params.h): ranges, NaN and infinities,
 * whole numbers, duplicates, merging and the defaults table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bank.h"
#include "log.h"
#include "osc.h"
#include "params.h"

static uint64_t fake_now;
static uint64_t fake_clock(void)
{
    return fake_now;
}

/* The log written since the last call, read back from a temporary file. */
static long done;
static char *take(FILE *f)
{
    long end = ftell(f);
    char *s = calloc(1, (size_t)(end - done) + 1);
    fseek(f, done, SEEK_SET);
    size_t n = fread(s, 1, (size_t)(end - done), f);
    s[n] = '\0';
    done = end;
    fseek(f, end, SEEK_SET);
    return s;
}

static int count(const char *s, const char *what)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, what)); p += strlen(what))
        n++;
    return n;
}

static void test_escape(void **state)
{
    char out[64];
    log_escape(out, sizeof(out), "a\nb\rc\td\\e\x1b[2K\x7f");
    assert_string_equal(out, "a\\nb\\rc\\td\\\\e\\x1b[2K\\x7f");
    /* Never half an escape at the end. */
    log_escape(out, 5, "ab\ncd");
    assert_string_equal(out, "ab\\n");
    log_escape(out, 4, "ab\ncd");
    assert_string_equal(out, "ab");
    /* UTF-8 is left alone. */
    log_escape(out, sizeof(out), "caf\xc3\xa9");
    assert_string_equal(out, "caf\xc3\xa9");
}

static void test_log_line_cannot_be_forged(void **state)
{
    FILE *f = tmpfile();
    done = 0;
    log_init(LOG_DEBUG);
    log_redirect(f, fake_clock);
    fake_now = 1000000000ull;
    log_warn("load %u %s failed", 3u, "/x\nlooperd: error: FORGED");
    char *s = take(f);
    assert_string_equal(s, "looperd: warning: load 3 /x\\nlooperd: error: FORGED failed\n");
    free(s);
    log_redirect(NULL, NULL);
    fclose(f);
}

static void flood(int n, unsigned bytes)
{
    for (int i = 0; i < n; i++)
        log_warn("dropped a malformed packet (%u bytes)", bytes);
}

static void test_rate_limit(void **state)
{
    FILE *f = tmpfile();
    done = 0;
    log_init(LOG_DEBUG);
    log_redirect(f, fake_clock);
    fake_now = 5000000000ull;
    flood(100, 7);
    log_notice("another call site"); /* not similar: not limited */
    char *s = take(f);
    assert_int_equal(count(s, "dropped a malformed packet"), LOG_BURST);
    assert_int_equal(count(s, "another call site"), 1);
    assert_int_equal(count(s, "suppressed"), 0);
    free(s);
    /* No further line: the tick reports once the suppressed lines waited. */
    fake_now += LOG_REPORT_NS - 1;
    log_tick();
    s = take(f);
    assert_string_equal(s, "");
    free(s);
    fake_now += 1;
    log_tick();
    s = take(f);
    assert_string_equal(s, "looperd: warning: suppressed 95 similar lines like: dropped a "
                           "malformed packet (7 bytes)\n");
    free(s);
    log_tick();
    s = take(f);
    assert_string_equal(s, "");
    free(s);
    /* A new second: five more, then counting again. */
    fake_now += LOG_WINDOW_NS;
    flood(6, 9);
    s = take(f);
    assert_int_equal(count(s, "dropped a malformed packet (9 bytes)"), LOG_BURST);
    free(s);
    fake_now += LOG_REPORT_NS;
    flood(1, 9); /* the report comes first, then the new window's line */
    s = take(f);
    assert_string_equal(s, "looperd: warning: suppressed 1 similar line like: dropped a malformed "
                           "packet (9 bytes)\n"
                           "looperd: warning: dropped a malformed packet (9 bytes)\n");
    free(s);
    log_redirect(NULL, NULL);
    fclose(f);
}

static struct osc_peer peer6(const char *text)
{
    struct osc_peer p = {.len = sizeof(struct sockaddr_in6)};
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&p.addr;
    a->sin6_family = AF_INET6;
    assert_int_equal(inet_pton(AF_INET6, text, &a->sin6_addr), 1);
    return p;
}

static struct osc_peer peer4(const char *text)
{
    struct osc_peer p = {.len = sizeof(struct sockaddr_in)};
    struct sockaddr_in *a = (struct sockaddr_in *)&p.addr;
    a->sin_family = AF_INET;
    assert_int_equal(inet_pton(AF_INET, text, &a->sin_addr), 1);
    return p;
}

static void test_allow_mapped(void **state)
{
    static struct osc_server s;
    assert_int_equal(osc_parse_allow("127.0.0.1/32", &s.allow[0]), 0);
    assert_int_equal(osc_parse_allow("fd00::/8", &s.allow[1]), 0);
    s.nallow = 2;
    struct osc_peer p;
    p = peer4("127.0.0.1");
    assert_true(osc_allowed(&s, &p));
    p = peer6("::ffff:127.0.0.1");
    assert_true(osc_allowed(&s, &p));
    p = peer6("::ffff:127.0.0.2");
    assert_false(osc_allowed(&s, &p));
    p = peer6("::1");
    assert_false(osc_allowed(&s, &p));
    p = peer6("fd00::5");
    assert_true(osc_allowed(&s, &p));
    /* Not mapped: the same last four bytes do not make it IPv4. */
    p = peer6("::7f00:1");
    assert_false(osc_allowed(&s, &p));
    /* An IPv6 rule covering the mapped range matches mapped sources too. */
    assert_int_equal(osc_parse_allow("::ffff:0:0/96", &s.allow[0]), 0);
    p = peer6("::ffff:10.1.2.3");
    assert_true(osc_allowed(&s, &p));
}

static void test_bank_refuses(void **state)
{
    char dir[] = "/tmp/test_control_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    struct bank b;

    snprintf(path, sizeof(path), "%s/missing", dir);
    assert_int_equal(bank_read(path, 8, 1, &b), -ENOENT);
    assert_null(b.entries);
    assert_int_equal(bank_read(dir, 8, 1, &b), -EISDIR);
    assert_string_equal(bank_strerror(-EISDIR), "is a directory");
    /* A FIFO without a writer would block open() and read() forever. */
    snprintf(path, sizeof(path), "%s/fifo", dir);
    assert_int_equal(mkfifo(path, 0600), 0);
    assert_int_equal(bank_read(path, 8, 1, &b), -ENODEV);
    assert_int_equal(bank_check(path), -ENODEV);
    unlink(path);
    assert_int_equal(bank_read("/dev/zero", 8, 1, &b), -ENODEV);
    assert_int_equal(bank_read("/dev/null", 8, 1, &b), -ENODEV);

    snprintf(path, sizeof(path), "%s/big", dir);
    FILE *f = fopen(path, "w");
    for (int i = 0; i <= BANK_MAX_BYTES / 8; i++)
        fputs("# 4567\n\n", f);
    fclose(f);
    assert_int_equal(bank_read(path, 8, 1, &b), -EFBIG);
    assert_int_equal(bank_check(path), -EFBIG);

    /* Exactly the limit, and an empty file, are fine. */
    assert_int_equal(truncate(path, BANK_MAX_BYTES), 0);
    assert_int_equal(bank_read(path, 8, 1, &b), 0);
    bank_free(&b);
    assert_int_equal(truncate(path, 0), 0);
    assert_int_equal(bank_read(path, 8, 1, &b), 0);
    bank_free(&b);

    /* A good one still reads (the file it names must exist). */
    f = fopen(path, "w");
    fprintf(f, "2 %s 0.5\n", dir);
    fclose(f);
    FILE *null = fopen("/dev/null", "w");
    log_redirect(null, NULL);
    assert_int_equal(bank_read(path, 8, 1, &b), 0);
    assert_string_equal(b.entries[2].path, dir);
    /* The positional gain is the slot's `gain` default. */
    assert_true(b.entries[2].params.play.keys == PLAY_GAIN);
    assert_true(b.entries[2].params.play.gain == 0.5f);
    bank_free(&b);
    log_redirect(NULL, NULL);
    fclose(null);
    unlink(path);
    rmdir(dir);
}

/* params_set() on one key: 0, -ENOENT or -EINVAL. */
static int set1(const char *key, double v, uint32_t outputs)
{
    struct params p = {0};
    return params_set(&p, key, v, outputs);
}

static void test_params_ranges(void **state)
{
    static const struct {
        const char *key;
        double good[4], bad[4];
    } cases[] = {
        {"rate", {1, -1, 16, 1.0 / 16}, {0, 16.001, -17, 0.06}},
        {"begin", {0, 0.5, 1, 0.999}, {-0.001, 1.001, 2, -1}},
        {"end", {0, 0.5, 1, 0.001}, {-0.001, 1.001, 2, -1}},
        {"pan", {-1, 0, 1, 0.25}, {-1.001, 1.001, 2, -2}},
        {"gain", {0, 1, 4, 0.5}, {-0.001, 4.001, 100, -1}},
        {"attack", {0, 0.01, 60, 1}, {-0.001, 60.001, 1e9, -60}},
        {"release", {0, 0.01, 60, 1}, {-0.001, 60.001, 1e9, -60}},
        {"sustain", {0, 0.5, PARAMS_MAX_SUSTAIN, 60}, {-0.001, PARAMS_MAX_SUSTAIN + 1, -1, 1e12}},
        {"accelerate",
         {0, -1, PARAMS_MAX_ACCELERATE, -PARAMS_MAX_ACCELERATE},
         {PARAMS_MAX_ACCELERATE + 0.001, -PARAMS_MAX_ACCELERATE - 0.001, 1e9, -1e9}},
        {"cut", {0, -2, 2, PARAMS_MAX_CUT}, {0.5, -2.5, PARAMS_MAX_CUT + 1, 1e10}},
        {"velocity", {0, 0.5, 1, 0.001}, {-0.001, 1.001, 2, -1}},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        for (int j = 0; j < 4; j++) {
            if (set1(cases[i].key, cases[i].good[j], 1) != 0)
                fail_msg("%s %g refused", cases[i].key, cases[i].good[j]);
            if (set1(cases[i].key, cases[i].bad[j], 1) != -EINVAL)
                fail_msg("%s %g accepted", cases[i].key, cases[i].bad[j]);
        }
        /* No key takes NaN or an infinity. */
        assert_int_equal(set1(cases[i].key, NAN, 1), -EINVAL);
        assert_int_equal(set1(cases[i].key, INFINITY, 1), -EINVAL);
        assert_int_equal(set1(cases[i].key, -INFINITY, 1), -EINVAL);
    }
    /* out: a whole number below the number of output pairs. */
    assert_int_equal(set1("out", 0, 1), 0);
    assert_int_equal(set1("out", 1, 1), -EINVAL);
    assert_int_equal(set1("out", 1, 2), 0);
    assert_int_equal(set1("out", 31, 32), 0);
    assert_int_equal(set1("out", 32, 32), -EINVAL);
    assert_int_equal(set1("out", 0.5, 2), -EINVAL);
    assert_int_equal(set1("out", -1, 2), -EINVAL);
    assert_int_equal(set1("out", NAN, 2), -EINVAL);
    /* Unknown keys, and names are exact. */
    assert_int_equal(set1("pitch", 1, 1), -ENOENT);
    assert_int_equal(set1("Rate", 1, 1), -ENOENT);
    assert_int_equal(set1("", 1, 1), -ENOENT);

    /* A value lands in its field and sets its bit, nothing else. */
    struct params p = {0};
    assert_int_equal(params_set(&p, "cut", -3, 1), 0);
    assert_int_equal(params_set(&p, "rate", -0.5, 1), 0);
    assert_int_equal(p.play.keys, PLAY_CUT | PLAY_RATE);
    assert_int_equal(play_cut(&p.play), -3);
    assert_true(play_rate(&p.play) == -0.5);
    assert_true(play_gain(&p.play) == 1.0f);
    assert_false(p.has_velocity);
}

/* A built OSC message's arguments after `skip` of them, parsed as keys. */
static int parse_msg(lo_message m, int skip, struct params *p, uint32_t outputs,
                     char why[PARAMS_WHY_MAX])
{
    int argc = lo_message_get_argc(m);
    const char *types = lo_message_get_types(m);
    lo_arg **argv = lo_message_get_argv(m);
    return params_parse_osc(p, argc - skip, types + skip, argv + skip, outputs, why);
}

static void test_params_osc(void **state)
{
    char why[PARAMS_WHY_MAX];
    struct params p = {0};

    /* Every number type; the last of a key given twice wins. */
    lo_message m = lo_message_new();
    lo_message_add_string(m, "rate");
    lo_message_add_int32(m, 2);
    lo_message_add_string(m, "pan");
    lo_message_add_float(m, -0.5f);
    lo_message_add_string(m, "begin");
    lo_message_add_double(m, 0.25);
    lo_message_add_string(m, "cut");
    lo_message_add_int64(m, 5);
    lo_message_add_symbol(m, "out");
    lo_message_add_float(m, 1.0f);
    lo_message_add_string(m, "rate");
    lo_message_add_float(m, 0.5f);
    assert_int_equal(parse_msg(m, 0, &p, 2, why), 0);
    assert_int_equal(p.play.keys, PLAY_RATE | PLAY_PAN | PLAY_BEGIN | PLAY_CUT | PLAY_OUT);
    assert_true(p.play.rate == 0.5);
    assert_true(p.play.pan == -0.5f);
    assert_true(p.play.begin == 0.25f);
    assert_int_equal(p.play.cut, 5);
    assert_int_equal(p.play.out, 1);
    /* One output pair: `out 1` is refused, and nothing of the rest lands. */
    struct params q = {0};
    assert_int_equal(parse_msg(m, 0, &q, 1, why), -EINVAL);
    assert_string_equal(why, "bad value for out");
    assert_int_equal(q.play.keys, 0);
    lo_message_free(m);

    static const struct {
        const char *types; /* s: a key name, f/i: a number, b: a blob */
        const char *names[4];
        double values[4];
        const char *why;
    } bad[] = {
        {"sf", {"pitch"}, {0, 1}, "unknown key"},
        {"s", {"rate"}, {0}, "missing value for rate"},
        {"sfs", {"rate", NULL, "pan"}, {0, 2}, "missing value for pan"},
        {"sf", {"rate"}, {0, 0}, "bad value for rate"},
        {"sf", {"pan"}, {0, NAN}, "bad value for pan"},
        {"sf", {"gain"}, {0, INFINITY}, "bad value for gain"},
        {"sf", {"cut"}, {0, 1.5}, "bad value for cut"},
        {"ss", {"gain", "loud"}, {0}, "bad value for gain"},
        {"fi", {NULL}, {1, 2}, "a key must be a string"},
        {"sfif", {"gain", NULL}, {1, 2, 3}, "a key must be a string"},
        {"bf", {NULL}, {0, 1}, "a key must be a string"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        m = lo_message_new();
        for (int j = 0; bad[i].types[j]; j++) {
            char t = bad[i].types[j];
            if (t == 's')
                lo_message_add_string(m, bad[i].names[j]);
            else if (t == 'f')
                lo_message_add_float(m, (float)bad[i].values[j]);
            else if (t == 'i')
                lo_message_add_int32(m, (int32_t)bad[i].values[j]);
            else {
                lo_blob b = lo_blob_new(3, "abc");
                lo_message_add_blob(m, b);
                lo_blob_free(b);
            }
        }
        struct params r = {0};
        if (parse_msg(m, 0, &r, 1, why) != -EINVAL)
            fail_msg("case %zu accepted", i);
        assert_string_equal(why, bad[i].why);
        assert_int_equal(r.play.keys, 0);
        lo_message_free(m);
    }
    /* No arguments: nothing given, fine. */
    struct params none = {0};
    assert_int_equal(params_parse_osc(&none, 0, "", NULL, 1, why), 0);
    assert_int_equal(none.play.keys, 0);
}

static void test_params_text(void **state)
{
    char why[PARAMS_WHY_MAX];
    struct params p = {0};
    assert_int_equal(params_parse_text(&p, "rate=-2", 1, why), 0);
    assert_int_equal(params_parse_text(&p, "cut=4", 1, why), 0);
    assert_int_equal(params_parse_text(&p, "velocity=0.25", 1, why), 0);
    assert_int_equal(params_parse_text(&p, "cut=-4", 1, why), 0); /* last wins */
    assert_true(p.play.rate == -2.0);
    assert_int_equal(p.play.cut, -4);
    assert_true(p.has_velocity && p.velocity == 0.25f);

    static const struct {
        const char *token, *why;
    } bad[] = {
        {"rate=0", "bad value for rate"},
        {"rate=", "bad value for rate"},
        {"rate=2x", "bad value for rate"},
        {"pan=nan", "bad value for pan"},
        {"gain=inf", "bad value for gain"},
        {"cut=1.5", "bad value for cut"},
        {"out=1", "bad value for out"},
        {"attack=1e999", "bad value for attack"},
        {"pitch=1", "unknown key"},
        {"=1", "expected key=value"},
        {"averyveryverylongkey=1", "unknown key"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct params r = {0};
        if (params_parse_text(&r, bad[i].token, 1, why) != -EINVAL)
            fail_msg("%s accepted", bad[i].token);
        assert_string_equal(why, bad[i].why);
        assert_int_equal(r.play.keys, 0);
    }
}

static void test_params_merge_and_pads(void **state)
{
    char why[PARAMS_WHY_MAX];
    struct params def = {0}, trig = {0}, m;
    params_set(&def, "gain", 0.5, 1);
    params_set(&def, "cut", 1, 1);
    params_set(&def, "velocity", 0.75, 1);
    params_set(&trig, "gain", 2, 1);
    params_set(&trig, "pan", 1, 1);
    params_merge(&m, &def, &trig);
    assert_int_equal(m.play.keys, PLAY_GAIN | PLAY_CUT | PLAY_PAN);
    assert_true(m.play.gain == 2.0f); /* the trigger's key wins */
    assert_int_equal(m.play.cut, 1);  /* the default stays */
    assert_true(m.play.pan == 1.0f);
    assert_true(m.has_velocity && m.velocity == 0.75f);

    /* begin < end, on what is merged. */
    struct params b = {0}, e = {0};
    params_set(&b, "begin", 0.5, 1);
    assert_int_equal(params_check(&b, why), 0);
    params_set(&e, "end", 0.5, 1);
    params_merge(&m, &b, &e);
    assert_int_equal(params_check(&m, why), -EINVAL);
    assert_string_equal(why, "begin must be less than end");
    params_set(&b, "begin", 1, 1);
    assert_int_equal(params_check(&b, why), -EINVAL);

    /* /get's listing: in the table's order, cut and out whole. */
    unsigned i = 0;
    const char *name;
    double v;
    bool whole;
    const char *want[] = {"velocity", "gain", "cut"};
    for (int k = 0; k < 3; k++) {
        assert_true(params_next(&def, &i, &name, &v, &whole));
        assert_string_equal(name, want[k]);
        assert_int_equal(whole, k == 2);
    }
    assert_false(params_next(&def, &i, &name, &v, &whole));

    /* The table: /set is all or nothing, clear empties. */
    struct pads t;
    assert_int_equal(pads_init(&t, 4), 0);
    assert_int_equal(pads_update(&t, 3, &def, 10, why), 0);
    struct params got;
    pads_get(&t, 3, &got);
    assert_int_equal(got.play.keys, PLAY_GAIN | PLAY_CUT);
    struct params bad = {0};
    params_set(&bad, "gain", 1, 1);
    params_set(&bad, "end", 0, 1); /* begin 0 < end 0 fails */
    assert_int_equal(pads_update(&t, 3, &bad, 11, why), -EINVAL);
    pads_get(&t, 3, &got);
    assert_true(got.play.gain == 0.5f);
    assert_int_equal(got.play.keys, PLAY_GAIN | PLAY_CUT);
    pads_get(&t, 2, &got);
    assert_int_equal(got.play.keys, 0);
    /* An unload requested before the last change leaves it; a later one
     * clears it. */
    pads_unloaded(&t, 3, 9);
    pads_get(&t, 3, &got);
    assert_int_equal(got.play.keys, PLAY_GAIN | PLAY_CUT);
    pads_unloaded(&t, 3, 12);
    pads_get(&t, 3, &got);
    assert_int_equal(got.play.keys, 0);
    assert_false(got.has_velocity);
    assert_int_equal(pads_update(&t, 3, &def, 13, why), 0);
    pads_put(&t, 3, &(struct params){0}, 14);
    pads_get(&t, 3, &got);
    assert_int_equal(got.play.keys, 0);
    pads_destroy(&t);
}

static void test_bank_keys(void **state)
{
    char dir[] = "/tmp/test_control_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/bank", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "0 %s 0.5 gain=2\n", dir);           /* last wins: 2 */
    fprintf(f, "1 %s rate=-1 cut=-2 out=1\n", dir); /* out 1 of 2 pairs */
    fprintf(f, "2 %s gain=0.25 pan=-1\n", dir);
    fprintf(f, "3 %s pitch=2\n", dir);           /* bad: unknown key */
    fprintf(f, "4 %s 0.5 loud\n", dir);          /* bad: not key=value */
    fprintf(f, "5 %s begin=0.6 end=0.5\n", dir); /* bad: begin >= end */
    fprintf(f, "6 %s cut=0.5\n", dir);           /* bad: not whole */
    fprintf(f, "7 %s 5\n", dir);                 /* bad: gain > 4 */
    fclose(f);
    FILE *null = fopen("/dev/null", "w");
    log_redirect(null, NULL);
    struct bank b;
    assert_int_equal(bank_read(path, 8, 2, &b), 5);
    assert_true(b.entries[0].params.play.gain == 2.0f);
    assert_int_equal(b.entries[1].params.play.keys, PLAY_RATE | PLAY_CUT | PLAY_OUT);
    assert_int_equal(b.entries[1].params.play.cut, -2);
    assert_int_equal(b.entries[1].params.play.out, 1);
    assert_true(b.entries[2].params.play.pan == -1.0f);
    for (int id = 3; id < 8; id++)
        assert_null(b.entries[id].path);
    struct bank c;
    /* One output pair: line 1 is bad now. */
    assert_int_equal(bank_read(path, 8, 1, &c), 6);
    assert_null(c.entries[1].path);
    /* The keys and gain alone never ask for a reload. */
    assert_false(bank_changed(&b, &c, 0));
    c.entries[0].params.play.gain = 1;
    assert_false(bank_changed(&b, &c, 0));
    bank_free(&b);
    bank_free(&c);
    log_redirect(NULL, NULL);
    fclose(null);
    unlink(path);
    rmdir(dir);
}

/* The musical keys (issue 17): quant >= 0, beats > 0, fit 0 or 1, as bank
 * text and through /get's listing, and merged over a slot's defaults. */
static void test_params_musical_keys(void **state)
{
    (void)state;
    char why[PARAMS_WHY_MAX];
    struct params p = {0};
    assert_int_equal(params_parse_text(&p, "quant=0.5", 1, why), 0);
    assert_int_equal(params_parse_text(&p, "beats=8", 1, why), 0);
    assert_int_equal(params_parse_text(&p, "fit=1", 1, why), 0);
    assert_true(play_quant(&p.play) == 0.5 && play_beats(&p.play) == 8 && play_fit(&p.play));
    static const struct {
        const char *token, *why;
    } bad[] = {
        {"quant=-1", "bad value for quant"}, {"beats=0", "bad value for beats"},
        {"beats=-2", "bad value for beats"}, {"fit=2", "bad value for fit"},
        {"fit=0.5", "bad value for fit"},    {"quant=nan", "bad value for quant"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct params r = {0};
        if (params_parse_text(&r, bad[i].token, 1, why) != -EINVAL)
            fail_msg("%s accepted", bad[i].token);
        assert_string_equal(why, bad[i].why);
    }
    struct params over = {0}, m;
    assert_int_equal(params_parse_text(&over, "quant=0", 1, why), 0);
    params_merge(&m, &p, &over);
    assert_true(play_quant(&m.play) == 0 && play_beats(&m.play) == 8);
    unsigned i = 0;
    const char *name;
    double v;
    bool whole;
    int seen = 0;
    while (params_next(&m, &i, &name, &v, &whole)) {
        if (strcmp(name, "quant") == 0)
            seen += v == 0 && !whole;
        else if (strcmp(name, "beats") == 0)
            seen += v == 8 && !whole;
        else if (strcmp(name, "fit") == 0)
            seen += v == 1 && whole;
    }
    assert_int_equal(seen, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_log_line_cannot_be_forged),
        cmocka_unit_test(test_rate_limit),
        cmocka_unit_test(test_allow_mapped),
        cmocka_unit_test(test_bank_refuses),
        cmocka_unit_test(test_params_ranges),
        cmocka_unit_test(test_params_osc),
        cmocka_unit_test(test_params_text),
        cmocka_unit_test(test_params_musical_keys),
        cmocka_unit_test(test_params_merge_and_pads),
        cmocka_unit_test(test_bank_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
