/*
 * The SQL parser: recursive descent for statements and clauses, precedence
 * climbing for expressions.
 *
 * Errors: the first syntax error of a statement is reported with the
 * tokens that would have been accepted there (every place the parser tests
 * a token that is not there records what it wanted, until a token is
 * consumed), the statement is marked failed, and parsing resumes after
 * the next ';', so one run reports the errors of every statement.
 *
 * Limits: nesting deeper than SQL_MAX_DEPTH is an error before it can
 * exhaust the stack, both while parsing (recursion) and in the tree built
 * (left-deep operator chains are built by loops, so their depth is
 * counted on the nodes).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sql/ast.h"

#define EXP_EXPR 1000 /* "an expression" in expected lists */
#define EXP_NAME 1001 /* "a name" */
#define EXP_TYPE 1002 /* "a type" */
#define EXP_MAX 40

enum prec {
    P_OR = 1,
    P_AND = 2,
    P_NOT = 3,
    P_CMP = 4,
    P_CONCAT = 5,
    P_ADD = 6,
    P_MUL = 7,
    P_UNARY = 8
};

struct parser {
    const struct sql_text *t;
    const struct sql_token *toks;
    size_t ntoks, i;
    struct sql_pool *pool;
    struct velo_sql_diags *diags;
    int failed; /* the current statement has an error */
    int oom;
    int depth;
    /* What the parser tested for at token exp_at. */
    size_t exp_at;
    int expected[EXP_MAX];
    size_t nexp;
    /* Index of the last token read as an implicit alias, for the
     * "FORM was read as an alias" hint. */
    size_t alias_tok;
};

/* ---- Tokens ------------------------------------------------------------- */

static const struct sql_token *cur(const struct parser *p)
{
    return &p->toks[p->i];
}

static const struct sql_token *peek(const struct parser *p, size_t k)
{
    size_t j = p->i + k;
    return &p->toks[j < p->ntoks ? j : p->ntoks - 1];
}

static void advance(struct parser *p)
{
    if (p->toks[p->i].type != TK_EOF) {
        p->i++;
    }
}

static struct sql_pos tok_pos(const struct sql_token *t)
{
    struct sql_pos pos = {t->off, t->len};
    return pos;
}

/* From token `start` to the last token consumed. */
static struct sql_pos span(const struct parser *p, size_t start)
{
    struct sql_pos pos;
    pos.off = p->toks[start].off;
    if (p->i > start) {
        const struct sql_token *last = &p->toks[p->i - 1];
        pos.len = last->off + last->len - pos.off;
    } else {
        pos.len = p->toks[start].len;
    }
    return pos;
}

static void note(struct parser *p, int what)
{
    if (p->exp_at != p->i) {
        p->exp_at = p->i;
        p->nexp = 0;
    }
    for (size_t k = 0; k < p->nexp; k++) {
        if (p->expected[k] == what) {
            return;
        }
    }
    if (p->nexp < EXP_MAX) {
        p->expected[p->nexp++] = what;
    }
}

static int at(struct parser *p, int type)
{
    if (cur(p)->type == type) {
        return 1;
    }
    note(p, type);
    return 0;
}

static int at_kw(struct parser *p, int kw)
{
    if (cur(p)->type == TK_IDENT && cur(p)->kw == kw) {
        return 1;
    }
    note(p, 64 + kw);
    return 0;
}

static int accept(struct parser *p, int type)
{
    if (at(p, type)) {
        advance(p);
        return 1;
    }
    return 0;
}

static int accept_kw(struct parser *p, int kw)
{
    if (at_kw(p, kw)) {
        advance(p);
        return 1;
    }
    return 0;
}

/* Is the current token kw, without noting it as expected. */
static int is_kw(const struct parser *p, int kw)
{
    return cur(p)->type == TK_IDENT && cur(p)->kw == kw;
}

static int is_kw_at(const struct parser *p, size_t k, int kw)
{
    const struct sql_token *t = peek(p, k);
    return t->type == TK_IDENT && t->kw == kw;
}

/* ---- Errors ------------------------------------------------------------- */

static void describe_expected(const struct parser *p, struct sql_buf *b)
{
    if (p->exp_at != p->i || p->nexp == 0) {
        return;
    }
    sql_buf_puts(b, p->nexp == 1 ? "expected " : "expected one of: ");
    size_t shown = p->nexp > 14 ? 14 : p->nexp;
    for (size_t k = 0; k < shown; k++) {
        int w = p->expected[k];
        if (k > 0) {
            sql_buf_puts(b, ", ");
        }
        if (w == EXP_EXPR) {
            sql_buf_puts(b, "an expression");
        } else if (w == EXP_NAME) {
            sql_buf_puts(b, "a name");
        } else if (w == EXP_TYPE) {
            sql_buf_puts(b, "a type (BIGINT, DOUBLE, DECIMAL(p,s), STRING, "
                            "TIMESTAMP, ...)");
        } else if (w >= 64) {
            sql_buf_puts(b, sql_kw_text(w - 64));
        } else {
            sql_buf_puts(b, sql_tok_describe(w));
        }
    }
    if (shown < p->nexp) {
        sql_buf_puts(b, ", ...");
    }
}

static void tok_text(const struct parser *p, const struct sql_token *t,
                     char *out, size_t cap)
{
    size_t n = t->len > 40 ? 40 : t->len;
    snprintf(out, cap, "%.*s%s", (int)n, p->t->text + t->off,
             t->len > 40 ? "..." : "");
}

/* A keyword the user may have misspelled as `word`. */
static const char *near_keyword(const struct parser *p, const char *word)
{
    static const char *const clause_kws[] = {
        "SELECT", "FROM", "WHERE", "GROUP", "HAVING", "ORDER", "LIMIT",
        "OFFSET", "WINDOW", "EMIT", "WITH", "AS", "CREATE", "INSERT",
        "INTO", "STREAM", "TABLE", "BETWEEN", "DISTINCT", "TUMBLING",
        "CHANGES", "FINAL", "INTERVAL", "CASE", "WHEN", "THEN", "ELSE",
        "END", "LIKE", "NULL", "AND", "NOT"};
    const char *cands[EXP_MAX + 40];
    size_t n = 0;
    if (p->exp_at == p->i) {
        for (size_t k = 0; k < p->nexp; k++) {
            if (p->expected[k] >= 64 && p->expected[k] < EXP_EXPR) {
                cands[n++] = sql_kw_text(p->expected[k] - 64);
            }
        }
    }
    for (size_t k = 0; k < sizeof(clause_kws) / sizeof(*clause_kws); k++) {
        cands[n++] = clause_kws[k];
    }
    if (strlen(word) < 3) {
        return NULL;
    }
    return sql_suggest(word, cands, n);
}

static void syntax_error(struct parser *p)
{
    if (p->failed) {
        return;
    }
    p->failed = 1;
    const struct sql_token *t = cur(p);
    if (t->type == TK_ERROR) {
        return; /* the lexer said why */
    }
    struct sql_buf hint = {0};
    char text[64];
    tok_text(p, t, text, sizeof(text));

    /* A clause keyword misspelled just before: "FROM t WHER x > 1" reads
     * WHER as an alias and fails at x. Point at the misspelling. */
    if (p->alias_tok + 1 == p->i && p->alias_tok < p->ntoks) {
        const struct sql_token *a = &p->toks[p->alias_tok];
        char word[64];
        tok_text(p, a, word, sizeof(word));
        const char *kw = near_keyword(p, word);
        if (kw != NULL) {
            sql_buf_printf(&hint, "did you mean %s? '%s' was read as an "
                                  "alias",
                           kw, word);
            sql_diag(p->diags, p->t, tok_pos(a), SQL_ERROR, "V2001",
                     hint.data, "syntax error at or near '%s'", word);
            sql_buf_free(&hint);
            return;
        }
    }
    if (t->type == TK_EOF) {
        describe_expected(p, &hint);
        struct sql_pos pos = tok_pos(t);
        if (p->i > 0) {
            /* Point just after the last token, not past the text. */
            const struct sql_token *last = &p->toks[p->i - 1];
            pos.off = last->off + last->len;
            pos.len = 1;
        }
        sql_diag(p->diags, p->t, pos, SQL_ERROR, "V2002",
                 hint.len ? hint.data : NULL, "unexpected end of input");
        sql_buf_free(&hint);
        return;
    }
    const char *kw = NULL;
    if (t->type == TK_IDENT) {
        kw = near_keyword(p, text);
    }
    if (t->type == TK_IDENT && t->kw != KW_NONE &&
        sql_kw_reserved(t->kw) == 1 && p->exp_at == p->i) {
        for (size_t k = 0; k < p->nexp; k++) {
            if (p->expected[k] == EXP_NAME || p->expected[k] == EXP_EXPR) {
                sql_buf_printf(&hint, "%s is a reserved word: to use it as "
                                      "a name, quote it: \"%s\"; ",
                               sql_kw_text(t->kw), text);
                break;
            }
        }
    }
    if (kw != NULL && strcasecmp(kw, text) != 0) {
        sql_buf_printf(&hint, "did you mean %s? ", kw);
    }
    if (t->type == TK_DURATION) {
        sql_buf_puts(&hint, "a duration like 5m is written inside "
                            "TUMBLING(...) or as INTERVAL '5' MINUTE; ");
    }
    describe_expected(p, &hint);
    /* Trim a trailing "; " left by a hint with no expected list. */
    while (hint.len > 0 && (hint.data[hint.len - 1] == ' ' ||
                            hint.data[hint.len - 1] == ';')) {
        hint.data[--hint.len] = '\0';
    }
    sql_diag(p->diags, p->t, tok_pos(t), SQL_ERROR, "V2001",
             hint.len ? hint.data : NULL, "syntax error at or near '%s'",
             text);
    sql_buf_free(&hint);
}

/* A construct that parses but is not supported yet (JOIN, UNION, ...). */
static void unsupported(struct parser *p, struct sql_pos pos,
                        const char *code, const char *hint, const char *what)
{
    if (p->failed) {
        return;
    }
    p->failed = 1;
    sql_diag(p->diags, p->t, pos, SQL_ERROR, code, hint,
             "%s is not supported yet", what);
}

static void expect(struct parser *p, int type)
{
    if (!accept(p, type)) {
        syntax_error(p);
    }
}

static void expect_kw(struct parser *p, int kw)
{
    if (!accept_kw(p, kw)) {
        syntax_error(p);
    }
}

/* ---- Allocation --------------------------------------------------------- */

static void *palloc(struct parser *p, size_t n)
{
    void *r = sql_pool_alloc(p->pool, n);
    if (r == NULL) {
        p->oom = 1;
        p->failed = 1;
    }
    return r;
}

