/* test_ring.c - the SPSC ring: edges on one thread, then two real threads
 * passing ten million sequence numbers, none lost, none reordered, and the
 * snapshot that orders one ring's elements after another's. */
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

static void test_readable_is_a_snapshot(void **state)
{
    struct ring r;
    uint64_t v;
    assert_int_equal(ring_init(&r, 4, sizeof(uint64_t)), 0);
    assert_int_equal(ring_readable(&r), 0);
    for (uint64_t i = 0; i < 3; i++)
        assert_true(ring_push(&r, &i));
    uint32_t n = ring_readable(&r);
    assert_int_equal(n, 3);
    uint64_t late = 3;
    assert_true(ring_push(&r, &late)); /* after the snapshot */
    for (uint64_t i = 0; i < n; i++) {
        assert_true(ring_pop(&r, &v));
        assert_int_equal(v, i);
    }
    assert_int_equal(ring_readable(&r), 1); /* the late one waits for the next */
    assert_true(ring_pop(&r, &v));
    assert_int_equal(v, 3);
    assert_int_equal(ring_readable(&r), 0);
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

/* Two rings with one producer and one consumer, as the loader's ring and
 * the command ring meet in engine_process(): the producer pushes i onto
 * `first`, then i onto `second`.  The consumer takes a snapshot of
 * `second`, drains `first`, then pops only the snapshot of `second`: each i
 * it pops must already have come out of `first`.  Popping `second` to empty
 * instead fails this: an i pushed onto both rings between the drain of
 * `first` and the pops of `second` comes out of `second` first. */
#define ORDER_COUNT 1000000ull

struct two_rings {
    struct ring first, second;
};

static void *two_ring_producer(void *arg)
{
    struct two_rings *t = arg;
    for (uint64_t i = 1; i <= ORDER_COUNT; i++) {
        while (!ring_push(&t->first, &i))
            ;
        while (!ring_push(&t->second, &i))
            ;
    }
    return NULL;
}

static void test_snapshot_orders_two_rings(void **state)
{
    struct two_rings t;
    pthread_t th;
    assert_int_equal(ring_init(&t.first, 64, sizeof(uint64_t)), 0);
    assert_int_equal(ring_init(&t.second, 64, sizeof(uint64_t)), 0);
    assert_int_equal(pthread_create(&th, NULL, two_ring_producer, &t), 0);
    uint64_t last_first = 0, last_second = 0, early = 0, v;
    while (last_second < ORDER_COUNT) {
        uint32_t n = ring_readable(&t.second);
        while (ring_pop(&t.first, &v))
            last_first = v;
        for (; n > 0; n--) {
            assert_true(ring_pop(&t.second, &v));
            early += v > last_first;
            last_second = v;
        }
    }
    pthread_join(th, NULL);
    assert_int_equal(early, 0);
    assert_int_equal(last_first, ORDER_COUNT);
    ring_destroy(&t.first);
    ring_destroy(&t.second);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_rejects_bad_capacity),
        cmocka_unit_test(test_empty_and_full),
        cmocka_unit_test(test_readable_is_a_snapshot),
        cmocka_unit_test(test_wrap_around),
        cmocka_unit_test(test_two_threads_ten_million),
        cmocka_unit_test(test_snapshot_orders_two_rings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
