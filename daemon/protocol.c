/* protocol.c - see protocol.h.  Reply formats live in replies.c. */
#include "protocol.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "audio.h"
#include "beat.h"
#include "dirt.h"
#include "library.h"
#include "link_clock.h"
#include "loader.h"
#include "log.h"
#include "params.h"

void protocol_init(struct protocol *p, struct engine *e, struct osc_server *osc,
                   struct replies *replies, struct loader *loader, struct audio *audio,
                   struct pads *pads)
{
    memset(p, 0, sizeof(*p));
    p->pads = pads;
    p->outputs = 1;
    p->engine = e;
    p->numbered = e->nslots;
    p->osc = osc;
    p->replies = replies;
    p->loader = loader;
    p->audio = audio;
}

/* Ordinary requests get 4096 places of the schedule (the rest is kept for
 * /stop), and those for later a part of them, so what is due soon always
 * finds room. */
_Static_assert(ENGINE_SCHED - PROTOCOL_STOP_RESERVE >= 4096, "4096 pending timed requests");
_Static_assert(ENGINE_GRID - PROTOCOL_STOP_RESERVE >= 4096, "4096 pending quantized requests");
_Static_assert(ENGINE_CMD_UNTIMED > PROTOCOL_STOP_RESERVE, "room for untimed requests");
_Static_assert(PROTOCOL_FUTURE_MAX <= (ENGINE_SCHED - PROTOCOL_STOP_RESERVE) / 8,
               "requests for later hold at most an eighth of the schedule");

static void fail(struct protocol *p, const struct osc_peer *to, const char *path,
                 const char *reason)
{
    reply_fail(p->replies, to, path, reason);
}

static void fail_id(struct protocol *p, const struct osc_peer *to, const char *path,
                    const char *reason, int32_t id)
{
    reply_fail_id(p->replies, to, path, reason, id);
}

/* Clients send numbers as they please: Pd and TouchOSC only send floats,
 * python-osc sends 1 as int, SuperCollider as written.  Accept i, h, f, d
 * (params_osc_number). */
static bool arg_number(char type, const lo_arg *a, double *out)
{
    return params_osc_number(type, a, out);
}

/* Parses a slot id: a number, integral, in range.  Answers /fail itself and
 * returns false when it is not. */
static bool arg_id(struct protocol *p, const struct osc_peer *from, const char *path, char type,
                   const lo_arg *a, uint32_t *id)
{
    double v;
    if (!arg_number(type, a, &v)) {
        fail(p, from, path, "id must be a number");
        return false;
    }
    if (!isfinite(v) || v != floor(v)) {
        fail(p, from, path, "id must be a whole number");
        return false;
    }
    if (v < 0 || v >= p->numbered) {
        char why[64];
        snprintf(why, sizeof(why), "id out of range (0..%u)", p->numbered - 1);
        if (v >= INT32_MIN && v <= INT32_MAX)
            fail_id(p, from, path, why, (int32_t)v);
        else
            fail(p, from, path, why);
        return false;
    }
    *id = (uint32_t)v;
    return true;
}

/* The parts of a request the handlers need. */
struct req {
    const char *path;
    int argc;
    const char *types;
    lo_arg **argv;
    const struct osc_peer *from;
    /* TouchOSC style "/play/7": the id came in the address; argv holds only
     * the optional velocity. */
    bool id_in_path;
    uint32_t path_id;
    bool timed;      /* start at `when` (a future bundle, or --latency) */
    bool tagged;     /* in a bundle with a timetag other than "immediately" */
    bool future;     /* due more than PROTOCOL_NEAR_S after arrival */
    uint64_t when;   /* JACK time, us */
    double future_s; /* how far ahead it is due (s; <= 0: now or past) */
    uint64_t due_ns; /* future: when it is due, CLOCK_MONOTONIC */
    bool quiet;      /* never answered (/dirt/play: Tidal reads no replies) */
};

