/* Consistent snapshots and split exports on a PostgreSQL hot standby.
 *
 * The fixture's standby streams from its PostgreSQL server without TLS.
 * Each test makes a schema dbpsb_PID of its own on that primary, waits
 * until the standby has replayed it, reads it on the standby (through the
 * snapshot calls, and through the dbpipe executable) and drops the schema
 * on the primary at the end.
 *
 * Waiting for the standby: the primary's sessions commit with
 * synchronous_commit on (the fixture turns it off server-wide), so that
 * once a commit returns its WAL is written and pg_current_wal_lsn() is at
 * or past it; the standby has replayed the commit when its
 * pg_last_wal_replay_lsn() has reached that position. */
#include <ctype.h>
#include <unistd.h>

#include "dbcheck.h"
#include "rttest.h"
#include "test_cli.h"

static char dir[256];
static char schema[64];
static bool made; /* the schema may exist on the primary */

static void setup(void) {
  make_tmpdir(dir, sizeof dir);
  snprintf(schema, sizeof schema, "dbpsb_%ld", (long)getpid());
  made = false;
}

static int drop_body(dbp_rt *rt, void *arg);

static void teardown(void) {
  if (made) dbt_run(drop_body, NULL);
  rm_rf(dir);
}

TestSuite(standby, .init = setup, .fini = teardown, .timeout = 180);

/* ---- statements, in a coroutine ---- */

#define T 30000    /* ms: every statement's timeout */
#define ROWS 20000 /* rows of the big table */
#define SMALL 3000 /* rows of the second table */
#define POLLS 1200 /* waits of 50 ms for the standby: one minute at most */
#define LATE_ID 1000000

typedef struct dsns {
  const char *primary, *standby;
} dsns;

/* Both DSNs, looked up in the test itself (outside any coroutine), so that
 * a missing standby skips the test, or fails it under CI=true. */
static dsns get_dsns(void) {
  return (dsns){.primary = dbt_pg_notls_dsn(), .standby = dbt_pg_standby_dsn()};
}

static int open_dsn(dbp_rt *rt, const char *dsn, dbp_conn **c) {
  dbp_dberr err;
  int rc = dbp_conn_open(rt, dsn, T, c, &err);
  if (rc != 0) {
    char m[700];
    cr_expect(0, "connect failed: %s", dbp_dberr_format(&err, m, sizeof m));
  }
  return rc;
}

static int exec(dbp_conn *c, const char *sql) {
  int rc = dbp_exec(c, sql, 0, NULL, T, NULL);
  if (rc != 0) cr_expect(0, "%s: %s", sql, dbp_conn_error(c)->message);
  return rc;
}

/* A connection to the primary whose commits wait for their WAL to be
 * written (see the top of the file). */
static int open_primary(dbp_rt *rt, const char *dsn, dbp_conn **c) {
  int rc = open_dsn(rt, dsn, c);
  if (rc == 0) rc = exec(*c, "SET synchronous_commit = on");
  return rc;
}

/* One value of a one-row query, as text ("" for NULL). */
static int value(dbp_conn *c, const char *sql, char *out, size_t len) {
  int rc = dbp_query(c, sql, 0, NULL, T);
  if (rc != 0) {
    cr_expect(0, "%s: %s", sql, dbp_conn_error(c)->message);
    return rc;
  }
  dbp_row row;
  out[0] = '\0';
  int got = 0;
  while ((rc = dbp_fetch(c, &row)) == 1) {
    if (got++) continue;
    size_t n = row.vals[0] != NULL ? row.lens[0] : 0;
    if (n >= len) n = len - 1;
    if (n > 0) memcpy(out, row.vals[0], n);
    out[n] = '\0';
  }
  if (rc < 0 || got != 1) cr_expect(0, "%s: %d rows, rc %d", sql, got, rc);
  return rc < 0 ? rc : (got == 1 ? 0 : DBP_EPROTO);
}

/* Waits until the standby `sb` has replayed every commit the primary `p`
 * (or any session of it) has returned from so far. */
