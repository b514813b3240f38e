/*
 * Opening hours (hours.h). Local time comes from the C library's tz database: the zone is
 * selected by setting TZ and calling tzset() before localtime_r(). TZ is process-wide, so every
 * change happens under one mutex and TZ is put back before it is released. Only this file
 * changes TZ; the rest of Anteroom works in UTC (logs, the store's BIGINT seconds), so nothing
 * else depends on the local zone. Writing our own TZif reader would avoid the global, but would
 * duplicate the C library's handling of the POSIX rule that covers future dates.
 */
#include "hours.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static pthread_mutex_t tz_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const day_names[7] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

static int parse_day(const char *s, size_t len, size_t *i, int *day)
{
    if (*i + 3 > len)
        return AR_EPARSE;
    for (int d = 0; d < 7; d++)
        if (memcmp(s + *i, day_names[d], 3) == 0) {
            *day = d;
            *i += 3;
            return 0;
        }
    return AR_EPARSE;
}

static int parse_2d(const char *s, size_t len, size_t *i, int *v)
{
    if (*i + 2 > len || s[*i] < '0' || s[*i] > '9' || s[*i + 1] < '0' || s[*i + 1] > '9')
        return AR_EPARSE;
    *v = (s[*i] - '0') * 10 + (s[*i + 1] - '0');
    *i += 2;
    return 0;
}

static int parse_time(const char *s, size_t len, size_t *i, int *minutes)
{
    int h, m;
    if (parse_2d(s, len, i, &h) < 0 || *i >= len || s[*i] != ':')
        return AR_EPARSE;
    (*i)++;
    if (parse_2d(s, len, i, &m) < 0 || m > 59 || h > 24 || (h == 24 && m != 0))
        return AR_EPARSE;
    *minutes = h * 60 + m;
    return 0;
}

/* Monday-to-Friday written "mon-fri"; a range wraps the week ("sat-mon") as people mean it. */
static int parse_days(const char *s, size_t len, size_t *i, uint8_t *mask)
{
    *mask = 0;
    for (;;) {
        int a, b;
        if (parse_day(s, len, i, &a) < 0)
            return AR_EPARSE;
        b = a;
        if (*i < len && s[*i] == '-') {
            (*i)++;
            if (parse_day(s, len, i, &b) < 0)
                return AR_EPARSE;
        }
        for (int d = a;; d = (d + 1) % 7) {
            *mask |= (uint8_t)(1u << d);
            if (d == b)
                break;
        }
        if (*i < len && s[*i] == ',') {
            (*i)++;
            continue;
        }
        return 0;
    }
}

int ar_hours_parse(const char *s, size_t len, ar_hours_t *out)
{
    memset(out, 0, sizeof(*out));
    if (len > AR_HOURS_TEXT_MAX)
        return AR_EPARSE;
    size_t i = 0;
    while (i < len) {
        uint8_t mask;
        if (parse_days(s, len, &i, &mask) < 0)
            return AR_EPARSE;
        int spans = 0;
        while (i < len && s[i] == ' ') {
            i++;
            int a, b;
            if (parse_time(s, len, &i, &a) < 0 || i >= len || s[i] != '-')
                return AR_EPARSE;
            i++;
            if (parse_time(s, len, &i, &b) < 0 || b <= a || out->n >= AR_HOURS_SPANS_MAX)
                return AR_EPARSE;
            out->spans[out->n++] = (ar_hours_span_t){mask, (uint16_t)a, (uint16_t)b};
            spans++;
        }
        if (spans == 0)
            return AR_EPARSE;
        if (i < len) {
            /* "; " between rules; the space is optional. */
            if (s[i] != ';')
                return AR_EPARSE;
            i++;
            if (i < len && s[i] == ' ')
                i++;
            if (i == len)
                return AR_EPARSE;
        }
    }
    return 0;
}

int ar_tz_valid(const char *name, size_t len)
{
    if (len == 0 || len > AR_TZ_NAME_MAX || name[0] == '/' || name[0] == '.' ||
        memchr(name, '\0', len) != NULL)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '-' || c == '+' || c == '/';
        if (!ok || (c == '/' && i + 1 < len && name[i + 1] == '.'))
            return 0;
    }
    char path[32 + AR_TZ_NAME_MAX];
    memcpy(path, "/usr/share/zoneinfo/", 20);
    memcpy(path + 20, name, len);
    path[20 + len] = '\0';
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* Local time of t in zone tz, under tz_lock. */
static int local_tm(const char *tz, int64_t t, struct tm *out)
{
    time_t tt = (time_t)t;
    pthread_mutex_lock(&tz_lock);
    const char *old = getenv("TZ");
    char saved[AR_TZ_NAME_MAX + 2] = "";
    size_t oldlen = old != NULL ? strlen(old) : 0;
    int had = old != NULL && oldlen < sizeof(saved);
    if (had)
        memcpy(saved, old, oldlen + 1);
    int rc = setenv("TZ", tz, 1) == 0 ? 0 : AR_ENOMEM;
    if (rc == 0) {
        tzset();
        rc = localtime_r(&tt, out) != NULL ? 0 : AR_EINVAL;
    }
    if (had)
        (void)setenv("TZ", saved, 1);
    else
        (void)unsetenv("TZ");
    tzset();
    pthread_mutex_unlock(&tz_lock);
    return rc;
}

int ar_hours_open_at(const ar_hours_t *h, const char *tz, int64_t now, int *open)
{
    if (!ar_tz_valid(tz, strlen(tz)))
        return AR_EINVAL;
    *open = 0;
    if (h->n == 0) {
        *open = 1;
        return 0;
    }
    struct tm tm;
    int rc = local_tm(tz, now, &tm);
    if (rc < 0)
        return rc;
    int minute = tm.tm_hour * 60 + tm.tm_min;
    for (size_t i = 0; i < h->n; i++) {
        const ar_hours_span_t *s = &h->spans[i];
        if ((s->days & (1u << tm.tm_wday)) && minute >= s->start && minute < s->end)
            *open = 1;
    }
    return 0;
}
