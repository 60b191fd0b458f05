/*
 * Kafka introspection for tools and the Studio (ABI 1.1 `introspect`):
 *   list      topics with their partition counts and message counts (the
 *             sum over partitions of high minus low watermark);
 *   describe  one topic: up to KI_SAMPLE messages read from the start of
 *             every partition, and a schema inferred from the JSON ones
 *             (field, SQL type, an example);
 *   groups    consumer groups and, per topic they have committed offsets
 *             for, their lag (end offset minus committed offset).
 * A short-lived consumer handle does the work with bounded timeouts; it
 * never joins a group or commits anything. Errors name the brokers, never
 * credentials (which only come from 'x.kafka.sasl.*' properties).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include <velo/velo.h>

#include "kafka-internal.h"

#define KI_TIMEOUT_MS 5000
/* Reading the sample: the messages are known to be there, but fetching
 * them from every partition can take a while on a busy cluster. */
#define KI_SAMPLE_WAIT_MS 15000
#define KI_SAMPLE 100
#define KI_MAX_FIELDS 256

/* Brokers (and the topic, if any) from the URI or the properties. */
static int ki_target(const struct kafka_conf *conf,
                     const struct velo_connector_ctx *ctx, char *brokers,
                     size_t blen, char *topic, size_t tlen, char *err,
                     size_t errlen)
{
    brokers[0] = topic[0] = '\0';
    if (ctx->uri != NULL && strncmp(ctx->uri, "kafka://", 8) == 0) {
        const char *u = ctx->uri + 8;
        size_t hlen = strcspn(u, "/?#");
        if (memchr(u, '@', hlen) != NULL) {
            snprintf(err, errlen,
                     "a kafka:// URI cannot hold credentials: set "
                     "kafka.sasl.username and kafka.sasl.password");
            return VELO_ERR;
        }
        snprintf(brokers, blen, "%.*s", (int)hlen, u);
        if (u[hlen] == '/') {
            snprintf(topic, tlen, "%.*s", (int)strcspn(u + hlen + 1, "?#"),
                     u + hlen + 1);
        }
    }
    if (brokers[0] == '\0' && conf != NULL && conf->bootstrap_servers != NULL) {
        snprintf(brokers, blen, "%s", conf->bootstrap_servers);
    }
    if (topic[0] == '\0' && conf != NULL && conf->topic != NULL) {
        snprintf(topic, tlen, "%s", conf->topic);
    }
    if (brokers[0] == '\0') {
        snprintf(err, errlen,
                 "no brokers: give kafka://host:port or bootstrap.servers");
        return VELO_ERR;
    }
    return VELO_OK;
}

static rd_kafka_t *ki_open(const char *brokers, const char *group,
                           const struct velo_connector_ctx *ctx, char *err,
                           size_t errlen)
{
    char errstr[512];
    rd_kafka_conf_t *rc = rd_kafka_conf_new();
    if (rc == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    const char *kv[][2] = {{"bootstrap.servers", brokers},
                           {"group.id", group},
                           {"enable.auto.commit", "false"},
                           {"enable.partition.eof", "true"},
                           {"auto.offset.reset", "earliest"},
                           {"log_level", "0"}};
    for (size_t i = 0; i < sizeof(kv) / sizeof(*kv); i++) {
        if (rd_kafka_conf_set(rc, kv[i][0], kv[i][1], errstr,
                              sizeof(errstr)) != RD_KAFKA_CONF_OK) {
            snprintf(err, errlen, "kafka://%s: %s", brokers, errstr);
            rd_kafka_conf_destroy(rc);
            return NULL;
        }
    }
    /* SASL/SSL and the rest pass through; values are never shown. */
    for (size_t i = 0; i < ctx->nprops; i++) {
        const char *k = ctx->props[i].key;
        if (k == NULL || strncmp(k, "kafka.", 6) != 0) {
            continue;
        }
        if (rd_kafka_conf_set(rc, k + 6,
                              ctx->props[i].value ? ctx->props[i].value : "",
                              errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
            snprintf(err, errlen, "kafka://%s: librdkafka property '%s' is "
                                  "invalid",
                     brokers, k + 6);
            rd_kafka_conf_destroy(rc);
            return NULL;
        }
    }
    rd_kafka_t *rk =
        rd_kafka_new(RD_KAFKA_CONSUMER, rc, errstr, sizeof(errstr));
    if (rk == NULL) {
        snprintf(err, errlen, "kafka://%s: %s", brokers, errstr);
        rd_kafka_conf_destroy(rc);
    }
    return rk;
}

static const struct rd_kafka_metadata *ki_metadata(rd_kafka_t *rk,
                                                   const char *brokers,
                                                   char *err, size_t errlen)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 1, NULL, &md, KI_TIMEOUT_MS);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(err, errlen,
                 "kafka://%s: no answer from the brokers within %d ms (%s); "
                 "check the address and that Kafka is running",
                 brokers, KI_TIMEOUT_MS, rd_kafka_err2str(e));
        return NULL;
    }
    return md;
}

