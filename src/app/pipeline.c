/*
 * The request pipeline for API routes, in the order that leaks least:
 *   route (404/405) -> Origin/Fetch-Metadata check for state changes (403 csrf)
 *   -> session from the store, asynchronously (401) -> CSRF token (403 csrf)
 *   -> roles in the path's clinic (403 forbidden) -> body parsed and validated (400/415)
 *   -> handler.
 * Authorization comes before body validation so that a caller without the right role learns
 * nothing from the validator, and so the authorization matrix can tell "refused" (401/403) from
 * "let through" (anything else) with an empty body.
 */
#include "internal.h"

#include "anteroom/alloc.h"
#include "anteroom/log.h"

#include <sodium.h>
#include <string.h>

static const char *reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 413:
        return "Payload Too Large";
    case 415:
        return "Unsupported Media Type";
    case 429:
        return "Too Many Requests";
    case 503:
        return "Service Unavailable";
    default:
        return "Error";
    }
}

static void send_body(h2o_req_t *req, int status, const char *body, size_t len)
{
    req->res.status = status;
    req->res.reason = reason(status);
    req->res.content_length = len;
    if (len > 0)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                       H2O_STRLIT("application/json"));
    h2o_send_inline(req, body, len);
}

void ar__send_error(h2o_req_t *req, int status, const char *code, const char *message)
{
    json_t *j = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", message);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (text == NULL) {
        send_body(req, 503, "", 0);
        return;
    }
    send_body(req, status, text, strlen(text));
    free(text);
}

/* h2o clears the request's pool when the request ends, including when the peer went away while
 * a store job was running: the slot then forgets the h2o request so nothing is sent. */
static void on_req_dispose(void *p)
{
    ar__req_t **slot = p;
    if (*slot != NULL) {
        (*slot)->req = NULL;
        (*slot)->link = NULL;
    }
}

void ar__req_free(ar__req_t *r)
{
    if (r->guard != NULL)
        ar__h2guard_done(r->guard, r->req != NULL);
    if (r->link != NULL)
        *r->link = NULL;
    json_decref(r->body);
    json_decref(r->out);
    if (r->secret != NULL) {
        sodium_memzero(r->secret, r->secret_len);
        ar_free(r->secret);
    }
    sodium_memzero(r, sizeof(*r));
    ar_free(r);
}

void ar__add_header(ar__req_t *r, const char *name, const char *value, size_t len)
{
    if (r->req == NULL)
        return;
    h2o_iovec_t v = h2o_strdup(&r->req->pool, value, len);
    h2o_add_header_by_str(&r->req->pool, &r->req->res.headers, name, strlen(name), 1, NULL, v.base,
                          v.len);
}

void ar__reply_json(ar__req_t *r, int status, json_t *body)
{
    if (r->req != NULL) {
        char *text = json_dumps(body, JSON_COMPACT);
        if (text == NULL) {
            ar__send_error(r->req, 503, "unavailable", "the server is out of memory");
        } else {
            send_body(r->req, status, text, strlen(text));
            free(text);
        }
    }
    json_decref(body);
    ar__req_free(r);
}

void ar__reply_error(ar__req_t *r, int status, const char *code, const char *message)
{
    if (r->req != NULL)
        ar__send_error(r->req, status, code, message);
    ar__req_free(r);
}

void ar__reply_empty(ar__req_t *r, int status)
{
    if (r->req != NULL)
        send_body(r->req, status, "", 0);
    ar__req_free(r);
}

void ar__store_failed(ar__req_t *r, int status)
{
    ar_log(AR_LOG_WARN, "store_job_failed", AR_LF_ERR("err", status));
    ar__reply_error(r, 503, "unavailable", "the store is unavailable; try again");
}

void ar__reply_out(ar__req_t *r, int status)
{
    json_t *out = r->out;
    r->out = NULL;
    ar__reply_json(r, status, out);
}

