/*
 * Invalid frames: a data-driven list of hand-written cases (JSON syntax, UTF-8, duplicate keys,
 * envelope, unknown types and fields, limits, characters), then cases derived from the field
 * tables: for every valid frame and every row of its type, the key removed, given the wrong JSON
 * type, made one byte too long or short, one out of range, an unknown enum value, one item too
 * many. Each must fail with the right code and a text that names the field.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agree.h"
#include "frames.h"
#include "internal.h"

#include "anteroom/alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct bad_case_s {
    int dir;
    const char *json;
    int rc;
    int code;
    const char *text; /* expected text exactly, or a prefix when it ends in '*' */
} bad_case_t;

#define P AR_EPARSE
#define E(x) AR_SIG_E_##x

static const bad_case_t bad_cases[] = {
    {C, "", P, E(BAD_JSON), "*"},
    {C, "null", P, E(BAD_JSON), "invalid JSON at byte*"},
    {C, "[]", P, E(BAD_FRAME), "the frame must be a JSON object"},
    {C, "{\"v\":1,\"type\":\"ping\"", P, E(BAD_JSON), "JSON ends early*"},
    {C, "{\"v\":1,\"type\":\"ping\"} x", P, E(BAD_JSON), "data after the JSON value*"},
    {C, "{\"v\":1,\"type\":\"ping\"}{}", P, E(BAD_JSON), "data after the JSON value*"},
    {C, "{\"v\":1,\"v\":1,\"type\":\"ping\"}", P, E(BAD_JSON), "duplicate key*"},
    {C, "{\"v\":1,\"type\":\"ping\",\"type\":\"pong\"}", P, E(BAD_JSON), "duplicate key*"},
    {C, "{\"v\":1,\"type\":\"message\",\"to\":\"p\",\"text\":\"\xff\"}", P, E(BAD_JSON),
     "invalid UTF-8*"},
    {C, "{\"v\":1,\"type\":\"message\",\"to\":\"p\",\"text\":\"\xc0\xaf\"}", P, E(BAD_JSON),
     "invalid UTF-8*"}, /* overlong '/' */
    {C, "{\"v\":1,\"type\":\"message\",\"to\":\"p\",\"text\":\"\xed\xa0\x80\"}", P, E(BAD_JSON),
     "invalid UTF-8*"}, /* a surrogate in UTF-8 */
    {C, "{\"v\":1,\"type\":\"message\",\"to\":\"p\",\"text\":\"\xf4\x90\x80\x80\"}", P, E(BAD_JSON),
     "invalid UTF-8*"}, /* above U+10FFFF */
    {C, "{\"v\":1,\"type\":\"message\",\"to\":\"p\",\"text\":\"a\xe2\x82\"}", P, E(BAD_JSON),
     "invalid UTF-8*"}, /* truncated sequence */
    {C, "{\"v\":1,\"type\":\"message\",\"to\":\"p\",\"text\":\"\\ud800\"}", P, E(BAD_JSON),
     "invalid JSON*"}, /* lone surrogate escape */
    {C, "{\"v\":1,\"type\":\"message\",\"to\":\"p\",\"text\":\"a\\u0000b\"}", P, E(BAD_JSON),
     "NUL character*"},
    {C, "{\"v\":1,\"type\":\"ping\",\"t\":99999999999999999999}", P, E(BAD_JSON),
     "number out of range*"},
    {C, "{\"v\xff\":1}", P, E(BAD_JSON), "invalid UTF-8*"},
    {C, "{}", P, E(BAD_VERSION), "field 'v' is missing"},
    {C, "{\"v\":2,\"type\":\"ping\"}", P, E(BAD_VERSION),
     "unsupported version; this side speaks 1"},
    {C, "{\"v\":\"1\",\"type\":\"ping\"}", P, E(BAD_VERSION), "unsupported version*"},
    {C, "{\"v\":1.0,\"type\":\"ping\"}", P, E(BAD_VERSION), "unsupported version*"},
    {C, "{\"v\":1}", P, E(UNKNOWN_TYPE), "field 'type' is missing"},
    {C, "{\"v\":1,\"type\":5}", P, E(UNKNOWN_TYPE), "field 'type' must be a string"},
    {C, "{\"v\":1,\"type\":\"ofer\"}", P, E(UNKNOWN_TYPE), "unknown type 'ofer'"},
    {C, "{\"v\":1,\"type\":\"\"}", P, E(UNKNOWN_TYPE), "unknown type"},
    {C, "{\"v\":1,\"type\":\"Robert Smith\"}", P, E(UNKNOWN_TYPE), "unknown type"},
    {C, "{\"v\":1,\"type\":\"OFFER\"}", P, E(UNKNOWN_TYPE), "unknown type"},
    {C, "{\"v\":1,\"type\":\"welcome\"}", P, E(UNKNOWN_TYPE),
     "type 'welcome' is not sent by clients"},
    {S, "{\"v\":1,\"type\":\"hello\",\"seq\":0}", P, E(UNKNOWN_TYPE),
     "type 'hello' is not sent by the server"},
    {C, "{\"v\":1,\"type\":\"ping\",\"x\":1}", P, E(BAD_FIELD), "unknown field 'x'"},
    {C, "{\"v\":1,\"type\":\"ping\",\"John Smith\":1}", P, E(BAD_FIELD), "unknown field"},
    {C, "{\"v\":1,\"type\":\"ping\",\"seq\":1}", P, E(BAD_FIELD), "unknown field 'seq'"},
    {S, "{\"v\":1,\"type\":\"ping\",\"id\":1,\"seq\":0}", P, E(BAD_FIELD), "unknown field 'id'"},
    {S, "{\"v\":1,\"type\":\"ping\"}", P, E(BAD_FIELD), "field 'seq' is missing"},
    /* fid (5.10.1): 22 characters, on session-level frames only */
    {S, "{\"v\":1,\"type\":\"ping\",\"seq\":0,\"fid\":\"AAECAwQFBgcICQoLDA0ODw\"}", P, E(BAD_FIELD),
     "field 'fid' needs a 'seq' of 1 or more"},
    {S,
     "{\"v\":1,\"type\":\"hold\",\"seq\":2,\"fid\":\"AAECAwQFBgcICQoLDA0OD\",\"peer\":\"p\",\"on\":"
     "true}",
     P, E(BAD_FIELD), "field 'fid'*"},
    {S,
     "{\"v\":1,\"type\":\"hold\",\"seq\":2,\"fid\":\"AAECAwQFBgcICQoLDA0O/"
     "w\",\"peer\":\"p\",\"on\":true}",
     P, E(BAD_FIELD), "field 'fid'*"},
    {S, "{\"v\":1,\"type\":\"hold\",\"seq\":2,\"fid\":7,\"peer\":\"p\",\"on\":true}", P,
     E(BAD_FIELD), "field 'fid'*"},
    {C, "{\"v\":1,\"type\":\"ping\",\"id\":\"5\"}", P, E(BAD_FIELD),
     "field 'id' must be an integer"},
    {C, "{\"v\":1,\"type\":\"ping\",\"id\":-5}", P, E(BAD_FIELD),
     "field 'id' must be between 0 and 9007199254740991"},
    {C, "{\"v\":1,\"type\":\"ping\",\"t\":1e3}", P, E(BAD_FIELD), "field 't' must be an integer"},
    {C, "{\"v\":1,\"type\":\"ping\",\"t\":9007199254740992}", P, E(BAD_FIELD),
     "field 't' must be between 0 and 9007199254740991"},
    {C, "{\"v\":1,\"type\":\"hello\",\"token\":\"a\",\"resume\":\"0123456789abcdef\"}", P,
     E(BAD_FIELD), "field 'resume' needs field 'last_seq'"},
    {C, "{\"v\":1,\"type\":\"hello\",\"token\":\"a\",\"last_seq\":1}", P, E(BAD_FIELD),
     "field 'last_seq' needs field 'resume'"},
    {S,
     "{\"v\":1,\"type\":\"peer_left\",\"seq\":3,\"peer\":\"p\",\"reason\":\"removed\",\"stay\":"
     "\"5\"}",
     P, E(BAD_FIELD), "field 'stay' needs field 'room'"},
    {C, "{\"v\":1,\"type\":\"hello\",\"token\":\"a b\"}", P, E(BAD_FIELD),
     "field 'token' must hold only A-Z a-z 0-9 . _ -"},
    {C,
     "{\"v\":1,\"type\":\"arrive\",\"clinic\":\"c\",\"area\":\"a\",\"name\":\"N\",\"consent\":"
     "false}",
     P, E(BAD_FIELD), "field 'consent' must be true"},
    {C, "{\"v\":1,\"type\":\"arrive\",\"clinic\":\"c\",\"area\":\"a\",\"name\":\"N\"}", P,
     E(BAD_FIELD), "field 'consent' is missing"},
    {C,
     "{\"v\":1,\"type\":\"arrive\",\"clinic\":\"c\",\"area\":\"a\",\"name\":\"N\",\"consent\":"
     "true,\"answers\":[1]}",
     P, E(BAD_FIELD), "field 'answers[0]' must be an object"},
    {C,
     "{\"v\":1,\"type\":\"arrive\",\"clinic\":\"c\",\"area\":\"a\",\"name\":\"N\",\"consent\":"
     "true,\"answers\":[{\"q\":\"q\",\"a\":\"\"},{\"q\":\"q\"}]}",
     P, E(BAD_FIELD), "field 'answers[1].a' is missing"},
    {C,
     "{\"v\":1,\"type\":\"arrive\",\"clinic\":\"c\",\"area\":\"a\",\"name\":\"N\",\"consent\":"
     "true,\"answers\":[{\"q\":\"q\",\"a\":\"\",\"z\":1}]}",
     P, E(BAD_FIELD), "unknown field 'z' in answers[0]"},
    {C,
     "{\"v\":1,\"type\":\"arrive\",\"clinic\":\"c\",\"area\":\"a\",\"name\":\"A\\nB\",\"consent\""
     ":true}",
     P, E(BAD_FIELD), "field 'name' must hold UTF-8 text without control or direction-override*"},
    {C,
     "{\"v\":1,\"type\":\"arrive\",\"clinic\":\"c\",\"area\":\"a\",\"name\":\"A\\u202eB\","
     "\"consent\":true}",
     P, E(BAD_FIELD), "field 'name' must hold*"},
    {C,
     "{\"v\":1,\"type\":\"arrive\",\"clinic\":\"c\",\"area\":\"a\",\"name\":\"A\\u0085B\","
     "\"consent\":true}",
     P, E(BAD_FIELD), "field 'name' must hold*"},
    {C,
     "{\"v\":1,\"type\":\"arrive\",\"clinic\":\"c\",\"area\":\"a\",\"name\":\"A\\u2028B\","
     "\"consent\":true}",
     P, E(BAD_FIELD), "field 'name' must hold*"},
    {C, "{\"v\":1,\"type\":\"message\",\"to\":\"p\",\"text\":\"a\\tb\"}", P, E(BAD_FIELD),
     "field 'text' must hold UTF-8 text without control characters but line feeds"},
    {C, "{\"v\":1,\"type\":\"message\",\"to\":\"p\",\"text\":\"a\\u007fb\"}", P, E(BAD_FIELD),
     "field 'text' must hold*"},
    {C, "{\"v\":1,\"type\":\"quality\",\"profile\":\"ultra\"}", P, E(BAD_FIELD),
     "field 'profile' must be one of: low, standard, high"},
    {C, "{\"v\":1,\"type\":\"candidate\",\"to\":\"p\",\"candidate\":\"c\",\"mline\":256}", P,
     E(BAD_FIELD), "field 'mline' must be between 0 and 255"},
    {C, "{\"v\":1,\"type\":\"candidate\",\"to\":null,\"candidate\":\"c\"}", P, E(BAD_FIELD),
     "field 'to' must be a string"},
    {C, "{\"v\":1,\"type\":\"candidate\",\"to\":\"p\",\"candidate\":null}", P, E(BAD_FIELD),
     "field 'candidate' must be a string"},
    {C, "{\"v\":1,\"type\":\"candidate\",\"to\":\"p\",\"candidate\":\"caf\xc3\xa9\"}", P,
     E(BAD_FIELD), "field 'candidate' must hold printable ASCII"},
    {C, "{\"v\":1,\"type\":\"candidate\",\"to\":\"p\",\"candidate\":\"c\",\"mid\":\"\"}", P,
     E(BAD_FIELD), "field 'mid' must not be empty"},
    {C, "{\"v\":1,\"type\":\"offer\",\"to\":\"p\",\"sdp\":\"v=0\\u0001\"}", P, E(BAD_FIELD),
     "field 'sdp' must hold UTF-8 without control characters but CR, LF and tab"},
    {C, "{\"v\":1,\"type\":\"offer\",\"to\":\"p q\",\"sdp\":\"v=0\"}", P, E(BAD_FIELD),
     "field 'to' must hold only A-Z a-z 0-9 . _ -"},
    {C, "{\"v\":1,\"type\":\"offer\",\"to\":\"p\",\"sdp\":\"v=0\",\"restart\":\"yes\"}", P,
     E(BAD_FIELD), "field 'restart' must be a boolean"},
    {C, "{\"v\":1,\"type\":\"hold\",\"peer\":\"p\",\"on\":1}", P, E(BAD_FIELD),
     "field 'on' must be a boolean"},
    {C, "{\"v\":1,\"type\":\"remove\"}", P, E(BAD_FIELD), "field 'peer' is missing"},
    {C, "{\"v\":1,\"type\":\"remove\",\"peer\":\"\"}", P, E(BAD_FIELD),
     "field 'peer' must not be empty"},
    {C, "{\"v\":1,\"type\":\"remove\",\"peer\":\"p 9\"}", P, E(BAD_FIELD),
     "field 'peer' must hold only A-Z a-z 0-9 . _ -"},
    {C, "{\"v\":1,\"type\":\"remove\",\"peer\":[\"p9\"]}", P, E(BAD_FIELD),
     "field 'peer' must be a string"},
    {C, "{\"v\":1,\"type\":\"remove\",\"peer\":\"p9\",\"room\":\"r1\"}", P, E(BAD_FIELD),
     "unknown field 'room'*"},
    {S, "{\"v\":1,\"type\":\"remove\",\"seq\":0,\"peer\":\"p9\"}", P, E(UNKNOWN_TYPE),
     "type 'remove' is not sent by the server"},
    {S, "{\"v\":1,\"type\":\"drain\",\"seq\":0,\"urls\":[\"http://x.example/ws\"],\"within\":1}", P,
     E(BAD_FIELD), "field 'urls[0]' must hold a ws:// or wss:// URL"},
    {S, "{\"v\":1,\"type\":\"drain\",\"seq\":0,\"urls\":[\"wss://a b.example\"],\"within\":1}", P,
     E(BAD_FIELD), "field 'urls[0]' must hold a ws:// or wss:// URL"},
    {S, "{\"v\":1,\"type\":\"drain\",\"seq\":0,\"urls\":[],\"within\":1}", P, E(BAD_FIELD),
     "field 'urls' needs at least 1 item"},
    {S, "{\"v\":1,\"type\":\"drain\",\"seq\":0,\"urls\":[7],\"within\":1}", P, E(BAD_FIELD),
     "field 'urls[0]' must be a string"},
    {S,
     "{\"v\":1,\"type\":\"peer_joined\",\"seq\":1,\"peer\":\"p\",\"role\":\"staff\",\"lang\":"
     "\"x\"}",
     P, E(BAD_FIELD), "field 'lang' is shorter than 2 bytes"},
    {S,
     "{\"v\":1,\"type\":\"queue_add\",\"seq\":1,\"clinic\":\"c\",\"area\":\"a\",\"entry\":{"
     "\"peer\":\"p\",\"name\":\"n\",\"since\":1,\"status\":\"gone\"}}",
     P, E(BAD_FIELD), "field 'entry.status' must be one of: waiting, seen, hold"},
    {S,
     "{\"v\":1,\"type\":\"queue\",\"seq\":1,\"clinic\":\"c\",\"area\":\"a\",\"entries\":[{"
     "\"peer\":\"p\",\"name\":\"n\",\"since\":1,\"status\":\"seen\",\"answers\":[{\"q\":\"q\","
     "\"a\":\"\\u0007\"}]}]}",
     P, E(BAD_FIELD), "field 'entries[0].answers[0].a' must hold*"},
};

