/*
 * The SQL lexer: the whole text into an array of tokens before parsing, so
 * the parser can look ahead freely and every lexical error is reported
 * once, here, even in statements the parser gives up on.
 *
 * Reentrant: all state is on the stack or in the output.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sql/ast.h"

struct kw_def {
    const char *text;
    int reserved;
};

static const struct kw_def kw_table[] = {
    {"", 0},
#define SQL_KEYWORD(id, text, reserved) {text, reserved},
#include "sql/keywords.h"
#undef SQL_KEYWORD
};

int sql_kw_reserved(int kw)
{
    return kw > 0 && kw < KW__COUNT ? kw_table[kw].reserved : 0;
}

const char *sql_kw_text(int kw)
{
    return kw > 0 && kw < KW__COUNT ? kw_table[kw].text : "";
}

int sql_kw_lookup(const char *s, size_t n)
{
    if (n == 0 || n > 20) {
        return KW_NONE;
    }
    char up[24];
    for (size_t i = 0; i < n; i++) {
        up[i] = (char)toupper((unsigned char)s[i]);
    }
    up[n] = '\0';
    int lo = 1, hi = KW__COUNT - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        int c = strcmp(up, kw_table[mid].text);
        if (c == 0) {
            return mid;
        }
        if (c < 0) {
            hi = mid - 1;
        } else {
            lo = mid + 1;
        }
    }
    return KW_NONE;
}

const char *sql_tok_describe(int type)
{
    switch (type) {
    case TK_EOF: return "end of input";
    case TK_ERROR: return "an invalid token";
    case TK_IDENT: return "a name";
    case TK_QIDENT: return "a quoted name";
    case TK_STRING: return "a string";
    case TK_INTEGER: return "an integer";
    case TK_DECIMAL: return "a decimal number";
    case TK_FLOAT: return "a number";
    case TK_DURATION: return "a duration (5m)";
    case TK_URI: return "a URI";
    case TK_LPAREN: return "'('";
    case TK_RPAREN: return "')'";
    case TK_COMMA: return "','";
    case TK_SEMI: return "';'";
    case TK_DOT: return "'.'";
    case TK_LBRACKET: return "'['";
    case TK_RBRACKET: return "']'";
    case TK_PLUS: return "'+'";
    case TK_MINUS: return "'-'";
    case TK_STAR: return "'*'";
    case TK_SLASH: return "'/'";
    case TK_PERCENT: return "'%'";
    case TK_CONCAT: return "'||'";
    case TK_EQ: return "'='";
    case TK_NE: return "'<>'";
    case TK_LT: return "'<'";
    case TK_LE: return "'<='";
    case TK_GT: return "'>'";
    case TK_GE: return "'>='";
    case TK_DCOLON: return "'::'";
    default: return "a token";
    }
}

/* ---- Lexing ------------------------------------------------------------- */

struct lexer {
    const struct sql_text *t;
    const char *s;
    size_t n, i;
    struct sql_pool *pool;
    struct velo_sql_diags *diags;
    struct sql_lexed *out;
    size_t cap_toks, cap_ann;
    int oom;
};

static int is_ident_start(unsigned char c)
{
    return isalpha(c) || c == '_' || c >= 0x80;
}

static int is_ident_char(unsigned char c)
{
    return isalnum(c) || c == '_' || c == '$' || c >= 0x80;
}

/* Characters of a bare URI after "scheme://": enough for paths, hosts,
 * ports, user@host and query strings; commas, parentheses, quotes and
 * semicolons end it so it sits in SQL like a name. */
static int is_uri_char(unsigned char c)
{
    return isalnum(c) || c == '/' || c == '.' || c == '-' || c == '_' ||
           c == ':' || c == '@' || c == '?' || c == '=' || c == '&' ||
           c == '%' || c == '~' || c == '+';
}

