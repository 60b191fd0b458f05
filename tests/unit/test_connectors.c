/*
 * Connectors: the registry (types, schemes, unknown names), per-instance
 * config filling and its errors, the file source (chunks of a mapping,
 * positions, watch mode with appends, truncation and rotation), the file
 * sink (append, rotation, fsync on flush), stdin through a pipe in a child
 * process, stdout, and the URI helpers.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include <velo/velo.h>

#include "connectors/registry.h"
#include "plugin/host.h"
#include "testutil.h"
#include "util/log.h"

static struct velo_connectors *reg;

static int suite_init(void)
{
    reg = velo_connectors_create(NULL);
    return reg != NULL ? 0 : -1;
}

static int suite_clean(void)
{
    velo_connectors_destroy(reg);
    return 0;
}

/* Log lines go to a file the test can read. */
struct logcap {
    char path[512];
    int fd;
};

static void logcap_start(struct logcap *l, const char *dir)
{
    snprintf(l->path, sizeof(l->path), "%s/log.txt", dir);
    l->fd = open(l->path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    velo_log_set_fd(l->fd);
}

static char *logcap_stop(struct logcap *l)
{
    velo_log_set_fd(-1);
    close(l->fd);
    return tu_read_file(l->path, NULL);
}

/* A connector instance as the engine makes one. */
struct inst {
    const struct velo_connector_ref *ref;
    void *conf;
    struct velo_instance ins;
    struct velo_connector_ctx ctx;
    struct velo_source_info info;
};

static int fill(struct inst *in, const char *type,
                const struct velo_property *props, size_t n, char *err,
                size_t errlen)
{
    memset(in, 0, sizeof(*in));
    int is_source = -1;
    in->ref = velo_connectors_by_type(reg, type, &is_source);
    CU_ASSERT_PTR_NOT_NULL_FATAL(in->ref);
    const char *bad = NULL;
    int rc = velo_connector_config_fill(in->ref, props, n, NULL, &in->conf,
                                        &bad, err, errlen);
    in->ins.host = velo_host_api();
    in->ins.name = "test:conn";
    in->ctx.job = "test";
    in->ctx.name = "src";
    in->ctx.props = props;
    in->ctx.nprops = n;
    in->info.size_bytes = -1;
    return rc;
}

static void inst_free(struct inst *in, int source)
{
    if (in->ins.context != NULL) {
        if (source) {
            in->ref->vt->source_destroy(&in->ins);
        } else {
            in->ref->vt->sink_destroy(&in->ins);
        }
    }
    velo_connector_config_free(in->ref, in->conf);
}

/* ---- registry ----------------------------------------------------------- */

static void test_registry(void)
{
    int src = -1;
    const struct velo_connector_ref *r =
        velo_connectors_by_type(reg, "file_source", &src);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_STRING_EQUAL(r->name, "file");
    CU_ASSERT_EQUAL(src, 1);
    CU_ASSERT_EQUAL(r->builtin, 1);
    CU_ASSERT_PTR_NOT_NULL(r->config_map);
    CU_ASSERT_PTR_EQUAL(velo_connectors_by_type(reg, "file_sink", &src), r);
    CU_ASSERT_EQUAL(src, 0);
    CU_ASSERT_PTR_EQUAL(velo_connectors_by_type(reg, "FILE_Source", &src), r);
    CU_ASSERT_PTR_EQUAL(velo_connectors_by_scheme(reg, "file"), r);
    CU_ASSERT_PTR_NOT_NULL(velo_connectors_by_type(reg, "stdin_source", &src));
    CU_ASSERT_PTR_NOT_NULL(velo_connectors_by_type(reg, "stdout_sink", &src));
    /* Unknown names and the wrong direction. */
    CU_ASSERT_PTR_NULL(velo_connectors_by_type(reg, "stdin_sink", &src));
    CU_ASSERT_PTR_NULL(velo_connectors_by_type(reg, "stdout_source", &src));
    CU_ASSERT_PTR_NULL(velo_connectors_by_type(reg, "kafka_source", &src));
    CU_ASSERT_PTR_NULL(velo_connectors_by_type(reg, "file", &src));
    CU_ASSERT_PTR_NULL(velo_connectors_by_type(reg, "_source", &src));
    CU_ASSERT_PTR_NULL(velo_connectors_by_scheme(reg, "kafka"));
    CU_ASSERT_PTR_NOT_NULL(velo_connectors_by_scheme(reg, "STDIN"));
    const char *names[16];
    size_t n = velo_connectors_type_names(reg, names, 16);
    CU_ASSERT_EQUAL(n, 5);
    int seen = 0;
    for (size_t i = 0; i < n; i++) {
        seen += strcmp(names[i], "file_source") == 0 ||
                strcmp(names[i], "file_sink") == 0 ||
                strcmp(names[i], "stdin_source") == 0 ||
                strcmp(names[i], "stdout_sink") == 0 ||
                strcmp(names[i], "gen_source") == 0;
    }
    CU_ASSERT_EQUAL(seen, 5);
    CU_ASSERT_EQUAL(velo_connectors_type_names(reg, names, 2), 2);

    /* A loader whose only connector plugin was refused registers
     * nothing beyond the built-ins. */
    struct velo_connectors *c2 = velo_connectors_create(NULL);
    CU_ASSERT_EQUAL(velo_connectors_type_names(c2, names, 16), 5);
    velo_connectors_destroy(c2);
}

/* ---- config ------------------------------------------------------------- */

static void test_config_fill(void)
{
    char err[512];
    struct inst in;
    const struct velo_property ok[] = {
        {"path", "/tmp/x.csv"},      {"watch", "yes"},
        {"poll.interval", "50ms"},   {"type", "file_source"},
        {"format", "csv"},           {"csv.delimiter", ";"},
        {"record.max_bytes", "1MiB"}};
    CU_ASSERT_EQUAL(fill(&in, "file_source", ok, 7, err, sizeof(err)), VELO_OK);
    CU_ASSERT_PTR_NOT_NULL(in.conf);
    velo_connector_config_free(in.ref, in.conf);

    /* Unknown key: named, with the known ones listed. */
    const struct velo_property unk[] = {{"path", "/tmp/x"}, {"colour", "red"}};
    const char *bad = NULL;
    void *conf = NULL;
    const struct velo_connector_ref *r = velo_connectors_by_scheme(reg, "file");
    CU_ASSERT_EQUAL(velo_connector_config_fill(r, unk, 2, NULL, &conf, &bad,
                                               err, sizeof(err)),
                    VELO_ERR);
    CU_ASSERT_PTR_NULL(conf);
    CU_ASSERT_PTR_EQUAL(bad, unk[1].key);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "unknown property colour"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "known keys: path, watch"));

    /* Passthrough: accepted, left to the connector. */
    const struct velo_property pass[] = {{"kafka.linger.ms", "5"},
                                         {"path", "p"}};
    CU_ASSERT_EQUAL(velo_connector_config_fill(r, pass, 2, "kafka.", &conf,
                                               &bad, err, sizeof(err)),
                    VELO_OK);
    velo_connector_config_free(r, conf);

    /* Wrong types: every one reported, the first pointed at. */
    const struct velo_property types[] = {{"watch", "sometimes"},
                                          {"poll.interval", "30"},
                                          {"rotate.bytes", "12 parsecs"}};
    CU_ASSERT_EQUAL(velo_connector_config_fill(r, types, 3, NULL, &conf, &bad,
                                               err, sizeof(err)),
                    VELO_ERR);
    CU_ASSERT_PTR_EQUAL(bad, types[0].key);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "watch: \"sometimes\" is not a "
                                       "boolean"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "poll.interval: \"30\" is not a "
                                       "duration (write a number with a "
                                       "unit"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "rotate.bytes"));

    /* stdout takes one setting; stdin's fd must be open. */
    const struct velo_property so[] = {{"buffer", "1"}};
    r = velo_connectors_by_scheme(reg, "stdout");
    CU_ASSERT_EQUAL(velo_connector_config_fill(r, so, 1, NULL, &conf, &bad, err,
                                               sizeof(err)),
                    VELO_ERR);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "known keys: fd"));

    /* Missing path: the file connector says how to give one. */
    char *dir = tu_tmpdir();
    struct logcap lc;
    logcap_start(&lc, dir);
    CU_ASSERT_EQUAL(fill(&in, "file_source", NULL, 0, err, sizeof(err)),
                    VELO_OK);
    CU_ASSERT_EQUAL(
        in.ref->vt->source_create(&in.ins, in.conf, &in.ctx, &in.info),
        VELO_ERR);
    inst_free(&in, 1);
    /* A sink given a source-only property. */
    const struct velo_property sw[] = {{"path", "/tmp/never-written"},
                                       {"watch", "true"}};
    CU_ASSERT_EQUAL(fill(&in, "file_sink", sw, 2, err, sizeof(err)), VELO_OK);
    CU_ASSERT_EQUAL(in.ref->vt->sink_create(&in.ins, in.conf, &in.ctx),
                    VELO_ERR);
    inst_free(&in, 0);
    /* A source that does not exist. */
    const struct velo_property nf[] = {{"path", "/nonexistent/t.csv"}};
    CU_ASSERT_EQUAL(fill(&in, "file_source", nf, 1, err, sizeof(err)), VELO_OK);
    CU_ASSERT_EQUAL(
        in.ref->vt->source_create(&in.ins, in.conf, &in.ctx, &in.info),
        VELO_ERR);
    inst_free(&in, 1);
    char *log = logcap_stop(&lc);
    CU_ASSERT_PTR_NOT_NULL(strstr(log, "no file path: set 'src.path'"));
    CU_ASSERT_PTR_NOT_NULL(strstr(log, "file:///abs/path"));
    CU_ASSERT_PTR_NOT_NULL(strstr(log, "'watch' applies to file sources"));
    CU_ASSERT_PTR_NOT_NULL(strstr(log, "cannot open /nonexistent/t.csv"));
    CU_ASSERT_PTR_NOT_NULL(strstr(log, "[test:conn]"));
    free(log);
    tu_rmrf(dir);
    free(dir);
}

