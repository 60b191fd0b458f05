/*
 * velo run: run an application to completion (bounded input) or until
 * Ctrl-C (a clean stop: final emits, flushed sinks).
 */
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/sqlcli.h"
#include "config/config.h"
#include "formats/format.h"
#include "obs/jobmetrics.h"
#include "util/log.h"

static volatile sig_atomic_t run_stop;

static void run_on_signal(int sig)
{
    if (run_stop) {
        /* A second Ctrl-C: the user does not want to wait. */
        static const char msg[] = "\nvelo run: interrupted again; exiting "
                                  "without flushing\n";
        if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0) {
            /* nothing more to do */
        }
        _exit(130);
    }
    run_stop = sig;
}

static const char run_usage[] =
    "Usage: velo run [FILE.sql | -e 'SQL'] [options]\n"
    "       echo 'SELECT ...' | velo run\n"
    "\n"
    "Run the statements of FILE.sql (or -e, or standard input) until the\n"
    "input ends, or until Ctrl-C on endless input (then final results are\n"
    "emitted and outputs flushed). Bare SELECT results go to standard\n"
    "output: an aligned table on a terminal, JSON Lines otherwise.\n"
    "\n"
    "Options:\n"
    "  -e, --execute SQL      the SQL text itself\n"
    "  --format FORMAT        table, csv or json for SELECT results\n"
    "  --state-dir DIR        checkpoint state, positions and outputs to\n"
    "                         DIR/checkpoint and resume from it at start\n"
    "                         (file sinks then write exactly once)\n"
    "  --reset-state          delete the checkpoint in --state-dir first\n"
    "  --checkpoint-interval D  between checkpoints (default 10s; 200ms,\n"
    "                         5s, 1m)\n"
    "  --progress / --no-progress\n"
    "                         live records in/out and rate on stderr\n"
    "                         (default: on when stderr is a terminal)\n"
    "  --stats                print records in/out, time, rate and peak\n"
    "                         memory at the end\n"
    "  --metrics-port PORT    serve Prometheus metrics (engine and @metric\n"
    "                         annotations) on http://127.0.0.1:PORT/metrics\n"
    "                         while the job runs (0: a free port)\n"
    "  --metrics-series-cap N label sets kept per @metric (default 1000);\n"
    "                         past it updates are dropped and counted\n"
    "  --dashboard            serve a live page (output rows, job and\n"
    "                         operator stats, @metric charts) on\n"
    "                         http://127.0.0.1:PORT/dashboard, PORT from\n"
    "                         --metrics-port (default: a free port); opens\n"
    "                         a browser when run from a desktop terminal;\n"
    "                         stays up after the input ends, until Ctrl-C\n";

/* The /metrics listener is polled from the job loop, on the job's thread,
 * so the collector reads the job's counters without locks. */
struct run_metrics {
    struct velo_obs_metrics_http *http;
    struct timespec last;
};

static void run_on_turn(void *arg, int idle)
{
    struct run_metrics *rm = arg;
    if (rm->http == NULL) {
        return;
    }
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t ms = (int64_t)(now.tv_sec - rm->last.tv_sec) * 1000 +
                 (now.tv_nsec - rm->last.tv_nsec) / 1000000;
    /* Busy: answer scrapes every 50 ms, not after every batch. */
    if (idle || ms >= 50) {
        rm->last = now;
        velo_obs_metrics_http_poll(rm->http);
    }
}

/* A desktop session at a terminal: hand the URL to xdg-open, quietly;
 * anywhere else (CI, ssh, tests) the printed URL is enough. */
static void run_open_browser(const char *url)
{
    if (!isatty(STDERR_FILENO) ||
        (getenv("DISPLAY") == NULL && getenv("WAYLAND_DISPLAY") == NULL)) {
        return;
    }
    posix_spawn_file_actions_t fa;
    if (posix_spawn_file_actions_init(&fa) != 0) {
        return;
    }
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null",
                                     O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null",
                                     O_WRONLY, 0);
    char *const args[] = {"xdg-open", (char *)url, NULL};
    pid_t pid;
    if (posix_spawnp(&pid, "xdg-open", &fa, NULL, args, environ) == 0) {
        /* xdg-open returns at once; reap it so no zombie stays. */
        waitpid(pid, NULL, 0);
    }
    posix_spawn_file_actions_destroy(&fa);
}

static const char *query_name(const char *file, char *buf, size_t len)
{
    if (file == NULL || strcmp(file, "-") == 0) {
        return "stdin";
    }
    const char *b = strrchr(file, '/');
    b = b != NULL ? b + 1 : file;
    snprintf(buf, len, "%s", b);
    char *dot = strrchr(buf, '.');
    if (dot != NULL && dot != buf) {
        *dot = '\0';
    }
    return buf;
}

