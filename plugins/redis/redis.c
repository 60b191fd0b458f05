/*
 * Velostream connector plugin: Redis (hiredis).
 *
 * Source: a stream read through a consumer group (XREADGROUP; entries are
 * XACKed only in source_commit, i.e. once every sink has made them durable)
 * or a pub/sub channel (SUBSCRIBE; at most once, Redis keeps nothing).
 * Sink: one row per record (VELO_CONNECTOR_RECORD_SINK) into a stream
 * (XADD), a hash per key (HSET), a string per key (SET) or a channel
 * (PUBLISH).
 *
 * Everything a running job does goes through hiredis' asynchronous API on
 * the worker's event loop (ctx->base, through the libevent adapter), and
 * no call blocks the thread: a source with nothing buffered returns
 * VELO_AGAIN with an XREADGROUP ... BLOCK (or its subscription) waiting on
 * the server, and its reply callback buffers the entries and calls
 * ctx->wake; a sink queues its commands and sink_flush returns VELO_AGAIN
 * until every reply is in. A lost connection is reopened on a backoff
 * timer (100 ms doubling to 5 s) with AUTH and SELECT, after which the
 * source asks again and the sink sends again everything unconfirmed (at
 * least once). A server that holds the connection open but never answers
 * is caught by a watchdog (command.timeout, see "Connection") and treated
 * as a lost connection. lookup_get and source_commit must answer now: they
 * send their commands and run the loop until the replies are in, bounded
 * by connect.timeout. Only create (to fail at once on a wrong address,
 * password or database) and introspection use blocking calls.
 *
 * Lookups (stream-table joins) read hashes or JSON strings by key, and
 * introspection lists streams and key patterns and describes one by
 * sampling (both near the end of this file).
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
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
    int64_t command_timeout_ms;
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
    {VELO_CONFIG_INT, "block.ms", "5000", offsetof(struct redis_conf, block_ms),
     "stream source: XREADGROUP BLOCK, how long one read waits on the "
     "server for new entries (0: without end)"},
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
     "connect timeout; also bounds a lookup's and an XACK's wait"},
    {VELO_CONFIG_DURATION, "command.timeout", "10s",
     offsetof(struct redis_conf, command_timeout_ms),
     "replies outstanding with none arriving for this long (plus block.ms "
     "for a blocking XREADGROUP): the connection is taken as lost and "
     "reopened (0s: no bound)"},
    {VELO_CONFIG_STR, "key.column", "", offsetof(struct redis_conf, key_column),
     "hash/string sink: the column whose value names the key"},
    {VELO_CONFIG_STR, "key.prefix", "", offsetof(struct redis_conf, key_prefix),
     "hash/string sink: prepended to the key column's value"},
    {VELO_CONFIG_INT, "maxlen", "0", offsetof(struct redis_conf, maxlen),
     "stream sink: XADD MAXLEN ~ n (0: unbounded)"},
    {VELO_CONFIG_DURATION, "ttl", "0s", offsetof(struct redis_conf, ttl_ms),
     "string sink: expiry of each key (0s: none)"},
    {VELO_CONFIG_INT, "pipeline", "1000", offsetof(struct redis_conf, pipeline),
     "sink: commands awaiting replies before sink_write pushes back"},
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

/* ---- Connection --------------------------------------------------------- */

/*
 * Each instance has a blocking connection for create (so that a wrong
 * address, password or database fails the job at once, with the reason)
 * and for introspection, and an asynchronous one (redisAsyncContext on the
 * worker's loop through hiredis' libevent adapter) for everything a
 * running job does. The asynchronous one reconnects by itself: a lost
 * connection arms a timer with backoff (100 ms doubling to 5 s); each
 * attempt connects, sends AUTH and SELECT, and is READY at the PING's
 * reply, when the owner's on_ready sends what it needs again (the source
 * its XREADGROUP or SUBSCRIBE, the sink what is unconfirmed).
 *
 * A server that keeps the connection open but never answers (stopped,
 * swapping, a half-open link through a firewall) would hold a sink's
 * flush forever: TCP sees nothing wrong. So while READY a watchdog ticks
 * (a quarter of command.timeout, at most a second) and, when commands are
 * waiting (ac->replies is not empty) and no reply callback has run for
 * command.timeout (plus block.ms while a blocking XREADGROUP is the one
 * waiting), drops the connection like any other loss. Counting replies
 * and sampling on the tick keeps the reply path free of clock reads; the
 * stall is measured from a tick that saw the commands waiting, so the
 * bound is never cut short (it may run up to two ticks long). Pub/sub
 * subscriptions wait in ac->sub, not ac->replies: an idle channel is not
 * a stall.
 *
 * Stale replies: a context we drop gets ac->data = NULL before it is
 * freed, and hiredis answers every callback still waiting on a dead
 * context with a NULL reply; callbacks ignore both, and on_lost resets
 * what the owner had in flight.
 */

enum { REDIS_FATAL = -100 };

enum redis_state { REDIS_DOWN, REDIS_CONNECTING, REDIS_READY };

