/* dbpipe runtime: stackful coroutines scheduled on a libuv loop.
 *
 * A dbp_rt owns a set of coroutines and runs them on one uv_loop_t, either
 * one the caller already runs (a service's own loop) or one it creates.
 * Nothing is global; every object hangs off its dbp_rt.
 *
 * Suspension points are explicit: every function documented as "waits"
 * must be called from a coroutine of the same runtime (else DBP_ENOTCORO).
 * A wait ends in one of three ways: what it waited for happened (0), its
 * timeout or the coroutine's deadline passed (DBP_ETIMEDOUT), or the
 * coroutine was cancelled (DBP_ECANCELED).
 *
 * Timeouts and durations, one rule for every layer of dbpipe (rt, db,
 * pool and above), all in milliseconds:
 *
 *   a timeout ARGUMENT of a call that waits: DBP_FOREVER (-1) waits
 *     without a limit; 0 does not wait: the call succeeds if it can
 *     complete without waiting (a permit is free, an item is queued, the
 *     fd is ready, the coroutine has finished, a connection is idle) and
 *     otherwise fails at once with DBP_ETIMEDOUT, leaving nothing queued
 *     and letting no other coroutine run; n > 0 waits at most n ms.
 *   an options FIELD (dbp_rt_options, dbp_pool_options, ...): 0 means the
 *     default, so a zeroed struct is all defaults; DBP_FOREVER means no
 *     limit. A field that needs a real zero says how to ask for it (the
 *     pool's DBP_POOL_NOW).
 *
 * A pending cancellation and a passed deadline are reported by any call
 * that would have to wait, a zero timeout included. dbp_sleep takes a
 * duration, not a timeout (0 is dbp_yield).
 *
 * Cancellation is delivered once, as DBP_ECANCELED from the next wait the
 * coroutine makes (or the one it is in). Waits after that work normally, so
 * the coroutine's cleanup can still close files and connections; it should
 * return promptly, and usually returns DBP_ECANCELED itself.
 */
#ifndef DBPIPE_RT_H
#define DBPIPE_RT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DBP_FOREVER ((int64_t)-1)

typedef struct dbp_rt_s dbp_rt;
typedef struct dbp_co_s dbp_co;

/* A coroutine body. Returns 0 or a negative dbpipe error; may store a result
 * pointer in *result (it starts NULL). Both are reported by dbp_join. */
typedef int (*dbp_co_fn)(void *arg, void **result);

/* Stacks are mmap'd and only the pages a coroutine touches cost memory
 * (an idle coroutine costs about 4 KiB). A stack has a guard page while
 * the process's mapping budget (vm.max_map_count) allows, about 24,000
 * stacks on a default kernel; beyond that it has a canary checked at every
 * switch. An overflow prints "dbpipe: stack overflow in coroutine '<name>'"
 * and kills the process with SIGSEGV.
 *
 * To tell a guard-page hit from other faults, the first runtime that wants
 * it installs a SIGSEGV and SIGBUS handler for the whole process (on an
 * alternate signal stack per thread); faults that are not an overflow go
 * on to the handler installed before it. A program with handlers of its
 * own that must stay first sets no_fault_handler in every runtime: then
 * nothing is installed, a guard-page hit is an ordinary SIGSEGV, and the
 * canary still reports an overflow at the coroutine's next switch. Once
 * installed, the handler stays for the life of the process.
 *
 * A stack size is rounded up to whole pages and must lie within
 * [DBP_STACK_MIN, DBP_STACK_MAX], else DBP_EINVAL. The minimum is twice
 * what the deepest driver call we know of needs: a PostgreSQL connect over
 * TLS (libpq, OpenSSL's handshake, glibc's printf family) peaks at just
 * over 16 KiB on x86-64, so the runtime's own frames and a driver call fit
 * with room to spare (tests/db/test_rt_stack_min.c runs both drivers on
 * it). The maximum is eight times the usual 8 MiB thread stack, far beyond what a
 * coroutine should need, so that a size computed wrongly (a negative
 * number cast to size_t, bytes mistaken for KiB) fails at once instead of
 * reserving absurd address space. */
#define DBP_STACK_MIN ((size_t)32 * 1024)
#define DBP_STACK_MAX ((size_t)64 * 1024 * 1024)

