/*
 * The standard process metrics (the names Prometheus client libraries
 * use, so stock dashboards work) and velo_build_info, read from /proc.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <velo/log.h>

#include "obs/metrics.h"

/* Fields of /proc/self/stat we need, counted from 1 as in proc(5). */
struct proc_stat {
    unsigned long utime;      /* 14, clock ticks */
    unsigned long stime;      /* 15 */
    unsigned long long start; /* 22, ticks after boot */
    unsigned long vsize;      /* 23, bytes */
    long rss;                 /* 24, pages */
};

static int read_proc_stat(struct proc_stat *st)
{
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    if (f == NULL) {
        return -1;
    }
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* comm (field 2) is in parentheses and may hold spaces or ')', so
     * parse from the last ')'. */
    char *p = strrchr(buf, ')');
    if (p == NULL) {
        return -1;
    }
    /* After ')': field 3 (state) onwards. */
    int got = sscanf(p + 1,
                     " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu "
                     "%*d %*d %*d %*d %*d %*d %llu %lu %ld",
                     &st->utime, &st->stime, &st->start, &st->vsize, &st->rss);
    return got == 5 ? 0 : -1;
}

static long count_open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL) {
        return -1;
    }
    long n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.') {
            n++;
        }
    }
    closedir(d);
    return n - 1; /* the directory stream's own descriptor */
}

/* Seconds since the epoch at boot, from /proc/stat's btime. */
static long long boot_time(void)
{
    FILE *f = fopen("/proc/stat", "r");
    if (f == NULL) {
        return -1;
    }
    char line[256];
    long long bt = -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, "btime %lld", &bt) == 1) {
            break;
        }
    }
    fclose(f);
    return bt;
}

static struct velo_metric *plain(struct velo_metrics *m, const char *name,
                                 const char *help, int type)
{
    struct velo_metric_family *f =
        velo_metrics_family(m, name, help, type, NULL, NULL, 0);
    return f != NULL ? velo_metric_series(f, NULL, 0) : NULL;
}

#define HELP_CPU "Total user and system CPU time spent in seconds."
#define HELP_RSS "Resident memory size in bytes."
#define HELP_VSIZE "Virtual memory size in bytes."
#define HELP_FDS "Number of open file descriptors."
#define HELP_MAX_FDS "Maximum number of open file descriptors."
#define HELP_START "Start time of the process since unix epoch in seconds."

/* Looks the series up by name each time rather than keeping handles in an
 * argument: the registry owns no collector state, and a scrape can afford
 * six lookups. */
static void collect_process(struct velo_metrics *m, void *arg)
{
    (void)arg;
    struct proc_stat st;
    long ticks = sysconf(_SC_CLK_TCK);
    long page = sysconf(_SC_PAGESIZE);
    if (read_proc_stat(&st) == 0 && ticks > 0) {
        velo_metric_set(plain(m, "process_cpu_seconds_total", HELP_CPU,
                              VELO_METRIC_COUNTER),
                        (double)(st.utime + st.stime) / (double)ticks);
        velo_metric_set(plain(m, "process_virtual_memory_bytes", HELP_VSIZE,
                              VELO_METRIC_GAUGE),
                        (double)st.vsize);
        velo_metric_set(plain(m, "process_resident_memory_bytes", HELP_RSS,
                              VELO_METRIC_GAUGE),
                        (double)st.rss * (double)page);
    }
    long fds = count_open_fds();
    if (fds >= 0) {
        velo_metric_set(
            plain(m, "process_open_fds", HELP_FDS, VELO_METRIC_GAUGE),
            (double)fds);
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        velo_metric_set(
            plain(m, "process_max_fds", HELP_MAX_FDS, VELO_METRIC_GAUGE),
            rl.rlim_cur == RLIM_INFINITY ? -1.0 : (double)rl.rlim_cur);
    }
}

int velo_metrics_register_process(struct velo_metrics *m, const char *version,
                                  const char *commit)
{
    if (m == NULL) {
        return VELO_ERR;
    }
    struct velo_metric_family *bi = velo_metrics_family(
        m, "velo_build_info", "Velostream build: version and commit, always 1.",
        VELO_METRIC_GAUGE, "version,commit", NULL, 0);
    const char *bv[2] = {version != NULL ? version : "unknown",
                         commit != NULL ? commit : "unknown"};
    struct velo_metric *bs = bi != NULL ? velo_metric_series(bi, bv, 2) : NULL;
    if (bs == NULL) {
        return VELO_ERR;
    }
    velo_metric_set(bs, 1);

    /* Declare every family now so a scrape shows them all even if /proc
     * is unreadable. */
    struct velo_metric *start =
        plain(m, "process_start_time_seconds", HELP_START, VELO_METRIC_GAUGE);
    if (plain(m, "process_cpu_seconds_total", HELP_CPU, VELO_METRIC_COUNTER) ==
            NULL ||
        plain(m, "process_resident_memory_bytes", HELP_RSS,
              VELO_METRIC_GAUGE) == NULL ||
        plain(m, "process_virtual_memory_bytes", HELP_VSIZE,
              VELO_METRIC_GAUGE) == NULL ||
        plain(m, "process_open_fds", HELP_FDS, VELO_METRIC_GAUGE) == NULL ||
        plain(m, "process_max_fds", HELP_MAX_FDS, VELO_METRIC_GAUGE) == NULL ||
        start == NULL) {
        return VELO_ERR;
    }
    if (velo_metrics_add_collector(m, collect_process, NULL) != VELO_OK) {
        return VELO_ERR;
    }
    struct proc_stat st;
    long ticks = sysconf(_SC_CLK_TCK);
    long long bt = boot_time();
    if (read_proc_stat(&st) == 0 && ticks > 0 && bt >= 0) {
        velo_metric_set(start, (double)bt + (double)st.start / (double)ticks);
    }
    return VELO_OK;
}
