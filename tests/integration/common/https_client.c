/*
 * The harnesses' curl client (https_client.h).
 */
#include "https_client.h"

#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

static char tmpdir[256];
static uint16_t port;

void h_client_init(const char *dir, uint16_t p)
{
    snprintf(tmpdir, sizeof(tmpdir), "%s", dir);
    port = p;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    CHECK(buf != NULL && fread(buf, 1, (size_t)n, f) == (size_t)n);
    buf[n] = '\0';
    fclose(f);
    if (len != NULL)
        *len = (size_t)n;
    return buf;
}

void h_request(const req_t *rq, resp_t *out)
{
    char url[512], hdr[300], bodyf[300], reqf[300], outf[300];
    snprintf(url, sizeof(url), "https://127.0.0.1:%u%s", port, rq->path);
    snprintf(hdr, sizeof(hdr), "%s/h", tmpdir);
    snprintf(bodyf, sizeof(bodyf), "%s/b", tmpdir);
    snprintf(reqf, sizeof(reqf), "@%s/r", tmpdir);
    snprintf(outf, sizeof(outf), "%s/w", tmpdir);
    char cookie[200] = "", csrf[200] = "", origin[200] = "", ctype[200] = "";
    const char *argv[40];
    int n = 0;
    argv[n++] = "curl";
    argv[n++] = "-sS";
    argv[n++] = "-k";
    argv[n++] = "--max-time";
    argv[n++] = "20";
    argv[n++] = rq->http1 ? "--http1.1" : "--http2";
    /* -X HEAD rather than -I (which writes the head into the body file): every answer has
     * Content-Length: 0, so curl does not wait for a body. */
    argv[n++] = "-X";
    argv[n++] = rq->method;
    argv[n++] = "-D";
    argv[n++] = hdr;
    argv[n++] = "-o";
    argv[n++] = bodyf;
    argv[n++] = "-w";
    argv[n++] = "%{http_code} %{http_version}";
    if (rq->cookie) {
        snprintf(cookie, sizeof(cookie), "Cookie: %s", rq->cookie);
        argv[n++] = "-H", argv[n++] = cookie;
    }
    if (rq->csrf) {
        snprintf(csrf, sizeof(csrf), "X-CSRF-Token: %s", rq->csrf);
        argv[n++] = "-H", argv[n++] = csrf;
    }
    if (rq->origin) {
        snprintf(origin, sizeof(origin), "Origin: %s", rq->origin);
        argv[n++] = "-H", argv[n++] = origin;
    }
    if (rq->extra)
        argv[n++] = "-H", argv[n++] = rq->extra;
    if (rq->body) {
        FILE *f = fopen(reqf + 1, "wb");
        CHECK(f != NULL);
        size_t len = rq->body_len ? rq->body_len : strlen(rq->body);
        CHECK(fwrite(rq->body, 1, len, f) == len);
        fclose(f);
        /* "Content-Type:" with nothing after it makes curl send none. */
        snprintf(ctype, sizeof(ctype), "Content-Type: %s",
                 rq->ctype ? rq->ctype : "application/json");
        argv[n++] = "-H", argv[n++] = ctype;
        argv[n++] = "--data-binary", argv[n++] = reqf;
    }
    argv[n++] = url;
    argv[n] = NULL;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        FILE *w = freopen(outf, "w", stdout);
        (void)w;
        execvp("curl", (char *const *)argv);
        _exit(127);
    }
    int st;
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    char *w = slurp(outf, NULL);
    memset(out, 0, sizeof(*out));
    CHECK(sscanf(w, "%d %7s", &out->status, out->version) == 2);
    free(w);
    out->headers = slurp(hdr, NULL);
    /* curl writes no file at all for an empty body. */
    if (access(bodyf, F_OK) == 0) {
        out->body = slurp(bodyf, &out->body_len);
        unlink(bodyf);
    } else {
        out->body = calloc(1, 1);
        CHECK(out->body != NULL);
    }
}

void h_resp_free(resp_t *r)
{
    free(r->headers);
    free(r->body);
}

const char *h_header(const resp_t *r, const char *name, char *buf, size_t cap)
{
    size_t nlen = strlen(name);
    for (const char *line = r->headers; line && *line; line = strchr(line, '\n')) {
        if (*line == '\n')
            line++;
        if (strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
            const char *v = line + nlen + 1;
            while (*v == ' ')
                v++;
            size_t len = strcspn(v, "\r\n");
            if (len >= cap)
                len = cap - 1;
            memcpy(buf, v, len);
            buf[len] = '\0';
            return buf;
        }
        if (strchr(line, '\n') == NULL)
            break;
    }
    return NULL;
}