struct redis_conn {
    struct velo_instance *ins;
    struct redis_url url;
    int64_t db;
    struct timeval timeout;
    redisContext *c; /* blocking: checks at create, introspection */
    struct event_base *base;
    int own_base; /* no loop was given (an engine before ABI 1.2) */
    redisAsyncContext *ac;
    int state;              /* enum redis_state */
    struct event *retry;    /* backoff while down; connect.timeout while
                               connecting */
    struct event *wait_ev;  /* the deadline of redis_wait */
    struct event *watch;    /* the reply watchdog's tick, while READY */
    int64_t cmd_timeout_ms; /* command.timeout; 0: no watchdog */
    int64_t stall_extra_ms; /* on top, for the command waiting (block.ms);
                               -1: it may wait without end */
    uint64_t replies;       /* reply callbacks run: progress */
    uint64_t replies_seen;  /* `replies` at the last tick */
    int64_t stall_since;    /* tick that first saw no progress; 0: none */
    int64_t backoff_ms;
    int down;        /* an outage is in progress (logged once) */
    int attempts;    /* failed attempts in this outage */
    int quiet;       /* a helper connection: outages logged at debug level */
    int fatal;       /* credentials or database refused: retrying cannot help */
    int reconnected; /* for on_ready: this READY ends an outage */
    char why[128];   /* why the last attempt or connection failed */
    void (*on_ready)(struct redis_conn *cn);
    void (*on_lost)(struct redis_conn *cn);
    void *owner;
    void (*wake)(void *wake_arg);
    void *wake_arg;
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

static void redis_wake(struct redis_conn *cn)
{
    if (cn->wake != NULL) {
        cn->wake(cn->wake_arg);
    }
}

/* A reply came in on `ac`: the watchdog's sign of progress. Every reply
 * callback calls it first (a stale context has data NULL). */
static void redis_progress(const redisAsyncContext *ac)
{
    struct redis_conn *cn = ac->data;
    if (cn != NULL) {
        cn->replies++;
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

/* Redis' text after AUTH fails names no secret ("WRONGPASS invalid
 * username-password pair", "ERR AUTH <password> called without any
 * password configured"...) but quote only its first word plus a fixed
 * explanation to be sure. */
static void redis_auth_error(const char *reply, char *why, size_t whylen)
{
    char code[32];
    snprintf(code, sizeof(code), "%.*s", (int)strcspn(reply, " "), reply);
    snprintf(why, whylen,
             "authentication failed (%s): check the password in the URL "
             "or 'password'",
             code);
}

static void redis_ping_error(const char *reply, char *why, size_t whylen)
{
    if (strncmp(reply, "NOAUTH", 6) == 0) {
        snprintf(why, whylen,
                 "the server requires a password: put it in the URL "
                 "(redis://:password@host) or 'password' (NOAUTH)");
    } else {
        snprintf(why, whylen, "%s", reply);
    }
}

/*
 * Connect, AUTH and SELECT, blocking. @return VELO_OK, VELO_AGAIN (the
 * server cannot be reached), or REDIS_FATAL (refused credentials or
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
            redis_auth_error(r->str, why, whylen);
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
        redis_ping_error(r->str, why, whylen);
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

static void redis_close_blocking(struct redis_conn *cn)
{
    if (cn->c != NULL) {
        redisFree(cn->c);
        cn->c = NULL;
    }
}

static void redis_connect(struct redis_conn *cn);

/*
 * The asynchronous connection is gone (hiredis frees the context after
 * the callback that tells us, or we freed it): retry after a backoff,
 * unless the server refused us for good. The owner learns through on_lost
 * and the engine through wake (a sink_flush or lookup waiting for replies
 * must see that they will not come).
 */
static void redis_failed(struct redis_conn *cn, const char *why)
{
    if (cn->ac != NULL) {
        cn->ac->data = NULL; /* whatever it still reports is stale */
        cn->ac = NULL;
    }
    cn->state = REDIS_DOWN;
    if (cn->watch != NULL) {
        evtimer_del(cn->watch);
    }
    snprintf(cn->why, sizeof(cn->why), "%s", why);
    if (cn->fatal) {
        /* Logged where it was found; every call of the owner fails now. */
    } else if (!cn->down) {
        if (cn->quiet) {
            velo_plg_debug(cn->ins, "connection to %s lost: %s",
                           cn->url.redacted, why);
        } else {
            velo_plg_warn(cn->ins,
                          "connection to %s lost: %s; reconnecting "
                          "with backoff",
                          cn->url.redacted, why);
            redis_metric_add(cn, cn->m_errors, 1);
        }
        cn->down = 1;
        cn->attempts = 0;
        cn->backoff_ms = REDIS_BACKOFF_MIN_MS;
    } else {
        cn->attempts++;
        if (!cn->quiet && (cn->attempts == 1 || cn->attempts % 10 == 0)) {
            velo_plg_warn(cn->ins,
                          "cannot reconnect to %s: %s (attempt %d; "
                          "retrying)",
                          cn->url.redacted, why, cn->attempts);
        }
        cn->backoff_ms *= 2;
        if (cn->backoff_ms > REDIS_BACKOFF_MAX_MS) {
            cn->backoff_ms = REDIS_BACKOFF_MAX_MS;
        }
    }
    if (!cn->fatal) {
        struct timeval tv = {(time_t)(cn->backoff_ms / 1000),
                             (suseconds_t)((cn->backoff_ms % 1000) * 1000)};
        evtimer_add(cn->retry, &tv);
    }
    if (cn->on_lost != NULL) {
        cn->on_lost(cn);
    }
    redis_wake(cn);
}

/* Close the asynchronous connection ourselves (a timeout, a refusal):
 * redisAsyncFree inside one of its callbacks waits for it to return. */
static void redis_drop(struct redis_conn *cn, const char *why)
{
    char copy[256];
    snprintf(copy, sizeof(copy), "%s", why); /* may be ac->errstr */
    redisAsyncContext *ac = cn->ac;
    if (ac != NULL) {
        ac->data = NULL;
        cn->ac = NULL;
        redisAsyncFree(ac);
    }
    redis_failed(cn, copy);
}

/* Refused for good (AUTH, SELECT): log it once, stop retrying. */
static void redis_refused(struct redis_conn *cn, const char *why)
{
    if (!cn->fatal) {
        velo_plg_error(cn->ins, "%s: %s", cn->url.redacted, why);
        redis_metric_add(cn, cn->m_errors, 1);
    }
    cn->fatal = 1;
    evtimer_del(cn->retry);
    redis_drop(cn, why);
}

static void redis_on_connect(const redisAsyncContext *ac, int status)
{
    struct redis_conn *cn = ac->data;
    if (cn == NULL) {
        return;
    }
    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback. */
        redis_failed(cn, ac->errstr[0] != '\0' ? ac->errstr : "cannot connect");
        return;
    }
    /* Notice a peer that vanished without closing (a dead host). */
    redisEnableKeepAlive(&cn->ac->c);
}

static void redis_on_disconnect(const redisAsyncContext *ac, int status)
{
    struct redis_conn *cn = ac->data;
    if (cn == NULL) {
        return;
    }
    redis_failed(cn, status == REDIS_OK || ac->errstr[0] == '\0'
                         ? "connection closed"
                         : ac->errstr);
}

/* AUTH or SELECT refused: the handshake's error replies are final. */
static void redis_on_handshake(redisAsyncContext *ac, void *reply, void *priv)
{
    struct redis_conn *cn = ac->data;
    redisReply *r = reply;
    redis_progress(ac);
    if (cn == NULL || r == NULL || r->type != REDIS_REPLY_ERROR) {
        return;
    }
    char why[256];
    if (priv != NULL) {
        redis_auth_error(r->str, why, sizeof(why));
    } else {
        snprintf(why, sizeof(why), "SELECT %" PRId64 ": %s", cn->db, r->str);
    }
    redis_refused(cn, why);
}

/* The PING after AUTH and SELECT: the connection is ready. */
static void redis_on_ping(redisAsyncContext *ac, void *reply, void *priv)
{
    struct redis_conn *cn = ac->data;
    redisReply *r = reply;
    (void)priv;
    redis_progress(ac);
    if (cn == NULL || r == NULL || cn->fatal) {
        return;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        char why[256];
        redis_ping_error(r->str, why, sizeof(why));
        redis_refused(cn, why);
        return;
    }
    evtimer_del(cn->retry); /* the connect timeout */
    cn->state = REDIS_READY;
    if (cn->cmd_timeout_ms > 0) {
        int64_t tick = cn->cmd_timeout_ms / 4;
        tick = tick < 10 ? 10 : tick > 1000 ? 1000 : tick;
        struct timeval tv = {(time_t)(tick / 1000),
                             (suseconds_t)((tick % 1000) * 1000)};
        cn->stall_since = 0;
        cn->replies_seen = cn->replies;
        evtimer_add(cn->watch, &tv);
    }
    cn->reconnected = cn->down;
    if (cn->down && !cn->quiet) {
        velo_plg_info(cn->ins, "reconnected to %s", cn->url.redacted);
        redis_metric_add(cn, cn->m_reconnects, 1);
    }
    cn->down = 0;
    cn->attempts = 0;
    cn->backoff_ms = REDIS_BACKOFF_MIN_MS;
    if (cn->on_ready != NULL) {
        cn->on_ready(cn);
    }
    redis_wake(cn);
}

/* Start an attempt; the handshake is queued at once (hiredis sends it when
 * the socket connects) and the retry timer bounds the whole attempt. */
static void redis_connect(struct redis_conn *cn)
{
    redisAsyncContext *ac = redisAsyncConnect(cn->url.host, cn->url.port);
    if (ac == NULL) {
        redis_failed(cn, "out of memory");
        return;
    }
    if (ac->err) {
        char why[256];
        snprintf(why, sizeof(why), "%s", ac->errstr);
        redisAsyncFree(ac);
        redis_failed(cn, why);
        return;
    }
    if (redisLibeventAttach(ac, cn->base) != REDIS_OK) {
        redisAsyncFree(ac);
        redis_failed(cn, "cannot attach to the event loop");
        return;
    }
    ac->data = cn;
    redisAsyncSetConnectCallback(ac, redis_on_connect);
    redisAsyncSetDisconnectCallback(ac, redis_on_disconnect);
    cn->ac = ac;
    cn->state = REDIS_CONNECTING;
    if (cn->url.pass != NULL) {
        const char *argv[3] = {"AUTH", cn->url.user, cn->url.pass};
        size_t lens[3] = {4, cn->url.user ? strlen(cn->url.user) : 0,
                          strlen(cn->url.pass)};
        if (cn->url.user == NULL) {
            argv[1] = cn->url.pass;
            lens[1] = lens[2];
        }
        redisAsyncCommandArgv(ac, redis_on_handshake, (void *)"auth",
                              cn->url.user != NULL ? 3 : 2, argv, lens);
    }
    if (cn->db != 0) {
        char db[24];
        snprintf(db, sizeof(db), "%" PRId64, cn->db);
        const char *argv[2] = {"SELECT", db};
        size_t lens[2] = {6, strlen(db)};
        redisAsyncCommandArgv(ac, redis_on_handshake, NULL, 2, argv, lens);
    }
    const char *ping = "PING";
    size_t pl = 4;
    redisAsyncCommandArgv(ac, redis_on_ping, NULL, 1, &ping, &pl);
    evtimer_add(cn->retry, &cn->timeout);
}

static void redis_on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct redis_conn *cn = arg;
    (void)fd;
    (void)what;
    if (cn->state == REDIS_DOWN && !cn->fatal) {
        redis_connect(cn);
    } else if (cn->state == REDIS_CONNECTING) {
        redis_drop(cn, "no answer within connect.timeout");
    }
}

/* The reply watchdog (see the top of this section). */
static void redis_on_watch(evutil_socket_t fd, short what, void *arg)
{
    struct redis_conn *cn = arg;
    (void)fd;
    (void)what;
    if (cn->state != REDIS_READY || cn->ac == NULL) {
        return;
    }
    if (cn->ac->replies.head == NULL || cn->replies != cn->replies_seen ||
        cn->stall_extra_ms < 0) {
        cn->replies_seen = cn->replies;
        cn->stall_since = 0;
        return;
    }
    int64_t now = redis_now_ms();
    if (cn->stall_since == 0) {
        cn->stall_since = now;
        return;
    }
    if (now - cn->stall_since >= cn->cmd_timeout_ms + cn->stall_extra_ms) {
        char why[128];
        snprintf(why, sizeof(why),
                 "no reply within command.timeout (%" PRId64 " ms%s)",
                 cn->cmd_timeout_ms,
                 cn->stall_extra_ms > 0 ? " + block.ms" : "");
        redis_drop(cn, why);
    }
}

static void redis_on_wait(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

/* Down and waiting out a backoff: try now (a lookup must answer). */
static void redis_kick(struct redis_conn *cn)
{
    if (cn->state == REDIS_DOWN && !cn->fatal) {
        evtimer_del(cn->retry);
        redis_connect(cn);
    }
}

/* With a loop of our own nobody else runs it: do it at each call. */
static void redis_pump(struct redis_conn *cn)
{
    if (cn->own_base) {
        event_base_loop(cn->base, EVLOOP_NONBLOCK);
    }
}

/*
 * Run the loop until done(arg) or `ms` have passed, for the calls that
 * must answer now (lookup_get, source_commit): the engine never calls a
 * connector from inside a loop callback, so this does not nest. A timer
 * of our own bounds each EVLOOP_ONCE. @return 1 when done.
 */
static int redis_wait(struct redis_conn *cn, int (*done)(void *arg), void *arg,
                      int64_t ms)
{
    int64_t end = redis_now_ms() + ms;
    while (!done(arg)) {
        int64_t left = end - redis_now_ms();
        if (left <= 0) {
            return 0;
        }
        struct timeval tv = {(time_t)(left / 1000),
                             (suseconds_t)((left % 1000) * 1000)};
        evtimer_add(cn->wait_ev, &tv);
        event_base_loop(cn->base, EVLOOP_ONCE);
        evtimer_del(cn->wait_ev);
    }
    return 1;
}

static int redis_ready_done(void *arg)
{
    struct redis_conn *cn = arg;
    return cn->state == REDIS_READY || cn->fatal;
}

static int redis_attempt_done(void *arg)
{
    struct redis_conn *cn = arg;
    return cn->state != REDIS_CONNECTING;
}

/*
 * Ready now, or after waiting at most connect.timeout: `retrying` through
 * the backoff's attempts (a lookup, which has no answer to give without
 * the server), else only for the attempt in progress or started now (an
 * acknowledgement, which the next commit can make: an outage must not
 * hold the engine every second). @return 1 when ready.
 */
static int redis_wait_ready(struct redis_conn *cn, int retrying)
{
    redis_pump(cn);
    redis_kick(cn);
    int64_t ms = (int64_t)cn->timeout.tv_sec * 1000 +
                 (int64_t)cn->timeout.tv_usec / 1000;
    redis_wait(cn, retrying ? redis_ready_done : redis_attempt_done, cn, ms);
    return cn->state == REDIS_READY;
}

/*
 * The common part of create: the URL (the URI, else 'url'), the password
 * property, the timeout, the first connection, blocking (failing here is
 * an error: the user asked for a server that is not there). It stays open
 * in cn->c for the caller's own checks. @return VELO_OK/ERR.
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
    cn->cmd_timeout_ms =
        conf->command_timeout_ms > 0 ? conf->command_timeout_ms : 0;
    if (VELO_HOST_HAS(ins->host, metric_counter)) {
        char labels[256];
        /* A label name has no space: "lookup table" is "lookup". */
        snprintf(labels, sizeof(labels), "connector=redis,%.*s=%s",
                 (int)strcspn(role, " "), role, ctx->name);
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

/*
 * Start the asynchronous connection on the worker's loop (or on a loop of
 * our own when the engine gives none); it becomes READY once the loop has
 * run. @return VELO_OK or VELO_ERR (logged).
 */
static int redis_async_start(struct redis_conn *cn,
                             const struct velo_connector_ctx *ctx,
                             void (*on_ready)(struct redis_conn *),
                             void (*on_lost)(struct redis_conn *), void *owner)
{
    cn->base = ctx->base;
    if (cn->base == NULL) {
        cn->base = event_base_new();
        cn->own_base = 1;
    }
    if (cn->base == NULL) {
        velo_plg_error(cn->ins, "cannot create an event loop");
        return VELO_ERR;
    }
    cn->retry = evtimer_new(cn->base, redis_on_timer, cn);
    cn->wait_ev = evtimer_new(cn->base, redis_on_wait, cn);
    cn->watch = event_new(cn->base, -1, EV_PERSIST, redis_on_watch, cn);
    if (cn->retry == NULL || cn->wait_ev == NULL || cn->watch == NULL) {
        velo_plg_error(cn->ins, "out of memory");
        return VELO_ERR;
    }
    cn->on_ready = on_ready;
    cn->on_lost = on_lost;
    cn->owner = owner;
    cn->wake = ctx->wake;
    cn->wake_arg = ctx->wake_arg;
    redis_connect(cn);
    return VELO_OK;
}

/* A second asynchronous connection to the same server as `from` (a stream
 * source's acknowledgements). Quiet: `from` reports the outages. */
static int redis_conn_twin(struct redis_conn *cn, const struct redis_conn *from)
{
    memset(cn, 0, sizeof(*cn));
    cn->ins = from->ins;
    cn->db = from->db;
    cn->timeout = from->timeout;
    cn->cmd_timeout_ms = from->cmd_timeout_ms;
    cn->backoff_ms = REDIS_BACKOFF_MIN_MS;
    cn->quiet = 1;
    cn->m_errors = from->m_errors;
    cn->url.port = from->url.port;
    memcpy(cn->url.redacted, from->url.redacted, sizeof(cn->url.redacted));
    cn->url.host = strdup(from->url.host);
    if (from->url.user != NULL) {
        cn->url.user = strdup(from->url.user);
    }
    if (from->url.pass != NULL) {
        cn->url.pass = strdup(from->url.pass);
    }
    if (cn->url.host == NULL ||
        (from->url.user != NULL && cn->url.user == NULL) ||
        (from->url.pass != NULL && cn->url.pass == NULL)) {
        return VELO_ERR;
    }
    return VELO_OK;
}

static void redis_conn_fini(struct redis_conn *cn)
{
    redis_close_blocking(cn);
    if (cn->ac != NULL) {
        redisAsyncContext *ac = cn->ac;
        ac->data = NULL;
        cn->ac = NULL;
        redisAsyncFree(ac); /* answers its callbacks with NULL: ignored */
    }
    if (cn->retry != NULL) {
        event_free(cn->retry);
        cn->retry = NULL;
    }
    if (cn->wait_ev != NULL) {
        event_free(cn->wait_ev);
        cn->wait_ev = NULL;
    }
    if (cn->watch != NULL) {
        event_free(cn->watch);
        cn->watch = NULL;
    }
    if (cn->own_base && cn->base != NULL) {
        event_base_free(cn->base);
    }
    cn->base = NULL;
    redis_url_free(&cn->url);
}

/* ---- Source ------------------------------------------------------------- */

/*
 * Entries and messages arrive in reply callbacks and are copied into one of
 * two buffers (hiredis frees a reply when its callback returns): `fill`
 * takes what arrives while the engine reads the other one, `hand`, whose
 * views stay valid until the next source_read. Both are reused batch to
 * batch (text in one growable block, entries in one growable array).
 *
 * A stream source sends XREADGROUP when source_read finds nothing
 * buffered, and again whenever a reply brings nothing: first its own
 * pending entries (from the last ID it received: at start what an earlier
 * run was handed and did not acknowledge), then new ones (">", with BLOCK,
 * so an idle stream costs one command per block.ms and an entry arrives
 * as soon as it is added). XACK goes over a second connection, as a
 * BLOCKed XREADGROUP holds the first one.
 *
 * A pub/sub source subscribes on its own connection; when `fill` holds
 * REDIS_PUBSUB_BATCHES batches it stops reading the socket until the engine
 * catches up (Redis buffers meanwhile, up to its client-output-buffer-limit
 * for pub/sub clients).
 */

#define REDIS_PUBSUB_BATCHES 4

struct redis_ack {
    char id[REDIS_ID_MAX];
};

struct redis_entry {
    size_t id_off, id_len; /* entry ID (stream) or channel (pub/sub) */
    size_t off, len;       /* payload; len SIZE_MAX: an entry deleted since
                              delivery (acknowledged, no record) */
};

struct redis_fill {
    struct redis_buf text;
    struct redis_entry *e;
    size_t n, cap;
};

struct redis_src {
    struct redis_conn cn;  /* XREADGROUP, or SUBSCRIBE */
    struct redis_conn ctl; /* stream: XACK */
    char *key, *group, *consumer, *field, *start;
    int pubsub, pattern;
    size_t count;
    int64_t block_ms;
    int reading_new;           /* 0: own pending entries first, 1: ">" */
    char cursor[REDIS_ID_MAX]; /* last pending ID received */
    struct redis_fill buf[2];
    int fill;        /* index of the buffer callbacks write into */
    size_t hand_pos; /* next entry of buf[!fill] to hand over */
    size_t batch;    /* the engine's batch capacity, once known */
    int inflight;    /* an XREADGROUP awaits its reply */
    int paused;      /* pub/sub: not reading the socket */
    int failed;      /* an error reply that retrying cannot fix: logged */
    struct redis_ack *acks; /* handed over, not yet XACKed, in order */
    size_t nacks, cap_acks;
    uint64_t acked;  /* sequence number of acks[0] */
    size_t ack_wait; /* XACK replies outstanding in source_commit */
    int ack_bad;
    struct velo_metric *m_in, *m_bytes;
};

static int redis_fill_entry(struct redis_fill *f, struct redis_entry **e)
{
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 64;
        struct redis_entry *ne = realloc(f->e, cap * sizeof(*ne));
        if (ne == NULL) {
            return VELO_ERR;
        }
        f->e = ne;
        f->cap = cap;
    }
    *e = &f->e[f->n];
    return VELO_OK;
}

/* An entry's field list as one payload in f->text: the one field `field`
 * as is, several fields as a JSON object (so format json reads them). */
static int redis_src_payload(struct redis_src *s, struct redis_fill *f,
                             const redisReply *fields, struct redis_entry *e)
{
    if (fields->type != REDIS_REPLY_ARRAY || fields->elements < 2) {
        e->off = 0;
        e->len = SIZE_MAX;
        return VELO_OK;
    }
    e->off = f->text.len;
    if (fields->elements == 2 &&
        fields->element[0]->type == REDIS_REPLY_STRING &&
        fields->element[0]->len == strlen(s->field) &&
        memcmp(fields->element[0]->str, s->field, fields->element[0]->len) ==
            0) {
        e->len = fields->element[1]->len;
        return redis_buf_add(&f->text, fields->element[1]->str, e->len);
    }
    if (redis_buf_add(&f->text, "{", 1) != VELO_OK) {
        return VELO_ERR;
    }
    for (size_t i = 0; i + 1 < fields->elements; i += 2) {
        const redisReply *k = fields->element[i];
        const redisReply *v = fields->element[i + 1];
        if ((i > 0 && redis_buf_add(&f->text, ",", 1) != VELO_OK) ||
            redis_buf_json_str(&f->text, k->str, k->len) != VELO_OK ||
            redis_buf_add(&f->text, ":", 1) != VELO_OK) {
            return VELO_ERR;
        }
        int rc = redis_is_json_number(v->str, v->len)
                     ? redis_buf_add(&f->text, v->str, v->len)
                     : redis_buf_json_str(&f->text, v->str, v->len);
        if (rc != VELO_OK) {
            return VELO_ERR;
        }
    }
    if (redis_buf_add(&f->text, "}", 1) != VELO_OK) {
        return VELO_ERR;
    }
    e->len = f->text.len - e->off;
    return VELO_OK;
}

static void redis_src_request(struct redis_src *s);

static void redis_src_fail(struct redis_src *s)
{
    s->failed = 1;
    redis_metric_add(&s->cn, s->cn.m_errors, 1);
    redis_wake(&s->cn);
}

/* XGROUP CREATE: BUSYGROUP (it exists) is fine. */
static void redis_src_on_group(redisAsyncContext *ac, void *reply, void *priv)
{
    struct redis_src *s = priv;
    redisReply *r = reply;
    redis_progress(ac);
    if (ac->data == NULL || r == NULL || r->type != REDIS_REPLY_ERROR ||
        strncmp(r->str, "BUSYGROUP", 9) == 0) {
        return;
    }
    velo_plg_error(s->cn.ins,
                   "%s: cannot create consumer group '%s' on '%s': %s",
                   s->cn.url.redacted, s->group, s->key, r->str);
    redis_src_fail(s);
}

static void redis_src_send_group(struct redis_src *s)
{
    const char *argv[] = {"XGROUP", "CREATE", s->key,
                          s->group, s->start, "MKSTREAM"};
    size_t lens[6];
    for (int i = 0; i < 6; i++) {
        lens[i] = strlen(argv[i]);
    }
    redisAsyncCommandArgv(s->cn.ac, redis_src_on_group, s, 6, argv, lens);
}

static void redis_src_on_read(redisAsyncContext *ac, void *reply, void *priv)
{
    struct redis_src *s = priv;
    redisReply *r = reply;
    redis_progress(ac);
    if (ac->data == NULL || r == NULL) {
        return; /* on_lost resets inflight */
    }
    s->inflight = 0;
    if (r->type == REDIS_REPLY_ERROR) {
        if (strncmp(r->str, "NOGROUP", 7) == 0) {
            /* The stream or group went away (deleted, or a server without
             * persistence restarted): make it again and go on. */
            velo_plg_warn(s->cn.ins,
                          "%s: group '%s' on '%s' is gone; creating it "
                          "again",
                          s->cn.url.redacted, s->group, s->key);
            s->reading_new = 0;
            snprintf(s->cursor, sizeof(s->cursor), "0");
            redis_src_send_group(s);
            redis_src_request(s);
            return;
        }
        velo_plg_error(s->cn.ins, "%s: XREADGROUP on '%s': %s",
                       s->cn.url.redacted, s->key, r->str);
        redis_src_fail(s);
        return;
    }
    const redisReply *entries = NULL;
    if (r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
        r->element[0]->type == REDIS_REPLY_ARRAY &&
        r->element[0]->elements == 2) {
        entries = r->element[0]->element[1];
    }
    if (entries == NULL || entries->type != REDIS_REPLY_ARRAY ||
        entries->elements == 0) {
        /* Pending entries all handed over (now new ones), or BLOCK ran
         * out: ask again. */
        s->reading_new = 1;
        redis_src_request(s);
        return;
    }
    struct redis_fill *f = &s->buf[s->fill];
    for (size_t i = 0; i < entries->elements; i++) {
        const redisReply *e = entries->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
            e->element[0]->type != REDIS_REPLY_STRING ||
            e->element[0]->len >= REDIS_ID_MAX) {
            continue;
        }
        struct redis_entry *ent;
        if (redis_fill_entry(f, &ent) != VELO_OK) {
            goto oom;
        }
        ent->id_off = f->text.len;
        ent->id_len = e->element[0]->len;
        if (redis_buf_add(&f->text, e->element[0]->str, ent->id_len) !=
                VELO_OK ||
            redis_buf_add(&f->text, "", 1) != VELO_OK ||
            redis_src_payload(s, f, e->element[1], ent) != VELO_OK) {
            goto oom;
        }
        f->n++;
        /* The last ID received, in either phase: after a lost connection
         * the pending list past it is what was delivered but never
         * arrived. */
        snprintf(s->cursor, sizeof(s->cursor), "%s", e->element[0]->str);
    }
    redis_wake(&s->cn);
    return;
oom:
    velo_plg_error(s->cn.ins, "out of memory buffering stream entries");
    redis_src_fail(s);
}

