/* The one-call helpers: a whole job, or one query into one file, on a
 * runtime of their own. */
#include <stdio.h>
#include <string.h>

#include "engine/engine_int.h"

int dbp_run_job(dbp_job *job, const dbp_run_options *opts, dbp_run_event_fn fn, void *ud,
                dbp_run_summary *summary) {
  if (summary != NULL) memset(summary, 0, sizeof *summary);
  dbp_rt *rt = NULL;
  dbp_run *run = NULL;
  int rc = dbp_rt_new(&rt, NULL, NULL);
  if (rc != 0) return rc;
  rc = dbp_run_new(rt, job, opts, &run);
  if (rc == 0 && fn != NULL) rc = dbp_run_subscribe(run, fn, ud);
  if (rc == 0) rc = dbp_run_start(run);
  if (rc == 0) {
    dbp_rt_run(rt);
    dbp_run_state st = dbp_run_status(run);
    if (summary != NULL) dbp_run_get_summary(run, summary);
    rc = st == DBP_RUN_OK ? 0 : st == DBP_RUN_CANCELLED ? DBP_ECANCELED : DBP_ETASK;
  }
  dbp_run_free(run);
  dbp_rt_free(rt);
  return rc;
}

typedef struct export_call {
  dbp_rt *rt;
  const char *dsn, *sql, *path;
  const dbp_export_options *opts;
  dbp_export_result *res;
} export_call;

static int export_main(void *arg, void **result) {
  export_call *x = arg;
  dbp_conn *c = NULL;
  (void)result;
  int rc = dbp_conn_open(x->rt, x->dsn, DBP_FOREVER, &c, &x->res->err);
  if (rc != 0) {
    if (x->res->err.code == 0) x->res->err.code = rc;
    return rc;
  }
  rc = dbp_export_query(c, x->sql, 0, NULL, x->path, x->opts, x->res);
  dbp_conn_close(c);
  return rc;
}

int dbp_export_url(const char *dsn, const char *sql, const char *path,
                   const dbp_export_options *opts, dbp_export_result *res) {
  if (res == NULL) return DBP_EINVAL;
  memset(res, 0, sizeof *res);
  if (dsn == NULL || sql == NULL || path == NULL) {
    res->err.code = DBP_EINVAL;
    return DBP_EINVAL;
  }
  export_call x = {.dsn = dsn, .sql = sql, .path = path, .opts = opts, .res = res};
  dbp_co *co = NULL;
  int rc = dbp_rt_new(&x.rt, NULL, NULL);
  if (rc == 0) rc = dbp_spawn(x.rt, &co, export_main, &x, NULL);
  if (rc == 0) {
    dbp_rt_run(x.rt);
    rc = dbp_join(co, NULL);
  }
  if (x.rt != NULL) dbp_rt_free(x.rt);
  if (rc != 0) {
    if (res->err.code == 0) {
      res->err.code = rc;
      snprintf(res->err.message, sizeof res->err.message, "%s", dbp_strerror(rc));
    }
    /* The drivers redact DSNs; this catches the password quoted anywhere
     * else in a message. */
    dbp_secrets secrets = {0};
    dbp_secrets_add_dsn(&secrets, dsn);
    dbp_secrets_scrub_str(&secrets, res->err.message);
    dbp_secrets_free(&secrets);
  }
  return rc;
}