typedef struct dbp_rt_options {
  size_t stack_size;     /* default stack per coroutine; 0 = 64 KiB */
  bool no_fault_handler; /* leave SIGSEGV / SIGBUS alone; default false */
} dbp_rt_options;

/* Creates a runtime on `loop`, or on a loop of its own when `loop` is NULL.
 * `opts` may be NULL (all defaults). DBP_EINVAL for a stack_size out of
 * range. */
DBP_EXTERN int dbp_rt_new(dbp_rt **out, uv_loop_t *loop, const dbp_rt_options *opts);
/* Runs the loop until no coroutine is left and the loop has nothing to do
 * (uv_run(UV_RUN_DEFAULT)). For a caller-supplied loop the caller may instead
 * run the loop itself: the runtime keeps it alive only while a coroutine is
 * ready, or waits with a timeout, on an fd or on a libuv request. Returns 0 when every coroutine
 * finished; DBP_EBUSY when the loop ran dry while some still wait for
 * something nothing will deliver (a deadlock; they stay, and can be
 * cancelled and run again); DBP_EINVAL when called from a coroutine. */
DBP_EXTERN int dbp_rt_run(dbp_rt *rt);
/* Frees the runtime. Fails with DBP_EBUSY (changing nothing) while
 * coroutines are alive or fd watchers open, or while other handles are open
 * on the runtime's own loop.
 * Finished coroutines nobody joined are freed with it. Closes the runtime's
 * handles and, for its own loop, the loop too; on a caller's loop the
 * memory goes in the handles' close callbacks, so the caller runs its loop
 * once more (as for any libuv handle). */
DBP_EXTERN int dbp_rt_free(dbp_rt *rt);
DBP_EXTERN uv_loop_t *dbp_rt_loop(dbp_rt *rt);
/* Number of coroutines spawned and not yet finished. */
DBP_EXTERN size_t dbp_rt_alive(dbp_rt *rt);
/* The running coroutine, or NULL when called outside one. */
DBP_EXTERN dbp_co *dbp_current(dbp_rt *rt);
/* Milliseconds of the loop's clock (uv_now). */
DBP_EXTERN uint64_t dbp_now(dbp_rt *rt);

/* ---- coroutines ---- */

typedef struct dbp_spawn_options {
  const char *name;  /* copied (up to 63 bytes); shown in diagnostics */
  size_t stack_size; /* 0 = the runtime's default; else within
                        [DBP_STACK_MIN, DBP_STACK_MAX] */
  bool detached;     /* nobody joins: resources go when it finishes */
} dbp_spawn_options;

/* Creates a coroutine that will run `fn(arg)` soon (it is queued, not run
 * inline). Callable from inside or outside a coroutine. Unless detached, the
 * handle stays valid until dbp_join or dbp_detach. `opts` may be NULL;
 * `out` may be NULL only for detached coroutines. DBP_EINVAL for a
 * stack_size out of range. */
DBP_EXTERN int dbp_spawn(dbp_rt *rt, dbp_co **out, dbp_co_fn fn, void *arg,
                         const dbp_spawn_options *opts);
/* Waits for `co` to finish and frees it. Returns the coroutine's return code
 * and stores its result pointer in *result (may be NULL). If the joiner is
 * cancelled while waiting, returns DBP_ECANCELED and `co` keeps running
 * (it is still owned by the caller: join again, cancel or detach it).
 * A coroutine that has finished can be joined from anywhere, also outside
 * any coroutine (e.g. after dbp_rt_run returned); joining one that has not
 * finished from outside a coroutine returns DBP_ENOTCORO and changes
 * nothing. DBP_EBUSY when another coroutine is already joining it. */
DBP_EXTERN int dbp_join(dbp_co *co, void **result);
/* Join with a timeout: DBP_ETIMEDOUT leaves `co` running and still owned. */
DBP_EXTERN int dbp_join_timeout(dbp_co *co, void **result, int64_t timeout_ms);
/* Gives up ownership: the coroutine is freed when it finishes. */
DBP_EXTERN void dbp_detach(dbp_co *co);
/* Requests cancellation. A no-op for a finished coroutine. Never waits. */
DBP_EXTERN void dbp_cancel(dbp_co *co);
DBP_EXTERN bool dbp_co_done(const dbp_co *co);
DBP_EXTERN const char *dbp_co_name(const dbp_co *co);
/* True when a cancellation was requested for the running coroutine and has
 * not yet been delivered by a wait. */
