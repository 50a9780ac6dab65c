/* db.c — the SQLite module: the plumbing under src/store/sqlite.c and
 * src/queue/sqlite.c (open + pragmas, each component's migrations, a
 * connection pool for libuv's thread pool, cached prepared statements,
 * error mapping). It knows no table: each component brings its own schema
 * steps and this file keeps one version per component in tt_schema.
 *
 * Many processes may open the same file: WAL lets readers run beside the
 * one writer; writers wait for each other in a short-sleep busy handler
 * (SQLite's default sleeps up to 100 ms per try, which ruins throughput
 * under contention) for at most TT_DB_BUSY_MS. Within a process writers
 * first take a mutex, so only one thread per process waits on the lock. */
#include "sqlite/db.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "tintype/error.h"
#include "tintype/log.h"

#define TT_DB_BUSY_MS 5000
#define TT_DB_STMTS 48

struct tt_dbc {
  sqlite3 *h;
  struct {
    const char *sql;
    sqlite3_stmt *st;
  } stmts[TT_DB_STMTS];
  int nstmts;
  tt_dbc *next;
};

struct tt_db {
  uv_loop_t *loop;
  char *path;
  int sync_full;
  pthread_mutex_t mu;  /* guards the free list */
  pthread_mutex_t wmu; /* one writer per process at a time */
  tt_dbc *free;
  int pending; /* loop thread only */
  void (*idle_cb)(void *);
  void *idle_ud;
};

/* ---- connections ------------------------------------------------------- */

static int busy_handler(void *ud, int n) {
  (void)ud;
  /* ~1 ms in 50 us steps, ~16 ms in 200 us steps, then 1 ms steps:
   * about TT_DB_BUSY_MS in all. */
  useconds_t us = n < 20 ? 50 : n < 100 ? 200 : 1000;
  if (n > 100 + TT_DB_BUSY_MS) return 0;
  usleep(us);
  return 1;
}

int tt_db_err(tt_dbc *c, int rc) {
  switch (rc & 0xff) {
  case SQLITE_OK:
  case SQLITE_DONE:
  case SQLITE_ROW: return TT_OK;
  case SQLITE_BUSY:
  case SQLITE_LOCKED: return TT_EBUSY;
  case SQLITE_NOMEM: return TT_ENOMEM;
  case SQLITE_FULL: /* the disk under the database is full: the blobs' code, so both answer 507 */
    tt_logf(TT_LOG_ERROR, "sqlite: %s (%d)", c && c->h ? sqlite3_errmsg(c->h) : sqlite3_errstr(rc), rc);
    return UV_ENOSPC;
  case SQLITE_CONSTRAINT:
    if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY) return TT_EEXIST;
    return TT_EINVAL;
  default:
    tt_logf(TT_LOG_ERROR, "sqlite: %s (%d)", c && c->h ? sqlite3_errmsg(c->h) : sqlite3_errstr(rc),
            rc);
    return TT_EIO;
  }
}

static int exec_h(sqlite3 *h, const char *sql) {
  char *msg = NULL;
  int rc = sqlite3_exec(h, sql, NULL, NULL, &msg);
  if (rc != SQLITE_OK && msg) tt_logf(TT_LOG_ERROR, "sqlite: %s: %s", sql, msg);
  sqlite3_free(msg);
  return rc;
}

int tt_db_exec(tt_dbc *c, const char *sql) {
  sqlite3_stmt *st = tt_db_stmt(c, sql);
  if (!st) return TT_EIO;
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? TT_OK : tt_db_err(c, rc);
}

static tt_dbc *conn_open(tt_db *db, int *err) {
  tt_dbc *c = calloc(1, sizeof *c);
  if (!c) {
    *err = TT_ENOMEM;
    return NULL;
  }
  int rc = sqlite3_open_v2(db->path, &c->h,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc != SQLITE_OK) {
    tt_logf(TT_LOG_ERROR, "sqlite: open %s: %s", db->path, c->h ? sqlite3_errmsg(c->h) : "no memory");
    sqlite3_close(c->h);
    free(c);
    *err = TT_EIO;
    return NULL;
  }
  sqlite3_extended_result_codes(c->h, 1);
  sqlite3_busy_handler(c->h, busy_handler, NULL);
  const char *sync = db->sync_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL";
  if (exec_h(c->h, sync) != SQLITE_OK || exec_h(c->h, "PRAGMA foreign_keys=OFF") != SQLITE_OK ||
      exec_h(c->h, "PRAGMA temp_store=MEMORY") != SQLITE_OK) {
    sqlite3_close(c->h);
    free(c);
    *err = TT_EIO;
    return NULL;
  }
  return c;
}

