import java.io.FileReader;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.consumer.CloseOptions;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * The official Java producer and consumer with their default settings, against a broker.
 *
 * <pre>
 * java ProduceConsume --bootstrap HOST:PORT [--max-runtime-ms N] [--client-properties FILE] MODE ARGS...
 *   (FILE: settings added to every client's, such as security.protocol and the SSL or SASL ones)
 *   produce TOPIC COUNT [COMPRESSION [ACKS]]
 *                                         default producer (acks=all, enable.idempotence=true);
 *                                         keys k-i, values v-i, header idx=i; COMPRESSION: none|gzip|snappy|lz4|zstd;
 *                                         ACKS 0 or 1 also turns idempotence off (it needs acks=all)
 *   produce-sized COUNT RECORD_BYTES CLIENT_ID TOPIC [CLIENT_ID TOPIC ...]
 *                                         for each pair in turn, a default producer of that client.id sends COUNT
 *                                         records of RECORD_BYTES (no key; value: the index in six digits, then "x"s)
 *                                         and flushes; reports the time the sends took, the offsets and its
 *                                         produce-throttle-time-avg/-max metrics (ms)
 *   consume-group TOPIC GROUP EXPECTED    subscribe, poll until EXPECTED records, commitSync, committed(), close
 *   consume-assign TOPIC PARTITION OFFSET EXPECTED
 *                                         no group: assign, beginning/end offsets, offsetsForTimes, seekToBeginning,
 *                                         seekToEnd, position, seek(OFFSET), poll until EXPECTED records
 * </pre>
 *
 * Prints JSON lines: {"event":"config",...} (the effective settings that matter),
 * {"event":"produced",...} / {"event":"consumed",...} / {"event":"error",...}, then {"event":"done"}.
 * Exit code: 0 when the mode completed, 1 on a client exception (the error line says which),
 * 3 from the watchdog.
 */
public final class ProduceConsume {
    static long pollDeadlineMs = 25_000;
    /** From --client-properties: security settings and the like, for every client. */
    static final Properties clientProperties = new Properties();

    public static void main(String[] argv) throws Exception {
        String bootstrap = null;
        long maxRuntimeMs = 50_000;
        int i = 0;
        while (i < argv.length && argv[i].startsWith("--")) {
            switch (argv[i]) {
                case "--bootstrap" -> bootstrap = argv[++i];
                case "--max-runtime-ms" -> maxRuntimeMs = Long.parseLong(argv[++i]);
                case "--poll-deadline-ms" -> pollDeadlineMs = Long.parseLong(argv[++i]);
                case "--client-properties" -> loadClientProperties(argv[++i]);
                default -> usage("unknown flag " + argv[i]);
            }
            i++;
        }
        if (bootstrap == null || i >= argv.length) usage("--bootstrap and a mode are required");
        String mode = argv[i];
        List<String> args = List.of(argv).subList(i + 1, argv.length);
        Json.watchdog(maxRuntimeMs, "ProduceConsume " + mode);
        int code = 0;
        try {
            switch (mode) {
                case "produce" -> produce(bootstrap, args.get(0), Integer.parseInt(args.get(1)),
                        args.size() > 2 ? args.get(2) : null, args.size() > 3 ? args.get(3) : null);
                case "produce-sized" -> produceSized(bootstrap, Integer.parseInt(args.get(0)), Integer.parseInt(args.get(1)),
                        args.subList(2, args.size()));
                case "consume-group" -> consumeGroup(bootstrap, args.get(0), args.get(1), Integer.parseInt(args.get(2)));
                case "consume-assign" -> consumeAssign(bootstrap, args.get(0), Integer.parseInt(args.get(1)),
                        Long.parseLong(args.get(2)), Integer.parseInt(args.get(3)));
                default -> usage("unknown mode " + mode);
            }
        } catch (Throwable t) {
            Map<String, Object> e = Json.obj("event", "error", "mode", mode);
            e.putAll(Json.error(t));
            Json.emit(e);
            code = 1;
        }
        Json.emit(Json.obj("event", "done", "mode", mode, "code", code));
        System.exit(code);
    }

    private static void usage(String why) {
        System.err.println("ProduceConsume: " + why);
        System.exit(2);
    }

    private static void loadClientProperties(String path) throws IOException {
        try (FileReader in = new FileReader(path, StandardCharsets.UTF_8)) {
            clientProperties.load(in);
        }
    }

    // -- producer ----------------------------------------------------------------------------

    static Properties producerProps(String bootstrap, String clientId) {
        Properties p = new Properties();
        p.putAll(clientProperties);
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.CLIENT_ID_CONFIG, clientId);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        // Only waits are shortened (bounded test); acks, idempotence, retries and
        // max.in.flight stay the client's defaults.
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, 15_000);
        p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, 10_000);
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 20_000);
        return p;
    }

    static void produce(String bootstrap, String topic, int count, String compression, String acks) throws Exception {
        Properties p = producerProps(bootstrap, "gregor-compat-java-producer");
        if (compression != null && !compression.equals("none")) {
            p.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, compression);
        }
        if (acks != null && !acks.equals("all")) {
            p.put(ProducerConfig.ACKS_CONFIG, acks);
            p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, false);
        }
        ProducerConfig effective = new ProducerConfig(p);
        Json.emit(Json.obj("event", "config", "role", "producer",
                "acks", effective.getString(ProducerConfig.ACKS_CONFIG),
                "enable.idempotence", effective.getBoolean(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG),
                "max.in.flight.requests.per.connection", effective.getInt(ProducerConfig.MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION),
                "retries", effective.getInt(ProducerConfig.RETRIES_CONFIG),
                "compression.type", effective.getString(ProducerConfig.COMPRESSION_TYPE_CONFIG)));
        long t0 = System.nanoTime();
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(p)) {
            List<PartitionInfo> parts = producer.partitionsFor(topic);
            List<Future<RecordMetadata>> futures = new ArrayList<>();
            for (int i = 0; i < count; i++) {
                ProducerRecord<String, String> r = new ProducerRecord<>(topic, "k-" + i, "v-" + i);
                r.headers().add("idx", Integer.toString(i).getBytes(StandardCharsets.UTF_8));
                futures.add(producer.send(r));
            }
            producer.flush();
            List<Object> placements = new ArrayList<>();
            for (Future<RecordMetadata> f : futures) {
                RecordMetadata md = f.get(25, TimeUnit.SECONDS);
                placements.add(List.of(md.partition(), md.offset()));
            }
            Json.emit(Json.obj("event", "produced", "topic", topic, "count", count,
                    "partitions", parts.size(), "placements", placements,
                    "ms", (System.nanoTime() - t0) / 1_000_000));
            producer.close(Duration.ofSeconds(10));
        }
    }

    static void produceSized(String bootstrap, int count, int recordBytes, List<String> pairs) throws Exception {
        if (pairs.isEmpty() || pairs.size() % 2 != 0) usage("produce-sized needs CLIENT_ID TOPIC pairs");
        for (int j = 0; j < pairs.size(); j += 2) {
            String clientId = pairs.get(j);
            String topic = pairs.get(j + 1);
            try (KafkaProducer<String, String> producer = new KafkaProducer<>(producerProps(bootstrap, clientId))) {
                producer.partitionsFor(topic); // metadata first: only the sends are timed
                long t0 = System.nanoTime();
                List<Future<RecordMetadata>> futures = new ArrayList<>();
                for (int i = 0; i < count; i++) {
                    String value = String.format("%06d", i) + "x".repeat(recordBytes - 6);
                    futures.add(producer.send(new ProducerRecord<>(topic, value)));
                }
                producer.flush();
                long ms = (System.nanoTime() - t0) / 1_000_000;
                List<Long> offsets = new ArrayList<>();
                for (Future<RecordMetadata> f : futures) offsets.add(f.get(25, TimeUnit.SECONDS).offset());
                Map<String, Object> throttle = new TreeMap<>();
                producer.metrics().forEach((name, metric) -> {
                    if (name.group().equals("producer-metrics") && name.name().startsWith("produce-throttle-time-")) {
                        throttle.put(name.name(), metric.metricValue());
                    }
                });
                Json.emit(Json.obj("event", "produced", "clientId", clientId, "topic", topic, "count", count,
                        "ms", ms, "offsets", offsets, "throttle", throttle));
                producer.close(Duration.ofSeconds(10));
            }
        }
    }

    // -- consumers ---------------------------------------------------------------------------

    static Properties consumerProps(String bootstrap, String group) {
        Properties p = new Properties();
        p.putAll(clientProperties);
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.CLIENT_ID_CONFIG, "gregor-compat-java-consumer");
        if (group != null) {
            p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        }
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        // A new group should read the topic from the start.
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.REQUEST_TIMEOUT_MS_CONFIG, 10_000);
        p.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 15_000);
        return p;
    }

    static Map<String, Object> recordJson(ConsumerRecord<String, String> r) {
        Map<String, Object> headers = new TreeMap<>();
        for (Header h : r.headers()) {
            headers.put(h.key(), h.value() == null ? null : new String(h.value(), StandardCharsets.UTF_8));
        }
        return Json.obj("partition", r.partition(), "offset", r.offset(), "key", r.key(), "value", r.value(),
                "timestamp", r.timestamp(), "timestampType", r.timestampType().name, "headers", headers,
                "leaderEpoch", r.leaderEpoch().orElse(null));
    }

    static List<ConsumerRecord<String, String>> pollUntil(KafkaConsumer<String, String> c, int expected) {
        List<ConsumerRecord<String, String>> out = new ArrayList<>();
        long deadline = System.currentTimeMillis() + pollDeadlineMs;
        while (out.size() < expected && System.currentTimeMillis() < deadline) {
            ConsumerRecords<String, String> recs = c.poll(Duration.ofMillis(200));
            for (ConsumerRecord<String, String> r : recs) out.add(r);
        }
        return out;
    }

    static Map<String, Object> offsetsJson(Map<TopicPartition, ?> m) {
        Map<String, Object> out = new TreeMap<>();
        for (Map.Entry<TopicPartition, ?> e : m.entrySet()) {
            Object v = e.getValue();
            if (v instanceof OffsetAndMetadata om) v = om.offset();
            else if (v instanceof OffsetAndTimestamp ot) v = Json.obj("offset", ot.offset(), "timestamp", ot.timestamp());
            out.put(Integer.toString(e.getKey().partition()), v);
        }
        return out;
    }

    static void consumeGroup(String bootstrap, String topic, String group, int expected) throws Exception {
        Properties p = consumerProps(bootstrap, group);
        ConsumerConfig effective = new ConsumerConfig(p);
        Json.emit(Json.obj("event", "config", "role", "group-consumer",
                "group.protocol", effective.getString(ConsumerConfig.GROUP_PROTOCOL_CONFIG),
                "partition.assignment.strategy", effective.getList(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG),
                "enable.auto.commit", effective.getBoolean(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG),
                "isolation.level", effective.getString(ConsumerConfig.ISOLATION_LEVEL_CONFIG)));
        long t0 = System.nanoTime();
        List<Object> assignments = new ArrayList<>();
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(p)) {
            c.subscribe(List.of(topic), new ConsumerRebalanceListener() {
                @Override
                public void onPartitionsRevoked(Collection<TopicPartition> parts) {}

                @Override
                public void onPartitionsAssigned(Collection<TopicPartition> parts) {
                    assignments.add(parts.stream().map(TopicPartition::partition).sorted().toList());
                }
            });
            List<ConsumerRecord<String, String>> recs = pollUntil(c, expected);
            List<Object> out = new ArrayList<>();
            for (ConsumerRecord<String, String> r : recs) out.add(recordJson(r));
            c.commitSync(Duration.ofSeconds(15));
            Set<TopicPartition> assigned = c.assignment();
            Map<TopicPartition, OffsetAndMetadata> committed = c.committed(assigned, Duration.ofSeconds(15));
            Map<TopicPartition, Long> positions = new HashMap<>();
            for (TopicPartition tp : assigned) positions.put(tp, c.position(tp, Duration.ofSeconds(15)));
            var gm = c.groupMetadata();
            Json.emit(Json.obj("event", "consumed", "mode", "group", "topic", topic, "group", group,
                    "count", out.size(), "records", out, "assignments", assignments,
                    "committed", offsetsJson(committed), "positions", offsetsJson(positions),
                    "generationId", gm.generationId(), "memberId", gm.memberId(),
                    "ms", (System.nanoTime() - t0) / 1_000_000));
            long tc = System.nanoTime();
            c.close(CloseOptions.timeout(Duration.ofSeconds(10)));
            Json.emit(Json.obj("event", "closed", "ms", (System.nanoTime() - tc) / 1_000_000));
        }
    }

    static void consumeAssign(String bootstrap, String topic, int partition, long offset, int expected) throws Exception {
        Properties p = consumerProps(bootstrap, null);
        long t0 = System.nanoTime();
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(p)) {
            TopicPartition tp = new TopicPartition(topic, partition);
            List<TopicPartition> tps = List.of(tp);
            c.assign(tps);
            Map<TopicPartition, Long> begin = c.beginningOffsets(tps, Duration.ofSeconds(15));
            Map<TopicPartition, Long> end = c.endOffsets(tps, Duration.ofSeconds(15));
            Map<TopicPartition, OffsetAndTimestamp> byTime = c.offsetsForTimes(Map.of(tp, 0L), Duration.ofSeconds(15));
            c.seekToEnd(tps);
            long posEnd = c.position(tp, Duration.ofSeconds(15));
            c.seekToBeginning(tps);
            long posBegin = c.position(tp, Duration.ofSeconds(15));
            c.seek(tp, offset);
            List<ConsumerRecord<String, String>> recs = pollUntil(c, expected);
            List<Object> out = new ArrayList<>();
            for (ConsumerRecord<String, String> r : recs) out.add(recordJson(r));
            Json.emit(Json.obj("event", "consumed", "mode", "assign", "topic", topic, "partition", partition,
                    "count", out.size(), "records", out,
                    "beginningOffsets", offsetsJson(begin), "endOffsets", offsetsJson(end),
                    "offsetsForTimes", offsetsJson(byTime),
                    "positionAfterSeekToEnd", posEnd, "positionAfterSeekToBeginning", posBegin,
                    "position", c.position(tp, Duration.ofSeconds(15)),
                    "ms", (System.nanoTime() - t0) / 1_000_000));
            c.close(CloseOptions.timeout(Duration.ofSeconds(5)));
        }
    }
}