/* ---- file source -------------------------------------------------------- */

static int read_one(struct inst *in, struct velo_str *out,
                    struct velo_record_meta *meta)
{
    struct velo_source_batch b = {0, 4, out, meta, NULL};
    int rc = in->ref->vt->source_read(&in->ins, &b);
    if (rc == VELO_OK && b.count != 1) {
        return VELO_AGAIN;
    }
    return rc;
}

static void test_file_source_chunks(void)
{
    char *dir = tu_tmpdir();
    char path[600];
    snprintf(path, sizeof(path), "%s/big.csv", dir);
    /* 3.5 chunks of 1 MiB, lines that straddle the boundaries. */
    size_t size = 3 * 1024 * 1024 + 512 * 1024 + 17;
    char *data = malloc(size);
    for (size_t i = 0; i < size; i++) {
        data[i] = (i % 37 == 36) ? '\n' : (char)('a' + i % 26);
    }
    CU_ASSERT_EQUAL_FATAL(tu_write_file(path, data, size), 0);
    char err[512];
    struct inst in;
    const struct velo_property props[] = {{"read.chunk", "1MiB"}};
    CU_ASSERT_EQUAL_FATAL(fill(&in, "file_source", props, 1, err, sizeof(err)),
                          VELO_OK);
    char uri[700];
    snprintf(uri, sizeof(uri), "file://%s", path); /* file:///tmp/... */
    in.ctx.uri = uri;
    CU_ASSERT_EQUAL_FATAL(
        in.ref->vt->source_create(&in.ins, in.conf, &in.ctx, &in.info),
        VELO_OK);
    CU_ASSERT_EQUAL(in.info.bounded, 1);
    CU_ASSERT_EQUAL(in.info.byte_stream, 1);
    CU_ASSERT_EQUAL(in.info.size_bytes, (int64_t)size);
    struct velo_str v[4];
    struct velo_record_meta m[4];
    size_t total = 0;
    const char *prev_end = NULL;
    int chunks = 0;
    int rc;
    while ((rc = read_one(&in, v, m)) == VELO_OK) {
        chunks++;
        CU_ASSERT(v[0].len <= 1024 * 1024);
        /* Views of one mapping: each chunk starts where the last ended. */
        if (prev_end != NULL) {
            CU_ASSERT_PTR_EQUAL(v[0].ptr, prev_end);
        }
        CU_ASSERT_EQUAL(m[0].offset, (int64_t)total);
        CU_ASSERT_EQUAL(memcmp(v[0].ptr, data + total, v[0].len), 0);
        prev_end = v[0].ptr + v[0].len;
        total += v[0].len;
    }
    CU_ASSERT_EQUAL(rc, VELO_DECLINED);
    CU_ASSERT_EQUAL(chunks, 4);
    CU_ASSERT_EQUAL(total, size);
    CU_ASSERT_EQUAL(read_one(&in, v, m), VELO_DECLINED);

    /* Position and seek: resume where a checkpoint said. */
    uint8_t pos[64];
    int plen = in.ref->vt->source_position(&in.ins, pos, sizeof(pos));
    CU_ASSERT_EQUAL(plen, 16);
    CU_ASSERT_EQUAL(in.ref->vt->source_position(&in.ins, pos, 4), VELO_ERR);
    pos[0] = 0x00;
    pos[1] = 0x00;
    pos[2] = 0x10; /* offset 1 MiB */
    for (int i = 3; i < 8; i++) {
        pos[i] = 0;
    }
    CU_ASSERT_EQUAL(in.ref->vt->source_seek(&in.ins, pos, (size_t)plen),
                    VELO_OK);
    CU_ASSERT_EQUAL(read_one(&in, v, m), VELO_OK);
    CU_ASSERT_EQUAL(m[0].offset, 1024 * 1024);
    CU_ASSERT_EQUAL(memcmp(v[0].ptr, data + 1024 * 1024, 64), 0);
    CU_ASSERT_EQUAL(in.ref->vt->source_commit(&in.ins, pos, (size_t)plen),
                    VELO_OK);
    inst_free(&in, 1);

    /* An empty file ends at once. */
    char empty[600];
    snprintf(empty, sizeof(empty), "%s/empty.csv", dir);
    tu_write_file(empty, "", 0);
    const struct velo_property ep[] = {{"path", empty}};
    CU_ASSERT_EQUAL_FATAL(fill(&in, "file_source", ep, 1, err, sizeof(err)),
                          VELO_OK);
    CU_ASSERT_EQUAL_FATAL(
        in.ref->vt->source_create(&in.ins, in.conf, &in.ctx, &in.info),
        VELO_OK);
    CU_ASSERT_EQUAL(read_one(&in, v, m), VELO_DECLINED);
    inst_free(&in, 1);
    free(data);
    tu_rmrf(dir);
    free(dir);
}

