/* test_engine.c - the mixer and the slot/voice bookkeeping, driven exactly as
 * the audio thread drives it (messages in, engine_process, events out), with
 * no JACK server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "sample_alloc.h"
#include "sample_check.h"

#define RATE 48000
#define PERIOD 64
#define PAIRS 2 /* the fixture's engines: pair 0 in l/r, pair 1 in l1/r1 */

struct fixture {
    struct engine e;
    float l[4096], r[4096];
    float l1[4096], r1[4096];
    float *outs[2 * PAIRS];
    uint64_t seq;
    uint64_t now; /* frame count of the next period */
};

static struct fixture *fixture_new(uint32_t nslots, uint32_t nvoices)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f || engine_init(&f->e, nslots, nvoices, PAIRS, RATE) < 0) {
        free(f);
        return NULL;
    }
    f->outs[0] = f->l;
    f->outs[1] = f->r;
    f->outs[2] = f->l1;
    f->outs[3] = f->r1;
    return f;
}

static int setup(void **state)
{
    struct fixture *f = fixture_new(ENGINE_DEFAULT_SLOTS, ENGINE_DEFAULT_VOICES);
    if (!f)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    engine_destroy(&f->e);
    free(f);
    return 0;
}

/* A buffer whose samples are all distinct, so any misplaced frame shows. */
static struct sample_buffer *make_buf(uint32_t frames, uint32_t channels, float base)
{
    struct sample_buffer *b = sample_buffer_new(frames, channels, RATE);
    assert_non_null(b);
    for (uint32_t c = 0; c < channels; c++) {
        float *d = sample_buffer_channel(b, c);
        for (uint32_t i = 0; i < frames; i++)
            d[i] = base + (c ? -1.0f : 1.0f) * (float)(i + 1) / 65536.0f;
    }
    return b;
}

/* A mono buffer of `frames` samples at full level, where a fade or a stop
 * shows as the first sample below 1. */
static struct sample_buffer *make_flat(uint32_t frames)
{
    struct sample_buffer *b = make_buf(frames, 1, 0.0f);
    float *d = sample_buffer_channel(b, 0);
    for (uint32_t i = 0; i < frames; i++)
        d[i] = 1.0f;
    return b;
}

/* Slots holding a buffer. */
static uint32_t slots_loaded(const struct engine *e)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < e->nslots; i++)
        n += e->slots[i].buf != NULL;
    return n;
}

static void load(struct fixture *f, uint32_t id, struct sample_buffer *b, uint64_t seq)
{
    struct ctl_msg m = {.type = CTL_LOAD, .id = id, .buf = b, .seq = seq, .velocity = 1.0f};
    assert_true(engine_publish(&f->e, &m));
}

static void send(struct fixture *f, uint32_t type, uint32_t id, float vel, void *reply)
{
    struct ctl_msg m = {.type = type, .id = id, .velocity = vel, .reply = reply};
    assert_int_equal(engine_send(&f->e, &m, 0), 0);
}

/* JACK's clock for frame f of a steady 48 kHz stream, rounded to the
 * microsecond as JACK rounds it. */
static uint64_t us_of(uint64_t frame)
{
    return (frame * 1000000u + RATE / 2) / RATE;
}

static void run(struct fixture *f, uint32_t n)
{
    struct engine_clock c = {.t0 = us_of(f->now), .t1 = us_of(f->now + n)};
    engine_process(&f->e, f->outs, n, c);
    f->now += n;
}

static void send_at(struct fixture *f, uint32_t type, uint32_t id, float vel, uint64_t frame)
{
    struct ctl_msg m = {
        .type = type, .id = id, .velocity = vel, .flags = CTL_TIMED, .when = us_of(frame)};
    assert_int_equal(engine_send(&f->e, &m, 0), 0);
}

static int count_events(struct fixture *f, uint32_t type)
{
    struct event ev;
    int n = 0;
    while (engine_take_event(&f->e, &ev))
        n += ev.type == type;
    return n;
}

static int count_trash(struct fixture *f, const struct sample_buffer *want)
{
    struct sample_buffer *b;
    int n = 0;
    while ((b = engine_take_trash(&f->e)) != NULL) {
        if (b == want)
            n++;
        sample_buffer_free(b);
    }
    return n;
}

static void test_one_voice_is_sample_times_velocity(void **state)
{
    struct fixture *f = *state;
    struct sample_buffer *b = make_buf(1000, 2, 0.25f);
    load(f, 3, b, 1);
    send(f, CTL_PLAY, 3, 0.5f, NULL);
    for (uint32_t done = 0; done < 1000; done += PERIOD) {
        run(f, PERIOD);
        for (uint32_t i = 0; i < PERIOD && done + i < 1000; i++) {
            assert_true(f->l[i] == b->ch[0][done + i] * 0.5f);
            assert_true(f->r[i] == b->ch[1][done + i] * 0.5f);
        }
    }
    /* A load is answered by the loader, not by the audio thread. */
    assert_int_equal(engine_take_event(&f->e, &(struct event){0}), false);
}

static void test_mono_plays_on_both_outputs(void **state)
{
    struct fixture *f = *state;
    struct sample_buffer *b = make_buf(100, 1, 0.0f);
    load(f, 0, b, 1);
    send(f, CTL_PLAY, 0, 1.0f, NULL);
    run(f, 100);
    for (uint32_t i = 0; i < 100; i++) {
        assert_true(f->l[i] == b->ch[0][i]);
        assert_true(f->r[i] == b->ch[0][i]);
    }
}

static void test_two_voices_sum(void **state)
{
    struct fixture *f = *state;
    struct sample_buffer *a = make_buf(500, 2, 0.1f);
    struct sample_buffer *b = make_buf(300, 1, -0.2f);
    load(f, 0, a, 1);
    load(f, 1, b, 2);
    send(f, CTL_PLAY, 0, 0.75f, NULL);
    send(f, CTL_PLAY, 1, 0.25f, NULL);
    run(f, 400);
    for (uint32_t i = 0; i < 400; i++) {
        float el = 0.0f + a->ch[0][i] * 0.75f;
        float er = 0.0f + a->ch[1][i] * 0.75f;
        if (i < 300) {
            el += b->ch[0][i] * 0.25f;
            er += b->ch[0][i] * 0.25f;
        }
        assert_true(f->l[i] == el);
        assert_true(f->r[i] == er);
    }
}

static void test_voice_ends_at_sample_end(void **state)
{
    struct fixture *f = *state;
    struct sample_buffer *b = make_buf(100, 2, 0.5f);
    load(f, 0, b, 1);
    send(f, CTL_PLAY, 0, 1.0f, NULL);
    run(f, 256);
    assert_true(f->l[99] == b->ch[0][99]);
    for (uint32_t i = 100; i < 256; i++) {
        assert_true(f->l[i] == 0.0f);
        assert_true(f->r[i] == 0.0f);
    }
    assert_int_equal(atomic_load(&f->e.stats.voices_active), 0);
    run(f, 256);
    for (uint32_t i = 0; i < 256; i++)
        assert_true(f->l[i] == 0.0f);
    /* The slot still holds the buffer: it must not have been given back. */
    assert_int_equal(count_trash(f, b), 0);
    assert_ptr_equal(f->e.slots[0].buf, b);
}

static void test_play_empty_slot_is_ignored(void **state)
{
    struct fixture *f = *state;
    send(f, CTL_PLAY, 7, 1.0f, NULL);
    run(f, PERIOD);
    for (uint32_t i = 0; i < PERIOD; i++)
        assert_true(f->l[i] == 0.0f && f->r[i] == 0.0f);
    assert_int_equal(atomic_load(&f->e.stats.voices_active), 0);
}

static void test_polyphony_same_slot_adds_voices(void **state)
{
    struct fixture *f = *state;
    struct sample_buffer *b = make_buf(1000, 1, 0.0f);
    load(f, 0, b, 1);
    send(f, CTL_PLAY, 0, 0.5f, NULL);
    run(f, 10);
    send(f, CTL_PLAY, 0, 0.5f, NULL);
    run(f, 10);
    assert_int_equal(atomic_load(&f->e.stats.voices_active), 2);
    for (uint32_t i = 0; i < 10; i++)
        assert_true(f->l[i] == 0.0f + b->ch[0][10 + i] * 0.5f + b->ch[0][i] * 0.5f);
}

static void test_33rd_voice_steals_the_oldest_with_a_fade(void **state)
{
    struct fixture *f = *state;
    struct sample_buffer *longb = make_buf(48000, 1, 0.0f);
    struct sample_buffer *other = make_buf(48000, 1, 0.5f);
    load(f, 0, longb, 1);
    load(f, 1, other, 2);
    for (int i = 0; i < ENGINE_DEFAULT_VOICES; i++) {
        send(f, CTL_PLAY, 0, 1.0f / 64, NULL);
        run(f, 1); /* distinct start times: voice i started at frame i */
    }
    assert_int_equal(atomic_load(&f->e.stats.voices_active), ENGINE_DEFAULT_VOICES);
    struct voice *oldest = NULL;
    for (uint32_t i = 0; i < f->e.npool; i++)
        if (f->e.voices[i].buf && (!oldest || f->e.voices[i].started < oldest->started))
            oldest = &f->e.voices[i];
    uint32_t oldest_pos = oldest->pos;

    send(f, CTL_PLAY, 1, 1.0f, NULL);
    run(f, 0); /* apply the trigger only */
    /* The oldest voice fades out in its own struct; the new one starts now. */
    assert_ptr_equal(oldest->buf, longb);
    assert_true(oldest->fade_step > 0);
    int on_other = 0;
    float expect = 0.0f;
    for (uint32_t i = 0; i < f->e.npool; i++) {
        const struct voice *v = &f->e.voices[i];
        if (!v->buf)
            continue;
        on_other += v->buf == other;
        float g = v->fade_step > 0 ? fmaxf(v->gain - v->fade_step, 0.0f) : v->gain;
        expect += g * v->buf->ch[0][v->pos];
    }
    assert_int_equal(on_other, 1);
    run(f, 1);
    assert_true(f->l[0] == expect); /* the new voice's first frame is in it */
    assert_int_equal(atomic_load(&f->e.stats.voices_active), ENGINE_DEFAULT_VOICES + 1);
    assert_int_equal(atomic_load(&f->e.stats.voices_stolen), 1);
    run(f, f->e.fade_frames);
    assert_null(oldest->buf); /* faded out and freed its struct */
    assert_true(oldest_pos > 0);
    assert_int_equal(atomic_load(&f->e.stats.voices_active), ENGINE_DEFAULT_VOICES);
}

static void test_loop_wraps_seamlessly(void **state)
{
    struct fixture *f = *state;
    struct sample_buffer *b = make_buf(100, 2, 0.0f);
    load(f, 2, b, 1);
    send(f, CTL_LOOP, 2, 0.5f, NULL);
    run(f, 350);
    for (uint32_t i = 0; i < 350; i++) {
        assert_true(f->l[i] == b->ch[0][i % 100] * 0.5f);
        assert_true(f->r[i] == b->ch[1][i % 100] * 0.5f);
    }
    /* A second /loop restarts it: the old loop voice fades under the new. */
    send(f, CTL_LOOP, 2, 0.5f, NULL);
    run(f, 10);
    assert_int_equal(atomic_load(&f->e.stats.voices_active), 2);
    run(f, f->e.fade_frames);
    assert_int_equal(atomic_load(&f->e.stats.voices_active), 1);
}

static void test_stop_slot_fades_only_that_slot(void **state)
{
    struct fixture *f = *state;
    load(f, 0, make_buf(48000, 1, 0.1f), 1);
    load(f, 1, make_buf(48000, 1, 0.2f), 2);
    send(f, CTL_PLAY, 0, 1.0f, NULL);
    send(f, CTL_LOOP, 1, 1.0f, NULL);
    run(f, 10);
    send(f, CTL_STOP_SLOT, 0, 0, NULL);
    run(f, f->e.fade_frames + 1);
    assert_int_equal(atomic_load(&f->e.stats.voices_active), 1);
    for (uint32_t i = 0; i < f->e.npool; i++)
        if (f->e.voices[i].buf)
            assert_int_equal(f->e.voices[i].slot, 1);
}

static void test_unload_while_playing(void **state)
{
    struct fixture *f = *state;
    struct sample_buffer *b = make_buf(48000, 2, 0.3f);
    int token;
    load(f, 5, b, 1);
    send(f, CTL_LOOP, 5, 1.0f, NULL);
    send(f, CTL_PLAY, 5, 1.0f, NULL);
    run(f, 64);
    struct ctl_msg m = {.type = CTL_UNLOAD, .id = 5, .seq = 3, .reply = (struct reply_ctx *)&token};
    assert_int_equal(engine_send(&f->e, &m, 0), 0);
    run(f, 1);
    assert_null(f->e.slots[5].buf);
    assert_int_equal(slots_loaded(&f->e), 0);
    assert_int_equal(count_trash(f, b), 0); /* voices still fading on it */
    run(f, f->e.fade_frames);
    assert_int_equal(atomic_load(&f->e.stats.voices_active), 0);
    assert_true(f->l[f->e.fade_frames - 1] == 0.0f);
    assert_int_equal(count_trash(f, b), 1); /* memory given back, once */
    struct event ev;
    int unloaded = 0;
    while (engine_take_event(&f->e, &ev))
        if (ev.type == EV_UNLOADED) {
            unloaded++;
            assert_ptr_equal(ev.reply, &token);
        }
    assert_int_equal(unloaded, 1);
    /* A load requested before the unload (seq 2) finishing after it is stale. */
    struct sample_buffer *late = make_buf(10, 1, 0.0f);
    load(f, 5, late, 2);
    run(f, 1);
    assert_null(f->e.slots[5].buf);
    assert_int_equal(count_trash(f, late), 1);
}