static int wait_replayed(dbp_rt *rt, dbp_conn *p, dbp_conn *sb) {
  char lsn[64], sql[160], done[8];
  CHECK(value(p, "SELECT pg_current_wal_lsn()", lsn, sizeof lsn) == 0);
  snprintf(sql, sizeof sql, "SELECT pg_last_wal_replay_lsn() >= '%s'::pg_lsn", lsn);
  for (int i = 0; i < POLLS; i++) {
    CHECK(value(sb, sql, done, sizeof done) == 0);
    if (strcmp(done, "t") == 0) return 0;
    (void)dbp_sleep(rt, 50);
  }
  cr_expect(0, "the standby has not replayed the primary's WAL up to %s within a minute", lsn);
  return -1;
}

/* The schema with `t` (ROWS rows, an integer primary key) and, with `two`,
 * `u` (SMALL rows, a text primary key), made on the primary and replayed
 * on the standby. */
typedef struct make_job {
  dsns d;
  bool two;
} make_job;

static int make_body(dbp_rt *rt, void *arg) {
  make_job *j = arg;
  dbp_conn *p = NULL, *sb = NULL;
  char sql[512];
  CHECK(open_primary(rt, j->d.primary, &p) == 0);
  snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS %s CASCADE", schema);
  CHECK(exec(p, sql) == 0);
  snprintf(sql, sizeof sql, "CREATE SCHEMA %s", schema);
  CHECK(exec(p, sql) == 0);
  made = true;
  snprintf(sql, sizeof sql,
           "CREATE TABLE %s.t (id bigint PRIMARY KEY, name text NOT NULL, amount numeric(12,2),"
           " at timestamptz)",
           schema);
  CHECK(exec(p, sql) == 0);
  snprintf(sql, sizeof sql,
           "INSERT INTO %s.t SELECT g, 'name ' || g, g * 1.25,"
           " TIMESTAMPTZ '2024-01-01 00:00:00+00' + g * INTERVAL '1 minute'"
           " FROM generate_series(1, %d) AS g",
           schema, ROWS);
  CHECK(exec(p, sql) == 0);
  if (j->two) {
    snprintf(sql, sizeof sql, "CREATE TABLE %s.u (code text PRIMARY KEY, n int)", schema);
    CHECK(exec(p, sql) == 0);
    snprintf(sql, sizeof sql,
             "INSERT INTO %s.u SELECT md5(g::text), g FROM generate_series(1, %d) AS g", schema,
             SMALL);
    CHECK(exec(p, sql) == 0);
  }
  CHECK(open_dsn(rt, j->d.standby, &sb) == 0);
  CHECK(wait_replayed(rt, p, sb) == 0);
  /* The standby really has them (and really is one). */
  char v[32];
  snprintf(sql, sizeof sql, "SELECT count(*) FROM %s.t", schema);
  CHECK(value(sb, sql, v, sizeof v) == 0);
  cr_expect_eq(atol(v), ROWS, "the standby has %s rows", v);
  CHECK(value(sb, "SELECT pg_is_in_recovery()", v, sizeof v) == 0);
  cr_expect_str_eq(v, "t", "the standby DSN names a server in recovery");
  dbp_conn_close(sb);
  dbp_conn_close(p);
  return 0;
}

static void make_tables(dsns d, bool two) {
  make_job j = {.d = d, .two = two};
  dbt_run(make_body, &j);
}

static int drop_body(dbp_rt *rt, void *arg) {
  (void)arg;
  dbp_conn *p = NULL;
  char sql[128];
  CHECK(open_dsn(rt, dbt_pg_notls_dsn(), &p) == 0);
  snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS %s CASCADE", schema);
  CHECK(exec(p, sql) == 0);
  dbp_conn_close(p);
  made = false;
  return 0;
}

/* ---- the snapshot calls on the standby ---- */

/* Inserts rows LATE_ID, LATE_ID + 1, ... into the table on the primary,
 * one commit each, until stopped. */
typedef struct inserter {
  dbp_rt *rt;
  const char *dsn;
  char table[96];
  volatile bool stop;
  long done; /* rows committed */
  char why[600];
} inserter;

