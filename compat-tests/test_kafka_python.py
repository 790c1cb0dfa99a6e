"""kafka-python (3.0.x) against a real Gregor broker.

Every client call is bounded: futures use .get(timeout=...), flush/close take
timeouts, consumers use consumer_timeout_ms or poll() in a bounded loop, and
the admin/consumer/producer helpers from conftest set request and bootstrap
timeouts.
"""

import json
import os
import re
import time
from collections import defaultdict

import msgpack
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import AlterConfigOp, ConfigResource, ConfigResourceType, NewPartitions, NewTopic
from kafka.errors import (
    InvalidPartitionsError,
    InvalidReplicationAssignmentError,
    InvalidTopicError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    OffsetOutOfRangeError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
)

from conftest import (
    CLIENT_TIMEOUT_S,
    NODE_ID,
    assert_contiguous_offsets,
    close_client,
    kp_admin,
    kp_consumer,
    kp_create_topic,
    kp_drain,
    kp_producer,
    start_broker,
    unique_topic,
    wait_until,
)

GET_TIMEOUT = CLIENT_TIMEOUT_S


def _send_all(producer, topic, items, **common):
    """Send ``items`` (dicts of send() kwargs) and return their RecordMetadata, in order."""
    futures = [producer.send(topic, **common, **item) for item in items]
    producer.flush(timeout=GET_TIMEOUT)
    return [f.get(timeout=GET_TIMEOUT) for f in futures]


def _assert_contiguous_per_partition(metas, start=0):
    return assert_contiguous_offsets(((m.partition, m.offset) for m in metas), start)


def _read_partitions(bootstrap, topic, partitions, expected, closing, **consumer_kwargs):
    consumer = closing(kp_consumer(bootstrap, **consumer_kwargs))
    tps = [TopicPartition(topic, p) for p in partitions]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    records = kp_drain(consumer, expected)
    assert len(records) == expected, f"read {len(records)} of {expected} records"
    return consumer, records


# ---------------------------------------------------------------------------
# The calls from the README, as written (only the address changes)
# ---------------------------------------------------------------------------


def test_readme_producer_calls_via_localhost(broker, closing):
    bootstrap = broker.localhost_bootstrap  # "localhost:PORT" must work, not only 127.0.0.1

    producer = closing(KafkaProducer(bootstrap_servers=bootstrap, key_serializer=str.encode,
                                     compression_type="gzip"))
    future = producer.send("topic1", key="k", value=b"some msg")
    meta = future.get(timeout=60)
    assert (meta.topic, meta.partition, meta.offset) == ("topic1", 0, 0)
    assert meta.topic_partition == TopicPartition("topic1", 0)

    foo_futures = [producer.send("foobar", key="foo", value=b"bar") for _ in range(3)]
    producer.flush()
    foo_metas = [f.get(timeout=GET_TIMEOUT) for f in foo_futures]
    assert [m.offset for m in foo_metas] == [0, 1, 2]
    assert len({m.partition for m in foo_metas}) == 1

    # kafka-python applies key_serializer to a None key too (str.encode(None) ->
    # TypeError, client side), so the keyless README line needs a producer
    # without a key_serializer, exactly as in kafka-python's own README.
    plain = closing(KafkaProducer(bootstrap_servers=bootstrap))
    header_future = plain.send("foobar", value=b"c29tZSB2YWx1ZQ==",
                               headers=[("content-encoding", b"base64")])
    plain.flush(timeout=GET_TIMEOUT)
    assert header_future.get(timeout=GET_TIMEOUT).offset == 3

    p2 = closing(KafkaProducer(bootstrap_servers=bootstrap,
                               value_serializer=lambda v: json.dumps(v).encode()))
    json_meta = p2.send("fizzbuzz", {"foo": "bar"}).get(timeout=GET_TIMEOUT)
    assert (json_meta.topic, json_meta.offset) == ("fizzbuzz", 0)

    # Read all of it back through localhost as well.
    consumer = closing(kp_consumer(bootstrap))
    tps = [TopicPartition("topic1", 0), TopicPartition("foobar", 0), TopicPartition("fizzbuzz", 0)]
    consumer.assign(tps)
    consumer.seek_to_beginning()
    records = kp_drain(consumer, 6)
    got = defaultdict(list)
    for r in records:
        got[r.topic].append((r.offset, r.key, r.value, list(r.headers)))
    assert got["topic1"] == [(0, b"k", b"some msg", [])]
    assert got["foobar"] == [
        (0, b"foo", b"bar", []),
        (1, b"foo", b"bar", []),
        (2, b"foo", b"bar", []),
        (3, None, b"c29tZSB2YWx1ZQ==", [("content-encoding", b"base64")]),
    ]
    assert [(o, k, json.loads(v)) for o, k, v, _ in got["fizzbuzz"]] == [(0, None, {"foo": "bar"})]