static void conn_close(tt_dbc *c) {
  for (int i = 0; i < c->nstmts; i++) sqlite3_finalize(c->stmts[i].st);
  sqlite3_close(c->h);
  free(c);
}

sqlite3 *tt_dbc_handle(tt_dbc *c) { return c->h; }

sqlite3_stmt *tt_db_stmt(tt_dbc *c, const char *sql) {
  for (int i = 0; i < c->nstmts; i++)
    if (c->stmts[i].sql == sql) {
      sqlite3_stmt *st = c->stmts[i].st;
      sqlite3_reset(st);
      sqlite3_clear_bindings(st);
      return st;
    }
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v3(c->h, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
  if (rc != SQLITE_OK) {
    tt_logf(TT_LOG_ERROR, "sqlite: prepare: %s: %s", sqlite3_errmsg(c->h), sql);
    return NULL;
  }
  if (c->nstmts < TT_DB_STMTS) {
    c->stmts[c->nstmts].sql = sql;
    c->stmts[c->nstmts].st = st;
    c->nstmts++;
  } else {
    tt_logf(TT_LOG_ERROR, "sqlite: statement cache full");
    sqlite3_finalize(st);
    return NULL;
  }
  return st;
}

static tt_dbc *acquire(tt_db *db, int *err) {
  pthread_mutex_lock(&db->mu);
  tt_dbc *c = db->free;
  if (c) db->free = c->next;
  pthread_mutex_unlock(&db->mu);
  if (!c) c = conn_open(db, err);
  return c;
}

static void release(tt_db *db, tt_dbc *c) {
  pthread_mutex_lock(&db->mu);
  c->next = db->free;
  db->free = c;
  pthread_mutex_unlock(&db->mu);
}

/* ---- open / migrate ---------------------------------------------------- */

static int mkdirs(char *path) {
  for (char *p = path + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    int r = mkdir(path, 0755);
    *p = '/';
    if (r != 0 && errno != EEXIST) return -1;
  }
  return 0;
}

/* The version of component: its tt_schema row; a file made before versions
 * were per component (PRAGMA user_version 1: store and queue tables in one
 * step) counts as version 1 of both. -1 on error. */
static int component_version(tt_dbc *c, const char *component) {
  if (exec_h(c->h, "CREATE TABLE IF NOT EXISTS tt_schema(component TEXT PRIMARY KEY NOT NULL,"
                   " version INTEGER NOT NULL) WITHOUT ROWID") != SQLITE_OK)
    return -1;
  sqlite3_stmt *st = NULL;
  int ver = -1;
  if (sqlite3_prepare_v2(c->h, "SELECT version FROM tt_schema WHERE component=?", -1, &st, NULL) !=
      SQLITE_OK)
    return -1;
  sqlite3_bind_text(st, 1, component, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) ver = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  if (rc == SQLITE_ROW) return ver;
  if (rc != SQLITE_DONE) return -1;
  if (sqlite3_prepare_v2(c->h, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW)
    ver = sqlite3_column_int(st, 0) == 1 ? 1 : 0;
  sqlite3_finalize(st);
  return ver;
}

static int migrate(tt_dbc *c, const tt_db_schema *schema) {
  /* journal_mode is persistent in the file; setting it again is a no-op.
   * It needs a moment without other writers, so retry a little. */
  int rc = SQLITE_BUSY;
  for (int i = 0; i < 200 && rc != SQLITE_OK; i++) {
    /* quiet while another process holds the lock (first start of several) */
    rc = sqlite3_exec(c->h, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
    if (rc != SQLITE_OK) usleep(10000);
  }
  if (rc != SQLITE_OK) rc = exec_h(c->h, "PRAGMA journal_mode=WAL"); /* the last try says why */
  if (rc != SQLITE_OK) return TT_EIO;
  if (exec_h(c->h, "BEGIN IMMEDIATE") != SQLITE_OK) return TT_EBUSY;
  int ver = component_version(c, schema->component);
  if (ver < 0 || ver > schema->nsteps) {
    tt_logf(TT_LOG_ERROR, "sqlite: %s schema version %d unknown to this build (knows %d)",
            schema->component, ver, schema->nsteps);
    exec_h(c->h, "ROLLBACK");
    return TT_EIO;
  }
  for (int v = ver; v < schema->nsteps; v++) {
    char set[160];
    snprintf(set, sizeof set, "INSERT OR REPLACE INTO tt_schema(component,version) VALUES('%s',%d)",
             schema->component, v + 1);
    if (exec_h(c->h, schema->steps[v]) != SQLITE_OK || exec_h(c->h, set) != SQLITE_OK) {
      exec_h(c->h, "ROLLBACK");
      return TT_EIO;
    }
    tt_logf(TT_LOG_INFO, "sqlite: migrated %s schema to version %d", schema->component, v + 1);
  }
  return exec_h(c->h, "COMMIT") == SQLITE_OK ? TT_OK : TT_EIO;
}

int tt_db_open(uv_loop_t *loop, const char *url, const tt_db_schema *schema, tt_db **out) {
  *out = NULL;
  if (strncmp(url, "sqlite://", 9) != 0 || !url[9] || url[9] == '?') return TT_EINVAL;
  tt_db *db = calloc(1, sizeof *db);
  if (!db) return TT_ENOMEM;
  db->loop = loop;
  const char *p = url + 9, *q = strchr(p, '?');
  size_t n = q ? (size_t)(q - p) : strlen(p);
  db->path = strndup(p, n);
  if (!db->path) {
    free(db);
    return TT_ENOMEM;
  }
  if (q) {
    if (!strcmp(q, "?sync=full")) db->sync_full = 1;
    else if (strcmp(q, "?sync=normal")) {
      free(db->path);
      free(db);
      return TT_EINVAL;
    }
  }
  pthread_mutex_init(&db->mu, NULL);
  pthread_mutex_init(&db->wmu, NULL);
  int err = TT_OK;
  if (mkdirs(db->path) != 0) {
    tt_logf(TT_LOG_ERROR, "sqlite: cannot create the directory of %s: %s", db->path,
            strerror(errno));
    tt_db_free(db);
    return TT_EIO;
  }
  tt_dbc *c = conn_open(db, &err);
  if (!c) {
    tt_db_free(db);
    return err;
  }
  err = migrate(c, schema);
  release(db, c);
  if (err) {
    tt_db_free(db);
    return err;
  }
  *out = db;
  return TT_OK;
}

void tt_db_free(tt_db *db) {
  if (!db) return;
  while (db->free) {
    tt_dbc *c = db->free;
    db->free = c->next;
    conn_close(c);
  }
  pthread_mutex_destroy(&db->mu);
  pthread_mutex_destroy(&db->wmu);
  free(db->path);
  free(db);
}

/* ---- thread pool bridge ------------------------------------------------ */

static void work_cb(uv_work_t *req) {
  tt_dbop *op = req->data;
  if (op->status) return;
  tt_db *db = op->db;
  int err = TT_OK;
  tt_dbc *c = acquire(db, &err);
  if (!c) {
    op->status = err;
    return;
  }
  if (op->writes) pthread_mutex_lock(&db->wmu);
  op->work(op, c);
  if (op->writes) pthread_mutex_unlock(&db->wmu);
  /* never return a connection inside a transaction */
  if (!sqlite3_get_autocommit(c->h)) exec_h(c->h, "ROLLBACK");
  release(db, c);
}

static void after_cb(uv_work_t *req, int status) {
  tt_dbop *op = req->data;
  tt_db *db = op->db;
  if (status == UV_ECANCELED && !op->status) op->status = TT_ECANCELED;
  op->done(op);
  if (--db->pending == 0 && db->idle_cb) db->idle_cb(db->idle_ud);
}

void tt_db_submit(tt_db *db, tt_dbop *op) {
  op->db = db;
  op->req.data = op;
  db->pending++;
  int r = uv_queue_work(db->loop, &op->req, work_cb, after_cb);
  if (r != 0) abort(); /* only fails for a NULL work callback: a bug */
}

int tt_db_pending(const tt_db *db) { return db->pending; }
void tt_db_wlock(tt_db *db) { pthread_mutex_lock(&db->wmu); }
void tt_db_wunlock(tt_db *db) { pthread_mutex_unlock(&db->wmu); }

void tt_db_on_idle(tt_db *db, void (*cb)(void *), void *ud) {
  db->idle_cb = cb;
  db->idle_ud = ud;
}
