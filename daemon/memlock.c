/* memlock.c - locking the audio thread's memory (see memlock.h).
 *
 * Which mappings count as the audio thread's: it runs our own code, libjack
 * (the cycle wait and signal, port buffers, cycle times), libc (memset,
 * sem_post, the clock) and libm, and it reads and writes JACK's shared
 * segments: /dev/shm/jack-* (the server's graph and port buffers) and
 * /dev/shm/jack_sem.* (the per-client wake-up).  Not /dev/shm/jack_db-*,
 * libdb's metadata store, which only the metadata API on other threads uses.
 * Everything else (decoders, liblo, the converter, libstdc++, libdb) runs
 * on ordinary threads, where a first-touch fault costs microseconds and is
 * harmless.
 */
#include "memlock.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MCL_ONFAULT
#define MCL_ONFAULT 4 /* Linux >= 4.4; older headers lack it */
#endif

#define MEMLOCK_STACK_TOUCH (64 * 1024)

/* The sanitizers' runtimes intercept mlock() and mlockall() and make them
 * succeed without locking anything (their shadow memory is too large to
 * lock).  Under them memlock_audio_mappings() reads every page instead, so
 * the audio thread still finds its pages present, as it does in a real
 * build where mlock() populates them. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define MEMLOCK_INTERCEPTED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) ||                         \
    __has_feature(memory_sanitizer)
#define MEMLOCK_INTERCEPTED 1
#endif
#endif
#ifndef MEMLOCK_INTERCEPTED
#define MEMLOCK_INTERCEPTED 0
#endif

int memlock_all(void)
{
    if (mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) == 0)
        return 0;
    /* EINVAL: a kernel without MCL_ONFAULT.  Lock everything, the old way. */
    if (errno == EINVAL && mlockall(MCL_CURRENT | MCL_FUTURE) == 0)
        return 0;
    return -errno;
}

static long page_size(void)
{
    long page = sysconf(_SC_PAGESIZE);
    return page > 0 ? page : 4096;
}

void memlock_touch(void *p, size_t n)
{
    if (!p || n == 0)
        return;
    long page = page_size();
    volatile unsigned char *c = p;
    uintptr_t first = (uintptr_t)p & ~(uintptr_t)(page - 1);
    for (uintptr_t a = first; a < (uintptr_t)p + n; a += (uintptr_t)page) {
        size_t i = a < (uintptr_t)p ? 0 : (size_t)(a - (uintptr_t)p);
        c[i] = c[i]; /* rewrite what is there: the contents stay */
    }
}

void memlock_touch_stack(void)
{
    /* Only where the stack is comfortably larger (libjack's are 512 KiB). */
    pthread_attr_t attr;
    size_t size = 0;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        pthread_attr_getstacksize(&attr, &size);
        pthread_attr_destroy(&attr);
    }
    if (size < 4 * MEMLOCK_STACK_TOUCH)
        return;
    volatile unsigned char area[MEMLOCK_STACK_TOUCH];
    long page = page_size();
    for (size_t i = 0; i < sizeof(area); i += (size_t)page)
        area[i] = 0;
    area[sizeof(area) - 1] = 0;
}

/* True for the library whose file name is `base` followed by a version. */
static bool is_lib(const char *path, const char *base)
{
    const char *name = strrchr(path, '/');
    name = name ? name + 1 : path;
    size_t n = strlen(base);
    return strncmp(name, base, n) == 0 && (name[n] == '.' || name[n] == '-');
}

static bool wanted(const char *path, const char *exe)
{
    if (exe[0] && strncmp(path, exe, strlen(exe)) == 0)
        return true; /* also "... (deleted)" after a package upgrade */
    return is_lib(path, "libjack.so") || is_lib(path, "libc.so") || is_lib(path, "libm.so") ||
           strncmp(path, "/dev/shm/jack-", 14) == 0 || strncmp(path, "/dev/shm/jack_sem", 17) == 0;
}

/* Without the privilege to lock, reading every page still makes it present
 * now, which is most of what matters.  One byte of each page, whatever
 * object lies there: not instrumented, since a sanitizer would see reads of
 * its own redzones. */
__attribute__((no_sanitize("address"))) static void read_pages(uintptr_t start, uintptr_t end)
{
    long page = page_size();
    unsigned char sink = 0;
    for (uintptr_t a = start; a < end; a += (uintptr_t)page)
        sink ^= *(volatile const unsigned char *)a;
    (void)sink;
}

long memlock_audio_mappings(void)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    exe[n > 0 ? n : 0] = '\0';
    if (n > 10 && strcmp(exe + n - 10, " (deleted)") == 0)
        exe[n - 10] = '\0';

    FILE *f = fopen("/proc/self/maps", "re");
    if (!f)
        return -errno;
    char line[PATH_MAX + 128];
    long locked = 0;
    while (fgets(line, sizeof(line), f)) {
        unsigned long start, end;
        char perms[5];
        int path_at = 0;
        if (sscanf(line, "%lx-%lx %4s %*s %*s %*s %n", &start, &end, perms, &path_at) < 3 ||
            path_at == 0)
            continue;
        char *path = line + path_at;
        path[strcspn(path, "\n")] = '\0';
        if (perms[0] != 'r' || !wanted(path, exe))
            continue; /* PROT_NONE guard gaps between a library's segments */
        if (!MEMLOCK_INTERCEPTED && mlock((void *)start, end - start) == 0)
            locked += (long)(end - start);
        else
            read_pages(start, end);
    }
    fclose(f);
    return locked;
}