def test_readme_api_list_is_what_api_versions_answers(broker, closing):
    with open(os.path.join(os.path.dirname(__file__), "..", "README.md")) as f:
        readme = f.read()
    listed = re.search(r"APIs served \(versions\):(.*?)The table is", readme, re.S).group(1)
    listed = re.sub(r"\([^)]*\)", "", listed)  # "(with the KIP-511 answer ...)"
    claimed = {name: (int(low), int(high or low))
               for name, low, high in re.findall(r"(\w+)\s+(\d+)(?:-(\d+))?", listed)}
    served = {key.name: versions for key, versions in closing(kp_admin(broker.bootstrap)).api_versions().items()}
    assert claimed == served


def test_readme_msgpack_consumer_assign_and_seek(broker, closing):
    """README consumer: manual assignment of partition 2 of "foo", seek, iterate."""
    bootstrap = broker.localhost_bootstrap
    kp_create_topic(bootstrap, "foo", 3)

    base_ts = int(time.time() * 1000) - 60_000
    expected = []
    producer = closing(kp_producer(bootstrap, value_serializer=msgpack.dumps))
    futures = []
    for i in range(10):
        value = {"n": i, "name": f"item-{i}", "tags": ["a", i], "nested": {"ok": i % 2 == 0}}
        key = f"key-{i}".encode()
        headers = [("idx", str(i).encode()), ("kind", b"msgpack")]
        ts = base_ts + i * 10
        futures.append(producer.send("foo", key=key, value=value, headers=headers,
                                     partition=2, timestamp_ms=ts))
        expected.append((i, key, value, headers, ts))
        # Noise on the other partitions must not show up in partition 2.
        producer.send("foo", key=key, value={"noise": i}, partition=i % 2)
    producer.flush(timeout=GET_TIMEOUT)
    assert [f.get(timeout=GET_TIMEOUT).offset for f in futures] == list(range(10))

    consumer = closing(KafkaConsumer(bootstrap_servers=bootstrap, value_deserializer=msgpack.loads,
                                     consumer_timeout_ms=2000, request_timeout_ms=20000))
    consumer.assign([TopicPartition("foo", 2)])
    assert consumer.assignment() == {TopicPartition("foo", 2)}

    def read_all():
        out = []
        for msg in consumer:
            assert (msg.topic, msg.partition) == ("foo", 2)
            assert msg.timestamp_type == 0, "CreateTime expected"
            out.append((msg.offset, msg.key, msg.value, list(msg.headers), msg.timestamp))
        return out

    consumer.seek(TopicPartition("foo", 2), 0)
    assert read_all() == expected

    consumer.seek(TopicPartition("foo", 2), 6)  # jump into the middle
    assert read_all() == expected[6:]

    consumer.seek(TopicPartition("foo", 2), 10)  # at the end: nothing, no error
    assert read_all() == []

    metrics = consumer.metrics()
    assert isinstance(metrics, dict) and metrics, "consumer.metrics() should be a non-empty dict"
    assert "consumer-fetch-manager-metrics" in metrics


# ---------------------------------------------------------------------------
# Producer semantics
# ---------------------------------------------------------------------------


def test_offsets_contiguous_per_partition(broker, closing, topic):
    kp_create_topic(broker.bootstrap, topic, 3)
    producer = closing(kp_producer(broker.bootstrap))
    items = [dict(key=f"k{i % 7}".encode(), value=f"v{i}".encode()) for i in range(120)]
    metas = _send_all(producer, topic, items)
    assert all(m.topic == topic for m in metas)
    by_partition = _assert_contiguous_per_partition(metas)
    assert sum(len(v) for v in by_partition.values()) == 120

    # A second batch continues where the first stopped.
    more = _send_all(producer, topic, [dict(value=b"x", partition=p) for p in range(3)])
    for m in more:
        assert m.offset == len(by_partition.get(m.partition, []))


