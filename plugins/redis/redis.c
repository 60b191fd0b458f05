/*
 * Velostream connector plugin: Redis (hiredis).
 *
 * Source: a stream read through a consumer group (XREADGROUP; entries are
 * XACKed only in source_commit, i.e. once every sink has made them durable)
 * or a pub/sub channel (SUBSCRIBE; at most once, Redis keeps nothing).
 * Sink: one row per record (VELO_CONNECTOR_RECORD_SINK) into a stream
 * (XADD), a hash per key (HSET), a string per key (SET) or a channel
 * (PUBLISH), pipelined: replies are read at sink_flush or when `pipeline`
 * commands are waiting.
 *
 * The engine has no event loop for connectors yet (ctx->base is NULL), so
 * this uses hiredis' blocking API with short timeouts and never waits for
 * data: XREADGROUP without BLOCK, pub/sub read only when poll() says the
 * socket is readable. A dropped connection is reopened with backoff inside
 * source_read / sink_write / sink_flush, which return VELO_AGAIN meanwhile.
 *
 * Lookups (stream-table joins) read hashes or JSON strings by key, and
 * introspection lists streams and key patterns and describes one by
 * sampling (both near the end of this file).
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <jansson.h>

#include <velo/velo.h>

#ifndef VELO_CONNECTOR_RECORD_SINK
#define VELO_CONNECTOR_RECORD_SINK 4
#endif

#define REDIS_BACKOFF_MIN_MS 100
#define REDIS_BACKOFF_MAX_MS 5000
#define REDIS_ACK_CHUNK 512
#define REDIS_ID_MAX 48

/* ---- Configuration ------------------------------------------------------ */

struct redis_conf {
    char *url;
    char *key;
    char *mode;
    char *group;
    char *consumer;
    char *start;
    int64_t block_ms;
    int64_t count;
    char *field;
    char *password;
    int64_t db;
    int64_t connect_timeout_ms;
    char *key_column;
    char *key_prefix;
    int64_t maxlen;
    int64_t ttl_ms;
    int64_t pipeline;
    int64_t scan_limit;
    int64_t sample;
};

static const struct velo_config_map redis_config[] = {
    {VELO_CONFIG_STR, "url", "", offsetof(struct redis_conf, url),
     "redis://[:password@]host:port[/key]; a redis:// URI in FROM sets it"},
    {VELO_CONFIG_STR, "key", "", offsetof(struct redis_conf, key),
     "the stream or channel (or, for a hash/string sink, the key column)"},
    {VELO_CONFIG_STR, "mode", "stream", offsetof(struct redis_conf, mode),
     "source: stream | pubsub; sink: stream | hash | string | pubsub"},
    {VELO_CONFIG_STR, "group", "", offsetof(struct redis_conf, group),
     "consumer group of a stream source (default velo-<name>)"},
    {VELO_CONFIG_STR, "consumer", "", offsetof(struct redis_conf, consumer),
     "consumer name in the group (default <hostname>-<pid>)"},
    {VELO_CONFIG_STR, "start", "0", offsetof(struct redis_conf, start),
     "where a new group starts: 0 (the whole stream) or $ (new entries)"},
    {VELO_CONFIG_INT, "block.ms", "0", offsetof(struct redis_conf, block_ms),
     "reserved for the event-loop integration; reads never block now"},
    {VELO_CONFIG_INT, "count", "64", offsetof(struct redis_conf, count),
     "entries per XREADGROUP (at most the engine's batch)"},
    {VELO_CONFIG_STR, "field", "", offsetof(struct redis_conf, field),
     "entry field holding the whole record (source default: data)"},
    {VELO_CONFIG_SECRET, "password", "", offsetof(struct redis_conf, password),
     "password for AUTH (overrides one in the URL); never logged"},
    {VELO_CONFIG_INT, "db", "0", offsetof(struct redis_conf, db),
     "database number (SELECT)"},
    {VELO_CONFIG_DURATION, "connect.timeout", "2s",
     offsetof(struct redis_conf, connect_timeout_ms),
     "connect and command timeout"},
    {VELO_CONFIG_STR, "key.column", "", offsetof(struct redis_conf, key_column),
     "hash/string sink: the column whose value names the key"},
    {VELO_CONFIG_STR, "key.prefix", "", offsetof(struct redis_conf, key_prefix),
     "hash/string sink: prepended to the key column's value"},
    {VELO_CONFIG_INT, "maxlen", "0", offsetof(struct redis_conf, maxlen),
     "stream sink: XADD MAXLEN ~ n (0: unbounded)"},
    {VELO_CONFIG_DURATION, "ttl", "0s", offsetof(struct redis_conf, ttl_ms),
     "string sink: expiry of each key (0s: none)"},
    {VELO_CONFIG_INT, "pipeline", "1000", offsetof(struct redis_conf, pipeline),
     "sink: commands sent before their replies are awaited"},
    {VELO_CONFIG_INT, "scan.limit", "10000",
     offsetof(struct redis_conf, scan_limit),
     "inspect list: at most this many keys are scanned"},
    {VELO_CONFIG_INT, "sample", "100", offsetof(struct redis_conf, sample),
     "inspect describe: entries or hashes sampled"},
    {0}};

static int redis_set(const char *s)
{
    return s != NULL && s[0] != '\0';
}

static int64_t redis_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- Growable text ------------------------------------------------------ */

struct redis_buf {
    char *data;
    size_t len, cap;
};

static int redis_buf_reserve(struct redis_buf *b, size_t more)
{
    if (b->len + more <= b->cap) {
        return VELO_OK;
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more) {
        cap *= 2;
    }
    char *n = realloc(b->data, cap);
    if (n == NULL) {
        return VELO_ERR;
    }
    b->data = n;
    b->cap = cap;
    return VELO_OK;
}

static int redis_buf_add(struct redis_buf *b, const char *s, size_t n)
{
    if (redis_buf_reserve(b, n) != VELO_OK) {
        return VELO_ERR;
    }
    if (n > 0) {
        memcpy(b->data + b->len, s, n);
    }
    b->len += n;
    return VELO_OK;
}

/* A JSON string literal, escaped. */
static int redis_buf_json_str(struct redis_buf *b, const char *s, size_t n)
{
    if (redis_buf_reserve(b, n + 2) != VELO_OK) {
        return VELO_ERR;
    }
    b->data[b->len++] = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        const char *e = NULL;
        size_t el = 0;
        switch (c) {
        case '"':
            e = "\\\"";
            el = 2;
            break;
        case '\\':
            e = "\\\\";
            el = 2;
            break;
        case '\n':
            e = "\\n";
            el = 2;
            break;
        case '\r':
            e = "\\r";
            el = 2;
            break;
        case '\t':
            e = "\\t";
            el = 2;
            break;
        default:
            if (c < 0x20) {
                el = (size_t)snprintf(esc, sizeof(esc), "\\u%04x", c);
                e = esc;
            }
        }
        if (e != NULL) {
            if (redis_buf_add(b, e, el) != VELO_OK) {
                return VELO_ERR;
            }
        } else if (redis_buf_add(b, (const char *)&s[i], 1) != VELO_OK) {
            return VELO_ERR;
        }
    }
    return redis_buf_add(b, "\"", 1);
}

/* Is the text a JSON number literal? Stream fields are strings in Redis;
 * numbers are passed on as numbers so that SUM(qty) works without a CAST,
 * while "007" or "1e" stay strings. */
static int redis_is_json_number(const char *s, size_t n)
{
    size_t i = 0;
    if (i < n && s[i] == '-') {
        i++;
    }
    if (i >= n) {
        return 0;
    }
    if (s[i] == '0') {
        i++;
    } else if (s[i] >= '1' && s[i] <= '9') {
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            i++;
        }
    } else {
        return 0;
    }
    if (i < n && s[i] == '.') {
        i++;
        size_t d = i;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            i++;
        }
        if (i == d) {
            return 0;
        }
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) {
            i++;
        }
        size_t d = i;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            i++;
        }
        if (i == d) {
            return 0;
        }
    }
    return i == n;
}

/* ---- URL ---------------------------------------------------------------- */

struct redis_url {
    char *host;
    int port;
    char *user;
    char *pass; /* secret */
    char *path; /* the key, or NULL */
    char redacted[512];
};

static void redis_url_free(struct redis_url *u)
{
    free(u->host);
    free(u->user);
    if (u->pass != NULL) {
        memset(u->pass, 0, strlen(u->pass));
        free(u->pass);
    }
    free(u->path);
    memset(u, 0, sizeof(*u));
}

static int redis_hex(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* A %-decoded copy of s[0..n). */
static char *redis_decode(const char *s, size_t n)
{
    char *out = malloc(n + 1);
    if (out == NULL) {
        return NULL;
    }
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n && redis_hex(s[i + 1]) >= 0 &&
            redis_hex(s[i + 2]) >= 0) {
            out[o++] = (char)(redis_hex(s[i + 1]) * 16 + redis_hex(s[i + 2]));
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return out;
}

/*
 * redis://[user[:password]@]host[:port][/key]. The redacted form replaces
 * the password with *** and is the only form ever logged.
 * @return VELO_OK, or VELO_ERR with the reason in err (no secret in it).
 */
static int redis_url_parse(const char *url, struct redis_url *u, char *err,
                           size_t errlen)
{
    memset(u, 0, sizeof(*u));
    u->port = 6379;
    const char *p;
    if (strncmp(url, "redis://", 8) == 0) {
        p = url + 8;
    } else if (strncmp(url, "rediss://", 9) == 0) {
        snprintf(err, errlen,
                 "rediss:// (TLS) is not supported by this "
                 "build; use redis://");
        return VELO_ERR;
    } else {
        snprintf(err, errlen,
                 "not a redis:// URL (write "
                 "redis://host:6379/key)");
        return VELO_ERR;
    }
    const char *end = p + strcspn(p, "/?#");
    const char *at = NULL;
    for (const char *q = p; q < end; q++) {
        if (*q == '@') {
            at = q; /* the last @: a password may hold one */
        }
    }
    const char *hp = p;
    if (at != NULL) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon != NULL) {
            u->user = redis_decode(p, (size_t)(colon - p));
            u->pass = redis_decode(colon + 1, (size_t)(at - colon - 1));
        } else {
            u->user = redis_decode(p, (size_t)(at - p));
        }
        if (u->user != NULL && u->user[0] == '\0') {
            free(u->user);
            u->user = NULL;
        }
        hp = at + 1;
    }
    const char *hend = end;
    const char *portp = NULL;
    if (hp < end && *hp == '[') {
        const char *rb = memchr(hp, ']', (size_t)(end - hp));
        if (rb == NULL) {
            snprintf(err, errlen, "unclosed [ in the host");
            return VELO_ERR;
        }
        u->host = redis_decode(hp + 1, (size_t)(rb - hp - 1));
        if (rb + 1 < end && rb[1] == ':') {
            portp = rb + 2;
        }
    } else {
        const char *colon = memchr(hp, ':', (size_t)(end - hp));
        if (colon != NULL) {
            hend = colon;
            portp = colon + 1;
        }
        u->host = redis_decode(hp, (size_t)(hend - hp));
    }
    if (u->host == NULL || u->host[0] == '\0') {
        free(u->host);
        u->host = strdup("127.0.0.1");
    }
    if (portp != NULL) {
        char *pe;
        long port = strtol(portp, &pe, 10);
        if (pe != end || port < 1 || port > 65535) {
            snprintf(err, errlen, "bad port '%.*s' (write 1 to 65535)",
                     (int)(end - portp), portp);
            return VELO_ERR;
        }
        u->port = (int)port;
    }
    if (*end == '/' && end[1] != '\0') {
        const char *kp = end + 1;
        size_t kl = strcspn(kp, "?#");
        if (kl > 0) {
            u->path = redis_decode(kp, kl);
        }
    }
    /* The redacted form: everything but the password. */
    if (u->pass != NULL) {
        snprintf(u->redacted, sizeof(u->redacted), "redis://%s%s***@%s",
                 u->user != NULL ? u->user : "", u->user != NULL ? ":" : "",
                 at + 1);
    } else {
        snprintf(u->redacted, sizeof(u->redacted), "%s", url);
    }
    if (u->host == NULL) {
        snprintf(err, errlen, "out of memory");
        return VELO_ERR;
    }
    return VELO_OK;
}

