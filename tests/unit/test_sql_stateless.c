/* dbp_sql_is_stateless: which statements leave nothing behind on their
 * session, in each dialect. No database needed. */
#include <criterion/criterion.h>
#include <stdbool.h>
#include <stddef.h>

#include "dbpipe.h"

enum { PG = 1, MY = 2, BOTH = 3 };

typedef struct stateless_case {
  int where; /* PG, MY or BOTH */
  bool want;
  const char *sql;
} stateless_case;

static const stateless_case cases[] = {
    /* The first keyword. */
    {BOTH, true, "SELECT 1"},
    {BOTH, true, "select 1"},
    {BOTH, true, "SeLeCt 1"},
    {BOTH, true, "  \n\tSELECT 1"},
    {BOTH, true, "(SELECT 1)"},
    {BOTH, true, "((SELECT 1) UNION (SELECT 2))"},
    {BOTH, true, "( ( select 1 ) )"},
    {BOTH, true, "-- a comment\nSELECT 1"},
    {BOTH, true, "/* a comment */ SELECT 1"},
    {PG, true, "/* nested /* comment */ still */ SELECT 1"},
    {MY, true, "# a comment\nSELECT 1"},
    {BOTH, true, "WITH x AS (SELECT 1 AS a) SELECT a FROM x"},
    {PG, true, "WITH d AS (DELETE FROM t RETURNING *) SELECT count(*) FROM d"},
    {BOTH, true, "VALUES (1), (2)"},
    {BOTH, true, "TABLE t"},
    {BOTH, true, "SHOW search_path"},
    {BOTH, true, "INSERT INTO t VALUES (1)"},
    {BOTH, true, "UPDATE t SET a = 1 WHERE b = 2"},
    {BOTH, true, "DELETE FROM t WHERE a = 1"},
    {PG, true, "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE"},
    {MY, true, "REPLACE INTO t VALUES (1)"},
    {PG, false, "REPLACE INTO t VALUES (1)"},
    {BOTH, true, "SELECT 1;"},
    {BOTH, true, "SELECT 1 ;  -- done\n"},
    {BOTH, false, "SELECTX 1"},
    {BOTH, false, "SELECT_1"},
    {BOTH, false, "SET x = 1"},
    {BOTH, false, "BEGIN"},
    {BOTH, false, "COMMIT"},
    {BOTH, false, "CREATE TABLE t (a int)"},
    {BOTH, false, "DROP TABLE t"},
    {BOTH, false, "PREPARE p AS SELECT 1"},
    {PG, false, "LISTEN ch"},
    {PG, false, "DISCARD ALL"},
    {MY, false, "LOCK TABLES t READ"},
    {MY, false, "USE db"},
    {BOTH, false, "1"},
    {BOTH, false, "'SELECT'"},
    {PG, false, "\"select\" 1"},
    {MY, false, "`select` 1"},
    {BOTH, false, ";"},
    {BOTH, false, "("},
    /* Nothing, or not one statement. */
    {BOTH, false, ""},
    {BOTH, false, "   \n "},
    {BOTH, false, "-- only a comment"},
    {BOTH, false, "SELECT 1; SELECT 2"},
    {BOTH, false, "SELECT 1;SELECT 2;"},
    {BOTH, false, "SELECT 1; SET x = 1"},
    {BOTH, false, "SELECT 'unterminated"},
    {BOTH, false, "SELECT 1 /* unterminated"},
    {PG, false, "SELECT \"unterminated"},
    {PG, false, "SELECT $$unterminated"},
    {MY, false, "SELECT `unterminated"},
    /* Temporary tables. */
    {BOTH, false, "CREATE TEMP TABLE t (a int)"},
    {BOTH, false, "CREATE TEMPORARY TABLE t (a int)"},
    {PG, false, "SELECT 1 INTO TEMP t"},
    {PG, false, "SELECT 1 INTO temporary t"},
    {PG, false, "select 1 into Temp t"},
    {PG, true, "SELECT 1 INTO t"}, /* a table, but no session's */
    {BOTH, true, "SELECT 'TEMP'"},
    {BOTH, true, "SELECT 1 /* TEMP */"},
    {BOTH, true, "SELECT 1 -- TEMPORARY\n"},
    {PG, true, "SELECT \"temp\" FROM t"},
    {MY, true, "SELECT `temp` FROM t"},
    {MY, true, "SELECT \"temp\""}, /* a string on MySQL */
    {BOTH, true, "SELECT temperature, attempt, temp_c FROM t"},
    {PG, true, "SELECT $$ TEMP $$"},
    {PG, true, "SELECT $t$ CREATE TEMP TABLE x $t$"},
    {PG, true, "SELECT E'it\\'s TEMP'"},
    {MY, true, "SELECT 'it\\'s TEMP'"},
    {MY, true, "SELECT 'it''s TEMP'"},
    /* PostgreSQL's session settings and advisory locks. */
    {PG, false, "SELECT set_config('a.b', 'c', false)"},
    {PG, false, "SELECT SET_CONFIG('a.b', 'c', false)"},
    {PG, false, "SELECT pg_catalog.set_config('a.b', 'c', false)"},
    {PG, false, "SELECT pg_advisory_lock(1)"},
    {PG, false, "SELECT pg_advisory_lock_shared(1)"},
    {PG, false, "SELECT pg_try_advisory_lock(1)"},
    {PG, false, "SELECT pg_try_advisory_lock_shared(1, 2)"},
    {PG, false, "WITH l AS (SELECT pg_advisory_lock(7)) SELECT * FROM l"},
    {PG, false, "SELECT \"set_config\"('a.b', 'c', false)"},
    {PG, false, "SELECT \"pg_advisory_lock\" /* c */ (1)"},
    {PG, true, "SELECT \"set_config\""},
    {PG, true, "SELECT \"SET_CONFIG\"('a.b', 'c', false)"}, /* another name */
    {PG, true, "SELECT 'set_config(1)'"},
    {PG, true, "SELECT $$pg_advisory_lock(1)$$"},
    {PG, true, "SELECT pg_advisory_xact_lock(1)"},
    {PG, true, "SELECT pg_advisory_unlock_all()"},
    {PG, true, "SELECT set_configuration FROM t"},
    {PG, true, "SELECT x$set_config FROM t"},
    {MY, true, "SELECT set_config('a', 'b', false)"}, /* not MySQL's */
    /* MySQL's user variables and named locks. */
    {MY, false, "SELECT @x := 1"},
    {MY, false, "SELECT @x:=1"},
    {MY, false, "SELECT 1 INTO @v"},
    {MY, false, "SELECT a FROM t WHERE b = @x"},
    {MY, false, "SELECT @`odd name`"},
    {MY, false, "SELECT @'odd name'"},
    {MY, false, "INSERT INTO t VALUES (@x)"},
    {MY, true, "SELECT @@version"},
    {MY, true, "SELECT @@SESSION.sql_mode, @@global.max_connections"},
    {MY, true, "SELECT '@x'"},
    {MY, true, "SELECT \"@x\""},
    {MY, true, "SELECT `@x` FROM t"},
    {MY, true, "SELECT 1 -- @x\n"},
    {MY, true, "SELECT 1 # @x"},
    {MY, true, "SELECT 1 /* @x */"},
    {MY, false, "SELECT @@version, @x"},
    {MY, false, "SELECT GET_LOCK('a', 1)"},
    {MY, false, "select get_lock('a', 1)"},
    {MY, false, "SELECT `GET_LOCK`('a', 1)"},
    {MY, true, "SELECT 'GET_LOCK(1)'"},
    {MY, true, "SELECT RELEASE_ALL_LOCKS()"},
    {MY, true, "SELECT 1 INTO OUTFILE '/tmp/x'"},
    {PG, true, "SELECT @ -5"}, /* an operator on PostgreSQL */
    {PG, true, "SELECT '{1}'::int[] @> '{1}'"},
    {PG, true, "SELECT get_lock FROM t"}, /* not PostgreSQL's */
    /* MySQL's executable comments are code. */
    {MY, false, "/*! SET @x=1 */ SELECT 1"},
    {MY, false, "/*!40101 SET @x=1 */ SELECT 1"},
    {MY, false, "SELECT 1 /*!40101 , @x */"},
    {MY, false, "SELECT /*M!100100 GET_LOCK('a', 1) */ 1"},
    {MY, false, "/*!40101 CREATE TEMPORARY TABLE t (a int) */"},
    {MY, true, "/*!40101 SELECT */ 1"},
    {MY, true, "SELECT /*!40101 SQL_NO_CACHE */ 1"},
    {MY, false, "SELECT 1 /*! unterminated"},
    {PG, true, "/*! SET x */ SELECT 1"}, /* a comment on PostgreSQL */
    {MY, true, "SELECT /*+ MAX_EXECUTION_TIME(1000) */ 1"},
    /* Parameters. */
    {PG, true, "SELECT $1::text, $2"},
    {MY, true, "SELECT ?, ?"},
};

