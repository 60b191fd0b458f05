/*
 * The Kafka connector (librdkafka).
 *
 * Source: a consumer-group member subscribed to one topic (all its
 * partitions). Reads never block: rd_kafka_consumer_poll(rk, 0) until the
 * batch is full or nothing is ready. Offsets are never committed by
 * librdkafka on its own (enable.auto.commit=false): source_position
 * serializes the next offset of every partition read so far, and
 * source_commit commits exactly that once the engine says its sinks have
 * durably written everything before it (at-least-once).
 *
 * Sink: an idempotent producer (acks=all, lz4 by default); one message per
 * record, the key from the record's meta when there is one, the headers
 * from the output's `_headers` column (sink_write_headers: a JSON object
 * per record, parsed in kafka-headers.c). A failed delivery is reported
 * by the next sink_write or sink_flush.
 *
 * Exactly once ('x.exactly.once' or 'x.transactional.id'): the sink is a
 * transactional producer. The first write after a checkpoint begins a
 * transaction; sink_flush (the engine's checkpoint barrier) sends the read
 * positions of the job's Kafka sources on the same brokers into it and
 * commits it, so output and consumed offsets become visible together. The
 * sources' own source_commit then commits nothing. Sinks and sources of one
 * job find each other in a small registry keyed by ctx->job. A source with
 * 'x.exactly.once' reads with isolation.level=read_committed.
 *
 * Every callback of librdkafka (rebalance, errors, logs, commits,
 * deliveries) is served from our own poll calls, so all of them run on the
 * job's thread: logs go through the main queue (log.queue=true) rather than
 * librdkafka's internal threads.
 *
 * The event loop: nothing here blocks the job's thread while it runs.
 * librdkafka signals each queue we serve (the consumer's, the producer's
 * main queue) on an eventfd watched on the job's loop (ctx->base): the
 * source's wakes the job when messages arrive after it found none; the
 * sink's serves delivery reports there and wakes the job when it waits
 * for them (a flush, or a full producer queue). Only the exactly-once
 * sink's transaction calls wait, bounded, for the coordinator.
 *
 * Secrets: values of passthrough properties are never logged; errors name
 * the key only. The URI shown in messages is rebuilt from brokers and
 * topic, so it never holds credentials.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <librdkafka/rdkafka.h>

#include <velo/velo.h>

#include "kafka-internal.h"

#define KAFKA_PASSTHROUGH "kafka."
#define KAFKA_LABEL_MAX 512
#define KAFKA_ERR_MAX 512
/* While the brokers are unreachable, say so at most this often. */
#define KAFKA_WARN_INTERVAL_S 10
/* How long closing a consumer may wait to leave its group. */
#define KAFKA_CLOSE_WAIT_S 5
/* A source position as text ("v1 p:off ..."), as kafka_offsets_read
 * accepts it. */
#define KAFKA_POS_MAX 8192
/* Kafka sources one transaction can carry the offsets of. */
#define KAFKA_TXN_SOURCES_MAX 32
/* Blocking transaction calls (init, send offsets, commit, abort). */
#define KAFKA_TXN_TIMEOUT_MS 30000

static const struct velo_config_map kafka_config[] = {
    {VELO_CONFIG_STR, "bootstrap.servers", "",
     offsetof(struct kafka_conf, bootstrap_servers),
     "brokers, host:port[,host:port...] (a kafka:// URI sets it too)"},
    {VELO_CONFIG_STR, "topic", "", offsetof(struct kafka_conf, topic),
     "the topic (a kafka://host:port/topic URI sets it too)"},
    {VELO_CONFIG_STR, "group.id", "", offsetof(struct kafka_conf, group_id),
     "source: the consumer group (default velo-<name>)"},
    {VELO_CONFIG_STR, "auto.offset.reset", "earliest",
     offsetof(struct kafka_conf, auto_offset_reset),
     "source: where a group without committed offsets starts: earliest "
     "or latest"},
    {VELO_CONFIG_STR, "compression", "lz4",
     offsetof(struct kafka_conf, compression),
     "sink: none, gzip, snappy, lz4 or zstd"},
    {VELO_CONFIG_INT, "linger.ms", "5", offsetof(struct kafka_conf, linger_ms),
     "sink: how long the producer waits to fill a batch, in ms"},
    {VELO_CONFIG_STR, "acks", "all", offsetof(struct kafka_conf, acks),
     "sink: acknowledgements per message: all, 1 or 0"},
    {VELO_CONFIG_BOOL, "enable.idempotence", "true",
     offsetof(struct kafka_conf, enable_idempotence),
     "sink: idempotent producer (no duplicates from retries)"},
    {VELO_CONFIG_DURATION, "connect.timeout", "10s",
     offsetof(struct kafka_conf, connect_timeout_ms),
     "how long opening waits for the brokers' metadata before failing"},
    {VELO_CONFIG_DURATION, "delivery.timeout", "2m",
     offsetof(struct kafka_conf, delivery_timeout_ms),
     "sink: a message not acknowledged by then fails the job"},
    {VELO_CONFIG_DURATION, "session.timeout", "45s",
     offsetof(struct kafka_conf, session_timeout_ms),
     "source: a group member silent this long loses its partitions"},
    {VELO_CONFIG_BOOL, "exactly.once", "false",
     offsetof(struct kafka_conf, exactly_once),
     "source: read only committed transactions (read_committed); sink: "
     "transactional producer that commits the job's Kafka source offsets "
     "with its output"},
    {VELO_CONFIG_STR, "transactional.id", "",
     offsetof(struct kafka_conf, transactional_id),
     "sink: transactional id (default velo-<job>-<name>; setting it "
     "implies exactly.once); stable across restarts so an old instance "
     "is fenced off"},
    {0}};

/* ---- Shared: URIs, configuration, errors -------------------------------- */

/* Where an instance connects, resolved from its URI and properties. */
struct kafka_target {
    char brokers[KAFKA_LABEL_MAX];
    char topic[256];
    char label[KAFKA_LABEL_MAX + 280]; /* kafka://brokers/topic, no
                                          credentials */
};

/* How a property of this instance is written in SQL: a source named by
 * its URI has no short name (and its URI may hold secrets). */
static const char *kafka_owner(const struct velo_connector_ctx *ctx)
{
    if (ctx->name == NULL || strstr(ctx->name, "://") != NULL) {
        return "<name>";
    }
    return ctx->name;
}

/*
 * kafka://host:port[,host:port]/topic. Credentials in a URI are refused:
 * they would end up in logs and in the plan; SASL settings go in
 * 'x.kafka.sasl.*' properties instead.
 */
static int kafka_target_resolve(struct velo_instance *ins,
                                const struct kafka_conf *conf,
                                const struct velo_connector_ctx *ctx,
                                struct kafka_target *t)
{
    memset(t, 0, sizeof(*t));
    if (ctx->uri != NULL && ctx->uri[0] != '\0') {
        const char *u = ctx->uri;
        if (strncmp(u, "kafka://", 8) != 0) {
            velo_plg_error(ins, "not a Kafka URI (write "
                                "kafka://host:port/topic)");
            return VELO_ERR;
        }
        u += 8;
        const char *slash = strchr(u, '/');
        size_t hlen = slash != NULL ? (size_t)(slash - u) : strlen(u);
        if (memchr(u, '@', hlen) != NULL) {
            velo_plg_error(ins,
                           "a kafka:// URI cannot hold credentials: "
                           "set '%s.kafka.sasl.username' and "
                           "'%s.kafka.sasl.password' instead",
                           kafka_owner(ctx), kafka_owner(ctx));
            return VELO_ERR;
        }
        if (hlen >= sizeof(t->brokers)) {
            velo_plg_error(ins, "the broker list in the URI is too long");
            return VELO_ERR;
        }
        memcpy(t->brokers, u, hlen);
        if (slash != NULL) {
            const char *tp = slash + 1;
            size_t tlen = strcspn(tp, "?#");
            if (tlen >= sizeof(t->topic)) {
                velo_plg_error(ins, "the topic in the URI is too long");
                return VELO_ERR;
            }
            memcpy(t->topic, tp, tlen);
        }
    }
    /* Properties fill what the URI left out. */
    if (t->brokers[0] == '\0' && conf->bootstrap_servers != NULL) {
        snprintf(t->brokers, sizeof(t->brokers), "%s", conf->bootstrap_servers);
    }
    if (t->topic[0] == '\0' && conf->topic != NULL) {
        snprintf(t->topic, sizeof(t->topic), "%s", conf->topic);
    }
    if (t->brokers[0] == '\0') {
        velo_plg_error(ins,
                       "no brokers: write FROM kafka://host:port/topic "
                       "or set '%s.bootstrap.servers'",
                       kafka_owner(ctx));
        return VELO_ERR;
    }
    if (strchr(t->brokers, '@') != NULL) {
        velo_plg_error(ins,
                       "bootstrap.servers cannot hold credentials: set "
                       "'%s.kafka.sasl.username' and "
                       "'%s.kafka.sasl.password' instead",
                       kafka_owner(ctx), kafka_owner(ctx));
        return VELO_ERR;
    }
    if (t->topic[0] == '\0') {
        velo_plg_error(ins,
                       "no topic: write kafka://%s/<topic> or set "
                       "'%s.topic'",
                       t->brokers, kafka_owner(ctx));
        return VELO_ERR;
    }
    snprintf(t->label, sizeof(t->label), "kafka://%s/%s", t->brokers, t->topic);
    return VELO_OK;
}

/* Set one librdkafka property. The value is not shown: it may be a
 * secret (sasl.password, ssl.key.password). */
static int kafka_set(struct velo_instance *ins, rd_kafka_conf_t *rc,
                     const char *key, const char *value, const char *label)
{
    char errstr[KAFKA_ERR_MAX];
    if (rd_kafka_conf_set(rc, key, value, errstr, sizeof(errstr)) !=
        RD_KAFKA_CONF_OK) {
        velo_plg_error(ins, "%s: librdkafka property '%s': %s", label, key,
                       strstr(errstr, value) != NULL && value[0] != '\0'
                           ? "invalid value"
                           : errstr);
        return VELO_ERR;
    }
    return VELO_OK;
}

/* 'x.kafka.<property>' passes through to librdkafka, after our own
 * settings so it can override them (except the ones at-least-once needs). */
static int kafka_passthrough(struct velo_instance *ins, rd_kafka_conf_t *rc,
                             const struct velo_connector_ctx *ctx,
                             const char *label, int is_source)
{
    size_t plen = strlen(KAFKA_PASSTHROUGH);
    for (size_t i = 0; i < ctx->nprops; i++) {
        const char *k = ctx->props[i].key;
        if (k == NULL || strncmp(k, KAFKA_PASSTHROUGH, plen) != 0) {
            continue;
        }
        k += plen;
        if (is_source && (strcmp(k, "enable.auto.commit") == 0 ||
                          strcmp(k, "enable.auto.offset.store") == 0)) {
            velo_plg_error(ins,
                           "%s: '%s.kafka.%s' cannot be set: offsets "
                           "are committed only after the sinks have "
                           "written the records (at-least-once)",
                           label, kafka_owner(ctx), k);
            return VELO_ERR;
        }
        if (!is_source && strcmp(k, "transactional.id") == 0) {
            /* The sink must know it is transactional to begin and commit
             * its transactions. */
            velo_plg_error(ins,
                           "%s: write '%s.transactional.id' (without "
                           "'kafka.'): it turns on exactly once",
                           label, kafka_owner(ctx));
            return VELO_ERR;
        }
        if (kafka_set(ins, rc, k,
                      ctx->props[i].value != NULL ? ctx->props[i].value : "",
                      label) != VELO_OK) {
            return VELO_ERR;
        }
    }
    return VELO_OK;
}

