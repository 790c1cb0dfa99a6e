"""Apache Storm 2.8.3 (from Maven Central: compat-tests/storm/pom.xml) against Gregor: a topology
in a LocalCluster reads a two-partition topic with the KafkaSpout (storm-kafka-client,
at-least-once, offsets of acked tuples committed to its consumer group), upper-cases each value
in a bolt and writes key and value to another topic with the KafkaBolt. Input given before and
while it runs comes out exactly once, and the spout's group commits the end of the input."""

from __future__ import annotations

import collections
import os
import subprocess

import pytest
from confluent_kafka import TopicPartition

from conftest import (CLIENT_TIMEOUT_S, JAVA, _die_with_parent, ck_consumer, ck_producer, ck_read_topic,
                      compiled_java, kp_create_topic, produce_numbered, stop_process_group, stop_through_stdin,
                      tail, wait_until)

GROUP = "gregor-storm"


@pytest.fixture(scope="module")
def storm_topology():
    with compiled_java("storm", "KafkaUppercaseTopology.java") as topology:
        yield topology


def committed(bootstrap):
    consumer = ck_consumer(bootstrap, **{"group.id": GROUP})
    try:
        return [tp.offset for tp in consumer.committed([TopicPartition("storm-in", p) for p in range(2)], timeout=10)]
    finally:
        consumer.close()


@pytest.mark.timeout(180)
@pytest.mark.skipif(JAVA is None, reason="java is not installed")
def test_storm_kafka_spout_and_bolt(storm_topology, broker):
    classpath, work = storm_topology
    kp_create_topic(broker.bootstrap, "storm-in", 2)
    kp_create_topic(broker.bootstrap, "storm-out", 2)
    producer = ck_producer(broker.bootstrap)
    expected = collections.Counter()

    def feed_and_wait(first, count):
        expected.update((key, value.upper()) for key, value in produce_numbered(producer, "storm-in", first, count))
        wait_until(lambda: output() == expected, timeout=3 * CLIENT_TIMEOUT_S, interval=1,
                   message=lambda: f"every input upper-cased once, read {sum(output().values())}\n{tail(log_path)}")

    def output():
        return collections.Counter(ck_read_topic(broker.bootstrap, "storm-out", 2))

    log_path = os.path.join(work, "topology.log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([JAVA, "-Xmx512m", f"-Djava.io.tmpdir={work}", "-cp", classpath, "KafkaUppercaseTopology", broker.bootstrap,
                                 "storm-in", "storm-out", GROUP],
                                stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True, preexec_fn=_die_with_parent)
    try:
        feed_and_wait(0, 100)  # while the topology starts
        feed_and_wait(100, 50)  # while it runs
        wait_until(lambda: committed(broker.bootstrap) == [75, 75], timeout=CLIENT_TIMEOUT_S, interval=0.5,
                   message=lambda: f"the spout's group to commit [75, 75], read {committed(broker.bootstrap)}")
        stop_through_stdin(proc, 30, lambda: tail(log_path))
        assert proc.returncode == 0, tail(log_path)
    finally:
        stop_process_group(proc)
    assert output() == expected
