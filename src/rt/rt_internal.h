/* Internal structures of the runtime, shared by the files of src/rt/. */
#ifndef DBP_RT_INTERNAL_H
#define DBP_RT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "arch/ctx.h"
#include "dbpipe/rt.h"
#include "util/assert.h"

#define DBP__NEVER UINT64_MAX
#define DBP__NAME_MAX 64

/* A coroutine stack: [lo, lo + size) is usable; the descriptor itself sits
 * just above it, at the top of the mapping. See stack.c. */
typedef struct dbp__stack {
  void *map; /* the whole mapping, guard page included */
  size_t map_len;
  char *lo;    /* lowest usable byte (just above the guard page) */
  size_t size; /* usable bytes, the descriptor excluded */
  size_t req;  /* the size it was asked for (the cache key) */
  long slot;   /* guard registry slot, -1 for a stack without guard page */
  unsigned vg_id;
  struct dbp__stack *next; /* cache link */
} dbp__stack;

/* Told when a coroutine finishes (join, wait_any, as_completed, gather). */
typedef struct dbp__listener {
  struct dbp__listener *prev, *next;
  dbp_co *co; /* the coroutine listened to; NULL once fired or removed */
  void (*fn)(struct dbp__listener *l);
  void *data;
  size_t index;
} dbp__listener;

enum { DBP__READY = 1, DBP__RUNNING, DBP__WAITING, DBP__DONE };

struct dbp_co_s {
  dbp__ctx ctx;
  dbp_rt *rt;
  dbp__stack *stack; /* NULL once finished */
  dbp_co_fn fn;
  void *arg;
  void *result;
  int rc;
  uint8_t state;
  bool detached;
  bool joining;
  bool cancel_pending;
  bool uninterruptible; /* the current wait ignores cancel and deadline */
  bool timeout_ok;      /* the current wait's own timeout is success (sleep) */
  bool by_deadline;     /* the current wait's expiry is the deadline's */
  dbp_co *ready_next;
  dbp_waiter *wait;    /* what the coroutine waits on (DBP__WAITING) */
  int wake_code;       /* 0, DBP_ETIMEDOUT or DBP_ECANCELED */
  uint64_t expiry;     /* loop time when the current wait times out */
  uint64_t timer_seq;  /* FIFO among equal expiries */
  size_t heap_idx;     /* position in the timer heap, SIZE_MAX if none */
  uint64_t deadline;   /* innermost deadline scope, DBP__NEVER if none */
  uint64_t finish_seq; /* completion order, 0 while running */
  dbp__listener *listeners;
  dbp_co *all_prev, *all_next;
  void *asan_fake;
  char name[DBP__NAME_MAX];
};

struct dbp_rt_s {
  uv_loop_t *loop;
  uv_loop_t own_loop;
  bool owns_loop;
  uv_idle_t idle;   /* active while coroutines are ready: drains them */
  uv_check_t check; /* drains what I/O callbacks woke, in the same turn */
  uv_timer_t timer; /* the earliest expiry of the timer heap */
  bool idle_on;
  bool draining;
  bool freeing;
  int closing;         /* handles whose close callback has not run yet */
  size_t watchers;     /* fd watchers not yet closed */
  dbp_fdwatch **by_fd; /* the open watcher of each fd (libuv wants one) */
  size_t by_fd_cap;
  dbp__ctx sched_ctx;
  dbp_co *current;
  dbp_co *ready_head, *ready_tail;
  dbp_co **heap;
  size_t heap_len, heap_cap;
  uint64_t timer_due;
  uint64_t timer_seq;
  size_t alive;
  dbp_co *all;
  uint64_t finish_seq;
  size_t stack_size;
  dbp__stack *cache;
  size_t cache_len;
  void *altstack; /* the sigaltstack this runtime installed, if any */
  size_t altstack_len;
  const void *sched_stack_bottom; /* for the sanitizer's fiber switches */
  size_t sched_stack_size;
};

/* ---- scheduler (sched.c) ---- */
enum { DBP__AWAIT_UNINTERRUPTIBLE = 1, DBP__AWAIT_TIMEOUT_OK = 2 };
/* Suspends the running coroutine of rt on w; see dbp_await. With
 * DBP__AWAIT_UNINTERRUPTIBLE, neither timeout, deadline nor cancellation
 * end the wait; with DBP__AWAIT_TIMEOUT_OK the wait's own timeout returns 0
 * (the deadline still returns DBP_ETIMEDOUT). On a non-zero return w has
 * been removed from any wait queue it was in. */
int dbp__await(dbp_rt *rt, dbp_waiter *w, int64_t timeout_ms, int flags);
void dbp__make_ready(dbp_rt *rt, dbp_co *co);
/* Switches from the running coroutine to the scheduler. */
void dbp__suspend(dbp_co *co);

/* ---- coroutines (co.c) ---- */
void dbp__co_listen(dbp_co *co, dbp__listener *l, void (*fn)(dbp__listener *), void *data,
                    size_t index);
void dbp__co_unlisten(dbp__listener *l);
/* Called by the scheduler after a coroutine's last switch. */
void dbp__co_finished(dbp_rt *rt, dbp_co *co);
void dbp__co_free(dbp_co *co);
/* Waits for co to finish without being interrupted (cleanup paths). */
void dbp__co_wait_done(dbp_rt *rt, dbp_co *co);

/* ---- stacks and the overflow handler (stack.c) ---- */
/* Sets up what rt needs from the process: the guard registry and, unless
 * `no_handler`, the overflow handler and this thread's signal stack. */
int dbp__stack_thread_init(dbp_rt *rt, bool no_handler);
/* True when `size` is 0 (the default) or a valid stack size. */
bool dbp__stack_size_ok(size_t size);
void dbp__stack_thread_fini(dbp_rt *rt);
dbp__stack *dbp__stack_get(dbp_rt *rt, size_t size);
void dbp__stack_put(dbp_rt *rt, dbp__stack *s);
void dbp__stack_cache_free(dbp_rt *rt);
/* Names the coroutine running on s for the overflow report (NULL: none). */
void dbp__stack_name(dbp__stack *s, const char *name);
/* Dies with an overflow report if the canary at the bottom of s is gone. */
void dbp__stack_check(const dbp__stack *s, const char *name);

/* ---- sanitizer fiber hooks ---- */
#if defined(__SANITIZE_ADDRESS__)
#define DBP__ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DBP__ASAN 1
#endif
#endif

#ifdef DBP__ASAN
#include <sanitizer/common_interface_defs.h>
#define DBP__FIBER_START(save, bottom, size) \
  __sanitizer_start_switch_fiber((save), (bottom), (size))
#define DBP__FIBER_FINISH(save, bottom, size) \
  __sanitizer_finish_switch_fiber((save), (bottom), (size))
#else
#define DBP__FIBER_START(save, bottom, size) ((void)(save), (void)(bottom), (void)(size))
#define DBP__FIBER_FINISH(save, bottom, size) ((void)(save), (void)(bottom), (void)(size))
#endif

#endif /* DBP_RT_INTERNAL_H */