static void kafka_sink_txn_log(struct velo_instance *ins, const char *buf);

/* librdkafka's log lines, forwarded from the main queue (our thread).
 * Connection retries are routine: only severe lines reach the log at
 * warning level, the rest at debug. A transaction's failure (TXNERR) is
 * also kept by the sink: it is the reason its purged messages fail. */
static void kafka_log_cb(const rd_kafka_t *rk, int level, const char *fac,
                         const char *buf)
{
    struct velo_instance *ins = rd_kafka_opaque(rk);
    if (ins == NULL) {
        return;
    }
    if (strcmp(fac, "TXNERR") == 0 && rd_kafka_type(rk) == RD_KAFKA_PRODUCER) {
        kafka_sink_txn_log(ins, buf);
    }
    if (level <= 2) {
        velo_plg_error(ins, "librdkafka %s: %s", fac, buf);
    } else {
        velo_plg_debug(ins, "librdkafka %s: %s", fac, buf);
    }
}

/* Common settings; the handle's opaque is the instance. */
static rd_kafka_conf_t *kafka_conf_base(struct velo_instance *ins,
                                        const struct kafka_target *t,
                                        const struct velo_connector_ctx *ctx)
{
    rd_kafka_conf_t *rc = rd_kafka_conf_new();
    if (rc == NULL) {
        return NULL;
    }
    char client_id[300];
    snprintf(client_id, sizeof(client_id), "velo-%s",
             strcmp(kafka_owner(ctx), "<name>") != 0 ? ctx->name : t->topic);
    if (kafka_set(ins, rc, "bootstrap.servers", t->brokers, t->label) !=
            VELO_OK ||
        kafka_set(ins, rc, "client.id", client_id, t->label) != VELO_OK ||
        kafka_set(ins, rc, "log.queue", "true", t->label) != VELO_OK) {
        rd_kafka_conf_destroy(rc);
        return NULL;
    }
    rd_kafka_conf_set_log_cb(rc, kafka_log_cb);
    rd_kafka_conf_set_opaque(rc, ins);
    return rc;
}

/*
 * Opening checks that the brokers answer and the topic exists, within
 * connect.timeout: a wrong address or topic is an error now, not a job
 * that waits forever. All topics are listed (rather than asking for one)
 * so that the check never auto-creates the topic.
 * @return the topic's partition count, or VELO_ERR (logged).
 */
static int kafka_check_topic(struct velo_instance *ins, rd_kafka_t *rk,
                             const struct kafka_target *t, int64_t timeout_ms)
{
    const struct rd_kafka_metadata *md = NULL;
    int tmo = timeout_ms > 0 && timeout_ms < 600000 ? (int)timeout_ms : 10000;
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 1, NULL, &md, tmo);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        velo_plg_error(ins,
                       "%s: no answer from the brokers within %d ms "
                       "(%s); check bootstrap.servers and that Kafka "
                       "is running",
                       t->label, tmo, rd_kafka_err2str(err));
        return VELO_ERR;
    }
    int parts = -1;
    for (int i = 0; i < md->topic_cnt; i++) {
        const struct rd_kafka_metadata_topic *mt = &md->topics[i];
        if (strcmp(mt->topic, t->topic) != 0) {
            continue;
        }
        if (mt->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            velo_plg_error(ins, "%s: topic '%s': %s", t->label, t->topic,
                           rd_kafka_err2str(mt->err));
            rd_kafka_metadata_destroy(md);
            return VELO_ERR;
        }
        parts = mt->partition_cnt;
    }
    rd_kafka_metadata_destroy(md);
    if (parts <= 0) {
        velo_plg_error(ins,
                       "%s: topic '%s' does not exist (create it "
                       "first, e.g. kafka-topics --create)",
                       t->label, t->topic);
        return VELO_ERR;
    }
    return parts;
}

/* Connectivity changes, said once per change rather than per retry, and
 * counted: every error librdkafka reports, and every return from "down"
 * (a reconnect) once traffic flows again. */
struct kafka_health {
    int down;
    time_t last_warn;
    struct velo_metric *m_errors, *m_reconnects; /* NULL: no metrics */
};

static void kafka_metric_add(struct velo_instance *ins, struct velo_metric *m,
                             double v)
{
    if (m != NULL && VELO_HOST_HAS(ins->host, metric_add)) {
        ins->host->metric_add(m, v);
    }
}

/* velo_connector_errors_total and _reconnects_total, labelled like the
 * other connectors' (connector, and source= or sink= the name). */
static void kafka_health_metrics(struct velo_instance *ins,
                                 struct kafka_health *h, const char *labels)
{
    if (VELO_HOST_HAS(ins->host, metric_counter)) {
        h->m_errors = ins->host->metric_counter(
            "velo_connector_errors_total",
            "errors: broker connections, deliveries, consumer errors, bad "
            "records",
            labels);
        h->m_reconnects = ins->host->metric_counter(
            "velo_connector_reconnects_total",
            "returns to the brokers after they were unreachable", labels);
    }
}

static int kafka_transient(rd_kafka_resp_err_t err)
{
    return err == RD_KAFKA_RESP_ERR__TRANSPORT ||
           err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN ||
           err == RD_KAFKA_RESP_ERR__RESOLVE ||
           err == RD_KAFKA_RESP_ERR__TIMED_OUT ||
           err == RD_KAFKA_RESP_ERR__MSG_TIMED_OUT;
}

static void kafka_health_down(struct velo_instance *ins, struct kafka_health *h,
                              const char *label, const char *reason)
{
    kafka_metric_add(ins, h->m_errors, 1);
    time_t now = time(NULL);
    if (!h->down || now - h->last_warn >= KAFKA_WARN_INTERVAL_S) {
        velo_plg_warn(ins, "%s: %s; retrying", label, reason);
        h->last_warn = now;
    }
    h->down = 1;
}

static void kafka_health_up(struct velo_instance *ins, struct kafka_health *h,
                            const char *label)
{
    if (h->down) {
        velo_plg_info(ins, "%s: connected again", label);
        kafka_metric_add(ins, h->m_reconnects, 1);
        h->down = 0;
    }
}

/* ---- Exactly once: the Kafka instances of one job ----------------------- */

/*
 * A transactional sink commits the offsets of its job's Kafka sources
 * inside its transaction, so it has to find them, and a source has to know
 * that its offsets went that way. Every instance registers here under its
 * job: ctx->job, which the engine sets to the job's file name ("<command
 * line>" for -e). The instances of one job run on its thread; the list is
 * shared by all jobs of the process, hence the lock.
 */
struct kafka_source;
struct kafka_sink;

struct kafka_member {
    char *job;
    struct kafka_source *src; /* a source, or */
    struct kafka_sink *sink;  /* a transactional sink */
    struct kafka_member *next;
};

static pthread_mutex_t kafka_reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct kafka_member *kafka_reg;

static const char *kafka_job(const struct velo_connector_ctx *ctx)
{
    return ctx->job != NULL && ctx->job[0] != '\0' ? ctx->job : "job";
}

static int kafka_reg_add(const char *job, struct kafka_source *src,
                         struct kafka_sink *sink)
{
    struct kafka_member *m = calloc(1, sizeof(*m));
    if (m == NULL || (m->job = strdup(job)) == NULL) {
        free(m);
        return VELO_ERR;
    }
    m->src = src;
    m->sink = sink;
    pthread_mutex_lock(&kafka_reg_lock);
    m->next = kafka_reg;
    kafka_reg = m;
    pthread_mutex_unlock(&kafka_reg_lock);
    return VELO_OK;
}

static void kafka_reg_remove(const void *instance)
{
    pthread_mutex_lock(&kafka_reg_lock);
    for (struct kafka_member **pp = &kafka_reg; *pp != NULL;
         pp = &(*pp)->next) {
        struct kafka_member *m = *pp;
        if ((const void *)m->src == instance ||
            (const void *)m->sink == instance) {
            *pp = m->next;
            free(m->job);
            free(m);
            break;
        }
    }
    pthread_mutex_unlock(&kafka_reg_lock);
}

/* The transactional sink of `job`, or NULL. */
static struct kafka_sink *kafka_reg_txn_sink(const char *job)
{
    struct kafka_sink *found = NULL;
    pthread_mutex_lock(&kafka_reg_lock);
    for (struct kafka_member *m = kafka_reg; m != NULL; m = m->next) {
        if (m->sink != NULL && strcmp(m->job, job) == 0) {
            found = m->sink;
            break;
        }
    }
    pthread_mutex_unlock(&kafka_reg_lock);
    return found;
}

/* Up to `cap` Kafka sources of `job` into out. @return how many there
 * are (more than cap: only cap were stored). */
static size_t kafka_reg_sources(const char *job, struct kafka_source **out,
                                size_t cap)
{
    size_t n = 0;
    pthread_mutex_lock(&kafka_reg_lock);
    for (struct kafka_member *m = kafka_reg; m != NULL; m = m->next) {
        if (m->src != NULL && strcmp(m->job, job) == 0) {
            if (n < cap) {
                out[n] = m->src;
            }
            n++;
        }
    }
    pthread_mutex_unlock(&kafka_reg_lock);
    return n;
}

/* Defined with the sink: does a transactional sink of `job` on these
 * brokers carry the offsets of its sources? */
static int kafka_txn_covers(const char *job, const char *brokers);

/* ---- Source ------------------------------------------------------------- */

/* Next offset per partition, indexed by partition; -1 when unknown. */
struct kafka_offsets {
    int64_t *next;
    int32_t n;
};

static int kafka_offsets_set(struct kafka_offsets *o, int32_t p, int64_t off)
{
    if (p < 0) {
        return VELO_ERR;
    }
    if (p >= o->n) {
        int32_t n = p + 1 > o->n * 2 ? p + 1 : o->n * 2;
        int64_t *g = realloc(o->next, (size_t)n * sizeof(*g));
        if (g == NULL) {
            return VELO_ERR;
        }
        for (int32_t i = o->n; i < n; i++) {
            g[i] = -1;
        }
        o->next = g;
        o->n = n;
    }
    o->next[p] = off;
    return VELO_OK;
}

/* Text form "v1 p:off p:off": readable in a checkpoint file. */
static int kafka_offsets_write(const struct kafka_offsets *o, uint8_t *buf,
                               size_t cap)
{
    size_t len = 0;
    int n = snprintf((char *)buf, cap, "v1");
    if (n < 0 || (size_t)n >= cap) {
        return VELO_ERR;
    }
    len = (size_t)n;
    for (int32_t p = 0; p < o->n; p++) {
        if (o->next[p] < 0) {
            continue;
        }
        n = snprintf((char *)buf + len, cap - len, " %" PRId32 ":%" PRId64, p,
                     o->next[p]);
        if (n < 0 || (size_t)n >= cap - len) {
            return VELO_ERR;
        }
        len += (size_t)n;
    }
    return (int)len;
}

