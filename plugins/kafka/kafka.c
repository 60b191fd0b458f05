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
 * record, the key from the record's meta when there is one. A failed
 * delivery is reported by the next sink_write or sink_flush.
 *
 * Every callback of librdkafka (rebalance, errors, logs, commits,
 * deliveries) is served from our own poll calls, so all of them run on the
 * job's thread: logs go through the main queue (log.queue=true) rather than
 * librdkafka's internal threads.
 *
 * Secrets: values of passthrough properties are never logged; errors name
 * the key only. The URI shown in messages is rebuilt from brokers and
 * topic, so it never holds credentials.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include <velo/velo.h>

#define KAFKA_PASSTHROUGH "kafka."
#define KAFKA_LABEL_MAX 512
#define KAFKA_ERR_MAX 512
/* While the brokers are unreachable, say so at most this often. */
#define KAFKA_WARN_INTERVAL_S 10
/* How long closing a consumer may wait to leave its group. */
#define KAFKA_CLOSE_WAIT_S 5

struct kafka_conf {
    char *bootstrap_servers;
    char *topic;
    char *group_id;
    char *auto_offset_reset;
    char *compression;
    int64_t linger_ms;
    char *acks;
    int enable_idempotence;
    int64_t connect_timeout_ms;
    int64_t delivery_timeout_ms;
    int64_t session_timeout_ms;
};

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
        if (kafka_set(ins, rc, k,
                      ctx->props[i].value != NULL ? ctx->props[i].value : "",
                      label) != VELO_OK) {
            return VELO_ERR;
        }
    }
    return VELO_OK;
}

/* librdkafka's log lines, forwarded from the main queue (our thread).
 * Connection retries are routine: only severe lines reach the log at
 * warning level, the rest at debug. */
static void kafka_log_cb(const rd_kafka_t *rk, int level, const char *fac,
                         const char *buf)
{
    struct velo_instance *ins = rd_kafka_opaque(rk);
    if (ins == NULL) {
        return;
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

/* Connectivity changes, said once per change rather than per retry. */
struct kafka_health {
    int down;
    time_t last_warn;
};

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
        h->down = 0;
    }
}

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
};

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
        st->failed = 1;
    } else if (err == RD_KAFKA_RESP_ERR__AUTHENTICATION) {
        velo_plg_error(ins, "%s: authentication failed: %s", st->t.label,
                       reason);
        st->failed = 1;
    } else if (kafka_transient((rd_kafka_resp_err_t)err)) {
        kafka_health_down(ins, &st->health, st->t.label, reason);
    } else {
        velo_plg_warn(ins, "%s: %s", st->t.label, reason);
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
    ins->context = st;
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
                  "the committed offsets or the %s",
                  st->t.label, parts, parts == 1 ? "" : "s", group, reset);
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
                          rd_kafka_message_errstr(m));
        return VELO_OK;
    }
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
        if (kafka_offsets_set(&st->read, m->partition, m->offset + 1) !=
            VELO_OK) {
            velo_plg_error(ins, "out of memory");
            return VELO_ERR;
        }
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
    kafka_source_release(st);
    if (st->rk != NULL) {
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
    free(st->read.next);
    free(st->resume.next);
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
};

static void kafka_sink_fail(struct kafka_sink *st, const char *fmt,
                            const char *reason)
{
    if (!st->failed) {
        snprintf(st->why, sizeof(st->why), fmt, st->t.label, reason);
        st->failed = 1;
    }
}

static void kafka_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m,
                        void *opaque)
{
    struct velo_instance *ins = opaque;
    struct kafka_sink *st = ins->context;
    (void)rk;
    if (st == NULL) {
        return;
    }
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        st->delivered++;
        kafka_health_up(ins, &st->health, st->t.label);
        return;
    }
    st->failed_count++;
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
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char why[KAFKA_ERR_MAX];
        rd_kafka_fatal_error(rk, why, sizeof(why));
        kafka_sink_fail(st, "%s: fatal producer error: %s", why);
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
    if (!st->failure_reported) {
        velo_plg_error(st->ins, "%s", st->why);
        st->failure_reported = 1;
    }
    return VELO_ERR;
}

