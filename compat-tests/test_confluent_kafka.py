"""confluent-kafka (librdkafka) against a real Gregor broker.

Consumers use manual assignment only: librdkafka insists on a group.id, so one
is set, but no test subscribes or commits (enable.auto.commit=false).
Every wait is bounded: flush(timeout), consume(timeout) in a bounded loop,
futures' result(timeout), and the metadata/offset calls take timeouts.
"""

import logging
import time
from collections import defaultdict

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    TIMESTAMP_CREATE_TIME,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import (
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
    ResourceType,
)

from conftest import (
    CLIENT_TIMEOUT_S,
    NODE_ID,
    assert_contiguous_offsets,
    ck_admin,
    ck_consumer,
    ck_drain,
    ck_producer,
    unique_topic,
    wait_until,
)

T = 10.0  # seconds, for metadata/offset look-ups


def _create_topic(bootstrap, name, partitions):
    admin = ck_admin(bootstrap)
    futures = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)],
                                  operation_timeout=T, request_timeout=T)
    futures[name].result(timeout=CLIENT_TIMEOUT_S)
    wait_until(lambda: _partition_count(admin, name) == partitions, timeout=T,
               message=f"{name} to show {partitions} partitions in metadata")


def _partition_count(admin_or_client, name):
    md = admin_or_client.list_topics(topic=name, timeout=T).topics.get(name)
    if md is None or md.error is not None:
        return None
    return len(md.partitions)


def _produce_all(producer, topic, items):
    """Produce ``items`` (dicts of produce() kwargs) and return delivery reports in order.

    Tests that auto-create their topic name partition 0 explicitly, so they hold
    whatever the broker's default partition count is.

    Each report is (err, partition, offset, key, value), filled by the delivery callback.
    """
    reports = [None] * len(items)

    def on_delivery(idx):
        def cb(err, msg):
            reports[idx] = (err, msg.partition(), msg.offset(), msg.key(), msg.value())
        return cb

    for idx, item in enumerate(items):
        while True:
            try:
                producer.produce(topic, on_delivery=on_delivery(idx), **item)
                break
            except BufferError:  # local queue full: serve callbacks, then retry
                producer.poll(0.1)
    remaining = producer.flush(CLIENT_TIMEOUT_S)
    assert remaining == 0, f"{remaining} messages still undelivered after flush"
    errors = [r[0] for r in reports if r is None or r[0] is not None]
    assert not errors, f"delivery errors: {errors[:5]}"
    return reports


def _assert_contiguous(reports, start=0):
    return assert_contiguous_offsets(((r[1], r[2]) for r in reports), start)


def _consume(bootstrap, closing, assignments, expected, **cfg):
    consumer = closing(ck_consumer(bootstrap, **cfg))
    consumer.assign(assignments)
    msgs = ck_drain(consumer, expected)
    assert len(msgs) == expected, f"consumed {len(msgs)} of {expected}"
    return consumer, msgs


def test_delivery_callbacks_give_contiguous_offsets(broker, closing, topic):
    _create_topic(broker.bootstrap, topic, 3)
    producer = closing(ck_producer(broker.bootstrap))
    items = [dict(value=f"v{i}".encode(), partition=i % 3) for i in range(90)]
    reports = _produce_all(producer, topic, items)
    by_partition = _assert_contiguous(reports)
    assert {p: len(o) for p, o in by_partition.items()} == {0: 30, 1: 30, 2: 30}
    assert [r[4] for r in reports] == [i["value"] for i in items]

    _, msgs = _consume(broker.bootstrap, closing,
                       [TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(3)], 90)
    got = {(m.partition(), m.offset()): m.value() for m in msgs}
    for item, r in zip(items, reports):
        assert got[(r[1], r[2])] == item["value"]


def test_key_to_partition_is_stable(broker, closing, topic):
    _create_topic(broker.bootstrap, topic, 6)
    keys = [f"user-{i}".encode() for i in range(24)]
    placements = defaultdict(set)
    for _instance in range(2):
        producer = closing(ck_producer(broker.bootstrap))
        reports = _produce_all(producer, topic, [dict(key=k, value=k) for k in keys * 3])
        for _err, partition, _offset, key, _value in reports:
            placements[key].add(partition)
    assert all(len(p) == 1 for p in placements.values()), placements
    assert len({next(iter(p)) for p in placements.values()}) > 1

    _, msgs = _consume(broker.bootstrap, closing,
                       [TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(6)], len(keys) * 6)
    for m in msgs:
        assert {m.partition()} == placements[m.key()]
        assert m.value() == m.key()