static int kafka_offsets_read(struct kafka_offsets *o, const uint8_t *pos,
                              size_t len)
{
    char text[8192];
    if (len < 2 || len >= sizeof(text) || memcmp(pos, "v1", 2) != 0) {
        return VELO_ERR;
    }
    memcpy(text, pos, len);
    text[len] = '\0';
    const char *s = text + 2;
    while (*s == ' ') {
        char *end;
        long long p = strtoll(s + 1, &end, 10);
        if (*end != ':' || p < 0 || p > INT32_MAX) {
            return VELO_ERR;
        }
        long long off = strtoll(end + 1, &end, 10);
        if (off < 0 || kafka_offsets_set(o, (int32_t)p, off) != VELO_OK) {
            return VELO_ERR;
        }
        s = end;
    }
    return *s == '\0' ? VELO_OK : VELO_ERR;
}

struct kafka_source {
    struct velo_instance *ins;
    rd_kafka_t *rk;
    struct kafka_target t;
    rd_kafka_message_t **held; /* messages of the last batch */
    size_t nheld, capheld;
    struct kafka_offsets read;   /* next offsets after what was read */
    struct kafka_offsets resume; /* from source_seek, applied on assign */
    struct kafka_health health;
    int failed;
    int closing; /* no more warnings: we are leaving */
    int commits_pending;
    char last_commit[1024]; /* the last position committed, as text */
    char job[256];          /* registry key (ctx->job) */
    int registered;
    /* Exactly once: the position a transaction carried last (committed)
     * and the one the current commit is carrying, as text. */
    char *txn_sent, *txn_pending;
    /* Headers of the last batch as JSON objects, for out->headers. */
    char *hbuf;
    size_t hlen, hcap;
    size_t *hoff, *hend; /* per record of the batch; hend 0: none */
    size_t hoffcap;
    /* The engine's wake. The consumer queue's IO event: librdkafka writes
     * queue_fd (an eventfd) when the queue gets messages or events after
     * being empty; queue_ev, on the job's loop, drains it and wakes the
     * job, which then reads at once instead of at its next idle tick. */
    rd_kafka_queue_t *queue;
    int queue_fd;
    struct event *queue_ev;
    void (*wake)(void *wake_arg);
    void *wake_arg;
    /* Metrics (NULL when the host has none): records and bytes read, and
     * the lag (messages behind the partitions' ends), at most once a
     * second. */
    struct velo_metric *m_in, *m_bytes, *m_lag;
    time_t lag_at;
};

/* The consumer queue went from empty to not empty. On the job's loop. */
static void kafka_source_queue_ev(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct kafka_source *st = arg;
    uint64_t n;
    ssize_t r = read(fd, &n, sizeof(n)); /* resets the eventfd */
    (void)r;
    if (st->wake != NULL) {
        st->wake(st->wake_arg);
    }
}

/*
 * librdkafka writes `one` to an eventfd whenever a queue that was empty
 * gets an element; the fd is watched on the job's loop. Only the edge is
 * signalled, so whoever serves the queue must drain it (a read that
 * fills its batch reads again at once: it is not waiting).
 * @return VELO_OK, or VELO_ERR (errno).
 */
static int kafka_queue_watch(rd_kafka_queue_t *q, struct event_base *base,
                             event_callback_fn cb, void *arg, int *fd,
                             struct event **ev)
{
    static const uint64_t one = 1;
    if (base == NULL) {
        errno = EINVAL; /* a host older than ABI 1.2 */
        return VELO_ERR;
    }
    *fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (*fd < 0) {
        return VELO_ERR;
    }
    *ev = event_new(base, *fd, EV_READ | EV_PERSIST, cb, arg);
    if (*ev == NULL || event_add(*ev, NULL) != 0) {
        return VELO_ERR;
    }
    rd_kafka_queue_io_event_enable(q, *fd, &one, sizeof(one));
    return VELO_OK;
}

static void kafka_queue_unwatch(rd_kafka_queue_t *q, int *fd, struct event **ev)
{
    if (q != NULL && *fd >= 0) {
        rd_kafka_queue_io_event_enable(q, -1, NULL, 0);
    }
    if (*ev != NULL) {
        event_free(*ev);
        *ev = NULL;
    }
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

static int hbuf_add(struct kafka_source *st, const char *p, size_t n)
{
    if (st->hlen + n > st->hcap) {
        size_t cap = st->hcap ? st->hcap * 2 : 4096;
        while (cap < st->hlen + n) {
            cap *= 2;
        }
        char *nb = realloc(st->hbuf, cap);
        if (nb == NULL) {
            return VELO_ERR;
        }
        st->hbuf = nb;
        st->hcap = cap;
    }
    memcpy(st->hbuf + st->hlen, p, n);
    st->hlen += n;
    return VELO_OK;
}

/* A JSON string of n bytes: quotes, backslashes and control characters
 * escaped; other bytes as they are. */
static int hbuf_json_str(struct kafka_source *st, const char *p, size_t n)
{
    if (hbuf_add(st, "\"", 1) != VELO_OK) {
        return VELO_ERR;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            if (hbuf_add(st, esc, 2) != VELO_OK) {
                return VELO_ERR;
            }
        } else if (c < 0x20) {
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            if (hbuf_add(st, esc, 6) != VELO_OK) {
                return VELO_ERR;
            }
        } else if (hbuf_add(st, &p[i], 1) != VELO_OK) {
            return VELO_ERR;
        }
    }
    return hbuf_add(st, "\"", 1);
}

/* The message's headers as {"name": "value", ...} into the batch's
 * header buffer; hend[i] stays 0 when it has none. */
static int kafka_headers_json(struct kafka_source *st, rd_kafka_message_t *m,
                              size_t i)
{
    rd_kafka_headers_t *hdrs = NULL;
    st->hend[i] = 0;
    if (rd_kafka_message_headers(m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        hdrs == NULL || rd_kafka_header_cnt(hdrs) == 0) {
        return VELO_OK;
    }
    st->hoff[i] = st->hlen;
    const char *name;
    const void *val;
    size_t vlen;
    if (hbuf_add(st, "{", 1) != VELO_OK) {
        return VELO_ERR;
    }
    for (size_t k = 0; rd_kafka_header_get_all(hdrs, k, &name, &val, &vlen) ==
                       RD_KAFKA_RESP_ERR_NO_ERROR;
         k++) {
        if ((k > 0 && hbuf_add(st, ",", 1) != VELO_OK) ||
            hbuf_json_str(st, name, strlen(name)) != VELO_OK ||
            hbuf_add(st, ":", 1) != VELO_OK ||
            (val == NULL ? hbuf_add(st, "null", 4)
                         : hbuf_json_str(st, val, vlen)) != VELO_OK) {
            return VELO_ERR;
        }
    }
    if (hbuf_add(st, "}", 1) != VELO_OK) {
        return VELO_ERR;
    }
    st->hend[i] = st->hlen;
    return VELO_OK;
}

/* Records and bytes of this read; the lag at most once a second, from
 * the positions and the locally cached high watermarks (no broker call). */
static void kafka_source_metrics(struct kafka_source *st,
                                 const struct velo_source_batch *out)
{
    const struct velo_host_api *h = st->ins->host;
    if (st->m_in == NULL || !VELO_HOST_HAS(h, metric_add)) {
        return;
    }
    size_t bytes = 0;
    for (size_t i = 0; i < out->count; i++) {
        bytes += out->payload[i].len;
    }
    h->metric_add(st->m_in, (double)out->count);
    h->metric_add(st->m_bytes, (double)bytes);
    time_t now = time(NULL);
    if (st->m_lag == NULL || now == st->lag_at) {
        return;
    }
    st->lag_at = now;
    rd_kafka_topic_partition_list_t *asg = NULL;
    if (rd_kafka_assignment(st->rk, &asg) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        asg == NULL) {
        return;
    }
    int64_t lag = 0;
    if (asg->cnt > 0 &&
        rd_kafka_position(st->rk, asg) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        for (int i = 0; i < asg->cnt; i++) {
            int64_t lo = 0, hi = 0;
            if (rd_kafka_get_watermark_offsets(
                    st->rk, asg->elems[i].topic, asg->elems[i].partition, &lo,
                    &hi) != RD_KAFKA_RESP_ERR_NO_ERROR ||
                hi < 0) {
                continue;
            }
            int64_t pos = asg->elems[i].offset >= 0 ? asg->elems[i].offset
                                                    : lo;
            lag += hi > pos ? hi - pos : 0;
        }
    }
    rd_kafka_topic_partition_list_destroy(asg);
    h->metric_set(st->m_lag, (double)lag);
}

static void kafka_source_release(struct kafka_source *st)
{
    for (size_t i = 0; i < st->nheld; i++) {
        rd_kafka_message_destroy(st->held[i]);
    }
    st->nheld = 0;
}

static void kafka_list_partitions(const rd_kafka_topic_partition_list_t *l,
                                  char *out, size_t cap)
{
    size_t len = 0;
    out[0] = '\0';
    for (int i = 0; i < l->cnt && len + 16 < cap; i++) {
        int n = snprintf(out + len, cap - len, "%s%" PRId32, i > 0 ? "," : "",
                         l->elems[i].partition);
        if (n > 0) {
            len += (size_t)n;
        }
    }
}

/* Runs inside rd_kafka_consumer_poll, on our thread. */
static void kafka_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                               rd_kafka_topic_partition_list_t *parts,
                               void *opaque)
{
    struct velo_instance *ins = opaque;
    struct kafka_source *st = ins->context;
    int cooperative =
        strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    char list[256];
    kafka_list_partitions(parts, list, sizeof(list));
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        /* A checkpointed position wins over the group's offsets. */
        for (int i = 0; st != NULL && i < parts->cnt; i++) {
            int32_t p = parts->elems[i].partition;
            if (p >= 0 && p < st->resume.n && st->resume.next[p] >= 0) {
                parts->elems[i].offset = st->resume.next[p];
            }
        }
        velo_plg_info(ins, "%s: assigned partitions [%s]",
                      st != NULL ? st->t.label : "kafka", list);
        rd_kafka_error_t *e = NULL;
        if (cooperative) {
            e = rd_kafka_incremental_assign(rk, parts);
        } else {
            rd_kafka_resp_err_t ae = rd_kafka_assign(rk, parts);
            if (ae != RD_KAFKA_RESP_ERR_NO_ERROR) {
                velo_plg_warn(ins, "assign failed: %s", rd_kafka_err2str(ae));
            }
        }
        if (e != NULL) {
            velo_plg_warn(ins, "assign failed: %s", rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
        }
        return;
    }
    /* Revoked: what was read from these partitions and not committed
     * yet is read again by their next owner (at-least-once), so they
     * leave our position. */
    velo_plg_info(ins, "%s: partitions [%s] revoked",
                  st != NULL ? st->t.label : "kafka", list);
    for (int i = 0; st != NULL && i < parts->cnt; i++) {
        int32_t p = parts->elems[i].partition;
        if (p >= 0 && p < st->read.n) {
            st->read.next[p] = -1;
        }
    }
    if (cooperative) {
        rd_kafka_error_t *e = rd_kafka_incremental_unassign(rk, parts);
        if (e != NULL) {
            rd_kafka_error_destroy(e);
        }
    } else {
        rd_kafka_assign(rk, NULL);
    }
}

