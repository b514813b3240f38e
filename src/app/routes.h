/*
 * The route table: the single source of truth for the JSON API. Tests read it through
 * ar_app_routes(): docs/openapi.yaml is checked against it (every route documented, nothing
 * documented that is not routed), and the authorization matrix (every route x every role x own
 * and other clinic) is generated from it, so a new route cannot escape either.
 */
#ifndef ANTEROOM_APP_ROUTES_H
#define ANTEROOM_APP_ROUTES_H

#include "body.h"

#include <stddef.h>
#include <stdint.h>

/* Roles (A1). Operator is installation-wide; the others are held per clinic (memberships). */
#define AR_ROLE_OPERATOR 0x01u
#define AR_ROLE_CLINIC_ADMIN 0x02u
#define AR_ROLE_PROVIDER 0x04u
#define AR_ROLE_RECEPTIONIST 0x08u
#define AR_ROLE_REPORTER 0x10u
#define AR_ROLE_STAFF                                                                              \
    (AR_ROLE_CLINIC_ADMIN | AR_ROLE_PROVIDER | AR_ROLE_RECEPTIONIST | AR_ROLE_REPORTER)

typedef enum {
    AR_AUTH_PUBLIC = 0,  /* no session needed (sign-in) */
    AR_AUTH_SESSION = 1, /* any signed-in account, about itself */
    AR_AUTH_CLINIC = 2,  /* the path's {clinic}: one of `roles` there, or operator if listed */
} ar_app_auth_t;

struct ar__req_s;
/* Runs on the loop thread after authentication, CSRF, authorization and body checks passed.
 * It must eventually answer through ar__reply_* (possibly from a store completion). */
typedef void (*ar_app_handler_cb)(struct ar__req_s *r);

typedef struct ar_app_route_s {
    const char *method; /* "GET", "POST", "DELETE", ... */
    /* OpenAPI path syntax. Parameters: {clinic}, {room} and {item} (ids), {area} (a waiting area's
     * slug, AR_CS_SLUG, 1 to 64 bytes). */
    const char *pattern;
    ar_app_handler_cb handler;
    ar_app_auth_t auth;
    unsigned roles; /* AR_AUTH_CLINIC: AR_ROLE_* bits allowed */
    int csrf;       /* 1 for every state-changing route (checked by a unit test) */
    /* Fields of the JSON body; NULL means the route takes no body (one is refused). */
    const ar_app_field_t *body;
    size_t nbody;
    const char *summary;
    /* Bytes of body this route takes; 0 means the app's max_body (16 KiB by default). Only
     * an encrypted-keeping chunk raises it, and it stays under h2o's reading cap (server.c). */
    size_t max_body;
} ar_app_route_t;

/* Largest ciphertext of one encrypted-keeping item (keeping.c, docs/keeping.md). */
#define AR_APP_KEEPING_ITEM_MAX ((size_t)1024 * 1024)
/* An item arrives in chunks of at most 36 KiB of ciphertext: 48 KiB of base64, so a chunk's
 * body stays under the listener's 64 KiB reading cap. */
#define AR_APP_KEEPING_CHUNK_MAX ((size_t)36 * 1024)
#define AR_APP_KEEPING_CHUNK_BODY_MAX ((AR_APP_KEEPING_CHUNK_MAX + 2) / 3 * 4 + 1024)
/* Chunks one upload may declare (1 MiB takes 29 of the largest). */
#define AR_APP_KEEPING_CHUNKS_MAX 64
/* An unfinished upload is deleted this long after it was started. */
#define AR_APP_KEEPING_UPLOAD_TTL_S 900
/* Unfinished uploads open at once, per account in a clinic and per clinic. */
#define AR_APP_KEEPING_UPLOADS_PER_USER 4
#define AR_APP_KEEPING_UPLOADS_PER_CLINIC 32

const ar_app_route_t *ar_app_routes(size_t *count);

/* Role names as stored in memberships and written in docs; NULL for an unknown bit. */
const char *ar_app_role_name(unsigned role);
/* Parses a stored role name; 0 when unknown. */
unsigned ar_app_role_parse(const char *name, size_t len);

/*
 * Finds the route for method and path. Returns the route and writes the {clinic} parameter
 * (0 when the pattern has none). When the path matches a route under another method, returns
 * NULL with *path_known set (405); otherwise NULL with *path_known 0 (404).
 */
const ar_app_route_t *ar_app_route_find(const char *method, size_t mlen, const char *path,
                                        size_t plen, int64_t *clinic, int *path_known);

/* The parameters of a matched path (0 or "" when the pattern has none). */
typedef struct ar_app_params_s {
    int64_t clinic;
    int64_t room;
    int64_t item; /* {item}: an encrypted-keeping item's id */
    char area[65];
} ar_app_params_t;

/* ar_app_route_find with every path parameter. */
const ar_app_route_t *ar_app_route_find_params(const char *method, size_t mlen, const char *path,
                                               size_t plen, ar_app_params_t *params,
                                               int *path_known);

#endif
