/* dbpipe-bench: micro and end-to-end benchmarks, one subcommand each.
 * bench/run calls these beside the peers and turns the lines into a table. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "bench.h"

typedef struct {
  const char *name;
  int (*run)(int argc, char **argv);
  const char *help;
} subcommand;

/* Add a benchmark here: name, entry point (declared in bench.h), one line
 * of help. */
static const subcommand subcommands[] = {
    {"coro", dbpb_coro, "coroutine switch, spawn+join and idle memory per coroutine"},
    {"queries", dbpb_queries, "point queries from many coroutines over a connection pool"},
};

#define N_SUBCOMMANDS (sizeof subcommands / sizeof subcommands[0])

uint64_t dbpb_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void usage(FILE *out) {
  fprintf(out, "usage: dbpipe-bench SUBCOMMAND [OPTIONS]\n\nsubcommands:\n");
  for (size_t i = 0; i < N_SUBCOMMANDS; i++)
    fprintf(out, "  %-10s %s\n", subcommands[i].name, subcommands[i].help);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
    usage(stdout);
    return 0;
  }
  for (size_t i = 0; i < N_SUBCOMMANDS; i++)
    if (!strcmp(argv[1], subcommands[i].name)) return subcommands[i].run(argc - 1, argv + 1);
  fprintf(stderr, "dbpipe-bench: unknown subcommand '%s'\n", argv[1]);
  usage(stderr);
  return 2;
}
