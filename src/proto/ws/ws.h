/*
 * RFC 6455 WebSocket codec with no I/O and no globals: a resumable frame parser, frame and close
 * payload builders, and the HTTP upgrade check (over Debian's http-parser).
 *
 * The frame parser is a state machine over bytes. The caller feeds it whatever a read returned;
 * it reports one event at a time and says how many bytes it consumed, so the caller needs no
 * buffer of its own for headers. Payload bytes are unmasked in place in the caller's buffer and
 * reported as chunks; a chunk that holds a whole frame of a whole message can be used where it
 * lies (no copy), anything else the caller assembles. The parser state is a few dozen bytes so an
 * idle connection can embed it (see src/signal/net/).
 *
 * Every protocol violation is a negative AR_E* code with the close code to send put in
 * parser->close_code (1002 protocol error, 1007 bad UTF-8, 1009 message too big). After an error
 * the parser stays failed: the connection must be closed.
 */
#ifndef ANTEROOM_PROTO_WS_H
#define ANTEROOM_PROTO_WS_H

#include "anteroom/err.h"

#include <stddef.h>
#include <stdint.h>

enum ar_ws_opcode_e {
    AR_WS_OP_CONT = 0x0,
    AR_WS_OP_TEXT = 0x1,
    AR_WS_OP_BINARY = 0x2,
    AR_WS_OP_CLOSE = 0x8,
    AR_WS_OP_PING = 0x9,
    AR_WS_OP_PONG = 0xA,
};

/* Close codes of RFC 6455 section 7.4.1 that we send. */
enum ar_ws_close_e {
    AR_WS_CLOSE_NORMAL = 1000,
    AR_WS_CLOSE_GOING_AWAY = 1001,
    AR_WS_CLOSE_PROTOCOL = 1002,
    AR_WS_CLOSE_UNSUPPORTED = 1003,
    AR_WS_CLOSE_NO_STATUS = 1005, /* reported when a close frame had no code; never sent */
    AR_WS_CLOSE_BAD_DATA = 1007,
    AR_WS_CLOSE_POLICY = 1008,
    AR_WS_CLOSE_TOO_BIG = 1009,
    AR_WS_CLOSE_INTERNAL = 1011,
    AR_WS_CLOSE_TRY_LATER = 1013,
};

/* Largest frame header: 2 bytes, 8 of extended length, 4 of mask. */
#define AR_WS_MAX_HEADER 14
/* Control frames carry at most 125 bytes (RFC 6455 5.5). */
#define AR_WS_MAX_CONTROL 125

typedef enum {
    AR_WS_EV_NEED_MORE = 0, /* all input consumed; feed more */
    AR_WS_EV_FRAME_START,   /* a header was parsed; ev.opcode and ev.frame_len are set */
    AR_WS_EV_DATA,          /* ev.data/ev.len: unmasked payload bytes of the current frame */
    AR_WS_EV_FRAME_END,     /* the current frame is complete (also sent for empty frames) */
    AR_WS_EV_MESSAGE,       /* ar_ws_parse_message only: a whole one-frame message */
} ar_ws_event_type_t;

typedef struct ar_ws_event_s {
    ar_ws_event_type_t type;
    uint8_t opcode;  /* of the current frame: AR_WS_OP_CONT for continuations */
    uint8_t fin;     /* the current frame ends its message */
    uint8_t msg_end; /* FRAME_END of a data frame with FIN: the message is complete */
    uint8_t *data;   /* DATA only: points into the caller's buffer */
    size_t len;
    uint64_t frame_len; /* FRAME_START: payload length announced by the header */
} ar_ws_event_t;