static int inserter_main(void *arg, void **result) {
  (void)result;
  inserter *in = arg;
  dbp_conn *c = NULL;
  dbp_dberr err;
  int rc = dbp_conn_open(in->rt, in->dsn, T, &c, &err);
  if (rc == 0) rc = dbp_exec(c, "SET synchronous_commit = on", 0, NULL, T, NULL);
  if (rc != 0) {
    snprintf(in->why, sizeof in->why, "connect: %s",
             c != NULL ? dbp_conn_error(c)->message : err.message);
    if (c != NULL) dbp_conn_close(c);
    return rc;
  }
  while (!in->stop) {
    char sql[200];
    snprintf(sql, sizeof sql, "INSERT INTO %s VALUES (%ld, 'late', 0, now())", in->table,
             LATE_ID + in->done);
    rc = dbp_exec(c, sql, 0, NULL, T, NULL);
    if (rc != 0) {
      snprintf(in->why, sizeof in->why, "insert: %s", dbp_conn_error(c)->message);
      break;
    }
    in->done++;
    (void)dbp_sleep(in->rt, 2);
  }
  dbp_conn_close(c);
  return rc;
}

/* What a connection sees of the table: "count sum max". */
static int seen(dbp_conn *c, char *out, size_t len) {
  char sql[200];
  snprintf(sql, sizeof sql, "SELECT count(*) || ' ' || sum(id) || ' ' || max(id) FROM %s.t",
           schema);
  return value(c, sql, out, len);
}

static int id_shape(const char *id) {
  size_t n = strlen(id);
  if (n < 3) return 0;
  for (size_t i = 0; i < n; i++)
    if (!isxdigit((unsigned char)id[i]) && id[i] != '-') return 0;
  return 1;
}

/* "X/X": two hex numbers. */
static int lsn_shape(const char *p) {
  const char *slash = strchr(p, '/');
  if (slash == NULL || slash == p || slash[1] == '\0') return 0;
  for (const char *q = p; *q; q++)
    if (q != slash && !isxdigit((unsigned char)*q)) return 0;
  return 1;
}

static void show(const char *what, int rc, const dbp_dberr *e) {
  char m[700];
  cr_expect(0, "%s returned %s: %s", what, dbp_err_name(rc), dbp_dberr_format(e, m, sizeof m));
}

/* The connections of the snapshot test: on the primary, and on the
 * standby a coordinator, two workers and one outside the snapshot. */
typedef struct conns {
  dbp_conn *p, *coord, *w1, *w2, *fresh;
} conns;

/* Runs with the snapshot taken and the inserter going: what the workers
 * see, and what a session outside the snapshot sees meanwhile. */
static int read_in_snapshot(dbp_rt *rt, conns *c, dbp_snapshot *s, inserter *in) {
  dbp_dberr err;
  cr_expect(dbp_snapshot_on_standby(s), "the snapshot says it is on a standby");
  cr_expect(id_shape(dbp_snapshot_id(s)), "id %s", dbp_snapshot_id(s));
  const char *pos = dbp_snapshot_position(s);
  cr_expect(lsn_shape(pos), "position '%s' is an LSN", pos);
  /* The position is where replay stood: never past what the standby has
   * replayed since. */
  char sql[256], v[128];
  if (lsn_shape(pos)) {
    snprintf(sql, sizeof sql, "SELECT '%s'::pg_lsn <= pg_last_wal_replay_lsn()", pos);
    CHECK(value(c->fresh, sql, v, sizeof v) == 0);
    cr_expect_str_eq(v, "t", "position %s is not past the standby's replay position", pos);
  }

  int rc = dbp_snapshot_join(s, c->w1, T, &err);
  if (rc != 0) show("dbp_snapshot_join (first worker)", rc, &err);
  CHECK(rc == 0);
  char first[128], again[128], late[128], now_seen[128];
  CHECK(seen(c->w1, first, sizeof first) == 0);
  long at_join = in->done;

  /* More rows commit on the primary and are replayed on the standby: a
   * session outside the snapshot sees them. */
  for (int i = 0; i < POLLS && in->done < at_join + 50 && in->why[0] == '\0'; i++)
    (void)dbp_sleep(rt, 50);
  cr_expect_geq(in->done, at_join + 50, "the inserter went on (%ld rows): %s", in->done, in->why);
  CHECK(wait_replayed(rt, c->p, c->fresh) == 0);
  CHECK(seen(c->fresh, now_seen, sizeof now_seen) == 0);
  cr_expect_gt(atol(now_seen), atol(first), "outside the snapshot more rows are seen: %s vs %s",
               now_seen, first);

  /* A worker joining now sees what the first one saw, not those rows; the
   * first still sees the same. */
  rc = dbp_snapshot_join(s, c->w2, T, &err);
  if (rc != 0) show("dbp_snapshot_join (late worker)", rc, &err);
  CHECK(rc == 0);
  CHECK(dbp_snapshot_ready(s, T, &err) == 0);
  cr_expect_eq(dbp_snapshot_workers(s), 2);
  CHECK(seen(c->w2, late, sizeof late) == 0);
  CHECK(seen(c->w1, again, sizeof again) == 0);
  cr_expect_str_eq(late, first, "the late worker sees what the first saw");
  cr_expect_str_eq(again, first, "the first worker's view did not move");
  cr_expect_geq(atol(first), ROWS, "the snapshot holds the table (%s)", first);
  snprintf(sql, sizeof sql, "SELECT count(*) FROM %s.t WHERE id <= %d", schema, ROWS);
  CHECK(value(c->w2, sql, v, sizeof v) == 0);
  cr_expect_eq(atol(v), ROWS, "every original row is in the snapshot (%s)", v);
  char snap1[128], snap2[128];
  CHECK(value(c->w1, "SELECT pg_current_snapshot()::text", snap1, sizeof snap1) == 0);
  CHECK(value(c->w2, "SELECT pg_current_snapshot()::text", snap2, sizeof snap2) == 0);
  cr_expect_str_eq(snap2, snap1, "both workers hold the same snapshot");
  CHECK(exec(c->w1, "COMMIT") == 0);
  CHECK(exec(c->w2, "COMMIT") == 0);
  return 0;
}

