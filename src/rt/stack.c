/* Coroutine stacks, and the one piece of process-wide state: the registry
 * of guard pages read by the stack-overflow signal handler.
 *
 * Stacks come from mmap(MAP_NORESERVE): pages are committed only when
 * touched, so a 64 KiB stack that uses 2 KiB costs one page of memory. A
 * stack is laid out as
 *
 *   [guard page, PROT_NONE][canary ... usable stack ...][descriptor]
 *    low addresses                                       high addresses
 *
 * Guard pages and the mapping budget. Each guarded stack costs two kernel
 * mappings (the guard and the stack cannot merge), and Linux limits a
 * process to vm.max_map_count mappings (65530 by default). So guard pages
 * are given out from a process-wide budget computed once from
 * /proc/sys/vm/max_map_count, the mappings the process already has, and a
 * reserve for everything else (a quarter of the limit): on a default kernel
 * about 24,000 stacks get a guard page. Stacks beyond the budget are plain
 * mappings without a guard page; adjacent ones merge into few kernel
 * mappings, so 100,000 coroutines and more fit on a default kernel.
 *
 * Every stack, guarded or not, also has a canary: its lowest 64 bytes must
 * stay zero. They are checked each time the coroutine switches back to the
 * scheduler, and a change is reported as a stack overflow naming the
 * coroutine. A zero canary costs no memory: reading a never-written page
 * maps the kernel's shared zero page.
 *
 * The overflow handler (SIGSEGV and SIGBUS, on an alternate signal stack),
 * installed by the first runtime that does not opt out, looks the fault
 * address up in the registry of guard ranges; a hit prints "dbpipe: stack
 * overflow in coroutine '<name>'" and dies of the original signal;
 * anything else goes to the handler that was installed before. The
 * registry is an array of atomics written under a mutex and read by the
 * handler without locks; it only ever touches async-signal-safe calls.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifdef DBP_VALGRIND
#include <valgrind/valgrind.h>
#endif

#include "rt/rt_internal.h"

#define CANARY_BYTES 64
#define CACHE_MAX 64
#define ALTSTACK_SIZE ((size_t)64 * 1024)

_Static_assert(DBP_STACK_MIN >= 4 * 4096, "room for the canary and the runtime's frames");

typedef struct guard_slot {
  _Atomic uintptr_t lo; /* 0: free */
  _Atomic uintptr_t hi;
  const char *_Atomic name;
} guard_slot;

static struct {
  pthread_once_t once, handler_once;
  pthread_mutex_t lock;
  guard_slot *slots;
  long *free_next; /* free list through slot indices */
  long free_head;
  size_t cap;
  _Atomic size_t hwm; /* slots [0, hwm) may be in use */
  size_t page;
  struct sigaction old_segv, old_bus;
} reg = {.once = PTHREAD_ONCE_INIT,
         .handler_once = PTHREAD_ONCE_INIT,
         .lock = PTHREAD_MUTEX_INITIALIZER,
         .free_head = -1};

/* ---- the signal handler (async-signal-safe code only) ---- */

static size_t safe_strlen(const char *s) {
  size_t n = 0;
  while (s[n]) n++;
  return n;
}

static void say(const char *s) {
  size_t n = safe_strlen(s);
  while (n > 0) {
    ssize_t w = write(STDERR_FILENO, s, n);
    if (w <= 0) {
      if (w < 0 && errno == EINTR) continue;
      return;
    }
    s += w;
    n -= (size_t)w;
  }
}

static void report_overflow(const char *name) {
  say("dbpipe: stack overflow in coroutine '");
  say(name && name[0] ? name : "(unnamed)");
  say("'\n");
}

static void die_of(int sig) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_DFL;
  sigemptyset(&sa.sa_mask);
  sigaction(sig, &sa, NULL);
  raise(sig);
  /* The signal is blocked while its handler runs: it arrives on return,
   * and a fault re-executes into the default action anyway. */
}