/* Sum of high - low over a topic's partitions; -1 when unknown. */
static int64_t ki_messages(rd_kafka_t *rk,
                           const struct rd_kafka_metadata_topic *t,
                           json_t *parts)
{
    int64_t total = 0;
    for (int p = 0; p < t->partition_cnt; p++) {
        int64_t lo = 0, hi = 0;
        int32_t id = t->partitions[p].id;
        if (rd_kafka_query_watermark_offsets(rk, t->topic, id, &lo, &hi,
                                             KI_TIMEOUT_MS) !=
            RD_KAFKA_RESP_ERR_NO_ERROR) {
            return -1;
        }
        total += hi - lo;
        if (parts != NULL) {
            json_array_append_new(parts, json_pack("{s:i, s:I, s:I}",
                                                   "partition", (int)id,
                                                   "low", (json_int_t)lo,
                                                   "high", (json_int_t)hi));
        }
    }
    return total;
}

static int ki_list(rd_kafka_t *rk, const char *brokers, json_t *out,
                   char *err, size_t errlen)
{
    const struct rd_kafka_metadata *md = ki_metadata(rk, brokers, err, errlen);
    if (md == NULL) {
        return VELO_ERR;
    }
    for (int i = 0; i < md->topic_cnt; i++) {
        const struct rd_kafka_metadata_topic *t = &md->topics[i];
        if (t->err != RD_KAFKA_RESP_ERR_NO_ERROR ||
            strncmp(t->topic, "__", 2) == 0) {
            continue; /* internal topics (__consumer_offsets) */
        }
        int64_t n = ki_messages(rk, t, NULL);
        json_array_append_new(
            out, json_pack("{s:s, s:i, s:o}", "topic", t->topic,
                           "partitions", t->partition_cnt, "messages",
                           n >= 0 ? json_integer(n) : json_null()));
    }
    rd_kafka_metadata_destroy(md);
    return VELO_OK;
}

/* ---- describe: sample and infer ---------------------------------------- */

struct ki_field {
    char *name;
    int kinds;       /* bit per json type seen */
    int iso_strings; /* every string looked like an ISO timestamp */
    int strings;
    json_t *example;
};

enum { K_BOOL = 1, K_INT = 2, K_REAL = 4, K_STR = 8, K_OBJ = 16, K_NULL = 32 };

static int looks_iso(const char *s)
{
    /* 2026-01-01T10:00:00... or 2026-01-01 10:00:00 */
    return strlen(s) >= 19 && s[4] == '-' && s[7] == '-' &&
           (s[10] == 'T' || s[10] == ' ') && s[13] == ':' && s[16] == ':';
}

