/* dbpipe plans: how a table is split into parts that separate connections
 * read side by side, as a value that can be written out and read back.
 *
 *   dbp_plan_table pt;
 *   dbp_split_options so = {.partitions = 4};         (primary key, 4 parts)
 *   dbp_plan_split(conn, &table_info, &so, 10000, &pt, &err);
 *   for (i = 0; i < pt.nparts; i++) {
 *     char *sql = dbp_plan_part_sql(&pt, i, NULL);     ("SELECT * FROM ... WHERE ...")
 *     ... export sql on a connection of the same snapshot ...
 *   }
 *   dbp_plan_table_free(&pt);
 *
 * Every row of the table is in exactly one part, whatever the values: the
 * parts' predicates are half-open ranges [lo, hi) of the split key in the
 * order the server sorts it (its collation for text), the first part open
 * below and the last open above, plus, for a split column that may be NULL,
 * one part of the rows whose value is NULL. The boundaries only decide how
 * even the parts are, never which rows are read, so a plan made before the
 * snapshot, or from another snapshot, still reads every row once.
 *
 * Methods:
 *   - DBP_SPLIT_KEY: ranges of the primary key (composite and text keys
 *     included) or of a chosen column, with boundaries read from the key in
 *     key order so that parts hold about equal numbers of rows however
 *     skewed or sparse the values are (see plan.c for how and why);
 *   - DBP_SPLIT_CTID: PostgreSQL tables without a usable key: ranges of heap
 *     pages (ctid >= '(p,0)' AND ctid < '(q,0)', TID range scans of
 *     PostgreSQL 14 and later);
 *   - DBP_SPLIT_NONE: one part, the whole table (views, MariaDB tables
 *     without a key, or no split asked).
 */
#ifndef DBPIPE_PLAN_H
#define DBPIPE_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "db.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dbp_split_method {
  DBP_SPLIT_NONE = 0, /* one part: every row */
  DBP_SPLIT_KEY,      /* ranges of the key columns */
  DBP_SPLIT_CTID      /* PostgreSQL: ranges of heap pages */
} dbp_split_method;

/* "none", "key", "ctid". */
DBP_EXTERN const char *dbp_split_method_name(dbp_split_method m);

typedef struct dbp_plan_part {
  /* DBP_SPLIT_KEY: the bounds, one value per key column as the server
   * prints it (text; PostgreSQL dates and times in ISO 8601 whatever the
   * DateStyle, bytes as "\x" and lower-case hex on both databases); lo
   * inclusive, hi exclusive; NULL = unbounded. A part with both NULL (and
   * not null_key) is every row: the table came out as one part. */
  char **lo;
  char **hi;
  bool null_key; /* the rows whose (single) split column is NULL; always
                  * the last part */
  /* DBP_SPLIT_CTID: heap pages [page_lo, page_hi); page_hi 0 = to the end. */
  uint64_t page_lo, page_hi;
  int64_t rows_estimate; /* about this many rows; -1 unknown */
} dbp_plan_part;

typedef struct dbp_plan_table {
  dbp_db_kind kind; /* the dialect the SQL is for */
  char *schema;     /* as the catalog stores it */
  char *name;
  char *qualified; /* quoted for the dialect, ready for SQL */
  dbp_table_kind table_kind;
  int64_t rows_estimate; /* the catalog's estimate, -1 unknown */
  int64_t rows_counted;  /* rows counted while planning (the filter applied), -1 if not */
  dbp_split_method method;
  size_t nkey; /* split columns (DBP_SPLIT_KEY) */
  char **key;  /* their names, unquoted */
  dbp_type *key_type;
  size_t nparts; /* at least 1 */
  dbp_plan_part *parts;
} dbp_plan_table;

/* A whole plan: what one run reads from one database. */
typedef struct dbp_plan {
  char *connection; /* the job connection's name; may be NULL */
  dbp_db_kind kind;
  char *where; /* the filter of every table's query, NULL for none */
  size_t ntables;
  dbp_plan_table *tables;
} dbp_plan;

/* How to split. Both counts 0: one part. */
typedef struct dbp_split_options {
  /* The split column; NULL or "auto": the primary key (PostgreSQL tables
   * without one: ctid pages; MariaDB ones: one part). */
  const char *column;
  size_t partitions;   /* about this many parts of equal row counts */
  uint64_t chunk_rows; /* or: parts of about this many rows (not both) */
  const char *where;   /* SQL filter applied while planning, NULL none */
} dbp_split_options;

/* Waits: plans the parts of table `t` (from dbp_list_tables, or filled in
 * by hand: schema, name, qualified, kind, pkey) on the idle connection `c`
 * within timeout_ms (a few statements: a count and one per boundary). On
 * success fills *out (free with dbp_plan_table_free). One part, without
 * a statement, when no split is asked (partitions 0 or 1 and no
 * chunk_rows) and for views; one part too for a MariaDB ENUM or SET key,
 * which sorts by its list's order but compares as text. Errors: DBP_EINVAL
 * (both counts given; a split column the table does not have, named in
 * err), and those of dbp_query; *out is then empty. */
DBP_EXTERN int dbp_plan_split(dbp_conn *c, const dbp_table_info *t, const dbp_split_options *o,
                              int64_t timeout_ms, dbp_plan_table *out, dbp_dberr *err);

/* The statement that reads part `part` of `t` (every column), with `where`
 * (may be NULL) added as a filter: "SELECT * FROM "s"."t" WHERE (where)
 * AND ("id" >= 250001 AND "id" < 500001)". Literal values are written so
 * that no server setting changes their meaning (PostgreSQL: E'' strings;
 * MariaDB: hex strings with a character set introducer, bare numbers for
 * numeric columns). malloc'd; NULL on ENOMEM or a part out of range. */
DBP_EXTERN char *dbp_plan_part_sql(const dbp_plan_table *t, size_t part, const char *where);
/* The part's range as a person reads it, for logs and manifests:
 * "id >= 250001 AND id < 500001", "(a, b) >= (1, 'x')", "pages 0-127",
 * "key IS NULL", "all rows". malloc'd. */
DBP_EXTERN char *dbp_plan_part_describe(const dbp_plan_table *t, size_t part);

DBP_EXTERN void dbp_plan_table_free(dbp_plan_table *t);
DBP_EXTERN void dbp_plan_free(dbp_plan *p);

/* Appends the plan as one JSON object to *out:
 *   {"connection": .., "kind": "postgresql"|"mysql", "where": ..,
 *    "tables": [{"schema", "name", "qualified", "table_kind", "rows_estimate",
 *                "rows_counted", "method", "key": [{"name", "type"}],
 *                "parts": [{"lo": [..]|null, "hi": [..]|null, "null_key",
 *                           "page_lo", "page_hi", "rows_estimate"}]}]}
 * Returns 0 or DBP_ENOMEM. */
DBP_EXTERN int dbp_plan_to_json(const dbp_plan *p, dbp_buf *out);
/* Reads back what dbp_plan_to_json wrote into *out (free with
 * dbp_plan_free). DBP_EINVAL with what is wrong and where in err for text
 * that is no such plan; DBP_ENOMEM. */
DBP_EXTERN int dbp_plan_from_json(const char *text, size_t len, dbp_plan *out, char *err,
                                  size_t errlen);

#ifdef __cplusplus
}
#endif

#endif /* DBPIPE_PLAN_H */
