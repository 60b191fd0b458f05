/*
 * Signed license files: parse, verify against the compiled-in Ed25519 key,
 * explain; and, for the vendor tool, sign.
 *
 * Order of checks: size, JSON syntax, the outer object, the payload's
 * fields, the signature, then the dates. Fields are checked before the
 * signature so a hand-edited file that lost a field says which one; the
 * parsed fields are only kept (and only ever trusted) once the signature
 * over the payload's canonical bytes verifies.
 */
#include "plugin/license.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <velo/log.h>

#include "plugin/license-internal.h"

#define SIG_LEN 64
#define SECONDS_PER_DAY 86400
#define MAX_GRACE_DAYS 3650

/* The signed bytes: one rendering, shared by signer and verifier. */
#define CANONICAL_FLAGS (JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII)

static const char *const status_names[] = {
    "valid",     "in-grace",      "missing",       "unreadable", "oversized",
    "malformed", "bad-signature", "not-yet-valid", "expired"};

const char *velo_license_status_name(int status)
{
    if (status < 0 ||
        (size_t)status >= sizeof(status_names) / sizeof(status_names[0])) {
        return "unknown";
    }
    return status_names[status];
}

/* Reason text is formatted through a va_list so a long customer name
 * truncates the message instead of tripping -Wformat-truncation. */
static void set_reason(struct velo_license *out, int status, const char *fmt,
                       ...) VELO_PRINTF(3, 4);
static void set_reason(struct velo_license *out, int status, const char *fmt,
                       ...)
{
    va_list ap;
    out->status = status;
    va_start(ap, fmt);
    vsnprintf(out->reason, sizeof(out->reason), fmt, ap);
    va_end(ap);
}

/* A refusal before the signature verified: nothing parsed is kept. */
static void fail(struct velo_license *out, int status, const char *fmt, ...)
    VELO_PRINTF(3, 4);
static void fail(struct velo_license *out, int status, const char *fmt, ...)
{
    char reason[sizeof(out->reason)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    memset(out, 0, sizeof(*out));
    out->status = status;
    memcpy(out->reason, reason, sizeof(reason));
}

static void errf(char *err, size_t errlen, const char *fmt, ...)
    VELO_PRINTF(3, 4);
static void errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------ */
/* Dates                                                              */
/* ------------------------------------------------------------------ */

static int read_digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

static int days_in_month(int y, int m)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30,
                                31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) {
        return 29;
    }
    return mdays[m - 1];
}

int velo_license_parse_time(const char *s, time_t *out)
{
    int y, mo, d, h = 0, mi = 0, sec = 0;
    long offset = 0;
    if (s == NULL || read_digits(s, 4, &y) != 0 || s[4] != '-' ||
        read_digits(s + 5, 2, &mo) != 0 || s[7] != '-' ||
        read_digits(s + 8, 2, &d) != 0) {
        return VELO_ERR;
    }
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo)) {
        return VELO_ERR;
    }
    const char *p = s + 10;
    if (*p != '\0') {
        if (*p != 'T' && *p != 't') {
            return VELO_ERR;
        }
        p++;
        if (read_digits(p, 2, &h) != 0 || p[2] != ':' ||
            read_digits(p + 3, 2, &mi) != 0 || p[5] != ':' ||
            read_digits(p + 6, 2, &sec) != 0) {
            return VELO_ERR;
        }
        if (h > 23 || mi > 59 || sec > 60) {
            return VELO_ERR;
        }
        p += 8;
        if (*p == '.') {
            p++;
            if (*p < '0' || *p > '9') {
                return VELO_ERR;
            }
            while (*p >= '0' && *p <= '9') {
                p++;
            }
        }
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int oh, om;
            if (read_digits(p + 1, 2, &oh) != 0 || p[3] != ':' ||
                read_digits(p + 4, 2, &om) != 0 || oh > 23 || om > 59) {
                return VELO_ERR;
            }
            offset = (long)(oh * 3600 + om * 60) * (*p == '+' ? 1 : -1);
            p += 6;
        } else {
            return VELO_ERR;
        }
        if (*p != '\0') {
            return VELO_ERR;
        }
    }
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    if (t == (time_t)-1) {
        return VELO_ERR;
    }
    *out = t - (time_t)offset;
    return VELO_OK;
}

void velo_license_format_time(time_t t, char *out, size_t outlen)
{
    struct tm tm;
    if (outlen == 0) {
        return;
    }
    if (gmtime_r(&t, &tm) == NULL) {
        snprintf(out, outlen, "?");
        return;
    }
    if (tm.tm_hour == 0 && tm.tm_min == 0 && tm.tm_sec == 0) {
        strftime(out, outlen, "%Y-%m-%d", &tm);
    } else {
        strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm);
    }
}

/* Floor division, so one second past expiry is day -1, not day 0. */
static int64_t floor_days(int64_t seconds)
{
    int64_t q = seconds / SECONDS_PER_DAY;
    if (seconds % SECONDS_PER_DAY != 0 && seconds < 0) {
        q--;
    }
    return q;
}

static int64_t ceil_days(int64_t seconds)
{
    return -floor_days(-seconds);
}

