/* The YAML tree of a job file: libyaml's document, with the positions of
 * its nodes in the source text. */
#ifndef DBPIPE_JOB_YAML_TREE_H
#define DBPIPE_JOB_YAML_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <yaml.h>

#include "dbpipe/job.h"

typedef struct dbp__ytree {
  const char *src; /* the text, not owned */
  size_t srclen;
  size_t *lines; /* byte offset where each line starts */
  size_t nlines;
  yaml_document_t doc;
  bool have_doc;
  yaml_node_t *root; /* NULL for an empty file */
} dbp__ytree;

/* Reads the one YAML document of `text` into *y. Returns 0 (y->root is NULL
 * when the text holds no document), DBP_EJOB after adding the syntax error
 * (or a second document) to diag, or DBP_ENOMEM. Free with
 * dbp__ytree_free whatever it returned. */
int dbp__ytree_load(dbp__ytree *y, const char *text, size_t len, dbp_job_diag *diag);
void dbp__ytree_free(dbp__ytree *y);

yaml_node_t *dbp__ytree_node(dbp__ytree *y, int index);
/* A scalar's text. */
const char *dbp__ytree_str(const yaml_node_t *n);
/* A plain empty, ~ or null scalar. */
bool dbp__ytree_is_null(const yaml_node_t *n);
/* "a mapping", "a list", "nothing" or "a scalar", for messages. */
const char *dbp__ytree_kind(const yaml_node_t *n);
/* 1-based line and column where node n starts. */
int dbp__ytree_line(const yaml_node_t *n);
int dbp__ytree_column(const yaml_node_t *n);

/* Finds where, inside the source text of node `n`, the k-th `marker` is
 * (skipping a "{" right after "$" when skip_env): the position of a piece
 * of a scalar's value. Falls back to the node's start. */
void dbp__ytree_locate(const dbp__ytree *y, const yaml_node_t *n, const char *marker, bool skip_env,
                       size_t k, int *line, int *col);

#endif /* DBPIPE_JOB_YAML_TREE_H */