/* Runs with the inserter going: the snapshot, always ended. */
static int snapshot_under_inserts(dbp_rt *rt, conns *c, inserter *in) {
  for (int i = 0; i < POLLS && in->done < 20 && in->why[0] == '\0'; i++) (void)dbp_sleep(rt, 50);
  cr_expect_geq(in->done, 20, "the inserter committed %ld rows before the snapshot: %s", in->done,
                in->why);
  dbp_snapshot *s = NULL;
  dbp_dberr err;
  int rc = dbp_snapshot_begin(c->coord, NULL, T, &s, &err);
  if (rc != 0) show("dbp_snapshot_begin on the standby", rc, &err);
  CHECK(rc == 0);
  int failed = read_in_snapshot(rt, c, s, in);
  CHECK(dbp_snapshot_end(s, T) == 0);
  CHECK(!dbp_conn_in_transaction(c->coord));
  return failed;
}

static int with_connections(dbp_rt *rt, const dsns *d, conns *c) {
  CHECK(open_primary(rt, d->primary, &c->p) == 0);
  CHECK(open_dsn(rt, d->standby, &c->coord) == 0);
  CHECK(open_dsn(rt, d->standby, &c->w1) == 0);
  CHECK(open_dsn(rt, d->standby, &c->w2) == 0);
  CHECK(open_dsn(rt, d->standby, &c->fresh) == 0);

  /* The control: on the primary the snapshot says it is not on a standby. */
  dbp_snapshot *s = NULL;
  dbp_dberr err;
  int rc = dbp_snapshot_begin(c->p, NULL, T, &s, &err);
  if (rc != 0) show("dbp_snapshot_begin on the primary", rc, &err);
  CHECK(rc == 0);
  cr_expect_not(dbp_snapshot_on_standby(s), "a snapshot of the primary is on no standby");
  CHECK(dbp_snapshot_end(s, T) == 0);

  /* The primary keeps inserting from before the snapshot to the end. */
  inserter in = {.rt = rt, .dsn = d->primary};
  snprintf(in.table, sizeof in.table, "%s.t", schema);
  dbp_co *co = NULL;
  CHECK(dbp_spawn(rt, &co, inserter_main, &in, NULL) == 0);
  int failed = snapshot_under_inserts(rt, c, &in);
  in.stop = true;
  cr_expect_eq(dbp_join(co, NULL), 0, "inserter: %s", in.why);
  return failed;
}

static int workers_agree_body(dbp_rt *rt, void *arg) {
  conns c = {0};
  int failed = with_connections(rt, arg, &c);
  dbp_conn *all[] = {c.fresh, c.w2, c.w1, c.coord, c.p};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    if (all[i] != NULL) dbp_conn_close(all[i]);
  return failed;
}