static void kafka_source_error_cb(rd_kafka_t *rk, int err, const char *reason,
                                  void *opaque)
{
    struct velo_instance *ins = opaque;
    struct kafka_source *st = ins->context;
    if (st == NULL || st->closing) {
        return;
    }
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char why[KAFKA_ERR_MAX];
        rd_kafka_fatal_error(rk, why, sizeof(why));
        velo_plg_error(ins, "%s: fatal: %s", st->t.label, why);
        kafka_metric_add(ins, st->health.m_errors, 1);
        st->failed = 1;
    } else if (err == RD_KAFKA_RESP_ERR__AUTHENTICATION) {
        velo_plg_error(ins, "%s: authentication failed: %s", st->t.label,
                       reason);
        kafka_metric_add(ins, st->health.m_errors, 1);
        st->failed = 1;
    } else if (kafka_transient((rd_kafka_resp_err_t)err)) {
        kafka_health_down(ins, &st->health, st->t.label, reason);
    } else {
        velo_plg_warn(ins, "%s: %s", st->t.label, reason);
        kafka_metric_add(ins, st->health.m_errors, 1);
    }
}

static void kafka_commit_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                            rd_kafka_topic_partition_list_t *offsets,
                            void *opaque)
{
    struct velo_instance *ins = opaque;
    struct kafka_source *st = ins->context;
    (void)rk;
    if (st != NULL && st->commits_pending > 0) {
        st->commits_pending--;
    }
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR &&
        err != RD_KAFKA_RESP_ERR__NO_OFFSET) {
        /* Not fatal: the next checkpoint commits again; until then a
         * restart reads some records twice (at-least-once). */
        if (st != NULL) {
            st->last_commit[0] = '\0';
            kafka_metric_add(ins, st->health.m_errors, 1);
        }
        velo_plg_warn(ins, "%s: offset commit failed: %s",
                      st != NULL ? st->t.label : "kafka",
                      rd_kafka_err2str(err));
        return;
    }
    char done[256];
    size_t len = 0;
    done[0] = '\0';
    for (int i = 0; offsets != NULL && i < offsets->cnt; i++) {
        if (offsets->elems[i].err == RD_KAFKA_RESP_ERR_NO_ERROR &&
            len + 40 < sizeof(done)) {
            int n = snprintf(
                done + len, sizeof(done) - len, " %" PRId32 ":%" PRId64,
                offsets->elems[i].partition, offsets->elems[i].offset);
            len += n > 0 ? (size_t)n : 0;
        }
        if (offsets->elems[i].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            if (st != NULL) {
                st->last_commit[0] = '\0';
            }
            velo_plg_warn(
                ins, "%s: offset commit for partition %" PRId32 " failed: %s",
                st != NULL ? st->t.label : "kafka", offsets->elems[i].partition,
                rd_kafka_err2str(offsets->elems[i].err));
        }
    }
    if (len > 0) {
        velo_plg_debug(ins, "%s: committed offsets (partition:next)%s",
                       st != NULL ? st->t.label : "kafka", done);
    }
}

static void kafka_source_destroy(struct velo_instance *ins);

static int kafka_source_create(struct velo_instance *ins, const void *config,
                               const struct velo_connector_ctx *ctx,
                               struct velo_source_info *info)
{
    const struct kafka_conf *conf = config;
    struct kafka_source *st = calloc(1, sizeof(*st));
    if (st == NULL) {
        velo_plg_error(ins, "out of memory");
        return VELO_ERR;
    }
    st->ins = ins;
    st->queue_fd = -1;
    ins->context = st;
    snprintf(st->job, sizeof(st->job), "%s", kafka_job(ctx));
    st->txn_sent = calloc(1, KAFKA_POS_MAX);
    st->txn_pending = calloc(1, KAFKA_POS_MAX);
    if (st->txn_sent == NULL || st->txn_pending == NULL ||
        kafka_reg_add(st->job, st, NULL) != VELO_OK) {
        velo_plg_error(ins, "out of memory");
        goto fail;
    }
    st->registered = 1;
    if (kafka_target_resolve(ins, conf, ctx, &st->t) != VELO_OK) {
        goto fail;
    }
    const char *reset =
        conf->auto_offset_reset != NULL ? conf->auto_offset_reset : "earliest";
    if (strcmp(reset, "earliest") != 0 && strcmp(reset, "latest") != 0) {
        velo_plg_error(ins,
                       "%s: auto.offset.reset is '%s'; write earliest "
                       "or latest",
                       st->t.label, reset);
        goto fail;
    }
    char group[300];
    if (conf->group_id != NULL && conf->group_id[0] != '\0') {
        snprintf(group, sizeof(group), "%s", conf->group_id);
    } else if (ctx->name != NULL && strstr(ctx->name, "://") == NULL) {
        snprintf(group, sizeof(group), "velo-%s", ctx->name);
    } else {
        /* FROM kafka://... without a name: the topic names the group. */
        snprintf(group, sizeof(group), "velo-%s", st->t.topic);
    }
    int64_t session =
        conf->session_timeout_ms > 0 ? conf->session_timeout_ms : 45000;
    char session_ms[32], heartbeat_ms[32];
    snprintf(session_ms, sizeof(session_ms), "%" PRId64, session);
    snprintf(heartbeat_ms, sizeof(heartbeat_ms), "%" PRId64,
             session / 3 < 3000 ? session / 3 : 3000);

    rd_kafka_conf_t *rc = kafka_conf_base(ins, &st->t, ctx);
    if (rc == NULL ||
        kafka_set(ins, rc, "group.id", group, st->t.label) != VELO_OK ||
        kafka_set(ins, rc, "auto.offset.reset", reset, st->t.label) !=
            VELO_OK ||
        kafka_set(ins, rc, "enable.auto.commit", "false", st->t.label) !=
            VELO_OK ||
        kafka_set(ins, rc, "enable.auto.offset.store", "false", st->t.label) !=
            VELO_OK ||
        kafka_set(ins, rc, "enable.partition.eof", "false", st->t.label) !=
            VELO_OK ||
        kafka_set(ins, rc, "session.timeout.ms", session_ms, st->t.label) !=
            VELO_OK ||
        kafka_set(ins, rc, "heartbeat.interval.ms", heartbeat_ms,
                  st->t.label) != VELO_OK ||
        /* Prefetch deeper than librdkafka's default: the job reads in
         * batches of a thousand, and a local queue that runs dry between
         * fetches left it idle (160 k vs 790 k messages/s on the
         * benchmark); memory stays bounded by queued.max.messages.kbytes.
         * A '<name>.kafka.queued.min.messages' overrides it. */
        kafka_set(ins, rc, "queued.min.messages", "1000000", st->t.label) !=
            VELO_OK ||
        (conf->exactly_once &&
         kafka_set(ins, rc, "isolation.level", "read_committed", st->t.label) !=
             VELO_OK) ||
        kafka_passthrough(ins, rc, ctx, st->t.label, 1) != VELO_OK) {
        if (rc != NULL) {
            rd_kafka_conf_destroy(rc);
        }
        goto fail;
    }
    rd_kafka_conf_set_rebalance_cb(rc, kafka_rebalance_cb);
    rd_kafka_conf_set_error_cb(rc, kafka_source_error_cb);
    rd_kafka_conf_set_offset_commit_cb(rc, kafka_commit_cb);

    char errstr[KAFKA_ERR_MAX];
    st->rk = rd_kafka_new(RD_KAFKA_CONSUMER, rc, errstr, sizeof(errstr));
    if (st->rk == NULL) {
        rd_kafka_conf_destroy(rc);
        velo_plg_error(ins, "%s: %s", st->t.label, errstr);
        goto fail;
    }
    /* Logs and callbacks come out of rd_kafka_consumer_poll. */
    rd_kafka_set_log_queue(st->rk, NULL);
    rd_kafka_poll_set_consumer(st->rk);
    if (VELO_HOST_HAS(ins->host, metric_counter)) {
        char labels[320];
        snprintf(labels, sizeof(labels), "connector=kafka,source=%s",
                 ctx->name);
        st->m_in = ins->host->metric_counter(
            "velo_connector_records_in_total", "records read", labels);
        st->m_bytes = ins->host->metric_counter(
            "velo_connector_bytes_in_total", "payload bytes read", labels);
        st->m_lag = ins->host->metric_gauge(
            "velo_connector_lag",
            "messages between the consumer's positions and the ends of its "
            "assigned partitions",
            labels);
        kafka_health_metrics(ins, &st->health, labels);
    }
    st->wake = ctx->wake;
    st->wake_arg = ctx->wake_arg;
    st->queue = rd_kafka_queue_get_consumer(st->rk);
    if (st->queue == NULL ||
        kafka_queue_watch(st->queue, ctx->base, kafka_source_queue_ev, st,
                          &st->queue_fd, &st->queue_ev) != VELO_OK) {
        velo_plg_error(ins,
                       "%s: cannot watch the consumer queue on the "
                       "job's loop: %s",
                       st->t.label, strerror(errno));
        goto fail;
    }

    int parts =
        kafka_check_topic(ins, st->rk, &st->t, conf->connect_timeout_ms);
    if (parts < 0) {
        goto fail;
    }
    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sub, st->t.topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(st->rk, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        velo_plg_error(ins, "%s: subscribe failed: %s", st->t.label,
                       rd_kafka_err2str(err));
        goto fail;
    }
    velo_plg_info(ins,
                  "%s: consuming %d partition%s as group '%s', from "
                  "the committed offsets or the %s%s",
                  st->t.label, parts, parts == 1 ? "" : "s", group, reset,
                  conf->exactly_once ? " (read_committed)" : "");
    info->bounded = 0;
    info->byte_stream = 0;
    info->size_bytes = -1;
    return VELO_OK;

fail:
    kafka_source_destroy(ins);
    return VELO_ERR;
}

/* A consumer error carried in a message. @return VELO_OK to go on. */
static int kafka_source_msg_error(struct kafka_source *st,
                                  const rd_kafka_message_t *m)
{
    struct velo_instance *ins = st->ins;
    rd_kafka_resp_err_t err = m->err;
    if (err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        return VELO_OK;
    }
    if (kafka_transient(err)) {
        kafka_health_down(ins, &st->health, st->t.label,
                          rd_kafka_message_errstr(m)); /* counts it */
        return VELO_OK;
    }
    kafka_metric_add(ins, st->health.m_errors, 1);
    if (err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
        err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
        err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED ||
        err == RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED ||
        err == RD_KAFKA_RESP_ERR__AUTHENTICATION ||
        err == RD_KAFKA_RESP_ERR__FATAL) {
        velo_plg_error(ins, "%s: %s", st->t.label, rd_kafka_message_errstr(m));
        return VELO_ERR;
    }
    velo_plg_warn(ins, "%s: %s", st->t.label, rd_kafka_message_errstr(m));
    return VELO_OK;
}