static uint64_t mono_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static struct protocol_source source_of(const struct osc_peer *peer)
{
    struct protocol_source s = {.family = peer->addr.ss_family};
    if (s.family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&peer->addr;
        s.port = in->sin_port;
        memcpy(s.addr, &in->sin_addr, 4);
    } else if (s.family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&peer->addr;
        s.port = in6->sin6_port;
        memcpy(s.addr, &in6->sin6_addr, 16);
    }
    return s;
}

static bool same_source(const struct protocol_source *a, const struct protocol_source *b)
{
    return a->family == b->family && a->port == b->port && memcmp(a->addr, b->addr, 16) == 0;
}

/* Gives back the places of future requests now due; then NULL when one more
 * future request from `from` is within both limits, else the reason. */
static const char *future_check(struct protocol *p, const struct protocol_source *from)
{
    uint64_t now = mono_ns();
    uint32_t mine = 0;
    for (uint32_t i = 0; i < p->nfuture;) {
        if (p->future[i].due_ns <= now) {
            p->future[i] = p->future[--p->nfuture];
            continue;
        }
        mine += same_source(&p->future[i].from, from);
        i++;
    }
    if (mine >= PROTOCOL_FUTURE_PER_SOURCE)
        return "busy: too many future requests from this client";
    if (p->nfuture >= PROTOCOL_FUTURE_MAX)
        return "busy: too many future requests";
    return NULL;
}

/* A /stop due now may use the places kept for it. */
static bool may_use_reserve(const struct req *q, const struct ctl_msg *m)
{
    return (m->type == CTL_STOP || m->type == CTL_STOP_SLOT) && !q->future;
}

/* Sends a request to the audio thread, timed if the request is.  Answers
 * /fail itself when a queue is full. */
static bool push_cmd(struct protocol *p, const struct req *q, struct ctl_msg m)
{
    const char *why = "busy: command queue full";
    uint32_t keep = may_use_reserve(q, &m) ? 0 : PROTOCOL_STOP_RESERVE;
    struct protocol_source from = source_of(q->from);
    bool future = q->future;
    uint64_t due_ns = q->due_ns;
    if (engine_quantized(&m)) {
        /* A quantized request waits up to a grid step more: beyond
         * PROTOCOL_NEAR_S it counts as a future request too. */
        double beat, tempo, quantum;
        engine_beat_now(p->engine, 0, &beat, &tempo, &quantum);
        double wait = (q->future_s > 0 ? q->future_s : 0) + play_quant(&m.play) * 60.0 / tempo;
        if (wait > PROTOCOL_NEAR_S) {
            future = true;
            due_ns = mono_ns() + (uint64_t)(wait * 1e9);
        }
    }
    if (atomic_load(&p->audio->gone)) {
        why = "JACK server is gone; reconnecting";
        goto refuse;
    }
    if (future && (why = future_check(p, &from)) != NULL)
        goto refuse;
    if (q->timed) {
        m.flags |= CTL_TIMED;
        m.when = q->when;
    } else {
        m.arrived = audio_time_of_arrival(p->audio, q->from->rx);
    }
    int r = engine_send(p->engine, &m, keep);
    if (r == 0) {
        if (future)
            p->future[p->nfuture++] = (struct protocol_future){.due_ns = due_ns, .from = from};
        return true;
    }
    why = r == -ENOSPC ? "busy: schedule full" : "busy: command queue full";
refuse:
    atomic_fetch_add(&p->refused, 1);
    if (q->quiet) {
        /* Nobody reads a reply (Tidal): the count in /status and a line,
         * rate-limited by log.h (a few a second, then how many were not
         * written). */
        log_warn("%s refused: %s (counted in /status refused)", q->path, why);
        return false;
    }
    if (m.type == CTL_PLAY || m.type == CTL_LOOP || m.type == CTL_STOP_SLOT || m.type == CTL_UNLOAD)
        fail_id(p, q->from, q->path, why, (int32_t)m.id);
    else
        fail(p, q->from, q->path, why);
    return false;
}

