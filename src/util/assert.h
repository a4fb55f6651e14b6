/* Invariant checks.
 *
 * DBP_ASSERT(cond) states something the code relies on and that no input,
 * however bad, can make false: only a bug in dbpipe (or a caller breaking a
 * documented rule, such as releasing a connection twice) can. A build
 * configured with DBP_CHECKS (the dev, ucontext and asan presets) evaluates
 * it, and a false condition prints "file:line: check failed: cond" to
 * stderr and aborts, so the bug shows where it happens instead of as a
 * corrupted queue later. Other builds (release) compile it to nothing: the
 * condition is not evaluated, so it must have no side effects.
 *
 * This does not follow NDEBUG on purpose: the dev preset is RelWithDebInfo,
 * which defines NDEBUG, and is the build the tests run in.
 *
 * Errors a caller can cause and recover from are return codes, never
 * checks (a misuse returns DBP_EINVAL; it does not abort the host).
 */
#ifndef DBP_UTIL_ASSERT_H
#define DBP_UTIL_ASSERT_H

#if defined(DBP_CHECKS) && DBP_CHECKS

#include <stdio.h>
#include <stdlib.h>

/* Reports a failed check and aborts. Kept out of line of the callers'
 * fast paths by the compiler (cold), and never returns. */
__attribute__((cold)) static inline _Noreturn void dbp__check_failed(const char *file, int line,
                                                                     const char *cond) {
  fprintf(stderr, "%s:%d: check failed: %s\n", file, line, cond);
  fflush(stderr);
  abort();
}

#define DBP_ASSERT(cond) ((cond) ? (void)0 : dbp__check_failed(__FILE__, __LINE__, #cond))

#else

/* Not evaluated; sizeof keeps the condition compiled (so it cannot rot)
 * and its variables used. */
#define DBP_ASSERT(cond) ((void)sizeof(!(cond)))

#endif

#endif /* DBP_UTIL_ASSERT_H */