static int kafka_source_read(struct velo_instance *ins,
                             struct velo_source_batch *out)
{
    struct kafka_source *st = ins->context;
    kafka_source_release(st);
    out->count = 0;
    if (st->failed) {
        return VELO_ERR;
    }
    if (out->capacity > st->capheld) {
        rd_kafka_message_t **h = realloc(st->held, out->capacity * sizeof(*h));
        if (h == NULL) {
            velo_plg_error(ins, "out of memory");
            return VELO_ERR;
        }
        st->held = h;
        st->capheld = out->capacity;
    }
    if (out->headers != NULL && out->capacity > st->hoffcap) {
        size_t *o = realloc(st->hoff, out->capacity * sizeof(*o));
        if (o != NULL) {
            st->hoff = o;
        }
        size_t *e = realloc(st->hend, out->capacity * sizeof(*e));
        if (e != NULL) {
            st->hend = e;
        }
        if (o == NULL || e == NULL) {
            velo_plg_error(ins, "out of memory");
            return VELO_ERR;
        }
        st->hoffcap = out->capacity;
    }
    st->hlen = 0;
    /* Bounded work per call even when only errors come back. */
    size_t polls = out->capacity + 16;
    while (out->count < out->capacity && polls-- > 0) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(st->rk, 0);
        if (st->failed) {
            if (m != NULL) {
                rd_kafka_message_destroy(m);
            }
            return VELO_ERR;
        }
        if (m == NULL) {
            break;
        }
        if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            int rc = kafka_source_msg_error(st, m);
            rd_kafka_message_destroy(m);
            if (rc != VELO_OK) {
                st->failed = 1;
                return VELO_ERR;
            }
            continue;
        }
        kafka_health_up(ins, &st->health, st->t.label);
        size_t i = out->count++;
        st->held[st->nheld++] = m;
        out->payload[i].ptr = m->payload != NULL ? m->payload : "";
        out->payload[i].len = m->payload != NULL ? m->len : 0;
        if (out->meta != NULL) {
            struct velo_record_meta *meta = &out->meta[i];
            rd_kafka_timestamp_type_t tt;
            int64_t ms = rd_kafka_message_timestamp(m, &tt);
            meta->timestamp_us =
                ms >= 0 && tt != RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? ms * 1000
                                                                  : INT64_MIN;
            meta->partition = m->partition;
            meta->offset = m->offset;
            meta->key.ptr = m->key;
            meta->key.len = m->key != NULL ? m->key_len : 0;
        }
        if (out->headers != NULL && kafka_headers_json(st, m, i) != VELO_OK) {
            velo_plg_error(ins, "out of memory");
            return VELO_ERR;
        }
        if (kafka_offsets_set(&st->read, m->partition, m->offset + 1) !=
            VELO_OK) {
            velo_plg_error(ins, "out of memory");
            return VELO_ERR;
        }
    }
    kafka_source_metrics(st, out);
    /* The buffer may have moved while it grew: point at it now. */
    for (size_t i = 0; out->headers != NULL && i < out->count; i++) {
        out->headers[i].ptr = st->hend[i] != 0 ? st->hbuf + st->hoff[i] : NULL;
        out->headers[i].len = st->hend[i] != 0 ? st->hend[i] - st->hoff[i] : 0;
    }
    return out->count > 0 ? VELO_OK : VELO_AGAIN;
}

static int kafka_source_position(struct velo_instance *ins, uint8_t *buf,
                                 size_t cap)
{
    struct kafka_source *st = ins->context;
    return kafka_offsets_write(&st->read, buf, cap);
}

static int kafka_source_seek(struct velo_instance *ins, const uint8_t *pos,
                             size_t len)
{
    struct kafka_source *st = ins->context;
    if (kafka_offsets_read(&st->resume, pos, len) != VELO_OK) {
        velo_plg_error(ins, "%s: unreadable checkpoint position", st->t.label);
        return VELO_ERR;
    }
    return VELO_OK;
}

static int kafka_source_commit(struct velo_instance *ins, const uint8_t *pos,
                               size_t len)
{
    struct kafka_source *st = ins->context;
    if (kafka_txn_covers(st->job, st->t.brokers)) {
        /* Exactly once: the sink's flush, just before this call, committed
         * these offsets in its transaction together with the output they
         * produced. Committing them again here would be harmless on a
         * broker, but it is not the protocol: only check that the
         * transaction carried this very position. */
        if (len > 2 && (strlen(st->txn_sent) != len ||
                        memcmp(st->txn_sent, pos, len) != 0)) {
            velo_plg_warn(ins,
                          "%s: the position to acknowledge was not in the "
                          "last committed transaction; not committed (a "
                          "restart reads these records again)",
                          st->t.label);
        }
        return VELO_OK;
    }
    /* Checkpoints come every second or so; an idle source would commit
     * the same offsets each time. */
    if (strlen(st->last_commit) == len &&
        memcmp(st->last_commit, pos, len) == 0) {
        return VELO_OK;
    }
    struct kafka_offsets o = {0};
    if (kafka_offsets_read(&o, pos, len) != VELO_OK) {
        free(o.next);
        velo_plg_error(ins, "%s: unreadable position to commit", st->t.label);
        return VELO_ERR;
    }
    rd_kafka_topic_partition_list_t *l =
        rd_kafka_topic_partition_list_new(o.n > 0 ? o.n : 1);
    for (int32_t p = 0; p < o.n; p++) {
        if (o.next[p] >= 0) {
            rd_kafka_topic_partition_list_add(l, st->t.topic, p)->offset =
                o.next[p];
        }
    }
    free(o.next);
    int rc = VELO_OK;
    if (l->cnt > 0) {
        rd_kafka_resp_err_t err = rd_kafka_commit(st->rk, l, 1);
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            velo_plg_warn(ins, "%s: offset commit failed: %s", st->t.label,
                          rd_kafka_err2str(err));
        } else {
            st->commits_pending++;
            if (len < sizeof(st->last_commit)) {
                memcpy(st->last_commit, pos, len);
                st->last_commit[len] = '\0';
            }
        }
    }
    rd_kafka_topic_partition_list_destroy(l);
    return rc;
}

/*
 * Leave the group so the others take our partitions at once, but not at
 * any cost: a coordinator in the middle of a rebalance (or gone) could
 * hold a plain rd_kafka_consumer_close for minutes. @return 1 when left.
 */
static int kafka_source_leave(struct kafka_source *st)
{
    rd_kafka_queue_t *q = rd_kafka_queue_new(st->rk);
    if (q == NULL) {
        return 0;
    }
    rd_kafka_error_t *e = rd_kafka_consumer_close_queue(st->rk, q);
    if (e != NULL) {
        rd_kafka_error_destroy(e);
        rd_kafka_queue_destroy(q);
        return 0;
    }
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int closed = 0;
    for (;;) {
        closed = rd_kafka_consumer_closed(st->rk);
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (closed || now.tv_sec - t0.tv_sec >= KAFKA_CLOSE_WAIT_S) {
            break;
        }
        rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 100);
        if (ev != NULL) {
            if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_REBALANCE) {
                /* The final revoke: give everything up. */
                if (strcmp(rd_kafka_rebalance_protocol(st->rk),
                           "COOPERATIVE") == 0) {
                    rd_kafka_error_t *ue = rd_kafka_incremental_unassign(
                        st->rk, rd_kafka_event_topic_partition_list(ev));
                    if (ue != NULL) {
                        rd_kafka_error_destroy(ue);
                    }
                } else {
                    rd_kafka_assign(st->rk, NULL);
                }
            }
            rd_kafka_event_destroy(ev);
        }
    }
    rd_kafka_queue_destroy(q);
    if (!closed) {
        velo_plg_warn(st->ins,
                      "%s: leaving the group took over %d s; "
                      "closing anyway (the group reassigns our "
                      "partitions after session.timeout)",
                      st->t.label, KAFKA_CLOSE_WAIT_S);
    }
    return closed;
}

