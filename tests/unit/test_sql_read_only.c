/* dbp__sql_is_read_only: which PostgreSQL statements may share a pipeline
 * segment (one Sync, one implicit transaction) with their neighbours.
 * Anything that writes, locks rows, advances a sequence or takes a
 * transaction id must not; a false "no" only costs speed. */
#include <criterion/criterion.h>
#include <stdbool.h>

#include "db/driver.h"
#include "dbpipe.h"

typedef struct ro_case {
  bool want;
  const char *sql;
} ro_case;

static const ro_case cases[] = {
    {true, "SELECT 1"},
    {true, "select abalance from pgbench_accounts where aid = $1"},
    {true, "(SELECT 1) UNION ALL (SELECT 2)"},
    {true, "WITH x AS (SELECT 1 AS a) SELECT a FROM x"},
    {true, "VALUES (1), (2)"},
    {true, "TABLE t"},
    {true, "SHOW search_path"},
    {true, "SELECT 'insert into t values (1)'"},
    {true, "SELECT 1 -- for update"},
    {true, "SELECT \"update\" FROM t"},
    {true, "SELECT now(), statement_timestamp()"},
    {false, "INSERT INTO t VALUES (1)"},
    {false, "UPDATE t SET a = 1"},
    {false, "DELETE FROM t"},
    {false, "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE"},
    {false, "WITH d AS (DELETE FROM t RETURNING *) SELECT count(*) FROM d"},
    {false, "WITH u AS (UPDATE t SET a = 1 RETURNING a) SELECT * FROM u"},
    {false, "SELECT * INTO new_t FROM t"},
    {false, "SELECT * FROM t FOR UPDATE"},
    {false, "SELECT * FROM t FOR NO KEY UPDATE"},
    {false, "SELECT * FROM t FOR SHARE"},
    {false, "SELECT * FROM t FOR KEY SHARE"},
    {false, "SELECT nextval('s')"},
    {false, "SELECT setval('s', 10)"},
    {false, "SELECT txid_current()"},
    {false, "SELECT pg_current_xact_id()"},
    {false, "SELECT pg_current_xact_id_if_assigned()"},
    {false, "SELECT set_config('a.b', 'c', false)"}, /* not stateless at all */
    {false, "SET search_path TO x"},
    {false, "BEGIN"},
    {false, "CREATE TABLE t (a int)"},
    {false, "SELECT 1; SELECT 2"},
    {false, ""},
    {false, "SELECT 'unterminated"},
};

Test(sql_read_only, cases) {
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
    cr_expect_eq(dbp__sql_is_read_only(DBP_DB_PG, cases[i].sql), cases[i].want, "%s: wanted %s",
                 cases[i].sql, cases[i].want ? "read-only" : "not read-only");
}