static char *pstrndup(struct parser *p, const char *s, size_t n)
{
    char *r = sql_pool_strndup(p->pool, s, n);
    if (r == NULL) {
        p->oom = 1;
        p->failed = 1;
    }
    return r;
}

/* A growable array of pointers or structs while parsing a list. */
struct plist {
    void *items;
    size_t n, cap;
};

static void *plist_push(struct parser *p, struct plist *l, size_t elem)
{
    if (sql_pool_grow(p->pool, &l->items, &l->cap, l->n, elem) != VELO_OK) {
        p->oom = 1;
        p->failed = 1;
        return NULL;
    }
    return (char *)l->items + elem * l->n++;
}

/* The value of a 'string' token, '' unescaped. */
static char *string_value(struct parser *p, const struct sql_token *t)
{
    const char *s = p->t->text + t->off + 1;
    size_t n = t->len >= 2 ? t->len - 2 : 0;
    char *r = palloc(p, n + 1);
    if (r == NULL) {
        return NULL;
    }
    size_t o = 0;
    for (size_t k = 0; k < n; k++) {
        r[o++] = s[k];
        if (s[k] == '\'' && k + 1 < n && s[k + 1] == '\'') {
            k++;
        }
    }
    r[o] = '\0';
    return r;
}

static int is_name_token(const struct sql_token *t)
{
    return t->type == TK_QIDENT ||
           (t->type == TK_IDENT && sql_kw_reserved(t->kw) != 1);
}

/* A name: a plain identifier (not reserved) or a quoted one. */
static int parse_ident(struct parser *p, struct sql_ident *out)
{
    const struct sql_token *t = cur(p);
    memset(out, 0, sizeof(*out));
    if (!is_name_token(t)) {
        note(p, EXP_NAME);
        syntax_error(p);
        return VELO_ERR;
    }
    out->pos = tok_pos(t);
    if (t->type == TK_QIDENT) {
        const char *s = p->t->text + t->off + 1;
        size_t n = t->len - 2;
        char q = p->t->text[t->off];
        char *r = palloc(p, n + 1);
        if (r == NULL) {
            return VELO_ERR;
        }
        size_t o = 0;
        for (size_t k = 0; k < n; k++) {
            r[o++] = s[k];
            if (s[k] == q && k + 1 < n && s[k + 1] == q) {
                k++;
            }
        }
        r[o] = '\0';
        out->name = r;
        out->quoted = 1;
    } else {
        out->name = pstrndup(p, p->t->text + t->off, t->len);
    }
    if (out->name == NULL) {
        return VELO_ERR;
    }
    if (strlen(out->name) > SQL_MAX_IDENT) {
        p->failed = 1;
        sql_diag(p->diags, p->t, out->pos, SQL_ERROR, "V1010",
                 "use a shorter name", "name longer than %d characters",
                 SQL_MAX_IDENT);
        advance(p);
        return VELO_ERR;
    }
    advance(p);
    return VELO_OK;
}

/* ---- Expressions -------------------------------------------------------- */

static struct ast_expr *parse_binary(struct parser *p, int min_prec);
static struct ast_query *parse_query(struct parser *p);

static struct ast_expr *parse_expr(struct parser *p)
{
    return parse_binary(p, P_OR);
}

static struct ast_expr *new_expr(struct parser *p, int kind, size_t start)
{
    struct ast_expr *e = palloc(p, sizeof(*e));
    if (e == NULL) {
        return NULL;
    }
    e->kind = (uint8_t)kind;
    e->pos.off = p->toks[start].off;
    e->pos.len = p->toks[start].len;
    e->name_pos = e->pos;
    return e;
}

/* Set the span and check the depth of the finished node. */
static struct ast_expr *finish(struct parser *p, struct ast_expr *e,
                               size_t start)
{
    if (e == NULL || p->failed) {
        return p->failed ? NULL : e;
    }
    e->pos = span(p, start);
    unsigned d = 0;
    for (size_t k = 0; k < e->nargs; k++) {
        if (e->args[k] != NULL && e->args[k]->depth > d) {
            d = e->args[k]->depth;
        }
    }
    if (e->filter != NULL && e->filter->depth > d) {
        d = e->filter->depth;
    }
    e->depth = (uint16_t)(d + 1);
    if (e->depth > SQL_MAX_DEPTH) {
        p->failed = 1;
        sql_diag(p->diags, p->t, e->pos, SQL_ERROR, "V2003",
                 "split the expression, or use IN (...) for long lists "
                 "of alternatives",
                 "expression nested too deeply (more than %d levels)",
                 SQL_MAX_DEPTH);
        return NULL;
    }
    return e;
}

static int set_args(struct parser *p, struct ast_expr *e,
                    struct ast_expr **args, size_t n)
{
    e->args = palloc(p, (n ? n : 1) * sizeof(*e->args));
    if (e->args == NULL) {
        return VELO_ERR;
    }
    for (size_t k = 0; k < n; k++) {
        e->args[k] = args[k];
    }
    e->nargs = n;
    return VELO_OK;
}

static struct ast_expr *make2(struct parser *p, int kind, size_t start,
                              struct ast_expr *a, struct ast_expr *b)
{
    if (a == NULL || b == NULL) {
        return NULL;
    }
    struct ast_expr *e = new_expr(p, kind, start);
    struct ast_expr *args[2] = {a, b};
    if (e == NULL || set_args(p, e, args, 2) != VELO_OK) {
        return NULL;
    }
    return e;
}

/* Comma-separated expressions up to (not including) ')'. */
static int parse_expr_list(struct parser *p, struct plist *l)
{
    do {
        struct ast_expr *e = parse_expr(p);
        if (e == NULL) {
            return VELO_ERR;
        }
        struct ast_expr **slot = plist_push(p, l, sizeof(*slot));
        if (slot == NULL) {
            return VELO_ERR;
        }
        *slot = e;
    } while (accept(p, TK_COMMA));
    return VELO_OK;
}

static int parse_type(struct parser *p, struct ast_type *ty)
{
    const struct sql_token *t = cur(p);
    memset(ty, 0, sizeof(*ty));
    if (t->type != TK_IDENT && t->type != TK_QIDENT) {
        note(p, EXP_TYPE);
        syntax_error(p);
        return VELO_ERR;
    }
    size_t start = p->i;
    char *name = pstrndup(p, p->t->text + t->off, t->len);
    if (name == NULL) {
        return VELO_ERR;
    }
    for (char *c = name; *c; c++) {
        *c = (char)toupper((unsigned char)*c);
    }
    advance(p);
    /* DOUBLE PRECISION is DOUBLE. */
    if (strcmp(name, "DOUBLE") == 0 && is_kw(p, KW_PRECISION)) {
        advance(p);
    }
    ty->name = name;
    if (accept(p, TK_LPAREN)) {
        do {
            if (!at(p, TK_INTEGER)) {
                syntax_error(p);
                return VELO_ERR;
            }
            if (ty->nparams < 2) {
                ty->params[ty->nparams] =
                    strtoll(p->t->text + cur(p)->off, NULL, 10);
            }
            ty->nparams++;
            advance(p);
        } while (accept(p, TK_COMMA));
        expect(p, TK_RPAREN);
    }
    ty->pos = span(p, start);
    return p->failed ? VELO_ERR : VELO_OK;
}

static struct ast_expr *parse_case(struct parser *p)
{
    size_t start = p->i;
    advance(p); /* CASE */
    struct ast_expr *e = new_expr(p, AX_CASE, start);
    struct plist args = {0};
    if (e == NULL) {
        return NULL;
    }
    if (!at_kw(p, KW_WHEN)) {
        struct ast_expr *operand = parse_expr(p);
        struct ast_expr **slot = plist_push(p, &args, sizeof(*slot));
        if (operand == NULL || slot == NULL) {
            return NULL;
        }
        *slot = operand;
        e->has_operand = 1;
    }
    int whens = 0;
    while (accept_kw(p, KW_WHEN)) {
        struct ast_expr *w = parse_expr(p);
        if (w == NULL) {
            return NULL;
        }
        expect_kw(p, KW_THEN);
        struct ast_expr *th = p->failed ? NULL : parse_expr(p);
        if (th == NULL) {
            return NULL;
        }
        struct ast_expr **slot = plist_push(p, &args, sizeof(*slot));
        if (slot == NULL) {
            return NULL;
        }
        *slot = w;
        slot = plist_push(p, &args, sizeof(*slot));
        if (slot == NULL) {
            return NULL;
        }
        *slot = th;
        whens++;
    }
    if (whens == 0) {
        syntax_error(p);
        return NULL;
    }
    if (accept_kw(p, KW_ELSE)) {
        struct ast_expr *el = parse_expr(p);
        struct ast_expr **slot = el ? plist_push(p, &args, sizeof(*slot))
                                    : NULL;
        if (slot == NULL) {
            return NULL;
        }
        *slot = el;
        e->has_else = 1;
    }
    expect_kw(p, KW_END);
    if (p->failed || set_args(p, e, args.items, args.n) != VELO_OK) {
        return NULL;
    }
    return finish(p, e, start);
}

/* CAST(x AS type) / TRY_CAST(x AS type). */
static struct ast_expr *parse_cast(struct parser *p, int try_cast)
{
    size_t start = p->i;
    advance(p);
    expect(p, TK_LPAREN);
    struct ast_expr *x = p->failed ? NULL : parse_expr(p);
    if (x == NULL) {
        return NULL;
    }
    expect_kw(p, KW_AS);
    struct ast_expr *e = new_expr(p, AX_CAST, start);
    if (p->failed || e == NULL || parse_type(p, &e->type) != VELO_OK) {
        return NULL;
    }
    expect(p, TK_RPAREN);
    if (p->failed || set_args(p, e, &x, 1) != VELO_OK) {
        return NULL;
    }
    e->try_cast = (uint8_t)try_cast;
    return finish(p, e, start);
}

static struct ast_expr *string_node(struct parser *p, size_t at_tok,
                                    const char *s)
{
    struct ast_expr *e = new_expr(p, AX_STRING, at_tok);
    if (e == NULL) {
        return NULL;
    }
    e->text = pstrndup(p, s, strlen(s));
    return e->text != NULL ? e : NULL;
}

static struct ast_expr *special_call(struct parser *p, size_t start,
                                     const char *name, int special,
                                     struct ast_expr **args, size_t n)
{
    struct ast_expr *e = new_expr(p, AX_CALL, start);
    if (e == NULL) {
        return NULL;
    }
    e->name = pstrndup(p, name, strlen(name));
    e->special = (uint8_t)special;
    e->name_pos = tok_pos(&p->toks[start]);
    for (size_t k = 0; k < n; k++) {
        if (args[k] == NULL) {
            return NULL;
        }
    }
    if (e->name == NULL || set_args(p, e, args, n) != VELO_OK) {
        return NULL;
    }
    return finish(p, e, start);
}

