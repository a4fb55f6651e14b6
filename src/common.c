/* Error table lookups and version. */
#include "dbpipe/common.h"

#include <errno.h>

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
