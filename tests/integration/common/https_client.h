/*
 * The HTTPS client of the app's and the monitor's integration harnesses: each request is a curl
 * process (HTTP/2 or HTTP/1.1 from a client we did not write) against the server on loopback,
 * with its head and body read back from files in the harness's temporary directory.
 */
#ifndef AR_TEST_HTTPS_CLIENT_H
#define AR_TEST_HTTPS_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

typedef struct {
    int status;
    char version[8]; /* "2", "1.1" */
    char *headers;   /* raw response head, NUL-terminated */
    char *body;      /* NUL-terminated (binary bodies may hold NULs; see body_len) */
    size_t body_len;
} resp_t;

typedef struct {
    const char *method;
    const char *path;
    int http1;          /* 0: --http2, 1: --http1.1 */
    const char *cookie; /* "name=value" or NULL */
    const char *csrf;   /* X-CSRF-Token or NULL */
    const char *origin; /* Origin header or NULL */
    const char *body;   /* sent as application/json unless ctype says otherwise */
    size_t body_len;    /* 0 means strlen(body) */
    const char *ctype;  /* "" sends no Content-Type */
    const char *extra;  /* one more "Name: value" header or NULL */
} req_t;

/* Where requests go (https://127.0.0.1:port) and the directory for curl's files. */
void h_client_init(const char *tmpdir, uint16_t port);
/* Runs one request; exits the test on a curl failure. */
void h_request(const req_t *rq, resp_t *out);
void h_resp_free(resp_t *r);
/* The value of a response header (case-insensitive name), copied into buf; NULL if absent. */
const char *h_header(const resp_t *r, const char *name, char *buf, size_t cap);

#endif