/* EXTRACT(field FROM x). */
static struct ast_expr *parse_extract(struct parser *p)
{
    size_t start = p->i;
    advance(p);
    expect(p, TK_LPAREN);
    if (p->failed) {
        return NULL;
    }
    const struct sql_token *f = cur(p);
    if (f->type != TK_IDENT && f->type != TK_STRING) {
        note(p, EXP_NAME);
        syntax_error(p);
        return NULL;
    }
    char field[32];
    const char *fs = p->t->text + f->off;
    size_t fl = f->len;
    if (f->type == TK_STRING) {
        fs++;
        fl = fl >= 2 ? fl - 2 : 0;
    }
    if (fl >= sizeof(field)) {
        fl = sizeof(field) - 1;
    }
    for (size_t k = 0; k < fl; k++) {
        field[k] = (char)toupper((unsigned char)fs[k]);
    }
    field[fl] = '\0';
    size_t ftok = p->i;
    advance(p);
    struct ast_expr *fe = string_node(p, ftok, field);
    if (fe != NULL) {
        fe->pos = tok_pos(&p->toks[ftok]);
    }
    expect_kw(p, KW_FROM);
    struct ast_expr *x = p->failed ? NULL : parse_expr(p);
    expect(p, TK_RPAREN);
    if (p->failed) {
        return NULL;
    }
    struct ast_expr *args[2] = {fe, x};
    return special_call(p, start, "EXTRACT", SP_EXTRACT, args, 2);
}

/* POSITION(needle IN haystack) or POSITION(needle, haystack). */
static struct ast_expr *parse_position(struct parser *p)
{
    size_t start = p->i;
    advance(p);
    expect(p, TK_LPAREN);
    /* Above IN's precedence, so IN is ours. */
    struct ast_expr *a = p->failed ? NULL : parse_binary(p, P_CONCAT);
    if (a == NULL) {
        return NULL;
    }
    if (!accept_kw(p, KW_IN) && !accept(p, TK_COMMA)) {
        syntax_error(p);
        return NULL;
    }
    struct ast_expr *b = parse_expr(p);
    expect(p, TK_RPAREN);
    if (p->failed) {
        return NULL;
    }
    struct ast_expr *args[2] = {a, b};
    return special_call(p, start, "POSITION", SP_POSITION, args, 2);
}

static struct ast_expr *int_node(struct parser *p, size_t at_tok,
                                 const char *digits)
{
    struct ast_expr *e = new_expr(p, AX_INTEGER, at_tok);
    if (e == NULL) {
        return NULL;
    }
    e->text = pstrndup(p, digits, strlen(digits));
    return e->text != NULL ? e : NULL;
}

/* SUBSTRING(x FROM a [FOR b]), SUBSTRING(x FOR b), SUBSTRING(x, a[, b]). */
static struct ast_expr *parse_substring(struct parser *p)
{
    size_t start = p->i;
    advance(p);
    expect(p, TK_LPAREN);
    struct ast_expr *x = p->failed ? NULL : parse_expr(p);
    if (x == NULL) {
        return NULL;
    }
    struct ast_expr *args[3] = {x, NULL, NULL};
    size_t n = 1;
    if (accept_kw(p, KW_FROM)) {
        args[n++] = parse_expr(p);
        if (accept_kw(p, KW_FOR)) {
            args[n++] = parse_expr(p);
        }
    } else if (accept_kw(p, KW_FOR)) {
        args[n++] = int_node(p, start, "1");
        args[n++] = parse_expr(p);
    } else if (accept(p, TK_COMMA)) {
        args[n++] = parse_expr(p);
        if (accept(p, TK_COMMA)) {
            args[n++] = parse_expr(p);
        }
    }
    expect(p, TK_RPAREN);
    if (p->failed) {
        return NULL;
    }
    return special_call(p, start, "SUBSTRING", SP_SUBSTRING, args, n);
}

/* TRIM([LEADING|TRAILING|BOTH] [chars] FROM x), TRIM(x[, chars]). */
static struct ast_expr *parse_trim(struct parser *p)
{
    size_t start = p->i;
    advance(p);
    expect(p, TK_LPAREN);
    if (p->failed) {
        return NULL;
    }
    int side = TRIM_BOTH;
    int had_side = 0;
    if ((is_kw(p, KW_LEADING) || is_kw(p, KW_TRAILING) ||
         is_kw(p, KW_BOTH)) &&
        peek(p, 1)->type != TK_RPAREN && peek(p, 1)->type != TK_COMMA) {
        side = is_kw(p, KW_LEADING)    ? TRIM_LEADING
               : is_kw(p, KW_TRAILING) ? TRIM_TRAILING
                                       : TRIM_BOTH;
        had_side = 1;
        advance(p);
    }
    struct ast_expr *chars = NULL, *x = NULL;
    if (accept_kw(p, KW_FROM)) {
        x = parse_expr(p);
    } else {
        struct ast_expr *e1 = parse_expr(p);
        if (e1 == NULL) {
            return NULL;
        }
        if (accept_kw(p, KW_FROM)) {
            chars = e1;
            x = parse_expr(p);
        } else if (!had_side) {
            x = e1;
            if (accept(p, TK_COMMA)) {
                chars = parse_expr(p);
                if (chars == NULL) {
                    return NULL;
                }
            }
        } else {
            syntax_error(p);
            return NULL;
        }
    }
    expect(p, TK_RPAREN);
    if (p->failed || x == NULL) {
        return NULL;
    }
    struct ast_expr *args[2] = {x, chars};
    struct ast_expr *e =
        special_call(p, start, "TRIM", SP_TRIM, args, chars ? 2 : 1);
    if (e != NULL) {
        e->trim_side = (uint8_t)side;
    }
    return e;
}

static int is_interval_unit(const char *s, size_t n)
{
    static const char *const units[] = {
        "MICROSECOND", "MICROSECONDS", "MILLISECOND", "MILLISECONDS",
        "SECOND",      "SECONDS",      "MINUTE",      "MINUTES",
        "HOUR",        "HOURS",        "DAY",         "DAYS",
        "WEEK",        "WEEKS",        "MONTH",       "MONTHS",
        "YEAR",        "YEARS"};
    for (size_t k = 0; k < sizeof(units) / sizeof(*units); k++) {
        if (strlen(units[k]) == n && strncasecmp(units[k], s, n) == 0) {
            return 1;
        }
    }
    return 0;
}

/* INTERVAL '5' MINUTE, INTERVAL 5 MINUTE, INTERVAL '1 hour'. */
static struct ast_expr *parse_interval(struct parser *p)
{
    size_t start = p->i;
    advance(p);
    struct ast_expr *e = new_expr(p, AX_INTERVAL, start);
    if (e == NULL) {
        return NULL;
    }
    int neg = accept(p, TK_MINUS);
    const struct sql_token *v = cur(p);
    if (v->type == TK_STRING) {
        e->text = string_value(p, v);
    } else if (v->type == TK_INTEGER || v->type == TK_DECIMAL) {
        e->text = pstrndup(p, p->t->text + v->off, v->len);
    } else {
        note(p, TK_STRING);
        note(p, TK_INTEGER);
        syntax_error(p);
        return NULL;
    }
    if (e->text == NULL) {
        return NULL;
    }
    if (neg) {
        size_t n = strlen(e->text);
        char *t = palloc(p, n + 2);
        if (t == NULL) {
            return NULL;
        }
        t[0] = '-';
        memcpy(t + 1, e->text, n + 1);
        e->text = t;
    }
    int numeric = v->type != TK_STRING;
    advance(p);
    const struct sql_token *u = cur(p);
    if (u->type == TK_IDENT &&
        is_interval_unit(p->t->text + u->off, u->len)) {
        e->name = pstrndup(p, p->t->text + u->off, u->len);
        if (e->name == NULL) {
            return NULL;
        }
        for (char *c = e->name; *c; c++) {
            *c = (char)toupper((unsigned char)*c);
        }
        advance(p);
    } else if (numeric) {
        /* A bare number needs its unit. */
        note(p, EXP_NAME);
        syntax_error(p);
        sql_diag_detail(p->diags, "an interval's unit is one of "
                                  "MILLISECOND, SECOND, MINUTE, HOUR, DAY");
        return NULL;
    }
    return finish(p, e, start);
}

/* name '(' ... ')' [FILTER (WHERE ...)]. */
static int parse_order_list(struct parser *p, struct ast_order **out,
                            size_t *n);

static void frame_following(struct parser *p)
{
    unsupported(p, tok_pos(cur(p)), "V5016",
                "frames end at the current row: ROWS BETWEEN 3 PRECEDING "
                "AND CURRENT ROW (LEAD reads later rows)",
                "a frame with FOLLOWING rows");
}

/* A frame bound before PRECEDING: UNBOUNDED, a row count or an INTERVAL.
 * Sets *bound (NULL for UNBOUNDED). */
static int parse_frame_bound(struct parser *p, struct ast_expr **bound)
{
    if (accept_kw(p, KW_UNBOUNDED)) {
        *bound = NULL;
    } else {
        *bound = parse_binary(p, 100);
        if (*bound == NULL) {
            return VELO_ERR;
        }
    }
    if (is_kw(p, KW_FOLLOWING)) {
        frame_following(p);
        return VELO_ERR;
    }
    expect_kw(p, KW_PRECEDING);
    return p->failed ? VELO_ERR : VELO_OK;
}

