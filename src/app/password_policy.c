/*
 * The password policy (issue 4): length in characters, the shipped list of common and breached
 * passwords, and not the email address. The list (data/common-passwords.txt, embedded at build
 * time by gen_blob.cmake) is John the Ripper's password.lst as Debian ships it; its header says
 * where it comes from. It holds few passwords of 12 characters or more, so a password is also
 * refused when, lower-cased and with digits and symbols cut from its end, or reduced to a word it
 * repeats, it is on the list: "password1234", "Monkey!monkey!" and "qwertyqwerty" are all refused.
 */
#include "accounts.h"

#include <sodium.h>
#include <string.h>

extern const char ar__common_passwords[];
extern const size_t ar__common_passwords_len;

#define WORD_MAX 128

/* 1 when w (lower-case, n bytes) is a line of the list; comment lines start with "#!". */
static int listed(const char *w, size_t n)
{
    if (n == 0)
        return 0;
    const char *p = ar__common_passwords, *end = p + ar__common_passwords_len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = (size_t)((nl ? nl : end) - p);
        if (len == n && !(len >= 2 && p[0] == '#' && p[1] == '!')) {
            size_t i = 0;
            while (i < n) {
                char ch = p[i];
                if (ch >= 'A' && ch <= 'Z')
                    ch = (char)(ch - 'A' + 'a');
                if (ch != w[i])
                    break;
                i++;
            }
            if (i == n)
                return 1;
        }
        p += len + 1;
    }
    return 0;
}

static int is_tail_char(char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= ' ' && ch <= '/') || (ch >= ':' && ch <= '@') ||
           (ch >= '[' && ch <= '`') || (ch >= '{' && ch <= '~');
}

/* The shortest unit w repeats (for "abcabcabc", 3), or n when it repeats none. */
static size_t period(const char *w, size_t n)
{
    for (size_t p = 1; p <= n / 2; p++) {
        if (n % p != 0)
            continue;
        size_t i = p;
        while (i < n && w[i] == w[i - p])
            i++;
        if (i == n)
            return p;
    }
    return n;
}

static size_t utf8_chars(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)s[i] & 0xc0) != 0x80;
    return n;
}

int ar_app_password_policy(const char *pw, size_t len, const char *email, size_t elen,
                           const char **why)
{
    if (utf8_chars(pw, len) < AR_PASSWORD_MIN_CHARS) {
        *why = "password_too_short";
        return AR_EINVAL;
    }
    if (len <= WORD_MAX) {
        char w[WORD_MAX];
        for (size_t i = 0; i < len; i++)
            w[i] = (pw[i] >= 'A' && pw[i] <= 'Z') ? (char)(pw[i] - 'A' + 'a') : pw[i];
        size_t n = len;
        int common = listed(w, n);
        while (n > 0 && is_tail_char(w[n - 1]))
            n--;
        common = common || listed(w, n) || listed(w, period(w, n));
        /* "Monkey!monkey!": the repeated unit, then its tail cut. */
        size_t unit = period(w, len);
        while (unit > 0 && is_tail_char(w[unit - 1]))
            unit--;
        common = common || (unit < len && listed(w, unit));
        size_t at = 0;
        while (at < elen && email[at] != '@')
            at++;
        int mail = (elen > 0 && n == elen && strncmp(w, email, n) == 0) ||
                   (at >= 3 && n == at && strncmp(w, email, at) == 0);
        sodium_memzero(w, sizeof(w));
        if (common) {
            *why = "password_too_common";
            return AR_EINVAL;
        }
        if (mail) {
            *why = "password_is_email";
            return AR_EINVAL;
        }
    }
    return 0;
}
