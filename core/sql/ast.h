/*
 * The SQL front end's private structures: tokens, the AST the parser
 * builds, the parsed program, and helpers shared by the lexer, parser,
 * binder, planner and explain (memory pool, string builder, diagnostics,
 * did-you-mean). Nothing outside core/sql includes this.
 *
 * Positions are byte offsets into the program text; line and column
 * (1-based, columns in characters) are computed from them when a
 * diagnostic is made, through the program's table of line starts.
 */
#ifndef VELO_SQL_AST_H
#define VELO_SQL_AST_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <velo/log.h>

#include "sql/sql.h"

/* Limits: bad input gets a clean error, never a stack overflow. */
#define SQL_MAX_TEXT (1024 * 1024)   /* bytes of SQL in one program */
#define SQL_MAX_DEPTH 200            /* expression nesting */
#define SQL_MAX_DIAGS 100            /* then "too many errors" */
#define SQL_MAX_IDENT 128            /* characters in a name */

/* ---- Memory pool: everything of one program or one plan ---------------- */

struct sql_pool;
struct sql_pool *sql_pool_create(void);
void sql_pool_destroy(struct sql_pool *p);
/** Zeroed, 8-byte aligned. @return NULL when out of memory. */
void *sql_pool_alloc(struct sql_pool *p, size_t n);
char *sql_pool_strndup(struct sql_pool *p, const char *s, size_t n);
char *sql_pool_strdup(struct sql_pool *p, const char *s);
/** Grow an array held in the pool (old storage stays until destroy).
 *  @return VELO_OK/VELO_ERR. */
int sql_pool_grow(struct sql_pool *p, void **arr, size_t *cap, size_t n,
                  size_t elem);

/* ---- Growable text ------------------------------------------------------ */

struct sql_buf {
    char *data; /* NUL-terminated while len > 0 or after any append */
    size_t len, cap;
    int oom;    /* an append failed: the text is incomplete */
};
void sql_buf_add(struct sql_buf *b, const char *s, size_t n);
void sql_buf_puts(struct sql_buf *b, const char *s);
void sql_buf_printf(struct sql_buf *b, const char *fmt, ...)
    VELO_PRINTF(2, 3);
void sql_buf_free(struct sql_buf *b);
/** Take the text (malloc'd, never NULL unless out of memory). */
char *sql_buf_take(struct sql_buf *b);

/* ---- Did you mean ------------------------------------------------------- */

/** Case-insensitive Levenshtein distance, capped (returns cap + 1 when
 *  larger, and for names longer than SQL_MAX_IDENT). */
size_t sql_edit_distance(const char *a, const char *b, size_t cap);
/** The closest of cands[0..n) to name within a distance that scales with
 *  the name's length, or NULL. */
const char *sql_suggest(const char *name, const char *const *cands, size_t n);

/* ---- Source text and diagnostics --------------------------------------- */

struct sql_text {
    const char *text;
    size_t len;
    uint32_t *line_starts; /* offsets; line_starts[0] = 0 */
    size_t nlines;
};

struct sql_pos {
    uint32_t off, len; /* bytes */
};

int sql_text_init(struct sql_text *t, const char *text, size_t len);
void sql_text_free(struct sql_text *t);
/** 1-based line and character column of a byte offset. */
void sql_text_linecol(const struct sql_text *t, uint32_t off, int *line,
                      int *col);

enum { SQL_ERROR = 0, SQL_WARNING = 1 };

/**
 * Append a diagnostic at `pos` (pos.len 0: one character). hint may be
 * NULL. Past SQL_MAX_DIAGS errors, one "too many errors" note is added and
 * the rest are counted only. Out of memory is recorded as an error count
 * so callers still fail.
 */
void sql_diag(struct velo_sql_diags *ds, const struct sql_text *t,
              struct sql_pos pos, int severity, const char *code,
              const char *hint, const char *fmt, ...) VELO_PRINTF(7, 8);
