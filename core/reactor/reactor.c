/*
 * The reactor: the main thread's event_base, a pool of worker threads each
 * running its own event_base, a bounded task queue between them, and a
 * bounded completion queue back to the main loop.
 *
 * Back-pressure is decided once, at admission: a task is accepted only
 * when the task queue has room AND a completion slot can be reserved for
 * its `done`. A task that was accepted therefore always has somewhere to
 * put its completion, so no done is ever dropped while running normally,
 * and neither queue ever grows.
 *
 * Workers wake through event_active() on a per-worker event, not a shared
 * condition variable, because a worker also serves the fds and timers its
 * jobs register on its base; it must be asleep in its loop, not in a
 * cond_wait, when there is no task.
 */
#include "reactor/reactor.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include <velo/log.h>

#include "util/log.h"

/* Per pass of a loop callback: enough to amortise the wakeup, few enough
 * that fds and timers on the same loop are not starved. */
#define REACTOR_BATCH 64

struct item {
    velo_reactor_fn fn;
    velo_reactor_fn done;
    void *arg;
    int is_call; /* completion ring: a call_main, not a done */
};

struct ring {
    struct item *items;
    size_t cap, head, count;
};

struct velo_worker {
    struct velo_reactor *r;
    size_t index;
    pthread_t thread;
    int started;
    struct event_base *base;
    struct event *wake;  /* activated by submitters and destroy */
    struct event *again; /* zero timeout: continue after polling fds */
    int idle;            /* on the idle stack; under r->lock */
};

struct velo_reactor {
    struct event_base *main;
    struct event *completion; /* main loop: drain the completion ring */
    struct event *completion_again;
    struct event *stop_ev; /* main loop: break (stop may come early) */
    struct event *sig_int, *sig_term, *sig_hup;

    size_t n_workers;
    struct velo_worker *workers;

    pthread_mutex_t lock;
    struct ring tasks;       /* waiting for a worker */
    size_t queue_size;       /* tasks.cap */
    struct ring completions; /* done callbacks and call_main, to main */
    size_t done_reserved;    /* admitted tasks with a done not yet posted */
    size_t done_pending;     /* dones posted, not yet run */
    size_t done_cap;         /* queue_size + workers */
    size_t calls_pending;    /* call_main entries not yet run */
    size_t *idle_stack;      /* indexes of workers with nothing to do */
    size_t n_idle;
    int completion_armed; /* completion event already activated */
    int stopping;

    velo_reactor_fn on_stop, on_reload;
    void *signal_arg;
    int stop_signals;
};

static pthread_once_t evthread_once = PTHREAD_ONCE_INIT;
static int evthread_ok;

static void evthread_setup(void)
{
    evthread_ok = evthread_use_pthreads() == 0;
}

/* ------------------------------------------------------------------------
 * Rings (callers hold r->lock)
 * ---------------------------------------------------------------------- */

static int ring_init(struct ring *q, size_t cap)
{
    q->items = calloc(cap, sizeof(*q->items));
    q->cap = cap;
    q->head = 0;
    q->count = 0;
    return q->items != NULL ? VELO_OK : VELO_ERR;
}

static void ring_push(struct ring *q, const struct item *it)
{
    q->items[(q->head + q->count) % q->cap] = *it;
    q->count++;
}

static int ring_pop(struct ring *q, struct item *it)
{
    if (q->count == 0) {
        return 0;
    }
    *it = q->items[q->head];
    q->head = (q->head + 1) % q->cap;
    q->count--;
    return 1;
}

/* ------------------------------------------------------------------------
 * Main loop side
 * ---------------------------------------------------------------------- */

static void completion_cb(evutil_socket_t fd, short what, void *arg)
{
    struct velo_reactor *r = arg;
    (void)fd;
    (void)what;
    pthread_mutex_lock(&r->lock);
    r->completion_armed = 0;
    pthread_mutex_unlock(&r->lock);
    for (int n = 0; n < REACTOR_BATCH; n++) {
        struct item it;
        pthread_mutex_lock(&r->lock);
        int got = ring_pop(&r->completions, &it);
        if (got) {
            if (it.is_call) {
                r->calls_pending--;
            } else {
                r->done_pending--;
            }
        }
        pthread_mutex_unlock(&r->lock);
        if (!got) {
            return;
        }
        if (it.is_call) {
            it.fn(it.arg);
        } else {
            it.done(it.arg);
        }
    }
    /* More left: let HTTP and timers run first, then continue. */
    static const struct timeval zero = {0, 0};
    event_add(r->completion_again, &zero);
}

