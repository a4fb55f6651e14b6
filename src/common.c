#include <stdio.h>
#include <time.h>
/* Error table lookups and version. */
#include <errno.h>

#include "dbpipe/common.h"

const char *dbp_strerror(int err) {
  switch (err) {
    case 0:
      return "success";
#define DBP_ERR_MSG_(name, val, msg) \
  case (val):                        \
    return msg;
      DBP_ERRNO_MAP(DBP_ERR_MSG_)
#undef DBP_ERR_MSG_
    default:
      return "unknown error";
  }
}

const char *dbp_err_name(int err) {
  switch (err) {
    case 0:
      return "DBP_OK";
#define DBP_ERR_NAME_(name, val, msg) \
  case (val):                         \
    return "DBP_" #name;
      DBP_ERRNO_MAP(DBP_ERR_NAME_)
#undef DBP_ERR_NAME_
    default:
      return "DBP_EUNKNOWN";
  }
}

int dbp_err_from_errno(int neg_errno) {
  switch (-neg_errno) {
    case 0:
      return 0;
    case EINVAL:
      return DBP_EINVAL;
    case ENOMEM:
      return DBP_ENOMEM;
    case ECANCELED:
      return DBP_ECANCELED;
    case ETIMEDOUT:
      return DBP_ETIMEDOUT;
    case EBUSY:
      return DBP_EBUSY;
    case EAGAIN:
      return DBP_EAGAIN;
    case ENOENT:
      return DBP_ENOENT;
    case EEXIST:
      return DBP_EEXIST;
    case ENOSPC:
    case EDQUOT:
      return DBP_ENOSPC;
    case EACCES:
    case EPERM:
    case EROFS:
      return DBP_EACCES;
    case EIO:
      return DBP_EIO;
    default:
      return DBP_ESYS;
  }
}

const char *dbp_version(void) {
  return DBP_VERSION_STRING;
}

const char *dbp_fmt_duration(uint64_t ms, char *buf, size_t len) {
  if (ms < 1000) {
    snprintf(buf, len, "%llu ms", (unsigned long long)ms);
  } else if (ms < 60000) {
    snprintf(buf, len, "%.1f s", (double)ms / 1000.0);
  } else if (ms < 3600000) {
    snprintf(buf, len, "%llum%02llus", (unsigned long long)(ms / 60000),
             (unsigned long long)(ms / 1000 % 60));
  } else {
    snprintf(buf, len, "%lluh%02llum", (unsigned long long)(ms / 3600000),
             (unsigned long long)(ms / 60000 % 60));
  }
  return buf;
}

const char *dbp_fmt_iso(const struct timespec *ts, char *buf, size_t len) {
  struct tm tm;
  time_t t = ts->tv_sec;
  gmtime_r(&t, &tm);
  char date[32];
  strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf, len, "%s.%03ldZ", date, ts->tv_nsec / 1000000);
  return buf;
}
