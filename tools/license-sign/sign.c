/*
 * velo-license-sign: the vendor tool that issues license files.
 *
 *   velo-license-sign --key PRIVATE.pem --customer NAME --features a,b
 *       --expires YYYY-MM-DD [--not-before D] [--issued D] [--grace-days N]
 *       [--limit nodes=3 ...] [--license-id ID] [--out FILE]
 *   velo-license-sign --key PRIVATE.pem --payload FILE.json [--out FILE]
 *
 * The private key is read from the path given at run time only; nothing
 * about it is compiled in. Signing goes through velo_license_sign(), the
 * same code whose canonical form the server verifies.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/rand.h>

#include <velo/log.h>

#include "plugin/license-internal.h"
#include "plugin/license.h"

#define PROG "velo-license-sign"
#define MAX_LIMITS VELO_LICENSE_MAX_LIMITS
#define DEFAULT_GRACE_DAYS 14

static void usage(FILE *out)
{
    fprintf(out,
        "Usage: " PROG " --key PRIVATE.pem --customer NAME --features a,b\n"
        "           --expires YYYY-MM-DD [options]\n"
        "       " PROG " --key PRIVATE.pem --payload FILE.json [--out FILE]\n"
        "\n"
        "Issue a Velostream license file signed with an Ed25519 private key\n"
        "(made by velo-license-keygen). Dates are YYYY-MM-DD (UTC midnight)\n"
        "or RFC 3339 timestamps.\n"
        "\n"
        "  --key FILE         the vendor's private key (PEM), required\n"
        "  --customer NAME    the licensee\n"
        "  --features LIST    comma-separated features, e.g. rbac,audit\n"
        "  --expires DATE     first day the license is no longer valid\n"
        "  --not-before DATE  first day it is valid (default: --issued)\n"
        "  --issued DATE      issue date (default: today, UTC)\n"
        "  --grace-days N     days after expiry during which licensed\n"
        "                     plugins still load, with a warning (default %d)\n"
        "  --limit NAME=N     a numeric limit such as nodes=3 (repeatable)\n"
        "  --license-id ID    identifier (default: VL-<date>-<random>)\n"
        "  --payload FILE     sign this JSON payload as is instead\n"
        "  --out FILE         write the license here (default: stdout)\n"
        "  --help             this text\n"
        "\n"
        "Exit codes: 0 signed, 1 failure (key, payload), 2 usage error.\n",
        DEFAULT_GRACE_DAYS);
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, PROG ": cannot open %s: %s\n", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(VELO_LICENSE_MAX_BYTES + 1);
    size_t n = buf != NULL ? fread(buf, 1, VELO_LICENSE_MAX_BYTES, f) : 0;
    int big = buf != NULL && n == VELO_LICENSE_MAX_BYTES && fgetc(f) != EOF;
    int bad = ferror(f);
    fclose(f);
    if (buf == NULL || big || bad) {
        fprintf(stderr, PROG ": cannot read %s: %s\n", path,
                buf == NULL ? "out of memory"
                : big       ? "larger than a license may be"
                            : "read error");
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

static int check_date(const char *opt, const char *s)
{
    time_t t;
    if (velo_license_parse_time(s, &t) != VELO_OK) {
        fprintf(stderr,
                PROG ": %s: \"%s\" is not a date (write YYYY-MM-DD or an "
                     "RFC 3339 timestamp)\n",
                opt, s);
        return -1;
    }
    return 0;
}

static int parse_i64(const char *s, int64_t *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0') {
        return -1;
    }
    *out = (int64_t)v;
    return 0;
}

static int write_out(const char *path, const char *text)
{
    if (path == NULL) {
        return fputs(text, stdout) == EOF || fflush(stdout) != 0 ? -1 : 0;
    }
    size_t len = strlen(path) + 16;
    char *tmp = malloc(len);
    if (tmp == NULL) {
        return -1;
    }
    snprintf(tmp, len, "%s.tmp%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    int ok = f != NULL && fputs(text, f) != EOF;
    if (f != NULL && fclose(f) != 0) {
        ok = 0;
    }
    if (!ok || rename(tmp, path) != 0) {
        fprintf(stderr, PROG ": cannot write %s: %s\n", path,
                strerror(errno));
        unlink(tmp);
        free(tmp);
        return -1;
    }
    free(tmp);
    return 0;
}

/* The payload from the field options, as JSON text. */
static char *build_payload(const char *customer, const char *features,
                           const char *expires, const char *not_before,
                           const char *issued, int64_t grace,
                           char *const *limits, size_t n_limits,
                           const char *license_id)
{
    char today[32], idbuf[64];
    if (issued == NULL) {
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(today, sizeof(today), "%Y-%m-%d", &tm);
        issued = today;
    }
    if (license_id == NULL) {
        unsigned char rnd[4];
        if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
            fprintf(stderr, PROG ": no randomness for a license id; give "
                            "--license-id\n");
            return NULL;
        }
        char compact[16];
        size_t k = 0;
        for (const char *p = issued; *p != '\0' && k < 8; p++) {
            if (*p >= '0' && *p <= '9') {
                compact[k++] = *p;
            }
        }
        compact[k] = '\0';
        snprintf(idbuf, sizeof(idbuf), "VL-%s-%02x%02x%02x%02x", compact,
                 rnd[0], rnd[1], rnd[2], rnd[3]);
        license_id = idbuf;
    }

    json_t *p = json_object();
    json_t *feat = json_array();
    json_t *lim = json_object();
    char *text = NULL;
    char *copy = strdup(features);
    if (p == NULL || feat == NULL || lim == NULL || copy == NULL) {
        fprintf(stderr, PROG ": out of memory\n");
        goto done;
    }
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ') {
            tok++;
        }
        size_t tl = strlen(tok);
        while (tl > 0 && tok[tl - 1] == ' ') {
            tok[--tl] = '\0';
        }
        if (tl > 0 && json_array_append_new(feat, json_string(tok)) != 0) {
            fprintf(stderr, PROG ": --features: \"%s\" is not valid UTF-8\n",
                    tok);
            goto done;
        }
    }
    for (size_t i = 0; i < n_limits; i++) {
        char name[64];
        const char *eq = strchr(limits[i], '=');
        int64_t v;
        if (eq == NULL || (size_t)(eq - limits[i]) >= sizeof(name) ||
            parse_i64(eq + 1, &v) != 0) {
            fprintf(stderr,
                    PROG ": --limit %s: write NAME=NUMBER, e.g. nodes=3\n",
                    limits[i]);
            goto done;
        }
        memcpy(name, limits[i], (size_t)(eq - limits[i]));
        name[eq - limits[i]] = '\0';
        json_object_set_new(lim, name, json_integer(v));
    }
    json_object_set_new(p, "license_id", json_string(license_id));
    json_t *cust = json_string(customer);
    if (cust == NULL) {
        fprintf(stderr, PROG ": --customer must be valid UTF-8\n");
        goto done;
    }
    json_object_set_new(p, "customer", cust);
    json_object_set_new(p, "issued", json_string(issued));
    json_object_set_new(p, "not_before",
                        json_string(not_before != NULL ? not_before : issued));
    json_object_set_new(p, "expires", json_string(expires));
    json_object_set_new(p, "grace_days", json_integer(grace));
    json_object_set(p, "features", feat);
    if (json_object_size(lim) > 0) {
        json_object_set(p, "limits", lim);
    }
    text = json_dumps(p, JSON_COMPACT | JSON_SORT_KEYS);
    if (text == NULL) {
        fprintf(stderr, PROG ": out of memory\n");
    }
