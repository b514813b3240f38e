/*
 * Frame to message: size cap, strict JSON (jansson, duplicate keys refused), the envelope
 * ("v", "type", "id"/"seq"), then the type's field table. Each failure gets the protocol error
 * code a client can act on and a description naming what is wrong.
 */
#include "internal.h"

#include "anteroom/alloc.h"

#include <string.h>

static const char *const type_names[AR_SIG_TYPE_COUNT] = {[AR_SIG_NONE_TYPE] = "?",
#define AR__SIG_TYPE_NAME(name, str) [AR_SIG_##name] = (str),
                                                          AR_SIG_TYPE_MAP(AR__SIG_TYPE_NAME)
#undef AR__SIG_TYPE_NAME
};

const char *ar_sig_type_name(int type)
{
    return type > 0 && type < AR_SIG_TYPE_COUNT ? type_names[type] : "?";
}

const char *ar_sig_err_name(int code)
{
    switch (code) {
#define AR__SIG_ERR_NAME(name, num, str, msg)                                                      \
    case (num):                                                                                    \
        return (str);
        AR_SIG_ERR_MAP(AR__SIG_ERR_NAME)
#undef AR__SIG_ERR_NAME
    default:
        return "?";
    }
}

const char *ar_sig_err_text(int code)
{
    switch (code) {
#define AR__SIG_ERR_TEXT(name, num, str, msg)                                                      \
    case (num):                                                                                    \
        return (msg);
        AR_SIG_ERR_MAP(AR__SIG_ERR_TEXT)
#undef AR__SIG_ERR_TEXT
    default:
        return "?";
    }
}

const char *ar_sig_close_name(int code)
{
    switch (code) {
#define AR__SIG_CLOSE_NAME(name, num, str, msg)                                                    \
    case (num):                                                                                    \
        return (str);
        AR_SIG_CLOSE_MAP(AR__SIG_CLOSE_NAME)
#undef AR__SIG_CLOSE_NAME
    default:
        return "?";
    }
}

static void *json_alloc(size_t n)
{
    return ar_malloc(n);
}

void ar_sig_init(void)
{
    /* What jansson held (a patient's name and answers, an SDP) is wiped before the memory goes
     * back, as every other copy of them is (P5, S4). jansson does not pass the size;
     * ar_free_wiped asks the allocator for the block's. */
    json_set_alloc_funcs(json_alloc, ar_free_wiped);
}

/* jansson's own texts quote the input, so each of its error kinds gets a text of ours. */
static int fail_json(const json_error_t *je, ar_sig_err_t *err)
{
    const int bad = AR_SIG_E_BAD_JSON;
    int at = je->position;
    switch (json_error_code(je)) {
    case json_error_out_of_memory:
        return AR_ENOMEM;
    case json_error_invalid_utf8:
        return AR__SIG_FAIL(err, bad, "invalid UTF-8 at byte %d", at);
    case json_error_duplicate_key:
        return AR__SIG_FAIL(err, bad, "duplicate key at byte %d", at);
    case json_error_null_character:
        return AR__SIG_FAIL(err, bad, "NUL character at byte %d", at);
    case json_error_numeric_overflow:
        return AR__SIG_FAIL(err, bad, "number out of range at byte %d", at);
    case json_error_stack_overflow:
        return AR__SIG_FAIL(err, bad, "nesting too deep at byte %d", at);
    case json_error_premature_end_of_input:
        return AR__SIG_FAIL(err, bad, "JSON ends early at byte %d", at);
    case json_error_end_of_input_expected:
        return AR__SIG_FAIL(err, bad, "data after the JSON value at byte %d", at);
    default:
        return AR__SIG_FAIL(err, bad, "invalid JSON at byte %d", at);
    }
}

static int find_type(const char *name)
{
    for (int i = 1; i < AR_SIG_TYPE_COUNT; i++)
        if (strcmp(type_names[i], name) == 0)
            return i;
    return 0;
}

