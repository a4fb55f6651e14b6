/* Consistent snapshots shared by several connections (see db.h).
 *
 * Everything goes through the public statement calls (dbp_exec, dbp_query):
 * a snapshot is a sequence of statements on the coordinator and on each
 * worker, and the drivers know nothing of it.
 *
 * States: OPEN (workers may join; MySQL: the lock is held, or lock-free),
 * READY (MySQL: the lock is released, joins are refused; PostgreSQL: joins
 * still work, the coordinator's transaction is open). dbp_snapshot_end
 * frees the struct from either.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "dbpipe/db.h"
#include "util/assert.h"

#define SNAP_ID_MAX 64
#define SNAP_POS_MAX 4096
#define SNAP_FILE_MAX 512

/* MariaDB's and MySQL's "access denied; you need the X privilege". */
#define MY_ER_SPECIFIC_ACCESS_DENIED 1227

typedef enum snap_lock {
  LOCK_NONE = 0,     /* PostgreSQL, or lock-free */
  LOCK_BACKUP_STAGE, /* MariaDB 10.4+: BACKUP STAGE BLOCK_COMMIT */
  LOCK_FTWRL         /* MySQL, older MariaDB: FLUSH TABLES WITH READ LOCK */
} snap_lock;

struct dbp_snapshot_s {
  dbp_conn *coord;
  dbp_db_kind kind;
  dbp_snapshot_mode mode;
  snap_lock lock;
  bool mariadb;
  bool locked; /* the lock is held now */
  bool ready;
  bool standby;
  uint64_t lock_start_ns, lock_ns;
  size_t workers;
  uint64_t binlog_pos;
  char id[SNAP_ID_MAX];
  char position[SNAP_POS_MAX];
  char binlog_file[SNAP_FILE_MAX];
};

/* ---- errors ---- */

/* Fills err (may be NULL) with rc and a message made of `fmt`, followed by
 * the last error of `c` when c is given (its SQLSTATE and errno kept).
 * Returns rc. No DSN and no password reaches the text: only the server's
 * own message and ours. */
__attribute__((format(printf, 4, 5))) static int fail(dbp_dberr *err, int rc, dbp_conn *c,
                                                      const char *fmt, ...) {
  if (err == NULL) return rc;
  char what[sizeof err->message];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  memset(err, 0, sizeof *err);
  err->code = rc;
  const dbp_dberr *ce = c != NULL ? dbp_conn_error(c) : NULL;
  if (ce != NULL && ce->code == rc && ce->message[0] != '\0') {
    memcpy(err->sqlstate, ce->sqlstate, sizeof err->sqlstate);
    err->db_errno = ce->db_errno;
    err->retryable = ce->retryable;
    snprintf(err->message, sizeof err->message, "%.200s: %.300s", what, ce->message);
  } else {
    snprintf(err->message, sizeof err->message, "%s", what);
  }
  return rc;
}

/* ---- time ---- */

/* What is left of timeout_ms since start (ms of the loop clock): the rule
 * of rt.h kept across several statements (DBP_FOREVER stays, a spent
 * budget is 0, "do not wait"). */
static int64_t left(dbp_rt *rt, uint64_t start, int64_t timeout_ms) {
  if (timeout_ms < 0) return DBP_FOREVER;
  uint64_t spent = dbp_now(rt) - start;
  return spent >= (uint64_t)timeout_ms ? 0 : timeout_ms - (int64_t)spent;
}

/* ---- one row ---- */

/* Runs `sql` and copies the first row's first n values into out[i]
 * (sizes[i] bytes each, cut to fit; "" for NULL), reading the result to its
 * end. Returns 1 with a row, 0 without one, or an error. */
static int query_row(dbp_conn *c, const char *sql, int64_t timeout_ms, size_t n, char *const *out,
                     const size_t *sizes) {
  for (size_t i = 0; i < n; i++) out[i][0] = '\0'; /* "" when no row comes */
  int rc = dbp_query(c, sql, 0, NULL, timeout_ms);
  if (rc != 0) return rc;
  dbp_row row;
  int got = 0;
  while ((rc = dbp_fetch(c, &row)) == 1) {
    if (got) continue;
    got = 1;
    for (size_t i = 0; i < n; i++) {
      size_t len = i < row.ncols && row.vals[i] != NULL ? row.lens[i] : 0;
      if (len >= sizes[i]) len = sizes[i] - 1;
      if (len > 0) memcpy(out[i], row.vals[i], len);
      out[i][len] = '\0';
    }
  }
  return rc < 0 ? rc : got;
}