/* ---- Connection with reconnect ----------------------------------------- */

enum { REDIS_FATAL = -100 };

struct redis_conn {
    struct velo_instance *ins;
    struct redis_url url;
    int64_t db;
    struct timeval timeout;
    redisContext *c;
    int64_t next_try_ms;
    int64_t backoff_ms;
    int down;     /* an outage is in progress (logged once) */
    int attempts; /* failed attempts in this outage */
    struct velo_metric *m_reconnects;
    struct velo_metric *m_errors;
};

static void redis_metric_add(struct redis_conn *cn, struct velo_metric *m,
                             double v)
{
    if (m != NULL && VELO_HOST_HAS(cn->ins->host, metric_add)) {
        cn->ins->host->metric_add(m, v);
    }
}

/* One command, blocking with the connection's timeout. @return the reply
 * (caller frees) or NULL when the connection failed (reason in c->errstr). */
static redisReply *redis_command(redisContext *c, int argc, const char **argv)
{
    size_t lens[16];
    if (argc > 16) {
        return NULL;
    }
    for (int i = 0; i < argc; i++) {
        lens[i] = strlen(argv[i]);
    }
    return redisCommandArgv(c, argc, argv, lens);
}

/*
 * Connect, AUTH and SELECT. @return VELO_OK, VELO_AGAIN (the server cannot
 * be reached: retry later), or REDIS_FATAL (refused credentials or
 * database: retrying cannot help). The reason goes to why.
 */
static int redis_open(struct redis_conn *cn, char *why, size_t whylen)
{
    redisContext *c =
        redisConnectWithTimeout(cn->url.host, cn->url.port, cn->timeout);
    if (c == NULL) {
        snprintf(why, whylen, "out of memory");
        return VELO_AGAIN;
    }
    if (c->err) {
        snprintf(why, whylen, "%s", c->errstr);
        redisFree(c);
        return VELO_AGAIN;
    }
    redisSetTimeout(c, cn->timeout);
    redisEnableKeepAlive(c);
    if (cn->url.pass != NULL) {
        const char *argv[3] = {"AUTH", cn->url.user, cn->url.pass};
        redisReply *r =
            cn->url.user != NULL
                ? redis_command(c, 3, argv)
                : redis_command(c, 2, (const char *[]){"AUTH", cn->url.pass});
        if (r == NULL) {
            snprintf(why, whylen, "%s", c->errstr);
            redisFree(c);
            return VELO_AGAIN;
        }
        if (r->type == REDIS_REPLY_ERROR) {
            /* Redis' own text names no secret ("WRONGPASS invalid
             * username-password pair", "ERR AUTH <password> called without
             * any password configured"...) but quote only its first word
             * plus a fixed explanation to be sure. */
            char code[32];
            snprintf(code, sizeof(code), "%.*s", (int)strcspn(r->str, " "),
                     r->str);
            snprintf(why, whylen,
                     "authentication failed (%s): check the "
                     "password in the URL or 'password'",
                     code);
            freeReplyObject(r);
            redisFree(c);
            return REDIS_FATAL;
        }
        freeReplyObject(r);
    }
    redisReply *r = redis_command(c, 1, (const char *[]){"PING"});
    if (r == NULL) {
        snprintf(why, whylen, "%s", c->errstr);
        redisFree(c);
        return VELO_AGAIN;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        int noauth = strncmp(r->str, "NOAUTH", 6) == 0;
        snprintf(why, whylen, "%s%s",
                 noauth ? "the server requires a "
                          "password: put it in the URL "
                          "(redis://:password@host) or "
                          "'password' ("
                        : "",
                 noauth ? "NOAUTH)" : r->str);
        freeReplyObject(r);
        redisFree(c);
        return REDIS_FATAL;
    }
    freeReplyObject(r);
    if (cn->db != 0) {
        char db[24];
        snprintf(db, sizeof(db), "%" PRId64, cn->db);
        r = redis_command(c, 2, (const char *[]){"SELECT", db});
        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            snprintf(why, whylen, "SELECT %s: %s", db,
                     r != NULL ? r->str : c->errstr);
            int rc = r != NULL ? REDIS_FATAL : VELO_AGAIN;
            freeReplyObject(r);
            redisFree(c);
            return rc;
        }
        freeReplyObject(r);
    }
    cn->c = c;
    return VELO_OK;
}

/* The connection failed: close it and retry after a backoff. */
static void redis_drop(struct redis_conn *cn, const char *why)
{
    if (!cn->down) {
        velo_plg_warn(cn->ins,
                      "connection to %s lost: %s; reconnecting "
                      "with backoff",
                      cn->url.redacted, why);
        redis_metric_add(cn, cn->m_errors, 1);
    }
    if (cn->c != NULL) {
        redisFree(cn->c);
        cn->c = NULL;
    }
    cn->down = 1;
    cn->backoff_ms = REDIS_BACKOFF_MIN_MS;
    cn->next_try_ms = redis_now_ms() + cn->backoff_ms;
}

/*
 * Have a connection, reconnecting when due. @return VELO_OK (connected;
 * *fresh = 1 when it was just reopened), VELO_AGAIN (not yet), VELO_ERR
 * (credentials refused: logged).
 */
static int redis_ensure(struct redis_conn *cn, int *fresh)
{
    *fresh = 0;
    if (cn->c != NULL) {
        return VELO_OK;
    }
    int64_t now = redis_now_ms();
    if (now < cn->next_try_ms) {
        return VELO_AGAIN;
    }
    char why[256];
    int rc = redis_open(cn, why, sizeof(why));
    if (rc == REDIS_FATAL) {
        velo_plg_error(cn->ins, "%s: %s", cn->url.redacted, why);
        return VELO_ERR;
    }
    if (rc != VELO_OK) {
        cn->attempts++;
        if (cn->attempts == 1 || cn->attempts % 10 == 0) {
            velo_plg_warn(cn->ins,
                          "cannot reconnect to %s: %s (attempt %d; "
                          "retrying)",
                          cn->url.redacted, why, cn->attempts);
        }
        cn->backoff_ms *= 2;
        if (cn->backoff_ms > REDIS_BACKOFF_MAX_MS) {
            cn->backoff_ms = REDIS_BACKOFF_MAX_MS;
        }
        cn->next_try_ms = now + cn->backoff_ms;
        return VELO_AGAIN;
    }
    velo_plg_info(cn->ins, "reconnected to %s", cn->url.redacted);
    redis_metric_add(cn, cn->m_reconnects, 1);
    cn->down = 0;
    cn->attempts = 0;
    *fresh = 1;
    return VELO_OK;
}

/*
 * The common part of create: the URL (the URI, else 'url'), the password
 * property, the timeout, the first connection (failing here is an error:
 * the user asked for a server that is not there). @return VELO_OK/ERR.
 */
static int redis_conn_init(struct redis_conn *cn, struct velo_instance *ins,
                           const struct redis_conf *conf,
                           const struct velo_connector_ctx *ctx,
                           const char *role)
{
    memset(cn, 0, sizeof(*cn));
    cn->ins = ins;
    const char *url = ctx->uri != NULL ? ctx->uri : conf->url;
    if (!redis_set(url)) {
        velo_plg_error(ins,
                       "%s '%s': no server given: write FROM "
                       "redis://host:6379/key or set '%s.url'",
                       role, ctx->name, ctx->name);
        return VELO_ERR;
    }
    char err[256];
    if (redis_url_parse(url, &cn->url, err, sizeof(err)) != VELO_OK) {
        /* The URL may hold a password: show only its scheme and host. */
        velo_plg_error(ins, "%s '%s': bad Redis URL: %s", role, ctx->name, err);
        return VELO_ERR;
    }
    if (redis_set(conf->password)) {
        if (cn->url.pass != NULL) {
            memset(cn->url.pass, 0, strlen(cn->url.pass));
            free(cn->url.pass);
        }
        cn->url.pass = strdup(conf->password);
    }
    if (conf->db < 0 || conf->db > 1000000) {
        velo_plg_error(ins, "%s: db must be a database number, not %" PRId64,
                       cn->url.redacted, conf->db);
        return VELO_ERR;
    }
    cn->db = conf->db;
    int64_t t = conf->connect_timeout_ms > 0 ? conf->connect_timeout_ms : 2000;
    cn->timeout.tv_sec = (time_t)(t / 1000);
    cn->timeout.tv_usec = (suseconds_t)((t % 1000) * 1000);
    cn->backoff_ms = REDIS_BACKOFF_MIN_MS;
    if (VELO_HOST_HAS(ins->host, metric_counter)) {
        char labels[256];
        snprintf(labels, sizeof(labels), "connector=redis,%s=%s", role,
                 ctx->name);
        cn->m_reconnects = ins->host->metric_counter(
            "velo_connector_reconnects_total", "reconnections", labels);
        cn->m_errors =
            ins->host->metric_counter("velo_connector_errors_total",
                                      "connection and command errors", labels);
    }
    int rc = redis_open(cn, err, sizeof(err));
    if (rc != VELO_OK) {
        velo_plg_error(ins, "cannot connect to %s: %s%s", cn->url.redacted, err,
                       rc == REDIS_FATAL ? ""
                                         : " (is redis-server running "
                                           "there?)");
        return VELO_ERR;
    }
    return VELO_OK;
}

static void redis_conn_fini(struct redis_conn *cn)
{
    if (cn->c != NULL) {
        redisFree(cn->c);
        cn->c = NULL;
    }
    redis_url_free(&cn->url);
}

/* ---- Source ------------------------------------------------------------- */

struct redis_ack {
    char id[REDIS_ID_MAX];
};

struct redis_src {
    struct redis_conn cn;
    char *key, *group, *consumer, *field, *start;
    int pubsub, pattern;
    size_t count;
    int reading_new;           /* 0: own pending entries first, 1: ">" */
    char cursor[REDIS_ID_MAX]; /* last pending ID handed over */
    redisReply *last;          /* payloads of the last batch point here */
    redisReply **msgs;         /* pub/sub: the last batch's messages */
    size_t nmsgs, cap_msgs;
    struct redis_buf json; /* entries spread in fields, as JSON */
    size_t *json_off;      /* per payload: offset in json, or SIZE_MAX */
    size_t cap_off;
    struct redis_ack *acks; /* handed over, not yet XACKed, in order */
    size_t nacks, cap_acks;
    uint64_t acked; /* sequence number of acks[0] */
    struct velo_metric *m_in, *m_bytes;
};