static void check_case(const bad_case_t *c, const char *json, size_t len)
{
    ar_sig_msg_t m;
    ar_sig_err_t err;
    int rc = ar_sig_parse(c->dir, json, len, &m, &err);
    if (rc != c->rc || err.code != c->code)
        fail_msg("%.200s: rc %s code %s text '%s'", json, ar_err_name(rc),
                 ar_sig_err_name(err.code), err.text);
    size_t n = strlen(c->text);
    int ok = c->text[n - 1] == '*' ? strncmp(err.text, c->text, n - 1) == 0
                                   : strcmp(err.text, c->text) == 0;
    if (!ok)
        fail_msg("%.200s: text '%s', want '%s'", json, err.text, c->text);
    /* A failed parse leaves nothing to free and a zeroed message. */
    assert_null(m.root_);
    assert_int_equal(m.type, 0);
    /* The relay's parse (flat.c, lift.c) refuses it the same way. */
    ar_sig_err_t e2;
    rc =
        ar_sig_parse2(c->dir, json, len, AR_SIG_PARSE_KEEP_SDP_JSON | AR_SIG_PARSE_BORROW, &m, &e2);
    if (rc != c->rc || e2.code != err.code || strcmp(e2.text, err.text) != 0 || e2.id != err.id ||
        e2.type != err.type)
        fail_msg("%.200s: relay parse: rc %s text '%s', full parse '%s'", json, ar_err_name(rc),
                 e2.text, err.text);
    /* The ordered parse reads none of them: it leaves each to the pairs' parse. */
    assert_int_equal(ordered_agrees_both(c->dir, json, len), 0);
}