/* Post to the main loop; wake it unless a wakeup is already pending.
 * Caller holds r->lock. @return 1 when the caller must activate. */
static int post_completion_locked(struct velo_reactor *r, const struct item *it)
{
    ring_push(&r->completions, it);
    if (r->completion_armed) {
        return 0;
    }
    r->completion_armed = 1;
    return 1;
}

static void stop_cb(evutil_socket_t fd, short what, void *arg)
{
    struct velo_reactor *r = arg;
    (void)fd;
    (void)what;
    event_base_loopbreak(r->main);
}

/* ------------------------------------------------------------------------
 * Worker side
 * ---------------------------------------------------------------------- */

static void worker_run_cb(evutil_socket_t fd, short what, void *arg)
{
    struct velo_worker *w = arg;
    struct velo_reactor *r = w->r;
    (void)fd;
    (void)what;
    for (int n = 0; n < REACTOR_BATCH; n++) {
        struct item it;
        pthread_mutex_lock(&r->lock);
        if (!ring_pop(&r->tasks, &it)) {
            if (r->stopping) {
                pthread_mutex_unlock(&r->lock);
                event_base_loopbreak(w->base);
                return;
            }
            /* Only now, under the lock that submit also takes, may a
             * worker say it is idle: no task can slip in unseen. */
            if (!w->idle) {
                w->idle = 1;
                r->idle_stack[r->n_idle++] = w->index;
            }
            pthread_mutex_unlock(&r->lock);
            return;
        }
        pthread_mutex_unlock(&r->lock);

        it.fn(it.arg);

        if (it.done != NULL) {
            pthread_mutex_lock(&r->lock);
            int wake = 0;
            if (r->stopping) {
                /* destroy drops dones of tasks it lets finish */
                r->done_reserved--;
            } else {
                r->done_reserved--;
                r->done_pending++;
                wake = post_completion_locked(r, &it);
            }
            pthread_mutex_unlock(&r->lock);
            if (wake) {
                event_active(r->completion, EV_READ, 0);
            }
        }
    }
    /* Tasks may remain: yield to this worker's fds and timers first. */
    static const struct timeval zero = {0, 0};
    event_add(w->again, &zero);
}