static void redis_src_free_batch(struct redis_src *s)
{
    if (s->last != NULL) {
        freeReplyObject(s->last);
        s->last = NULL;
    }
    for (size_t i = 0; i < s->nmsgs; i++) {
        freeReplyObject(s->msgs[i]);
    }
    s->nmsgs = 0;
    s->json.len = 0;
}

/* Create the consumer group unless it exists (BUSYGROUP). @return VELO_OK,
 * VELO_AGAIN (connection failed: dropped), VELO_ERR (logged). */
static int redis_src_group(struct redis_src *s)
{
    const char *argv[] = {"XGROUP", "CREATE", s->key,
                          s->group, s->start, "MKSTREAM"};
    redisReply *r = redis_command(s->cn.c, 6, argv);
    if (r == NULL) {
        redis_drop(&s->cn, s->cn.c->errstr);
        return VELO_AGAIN;
    }
    int rc = VELO_OK;
    if (r->type == REDIS_REPLY_ERROR) {
        if (strncmp(r->str, "BUSYGROUP", 9) != 0) {
            velo_plg_error(s->cn.ins,
                           "%s: cannot create consumer group "
                           "'%s' on '%s': %s",
                           s->cn.url.redacted, s->group, s->key, r->str);
            rc = VELO_ERR;
        }
    } else {
        velo_plg_info(s->cn.ins,
                      "created consumer group '%s' on stream "
                      "'%s' starting at %s",
                      s->group, s->key, s->start);
    }
    freeReplyObject(r);
    return rc;
}

static int redis_src_subscribe(struct redis_src *s)
{
    const char *argv[] = {s->pattern ? "PSUBSCRIBE" : "SUBSCRIBE", s->key};
    redisReply *r = redis_command(s->cn.c, 2, argv);
    if (r == NULL) {
        redis_drop(&s->cn, s->cn.c->errstr);
        return VELO_AGAIN;
    }
    int rc = VELO_OK;
    if (r->type == REDIS_REPLY_ERROR) {
        velo_plg_error(s->cn.ins, "%s: %s %s: %s", s->cn.url.redacted, argv[0],
                       s->key, r->str);
        rc = VELO_ERR;
    }
    freeReplyObject(r);
    return rc;
}

static int redis_src_ack_push(struct redis_src *s, const char *id)
{
    if (s->nacks == s->cap_acks) {
        size_t cap = s->cap_acks ? s->cap_acks * 2 : 256;
        struct redis_ack *n = realloc(s->acks, cap * sizeof(*n));
        if (n == NULL) {
            return VELO_ERR;
        }
        s->acks = n;
        s->cap_acks = cap;
    }
    snprintf(s->acks[s->nacks++].id, REDIS_ID_MAX, "%s", id);
    return VELO_OK;
}

static void redis_source_destroy(struct velo_instance *ins);

static int redis_source_open(struct velo_instance *ins, const void *config,
                             const struct velo_connector_ctx *ctx,
                             struct velo_source_info *info)
{
    const struct redis_conf *conf = config;
    struct redis_src *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return VELO_ERR;
    }
    ins->context = s;
    if (strcmp(conf->mode, "stream") == 0) {
        s->pubsub = 0;
    } else if (strcmp(conf->mode, "pubsub") == 0) {
        s->pubsub = 1;
    } else {
        velo_plg_error(ins,
                       "source '%s': mode '%s' is not a source mode "
                       "(write stream or pubsub)",
                       ctx->name, conf->mode);
        return VELO_ERR;
    }
    if (redis_conn_init(&s->cn, ins, conf, ctx, "source") != VELO_OK) {
        return VELO_ERR;
    }
    const char *key = redis_set(conf->key) ? conf->key : s->cn.url.path;
    if (!redis_set(key)) {
        velo_plg_error(ins,
                       "%s: which %s? Put it in the URL "
                       "(redis://host:port/<key>) or set '%s.key'",
                       s->cn.url.redacted, s->pubsub ? "channel" : "stream",
                       ctx->name);
        return VELO_ERR;
    }
    s->key = strdup(key);
    s->field = strdup(redis_set(conf->field) ? conf->field : "data");
    char buf[300];
    if (redis_set(conf->group)) {
        snprintf(buf, sizeof(buf), "%s", conf->group);
    } else {
        /* A source named by its URI has that URI as its name: the stream
         * names the group then. */
        snprintf(buf, sizeof(buf), "velo-%s",
                 strstr(ctx->name, "://") != NULL ? s->key : ctx->name);
    }
    s->group = strdup(buf);
    if (redis_set(conf->consumer)) {
        snprintf(buf, sizeof(buf), "%s", conf->consumer);
    } else {
        char host[256] = "velo";
        gethostname(host, sizeof(host) - 1);
        host[sizeof(host) - 1] = '\0';
        snprintf(buf, sizeof(buf), "%s-%ld", host, (long)getpid());
    }
    s->consumer = strdup(buf);
    s->start = strdup(conf->start);
    if (s->key == NULL || s->field == NULL || s->group == NULL ||
        s->consumer == NULL || s->start == NULL) {
        velo_plg_error(ins, "out of memory");
        return VELO_ERR;
    }
    if (strcmp(s->start, "0") != 0 && strcmp(s->start, "$") != 0 &&
        strchr(s->start, '-') == NULL) {
        velo_plg_error(ins,
                       "%s: start '%s': write 0 (the whole stream), $ "
                       "(only new entries) or an entry ID",
                       s->cn.url.redacted, s->start);
        return VELO_ERR;
    }
    s->count = conf->count > 0 ? (size_t)conf->count : 64;
    snprintf(s->cursor, sizeof(s->cursor), "0");
    s->pattern = s->pubsub && strpbrk(s->key, "*?[") != NULL;
    int rc = s->pubsub ? redis_src_subscribe(s) : redis_src_group(s);
    if (rc != VELO_OK) {
        if (rc == VELO_AGAIN) {
            velo_plg_error(ins, "%s: the connection failed while setting up",
                           s->cn.url.redacted);
        }
        return VELO_ERR;
    }
    if (VELO_HOST_HAS(ins->host, metric_counter)) {
        char labels[256];
        snprintf(labels, sizeof(labels), "connector=redis,source=%s",
                 ctx->name);
        s->m_in = ins->host->metric_counter("velo_connector_records_in_total",
                                            "records read", labels);
        s->m_bytes = ins->host->metric_counter("velo_connector_bytes_in_total",
                                               "payload bytes read", labels);
    }
    if (s->pubsub) {
        velo_plg_info(ins,
                      "subscribed to %s '%s' on %s (at most once: "
                      "messages published while disconnected are "
                      "lost)",
                      s->pattern ? "pattern" : "channel", s->key,
                      s->cn.url.redacted);
    } else {
        velo_plg_info(ins,
                      "reading stream '%s' on %s as consumer '%s' of "
                      "group '%s'",
                      s->key, s->cn.url.redacted, s->consumer, s->group);
    }
    info->bounded = 0;
    info->byte_stream = 0;
    info->size_bytes = -1;
    return VELO_OK;
}

/* The engine calls destroy only for a source it opened: a failed create
 * frees what it made itself. */
static int redis_source_create(struct velo_instance *ins, const void *config,
                               const struct velo_connector_ctx *ctx,
                               struct velo_source_info *info)
{
    ins->context = NULL;
    int rc = redis_source_open(ins, config, ctx, info);
    if (rc != VELO_OK) {
        redis_source_destroy(ins);
    }
    return rc;
}

/* Entry ID "ms-seq" into meta. */
static void redis_src_meta(const char *id, struct velo_record_meta *m)
{
    char *e;
    unsigned long long ms = strtoull(id, &e, 10);
    unsigned long long seq = *e == '-' ? strtoull(e + 1, NULL, 10) : 0;
    m->timestamp_us = ms <= (unsigned long long)(INT64_MAX / 1000)
                          ? (int64_t)ms * 1000
                          : INT64_MIN;
    m->partition = -1;
    m->offset = seq <= (unsigned long long)INT64_MAX ? (int64_t)seq : -1;
    m->key.ptr = NULL;
    m->key.len = 0;
}

/* An entry's field list: one payload. @return VELO_OK or VELO_ERR. */
static int redis_src_entry(struct redis_src *s, const redisReply *fields,
                           struct velo_str *payload, size_t *json_off)
{
    if (fields->elements == 2 &&
        fields->element[0]->type == REDIS_REPLY_STRING &&
        fields->element[0]->len == strlen(s->field) &&
        memcmp(fields->element[0]->str, s->field, fields->element[0]->len) ==
            0) {
        payload->ptr = fields->element[1]->str;
        payload->len = fields->element[1]->len;
        *json_off = SIZE_MAX;
        return VELO_OK;
    }
    /* Several fields: one JSON object, so format json reads them. */
    *json_off = s->json.len;
    size_t start = s->json.len;
    if (redis_buf_add(&s->json, "{", 1) != VELO_OK) {
        return VELO_ERR;
    }
    for (size_t f = 0; f + 1 < fields->elements; f += 2) {
        const redisReply *k = fields->element[f];
        const redisReply *v = fields->element[f + 1];
        if (f > 0 && redis_buf_add(&s->json, ",", 1) != VELO_OK) {
            return VELO_ERR;
        }
        if (redis_buf_json_str(&s->json, k->str, k->len) != VELO_OK ||
            redis_buf_add(&s->json, ":", 1) != VELO_OK) {
            return VELO_ERR;
        }
        int rc = redis_is_json_number(v->str, v->len)
                     ? redis_buf_add(&s->json, v->str, v->len)
                     : redis_buf_json_str(&s->json, v->str, v->len);
        if (rc != VELO_OK) {
            return VELO_ERR;
        }
    }
    if (redis_buf_add(&s->json, "}", 1) != VELO_OK) {
        return VELO_ERR;
    }
    payload->len = s->json.len - start;
    payload->ptr = NULL; /* set once the buffer stops moving */
    return VELO_OK;
}

