/*
 * Strict JSON input for every component that takes JSON from clients: nesting capped before
 * jansson builds anything (a deep body costs a recursion per level), one value, duplicate keys
 * refused. What the value must hold is each component's field table's business.
 */
#ifndef ANTEROOM_JSON_H
#define ANTEROOM_JSON_H

#include <jansson.h>
#include <stddef.h>

/* 1 when arrays and objects in buf (len bytes; strings skipped) nest deeper than max_depth. */
int ar_json_too_deep(const char *buf, size_t len, int max_depth);

/*
 * Parses len bytes as one JSON value, duplicate keys refused. Returns the value (the caller
 * json_decref's it), or NULL with *depth_exceeded set when nesting went over max_depth (nothing
 * parsed), else with *error_pos at the byte where jansson stopped (a position only: jansson's
 * own text can quote the input).
 */
json_t *ar_json_load_strict(const char *buf, size_t len, int max_depth, int *depth_exceeded,
                            int *error_pos);

#endif