/* OVER ([PARTITION BY e, ...] [ORDER BY ...] [ROWS|RANGE frame]) */
static struct ast_over *parse_over(struct parser *p)
{
    size_t start = p->i;
    advance(p); /* OVER */
    struct ast_over *o = palloc(p, sizeof(*o));
    if (o == NULL) {
        return NULL;
    }
    expect(p, TK_LPAREN);
    if (p->failed) {
        return NULL;
    }
    if (accept_kw(p, KW_PARTITION)) {
        expect_kw(p, KW_BY);
        struct plist l = {0};
        if (p->failed || parse_expr_list(p, &l) != VELO_OK) {
            return NULL;
        }
        o->partition = l.items;
        o->npartition = l.n;
    }
    if (accept_kw(p, KW_ORDER)) {
        expect_kw(p, KW_BY);
        if (p->failed ||
            parse_order_list(p, &o->order, &o->norder) != VELO_OK) {
            return NULL;
        }
    }
    if (is_kw(p, KW_ROWS) || is_kw(p, KW_RANGE)) {
        size_t fstart = p->i;
        o->frame = is_kw(p, KW_ROWS) ? FRAME_ROWS : FRAME_RANGE;
        advance(p);
        if (accept_kw(p, KW_BETWEEN)) {
            if (parse_frame_bound(p, &o->preceding) != VELO_OK) {
                return NULL;
            }
            expect_kw(p, KW_AND);
            if (!p->failed && !is_kw(p, KW_CURRENT)) {
                size_t at_tok = p->i;
                while (cur(p)->type != TK_EOF && cur(p)->type != TK_RPAREN &&
                       !is_kw(p, KW_FOLLOWING) && !is_kw(p, KW_PRECEDING)) {
                    advance(p);
                }
                if (is_kw(p, KW_FOLLOWING)) {
                    frame_following(p);
                    return NULL;
                }
                p->i = at_tok;
            }
            expect_kw(p, KW_CURRENT);
            expect_kw(p, KW_ROW);
        } else if (parse_frame_bound(p, &o->preceding) != VELO_OK) {
            return NULL;
        }
        if (p->failed) {
            return NULL;
        }
        o->frame_pos = span(p, fstart);
    }
    if (is_kw(p, KW_FOLLOWING)) {
        unsupported(p, tok_pos(cur(p)), "V5016",
                    "frames end at the current row: ROWS BETWEEN 3 "
                    "PRECEDING AND CURRENT ROW (LEAD reads later rows)",
                    "a frame with FOLLOWING rows");
        return NULL;
    }
    expect(p, TK_RPAREN);
    if (p->failed) {
        return NULL;
    }
    o->pos = span(p, start);
    return o;
}

static struct ast_expr *parse_call(struct parser *p, size_t start,
                                   struct sql_ident *name)
{
    struct ast_expr *e = new_expr(p, AX_CALL, start);
    if (e == NULL) {
        return NULL;
    }
    size_t n = strlen(name->name);
    e->name = pstrndup(p, name->name, n);
    if (e->name == NULL) {
        return NULL;
    }
    for (char *c = e->name; *c; c++) {
        *c = (char)toupper((unsigned char)*c);
    }
    e->name_pos = name->pos;
    expect(p, TK_LPAREN);
    struct plist args = {0};
    if (accept_kw(p, KW_DISTINCT)) {
        e->distinct = 1;
    } else {
        accept_kw(p, KW_ALL);
    }
    if (accept(p, TK_STAR)) {
        e->star = 1;
    } else if (!at(p, TK_RPAREN)) {
        note(p, EXP_EXPR);
        if (parse_expr_list(p, &args) != VELO_OK) {
            return NULL;
        }
    }
    expect(p, TK_RPAREN);
    if (p->failed || set_args(p, e, args.items, args.n) != VELO_OK) {
        return NULL;
    }
    if (is_kw(p, KW_FILTER) && peek(p, 1)->type == TK_LPAREN) {
        advance(p);
        advance(p);
        expect_kw(p, KW_WHERE);
        e->filter = p->failed ? NULL : parse_expr(p);
        expect(p, TK_RPAREN);
        if (p->failed) {
            return NULL;
        }
    }
    if (is_kw(p, KW_OVER)) {
        e->over = parse_over(p);
        if (e->over == NULL) {
            return NULL;
        }
    }
    return finish(p, e, start);
}

/* A name chain a.b.c, or a call. */
static struct ast_expr *parse_name_or_call(struct parser *p)
{
    size_t start = p->i;
    struct sql_ident first;
    if (parse_ident(p, &first) != VELO_OK) {
        return NULL;
    }
    if (at(p, TK_LPAREN) && !first.quoted) {
        return parse_call(p, start, &first);
    }
    struct plist parts = {0};
    struct sql_ident *slot = plist_push(p, &parts, sizeof(*slot));
    if (slot == NULL) {
        return NULL;
    }
    *slot = first;
    while (cur(p)->type == TK_DOT && is_name_token(peek(p, 1))) {
        advance(p);
        slot = plist_push(p, &parts, sizeof(*slot));
        if (slot == NULL || parse_ident(p, slot) != VELO_OK) {
            return NULL;
        }
    }
    struct ast_expr *e = new_expr(p, AX_NAME, start);
    if (e == NULL) {
        return NULL;
    }
    e->parts = parts.items;
    e->nparts = parts.n;
    return finish(p, e, start);
}

static struct ast_expr *literal(struct parser *p, int kind)
{
    size_t start = p->i;
    const struct sql_token *t = cur(p);
    struct ast_expr *e = new_expr(p, kind, start);
    if (e == NULL) {
        return NULL;
    }
    if (kind == AX_STRING) {
        e->text = string_value(p, t);
    } else {
        e->text = pstrndup(p, p->t->text + t->off, t->len);
    }
    if (e->text == NULL) {
        return NULL;
    }
    advance(p);
    return finish(p, e, start);
}

static struct ast_expr *parse_primary(struct parser *p)
{
    const struct sql_token *t = cur(p);
    size_t start = p->i;
    switch (t->type) {
    case TK_INTEGER:
        return literal(p, AX_INTEGER);
    case TK_DECIMAL:
        return literal(p, AX_DECIMAL);
    case TK_FLOAT:
        return literal(p, AX_FLOAT);
    case TK_STRING:
        return literal(p, AX_STRING);
    case TK_DURATION:
        return literal(p, AX_DURATION);
    case TK_QIDENT:
        return parse_name_or_call(p);
    case TK_LPAREN: {
        advance(p);
        if (is_kw(p, KW_SELECT)) {
            unsupported(p, tok_pos(cur(p)), "V5016",
                        "read the subquery's result by name: CREATE STREAM "
                        "s AS SELECT ...; then SELECT ... FROM s",
                        "a subquery");
            return NULL;
        }
        struct ast_expr *e = parse_expr(p);
        expect(p, TK_RPAREN);
        if (p->failed || e == NULL) {
            return NULL;
        }
        e->parens = 1;
        return e;
    }
    case TK_IDENT:
        break;
    default:
        note(p, EXP_EXPR);
        syntax_error(p);
        return NULL;
    }
    const struct sql_token *n1 = peek(p, 1);
    switch (t->kw) {
    case KW_TRUE:
    case KW_FALSE: {
        struct ast_expr *e = new_expr(p, AX_BOOL, start);
        if (e == NULL) {
            return NULL;
        }
        e->ival = t->kw == KW_TRUE;
        advance(p);
        return finish(p, e, start);
    }
    case KW_NULL: {
        struct ast_expr *e = new_expr(p, AX_NULL, start);
        advance(p);
        return e != NULL ? finish(p, e, start) : NULL;
    }
    case KW_DATE:
    case KW_TIMESTAMP:
        if (n1->type == TK_STRING) {
            struct ast_expr *e = new_expr(p, AX_TYPED, start);
            if (e == NULL) {
                return NULL;
            }
            e->name = (char *)(t->kw == KW_DATE ? "DATE" : "TIMESTAMP");
            advance(p);
            e->text = string_value(p, cur(p));
            advance(p);
            return e->text != NULL ? finish(p, e, start) : NULL;
        }
        break;
    case KW_INTERVAL:
        if (n1->type == TK_STRING || n1->type == TK_INTEGER ||
            n1->type == TK_DECIMAL || n1->type == TK_MINUS) {
            return parse_interval(p);
        }
        break;
    case KW_CASE:
        return parse_case(p);
    case KW_CAST:
    case KW_TRY_CAST:
        if (n1->type == TK_LPAREN) {
            return parse_cast(p, t->kw == KW_TRY_CAST);
        }
        break;
    case KW_EXTRACT:
        if (n1->type == TK_LPAREN) {
            return parse_extract(p);
        }
        break;
    case KW_POSITION:
        if (n1->type == TK_LPAREN) {
            return parse_position(p);
        }
        break;
    case KW_SUBSTRING:
        if (n1->type == TK_LPAREN) {
            return parse_substring(p);
        }
        break;
    case KW_TRIM:
        if (n1->type == TK_LPAREN) {
            return parse_trim(p);
        }
        break;
    case KW_CURRENT_TIMESTAMP: {
        advance(p);
        if (cur(p)->type == TK_LPAREN && peek(p, 1)->type == TK_RPAREN) {
            advance(p);
            advance(p);
        }
        return special_call(p, start, "NOW", SP_NOW, NULL, 0);
    }
    default:
        break;
    }
    if (sql_kw_reserved(t->kw) == 1) {
        note(p, EXP_EXPR);
        syntax_error(p);
        return NULL;
    }
    return parse_name_or_call(p);
}

/* x::type, x['k'], x['k'].f */
static struct ast_expr *parse_postfix(struct parser *p, struct ast_expr *e,
                                      size_t start)
{
    while (e != NULL && !p->failed) {
        if (accept(p, TK_DCOLON)) {
            struct ast_expr *c = new_expr(p, AX_CAST, start);
            if (c == NULL || parse_type(p, &c->type) != VELO_OK ||
                set_args(p, c, &e, 1) != VELO_OK) {
                return NULL;
            }
            e = finish(p, c, start);
        } else if (accept(p, TK_LBRACKET)) {
            struct ast_expr *k = parse_expr(p);
            expect(p, TK_RBRACKET);
            if (p->failed) {
                return NULL;
            }
            e = finish(p, make2(p, AX_SUBSCRIPT, start, e, k), start);
        } else if (cur(p)->type == TK_DOT && is_name_token(peek(p, 1)) &&
                   (e->kind == AX_SUBSCRIPT || e->kind == AX_FIELD ||
                    e->kind == AX_CALL || e->parens)) {
            advance(p);
            struct sql_ident id;
            if (parse_ident(p, &id) != VELO_OK) {
                return NULL;
            }
            struct ast_expr *f = new_expr(p, AX_FIELD, start);
            if (f == NULL || set_args(p, f, &e, 1) != VELO_OK) {
                return NULL;
            }
            f->name = id.name;
            f->name_pos = id.pos;
            e = finish(p, f, start);
        } else {
            break;
        }
    }
    return e;
}

static struct ast_expr *parse_prefix(struct parser *p)
{
    size_t start = p->i;
    if (is_kw(p, KW_NOT)) {
        advance(p);
        struct ast_expr *x = parse_binary(p, P_CMP);
        if (x == NULL) {
            return NULL;
        }
        struct ast_expr *e = new_expr(p, AX_NOT, start);
        if (e == NULL || set_args(p, e, &x, 1) != VELO_OK) {
            return NULL;
        }
        return finish(p, e, start);
    }
    if (cur(p)->type == TK_MINUS) {
        advance(p);
        struct ast_expr *x = parse_binary(p, P_UNARY);
        if (x == NULL) {
            return NULL;
        }
        struct ast_expr *e = new_expr(p, AX_NEG, start);
        if (e == NULL || set_args(p, e, &x, 1) != VELO_OK) {
            return NULL;
        }
        return finish(p, e, start);
    }
    if (cur(p)->type == TK_PLUS) {
        advance(p);
        return parse_binary(p, P_UNARY);
    }
    struct ast_expr *e = parse_primary(p);
    return parse_postfix(p, e, start);
}

