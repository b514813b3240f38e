/*
 * Opening hours of a waiting area: a small text grammar evaluated in the area's IANA time zone.
 *
 *   spec    := "" | rule ( ";" rule )*
 *   rule    := days " " span ( " " span )*
 *   days    := day ( "-" day )? ( "," day ( "-" day )? )*       day: mon tue wed thu fri sat sun
 *   span    := HH:MM "-" HH:MM                                   end after start; 24:00 allowed
 *
 * e.g. "mon-fri 08:00-12:00 13:00-17:00; sat 09:00-12:00". An empty spec means always open
 * (an area without hours set). Spans do not cross midnight: write two rules instead.
 */
#ifndef ANTEROOM_APP_HOURS_H
#define ANTEROOM_APP_HOURS_H

#include "anteroom/err.h"

#include <stddef.h>
#include <stdint.h>

#define AR_HOURS_SPANS_MAX 32
#define AR_HOURS_TEXT_MAX 512
#define AR_TZ_NAME_MAX 64

typedef struct ar_hours_span_s {
    uint8_t days;   /* bit 0 = Sunday ... bit 6 = Saturday (struct tm's tm_wday) */
    uint16_t start; /* minutes after local midnight */
    uint16_t end;   /* exclusive; at most 1440 */
} ar_hours_span_t;

typedef struct ar_hours_s {
    ar_hours_span_t spans[AR_HOURS_SPANS_MAX];
    size_t n;
} ar_hours_t;

/* Parses a spec. Returns 0, or AR_EPARSE for anything outside the grammar or caps. */
AR_MUST_CHECK int ar_hours_parse(const char *spec, size_t len, ar_hours_t *out);

/* 1 when name is a time zone of the system's tz database (/usr/share/zoneinfo), checked for
 * its characters first so that no name can walk out of that folder. */
int ar_tz_valid(const char *name, size_t len);

/* Sets *open for Unix time now in time zone tz. AR_EINVAL for an unknown zone. Thread-safe. */
AR_MUST_CHECK int ar_hours_open_at(const ar_hours_t *h, const char *tz, int64_t now, int *open);

#endif
