#include "anteroom/buf.h"

#include "anteroom/alloc.h"

#include <string.h>

void ar_buf_init(ar_buf_t *b, size_t cap)
{
    b->data = NULL;
    b->len = 0;
    b->alloc = 0;
    b->cap = cap;
}

int ar_buf_append(ar_buf_t *b, const void *data, size_t n)
{
    if (n > b->cap - b->len)
        return AR_ETOOBIG;
    if (b->len + n > b->alloc) {
        size_t want = b->alloc ? b->alloc : 256;
        while (want < b->len + n)
            want *= 2;
        if (want > b->cap)
            want = b->cap;
        uint8_t *p = ar_realloc(b->data, want);
        if (p == NULL)
            return AR_ENOMEM;
        b->data = p;
        b->alloc = want;
    }
    memcpy(b->data + b->len, data, n);
    b->len += n;
    return 0;
}

void ar_buf_consume(ar_buf_t *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

void ar_buf_release(ar_buf_t *b)
{
    ar_free(b->data);
    b->data = NULL;
    b->len = 0;
    b->alloc = 0;
}