/* The precedence of the binary operator or predicate at the cursor, or 0. */
static int binary_prec(const struct parser *p)
{
    const struct sql_token *t = cur(p);
    switch (t->type) {
    case TK_EQ: case TK_NE: case TK_LT: case TK_LE: case TK_GT: case TK_GE:
        return P_CMP;
    case TK_CONCAT:
        return P_CONCAT;
    case TK_PLUS: case TK_MINUS:
        return P_ADD;
    case TK_STAR: case TK_SLASH: case TK_PERCENT:
        return P_MUL;
    case TK_IDENT:
        break;
    default:
        return 0;
    }
    switch (t->kw) {
    case KW_OR: return P_OR;
    case KW_AND: return P_AND;
    case KW_IS: case KW_IN: case KW_BETWEEN: case KW_LIKE: case KW_ILIKE:
        return P_CMP;
    case KW_NOT:
        if (is_kw_at(p, 1, KW_IN) || is_kw_at(p, 1, KW_BETWEEN) ||
            is_kw_at(p, 1, KW_LIKE) || is_kw_at(p, 1, KW_ILIKE)) {
            return P_CMP;
        }
        return 0;
    default:
        return 0;
    }
}

/* a AND b AND c becomes one n-ary node. */
static struct ast_expr *nary(struct parser *p, int kind, size_t start,
                             struct ast_expr *l, struct ast_expr *r)
{
    if (l == NULL || r == NULL) {
        return NULL;
    }
    if (l->kind == kind && !l->parens) {
        /* ival holds the capacity of args; grow by doubling so a long
         * chain of ANDs stays linear. */
        if ((size_t)l->ival <= l->nargs) {
            size_t cap = l->nargs < 4 ? 8 : l->nargs * 2;
            struct ast_expr **na = palloc(p, cap * sizeof(*na));
            if (na == NULL) {
                return NULL;
            }
            memcpy(na, l->args, l->nargs * sizeof(*na));
            l->args = na;
            l->ival = (int64_t)cap;
        }
        l->args[l->nargs++] = r;
        l->pos = span(p, start);
        if (r->depth + 1 > l->depth) {
            l->depth = (uint16_t)(r->depth + 1);
        }
        return l;
    }
    return finish(p, make2(p, kind, start, l, r), start);
}

static struct ast_expr *parse_predicate(struct parser *p, size_t start,
                                        struct ast_expr *left)
{
    int negated = 0;
    if (is_kw(p, KW_IS)) {
        advance(p);
        negated = accept_kw(p, KW_NOT);
        expect_kw(p, KW_NULL);
        if (p->failed) {
            return NULL;
        }
        struct ast_expr *e = new_expr(p, AX_IS_NULL, start);
        if (e == NULL || set_args(p, e, &left, 1) != VELO_OK) {
            return NULL;
        }
        e->negated = (uint8_t)negated;
        return finish(p, e, start);
    }
    if (is_kw(p, KW_NOT)) {
        advance(p);
        negated = 1;
    }
    size_t optok = p->i;
    if (accept_kw(p, KW_IN)) {
        expect(p, TK_LPAREN);
        if (p->failed) {
            return NULL;
        }
        if (is_kw(p, KW_SELECT)) {
            struct ast_expr *e = new_expr(p, AX_IN_QUERY, start);
            if (e == NULL || set_args(p, e, &left, 1) != VELO_OK) {
                return NULL;
            }
            e->negated = (uint8_t)negated;
            e->name_pos = tok_pos(&p->toks[optok]);
            e->sub = parse_query(p);
            if (e->sub == NULL) {
                return NULL;
            }
            expect(p, TK_RPAREN);
            if (p->failed) {
                return NULL;
            }
            return finish(p, e, start);
        }
        struct plist l = {0};
        struct ast_expr **slot = plist_push(p, &l, sizeof(*slot));
        if (slot == NULL) {
            return NULL;
        }
        *slot = left;
        note(p, EXP_EXPR);
        if (parse_expr_list(p, &l) != VELO_OK) {
            return NULL;
        }
        expect(p, TK_RPAREN);
        struct ast_expr *e = new_expr(p, AX_IN, start);
        if (p->failed || e == NULL ||
            set_args(p, e, l.items, l.n) != VELO_OK) {
            return NULL;
        }
        e->negated = (uint8_t)negated;
        e->name_pos = tok_pos(&p->toks[optok]);
        return finish(p, e, start);
    }
    if (accept_kw(p, KW_BETWEEN)) {
        struct ast_expr *lo = parse_binary(p, P_CONCAT);
        if (lo == NULL) {
            return NULL;
        }
        expect_kw(p, KW_AND);
        struct ast_expr *hi = p->failed ? NULL : parse_binary(p, P_CONCAT);
        if (hi == NULL) {
            return NULL;
        }
        struct ast_expr *e = new_expr(p, AX_BETWEEN, start);
        struct ast_expr *args[3] = {left, lo, hi};
        if (e == NULL || set_args(p, e, args, 3) != VELO_OK) {
            return NULL;
        }
        e->negated = (uint8_t)negated;
        e->name_pos = tok_pos(&p->toks[optok]);
        return finish(p, e, start);
    }
    int ilike = is_kw(p, KW_ILIKE);
    if (accept_kw(p, KW_LIKE) || accept_kw(p, KW_ILIKE)) {
        struct ast_expr *pat = parse_binary(p, P_CONCAT);
        if (pat == NULL) {
            return NULL;
        }
        struct ast_expr *esc = NULL;
        if (accept_kw(p, KW_ESCAPE)) {
            esc = parse_binary(p, P_CONCAT);
            if (esc == NULL) {
                return NULL;
            }
        }
        struct ast_expr *e = new_expr(p, AX_LIKE, start);
        struct ast_expr *args[3] = {left, pat, esc};
        if (e == NULL || set_args(p, e, args, esc ? 3 : 2) != VELO_OK) {
            return NULL;
        }
        e->negated = (uint8_t)negated;
        e->ilike = (uint8_t)ilike;
        e->name_pos = tok_pos(&p->toks[optok]);
        return finish(p, e, start);
    }
    syntax_error(p);
    return NULL;
}

static struct ast_expr *parse_binary(struct parser *p, int min_prec)
{
    if (p->failed) {
        return NULL;
    }
    if (++p->depth > SQL_MAX_DEPTH) {
        p->failed = 1;
        sql_diag(p->diags, p->t, tok_pos(cur(p)), SQL_ERROR, "V2003",
                 "split the expression into simpler parts",
                 "expression nested too deeply (more than %d levels)",
                 SQL_MAX_DEPTH);
        p->depth--;
        return NULL;
    }
    size_t start = p->i;
    note(p, EXP_EXPR);
    struct ast_expr *left = parse_prefix(p);
    for (;;) {
        if (left == NULL || p->failed) {
            left = NULL;
            break;
        }
        int prec = binary_prec(p);
        if (prec == 0 || prec < min_prec) {
            break;
        }
        const struct sql_token *op = cur(p);
        if (op->type == TK_IDENT && op->kw == KW_OR) {
            advance(p);
            left = nary(p, AX_OR, start, left, parse_binary(p, P_AND));
        } else if (op->type == TK_IDENT && op->kw == KW_AND) {
            advance(p);
            left = nary(p, AX_AND, start, left, parse_binary(p, P_NOT));
        } else if (op->type == TK_IDENT) {
            left = parse_predicate(p, start, left);
        } else {
            size_t optok = p->i;
            int optype = op->type;
            advance(p);
            struct ast_expr *right = parse_binary(p, prec + 1);
            struct ast_expr *e = make2(p, AX_BINARY, start, left, right);
            if (e != NULL) {
                e->op = optype;
                e->name_pos = tok_pos(&p->toks[optok]);
            }
            left = finish(p, e, start);
        }
    }
    p->depth--;
    return left;
}

/* ---- Clauses ------------------------------------------------------------ */

static int parse_select_item(struct parser *p, struct ast_item *it)
{
    size_t start = p->i;
    memset(it, 0, sizeof(*it));
    if (cur(p)->type == TK_STAR) {
        advance(p);
        it->expr = new_expr(p, AX_STAR, start);
        return it->expr != NULL ? VELO_OK : VELO_ERR;
    }
    if (is_name_token(cur(p)) && peek(p, 1)->type == TK_DOT &&
        peek(p, 2)->type == TK_STAR) {
        struct ast_expr *e = new_expr(p, AX_STAR, start);
        if (e == NULL) {
            return VELO_ERR;
        }
        e->parts = palloc(p, sizeof(*e->parts));
        if (e->parts == NULL || parse_ident(p, &e->parts[0]) != VELO_OK) {
            return VELO_ERR;
        }
        e->nparts = 1;
        advance(p);
        advance(p);
        e->pos = span(p, start);
        it->expr = e;
        return VELO_OK;
    }
    it->expr = parse_expr(p);
    if (it->expr == NULL) {
        return VELO_ERR;
    }
    if (accept_kw(p, KW_AS)) {
        return parse_ident(p, &it->alias);
    }
    const struct sql_token *t = cur(p);
    if (t->type == TK_QIDENT ||
        (t->type == TK_IDENT && sql_kw_reserved(t->kw) == 0)) {
        p->alias_tok = p->i;
        return parse_ident(p, &it->alias);
    }
    note(p, EXP_NAME);
    return VELO_OK;
}

/* [AS] alias after a FROM item; none when the next word is a keyword. */
static int parse_from_alias(struct parser *p, struct ast_from *f)
{
    if (accept_kw(p, KW_AS)) {
        return parse_ident(p, &f->alias);
    }
    if (cur(p)->type == TK_QIDENT ||
        (cur(p)->type == TK_IDENT && sql_kw_reserved(cur(p)->kw) == 0)) {
        p->alias_tok = p->i;
        return parse_ident(p, &f->alias);
    }
    return VELO_OK;
}

