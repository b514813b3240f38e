/*
 * The state directory of `anteroom up`:
 *
 *   DIR/                             0700
 *     lock                           flock held while `anteroom up` runs
 *     tls/cert.pem, tls/key.pem      0600, self-signed on first start
 *     secrets/turn-static-auth-secret  0600, random on first start
 *     logs/<daemon>.log              0600, each daemon's stderr (JSON lines), appended
 *     logs/<daemon>.log.1            the previous one, once it passed 64 MiB
 *
 * Everything secret is created 0600 inside 0700 folders and written through a temporary file
 * and rename(), so a crash mid-write never leaves a half key that a later start would trust.
 */
#include "up.h"

#include "anteroom/log.h"
#include "anteroom/rand.h"
#include "anteroom/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define SECRET_BYTES 32 /* 256 bits, as base64url: 43 characters */
#define SECRET_MIN_LEN 32
#define CERT_DAYS 398 /* the longest lifetime browsers accept for a server certificate */
#define LOG_ROTATE_BYTES (64L << 20) /* checked when `anteroom up` starts */

static int join(char *out, size_t outlen, const char *a, const char *b)
{
    int n = snprintf(out, outlen, "%s/%s", a, b);
    return (n < 0 || (size_t)n >= outlen) ? AR_ETOOBIG : 0;
}

/* mkdir -p: parents get the umask's usual mode, the last component `mode`. */
static int mkdir_p(const char *path, mode_t mode)
{
    char tmp[PATH_MAX];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof(tmp))
        return AR_ETOOBIG;
    memcpy(tmp, path, len + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
            return AR_ESYS;
        *p = '/';
    }
    if (mkdir(tmp, mode) != 0 && errno != EEXIST)
        return AR_ESYS;
    return 0;
}

/* Secrets must not be readable by others; tighten a file an operator copied in loosely. */
static void tighten(const char *path)
{
    struct stat sb;
    if (stat(path, &sb) == 0 && (sb.st_mode & 077) != 0 && chmod(path, 0600) == 0)
        ar_log(AR_LOG_WARN, "state_file_mode_tightened", AR_LF_OPER("path", path));
}

int ar__state_write_file(const char *path, const void *data, size_t len)
{
    char tmp[PATH_MAX];
    int n = snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path);
    if (n < 0 || (size_t)n >= sizeof(tmp))
        return AR_ETOOBIG;
    int fd = mkostemp(tmp, O_CLOEXEC); /* mkstemp files are 0600 */
    if (fd < 0)
        return AR_ESYS;
    const uint8_t *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            goto fail;
        p += w;
        left -= (size_t)w;
    }
    if (fchmod(fd, 0600) != 0 || fsync(fd) != 0)
        goto fail;
    if (close(fd) != 0) {
        fd = -1;
        goto fail;
    }
    if (rename(tmp, path) != 0) {
        unlink(tmp);
        return AR_ESYS;
    }
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    return AR_ESYS;
}

/* Reads the secret file; AR_ENOTFOUND when absent, AR_EPARSE when it is not one we wrote. */
static int read_secret(const char *path, char *out, size_t outlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? AR_ENOTFOUND : AR_ESYS;
    ssize_t n = read(fd, out, outlen - 1);
    close(fd);
    if (n < 0)
        return AR_ESYS;
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r' || out[n - 1] == ' '))
        n--;
    out[n] = '\0';
    if ((size_t)n < SECRET_MIN_LEN || (size_t)n >= outlen - 1)
        return AR_EPARSE;
    for (ssize_t i = 0; i < n; i++) {
        char c = out[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '-' || c == '_';
        if (!ok)
            return AR_EPARSE;
    }
    return 0;
}

static int prepare_secret(ar__up_state_t *st, char *err, size_t errlen)
{
    char path[PATH_MAX];
    char sub[PATH_MAX];
    if (join(sub, sizeof(sub), st->dir, "secrets") != 0 ||
        join(path, sizeof(path), sub, "turn-static-auth-secret") != 0)
        return AR_ETOOBIG;
    if (mkdir_p(sub, 0700) != 0) {
        snprintf(err, errlen, "cannot create %s: %s", sub, strerror(errno));
        return AR_ESYS;
    }
    int rc = read_secret(path, st->turn_secret, sizeof(st->turn_secret));
    if (rc == 0) {
        tighten(path);
        return 0;
    }
    if (rc != AR_ENOTFOUND) {
        snprintf(err, errlen,
                 "%s is unreadable or not a secret we wrote; delete it to make a new one", path);
        return rc;
    }
    rc = ar_rand_id(st->turn_secret, sizeof(st->turn_secret), SECRET_BYTES);
    if (rc < 0)
        return rc;
    st->turn_secret[rc] = '\n';
    int wrc = ar__state_write_file(path, st->turn_secret, (size_t)rc + 1);
    st->turn_secret[rc] = '\0';
    if (wrc != 0) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        return wrc;
    }
    ar_log(AR_LOG_INFO, "turn_secret_generated", AR_LF_OPER("path", path));
    return 0;
}