static int redis_src_read_stream(struct redis_src *s,
                                 struct velo_source_batch *out)
{
    size_t want = out->capacity < s->count ? out->capacity : s->count;
    char count[24];
    snprintf(count, sizeof(count), "%zu", want);
    const char *argv[] = {
        "XREADGROUP", "GROUP", s->group,
        s->consumer,  "COUNT", count,
        "STREAMS",    s->key,  s->reading_new ? ">" : s->cursor};
    redisReply *r = redis_command(s->cn.c, 9, argv);
    if (r == NULL) {
        redis_drop(&s->cn, s->cn.c->errstr);
        return VELO_AGAIN;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        if (strncmp(r->str, "NOGROUP", 7) == 0) {
            /* The stream or group went away (deleted, or a server without
             * persistence restarted): make it again and go on. */
            velo_plg_warn(s->cn.ins,
                          "%s: group '%s' on '%s' is gone; "
                          "creating it again",
                          s->cn.url.redacted, s->group, s->key);
            freeReplyObject(r);
            s->reading_new = 0;
            snprintf(s->cursor, sizeof(s->cursor), "0");
            int rc = redis_src_group(s);
            return rc == VELO_ERR ? VELO_ERR : VELO_AGAIN;
        }
        velo_plg_error(s->cn.ins, "%s: XREADGROUP on '%s': %s",
                       s->cn.url.redacted, s->key, r->str);
        freeReplyObject(r);
        return VELO_ERR;
    }
    s->last = r;
    const redisReply *entries = NULL;
    if (r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
        r->element[0]->type == REDIS_REPLY_ARRAY &&
        r->element[0]->elements == 2) {
        entries = r->element[0]->element[1];
    }
    if (entries == NULL || entries->type != REDIS_REPLY_ARRAY ||
        entries->elements == 0) {
        if (!s->reading_new) {
            /* Our pending entries are all handed over: now new ones. */
            freeReplyObject(r);
            s->last = NULL;
            s->reading_new = 1;
            return redis_src_read_stream(s, out);
        }
        return VELO_AGAIN;
    }
    size_t n = 0;
    for (size_t i = 0; i < entries->elements; i++) {
        const redisReply *e = entries->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
            e->element[0]->type != REDIS_REPLY_STRING) {
            continue;
        }
        const char *id = e->element[0]->str;
        if (!s->reading_new) {
            snprintf(s->cursor, sizeof(s->cursor), "%s", id);
        }
        if (redis_src_ack_push(s, id) != VELO_OK) {
            return VELO_ERR;
        }
        const redisReply *fields = e->element[1];
        if (fields->type != REDIS_REPLY_ARRAY || fields->elements < 2) {
            continue; /* deleted since delivery: acknowledged, no record */
        }
        if (redis_src_entry(s, fields, &out->payload[n], &s->json_off[n]) !=
            VELO_OK) {
            return VELO_ERR;
        }
        if (out->meta != NULL) {
            redis_src_meta(id, &out->meta[n]);
        }
        n++;
    }
    for (size_t i = 0; i < n; i++) {
        if (s->json_off[i] != SIZE_MAX) {
            out->payload[i].ptr = s->json.data + s->json_off[i];
        }
    }
    out->count = n;
    return VELO_OK;
}

static int redis_src_read_pubsub(struct redis_src *s,
                                 struct velo_source_batch *out)
{
    if (s->cap_msgs < out->capacity) {
        redisReply **m = realloc(s->msgs, out->capacity * sizeof(*m));
        if (m == NULL) {
            return VELO_ERR;
        }
        s->msgs = m;
        s->cap_msgs = out->capacity;
    }
    int polled = 0;
    while (s->nmsgs < out->capacity) {
        void *reply = NULL;
        if (redisGetReplyFromReader(s->cn.c, &reply) != REDIS_OK) {
            redis_drop(&s->cn, s->cn.c->errstr);
            return VELO_AGAIN;
        }
        if (reply == NULL) {
            if (polled) {
                break;
            }
            /* Read only what is already there: never wait. */
            struct pollfd pfd = {.fd = s->cn.c->fd, .events = POLLIN};
            if (poll(&pfd, 1, 0) <= 0) {
                break;
            }
            polled = 1;
            if (redisBufferRead(s->cn.c) != REDIS_OK) {
                redis_drop(&s->cn, s->cn.c->errstr[0] != '\0'
                                       ? s->cn.c->errstr
                                       : "connection closed");
                return VELO_AGAIN;
            }
            continue;
        }
        redisReply *r = reply;
        size_t base = s->pattern ? 1 : 0;
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 + base &&
            r->element[0]->type == REDIS_REPLY_STRING &&
            strcmp(r->element[0]->str, s->pattern ? "pmessage" : "message") ==
                0) {
            size_t n = s->nmsgs;
            s->msgs[s->nmsgs++] = r;
            out->payload[n].ptr = r->element[2 + base]->str;
            out->payload[n].len = r->element[2 + base]->len;
            if (out->meta != NULL) {
                out->meta[n].timestamp_us = INT64_MIN;
                out->meta[n].partition = -1;
                out->meta[n].offset = -1;
                out->meta[n].key.ptr = r->element[1 + base]->str;
                out->meta[n].key.len = r->element[1 + base]->len;
            }
        } else {
            freeReplyObject(r); /* subscribe confirmations and the like */
        }
    }
    out->count = s->nmsgs;
    return s->nmsgs > 0 ? VELO_OK : VELO_AGAIN;
}

static int redis_source_read(struct velo_instance *ins,
                             struct velo_source_batch *out)
{
    struct redis_src *s = ins->context;
    redis_src_free_batch(s);
    out->count = 0;
    int fresh = 0;
    int rc = redis_ensure(&s->cn, &fresh);
    if (rc != VELO_OK) {
        return rc;
    }
    if (fresh) {
        rc = s->pubsub ? redis_src_subscribe(s) : redis_src_group(s);
        if (rc != VELO_OK) {
            return rc;
        }
    }
    if (s->pubsub) {
        rc = redis_src_read_pubsub(s, out);
    } else {
        if (s->cap_off < out->capacity) {
            size_t *o =
                realloc(s->json_off, out->capacity * sizeof(*s->json_off));
            if (o == NULL) {
                return VELO_ERR;
            }
            s->json_off = o;
            s->cap_off = out->capacity;
        }
        rc = redis_src_read_stream(s, out);
    }
    if (rc == VELO_OK && out->count > 0) {
        size_t bytes = 0;
        for (size_t i = 0; i < out->count; i++) {
            bytes += out->payload[i].len;
        }
        redis_metric_add(&s->cn, s->m_in, (double)out->count);
        redis_metric_add(&s->cn, s->m_bytes, (double)bytes);
    }
    return rc;
}

/* The position is the number of entries handed over so far (8 bytes, little
 * endian): commit acknowledges that many from the start of the queue. */
static int redis_source_position(struct velo_instance *ins, uint8_t *buf,
                                 size_t cap)
{
    struct redis_src *s = ins->context;
    if (cap < 8) {
        return VELO_ERR;
    }
    uint64_t v = s->acked + s->nacks;
    for (int i = 0; i < 8; i++) {
        buf[i] = (uint8_t)(v >> (8 * i));
    }
    return 8;
}

static int redis_source_commit(struct velo_instance *ins, const uint8_t *pos,
                               size_t len)
{
    struct redis_src *s = ins->context;
    if (s->pubsub) {
        return VELO_OK; /* nothing to acknowledge */
    }
    if (len != 8) {
        return VELO_ERR;
    }
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v |= (uint64_t)pos[i] << (8 * i);
    }
    if (v <= s->acked) {
        return VELO_OK;
    }
    size_t k = v - s->acked < s->nacks ? (size_t)(v - s->acked) : s->nacks;
    int fresh;
    if (redis_ensure(&s->cn, &fresh) != VELO_OK) {
        return VELO_ERR; /* kept: the next commit acknowledges them */
    }
    const char *argv[3 + REDIS_ACK_CHUNK];
    size_t lens[3 + REDIS_ACK_CHUNK];
    argv[0] = "XACK";
    argv[1] = s->key;
    argv[2] = s->group;
    for (int i = 0; i < 3; i++) {
        lens[i] = strlen(argv[i]);
    }
    size_t done = 0;
    while (done < k) {
        size_t m = k - done < REDIS_ACK_CHUNK ? k - done : REDIS_ACK_CHUNK;
        for (size_t i = 0; i < m; i++) {
            argv[3 + i] = s->acks[done + i].id;
            lens[3 + i] = strlen(argv[3 + i]);
        }
        redisReply *r = redisCommandArgv(s->cn.c, (int)(3 + m), argv, lens);
        if (r == NULL) {
            redis_drop(&s->cn, s->cn.c->errstr);
            break;
        }
        int bad = r->type == REDIS_REPLY_ERROR;
        if (bad) {
            velo_plg_warn(ins, "%s: XACK on '%s': %s", s->cn.url.redacted,
                          s->key, r->str);
        }
        freeReplyObject(r);
        if (bad) {
            break;
        }
        done += m;
    }
    memmove(s->acks, s->acks + done, (s->nacks - done) * sizeof(*s->acks));
    s->nacks -= done;
    s->acked += done;
    return done == k ? VELO_OK : VELO_ERR;
}

static void redis_source_destroy(struct velo_instance *ins)
{
    struct redis_src *s = ins->context;
    if (s == NULL) {
        return;
    }
    redis_src_free_batch(s);
    redis_conn_fini(&s->cn);
    free(s->msgs);
    free(s->json.data);
    free(s->json_off);
    free(s->acks);
    free(s->key);
    free(s->group);
    free(s->consumer);
    free(s->field);
    free(s->start);
    free(s);
    ins->context = NULL;
}

/* ---- Sink --------------------------------------------------------------- */

enum redis_sink_mode {
    REDIS_SINK_STREAM,
    REDIS_SINK_HASH,
    REDIS_SINK_STRING,
    REDIS_SINK_PUBSUB
};

struct redis_cmd {
    char *text; /* the command in protocol form, for a resend */
    int len;
};

struct redis_sink {
    struct redis_conn cn;
    int mode;
    char *key;        /* stream or channel */
    char *key_column; /* hash/string */
    char *prefix;
    char *field; /* stream: the one field holding the row, or NULL */
    int64_t maxlen, ttl_ms;
    size_t pipeline;
    struct redis_cmd *q; /* sent, reply not read yet (oldest first) */
    size_t qhead, qlen, qcap;
    int failed;
    /* per-row argument building */
    struct redis_buf arena;
    struct redis_buf keybuf;
    size_t *off, *len;
    const char **argv;
    size_t *argl;
    size_t nargs, cap_args;
    struct velo_metric *m_out, *m_bytes;
};

static const char *const redis_sink_modes[] = {"stream", "hash", "string",
                                               "pubsub", NULL};

static int redis_sink_open(struct velo_instance *ins, const void *config,
                           const struct velo_connector_ctx *ctx)
{
    const struct redis_conf *conf = config;
    struct redis_sink *k = calloc(1, sizeof(*k));
    if (k == NULL) {
        return VELO_ERR;
    }
    ins->context = k;
    k->mode = -1;
    for (int i = 0; redis_sink_modes[i] != NULL; i++) {
        if (strcmp(conf->mode, redis_sink_modes[i]) == 0) {
            k->mode = i;
        }
    }
    if (k->mode < 0) {
        velo_plg_error(ins,
                       "sink '%s': unknown mode '%s' (write stream, "
                       "hash, string or pubsub)",
                       ctx->name, conf->mode);
        return VELO_ERR;
    }
    if (redis_conn_init(&k->cn, ins, conf, ctx, "sink") != VELO_OK) {
        return VELO_ERR;
    }
    if (k->mode == REDIS_SINK_HASH || k->mode == REDIS_SINK_STRING) {
        /* The key comes from a column: 'key.column', or 'key' as the issue
         * spells it ("the column whose value is the Redis key"). */
        const char *col =
            redis_set(conf->key_column) ? conf->key_column : conf->key;
        if (!redis_set(col)) {
            velo_plg_error(ins,
                           "%s: mode %s needs the column that names "
                           "each key: set '%s.key.column'",
                           k->cn.url.redacted, conf->mode, ctx->name);
            return VELO_ERR;
        }
        k->key_column = strdup(col);
        k->prefix =
            strdup(redis_set(conf->key_prefix)
                       ? conf->key_prefix
                       : (k->cn.url.path != NULL ? k->cn.url.path : ""));
        if (k->key_column == NULL || k->prefix == NULL) {
            return VELO_ERR;
        }
    } else {
        const char *key = redis_set(conf->key) ? conf->key : k->cn.url.path;
        if (!redis_set(key)) {
            velo_plg_error(ins,
                           "%s: which %s? Put it in the URL "
                           "(redis://host:port/<key>) or set '%s.key'",
                           k->cn.url.redacted,
                           k->mode == REDIS_SINK_PUBSUB ? "channel" : "stream",
                           ctx->name);
            return VELO_ERR;
        }
        k->key = strdup(key);
        if (k->key == NULL) {
            return VELO_ERR;
        }
    }
    if (redis_set(conf->field)) {
        k->field = strdup(conf->field);
    }
    if (conf->maxlen < 0 || conf->ttl_ms < 0) {
        velo_plg_error(ins, "%s: maxlen and ttl cannot be negative",
                       k->cn.url.redacted);
        return VELO_ERR;
    }
    k->maxlen = conf->maxlen;
    k->ttl_ms = conf->ttl_ms;
    k->pipeline = conf->pipeline > 0 ? (size_t)conf->pipeline : 1000;
    if (VELO_HOST_HAS(ins->host, metric_counter)) {
        char labels[256];
        snprintf(labels, sizeof(labels), "connector=redis,sink=%s", ctx->name);
        k->m_out = ins->host->metric_counter("velo_connector_records_out_total",
                                             "records written", labels);
        k->m_bytes = ins->host->metric_counter("velo_connector_bytes_out_total",
                                               "payload bytes written", labels);
    }
    velo_plg_info(ins, "writing %s mode to %s", conf->mode, k->cn.url.redacted);
    return VELO_OK;
}