/* The loader's own unloads (a bank entry that left) come through the load
 * ring without a reply: they empty the slot and emit no event, so they can
 * never fill the event ring that the replies in flight are bounded by
 * (protocol.h). */
static void test_unload_without_reply_emits_no_event(void **state)
{
    struct fixture *f = *state;
    struct sample_buffer *b = make_buf(100, 1, 0.3f);
    load(f, 4, b, 1);
    run(f, 1);
    for (uint64_t seq = 2; seq < 2 + ENGINE_EVENT_RING + 8; seq++) {
        struct ctl_msg m = {.type = CTL_UNLOAD, .id = 4, .seq = seq};
        assert_true(engine_publish(&f->e, &m));
        run(f, 1);
    }
    assert_null(f->e.slots[4].buf);
    assert_int_equal(count_trash(f, b), 1);
    assert_int_equal(count_events(f, EV_UNLOADED), 0);
    assert_int_equal(atomic_load(&f->e.stats.lost_events), 0);
}

static void test_reload_while_playing(void **state)
{
    struct fixture *f = *state;
    struct sample_buffer *old = make_buf(1000, 1, 0.1f);
    struct sample_buffer *neu = make_buf(1000, 1, -0.3f);
    load(f, 0, old, 1);
    send(f, CTL_PLAY, 0, 1.0f, NULL);
    run(f, 100);
    load(f, 0, neu, 2);
    send(f, CTL_PLAY, 0, 1.0f, NULL);
    run(f, 100);
    /* The first voice goes on on the old buffer, the second plays the new. */
    for (uint32_t i = 0; i < 100; i++)
        assert_true(f->l[i] == 0.0f + old->ch[0][100 + i] + neu->ch[0][i]);
    assert_int_equal(count_trash(f, old), 0); /* still playing: kept */
    run(f, 800);                              /* the old voice ends here */
    assert_int_equal(count_trash(f, old), 1); /* then given back, once */
    run(f, 1000);
    assert_int_equal(count_trash(f, NULL), 0);
    assert_ptr_equal(f->e.slots[0].buf, neu);
}

static void test_reload_idle_slot_frees_old_at_once(void **state)
{
    struct fixture *f = *state;
    struct sample_buffer *old = make_buf(10, 1, 0.1f);
    load(f, 0, old, 1);
    run(f, 1);
    load(f, 0, make_buf(10, 1, 0.2f), 2);
    run(f, 1);
    assert_int_equal(count_trash(f, old), 1);
}

static void test_stale_load_never_overwrites_newer(void **state)
{
    struct fixture *f = *state;
    struct sample_buffer *newer = make_buf(10, 1, 0.1f);
    struct sample_buffer *stale = make_buf(10, 1, 0.2f);
    load(f, 4, newer, 7);
    load(f, 4, stale, 5); /* requested earlier, finished later */
    run(f, 1);
    assert_ptr_equal(f->e.slots[4].buf, newer);
    assert_int_equal(count_trash(f, stale), 1);
    /* Dropped silently: the loader answers loads, and checks the order
     * itself before it publishes. */
    assert_int_equal(engine_take_event(&f->e, &(struct event){0}), false);
    assert_int_equal(slots_loaded(&f->e), 1);
}

/* Why a /done /load may be sent as soon as the buffer is on the load ring:
 * a command pushed after a load was published is never applied before that
 * load, even when it is pushed while the audio thread is between draining
 * the load ring and draining the command ring.  A second thread plays the
 * control side over and over: empty slot 0 (an unload, by command), a run
 * of harmless commands, publish a buffer into slot 0 (load ring), then
 * /play slot 0 (command ring).  Every /play must find the slot full and
 * start a voice.  If engine_process drained the command ring to empty, a
 * /play pushed after its load-ring drain would be applied in the same pass,
 * before its load, and find the slot empty; the filler commands keep the
 * audio thread inside that pass long enough for this to happen thousands
 * of times per run. */
#define RACE_ROUNDS 20000
#define RACE_FILL 32

struct race {
    struct engine *e;
    struct sample_buffer **bufs;
    atomic_bool done;
};

static void send_retry(struct engine *e, const struct ctl_msg *m)
{
    while (engine_send(e, m, 0) != 0)
        ;
}

static void publish_retry(struct engine *e, const struct ctl_msg *m)
{
    while (!engine_publish(e, m))
        ;
}

static void *race_control(void *arg)
{
    struct race *r = arg;
    for (uint32_t i = 0; i < RACE_ROUNDS; i++) {
        uint64_t seq = 2 * (uint64_t)i + 1;
        send_retry(r->e, &(struct ctl_msg){.type = CTL_UNLOAD, .id = 0, .seq = seq});
        for (int k = 0; k < RACE_FILL; k++)
            send_retry(r->e, &(struct ctl_msg){.type = CTL_STOP_SLOT, .id = 1});
        publish_retry(
            r->e,
            &(struct ctl_msg){
                .type = CTL_LOAD, .id = 0, .seq = seq + 1, .buf = r->bufs[i], .velocity = 1.0f});
        send_retry(r->e, &(struct ctl_msg){.type = CTL_PLAY, .id = 0, .velocity = 1.0f});
    }
    atomic_store(&r->done, true);
    return NULL;
}

static void drain_outputs(struct fixture *f)
{
    struct event ev;
    while (engine_take_event(&f->e, &ev))
        ;
    count_trash(f, NULL); /* frees */
}

static void test_command_after_load_sees_it(void **state)
{
    struct fixture *f = *state;
    struct race r = {.e = &f->e, .bufs = calloc(RACE_ROUNDS, sizeof(*r.bufs))};
    assert_non_null(r.bufs);
    for (uint32_t i = 0; i < RACE_ROUNDS; i++)
        r.bufs[i] = make_buf(16, 1, 0.0f);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, race_control, &r), 0);
    while (!atomic_load(&r.done)) {
        run(f, PERIOD);
        drain_outputs(f);
    }
    pthread_join(t, NULL);
    while (engine_cmds_waiting(&f->e) || engine_loads_waiting(&f->e)) {
        run(f, PERIOD);
        drain_outputs(f);
    }
    /* Each /play started a voice: none came before its load. */
    assert_int_equal(f->e.started_counter, RACE_ROUNDS);
    free(r.bufs); /* the buffers themselves went through the trash ring */
}

static void test_ping_round_trip_echoes_reply_and_wakes(void **state)
{
    struct fixture *f = *state;
    int token;
    send(f, CTL_PING, 0, 0, (struct reply_ctx *)&token);
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    assert_false(engine_wait(&f->e, &now));
    run(f, PERIOD);
    assert_true(engine_wait(&f->e, &now));
    struct event ev;
    assert_true(engine_take_event(&f->e, &ev));
    assert_int_equal(ev.type, EV_PONG);
    assert_ptr_equal(ev.reply, &token);
}

static void test_stop_fades_out_every_voice(void **state)
{
    struct fixture *f = *state;
    struct sample_buffer *b = make_flat(48000); /* DC: the ramp itself is what we see */
    load(f, 0, b, 1);
    send(f, CTL_PLAY, 0, 1.0f, NULL);
    send(f, CTL_PLAY, 0, 1.0f, NULL);
    run(f, 100);
    assert_true(f->l[99] == 2.0f);
    send(f, CTL_STOP, 0, 0, NULL);
    run(f, 1024);
    uint32_t fade = f->e.fade_frames;
    float max_step = 0, prev = 2.0f;
    for (uint32_t i = 0; i < 1024; i++) {
        float step = fabsf(f->l[i] - prev);
        if (step > max_step)
            max_step = step;
        prev = f->l[i];
        if (i >= fade)
            assert_true(f->l[i] == 0.0f);
    }
    /* Two voices ramp from 1 to 0 over `fade` frames: no jump above that. */
    assert_true(max_step <= 2.0f / (float)fade * 1.001f);
    assert_true(f->l[fade / 2] > 0.5f && f->l[fade / 2] < 1.5f);
    assert_int_equal(atomic_load(&f->e.stats.voices_active), 0);
    assert_int_equal(count_events(f, EV_STOPPED), 1);
}

static void test_timed_play_starts_on_its_frame(void **state)
{
    struct fixture *f = *state;
    struct sample_buffer *b = make_buf(1000, 1, 0.25f);
    f->now = 3000000000u; /* a server up for 17 hours: times beyond 2^32 us */
    uint64_t start = f->now;
    load(f, 0, b, 1);
    send_at(f, CTL_PLAY, 0, 1.0f, start + 300); /* period 4, offset 44 */
    send_at(f, CTL_PLAY, 0, 0.5f, start + 130); /* out of order: period 2, offset 2 */
    float rec[512];
    for (int p = 0; p < 8; p++) {
        run(f, PERIOD);
        memcpy(rec + p * PERIOD, f->l, sizeof(float) * PERIOD);
    }
    for (uint32_t i = 0; i < 512; i++) {
        float expect = 0.0f;
        if (i >= 130)
            expect += b->ch[0][i - 130] * 0.5f;
        if (i >= 300)
            expect += b->ch[0][i - 300] * 1.0f;
        assert_true(rec[i] == expect);
    }
    assert_int_equal(atomic_load(&f->e.stats.late), 0);
    assert_int_equal(engine_sched_pending(&f->e), 0);
}

static void test_timed_play_in_the_past_is_late_and_immediate(void **state)
{
    struct fixture *f = *state;
    struct sample_buffer *b = make_buf(100, 1, 0.25f);
    f->now = 10000;
    load(f, 0, b, 1);
    send_at(f, CTL_PLAY, 0, 1.0f, 9000);
    run(f, PERIOD);
    assert_true(f->l[0] == b->ch[0][0]);
    assert_int_equal(atomic_load(&f->e.stats.late), 1);
}

/* An untimed /play or /loop more than ENGINE_STALE_US older than the period
 * (a stalled server) is dropped and counted late; a younger one, or a /stop,
 * or one whose arrival is unknown, is applied. */
static void test_stale_untimed_triggers_are_dropped(void **state)
{
    struct fixture *f = *state;
    struct sample_buffer *b = make_buf(100, 1, 0.25f);
    load(f, 0, b, 1);
    const uint64_t now = 50000000;
    struct ctl_msg m = {
        .type = CTL_PLAY, .id = 0, .velocity = 1.0f, .arrived = now - ENGINE_STALE_US - 1};
    assert_int_equal(engine_send(&f->e, &m, 0), 0);
    m.type = CTL_LOOP;
    assert_int_equal(engine_send(&f->e, &m, 0), 0);
    struct engine_clock c = {.t0 = now, .t1 = now + 5333, .now = now};
    engine_process(&f->e, f->outs, PERIOD, c);
    assert_true(f->l[0] == 0.0f);
    assert_int_equal(atomic_load(&f->e.stats.voices_active), 0);
    assert_int_equal(atomic_load(&f->e.stats.late), 2);
    m.type = CTL_PLAY;
    m.arrived = now - ENGINE_STALE_US + 1;
    assert_int_equal(engine_send(&f->e, &m, 0), 0);
    m.arrived = 0;
    assert_int_equal(engine_send(&f->e, &m, 0), 0);
    engine_process(&f->e, f->outs, PERIOD, c);
    assert_true(f->l[0] == 2 * b->ch[0][0]);
    assert_int_equal(atomic_load(&f->e.stats.late), 2);
}

static void test_timed_stop_fades_from_its_frame(void **state)
{
    struct fixture *f = *state;
    struct sample_buffer *b = make_flat(48000);
    load(f, 0, b, 1);
    send(f, CTL_PLAY, 0, 1.0f, NULL);
    run(f, PERIOD);
    send_at(f, CTL_STOP_SLOT, 0, 0, f->now + 100); /* period 2, offset 36 */
    float rec[3 * PERIOD];
    for (int p = 0; p < 3; p++) {
        run(f, PERIOD);
        memcpy(rec + p * PERIOD, f->l, sizeof(float) * PERIOD);
    }
    for (uint32_t i = 0; i < 100; i++)
        assert_true(rec[i] == 1.0f); /* full level up to the stop's frame */
    assert_true(rec[100] < 1.0f);    /* and the ramp starts exactly there */
    assert_true(rec[100] > 0.99f);
}

/* A voice that starts inside a period and is stopped later in the same
 * period: the fade starts on the stop's frame of the period, not that many
 * frames after the voice's own start. */
static void test_timed_stop_of_a_voice_started_in_the_same_period(void **state)
{
    struct fixture *f = *state;
    struct sample_buffer *b = make_flat(48000);
    load(f, 0, b, 1);
    run(f, PERIOD);
    send_at(f, CTL_PLAY, 0, 1.0f, f->now + 10);
    send_at(f, CTL_STOP_SLOT, 0, 0, f->now + 40);
    run(f, PERIOD);
    for (uint32_t i = 0; i < 10; i++)
        assert_true(f->l[i] == 0.0f);
    for (uint32_t i = 10; i < 40; i++)
        assert_true(f->l[i] == 1.0f);
    assert_true(f->l[40] < 1.0f && f->l[40] > 0.99f); /* the ramp starts on frame 40 */
}

