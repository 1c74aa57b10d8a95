/* protocol.c - see protocol.h.  Every reply format lives here or in
 * reply.c/loader.c, and docs/protocol.md must say the same. */
#include "protocol.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loader.h"
#include "log.h"

void protocol_init(struct protocol *p, struct engine *e, struct osc_server *osc,
                   struct loader *loader)
{
    memset(p, 0, sizeof(*p));
    p->engine = e;
    p->osc = osc;
    p->loader = loader;
    /* Events come from reply_ctx-carrying requests and from the load ring;
     * keep their sum within the event ring. */
    p->max_replies = ENGINE_EVENT_RING - ENGINE_LOAD_RING;
}

struct reply_ctx *reply_ctx_new(struct protocol *p, const struct osc_peer *peer)
{
    uint32_t n = atomic_fetch_add(&p->replies_in_flight, 1);
    if (n >= p->max_replies) {
        atomic_fetch_sub(&p->replies_in_flight, 1);
        return NULL;
    }
    struct reply_ctx *r = malloc(sizeof(*r));
    if (!r) {
        atomic_fetch_sub(&p->replies_in_flight, 1);
        return NULL;
    }
    r->peer = *peer;
    return r;
}

void reply_ctx_free(struct protocol *p, struct reply_ctx *r)
{
    if (!r)
        return;
    free(r);
    atomic_fetch_sub(&p->replies_in_flight, 1);
}

static void fail(struct protocol *p, const struct osc_peer *to, const char *path,
                 const char *reason)
{
    osc_send(p->osc, to, "/fail", "ss", path, reason);
}

static void fail_id(struct protocol *p, const struct osc_peer *to, const char *path,
                    const char *reason, int32_t id)
{
    osc_send(p->osc, to, "/fail", "ssi", path, reason, id);
}

/* Clients send numbers as they please: Pd and TouchOSC only send floats,
 * python-osc sends 1 as int, SuperCollider as written.  Accept i, h, f, d. */
static bool arg_number(char type, const lo_arg *a, double *out)
{
    switch (type) {
    case LO_INT32:
        *out = a->i;
        return true;
    case LO_INT64:
        *out = (double)a->h;
        return true;
    case LO_FLOAT:
        *out = a->f;
        return true;
    case LO_DOUBLE:
        *out = a->d;
        return true;
    default:
        return false;
    }
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
    if (v < 0 || v >= p->engine->nslots) {
        char why[64];
        snprintf(why, sizeof(why), "id out of range (0..%u)", p->engine->nslots - 1);
        if (v >= INT32_MIN && v <= INT32_MAX)
            fail_id(p, from, path, why, (int32_t)v);
        else
            fail(p, from, path, why);
        return false;
    }
    *id = (uint32_t)v;
    return true;
}

static bool push_cmd(struct protocol *p, const struct ctl_msg *m)
{
    if (ring_push(&p->engine->cmd, m))
        return true;
    atomic_fetch_add(&p->refused, 1);
    return false;
}

/* /ping and /stop: no arguments, answered by the audio thread. */
static void handle_round_trip(struct protocol *p, const char *path, int argc, uint32_t type,
                              const struct osc_peer *from)
{
    if (argc != 0) {
        fail(p, from, path, "takes no arguments");
        return;
    }
    struct reply_ctx *r = reply_ctx_new(p, from);
    if (!r) {
        atomic_fetch_add(&p->refused, 1);
        fail(p, from, path, "busy: too many requests in flight");
        return;
    }
    struct ctl_msg m = {.type = type, .reply = r};
    if (!push_cmd(p, &m)) {
        reply_ctx_free(p, r);
        fail(p, from, path, "busy: command queue full");
    }
}

static void handle_play(struct protocol *p, const char *path, int argc, const char *types,
                        lo_arg **argv, const struct osc_peer *from)
{
    uint32_t id;
    double vel = 1.0;

    if (argc < 1 || argc > 2) {
        fail(p, from, path, "expects id [velocity]");
        return;
    }
    if (!arg_id(p, from, path, types[0], argv[0], &id))
        return;
    if (argc == 2) {
        if (!arg_number(types[1], argv[1], &vel)) {
            fail_id(p, from, path, "velocity must be a number", (int32_t)id);
            return;
        }
        if (!isfinite(vel)) {
            fail_id(p, from, path, "velocity must be finite", (int32_t)id);
            return;
        }
        vel = vel < 0 ? 0 : vel > 1 ? 1 : vel;
    }
    struct ctl_msg m = {.type = CTL_PLAY, .id = id, .velocity = (float)vel};
    if (!push_cmd(p, &m))
        fail_id(p, from, path, "busy: command queue full", (int32_t)id);
}

static void handle_load(struct protocol *p, const char *path, int argc, const char *types,
                        lo_arg **argv, const struct osc_peer *from)
{
    uint32_t id;

    if (argc != 2) {
        fail(p, from, path, "expects id path");
        return;
    }
    if (!arg_id(p, from, path, types[0], argv[0], &id))
        return;
    if (types[1] != LO_STRING && types[1] != LO_SYMBOL) {
        fail_id(p, from, path, "path must be a string", (int32_t)id);
        return;
    }
    const char *file = &argv[1]->s;
    if (!*file) {
        fail_id(p, from, path, "empty path", (int32_t)id);
        return;
    }
    struct reply_ctx *r = reply_ctx_new(p, from);
    if (!r) {
        atomic_fetch_add(&p->refused, 1);
        fail_id(p, from, path, "busy: too many requests in flight", (int32_t)id);
        return;
    }
    /* The order of requests decides which load of a slot wins, whatever
     * order the decodes finish in. */
    int err = loader_submit(p->loader, id, file, ++p->load_seq, r);
    if (err < 0) {
        reply_ctx_free(p, r);
        atomic_fetch_add(&p->refused, 1);
        fail_id(p, from, path, err == -EBUSY ? "busy: load queue full" : "out of memory",
                (int32_t)id);
    }
}

void protocol_handle(void *user, const char *path, lo_message msg, lo_timetag tt,
                     const struct osc_peer *from)
{
    struct protocol *p = user;
    int argc = lo_message_get_argc(msg);
    const char *types = lo_message_get_types(msg);
    lo_arg **argv = lo_message_get_argv(msg);

    (void)tt;
    if (!types)
        types = "";
    if (strcmp(path, "/play") == 0)
        handle_play(p, path, argc, types, argv, from);
    else if (strcmp(path, "/ping") == 0)
        handle_round_trip(p, path, argc, CTL_PING, from);
    else if (strcmp(path, "/load") == 0)
        handle_load(p, path, argc, types, argv, from);
    else if (strcmp(path, "/stop") == 0)
        handle_round_trip(p, path, argc, CTL_STOP, from);
    else
        fail(p, from, path, "unknown address");
}
