/*
 * A report's query string comes from anyone with a session, and the CSV cells carry names
 * administrators typed (src/app/reports.c). The first byte picks the parser: even bytes the
 * query, odd ones a CSV cell. Beyond "no crash" it checks their promises: an accepted query
 * names a real range within its bound and a valid slug; a cell, read back by RFC 4180 rules,
 * is exactly the input (with an apostrophe in front when the input starts like a formula), and
 * never itself starts like a formula.
 */
#include "body.h"
#include "reports.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_query(const char *q, size_t len)
{
    ar__report_query_t p;
    const char *bad = ar__report_query_parse(q, len, &p);
    if (bad != NULL)
        return;
    /* 2000-01-01 is day 10957, 2199-12-31 day 83838. */
    if (p.from < 10957 || p.to > 83838 || p.to < p.from ||
        p.to - p.from + 1 > (p.by_hour ? 31 : 366) || (p.by_hour != 0 && p.by_hour != 1))
        __builtin_trap();
    size_t alen = strnlen(p.area, sizeof(p.area));
    if (alen == sizeof(p.area) || (alen > 0 && !ar_app_charset_ok(AR_CS_SLUG, p.area, alen)))
        __builtin_trap();
    if (len > AR__REPORT_QUERY_MAX || memchr(q, '%', len) != NULL)
        __builtin_trap();
}

static void check_cell(const char *s)
{
    char buf[1024 * 3];
    size_t len = 0;
    if (ar__csv_cell(buf, sizeof(buf), &len, s, 1) < 0)
        return;
    if (len >= sizeof(buf) || buf[len] != '\0' || strlen(buf) != len)
        __builtin_trap();
    /* Undo the quoting. */
    char back[sizeof(buf)];
    size_t n = 0, i = 0;
    if (buf[0] == '"') {
        if (len < 2 || buf[len - 1] != '"')
            __builtin_trap();
        for (i = 1; i < len - 1; i++) {
            if (buf[i] == '"') {
                if (buf[i + 1] != '"')
                    __builtin_trap();
                i++;
            }
            back[n++] = buf[i];
        }
    } else {
        if (strpbrk(buf, ",\"\r\n") != NULL)
            __builtin_trap();
        memcpy(back, buf, len);
        n = len;
    }
    back[n] = '\0';
    if (n > 0 && strchr("=+-@\t\r", back[0]) != NULL)
        __builtin_trap();
    int formula = s[0] != '\0' && strchr("=+-@\t\r", s[0]) != NULL;
    const char *body = formula ? back + 1 : back;
    if ((formula && back[0] != '\'') || strcmp(body, s) != 0)
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 1024)
        return 0;
    char in[1025];
    memcpy(in, data + 1, size - 1);
    in[size - 1] = '\0';
    if ((data[0] & 1) == 0)
        check_query(in, size - 1);
    else
        check_cell(in); /* up to the first NUL, as a C string cell */
    return 0;
}
