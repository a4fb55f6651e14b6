/* dbpipe-bench queries: many small queries from many coroutines over one
 * pool.
 *
 *   dbpipe-bench queries --dsn DSN [--clients N] [--pool P] [--seconds S]
 *                        [--sql SQL] [--ids K] [--api helper|acquire]
 *                        [--no-pipeline] [--depth D] [--inline]
 *                        [--keep-session]
 *
 * N client coroutines share a dbp_pool of P connections. Each client loops
 * over point queries, each with one bound key drawn at random from 1..K,
 * in one of two ways (--api):
 *
 *   helper   (the default) one dbp_pool_query call per query: the pool
 *            picks a connection, runs the statement and hands back the rows
 *            as a dbp_result, which the client reads and frees. A
 *            stateless statement needs no session reset; on PostgreSQL it
 *            shares a connection in pipeline mode with up to D others
 *            (--depth, the pool's pipeline_depth; default the pool's own)
 *            unless --no-pipeline gives each statement a connection of its
 *            own for its turn.
 *   acquire  acquire a connection, dbp_query, dbp_fetch every row, release
 *            it (the connection's session reset, or with --keep-session only
 *            rolled back).
 *
 * A query's latency is that whole cycle (the wait for a connection or a
 * pipeline slot included), which is what a caller of the pool sees. Before
 * the clock starts every client runs one untimed query, so the pool's
 * connections are open when the measurement begins; queries still running
 * when the time is up are not counted.
 *
 * With --inline the key is written into the SQL text in place of its
 * placeholder and the query is sent without parameters: the same work for
 * the server, one round trip on every driver, which tells the cost of
 * binding apart from the cost of the query.
 *
 * With --api acquire a released connection's session is reset (the pool's
 * default: DISCARD ALL / mysql_reset_connection, one more round trip per
 * query, as asyncpg's pool does); --keep-session only rolls back, like a
 * client that owns its connection (pgbench, sysbench) or a pool that does
 * not reset (aiomysql). The helper resets only after a statement that
 * leaves state behind, which a point query does not.
 *
 * Prints one line: qps=... p50_us=... p99_us=... followed by the settings,
 * the number of failed queries and pipelined=F, the share of the helper
 * statements of the measured time that the pool sent on a shared
 * (pipelined) connection (0 with --api acquire, --no-pipeline or MariaDB).
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "dbpipe.h"

/* The defaults are the tables the peers use: pgbench's accounts (scale 10)
 * on PostgreSQL, the bench table on MariaDB. */
#define QB_PG_SQL "SELECT abalance FROM pgbench_accounts WHERE aid = $1"
#define QB_MY_SQL "SELECT code FROM bench WHERE id = ?"
#define QB_ACQUIRE_TIMEOUT_MS 30000
#define QB_QUERY_TIMEOUT_MS 30000
#define QB_KEY_MAX 24    /* a key's decimal text, NUL included */
#define QB_TEXT_MAX 1024 /* --inline: the SQL with the key in it */

typedef struct qb_run qb_run;

/* One client coroutine's state. Latencies are appended to its own array so
 * that no client waits for another's bookkeeping. */
typedef struct qb_client {
  qb_run *run;
  uint64_t rng;
  uint32_t *lat_us;
  size_t nlat, caplat;
  int err;
} qb_client;

struct qb_run {
  const char *dsn;
  const char *sql;
  size_t sql_head;   /* --inline: bytes of sql before the placeholder */
  size_t sql_holder; /* --inline: length of the placeholder, 0 = bind */
  size_t clients, pool_size;
  bool keep_session; /* --keep-session */
  bool helper;       /* --api helper (else acquire) */
  bool no_pipeline;  /* --no-pipeline */
  size_t depth;      /* --depth, 0 = the pool's default */
  double seconds;
  uint64_t ids;

  dbp_rt *rt;
  dbp_pool *pool;
  dbp_waitgroup *warm; /* counts clients still running their warm-up */
  dbp_event *start;    /* set when the clock starts */
  int stop;            /* set when the time is up */
  qb_client *cl;

  dbp_pool_stats st0, st1; /* when the clock starts and after the last query */

  uint64_t errors;
  dbp_dberr first_err; /* first failure, for the message */
  int have_err;
  double elapsed_s;
};

