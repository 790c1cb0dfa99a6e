"""Compacted topics (cleanup.policy=compact) with kafka-python and confluent-kafka.

Keys, updates and tombstones go in; once the broker's cleaner has run, only the latest value of
each key comes out, at the offset it was written at, tombstones gone after delete.retention.ms,
and a consumer placed inside a removed range moves on to the next record. Records without a key
are refused with INVALID_RECORD, and only their partition's append fails.

The broker runs the cleaner every 100 ms (log.cleaner.backoff.ms) so the module takes seconds.
"""

from __future__ import annotations

import time

import pytest
from kafka import TopicPartition

from conftest import (
    CLIENT_TIMEOUT_S,
    ck_consumer,
    ck_producer,
    kp_consumer,
    kp_create_topic,
    kp_producer,
    start_broker,
    unique_topic,
)

COMPACTED = {
    "cleanup.policy": "compact",
    "min.cleanable.dirty.ratio": "0.01",
    "delete.retention.ms": "500",
}


@pytest.fixture(scope="module")
def broker():
    b = start_broker(["--log-cleaner-backoff-ms", "100"])
    try:
        yield b
    finally:
        b.cleanup()


def kp_read_all(bootstrap, closing, topic, start=0):
    """(offset, key, value) of every record of partition 0 from ``start`` to the end."""
    consumer = closing(kp_consumer(bootstrap))
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    end = consumer.end_offsets([tp])[tp]
    consumer.seek(tp, start)
    out = []
    deadline = time.monotonic() + CLIENT_TIMEOUT_S
    while consumer.position(tp) < end and time.monotonic() < deadline:
        for recs in consumer.poll(timeout_ms=500).values():
            out.extend((r.offset, r.key, r.value) for r in recs)
    consumer.close()
    return out


def wait_for(read, expected, what):
    """Reads until ``read()`` equals ``expected`` (the cleaner runs in the background)."""
    deadline = time.monotonic() + CLIENT_TIMEOUT_S
    seen = read()
    while seen != expected and time.monotonic() < deadline:
        time.sleep(0.2)
        seen = read()
    assert seen == expected, f"{what}: got {seen}"


def test_kafka_python_sees_only_the_latest_value_of_each_key(broker, closing):
    topic = unique_topic("compact-kp")
    kp_create_topic(broker.bootstrap, topic, 1, topic_configs=COMPACTED)
    producer = closing(kp_producer(broker.bootstrap, compression_type="gzip", linger_ms=0))
    latest = {}
    for round_ in range(4):
        for k in range(6):
            key = f"k{k}".encode()
            value = f"v{round_}".encode()
            latest[key] = (producer.send(topic, key=key, value=value).get(timeout=CLIENT_TIMEOUT_S).offset, value)
    # Tombstones for two keys, then one more record that stays the uncleaned head.
    for key in (b"k0", b"k1"):
        latest[key] = (producer.send(topic, key=key, value=None).get(timeout=CLIENT_TIMEOUT_S).offset, None)
    head = producer.send(topic, key=b"head", value=b"h").get(timeout=CLIENT_TIMEOUT_S).offset
    survivors = sorted((off, key, value) for key, (off, value) in latest.items() if value is not None)
    wait_for(lambda: kp_read_all(broker.bootstrap, closing, topic), survivors + [(head, b"head", b"h")],
             "after compaction and delete.retention.ms")
    # A consumer placed on a removed offset gets the next record that is still there.
    removed = 3
    assert all(off != removed for off, _, _ in survivors)
    first_after = min(off for off, _, _ in survivors if off > removed)
    assert kp_read_all(broker.bootstrap, closing, topic, start=removed)[0][0] == first_after


def test_kafka_python_keyless_record_is_refused_and_the_rest_of_the_request_is_not(broker, closing):
    from kafka.errors import InvalidRecordError

    compacted, plain = unique_topic("compact-keyless"), unique_topic("plain")
    kp_create_topic(broker.bootstrap, compacted, 1, topic_configs=COMPACTED)
    kp_create_topic(broker.bootstrap, plain, 1)
    # linger puts both records in one Produce request.
    producer = closing(kp_producer(broker.bootstrap, linger_ms=200))
    refused = producer.send(compacted, value=b"no key")
    accepted = producer.send(plain, value=b"fine")
    with pytest.raises(InvalidRecordError):
        refused.get(timeout=CLIENT_TIMEOUT_S)
    assert accepted.get(timeout=CLIENT_TIMEOUT_S).offset == 0
    # kafka-python aborts a producer after INVALID_RECORD; a new one writes keyed records.
    producer = closing(kp_producer(broker.bootstrap))
    assert producer.send(compacted, key=b"k", value=b"keyed").get(timeout=CLIENT_TIMEOUT_S).offset == 0


def test_confluent_kafka_compaction_and_keyless_refusal(broker, closing):
    from confluent_kafka import KafkaError, TopicPartition as CkTopicPartition

    topic = unique_topic("compact-ck")
    kp_create_topic(broker.bootstrap, topic, 1, topic_configs=COMPACTED)
    producer = closing(ck_producer(broker.bootstrap, **{"compression.type": "zstd", "linger.ms": 0}))
    delivered = {}

    def record(err, msg):
        delivered[(msg.key(), msg.value())] = err if err else msg.offset()

    for round_ in range(3):
        for k in range(4):
            producer.produce(topic, key=f"k{k}".encode(), value=f"v{round_}".encode(), on_delivery=record)
        producer.flush(CLIENT_TIMEOUT_S)
    # The tombstone in a batch of its own: the last batch (the head) is never cleaned.
    producer.produce(topic, key=b"k0", value=None, on_delivery=record)
    producer.flush(CLIENT_TIMEOUT_S)
    producer.produce(topic, key=b"head", value=b"h", on_delivery=record)
    producer.flush(CLIENT_TIMEOUT_S)
    # Alone in its batch: a refused record takes its whole batch with it, as in Kafka.
    producer.produce(topic, value=b"no key", on_delivery=record)
    producer.flush(CLIENT_TIMEOUT_S)
    error = delivered[(None, b"no key")]
    assert isinstance(error, KafkaError) and error.code() == KafkaError.INVALID_RECORD, error
    expected = sorted(
        [(delivered[(f"k{k}".encode(), b"v2")], f"k{k}".encode(), b"v2") for k in range(1, 4)]
        + [(delivered[(b"head", b"h")], b"head", b"h")]
    )

    def read():
        consumer = closing(ck_consumer(broker.bootstrap, **{"enable.partition.eof": True}))
        consumer.assign([CkTopicPartition(topic, 0, 0)])
        out = []
        deadline = time.monotonic() + CLIENT_TIMEOUT_S
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    break
                raise AssertionError(msg.error())
            out.append((msg.offset(), msg.key(), msg.value()))
        consumer.close()
        return out

    wait_for(read, expected, "after compaction and delete.retention.ms")
