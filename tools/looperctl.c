/* looperctl.c - a command-line client for looperd's OSC protocol.
 *
 *   looperctl [--host H] [--port N] [--timeout S] COMMAND [ARGS]
 *
 * Design and why:
 *
 * - looperd answers every request to the address and port the request came
 *   from (docs/protocol.md), so we send from our own UDP socket, bound to an
 *   ephemeral port, and receive on that same socket.  The socket is not
 *   connect()ed: a daemon listening on a wildcard address may answer from
 *   another local address than the one we sent to, and a connected socket
 *   would drop that reply.  Replies are accepted from the daemon's port only.
 * - Messages are built and parsed with liblo's low-level calls
 *   (lo_message_serialise / lo_message_deserialise) but we own the socket
 *   and wait with poll(), so the timeout is exact and nothing runs in a
 *   background thread.
 * - /play, /loop, /set and /stop ID have no reply by design.  To still tell
 *   the user whether the request was accepted we send /ping right after it:
 *   the daemon handles datagrams in order on one thread, so a /fail for bad
 *   arguments is sent before the /pong.  /fail -> exit 1, /pong -> exit 0.
 * - KEY=VALUE arguments (play, loop, set) are only split and read as
 *   numbers here; which keys exist and their ranges are the daemon's to
 *   check (docs/protocol.md), so a bad key gets the daemon's own reason.
 * - `load` with a relative path: the daemon's working directory is not ours
 *   (under systemd it is /), so the path is made absolute against our cwd
 *   before it is sent.
 * - A name that resolves to IPv4 and IPv6 uses IPv4, because the daemon
 *   listens on 127.0.0.1 by default and "localhost" often resolves to ::1
 *   first; an IPv6 literal (--host ::1) uses IPv6.
 *
 * Exit status: 0 success, 1 the daemon answered /fail (the reason goes to
 * stderr), 2 usage errors, no reply within the timeout, or local errors
 * (name resolution, sockets).  Internal helpers return 0 or a negative errno.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <lo/lo.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef LOOPERD_VERSION
#define LOOPERD_VERSION "unknown"
#endif

#define EXIT_OK 0
#define EXIT_FAIL 1
#define EXIT_USAGE 2 /* also: timeout, local errors */

#define DEFAULT_HOST "127.0.0.1"
#define DEFAULT_PORT "9000"
#define DEFAULT_TIMEOUT_S 2.0
/* Decoding and resampling a long file takes a while: `load` waits longer
 * unless --timeout says otherwise. */
#define DEFAULT_LOAD_TIMEOUT_S 30.0
#define MAX_TIMEOUT_S 3600.0
/* The daemon never sends more than this; anything larger is not for us. */
#define MAX_PACKET 65536

struct conn {
    int fd;
    struct sockaddr_storage to;
    socklen_t tolen;
    uint16_t port; /* host order, to filter replies */
    const char *host;
    const char *port_text;
};

/* One decoded reply.  `path` points into `buf`; free with reply_clear(). */
struct reply {
    lo_message msg;
    const char *path;
    const char *types;
    lo_arg **argv;
    int argc;
    unsigned char buf[MAX_PACKET];
};

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: looperctl [OPTIONS] COMMAND [ARGS]\n"
            "Controls a running looperd over OSC/UDP and prints its answer.\n\n"
            "Commands:\n"
            "  ping                 round trip through the audio thread, with its time\n"
            "  load ID PATH         load an audio file into slot ID; a relative PATH is\n"
            "                       made absolute against the current directory first\n"
            "                       (the daemon's working directory is not yours)\n"
            "  play ID [VEL] [KEY=VALUE]...\n"
            "                       start a one-shot voice of slot ID (velocity 0..1);\n"
            "                       keys: rate begin end pan gain attack release\n"
            "                       sustain accelerate cut out quant beats fit\n"
            "                       velocity\n"
            "                       (docs/protocol.md)\n"
            "  loop ID [VEL] [KEY=VALUE]...\n"
            "                       start a looping voice of slot ID\n"
            "  set ID [KEY=VALUE]...\n"
            "                       set slot ID's defaults for those keys; no keys:\n"
            "                       clear them\n"
            "  get ID               print slot ID's defaults as KEY=VALUE\n"
            "  stop [ID]            fade out every voice, or those of slot ID\n"
            "  unload ID            empty slot ID\n"
            "  status               voices, slots, xruns, DSP load, memory, tempo, beat\n"
            "  tempo BPM            set the tempo (20..999)\n"
            "  beat                 the beat now, the tempo and the quantum\n"
            "  version              the daemon's version\n"
            "  quit                 ask the daemon to shut down\n\n"
            "Options:\n"
            "  -H, --host HOST      daemon address or name, IPv4 or IPv6 (default %s)\n"
            "  -p, --port N         daemon UDP port (default %s)\n"
            "  -t, --timeout S      seconds to wait for the answer (default %g; %g for load)\n"
            "  -h, --help           this text\n"
            "  -V, --version        print looperctl's version\n\n"
            "Exit status: 0 success, 1 the daemon refused the request (reason on\n"
            "stderr), 2 usage error, no answer within the timeout, or local error.\n",
            DEFAULT_HOST, DEFAULT_PORT, DEFAULT_TIMEOUT_S, DEFAULT_LOAD_TIMEOUT_S);
}