static void append_file(const char *path, const char *s)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0644);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_EQUAL(write(fd, s, strlen(s)), (ssize_t)strlen(s));
    close(fd);
}

/* Read until data comes (the poll interval is 10ms). */
static int wait_data(struct inst *in, struct velo_str *v,
                     struct velo_record_meta *m)
{
    for (int i = 0; i < 200; i++) {
        int rc = read_one(in, v, m);
        if (rc != VELO_AGAIN) {
            return rc;
        }
        poll(NULL, 0, 5);
    }
    return VELO_AGAIN;
}

static int view_is(const struct velo_str *v, const char *s)
{
    return v->len == strlen(s) && memcmp(v->ptr, s, v->len) == 0;
}

static void test_file_watch(void)
{
    char *dir = tu_tmpdir();
    char path[600], moved[700];
    snprintf(path, sizeof(path), "%s/tail.log", dir);
    snprintf(moved, sizeof(moved), "%s.1", path);
    tu_write_file(path, "a\n", 2);
    char err[512];
    struct inst in;
    const struct velo_property props[] = {
        {"path", path}, {"watch", "true"}, {"poll.interval", "10ms"}};
    CU_ASSERT_EQUAL_FATAL(fill(&in, "file_source", props, 3, err, sizeof(err)),
                          VELO_OK);
    struct logcap lc;
    logcap_start(&lc, dir);
    CU_ASSERT_EQUAL_FATAL(
        in.ref->vt->source_create(&in.ins, in.conf, &in.ctx, &in.info),
        VELO_OK);
    CU_ASSERT_EQUAL(in.info.bounded, 0);
    struct velo_str v[4];
    struct velo_record_meta m[4];
    CU_ASSERT_EQUAL(wait_data(&in, v, m), VELO_OK);
    CU_ASSERT(view_is(&v[0], "a\n"));
    CU_ASSERT_EQUAL(read_one(&in, v, m), VELO_AGAIN);

    /* Appends are seen. */
    append_file(path, "b\nc\n");
    CU_ASSERT_EQUAL(wait_data(&in, v, m), VELO_OK);
    CU_ASSERT(view_is(&v[0], "b\nc\n"));
    CU_ASSERT_EQUAL(m[0].offset, 2);

    /* Truncation: read again from the start. */
    CU_ASSERT_EQUAL(truncate(path, 0), 0);
    append_file(path, "X\n");
    CU_ASSERT_EQUAL(wait_data(&in, v, m), VELO_OK);
    CU_ASSERT(view_is(&v[0], "X\n"));
    CU_ASSERT_EQUAL(m[0].offset, 0);

    /* Rotation: the old file gets a last line, then a new file takes the
     * name; both are read, in order. */
    append_file(path, "last\n");
    CU_ASSERT_EQUAL(rename(path, moved), 0);
    tu_write_file(path, "new\n", 4);
    CU_ASSERT_EQUAL(wait_data(&in, v, m), VELO_OK);
    CU_ASSERT(view_is(&v[0], "last\n"));
    CU_ASSERT_EQUAL(wait_data(&in, v, m), VELO_OK);
    CU_ASSERT(view_is(&v[0], "new\n"));
    CU_ASSERT_EQUAL(m[0].offset, 0);
    inst_free(&in, 1);
    char *log = logcap_stop(&lc);
    CU_ASSERT_PTR_NOT_NULL(strstr(log, "was truncated"));
    CU_ASSERT_PTR_NOT_NULL(strstr(log, "was replaced (rotated)"));
    free(log);
    tu_rmrf(dir);
    free(dir);
}