static const char *ki_type(const struct ki_field *f)
{
    int k = f->kinds & ~K_NULL;
    if (k == 0) {
        return "STRING";
    }
    if (k == K_BOOL) {
        return "BOOLEAN";
    }
    if (k == K_INT) {
        return "BIGINT";
    }
    if ((k & ~(K_INT | K_REAL)) == 0) {
        return "DOUBLE";
    }
    if (k == K_STR) {
        return f->iso_strings == f->strings ? "TIMESTAMP" : "STRING";
    }
    if (k == K_OBJ) {
        return "JSON";
    }
    return "STRING";
}

static struct ki_field *ki_find(struct ki_field *fs, size_t *n,
                                const char *name)
{
    for (size_t i = 0; i < *n; i++) {
        if (strcmp(fs[i].name, name) == 0) {
            return &fs[i];
        }
    }
    if (*n >= KI_MAX_FIELDS) {
        return NULL;
    }
    struct ki_field *f = &fs[(*n)++];
    memset(f, 0, sizeof(*f));
    f->name = strdup(name);
    return f->name != NULL ? f : NULL;
}

static void ki_note(struct ki_field *f, json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_TRUE:
    case JSON_FALSE:
        f->kinds |= K_BOOL;
        break;
    case JSON_INTEGER:
        f->kinds |= K_INT;
        break;
    case JSON_REAL:
        f->kinds |= K_REAL;
        break;
    case JSON_STRING:
        f->kinds |= K_STR;
        f->strings++;
        f->iso_strings += looks_iso(json_string_value(v));
        break;
    case JSON_NULL:
        f->kinds |= K_NULL;
        return;
    default:
        f->kinds |= K_OBJ;
        break;
    }
    if (f->example == NULL) {
        f->example = json_incref(v);
    }
}

static int ki_describe(rd_kafka_t *rk, const char *brokers,
                       const char *topic, json_t **out, char *err,
                       size_t errlen)
{
    const struct rd_kafka_metadata *md = ki_metadata(rk, brokers, err, errlen);
    if (md == NULL) {
        return VELO_ERR;
    }
    const struct rd_kafka_metadata_topic *t = NULL;
    for (int i = 0; i < md->topic_cnt; i++) {
        if (strcmp(md->topics[i].topic, topic) == 0) {
            t = &md->topics[i];
        }
    }
    if (t == NULL || t->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(err, errlen, "kafka://%s/%s: no such topic", brokers, topic);
        rd_kafka_metadata_destroy(md);
        return VELO_ERR;
    }
    json_t *parts = json_array();
    int64_t total = ki_messages(rk, t, parts);
    rd_kafka_topic_partition_list_t *l =
        rd_kafka_topic_partition_list_new(t->partition_cnt);
    for (int p = 0; p < t->partition_cnt; p++) {
        rd_kafka_topic_partition_list_add(l, topic, t->partitions[p].id)
            ->offset = RD_KAFKA_OFFSET_BEGINNING;
    }
    int nparts = t->partition_cnt;
    rd_kafka_metadata_destroy(md);
    rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);

    struct ki_field *fs = calloc(KI_MAX_FIELDS, sizeof(*fs));
    size_t nf = 0, sampled = 0, not_json = 0;
    int eofs = 0;
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    /* Read until the sample is full or every message there is was read
     * (an early end-of-partition event can precede a fetch, so the
     * watermarks decide when they are known). */
    size_t want = total >= 0 && total < KI_SAMPLE ? (size_t)total : KI_SAMPLE;
    while (fs != NULL && sampled < want && (total >= 0 || eofs < nparts)) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        long ms = (now.tv_sec - t0.tv_sec) * 1000 +
                  (now.tv_nsec - t0.tv_nsec) / 1000000;
        if (ms > KI_SAMPLE_WAIT_MS) {
            break;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (m == NULL) {
            continue;
        }
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            eofs++;
        } else if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            sampled++;
            json_t *v = m->payload != NULL
                            ? json_loadb(m->payload, m->len, 0, NULL)
                            : NULL;
            if (v != NULL && json_is_object(v)) {
                const char *k;
                json_t *x;
                json_object_foreach(v, k, x) {
                    struct ki_field *f = ki_find(fs, &nf, k);
                    if (f != NULL) {
                        ki_note(f, x);
                    }
                }
            } else {
                not_json++;
            }
            json_decref(v);
        }
        rd_kafka_message_destroy(m);
    }
    json_t *fields = json_array();
    for (size_t i = 0; i < nf; i++) {
        json_array_append_new(
            fields, json_pack("{s:s, s:s, s:o}", "field", fs[i].name, "type",
                              ki_type(&fs[i]), "example",
                              fs[i].example != NULL ? fs[i].example
                                                    : json_null()));
        free(fs[i].name);
    }
    free(fs);
    *out = json_pack("{s:s, s:i, s:o, s:o, s:I, s:I, s:o}", "topic", topic,
                     "partitions", nparts, "messages",
                     total >= 0 ? json_integer(total) : json_null(),
                     "partition_offsets", parts, "sampled",
                     (json_int_t)sampled, "not_json", (json_int_t)not_json,
                     "fields", fields);
    return *out != NULL ? VELO_OK : VELO_ERR;
}

