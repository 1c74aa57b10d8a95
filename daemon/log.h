/* log.h - leveled log lines on stderr.
 *
 * Under systemd (JOURNAL_STREAM is set) each line carries the sd-daemon
 * "<N>" priority prefix so journald files it at the right level; on a
 * terminal it reads "looperd: warning: ...".  Never call from the audio
 * thread: it formats and writes.
 */
#ifndef LOOPERD_LOG_H
#define LOOPERD_LOG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <syslog.h> /* LOG_ERR ... LOG_DEBUG, for their values only */

#define LOG_LINE_MAX 1024 /* longer lines are cut */
#define LOG_BURST 5
#define LOG_WINDOW_NS 1000000000ull
#define LOG_REPORT_NS 1000000000ull

void log_init(int max_level);
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Writes the reports of suppressed lines that are due.  Any thread. */
void log_tick(void);
/* Copies `src` into `dst` (at most cap - 1 bytes and a NUL, never half an
 * escape) with \n \r \t \\ and \xHH for the other control bytes.
 * Returns the length written. */
size_t log_escape(char *dst, size_t cap, const char *src);
/* For tests: write to `f` instead of stderr and read time from `now_ns`
 * (CLOCK_MONOTONIC when NULL); forgets every site. */
void log_redirect(FILE *f, uint64_t (*now_ns)(void));

#define log_error(...) log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_NOTICE, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