static double mono_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* ---------------------------------------------------------------- parsing */

static int parse_id(const char *text, int32_t *id)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (!*text || *end || errno || v < INT32_MIN || v > INT32_MAX) {
        fprintf(stderr, "looperctl: ID must be a whole number, not '%s'\n", text);
        return -EINVAL;
    }
    *id = (int32_t)v;
    return 0;
}

static int parse_velocity(const char *text, float *vel)
{
    char *end;
    errno = 0;
    float v = strtof(text, &end);
    if (!*text || *end || errno || !isfinite(v)) {
        fprintf(stderr, "looperctl: VEL must be a number (0..1), not '%s'\n", text);
        return -EINVAL;
    }
    *vel = v;
    return 0;
}

/* One KEY=VALUE argument, added to `m` as a string and a number: an int32
 * when VALUE is a whole number that fits, else a double. */
static int add_key(lo_message m, const char *text)
{
    const char *eq = strchr(text, '=');
    if (!eq || eq == text || !eq[1]) {
        fprintf(stderr, "looperctl: expected KEY=VALUE, not '%s'\n", text);
        return -EINVAL;
    }
    char *end;
    errno = 0;
    long i = strtol(eq + 1, &end, 10);
    bool whole = !*end && errno == 0 && i >= INT32_MIN && i <= INT32_MAX;
    errno = 0;
    double v = strtod(eq + 1, &end);
    if (*end || errno) {
        fprintf(stderr, "looperctl: the value of '%s' must be a number\n", text);
        return -EINVAL;
    }
    char *key = strndup(text, (size_t)(eq - text));
    int err = key ? lo_message_add_string(m, key) : -1;
    free(key);
    if (err == 0)
        err = whole ? lo_message_add_int32(m, (int32_t)i) : lo_message_add_double(m, v);
    if (err < 0) {
        fprintf(stderr, "looperctl: out of memory\n");
        return -ENOMEM;
    }
    return 0;
}

static int parse_timeout(const char *text, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (!*text || *end || errno || !isfinite(v) || v <= 0 || v > MAX_TIMEOUT_S) {
        fprintf(stderr, "looperctl: --timeout wants seconds (0 < S <= %g), not '%s'\n",
                MAX_TIMEOUT_S, text);
        return -EINVAL;
    }
    *out = v;
    return 0;
}

static int parse_port(const char *text)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(text, &end, 10);
    if (!*text || *end || errno || *text == '-' || v < 1 || v > 65535) {
        fprintf(stderr, "looperctl: --port wants a number from 1 to 65535, not '%s'\n", text);
        return -EINVAL;
    }
    return 0;
}

/* ---------------------------------------------------------------- network */

static int conn_open(struct conn *c, const char *host, const char *port)
{
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC,
        .ai_socktype = SOCK_DGRAM,
        .ai_flags = AI_NUMERICSERV,
    };
    struct addrinfo *res = NULL, *pick = NULL;

    c->fd = -1;
    c->host = host;
    c->port_text = port;
    int r = getaddrinfo(host, port, &hints, &res);
    if (r != 0) {
        fprintf(stderr, "looperctl: cannot resolve %s: %s\n", host,
                r == EAI_SYSTEM ? strerror(errno) : gai_strerror(r));
        return -EHOSTUNREACH;
    }
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        if (a->ai_family == AF_INET) {
            pick = a;
            break;
        }
        if (!pick && a->ai_family == AF_INET6)
            pick = a;
    }
    if (!pick || pick->ai_addrlen > sizeof(c->to)) {
        fprintf(stderr, "looperctl: %s has no IPv4 or IPv6 address\n", host);
        freeaddrinfo(res);
        return -EAFNOSUPPORT;
    }
    memcpy(&c->to, pick->ai_addr, pick->ai_addrlen);
    c->tolen = pick->ai_addrlen;
    c->port = ntohs(pick->ai_family == AF_INET ? ((struct sockaddr_in *)pick->ai_addr)->sin_port
                                               : ((struct sockaddr_in6 *)pick->ai_addr)->sin6_port);
    int family = pick->ai_family;
    freeaddrinfo(res);

    c->fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        int e = errno;
        fprintf(stderr, "looperctl: socket: %s\n", strerror(e));
        return -e;
    }
    /* An ephemeral port on the wildcard address of the family: the kernel
     * picks the source address per destination. */
    struct sockaddr_storage local = {0};
    socklen_t locallen;
    if (family == AF_INET) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&local;
        s4->sin_family = AF_INET;
        s4->sin_addr.s_addr = htonl(INADDR_ANY);
        locallen = sizeof(*s4);
    } else {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&local;
        s6->sin6_family = AF_INET6;
        s6->sin6_addr = in6addr_any;
        locallen = sizeof(*s6);
    }
    if (bind(c->fd, (struct sockaddr *)&local, locallen) < 0) {
        int e = errno;
        fprintf(stderr, "looperctl: bind: %s\n", strerror(e));
        close(c->fd);
        c->fd = -1;
        return -e;
    }
    return 0;
}