DBP_EXTERN bool dbp_cancel_pending(dbp_rt *rt);

/* Waits: lets every other ready coroutine run once, then continues. */
DBP_EXTERN int dbp_yield(dbp_rt *rt);
/* Waits `ms` milliseconds (a duration, not a timeout); 0 is dbp_yield,
 * DBP_FOREVER sleeps until the coroutine is cancelled or its deadline
 * passes. */
DBP_EXTERN int dbp_sleep(dbp_rt *rt, int64_t ms);

/* Deadlines: from now on, any wait of the running coroutine that would end
 * after now+ms returns DBP_ETIMEDOUT when the deadline passes (with ms 0,
 * every wait that cannot complete at once). DBP_FOREVER sets none. Scopes
 * nest; the nearest deadline wins. Restore with dbp_deadline_pop(rt,
 * token). */
DBP_EXTERN int dbp_deadline_push(dbp_rt *rt, int64_t ms, uint64_t *token);
DBP_EXTERN void dbp_deadline_pop(dbp_rt *rt, uint64_t token);

/* Runs fn(arg) in a new coroutine and waits for it at most `timeout_ms`.
 * On timeout the child is cancelled, its cleanup awaited, and
 * DBP_ETIMEDOUT returned. Otherwise returns the child's code and result.
 * With 0 the child is cancelled before it starts (as asyncio.wait_for
 * does): fn still runs, but its first wait returns DBP_ECANCELED, and
 * DBP_ETIMEDOUT comes back once it has finished. */
DBP_EXTERN int dbp_wait_for(dbp_rt *rt, dbp_co_fn fn, void *arg, int64_t timeout_ms, void **result);

/* Gathers n coroutines (which the caller owns; all are joined and freed on
 * return). results[i] and errs[i] (either array may be NULL) receive each
 * coroutine's result and code. With DBP_GATHER_FIRST_ERROR the first failure
 * cancels the others and is returned; with DBP_GATHER_ALL every coroutine
 * runs to the end and 0 is returned (errors only in errs, like
 * return_exceptions=True). If the gatherer itself is cancelled, every child
 * is cancelled and awaited, and DBP_ECANCELED returned. */
enum { DBP_GATHER_FIRST_ERROR = 0, DBP_GATHER_ALL = 1 };
DBP_EXTERN int dbp_gather(dbp_rt *rt, dbp_co **cos, size_t n, void **results, int *errs, int mode);
/* Waits until any of the n coroutines has finished; stores its index in
 * *index. Joins nothing. */
DBP_EXTERN int dbp_wait_any(dbp_rt *rt, dbp_co **cos, size_t n, int64_t timeout_ms, size_t *index);

/* As-completed: hands out finished coroutines in the order they finish. */
typedef struct dbp_as_completed_s dbp_as_completed;
DBP_EXTERN int dbp_as_completed_new(dbp_rt *rt, dbp_co **cos, size_t n, dbp_as_completed **out);
/* Waits for the next finished coroutine and stores its index in *index;
 * DBP_ECLOSED when all were handed out. The caller still joins them. */
DBP_EXTERN int dbp_as_completed_next(dbp_as_completed *ac, int64_t timeout_ms, size_t *index);
DBP_EXTERN void dbp_as_completed_free(dbp_as_completed *ac);

/* Runs fn(arg) on libuv's thread pool and waits for it; fn must not call
 * into the runtime. If the coroutine is cancelled (or its deadline passes)
 * while the work is queued, the work is dropped; once it runs it always
 * completes (the wait then returns DBP_ECANCELED / DBP_ETIMEDOUT after it
 * finished). */
DBP_EXTERN int dbp_work(dbp_rt *rt, void (*fn)(void *arg), void *arg);

/* ---- awaiting any libuv callback ---- */