static void test_timed_trigger_steals_at_its_frame(void **state)
{
    struct fixture *f = *state;
    struct sample_buffer *b = make_flat(48000);
    load(f, 0, b, 1);
    for (uint32_t i = 0; i < ENGINE_DEFAULT_VOICES; i++)
        send(f, CTL_PLAY, 0, 1.0f / 32, NULL);
    run(f, PERIOD);
    send_at(f, CTL_PLAY, 0, 1.0f / 32, f->now + 40);
    run(f, PERIOD);
    /* 32 voices of 1/32 sum to 1 before and after the 33rd starts at frame
     * 40: the oldest fades from that frame, not from the period's start. */
    for (uint32_t i = 0; i < 40; i++)
        assert_true(fabsf(f->l[i] - 1.0f) < 1e-6f);
    assert_true(f->l[40] > 1.0f + 0.5f / 32); /* new voice in, old still near full */
}

static void test_schedule_is_bounded(void **state)
{
    struct fixture *f = *state;
    load(f, 0, make_buf(10, 1, 0.25f), 1);
    uint32_t n = 0;
    for (;;) {
        struct ctl_msg m = {.type = CTL_PLAY, .flags = CTL_TIMED, .when = us_of(100000 + n / 2)};
        int r = engine_send(&f->e, &m, 0);
        if (r == -ENOSPC)
            break;
        assert_int_equal(r, 0); /* the command ring holds a full schedule */
        n++;
    }
    assert_int_equal(n, ENGINE_SCHED);
    run(f, 1);
    assert_int_equal(engine_scheduled(&f->e), ENGINE_SCHED);
    f->now = 100000;
    run(f, 4096); /* all due in this period */
    assert_int_equal(engine_scheduled(&f->e), 0);
    struct ctl_msg m = {.type = CTL_PLAY, .flags = CTL_TIMED, .when = us_of(200000)};
    assert_int_equal(engine_send(&f->e, &m, 0), 0); /* room again */
}

/* The schedule's boundary as the daemon uses it: with 16 places kept
 * (PROTOCOL_STOP_RESERVE), 4096 timed /play sent before any period are
 * held, the 4097th is refused, the kept places take 16 more (a /stop's),
 * and then nothing timed; untimed requests still get through.  Every one
 * of the 4096 starts on its own frame: one-frame clicks 3 frames apart
 * over 256 periods, sent in reverse order. */
static void test_4096_pending_each_on_its_frame(void **state)
{
    struct fixture *f = *state;
    const uint32_t keep = 16, n = 4096, start = 1000, step = 3;
    assert_int_equal(ENGINE_SCHED - keep, n);
    load(f, 0, make_flat(1), 1);
    run(f, PERIOD);
    for (uint32_t k = n; k-- > 0;) {
        struct ctl_msg m = {.type = CTL_PLAY,
                            .velocity = 1.0f,
                            .flags = CTL_TIMED,
                            .when = us_of(start + step * k)};
        assert_int_equal(engine_send(&f->e, &m, keep), 0);
    }
    struct ctl_msg late = {.type = CTL_PLAY, .flags = CTL_TIMED, .when = us_of(start)};
    assert_int_equal(engine_send(&f->e, &late, keep), -ENOSPC);
    struct ctl_msg stop = {.type = CTL_STOP, .flags = CTL_TIMED, .when = us_of(start + 20000)};
    for (uint32_t k = 0; k < keep; k++)
        assert_int_equal(engine_send(&f->e, &stop, 0), 0);
    assert_int_equal(engine_send(&f->e, &stop, 0), -ENOSPC);
    assert_int_equal(engine_sched_pending(&f->e), ENGINE_SCHED);
    struct ctl_msg untimed = {.type = CTL_PLAY, .id = 1, .velocity = 1.0f};
    assert_int_equal(engine_send(&f->e, &untimed, keep), 0); /* slot 1 is empty: silent */
    /* One period takes them all off the ring into the heap. */
    run(f, PERIOD);
    assert_int_equal(engine_scheduled(&f->e), ENGINE_SCHED);
    assert_int_equal(engine_cmds_waiting(&f->e), 0);
    uint32_t clicks = 0;
    while (f->now < start + step * n + PERIOD) {
        uint64_t first = f->now;
        run(f, PERIOD);
        for (uint32_t i = 0; i < PERIOD; i++) {
            uint64_t frame = first + i;
            bool on = frame >= start && frame < start + step * n && (frame - start) % step == 0;
            assert_true(f->l[i] == (on ? 1.0f : 0.0f));
            clicks += on;
        }
    }
    assert_int_equal(clicks, n);
    assert_int_equal(atomic_load(&f->e.stats.late), 0);
    assert_int_equal(engine_scheduled(&f->e), keep); /* the /stops, not yet due */
    f->now = start + 20000;
    run(f, PERIOD);
    assert_int_equal(engine_sched_pending(&f->e), 0);
    assert_int_equal(count_events(f, EV_STOPPED), keep);
}

static void count_drop(void *ctx, struct reply_ctx *reply)
{
    (void)reply;
    (*(int *)ctx)++;
}

/* At shutdown what still waits is let go: commands, timed requests, loads
 * (their buffers freed) and unloads (which carry no buffer; a library
 * rescan sends them). */
static void test_drain_inputs_at_shutdown(void **state)
{
    struct fixture *f = *state;
    struct sample_buffer *b = make_buf(100, 1, 0.25f);
    assert_true(engine_buffer_reserve(&f->e));
    engine_buffer_charge(&f->e, b);
    load(f, 0, b, 1);
    struct ctl_msg u = {.type = CTL_UNLOAD, .id = 1, .seq = 2};
    assert_true(engine_publish(&f->e, &u));
    send(f, CTL_PLAY, 0, 1.0f, NULL);
    send_at(f, CTL_PLAY, 0, 1.0f, 100000);
    int dropped = 0;
    engine_drain_inputs(&f->e, count_drop, &dropped);
    assert_int_equal(dropped, 4);
    assert_int_equal(engine_loads_waiting(&f->e), 0);
    assert_int_equal(engine_cmds_waiting(&f->e), 0);
    assert_int_equal(atomic_load(&f->e.live_buffers), 0);
}

/* Untimed requests have ENGINE_CMD_UNTIMED places of the command ring (16
 * kept), whatever the timed ones in it; a period gives them back. */
static void test_untimed_places_of_the_ring(void **state)
{
    struct fixture *f = *state;
    const uint32_t keep = 16;
    struct ctl_msg timed = {.type = CTL_PLAY, .flags = CTL_TIMED, .when = us_of(100000)};
    for (uint32_t k = 0; k < 1000; k++)
        assert_int_equal(engine_send(&f->e, &timed, keep), 0);
    struct ctl_msg m = {.type = CTL_PLAY, .velocity = 1.0f};
    for (uint32_t k = 0; k < ENGINE_CMD_UNTIMED - keep; k++)
        assert_int_equal(engine_send(&f->e, &m, keep), 0);
    assert_int_equal(engine_send(&f->e, &m, keep), -EAGAIN);
    struct ctl_msg stop = {.type = CTL_STOP};
    for (uint32_t k = 0; k < keep; k++)
        assert_int_equal(engine_send(&f->e, &stop, 0), 0);
    assert_int_equal(engine_send(&f->e, &stop, 0), -EAGAIN);
    assert_int_equal(engine_send(&f->e, &timed, keep), 0); /* the ring still has room */
    assert_int_equal(engine_cmds_waiting(&f->e), 1001 + ENGINE_CMD_UNTIMED);
    run(f, PERIOD);
    assert_int_equal(engine_cmds_waiting(&f->e), 0);
    assert_int_equal(count_events(f, EV_STOPPED), keep);
    assert_int_equal(engine_send(&f->e, &m, keep), 0);
}

/* ---- 16-bit buffers play exactly as float ones ------------------------- */

/* Two engines, one playing float buffers and the other the same samples
 * stored as 16-bit integers, driven by the same requests: every output
 * sample must be the same float, bit for bit. */
struct twin {
    struct engine e[2]; /* [0] float, [1] 16-bit */
    float l[2][PERIOD], r[2][PERIOD];
    uint32_t rate;
    uint64_t now;
    uint64_t seq;
};

static struct twin *twin_new(uint32_t rate)
{
    struct twin *t = calloc(1, sizeof(*t));
    assert_non_null(t);
    t->rate = rate;
    for (int k = 0; k < 2; k++)
        assert_int_equal(engine_init(&t->e[k], 4, 8, 1, rate), 0);
    return t;
}

static void twin_free(struct twin *t)
{
    for (int k = 0; k < 2; k++)
        engine_destroy(&t->e[k]);
    free(t);
}

/* `x`: frames x channels interleaved integers.  Slot `id` of the float
 * engine gets them as x / 32768 in a SAMPLE_F32 buffer, the other engine's
 * as they are in a SAMPLE_S16 one.  `gain` is the slot's (bank) gain. */
static void twin_load(struct twin *t, uint32_t id, const int16_t *x, uint32_t frames,
                      uint32_t channels, float gain)
{
    struct sample_buffer *f = sample_buffer_new(frames, channels, t->rate);
    struct sample_buffer *s = sample_buffer_new_format(frames, channels, t->rate, SAMPLE_S16);
    assert_non_null(f);
    assert_non_null(s);
    assert_int_equal(f->format, SAMPLE_F32);
    assert_int_equal(s->format, SAMPLE_S16);
    assert_null(s->ch[0]);
    assert_ptr_equal(s->s16, s->data);
    for (uint32_t c = 0; c < channels; c++) {
        float *d = sample_buffer_channel(f, c);
        for (uint32_t i = 0; i < frames; i++)
            d[i] = (float)x[(size_t)i * channels + c] / 32768.0f;
    }
    memcpy(sample_buffer_s16(s), x, (size_t)frames * channels * sizeof(int16_t));
    for (uint32_t c = 0; c < 2; c++)
        for (uint32_t i = 0; i < frames; i += 997)
            assert_true(sample_buffer_value(s, c, i) == sample_buffer_value(f, c, i));
    t->seq++;
    struct sample_buffer *bufs[2] = {f, s};
    for (int k = 0; k < 2; k++) {
        struct ctl_msg m = {
            .type = CTL_LOAD, .id = id, .buf = bufs[k], .seq = t->seq, .velocity = gain};
        assert_true(engine_publish(&t->e[k], &m));
    }
}

static void twin_send(struct twin *t, uint32_t type, uint32_t id, float vel)
{
    for (int k = 0; k < 2; k++) {
        struct ctl_msg m = {.type = type, .id = id, .velocity = vel};
        assert_int_equal(engine_send(&t->e[k], &m, 0), 0);
    }
}

static uint64_t twin_us(const struct twin *t, uint64_t frame)
{
    return (frame * 1000000u + t->rate / 2) / t->rate;
}

/* A request for output frame `frame` (timed, like a bundle's). */
static void twin_send_at(struct twin *t, uint32_t type, uint32_t id, float vel, uint64_t frame)
{
    for (int k = 0; k < 2; k++) {
        struct ctl_msg m = {
            .type = type, .id = id, .velocity = vel, .flags = CTL_TIMED, .when = twin_us(t, frame)};
        assert_int_equal(engine_send(&t->e[k], &m, 0), 0);
    }
}

/* Runs `periods` periods of PERIOD frames in both engines and fails at the
 * first output sample that differs in any bit.  Returns how many of the
 * samples compared were not zero, so a test can tell it compared sound. */
static uint64_t twin_run(struct twin *t, uint32_t periods)
{
    uint64_t sounding = 0;
    for (uint32_t p = 0; p < periods; p++) {
        struct engine_clock c = {.t0 = twin_us(t, t->now), .t1 = twin_us(t, t->now + PERIOD)};
        for (int k = 0; k < 2; k++)
            engine_process(&t->e[k], (float *[]){t->l[k], t->r[k]}, PERIOD, c);
        for (uint32_t i = 0; i < PERIOD; i++) {
            if (memcmp(&t->l[0][i], &t->l[1][i], sizeof(float)) != 0 ||
                memcmp(&t->r[0][i], &t->r[1][i], sizeof(float)) != 0)
                fail_msg("frame %llu: float %a %a, 16-bit %a %a", (unsigned long long)(t->now + i),
                         (double)t->l[0][i], (double)t->r[0][i], (double)t->l[1][i],
                         (double)t->r[1][i]);
            sounding += (t->l[0][i] != 0.0f) + (t->r[0][i] != 0.0f);
        }
        t->now += PERIOD;
    }
    for (int k = 0; k < 2; k++)
        assert_int_equal(atomic_load(&t->e[k].stats.lost_events), 0);
    return sounding;
}

/* Every 16-bit value: channel 0 counts up from -32768, channel 1 visits
 * them in another order (40503 is odd, so i * 40503 mod 2^16 is a
 * permutation).  Frames 65536 and on repeat channel 0 reversed. */
static int16_t *all_values(uint32_t frames, uint32_t channels)
{
    int16_t *x = malloc((size_t)frames * channels * sizeof(int16_t));
    assert_non_null(x);
    for (uint32_t i = 0; i < frames; i++) {
        uint32_t k = i < 65536 ? i : 65535 - i % 65536;
        x[(size_t)i * channels] = (int16_t)((int32_t)k - 32768);
        if (channels == 2)
            x[(size_t)i * channels + 1] = (int16_t)((int32_t)((k * 40503u) & 0xffff) - 32768);
    }
    return x;
}

/* Gains as velocity x the slot's gain: ordinary ones, the bank's largest,
 * and the smallest ones around 2^-111, below which g * 2^-15 is no longer a
 * normal float (the mixer then takes its exact fallback), down to a
 * subnormal and zero. */
static const struct {
    float velocity, slot;
} gains[] = {
    {1.0f, 1.0f},
    {0.5f, 1.0f},
    {0.8f, 1.0f},
    {1.0f / 3.0f, 1.0f},
    {0.70710678f, 0.9f},
    {0.001f, 1.0f},
    {1.0f, 4.0f},
    {0.6f, 3.3f},
    {0x1p-111f, 1.0f},
    {0x1.8p-111f, 1.0f},
    {0x1.fffffep-112f, 1.0f},
    {1e-35f, 1.0f},
    {0x1p-60f, 0x1p-60f},
    {1e-40f, 1.0f},
    {0.0f, 1.0f},
};
#define NGAINS (sizeof(gains) / sizeof(gains[0]))
#define ALL_PERIODS (65536 / PERIOD)

