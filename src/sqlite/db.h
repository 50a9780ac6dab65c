/* db.h — the SQLite module: what the SQLite store and the SQLite queue
 * share (internal to the backends).
 *
 * One tt_db per opened handle: the file path, a pool of connections (one is
 * used by one thread at a time; each caches its prepared statements), an
 * in-process writer mutex (so the threads of one process queue up on a
 * mutex instead of sleeping in SQLite's busy handler), each component's
 * migrations (one version per component in the table tt_schema, so the
 * store and the queue can share one file and still own their tables), and
 * the bridge to libuv's thread
 * pool: an operation runs on a pool thread and completes on the loop. */
#ifndef TT_SQLITE_DB_H
#define TT_SQLITE_DB_H

#include <sqlite3.h>
#include <stdint.h>
#include <uv.h>

typedef struct tt_db tt_db;
typedef struct tt_dbc tt_dbc;
typedef struct tt_dbop tt_dbop;

/* A component's schema: steps[i] moves its version from i to i+1. Append
 * only; never edit a released step. */
typedef struct tt_db_schema {
  const char *component; /* "store", "queue" */
  const char *const *steps;
  int nsteps;
} tt_db_schema;

/* Opens PATH from a "sqlite://PATH[?sync=full|normal]" URL: creates the
 * directory, sets WAL, brings schema's component up to date.
 * TT_EINVAL for a malformed URL, TT_EIO. */
int tt_db_open(uv_loop_t *loop, const char *url, const tt_db_schema *schema, tt_db **out);
/* Frees the pool. No operation may be in flight. */
void tt_db_free(tt_db *db);

struct tt_dbop {
  uv_work_t req;
  tt_db *db;
  int writes; /* takes the in-process writer mutex around work */
  int status; /* preset != 0: work is skipped and done reports it */
  void (*work)(tt_dbop *op, tt_dbc *c);
  void (*done)(tt_dbop *op); /* on the loop: call the user, free the op */
};

/* Runs op->work on the thread pool, then op->done on the loop. */
void tt_db_submit(tt_db *db, tt_dbop *op);
/* The in-process writer mutex, for ops that decide late that they write
 * (op->writes = 0, then lock around the write transaction). */
void tt_db_wlock(tt_db *db);
void tt_db_wunlock(tt_db *db);
/* Operations submitted and not yet done. */
int tt_db_pending(const tt_db *db);
/* Called (on the loop) whenever pending drops to 0. */
void tt_db_on_idle(tt_db *db, void (*cb)(void *), void *ud);

/* A cached prepared statement for sql (pointer identity is the cache key:
 * pass string constants), reset and unbound. NULL on failure. */
sqlite3_stmt *tt_db_stmt(tt_dbc *c, const char *sql);
sqlite3 *tt_dbc_handle(tt_dbc *c);
/* BEGIN IMMEDIATE / COMMIT / ROLLBACK: 0 or a tt error. */
int tt_db_exec(tt_dbc *c, const char *sql);
/* SQLite result code -> tt error (TT_EBUSY, TT_EEXIST, TT_ENOMEM, TT_EIO). */
int tt_db_err(tt_dbc *c, int rc);

#endif