/* A source, stream or (subquery) with its alias. */
static int parse_from_primary(struct parser *p, struct ast_from *f)
{
    size_t start = p->i;
    const struct sql_token *t = cur(p);
    if (t->type == TK_URI) {
        f->kind = FROM_URI;
        f->name.name = pstrndup(p, p->t->text + t->off, t->len);
        f->name.pos = tok_pos(t);
        advance(p);
    } else if (t->type == TK_STRING) {
        f->kind = FROM_URI;
        f->uri_quoted = 1;
        f->name.name = string_value(p, t);
        f->name.pos = tok_pos(t);
        advance(p);
    } else if (t->type == TK_LPAREN) {
        advance(p);
        if (!is_kw(p, KW_SELECT) && !is_kw(p, KW_WITH)) {
            note(p, EXP_NAME);
            syntax_error(p);
            return VELO_ERR;
        }
        f->kind = FROM_SUBQUERY;
        f->sub = parse_query(p);
        if (f->sub == NULL) {
            return VELO_ERR;
        }
        expect(p, TK_RPAREN);
        if (p->failed) {
            return VELO_ERR;
        }
        f->name.pos = span(p, start);
        f->name.name = pstrndup(p, "(subquery)", 10);
    } else {
        note(p, TK_URI);
        note(p, TK_STRING);
        f->kind = FROM_NAME;
        if (parse_ident(p, &f->name) != VELO_OK) {
            return VELO_ERR;
        }
    }
    if (f->name.name == NULL) {
        return VELO_ERR;
    }
    if (parse_from_alias(p, f) != VELO_OK) {
        return VELO_ERR;
    }
    f->pos = span(p, start);
    return VELO_OK;
}

/* [INNER | LEFT [OUTER] | RIGHT [OUTER] | FULL [OUTER]] JOIN: the join
 * type, or -1 when no join starts here. */
static int parse_join_type(struct parser *p)
{
    const struct sql_token *t = cur(p);
    if (t->type != TK_IDENT) {
        return -1;
    }
    int type;
    switch (t->kw) {
    case KW_JOIN:
        advance(p);
        return VELO_JOIN_INNER;
    case KW_INNER:
        type = VELO_JOIN_INNER;
        break;
    case KW_LEFT:
        type = VELO_JOIN_LEFT;
        break;
    case KW_RIGHT:
        type = VELO_JOIN_RIGHT;
        break;
    case KW_FULL:
        type = VELO_JOIN_FULL;
        break;
    default:
        return -1;
    }
    advance(p);
    if (type != VELO_JOIN_INNER) {
        accept_kw(p, KW_OUTER);
    }
    expect_kw(p, KW_JOIN);
    return p->failed ? -2 : type;
}

static int parse_from(struct parser *p, struct ast_query *q)
{
    size_t start = p->i;
    q->has_from = 1;
    struct ast_from *f = &q->from;
    if (parse_from_primary(p, f) != VELO_OK) {
        return VELO_ERR;
    }
    for (;;) {
        const struct sql_token *t = cur(p);
        if (t->type == TK_COMMA ||
            (t->type == TK_IDENT &&
             (t->kw == KW_CROSS || t->kw == KW_NATURAL))) {
            unsupported(p, tok_pos(t), "V5016",
                        "join on keys: FROM a JOIN b ON a.k = b.k",
                        t->type == TK_COMMA ? "a comma join (cross product)"
                        : t->kw == KW_CROSS ? "CROSS JOIN"
                                            : "NATURAL JOIN");
            return VELO_ERR;
        }
        size_t jstart = p->i;
        int type = parse_join_type(p);
        if (type == -2) {
            return VELO_ERR;
        }
        if (type < 0) {
            break;
        }
        struct ast_from *l = palloc(p, sizeof(*l));
        struct ast_from *r = palloc(p, sizeof(*r));
        if (l == NULL || r == NULL) {
            return VELO_ERR;
        }
        *l = *f;
        memset(f, 0, sizeof(*f));
        f->kind = FROM_JOIN;
        f->join_type = type;
        f->left = l;
        f->right = r;
        f->join_pos = span(p, jstart);
        if (parse_from_primary(p, r) != VELO_OK) {
            return VELO_ERR;
        }
        if (accept_kw(p, KW_WITHIN)) {
            f->within = parse_expr(p);
            if (f->within == NULL) {
                return VELO_ERR;
            }
        }
        expect_kw(p, KW_ON);
        if (p->failed) {
            return VELO_ERR;
        }
        f->on = parse_expr(p);
        if (f->on == NULL) {
            return VELO_ERR;
        }
        f->pos = span(p, start);
        f->name.name = pstrndup(p, "(join)", 6);
        f->name.pos = f->pos;
    }
    return VELO_OK;
}

static int dup_clause(struct parser *p, const char *what)
{
    if (p->failed) {
        return VELO_ERR;
    }
    p->failed = 1;
    sql_diag(p->diags, p->t, tok_pos(cur(p)), SQL_ERROR, "V2004",
             "write each clause once", "duplicate %s clause", what);
    return VELO_ERR;
}

/* The rest of TUMBLING( and SESSION(: [time,] size). */
static int parse_time_size(struct parser *p, struct ast_query *q,
                           size_t start)
{
    struct ast_expr *a = parse_expr(p);
    if (a == NULL) {
        return VELO_ERR;
    }
    if (accept(p, TK_COMMA)) {
        q->window.time = a;
        q->window.size = parse_expr(p);
    } else {
        q->window.size = a;
    }
    expect(p, TK_RPAREN);
    q->window.pos = span(p, start);
    return p->failed ? VELO_ERR : VELO_OK;
}

static int parse_window(struct parser *p, struct ast_query *q, size_t start)
{
    if (is_kw(p, KW_SESSION)) {
        /* SESSION([time,] gap) */
        advance(p);
        expect(p, TK_LPAREN);
        if (p->failed) {
            return VELO_ERR;
        }
        q->window.kind = WIN_SESSION;
        return parse_time_size(p, q, start);
    }
    if (is_kw(p, KW_HOPPING) || is_kw(p, KW_SLIDING)) {
        /* HOPPING([time,] size, advance); SLIDING is the same window. */
        size_t kw_at = p->i;
        advance(p);
        expect(p, TK_LPAREN);
        if (p->failed) {
            return VELO_ERR;
        }
        q->window.kind = WIN_HOPPING;
        struct ast_expr *x[3] = {NULL, NULL, NULL};
        size_t nx = 0;
        do {
            x[nx] = parse_expr(p);
            if (x[nx++] == NULL) {
                return VELO_ERR;
            }
        } while (nx < 3 && accept(p, TK_COMMA));
        if (nx < 2) {
            /* No advance: there is no sensible default for it. */
            unsupported(p, tok_pos(&p->toks[kw_at]), "V5016",
                        "name the advance too: HOPPING(INTERVAL '10' "
                        "SECOND, INTERVAL '2' SECOND), or use "
                        "TUMBLING(INTERVAL '10' SECOND)",
                        "a HOPPING window without an advance");
            return VELO_ERR;
        }
        q->window.time = nx == 3 ? x[0] : NULL;
        q->window.size = x[nx - 2];
        q->window.advance = x[nx - 1];
        expect(p, TK_RPAREN);
        q->window.pos = span(p, start);
        return p->failed ? VELO_ERR : VELO_OK;
    }
    expect_kw(p, KW_TUMBLING);
    expect(p, TK_LPAREN);
    if (p->failed) {
        return VELO_ERR;
    }
    q->window.kind = WIN_TUMBLING;
    /* ksqlDB's TUMBLING (SIZE 5 MINUTES) */
    if (is_kw(p, KW_SIZE) && (peek(p, 1)->type == TK_INTEGER)) {
        size_t s = p->i;
        advance(p);
        struct ast_expr *e = new_expr(p, AX_INTERVAL, s);
        if (e == NULL) {
            return VELO_ERR;
        }
        e->text = pstrndup(p, p->t->text + cur(p)->off, cur(p)->len);
        advance(p);
        const struct sql_token *u = cur(p);
        if (u->type != TK_IDENT ||
            !is_interval_unit(p->t->text + u->off, u->len)) {
            note(p, EXP_NAME);
            syntax_error(p);
            return VELO_ERR;
        }
        e->name = pstrndup(p, p->t->text + u->off, u->len);
        if (e->name == NULL || e->text == NULL) {
            return VELO_ERR;
        }
        for (char *c = e->name; *c; c++) {
            *c = (char)toupper((unsigned char)*c);
        }
        advance(p);
        q->window.size = finish(p, e, s);
    } else {
        return parse_time_size(p, q, start);
    }
    expect(p, TK_RPAREN);
    q->window.pos = span(p, start);
    return p->failed ? VELO_ERR : VELO_OK;
}

/* e [ASC|DESC] [NULLS FIRST|LAST], ... */
static int parse_order_list(struct parser *p, struct ast_order **out,
                            size_t *n)
{
    struct plist o = {0};
    do {
        if (p->failed) {
            return VELO_ERR;
        }
        struct ast_order *ob = plist_push(p, &o, sizeof(*ob));
        if (ob == NULL) {
            return VELO_ERR;
        }
        ob->nulls = -1;
        ob->expr = parse_expr(p);
        if (ob->expr == NULL) {
            return VELO_ERR;
        }
        if (accept_kw(p, KW_DESC)) {
            ob->desc = 1;
        } else {
            accept_kw(p, KW_ASC);
        }
        if (accept_kw(p, KW_NULLS)) {
            if (accept_kw(p, KW_FIRST)) {
                ob->nulls = 1;
            } else if (accept_kw(p, KW_LAST)) {
                ob->nulls = 0;
            } else {
                syntax_error(p);
                return VELO_ERR;
            }
        }
    } while (accept(p, TK_COMMA));
    *out = o.items;
    *n = o.n;
    return VELO_OK;
}

/* Does a WITH here start common table expressions (WITH name AS (...)),
 * rather than a statement's properties (WITH ('k'='v'))? */
static int at_cte(const struct parser *p)
{
    return is_kw(p, KW_WITH) && is_name_token(peek(p, 1)) &&
           is_kw_at(p, 2, KW_AS) && peek(p, 3)->type == TK_LPAREN;
}

static struct ast_query *parse_select(struct parser *p);