/* ------------------------------------------------------------------ */
/* Keys                                                               */
/* ------------------------------------------------------------------ */

int velo_license_fingerprint(const unsigned char key[32],
                             char out[VELO_LICENSE_FPR_LEN + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_Digest(key, 32, md, &mdlen, EVP_sha256(), NULL) != 1 ||
        mdlen < VELO_LICENSE_FPR_LEN / 2) {
        ERR_clear_error();
        return VELO_ERR;
    }
    for (int i = 0; i < VELO_LICENSE_FPR_LEN / 2; i++) {
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    }
    out[VELO_LICENSE_FPR_LEN] = '\0';
    return VELO_OK;
}

/* A license's key_id may be the bare fingerprint or "<name>-<fpr>". */
static int key_id_matches(const char *key_id, const char *fpr)
{
    const char *dash = strrchr(key_id, '-');
    const char *tail = dash != NULL ? dash + 1 : key_id;
    return strcmp(tail, fpr) == 0;
}

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '+') {
        return 62;
    }
    if (c == '/') {
        return 63;
    }
    return -1;
}

/*
 * Strict base64: standard alphabet, padded, no whitespace, zero trailing
 * bits. Anything else is rejected, so one signature has one spelling.
 * Writes at most outcap bytes; *outlen is the full decoded length.
 */
static int b64_decode_strict(const char *in, size_t inlen,
                             unsigned char *out, size_t outcap,
                             size_t *outlen, char *why, size_t whylen)
{
    if (inlen == 0) {
        errf(why, whylen, "it is empty");
        return VELO_ERR;
    }
    if (inlen % 4 != 0) {
        errf(why, whylen, "its length %zu is not a multiple of 4", inlen);
        return VELO_ERR;
    }
    size_t n = 0;
    for (size_t i = 0; i < inlen; i += 4) {
        int v[4];
        int pads = 0;
        for (int k = 0; k < 4; k++) {
            unsigned char c = (unsigned char)in[i + k];
            if (c == '=' && i + 4 == inlen && k >= 2) {
                v[k] = 0;
                pads++;
                continue;
            }
            v[k] = b64_value(c);
            if (v[k] < 0 || pads > 0) {
                errf(why, whylen, "character %zu ('%c') is not base64", i + k,
                     c >= 0x20 && c < 0x7f ? c : '?');
                return VELO_ERR;
            }
        }
        uint32_t w = ((uint32_t)v[0] << 18) | ((uint32_t)v[1] << 12) |
                     ((uint32_t)v[2] << 6) | (uint32_t)v[3];
        unsigned char bytes[3] = {(unsigned char)(w >> 16),
                                  (unsigned char)(w >> 8), (unsigned char)w};
        if ((pads == 2 && (w & 0xffff) != 0) ||
            (pads == 1 && (w & 0xff) != 0)) {
            errf(why, whylen, "it has non-zero padding bits");
            return VELO_ERR;
        }
        for (int k = 0; k < 3 - pads; k++) {
            if (n < outcap) {
                out[n] = bytes[k];
            }
            n++;
        }
    }
    *outlen = n;
    return VELO_OK;
}

/* @return 1 verified, 0 not, -1 when the key itself is unusable. */
static int ed25519_verify(const unsigned char *msg, size_t len,
                          const unsigned char sig[SIG_LEN])
{
    EVP_PKEY *pk = EVP_PKEY_new_raw_public_key(
        EVP_PKEY_ED25519, NULL, velo_license_public_key, 32);
    if (pk == NULL) {
        ERR_clear_error();
        return -1;
    }
    int ok = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx != NULL && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pk) == 1 &&
        EVP_DigestVerify(ctx, sig, SIG_LEN, msg, len) == 1) {
        ok = 1;
    }
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(pk);
    ERR_clear_error();
    return ok;
}

static const char *server_fpr(char buf[VELO_LICENSE_FPR_LEN + 1])
{
    if (velo_license_fingerprint(velo_license_public_key, buf) != VELO_OK) {
        buf[0] = '\0';
    }
    return buf;
}

/* ------------------------------------------------------------------ */
/* Payload fields                                                     */
/* ------------------------------------------------------------------ */

static const char *json_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a real number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "something else";
}

static int name_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

static int id_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.' ||
           c == ':';
}

static int text_char(unsigned char c)
{
    return c >= 0x20 && c != 0x7f;
}

/* A string field: present when required, of bounded length, every byte
 * accepted by `ok`. Copies into dst (dstlen includes the NUL). */
static int string_field(const json_t *p, const char *name, int required,
                        const char *hint, int (*ok)(unsigned char),
                        const char *allowed, char *dst, size_t dstlen,
                        const char **raw, char *err, size_t errlen)
{
    const json_t *v = json_object_get(p, name);
    if (v == NULL) {
        if (required) {
            errf(err, errlen, "missing field '%s' (%s)", name, hint);
            return VELO_ERR;
        }
        return VELO_OK;
    }
    if (!json_is_string(v)) {
        errf(err, errlen, "field '%s' must be a string (%s), not %s", name,
             hint, json_type_name(v));
        return VELO_ERR;
    }
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (len == 0) {
        errf(err, errlen, "field '%s' is empty (%s)", name, hint);
        return VELO_ERR;
    }
    if (dst != NULL && len >= dstlen) {
        errf(err, errlen, "field '%s' is %zu bytes long, at most %zu allowed",
             name, len, dstlen - 1);
        return VELO_ERR;
    }
    for (size_t i = 0; i < len; i++) {
        if (!ok((unsigned char)s[i])) {
            errf(err, errlen, "field '%s' has a character not allowed at "
                              "offset %zu (allowed: %s)",
                 name, i, allowed);
            return VELO_ERR;
        }
    }
    if (dst != NULL) {
        memcpy(dst, s, len + 1);
    }
    if (raw != NULL) {
        *raw = s;
    }
    return VELO_OK;
}

