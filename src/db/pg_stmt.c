/* The PostgreSQL driver's statement cache: statements prepared on the
 * server under names of ours, found again by their SQL text.
 *
 * A hash table of DBP__PG_STMT_BUCKETS buckets with chaining holds at most
 * DBP__PG_STMT_CACHE entries; when full, the least recently used entry is
 * dropped (a linear scan, which costs only when a new statement is
 * prepared, never on a hit). Names come from a per-session counter and
 * are never reused within a session, so a statement still in flight under
 * an old name cannot meet a new statement of the same name. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/pg_conn.h"

/* The text's hash mixed with the parameter count. */
static uint64_t stmt_key(uint64_t text_hash, int nparams) {
  return text_hash ^ ((uint64_t)(unsigned)nparams * UINT64_C(0x9E3779B97F4A7C15));
}

static uint64_t stmt_hash(const char *s, size_t n, int nparams) {
  return stmt_key(dbp__sql_hash(s, n), nparams);
}

static void stmt_free(pg_stmt *s) {
  free(s->sql);
  free(s);
}

pg_stmt *dbp__pg_stmt_find(pg_conn *p, const char *sql, size_t len, int nparams) {
  return dbp__pg_stmt_find_hashed(p, sql, len, nparams, dbp__sql_hash(sql, len));
}

pg_stmt *dbp__pg_stmt_find_hashed(pg_conn *p, const char *sql, size_t len, int nparams,
                                  uint64_t text_hash) {
  pg_stmts *t = &p->stmts;
  if (t->tab == NULL || t->n == 0) return NULL;
  uint64_t h = stmt_key(text_hash, nparams);
  for (pg_stmt *s = t->tab[h % DBP__PG_STMT_BUCKETS]; s != NULL; s = s->hnext)
    if (s->hash == h && s->len == len && s->nparams == nparams && memcmp(s->sql, sql, len) == 0) {
      s->used = ++t->clock;
      return s;
    }
  return NULL;
}

/* Unlinks s from its bucket; the caller decides what becomes of it. */
static void stmt_unlink(pg_stmts *t, pg_stmt *s) {
  pg_stmt **pp = &t->tab[s->hash % DBP__PG_STMT_BUCKETS];
  while (*pp != NULL && *pp != s) pp = &(*pp)->hnext;
  if (*pp == s) *pp = s->hnext;
  s->hnext = NULL;
  s->listed = false;
  t->n--;
}

pg_stmt *dbp__pg_stmt_add(pg_conn *p, const char *sql, size_t len, int nparams, pg_stmt **evicted) {
  pg_stmts *t = &p->stmts;
  *evicted = NULL;
  if (t->tab == NULL) {
    t->tab = calloc(DBP__PG_STMT_BUCKETS, sizeof *t->tab);
    if (t->tab == NULL) return NULL;
  }
  pg_stmt *s = calloc(1, sizeof *s);
  if (s == NULL) return NULL;
  s->sql = malloc(len + 1);
  if (s->sql == NULL) {
    free(s);
    return NULL;
  }
  memcpy(s->sql, sql, len);
  s->sql[len] = '\0';
  s->len = len;
  s->nparams = nparams;
  s->hash = stmt_hash(sql, len, nparams);
  if (t->n >= DBP__PG_STMT_CACHE) {
    pg_stmt *old = NULL;
    for (size_t b = 0; b < DBP__PG_STMT_BUCKETS; b++)
      for (pg_stmt *e = t->tab[b]; e != NULL; e = e->hnext)
        if (old == NULL || e->used < old->used) old = e;
    if (old != NULL) {
      stmt_unlink(t, old);
      old->users++; /* the caller's, until its deallocation is sent */
      *evicted = old;
    }
  }
  snprintf(s->name, sizeof s->name, "dbpipe_s%llu", (unsigned long long)++t->next_id);
  s->used = ++t->clock;
  s->listed = true;
  pg_stmt **head = &t->tab[s->hash % DBP__PG_STMT_BUCKETS];
  s->hnext = *head;
  *head = s;
  t->n++;
  return s;
}

void dbp__pg_stmt_drop(pg_conn *p, pg_stmt *s) {
  if (p->sent == s) p->sent = NULL;
  if (!s->listed) return;
  stmt_unlink(&p->stmts, s);
  if (s->users == 0) stmt_free(s);
}

void dbp__pg_stmt_unref(pg_stmt *s) {
  if (s->users > 0) s->users--;
  if (s->users == 0 && !s->listed) stmt_free(s);
}

void dbp__pg_stmt_forget_all(pg_conn *p) {
  pg_stmts *t = &p->stmts;
  p->sent = NULL;
  if (t->tab == NULL) return;
  for (size_t b = 0; b < DBP__PG_STMT_BUCKETS; b++) {
    pg_stmt *s = t->tab[b];
    t->tab[b] = NULL;
    while (s != NULL) {
      pg_stmt *next = s->hnext;
      s->hnext = NULL;
      s->listed = false;
      if (s->users == 0) stmt_free(s);
      s = next;
    }
  }
  t->n = 0;
}

void dbp__pg_stmt_free_all(pg_conn *p) {
  dbp__pg_stmt_forget_all(p);
  free(p->stmts.tab);
  p->stmts.tab = NULL;
}

bool dbp__pg_stmt_stale(const dbp_dberr *e) {
  if (strcmp(e->sqlstate, "26000") == 0) return true;
  return strcmp(e->sqlstate, "0A000") == 0 &&
         strstr(e->message, "cached plan must not change result type") != NULL;
}