void ar__reply_result(ar__req_t *r, int status)
{
    if (status < 0)
        ar__store_failed(r, status);
    else if (r->out == NULL)
        ar__reply_empty(r, r->out_status ? r->out_status : 204);
    else
        ar__reply_out(r, r->out_status ? r->out_status : 200);
}

int ar__submit(ar__req_t *r, ar_store_job_cb job, ar_store_done_cb done)
{
    /* A request's jobs run one after another: it is counted once, until it is freed. */
    if (r->guard == NULL && r->req != NULL && ar__h2guard_take(r->req, &r->guard) < 0) {
        /* Only a peer that resets streams gets here (h2o holds the rest back): no log line
         * per request, which would be the flood's amplifier. */
        ar__reply_error(r, 503, "unavailable", "the server is busy; try again");
        return AR_EQUOTA;
    }
    int rc = ar_store_pool_submit(r->app->opts.store, job, done, r);
    if (rc < 0) {
        ar_log(AR_LOG_WARN, "store_submit_refused", AR_LF_ERR("err", rc));
        ar__reply_error(r, 503, "unavailable", "the server is busy; try again");
    }
    return rc;
}

static int header_is(h2o_req_t *req, const char *name, const char *want, size_t wantlen,
                     int *present)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, name, strlen(name), -1);
    *present = i != -1;
    if (i == -1)
        return 0;
    const h2o_iovec_t *v = &req->headers.entries[i].value;
    return v->len == wantlen && memcmp(v->base, want, wantlen) == 0;
}

/* The Origin and Fetch Metadata half of the CSRF defence (session.c has the whole story). */
static int origin_ok(ar_app_t *app, h2o_req_t *req)
{
    int present;
    if (!header_is(req, "origin", app->origin, strlen(app->origin), &present) && present)
        return 0;
    ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("sec-fetch-site"), -1);
    if (i != -1) {
        const h2o_iovec_t *v = &req->headers.entries[i].value;
        if (!h2o_memis(v->base, v->len, H2O_STRLIT("same-origin")) &&
            !h2o_memis(v->base, v->len, H2O_STRLIT("none")))
            return 0;
    }
    return 1;
}

static int csrf_token_ok(ar__req_t *r)
{
    char want[AR__SID_TEXT + 1];
    ar__csrf_token(r->s.id, want);
    ssize_t i = h2o_find_header_by_str(&r->req->headers, H2O_STRLIT("x-csrf-token"), -1);
    int ok = 0;
    if (i != -1) {
        const h2o_iovec_t *v = &r->req->headers.entries[i].value;
        ok = v->len == AR__SID_TEXT && sodium_memcmp(v->base, want, AR__SID_TEXT) == 0;
    }
    sodium_memzero(want, sizeof(want));
    return ok;
}

/* Parses and validates the body, then runs the handler; answers 400/415 itself. */
static void run_handler(ar__req_t *r)
{
    h2o_req_t *req = r->req;
    const ar_app_route_t *rt = r->route;
    if (rt->body == NULL) {
        if (req->entity.len > 0) {
            ar__reply_error(r, 400, "bad_request", "this request takes no body");
            return;
        }
    } else {
        ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_CONTENT_TYPE, -1);
        const h2o_iovec_t *ct = i == -1 ? NULL : &req->headers.entries[i].value;
        static const char json_ct[] = "application/json";
        if (ct == NULL || ct->len < sizeof(json_ct) - 1 ||
            strncasecmp(ct->base, json_ct, sizeof(json_ct) - 1) != 0 ||
            (ct->len > sizeof(json_ct) - 1 && ct->base[sizeof(json_ct) - 1] != ';')) {
            ar__reply_error(r, 415, "unsupported_media_type", "the body must be application/json");
            return;
        }
        char msg[AR_BODY_MSG_MAX];
        const char *b = req->entity.base != NULL ? req->entity.base : "";
        size_t cap = rt->max_body > r->app->opts.max_body ? rt->max_body : r->app->opts.max_body;
        int rc = ar_app_body_parse(b, req->entity.len, cap, rt->body, rt->nbody, &r->body, msg,
                                   sizeof(msg));
        if (rc < 0) {
            ar__reply_error(r, rc == AR_ETOOBIG ? 413 : 400,
                            rc == AR_ETOOBIG ? "too_large" : "bad_request", msg);
            return;
        }
    }
    rt->handler(r);
}

