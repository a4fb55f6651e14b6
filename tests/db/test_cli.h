/* The helpers of the dbpipe executable's tests, compiled in the test
 * support library (tests/support/clitest.c), with the headers the tests
 * that include this one use. Included by tests/db/test_cli*.c. */
#ifndef DBPIPE_TEST_CLI_H
#define DBPIPE_TEST_CLI_H

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <mysql.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clitest.h"
#include "dbpipe.h"
#include "dbtest.h"

#define CLI_HELPER static __attribute__((unused))

#endif /* DBPIPE_TEST_CLI_H */
