/*
 * A growable byte buffer with a hard cap (curl's dynbuf idea): appends past the cap fail with
 * AR_ETOOBIG instead of growing without bound, so a peer can never make us hold more than the
 * cap for one message. Memory is taken only when data arrives and can be released when drained.
 */
#ifndef ANTEROOM_BUF_H
#define ANTEROOM_BUF_H

#include "anteroom/err.h"

#include <stddef.h>
#include <stdint.h>

typedef struct ar_buf_s {
    uint8_t *data;
    size_t len;
    size_t alloc;
    size_t cap; /* the most len may ever reach */
} ar_buf_t;

/* A pointer and its length, as h2o's h2o_iovec_t. */
typedef struct ar_iov_s {
    const uint8_t *base;
    size_t len;
} ar_iov_t;

void ar_buf_init(ar_buf_t *b, size_t cap);
/* Appends n bytes; AR_ETOOBIG past the cap, AR_ENOMEM when allocation fails. */
AR_MUST_CHECK int ar_buf_append(ar_buf_t *b, const void *data, size_t n);
/* Drops the first n bytes (n <= len). */
void ar_buf_consume(ar_buf_t *b, size_t n);
/* Empties the buffer and gives its memory back. */
void ar_buf_release(ar_buf_t *b);

#endif