def test_headers_roundtrip(broker, closing, topic):
    cases = [
        [("content-encoding", b"base64")],
        [("a", b"1"), ("b", b"2"), ("a", b"3")],
        [("empty", b""), ("binary", bytes(range(256)))],
        [("null-value", None)],
    ]
    producer = closing(ck_producer(broker.bootstrap))
    _produce_all(producer, topic, [dict(value=f"m{i}".encode(), headers=h, partition=0)
                                   for i, h in enumerate(cases)]
                 + [dict(value=b"no-headers", partition=0)])
    _, msgs = _consume(broker.bootstrap, closing, [TopicPartition(topic, 0, OFFSET_BEGINNING)],
                       len(cases) + 1)
    assert [m.headers() for m in msgs[:-1]] == cases
    assert msgs[-1].headers() is None
    assert msgs[-1].value() == b"no-headers"


@pytest.mark.parametrize("compression", ["gzip", "snappy", "lz4", "zstd"])
def test_compression_roundtrip(broker, closing, compression):
    topic = unique_topic(f"ck-{compression}")
    _create_topic(broker.bootstrap, topic, 2)
    producer = closing(ck_producer(broker.bootstrap,
                                   **{"compression.type": compression, "linger.ms": 50}))
    items = [dict(key=f"key-{i % 10}".encode(),
                  value=(f"{compression} record {i} " * (1 + i % 20)).encode(),
                  headers=[("i", str(i).encode())],
                  partition=i % 2) for i in range(300)]
    reports = _produce_all(producer, topic, items)
    _assert_contiguous(reports)

    _, msgs = _consume(broker.bootstrap, closing,
                       [TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(2)], 300)
    got = {(m.partition(), m.offset()): (m.key(), m.value(), m.headers()) for m in msgs}
    for item, r in zip(items, reports):
        assert got[(r[1], r[2])] == (item["key"], item["value"], item["headers"])

    # Start in the middle of a compressed batch.
    _, tail_msgs = _consume(broker.bootstrap, closing, [TopicPartition(topic, 0, 77)], 150 - 77)
    assert [m.offset() for m in tail_msgs] == list(range(77, 150))


def test_idempotent_producer(broker, closing, topic):
    producer = closing(ck_producer(broker.bootstrap, **{"enable.idempotence": True, "linger.ms": 5}))
    reports = _produce_all(producer, topic, [dict(value=f"idem-{i}".encode(), partition=0)
                                                   for i in range(500)])
    assert [r[2] for r in reports] == list(range(500))

    consumer, msgs = _consume(broker.bootstrap, closing,
                              [TopicPartition(topic, 0, OFFSET_BEGINNING)], 500)
    assert [m.value() for m in msgs] == [f"idem-{i}".encode() for i in range(500)]
    assert consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=T) == (0, 500)


@pytest.mark.parametrize("acks", ["0", "1", "all"])
def test_acks_settings(broker, closing, acks):
    topic = unique_topic(f"ck-acks-{acks}")
    producer = closing(ck_producer(broker.bootstrap, **{"acks": acks, "enable.idempotence": False}))
    reports = _produce_all(producer, topic, [dict(value=f"{acks}-{i}".encode(), partition=0)
                                                   for i in range(50)])
    if acks != "0":
        assert [r[2] for r in reports] == list(range(50))

    consumer = closing(ck_consumer(broker.bootstrap))
    tp = TopicPartition(topic, 0)
    wait_until(lambda: consumer.get_watermark_offsets(tp, timeout=T) == (0, 50), timeout=T,
               message="all records to be visible in the watermarks")
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    msgs = ck_drain(consumer, 50)
    assert [m.value() for m in msgs] == [f"{acks}-{i}".encode() for i in range(50)]


def test_watermarks_and_offsets_for_times(broker, closing, topic):
    _create_topic(broker.bootstrap, topic, 2)
    base_ts = int(time.time() * 1000) - 3_600_000
    producer = closing(ck_producer(broker.bootstrap))
    _produce_all(producer, topic, [dict(value=f"t{i}".encode(), partition=0,
                                        timestamp=base_ts + i * 1000) for i in range(10)])

    consumer = closing(ck_consumer(broker.bootstrap))
    assert consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=T) == (0, 10)
    assert consumer.get_watermark_offsets(TopicPartition(topic, 1), timeout=T) == (0, 0)

    result = consumer.offsets_for_times([TopicPartition(topic, 0, base_ts + 3500),
                                         TopicPartition(topic, 1, base_ts)], timeout=T)
    by_p = {tp.partition: tp for tp in result}
    assert by_p[0].error is None and by_p[0].offset == 4
    assert by_p[1].offset == OFFSET_END, "empty partition: no offset (-1)"

    (exact,) = consumer.offsets_for_times([TopicPartition(topic, 0, base_ts + 7000)], timeout=T)
    assert exact.offset == 7
    (later,) = consumer.offsets_for_times([TopicPartition(topic, 0, base_ts + 10_000_000)], timeout=T)
    assert later.offset == OFFSET_END, "no record at/after that time: -1"

    consumer.assign([TopicPartition(topic, 0, by_p[0].offset)])
    msgs = ck_drain(consumer, 6)
    assert [(m.offset(), m.value()) for m in msgs] == [(i, f"t{i}".encode()) for i in range(4, 10)]
    assert [m.timestamp() for m in msgs] == [(TIMESTAMP_CREATE_TIME, base_ts + i * 1000)
                                            for i in range(4, 10)]