/* Constant gain: all 65536 values, mono and stereo, at every gain. */
static void test_s16_plays_like_f32_at_constant_gain(void **state)
{
    (void)state;
    for (uint32_t ch = 1; ch <= 2; ch++) {
        int16_t *x = all_values(65536, ch);
        for (size_t g = 0; g < NGAINS; g++) {
            struct twin *t = twin_new(RATE);
            twin_load(t, 0, x, 65536, ch, gains[g].slot);
            twin_send(t, CTL_PLAY, 0, gains[g].velocity);
            uint64_t sounding = twin_run(t, ALL_PERIODS + 1);
            if (gains[g].velocity * gains[g].slot >= 0x1p-111f)
                assert_true(sounding >= 2 * 65536 - 4); /* only the zeros are silent */
            twin_free(t);
        }
        free(x);
    }
}

/* Fades: a ramp long enough to cross every value (an engine at 20 MHz has
 * 100000 fade frames), one that ends inside the buffer (1 MHz: 5000), and
 * the real one (240 frames at 48 kHz) starting mid-period at a run of
 * offsets, after a stretch at constant gain. */
static void test_s16_plays_like_f32_in_fades(void **state)
{
    (void)state;
    for (uint32_t ch = 1; ch <= 2; ch++) {
        int16_t *x = all_values(65536, ch);
        for (size_t g = 0; g < NGAINS; g++) {
            static const uint32_t rates[] = {20000000, 1000000};
            for (size_t k = 0; k < 2; k++) {
                struct twin *t = twin_new(rates[k]);
                twin_load(t, 0, x, 65536, ch, gains[g].slot);
                twin_send(t, CTL_PLAY, 0, gains[g].velocity);
                twin_send(t, CTL_STOP_SLOT, 0, 0);
                twin_run(t, ALL_PERIODS + 1);
                twin_free(t);
            }
        }
        for (size_t g = 0; g < NGAINS; g += 3) {
            struct twin *t = twin_new(RATE);
            twin_load(t, 0, x, 65536, ch, gains[g].slot);
            for (uint64_t at = 37; at < 65536 - 300; at += 1001) {
                twin_send_at(t, CTL_PLAY, 0, gains[g].velocity, t->now);
                twin_send_at(t, CTL_STOP_SLOT, 0, 0, t->now + at);
                twin_run(t, (uint32_t)(at / PERIOD) + 6);
            }
            twin_free(t);
        }
        free(x);
    }
}

/* Several voices of both kinds summed, a loop wrapping inside a period,
 * a steal and a fade: the 16-bit engine's voices are added in the same
 * order as the float engine's, so the sums match bit for bit too. */
static void test_s16_voices_mix_like_f32(void **state)
{
    (void)state;
    int16_t *st = all_values(70001, 2);
    int16_t *mo = all_values(1001, 1);
    struct twin *t = twin_new(RATE);
    twin_load(t, 0, st, 70001, 2, 1.0f);
    twin_load(t, 1, mo, 1001, 1, 0.7f);
    twin_load(t, 2, st + 2 * 123, 999, 2, 2.5f);
    twin_send(t, CTL_PLAY, 0, 0.9f);
    twin_send(t, CTL_LOOP, 1, 0.3f);
    twin_send(t, CTL_LOOP, 2, 0.25f);
    assert_true(twin_run(t, 40) > 0);
    twin_send_at(t, CTL_PLAY, 0, 0.45f, t->now + 17);
    for (int i = 0; i < 8; i++) /* past the polyphony of 8: steals */
        twin_send_at(t, CTL_PLAY, 1, 0.1f * (float)(i + 1), t->now + 30 + 3 * (uint64_t)i);
    assert_true(twin_run(t, 200) > 0);
    assert_true(atomic_load(&t->e[1].stats.voices_stolen) > 0);
    twin_send_at(t, CTL_STOP_SLOT, 2, 0, t->now + 50);
    twin_run(t, 100);
    twin_send(t, CTL_STOP, 0, 0);
    twin_run(t, 10);
    assert_int_equal(atomic_load(&t->e[1].stats.voices_active), 0);
    twin_free(t);
    free(st);
    free(mo);
}

/* A 16-bit buffer takes two bytes a sample and keeps its frames
 * interleaved; sample_buffer_value() reads either format. */
static void test_s16_buffer_layout(void **state)
{
    (void)state;
    struct sample_buffer *b = sample_buffer_new_format(1000, 2, RATE, SAMPLE_S16);
    assert_non_null(b);
    assert_int_equal(b->frames, 1000);
    assert_int_equal(b->channels, 2);
    assert_true(b->bytes >= sizeof(*b) + 1000 * 2 * sizeof(int16_t));
    assert_true(b->bytes < sizeof(*b) + 1000 * 2 * sizeof(int16_t) + 64);
    int16_t *x = sample_buffer_s16(b);
    for (uint32_t i = 0; i < 2000; i++)
        x[i] = (int16_t)(i * 31 - 32768);
    assert_true(sample_buffer_value(b, 0, 5) == (float)x[10] / 32768.0f);
    assert_true(sample_buffer_value(b, 1, 5) == (float)x[11] / 32768.0f);
    sample_buffer_free(b);

    b = sample_buffer_new_format(1000, 1, RATE, SAMPLE_S16);
    assert_non_null(b);
    sample_buffer_s16(b)[7] = -32768;
    assert_true(sample_buffer_value(b, 0, 7) == -1.0f);
    assert_true(sample_buffer_value(b, 1, 7) == -1.0f); /* mono: both outputs */
    sample_buffer_free(b);

    /* A buffer of a huge page or more is mapped (sample.c) in either format,
     * and is as long as its samples. */
    b = sample_buffer_new_format(48000 * 30, 2, RATE, SAMPLE_S16);
    assert_non_null(b);
    assert_true(b->bytes >= (size_t)48000 * 30 * 4 && b->bytes < (size_t)48000 * 30 * 4 + 8192);
    sample_buffer_s16(b)[2 * 48000 * 30 - 1] = 1;
    sample_buffer_prefault(b);
    sample_buffer_free(b);

    assert_null(sample_buffer_new_format(10, 2, RATE, 7));
    assert_null(sample_buffer_new_format(0, 2, RATE, SAMPLE_S16));
    assert_null(sample_buffer_new_format(10, 3, RATE, SAMPLE_S16));
}

/* The period walks the bitmap of sounding voices and mixes from each
 * voice's own copy of its buffer's layout (engine.h, struct voice), so
 * both must follow every start and end: random plays, loops, stops,
 * steals, reloads and unloads, in periods of random lengths, checked after
 * each period against the voice structs themselves, and the mix checked
 * against a sum over the voice structs in index order. */
static void test_sounding_bitmap_follows_voices(void **state)
{
    struct fixture *f = *state;
    struct engine *e = &f->e;
    uint32_t x = 12345;
    uint64_t seq = 0;
    for (uint32_t id = 0; id < 4; id++)
        load(f, id, make_buf(300 + 97 * id, 1 + id % 2, 0.01f * (float)id), ++seq);
    run(f, 0);
    for (int step = 0; step < 3000; step++) {
        x = x * 1664525u + 1013904223u;
        uint32_t id = (x >> 8) % 4, what = (x >> 16) % 16;
        if (what < 7)
            send(f, CTL_PLAY, id, 0.5f, NULL);
        else if (what < 9)
            send(f, CTL_LOOP, id, 0.25f, NULL);
        else if (what == 9)
            send(f, CTL_STOP_SLOT, id, 0, NULL);
        else if (what == 10)
            send(f, CTL_STOP, 0, 0, NULL);
        else if (what == 11)
            load(f, id, make_buf(200 + (x >> 20) % 500, 1 + (x >> 24) % 2, 0.1f), ++seq);
        else if (what == 12) {
            struct ctl_msg m = {.type = CTL_UNLOAD, .id = id, .seq = ++seq};
            assert_int_equal(engine_send(e, &m, 0), 0);
        }
        /* Before the period: what it must mix, from the voices as they
         * stand once the requests are applied (a period of 0 frames). */
        run(f, 0);
        uint32_t n = 1 + (x >> 4) % 96;
        float expect[96] = {0};
        for (uint32_t i = 0; i < e->npool; i++) {
            const struct voice *v = &e->voices[i];
            if (!v->buf || v->delay || v->fade_step > 0 || v->pos + n > v->frames)
                continue; /* only the plain case is predicted here */
            for (uint32_t k = 0; k < n; k++)
                expect[k] += v->gain * v->buf->ch[0][v->pos + k];
        }
        bool plain = true;
        for (uint32_t i = 0; i < e->npool; i++) {
            const struct voice *v = &e->voices[i];
            plain &= !v->buf || (!v->delay && !(v->fade_step > 0) && v->pos + n <= v->frames);
        }
        run(f, n);
        if (plain)
            for (uint32_t k = 0; k < n; k++)
                assert_true(f->l[k] == expect[k]);
        uint32_t sounding = 0;
        for (uint32_t i = 0; i < e->npool; i++) {
            const struct voice *v = &e->voices[i];
            bool bit = (e->sounding[i / 64] >> (i % 64)) & 1;
            assert_int_equal(bit, v->buf != NULL);
            if (!v->buf)
                continue;
            sounding++;
            assert_ptr_equal(v->src, v->buf->ch[0]);
            assert_ptr_equal(v->src1, v->buf->ch[1]);
            assert_int_equal(v->frames, v->buf->frames);
            assert_int_equal(v->channels, v->buf->channels);
            assert_int_equal(v->format, v->buf->format);
        }
        for (uint32_t w = (e->npool + 63) / 64; w < ENGINE_VOICE_WORDS; w++)
            assert_true(e->sounding[w] == 0);
        assert_int_equal(atomic_load(&e->stats.voices_active), sounding);
        struct sample_buffer *b;
        while ((b = engine_take_trash(e)) != NULL)
            sample_buffer_free(b);
        count_events(f, EV_STOPPED);
    }
}

/* ---- the voice pool's bookkeeping ------------------------------------- */

/* An engine of other sizes in the same fixture. */
static struct fixture *fixture_of(uint32_t nslots, uint32_t nvoices)
{
    struct fixture *f = fixture_new(nslots, nvoices);
    assert_non_null(f);
    return f;
}

static void fixture_free(struct fixture *f)
{
    engine_destroy(&f->e);
    free(f);
}

static bool playing(const struct voice *v)
{
    return v->buf && !(v->fade_step > 0);
}

static bool fading(const struct voice *v)
{
    return v->buf && v->fade_step > 0;
}

/* A cut group's key, as engine_cut.c documents it. */
static uint64_t key_of(int32_t g, uint32_t slot)
{
    if (g > 0)
        return (uint64_t)g - 1;
    return (uint64_t)1 << 47 | (uint64_t)slot << 31 | ((uint64_t)(-(int64_t)g) - 1);
}

static uint32_t nibble_of(uint64_t key, uint32_t level)
{
    return (uint32_t)(key >> (4 * (ENGINE_CUT_LEVELS - 1 - level))) & (ENGINE_CUT_FAN - 1);
}

/* The nodes below node n (at `level`, the root's 0) on the path of `key`
 * so far: each counts its children; a child of the last level is the head
 * of a list of playing voices of that key, each once.  Returns the nodes
 * reached, n included; `seen` marks them. */
static uint32_t check_cut_node(const struct engine *e, uint16_t n, uint32_t level, uint64_t key,
                               bool *seen)
{
    assert_true(n < e->ncut_nodes);
    assert_false(seen[n]);
    seen[n] = true;
    const struct cut_node *node = &e->cut_nodes[n];
    uint32_t used = 0, reached = 1;
    for (uint32_t k = 0; k < ENGINE_CUT_FAN; k++) {
        uint16_t c = node->child[k];
        if (c == ENGINE_NONE)
            continue;
        used++;
        uint64_t ck = key << 4 | k;
        if (level + 1 < ENGINE_CUT_LEVELS) {
            reached += check_cut_node(e, c, level + 1, ck, seen);
            continue;
        }
        uint32_t prev = ENGINE_NONE, len = 0;
        for (uint32_t i = c; i != ENGINE_NONE; i = e->cuts[i].cnext) {
            const struct cut_links *l = &e->cuts[i];
            assert_true(e->links[i].grouped);
            assert_true(i < e->npool);
            assert_true(playing(&e->voices[i]));
            assert_true(l->cut != 0);
            assert_true(key_of(l->cut, e->voices[i].slot) == ck);
            assert_int_equal(l->cprev, prev);
            assert_int_equal(l->cleaf, n);
            assert_int_equal(l->cchild, k);
            prev = i;
            assert_true(++len <= e->npool);
        }
    }
    if (n != 0)
        assert_true(used > 0); /* an empty node goes back to the pool */
    assert_int_equal(node->used, used);
    return reached;
}

/* The cut groups: every playing voice of a group is on its key's list
 * (check_cut_node checks what the lists hold), no other voice is on one,
 * and the trie's nodes are the reachable ones plus the free ones. */