/* One XREADGROUP in flight while `fill` is empty and the connection up. */
static void redis_src_request(struct redis_src *s)
{
    if (s->pubsub || s->inflight || s->failed || s->cn.state != REDIS_READY ||
        s->buf[s->fill].n > 0) {
        return;
    }
    size_t want = s->batch > 0 && s->batch < s->count ? s->batch : s->count;
    char count[24], block[24];
    snprintf(count, sizeof(count), "%zu", want);
    snprintf(block, sizeof(block), "%" PRId64, s->block_ms);
    const char *argv[11] = {"XREADGROUP", "GROUP", s->group,
                            s->consumer,  "COUNT", count};
    int argc = 6;
    if (s->reading_new) {
        /* Only ">" waits: an explicit ID answers from the pending list. */
        argv[argc++] = "BLOCK";
        argv[argc++] = block;
    }
    argv[argc++] = "STREAMS";
    argv[argc++] = s->key;
    argv[argc++] = s->reading_new ? ">" : s->cursor;
    size_t lens[11];
    for (int i = 0; i < argc; i++) {
        lens[i] = strlen(argv[i]);
    }
    if (redisAsyncCommandArgv(s->cn.ac, redis_src_on_read, s, argc, argv,
                              lens) == REDIS_OK) {
        s->inflight = 1;
        /* The server holds a ">" read up to block.ms by design (for ever
         * with 0): the watchdog waits that long on top. */
        s->cn.stall_extra_ms = !s->reading_new   ? 0
                               : s->block_ms > 0 ? s->block_ms
                                                 : -1;
    }
}