/* xorshift64*: a small, fast generator; one per client. */
static uint64_t qb_next(uint64_t *s) {
  uint64_t x = *s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return x * UINT64_C(2685821657736338717);
}

/* Records a failure: the first one is kept for the final message. */
static void qb_fail(qb_run *r, int rc, const dbp_dberr *e) {
  r->errors++;
  if (!r->have_err) {
    r->have_err = 1;
    if (e && e->code == rc) {
      r->first_err = *e;
    } else {
      memset(&r->first_err, 0, sizeof r->first_err);
      r->first_err.code = rc;
      snprintf(r->first_err.message, sizeof r->first_err.message, "%s", dbp_strerror(rc));
    }
  }
}

/* The statement of one query: with --inline the key written into `text`
 * and no parameter, else r->sql with `key` bound through *p (its text in
 * buf). Returns the SQL and sets *nparams. */
static const char *qb_statement(const qb_run *r, uint64_t key, char buf[QB_KEY_MAX],
                                char text[QB_TEXT_MAX], dbp_param *p, size_t *nparams) {
  p->len = (size_t)snprintf(buf, QB_KEY_MAX, "%" PRIu64, key);
  p->val = buf;
  if (r->sql_holder) {
    const char *tail = r->sql + r->sql_head + r->sql_holder;
    snprintf(text, QB_TEXT_MAX, "%.*s%s%s", (int)r->sql_head, r->sql, buf, tail);
    *nparams = 0;
    return text;
  }
  *nparams = 1;
  return r->sql;
}

/* --api acquire: acquire, query with `key` bound, fetch every row,
 * release. Returns 0 or the failing call's error (already recorded in the
 * run). */
static int qb_one_acquire(qb_run *r, uint64_t key) {
  dbp_conn *c = NULL;
  dbp_dberr err;
  char buf[QB_KEY_MAX], text[QB_TEXT_MAX];
  const char *sql;
  size_t np;
  dbp_param p;
  dbp_row row;
  int rc;

  memset(&err, 0, sizeof err);
  rc = dbp_pool_acquire(r->pool, QB_ACQUIRE_TIMEOUT_MS, &c, &err);
  if (rc < 0) {
    qb_fail(r, rc, &err);
    return rc;
  }
  sql = qb_statement(r, key, buf, text, &p, &np);
  rc = dbp_query(c, sql, np, np ? &p : NULL, QB_QUERY_TIMEOUT_MS);
  while (rc == 0 && (rc = dbp_fetch(c, &row)) == 1) rc = 0;
  if (rc < 0) qb_fail(r, rc, dbp_conn_error(c));
  dbp_pool_release(r->pool, c);
  return rc;
}

/* --api helper: one dbp_pool_query call; the first value is looked at (as
 * a caller would) and the result freed. Returns 0 or the error (already
 * recorded in the run). */
static int qb_one_helper(qb_run *r, uint64_t key) {
  dbp_result *res = NULL;
  dbp_dberr err;
  char buf[QB_KEY_MAX], text[QB_TEXT_MAX];
  const char *sql;
  size_t np, len = 0;
  dbp_param p;
  int rc;

  memset(&err, 0, sizeof err);
  sql = qb_statement(r, key, buf, text, &p, &np);
  rc = dbp_pool_query(r->pool, sql, np, np ? &p : NULL, QB_QUERY_TIMEOUT_MS, &res, &err);
  if (rc < 0) {
    qb_fail(r, rc, &err);
    return rc;
  }
  if (dbp_result_nrows(res) > 0) (void)dbp_result_value(res, 0, 0, &len);
  dbp_result_free(res);
  return 0;
}

static int qb_one(qb_run *r, uint64_t key) {
  return r->helper ? qb_one_helper(r, key) : qb_one_acquire(r, key);
}

/* Appends one latency; drops it (rather than failing the run) when memory
 * runs out. */
