/* log.h - leveled log lines on stderr.
 *
 * Under systemd (JOURNAL_STREAM is set) each line carries the sd-daemon
 * "<N>" priority prefix so journald files it at the right level; on a
 * terminal it reads "looperd: warning: ...".  Never call from the audio
 * thread: it formats and writes.
 */
#ifndef LOOPERD_LOG_H
#define LOOPERD_LOG_H

#include <syslog.h> /* LOG_ERR ... LOG_DEBUG, for their values only */

void log_init(int max_level);
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_NOTICE, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
