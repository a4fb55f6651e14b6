/* Statement-level checks on SQL text, in each database's dialect.
 *
 * dbp_sql_check_single tells one statement from several without a parser:
 * a small lexer per dialect skips what can hide a ';' (string literals,
 * quoted identifiers, comments, PostgreSQL's dollar quoting) and notes
 * where code is. A statement ends at a ';' outside all of those; anything
 * but whitespace and comments after it is a second statement.
 *
 *   PostgreSQL  '...' with '' inside; E'...' also with backslash escapes;
 *               "ident" with ""; $$...$$ and $tag$...$tag$ (a '$' after an
 *               identifier character or before a digit, as in a$b or $1,
 *               starts none); -- to the end of the line; block comments
 *               (slash-star to star-slash), nested.
 *   MySQL       '...' and "..." with backslash escapes and doubled quotes;
 *               `ident` with ``; -- followed by a space, a control character
 *               or the end; # to the end of the line; block comments, not
 *               nested. A block comment that opens with '!' or "M!" right
 *               after the slash-star is an executable comment: its text is
 *               code and is lexed as such.
 *
 * The lexer follows the servers' defaults (standard_conforming_strings on;
 * MySQL without NO_BACKSLASH_ESCAPES). Text that ends inside a literal,
 * identifier or comment is reported, since the server would refuse it too
 * and no statement boundary can be trusted after it.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "db/driver.h"
#include "dbpipe/db.h"

/* The lexer's position: an offset plus the line and column it is on. */
typedef struct lexer {
  const char *s;
  size_t i;
  size_t line, col; /* 1-based; col counts bytes */
  bool pg;
} lexer;

