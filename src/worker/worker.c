/* worker.c — the worker role (worker.h): receive → dispatch → conditional
 * state changes → blobs under deterministic keys → delete.
 *
 * One long poll per queue ("jobs", "images") is outstanding while there is
 * room (concurrency per kind). Each message is a small state machine:
 *
 *   job    get record → (terminal: delete) → update running, attempts+1 →
 *          render (render.c) → put jobs/ID.EXT → update succeeded → delete
 *   image  get record → update processing → get images/ID/raw → libvips on
 *          the thread pool (imaging.c) → put images/ID/processed and
 *          images/ID/thumb → update processed → delete
 *
 * Idempotent by construction: a message handled twice (a crash after the
 * put, before the delete) overwrites the same keys with the same bytes and
 * finds the record already terminal. A lost conditional write re-reads the
 * record: a job canceled meanwhile stays canceled. Failures the page causes
 * (timeout, policy, bad selector) fail the job at once; failures of the
 * machinery (browser died, storage) give the message back for another try,
 * and the try that reaches max_receives fails the job with its last error
 * and leaves the message to be dead-lettered at its next receive. While
 * work runs its message's visibility is extended, so a slow render is not
 * handed to a second worker; a worker killed outright stops extending and
 * the message returns after the visibility timeout. */
#include "tintype/worker.h"

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tintype/blobs.h"
#include "tintype/error.h"
#include "tintype/imaging.h"
#include "tintype/job.h"
#include "tintype/log.h"
#include "tintype/metrics.h"
#include "tintype/queue.h"
#include "tintype/render.h"
#include "tintype/store.h"
#include "tintype/supervisor.h"
#include "tintype/webhook.h"
#include "tintype/crypto.h"


#define JOBS_QUEUE TT_QUEUE_JOBS
#define IMAGES_QUEUE TT_QUEUE_IMAGES
#define POLL_WAIT_MS 1000      /* short long-polls: a drain never waits long */
#define ORPHAN_AGE_MS 30000    /* a message whose record never appeared */
#define ORPHAN_RETRY_MS 3000
/* the usual case: the message was read in the moment between the API's
 * send and its record write (an idle worker's parked poll wins that race);
 * 3 s for it made one idle job in ~30 take 3.3 s */
#define ORPHAN_FIRST_RETRY_MS 100
#define RETRY_DELAY_MS 500     /* a retryable failure: try again soon */
#define MAX_CONFLICTS 8
#define FAIR_ROTATE_MS 250     /* a backlog of busy owners slides at most this often */
#define FAIR_ROTATE_MAX_MS 2000 /* ... backing off to this while what it slides comes back */
#define FAIR_HANDOFF_MS 100    /* a slid message is sent delayed: this backlog's parked poll does not win it at once */

typedef struct worker worker;
typedef struct work work;
enum { K_JOB, K_IMAGE };

typedef struct poller {
  worker *w;
  const char *queue;
  int kind;
  int polling, active, room;
  uv_timer_t backoff;
} poller;

struct worker {
  uv_loop_t loop;
  const tt_config *cfg;
  tt_store *store;
  tt_queue *queue;
  tt_blobs *blobs;
  tt_render *render;
  tt_netpolicy policy;
  tt_webhooks *hooks;
  poller jobs, images;
  uv_signal_t sigterm, sigint;
  uv_timer_t heartbeat, deadline;
  uv_timer_t rotate; /* fairness: slides a backlog of busy owners (on_rotate) */
  uv_timer_t preempt; /* fairness: looks again once a running job is old enough to preempt */
  int draining, closing, restarts_seen;
  int slots_used;    /* jobs holding one of the --concurrency slots */
  char rotated[TT_ID_SIZE]; /* the job the backlog last slid past */
  int rotate_ms;            /* the slide's interval, doubled while it comes back */
  uint64_t seq;      /* orders arrivals and starts */
  work *items;
};

struct work {
  worker *w;
  poller *p;
  work *next, *prev;
  int kind;
  char id[TT_ID_SIZE];
  char *receipt;
  int receive_count;
  int64_t sent_at;
  int conflicts;
  int busy; /* an async step of this work is in flight */
  /* fairness (jobs): waiting in the local backlog, holding a slot, its
   * render being stopped for another owner's job; times preempted before */
  int waiting, slot, preempting, preempts;
  int reading; /* its record is being read (before job_admit) */
  uint64_t arrived, started;
  uint64_t started_ms; /* loop time it got its slot */
  tt_job *job;
  tt_image *im;
  tt_options o;
  /* results waiting to be recorded */
  unsigned char *data;
  size_t len;
  char key[128];
  char *result_json;
  char error[512];
  int retryable;
  uv_work_t req;
  tt_imaging_out out;
  void *raw;
  size_t raw_len;
  int img_rc;
  int puts_left, put_failed;
  int then; /* after the webhook outbox write: THEN_* */
  /* the job's phase in its record while it renders: one write at a time,
   * and the job's other writes wait for it (job_save) */
  int phase_saving, free_after, phase_lost; /* phase_lost: a phase write lost a race: no more */
  char phase_next[16];
  tt_store_cb save_after;
};

enum { THEN_ACK, THEN_GIVE_BACK, THEN_CACHE };

static void poll_queue(poller *p);
static void on_backoff(uv_timer_t *t);
static void on_queue_quiet(void *ud, int status) {
  (void)ud;
  (void)status;
}
static void on_blob_quiet(void *ud, int status) {
  (void)ud;
  (void)status;
}
static void job_get(work *k);
static void image_get(work *k);
static void maybe_done(worker *w);

