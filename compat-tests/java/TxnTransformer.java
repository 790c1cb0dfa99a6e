import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.atomic.AtomicBoolean;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.AuthorizationException;
import org.apache.kafka.common.errors.InvalidProducerEpochException;
import org.apache.kafka.common.errors.OutOfOrderSequenceException;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.apache.kafka.common.errors.RetriableException;
import org.apache.kafka.common.errors.TimeoutException;
import org.apache.kafka.common.errors.UnsupportedVersionException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * The Java transformer of the transaction crash test (compat-tests/txncrash.py): the same
 * consume-transform-produce loop as its confluent-kafka transformers, with kafka-clients. It
 * consumes the input topic in the test's group (read_committed, static membership), writes one
 * output record per input record in a transaction, sends the offsets with
 * {@code sendOffsetsToTransaction(offsets, consumer.groupMetadata())}, and commits; every 5th
 * transaction is flushed and aborted; in 2% a successor producer of the same transactional id
 * initializes mid-transaction (fencing this one, whose next call must fail). Until its stdin
 * closes.
 *
 * <pre>
 * java TxnTransformer --bootstrap HOST:PORT --group G --txn-id ID --name NAME --run N --seed S
 *                     --input TOPIC --output TOPIC --output-partitions N --txn-timeout-ms N
 *                     [--max-runtime-ms N]
 * </pre>
 *
 * Recovery as the Java client's documentation prescribes: a fencing error (or any that leaves
 * the producer unusable) closes it and a new one of the same transactional id rewinds to the
 * group's committed offsets; another error aborts the transaction and rewinds to where it
 * began; a commit that timed out is called again. Prints txncrash.py's JSON lines: "i", "p"
 * (producer ready), "b" (began), "ending" (commit/abort called), "x" (ended: committed,
 * aborted or unknown), "fence", "zombie" (a fenced producer's commit returned), "e" (a client
 * error), "assign", "crash", "done"; t is
 * System.nanoTime(), the clock of Python's time.monotonic().
 */
public final class TxnTransformer {
    static final int MAX_BATCH = 150;
    static final int ABORT_EVERY = 5;
    static final int CALL_TIMEOUT_MS = 10_000;
    static final long WORK_MS = 20;
    static final double FENCE_SHARE = 0.02; // as txncrash.py's transformers

    final CrashProducer.Lines out = new CrashProducer.Lines();
    final AtomicBoolean stop = new AtomicBoolean();
    final Map<String, String> a = new HashMap<>();
    final Random rng;
    final String inst;
    final int outputPartitions;
    final KafkaConsumer<byte[], byte[]> consumer;
    /** Input partition -> next offset to take (null: the first fetched). */
    final Map<Integer, Long> expected = new HashMap<>();
    KafkaProducer<byte[], byte[]> producer;
    int incarnation;
    long n;
    /** The label of the transaction a successor producer fenced. */
    String fenced;

