/*
 * The reactor: tasks on worker threads, dones and call_main on the main
 * thread, back-pressure from both bounded queues, worker event bases,
 * signals, and a destroy that runs what was queued without hanging.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "reactor/reactor.h"
#include "testutil.h"
#include "util/log.h"

static pthread_t main_tid;

/* ------------------------------------------------------------------------
 * Helpers
 * ---------------------------------------------------------------------- */

struct watchdog {
    struct velo_reactor *r;
    int fired;
};

static void watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
    struct watchdog *wd = arg;
    (void)fd;
    (void)what;
    wd->fired = 1;
    velo_reactor_stop(wd->r);
}

/* Run the main loop; a test that never calls stop fails instead of
 * hanging. @return 1 when the loop was ended by the watchdog. */
static int run_bounded(struct velo_reactor *r, int ms)
{
    struct watchdog wd = {r, 0};
    struct event *ev = evtimer_new(velo_reactor_main_base(r), watchdog_cb, &wd);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(ev, &tv);
    CU_ASSERT_EQUAL(velo_reactor_run(r), VELO_OK);
    event_free(ev);
    return wd.fired;
}

/* Wait (not on the loop) until *v reaches want. @return 1 when reached. */
static int wait_for(atomic_int *v, int want, int ms)
{
    for (int i = 0; i < ms; i++) {
        if (atomic_load(v) >= want) {
            return 1;
        }
        usleep(1000);
    }
    return atomic_load(v) >= want;
}

/* A gate that blocks tasks until opened, to fill queues on purpose. */
struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int open;
    atomic_int entered;
};

static void gate_init(struct gate *g)
{
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    g->open = 0;
    atomic_init(&g->entered, 0);
}

static void gate_wait(struct gate *g)
{
    atomic_fetch_add(&g->entered, 1);
    pthread_mutex_lock(&g->mu);
    while (!g->open) {
        pthread_cond_wait(&g->cv, &g->mu);
    }
    pthread_mutex_unlock(&g->mu);
}