static void conn_close(struct conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

/* Serialises and sends one message; takes ownership of `m` (freed here). */
static int send_msg(struct conn *c, const char *path, lo_message m)
{
    if (!m) {
        fprintf(stderr, "looperctl: out of memory\n");
        return -ENOMEM;
    }
    size_t len = 0;
    void *data = lo_message_serialise(m, path, NULL, &len);
    lo_message_free(m);
    if (!data) {
        fprintf(stderr, "looperctl: cannot encode %s\n", path);
        return -ENOMEM;
    }
    ssize_t n = sendto(c->fd, data, len, 0, (struct sockaddr *)&c->to, c->tolen);
    int e = errno;
    free(data);
    if (n < 0) {
        fprintf(stderr, "looperctl: cannot send %s to %s port %s: %s\n", path, c->host,
                c->port_text, strerror(e));
        return -e;
    }
    return 0;
}

static int send_simple(struct conn *c, const char *path)
{
    return send_msg(c, path, lo_message_new());
}

/* Sends `path` with an int32 id and, when `vel` is not NULL, a float. */
static int send_id(struct conn *c, const char *path, int32_t id, const float *vel)
{
    lo_message m = lo_message_new();
    if (m && (lo_message_add_int32(m, id) < 0 || (vel && lo_message_add_float(m, *vel) < 0))) {
        lo_message_free(m);
        m = NULL;
    }
    return send_msg(c, path, m);
}

static void reply_clear(struct reply *r)
{
    if (r->msg)
        lo_message_free(r->msg);
    r->msg = NULL;
    r->path = NULL;
    r->types = "";
    r->argv = NULL;
    r->argc = 0;
}

static bool from_daemon(const struct conn *c, const struct sockaddr_storage *from)
{
    if (from->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)from)->sin_port) == c->port;
    if (from->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)from)->sin6_port) == c->port;
    return false;
}

/* Receives the next OSC message from the daemon before `deadline` (a
 * mono_s() time).  Bundles and packets that do not decode are skipped.
 * Returns 0, -ETIMEDOUT, or another negative errno. */
static int recv_msg(struct conn *c, struct reply *r, double deadline)
{
    reply_clear(r);
    for (;;) {
        double left = deadline - mono_s();
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        int ms = (int)ceil(left * 1000);
        int n = poll(&p, 1, ms);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            continue; /* the loop head decides whether time is up */
        struct sockaddr_storage from;
        socklen_t fromlen = sizeof(from);
        ssize_t len =
            recvfrom(c->fd, r->buf, sizeof(r->buf), 0, (struct sockaddr *)&from, &fromlen);
        if (len < 0) {
            /* ICMP errors of an earlier send may show up here; keep
             * waiting, the timeout decides. */
            if (errno == EINTR || errno == EAGAIN || errno == ECONNREFUSED)
                continue;
            return -errno;
        }
        if (len == 0 || !from_daemon(c, &from) || r->buf[0] != '/')
            continue;
        int res = 0;
        lo_message m = lo_message_deserialise(r->buf, (size_t)len, &res);
        if (!m)
            continue;
        r->msg = m;
        r->path = lo_get_path(r->buf, len);
        r->types = lo_message_get_types(m);
        if (!r->types)
            r->types = "";
        r->argv = lo_message_get_argv(m);
        r->argc = lo_message_get_argc(m);
        if (!r->path) {
            reply_clear(r);
            continue;
        }
        return 0;
    }
}

