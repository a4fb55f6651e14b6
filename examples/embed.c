/* Embedding dbpipe: a program that runs its own coroutine on dbpipe's
 * runtime and exports one query into a file.
 *
 *   embed DSN QUERY PATH      e.g. embed "$DBPIPE_PG_DSN" "SELECT * FROM orders" orders.csv.gz
 *
 * A service would pass its own uv_loop_t to dbp_rt_new instead of NULL. */
#include <dbpipe.h>
#include <inttypes.h>
#include <stdio.h>

struct job {
  dbp_rt *rt;
  const char *dsn, *query, *path;
};

static int export_one(void *arg, void **result) {
  struct job *job = arg;
  dbp_conn *c = NULL;
  dbp_dberr err = {0};
  dbp_export_result res = {0};
  char msg[768];
  (void)result;
  int rc = dbp_conn_open(job->rt, job->dsn, 10000, &c, &err);
  if (rc != 0) {
    fprintf(stderr, "embed: %s\n", dbp_dberr_format(&err, msg, sizeof msg));
    return rc;
  }
  rc = dbp_export_query(c, job->query, 0, NULL, job->path, NULL, &res);
  if (rc == 0) {
    printf("%" PRIu64 " rows, %" PRIu64 " bytes -> %s (sha256 %s)\n", res.rows, res.bytes,
           res.files[0].path, res.files[0].sha256);
  } else {
    fprintf(stderr, "embed: %s\n", dbp_dberr_format(&res.err, msg, sizeof msg));
  }
  dbp_export_result_free(&res);
  dbp_conn_close(c);
  return rc;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: embed DSN QUERY PATH\n");
    return 2;
  }
  dbp_rt *rt;
  dbp_co *co;
  if (dbp_rt_new(&rt, NULL, NULL) != 0) return 1;
  struct job job = {rt, argv[1], argv[2], argv[3]};
  if (dbp_spawn(rt, &co, export_one, &job, NULL) != 0) return 1;
  dbp_rt_run(rt);
  int rc = dbp_join(co, NULL);
  dbp_rt_free(rt);
  return rc == 0 ? 0 : 1;
}