static void check_cut_books(const struct engine *e)
{
    static bool seen[1 + (ENGINE_CUT_LEVELS - 1) * 2 * ENGINE_MAX_VOICES];
    memset(seen, 0, sizeof(seen));
    uint32_t reached = check_cut_node(e, 0, 0, 0, seen);
    assert_int_equal(reached + e->ncut_free, e->ncut_nodes);
    for (uint32_t k = 0; k < e->ncut_free; k++) {
        assert_true(e->cut_free[k] != 0 && e->cut_free[k] < e->ncut_nodes);
        assert_false(seen[e->cut_free[k]]);
        seen[e->cut_free[k]] = true;
    }
    for (uint32_t i = 0; i < e->npool; i++) {
        const struct cut_links *l = &e->cuts[i];
        if (!playing(&e->voices[i]) || !e->links[i].grouped) {
            assert_int_equal(l->cleaf, ENGINE_NONE);
            assert_int_equal(l->cprev, ENGINE_NONE);
            assert_int_equal(l->cnext, ENGINE_NONE);
            continue;
        }
        /* On a list the trie reaches from its own key's path. */
        uint64_t key = key_of(l->cut, e->voices[i].slot);
        uint16_t n = 0;
        for (uint32_t level = 0; level + 1 < ENGINE_CUT_LEVELS; level++) {
            n = e->cut_nodes[n].child[nibble_of(key, level)];
            assert_int_not_equal(n, ENGINE_NONE);
        }
        assert_int_equal(l->cleaf, n);
        bool found = false;
        for (uint32_t j = e->cut_nodes[n].child[nibble_of(key, ENGINE_CUT_LEVELS - 1)];
             j != ENGINE_NONE; j = e->cuts[j].cnext)
            found |= j == i;
        assert_true(found);
    }
}

/* The bookkeeping against the voice structs themselves (engine.h,
 * voice_links): the list of playing voices holds exactly the playing ones,
 * oldest first; each slot's list exactly that slot's; a slot's loop voice is
 * its one playing loop voice; the heap holds exactly the fading voices, in
 * heap order; every buffer entry counts its slot and its voices; the cut
 * groups' lists and trie hold exactly the playing voices of each group. */
static void check_books(const struct engine *e)
{
    check_cut_books(e);
    uint32_t nplay = 0, nfade = 0;
    for (uint32_t i = 0; i < e->npool; i++) {
        nplay += playing(&e->voices[i]);
        nfade += fading(&e->voices[i]);
    }
    assert_int_equal(e->nplaying, nplay);
    assert_int_equal(e->nfading, nfade);

    uint32_t n = 0, prev = ENGINE_NONE;
    for (uint32_t i = e->oldest; i != ENGINE_NONE; i = e->links[i].next) {
        assert_true(i < e->npool);
        assert_true(playing(&e->voices[i]));
        assert_int_equal(e->links[i].prev, prev);
        if (prev != ENGINE_NONE)
            assert_true(e->voices[prev].started < e->voices[i].started);
        prev = i;
        assert_true(++n <= nplay);
    }
    assert_int_equal(n, nplay);
    assert_int_equal(e->newest, prev);

    uint32_t in_slots = 0;
    for (uint32_t s = 0; s < e->nslots; s++) {
        uint32_t loops = 0, sprev = ENGINE_NONE;
        for (uint32_t i = e->slots[s].playing; i != ENGINE_NONE; i = e->links[i].snext) {
            assert_true(playing(&e->voices[i]));
            assert_int_equal(e->voices[i].slot, s);
            assert_int_equal(e->links[i].sprev, sprev);
            sprev = i;
            loops += e->voices[i].loop;
            assert_true(++in_slots <= nplay);
        }
        assert_true(loops <= 1);
        if (loops)
            assert_true(e->voices[e->slots[s].loop].loop && e->voices[e->slots[s].loop].slot == s);
        assert_int_equal(e->slots[s].loop != ENGINE_NONE, loops);
    }
    assert_int_equal(in_slots, nplay);

    for (uint32_t p = 0; p < e->nfading; p++) {
        uint32_t i = e->fading[p].voice;
        assert_true(fading(&e->voices[i]));
        assert_int_equal(e->links[i].heap, p);
        assert_true(e->fading[p].started == e->voices[i].started);
        if (p > 0)
            assert_true(e->fading[(p - 1) / 2].started <= e->fading[p].started);
    }

    uint32_t used = 0;
    for (uint32_t r = 0; r < e->nrefs; r++) {
        const struct buf_ref *br = &e->refs[r];
        if (!br->count) {
            assert_null(br->buf);
            continue;
        }
        used++;
        uint32_t users = 0;
        for (uint32_t s = 0; s < e->nslots; s++)
            if (e->slots[s].buf == br->buf) {
                assert_int_equal(e->slots[s].ref, r);
                users++;
            }
        for (uint32_t i = 0; i < e->npool; i++)
            if (e->voices[i].buf) {
                assert_int_equal(e->voices[i].buf == br->buf, e->links[i].ref == r);
                users += e->links[i].ref == r;
            }
        assert_int_equal(br->count, users);
    }
    assert_int_equal(used + e->nref_free, e->nrefs);
    for (uint32_t s = 0; s < e->nslots; s++)
        assert_int_equal(e->slots[s].buf == NULL, e->slots[s].ref == ENGINE_NONE);
}

/* The reference: the pool as it was kept before it had any bookkeeping, a
 * walk of every voice struct for each request (the same rules, written the
 * obvious way), run on a copy of the engine's voices and slots. */
#define M_SLOTS 8
#define M_TRASH 4096

struct model {
    uint32_t npool, nvoices, nslots, npairs, fade_frames;
    struct voice v[2 * ENGINE_MAX_VOICES];
    int32_t cut[2 * ENGINE_MAX_VOICES];      /* each voice's cut group */
    uint32_t release[2 * ENGINE_MAX_VOICES]; /* and the frames of its /stop */
    struct sample_buffer *buf[M_SLOTS];
    uint64_t seq[M_SLOTS];
    float gain[M_SLOTS];
    uint64_t started, stolen;
    const struct sample_buffer *trash[M_TRASH];
    uint32_t ntrash;
};

static void model_sync(struct model *m, const struct engine *e)
{
    m->npool = e->npool;
    m->nvoices = e->nvoices;
    m->nslots = e->nslots;
    m->npairs = e->npairs;
    m->fade_frames = e->fade_frames;
    memcpy(m->v, e->voices, e->npool * sizeof(*e->voices));
    for (uint32_t i = 0; i < e->npool; i++) {
        m->cut[i] = e->links[i].grouped ? e->cuts[i].cut : 0;
        m->release[i] = e->links[i].release;
    }
    for (uint32_t s = 0; s < e->nslots; s++) {
        m->buf[s] = e->slots[s].buf;
        m->seq[s] = e->slots[s].seq;
        m->gain[s] = e->slots[s].gain;
    }
    m->started = e->started_counter;
    m->stolen = atomic_load(&e->stats.voices_stolen);
    m->ntrash = 0;
}

static bool model_uses(const struct model *m, const struct sample_buffer *b)
{
    for (uint32_t s = 0; s < m->nslots; s++)
        if (m->buf[s] == b)
            return true;
    for (uint32_t i = 0; i < m->npool; i++)
        if (m->v[i].buf == b)
            return true;
    return false;
}

static void model_discard(struct model *m, const struct sample_buffer *b)
{
    assert_true(m->ntrash < M_TRASH);
    m->trash[m->ntrash++] = b;
}

static void model_end(struct model *m, struct voice *v)
{
    const struct sample_buffer *b = v->buf;
    v->buf = NULL;
    if (!model_uses(m, b))
        model_discard(m, b);
}

/* The model chooses which voices start and fade, and over how many frames,
 * as a walk of the pool would; how a voice's mixer state starts and fades
 * is the mixer's (tests/test_mixer.c), so the model calls it too. */
static void model_fade(struct model *m, struct voice *v, uint32_t delay, uint32_t frames)
{
    if (v->fade_step > 0)
        return;
    if (!mixer_fade_out(v, delay, frames))
        model_end(m, v);
}

static struct voice *model_alloc(struct model *m, uint32_t delay)
{
    struct voice *free_v = NULL, *oldest = NULL, *oldest_fading = NULL;
    uint32_t nplay = 0;
    for (uint32_t i = 0; i < m->npool && !free_v; i++)
        if (!m->v[i].buf)
            free_v = &m->v[i];
    for (uint32_t i = 0; i < m->npool; i++) {
        struct voice *v = &m->v[i];
        if (!v->buf)
            continue;
        if (v->fade_step > 0) {
            if (!oldest_fading || v->started < oldest_fading->started)
                oldest_fading = v;
        } else {
            nplay++;
            if (!oldest || v->started < oldest->started)
                oldest = v;
        }
    }
    if (nplay >= m->nvoices && oldest) {
        model_fade(m, oldest, delay, m->fade_frames);
        m->stolen++;
        if (!oldest->buf && !free_v)
            free_v = oldest;
    }
    if (!free_v) {
        free_v = oldest_fading ? oldest_fading : oldest;
        model_end(m, free_v);
    }
    return free_v;
}

static void model_start(struct model *m, const struct ctl_msg *c, bool loop)
{
    /* The voices of the trigger's cut group, of any slot (> 0) or of its
     * own (< 0). */
    int32_t g = play_cut(&c->play);
    for (uint32_t i = 0; g && i < m->npool; i++) {
        struct voice *v = &m->v[i];
        if (v->buf && !(v->fade_step > 0) && m->cut[i] == g && (g > 0 || v->slot == c->id))
            model_fade(m, v, 0, m->fade_frames);
    }
    struct voice *v = model_alloc(m, 0);
    const struct sample_buffer *b = m->buf[c->id];
    uint32_t i = (uint32_t)(v - m->v);
    mixer_start(v, b, c->velocity * m->gain[c->id], &c->play, loop, 0, RATE, m->fade_frames);
    v->buf = b;
    v->slot = c->id;
    v->out = play_out(&c->play);
    v->started = ++m->started;
    m->cut[i] = g;
    double rel = (double)play_release(&c->play) * RATE;
    m->release[i] = rel > m->fade_frames ? (uint32_t)lround(rel) : m->fade_frames;
}

static void model_apply(struct model *m, const struct ctl_msg *c)
{
    switch (c->type) {
    case CTL_STOP:
        for (uint32_t i = 0; i < m->npool; i++)
            if (m->v[i].buf)
                model_fade(m, &m->v[i], 0, m->release[i]);
        break;
    case CTL_LOAD: {
        if (c->seq < m->seq[c->id]) {
            model_discard(m, c->buf);
            break;
        }
        struct sample_buffer *old = m->buf[c->id];
        m->buf[c->id] = c->buf;
        m->seq[c->id] = c->seq;
        m->gain[c->id] = c->velocity;
        if (old && !model_uses(m, old))
            model_discard(m, old);
        break;
    }
    case CTL_PLAY:
    case CTL_LOOP:
        if (!m->buf[c->id] || play_out(&c->play) >= m->npairs)
            break;
        if (c->type == CTL_LOOP)
            for (uint32_t i = 0; i < m->npool; i++) {
                struct voice *v = &m->v[i];
                if (v->buf && v->loop && v->slot == c->id && !(v->fade_step > 0))
                    model_fade(m, v, 0, m->fade_frames);
            }
        model_start(m, c, c->type == CTL_LOOP);
        break;
    case CTL_STOP_SLOT:
    case CTL_UNLOAD:
        if (c->type == CTL_UNLOAD && c->seq < m->seq[c->id])
            break;
        for (uint32_t i = 0; i < m->npool; i++)
            if (m->v[i].buf && m->v[i].slot == c->id)
                model_fade(m, &m->v[i], 0,
                           c->type == CTL_STOP_SLOT ? m->release[i] : m->fade_frames);
        if (c->type == CTL_UNLOAD) {
            struct sample_buffer *old = m->buf[c->id];
            m->buf[c->id] = NULL;
            m->seq[c->id] = c->seq;
            if (old && !model_uses(m, old))
                model_discard(m, old);
        }
        break;
    default:
        break;
    }
}

/* Pops the engine's trash and checks it holds exactly `want` (in any
 * order), each buffer once; frees them. */
static void expect_trash(struct fixture *f, const struct sample_buffer **want, uint32_t n)
{
    struct sample_buffer *got[M_TRASH];
    uint32_t ngot = 0;
    while (ngot < M_TRASH && (got[ngot] = engine_take_trash(&f->e)) != NULL)
        ngot++;
    assert_int_equal(ngot, n);
    for (uint32_t k = 0; k < ngot; k++) {
        uint32_t same = 0, wanted = 0;
        for (uint32_t j = 0; j < ngot; j++)
            same += got[j] == got[k];
        for (uint32_t j = 0; j < n; j++)
            wanted += want[j] == got[k];
        assert_int_equal(same, 1);
        assert_int_equal(wanted, 1);
    }
    for (uint32_t k = 0; k < ngot; k++)
        sample_buffer_free(got[k]);
}

static uint32_t rnd(uint32_t *x)
{
    *x = *x * 1664525u + 1013904223u;
    return *x >> 8;
}

/* A trigger's keys: now and then a cut group (few groups, so they meet,
 * and the extremes), a release, an output pair (the fixture's two, and one
 * it has not). */
static struct play_params random_params(uint32_t *x)
{
    static const int32_t groups[] = {1, 2, -1, -2, 3, INT32_MAX, INT32_MIN, 0x10000, -0x10000};
    static const float releases[] = {0.0f, 0.001f, 0.01f, 0.25f};
    struct play_params p = {0};
    if (rnd(x) % 2) {
        p.keys |= PLAY_CUT;
        p.cut = groups[rnd(x) % 9];
    }
    if (rnd(x) % 3 == 0) {
        p.keys |= PLAY_RELEASE;
        p.release = releases[rnd(x) % 4];
    }
    if (rnd(x) % 3 == 0) {
        p.keys |= PLAY_OUT;
        p.out = rnd(x) % 16 == 0 ? PAIRS : rnd(x) % PAIRS;
    }
    return p;
}

