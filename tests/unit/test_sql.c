/* dbp_sql_check_single: one statement or several, in each dialect. No
 * database needed. */
#include <criterion/criterion.h>
#include <string.h>

#include "dbpipe.h"

#define PG DBP_DB_PG
#define MY DBP_DB_MYSQL

static void single(dbp_db_kind kind, const char *sql) {
  char err[256] = "unset";
  int rc = dbp_sql_check_single(kind, sql, err, sizeof err);
  cr_expect_eq(rc, 0, "[%s] %s: %s", kind == PG ? "pg" : "my", sql, err);
  cr_expect_str_eq(err, "", "no message on success");
}

/* Expects DBP_EINVAL with a message containing `what`. */
static void refused(dbp_db_kind kind, const char *sql, const char *what) {
  char err[256] = "";
  int rc = dbp_sql_check_single(kind, sql, err, sizeof err);
  cr_expect_eq(rc, DBP_EINVAL, "[%s] accepted: %s", kind == PG ? "pg" : "my", sql);
  cr_expect(strstr(err, what) != NULL, "[%s] %s: message '%s' lacks '%s'", kind == PG ? "pg" : "my",
            sql, err, what);
}

static void both_single(const char *sql) {
  single(PG, sql);
  single(MY, sql);
}

static void both_refused(const char *sql, const char *what) {
  refused(PG, sql, what);
  refused(MY, sql, what);
}

Test(sql, plain_statements) {
  both_single("SELECT 1");
  both_single("SELECT 1;");
  both_single("  SELECT 1 ;  \n\t ");
  both_single("SELECT a, b FROM t WHERE a > 1 ORDER BY b");
  both_single("\n\nSELECT\n  1\n");
}

Test(sql, a_second_statement_is_refused_where_it_begins) {
  refused(PG, "SELECT 1; SELECT 2",
          "more than one statement: a second one begins at line 1, column 11 (\"SELECT 2\") "
          "after the ';' at line 1, column 9");
  refused(MY, "SELECT 1;\n  DROP TABLE t", "begins at line 2, column 3 (\"DROP TABLE t\")");
  both_refused("SELECT 1;SELECT 2;", "line 1, column 10");
  both_refused("SELECT 1; x", "(\"x\")");
  both_refused("SELECT 1;;", "begins at line 1, column 10 (\";\")");
  both_refused("SELECT 1; 'a'", "a second one begins at line 1, column 11");
  both_refused("SELECT 1; /* c */ SELECT 2", "column 19");
  both_refused("SELECT 1;\n-- c\nSELECT 2", "line 3, column 1");
  /* A long second statement is cut in the message. */
  both_refused("SELECT 1; SELECT 'a very long literal that goes on and on'",
               "(\"SELECT 'a very long literal th...\")");
}

Test(sql, empty_is_refused) {
  both_refused("", "empty SQL");
  both_refused("   \n\t ", "empty SQL");
  both_refused("-- nothing\n", "empty SQL");
  both_refused("/* nothing */", "empty SQL");
  both_refused(";", "empty statement before the ';' at line 1, column 1");
  both_refused("  /* c */ ; SELECT 1", "empty statement before the ';' at line 1, column 11");
  refused(MY, "# nothing", "empty SQL");
  both_refused(NULL, "no SQL");
  char err[64];
  cr_expect_eq(dbp_sql_check_single((dbp_db_kind)9, "SELECT 1", err, sizeof err), DBP_EINVAL);
  /* No buffer for the message is fine. */
  cr_expect_eq(dbp_sql_check_single(PG, "SELECT 1; SELECT 2", NULL, 0), DBP_EINVAL);
  cr_expect_eq(dbp_sql_check_single(PG, "SELECT 1", NULL, 0), 0);
}

Test(sql, trailing_comments_and_whitespace_are_fine) {
  both_single("SELECT 1; -- done\n");
  both_single("SELECT 1; /* done */");
  both_single("SELECT 1 /* ; */;");
  both_single("-- leading\nSELECT 1");
  single(MY, "SELECT 1; # done");
  single(MY, "SELECT 1; -- done");
  single(MY, "SELECT 1; --");
}

Test(sql, pg_string_literals) {
  single(PG, "SELECT ';'");
  single(PG, "SELECT 'it''s; fine'");
  single(PG, "SELECT '''; SELECT 2; '''");
  /* A backslash is an ordinary character in a standard string ... */
  refused(PG, "SELECT 'a\\'; SELECT 1 -- '", "second one begins at line 1, column 14");
  refused(PG, "SELECT 'a\\'; SELECT 2", "second one begins at line 1, column 14");
  /* ... but escapes the quote in an E'' string. */
  single(PG, "SELECT E'a\\'; SELECT 2'");
  single(PG, "SELECT e'\\\\'; ");
  refused(PG, "SELECT E'\\\\'; SELECT 2", "second one");
  single(PG, "SELECT E'it''s'");
  /* An E that ends a name is no prefix. */
  refused(PG, "SELECT some'a\\'; SELECT 2", "second one");
  single(PG, "SELECT U&'d\\0061t\\+000061;'");
  single(PG, "SELECT B'1010', X'1F;'");
  single(PG, "SELECT 'multi\nline; string'");
  refused(PG, "SELECT 'open", "unterminated string literal starting at line 1, column 8");
  refused(PG, "SELECT E'open\\'", "unterminated string literal");
}

