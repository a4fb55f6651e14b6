/* The helpers shared by the export tests, compiled in the test support
 * library (tests/support/exporttest.c), with the headers the tests that
 * include this one use. */
#ifndef DBPIPE_TESTS_EXPORT_H
#define DBPIPE_TESTS_EXPORT_H

#include <criterion/criterion.h>
#include <dirent.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "dbpipe.h"
#include "dbtest.h"
#include "exporttest.h"
#include "rttest.h"

#endif /* DBPIPE_TESTS_EXPORT_H */