static void on_wake(void *arg)
{
    (*(int *)arg)++;
}

/* With an event base, "nothing yet" arms a timer that calls wake. */
static void test_file_watch_wakes(void)
{
    char *dir = tu_tmpdir();
    char path[600];
    snprintf(path, sizeof(path), "%s/w.log", dir);
    tu_write_file(path, "", 0);
    struct event_base *base = event_base_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(base);
    char err[512];
    struct inst in;
    const struct velo_property props[] = {
        {"path", path}, {"watch", "true"}, {"poll.interval", "20ms"}};
    CU_ASSERT_EQUAL_FATAL(fill(&in, "file_source", props, 3, err, sizeof(err)),
                          VELO_OK);
    int woken = 0;
    in.ctx.base = base;
    in.ctx.wake = on_wake;
    in.ctx.wake_arg = &woken;
    CU_ASSERT_EQUAL_FATAL(
        in.ref->vt->source_create(&in.ins, in.conf, &in.ctx, &in.info),
        VELO_OK);
    struct velo_str v[4];
    struct velo_record_meta m[4];
    CU_ASSERT_EQUAL(read_one(&in, v, m), VELO_AGAIN);
    append_file(path, "late\n");
    event_base_loop(base, EVLOOP_ONCE);
    CU_ASSERT_EQUAL(woken, 1);
    CU_ASSERT_EQUAL(read_one(&in, v, m), VELO_OK);
    CU_ASSERT(view_is(&v[0], "late\n"));
    inst_free(&in, 1);
    event_base_free(base);
    tu_rmrf(dir);
    free(dir);
}