/* A request answered by the audio thread (via an event and the reply
 * thread): /ping, /stop, /unload. */
static void round_trip(struct protocol *p, const struct req *q, struct ctl_msg m)
{
    struct reply_ctx *r = may_use_reserve(q, &m) ? reply_ctx_new_stop(p->replies, q->from)
                                                 : reply_ctx_new(p->replies, q->from);
    if (!r) {
        atomic_fetch_add(&p->refused, 1);
        fail(p, q->from, q->path, "busy: too many requests in flight");
        return;
    }
    m.reply = r;
    if (!push_cmd(p, q, m))
        reply_ctx_free(p->replies, r);
}

static bool no_args(struct protocol *p, const struct req *q)
{
    if (q->argc == 0)
        return true;
    fail(p, q->from, q->path, "takes no arguments");
    return false;
}

static void handle_ping(struct protocol *p, const struct req *q)
{
    if (!no_args(p, q))
        return;
    /* Without a JACK server there is no audio thread to go round; the OSC
     * thread answers itself, so monitoring sees the daemon alive. */
    if (atomic_load(&p->audio->gone))
        reply_pong_now(p->replies, q->from);
    else
        round_trip(p, q, (struct ctl_msg){.type = CTL_PING});
}

static bool is_string(char type)
{
    return type == LO_STRING || type == LO_SYMBOL;
}

/* /play, /loop: id [velocity] [key value]..., or /play/ID [velocity] [key
 * value]....  The trigger's keys over the slot's defaults (params.h) go to
 * the audio thread as they are; anything bad is refused whole. */
static void handle_trigger(struct protocol *p, const struct req *q, uint32_t type)
{
    uint32_t id;
    int first = q->id_in_path ? 0 : 1; /* index of the velocity argument */

    if (q->argc < first) {
        fail(p, q->from, q->path, "expects id [velocity] [key value]...");
        return;
    }
    if (q->id_in_path)
        id = q->path_id;
    else if (!arg_id(p, q->from, q->path, q->types[0], q->argv[0], &id))
        return;
    struct params given = {0};
    int keys = first;
    if (q->argc > first && !is_string(q->types[first])) {
        double vel;
        if (!arg_number(q->types[first], q->argv[first], &vel)) {
            fail_id(p, q->from, q->path, "velocity must be a number", (int32_t)id);
            return;
        }
        if (!isfinite(vel)) {
            fail_id(p, q->from, q->path, "velocity must be finite", (int32_t)id);
            return;
        }
        given.has_velocity = true;
        given.velocity = (float)(vel < 0 ? 0 : vel > 1 ? 1 : vel);
        keys++;
    }
    char why[PARAMS_WHY_MAX];
    struct params play;
    if (params_parse_osc(&given, q->argc - keys, q->types + keys, q->argv + keys, p->outputs, why) <
        0) {
        fail_id(p, q->from, q->path, why, (int32_t)id);
        return;
    }
    if (given.midi.keys) {
        fail_id(p, q->from, q->path, "MIDI keys are a slot's (use /set)", (int32_t)id);
        return;
    }
    pads_get(p->pads, id, &play);
    params_merge(&play, &play, &given);
    if (params_check(&play, why) < 0) {
        fail_id(p, q->from, q->path, why, (int32_t)id);
        return;
    }
    /* --quant for a trigger that does not say. */
    if (!(play.play.keys & PLAY_QUANT) && p->quant > 0) {
        play.play.quant = p->quant;
        play.play.keys |= PLAY_QUANT;
    }
    float vel = play.has_velocity ? play.velocity : 1.0f;
    /* A pad's release sends 0: it must not start (or steal) anything. */
    if (vel == 0)
        return;
    push_cmd(p, q, (struct ctl_msg){.type = type, .id = id, .velocity = vel, .play = play.play});
}

/* /set id [key value]...: the slot's defaults, unanswered unless refused
 * (then nothing changes); no keys: the slot has none any more. */