static void redis_sink_destroy(struct velo_instance *ins);

static int redis_sink_create(struct velo_instance *ins, const void *config,
                             const struct velo_connector_ctx *ctx)
{
    ins->context = NULL;
    int rc = redis_sink_open(ins, config, ctx);
    if (rc != VELO_OK) {
        redis_sink_destroy(ins);
    }
    return rc;
}

static int redis_arg(struct redis_sink *k, const char *s, size_t n)
{
    if (k->nargs == k->cap_args) {
        size_t cap = k->cap_args ? k->cap_args * 2 : 32;
        size_t *o = realloc(k->off, cap * sizeof(*o));
        if (o != NULL) {
            k->off = o;
        }
        size_t *l = realloc(k->len, cap * sizeof(*l));
        if (l != NULL) {
            k->len = l;
        }
        const char **a = realloc(k->argv, cap * sizeof(*a));
        if (a != NULL) {
            k->argv = a;
        }
        size_t *al = realloc(k->argl, cap * sizeof(*al));
        if (al != NULL) {
            k->argl = al;
        }
        if (o == NULL || l == NULL || a == NULL || al == NULL) {
            return VELO_ERR;
        }
        k->cap_args = cap;
    }
    k->off[k->nargs] = k->arena.len;
    k->len[k->nargs] = n;
    k->nargs++;
    return redis_buf_add(&k->arena, s, n);
}

static int redis_arg_str(struct redis_sink *k, const char *s)
{
    return redis_arg(k, s, strlen(s));
}

/* A JSON value as Redis text: strings bare, other values as JSON. @return
 * VELO_OK, VELO_DECLINED for null (left out), VELO_ERR. */
static int redis_arg_value(struct redis_sink *k, const json_t *v)
{
    if (json_is_null(v)) {
        return VELO_DECLINED;
    }
    if (json_is_string(v)) {
        return redis_arg(k, json_string_value(v), json_string_length(v));
    }
    char *t =
        json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT | JSON_REAL_PRECISION(17));
    if (t == NULL) {
        return VELO_ERR;
    }
    int rc = redis_arg_str(k, t);
    free(t);
    return rc;
}

/* The fields of a JSON object row as field value pairs, minus `skip`. */
static int redis_arg_fields(struct redis_sink *k, json_t *obj, const char *skip,
                            size_t *pairs)
{
    const char *name;
    json_t *v;
    *pairs = 0;
    json_object_foreach(obj, name, v)
    {
        if (skip != NULL && strcmp(name, skip) == 0) {
            continue;
        }
        if (json_is_null(v)) {
            continue;
        }
        if (redis_arg_str(k, name) != VELO_OK ||
            redis_arg_value(k, v) != VELO_OK) {
            return VELO_ERR;
        }
        (*pairs)++;
    }
    return VELO_OK;
}

/* The per-row key: prefix + value of the key column. */
static int redis_arg_key(struct redis_sink *k, json_t *obj, char *why,
                         size_t whylen)
{
    json_t *v = json_object_get(obj, k->key_column);
    if (v == NULL || json_is_null(v)) {
        snprintf(why, whylen, "the row has no value in key column '%s'",
                 k->key_column);
        return VELO_ERR;
    }
    k->keybuf.len = 0;
    if (redis_buf_add(&k->keybuf, k->prefix, strlen(k->prefix)) != VELO_OK) {
        return VELO_ERR;
    }
    if (json_is_string(v)) {
        if (redis_buf_add(&k->keybuf, json_string_value(v),
                          json_string_length(v)) != VELO_OK) {
            return VELO_ERR;
        }
    } else {
        char *t = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        int rc = t != NULL ? redis_buf_add(&k->keybuf, t, strlen(t)) : VELO_ERR;
        free(t);
        if (rc != VELO_OK) {
            return VELO_ERR;
        }
    }
    return redis_arg(k, k->keybuf.data, k->keybuf.len);
}

static int redis_sink_queue(struct redis_sink *k, char *text, int len)
{
    if (k->qhead > 0 && k->qhead + k->qlen == k->qcap) {
        memmove(k->q, k->q + k->qhead, k->qlen * sizeof(*k->q));
        k->qhead = 0;
    }
    if (k->qhead + k->qlen == k->qcap) {
        size_t cap = k->qcap ? k->qcap * 2 : 256;
        struct redis_cmd *n = realloc(k->q, cap * sizeof(*n));
        if (n == NULL) {
            return VELO_ERR;
        }
        k->q = n;
        k->qcap = cap;
    }
    k->q[k->qhead + k->qlen].text = text;
    k->q[k->qhead + k->qlen].len = len;
    k->qlen++;
    return VELO_OK;
}

/* One row into one command, queued and appended to the output buffer.
 * @return VELO_OK or VELO_ERR (logged). */
static int redis_sink_row(struct redis_sink *k, const struct velo_str *rec,
                          const struct velo_record_meta *meta)
{
    k->nargs = 0;
    k->arena.len = 0;
    json_t *obj = NULL;
    char why[256] = "";
    int rc = VELO_OK;
    size_t pairs = 0;
    if (k->mode == REDIS_SINK_HASH || k->mode == REDIS_SINK_STRING ||
        (k->mode == REDIS_SINK_STREAM && k->field == NULL)) {
        json_error_t jerr;
        obj = json_loadb(rec->ptr, rec->len, JSON_DECODE_ANY, &jerr);
        if (obj != NULL && !json_is_object(obj)) {
            json_decref(obj);
            obj = NULL;
        }
    }
    switch (k->mode) {
    case REDIS_SINK_STREAM:
        rc = redis_arg_str(k, "XADD");
        rc |= redis_arg_str(k, k->key);
        if (k->maxlen > 0) {
            char n[24];
            snprintf(n, sizeof(n), "%" PRId64, k->maxlen);
            rc |= redis_arg_str(k, "MAXLEN");
            rc |= redis_arg_str(k, "~");
            rc |= redis_arg_str(k, n);
        }
        rc |= redis_arg_str(k, "*");
        if (obj != NULL) {
            rc |= redis_arg_fields(k, obj, NULL, &pairs);
        }
        if (obj == NULL || pairs == 0) {
            rc |= redis_arg_str(k, k->field != NULL ? k->field : "data");
            rc |= redis_arg(k, rec->ptr, rec->len);
        }
        break;
    case REDIS_SINK_HASH:
        if (obj == NULL) {
            snprintf(why, sizeof(why),
                     "a hash sink needs each row as a "
                     "JSON object: set 'format' = 'json'");
            rc = VELO_ERR;
            break;
        }
        rc = redis_arg_str(k, "HSET");
        if (rc == VELO_OK) {
            rc = redis_arg_key(k, obj, why, sizeof(why));
        }
        if (rc == VELO_OK) {
            rc = redis_arg_fields(k, obj, k->key_column, &pairs);
        }
        if (rc == VELO_OK && pairs == 0) {
            json_decref(obj);
            return VELO_OK; /* only the key: nothing to store */
        }
        break;
    case REDIS_SINK_STRING:
        rc = redis_arg_str(k, "SET");
        if (obj == NULL && meta != NULL && meta->key.ptr != NULL) {
            rc |= redis_arg(k, meta->key.ptr, meta->key.len);
        } else if (obj == NULL) {
            snprintf(why, sizeof(why),
                     "a string sink finds the key in the "
                     "row's JSON: set 'format' = 'json'");
            rc = VELO_ERR;
            break;
        } else if (rc == VELO_OK) {
            rc = redis_arg_key(k, obj, why, sizeof(why));
        }
        rc |= redis_arg(k, rec->ptr, rec->len);
        if (k->ttl_ms > 0) {
            char n[24];
            snprintf(n, sizeof(n), "%" PRId64, k->ttl_ms);
            rc |= redis_arg_str(k, "PX");
            rc |= redis_arg_str(k, n);
        }
        break;
    default:
        rc = redis_arg_str(k, "PUBLISH");
        rc |= redis_arg_str(k, k->key);
        rc |= redis_arg(k, rec->ptr, rec->len);
        break;
    }
    json_decref(obj);
    if (rc != VELO_OK) {
        velo_plg_error(k->cn.ins, "%s: %s", k->cn.url.redacted,
                       why[0] != '\0' ? why : "out of memory");
        return VELO_ERR;
    }
    for (size_t i = 0; i < k->nargs; i++) {
        k->argv[i] = k->arena.data + k->off[i];
        k->argl[i] = k->len[i];
    }
    char *text = NULL;
    int len = redisFormatCommandArgv(&text, (int)k->nargs, k->argv, k->argl);
    if (len < 0 || redis_sink_queue(k, text, len) != VELO_OK) {
        free(text);
        return VELO_ERR;
    }
    if (k->cn.c != NULL &&
        redisAppendFormattedCommand(k->cn.c, text, (size_t)len) != REDIS_OK) {
        redis_drop(&k->cn, k->cn.c->errstr);
    }
    return VELO_OK;
}

/* The reply to the oldest queued command. @return VELO_OK or VELO_ERR (an
 * error reply: logged with the command, key and Redis' reason). */
static int redis_sink_take(struct redis_sink *k, redisReply *r)
{
    struct redis_cmd *cmd = &k->q[k->qhead];
    int bad = r->type == REDIS_REPLY_ERROR;
    if (bad) {
        /* Name the command and key from the protocol text: the third and
         * fifth lines of "*n\r\n$len\r\nCMD\r\n$len\r\nKEY". */
        const char *t = cmd->text;
        const char *lines[5] = {0};
        int nl = 0;
        for (const char *p = t; p < t + cmd->len && nl < 5; p++) {
            if (p == t || p[-1] == '\n') {
                lines[nl++] = p;
            }
        }
        int cl = lines[2] ? (int)strcspn(lines[2], "\r") : 0;
        int kl = lines[4] ? (int)strcspn(lines[4], "\r") : 0;
        velo_plg_error(k->cn.ins, "%s: %.*s %.*s failed: %s",
                       k->cn.url.redacted, cl, lines[2] ? lines[2] : "",
                       kl > 200 ? 200 : kl, lines[4] ? lines[4] : "", r->str);
        redis_metric_add(&k->cn, k->cn.m_errors, 1);
        k->failed = 1;
    } else {
        redis_metric_add(&k->cn, k->m_out, 1);
        redis_metric_add(&k->cn, k->m_bytes, (double)cmd->len);
    }
    freeReplyObject(r);
    free(cmd->text);
    k->qhead++;
    k->qlen--;
    if (k->qlen == 0) {
        k->qhead = 0;
    }
    return bad ? VELO_ERR : VELO_OK;
}

