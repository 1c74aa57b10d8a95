/* log.c - see log.h. */
#include "log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

static int max_level = LOG_INFO;
static bool journal;

void log_init(int level)
{
    max_level = level;
    journal = getenv("JOURNAL_STREAM") != NULL;
}

void log_msg(int level, const char *fmt, ...)
{
    static const char *const words[] = {
        [LOG_EMERG] = "emergency: ",
        [LOG_ALERT] = "alert: ",
        [LOG_CRIT] = "critical: ",
        [LOG_ERR] = "error: ",
        [LOG_WARNING] = "warning: ",
        [LOG_NOTICE] = "",
        [LOG_INFO] = "",
        [LOG_DEBUG] = "debug: ",
    };
    char line[1024];
    va_list ap;

    if (level > max_level)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    /* One fputs per line: stderr is unbuffered, and a single write keeps
     * lines from different threads whole. */
    char out[1100];
    if (journal)
        snprintf(out, sizeof(out), "<%d>%s\n", level, line);
    else
        snprintf(out, sizeof(out), "looperd: %s%s\n", words[level & 7], line);
    fputs(out, stderr);
}
