/*
 * One error-code table for the whole project. Functions return 0 on success or a negative AR_E*
 * code; ar_strerror() and ar_err_name() turn a code into text. Add codes here only: the X-macro
 * yields the enum, the names and the messages together so they cannot drift apart.
 */
#ifndef ANTEROOM_ERR_H
#define ANTEROOM_ERR_H

#define AR_ERR_MAP(X)                                                                              \
    X(ENOMEM, 1, "out of memory")                                                                  \
    X(EINVAL, 2, "invalid argument")                                                               \
    X(ERANGE, 3, "value out of range")                                                             \
    X(ETOOBIG, 4, "input exceeds its size cap")                                                    \
    X(EPARSE, 5, "malformed input")                                                                \
    X(EAGAIN, 6, "try again")                                                                      \
    X(EIO, 7, "input/output error")                                                                \
    X(ECLOSED, 8, "connection closed")                                                             \
    X(ETLS, 9, "TLS error")                                                                        \
    X(ENOTFOUND, 10, "not found")                                                                  \
    X(EEXIST, 11, "already exists")                                                                \
    X(EAUTH, 12, "authentication failed")                                                          \
    X(EPERM, 13, "not permitted")                                                                  \
    X(EEXPIRED, 14, "expired")                                                                     \
    X(EQUOTA, 15, "quota exceeded")                                                                \
    X(ECONFIG, 16, "invalid configuration")                                                        \
    X(EUNKNOWNKEY, 17, "unknown configuration key")                                                \
    X(ESYS, 18, "system call failed")                                                              \
    X(EADDRINUSE, 19, "address in use")                                                            \
    X(ETIMEDOUT, 20, "timed out")                                                                  \
    X(EUNSUPPORTED, 21, "not supported")                                                           \
    X(ESTATE, 22, "operation not valid in this state")

enum ar_err_e {
    AR_OK = 0,
#define AR__ERR_ENUM(name, num, msg) AR_##name = -(num),
    AR_ERR_MAP(AR__ERR_ENUM)
#undef AR__ERR_ENUM
};

/* A human-readable message for an error code; never NULL. */
const char *ar_strerror(int err);
/* The symbolic name ("EINVAL") for an error code; never NULL. */
const char *ar_err_name(int err);

#if defined(__GNUC__)
#define AR_MUST_CHECK __attribute__((warn_unused_result))
#else
#define AR_MUST_CHECK
#endif

#endif
