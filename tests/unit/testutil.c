#include "testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <CUnit/Basic.h>

extern char **environ;

const char *tu_env(const char *name)
{
    const char *v = getenv(name);
    if (v == NULL || v[0] == '\0') {
        fprintf(stderr, "testutil: %s is not set (run through ctest)\n",
                name);
        abort();
    }
    return v;
}

char *tu_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char path[512];
    snprintf(path, sizeof(path), "%s/velo-test-XXXXXX",
             base != NULL && base[0] != '\0' ? base : "/tmp");
    if (mkdtemp(path) == NULL) {
        return NULL;
    }
    return strdup(path);
}

void tu_rmrf(const char *path)
{
    if (path == NULL || strstr(path, "velo-test-") == NULL) {
        return; /* refuse anything we did not make */
    }
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
    if (system(cmd) != 0) {
        fprintf(stderr, "testutil: could not remove %s\n", path);
    }
}

int tu_write_file(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL) {
        return -1;
    }
    size_t w = fwrite(data, 1, len, f);
    if (fclose(f) != 0 || w != len) {
        return -1;
    }
    return 0;
}

char *tu_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (n + 1024 + 1 > cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0) {
            break;
        }
    }
    fclose(f);
    buf[n] = '\0';
    if (len != NULL) {
        *len = n;
    }
    return buf;
}

int tu_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = 0;
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    socklen_t sl = sizeof(sa);
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    close(fd);
    return ntohs(sa.sin_port);
}