/*
 * Read the replies of everything queued, waiting for them. @return VELO_OK
 * (all confirmed), VELO_AGAIN (the connection dropped: the queue is resent
 * on reconnect), VELO_ERR (an error reply).
 */
static int redis_sink_replies(struct redis_sink *k)
{
    while (k->qlen > 0) {
        if (k->cn.c == NULL) {
            return VELO_AGAIN;
        }
        void *reply = NULL;
        if (redisGetReply(k->cn.c, &reply) != REDIS_OK || reply == NULL) {
            redis_drop(&k->cn, k->cn.c->errstr);
            return VELO_AGAIN;
        }
        if (redis_sink_take(k, reply) != VELO_OK) {
            return VELO_ERR;
        }
    }
    return VELO_OK;
}

/*
 * Send what is buffered and take the replies that have already come,
 * without waiting: rows reach Redis as they are written and few stay
 * unconfirmed (those are what a reconnect sends again). @return as above.
 */
static int redis_sink_pump(struct redis_sink *k)
{
    if (k->cn.c == NULL) {
        return VELO_AGAIN;
    }
    int done = 0;
    while (!done) {
        if (redisBufferWrite(k->cn.c, &done) != REDIS_OK) {
            redis_drop(&k->cn, k->cn.c->errstr);
            return VELO_AGAIN;
        }
    }
    for (;;) {
        void *reply = NULL;
        if (redisGetReplyFromReader(k->cn.c, &reply) != REDIS_OK) {
            redis_drop(&k->cn, k->cn.c->errstr);
            return VELO_AGAIN;
        }
        if (reply != NULL) {
            if (k->qlen == 0) {
                freeReplyObject(reply); /* cannot happen: one per command */
                continue;
            }
            if (redis_sink_take(k, reply) != VELO_OK) {
                return VELO_ERR;
            }
            continue;
        }
        struct pollfd pfd = {.fd = k->cn.c->fd, .events = POLLIN};
        if (k->qlen == 0 || poll(&pfd, 1, 0) <= 0) {
            return VELO_OK;
        }
        if (redisBufferRead(k->cn.c) != REDIS_OK) {
            redis_drop(&k->cn, k->cn.c->errstr[0] != '\0'
                                   ? k->cn.c->errstr
                                   : "connection closed");
            return VELO_AGAIN;
        }
    }
}

/* Connected, with everything unconfirmed sent again after a reconnect.
 * @return VELO_OK, VELO_AGAIN or VELO_ERR. */
static int redis_sink_ready(struct redis_sink *k)
{
    int fresh = 0;
    int rc = redis_ensure(&k->cn, &fresh);
    if (rc != VELO_OK || !fresh) {
        return rc;
    }
    if (k->qlen > 0) {
        /* At least once: these may have been applied before the drop. */
        velo_plg_warn(k->cn.ins, "resending %zu unconfirmed commands to %s",
                      k->qlen, k->cn.url.redacted);
    }
    for (size_t i = 0; i < k->qlen; i++) {
        struct redis_cmd *cmd = &k->q[k->qhead + i];
        if (redisAppendFormattedCommand(k->cn.c, cmd->text, (size_t)cmd->len) !=
            REDIS_OK) {
            redis_drop(&k->cn, k->cn.c->errstr);
            return VELO_AGAIN;
        }
    }
    return VELO_OK;
}

static int redis_sink_write(struct velo_instance *ins,
                            const struct velo_str *recs,
                            const struct velo_record_meta *meta, size_t n)
{
    struct redis_sink *k = ins->context;
    if (k->failed) {
        return VELO_ERR;
    }
    int rc = redis_sink_ready(k);
    if (rc != VELO_OK) {
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        const struct velo_record_meta *m = meta != NULL ? &meta[i] : NULL;
        /* A byte-stream engine (without RECORD_SINK) sends many rows per
         * record: one command per line then. */
        const char *p = recs[i].ptr;
        const char *end = p + recs[i].len;
        while (p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            const char *e = nl != NULL ? nl : end;
            size_t len = (size_t)(e - p);
            if (len > 0 && p[len - 1] == '\r') {
                len--;
            }
            if (len > 0) {
                struct velo_str row = {p, len};
                if (redis_sink_row(k, &row, m) != VELO_OK) {
                    k->failed = 1;
                    return VELO_ERR;
                }
            }
            p = nl != NULL ? nl + 1 : end;
        }
    }
    /* VELO_AGAIN from either: the rows are queued; they go out again on
     * reconnect. */
    rc = k->qlen >= k->pipeline ? redis_sink_replies(k) : redis_sink_pump(k);
    return rc == VELO_ERR ? VELO_ERR : VELO_OK;
}

static int redis_sink_flush(struct velo_instance *ins)
{
    struct redis_sink *k = ins->context;
    if (k->failed) {
        return VELO_ERR;
    }
    int rc = redis_sink_ready(k);
    if (rc != VELO_OK) {
        return rc;
    }
    /* VELO_AGAIN when the connection dropped while waiting: the engine
     * calls again and the queue is resent once reconnected. */
    return redis_sink_replies(k);
}

static void redis_sink_destroy(struct velo_instance *ins)
{
    struct redis_sink *k = ins->context;
    if (k == NULL) {
        return;
    }
    if (k->qlen > 0) {
        velo_plg_warn(ins, "%zu commands to %s were not confirmed", k->qlen,
                      k->cn.url.redacted);
    }
    for (size_t i = 0; i < k->qlen; i++) {
        free(k->q[k->qhead + i].text);
    }
    free(k->q);
    redis_conn_fini(&k->cn);
    free(k->key);
    free(k->key_column);
    free(k->prefix);
    free(k->field);
    free(k->arena.data);
    free(k->keybuf.data);
    free(k->off);
    free(k->len);
    free(k->argv);
    free(k->argl);
    free(k);
    ins->context = NULL;
}

/* ---- Descriptor --------------------------------------------------------- */

/* ---- Lookup ------------------------------------------------------------- */

/*
 * Keyed reads for stream-table joins. Mode 'hash' (the default; the mode
 * 'stream' default of sources and sinks reads as hash here): one hash per
 * key under key.prefix + key, read with HGETALL, pipelined for the whole
 * batch; the answer is the hash's fields as a JSON object (numbers as
 * numbers, like the stream source) plus the key column, which a hash sink
 * does not store as a field. Mode 'string': one JSON string per key (what
 * a string sink writes), read with one MGET. Keys are command arguments,
 * never command text. Blocking with connect.timeout: the engine has no
 * event loop for connectors yet; the join caches answers.
 */
struct redis_lookup {
    struct redis_conn cn;
    char *prefix;
    char *key_column;
    int string_mode;
    redisReply **replies; /* this batch's replies (hash: one per key) */
    size_t nreplies, cap_replies;
    redisReply *mget;
    struct redis_buf json;
    size_t *off;
    size_t cap_off;
    struct redis_buf keybuf;
    const char **argv;
    size_t *argl;
    size_t cap_argv;
};

static void redis_lookup_clear(struct redis_lookup *l)
{
    for (size_t i = 0; i < l->nreplies; i++) {
        freeReplyObject(l->replies[i]);
    }
    l->nreplies = 0;
    if (l->mget != NULL) {
        freeReplyObject(l->mget);
        l->mget = NULL;
    }
}

static void redis_lookup_destroy(struct velo_instance *ins)
{
    struct redis_lookup *l = ins->context;
    if (l == NULL) {
        return;
    }
    redis_lookup_clear(l);
    redis_conn_fini(&l->cn);
    free(l->replies);
    free(l->json.data);
    free(l->keybuf.data);
    free(l->off);
    free(l->argv);
    free(l->argl);
    free(l->prefix);
    free(l->key_column);
    free(l);
    ins->context = NULL;
}

static int redis_lookup_create(struct velo_instance *ins, const void *config,
                               const struct velo_connector_ctx *ctx,
                               const char *key)
{
    const struct redis_conf *conf = config;
    struct redis_lookup *l = calloc(1, sizeof(*l));
    if (l == NULL) {
        velo_plg_error(ins, "out of memory");
        return VELO_ERR;
    }
    ins->context = l;
    if (strcmp(conf->mode, "string") == 0) {
        l->string_mode = 1;
    } else if (strcmp(conf->mode, "hash") != 0 &&
               strcmp(conf->mode, "stream") != 0) {
        velo_plg_error(ins,
                       "lookup table '%s': mode '%s' cannot be read by key; "
                       "write 'hash' (one hash per key, the default) or "
                       "'string' (one JSON string per key)",
                       ctx->name, conf->mode);
        goto fail;
    }
    if (key == NULL || *key == '\0') {
        velo_plg_error(ins, "lookup table '%s': no key column", ctx->name);
        goto fail;
    }
    l->prefix = strdup(redis_set(conf->key_prefix) ? conf->key_prefix : "");
    l->key_column = strdup(key);
    if (l->prefix == NULL || l->key_column == NULL) {
        velo_plg_error(ins, "out of memory");
        goto fail;
    }
    if (redis_conn_init(&l->cn, ins, conf, ctx, "lookup table") != VELO_OK) {
        goto fail;
    }
    velo_plg_debug(ins, "lookups by %s in %s under '%s*' (%s)", key,
                   l->cn.url.redacted, l->prefix,
                   l->string_mode ? "JSON strings, MGET" : "hashes, HGETALL");
    return VELO_OK;
fail:
    redis_lookup_destroy(ins);
    return VELO_ERR;
}

/* Room for n keys' arguments (MGET: n + 1). */
static int redis_lookup_room(struct redis_lookup *l, size_t n)
{
    if (n + 1 > l->cap_argv) {
        size_t cap = n + 1;
        const char **a = realloc(l->argv, cap * sizeof(*a));
        if (a != NULL) {
            l->argv = a;
        }
        size_t *b = realloc(l->argl, cap * sizeof(*b));
        if (b != NULL) {
            l->argl = b;
        }
        size_t *o = realloc(l->off, cap * sizeof(*o));
        if (o != NULL) {
            l->off = o;
        }
        if (a == NULL || b == NULL || o == NULL) {
            return VELO_ERR;
        }
        l->cap_argv = cap;
        l->cap_off = cap;
    }
    if (n > l->cap_replies) {
        redisReply **r = realloc(l->replies, n * sizeof(*r));
        if (r == NULL) {
            return VELO_ERR;
        }
        l->replies = r;
        l->cap_replies = n;
    }
    return VELO_OK;
}

/* The prefixed keys, one after the other in keybuf; offsets in off. */
static int redis_lookup_keys(struct redis_lookup *l,
                             const struct velo_str *keys, size_t n)
{
    size_t plen = strlen(l->prefix);
    l->keybuf.len = 0;
    for (size_t i = 0; i < n; i++) {
        l->off[i] = l->keybuf.len;
        if (redis_buf_add(&l->keybuf, l->prefix, plen) != VELO_OK ||
            redis_buf_add(&l->keybuf, keys[i].ptr, keys[i].len) != VELO_OK) {
            return VELO_ERR;
        }
    }
    l->off[n] = l->keybuf.len;
    return VELO_OK;
}