static void handle_set(struct protocol *p, const struct req *q)
{
    uint32_t id;
    if (q->argc < 1) {
        fail(p, q->from, q->path, "expects id [key value]...");
        return;
    }
    if (!arg_id(p, q->from, q->path, q->types[0], q->argv[0], &id))
        return;
    /* Ordered with loads and unloads: an /unload requested before this
     * and applied after it leaves it (params.h). */
    uint64_t seq = atomic_fetch_add(&p->load_seq, 1) + 1;
    if (q->argc == 1) {
        pads_put(p->pads, id, &(struct params){0}, seq);
        return;
    }
    struct params changes = {0};
    char why[PARAMS_WHY_MAX];
    if (params_parse_osc(&changes, q->argc - 1, q->types + 1, q->argv + 1, p->outputs, why) < 0 ||
        pads_update(p->pads, id, &changes, seq, why) < 0)
        fail_id(p, q->from, q->path, why, (int32_t)id);
}

/* A request whose one argument is a slot id (/get, /unload).  Answers
 * /fail itself and returns false when it is not. */
static bool only_id(struct protocol *p, const struct req *q, uint32_t *id)
{
    if (q->argc != 1) {
        fail(p, q->from, q->path, "expects id");
        return false;
    }
    return arg_id(p, q->from, q->path, q->types[0], q->argv[0], id);
}

/* /get id: the slot's defaults, at once. */
static void handle_get(struct protocol *p, const struct req *q)
{
    uint32_t id;
    if (!only_id(p, q, &id))
        return;
    struct params d;
    pads_get(p->pads, id, &d);
    reply_get(p->replies, q->from, id, &d);
}

/* /stop's keys (only quant) from argument `first` on into `play`;
 * answers /fail itself (with the slot when `id` >= 0). */
static bool stop_keys(struct protocol *p, const struct req *q, int first, int64_t id,
                      struct play_params *play)
{
    struct params given = {0};
    char why[PARAMS_WHY_MAX];
    int err = params_parse_osc(&given, q->argc - first, q->types + first, q->argv + first,
                               p->outputs, why);
    if (err == 0 && (given.has_velocity || (given.play.keys & ~PLAY_QUANT))) {
        snprintf(why, sizeof(why), "only quant applies to /stop");
        err = -EINVAL;
    }
    if (err < 0) {
        if (id >= 0)
            fail_id(p, q->from, q->path, why, (int32_t)id);
        else
            fail(p, q->from, q->path, why);
        return false;
    }
    *play = given.play;
    return true;
}

/* /stop [key value]...: everything, answered.  /stop id [key value]... and
 * /stop/ID [value]: one slot, unanswered (a pad's release, value 0, does
 * nothing).  With `quant`, the fade starts on the launch grid. */
static void handle_stop(struct protocol *p, const struct req *q)
{
    uint32_t id;

    if (!q->id_in_path && (q->argc == 0 || is_string(q->types[0]))) {
        struct ctl_msg m = {.type = CTL_STOP};
        if (stop_keys(p, q, 0, -1, &m.play))
            round_trip(p, q, m);
        return;
    }
    if (q->id_in_path) {
        double v = 1;
        if (q->argc > 1 || (q->argc == 1 && !arg_number(q->types[0], q->argv[0], &v))) {
            fail(p, q->from, q->path, "expects [value]");
            return;
        }
        if (v == 0)
            return;
        id = q->path_id;
    } else {
        /* After the id only keys: a second number is a miscount. */
        if (q->argc > 1 && !is_string(q->types[1])) {
            fail(p, q->from, q->path, "expects [id]");
            return;
        }
        if (!arg_id(p, q->from, q->path, q->types[0], q->argv[0], &id))
            return;
        struct ctl_msg m = {.type = CTL_STOP_SLOT, .id = id};
        if (stop_keys(p, q, 1, id, &m.play))
            push_cmd(p, q, m);
        return;
    }
    push_cmd(p, q, (struct ctl_msg){.type = CTL_STOP_SLOT, .id = id});
}

