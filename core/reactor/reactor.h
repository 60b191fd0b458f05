/*
 * The reactor: the main thread's event_base (HTTP, signals, timers), and a
 * pool of worker threads, each with its own event_base, fed by a bounded
 * task queue. A full queue is back-pressure (VELO_AGAIN), never growth.
 */
#ifndef VELO_CORE_REACTOR_H
#define VELO_CORE_REACTOR_H

#include <stddef.h>
#include <stdint.h>

#include <velo/log.h>

struct event_base;
struct velo_reactor;
struct velo_worker;

typedef void (*velo_reactor_fn)(void *arg);

/** @return NULL and errno on failure. workers >= 1, queue_size >= 1. */
struct velo_reactor *velo_reactor_create(size_t workers, size_t queue_size);
/** Stops and joins workers (running tasks finish; queued ones still run and
 *  their `done` callbacks are dropped), frees everything. */
void velo_reactor_destroy(struct velo_reactor *r);

struct event_base *velo_reactor_main_base(struct velo_reactor *r);

/**
 * Queue task(arg) for any worker; when it returns, done(arg) runs on the
 * main loop (done may be NULL). Callable from any thread.
 * @return VELO_OK, VELO_AGAIN when the queue is full, VELO_ERR when stopping.
 */
int velo_reactor_submit(struct velo_reactor *r, velo_reactor_fn task,
                        velo_reactor_fn done, void *arg);

/** Run fn(arg) on the main loop from any thread (bounded by the same queue
 *  size). @return VELO_OK, VELO_AGAIN, VELO_ERR. */
int velo_reactor_call_main(struct velo_reactor *r, velo_reactor_fn fn,
                           void *arg);

size_t velo_reactor_worker_count(struct velo_reactor *r);
/** A worker's own event_base, for jobs that live on one worker. */
struct event_base *velo_reactor_worker_base(struct velo_reactor *r, size_t i);
/** Tasks waiting in the queue now (for metrics). */
size_t velo_reactor_queue_depth(struct velo_reactor *r);

/**
 * Signals on the main loop: SIGINT/SIGTERM call on_stop (once; a second
 * signal forces exit(1)), SIGHUP calls on_reload. SIGPIPE is ignored.
 */
int velo_reactor_signals(struct velo_reactor *r, velo_reactor_fn on_stop,
                         velo_reactor_fn on_reload, void *arg);

/** Run the main loop until velo_reactor_stop. @return VELO_OK/VELO_ERR. */
int velo_reactor_run(struct velo_reactor *r);
void velo_reactor_stop(struct velo_reactor *r);

#endif /* VELO_CORE_REACTOR_H */
