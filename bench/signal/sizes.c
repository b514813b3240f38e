/*
 * Fixed per-connection sizes that decided the loop: our connection struct (its frame parser
 * apart, held only while a frame is split across reads) against the libuv handle a libuv-based
 * server would need before any state of its own. malloc_usable_size shows what the allocator
 * really hands out for each.
 */
#include "internal.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

int main(void)
{
    void *c = malloc(sizeof(ar_sn_conn_t));
    void *u = malloc(sizeof(uv_tcp_t));
    printf("ar_sn_conn_t %zu B (allocated %zu B); ar_ws_parser_t %zu B more while a frame is split "
           "across reads\n",
           sizeof(ar_sn_conn_t), malloc_usable_size(c) + sizeof(size_t), sizeof(ar_ws_parser_t));
    printf("uv_tcp_t %zu B (allocated %zu B) before any per-connection state\n", sizeof(uv_tcp_t),
           malloc_usable_size(u) + sizeof(size_t));
    free(c);
    free(u);
    return 0;
}
