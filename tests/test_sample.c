/* test_sample.c - sample buffers: the spare mappings kept for reloads
 * (common/sample.c).  The daemon relies on three things: a reload of the
 * same size gets the freed mapping back, populated; what is kept stays
 * within the limits (bytes, count) and goes back oldest first; and buffers
 * below a huge page, or with spares off, are never kept.  And freeing a
 * heap buffer leaves its neighbours' pages locked. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "sample_alloc.h"

#define MIB ((size_t)1 << 20)

/* A 16-bit stereo buffer of about `mib` MiB (4 bytes a frame), every frame
 * written as the loader would. */
static struct sample_buffer *buffer_mib(double mib)
{
    uint32_t frames = (uint32_t)(mib * (double)MIB / 4.0);
    struct sample_buffer *b = sample_buffer_new_format(frames, 2, 48000, SAMPLE_S16);
    assert_non_null(b);
    memset(sample_buffer_s16(b), 0x5a, (size_t)frames * 4);
    return b;
}

static int teardown(void **state)
{
    (void)state;
    sample_spares_limit(0);
    return 0;
}

static void test_off_by_default(void **state)
{
    (void)state;
    struct sample_buffer *b = buffer_mib(3);
    sample_buffer_free(b);
    assert_int_equal(sample_spares_bytes(), 0);
}

/* The same size again: the same mapping, every page already resident, the
 * header rewritten for the new buffer. */
static void test_same_size(void **state)
{
    (void)state;
    sample_spares_limit(64 * MIB);
    struct sample_buffer *a = buffer_mib(3);
    void *where = a;
    size_t bytes = a->bytes;
    uint32_t frames = a->frames;
    sample_buffer_free(a);
    assert_int_equal(sample_spares_bytes(), bytes);

    struct sample_buffer *b = sample_buffer_new_format(frames / 2, 2, 44100, SAMPLE_F32);
    assert_ptr_equal(b, where);
    assert_int_equal(b->bytes, bytes);
    assert_int_equal(b->frames, frames / 2);
    assert_int_equal(b->format, SAMPLE_F32);
    assert_int_equal(b->rate, 44100);
    assert_ptr_equal(b->ch[0], b->data);
    assert_ptr_equal(b->ch[1], b->data + frames / 2);
    assert_null(b->s16);
    assert_int_equal(sample_spares_bytes(), 0);

    long page = sysconf(_SC_PAGESIZE);
    size_t npages = (bytes + (size_t)page - 1) / (size_t)page;
    unsigned char *vec = malloc(npages);
    assert_non_null(vec);
    assert_int_equal(mincore(b, bytes, vec), 0);
    for (size_t i = 0; i < npages; i++)
        assert_true(vec[i] & 1);
    free(vec);
    sample_buffer_free(b);
}

/* A spare serves a buffer that needs at least three quarters of it, the
 * smallest that fits first; a smaller one gets a mapping of its own. */
static void test_fit(void **state)
{
    (void)state;
    sample_spares_limit(64 * MIB);
    struct sample_buffer *big = buffer_mib(8), *mid = buffer_mib(5);
    void *big_at = big, *mid_at = mid;
    size_t big_bytes = big->bytes, mid_bytes = mid->bytes;
    sample_buffer_free(big);
    sample_buffer_free(mid);
    assert_int_equal(sample_spares_bytes(), big_bytes + mid_bytes);

    struct sample_buffer *small = buffer_mib(3); /* under 3/4 of either */
    assert_ptr_not_equal(small, big_at);
    assert_ptr_not_equal(small, mid_at);
    assert_int_equal(sample_spares_bytes(), big_bytes + mid_bytes);

    struct sample_buffer *four = buffer_mib(4.5); /* fits both: the 5 MiB one */
    assert_ptr_equal(four, mid_at);
    assert_int_equal(four->bytes, mid_bytes);
    struct sample_buffer *seven = buffer_mib(7); /* the 8 MiB one */
    assert_ptr_equal(seven, big_at);
    assert_int_equal(sample_spares_bytes(), 0);

    sample_buffer_free(small);
    sample_buffer_free(four);
    sample_buffer_free(seven);
}

