"""Transactions across a three-node cluster with confluent-kafka (librdkafka): the coordinator
of a transactional id is the leader of its __transaction_state partition, markers reach
partitions other brokers lead, and offsets sent to a transaction commit with it through the
group's coordinator wherever that is. A consume-transform-produce loop runs while the
coordinator's node is killed; read_committed then shows every input transformed exactly once
and nothing of the aborted transactions. Every wait is bounded."""

from __future__ import annotations

import os
import signal
import time

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import CLIENT_TIMEOUT_S, JAVA, ck_consumer, ck_producer, wait_until
from test_cluster import offsets_partition
from test_java import java  # noqa: F401 (the fixture)

INPUTS = 600
T = 10.0


def _leader(admin: AdminClient, topic: str, partition: int) -> int | None:
    try:
        p = admin.list_topics(topic, timeout=5).topics[topic].partitions.get(partition)
    except KafkaException:
        return None
    return p.leader if p is not None and p.error is None and p.leader >= 0 else None


def _committed(consumer, partitions: list[TopicPartition]) -> list[TopicPartition]:
    """The group's committed offsets, asked again while librdkafka passes on a coordinator's
    "ask again" (NOT_COORDINATOR as the group's partition changes hands, or while a new
    leader loads it), as an application retries."""
    retriable = (KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS, KafkaError.COORDINATOR_NOT_AVAILABLE)
    deadline = time.monotonic() + CLIENT_TIMEOUT_S
    while True:
        try:
            return consumer.committed(partitions, timeout=CLIENT_TIMEOUT_S)
        except KafkaException as e:
            if e.args[0].code() not in retriable or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _read_committed(bootstrap: str, topic: str, partitions: int, expect: int) -> list[str]:
    c = ck_consumer(bootstrap, **{"isolation.level": "read_committed", "enable.partition.eof": True})
    try:
        c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        values: list[str] = []
        deadline = time.monotonic() + CLIENT_TIMEOUT_S
        quiet_until = None
        while time.monotonic() < deadline:
            for m in c.consume(num_messages=500, timeout=0.3):
                if m.error() is None:
                    values.append(m.value().decode())
            if len(values) < expect:
                continue
            quiet_until = quiet_until or time.monotonic() + 2
            if time.monotonic() >= quiet_until:
                break
        return values
    finally:
        c.close()


