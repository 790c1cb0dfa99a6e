"""Incremental fetch sessions (KIP-227) and the broker's fetch.max.bytes with real consumers
of many partitions.

Each test starts its own broker with the fetch-session debug log on (``FETCH_SESSION_DEBUG``),
so what the log says about sessions is that test's clients' doing. kafka-python 3.0 opens a
session by default (``enable_incremental_fetch_sessions``) and is also run without one;
librdkafka 2.16 (confluent-kafka) does not implement KIP-227: it sends every fetch in full
with the FINAL epoch, which must keep working. The Java client's session test is in
test_java.py, next to its JVM harness.
"""

import pytest
from confluent_kafka import TopicPartition as CkTopicPartition
from kafka import TopicPartition

from conftest import (
    FETCH_SESSION_DEBUG,
    FetchSessionLog,
    ck_consumer,
    ck_drain,
    kp_consumer,
    kp_create_topic,
    kp_drain,
    kp_produce_to_partitions,
    start_broker,
    unique_topic,
)

PARTITIONS = 24

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def logged_broker():
    b = start_broker(env=FETCH_SESSION_DEBUG)
    try:
        yield b
    finally:
        b.cleanup()


def kp_values(records):
    return sorted(r.value for r in records)


def test_kafka_python_reads_every_partition_through_one_incremental_session(logged_broker, closing):
    b = logged_broker
    topic = unique_topic("kp-session")
    kp_create_topic(b.bootstrap, topic, PARTITIONS)
    first = kp_produce_to_partitions(b.bootstrap, topic, range(PARTITIONS), 3, "a")
    consumer = closing(kp_consumer(b.bootstrap, auto_offset_reset="earliest"))
    assert consumer.config["enable_incremental_fetch_sessions"], "kafka-python's default"
    consumer.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])
    assert kp_values(kp_drain(consumer, len(first))) == sorted(first)

    # Caught up, the consumer's fetches are incremental and answered with no partition.
    extra = []
    session = FetchSessionLog.wait_for_idle_session(
        b, PARTITIONS, poll=lambda: extra.extend(consumer.poll(timeout_ms=200).values()))
    assert extra == []
    # News in three partitions: the next answers carry only those.
    second = kp_produce_to_partitions(b.bootstrap, topic, [3, 11, 20], 4, "b")
    assert kp_values(kp_drain(consumer, len(second))) == sorted(second)
    log = FetchSessionLog(b)
    log.assert_used(session, PARTITIONS)
    assert log.naming[session] == "name", "kafka-python 3.0 fetches with v12 at most"
    for p in range(PARTITIONS):
        assert consumer.position(TopicPartition(topic, p)) == (7 if p in (3, 11, 20) else 3)


def test_kafka_python_without_sessions_gets_full_answers(logged_broker, closing):
    b = logged_broker
    topic = unique_topic("kp-full")
    kp_create_topic(b.bootstrap, topic, PARTITIONS)
    first = kp_produce_to_partitions(b.bootstrap, topic, range(PARTITIONS), 2, "a")
    consumer = closing(kp_consumer(b.bootstrap, auto_offset_reset="earliest",
                                   enable_incremental_fetch_sessions=False))
    consumer.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])
    assert kp_values(kp_drain(consumer, len(first))) == sorted(first)
    second = kp_produce_to_partitions(b.bootstrap, topic, [0, 23], 5, "b")
    assert kp_values(kp_drain(consumer, len(second))) == sorted(second)
    log = FetchSessionLog(b)
    assert (log.created, dict(log.incremental)) == ({}, {}), "no session was asked for"


def test_librdkafka_fetches_in_full_without_a_session(logged_broker, closing):
    b = logged_broker
    topic = unique_topic("ck-full")
    kp_create_topic(b.bootstrap, topic, PARTITIONS)
    first = kp_produce_to_partitions(b.bootstrap, topic, range(PARTITIONS), 3, "a")
    consumer = closing(ck_consumer(b.bootstrap))
    consumer.assign([CkTopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    assert sorted(m.value() for m in ck_drain(consumer, len(first))) == sorted(first)
    second = kp_produce_to_partitions(b.bootstrap, topic, [5, 6], 10, "b")
    assert sorted(m.value() for m in ck_drain(consumer, len(second))) == sorted(second)
    log = FetchSessionLog(b)
    # librdkafka 2.16 sends session id 0 with the FINAL epoch: KIP-227 is not in it.
    assert (log.created, dict(log.incremental)) == ({}, {})


def test_broker_fetch_max_bytes_caps_responses_whatever_the_client_asks(closing):
    """With fetch.max.bytes at its minimum (1 KiB), no response holds more than 1 KiB of
    these small batches although the client allows 50 MB (kafka-python's fetch-size-max
    metric: record bytes per response); the consumer, in its session, still gets all."""
    b = start_broker(["--fetch-max-bytes", "1024"])
    try:
        topic = unique_topic("kp-capped")
        kp_create_topic(b.bootstrap, topic, PARTITIONS)
        sent = []
        for wave in range(4):
            sent += kp_produce_to_partitions(b.bootstrap, topic, range(PARTITIONS), 2, f"w{wave}", padding=200)
        consumer = closing(kp_consumer(b.bootstrap, auto_offset_reset="earliest"))
        assert consumer.config["fetch_max_bytes"] > 50_000_000
        consumer.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])
        assert kp_values(kp_drain(consumer, len(sent), timeout=60)) == sorted(sent)
        fetched = consumer.metrics()["consumer-fetch-manager-metrics"]
        assert 0 < fetched["fetch-size-max"] <= 1024, fetched
    finally:
        b.cleanup()
