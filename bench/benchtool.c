/*
 * gregor-benchtool: what the benchmark needs that rdkafka_performance does not do, built
 * against the same librdkafka (the sources the rdkafka-sys crate ships).
 *
 *   gregor-benchtool version
 *       The librdkafka version it was built with.
 *
 *   gregor-benchtool create BROKERS TOPIC PARTITIONS [REPLICATION_FACTOR [prop=val]...]
 *       CreateTopics through librdkafka's admin API (replication factor 1 unless given, with
 *       the given topic configs). An existing topic is not an error.
 *
 *   gregor-benchtool e2e -b BROKERS -t TOPIC [-n PARTITIONS] [-r RATE] [-d SECONDS]
 *                        [-w WARMUP_SECONDS] [-s SIZE] [-X prop=val]... [-Y prop=val]... [-A FILE]
 *       End-to-end latency, per message: a producer paced to RATE records/s (absolute-deadline
 *       sleeps, every 1 ms or every 1/RATE s, whichever is longer) writes SIZE-byte records to
 *       partition (seq % PARTITIONS), each stamped with CLOCK_MONOTONIC at its produce() call; a
 *       consumer in the same process, assigned every partition at its high watermark, stamps
 *       each record on arrival. Records sent in the first WARMUP_SECONDS are left out of the
 *       statistics. Prints one line of key=value pairs (latencies in microseconds). -X sets a
 *       producer property (defaults: acks=all, linger.ms=0), -Y a consumer property, -A writes
 *       each measured latency (us) to FILE, one a line.
 *
 *   gregor-benchtool acks -b BROKERS -t TOPIC [-r RATE] [-s SIZE] [-X prop=val]...
 *       An idempotent acks=all producer (linger.ms=0) paced to RATE records/s (paced as e2e
 *       does) to partition 0 until SIGTERM or SIGINT; prints the CLOCK_MONOTONIC time (us) of
 *       each acknowledgement as it is delivered, one a line, then flushes and prints one line
 *       "acks sent=N acked=N failed=N". Failed deliveries go to stderr (the first 5).
 *
 *   gregor-benchtool scram-user BROKERS USER PASSWORD MECHANISM
 *       Gives USER a SCRAM credential (MECHANISM SCRAM-SHA-256 or SCRAM-SHA-512, 4096
 *       iterations, a random salt) with AlterUserScramCredentials through librdkafka's admin API.
 *
 *   gregor-benchtool connect -b BROKERS [-n COUNT] [-X prop=val]...
 *       Connection set-up: COUNT times, one after another, a fresh client (rd_kafka_new with
 *       the -X properties, e.g. security.protocol=SASL_SSL) until its first Metadata answer,
 *       which takes the bootstrap connection: TCP, then TLS and SASL when configured, then
 *       ApiVersions and Metadata. Prints one line of key=value pairs (milliseconds, nearest
 *       rank); the client's teardown is not timed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rdkafka.h"

static const char MAGIC[8] = {'G', 'B', 'L', 'A', 'T', '1', 0, 0};
#define HDR 24 /* magic, seq, send time */

static uint64_t now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what, const char *why) {
        fprintf(stderr, "gregor-benchtool: %s: %s\n", what, why);
        exit(2);
}