static int date_char(unsigned char c)
{
    return (c >= '0' && c <= '9') || c == '-' || c == ':' || c == '.' ||
           c == '+' || c == 'T' || c == 't' || c == 'Z' || c == 'z';
}

static int time_field(const json_t *p, const char *name, int required,
                      time_t *out, int *present, char *err, size_t errlen)
{
    const char *s = NULL;
    if (string_field(p, name, required, "a date, YYYY-MM-DD", date_char,
                     "a date, YYYY-MM-DD, or an RFC 3339 timestamp", NULL, 0,
                     &s, err, errlen) != VELO_OK) {
        return VELO_ERR;
    }
    if (s == NULL) {
        *present = 0;
        return VELO_OK;
    }
    if (velo_license_parse_time(s, out) != VELO_OK) {
        errf(err, errlen,
             "field '%s': \"%.40s\" is not a date (write YYYY-MM-DD, or an "
             "RFC 3339 timestamp such as 2027-01-31T12:00:00Z)",
             name, s);
        return VELO_ERR;
    }
    *present = 1;
    return VELO_OK;
}

static int features_field(const json_t *p, struct velo_license *lic,
                          char *err, size_t errlen)
{
    const json_t *v = json_object_get(p, "features");
    if (v == NULL) {
        errf(err, errlen, "missing field 'features' (an array of feature "
                          "names, e.g. [\"rbac\", \"audit\"])");
        return VELO_ERR;
    }
    if (!json_is_array(v)) {
        errf(err, errlen, "field 'features' must be an array of strings, "
                          "not %s",
             json_type_name(v));
        return VELO_ERR;
    }
    if (json_array_size(v) > VELO_LICENSE_MAX_FEATURES) {
        errf(err, errlen, "field 'features' lists %zu features, at most %d",
             json_array_size(v), VELO_LICENSE_MAX_FEATURES);
        return VELO_ERR;
    }
    size_t i;
    const json_t *f;
    json_array_foreach(v, i, f)
    {
        if (!json_is_string(f)) {
            errf(err, errlen, "features[%zu] must be a string, not %s", i,
                 json_type_name(f));
            return VELO_ERR;
        }
        const char *s = json_string_value(f);
        size_t len = json_string_length(f);
        if (len == 0 || len >= sizeof(lic->features[0])) {
            errf(err, errlen, "features[%zu] must be 1 to %zu characters", i,
                 sizeof(lic->features[0]) - 1);
            return VELO_ERR;
        }
        for (size_t k = 0; k < len; k++) {
            if (!name_char((unsigned char)s[k])) {
                errf(err, errlen, "features[%zu] \"%.31s\" may only use a-z, "
                                  "0-9, '_' and '-'",
                     i, s);
                return VELO_ERR;
            }
        }
        for (size_t k = 0; k < lic->n_features; k++) {
            if (strcmp(lic->features[k], s) == 0) {
                errf(err, errlen, "features[%zu] \"%s\" is listed twice", i,
                     s);
                return VELO_ERR;
            }
        }
        memcpy(lic->features[lic->n_features++], s, len + 1);
    }
    return VELO_OK;
}

static int limits_field(const json_t *p, struct velo_license *lic,
                        char *err, size_t errlen)
{
    const json_t *v = json_object_get(p, "limits");
    if (v == NULL) {
        return VELO_OK;
    }
    if (!json_is_object(v)) {
        errf(err, errlen, "field 'limits' must be an object such as "
                          "{\"nodes\": 3}, not %s",
             json_type_name(v));
        return VELO_ERR;
    }
    if (json_object_size(v) > VELO_LICENSE_MAX_LIMITS) {
        errf(err, errlen, "field 'limits' has %zu entries, at most %d",
             json_object_size(v), VELO_LICENSE_MAX_LIMITS);
        return VELO_ERR;
    }
    const char *key;
    const json_t *val;
    /* json_object_foreach visits in hash order; sort for stable output. */
    const char *keys[VELO_LICENSE_MAX_LIMITS];
    size_t n = 0;
    json_object_foreach((json_t *)v, key, val)
    {
        size_t len = strlen(key);
        if (len == 0 || len >= sizeof(lic->limits[0].name)) {
            errf(err, errlen, "limit name \"%.40s\" must be 1 to %zu "
                              "characters",
                 key, sizeof(lic->limits[0].name) - 1);
            return VELO_ERR;
        }
        for (size_t k = 0; k < len; k++) {
            if (!name_char((unsigned char)key[k])) {
                errf(err, errlen, "limit name \"%.31s\" may only use a-z, "
                                  "0-9, '_' and '-'",
                     key);
                return VELO_ERR;
            }
        }
        if (!json_is_integer(val) || json_integer_value(val) < 0) {
            errf(err, errlen, "limits.%s must be a non-negative integer, "
                              "not %s",
                 key, json_is_integer(val) ? "negative" : json_type_name(val));
            return VELO_ERR;
        }
        size_t at = n;
        while (at > 0 && strcmp(keys[at - 1], key) > 0) {
            keys[at] = keys[at - 1];
            at--;
        }
        keys[at] = key;
        n++;
    }
    for (size_t i = 0; i < n; i++) {
        struct velo_license_limit *l = &lic->limits[lic->n_limits++];
        snprintf(l->name, sizeof(l->name), "%s", keys[i]);
        l->value = json_integer_value(json_object_get(v, keys[i]));
    }
    return VELO_OK;
}

