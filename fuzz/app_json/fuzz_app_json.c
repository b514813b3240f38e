/*
 * JSON request bodies come from anyone (S9). The first byte picks the field table (odd: one
 * with every field type and charset; even: the body table of one of the route table's routes,
 * so every new route's fields are fuzzed too); the rest is the body. Beyond "no
 * crash", it checks the validator's promises: an accepted body holds every required field with
 * its type, length and charset; a refused one leaves no object behind and says why.
 */
#include "body.h"
#include "internal.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const ar_app_field_t every[] = {
    {"email", AR_FIELD_STR, 1, 3, 254, AR_CS_EMAIL}, {"name", AR_FIELD_STR, 0, 0, 64, AR_CS_TEXT},
    {"slug", AR_FIELD_STR, 0, 1, 32, AR_CS_SLUG},    {"pw", AR_FIELD_STR, 0, 1, 64, AR_CS_ANY},
    {"n", AR_FIELD_INT, 0, -5, 5, AR_CS_ANY},        {"on", AR_FIELD_BOOL, 1, 0, 0, AR_CS_ANY},
};

static void check_accepted(const ar_app_field_t *f, size_t n, json_t *obj)
{
    if (!json_is_object(obj) || json_object_size(obj) > n)
        __builtin_trap();
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_object_get(obj, f[i].key);
        if (v == NULL) {
            if (f[i].required)
                __builtin_trap();
            continue;
        }
        if (f[i].type == AR_FIELD_STR) {
            size_t len = json_string_length(v);
            if (!json_is_string(v) || (int64_t)len < f[i].min || (int64_t)len > f[i].max ||
                !ar_app_charset_ok(f[i].charset, json_string_value(v), len))
                __builtin_trap();
        } else if (f[i].type == AR_FIELD_INT) {
            if (!json_is_integer(v) || json_integer_value(v) < f[i].min ||
                json_integer_value(v) > f[i].max)
                __builtin_trap();
        } else if (!json_is_boolean(v)) {
            __builtin_trap();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const ar_app_field_t *f = every;
    size_t n = sizeof(every) / sizeof(every[0]);
    if (!(data[0] & 1)) {
        size_t nroutes, with_body = 0, pick;
        const ar_app_route_t *rt = ar_app_routes(&nroutes);
        for (size_t i = 0; i < nroutes; i++)
            with_body += rt[i].body != NULL;
        pick = (size_t)(data[0] >> 1) % with_body;
        for (size_t i = 0; i < nroutes; i++) {
            if (rt[i].body == NULL)
                continue;
            if (pick-- == 0) {
                f = rt[i].body;
                n = rt[i].nbody;
                break;
            }
        }
    }
    json_t *out = NULL;
    char msg[AR_BODY_MSG_MAX];
    int rc =
        ar_app_body_parse((const char *)data + 1, size - 1, 4096, f, n, &out, msg, sizeof(msg));
    if (rc == 0)
        check_accepted(f, n, out);
    else if (out != NULL || msg[0] == '\0')
        __builtin_trap();
    json_decref(out);
    return 0;
}