static void set(rd_kafka_conf_t *conf, const char *name, const char *val) {
        char errstr[512];
        if (rd_kafka_conf_set(conf, name, val, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
                die(name, errstr);
}

/* Splits "prop=value": returns a copy holding the name (to free) and points *val at the value. */
static char *split_kv(const char *kv, const char **val) {
        char *dup = strdup(kv), *eq = strchr(dup, '=');
        if (!eq)
                die("expected prop=value", kv);
        *eq = '\0';
        *val = eq + 1;
        return dup;
}

static void set_kv(rd_kafka_conf_t *conf, const char *kv) {
        const char *val;
        char *name = split_kv(kv, &val);
        set(conf, name, val);
        free(name);
}

/* ---------------------------------------------------------------- admin requests */

/* A client for one admin request to BROKERS. */
static rd_kafka_t *admin_client(const char *brokers) {
        char errstr[512];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        set(conf, "bootstrap.servers", brokers);
        rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
        if (!rk)
                die("rd_kafka_new", errstr);
        return rk;
}

/* The result event of the admin request WHAT on Q, or NULL after saying why there is none (a
 * timeout or an error of the whole request). */
static rd_kafka_event_t *admin_result(rd_kafka_queue_t *q, const char *what) {
        rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 60000);
        if (!ev) {
                fprintf(stderr, "gregor-benchtool: %s timed out\n", what);
                return NULL;
        }
        if (rd_kafka_event_error(ev)) {
                fprintf(stderr, "gregor-benchtool: %s: %s\n", what, rd_kafka_event_error_string(ev));
                rd_kafka_event_destroy(ev);
                return NULL;
        }
        return ev;
}

/* ---------------------------------------------------------------- create */

static int cmd_create(int argc, char **argv) {
        char errstr[512];
        if (argc < 5) {
                fprintf(stderr, "usage: gregor-benchtool create BROKERS TOPIC PARTITIONS "
                                "[REPLICATION_FACTOR [prop=val]...]\n");
                return 2;
        }
        rd_kafka_t *rk = admin_client(argv[2]);
        rd_kafka_NewTopic_t *nt =
            rd_kafka_NewTopic_new(argv[3], atoi(argv[4]), argc > 5 ? atoi(argv[5]) : 1, errstr,
                                  sizeof(errstr));
        if (!nt)
                die("NewTopic", errstr);
        for (int i = 6; i < argc; i++) {
                const char *val;
                char *name = split_kv(argv[i], &val);
                if (rd_kafka_NewTopic_set_config(nt, name, val))
                        die("NewTopic config", argv[i]);
                free(name);
        }
        rd_kafka_AdminOptions_t *opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
        rd_kafka_AdminOptions_set_operation_timeout(opts, 30000, errstr, sizeof(errstr));
        rd_kafka_AdminOptions_set_request_timeout(opts, 30000, errstr, sizeof(errstr));
        rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
        rd_kafka_CreateTopics(rk, &nt, 1, opts, q);
        rd_kafka_event_t *ev = admin_result(q, "CreateTopics");
        int rc = !ev;
        if (ev) {
                size_t n;
                const rd_kafka_topic_result_t **res =
                    rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
                for (size_t i = 0; i < n; i++) {
                        rd_kafka_resp_err_t err = rd_kafka_topic_result_error(res[i]);
                        if (err && err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
                                fprintf(stderr, "gregor-benchtool: CreateTopics %s: %s\n",
                                        rd_kafka_topic_result_name(res[i]),
                                        rd_kafka_topic_result_error_string(res[i]));
                                rc = 1;
                        }
                }
        }
        if (ev)
                rd_kafka_event_destroy(ev);
        rd_kafka_queue_destroy(q);
        rd_kafka_AdminOptions_destroy(opts);
        rd_kafka_NewTopic_destroy(nt);
        rd_kafka_destroy(rk);
        return rc;
}

/* ---------------------------------------------------------------- scram-user */

static int cmd_scram_user(int argc, char **argv) {
        char errstr[512];
        if (argc != 6 || (strcmp(argv[5], "SCRAM-SHA-256") && strcmp(argv[5], "SCRAM-SHA-512"))) {
                fprintf(stderr, "usage: gregor-benchtool scram-user BROKERS USER PASSWORD "
                                "SCRAM-SHA-256|SCRAM-SHA-512\n");
                return 2;
        }
        rd_kafka_t *rk = admin_client(argv[2]);
        rd_kafka_ScramMechanism_t mechanism = strcmp(argv[5], "SCRAM-SHA-256") ?
                                                  RD_KAFKA_SCRAM_MECHANISM_SHA_512 :
                                                  RD_KAFKA_SCRAM_MECHANISM_SHA_256;
        rd_kafka_UserScramCredentialAlteration_t *upsert = rd_kafka_UserScramCredentialUpsertion_new(
            argv[3], mechanism, 4096, (const unsigned char *)argv[4], strlen(argv[4]), NULL, 0);
        rd_kafka_AdminOptions_t *opts =
            rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_ALTERUSERSCRAMCREDENTIALS);
        rd_kafka_AdminOptions_set_request_timeout(opts, 30000, errstr, sizeof(errstr));
        rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
        rd_kafka_AlterUserScramCredentials(rk, &upsert, 1, opts, q);
        rd_kafka_event_t *ev = admin_result(q, "AlterUserScramCredentials");
        int rc = !ev;
        if (ev) {
                size_t n;
                const rd_kafka_AlterUserScramCredentials_result_response_t **res =
                    rd_kafka_AlterUserScramCredentials_result_responses(
                        rd_kafka_event_AlterUserScramCredentials_result(ev), &n);
                for (size_t i = 0; i < n; i++) {
                        const rd_kafka_error_t *error =
                            rd_kafka_AlterUserScramCredentials_result_response_error(res[i]);
                        if (error && rd_kafka_error_code(error)) {
                                fprintf(stderr, "gregor-benchtool: AlterUserScramCredentials %s: %s\n",
                                        argv[3], rd_kafka_error_string(error));
                                rc = 1;
                        }
                }
        }
        if (ev)
                rd_kafka_event_destroy(ev);
        rd_kafka_queue_destroy(q);
        rd_kafka_AdminOptions_destroy(opts);
        rd_kafka_UserScramCredentialAlteration_destroy(upsert);
        rd_kafka_destroy(rk);
        return rc;
}