/* ---- file sink ---------------------------------------------------------- */

static int sink_put(struct inst *in, const char *s)
{
    struct velo_str rec = {s, strlen(s)};
    return in->ref->vt->sink_write(&in->ins, &rec, NULL, 1);
}

static void expect_file(const char *path, const char *want)
{
    char *got = tu_read_file(path, NULL);
    if (got == NULL || strcmp(got, want) != 0) {
        fprintf(stderr, "%s: got \"%s\", want \"%s\"\n", path,
                got != NULL ? got : "(missing)", want);
    }
    CU_ASSERT_PTR_NOT_NULL(got);
    if (got != NULL) {
        CU_ASSERT_STRING_EQUAL(got, want);
    }
    free(got);
}

static void test_file_sink(void)
{
    char *dir = tu_tmpdir();
    char path[600], p1[700], p2[700], p3[700];
    snprintf(path, sizeof(path), "%s/out.jsonl", dir);
    snprintf(p1, sizeof(p1), "%s.1", path);
    snprintf(p2, sizeof(p2), "%s.2", path);
    snprintf(p3, sizeof(p3), "%s.3", path);
    char err[512];
    struct inst in;
    /* Rotation by size, two rotated files kept. */
    const struct velo_property props[] = {
        {"path", path}, {"rotate.bytes", "10"}, {"rotate.keep", "2"}};
    CU_ASSERT_EQUAL_FATAL(fill(&in, "file_sink", props, 3, err, sizeof(err)),
                          VELO_OK);
    CU_ASSERT_EQUAL_FATAL(in.ref->vt->sink_create(&in.ins, in.conf, &in.ctx),
                          VELO_OK);
    CU_ASSERT_EQUAL(sink_put(&in, "one\n"), VELO_OK);
    CU_ASSERT_EQUAL(sink_put(&in, "two\n"), VELO_OK);
    CU_ASSERT_EQUAL(sink_put(&in, "three\n"), VELO_OK); /* 14 > 10 */
    CU_ASSERT_EQUAL(sink_put(&in, "four\n"), VELO_OK);
    CU_ASSERT_EQUAL(sink_put(&in, "a record longer than ten\n"), VELO_OK);
    CU_ASSERT_EQUAL(sink_put(&in, "six\n"), VELO_OK);
    CU_ASSERT_EQUAL(in.ref->vt->sink_flush(&in.ins), VELO_OK);
    /* Durable after flush: readable by anyone now. */
    expect_file(path, "six\n");
    expect_file(p1, "a record longer than ten\n");
    expect_file(p2, "four\n");
    CU_ASSERT_EQUAL(access(p3, F_OK), -1); /* older ones fell off */
    inst_free(&in, 0);

    /* append keeps what is there; the default replaces it. */
    const struct velo_property ap[] = {
        {"path", path}, {"append", "true"}, {"fsync", "false"}};
    CU_ASSERT_EQUAL_FATAL(fill(&in, "file_sink", ap, 3, err, sizeof(err)),
                          VELO_OK);
    CU_ASSERT_EQUAL_FATAL(in.ref->vt->sink_create(&in.ins, in.conf, &in.ctx),
                          VELO_OK);
    CU_ASSERT_EQUAL(sink_put(&in, "seven\n"), VELO_OK);
    CU_ASSERT_EQUAL(in.ref->vt->sink_flush(&in.ins), VELO_OK);
    expect_file(path, "six\nseven\n");
    inst_free(&in, 0);
    expect_file(path, "six\nseven\n");

    const struct velo_property tr[] = {{"path", path}};
    CU_ASSERT_EQUAL_FATAL(fill(&in, "file_sink", tr, 1, err, sizeof(err)),
                          VELO_OK);
    char uri[700];
    snprintf(uri, sizeof(uri), "file://%s", path);
    in.ctx.uri = uri;
    CU_ASSERT_EQUAL_FATAL(in.ref->vt->sink_create(&in.ins, in.conf, &in.ctx),
                          VELO_OK);
    /* A large payload bypasses the buffer; destroy writes the rest. */
    size_t big = 600 * 1024;
    char *blob = malloc(big + 1);
    memset(blob, 'z', big);
    blob[big - 1] = '\n';
    blob[big] = '\0';
    CU_ASSERT_EQUAL(sink_put(&in, "head\n"), VELO_OK);
    CU_ASSERT_EQUAL(sink_put(&in, blob), VELO_OK);
    CU_ASSERT_EQUAL(sink_put(&in, "tail\n"), VELO_OK);
    inst_free(&in, 0);
    size_t len = 0;
    char *got = tu_read_file(path, &len);
    CU_ASSERT_EQUAL(len, 5 + big + 5);
    CU_ASSERT(got != NULL && strncmp(got, "head\nzzz", 8) == 0 &&
              strcmp(got + len - 5, "tail\n") == 0);
    free(got);
    free(blob);

    /* A directory that does not exist. */
    char nodir[700];
    snprintf(nodir, sizeof(nodir), "%s/no/such/dir/out.csv", dir);
    const struct velo_property nd[] = {{"path", nodir}};
    struct logcap lc;
    logcap_start(&lc, dir);
    CU_ASSERT_EQUAL_FATAL(fill(&in, "file_sink", nd, 1, err, sizeof(err)),
                          VELO_OK);
    CU_ASSERT_EQUAL(in.ref->vt->sink_create(&in.ins, in.conf, &in.ctx),
                    VELO_ERR);
    inst_free(&in, 0);
    char *log = logcap_stop(&lc);
    CU_ASSERT_PTR_NOT_NULL(strstr(log, "does its directory exist?"));
    free(log);
    tu_rmrf(dir);
    free(dir);
}