static void *worker_main(void *arg)
{
    struct velo_worker *w = arg;
    event_base_loop(w->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

/* ------------------------------------------------------------------------
 * Lifecycle
 * ---------------------------------------------------------------------- */

static void free_reactor(struct velo_reactor *r)
{
    if (r->workers != NULL) {
        for (size_t i = 0; i < r->n_workers; i++) {
            struct velo_worker *w = &r->workers[i];
            if (w->wake != NULL) {
                event_free(w->wake);
            }
            if (w->again != NULL) {
                event_free(w->again);
            }
            if (w->base != NULL) {
                event_base_free(w->base);
            }
        }
        free(r->workers);
    }
    struct event *evs[] = {r->completion, r->completion_again, r->stop_ev,
                           r->sig_int,    r->sig_term,         r->sig_hup};
    for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++) {
        if (evs[i] != NULL) {
            event_free(evs[i]);
        }
    }
    if (r->main != NULL) {
        event_base_free(r->main);
    }
    free(r->tasks.items);
    free(r->completions.items);
    free(r->idle_stack);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

/* Signals a worker must never take: the main loop's handler runs in
 * whichever thread the kernel picks, and only the main one should. */
static void block_async_signals(sigset_t *old)
{
    sigset_t set;
    sigemptyset(&set);
    int sigs[] = {SIGINT,  SIGTERM, SIGHUP,  SIGQUIT, SIGPIPE,
                  SIGUSR1, SIGUSR2, SIGCHLD, SIGALRM};
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        sigaddset(&set, sigs[i]);
    }
    pthread_sigmask(SIG_BLOCK, &set, old);
}

struct velo_reactor *velo_reactor_create(size_t workers, size_t queue_size)
{
    if (workers < 1 || queue_size < 1 || workers > 4096 ||
        queue_size > SIZE_MAX / 4) {
        errno = EINVAL;
        return NULL;
    }
    pthread_once(&evthread_once, evthread_setup);
    if (!evthread_ok) {
        errno = ENOSYS;
        return NULL;
    }
    struct velo_reactor *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        return NULL;
    }
    if (pthread_mutex_init(&r->lock, NULL) != 0) {
        free(r);
        errno = ENOMEM;
        return NULL;
    }
    r->n_workers = workers;
    r->queue_size = queue_size;
    r->done_cap = queue_size + workers;
    int ok = ring_init(&r->tasks, queue_size) == VELO_OK &&
             /* dones (done_cap) plus call_main entries (queue_size) */
             ring_init(&r->completions, r->done_cap + queue_size) == VELO_OK;
    r->idle_stack = calloc(workers, sizeof(*r->idle_stack));
    r->workers = calloc(workers, sizeof(*r->workers));
    r->main = event_base_new();
    if (!ok || r->idle_stack == NULL || r->workers == NULL || r->main == NULL) {
        free_reactor(r);
        errno = ENOMEM;
        return NULL;
    }
    r->completion = event_new(r->main, -1, EV_PERSIST, completion_cb, r);
    r->completion_again = evtimer_new(r->main, completion_cb, r);
    r->stop_ev = event_new(r->main, -1, 0, stop_cb, r);
    if (r->completion == NULL || r->completion_again == NULL ||
        r->stop_ev == NULL) {
        free_reactor(r);
        errno = ENOMEM;
        return NULL;
    }
    for (size_t i = 0; i < workers; i++) {
        struct velo_worker *w = &r->workers[i];
        w->r = r;
        w->index = i;
        w->base = event_base_new();
        if (w->base == NULL) {
            free_reactor(r);
            errno = ENOMEM;
            return NULL;
        }
        w->wake = event_new(w->base, -1, EV_PERSIST, worker_run_cb, w);
        w->again = evtimer_new(w->base, worker_run_cb, w);
        if (w->wake == NULL || w->again == NULL) {
            free_reactor(r);
            errno = ENOMEM;
            return NULL;
        }
        w->idle = 1;
        r->idle_stack[r->n_idle++] = i;
    }
    sigset_t old;
    block_async_signals(&old);
    int err = 0;
    for (size_t i = 0; i < workers && err == 0; i++) {
        err = pthread_create(&r->workers[i].thread, NULL, worker_main,
                             &r->workers[i]);
        if (err == 0) {
            r->workers[i].started = 1;
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err != 0) {
        velo_reactor_destroy(r);
        errno = err;
        return NULL;
    }
    return r;
}

void velo_reactor_destroy(struct velo_reactor *r)
{
    if (r == NULL) {
        return;
    }
    pthread_mutex_lock(&r->lock);
    r->stopping = 1;
    r->n_idle = 0;
    pthread_mutex_unlock(&r->lock);
    /* Every worker runs what is queued, then sees stopping on an empty
     * queue and leaves its loop. */
    for (size_t i = 0; i < r->n_workers; i++) {
        if (r->workers[i].started) {
            event_active(r->workers[i].wake, EV_READ, 0);
        }
    }
    for (size_t i = 0; i < r->n_workers; i++) {
        if (r->workers[i].started) {
            pthread_join(r->workers[i].thread, NULL);
        }
    }
    free_reactor(r);
}

struct event_base *velo_reactor_main_base(struct velo_reactor *r)
{
    return r != NULL ? r->main : NULL;
}

size_t velo_reactor_worker_count(struct velo_reactor *r)
{
    return r != NULL ? r->n_workers : 0;
}

struct event_base *velo_reactor_worker_base(struct velo_reactor *r, size_t i)
{
    if (r == NULL || i >= r->n_workers) {
        return NULL;
    }
    return r->workers[i].base;
}

size_t velo_reactor_queue_depth(struct velo_reactor *r)
{
    if (r == NULL) {
        return 0;
    }
    pthread_mutex_lock(&r->lock);
    size_t n = r->tasks.count;
    pthread_mutex_unlock(&r->lock);
    return n;
}

/* ------------------------------------------------------------------------
 * Submitting
 * ---------------------------------------------------------------------- */

int velo_reactor_submit(struct velo_reactor *r, velo_reactor_fn task,
                        velo_reactor_fn done, void *arg)
{
    if (r == NULL || task == NULL) {
        return VELO_ERR;
    }
    pthread_mutex_lock(&r->lock);
    if (r->stopping) {
        pthread_mutex_unlock(&r->lock);
        return VELO_ERR;
    }
    if (r->tasks.count == r->tasks.cap ||
        (done != NULL && r->done_reserved + r->done_pending >= r->done_cap)) {
        pthread_mutex_unlock(&r->lock);
        return VELO_AGAIN;
    }
    struct item it = {task, done, arg, 0};
    ring_push(&r->tasks, &it);
    if (done != NULL) {
        r->done_reserved++;
    }
    struct velo_worker *w = NULL;
    if (r->n_idle > 0) {
        w = &r->workers[r->idle_stack[--r->n_idle]];
        w->idle = 0;
    }
    pthread_mutex_unlock(&r->lock);
    /* No idle worker: each busy one checks the queue again when its task
     * returns, so the task is not stranded. */
    if (w != NULL) {
        event_active(w->wake, EV_READ, 0);
    }
    return VELO_OK;
}

int velo_reactor_call_main(struct velo_reactor *r, velo_reactor_fn fn,
                           void *arg)
{
    if (r == NULL || fn == NULL) {
        return VELO_ERR;
    }
    pthread_mutex_lock(&r->lock);
    if (r->stopping) {
        pthread_mutex_unlock(&r->lock);
        return VELO_ERR;
    }
    if (r->calls_pending >= r->queue_size) {
        pthread_mutex_unlock(&r->lock);
        return VELO_AGAIN;
    }
    struct item it = {fn, NULL, arg, 1};
    r->calls_pending++;
    int wake = post_completion_locked(r, &it);
    pthread_mutex_unlock(&r->lock);
    if (wake) {
        event_active(r->completion, EV_READ, 0);
    }
    return VELO_OK;
}

/* ------------------------------------------------------------------------
 * Signals and the main loop
 * ---------------------------------------------------------------------- */

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
    struct velo_reactor *r = arg;
    (void)what;
    if (sig == SIGHUP) {
        velo_log_info("SIGHUP: reloading");
        if (r->on_reload != NULL) {
            r->on_reload(r->signal_arg);
        }
        return;
    }
    if (r->stop_signals++ > 0) {
        /* The operator asked twice: do not wait for a graceful stop. */
        velo_log_error("%s again: exiting now without a clean shutdown",
                       sig == SIGINT ? "SIGINT" : "SIGTERM");
        _exit(1);
    }
    velo_log_info("%s: shutting down (send it again to exit at once)",
                  sig == SIGINT ? "SIGINT" : "SIGTERM");
    if (r->on_stop != NULL) {
        r->on_stop(r->signal_arg);
    }
}