    TxnTransformer(String[] argv) {
        for (int i = 0; i + 1 < argv.length; i += 2) a.put(argv[i].replaceFirst("^--", ""), argv[i + 1]);
        for (String k : List.of("bootstrap", "group", "txn-id", "name", "run", "seed", "input", "output", "output-partitions",
                "txn-timeout-ms")) {
            if (!a.containsKey(k)) {
                System.err.println("TxnTransformer: --" + k + " is required");
                System.exit(2);
            }
        }
        inst = a.get("name");
        rng = new Random(Long.parseLong(a.get("seed")));
        outputPartitions = Integer.parseInt(a.get("output-partitions"));
        Properties c = new Properties();
        c.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, a.get("bootstrap"));
        c.put(ConsumerConfig.GROUP_ID_CONFIG, a.get("group"));
        c.put(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, inst); // as the Python ones: see txncrash.py
        c.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        c.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        c.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        c.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, 6000);
        c.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, 500);
        c.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, MAX_BATCH);
        c.put(ConsumerConfig.FETCH_MAX_WAIT_MS_CONFIG, 50);
        c.put(ConsumerConfig.REQUEST_TIMEOUT_MS_CONFIG, 10_000);
        c.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, CALL_TIMEOUT_MS);
        c.put(ConsumerConfig.RETRY_BACKOFF_MS_CONFIG, 50);
        c.put(ConsumerConfig.RECONNECT_BACKOFF_MS_CONFIG, 20);
        c.put(ConsumerConfig.RECONNECT_BACKOFF_MAX_MS_CONFIG, 200);
        c.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        c.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        consumer = new KafkaConsumer<>(c);
    }

    public static void main(String[] argv) {
        TxnTransformer t = new TxnTransformer(argv);
        CrashProducer.daemon("stdin-watch", () -> {
            try (InputStream in = System.in) {
                while (in.read() >= 0) { }
            } catch (IOException e) {
                // gone either way
            }
            t.stop.set(true);
        });
        long limitMs = Long.parseLong(t.a.getOrDefault("max-runtime-ms", "600000"));
        CrashProducer.daemon("time-limit", () -> {
            CrashProducer.sleep(limitMs);
            t.stop.set(true);
            CrashProducer.sleep(60_000);
            t.out.emit("crash", t.inst, "still running 60 s after its time limit", "", now());
            t.out.flush();
            Runtime.getRuntime().halt(3);
        });
        try {
            t.run();
            t.out.emit("done", t.inst, now());
        } catch (Throwable e) {
            t.out.emit("crash", t.inst, e.toString(), String.valueOf(Json.error(e).get("trace")), now());
        }
        t.out.flush();
        System.exit(0);
    }

    static double now() {
        return System.nanoTime() / 1e9;
    }

    void error(String where, Throwable e) {
        Throwable u = Json.unwrap(e);
        boolean fatal = u instanceof ProducerFencedException || u instanceof InvalidProducerEpochException;
        out.emit("e", inst, where, u.getClass().getSimpleName(), u instanceof RetriableException, fatal,
                String.valueOf(u.getMessage()), now());
    }

    void run() {
        out.emit("i", inst, "java", false, now());
        String input = a.get("input");
        consumer.subscribe(List.of(input), new ConsumerRebalanceListener() {
            @Override
            public void onPartitionsAssigned(Collection<TopicPartition> parts) {
                for (TopicPartition tp : parts) expected.put(tp.partition(), null); // from the committed offset
                List<Integer> ps = new ArrayList<>();
                for (TopicPartition tp : parts) ps.add(tp.partition());
                out.emit("assign", inst, ps, now());
            }

            @Override
            public void onPartitionsRevoked(Collection<TopicPartition> parts) {
                for (TopicPartition tp : parts) expected.remove(tp.partition());
            }
        });
        boolean rewind = true;
        while (!stop.get()) {
            if (producer == null) {
                if (!newProducer()) break;
                rewind = true;
            }
            // Stopped before the rewind: the positions may be past an aborted transaction's input.
            if (rewind && !rewindToCommitted(input)) break;
            rewind = false;
            List<ConsumerRecord<byte[], byte[]>> batch;
            try {
                batch = take(input, consumer.poll(Duration.ofMillis(100)));
            } catch (KafkaException e) {
                error("poll", e);
                continue;
            }
            if (batch.isEmpty()) continue;
            Map<Integer, Long> start = new HashMap<>();
            for (ConsumerRecord<byte[], byte[]> r : batch) start.putIfAbsent(r.partition(), r.offset());
            n++;
            String label = inst + "." + a.get("run") + "." + n;
            String ended;
            try {
                ended = transaction(label, input, batch);
            } catch (ProducerFencedException | InvalidProducerEpochException | OutOfOrderSequenceException
                     | UnsupportedVersionException | AuthorizationException e) {
                error("transaction", e);
                if (label.equals(fenced)) {
                    out.emit("x", inst, label, "aborted", "fenced by a successor producer", now());
                } else {
                    out.emit("x", inst, label, "unknown", e.getClass().getSimpleName() + ": producer replaced", now());
                }
                ended = "unknown";
            } catch (KafkaException e) {
                error("transaction", e);
                if (label.equals(fenced)) {
                    out.emit("x", inst, label, "aborted", "fenced by a successor producer", now());
                    ended = "unknown";
                } else {
                    ended = abort(label, e);
                }
            }
            if (ended.equals("aborted")) {
                seek(input, start);
            } else if (!ended.equals("committed")) {
                closeProducer();
            }
        }
        if (producer != null) producer.close(Duration.ofSeconds(5));
        consumer.close(Duration.ofSeconds(5));
    }

    /** The records at the positions expected, a random number of them; the rest fetched again. */
    List<ConsumerRecord<byte[], byte[]>> take(String input, Iterable<ConsumerRecord<byte[], byte[]>> records) {
        int want = 1 + rng.nextInt(MAX_BATCH);
        List<ConsumerRecord<byte[], byte[]>> batch = new ArrayList<>();
        Map<Integer, Long> reseek = new HashMap<>();
        for (ConsumerRecord<byte[], byte[]> r : records) {
            int p = r.partition();
            if (!expected.containsKey(p)) continue;
            Long next = expected.get(p);
            if (batch.size() < want && (next == null || r.offset() == next)) {
                batch.add(r);
                expected.put(p, r.offset() + 1);
            } else if (next == null || r.offset() >= next) {
                reseek.putIfAbsent(p, next == null ? r.offset() : next);
            }
        }
        seek(input, reseek);
        return batch;
    }

    void seek(String input, Map<Integer, Long> positions) {
        for (Map.Entry<Integer, Long> e : positions.entrySet()) {
            if (!expected.containsKey(e.getKey())) continue;
            expected.put(e.getKey(), e.getValue());
            consumer.seek(new TopicPartition(input, e.getKey()), e.getValue());
        }
    }

    /** False if stopped first. */
    boolean rewindToCommitted(String input) {
        while (!stop.get()) {
            Set<TopicPartition> assigned = new HashSet<>();
            for (TopicPartition tp : consumer.assignment()) if (expected.containsKey(tp.partition())) assigned.add(tp);
            if (assigned.isEmpty()) return true;
            try {
                Map<TopicPartition, OffsetAndMetadata> committed = consumer.committed(assigned);
                Map<Integer, Long> to = new HashMap<>();
                for (TopicPartition tp : assigned) {
                    OffsetAndMetadata om = committed.get(tp);
                    to.put(tp.partition(), om == null ? 0L : om.offset());
                }
                seek(input, to);
                return true;
            } catch (KafkaException e) {
                error("committed", e);
            }
        }
        return false;
    }

    Properties producerConfig() {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, a.get("bootstrap"));
        p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, a.get("txn-id"));
        int txnTimeoutMs = Integer.parseInt(a.get("txn-timeout-ms"));
        p.put(ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, txnTimeoutMs);
        // delivery.timeout.ms must cover linger.ms + request.timeout.ms
        p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, txnTimeoutMs - 1000);
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, txnTimeoutMs);
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, CALL_TIMEOUT_MS);
        p.put(ProducerConfig.LINGER_MS_CONFIG, 5);
        p.put(ProducerConfig.RETRY_BACKOFF_MS_CONFIG, 50);
        p.put(ProducerConfig.RETRY_BACKOFF_MAX_MS_CONFIG, 200);
        p.put(ProducerConfig.RECONNECT_BACKOFF_MS_CONFIG, 20);
        p.put(ProducerConfig.RECONNECT_BACKOFF_MAX_MS_CONFIG, 200);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        return p;
    }

    boolean newProducer() {
        while (!stop.get()) {
            incarnation++;
            KafkaProducer<byte[], byte[]> fresh = new KafkaProducer<>(producerConfig());
            for (int attempt = 0; attempt < 10 && !stop.get(); attempt++) {
                try {
                    fresh.initTransactions();
                    producer = fresh;
                    out.emit("p", inst, incarnation, now());
                    return true;
                } catch (TimeoutException e) {
                    error("initTransactions", e); // may be called again
                } catch (KafkaException e) {
                    error("initTransactions", e);
                    break;
                }
            }
            fresh.close(Duration.ZERO);
        }
        return false;
    }

    void closeProducer() {
        try {
            producer.close(Duration.ZERO);
        } catch (KafkaException e) {
            error("close", e);
        }
        producer = null;
    }

    String transaction(String label, String input, List<ConsumerRecord<byte[], byte[]>> batch) {
        int count = batch.size();
        out.emit("b", inst, label, count, now());
        producer.beginTransaction();
        int shift = rng.nextInt(outputPartitions);
        Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
        for (int i = 0; i < count; i++) {
            ConsumerRecord<byte[], byte[]> r = batch.get(i);
            String[] parts = new String(r.value(), StandardCharsets.UTF_8).split("\\|", 3);
            String seq = parts.length == 3 && parts[0].equals("feed") ? parts[1] : "-1";
            String value = "txn=" + label + ";i=" + i + ";of=" + count + ";src=" + r.partition() + ":" + r.offset() + ":" + seq;
            producer.send(new ProducerRecord<>(a.get("output"), (i + shift) % outputPartitions, null,
                    value.getBytes(StandardCharsets.UTF_8)));
            offsets.put(new TopicPartition(input, r.partition()), new OffsetAndMetadata(r.offset() + 1));
        }
        CrashProducer.sleep((long) (rng.nextDouble() * WORK_MS));
        if (rng.nextDouble() < FENCE_SHARE) fence(label);
        producer.sendOffsetsToTransaction(offsets, consumer.groupMetadata());
        if (n % ABORT_EVERY == 0) {
            producer.flush(); // so that read_uncommitted shows what read_committed must not
            out.emit("ending", inst, label, "abort", now());
            out.flush();
            producer.abortTransaction();
            out.emit("x", inst, label, "aborted", "on purpose", now());
            return "aborted";
        }
        out.emit("ending", inst, label, "commit", now());
        out.flush();
        for (int attempt = 0; ; attempt++) {
            try {
                producer.commitTransaction();
                if (label.equals(fenced)) {
                    out.emit("zombie", inst, label, "commitTransaction returned after a successor producer initialized", now());
                }
                out.emit("x", inst, label, "committed", "", now());
                return "committed";
            } catch (TimeoutException e) {
                if (attempt >= 30) throw e;
                error("commitTransaction (retried)", e); // the same commit is awaited again
            }
        }
    }

    /** A successor producer of the same transactional id initializes (and is closed): the broker
     *  bumps the epoch and aborts the open transaction while this producer still uses it. */
    void fence(String label) {
        try (KafkaProducer<byte[], byte[]> successor = new KafkaProducer<>(producerConfig())) {
            successor.initTransactions();
            fenced = label;
            out.emit("fence", inst, label, now());
        } catch (KafkaException e) {
            error("successor initTransactions", e);
        }
    }

    String abort(String label, KafkaException cause) {
        try {
            producer.abortTransaction();
            out.emit("x", inst, label, "aborted", "after " + Json.unwrap(cause).getClass().getSimpleName(), now());
            return "aborted";
        } catch (KafkaException e) {
            error("abortTransaction", e);
            out.emit("x", inst, label, "unknown", "abort failed: producer replaced", now());
            return "unknown";
        }
    }
}