static void test_bad_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++)
        check_case(&bad_cases[i], bad_cases[i].json, strlen(bad_cases[i].json));
}

static void test_request_id_echoed(void **state)
{
    (void)state;
    ar_sig_msg_t m;
    ar_sig_err_t err;
    const char *j = "{\"v\":1,\"type\":\"join\",\"id\":5}";
    assert_int_equal(ar_sig_parse(C, j, strlen(j), &m, &err), AR_EPARSE);
    assert_int_equal(err.id, 5);
    assert_int_equal(err.type, AR_SIG_JOIN);
    assert_string_equal(err.text, "field 'room' is missing");
    j = "{\"v\":1,\"type\":\"nope\",\"id\":6}";
    assert_int_equal(ar_sig_parse(C, j, strlen(j), &m, &err), AR_EPARSE);
    assert_int_equal(err.id, 6);
    assert_int_equal(err.type, 0);
}

static void test_oversize(void **state)
{
    (void)state;
    size_t n = AR_SIG_FRAME_MAX + 1;
    char *big = malloc(n + 1);
    assert_non_null(big);
    memset(big, ' ', n);
    big[n] = '\0';
    const bad_case_t c = {C, NULL, AR_ETOOBIG, AR_SIG_E_TOO_BIG,
                          "frame of 65537 bytes exceeds 65536 bytes"};
    check_case(&c, big, n);
    /* The same frame fits the server direction's larger limit, and is then just bad JSON. */
    const bad_case_t s = {S, NULL, AR_EPARSE, AR_SIG_E_BAD_JSON, "*"};
    check_case(&s, big, n);

    /* An SDP one byte over its limit, inside a frame that is not. */
    const char *head = "{\"v\":1,\"type\":\"offer\",\"to\":\"p\",\"sdp\":\"";
    size_t h = strlen(head);
    memcpy(big, head, h);
    memset(big + h, 'a', AR_SIG_SDP_MAX + 1);
    memcpy(big + h + AR_SIG_SDP_MAX + 1, "\"}", 3);
    const bad_case_t sdp = {C, NULL, P, E(BAD_FIELD), "field 'sdp' exceeds 61440 bytes"};
    check_case(&sdp, big, strlen(big));

    /* Nesting deeper than jansson allows, inside an unknown field. */
    size_t depth = 3000, k = 0;
    k += (size_t)sprintf(big, "{\"v\":1,\"type\":\"ping\",\"x\":");
    for (size_t i = 0; i < depth; i++)
        big[k++] = '[';
    for (size_t i = 0; i < depth; i++)
        big[k++] = ']';
    memcpy(big + k, "}", 2);
    const bad_case_t deep = {C, NULL, P, E(BAD_JSON), "nesting too deep*"};
    check_case(&deep, big, strlen(big));
    free(big);
}