/* One number argument, or /fail with `expects`. */
static bool one_number(struct protocol *p, const struct req *q, const char *expects, double *v)
{
    if (q->argc == 1 && arg_number(q->types[0], q->argv[0], v))
        return true;
    fail(p, q->from, q->path, expects);
    return false;
}

/* /tempo BPM: the timeline's tempo from the next period on, unanswered.
 * With Link enabled it is proposed to the session (link_clock_propose_tempo),
 * whose tempo the engine follows; the engine's own timeline takes it too,
 * for when Link is left. */
static void handle_tempo(struct protocol *p, const struct req *q)
{
    double bpm;
    if (!one_number(p, q, "expects BPM", &bpm))
        return;
    if (!beat_tempo_valid(bpm)) {
        fail(p, q->from, q->path, "tempo must be 20 to 999 BPM");
        return;
    }
    if (p->link)
        link_clock_propose_tempo(p->link, bpm);
    push_cmd(p, q, (struct ctl_msg){.type = CTL_TEMPO, .beat = bpm});
}

/* /quantum N: beats per bar, unanswered. */
static void handle_quantum(struct protocol *p, const struct req *q)
{
    double n;
    if (!one_number(p, q, "expects N", &n))
        return;
    if (!beat_quantum_valid(n)) {
        fail(p, q->from, q->path, "quantum must be a positive number of beats (at most 1024)");
        return;
    }
    push_cmd(p, q, (struct ctl_msg){.type = CTL_QUANTUM, .beat = n});
}

/* Link's peers and whether it is on, for /beat: none without Link. */
static void link_state(const struct protocol *p, int32_t *peers, int32_t *enabled)
{
    *peers = p->link ? (int32_t)link_clock_peers(p->link) : 0;
    *enabled = p->link && link_clock_enabled(p->link);
}

/* The beat now: the last period's span extrapolated to this thread's own
 * read of JACK's clock (engine_beat_now).  Before the first period, 0. */
static void beat_now(struct protocol *p, double *beat, double *tempo, double *quantum)
{
    double now_us = 0;
    if (!audio_jack_now_us(p->audio, &now_us))
        now_us = 0; /* no extrapolation */
    engine_beat_now(p->engine, now_us, beat, tempo, quantum);
}

/* /beat -> /beat.reply beat tempo quantum peers link, at once. */
static void handle_beat(struct protocol *p, const struct req *q)
{
    if (!no_args(p, q))
        return;
    double beat, tempo, quantum;
    beat_now(p, &beat, &tempo, &quantum);
    int32_t peers, link;
    link_state(p, &peers, &link);
    reply_beat(p->replies, q->from, beat, (float)tempo, (float)quantum, peers, link);
}

/* The control side forgets the slot only when the audio thread has
 * applied the unload (the reply thread's hook, reply.h, calls
 * loader_forget() on its event, with the sequence number kept in the reply
 * context): an unload refused here, or a timed one dropped before its
 * time, leaves the slot as it was. */
static void handle_unload(struct protocol *p, const struct req *q)
{
    uint32_t id;
    if (!only_id(p, q, &id))
        return;
    struct reply_ctx *r = reply_ctx_new(p->replies, q->from);
    if (!r) {
        atomic_fetch_add(&p->refused, 1);
        fail(p, q->from, q->path, "busy: too many requests in flight");
        return;
    }
    uint64_t seq = atomic_fetch_add(&p->load_seq, 1) + 1;
    r->unload_seq = seq;
    if (!push_cmd(p, q, (struct ctl_msg){.type = CTL_UNLOAD, .id = id, .seq = seq, .reply = r}))
        reply_ctx_free(p->replies, r);
}