Test(standby, workers_share_a_snapshot_while_the_primary_inserts) {
  dsns d = get_dsns();
  make_tables(d, false);
  dbt_run(workers_agree_body, &d);
}

/* ---- the dbpipe executable on the standby ---- */

static int cmp_line(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The lines of `text` (cut in place), without their newlines. */
static char **lines_of(char *text, size_t *n) {
  size_t cap = 1024, k = 0;
  char **v = malloc(cap * sizeof *v);
  cr_assert_not_null(v);
  for (char *p = text; *p != '\0';) {
    char *nl = strchr(p, '\n');
    if (k == cap) {
      cap *= 2;
      v = realloc(v, cap * sizeof *v);
      cr_assert_not_null(v);
    }
    v[k++] = p;
    if (nl == NULL) break;
    *nl = '\0';
    p = nl + 1;
  }
  *n = k;
  return v;
}

/* The CSV file `got` holds the header and, in any order, exactly the rows
 * of `want` (a single-query export), `rows` of them. */
static void expect_same_rows(const char *got, const char *want, size_t rows) {
  char *a = read_file(got), *b = read_file(want);
  cr_assert_not_null(a, "cannot read %s", got);
  cr_assert_not_null(b, "cannot read %s", want);
  size_t na = 0, nb = 0;
  char **la = lines_of(a, &na), **lb = lines_of(b, &nb);
  cr_assert(na > 0 && nb > 0);
  cr_expect_str_eq(la[0], lb[0], "the same header");
  cr_expect_eq(nb, rows + 1, "%s: %zu lines", want, nb);
  cr_expect_eq(na, nb, "%s: %zu lines, %s: %zu", got, na, want, nb);
  qsort(la + 1, na - 1, sizeof *la, cmp_line);
  qsort(lb + 1, nb - 1, sizeof *lb, cmp_line);
  size_t diff = 0;
  for (size_t i = 1; i < na && i < nb; i++) {
    if (strcmp(la[i], lb[i]) == 0) continue;
    if (diff++ == 0) cr_expect(0, "first difference (sorted): '%s' vs '%s'", la[i], lb[i]);
  }
  cr_expect_eq(diff, 0, "%zu sorted lines differ", diff);
  free(la);
  free(lb);
  free(a);
  free(b);
}

static int run_in_dir(const char *const *argv) {
  proc p;
  int rc = run_cli(&p, dir, argv);
  if (rc != 0) cr_expect(0, "dbpipe %s exited %d:\n%s", argv[0], rc, p.err);
  proc_free(&p);
  return rc;
}

/* The query export of a whole table, for comparison. */
static void export_query(const char *dsn, const char *table, const char *to) {
  char sql[160];
  snprintf(sql, sizeof sql, "SELECT * FROM %s.%s", schema, table);
  cr_assert_eq(
      run_in_dir((const char *[]){"export", "--from", dsn, "--query", sql, "--to", to, NULL}), 0);
}

/* The manifest's one database: a snapshot taken on a standby, with a
 * position. Returns the parsed manifest (the caller frees it) and its text. */
static jv *standby_manifest(const char *rel, char **text) {
  char path[600];
  snprintf(path, sizeof path, "%s/%s", dir, rel);
  *text = read_file(path);
  cr_assert_not_null(*text, "no manifest at %s", path);
  jv *m = calloc(1, sizeof *m);
  cr_assert_not_null(m);
  cr_assert(j_parse(*text, m), "the manifest is not JSON:\n%s", *text);
  cr_expect_str_eq(j_str(m, "status"), "ok");
  jv *dbs = j_get(m, "databases");
  cr_assert(dbs != NULL && dbs->t == J_ARR && dbs->n == 1, "one database in the manifest");
  jv *snap = j_get(&dbs->items[0], "snapshot");
  cr_assert(snap != NULL && snap->t == J_OBJ, "no snapshot in the manifest:\n%s", *text);
  jv *on = j_get(snap, "on_standby");
  cr_assert(on != NULL && on->t == J_BOOL, "no on_standby in the manifest:\n%s", *text);
  cr_expect(on->b, "on_standby is false:\n%s", *text);
  const char *pos = j_str(snap, "position");
  cr_expect(pos != NULL && lsn_shape(pos), "position %s", pos ? pos : "(null)");
  cr_expect_str_eq(j_str(snap, "mode"), "shared");
  cr_expect_not_null(j_str(snap, "id"));
  return m;
}

/* The task's parts: more than one, their rows adding up to the task's. */
static void expect_parts_add_up(jv *task, size_t rows) {
  cr_assert_not_null(task);
  cr_expect_str_eq(j_str(task, "status"), "ok");
  cr_expect_eq((uint64_t)j_num(task, "rows"), rows, "%s: task rows", j_str(task, "table"));
  jv *parts = j_get(task, "parts");
  cr_assert(parts != NULL && parts->t == J_ARR, "%s has no parts", j_str(task, "table"));
  cr_expect_geq(parts->n, 2, "%s is split (%zu parts)", j_str(task, "table"), parts->n);
  double sum = 0;
  for (size_t k = 0; k < parts->n; k++) sum += j_num(&parts->items[k], "rows");
  cr_expect_eq((uint64_t)sum, rows, "%s: the parts' rows add up (%.0f)", j_str(task, "table"), sum);
  jv *files = j_get(task, "files");
  cr_expect(files != NULL && files->t == J_ARR && files->n == 1, "the parts are one file");
}

Test(standby, a_table_split_in_parts_exports_what_one_query_does) {
  dsns d = get_dsns();
  make_tables(d, false);
  char table[96];
  snprintf(table, sizeof table, "%s.t", schema);
  cr_assert_eq(
      run_in_dir((const char *[]){"export", "--from", d.standby, "--table", table, "--partitions",
                                  "4", "--to", "out/t.csv", "--manifest", "out/m.json", NULL}),
      0);
  export_query(d.standby, "t", "out/q.csv");
  char got[600], want[600];
  snprintf(got, sizeof got, "%s/out/t.csv", dir);
  snprintf(want, sizeof want, "%s/out/q.csv", dir);
  expect_same_rows(got, want, ROWS);

  char *text = NULL;
  jv *m = standby_manifest("out/m.json", &text);
  jv *tasks = j_get(m, "tasks");
  cr_assert(tasks != NULL && tasks->n == 1);
  expect_parts_add_up(&tasks->items[0], ROWS);
  cr_expect_eq(j_get(&tasks->items[0], "parts")->n, 4, "four parts");
  j_free(m);
  free(m);
  free(text);
}

Test(standby, two_tables_of_a_pattern_export_in_one_snapshot) {
  dsns d = get_dsns();
  make_tables(d, true);
  char pattern[96];
  snprintf(pattern, sizeof pattern, "%s.*", schema);
  cr_assert_eq(run_in_dir((const char *[]){"export", "--from", d.standby, "--tables", pattern,
                                           "--partitions", "3", "--to", "out/{table}.csv",
                                           "--manifest", "out/m.json", NULL}),
               0);
  export_query(d.standby, "t", "out/qt.csv");
  export_query(d.standby, "u", "out/qu.csv");
  char got[600], want[600];
  snprintf(got, sizeof got, "%s/out/t.csv", dir);
  snprintf(want, sizeof want, "%s/out/qt.csv", dir);
  expect_same_rows(got, want, ROWS);
  snprintf(got, sizeof got, "%s/out/u.csv", dir);
  snprintf(want, sizeof want, "%s/out/qu.csv", dir);
  expect_same_rows(got, want, SMALL);

  char *text = NULL;
  jv *m = standby_manifest("out/m.json", &text);
  jv *tasks = j_get(m, "tasks");
  cr_assert(tasks != NULL && tasks->n == 2, "two tasks:\n%s", text);
  char want_t[96], want_u[96];
  snprintf(want_t, sizeof want_t, "%s.t", schema);
  snprintf(want_u, sizeof want_u, "%s.u", schema);
  for (size_t i = 0; i < tasks->n; i++) {
    jv *t = &tasks->items[i];
    const char *name = j_str(t, "table");
    cr_assert_not_null(name);
    if (strcmp(name, want_t) == 0) {
      expect_parts_add_up(t, ROWS);
    } else {
      cr_expect_str_eq(name, want_u);
      expect_parts_add_up(t, SMALL);
    }
  }
  jv *snap = j_get(&j_get(m, "databases")->items[0], "snapshot");
  cr_expect_geq(j_num(snap, "workers"), 2, "the parts joined one snapshot");
  j_free(m);
  free(m);
  free(text);
}
