/* The connections a run reads through: one pool per job connection and,
 * when the run reads a database in one snapshot, the coordinating session
 * and the worker sessions that joined it.
 *
 * Workers are taken from the pool before the snapshot is taken, so that on
 * MariaDB/MySQL the commit lock covers only the joins (one round trip per
 * worker), not the connects. They stay out of the pool, inside their
 * snapshot transaction, until the run ends: every export of that
 * connection runs on one of them, so parts and tables beyond the number of
 * workers queue for them and all of them see the same database. The
 * coordinator is a connection of its own (not one of the pool's), held
 * open until the last worker is done: on PostgreSQL the exported snapshot
 * lives only as long as its transaction. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine_int.h"

/* Taking a snapshot may wait for another one (MariaDB runs one BACKUP
 * STAGE at a time) or for running commits: a generous bound. */
#define SNAPSHOT_TIMEOUT_MS (120 * 1000)
#define STEP_TIMEOUT_MS (30 * 1000)

static bool shares_snapshot(const dbp_run *run, size_t i, dbp_snapshot_mode *mode) {
  dbp_job_snapshot s = run->job->conns[i].snapshot;
  if (s == DBP_JOB_SNAPSHOT_AUTO) s = run->job->snapshot;
  if (s == DBP_JOB_SNAPSHOT_NONE) return false;
  *mode = s == DBP_JOB_SNAPSHOT_LOCK_FREE ? DBP_SNAPSHOT_LOCK_FREE : DBP_SNAPSHOT_LOCKED;
  return true;
}

/* Why the snapshot of connection i could not be taken, as tasks report
 * it (into err->message); the hint says how to run without the lock when a
 * privilege is missing. */
static void snapshot_failed(dbp_run *run, size_t i, int rc, dbp_dberr *err, bool connecting) {
  char msg[768];
  if (err->code == 0) err->code = rc;
  if (!connecting) {
    snprintf(msg, sizeof msg, "cannot take a snapshot: %s%s",
             err->message[0] ? err->message : dbp_strerror(rc),
             rc == DBP_EACCES
                 ? " (or read without the commit lock: snapshot: lock-free in the job, "
                   "--snapshot lock-free on the command line; tables may then disagree)"
                 : "");
    snprintf(err->message, sizeof err->message, "%.*s", (int)sizeof err->message - 1, msg);
  }
  dbp_secrets_scrub_str(&run->secrets, err->message);
  /* A missing privilege stays missing: later tasks need not ask again. */
  if (!connecting && !err->retryable && rc != DBP_ECANCELED && rc != DBP_ETIMEDOUT) {
    run->dbs[i].snap_rc = rc;
    run->dbs[i].snap_err = *err;
  }
}

/* Waits: ends db's snapshot, if any, and closes its coordinator. */
static void end_snapshot(dbp__db *db) {
  if (db->snap != NULL) dbp_snapshot_end(db->snap, STEP_TIMEOUT_MS);
  db->snap = NULL;
  if (db->coord != NULL) dbp_conn_close(db->coord);
  db->coord = NULL;
}

/* Waits: takes the snapshot of connection i and joins db->cap workers.
 * On failure everything is given back and err says why. */
