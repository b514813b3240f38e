/*
 * Invite links (C4), persistent-room tokens (C6) and call-monitor tokens, through a real
 * anteroom-app on loopback, on both stores: every minted token is checked with ar_token_verify
 * against the published keys; the refusals (CSRF, another clinic, bad ids, unknown fields, a
 * room of another clinic) answer as documented in docs/api.md.
 */
#include "harness.h"
#include "keys.h"
#include "servers.h"

#include "anteroom/token.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char cookie[200], csrf[100], own[24];

static const char servers_json[] =
    "{\"jurisdiction\": \"eu\", \"jurisdictions\": {"
    "\"eu\": {\"signal\": [\"wss://signal.eu.test/ws\"], \"turn\": ["
    "{\"node\": \"relay-a\", \"host\": \"turn-a.eu.test\", \"port\": 3478, \"tls_port\": 443}],"
    "\"monitor\": \"https://monitor.eu.test/v1/stats\"}}}";

static json_t *req(const char *method, const char *path, const char *body, const char *tok,
                   int *status)
{
    resp_t r;
    h_request(&(req_t){.method = method,
                       .path = path,
                       .cookie = cookie,
                       .csrf = tok,
                       .origin = h_origin,
                       .body = body},
              &r);
    *status = r.status;
    json_t *j = r.body_len ? json_loads(r.body, 0, NULL) : NULL;
    h_resp_free(&r);
    return j;
}

static void verify(const char *token, const char *aud, ar_token_claims_t *cl)
{
    ar_store_conn_t *c;
    ar_token_keyring_t ring;
    memset(&ring, 0, sizeof(ring));
    CHECK(ar_store_open(h_store_opts(), &c) == 0);
    CHECK(ar_app_keys_keyring(c, h_clock(), &ring) == 0);
    ar_store_close(c);
    CHECK(token != NULL && ar_token_verify(&ring, token, strlen(token), aud, h_clock(), cl) == 0);
}

static void test_invite(void)
{
    char path[120];
    int st;
    snprintf(path, sizeof(path), "/api/v1/clinics/%s/invite-token", own);
    json_t *j = req("POST", path, "{\"room\":\"Room_1.a-b\",\"lang\":\"uk\"}", csrf, &st);
    CHECK(st == 201);
    const char *token = json_string_value(json_object_get(j, "token"));
    ar_token_claims_t cl;
    verify(token, "signal", &cl);
    CHECK(cl.role == AR_TOKEN_INVITEE && strcmp(cl.room, "Room_1.a-b") == 0 &&
          strcmp(cl.lang, "uk") == 0 && strcmp(cl.clinic, own) == 0 && strcmp(cl.jur, "eu") == 0 &&
          cl.nclinics == 0 && cl.exp - cl.iat == AR_APP_PATIENT_TOKEN_TTL);
    /* The link: the token and the servers, both in the fragment. */
    const char *link = json_string_value(json_object_get(j, "link"));
    char want[AR_TOKEN_MAX + 64];
    snprintf(want, sizeof(want), "/patient.html#invite=%s&servers=", token);
    CHECK(link && strncmp(link, want, strlen(want)) == 0);
    const char *b64 = link + strlen(want);
    const char *mon = json_string_value(json_object_get(j, "monitor_token"));
    char tail[AR_TOKEN_MAX + 16];
    snprintf(tail, sizeof(tail), "&monitor=%s", mon ? mon : "?");
    CHECK(strlen(b64) > strlen(tail) && strcmp(b64 + strlen(b64) - strlen(tail), tail) == 0);
    ar_token_claims_t m;
    verify(mon, "monitor", &m);
    CHECK(m.role == AR_TOKEN_INVITEE && strcmp(m.clinic, own) == 0 && m.lang[0] == '\0' &&
          strcmp(m.room, cl.room) != 0 && strcmp(m.sub, cl.sub) != 0);
    unsigned char raw[4096];
    size_t n = 0;
    CHECK(sodium_base642bin(raw, sizeof(raw) - 1, b64, strlen(b64) - strlen(tail), NULL, &n, NULL,
                            sodium_base64_VARIANT_URLSAFE_NO_PADDING) == 0);
    raw[n] = '\0';
    json_t *srv = json_loads((const char *)raw, 0, NULL);
    CHECK(srv && json_equal(srv, json_object_get(j, "servers")));
    CHECK(strcmp(json_string_value(json_object_get(srv, "monitor")),
                 "https://monitor.eu.test/v1/stats") == 0);
    json_decref(srv);
    /* Two links for one room are two tokens (each opens one session). */
    json_t *j2 = req("POST", path, "{\"room\":\"Room_1.a-b\"}", csrf, &st);
    CHECK(st == 201);
    ar_token_claims_t cl2;
    verify(json_string_value(json_object_get(j2, "token")), "signal", &cl2);
    CHECK(strcmp(cl.sub, cl2.sub) != 0 && cl2.lang[0] == '\0');
    json_decref(j2);
    json_decref(j);

    static const struct {
        const char *body;
        int csrf, status;
    } bad[] = {
        {"{\"room\":\"r1\"}", 0, 403},                  /* no CSRF token */
        {"{\"room\":\"a/b\"}", 1, 400},                 /* not an id */
        {"{\"room\":\"r1\",\"lang\":\"u k\"}", 1, 400}, /* not a language tag */
        {"{\"room\":\"r1\",\"lang\":\"u\"}", 1, 400},   /* too short */
        {"{\"room\":\"r1\",\"name\":\"x\"}", 1, 400},   /* unknown field */
        {"{}", 1, 400},                                 /* no room */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_decref(req("POST", path, bad[i].body, bad[i].csrf ? csrf : NULL, &st));
        if (st != bad[i].status)
            fprintf(stderr, "case %zu: %d\n", i, st);
        CHECK(st == bad[i].status);
    }
    snprintf(path, sizeof(path), "/api/v1/clinics/%lld/invite-token", (long long)h_clinic_other);
    json_decref(req("POST", path, "{\"room\":\"r1\"}", csrf, &st));
    CHECK(st == 403);
    printf("ok invite links: one invitee token per link, language, servers in the fragment, "
           "refusals\n");
}

