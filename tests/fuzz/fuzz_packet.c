/* fuzz_packet.c - libFuzzer harness for the OSC packet path: unpacking
 * (osc_dispatch_packet) and every request handler (protocol_handle).
 *
 * The daemon is set up once, as main.c does it but without JACK: an engine,
 * the OSC socket (replies go to a second UDP socket of ours that we drain),
 * a real loader confined to a temp sample directory holding one tiny WAV
 * ("a.wav", so /load of it succeeds and /play has something to play; every
 * other path fails fast), and a zeroed struct audio (no client: every audio_*
 * query answers 0).  After each input this thread plays the audio thread
 * (engine_process) and the reply thread (replier_drain), so the rings are
 * empty again and nothing is held between inputs.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "audio.h"
#include "engine.h"
#include "loader.h"
#include "log.h"
#include "osc.h"
#include "params.h"
#include "protocol.h"
#include "replies.h"
#include "reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct engine engine;
static struct osc_server osc;
static struct loader loader;
static struct audio audio;
static struct replies replies;
static struct protocol proto;
static struct replier replier;
static struct pads pads;
static struct osc_peer peer;
static int sink_fd = -1;
static uint64_t now_us; /* a steady clock: 64 frames at 48 kHz per round */
static float out_l[64], out_r[64];
static char sample_dir[64];
static char sample_path[96];

static void die(const char *what)
{
    fprintf(stderr, "fuzz_packet: setup failed: %s\n", what);
    abort();
}

/* 16 frames of 16-bit mono PCM at 48 kHz. */
static void write_tiny_wav(const char *path)
{
    static const unsigned char hdr[44] = {
        'R',  'I', 'F', 'F', 36 + 32, 0, 0,   0,   'W', 'A',  'V',  'E', 'f', 'm',  't',
        ' ',  16,  0,   0,   0,       1, 0,   1,   0,   0x80, 0xbb, 0,   0,   0x00, 0x77,
        0x01, 0,   2,   0,   16,      0, 'd', 'a', 't', 'a',  32,   0,   0,   0};
    unsigned char pcm[32];
    for (int i = 0; i < 32; i++)
        pcm[i] = (unsigned char)(i * 7);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(hdr, 1, sizeof(hdr), f) != sizeof(hdr) ||
        fwrite(pcm, 1, sizeof(pcm), f) != sizeof(pcm) || fclose(f) != 0)
        die("cannot write the sample file");
}

static void cleanup(void)
{
    if (sample_path[0])
        unlink(sample_path);
    if (sample_dir[0])
        rmdir(sample_dir);
}

static void forget(void *l, uint32_t id, uint64_t seq)
{
    loader_forget(l, id, seq);
    pads_unloaded(&pads, id, seq);
}

static void setup(void)
{
    char err[256];

    /* /quit sends SIGTERM to the process: it must not end the fuzzer. */
    signal(SIGTERM, SIG_IGN);
    log_init(getenv("FUZZ_VERBOSE") ? LOG_DEBUG : LOG_CRIT);

    if (engine_init(&engine, 32, 32, 1, 48000) < 0)
        die("engine_init");
    if (osc_open(&osc, "127.0.0.1", "0", err, sizeof(err)) < 0)
        die(err);

    /* Replies go to this socket; it is drained after every input, and as a
     * non-blocking UDP receiver a full buffer only drops, never blocks. */
    sink_fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t slen = sizeof(sin);
    if (sink_fd < 0 || bind(sink_fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
        getsockname(sink_fd, (struct sockaddr *)&sin, &slen) < 0)
        die("reply socket");
    memcpy(&peer.addr, &sin, sizeof(sin));
    peer.len = sizeof(sin);

    const char *tmp = getenv("TMPDIR");
    snprintf(sample_dir, sizeof(sample_dir), "%s/fuzz_packet.XXXXXX",
             tmp && strlen(tmp) < 32 ? tmp : "/tmp");
    if (!mkdtemp(sample_dir))
        die("mkdtemp");
    snprintf(sample_path, sizeof(sample_path), "%s/a.wav", sample_dir);
    write_tiny_wav(sample_path);
    atexit(cleanup);

    struct loader_limits limits = {
        .max_sample_bytes = 1 << 20,
        .max_memory_bytes = 8 << 20,
        .sample_dir = sample_dir,
    };
    memset(&audio, 0, sizeof(audio));
    replies_init(&replies, &osc, ENGINE_EVENT_RING);
    if (pads_init(&pads, engine.nslots) < 0)
        die("pads_init");
    protocol_init(&proto, &engine, &osc, &replies, &loader, &audio, &pads);
    proto.outputs = 2; /* so that `out 1` is good and `out 2` is not */
    if (loader_start(&loader, &engine, &replies, &limits, err, sizeof(err)) < 0)
        die(err);
    /* The reply thread's fields, as replier_start sets them, with main's
     * hook for applied unloads. */
    replier.engine = &engine;
    replier.replies = &replies;
    replier.on_unloaded = forget;
    replier.user = &loader;
}

/* One round of what the audio and reply threads do. */
static void settle(void)
{
    engine_process(&engine, (float *[]){out_l, out_r}, 64,
                   (struct engine_clock){.t0 = now_us, .t1 = now_us + 1333});
    now_us += 1333;
    replier_drain(&replier);
}

static void drain_sink(void)
{
    char buf[OSC_MAX_PACKET];
    while (recv(sink_fd, buf, sizeof(buf), MSG_DONTWAIT) >= 0)
        ;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        setup();
        ready = 1;
    }

    osc_dispatch_packet(data, size, &peer, protocol_handle, &proto);

    /* Let the loader finish what the packet queued (loads fail fast or
     * decode the tiny sample), running periods meanwhile as JACK would: the
     * loader waits for room in the load ring.  Then apply and answer
     * everything. */
    settle();
    for (int i = 0; !loader_wait_idle(&loader, 1); i++) {
        if (i == 10000)
            die("the loader is stuck");
        settle();
    }
    settle();
    drain_sink();
    return 0;
}