static struct ast_query *parse_query(struct parser *p)
{
    struct ast_cte *ctes = NULL;
    size_t nctes = 0;
    if (at_cte(p)) {
        advance(p);
        struct plist l = {0};
        do {
            struct ast_cte *c = plist_push(p, &l, sizeof(*c));
            if (c == NULL || parse_ident(p, &c->name) != VELO_OK) {
                return NULL;
            }
            expect_kw(p, KW_AS);
            expect(p, TK_LPAREN);
            if (p->failed) {
                return NULL;
            }
            c->query = parse_query(p);
            if (c->query == NULL) {
                return NULL;
            }
            expect(p, TK_RPAREN);
            if (p->failed) {
                return NULL;
            }
        } while (accept(p, TK_COMMA));
        ctes = l.items;
        nctes = l.n;
    }
    struct ast_query *q = parse_select(p);
    if (q == NULL) {
        return NULL;
    }
    q->ctes = ctes;
    q->nctes = nctes;
    /* UNION ALL chains the next SELECT. */
    struct ast_query *last = q;
    while (is_kw(p, KW_UNION)) {
        size_t ustart = p->i;
        advance(p);
        if (!accept_kw(p, KW_ALL)) {
            unsupported(p, span(p, ustart), "V5016",
                        "write UNION ALL (every row of both), and SELECT "
                        "DISTINCT over it to remove duplicates",
                        "UNION without ALL");
            return NULL;
        }
        if (last->norder > 0 || last->limit != NULL || last->offset != NULL) {
            unsupported(p, span(p, ustart), "V5016",
                        "order or limit the whole union from outside: "
                        "SELECT * FROM (SELECT ... UNION ALL SELECT ...) u "
                        "ORDER BY ...",
                        "ORDER BY or LIMIT inside a UNION ALL");
            return NULL;
        }
        struct ast_query *next = parse_select(p);
        if (next == NULL) {
            return NULL;
        }
        last->union_next = next;
        last->union_pos = span(p, ustart);
        last = next;
    }
    if (last != q &&
        (last->norder > 0 || last->limit != NULL || last->offset != NULL)) {
        unsupported(p, last->norder > 0 ? last->order_pos
                       : last->limit != NULL ? last->limit->pos
                                             : last->offset->pos,
                    "V5016",
                    "order or limit the whole union from outside: SELECT * "
                    "FROM (SELECT ... UNION ALL SELECT ...) u ORDER BY ...",
                    "ORDER BY or LIMIT inside a UNION ALL");
        return NULL;
    }
    return q;
}

static struct ast_query *parse_select(struct parser *p)
{
    size_t start = p->i;
    struct ast_query *q = palloc(p, sizeof(*q));
    if (q == NULL) {
        return NULL;
    }
    q->emit = -1;
    expect_kw(p, KW_SELECT);
    if (p->failed) {
        return NULL;
    }
    if (accept_kw(p, KW_DISTINCT)) {
        q->distinct = 1;
    } else {
        accept_kw(p, KW_ALL);
    }
    struct plist items = {0};
    do {
        struct ast_item *it = plist_push(p, &items, sizeof(*it));
        if (it == NULL || parse_select_item(p, it) != VELO_OK) {
            return NULL;
        }
    } while (accept(p, TK_COMMA));
    q->items = items.items;
    q->nitems = items.n;
    if (accept_kw(p, KW_FROM)) {
        if (parse_from(p, q) != VELO_OK) {
            return NULL;
        }
    }
    int seen_where = 0, seen_window = 0, seen_having = 0, seen_emit = 0;
    int seen_limit = 0, seen_offset = 0;
    for (;;) {
        size_t cstart = p->i;
        if (accept_kw(p, KW_WHERE)) {
            if (seen_where++) {
                p->i = cstart;
                dup_clause(p, "WHERE");
                return NULL;
            }
            q->where = parse_expr(p);
        } else if (accept_kw(p, KW_GROUP)) {
            if (q->has_group) {
                p->i = cstart;
                dup_clause(p, "GROUP BY");
                return NULL;
            }
            expect_kw(p, KW_BY);
            if (p->failed) {
                return NULL;
            }
            q->has_group = 1;
            struct plist g = {0};
            if (parse_expr_list(p, &g) != VELO_OK) {
                return NULL;
            }
            q->group = g.items;
            q->ngroup = g.n;
            q->group_pos = span(p, cstart);
        } else if (at_kw(p, KW_WINDOW) || at_kw(p, KW_TUMBLING) ||
                   is_kw(p, KW_HOPPING) || is_kw(p, KW_SLIDING) ||
                   is_kw(p, KW_SESSION)) {
            if (seen_window++) {
                dup_clause(p, "WINDOW");
                return NULL;
            }
            accept_kw(p, KW_WINDOW);
            if (parse_window(p, q, cstart) != VELO_OK) {
                return NULL;
            }
        } else if (is_kw(p, KW_GRACE)) {
            /* GRACE [PERIOD] INTERVAL '10' SECOND: checked against the
             * window by the planner. Not offered in "expected" lists:
             * it only follows a window. */
            advance(p);
            if (q->window.grace != NULL) {
                p->i = cstart;
                dup_clause(p, "GRACE");
                return NULL;
            }
            if (is_kw(p, KW_NONE) && cur(p)->type == TK_IDENT &&
                cur(p)->len == 6 &&
                strncasecmp(p->t->text + cur(p)->off, "PERIOD", 6) == 0) {
                advance(p);
            }
            q->window.grace = parse_expr(p);
            if (q->window.grace == NULL) {
                return NULL;
            }
            q->window.grace_pos = span(p, cstart);
        } else if (accept_kw(p, KW_HAVING)) {
            if (seen_having++) {
                p->i = cstart;
                dup_clause(p, "HAVING");
                return NULL;
            }
            q->having = parse_expr(p);
        } else if (accept_kw(p, KW_EMIT)) {
            if (seen_emit++) {
                p->i = cstart;
                dup_clause(p, "EMIT");
                return NULL;
            }
            if (accept_kw(p, KW_CHANGES)) {
                q->emit = VELO_EMIT_CHANGES;
            } else if (accept_kw(p, KW_FINAL)) {
                q->emit = VELO_EMIT_FINAL;
            } else {
                syntax_error(p);
                return NULL;
            }
            q->emit_pos = span(p, cstart);
        } else if (accept_kw(p, KW_ORDER)) {
            if (q->norder > 0) {
                p->i = cstart;
                dup_clause(p, "ORDER BY");
                return NULL;
            }
            expect_kw(p, KW_BY);
            if (p->failed ||
                parse_order_list(p, &q->order, &q->norder) != VELO_OK) {
                return NULL;
            }
            q->order_pos = span(p, cstart);
        } else if (accept_kw(p, KW_LIMIT)) {
            if (seen_limit++) {
                p->i = cstart;
                dup_clause(p, "LIMIT");
                return NULL;
            }
            q->limit = parse_expr(p);
            if (q->limit != NULL && accept(p, TK_COMMA)) {
                /* MySQL's LIMIT offset, count. */
                q->offset = q->limit;
                q->limit = parse_expr(p);
                seen_offset++;
            }
        } else if (accept_kw(p, KW_OFFSET)) {
            if (seen_offset++) {
                p->i = cstart;
                dup_clause(p, "OFFSET");
                return NULL;
            }
            q->offset = parse_expr(p);
            if (!accept_kw(p, KW_ROWS)) {
                accept_kw(p, KW_ROW);
            }
        } else {
            break;
        }
        if (p->failed) {
            return NULL;
        }
    }
    const struct sql_token *t = cur(p);
    if (t->type == TK_IDENT && (t->kw == KW_INTERSECT || t->kw == KW_EXCEPT)) {
        unsupported(p, tok_pos(t), "V5016",
                    "filter with IN (SELECT ...) or a JOIN instead",
                    "INTERSECT/EXCEPT");
        return NULL;
    }
    q->pos = span(p, start);
    return q;
}

static int parse_with(struct parser *p, struct ast_stmt *st)
{
    if (!accept_kw(p, KW_WITH)) {
        return VELO_OK;
    }
    expect(p, TK_LPAREN);
    struct plist props = {0};
    while (!p->failed) {
        if (at(p, TK_RPAREN) && props.n > 0) {
            break; /* a trailing comma */
        }
        const struct sql_token *k = cur(p);
        if (k->type != TK_STRING) {
            note(p, TK_STRING);
            syntax_error(p);
            if (k->type == TK_IDENT || k->type == TK_QIDENT) {
                sql_diag_detail(p->diags,
                                "property keys are quoted strings: "
                                "'trades.path'='data/trades.csv'");
            }
            return VELO_ERR;
        }
        struct ast_prop *pr = plist_push(p, &props, sizeof(*pr));
        if (pr == NULL) {
            return VELO_ERR;
        }
        pr->key = string_value(p, k);
        pr->key_pos = tok_pos(k);
        advance(p);
        expect(p, TK_EQ);
        if (p->failed) {
            return VELO_ERR;
        }
        const struct sql_token *v = cur(p);
        int neg = 0;
        if (v->type == TK_MINUS && (peek(p, 1)->type == TK_INTEGER ||
                                    peek(p, 1)->type == TK_DECIMAL ||
                                    peek(p, 1)->type == TK_FLOAT)) {
            neg = 1;
            advance(p);
            v = cur(p);
        }
        pr->value_pos = tok_pos(v);
        if (v->type == TK_STRING) {
            pr->value = string_value(p, v);
        } else if (v->type == TK_INTEGER || v->type == TK_DECIMAL ||
                   v->type == TK_FLOAT || v->type == TK_DURATION ||
                   v->type == TK_IDENT) {
            size_t n = v->len + (size_t)neg;
            pr->value = palloc(p, n + 1);
            if (pr->value != NULL) {
                if (neg) {
                    pr->value[0] = '-';
                }
                memcpy(pr->value + neg, p->t->text + v->off, v->len);
                pr->value[n] = '\0';
                if (v->type == TK_IDENT && (v->kw == KW_TRUE ||
                                            v->kw == KW_FALSE)) {
                    for (char *c = pr->value; *c; c++) {
                        *c = (char)tolower((unsigned char)*c);
                    }
                }
            }
        } else {
            note(p, TK_STRING);
            syntax_error(p);
            return VELO_ERR;
        }
        if (pr->key == NULL || pr->value == NULL) {
            return VELO_ERR;
        }
        advance(p);
        if (!accept(p, TK_COMMA)) {
            break;
        }
    }
    expect(p, TK_RPAREN);
    st->props = props.items;
    st->nprops = props.n;
    return p->failed ? VELO_ERR : VELO_OK;
}

static int parse_pk(struct parser *p, struct ast_stmt *st)
{
    size_t start = p->i;
    advance(p); /* PRIMARY */
    expect_kw(p, KW_KEY);
    expect(p, TK_LPAREN);
    if (p->failed) {
        return VELO_ERR;
    }
    if (st->npk > 0) {
        p->i = start;
        return dup_clause(p, "PRIMARY KEY");
    }
    struct plist l = {0};
    do {
        struct sql_ident *id = plist_push(p, &l, sizeof(*id));
        if (id == NULL || parse_ident(p, id) != VELO_OK) {
            return VELO_ERR;
        }
    } while (accept(p, TK_COMMA));
    expect(p, TK_RPAREN);
    st->pk = l.items;
    st->npk = l.n;
    st->pk_pos = span(p, start);
    return p->failed ? VELO_ERR : VELO_OK;
}