static void kafka_source_destroy(struct velo_instance *ins)
{
    struct kafka_source *st = ins->context;
    if (st == NULL) {
        return;
    }
    if (st->registered) {
        kafka_reg_remove(st);
    }
    kafka_source_release(st);
    if (st->rk != NULL) {
        if (st->queue != NULL) {
            /* No more wakes into a job that is going away. */
            kafka_queue_unwatch(st->queue, &st->queue_fd, &st->queue_ev);
            rd_kafka_queue_destroy(st->queue);
            st->queue = NULL;
        }
        /* Let the last asynchronous commits land (bounded), then leave
         * the group so the others take our partitions at once. */
        for (int i = 0; i < 50 && st->commits_pending > 0 && !st->failed; i++) {
            rd_kafka_message_t *m = rd_kafka_consumer_poll(st->rk, 100);
            if (m != NULL) {
                rd_kafka_message_destroy(m); /* not read: not committed */
            }
        }
        if (st->commits_pending > 0) {
            velo_plg_warn(ins,
                          "%s: closing before the last offset commit "
                          "was confirmed; a restart may read some "
                          "records again",
                          st->t.label);
        }
        st->closing = 1;
        int closed = kafka_source_leave(st);
        rd_kafka_destroy_flags(
            st->rk, closed ? 0 : RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    }
    free(st->held);
    free(st->hbuf);
    free(st->hoff);
    free(st->hend);
    free(st->read.next);
    free(st->resume.next);
    free(st->txn_sent);
    free(st->txn_pending);
    free(st);
    ins->context = NULL;
}

/* ---- Sink --------------------------------------------------------------- */

struct kafka_sink {
    struct velo_instance *ins;
    rd_kafka_t *rk;
    struct kafka_target t;
    struct kafka_health health;
    int64_t max_queued; /* queue.buffering.max.messages */
    uint64_t produced, delivered, failed_count;
    int failed;
    int closing;
    int failure_reported;
    char why[KAFKA_LABEL_MAX + 320 + KAFKA_ERR_MAX * 2];
    /* Exactly once */
    int txn;      /* a transactional producer */
    int txn_open; /* a transaction has begun and is not committed yet */
    int registered;
    int told_foreign; /* said once: a source on other brokers */
    char job[256];
    char txn_id[300];
    int64_t txn_timeout_ms;
    struct timespec txn_t0; /* when the open transaction began */
    uint64_t txn_messages;  /* produced in the open transaction */
    struct velo_metric *m_out, *m_bytes_out;
    uint64_t txn_commits;
    /* Header names and values unescaped from a record's JSON object
     * before librdkafka copies them: grown to the longest one seen. */
    char *hscratch;
    size_t hscratch_cap;
    /* The main queue (delivery reports, errors, logs) watched on the
     * job's loop; `waiting`: the engine holds a VELO_AGAIN from us and
     * wants a wake when replies come in. */
    rd_kafka_queue_t *main_q;
    int main_fd;
    struct event *main_ev;
    int waiting;
    void (*wake)(void *wake_arg);
    void *wake_arg;
    /* Why librdkafka put the transaction in an error state (its TXNERR
     * log line): the purged deliveries that follow only say "purged". */
    char txn_reason[KAFKA_ERR_MAX];
};

static void kafka_sink_txn_log(struct velo_instance *ins, const char *buf)
{
    struct kafka_sink *st = ins->context;
    if (st != NULL && st->txn_reason[0] == '\0') {
        /* Without librdkafka's "[thrd:main]: " prefix. */
        const char *p = buf[0] == '[' ? strstr(buf, "]: ") : NULL;
        snprintf(st->txn_reason, sizeof(st->txn_reason), "%s",
                 p != NULL ? p + 3 : buf);
    }
}

static void kafka_sink_fail(struct kafka_sink *st, const char *fmt,
                            const char *reason)
{
    if (!st->failed) {
        snprintf(st->why, sizeof(st->why), fmt, st->t.label, reason);
        st->failed = 1;
    }
}

/* The first failure wins; the message is complete (label included). */
static void kafka_sink_failf(struct kafka_sink *st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void kafka_sink_failf(struct kafka_sink *st, const char *fmt, ...)
{
    if (st->failed) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->why, sizeof(st->why), fmt, ap);
    va_end(ap);
    st->failed = 1;
}

/* Was the producer fenced off by a newer one with its transactional.id? */
static int kafka_fenced(rd_kafka_resp_err_t code)
{
    return code == RD_KAFKA_RESP_ERR__FENCED ||
           code == RD_KAFKA_RESP_ERR_PRODUCER_FENCED ||
           code == RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH;
}

static void kafka_txn_fenced(struct kafka_sink *st, const char *reason)
{
    kafka_sink_failf(st,
                     "%s: fenced off: another producer with "
                     "transactional.id '%s' has started (a second "
                     "instance of this job, or another job with the same "
                     "id); this one stops and its open transaction is "
                     "aborted by the broker (%s)",
                     st->t.label, st->txn_id, reason);
}

/*
 * Abort the open transaction (its messages stay invisible to
 * read_committed readers) and say so after the failure's reason. A
 * producer in a fatal state cannot abort: the broker aborts the
 * transaction after transaction.timeout.ms, or the next instance's
 * init_transactions does at once.
 */
static void kafka_txn_abort(struct kafka_sink *st)
{
    if (!st->txn_open) {
        return;
    }
    st->txn_open = 0;
    rd_kafka_error_t *e =
        rd_kafka_abort_transaction(st->rk, KAFKA_TXN_TIMEOUT_MS);
    size_t len = strlen(st->why);
    if (e == NULL) {
        snprintf(st->why + len, sizeof(st->why) - len,
                 "; the transaction (%" PRIu64 " message(s)) is aborted: "
                 "read_committed readers never see it, and a restart "
                 "resumes from the offsets of the last committed one",
                 st->txn_messages);
    } else {
        snprintf(st->why + len, sizeof(st->why) - len,
                 "; the transaction could not be aborted (%s): the broker "
                 "aborts it after transaction.timeout.ms, or at once when "
                 "the job restarts",
                 rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    }
}

/* A failed transaction call: abortable errors abort and fail the job,
 * fatal ones (fenced) fail it, retriable ones are tried again at the
 * next flush. Takes `e`. @return VELO_AGAIN or VELO_ERR. */
static int kafka_txn_error(struct kafka_sink *st, const char *what,
                           rd_kafka_error_t *e);

static void kafka_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m,
                        void *opaque)
{
    struct velo_instance *ins = opaque;
    struct kafka_sink *st = ins->context;
    if (st == NULL) {
        return;
    }
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        st->delivered++;
        kafka_health_up(ins, &st->health, st->t.label);
        return;
    }
    st->failed_count++;
    kafka_metric_add(ins, st->health.m_errors, 1);
    char why[KAFKA_ERR_MAX];
    if (st->txn && (kafka_fenced(m->err) ||
                    kafka_fenced(rd_kafka_fatal_error(rk, why, sizeof(why))))) {
        kafka_txn_fenced(st, rd_kafka_err2str(m->err));
        return;
    }
    if (st->txn && (m->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE ||
                    m->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT)) {
        /* The transaction failed and librdkafka dropped its messages. */
        kafka_sink_failf(st, "%s: the transaction failed: %s", st->t.label,
                         st->txn_reason[0] != '\0' ? st->txn_reason
                                                   : rd_kafka_err2str(m->err));
        return;
    }
    kafka_sink_fail(st, "%s: delivery failed: %s", rd_kafka_err2str(m->err));
}

static void kafka_sink_error_cb(rd_kafka_t *rk, int err, const char *reason,
                                void *opaque)
{
    struct velo_instance *ins = opaque;
    struct kafka_sink *st = ins->context;
    if (st == NULL || st->closing) {
        return;
    }
    if (!kafka_transient((rd_kafka_resp_err_t)err)) {
        kafka_metric_add(ins, st->health.m_errors, 1); /* else health_down */
    }
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char why[KAFKA_ERR_MAX];
        rd_kafka_resp_err_t code = rd_kafka_fatal_error(rk, why, sizeof(why));
        if (st->txn && kafka_fenced(code)) {
            kafka_txn_fenced(st, why);
        } else {
            kafka_sink_fail(st, "%s: fatal producer error: %s", why);
        }
    } else if (err == RD_KAFKA_RESP_ERR__AUTHENTICATION) {
        kafka_sink_fail(st, "%s: authentication failed: %s", reason);
    } else if (kafka_transient((rd_kafka_resp_err_t)err)) {
        kafka_health_down(ins, &st->health, st->t.label, reason);
    } else {
        velo_plg_warn(ins, "%s: %s", st->t.label, reason);
    }
}

/* The first failure, said once; every later call fails too. */
static int kafka_sink_failed(struct kafka_sink *st)
{
    kafka_txn_abort(st);
    if (!st->failure_reported) {
        velo_plg_error(st->ins, "%s", st->why);
        st->failure_reported = 1;
    }
    return VELO_ERR;
}

static void kafka_sink_destroy(struct velo_instance *ins);

/* Delivery reports, errors or logs arrived (the main queue was empty):
 * serve them now, on the job's loop, and wake the engine if it waits for
 * them (a flush, or room after back-pressure). */
static void kafka_sink_queue_ev(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct kafka_sink *st = arg;
    uint64_t n;
    ssize_t r = read(fd, &n, sizeof(n)); /* resets the eventfd */
    (void)r;
    rd_kafka_poll(st->rk, 0);
    if (st->waiting && st->wake != NULL) {
        st->waiting = 0;
        st->wake(st->wake_arg);
    }
}

static int kafka_sink_create(struct velo_instance *ins, const void *config,
                             const struct velo_connector_ctx *ctx)
{
    const struct kafka_conf *conf = config;
    struct kafka_sink *st = calloc(1, sizeof(*st));
    if (st == NULL) {
        velo_plg_error(ins, "out of memory");
        return VELO_ERR;
    }
    st->ins = ins;
    st->main_fd = -1;
    st->wake = ctx->wake;
    st->wake_arg = ctx->wake_arg;
    ins->context = st;
    if (VELO_HOST_HAS(ins->host, metric_counter)) {
        char labels[320];
        snprintf(labels, sizeof(labels), "connector=kafka,sink=%s",
                 ctx->name);
        st->m_out = ins->host->metric_counter(
            "velo_connector_records_out_total", "records written", labels);
        st->m_bytes_out = ins->host->metric_counter(
            "velo_connector_bytes_out_total", "payload bytes written",
            labels);
        kafka_health_metrics(ins, &st->health, labels);
    }
    if (kafka_target_resolve(ins, conf, ctx, &st->t) != VELO_OK) {
        goto fail;
    }
    static const char *const codecs[] = {"none", "gzip", "snappy",
                                         "lz4",  "zstd", NULL};
    const char *codec = conf->compression != NULL ? conf->compression : "lz4";
    int known = 0;
    for (size_t i = 0; codecs[i] != NULL; i++) {
        known |= strcmp(codec, codecs[i]) == 0;
    }
    if (!known) {
        velo_plg_error(ins,
                       "%s: compression is '%s'; write none, gzip, "
                       "snappy, lz4 or zstd",
                       st->t.label, codec);
        goto fail;
    }
    const char *acks = conf->acks != NULL ? conf->acks : "all";
    if (strcmp(acks, "all") != 0 && strcmp(acks, "-1") != 0 &&
        strcmp(acks, "1") != 0 && strcmp(acks, "0") != 0) {
        velo_plg_error(ins, "%s: acks is '%s'; write all, 1 or 0", st->t.label,
                       acks);
        goto fail;
    }
    if (conf->linger_ms < 0 || conf->linger_ms > 900000) {
        velo_plg_error(ins, "%s: linger.ms must be 0..900000", st->t.label);
        goto fail;
    }
    st->txn = conf->exactly_once || (conf->transactional_id != NULL &&
                                     conf->transactional_id[0] != '\0');
    snprintf(st->job, sizeof(st->job), "%s", kafka_job(ctx));
    if (st->txn) {
        if (strcmp(acks, "all") != 0 && strcmp(acks, "-1") != 0) {
            velo_plg_error(ins,
                           "%s: exactly.once needs acks=all (it is '%s'); "
                           "remove '%s.acks'",
                           st->t.label, acks, kafka_owner(ctx));
            goto fail;
        }
        if (!conf->enable_idempotence) {
            velo_plg_error(ins,
                           "%s: exactly.once needs the idempotent "
                           "producer; remove '%s.enable.idempotence'",
                           st->t.label, kafka_owner(ctx));
            goto fail;
        }
        struct kafka_sink *other = kafka_reg_txn_sink(st->job);
        if (other != NULL) {
            velo_plg_error(ins,
                           "%s: job '%s' already has an exactly-once Kafka "
                           "sink (%s); one transaction can cover one sink: "
                           "run the other statement as its own job",
                           st->t.label, st->job, other->t.label);
            goto fail;
        }
        if (conf->transactional_id != NULL &&
            conf->transactional_id[0] != '\0') {
            snprintf(st->txn_id, sizeof(st->txn_id), "%s",
                     conf->transactional_id);
        } else {
            /* Stable across restarts of the same job, so that a restart
             * fences off (and aborts the transaction of) an instance
             * that is still around: velo-<job file>-<sink>. */
            const char *base = strrchr(st->job, '/');
            base = base != NULL ? base + 1 : st->job;
            base += *base == '<'; /* "<command line>" */
            int n =
                snprintf(st->txn_id, sizeof(st->txn_id), "velo-%.*s-%s",
                         (int)strcspn(base, ".>"), base,
                         strcmp(kafka_owner(ctx), "<name>") != 0 ? ctx->name
                                                                 : st->t.topic);
            for (int i = 0; i < n && st->txn_id[i] != '\0'; i++) {
                char c = st->txn_id[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                      (c >= '0' && c <= '9') || c == '-' || c == '_' ||
                      c == '.')) {
                    st->txn_id[i] = '_';
                }
            }
        }
    }
    char linger[32], timeout[32];
    snprintf(linger, sizeof(linger), "%" PRId64, conf->linger_ms);
    snprintf(timeout, sizeof(timeout), "%" PRId64,
             conf->delivery_timeout_ms > 0 ? conf->delivery_timeout_ms
                                           : 120000);
    rd_kafka_conf_t *rc = kafka_conf_base(ins, &st->t, ctx);
    if (rc == NULL ||
        kafka_set(ins, rc, "compression.type", codec, st->t.label) != VELO_OK ||
        kafka_set(ins, rc, "linger.ms", linger, st->t.label) != VELO_OK ||
        kafka_set(ins, rc, "enable.idempotence",
                  conf->enable_idempotence ? "true" : "false",
                  st->t.label) != VELO_OK ||
        kafka_set(ins, rc, "acks", acks, st->t.label) != VELO_OK ||
        kafka_set(ins, rc, "message.timeout.ms", timeout, st->t.label) !=
            VELO_OK ||
        (st->txn && kafka_set(ins, rc, "transactional.id", st->txn_id,
                              st->t.label) != VELO_OK) ||
        /* librdkafka wants a message's timeout within its transaction's:
         * one delivery.timeout bounds both. */
        (st->txn && kafka_set(ins, rc, "transaction.timeout.ms", timeout,
                              st->t.label) != VELO_OK) ||
        kafka_passthrough(ins, rc, ctx, st->t.label, 0) != VELO_OK) {
        if (rc != NULL) {
            rd_kafka_conf_destroy(rc);
        }
        goto fail;
    }
    char qmax[32];
    size_t qlen = sizeof(qmax);
    st->max_queued = 100000;
    if (rd_kafka_conf_get(rc, "queue.buffering.max.messages", qmax, &qlen) ==
        RD_KAFKA_CONF_OK) {
        st->max_queued = strtoll(qmax, NULL, 10);
    }
    char ttmo[32];
    size_t tlen = sizeof(ttmo);
    st->txn_timeout_ms = 60000;
    if (rd_kafka_conf_get(rc, "transaction.timeout.ms", ttmo, &tlen) ==
        RD_KAFKA_CONF_OK) {
        st->txn_timeout_ms = strtoll(ttmo, NULL, 10);
    }
    rd_kafka_conf_set_dr_msg_cb(rc, kafka_dr_cb);
    rd_kafka_conf_set_error_cb(rc, kafka_sink_error_cb);

    char errstr[KAFKA_ERR_MAX];
    st->rk = rd_kafka_new(RD_KAFKA_PRODUCER, rc, errstr, sizeof(errstr));
    if (st->rk == NULL) {
        rd_kafka_conf_destroy(rc);
        velo_plg_error(ins, "%s: %s", st->t.label, errstr);
        goto fail;
    }
    rd_kafka_set_log_queue(st->rk, NULL);
    st->main_q = rd_kafka_queue_get_main(st->rk);
    if (st->main_q == NULL ||
        kafka_queue_watch(st->main_q, ctx->base, kafka_sink_queue_ev, st,
                          &st->main_fd, &st->main_ev) != VELO_OK) {
        velo_plg_error(ins,
                       "%s: cannot watch the producer's queue on the "
                       "job's loop: %s",
                       st->t.label, strerror(errno));
        goto fail;
    }
    int parts =
        kafka_check_topic(ins, st->rk, &st->t, conf->connect_timeout_ms);
    if (parts < 0) {
        goto fail;
    }
    if (st->txn) {
        /* Fences off any older producer with this id and aborts (or
         * completes) its open transaction before we begin ours. */
        rd_kafka_error_t *e =
            rd_kafka_init_transactions(st->rk, KAFKA_TXN_TIMEOUT_MS);
        if (e != NULL) {
            velo_plg_error(ins,
                           "%s: cannot start transactions with "
                           "transactional.id '%s': %s (the brokers must "
                           "support transactions, Kafka 0.11 or later)",
                           st->t.label, st->txn_id, rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
            goto fail;
        }
        if (kafka_reg_add(st->job, NULL, st) != VELO_OK) {
            velo_plg_error(ins, "out of memory");
            goto fail;
        }
        st->registered = 1;
    }
    velo_plg_info(ins, "%s: producing to %d partition%s (%s, acks=%s%s%s%s)",
                  st->t.label, parts, parts == 1 ? "" : "s", codec, acks,
                  conf->enable_idempotence ? ", idempotent" : "",
                  st->txn ? ", exactly once, transactional.id " : "",
                  st->txn ? st->txn_id : "");
    return VELO_OK;

fail:
    kafka_sink_destroy(ins);
    return VELO_ERR;
}

