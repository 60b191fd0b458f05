/*
 * velo test and velo generate: synthetic input from schema files, test
 * specs, assertions over a query's captured output, reports and the
 * rule-based failure analysis.
 *
 * The pieces are separate so each can be tested on its own:
 *   yaml      libyaml documents as a small tree (maps, sequences, scalars)
 *             with line numbers for messages;
 *   schema    <source>.schema.yaml (or a declared SQL schema, or a sample)
 *             -> fields with types and constraints;
 *   gen       a deterministic generator per schema (xoshiro256** streams
 *             seeded per field, never rand()), writing JSON Lines or CSV;
 *   spec      query.test.yaml -> per-output inputs and assertions;
 *   check     assertions evaluated against captured rows and job stats;
 *   report    text, JSON and JUnit XML.
 * The runner (velo_tk_run) ties them to a job in core/exec/job.h.
 */
#ifndef VELO_TESTKIT_H
#define VELO_TESTKIT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

struct velo_schema;
struct velo_plugins;

/* ---- YAML documents ------------------------------------------------------ */

enum velo_tk_ykind { VELO_TK_YSCALAR, VELO_TK_YSEQ, VELO_TK_YMAP };

struct velo_tk_yaml {
    int kind;                    /* enum velo_tk_ykind */
    char *str;                   /* scalar text (owned) */
    int quoted;                  /* scalar was quoted: never a number */
    size_t n;                    /* items of a sequence, pairs of a map */
    struct velo_tk_yaml **items; /* values (owned) */
    char **keys;                 /* map keys (owned) */
    int line, col;               /* 1-based */
};

/** Parse YAML text (one document). @return the root, or NULL with err
 *  naming the line and column. */
struct velo_tk_yaml *velo_tk_yaml_parse(const char *text, size_t len,
                                        const char *where, char *err,
                                        size_t errlen);
/** Read and parse a file. @return the root or NULL with err. */
struct velo_tk_yaml *velo_tk_yaml_load(const char *path, char *err,
                                       size_t errlen);
void velo_tk_yaml_free(struct velo_tk_yaml *y);
/** Value of key in a map, or NULL (also when y is not a map). */
const struct velo_tk_yaml *velo_tk_yaml_get(const struct velo_tk_yaml *y,
                                            const char *key);
/** Scalar as a number. @return 0 on success, -1 when not a number. */
int velo_tk_yaml_num(const struct velo_tk_yaml *y, double *out);

/* ---- Schemas ------------------------------------------------------------ */

enum velo_tk_type {
    VELO_TK_STRING,
    VELO_TK_INTEGER,
    VELO_TK_FLOAT,
    VELO_TK_DECIMAL,
    VELO_TK_BOOLEAN,
    VELO_TK_TIMESTAMP
};

enum velo_tk_dist {
    VELO_TK_UNIFORM,
    VELO_TK_NORMAL,
    VELO_TK_LOG_NORMAL,
    VELO_TK_ZIPF,
    VELO_TK_RANDOM_WALK
};

struct velo_tk_pattern; /* compiled regex subset */
struct velo_tk_derived; /* compiled arithmetic expression */

struct velo_tk_field {
    char *name;
    int type;             /* enum velo_tk_type */
    int precision, scale; /* decimal */
    int has_min, has_max;
    double min, max;     /* numbers; timestamps: microseconds */
    char **enums;        /* enum values (text) */
    double *cum_weights; /* cumulative, last is 1 */
    size_t nenum;
    struct velo_tk_pattern *pattern;
    int dist;                   /* enum velo_tk_dist */
    double mean, stddev;        /* normal; log_normal: of the log */
    double zipf_s;              /* zipf exponent (> 0) */
    double step;                /* random_walk step stddev */
    int sequence;               /* integers min, min+1, ... (unique keys) */
    int min_length, max_length; /* free strings */
    struct velo_tk_derived *derived;
    char *derived_text;
    char *ref_source, *ref_field; /* references */
    double match_rate;
    double null_rate;
    /* timestamps */
    int ts_relative;                  /* start/end relative to now */
    int64_t ts_start_rel, ts_end_rel; /* offsets (us) when relative */
    int event_time;                   /* simulate arrival order */
    double rate;                      /* events per second */
    int64_t jitter_us;
    double out_of_order;  /* fraction of records delayed */
    int64_t max_delay_us; /* how far back a delayed record goes */
    int line;             /* in the schema file, for messages */
};

struct velo_tk_schema {
    char *name;
    char *path;      /* file it came from, or NULL */
    int64_t records; /* schema.records, 0 when absent */
    struct velo_tk_field *fields;
    size_t n;
};

/** From a parsed schema document ("schema: {name}, fields: [...]").
 *  `where` names the file in messages. @return NULL with err. */
struct velo_tk_schema *velo_tk_schema_parse(const struct velo_tk_yaml *doc,
                                            const char *where, char *err,
                                            size_t errlen);
struct velo_tk_schema *velo_tk_schema_load(const char *path, char *err,
                                           size_t errlen);
