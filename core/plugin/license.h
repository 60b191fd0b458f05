/*
 * Signed license files.
 *
 * A license file is one JSON object:
 *   {"payload": {"license_id": "...", "customer": "...",
 *                "issued": "2026-11-01", "not_before": "2026-11-01",
 *                "expires": "2027-11-01", "grace_days": 14,
 *                "features": ["rbac", "audit"], "limits": {"nodes": 3}},
 *    "signature": "<base64 Ed25519 signature>"}
 * The signature covers the payload's canonical bytes: JSON with keys
 * sorted, no insignificant whitespace, UTF-8 as is (jansson's
 * JSON_COMPACT|JSON_SORT_KEYS|JSON_ENSURE_ASCII rendering). Dates are
 * YYYY-MM-DD (UTC midnight) or RFC 3339 timestamps.
 *
 * The trusted public key is compiled in: production builds link
 * license-key-prod (from licenses/velo-license.pub), tests link a key pair
 * they make at build time. Nothing at run time can change it.
 */
#ifndef VELO_CORE_LICENSE_H
#define VELO_CORE_LICENSE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define VELO_LICENSE_MAX_BYTES (64 * 1024)
#define VELO_LICENSE_MAX_FEATURES 64
#define VELO_LICENSE_MAX_LIMITS 32

enum velo_license_status {
    VELO_LICENSE_VALID = 0,
    VELO_LICENSE_IN_GRACE = 1,     /* expired, within grace days: loads, warns */
    VELO_LICENSE_MISSING = 2,      /* no file configured or file absent */
    VELO_LICENSE_UNREADABLE = 3,   /* I/O error */
    VELO_LICENSE_OVERSIZED = 4,    /* larger than VELO_LICENSE_MAX_BYTES */
    VELO_LICENSE_MALFORMED = 5,    /* not JSON / truncated / fields wrong */
    VELO_LICENSE_BAD_SIGNATURE = 6,/* signature does not verify */
    VELO_LICENSE_NOT_YET_VALID = 7,
    VELO_LICENSE_EXPIRED = 8       /* past expiry plus grace */
};

struct velo_license_limit {
    char name[32];
    int64_t value;
};

struct velo_license {
    int status; /* enum velo_license_status */
    char reason[512]; /* why, for every status but VALID */
    char license_id[64];
    char customer[128];
    time_t issued, not_before, expires;
    int64_t grace_days;
    char features[VELO_LICENSE_MAX_FEATURES][32];
    size_t n_features;
    struct velo_license_limit limits[VELO_LICENSE_MAX_LIMITS];
    size_t n_limits;
    int64_t days_left; /* until expiry (negative when past) */
};

/* The compiled-in trusted key (raw 32-byte Ed25519 public key). Provided by
 * exactly one of license-key-prod.c / the test key object. */
extern const unsigned char velo_license_public_key[32];
extern const char velo_license_key_id[]; /* "prod" or "test" fingerprint */

/** Verify a license in memory at time `now`. Always fills `out` (status and
 *  reason). @return VELO_OK when usable (VALID or IN_GRACE), else VELO_ERR. */
int velo_license_verify_buffer(const char *buf, size_t len, time_t now,
                               struct velo_license *out);
/** The same from a file (oversized and missing files are statuses). */
int velo_license_verify_file(const char *path, time_t now,
                             struct velo_license *out);

/** Does a usable license grant `feature`? @return 1 or 0. */
int velo_license_has_feature(const struct velo_license *lic,
                             const char *feature);
const char *velo_license_status_name(int status);

/** Print customer, features, limits, expiry and days left (or the reason)
 *  in the human form `velo license show|verify` uses. */
void velo_license_describe(const struct velo_license *lic, char *out,
                           size_t outlen);

/**
 * Vendor side: sign `payload` (a JSON object text) with a raw Ed25519
 * private key in PEM at `key_path`, writing the license file text.
 * @return malloc'd license text or NULL with a message in err.
 */
char *velo_license_sign(const char *payload_json, const char *key_path,
                        char *err, size_t errlen);

#endif /* VELO_CORE_LICENSE_H */
