/* decode.h - turn an audio file into a sample buffer at the engine rate.
 *
 * Runs on the loader's threads only (it does file I/O and allocates).  libsndfile
 * reads every format it knows (WAV, AIFF, FLAC, Ogg Vorbis, Opus, MP3, ...);
 * a file already at the engine rate is copied through bit-exact, any other
 * rate is converted with libsoxr.  A conversion may decode on a helper
 * thread of its own (signals blocked), always joined before decode_file()
 * returns.
 *
 * The path is opened with O_NONBLOCK (DECODE_OPEN_FLAGS) and checked to be a regular file before
 * anything reads it, so a FIFO or a device can never block the loader.
 */
#ifndef LOOPERD_DECODE_H
#define LOOPERD_DECODE_H

#include <fcntl.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "sample.h"

/* Stack for a thread that runs decode_file(): the decoders (libFLAC,
 * libvorbis, libopus, mpg123) keep sizeable arrays on the stack, more than
 * the daemon's 256 KiB default for threads. */
#define DECODE_STACK_SIZE (1024 * 1024)

/* Decodes `path` into a new buffer at `rate`.  `max_bytes` caps the size of
 * the decoded buffer (0: no cap).  On success returns 0 and stores the buffer
 * in *out (prefaulted, ready to publish).  On failure returns a negative
 * errno (-ENOENT, -EACCES, -EISDIR, -EINVAL for not audio/corrupt, -E2BIG for
 * too many channels or too large, -ENODATA for zero frames, -ENOMEM, -EIO)
 * and writes a short human-readable reason, without a trailing newline and
 * suitable for an OSC /fail reply, into err[errlen]. */
/* How a load decodes; NULL means decode_default_options. */
struct decode_options {
    /* Conversions of a known length of at least this many input frames
     * decode and convert the file in two halves on two threads
     * (decode_split.c); UINT64_MAX: never split. */
    uint64_t split_min_frames;
};

/* The production default (decode_split.c says why). */
extern const struct decode_options decode_default_options;

int decode_file(const char *path, uint32_t rate, size_t max_bytes,
                const struct decode_options *opts, struct sample_buffer **out, char *err,
                size_t errlen);

/* How a file to decode is opened: O_NONBLOCK so that a FIFO or a device
 * cannot block the open, O_NOCTTY so that a tty never becomes ours. */
#define DECODE_OPEN_FLAGS (O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)

/* The same from a descriptor opened with DECODE_OPEN_FLAGS (the loader
 * resolves and opens the path itself: loader.c, "Opening"), which it owns
 * from then on: it is closed on every path.  `progress`, if not NULL, is
 * bumped after every read that returned data, by whichever thread of the
 * load made it, so a caller can tell a read that blocks from a long decode. */
int decode_fd(int fd, uint32_t rate, size_t max_bytes, const struct decode_options *opts,
              _Atomic uint64_t *progress, struct sample_buffer **out, char *err, size_t errlen);

/* Writes the reason decode_file() gives for failing to open a path with
 * errno `e` and returns it as a negative errno. */
int decode_open_error(int e, char *err, size_t errlen);

#endif