/* "v" must be 1, and "type" a type that travels in this direction. */
static int check_head(ar_sig_dir_t dir, json_t *root, ar_sig_err_t *err)
{
    json_t *v = json_object_get(root, "v");
    if (v == NULL)
        return AR__SIG_FAIL(err, AR_SIG_E_BAD_VERSION, "field 'v' is missing");
    if (!json_is_integer(v) || json_integer_value(v) != AR_SIG_VERSION)
        return AR__SIG_FAIL(err, AR_SIG_E_BAD_VERSION, "unsupported version; this side speaks %d",
                            AR_SIG_VERSION);
    json_t *t = json_object_get(root, "type");
    if (t == NULL)
        return AR__SIG_FAIL(err, AR_SIG_E_UNKNOWN_TYPE, "field 'type' is missing");
    if (!json_is_string(t))
        return AR__SIG_FAIL(err, AR_SIG_E_UNKNOWN_TYPE, "field 'type' must be a string");
    const char *name = json_string_value(t);
    int type = find_type(name);
    if (type == 0) {
        /* Echo the type only when it is short and plain, so no typed text comes back. */
        size_t n = json_string_length(t);
        if (n == 0 || n > 24 || !ar__sig_charset_ok(AR__CS_WORD, name, n))
            return AR__SIG_FAIL(err, AR_SIG_E_UNKNOWN_TYPE, "unknown type");
        return AR__SIG_FAIL(err, AR_SIG_E_UNKNOWN_TYPE, "unknown type '%s'", name);
    }
    err->type = type;
    if (ar__sig_types[type].table[dir] == NULL)
        return AR__SIG_FAIL(err, AR_SIG_E_UNKNOWN_TYPE, "type '%s' is not sent by %s", name,
                            dir == AR_SIG_FROM_CLIENT ? "clients" : "the server");
    return 0;
}

void ar__sig_env_to_msg(ar_sig_dir_t dir, int type, const ar__sig_env_t *env, ar_sig_msg_t *msg)
{
    msg->type = type;
    msg->id = dir == AR_SIG_FROM_CLIENT ? env->id : AR_SIG_NONE;
    msg->seq = dir == AR_SIG_FROM_SERVER ? env->seq : 0;
    if (dir == AR_SIG_FROM_SERVER)
        msg->fid = env->fid;
    msg->dir_ = dir;
}

/* The fast path of ar_sig_parse2 (lift.c): 1 when it parsed the frame, 0 to parse it fully. */
static int parse_lifted(ar_sig_dir_t dir, const char *frame, size_t len, ar_sig_msg_t *msg,
                        ar_sig_err_t *err, int *rc)
{
    size_t vs, ve;
    /* Small frames decode fast enough; their copy would cost more than it saves. */
    if (len < 1024 || !ar__sig_lift_sdp(frame, len, &vs, &ve))
        return 0;
    size_t raw = ve - vs, slen = len - raw + 1;
    char *stand_in = ar_malloc(slen);
    char *keep = stand_in ? ar_malloc(raw + 1) : NULL;
    if (!keep) {
        ar_free(stand_in);
        *rc = AR_ENOMEM;
        return 1;
    }
    memcpy(stand_in, frame, vs);
    stand_in[vs] = 'x'; /* one character: the field's own checks pass, the real ones were ours */
    memcpy(stand_in + vs + 1, frame + ve, len - ve);
    memcpy(keep, frame + vs, raw);
    keep[raw] = '\0';
    int r = ar_sig_parse(dir, stand_in, slen, msg, err);
    ar_free(stand_in);
    if (r == 0 && (msg->type == AR_SIG_OFFER || msg->type == AR_SIG_ANSWER)) {
        msg->u.sdp.sdp = (ar_sig_str_t){keep, raw};
        msg->sdp_json_ = keep;
        *rc = 0;
        return 1;
    }
    ar_free(keep);
    if (r == 0)
        ar_sig_msg_free(msg);
    if (r == AR_ENOMEM) {
        *rc = r;
        return 1;
    }
    return 0; /* refused (or another type): the full parse gives the exact answer */
}

int ar_sig_parse2(ar_sig_dir_t dir, const char *frame, size_t len, unsigned flags,
                  ar_sig_msg_t *msg, ar_sig_err_t *err)
{
    int rc = 0;
    if ((flags & AR_SIG_PARSE_BORROW) && frame != NULL &&
        (dir == AR_SIG_FROM_CLIENT || dir == AR_SIG_FROM_SERVER) &&
        len <= (dir == AR_SIG_FROM_CLIENT ? AR_SIG_FRAME_MAX : AR_SIG_OUT_MAX) &&
        (ar__sig_parse_ordered(dir, frame, len, flags, msg, err) ||
         ar__sig_parse_flat(dir, frame, len, flags, msg, err)))
        return 0;
    if ((flags & AR_SIG_PARSE_KEEP_SDP_JSON) && frame != NULL &&
        (dir == AR_SIG_FROM_CLIENT || dir == AR_SIG_FROM_SERVER) &&
        len <= (dir == AR_SIG_FROM_CLIENT ? AR_SIG_FRAME_MAX : AR_SIG_OUT_MAX) &&
        parse_lifted(dir, frame, len, msg, err, &rc))
        return rc;
    return ar_sig_parse(dir, frame, len, msg, err);
}