def test_same_key_same_partition(broker, closing, topic):
    kp_create_topic(broker.bootstrap, topic, 6)
    keys = [f"user-{i}" for i in range(24)]
    placements = defaultdict(set)
    for _round in range(2):  # two independent producer instances
        producer = closing(kp_producer(broker.bootstrap, key_serializer=str.encode))
        metas = _send_all(producer, topic, [dict(key=k, value=k.encode()) for k in keys * 3])
        for k, m in zip(keys * 3, metas):
            placements[k].add(m.partition)
    assert all(len(parts) == 1 for parts in placements.values()), placements
    used = {next(iter(p)) for p in placements.values()}
    assert len(used) > 1, "24 distinct keys should not all hash to one of 6 partitions"

    # The records really are stored on the partition the producer was told.
    _, records = _read_partitions(broker.bootstrap, topic, range(6), len(keys) * 6, closing)
    for r in records:
        assert {r.partition} == placements[r.key.decode()]
        assert r.value == r.key


def test_headers_roundtrip(broker, closing, topic):
    producer = closing(kp_producer(broker.bootstrap))
    cases = [
        [],
        [("content-encoding", b"base64")],
        [("a", b"1"), ("b", b"2"), ("a", b"3")],  # repeated keys keep their order
        [("empty", b""), ("binary", bytes(range(256)))],
        [("unicode-ключ", "значение".encode())],
    ]
    metas = _send_all(producer, topic, [dict(value=f"m{i}".encode(), headers=h, partition=0)
                                        for i, h in enumerate(cases)])
    assert [m.offset for m in metas] == list(range(len(cases)))
    _, records = _read_partitions(broker.bootstrap, topic, [0], len(cases), closing)
    assert [list(r.headers) for r in records] == cases
    assert [r.value for r in records] == [f"m{i}".encode() for i in range(len(cases))]


def test_json_values_roundtrip(broker, closing, topic):
    # (None is not in the list: kafka-python rejects value=None without a key
    # before serializing, so a JSON null cannot be sent that way.)
    values = [{"foo": "bar"}, [1, 2, 3], "text", 42, 3.5, False,
              {"nested": {"list": [{"a": 1}], "unicode": "snow ☃"}}]
    producer = closing(kp_producer(broker.bootstrap,
                                   value_serializer=lambda v: json.dumps(v).encode()))
    _send_all(producer, topic, [dict(value=v, partition=0) for v in values])
    _, records = _read_partitions(broker.bootstrap, topic, [0], len(values), closing,
                                  value_deserializer=lambda b: json.loads(b.decode()))
    assert [r.value for r in records] == values


@pytest.mark.parametrize("compression", ["gzip", "snappy", "lz4", "zstd"])
def test_compression_roundtrip(broker, closing, compression):
    topic = unique_topic(f"comp-{compression}")
    kp_create_topic(broker.bootstrap, topic, 2)
    producer = closing(kp_producer(broker.bootstrap, compression_type=compression,
                                   linger_ms=50, batch_size=64 * 1024))
    items = []
    for i in range(300):
        items.append(dict(key=f"key-{i % 10}".encode(),
                          value=(f"{compression} record {i} " * (1 + i % 20)).encode(),
                          headers=[("i", str(i).encode())],
                          partition=i % 2))
    metas = _send_all(producer, topic, items)
    _assert_contiguous_per_partition(metas)

    consumer, records = _read_partitions(broker.bootstrap, topic, [0, 1], len(items), closing)
    got = {(r.partition, r.offset): (r.key, r.value, list(r.headers)) for r in records}
    for item, meta in zip(items, metas):
        assert got[(meta.partition, meta.offset)] == (item["key"], item["value"], item["headers"])

    # Seeking into the middle of a compressed batch must start exactly there.
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek(tp, 77)
    tail_records = kp_drain(consumer, 150 - 77)
    assert [r.offset for r in tail_records] == list(range(77, 150))