/* Random requests in periods of random lengths, now and then a burst that
 * fills the command ring; after the requests of every period (applied in a
 * period of 0 frames) the voices, the slots, the steal count and the
 * buffers sent back are those of the reference model; after the period is
 * mixed, the buffers sent back are exactly those nothing uses any more; and
 * the bookkeeping agrees with the voices every time. */
static void pool_against_model(uint32_t nvoices, uint32_t periods, uint32_t seed)
{
    struct fixture *f = fixture_of(M_SLOTS, nvoices);
    struct engine *e = &f->e;
    static struct model m;
    uint32_t x = seed;
    uint64_t seq = 0;
    for (uint32_t p = 0; p < periods; p++) {
        model_sync(&m, e);
        struct ctl_msg c;
        uint32_t nload = rnd(&x) % 8 == 0 ? 1 + rnd(&x) % 3 : 0;
        for (uint32_t k = 0; k < nload; k++) {
            uint32_t id = rnd(&x) % M_SLOTS;
            uint32_t frames = 20 + rnd(&x) % 700;
            /* Now and then one that a newer request has overtaken. */
            uint64_t s = rnd(&x) % 6 == 0 && seq > 3 ? seq - 3 : ++seq;
            c = (struct ctl_msg){.type = CTL_LOAD,
                                 .id = id,
                                 .seq = s,
                                 .buf = make_buf(frames, 1 + rnd(&x) % 2, 0.01f),
                                 .velocity = (float)(1 + rnd(&x) % 4) / 4};
            assert_true(engine_publish(e, &c));
            model_apply(&m, &c);
        }
        uint32_t burst = rnd(&x) % 25 == 0;
        uint32_t ncmd = burst ? ENGINE_CMD_UNTIMED : rnd(&x) % (3 * nvoices + 4);
        uint32_t burst_type = CTL_PLAY + rnd(&x) % 3; /* play, loop or stop_slot */
        for (uint32_t k = 0; k < ncmd; k++) {
            uint32_t what = rnd(&x) % 40;
            c = (struct ctl_msg){.id = rnd(&x) % M_SLOTS,
                                 .velocity = rnd(&x) % 10 == 0 ? 0.0f : 0.5f,
                                 .play = random_params(&x)};
            if (burst)
                c.type = burst_type == CTL_STOP_SLOT && k % 2 ? CTL_PLAY : burst_type;
            else if (what < 26)
                c.type = CTL_PLAY;
            else if (what < 33)
                c.type = CTL_LOOP;
            else if (what < 37)
                c.type = CTL_STOP_SLOT;
            else if (what < 38)
                c.type = CTL_STOP;
            else
                c = (struct ctl_msg){.type = CTL_UNLOAD,
                                     .id = c.id,
                                     .seq = rnd(&x) % 4 == 0 && seq > 2 ? seq - 2 : ++seq};
            assert_int_equal(engine_send(e, &c, 0), 0);
            model_apply(&m, &c);
        }
        run(f, 0);
        for (uint32_t i = 0; i < e->npool; i++) {
            const struct voice *v = &e->voices[i], *w = &m.v[i];
            assert_ptr_equal(v->buf, w->buf);
            if (!v->buf)
                continue;
            assert_int_equal(v->slot, w->slot);
            assert_int_equal(v->out, w->out);
            assert_int_equal(e->pair[i], w->out);
            assert_int_equal(e->links[i].grouped ? e->cuts[i].cut : 0, m.cut[i]);
            assert_int_equal(e->links[i].release, m.release[i]);
            assert_true(v->started == w->started);
            assert_int_equal(v->loop, w->loop);
            assert_true(v->gain == w->gain);
            assert_true(v->fade_step == w->fade_step);
            assert_int_equal(v->fade_in, w->fade_in);
            assert_int_equal(v->delay, w->delay);
            assert_int_equal(v->pos, w->pos);
            assert_int_equal(v->frames, w->frames);
        }
        for (uint32_t s = 0; s < M_SLOTS; s++) {
            assert_ptr_equal(e->slots[s].buf, m.buf[s]);
            assert_true(e->slots[s].seq == m.seq[s]);
        }
        assert_true(e->started_counter == m.started);
        assert_true(atomic_load(&e->stats.voices_stolen) == m.stolen);
        expect_trash(f, m.trash, m.ntrash);
        check_books(e);

        /* Mixing ends voices (and starts none): what nothing uses any more
         * goes back, once. */
        model_sync(&m, e);
        run(f, 1 + rnd(&x) % 160);
        const struct sample_buffer *gone[2 * ENGINE_MAX_VOICES];
        uint32_t ngone = 0;
        for (uint32_t i = 0; i < m.npool; i++) {
            const struct sample_buffer *b = m.v[i].buf;
            if (!b || e->voices[i].buf)
                continue;
            m.v[i].buf = NULL; /* ended in this period */
            if (!model_uses(&m, b))
                gone[ngone++] = b; /* its last user */
        }
        expect_trash(f, gone, ngone);
        check_books(e);
        struct event ev;
        while (engine_take_event(e, &ev))
            ;
    }
    fixture_free(f);
}

/* Few voices and slots: every request steals, cuts or fades. */
static void test_pool_matches_a_walk_small(void **state)
{
    (void)state;
    pool_against_model(3, 4000, 1);
}

/* The largest pool (512 structs), with bursts of a whole command ring. */
static void test_pool_matches_a_walk_large(void **state)
{
    (void)state;
    pool_against_model(ENGINE_MAX_VOICES, 300, 7);
}

/* A voice restarted on one struct while others fade: which one a cut takes
 * is the one that started first, not the one that began fading first. */
static void test_cut_takes_the_oldest_started_fading_voice(void **state)
{
    (void)state;
    struct fixture *f = fixture_of(2, 2); /* 2 voices, 4 structs */
    struct engine *e = &f->e;
    load(f, 0, make_buf(4800, 1, 0.1f), 1);
    load(f, 1, make_buf(4800, 1, 0.2f), 2);
    send(f, CTL_PLAY, 0, 1.0f, NULL);   /* started 1, struct 0 */
    send(f, CTL_PLAY, 1, 1.0f, NULL);   /* started 2, struct 1 */
    send(f, CTL_STOP_SLOT, 1, 0, NULL); /* 2 fades first */
    send(f, CTL_PLAY, 0, 1.0f, NULL);   /* started 3, struct 2 */
    send(f, CTL_PLAY, 0, 1.0f, NULL);   /* 4 in struct 3: steals 1, which fades */
    run(f, 0);
    assert_true(fading(&e->voices[0]) && fading(&e->voices[1]));
    assert_true(playing(&e->voices[2]) && playing(&e->voices[3]));
    assert_int_equal(atomic_load(&e->stats.voices_stolen), 1);
    send(f, CTL_PLAY, 1, 1.0f, NULL); /* steals 3; no struct free: cuts 1 */
    run(f, 0);
    assert_true(e->voices[0].started == 5 && playing(&e->voices[0]));
    assert_true(e->voices[1].started == 2 && fading(&e->voices[1]));
    assert_true(e->voices[2].started == 3 && fading(&e->voices[2]));
    assert_true(e->voices[3].started == 4 && playing(&e->voices[3]));
    assert_int_equal(atomic_load(&e->stats.voices_stolen), 2);
    check_books(e);
    fixture_free(f);
}

/* The most untimed /play one period takes (ENGINE_CMD_UNTIMED) on the
 * largest pool: the last 256 play, the 256 before them fade, every earlier one was cut. */
static void test_full_ring_of_plays_in_one_period(void **state)
{
    (void)state;
    struct fixture *f = fixture_of(1, ENGINE_MAX_VOICES);
    struct engine *e = &f->e;
    struct sample_buffer *b = make_buf(48000, 2, 0.1f);
    load(f, 0, b, 1);
    for (uint32_t k = 0; k < ENGINE_CMD_UNTIMED; k++)
        send(f, CTL_PLAY, 0, 0.5f, NULL);
    run(f, PERIOD);
    assert_int_equal(e->nplaying, ENGINE_MAX_VOICES);
    assert_int_equal(e->nfading, ENGINE_MAX_VOICES);
    for (uint32_t i = 0; i < e->npool; i++) {
        const struct voice *v = &e->voices[i];
        assert_true(v->started > ENGINE_CMD_UNTIMED - 2 * ENGINE_MAX_VOICES);
        assert_int_equal(playing(v), v->started > ENGINE_CMD_UNTIMED - ENGINE_MAX_VOICES);
    }
    assert_int_equal(atomic_load(&e->stats.voices_stolen), ENGINE_CMD_UNTIMED - ENGINE_MAX_VOICES);
    assert_int_equal(e->refs[e->slots[0].ref].count, 1 + 2 * ENGINE_MAX_VOICES);
    check_books(e);
    /* A /stop and a ring of /loop: each fades the one before; the last one
     * plays. */
    send(f, CTL_STOP, 0, 0, NULL);
    for (uint32_t k = 1; k < ENGINE_CMD_UNTIMED; k++)
        send(f, CTL_LOOP, 0, 0.5f, NULL);
    run(f, PERIOD);
    assert_int_equal(e->nplaying, 1);
    assert_int_equal(e->nfading, e->npool - 1);
    assert_true(e->voices[e->slots[0].loop].started == e->started_counter);
    assert_int_equal(count_events(f, EV_STOPPED), 1);
    check_books(e);
    fixture_free(f);
}

/* Buffers retired while voices still play them: each goes back once, when
 * its last voice ends, whichever ends first; the slot's current one only
 * when the slot lets it go. */
static void test_retired_buffers_go_back_once_with_their_last_voice(void **state)
{
    struct fixture *f = *state;
    struct sample_buffer *b1 = make_buf(300, 1, 0.1f);
    struct sample_buffer *b2 = make_buf(150, 1, 0.2f);
    struct sample_buffer *b3 = make_buf(300, 1, 0.3f);
    load(f, 0, b1, 1);
    send(f, CTL_PLAY, 0, 1.0f, NULL); /* on b1, frames 0..300 */
    run(f, 100);
    send(f, CTL_PLAY, 0, 1.0f, NULL); /* on b1, frames 100..400 */
    run(f, 0);
    load(f, 0, b2, 2);
    send(f, CTL_PLAY, 0, 1.0f, NULL); /* after the load: on b2, 100..250 */
    run(f, 0);
    load(f, 0, b3, 3);
    send(f, CTL_LOOP, 0, 1.0f, NULL); /* on b3 */
    run(f, 0);
    check_books(&f->e);
    run(f, 160); /* frame 260: b2's one voice has ended */
    expect_trash(f, (const struct sample_buffer *[]){b2}, 1);
    run(f, 50); /* 310: one of b1's two voices has ended */
    expect_trash(f, NULL, 0);
    run(f, 100); /* 410: and the other */
    expect_trash(f, (const struct sample_buffer *[]){b1}, 1);
    check_books(&f->e);
    send(f, CTL_STOP, 0, 0, NULL);
    run(f, f->e.fade_frames + 1);
    assert_int_equal(f->e.nfading + f->e.nplaying, 0);
    expect_trash(f, NULL, 0); /* b3 is still loaded */
    struct ctl_msg m = {.type = CTL_UNLOAD, .id = 0, .seq = 4};
    assert_int_equal(engine_send(&f->e, &m, 0), 0);
    run(f, 1);
    expect_trash(f, (const struct sample_buffer *[]){b3}, 1);
    check_books(&f->e);
}

/* The same buffer published into its slot again (the loader never does;
 * the engine must not count it twice nor let it go while it is loaded). */
static void test_same_buffer_again_stays_loaded(void **state)
{
    struct fixture *f = *state;
    struct sample_buffer *b = make_buf(100, 1, 0.1f);
    load(f, 0, b, 1);
    send(f, CTL_PLAY, 0, 1.0f, NULL);
    run(f, 10);
    load(f, 0, b, 2);
    run(f, 200);
    expect_trash(f, NULL, 0);
    assert_ptr_equal(f->e.slots[0].buf, b);
    check_books(&f->e);
}

/* ---- cut groups, releases, output pairs -------------------------------- */

/* A /play or /loop with keys; at output frame `frame`, or untimed when
 * frame < 0. */
static void play_with(struct fixture *f, uint32_t type, uint32_t id, float vel,
                      struct play_params p, int64_t frame)
{
    struct ctl_msg m = {.type = type, .id = id, .velocity = vel, .play = p};
    if (frame >= 0) {
        m.flags = CTL_TIMED;
        m.when = us_of((uint64_t)frame);
    }
    assert_int_equal(engine_send(&f->e, &m, 0), 0);
}

static struct play_params cut_of(int32_t g)
{
    return (struct play_params){.keys = PLAY_CUT, .cut = g};
}

/* The level of a voice of gain g, j frames into a fade over n frames (j =
 * 0: the first frame of the fade): the ramp reaches 0 on its n-th frame. */
static float ramp(float g, uint32_t n, uint32_t j)
{
    float x = g - g / (float)n * (float)(j + 1);
    return x > 0.0f ? x : 0.0f;
}

/* Runs `n` frames (in periods) and keeps the left output of pair 0. */
static void record(struct fixture *f, float *rec, uint32_t n)
{
    for (uint32_t done = 0; done < n; done += PERIOD) {
        run(f, PERIOD);
        memcpy(rec + done, f->l, sizeof(float) * PERIOD);
    }
}

static void assert_near(float got, float want)
{
    if (!(fabsf(got - want) <= 1e-5f))
        fail_msg("got %.9g, want %.9g", (double)got, (double)want);
}

