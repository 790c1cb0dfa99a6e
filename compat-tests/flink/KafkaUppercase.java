import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.serialization.SimpleStringSchema;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.connector.base.DeliveryGuarantee;
import org.apache.flink.connector.kafka.sink.KafkaRecordSerializationSchema;
import org.apache.flink.connector.kafka.sink.KafkaSink;
import org.apache.flink.connector.kafka.source.KafkaSource;
import org.apache.flink.connector.kafka.source.enumerator.initializer.OffsetsInitializer;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;

/**
 * A Flink job in a local MiniCluster: reads every record of the input topic up to its end offsets
 * at start (a bounded KafkaSource), upper-cases each value and writes it to the output topic with
 * a KafkaSink whose delivery guarantee is EXACTLY_ONCE, so every checkpoint commits a Kafka
 * transaction and the final one commits the rest when the input is done.
 * Arguments: bootstrap servers, input topic, output topic, transactional id prefix.
 */
public class KafkaUppercase {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], input = args[1], output = args[2], txnPrefix = args[3];
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        env.setParallelism(2);
        env.enableCheckpointing(500);

        KafkaSource<String> source = KafkaSource.<String>builder()
                .setBootstrapServers(bootstrap)
                .setTopics(input)
                .setGroupId(txnPrefix)
                .setStartingOffsets(OffsetsInitializer.earliest())
                .setBounded(OffsetsInitializer.latest())
                .setValueOnlyDeserializer(new SimpleStringSchema())
                .build();
        KafkaSink<String> sink = KafkaSink.<String>builder()
                .setBootstrapServers(bootstrap)
                .setRecordSerializer(KafkaRecordSerializationSchema.builder()
                        .setTopic(output)
                        .setValueSerializationSchema(new SimpleStringSchema())
                        .build())
                .setDeliveryGuarantee(DeliveryGuarantee.EXACTLY_ONCE)
                .setTransactionalIdPrefix(txnPrefix)
                .setProperty("transaction.timeout.ms", "60000")
                .build();

        env.fromSource(source, WatermarkStrategy.noWatermarks(), "input")
                .map(String::toUpperCase).returns(Types.STRING)
                .sinkTo(sink);
        env.execute("gregor-kafka-uppercase");
    }
}