static void redis_src_on_message(redisAsyncContext *ac, void *reply, void *priv)
{
    struct redis_src *s = priv;
    redisReply *r = reply;
    redis_progress(ac);
    if (ac->data == NULL || r == NULL) {
        return;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        velo_plg_error(s->cn.ins, "%s: %s %s: %s", s->cn.url.redacted,
                       s->pattern ? "PSUBSCRIBE" : "SUBSCRIBE", s->key, r->str);
        redis_src_fail(s);
        return;
    }
    size_t base = s->pattern ? 1 : 0;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 + base ||
        r->element[0]->type != REDIS_REPLY_STRING ||
        strcmp(r->element[0]->str, s->pattern ? "pmessage" : "message") != 0 ||
        r->element[2 + base]->type != REDIS_REPLY_STRING) {
        return; /* the subscribe confirmation and the like */
    }
    struct redis_fill *f = &s->buf[s->fill];
    struct redis_entry *e;
    const redisReply *ch = r->element[1 + base];
    const redisReply *msg = r->element[2 + base];
    if (redis_fill_entry(f, &e) != VELO_OK) {
        goto oom;
    }
    e->id_off = f->text.len;
    e->id_len = ch->type == REDIS_REPLY_STRING ? ch->len : 0;
    if (redis_buf_add(&f->text, ch->str, e->id_len) != VELO_OK) {
        goto oom;
    }
    e->off = f->text.len;
    e->len = msg->len;
    if (redis_buf_add(&f->text, msg->str, msg->len) != VELO_OK) {
        goto oom;
    }
    f->n++;
    size_t batch = s->batch > s->count ? s->batch : s->count;
    if (!s->paused && f->n >= REDIS_PUBSUB_BATCHES * batch) {
        s->paused = 1;
        ac->ev.delRead(ac->ev.data);
        velo_plg_debug(s->cn.ins,
                       "%zu messages waiting: not reading '%s' until the "
                       "query catches up",
                       f->n, s->key);
    }
    if (f->n == 1) {
        redis_wake(&s->cn);
    }
    return;
