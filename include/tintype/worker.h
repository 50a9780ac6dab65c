/* worker.h — the worker role (DESIGN §1): one libuv loop per process that
 * receives messages from the "jobs" and "images" queues, renders pages with
 * one headless Chromium (render.h) and processes uploads with libvips
 * (imaging.h), writes results to deterministic blob keys, moves records
 * through their states with conditional writes, and deletes each message
 * only when its work is recorded. SIGTERM drains: no new messages, work in
 * flight finishes (up to shutdown_timeout_ms; what is left is given back to
 * the queue), exit 0. */
#ifndef TINTYPE_WORKER_H
#define TINTYPE_WORKER_H

#include "tintype/config.h"

/* A supervisor child main (supervisor.h) for the worker role. */
int tt_worker_child_main(const tt_config *cfg, int listen_fd, int index, void *ud);

#endif