/* Every field of the payload, without looking at the clock. */
static int payload_check(const json_t *p, struct velo_license *lic, char *err,
                         size_t errlen)
{
    if (!json_is_object(p)) {
        errf(err, errlen, "field 'payload' must be an object, not %s",
             json_type_name(p));
        return VELO_ERR;
    }
    int present;
    if (string_field(p, "license_id", 1, "the license's identifier", id_char,
                     "A-Z, a-z, 0-9, '_', '-', '.', ':'", lic->license_id,
                     sizeof(lic->license_id), NULL, err,
                     errlen) != VELO_OK ||
        string_field(p, "customer", 1, "the licensee's name", text_char,
                     "printable characters", lic->customer,
                     sizeof(lic->customer), NULL, err, errlen) != VELO_OK ||
        time_field(p, "issued", 1, &lic->issued, &present, err, errlen) !=
            VELO_OK ||
        time_field(p, "expires", 1, &lic->expires, &present, err, errlen) !=
            VELO_OK ||
        time_field(p, "not_before", 0, &lic->not_before, &present, err,
                   errlen) != VELO_OK) {
        return VELO_ERR;
    }
    if (!present) {
        lic->not_before = lic->issued;
    }
    const json_t *g = json_object_get(p, "grace_days");
    if (g != NULL) {
        if (!json_is_integer(g) || json_integer_value(g) < 0 ||
            json_integer_value(g) > MAX_GRACE_DAYS) {
            errf(err, errlen, "field 'grace_days' must be an integer from 0 "
                              "to %d, not %s",
                 MAX_GRACE_DAYS,
                 json_is_integer(g) ? "out of range" : json_type_name(g));
            return VELO_ERR;
        }
        lic->grace_days = (int64_t)json_integer_value(g);
    }
    if (features_field(p, lic, err, errlen) != VELO_OK ||
        limits_field(p, lic, err, errlen) != VELO_OK) {
        return VELO_ERR;
    }
    if (lic->expires <= lic->not_before) {
        char e[32], nb[32];
        velo_license_format_time(lic->expires, e, sizeof(e));
        velo_license_format_time(lic->not_before, nb, sizeof(nb));
        errf(err, errlen, "'expires' (%s) is not after 'not_before' (%s)", e,
             nb);
        return VELO_ERR;
    }
    return VELO_OK;
}

/* ------------------------------------------------------------------ */
/* Verification                                                       */
/* ------------------------------------------------------------------ */

static int only_space(const char *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (buf[i] != ' ' && buf[i] != '\t' && buf[i] != '\r' &&
            buf[i] != '\n') {
            return 0;
        }
    }
    return 1;
}

/* "3 day(s) ago", or "less than a day ago". */
static void ago(int64_t days, char *out, size_t outlen)
{
    if (days == 0) {
        snprintf(out, outlen, "less than a day ago");
    } else {
        snprintf(out, outlen, "%" PRId64 " day(s) ago", days);
    }
}

static void apply_dates(struct velo_license *out, time_t now)
{
    char d1[32], d2[32], when[48];
    /* Whole days left; once past, -1 on the first day after expiry, so
     * the value is negative exactly when the license has expired and
     * -days_left - 1 is the whole days since. */
    int64_t past = 0;
    if (now < out->expires) {
        out->days_left = floor_days((int64_t)out->expires - (int64_t)now);
    } else {
        past = floor_days((int64_t)now - (int64_t)out->expires);
        out->days_left = -past - 1;
    }
    if (now < out->not_before) {
        velo_license_format_time(out->not_before, d1, sizeof(d1));
        set_reason(out, VELO_LICENSE_NOT_YET_VALID,
                   "license %s is not valid before %s (%" PRId64
                   " day(s) from now)",
                   out->license_id, d1,
                   ceil_days((int64_t)out->not_before - (int64_t)now));
        return;
    }
    if (now < out->expires) {
        out->status = VELO_LICENSE_VALID;
        out->reason[0] = '\0';
        return;
    }
    time_t grace_end = out->expires + (time_t)(out->grace_days *
                                               SECONDS_PER_DAY);
    velo_license_format_time(out->expires, d1, sizeof(d1));
    velo_license_format_time(grace_end, d2, sizeof(d2));
    ago(past, when, sizeof(when));
    if (now < grace_end) {
        set_reason(out, VELO_LICENSE_IN_GRACE,
                   "license %s expired on %s (%s); within its %" PRId64
                   "-day grace period until %s (%" PRId64
                   " whole day(s) left): licensed plugins still load, renew "
                   "the license",
                   out->license_id, d1, when, out->grace_days, d2,
                   floor_days((int64_t)grace_end - (int64_t)now));
        return;
    }
    set_reason(out, VELO_LICENSE_EXPIRED,
               "license %s expired on %s (%s); its %" PRId64
               "-day grace period ended on %s",
               out->license_id, d1, when, out->grace_days, d2);
}