/* ---------------------------------------------------------------- paced producer */

static volatile sig_atomic_t stop_producing; /* set by SIGTERM/SIGINT in acks mode */

struct paced {
        uint64_t sent, backpressure;
        double secs; /* from the start to the last produce() call */
};

/* Produces SIZE-byte records (at least HDR) to partition (seq % PARTITIONS) at RATE records/s
 * until TOTAL are sent or stop_producing is set. Absolute-deadline sleeps, every 1 ms or every
 * 1/RATE s, whichever is longer, keep the rate whatever a produce() call costs. Each record
 * carries MAGIC, its sequence number and the CLOCK_MONOTONIC time of its produce() call. */
static struct paced produce_paced(rd_kafka_t *p, rd_kafka_topic_t *rkt, int partitions, int size,
                                  double rate, uint64_t total) {
        if (size < HDR)
                size = HDR;
        char *buf = calloc(1, (size_t)size);
        memcpy(buf, MAGIC, 8);
        memset(buf + HDR, 'x', (size_t)size - HDR);
        uint64_t tick = rate >= 1000 ? 1000000ull : (uint64_t)(1e9 / rate);
        uint64_t start = now_ns(), last_send = start;
        struct paced r = {0};
        struct timespec next;
        clock_gettime(CLOCK_MONOTONIC, &next);
        while (r.sent < total && !stop_producing) {
                uint64_t due = (uint64_t)((double)(now_ns() - start) * rate / 1e9) + 1;
                if (due > total)
                        due = total;
                while (r.sent < due) {
                        uint64_t t = now_ns();
                        memcpy(buf + 8, &r.sent, 8);
                        memcpy(buf + 16, &t, 8);
                        if (rd_kafka_produce(rkt, (int32_t)(r.sent % (uint64_t)partitions),
                                             RD_KAFKA_MSG_F_COPY, buf, (size_t)size, NULL, 0,
                                             NULL) == -1) {
                                rd_kafka_resp_err_t err = rd_kafka_last_error();
                                if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
                                        die("produce", rd_kafka_err2str(err));
                                r.backpressure++;
                                rd_kafka_poll(p, 1);
                                continue;
                        }
                        last_send = t;
                        r.sent++;
                }
                rd_kafka_poll(p, 0);
                next.tv_nsec += (long)tick;
                while (next.tv_nsec >= 1000000000L) {
                        next.tv_nsec -= 1000000000L;
                        next.tv_sec++;
                }
                while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR)
                        ;
        }
        free(buf);
        r.secs = (double)(last_send - start) / 1e9;
        return r;
}

/* ---------------------------------------------------------------- e2e */

static uint64_t total;        /* records to send */
static uint64_t *lat_ns;      /* per seq; 0 = not received */
static atomic_uint_fast64_t received;
static atomic_int stop_consumer;
static atomic_uint_fast64_t consume_errors;