/* The hi-hat: a voice in group 1 fades out over exactly the declick fade
 * (whatever its own release) from the frame of the next voice of group 1,
 * of another slot, which starts there at full level; a voice of group 2
 * and one of no group play on. */
static void test_cut_group_fades_any_slot_from_the_new_voice_frame(void **state)
{
    struct fixture *f = *state;
    for (uint32_t id = 0; id < 4; id++)
        load(f, id, make_flat(48000), id + 1);
    struct play_params a = {.keys = PLAY_CUT | PLAY_RELEASE, .cut = 1, .release = 0.5f};
    play_with(f, CTL_PLAY, 0, 1.0f, a, -1);
    play_with(f, CTL_PLAY, 2, 0.25f, cut_of(2), -1);
    send(f, CTL_PLAY, 3, 0.125f, NULL);
    run(f, PERIOD);
    for (uint32_t i = 0; i < PERIOD; i++)
        assert_true(f->l[i] == 1.375f);
    play_with(f, CTL_PLAY, 1, 0.5f, cut_of(1), (int64_t)f->now + 20); /* this period, frame 20 */
    float rec[8 * PERIOD];
    record(f, rec, 8 * PERIOD);
    uint32_t fade = f->e.fade_frames;
    for (uint32_t i = 0; i < 20; i++)
        assert_true(rec[i] == 1.375f);
    for (uint32_t j = 0; 20 + j < 8 * PERIOD; j++)
        assert_near(rec[20 + j], 0.875f + ramp(1.0f, fade, j));
    assert_true(rec[20 + fade - 2] > 0.875f + 0.5f / (float)fade); /* still fading */
    assert_int_equal(atomic_load(&f->e.stats.voices_active), 3);
}

/* Group -1 is a slot's own: the new voice of slot 0 cuts slot 0's voice of
 * group -1, not slot 1's, nor slot 0's voice of group 1. */
static void test_negative_cut_group_is_the_slot_own(void **state)
{
    struct fixture *f = *state;
    load(f, 0, make_flat(48000), 1);
    load(f, 1, make_flat(48000), 2);
    play_with(f, CTL_PLAY, 0, 1.0f, cut_of(-1), -1);
    play_with(f, CTL_PLAY, 1, 0.25f, cut_of(-1), -1);
    play_with(f, CTL_LOOP, 0, 0.125f, cut_of(1), -1);
    run(f, PERIOD);
    assert_true(f->l[PERIOD - 1] == 1.375f);
    play_with(f, CTL_PLAY, 0, 0.5f, cut_of(-1), -1);
    float rec[8 * PERIOD];
    record(f, rec, 8 * PERIOD);
    for (uint32_t j = 0; j < 8 * PERIOD; j++)
        assert_near(rec[j], 0.875f + ramp(1.0f, f->e.fade_frames, j));
    assert_int_equal(atomic_load(&f->e.stats.voices_active), 3);
    /* And group 1 of any slot: slot 1's voice cuts slot 0's loop. */
    play_with(f, CTL_PLAY, 1, 0.0625f, cut_of(1), -1);
    record(f, rec, 8 * PERIOD);
    for (uint32_t j = 0; j < 8 * PERIOD; j++)
        assert_near(rec[j], 0.8125f + ramp(0.125f, f->e.fade_frames, j));
    assert_int_equal(atomic_load(&f->e.stats.voices_active), 3);
}

/* Groups are whole numbers: the extremes are groups like any other, and
 * INT32_MIN and INT32_MAX, 7 and -7, are all different. */
static void test_cut_groups_at_the_extremes(void **state)
{
    struct fixture *f = *state;
    load(f, 0, make_flat(48000), 1);
    const int32_t g[] = {INT32_MIN, INT32_MAX, 7, -7, 1, -1};
    for (uint32_t k = 0; k < 6; k++)
        play_with(f, CTL_PLAY, 0, 1.0f / 64, cut_of(g[k]), -1);
    run(f, PERIOD);
    assert_int_equal(atomic_load(&f->e.stats.voices_active), 6);
    for (uint32_t k = 0; k < 6; k++) {
        play_with(f, CTL_PLAY, 0, 1.0f / 64, cut_of(g[k]), -1);
        run(f, PERIOD);
        assert_int_equal(f->e.nfading, 1); /* that group's one voice, no other */
        run(f, 8 * PERIOD);
        assert_int_equal(atomic_load(&f->e.stats.voices_active), 6);
    }
    /* Every group emptied and refilled: the trie's nodes all came back
     * but those of the six groups playing. */
    uint32_t used = f->e.ncut_nodes - f->e.ncut_free;
    send(f, CTL_STOP, 0, 0, NULL);
    run(f, 8 * PERIOD);
    assert_int_equal(atomic_load(&f->e.stats.voices_active), 0);
    assert_int_equal(f->e.ncut_free, f->e.ncut_nodes - 1);
    assert_true(used > 6);
    for (uint32_t k = 0; k < ENGINE_CUT_FAN; k++)
        assert_int_equal(f->e.cut_nodes[0].child[k], ENGINE_NONE);
}

/* /stop fades each voice over its own release, at least the declick fade. */
static void test_stop_fades_each_voice_over_its_release(void **state)
{
    struct fixture *f = *state;
    load(f, 0, make_flat(48000), 1);
    load(f, 1, make_flat(48000), 2);
    play_with(f, CTL_PLAY, 0, 1.0f, (struct play_params){.keys = PLAY_RELEASE, .release = 0.02f},
              -1);
    play_with(f, CTL_PLAY, 1, 0.5f, (struct play_params){.keys = PLAY_RELEASE, .release = 0.001f},
              -1);
    send(f, CTL_PLAY, 1, 0.25f, NULL);
    run(f, PERIOD);
    send(f, CTL_STOP, 0, 0, NULL);
    float rec[16 * PERIOD];
    record(f, rec, 16 * PERIOD);
    uint32_t fade = f->e.fade_frames, rel = RATE / 50; /* 0.02 s */
    assert_true(rel > fade);
    for (uint32_t j = 0; j < 16 * PERIOD; j++)
        assert_near(rec[j], ramp(1.0f, rel, j) + ramp(0.5f, fade, j) + ramp(0.25f, fade, j));
    assert_true(rec[rel - 2] > 0.0f);
    assert_true(rec[rel - 1] < 1e-5f); /* the ramp, summed over periods, rounds */
    assert_true(rec[rel] == 0.0f);
    assert_int_equal(atomic_load(&f->e.stats.voices_active), 0);
    assert_int_equal(count_events(f, EV_STOPPED), 1);
}

/* A slot's stop, timed, fades each of its voices over its release from the
 * stop's frame; an unload and a restarted loop keep the declick fade. */
static void test_stop_slot_uses_the_release_and_unload_the_declick_fade(void **state)
{
    struct fixture *f = *state;
    load(f, 0, make_flat(48000), 1);
    load(f, 1, make_flat(48000), 2);
    struct play_params p = {.keys = PLAY_RELEASE, .release = 0.01f};
    play_with(f, CTL_PLAY, 0, 1.0f, p, -1);
    play_with(f, CTL_PLAY, 1, 0.25f, p, -1);
    run(f, PERIOD);
    send_at(f, CTL_STOP_SLOT, 0, 0, f->now + 30);
    float rec[16 * PERIOD];
    record(f, rec, 16 * PERIOD);
    uint32_t rel = RATE / 100;
    for (uint32_t i = 0; i < 30; i++)
        assert_true(rec[i] == 1.25f);
    for (uint32_t j = 0; 30 + j < 16 * PERIOD; j++)
        assert_near(rec[30 + j], 0.25f + ramp(1.0f, rel, j));

    struct ctl_msg m = {.type = CTL_UNLOAD, .id = 1, .seq = 3};
    assert_int_equal(engine_send(&f->e, &m, 0), 0);
    record(f, rec, 8 * PERIOD);
    for (uint32_t j = 0; j < 8 * PERIOD; j++)
        assert_near(rec[j], ramp(0.25f, f->e.fade_frames, j));

    play_with(f, CTL_LOOP, 0, 1.0f, p, -1);
    run(f, PERIOD);
    play_with(f, CTL_LOOP, 0, 0.5f, p, -1);
    record(f, rec, 8 * PERIOD);
    for (uint32_t j = 0; j < 8 * PERIOD; j++)
        assert_near(rec[j], 0.5f + ramp(1.0f, f->e.fade_frames, j));
}

/* A voice on pair 1 sounds in outputs 2 and 3 only, one on pair 0 in 0 and
 * 1 only; a pair the engine has not starts nothing; every output is
 * overwritten each period. */
static void test_voice_sounds_on_its_output_pair_only(void **state)
{
    struct fixture *f = *state;
    struct sample_buffer *b = make_buf(200, 2, 0.25f);
    struct sample_buffer *c = make_buf(200, 1, -0.5f);
    load(f, 0, b, 1);
    load(f, 1, c, 2);
    struct play_params on1 = {.keys = PLAY_OUT, .out = 1};
    play_with(f, CTL_PLAY, 0, 0.5f, on1, -1);
    send(f, CTL_PLAY, 1, 1.0f, NULL);
    run(f, 200);
    for (uint32_t i = 0; i < 200; i++) {
        assert_true(f->l1[i] == b->ch[0][i] * 0.5f);
        assert_true(f->r1[i] == b->ch[1][i] * 0.5f);
        assert_true(f->l[i] == c->ch[0][i]);
        assert_true(f->r[i] == c->ch[0][i]);
    }
    play_with(f, CTL_PLAY, 0, 1.0f, on1, -1);
    run(f, 100);
    for (uint32_t i = 0; i < 100; i++) {
        assert_true(f->l1[i] == b->ch[0][i] && f->r1[i] == b->ch[1][i]);
        assert_true(f->l[i] == 0.0f && f->r[i] == 0.0f);
    }
    run(f, 200);
    play_with(f, CTL_PLAY, 0, 1.0f, (struct play_params){.keys = PLAY_OUT, .out = PAIRS}, -1);
    play_with(f, CTL_LOOP, 0, 1.0f, (struct play_params){.keys = PLAY_OUT, .out = UINT32_MAX}, -1);
    for (uint32_t k = 0; k < 2 * PAIRS; k++)
        for (uint32_t i = 0; i < PERIOD; i++)
            f->outs[k][i] = 7.0f;
    run(f, PERIOD);
    assert_int_equal(atomic_load(&f->e.stats.voices_active), 0);
    for (uint32_t k = 0; k < 2 * PAIRS; k++)
        for (uint32_t i = 0; i < PERIOD; i++)
            assert_true(f->outs[k][i] == 0.0f);
}

static void test_engine_init_checks_the_pairs(void **state)
{
    (void)state;
    static struct engine e;
    assert_int_equal(engine_init(&e, 4, 4, 0, RATE), -EINVAL);
    assert_int_equal(engine_init(&e, 4, 4, ENGINE_MAX_PAIRS + 1, RATE), -EINVAL);
    assert_int_equal(engine_init(&e, 4, 4, ENGINE_MAX_PAIRS, RATE), 0);
    assert_int_equal(e.npairs, ENGINE_MAX_PAIRS);
    float bufs[2 * ENGINE_MAX_PAIRS][PERIOD];
    float *outs[2 * ENGINE_MAX_PAIRS];
    for (uint32_t k = 0; k < 2 * ENGINE_MAX_PAIRS; k++) {
        outs[k] = bufs[k];
        for (uint32_t i = 0; i < PERIOD; i++)
            bufs[k][i] = 1.0f;
    }
    struct sample_buffer *b = make_flat(1000);
    struct ctl_msg m = {.type = CTL_LOAD, .id = 0, .buf = b, .seq = 1, .velocity = 1.0f};
    assert_true(engine_publish(&e, &m));
    m = (struct ctl_msg){.type = CTL_PLAY,
                         .id = 0,
                         .velocity = 0.5f,
                         .play = {.keys = PLAY_OUT, .out = ENGINE_MAX_PAIRS - 1}};
    assert_int_equal(engine_send(&e, &m, 0), 0);
    engine_process(&e, outs, PERIOD, (struct engine_clock){0});
    for (uint32_t k = 0; k < 2 * ENGINE_MAX_PAIRS; k++)
        for (uint32_t i = 0; i < PERIOD; i++)
            assert_true(bufs[k][i] == (k >= 2 * ENGINE_MAX_PAIRS - 2 ? 0.5f : 0.0f));
    engine_destroy(&e);
}

/* ---- musical time (beat.h): the own timeline on JACK's frame counter ---- */

/* One period whose first frame is JACK frame `frame`. */
static void run_at(struct fixture *f, uint64_t frame, uint32_t n)
{
    struct engine_clock c = {
        .t0 = us_of(frame), .t1 = us_of(frame + n), .frame = frame, .has_frame = true};
    engine_process(&f->e, f->outs, n, c);
}

static void send_quant(struct fixture *f, uint32_t type, uint32_t id, double quant, double beats)
{
    struct ctl_msg m = {.type = type, .id = id, .velocity = 1.0f};
    m.play.keys = PLAY_QUANT | (beats > 0 ? PLAY_BEATS : 0);
    m.play.quant = quant;
    m.play.beats = beats;
    assert_int_equal(engine_send(&f->e, &m, 0), 0);
}

static void send_value(struct fixture *f, uint32_t type, double v)
{
    struct ctl_msg m = {.type = type, .beat = v};
    assert_int_equal(engine_send(&f->e, &m, 0), 0);
}

/* Renders periods from JACK frame `from` to `to` (multiples of PERIOD from
 * `from`) and gives the frames where the left output turns from silence to
 * sound (after the last period rendered), up to `max` of them. */
