/*
 * Strict JSON input (anteroom/json.h).
 */
#include "anteroom/json.h"

int ar_json_too_deep(const char *buf, size_t len, int max_depth)
{
    int depth = 0, in_str = 0;
    for (size_t i = 0; i < len; i++) {
        char c = buf[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '{' || c == '[') {
            if (++depth > max_depth)
                return 1;
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    return 0;
}

json_t *ar_json_load_strict(const char *buf, size_t len, int max_depth, int *depth_exceeded,
                            int *error_pos)
{
    *depth_exceeded = 0;
    *error_pos = 0;
    if (buf == NULL || ar_json_too_deep(buf, len, max_depth)) {
        *depth_exceeded = buf != NULL;
        return NULL;
    }
    json_error_t jerr;
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        *error_pos = jerr.position;
    return root;
}
