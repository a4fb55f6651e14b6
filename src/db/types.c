/* Column types: PostgreSQL OIDs and MySQL field metadata mapped to the
 * normalized dbp_type, plus the small text helpers shared by both drivers
 * (type names, identifier quoting, error formatting). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "db/driver.h"
#include "db/mysql_conn.h"

const char *dbp_type_name(dbp_type t) {
  switch (t) {
    case DBP_T_INTEGER:
      return "integer";
    case DBP_T_NUMERIC:
      return "numeric";
    case DBP_T_FLOAT:
      return "float";
    case DBP_T_BOOL:
      return "bool";
    case DBP_T_TEXT:
      return "text";
    case DBP_T_BYTES:
      return "bytes";
    case DBP_T_JSON:
      return "json";
    case DBP_T_DATE:
      return "date";
    case DBP_T_TIME:
      return "time";
    case DBP_T_TIMESTAMP:
      return "timestamp";
    case DBP_T_OTHER:
      return "other";
  }
  return "other";
}

/* PostgreSQL's built-in types, by OID (pg_type.dat), with their typname.
 * Sorted by OID for bsearch. */
typedef struct pg_type_entry {
  uint32_t oid;
  const char *name;
  dbp_type type;
} pg_type_entry;

static const pg_type_entry pg_types[] = {
    {16, "bool", DBP_T_BOOL},
    {17, "bytea", DBP_T_BYTES},
    {18, "char", DBP_T_TEXT},
    {19, "name", DBP_T_TEXT},
    {20, "int8", DBP_T_INTEGER},
    {21, "int2", DBP_T_INTEGER},
    {22, "int2vector", DBP_T_OTHER},
    {23, "int4", DBP_T_INTEGER},
    {24, "regproc", DBP_T_OTHER},
    {25, "text", DBP_T_TEXT},
    {26, "oid", DBP_T_INTEGER},
    {27, "tid", DBP_T_OTHER},
    {28, "xid", DBP_T_OTHER},
    {29, "cid", DBP_T_OTHER},
    {30, "oidvector", DBP_T_OTHER},
    {114, "json", DBP_T_JSON},
    {142, "xml", DBP_T_OTHER},
    {143, "_xml", DBP_T_OTHER},
    {194, "pg_node_tree", DBP_T_OTHER},
    {199, "_json", DBP_T_OTHER},
    {600, "point", DBP_T_OTHER},
    {601, "lseg", DBP_T_OTHER},
    {602, "path", DBP_T_OTHER},
    {603, "box", DBP_T_OTHER},
    {604, "polygon", DBP_T_OTHER},
    {628, "line", DBP_T_OTHER},
    {650, "cidr", DBP_T_OTHER},
    {651, "_cidr", DBP_T_OTHER},
    {700, "float4", DBP_T_FLOAT},
    {701, "float8", DBP_T_FLOAT},
    {705, "unknown", DBP_T_OTHER},
    {718, "circle", DBP_T_OTHER},
    {774, "macaddr8", DBP_T_OTHER},
    {790, "money", DBP_T_OTHER},
    {829, "macaddr", DBP_T_OTHER},
    {869, "inet", DBP_T_OTHER},
    {1000, "_bool", DBP_T_OTHER},
    {1001, "_bytea", DBP_T_OTHER},
    {1002, "_char", DBP_T_OTHER},
    {1003, "_name", DBP_T_OTHER},
    {1005, "_int2", DBP_T_OTHER},
    {1007, "_int4", DBP_T_OTHER},
    {1009, "_text", DBP_T_OTHER},
    {1014, "_bpchar", DBP_T_OTHER},
    {1015, "_varchar", DBP_T_OTHER},
    {1016, "_int8", DBP_T_OTHER},
    {1021, "_float4", DBP_T_OTHER},
    {1022, "_float8", DBP_T_OTHER},
    {1028, "_oid", DBP_T_OTHER},
    {1033, "aclitem", DBP_T_OTHER},
    {1040, "_macaddr", DBP_T_OTHER},
    {1041, "_inet", DBP_T_OTHER},
    {1042, "bpchar", DBP_T_TEXT},
    {1043, "varchar", DBP_T_TEXT},
    {1082, "date", DBP_T_DATE},
    {1083, "time", DBP_T_TIME},
    {1114, "timestamp", DBP_T_TIMESTAMP},
    {1115, "_timestamp", DBP_T_OTHER},
    {1182, "_date", DBP_T_OTHER},
    {1183, "_time", DBP_T_OTHER},
    {1184, "timestamptz", DBP_T_TIMESTAMP},
    {1185, "_timestamptz", DBP_T_OTHER},
    {1186, "interval", DBP_T_OTHER},
    {1187, "_interval", DBP_T_OTHER},
    {1231, "_numeric", DBP_T_OTHER},
    {1263, "_cstring", DBP_T_OTHER},
    {1266, "timetz", DBP_T_TIME},
    {1270, "_timetz", DBP_T_OTHER},
    {1560, "bit", DBP_T_OTHER},
    {1561, "_bit", DBP_T_OTHER},
    {1562, "varbit", DBP_T_OTHER},
    {1563, "_varbit", DBP_T_OTHER},
    {1700, "numeric", DBP_T_NUMERIC},
    {1790, "refcursor", DBP_T_OTHER},
    {2202, "regprocedure", DBP_T_OTHER},
    {2203, "regoper", DBP_T_OTHER},
    {2204, "regoperator", DBP_T_OTHER},
    {2205, "regclass", DBP_T_OTHER},
    {2206, "regtype", DBP_T_OTHER},
    {2249, "record", DBP_T_OTHER},
    {2275, "cstring", DBP_T_OTHER},
    {2278, "void", DBP_T_OTHER},
    {2950, "uuid", DBP_T_TEXT},
    {2951, "_uuid", DBP_T_OTHER},
    {3220, "pg_lsn", DBP_T_OTHER},
    {3614, "tsvector", DBP_T_OTHER},
    {3615, "tsquery", DBP_T_OTHER},
    {3802, "jsonb", DBP_T_JSON},
    {3807, "_jsonb", DBP_T_OTHER},
    {3904, "int4range", DBP_T_OTHER},
    {3906, "numrange", DBP_T_OTHER},
    {3908, "tsrange", DBP_T_OTHER},
    {3910, "tstzrange", DBP_T_OTHER},
    {3912, "daterange", DBP_T_OTHER},
    {3926, "int8range", DBP_T_OTHER},
    {4072, "jsonpath", DBP_T_OTHER},
    {4089, "regnamespace", DBP_T_OTHER},
    {4096, "regrole", DBP_T_OTHER},
    {4451, "int4multirange", DBP_T_OTHER},
    {4532, "nummultirange", DBP_T_OTHER},
    {5069, "xid8", DBP_T_OTHER},
};

