/* fuzz_decode.c - libFuzzer harness for the decoder: arbitrary bytes as an
 * audio file, through libsndfile and (for rates other than 48 kHz) libsoxr.
 *
 * decode_file() takes a path, so each input is written to one temp file,
 * created once and rewritten per input.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "decode.h"
#include "sample_alloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[96];
static int fd = -1;

static void cleanup(void)
{
    if (path[0])
        unlink(path);
}

static void setup(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(path, sizeof(path), "%s/fuzz_decode.XXXXXX", tmp && strlen(tmp) < 64 ? tmp : "/tmp");
    fd = mkstemp(path);
    if (fd < 0) {
        perror("fuzz_decode: mkstemp");
        abort();
    }
    atexit(cleanup);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (fd < 0)
        setup();

    if (ftruncate(fd, 0) < 0 || pwrite(fd, data, size, 0) != (ssize_t)size) {
        perror("fuzz_decode: write");
        abort();
    }

    struct sample_buffer *buf = NULL;
    char err[256];
    err[0] = '\0';
    /* An 8 MiB cap still takes every path of the decoder (the cap itself
     * included) while keeping each run short: a header that claims a 1 Hz
     * rate or an unknown length would otherwise make every such input
     * decode and convert up to the cap. */
    int r = decode_file(path, 48000, 8u << 20, &decode_default_options, &buf, err, sizeof(err));
    if (r == 0) {
        if (!buf || buf->frames == 0 || buf->channels < 1 || buf->channels > 2)
            abort(); /* success must mean a playable buffer */
        sample_buffer_free(buf);
    } else {
        if (buf || r > 0 || !err[0] || strchr(err, '\n'))
            abort(); /* failure must leave nothing and give a one-line reason */
    }
    return 0;
}
