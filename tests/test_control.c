/* test_control.c - the control side's pure parts: log escaping and rate
 * limiting (with a test clock), --allow matching of IPv4-mapped sources, and
 * what bank_read() refuses (without blocking on a FIFO). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bank.h"
#include "log.h"
#include "osc.h"

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
    assert_int_equal(bank_read(path, 8, &b), -ENOENT);
    assert_null(b.entries);
    assert_int_equal(bank_read(dir, 8, &b), -EISDIR);
    assert_string_equal(bank_strerror(-EISDIR), "is a directory");
    /* A FIFO without a writer would block open() and read() forever. */
    snprintf(path, sizeof(path), "%s/fifo", dir);
    assert_int_equal(mkfifo(path, 0600), 0);
    assert_int_equal(bank_read(path, 8, &b), -ENODEV);
    assert_int_equal(bank_check(path), -ENODEV);
    unlink(path);
    assert_int_equal(bank_read("/dev/zero", 8, &b), -ENODEV);
    assert_int_equal(bank_read("/dev/null", 8, &b), -ENODEV);

    snprintf(path, sizeof(path), "%s/big", dir);
    FILE *f = fopen(path, "w");
    for (int i = 0; i <= BANK_MAX_BYTES / 8; i++)
        fputs("# 4567\n\n", f);
    fclose(f);
    assert_int_equal(bank_read(path, 8, &b), -EFBIG);
    assert_int_equal(bank_check(path), -EFBIG);

    /* Exactly the limit, and an empty file, are fine. */
    assert_int_equal(truncate(path, BANK_MAX_BYTES), 0);
    assert_int_equal(bank_read(path, 8, &b), 0);
    bank_free(&b);
    assert_int_equal(truncate(path, 0), 0);
    assert_int_equal(bank_read(path, 8, &b), 0);
    bank_free(&b);

    /* A good one still reads (the file it names must exist). */
    f = fopen(path, "w");
    fprintf(f, "2 %s 0.5\n", dir);
    fclose(f);
    FILE *null = fopen("/dev/null", "w");
    log_redirect(null, NULL);
    assert_int_equal(bank_read(path, 8, &b), 0);
    assert_string_equal(b.entries[2].path, dir);
    assert_true(b.entries[2].gain == 0.5f);
    bank_free(&b);
    log_redirect(NULL, NULL);
    fclose(null);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape),       cmocka_unit_test(test_log_line_cannot_be_forged),
        cmocka_unit_test(test_rate_limit),   cmocka_unit_test(test_allow_mapped),
        cmocka_unit_test(test_bank_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