def test_seek_to_middle_offset(broker, closing, topic):
    producer = closing(ck_producer(broker.bootstrap))
    _produce_all(producer, topic, [dict(key=f"k{i}".encode(), value=f"s{i}".encode(), partition=0)
                                   for i in range(20)])
    consumer, first = _consume(broker.bootstrap, closing,
                               [TopicPartition(topic, 0, OFFSET_BEGINNING)], 5)
    assert [m.offset() for m in first[:5]] == [0, 1, 2, 3, 4]

    consumer.seek(TopicPartition(topic, 0, 12))
    msgs = ck_drain(consumer, 8)
    assert [(m.offset(), m.key(), m.value()) for m in msgs] == \
        [(i, f"k{i}".encode(), f"s{i}".encode()) for i in range(12, 20)]
    (pos,) = consumer.position([TopicPartition(topic, 0)])
    assert pos.offset == 20

    consumer.seek(TopicPartition(topic, 0, 3))
    assert [m.offset() for m in ck_drain(consumer, 17)] == list(range(3, 20))

    # Assigning at OFFSET_END only sees records produced afterwards.
    end_consumer = closing(ck_consumer(broker.bootstrap))
    end_consumer.assign([TopicPartition(topic, 0, OFFSET_END)])
    assert end_consumer.consume(num_messages=10, timeout=1.0) == []
    _produce_all(producer, topic, [dict(value=b"late", partition=0)])
    late = ck_drain(end_consumer, 1)
    assert [(m.offset(), m.value()) for m in late] == [(20, b"late")]


@pytest.mark.parametrize("policy", ["earliest", "latest", "error"])
def test_out_of_range_offset_follows_reset_policy(broker, closing, policy):
    topic = unique_topic(f"ck-oor-{policy}")
    producer = closing(ck_producer(broker.bootstrap))
    _produce_all(producer, topic, [dict(value=f"r{i}".encode(), partition=0) for i in range(10)])

    # librdkafka logs the reset ("offset reset ... to offset END"); catch it so the
    # "latest" case knows when the reset happened (position() only moves on consume).
    log_lines = []
    handler = logging.Handler()
    handler.emit = lambda record: log_lines.append(record.getMessage())
    logger = logging.getLogger(f"compat.{topic}")
    logger.addHandler(handler)
    logger.propagate = False

    consumer = closing(ck_consumer(broker.bootstrap, **{"auto.offset.reset": policy,
                                                        "logger": logger}))
    consumer.assign([TopicPartition(topic, 0, 1000)])  # beyond the log end
    if policy == "earliest":
        assert [m.offset() for m in ck_drain(consumer, 10)] == list(range(10))
    elif policy == "latest":
        wait_until(lambda: consumer.consume(num_messages=10, timeout=0.2) == [] and
                   any("offset reset" in line and "offset END" in line for line in log_lines),
                   timeout=T, message="the consumer to reset its offset to the log end")
        _produce_all(producer, topic, [dict(value=b"new", partition=0)])
        assert [(m.offset(), m.value()) for m in ck_drain(consumer, 1)] == [(10, b"new")]
    else:
        with pytest.raises(KafkaException) as exc:
            ck_drain(consumer, 1, timeout=T)
        assert exc.value.args[0].code() == KafkaError._AUTO_OFFSET_RESET