static void *consume_loop(void *arg) {
        rd_kafka_t *c = arg;
        while (!atomic_load(&stop_consumer)) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 50);
                if (!m)
                        continue;
                uint64_t t = now_ns();
                if (m->err) {
                        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                                if (atomic_fetch_add(&consume_errors, 1) < 5)
                                        fprintf(stderr, "gregor-benchtool: consume: %s\n",
                                                rd_kafka_message_errstr(m));
                        }
                } else if (m->len >= HDR && !memcmp(m->payload, MAGIC, 8)) {
                        uint64_t seq, sent;
                        memcpy(&seq, (char *)m->payload + 8, 8);
                        memcpy(&sent, (char *)m->payload + 16, 8);
                        if (seq < total && !lat_ns[seq]) {
                                lat_ns[seq] = t > sent ? t - sent : 1;
                                atomic_fetch_add(&received, 1);
                        }
                }
                rd_kafka_message_destroy(m);
        }
        return NULL;
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
        return x < y ? -1 : x > y;
}

/* nearest-rank percentile of a sorted array */
static double pct(const uint64_t *v, size_t n, double q) {
        if (!n)
                return -1;
        size_t rank = (size_t)(q * (double)n + 0.999999999);
        if (rank < 1)
                rank = 1;
        if (rank > n)
                rank = n;
        return v[rank - 1] / 1000.0;
}

static atomic_uint_fast64_t dr_errors;
static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
        if (m->err && atomic_fetch_add(&dr_errors, 1) < 5)
                fprintf(stderr, "gregor-benchtool: delivery: %s\n", rd_kafka_err2str(m->err));
}