int ar_sig_parse(ar_sig_dir_t dir, const char *frame, size_t len, ar_sig_msg_t *msg,
                 ar_sig_err_t *err)
{
    memset(msg, 0, sizeof(*msg));
    memset(err, 0, sizeof(*err));
    err->id = AR_SIG_NONE;
    if (frame == NULL || (dir != AR_SIG_FROM_CLIENT && dir != AR_SIG_FROM_SERVER))
        return AR_EINVAL;
    size_t cap = dir == AR_SIG_FROM_CLIENT ? AR_SIG_FRAME_MAX : AR_SIG_OUT_MAX;
    if (len > cap) {
        (void)AR__SIG_FAIL(err, AR_SIG_E_TOO_BIG, "frame of %zu bytes exceeds %zu bytes", len, cap);
        return AR_ETOOBIG;
    }
    json_error_t je;
    /* jansson reports most allocation failures as syntax errors: count them ourselves. */
    unsigned long failures = ar_alloc_failures();
    json_t *root = json_loadb(frame, len, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL) {
        if (ar_alloc_failures() != failures) {
            memset(err, 0, sizeof(*err));
            err->id = AR_SIG_NONE;
            return AR_ENOMEM;
        }
        return fail_json(&je, err);
    }
    if (!json_is_object(root)) {
        json_decref(root);
        return AR__SIG_FAIL(err, AR_SIG_E_BAD_FRAME, "the frame must be a JSON object");
    }
    /* The request id first, so that even a refusal can name the request it answers. */
    json_t *id = json_object_get(root, "id");
    if (dir == AR_SIG_FROM_CLIENT && json_is_integer(id) && json_integer_value(id) >= 0 &&
        json_integer_value(id) <= AR_SIG_INT_MAX)
        err->id = json_integer_value(id);

    int rc = check_head(dir, root, err);
    const ar__sig_table_t *t = rc == 0 ? ar__sig_types[err->type].table[dir] : NULL;
    ar__sig_env_t env;
    memset(&env, 0, sizeof(env));
    if (rc == 0)
        rc = ar__sig_read_object(&ar__sig_envelope[dir], t, root, &env, "", err);
    if (rc == 0)
        rc = ar__sig_read_object(t, &ar__sig_envelope[dir], root, msg, "", err);
    if (rc == 0 && env.fid.len && env.seq == 0) /* frame ids number session-level frames */
        rc = AR__SIG_FAIL(err, AR_SIG_E_BAD_FIELD, "field 'fid' needs a 'seq' of 1 or more");
    if (rc != 0) {
        if (t != NULL)
            ar__sig_free_object(t, msg);
        json_decref(root);
        memset(msg, 0, sizeof(*msg));
        return rc;
    }
    ar__sig_env_to_msg(dir, err->type, &env, msg);
    msg->root_ = root;
    return 0;
}

void ar_sig_msg_free(ar_sig_msg_t *msg)
{
    if (msg == NULL)
        return;
    if (msg->sdp_json_ != NULL) {
        ar_free(msg->sdp_json_);
        msg->sdp_json_ = NULL;
    }
    if (msg->root_ == NULL)
        return;
    if (msg->type > 0 && msg->type < AR_SIG_TYPE_COUNT &&
        ar__sig_types[msg->type].table[msg->dir_] != NULL)
        ar__sig_free_object(ar__sig_types[msg->type].table[msg->dir_], msg);
    json_decref(msg->root_);
    memset(msg, 0, sizeof(*msg));
}

void ar_sig_msg_init(ar_sig_msg_t *msg, ar_sig_type_t type)
{
    memset(msg, 0, sizeof(*msg));
    msg->type = type;
    msg->id = AR_SIG_NONE;
    if ((int)type <= 0 || type >= AR_SIG_TYPE_COUNT)
        return;
    for (int d = 0; d < 2; d++) {
        const ar__sig_table_t *t = ar__sig_types[type].table[d];
        for (size_t i = 0; t != NULL && i < t->count; i++)
            if (t->fields[i].kind == AR__SIG_INT)
                *(int64_t *)((char *)msg + t->fields[i].off) = AR_SIG_NONE;
    }
}

void ar_sig_error_msg(ar_sig_msg_t *msg, const ar_sig_err_t *err)
{
    ar_sig_msg_init(msg, AR_SIG_ERROR);
    int code = err->code > 0 ? err->code : AR_SIG_E_INTERNAL;
    msg->u.error.code = code;
    msg->u.error.name.p = ar_sig_err_name(code);
    msg->u.error.name.len = strlen(msg->u.error.name.p);
    msg->u.error.text.p = err->text[0] ? err->text : ar_sig_err_text(code);
    msg->u.error.text.len = strlen(msg->u.error.text.p);
    if (err->type > 0 && err->type < AR_SIG_TYPE_COUNT) {
        msg->u.error.about.p = type_names[err->type];
        msg->u.error.about.len = strlen(type_names[err->type]);
    }
    msg->u.error.ref = err->id;
}
