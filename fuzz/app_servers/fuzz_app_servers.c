/*
 * The operator's servers file and a waiting area's opening hours (hours come from clinic
 * administrators through the API). The first byte picks the parser. Beyond "no crash": a parsed
 * servers file serves its node's jurisdiction, and parsed hours have ordered spans within a day.
 */
#include "hours.h"
#include "servers.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    if (data[0] & 1) {
        ar_hours_t h;
        if (ar_hours_parse(text, len, &h) == 0)
            for (size_t i = 0; i < h.n; i++)
                if (h.spans[i].start >= h.spans[i].end || h.spans[i].end > 1440 ||
                    h.spans[i].days == 0 || h.spans[i].days > 0x7f)
                    __builtin_trap();
        return 0;
    }
    ar_app_servers_t *s;
    char err[200] = "";
    int rc = ar_app_servers_parse(text, len, &s, err, sizeof(err));
    if (rc == 0) {
        if (!ar_app_servers_serves(s, ar_app_servers_node_jurisdiction(s)))
            __builtin_trap();
        ar_app_servers_free(s);
    } else if (rc == AR_EPARSE && err[0] == '\0') {
        __builtin_trap();
    }
    return 0;
}
