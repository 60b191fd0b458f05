/*
 * Deterministic Nexmark generator: bids, persons and auctions.
 *
 *   nexmark_gen --records N [--kind bids|persons|auctions]
 *               [--format csv|jsonl] [--seed S] > bids.csv
 *
 * Bids: auction BIGINT (10,000 distinct values), bidder BIGINT, price
 * BIGINT, channel VARCHAR (100 distinct values), url VARCHAR (about 70
 * bytes), ts TIMESTAMP (one millisecond apart from
 * 2026-01-01T00:00:00.000Z).
 * Persons and auctions follow Nexmark's mix of 1 person and 3 auctions
 * per 46 bids over the same time line: person i is created at
 * i * 46 ms (id 1000 + i); auction j at j * 46 / 3 ms (id 1000 + j), sold
 * by one of the ten persons created last, so a window join of persons
 * and auctions on seller finds partners in the same window.
 * Persons: id, name, email, city, state, ts.
 * Auctions: id, item_name, initial_bid, reserve, seller, category, ts,
 * expires.
 * The same seed always gives the same bytes (PCG32), so benchmark inputs
 * can be regenerated anywhere.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AUCTIONS 10000
#define AUCTION_BASE 1000
#define BIDDERS 100000
#define BIDDER_BASE 1000
#define CHANNELS 100
#define START_MS INT64_C(1767225600000) /* 2026-01-01T00:00:00.000Z */

/* PCG32 (O'Neill): small, fast, and the same on every platform. */
struct pcg {
    uint64_t state, inc;
};

static uint32_t pcg_next(struct pcg *r)
{
    uint64_t old = r->state;
    r->state = old * UINT64_C(6364136223846793005) + r->inc;
    uint32_t xs = (uint32_t)(((old >> 18u) ^ old) >> 27u);
    uint32_t rot = (uint32_t)(old >> 59u);
    return (xs >> rot) | (xs << ((-rot) & 31));
}

static void pcg_seed(struct pcg *r, uint64_t seed)
{
    r->state = 0;
    r->inc = (seed << 1u) | 1u;
    pcg_next(r);
    r->state += seed;
    pcg_next(r);
}

static uint32_t below(struct pcg *r, uint32_t n)
{
    return (uint32_t)(((uint64_t)pcg_next(r) * n) >> 32);
}

static char *put_u64(char *p, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    while (n > 0) {
        *p++ = tmp[--n];
    }
    return p;
}

static char *put2(char *p, unsigned v)
{
    p[0] = (char)('0' + v / 10);
    p[1] = (char)('0' + v % 10);
    return p + 2;
}

/* ISO 8601 UTC with milliseconds. */
static char *put_ts(char *p, int64_t ms)
{
    int64_t days = ms / 86400000;
    int64_t rem = ms % 86400000;
    /* civil_from_days (Howard Hinnant) */
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = (int64_t)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    unsigned d = doy - (153 * mp + 2) / 5 + 1;
    unsigned m = mp < 10 ? mp + 3 : mp - 9;
    y += m <= 2;
    unsigned secs = (unsigned)(rem / 1000);
    p = put2(p, (unsigned)(y / 100));
    p = put2(p, (unsigned)(y % 100));
    *p++ = '-';
    p = put2(p, m);
    *p++ = '-';
    p = put2(p, d);
    *p++ = 'T';
    p = put2(p, secs / 3600);
    *p++ = ':';
    p = put2(p, secs / 60 % 60);
    *p++ = ':';
    p = put2(p, secs % 60);
    *p++ = '.';
    unsigned msec = (unsigned)(rem % 1000);
    *p++ = (char)('0' + msec / 100);
    p = put2(p, msec % 100);
    *p++ = 'Z';
    return p;
}

static char *put_str(char *p, const char *s)
{
    size_t n = strlen(s);
    memcpy(p, s, n);
    return p + n;
}

/* "https://www.nexmark.com/abcde/fghij/item.htm?query=1&channel_id=123456"
 * is 70 bytes. */
static char *put_url(char *p, struct pcg *r)
{
    p = put_str(p, "https://www.nexmark.com/");
    for (int part = 0; part < 2; part++) {
        for (int i = 0; i < 5; i++) {
            *p++ = (char)('a' + below(r, 26));
        }
        *p++ = '/';
    }
    p = put_str(p, "item.htm?query=1&channel_id=");
    return put_u64(p, 100000 + below(r, 900000));
}

static void usage(FILE *f)
{
    fprintf(f, "usage: nexmark_gen --records N [--kind bids|persons|auctions] "
               "[--format csv|jsonl] [--seed S]\n"
               "Writes N Nexmark events of one kind to stdout.\n");
}