/* A waiter connects a libuv callback to a waiting coroutine:
 *
 *   struct my_req { uv_fs_t req; dbp_waiter w; } r;   (often on the stack)
 *   dbp_waiter_init(&r.w);
 *   start the request; its callback calls dbp_wake(&r.w, status);
 *   rc = dbp_await(rt, &r.w, timeout_ms);
 *   if (rc < 0) {                 (DBP_ETIMEDOUT or DBP_ECANCELED)
 *     uv_cancel((uv_req_t *)&r.req);  (or stop/close the handle)
 *     dbp_await_done(rt, &r.w);   (the callback has now run)
 *   }
 *
 * The rule: when dbp_await returns DBP_ETIMEDOUT or DBP_ECANCELED, the
 * callback has not run yet and still may. Before the memory of the request
 * or the waiter goes away, the caller must make sure it never will (stop or
 * close the handle, free it in its close callback) or wait for it with
 * dbp_await_done, which nothing interrupts. So no callback ever touches a
 * dead stack. libuv calls the callback of a request even when uv_cancel
 * succeeded (with UV_ECANCELED), so after uv_cancel always dbp_await_done.
 *
 * dbp_wake may come before dbp_await (the result is kept), only the first
 * dbp_wake counts, and it must be called on the loop's thread. The fields
 * ending in an underscore are private. */
typedef struct dbp_waiter_s {
  int result; /* the value given to dbp_wake */
  void *data; /* free for the caller */
  /* private */
  int fired_;
  dbp_co *co_;
  struct dbp_waiter_s *prev_, *next_;
  void *queue_;
} dbp_waiter;

DBP_EXTERN void dbp_waiter_init(dbp_waiter *w);
/* Waits until dbp_wake(w, ...) was called (returns 0; the value is in
 * w->result), the timeout or the coroutine's deadline passes
 * (DBP_ETIMEDOUT) or the coroutine is cancelled (DBP_ECANCELED). Returns 0
 * at once when w was woken already. DBP_ENOTCORO outside a coroutine of rt,
 * DBP_EBUSY when another coroutine waits on w. */
DBP_EXTERN int dbp_await(dbp_rt *rt, dbp_waiter *w, int64_t timeout_ms);
/* Waits until dbp_wake(w, ...) was called, ignoring timeouts, deadlines and
 * cancellation (a cancellation that arrives meanwhile stays pending for the
 * next wait). For the clean-up after an interrupted dbp_await. Returns 0,
 * or DBP_ENOTCORO / DBP_EBUSY like dbp_await. */
DBP_EXTERN int dbp_await_done(dbp_rt *rt, dbp_waiter *w);
/* Records `result` and makes the coroutine waiting on w (if any) ready to
 * run; it runs later, from the loop, never inside this call. Later calls on
 * the same waiter are ignored until dbp_waiter_init. */
DBP_EXTERN void dbp_wake(dbp_waiter *w, int result);
/* True once dbp_wake was called. */
DBP_EXTERN bool dbp_waiter_fired(const dbp_waiter *w);

/* ---- wait queues: first come, first served ----
 *
 * The queue behind the semaphore, mutex and channels, for a structure of
 * your own that hands things to waiting coroutines in arrival order:
 *
 *   struct my_wait { dbp_waiter w; thing *got; } mw;
 *   dbp_waiter_init(&mw.w);
 *   dbp_waitq_push(&q, &mw.w);
 *   rc = dbp_await(rt, &mw.w, timeout_ms);
 *
 * and the side that frees a thing pops the oldest waiter, fills it in and
 * wakes it (dbp_waitq_pop, then dbp_wake). A waiter is in one queue at a
 * time and leaves it by itself, so the queue never holds a dead waiter:
 * dbp_wake takes it out, and so does a dbp_await that returns
 * DBP_ETIMEDOUT or DBP_ECANCELED (even one that ends at once: a zero
 * timeout, a cancellation already pending). A waiter that was woken but
 * whose dbp_await failed anyway (both in the same loop turn) was handed
 * something it must pass on: check dbp_waiter_fired after a failed wait.
 * A zeroed dbp_waitq is empty; the fields are private. */
typedef struct dbp_waitq {
  dbp_waiter *head_, *tail_;
  size_t len_;
} dbp_waitq;

/* Queues w (initialised, not fired, in no queue) behind everyone. */
DBP_EXTERN void dbp_waitq_push(dbp_waitq *q, dbp_waiter *w);
/* Queues w ahead of everyone: for a waiter that was served but could not
 * use its turn and keeps its place. */