/* Parser state: embed it in a connection; all fields are private to ws_frame.c. */
typedef struct ar_ws_parser_s {
    uint64_t remaining;   /* payload bytes left in the current frame */
    uint32_t msg_len;     /* payload bytes of the current (possibly fragmented) message */
    uint32_t max_message; /* cap on a message's total payload */
    uint8_t hdr[AR_WS_MAX_HEADER];
    uint8_t hdr_len;
    uint8_t state;
    uint8_t opcode;     /* current frame */
    uint8_t msg_opcode; /* TEXT or BINARY while a fragmented message is open, else 0 */
    uint8_t flags;      /* fin, masked, role */
    uint8_t mask_pos;   /* index into the masking key of the next payload byte */
    uint8_t utf8;       /* incremental UTF-8 validator state of the open text message */
    uint8_t mask[4];
    uint16_t close_code; /* set when a parse error says to close */
} ar_ws_parser_t;

/*
 * Server parsers require masked frames (RFC 6455 5.1); client parsers (tests, the benchmark
 * client) require unmasked ones. max_message caps the payload of a whole message, fragments
 * included; 0 means 1 MiB.
 */
void ar_ws_parser_init(ar_ws_parser_t *p, int server, uint32_t max_message);

/*
 * 1 when p is between messages: no header, frame or fragmented message under way (and no error).
 * Such a parser may be dropped and made again with ar_ws_parser_init for the next bytes: a
 * server that keeps a parser only while a frame is split across reads holds none for an idle
 * connection.
 */
int ar_ws_parser_at_rest(const ar_ws_parser_t *p);

/*
 * Consumes bytes of data[0..len) until one event is ready; *consumed says how many. Call again
 * with the rest until it returns AR_WS_EV_NEED_MORE with everything consumed. Returns 0 and fills
 * *ev, or AR_EPARSE (protocol error or bad UTF-8) / AR_ETOOBIG (message cap), with
 * p->close_code set. DATA events of text frames have been checked for UTF-8 so far, and the
 * FRAME_END that ends a text message checks the last code point is complete.
 */
AR_MUST_CHECK int ar_ws_parse(ar_ws_parser_t *p, uint8_t *data, size_t len, size_t *consumed,
                              ar_ws_event_t *ev);

/*
 * ar_ws_parse, with the common case in one step: where ar_ws_parse would report FRAME_START,
 * DATA and FRAME_END with msg_end for a data frame that is a whole message (TEXT or BINARY with
 * FIN) and lies whole in data, this consumes all of it and reports one AR_WS_EV_MESSAGE: opcode,
 * fin and msg_end set, ev.data/ev.len the unmasked, checked payload, ev.frame_len its length.
 * The same bytes are refused with the same error and close code as by ar_ws_parse; every other
 * event is ar_ws_parse's.
 */
AR_MUST_CHECK int ar_ws_parse_message(ar_ws_parser_t *p, uint8_t *data, size_t len,
                                      size_t *consumed, ar_ws_event_t *ev);

/*
 * Incremental UTF-8 validation (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF).
 * state starts at 0; returns the new state, AR_WS_UTF8_REJECT once invalid. 0 at the end of the
 * text means complete.
 */
#define AR_WS_UTF8_REJECT 8
uint8_t ar_ws_utf8(uint8_t state, const uint8_t *s, size_t len);

/*
 * Parses a close frame's payload: empty (code 1005 reported) or a 2-byte code that may be sent
 * (1000-1003, 1007-1011, 3000-4999) followed by a UTF-8 reason. Returns 0 or AR_EPARSE.
 */
AR_MUST_CHECK int ar_ws_close_parse(const uint8_t *payload, size_t len, uint16_t *code,
                                    const uint8_t **reason, size_t *reason_len);

/*
 * Writes a frame header into out. mask is NULL for server frames (unmasked) or the 4-byte key a
 * client uses (the caller masks the payload with ar_ws_mask). Returns the header length.
 */
size_t ar_ws_frame_header(uint8_t out[AR_WS_MAX_HEADER], uint8_t opcode, int fin, uint64_t len,
                          const uint8_t *mask);
