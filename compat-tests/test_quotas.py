"""Client quotas: the real ``kafka-configs`` of Apache Kafka 4.1.0 sets and describes them
(AlterClientQuotas / DescribeClientQuotas), they survive a restart, and a producer over its
``producer_byte_rate``, a consumer over its ``consumer_byte_rate`` and a client over its
``request_percentage`` are throttled (KIP-219) without losing a record.

Besides confluent-kafka, the producers of kafka-python 3.0, aiokafka 0.14 and kafkajs 2.2 (its
test_kafkajs.py runner) are held to their ``producer_byte_rate`` here without losing a record,
and ``kafka_network_requestmetrics_throttletime_seconds`` counts the throttles they get; the Java
client's and franz-go's tests of the same (test_java.py, test_franz_go.py, where their runners
are) use this module's helpers. Those run on a broker with short quota windows
(SHORT_QUOTA_WINDOWS), so that a throttle shows within seconds.

The tool's jars come from Maven Central through ``scripts/kafka-tools`` (see
test_kafka_configs.py); without ``java`` the module is skipped (kafka-configs sets every quota).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time

import pytest

from conftest import (CLIENT_TIMEOUT_S, JAVA, ck_consumer, ck_drain, ck_producer, ck_read_topic, free_port,
                      kp_create_topic, kp_producer, npm_ci, start_broker, unique_topic)
from test_kafka_configs import kafka_configs
from test_metrics import scrape, value

pytestmark = pytest.mark.skipif(JAVA is None, reason="java is not installed (kafka-configs sets the quotas)")

RECORDS = 500
RECORD_BYTES = 1000


def record_value(i: int, size: int = RECORD_BYTES) -> bytes:
    """The i-th record of a quota test: its number in six digits, padded with "x" to ``size``."""
    return b"%06d" % i + b"x" * (size - 6)


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
        producer.produce(topic, value=record_value(i),
                         on_delivery=lambda err, _msg: errors.append(err) if err else None)
        producer.poll(0)
    assert producer.flush(58) == 0, "every record is delivered"
    taken = time.monotonic() - started
    time.sleep(0.5)
    producer.poll(0)
    return taken, errors, max(throttles, default=0)


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


# ---------------------------------------------------------------------------
# A producer over its byte rate, client by client
# ---------------------------------------------------------------------------

# Kafka's quota.window.num of 11 judges a new client over at least 10 one-second windows: a
# producer gets 10 s of its rate through before its first throttle. Over 2 windows it gets 1 s of
# it, then throttles hold it to the rate.
SHORT_QUOTA_WINDOWS = ("--quota-window-num", "2", "--quota-window-size-seconds", "1")
# The throttled producers: 250 records of 1000 bytes at 50 KB/s, about 4 s (5 s of the rate, less
# the first second's worth).
THROTTLED_RECORDS = 250
THROTTLED_RATE = 50_000


def least_throttled_s(records: int = THROTTLED_RECORDS, size: int = RECORD_BYTES, rate: int = THROTTLED_RATE) -> float:
    """The least time a producer held to ``rate`` takes for ``records`` of ``size`` bytes, loosely:
    60 % of bytes / rate (the first second's worth goes at once, and a loaded machine only makes
    it slower)."""
    return 0.6 * records * size / rate


@contextlib.contextmanager
def short_window_broker(*extra_args):
    """A broker that measures client quotas over SHORT_QUOTA_WINDOWS, stopped on exit."""
    b = start_broker(extra_args=[*SHORT_QUOTA_WINDOWS, *extra_args])
    try:
        yield b
    finally:
        b.cleanup()


@pytest.fixture(scope="module")
def short_windows():
    with short_window_broker() as b:
        yield b


def limit_producer(tools_classpath, broker, client_id, rate=THROTTLED_RATE):
    """kafka-configs sets ``producer_byte_rate`` of client id ``client_id``."""
    code, _, err = kafka_configs(tools_classpath, broker, "--alter", "--add-config", f"producer_byte_rate={rate}",
                                 "--entity-type", "clients", "--entity-name", client_id)
    assert code == 0, err


def quota_topics(broker, name):
    """Two new topics of one partition: (the throttled producer's, the unthrottled one's)."""
    topics = unique_topic(f"{name}-throttled"), unique_topic(f"{name}-free")
    for topic in topics:
        kp_create_topic(broker.bootstrap, topic, 1)
    return topics


def assert_slowed_down(client, taken, free_taken, least):
    """The throttled producer took at least ``least`` seconds, the same one unthrottled less."""
    print(f"{client}: unthrottled {free_taken:.2f} s, throttled {taken:.2f} s (bound {least:.1f} s)")
    assert free_taken < least, f"{client} took {free_taken:.2f} s unthrottled: the bound proves nothing"
    assert taken >= least, f"{client} took {taken:.2f} s for what its quota lets through in no less than {least:.1f} s"


def assert_all_delivered(bootstrap, topic, count=THROTTLED_RECORDS, size=RECORD_BYTES):
    """``topic`` holds records 0 .. count - 1 (record_value) once each, in order and whole: read
    with confluent-kafka to the partition's end."""
    values = [v for _, v in ck_read_topic(bootstrap, topic, 1)]
    assert [int(v[:6]) for v in values] == list(range(count)), "every record arrived once, in order"
    assert [i for i, v in enumerate(values) if v != record_value(i, size)] == [], "and whole"