/** From an engine schema (declared columns or inferred from a sample;
 *  hidden columns skipped). The sample (JSON Lines or CSV with header,
 *  may be NULL) narrows numbers to its min/max and strings to the values
 *  seen (as an enum, when there are few). */
struct velo_tk_schema *velo_tk_schema_from_engine(const char *name,
                                                  const struct velo_schema *s,
                                                  const char *sample,
                                                  size_t len, int csv);
void velo_tk_schema_free(struct velo_tk_schema *s);
/** Index of a field by name (case-insensitive), or -1. */
int velo_tk_schema_find(const struct velo_tk_schema *s, const char *name);

/* ---- Generation --------------------------------------------------------- */

/* Values of generated fields that other sources reference (keys), so a
 * join matches at the requested rate. */
struct velo_tk_pools;
struct velo_tk_pools *velo_tk_pools_create(void);
void velo_tk_pools_free(struct velo_tk_pools *p);
/** The values of source.field (text form), or NULL when not kept. */
const char *const *velo_tk_pools_get(const struct velo_tk_pools *p,
                                     const char *source, const char *field,
                                     size_t *n);
/** Keep a copy of values (text form) for source.field. */
int velo_tk_pools_put(struct velo_tk_pools *p, const char *source,
                      const char *field, const char *const *vals, size_t n);

enum velo_tk_format { VELO_TK_JSONL, VELO_TK_CSV };

struct velo_tk_gen;

/**
 * A generator for one schema. Deterministic: the same schema, seed and
 * now_us give the same rows. `now_us` anchors relative times. `pools`
 * (may be NULL) supplies referenced fields; a reference to a pool that is
 * missing is an error naming it. @return NULL with err.
 */
struct velo_tk_gen *velo_tk_gen_create(const struct velo_tk_schema *s,
                                       uint64_t seed, int64_t now_us,
                                       const struct velo_tk_pools *pools,
                                       char *err, size_t errlen);
/** Write `records` rows (CSV: a header first). When `keep` is not NULL
 *  every generated value of every field is added to it under
 *  schema-name.field. @return 0, or -1 on a write error (errno). */
int velo_tk_gen_write(struct velo_tk_gen *g, int64_t records, int format,
                      FILE *out, struct velo_tk_pools *keep);
/** One row as a JSON object line (no newline) into a buffer the generator
 *  owns (valid until the next call). For the gen:// source. */
const char *velo_tk_gen_row_json(struct velo_tk_gen *g, size_t *len);
void velo_tk_gen_destroy(struct velo_tk_gen *g);

/** gen:///path/x.schema.yaml?records=N&seed=S: the schema path and the
 *  options present (others untouched). @return 0, or -1 when malformed. */
int velo_tk_gen_uri(const char *uri, char *path, size_t pathlen,
                    int64_t *records, uint64_t *seed);

/** Parse "-1h", "30m", "now", ISO-8601 or epoch milliseconds into
 *  microseconds relative (*relative = 1) or absolute. @return 0 / -1. */
int velo_tk_parse_time(const char *s, int64_t *us, int *relative);

/* ---- Specs -------------------------------------------------------------- */

struct velo_tk_input {
    char *source;
    int64_t records;                          /* 0: the run's --records */
    char *schema_file;                        /* resolved path, or NULL */
    const struct velo_tk_yaml *schema_inline; /* borrowed from the doc */
};

struct velo_tk_assertion {
    char *type;
    const struct velo_tk_yaml *y; /* the whole mapping (borrowed) */
    int line;
};

struct velo_tk_query {
    char *name; /* the CREATE STREAM/TABLE name, or select-<n> */
    struct velo_tk_input *inputs;
    size_t ninputs;
    struct velo_tk_assertion *asserts;
    size_t nasserts;
};

struct velo_tk_spec {
    struct velo_tk_yaml *doc; /* owned: assertions point into it */
    char *dir;                /* for relative file names */
    struct velo_tk_query *queries;
    size_t nqueries;
};

/** Load query.test.yaml; every assertion type and operator is checked
 *  here so a typo fails before anything runs. @return NULL with err. */
struct velo_tk_spec *velo_tk_spec_load(const char *path, char *err,
                                       size_t errlen);
void velo_tk_spec_free(struct velo_tk_spec *s);

/* ---- Results ------------------------------------------------------------ */

struct velo_tk_result {
    char *output; /* the output it is about */
    char *name;   /* "record_count greater_than 0" */
    char *type;
    int passed;
    char *observed;   /* text */
    char *expected;   /* text */
    char *message;    /* why it failed (or NULL) */
    json_t *evidence; /* analysis: array of {rule, summary, details} */
};

struct velo_tk_report {
    char *query; /* the .sql file */
    uint64_t seed;
    int64_t records;
    struct velo_tk_result *r;
    size_t n, cap;
    double elapsed_s;
    uint64_t records_in, records_out;
    uint64_t peak_rss;
    json_t *inputs;    /* [{source, records, file}] */
    char *explanation; /* from the AI hook, or NULL */
};