static void kafka_sink_destroy(struct velo_instance *ins);

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
    ins->context = st;
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
    int parts =
        kafka_check_topic(ins, st->rk, &st->t, conf->connect_timeout_ms);
    if (parts < 0) {
        goto fail;
    }
    velo_plg_info(ins, "%s: producing to %d partition%s (%s, acks=%s%s)",
                  st->t.label, parts, parts == 1 ? "" : "s", codec, acks,
                  conf->enable_idempotence ? ", idempotent" : "");
    return VELO_OK;

fail:
    kafka_sink_destroy(ins);
    return VELO_ERR;
}

/* Produce one message. @return VELO_OK, VELO_AGAIN (queue full), or
 * VELO_ERR (logged). */
static int kafka_produce(struct kafka_sink *st, const char *p, size_t len,
                         const struct velo_record_meta *meta)
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
    rd_kafka_resp_err_t err = rd_kafka_producev(
        st->rk, RD_KAFKA_V_TOPIC(st->t.topic),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_VALUE((void *)(uintptr_t)p, len), RD_KAFKA_V_KEY(key, klen),
        RD_KAFKA_V_TIMESTAMP(ts_ms), RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        st->produced++;
        return VELO_OK;
    }
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        return VELO_AGAIN;
    }
    kafka_sink_fail(st, "%s: cannot produce: %s", rd_kafka_err2str(err));
    return kafka_sink_failed(st);
}

/* One record, one message. Once part of a call's input is queued, the
 * rest must go too (the engine retries a whole call after VELO_AGAIN), so
 * only the call's first record may defer; later ones wait for room. */
static int kafka_produce_record(struct kafka_sink *st,
                                const struct velo_str *rec,
                                const struct velo_record_meta *meta,
                                int may_defer)
{
    int rc;
    while ((rc = kafka_produce(st, rec->ptr, rec->len, meta)) == VELO_AGAIN) {
        if (may_defer) {
            return VELO_AGAIN;
        }
        rd_kafka_poll(st->rk, 10);
        if (st->failed) {
            return kafka_sink_failed(st);
        }
    }
    return rc;
}

static int kafka_sink_write(struct velo_instance *ins,
                            const struct velo_str *recs,
                            const struct velo_record_meta *meta, size_t n)
{
    struct kafka_sink *st = ins->context;
    rd_kafka_poll(st->rk, 0); /* delivery reports */
    if (st->failed) {
        return kafka_sink_failed(st);
    }
    /* Back-pressure before anything of this call is queued. */
    int queued = rd_kafka_outq_len(st->rk);
    if (queued > 0 && (int64_t)queued + (int64_t)n > st->max_queued) {
        return VELO_AGAIN;
    }
    for (size_t i = 0; i < n; i++) {
        int rc = kafka_produce_record(st, &recs[i],
                                      meta != NULL ? &meta[i] : NULL, i == 0);
        if (rc != VELO_OK) {
            return rc;
        }
    }
    return VELO_OK;
}

static int kafka_sink_flush(struct velo_instance *ins)
{
    struct kafka_sink *st = ins->context;
    rd_kafka_flush(st->rk, 100);
    if (st->failed) {
        return kafka_sink_failed(st);
    }
    return rd_kafka_outq_len(st->rk) > 0 ? VELO_AGAIN : VELO_OK;
}

static void kafka_sink_destroy(struct velo_instance *ins)
{
    struct kafka_sink *st = ins->context;
    if (st == NULL) {
        return;
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
    free(st);
    ins->context = NULL;
}

/* ---- Descriptor --------------------------------------------------------- */

static const struct velo_connector_vtable kafka_vtable = {
    .size = sizeof(struct velo_connector_vtable),
    .scheme = "kafka",
    .flags = VELO_CONNECTOR_SOURCE | VELO_CONNECTOR_SINK |
             VELO_CONNECTOR_RECORD_SINK,
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
