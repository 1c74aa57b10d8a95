/* link_clock.c - see link_clock.h. */
#include "link_clock.h"

#include <errno.h>
#include <math.h>
#include <time.h>

#ifdef LOOPERD_HAVE_LINK
#include "link.h"
#endif

bool link_clock_available(void)
{
#ifdef LOOPERD_HAVE_LINK
    return true;
#else
    return false;
#endif
}

void link_clock_init(struct link_clock *c, double start_bpm, bool start_stop)
{
    atomic_init(&c->peer, NULL);
    c->start_bpm = start_bpm;
    c->start_stop = start_stop;
    atomic_init(&c->spans, 0);
}

int64_t link_clock_now_us(void)
{
#ifdef LOOPERD_HAVE_LINK
    return link_clock_micros();
#else
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC_RAW, &t);
    return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
#endif
}

#ifdef LOOPERD_HAVE_LINK

void link_clock_destroy(struct link_clock *c)
{
    struct link_peer *l = atomic_exchange(&c->peer, NULL);
    link_destroy(l);
}

int link_clock_enable(struct link_clock *c, bool on)
{
    struct link_peer *l = atomic_load_explicit(&c->peer, memory_order_acquire);
    if (!l) {
        if (!on)
            return 0;
        int r = link_create(c->start_bpm, &l);
        if (r < 0)
            return r;
        r = link_set_start_stop_sync(l, c->start_stop);
        if (r < 0) {
            link_destroy(l);
            return r;
        }
        /* Complete before the audio thread may see it. */
        atomic_store_explicit(&c->peer, l, memory_order_release);
    }
    return link_enable(l, on);
}

bool link_clock_enabled(const struct link_clock *c)
{
    const struct link_peer *l = atomic_load_explicit(&c->peer, memory_order_acquire);
    return l && link_is_enabled(l);
}

unsigned link_clock_peers(const struct link_clock *c)
{
    const struct link_peer *l = atomic_load_explicit(&c->peer, memory_order_acquire);
    return l && link_is_enabled(l) ? (unsigned)link_peers(l) : 0;
}

bool link_clock_propose_tempo(struct link_clock *c, double bpm)
{
    struct link_peer *l = atomic_load_explicit(&c->peer, memory_order_acquire);
    if (!l || !link_is_enabled(l))
        return false;
    return link_app_set_tempo(l, bpm, link_clock_micros()) == 0;
}

bool link_clock_span(struct link_clock *c, int64_t first_us, int64_t next_us, uint32_t nframes,
                     double quantum, struct beat_span *out)
{
    struct link_peer *l = atomic_load_explicit(&c->peer, memory_order_acquire);
    if (!l || !link_is_enabled(l) || nframes == 0 || !(quantum > 0))
        return false;
    struct link_snapshot s;
    link_audio_capture(l, first_us, quantum, &s);
    double next = link_audio_beat_at(l, next_us > first_us ? next_us : first_us + 1, quantum);
    out->beat = s.beat;
    /* Link's beat grows with time at a positive tempo, and next_us is
     * kept after first_us: per_frame > 0, as a span wants. */
    out->per_frame = (next - s.beat) / nframes;
    out->tempo = s.tempo;
    out->quantum = quantum;
    out->playing = c->start_stop ? s.playing : true;
    atomic_store_explicit(&c->spans, atomic_load_explicit(&c->spans, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    return true;
}

#else /* no Link in this build */

void link_clock_destroy(struct link_clock *c)
{
    (void)c;
}

int link_clock_enable(struct link_clock *c, bool on)
{
    (void)c;
    return on ? -ENOTSUP : 0;
}

bool link_clock_enabled(const struct link_clock *c)
{
    (void)c;
    return false;
}

unsigned link_clock_peers(const struct link_clock *c)
{
    (void)c;
    return 0;
}

bool link_clock_propose_tempo(struct link_clock *c, double bpm)
{
    (void)c;
    (void)bpm;
    return false;
}

bool link_clock_span(struct link_clock *c, int64_t first_us, int64_t next_us, uint32_t nframes,
                     double quantum, struct beat_span *out)
{
    (void)c;
    (void)first_us;
    (void)next_us;
    (void)nframes;
    (void)quantum;
    (void)out;
    return false;
}

#endif

bool link_clock_start_stop(const struct link_clock *c)
{
    return c->start_stop;
}
