/*
 * velo-kafka-mock: librdkafka's built-in mock Kafka cluster as a process,
 * so the Kafka tests (and kcat, as an independent client) have a real
 * Kafka protocol peer on loopback without a JVM.
 *
 *     velo-kafka-mock [-b BROKERS] [-t TOPIC:PARTITIONS]...
 *
 * Prints the bootstrap address ("127.0.0.1:PORT,...") as one line on
 * stdout once the topics exist, then runs until SIGTERM/SIGINT or EOF on
 * stdin. Lines on stdin control the cluster (each answered "ok" or
 * "error: ..." on stdout):
 *
 *     down N           broker N (1-based) drops its connections, refuses new
 *     up N             broker N accepts connections again
 *     topic NAME:P     create a topic with P partitions
 *     error API ERR [N] the next N (default 1) requests of Kafka API key
 *                      API (e.g. 26, EndTxn) fail with error code ERR
 *                      (e.g. 29, TOPIC_AUTHORIZATION_FAILED)
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

static volatile sig_atomic_t mock_stop;

static void mock_on_signal(int sig)
{
    (void)sig;
    mock_stop = 1;
}

static void mock_usage(void)
{
    fprintf(stderr, "usage: velo-kafka-mock [-b BROKERS] "
                    "[-t TOPIC:PARTITIONS]...\n");
}

/* "name:partitions" -> topic on the cluster. @return 0 or -1 (why in err). */
static int mock_topic(rd_kafka_mock_cluster_t *mc, const char *spec, char *err,
                      size_t errlen)
{
    char name[256];
    const char *colon = strrchr(spec, ':');
    long parts = 1;
    size_t n = colon != NULL ? (size_t)(colon - spec) : strlen(spec);
    if (n == 0 || n >= sizeof(name)) {
        snprintf(err, errlen, "bad topic '%s' (write NAME:PARTITIONS)", spec);
        return -1;
    }
    memcpy(name, spec, n);
    name[n] = '\0';
    if (colon != NULL) {
        char *end;
        parts = strtol(colon + 1, &end, 10);
        if (*end != '\0' || parts < 1 || parts > 1000) {
            snprintf(err, errlen, "bad partition count in '%s'", spec);
            return -1;
        }
    }
    rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(mc, name, (int)parts, 1);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(err, errlen, "topic %s: %s", name, rd_kafka_err2str(e));
        return -1;
    }
    return 0;
}

static void mock_command(rd_kafka_mock_cluster_t *mc, int brokers, char *line)
{
    char err[512];
    line[strcspn(line, "\r\n")] = '\0';
    if (line[0] == '\0') {
        return;
    }
    int rc = 0;
    if (strncmp(line, "down ", 5) == 0 || strncmp(line, "up ", 3) == 0) {
        int down = line[0] == 'd';
        long id = strtol(line + (down ? 5 : 3), NULL, 10);
        if (id < 1 || id > brokers) {
            snprintf(err, sizeof(err), "no broker %ld (1..%d)", id, brokers);
            rc = -1;
        } else {
            rd_kafka_resp_err_t e =
                down ? rd_kafka_mock_broker_set_down(mc, (int32_t)id)
                     : rd_kafka_mock_broker_set_up(mc, (int32_t)id);
            if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
                snprintf(err, sizeof(err), "%s", rd_kafka_err2str(e));
                rc = -1;
            }
        }
    } else if (strncmp(line, "topic ", 6) == 0) {
        rc = mock_topic(mc, line + 6, err, sizeof(err));
    } else if (strncmp(line, "error ", 6) == 0) {
        char *end;
        long api = strtol(line + 6, &end, 10);
        long code = strtol(end, &end, 10);
        long cnt = *end != '\0' ? strtol(end, &end, 10) : 1;
        if (api < 0 || api > 100 || code <= 0 || cnt < 1 || cnt > 1000 ||
            *end != '\0') {
            snprintf(err, sizeof(err), "write: error API ERR [N]");
            rc = -1;
        } else {
            for (long i = 0; i < cnt; i++) {
                rd_kafka_mock_push_request_errors(mc, (int16_t)api, 1,
                                                  (rd_kafka_resp_err_t)code);
            }
        }
    } else {
        snprintf(err, sizeof(err),
                 "unknown command '%.200s' (down N, up N, "
                 "topic NAME:P, error API ERR [N])",
                 line);
        rc = -1;
    }
    if (rc == 0) {
        printf("ok\n");
    } else {
        printf("error: %s\n", err);
    }
    fflush(stdout);
}

int main(int argc, char **argv)
{
    int brokers = 1;
    const char *topics[64];
    int ntopics = 0;
    int opt;
    while ((opt = getopt(argc, argv, "b:t:h")) != -1) {
        switch (opt) {
        case 'b':
            brokers = atoi(optarg);
            if (brokers < 1 || brokers > 16) {
                fprintf(stderr, "velo-kafka-mock: -b takes 1..16\n");
                return 2;
            }
            break;
        case 't':
            if (ntopics == (int)(sizeof(topics) / sizeof(topics[0]))) {
                fprintf(stderr, "velo-kafka-mock: too many topics\n");
                return 2;
            }
            topics[ntopics++] = optarg;
            break;
        default:
            mock_usage();
            return opt == 'h' ? 0 : 2;
        }
    }

    /* The mock cluster lives inside a client handle; a producer that
     * never produces is the lightest one. */
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr)) !=
        RD_KAFKA_CONF_OK) {
        fprintf(stderr, "velo-kafka-mock: %s\n", errstr);
        return 1;
    }
    rd_kafka_t *rk =
        rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (rk == NULL) {
        fprintf(stderr, "velo-kafka-mock: %s\n", errstr);
        return 1;
    }
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, brokers);
    if (mc == NULL) {
        fprintf(stderr, "velo-kafka-mock: cannot start the mock cluster\n");
        rd_kafka_destroy(rk);
        return 1;
    }
    for (int i = 0; i < ntopics; i++) {
        if (mock_topic(mc, topics[i], errstr, sizeof(errstr)) != 0) {
            fprintf(stderr, "velo-kafka-mock: %s\n", errstr);
            rd_kafka_mock_cluster_destroy(mc);
            rd_kafka_destroy(rk);
            return 1;
        }
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = mock_on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    printf("%s\n", rd_kafka_mock_cluster_bootstraps(mc));
    fflush(stdout);

    char line[1024];
    size_t used = 0;
    while (!mock_stop) {
        struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
        int n = poll(&pfd, 1, 200);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            break;
        }
        if (n == 0) {
            continue;
        }
        ssize_t got = read(STDIN_FILENO, line + used, sizeof(line) - 1 - used);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got <= 0) {
            break; /* EOF: whoever started us is gone */
        }
        used += (size_t)got;
        line[used] = '\0';
        char *nl;
        while ((nl = strchr(line, '\n')) != NULL) {
            *nl = '\0';
            mock_command(mc, brokers, line);
            size_t rest = used - (size_t)(nl + 1 - line);
            memmove(line, nl + 1, rest);
            used = rest;
            line[used] = '\0';
        }
        if (used == sizeof(line) - 1) {
            used = 0; /* an overlong line: drop it */
        }
    }
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    return 0;
}
