/* Load reports arrive from the bus: decode must refuse anything malformed without crashing. */
#include "load.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ar_turn_load_t load;
    if (ar_turn_load_decode((const char *)data, size, &load) == 0) {
        /* Anything accepted must encode again and decode to the same report. */
        char json[AR_TURN_LOAD_REPORT_MAX];
        ar_turn_load_t again;
        int n = ar_turn_load_encode(&load, json, sizeof(json));
        if (n < 0 || ar_turn_load_decode(json, (size_t)n, &again) != 0 ||
            again.allocations != load.allocations || strcmp(again.node, load.node) != 0)
            __builtin_trap();
    }
    struct sockaddr_storage ss;
    if (size < 128)
        if (ar_turn_parse_hostport((const char *)data, size, &ss) == 0 && ss.ss_family == 0)
            __builtin_trap();
    return 0;
}