static void push_tok(struct lexer *lx, int type, int kw, size_t off,
                     size_t len)
{
    struct sql_lexed *o = lx->out;
    if (o->ntoks == lx->cap_toks) {
        size_t cap = lx->cap_toks ? lx->cap_toks * 2 : 256;
        struct sql_token *nt = realloc(o->toks, cap * sizeof(*nt));
        if (nt == NULL) {
            lx->oom = 1;
            return;
        }
        o->toks = nt;
        lx->cap_toks = cap;
    }
    struct sql_token *tk = &o->toks[o->ntoks++];
    tk->type = (uint8_t)type;
    tk->kw = (uint16_t)kw;
    tk->off = (uint32_t)off;
    tk->len = (uint32_t)len;
}

static void lex_error(struct lexer *lx, size_t off, size_t len,
                      const char *code, const char *hint, const char *msg)
{
    struct sql_pos pos = {(uint32_t)off, (uint32_t)len};
    sql_diag(lx->diags, lx->t, pos, SQL_ERROR, code, hint, "%s", msg);
    push_tok(lx, TK_ERROR, 0, off, len);
}

static void add_annotation(struct lexer *lx, size_t off, const char *key,
                           size_t klen, const char *val, size_t vlen)
{
    struct sql_lexed *o = lx->out;
    if (sql_pool_grow(lx->pool, (void **)&o->ann, &lx->cap_ann, o->nann,
                      sizeof(*o->ann)) != VELO_OK) {
        lx->oom = 1;
        return;
    }
    struct sql_annotation_raw *a = &o->ann[o->nann];
    a->off = (uint32_t)off;
    a->key = sql_pool_strndup(lx->pool, key, klen);
    a->value = sql_pool_strndup(lx->pool, val, vlen);
    if (a->key == NULL || a->value == NULL) {
        lx->oom = 1;
        return;
    }
    o->nann++;
}

/* "-- @key: value" (the colon is optional). */
static void lex_line_comment(struct lexer *lx)
{
    size_t start = lx->i;
    size_t end = start;
    while (end < lx->n && lx->s[end] != '\n') {
        end++;
    }
    size_t p = start + 2;
    while (p < end && (lx->s[p] == ' ' || lx->s[p] == '\t')) {
        p++;
    }
    if (p < end && lx->s[p] == '@') {
        size_t at = p++;
        size_t ks = p;
        if (p < end && (isalpha((unsigned char)lx->s[p]) ||
                        lx->s[p] == '_')) {
            while (p < end && (isalnum((unsigned char)lx->s[p]) ||
                               lx->s[p] == '_' || lx->s[p] == '.' ||
                               lx->s[p] == '-')) {
                p++;
            }
        }
        size_t klen = p - ks;
        if (klen == 0) {
            struct sql_pos pos = {(uint32_t)at, 1};
            sql_diag(lx->diags, lx->t, pos, SQL_WARNING, "V7002",
                     "write annotations as '-- @key: value', for example "
                     "'-- @metric: trade_volume'",
                     "annotation without a key: it is kept as a plain "
                     "comment");
        } else {
            while (p < end && (lx->s[p] == ' ' || lx->s[p] == '\t')) {
                p++;
            }
            if (p < end && lx->s[p] == ':') {
                p++;
            }
            while (p < end && (lx->s[p] == ' ' || lx->s[p] == '\t')) {
                p++;
            }
            size_t ve = end;
            while (ve > p && (lx->s[ve - 1] == ' ' || lx->s[ve - 1] == '\t' ||
                              lx->s[ve - 1] == '\r')) {
                ve--;
            }
            add_annotation(lx, at, lx->s + ks, klen, lx->s + p, ve - p);
        }
    }
    lx->i = end;
}