oom:
    velo_plg_error(s->cn.ins, "out of memory buffering messages");
    redis_src_fail(s);
}

static void redis_src_ready(struct redis_conn *cn)
{
    struct redis_src *s = cn->owner;
    s->paused = 0;
    if (s->pubsub) {
        cn->stall_extra_ms = -1; /* a subscription waits without end */
        const char *argv[2] = {s->pattern ? "PSUBSCRIBE" : "SUBSCRIBE", s->key};
        size_t lens[2] = {strlen(argv[0]), strlen(s->key)};
        redisAsyncCommandArgv(cn->ac, redis_src_on_message, s, 2, argv, lens);
        return;
    }
    /* The group may be gone after a restart of a server that keeps
     * nothing; pipelined before the read, so it is there for it. */
    redis_src_send_group(s);
    redis_src_request(s);
}

static void redis_src_lost(struct redis_conn *cn)
{
    struct redis_src *s = cn->owner;
    s->inflight = 0;
    s->paused = 0;
    /* An XREADGROUP in flight may have been served before the drop: its
     * entries are pending to us past the cursor. Read those first. */
    s->reading_new = 0;
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

/* Create the consumer group unless it exists (BUSYGROUP), on the blocking
 * connection of create. @return VELO_OK or VELO_ERR (logged). */
static int redis_src_group(struct redis_src *s)
{
    const char *argv[] = {"XGROUP", "CREATE", s->key,
                          s->group, s->start, "MKSTREAM"};
    redisReply *r = redis_command(s->cn.c, 6, argv);
    if (r == NULL) {
        velo_plg_error(s->cn.ins,
                       "%s: the connection failed while setting "
                       "up: %s",
                       s->cn.url.redacted, s->cn.c->errstr);
        return VELO_ERR;
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
    if (conf->block_ms < 0) {
        velo_plg_error(ins,
                       "source '%s': block.ms cannot be negative (0 waits "
                       "without end)",
                       ctx->name);
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
    s->block_ms = conf->block_ms;
    snprintf(s->cursor, sizeof(s->cursor), "0");
    s->pattern = s->pubsub && strpbrk(s->key, "*?[") != NULL;
    if (!s->pubsub && redis_src_group(s) != VELO_OK) {
        return VELO_ERR;
    }
    redis_close_blocking(&s->cn);
    if (redis_async_start(&s->cn, ctx, redis_src_ready, redis_src_lost, s) !=
        VELO_OK) {
        return VELO_ERR;
    }
    if (!s->pubsub) {
        if (redis_conn_twin(&s->ctl, &s->cn) != VELO_OK) {
            velo_plg_error(ins, "out of memory");
            return VELO_ERR;
        }
        /* On the same loop; its wake is not needed (commit waits). */
        struct velo_connector_ctx c2 = *ctx;
        c2.base = s->cn.base;
        c2.wake = NULL;
        if (redis_async_start(&s->ctl, &c2, NULL, NULL, s) != VELO_OK) {
            return VELO_ERR;
        }
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

static int redis_source_read(struct velo_instance *ins,
                             struct velo_source_batch *out)
{
    struct redis_src *s = ins->context;
    out->count = 0;
    redis_pump(&s->cn);
    if (s->failed || s->cn.fatal) {
        return VELO_ERR;
    }
    s->batch = out->capacity;
    struct redis_fill *h = &s->buf[!s->fill];
    if (s->hand_pos >= h->n && s->buf[s->fill].n > 0) {
        /* What the engine held is done with: it becomes the next fill. */
        h->n = 0;
        h->text.len = 0;
        s->hand_pos = 0;
        s->fill = !s->fill;
        h = &s->buf[!s->fill];
    }
    size_t n = 0, took = 0, bytes = 0;
    while (s->hand_pos < h->n && n < out->capacity) {
        const struct redis_entry *e = &h->e[s->hand_pos++];
        const char *id = h->text.data + e->id_off;
        took++;
        if (!s->pubsub && redis_src_ack_push(s, id) != VELO_OK) {
            velo_plg_error(ins, "out of memory");
            return VELO_ERR;
        }
        if (e->len == SIZE_MAX) {
            continue; /* deleted since delivery: acknowledged, no record */
        }
        out->payload[n].ptr = h->text.data + e->off;
        out->payload[n].len = e->len;
        if (out->meta != NULL) {
            if (s->pubsub) {
                out->meta[n].timestamp_us = INT64_MIN;
                out->meta[n].partition = -1;
                out->meta[n].offset = -1;
                out->meta[n].key.ptr = id;
                out->meta[n].key.len = e->id_len;
            } else {
                redis_src_meta(id, &out->meta[n]);
            }
        }
        bytes += e->len;
        n++;
    }
    out->count = n;
    if (s->pubsub && s->paused && s->buf[s->fill].n == 0 && s->cn.ac != NULL) {
        /* Caught up: read the socket again, and what hiredis already has. */
        s->paused = 0;
        s->cn.ac->ev.addRead(s->cn.ac->ev.data);
        redisAsyncHandleRead(s->cn.ac);
    }
    if (took == 0) {
        /* Nothing buffered: ask now (the reply wakes the engine). Asking
         * only when the engine does keeps what Redis delivered to this
         * consumer and what the engine was handed the same, so a stop
         * leaves no entry read ahead pending to a consumer name that may
         * never come back. */
        redis_src_request(s);
        return VELO_AGAIN;
    }
    if (n > 0) {
        redis_metric_add(&s->cn, s->m_in, (double)n);
        redis_metric_add(&s->cn, s->m_bytes, (double)bytes);
    }
    return VELO_OK; /* count 0 when all were deleted entries */
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

static void redis_src_on_ack(redisAsyncContext *ac, void *reply, void *priv)
{
    struct redis_src *s = priv;
    redisReply *r = reply;
    redis_progress(ac);
    if (ac->data == NULL || r == NULL) {
        return; /* lost: commit sees the connection down */
    }
    if (r->type == REDIS_REPLY_ERROR) {
        velo_plg_warn(s->cn.ins, "%s: XACK on '%s': %s", s->cn.url.redacted,
                      s->key, r->str);
        redis_metric_add(&s->cn, s->cn.m_errors, 1);
        s->ack_bad = 1;
    }
    if (s->ack_wait > 0) {
        s->ack_wait--;
    }
}

static int redis_src_acks_done(void *arg)
{
    struct redis_src *s = arg;
    return s->ack_wait == 0 || s->ctl.state != REDIS_READY;
}

/*
 * XACK what the position covers, over the second connection, and wait for
 * the replies on the loop (commit happens about once a second, and after
 * it the engine may stop: the acknowledgement must be in by then). What
 * fails stays queued for the next commit; acknowledging twice is harmless.
 */
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
    if (!redis_wait_ready(&s->ctl, 0)) {
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
    s->ack_wait = 0;
    s->ack_bad = 0;
    for (size_t done = 0; done < k;) {
        size_t m = k - done < REDIS_ACK_CHUNK ? k - done : REDIS_ACK_CHUNK;
        for (size_t i = 0; i < m; i++) {
            argv[3 + i] = s->acks[done + i].id;
            lens[3 + i] = strlen(argv[3 + i]);
        }
        if (redisAsyncCommandArgv(s->ctl.ac, redis_src_on_ack, s, (int)(3 + m),
                                  argv, lens) != REDIS_OK) {
            return VELO_ERR;
        }
        s->ack_wait++;
        done += m;
    }
    int64_t ms = (int64_t)s->ctl.timeout.tv_sec * 1000 +
                 (int64_t)s->ctl.timeout.tv_usec / 1000;
    if (!redis_wait(&s->ctl, redis_src_acks_done, s, ms)) {
        /* A late reply would be counted against the next commit. */
        redis_drop(&s->ctl, "no XACK reply within connect.timeout");
        s->ack_wait = 0;
        return VELO_ERR;
    }
    if (s->ack_wait > 0 || s->ack_bad) {
        s->ack_wait = 0;
        return VELO_ERR;
    }
    memmove(s->acks, s->acks + k, (s->nacks - k) * sizeof(*s->acks));
    s->nacks -= k;
    s->acked += k;
    return VELO_OK;
}

static void redis_source_destroy(struct velo_instance *ins)
{
    struct redis_src *s = ins->context;
    if (s == NULL) {
        return;
    }
    /* The twin runs on s->cn's loop: close it first. */
    redis_conn_fini(&s->ctl);
    redis_conn_fini(&s->cn);
    for (int i = 0; i < 2; i++) {
        free(s->buf[i].text.data);
        free(s->buf[i].e);
    }
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

/* A command of the log: its protocol text is log.data[off, off + len). */
struct redis_cmd {
    size_t off, len;
    size_t bytes; /* for the metric: the row's size */
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
    /* Every command not yet confirmed, oldest first, as protocol text: sent
     * on the current connection up to `sent`, replied to up to
     * `confirmed`; after a reconnect from `confirmed` on again. */
    struct redis_buf log;
    struct redis_cmd *cmds;
    size_t ncmds, cap_cmds, sent, confirmed;
    int failed;
    /* per-row argument building */
    struct redis_buf arena;
    struct redis_buf keybuf;
    size_t *off, *len;
    size_t nargs, cap_args;
    struct velo_metric *m_out, *m_bytes;
};

static void redis_sink_ready(struct redis_conn *cn);
static void redis_sink_lost(struct redis_conn *cn);

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
    redis_close_blocking(&k->cn);
    if (redis_async_start(&k->cn, ctx, redis_sink_ready, redis_sink_lost, k) !=
        VELO_OK) {
        return VELO_ERR;
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
        if (o == NULL || l == NULL) {
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

/* The arguments built for a row as one command in protocol form at the
 * end of the log (formatted here, into the reused log buffer, rather than
 * by hiredis, which would allocate per command). */
static int redis_sink_log(struct redis_sink *k, size_t bytes)
{
    if (k->ncmds == k->cap_cmds) {
        size_t cap = k->cap_cmds ? k->cap_cmds * 2 : 256;
        struct redis_cmd *n = realloc(k->cmds, cap * sizeof(*n));
        if (n == NULL) {
            return VELO_ERR;
        }
        k->cmds = n;
        k->cap_cmds = cap;
    }
    size_t start = k->log.len;
    char head[32];
    int hl = snprintf(head, sizeof(head), "*%zu\r\n", k->nargs);
    if (redis_buf_add(&k->log, head, (size_t)hl) != VELO_OK) {
        return VELO_ERR;
    }
    for (size_t i = 0; i < k->nargs; i++) {
        hl = snprintf(head, sizeof(head), "$%zu\r\n", k->len[i]);
        if (redis_buf_add(&k->log, head, (size_t)hl) != VELO_OK ||
            redis_buf_add(&k->log, k->arena.data + k->off[i], k->len[i]) !=
                VELO_OK ||
            redis_buf_add(&k->log, "\r\n", 2) != VELO_OK) {
            k->log.len = start;
            return VELO_ERR;
        }
    }
    k->cmds[k->ncmds].off = start;
    k->cmds[k->ncmds].len = k->log.len - start;
    k->cmds[k->ncmds].bytes = bytes;
    k->ncmds++;
    return VELO_OK;
}

/* One row into one command at the end of the log.
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
    if (redis_sink_log(k, rec->len) != VELO_OK) {
        velo_plg_error(k->cn.ins, "%s: out of memory", k->cn.url.redacted);
        return VELO_ERR;
    }
    return VELO_OK;
}

/* The reply to the oldest command not yet confirmed. An error reply is
 * final (a wrong type, a full memory): logged with the command, key and
 * Redis' reason; the next sink call fails. */
static void redis_sink_on_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    struct redis_sink *k = priv;
    redisReply *r = reply;
    redis_progress(ac);
    if (ac->data == NULL || r == NULL || k->confirmed >= k->sent) {
        return; /* lost: on_ready sends the unconfirmed again */
    }
    const struct redis_cmd *cmd = &k->cmds[k->confirmed++];
    if (r->type == REDIS_REPLY_ERROR) {
        /* Name the command and key from the protocol text: the third and
         * fifth lines of "*n\r\n$len\r\nCMD\r\n$len\r\nKEY". */
        const char *t = k->log.data + cmd->off;
        const char *lines[5] = {0};
        int nl = 0;
        for (const char *p = t; p < t + cmd->len && nl < 5; p++) {
            if (p == t || p[-1] == '\n') {
                lines[nl++] = p;
            }
        }
        int cl = lines[2] ? (int)strcspn(lines[2], "\r") : 0;
        int kl = lines[4] ? (int)strcspn(lines[4], "\r") : 0;
        if (!k->failed) {
            velo_plg_error(k->cn.ins, "%s: %.*s %.*s failed: %s",
                           k->cn.url.redacted, cl, lines[2] ? lines[2] : "",
                           kl > 200 ? 200 : kl, lines[4] ? lines[4] : "",
                           r->str);
        }
        redis_metric_add(&k->cn, k->cn.m_errors, 1);
        k->failed = 1;
        redis_wake(&k->cn);
        return;
    }
    redis_metric_add(&k->cn, k->m_out, 1);
    redis_metric_add(&k->cn, k->m_bytes, (double)cmd->bytes);
    /* Wake a sink_flush waiting for the last reply, or a sink_write that
     * was pushed back, once below the bound. */
    if (k->confirmed == k->sent || k->ncmds - k->confirmed == k->pipeline - 1) {
        redis_wake(&k->cn);
    }
}

static int redis_sink_send(struct redis_sink *k, size_t i)
{
    const struct redis_cmd *cmd = &k->cmds[i];
    if (redisAsyncFormattedCommand(k->cn.ac, redis_sink_on_reply, k,
                                   k->log.data + cmd->off,
                                   cmd->len) != REDIS_OK) {
        return VELO_ERR;
    }
    k->sent = i + 1;
    return VELO_OK;
}

/* Connected (again): everything unconfirmed goes out, in order. At least
 * once: what was in flight when the connection dropped may have been
 * applied. */
static void redis_sink_ready(struct redis_conn *cn)
{
    struct redis_sink *k = cn->owner;
    k->sent = k->confirmed;
    if (cn->reconnected && k->ncmds > k->confirmed) {
        velo_plg_warn(cn->ins, "resending %zu unconfirmed commands to %s",
                      k->ncmds - k->confirmed, cn->url.redacted);
    }
    for (size_t i = k->confirmed; i < k->ncmds; i++) {
        if (redis_sink_send(k, i) != VELO_OK) {
            return; /* the connection is failing: on_ready comes again */
        }
    }
}

static void redis_sink_lost(struct redis_conn *cn)
{
    struct redis_sink *k = cn->owner;
    k->sent = k->confirmed; /* nothing is in flight on a dead connection */
}

/* Confirmed commands need not be kept: drop them from the front of the
 * log once they are half of it (all of it: start over), so that a sink
 * that never catches up completely still reuses one buffer. */
static void redis_sink_compact(struct redis_sink *k)
{
    size_t c = k->confirmed;
    if (c == 0 || c * 2 < k->ncmds) {
        return;
    }
    size_t base = c < k->ncmds ? k->cmds[c].off : k->log.len;
    memmove(k->log.data, k->log.data + base, k->log.len - base);
    k->log.len -= base;
    for (size_t i = c; i < k->ncmds; i++) {
        k->cmds[i - c].off = k->cmds[i].off - base;
        k->cmds[i - c].len = k->cmds[i].len;
        k->cmds[i - c].bytes = k->cmds[i].bytes;
    }
    k->ncmds -= c;
    k->sent -= c < k->sent ? c : k->sent;
    k->confirmed = 0;
}

static int redis_sink_write(struct velo_instance *ins,
                            const struct velo_str *recs,
                            const struct velo_record_meta *meta, size_t n)
{
    struct redis_sink *k = ins->context;
    redis_pump(&k->cn);
    if (k->failed || k->cn.fatal) {
        return VELO_ERR;
    }
    redis_sink_compact(k);
    if (k->ncmds - k->confirmed >= k->pipeline) {
        return VELO_AGAIN; /* a reply below the bound wakes the engine */
    }
    size_t first = k->ncmds;
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
    /* Not connected: the rows wait in the log for on_ready. */
    if (k->cn.state == REDIS_READY) {
        for (size_t i = first; i < k->ncmds; i++) {
            if (redis_sink_send(k, i) != VELO_OK) {
                break;
            }
        }
    }
    return VELO_OK;
}

/* Durable once every reply of what was written is in: until then
 * VELO_AGAIN (the last reply, or a reconnect, wakes the engine). */
static int redis_sink_flush(struct velo_instance *ins)
{
    struct redis_sink *k = ins->context;
    redis_pump(&k->cn);
    if (k->failed || k->cn.fatal) {
        return VELO_ERR;
    }
    redis_sink_compact(k);
    return k->ncmds == 0 ? VELO_OK : VELO_AGAIN;
}

static void redis_sink_destroy(struct velo_instance *ins)
{
    struct redis_sink *k = ins->context;
    if (k == NULL) {
        return;
    }
    if (k->ncmds > k->confirmed && !k->failed) {
        velo_plg_warn(ins, "%zu commands to %s were not confirmed",
                      k->ncmds - k->confirmed, k->cn.url.redacted);
    }
    redis_conn_fini(&k->cn);
    free(k->cmds);
    free(k->log.data);
    free(k->key);
    free(k->key_column);
    free(k->prefix);
    free(k->field);
    free(k->arena.data);
    free(k->keybuf.data);
    free(k->off);
    free(k->len);
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
 * never command text.
 *
 * lookup_get must answer now: it sends the batch on the asynchronous
 * connection and runs the worker's loop (EVLOOP_ONCE) until every reply
 * is in, for at most connect.timeout. Each reply callback appends its
 * answer to one reused buffer (replies come in order); a connection lost
 * midway is reopened and the batch asked again once.
 */
struct redis_lookup {
    struct redis_conn cn;
    char *prefix;
    char *key_column;
    int string_mode;
    const struct velo_str *keys; /* this batch's, for the key column */
    size_t waiting;              /* replies still to come */
    int bad;                     /* an error reply: logged */
    struct redis_buf json;
    size_t *off, *len; /* answer i in json, off SIZE_MAX: none */
    struct redis_buf keybuf;
    size_t *koff;
    const char **argv;
    size_t *argl;
    size_t cap;
};

static void redis_lookup_destroy(struct velo_instance *ins)
{
    struct redis_lookup *l = ins->context;
    if (l == NULL) {
        return;
    }
    redis_conn_fini(&l->cn);
    free(l->json.data);
    free(l->keybuf.data);
    free(l->off);
    free(l->len);
    free(l->koff);
    free(l->argv);
    free(l->argl);
    free(l->prefix);
    free(l->key_column);
    free(l);
    ins->context = NULL;
}

static void redis_lookup_lost(struct redis_conn *cn)
{
    (void)cn; /* lookup_get sees the state and asks again */
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
    redis_close_blocking(&l->cn);
    if (redis_async_start(&l->cn, ctx, NULL, redis_lookup_lost, l) != VELO_OK) {
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

/* Room for n keys (MGET: n + 1 arguments). */
static int redis_lookup_room(struct redis_lookup *l, size_t n)
{
    if (n + 1 <= l->cap) {
        return VELO_OK;
    }
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
    size_t *ln = realloc(l->len, cap * sizeof(*ln));
    if (ln != NULL) {
        l->len = ln;
    }
    size_t *ko = realloc(l->koff, cap * sizeof(*ko));
    if (ko != NULL) {
        l->koff = ko;
    }
    if (a == NULL || b == NULL || o == NULL || ln == NULL || ko == NULL) {
        return VELO_ERR;
    }
    l->cap = cap;
    return VELO_OK;
}

/* The prefixed keys, one after the other in keybuf; offsets in koff. */
static int redis_lookup_keys(struct redis_lookup *l,
                             const struct velo_str *keys, size_t n)
{
    size_t plen = strlen(l->prefix);
    l->keybuf.len = 0;
    for (size_t i = 0; i < n; i++) {
        l->koff[i] = l->keybuf.len;
        if (redis_buf_add(&l->keybuf, l->prefix, plen) != VELO_OK ||
            redis_buf_add(&l->keybuf, keys[i].ptr, keys[i].len) != VELO_OK) {
            return VELO_ERR;
        }
    }
    l->koff[n] = l->keybuf.len;
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

/* Key i's HGETALL reply: its row, or none for an empty hash. */
static void redis_lookup_on_hash(redisAsyncContext *ac, void *reply, void *priv)
{
    redisReply *r = reply;
    redis_progress(ac);
    if (ac->data == NULL || r == NULL) {
        return;
    }
    struct redis_lookup *l = ((struct redis_conn *)ac->data)->owner;
    size_t i = (size_t)(uintptr_t)priv;
    if (l->waiting > 0) {
        l->waiting--;
    }
    l->off[i] = SIZE_MAX;
    if (r->type == REDIS_REPLY_ERROR) {
        velo_plg_error(l->cn.ins,
                       "%s: HGETALL %.*s: %s (is it a hash? a string "
                       "table needs '<name>.mode'='string')",
                       l->cn.url.redacted, (int)(l->koff[i + 1] - l->koff[i]),
                       l->keybuf.data + l->koff[i], r->str);
        l->bad = 1;
        return;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
        return;
    }
    size_t start = l->json.len;
    if (redis_lookup_hash_json(l, r, &l->keys[i]) != VELO_OK) {
        velo_plg_error(l->cn.ins, "out of memory");
        l->bad = 1;
        return;
    }
    l->off[i] = start;
    l->len[i] = l->json.len - start;
}

/* The MGET reply: each string as it is, nil as none. */
static void redis_lookup_on_mget(redisAsyncContext *ac, void *reply, void *priv)
{
    redisReply *r = reply;
    redis_progress(ac);
    if (ac->data == NULL || r == NULL) {
        return;
    }
    struct redis_lookup *l = ((struct redis_conn *)ac->data)->owner;
    size_t n = (size_t)(uintptr_t)priv;
    l->waiting = 0;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != n) {
        velo_plg_error(
            l->cn.ins, "%s: MGET of %zu keys: %s", l->cn.url.redacted, n,
            r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        l->bad = 1;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const redisReply *e = r->element[i];
        l->off[i] = SIZE_MAX;
        if (e->type != REDIS_REPLY_STRING) {
            continue;
        }
        l->off[i] = l->json.len;
        l->len[i] = e->len;
        if (redis_buf_add(&l->json, e->str, e->len) != VELO_OK) {
            velo_plg_error(l->cn.ins, "out of memory");
            l->bad = 1;
            return;
        }
    }
}

static int redis_lookup_done(void *arg)
{
    struct redis_lookup *l = arg;
    return l->waiting == 0 || l->cn.state != REDIS_READY;
}

/* Send the batch. @return VELO_OK or VELO_ERR (the connection fails). */
static int redis_lookup_send(struct redis_lookup *l, size_t n)
{
    redisAsyncContext *ac = l->cn.ac;
    l->json.len = 0;
    l->bad = 0;
    if (l->string_mode) {
        l->argv[0] = "MGET";
        l->argl[0] = 4;
        for (size_t i = 0; i < n; i++) {
            l->argv[i + 1] = l->keybuf.data + l->koff[i];
            l->argl[i + 1] = l->koff[i + 1] - l->koff[i];
        }
        l->waiting = 1;
        return redisAsyncCommandArgv(ac, redis_lookup_on_mget,
                                     (void *)(uintptr_t)n, (int)n + 1, l->argv,
                                     l->argl) == REDIS_OK
                   ? VELO_OK
                   : VELO_ERR;
    }
    l->waiting = n;
    for (size_t i = 0; i < n; i++) {
        const char *argv[2] = {"HGETALL", l->keybuf.data + l->koff[i]};
        size_t argl[2] = {7, l->koff[i + 1] - l->koff[i]};
        if (redisAsyncCommandArgv(ac, redis_lookup_on_hash,
                                  (void *)(uintptr_t)i, 2, argv,
                                  argl) != REDIS_OK) {
            return VELO_ERR;
        }
    }
    return VELO_OK;
}

static int redis_lookup_get(struct velo_instance *ins,
                            const struct velo_str *keys, size_t n,
                            struct velo_source_batch *out)
{
    struct redis_lookup *l = ins->context;
    out->count = 0;
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
    l->keys = keys;
    int64_t ms = (int64_t)l->cn.timeout.tv_sec * 1000 +
                 (int64_t)l->cn.timeout.tv_usec / 1000;
    /* A connection lost midway is reopened and the batch asked again
     * once; a second failure is the job's error (the join has no answer
     * to give). */
    for (int attempt = 0;; attempt++) {
        if (!redis_wait_ready(&l->cn, 1)) {
            if (!l->cn.fatal) {
                velo_plg_error(ins,
                               "lookup: cannot reach %s within "
                               "connect.timeout (%" PRId64 " ms): %s",
                               l->cn.url.redacted, ms,
                               l->cn.why[0] != '\0' ? l->cn.why : "no answer");
                redis_metric_add(&l->cn, l->cn.m_errors, 1);
            }
            return VELO_ERR;
        }
        if (redis_lookup_send(l, n) == VELO_OK &&
            redis_wait(&l->cn, redis_lookup_done, l, ms) &&
            l->cn.state == REDIS_READY) {
            break;
        }
        if (l->cn.state == REDIS_READY) {
            /* No answer in time: the late replies must not be taken for
             * the next batch's. */
            redis_drop(&l->cn, "no reply within connect.timeout");
            velo_plg_error(ins,
                           "lookup of %zu keys in %s: no reply within "
                           "connect.timeout (%" PRId64 " ms)",
                           n, l->cn.url.redacted, ms);
            redis_metric_add(&l->cn, l->cn.m_errors, 1);
            return VELO_ERR;
        }
        if (attempt == 1 || l->cn.fatal) {
            velo_plg_error(ins,
                           "lookup in %s failed: the connection was "
                           "lost twice",
                           l->cn.url.redacted);
            return VELO_ERR;
        }
    }
    if (l->bad) {
        redis_metric_add(&l->cn, l->cn.m_errors, 1);
        return VELO_ERR;
    }
    /* The buffer stopped moving: point at it. */
    for (size_t i = 0; i < n; i++) {
        if (l->off[i] == SIZE_MAX) {
            out->payload[i].ptr = NULL;
            out->payload[i].len = 0;
        } else {
            out->payload[i].ptr = l->json.data + l->off[i];
            out->payload[i].len = l->len[i];
        }
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
