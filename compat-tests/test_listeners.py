"""Several listeners, Kafka style: ``listeners=PLAINTEXT://127.0.0.1:P,INTERNAL://127.0.0.1:I``
with ``listener.security.protocol.map`` and ``advertised.listeners`` for INTERNAL only. A client
that bootstraps on a listener is told that listener's advertised address (Metadata,
DescribeCluster, FindCoordinator) and then works through it; here INTERNAL advertises
``localhost:I``, which the clients must use after bootstrapping on ``127.0.0.1:I``.
"""

from __future__ import annotations

import pytest

from conftest import (
    ck_admin,
    ck_consumer,
    ck_drain,
    ck_producer,
    free_port,
    kp_admin,
    kp_consumer,
    kp_create_topic,
    kp_drain,
    kp_producer,
    start_broker,
    unique_topic,
)


@pytest.fixture(scope="module")
def two_listeners():
    plain, internal = free_port(), free_port()
    b = start_broker(
        ["--listener-security-protocol-map", "PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT",
         "--advertised-listeners", f"INTERNAL://localhost:{internal}"],
        port=plain, listeners=f"PLAINTEXT://127.0.0.1:{plain},INTERNAL://127.0.0.1:{internal}")
    try:
        yield b, plain, internal
    finally:
        b.cleanup()


def test_kafka_python_is_told_its_listeners_address(two_listeners, closing):
    _, plain, internal = two_listeners
    for bootstrap, told in ((f"127.0.0.1:{plain}", ("127.0.0.1", plain)),
                            (f"127.0.0.1:{internal}", ("localhost", internal))):
        admin = closing(kp_admin(bootstrap))
        brokers = admin.describe_cluster()["brokers"]
        assert [(b["host"], b["port"]) for b in brokers] == [told], bootstrap

    # Produce through INTERNAL (the producer connects to localhost:I), read back through PLAINTEXT.
    topic = unique_topic("listeners-kp")
    kp_create_topic(f"127.0.0.1:{internal}", topic, 1)
    producer = closing(kp_producer(f"127.0.0.1:{internal}"))
    for i in range(10):
        producer.send(topic, f"m{i}".encode())
    producer.flush(timeout=20)
    consumer = closing(kp_consumer(f"127.0.0.1:{plain}", auto_offset_reset="earliest"))
    consumer.subscribe([topic])
    assert [r.value for r in kp_drain(consumer, 10)] == [f"m{i}".encode() for i in range(10)]


def test_confluent_kafka_is_told_its_listeners_address(two_listeners, closing):
    _, plain, internal = two_listeners
    for bootstrap, told in ((f"127.0.0.1:{plain}", ("127.0.0.1", plain)),
                            (f"127.0.0.1:{internal}", ("localhost", internal))):
        metadata = ck_admin(bootstrap).list_topics(timeout=10)
        assert [(b.host, b.port) for b in metadata.brokers.values()] == [told], bootstrap

    # A group member bootstrapped on INTERNAL finds its coordinator at INTERNAL's address.
    topic = unique_topic("listeners-ck")
    kp_create_topic(f"127.0.0.1:{plain}", topic, 1)
    producer = closing(ck_producer(f"127.0.0.1:{internal}"))
    for i in range(10):
        producer.produce(topic, f"m{i}".encode())
    assert producer.flush(20) == 0
    consumer = closing(ck_consumer(f"127.0.0.1:{internal}", **{"group.id": unique_topic("listeners-group"),
                                                               "auto.offset.reset": "earliest"}))
    consumer.subscribe([topic])
    assert [m.value() for m in ck_drain(consumer, 10)] == [f"m{i}".encode() for i in range(10)]
