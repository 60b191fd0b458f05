/*
 * Message headers for the Kafka sink: one record's `_headers` value, a flat
 * JSON object ({"name": "value", ...}), into librdkafka's header list.
 *
 * This runs once per record on the sink's hot path, so it is a small
 * scanner rather than a JSON library: names and string values are
 * unescaped into the caller's scratch buffer (sized once per batch), and
 * the only allocation is the header list itself, which librdkafka needs
 * and takes over with the message. A value that is not a string (a
 * number, true, false, an object or an array) is sent as its JSON text;
 * null is a header without a value, as Kafka allows and as the source
 * reads it back.
 *
 * Errors say what was expected and at which byte, never the text itself:
 * headers often carry tokens.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "kafka-internal.h"

/* Nesting an object or array value may have (it is sent as text). */
#define KJ_DEPTH_MAX 64

struct kj {
    const char *s;   /* start, for byte positions */
    const char *p;   /* next byte */
    const char *end; /* one past the last byte */
    char *why;
    size_t whylen;
};

static int kj_fail(struct kj *j, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int kj_fail(struct kj *j, const char *fmt, ...)
{
    char what[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    if (j->p >= j->end) {
        snprintf(j->why, j->whylen, "expected %s, found the end (byte %zu)",
                 what, (size_t)(j->p - j->s));
    } else {
        snprintf(j->why, j->whylen, "expected %s at byte %zu", what,
                 (size_t)(j->p - j->s));
    }
    return -1;
}

static void kj_ws(struct kj *j)
{
    while (j->p < j->end &&
           (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) {
        j->p++;
    }
}

static int kj_hex4(struct kj *j, uint32_t *cp)
{
    if (j->end - j->p < 4) {
        return -1;
    }
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char c = j->p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') {
            v |= (uint32_t)(c - '0');
        } else if (c >= 'a' && c <= 'f') {
            v |= (uint32_t)(c - 'a' + 10);
        } else if (c >= 'A' && c <= 'F') {
            v |= (uint32_t)(c - 'A' + 10);
        } else {
            return -1;
        }
    }
    j->p += 4;
    *cp = v;
    return 0;
}

static size_t kj_utf8(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/*
 * The JSON string at j->p, unescaped into `out`. An unescaped string is
 * never longer than its JSON text (an escape of 2, 6 or 12 bytes stands
 * for 1 to 4), so `out` needs no more room than the input has left.
 */
static int kj_string(struct kj *j, char *out, size_t *outlen)
{
    if (j->p >= j->end || *j->p != '"') {
        return kj_fail(j, "a string in double quotes");
    }
    j->p++;
    size_t n = 0;
    while (j->p < j->end) {
        unsigned char c = (unsigned char)*j->p;
        if (c == '"') {
            j->p++;
            *outlen = n;
            return 0;
        }
        if (c < 0x20) {
            return kj_fail(j, "a control character written as an escape "
                              "(\\n, \\u0001, ...)");
        }
        j->p++;
        if (c != '\\') {
            out[n++] = (char)c;
            continue;
        }
        if (j->p >= j->end) {
            break;
        }
        c = (unsigned char)*j->p++;
        switch (c) {
        case '"':
        case '\\':
        case '/':
            out[n++] = (char)c;
            break;
        case 'b':
            out[n++] = '\b';
            break;
        case 'f':
            out[n++] = '\f';
            break;
        case 'n':
            out[n++] = '\n';
            break;
        case 'r':
            out[n++] = '\r';
            break;
        case 't':
            out[n++] = '\t';
            break;
        case 'u': {
            uint32_t cp, lo;
            if (kj_hex4(j, &cp) != 0) {
                return kj_fail(j, "four hex digits after \\u");
            }
            if (cp >= 0xDC00 && cp <= 0xDFFF) {
                return kj_fail(j, "a high surrogate before a low one");
            }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (j->end - j->p < 2 || j->p[0] != '\\' || j->p[1] != 'u') {
                    return kj_fail(j, "the low surrogate (\\uDC00..\\uDFFF) "
                                      "of a pair");
                }
                j->p += 2;
                if (kj_hex4(j, &lo) != 0 || lo < 0xDC00 || lo > 0xDFFF) {
                    return kj_fail(j, "the low surrogate (\\uDC00..\\uDFFF) "
                                      "of a pair");
                }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            n += kj_utf8(cp, out + n);
            break;
        }
        default:
            j->p--;
            return kj_fail(j, "an escape (\\\" \\\\ \\/ \\b \\f \\n \\r \\t "
                              "\\uXXXX)");
        }
    }
    return kj_fail(j, "the closing quote of a string");
}

static int kj_word(struct kj *j, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(j->end - j->p) >= n && memcmp(j->p, w, n) == 0) {
        j->p += n;
        return 1;
    }
    return 0;
}

/* A number: -?digits(.digits)?([eE][+-]?digits)?. */
static int kj_number(struct kj *j)
{
    const char *q = j->p;
    if (q < j->end && *q == '-') {
        q++;
    }
    const char *d = q;
    while (q < j->end && *q >= '0' && *q <= '9') {
        q++;
    }
    if (q == d) {
        return kj_fail(j, "a value (a string, number, true, false, null, "
                          "object or array)");
    }
    if (q < j->end && *q == '.') {
        d = ++q;
        while (q < j->end && *q >= '0' && *q <= '9') {
            q++;
        }
        if (q == d) {
            j->p = q;
            return kj_fail(j, "digits after the decimal point");
        }
    }
    if (q < j->end && (*q == 'e' || *q == 'E')) {
        q++;
        if (q < j->end && (*q == '+' || *q == '-')) {
            q++;
        }
        d = q;
        while (q < j->end && *q >= '0' && *q <= '9') {
            q++;
        }
        if (q == d) {
            j->p = q;
            return kj_fail(j, "digits in the exponent");
        }
    }
    j->p = q;
    return 0;
}

/*
 * An object or array value, skipped as a whole (it is sent as its text):
 * brackets must match, strings may hold any of them. Its inside is not
 * checked further; the reader of the header decides what it means.
 */
static int kj_nested(struct kj *j)
{
    char stack[KJ_DEPTH_MAX];
    size_t depth = 0;
    while (j->p < j->end) {
        char c = *j->p;
        if (c == '"') {
            /* Skip the string: only its end matters here. */
            j->p++;
            while (j->p < j->end && *j->p != '"') {
                j->p += *j->p == '\\' && j->end - j->p > 1 ? 2 : 1;
            }
            if (j->p >= j->end) {
                return kj_fail(j, "the closing quote of a string");
            }
        } else if (c == '{' || c == '[') {
            if (depth == KJ_DEPTH_MAX) {
                return kj_fail(j, "at most %d levels of nesting", KJ_DEPTH_MAX);
            }
            stack[depth++] = c == '{' ? '}' : ']';
        } else if (c == '}' || c == ']') {
            if (depth == 0 || stack[depth - 1] != c) {
                return kj_fail(j, "'%c'", depth > 0 ? stack[depth - 1] : '}');
            }
            if (--depth == 0) {
                j->p++;
                return 0;
            }
        }
        j->p++;
    }
    return kj_fail(j, "'%c' closing a nested value",
                   depth > 0 ? stack[depth - 1] : '}');
}

int kafka_headers_parse(const char *text, size_t len, char *scratch,
                        rd_kafka_headers_t **out, char *why, size_t whylen)
{
    struct kj j = {text, text, text + len, why, whylen};
    *out = NULL;
    kj_ws(&j);
    if (kj_word(&j, "null")) {
        kj_ws(&j);
        return j.p == j.end ? 0 : kj_fail(&j, "nothing after null");
    }
    if (j.p >= j.end || *j.p != '{') {
        return kj_fail(&j, "'{' (the headers must be one JSON object)");
    }
    j.p++;
    kj_ws(&j);
    rd_kafka_headers_t *hdrs = NULL;
    if (j.p < j.end && *j.p == '}') {
        j.p++;
    } else {
        /* Names and string values go one after the other into scratch,
         * which holds the whole text: they never outgrow it. */
        for (;;) {
            size_t nlen, vlen = 0;
            char *name = scratch;
            if (kj_string(&j, name, &nlen) != 0) {
                goto fail;
            }
            kj_ws(&j);
            if (j.p >= j.end || *j.p != ':') {
                kj_fail(&j, "':' after a header name");
                goto fail;
            }
            j.p++;
            kj_ws(&j);
            const char *val = NULL;
            if (j.p < j.end && *j.p == '"') {
                char *v = scratch + nlen;
                if (kj_string(&j, v, &vlen) != 0) {
                    goto fail;
                }
                val = v;
            } else if (kj_word(&j, "null")) {
                val = NULL;
            } else {
                const char *v0 = j.p;
                int rc = 0;
                if (!kj_word(&j, "true") && !kj_word(&j, "false")) {
                    rc = j.p < j.end && (*j.p == '{' || *j.p == '[')
                             ? kj_nested(&j)
                             : kj_number(&j);
                }
                if (rc != 0) {
                    goto fail;
                }
                val = v0;
                vlen = (size_t)(j.p - v0);
            }
            if (hdrs == NULL && (hdrs = rd_kafka_headers_new(8)) == NULL) {
                snprintf(why, whylen, "out of memory");
                return -1;
            }
            if (rd_kafka_header_add(hdrs, name, (ssize_t)nlen, val,
                                    val != NULL ? (ssize_t)vlen : 0) !=
                RD_KAFKA_RESP_ERR_NO_ERROR) {
                snprintf(why, whylen, "librdkafka refused a header");
                goto fail;
            }
            kj_ws(&j);
            if (j.p < j.end && *j.p == ',') {
                j.p++;
                kj_ws(&j);
                continue;
            }
            if (j.p < j.end && *j.p == '}') {
                j.p++;
                break;
            }
            kj_fail(&j, "',' or '}' after a header's value");
            goto fail;
        }
    }
    kj_ws(&j);
    if (j.p != j.end) {
        kj_fail(&j, "nothing after the object's '}'");
        goto fail;
    }
    *out = hdrs;
    return 0;

fail:
    if (hdrs != NULL) {
        rd_kafka_headers_destroy(hdrs);
    }
    return -1;
}