/* Send the batch and collect the replies. @return VELO_OK, VELO_AGAIN
 * (the connection failed: retry on a new one), VELO_ERR (logged). */
static int redis_lookup_exchange(struct velo_instance *ins,
                                 struct redis_lookup *l, size_t n)
{
    redisContext *c = l->cn.c;
    if (l->string_mode) {
        l->argv[0] = "MGET";
        l->argl[0] = 4;
        for (size_t i = 0; i < n; i++) {
            l->argv[i + 1] = l->keybuf.data + l->off[i];
            l->argl[i + 1] = l->off[i + 1] - l->off[i];
        }
        l->mget = redisCommandArgv(c, (int)n + 1, l->argv, l->argl);
        if (l->mget == NULL) {
            return VELO_AGAIN;
        }
        if (l->mget->type != REDIS_REPLY_ARRAY || l->mget->elements != n) {
            velo_plg_error(
                ins, "%s: MGET of %zu keys: %s", l->cn.url.redacted, n,
                l->mget->type == REDIS_REPLY_ERROR ? l->mget->str
                                                   : "unexpected reply");
            return VELO_ERR;
        }
        return VELO_OK;
    }
    for (size_t i = 0; i < n; i++) {
        const char *argv[2] = {"HGETALL", l->keybuf.data + l->off[i]};
        size_t argl[2] = {7, l->off[i + 1] - l->off[i]};
        if (redisAppendCommandArgv(c, 2, argv, argl) != REDIS_OK) {
            return VELO_AGAIN;
        }
    }
    for (size_t i = 0; i < n; i++) {
        void *r = NULL;
        if (redisGetReply(c, &r) != REDIS_OK || r == NULL) {
            return VELO_AGAIN;
        }
        l->replies[l->nreplies++] = r;
    }
    for (size_t i = 0; i < n; i++) {
        const redisReply *r = l->replies[i];
        if (r->type == REDIS_REPLY_ERROR) {
            velo_plg_error(ins,
                           "%s: HGETALL %.*s: %s (is it a hash? a string "
                           "table needs '<name>.mode'='string')",
                           l->cn.url.redacted, (int)(l->off[i + 1] - l->off[i]),
                           l->keybuf.data + l->off[i], r->str);
            return VELO_ERR;
        }
    }
    return VELO_OK;
}

/* One hash reply as a JSON object, with the key column added. */
static int redis_lookup_hash_json(struct redis_lookup *l, const redisReply *r,
                                  const struct velo_str *key)
{
    struct redis_buf *b = &l->json;
    int has_key = 0;
    if (redis_buf_add(b, "{", 1) != VELO_OK) {
        return VELO_ERR;
    }
    for (size_t f = 0; f + 1 < r->elements; f += 2) {
        const redisReply *k = r->element[f];
        const redisReply *v = r->element[f + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) {
            continue;
        }
        if (k->len == strlen(l->key_column) &&
            memcmp(k->str, l->key_column, k->len) == 0) {
            has_key = 1;
        }
        if ((f > 0 && redis_buf_add(b, ",", 1) != VELO_OK) ||
            redis_buf_json_str(b, k->str, k->len) != VELO_OK ||
            redis_buf_add(b, ":", 1) != VELO_OK) {
            return VELO_ERR;
        }
        int rc = redis_is_json_number(v->str, v->len)
                     ? redis_buf_add(b, v->str, v->len)
                     : redis_buf_json_str(b, v->str, v->len);
        if (rc != VELO_OK) {
            return VELO_ERR;
        }
    }
    if (!has_key) {
        if ((r->elements > 0 && redis_buf_add(b, ",", 1) != VELO_OK) ||
            redis_buf_json_str(b, l->key_column, strlen(l->key_column)) !=
                VELO_OK ||
            redis_buf_add(b, ":", 1) != VELO_OK) {
            return VELO_ERR;
        }
        int rc = redis_is_json_number(key->ptr, key->len)
                     ? redis_buf_add(b, key->ptr, key->len)
                     : redis_buf_json_str(b, key->ptr, key->len);
        if (rc != VELO_OK) {
            return VELO_ERR;
        }
    }
    return redis_buf_add(b, "}", 1);
}

static int redis_lookup_get(struct velo_instance *ins,
                            const struct velo_str *keys, size_t n,
                            struct velo_source_batch *out)
{
    struct redis_lookup *l = ins->context;
    out->count = 0;
    redis_lookup_clear(l);
    if (n > out->capacity) {
        velo_plg_error(ins, "lookup of %zu keys into a batch of %zu", n,
                       out->capacity);
        return VELO_ERR;
    }
    if (n == 0) {
        return VELO_OK;
    }
    if (redis_lookup_room(l, n) != VELO_OK ||
        redis_lookup_keys(l, keys, n) != VELO_OK) {
        velo_plg_error(ins, "out of memory");
        return VELO_ERR;
    }
    /* A broken connection is reopened once per call; a second failure is
     * the job's error (the join has no answer to give). */
    for (int attempt = 0;; attempt++) {
        char why[256];
        if (l->cn.c == NULL) {
            int rc = redis_open(&l->cn, why, sizeof(why));
            if (rc != VELO_OK) {
                velo_plg_error(ins, "lookup: cannot connect to %s: %s",
                               l->cn.url.redacted, why);
                return VELO_ERR;
            }
            redis_metric_add(&l->cn, l->cn.m_reconnects, 1);
        }
        int rc = redis_lookup_exchange(ins, l, n);
        if (rc == VELO_OK) {
            break;
        }
        if (rc == VELO_ERR) {
            return VELO_ERR;
        }
        snprintf(why, sizeof(why), "%s", l->cn.c->errstr);
        redis_lookup_clear(l);
        redisFree(l->cn.c);
        l->cn.c = NULL;
        if (attempt == 1) {
            velo_plg_error(ins, "lookup in %s failed: %s", l->cn.url.redacted,
                           why);
            return VELO_ERR;
        }
        velo_plg_warn(ins, "lookup: connection to %s lost (%s); reconnecting",
                      l->cn.url.redacted, why);
    }
    if (l->string_mode) {
        for (size_t i = 0; i < n; i++) {
            const redisReply *e = l->mget->element[i];
            int hit = e->type == REDIS_REPLY_STRING;
            out->payload[i].ptr = hit ? e->str : NULL;
            out->payload[i].len = hit ? e->len : 0;
        }
        out->count = n;
        return VELO_OK;
    }
    l->json.len = 0;
    for (size_t i = 0; i < n; i++) {
        const redisReply *r = l->replies[i];
        int hit = r->type == REDIS_REPLY_ARRAY && r->elements > 0;
        l->off[i] = hit ? l->json.len : SIZE_MAX;
        if (hit && redis_lookup_hash_json(l, r, &keys[i]) != VELO_OK) {
            velo_plg_error(ins, "out of memory");
            return VELO_ERR;
        }
    }
    /* The buffer stopped moving: point at it. */
    size_t end = l->json.len;
    for (size_t i = n; i-- > 0;) {
        if (l->off[i] == SIZE_MAX) {
            out->payload[i].ptr = NULL;
            out->payload[i].len = 0;
            continue;
        }
        out->payload[i].ptr = l->json.data + l->off[i];
        out->payload[i].len = end - l->off[i];
        end = l->off[i];
    }
    out->count = n;
    return VELO_OK;
}

/* ---- Introspection ------------------------------------------------------ */

/*
 * "list": what a bounded SCAN (scan.limit keys, default 10000) finds:
 *   {"streams":[{"stream","length"}],
 *    "keys":[{"pattern","type","count","example"}],
 *    "scanned":n,"complete":bool}
 * Keys other than streams are grouped by pattern: the part after the last
 * ':' becomes '*' ("user:42" -> "user:*"), the usual Redis naming.
 * "describe NAME": a stream (its last `sample` entries, XREVRANGE) or a
 * key pattern / key of hashes (up to `sample` hashes, SCAN MATCH): the
 * fields with an inferred type and an example:
 *   [{"field","type","example"}]  (type: integer, double, boolean, json,
 *   string). A stream entry whose only field is `field` (default "data")
 *   holding a JSON object is described by that object's members.
 */

static const struct velo_host_api *redis_host;
static _Thread_local char *redis_cap;
static _Thread_local size_t redis_cap_len;

static void redis_cap_vlog(const struct velo_instance *ins, int level,
                           const char *fmt, va_list ap)
{
    (void)ins;
    if (level == VELO_LOG_ERROR && redis_cap != NULL && redis_cap[0] == '\0') {
        vsnprintf(redis_cap, redis_cap_len, fmt, ap);
    }
}

static void redis_cap_log(const struct velo_instance *ins, int level,
                          const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redis_cap_vlog(ins, level, fmt, ap);
    va_end(ap);
}

static int redis_cap_enabled(int level)
{
    return level == VELO_LOG_ERROR;
}

static const char *redis_infer_type(const char *s, size_t n)
{
    if (redis_is_json_number(s, n)) {
        return memchr(s, '.', n) || memchr(s, 'e', n) || memchr(s, 'E', n)
                   ? "double"
                   : "integer";
    }
    if ((n == 4 && memcmp(s, "true", 4) == 0) ||
        (n == 5 && memcmp(s, "false", 5) == 0)) {
        return "boolean";
    }
    if (n > 0 && (s[0] == '{' || s[0] == '[')) {
        json_error_t e;
        json_t *j = json_loadb(s, n, JSON_DECODE_ANY, &e);
        if (j != NULL) {
            json_decref(j);
            return "json";
        }
    }
    return "string";
}

/* A field seen in the sample: its type widens (integer -> double ->
 * string) when values disagree. */
static void redis_seen(json_t *fields, const char *name, size_t nlen,
                       const char *type, json_t *example)
{
    json_t *f = NULL;
    size_t i;
    json_t *v;
    json_array_foreach(fields, i, v)
    {
        const char *fn = json_string_value(json_object_get(v, "field"));
        if (strlen(fn) == nlen && memcmp(fn, name, nlen) == 0) {
            f = v;
            break;
        }
    }
    if (f == NULL) {
        f = json_object();
        json_object_set_new(f, "field", json_stringn(name, nlen));
        json_object_set_new(f, "type", json_string(type));
        json_object_set(f, "example", example);
        json_array_append_new(fields, f);
        return;
    }
    const char *old = json_string_value(json_object_get(f, "type"));
    if (strcmp(old, type) == 0) {
        return;
    }
    const char *wide =
        (strcmp(old, "integer") == 0 && strcmp(type, "double") == 0) ||
                (strcmp(old, "double") == 0 && strcmp(type, "integer") == 0)
            ? "double"
            : "string";
    json_object_set_new(f, "type", json_string(wide));
}

/* The value as shown in "example": JSON numbers/booleans/objects as such. */
static json_t *redis_example(const char *s, size_t n, const char *type)
{
    if (strcmp(type, "string") != 0) {
        json_error_t e;
        json_t *j = json_loadb(s, n, JSON_DECODE_ANY, &e);
        if (j != NULL) {
            return j;
        }
    }
    return json_stringn(s, n);
}