def test_consume_transform_produce_through_the_transaction_coordinators_kill(cluster):
    bootstrap = cluster.all_live()
    admin = AdminClient({"bootstrap.servers": bootstrap})
    configs = {"min.insync.replicas": "2"}
    for f in admin.create_topics([NewTopic(t, num_partitions=3, replication_factor=3, config=configs) for t in ("in", "out")]).values():
        f.result(30)
    wait_until(lambda: all(_leader(admin, t, p) for t in ("in", "out") for p in range(3)) or None,
               timeout=CLIENT_TIMEOUT_S, message="leaders for every partition")
    plain = ck_producer(bootstrap, acks="all")
    for i in range(INPUTS):
        plain.produce("in", value=f"in-{i}".encode(), partition=i % 3)
    assert plain.flush(30) == 0

    settings = {"group.id": "eos", "isolation.level": "read_committed", "auto.offset.reset": "earliest",
                "enable.auto.commit": False}
    consumer = ck_consumer(bootstrap, **settings)
    inputs = [TopicPartition("in", p) for p in range(3)]
    consumer.assign(inputs)

    def new_producer():
        p = ck_producer(bootstrap, **{"transactional.id": txn_id, "transaction.timeout.ms": 20000})
        p.init_transactions(CLIENT_TIMEOUT_S)
        return p

    def rewind():
        """Back to the committed offsets, as an EOS application does after an abort."""
        for tp in _committed(consumer, inputs):
            consumer.seek(TopicPartition("in", tp.partition, tp.offset if tp.offset >= 0 else 0))

    # The node killed coordinates the transaction but not the group: when the group's
    # coordinator dies, librdkafka's send_offsets_to_transaction can block past its timeout
    # (confluentinc/librdkafka#5456, #5511), which `scripts/crashtest --txn --cluster` copes
    # with by restarting the client. So an id whose coordinator (the leader of its partition of
    # __transaction_state) is not the group's (the leader of its __consumer_offsets partition).
    _committed(consumer, inputs)
    group_coordinator = wait_until(lambda: _leader(admin, "__consumer_offsets", offsets_partition("eos")),
                                   timeout=CLIENT_TIMEOUT_S, message="the group coordinator")
    for n in range(50):
        txn_id = f"eos-across-the-cluster-{n}"
        producer = new_producer()
        state_partition = offsets_partition(txn_id)
        coordinator = wait_until(lambda: _leader(admin, "__transaction_state", state_partition),
                                 timeout=CLIENT_TIMEOUT_S, message="the transaction coordinator")
        if coordinator != group_coordinator:
            break
    else:
        pytest.fail("no transactional id found whose coordinator is not the group's")
    committed = 0
    killed = False
    deadline = time.monotonic() + 4 * CLIENT_TIMEOUT_S
    rounds = 0
    while committed < INPUTS and time.monotonic() < deadline:
        batch = [m for m in consumer.consume(num_messages=40, timeout=1.0) if m.error() is None]
        if not batch:
            continue
        rounds += 1
        try:
            producer.begin_transaction()
            for m in batch:
                producer.produce("out", value=m.value().decode().replace("in", "out").encode(), partition=m.partition())
            if rounds % 4 == 0:
                # An aborted transaction: its records and offsets must never show.
                producer.produce("out", value=f"aborted-{rounds}".encode())
                producer.send_offsets_to_transaction(consumer.position(inputs), consumer.consumer_group_metadata(), T)
                producer.flush(T)
                producer.abort_transaction(T)
                rewind()
                continue
            producer.send_offsets_to_transaction(consumer.position(inputs), consumer.consumer_group_metadata(), T)
            producer.commit_transaction(CLIENT_TIMEOUT_S)
            committed = sum(max(tp.offset, 0) for tp in _committed(consumer, inputs))
        except KafkaException as e:
            error = e.args[0]
            if error.txn_requires_abort():
                try:
                    producer.abort_transaction(CLIENT_TIMEOUT_S)
                except KafkaException:
                    producer = new_producer()
            elif error.fatal() or error.code() == KafkaError._FENCED:
                producer = new_producer()
            else:
                # Retriable, or an outcome the client could not learn: begin again from the
                # last commit.
                try:
                    producer.abort_transaction(CLIENT_TIMEOUT_S)
                except KafkaException:
                    producer = new_producer()
            rewind()
        if not killed and committed >= INPUTS // 3:
            os.kill(cluster.node_pid(coordinator), signal.SIGKILL)
            killed = True
    consumer.close()
    producer.flush(T)
    assert killed and committed == INPUTS, f"committed {committed} of {INPUTS} inputs\n{cluster.log()}"

    survivors = ",".join(b for i, b in enumerate(cluster.bootstrap) if i + 1 != coordinator)
    values = _read_committed(survivors, "out", 3, INPUTS)
    assert not [v for v in values if v.startswith("aborted")], "an aborted record is visible"
    assert sorted(values) == sorted(f"out-{i}" for i in range(INPUTS)), \
        f"read_committed shows {len(values)} records, {len(set(values))} distinct, for {INPUTS} inputs"
    admin2 = AdminClient({"bootstrap.servers": survivors})
    moved = _leader(admin2, "__transaction_state", state_partition)
    assert moved not in (None, coordinator), "the id's coordinator moved"


@pytest.mark.skipif(JAVA is None, reason="java is not installed")
def test_java_transactions_across_the_cluster(java, cluster):
    """Java kafka-clients 4.x: commit/abort with read_committed, and sendOffsetsToTransaction
    with group metadata, on topics with three replicas whose leaders, group coordinator and
    transaction coordinator are spread over the brokers."""
    bootstrap = cluster.all_live()
    admin = AdminClient({"bootstrap.servers": bootstrap})
    names = ("jtxn", "jtxn-src", "jtxn-sink")
    for f in admin.create_topics([NewTopic(t, num_partitions=1, replication_factor=3) for t in names]).values():
        f.result(30)
    wait_until(lambda: all(_leader(admin, t, 0) for t in names) or None,
               timeout=CLIENT_TIMEOUT_S, message="leaders for every partition")

    def txn(*args):
        code, events, err = java.run("Transactions", "--bootstrap", bootstrap, *args)
        errors = [e for e in events if e.get("event") == "error"]
        assert code == 0 and not errors, f"Transactions {args} exited {code}: {errors}\nstderr: {err[-4000:]}\n{cluster.log()}"
        return events

    reads = {e["isolation"]: e for e in txn("commit-abort", "jtxn", "jtxn-id") if e.get("event") == "read"}
    assert reads["read_committed"]["values"] == ["c-0", "c-1", "c-2", "c-3"]
    assert reads["read_uncommitted"]["values"] == ["c-0", "c-1", "c-2", "a-0", "a-1", "c-3"]

    plain = ck_producer(bootstrap, acks="all")
    for i in range(4):
        plain.produce("jtxn-src", value=f"in-{i}".encode(), partition=0)
    assert plain.flush(30) == 0
    events = txn("eos", "jtxn-src", "jtxn-sink", "jtxn-group", "jtxn-eos-id")
    assert [e for e in events if e.get("event") == "committed"] == [{"event": "committed", "copied": 4, "offset": 4}]
    assert [e["values"] for e in events if e.get("event") == "read"] == [[f"out-{i}" for i in range(4)]]
