/* replies.c - see replies.h.  docs/protocol.md must say the same. */
#include "replies.h"

#include <stdlib.h>
#include <string.h>

#include "params.h"

void replies_init(struct replies *rs, struct osc_server *osc, uint32_t max)
{
    memset(rs, 0, sizeof(*rs));
    rs->osc = osc;
    rs->max = max;
}

static struct reply_ctx *take(struct replies *rs, const struct osc_peer *peer, uint32_t limit)
{
    uint32_t n = atomic_fetch_add(&rs->in_flight, 1);
    if (n >= limit) {
        atomic_fetch_sub(&rs->in_flight, 1);
        return NULL;
    }
    struct reply_ctx *r = malloc(sizeof(*r));
    if (!r) {
        atomic_fetch_sub(&rs->in_flight, 1);
        return NULL;
    }
    r->peer = *peer;
    r->unload_seq = 0;
    return r;
}

struct reply_ctx *reply_ctx_new(struct replies *rs, const struct osc_peer *peer)
{
    return take(rs, peer, rs->max - REPLY_STOP_RESERVE);
}

struct reply_ctx *reply_ctx_new_stop(struct replies *rs, const struct osc_peer *peer)
{
    return take(rs, peer, rs->max);
}

void reply_ctx_free(struct replies *rs, struct reply_ctx *r)
{
    if (!r)
        return;
    free(r);
    atomic_fetch_sub(&rs->in_flight, 1);
}

/* The address as a /fail echoes it: at most REPLY_ECHO_MAX bytes, cut
 * before a UTF-8 continuation byte, so that every reply fits a datagram
 * whatever the client sent. */
static const char *echo(const char *path, char buf[REPLY_ECHO_MAX + 1])
{
    size_t n = strnlen(path, REPLY_ECHO_MAX + 1);
    if (n <= REPLY_ECHO_MAX)
        return path;
    n = REPLY_ECHO_MAX;
    while (n > 0 && ((unsigned char)path[n] & 0xc0) == 0x80)
        n--;
    memcpy(buf, path, n);
    buf[n] = '\0';
    return buf;
}

void reply_fail(struct replies *rs, const struct osc_peer *to, const char *path, const char *reason)
{
    char buf[REPLY_ECHO_MAX + 1];
    osc_send(rs->osc, to, "/fail", "ss", echo(path, buf), reason);
}

void reply_fail_id(struct replies *rs, const struct osc_peer *to, const char *path,
                   const char *reason, int32_t id)
{
    char buf[REPLY_ECHO_MAX + 1];
    osc_send(rs->osc, to, "/fail", "ssi", echo(path, buf), reason, id);
}

void reply_pong_now(struct replies *rs, const struct osc_peer *to)
{
    osc_send(rs->osc, to, "/pong", "");
}

void reply_quit_done(struct replies *rs, const struct osc_peer *to)
{
    osc_send(rs->osc, to, "/done", "s", "/quit");
}

void reply_empty(struct replies *rs, const struct osc_peer *to, const char *path)
{
    osc_send(rs->osc, to, path, "");
}

void reply_version(struct replies *rs, const struct osc_peer *to, const char *version)
{
    osc_send(rs->osc, to, "/version.reply", "ss", "looperd", version);
}

void reply_status(struct replies *rs, const struct osc_peer *to, const struct reply_status *s)
{
    osc_send(rs->osc, to, "/status.reply", "iiiiiffiihshhfdiiihhh", s->voices, s->slots, s->xruns,
             s->late, s->refused, (double)s->dsp_avg, (double)s->dsp_peak, s->rate, s->period,
             s->sample_bytes, s->state, s->stolen, s->lost, (double)s->tempo, s->beat, s->library_banks,
             s->library_samples, s->library_loaded, s->dirt_not_found, s->dirt_skipped,
             s->midi_ignored);
}

void reply_beat(struct replies *rs, const struct osc_peer *to, double beat, float tempo,
                float quantum, int32_t peers, int32_t link)
{
    osc_send(rs->osc, to, "/beat.reply", "dffii", beat, (double)tempo, (double)quantum, peers,
             link);
}

void reply_get(struct replies *rs, const struct osc_peer *to, uint32_t id, const struct params *p)
{
    lo_message m = lo_message_new();
    if (!m)
        return;
    int err = lo_message_add_int32(m, (int32_t)id);
    const char *name;
    double v;
    bool whole;
    for (unsigned i = 0; err == 0 && params_next(p, &i, &name, &v, &whole);) {
        err = lo_message_add_string(m, name);
        const char *word = params_word(name, v);
        if (err == 0)
            err = word    ? lo_message_add_string(m, word)
                  : whole ? lo_message_add_int32(m, (int32_t)v)
                          : lo_message_add_float(m, (float)v);
    }
    if (err == 0)
        osc_send_message(rs->osc, to, "/get.reply", m);
    lo_message_free(m);
}

void reply_pong(struct replies *rs, struct reply_ctx *r)
{
    if (r)
        osc_send(rs->osc, &r->peer, "/pong", "");
    reply_ctx_free(rs, r);
}

void reply_stop_done(struct replies *rs, struct reply_ctx *r)
{
    if (r)
        osc_send(rs->osc, &r->peer, "/done", "s", "/stop");
    reply_ctx_free(rs, r);
}

void reply_unload_done(struct replies *rs, struct reply_ctx *r, uint32_t id)
{
    if (r)
        osc_send(rs->osc, &r->peer, "/done", "si", "/unload", (int32_t)id);
    reply_ctx_free(rs, r);
}

void reply_library_done(struct replies *rs, struct reply_ctx *r, uint32_t banks, uint32_t samples)
{
    if (r)
        osc_send(rs->osc, &r->peer, "/done", "sii", "/library/reload", (int32_t)banks,
                 (int32_t)samples);
    reply_ctx_free(rs, r);
}

void reply_load_done(struct replies *rs, struct reply_ctx *r, uint32_t id, uint32_t frames,
                     uint32_t channels)
{
    if (r)
        osc_send(rs->osc, &r->peer, "/done", "siii", "/load", (int32_t)id, (int32_t)frames,
                 (int32_t)channels);
    reply_ctx_free(rs, r);
}

void reply_load_failed(struct replies *rs, struct reply_ctx *r, uint32_t id, const char *reason)
{
    if (r)
        osc_send(rs->osc, &r->peer, "/fail", "ssi", "/load", reason, (int32_t)id);
    reply_ctx_free(rs, r);
}
