/* The YAML tree of a job file: libyaml's document API, a line index of the
 * source text, and positions inside scalars for messages. */
#include "job/yaml_tree.h"

#include <stdlib.h>
#include <string.h>

#include "job/job_internal.h"

static int index_lines(dbp__ytree *y) {
  size_t n = 1;
  const char *s = y->src;
  for (size_t i = 0; i < y->srclen; i++) {
    if (s[i] == '\n' || (s[i] == '\r' && (i + 1 >= y->srclen || s[i + 1] != '\n'))) n++;
  }
  y->lines = malloc(n * sizeof *y->lines);
  if (y->lines == NULL) return DBP_ENOMEM;
  y->lines[0] = 0;
  y->nlines = 1;
  for (size_t i = 0; i < y->srclen; i++) {
    if (s[i] == '\n' || (s[i] == '\r' && (i + 1 >= y->srclen || s[i + 1] != '\n')))
      y->lines[y->nlines++] = i + 1;
  }
  return 0;
}

/* Reports a libyaml error. */
static int yaml_error(const yaml_parser_t *p, dbp_job_diag *diag) {
  int rc;
  if (p->error == YAML_MEMORY_ERROR) return DBP_ENOMEM;
  if (p->error == YAML_READER_ERROR) {
    rc = dbp__job_diag_add(diag, 0, 0, "not readable as YAML text: %s (at byte %zu)",
                           p->problem ? p->problem : "bad input", p->problem_offset);
    return rc != 0 ? rc : DBP_EJOB;
  }
  int line = (int)p->problem_mark.line + 1, col = (int)p->problem_mark.column + 1;
  if (p->context != NULL) {
    rc = dbp__job_diag_add(diag, line, col, "YAML syntax error: %s (%s at line %d, column %d)",
                           p->problem ? p->problem : "invalid YAML", p->context,
                           (int)p->context_mark.line + 1, (int)p->context_mark.column + 1);
  } else {
    rc = dbp__job_diag_add(diag, line, col, "YAML syntax error: %s",
                           p->problem ? p->problem : "invalid YAML");
  }
  return rc != 0 ? rc : DBP_EJOB;
}

int dbp__ytree_load(dbp__ytree *y, const char *text, size_t len, dbp_job_diag *diag) {
  *y = (dbp__ytree){.src = text, .srclen = len};
  if (index_lines(y) != 0) return DBP_ENOMEM;
  yaml_parser_t p;
  if (!yaml_parser_initialize(&p)) return DBP_ENOMEM;
  yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
  int rc = 0;
  if (!yaml_parser_load(&p, &y->doc)) {
    rc = yaml_error(&p, diag);
  } else {
    y->have_doc = true;
    y->root = yaml_document_get_root_node(&y->doc);
    /* A second document would be silently ignored: say so. */
    yaml_document_t extra;
    if (y->root == NULL) {
      /* Nothing more to read. */
    } else if (yaml_parser_load(&p, &extra)) {
      yaml_node_t *r2 = yaml_document_get_root_node(&extra);
      if (r2 != NULL) {
        rc = dbp__job_diag_add(diag, dbp__ytree_line(r2), dbp__ytree_column(r2),
                               "a job file holds one YAML document; remove the second one");
        if (rc == 0) rc = DBP_EJOB;
      }
      yaml_document_delete(&extra);
    } else {
      rc = yaml_error(&p, diag);
    }
  }
  yaml_parser_delete(&p);
  return rc;
}

void dbp__ytree_free(dbp__ytree *y) {
  if (y->have_doc) yaml_document_delete(&y->doc);
  free(y->lines);
  *y = (dbp__ytree){0};
}

yaml_node_t *dbp__ytree_node(dbp__ytree *y, int index) {
  return yaml_document_get_node(&y->doc, index);
}

const char *dbp__ytree_str(const yaml_node_t *n) {
  return (const char *)n->data.scalar.value;
}

bool dbp__ytree_is_null(const yaml_node_t *n) {
  if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return false;
  const char *v = dbp__ytree_str(n);
  return *v == '\0' || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 || strcmp(v, "Null") == 0 ||
         strcmp(v, "NULL") == 0;
}

const char *dbp__ytree_kind(const yaml_node_t *n) {
  if (n->type == YAML_MAPPING_NODE) return "a mapping";
  if (n->type == YAML_SEQUENCE_NODE) return "a list";
  return dbp__ytree_is_null(n) ? "nothing" : "a scalar";
}

int dbp__ytree_line(const yaml_node_t *n) {
  return (int)n->start_mark.line + 1;
}

int dbp__ytree_column(const yaml_node_t *n) {
  return (int)n->start_mark.column + 1;
}

/* Byte offset of a libyaml mark (0-based line, column in characters). */
static size_t mark_offset(const dbp__ytree *y, yaml_mark_t m) {
  if (y->lines == NULL || m.line >= y->nlines) return y->srclen;
  size_t off = y->lines[m.line];
  for (size_t col = 0; off < y->srclen && col < m.column; col++) {
    off++;
    while (off < y->srclen && ((unsigned char)y->src[off] & 0xC0) == 0x80) off++;
  }
  return off;
}

void dbp__ytree_locate(const dbp__ytree *y, const yaml_node_t *n, const char *marker, bool skip_env,
                       size_t k, int *line, int *col) {
  *line = dbp__ytree_line(n);
  *col = dbp__ytree_column(n);
  size_t b = mark_offset(y, n->start_mark), e = mark_offset(y, n->end_mark);
  size_t mlen = strlen(marker), seen = 0;
  int l = *line, c = *col;
  for (size_t i = b; i < e && i < y->srclen; i++) {
    if (i + mlen <= e && memcmp(y->src + i, marker, mlen) == 0 &&
        !(skip_env && i > b && y->src[i - 1] == '$')) {
      if (seen++ == k) {
        *line = l;
        *col = c;
        return;
      }
    }
    char ch = y->src[i];
    if (ch == '\n' || (ch == '\r' && (i + 1 >= y->srclen || y->src[i + 1] != '\n'))) {
      l++;
      c = 1;
    } else if (((unsigned char)ch & 0xC0) != 0x80 && ch != '\r') {
      c++;
    }
  }
}