static void handle_load(struct protocol *p, const struct req *q)
{
    uint32_t id;

    if (q->argc != 2) {
        fail(p, q->from, q->path, "expects id path");
        return;
    }
    if (!arg_id(p, q->from, q->path, q->types[0], q->argv[0], &id))
        return;
    if (q->types[1] != LO_STRING && q->types[1] != LO_SYMBOL) {
        fail_id(p, q->from, q->path, "path must be a string", (int32_t)id);
        return;
    }
    const char *file = (const char *)q->argv[1]; /* no member access: see arg_number */
    if (!*file) {
        fail_id(p, q->from, q->path, "empty path", (int32_t)id);
        return;
    }
    if (strlen(file) >= PATH_MAX) {
        fail_id(p, q->from, q->path, "path too long", (int32_t)id);
        return;
    }
    struct reply_ctx *r = reply_ctx_new(p->replies, q->from);
    if (!r) {
        atomic_fetch_add(&p->refused, 1);
        fail_id(p, q->from, q->path, "busy: too many requests in flight", (int32_t)id);
        return;
    }
    /* The order of requests decides which load of a slot wins, whatever
     * order the decodes finish in. */
    int err = loader_submit(p->loader, id, file, atomic_fetch_add(&p->load_seq, 1) + 1, r);
    if (err < 0) {
        reply_ctx_free(p->replies, r);
        atomic_fetch_add(&p->refused, 1);
        fail_id(p, q->from, q->path, err == -EBUSY ? "busy: load queue full" : "out of memory",
                (int32_t)id);
    }
}

static void handle_status(struct protocol *p, const struct req *q)
{
    if (!no_args(p, q))
        return;
    struct engine *e = p->engine;
    uint64_t refused = atomic_load(&p->refused) + atomic_load(&p->osc->dropped_packets) +
                       atomic_load(&p->osc->denied_packets);
    /* Slots as the requests answered so far left them (loader.h), not the
     * audio thread's count, which would lag a /done by a period. */
    struct reply_status st = {
        .voices = (int32_t)atomic_load(&e->stats.voices_active),
        .slots = (int32_t)loader_slots_loaded(p->loader),
        .xruns = (int32_t)atomic_load(&p->audio->xruns),
        .late = (int32_t)atomic_load(&e->stats.late),
        .refused = (int32_t)refused,
        .dsp_avg = audio_dsp_load(p->audio),
        .dsp_peak = audio_take_dsp_peak(p->audio),
        .rate = (int32_t)loader_rate(p->loader),
        .period = (int32_t)audio_period(p->audio),
        .sample_bytes = (int64_t)atomic_load(&e->sample_bytes),
        .state = atomic_load(&p->audio->stuck)  ? "jack-stuck"
                 : atomic_load(&p->audio->gone) ? "jack-gone"
                                                : "running",
        .stolen = (int64_t)atomic_load(&e->stats.voices_stolen),
        .lost = (int64_t)atomic_load(&e->stats.lost_events),
        .midi_ignored = (int64_t)atomic_load(&e->stats.midi_ignored),
    };
    if (p->library) {
        st.library_banks = (int32_t)atomic_load(&p->library->banks);
        st.library_samples = (int32_t)atomic_load(&p->library->samples);
        st.library_loaded = (int32_t)atomic_load(&p->library->loaded);
    }
    if (p->dirt) {
        st.dirt_not_found = (int64_t)atomic_load(&p->dirt->not_found);
        st.dirt_skipped = (int64_t)(atomic_load(&p->dirt->not_loaded) + atomic_load(&p->dirt->bad));
    }
    double beat, tempo, quantum;
    beat_now(p, &beat, &tempo, &quantum);
    st.tempo = (float)tempo;
    st.beat = beat;
    reply_status(p->replies, q->from, &st);
}

static void handle_version(struct protocol *p, const struct req *q)
{
    if (no_args(p, q))
        reply_version(p->replies, q->from, LOOPERD_VERSION);
}

static void handle_quit(struct protocol *p, const struct req *q)
{
    if (!no_args(p, q))
        return;
    /* Nothing would keep a /quit until its time (a restart would forget
     * it), so one for later is refused rather than done at once. */
    if (q->tagged && q->future_s > 0) {
        atomic_fetch_add(&p->refused, 1);
        fail(p, q->from, q->path, "a /quit cannot be scheduled: send it without a timetag");
        return;
    }
    reply_quit_done(p->replies, q->from);
    /* The main thread does the shutdown, as for SIGTERM. */
    kill(getpid(), SIGTERM);
}