static int64_t now_ms(void) {
  uv_timeval64_t tv;
  uv_gettimeofday(&tv);
  return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* ---- work lifetime ------------------------------------------------------ */

static void slot_release(work *k);

static void work_free(work *k) {
  worker *w = k->w;
  k->waiting = 0;
  slot_release(k);
  if (k->prev) k->prev->next = k->next;
  else if (w->items == k) w->items = k->next;
  if (k->next) k->next->prev = k->prev;
  k->p->active--;
  free(k->receipt);
  if (k->job) tt_job_free(k->job);
  if (k->im) tt_image_free(k->im);
  free(k->data);
  free(k->result_json);
  tt_imaging_out_free(&k->out);
  free(k->raw);
  poller *p = k->p;
  free(k);
  poll_queue(p);
  maybe_done(w);
}

static void on_msg_done(void *ud, int status) {
  work *k = ud;
  if (status && status != TT_ENOTFOUND && status != TT_ESTALE)
    tt_logf(TT_LOG_WARN, "worker: %s %s: queue call failed: %s", k->p->queue, k->id, tt_strerror(status));
  if (k->phase_saving) { /* its callback still needs k: it frees it */
    k->free_after = 1;
    return;
  }
  work_free(k);
}

/* the work is recorded: acknowledge the message */
static void ack(work *k) { tt_queue_delete(k->w->queue, k->p->queue, k->receipt, on_msg_done, k); }

/* not this time: the message comes back after delay_ms */
static void give_back(work *k, int64_t delay_ms) {
  tt_queue_change_visibility(k->w->queue, k->p->queue, k->receipt, delay_ms, on_msg_done, k);
}

/* ---- fairness between owners (--fair-backlog, docs/ARCHITECTURE.md) -----
 *
 * A job whose record has been read waits in the local backlog (waiting)
 * until one of the --concurrency slots is free; the backlog is received
 * beyond the free slots (--fair-backlog more), its messages kept hidden by
 * the heartbeat like running ones and given back at once on a drain. A
 * free slot goes to the waiting job of the owner with the fewest jobs
 * running here (ties: the oldest message), so an owner alone uses every
 * slot. When an owner with nothing running waits while every slot is held,
 * the owner furthest over its share (slots / owners with work here) gives
 * back its most recently started job: its render is stopped, its record
 * goes back to queued with the attempt uncharged, and a fresh copy of its
 * message is sent before the old one is deleted, so the queue's receive
 * count is not consumed (a crash in between leaves a duplicate, which the
 * idempotent consumer absorbs). Only a job that has run at least
 * --fair-preempt-after-ms is given back (a younger one will likely free its
 * slot sooner than a restart would: with 4 owners' short jobs interleaved,
 * preempting at once stopped a third of all renders); a timer looks again
 * when the oldest one gets there. A job is preempted at most
 * --fair-max-preemptions times. While every slot is taken and the backlog
 * holds only owners that already run here, it slides: every FAIR_ROTATE_MS
 * (backing off while the message comes straight back) the newest waiting
 * message of the owner with most jobs here goes to the back of the queue
 * the same way, so messages of other owners behind it are seen, and a
 * worker process with a free slot can take it (FAIR_HANDOFF_MS). */

static void job_mark_running(work *k);
static void job_requeue(work *k, int preempted);

static const char *owner_of(const work *k) { return k->job ? k->job->owner : ""; }

/* jobs of owner holding a slot here, the ones being preempted not counted */
static int owner_running(const worker *w, const char *owner) {
  int n = 0;
  for (const work *k = w->items; k; k = k->next)
    if (k->slot && !k->preempting && !strcmp(owner_of(k), owner)) n++;
  return n;
}

static int owner_waiting(const worker *w, const char *owner) {
  int n = 0;
  for (const work *k = w->items; k; k = k->next)
    if (k->waiting && !strcmp(owner_of(k), owner)) n++;
  return n;
}

/* 1 when no job before k in the list (with work) has k's owner: counts
 * each owner once */
static int first_of_owner(const worker *w, const work *k, int waiting_only) {
  for (const work *o = w->items; o && o != k; o = o->next)
    if ((o->waiting || (!waiting_only && o->slot && !o->preempting)) && !strcmp(owner_of(o), owner_of(k))) return 0;
  return 1;
}

static int older(const work *a, const work *b) {
  return a->sent_at != b->sent_at ? a->sent_at < b->sent_at : a->arrived < b->arrived;
}

static void maybe_preempt(worker *w);
static void maybe_rotate(worker *w);

/* gives free slots to waiting jobs, fewest running first */
static void schedule(worker *w) {
  while (!w->draining && w->slots_used < w->cfg->concurrency) {
    work *best = NULL;
    int best_n = 0;
    for (work *k = w->items; k; k = k->next) {
      if (!k->waiting) continue;
      int n = owner_running(w, owner_of(k));
      if (!best || n < best_n || (n == best_n && older(k, best))) {
        best = k;
        best_n = n;
      }
    }
    if (!best) break;
    /* a message sent no later than best's whose record is still being read
     * goes first: received together, records come back in any order, and
     * one owner's jobs should start in the order they were sent */
    int older_reading = 0;
    for (const work *k = w->items; k; k = k->next)
      if (k->reading && !k->slot && k->kind == K_JOB && k->sent_at <= best->sent_at) older_reading = 1;
    if (older_reading) break; /* scheduled again when that read ends (on_job_got) */
    best->waiting = 0;
    best->slot = 1;
    best->started = ++w->seq;
    best->started_ms = uv_now(&w->loop);
    w->slots_used++;
    job_mark_running(best);
  }
  if (w->slots_used >= w->cfg->concurrency) {
    maybe_preempt(w);
    maybe_rotate(w);
  }
}

static void slot_release(work *k) {
  if (!k->slot) return;
  k->slot = 0;
  k->w->slots_used--;
  k->w->rotate_ms = FAIR_ROTATE_MS;
  schedule(k->w);
}

/* a job whose record is read: to a slot, or into the backlog */
static void job_admit(work *k) {
  if (k->slot) { /* re-read after a lost race: it has its slot */
    job_mark_running(k);
    return;
  }
  if (k->w->draining) {
    give_back(k, 0);
    return;
  }
  if (!strcmp(k->id, k->w->rotated)) /* it came back: nothing else queued, or no one else took it */
    k->w->rotate_ms = k->w->rotate_ms * 2 < FAIR_ROTATE_MAX_MS ? k->w->rotate_ms * 2 : FAIR_ROTATE_MAX_MS;
  k->waiting = 1;
  k->arrived = ++k->w->seq;
  schedule(k->w);
}

static void on_preempt_due(uv_timer_t *t) { maybe_preempt(t->data); }

static void maybe_preempt(worker *w) {
  if (w->cfg->fair_backlog <= 0 || w->cfg->fair_max_preemptions <= 0 || w->draining || w->closing) return;
  int starved = 0, pending = 0, owners = 0;
  for (const work *k = w->items; k; k = k->next) {
    if (k->preempting) pending++;
    if (!k->waiting && !(k->slot && !k->preempting)) continue;
    if (!first_of_owner(w, k, 0)) continue;
    owners++;
    if (k->waiting && !owner_running(w, owner_of(k))) starved++;
  }
  if (!owners) return;
  int share = (int)w->cfg->concurrency / owners;
  if (share < 1) share = 1;
  uint64_t now = uv_now(&w->loop), after = (uint64_t)w->cfg->fair_preempt_after_ms, soonest = 0;
  while (pending < starved) {
    /* the owner furthest over its share; its most recently started job
     * that is rendering, has run long enough and may still be preempted */
    work *victim = NULL;
    int most = 0;
    for (work *k = w->items; k; k = k->next) {
      if (!k->slot || k->preempting || !k->busy || k->preempts >= w->cfg->fair_max_preemptions) continue;
      int n = owner_running(w, owner_of(k));
      if (n <= share) continue;
      if (now - k->started_ms < after) { /* too young: look again when it is not */
        uint64_t due = k->started_ms + after - now;
        if (!soonest || due < soonest) soonest = due;
        continue;
      }
      if (!victim || n > most || (n == most && k->started > victim->started)) {
        victim = k;
        most = n;
      }
    }
    if (!victim) {
      if (soonest && !uv_is_active((uv_handle_t *)&w->preempt)) {
        tt_logf(TT_LOG_INFO, "worker: an owner waits; a job over its share may be preempted in %llu ms "
                "(fair-preempt-after-ms) unless a slot frees first", (unsigned long long)soonest);
        uv_timer_start(&w->preempt, on_preempt_due, soonest, 0);
      }
      break;
    }
    if (tt_render_cancel(w->render, victim) != TT_OK) break;
    victim->preempting = 1;
    pending++;
    tt_logf(TT_LOG_INFO, "worker: job %s gives its slot back: its owner runs %d of %lld slots, another waits", victim->id,
            most, (long long)w->cfg->concurrency);
  }
}

static void on_rotate(uv_timer_t *t);

/* every slot is taken and the backlog holds only owners that already run
 * here: slide it (others' messages may be behind it in the queue, and
 * another worker may have a free slot for it) */
static int rotation_due(const worker *w) {
  if (w->cfg->fair_backlog <= 0 || w->draining || w->slots_used < w->cfg->concurrency) return 0;
  int waiting = 0;
  for (const work *k = w->items; k; k = k->next) {
    if (k->preempting) return 0; /* a slot is about to free */
    if (!k->waiting) continue;
    if (!owner_running(w, owner_of(k))) return 0; /* it gets the next slot; preemption's business */
    waiting++;
  }
  return waiting > 0;
}

static void maybe_rotate(worker *w) {
  if (rotation_due(w) && !uv_is_active((uv_handle_t *)&w->rotate))
    uv_timer_start(&w->rotate, on_rotate, (uint64_t)w->rotate_ms, 0);
}

static void on_rotate(uv_timer_t *t) {
  worker *w = t->data;
  if (!rotation_due(w)) return;
  /* the owner with most jobs here; its newest waiting message */
  work *pick = NULL;
  int most = 0;
  for (work *k = w->items; k; k = k->next) {
    if (!k->waiting) continue;
    int n = owner_running(w, owner_of(k)) + owner_waiting(w, owner_of(k));
    if (n > most || (n == most && k->arrived > pick->arrived)) {
      pick = k;
      most = n;
    }
  }
  if (!pick) return;
  pick->waiting = 0;
  memcpy(w->rotated, pick->id, TT_ID_SIZE);
  job_requeue(pick, 0);
  maybe_rotate(w); /* the next one, while it is still due */
}

/* ---- jobs --------------------------------------------------------------- */

static void job_save(work *k, tt_store_cb cb) {
  if (k->phase_saving) { /* after the phase write, with its version */
    k->save_after = cb;
    return;
  }
  tt_store_update(k->w->store, TT_KIND_JOB, k->job, cb, k);
}

static void set_str(char **field, const char *v);

/* ---- a running job's phase (opening, loading, waiting, capturing) ------- */

static void save_phase(work *k, const char *phase);

static void on_phase_saved(void *ud, int status, const void *rec) {
  work *k = ud;
  k->phase_saving = 0;
  if (k->free_after) { /* the message was handled meanwhile */
    work_free(k);
    return;
  }
  /* our own write: the record is k->job with a newer version. A lost race
   * (canceled meanwhile) is left to the job's final write to find */
  if (status == TT_OK) k->job->version = ((const tt_job *)rec)->version;
  else k->phase_lost = 1;
  if (k->save_after) {
    tt_store_cb cb = k->save_after;
    k->save_after = NULL;
    job_save(k, cb);
    return;
  }
  if (k->phase_next[0] && k->busy && !k->phase_lost) {
    char next[sizeof k->phase_next];
    memcpy(next, k->phase_next, sizeof next);
    k->phase_next[0] = 0;
    save_phase(k, next);
  }
}

static void save_phase(work *k, const char *phase) {
  if (k->phase_saving) {
    snprintf(k->phase_next, sizeof k->phase_next, "%s", phase);
    return;
  }
  set_str(&k->job->phase, phase);
  k->phase_saving = 1;
  tt_store_update(k->w->store, TT_KIND_JOB, k->job, on_phase_saved, k);
}

static void on_render_phase(void *ud, const char *phase) {
  work *k = ud;
  if (k->busy && k->job && !k->phase_lost) save_phase(k, phase);
}

static int keep_job(work *k, const void *rec) {
  tt_job *j = tt_job_dup(rec);
  if (!j) return TT_ENOMEM;
  if (k->job) tt_job_free(k->job);
  k->job = j;
  return 0;
}

static void set_str(char **field, const char *v) {
  free(*field);
  *field = v ? strdup(v) : NULL;
}

static void on_job_final(void *ud, int status, const void *rec);
static void cache_put(work *k);

/* A job that ended and named a callback_url: its delivery goes into the
 * outbox (webhook.h) before the message is acknowledged, so a crash in
 * between only redelivers the message, and its next receive writes it. */
static void on_outboxed(void *ud, int status) {
  work *k = ud;
  if (status) {
    tt_logf(TT_LOG_WARN, "worker: job %s: cannot write its webhook: %s", k->id, tt_strerror(status));
    give_back(k, RETRY_DELAY_MS);
    return;
  }
  if (k->then == THEN_CACHE) cache_put(k);
  else if (k->then == THEN_GIVE_BACK) give_back(k, 0);
  else ack(k);
}

static void job_ended(work *k, int then) {
  k->then = then;
  tt_webhook_enqueue(k->w->store, k->job, on_outboxed, k);
}

/* ---- the result cache: a succeeded job that asked for it (cache_ttl)
 * leaves an entry naming its blob (store.h tt_cache_entry); the API answers
 * identical requests from it. Best effort: a failure here only costs a
 * later render, so it is logged and the message is acknowledged anyway. */

static void cache_entry_fill(work *k, tt_cache_entry *e) {
  e->state = "ready";
  e->job_id = k->id;
  e->result_key = k->key;
  e->result = k->result_json;
  e->rendered_at = k->job->finished_at;
}

static void on_cache_written(void *ud, int status, const void *rec);

static void on_cache_got(void *ud, int status, const void *rec) {
  work *k = ud;
  if (status) {
    on_cache_written(k, status, NULL);
    return;
  }
  tt_cache_entry e = *(const tt_cache_entry *)rec;
  cache_entry_fill(k, &e);
  k->conflicts = MAX_CONFLICTS; /* one refresh; a lost race means someone refreshed it */
  tt_store_update(k->w->store, TT_KIND_CACHE, &e, on_cache_written, k);
}

static void on_cache_written(void *ud, int status, const void *rec) {
  work *k = ud;
  (void)rec;
  if (status == TT_EEXIST && k->conflicts < MAX_CONFLICTS) { /* an older entry: refresh it */
    char id[TT_ID_SIZE];
    if (tt_job_cache_id(k->job->owner, &k->o, id) == TT_OK) {
      tt_store_get(k->w->store, TT_KIND_CACHE, id, on_cache_got, k);
      return;
    }
  }
  if (status && status != TT_ECONFLICT)
    tt_logf(TT_LOG_WARN, "worker: job %s: cannot write its cache entry: %s", k->id, tt_strerror(status));
  ack(k);
}

static void cache_put(work *k) {
  tt_cache_entry e;
  memset(&e, 0, sizeof e);
  if (tt_job_cache_id(k->job->owner, &k->o, e.id)) {
    ack(k);
    return;
  }
  memcpy(e.owner, k->job->owner, TT_ID_SIZE);
  cache_entry_fill(k, &e);
  tt_store_create(k->w->store, TT_KIND_CACHE, &e, on_cache_written, k);
}

/* writes the job's outcome; on a lost race re-reads and decides again */
static void job_finish(work *k) {
  tt_job *j = k->job;
  j->finished_at = now_ms();
  set_str(&j->phase, NULL);
  if (k->result_json) {
    set_str(&j->state, "succeeded");
    set_str(&j->result_key, k->key);
    set_str(&j->result, k->result_json);
    set_str(&j->error, NULL);
  } else {
    set_str(&j->state, "failed");
    set_str(&j->error, k->error);
  }
  job_save(k, on_job_final);
}

static void on_job_reread(void *ud, int status, const void *rec) {
  work *k = ud;
  if (status || keep_job(k, rec)) {
    tt_logf(TT_LOG_WARN, "worker: job %s: cannot re-read: %s", k->id, tt_strerror(status));
    give_back(k, RETRY_DELAY_MS);
    return;
  }
  const char *st = k->job->state;
  if (tt_job_state_final(st)) {
    /* canceled while it rendered (or another attempt already finished it):
     * the record wins; our bytes, if any, are not linked from it */
    if (k->result_json && !strcmp(st, "canceled")) tt_blobs_delete(k->w->blobs, k->key, on_blob_quiet, NULL);
    job_ended(k, THEN_ACK);
    return;
  }
  job_finish(k);
}

static void on_job_final(void *ud, int status, const void *rec) {
  work *k = ud;
  (void)rec;
  if (status == TT_ECONFLICT && ++k->conflicts < MAX_CONFLICTS) {
    tt_store_get(k->w->store, TT_KIND_JOB, k->id, on_job_reread, k);
    return;
  }
  if (status) {
    tt_logf(TT_LOG_WARN, "worker: job %s: cannot record the outcome: %s", k->id, tt_strerror(status));
    give_back(k, RETRY_DELAY_MS);
    return;
  }
  if (k->result_json) {
    tt_metrics_add(TT_M_JOBS_SUCCEEDED, 1);
    k->conflicts = 0;
    job_ended(k, k->o.cache_ttl > 0 && k->w->cfg->max_cache_ttl > 0 ? THEN_CACHE : THEN_ACK);
    return;
  }
  tt_metrics_add(TT_M_JOBS_FAILED, 1);
  tt_logf(TT_LOG_INFO, "worker: job %s failed: %s", k->id, k->error);
  /* retries used up: its next receive dead-letters it */
  job_ended(k, k->retryable ? THEN_GIVE_BACK : THEN_ACK);
}

static void on_job_put(void *ud, int status, const tt_blob_info *info) {
  work *k = ud;
  (void)info;
  if (status) {
    snprintf(k->error, sizeof k->error, "cannot store the result: %s", tt_strerror(status));
    free(k->result_json);
    k->result_json = NULL;
    k->retryable = 1;
    if (k->receive_count < k->w->cfg->max_receives) {
      tt_metrics_add(TT_M_JOB_RETRIES, 1);
      give_back(k, RETRY_DELAY_MS);
      return;
    }
  }
  job_finish(k);
}

static void on_error_noted(void *ud, int status, const void *rec) {
  work *k = ud;
  (void)status;
  (void)rec;
  tt_metrics_add(TT_M_JOB_RETRIES, 1);
  give_back(k, RETRY_DELAY_MS);
}

/* browsers started again since last looked: to /metrics */
static void note_restarts(worker *w) {
  if (!w->render) return;
  int restarts = tt_render_restarts(w->render);
  if (restarts > w->restarts_seen) {
    tt_metrics_add(TT_M_BROWSER_RESTARTS, (uint64_t)(restarts - w->restarts_seen));
    w->restarts_seen = restarts;
  }
}

static void on_rendered(void *ud, int status, tt_render_result *r) {
  work *k = ud;
  k->busy = 0;
  slot_release(k);
  note_restarts(k->w);
  if (r->blocked) tt_metrics_add(TT_M_REQUESTS_BLOCKED, (uint64_t)r->blocked);
  if (status == TT_OK) {
    k->data = r->data;
    r->data = NULL;
    k->len = r->len;
    snprintf(k->key, sizeof k->key, "jobs/%s.%s", k->id, tt_format_name(r->format));
    json_t *j = tt_render_result_json(r);
    /* the record's attempt that made it (a delivery given back before it
     * ran — a read that failed, a busy owner — is no attempt) */
    json_object_set_new(j, "attempt", json_integer(k->job ? k->job->attempts : k->receive_count));
    /* queued_ms: the time in the queue (created until a worker started it)
     * plus the wait for the browser, not only the latter */
    int64_t in_queue = k->job->started_at > k->job->created_at ? k->job->started_at - k->job->created_at : 0;
    json_t *t = json_object_get(j, "timings");
    if (t) json_object_set_new(t, "queued_ms", json_integer(in_queue + (json_int_t)(r->t.queued + 0.5)));
    k->result_json = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    tt_metrics_add(TT_M_JOB_RENDER_MS, (uint64_t)r->t.total);
    tt_blobs_put(k->w->blobs, k->key, tt_format_mime(r->format), k->data, k->len, on_job_put, k);
    return;
  }
  if (status == TT_ECANCELED && k->w->closing) {
    give_back(k, 0); /* shutting down: someone else renders it */
    return;
  }
  if (status == TT_ECANCELED && k->preempting) {
    job_requeue(k, 1); /* its slot went to another owner's job */
    return;
  }
  k->preempting = 0; /* it ended on its own before the stop */
  snprintf(k->error, sizeof k->error, "%s", r->error[0] ? r->error : tt_strerror(status));
  k->retryable = r->retryable;
  if (r->retryable && k->receive_count < k->w->cfg->max_receives) {
    tt_logf(TT_LOG_WARN, "worker: job %s attempt %d failed, will retry: %s", k->id, k->receive_count, k->error);
    /* the record shows why it is taking longer; the message comes back */
    char note[600];
    snprintf(note, sizeof note, "attempt %d: %s", k->receive_count, k->error);
    set_str(&k->job->error, note);
    job_save(k, on_error_noted);
    return;
  }
  job_finish(k);
}

static void on_job_running(void *ud, int status, const void *rec) {
  work *k = ud;
  if (status == TT_ECONFLICT && ++k->conflicts < MAX_CONFLICTS) {
    job_get(k);
    return;
  }
  if (status || keep_job(k, rec)) {
    tt_logf(TT_LOG_WARN, "worker: job %s: cannot mark it running: %s", k->id, tt_strerror(status));
    give_back(k, RETRY_DELAY_MS);
    return;
  }
  if (k->w->closing) {
    give_back(k, 0);
    return;
  }
  json_error_t jerr;
  json_t *req = k->job->request ? json_loads(k->job->request, 0, &jerr) : NULL;
  char field[96], detail[256];
  int rc = req ? tt_options_parse(req, k->w->cfg, &k->o, field, sizeof field, detail, sizeof detail) : TT_EINVAL;
  json_decref(req);
  if (rc) {
    snprintf(k->error, sizeof k->error, "invalid request: %s", req ? detail : "not JSON");
    job_finish(k);
    return;
  }
  k->busy = 1;
  tt_render_shot_owned(k->w->render, &k->o, k->job->owner, on_rendered, k);
}

/* ---- a job put back at the end of the queue (fairness, above): a fresh
 * copy of its message, then the old one deleted; a preempted job's record
 * first goes back to queued with its attempt uncharged */

static void on_requeue_sent(void *ud, int status, const char *id) {
  work *k = ud;
  (void)id;
  if (status) {
    tt_logf(TT_LOG_WARN, "worker: job %s: cannot queue it again: %s", k->id, tt_strerror(status));
    give_back(k, 0);
    return;
  }
  if (k->preempting) tt_metrics_add(TT_M_JOB_PREEMPTIONS, 1);
  ack(k);
}

static void requeue_send(work *k) {
  char msg[TT_JOB_MSG_MAX];
  int n = tt_job_message_requeued(msg, k->id, k->preempts + (k->preempting ? 1 : 0));
  if (!n) {
    give_back(k, 0);
    return;
  }
  /* a slid message is delayed a little: the backlog poll parked here would
   * otherwise take it back at once (the queue wakes its own handle's
   * waiters first), where a worker process with a free slot should */
  tt_queue_send(k->w->queue, JOBS_QUEUE, msg, (size_t)n, k->preempting ? 0 : FAIR_HANDOFF_MS, on_requeue_sent, k);
}

static void on_requeue_reread(void *ud, int status, const void *rec) {
  work *k = ud;
  if (status || keep_job(k, rec)) {
    tt_logf(TT_LOG_WARN, "worker: job %s: cannot re-read: %s", k->id, tt_strerror(status));
    give_back(k, RETRY_DELAY_MS);
    return;
  }
  if (tt_job_state_final(k->job->state)) { /* canceled meanwhile */
    job_ended(k, THEN_ACK);
    return;
  }
  job_requeue(k, 1);
}

static void on_requeue_saved(void *ud, int status, const void *rec) {
  work *k = ud;
  (void)rec;
  if (status == TT_ECONFLICT && ++k->conflicts < MAX_CONFLICTS) {
    tt_store_get(k->w->store, TT_KIND_JOB, k->id, on_requeue_reread, k);
    return;
  }
  if (status) {
    tt_logf(TT_LOG_WARN, "worker: job %s: cannot record it queued again: %s", k->id, tt_strerror(status));
    give_back(k, RETRY_DELAY_MS);
    return;
  }
  requeue_send(k);
}

static void job_requeue(work *k, int preempted) {
  if (!preempted) { /* waiting: its record was not touched */
    requeue_send(k);
    return;
  }
  tt_job *j = k->job;
  set_str(&j->state, "queued");
  set_str(&j->phase, NULL);
  if (j->attempts > 0) j->attempts--;
  if (!j->attempts) j->started_at = 0;
  job_save(k, on_requeue_saved);
}

static void on_job_got(void *ud, int status, const void *rec) {
  work *k = ud;
  worker *w = k->w;
  int was_reading = k->reading;
  k->reading = 0;
  if (status == TT_ENOTFOUND) {
    /* the API sends the message before it writes the record: young ones
     * wait for it; old ones had their create fail (or lost an
     * Idempotency-Key race) and are dropped */
    if (now_ms() - k->sent_at < ORPHAN_AGE_MS)
      give_back(k, k->receive_count <= 1 ? ORPHAN_FIRST_RETRY_MS : ORPHAN_RETRY_MS);
    else {
      tt_logf(TT_LOG_INFO, "worker: job %s has no record: message dropped", k->id);
      ack(k);
    }
    if (was_reading) schedule(w); /* younger jobs may have waited for this read */
    return;
  }
  if (status || keep_job(k, rec)) {
    tt_logf(TT_LOG_WARN, "worker: job %s: cannot read it: %s", k->id, tt_strerror(status));
    give_back(k, RETRY_DELAY_MS);
    if (was_reading) schedule(w);
    return;
  }
  tt_job *j = k->job;
  if (strcmp(j->state, "queued") && strcmp(j->state, "running")) {
    job_ended(k, THEN_ACK); /* finished or canceled: only its webhook, if not yet written */
    if (was_reading) schedule(w);
    return;
  }
  job_admit(k);
}

/* the job has a slot: its attempt begins */
static void job_mark_running(work *k) {
  tt_job *j = k->job;
  set_str(&j->state, "running");
  set_str(&j->phase, "opening");
  j->attempts++;
  if (!j->started_at) j->started_at = now_ms();
  job_save(k, on_job_running);
}

static void job_get(work *k) {
  if (!k->slot) k->reading = 1;
  tt_store_get(k->w->store, TT_KIND_JOB, k->id, on_job_got, k);
}

/* ---- images ------------------------------------------------------------- */

static void image_save(work *k, tt_store_cb cb) { tt_store_update(k->w->store, TT_KIND_IMAGE, k->im, cb, k); }

static int keep_image(work *k, const void *rec) {
  tt_image *im = tt_image_dup(rec);
  if (!im) return TT_ENOMEM;
  if (k->im) tt_image_free(k->im);
  k->im = im;
  return 0;
}

static void on_image_final(void *ud, int status, const void *rec) {
  work *k = ud;
  (void)rec;
  if (status == TT_ECONFLICT && ++k->conflicts < MAX_CONFLICTS) {
    give_back(k, 0); /* someone changed it: start over */
    return;
  }
  if (status) {
    tt_logf(TT_LOG_WARN, "worker: image %s: cannot record the outcome: %s", k->id, tt_strerror(status));
    give_back(k, RETRY_DELAY_MS);
    return;
  }
  if (k->error[0]) {
    tt_metrics_add(TT_M_IMAGES_FAILED, 1);
    tt_logf(TT_LOG_INFO, "worker: image %s failed: %s", k->id, k->error);
    if (k->retryable) {
      give_back(k, 0);
      return;
    }
  } else {
    tt_metrics_add(TT_M_IMAGES_PROCESSED, 1);
  }
  ack(k);
}

static void image_fail(work *k, int retryable, const char *why) {
  snprintf(k->error, sizeof k->error, "%s", why);
  k->retryable = retryable;
  if (retryable && k->receive_count < k->w->cfg->max_receives) {
    tt_logf(TT_LOG_WARN, "worker: image %s attempt %d failed, will retry: %s", k->id, k->receive_count, why);
    give_back(k, RETRY_DELAY_MS);
    return;
  }
  set_str(&k->im->state, "failed");
  set_str(&k->im->error, why);
  image_save(k, on_image_final);
}

static void image_record_processed(work *k) {
  char key[128];
  set_str(&k->im->state, "processed");
  snprintf(key, sizeof key, "images/%s/processed", k->id);
  set_str(&k->im->processed_key, key);
  snprintf(key, sizeof key, "images/%s/thumb", k->id);
  set_str(&k->im->thumb_key, key);
  k->im->width = k->out.width;
  k->im->height = k->out.height;
  set_str(&k->im->error, NULL);
  image_save(k, on_image_final);
}

static void on_image_put(void *ud, int status, const tt_blob_info *info) {
  work *k = ud;
  (void)info;
  if (status) k->put_failed = status;
  if (--k->puts_left) return;
  if (k->put_failed) {
    char why[128];
    snprintf(why, sizeof why, "cannot store the processed image: %s", tt_strerror(k->put_failed));
    image_fail(k, 1, why);
    return;
  }
  image_record_processed(k);
}

static void imaging_run(uv_work_t *req) {
  work *k = req->data;
  tt_imaging_limits lim = {.max_pixels = k->w->cfg->max_image_pixels, .thumb_size = 256};
  k->img_rc = tt_imaging_process(k->raw, k->raw_len, &lim, &k->out);
}

static void imaging_done(uv_work_t *req, int status) {
  work *k = req->data;
  k->busy = 0;
  free(k->raw);
  k->raw = NULL;
  if (status) {
    image_fail(k, 1, "the image was not processed (worker shutting down)");
    return;
  }
  if (k->img_rc) {
    int retry = k->img_rc == TT_ENOMEM || k->img_rc == TT_ENOTSUP;
    image_fail(k, retry, k->out.error[0] ? k->out.error : tt_strerror(k->img_rc));
    return;
  }
  char key[128];
  k->puts_left = 2;
  snprintf(key, sizeof key, "images/%s/processed", k->id);
  tt_blobs_put(k->w->blobs, key, k->out.processed_type, k->out.processed, k->out.processed_len, on_image_put, k);
  snprintf(key, sizeof key, "images/%s/thumb", k->id);
  tt_blobs_put(k->w->blobs, key, k->out.thumb_type, k->out.thumb, k->out.thumb_len, on_image_put, k);
}

static void on_raw(void *ud, int status, const tt_blob_info *info, const char *data, size_t len) {
  work *k = ud;
  (void)info;
  if (status) {
    char why[128];
    snprintf(why, sizeof why, "cannot read the upload: %s", tt_strerror(status));
    image_fail(k, status != TT_ENOTFOUND && status != TT_ETOOBIG, why);
    return;
  }
  k->raw = malloc(len ? len : 1);
  if (!k->raw) {
    image_fail(k, 1, "out of memory");
    return;
  }
  memcpy(k->raw, data, len);
  k->raw_len = len;
  k->req.data = k;
  k->busy = 1;
  int rc = uv_queue_work(&k->w->loop, &k->req, imaging_run, imaging_done);
  if (rc) {
    k->busy = 0;
    image_fail(k, 1, "cannot queue the processing");
  }
}

static void on_image_processing(void *ud, int status, const void *rec) {
  work *k = ud;
  if (status == TT_ECONFLICT && ++k->conflicts < MAX_CONFLICTS) {
    image_get(k);
    return;
  }
  if (status || keep_image(k, rec)) {
    give_back(k, RETRY_DELAY_MS);
    return;
  }
  int64_t max = k->w->cfg->max_upload_bytes > 0 ? k->w->cfg->max_upload_bytes : ((int64_t)1 << 30);
  tt_blobs_get_all(k->w->blobs, k->im->raw_key, (size_t)max, on_raw, k);
}

static void on_image_got(void *ud, int status, const void *rec) {
  work *k = ud;
  if (status == TT_ENOTFOUND) {
    ack(k); /* deleted since: nothing to process */
    return;
  }
  if (status || keep_image(k, rec)) {
    give_back(k, RETRY_DELAY_MS);
    return;
  }
  const char *st = k->im->state;
  if (!strcmp(st, "created") && now_ms() - k->sent_at < ORPHAN_AGE_MS) {
    /* the API sends the message before it marks the record uploaded: over
     * a network store (DynamoDB) the message can arrive first */
    give_back(k, ORPHAN_RETRY_MS);
    return;
  }
  if (strcmp(st, "uploaded") && strcmp(st, "processing")) {
    ack(k); /* processed, failed, or never uploaded */
    return;
  }
  if (!k->im->raw_key) {
    image_fail(k, 0, "the image has no upload");
    return;
  }
  set_str(&k->im->state, "processing");
  image_save(k, on_image_processing);
}

static void image_get(work *k) { tt_store_get(k->w->store, TT_KIND_IMAGE, k->id, on_image_got, k); }

/* ---- receiving ---------------------------------------------------------- */

static void dispatch(poller *p, const tt_queue_msg *m) {
  worker *w = p->w;
  work *k = calloc(1, sizeof *k);
  if (!k) return; /* the message comes back after its visibility timeout */
  k->w = w;
  k->p = p;
  k->kind = p->kind;
  k->receipt = strdup(m->receipt);
  k->receive_count = m->receive_count;
  k->sent_at = m->sent_at;
  if (p->kind == K_JOB) k->preempts = tt_job_message_preempted(m->body, m->len);
  p->active++;
  k->next = w->items;
  if (w->items) w->items->prev = k;
  w->items = k;
  if (!k->receipt) {
    k->receipt = NULL;
    work_free(k);
    return;
  }
  if (w->draining) {
    give_back(k, 0);
    return;
  }
  int named = p->kind == K_JOB ? tt_job_message_parse(m->body, m->len, k->id)
                               : tt_image_message_parse(m->body, m->len, k->id);
  if (named != TT_OK) {
    tt_logf(TT_LOG_WARN, "worker: %s: a message that names no %s: dropped", p->queue,
            p->kind == K_JOB ? "job" : "image");
    ack(k);
    return;
  }
  if (p->kind == K_JOB)
    job_get(k);
  else
    image_get(k);
}

static void on_received(void *ud, int status, const tt_queue_msg *msgs, size_t n) {
  poller *p = ud;
  p->polling = 0;
  if (status) {
    if (status != TT_ECANCELED) {
      tt_logf(TT_LOG_WARN, "worker: receive from %s failed: %s", p->queue, tt_strerror(status));
      uv_timer_start(&p->backoff, on_backoff, 1000, 0);
    }
    maybe_done(p->w);
    return;
  }
  for (size_t i = 0; i < n; i++) dispatch(p, &msgs[i]);
  poll_queue(p);
  maybe_done(p->w);
}

static void poll_queue(poller *p) {
  worker *w = p->w;
  if (p->polling || w->draining || p->active >= p->room || uv_is_active((uv_handle_t *)&p->backoff)) return;
  /* jobs: the free slots first; the backlog (--fair-backlog) once they are
   * taken, so one poll never takes more than a slot's worth from others */
  int room = p->room - p->active;
  int free_slots = (int)w->cfg->concurrency - p->active;
  if (p->kind == K_JOB && free_slots > 0 && free_slots < room) room = free_slots;
  tt_queue_recv_opts o = {.max = room < TT_QUEUE_MAX_BATCH ? room : TT_QUEUE_MAX_BATCH,
                          .visibility_ms = w->cfg->job_visibility_ms,
                          .wait_ms = POLL_WAIT_MS};
  p->polling = 1;
  tt_queue_receive(w->queue, p->queue, &o, on_received, p);
}

static void on_backoff(uv_timer_t *t) { poll_queue(t->data); }

/* keeps the messages of running work hidden from other workers */
static void on_heartbeat(uv_timer_t *t) {
  worker *w = t->data;
  for (work *k = w->items; k; k = k->next)
    if ((k->busy || k->waiting) && k->receipt)
      tt_queue_change_visibility(w->queue, k->p->queue, k->receipt, w->cfg->job_visibility_ms, on_queue_quiet, NULL);
  note_restarts(w);
}

/* ---- drain -------------------------------------------------------------- */

static void on_render_closed(void *ud) {
  worker *w = ud;
  w->render = NULL;
  uv_stop(&w->loop);
}

static void maybe_done(worker *w) {
  if (!w->draining || w->items || w->jobs.polling || w->images.polling || !w->render || w->closing == 2) return;
  w->closing = 2;
  uv_timer_stop(&w->heartbeat);
  uv_timer_stop(&w->deadline);
  tt_logf(TT_LOG_INFO, "worker: drained");
  tt_render_close(w->render, on_render_closed, w);
}

static void on_deadline(uv_timer_t *t) {
  worker *w = t->data;
  if (w->closing || !w->render) return;
  /* work still running past the shutdown timeout goes back to the queue:
   * closing the engine cancels its renders, which give their messages back */
  tt_logf(TT_LOG_WARN, "worker: shutdown timeout: giving unfinished work back to the queue");
  w->closing = 1;
  tt_render_close(w->render, on_render_closed, w);
  w->render = NULL;
}

static void on_signal(uv_signal_t *h, int sig) {
  worker *w = h->data;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigprocmask(SIG_BLOCK, &set, NULL);
  uv_signal_stop(&w->sigterm);
  uv_signal_stop(&w->sigint);
  tt_logf(TT_LOG_INFO, "%s: draining %d jobs and images in flight", sig == SIGTERM ? "SIGTERM" : "SIGINT",
          w->jobs.active + w->images.active);
  w->draining = 1;
  uv_timer_stop(&w->rotate);
  uv_timer_stop(&w->preempt);
  /* the backlog goes back to the queue at once, for other workers */
  for (work *k = w->items, *n; k; k = n) {
    n = k->next;
    if (k->waiting) {
      k->waiting = 0;
      give_back(k, 0);
    }
  }
  if (w->hooks) tt_webhooks_close(w->hooks, NULL, NULL); /* takes no more deliveries */
  w->hooks = NULL;
  uv_timer_start(&w->deadline, on_deadline, (uint64_t)w->cfg->shutdown_timeout_ms, 0);
  maybe_done(w);
}

static void close_walk(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h)) uv_close(h, NULL);
}

