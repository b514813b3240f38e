/*
 * Clinic settings (settings.c): PATCH /api/v1/clinics/{clinic}. Route in routes.c.
 */
#ifndef ANTEROOM_APP_SETTINGS_H
#define ANTEROOM_APP_SETTINGS_H

#include "body.h"

#include <stddef.h>

struct ar__req_s;
void ar__h_clinic_update(struct ar__req_s *r);
extern const ar_app_field_t ar__f_clinic_update[];
#define AR__N_clinic_update 1

#endif