int velo_license_verify_buffer(const char *buf, size_t len, time_t now,
                               struct velo_license *out)
{
    char err[384];
    memset(out, 0, sizeof(*out));
    if (buf == NULL) {
        fail(out, VELO_LICENSE_MISSING, "no license given");
        return VELO_ERR;
    }
    if (len > VELO_LICENSE_MAX_BYTES) {
        fail(out, VELO_LICENSE_OVERSIZED,
             "license is %zu bytes, larger than the %d-byte limit (is it "
             "the right file?)",
             len, VELO_LICENSE_MAX_BYTES);
        return VELO_ERR;
    }
    if (only_space(buf, len)) {
        fail(out, VELO_LICENSE_MALFORMED,
             "the file is empty");
        return VELO_ERR;
    }

    json_error_t jerr;
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        if (json_error_code(&jerr) == json_error_premature_end_of_input) {
            fail(out, VELO_LICENSE_MALFORMED,
                 "truncated: the JSON ends early at line "
                 "%d, column %d (%s); was the file cut short or copied in "
                 "part?",
                 jerr.line, jerr.column, jerr.text);
        } else {
            fail(out, VELO_LICENSE_MALFORMED,
                 "invalid JSON at line %d, column %d: %s",
                 jerr.line, jerr.column, jerr.text);
        }
        return VELO_ERR;
    }

    int rc = VELO_ERR;
    char *canon = NULL;
    if (!json_is_object(root)) {
        fail(out, VELO_LICENSE_MALFORMED,
             "the top level must be an object with "
             "\"payload\" and \"signature\", not %s",
             json_type_name(root));
        goto done;
    }
    const json_t *payload = json_object_get(root, "payload");
    const json_t *sig = json_object_get(root, "signature");
    const json_t *kid = json_object_get(root, "key_id");
    if (payload == NULL) {
        fail(out, VELO_LICENSE_MALFORMED,
             "missing field 'payload' (the signed "
             "object)");
        goto done;
    }
    if (sig == NULL || !json_is_string(sig)) {
        fail(out, VELO_LICENSE_MALFORMED,
             "%s field 'signature' (the base64 Ed25519 "
             "signature of the payload)%s%s",
             sig == NULL ? "missing" : "ill-typed",
             sig == NULL ? "" : " must be a string, not ",
             sig == NULL ? "" : json_type_name(sig));
        goto done;
    }
    if (kid != NULL && !json_is_string(kid)) {
        fail(out, VELO_LICENSE_MALFORMED,
             "field 'key_id' must be a string, not %s",
             json_type_name(kid));
        goto done;
    }
    if (payload_check(payload, out, err, sizeof(err)) != VELO_OK) {
        fail(out, VELO_LICENSE_MALFORMED, "payload: %s",
             err);
        goto done;
    }

    unsigned char raw[SIG_LEN];
    size_t rawlen = 0;
    if (b64_decode_strict(json_string_value(sig), json_string_length(sig),
                          raw, sizeof(raw), &rawlen, err,
                          sizeof(err)) != VELO_OK) {
        fail(out, VELO_LICENSE_MALFORMED,
             "field 'signature' is not strict base64: %s",
             err);
        goto done;
    }
    if (rawlen != SIG_LEN) {
        fail(out, VELO_LICENSE_BAD_SIGNATURE,
             "signature decodes to %zu bytes, an Ed25519 signature is %d",
             rawlen, SIG_LEN);
        goto done;
    }

    canon = json_dumps(payload, CANONICAL_FLAGS);
    if (canon == NULL) {
        fail(out, VELO_LICENSE_UNREADABLE,
             "out of memory while checking the license");
        goto done;
    }
    char fpr[VELO_LICENSE_FPR_LEN + 1];
    int ok = ed25519_verify((const unsigned char *)canon, strlen(canon), raw);
    if (ok < 0) {
        fail(out, VELO_LICENSE_BAD_SIGNATURE,
             "this server's license key (%s) is unusable; the build is "
             "broken",
             velo_license_key_id);
        goto done;
    }
    if (ok == 0) {
        const char *their = kid != NULL ? json_string_value(kid) : NULL;
        if (their != NULL && !key_id_matches(their, server_fpr(fpr))) {
            fail(out, VELO_LICENSE_BAD_SIGNATURE,
                 "signature does not verify: the license was signed for "
                 "another key (key_id %.64s), this server trusts %s; ask the "
                 "vendor for a license signed for this build",
                 their, velo_license_key_id);
        } else {
            fail(out, VELO_LICENSE_BAD_SIGNATURE,
                 "signature does not verify against this server's key (%s): "
                 "the file was altered or signed by another vendor key",
                 velo_license_key_id);
        }
        goto done;
    }
    apply_dates(out, now);
    rc = (out->status == VELO_LICENSE_VALID ||
          out->status == VELO_LICENSE_IN_GRACE)
             ? VELO_OK
             : VELO_ERR;
