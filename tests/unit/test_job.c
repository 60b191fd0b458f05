/*
 * The job runner's hooks and recovery: `velo test`'s source rebinding and
 * output capture, checkpoints (resume, plan fingerprint, corrupt files)
 * and the job statistics, through real jobs over real files.
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <unistd.h>

#include <velo/velo.h>

#include "connectors/registry.h"
#include "exec/job.h"
#include "plugin/host.h"
#include "testutil.h"

static char *dir;

static int suite_init(void)
{
    dir = tu_tmpdir();
    return dir == NULL;
}

static int suite_clean(void)
{
    tu_rmrf(dir);
    free(dir);
    return 0;
}

static char *path_in(const char *name)
{
    char *p = malloc(1024);
    snprintf(p, 1024, "%s/%s", dir, name);
    return p;
}

/* Prepare and run sql with opts; @return the run's result, or -2 when
 * prepare failed (diags kept in *diags for the caller). */
static int run_sql(const char *sql, struct velo_job_opts *opts,
                   struct velo_sql_diags *diags, struct velo_job_stats *st)
{
    opts->progress_fd = -1;
    if (opts->filename == NULL) {
        opts->filename = "t.sql";
    }
    struct velo_job *j = velo_job_prepare(sql, strlen(sql), opts, diags);
    if (j == NULL) {
        return -2;
    }
    int rc = velo_job_run(j, NULL);
    if (st != NULL) {
        velo_job_get_stats(j, st);
    }
    velo_job_destroy(j);
    return rc;
}

static int has_diag(const struct velo_sql_diags *d, const char *code,
                    const char *part)
{
    for (size_t i = 0; i < d->n; i++) {
        if (strcmp(d->d[i].code, code) == 0 &&
            strstr(d->d[i].message, part) != NULL) {
            return 1;
        }
    }
    return 0;
}

/* ---- Rebinding and capture ---------------------------------------------- */

/* A declared CSV source whose own file does not exist is read from a JSON
 * Lines file instead; its sink (a CSV file) is captured as JSON Lines. */
