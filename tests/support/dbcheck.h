/* Checks for test bodies that run in a coroutine: on failure they record
 * the failure with cr_expect and return -1 from the body (never jump off the
 * coroutine stack, as cr_assert would). */
#ifndef DBPIPE_TESTS_DBCHECK_H
#define DBPIPE_TESTS_DBCHECK_H

#include <criterion/criterion.h>

#include "dbpipe.h"

#define CHECK(cond)                                                       \
  do {                                                                    \
    if (!(cond)) {                                                        \
      cr_expect(0, "%s:%d: check failed: %s", __FILE__, __LINE__, #cond); \
      return -1;                                                          \
    }                                                                     \
  } while (0)

/* Checks that a call returned `want`; on a mismatch shows the connection's
 * last error. */
#define CHECK_RC(c, call, want)                                                       \
  do {                                                                                \
    int rc_ = (call);                                                                 \
    if (rc_ != (want)) {                                                              \
      char m_[700];                                                                   \
      cr_expect(0, "%s:%d: %s returned %s, wanted %s: %s", __FILE__, __LINE__, #call, \
                dbp_err_name(rc_), dbp_err_name(want),                                \
                (c) ? dbp_dberr_format(dbp_conn_error(c), m_, sizeof m_) : "");       \
      return -1;                                                                      \
    }                                                                                 \
  } while (0)

#endif /* DBPIPE_TESTS_DBCHECK_H */