done:
    free(canon);
    json_decref(root);
    return rc;
}

int velo_license_verify_file(const char *path, time_t now,
                             struct velo_license *out)
{
    memset(out, 0, sizeof(*out));
    if (path == NULL || path[0] == '\0') {
        fail(out, VELO_LICENSE_MISSING,
             "no license configured (set license.file in velo.yaml, or "
             "VELO_LICENSE_FILE)");
        return VELO_ERR;
    }
    /* O_NONBLOCK: a FIFO must not hang the server at start. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR) {
            fail(out, VELO_LICENSE_MISSING,
                 "license file %s does not exist", path);
        } else {
            fail(out, VELO_LICENSE_UNREADABLE,
                 "cannot read license file %s: %s", path, strerror(errno));
        }
        return VELO_ERR;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        fail(out, VELO_LICENSE_UNREADABLE, "cannot read license file %s: %s",
             path, strerror(errno));
        close(fd);
        return VELO_ERR;
    }
    if (!S_ISREG(st.st_mode)) {
        fail(out, VELO_LICENSE_UNREADABLE,
             "cannot read license file %s: %s", path,
             S_ISDIR(st.st_mode) ? "it is a directory"
                                 : "it is not a regular file");
        close(fd);
        return VELO_ERR;
    }
    if (st.st_size > VELO_LICENSE_MAX_BYTES) {
        fail(out, VELO_LICENSE_OVERSIZED,
             "license file %s is %lld bytes, larger than the %d-byte limit "
             "(is it the right file?)",
             path, (long long)st.st_size, VELO_LICENSE_MAX_BYTES);
        close(fd);
        return VELO_ERR;
    }
    /* One byte more than the limit: a file that grew since fstat. */
    char *buf = malloc(VELO_LICENSE_MAX_BYTES + 1);
    if (buf == NULL) {
        fail(out, VELO_LICENSE_UNREADABLE,
             "cannot read license file %s: out of memory", path);
        close(fd);
        return VELO_ERR;
    }
    size_t n = 0;
    while (n < VELO_LICENSE_MAX_BYTES + 1) {
        ssize_t r = read(fd, buf + n, VELO_LICENSE_MAX_BYTES + 1 - n);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            fail(out, VELO_LICENSE_UNREADABLE,
                 "cannot read license file %s: %s", path, strerror(errno));
            free(buf);
            close(fd);
            return VELO_ERR;
        }
        if (r == 0) {
            break;
        }
        n += (size_t)r;
    }
    close(fd);
    if (n > VELO_LICENSE_MAX_BYTES) {
        fail(out, VELO_LICENSE_OVERSIZED,
             "license file %s is larger than the %d-byte limit (is it the "
             "right file?)",
             path, VELO_LICENSE_MAX_BYTES);
        free(buf);
        return VELO_ERR;
    }
    int rc = velo_license_verify_buffer(buf, n, now, out);
    free(buf);
    return rc;
}

