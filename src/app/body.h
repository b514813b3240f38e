/*
 * JSON request bodies: parsed with jansson (strict: one value, duplicate keys refused, no NUL
 * in strings) and checked against a declarative field table by one function (style.md rule 13).
 * Error messages name the field and the rule, never the value: they go back to the client and a
 * value can be a password or a patient's name.
 */
#ifndef ANTEROOM_APP_BODY_H
#define ANTEROOM_APP_BODY_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    AR_FIELD_STR = 1,
    AR_FIELD_INT = 2,
    AR_FIELD_BOOL = 3,
} ar_field_type_t;

typedef enum {
    AR_CS_ANY = 0,   /* any UTF-8 (passwords: every character counts) */
    AR_CS_TEXT = 1,  /* UTF-8 without control, C1 or direction-override characters */
    AR_CS_EMAIL = 2, /* printable ASCII without spaces, one '@' not at either end */
    AR_CS_SLUG = 3,  /* a-z 0-9 - */
    AR_CS_ID = 4,    /* a token id such as a room: A-Z a-z 0-9 . _ - (docs/tokens.md) */
    AR_CS_LANG = 5,  /* a language tag: A-Z a-z 0-9 - */
} ar_charset_t;

typedef struct ar_app_field_s {
    const char *key;
    ar_field_type_t type;
    int required;
    int64_t min, max; /* STR: length in bytes; INT: value */
    ar_charset_t charset;
} ar_app_field_t;

#define AR_BODY_MSG_MAX 128

/*
 * Parses len bytes of JSON as an object and checks it against the table: every required field
 * present, no field the table does not name, each of its type, length or range and charset.
 * Returns 0 with *out (the caller json_decref's it), AR_ETOOBIG (over cap), AR_EPARSE (not JSON
 * or not an object), or AR_EINVAL (a field broke its rule); msg gets a message naming the field.
 */
int ar_app_body_parse(const char *buf, size_t len, size_t cap, const ar_app_field_t *fields,
                      size_t nfields, json_t **out, char *msg, size_t msgcap);

/* 1 when s (len bytes) satisfies cs. */
int ar_app_charset_ok(ar_charset_t cs, const char *s, size_t len);

#endif
