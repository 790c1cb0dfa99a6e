import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Properties;
import java.util.Random;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.zip.CRC32;

import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.errors.RetriableException;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * The Java producer of the cluster crash test (compat-tests/clustercrash.py): idempotent, acks=all,
 * writing numbered records to one topic's partitions as fast as its window of unacknowledged
 * records allows, until its stdin closes; then it flushes and exits.
 *
 * <pre>
 * java CrashProducer --bootstrap HOST:PORT --topic NAME --topic-index I --name NAME --seed S
 *                    --weights W0,W1,... [--compression CODEC] [--max-runtime-ms N]
 * </pre>
 *
 * A burst of 1 to 20 records goes to one partition, picked with the given weights. Values are
 * crashtest.py's self-checking ones (make_value), so its checker reads them. Prints the JSON lines
 * crashtest.py's Python workers print (State.sink): ["i", instance, "java", true, t], ["a", instance,
 * seq, topic index, partition, offset, t] per acknowledged record, ["f", ...] per failed one, ["e", ...]
 * for a send that threw, ["dead", ...], ["closed", ...] and ["done", ...]; t is System.nanoTime(),
 * CLOCK_MONOTONIC on Linux, the clock of Python's time.monotonic(). After --max-runtime-ms it stops
 * as if its stdin closed, and halts if the flush then hangs.
 */
public final class CrashProducer {
    static final int MAX_OUTSTANDING = 400; // as crashtest.py's producers
    static final int MAX_BURST = 20;
    static final int DELIVERY_TIMEOUT_MS = 60_000;

    public static void main(String[] argv) throws Exception {
        String bootstrap = null, topic = null, name = null, compression = "none";
        int topicIndex = 0;
        long seed = 0, maxRuntimeMs = 600_000;
        double[] weights = null;
        for (int i = 0; i < argv.length; i++) {
            switch (argv[i]) {
                case "--bootstrap" -> bootstrap = argv[++i];
                case "--topic" -> topic = argv[++i];
                case "--topic-index" -> topicIndex = Integer.parseInt(argv[++i]);
                case "--name" -> name = argv[++i];
                case "--seed" -> seed = Long.parseLong(argv[++i]);
                case "--weights" -> {
                    String[] w = argv[++i].split(",");
                    weights = new double[w.length];
                    for (int k = 0; k < w.length; k++) weights[k] = Double.parseDouble(w[k]);
                }
                case "--compression" -> compression = argv[++i];
                case "--max-runtime-ms" -> maxRuntimeMs = Long.parseLong(argv[++i]);
                default -> usage("unknown flag " + argv[i]);
            }
        }
        if (bootstrap == null || topic == null || name == null || weights == null) {
            usage("--bootstrap, --topic, --name and --weights are required");
        }
        Lines out = new Lines();
        AtomicBoolean stop = new AtomicBoolean();
        daemon("stdin-watch", () -> {
            try (InputStream in = System.in) {
                while (in.read() >= 0) { }
            } catch (IOException e) {
                // gone either way
            }
            stop.set(true);
        });
        long limitMs = maxRuntimeMs;
        String worker = name;
        daemon("time-limit", () -> {
            sleep(limitMs);
            stop.set(true);
            sleep(DELIVERY_TIMEOUT_MS + 30_000);
            out.emit("crash", worker, "still running " + (DELIVERY_TIMEOUT_MS + 30_000) + " ms after its time limit", "", now());
            out.flush();
            Runtime.getRuntime().halt(3);
        });
        try {
            produce(out, stop, bootstrap, topic, topicIndex, name + ".0", seed, weights, compression);
            out.emit("done", name, now());
        } catch (Throwable t) {
            out.emit("crash", name, t.toString(), String.valueOf(Json.error(t).get("trace")), now());
        }
        out.flush();
        System.exit(0);
    }