/* Within the byte limit and the count, the oldest given back first. */
static void test_bounds(void **state)
{
    (void)state;
    sample_spares_limit(10 * MIB);
    struct sample_buffer *b[6];
    for (int i = 0; i < 3; i++)
        b[i] = buffer_mib(4);
    size_t one = b[0]->bytes;
    void *second = b[1], *third = b[2];
    for (int i = 0; i < 3; i++)
        sample_buffer_free(b[i]);
    assert_int_equal(sample_spares_bytes(), 2 * one); /* 12 MiB > 10: the first went */
    struct sample_buffer *x = buffer_mib(4), *y = buffer_mib(4);
    assert_true((x == second && y == third) || (x == third && y == second));
    sample_buffer_free(x);
    sample_buffer_free(y);

    /* Larger than the limit: not kept. */
    struct sample_buffer *huge = buffer_mib(12);
    sample_buffer_free(huge);
    assert_int_equal(sample_spares_bytes(), 2 * one);

    /* At most four, whatever the bytes. */
    sample_spares_limit(64 * MIB);
    for (int i = 0; i < 6; i++)
        b[i] = buffer_mib(2.5);
    size_t each = b[0]->bytes;
    for (int i = 0; i < 6; i++)
        sample_buffer_free(b[i]);
    assert_int_equal(sample_spares_bytes(), 4 * each);

    /* A lower limit gives back what no longer fits. */
    sample_spares_limit(2 * each);
    assert_int_equal(sample_spares_bytes(), 2 * each);
    sample_spares_limit(0);
    assert_int_equal(sample_spares_bytes(), 0);
}

static void test_trim(void **state)
{
    (void)state;
    sample_spares_limit(64 * MIB);
    struct sample_buffer *a = buffer_mib(3);
    size_t bytes = a->bytes;
    sample_buffer_free(a);
    assert_int_equal(sample_spares_trim(3600ull * 1000000000ull), bytes); /* young: kept */
    assert_int_equal(sample_spares_bytes(), bytes);
    usleep(20000);
    assert_int_equal(sample_spares_trim(10000000ull), 0); /* older than 10 ms: given back */
    assert_int_equal(sample_spares_bytes(), 0);
}

/* Buffers under a huge page come from the heap and are never kept. */
static void test_heap_buffers_not_kept(void **state)
{
    (void)state;
    sample_spares_limit(64 * MIB);
    struct sample_buffer *a = buffer_mib(1.5);
    sample_buffer_free(a);
    assert_int_equal(sample_spares_bytes(), 0);
}

/* VmLck of this process, in kB (what mlock has locked). */
static long locked_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    assert_non_null(f);
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmLck: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

/* Freeing a small (heap) buffer must not unlock the pages it shares with
 * its neighbours: munlock works on whole pages, and the neighbour may be a
 * buffer that is playing. */
static void test_heap_free_keeps_neighbours_locked(void **state)
{
    (void)state;
    struct sample_buffer *a = NULL, *b = NULL;
    /* Two small buffers on one page (the heap hands them out in a row). */
    for (int i = 0; i < 64; i++) {
        a = sample_buffer_new_format(16, 1, 48000, SAMPLE_S16);
        b = sample_buffer_new_format(16, 1, 48000, SAMPLE_S16);
        assert_non_null(a);
        assert_non_null(b);
        if ((uintptr_t)a / 4096 == (uintptr_t)b / 4096)
            break;
        sample_buffer_free(a);
        sample_buffer_free(b);
        a = b = NULL;
    }
    assert_non_null(a);
    long before = locked_kb();
    sample_buffer_prefault(a);
    sample_buffer_prefault(b);
    long locked = locked_kb();
    assert_true(locked > before); /* the page is locked now */
    sample_buffer_free(a);
    assert_int_equal(locked_kb(), locked); /* b's page still locked */
    sample_buffer_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_off_by_default, teardown),
        cmocka_unit_test_teardown(test_same_size, teardown),
        cmocka_unit_test_teardown(test_fit, teardown),
        cmocka_unit_test_teardown(test_bounds, teardown),
        cmocka_unit_test_teardown(test_trim, teardown),
        cmocka_unit_test_teardown(test_heap_buffers_not_kept, teardown),
        cmocka_unit_test_teardown(test_heap_free_keeps_neighbours_locked, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