def kp_produce_timed(bootstrap, topic, client_id, records=THROTTLED_RECORDS):
    """kafka-python sends ``records`` (record_value) as client ``client_id`` and flushes; returns
    (seconds the sends took, the records' offsets, the largest throttle its connection saw in ms)."""
    producer = kp_producer(bootstrap, client_id=client_id, linger_ms=5)
    try:
        producer.partitions_for(topic)  # metadata first: only the sends are timed
        started = time.monotonic()
        futures = [producer.send(topic, record_value(i)) for i in range(records)]
        producer.flush(timeout=CLIENT_TIMEOUT_S)
        taken = time.monotonic() - started
        offsets = [f.get(timeout=1).offset for f in futures]  # raises a record's delivery error
        return taken, offsets, producer.metrics()["producer-metrics"]["throttle-time-max"]
    finally:
        producer.close(timeout=5)


def test_kafka_python_producer_over_its_byte_rate_slows_down_and_loses_nothing(tools_classpath, short_windows):
    """kafka-python 3.0 over its producer_byte_rate: it pauses the connection for the throttles
    (its throttle-time-max metric), takes at least 60 % of bytes / rate where the same producer
    unthrottled takes less, and every record is delivered once, in order."""
    b = short_windows
    throttled, free = quota_topics(b, "kp-quota")
    limit_producer(tools_classpath, b, "kp-throttled")
    free_taken, _, free_throttle = kp_produce_timed(b.bootstrap, free, "kp-free")
    taken, offsets, throttle = kp_produce_timed(b.bootstrap, throttled, "kp-throttled")
    print(f"kafka-python: largest throttle {throttle} ms")
    assert_slowed_down("kafka-python", taken, free_taken, least_throttled_s())
    assert free_throttle == 0 and throttle > 0, (free_throttle, throttle)
    assert offsets == list(range(THROTTLED_RECORDS)), "every send was acknowledged, in order"
    assert_all_delivered(b.bootstrap, throttled)


def aio_produce_timed(bootstrap, topic, client_id, records=THROTTLED_RECORDS):
    """aiokafka sends ``records`` (record_value) as client ``client_id`` and waits for every
    acknowledgement; returns (seconds the sends took, the records' offsets)."""
    from aiokafka import AIOKafkaProducer

    async def main():
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, client_id=client_id, linger_ms=5,
                                    request_timeout_ms=int(CLIENT_TIMEOUT_S * 1000))
        try:
            await asyncio.wait_for(producer.start(), CLIENT_TIMEOUT_S)
            await producer.partitions_for(topic)  # metadata first: only the sends are timed
            started = time.monotonic()
            sent = [await producer.send(topic, record_value(i)) for i in range(records)]
            acknowledged = await asyncio.gather(*sent)
            return time.monotonic() - started, [r.offset for r in acknowledged]
        finally:
            await asyncio.wait_for(producer.stop(), 10)

    return asyncio.run(asyncio.wait_for(main(), 60))


def test_aiokafka_producer_over_its_byte_rate_slows_down_and_loses_nothing(tools_classpath, short_windows):
    """aiokafka 0.14 over its producer_byte_rate (it does not hold back for a throttle itself: the
    broker's muted connection does): it takes at least 60 % of bytes / rate where the same
    producer unthrottled takes less, and every record is delivered once, in order."""
    b = short_windows
    throttled, free = quota_topics(b, "aio-quota")
    limit_producer(tools_classpath, b, "aio-throttled")
    free_taken, _ = aio_produce_timed(b.bootstrap, free, "aio-free")
    taken, offsets = aio_produce_timed(b.bootstrap, throttled, "aio-throttled")
    assert_slowed_down("aiokafka", taken, free_taken, least_throttled_s())
    assert offsets == list(range(THROTTLED_RECORDS)), "every send was acknowledged, in order"
    assert_all_delivered(b.bootstrap, throttled)