/* ---- cases derived from the tables ---- */

/* A string of n characters allowed by the row's charset. */
static json_t *filler(const ar__sig_field_t *f, int64_t n)
{
    char *s = malloc((size_t)n + 8);
    size_t k = 0;
    if (f->cs == AR__CS_URL)
        k = (size_t)sprintf(s, "wss://");
    for (; (int64_t)k < n; k++)
        s[k] = 'a';
    s[n < 0 ? 0 : n] = '\0';
    json_t *v = json_string(s);
    free(s);
    return v;
}

static json_t *wrong_kind(const ar__sig_field_t *f)
{
    switch (f->kind) {
    case AR__SIG_STR:
    case AR__SIG_ENUM:
        return json_integer(7);
    case AR__SIG_INT:
        return json_string("7");
    case AR__SIG_BOOL:
        return json_integer(1);
    case AR__SIG_LIST:
        return json_object();
    default:
        return json_array();
    }
}

static int derived;

/* Replaces key in a copy of frame with v (NULL: removes it) and expects want. */
static void expect_mutation(const frame_case_t *fc, const char *key, json_t *v, const char *want)
{
    json_t *root = json_loads(fc->json, 0, NULL);
    assert_non_null(root);
    if (v == NULL)
        json_object_del(root, key);
    else
        json_object_set_new(root, key, v);
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    assert_non_null(text);
    bad_case_t c = {fc->dir, NULL, P, E(BAD_FIELD), want};
    check_case(&c, text, strlen(text));
    ar_free(text);
    derived++;
}

