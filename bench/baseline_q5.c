/*
 * Nexmark q5 written by hand, as the yardstick for the engine:
 *
 *   SELECT auction, COUNT(*), SUM(price), AVG(price)
 *   FROM bids GROUP BY auction WINDOW TUMBLING(ts, 10s)
 *
 * over the CSV from nexmark_gen. One pass over a mapped file, fields
 * parsed in place, an open-addressing table per window, results written
 * when a window closes. It knows the column order and that ts ascends;
 * the engine knows neither, which is what the comparison measures.
 *
 *   baseline_q5 bids.csv [out.csv]      (out defaults to /dev/null)
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define WINDOW_MS 10000
#define TABLE_SIZE 32768 /* power of two, > 2 x distinct auctions */

struct group {
    int64_t auction; /* INT64_MIN: empty */
    int64_t count;
    int64_t sum;
};

static struct group table[TABLE_SIZE];
static int32_t used[TABLE_SIZE];
static size_t nused;

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static unsigned d2(const char *p)
{
    return (unsigned)(p[0] - '0') * 10 + (unsigned)(p[1] - '0');
}

static char *put_i64(char *p, int64_t v)
{
    char tmp[24];
    int n = 0;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0) {
        *p++ = '-';
    }
    while (n > 0) {
        *p++ = tmp[--n];
    }
    return p;
}

static void emit(FILE *out, int64_t window)
{
    char line[128];
    for (size_t i = 0; i < nused; i++) {
        struct group *g = &table[used[i]];
        char *p = line;
        p = put_i64(p, window * WINDOW_MS);
        *p++ = ',';
        p = put_i64(p, g->auction);
        *p++ = ',';
        p = put_i64(p, g->count);
        *p++ = ',';
        p = put_i64(p, g->sum);
        *p++ = ',';
        int64_t avg100 = g->sum * 100 / g->count;
        p = put_i64(p, avg100 / 100);
        *p++ = '.';
        *p++ = (char)('0' + avg100 % 100 / 10);
        *p++ = (char)('0' + avg100 % 10);
        *p++ = '\n';
        fwrite(line, 1, (size_t)(p - line), out);
        g->auction = INT64_MIN;
    }
    nused = 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3 || strcmp(argv[1], "--help") == 0) {
        fprintf(argc < 2 ? stderr : stdout,
                "usage: baseline_q5 bids.csv [out.csv]\n"
                "Hand-written Nexmark q5 (10 s tumbling count/sum/avg of "
                "price per auction).\n");
        return argc < 2 ? 2 : 0;
    }
    int fd = open(argv[1], O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || st.st_size == 0) {
        fprintf(stderr, "baseline_q5: cannot read %s: %s\n", argv[1],
                fd < 0 ? strerror(errno) : "empty");
        return 1;
    }
    const char *map =
        mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
        fprintf(stderr, "baseline_q5: cannot map %s: %s\n", argv[1],
                strerror(errno));
        return 1;
    }
    madvise((void *)map, (size_t)st.st_size, MADV_SEQUENTIAL);
    FILE *out = fopen(argc == 3 ? argv[2] : "/dev/null", "w");
    if (out == NULL) {
        fprintf(stderr, "baseline_q5: cannot write: %s\n", strerror(errno));
        return 1;
    }
    static char obuf[1 << 20];
    setvbuf(out, obuf, _IOFBF, sizeof(obuf));
    for (size_t i = 0; i < TABLE_SIZE; i++) {
        table[i].auction = INT64_MIN;
    }

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    const char *p = map, *end = map + st.st_size;
    const char *nl = memchr(p, '\n', (size_t)(end - p)); /* the header */
    p = nl != NULL ? nl + 1 : end;
    uint64_t records = 0;
    int64_t window = INT64_MIN;
    char last_date[10] = {0};
    int64_t last_days = 0;
    while (p < end) {
        int64_t auction = 0, price = 0;
        while (*p != ',') {
            auction = auction * 10 + (*p++ - '0');
        }
        p++;
        while (*p != ',') { /* bidder */
            p++;
        }
        p++;
        while (*p != ',') {
            price = price * 10 + (*p++ - '0');
        }
        p++;
        p = memchr(p, ',', (size_t)(end - p)) + 1; /* channel */
        p = memchr(p, ',', (size_t)(end - p)) + 1; /* url */
        /* ts: YYYY-MM-DDTHH:MM:SS.mmmZ */
        if (memcmp(p, last_date, 10) != 0) {
            memcpy(last_date, p, 10);
            last_days =
                days_from_civil(d2(p) * 100 + d2(p + 2), d2(p + 5), d2(p + 8));
        }
        int64_t ms =
            last_days * 86400000 +
            (int64_t)(d2(p + 11) * 3600 + d2(p + 14) * 60 + d2(p + 17)) * 1000 +
            (p[20] - '0') * 100 + d2(p + 21);
        p = memchr(p, '\n', (size_t)(end - p));
        p = p != NULL ? p + 1 : end;
        records++;

        int64_t w = ms / WINDOW_MS;
        if (w != window) {
            if (window != INT64_MIN) {
                emit(out, window);
            }
            window = w;
        }
        uint64_t h = (uint64_t)auction * UINT64_C(0x9E3779B97F4A7C15);
        size_t slot = (size_t)(h >> 49) & (TABLE_SIZE - 1);
        while (table[slot].auction != auction &&
               table[slot].auction != INT64_MIN) {
            slot = (slot + 1) & (TABLE_SIZE - 1);
        }
        struct group *g = &table[slot];
        if (g->auction == INT64_MIN) {
            g->auction = auction;
            g->count = 0;
            g->sum = 0;
            used[nused++] = (int32_t)slot;
        }
        g->count++;
        g->sum += price;
    }
    if (window != INT64_MIN) {
        emit(out, window);
    }
    fflush(out);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) +
               (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    fprintf(stderr,
            "baseline_q5: %" PRIu64 " records in %.3f s: %.2f M records/s, "
            "peak RSS %ld MiB\n",
            records, s, (double)records / s / 1e6, ru.ru_maxrss / 1024);
    fclose(out);
    munmap((void *)map, (size_t)st.st_size);
    close(fd);
    return 0;
}