static int pg_type_cmp(const void *key, const void *elem) {
  uint32_t oid = *(const uint32_t *)key;
  uint32_t e = ((const pg_type_entry *)elem)->oid;
  return oid < e ? -1 : oid > e;
}

const char *dbp__pg_type(uint32_t oid, dbp_type *type) {
  const pg_type_entry *e = bsearch(&oid, pg_types, sizeof pg_types / sizeof pg_types[0],
                                   sizeof pg_types[0], pg_type_cmp);
  if (e == NULL) {
    *type = DBP_T_OTHER;
    return NULL;
  }
  *type = e->type;
  return e->name;
}

/* ---- MySQL field metadata ---- */

/* The extended metadata attribute `which` of f ("json", "uuid"...), or an
 * empty string when the server sent none. */
MARIADB_CONST_STRING dbp__my_field_attr(const MYSQL_FIELD *f, enum mariadb_field_attr_t which) {
  MARIADB_CONST_STRING s = {NULL, 0};
  if (mariadb_field_attr(&s, f, which) != 0 || s.str == NULL) {
    s.str = "";
    s.length = 0;
  }
  return s;
}

/* Maps one field's metadata to a normalized type and a type name; sets
 * *conv for values that need converting. */
dbp_type dbp__my_field_type(const MYSQL_FIELD *f, const char **name, unsigned char *conv) {
  bool binary = f->charsetnr == 63;
  *conv = DBP__MY_CONV_NONE;
  MARIADB_CONST_STRING fmt = dbp__my_field_attr(f, MARIADB_FIELD_ATTR_FORMAT_NAME);
  MARIADB_CONST_STRING dtn = dbp__my_field_attr(f, MARIADB_FIELD_ATTR_DATA_TYPE_NAME);
  if (fmt.length == 4 && strncasecmp(fmt.str, "json", 4) == 0) {
    *name = "JSON";
    return DBP_T_JSON;
  }
  if (dtn.length == 4 && strncasecmp(dtn.str, "uuid", 4) == 0) {
    *name = "UUID";
    return DBP_T_TEXT;
  }
  if (dtn.length == 5 && strncasecmp(dtn.str, "inet6", 5) == 0) {
    *name = "INET6";
    return DBP_T_TEXT;
  }
  if (dtn.length == 5 && strncasecmp(dtn.str, "inet4", 5) == 0) {
    *name = "INET4";
    return DBP_T_TEXT;
  }
  switch (f->type) {
    case MYSQL_TYPE_TINY:
      *name = "TINYINT";
      return DBP_T_INTEGER;
    case MYSQL_TYPE_SHORT:
      *name = "SMALLINT";
      return DBP_T_INTEGER;
    case MYSQL_TYPE_INT24:
      *name = "MEDIUMINT";
      return DBP_T_INTEGER;
    case MYSQL_TYPE_LONG:
      *name = "INT";
      return DBP_T_INTEGER;
    case MYSQL_TYPE_LONGLONG:
      *name = "BIGINT";
      return DBP_T_INTEGER;
    case MYSQL_TYPE_YEAR:
      *name = "YEAR";
      return DBP_T_INTEGER;
    case MYSQL_TYPE_DECIMAL:
    case MYSQL_TYPE_NEWDECIMAL:
      *name = "DECIMAL";
      return DBP_T_NUMERIC;
    case MYSQL_TYPE_FLOAT:
      *name = "FLOAT";
      return DBP_T_FLOAT;
    case MYSQL_TYPE_DOUBLE:
      *name = "DOUBLE";
      return DBP_T_FLOAT;
    case MYSQL_TYPE_BIT:
      *name = "BIT";
      if (f->length == 1) {
        *conv = DBP__MY_CONV_BIT1;
        return DBP_T_INTEGER;
      }
      return DBP_T_BYTES;
    case MYSQL_TYPE_JSON:
      *name = "JSON";
      return DBP_T_JSON;
    case MYSQL_TYPE_ENUM:
      *name = "ENUM";
      return DBP_T_TEXT;
    case MYSQL_TYPE_SET:
      *name = "SET";
      return DBP_T_TEXT;
    case MYSQL_TYPE_VARCHAR:
    case MYSQL_TYPE_VAR_STRING:
    case MYSQL_TYPE_STRING:
      if (f->flags & ENUM_FLAG) {
        *name = "ENUM";
        return DBP_T_TEXT;
      }
      if (f->flags & SET_FLAG) {
        *name = "SET";
        return DBP_T_TEXT;
      }
      if (f->type == MYSQL_TYPE_STRING)
        *name = binary ? "BINARY" : "CHAR";
      else
        *name = binary ? "VARBINARY" : "VARCHAR";
      return binary ? DBP_T_BYTES : DBP_T_TEXT;
    case MYSQL_TYPE_TINY_BLOB:
      *name = binary ? "TINYBLOB" : "TINYTEXT";
      return binary ? DBP_T_BYTES : DBP_T_TEXT;
    case MYSQL_TYPE_MEDIUM_BLOB:
      *name = binary ? "MEDIUMBLOB" : "MEDIUMTEXT";
      return binary ? DBP_T_BYTES : DBP_T_TEXT;
    case MYSQL_TYPE_LONG_BLOB:
      *name = binary ? "LONGBLOB" : "LONGTEXT";
      return binary ? DBP_T_BYTES : DBP_T_TEXT;
    case MYSQL_TYPE_BLOB:
      *name = binary ? "BLOB" : "TEXT";
      return binary ? DBP_T_BYTES : DBP_T_TEXT;
    case MYSQL_TYPE_DATE:
    case MYSQL_TYPE_NEWDATE:
      *name = "DATE";
      return DBP_T_DATE;
    case MYSQL_TYPE_TIME:
    case MYSQL_TYPE_TIME2:
      *name = "TIME";
      return DBP_T_TIME;
    case MYSQL_TYPE_DATETIME:
    case MYSQL_TYPE_DATETIME2:
      *name = "DATETIME";
      return DBP_T_TIMESTAMP;
    case MYSQL_TYPE_TIMESTAMP:
    case MYSQL_TYPE_TIMESTAMP2:
      *name = "TIMESTAMP";
      return DBP_T_TIMESTAMP;
    case MYSQL_TYPE_GEOMETRY:
      *name = "GEOMETRY";
      return DBP_T_OTHER;
    case MYSQL_TYPE_NULL:
      *name = "NULL";
      return DBP_T_OTHER;
    default:
      *name = "UNKNOWN";
      return DBP_T_OTHER;
  }
}