int tu_proc_start(struct tu_proc *p, char *const argv[], char *const env[])
{
    static int seq;
    memset(p, 0, sizeof(*p));
    const char *base = getenv("TMPDIR");
    if (base == NULL || base[0] == '\0') {
        base = "/tmp";
    }
    snprintf(p->out_path, sizeof(p->out_path), "%s/velo-tu-%d-%d.out", base,
             (int)getpid(), seq);
    snprintf(p->err_path, sizeof(p->err_path), "%s/velo-tu-%d-%d.err", base,
             (int)getpid(), seq);
    seq++;
    pid_t pid = fork();
    if (pid < 0) {
        return -1;
    }
    if (pid == 0) {
        int in = open("/dev/null", O_RDONLY);
        int out = open(p->out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int err = open(p->err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(in, 0);
        dup2(out, 1);
        dup2(err, 2);
        for (size_t i = 0; env != NULL && env[i] != NULL; i++) {
            putenv(env[i]);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    p->pid = pid;
    return 0;
}

int tu_proc_wait(struct tu_proc *p, int timeout_ms)
{
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        int st;
        pid_t r = waitpid(p->pid, &st, WNOHANG);
        if (r == p->pid) {
            p->status = WIFEXITED(st) ? WEXITSTATUS(st)
                                      : 128 + WTERMSIG(st);
            return p->status;
        }
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long el = (now.tv_sec - start.tv_sec) * 1000 +
                  (now.tv_nsec - start.tv_nsec) / 1000000;
        if (el > timeout_ms) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, &st, 0);
            p->status = -1;
            return -1;
        }
        usleep(10000);
    }
}

int tu_run(struct tu_proc *p, char *const argv[], char *const env[],
           int timeout_ms)
{
    if (tu_proc_start(p, argv, env) != 0) {
        return -1;
    }
    return tu_proc_wait(p, timeout_ms);
}

char *tu_proc_stdout(const struct tu_proc *p)
{
    return tu_read_file(p->out_path, NULL);
}

char *tu_proc_stderr(const struct tu_proc *p)
{
    return tu_read_file(p->err_path, NULL);
}

static int connect_local(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((uint16_t)port);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int tu_wait_port(int port, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 20) {
        int fd = connect_local(port);
        if (fd >= 0) {
            close(fd);
            return 0;
        }
        usleep(20000);
    }
    return -1;
}

static int parse_response(char *buf, size_t n, struct tu_http_resp *resp)
{
    char *hend = strstr(buf, "\r\n\r\n");
    if (hend == NULL || strncmp(buf, "HTTP/1.", 7) != 0) {
        return -1;
    }
    resp->status = atoi(buf + 9);
    size_t hlen = (size_t)(hend - buf);
    resp->headers = malloc(hlen + 1);
    memcpy(resp->headers, buf, hlen);
    resp->headers[hlen] = '\0';
    size_t blen = n - hlen - 4;
    resp->body = malloc(blen + 1);
    memcpy(resp->body, hend + 4, blen);
    resp->body[blen] = '\0';
    resp->body_len = blen;
    return 0;
}

/* A complete response: headers, then Content-Length bytes of body. */
static int response_complete(const char *buf, size_t n)
{
    const char *hend = strstr(buf, "\r\n\r\n");
    if (hend == NULL) {
        return 0;
    }
    const char *cl = strcasestr(buf, "\r\nContent-Length:");
    if (cl == NULL || cl > hend) {
        return 0; /* read to close */
    }
    size_t want = (size_t)strtoul(cl + 17, NULL, 10);
    return n >= (size_t)(hend - buf) + 4 + want;
}

int tu_http_raw(int port, const char *raw, size_t raw_len,
                struct tu_http_resp *resp, int timeout_ms)
{
    memset(resp, 0, sizeof(*resp));
    int fd = connect_local(port);
    if (fd < 0) {
        return -1;
    }
    size_t off = 0;
    while (off < raw_len) {
        ssize_t w = send(fd, raw + off, raw_len - off, MSG_NOSIGNAL);
        if (w <= 0) {
            break; /* the server may close early on an oversized request */
        }
        off += (size_t)w;
    }
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int pr = poll(&pfd, 1, timeout_ms);
        if (pr <= 0) {
            break;
        }
        if (n + 4096 + 1 > cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
        ssize_t r = recv(fd, buf + n, cap - n - 1, 0);
        if (r <= 0) {
            break;
        }
        n += (size_t)r;
        buf[n] = '\0';
        if (response_complete(buf, n)) {
            break;
        }
    }
    close(fd);
    buf[n] = '\0';
    int rc = parse_response(buf, n, resp);
    free(buf);
    return rc;
}

int tu_http(int port, const char *method, const char *path,
            const char *headers, const char *body, struct tu_http_resp *resp)
{
    size_t blen = body != NULL ? strlen(body) : 0;
    size_t cap = 1024 + strlen(path) + (headers ? strlen(headers) : 0) + blen;
    char *req = malloc(cap);
    int n = snprintf(req, cap,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                     "Connection: close\r\nContent-Length: %zu\r\n%s\r\n",
                     method, path, port, blen, headers ? headers : "");
    if (blen > 0) {
        memcpy(req + n, body, blen);
    }
    int rc = tu_http_raw(port, req, (size_t)n + blen, resp, 10000);
    free(req);
    return rc;
}

char *tu_http_header(const struct tu_http_resp *resp, const char *name)
{
    if (resp->headers == NULL) {
        return NULL;
    }
    size_t nl = strlen(name);
    const char *p = resp->headers;
    while ((p = strstr(p, "\r\n")) != NULL) {
        p += 2;
        if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ') {
                v++;
            }
            const char *e = strstr(v, "\r\n");
            size_t len = e != NULL ? (size_t)(e - v) : strlen(v);
            char *out = malloc(len + 1);
            memcpy(out, v, len);
            out[len] = '\0';
            return out;
        }
    }
    return NULL;
}

void tu_http_free(struct tu_http_resp *resp)
{
    free(resp->headers);
    free(resp->body);
    memset(resp, 0, sizeof(*resp));
}

int tu_run_all(void)
{
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() +
                      CU_get_number_of_tests_failed();
    unsigned ran = CU_get_number_of_tests_run();
    CU_cleanup_registry();
    if (ran == 0) {
        fprintf(stderr, "no test ran\n");
        return 1;
    }
    return failed > 0 ? 1 : 0;
}
