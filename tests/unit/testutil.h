/*
 * Helpers shared by the CUnit executables: temporary directories, free
 * ports, running the real velo binary, and HTTP over real sockets.
 */
#ifndef VELO_TESTUTIL_H
#define VELO_TESTUTIL_H

#include <stddef.h>
#include <sys/types.h>

#include <CUnit/Basic.h>

/* Environment set by ctest (tests/CMakeLists.txt); aborts when missing. */
const char *tu_env(const char *name);

/** mkdtemp under $TMPDIR; returns a malloc'd path. */
char *tu_tmpdir(void);
/** rm -rf path (only below /tmp or $TMPDIR). */
void tu_rmrf(const char *path);
int tu_write_file(const char *path, const char *data, size_t len);
/** Whole file, NUL-terminated, malloc'd; *len set when non-NULL. */
char *tu_read_file(const char *path, size_t *len);

/** A TCP port on 127.0.0.1 that was free a moment ago. */
int tu_free_port(void);

/* A child process with stdout and stderr captured to files. */
struct tu_proc {
    pid_t pid;
    char out_path[256];
    char err_path[256];
    int status; /* after tu_proc_wait: exit code, or 128+signal */
};
/** Start argv (argv[0] is a path) with extra "K=V" environment entries
 *  (NULL-terminated, may be NULL) and stdin from /dev/null. */
int tu_proc_start(struct tu_proc *p, char *const argv[], char *const env[]);
/** Wait up to timeout_ms; kills with SIGKILL past it and returns -1. */
int tu_proc_wait(struct tu_proc *p, int timeout_ms);
/** Run to completion; returns the exit status (or -1 on timeout). Output
 *  is left in p->out_path/err_path; tu_proc_output reads it. */
int tu_run(struct tu_proc *p, char *const argv[], char *const env[],
           int timeout_ms);
char *tu_proc_stdout(const struct tu_proc *p);
char *tu_proc_stderr(const struct tu_proc *p);

/** Poll until a TCP connect to 127.0.0.1:port succeeds. @return 0/-1. */
int tu_wait_port(int port, int timeout_ms);

/* A raw HTTP/1.1 exchange over a real socket. */
struct tu_http_resp {
    int status;      /* 0 when no response */
    char *headers;   /* raw header block, malloc'd */
    char *body;      /* malloc'd, NUL-terminated */
    size_t body_len;
};
/** Send `raw` (the full request bytes) to 127.0.0.1:port and read the
 *  response until the connection closes or a full response arrives.
 *  @return 0 when a response was parsed, -1 otherwise. */
int tu_http_raw(int port, const char *raw, size_t raw_len,
                struct tu_http_resp *resp, int timeout_ms);
/** Convenience: method, path, extra header lines ("K: V\r\n", may be
 *  NULL), body (may be NULL). Adds Host, Content-Length, Connection:
 *  close. */
int tu_http(int port, const char *method, const char *path,
            const char *headers, const char *body, struct tu_http_resp *resp);
/** Case-insensitive header lookup in resp->headers; malloc'd or NULL. */
char *tu_http_header(const struct tu_http_resp *resp, const char *name);
void tu_http_free(struct tu_http_resp *resp);

/* Run every registered suite; returns the process exit code. Prints
 * CUnit's summary lines. */
int tu_run_all(void);

#endif /* VELO_TESTUTIL_H */
