/* `dbpipe-bench coro`: what a coroutine costs.
 *
 *   switch_ns      one context switch (half a round trip between the
 *                  scheduler's context and a coroutine's, through the same
 *                  dbp__ctx_switch the runtime uses);
 *   yield_ns       one dbp_yield from a coroutine, through the scheduler and
 *                  its ready queue and back (two switches and the queueing);
 *   spawn_join_ns  dbp_spawn of an empty coroutine, running it to the end
 *                  and dbp_join, from inside a coroutine;
 *   idle_kib       resident memory per idle coroutine, with 100,000 of them
 *                  alive, each having used 1 KiB of its stack;
 *   switch         asm or ucontext.
 *
 * Options: --switches N, --spawns N, --idle N.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "arch/ctx.h"
#include "bench.h"
#include "dbpipe/rt.h"

/* ---- raw switches ---- */

static dbp__ctx main_ctx, co_ctx;

static void pingpong(void *arg) {
  (void)arg;
  for (;;) dbp__ctx_switch(&co_ctx, &main_ctx);
}

static double measure_switch(long n) {
  size_t size = 64 * 1024;
  void *stack = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (stack == MAP_FAILED) return -1;
  dbp__ctx_make(&co_ctx, stack, size, pingpong, NULL);
  for (long i = 0; i < 1000; i++) dbp__ctx_switch(&main_ctx, &co_ctx); /* warm up */
  uint64_t t0 = dbpb_now_ns();
  for (long i = 0; i < n; i++) dbp__ctx_switch(&main_ctx, &co_ctx);
  uint64_t t1 = dbpb_now_ns();
  munmap(stack, size);
  return (double)(t1 - t0) / (2.0 * (double)n);
}

/* ---- yield through the scheduler ---- */

typedef struct {
  dbp_rt *rt;
  long n;
} yield_arg;

static int body_yield(void *arg, void **result) {
  (void)result;
  yield_arg *y = arg;
  for (long i = 0; i < y->n; i++)
    if (dbp_yield(y->rt) != 0) return DBP_EIO;
  return 0;
}

static double measure_yield(long n) {
  dbp_rt *rt;
  if (dbp_rt_new(&rt, NULL, NULL) != 0) return -1;
  yield_arg y = {rt, n};
  dbp_co *co;
  dbp_spawn(rt, &co, body_yield, &y, NULL);
  uint64_t t0 = dbpb_now_ns();
  dbp_rt_run(rt);
  uint64_t t1 = dbpb_now_ns();
  dbp_join(co, NULL);
  dbp_rt_free(rt);
  return (double)(t1 - t0) / (double)n;
}

/* ---- spawn + run + join ---- */

static int body_empty(void *arg, void **result) {
  (void)arg;
  (void)result;
  return 0;
}

typedef struct {
  dbp_rt *rt;
  long n;
  uint64_t ns;
} spawn_arg;

static int body_spawner(void *arg, void **result) {
  (void)result;
  spawn_arg *s = arg;
  for (long i = 0; i < 1000; i++) { /* warm the stack cache */
    dbp_co *c;
    if (dbp_spawn(s->rt, &c, body_empty, NULL, NULL) != 0 || dbp_join(c, NULL) != 0) return DBP_EIO;
  }
  uint64_t t0 = dbpb_now_ns();
  for (long i = 0; i < s->n; i++) {
    dbp_co *c;
    if (dbp_spawn(s->rt, &c, body_empty, NULL, NULL) != 0 || dbp_join(c, NULL) != 0) return DBP_EIO;
  }
  s->ns = dbpb_now_ns() - t0;
  return 0;
}

static double measure_spawn_join(long n) {
  dbp_rt *rt;
  if (dbp_rt_new(&rt, NULL, NULL) != 0) return -1;
  spawn_arg s = {rt, n, 0};
  dbp_co *co;
  dbp_spawn(rt, &co, body_spawner, &s, NULL);
  dbp_rt_run(rt);
  int rc = dbp_join(co, NULL);
  dbp_rt_free(rt);
  return rc == 0 ? (double)s.ns / (double)n : -1;
}

/* ---- memory per idle coroutine ---- */

static long resident_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  if (!f) return -1;
  long size, resident;
  int ok = fscanf(f, "%ld %ld", &size, &resident) == 2;
  fclose(f);
  return ok ? resident * sysconf(_SC_PAGESIZE) : -1;
}

static long count_maps(void) {
  FILE *f = fopen("/proc/self/maps", "r");
  if (!f) return -1;
  long n = 0;
  int c;
  while ((c = fgetc(f)) != EOF) n += c == '\n';
  fclose(f);
  return n;
}

typedef struct {
  dbp_rt *rt;
  dbp_event *go;
  long n, started;
  long rss_peak, maps_peak;
} idle_arg;

static int body_idle(void *arg, void **result) {
  (void)result;
  idle_arg *a = arg;
  volatile char scratch[1024]; /* a realistic bit of stack in use */
  memset((char *)scratch, 1, sizeof scratch);
  a->started++;
  return dbp_event_wait(a->go, DBP_FOREVER) + scratch[0] - 1;
}

static int body_idle_check(void *arg, void **result) {
  (void)result;
  idle_arg *a = arg;
  while (a->started < a->n) dbp_sleep(a->rt, 1);
  a->rss_peak = resident_bytes();
  a->maps_peak = count_maps();
  dbp_event_set(a->go);
  return 0;
}

static double measure_idle(long n, long *maps_peak) {
  dbp_rt *rt;
  if (dbp_rt_new(&rt, NULL, NULL) != 0) return -1;
  idle_arg a = {.rt = rt, .n = n};
  dbp_event_new(rt, &a.go);
  dbp_spawn_options d = {.detached = true};
  /* Warm up the allocator and the runtime so the baseline is fair. */
  dbp_spawn(rt, NULL, body_empty, NULL, &d);
  dbp_rt_run(rt);
  long before = resident_bytes();
  for (long i = 0; i < n; i++)
    if (dbp_spawn(rt, NULL, body_idle, &a, &d) != 0) return -1;
  dbp_spawn(rt, NULL, body_idle_check, &a, &d);
  dbp_rt_run(rt);
  dbp_event_free(a.go);
  dbp_rt_free(rt);
  *maps_peak = a.maps_peak;
  return (double)(a.rss_peak - before) / 1024.0 / (double)n;
}

static long opt_long(int argc, char **argv, const char *name, long def) {
  for (int i = 1; i + 1 < argc; i++)
    if (!strcmp(argv[i], name)) return atol(argv[i + 1]);
  return def;
}

int dbpb_coro(int argc, char **argv) {
  long switches = opt_long(argc, argv, "--switches", 20000000);
  long spawns = opt_long(argc, argv, "--spawns", 1000000);
  long idle = opt_long(argc, argv, "--idle", 100000);
  double sw = measure_switch(switches);
  double y = measure_yield(switches / 4);
  double sj = measure_spawn_join(spawns);
  long maps = 0;
  double kib = measure_idle(idle, &maps);
  if (sw < 0 || y < 0 || sj < 0 || kib < 0) {
    fprintf(stderr, "dbpipe-bench coro: a measurement failed\n");
    return 1;
  }
  fprintf(stderr,
          "coro: %ld coroutines alive used %ld kernel mappings (vm.max_map_count applies)\n", idle,
          maps);
  printf("switch_ns=%.1f yield_ns=%.1f spawn_join_ns=%.0f idle_kib=%.2f switch=%s\n", sw, y, sj,
         kib, dbp__ctx_kind());
  return 0;
}
