/* bank.h - the start-up bank: which file goes in which slot.
 *
 * A bank is a plain text file, one "id path [gain] [key=value]..." per
 * line; "#" starts a comment; relative paths are relative to the bank file's
 * directory.  The gain and the keys (params.h, the same as /set's; the
 * positional gain is the key `gain`) are the slot's defaults, not part of
 * the load: main makes them the slot's defaults, exactly, every time the
 * bank is read.  It is loaded at start-up (before systemd hears READY=1) and
 * again on SIGHUP, when only the slots whose path or file changed are loaded
 * again, and slots that left the bank are emptied.  A bad line (a bad gain
 * or key included) is reported with its line number and skipped; the rest
 * still loads.  The file itself must be
 * a readable regular file of at most BANK_MAX_BYTES: anything else (missing,
 * a directory, a FIFO, a device) is refused whole, without reading from it
 * or blocking on it.
 */
#ifndef LOOPERD_BANK_H
#define LOOPERD_BANK_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "params.h"

#define BANK_MAX_GAIN 4.0f /* +12 dB: room to lift a quiet sample */
#define BANK_MAX_BYTES (1024 * 1024)

struct bank_entry {
    char *path;            /* absolute or relative to the cwd; NULL: slot not in the bank */
    struct params params;  /* the line's gain and keys */
    struct timespec mtime; /* of the file when the bank was read */
};

struct bank {
    uint32_t nslots;
    struct bank_entry *entries; /* nslots */
};

/* Reads `file` for a pool of `nslots` and `outputs` output pairs.  Returns
 * the number of bad lines (each logged), or a negative errno when the file
 * cannot be read or is not a bank file (bank_strerror() says why); then
 * *out is empty. */
int bank_read(const char *file, uint32_t nslots, uint32_t outputs, struct bank *out);
/* The checks of bank_read() on the file alone, reading nothing: 0 or a
 * negative errno. */
int bank_check(const char *file);
/* The reason for a negative errno from bank_read() or bank_check(). */
const char *bank_strerror(int err);
void bank_free(struct bank *b);
/* True when slot `id` must be loaded again going from `old` to `new`: its
 * path or its file changed (not its gain or keys). */
bool bank_changed(const struct bank *old, const struct bank *new, uint32_t id);

#endif