Test(pg_dialect, quoted_identifiers) {
  single(PG, "SELECT 1 AS \";\"");
  single(PG, "SELECT 1 AS \"a\"\";\"\"b\"");
  refused(PG, "SELECT \"a\\\"; SELECT 1 -- \"", "second one"); /* no escapes */
  refused(PG, "SELECT \"open", "unterminated quoted identifier");
  /* Backquotes mean nothing on PostgreSQL. */
  refused(PG, "SELECT `a;b`", "second one");
}

Test(pg_dialect, dollar_quoting) {
  single(PG, "SELECT $$;$$");
  single(PG, "SELECT $$ it's; \"fine\" $$");
  single(PG, "DO $body$ BEGIN PERFORM 1; PERFORM 2; END $body$");
  single(PG, "DO $a$ SELECT $b$ ; $b$; $a$");
  single(PG, "SELECT $x$ $y$ ; $x$");
  single(PG, "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $f$ SELECT 1; $f$;");
  refused(PG, "SELECT $$;$$; SELECT 2", "second one begins at line 1, column 15");
  refused(PG, "SELECT $q$ open", "unterminated dollar-quoted string");
  refused(PG, "SELECT $q$ open $Q$", "unterminated dollar-quoted string");
  /* Parameters and names with '$' start no quote. */
  single(PG, "SELECT $1, $2 FROM t WHERE a = $1");
  refused(PG, "SELECT $1; SELECT $2", "second one");
  single(PG, "SELECT a$b$ FROM t");
  refused(PG, "SELECT a$b$; SELECT $b$", "second one");
  single(PG, "SELECT $_$;$_$");
  single(PG, "SELECT $\xc3\xa9$;$\xc3\xa9$");
}

Test(pg_dialect, comments) {
  single(PG, "SELECT 1 -- ; SELECT 2");
  single(PG, "SELECT 1 --; SELECT 2");
  single(PG, "SELECT 1 /* ; SELECT 2 */");
  single(PG, "SELECT 1 /* outer /* inner ; */ still ; comment */");
  refused(PG, "SELECT 1 /* outer /* inner */ ; SELECT 2", "unterminated comment");
  refused(PG, "SELECT 1 /* open", "unterminated comment starting at line 1, column 10");
  single(PG, "SELECT 1 - -1");
  single(PG, "SELECT '--', '/*'");
  /* MySQL's # is an operator on PostgreSQL. */
  refused(PG, "SELECT 1 # 2; SELECT 3", "second one");
}

Test(my_dialect, string_literals) {
  single(MY, "SELECT ';'");
  single(MY, "SELECT \";\"");
  single(MY, "SELECT 'it''s; fine', \"say \"\"hi;\"\"\"");
  single(MY, "SELECT 'a\\'; SELECT 2'");
  single(MY, "SELECT \"a\\\"; SELECT 2\"");
  single(MY, "SELECT '\\\\'");
  refused(MY, "SELECT '\\\\'; SELECT 2", "second one begins at line 1, column 14");
  single(MY, "SELECT _utf8mb4'x;y', N'a;b', X'3B'");
  refused(MY, "SELECT 'open\\'", "unterminated string literal");
  refused(MY, "SELECT \"open", "unterminated string literal");
  /* No dollar quoting on MySQL. */
  refused(MY, "SELECT $$;$$", "second one");
}

Test(my_dialect, quoted_identifiers) {
  single(MY, "SELECT 1 AS `;`");
  single(MY, "SELECT 1 AS `a``;``b`");
  refused(MY, "SELECT `a\\`; SELECT 2 -- `", "second one"); /* no escapes */
  refused(MY, "SELECT `a\\`; SELECT 2", "second one");
  refused(MY, "SELECT `open", "unterminated quoted identifier");
}

Test(my_dialect, comments) {
  single(MY, "SELECT 1 -- ; SELECT 2");
  single(MY, "SELECT 1 --\t; SELECT 2");
  single(MY, "SELECT 1 # ; SELECT 2");
  single(MY, "SELECT 1 /* ; SELECT 2 */");
  /* "--" without a space after it is two minus signs. */
  refused(MY, "SELECT 1 --1; SELECT 2", "second one begins at line 1, column 15");
  /* Block comments do not nest on MySQL. */
  refused(MY, "SELECT 1 /* a /* b */ ; SELECT 2", "second one");
  refused(MY, "SELECT 1 /* open", "unterminated comment");
}

Test(my_dialect, executable_comments_are_code) {
  single(MY, "/*!40101 SET NAMES utf8mb4 */");
  single(MY, "/*!40101 SET NAMES utf8mb4 */;");
  single(MY, "SELECT /*! STRAIGHT_JOIN */ 1");
  single(MY, "/*M!100100 SELECT 1 */");
  refused(MY, "SELECT 1; /*!40101 SET NAMES utf8mb4 */",
          "second one begins at line 1, column 11 (\"/*!40101 SET NAMES utf8mb4 */\")");
  refused(MY, "/*!40101 SET x = 1; SET y = 2 */", "second one begins at line 1, column 21");
  single(MY, "/*!40101 SELECT ';' */");
  refused(MY, "/*! SELECT 1", "unterminated executable comment");
  /* The bare comment holds nothing but whitespace: empty. */
  refused(MY, "/*!*/", "empty SQL");
  /* On PostgreSQL it is an ordinary comment. */
  refused(PG, "/*!40101 SET NAMES utf8mb4 */", "empty SQL");
}

Test(sql, positions_count_lines_and_bytes) {
  refused(PG, "SELECT\n  'a\nb';\n\n   SELECT 2", "begins at line 5, column 4");
  refused(MY, "SELECT 1 -- x\n;\n\tSELECT 2", "begins at line 3, column 2");
  refused(PG, "SELECT '\xc3\xa9'; X", "column 14");
}
