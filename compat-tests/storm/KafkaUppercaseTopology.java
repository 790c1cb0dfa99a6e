import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.Properties;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.serialization.StringSerializer;
import org.apache.storm.Config;
import org.apache.storm.LocalCluster;
import org.apache.storm.kafka.bolt.KafkaBolt;
import org.apache.storm.kafka.bolt.mapper.FieldNameBasedTupleToKafkaMapper;
import org.apache.storm.kafka.bolt.selector.DefaultTopicSelector;
import org.apache.storm.kafka.spout.FirstPollOffsetStrategy;
import org.apache.storm.kafka.spout.KafkaSpout;
import org.apache.storm.kafka.spout.KafkaSpoutConfig;
import org.apache.storm.topology.BasicOutputCollector;
import org.apache.storm.topology.OutputFieldsDeclarer;
import org.apache.storm.topology.TopologyBuilder;
import org.apache.storm.topology.base.BaseBasicBolt;
import org.apache.storm.tuple.Fields;
import org.apache.storm.tuple.Tuple;
import org.apache.storm.tuple.Values;

/**
 * A Storm topology in a LocalCluster: a KafkaSpout reads the input topic from the earliest
 * offset (at-least-once, committing the offsets of acked tuples to its consumer group), a bolt
 * upper-cases each value, and a KafkaBolt writes key and value to the output topic. Prints
 * "submitted" once the topology runs; stops cleanly on a "stop" line or end of standard input.
 * Arguments: bootstrap servers, input topic, output topic, consumer group.
 */
public class KafkaUppercaseTopology {
    /** Emits (key, value upper-cased) of each record the spout read. */
    public static class Uppercase extends BaseBasicBolt {
        @Override
        public void execute(Tuple record, BasicOutputCollector collector) {
            collector.emit(new Values(record.getStringByField("key"),
                    record.getStringByField("value").toUpperCase()));
        }

        @Override
        public void declareOutputFields(OutputFieldsDeclarer declarer) {
            declarer.declare(new Fields("key", "message"));
        }
    }

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], input = args[1], output = args[2], group = args[3];
        KafkaSpoutConfig<String, String> spoutConfig = KafkaSpoutConfig.builder(bootstrap, input)
                .setProp(ConsumerConfig.GROUP_ID_CONFIG, group)
                .setFirstPollOffsetStrategy(FirstPollOffsetStrategy.EARLIEST)
                .setProcessingGuarantee(KafkaSpoutConfig.ProcessingGuarantee.AT_LEAST_ONCE)
                .setOffsetCommitPeriodMs(1000)
                .build();
        Properties producer = new Properties();
        producer.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        producer.put(ProducerConfig.ACKS_CONFIG, "all");
        producer.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        producer.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        KafkaBolt<String, String> sink = new KafkaBolt<String, String>()
                .withProducerProperties(producer)
                .withTopicSelector(new DefaultTopicSelector(output))
                .withTupleToKafkaMapper(new FieldNameBasedTupleToKafkaMapper<>("key", "message"));

        TopologyBuilder topology = new TopologyBuilder();
        topology.setSpout("kafka-in", new KafkaSpout<>(spoutConfig), 1);
        topology.setBolt("uppercase", new Uppercase(), 1).shuffleGrouping("kafka-in");
        topology.setBolt("kafka-out", sink, 1).shuffleGrouping("uppercase");

        try (LocalCluster cluster = new LocalCluster()) {
            cluster.submitTopology("gregor-uppercase", new Config(), topology.createTopology());
            System.out.println("submitted");
            System.out.flush();
            BufferedReader stdin = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
            for (String line = stdin.readLine(); line != null && !line.equals("stop"); line = stdin.readLine()) {
                // Waits for the test to say stop.
            }
            cluster.killTopology("gregor-uppercase");
        }
        // LocalCluster leaves non-daemon threads behind.
        System.exit(0);
    }
}
