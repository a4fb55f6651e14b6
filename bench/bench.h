/* dbpipe-bench: one program, one subcommand per benchmark. Each subcommand
 * is a function in its own file, listed in the table of main.c, and prints
 * one line of key=value pairs on stdout (details and errors on stderr). */
#ifndef DBPIPE_BENCH_H
#define DBPIPE_BENCH_H

#include <stdint.h>

/* Nanoseconds of CLOCK_MONOTONIC. */
uint64_t dbpb_now_ns(void);

/* `dbpipe-bench coro`: context switch, spawn+join and memory per coroutine. */
int dbpb_coro(int argc, char **argv);

/* `dbpipe-bench queries`: point queries from many coroutines over a pool. */
int dbpb_queries(int argc, char **argv);

#endif /* DBPIPE_BENCH_H */