char *dbp_quote_ident(dbp_db_kind kind, const char *name) {
  if (name == NULL) return NULL;
  char q = kind == DBP_DB_MYSQL ? '`' : '"';
  size_t n = strlen(name), quotes = 0, dots = 0;
  for (size_t i = 0; i < n; i++) {
    if (name[i] == q) quotes++;
    if (name[i] == '.') dots++;
  }
  /* Every part gains two quotes; every quote inside is doubled. */
  char *out = malloc(n + quotes + 2 * (dots + 1) + 1);
  if (out == NULL) return NULL;
  char *o = out;
  *o++ = q;
  for (size_t i = 0; i < n; i++) {
    if (name[i] == '.') {
      *o++ = q;
      *o++ = '.';
      *o++ = q;
    } else {
      if (name[i] == q) *o++ = q;
      *o++ = name[i];
    }
  }
  *o++ = q;
  *o = '\0';
  return out;
}

const char *dbp_dberr_format(const dbp_dberr *e, char *buf, size_t len) {
  if (buf == NULL || len == 0) return buf;
  if (e == NULL) {
    snprintf(buf, len, "no error");
    return buf;
  }
  const char *name = dbp_err_name(e->code);
  if (strncmp(name, "DBP_", 4) == 0) name += 4;
  const char *msg = e->message[0] ? e->message : dbp_strerror(e->code);
  if (e->sqlstate[0] && e->db_errno)
    snprintf(buf, len, "%s: %s (SQLSTATE %s, error %d)", name, msg, e->sqlstate, e->db_errno);
  else if (e->sqlstate[0])
    snprintf(buf, len, "%s: %s (SQLSTATE %s)", name, msg, e->sqlstate);
  else if (e->db_errno)
    snprintf(buf, len, "%s: %s (error %d)", name, msg, e->db_errno);
  else
    snprintf(buf, len, "%s: %s", name, msg);
  return buf;
}