DBP_EXTERN void dbp_waitq_push_front(dbp_waitq *q, dbp_waiter *w);
/* Takes the oldest waiter out of q without waking it; NULL when empty. */
DBP_EXTERN dbp_waiter *dbp_waitq_pop(dbp_waitq *q);
/* Takes w out of the queue it is in; a no-op when it is in none. */
DBP_EXTERN void dbp_waitq_remove(dbp_waiter *w);
/* Pops every waiter, oldest first, and wakes it with `result`. */
DBP_EXTERN void dbp_waitq_wake_all(dbp_waitq *q, int result);
DBP_EXTERN size_t dbp_waitq_len(const dbp_waitq *q);

/* ---- name resolution, through uv_getaddrinfo (waits) ---- */

/* Resolves host/service on libuv's thread pool (either may be NULL, not
 * both; `hints` may be NULL). On success *res holds the list, to be freed
 * with dbp_freeaddrinfo. DBP_ERESOLVE when the name does not resolve. On
 * cancellation or deadline the request is cancelled (or, once running,
 * awaited and its answer freed) and DBP_ECANCELED / DBP_ETIMEDOUT
 * returned. */
DBP_EXTERN int dbp_getaddrinfo(dbp_rt *rt, const char *host, const char *service,
                               const struct addrinfo *hints, struct addrinfo **res);
DBP_EXTERN void dbp_freeaddrinfo(struct addrinfo *res);

/* ---- waiting for a file descriptor ---- */

enum { DBP_READABLE = 1, DBP_WRITABLE = 2 };

/* One uv_poll_t per socket, reused across waits. A watcher must be closed
 * (dbp_fdwatch_close) before its fd is closed. One coroutine waits on a
 * watcher at a time (another gets DBP_EBUSY). */
typedef struct dbp_fdwatch_s dbp_fdwatch;
/* DBP_EEXIST when an open watcher of the runtime already has fd. */
DBP_EXTERN int dbp_fdwatch_new(dbp_rt *rt, int fd, dbp_fdwatch **out);
/* Waits until the fd is ready for any of `events`; stores what is ready in
 * *revents (may be NULL). Errors and hang-ups count as ready. With a
 * timeout of 0 it looks at the fd without waiting (poll(2)). */
DBP_EXTERN int dbp_fdwatch_wait(dbp_fdwatch *w, int events, int64_t timeout_ms, int *revents);
DBP_EXTERN int dbp_fdwatch_fd(const dbp_fdwatch *w);
/* Does not wait: ends the wait of the coroutine waiting on w (if any),
 * which returns 0 with *revents 0, so that it looks at its state again. */
DBP_EXTERN void dbp_fdwatch_kick(dbp_fdwatch *w);
/* Stops watching at once: the fd may be closed right after the call, and
 * its number watched again by a new watcher. A coroutine waiting on w gets
 * DBP_ECLOSED. Memory is released after libuv's close callback. */
DBP_EXTERN void dbp_fdwatch_close(dbp_fdwatch *w);

/* ---- files, through uv_fs_* (each call waits) ---- */

DBP_EXTERN int dbp_fs_open(dbp_rt *rt, const char *path, int flags, int mode, int *fd);
/* Writes all of buf (retrying short writes). offset < 0 = current position. */
DBP_EXTERN int dbp_fs_write(dbp_rt *rt, int fd, const void *buf, size_t len, int64_t offset);
DBP_EXTERN int dbp_fs_read(dbp_rt *rt, int fd, void *buf, size_t len, int64_t offset,
                           size_t *nread);
DBP_EXTERN int dbp_fs_fsync(dbp_rt *rt, int fd);
DBP_EXTERN int dbp_fs_close(dbp_rt *rt, int fd);
DBP_EXTERN int dbp_fs_rename(dbp_rt *rt, const char *from, const char *to);
DBP_EXTERN int dbp_fs_unlink(dbp_rt *rt, const char *path);
DBP_EXTERN int dbp_fs_mkdir_p(dbp_rt *rt, const char *path, int mode);

/* ---- channels: bounded FIFO queues of pointers ---- */

typedef struct dbp_chan_s dbp_chan;
/* capacity >= 1. */
DBP_EXTERN int dbp_chan_new(dbp_rt *rt, size_t capacity, dbp_chan **out);
/* A priority channel: dbp_chan_recv returns the item with the lowest
 * priority value first, FIFO among equals. */