static void on_declared(void *ud, int status) {
  if (status) tt_logf(TT_LOG_WARN, "worker: cannot declare queue %s: %s", (const char *)ud, tt_strerror(status));
}

int tt_worker_child_main(const tt_config *cfg, int listen_fd, int index, void *ud) {
  (void)listen_fd;
  (void)index;
  (void)ud;
  static worker w; /* one per process */
  memset(&w, 0, sizeof w);
  w.cfg = cfg;
  if (uv_loop_init(&w.loop)) return 1;
  char err[256];
  if (tt_netpolicy_init(&w.policy, cfg->allow_networks, err, sizeof err)) {
    tt_logf(TT_LOG_ERROR, "worker: --allow-networks: %s", err);
    return 2;
  }
  int rc;
  if ((rc = tt_store_open(&w.loop, cfg->store_url, &w.store)) ||
      (rc = tt_queue_open(&w.loop, cfg->queue_url, &w.queue)) ||
      (rc = tt_blobs_open(&w.loop, cfg->blobs_url, &w.blobs))) {
    tt_logf(TT_LOG_ERROR, "worker: cannot open the backends (store %s, queue %s, blobs %s): %s", cfg->store_url,
            cfg->queue_url, cfg->blobs_url, tt_strerror(rc));
    return 1;
  }
  {
    uint8_t secret[TT_SECRET_MAX];
    size_t slen = 0;
    if ((rc = tt_secret_load(cfg->secret, cfg->data_dir, secret, &slen)) ||
        (rc = tt_webhooks_open(&w.loop, cfg, w.store, &w.policy, secret, slen, &w.hooks))) {
      tt_logf(TT_LOG_ERROR, "worker: cannot start the webhook deliverer: %s", tt_strerror(rc));
      return 1;
    }
  }
  if ((rc = tt_imaging_init())) tt_logf(TT_LOG_ERROR, "worker: libvips is not available: %s", tt_strerror(rc));
  tt_render_opts ro = {.chromium = cfg->chromium, .chromium_flags = cfg->chromium_flags, .policy = &w.policy,
                       .max_full_page_height = (int)cfg->max_full_page_height, .spare = 1,
                       .isolation_owner = !strcmp(cfg->isolation, "owner"),
                       .context_max_jobs = (int)cfg->context_max_jobs, .context_idle_ms = (int)cfg->context_idle_ms,
                       .max_contexts = (int)cfg->max_contexts};
  if ((rc = tt_render_open(&w.loop, &ro, &w.render))) {
    tt_logf(TT_LOG_ERROR, "worker: cannot start the render engine: %s", tt_strerror(rc));
    return 1;
  }
  tt_render_on_phase(w.render, on_render_phase);
  tt_queue_attrs qa = {.visibility_ms = cfg->job_visibility_ms, .max_receives = (int)cfg->max_receives};
  tt_queue_declare(w.queue, JOBS_QUEUE, &qa, on_declared, (void *)JOBS_QUEUE);
  tt_queue_declare(w.queue, IMAGES_QUEUE, &qa, on_declared, (void *)IMAGES_QUEUE);

  poller *ps[2] = {&w.jobs, &w.images};
  w.jobs = (poller){.w = &w, .queue = JOBS_QUEUE, .kind = K_JOB, .room = (int)(cfg->concurrency + cfg->fair_backlog)};
  w.images = (poller){.w = &w, .queue = IMAGES_QUEUE, .kind = K_IMAGE, .room = (int)cfg->concurrency};
  for (int i = 0; i < 2; i++) {
    uv_timer_init(&w.loop, &ps[i]->backoff);
    ps[i]->backoff.data = ps[i];
  }
  uv_timer_init(&w.loop, &w.heartbeat);
  uv_timer_init(&w.loop, &w.deadline);
  uv_timer_init(&w.loop, &w.rotate);
  uv_timer_init(&w.loop, &w.preempt);
  w.preempt.data = &w;
  w.rotate_ms = FAIR_ROTATE_MS;
  w.heartbeat.data = w.deadline.data = w.rotate.data = &w;
  uint64_t beat = (uint64_t)cfg->job_visibility_ms / 3;
  uv_timer_start(&w.heartbeat, on_heartbeat, beat, beat);
  uv_signal_init(&w.loop, &w.sigterm);
  uv_signal_init(&w.loop, &w.sigint);
  w.sigterm.data = w.sigint.data = &w;
  uv_signal_start(&w.sigterm, on_signal, SIGTERM);
  uv_signal_start(&w.sigint, on_signal, SIGINT);
  tt_supervisor_child_ready();
  tt_logf(TT_LOG_INFO, "worker: %lld jobs at once (backlog %lld), visibility %lld ms, %lld receives",
          (long long)cfg->concurrency, (long long)cfg->fair_backlog, (long long)cfg->job_visibility_ms,
          (long long)cfg->max_receives);
  poll_queue(&w.jobs);
  poll_queue(&w.images);

  uv_run(&w.loop, UV_RUN_DEFAULT);

  if (w.hooks) tt_webhooks_close(w.hooks, NULL, NULL); /* what is in flight ends below; the lease covers the rest */
  w.hooks = NULL;
  tt_store_close(w.store, NULL, NULL);
  tt_queue_close(w.queue, NULL, NULL);
  tt_blobs_close(w.blobs, NULL, NULL);
  uv_run(&w.loop, UV_RUN_DEFAULT);
  uv_walk(&w.loop, close_walk, NULL);
  uv_run(&w.loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&w.loop)) tt_logf(TT_LOG_WARN, "worker: loop closed with handles open");
  tt_log_flush();
  return 0;
}
