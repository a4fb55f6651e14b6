/* Job files written inline by the engine tests. */
#ifndef DBPIPE_TESTS_JOBTEST_H
#define DBPIPE_TESTS_JOBTEST_H

#include "dbpipe.h"

/* Parses the job text made from fmt (relative paths under dir, "NAME.yaml"
 * in messages), logging every diagnostic and failing the test when it does
 * not parse. */
dbp_job *dbt_parse_job(const char *dir, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif /* DBPIPE_TESTS_JOBTEST_H */