/* The AI explanation provider arrives with the Studio: it receives the
 * report as JSON (failed assertions with their evidence) and returns
 * malloc'd text, or NULL. Without one (the default) only the rule-based
 * analysis is shown. */
struct velo_tk_explainer {
    char *(*explain)(void *arg, const char *report_json);
    void *arg;
};

struct velo_tk_result *velo_tk_report_add(struct velo_tk_report *rep,
                                          const char *output, const char *type);
void velo_tk_report_free(struct velo_tk_report *rep);
size_t velo_tk_report_failed(const struct velo_tk_report *rep);
/** Render: text (the terminal report), JSON or JUnit XML. malloc'd. */
char *velo_tk_report_text(const struct velo_tk_report *rep);
char *velo_tk_report_json(const struct velo_tk_report *rep);
char *velo_tk_report_junit(const struct velo_tk_report *rep);

/* ---- Checking ----------------------------------------------------------- */
/* Comparison operators (shared by every numeric assertion). */
enum velo_tk_op {
    VELO_TK_EQ,
    VELO_TK_NE,
    VELO_TK_GT,
    VELO_TK_LT,
    VELO_TK_BETWEEN,
    VELO_TK_IN
};
/** "equals" ... "in". @return the op or -1. */
int velo_tk_op_parse(const char *s);
const char *velo_tk_op_name(int op);
/** observed <op> expected; expected is a scalar (number) or, for between
 *  and in, a sequence. @return 1 true, 0 false, -1 malformed (err). */
int velo_tk_compare(double observed, int op, const struct velo_tk_yaml *exp,
                    char *err, size_t errlen);

/* What the checks see of one run. */
struct velo_tk_output {
    char *name;   /* target, or select-<n> */
    json_t *rows; /* array of objects as captured ("_op" on changelog) */
    char *path;   /* the captured file */
    char *sql;    /* text of the statement that made it */
    int emit;     /* plan statement's emit mode, -1 none */
};

struct velo_tk_source_data {
    char *name;
    char *path;   /* the generated file */
    json_t *rows; /* what was generated (for analysis) */
    struct velo_tk_schema *schema;
};

struct velo_tk_run_stats {
    double elapsed_s;
    uint64_t records_in, records_out, dead_lettered, late_rows;
    uint64_t bad_records, failed_rows;
    uint64_t peak_rss;
    int64_t watermark_us, max_event_time_us;
    char *metrics_text; /* Prometheus exposition after the run, or NULL */
};

struct velo_tk_ctx {
    struct velo_tk_output *outputs;
    size_t noutputs;
    struct velo_tk_source_data *sources;
    size_t nsources;
    struct velo_tk_run_stats stats;
    const char *spec_dir; /* for file_matches */
    /* Runs `SELECT <expr> ... FROM 'file:///...'` in-process for
     * aggregate_check and filter selectivity: returns the first column of
     * the last row as a number. @return 0, 1 when no row came out, or
     * -1 with err. */
    int (*scalar_sql)(void *arg, const char *sql, double *out, char *err,
                      size_t errlen);
    void *scalar_arg;
};

/** Evaluate one assertion against output `out` and record it. */
void velo_tk_check(struct velo_tk_ctx *c, struct velo_tk_report *rep,
                   const struct velo_tk_output *out,
                   const struct velo_tk_assertion *a);
/** Defaults without a spec: output not empty, no nulls in key columns
 *  (the GROUP BY keys, else the first column), time under max_s. */
void velo_tk_check_defaults(struct velo_tk_ctx *c, struct velo_tk_report *rep,
                            const struct velo_tk_output *out,
                            const char *const *keys, size_t nkeys,
                            double max_s);
/** Rule-based analysis of every failed result (join without matches,
 *  filter removing everything, window never closing, nulls' origin):
 *  fills result->evidence. */
void velo_tk_analyse(struct velo_tk_ctx *c, struct velo_tk_report *rep);
const struct velo_tk_output *velo_tk_ctx_output(const struct velo_tk_ctx *c,
                                                const char *name);
const struct velo_tk_source_data *
velo_tk_ctx_source(const struct velo_tk_ctx *c, const char *name);

/* ---- The runner --------------------------------------------------------- */

struct velo_tk_run_opts {
    const char *sql_path;
    int64_t records; /* per source unless the spec says */
    uint64_t seed;
    const char *spec_path; /* NULL: <query>.test.yaml when it exists */
    const char *keep_dir;  /* NULL: a temporary directory, removed */
    const struct velo_plugins *plugins;
    struct velo_tk_explainer explainer; /* may be all NULL */
    int64_t now_us; /* anchors relative times; 0: the clock */
};

/**
 * Generate inputs, run the query in-process with its sources rebound to
 * them and its outputs captured, check the assertions and analyse
 * failures. @return 0 with *rep filled, or 2 on a setup error (message in
 * err: what, where, how to fix).
 */
int velo_tk_run(const struct velo_tk_run_opts *o, struct velo_tk_report *rep,
                char *err, size_t errlen);

#endif /* VELO_TESTKIT_H */
