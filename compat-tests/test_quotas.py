"""Client quotas: the real ``kafka-configs`` of Apache Kafka 4.1.0 sets and describes them
(AlterClientQuotas / DescribeClientQuotas), they survive a restart, and a producer over its
``producer_byte_rate``, a consumer over its ``consumer_byte_rate`` and a client over its
``request_percentage`` are throttled (KIP-219) without losing a record.

The tool's jars come from Maven Central through ``scripts/kafka-tools`` (see
test_kafka_configs.py); without ``java`` the CLI test is skipped.
"""

from __future__ import annotations

import json
import time

import pytest

from conftest import JAVA, ck_consumer, ck_drain, ck_producer, kp_create_topic, unique_topic
from test_kafka_configs import kafka_configs

RECORDS = 500
RECORD_BYTES = 1000


@pytest.mark.skipif(JAVA is None, reason="java is not installed")
def test_kafka_configs_sets_describes_and_keeps_client_quotas(tools_classpath, broker):
    b = broker

    def configs(*args):
        code, out, err = kafka_configs(tools_classpath, b, *args)
        assert code == 0, err
        return out.strip()

    assert configs("--alter", "--add-config", "producer_byte_rate=1024,consumer_byte_rate=2048",
                   "--entity-type", "clients", "--entity-name", "quota-app") == "Completed updating config for client quota-app."
    assert configs("--alter", "--add-config", "request_percentage=50", "--entity-type", "users",
                   "--entity-default") == "Completed updating default config for users in the cluster."
    assert configs("--alter", "--add-config", "producer_byte_rate=4096", "--entity-type", "users", "--entity-name", "alice",
                   "--entity-type", "clients", "--entity-default") == "Completed updating config for user alice."
    # validate_only is not offered by the tool; an invalid value is refused as Kafka refuses it.
    code, _, err = kafka_configs(tools_classpath, b, "--alter", "--add-config", "producer_byte_rate=1.5",
                                 "--entity-type", "clients", "--entity-name", "quota-app")
    assert code != 0 and "InvalidRequestException: Configuration producer_byte_rate must be a Long value" in err, err

    def described():
        return {
            "client": configs("--describe", "--entity-type", "clients", "--entity-name", "quota-app"),
            "clients": configs("--describe", "--entity-type", "clients"),
            "users": configs("--describe", "--entity-type", "users"),
            "alice": configs("--describe", "--entity-type", "users", "--entity-name", "alice", "--entity-type", "clients"),
        }

    expected = {
        "client": "Quota configs for client-id 'quota-app' are consumer_byte_rate=2048.0, producer_byte_rate=1024.0",
        "clients": "Quota configs for client-id 'quota-app' are consumer_byte_rate=2048.0, producer_byte_rate=1024.0",
        "users": "Quota configs for the default user-principal are request_percentage=50.0",
        "alice": "Quota configs for user-principal 'alice', the default client-id are producer_byte_rate=4096.0",
    }
    assert described() == expected

    b.restart()
    assert described() == expected, "quotas are metadata: they survive a restart"

    assert configs("--alter", "--delete-config", "consumer_byte_rate", "--entity-type", "clients",
                   "--entity-name", "quota-app") == "Completed updating config for client quota-app."
    assert configs("--describe", "--entity-type", "clients", "--entity-name", "quota-app") == \
        "Quota configs for client-id 'quota-app' are producer_byte_rate=1024.0"


def throttle_stats():
    """A list of the largest throttle (ms) each broker's statistics reported, and the
    librdkafka ``stats_cb`` that fills it."""
    throttles = []

    def stats(raw):
        for broker in json.loads(raw).get("brokers", {}).values():
            throttles.append(broker.get("throttle", {}).get("max", 0))

    return throttles, stats


def produce_all(bootstrap, topic, client_id):
    """Produces RECORDS records of RECORD_BYTES one request at a time; returns (seconds taken,
    delivery errors, the largest throttle librdkafka's statistics saw in ms)."""
    throttles, stats = throttle_stats()

    # One request in flight, and timeouts above the throttles it may wait out in the muted
    # connection's socket.
    producer = ck_producer(bootstrap, **{"client.id": client_id, "batch.size": 16384, "linger.ms": 5,
                                         "max.in.flight.requests.per.connection": 1, "socket.timeout.ms": 45000,
                                         "message.timeout.ms": 55000, "statistics.interval.ms": 200, "stats_cb": stats})
    errors = []
    started = time.monotonic()
    for i in range(RECORDS):
        producer.produce(topic, value=b"%06d" % i + b"x" * (RECORD_BYTES - 6),
                         on_delivery=lambda err, _msg: errors.append(err) if err else None)
        producer.poll(0)
    assert producer.flush(58) == 0, "every record is delivered"
    taken = time.monotonic() - started
    time.sleep(0.5)
    producer.poll(0)
    return taken, errors, max(throttles, default=0)