/* ---- stdin and stdout --------------------------------------------------- */

/* In a child: fd 0 is the read end of a pipe; read it through the stdin
 * connector until it ends and write what came to `out`. Exit 0 when the
 * source behaved (unbounded, AGAIN before data, DECLINED at the end). */
static int child_read_stdin(const char *out, int use_base)
{
    struct velo_connectors *c = velo_connectors_create(NULL);
    int src;
    const struct velo_connector_ref *r =
        velo_connectors_by_type(c, "stdin_source", &src);
    void *conf = NULL;
    const char *bad;
    char err[256];
    if (r == NULL || velo_connector_config_fill(r, NULL, 0, NULL, &conf, &bad,
                                                err, sizeof(err)) != VELO_OK) {
        return 10;
    }
    struct event_base *base = use_base ? event_base_new() : NULL;
    int woken = 0;
    struct velo_instance ins = {velo_host_api(), "stdin:t", NULL};
    struct velo_connector_ctx ctx = {"job", "t",  "stdin", NULL,
                                     0,     base, on_wake, &woken};
    struct velo_source_info info = {-1, -1, -1};
    if (r->vt->source_create(&ins, conf, &ctx, &info) != VELO_OK) {
        return 11;
    }
    if (info.bounded != 0 || info.byte_stream != 1) {
        return 12;
    }
    int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int agains = 0, rc;
    for (;;) {
        struct velo_str v[2];
        struct velo_source_batch b = {0, 2, v, NULL, NULL};
        rc = r->vt->source_read(&ins, &b);
        if (rc == VELO_AGAIN) {
            agains++;
            if (base != NULL) {
                event_base_loop(base, EVLOOP_ONCE);
            } else {
                poll(NULL, 0, 5);
            }
            continue;
        }
        if (rc != VELO_OK) {
            break;
        }
        if (b.count == 1 && write(fd, v[0].ptr, v[0].len) < 0) {
            return 13;
        }
    }
    close(fd);
    r->vt->source_destroy(&ins);
    velo_connector_config_free(r, conf);
    velo_connectors_destroy(c);
    if (base != NULL) {
        event_base_free(base);
    }
    if (rc != VELO_DECLINED) {
        return 14;
    }
    if (agains == 0 || (use_base && woken == 0)) {
        return 15; /* the writer paused, so a read had to wait */
    }
    return 0;
}

static void run_stdin_child(int use_base)
{
    char *dir = tu_tmpdir();
    char out[600];
    snprintf(out, sizeof(out), "%s/got.txt", dir);
    int p[2];
    CU_ASSERT_EQUAL_FATAL(pipe(p), 0);
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        close(p[1]);
        dup2(p[0], 0);
        close(p[0]);
        _exit(child_read_stdin(out, use_base));
    }
    close(p[0]);
    const char *parts[] = {"id,name\n1,a", "lice\n2,bob\n", "3,eve\n"};
    for (size_t i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(write(p[1], parts[i], strlen(parts[i])),
                        (ssize_t)strlen(parts[i]));
        poll(NULL, 0, 30);
    }
    close(p[1]);
    int status = 0;
    CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
    CU_ASSERT(WIFEXITED(status));
    if (WEXITSTATUS(status) != 0) {
        fprintf(stderr, "stdin child exited %d\n", WEXITSTATUS(status));
    }
    CU_ASSERT_EQUAL(WEXITSTATUS(status), 0);
    expect_file(out, "id,name\n1,alice\n2,bob\n3,eve\n");
    tu_rmrf(dir);
    free(dir);
}