static void on_fault(int sig, siginfo_t *si, void *uctx) {
  int saved_errno = errno;
  uintptr_t a = (uintptr_t)si->si_addr;
  size_t n = atomic_load(&reg.hwm);
  for (size_t i = 0; i < n; i++) {
    uintptr_t lo = atomic_load(&reg.slots[i].lo);
    if (lo && a >= lo && a < atomic_load(&reg.slots[i].hi)) {
      report_overflow(atomic_load(&reg.slots[i].name));
      die_of(sig);
      return;
    }
  }
  const struct sigaction *old = sig == SIGBUS ? &reg.old_bus : &reg.old_segv;
  errno = saved_errno;
  if (old->sa_flags & SA_SIGINFO) {
    old->sa_sigaction(sig, si, uctx);
  } else if (old->sa_handler == SIG_DFL || old->sa_handler == SIG_IGN) {
    die_of(sig);
  } else {
    old->sa_handler(sig);
  }
}

/* ---- the registry ---- */

/* The number of mappings the process has now (lines of /proc/self/maps). */
static long count_maps(void) {
  int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char buf[8192];
  long lines = 0;
  ssize_t r;
  while ((r = read(fd, buf, sizeof buf)) > 0)
    for (ssize_t i = 0; i < r; i++) lines += buf[i] == '\n';
  close(fd);
  return lines;
}

static long read_max_map_count(void) {
  int fd = open("/proc/sys/vm/max_map_count", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 65530;
  char buf[32];
  ssize_t r = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (r <= 0) return 65530;
  buf[r] = '\0';
  long v = strtol(buf, NULL, 10);
  return v > 0 ? v : 65530;
}

static void registry_init(void) {
  reg.page = (size_t)sysconf(_SC_PAGESIZE);
  long max = read_max_map_count();
  long have = count_maps();
  if (have < 0) have = 1024;
  long budget = (max - have - max / 4) / 2;
  if (budget > (1L << 20)) budget = 1L << 20;
  if (budget <= 0) return;
  size_t bytes = (size_t)budget * (sizeof(guard_slot) + sizeof(long));
  void *mem =
      mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (mem == MAP_FAILED) return;
  reg.slots = mem;
  reg.free_next = (long *)(reg.slots + budget);
  reg.cap = (size_t)budget;
}

/* Installs the overflow handler, chaining to the handlers it replaces. */
static void handler_install(void) {
  if (reg.cap == 0) return; /* no guard pages: nothing for it to find */
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_fault;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, &reg.old_segv);
  sigaction(SIGBUS, &sa, &reg.old_bus);
}

static long slot_take(uintptr_t lo, uintptr_t hi) {
  long i = -1;
  if (reg.cap == 0) return -1;
  pthread_mutex_lock(&reg.lock);
  if (reg.free_head >= 0) {
    i = reg.free_head;
    reg.free_head = reg.free_next[i];
  } else if (atomic_load(&reg.hwm) < reg.cap) {
    i = (long)atomic_fetch_add(&reg.hwm, 1);
  }
  if (i >= 0) {
    atomic_store(&reg.slots[i].name, NULL);
    atomic_store(&reg.slots[i].hi, hi);
    atomic_store(&reg.slots[i].lo, lo);
  }
  pthread_mutex_unlock(&reg.lock);
  return i;
}

static void slot_give(long i) {
  pthread_mutex_lock(&reg.lock);
  DBP_ASSERT(i >= 0 && (size_t)i < atomic_load(&reg.hwm) && atomic_load(&reg.slots[i].lo) != 0);
  atomic_store(&reg.slots[i].lo, 0);
  atomic_store(&reg.slots[i].name, NULL);
  reg.free_next[i] = reg.free_head;
  reg.free_head = i;
  pthread_mutex_unlock(&reg.lock);
}

void dbp__stack_name(dbp__stack *s, const char *name) {
  if (s && s->slot >= 0) atomic_store(&reg.slots[s->slot].name, name);
}

/* Installs the handler (once per process) and, when this thread has none,
 * an alternate signal stack owned by rt (overflow handling cannot run on
 * the stack that overflowed). */