/* SuperDirt's /dirt/play: a library sample, by dirt.h's translation.
 * Never answered: what plays nothing is counted there. */
static void handle_dirt_play(struct protocol *p, struct req *q)
{
    struct ctl_msg m;
    if (!p->dirt)
        return;
    if (dirt_translate(p->dirt, q->argc, q->types, q->argv, loader_rate(p->loader), &m) < 0)
        return;
    q->quiet = true;
    push_cmd(p, q, m);
}

/* SuperDirt's handshake (TidalCycles sends it at start-up) and hello: the
 * replies, without the control buses looperd does not have. */
static void handle_dirt_hello(struct protocol *p, const struct req *q, const char *reply)
{
    reply_empty(p->replies, q->from, reply);
}

/* /library/reload: rescan the library (library.h); answered when the new
 * one is in use. */
static void handle_library_reload(struct protocol *p, const struct req *q)
{
    if (!no_args(p, q))
        return;
    if (!p->library) {
        fail(p, q->from, q->path, "no --library");
        return;
    }
    struct reply_ctx *r = reply_ctx_new(p->replies, q->from);
    if (!r || library_reload(p->library, r) < 0) {
        reply_ctx_free(p->replies, r);
        atomic_fetch_add(&p->refused, 1);
        fail(p, q->from, q->path, "busy: too many reloads waiting");
    }
}

/* /link 1|0: joins or leaves the Ableton Link session now; not answered
 * when good.  Like /quit it cannot wait for a timetag. */
static void handle_link(struct protocol *p, const struct req *q)
{
    double v;
    if (q->argc != 1 || !arg_number(q->types[0], q->argv[0], &v) || (v != 0 && v != 1)) {
        fail(p, q->from, q->path, "expects 1 (join the Link session) or 0 (leave it)");
        return;
    }
    if (q->tagged && q->future_s > 0) {
        fail(p, q->from, q->path, "a /link cannot be scheduled: send it without a timetag");
        return;
    }
    int r = p->link ? link_clock_enable(p->link, v == 1) : -ENOTSUP;
    if (r == -ENOTSUP)
        fail(p, q->from, q->path, "this looperd is built without Ableton Link (-Dlink)");
    else if (r < 0)
        fail(p, q->from, q->path, "cannot start Ableton Link (out of memory or threads)");
    else
        log_info("Ableton Link %s", v == 1 ? "enabled" : "disabled");
}

/* "/play/12" -> base "/play", id 12.  Returns 1 on a match, 0 when `path`
 * is not base/NUMBER, -1 when the number is out of range. */
static int split_id(const char *path, const char *base, uint32_t nslots, uint32_t *id)
{
    size_t n = strlen(base);
    if (strncmp(path, base, n) != 0 || path[n] != '/' || !path[n + 1])
        return 0;
    unsigned long v = 0;
    bool big = false;
    for (const char *c = path + n + 1; *c; c++) {
        if (*c < '0' || *c > '9')
            return 0;
        big |= v >= nslots;
        v = big ? v : v * 10 + (unsigned long)(*c - '0');
    }
    if (big || v >= nslots)
        return -1;
    *id = (uint32_t)v;
    return 1;
}

/* TouchOSC-style addresses that carry the id: /play/ID, /loop/ID, /stop/ID. */
static void handle_id_in_path(struct protocol *p, struct req *q)
{
    static const struct {
        const char *base;
        uint32_t type;
    } bases[] = {{"/play", CTL_PLAY}, {"/loop", CTL_LOOP}, {"/stop", CTL_STOP_SLOT}};

    for (size_t i = 0; i < sizeof(bases) / sizeof(bases[0]); i++) {
        int r = split_id(q->path, bases[i].base, p->numbered, &q->path_id);
        if (r < 0) {
            char why[64];
            snprintf(why, sizeof(why), "id out of range (0..%u)", p->numbered - 1);
            fail(p, q->from, q->path, why);
            return;
        }
        if (r > 0) {
            q->id_in_path = true;
            if (bases[i].type == CTL_STOP_SLOT)
                handle_stop(p, q);
            else
                handle_trigger(p, q, bases[i].type);
            return;
        }
    }
    atomic_fetch_add(&p->refused, 1);
    fail(p, q->from, q->path, "unknown address");
}

