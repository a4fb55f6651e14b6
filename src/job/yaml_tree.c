/* The YAML tree of a job file: libyaml's parser events read into nodes
 * with their positions (anchors and aliases resolved as libyaml's own
 * loader does), a line index of the source text, and positions inside
 * scalars for messages. */
#include "job/yaml_tree.h"

#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "job/job_internal.h"

typedef struct anchor {
  char *name;
  dbp__ynode *node;
  yaml_mark_t mark;
} anchor;

typedef struct open_node {
  dbp__ynode *node;
  dbp__ynode *key; /* a mapping's key waiting for its value */
} open_node;

typedef struct builder {
  dbp__ytree *y;
  yaml_parser_t parser;
  dbp_job_diag *diag;
  anchor *anchors; /* of the document being read */
  size_t nanchors;
  open_node *stack; /* the collections being read, innermost last */
  size_t depth;
} builder;

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

/* Reports a problem the way libyaml describes it: the problem at its mark,
 * with the context and its mark when there is one. */
static int syntax_error(builder *b, const char *problem, yaml_mark_t pm, const char *context,
                        yaml_mark_t cm) {
  int line = (int)pm.line + 1, col = (int)pm.column + 1, rc;
  if (context != NULL) {
    rc = dbp__job_diag_add(b->diag, line, col, "YAML syntax error: %s (%s at line %d, column %d)",
                           problem, context, (int)cm.line + 1, (int)cm.column + 1);
  } else {
    rc = dbp__job_diag_add(b->diag, line, col, "YAML syntax error: %s", problem);
  }
  return rc != 0 ? rc : DBP_EJOB;
}

/* Reports the parser's error. */
static int parser_error(builder *b) {
  const yaml_parser_t *p = &b->parser;
  if (p->error == YAML_MEMORY_ERROR) return DBP_ENOMEM;
  if (p->error == YAML_READER_ERROR) {
    int rc = dbp__job_diag_add(b->diag, 0, 0, "not readable as YAML text: %s (at byte %zu)",
                               p->problem ? p->problem : "bad input", p->problem_offset);
    return rc != 0 ? rc : DBP_EJOB;
  }
  return syntax_error(b, p->problem ? p->problem : "invalid YAML", p->problem_mark, p->context,
                      p->context_mark);
}

static dbp__ymark mark_of(yaml_mark_t m) {
  return (dbp__ymark){m.index, m.line, m.column};
}

/* A new node starting at `m`, owned by the tree. */
static dbp__ynode *new_node(builder *b, dbp__ytype type, yaml_mark_t start, yaml_mark_t end) {
  dbp__ytree *y = b->y;
  dbp__ynode **nodes = dbp__grow(y->nodes, y->nnodes, sizeof *nodes);
  if (nodes == NULL) return NULL;
  y->nodes = nodes;
  dbp__ynode *n = calloc(1, sizeof *n);
  if (n == NULL) return NULL;
  *n = (dbp__ynode){.type = type,
                    .line = (int)start.line + 1,
                    .column = (int)start.column + 1,
                    .start = mark_of(start),
                    .end = mark_of(end)};
  y->nodes[y->nnodes++] = n;
  return n;
}

/* Remembers the node an anchor names; a second anchor of the same name is
 * an error, as for libyaml's loader. */
static int add_anchor(builder *b, const yaml_char_t *name, dbp__ynode *n, yaml_mark_t mark) {
  if (name == NULL) return 0;
  for (size_t i = 0; i < b->nanchors; i++) {
    if (strcmp(b->anchors[i].name, (const char *)name) == 0)
      return syntax_error(b, "second occurrence", mark, "found duplicate anchor; first occurrence",
                          b->anchors[i].mark);
  }
  anchor *a = dbp__grow(b->anchors, b->nanchors, sizeof *a);
  if (a == NULL) return DBP_ENOMEM;
  b->anchors = a;
  char *copy = strdup((const char *)name);
  if (copy == NULL) return DBP_ENOMEM;
  b->anchors[b->nanchors++] = (anchor){copy, n, mark};
  return 0;
}

