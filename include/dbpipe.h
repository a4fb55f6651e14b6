/* dbpipe: run SQL against PostgreSQL and MySQL/MariaDB concurrently and
 * stream the results into files. The one header a program includes. */
#ifndef DBPIPE_H
#define DBPIPE_H

#include "dbpipe/common.h"
#include "dbpipe/db.h"
#include "dbpipe/engine.h"
#include "dbpipe/export.h"
#include "dbpipe/job.h"
#include "dbpipe/pipeline.h"
#include "dbpipe/plan.h"
#include "dbpipe/pool.h"
#include "dbpipe/rt.h"

#endif /* DBPIPE_H */