static void test_room_and_monitor(void)
{
    char acookie[200], acsrf[100], path[160];
    int st;
    /* The administrator makes a room; the provider enters it. */
    CHECK(h_signin("clinic_admin@example.org", h_password, acookie, sizeof(acookie), acsrf,
                   sizeof(acsrf)) == 201);
    resp_t r;
    snprintf(path, sizeof(path), "/api/v1/clinics/%s/rooms", own);
    h_request(&(req_t){.method = "POST",
                       .path = path,
                       .cookie = acookie,
                       .csrf = acsrf,
                       .origin = h_origin,
                       .body = "{\"name\":\"Huddle\"}"},
              &r);
    CHECK(r.status == 201);
    json_t *room = json_loads(r.body, 0, NULL);
    h_resp_free(&r);
    long long id = (long long)json_integer_value(json_object_get(room, "id"));
    snprintf(path, sizeof(path), "/api/v1/clinics/%s/rooms/%lld/signal-token", own, id);
    json_t *j = req("GET", path, NULL, NULL, &st);
    CHECK(st == 200);
    ar_token_claims_t cl;
    verify(json_string_value(json_object_get(j, "token")), "signal", &cl);
    CHECK(cl.role == AR_TOKEN_STAFF &&
          strcmp(cl.room, json_string_value(json_object_get(room, "room"))) == 0 &&
          ar_token_has_clinic_role(&cl, own, "provider") && cl.nclinics == 1);
    char room_sub[AR_TOKEN_ID_MAX];
    snprintf(room_sub, sizeof(room_sub), "%s", cl.sub);
    ar_token_claims_t m;
    verify(json_string_value(json_object_get(j, "monitor_token")), "monitor", &m);
    CHECK(m.role == AR_TOKEN_STAFF && m.room[0] == '\0' && m.nclinics == 1 &&
          strcmp(m.clinics[0].id, own) == 0 && strcmp(m.sub, cl.sub) != 0);
    json_decref(j);
    /* Another clinic's path: no role there; an unknown room: not found. */
    snprintf(path, sizeof(path), "/api/v1/clinics/%lld/rooms/%lld/signal-token",
             (long long)h_clinic_other, id);
    json_decref(req("GET", path, NULL, NULL, &st));
    CHECK(st == 403);
    snprintf(path, sizeof(path), "/api/v1/clinics/%s/rooms/%lld/signal-token", own, id + 1000);
    json_decref(req("GET", path, NULL, NULL, &st));
    CHECK(st == 404);
    json_decref(room);

    /* Monitor tokens: each signal-token entry and the patient entry carry one, no identity. */
    j = req("GET", "/api/v1/signal-token", NULL, NULL, &st);
    CHECK(st == 200);
    json_t *t0 = json_array_get(json_object_get(j, "tokens"), 0);
    verify(json_string_value(json_object_get(t0, "monitor_token")), "monitor", &m);
    verify(json_string_value(json_object_get(t0, "token")), "signal", &cl);
    CHECK(m.role == AR_TOKEN_STAFF && m.nclinics == 1 && strcmp(m.sub, cl.sub) != 0);
    json_decref(j);
    /* A sign-in's staff tokens share their subject (signalling renews a session in place with
     * the next one, protocol.md 5.15), the persistent room's too; not a random one each time. */
    j = req("GET", "/api/v1/signal-token", NULL, NULL, &st);
    CHECK(st == 200);
    ar_token_claims_t again;
    verify(json_string_value(
               json_object_get(json_array_get(json_object_get(j, "tokens"), 0), "token")),
           "signal", &again);
    CHECK(strlen(cl.sub) == 22 && strcmp(again.sub, cl.sub) == 0 && strcmp(room_sub, cl.sub) == 0);
    json_decref(j);
    printf("ok persistent-room tokens and monitor tokens\n");
}

static void cases(void)
{
    snprintf(own, sizeof(own), "%lld", (long long)h_clinic_own);
    CHECK(h_signin("provider@example.org", h_password, cookie, sizeof(cookie), csrf,
                   sizeof(csrf)) == 201);
    test_invite();
    test_room_and_monitor();
}

int main(int argc, char **argv)
{
    ar_app_servers_t *s;
    char err[200];
    if (ar_app_servers_parse(servers_json, strlen(servers_json), &s, err, sizeof(err)) != 0) {
        fprintf(stderr, "servers: %s\n", err);
        return 1;
    }
    h_servers = s;
    h_run(argc, argv, cases, NULL);
    ar_app_servers_free(s);
    printf("all invite, room and monitor token tests passed (%s)\n", argv[1]);
    return 0;
}
