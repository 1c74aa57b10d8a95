/* log.c - see log.h. */
#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Call sites remembered for rate limiting; when all are taken the least
 * recently used one is reported and reused. */
#define LOG_SITES 32
/* The start of the last suppressed line, repeated in the report. */
#define LOG_SAMPLE 120

struct site {
    const char *fmt; /* NULL: unused */
    int level;
    uint64_t window_start; /* ns */
    unsigned count;        /* lines written in this window */
    uint64_t suppressed;   /* lines not written since the last report */
    uint64_t suppressed_since;
    uint64_t last_use;
    char sample[LOG_SAMPLE];
};

static int max_level = LOG_INFO;
static bool journal;
static FILE *out_file;
static uint64_t (*clock_fn)(void);
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct site sites[LOG_SITES];

static uint64_t mono_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

void log_init(int level)
{
    max_level = level;
    journal = getenv("JOURNAL_STREAM") != NULL;
}

void log_redirect(FILE *f, uint64_t (*now_ns)(void))
{
    pthread_mutex_lock(&lock);
    out_file = f;
    clock_fn = now_ns;
    memset(sites, 0, sizeof(sites));
    pthread_mutex_unlock(&lock);
}

size_t log_escape(char *dst, size_t cap, const char *src)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;
    if (cap == 0)
        return 0;
    for (const unsigned char *s = (const unsigned char *)src; *s; s++) {
        char esc[4];
        size_t k = 0;
        switch (*s) {
        case '\n':
            esc[k++] = '\\', esc[k++] = 'n';
            break;
        case '\r':
            esc[k++] = '\\', esc[k++] = 'r';
            break;
        case '\t':
            esc[k++] = '\\', esc[k++] = 't';
            break;
        case '\\':
            esc[k++] = '\\', esc[k++] = '\\';
            break;
        default:
            if (*s < 0x20 || *s == 0x7f) {
                esc[k++] = '\\', esc[k++] = 'x';
                esc[k++] = hex[*s >> 4], esc[k++] = hex[*s & 15];
            } else {
                esc[k++] = (char)*s;
            }
        }
        if (n + k >= cap) /* never half an escape */
            break;
        memcpy(dst + n, esc, k);
        n += k;
    }
    dst[n] = '\0';
    return n;
}

/* Writes one finished (escaped) line; the caller holds the lock. */
static void emit(int level, const char *line)
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
    /* One fputs per line: stderr is unbuffered, and a single write keeps
     * lines from different threads whole. */
    char out[LOG_LINE_MAX + 64];
    if (journal)
        snprintf(out, sizeof(out), "<%d>%s\n", level & 7, line);
    else
        snprintf(out, sizeof(out), "looperd: %s%s\n", words[level & 7], line);
    fputs(out, out_file ? out_file : stderr);
}

static void report(struct site *s)
{
    char line[LOG_SAMPLE + 64];
    snprintf(line, sizeof(line), "suppressed %llu similar line%s like: %s",
             (unsigned long long)s->suppressed, s->suppressed == 1 ? "" : "s", s->sample);
    emit(s->level, line);
    s->suppressed = 0;
}

/* Reports every site whose suppressed lines have waited LOG_REPORT_NS. */
static void report_due(uint64_t now)
{
    for (int i = 0; i < LOG_SITES; i++)
        if (sites[i].fmt && sites[i].suppressed && now - sites[i].suppressed_since >= LOG_REPORT_NS)
            report(&sites[i]);
}

static struct site *site_of(const char *fmt, int level, uint64_t now)
{
    struct site *lru = &sites[0];
    for (int i = 0; i < LOG_SITES; i++) {
        if (sites[i].fmt == fmt && sites[i].level == level)
            return &sites[i];
        if (!sites[i].fmt) {
            lru = &sites[i];
            break;
        }
        if (sites[i].last_use < lru->last_use)
            lru = &sites[i];
    }
    if (lru->fmt && lru->suppressed)
        report(lru);
    memset(lru, 0, sizeof(*lru));
    lru->fmt = fmt;
    lru->level = level;
    lru->window_start = now;
    return lru;
}

void log_msg(int level, const char *fmt, ...)
{
    char raw[LOG_LINE_MAX];
    char line[LOG_LINE_MAX];
    va_list ap;

    if (level > max_level)
        return;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof(raw), fmt, ap);
    va_end(ap);
    /* Whatever a client sent (a path, an address) may be in the line:
     * escaping here, once, means no call site can forge a line. */
    log_escape(line, sizeof(line), raw);

    pthread_mutex_lock(&lock);
    uint64_t now = clock_fn ? clock_fn() : mono_ns();
    report_due(now);
    struct site *s = site_of(fmt, level, now);
    s->last_use = now;
    if (now - s->window_start >= LOG_WINDOW_NS) {
        s->window_start = now;
        s->count = 0;
    }
    if (s->count < LOG_BURST) {
        s->count++;
        emit(level, line);
    } else {
        if (!s->suppressed)
            s->suppressed_since = now;
        s->suppressed++;
        size_t n = strnlen(line, sizeof(s->sample) - 1);
        memcpy(s->sample, line, n);
        s->sample[n] = '\0';
    }
    pthread_mutex_unlock(&lock);
}

void log_tick(void)
{
    pthread_mutex_lock(&lock);
    report_due(clock_fn ? clock_fn() : mono_ns());
    pthread_mutex_unlock(&lock);
}