void protocol_handle(void *user, const char *path, lo_message msg, lo_timetag tt,
                     const struct osc_peer *from)
{
    struct protocol *p = user;
    struct req q = {
        .path = path,
        .argc = lo_message_get_argc(msg),
        .types = lo_message_get_types(msg),
        .argv = lo_message_get_argv(msg),
        .from = from,
    };
    if (!q.types)
        q.types = "";

    /* A bundle's timetag says when; a plain message (or an "immediately"
     * bundle) starts at the next period, or --latency after the kernel
     * received it.  The audio thread places the start on the exact frame and
     * counts requests whose time has already passed as late. */
    double ahead = 0;
    if (!(tt.sec == LO_TT_IMMEDIATE.sec && tt.frac == LO_TT_IMMEDIATE.frac)) {
        q.when = audio_time_of_timetag(p->audio, tt, &ahead);
        q.timed = true;
        q.tagged = true;
        if (ahead > PROTOCOL_MAX_AHEAD_S) {
            fail(p, from, path, "timetag too far in the future (at most 1 hour)");
            return;
        }
    } else if (p->latency > 0) {
        struct timespec rx = from->rx;
        if (rx.tv_sec == 0)
            clock_gettime(CLOCK_REALTIME, &rx);
        q.when = audio_time_of_wall(p->audio, rx.tv_sec + rx.tv_nsec * 1e-9 + p->latency, &ahead);
        q.timed = true;
    }
    q.future_s = ahead;
    if (q.timed && ahead > PROTOCOL_NEAR_S) {
        q.future = true;
        q.due_ns = mono_ns() + (uint64_t)(ahead * 1e9);
    }

    if (strcmp(path, "/play") == 0)
        handle_trigger(p, &q, CTL_PLAY);
    else if (strcmp(path, "/loop") == 0)
        handle_trigger(p, &q, CTL_LOOP);
    else if (strcmp(path, "/stop") == 0)
        handle_stop(p, &q);
    else if (strcmp(path, "/ping") == 0)
        handle_ping(p, &q);
    else if (strcmp(path, "/load") == 0)
        handle_load(p, &q);
    else if (strcmp(path, "/unload") == 0)
        handle_unload(p, &q);
    else if (strcmp(path, "/set") == 0)
        handle_set(p, &q);
    else if (strcmp(path, "/get") == 0)
        handle_get(p, &q);
    else if (strcmp(path, "/status") == 0)
        handle_status(p, &q);
    else if (strcmp(path, "/version") == 0)
        handle_version(p, &q);
    else if (strcmp(path, "/quit") == 0)
        handle_quit(p, &q);
    else if (strcmp(path, "/dirt/play") == 0)
        handle_dirt_play(p, &q);
    else if (strcmp(path, "/dirt/handshake") == 0)
        handle_dirt_hello(p, &q, "/dirt/handshake/reply");
    else if (strcmp(path, "/dirt/hello") == 0)
        handle_dirt_hello(p, &q, "/dirt/hello/reply");
    else if (strcmp(path, "/library/reload") == 0)
        handle_library_reload(p, &q);
    else if (strcmp(path, "/tempo") == 0)
        handle_tempo(p, &q);
    else if (strcmp(path, "/quantum") == 0)
        handle_quantum(p, &q);
    else if (strcmp(path, "/beat") == 0)
        handle_beat(p, &q);
    else if (strcmp(path, "/link") == 0)
        handle_link(p, &q);
    else
        handle_id_in_path(p, &q);
}