static void on_session_loaded(int status, void *arg)
{
    ar__req_t *r = arg;
    if (r->req == NULL) {
        ar__req_free(r);
        return;
    }
    if (status == AR_EAUTH) {
        ar__session_set_cookie(r, NULL);
        ar__reply_error(r, 401, "unauthenticated",
                        "sign in first; the session is missing or expired");
        return;
    }
    if (status < 0) {
        ar_log(AR_LOG_WARN, "session_load_failed", AR_LF_ERR("err", status));
        ar__reply_error(r, 503, "unavailable", "the store is unavailable; try again");
        return;
    }
    if (r->route->csrf && !csrf_token_ok(r)) {
        ar__reply_error(r, 403, "csrf", "the X-CSRF-Token header is missing or wrong");
        return;
    }
    if (r->route->auth == AR_AUTH_CLINIC) {
        unsigned allowed = r->route->roles;
        int ok = ((allowed & AR_ROLE_OPERATOR) && r->s.is_operator) ||
                 (r->s.clinic_roles & allowed & ~AR_ROLE_OPERATOR) != 0;
        if (!ok) {
            ar__reply_error(r, 403, "forbidden", "your roles do not allow this request");
            return;
        }
        /* The second factor is required for staff by default: until it is enrolled
         * (POST /api/v1/me/totp), no clinic's data is reachable. */
        if (r->s.mfa_missing) {
            ar__reply_error(r, 403, "mfa_enrolment_required",
                            "enrol a second factor before working in a clinic");
            return;
        }
    }
    run_handler(r);
}

int ar__api_handle(ar_app_t *app, h2o_req_t *req)
{
    ar_app_params_t params;
    int known;
    const ar_app_route_t *rt =
        ar_app_route_find_params(req->method.base, req->method.len, req->path_normalized.base,
                                 req->path_normalized.len, &params, &known);
    if (rt == NULL) {
        if (!h2o_memis(req->path_normalized.base,
                       req->path_normalized.len < 5 ? req->path_normalized.len : 5,
                       H2O_STRLIT("/api/")) &&
            !known)
            return -1;
        if (known)
            ar__send_error(req, 405, "method_not_allowed", "the path does not take this method");
        else
            ar__send_error(req, 404, "not_found", "no such API path");
        return 0;
    }
    if (rt->csrf && !origin_ok(app, req)) {
        ar__send_error(req, 403, "csrf", "cross-origin requests are refused");
        return 0;
    }
    ar__req_t *r = ar_calloc(1, sizeof(*r));
    ar__req_t **slot =
        r ? h2o_mem_alloc_shared(&req->pool, sizeof(ar__req_t *), on_req_dispose) : NULL;
    if (slot == NULL) {
        ar_free(r);
        ar__send_error(req, 503, "unavailable", "the server is out of memory");
        return 0;
    }
    *slot = r;
    r->app = app;
    r->req = req;
    r->link = slot;
    r->route = rt;
    r->clinic_id = params.clinic;
    r->params = params;
    r->now = ar__now(app);
    if (rt->auth == AR_AUTH_PUBLIC) {
        run_handler(r);
        return 0;
    }
    ar__session_from_cookie(req, &r->s);
    if (!r->s.present) {
        ar__reply_error(r, 401, "unauthenticated",
                        "sign in first; the session is missing or expired");
        return 0;
    }
    (void)ar__submit(r, ar__session_load_job, on_session_loaded);
    return 0;
}