static int onsets_between(struct fixture *f, uint64_t from, uint64_t to, uint64_t *on, int max)
{
    int n = 0;
    float last = f->l[PERIOD - 1]; /* the period before */
    for (uint64_t p = from; p < to; p += PERIOD) {
        run_at(f, p, PERIOD);
        for (uint32_t i = 0; i < PERIOD; i++) {
            if (f->l[i] != 0 && last == 0 && n < max)
                on[n++] = p + i;
            last = f->l[i];
        }
    }
    return n;
}

/* At 120 BPM and 48 kHz a beat is 24000 frames: quant 1, 4 and 0.5 start on
 * the first such frame not yet rendered. */
static void test_quantized_play_starts_on_the_grid(void **state)
{
    struct fixture *f = *state;
    load(f, 0, make_flat(100), 1);
    static const struct {
        double q;
        uint64_t at, want;
    } cases[] = {{1, 1024, 24000}, {4, 24128, 96000}, {0.5, 96128, 108000}, {1, 120000, 120000}};
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        send_quant(f, CTL_PLAY, 0, cases[k].q, 0);
        uint64_t on[2];
        int n = onsets_between(f, cases[k].at, cases[k].want + 2 * PERIOD, on, 2);
        assert_int_equal(n, 1);
        assert_int_equal(on[0], cases[k].want);
    }
    assert_int_equal(atomic_load(&f->e.grid_pending), 0);
}

/* JACK2 around an xrun can hand a period the counter of the one before
 * (seen with the dummy backend): the timeline stays the function of the
 * counter, so the next bar line still starts on frame 96000, not a period
 * off. */
static void test_a_repeated_counter_does_not_move_the_grid(void **state)
{
    struct fixture *f = *state;
    load(f, 0, make_flat(100), 1);
    run_at(f, 1024, PERIOD);
    run_at(f, 1024 + 2 * PERIOD, PERIOD); /* a period skipped ... */
    run_at(f, 1024 + 2 * PERIOD, PERIOD); /* ... and the same reading again */
    send_quant(f, CTL_PLAY, 0, 4, 0);
    uint64_t on[2];
    int n = onsets_between(f, 1024 + 3 * PERIOD, 96000 + 2 * PERIOD, on, 2);
    assert_int_equal(n, 1);
    assert_int_equal(on[0], 96000);
}

/* A new JACK client's counter starts afresh (a new server): the beat goes
 * on from where the last period ended. */
static void test_a_new_server_keeps_the_beat(void **state)
{
    struct fixture *f = *state;
    load(f, 0, make_flat(100), 1);
    run_at(f, 48000, PERIOD); /* beat 2; the next period would start PERIOD on */
    struct engine_clock c = {.t0 = us_of(512),
                             .t1 = us_of(512 + PERIOD),
                             .frame = 512,
                             .has_frame = true,
                             .new_counter = true};
    engine_process(&f->e, f->outs, PERIOD, c);
    /* Frame 512 is beat 2 + PERIOD / 24000: beat 4 is 48000 - PERIOD on. */
    send_quant(f, CTL_PLAY, 0, 4, 0);
    uint64_t on[2];
    int n = onsets_between(f, 512 + PERIOD, 512 + 48000 + PERIOD, on, 2);
    assert_int_equal(n, 1);
    assert_int_equal(on[0], 512 + 48000 - PERIOD);
}

/* A tempo change while a start waits moves it to the new tempo's time for
 * the same beat. */
static void test_tempo_change_moves_a_waiting_start(void **state)
{
    struct fixture *f = *state;
    load(f, 0, make_flat(100), 1);
    send_quant(f, CTL_PLAY, 0, 4, 0);
    run_at(f, 1024, PERIOD); /* waits for beat 4, frame 96000 at 120 BPM */
    assert_int_equal(f->e.grid.n, 1);
    send_value(f, CTL_TEMPO, 60);
    /* Applied in the period at 24000 (beat 1): beat 4 is 3 beats of 48000
     * frames later. */
    uint64_t on[2];
    int n = onsets_between(f, 24000, 24000 + 3 * 48000 + PERIOD, on, 2);
    assert_int_equal(n, 1);
    assert_int_equal(on[0], 24000 + 3 * 48000);
    double beat, tempo, quantum;
    assert_true(engine_beat_now(&f->e, 0, &beat, &tempo, &quantum));
    assert_true(tempo == 60 && quantum == 4);
    send_value(f, CTL_QUANTUM, 3);
    run_at(f, 200000, PERIOD);
    assert_true(engine_beat_now(&f->e, 0, &beat, &tempo, &quantum));
    assert_true(quantum == 3);
}

/* A `beats 2` loop of a sample shorter than 2 beats: once a cycle, then
 * silence; a stop cancels the restarts. */
static void test_beats_loop_restarts_and_stops(void **state)
{
    struct fixture *f = *state;
    load(f, 0, make_flat(10000), 1);
    send_quant(f, CTL_LOOP, 0, 1, 2);
    uint64_t on[4];
    int n = onsets_between(f, 1024, 24000 + 2 * 48000 + PERIOD, on, 4);
    assert_int_equal(n, 3);
    assert_int_equal(on[0], 24000);
    assert_int_equal(on[1], 24000 + 48000);
    assert_int_equal(on[2], 24000 + 2 * 48000);
    assert_int_equal(f->e.nrestart, 1);
    send(f, CTL_STOP_SLOT, 0, 0, NULL);
    n = onsets_between(f, 24000 + 2 * 48000 + PERIOD, 24000 + 4 * 48000, on, 4);
    assert_int_equal(n, 0);
    assert_int_equal(f->e.nrestart, 0);
    assert_int_equal(f->e.slots[0].rheap, ENGINE_NONE);
}

/* A timed request with quant: the first launch point at or after its
 * time; a quantized stop of a slot starts its fade on the grid. */
static void test_timed_quant_and_quantized_stop(void **state)
{
    struct fixture *f = *state;
    load(f, 0, make_flat(100), 1);
    load(f, 1, make_flat(1000), 2);
    struct ctl_msg m = {
        .type = CTL_PLAY, .id = 0, .velocity = 1.0f, .flags = CTL_TIMED, .when = us_of(30000)};
    m.play.keys = PLAY_QUANT;
    m.play.quant = 1;
    assert_int_equal(engine_send(&f->e, &m, 0), 0);
    uint64_t on[2];
    int n = onsets_between(f, 1024, 48000 + PERIOD, on, 2);
    assert_int_equal(n, 1);
    assert_int_equal(on[0], 48000); /* beat 2: the first at or after frame 30000 */
    assert_int_equal(atomic_load(&f->e.sched_pending), 0);
    assert_int_equal(atomic_load(&f->e.grid_pending), 0);

    send(f, CTL_LOOP, 1, 1.0f, NULL);
    run_at(f, 50048, PERIOD);
    struct ctl_msg s = {.type = CTL_STOP_SLOT, .id = 1};
    s.play.keys = PLAY_QUANT;
    s.play.quant = 1;
    assert_int_equal(engine_send(&f->e, &s, 0), 0);
    uint64_t faded = 0;
    for (uint64_t p = 50112; p < 72000 + 2 * PERIOD && !faded; p += PERIOD) {
        run_at(f, p, PERIOD);
        for (uint32_t i = 0; i < PERIOD && !faded; i++)
            if (f->l[i] < 1.0f)
                faded = p + i;
    }
    /* The fade's first step is on beat 3's frame or the next. */
    assert_true(faded >= 72000 && faded <= 72001);
}

/* A /stop (all, or the slot's) that does not wait for the grid itself
 * cancels the quantized starts still waiting (of every slot, or of its
 * own), their places given back; a quantized start of another slot stays;
 * a quantized stop leaves a start waiting for the same launch point. */
static void test_stop_cancels_waiting_quantized_starts(void **state)
{
    struct fixture *f = *state;
    load(f, 0, make_flat(100), 1);
    load(f, 1, make_flat(100), 2);
    send_quant(f, CTL_PLAY, 0, 4, 0);
    send_quant(f, CTL_LOOP, 1, 4, 0);
    run_at(f, 1024, PERIOD); /* both wait for beat 4, frame 96000 */
    assert_int_equal(f->e.grid.n, 2);
    send(f, CTL_STOP_SLOT, 0, 0, NULL);
    run_at(f, 1024 + PERIOD, PERIOD);
    assert_int_equal(f->e.grid.n, 1); /* slot 1's loop still waits */
    assert_int_equal(atomic_load(&f->e.grid_pending), 1);
    send(f, CTL_STOP, 0, 0, NULL);
    run_at(f, 1024 + 2 * PERIOD, PERIOD);
    assert_int_equal(f->e.grid.n, 0);
    assert_int_equal(atomic_load(&f->e.grid_pending), 0);
    uint64_t on[2];
    assert_int_equal(onsets_between(f, 1024 + 3 * PERIOD, 96000 + 2 * PERIOD, on, 2), 0);

    /* A quantized stop and then a quantized start for the same bar: the
     * stop comes first, the start still plays. */
    struct ctl_msg s = {.type = CTL_STOP};
    s.play.keys = PLAY_QUANT;
    s.play.quant = 4;
    assert_int_equal(engine_send(&f->e, &s, 0), 0);
    send_quant(f, CTL_PLAY, 0, 4, 0);
    int n = onsets_between(f, 100000, 192000 + 2 * PERIOD, on, 2);
    assert_int_equal(n, 1);
    assert_int_equal(on[0], 192000);
    assert_int_equal(atomic_load(&f->e.grid_pending), 0);
    struct event ev;
    while (engine_take_event(&f->e, &ev))
        ;
}

/* Quantized requests take places of the grid: bounded, and given back. */
static void test_grid_is_bounded(void **state)
{
    struct fixture *f = *state;
    load(f, 0, make_flat(100), 1);
    struct ctl_msg m = {.type = CTL_PLAY, .id = 0, .velocity = 1.0f};
    m.play.keys = PLAY_QUANT;
    m.play.quant = 4;
    uint32_t sent = 0;
    uint64_t frame = 1024;
    for (;;) {
        int r = engine_send(&f->e, &m, 0);
        if (r == -EAGAIN) { /* the command ring: let the engine take them */
            run_at(f, frame, PERIOD);
            frame += PERIOD;
            continue;
        }
        if (r == -ENOSPC)
            break;
        assert_int_equal(r, 0);
        sent++;
    }
    assert_int_equal(sent, ENGINE_GRID);
    run_at(f, frame, PERIOD);
    assert_int_equal(f->e.grid.n, ENGINE_GRID);
    /* All start on beat 4 (frame 96000); the pool steals as ever. */
    run_at(f, 96000 - 32, PERIOD);
    assert_int_equal(f->e.grid.n, 0);
    assert_int_equal(atomic_load(&f->e.grid_pending), 0);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_one_voice_is_sample_times_velocity),
        T(test_sounding_bitmap_follows_voices),
        T(test_mono_plays_on_both_outputs),
        T(test_two_voices_sum),
        T(test_voice_ends_at_sample_end),
        T(test_play_empty_slot_is_ignored),
        T(test_polyphony_same_slot_adds_voices),
        T(test_33rd_voice_steals_the_oldest_with_a_fade),
        T(test_loop_wraps_seamlessly),
        T(test_stop_slot_fades_only_that_slot),
        T(test_unload_while_playing),
        T(test_unload_without_reply_emits_no_event),
        T(test_reload_while_playing),
        T(test_reload_idle_slot_frees_old_at_once),
        T(test_stale_load_never_overwrites_newer),
        T(test_command_after_load_sees_it),
        T(test_ping_round_trip_echoes_reply_and_wakes),
        T(test_stop_fades_out_every_voice),
        T(test_timed_play_starts_on_its_frame),
        T(test_timed_play_in_the_past_is_late_and_immediate),
        T(test_stale_untimed_triggers_are_dropped),
        T(test_timed_stop_fades_from_its_frame),
        T(test_timed_stop_of_a_voice_started_in_the_same_period),
        T(test_timed_trigger_steals_at_its_frame),
        T(test_schedule_is_bounded),
        T(test_4096_pending_each_on_its_frame),
        T(test_untimed_places_of_the_ring),
        T(test_drain_inputs_at_shutdown),
        T(test_s16_plays_like_f32_at_constant_gain),
        T(test_s16_plays_like_f32_in_fades),
        T(test_s16_voices_mix_like_f32),
        T(test_s16_buffer_layout),
        T(test_retired_buffers_go_back_once_with_their_last_voice),
        T(test_same_buffer_again_stays_loaded),
        T(test_cut_group_fades_any_slot_from_the_new_voice_frame),
        T(test_negative_cut_group_is_the_slot_own),
        T(test_cut_groups_at_the_extremes),
        T(test_stop_fades_each_voice_over_its_release),
        T(test_stop_slot_uses_the_release_and_unload_the_declick_fade),
        T(test_voice_sounds_on_its_output_pair_only),
        cmocka_unit_test(test_engine_init_checks_the_pairs),
        cmocka_unit_test_setup_teardown(test_quantized_play_starts_on_the_grid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_repeated_counter_does_not_move_the_grid, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_new_server_keeps_the_beat, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tempo_change_moves_a_waiting_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_beats_loop_restarts_and_stops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_cancels_waiting_quantized_starts, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_grid_is_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timed_quant_and_quantized_stop, setup, teardown),
        cmocka_unit_test(test_cut_takes_the_oldest_started_fading_voice),
        cmocka_unit_test(test_full_ring_of_plays_in_one_period),
        cmocka_unit_test(test_pool_matches_a_walk_small),
        cmocka_unit_test(test_pool_matches_a_walk_large),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
