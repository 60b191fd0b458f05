/*
 * What the executor micro-benchmarks (exec_micro.c, join_micro.c) share:
 * the Nexmark-like bid batches they build in memory once, a sink that only
 * counts rows, and the clocks. Header only (each benchmark is a single
 * translation unit), so both measure the very same input.
 *
 * Bids: auction BIGINT (10,000 distinct), bidder BIGINT, price BIGINT,
 * channel STRING (100 distinct), url STRING (~70 bytes), _timestamp
 * (hidden, filled in by the benchmark as it pushes).
 */
#ifndef VELO_BENCH_MICRO_DATA_H
#define VELO_BENCH_MICRO_DATA_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <velo/log.h>

#include "exec/batch.h"
#include "exec/operator.h"

static uint64_t sink_rows;
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static char channels[100][16];
static char urls[1000][80];

static inline int count_rows(void *arg, struct velo_batch *b)
{
    (void)arg;
    sink_rows += velo_batch_live(b);
    return VELO_OK;
}

/* xorshift64: the same data on every run. */
static inline uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static inline struct velo_schema *bids_schema(void)
{
    struct velo_schema *s = velo_schema_create(6);
    velo_schema_set(s, 0, "auction", velo_type_of(VELO_TYPE_BIGINT), 0, 0);
    velo_schema_set(s, 1, "bidder", velo_type_of(VELO_TYPE_BIGINT), 0, 0);
    velo_schema_set(s, 2, "price", velo_type_of(VELO_TYPE_BIGINT), 0, 0);
    velo_schema_set(s, 3, "channel", velo_type_of(VELO_TYPE_STRING), 0, 0);
    velo_schema_set(s, 4, "url", velo_type_of(VELO_TYPE_STRING), 0, 0);
    velo_schema_set(s, 5, "_timestamp", velo_type_of(VELO_TYPE_TIMESTAMP), 0,
                    1);
    return s;
}

/* n full batches (cap rows each) of bids over s; their strings point into
 * channels and urls. */
static inline void make_bid_batches(const struct velo_schema *s,
                                    struct velo_batch **batches, int n,
                                    size_t cap)
{
    for (int i = 0; i < 100; i++) {
        snprintf(channels[i], sizeof(channels[i]), "channel-%d", i);
    }
    for (int i = 0; i < 1000; i++) {
        snprintf(urls[i], sizeof(urls[i]),
                 "https://www.nexmark.com/item.htm?query=1&channel_id=%06d"
                 "&x=%04d",
                 i * 7, i);
    }
    for (int b = 0; b < n; b++) {
        struct velo_batch *bt = velo_batch_create(s, cap);
        for (size_t r = 0; r < cap; r++) {
            bt->cols[0].v.i64[r] = 1000 + (int64_t)(rng() % 10000);
            bt->cols[1].v.i64[r] = (int64_t)(rng() % 100000);
            bt->cols[2].v.i64[r] = 100 + (int64_t)(rng() % 10000000);
            const char *ch = channels[rng() % 100];
            bt->cols[3].v.str[r].ptr = ch;
            bt->cols[3].v.str[r].len = strlen(ch);
            const char *u = urls[rng() % 1000];
            bt->cols[4].v.str[r].ptr = u;
            bt->cols[4].v.str[r].len = strlen(u);
        }
        bt->nrows = cap;
        batches[b] = bt;
    }
}

static inline double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A fixed "now" so time functions cost the same on every run. */
static inline int64_t fixed_now(void)
{
    return INT64_C(1700000000000000);
}

/* The environment both benchmarks run their operators in. */
static inline void micro_env(struct velo_exec_env *env, struct velo_funcs *f,
                             size_t cap)
{
    memset(env, 0, sizeof(*env));
    env->funcs = f;
    env->batch_cap = cap;
    env->now_us = fixed_now;
}

#endif /* VELO_BENCH_MICRO_DATA_H */
