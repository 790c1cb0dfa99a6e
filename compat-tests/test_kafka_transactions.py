"""Kafka 4.1's `kafka-transactions` (org.apache.kafka.tools.TransactionsCommand) against Gregor:
list, describe and describe-producers show a confluent-kafka transaction left open; a truly
hanging transaction (a transactional batch the coordinator never heard of, written with a
hand-built Produce frame while transaction.partition.verification.enable is off, as before
KIP-890) is found by find-hanging and ended by abort (WriteTxnMarkers), in both of abort's
forms; a read_committed consumer then reads past it and never sees its records."""

import re
import socket
import struct
import time

import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import NewTopic

from conftest import (CLIENT_TIMEOUT_S, ck_admin, ck_consumer, ck_producer, kafka_tool, recv_exactly,
                      start_broker, unique_topic, wait_until)

TOOL = "org.apache.kafka.tools.TransactionsCommand"
T = 10.0


@pytest.fixture(scope="module")
def unverified_broker():
    b = start_broker(["--transaction-partition-verification-enable", "false"])
    try:
        yield b
    finally:
        b.cleanup()


def _call(bootstrap, api_key, version, body):
    """One request with a v1 request header; the response body after its correlation id."""
    host, port = bootstrap.split(":")
    header = struct.pack(">hhih", api_key, version, 7, len(b"hang")) + b"hang"
    frame = header + body
    with socket.create_connection((host, int(port)), timeout=T) as s:
        s.sendall(struct.pack(">i", len(frame)) + frame)
        size = struct.unpack(">i", recv_exactly(s, 4))[0]
        response = recv_exactly(s, size)
    assert struct.unpack(">i", response[:4])[0] == 7
    return response[4:]


def _producer_id(bootstrap):
    """InitProducerId v1 without a transactional id: an idempotent producer's id."""
    body = _call(bootstrap, 22, 1, struct.pack(">hi", -1, -1))
    _, error, pid, epoch = struct.unpack(">ihqh", body)
    assert (error, epoch) == (0, 0)
    return pid


def _hanging_batch(bootstrap, topic, values, age_s):
    """A transactional batch of `values`, `age_s` old, as Produce v3 carries it (kafka-python's
    record encoder): it opens a transaction on partition 0 that no coordinator knows. Returns
    (producer id, base offset)."""
    from kafka.record.default_records import DefaultRecordBatchBuilder

    pid = _producer_id(bootstrap)
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=True,
                                        producer_id=pid, producer_epoch=0, base_sequence=0, batch_size=1 << 20)
    stamp = int((time.time() - age_s) * 1000)
    for i, value in enumerate(values):
        builder.append(i, timestamp=stamp, key=None, value=value.encode(), headers=[])
    records = bytes(builder.build())
    name = topic.encode()
    body = (struct.pack(">hhi", -1, -1, 10000) + struct.pack(">ih", 1, len(name)) + name
            + struct.pack(">iii", 1, 0, len(records)) + records)
    response = _call(bootstrap, 0, 3, body)
    # [topic [partition error base_offset log_append_time]] throttle
    at = 4 + 2 + len(name) + 4
    partition, error, base_offset = struct.unpack(">ihq", response[at:at + 14])
    assert (partition, error) == (0, 0)
    return pid, base_offset


def _table(out):
    """A prettyPrintTable's rows as lists of cells, without the header."""
    lines = [line for line in out.splitlines() if line.strip()]
    return [re.split(r"\s*\t", line.strip()) for line in lines[1:]]


def _tool(classpath, bootstrap, *args):
    code, out, err = kafka_tool(classpath, TOOL, bootstrap, *args)
    assert code == 0, f"kafka-transactions {' '.join(args)} failed:\n{out}\n{err[-3000:]}"
    return _table(out)


def _read_committed(bootstrap, topic, expect):
    """Every value a read_committed consumer reads from the start of partition 0, reading on a
    moment after `expect` values so that wrongly visible ones would show up too."""
    c = ck_consumer(bootstrap, **{"isolation.level": "read_committed", "enable.partition.eof": True})
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        values = []
        deadline = time.monotonic() + CLIENT_TIMEOUT_S
        settle = None
        while time.monotonic() < deadline:
            for m in c.consume(num_messages=100, timeout=0.3):
                if m.error() is None:
                    values.append(m.value().decode())
            if len(values) >= expect:
                settle = settle or time.monotonic() + 1.5
                if time.monotonic() > settle:
                    break
        return values
    finally:
        c.close()


def _stable_end(bootstrap, topic):
    """The last stable offset (a read_committed consumer's end offset)."""
    c = ck_consumer(bootstrap, **{"isolation.level": "read_committed"})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=T, cached=False)[1]
    finally:
        c.close()


