/* Coroutines: spawn, the entry trampoline, join, detach, finish listeners. */
#include <stdlib.h>
#include <string.h>

#include "rt/rt_internal.h"

/* The first function on every coroutine stack. Runs the body, then leaves
 * the stack for good: the scheduler releases it after this last switch. */
static void co_entry(void *arg) {
  dbp_co *co = arg;
  dbp_rt *rt = co->rt;
  DBP__FIBER_FINISH(NULL, &rt->sched_stack_bottom, &rt->sched_stack_size);
  co->rc = co->fn(co->arg, &co->result);
  co->state = DBP__DONE;
  DBP__FIBER_START(NULL, rt->sched_stack_bottom, rt->sched_stack_size);
  dbp__ctx_switch(&co->ctx, &rt->sched_ctx);
  abort(); /* a finished coroutine is never resumed */
}

/* Creates a coroutine and queues it. The coroutine's struct is owned by the
 * caller (through *out) until dbp_join or dbp_detach; its stack only while
 * it runs. Returns 0, DBP_EINVAL or DBP_ENOMEM. */
int dbp_spawn(dbp_rt *rt, dbp_co **out, dbp_co_fn fn, void *arg, const dbp_spawn_options *opts) {
  if (out) *out = NULL;
  if (!rt || !fn || rt->freeing) return DBP_EINVAL;
  bool detached = opts && opts->detached;
  if (!out && !detached) return DBP_EINVAL;
  if (opts && !dbp__stack_size_ok(opts->stack_size)) return DBP_EINVAL;
  dbp_co *co = malloc(sizeof *co);
  if (!co) return DBP_ENOMEM;
  memset(co, 0, offsetof(dbp_co, name));
  size_t size = opts && opts->stack_size ? opts->stack_size : rt->stack_size;
  co->stack = dbp__stack_get(rt, size);
  if (!co->stack) {
    free(co);
    return DBP_ENOMEM;
  }
  co->rt = rt;
  co->fn = fn;
  co->arg = arg;
  co->detached = detached;
  co->heap_idx = SIZE_MAX;
  co->deadline = DBP__NEVER;
  const char *name = opts && opts->name ? opts->name : "";
  size_t n = strlen(name);
  if (n >= sizeof co->name) n = sizeof co->name - 1;
  memcpy(co->name, name, n);
  co->name[n] = '\0';
  dbp__stack_name(co->stack, co->name);
  dbp__ctx_make(&co->ctx, co->stack->lo, co->stack->size, co_entry, co);
  co->all_next = rt->all;
  if (rt->all) rt->all->all_prev = co;
  rt->all = co;
  rt->alive++;
  dbp__make_ready(rt, co);
  if (out) *out = co;
  return 0;
}

void dbp__co_listen(dbp_co *co, dbp__listener *l, void (*fn)(dbp__listener *), void *data,
                    size_t index) {
  l->co = co;
  l->fn = fn;
  l->data = data;
  l->index = index;
  l->prev = NULL;
  l->next = co->listeners;
  if (co->listeners) co->listeners->prev = l;
  co->listeners = l;
}

void dbp__co_unlisten(dbp__listener *l) {
  dbp_co *co = l->co;
  if (!co) return;
  if (l->prev)
    l->prev->next = l->next;
  else
    co->listeners = l->next;
  if (l->next) l->next->prev = l->prev;
  l->prev = l->next = NULL;
  l->co = NULL;
}

/* After the last switch out of co: the stack goes back, listeners hear of
 * it, a detached coroutine is freed. */
void dbp__co_finished(dbp_rt *rt, dbp_co *co) {
  DBP_ASSERT(co->state == DBP__DONE && rt->alive > 0);
  DBP_ASSERT(co->heap_idx == SIZE_MAX && co->wait == NULL);
  dbp__stack_name(co->stack, NULL);
  dbp__stack_put(rt, co->stack);
  co->stack = NULL;
  co->cancel_pending = false;
  co->finish_seq = ++rt->finish_seq;
  rt->alive--;
  dbp__listener *l;
  while ((l = co->listeners)) {
    dbp__co_unlisten(l);
    l->fn(l);
  }
  if (co->detached) dbp__co_free(co);
}

void dbp__co_free(dbp_co *co) {
  dbp_rt *rt = co->rt;
  DBP_ASSERT(co->state == DBP__DONE && co->stack == NULL && co->listeners == NULL);
  if (co->all_prev)
    co->all_prev->all_next = co->all_next;
  else
    rt->all = co->all_next;
  if (co->all_next) co->all_next->all_prev = co->all_prev;
  free(co);
}

static void wake_listener(dbp__listener *l) {
  dbp_wake(l->data, 0);
}

void dbp__co_wait_done(dbp_rt *rt, dbp_co *co) {
  if (co->state == DBP__DONE) return;
  dbp_waiter w;
  dbp__listener l;
  dbp_waiter_init(&w);
  dbp__co_listen(co, &l, wake_listener, &w, 0);
  dbp_await_done(rt, &w);
}

int dbp_join_timeout(dbp_co *co, void **result, int64_t timeout_ms) {
  if (result) *result = NULL;
  if (!co || co->detached) return DBP_EINVAL;
  dbp_rt *rt = co->rt;
  if (co->state != DBP__DONE) {
    if (!rt->current) return DBP_ENOTCORO;
    if (rt->current == co) return DBP_EINVAL;
    if (co->joining) return DBP_EBUSY;
    dbp_waiter w;
    dbp__listener l;
    dbp_waiter_init(&w);
    dbp__co_listen(co, &l, wake_listener, &w, 0);
    co->joining = true;
    int rc = dbp_await(rt, &w, timeout_ms);
    co->joining = false;
    if (rc != 0) {
      dbp__co_unlisten(&l);
      return rc;
    }
  }
  int rc = co->rc;
  if (result) *result = co->result;
  dbp__co_free(co);
  return rc;
}

int dbp_join(dbp_co *co, void **result) {
  return dbp_join_timeout(co, result, DBP_FOREVER);
}

void dbp_detach(dbp_co *co) {
  if (!co || co->detached) return;
  if (co->state == DBP__DONE)
    dbp__co_free(co);
  else
    co->detached = true;
}

bool dbp_co_done(const dbp_co *co) {
  return co && co->state == DBP__DONE;
}
const char *dbp_co_name(const dbp_co *co) {
  return co ? co->name : NULL;
}