static int prepare_cert(ar__up_state_t *st, char *err, size_t errlen)
{
    char sub[PATH_MAX];
    if (join(sub, sizeof(sub), st->dir, "tls") != 0 ||
        join(st->cert, sizeof(st->cert), sub, "cert.pem") != 0 ||
        join(st->key, sizeof(st->key), sub, "key.pem") != 0)
        return AR_ETOOBIG;
    if (mkdir_p(sub, 0700) != 0) {
        snprintf(err, errlen, "cannot create %s: %s", sub, strerror(errno));
        return AR_ESYS;
    }
    /* Both or neither: a certificate without its key (or the reverse) is useless, remake both. */
    if (access(st->cert, R_OK) == 0 && access(st->key, R_OK) == 0) {
        tighten(st->cert);
        tighten(st->key);
        return 0;
    }
    /* The host name too, so other machines on the network can reach it once accepted. */
    char host[256] = {0};
    const char *hosts[1] = {host};
    size_t nhosts = gethostname(host, sizeof(host) - 1) == 0 && host[0] != '\0' ? 1 : 0;
    int rc = ar_tls_selfsigned_generate(st->cert, st->key, hosts, nhosts, CERT_DAYS);
    if (rc == AR_EINVAL && nhosts > 0) /* a host name that is no DNS name: go without it */
        rc = ar_tls_selfsigned_generate(st->cert, st->key, hosts, 0, CERT_DAYS);
    /* The certificate is public, but everything in the state directory is owner-only: one rule
     * an operator can check with ls. */
    if (rc == 0 && chmod(st->cert, 0600) != 0)
        rc = AR_ESYS;
    if (rc != 0) {
        snprintf(err, errlen, "cannot generate a certificate in %s: %s", sub, ar_strerror(rc));
        return rc;
    }
    ar_log(AR_LOG_INFO, "certificate_generated", AR_LF_OPER("path", st->cert),
           AR_LF_KW("key", "ECDSA P-256"));
    return 0;
}

int ar__state_prepare(ar__up_state_t *st, const char *dir, int no_tls, char *err, size_t errlen)
{
    memset(st, 0, sizeof(*st));
    st->lock_fd = -1;
    if (mkdir_p(dir, 0700) != 0) {
        snprintf(err, errlen, "cannot create state directory %s: %s", dir, strerror(errno));
        return AR_ESYS;
    }
    /* Children get absolute paths: they may change directory, and the lines we print are
     * copied into other terminals. */
    if (realpath(dir, st->dir) == NULL) {
        snprintf(err, errlen, "cannot resolve %s: %s", dir, strerror(errno));
        return AR_ESYS;
    }
    struct stat sb;
    if (stat(st->dir, &sb) == 0 && (sb.st_mode & 077) != 0)
        ar_log(AR_LOG_WARN, "state_dir_shared", AR_LF_OPER("path", st->dir),
               AR_LF_KW("hint", "chmod 700 it: it holds keys"));

    char lock[PATH_MAX];
    if (join(lock, sizeof(lock), st->dir, "lock") != 0)
        return AR_ETOOBIG;
    st->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (st->lock_fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", lock, strerror(errno));
        return AR_ESYS;
    }
    if (flock(st->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        snprintf(err, errlen, "another `anteroom up` is using %s", st->dir);
        return AR_EADDRINUSE;
    }

    if (join(st->logs, sizeof(st->logs), st->dir, "logs") != 0)
        return AR_ETOOBIG;
    if (mkdir_p(st->logs, 0700) != 0) {
        snprintf(err, errlen, "cannot create %s: %s", st->logs, strerror(errno));
        return AR_ESYS;
    }
    int rc = prepare_secret(st, err, errlen);
    if (rc != 0)
        return rc;
    if (!no_tls)
        rc = prepare_cert(st, err, errlen);
    return rc;
}

void ar__state_close(ar__up_state_t *st)
{
    sodium_memzero(st->turn_secret, sizeof(st->turn_secret));
    if (st->lock_fd >= 0)
        close(st->lock_fd); /* closing the last fd releases the flock */
    st->lock_fd = -1;
}

int ar__state_open_log(const ar__up_state_t *st, const char *name)
{
    char path[PATH_MAX];
    int n = snprintf(path, sizeof(path), "%s/%s.log", st->logs, name);
    if (n < 0 || (size_t)n >= sizeof(path))
        return AR_ETOOBIG;
    /* Logs are appended across runs; keep one previous generation so a machine left running
     * `anteroom up` for weeks does not fill its disk. */
    struct stat sb;
    if (stat(path, &sb) == 0 && sb.st_size > LOG_ROTATE_BYTES) {
        char old[PATH_MAX];
        n = snprintf(old, sizeof(old), "%s.1", path);
        if (n > 0 && (size_t)n < sizeof(old) && rename(path, old) == 0)
            ar_log(AR_LOG_INFO, "log_rotated", AR_LF_OPER("path", old));
    }
    /* O_CLOEXEC keeps it out of the other daemons; uv_spawn dup2()s it onto this daemon's
     * stdout and stderr, and dup2 clears the flag on the copy. O_APPEND: restarts add on. */
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    return fd < 0 ? AR_ESYS : fd;
}