/* ---- PostgreSQL ---- */

/* A snapshot id as pg_export_snapshot writes it: hex digits and dashes
 * ("00000003-0000001B-1"). Anything else never reaches the server, so the
 * id is safe to place between quotes. */
static bool pg_id_ok(const char *id) {
  size_t n = strlen(id);
  if (n == 0 || n >= SNAP_ID_MAX) return false;
  for (size_t i = 0; i < n; i++) {
    char ch = id[i];
    bool hex = (ch >= '0' && ch <= '9') || (ch >= 'A' && ch <= 'F') || (ch >= 'a' && ch <= 'f');
    if (!hex && ch != '-') return false;
  }
  return id[0] != '-';
}

static int pg_begin(dbp_snapshot *s, uint64_t start, int64_t timeout_ms, dbp_dberr *err) {
  dbp_conn *c = s->coord;
  dbp_rt *rt = dbp_conn_rt(c);
  int rc = dbp_exec(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL,
                    left(rt, start, timeout_ms), NULL);
  if (rc != 0) return fail(err, rc, c, "snapshot: cannot open the coordinating transaction");
  char standby[8], id[SNAP_ID_MAX];
  char *const cols[] = {id, standby, s->position};
  const size_t sizes[] = {sizeof id, sizeof standby, sizeof s->position};
  rc = query_row(c,
                 "SELECT pg_export_snapshot(), pg_is_in_recovery(), "
                 "CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()::text "
                 "ELSE pg_current_wal_lsn()::text END",
                 left(rt, start, timeout_ms), 3, cols, sizes);
  if (rc < 0) return fail(err, rc, c, "snapshot: cannot export the snapshot");
  if (rc == 0 || !pg_id_ok(id))
    return fail(err, DBP_EPROTO, NULL, "snapshot: the server exported no valid snapshot id");
  snprintf(s->id, sizeof s->id, "%s", id);
  s->standby = standby[0] == 't';
  return 0;
}

int dbp_snapshot_import(dbp_conn *worker, const char *id, int64_t timeout_ms, dbp_dberr *err) {
  if (worker == NULL || id == NULL)
    return fail(err, DBP_EINVAL, NULL, "dbp_snapshot_import: missing argument");
  if (dbp_conn_kind(worker) != DBP_DB_PG)
    return fail(err, DBP_EINVAL, NULL, "dbp_snapshot_import: only PostgreSQL exports snapshots");
  if (!pg_id_ok(id))
    return fail(err, DBP_EINVAL, NULL,
                "snapshot: \"%.64s\" is not a snapshot id (hex digits and dashes, as "
                "pg_export_snapshot gives)",
                id);
  if (dbp_conn_in_transaction(worker))
    return fail(err, DBP_ESTATE, NULL, "snapshot: the worker is already in a transaction");
  dbp_rt *rt = dbp_conn_rt(worker);
  uint64_t start = dbp_now(rt);
  int rc = dbp_exec(worker, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL, timeout_ms,
                    NULL);
  if (rc != 0) return fail(err, rc, worker, "snapshot: cannot open the worker's transaction");
  char sql[SNAP_ID_MAX + 32];
  snprintf(sql, sizeof sql, "SET TRANSACTION SNAPSHOT '%s'", id);
  rc = dbp_exec(worker, sql, 0, NULL, left(rt, start, timeout_ms), NULL);
  if (rc == 0) return 0;
  fail(err, rc, worker,
       "snapshot: cannot import snapshot %s (is the coordinating transaction still open?)", id);
  /* Leave the worker idle, outside the failed transaction (or broken when
   * not even the rollback can run). */
  if (!dbp_conn_is_broken(worker)) (void)dbp_conn_reset(worker, true, 5000);
  return rc;
}

/* ---- MariaDB / MySQL ---- */

/* The server's flavour and version from VERSION(): "10.11.19-MariaDB-...". */
static int my_probe(dbp_snapshot *s, int *major, int *minor, uint64_t start, int64_t timeout_ms,
                    dbp_dberr *err) {
  char ver[128] = "";
  char *const cols[] = {ver};
  const size_t sizes[] = {sizeof ver};
  dbp_conn *c = s->coord;
  int rc =
      query_row(c, "SELECT VERSION()", left(dbp_conn_rt(c), start, timeout_ms), 1, cols, sizes);
  if (rc < 0) return fail(err, rc, c, "snapshot: cannot read the server version");
  *major = *minor = 0;
  if (rc == 1) (void)sscanf(ver, "%d.%d", major, minor);
  s->mariadb = strstr(ver, "MariaDB") != NULL;
  return 0;
}