static bool arg_is_string(const struct reply *r, int i)
{
    return i < r->argc && (r->types[i] == LO_STRING || r->types[i] == LO_SYMBOL);
}

/* liblo's argv points into the packed message, which is only 4-byte
 * aligned: copy values out instead of reading the 8-byte-aligned union
 * (as daemon/protocol.c does). */
static const char *arg_string(const struct reply *r, int i)
{
    return arg_is_string(r, i) ? (const char *)r->argv[i] : NULL;
}

static bool arg_number(const struct reply *r, int i, double *out)
{
    if (i >= r->argc)
        return false;
    switch (r->types[i]) {
    case LO_INT32: {
        int32_t v;
        memcpy(&v, r->argv[i], sizeof(v));
        *out = v;
        return true;
    }
    case LO_INT64: {
        int64_t v;
        memcpy(&v, r->argv[i], sizeof(v));
        *out = (double)v;
        return true;
    }
    case LO_FLOAT: {
        float v;
        memcpy(&v, r->argv[i], sizeof(v));
        *out = v;
        return true;
    }
    case LO_DOUBLE: {
        double v;
        memcpy(&v, r->argv[i], sizeof(v));
        *out = v;
        return true;
    }
    default:
        return false;
    }
}

/* An integer argument of any OSC number type; `def` when missing. */
static int64_t arg_int(const struct reply *r, int i, int64_t def)
{
    double v;
    if (i < r->argc && r->types[i] == LO_INT64) {
        int64_t h; /* exact, beyond 2^53 too */
        memcpy(&h, r->argv[i], sizeof(h));
        return h;
    }
    if (!arg_number(r, i, &v) || !isfinite(v) || v < -9.2e18 || v > 9.2e18)
        return def;
    return (int64_t)v;
}

static double arg_real(const struct reply *r, int i, double def)
{
    double v;
    return arg_number(r, i, &v) ? v : def;
}

/* What we wait for: `ok_path` (and, if `ok_arg0` is set, a first string
 * argument equal to it; if `want_id` is set, a second argument equal to
 * `id`), or a /fail whose first argument is one of `fail_for`. */
struct expect {
    const char *ok_path;
    const char *ok_arg0;
    bool want_id;
    int32_t id;
    const char *fail_for[2];
};

/* Waits for the expected answer.  Returns 0 with `*failed` false and the
 * answer in `r`, 0 with `*failed` true and the /fail in `r`, or a negative
 * errno (-ETIMEDOUT). */
static int await(struct conn *c, struct reply *r, const struct expect *x, double deadline,
                 bool *failed)
{
    *failed = false;
    for (;;) {
        int err = recv_msg(c, r, deadline);
        if (err < 0)
            return err;
        if (strcmp(r->path, "/fail") == 0) {
            const char *what = arg_string(r, 0);
            for (size_t i = 0; what && i < 2; i++) {
                if (x->fail_for[i] && strcmp(what, x->fail_for[i]) == 0) {
                    *failed = true;
                    return 0;
                }
            }
            continue;
        }
        if (strcmp(r->path, x->ok_path) != 0)
            continue;
        if (x->ok_arg0) {
            const char *a0 = arg_string(r, 0);
            if (!a0 || strcmp(a0, x->ok_arg0) != 0)
                continue;
        }
        if (x->want_id && arg_int(r, 1, INT64_MIN) != x->id)
            continue;
        return 0;
    }
}

/* ---------------------------------------------------------------- output */

/* "looperctl: play failed: id out of range (0..31)" */
static int report_fail(const char *cmd, const struct reply *r)
{
    const char *why = arg_string(r, 1);
    fprintf(stderr, "looperctl: %s failed: %s\n", cmd, why ? why : "(no reason given)");
    return EXIT_FAIL;
}

static int report_error(const struct conn *c, const char *cmd, int err, double timeout)
{
    if (err == -ETIMEDOUT)
        fprintf(stderr,
                "looperctl: %s: no answer from %s port %s within %g s (is looperd running?)\n", cmd,
                c->host, c->port_text, timeout);
    else
        fprintf(stderr, "looperctl: %s: %s\n", cmd, strerror(-err));
    return EXIT_USAGE;
}

static void print_bytes(const char *label, int64_t bytes)
{
    static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)bytes;
    size_t u = 0;
    while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        printf("%-16s %lld B\n", label, (long long)bytes);
    else
        printf("%-16s %.1f %s (%lld bytes)\n", label, v, units[u], (long long)bytes);
}