def test_idempotent_producer_with_defaults(broker, closing, topic):
    """kafka-python 3.x defaults: enable_idempotence=True, acks='all'."""
    producer = closing(KafkaProducer(bootstrap_servers=broker.bootstrap))
    assert producer.config["enable_idempotence"] is True, (
        "kafka-python silently disabled idempotence (broker API versions too old?)")
    assert producer.config["acks"] == -1
    metas = _send_all(producer, topic, [dict(value=f"idem-{i}".encode(), partition=0)
                                        for i in range(500)])
    assert [m.offset for m in metas] == list(range(500))

    consumer, records = _read_partitions(broker.bootstrap, topic, [0], 500, closing)
    assert [r.value for r in records] == [f"idem-{i}".encode() for i in range(500)]
    tp = TopicPartition(topic, 0)
    assert consumer.end_offsets([tp], timeout_ms=10000) == {tp: 500}, "duplicates were written"


@pytest.mark.parametrize("acks", [0, 1])
def test_acks_0_and_1(broker, closing, acks):
    topic = unique_topic(f"acks{acks}")
    producer = closing(kp_producer(broker.bootstrap, acks=acks))
    assert producer.config["enable_idempotence"] is False
    metas = _send_all(producer, topic, [dict(value=f"a{acks}-{i}".encode(), partition=0)
                                        for i in range(50)])
    # With acks=0 the broker sends no response; kafka-python then reports
    # synthetic offsets (the batch index), so only acks=1 offsets are checked.
    if acks == 1:
        assert [m.offset for m in metas] == list(range(50))

    tp = TopicPartition(topic, 0)
    consumer = closing(kp_consumer(broker.bootstrap))
    # acks=0 gives no confirmation: poll the end offset until everything landed.
    wait_until(lambda: consumer.end_offsets([tp], timeout_ms=5000)[tp] == 50, timeout=10,
               message="all acks=%d records to be visible" % acks)
    consumer.assign([tp])
    consumer.seek(tp, 0)
    records = kp_drain(consumer, 50)
    assert [r.value for r in records] == [f"a{acks}-{i}".encode() for i in range(50)]