@pytest.mark.skipif(JAVA is None, reason="java is not installed")
@pytest.mark.timeout(120)
def test_a_producer_over_its_byte_rate_is_throttled_and_loses_nothing(tools_classpath, broker):
    b = broker
    throttled, free = unique_topic("quota-throttled"), unique_topic("quota-free")
    kp_create_topic(b.bootstrap, throttled, 1)
    kp_create_topic(b.bootstrap, free, 1)
    code, _, err = kafka_configs(tools_classpath, b, "--alter", "--add-config", "producer_byte_rate=25000",
                                 "--entity-type", "clients", "--entity-name", "throttled-producer")
    assert code == 0, err

    free_taken, free_errors, free_throttle = produce_all(b.bootstrap, free, "free-producer")
    assert not free_errors and free_throttle == 0
    # 500 KB at 25 KB/s: the first 10 s worth (250 KB) goes at once, the rest takes ~10 s.
    taken, errors, throttle = produce_all(b.bootstrap, throttled, "throttled-producer")
    assert not errors, errors
    print(f"unthrottled {free_taken:.1f} s, throttled {taken:.1f} s, max throttle_time_ms seen {throttle}")
    assert taken >= 5 and taken > free_taken + 4, (taken, free_taken)
    assert throttle > 0, "librdkafka saw the throttle_time_ms of the responses"

    consumer = ck_consumer(b.bootstrap)
    try:
        from confluent_kafka import TopicPartition
        consumer.assign([TopicPartition(throttled, 0, 0)])
        values = [m.value() for m in ck_drain(consumer, RECORDS)]
    finally:
        consumer.close()
    assert [int(v[:6]) for v in values] == list(range(RECORDS)), "every record arrived once, in order"


def consume_all(bootstrap, topic, client_id, count):
    """Reads ``count`` records of ``topic`` from the start; returns (seconds taken, values, the
    largest throttle librdkafka's statistics saw in ms)."""
    from confluent_kafka import TopicPartition
    throttles, stats = throttle_stats()

    consumer = ck_consumer(bootstrap, **{"client.id": client_id, "statistics.interval.ms": 200, "stats_cb": stats,
                                         "max.partition.fetch.bytes": 65536})
    try:
        started = time.monotonic()
        consumer.assign([TopicPartition(topic, 0, 0)])
        values = [m.value() for m in ck_drain(consumer, count, timeout=60)]
        taken = time.monotonic() - started
        time.sleep(0.5)
        consumer.poll(0)
    finally:
        consumer.close()
    return taken, values, max(throttles, default=0)


@pytest.mark.skipif(JAVA is None, reason="java is not installed")
@pytest.mark.timeout(150)
def test_a_consumer_over_its_byte_rate_and_a_client_over_its_request_percentage_are_throttled(tools_classpath, broker):
    b = broker
    topic = unique_topic("quota-consumed")
    kp_create_topic(b.bootstrap, topic, 1)
    taken, errors, _ = produce_all(b.bootstrap, topic, "quota-feeder")
    assert not errors, errors
    # The client's own request quota must come before the default user's, which the test above
    # may have set: /users/<default>/clients/<id> does (Kafka's precedence).
    for config, entity in (("consumer_byte_rate=25000", ["--entity-type", "clients", "--entity-name", "throttled-consumer"]),
                           ("request_percentage=0.001", ["--entity-type", "users", "--entity-default",
                                                         "--entity-type", "clients", "--entity-name", "busy-client"])):
        code, _, err = kafka_configs(tools_classpath, b, "--alter", "--add-config", config, *entity)
        assert code == 0, err

    free_taken, values, free_throttle = consume_all(b.bootstrap, topic, "free-consumer", RECORDS)
    assert len(values) == RECORDS and free_throttle == 0
    # 500 KB at 25 KB/s, as the producer above: the rest after the first 10 s worth takes ~10 s.
    taken, values, throttle = consume_all(b.bootstrap, topic, "throttled-consumer", RECORDS)
    print(f"consumer: unthrottled {free_taken:.1f} s, throttled {taken:.1f} s, max throttle_time_ms seen {throttle}")
    assert [int(v[:6]) for v in values] == list(range(RECORDS)), "every record arrived once, in order"
    assert taken >= 5 and taken > free_taken + 4, (taken, free_taken)
    assert throttle > 0, "librdkafka saw the throttle_time_ms of the fetch responses"

    # A thousandth of a percent of a thread (10 µs of handling a second) is soon used up: one
    # record at a time until librdkafka reports a throttle.
    (throttles, stats), errors = throttle_stats(), []

    producer = ck_producer(b.bootstrap, **{"client.id": "busy-client", "linger.ms": 0, "statistics.interval.ms": 100,
                                           "stats_cb": stats, "socket.timeout.ms": 45000, "message.timeout.ms": 55000})
    sent, deadline = 0, time.monotonic() + 30
    while time.monotonic() < deadline and max(throttles, default=0) == 0:
        producer.produce(topic, value=b"busy", on_delivery=lambda err, _msg: errors.append(err) if err else None)
        sent += 1
        assert producer.flush(30) == 0, "each record is delivered"
        producer.poll(0.01)  # statistics
    print(f"request_percentage: throttled after {sent} requests, max throttle_time_ms seen {max(throttles, default=0)}")
    assert not errors, errors
    assert max(throttles, default=0) > 0, "the responses carried the request quota's throttle"