static void test_stdin_pipe(void)
{
    run_stdin_child(0);
    run_stdin_child(1);
}

/* stdin redirected from a regular file is bounded and knows its size. */
static void test_stdin_file(void)
{
    char *dir = tu_tmpdir();
    char path[600];
    snprintf(path, sizeof(path), "%s/in.csv", dir);
    tu_write_file(path, "x\n1\n", 4);
    int fd = open(path, O_RDONLY);
    char fdtext[16];
    snprintf(fdtext, sizeof(fdtext), "%d", fd);
    const struct velo_property props[] = {{"fd", fdtext}};
    char err[256];
    struct inst in;
    CU_ASSERT_EQUAL_FATAL(fill(&in, "stdin_source", props, 1, err, sizeof(err)),
                          VELO_OK);
    CU_ASSERT_EQUAL_FATAL(
        in.ref->vt->source_create(&in.ins, in.conf, &in.ctx, &in.info),
        VELO_OK);
    CU_ASSERT_EQUAL(in.info.bounded, 1);
    CU_ASSERT_EQUAL(in.info.size_bytes, 4);
    struct velo_str v[4];
    struct velo_record_meta m[4];
    CU_ASSERT_EQUAL(read_one(&in, v, m), VELO_OK);
    CU_ASSERT(view_is(&v[0], "x\n1\n"));
    CU_ASSERT_EQUAL(read_one(&in, v, m), VELO_DECLINED);
    /* A regular file can go back to a position. */
    uint8_t pos[8] = {2, 0, 0, 0, 0, 0, 0, 0};
    CU_ASSERT_EQUAL(in.ref->vt->source_seek(&in.ins, pos, 8), VELO_OK);
    CU_ASSERT_EQUAL(read_one(&in, v, m), VELO_OK);
    CU_ASSERT(view_is(&v[0], "1\n"));
    inst_free(&in, 1);
    close(fd);

    /* A descriptor that is not open is refused at create. */
    const struct velo_property badfd[] = {{"fd", "987"}};
    struct logcap lc;
    logcap_start(&lc, dir);
    CU_ASSERT_EQUAL_FATAL(fill(&in, "stdin_source", badfd, 1, err, sizeof(err)),
                          VELO_OK);
    CU_ASSERT_EQUAL(
        in.ref->vt->source_create(&in.ins, in.conf, &in.ctx, &in.info),
        VELO_ERR);
    inst_free(&in, 1);
    char *log = logcap_stop(&lc);
    CU_ASSERT_PTR_NOT_NULL(strstr(log, "descriptor 987 is not open"));
    free(log);
    tu_rmrf(dir);
    free(dir);
}

static void test_stdout(void)
{
    char *dir = tu_tmpdir();
    char path[600];
    snprintf(path, sizeof(path), "%s/stdout.txt", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    char fdtext[16];
    snprintf(fdtext, sizeof(fdtext), "%d", fd);
    const struct velo_property props[] = {{"fd", fdtext}, {"format", "json"}};
    char err[256];
    struct inst in;
    CU_ASSERT_EQUAL_FATAL(fill(&in, "stdout_sink", props, 2, err, sizeof(err)),
                          VELO_OK);
    CU_ASSERT_EQUAL_FATAL(in.ref->vt->sink_create(&in.ins, in.conf, &in.ctx),
                          VELO_OK);
    struct velo_str recs[2] = {{"{\"a\":1}\n", 8}, {"{\"a\":2}\n", 8}};
    CU_ASSERT_EQUAL(in.ref->vt->sink_write(&in.ins, recs, NULL, 2), VELO_OK);
    /* Written as it comes, before any flush. */
    expect_file(path, "{\"a\":1}\n{\"a\":2}\n");
    CU_ASSERT_EQUAL(in.ref->vt->sink_flush(&in.ins), VELO_OK);
    inst_free(&in, 0);
    close(fd);

    /* A closed pipe is an error, not a crash. */
    int p[2];
    CU_ASSERT_EQUAL_FATAL(pipe(p), 0);
    close(p[0]);
    snprintf(fdtext, sizeof(fdtext), "%d", p[1]);
    const struct velo_property pp[] = {{"fd", fdtext}};
    struct sigaction sa, old;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, &old);
    struct logcap lc;
    logcap_start(&lc, dir);
    CU_ASSERT_EQUAL_FATAL(fill(&in, "stdout_sink", pp, 1, err, sizeof(err)),
                          VELO_OK);
    CU_ASSERT_EQUAL_FATAL(in.ref->vt->sink_create(&in.ins, in.conf, &in.ctx),
                          VELO_OK);
    CU_ASSERT_EQUAL(in.ref->vt->sink_write(&in.ins, recs, NULL, 1), VELO_ERR);
    CU_ASSERT_EQUAL(in.ref->vt->sink_flush(&in.ins), VELO_ERR);
    inst_free(&in, 0);
    char *log = logcap_stop(&lc);
    CU_ASSERT_PTR_NOT_NULL(strstr(log, "pipe went away"));
    free(log);
    sigaction(SIGPIPE, &old, NULL);
    close(p[1]);
    tu_rmrf(dir);
    free(dir);
}