/* ---- groups: committed offsets and lag --------------------------------- */

/* One group (named, or listed by the brokers): its lag per topic. */
static json_t *ki_group(rd_kafka_t *rk, const char *brokers,
                        const struct velo_connector_ctx *ctx,
                        const struct rd_kafka_metadata *md,
                        const struct rd_kafka_group_info *gi,
                        const char *name, char *err, size_t errlen)
{
    json_t *topics = json_array();
    {
        /* Committed offsets are asked as the group itself would. */
        rd_kafka_t *gk = ki_open(brokers, name, ctx, err, errlen);
        for (int i = 0; gk != NULL && i < md->topic_cnt; i++) {
            const struct rd_kafka_metadata_topic *t = &md->topics[i];
            if (t->err != RD_KAFKA_RESP_ERR_NO_ERROR ||
                strncmp(t->topic, "__", 2) == 0) {
                continue;
            }
            rd_kafka_topic_partition_list_t *l =
                rd_kafka_topic_partition_list_new(t->partition_cnt);
            for (int p = 0; p < t->partition_cnt; p++) {
                rd_kafka_topic_partition_list_add(l, t->topic,
                                                  t->partitions[p].id);
            }
            if (rd_kafka_committed(gk, l, KI_TIMEOUT_MS) ==
                RD_KAFKA_RESP_ERR_NO_ERROR) {
                json_t *parts = json_array();
                int64_t lag = 0;
                int any = 0;
                for (int p = 0; p < l->cnt; p++) {
                    any |= l->elems[p].offset >= 0;
                }
                /* A partition of a topic the group reads but without a
                 * commit of its own (it never had a message for the
                 * group): the group reads it from its start, so all of
                 * it is lag; "committed" is null. */
                for (int p = 0; any && p < l->cnt; p++) {
                    int64_t lo = 0, hi = 0;
                    int64_t c = l->elems[p].offset;
                    if (rd_kafka_query_watermark_offsets(
                            rk, t->topic, l->elems[p].partition, &lo, &hi,
                            KI_TIMEOUT_MS) != RD_KAFKA_RESP_ERR_NO_ERROR) {
                        continue;
                    }
                    int64_t from = c >= 0 ? c : lo;
                    lag += hi - from;
                    json_array_append_new(
                        parts,
                        json_pack("{s:i, s:o, s:I, s:I}", "partition",
                                  (int)l->elems[p].partition, "committed",
                                  c >= 0 ? json_integer((json_int_t)c)
                                         : json_null(),
                                  "end", (json_int_t)hi, "lag",
                                  (json_int_t)(hi - from)));
                }
                if (any) {
                    json_array_append_new(
                        topics, json_pack("{s:s, s:I, s:o}", "topic",
                                          t->topic, "lag", (json_int_t)lag,
                                          "partitions", parts));
                } else {
                    json_decref(parts);
                }
            }
            rd_kafka_topic_partition_list_destroy(l);
        }
        if (gk != NULL) {
            rd_kafka_destroy(gk);
        }
    }
    if (gi == NULL) {
        return json_pack("{s:s, s:o}", "group", name, "topics", topics);
    }
    return json_pack("{s:s, s:s, s:i, s:o}", "group", name, "state",
                     gi->state ? gi->state : "", "members", gi->member_cnt,
                     "topics", topics);
}