static void mutate_row(const frame_case_t *fc, const ar__sig_field_t *f, json_t *orig)
{
    char want[160];
    const char *k = f->key;
    if (f->needs != NULL && !strstr(fc->json, f->needs))
        return; /* the dependency error would come first */
    if (f->flags & AR__SIG_REQ) {
        snprintf(want, sizeof(want), "field '%s' is missing", k);
        expect_mutation(fc, k, NULL, want);
    }
    snprintf(want, sizeof(want), "field '%s' must be *", k);
    expect_mutation(fc, k, wrong_kind(f), want);
    if (f->kind == AR__SIG_STR) {
        snprintf(want, sizeof(want), "field '%s' exceeds %lld bytes", k, (long long)f->max);
        expect_mutation(fc, k, filler(f, f->max + 1), want);
        if (f->min > 0 && f->cs != AR__CS_URL) {
            snprintf(want, sizeof(want), "field '%s' *", k);
            expect_mutation(fc, k, filler(f, f->min - 1), want);
        }
    } else if (f->kind == AR__SIG_INT) {
        snprintf(want, sizeof(want), "field '%s' must be between %lld and %lld", k,
                 (long long)f->min, (long long)f->max);
        expect_mutation(fc, k, json_integer(f->max + 1), want);
        expect_mutation(fc, k, json_integer(f->min - 1), want);
    } else if (f->kind == AR__SIG_ENUM) {
        snprintf(want, sizeof(want), "field '%s' must be one of: %s*", k, f->values[0]);
        expect_mutation(fc, k, json_string("zzz"), want);
    } else if (f->kind == AR__SIG_LIST && orig != NULL && json_array_size(orig) > 0) {
        json_t *many = json_array();
        for (int64_t i = 0; i <= f->max; i++)
            json_array_append_new(many, json_deep_copy(json_array_get(orig, 0)));
        snprintf(want, sizeof(want), "field '%s' has more than %lld items", k, (long long)f->max);
        expect_mutation(fc, k, many, want);
    }
}

