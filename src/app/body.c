/*
 * Request bodies: strict JSON parsing and the one function that applies field tables.
 */
#include "body.h"

#include "anteroom/err.h"
#include "anteroom/json.h"

#include <stdio.h>
#include <string.h>

/* Nesting deeper than any body we accept is refused before jansson builds it. */
#define MAX_DEPTH 16

/*
 * Decodes one UTF-8 sequence (jansson has already refused invalid UTF-8, so this only needs to
 * find code points). Returns the sequence length, at least 1.
 */
static size_t utf8_cp(const unsigned char *s, size_t n, uint32_t *cp)
{
    size_t len = s[0] < 0x80 ? 1 : (s[0] & 0xe0) == 0xc0 ? 2 : (s[0] & 0xf0) == 0xe0 ? 3 : 4;
    if (len > n)
        len = n;
    *cp = len == 1 ? s[0] : len == 2 ? s[0] & 0x1fu : len == 3 ? s[0] & 0x0fu : s[0] & 0x07u;
    for (size_t i = 1; i < len; i++)
        *cp = (*cp << 6) | (s[i] & 0x3fu);
    return len;
}

/* Controls, C1 controls, line/paragraph separators and bidirectional overrides: a display name
 * must not be able to disguise itself or break a colleague's screen. */
static int bad_text_cp(uint32_t cp)
{
    return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || (cp >= 0x2028 && cp <= 0x202e) ||
           (cp >= 0x2066 && cp <= 0x2069) || cp == 0xfeff;
}

/* 1 when every byte is a lower-case letter (or any letter with upper), a digit or in extra. */
static int ascii_in(const unsigned char *p, size_t len, int upper, const char *extra)
{
    for (size_t i = 0; i < len; i++)
        if (!((p[i] >= 'a' && p[i] <= 'z') || (upper && p[i] >= 'A' && p[i] <= 'Z') ||
              (p[i] >= '0' && p[i] <= '9') || (p[i] != '\0' && strchr(extra, p[i]) != NULL)))
            return 0;
    return 1;
}

int ar_app_charset_ok(ar_charset_t cs, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    switch (cs) {
    case AR_CS_ANY:
        return memchr(s, '\0', len) == NULL;
    case AR_CS_TEXT:
        for (size_t i = 0; i < len;) {
            uint32_t cp;
            i += utf8_cp(p + i, len - i, &cp);
            if (bad_text_cp(cp))
                return 0;
        }
        return 1;
    case AR_CS_EMAIL: {
        size_t at = 0, ats = 0;
        for (size_t i = 0; i < len; i++) {
            if (p[i] <= 0x20 || p[i] >= 0x7f || p[i] == '"' || p[i] == '\\' || p[i] == '<' ||
                p[i] == '>')
                return 0;
            if (p[i] == '@')
                at = i, ats++;
        }
        return ats == 1 && at > 0 && at + 1 < len;
    }
    case AR_CS_SLUG:
        return ascii_in(p, len, 0, "-");
    case AR_CS_ID:
        return ascii_in(p, len, 1, "._-");
    case AR_CS_LANG:
        return ascii_in(p, len, 1, "-");
    }
    return 0;
}

static const char *charset_rule(ar_charset_t cs)
{
    switch (cs) {
    case AR_CS_TEXT:
        return "text without control or direction characters";
    case AR_CS_EMAIL:
        return "an email address";
    case AR_CS_SLUG:
        return "only a-z, 0-9 and -";
    case AR_CS_ID:
        return "only A-Z, a-z, 0-9, '.', '_' and '-'";
    case AR_CS_LANG:
        return "only A-Z, a-z, 0-9 and '-'";
    default:
        return "text without NUL";
    }
}

static int check_field(const ar_app_field_t *f, json_t *v, char *msg, size_t msgcap)
{
    switch (f->type) {
    case AR_FIELD_STR: {
        if (!json_is_string(v))
            break;
        size_t n = json_string_length(v);
        if ((int64_t)n < f->min || (int64_t)n > f->max) {
            snprintf(msg, msgcap, "field '%s' must be %lld to %lld bytes long", f->key,
                     (long long)f->min, (long long)f->max);
            return AR_EINVAL;
        }
        if (!ar_app_charset_ok(f->charset, json_string_value(v), n)) {
            snprintf(msg, msgcap, "field '%s' must be %s", f->key, charset_rule(f->charset));
            return AR_EINVAL;
        }
        return 0;
    }
    case AR_FIELD_INT: {
        if (!json_is_integer(v))
            break;
        json_int_t n = json_integer_value(v);
        if (n < f->min || n > f->max) {
            snprintf(msg, msgcap, "field '%s' must be from %lld to %lld", f->key, (long long)f->min,
                     (long long)f->max);
            return AR_EINVAL;
        }
        return 0;
    }
    case AR_FIELD_BOOL:
        if (json_is_boolean(v))
            return 0;
        break;
    }
    static const char *const names[] = {"", "a string", "an integer", "a boolean"};
    snprintf(msg, msgcap, "field '%s' must be %s", f->key, names[f->type]);
    return AR_EINVAL;
}

int ar_app_body_parse(const char *buf, size_t len, size_t cap, const ar_app_field_t *fields,
                      size_t nfields, json_t **out, char *msg, size_t msgcap)
{
    *out = NULL;
    msg[0] = '\0';
    if (len > cap) {
        snprintf(msg, msgcap, "the body is larger than %zu bytes", cap);
        return AR_ETOOBIG;
    }
    int deep, pos;
    json_t *root = ar_json_load_strict(buf, len, MAX_DEPTH, &deep, &pos);
    if (deep) {
        snprintf(msg, msgcap, "the body nests deeper than %d levels", MAX_DEPTH);
        return AR_EPARSE;
    }
    if (root == NULL || !json_is_object(root)) {
        /* jansson's text can quote the input; give only the position. */
        if (root == NULL)
            snprintf(msg, msgcap, "the body is not valid JSON (at byte %d)", pos);
        else
            snprintf(msg, msgcap, "the body must be a JSON object");
        json_decref(root);
        return AR_EPARSE;
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        size_t i = 0;
        while (i < nfields && strcmp(fields[i].key, key) != 0)
            i++;
        if (i == nfields) {
            /* The key is the client's own text: do not echo it. */
            snprintf(msg, msgcap, "the body has a field this request does not take");
            json_decref(root);
            return AR_EINVAL;
        }
    }
    for (size_t i = 0; i < nfields; i++) {
        v = json_object_get(root, fields[i].key);
        if (v == NULL) {
            if (fields[i].required) {
                snprintf(msg, msgcap, "field '%s' is missing", fields[i].key);
                json_decref(root);
                return AR_EINVAL;
            }
            continue;
        }
        int rc = check_field(&fields[i], v, msg, msgcap);
        if (rc < 0) {
            json_decref(root);
            return rc;
        }
    }
    *out = root;
    return 0;
}
