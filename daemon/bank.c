/* bank.c - see bank.h. */
#include "bank.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

void bank_free(struct bank *b)
{
    if (!b->entries)
        return;
    for (uint32_t i = 0; i < b->nslots; i++)
        free(b->entries[i].path);
    free(b->entries);
    b->entries = NULL;
}

static char *resolve(const char *dir, const char *path)
{
    char *out = NULL;
    if (path[0] == '/')
        return strdup(path);
    if (asprintf(&out, "%s/%s", dir, path) < 0)
        return NULL;
    return out;
}

const char *bank_strerror(int err)
{
    switch (err) {
    case -EISDIR:
        return "is a directory";
    case -ENODEV:
        return "not a regular file (a FIFO, device or socket)";
    case -EFBIG:
        return "larger than 1 MiB (a bank is a short text file)";
    default:
        return strerror(-err);
    }
}

/* Opens `file` for reading without ever blocking (O_NONBLOCK: a FIFO with
 * no writer would block open() itself) and checks what it is before a byte
 * is read.  Returns the descriptor, blocking again, or a negative errno. */
static int open_checked(const char *file)
{
    int fd = open(file, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return -errno;
    struct stat st;
    int err = 0;
    if (fstat(fd, &st) < 0)
        err = -errno;
    else if (S_ISDIR(st.st_mode))
        err = -EISDIR;
    else if (!S_ISREG(st.st_mode))
        err = -ENODEV;
    else if (st.st_size > BANK_MAX_BYTES)
        err = -EFBIG;
    else if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0)
        err = -errno;
    if (err < 0) {
        close(fd);
        return err;
    }
    return fd;
}

int bank_check(const char *file)
{
    int fd = open_checked(file);
    if (fd < 0)
        return fd;
    close(fd);
    return 0;
}

/* The tokens after the path: [gain] [key=value]...; NULL or the reason
 * the line is refused (in `why`). */
static const char *parse_keys(char **save, uint32_t outputs, struct params *p,
                              char why[PARAMS_WHY_MAX + 64])
{
    char *tok = strtok_r(NULL, " \t\r\n", save);
    if (tok && !strchr(tok, '=')) {
        char *end;
        float gain = strtof(tok, &end);
        if (*end || !isfinite(gain) || gain < 0 || gain > BANK_MAX_GAIN ||
            params_set(p, "gain", gain, outputs) < 0)
            return "the gain must be a number from 0 to 4";
        tok = strtok_r(NULL, " \t\r\n", save);
    }
    for (; tok; tok = strtok_r(NULL, " \t\r\n", save)) {
        char reason[PARAMS_WHY_MAX];
        if (!strchr(tok, '='))
            return "expected 'id path [gain] [key=value]...' (a path with spaces is not "
                   "supported)";
        if (params_parse_text(p, tok, outputs, reason) < 0) {
            snprintf(why, PARAMS_WHY_MAX + 64, "%s in '%.40s'", reason, tok);
            return why;
        }
    }
    char reason[PARAMS_WHY_MAX];
    if (params_check(p, reason) < 0) {
        snprintf(why, PARAMS_WHY_MAX + 64, "%s", reason);
        return why;
    }
    return NULL;
}

int bank_read(const char *file, uint32_t nslots, uint32_t outputs, struct bank *out)
{
    *out = (struct bank){0};
    int fd = open_checked(file);
    if (fd < 0)
        return fd;
    /* The whole file, at most BANK_MAX_BYTES even if it grew since fstat. */
    char *text = malloc(BANK_MAX_BYTES + 1);
    size_t len = 0;
    int err = text ? 0 : -ENOMEM;
    while (err == 0) {
        ssize_t n = read(fd, text + len, BANK_MAX_BYTES + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            err = -errno;
        else if (n == 0)
            break;
        else if ((len += (size_t)n) > BANK_MAX_BYTES)
            err = -EFBIG;
    }
    close(fd);
    FILE *f = err == 0 ? fmemopen(text, len ? len : 1, "r") : NULL;
    if (err == 0 && !f)
        err = -errno;
    if (err < 0) {
        free(text);
        return err;
    }
    if (len == 0)
        text[0] = '\n'; /* fmemopen wants a size of at least 1 */
    char *copy = strdup(file);
    char *dir = copy ? dirname(copy) : NULL;
    out->nslots = nslots;
    out->entries = calloc(nslots, sizeof(*out->entries));
    if (!copy || !out->entries) {
        free(copy);
        fclose(f);
        free(text);
        bank_free(out);
        return -ENOMEM;
    }

    char *line = NULL;
    size_t cap = 0;
    int bad = 0;
    for (unsigned no = 1; getline(&line, &cap, f) >= 0; no++) {
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char *save = NULL;
        char *id_s = strtok_r(line, " \t\r\n", &save);
        if (!id_s)
            continue; /* blank or comment */
        char *path = strtok_r(NULL, " \t\r\n", &save);
        char *end;
        const char *why = NULL;
        char keys_why[PARAMS_WHY_MAX + 64];
        unsigned long id = strtoul(id_s, &end, 10);
        struct params params = {0};
        char range[64];
        snprintf(range, sizeof(range), "the id must be a slot number from 0 to %u", nslots - 1);
        if (*end || id_s[0] == '-' || id >= nslots)
            why = range;
        else if (!path)
            why = "a path must follow the id";
        else
            why = parse_keys(&save, outputs, &params, keys_why);
        if (!why && out->entries[id].path)
            why = "this slot is already given on an earlier line";
        if (why) {
            log_warn("%s:%u: %s; line skipped", file, no, why);
            bad++;
            continue;
        }
        char *full = resolve(dir, path);
        struct stat st;
        if (!full || stat(full, &st) < 0) {
            log_warn("%s:%u: %s: %s; line skipped", file, no, full ? full : path,
                     strerror(full ? errno : ENOMEM));
            free(full);
            bad++;
            continue;
        }
        struct bank_entry *e = &out->entries[id];
        e->path = full;
        e->params = params;
        e->mtime = st.st_mtim;
    }
    free(line);
    free(copy);
    fclose(f);
    free(text);
    return bad;
}

bool bank_changed(const struct bank *old, const struct bank *new, uint32_t id)
{
    const struct bank_entry *a = old && old->entries ? &old->entries[id] : NULL;
    const struct bank_entry *b = &new->entries[id];
    if (!b->path)
        return false;
    if (!a || !a->path)
        return true;
    return strcmp(a->path, b->path) != 0 || a->mtime.tv_sec != b->mtime.tv_sec ||
           a->mtime.tv_nsec != b->mtime.tv_nsec;
}