/* /status.reply: i voices, i slots, i xruns, i late, i refused, f dsp avg %,
 * f dsp peak %, i rate, i period, h sample bytes [, s state [, h stolen,
 * h lost [, f tempo, d beat]]] (docs/protocol.md). */
static void print_status(const struct reply *r)
{
    int64_t rate = arg_int(r, 7, 0), period = arg_int(r, 8, 0);
    const char *state = arg_string(r, 10);

    if (state)
        printf("%-16s %s\n", "state", state);
    printf("%-16s %lld\n", "voices playing", (long long)arg_int(r, 0, 0));
    printf("%-16s %lld\n", "slots loaded", (long long)arg_int(r, 1, 0));
    print_bytes("sample memory", arg_int(r, 9, 0));
    printf("%-16s %lld Hz\n", "sample rate", (long long)rate);
    if (rate > 0)
        printf("%-16s %lld frames (%.2f ms)\n", "period", (long long)period,
               (double)period * 1000.0 / (double)rate);
    else
        printf("%-16s %lld frames\n", "period", (long long)period);
    printf("%-16s %.1f %%\n", "DSP load", arg_real(r, 5, 0));
    printf("%-16s %.1f %% (since the last status)\n", "DSP peak", arg_real(r, 6, 0));
    printf("%-16s %lld\n", "xruns", (long long)arg_int(r, 2, 0));
    printf("%-16s %lld\n", "late starts", (long long)arg_int(r, 3, 0));
    printf("%-16s %lld\n", "refused", (long long)arg_int(r, 4, 0));
    if (r->argc > 12) {
        printf("%-16s %lld\n", "voices stolen", (long long)arg_int(r, 11, 0));
        printf("%-16s %lld\n", "lost events", (long long)arg_int(r, 12, 0));
    }
    if (r->argc > 14) {
        printf("%-16s %.2f BPM\n", "tempo", arg_real(r, 13, 0));
        printf("%-16s %.3f\n", "beat", arg_real(r, 14, 0));
    }
}

/* ---------------------------------------------------------------- commands */

struct cmd_ctx {
    struct conn *c;
    struct reply *r;
    double timeout;
    int argc; /* the command's own arguments */
    char **argv;
};

/* Request `path` (already sent), wait for `x`, report a /fail or a timeout.
 * Returns -1 when the answer is the expected one, else the exit status. */
static int finish(struct cmd_ctx *k, const char *cmd, const struct expect *x, double start)
{
    bool failed;
    int err = await(k->c, k->r, x, start + k->timeout, &failed);
    if (err < 0)
        return report_error(k->c, cmd, err, k->timeout);
    if (failed)
        return report_fail(cmd, k->r);
    return -1;
}

static int cmd_ping(struct cmd_ctx *k)
{
    double t0 = mono_s();
    if (send_simple(k->c, "/ping") < 0)
        return EXIT_USAGE;
    int st = finish(k, "ping", &(struct expect){.ok_path = "/pong", .fail_for = {"/ping"}}, t0);
    if (st >= 0)
        return st;
    printf("pong (%.2f ms)\n", (mono_s() - t0) * 1000.0);
    return EXIT_OK;
}

static int cmd_load(struct cmd_ctx *k)
{
    int32_t id;
    if (parse_id(k->argv[0], &id) < 0)
        return EXIT_USAGE;
    const char *path = k->argv[1];
    if (!*path) {
        fprintf(stderr, "looperctl: load: empty PATH\n");
        return EXIT_USAGE;
    }
    char *abs = NULL;
    if (path[0] != '/') {
        char *cwd = getcwd(NULL, 0);
        if (!cwd) {
            fprintf(stderr, "looperctl: load: cannot get the current directory: %s\n",
                    strerror(errno));
            return EXIT_USAGE;
        }
        /* "./x.wav" -> "/cwd/x.wav"; the daemon resolves the rest. */
        const char *rel = path;
        while (rel[0] == '.' && rel[1] == '/')
            for (rel += 2; *rel == '/'; rel++)
                ;
        int n = asprintf(&abs, "%s%s%s", cwd, strcmp(cwd, "/") == 0 ? "" : "/", rel);
        free(cwd);
        if (n < 0) {
            fprintf(stderr, "looperctl: out of memory\n");
            return EXIT_USAGE;
        }
        path = abs;
    }
    double t0 = mono_s();
    lo_message m = lo_message_new();
    if (m && (lo_message_add_int32(m, id) < 0 || lo_message_add_string(m, path) < 0)) {
        lo_message_free(m);
        m = NULL;
    }
    int err = send_msg(k->c, "/load", m);
    free(abs);
    if (err < 0)
        return EXIT_USAGE;
    struct expect x = {
        .ok_path = "/done", .ok_arg0 = "/load", .want_id = true, .id = id, .fail_for = {"/load"}};
    int st = finish(k, "load", &x, t0);
    if (st >= 0)
        return st;
    long long frames = (long long)arg_int(k->r, 2, 0), ch = (long long)arg_int(k->r, 3, 0);
    printf("loaded slot %d: %lld frame%s, %lld channel%s\n", id, frames, frames == 1 ? "" : "s", ch,
           ch == 1 ? "" : "s");
    return EXIT_OK;
}