/* Field/value pairs of an entry or hash into `fields`. */
static void redis_sample_pairs(json_t *fields, const redisReply *r,
                               const char *whole)
{
    if (r->elements == 2 && r->element[0]->type == REDIS_REPLY_STRING &&
        strcmp(r->element[0]->str, whole) == 0 &&
        r->element[1]->type == REDIS_REPLY_STRING) {
        json_error_t e;
        json_t *obj = json_loadb(r->element[1]->str, r->element[1]->len, 0, &e);
        if (json_is_object(obj)) {
            const char *k;
            json_t *v;
            json_object_foreach(obj, k, v)
            {
                const char *t = json_is_integer(v)   ? "integer"
                                : json_is_real(v)    ? "double"
                                : json_is_boolean(v) ? "boolean"
                                : json_is_string(v)  ? "string"
                                : json_is_null(v)    ? NULL
                                                     : "json";
                if (t != NULL) {
                    redis_seen(fields, k, strlen(k), t, v);
                }
            }
            json_decref(obj);
            return;
        }
        json_decref(obj);
    }
    for (size_t f = 0; f + 1 < r->elements; f += 2) {
        const redisReply *k = r->element[f];
        const redisReply *v = r->element[f + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) {
            continue;
        }
        const char *t = redis_infer_type(v->str, v->len);
        json_t *ex = redis_example(v->str, v->len, t);
        redis_seen(fields, k->str, k->len, t, ex);
        json_decref(ex);
    }
}

static int redis_inspect_list(redisContext *c, int64_t limit, json_t *doc,
                              char *err, size_t errlen)
{
    json_t *streams = json_array(), *pats = json_array();
    json_object_set_new(doc, "streams", streams);
    json_object_set_new(doc, "keys", pats);
    char cursor[32] = "0";
    int64_t scanned = 0;
    int complete = 0;
    while (scanned < limit) {
        redisReply *r = redisCommand(c, "SCAN %s COUNT 500", cursor);
        if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
            snprintf(err, errlen, "SCAN: %s",
                     r == NULL                      ? c->errstr
                     : r->type == REDIS_REPLY_ERROR ? r->str
                                                    : "bad reply");
            freeReplyObject(r);
            return VELO_ERR;
        }
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        const redisReply *keys = r->element[1];
        int cut = keys->elements > 0 && scanned + (int64_t)keys->elements >
                                            limit; /* keys left unread */
        for (size_t i = 0; i < keys->elements && scanned < limit; i++) {
            const redisReply *k = keys->element[i];
            scanned++;
            redisReply *t = redisCommand(c, "TYPE %b", k->str, k->len);
            const char *type =
                t != NULL && t->type == REDIS_REPLY_STATUS ? t->str : "?";
            if (strcmp(type, "stream") == 0) {
                redisReply *x = redisCommand(c, "XLEN %b", k->str, k->len);
                json_t *s = json_object();
                json_object_set_new(s, "stream", json_stringn(k->str, k->len));
                json_object_set_new(
                    s, "length",
                    json_integer(x != NULL && x->type == REDIS_REPLY_INTEGER
                                     ? x->integer
                                     : -1));
                freeReplyObject(x);
                json_array_append_new(streams, s);
            } else {
                const char *colon = NULL;
                for (size_t j = 0; j < k->len; j++) {
                    if (k->str[j] == ':') {
                        colon = k->str + j;
                    }
                }
                char pat[256];
                if (colon != NULL) {
                    snprintf(pat, sizeof(pat), "%.*s*",
                             (int)(colon + 1 - k->str), k->str);
                } else {
                    snprintf(pat, sizeof(pat), "%.*s", (int)k->len, k->str);
                }
                json_t *found = NULL;
                size_t pi;
                json_t *p;
                json_array_foreach(pats, pi, p)
                {
                    if (strcmp(json_string_value(json_object_get(p, "pattern")),
                               pat) == 0 &&
                        strcmp(json_string_value(json_object_get(p, "type")),
                               type) == 0) {
                        found = p;
                        break;
                    }
                }
                if (found == NULL) {
                    found = json_object();
                    json_object_set_new(found, "pattern", json_string(pat));
                    json_object_set_new(found, "type", json_string(type));
                    json_object_set_new(found, "count", json_integer(0));
                    json_object_set_new(found, "example",
                                        json_stringn(k->str, k->len));
                    json_array_append_new(pats, found);
                }
                json_object_set_new(
                    found, "count",
                    json_integer(
                        json_integer_value(json_object_get(found, "count")) +
                        1));
            }
            freeReplyObject(t);
        }
        freeReplyObject(r);
        if (strcmp(cursor, "0") == 0) {
            complete = !cut;
            break;
        }
    }
    json_object_set_new(doc, "scanned", json_integer(scanned));
    json_object_set_new(doc, "complete", json_boolean(complete));
    return VELO_OK;
}

static int redis_inspect_describe(redisContext *c, const char *name,
                                  int64_t sample, const char *whole,
                                  json_t *fields, char *err, size_t errlen)
{
    redisReply *t = redisCommand(c, "TYPE %s", name);
    int stream = t != NULL && t->type == REDIS_REPLY_STATUS &&
                 strcmp(t->str, "stream") == 0;
    int hash = t != NULL && t->type == REDIS_REPLY_STATUS &&
               strcmp(t->str, "hash") == 0;
    freeReplyObject(t);
    if (stream) {
        redisReply *r = redisCommand(c, "XREVRANGE %s + - COUNT %lld", name,
                                     (long long)sample);
        if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
            snprintf(err, errlen, "XREVRANGE %s: %s", name,
                     r == NULL ? c->errstr : "bad reply");
            freeReplyObject(r);
            return VELO_ERR;
        }
        for (size_t i = 0; i < r->elements; i++) {
            const redisReply *e = r->element[i];
            if (e->type == REDIS_REPLY_ARRAY && e->elements == 2 &&
                e->element[1]->type == REDIS_REPLY_ARRAY) {
                redis_sample_pairs(fields, e->element[1], whole);
            }
        }
        freeReplyObject(r);
        return VELO_OK;
    }
    /* A hash, or a pattern of hashes ("user:*"). */
    int64_t seen = 0;
    char cursor[32] = "0";
    do {
        redisReply *r =
            hash ? NULL
                 : redisCommand(c, "SCAN %s MATCH %s COUNT 500", cursor, name);
        if (!hash &&
            (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2)) {
            snprintf(err, errlen, "SCAN MATCH %s: %s", name,
                     r == NULL ? c->errstr : "bad reply");
            freeReplyObject(r);
            return VELO_ERR;
        }
        size_t nk = hash ? 1 : r->element[1]->elements;
        for (size_t i = 0; i < nk && seen < sample; i++) {
            const char *k = hash ? name : r->element[1]->element[i]->str;
            size_t kl = hash ? strlen(name) : r->element[1]->element[i]->len;
            redisReply *h = redisCommand(c, "HGETALL %b", k, kl);
            if (h != NULL && h->type == REDIS_REPLY_ARRAY && h->elements > 0) {
                redis_sample_pairs(fields, h, "\x01");
                seen++;
            }
            freeReplyObject(h);
        }
        if (hash) {
            break;
        }
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0 && seen < sample);
    if (seen == 0) {
        snprintf(err, errlen,
                 "nothing to describe at '%s': not a stream, a hash or a "
                 "pattern matching hashes",
                 name);
        return VELO_ERR;
    }
    return VELO_OK;
}

static int redis_introspect(const void *config,
                            const struct velo_connector_ctx *ctx,
                            const char *what, const char *arg, char **out,
                            char *err, size_t errlen)
{
    const struct redis_conf *conf = config;
    *out = NULL;
    err[0] = '\0';
    int describe = strcmp(what, "describe") == 0;
    if (!describe && strcmp(what, "list") != 0) {
        snprintf(err, errlen,
                 "Redis answers 'list' and 'describe STREAM|PATTERN', not "
                 "'%s'",
                 what);
        return VELO_DECLINED;
    }
    if (describe && (arg == NULL || *arg == '\0')) {
        snprintf(err, errlen,
                 "describe needs a stream, a hash or a pattern (user:*)");
        return VELO_ERR;
    }
    struct velo_host_api host;
    memset(&host, 0, sizeof(host));
    if (redis_host != NULL) {
        memcpy(&host, redis_host,
               redis_host->size < sizeof(host) ? redis_host->size
                                               : sizeof(host));
    }
    host.size = sizeof(host);
    host.log = redis_cap_log;
    host.vlog = redis_cap_vlog;
    host.log_enabled = redis_cap_enabled;
    host.metric_counter = NULL;
    host.metric_gauge = NULL;
    struct velo_instance ins = {&host, "redis:inspect", NULL};
    struct redis_conn cn;
    redis_cap = err;
    redis_cap_len = errlen;
    int rc = redis_conn_init(&cn, &ins, conf, ctx, "inspect");
    redis_cap = NULL;
    if (rc != VELO_OK) {
        redis_conn_fini(&cn);
        return VELO_ERR;
    }
    int64_t limit = conf->scan_limit, sample = conf->sample;
    if (limit <= 0 || sample <= 0) {
        snprintf(err, errlen, "scan.limit and sample must be positive");
        redis_conn_fini(&cn);
        return VELO_ERR;
    }
    json_t *doc = describe ? json_array() : json_object();
    char msg[256] = "";
    rc = describe ? redis_inspect_describe(cn.c, arg, sample,
                                           redis_set(conf->field) ? conf->field
                                                                  : "data",
                                           doc, msg, sizeof(msg))
                  : redis_inspect_list(cn.c, limit, doc, msg, sizeof(msg));
    if (rc != VELO_OK) {
        snprintf(err, errlen, "%s: %s", cn.url.redacted, msg);
    } else {
        *out = json_dumps(doc, JSON_COMPACT);
        if (*out == NULL) {
            snprintf(err, errlen, "out of memory");
            rc = VELO_ERR;
        }
    }
    json_decref(doc);
    redis_conn_fini(&cn);
    return rc;
}

static const struct velo_connector_vtable redis_vtable = {
    .size = sizeof(struct velo_connector_vtable),
    .scheme = "redis",
    .flags = VELO_CONNECTOR_SOURCE | VELO_CONNECTOR_SINK |
             VELO_CONNECTOR_RECORD_SINK,
    .source_create = redis_source_create,
    .source_read = redis_source_read,
    .source_position = redis_source_position,
    .source_commit = redis_source_commit,
    .source_destroy = redis_source_destroy,
    .sink_create = redis_sink_create,
    .sink_write = redis_sink_write,
    .sink_flush = redis_sink_flush,
    .sink_destroy = redis_sink_destroy,
    .lookup_create = redis_lookup_create,
    .lookup_get = redis_lookup_get,
    .lookup_destroy = redis_lookup_destroy,
    .introspect = redis_introspect,
};

static const struct velo_plugin_descriptor redis_descriptor = {
    VELO_PLUGIN_HEADER,
    .kind = VELO_PLUGIN_CONNECTOR,
    .name = "redis",
    .version = "1.0",
    .description = "Redis streams (consumer groups), pub/sub, hashes and "
                   "strings",
    .config_map = redis_config,
    .config_size = sizeof(struct redis_conf),
    .vtable = &redis_vtable,
};

VELO_EXPORT const struct velo_plugin_descriptor *
velo_plugin_init(const struct velo_host_api *host)
{
    redis_host = host; /* for introspection, which has no instance */
    return &redis_descriptor;
}