static const char *where_name(int kind) {
  return kind == PG ? "pg" : "my";
}

Test(sql_stateless, the_table) {
  size_t n = sizeof cases / sizeof cases[0];
  size_t pg = 0, my = 0;
  for (size_t i = 0; i < n; i++) {
    const stateless_case *c = &cases[i];
    for (int kind = PG; kind <= MY; kind++) {
      if ((c->where & kind) == 0) continue;
      bool got = dbp_sql_is_stateless((dbp_db_kind)kind, c->sql);
      cr_expect_eq(got, c->want, "[%s] %s: got %s", where_name(kind), c->sql,
                   got ? "stateless" : "not stateless");
      if (kind == PG)
        pg++;
      else
        my++;
    }
  }
  cr_expect_geq(pg, 60);
  cr_expect_geq(my, 60);
}

Test(sql_stateless, no_sql_or_unknown_kind) {
  cr_expect_not(dbp_sql_is_stateless(DBP_DB_PG, NULL));
  cr_expect_not(dbp_sql_is_stateless(DBP_DB_MYSQL, NULL));
  cr_expect_not(dbp_sql_is_stateless((dbp_db_kind)0, "SELECT 1"));
  cr_expect_not(dbp_sql_is_stateless((dbp_db_kind)7, "SELECT 1"));
}

Test(sql_stateless, words_end_at_non_ascii_names) {
  /* A multibyte character continues a name. */
  cr_expect(dbp_sql_is_stateless(DBP_DB_PG, "SELECT temp\xc3\xa9 FROM t"));
  cr_expect(dbp_sql_is_stateless(DBP_DB_MYSQL, "SELECT get_lock\xc3\xa9 FROM t"));
  cr_expect_not(dbp_sql_is_stateless(DBP_DB_PG, "SELECT\xc3\xa9 1"));
}
