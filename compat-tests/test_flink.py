"""Apache Flink 2.0's Kafka connector 4.0.1-2.0 (from Maven Central: compat-tests/flink/pom.xml)
against Gregor: a DataStream job in a local MiniCluster reads a two-partition topic with the
KafkaSource (bounded at the end offsets it finds at start), upper-cases each value and writes it
with the KafkaSink, DeliveryGuarantee.EXACTLY_ONCE: each checkpoint commits a Kafka transaction,
the last one when the input is done. read_committed shows each input exactly once, and the
output's end offsets show the transaction markers."""

from __future__ import annotations

import collections
import os

import pytest

from confluent_kafka import TopicPartition

from conftest import (JAVA, ck_consumer, ck_producer, ck_read_topic, compiled_java, kp_create_topic,
                      produce_numbered, run_to_end)

RECORDS = 300
JOB_TIMEOUT_S = 120  # about 20 s on an idle machine


@pytest.fixture(scope="module")
def flink_job():
    with compiled_java("flink", "KafkaUppercase.java") as job:
        yield job


@pytest.mark.timeout(180)
@pytest.mark.skipif(JAVA is None, reason="java is not installed")
def test_flink_kafka_source_and_exactly_once_sink(flink_job, broker):
    classpath, work = flink_job
    kp_create_topic(broker.bootstrap, "flink-in", 2)
    kp_create_topic(broker.bootstrap, "flink-out", 2)
    records = produce_numbered(ck_producer(broker.bootstrap), "flink-in", 0, RECORDS)

    run_to_end([JAVA, "-Xmx512m", f"-Djava.io.tmpdir={work}", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-cp", classpath,
                "KafkaUppercase", broker.bootstrap, "flink-in", "flink-out", "gregor-flink"],
               JOB_TIMEOUT_S, os.path.join(work, "job.log"))

    values = [value for _, value in ck_read_topic(broker.bootstrap, "flink-out", 2)]
    assert collections.Counter(values) == collections.Counter(value.upper() for _, value in records)
    # Written in transactions: past the records, the partitions hold their commit markers.
    ends = ck_consumer(broker.bootstrap)
    try:
        end_offsets = [ends.get_watermark_offsets(TopicPartition("flink-out", p), timeout=10)[1] for p in range(2)]
    finally:
        ends.close()
    assert sum(end_offsets) > RECORDS, end_offsets
