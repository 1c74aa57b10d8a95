/* memlock.h - keeping what the audio thread touches resident, and no more.
 *
 * A page fault in the process callback is a dropout waiting to happen, so
 * looperd locks its memory.  It does so with mlockall(MCL_ONFAULT): pages
 * are locked as they are first touched, instead of every page of every
 * mapped library being read in and pinned up front (libsndfile alone drags
 * in five codec libraries with their encoders; libjack brings libstdc++ and
 * libdb: megabytes of code the audio thread never runs; docs/performance.md,
 * "Resident memory").  The price is that
 * whatever the audio thread touches must have been touched before it runs:
 *  - memlock_audio_mappings() populates and locks, whole, the mappings the
 *    process callback executes in or reads (looperd itself, libjack, libc,
 *    libm) and JACK's shared-memory segments (port buffers, the graph);
 *  - memlock_touch() writes every page of a fresh allocation (the engine's
 *    pools; rings are cleared anyway, sample buffers are prefaulted);
 *  - the audio thread touches its own stack in JACK's thread-init callback.
 * tests/test_e2e.py counts the audio thread's page faults while it plays.
 */
#ifndef LOOPERD_MEMLOCK_H
#define LOOPERD_MEMLOCK_H

#include <stdbool.h>
#include <stddef.h>

/* mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT), or without MCL_ONFAULT
 * on a kernel older than 4.4.  Returns 0 or a negative errno (EPERM/ENOMEM:
 * no CAP_IPC_LOCK and RLIMIT_MEMLOCK too small). */
int memlock_all(void);

/* Locks and faults in the mappings the audio thread uses (see above).
 * Call after connecting to JACK, before activating, and again after every
 * reconnect (the new server's segments are new mappings).  Returns the
 * bytes locked, or a negative errno if /proc/self/maps cannot be read.
 * Best effort: a range that cannot be locked is still faulted in. */
long memlock_audio_mappings(void);

/* Writes every page of [p, p + n) so it is resident (and, under
 * MCL_ONFAULT, locked) before the audio thread first reads it.  Writing, not
 * reading: a read of an untouched anonymous page only maps the shared zero
 * page, and the first write would fault again. */
void memlock_touch(void *p, size_t n);

/* Writes the 64 KiB of the calling thread's stack below the caller's frame:
 * far more than the process callback's deepest call chain needs. */
void memlock_touch_stack(void);

#endif
