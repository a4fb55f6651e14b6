/* Fuzz target for the job-file loader (dbp_job_parse from memory).
 *
 * The input is the YAML text, handed over without a terminating NUL so a
 * read past `len` is caught. ${VAR} expansion sees a fixed environment.
 * Properties: no crash, no leak; on success the job is consistent (every
 * task names a connection of the job, has a target and finds itself by
 * name); on failure there is at least one diagnostic and each formats. */
#include "dbpipe/db.h"
#include "dbpipe/job.h"
#include "fuzz.h"

#define SECRET "Sup3rSecretPw"

static bool holds(const char *s) {
  return s != NULL && strstr(s, SECRET) != NULL;
}

/* A connection whose DSN parses with the secret as its password (and
 * nowhere else) must not show it in its redacted form. */
static void check_conn(const dbp_job_conn *c) {
  FZ_CHECK(c->dsn != NULL && c->dsn_redacted != NULL, "connection '%s' without a DSN", c->name);
  dbp_dsn d;
  if (dbp_dsn_parse(c->dsn, &d, NULL, 0) != 0) return;
  bool elsewhere = holds(d.user) || holds(d.host) || holds(d.dbname);
  for (size_t i = 0; i < d.nparams; i++) elsewhere = elsewhere || holds(d.keys[i]);
  for (size_t i = 0; i < d.nparams; i++)
    if (strcmp(d.keys[i], "password") != 0) elsewhere = elsewhere || holds(d.values[i]);
  if (!elsewhere && holds(d.password) && holds(c->dsn_redacted)) {
    fz_dump("redacted", c->dsn_redacted, strlen(c->dsn_redacted));
    FZ_FAIL("connection '%s': the redacted DSN shows the password", c->name);
  }
  dbp_dsn_free(&d);
}

static const char *fake_env(const char *name, void *ud) {
  (void)ud;
  if (strcmp(name, "PG") == 0) return "postgresql://app:Sup3rSecretPw@127.0.0.1:5432/shop";
  if (strcmp(name, "MY") == 0) return "mysql://app:Sup3rSecretPw@127.0.0.1:3306/shop";
  if (strcmp(name, "EMPTY") == 0) return "";
  if (strcmp(name, "N") == 0) return "3";
  return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 65536) return 0;
  char *text = malloc(size ? size : 1);
  memcpy(text, data, size);
  dbp_job_options opts = {.getenv = fake_env, .now = 1700000000, .dir = "/nonexistent/fuzz"};
  dbp_job *job = NULL;
  dbp_job_diag diag;
  int rc = dbp_job_parse(text, size, "fuzz.yaml", &opts, &job, &diag);
  if (rc == 0) {
    FZ_CHECK(job != NULL, "success without a job");
    for (size_t i = 0; i < job->nconns; i++) check_conn(&job->conns[i]);
    for (size_t i = 0; i < job->ntasks; i++) {
      const dbp_job_task *t = &job->tasks[i];
      FZ_CHECK(t->name != NULL && t->path != NULL, "task %zu without a name or target", i);
      FZ_CHECK(t->conn < job->nconns, "task %zu names connection %zu of %zu", i, t->conn,
               job->nconns);
      long found = dbp_job_find_task(job, t->name);
      FZ_CHECK(found >= 0 && (size_t)found <= i, "task '%s' does not find itself", t->name);
    }
    dbp_job_free(job);
  } else {
    FZ_CHECK(job == NULL, "a failure that still returned a job");
    FZ_CHECK(diag.count > 0 || rc == DBP_ENOMEM, "a failure (%d) without a diagnostic", rc);
    char buf[1024];
    for (size_t i = 0; i < diag.count; i++) {
      dbp_job_diag_format(&diag, i, buf, sizeof buf);
      FZ_CHECK(strlen(buf) < sizeof buf, "a diagnostic overran its buffer");
    }
    dbp_job_diag_free(&diag);
  }
  free(text);
  return 0;
}