static int cmd_e2e(int argc, char **argv) {
        char errstr[512];
        const char *brokers = NULL, *topic = NULL, *rawfile = NULL;
        int partitions = 1, size = 100, opt;
        double rate = 1000, duration = 10, warmup = 1;
        rd_kafka_conf_t *pconf = rd_kafka_conf_new(), *cconf = rd_kafka_conf_new();
        set(pconf, "acks", "all");
        set(pconf, "linger.ms", "0");
        set(cconf, "group.id", "gregor-benchtool-e2e");
        set(cconf, "enable.auto.commit", "false");
        set(cconf, "enable.partition.eof", "false");
        optind = 2;
        while ((opt = getopt(argc, argv, "b:t:n:r:d:w:s:X:Y:A:")) != -1) {
                switch (opt) {
                case 'b': brokers = optarg; break;
                case 't': topic = optarg; break;
                case 'n': partitions = atoi(optarg); break;
                case 'r': rate = atof(optarg); break;
                case 'd': duration = atof(optarg); break;
                case 'w': warmup = atof(optarg); break;
                case 's': size = atoi(optarg); break;
                case 'X': set_kv(pconf, optarg); break;
                case 'Y': set_kv(cconf, optarg); break;
                case 'A': rawfile = optarg; break;
                default: return 2;
                }
        }
        if (!brokers || !topic || partitions < 1 || rate <= 0 || duration <= 0) {
                fprintf(stderr, "usage: gregor-benchtool e2e -b BROKERS -t TOPIC [-n PARTITIONS] "
                                "[-r RATE] [-d SECONDS] [-w WARMUP_SECONDS] [-s SIZE] [-X p=v] [-Y p=v] [-A FILE]\n");
                return 2;
        }
        set(pconf, "bootstrap.servers", brokers);
        set(cconf, "bootstrap.servers", brokers);
        rd_kafka_conf_set_dr_msg_cb(pconf, dr_cb);

        total = (uint64_t)(rate * (duration + warmup));
        uint64_t warm_n = (uint64_t)(rate * warmup);
        lat_ns = calloc(total ? total : 1, sizeof(*lat_ns));

        rd_kafka_t *c = rd_kafka_new(RD_KAFKA_CONSUMER, cconf, errstr, sizeof(errstr));
        if (!c)
                die("consumer", errstr);
        rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, pconf, errstr, sizeof(errstr));
        if (!p)
                die("producer", errstr);
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(p, topic, NULL);

        /* Start every partition at its current end, so each record sent below is consumed. */
        rd_kafka_topic_partition_list_t *tps = rd_kafka_topic_partition_list_new(partitions);
        for (int i = 0; i < partitions; i++) {
                int64_t lo, hi;
                rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
                for (int attempt = 0; attempt < 50; attempt++) {
                        err = rd_kafka_query_watermark_offsets(c, topic, i, &lo, &hi, 10000);
                        if (!err)
                                break;
                        usleep(100000); /* topic may still be getting created */
                }
                if (err)
                        die("query_watermark_offsets", rd_kafka_err2str(err));
                rd_kafka_topic_partition_list_add(tps, topic, i)->offset = hi;
        }
        rd_kafka_resp_err_t aerr = rd_kafka_assign(c, tps);
        if (aerr)
                die("assign", rd_kafka_err2str(aerr));
        rd_kafka_topic_partition_list_destroy(tps);
        rd_kafka_poll_set_consumer(c);
        pthread_t th;
        pthread_create(&th, NULL, consume_loop, c);

        struct paced run = produce_paced(p, rkt, partitions, size, rate, total);
        rd_kafka_flush(p, 60000);
        uint64_t deadline = now_ns() + 10000000000ull;
        while (atomic_load(&received) < total && now_ns() < deadline)
                usleep(1000);
        atomic_store(&stop_consumer, 1);
        pthread_join(th, NULL);

        uint64_t *v = malloc((total ? total : 1) * sizeof(*v));
        size_t n = 0;
        double sum = 0;
        FILE *raw = rawfile ? fopen(rawfile, "w") : NULL;
        for (uint64_t i = warm_n; i < total; i++) {
                if (!lat_ns[i])
                        continue;
                v[n++] = lat_ns[i];
                sum += (double)lat_ns[i];
                if (raw)
                        fprintf(raw, "%.3f\n", lat_ns[i] / 1000.0);
        }
        if (raw)
                fclose(raw);
        qsort(v, n, sizeof(*v), cmp_u64);
        printf("e2e sent=%" PRIu64 " received=%" PRIu64 " measured=%zu lost=%" PRIu64
               " rate=%.1f backpressure=%" PRIu64 " dr_errors=%" PRIu64
               " avg_us=%.1f p50_us=%.1f p90_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f\n",
               run.sent, (uint64_t)atomic_load(&received), n, (total - warm_n) - (uint64_t)n,
               run.secs > 0 ? (double)run.sent / run.secs : 0.0, run.backpressure,
               (uint64_t)atomic_load(&dr_errors), n ? sum / (double)n / 1000.0 : -1,
               pct(v, n, 0.50), pct(v, n, 0.90), pct(v, n, 0.99), pct(v, n, 0.999),
               n ? v[n - 1] / 1000.0 : -1);
        fflush(stdout);

        rd_kafka_consumer_close(c);
        rd_kafka_destroy(c);
        rd_kafka_topic_destroy(rkt);
        rd_kafka_destroy(p);
        return atomic_load(&received) >= total && !atomic_load(&dr_errors) ? 0 : 1;
}

/* ---------------------------------------------------------------- acks */

static uint64_t acked; /* delivery reports run on the thread that polls: this one */

static void ack_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
        if (m->err) {
                dr_cb(rk, m, opaque);
                return;
        }
        acked++;
        printf("%" PRIu64 "\n", now_ns() / 1000);
}

static void on_stop(int sig) {
        stop_producing = 1;
}

static int cmd_acks(int argc, char **argv) {
        char errstr[512];
        const char *brokers = NULL, *topic = NULL;
        int size = 100, opt;
        double rate = 1000;
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        set(conf, "enable.idempotence", "true");
        set(conf, "acks", "all");
        set(conf, "linger.ms", "0");
        optind = 2;
        while ((opt = getopt(argc, argv, "b:t:r:s:X:")) != -1) {
                switch (opt) {
                case 'b': brokers = optarg; break;
                case 't': topic = optarg; break;
                case 'r': rate = atof(optarg); break;
                case 's': size = atoi(optarg); break;
                case 'X': set_kv(conf, optarg); break;
                default: return 2;
                }
        }
        if (!brokers || !topic || rate <= 0) {
                fprintf(stderr, "usage: gregor-benchtool acks -b BROKERS -t TOPIC [-r RATE] [-s SIZE] "
                                "[-X p=v]\n");
                return 2;
        }
        set(conf, "bootstrap.servers", brokers);
        rd_kafka_conf_set_dr_msg_cb(conf, ack_cb);
        rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
        if (!p)
                die("producer", errstr);
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(p, topic, NULL);
        setvbuf(stdout, NULL, _IOLBF, 0); /* the reader sees each ack when it happens */
        signal(SIGTERM, on_stop);
        signal(SIGINT, on_stop);
        struct paced run = produce_paced(p, rkt, 1, size, rate, UINT64_MAX);
        rd_kafka_flush(p, 30000);
        printf("acks sent=%" PRIu64 " acked=%" PRIu64 " failed=%" PRIu64 "\n", run.sent, acked,
               (uint64_t)atomic_load(&dr_errors));
        rd_kafka_topic_destroy(rkt);
        rd_kafka_destroy(p);
        return acked == run.sent ? 0 : 1;
}

