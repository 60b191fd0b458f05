/*
 * License helpers shared by the loader, the CLI and the vendor tools; not
 * part of the contract in license.h.
 */
#ifndef VELO_CORE_LICENSE_INTERNAL_H
#define VELO_CORE_LICENSE_INTERNAL_H

#include <stddef.h>
#include <time.h>

#include "plugin/license.h"

/* Hex digits of the key fingerprint: the first 4 bytes of SHA-256(key). */
#define VELO_LICENSE_FPR_LEN 8

/** Parse "YYYY-MM-DD" (UTC midnight) or an RFC 3339 timestamp
 *  ("2027-01-01T12:00:00Z", "...+02:00", fractions ignored).
 *  @return VELO_OK or VELO_ERR. */
int velo_license_parse_time(const char *s, time_t *out);

/** "2027-01-01" for a UTC midnight, else "2027-01-01T12:00:00Z". */
void velo_license_format_time(time_t t, char *out, size_t outlen);

/** Fingerprint of a raw Ed25519 public key: 8 lower-case hex digits and a
 *  NUL. @return VELO_OK or VELO_ERR. */
int velo_license_fingerprint(const unsigned char key[32],
                             char out[VELO_LICENSE_FPR_LEN + 1]);

/** The license as a JSON object text (status, usable, reason, fields,
 *  key_id of this server). @return malloc'd or NULL on ENOMEM. */
char *velo_license_to_json(const struct velo_license *lic);

/** Why `lic` does not unlock `feature`, in a few words for a loader
 *  refusal: "no license configured", "license L lacks it (grants: a, b)",
 *  "license expired on 2026-01-01 (grace ended 2026-01-15)", "license
 *  signature invalid (...)". `lic` may be NULL. */
void velo_license_why_not(const struct velo_license *lic, const char *feature,
                          char *out, size_t outlen);

#endif /* VELO_CORE_LICENSE_INTERNAL_H */