def test_large_batch_in_order_across_partitions(broker, closing, topic):
    n, partitions = 5000, 4
    kp_create_topic(broker.bootstrap, topic, partitions)
    producer = closing(kp_producer(broker.bootstrap, linger_ms=20))
    futures = [producer.send(topic, key=str(i).encode(), value=f"msg-{i:05d}".encode(),
                             partition=i % partitions) for i in range(n)]
    producer.flush(timeout=60)
    metas = [f.get(timeout=GET_TIMEOUT) for f in futures]
    _assert_contiguous_per_partition(metas)

    consumer, records = _read_partitions(broker.bootstrap, topic, range(partitions), n, closing,
                                         max_poll_records=2000)
    per_partition = defaultdict(list)
    for r in records:
        per_partition[r.partition].append(r)
    for p in range(partitions):
        recs = per_partition[p]
        assert [r.offset for r in recs] == list(range(n // partitions))
        assert [r.value for r in recs] == [f"msg-{i:05d}".encode() for i in range(p, n, partitions)]
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    assert consumer.end_offsets(tps, timeout_ms=10000) == {tp: n // partitions for tp in tps}


def test_null_and_empty_keys_and_values(broker, closing, topic):
    producer = closing(kp_producer(broker.bootstrap))
    sent = [(b"k", None), (None, b""), (b"", b"v"), (b"k2", b"")]  # None value = tombstone
    _send_all(producer, topic, [dict(key=k, value=v, partition=0) for k, v in sent])
    _, records = _read_partitions(broker.bootstrap, topic, [0], len(sent), closing)
    assert [(r.key, r.value) for r in records] == sent


def test_large_record_roundtrip(broker, closing, topic):
    big = bytes(range(256)) * 3500  # 896,000 bytes: under the 1 MiB defaults
    producer = closing(kp_producer(broker.bootstrap))
    metas = _send_all(producer, topic, [dict(key=b"big", value=big, partition=0),
                                        dict(key=b"small", value=b"after", partition=0)])
    assert [m.offset for m in metas] == [0, 1]
    _, records = _read_partitions(broker.bootstrap, topic, [0], 2, closing)
    assert records[0].value == big and records[1].value == b"after"


def test_fetch_returns_a_batch_larger_than_max_partition_fetch_bytes(broker, closing, topic):
    """KIP-74: the first batch is returned even when it exceeds the fetch size limits."""
    producer = closing(kp_producer(broker.bootstrap))
    values = [(f"{i:03d}" * 2000).encode() for i in range(10)]  # 6 KB each, one batch apiece
    for v in values:
        _send_all(producer, topic, [dict(value=v, partition=0)])
    _, records = _read_partitions(broker.bootstrap, topic, [0], len(values), closing,
                                  max_partition_fetch_bytes=1024, fetch_max_bytes=1024)
    assert [r.value for r in records] == values


@pytest.mark.parametrize("policy", ["earliest", "latest", "none"])
def test_out_of_range_offset_follows_reset_policy(broker, closing, policy):
    topic = unique_topic(f"oor-{policy}")
    producer = closing(kp_producer(broker.bootstrap))
    _send_all(producer, topic, [dict(value=f"r{i}".encode(), partition=0) for i in range(10)])

    tp = TopicPartition(topic, 0)
    consumer = closing(kp_consumer(broker.bootstrap, auto_offset_reset=policy))
    consumer.assign([tp])
    consumer.seek(tp, 1000)  # beyond the log end: the broker must answer OFFSET_OUT_OF_RANGE
    if policy == "earliest":
        assert [r.offset for r in kp_drain(consumer, 10)] == list(range(10))
    elif policy == "latest":
        wait_until(lambda: consumer.poll(timeout_ms=200) == {} and
                   consumer.position(tp, timeout_ms=5000) == 10,
                   timeout=10, message="position to be reset to the log end (10)")
    else:
        with pytest.raises(OffsetOutOfRangeError):
            wait_until(lambda: consumer.poll(timeout_ms=200), timeout=10,
                       message="OffsetOutOfRangeError from poll()")


def test_topics_and_partitions_for_topic(broker, closing, topic):
    kp_create_topic(broker.bootstrap, topic, 5)
    consumer = closing(kp_consumer(broker.bootstrap))
    assert topic in consumer.topics()
    assert consumer.partitions_for_topic(topic) == {0, 1, 2, 3, 4}


def test_broker_flags_auto_create_off_and_message_max_bytes(closing):
    """A second broker: --auto-create-topics-enable false --message-max-bytes 20000."""
    other = start_broker(["--auto-create-topics-enable", "false", "--message-max-bytes", "20000"])
    try:
        missing = unique_topic("no-autocreate")
        blocked = kp_producer(other.bootstrap, max_block_ms=2000)
        try:
            with pytest.raises(KafkaTimeoutError):
                blocked.send(missing, value=b"x").get(timeout=5)
        finally:
            close_client(blocked)
        admin = closing(kp_admin(other.bootstrap))
        assert missing not in admin.list_topics()

        topic = unique_topic("max-bytes")
        kp_create_topic(other.bootstrap, topic, 1)
        # Not idempotent: kafka-python's idempotent producer treats MESSAGE_TOO_LARGE
        # as fatal and aborts every later batch (client behaviour, not the broker's).
        producer = closing(kp_producer(other.bootstrap, enable_idempotence=False))
        ok = producer.send(topic, value=b"s" * 10_000, partition=0).get(timeout=GET_TIMEOUT)
        assert ok.offset == 0
        with pytest.raises(MessageSizeTooLargeError):
            producer.send(topic, value=b"L" * 30_000, partition=0).get(timeout=GET_TIMEOUT)
        after = producer.send(topic, value=b"after", partition=0).get(timeout=GET_TIMEOUT)
        assert after.offset == 1, "the rejected record must not take an offset"
    finally:
        other.cleanup()


# ---------------------------------------------------------------------------
# Consumer positioning without a group
# ---------------------------------------------------------------------------


def test_seek_to_beginning_end_and_position_without_group(broker, closing, topic):
    producer = closing(kp_producer(broker.bootstrap))
    _send_all(producer, topic, [dict(value=f"p{i}".encode(), partition=0) for i in range(10)])

    tp = TopicPartition(topic, 0)
    consumer = closing(kp_consumer(broker.bootstrap))  # group_id=None
    assert consumer.config["group_id"] is None
    consumer.assign([tp])

    consumer.seek_to_end(tp)
    assert consumer.position(tp, timeout_ms=10000) == 10
    assert consumer.poll(timeout_ms=500) == {}

    _send_all(producer, topic, [dict(value=b"p10", partition=0), dict(value=b"p11", partition=0)])
    new = kp_drain(consumer, 2)
    assert [(r.offset, r.value) for r in new] == [(10, b"p10"), (11, b"p11")]
    assert consumer.position(tp, timeout_ms=10000) == 12

    consumer.seek_to_beginning(tp)
    assert consumer.position(tp, timeout_ms=10000) == 0
    again = kp_drain(consumer, 12)
    assert [r.value for r in again] == [f"p{i}".encode() for i in range(12)]
    assert consumer.position(tp, timeout_ms=10000) == 12

    consumer.seek(tp, 5)
    assert consumer.position(tp, timeout_ms=10000) == 5
    assert [r.offset for r in kp_drain(consumer, 7)] == list(range(5, 12))


def test_beginning_end_offsets_and_offsets_for_times(broker, closing, topic):
    kp_create_topic(broker.bootstrap, topic, 2)
    base_ts = int(time.time() * 1000) - 3_600_000
    producer = closing(kp_producer(broker.bootstrap))
    _send_all(producer, topic, [dict(value=f"t{i}".encode(), partition=0,
                                     timestamp_ms=base_ts + i * 1000) for i in range(10)])

    tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    consumer = closing(kp_consumer(broker.bootstrap))
    assert consumer.beginning_offsets([tp0, tp1], timeout_ms=10000) == {tp0: 0, tp1: 0}
    assert consumer.end_offsets([tp0, tp1], timeout_ms=10000) == {tp0: 10, tp1: 0}

    found = consumer.offsets_for_times({tp0: base_ts + 3500, tp1: base_ts}, timeout_ms=10000)
    assert found[tp0].offset == 4 and found[tp0].timestamp == base_ts + 4000
    assert found[tp1] is None, "empty partition has no offset for any timestamp"

    exact = consumer.offsets_for_times({tp0: base_ts + 7000}, timeout_ms=10000)
    assert (exact[tp0].offset, exact[tp0].timestamp) == (7, base_ts + 7000)

    first = consumer.offsets_for_times({tp0: 0}, timeout_ms=10000)
    assert (first[tp0].offset, first[tp0].timestamp) == (0, base_ts)

    later = consumer.offsets_for_times({tp0: base_ts + 10_000_000}, timeout_ms=10000)
    assert later[tp0] is None, "no record at or after that timestamp"

    # Use the looked-up offset to start consuming there.
    consumer.assign([tp0])
    consumer.seek(tp0, found[tp0].offset)
    assert [r.value for r in kp_drain(consumer, 6)] == [f"t{i}".encode() for i in range(4, 10)]


# ---------------------------------------------------------------------------
# Admin client
# ---------------------------------------------------------------------------


def test_admin_create_list_delete_topics(broker, closing):
    admin = closing(kp_admin(broker.bootstrap))
    name = unique_topic("admin")
    other = unique_topic("admin-other")

    result = admin.create_topics([NewTopic(name, num_partitions=3, replication_factor=1),
                                  NewTopic(other, num_partitions=1, replication_factor=1)],
                                 timeout_ms=10000)
    assert sorted((t["name"], t["error_code"]) for t in result["topics"]) == \
        sorted([(name, 0), (other, 0)])
    admin.wait_for_topics([name, other], timeout_ms=10000)
    topics = admin.list_topics()
    assert name in topics and other in topics

    (described,) = admin.describe_topics([name])
    assert described["error_code"] == 0
    assert sorted(p["partition_index"] for p in described["partitions"]) == [0, 1, 2]
    assert all(p["leader_id"] >= 0 for p in described["partitions"])

    with pytest.raises(TopicAlreadyExistsError):
        admin.create_topics([NewTopic(name, num_partitions=3, replication_factor=1)],
                            timeout_ms=10000)

    # The new topic is usable right away by producers.
    producer = closing(kp_producer(broker.bootstrap))
    metas = _send_all(producer, name, [dict(value=b"x", partition=p) for p in range(3)])
    assert [(m.partition, m.offset) for m in metas] == [(0, 0), (1, 0), (2, 0)]

    admin.delete_topics([name], timeout_ms=10000)
    wait_until(lambda: name not in admin.list_topics(), timeout=10,
               message=f"{name} to disappear from list_topics")
    assert other in admin.list_topics()

    with pytest.raises(UnknownTopicOrPartitionError):
        admin.delete_topics([unique_topic("never-created")], timeout_ms=10000)


def test_admin_create_partitions_with_and_without_assignments(broker, closing):
    admin = closing(kp_admin(broker.bootstrap))
    name = unique_topic("admin-grow")
    kp_create_topic(broker.bootstrap, name, 1)

    def partitions():
        (described,) = admin.describe_topics([name])
        return sorted(p["partition_index"] for p in described["partitions"])

    admin.create_partitions({name: 2})
    admin.create_partitions({name: NewPartitions(4, [[NODE_ID], [NODE_ID]])})
    admin.create_partitions({name: {"count": 5, "assignments": [[NODE_ID]]}})
    assert partitions() == [0, 1, 2, 3, 4]

    refused = [
        ({"count": 7, "assignments": [[NODE_ID]]},
         "Attempted to add 2 additional partition(s), but only 1 assignment(s) were specified."),
        ({"count": 6, "assignments": [[NODE_ID], [NODE_ID]]},
         "Attempted to add 1 additional partition(s), but only 2 assignment(s) were specified."),
        ({"count": 6, "assignments": [[NODE_ID + 1]]},
         f"The manual partition assignment includes broker {NODE_ID + 1}, but no such broker "
         "is registered."),
        ({"count": 6, "assignments": [[NODE_ID, NODE_ID]]},
         f"The manual partition assignment includes the broker {NODE_ID} more than once."),
        ({"count": 6, "assignments": [[]]},
         "The manual partition assignment includes an empty replica list."),
    ]
    for spec, message in refused:
        for validate_only in (True, False):
            with pytest.raises(InvalidReplicationAssignmentError) as err:
                admin.create_partitions({name: spec}, validate_only=validate_only)
            assert f"error_message='{message}'" in str(err.value)
    with pytest.raises(InvalidPartitionsError):
        admin.create_partitions({name: 5})
    assert partitions() == [0, 1, 2, 3, 4]


def test_admin_describe_and_alter_configs(broker, closing):
    admin = closing(kp_admin(broker.bootstrap))
    name = unique_topic("admin-configs")
    kp_create_topic(broker.bootstrap, name, 1)
    topic = ConfigResource(ConfigResourceType.TOPIC, name)

    def modified():
        """The topic's configs set away from the defaults: {key: (value, source)}."""
        configs = admin.describe_configs([topic])["topic"][name]
        return {k: (v["value"], v["config_source"]) for k, v in configs.items()}

    assert modified() == {}
    # IncrementalAlterConfigs (kafka-python's choice when the broker has it): SET, then DELETE.
    assert admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, name, {
        "retention.ms": "5000", "cleanup.policy": (AlterConfigOp.SET, "compact")})]) == \
        {"topic": {name: "OK"}}
    assert modified() == {"retention.ms": ("5000", "DYNAMIC_TOPIC_CONFIG"),
                          "cleanup.policy": ("compact", "DYNAMIC_TOPIC_CONFIG")}
    admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, name, {
        "retention.ms": (AlterConfigOp.DELETE, None)})])
    assert modified() == {"cleanup.policy": ("compact", "DYNAMIC_TOPIC_CONFIG")}
    # AlterConfigs (the whole set; kafka-python adds the keys already set).
    admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, name, {"max.message.bytes": "2000"})],
                        incremental=False)
    assert modified() == {"cleanup.policy": ("compact", "DYNAMIC_TOPIC_CONFIG"),
                          "max.message.bytes": ("2000", "DYNAMIC_TOPIC_CONFIG")}

    node = ConfigResource(ConfigResourceType.BROKER, str(NODE_ID), {"listeners": None})
    listeners = admin.describe_configs([node], config_filter="all")["broker"][str(NODE_ID)]["listeners"]
    assert listeners["value"] == f"PLAINTEXT://127.0.0.1:{broker.port}"