static int my_lock_failed(dbp_snapshot *s, int rc, dbp_dberr *err) {
  const dbp_dberr *ce = dbp_conn_error(s->coord);
  const char *stmt =
      s->lock == LOCK_BACKUP_STAGE ? "BACKUP STAGE BLOCK_COMMIT" : "FLUSH TABLES WITH READ LOCK";
  if (rc == DBP_EQUERY && ce->db_errno == MY_ER_SPECIFIC_ACCESS_DENIED)
    return fail(err, DBP_EACCES, NULL,
                "snapshot: %s needs the RELOAD privilege, which this user lacks: grant it "
                "(GRANT RELOAD ON *.* TO ...) or use the lock-free mode "
                "(DBP_SNAPSHOT_LOCK_FREE), where parts read at different times may disagree",
                stmt);
  return fail(err, rc, s->coord, "snapshot: %s failed", stmt);
}

/* Releases the lock; safe to call when none is held. On failure the lock
 * counts as held still. */
static int my_unlock(dbp_snapshot *s, int64_t timeout_ms) {
  if (!s->locked) return 0;
  const char *sql = s->lock == LOCK_BACKUP_STAGE ? "BACKUP STAGE END" : "UNLOCK TABLES";
  int rc = dbp_exec(s->coord, sql, 0, NULL, timeout_ms, NULL);
  if (rc == 0) {
    s->lock_ns = uv_hrtime() - s->lock_start_ns;
    s->locked = false;
  }
  return rc;
}

static int my_positions(dbp_snapshot *s, int major, int minor, uint64_t start, int64_t timeout_ms,
                        dbp_dberr *err) {
  dbp_conn *c = s->coord;
  dbp_rt *rt = dbp_conn_rt(c);
  char logbin[8] = "";
  char *const cols[] = {logbin, s->position};
  const size_t sizes[] = {sizeof logbin, sizeof s->position};
  int rc = query_row(c,
                     s->mariadb ? "SELECT @@GLOBAL.log_bin, @@GLOBAL.gtid_binlog_pos"
                                : "SELECT @@GLOBAL.log_bin, @@GLOBAL.gtid_executed",
                     left(rt, start, timeout_ms), 2, cols, sizes);
  if (rc < 0) return fail(err, rc, c, "snapshot: cannot read the GTID position");
  /* MySQL writes a long GTID set over several lines. */
  size_t w = 0;
  for (size_t r = 0; s->position[r] != '\0'; r++)
    if (s->position[r] != '\n' && s->position[r] != '\r') s->position[w++] = s->position[r];
  s->position[w] = '\0';
  if (strcmp(logbin, "1") != 0) return 0;

  char posn[32] = "";
  char *const bcols[] = {s->binlog_file, posn};
  const size_t bsizes[] = {sizeof s->binlog_file, sizeof posn};
  bool new_syntax = !s->mariadb && (major > 8 || (major == 8 && minor >= 4));
  rc = query_row(c, new_syntax ? "SHOW BINARY LOG STATUS" : "SHOW MASTER STATUS",
                 left(rt, start, timeout_ms), 2, bcols, bsizes);
  if (rc == DBP_EQUERY && dbp_conn_error(c)->db_errno == MY_ER_SPECIFIC_ACCESS_DENIED)
    return fail(err, DBP_EACCES, NULL,
                "snapshot: reading the binary log position needs the %s privilege, which this "
                "user lacks: grant it or use the lock-free mode (DBP_SNAPSHOT_LOCK_FREE), "
                "where parts read at different times may disagree",
                s->mariadb ? "BINLOG MONITOR" : "REPLICATION CLIENT");
  if (rc < 0) return fail(err, rc, c, "snapshot: cannot read the binary log position");
  if (rc == 1) s->binlog_pos = strtoull(posn, NULL, 10);
  return 0;
}