int dbp__stack_thread_init(dbp_rt *rt, bool no_handler) {
  pthread_once(&reg.once, registry_init);
  if (no_handler) return 0;
  pthread_once(&reg.handler_once, handler_install);
  stack_t cur;
  if (sigaltstack(NULL, &cur) != 0) return DBP_ESYS;
  if (!(cur.ss_flags & SS_DISABLE)) return 0;
  void *mem = mmap(NULL, ALTSTACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return DBP_ENOMEM;
  stack_t ss = {.ss_sp = mem, .ss_size = ALTSTACK_SIZE, .ss_flags = 0};
  if (sigaltstack(&ss, NULL) != 0) {
    munmap(mem, ALTSTACK_SIZE);
    return DBP_ESYS;
  }
  rt->altstack = mem;
  rt->altstack_len = ALTSTACK_SIZE;
  return 0;
}

/* Removes the alternate signal stack if rt installed it and it is still
 * this thread's. */
void dbp__stack_thread_fini(dbp_rt *rt) {
  if (!rt->altstack) return;
  stack_t cur;
  if (sigaltstack(NULL, &cur) == 0 && cur.ss_sp == rt->altstack && !(cur.ss_flags & SS_ONSTACK)) {
    stack_t off = {.ss_sp = NULL, .ss_size = 0, .ss_flags = SS_DISABLE};
    if (sigaltstack(&off, NULL) == 0) munmap(rt->altstack, rt->altstack_len);
  }
  rt->altstack = NULL;
}

/* ---- stacks ---- */

bool dbp__stack_size_ok(size_t size) {
  return size == 0 || (size >= DBP_STACK_MIN && size <= DBP_STACK_MAX);
}

static void stack_destroy(dbp__stack *s) {
#ifdef DBP_VALGRIND
  VALGRIND_STACK_DEREGISTER(s->vg_id);
#endif
  if (s->slot >= 0) slot_give(s->slot);
  munmap(s->map, s->map_len);
}

/* Maps a new stack of `req` usable bytes (rounded up to pages) plus one
 * page, which becomes the guard page while the registry has room and is
 * simply more stack otherwise. Returns NULL when out of memory. */
static dbp__stack *stack_create(size_t req) {
  size_t page = reg.page;
  DBP_ASSERT(dbp__stack_size_ok(req) && req > 0);
  size_t len = (req + page - 1) & ~(page - 1);
  size_t map_len = len + page;
  char *map = mmap(NULL, map_len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
  if (map == MAP_FAILED) return NULL;
  long slot = slot_take((uintptr_t)map, (uintptr_t)map + page);
  if (slot >= 0 && mprotect(map, page, PROT_NONE) != 0) {
    slot_give(slot);
    slot = -1;
  }
  char *lo = slot >= 0 ? map + page : map;
  char *end = map + map_len;
  dbp__stack *s = (dbp__stack *)(((uintptr_t)end - sizeof(dbp__stack)) & ~(uintptr_t)63);
  s->map = map;
  s->map_len = map_len;
  s->lo = lo;
  s->size = (size_t)((char *)s - lo);
  s->req = req;
  s->slot = slot;
  s->next = NULL;
  /* The canary and a frame for the entry trampoline fit; the guard page,
   * when there is one, sits right below the usable range. */
  DBP_ASSERT(s->size >= CANARY_BYTES + 1024 && (uintptr_t)s->lo % 16 == 0);
  DBP_ASSERT(slot < 0 || s->lo == map + page);
#ifdef DBP_VALGRIND
  s->vg_id = VALGRIND_STACK_REGISTER(lo, (char *)s);
#else
  s->vg_id = 0;
#endif
  return s;
}

dbp__stack *dbp__stack_get(dbp_rt *rt, size_t size) {
  for (dbp__stack **p = &rt->cache; *p; p = &(*p)->next) {
    if ((*p)->req == size) {
      dbp__stack *s = *p;
      *p = s->next;
      rt->cache_len--;
      s->next = NULL;
      return s;
    }
  }
  return stack_create(size);
}

void dbp__stack_put(dbp_rt *rt, dbp__stack *s) {
  DBP_ASSERT(s && s->next == NULL);
  if (rt->cache_len < CACHE_MAX && !rt->freeing) {
    s->next = rt->cache;
    rt->cache = s;
    rt->cache_len++;
    return;
  }
  stack_destroy(s);
}

void dbp__stack_cache_free(dbp_rt *rt) {
  dbp__stack *s;
  while ((s = rt->cache)) {
    rt->cache = s->next;
    stack_destroy(s);
  }
  rt->cache_len = 0;
}

#if defined(DBP__ASAN)
__attribute__((no_sanitize_address))
#endif
void dbp__stack_check(const dbp__stack *s, const char *name) {
  DBP_ASSERT(s != NULL);
  const uint64_t *c = (const uint64_t *)(const void *)s->lo;
  uint64_t any = 0;
  for (size_t i = 0; i < CANARY_BYTES / sizeof *c; i++) any |= c[i];
  if (any) {
    report_overflow(name);
    die_of(SIGSEGV);
    abort();
  }
}