/** The same without a place (line 0). */
void sql_diag_noplace(struct velo_sql_diags *ds, int severity,
                      const char *code, const char *hint, const char *fmt,
                      ...) VELO_PRINTF(5, 6);
/** Sort ds->d[from..] by line and column, keeping equal places in
 *  order. */
void sql_diags_sort(struct velo_sql_diags *ds, size_t from);
/** Set the detail of the last diagnostic. */
void sql_diag_detail(struct velo_sql_diags *ds, const char *fmt, ...)
    VELO_PRINTF(2, 3);

/* ---- Tokens ------------------------------------------------------------- */

enum sql_tok {
    TK_EOF = 0,
    TK_ERROR,    /* a lexical error, already reported */
    TK_IDENT,    /* plain name or keyword (kw set) */
    TK_QIDENT,   /* "quoted" or `quoted` name */
    TK_STRING,   /* 'text' */
    TK_INTEGER,  /* 42 */
    TK_DECIMAL,  /* 1.25 */
    TK_FLOAT,    /* 1e3, 1.5e-2 */
    TK_DURATION, /* 5m, 250ms */
    TK_URI,      /* file:///data/t.csv (bare) */
    TK_LPAREN,
    TK_RPAREN,
    TK_COMMA,
    TK_SEMI,
    TK_DOT,
    TK_LBRACKET,
    TK_RBRACKET,
    TK_PLUS,
    TK_MINUS,
    TK_STAR,
    TK_SLASH,
    TK_PERCENT,
    TK_CONCAT, /* || */
    TK_EQ,
    TK_NE, /* <> or != */
    TK_LT,
    TK_LE,
    TK_GT,
    TK_GE,
    TK_DCOLON, /* :: */
    TK__COUNT
};

/* Keywords. Reserved ones cannot be plain names or implicit aliases;
 * the others are names unless their syntax follows (DATE '...'). */
enum sql_kw {
    KW_NONE = 0,
#define SQL_KEYWORD(id, text, reserved) KW_##id,
#include "sql/keywords.h"
#undef SQL_KEYWORD
    KW__COUNT
};

struct sql_token {
    uint8_t type; /* enum sql_tok */
    uint16_t kw;  /* enum sql_kw for TK_IDENT, else 0 */
    uint32_t off, len;
};

struct sql_annotation_raw {
    uint32_t off;
    char *key, *value;
};

struct sql_lexed {
    struct sql_token *toks; /* ends with TK_EOF */
    size_t ntoks;
    struct sql_annotation_raw *ann;
    size_t nann;
};

/** Tokenize; every lexical error goes to diags (and a TK_ERROR token).
 *  Strings of annotations are allocated in pool. @return VELO_OK or
 *  VELO_ERR (out of memory). */
int sql_lex(const struct sql_text *t, struct sql_pool *pool,
            struct velo_sql_diags *diags, struct sql_lexed *out);
void sql_lexed_free(struct sql_lexed *l);
int sql_kw_reserved(int kw);
const char *sql_kw_text(int kw);
/** Keyword for an identifier spelled in any case, or KW_NONE. */
int sql_kw_lookup(const char *s, size_t n);

/* ---- AST ---------------------------------------------------------------- */

struct sql_ident {
    char *name; /* unquoted, as written (quoted: escapes removed) */
    int quoted;
    struct sql_pos pos;
};

struct ast_type {
    char *name;      /* upper case: "DECIMAL", "VARCHAR", ... */
    int nparams;
    int64_t params[2];
    struct sql_pos pos;
};