static void lex_block_comment(struct lexer *lx)
{
    size_t start = lx->i;
    size_t p = start + 2;
    while (p + 1 < lx->n && !(lx->s[p] == '*' && lx->s[p + 1] == '/')) {
        p++;
    }
    if (p + 1 >= lx->n) {
        struct sql_pos pos = {(uint32_t)start, 2};
        sql_diag(lx->diags, lx->t, pos, SQL_ERROR, "V1003",
                 "close the comment with '*/'", "unterminated comment");
        push_tok(lx, TK_ERROR, 0, start, 2);
        lx->i = lx->n;
        return;
    }
    lx->i = p + 2;
}

/* 'text' with '' for a quote. */
static void lex_string(struct lexer *lx)
{
    size_t start = lx->i;
    size_t p = start + 1;
    for (;;) {
        if (p >= lx->n) {
            lex_error(lx, start, 1, "V1001",
                      "close the string with a single quote; write a "
                      "quote inside a string as ''",
                      "unterminated string literal");
            /* Most likely a missing quote on this line: go on lexing at
             * the next one, so later statements are still checked. */
            size_t nl = start;
            while (nl < lx->n && lx->s[nl] != '\n') {
                nl++;
            }
            lx->i = nl;
            return;
        }
        if (lx->s[p] == '\'') {
            if (p + 1 < lx->n && lx->s[p + 1] == '\'') {
                p += 2;
                continue;
            }
            break;
        }
        p++;
    }
    push_tok(lx, TK_STRING, 0, start, p + 1 - start);
    lx->i = p + 1;
}

/* "name" or `name`, doubled quote inside. */
static void lex_quoted_ident(struct lexer *lx)
{
    size_t start = lx->i;
    char q = lx->s[start];
    size_t p = start + 1;
    for (;;) {
        if (p >= lx->n || lx->s[p] == '\n') {
            lex_error(lx, start, 1, "V1002",
                      q == '"' ? "close the name with a double quote"
                               : "close the name with a backquote",
                      "unterminated quoted name");
            lx->i = p;
            return;
        }
        if (lx->s[p] == q) {
            if (p + 1 < lx->n && lx->s[p + 1] == q) {
                p += 2;
                continue;
            }
            break;
        }
        p++;
    }
    if (p == start + 1) {
        lex_error(lx, start, 2, "V1009",
                  "a name needs at least one character",
                  "empty quoted name");
        lx->i = p + 1;
        return;
    }
    push_tok(lx, TK_QIDENT, 0, start, p + 1 - start);
    lx->i = p + 1;
}

static int is_duration_unit(const char *s, size_t n)
{
    return (n == 1 && (s[0] == 's' || s[0] == 'm' || s[0] == 'h' ||
                       s[0] == 'd' || s[0] == 'S' || s[0] == 'M' ||
                       s[0] == 'H' || s[0] == 'D')) ||
           (n == 2 && strncasecmp(s, "ms", 2) == 0) ||
           (n == 2 && strncasecmp(s, "us", 2) == 0);
}