int velo_reactor_signals(struct velo_reactor *r, velo_reactor_fn on_stop,
                         velo_reactor_fn on_reload, void *arg)
{
    if (r == NULL) {
        return VELO_ERR;
    }
    /* A client that hangs up must be a failed write, not a dead server. */
    signal(SIGPIPE, SIG_IGN);
    r->on_stop = on_stop;
    r->on_reload = on_reload;
    r->signal_arg = arg;
    if (r->sig_int == NULL) {
        r->sig_int = evsignal_new(r->main, SIGINT, signal_cb, r);
        r->sig_term = evsignal_new(r->main, SIGTERM, signal_cb, r);
        r->sig_hup = evsignal_new(r->main, SIGHUP, signal_cb, r);
        if (r->sig_int == NULL || r->sig_term == NULL || r->sig_hup == NULL ||
            evsignal_add(r->sig_int, NULL) != 0 ||
            evsignal_add(r->sig_term, NULL) != 0 ||
            evsignal_add(r->sig_hup, NULL) != 0) {
            return VELO_ERR;
        }
    }
    return VELO_OK;
}

int velo_reactor_run(struct velo_reactor *r)
{
    if (r == NULL) {
        return VELO_ERR;
    }
    return event_base_loop(r->main, EVLOOP_NO_EXIT_ON_EMPTY) < 0 ? VELO_ERR
                                                                 : VELO_OK;
}

/* Through an event rather than event_base_loopbreak() directly: a break
 * requested before the loop starts would be cleared when it starts; an
 * active event waits for the loop and then ends it. */
void velo_reactor_stop(struct velo_reactor *r)
{
    if (r != NULL) {
        event_active(r->stop_ev, EV_READ, 0);
    }
}