enum ast_expr_kind {
    AX_INTEGER = 1, /* text: digits */
    AX_DECIMAL,     /* text: 1.25 */
    AX_FLOAT,       /* text: 1e3 */
    AX_STRING,      /* text: unescaped */
    AX_BOOL,        /* ival 0/1 */
    AX_NULL,
    AX_TYPED,       /* name: "DATE" or "TIMESTAMP"; text: the literal */
    AX_INTERVAL,    /* text: '5' or '1 hour'; name: unit or NULL */
    AX_DURATION,    /* text: 5m */
    AX_NAME,        /* parts: a.b.c */
    AX_STAR,        /* parts: qualifier (0 or 1) */
    AX_SUBSCRIPT,   /* args[0]['k'] (args[1] a string literal) */
    AX_FIELD,       /* args[0].name, after a subscript: a['k'].b */
    AX_NEG,         /* unary minus */
    AX_BINARY,      /* op: enum sql_tok of the operator */
    AX_AND,         /* n-ary */
    AX_OR,          /* n-ary */
    AX_NOT,
    AX_IS_NULL,     /* negated */
    AX_IN,          /* negated; args[0] IN (args[1..]) */
    AX_BETWEEN,     /* negated; args: x, low, high */
    AX_LIKE,        /* negated, ilike; args: x, pattern */
    AX_CASE,        /* has_operand, has_else; [operand], w, t, ..., [else] */
    AX_CAST,        /* try_cast; type */
    AX_CALL,        /* name (upper), args, distinct, star, filter, special,
                       over (a window function call when non-NULL) */
    AX_IN_QUERY     /* negated; args[0] IN (sub) */
};

/* Calls written with SQL's own syntax, normalized by the binder. */
enum ast_special {
    SP_NONE = 0,
    SP_EXTRACT,    /* args: field (AX_STRING, upper), x */
    SP_POSITION,   /* args: needle, haystack */
    SP_SUBSTRING,  /* args: x, from[, for] */
    SP_TRIM,       /* args: x[, chars]; trim_side */
    SP_NOW         /* CURRENT_TIMESTAMP */
};

enum { TRIM_BOTH = 0, TRIM_LEADING = 1, TRIM_TRAILING = 2 };

struct ast_query;
struct ast_order;

/* OVER (PARTITION BY ... ORDER BY ... [ROWS|RANGE BETWEEN ... PRECEDING
 * AND CURRENT ROW]) */
enum { FRAME_DEFAULT = 0, FRAME_ROWS = 1, FRAME_RANGE = 2 };

struct ast_over {
    struct ast_expr **partition;
    size_t npartition;
    struct ast_order *order;
    size_t norder;
    int frame;                /* FRAME_* */
    struct ast_expr *preceding; /* n or INTERVAL; NULL: UNBOUNDED */
    struct sql_pos pos;       /* OVER (...) */
    struct sql_pos frame_pos;
};

struct ast_expr {
    uint8_t kind;
    uint8_t negated;
    uint8_t ilike;
    uint8_t distinct;
    uint8_t star;        /* COUNT(*) */
    uint8_t try_cast;
    uint8_t has_operand;
    uint8_t has_else;
    uint8_t special;     /* enum ast_special */
    uint8_t trim_side;
    uint8_t parens;      /* written inside parentheses */
    uint16_t depth;      /* nesting below, for the limit */
    int op;              /* AX_BINARY */
    int64_t ival;
    char *name;
    char *text;
    struct sql_ident *parts;
    size_t nparts;
    struct ast_type type; /* AX_CAST */
    struct ast_expr **args;
    size_t nargs;
    struct ast_expr *filter; /* FILTER (WHERE ...) */
    struct ast_over *over;   /* AX_CALL ... OVER (...) */
    struct ast_query *sub;   /* AX_IN_QUERY */
    struct sql_pos pos;      /* the whole expression */
    struct sql_pos name_pos; /* call name, operator, keyword */
};

enum ast_from_kind {
    FROM_NAME = 1,
    FROM_URI = 2,
    FROM_SUBQUERY = 3, /* (SELECT ...) alias */
    FROM_JOIN = 4      /* left JOIN right ON ... */
};