static void lex_number(struct lexer *lx)
{
    size_t start = lx->i;
    size_t p = start;
    int type = TK_INTEGER;
    while (p < lx->n && isdigit((unsigned char)lx->s[p])) {
        p++;
    }
    if (p < lx->n && lx->s[p] == '.' &&
        !(p + 1 < lx->n && lx->s[p + 1] == '.')) {
        type = TK_DECIMAL;
        p++;
        while (p < lx->n && isdigit((unsigned char)lx->s[p])) {
            p++;
        }
    }
    if (p < lx->n && (lx->s[p] == 'e' || lx->s[p] == 'E')) {
        size_t q = p + 1;
        if (q < lx->n && (lx->s[q] == '+' || lx->s[q] == '-')) {
            q++;
        }
        if (q < lx->n && isdigit((unsigned char)lx->s[q])) {
            while (q < lx->n && isdigit((unsigned char)lx->s[q])) {
                q++;
            }
            type = TK_FLOAT;
            p = q;
        } else if (q < lx->n && !is_ident_char((unsigned char)lx->s[q]) &&
                   q > p + 1) {
            /* "1e+" : an exponent without digits. */
            lex_error(lx, start, q - start, "V1005",
                      "write an exponent with digits, e.g. 1e3",
                      "invalid number: exponent without digits");
            lx->i = q;
            return;
        }
    }
    if (p < lx->n && is_ident_char((unsigned char)lx->s[p])) {
        size_t us = p;
        while (p < lx->n && is_ident_char((unsigned char)lx->s[p])) {
            p++;
        }
        if (type == TK_INTEGER && is_duration_unit(lx->s + us, p - us)) {
            push_tok(lx, TK_DURATION, 0, start, p - start);
            lx->i = p;
            return;
        }
        char msg[160];
        snprintf(msg, sizeof(msg), "invalid number '%.*s'",
                 (int)(p - start > 40 ? 40 : p - start), lx->s + start);
        lex_error(lx, start, p - start, "V1005",
                  type == TK_INTEGER
                      ? "separate a number from a name with a space; a "
                        "duration is written 250ms, 5s, 5m, 2h or 1d"
                      : "separate a number from a name with a space",
                  msg);
        lx->i = p;
        return;
    }
    push_tok(lx, type, 0, start, p - start);
    lx->i = p;
}

static void lex_word(struct lexer *lx)
{
    size_t start = lx->i;
    size_t p = start;
    while (p < lx->n && is_ident_char((unsigned char)lx->s[p])) {
        p++;
    }
    /* scheme://rest is one URI token (FROM file:///data/t.csv). */
    if (p + 2 < lx->n && lx->s[p] == ':' && lx->s[p + 1] == '/' &&
        lx->s[p + 2] == '/') {
        int scheme_ok = isalpha((unsigned char)lx->s[start]);
        for (size_t k = start; k < p && scheme_ok; k++) {
            if (!isalnum((unsigned char)lx->s[k]) && lx->s[k] != '_') {
                scheme_ok = 0;
            }
        }
        if (scheme_ok) {
            size_t q = p + 3;
            while (q < lx->n && is_uri_char((unsigned char)lx->s[q])) {
                q++;
            }
            push_tok(lx, TK_URI, 0, start, q - start);
            lx->i = q;
            return;
        }
    }
    int kw = sql_kw_lookup(lx->s + start, p - start);
    push_tok(lx, TK_IDENT, kw, start, p - start);
    lx->i = p;
}

static void lex_bad_char(struct lexer *lx)
{
    size_t start = lx->i;
    unsigned char c = (unsigned char)lx->s[start];
    char msg[96];
    const char *hint = "remove it, or put it inside a string '...'";
    if (c == '|') {
        hint = "the string concatenation operator is '||'";
    } else if (c == '!') {
        hint = "write 'not equal' as '<>' or '!='";
    } else if (c == ':') {
        hint = "a cast is written x::type or CAST(x AS type)";
    } else if (c == '"' || c == '`') {
        hint = NULL;
    }
    if (c >= 0x20 && c < 0x7f) {
        snprintf(msg, sizeof(msg), "unexpected character '%c'", c);
    } else {
        snprintf(msg, sizeof(msg), "unexpected byte 0x%02x", c);
    }
    lex_error(lx, start, 1, "V1004", hint, msg);
    lx->i = start + 1;
}

