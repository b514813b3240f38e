/*
 * docs/openapi.yaml against the route table: every route documented (method, path, auth kind,
 * roles, CSRF flag, whether it takes a body) and nothing documented that is not routed.
 * The YAML is read line by line under the format rules its header states; a file that breaks
 * them fails here rather than being half-read.
 */
#include "routes.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define OPS_MAX 64

typedef struct {
    char method[8];
    char path[128];
    char auth[16];
    unsigned roles;
    int roles_seen;
    int csrf; /* -1 unset */
    int body;
} op_t;

static op_t ops[OPS_MAX];
static size_t nops;

static unsigned parse_roles(const char *list)
{
    unsigned bits = 0;
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", list);
    for (char *save, *t = strtok_r(buf, "[], \n", &save); t; t = strtok_r(NULL, "[], \n", &save)) {
        unsigned b = ar_app_role_parse(t, strlen(t));
        if (b == 0)
            fail_msg("openapi: unknown role '%s'", t);
        bits |= b;
    }
    return bits;
}

static void load(void)
{
    FILE *f = fopen(AR_OPENAPI, "r");
    assert_non_null(f);
    char line[512], path[128] = "";
    int in_paths = 0;
    op_t *cur = NULL;
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        size_t indent = strspn(line, " ");
        if (indent == 0 && line[0] != '\0' && line[0] != '#') {
            in_paths = strcmp(line, "paths:") == 0;
            cur = NULL;
            continue;
        }
        if (!in_paths || line[indent] == '\0' || line[indent] == '#')
            continue;
        if (indent == 2) {
            assert_true(line[strlen(line) - 1] == ':');
            snprintf(path, sizeof(path), "%.*s", (int)(strlen(line) - 3), line + 2);
            cur = NULL;
        } else if (indent == 4) {
            static const char *const methods[] = {"get", "post", "put", "patch", "delete"};
            cur = NULL;
            for (size_t i = 0; i < 5; i++) {
                if (strcmp(line + 4, methods[i]) == 0 ||
                    (strncmp(line + 4, methods[i], strlen(methods[i])) == 0 &&
                     line[4 + strlen(methods[i])] == ':')) {
                    assert_true(nops < OPS_MAX);
                    cur = &ops[nops++];
                    memset(cur, 0, sizeof(*cur));
                    cur->csrf = -1;
                    for (size_t k = 0; methods[i][k]; k++)
                        cur->method[k] = (char)(methods[i][k] - 'a' + 'A');
                    snprintf(cur->path, sizeof(cur->path), "%s", path);
                }
            }
            if (cur == NULL && strncmp(line + 4, "parameters:", 11) != 0)
                fail_msg("openapi: unexpected key under %s: %s", path, line + 4);
        } else if (indent == 6 && cur != NULL) {
            const char *v = strchr(line, ':');
            v = v ? v + 1 : "";
            while (*v == ' ')
                v++;
            if (strncmp(line + 6, "x-anteroom-auth:", 16) == 0)
                snprintf(cur->auth, sizeof(cur->auth), "%s", v);
            else if (strncmp(line + 6, "x-anteroom-roles:", 17) == 0)
                cur->roles = parse_roles(v), cur->roles_seen = 1;
            else if (strncmp(line + 6, "x-anteroom-csrf:", 16) == 0)
                cur->csrf = strcmp(v, "true") == 0;
            else if (strncmp(line + 6, "requestBody:", 12) == 0)
                cur->body = 1;
        }
    }
    fclose(f);
}

static const char *auth_name(ar_app_auth_t a)
{
    return a == AR_AUTH_PUBLIC ? "public" : a == AR_AUTH_SESSION ? "session" : "clinic";
}

static void every_route_documented(void **state)
{
    (void)state;
    size_t n;
    const ar_app_route_t *rt = ar_app_routes(&n);
    for (size_t i = 0; i < n; i++) {
        const op_t *op = NULL;
        for (size_t j = 0; j < nops && op == NULL; j++)
            if (strcmp(ops[j].method, rt[i].method) == 0 && strcmp(ops[j].path, rt[i].pattern) == 0)
                op = &ops[j];
        if (op == NULL)
            fail_msg("route %s %s is not in docs/openapi.yaml", rt[i].method, rt[i].pattern);
        if (strcmp(op->auth, auth_name(rt[i].auth)) != 0 || !op->roles_seen ||
            op->roles != rt[i].roles || op->csrf != rt[i].csrf || op->body != (rt[i].body != NULL))
            fail_msg("%s %s: openapi says auth=%s roles=%#x csrf=%d body=%d, the route table "
                     "auth=%s roles=%#x csrf=%d body=%d",
                     rt[i].method, rt[i].pattern, op->auth, op->roles, op->csrf, op->body,
                     auth_name(rt[i].auth), rt[i].roles, rt[i].csrf, rt[i].body != NULL);
    }
}

static void nothing_undocumented_is_routed(void **state)
{
    (void)state;
    size_t n;
    const ar_app_route_t *rt = ar_app_routes(&n);
    assert_true(nops > 0);
    for (size_t j = 0; j < nops; j++) {
        int found = 0;
        for (size_t i = 0; i < n && !found; i++)
            found =
                strcmp(ops[j].method, rt[i].method) == 0 && strcmp(ops[j].path, rt[i].pattern) == 0;
        if (!found)
            fail_msg("docs/openapi.yaml documents %s %s, which is not routed", ops[j].method,
                     ops[j].path);
    }
}

int main(void)
{
    load();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_route_documented),
        cmocka_unit_test(nothing_undocumented_is_routed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