struct ast_from {
    int kind;
    struct sql_ident name; /* the name, or the URI text */
    int uri_quoted;
    struct sql_ident alias; /* name NULL when none */
    struct ast_query *sub;  /* FROM_SUBQUERY */
    /* FROM_JOIN */
    int join_type;              /* enum velo_join_type */
    struct ast_from *left, *right;
    struct ast_expr *on;
    struct ast_expr *within;    /* WITHIN INTERVAL ..., or NULL */
    struct sql_pos pos;         /* the whole FROM item */
    struct sql_pos join_pos;    /* the JOIN keywords */
};

enum { WIN_NONE = 0, WIN_TUMBLING = 1, WIN_HOPPING = 2, WIN_SESSION = 3 };

struct ast_window {
    int kind;
    struct ast_expr *time;    /* NULL: _timestamp */
    struct ast_expr *size;    /* INTERVAL, duration or string */
    struct ast_expr *advance; /* HOPPING/SLIDING: the second interval */
    struct ast_expr *grace;   /* GRACE INTERVAL ..., or NULL */
    struct sql_pos pos;
    struct sql_pos grace_pos; /* the whole GRACE clause */
};

struct ast_item {
    struct ast_expr *expr; /* AX_STAR for * and t.* */
    struct sql_ident alias;
};

struct ast_order {
    struct ast_expr *expr;
    int desc;
    int nulls; /* -1 default, 0 LAST, 1 FIRST */
};

struct ast_query {
    int distinct;
    struct ast_item *items;
    size_t nitems;
    int has_from;
    struct ast_from from;
    struct ast_expr *where;
    struct ast_expr **group;
    size_t ngroup;
    int has_group;
    struct sql_pos group_pos;
    struct ast_window window;
    struct ast_expr *having;
    int emit; /* -1 default, enum velo_emit_mode */
    struct sql_pos emit_pos;
    struct ast_order *order;
    size_t norder;
    struct sql_pos order_pos;
    struct ast_expr *limit, *offset;
    struct sql_pos pos;
    /* WITH name AS (query), ... before the SELECT */
    struct ast_cte *ctes;
    size_t nctes;
    /* UNION ALL: the next query of the chain, or NULL */
    struct ast_query *union_next;
    struct sql_pos union_pos;
};

struct ast_cte {
    struct sql_ident name;
    struct ast_query *query;
};

struct ast_prop {
    char *key, *value;
    struct sql_pos key_pos, value_pos;
};

struct ast_coldef {
    struct sql_ident name;
    struct ast_type type;
    int not_null;
};

enum ast_stmt_kind {
    ST_SELECT = 1,
    ST_CREATE_STREAM_AS,
    ST_CREATE_TABLE_AS,
    ST_CREATE_SOURCE, /* CREATE STREAM name (cols) WITH (...) */
    ST_INSERT
};

struct ast_stmt {
    int kind;
    int failed;            /* a syntax error: not planned */
    struct sql_ident name; /* target, or declared source */
    struct ast_coldef *cols;
    size_t ncols;
    struct ast_query *query;
    struct sql_ident *pk;
    size_t npk;
    struct sql_pos pk_pos;
    struct ast_prop *props;
    size_t nprops;
    struct sql_pos pos; /* from the first token to the last */
};

struct velo_sql_program {
    struct sql_pool *pool;
    struct sql_text text; /* a copy of the SQL */
    struct ast_stmt **stmts;
    size_t nstmts;
    struct velo_sql_annotation *ann;
    size_t nann;
    size_t errors; /* lexical and syntax errors found while parsing */
};

/* Spelling of a token type for "expected one of" lists. */
const char *sql_tok_describe(int type);

/** The statements as S-expressions, one per line (tests, debugging).
 *  @return malloc'd text. */
char *sql_ast_dump(const struct velo_sql_program *p);

#endif /* VELO_SQL_AST_H */