/* Produce one message. `hdrs` (or NULL) passes to librdkafka only when
 * it returns VELO_OK; otherwise the caller still owns it.
 * @return VELO_OK, VELO_AGAIN (queue full), or VELO_ERR (logged). */
static int kafka_produce(struct kafka_sink *st, const char *p, size_t len,
                         const struct velo_record_meta *meta,
                         rd_kafka_headers_t *hdrs)
{
    const void *key = NULL;
    size_t klen = 0;
    int64_t ts_ms = 0;
    if (meta != NULL) {
        key = meta->key.ptr;
        klen = meta->key.ptr != NULL ? meta->key.len : 0;
        if (meta->timestamp_us != INT64_MIN && meta->timestamp_us > 0) {
            ts_ms = meta->timestamp_us / 1000;
        }
    }
    rd_kafka_resp_err_t err =
        hdrs == NULL
            ? rd_kafka_producev(st->rk, RD_KAFKA_V_TOPIC(st->t.topic),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_VALUE((void *)(uintptr_t)p, len),
                                RD_KAFKA_V_KEY(key, klen),
                                RD_KAFKA_V_TIMESTAMP(ts_ms), RD_KAFKA_V_END)
            : rd_kafka_producev(st->rk, RD_KAFKA_V_TOPIC(st->t.topic),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_VALUE((void *)(uintptr_t)p, len),
                                RD_KAFKA_V_KEY(key, klen),
                                RD_KAFKA_V_TIMESTAMP(ts_ms),
                                RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        st->produced++;
        return VELO_OK;
    }
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        return VELO_AGAIN;
    }
    kafka_metric_add(st->ins, st->health.m_errors, 1);
    if (st->txn && st->txn_reason[0] != '\0') {
        kafka_sink_failf(st, "%s: the transaction failed: %s", st->t.label,
                         st->txn_reason);
    }
    kafka_sink_fail(st, "%s: cannot produce: %s", rd_kafka_err2str(err));
    return kafka_sink_failed(st);
}

/* A record's `_headers` (a JSON object) as librdkafka headers in *out,
 * NULL when it has none. A value that is not an object fails the sink:
 * the query builds it, so every later record would be wrong too. */
static int kafka_record_headers(struct kafka_sink *st,
                                const struct velo_str *text,
                                rd_kafka_headers_t **out)
{
    *out = NULL;
    if (text == NULL || text->ptr == NULL) {
        return VELO_OK;
    }
    if (text->len > st->hscratch_cap) {
        size_t cap = st->hscratch_cap ? st->hscratch_cap : 256;
        while (cap < text->len) {
            cap *= 2;
        }
        char *nb = realloc(st->hscratch, cap);
        if (nb == NULL) {
            kafka_sink_failf(st, "%s: out of memory", st->t.label);
            return kafka_sink_failed(st);
        }
        st->hscratch = nb;
        st->hscratch_cap = cap;
    }
    char why[256];
    if (kafka_headers_parse(text->ptr, text->len, st->hscratch, out, why,
                            sizeof(why)) != 0) {
        kafka_metric_add(st->ins, st->health.m_errors, 1);
        kafka_sink_failf(st,
                         "%s: the _headers of output record %" PRIu64
                         " are not a flat JSON object: %s; write them as "
                         "{\"name\": \"value\", ...} (a string column "
                         "holding one, or JSON_OBJECT('name', value, ...))",
                         st->t.label, st->produced + 1, why);
        return kafka_sink_failed(st);
    }
    return VELO_OK;
}

/* One record, one message. Once part of a call's input is queued, the
 * rest must go too (the engine retries a whole call after VELO_AGAIN), so
 * only the call's first record may defer; later ones wait for room. */
static int kafka_produce_record(struct kafka_sink *st,
                                const struct velo_str *rec,
                                const struct velo_record_meta *meta,
                                const struct velo_str *htext, int may_defer)
{
    rd_kafka_headers_t *hdrs;
    if (kafka_record_headers(st, htext, &hdrs) != VELO_OK) {
        return VELO_ERR;
    }
    int rc;
    while ((rc = kafka_produce(st, rec->ptr, rec->len, meta, hdrs)) ==
           VELO_AGAIN) {
        if (may_defer) {
            break;
        }
        rd_kafka_poll(st->rk, 10);
        if (st->failed) {
            rc = kafka_sink_failed(st);
            break;
        }
    }
    if (rc != VELO_OK && hdrs != NULL) {
        rd_kafka_headers_destroy(hdrs); /* not taken by librdkafka */
    }
    return rc;
}

static int kafka_txn_error(struct kafka_sink *st, const char *what,
                           rd_kafka_error_t *e)
{
    char reason[KAFKA_LABEL_MAX + 400 + KAFKA_ERR_MAX];
    snprintf(reason, sizeof(reason), "%s: %s", what, rd_kafka_error_string(e));
    rd_kafka_resp_err_t code = rd_kafka_error_code(e);
    int fatal = rd_kafka_error_is_fatal(e);
    int abortable = rd_kafka_error_txn_requires_abort(e);
    int retriable = rd_kafka_error_is_retriable(e);
    rd_kafka_error_destroy(e);
    if (fatal || kafka_fenced(code)) {
        if (kafka_fenced(code)) {
            kafka_txn_fenced(st, reason);
        } else {
            kafka_sink_failf(st, "%s: fatal transaction error: %s", st->t.label,
                             reason);
        }
        st->txn_open = 0; /* a fatal producer cannot abort */
        return kafka_sink_failed(st);
    }
    if (abortable) {
        kafka_sink_failf(st, "%s: %s", st->t.label, reason);
        return kafka_sink_failed(st); /* aborts */
    }
    if (retriable) {
        velo_plg_warn(st->ins, "%s: %s; trying again", st->t.label, reason);
        return VELO_AGAIN;
    }
    kafka_sink_failf(st, "%s: %s", st->t.label, reason);
    return kafka_sink_failed(st);
}

/* Lazily, at the first write after a commit. */
static int kafka_txn_begin(struct kafka_sink *st)
{
    if (st->txn_open) {
        /* A plan that never reaches a checkpoint (a stateful query
         * without --state-dir) would hold its transaction until the
         * broker aborts it: say why before that happens. */
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        int64_t ms = (int64_t)(now.tv_sec - st->txn_t0.tv_sec) * 1000 +
                     (now.tv_nsec - st->txn_t0.tv_nsec) / 1000000;
        if (ms > st->txn_timeout_ms * 9 / 10) {
            kafka_sink_failf(
                st,
                "%s: the transaction has been open for %" PRId64 " ms "
                "without a checkpoint (transaction.timeout.ms is %" PRId64
                "): exactly once needs a job that checkpoints regularly: "
                "a stateless query, or --state-dir with a "
                "--checkpoint-interval well below that",
                st->t.label, ms, st->txn_timeout_ms);
            return VELO_ERR;
        }
        return VELO_OK;
    }
    rd_kafka_error_t *e = rd_kafka_begin_transaction(st->rk);
    if (e != NULL) {
        if (kafka_txn_error(st, "cannot begin a transaction", e) ==
            VELO_AGAIN) {
            kafka_sink_failf(st, "%s: cannot begin a transaction", st->t.label);
        }
        return VELO_ERR;
    }
    st->txn_open = 1;
    st->txn_messages = 0;
    clock_gettime(CLOCK_MONOTONIC, &st->txn_t0);
    return VELO_OK;
}

