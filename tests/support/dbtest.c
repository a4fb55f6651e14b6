/* See dbtest.h. */
#include "dbtest.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DBT_DSN_MAX 2048

struct dbt_slot {
  const char *var;  /* environment variable and env file key */
  const char *what; /* for messages */
  char value[DBT_DSN_MAX];
  int found;
};

static struct dbt_slot dbt_pg = {"DBPIPE_PG_DSN", "PostgreSQL", {0}, 0};
static struct dbt_slot dbt_my = {"DBPIPE_MY_DSN", "MariaDB", {0}, 0};
static struct dbt_slot dbt_pg_notls = {"DBPIPE_PG_NOTLS_DSN", "PostgreSQL without TLS", {0}, 0};
static struct dbt_slot dbt_pg_standby = {"DBPIPE_PG_STANDBY_DSN", "PostgreSQL hot standby", {0}, 0};
static struct dbt_slot dbt_my_notls = {"DBPIPE_MY_NOTLS_DSN", "MariaDB without TLS", {0}, 0};
static struct dbt_slot dbt_my_namecert = {
    "DBPIPE_MY_NAMECERT_DSN", "MariaDB with a name-only certificate", {0}, 0};
static struct dbt_slot dbt_my_socket = {
    "DBPIPE_MY_SOCKET_DSN", "MariaDB over its Unix socket", {0}, 0};
static struct dbt_slot dbt_my_limited = {
    "DBPIPE_MY_LIMITED_DSN", "MariaDB one-connection user", {0}, 0};
static struct dbt_slot dbt_ca = {"DBPIPE_TLS_CA", "test CA file", {0}, 0};

static int dbt_in_ci(void) {
  const char *ci = getenv("CI");
  return ci != NULL && (strcmp(ci, "true") == 0 || strcmp(ci, "1") == 0);
}

/* Copy src to dst (at most len bytes), dropping one pair of surrounding
 * quotes; returns 0 if it does not fit or is empty. */
static int dbt_store(char *dst, const char *src, size_t len) {
  if (len >= 2 && (src[0] == '"' || src[0] == '\'') && src[len - 1] == src[0]) {
    src++;
    len -= 2;
  }
  if (len == 0 || len >= DBT_DSN_MAX) return 0;
  memcpy(dst, src, len);
  dst[len] = '\0';
  return 1;
}

/* Look for "KEY=value" (optionally "export KEY=value") in the env file. */
static int dbt_read_env_file(const char *path, struct dbt_slot *slot) {
  FILE *f = fopen(path, "r");
  if (f == NULL) return 0;

  char line[DBT_DSN_MAX + 128];
  size_t keylen = strlen(slot->var);
  int ok = 0;
  while (!ok && fgets(line, sizeof line, f) != NULL) {
    char *p = line;
    while (*p == ' ' || *p == '\t') p++;
    if (strncmp(p, "export ", 7) == 0) {
      p += 7;
      while (*p == ' ' || *p == '\t') p++;
    }
    if (strncmp(p, slot->var, keylen) != 0 || p[keylen] != '=') continue;
    p += keylen + 1;
    size_t len = strcspn(p, "\r\n");
    while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t')) len--;
    ok = dbt_store(slot->value, p, len);
  }
  fclose(f);
  return ok;
}

static const char *dbt_lookup(struct dbt_slot *slot) {
  if (slot->found) return slot->value;

  const char *env = getenv(slot->var);
  if (env != NULL && env[0] != '\0' && dbt_store(slot->value, env, strlen(env))) {
    slot->found = 1;
    return slot->value;
  }

  const char *path = getenv("DBPIPE_DBS_ENV");
  if (path != NULL && path[0] != '\0' && dbt_read_env_file(path, slot)) {
    slot->found = 1;
    return slot->value;
  }

  const char *where = (path != NULL && path[0] != '\0') ? path : "(DBPIPE_DBS_ENV not set)";
  if (dbt_in_ci()) {
    cr_assert_fail(
        "no %s server: %s is not set and not found in %s; "
        "CI must run every database test (scripts/dbs up)",
        slot->what, slot->var, where);
  } else {
    cr_skip_test(
        "no %s server: set %s or run scripts/dbs up and point "
        "DBPIPE_DBS_ENV at its env file (looked in %s)",
        slot->what, slot->var, where);
  }
  return NULL;
}

const char *dbt_pg_dsn(void) {
  return dbt_lookup(&dbt_pg);
}

const char *dbt_my_dsn(void) {
  return dbt_lookup(&dbt_my);
}

const char *dbt_dsn(int kind) {
  switch (kind) {
    case DBT_PG:
      return dbt_pg_dsn();
    case DBT_MY:
      return dbt_my_dsn();
    default:
      cr_assert_fail("dbt_dsn: unknown database kind %d (want 1 = PostgreSQL, 2 = MariaDB)", kind);
      return NULL;
  }
}

const char *dbt_pg_notls_dsn(void) {
  return dbt_lookup(&dbt_pg_notls);
}

const char *dbt_pg_standby_dsn(void) {
  return dbt_lookup(&dbt_pg_standby);
}

const char *dbt_my_notls_dsn(void) {
  return dbt_lookup(&dbt_my_notls);
}

const char *dbt_my_socket_dsn(void) {
  return dbt_lookup(&dbt_my_socket);
}

const char *dbt_my_limited_dsn(void) {
  return dbt_lookup(&dbt_my_limited);
}

const char *dbt_tls_ca(void) {
  return dbt_lookup(&dbt_ca);
}

const char *dbt_my_namecert_dsn(void) {
  return dbt_lookup(&dbt_my_namecert);
}