static void test_table_derived(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_VALID; i++) {
        const frame_case_t *fc = &valid_frames[i];
        const ar__sig_table_t *t = ar__sig_types[fc->type].table[fc->dir];
        json_t *root = json_loads(fc->json, 0, NULL);
        assert_non_null(root);
        for (size_t r = 0; r < t->count; r++)
            mutate_row(fc, &t->fields[r], json_object_get(root, t->fields[r].key));
        json_decref(root);
        /* Every type refuses a key it does not know. */
        expect_mutation(fc, "extra", json_true(), "unknown field 'extra'");
    }
    print_message("%d derived invalid frames\n", derived);
    assert_true(derived > 300);
}

/* Truncating a valid frame anywhere never yields a message and never crashes. */
static void test_truncations(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_VALID; i++) {
        const char *j = valid_frames[i].json;
        size_t n = strlen(j);
        for (size_t cut = 0; cut < n; cut++) {
            ar_sig_msg_t m;
            ar_sig_err_t err;
            int rc = ar_sig_parse(valid_frames[i].dir, j, cut, &m, &err);
            assert_int_equal(rc, AR_EPARSE);
            assert_true(err.code > 0);
            assert_true(err.text[0] != '\0');
            ar_sig_err_t e2;
            rc = ar_sig_parse2(valid_frames[i].dir, j, cut,
                               AR_SIG_PARSE_KEEP_SDP_JSON | AR_SIG_PARSE_BORROW, &m, &e2);
            assert_int_equal(rc, AR_EPARSE);
            assert_string_equal(e2.text, err.text);
            assert_int_equal(ordered_agrees_both(valid_frames[i].dir, j, cut), 0);
        }
    }
}

int main(void)
{
    ar_sig_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_cases),   cmocka_unit_test(test_request_id_echoed),
        cmocka_unit_test(test_oversize),    cmocka_unit_test(test_table_derived),
        cmocka_unit_test(test_truncations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