static int ki_groups(rd_kafka_t *rk, const char *brokers,
                     const struct velo_connector_ctx *ctx, const char *only,
                     json_t *out, char *err, size_t errlen)
{
    const struct rd_kafka_metadata *md = ki_metadata(rk, brokers, err, errlen);
    if (md == NULL) {
        return VELO_ERR;
    }
    if (only != NULL && only[0] != '\0') {
        /* A named group: its committed offsets need no group listing. */
        json_array_append_new(out, ki_group(rk, brokers, ctx, md, NULL, only,
                                            err, errlen));
        rd_kafka_metadata_destroy(md);
        return VELO_OK;
    }
    const struct rd_kafka_group_list *gl = NULL;
    rd_kafka_resp_err_t e = rd_kafka_list_groups(rk, NULL, &gl, KI_TIMEOUT_MS);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(err, errlen,
                 "kafka://%s: the brokers did not list the consumer groups "
                 "(%s); name one to see its lag: groups GROUP",
                 brokers, rd_kafka_err2str(e));
        rd_kafka_metadata_destroy(md);
        return VELO_ERR;
    }
    for (int g = 0; g < gl->group_cnt; g++) {
        const struct rd_kafka_group_info *gi = &gl->groups[g];
        json_array_append_new(out, ki_group(rk, brokers, ctx, md, gi,
                                            gi->group, err, errlen));
    }
    rd_kafka_metadata_destroy(md);
    rd_kafka_group_list_destroy(gl);
    return VELO_OK;
}

int kafka_introspect(const void *config, const struct velo_connector_ctx *ctx,
                     const char *what, const char *arg, char **out, char *err,
                     size_t errlen)
{
    const struct kafka_conf *conf = config;
    char brokers[512], topic[256];
    *out = NULL;
    if (strcmp(what, "list") != 0 && strcmp(what, "describe") != 0 &&
        strcmp(what, "groups") != 0) {
        return VELO_DECLINED;
    }
    if (ki_target(conf, ctx, brokers, sizeof(brokers), topic, sizeof(topic),
                  err, errlen) != VELO_OK) {
        return VELO_ERR;
    }
    if (strcmp(what, "describe") == 0) {
        if (arg != NULL && arg[0] != '\0') {
            snprintf(topic, sizeof(topic), "%s", arg);
        }
        if (topic[0] == '\0') {
            snprintf(err, errlen, "describe which topic? name it, or write "
                                  "kafka://host:port/topic");
            return VELO_ERR;
        }
    }
    rd_kafka_t *rk = ki_open(brokers, "velo-inspect", ctx, err, errlen);
    if (rk == NULL) {
        return VELO_ERR;
    }
    json_t *doc = NULL;
    int rc;
    if (strcmp(what, "describe") == 0) {
        rc = ki_describe(rk, brokers, topic, &doc, err, errlen);
    } else {
        doc = json_array();
        rc = strcmp(what, "list") == 0
                 ? ki_list(rk, brokers, doc, err, errlen)
                 : ki_groups(rk, brokers, ctx, arg, doc, err, errlen);
    }
    rd_kafka_destroy(rk);
    if (rc == VELO_OK && doc != NULL) {
        *out = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (*out == NULL) {
            snprintf(err, errlen, "out of memory");
            rc = VELO_ERR;
        }
    }
    json_decref(doc);
    return rc;
}