int sql_lex(const struct sql_text *t, struct sql_pool *pool,
            struct velo_sql_diags *diags, struct sql_lexed *out)
{
    memset(out, 0, sizeof(*out));
    struct lexer lx = {
        .t = t, .s = t->text, .n = t->len, .i = 0,
        .pool = pool, .diags = diags, .out = out,
    };
    while (lx.i < lx.n && !lx.oom) {
        unsigned char c = (unsigned char)lx.s[lx.i];
        unsigned char c1 = lx.i + 1 < lx.n ? (unsigned char)lx.s[lx.i + 1]
                                           : 0;
        size_t st = lx.i;
        switch (c) {
        case ' ': case '\t': case '\r': case '\n': case '\f': case '\v':
            lx.i++;
            continue;
        case '-':
            if (c1 == '-') {
                lex_line_comment(&lx);
            } else {
                push_tok(&lx, TK_MINUS, 0, st, 1);
                lx.i++;
            }
            continue;
        case '/':
            if (c1 == '*') {
                lex_block_comment(&lx);
            } else {
                push_tok(&lx, TK_SLASH, 0, st, 1);
                lx.i++;
            }
            continue;
        case '\'':
            lex_string(&lx);
            continue;
        case '"': case '`':
            lex_quoted_ident(&lx);
            continue;
        case '(': push_tok(&lx, TK_LPAREN, 0, st, 1); lx.i++; continue;
        case ')': push_tok(&lx, TK_RPAREN, 0, st, 1); lx.i++; continue;
        case ',': push_tok(&lx, TK_COMMA, 0, st, 1); lx.i++; continue;
        case ';': push_tok(&lx, TK_SEMI, 0, st, 1); lx.i++; continue;
        case '[': push_tok(&lx, TK_LBRACKET, 0, st, 1); lx.i++; continue;
        case ']': push_tok(&lx, TK_RBRACKET, 0, st, 1); lx.i++; continue;
        case '+': push_tok(&lx, TK_PLUS, 0, st, 1); lx.i++; continue;
        case '*': push_tok(&lx, TK_STAR, 0, st, 1); lx.i++; continue;
        case '%': push_tok(&lx, TK_PERCENT, 0, st, 1); lx.i++; continue;
        case '=':
            /* "==" is a common slip; accept it as "=". */
            if (c1 == '=') {
                push_tok(&lx, TK_EQ, 0, st, 2);
                lx.i += 2;
            } else {
                push_tok(&lx, TK_EQ, 0, st, 1);
                lx.i++;
            }
            continue;
        case '.':
            if (isdigit(c1)) {
                lex_number(&lx);
            } else {
                push_tok(&lx, TK_DOT, 0, st, 1);
                lx.i++;
            }
            continue;
        case '|':
            if (c1 == '|') {
                push_tok(&lx, TK_CONCAT, 0, st, 2);
                lx.i += 2;
            } else {
                lex_bad_char(&lx);
            }
            continue;
        case '!':
            if (c1 == '=') {
                push_tok(&lx, TK_NE, 0, st, 2);
                lx.i += 2;
            } else {
                lex_bad_char(&lx);
            }
            continue;
        case ':':
            if (c1 == ':') {
                push_tok(&lx, TK_DCOLON, 0, st, 2);
                lx.i += 2;
            } else {
                lex_bad_char(&lx);
            }
            continue;
        case '<':
            if (c1 == '=') {
                push_tok(&lx, TK_LE, 0, st, 2);
                lx.i += 2;
            } else if (c1 == '>') {
                push_tok(&lx, TK_NE, 0, st, 2);
                lx.i += 2;
            } else {
                push_tok(&lx, TK_LT, 0, st, 1);
                lx.i++;
            }
            continue;
        case '>':
            if (c1 == '=') {
                push_tok(&lx, TK_GE, 0, st, 2);
                lx.i += 2;
            } else {
                push_tok(&lx, TK_GT, 0, st, 1);
                lx.i++;
            }
            continue;
        default:
            break;
        }
        if (isdigit(c)) {
            lex_number(&lx);
        } else if (is_ident_start(c)) {
            lex_word(&lx);
        } else {
            lex_bad_char(&lx);
        }
    }
    push_tok(&lx, TK_EOF, 0, lx.n, 0);
    if (lx.oom) {
        sql_lexed_free(out);
        errno = ENOMEM;
        return VELO_ERR;
    }
    return VELO_OK;
}

void sql_lexed_free(struct sql_lexed *l)
{
    free(l->toks);
    l->toks = NULL;
    l->ntoks = 0;
}