@pytest.mark.parametrize("bad_name", [
    "has space",
    "slash/inside",
    "star*",
    ".",
    "..",
    "x" * 250,
])
def test_admin_invalid_topic_name(broker, closing, bad_name):
    admin = closing(kp_admin(broker.bootstrap))
    with pytest.raises(InvalidTopicError):
        admin.create_topics([NewTopic(bad_name, num_partitions=1, replication_factor=1)],
                            timeout_ms=10000)
    assert bad_name not in admin.list_topics()


def test_admin_invalid_partition_count(broker, closing):
    admin = closing(kp_admin(broker.bootstrap))
    name = unique_topic("zero-parts")
    with pytest.raises(InvalidPartitionsError):
        admin.create_topics([NewTopic(name, num_partitions=0, replication_factor=1)],
                            timeout_ms=10000)
    assert name not in admin.list_topics()


# ---------------------------------------------------------------------------
# Durability (these restart the module's broker; keep them last)
# ---------------------------------------------------------------------------


def _produce_restart_consume(broker, closing, crash: bool):
    topic = unique_topic("kill9" if crash else "restart")
    kp_create_topic(broker.bootstrap, topic, 2)
    producer = kp_producer(broker.bootstrap, acks="all")
    items = [dict(key=f"k{i}".encode(), value=f"durable-{i}".encode(), partition=i % 2)
             for i in range(400)]
    metas = _send_all(producer, topic, items)
    _assert_contiguous_per_partition(metas)
    producer.close(timeout=5)

    if crash:
        broker.kill9()
    broker.restart()

    consumer, records = _read_partitions(broker.bootstrap, topic, [0, 1], len(items), closing)
    got = {(r.partition, r.offset): (r.key, r.value) for r in records}
    for item, meta in zip(items, metas):
        assert got[(meta.partition, meta.offset)] == (item["key"], item["value"])
    tps = [TopicPartition(topic, p) for p in range(2)]
    assert consumer.end_offsets(tps, timeout_ms=10000) == {tp: 200 for tp in tps}

    # Offsets continue after the restart: nothing is overwritten.
    producer2 = closing(kp_producer(broker.bootstrap))
    after = _send_all(producer2, topic, [dict(value=b"after", partition=p) for p in range(2)])
    assert sorted((m.partition, m.offset) for m in after) == [(0, 200), (1, 200)]
    assert topic in closing(kp_admin(broker.bootstrap)).list_topics()