static void gate_open(struct gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->open = 1;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

static void gate_destroy(struct gate *g)
{
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
}

/* ------------------------------------------------------------------------
 * Tasks and dones
 * ---------------------------------------------------------------------- */

struct job {
    struct velo_reactor *r;
    pthread_t task_tid;
    pthread_t done_tid;
    atomic_int task_ran;
    int done_ran;
    int *remaining; /* main thread only */
    struct gate *gate;
};

static void job_task(void *arg)
{
    struct job *j = arg;
    j->task_tid = pthread_self();
    if (j->gate != NULL) {
        gate_wait(j->gate);
    }
    atomic_fetch_add(&j->task_ran, 1);
}

static void job_done(void *arg)
{
    struct job *j = arg;
    j->done_tid = pthread_self();
    j->done_ran++;
    if (--*j->remaining == 0) {
        velo_reactor_stop(j->r);
    }
}

static void test_tasks_on_workers_done_on_main(void)
{
    struct velo_reactor *r = velo_reactor_create(2, 16);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_EQUAL(velo_reactor_worker_count(r), 2);
    enum { N = 12 };
    struct job jobs[N];
    int remaining = N;
    memset(jobs, 0, sizeof(jobs));
    for (int i = 0; i < N; i++) {
        jobs[i].r = r;
        jobs[i].remaining = &remaining;
        CU_ASSERT_EQUAL(velo_reactor_submit(r, job_task, job_done, &jobs[i]),
                        VELO_OK);
    }
    CU_ASSERT_FALSE(run_bounded(r, 10000));
    for (int i = 0; i < N; i++) {
        CU_ASSERT_EQUAL(atomic_load(&jobs[i].task_ran), 1);
        CU_ASSERT_EQUAL(jobs[i].done_ran, 1);
        CU_ASSERT_FALSE(pthread_equal(jobs[i].task_tid, main_tid));
        CU_ASSERT_TRUE(pthread_equal(jobs[i].done_tid, main_tid));
    }
    velo_reactor_destroy(r);
}

static void test_create_refuses_zero(void)
{
    errno = 0;
    CU_ASSERT_PTR_NULL(velo_reactor_create(0, 4));
    CU_ASSERT_EQUAL(errno, EINVAL);
    errno = 0;
    CU_ASSERT_PTR_NULL(velo_reactor_create(2, 0));
    CU_ASSERT_EQUAL(errno, EINVAL);
}

/* Two workers held at a gate, four tasks queued: the queue is full and
 * the next submit is refused, without and with a done. */
static void test_backpressure_task_queue(void)
{
    struct velo_reactor *r = velo_reactor_create(2, 4);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    struct gate g;
    gate_init(&g);
    enum { N = 6 };
    struct job jobs[N];
    int remaining = N;
    memset(jobs, 0, sizeof(jobs));
    for (int i = 0; i < N; i++) {
        jobs[i].r = r;
        jobs[i].remaining = &remaining;
        jobs[i].gate = &g;
    }
    CU_ASSERT_EQUAL(velo_reactor_submit(r, job_task, job_done, &jobs[0]),
                    VELO_OK);
    CU_ASSERT_EQUAL(velo_reactor_submit(r, job_task, job_done, &jobs[1]),
                    VELO_OK);
    CU_ASSERT_TRUE_FATAL(wait_for(&g.entered, 2, 5000));
    CU_ASSERT_EQUAL(velo_reactor_queue_depth(r), 0);
    for (int i = 2; i < N; i++) {
        CU_ASSERT_EQUAL(velo_reactor_submit(r, job_task, job_done, &jobs[i]),
                        VELO_OK);
    }
    CU_ASSERT_EQUAL(velo_reactor_queue_depth(r), 4);
    struct job extra;
    memset(&extra, 0, sizeof(extra));
    CU_ASSERT_EQUAL(velo_reactor_submit(r, job_task, job_done, &extra),
                    VELO_AGAIN);
    CU_ASSERT_EQUAL(velo_reactor_submit(r, job_task, NULL, &extra), VELO_AGAIN);
    CU_ASSERT_EQUAL(velo_reactor_queue_depth(r), 4);

    gate_open(&g);
    CU_ASSERT_FALSE(run_bounded(r, 10000));
    for (int i = 0; i < N; i++) {
        CU_ASSERT_EQUAL(atomic_load(&jobs[i].task_ran), 1);
        CU_ASSERT_EQUAL(jobs[i].done_ran, 1);
    }
    CU_ASSERT_EQUAL(atomic_load(&extra.task_ran), 0);
    CU_ASSERT_EQUAL(velo_reactor_queue_depth(r), 0);
    velo_reactor_destroy(r);
    gate_destroy(&g);
}

/* Every admitted task owns a completion slot: when the main loop falls
 * behind, dones wait (none dropped) and new tasks with a done are refused
 * even though the task queue is empty. */
static void test_backpressure_completions(void)
{
    struct velo_reactor *r = velo_reactor_create(1, 2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    enum { N = 3 }; /* queue_size + workers */
    struct job jobs[N];
    int remaining = N;
    memset(jobs, 0, sizeof(jobs));
    for (int i = 0; i < N; i++) {
        jobs[i].r = r;
        jobs[i].remaining = &remaining;
        CU_ASSERT_EQUAL(velo_reactor_submit(r, job_task, job_done, &jobs[i]),
                        VELO_OK);
        CU_ASSERT_TRUE_FATAL(wait_for(&jobs[i].task_ran, 1, 5000));
    }
    CU_ASSERT_EQUAL(velo_reactor_queue_depth(r), 0);
    struct job extra;
    memset(&extra, 0, sizeof(extra));
    extra.r = r;
    CU_ASSERT_EQUAL(velo_reactor_submit(r, job_task, job_done, &extra),
                    VELO_AGAIN);
    /* A task without a done needs no completion slot. */
    CU_ASSERT_EQUAL(velo_reactor_submit(r, job_task, NULL, &extra), VELO_OK);
    CU_ASSERT_TRUE(wait_for(&extra.task_ran, 1, 5000));

    CU_ASSERT_FALSE(run_bounded(r, 10000));
    for (int i = 0; i < N; i++) {
        CU_ASSERT_EQUAL(jobs[i].done_ran, 1);
    }
    /* Drained: a done is welcome again. */
    remaining = 1;
    extra.remaining = &remaining;
    CU_ASSERT_EQUAL(velo_reactor_submit(r, job_task, job_done, &extra),
                    VELO_OK);
    CU_ASSERT_FALSE(run_bounded(r, 10000));
    CU_ASSERT_EQUAL(extra.done_ran, 1);
    velo_reactor_destroy(r);
}

/* ------------------------------------------------------------------------
 * call_main
 * ---------------------------------------------------------------------- */

struct callmain {
    struct velo_reactor *r;
    int rc;
    pthread_t task_tid;
    pthread_t fn_tid;
    int fn_ran;
    int done_saw_fn;
};

static void callmain_fn(void *arg)
{
    struct callmain *c = arg;
    c->fn_tid = pthread_self();
    c->fn_ran++;
}

/* Stop from the task's done, not from fn: done runs after the task has
 * returned (so c->rc is stored), and after fn, which was queued first. */
static void callmain_done(void *arg)
{
    struct callmain *c = arg;
    c->done_saw_fn = c->fn_ran;
    velo_reactor_stop(c->r);
}

static void callmain_task(void *arg)
{
    struct callmain *c = arg;
    c->task_tid = pthread_self();
    c->rc = velo_reactor_call_main(c->r, callmain_fn, c);
}

static void test_call_main_from_worker(void)
{
    struct velo_reactor *r = velo_reactor_create(2, 8);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    struct callmain c;
    memset(&c, 0, sizeof(c));
    c.r = r;
    c.rc = -100;
    CU_ASSERT_EQUAL(velo_reactor_submit(r, callmain_task, callmain_done, &c),
                    VELO_OK);
    CU_ASSERT_FALSE(run_bounded(r, 10000));
    CU_ASSERT_EQUAL(c.rc, VELO_OK);
    CU_ASSERT_EQUAL(c.fn_ran, 1);
    CU_ASSERT_EQUAL(c.done_saw_fn, 1); /* main-loop work runs in order */
    CU_ASSERT_FALSE(pthread_equal(c.task_tid, main_tid));
    CU_ASSERT_TRUE(pthread_equal(c.fn_tid, main_tid));
    velo_reactor_destroy(r);
}

struct counter {
    struct velo_reactor *r;
    int n, want;
};

static void count_fn(void *arg)
{
    struct counter *c = arg;
    if (++c->n == c->want) {
        velo_reactor_stop(c->r);
    }
}

static void test_call_main_bounded(void)
{
    struct velo_reactor *r = velo_reactor_create(1, 5);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    struct counter c = {r, 0, 5};
    for (int i = 0; i < 5; i++) {
        CU_ASSERT_EQUAL(velo_reactor_call_main(r, count_fn, &c), VELO_OK);
    }
    CU_ASSERT_EQUAL(velo_reactor_call_main(r, count_fn, &c), VELO_AGAIN);
    CU_ASSERT_FALSE(run_bounded(r, 10000));
    CU_ASSERT_EQUAL(c.n, 5);
    c.want = 6;
    CU_ASSERT_EQUAL(velo_reactor_call_main(r, count_fn, &c), VELO_OK);
    CU_ASSERT_FALSE(run_bounded(r, 10000));
    CU_ASSERT_EQUAL(c.n, 6);
    velo_reactor_destroy(r);
}

/* A stop requested before run must not be lost. */
static void test_stop_before_run(void)
{
    struct velo_reactor *r = velo_reactor_create(1, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    velo_reactor_stop(r);
    CU_ASSERT_FALSE(run_bounded(r, 5000));
    velo_reactor_destroy(r);
}

/* ------------------------------------------------------------------------
 * Many producers, many tasks: nothing lost, nothing twice
 * ---------------------------------------------------------------------- */

struct stress {
    struct velo_reactor *r;
    atomic_int tasks;
    int dones;
    int want;
    atomic_int again;
};

static void stress_task(void *arg)
{
    struct stress *s = arg;
    atomic_fetch_add(&s->tasks, 1);
}

static void stress_done(void *arg)
{
    struct stress *s = arg;
    if (++s->dones == s->want) {
        velo_reactor_stop(s->r);
    }
}

struct producer {
    struct stress *s;
    int count;
};

static void *producer_main(void *arg)
{
    struct producer *p = arg;
    for (int i = 0; i < p->count;) {
        int rc = velo_reactor_submit(p->s->r, stress_task, stress_done, p->s);
        if (rc == VELO_OK) {
            i++;
        } else {
            atomic_fetch_add(&p->s->again, 1);
            usleep(100);
        }
    }
    return NULL;
}

static void test_many_producers(void)
{
    struct velo_reactor *r = velo_reactor_create(3, 32);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    struct stress s;
    memset(&s, 0, sizeof(s));
    s.r = r;
    enum { PRODUCERS = 4, EACH = 3000 };
    s.want = PRODUCERS * EACH;
    pthread_t th[PRODUCERS];
    struct producer p[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++) {
        p[i].s = &s;
        p[i].count = EACH;
        pthread_create(&th[i], NULL, producer_main, &p[i]);
    }
    CU_ASSERT_FALSE(run_bounded(r, 60000));
    for (int i = 0; i < PRODUCERS; i++) {
        pthread_join(th[i], NULL);
    }
    CU_ASSERT_EQUAL(atomic_load(&s.tasks), PRODUCERS * EACH);
    CU_ASSERT_EQUAL(s.dones, PRODUCERS * EACH);
    velo_reactor_destroy(r);
}

/* ------------------------------------------------------------------------
 * Worker event bases
 * ---------------------------------------------------------------------- */

struct wtimer {
    struct velo_reactor *r;
    pthread_t tid;
    int fired;
};

static void stop_fn(void *arg)
{
    velo_reactor_stop(arg);
}

static void worker_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct wtimer *t = arg;
    (void)fd;
    (void)what;
    t->tid = pthread_self();
    t->fired++;
    velo_reactor_call_main(t->r, stop_fn, t->r);
}

static void test_worker_base_timer(void)
{
    struct velo_reactor *r = velo_reactor_create(2, 4);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_PTR_NULL(velo_reactor_worker_base(r, 2));
    struct event_base *wb = velo_reactor_worker_base(r, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(wb);
    CU_ASSERT_PTR_NOT_EQUAL(wb, velo_reactor_main_base(r));
    struct wtimer t;
    memset(&t, 0, sizeof(t));
    t.r = r;
    struct event *ev = evtimer_new(wb, worker_timer_cb, &t);
    struct timeval tv = {0, 20 * 1000};
    CU_ASSERT_EQUAL(evtimer_add(ev, &tv), 0);
    CU_ASSERT_FALSE(run_bounded(r, 10000));
    CU_ASSERT_EQUAL(t.fired, 1);
    CU_ASSERT_FALSE(pthread_equal(t.tid, main_tid));
    event_free(ev);
    velo_reactor_destroy(r);
}

/* ------------------------------------------------------------------------
 * Signals
 * ---------------------------------------------------------------------- */

struct sigstate {
    struct velo_reactor *r;
    int stops, reloads;
    pthread_t tid;
};

static void on_stop(void *arg)
{
    struct sigstate *s = arg;
    s->stops++;
    s->tid = pthread_self();
    velo_reactor_stop(s->r);
}

static void on_reload(void *arg)
{
    struct sigstate *s = arg;
    s->reloads++;
    s->tid = pthread_self();
    velo_reactor_stop(s->r);
}

static void test_signals(void)
{
    struct velo_reactor *r = velo_reactor_create(2, 4);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    struct sigstate s;
    memset(&s, 0, sizeof(s));
    s.r = r;
    CU_ASSERT_EQUAL(velo_reactor_signals(r, on_stop, on_reload, &s), VELO_OK);

    struct sigaction sa;
    CU_ASSERT_EQUAL(sigaction(SIGPIPE, NULL, &sa), 0);
    CU_ASSERT_PTR_EQUAL((void *)sa.sa_handler, (void *)SIG_IGN);
    raise(SIGPIPE); /* ignored: we are still here */

    raise(SIGHUP);
    CU_ASSERT_FALSE(run_bounded(r, 5000));
    CU_ASSERT_EQUAL(s.reloads, 1);
    CU_ASSERT_EQUAL(s.stops, 0);
    CU_ASSERT_TRUE(pthread_equal(s.tid, main_tid));

    raise(SIGHUP);
    CU_ASSERT_FALSE(run_bounded(r, 5000));
    CU_ASSERT_EQUAL(s.reloads, 2);

    raise(SIGTERM);
    CU_ASSERT_FALSE(run_bounded(r, 5000));
    CU_ASSERT_EQUAL(s.stops, 1);
    CU_ASSERT_EQUAL(s.reloads, 2);
    velo_reactor_destroy(r);
}

static void child_on_stop(void *arg)
{
    (void)arg;
    /* Not stopping: the operator loses patience and signals again. */
    raise(SIGINT);
}

static void child_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    _exit(3);
}

/* A second SIGINT/SIGTERM while the first shutdown runs exits at once
 * with status 1; run in a child so the test process survives. */
static void test_second_signal_exits(void)
{
    fflush(NULL);
    pid_t pid = fork();
    CU_ASSERT_TRUE_FATAL(pid >= 0);
    if (pid == 0) {
        velo_log_set_fd(open("/dev/null", O_WRONLY));
        struct velo_reactor *r = velo_reactor_create(1, 1);
        if (r == NULL ||
            velo_reactor_signals(r, child_on_stop, NULL, NULL) != VELO_OK) {
            _exit(4);
        }
        struct event *ev =
            evtimer_new(velo_reactor_main_base(r), child_timeout, NULL);
        struct timeval tv = {5, 0};
        evtimer_add(ev, &tv);
        raise(SIGTERM);
        velo_reactor_run(r);
        _exit(0);
    }
    int st = 0;
    CU_ASSERT_EQUAL(waitpid(pid, &st, 0), pid);
    CU_ASSERT_TRUE(WIFEXITED(st));
    CU_ASSERT_EQUAL(WEXITSTATUS(st), 1);
}

/* ------------------------------------------------------------------------
 * Destroy
 * ---------------------------------------------------------------------- */

struct owned {
    atomic_int *ran;
    atomic_int *dones;
    atomic_int *refused;
    struct velo_reactor *r;
    struct gate *gate;
    char *payload; /* freed by the task: leaks if a task is skipped */
};

static void noop_task(void *arg)
{
    (void)arg;
}

static void owned_task(void *arg)
{
    struct owned *o = arg;
    if (o->gate != NULL) {
        gate_wait(o->gate);
    } else if (velo_reactor_submit(o->r, noop_task, NULL, NULL) == VELO_ERR) {
        /* destroy is under way: new work is refused */
        atomic_fetch_add(o->refused, 1);
    }
    atomic_fetch_add(o->ran, 1);
    free(o->payload);
    free(o);
}

static void owned_done(void *arg)
{
    /* Never runs: destroy drops dones. The arg is already freed. */
    (void)arg;
    abort();
}

struct opener {
    struct gate *g;
};

static void *open_later(void *arg)
{
    struct opener *op = arg;
    usleep(200 * 1000);
    gate_open(op->g);
    return NULL;
}

static void test_destroy_runs_queued(void)
{
    struct velo_reactor *r = velo_reactor_create(1, 8);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    struct gate g;
    gate_init(&g);
    atomic_int ran, dones, refused;
    atomic_init(&ran, 0);
    atomic_init(&dones, 0);
    atomic_init(&refused, 0);
    enum { N = 8 };
    for (int i = 0; i < N; i++) {
        struct owned *o = calloc(1, sizeof(*o));
        o->ran = &ran;
        o->dones = &dones;
        o->refused = &refused;
        o->r = r;
        o->gate = i == 0 ? &g : NULL;
        o->payload = malloc(64);
        CU_ASSERT_EQUAL(velo_reactor_submit(r, owned_task, owned_done, o),
                        VELO_OK);
        if (i == 0) {
            CU_ASSERT_TRUE_FATAL(wait_for(&g.entered, 1, 5000));
        }
    }
    CU_ASSERT_EQUAL(velo_reactor_queue_depth(r), N - 1);
    pthread_t th;
    struct opener op = {&g};
    pthread_create(&th, NULL, open_later, &op);
    velo_reactor_destroy(r); /* returns once the gate opens */
    pthread_join(th, NULL);
    CU_ASSERT_EQUAL(atomic_load(&ran), N);
    CU_ASSERT_EQUAL(atomic_load(&refused), N - 1);
    gate_destroy(&g);
}

/* Destroy with dones and call_main entries still waiting on the main loop
 * frees them without running them. */
static void test_destroy_with_pending_completions(void)
{
    struct velo_reactor *r = velo_reactor_create(2, 4);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    struct job jobs[4];
    int remaining = 100;
    memset(jobs, 0, sizeof(jobs));
    for (int i = 0; i < 4; i++) {
        jobs[i].r = r;
        jobs[i].remaining = &remaining;
        CU_ASSERT_EQUAL(velo_reactor_submit(r, job_task, job_done, &jobs[i]),
                        VELO_OK);
    }
    struct counter c = {r, 0, 1};
    CU_ASSERT_EQUAL(velo_reactor_call_main(r, count_fn, &c), VELO_OK);
    for (int i = 0; i < 4; i++) {
        CU_ASSERT_TRUE(wait_for(&jobs[i].task_ran, 1, 5000));
    }
    velo_reactor_destroy(r);
    for (int i = 0; i < 4; i++) {
        CU_ASSERT_EQUAL(jobs[i].done_ran, 0);
    }
    CU_ASSERT_EQUAL(c.n, 0);
}

int main(void)
{
    main_tid = pthread_self();
    if (CU_initialize_registry() != CUE_SUCCESS) {
        return 1;
    }
    CU_pSuite s = CU_add_suite("reactor", NULL, NULL);
    CU_add_test(s, "tasks on workers, done on main",
                test_tasks_on_workers_done_on_main);
    CU_add_test(s, "create refuses zero sizes", test_create_refuses_zero);
    CU_add_test(s, "back-pressure: task queue", test_backpressure_task_queue);
    CU_add_test(s, "back-pressure: completion slots",
                test_backpressure_completions);
    CU_add_test(s, "call_main from a worker", test_call_main_from_worker);
    CU_add_test(s, "call_main is bounded", test_call_main_bounded);
    CU_add_test(s, "stop before run", test_stop_before_run);
    CU_add_test(s, "many producers", test_many_producers);
    CU_add_test(s, "worker base runs a timer", test_worker_base_timer);
    CU_add_test(s, "signals", test_signals);
    CU_add_test(s, "second stop signal exits 1", test_second_signal_exits);
    CU_add_test(s, "destroy runs queued tasks", test_destroy_runs_queued);
    CU_add_test(s, "destroy drops pending completions",
                test_destroy_with_pending_completions);
    return tu_run_all();
}