/* Puts a finished (or opened) node where it belongs: the root, the next
 * item of a sequence, or a mapping's key or value. */
static int place(builder *b, dbp__ynode *n, dbp__ynode **root) {
  if (b->depth == 0) {
    *root = n;
    return 0;
  }
  open_node *o = &b->stack[b->depth - 1];
  dbp__ynode *c = o->node;
  if (c->type == DBP__Y_SEQUENCE) {
    dbp__ynode **items = dbp__grow(c->items, c->count, sizeof *items);
    if (items == NULL) return DBP_ENOMEM;
    c->items = items;
    c->items[c->count++] = n;
  } else if (o->key == NULL) {
    o->key = n;
  } else {
    dbp__ypair *pairs = dbp__grow(c->pairs, c->count, sizeof *pairs);
    if (pairs == NULL) return DBP_ENOMEM;
    c->pairs = pairs;
    c->pairs[c->count++] = (dbp__ypair){o->key, n};
    o->key = NULL;
  }
  return 0;
}

/* Reads one node's events (the first one given) into a new node. */
static int read_event(builder *b, yaml_event_t *ev, dbp__ynode **root) {
  dbp__ynode *n;
  int rc;
  switch (ev->type) {
    case YAML_SCALAR_EVENT:
      n = new_node(b, DBP__Y_SCALAR, ev->start_mark, ev->end_mark);
      if (n == NULL) return DBP_ENOMEM;
      n->length = ev->data.scalar.length;
      n->value = malloc(n->length + 1);
      if (n->value == NULL) return DBP_ENOMEM;
      memcpy(n->value, ev->data.scalar.value, n->length);
      n->value[n->length] = '\0';
      n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
      if ((rc = add_anchor(b, ev->data.scalar.anchor, n, ev->start_mark)) != 0) return rc;
      return place(b, n, root);
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
      bool seq = ev->type == YAML_SEQUENCE_START_EVENT;
      n = new_node(b, seq ? DBP__Y_SEQUENCE : DBP__Y_MAPPING, ev->start_mark, ev->end_mark);
      if (n == NULL) return DBP_ENOMEM;
      const yaml_char_t *name =
          seq ? ev->data.sequence_start.anchor : ev->data.mapping_start.anchor;
      if ((rc = add_anchor(b, name, n, ev->start_mark)) != 0) return rc;
      if ((rc = place(b, n, root)) != 0) return rc;
      open_node *s = dbp__grow(b->stack, b->depth, sizeof *s);
      if (s == NULL) return DBP_ENOMEM;
      b->stack = s;
      b->stack[b->depth++] = (open_node){n, NULL};
      return 0;
    }
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
      /* Popping only lowers depth: the room dbp__grow implies for a depth
       * is never more than what was allocated on the way up. */
      b->stack[--b->depth].node->end = mark_of(ev->end_mark);
      return 0;
    case YAML_ALIAS_EVENT:
      for (size_t i = 0; i < b->nanchors; i++) {
        if (strcmp(b->anchors[i].name, (const char *)ev->data.alias.anchor) == 0)
          return place(b, b->anchors[i].node, root);
      }
      return syntax_error(b, "found undefined alias", ev->start_mark, NULL, ev->start_mark);
    default:
      return 0;
  }
}

static void drop_anchors(builder *b) {
  for (size_t i = 0; i < b->nanchors; i++) free(b->anchors[i].name);
  free(b->anchors);
  b->anchors = NULL;
  b->nanchors = 0;
}