def test_data_survives_graceful_restart(broker, closing):
    _produce_restart_consume(broker, closing, crash=False)


def test_data_survives_kill9_and_restart(broker, closing):
    _produce_restart_consume(broker, closing, crash=True)


def test_transactional_producer_commit_abort_and_read_committed(broker, closing):
    topic = unique_topic("kp-txn")
    kp_create_topic(broker.bootstrap, topic, 1)
    p = closing(kp_producer(broker.bootstrap, transactional_id=unique_topic("kp-txn-id")))
    p.init_transactions()
    p.begin_transaction()
    for i in range(3):
        p.send(topic, value=f"c-{i}".encode(), partition=0)
    p.commit_transaction()
    p.begin_transaction()
    for i in range(2):
        p.send(topic, value=f"a-{i}".encode(), partition=0)
    p.flush()
    p.abort_transaction()

    def values(isolation, expected):
        c = closing(kp_consumer(broker.bootstrap, isolation_level=isolation))
        c.assign([TopicPartition(topic, 0)])
        c.seek_to_beginning()
        got = [r.value.decode() for r in kp_drain(c, expected)]
        # Nothing more (no aborted record, no control record) within a short wait.
        got += [r.value.decode() for recs in c.poll(timeout_ms=1000).values() for r in recs]
        return got

    assert values("read_committed", 3) == ["c-0", "c-1", "c-2"]
    assert values("read_uncommitted", 5) == ["c-0", "c-1", "c-2", "a-0", "a-1"]