/* /play, /loop, /set, /stop ID (in `m`, which this frees): no answer by
 * design; a /ping behind it tells. */
static int send_then_ping(struct cmd_ctx *k, const char *cmd, const char *path, lo_message m)
{
    double t0 = mono_s();
    if (send_msg(k->c, path, m) < 0 || send_simple(k->c, "/ping") < 0)
        return EXIT_USAGE;
    struct expect x = {.ok_path = "/pong", .fail_for = {path, "/ping"}};
    return finish(k, cmd, &x, t0);
}

static int unanswered_then_ping(struct cmd_ctx *k, const char *cmd, const char *path, int32_t id,
                                const float *vel)
{
    lo_message m = lo_message_new();
    if (m && (lo_message_add_int32(m, id) < 0 || (vel && lo_message_add_float(m, *vel) < 0))) {
        lo_message_free(m);
        m = NULL;
    }
    return send_then_ping(k, cmd, path, m);
}

/* ID, then (when `vel` is not NULL) an optional VEL, then KEY=VALUE...
 * into a new message; NULL after saying why. */
static lo_message id_and_keys(struct cmd_ctx *k, int32_t *id, float *vel, bool *has_vel)
{
    if (parse_id(k->argv[0], id) < 0)
        return NULL;
    int first = 1;
    *has_vel = false;
    if (vel && k->argc > 1 && !strchr(k->argv[1], '=')) {
        if (parse_velocity(k->argv[1], vel) < 0)
            return NULL;
        *has_vel = true;
        first = 2;
    }
    lo_message m = lo_message_new();
    if (!m || lo_message_add_int32(m, *id) < 0 || (*has_vel && lo_message_add_float(m, *vel) < 0)) {
        fprintf(stderr, "looperctl: out of memory\n");
        if (m)
            lo_message_free(m);
        return NULL;
    }
    for (int i = first; i < k->argc; i++) {
        if (add_key(m, k->argv[i]) < 0) {
            lo_message_free(m);
            return NULL;
        }
    }
    return m;
}

/* The keys as given, for the confirmation line: " (rate=2 pan=-1)". */
static void print_keys(struct cmd_ctx *k, int first)
{
    for (int i = first; i < k->argc; i++)
        printf("%s%s", i == first ? ", " : " ", k->argv[i]);
}

static int cmd_trigger(struct cmd_ctx *k, const char *cmd, const char *path)
{
    int32_t id;
    float vel = 1.0f;
    bool has_vel;
    lo_message m = id_and_keys(k, &id, &vel, &has_vel);
    if (!m)
        return EXIT_USAGE;
    int st = send_then_ping(k, cmd, path, m);
    if (st >= 0)
        return st;
    if (has_vel)
        printf("slot %d: %s sent (velocity %g", id, cmd, (double)vel);
    else
        printf("slot %d: %s sent (the slot's velocity", id, cmd);
    print_keys(k, has_vel ? 2 : 1);
    printf(")\n");
    return EXIT_OK;
}

static int cmd_set(struct cmd_ctx *k)
{
    int32_t id;
    bool has_vel;
    lo_message m = id_and_keys(k, &id, NULL, &has_vel);
    if (!m)
        return EXIT_USAGE;
    int st = send_then_ping(k, "set", "/set", m);
    if (st >= 0)
        return st;
    if (k->argc == 1)
        printf("slot %d: defaults cleared\n", id);
    else
        printf("slot %d: defaults set\n", id);
    return EXIT_OK;
}

/* /get.reply ID KEY VALUE ...: one line, KEY=VALUE as `set` takes them. */
static int cmd_get(struct cmd_ctx *k)
{
    int32_t id;
    if (parse_id(k->argv[0], &id) < 0)
        return EXIT_USAGE;
    double t0 = mono_s();
    if (send_id(k->c, "/get", id, NULL) < 0)
        return EXIT_USAGE;
    int st = finish(k, "get", &(struct expect){.ok_path = "/get.reply", .fail_for = {"/get"}}, t0);
    if (st >= 0)
        return st;
    printf("slot %d:", id);
    if (k->r->argc <= 1)
        printf(" no defaults");
    for (int i = 1; i + 1 < k->r->argc; i += 2) {
        const char *key = arg_string(k->r, i);
        double v;
        if (!key || !arg_number(k->r, i + 1, &v))
            continue;
        printf(" %s=%g", key, v);
    }
    printf("\n");
    return EXIT_OK;
}

