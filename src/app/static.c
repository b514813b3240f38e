/*
 * The web client, served from memory. scripts/web-build writes the built tree and its
 * manifest.json at build time: assets get content-hashed names (so they can be cached forever,
 * `immutable`) and a sha384 Subresource Integrity value that the pages reference (S12); pages
 * keep their paths and are never cached (`no-store`: a patient's browser keeps nothing, P5).
 * Everything is read once at start, so serving touches no disk and a half-deployed tree cannot
 * mix versions.
 */
#include "internal.h"

#include "anteroom/alloc.h"
#include "anteroom/log.h"

#include <stdio.h>
#include <string.h>

#define FILE_MAX ((size_t)4 * 1024 * 1024)
#define FILES_MAX 256

typedef struct {
    char *path; /* URL path */
    char *body;
    size_t len;
    const char *type;
    int immutable;
} sfile_t;

struct ar__static_s {
    sfile_t files[FILES_MAX];
    size_t count;
};

static const char *content_type(const char *name)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".ico", "image/x-icon"},
        {".json", "application/json"},
        {".woff2", "font/woff2"},
        {".txt", "text/plain; charset=utf-8"},
    };
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot != NULL && i < sizeof(types) / sizeof(types[0]); i++)
        if (strcmp(dot, types[i].ext) == 0)
            return types[i].type;
    return "application/octet-stream";
}

static int read_file(const char *dir, const char *name, char **out, size_t *len)
{
    char path[4096];
    /* Names come from our own build's manifest; refuse anything that climbs out anyway. */
    if (strstr(name, "..") != NULL || name[0] == '/')
        return AR_EPARSE;
    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
        return AR_ETOOBIG;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return AR_EIO;
    char *buf = ar_malloc(FILE_MAX);
    size_t n = buf ? fread(buf, 1, FILE_MAX, f) : 0;
    int more = fgetc(f) != EOF;
    fclose(f);
    if (buf == NULL)
        return AR_ENOMEM;
    if (more) {
        ar_free(buf);
        return AR_ETOOBIG;
    }
    *out = buf;
    *len = n;
    return 0;
}

void ar__static_free(ar__static_t *st)
{
    if (st == NULL)
        return;
    for (size_t i = 0; i < st->count; i++) {
        ar_free(st->files[i].path);
        ar_free(st->files[i].body);
    }
    ar_free(st);
}

int ar__static_load(const char *dir, ar__static_t **out)
{
    char mpath[4096];
    if (snprintf(mpath, sizeof(mpath), "%s/manifest.json", dir) >= (int)sizeof(mpath))
        return AR_ETOOBIG;
    json_error_t jerr;
    json_t *m = json_load_file(mpath, JSON_REJECT_DUPLICATES, &jerr);
    if (m == NULL) {
        ar_log(AR_LOG_ERROR, "web_manifest_unreadable", AR_LF_OPER("path", mpath));
        return AR_EIO;
    }
    ar__static_t *st = ar_calloc(1, sizeof(*st));
    json_t *files = json_object_get(m, "files");
    int rc = st == NULL ? AR_ENOMEM : json_is_array(files) ? 0 : AR_EPARSE;
    size_t i;
    json_t *e;
    json_array_foreach(files, i, e)
    {
        if (rc < 0)
            break;
        const char *path = json_string_value(json_object_get(e, "path"));
        const char *file = json_string_value(json_object_get(e, "file"));
        if (path == NULL || file == NULL || path[0] != '/' || st->count == FILES_MAX) {
            rc = AR_EPARSE;
            break;
        }
        sfile_t *f = &st->files[st->count];
        rc = read_file(dir, file, &f->body, &f->len);
        if (rc < 0)
            break;
        f->path = ar_strndup(path, strlen(path));
        f->type = content_type(file);
        f->immutable = json_is_true(json_object_get(e, "immutable"));
        st->count++;
        if (f->path == NULL)
            rc = AR_ENOMEM;
    }
    json_decref(m);
    if (rc < 0) {
        ar_log(AR_LOG_ERROR, "web_manifest_bad", AR_LF_ERR("err", rc));
        ar__static_free(st);
        return rc;
    }
    *out = st;
    return 0;
}

int ar__static_serve(ar__static_t *st, h2o_req_t *req)
{
    if (st == NULL)
        return -1;
    const sfile_t *f = NULL;
    for (size_t i = 0; i < st->count && f == NULL; i++)
        if (h2o_memis(req->path_normalized.base, req->path_normalized.len, st->files[i].path,
                      strlen(st->files[i].path)))
            f = &st->files[i];
    if (f == NULL)
        return -1;
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) &&
        !h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"))) {
        ar__send_error(req, 405, "method_not_allowed", "the path does not take this method");
        return 0;
    }
    req->res.status = 200;
    req->res.reason = "OK";
    req->res.content_length = f->len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, f->type,
                   strlen(f->type));
    if (f->immutable)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
                       H2O_STRLIT("public, max-age=31536000, immutable"));
    /* Pages get no-store from the security-header filter (server.c). The body is sent from
     * the loaded copy, which lives as long as the app, without copying it per request. */
    static h2o_generator_t generator = {NULL, NULL};
    h2o_start_response(req, &generator);
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"))) {
        h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
    } else {
        h2o_iovec_t body = h2o_iovec_init(f->body, f->len);
        h2o_send(req, &body, 1, H2O_SEND_STATE_FINAL);
    }
    return 0;
}
