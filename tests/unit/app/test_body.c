/* The JSON body validator: data-driven cases, each with the error class it must give. */
#include "body.h"

#include "anteroom/err.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

static const ar_app_field_t fields[] = {
    {"email", AR_FIELD_STR, 1, 3, 254, AR_CS_EMAIL}, {"name", AR_FIELD_STR, 0, 1, 16, AR_CS_TEXT},
    {"slug", AR_FIELD_STR, 0, 1, 16, AR_CS_SLUG},    {"n", AR_FIELD_INT, 0, 1, 10, AR_CS_ANY},
    {"on", AR_FIELD_BOOL, 0, 0, 0, AR_CS_ANY},
};

static const struct {
    const char *json;
    int rc;
} cases[] = {
    {"{\"email\":\"a@b.c\"}", 0},
    {"{\"email\":\"a@b.c\",\"name\":\"Zoë\",\"slug\":\"gp-1\",\"n\":10,\"on\":true}", 0},
    {"{}", AR_EINVAL},
    {"{\"email\":\"ab.c\"}", AR_EINVAL},
    {"{\"email\":\"a@b@c\"}", AR_EINVAL},
    {"{\"email\":\"@bc\"}", AR_EINVAL},
    {"{\"email\":\"a b@c\"}", AR_EINVAL},
    {"{\"email\":1}", AR_EINVAL},
    {"{\"email\":\"a@b.c\",\"extra\":1}", AR_EINVAL},
    {"{\"email\":\"a@b.c\",\"name\":\"a\\nb\"}", AR_EINVAL},
    {"{\"email\":\"a@b.c\",\"name\":\"a\\u202eb\"}", AR_EINVAL},
    {"{\"email\":\"a@b.c\",\"name\":\"\"}", AR_EINVAL},
    {"{\"email\":\"a@b.c\",\"name\":\"12345678901234567\"}", AR_EINVAL},
    {"{\"email\":\"a@b.c\",\"slug\":\"Gp\"}", AR_EINVAL},
    {"{\"email\":\"a@b.c\",\"n\":0}", AR_EINVAL},
    {"{\"email\":\"a@b.c\",\"n\":1.5}", AR_EINVAL},
    {"{\"email\":\"a@b.c\",\"on\":1}", AR_EINVAL},
    {"{\"email\":\"a@b.c\",\"email\":\"d@e.f\"}", AR_EPARSE},
    {"{\"email\":\"a\\u0000@b.c\"}", AR_EPARSE},
    {"[1]", AR_EPARSE},
    {"{\"email\":\"a@b.c\"} x", AR_EPARSE},
    {"\xff", AR_EPARSE},
    {"[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]", AR_EPARSE},
};

static void table_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *out;
        char msg[AR_BODY_MSG_MAX];
        int rc = ar_app_body_parse(cases[i].json, strlen(cases[i].json), 1024, fields, 5, &out, msg,
                                   sizeof(msg));
        if (rc != cases[i].rc)
            fail_msg("case %zu: rc %d, want %d (%s)", i, rc, cases[i].rc, msg);
        assert_true(rc == 0 ? out != NULL : out == NULL && msg[0] != '\0');
        json_decref(out);
    }
}

static void messages_never_echo_input(void **state)
{
    (void)state;
    static const char *const inputs[] = {"{\"SECRETKEY\":1}",
                                         "{\"email\":\"SECRET@x\",\"name\":\"SECRET\\n\"}",
                                         "{\"SECRET", "\"SECRET\""};
    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
        json_t *out;
        char msg[AR_BODY_MSG_MAX];
        assert_true(ar_app_body_parse(inputs[i], strlen(inputs[i]), 1024, fields, 5, &out, msg,
                                      sizeof(msg)) < 0);
        assert_null(strstr(msg, "SECRET"));
    }
}

/* The token-id and language-tag charsets the invite-token table uses (invite_tokens.c). */
static void id_and_lang_charsets(void **state)
{
    (void)state;
    static const struct {
        ar_charset_t cs;
        const char *s;
        int ok;
    } c[] = {
        {AR_CS_ID, "Room_1.a-b", 1}, {AR_CS_ID, "a/b", 0},     {AR_CS_ID, "a b", 0},
        {AR_CS_ID, "r\u00e9", 0},    {AR_CS_LANG, "uk", 1},    {AR_CS_LANG, "pt-BR", 1},
        {AR_CS_LANG, "u k", 0},      {AR_CS_LANG, "en_GB", 0}, {AR_CS_LANG, "en.GB", 0},
        {AR_CS_SLUG, "gp-1", 1},     {AR_CS_SLUG, "Gp", 0},
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++)
        if (ar_app_charset_ok(c[i].cs, c[i].s, strlen(c[i].s)) != c[i].ok)
            fail_msg("case %zu (%s): want %d", i, c[i].s, c[i].ok);
    /* A NUL inside the length is never one of the extra characters. */
    assert_int_equal(ar_app_charset_ok(AR_CS_ID, "a\0b", 3), 0);
}

static void cap_is_enforced(void **state)
{
    (void)state;
    json_t *out;
    char msg[AR_BODY_MSG_MAX];
    const char *j = "{\"email\":\"a@b.c\"}";
    assert_int_equal(ar_app_body_parse(j, strlen(j), 5, fields, 5, &out, msg, sizeof(msg)),
                     AR_ETOOBIG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(table_cases),
        cmocka_unit_test(messages_never_echo_input),
        cmocka_unit_test(cap_is_enforced),
        cmocka_unit_test(id_and_lang_charsets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