static int cmd_play(struct cmd_ctx *k)
{
    return cmd_trigger(k, "play", "/play");
}

static int cmd_loop(struct cmd_ctx *k)
{
    return cmd_trigger(k, "loop", "/loop");
}

static int cmd_stop(struct cmd_ctx *k)
{
    if (k->argc == 1) {
        int32_t id;
        if (parse_id(k->argv[0], &id) < 0)
            return EXIT_USAGE;
        int st = unanswered_then_ping(k, "stop", "/stop", id, NULL);
        if (st >= 0)
            return st;
        printf("slot %d: stopping\n", id);
        return EXIT_OK;
    }
    double t0 = mono_s();
    if (send_simple(k->c, "/stop") < 0)
        return EXIT_USAGE;
    struct expect x = {.ok_path = "/done", .ok_arg0 = "/stop", .fail_for = {"/stop"}};
    int st = finish(k, "stop", &x, t0);
    if (st >= 0)
        return st;
    printf("stopped every voice\n");
    return EXIT_OK;
}

static int cmd_unload(struct cmd_ctx *k)
{
    int32_t id;
    if (parse_id(k->argv[0], &id) < 0)
        return EXIT_USAGE;
    double t0 = mono_s();
    if (send_id(k->c, "/unload", id, NULL) < 0)
        return EXIT_USAGE;
    struct expect x = {.ok_path = "/done",
                       .ok_arg0 = "/unload",
                       .want_id = true,
                       .id = id,
                       .fail_for = {"/unload"}};
    int st = finish(k, "unload", &x, t0);
    if (st >= 0)
        return st;
    printf("unloaded slot %d\n", id);
    return EXIT_OK;
}

static int cmd_status(struct cmd_ctx *k)
{
    double t0 = mono_s();
    if (send_simple(k->c, "/status") < 0)
        return EXIT_USAGE;
    int st = finish(k, "status",
                    &(struct expect){.ok_path = "/status.reply", .fail_for = {"/status"}}, t0);
    if (st >= 0)
        return st;
    print_status(k->r);
    return EXIT_OK;
}

static int cmd_version(struct cmd_ctx *k)
{
    double t0 = mono_s();
    if (send_simple(k->c, "/version") < 0)
        return EXIT_USAGE;
    int st = finish(k, "version",
                    &(struct expect){.ok_path = "/version.reply", .fail_for = {"/version"}}, t0);
    if (st >= 0)
        return st;
    const char *name = arg_string(k->r, 0), *ver = arg_string(k->r, 1);
    printf("%s %s\n", name ? name : "looperd", ver ? ver : "(unknown version)");
    return EXIT_OK;
}

static int cmd_quit(struct cmd_ctx *k)
{
    double t0 = mono_s();
    if (send_simple(k->c, "/quit") < 0)
        return EXIT_USAGE;
    struct expect x = {.ok_path = "/done", .ok_arg0 = "/quit", .fail_for = {"/quit"}};
    int st = finish(k, "quit", &x, t0);
    if (st >= 0)
        return st;
    printf("looperd is shutting down\n");
    return EXIT_OK;
}

/* /tempo BPM: unanswered when good; a /ping behind it tells. */
static int cmd_tempo(struct cmd_ctx *k)
{
    char *end;
    double bpm = strtod(k->argv[0], &end);
    if (!*k->argv[0] || *end || !isfinite(bpm)) {
        fprintf(stderr, "looperctl: tempo wants a number of BPM, not '%s'\n", k->argv[0]);
        return EXIT_USAGE;
    }
    lo_message m = lo_message_new();
    if (m && lo_message_add_double(m, bpm) < 0) {
        lo_message_free(m);
        m = NULL;
    }
    int st = send_then_ping(k, "tempo", "/tempo", m);
    if (st >= 0)
        return st;
    printf("tempo %g BPM\n", bpm);
    return EXIT_OK;
}

