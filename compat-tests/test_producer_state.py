"""Idempotent producer state expiry (``producer.id.expiration.ms``) with real clients.

The broker of this module forgets a producer's state on a partition once the producer's last
batch is 1.5 s old (checked every 100 ms). As with Kafka, the same idempotent producer then
goes on producing with its next sequence numbers: no error, no new producer id or epoch (a
broker that answered UNKNOWN_PRODUCER_ID would make the client bump or reset them), nothing
written twice, offsets contiguous. The broker's debug log names the producers it forgets, so
each test knows its producer's state really expired between its two rounds of sends.
"""

import json
import os
import re

import pytest

from conftest import (
    CLIENT_TIMEOUT_S,
    ck_consumer,
    ck_drain,
    ck_producer,
    kp_consumer,
    kp_create_topic,
    kp_drain,
    kp_producer,
    start_broker,
    wait_until,
)

EXPIRATION_MS = 1500
CHECK_INTERVAL_MS = 100
RECORDS = 50  # per round; two rounds per test


@pytest.fixture(scope="module")
def broker():
    saved = os.environ.get("RUST_LOG")
    os.environ["RUST_LOG"] = "info,gregor=debug"  # the "forgot idle producers [..]" lines
    try:
        b = start_broker(["--producer-id-expiration-ms", str(EXPIRATION_MS),
                          "--producer-id-expiration-check-interval-ms", str(CHECK_INTERVAL_MS)])
    finally:
        if saved is None:
            os.environ.pop("RUST_LOG")
        else:
            os.environ["RUST_LOG"] = saved
    try:
        yield b
    finally:
        b.cleanup()


def forgotten(broker) -> set:
    """The producer ids the broker has forgotten so far (from its log)."""
    with open(broker.log_path, errors="replace") as log:
        lists = re.findall(r"forgot idle producers \[([\d, ]+)\]", log.read())
    return {int(pid) for ids in lists for pid in ids.split(",")}


def wait_for_expiry(broker, producer_id: int, serve=lambda: None):
    """Wait until the broker forgot ``producer_id``, calling ``serve`` meanwhile."""
    def expired():
        serve()
        return producer_id in forgotten(broker)
    wait_until(expired, timeout=EXPIRATION_MS / 1000 + 10, message=f"the broker to forget producer {producer_id}")


def values(prefix):
    return [f"{prefix}-{i}".encode() for i in range(RECORDS)]


def test_kafka_python_producer_keeps_going_after_its_state_expired(broker, closing, topic):
    kp_create_topic(broker.bootstrap, topic, 1)
    producer = closing(kp_producer(broker.bootstrap))
    assert producer.config["enable_idempotence"] is True

    def send_round(prefix):
        futures = [producer.send(topic, v, partition=0) for v in values(prefix)]
        return [f.get(timeout=CLIENT_TIMEOUT_S).offset for f in futures]

    offsets = send_round("before")
    identity = producer._transaction_manager.producer_id_and_epoch
    assert identity.producer_id not in forgotten(broker)
    wait_for_expiry(broker, identity.producer_id)
    offsets += send_round("after")

    assert offsets == list(range(2 * RECORDS))
    assert producer._transaction_manager.producer_id_and_epoch == identity, (
        "the producer had to reset or bump its id/epoch")
    consumer = closing(kp_consumer(broker.bootstrap))
    from kafka import TopicPartition
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    records = kp_drain(consumer, 2 * RECORDS)
    assert [r.value for r in records] == values("before") + values("after")
    assert consumer.end_offsets([tp], timeout_ms=10000) == {tp: 2 * RECORDS}, "duplicates were written"


def test_confluent_kafka_producer_keeps_going_after_its_state_expired(broker, closing, topic):
    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    kp_create_topic(broker.bootstrap, topic, 1)
    errors, eos = [], {}
    producer = closing(ck_producer(broker.bootstrap, **{
        "enable.idempotence": True, "linger.ms": 5, "statistics.interval.ms": 100,
        "error_cb": errors.append,
        "stats_cb": lambda stats: eos.update(json.loads(stats).get("eos", {})),
    }))
    reports = []

    def send_round(prefix):
        for v in values(prefix):
            producer.produce(topic, v, partition=0, on_delivery=lambda err, msg: reports.append((err, msg.offset())))
        assert producer.flush(CLIENT_TIMEOUT_S) == 0

    def identity():
        """(producer id, epoch, id assignments so far) from a fresh statistics callback."""
        eos.clear()

        def fresh():
            producer.poll(0.05)
            return eos
        wait_until(fresh, timeout=5, message="librdkafka's statistics")
        return eos["producer_id"], eos["producer_epoch"], eos["epoch_cnt"]

    send_round("before")
    assigned = identity()
    assert assigned[0] not in forgotten(broker)
    # Serve librdkafka's callbacks meanwhile: errors and state changes come through them.
    wait_for_expiry(broker, assigned[0], serve=lambda: producer.poll(0.05))
    send_round("after")

    assert [err for err, _ in reports if err is not None] == []
    assert [offset for _, offset in reports] == list(range(2 * RECORDS))
    assert errors == []
    assert identity() == assigned, "the producer had to reset or bump its id/epoch"
    consumer = closing(ck_consumer(broker.bootstrap))
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    msgs = ck_drain(consumer, 2 * RECORDS)
    assert [m.value() for m in msgs] == values("before") + values("after")
    assert consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (0, 2 * RECORDS)