/* XORs data with the masking key, starting at key byte `offset` (0 for a whole payload). */
void ar_ws_mask(uint8_t *data, size_t len, const uint8_t mask[4], size_t offset);
/* For the tests: what the parser does to a masked text payload, ar_ws_mask and 1 when every
 * unmasked byte is ASCII, with SSE2 (avx2 0) or AVX2 (avx2 1, where the CPU has it, else SSE2);
 * without SSE2, eight bytes at a time either way. ar__ws_unmask_avx2: 1 when avx2 1 takes AVX2. */
int ar__ws_unmask_ascii(uint8_t *data, size_t len, const uint8_t mask[4], size_t offset, int avx2);
int ar__ws_unmask_avx2(void);
/*
 * Writes a close payload (code, then reason truncated to fit 123 bytes) into out; returns its
 * length. The reason must be a literal in ASCII: close reasons carry no user data.
 */
size_t ar_ws_close_payload(uint8_t out[AR_WS_MAX_CONTROL], uint16_t code, const char *reason);

/* ---- The HTTP upgrade (RFC 6455 section 4.2) ---- */

/* Cap on an upgrade request; a longer one is refused with 431. */
#define AR_WS_MAX_REQUEST 4096
#define AR_WS_MAX_PATH 512
/* base64 of a SHA-1: 28 characters. */
#define AR_WS_ACCEPT_LEN 28
/* The tail of X-Forwarded-For kept: the hops a trusted proxy appended are at its end. */
#define AR_WS_MAX_FORWARDED 256

typedef struct ar_ws_upgrade_conf_s {
    const char *const *origins; /* allowed Origin values, compared ASCII case-insensitively */
    size_t norigins;
    int allow_no_origin;  /* accept requests without Origin (non-browser clients) */
    const char *protocol; /* subprotocol the client must offer, e.g. "anteroom.v1"; NULL: none */
} ar_ws_upgrade_conf_t;

typedef struct ar_ws_upgrade_s {
    int status;      /* 101 when accepted; otherwise the HTTP status to answer with */
    size_t consumed; /* bytes of the request; anything after them is already WebSocket data */
    char accept[AR_WS_ACCEPT_LEN + 1];
    char path[AR_WS_MAX_PATH + 1]; /* request target, NUL-terminated */
    size_t path_len;
    /*
     * X-Forwarded-For as sent (several headers joined with ","), NUL-terminated, for the caller
     * to read only when the connection comes from a proxy it trusts. When longer than
     * AR_WS_MAX_FORWARDED only the last bytes are kept and forwarded_cut is set: the first entry
     * may then be a fragment.
     */
    char forwarded[AR_WS_MAX_FORWARDED + 1];
    size_t forwarded_len;
    int forwarded_cut;
} ar_ws_upgrade_t;

/*
 * Checks a buffered upgrade request. Returns AR_EAGAIN when the header is not complete yet (feed
 * again with more bytes), 0 with out->status == 101 when accepted, or a negative code with
 * out->status set to the refusal: 400 malformed, 403 Origin not allowed, 426 wrong version (the
 * response then names version 13), 431 too long (AR_ETOOBIG), 400 for a missing subprotocol.
 */
AR_MUST_CHECK int ar_ws_upgrade_check(const char *req, size_t len, const ar_ws_upgrade_conf_t *conf,
                                      ar_ws_upgrade_t *out);

/* Sec-WebSocket-Accept for a key: base64(SHA-1(key + GUID)), NUL-terminated. */
AR_MUST_CHECK int ar_ws_accept_key(const char *key, size_t key_len, char out[AR_WS_ACCEPT_LEN + 1]);

/*
 * Writes the HTTP response for an upgrade result (101 with the accept key and subprotocol, or the
 * refusal) into out. Returns its length, or AR_ETOOBIG when cap is too small (256 is enough).
 */
AR_MUST_CHECK int ar_ws_upgrade_response(const ar_ws_upgrade_t *up,
                                         const ar_ws_upgrade_conf_t *conf, char *out, size_t cap);

#endif