    static void produce(Lines out, AtomicBoolean stop, String bootstrap, String topic, int topicIndex, String inst,
                        long seed, double[] weights, String compression) throws InterruptedException {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.CLIENT_ID_CONFIG, inst);
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, true);
        p.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, compression);
        p.put(ProducerConfig.LINGER_MS_CONFIG, 5);
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, DELIVERY_TIMEOUT_MS);
        p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, 10_000);
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, DELIVERY_TIMEOUT_MS);
        // Short backoffs, as the Python producers have: a failover is over in seconds.
        p.put(ProducerConfig.RETRY_BACKOFF_MS_CONFIG, 50);
        p.put(ProducerConfig.RETRY_BACKOFF_MAX_MS_CONFIG, 200);
        p.put(ProducerConfig.RECONNECT_BACKOFF_MS_CONFIG, 20);
        p.put(ProducerConfig.RECONNECT_BACKOFF_MAX_MS_CONFIG, 200);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        out.emit("i", inst, "java", true, now());
        Random rng = new Random(seed);
        Semaphore window = new Semaphore(MAX_OUTSTANDING);
        String dead = null;
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p)) {
            long seq = 0;
            while (!stop.get() && dead == null) {
                int partition = pick(rng, weights);
                int burst = 1 + rng.nextInt(MAX_BURST);
                for (int k = 0; k < burst && dead == null; k++, seq++) {
                    if (!acquire(window, stop)) break;
                    long s = seq;
                    try {
                        producer.send(new ProducerRecord<>(topic, partition, null, value(inst, s)), (md, e) -> {
                            if (e == null) {
                                out.emit("a", inst, s, topicIndex, md.partition(), md.offset(), now());
                            } else {
                                out.emit("f", inst, s, topicIndex, partition, e.getClass().getSimpleName(),
                                        e instanceof RetriableException, String.valueOf(e.getMessage()), now());
                            }
                            window.release();
                        });
                    } catch (Exception e) { // refused before it was sent: the producer is in a fatal state
                        window.release();
                        String text = String.valueOf(e.getMessage());
                        out.emit("e", inst, "send", e.getClass().getSimpleName(), e instanceof RetriableException, true, text, now());
                        out.emit("f", inst, s, topicIndex, partition, e.getClass().getSimpleName(), e instanceof RetriableException, text, now());
                        dead = "send threw " + e;
                    }
                }
            }
            if (dead != null) {
                out.emit("dead", inst, dead, now());
            }
            producer.flush();
            producer.close(Duration.ofSeconds(10));
        }
        out.emit("closed", inst, MAX_OUTSTANDING - window.availablePermits(), now());
    }

    /** A place in the window, or false once told to stop. */
    static boolean acquire(Semaphore window, AtomicBoolean stop) throws InterruptedException {
        while (!window.tryAcquire(5, TimeUnit.MILLISECONDS)) {
            if (stop.get()) return false;
        }
        return true;
    }

    static int pick(Random rng, double[] weights) {
        double total = 0;
        for (double w : weights) total += w;
        double x = rng.nextDouble() * total;
        for (int i = 0; i < weights.length; i++) {
            x -= weights[i];
            if (x < 0) return i;
        }
        return weights.length - 1;
    }

    /** crashtest.py's make_value: "inst|seq|" then a filler derived from the CRC-32 of that head. */
    static byte[] value(String inst, long seq) {
        String head = inst + "|" + seq + "|";
        CRC32 c = new CRC32();
        c.update(head.getBytes(StandardCharsets.UTF_8));
        long crc = c.getValue();
        int size = (int) (crc % 61 == 0 ? 4000 + crc % 6000 : 8 + crc % 300);
        String unit = String.format("%08x", crc);
        StringBuilder sb = new StringBuilder(head.length() + size + 8).append(head);
        while (sb.length() < head.length() + size) sb.append(unit);
        sb.setLength(head.length() + size);
        return sb.toString().getBytes(StandardCharsets.UTF_8);
    }

    static double now() {
        return System.nanoTime() / 1e9;
    }

    static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    static void daemon(String name, Runnable body) {
        Thread t = new Thread(body, name);
        t.setDaemon(true);
        t.start();
    }

    private static void usage(String why) {
        System.err.println("CrashProducer: " + why);
        System.exit(2);
    }

    /** JSON lines, written by a flusher thread every 20 ms: one write per ack would slow the producer. */
    static final class Lines {
        private final StringBuilder buf = new StringBuilder();

        Lines() {
            daemon("lines-flusher", () -> {
                while (true) {
                    sleep(20);
                    flush();
                }
            });
        }

        void emit(Object... item) {
            String line = Json.write(List.of(item));
            synchronized (buf) {
                buf.append(line).append('\n');
            }
        }

        void flush() {
            String text;
            synchronized (buf) {
                text = buf.toString();
                buf.setLength(0);
            }
            if (!text.isEmpty()) {
                System.out.print(text);
                System.out.flush();
            }
        }
    }
}
