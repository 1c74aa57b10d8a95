/* decode.h - turn an audio file into a sample buffer at the engine rate.
 *
 * Runs on the loader thread only (it does file I/O and allocates).  libsndfile
 * reads every format it knows (WAV, AIFF, FLAC, Ogg Vorbis, Opus, MP3, ...);
 * a file already at the engine rate is copied through bit-exact, any other
 * rate is converted with libsoxr.  A conversion may decode on a helper
 * thread of its own (signals blocked), always joined before decode_file()
 * returns.
 *
 * The path is opened with O_NONBLOCK and checked to be a regular file before
 * anything reads it, so a FIFO or a device can never block the loader.
 */
#ifndef LOOPERD_DECODE_H
#define LOOPERD_DECODE_H

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
int decode_file(const char *path, uint32_t rate, size_t max_bytes, struct sample_buffer **out,
                char *err, size_t errlen);

/* Conversions of a known length of at least this many input frames decode
 * and convert the file in two halves on two threads (decode_split.c).  A
 * variable only so that the tests and bench_decode can move it
 * (UINT64_MAX: never split) to compare the paths; the daemon leaves it
 * alone, and it must not change while decode_file() runs. */
extern uint64_t decode_split_min_frames;

#endif