static void test_rebind_declared_and_capture(void)
{
    char *in = path_in("orders-test.jsonl");
    char *cap = path_in("cap1");
    char *real_sink = path_in("real-sink.csv");
    const char rows[] = "{\"symbol\":\"A\",\"qty\":2}\n"
                        "{\"symbol\":\"B\",\"qty\":5}\n"
                        "{\"symbol\":\"A\",\"qty\":7}\n";
    CU_ASSERT_FATAL(tu_write_file(in, rows, strlen(rows)) == 0);
    CU_ASSERT_FATAL(mkdir(cap, 0755) == 0);
    char sql[2048], uri[1100];
    snprintf(sql, sizeof(sql),
             "CREATE STREAM big AS SELECT symbol, qty * 10 AS q FROM orders "
             "WHERE qty > 3\n"
             "WITH ('orders.type'='file_source', "
             "'orders.path'='/nonexistent/orders.csv', "
             "'orders.format'='csv', "
             "'orders.schema'='symbol STRING, qty BIGINT', "
             "'big.type'='file_sink', 'big.path'='%s', "
             "'big.format'='csv');\n"
             "SELECT symbol, COUNT(*) AS n FROM orders GROUP BY symbol "
             "EMIT CHANGES;\n",
             real_sink);
    snprintf(uri, sizeof(uri), "file://%s", in);
    struct velo_job_rebind rb = {"orders", uri};
    struct velo_job_opts opts = {.rebind = &rb, .nrebind = 1,
                                 .capture_dir = cap};
    struct velo_sql_diags d = {0};
    CU_ASSERT_EQUAL(run_sql(sql, &opts, &d, NULL), 0);
    velo_sql_diags_free(&d);

    char *big = path_in("cap1/big.jsonl");
    char *got = tu_read_file(big, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(got);
    CU_ASSERT_STRING_EQUAL(got, "{\"symbol\":\"B\",\"q\":50}\n"
                                "{\"symbol\":\"A\",\"q\":70}\n");
    free(got);
    /* The bare SELECT is the file's first: a changelog with "_op". */
    char *sel = path_in("cap1/select-1.jsonl");
    got = tu_read_file(sel, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(got);
    CU_ASSERT_PTR_NOT_NULL(strstr(got, "\"_op\":\"insert\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(got, "\"symbol\":\"A\",\"n\":2"));
    CU_ASSERT_PTR_NOT_NULL(strstr(got, "\"symbol\":\"B\",\"n\":1"));
    free(got);
    /* The real sink was never opened. */
    struct stat st;
    CU_ASSERT_NOT_EQUAL(stat(real_sink, &st), 0);
    free(sel);
    free(big);
    free(in);
    free(cap);
    free(real_sink);
}

/* An undeclared source infers its schema from the rebound file (a CSV
 * here, where the real one is a JSON stream that does not exist). */
static void test_rebind_inferred_csv(void)
{
    char *in = path_in("ticks.csv");
    char *cap = path_in("cap2");
    const char rows[] = "sym,px\nX,1.5\nY,2.5\nX,4\n";
    CU_ASSERT_FATAL(tu_write_file(in, rows, strlen(rows)) == 0);
    CU_ASSERT_FATAL(mkdir(cap, 0755) == 0);
    char uri[1100];
    snprintf(uri, sizeof(uri), "file://%s", in);
    const char sql[] =
        "SELECT sym, px * 2 AS dbl FROM ticks WHERE sym = 'X'\n"
        "WITH ('ticks.type'='file_source', "
        "'ticks.path'='/nonexistent/ticks.jsonl');\n";
    struct velo_job_rebind rb = {"ticks", uri};
    struct velo_job_opts opts = {.rebind = &rb, .nrebind = 1,
                                 .capture_dir = cap};
    struct velo_sql_diags d = {0};
    CU_ASSERT_EQUAL(run_sql(sql, &opts, &d, NULL), 0);
    velo_sql_diags_free(&d);
    char *out = path_in("cap2/select-1.jsonl");
    char *got = tu_read_file(out, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(got);
    CU_ASSERT_STRING_EQUAL(got, "{\"sym\":\"X\",\"dbl\":3}\n"
                                "{\"sym\":\"X\",\"dbl\":8}\n");
    free(got);
    free(out);
    free(in);
    free(cap);
}

static void test_rebind_unknown_source(void)
{
    char *in = path_in("t-known.csv");
    const char rows[] = "a\n1\n";
    CU_ASSERT_FATAL(tu_write_file(in, rows, strlen(rows)) == 0);
    char sql[1200], uri[1100];
    snprintf(sql, sizeof(sql), "SELECT a FROM 'file://%s';\n", in);
    snprintf(uri, sizeof(uri), "file://%s", in);
    struct velo_job_rebind rb = {"orderz", uri};
    struct velo_job_opts opts = {.rebind = &rb, .nrebind = 1};
    struct velo_sql_diags d = {0};
    CU_ASSERT_EQUAL(run_sql(sql, &opts, &d, NULL), -2);
    CU_ASSERT(has_diag(&d, "V8002", "'orderz'"));
    velo_sql_diags_free(&d);
    free(in);
}

/* ---- Checkpoints --------------------------------------------------------- */

/* Stop the job after a few turns of its loop: a clean stop mid-input,
 * which with a state dir saves a checkpoint and keeps windows and buffers
 * open. */
static volatile sig_atomic_t stop_flag;
static int turns_left;

static void stop_after_turns(void *arg, int idle)
{
    (void)arg;
    (void)idle;
    if (--turns_left <= 0) {
        stop_flag = 1;
    }
}

static char ck_sql[4096];
static char *ck_state, *ck_out, *ck_top;

/* 40000 rows, read 4 KiB at a time: many turns of the loop. A Sort
 * buffers every row until the end, a LIMIT counts what it has passed. */
static void make_ck_input(void)
{
    char *in = path_in("ck-in.csv");
    FILE *f = fopen(in, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fprintf(f, "k,v,s\n");
    for (int i = 0; i < 40000; i++) {
        fprintf(f, "%d,%d,name-%d\n", i, (i * 7919) % 10007, i % 97);
    }
    fclose(f);
    ck_state = path_in("ck-state");
    ck_out = path_in("ck-sorted.jsonl");
    ck_top = path_in("ck-top.jsonl");
    snprintf(ck_sql, sizeof(ck_sql),
             "CREATE STREAM sorted AS SELECT k, v, s FROM src "
             "ORDER BY v DESC, k\n"
             "WITH ('src.type'='file_source', 'src.path'='%s', "
             "'src.format'='csv', 'src.read.chunk'='4KiB', "
             "'sorted.type'='file_sink', 'sorted.path'='%s', "
             "'sorted.format'='json');\n"
             "CREATE STREAM top AS SELECT k, s FROM src WHERE v > 5000 "
             "LIMIT 3000\n"
             "WITH ('top.type'='file_sink', 'top.path'='%s', "
             "'top.format'='json');\n",
             in, ck_out, ck_top);
    free(in);
}

static int run_ck(int turns, int reset, struct velo_sql_diags *d)
{
    struct velo_job_opts opts = {.state_dir = ck_state,
                                 .reset_state = reset,
                                 .checkpoint_interval_ms = 1,
                                 .on_turn = turns > 0 ? stop_after_turns
                                                      : NULL};
    stop_flag = 0;
    turns_left = turns;
    opts.progress_fd = -1;
    opts.filename = "ck.sql";
    struct velo_job *j =
        velo_job_prepare(ck_sql, strlen(ck_sql), &opts, d);
    if (j == NULL) {
        return -2;
    }
    int rc = velo_job_run(j, &stop_flag);
    velo_job_destroy(j);
    return rc;
}

/* Stopped twice mid-input and resumed: the same outputs as one run. */
static void test_checkpoint_resume(void)
{
    make_ck_input();
    struct velo_sql_diags d = {0};
    CU_ASSERT_EQUAL_FATAL(run_ck(0, 1, &d), 0);
    velo_sql_diags_free(&d);
    char *want_sorted = tu_read_file(ck_out, NULL);
    char *want_top = tu_read_file(ck_top, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(want_sorted);
    CU_ASSERT_PTR_NOT_NULL_FATAL(want_top);
    /* Independently: the first sorted row is the largest v (10006 at the
     * k with k*7919 % 10007 == 10006), and the LIMIT passed 3000 rows. */
    CU_ASSERT_EQUAL(strncmp(want_sorted, "{\"k\":", 5), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(want_sorted, "\"v\":10006"));
    size_t lines = 0;
    for (const char *c = want_top; *c; c++) {
        lines += *c == '\n';
    }
    CU_ASSERT_EQUAL(lines, 3000);

    CU_ASSERT_EQUAL(run_ck(5, 1, &d), 0); /* stopped after 5 turns */
    velo_sql_diags_free(&d);
    char *ck = path_in("ck-state/checkpoint");
    struct stat st;
    CU_ASSERT_EQUAL_FATAL(stat(ck, &st), 0);
    /* The Sort's buffered rows are in it. */
    CU_ASSERT(st.st_size > 1000);
    CU_ASSERT_EQUAL(run_ck(7, 0, &d), 0); /* resumed, stopped again */
    velo_sql_diags_free(&d);
    CU_ASSERT_EQUAL(run_ck(0, 0, &d), 0); /* resumed to the end */
    velo_sql_diags_free(&d);
    char *got_sorted = tu_read_file(ck_out, NULL);
    char *got_top = tu_read_file(ck_top, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(got_sorted);
    CU_ASSERT_PTR_NOT_NULL_FATAL(got_top);
    CU_ASSERT_STRING_EQUAL(got_sorted, want_sorted);
    CU_ASSERT_STRING_EQUAL(got_top, want_top);
    free(got_sorted);
    free(got_top);
    free(want_sorted);
    free(want_top);
    free(ck);
}

static uint32_t test_crc32(const uint8_t *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) {
            c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        }
    }
    return c ^ 0xFFFFFFFFu;
}

/* A checkpoint taken mid-input, damaged in many ways -- with its
 * checksum made right again, so the parser and the operators' restore
 * see the damage -- is refused with a diagnostic, never a crash (the
 * sanitizer build runs this). */
static void test_checkpoint_fuzz(void)
{
    struct velo_sql_diags d = {0};
    CU_ASSERT_EQUAL_FATAL(run_ck(6, 1, &d), 0);
    velo_sql_diags_free(&d);
    char *ck = path_in("ck-state/checkpoint");
    size_t len = 0;
    uint8_t *good = (uint8_t *)tu_read_file(ck, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(good);
    CU_ASSERT_FATAL(len > 64);
    uint8_t *bad = malloc(len + 64);
    CU_ASSERT_PTR_NOT_NULL_FATAL(bad);
    srand(12345);
    int refused = 0, accepted = 0;
    for (int it = 0; it < 160; it++) {
        size_t n = len;
        memcpy(bad, good, len);
        int kind = it % 4;
        if (kind == 0) { /* flip a few bytes past the header */
            for (int k = 0; k < 1 + it % 3; k++) {
                bad[20 + (size_t)rand() % (len - 24)] ^=
                    (uint8_t)(1 + rand() % 255);
            }
        } else if (kind == 1) { /* cut short */
            n = 24 + (size_t)rand() % (len - 24);
        } else if (kind == 2) { /* a huge length or count */
            size_t at = 20 + (size_t)rand() % (len - 28);
            memset(bad + at, 0xff, 4);
        } else { /* a run of zeros */
            size_t at = 20 + (size_t)rand() % (len - 28);
            size_t z = 1 + (size_t)rand() % 16;
            memset(bad + at, 0, at + z < len - 4 ? z : len - 4 - at);
        }
        uint32_t crc = test_crc32(bad, n - 4);
        for (int b = 0; b < 4; b++) {
            bad[n - 4 + (size_t)b] = (uint8_t)(crc >> (8 * b));
        }
        CU_ASSERT_FATAL(tu_write_file(ck, (const char *)bad, n) == 0);
        struct velo_job_opts opts = {.state_dir = ck_state,
                                     .progress_fd = -1,
                                     .filename = "ck.sql"};
        struct velo_job *j =
            velo_job_prepare(ck_sql, strlen(ck_sql), &opts, &d);
        if (j == NULL) {
            refused++;
            CU_ASSERT(has_diag(&d, "V8003", ""));
        } else {
            accepted++; /* damage in a value, not in the framing */
            velo_job_destroy(j);
        }
        velo_sql_diags_free(&d);
    }
    CU_ASSERT(refused > 100);
    printf("(%d refused, %d read as other values) ", refused, accepted);
    /* A wrong checksum alone is enough to refuse. */
    memcpy(bad, good, len);
    bad[len / 2] ^= 1;
    CU_ASSERT_FATAL(tu_write_file(ck, (const char *)bad, len) == 0);
    struct velo_job_opts opts = {.state_dir = ck_state, .progress_fd = -1};
    struct velo_job *j = velo_job_prepare(ck_sql, strlen(ck_sql), &opts, &d);
    CU_ASSERT_PTR_NULL(j);
    CU_ASSERT(has_diag(&d, "V8003", "checksum"));
    velo_job_destroy(j);
    velo_sql_diags_free(&d);
    free(bad);
    free(good);
    free(ck);
}

/* A different query over the same state dir: V8001 with both
 * fingerprints. */
static void test_checkpoint_fingerprint(void)
{
    struct velo_sql_diags d = {0};
    CU_ASSERT_EQUAL_FATAL(run_ck(0, 1, &d), 0);
    velo_sql_diags_free(&d);
    char other[4200];
    snprintf(other, sizeof(other), "%s", ck_sql);
    char *lim = strstr(other, "LIMIT 3000");
    CU_ASSERT_PTR_NOT_NULL_FATAL(lim);
    memcpy(lim, "LIMIT 3001", 10);
    struct velo_job_opts opts = {.state_dir = ck_state, .progress_fd = -1};
    struct velo_job *j = velo_job_prepare(other, strlen(other), &opts, &d);
    CU_ASSERT_PTR_NULL(j);
    CU_ASSERT(has_diag(&d, "V8001", "written by a different query"));
    CU_ASSERT(has_diag(&d, "V8001", "--reset-state"));
    velo_sql_diags_free(&d);
}

/* ---- The file sink's checkpoint position ------------------------------- */

struct fsink {
    struct velo_connectors *reg;
    const struct velo_connector_ref *ref;
    void *conf;
    struct velo_instance ins;
};

static void fsink_open(struct fsink *k, const char *path)
{
    memset(k, 0, sizeof(*k));
    k->reg = velo_connectors_create(NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(k->reg);
    k->ref = velo_connectors_by_scheme(k->reg, "file");
    CU_ASSERT_PTR_NOT_NULL_FATAL(k->ref);
    const struct velo_property props[] = {{"path", path},
                                          {"rotate.bytes", "20"},
                                          {"rotate.keep", "0"}};
    const char *bad = NULL;
    char err[256];
    CU_ASSERT_EQUAL_FATAL(velo_connector_config_fill(k->ref, props, 3, NULL,
                                                     &k->conf, &bad, err,
                                                     sizeof(err)),
                          VELO_OK);
    struct velo_connector_ctx ctx = {.job = "t", .name = "out",
                                     .props = props, .nprops = 3};
    k->ins.host = velo_host_api();
    k->ins.name = "file:out";
    CU_ASSERT_EQUAL_FATAL(k->ref->vt->sink_create(&k->ins, k->conf, &ctx),
                          VELO_OK);
    CU_ASSERT_FATAL(VELO_VTABLE_HAS(k->ref->vt, sink_position));
    CU_ASSERT_FATAL(VELO_VTABLE_HAS(k->ref->vt, sink_restore));
}

static void fsink_close(struct fsink *k)
{
    k->ref->vt->sink_destroy(&k->ins);
    velo_connector_config_free(k->ref, k->conf);
    velo_connectors_destroy(k->reg);
}

static void fsink_put(struct fsink *k, const char *line, int times)
{
    struct velo_str rec = {line, strlen(line)};
    for (int i = 0; i < times; i++) {
        CU_ASSERT_EQUAL(k->ref->vt->sink_write(&k->ins, &rec, NULL, 1),
                        VELO_OK);
    }
}

static void expect_content(const char *path, const char *want)
{
    char *got = tu_read_file(path, NULL);
    CU_ASSERT_PTR_NOT_NULL(got);
    if (got != NULL) {
        CU_ASSERT_STRING_EQUAL(got, want);
    }
    free(got);
}

/* Output written after a checkpoint -- across two rotations -- is undone
 * by a restore: the recorded file is back under its name at its recorded
 * length, and the files rotated since are gone. */
static void test_file_sink_restore(void)
{
    char *path = path_in("rot.jsonl");
    char p1[1100], p2[1100];
    snprintf(p1, sizeof(p1), "%s.1", path);
    snprintf(p2, sizeof(p2), "%s.2", path);
    struct fsink k;
    fsink_open(&k, path);
    fsink_put(&k, "aaaa\n", 2);
    CU_ASSERT_EQUAL(k.ref->vt->sink_flush(&k.ins), VELO_OK);
    uint8_t pos[64];
    int n = k.ref->vt->sink_position(&k.ins, pos, sizeof(pos));
    CU_ASSERT_FATAL(n > 0);
    CU_ASSERT_EQUAL(k.ref->vt->sink_position(&k.ins, pos, 4), VELO_ERR);
    /* 20 bytes per file: two rotations follow. */
    fsink_put(&k, "bbbb\n", 3);
    fsink_put(&k, "cccc\n", 4);
    CU_ASSERT_EQUAL(k.ref->vt->sink_flush(&k.ins), VELO_OK);
    fsink_close(&k);
    expect_content(p2, "aaaa\naaaa\nbbbb\nbbbb\n");
    expect_content(p1, "bbbb\ncccc\ncccc\ncccc\n");
    expect_content(path, "cccc\n");

    /* The restart: creating the sink changes nothing yet... */
    fsink_open(&k, path);
    expect_content(path, "cccc\n");
    /* ...the restore goes back to the checkpoint. */
    CU_ASSERT_EQUAL(k.ref->vt->sink_restore(&k.ins, pos, (size_t)n),
                    VELO_OK);
    expect_content(path, "aaaa\naaaa\n");
    CU_ASSERT_EQUAL(access(p1, F_OK), -1);
    CU_ASSERT_EQUAL(access(p2, F_OK), -1);
    fsink_put(&k, "dddd\n", 1);
    CU_ASSERT_EQUAL(k.ref->vt->sink_flush(&k.ins), VELO_OK);
    expect_content(path, "aaaa\naaaa\ndddd\n");
    /* A position past the end of the file (it was cut by someone else)
     * or of a short length is refused. */
    uint8_t far[64];
    memcpy(far, pos, (size_t)n);
    far[0] = 0xff;
    far[1] = 0xff;
    CU_ASSERT_EQUAL(k.ref->vt->sink_restore(&k.ins, far, (size_t)n),
                    VELO_ERR);
    CU_ASSERT_EQUAL(k.ref->vt->sink_restore(&k.ins, pos, 3), VELO_ERR);
    fsink_close(&k);
    expect_content(path, "aaaa\naaaa\ndddd\n");

    /* A file replaced since the checkpoint: the recorded one is nowhere,
     * the restore is refused rather than guessing. */
    CU_ASSERT_EQUAL(unlink(path), 0);
    fsink_open(&k, path);
    CU_ASSERT_EQUAL(k.ref->vt->sink_restore(&k.ins, pos, (size_t)n),
                    VELO_ERR);
    fsink_close(&k);

    /* Without a restore, the first write replaces the old content; a
     * sink never written or flushed leaves it as it was. */
    CU_ASSERT_FATAL(tu_write_file(path, "old\n", 4) == 0);
    fsink_open(&k, path);
    fsink_close(&k);
    expect_content(path, "old\n");
    fsink_open(&k, path);
    fsink_put(&k, "new\n", 1);
    fsink_close(&k);
    expect_content(path, "new\n");
    free(path);
}

/* ---- Statistics ---------------------------------------------------------- */

static void test_stats(void)
{
    char *in = path_in("st.csv");
    const char rows[] = "a,b\n1,2\n3,x\n5,0\n7,1\n";
    CU_ASSERT_FATAL(tu_write_file(in, rows, strlen(rows)) == 0);
    char sql[1200];
    snprintf(sql, sizeof(sql),
             "SELECT a / CAST(b AS BIGINT) AS q FROM 'file://%s' "
             "ORDER BY q;\n",
             in);
    char *cap = path_in("cap-st");
    CU_ASSERT_FATAL(mkdir(cap, 0755) == 0);
    struct velo_job_opts opts = {.capture_dir = cap};
    struct velo_sql_diags d = {0};
    opts.progress_fd = -1;
    opts.filename = "st.sql";
    struct velo_job *j = velo_job_prepare(sql, strlen(sql), &opts, &d);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT_EQUAL(velo_job_nsources(j), 1);
    struct velo_job_source_stats ss;
    velo_job_source_stats(j, 0, &ss);
    CU_ASSERT_EQUAL(ss.lag, (int64_t)strlen(rows)); /* nothing read */
    CU_ASSERT_EQUAL(velo_job_run(j, NULL), 0);
    struct velo_job_stats st;
    velo_job_get_stats(j, &st);
    CU_ASSERT_EQUAL(st.records_in, 4);
    CU_ASSERT_EQUAL(st.failed_rows, 2); /* the cast and the division */
    CU_ASSERT_EQUAL(st.records_out, 2);
    CU_ASSERT(st.batches >= 1);
    CU_ASSERT_EQUAL(st.batch_latency_le[VELO_JOB_LATENCY_BUCKETS - 1] <=
                        st.batches,
                    1);
    CU_ASSERT(st.peak_rss_bytes > 1024 * 1024);
    for (size_t i = 1; i < VELO_JOB_LATENCY_BUCKETS; i++) {
        CU_ASSERT(velo_job_latency_bounds[i] > velo_job_latency_bounds[i - 1]);
        CU_ASSERT(st.batch_latency_le[i] >= st.batch_latency_le[i - 1]);
    }
    velo_job_source_stats(j, 0, &ss);
    char uri[1100];
    snprintf(uri, sizeof(uri), "file://%s", in);
    CU_ASSERT_STRING_EQUAL(ss.name, uri);
    CU_ASSERT_EQUAL(ss.records, 4);
    CU_ASSERT_EQUAL(ss.bytes, strlen(rows) - 4); /* the header is not */
    CU_ASSERT_EQUAL(ss.lag, 0);
    CU_ASSERT(ss.ended);
    CU_ASSERT(ss.bounded);
    velo_job_destroy(j);
    velo_sql_diags_free(&d);
    free(cap);
    free(in);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS) {
        return 1;
    }
    CU_pSuite s = CU_add_suite("job", suite_init, suite_clean);
    CU_add_test(s, "rebind a declared source, capture sinks",
                test_rebind_declared_and_capture);
    CU_add_test(s, "rebind an inferred source to CSV",
                test_rebind_inferred_csv);
    CU_add_test(s, "rebind an unknown source", test_rebind_unknown_source);
    CU_add_test(s, "checkpoint: stop, resume, same output",
                test_checkpoint_resume);
    CU_add_test(s, "checkpoint: damaged files are refused",
                test_checkpoint_fuzz);
    CU_add_test(s, "checkpoint: another query's is refused",
                test_checkpoint_fingerprint);
    CU_add_test(s, "file sink: restore undoes writes and rotations",
                test_file_sink_restore);
    CU_add_test(s, "statistics", test_stats);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures();
    CU_cleanup_registry();
    return failed != 0;
}