def test_admin_create_list_delete(broker, closing):
    admin = closing(ck_admin(broker.bootstrap))
    name = unique_topic("ck-admin")
    futures = admin.create_topics([NewTopic(name, num_partitions=3, replication_factor=1)],
                                  operation_timeout=T, request_timeout=T)
    assert futures[name].result(timeout=CLIENT_TIMEOUT_S) is None

    md = admin.list_topics(timeout=T)
    assert name in md.topics
    assert sorted(md.topics[name].partitions) == [0, 1, 2]
    assert len(md.brokers) == 1
    (b,) = md.brokers.values()
    assert (b.host, b.port) == ("127.0.0.1", broker.port)
    for p in md.topics[name].partitions.values():
        assert p.leader == b.id and p.replicas == [b.id] and p.isrs == [b.id]

    again = admin.create_topics([NewTopic(name, num_partitions=3, replication_factor=1)],
                                operation_timeout=T, request_timeout=T)
    with pytest.raises(KafkaException) as exc:
        again[name].result(timeout=CLIENT_TIMEOUT_S)
    assert exc.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS

    bad = admin.create_topics([NewTopic("bad name!", num_partitions=1, replication_factor=1)],
                              operation_timeout=T, request_timeout=T)
    with pytest.raises(KafkaException) as exc:
        bad["bad name!"].result(timeout=CLIENT_TIMEOUT_S)
    assert exc.value.args[0].code() == KafkaError.TOPIC_EXCEPTION  # INVALID_TOPIC_EXCEPTION (17)

    deleted = admin.delete_topics([name], operation_timeout=T, request_timeout=T)
    assert deleted[name].result(timeout=CLIENT_TIMEOUT_S) is None
    wait_until(lambda: name not in admin.list_topics(timeout=T).topics, timeout=T,
               message=f"{name} to disappear from metadata")

    missing = unique_topic("ck-never")
    gone = admin.delete_topics([missing], operation_timeout=T, request_timeout=T)
    with pytest.raises(KafkaException) as exc:
        gone[missing].result(timeout=CLIENT_TIMEOUT_S)
    assert exc.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_admin_create_partitions_with_and_without_assignments(broker, closing):
    admin = closing(ck_admin(broker.bootstrap))
    name = unique_topic("ck-grow")
    _create_topic(broker.bootstrap, name, 1)

    def grow(total, assignment=None, validate_only=False):
        new = NewPartitions(name, total) if assignment is None else \
            NewPartitions(name, total, replica_assignment=assignment)
        futures = admin.create_partitions([new], validate_only=validate_only,
                                          operation_timeout=T, request_timeout=T)
        return futures[name].result(timeout=CLIENT_TIMEOUT_S)

    assert grow(2) is None
    assert grow(4, [[NODE_ID], [NODE_ID]]) is None
    wait_until(lambda: _partition_count(admin, name) == 4, timeout=T,
               message=f"{name} to show 4 partitions in metadata")

    for assignment, message in [
            ([[NODE_ID]], "Attempted to add 2 additional partition(s), but only 1 assignment(s) "
                          "were specified."),
            ([[NODE_ID], [NODE_ID + 1]], f"The manual partition assignment includes broker "
                                         f"{NODE_ID + 1}, but no such broker is registered.")]:
        for validate_only in (True, False):
            with pytest.raises(KafkaException) as exc:
                grow(6, assignment, validate_only)
            err = exc.value.args[0]
            assert (err.code(), err.str()) == (KafkaError.INVALID_REPLICA_ASSIGNMENT, message)
    assert _partition_count(admin, name) == 4


@pytest.mark.filterwarnings("ignore:alter_configs has been deprecated:DeprecationWarning")
def test_admin_describe_and_alter_configs(broker, closing):
    admin = closing(ck_admin(broker.bootstrap))
    name = unique_topic("ck-configs")
    _create_topic(broker.bootstrap, name, 1)

    def describe(resource):
        (future,) = admin.describe_configs([resource], request_timeout=T).values()
        return future.result(timeout=CLIENT_TIMEOUT_S)

    def topic_configs():
        """{key: (value, source)} of the configs set on the topic."""
        entries = describe(ConfigResource(ResourceType.TOPIC, name))
        return {k: (e.value, e.source) for k, e in entries.items()
                if e.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value}

    entries = describe(ConfigResource(ResourceType.TOPIC, name))
    assert entries["retention.ms"].value == "604800000" and entries["retention.ms"].is_default
    assert topic_configs() == {}

    dynamic = ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    ops = [ConfigEntry("retention.ms", "5000", incremental_operation=AlterConfigOpType.SET),
           ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.SET)]
    (future,) = admin.incremental_alter_configs(
        [ConfigResource(ResourceType.TOPIC, name, incremental_configs=ops)],
        request_timeout=T).values()
    assert future.result(timeout=CLIENT_TIMEOUT_S) is None
    assert topic_configs() == {"retention.ms": ("5000", dynamic), "cleanup.policy": ("compact", dynamic)}

    (future,) = admin.incremental_alter_configs([ConfigResource(
        ResourceType.TOPIC, name, incremental_configs=[
            ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE)])],
        request_timeout=T).values()
    future.result(timeout=CLIENT_TIMEOUT_S)
    assert topic_configs() == {"cleanup.policy": ("compact", dynamic)}

    # AlterConfigs replaces the whole set: cleanup.policy goes back to its default.
    (future,) = admin.alter_configs([ConfigResource(
        ResourceType.TOPIC, name, set_config={"max.message.bytes": "2000"})],
        request_timeout=T).values()
    future.result(timeout=CLIENT_TIMEOUT_S)
    assert topic_configs() == {"max.message.bytes": ("2000", dynamic)}

    node = describe(ConfigResource(ResourceType.BROKER, str(NODE_ID)))
    assert node["listeners"].value == f"PLAINTEXT://127.0.0.1:{broker.port}"