/* ---------------------------------------------------------------- connect */

static int cmd_connect(int argc, char **argv) {
        char errstr[512];
        const char *brokers = NULL;
        int count = 100, opt;
        rd_kafka_conf_t *base = rd_kafka_conf_new();
        optind = 2;
        while ((opt = getopt(argc, argv, "b:n:X:")) != -1) {
                switch (opt) {
                case 'b': brokers = optarg; break;
                case 'n': count = atoi(optarg); break;
                case 'X': set_kv(base, optarg); break;
                default: return 2;
                }
        }
        if (!brokers || count <= 0) {
                fprintf(stderr, "usage: gregor-benchtool connect -b BROKERS [-n COUNT] [-X p=v]...\n");
                return 2;
        }
        set(base, "bootstrap.servers", brokers);
        uint64_t *took = calloc(count, sizeof(*took));
        if (!took)
                die("malloc", "out of memory");
        for (int i = 0; i < count; i++) {
                rd_kafka_conf_t *conf = rd_kafka_conf_dup(base);
                uint64_t t0 = now_ns();
                rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
                if (!rk)
                        die("rd_kafka_new", errstr);
                const struct rd_kafka_metadata *md;
                rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, NULL, &md, 30000);
                if (err)
                        die("metadata", rd_kafka_err2str(err));
                took[i] = now_ns() - t0;
                rd_kafka_metadata_destroy(md);
                rd_kafka_destroy(rk);
        }
        qsort(took, count, sizeof(*took), cmp_u64);
        printf("connect n=%d p50_ms=%.3f p99_ms=%.3f max_ms=%.3f\n", count,
               pct(took, count, 0.50) / 1e3, pct(took, count, 0.99) / 1e3, took[count - 1] / 1e6);
        free(took);
        rd_kafka_conf_destroy(base);
        return 0;
}

/* ---------------------------------------------------------------- txn */

/* One transactional producer: N transactions of M records each, committed one after another.
 * Prints the throughput and each commit_transaction() call's latency percentiles; the call
 * includes the delivery of the transaction's records still in flight, then EndTxn and the
 * markers, as an application that commits after each batch waits for it. With -i, the same
 * records from an idempotent producer without transactions (the baseline). */
