/* The YAML tree of a job file: libyaml's events read into nodes that know
 * where they are in the source text, so that every message can name a line
 * and column (also of a piece inside a scalar). */
#ifndef DBPIPE_JOB_YAML_TREE_H
#define DBPIPE_JOB_YAML_TREE_H

#include <stdbool.h>
#include <stddef.h>

#include "dbpipe/job.h"

typedef enum dbp__ytype { DBP__Y_SCALAR, DBP__Y_SEQUENCE, DBP__Y_MAPPING } dbp__ytype;

/* A position: as libyaml counts (0-based line and column in characters,
 * index in characters from the start). */
typedef struct dbp__ymark {
  size_t index, line, column;
} dbp__ymark;

typedef struct dbp__ynode dbp__ynode;

typedef struct dbp__ypair {
  dbp__ynode *key, *value;
} dbp__ypair;

struct dbp__ynode {
  dbp__ytype type;
  int line, column;      /* 1-based, where the node starts */
  dbp__ymark start, end; /* the node's text */
  /* A scalar: its text (NUL-terminated; may hold NULs, see length) and
   * whether it was written plain (no quotes, no block). */
  char *value;
  size_t length;
  bool plain;
  /* A sequence's items or a mapping's pairs, in file order. */
  size_t count;
  dbp__ynode **items;
  dbp__ypair *pairs;
};

typedef struct dbp__ytree {
  const char *src; /* the text, not owned */
  size_t srclen;
  size_t *lines; /* byte offset where each line starts */
  size_t nlines;
  dbp__ynode *root;   /* NULL for an empty file */
  dbp__ynode **nodes; /* every node, for freeing (an alias shares its node) */
  size_t nnodes;
} dbp__ytree;

/* Reads the one YAML document of `text` into *y. Returns 0 (y->root is NULL
 * when the text holds no document), DBP_EJOB after adding the syntax error
 * (or a second document) to diag (y->root is then the first document when
 * it was whole), or DBP_ENOMEM. Free with dbp__ytree_free whatever it
 * returned. */
int dbp__ytree_load(dbp__ytree *y, const char *text, size_t len, dbp_job_diag *diag);
void dbp__ytree_free(dbp__ytree *y);

/* A plain empty, ~ or null scalar. */
bool dbp__ytree_is_null(const dbp__ynode *n);
/* "a mapping", "a list", "nothing" or "a scalar", for messages. */
const char *dbp__ytree_kind(const dbp__ynode *n);

/* Finds where, inside the source text of node `n`, the k-th `marker` is
 * (skipping a "{" right after "$" when skip_env): the position of a piece
 * of a scalar's value. Falls back to the node's start. */
void dbp__ytree_locate(const dbp__ytree *y, const dbp__ynode *n, const char *marker, bool skip_env,
                       size_t k, int *line, int *col);

#endif /* DBPIPE_JOB_YAML_TREE_H */
