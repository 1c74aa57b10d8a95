/* notify.h - the systemd notification protocol, without libsystemd.
 *
 * The protocol is one datagram per message to the AF_UNIX socket named in
 * $NOTIFY_SOCKET ("@name" is the abstract namespace).  That is small enough
 * to speak directly, and it keeps the daemon free of a dependency it does
 * not need when it runs without systemd: with no $NOTIFY_SOCKET every call
 * here does nothing.
 */
#ifndef LOOPERD_NOTIFY_H
#define LOOPERD_NOTIFY_H

#include <stdint.h>

/* Reads $NOTIFY_SOCKET and $WATCHDOG_USEC (honouring $WATCHDOG_PID). */
void notify_init(void);
/* Sends "READY=1", "STATUS=...", "WATCHDOG=1", "STOPPING=1", ... */
void notify_send(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The watchdog interval systemd asked for, in microseconds; 0 when off. */
uint64_t notify_watchdog_usec(void);

#endif