done:
    free(copy);
    json_decref(feat);
    json_decref(lim);
    json_decref(p);
    return text;
}

int main(int argc, char **argv)
{
    enum {
        OPT_KEY = 256, OPT_CUSTOMER, OPT_FEATURES, OPT_EXPIRES,
        OPT_NOT_BEFORE, OPT_ISSUED, OPT_GRACE, OPT_LIMIT, OPT_ID,
        OPT_PAYLOAD, OPT_OUT, OPT_HELP
    };
    static const struct option opts[] = {
        {"key", required_argument, NULL, OPT_KEY},
        {"customer", required_argument, NULL, OPT_CUSTOMER},
        {"features", required_argument, NULL, OPT_FEATURES},
        {"expires", required_argument, NULL, OPT_EXPIRES},
        {"not-before", required_argument, NULL, OPT_NOT_BEFORE},
        {"issued", required_argument, NULL, OPT_ISSUED},
        {"grace-days", required_argument, NULL, OPT_GRACE},
        {"limit", required_argument, NULL, OPT_LIMIT},
        {"license-id", required_argument, NULL, OPT_ID},
        {"payload", required_argument, NULL, OPT_PAYLOAD},
        {"out", required_argument, NULL, OPT_OUT},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0}};
    const char *key = NULL, *customer = NULL, *features = NULL;
    const char *expires = NULL, *not_before = NULL, *issued = NULL;
    const char *license_id = NULL, *payload_file = NULL, *out = NULL;
    const char *grace_text = NULL;
    char *limits[MAX_LIMITS];
    size_t n_limits = 0;
    int field_opts = 0;

    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case OPT_KEY: key = optarg; break;
        case OPT_CUSTOMER: customer = optarg; field_opts++; break;
        case OPT_FEATURES: features = optarg; field_opts++; break;
        case OPT_EXPIRES: expires = optarg; field_opts++; break;
        case OPT_NOT_BEFORE: not_before = optarg; field_opts++; break;
        case OPT_ISSUED: issued = optarg; field_opts++; break;
        case OPT_GRACE: grace_text = optarg; field_opts++; break;
        case OPT_ID: license_id = optarg; field_opts++; break;
        case OPT_PAYLOAD: payload_file = optarg; break;
        case OPT_OUT: out = optarg; break;
        case OPT_LIMIT:
            if (n_limits == MAX_LIMITS) {
                fprintf(stderr, PROG ": at most %d --limit options\n",
                        MAX_LIMITS);
                return 2;
            }
            limits[n_limits++] = optarg;
            field_opts++;
            break;
        case OPT_HELP: usage(stdout); return 0;
        default:
            fprintf(stderr, PROG ": %s: unknown option or missing value\n",
                    argv[optind - 1]);
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, PROG ": unexpected argument %s\n", argv[optind]);
        return 2;
    }
    if (key == NULL) {
        fprintf(stderr, PROG ": --key PRIVATE.pem is required\n");
        return 2;
    }
    char *payload = NULL;
    if (payload_file != NULL) {
        if (field_opts > 0) {
            fprintf(stderr, PROG ": --payload signs a file as is; it cannot "
                            "be combined with the field options\n");
            return 2;
        }
        payload = read_text(payload_file);
        if (payload == NULL) {
            return 1;
        }
    } else {
        if (customer == NULL || features == NULL || expires == NULL) {
            fprintf(stderr, PROG ": --customer, --features and --expires "
                            "are required (or give --payload FILE)\n");
            return 2;
        }
        int64_t grace = DEFAULT_GRACE_DAYS;
        if (grace_text != NULL &&
            (parse_i64(grace_text, &grace) != 0 || grace < 0)) {
            fprintf(stderr, PROG ": --grace-days %s: write a whole number "
                            "of days, 0 or more\n",
                    grace_text);
            return 2;
        }
        if (check_date("--expires", expires) != 0 ||
            (not_before != NULL && check_date("--not-before", not_before)) ||
            (issued != NULL && check_date("--issued", issued) != 0)) {
            return 2;
        }
        payload = build_payload(customer, features, expires, not_before,
                                issued, grace, limits, n_limits, license_id);
        if (payload == NULL) {
            return 1;
        }
    }

    char err[512];
    char *license = velo_license_sign(payload, key, err, sizeof(err));
    free(payload);
    if (license == NULL) {
        fprintf(stderr, PROG ": %s\n", err);
        return 1;
    }
    if (write_out(out, license) != 0) {
        free(license);
        return 1;
    }

    /* Say what was issued, and whether the velo built from this tree
     * (which trusts the production key) will accept it. */
    json_t *root = json_loads(license, 0, NULL);
    const char *kid = json_string_value(json_object_get(root, "key_id"));
    json_t *pl = json_object_get(root, "payload");
    fprintf(stderr, PROG ": signed license %s for %s, expires %s (key %s)%s%s\n",
            json_string_value(json_object_get(pl, "license_id")),
            json_string_value(json_object_get(pl, "customer")),
            json_string_value(json_object_get(pl, "expires")),
            kid != NULL ? kid : "?", out != NULL ? " -> " : "",
            out != NULL ? out : "");
    const char *dash = strrchr(velo_license_key_id, '-');
    if (kid != NULL && dash != NULL && strcmp(dash + 1, kid) != 0) {
        fprintf(stderr,
                PROG ": note: key %s is not the production key (%s); only "
                     "builds that trust key %s accept this license\n",
                kid, velo_license_key_id, kid);
    }
    json_decref(root);
    free(license);
    return 0;
}