static void qb_record(qb_client *cl, uint64_t ns) {
  uint64_t us = ns / 1000;
  if (cl->nlat == cl->caplat) {
    size_t cap = cl->caplat ? cl->caplat * 2 : 4096;
    uint32_t *n = realloc(cl->lat_us, cap * sizeof *n);
    if (!n) return;
    cl->lat_us = n;
    cl->caplat = cap;
  }
  cl->lat_us[cl->nlat++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

/* A client coroutine: one warm-up query, then point queries until the run's
 * stop flag is set. Returns 0, or DBP_ECANCELED when cancelled. */
static int qb_client_main(void *arg, void **result) {
  qb_client *cl = arg;
  qb_run *r = cl->run;
  int rc;
  (void)result;

  qb_one(r, 1 + qb_next(&cl->rng) % r->ids);
  dbp_waitgroup_done(r->warm);
  rc = dbp_event_wait(r->start, DBP_FOREVER);
  if (rc < 0) return rc;
  while (!r->stop) {
    uint64_t key = 1 + qb_next(&cl->rng) % r->ids;
    uint64_t t0 = dbpb_now_ns();
    rc = qb_one(r, key);
    if (rc == DBP_ECANCELED) return rc;
    if (rc == 0 && !r->stop) qb_record(cl, dbpb_now_ns() - t0);
  }
  return 0;
}

/* The run's main coroutine: opens the pool, starts the clients, lets them
 * warm up, measures for r->seconds, then joins them and closes the pool.
 * Returns 0 or the first setup error. */
static int qb_main(void *arg, void **result) {
  qb_run *r = arg;
  dbp_co **cos = NULL;
  dbp_pool_options po;
  size_t i, spawned = 0;
  uint64_t t0;
  int rc;
  (void)result;

  memset(&po, 0, sizeof po);
  po.min_size = r->pool_size;
  po.max_size = r->pool_size;
  po.keep_session = r->keep_session;
  po.no_pipeline = r->no_pipeline;
  po.pipeline_depth = r->depth;
  rc = dbp_pool_new(r->rt, r->dsn, &po, &r->pool);
  if (rc < 0) return rc;
  if ((rc = dbp_waitgroup_new(r->rt, &r->warm)) < 0) goto out;
  if ((rc = dbp_event_new(r->rt, &r->start)) < 0) goto out;
  cos = calloc(r->clients, sizeof *cos);
  if (!cos) {
    rc = DBP_ENOMEM;
    goto out;
  }
  dbp_waitgroup_add(r->warm, r->clients);
  for (i = 0; i < r->clients; i++) {
    rc = dbp_spawn(r->rt, &cos[i], qb_client_main, &r->cl[i], NULL);
    if (rc < 0) break;
    spawned++;
  }
  if (rc < 0) {
    /* The clients that never started count as warm, so nobody waits. */
    for (i = spawned; i < r->clients; i++) dbp_waitgroup_done(r->warm);
    r->stop = 1;
  }

  dbp_waitgroup_wait(r->warm, DBP_FOREVER);
  /* A failing warm-up (no server, bad SQL) would only measure how fast
   * errors come back: stop there. */
  if (r->errors > 0) r->stop = 1;
  dbp_pool_get_stats(r->pool, &r->st0);
  t0 = dbpb_now_ns();
  dbp_event_set(r->start);
  if (!r->stop) dbp_sleep(r->rt, (int64_t)(r->seconds * 1000.0));
  r->stop = 1;
  r->elapsed_s = (double)(dbpb_now_ns() - t0) / 1e9;
  for (i = 0; i < spawned; i++) dbp_join(cos[i], NULL);
  dbp_pool_get_stats(r->pool, &r->st1);

out:
  free(cos);
  if (r->start) dbp_event_free(r->start);
  if (r->warm) dbp_waitgroup_free(r->warm);
  dbp_pool_close(r->pool, 10000);
  return rc;
}

static int qb_cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return (x > y) - (x < y);
}

/* The q-quantile (0..1) of n sorted values, nearest rank. */
static uint32_t qb_quantile(const uint32_t *v, size_t n, double q) {
  size_t i;
  if (n == 0) return 0;
  i = (size_t)(q * (double)n);
  return v[i < n ? i : n - 1];
}

static void qb_usage(FILE *f) {
  fputs(
      "usage: dbpipe-bench queries --dsn DSN [--clients N] [--pool P] [--seconds S]\n"
      "                            [--sql SQL] [--ids K] [--api helper|acquire]\n"
      "                            [--no-pipeline] [--depth D] [--inline] [--keep-session]\n"
      "  --dsn DSN      postgresql://... or mysql://... (default: $DBPIPE_PG_DSN)\n"
      "  --clients N    coroutines issuing queries (default 16)\n"
      "  --pool P       pooled connections (default 4)\n"
      "  --seconds S    measured time (default 10)\n"
      "  --sql SQL      point query with one parameter (default: pgbench_accounts by aid\n"
      "                 on PostgreSQL, bench by id on MariaDB)\n"
      "  --ids K        keys drawn from 1..K (default 1000000)\n"
      "  --api A        helper: one dbp_pool_query per query (default);\n"
      "                 acquire: acquire, dbp_query, dbp_fetch, release\n"
      "  --no-pipeline  helper on PostgreSQL: no shared pipelined connections\n"
      "  --depth D      helper on PostgreSQL: statements in flight per shared\n"
      "                 connection (the pool's pipeline_depth; default its own)\n"
      "  --inline       write the key into the SQL instead of binding it\n"
      "  --keep-session acquire: release only rolls back (no session reset per query)\n",
      f);
}

/* Parses a positive integer option; returns 0 or -1. */
static int qb_parse_u64(const char *s, uint64_t *out) {
  char *end;
  unsigned long long v;
  if (!s || !*s || *s == '-') return -1;
  v = strtoull(s, &end, 10);
  if (*end || v == 0) return -1;
  *out = v;
  return 0;
}

int dbpb_queries(int argc, char **argv) {
  static const struct option longopts[] = {{"dsn", required_argument, NULL, 'd'},
                                           {"clients", required_argument, NULL, 'c'},
                                           {"pool", required_argument, NULL, 'p'},
                                           {"seconds", required_argument, NULL, 's'},
                                           {"sql", required_argument, NULL, 'q'},
                                           {"ids", required_argument, NULL, 'k'},
                                           {"inline", no_argument, NULL, 'i'},
                                           {"keep-session", no_argument, NULL, 'K'},
                                           {"api", required_argument, NULL, 'a'},
                                           {"no-pipeline", no_argument, NULL, 'P'},
                                           {"depth", required_argument, NULL, 'D'},
                                           {"help", no_argument, NULL, 'h'},
                                           {NULL, 0, NULL, 0}};
  qb_run r;
  dbp_co *main_co = NULL;
  uint32_t *all = NULL;
  size_t i, n = 0;
  uint64_t v, stmts, piped;
  char depth[24];
  int opt, rc, status = 1, inline_key = 0;

  memset(&r, 0, sizeof r);
  r.dsn = getenv("DBPIPE_PG_DSN");
  r.clients = 16;
  r.pool_size = 4;
  r.seconds = 10;
  r.ids = 1000000;
  r.helper = true;

  optind = 1;
  while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
    switch (opt) {
      case 'd':
        r.dsn = optarg;
        break;
      case 'c':
      case 'p':
      case 'k':
      case 'D':
        if (qb_parse_u64(optarg, &v) < 0) {
          fprintf(stderr, "dbpipe-bench queries: --%s wants a positive integer\n",
                  opt == 'c'   ? "clients"
                  : opt == 'p' ? "pool"
                  : opt == 'D' ? "depth"
                               : "ids");
          return 2;
        }
        if (opt == 'c')
          r.clients = (size_t)v;
        else if (opt == 'p')
          r.pool_size = (size_t)v;
        else if (opt == 'D')
          r.depth = (size_t)v;
        else
          r.ids = v;
        break;
      case 'a':
        if (!strcmp(optarg, "helper")) {
          r.helper = true;
        } else if (!strcmp(optarg, "acquire")) {
          r.helper = false;
        } else {
          fputs("dbpipe-bench queries: --api wants helper or acquire\n", stderr);
          return 2;
        }
        break;
      case 'P':
        r.no_pipeline = true;
        break;
      case 's':
        r.seconds = strtod(optarg, NULL);
        if (!(r.seconds > 0)) {
          fputs("dbpipe-bench queries: --seconds wants a positive number\n", stderr);
          return 2;
        }
        break;
      case 'q':
        r.sql = optarg;
        break;
      case 'i':
        inline_key = 1;
        break;
      case 'K':
        r.keep_session = true;
        break;
      case 'h':
        qb_usage(stdout);
        return 0;
      default:
        qb_usage(stderr);
        return 2;
    }
  }
  if (optind < argc || !r.dsn || !*r.dsn) {
    qb_usage(stderr);
    return 2;
  }
  if (!r.sql) {
    int my = strncmp(r.dsn, "mysql:", 6) == 0 || strncmp(r.dsn, "mariadb:", 8) == 0;
    r.sql = my ? QB_MY_SQL : QB_PG_SQL;
  }
  if (inline_key) {
    const char *q = strstr(r.sql, "$1");
    size_t holder = 2;
    if (!q) {
      q = strchr(r.sql, '?');
      holder = 1;
    }
    if (!q || strlen(r.sql) > 1000) {
      fputs("dbpipe-bench queries: --inline needs a short SQL with a $1 or ? placeholder\n",
            stderr);
      return 2;
    }
    r.sql_head = (size_t)(q - r.sql);
    r.sql_holder = holder;
  }

  r.cl = calloc(r.clients, sizeof *r.cl);
  if (!r.cl) {
    fputs("dbpipe-bench queries: out of memory\n", stderr);
    return 1;
  }
  for (i = 0; i < r.clients; i++) {
    r.cl[i].run = &r;
    r.cl[i].rng = UINT64_C(0x9e3779b97f4a7c15) * (i + 1);
  }

  rc = dbp_rt_new(&r.rt, NULL, NULL);
  if (rc < 0) {
    fprintf(stderr, "dbpipe-bench queries: %s\n", dbp_strerror(rc));
    goto out;
  }
  rc = dbp_spawn(r.rt, &main_co, qb_main, &r, NULL);
  if (rc == 0) {
    dbp_rt_run(r.rt);
    rc = dbp_join(main_co, NULL);
  }
  dbp_rt_free(r.rt);
  if (rc < 0) {
    fprintf(stderr, "dbpipe-bench queries: %s\n", dbp_strerror(rc));
    goto out;
  }

  for (i = 0; i < r.clients; i++) n += r.cl[i].nlat;
  all = malloc((n ? n : 1) * sizeof *all);
  if (!all) {
    fputs("dbpipe-bench queries: out of memory\n", stderr);
    goto out;
  }
  n = 0;
  for (i = 0; i < r.clients; i++) {
    memcpy(all + n, r.cl[i].lat_us, r.cl[i].nlat * sizeof *all);
    n += r.cl[i].nlat;
  }
  qsort(all, n, sizeof *all, qb_cmp_u32);

  if (r.have_err) {
    char msg[700];
    fprintf(stderr, "dbpipe-bench queries: %" PRIu64 " failed; first: %s\n", r.errors,
            dbp_dberr_format(&r.first_err, msg, sizeof msg));
  }
  stmts = r.st1.statements - r.st0.statements;
  piped = r.st1.pipelined - r.st0.pipelined;
  if (r.depth)
    snprintf(depth, sizeof depth, "%zu", r.depth);
  else
    snprintf(depth, sizeof depth, "default");
  printf("qps=%.0f p50_us=%" PRIu32 " p99_us=%" PRIu32
         " api=%s pipeline=%s depth=%s clients=%zu pool=%zu seconds=%g reset=%s"
         " errors=%" PRIu64 " statements=%" PRIu64 " pipelined=%.2f abandoned=%" PRIu64 "\n",
         r.elapsed_s > 0 ? (double)n / r.elapsed_s : 0.0, qb_quantile(all, n, 0.50),
         qb_quantile(all, n, 0.99), r.helper ? "helper" : "acquire", r.no_pipeline ? "off" : "on",
         depth, r.clients, r.pool_size, r.seconds, r.keep_session ? "rollback" : "session",
         r.errors, stmts, stmts ? (double)piped / (double)stmts : 0.0,
         r.st1.abandoned - r.st0.abandoned);
  status = n > 0 ? 0 : 1;

out:
  free(all);
  if (r.cl)
    for (i = 0; i < r.clients; i++) free(r.cl[i].lat_us);
  free(r.cl);
  return status;
}
