/* notify.c - see notify.h. */
#include "notify.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"

static struct sockaddr_un addr;
static socklen_t addr_len;
static uint64_t watchdog_usec;

void notify_init(void)
{
    const char *path = getenv("NOTIFY_SOCKET");
    const char *wd = getenv("WATCHDOG_USEC");
    const char *wd_pid = getenv("WATCHDOG_PID");

    addr_len = 0;
    if (path && (path[0] == '/' || path[0] == '@') && strlen(path) < sizeof(addr.sun_path)) {
        memset(&addr, 0, sizeof(addr));
        addr.sun_family = AF_UNIX;
        memcpy(addr.sun_path, path, strlen(path));
        if (path[0] == '@')
            addr.sun_path[0] = '\0';
        addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
    }
    watchdog_usec = 0;
    if (wd && (!wd_pid || (pid_t)atol(wd_pid) == getpid()))
        watchdog_usec = strtoull(wd, NULL, 10);
}

uint64_t notify_watchdog_usec(void)
{
    return watchdog_usec;
}

void notify_send(const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    if (addr_len == 0)
        return;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&addr, addr_len) < 0)
        log_debug("sd_notify: %s", strerror(errno));
    close(fd);
}