# produce.js's client id, which it does not let a test choose.
KAFKAJS_CLIENT_ID = "gregor-compat-kafkajs-producer"
# produce.js takes its records in one command-line argument, and Linux takes at most 128 KiB in
# one: 200 records of 500 bytes, at 25 KB/s (about 3 s of throttling).
KAFKAJS_RECORDS = 200
KAFKAJS_RECORD_BYTES = 500
KAFKAJS_RATE = 25_000


@pytest.fixture
def kafkajs():
    """test_kafkajs.py (its runner), with kafkajs installed; skips without node. Imported here,
    not at the top, so that this module does not depend on it otherwise."""
    import test_kafkajs

    if test_kafkajs.NODE is None:
        pytest.skip("node is not installed (kafkajs needs Node.js)")
    if test_kafkajs._missing_packages():
        npm_ci(test_kafkajs.KAFKAJS_DIR, "kafkajs")
    return test_kafkajs


def test_kafkajs_producer_over_its_byte_rate_slows_down_and_loses_nothing(tools_classpath, short_windows, kafkajs):
    """kafkajs 2.2 (test_kafkajs.py's produce.js, a send() per record) over its
    producer_byte_rate: it holds back for the throttles, takes at least 60 % of bytes / rate
    where the same producer takes less before the quota is set, and every record is delivered
    once, in order."""
    b = short_windows
    throttled, free = quota_topics(b, "kafkajs-quota")
    messages = [{"value": record_value(i, KAFKAJS_RECORD_BYTES).decode()} for i in range(KAFKAJS_RECORDS)]

    def timed(topic):
        started = time.monotonic()
        placements = kafkajs.produce(b, topic, messages)  # node's start and connect included
        return time.monotonic() - started, placements

    free_taken, _ = timed(free)
    limit_producer(tools_classpath, b, KAFKAJS_CLIENT_ID, KAFKAJS_RATE)
    taken, placements = timed(throttled)
    assert_slowed_down("kafkajs", taken, free_taken,
                       least_throttled_s(KAFKAJS_RECORDS, KAFKAJS_RECORD_BYTES, KAFKAJS_RATE))
    assert placements == [(0, i) for i in range(KAFKAJS_RECORDS)], "every send was acknowledged, in order"
    assert_all_delivered(b.bootstrap, throttled, KAFKAJS_RECORDS, KAFKAJS_RECORD_BYTES)


THROTTLE_TIME = "kafka_network_requestmetrics_throttletime_seconds"


def test_throttle_time_metric_counts_the_throttled_produce_responses(tools_classpath, caplog):
    """The Prometheus histogram kafka_network_requestmetrics_throttletime_seconds has no series
    until a client is throttled; after a kafka-python producer over its producer_byte_rate it has
    one for Produce (and no other API), which counts every throttled response and sums their
    throttles, as kafka-python's warnings of them say."""
    port = free_port()
    with short_window_broker("--metrics-listener", f"127.0.0.1:{port}") as b:
        topic = unique_topic("quota-metered")
        kp_create_topic(b.bootstrap, topic, 1)
        limit_producer(tools_classpath, b, "metered-producer")
        before = scrape(port)
        assert [name for name, _ in before if name.startswith(THROTTLE_TIME)] == [], "no throttle yet"

        # 100 KB at 50 KB/s: the second 50 KB are throttled.
        with caplog.at_level(logging.WARNING, logger="kafka.net.connection"):
            _, offsets, _ = kp_produce_timed(b.bootstrap, topic, "metered-producer", records=100)
        assert offsets == list(range(100))
        seen = [int(m.group(1)) for r in caplog.records
                if (m := re.search(r"Produce\w* throttled by broker \((\d+) ms\)", r.getMessage()))]
        after = scrape(port)

    count = value(after, f"{THROTTLE_TIME}_count", request="Produce")
    print(f"throttled Produce responses: {count:.0f}, kafka-python saw {seen} ms")
    assert count > 0 and count == len(seen), "one observation per throttled response"
    assert value(after, f"{THROTTLE_TIME}_sum", request="Produce") == pytest.approx(sum(seen) / 1000)
    assert value(after, f"{THROTTLE_TIME}_bucket", request="Produce", le="+Inf") == count
    assert {dict(labels).get("request") for name, labels in after if name.startswith(THROTTLE_TIME)} == {"Produce"}
