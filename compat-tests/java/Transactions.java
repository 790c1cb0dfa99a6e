import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.TransactionDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * The official Java client's transactions against a broker.
 *
 * <pre>
 * java Transactions --bootstrap HOST:PORT [--max-runtime-ms N] MODE ARGS...
 *   commit-abort TOPIC TXN_ID     one committed transaction (c-0..c-2), one aborted (a-0, a-1), another
 *                                 committed (c-3); then what read_committed and read_uncommitted consumers read,
 *                                 and the transactional id's state and producer epoch (DescribeTransactions)
 *   fence TOPIC TXN_ID            a second producer with the same transactional id fences the first
 *   eos SOURCE SINK GROUP TXN_ID  consume-transform-produce: records of SOURCE copied to SINK with the
 *                                 consumer's offsets sent to the transaction (group metadata included)
 * </pre>
 *
 * Prints JSON lines ({"event":"read",...}, {"event":"fenced",...}, {"event":"committed",...},
 * {"event":"error",...}) then {"event":"done"}. Exit code 0 when the mode completed, 1 on a
 * client exception, 3 from the watchdog.
 */
public final class Transactions {
    static final Duration POLL = Duration.ofMillis(200);
    static final long READ_MS = 8_000;

    public static void main(String[] argv) throws Exception {
        String bootstrap = null;
        long maxRuntimeMs = 50_000;
        int i = 0;
        while (i < argv.length && argv[i].startsWith("--")) {
            switch (argv[i]) {
                case "--bootstrap" -> bootstrap = argv[++i];
                case "--max-runtime-ms" -> maxRuntimeMs = Long.parseLong(argv[++i]);
                default -> throw new IllegalArgumentException("unknown flag " + argv[i]);
            }
            i++;
        }
        String mode = argv[i];
        List<String> args = List.of(argv).subList(i + 1, argv.length);
        Json.watchdog(maxRuntimeMs, "Transactions " + mode);
        int code = 0;
        try {
            switch (mode) {
                case "commit-abort" -> commitAbort(bootstrap, args.get(0), args.get(1));
                case "fence" -> fence(bootstrap, args.get(0), args.get(1));
                case "eos" -> eos(bootstrap, args.get(0), args.get(1), args.get(2), args.get(3));
                default -> throw new IllegalArgumentException("unknown mode " + mode);
            }
        } catch (Exception e) {
            Json.emit(Json.error(e));
            code = 1;
        }
        Json.emit(Json.obj("event", "done"));
        System.exit(code);
    }

    static KafkaProducer<String, String> producer(String bootstrap, String txnId) {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, txnId);
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, 15_000);
        return new KafkaProducer<>(p, new StringSerializer(), new StringSerializer());
    }

    static KafkaConsumer<String, String> consumer(String bootstrap, String group, String isolation) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        if (group != null) p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        return new KafkaConsumer<>(p, new StringDeserializer(), new StringDeserializer());
    }

    /** Every value of partition 0 of TOPIC an assigned consumer reads within READ_MS. */
    static List<String> read(String bootstrap, String topic, String isolation) {
        List<String> values = new ArrayList<>();
        try (KafkaConsumer<String, String> c = consumer(bootstrap, null, isolation)) {
            TopicPartition tp = new TopicPartition(topic, 0);
            c.assign(List.of(tp));
            c.seekToBeginning(List.of(tp));
            long deadline = System.currentTimeMillis() + READ_MS;
            while (System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> r : c.poll(POLL)) values.add(r.value());
            }
            long end = c.endOffsets(List.of(tp)).get(tp);
            Json.emit(Json.obj("event", "read", "topic", topic, "isolation", isolation, "values", values, "end_offset", end));
        }
        return values;
    }

    static void commitAbort(String bootstrap, String topic, String txnId) throws Exception {
        try (KafkaProducer<String, String> p = producer(bootstrap, txnId)) {
            p.initTransactions();
            p.beginTransaction();
            for (int i = 0; i < 3; i++) p.send(new ProducerRecord<>(topic, 0, null, "c-" + i));
            p.commitTransaction();
            p.beginTransaction();
            for (int i = 0; i < 2; i++) p.send(new ProducerRecord<>(topic, 0, null, "a-" + i));
            p.flush();
            p.abortTransaction();
            p.beginTransaction();
            p.send(new ProducerRecord<>(topic, 0, null, "c-3"));
            p.commitTransaction();
        }
        read(bootstrap, topic, "read_committed");
        read(bootstrap, topic, "read_uncommitted");
        try (Admin admin = Admin.create(Map.of(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap))) {
            TransactionDescription d = admin.describeTransactions(List.of(txnId)).description(txnId).get();
            Json.emit(Json.obj("event", "described", "state", d.state().toString(), "epoch", (int) d.producerEpoch()));
        }
    }

    static void fence(String bootstrap, String topic, String txnId) throws Exception {
        try (KafkaProducer<String, String> zombie = producer(bootstrap, txnId)) {
            zombie.initTransactions();
            zombie.beginTransaction();
            zombie.send(new ProducerRecord<>(topic, 0, null, "zombie")).get();
            try (KafkaProducer<String, String> fresh = producer(bootstrap, txnId)) {
                fresh.initTransactions();
                fresh.beginTransaction();
                fresh.send(new ProducerRecord<>(topic, 0, null, "fresh"));
                fresh.commitTransaction();
            }
            // Kafka answers the zombie's next batch INVALID_PRODUCER_EPOCH (the abort's marker
            // raised the epoch on the partition) and its EndTxn PRODUCER_FENCED.
            try {
                zombie.send(new ProducerRecord<>(topic, 0, null, "zombie-2"));
                zombie.commitTransaction();
                Json.emit(Json.obj("event", "fenced", "refused", false));
            } catch (Exception e) {
                Json.emit(Json.obj("event", "fenced", "refused", true, "type", Json.unwrap(e).getClass().getSimpleName()));
            }
        }
        read(bootstrap, topic, "read_committed");
    }

    static void eos(String bootstrap, String source, String sink, String group, String txnId) throws Exception {
        try (KafkaProducer<String, String> p = producer(bootstrap, txnId);
             KafkaConsumer<String, String> c = consumer(bootstrap, group, "read_committed")) {
            p.initTransactions();
            c.subscribe(List.of(source));
            int copied = 0;
            long deadline = System.currentTimeMillis() + 20_000;
            while (copied < 4 && System.currentTimeMillis() < deadline) {
                var records = c.poll(POLL);
                if (records.isEmpty()) continue;
                p.beginTransaction();
                long next = -1;
                for (ConsumerRecord<String, String> r : records) {
                    p.send(new ProducerRecord<>(sink, 0, null, r.value().replace("in", "out")));
                    next = r.offset() + 1;
                    copied++;
                }
                p.sendOffsetsToTransaction(Map.of(new TopicPartition(source, 0), new OffsetAndMetadata(next)), c.groupMetadata());
                p.commitTransaction();
            }
            OffsetAndMetadata committed = c.committed(java.util.Set.of(new TopicPartition(source, 0))).get(new TopicPartition(source, 0));
            Json.emit(Json.obj("event", "committed", "copied", copied, "offset", committed == null ? -1 : committed.offset()));
        }
        read(bootstrap, sink, "read_committed");
    }
}