enum { KIND_BIDS = 0, KIND_PERSONS = 1, KIND_AUCTIONS = 2 };

static const char *const cities[] = {"Phoenix", "Los Angeles", "San Francisco",
                                     "Boise", "Portland", "Bend", "Redmond",
                                     "Seattle", "Kent", "Cheyenne"};
static const char *const states[] = {"AZ", "CA", "ID", "OR", "WA", "WY"};
static const char *const first_names[] = {"Peter", "Paul", "Luke", "John",
                                          "Saul", "Vicky", "Kate", "Julie",
                                          "Sarah", "Deiter", "Walter"};
static const char *const last_names[] = {"Shultz", "Abrams", "Spencer",
                                         "White", "Bartels", "Walton",
                                         "Smith", "Jones", "Noris"};

#define N_OF(a) (sizeof(a) / sizeof(*(a)))

/* A field separator and, for JSON, the key. */
static char *field(char *p, int json, int first, const char *key)
{
    if (json) {
        p = put_str(p, first ? "{\"" : ",\"");
        p = put_str(p, key);
        return put_str(p, "\":");
    }
    if (!first) {
        *p++ = ',';
    }
    return p;
}

static char *text_value(char *p, int json, const char *a, const char *b)
{
    if (json) {
        *p++ = '"';
    }
    p = put_str(p, a);
    if (b != NULL) {
        p = put_str(p, b);
    }
    if (json) {
        *p++ = '"';
    }
    return p;
}

static char *ts_value(char *p, int json, int64_t ms)
{
    if (json) {
        *p++ = '"';
    }
    p = put_ts(p, ms);
    if (json) {
        *p++ = '"';
    }
    return p;
}

static char *person(char *p, struct pcg *r, uint64_t i, int json)
{
    char name[64], email[96];
    const char *fn = first_names[below(r, N_OF(first_names))];
    const char *ln = last_names[below(r, N_OF(last_names))];
    snprintf(name, sizeof(name), "%s %s", fn, ln);
    snprintf(email, sizeof(email), "%s.%s%u@nexmark.com", fn, ln,
             (unsigned)below(r, 1000));
    p = field(p, json, 1, "id");
    p = put_u64(p, BIDDER_BASE + i);
    p = field(p, json, 0, "name");
    p = text_value(p, json, name, NULL);
    p = field(p, json, 0, "email");
    p = text_value(p, json, email, NULL);
    p = field(p, json, 0, "city");
    p = text_value(p, json, cities[below(r, N_OF(cities))], NULL);
    p = field(p, json, 0, "state");
    p = text_value(p, json, states[below(r, N_OF(states))], NULL);
    p = field(p, json, 0, "ts");
    p = ts_value(p, json, START_MS + (int64_t)(i * 46));
    return put_str(p, json ? "}\n" : "\n");
}

static char *auction(char *p, struct pcg *r, uint64_t j, int json)
{
    uint64_t newest = j / 3;
    uint64_t back = below(r, 10);
    uint64_t seller = BIDDER_BASE + (back > newest ? 0 : newest - back);
    uint64_t initial = 1 + below(r, 1000) * (1 + below(r, 100));
    int64_t ts = START_MS + (int64_t)(j * 46 / 3);
    char item[32];
    snprintf(item, sizeof(item), "item-%u", (unsigned)below(r, 100000));
    p = field(p, json, 1, "id");
    p = put_u64(p, AUCTION_BASE + j);
    p = field(p, json, 0, "item_name");
    p = text_value(p, json, item, NULL);
    p = field(p, json, 0, "initial_bid");
    p = put_u64(p, initial);
    p = field(p, json, 0, "reserve");
    p = put_u64(p, initial + below(r, 10000));
    p = field(p, json, 0, "seller");
    p = put_u64(p, seller);
    p = field(p, json, 0, "category");
    p = put_u64(p, 10 + below(r, 5));
    p = field(p, json, 0, "ts");
    p = ts_value(p, json, ts);
    p = field(p, json, 0, "expires");
    p = ts_value(p, json, ts + 10000 + (int64_t)below(r, 50000));
    return put_str(p, json ? "}\n" : "\n");
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (s[0] == '\0' || s[0] == '-' || *end != '\0' || errno != 0) {
        return -1;
    }
    *out = (uint64_t)v;
    return 0;
}

