/* test_ring.c - the SPSC ring: edges on one thread, then two real threads
 * passing ten million sequence numbers, none lost, none reordered. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <pthread.h>

#include "ring.h"

static void test_init_rejects_bad_capacity(void **state)
{
    struct ring r;
    assert_int_equal(ring_init(&r, 0, 4), -EINVAL);
    assert_int_equal(ring_init(&r, 1, 4), -EINVAL);
    assert_int_equal(ring_init(&r, 6, 4), -EINVAL);
    assert_int_equal(ring_init(&r, 8, 0), -EINVAL);
    assert_int_equal(ring_init(&r, 8, 4), 0);
    assert_int_equal(ring_capacity(&r), 8);
    ring_destroy(&r);
    assert_int_equal(ring_pow2(1), 1);
    assert_int_equal(ring_pow2(5), 8);
    assert_int_equal(ring_pow2(64), 64);
    assert_int_equal(ring_pow2(65), 128);
}

static void test_empty_and_full(void **state)
{
    struct ring r;
    uint64_t v;
    assert_int_equal(ring_init(&r, 4, sizeof(uint64_t)), 0);
    assert_false(ring_pop(&r, &v));
    for (uint64_t i = 0; i < 4; i++) {
        assert_true(ring_push(&r, &i));
        assert_int_equal(ring_count(&r), i + 1);
    }
    uint64_t extra = 99;
    assert_false(ring_push(&r, &extra)); /* full: refused, nothing overwritten */
    for (uint64_t i = 0; i < 4; i++) {
        assert_true(ring_pop(&r, &v));
        assert_int_equal(v, i);
    }
    assert_false(ring_pop(&r, &v));
    assert_int_equal(ring_count(&r), 0);
    ring_destroy(&r);
}

/* Odd-sized elements across many wraps of the index, with the counters
 * started near UINT32_MAX so the free-running counters wrap too. */
struct odd {
    uint32_t seq;
    unsigned char pad[9];
};

static void test_wrap_around(void **state)
{
    struct ring r;
    assert_int_equal(ring_init(&r, 8, sizeof(struct odd)), 0);
    atomic_store(&r.head, UINT32_MAX - 20);
    atomic_store(&r.tail, UINT32_MAX - 20);
    uint32_t next_in = 0, next_out = 0;
    for (int round = 0; round < 1000; round++) {
        int burst = 1 + round % 8;
        for (int i = 0; i < burst; i++) {
            struct odd o = {.seq = next_in};
            for (int k = 0; k < 9; k++)
                o.pad[k] = (unsigned char)(next_in + k);
            assert_true(ring_push(&r, &o));
            next_in++;
        }
        for (int i = 0; i < burst; i++) {
            struct odd o;
            assert_true(ring_pop(&r, &o));
            assert_int_equal(o.seq, next_out);
            for (int k = 0; k < 9; k++)
                assert_int_equal(o.pad[k], (unsigned char)(next_out + k));
            next_out++;
        }
    }
    assert_int_equal(ring_count(&r), 0);
    ring_destroy(&r);
}

#define THREAD_COUNT 10000000ull

static void *producer(void *arg)
{
    struct ring *r = arg;
    for (uint64_t i = 0; i < THREAD_COUNT;) {
        if (ring_push(r, &i))
            i++;
    }
    return NULL;
}

static void test_two_threads_ten_million(void **state)
{
    struct ring r;
    pthread_t t;
    assert_int_equal(ring_init(&r, 256, sizeof(uint64_t)), 0);
    assert_int_equal(pthread_create(&t, NULL, producer, &r), 0);
    uint64_t expect = 0, v, bad = 0;
    while (expect < THREAD_COUNT) {
        if (ring_pop(&r, &v)) {
            if (v != expect)
                bad++;
            expect++;
        }
    }
    pthread_join(t, NULL);
    assert_int_equal(bad, 0);
    assert_false(ring_pop(&r, &v));
    ring_destroy(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_rejects_bad_capacity),
        cmocka_unit_test(test_empty_and_full),
        cmocka_unit_test(test_wrap_around),
        cmocka_unit_test(test_two_threads_ten_million),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