/* ---- URIs --------------------------------------------------------------- */

static void test_uri(void)
{
    char scheme[16];
    const char *rest = NULL;
    CU_ASSERT_EQUAL(
        velo_uri_split("file:///data/t.csv", scheme, sizeof(scheme), &rest),
        VELO_OK);
    CU_ASSERT_STRING_EQUAL(scheme, "file");
    CU_ASSERT_STRING_EQUAL(rest, "/data/t.csv");
    CU_ASSERT_EQUAL(
        velo_uri_split("file://data/t.csv", scheme, sizeof(scheme), &rest),
        VELO_OK);
    CU_ASSERT_STRING_EQUAL(rest, "data/t.csv");
    CU_ASSERT_EQUAL(velo_uri_split("Kafka://host:9092/topic", scheme,
                                   sizeof(scheme), &rest),
                    VELO_OK);
    CU_ASSERT_STRING_EQUAL(scheme, "kafka");
    CU_ASSERT_STRING_EQUAL(rest, "host:9092/topic");
    CU_ASSERT_EQUAL(velo_uri_split("stdin", scheme, sizeof(scheme), &rest),
                    VELO_OK);
    CU_ASSERT_STRING_EQUAL(scheme, "stdin");
    CU_ASSERT_STRING_EQUAL(rest, "");
    CU_ASSERT_EQUAL(velo_uri_split("STDOUT", scheme, sizeof(scheme), &rest),
                    VELO_OK);
    CU_ASSERT_STRING_EQUAL(scheme, "stdout");
    CU_ASSERT_EQUAL(velo_uri_split("trades", scheme, sizeof(scheme), &rest),
                    VELO_ERR);
    CU_ASSERT_EQUAL(velo_uri_split("://x", scheme, sizeof(scheme), &rest),
                    VELO_ERR);
    CU_ASSERT_EQUAL(velo_uri_split("1abc://x", scheme, sizeof(scheme), &rest),
                    VELO_ERR);
    CU_ASSERT_EQUAL(velo_uri_split("a b://x", scheme, sizeof(scheme), &rest),
                    VELO_ERR);
    CU_ASSERT_EQUAL(velo_uri_split("averyveryverylongscheme://x", scheme,
                                   sizeof(scheme), &rest),
                    VELO_ERR);

    char out[256];
    velo_uri_redact("postgres://app:s3cr3t@db:5432/orders", out, sizeof(out));
    CU_ASSERT_STRING_EQUAL(out, "postgres://app:***@db:5432/orders");
    velo_uri_redact("redis://:pw@cache/0", out, sizeof(out));
    CU_ASSERT_STRING_EQUAL(out, "redis://:***@cache/0");
    velo_uri_redact("kafka://user@broker/t", out, sizeof(out));
    CU_ASSERT_STRING_EQUAL(out, "kafka://user@broker/t");
    velo_uri_redact("file:///data/a@b.csv", out, sizeof(out));
    CU_ASSERT_STRING_EQUAL(out, "file:///data/a@b.csv");
    velo_uri_redact("https://h/p?user=u&password=x&token=y#f", out,
                    sizeof(out));
    CU_ASSERT_STRING_EQUAL(out, "https://h/p?user=u&password=***&token=***#f");
    velo_uri_redact("postgres://u:p@@h/x", out, sizeof(out));
    CU_ASSERT_PTR_NULL(strstr(out, ":p@"));
    velo_uri_redact("postgres://app:s3cr3t@db/orders", out, 12);
    CU_ASSERT_EQUAL(strlen(out), 11);
    CU_ASSERT_PTR_NULL(strstr(out, "s3cr3t"));
    velo_uri_redact("stdin", out, sizeof(out));
    CU_ASSERT_STRING_EQUAL(out, "stdin");
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS) {
        return 1;
    }
    CU_pSuite s = CU_add_suite("connectors", suite_init, suite_clean);
    CU_add_test(s, "registry", test_registry);
    CU_add_test(s, "config fill", test_config_fill);
    CU_add_test(s, "file source chunks", test_file_source_chunks);
    CU_add_test(s, "file watch", test_file_watch);
    CU_add_test(s, "file watch wakes", test_file_watch_wakes);
    CU_add_test(s, "file sink", test_file_sink);
    CU_add_test(s, "stdin through a pipe", test_stdin_pipe);
    CU_add_test(s, "stdin from a file", test_stdin_file);
    CU_add_test(s, "stdout", test_stdout);
    CU_add_test(s, "uri", test_uri);
    return tu_run_all();
}