static int my_begin(dbp_snapshot *s, uint64_t start, int64_t timeout_ms, dbp_dberr *err) {
  if (s->mode == DBP_SNAPSHOT_LOCK_FREE) return 0;
  int major, minor;
  int rc = my_probe(s, &major, &minor, start, timeout_ms, err);
  if (rc != 0) return rc;
  dbp_conn *c = s->coord;
  dbp_rt *rt = dbp_conn_rt(c);
  s->lock =
      s->mariadb && (major > 10 || (major == 10 && minor >= 4)) ? LOCK_BACKUP_STAGE : LOCK_FTWRL;
  if (s->lock == LOCK_BACKUP_STAGE) {
    rc = dbp_exec(c, "BACKUP STAGE START", 0, NULL, left(rt, start, timeout_ms), NULL);
    if (rc != 0) return my_lock_failed(s, rc, err);
    /* From here on the stage must be ended, whatever fails. */
    s->locked = true;
    rc = dbp_exec(c, "BACKUP STAGE BLOCK_COMMIT", 0, NULL, left(rt, start, timeout_ms), NULL);
  } else {
    rc = dbp_exec(c, "FLUSH TABLES WITH READ LOCK", 0, NULL, left(rt, start, timeout_ms), NULL);
    if (rc == 0) s->locked = true;
  }
  if (rc != 0) return my_lock_failed(s, rc, err);
  s->lock_start_ns = uv_hrtime();
  return my_positions(s, major, minor, start, timeout_ms, err);
}

static int my_join(dbp_conn *w, uint64_t start, int64_t timeout_ms, dbp_dberr *err) {
  dbp_rt *rt = dbp_conn_rt(w);
  /* SET TRANSACTION (not SESSION): the level holds for the next
   * transaction only, so the worker's session keeps its own setting. */
  int rc = dbp_exec(w, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", 0, NULL,
                    left(rt, start, timeout_ms), NULL);
  if (rc == 0)
    rc = dbp_exec(w, "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY", 0, NULL,
                  left(rt, start, timeout_ms), NULL);
  if (rc == 0) return 0;
  fail(err, rc, w, "snapshot: cannot start the worker's consistent-snapshot transaction");
  if (!dbp_conn_is_broken(w)) (void)dbp_conn_reset(w, true, 5000);
  return rc;
}

/* ---- the front ---- */

/* Leaves the coordinator without the lock and the transaction: released
 * by statements when they can run, else by a session reset, which marks
 * the connection broken when even that cannot run (a cancellation or a
 * passed deadline cut it short), so that no connection that looks usable
 * holds a server-wide lock. Returns the first error. */
static int release(dbp_snapshot *s, int64_t timeout_ms) {
  dbp_conn *c = s->coord;
  if (dbp_conn_is_broken(c)) return DBP_ECONNLOST;
  dbp_rt *rt = dbp_conn_rt(c);
  uint64_t start = dbp_now(rt);
  int rc = dbp_query_close(c);
  if (rc == 0) rc = my_unlock(s, timeout_ms);
  if (rc == 0 && dbp_conn_in_transaction(c))
    rc = dbp_exec(c, "ROLLBACK", 0, NULL, left(rt, start, timeout_ms), NULL);
  if (rc != 0 && !dbp_conn_is_broken(c)) {
    if (dbp_conn_reset(c, false, left(rt, start, timeout_ms)) == 0) s->locked = false;
  }
  return rc;
}

int dbp_snapshot_begin(dbp_conn *coord, const dbp_snapshot_options *o, int64_t timeout_ms,
                       dbp_snapshot **out, dbp_dberr *err) {
  if (out != NULL) *out = NULL;
  if (coord == NULL || out == NULL)
    return fail(err, DBP_EINVAL, NULL, "dbp_snapshot_begin: missing argument");
  dbp_snapshot_mode mode = o != NULL ? o->mode : DBP_SNAPSHOT_LOCKED;
  if (mode != DBP_SNAPSHOT_LOCKED && mode != DBP_SNAPSHOT_LOCK_FREE)
    return fail(err, DBP_EINVAL, NULL, "dbp_snapshot_begin: unknown mode %d", (int)mode);
  if (dbp_conn_is_broken(coord))
    return fail(err, DBP_ECONNLOST, NULL, "snapshot: the coordinating connection is broken");
  if (dbp_conn_in_transaction(coord))
    return fail(err, DBP_ESTATE, NULL,
                "snapshot: the coordinating connection is already in a transaction");
  dbp_snapshot *s = calloc(1, sizeof *s);
  if (s == NULL) return fail(err, DBP_ENOMEM, NULL, "snapshot: out of memory");
  s->coord = coord;
  s->kind = dbp_conn_kind(coord);
  s->mode = s->kind == DBP_DB_PG ? DBP_SNAPSHOT_LOCKED : mode;
  uint64_t start = dbp_now(dbp_conn_rt(coord));
  int rc = s->kind == DBP_DB_PG ? pg_begin(s, start, timeout_ms, err)
                                : my_begin(s, start, timeout_ms, err);
  if (rc != 0) {
    (void)release(s, 5000);
    free(s);
    return rc;
  }
  *out = s;
  return 0;
}