static int open_one(dbp_run *run, size_t i, dbp_dberr *err) {
  dbp__db *db = &run->dbs[i];
  dbp_pool *pool = run->pools[i];
  int rc = 0;
  memset(err, 0, sizeof *err);
  /* The workers first: connecting is the slow part, and on MariaDB the
   * commit lock then covers only the joins. */
  for (size_t k = 0; k < db->cap; k++) {
    dbp_conn *c = NULL;
    rc = dbp_pool_acquire(pool, k == 0 ? SNAPSHOT_TIMEOUT_MS : STEP_TIMEOUT_MS, &c, err);
    if (rc != 0) break;
    db->workers[db->nidle++] = c;
  }
  if (db->nidle > 0) rc = 0; /* fewer workers than asked for will do */
  bool connecting = true;
  char *dsn = rc == 0 ? dbp_dsn_with_app_name(run->job->conns[i].dsn, "dbpipe") : NULL;
  if (rc == 0 && dsn == NULL) rc = DBP_ENOMEM;
  if (rc == 0) rc = dbp_conn_open(run->rt, dsn, DBP_FOREVER, &db->coord, err);
  if (dsn != NULL) {
    memset(dsn, 0, strlen(dsn));
    free(dsn);
  }
  dbp_snapshot_options so = {.mode = db->mode};
  if (rc == 0) connecting = false;
  if (rc == 0) rc = dbp_snapshot_begin(db->coord, &so, SNAPSHOT_TIMEOUT_MS, &db->snap, err);
  size_t joined = 0, held = db->nidle;
  for (size_t k = 0; rc == 0 && k < held; k++) {
    dbp_dberr je = {0};
    int j = dbp_snapshot_join(db->snap, db->workers[k], STEP_TIMEOUT_MS, &je);
    if (j == 0) {
      db->workers[joined++] = db->workers[k];
      continue;
    }
    dbp_pool_release(pool, db->workers[k]);
    if (joined == 0 && k + 1 == held) {
      rc = j;
      *err = je;
    }
  }
  if (rc == 0 || db->snap != NULL) db->nidle = joined;
  if (rc == 0) rc = dbp_snapshot_ready(db->snap, STEP_TIMEOUT_MS, err);
  if (rc != 0) {
    for (size_t k = 0; k < db->nidle; k++) dbp_pool_release(pool, db->workers[k]);
    db->nidle = 0;
    end_snapshot(db);
    snapshot_failed(run, i, rc, err, connecting);
    return rc;
  }
  db->live = db->nidle;
  db->nworkers_joined = dbp_snapshot_workers(db->snap);
  snprintf(db->snap_id, sizeof db->snap_id, "%s", dbp_snapshot_id(db->snap));
  snprintf(db->position, sizeof db->position, "%s", dbp_snapshot_position(db->snap));
  snprintf(db->binlog_file, sizeof db->binlog_file, "%s", dbp_snapshot_binlog_file(db->snap));
  db->binlog_pos = dbp_snapshot_binlog_pos(db->snap);
  db->lock_us = dbp_snapshot_lock_us(db->snap);
  db->on_standby = dbp_snapshot_on_standby(db->snap);
  db->ready = true;
  for (size_t k = 0; k < db->nidle; k++) dbp_sem_release(db->avail);
  if (run->announced) dbp__source_announce(run, i);
  return 0;
}

void dbp__source_announce(dbp_run *run, size_t i) {
  dbp__db *db = &run->dbs[i];
  if (!db->ready || db->announced) return;
  db->announced = true;
  dbp_run_event se = {
      .kind = DBP_RUN_EV_SNAPSHOT,
      .connection = run->job->conns[i].name,
      .snapshot_id = db->snap_id,
      .position = db->position,
      .lock_us = db->lock_us,
      .attempts = (int)db->nworkers_joined,
      .message = db->mode == DBP_SNAPSHOT_LOCK_FREE && run->job->conns[i].kind == DBP_DB_MYSQL
                     ? "without the commit lock: tables read by different "
                       "connections may show different moments"
                     : ""};
  dbp__run_emit(run, &se, NULL);
}

int dbp__sources_open(dbp_run *run, const size_t *want) {
  for (size_t i = 0; i < run->job->nconns; i++) {
    dbp__db *db = &run->dbs[i];
    db->used = run->pools[i] != NULL;
    if (!db->used || want[i] == 0 || !shares_snapshot(run, i, &db->mode)) continue;
    db->snapshot = true;
    size_t w = want[i] < run->pool_size[i] ? want[i] : run->pool_size[i];
    db->cap = w ? w : 1;
    db->workers = calloc(db->cap, sizeof *db->workers);
    if (db->workers == NULL) return DBP_ENOMEM;
    int rc = dbp_sem_new(run->rt, 0, &db->avail);
    if (rc == 0) rc = dbp_mutex_new(run->rt, &db->setup);
    if (rc != 0) return rc;
  }
  return 0;
}