static void sql_errf(char *errbuf, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void sql_errf(char *errbuf, size_t errlen, const char *fmt, ...) {
  if (errbuf == NULL || errlen == 0) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(errbuf, errlen, fmt, ap);
  va_end(ap);
}

static char peek(const lexer *lx, size_t ahead) {
  /* The text is NUL-terminated: reading stops at the first NUL, so a look
   * past it never happens. */
  for (size_t k = 0; k < ahead; k++)
    if (lx->s[lx->i + k] == '\0') return '\0';
  return lx->s[lx->i + ahead];
}

/* Moves one byte on, keeping the line and column. */
static void step(lexer *lx) {
  if (lx->s[lx->i] == '\n') {
    lx->line++;
    lx->col = 1;
  } else {
    lx->col++;
  }
  lx->i++;
}

static void skip(lexer *lx, size_t n) {
  while (n-- > 0 && lx->s[lx->i] != '\0') step(lx);
}

static bool is_space(char ch) {
  return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v';
}

/* Letters, digits, '_', '$' (PostgreSQL and MySQL both allow it inside
 * names) and any byte of a multibyte UTF-8 character. */
static bool is_ident(char ch) {
  unsigned char u = (unsigned char)ch;
  return (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || (u >= '0' && u <= '9') || u == '_' ||
         u == '$' || u >= 0x80;
}

static bool is_ident_start(char ch) {
  unsigned char u = (unsigned char)ch;
  return (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || u == '_' || u >= 0x80;
}

/* Skips a quoted run that starts at the opening quote q. A doubled quote
 * stands for itself; with `backslash`, a backslash escapes the next byte.
 * Returns false when the text ends first. */
static bool skip_quoted(lexer *lx, char q, bool backslash) {
  step(lx); /* the opening quote */
  for (;;) {
    char ch = peek(lx, 0);
    if (ch == '\0') return false;
    if (backslash && ch == '\\') {
      step(lx);
      if (peek(lx, 0) == '\0') return false;
      step(lx);
      continue;
    }
    step(lx);
    if (ch == q) {
      if (peek(lx, 0) != q) return true;
      step(lx); /* a doubled quote */
    }
  }
}

/* At a '$': the length of a dollar-quote delimiter ("$$", "$tag$") that
 * starts here, or 0 when this '$' starts none. */
static size_t dollar_tag(const lexer *lx) {
  if (lx->i > 0 && is_ident(lx->s[lx->i - 1])) return 0; /* a$b$ is a name */
  size_t k = 1;
  if (lx->s[lx->i + k] != '$') {
    if (!is_ident_start(lx->s[lx->i + k])) return 0; /* $1 is a parameter */
    while (lx->s[lx->i + k] != '\0' && lx->s[lx->i + k] != '$') {
      char ch = lx->s[lx->i + k];
      if (!is_ident(ch) || ch == '$') return 0;
      k++;
    }
    if (lx->s[lx->i + k] != '$') return 0;
  }
  return k + 1;
}

/* Skips a dollar-quoted string whose delimiter is `n` bytes long. Returns
 * false when the closing delimiter never comes. */
static bool skip_dollar(lexer *lx, size_t n) {
  const char *tag = lx->s + lx->i;
  skip(lx, n);
  for (;;) {
    const char *hit = strstr(lx->s + lx->i, "$");
    if (hit == NULL) return false;
    skip(lx, (size_t)(hit - (lx->s + lx->i)));
    if (strncmp(lx->s + lx->i, tag, n) == 0) {
      skip(lx, n);
      return true;
    }
    step(lx);
  }
}

/* Skips a block comment from its opening slash-star. PostgreSQL nests them;
 * MySQL does not. Returns false when the text ends first. */
static bool skip_block(lexer *lx) {
  int depth = 0;
  for (;;) {
    char ch = peek(lx, 0);
    if (ch == '\0') return false;
    if (ch == '/' && peek(lx, 1) == '*' && (depth == 0 || lx->pg)) {
      depth++;
      skip(lx, 2);
    } else if (ch == '*' && peek(lx, 1) == '/') {
      skip(lx, 2);
      if (--depth == 0) return true;
    } else {
      step(lx);
    }
  }
}

static void skip_line(lexer *lx) {
  while (peek(lx, 0) != '\0' && peek(lx, 0) != '\n') step(lx);
}

/* Copies up to 30 bytes of the text at s, up to the end of its line, for a
 * message. */
static void snippet(const char *s, char *buf, size_t len) {
  size_t n = strcspn(s, "\r\n");
  bool cut = n > 30;
  if (cut) n = 30;
  snprintf(buf, len, "%.*s%s", (int)n, s, cut ? "..." : "");
}

/* What the lexer finds next. */
typedef enum tok_kind {
  TK_END,         /* the end of the text */
  TK_BLANK,       /* whitespace or a comment: part of no statement */
  TK_EXEC_OPEN,   /* MySQL: an executable comment's opener and version */
  TK_EXEC_CLOSE,  /* MySQL: the end of an executable comment */
  TK_QUOTED,      /* a literal or a quoted name */
  TK_SEMI,        /* a ';' in code */
  TK_CODE,        /* a word (a name or keyword) or one other byte of code */
  TK_BAD_COMMENT, /* a comment that never ends */
  TK_BAD_QUOTED,  /* a literal or quoted name that never ends (`what`) */
} tok_kind;

typedef struct tok {
  tok_kind kind;
  size_t at, len;   /* where it starts in the text, and its length */
  size_t line, col; /* where it starts */
  char quote;       /* TK_QUOTED: its opening quote ('$' for dollar quoting) */
  const char *what; /* TK_BAD_QUOTED: what kind of run it is */
} tok;

/* Lexes the next token at lx into t. `exec_comment` is the state of
 * MySQL's executable comments, kept by the caller between calls. */
static void lex_next(lexer *lx, bool *exec_comment, tok *t) {
  const char *sql = lx->s;
  size_t at = lx->i;
  char ch = peek(lx, 0);
  *t = (tok){.kind = TK_CODE, .at = at, .line = lx->line, .col = lx->col};
  if (ch == '\0') {
    t->kind = TK_END;
    return;
  }
  if (is_space(ch)) {
    step(lx);
    t->kind = TK_BLANK;
  } else if ((ch == '-' && peek(lx, 1) == '-' && (lx->pg || (unsigned char)peek(lx, 2) <= ' ')) ||
             (!lx->pg && ch == '#')) {
    skip_line(lx);
    t->kind = TK_BLANK;
  } else if (!lx->pg && !*exec_comment && ch == '/' && peek(lx, 1) == '*' &&
             (peek(lx, 2) == '!' || (peek(lx, 2) == 'M' && peek(lx, 3) == '!'))) {
    /* The opener and the server version after it (40101 in a MySQL dump,
     * 100100 after MariaDB's "M!") are no code themselves; the text after
     * them is. */
    *exec_comment = true;
    skip(lx, peek(lx, 2) == '!' ? 3 : 4);
    while (peek(lx, 0) >= '0' && peek(lx, 0) <= '9') step(lx);
    t->kind = TK_EXEC_OPEN;
  } else if (ch == '/' && peek(lx, 1) == '*') {
    t->kind = skip_block(lx) ? TK_BLANK : TK_BAD_COMMENT;
  } else if (*exec_comment && ch == '*' && peek(lx, 1) == '/') {
    *exec_comment = false; /* its text was lexed as code already */
    skip(lx, 2);
    t->kind = TK_EXEC_CLOSE;
  } else if (ch == '\'') {
    /* PostgreSQL: an E right before the quote (and not the end of a
     * longer name) makes an escape string. */
    bool e = !lx->pg || (at > 0 && (sql[at - 1] == 'E' || sql[at - 1] == 'e') &&
                         (at == 1 || !is_ident(sql[at - 2])));
    t->kind = skip_quoted(lx, '\'', e) ? TK_QUOTED : TK_BAD_QUOTED;
    t->what = "string literal";
  } else if (ch == '"') {
    t->kind = skip_quoted(lx, '"', !lx->pg) ? TK_QUOTED : TK_BAD_QUOTED;
    t->what = lx->pg ? "quoted identifier" : "string literal";
  } else if (!lx->pg && ch == '`') {
    t->kind = skip_quoted(lx, '`', false) ? TK_QUOTED : TK_BAD_QUOTED;
    t->what = "quoted identifier";
  } else if (lx->pg && ch == '$' && dollar_tag(lx) > 0) {
    t->kind = skip_dollar(lx, dollar_tag(lx)) ? TK_QUOTED : TK_BAD_QUOTED;
    t->what = "dollar-quoted string";
  } else if (ch == ';') {
    step(lx);
    t->kind = TK_SEMI;
  } else if (is_ident_start(ch)) {
    /* A word. No other token can begin inside one: a '$' after an
     * identifier character starts no dollar quote. */
    while (is_ident(peek(lx, 0))) step(lx);
  } else {
    step(lx);
  }
  if (t->kind == TK_QUOTED) t->quote = ch;
  t->len = lx->i - at;
}

int dbp_sql_check_single(dbp_db_kind kind, const char *sql, char *errbuf, size_t errlen) {
  if (errbuf != NULL && errlen > 0) errbuf[0] = '\0';
  if (kind != DBP_DB_PG && kind != DBP_DB_MYSQL) {
    sql_errf(errbuf, errlen, "unknown database kind %d", (int)kind);
    return DBP_EINVAL;
  }
  if (sql == NULL) {
    sql_errf(errbuf, errlen, "no SQL given");
    return DBP_EINVAL;
  }
  lexer lx = {.s = sql, .i = 0, .line = 1, .col = 1, .pg = kind == DBP_DB_PG};
  bool code = false;  /* the current statement has code */
  bool ended = false; /* a ';' ended the first statement */
  size_t semi_line = 0, semi_col = 0;
  bool exec_comment = false; /* inside MySQL's executable comment */
  for (;;) {
    tok t;
    lex_next(&lx, &exec_comment, &t);
    if (t.kind == TK_END) break;
    /* Whitespace and comments first: they belong to no statement. */
    if (t.kind == TK_BLANK || t.kind == TK_EXEC_CLOSE) continue;
    if (t.kind == TK_BAD_COMMENT) {
      sql_errf(errbuf, errlen, "unterminated comment starting at line %zu, column %zu", t.line,
               t.col);
      return DBP_EINVAL;
    }
    /* Anything else is code: after the first statement's ';' it starts a
     * second one. */
    if (ended) {
      char snip[40];
      snippet(sql + t.at, snip, sizeof snip);
      sql_errf(errbuf, errlen,
               "more than one statement: a second one begins at line %zu, column %zu (\"%s\") "
               "after the ';' at line %zu, column %zu",
               t.line, t.col, snip, semi_line, semi_col);
      return DBP_EINVAL;
    }
    if (t.kind == TK_EXEC_OPEN) continue;
    if (t.kind == TK_BAD_QUOTED) {
      sql_errf(errbuf, errlen, "unterminated %s starting at line %zu, column %zu", t.what, t.line,
               t.col);
      return DBP_EINVAL;
    }
    if (t.kind == TK_SEMI) {
      if (!code) {
        sql_errf(errbuf, errlen, "empty statement before the ';' at line %zu, column %zu", t.line,
                 t.col);
        return DBP_EINVAL;
      }
      ended = true;
      semi_line = t.line;
      semi_col = t.col;
      continue;
    }
    code = true;
  }
  if (exec_comment) {
    sql_errf(errbuf, errlen, "unterminated executable comment");
    return DBP_EINVAL;
  }
  if (!code) {
    sql_errf(errbuf, errlen, "empty SQL: nothing but whitespace and comments");
    return DBP_EINVAL;
  }
  return 0;
}

/* ---- statements that leave no session state ---- */

/* True when the n bytes at w spell `word`, ASCII letters in either case. */
static bool word_is(const char *w, size_t n, const char *word) {
  size_t k = 0;
  for (; k < n; k++) {
    unsigned char a = (unsigned char)w[k], b = (unsigned char)word[k];
    if (b == '\0') return false;
    if (a >= 'A' && a <= 'Z') a = (unsigned char)(a - 'A' + 'a');
    if (b >= 'A' && b <= 'Z') b = (unsigned char)(b - 'A' + 'a');
    if (a != b) return false;
  }
  return word[k] == '\0';
}

static bool word_in(const char *w, size_t n, const char *const *list) {
  for (; *list != NULL; list++)
    if (word_is(w, n, *list)) return true;
  return false;
}

static const char *const first_words_pg[] = {"select", "with",   "values", "table", "show",
                                             "insert", "update", "delete", "merge", NULL};
static const char *const first_words_my[] = {"select", "with",    "values", "table",
                                             "show",   "insert",  "update", "delete",
                                             "merge",  "replace", NULL};
/* Words that keep state in a session wherever they appear in code. */
static const char *const state_words_pg[] = {"temp",
                                             "temporary",
                                             "set_config",
                                             "pg_advisory_lock",
                                             "pg_advisory_lock_shared",
                                             "pg_try_advisory_lock",
                                             "pg_try_advisory_lock_shared",
                                             NULL};
static const char *const state_words_my[] = {"temp", "temporary", "get_lock", NULL};

/* True when the quoted name t (a PostgreSQL "name" or a MySQL `name`)
 * reads as one of the function names among `list` once unquoted: quoting
 * a function's name still calls it. PostgreSQL keeps a quoted name's case
 * (the functions are lowercase); MySQL ignores case in function names. */
static bool quoted_is_state_fn(const char *sql, const tok *t, bool pg, const char *const *list) {
  if (t->quote != (pg ? '"' : '`') || t->len < 2) return false;
  const char *name = sql + t->at + 1;
  size_t n = t->len - 2;
  if (memchr(name, t->quote, n) != NULL) return false; /* no such name has a quote */
  for (const char *const *w = list; *w != NULL; w++) {
    if (strncmp(*w, "temp", 4) == 0) continue; /* keywords, not functions */
    if (pg ? strlen(*w) == n && memcmp(name, *w, n) == 0 : word_is(name, n, *w)) return true;
  }
  return false;
}

bool dbp_sql_is_stateless(dbp_db_kind kind, const char *sql) {
  /* NULL, empty, unterminated or several statements: never. */
  if (dbp_sql_check_single(kind, sql, NULL, 0) != 0) return false;
  bool pg = kind == DBP_DB_PG;
  const char *const *first_words = pg ? first_words_pg : first_words_my;
  const char *const *state_words = pg ? state_words_pg : state_words_my;
  lexer lx = {.s = sql, .i = 0, .line = 1, .col = 1, .pg = pg};
  bool exec_comment = false;
  bool first = true;         /* the first keyword is still to come */
  bool quoted_state = false; /* the last token was a quoted state function's name */
  for (;;) {
    tok t;
    lex_next(&lx, &exec_comment, &t);
    switch (t.kind) {
      case TK_END:
        return !first;
      case TK_BLANK:
      case TK_EXEC_OPEN:
      case TK_EXEC_CLOSE:
        continue;
      case TK_BAD_COMMENT:
      case TK_BAD_QUOTED:
        return false; /* (the check above refused these already) */
      case TK_SEMI:
      case TK_QUOTED:
        if (first) return false;
        quoted_state = t.kind == TK_QUOTED && quoted_is_state_fn(sql, &t, pg, state_words);
        continue;
      case TK_CODE:
        break;
    }
    const char *w = sql + t.at;
    if (quoted_state && w[0] == '(') return false; /* "set_config"(...) */
    quoted_state = false;
    if (first) {
      if (w[0] == '(') continue;
      if (!is_ident_start(w[0]) || !word_in(w, t.len, first_words)) return false;
      first = false;
      continue;
    }
    if (is_ident_start(w[0]) && word_in(w, t.len, state_words)) return false;
    if (!pg && w[0] == '@') {
      /* @@name is a system variable: nothing of the session's own. */
      if (peek(&lx, 0) != '@') return false;
      step(&lx);
    }
  }
}

/* ---- statements that write nothing ---- */

static const char *const read_first_words[] = {"select", "with", "values", "table", "show", NULL};
/* Words of writing and locking: DML anywhere (a WITH may hold some),
 * SELECT ... INTO (a new table) and the row locks (FOR UPDATE, FOR NO KEY
 * UPDATE, FOR SHARE, FOR KEY SHARE); and what a shared transaction would
 * change or a rolled-back one not undo: sequences (nextval, setval) and
 * the transaction's id. A column of such a name, unquoted, only costs the
 * statement its place in a shared segment. */
static const char *const write_words[] = {"insert",
                                          "update",
                                          "delete",
                                          "merge",
                                          "into",
                                          "share",
                                          "replace",
                                          "nextval",
                                          "setval",
                                          "txid_current",
                                          "txid_current_if_assigned",
                                          "pg_current_xact_id",
                                          "pg_current_xact_id_if_assigned",
                                          NULL};

/* The read-only scan of a text known to be stateless. */
static bool writes_nothing(dbp_db_kind kind, const char *sql) {
  bool pg = kind == DBP_DB_PG;
  lexer lx = {.s = sql, .i = 0, .line = 1, .col = 1, .pg = pg};
  bool exec_comment = false;
  bool first = true;
  for (;;) {
    tok t;
    lex_next(&lx, &exec_comment, &t);
    if (t.kind == TK_END) return !first;
    if (t.kind != TK_CODE) continue;
    const char *w = sql + t.at;
    if (!is_ident_start(w[0])) continue;
    if (first) {
      if (!word_in(w, t.len, read_first_words)) return false;
      first = false;
      continue;
    }
    if (word_in(w, t.len, write_words)) return false;
  }
}

bool dbp__sql_classify(dbp_db_kind kind, const char *sql, bool *read_only) {
  bool stateless = dbp_sql_is_stateless(kind, sql);
  *read_only = stateless && writes_nothing(kind, sql);
  return stateless;
}

bool dbp__sql_is_read_only(dbp_db_kind kind, const char *sql) {
  bool read_only;
  dbp__sql_classify(kind, sql, &read_only);
  return read_only;
}

uint64_t dbp__sql_hash(const char *s, size_t n) {
  uint64_t h = UINT64_C(1469598103934665603);
  for (size_t i = 0; i < n; i++) {
    h ^= (unsigned char)s[i];
    h *= UINT64_C(1099511628211);
  }
  return h;
}