int dbp_snapshot_join(dbp_snapshot *s, dbp_conn *worker, int64_t timeout_ms, dbp_dberr *err) {
  if (s == NULL || worker == NULL)
    return fail(err, DBP_EINVAL, NULL, "dbp_snapshot_join: missing argument");
  if (worker == s->coord || dbp_conn_kind(worker) != s->kind)
    return fail(err, DBP_EINVAL, NULL,
                "dbp_snapshot_join: the worker must be another connection to the same kind "
                "of database");
  if (s->kind == DBP_DB_MYSQL && s->ready && s->lock != LOCK_NONE)
    return fail(err, DBP_ESTATE, NULL,
                "snapshot: the lock was released (dbp_snapshot_ready): a worker joining now "
                "would not see the snapshot; join every worker before");
  if (dbp_conn_in_transaction(worker))
    return fail(err, DBP_ESTATE, NULL, "snapshot: the worker is already in a transaction");
  /* Peeks at the socket without waiting: a coordinator that is gone took
   * the snapshot (or the lock) with it. */
  if (s->lock != LOCK_NONE || s->kind == DBP_DB_PG) {
    if (dbp_conn_is_broken(s->coord) || !dbp_conn_alive(s->coord))
      return fail(err, DBP_ECONNLOST, NULL,
                  "snapshot: the coordinating connection is lost, and the snapshot with it");
  }
  int rc;
  if (s->kind == DBP_DB_PG) {
    rc = dbp_snapshot_import(worker, s->id, timeout_ms, err);
  } else {
    rc = my_join(worker, dbp_now(dbp_conn_rt(worker)), timeout_ms, err);
  }
  if (rc == 0) s->workers++;
  return rc;
}

int dbp_snapshot_ready(dbp_snapshot *s, int64_t timeout_ms, dbp_dberr *err) {
  if (s == NULL) return fail(err, DBP_EINVAL, NULL, "dbp_snapshot_ready: missing argument");
  if (s->ready) return 0;
  s->ready = true;
  if (!s->locked) return 0;
  if (dbp_conn_is_broken(s->coord) || !dbp_conn_alive(s->coord)) {
    s->lock_ns = uv_hrtime() - s->lock_start_ns;
    s->locked = false;
    return fail(err, DBP_ECONNLOST, NULL,
                "snapshot: the coordinating connection was lost while the workers joined: the "
                "lock may have ended early, so they may disagree");
  }
  int rc = my_unlock(s, timeout_ms);
  if (rc != 0) return fail(err, rc, s->coord, "snapshot: cannot release the lock");
  return 0;
}

int dbp_snapshot_end(dbp_snapshot *s, int64_t timeout_ms) {
  if (s == NULL) return 0;
  /* A coordinator lost meanwhile took its transaction and lock with it. */
  int rc = dbp_conn_is_broken(s->coord) ? 0 : release(s, timeout_ms);
  free(s);
  return rc;
}

const char *dbp_snapshot_id(const dbp_snapshot *s) {
  return s != NULL ? s->id : "";
}

const char *dbp_snapshot_position(const dbp_snapshot *s) {
  return s != NULL ? s->position : "";
}

const char *dbp_snapshot_binlog_file(const dbp_snapshot *s) {
  return s != NULL ? s->binlog_file : "";
}

uint64_t dbp_snapshot_binlog_pos(const dbp_snapshot *s) {
  return s != NULL ? s->binlog_pos : 0;
}

bool dbp_snapshot_on_standby(const dbp_snapshot *s) {
  return s != NULL && s->standby;
}

uint64_t dbp_snapshot_lock_us(const dbp_snapshot *s) {
  if (s == NULL) return 0;
  uint64_t ns = s->locked ? uv_hrtime() - s->lock_start_ns : s->lock_ns;
  return ns / 1000;
}

size_t dbp_snapshot_workers(const dbp_snapshot *s) {
  return s != NULL ? s->workers : 0;
}