static int parse_coldefs(struct parser *p, struct ast_stmt *st)
{
    advance(p); /* ( */
    struct plist cols = {0};
    do {
        if (is_kw(p, KW_PRIMARY)) {
            if (parse_pk(p, st) != VELO_OK) {
                return VELO_ERR;
            }
            continue;
        }
        struct ast_coldef *c = plist_push(p, &cols, sizeof(*c));
        if (c == NULL || parse_ident(p, &c->name) != VELO_OK ||
            parse_type(p, &c->type) != VELO_OK) {
            return VELO_ERR;
        }
        if (accept_kw(p, KW_NOT)) {
            expect_kw(p, KW_NULL);
            c->not_null = 1;
        } else {
            accept_kw(p, KW_NULL);
        }
        if (is_kw(p, KW_PRIMARY)) {
            size_t s = p->i;
            advance(p);
            expect_kw(p, KW_KEY);
            if (p->failed) {
                return VELO_ERR;
            }
            if (st->npk > 0) {
                p->i = s;
                return dup_clause(p, "PRIMARY KEY");
            }
            st->pk = palloc(p, sizeof(*st->pk));
            if (st->pk == NULL) {
                return VELO_ERR;
            }
            st->pk[0] = c->name;
            st->npk = 1;
            st->pk_pos = span(p, s);
        }
    } while (!p->failed && accept(p, TK_COMMA));
    expect(p, TK_RPAREN);
    st->cols = cols.items;
    st->ncols = cols.n;
    return p->failed ? VELO_ERR : VELO_OK;
}

static void parse_statement(struct parser *p, struct ast_stmt *st)
{
    size_t start = p->i;
    p->alias_tok = (size_t)-2;
    if (at_kw(p, KW_SELECT) || at_cte(p)) {
        st->kind = ST_SELECT;
        st->query = parse_query(p);
        if (st->query != NULL) {
            parse_with(p, st);
        }
    } else if (accept_kw(p, KW_CREATE)) {
        int table = 0;
        if (accept_kw(p, KW_TABLE)) {
            table = 1;
        } else if (!accept_kw(p, KW_STREAM)) {
            syntax_error(p);
            return;
        }
        if (parse_ident(p, &st->name) != VELO_OK) {
            return;
        }
        if (at(p, TK_LPAREN)) {
            if (table) {
                unsupported(p, tok_pos(cur(p)), "V5016",
                            "declare the input as a stream and build the "
                            "table from it: CREATE TABLE t AS SELECT ... "
                            "FROM s GROUP BY k",
                            "CREATE TABLE with declared columns");
                return;
            }
            st->kind = ST_CREATE_SOURCE;
            if (parse_coldefs(p, st) != VELO_OK) {
                return;
            }
            if (!at_kw(p, KW_WITH)) {
                syntax_error(p);
                sql_diag_detail(p->diags,
                                "a declared stream reads a source named in "
                                "WITH ('%s.type'='file_source', ...)",
                                st->name.name);
                return;
            }
            parse_with(p, st);
            st->pos = span(p, start);
            return;
        }
        st->kind = table ? ST_CREATE_TABLE_AS : ST_CREATE_STREAM_AS;
        if (table && is_kw(p, KW_PRIMARY) && parse_pk(p, st) != VELO_OK) {
            return;
        }
        expect_kw(p, KW_AS);
        if (p->failed) {
            return;
        }
        st->query = parse_query(p);
        if (st->query == NULL) {
            return;
        }
        if (is_kw(p, KW_PRIMARY)) {
            /* On a stream it names its records' key for sinks. */
            if (parse_pk(p, st) != VELO_OK) {
                return;
            }
        }
        parse_with(p, st);
    } else if (accept_kw(p, KW_INSERT)) {
        st->kind = ST_INSERT;
        expect_kw(p, KW_INTO);
        if (p->failed || parse_ident(p, &st->name) != VELO_OK) {
            return;
        }
        if (at(p, TK_LPAREN)) {
            unsupported(p, tok_pos(cur(p)), "V5016",
                        "the SELECT list is matched to the target's "
                        "columns by position",
                        "a column list in INSERT");
            return;
        }
        st->query = parse_query(p);
        if (st->query != NULL) {
            parse_with(p, st);
        }
    } else {
        syntax_error(p);
    }
    st->pos = span(p, start);
}

/* Is token k the first on its line (a likely statement start)? */
static int first_on_line(const struct parser *p, size_t k)
{
    uint32_t off = p->toks[k].off;
    while (off > 0) {
        char c = p->t->text[off - 1];
        if (c == '\n') {
            return 1;
        }
        if (c != ' ' && c != '\t' && c != '\r') {
            return 0;
        }
        off--;
    }
    return 1;
}

static void recover(struct parser *p)
{
    /* Skip to the end of the statement; a CREATE or INSERT starting a
     * line also ends it (a forgotten ';'). */
    size_t from = p->i;
    while (cur(p)->type != TK_EOF && cur(p)->type != TK_SEMI) {
        if (p->i > from && (is_kw(p, KW_CREATE) || is_kw(p, KW_INSERT)) &&
            first_on_line(p, p->i)) {
            return;
        }
        advance(p);
    }
}

static void attach_annotations(struct velo_sql_program *prog,
                               const struct sql_lexed *lx,
                               struct velo_sql_diags *diags)
{
    if (lx->nann == 0) {
        return;
    }
    prog->ann = sql_pool_alloc(prog->pool, lx->nann * sizeof(*prog->ann));
    if (prog->ann == NULL) {
        return;
    }
    for (size_t k = 0; k < lx->nann; k++) {
        const struct sql_annotation_raw *r = &lx->ann[k];
        size_t s = 0;
        while (s < prog->nstmts && prog->stmts[s]->pos.off < r->off) {
            s++;
        }
        struct sql_pos pos = {r->off, (uint32_t)strlen(r->key) + 1};
        if (s == prog->nstmts) {
            sql_diag(diags, &prog->text, pos, SQL_WARNING, "V7001",
                     "put annotations on the lines just before the "
                     "statement they describe",
                     "annotation '@%s' is not followed by a statement",
                     r->key);
            continue;
        }
        struct velo_sql_annotation *a = &prog->ann[prog->nann++];
        a->key = r->key;
        a->value = r->value;
        a->statement = s;
        sql_text_linecol(&prog->text, r->off, &a->line, &a->col);
    }
}

struct velo_sql_program *velo_sql_parse(const char *text, size_t len,
                                        struct velo_sql_diags *diags)
{
    size_t first_diag = diags->n;
    size_t errors0 = diags->errors;
    struct velo_sql_program *prog = calloc(1, sizeof(*prog));
    if (prog == NULL) {
        return NULL;
    }
    prog->pool = sql_pool_create();
    if (prog->pool == NULL) {
        free(prog);
        return NULL;
    }
    if (len > SQL_MAX_TEXT) {
        sql_diag_noplace(diags, SQL_ERROR, "V1007",
                         "split the application into smaller files",
                         "SQL text too long: %zu bytes (the limit is %d)",
                         len, SQL_MAX_TEXT);
        len = 0;
        text = "";
    }
    char *copy = sql_pool_strndup(prog->pool, text, len);
    if (copy == NULL || sql_text_init(&prog->text, copy, len) != VELO_OK) {
        velo_sql_program_free(prog);
        errno = ENOMEM;
        return NULL;
    }
    struct sql_lexed lx;
    if (sql_lex(&prog->text, prog->pool, diags, &lx) != VELO_OK) {
        velo_sql_program_free(prog);
        errno = ENOMEM;
        return NULL;
    }
    struct parser p = {
        .t = &prog->text, .toks = lx.toks, .ntoks = lx.ntoks,
        .pool = prog->pool, .diags = diags, .exp_at = (size_t)-1,
        .alias_tok = (size_t)-2,
    };
    size_t cap = 0;
    while (!p.oom) {
        while (accept(&p, TK_SEMI)) {
        }
        if (cur(&p)->type == TK_EOF) {
            break;
        }
        p.failed = 0;
        p.depth = 0;
        struct ast_stmt *st = sql_pool_alloc(p.pool, sizeof(*st));
        if (st == NULL ||
            sql_pool_grow(p.pool, (void **)&prog->stmts, &cap, prog->nstmts,
                          sizeof(*prog->stmts)) != VELO_OK) {
            p.oom = 1;
            break;
        }
        prog->stmts[prog->nstmts++] = st;
        size_t before = p.i;
        parse_statement(&p, st);
        if (!p.failed && cur(&p)->type != TK_SEMI &&
            cur(&p)->type != TK_EOF) {
            if (is_kw(&p, KW_SELECT) || is_kw(&p, KW_CREATE) ||
                is_kw(&p, KW_INSERT)) {
                /* Report the missing ';' and go on with the next one. */
                const struct sql_token *last = &p.toks[p.i - 1];
                struct sql_pos pos = {last->off + last->len, 1};
                sql_diag(diags, &prog->text, pos, SQL_ERROR, "V2001",
                         "end each statement with ';'",
                         "missing ';' before %s",
                         sql_kw_text(cur(&p)->kw));
                continue;
            }
            note(&p, TK_SEMI);
            syntax_error(&p);
        }
        if (p.failed) {
            st->failed = 1;
            if (st->pos.len == 0) {
                st->pos = span(&p, before);
            }
            if (p.i == before) {
                advance(&p); /* always move on */
            }
            recover(&p);
        }
    }
    if (p.oom) {
        sql_lexed_free(&lx);
        velo_sql_program_free(prog);
        errno = ENOMEM;
        return NULL;
    }
    if (prog->nstmts == 0 && diags->errors == 0) {
        sql_diag_noplace(diags, SQL_ERROR, "V2005",
                         "write a statement, for example: SELECT * FROM "
                         "'file://data/trades.csv';",
                         "no SQL statement found");
    }
    attach_annotations(prog, &lx, diags);
    sql_lexed_free(&lx);
    /* Lexical errors are found before syntax errors: list them all in
     * the order of the text. */
    sql_diags_sort(diags, first_diag);
    prog->errors = diags->errors - errors0;
    return prog;
}

void velo_sql_program_free(struct velo_sql_program *p)
{
    if (p == NULL) {
        return;
    }
    sql_text_free(&p->text);
    sql_pool_destroy(p->pool);
    free(p);
}

size_t velo_sql_program_statements(const struct velo_sql_program *p)
{
    return p != NULL ? p->nstmts : 0;
}

size_t velo_sql_annotations(const struct velo_sql_program *p,
                            const struct velo_sql_annotation **out)
{
    if (p == NULL) {
        *out = NULL;
        return 0;
    }
    *out = p->ann;
    return p->nann;
}