int velo_cmd_run(int argc, char **argv)
{
    struct velo_sqlcli c;
    memset(&c, 0, sizeof(c));
    c.verb = "run";
    int progress = isatty(STDERR_FILENO);
    int stats = 0;
    int format = -1;
    int metrics_port = -1;
    int dashboard = 0;
    long series_cap = 0;
    const char *state_dir = NULL;
    int reset_state = 0;
    int64_t ckpt_ms = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            printf("%s%s", run_usage, velo_cli_common_help);
            return VELO_EXIT_OK;
        }
        if ((strcmp(a, "-e") == 0 || strcmp(a, "--execute") == 0) &&
            i + 1 < argc) {
            c.inline_sql = argv[++i];
        } else if (strcmp(a, "--format") == 0 && i + 1 < argc) {
            format = velo_format_parse(argv[++i]);
            if (format < 0 || format == VELO_FORMAT_RAW) {
                fprintf(stderr, "velo run: unknown format '%s' (use table, "
                                "csv or json)\n", argv[i]);
                return VELO_EXIT_USAGE;
            }
        } else if (strcmp(a, "--state-dir") == 0 && i + 1 < argc) {
            state_dir = argv[++i];
        } else if (strcmp(a, "--reset-state") == 0) {
            reset_state = 1;
        } else if (strcmp(a, "--checkpoint-interval") == 0 && i + 1 < argc) {
            if (velo_parse_duration(argv[++i], &ckpt_ms) != VELO_OK ||
                ckpt_ms < 1) {
                fprintf(stderr, "velo run: --checkpoint-interval needs a "
                                "duration such as 200ms, 5s or 1m, not "
                                "'%s'\n", argv[i]);
                return VELO_EXIT_USAGE;
            }
        } else if (strcmp(a, "--progress") == 0) {
            progress = 1;
        } else if (strcmp(a, "--no-progress") == 0) {
            progress = 0;
        } else if (strcmp(a, "--stats") == 0) {
            stats = 1;
        } else if (strcmp(a, "--metrics-port") == 0 && i + 1 < argc) {
            char *end;
            long p = strtol(argv[++i], &end, 10);
            if (*end != '\0' || end == argv[i] || p < 0 || p > 65535) {
                fprintf(stderr, "velo run: --metrics-port needs a port "
                                "number (0-65535), not '%s'\n", argv[i]);
                return VELO_EXIT_USAGE;
            }
            metrics_port = (int)p;
        } else if (strcmp(a, "--dashboard") == 0) {
            dashboard = 1;
        } else if (strcmp(a, "--metrics-series-cap") == 0 && i + 1 < argc) {
            char *end;
            series_cap = strtol(argv[++i], &end, 10);
            if (*end != '\0' || end == argv[i] || series_cap < 1 ||
                series_cap > 1000000) {
                fprintf(stderr, "velo run: --metrics-series-cap needs a "
                                "number from 1 to 1000000, not '%s'\n",
                        argv[i]);
                return VELO_EXIT_USAGE;
            }
        } else if (a[0] == '-' && a[1] != '\0') {
            int r = velo_cli_common_opt(&c.common, argc, argv, &i);
            if (r < 0) {
                return VELO_EXIT_USAGE;
            }
            if (r == 0) {
                fprintf(stderr, "velo run: unknown option '%s' (see velo "
                                "run --help)\n", a);
                return VELO_EXIT_USAGE;
            }
        } else if (c.file == NULL) {
            c.file = a;
        } else {
            fprintf(stderr, "velo run: more than one SQL file given ('%s' "
                            "and '%s')\n", c.file, a);
            return VELO_EXIT_USAGE;
        }
    }
    if (c.inline_sql != NULL && c.file != NULL) {
        fprintf(stderr, "velo run: give either a file or -e, not both\n");
        return VELO_EXIT_USAGE;
    }
    if (state_dir == NULL && (reset_state || ckpt_ms > 0)) {
        fprintf(stderr, "velo run: --reset-state and --checkpoint-interval "
                        "need --state-dir DIR\n");
        return VELO_EXIT_USAGE;
    }
    if (format < 0) {
        format = isatty(STDOUT_FILENO) ? VELO_FORMAT_TABLE : VELO_FORMAT_JSON;
    }
    struct run_metrics rm;
    memset(&rm, 0, sizeof(rm));
    struct velo_job_opts opts = {
        .stdout_format = format,
        .progress_fd = progress ? STDERR_FILENO : -1,
        .on_turn = run_on_turn,
        .turn_arg = &rm,
        .stop = &run_stop,
        .state_dir = state_dir,
        .reset_state = reset_state,
        .checkpoint_interval_ms = ckpt_ms,
    };
    /* Installed before preparing: waiting for a source's first data (an
     * empty topic) must stop on Ctrl-C too. */
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = run_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    c.annotations = 1;
    struct velo_metrics *metrics = NULL;
    struct velo_obs_job_metrics *jm = NULL;
    struct velo_obs_live *live = NULL;
    if (dashboard && metrics_port < 0) {
        metrics_port = 0;
    }
    if (metrics_port >= 0) {
        /* Created before the job: connector plugins register their own
         * metrics (records, lag, reconnects) as their instances open. */
        metrics = velo_metrics_create();
        c.metrics = metrics;
    }
    int rc = velo_sqlcli_prepare(&c, &opts, 0, 0);
    if (rc != VELO_EXIT_OK) {
        velo_sqlcli_free(&c);
        velo_metrics_destroy(metrics);
        return rc;
    }
    if (metrics_port >= 0) {
        char qb[256];
        if (metrics != NULL) {
            velo_metrics_register_process(metrics, VELO_VERSION,
                                          VELO_GIT_COMMIT);
            jm = velo_obs_job_metrics_create(
                metrics, query_name(c.file, qb, sizeof(qb)), c.job, c.ann,
                (size_t)series_cap);
        }
        if (jm != NULL) {
            rm.http = velo_obs_metrics_http_start(metrics, metrics_port);
        }
        if (rm.http != NULL && dashboard) {
            live = velo_obs_live_create(jm, rm.http);
        }
        if (rm.http == NULL || (dashboard && live == NULL)) {
            fprintf(stderr, "velo run: cannot serve metrics on port %d\n",
                    metrics_port);
            velo_obs_metrics_http_stop(rm.http);
            velo_obs_job_metrics_destroy(jm);
            velo_sqlcli_free(&c);
            velo_metrics_destroy(metrics);
            return VELO_EXIT_FAILURE;
        }
        fprintf(stderr, "velo run: metrics on http://127.0.0.1:%d/metrics\n",
                velo_obs_metrics_http_port(rm.http));
        if (live != NULL) {
            char url[64];
            snprintf(url, sizeof(url), "http://127.0.0.1:%d/dashboard",
                     velo_obs_metrics_http_port(rm.http));
            fprintf(stderr, "velo run: dashboard on %s\n", url);
            run_open_browser(url);
        }
    }
    rc = velo_job_run(c.job, &run_stop) == VELO_OK ? VELO_EXIT_OK
                                                    : VELO_EXIT_FAILURE;
    if (live != NULL && !run_stop) {
        /* The input ended: keep the final state on screen until Ctrl-C,
         * or a bounded query's dashboard would vanish as it appears. */
        velo_obs_live_finished(live, rc == VELO_EXIT_OK);
        fprintf(stderr, "velo run: input ended; the dashboard stays up "
                        "until Ctrl-C\n");
        while (!run_stop) {
            velo_obs_metrics_http_poll(rm.http);
            struct timespec ts = {0, 50 * 1000000};
            nanosleep(&ts, NULL);
        }
    }
    struct velo_job_stats st;
    velo_job_get_stats(c.job, &st);
    if (st.bad_records > 0 || st.failed_rows > 0 || st.late_rows > 0) {
        fprintf(stderr,
                "velo run: skipped %llu bad record(s), %llu row(s) that "
                "failed evaluation, %llu late row(s); see the warnings "
                "above\n",
                (unsigned long long)st.bad_records,
                (unsigned long long)st.failed_rows,
                (unsigned long long)st.late_rows);
    }
    if (st.dead_lettered > 0 && velo_job_plan(c.job)->dlq_path != NULL) {
        fprintf(stderr, "velo run: %llu written to the dead-letter file "
                        "%s\n",
                (unsigned long long)st.dead_lettered,
                velo_job_plan(c.job)->dlq_path);
    }
    if (stats) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        fprintf(stderr,
                "velo run: %llu records in, %llu out, %.3f s, %.0f "
                "records/s, peak RSS %.1f MiB\n",
                (unsigned long long)st.records_in,
                (unsigned long long)st.records_out, st.elapsed_s,
                st.elapsed_s > 0 ? (double)st.records_in / st.elapsed_s
                                 : 0.0,
                (double)ru.ru_maxrss / 1024.0);
    }
    /* The job's operators go with the job: unhook ours first. */
    velo_obs_live_destroy(live);
    velo_obs_metrics_http_stop(rm.http);
    velo_obs_job_metrics_destroy(jm);
    /* The plugins' instances hold metrics of the registry: they go
     * first. */
    velo_sqlcli_free(&c);
    velo_metrics_destroy(metrics);
    return rc;
}