static int cmd_txn(int argc, char **argv) {
        char errstr[512];
        const char *brokers = NULL, *topic = NULL;
        int size = 100, transactions = 100, per_txn = 1000, idempotent = 0, opt;
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        set(conf, "linger.ms", "5");
        optind = 2;
        while ((opt = getopt(argc, argv, "b:t:n:m:s:iX:")) != -1) {
                switch (opt) {
                case 'i': idempotent = 1; break;
                case 'b': brokers = optarg; break;
                case 't': topic = optarg; break;
                case 'n': transactions = atoi(optarg); break;
                case 'm': per_txn = atoi(optarg); break;
                case 's': size = atoi(optarg); break;
                case 'X': set_kv(conf, optarg); break;
                default: return 2;
                }
        }
        if (!brokers || !topic || transactions <= 0 || per_txn <= 0 || size <= 0) {
                fprintf(stderr, "usage: gregor-benchtool txn -b BROKERS -t TOPIC [-n TRANSACTIONS] "
                                "[-m RECORDS_PER_TXN] [-s SIZE] [-i] [-X p=v]\n");
                return 2;
        }
        set(conf, "bootstrap.servers", brokers);
        set(conf, idempotent ? "enable.idempotence" : "transactional.id", idempotent ? "true" : "gregor-bench-txn");
        rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
        rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
        if (!p)
                die("producer", errstr);
        rd_kafka_error_t *error = idempotent ? NULL : rd_kafka_init_transactions(p, 30000);
        if (error)
                die("init_transactions", rd_kafka_error_string(error));
        char *payload = malloc(size);
        uint64_t *commits = calloc(transactions, sizeof(*commits));
        if (!payload || !commits)
                die("malloc", "out of memory");
        memset(payload, 'x', size);
        if (idempotent) {
                /* Its producer id first, as init_transactions gets the transactional one. */
                if (rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_VALUE(payload, size),
                                      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END) ||
                    rd_kafka_flush(p, 30000))
                        die("idempotent producer", "its first record was not acknowledged");
        }
        uint64_t start = now_ns();
        for (int t = 0; t < transactions; t++) {
                if (!idempotent && (error = rd_kafka_begin_transaction(p)))
                        die("begin_transaction", rd_kafka_error_string(error));
                for (int i = 0; i < per_txn; i++) {
                        rd_kafka_resp_err_t err;
                        while ((err = rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_VALUE(payload, size),
                                                        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END)) ==
                               RD_KAFKA_RESP_ERR__QUEUE_FULL)
                                rd_kafka_poll(p, 1);
                        if (err)
                                die("produce", rd_kafka_err2str(err));
                }
                uint64_t t0 = now_ns();
                if (idempotent)
                        continue;
                if ((error = rd_kafka_commit_transaction(p, 60000)))
                        die("commit_transaction", rd_kafka_error_string(error));
                commits[t] = now_ns() - t0;
        }
        if (idempotent && rd_kafka_flush(p, 60000))
                die("flush", "records still unacknowledged after 60 s");
        double secs = (now_ns() - start) / 1e9;
        uint64_t records = (uint64_t)transactions * per_txn;
        qsort(commits, transactions, sizeof(*commits), cmp_u64);
        printf("txn transactions=%d records=%" PRIu64 " secs=%.3f rec_s=%.0f mb_s=%.2f commit_p50_ms=%.3f "
               "commit_p99_ms=%.3f failed=%" PRIu64 "\n",
               transactions, records, secs, records / secs, records * size / secs / 1e6,
               pct(commits, transactions, 0.50) / 1e3, pct(commits, transactions, 0.99) / 1e3,
               (uint64_t)atomic_load(&dr_errors));
        free(commits);
        free(payload);
        rd_kafka_destroy(p);
        return atomic_load(&dr_errors) ? 1 : 0;
}

int main(int argc, char **argv) {
        if (argc >= 2 && !strcmp(argv[1], "version")) {
                printf("%s\n", rd_kafka_version_str());
                return 0;
        }
        if (argc >= 2 && !strcmp(argv[1], "create"))
                return cmd_create(argc, argv);
        if (argc >= 2 && !strcmp(argv[1], "e2e"))
                return cmd_e2e(argc, argv);
        if (argc >= 2 && !strcmp(argv[1], "acks"))
                return cmd_acks(argc, argv);
        if (argc >= 2 && !strcmp(argv[1], "txn"))
                return cmd_txn(argc, argv);
        if (argc >= 2 && !strcmp(argv[1], "scram-user"))
                return cmd_scram_user(argc, argv);
        if (argc >= 2 && !strcmp(argv[1], "connect"))
                return cmd_connect(argc, argv);
        fprintf(stderr, "usage: gregor-benchtool create BROKERS TOPIC PARTITIONS [RF [p=v]...]\n"
                        "       gregor-benchtool e2e -b BROKERS -t TOPIC [options]\n"
                        "       gregor-benchtool acks -b BROKERS -t TOPIC [options]\n"
                        "       gregor-benchtool txn -b BROKERS -t TOPIC [options]\n"
                        "       gregor-benchtool scram-user BROKERS USER PASSWORD MECHANISM\n"
                        "       gregor-benchtool connect -b BROKERS [-n COUNT] [-X p=v]...\n");
        return 2;
}