/* /beat.reply d beat, f tempo, f quantum, i peers, i link. */
static int cmd_beat(struct cmd_ctx *k)
{
    double t0 = mono_s();
    if (send_simple(k->c, "/beat") < 0)
        return EXIT_USAGE;
    int st =
        finish(k, "beat", &(struct expect){.ok_path = "/beat.reply", .fail_for = {"/beat"}}, t0);
    if (st >= 0)
        return st;
    double beat = arg_real(k->r, 0, 0), quantum = arg_real(k->r, 2, 0);
    printf("%-16s %.3f (bar %lld, beat %.3f of %g)\n", "beat", beat,
           quantum > 0 ? (long long)floor(beat / quantum) : 0LL,
           quantum > 0 ? beat - floor(beat / quantum) * quantum : beat, quantum);
    printf("%-16s %.2f BPM\n", "tempo", arg_real(k->r, 1, 0));
    printf("%-16s %lld%s\n", "link peers", (long long)arg_int(k->r, 3, 0),
           arg_int(k->r, 4, 0) ? "" : " (Link off)");
    return EXIT_OK;
}

static const struct command {
    const char *name;
    int min_args, max_args;
    int (*run)(struct cmd_ctx *k);
    const char *synopsis;
} commands[] = {
    /* clang-format off */
    {"ping",    0, 0, cmd_ping,    "ping"},
    {"load",    2, 2, cmd_load,    "load ID PATH"},
    {"play",    1, 64, cmd_play,   "play ID [VEL] [KEY=VALUE]..."},
    {"loop",    1, 64, cmd_loop,   "loop ID [VEL] [KEY=VALUE]..."},
    {"set",     1, 64, cmd_set,    "set ID [KEY=VALUE]..."},
    {"get",     1, 1, cmd_get,     "get ID"},
    {"stop",    0, 1, cmd_stop,    "stop [ID]"},
    {"unload",  1, 1, cmd_unload,  "unload ID"},
    {"status",  0, 0, cmd_status,  "status"},
    {"tempo",   1, 1, cmd_tempo,   "tempo BPM"},
    {"beat",    0, 0, cmd_beat,    "beat"},
    {"version", 0, 0, cmd_version, "version"},
    {"quit",    0, 0, cmd_quit,    "quit"},
    /* clang-format on */
};

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        /* clang-format off */
        {"host",    required_argument, NULL, 'H'},
        {"port",    required_argument, NULL, 'p'},
        {"timeout", required_argument, NULL, 't'},
        {"help",    no_argument,       NULL, 'h'},
        {"version", no_argument,       NULL, 'V'},
        {NULL, 0, NULL, 0},
        /* clang-format on */
    };
    const char *host = DEFAULT_HOST, *port = DEFAULT_PORT;
    double timeout = 0; /* 0: the command's default */
    int opt;

    /* "+": options end at the command, so "play 3 -0.5" is not an option. */
    while ((opt = getopt_long(argc, argv, "+H:p:t:hV", longopts, NULL)) != -1) {
        switch (opt) {
        case 'H':
            host = optarg;
            break;
        case 'p':
            if (parse_port(optarg) < 0)
                return EXIT_USAGE;
            port = optarg;
            break;
        case 't':
            if (parse_timeout(optarg, &timeout) < 0)
                return EXIT_USAGE;
            break;
        case 'h':
            usage(stdout);
            return EXIT_OK;
        case 'V':
            printf("looperctl %s\n", LOOPERD_VERSION);
            return EXIT_OK;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "looperctl: no command given (try --help)\n");
        return EXIT_USAGE;
    }
    const char *name = argv[optind];
    const struct command *cmd = NULL;
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(commands[i].name, name) == 0)
            cmd = &commands[i];
    if (!cmd) {
        fprintf(stderr, "looperctl: unknown command '%s' (try --help)\n", name);
        return EXIT_USAGE;
    }
    int nargs = argc - optind - 1;
    if (nargs < cmd->min_args || nargs > cmd->max_args) {
        fprintf(stderr, "looperctl: usage: looperctl [OPTIONS] %s\n", cmd->synopsis);
        return EXIT_USAGE;
    }
    if (timeout == 0)
        timeout = cmd->run == cmd_load ? DEFAULT_LOAD_TIMEOUT_S : DEFAULT_TIMEOUT_S;

    struct conn c;
    if (conn_open(&c, host, port) < 0)
        return EXIT_USAGE;
    struct reply *r = calloc(1, sizeof(*r));
    if (!r) {
        fprintf(stderr, "looperctl: out of memory\n");
        conn_close(&c);
        return EXIT_USAGE;
    }
    reply_clear(r);
    struct cmd_ctx k = {
        .c = &c, .r = r, .timeout = timeout, .argc = nargs, .argv = argv + optind + 1};
    int status = cmd->run(&k);
    fflush(stdout);
    reply_clear(r);
    free(r);
    conn_close(&c);
    return status;
}