@pytest.mark.timeout(300)
def test_kafka_transactions_finds_and_aborts_a_hanging_transaction(unverified_broker, tools_classpath):
    bootstrap = unverified_broker.bootstrap
    topic = unique_topic("hanging")
    admin = ck_admin(bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(timeout=CLIENT_TIMEOUT_S)
    broker_id = admin.describe_cluster().result(timeout=CLIENT_TIMEOUT_S).nodes[0].id

    # 0-2: a transaction no coordinator knows, its batch 20 minutes old.
    hung_pid, first = _hanging_batch(bootstrap, topic, ["hung-0", "hung-1", "hung-2"], age_s=20 * 60)
    assert first == 0
    # 3-4 committed (COMMIT at 5), then 6-7 of a transaction left open.
    done = ck_producer(bootstrap, **{"transactional.id": f"{topic}-done"})
    done.init_transactions(T)
    done.begin_transaction()
    for i in range(2):
        done.produce(topic, value=f"committed-{i}", partition=0)
    done.commit_transaction(T)
    open_txn = ck_producer(bootstrap, **{"transactional.id": f"{topic}-open", "transaction.timeout.ms": 600000})
    open_txn.init_transactions(T)
    open_txn.begin_transaction()
    for i in range(2):
        open_txn.produce(topic, value=f"open-{i}", partition=0)
    open_txn.flush(T)

    listed = {row[0]: row for row in _tool(tools_classpath, bootstrap, "list")}
    # TransactionalId Coordinator ProducerId TransactionState
    assert [listed[f"{topic}-open"][i] for i in (1, 3)] == [str(broker_id), "Ongoing"]
    assert listed[f"{topic}-done"][3] == "CompleteCommit"
    open_pid = int(listed[f"{topic}-open"][2])
    (described,) = _tool(tools_classpath, bootstrap, "describe", "--transactional-id", f"{topic}-open")
    # CoordinatorId TransactionalId ProducerId ProducerEpoch State TimeoutMs StartTimeMs DurationMs TopicPartitions
    assert described[1:5] == [f"{topic}-open", str(open_pid), "0", "Ongoing"]
    assert described[5] == "600000" and described[8] == f"{topic}-0"

    # ProducerId ProducerEpoch LatestCoordinatorEpoch LastSequence LastTimestamp CurrentTransactionStartOffset
    producers = {int(r[0]): r for r in _tool(tools_classpath, bootstrap, "describe-producers", "--topic", topic, "--partition", "0")}
    assert producers[hung_pid][1:4] == ["0", "-1", "2"] and producers[hung_pid][5] == "0"
    assert producers[open_pid][1:4] == ["0", "-1", "1"] and producers[open_pid][5] == "6"
    done_pid = int(listed[f"{topic}-done"][2])
    assert producers[done_pid][1:4] == ["0", "0", "1"] and producers[done_pid][5] == "None"
    assert _stable_end(bootstrap, topic) == 0, "the hanging transaction holds the last stable offset"

    # The open transaction is the coordinator's: never hanging, however short the timeout.
    for timeout_args in ([], ["--max-transaction-timeout", "0"]):
        hanging = _tool(tools_classpath, bootstrap, "find-hanging", "--broker-id", str(broker_id), *timeout_args)
        # Topic Partition ProducerId ProducerEpoch CoordinatorEpoch StartOffset LastTimestamp Duration(min)
        assert [r[:6] for r in hanging] == [[topic, "0", str(hung_pid), "0", "-1", "0"]], hanging
        assert int(hanging[0][7]) >= 19

    _tool(tools_classpath, bootstrap, "abort", "--topic", topic, "--partition", "0", "--start-offset", "0")
    assert _tool(tools_classpath, bootstrap, "find-hanging", "--broker-id", str(broker_id), "--max-transaction-timeout", "0") == []
    wait_until(lambda: _stable_end(bootstrap, topic) == 6, timeout=T, message="the last stable offset to move to the open transaction")
    assert _read_committed(bootstrap, topic, expect=2) == ["committed-0", "committed-1"]

    open_txn.commit_transaction(T)
    # A second hanging transaction, aborted by producer id, epoch and coordinator epoch
    # (abort's form for brokers before 3.0), the latter as describe-producers shows it.
    hung2_pid, first2 = _hanging_batch(bootstrap, topic, ["hung2-0"], age_s=0)
    assert first2 == 10, "after 8 (the ABORT), 9 (the COMMIT)"
    producers = {int(r[0]): r for r in _tool(tools_classpath, bootstrap, "describe-producers", "--topic", topic, "--partition", "0")}
    assert producers[hung_pid][2] == "0" and producers[hung_pid][5] == "None", "closed by the abort's marker"
    assert producers[hung2_pid][5] == "10"
    assert _stable_end(bootstrap, topic) == 10
    _tool(tools_classpath, bootstrap, "abort", "--topic", topic, "--partition", "0", "--producer-id", str(hung2_pid),
          "--producer-epoch", producers[hung2_pid][1], "--coordinator-epoch", producers[hung2_pid][2])
    wait_until(lambda: _stable_end(bootstrap, topic) == 12, timeout=T, message="the last stable offset to pass the second abort")
    assert _read_committed(bootstrap, topic, expect=4) == ["committed-0", "committed-1", "open-0", "open-1"]
    done.flush(T)
    open_txn.flush(T)