/* Reads the events of one document, after its start, up to its end. */
static int read_document(builder *b, dbp__ynode **root) {
  *root = NULL;
  b->depth = 0;
  int rc = 0;
  for (;;) {
    yaml_event_t ev;
    if (!yaml_parser_parse(&b->parser, &ev)) {
      rc = parser_error(b);
      break;
    }
    bool end = ev.type == YAML_DOCUMENT_END_EVENT;
    rc = end ? 0 : read_event(b, &ev, root);
    yaml_event_delete(&ev);
    if (end || rc != 0) break;
  }
  drop_anchors(b);
  return rc;
}

/* The next event's type, or -1 after reporting the parser's error in *rc. */
static int next_event(builder *b, int *rc) {
  yaml_event_t ev;
  if (!yaml_parser_parse(&b->parser, &ev)) {
    *rc = parser_error(b);
    return -1;
  }
  int type = (int)ev.type;
  yaml_event_delete(&ev);
  return type;
}

int dbp__ytree_load(dbp__ytree *y, const char *text, size_t len, dbp_job_diag *diag) {
  *y = (dbp__ytree){.src = text, .srclen = len};
  if (index_lines(y) != 0) return DBP_ENOMEM;
  builder b = {.y = y, .diag = diag};
  if (!yaml_parser_initialize(&b.parser)) return DBP_ENOMEM;
  yaml_parser_set_input_string(&b.parser, (const unsigned char *)text, len);
  int rc = 0, type = next_event(&b, &rc); /* the stream's start */
  if (type == YAML_STREAM_START_EVENT) type = next_event(&b, &rc);
  if (type == YAML_DOCUMENT_START_EVENT) {
    dbp__ynode *root;
    rc = read_document(&b, &root);
    if (rc == 0) y->root = root;
    /* A second document would be silently ignored: say so. */
    if (rc == 0 && (type = next_event(&b, &rc)) == YAML_DOCUMENT_START_EVENT) {
      dbp__ynode *second;
      rc = read_document(&b, &second);
      if (rc == 0 && second != NULL) {
        rc = dbp__job_diag_add(diag, second->line, second->column,
                               "a job file holds one YAML document; remove the second one");
        if (rc == 0) rc = DBP_EJOB;
      }
    }
  }
  free(b.stack);
  drop_anchors(&b);
  yaml_parser_delete(&b.parser);
  return rc;
}

void dbp__ytree_free(dbp__ytree *y) {
  for (size_t i = 0; i < y->nnodes; i++) {
    free(y->nodes[i]->value);
    free(y->nodes[i]->items);
    free(y->nodes[i]->pairs);
    free(y->nodes[i]);
  }
  free(y->nodes);
  free(y->lines);
  *y = (dbp__ytree){0};
}

bool dbp__ytree_is_null(const dbp__ynode *n) {
  if (n->type != DBP__Y_SCALAR || !n->plain) return false;
  const char *v = n->value;
  return *v == '\0' || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 || strcmp(v, "Null") == 0 ||
         strcmp(v, "NULL") == 0;
}

const char *dbp__ytree_kind(const dbp__ynode *n) {
  if (n->type == DBP__Y_MAPPING) return "a mapping";
  if (n->type == DBP__Y_SEQUENCE) return "a list";
  return dbp__ytree_is_null(n) ? "nothing" : "a scalar";
}

/* Byte offset of a position (0-based line, column in characters). */
static size_t mark_offset(const dbp__ytree *y, dbp__ymark m) {
  if (y->lines == NULL || m.line >= y->nlines) return y->srclen;
  size_t off = y->lines[m.line];
  for (size_t col = 0; off < y->srclen && col < m.column; col++) {
    off++;
    while (off < y->srclen && ((unsigned char)y->src[off] & 0xC0) == 0x80) off++;
  }
  return off;
}

void dbp__ytree_locate(const dbp__ytree *y, const dbp__ynode *n, const char *marker, bool skip_env,
                       size_t k, int *line, int *col) {
  *line = n->line;
  *col = n->column;
  size_t b = mark_offset(y, n->start), e = mark_offset(y, n->end);
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