static int kafka_txn_covers(const char *job, const char *brokers)
{
    struct kafka_sink *ts = kafka_reg_txn_sink(job);
    return ts != NULL && strcmp(ts->t.brokers, brokers) == 0;
}

/* The offsets a source has read so far into the open transaction. */
static int kafka_txn_send_offsets(struct kafka_sink *st,
                                  struct kafka_source *src)
{
    const struct kafka_offsets *o = &src->read;
    rd_kafka_topic_partition_list_t *l =
        rd_kafka_topic_partition_list_new(o->n > 0 ? o->n : 1);
    for (int32_t p = 0; p < o->n; p++) {
        if (o->next[p] >= 0) {
            rd_kafka_topic_partition_list_add(l, src->t.topic, p)->offset =
                o->next[p];
        }
    }
    rd_kafka_error_t *e = NULL;
    if (l->cnt > 0) {
        rd_kafka_consumer_group_metadata_t *cg =
            rd_kafka_consumer_group_metadata(src->rk);
        e = rd_kafka_send_offsets_to_transaction(st->rk, l, cg,
                                                 KAFKA_TXN_TIMEOUT_MS);
        rd_kafka_consumer_group_metadata_destroy(cg);
    }
    rd_kafka_topic_partition_list_destroy(l);
    if (e != NULL) {
        char what[sizeof(src->t.label) + 64];
        snprintf(what, sizeof(what), "sending the offsets of %s", src->t.label);
        return kafka_txn_error(st, what, e);
    }
    return VELO_OK;
}

/*
 * The checkpoint barrier: the output of the open transaction and the read
 * positions of the job's Kafka sources (on our brokers) commit together.
 * Positions are taken now: the engine has pushed every record read so far
 * through the plan before it flushes, so the transaction holds exactly
 * their output. Nothing new and nothing read: nothing to do.
 */
static int kafka_txn_commit(struct kafka_sink *st)
{
    struct kafka_source *srcs[KAFKA_TXN_SOURCES_MAX];
    size_t n = kafka_reg_sources(st->job, srcs, KAFKA_TXN_SOURCES_MAX);
    if (n > KAFKA_TXN_SOURCES_MAX) {
        kafka_sink_failf(st,
                         "%s: job '%s' reads %zu Kafka sources; one "
                         "transaction carries the offsets of at most %d",
                         st->t.label, st->job, n, KAFKA_TXN_SOURCES_MAX);
        return kafka_sink_failed(st);
    }
    int carried[KAFKA_TXN_SOURCES_MAX] = {0};
    int moved = 0;
    for (size_t i = 0; i < n; i++) {
        struct kafka_source *src = srcs[i];
        if (strcmp(src->t.brokers, st->t.brokers) != 0) {
            if (!st->told_foreign) {
                velo_plg_warn(st->ins,
                              "%s: source %s is on other brokers: its "
                              "offsets cannot be in this transaction and "
                              "are committed on their own (at least once)",
                              st->t.label, src->t.label);
                st->told_foreign = 1;
            }
            continue;
        }
        int len = kafka_offsets_write(&src->read, (uint8_t *)src->txn_pending,
                                      KAFKA_POS_MAX - 1);
        if (len < 0) {
            kafka_sink_failf(st,
                             "%s: the position of %s does not fit in "
                             "%d bytes (too many partitions)",
                             st->t.label, src->t.label, KAFKA_POS_MAX);
            return kafka_sink_failed(st);
        }
        src->txn_pending[len] = '\0';
        carried[i] = 1;
        moved |= strcmp(src->txn_pending, src->txn_sent) != 0;
    }
    if (!st->txn_open && !moved) {
        return VELO_OK;
    }
    if (!st->txn_open && kafka_txn_begin(st) != VELO_OK) {
        return kafka_sink_failed(st);
    }
    for (size_t i = 0; i < n; i++) {
        int rc = carried[i] ? kafka_txn_send_offsets(st, srcs[i]) : VELO_OK;
        if (rc != VELO_OK) {
            return rc;
        }
    }
    rd_kafka_error_t *e =
        rd_kafka_commit_transaction(st->rk, KAFKA_TXN_TIMEOUT_MS);
    if (e != NULL) {
        return kafka_txn_error(st, "committing the transaction", e);
    }
    st->txn_open = 0;
    st->txn_commits++;
    for (size_t i = 0; i < n; i++) {
        if (carried[i]) {
            memcpy(srcs[i]->txn_sent, srcs[i]->txn_pending,
                   strlen(srcs[i]->txn_pending) + 1);
            velo_plg_debug(st->ins,
                           "%s: transaction %" PRIu64 " committed with %" PRIu64
                           " message(s) and the offsets of %s "
                           "(partition:next)%s",
                           st->t.label, st->txn_commits, st->txn_messages,
                           srcs[i]->t.label, srcs[i]->txn_sent + 2);
        }
    }
    return VELO_OK;
}

/* sink_write and sink_write_headers: one path for batching,
 * back-pressure and transactions. */
static int kafka_sink_write_batch(struct velo_instance *ins,
                                  const struct velo_str *recs,
                                  const struct velo_record_meta *meta,
                                  const struct velo_str *headers, size_t n)
{
    struct kafka_sink *st = ins->context;
    rd_kafka_poll(st->rk, 0); /* delivery reports */
    if (st->failed) {
        return kafka_sink_failed(st);
    }
    /* Back-pressure before anything of this call is queued. */
    int queued = rd_kafka_outq_len(st->rk);
    if (queued > 0 && (int64_t)queued + (int64_t)n > st->max_queued) {
        st->waiting = 1;
        return VELO_AGAIN;
    }
    if (st->txn && kafka_txn_begin(st) != VELO_OK) {
        return kafka_sink_failed(st);
    }
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        int rc =
            kafka_produce_record(st, &recs[i], meta != NULL ? &meta[i] : NULL,
                                 headers != NULL ? &headers[i] : NULL, i == 0);
        if (rc != VELO_OK) {
            return rc;
        }
        st->txn_messages += st->txn ? 1u : 0u;
        bytes += recs[i].len;
    }
    if (st->m_out != NULL && VELO_HOST_HAS(ins->host, metric_add)) {
        ins->host->metric_add(st->m_out, (double)n);
        ins->host->metric_add(st->m_bytes_out, (double)bytes);
    }
    return VELO_OK;
}

static int kafka_sink_write(struct velo_instance *ins,
                            const struct velo_str *recs,
                            const struct velo_record_meta *meta, size_t n)
{
    return kafka_sink_write_batch(ins, recs, meta, NULL, n);
}

static int kafka_sink_write_headers(struct velo_instance *ins,
                                    const struct velo_str *recs,
                                    const struct velo_record_meta *meta,
                                    const struct velo_str *headers, size_t n)
{
    return kafka_sink_write_batch(ins, recs, meta, headers, n);
}

static int kafka_sink_flush(struct velo_instance *ins)
{
    struct kafka_sink *st = ins->context;
    /* Never wait here: a flush with no time to wait sends what lingers
     * now and serves the reports that are in; the rest arrive on the
     * loop (kafka_sink_queue_ev), which wakes the engine to call again. */
    rd_kafka_flush(st->rk, 0);
    if (st->failed) {
        return kafka_sink_failed(st);
    }
    if (rd_kafka_outq_len(st->rk) > 0) {
        st->waiting = 1;
        return VELO_AGAIN;
    }
    /* Exactly once: with every message delivered, committing waits only
     * for the coordinator's answers (offsets, end of transaction). */
    return st->txn ? kafka_txn_commit(st) : VELO_OK;
}

static void kafka_sink_destroy(struct velo_instance *ins)
{
    struct kafka_sink *st = ins->context;
    if (st == NULL) {
        return;
    }
    if (st->registered) {
        kafka_reg_remove(st);
    }
    /* Closing serves the queue itself (flush, abort). */
    kafka_queue_unwatch(st->main_q, &st->main_fd, &st->main_ev);
    if (st->main_q != NULL) {
        rd_kafka_queue_destroy(st->main_q);
        st->main_q = NULL;
    }
    if (st->rk != NULL && st->txn_open) {
        /* Stopped without a last checkpoint (a failure elsewhere): what
         * this transaction holds was never acknowledged upstream. */
        velo_plg_warn(ins,
                      "%s: closing with an open transaction of %" PRIu64
                      " message(s): aborting it (a restart produces them "
                      "again)",
                      st->t.label, st->txn_messages);
        st->closing = 1;
        rd_kafka_error_t *e = rd_kafka_abort_transaction(st->rk, 5000);
        if (e != NULL) {
            rd_kafka_error_destroy(e);
        }
        st->txn_open = 0;
        rd_kafka_destroy(st->rk);
        st->rk = NULL;
    }
    if (st->rk != NULL) {
        st->closing = st->produced == 0;
        if (st->produced > 0) {
            rd_kafka_flush(st->rk, 5000);
        }
        int left = rd_kafka_outq_len(st->rk);
        if (st->produced > st->delivered + st->failed_count && left > 0) {
            velo_plg_warn(ins,
                          "%s: closing with %" PRIu64 " message(s) "
                          "not acknowledged",
                          st->t.label,
                          st->produced - st->delivered - st->failed_count);
        }
        rd_kafka_destroy(st->rk);
    }
    free(st->hscratch);
    free(st);
    ins->context = NULL;
}

/* ---- Descriptor --------------------------------------------------------- */

static const struct velo_connector_vtable kafka_vtable = {
    .size = sizeof(struct velo_connector_vtable),
    .scheme = "kafka",
    .flags = VELO_CONNECTOR_SOURCE | VELO_CONNECTOR_SINK |
             VELO_CONNECTOR_RECORD_SINK | VELO_CONNECTOR_RECORD_SOURCE,
    .introspect = kafka_introspect,
    .source_create = kafka_source_create,
    .source_read = kafka_source_read,
    .source_position = kafka_source_position,
    .source_seek = kafka_source_seek,
    .source_commit = kafka_source_commit,
    .source_destroy = kafka_source_destroy,
    .sink_create = kafka_sink_create,
    .sink_write = kafka_sink_write,
    .sink_flush = kafka_sink_flush,
    .sink_destroy = kafka_sink_destroy,
    .sink_write_headers = kafka_sink_write_headers,
};

static const struct velo_plugin_descriptor kafka_descriptor = {
    VELO_PLUGIN_HEADER,
    .kind = VELO_PLUGIN_CONNECTOR,
    .name = "kafka",
    .version = "0.1.0",
    .description = "Apache Kafka source and sink (librdkafka)",
    .license_feature = NULL,
    .config_map = kafka_config,
    .config_size = sizeof(struct kafka_conf),
    .vtable = &kafka_vtable,
};

VELO_EXPORT const struct velo_plugin_descriptor *
velo_plugin_init(const struct velo_host_api *host)
{
    (void)host;
    return &kafka_descriptor;
}
