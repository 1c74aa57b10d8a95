/* replies.h - every reply the daemon sends, and the reply contexts.
 *
 * Owns the formats of all replies (docs/protocol.md lists them: keep both
 * the same) and struct reply_ctx, a copy of the sender's address that a
 * request carries when its reply can only be given later (/pong after the
 * audio thread saw the ping, /done /load once the loader has published the
 * sample): through the loader's queue or the engine's rings to whoever
 * answers.  Depends only on the OSC socket (osc.h) and, for /get.reply,
 * on params.h's keys.
 *
 * Budget.  Every live reply_ctx is counted, and the count is capped at
 * `max` (replies_init): the daemon passes the event ring's capacity.  The
 * audio thread emits events only for requests that carry a context, so this
 * cap is what makes a full event ring impossible (engine.h) and the audio
 * thread never has to drop an answer.  REPLY_STOP_RESERVE places of it are
 * kept for a /stop due now (reply_ctx_new_stop), so a stop gets through any
 * flood.
 *
 * Functions that take a reply_ctx answer it and free it; they accept NULL
 * (a request nobody waits for) and then send nothing.  Any thread: the
 * counter is atomic and the OSC socket may be sent on from any thread.
 */
#ifndef LOOPERD_REPLIES_H
#define LOOPERD_REPLIES_H

#include <stdatomic.h>
#include <stdint.h>

#include "osc.h"

/* Places of the reply budget only a /stop due now may take. */
#define REPLY_STOP_RESERVE 16
/* A /fail echoes at most this many bytes of the request's address. */
#define REPLY_ECHO_MAX 200

struct reply_ctx {
    struct osc_peer peer;
    uint64_t unload_seq; /* /unload: its sequence number (the unload hook's) */
};

struct replies {
    struct osc_server *osc;
    uint32_t max;
    _Atomic uint32_t in_flight;
};

void replies_init(struct replies *rs, struct osc_server *osc, uint32_t max);

/* NULL when the budget is spent (the caller answers "busy" right away
 * instead) or on ENOMEM.  reply_ctx_new leaves REPLY_STOP_RESERVE places;
 * reply_ctx_new_stop may take them. */
struct reply_ctx *reply_ctx_new(struct replies *rs, const struct osc_peer *peer);
struct reply_ctx *reply_ctx_new_stop(struct replies *rs, const struct osc_peer *peer);
void reply_ctx_free(struct replies *rs, struct reply_ctx *r);

/* ---- replies sent at once, to `to` ---- */

/* /fail PATH REASON [ID]: PATH cut to REPLY_ECHO_MAX bytes. */
void reply_fail(struct replies *rs, const struct osc_peer *to, const char *path,
                const char *reason);
void reply_fail_id(struct replies *rs, const struct osc_peer *to, const char *path,
                   const char *reason, int32_t id);
void reply_pong_now(struct replies *rs, const struct osc_peer *to);
/* /done "/quit" */
void reply_quit_done(struct replies *rs, const struct osc_peer *to);
/* A message without arguments (SuperDirt's /dirt/handshake/reply). */
void reply_empty(struct replies *rs, const struct osc_peer *to, const char *path);
void reply_version(struct replies *rs, const struct osc_peer *to, const char *version);

/* The fields of /status.reply, in its order. */
struct reply_status {
    int32_t voices, slots, xruns, late, refused;
    float dsp_avg, dsp_peak;
    int32_t rate, period;
    int64_t sample_bytes;
    const char *state;
    int64_t stolen, lost;
    float tempo;
    double beat;
    int32_t library_banks, library_samples, library_loaded;
    int64_t dirt_not_found, dirt_skipped;
    int64_t midi_ignored;
};
void reply_status(struct replies *rs, const struct osc_peer *to, const struct reply_status *s);
/* /beat.reply beat tempo quantum peers link */
void reply_beat(struct replies *rs, const struct osc_peer *to, double beat, float tempo,
                float quantum, int32_t peers, int32_t link);
/* /get.reply ID KEY VALUE ...: the keys set in `p` (params.h's order),
 * values as floats but cut, out and fit as int32. */
struct params;
void reply_get(struct replies *rs, const struct osc_peer *to, uint32_t id, const struct params *p);

/* ---- replies to a reply_ctx, which they free ---- */

void reply_pong(struct replies *rs, struct reply_ctx *r);
/* /done "/stop" */
void reply_stop_done(struct replies *rs, struct reply_ctx *r);
/* /done "/unload" id */
void reply_unload_done(struct replies *rs, struct reply_ctx *r, uint32_t id);
/* /done "/load" id frames channels */
void reply_load_done(struct replies *rs, struct reply_ctx *r, uint32_t id, uint32_t frames,
                     uint32_t channels);
/* /done "/library/reload" banks samples */
void reply_library_done(struct replies *rs, struct reply_ctx *r, uint32_t banks, uint32_t samples);
/* /fail "/load" reason id */
void reply_load_failed(struct replies *rs, struct reply_ctx *r, uint32_t id, const char *reason);

#endif