int main(int argc, char **argv)
{
    uint64_t records = 0, seed = 42;
    int have_records = 0, json = 0, kind = KIND_BIDS;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (v == NULL) {
            fprintf(stderr, "nexmark_gen: %s needs a value\n", a);
            usage(stderr);
            return 2;
        }
        if (strcmp(a, "--records") == 0) {
            if (parse_u64(v, &records) != 0) {
                fprintf(stderr,
                        "nexmark_gen: --records: \"%s\" is not a "
                        "count\n",
                        v);
                return 2;
            }
            have_records = 1;
        } else if (strcmp(a, "--seed") == 0) {
            if (parse_u64(v, &seed) != 0) {
                fprintf(stderr,
                        "nexmark_gen: --seed: \"%s\" is not a "
                        "number\n",
                        v);
                return 2;
            }
        } else if (strcmp(a, "--kind") == 0) {
            if (strcmp(v, "bids") == 0) {
                kind = KIND_BIDS;
            } else if (strcmp(v, "persons") == 0) {
                kind = KIND_PERSONS;
            } else if (strcmp(v, "auctions") == 0) {
                kind = KIND_AUCTIONS;
            } else {
                fprintf(stderr,
                        "nexmark_gen: --kind: \"%s\" is not bids, persons "
                        "or auctions\n",
                        v);
                return 2;
            }
        } else if (strcmp(a, "--format") == 0) {
            if (strcmp(v, "csv") == 0) {
                json = 0;
            } else if (strcmp(v, "jsonl") == 0 || strcmp(v, "json") == 0) {
                json = 1;
            } else {
                fprintf(stderr,
                        "nexmark_gen: --format: \"%s\" is not csv "
                        "or jsonl\n",
                        v);
                return 2;
            }
        } else {
            fprintf(stderr, "nexmark_gen: unknown option %s\n", a);
            usage(stderr);
            return 2;
        }
        i++;
    }
    if (!have_records) {
        fprintf(stderr, "nexmark_gen: --records is required\n");
        usage(stderr);
        return 2;
    }
    static char obuf[1 << 20];
    setvbuf(stdout, obuf, _IOFBF, sizeof(obuf));
    struct pcg r;
    pcg_seed(&r, seed);
    if (!json) {
        fputs(kind == KIND_PERSONS ? "id,name,email,city,state,ts\n"
              : kind == KIND_AUCTIONS
                  ? "id,item_name,initial_bid,reserve,seller,category,ts,"
                    "expires\n"
                  : "auction,bidder,price,channel,url,ts\n",
              stdout);
    }
    char line[512];
    for (uint64_t i = 0; kind != KIND_BIDS && i < records; i++) {
        char *p = kind == KIND_PERSONS ? person(line, &r, i, json)
                                       : auction(line, &r, i, json);
        if (fwrite(line, 1, (size_t)(p - line), stdout) != (size_t)(p - line)) {
            fprintf(stderr, "nexmark_gen: write failed: %s\n", strerror(errno));
            return 1;
        }
    }
    for (uint64_t i = 0; kind == KIND_BIDS && i < records; i++) {
        uint64_t auction = AUCTION_BASE + below(&r, AUCTIONS);
        uint64_t bidder = BIDDER_BASE + below(&r, BIDDERS);
        /* Prices skew low, as in an auction: 1 to about 10^6 cents. */
        uint64_t price = 1 + below(&r, 1000) * (1 + below(&r, 1000));
        unsigned channel = below(&r, CHANNELS);
        char *p = line;
        if (json) {
            p = put_str(p, "{\"auction\":");
            p = put_u64(p, auction);
            p = put_str(p, ",\"bidder\":");
            p = put_u64(p, bidder);
            p = put_str(p, ",\"price\":");
            p = put_u64(p, price);
            p = put_str(p, ",\"channel\":\"channel-");
            p = put_u64(p, channel);
            p = put_str(p, "\",\"url\":\"");
            p = put_url(p, &r);
            p = put_str(p, "\",\"ts\":\"");
            p = put_ts(p, START_MS + (int64_t)i);
            p = put_str(p, "\"}\n");
        } else {
            p = put_u64(p, auction);
            *p++ = ',';
            p = put_u64(p, bidder);
            *p++ = ',';
            p = put_u64(p, price);
            p = put_str(p, ",channel-");
            p = put_u64(p, channel);
            *p++ = ',';
            p = put_url(p, &r);
            *p++ = ',';
            p = put_ts(p, START_MS + (int64_t)i);
            *p++ = '\n';
        }
        if (fwrite(line, 1, (size_t)(p - line), stdout) != (size_t)(p - line)) {
            fprintf(stderr, "nexmark_gen: write failed: %s\n", strerror(errno));
            return 1;
        }
    }
    if (fflush(stdout) != 0) {
        fprintf(stderr, "nexmark_gen: write failed: %s\n", strerror(errno));
        return 1;
    }
    return 0;
}