int velo_license_has_feature(const struct velo_license *lic,
                             const char *feature)
{
    if (lic == NULL || feature == NULL ||
        (lic->status != VELO_LICENSE_VALID &&
         lic->status != VELO_LICENSE_IN_GRACE)) {
        return 0;
    }
    for (size_t i = 0; i < lic->n_features && i < VELO_LICENSE_MAX_FEATURES;
         i++) {
        if (strcmp(lic->features[i], feature) == 0) {
            return 1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Explaining                                                         */
/* ------------------------------------------------------------------ */

struct outbuf {
    char *p;
    size_t cap, len;
};

static void put(struct outbuf *o, const char *fmt, ...) VELO_PRINTF(2, 3);
static void put(struct outbuf *o, const char *fmt, ...)
{
    if (o->cap == 0 || o->len >= o->cap - 1) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
    va_end(ap);
    if (n > 0) {
        o->len += (size_t)n;
        if (o->len >= o->cap) {
            o->len = o->cap - 1;
        }
    }
}

static void put_features(struct outbuf *o, const struct velo_license *lic)
{
    if (lic->n_features == 0) {
        put(o, "(none)");
    }
    for (size_t i = 0; i < lic->n_features; i++) {
        put(o, "%s%s", i > 0 ? ", " : "", lic->features[i]);
    }
}

void velo_license_describe(const struct velo_license *lic, char *out,
                           size_t outlen)
{
    struct outbuf o = {out, outlen, 0};
    if (outlen == 0) {
        return;
    }
    out[0] = '\0';
    if (lic == NULL) {
        put(&o, "Status:      missing\nReason:      no license configured\n");
        return;
    }
    int usable = lic->status == VELO_LICENSE_VALID ||
                 lic->status == VELO_LICENSE_IN_GRACE;
    put(&o, "Status:      %s (%s)\n", velo_license_status_name(lic->status),
        usable ? "usable" : "not usable");
    if (lic->status != VELO_LICENSE_VALID) {
        put(&o, "Reason:      %s\n", lic->reason);
    }
    if (lic->license_id[0] != '\0') {
        char d[32];
        put(&o, "License:     %s\n", lic->license_id);
        put(&o, "Customer:    %s\n", lic->customer);
        put(&o, "Features:    ");
        put_features(&o, lic);
        put(&o, "\nLimits:      ");
        if (lic->n_limits == 0) {
            put(&o, "(none)");
        }
        for (size_t i = 0; i < lic->n_limits; i++) {
            put(&o, "%s%s=%" PRId64, i > 0 ? ", " : "", lic->limits[i].name,
                lic->limits[i].value);
        }
        velo_license_format_time(lic->issued, d, sizeof(d));
        put(&o, "\nIssued:      %s\n", d);
        velo_license_format_time(lic->not_before, d, sizeof(d));
        put(&o, "Valid from:  %s\n", d);
        velo_license_format_time(lic->expires, d, sizeof(d));
        if (lic->days_left >= 0) {
            put(&o, "Expires:     %s (%" PRId64 " whole day(s) left)\n", d,
                lic->days_left);
        } else {
            char when[48];
            ago(-lic->days_left - 1, when, sizeof(when));
            put(&o, "Expires:     %s (expired %s)\n", d, when);
        }
        put(&o, "Grace:       %" PRId64 " day(s) after expiry\n",
            lic->grace_days);
    }
    put(&o, "Trusted key: %s\n", velo_license_key_id);
}

char *velo_license_to_json(const struct velo_license *lic)
{
    json_t *o = json_object();
    if (o == NULL) {
        return NULL;
    }
    int status = lic != NULL ? lic->status : VELO_LICENSE_MISSING;
    int usable = status == VELO_LICENSE_VALID ||
                 status == VELO_LICENSE_IN_GRACE;
    json_object_set_new(o, "status",
                        json_string(velo_license_status_name(status)));
    json_object_set_new(o, "usable", json_boolean(usable));
    json_object_set_new(o, "reason",
                        lic == NULL ? json_string("no license configured")
                        : lic->status == VELO_LICENSE_VALID
                            ? json_null()
                            : json_string(lic->reason));
    if (lic != NULL && lic->license_id[0] != '\0') {
        char d[32];
        json_object_set_new(o, "license_id", json_string(lic->license_id));
        json_object_set_new(o, "customer", json_string(lic->customer));
        json_t *f = json_array();
        for (size_t i = 0; i < lic->n_features; i++) {
            json_array_append_new(f, json_string(lic->features[i]));
        }
        json_object_set_new(o, "features", f);
        json_t *l = json_object();
        for (size_t i = 0; i < lic->n_limits; i++) {
            json_object_set_new(l, lic->limits[i].name,
                                json_integer(lic->limits[i].value));
        }
        json_object_set_new(o, "limits", l);
        velo_license_format_time(lic->issued, d, sizeof(d));
        json_object_set_new(o, "issued", json_string(d));
        velo_license_format_time(lic->not_before, d, sizeof(d));
        json_object_set_new(o, "not_before", json_string(d));
        velo_license_format_time(lic->expires, d, sizeof(d));
        json_object_set_new(o, "expires", json_string(d));
        json_object_set_new(o, "grace_days", json_integer(lic->grace_days));
        json_object_set_new(o, "days_left", json_integer(lic->days_left));
    }
    json_object_set_new(o, "trusted_key", json_string(velo_license_key_id));
    char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(o);
    return s;
}

void velo_license_why_not(const struct velo_license *lic, const char *feature,
                          char *out, size_t outlen)
{
    char d1[32], d2[32];
    struct outbuf o = {out, outlen, 0};
    if (outlen == 0) {
        return;
    }
    out[0] = '\0';
    if (lic == NULL) {
        put(&o, "no license configured");
        return;
    }
    switch (lic->status) {
    case VELO_LICENSE_VALID:
    case VELO_LICENSE_IN_GRACE:
        if (velo_license_has_feature(lic, feature)) {
            put(&o, "license %s grants it", lic->license_id);
        } else {
            put(&o, "license %s lacks it (grants: ", lic->license_id);
            put_features(&o, lic);
            put(&o, ")");
        }
        return;
    case VELO_LICENSE_MISSING:
        put(&o, "%s", lic->reason);
        return;
    case VELO_LICENSE_EXPIRED:
        velo_license_format_time(lic->expires, d1, sizeof(d1));
        velo_license_format_time(
            lic->expires + (time_t)(lic->grace_days * SECONDS_PER_DAY), d2,
            sizeof(d2));
        put(&o, "license expired on %s (grace ended %s)", d1, d2);
        return;
    case VELO_LICENSE_NOT_YET_VALID:
        velo_license_format_time(lic->not_before, d1, sizeof(d1));
        put(&o, "license not valid before %s", d1);
        return;
    case VELO_LICENSE_BAD_SIGNATURE:
        put(&o, "license signature invalid (%s)", lic->reason);
        return;
    default:
        put(&o, "license unusable (%s: %s)",
            velo_license_status_name(lic->status), lic->reason);
        return;
    }
}

/* ------------------------------------------------------------------ */
/* Signing (vendor side)                                              */
/* ------------------------------------------------------------------ */

/* Never prompt on a terminal: an encrypted key is an error. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

static void ssl_err(char *err, size_t errlen, const char *what)
{
    char e[256];
    unsigned long code = ERR_get_error();
    if (code != 0) {
        ERR_error_string_n(code, e, sizeof(e));
    } else {
        snprintf(e, sizeof(e), "unknown error");
    }
    ERR_clear_error();
    errf(err, errlen, "%s: %s", what, e);
}

static EVP_PKEY *load_private_key(const char *key_path, char *err,
                                  size_t errlen)
{
    FILE *f = fopen(key_path, "r");
    if (f == NULL) {
        errf(err, errlen, "cannot open private key %s: %s", key_path,
             strerror(errno));
        return NULL;
    }
    EVP_PKEY *pk = PEM_read_PrivateKey(f, NULL, no_passphrase, NULL);
    fclose(f);
    if (pk == NULL) {
        char what[600];
        snprintf(what, sizeof(what),
                 "%.500s is not an unencrypted PEM private key", key_path);
        ssl_err(err, errlen, what);
        return NULL;
    }
    if (EVP_PKEY_get_id(pk) != EVP_PKEY_ED25519) {
        errf(err, errlen, "%s is not an Ed25519 private key (make one with "
                          "velo-license-keygen)",
             key_path);
        EVP_PKEY_free(pk);
        return NULL;
    }
    return pk;
}

char *velo_license_sign(const char *payload_json, const char *key_path,
                        char *err, size_t errlen)
{
    if (payload_json == NULL || key_path == NULL) {
        errf(err, errlen, "no payload or no key given");
        return NULL;
    }
    json_error_t jerr;
    json_t *payload = json_loads(payload_json, JSON_REJECT_DUPLICATES, &jerr);
    if (payload == NULL) {
        errf(err, errlen, "payload: invalid JSON at line %d, column %d: %s",
             jerr.line, jerr.column, jerr.text);
        return NULL;
    }
    char *text = NULL, *canon = NULL;
    EVP_PKEY *pk = NULL;
    EVP_MD_CTX *ctx = NULL;
    json_t *root = NULL;
    struct velo_license *check = calloc(1, sizeof(*check));
    char why[384];
    if (check == NULL) {
        errf(err, errlen, "out of memory");
        goto done;
    }
    /* The vendor must not be able to issue a license the server rejects. */
    if (payload_check(payload, check, why, sizeof(why)) != VELO_OK) {
        errf(err, errlen, "payload: %s", why);
        goto done;
    }
    pk = load_private_key(key_path, err, errlen);
    if (pk == NULL) {
        goto done;
    }
    canon = json_dumps(payload, CANONICAL_FLAGS);
    ctx = EVP_MD_CTX_new();
    if (canon == NULL || ctx == NULL) {
        errf(err, errlen, "out of memory");
        goto done;
    }
    unsigned char sig[SIG_LEN];
    size_t siglen = sizeof(sig);
    if (EVP_DigestSignInit(ctx, NULL, NULL, NULL, pk) != 1 ||
        EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)canon,
                       strlen(canon)) != 1 ||
        siglen != SIG_LEN) {
        ssl_err(err, errlen, "signing failed");
        goto done;
    }
    /* Check our own work with the key's public half before handing out. */
    EVP_MD_CTX_free(ctx);
    ctx = EVP_MD_CTX_new();
    if (ctx == NULL || EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pk) != 1 ||
        EVP_DigestVerify(ctx, sig, siglen, (const unsigned char *)canon,
                         strlen(canon)) != 1) {
        ssl_err(err, errlen, "the new signature does not verify");
        goto done;
    }
    unsigned char pub[32];
    size_t publen = sizeof(pub);
    char fpr[VELO_LICENSE_FPR_LEN + 1];
    if (EVP_PKEY_get_raw_public_key(pk, pub, &publen) != 1 || publen != 32 ||
        velo_license_fingerprint(pub, fpr) != VELO_OK) {
        ssl_err(err, errlen, "cannot read the public half of the key");
        goto done;
    }
    char b64[4 * ((SIG_LEN + 2) / 3) + 1];
    EVP_EncodeBlock((unsigned char *)b64, sig, SIG_LEN);

    root = json_object();
    if (root == NULL ||
        json_object_set(root, "payload", payload) != 0 ||
        json_object_set_new(root, "signature", json_string(b64)) != 0 ||
        json_object_set_new(root, "key_id", json_string(fpr)) != 0) {
        errf(err, errlen, "out of memory");
        goto done;
    }
    char *body = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS |
                                      JSON_ENSURE_ASCII);
    if (body == NULL) {
        errf(err, errlen, "out of memory");
        goto done;
    }
    size_t blen = strlen(body);
    text = malloc(blen + 2);
    if (text == NULL) {
        errf(err, errlen, "out of memory");
    } else {
        memcpy(text, body, blen);
        text[blen] = '\n';
        text[blen + 1] = '\0';
    }
    free(body);
done:
    json_decref(root);
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(pk);
    free(canon);
    free(check);
    json_decref(payload);
    ERR_clear_error();
    return text;
}