int dbp__source_acquire(dbp_run *run, size_t conn, int64_t timeout_ms, dbp_conn **out,
                        dbp_dberr *err) {
  dbp__db *db = &run->dbs[conn];
  *out = NULL;
  if (!db->snapshot) return dbp_pool_acquire(run->pools[conn], timeout_ms, out, err);
  memset(err, 0, sizeof *err);
  if (db->snap_rc != 0) {
    *err = db->snap_err;
    return db->snap_rc;
  }
  for (;;) {
    if (!db->ready) {
      /* The first export of this database takes the snapshot, so that a
       * failure to take it is that export's, retried as the task says. */
      int rc = dbp_mutex_lock(db->setup, timeout_ms);
      if (rc != 0) {
        err->code = rc;
        return rc;
      }
      if (!db->ready && db->snap_rc == 0) rc = open_one(run, conn, err);
      dbp_mutex_unlock(db->setup);
      if (rc == 0 && db->snap_rc != 0) {
        *err = db->snap_err;
        rc = db->snap_rc;
      }
      if (rc != 0) return rc;
    }
    if (db->live == 0) {
      err->code = DBP_ECONNLOST;
      snprintf(err->message, sizeof err->message,
               "every connection of the snapshot was lost after tables were read in it, and a "
               "new snapshot would show a later moment (run again, or with snapshot: none)");
      dbp_sem_release(db->avail); /* wakes the next one waiting, to see it too */
      return DBP_ECONNLOST;
    }
    int rc = dbp_sem_acquire(db->avail, timeout_ms);
    if (rc != 0) {
      err->code = rc;
      return rc;
    }
    if (db->nidle == 0)
      continue; /* woken because a worker was lost, or the
                 * snapshot is to be taken again */
    *out = db->workers[--db->nidle];
    return 0;
  }
}

/* Back into the idle stack. */
static void keep(dbp__db *db, dbp_conn *c) {
  db->workers[db->nidle++] = c;
  dbp_sem_release(db->avail);
}

void dbp__source_release(dbp_run *run, size_t conn, dbp_conn *c, bool failed) {
  dbp__db *db = &run->dbs[conn];
  dbp_pool *pool = run->pools[conn];
  if (!db->snapshot) {
    dbp_pool_release(pool, c);
    return;
  }
  bool pg = dbp_conn_kind(c) == DBP_DB_PG;
  bool broken = dbp_conn_is_broken(c);
  if (!broken && dbp_conn_in_transaction(c) && !(failed && pg)) {
    /* MariaDB/MySQL keep the transaction after a failed statement. */
    keep(db, c);
    return;
  }
  if (pg && !broken) {
    /* A failed statement aborted the transaction: start over in the same
     * snapshot, which lives as long as the coordinator's transaction. */
    if (dbp_conn_reset(c, true, STEP_TIMEOUT_MS) == 0 &&
        dbp_snapshot_join(db->snap, c, STEP_TIMEOUT_MS, NULL) == 0) {
      keep(db, c);
      return;
    }
  }
  dbp_pool_release(pool, c);
  bool lock_free = db->mode == DBP_SNAPSHOT_LOCK_FREE && !pg;
  if ((pg && !dbp_conn_is_broken(db->coord)) || lock_free) {
    /* A new session can still import the snapshot (PostgreSQL), or start
     * its own as every lock-free worker does. */
    dbp_conn *n = NULL;
    if (dbp_pool_acquire(pool, STEP_TIMEOUT_MS, &n, NULL) == 0) {
      if (dbp_snapshot_join(db->snap, n, STEP_TIMEOUT_MS, NULL) == 0) {
        keep(db, n);
        return;
      }
      dbp_pool_release(pool, n);
    }
  }
  /* MariaDB/MySQL: a session that starts now would see a later state. */
  db->live--;
  if (db->live > 0) return;
  if (db->exports_done == 0) {
    /* Nothing read in this snapshot has been kept: a new one, taken by the
     * next export, is as good. */
    end_snapshot(db);
    db->ready = db->announced = false;
  }
  dbp_sem_release(db->avail); /* whoever waits sees it */
}

void dbp__sources_close(dbp_run *run) {
  for (size_t i = 0; i < run->job->nconns; i++) {
    dbp__db *db = &run->dbs[i];
    for (size_t k = 0; k < db->nidle; k++) dbp_pool_release(run->pools[i], db->workers[k]);
    db->nidle = db->live = 0;
    end_snapshot(db);
    if (db->avail != NULL) dbp_sem_free(db->avail);
    db->avail = NULL;
    if (db->setup != NULL) dbp_mutex_free(db->setup);
    db->setup = NULL;
    free(db->workers);
    db->workers = NULL;
  }
}