DBP_EXTERN int dbp_chan_new_priority(dbp_rt *rt, size_t capacity, dbp_chan **out);
/* Waits for room. DBP_ECLOSED if the channel is (or gets) closed. With a
 * timeout of 0, DBP_ETIMEDOUT when full (dbp_chan_try_send says
 * DBP_EAGAIN instead and does not report cancellation). */
DBP_EXTERN int dbp_chan_send(dbp_chan *ch, void *item, int64_t timeout_ms);
DBP_EXTERN int dbp_chan_send_prio(dbp_chan *ch, void *item, int64_t priority, int64_t timeout_ms);
/* Waits for an item. After close, remaining items are still delivered;
 * then DBP_ECLOSED. */
DBP_EXTERN int dbp_chan_recv(dbp_chan *ch, void **item, int64_t timeout_ms);
/* Never wait: DBP_EAGAIN when full / empty. */
DBP_EXTERN int dbp_chan_try_send(dbp_chan *ch, void *item);
DBP_EXTERN int dbp_chan_try_recv(dbp_chan *ch, void **item);
/* Wakes every waiter; later sends fail with DBP_ECLOSED. Idempotent. */
DBP_EXTERN void dbp_chan_close(dbp_chan *ch);
DBP_EXTERN size_t dbp_chan_len(const dbp_chan *ch);
/* Frees a channel nobody waits on; items still inside are not freed. */
DBP_EXTERN void dbp_chan_free(dbp_chan *ch);

/* ---- semaphore, mutex, event, wait group (FIFO waiters) ----
 * Each wait is cancellable and takes a timeout (0: take the permit, the
 * lock, or see the event or count, if that needs no wait; else
 * DBP_ETIMEDOUT at once). A release, unlock or set
 * hands over to waiters in the order they came. Freeing one of these while
 * coroutines wait on it wakes them with DBP_ECLOSED. */

typedef struct dbp_sem_s dbp_sem;
DBP_EXTERN int dbp_sem_new(dbp_rt *rt, size_t permits, dbp_sem **out);
DBP_EXTERN int dbp_sem_acquire(dbp_sem *s, int64_t timeout_ms);
DBP_EXTERN void dbp_sem_release(dbp_sem *s);
DBP_EXTERN size_t dbp_sem_available(const dbp_sem *s);
DBP_EXTERN void dbp_sem_free(dbp_sem *s);

typedef struct dbp_mutex_s dbp_mutex;
DBP_EXTERN int dbp_mutex_new(dbp_rt *rt, dbp_mutex **out);
DBP_EXTERN int dbp_mutex_lock(dbp_mutex *m, int64_t timeout_ms);
DBP_EXTERN void dbp_mutex_unlock(dbp_mutex *m);
DBP_EXTERN void dbp_mutex_free(dbp_mutex *m);

typedef struct dbp_event_s dbp_event;
DBP_EXTERN int dbp_event_new(dbp_rt *rt, dbp_event **out);
/* Wakes all waiters; later waits return at once until cleared. */
DBP_EXTERN void dbp_event_set(dbp_event *e);
DBP_EXTERN void dbp_event_clear(dbp_event *e);
DBP_EXTERN bool dbp_event_is_set(const dbp_event *e);
DBP_EXTERN int dbp_event_wait(dbp_event *e, int64_t timeout_ms);
DBP_EXTERN void dbp_event_free(dbp_event *e);

typedef struct dbp_waitgroup_s dbp_waitgroup;
DBP_EXTERN int dbp_waitgroup_new(dbp_rt *rt, dbp_waitgroup **out);
DBP_EXTERN void dbp_waitgroup_add(dbp_waitgroup *wg, size_t n);
DBP_EXTERN void dbp_waitgroup_done(dbp_waitgroup *wg);
/* Waits until the count drops to zero. */
DBP_EXTERN int dbp_waitgroup_wait(dbp_waitgroup *wg, int64_t timeout_ms);
DBP_EXTERN void dbp_waitgroup_free(dbp_waitgroup *wg);

#ifdef __cplusplus
}
#endif

#endif /* DBPIPE_RT_H */
