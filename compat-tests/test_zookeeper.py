"""Gregor's ZooKeeper listener against real ZooKeeper clients.

kazoo makes exactly the calls `kafka-topics --zookeeper` of Kafka 2.x makes, and the topic
it creates is then used through kafka-python; Kafka 2.8.2's own `kafka-topics` and
`kafka-configs` (from Maven Central) run with `--zookeeper` against the listener; ZooKeeper's
own CLI (Debian's `zookeeper` package, zkCli.sh) lists, reads and creates znodes
non-interactively. Kazoo's recipes (locks, watches, transactions) check the plain znode
semantics.
"""

import json
import os
import shutil
import subprocess

import pytest
from kafka import OffsetAndMetadata, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType
from kazoo.client import KazooClient
from kazoo.exceptions import BadArgumentsError, NodeExistsError, NoNodeError, RolledBackError

from conftest import (
    CLIENT_TIMEOUT_S,
    JAVA,
    free_port,
    java_tool,
    kp_admin,
    kp_consumer,
    kp_create_topic,
    kp_drain,
    kp_producer,
    maven_classpath,
    start_broker,
    unique_topic,
    wait_until,
)

ZKCLI = "/usr/share/zookeeper/bin/zkCli.sh"


def compact(value) -> bytes:
    """JSON as Kafka writes it: no spaces (also keeps it one argument for zkCli)."""
    return json.dumps(value, separators=(",", ":")).encode()


@pytest.fixture(scope="module")
def broker():
    """A broker that also serves the ZooKeeper protocol; `zk_hosts` is its address."""
    zk_port = free_port()
    b = start_broker(["--zookeeper-listener", f"127.0.0.1:{zk_port}"])
    b.zk_hosts = f"127.0.0.1:{zk_port}"
    try:
        yield b
    finally:
        b.cleanup()


@pytest.fixture
def zk(broker):
    client = KazooClient(hosts=broker.zk_hosts, timeout=10)
    client.start(timeout=CLIENT_TIMEOUT_S)
    yield client
    client.stop()
    client.close()


def kafka_topics(bootstrap):
    admin = kp_admin(bootstrap)
    try:
        return set(admin.list_topics())
    finally:
        admin.close()


def test_kafka_2x_create_topic_flow_then_produce_consume_and_delete(broker, zk, closing):
    topic = unique_topic("zk")
    # kafka-topics --zookeeper --create: the live brokers and their registrations ...
    ids = zk.get_children("/brokers/ids")
    assert ids == ["1"]
    for broker_id in ids:
        registration = json.loads(zk.get(f"/brokers/ids/{broker_id}")[0])
        assert registration["endpoints"] == [f"PLAINTEXT://{broker.bootstrap}"]
        assert (registration["host"], registration["port"]) == (broker.host, broker.port)
    # ... that the topic is neither there nor being deleted ...
    assert zk.exists(f"/brokers/topics/{topic}") is None
    assert zk.exists(f"/admin/delete_topics/{topic}") is None
    assert topic not in zk.get_children("/brokers/topics")
    # ... its configs (setData, and create when there is no node yet), then the assignment.
    configs = compact({"version": 1, "config": {"retention.ms": "3600000"}})
    with pytest.raises(NoNodeError):
        zk.set(f"/config/topics/{topic}", configs)
    zk.create(f"/config/topics/{topic}", configs)
    zk.create(f"/brokers/topics/{topic}", compact({"version": 1, "partitions": {"0": [1], "1": [1]}}))

    assert topic in kafka_topics(broker.bootstrap)
    assert json.loads(zk.get(f"/config/topics/{topic}")[0]) == {"version": 1, "config": {"retention.ms": "3600000"}}
    state = json.loads(zk.get(f"/brokers/topics/{topic}/partitions/1/state")[0])
    assert (state["leader"], state["isr"]) == (1, [1])

    producer = closing(kp_producer(broker.bootstrap))
    sent = [producer.send(topic, value=f"v{i}".encode(), partition=i % 2) for i in range(6)]
    producer.flush(timeout=CLIENT_TIMEOUT_S)
    assert sorted((m.partition, m.offset) for m in (f.get(timeout=CLIENT_TIMEOUT_S) for f in sent)) == [
        (0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    consumer = closing(kp_consumer(broker.bootstrap))
    partitions = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    assert sorted(r.value for r in kp_drain(consumer, 6)) == [f"v{i}".encode() for i in range(6)]
    group = unique_topic("zk-group")
    committer = closing(kp_consumer(broker.bootstrap, group_id=group))
    committer.commit({tp: OffsetAndMetadata(3, "", -1) for tp in partitions})

    # kafka-topics --zookeeper --delete.
    zk.create(f"/admin/delete_topics/{topic}")
    assert zk.exists(f"/brokers/topics/{topic}") is None
    assert zk.get_children("/admin/delete_topics") == []
    wait_until(lambda: topic not in kafka_topics(broker.bootstrap), message=f"{topic} gone from Kafka metadata")
    # The group's committed offsets went with the topic: recreated, it starts clean.
    kp_create_topic(broker.bootstrap, topic, 2)
    admin = closing(kp_admin(broker.bootstrap))
    assert admin.list_group_offsets(group)[group] == {}


@pytest.fixture(scope="module")
def kafka_2_8():
    """Runs Kafka 2.8.2's tools (compat-tests/kafka-tools-2.8/pom.xml) with `--zookeeper`
    against a broker; returns the tool's stdout, failing the test if it failed."""
    if not JAVA:
        pytest.skip("java is missing")
    classpath = maven_classpath("kafka-tools-2.8")

    def run(broker, main_class, *args):
        code, out, err = java_tool(classpath, main_class, "--zookeeper", broker.zk_hosts, *args)
        assert code == 0, f"{main_class} {' '.join(args)} exited {code}:\n{out}\n{err[-3000:]}"
        return out

    return run


def test_kafka_2_8_kafka_topics_and_kafka_configs_through_zookeeper(broker, kafka_2_8, closing):
    """Kafka 2.8's `kafka-topics --zookeeper` creates, lists, describes, grows and deletes a
    topic and `kafka-configs --zookeeper` changes its configs; Kafka clients see each step."""
    topics, configs = "kafka.admin.TopicCommand", "kafka.admin.ConfigCommand"
    topic = unique_topic("zk-2.8")
    created = kafka_2_8(broker, topics, "--create", "--topic", topic, "--partitions", "3",
                        "--replication-factor", "1", "--config", "retention.ms=3600000")
    assert f"Created topic {topic}." in created
    assert topic in kafka_2_8(broker, topics, "--list").split()
    described = kafka_2_8(broker, topics, "--describe", "--topic", topic)
    assert "PartitionCount: 3" in described and "Configs: retention.ms=3600000" in described
    assert f"Topic: {topic}\tPartition: 2\tLeader: 1\tReplicas: 1\tIsr: 1" in described
    assert topic in kafka_topics(broker.bootstrap)

    assert "Adding partitions succeeded!" in kafka_2_8(broker, topics, "--alter", "--topic", topic, "--partitions", "4")
    producer = closing(kp_producer(broker.bootstrap))
    wait_until(lambda: len(producer.partitions_for(topic) or ()) == 4, message="the fourth partition in metadata")
    placed = producer.send(topic, value=b"on the new partition", partition=3).get(timeout=CLIENT_TIMEOUT_S)
    assert (placed.partition, placed.offset) == (3, 0)
    consumer = closing(kp_consumer(broker.bootstrap))
    consumer.assign([TopicPartition(topic, 3)])
    consumer.seek_to_beginning()
    assert [r.value for r in kp_drain(consumer, 1)] == [b"on the new partition"]

    kafka_2_8(broker, configs, "--alter", "--entity-type", "topics", "--entity-name", topic,
              "--add-config", "cleanup.policy=compact", "--delete-config", "retention.ms")
    assert "are cleanup.policy=compact" in kafka_2_8(broker, configs, "--describe", "--entity-type", "topics",
                                                     "--entity-name", topic)
    admin = closing(kp_admin(broker.bootstrap))
    seen = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])["topic"][topic]
    assert seen["cleanup.policy"]["value"] == "compact"
    assert seen.get("retention.ms", {}).get("config_source") != "DYNAMIC_TOPIC_CONFIG"

    assert f"Topic {topic} is marked for deletion." in kafka_2_8(broker, topics, "--delete", "--topic", topic)
    wait_until(lambda: topic not in kafka_topics(broker.bootstrap), message=f"{topic} gone from Kafka metadata")
    assert topic not in kafka_2_8(broker, topics, "--list").split()


def test_bad_assignments_are_refused(broker, zk):
    topic = unique_topic("zk-bad")
    with pytest.raises(BadArgumentsError):
        zk.create(f"/brokers/topics/{topic}", compact({"version": 1, "partitions": {"0": [2]}}))
    with pytest.raises(BadArgumentsError):
        zk.create(f"/brokers/topics/{topic}", b"{not json")
    assert zk.exists(f"/brokers/topics/{topic}") is None
    kp_create_topic(broker.bootstrap, topic, 1)
    with pytest.raises(NodeExistsError):
        zk.create(f"/brokers/topics/{topic}", compact({"version": 1, "partitions": {"0": [1]}}))


def test_topics_made_through_kafka_are_watched_znodes(broker, zk):
    seen = []

    @zk.ChildrenWatch("/brokers/topics")
    def topics(children):
        seen.append(set(children))

    topic = unique_topic("zk-watched")
    kp_create_topic(broker.bootstrap, topic, 3)
    wait_until(lambda: any(topic in s for s in seen), message="the watch to report the new topic")
    assert sorted(zk.get_children(f"/brokers/topics/{topic}/partitions")) == ["0", "1", "2"]


def test_plain_znodes_locks_and_transactions(broker, zk):
    base = f"/apps/{unique_topic('zk-app')}"
    zk.ensure_path(base)
    path = zk.create(f"{base}/item-", b"x", sequence=True)
    assert path == f"{base}/item-0000000000"
    data, stat = zk.get(path)
    zk.set(path, b"y", version=stat.version)
    assert zk.get(path)[1].version == 1

    # A lock held by one client blocks another until released (ephemeral sequential nodes
    # and watches underneath).
    other = KazooClient(hosts=broker.zk_hosts, timeout=10)
    other.start(timeout=CLIENT_TIMEOUT_S)
    try:
        mine, theirs = zk.Lock(f"{base}/lock", "me"), other.Lock(f"{base}/lock", "them")
        assert mine.acquire(timeout=CLIENT_TIMEOUT_S)
        assert not theirs.acquire(blocking=False)
        mine.release()
        assert theirs.acquire(timeout=CLIENT_TIMEOUT_S)
        theirs.release()
        other.create(f"{base}/ephemeral", ephemeral=True)
    finally:
        other.stop()
        other.close()
    assert zk.exists(f"{base}/ephemeral") is None

    tx = zk.transaction()
    tx.create(f"{base}/a", b"1")
    tx.check(path, 7)
    results = tx.commit()
    assert isinstance(results[0], RolledBackError)
    assert zk.exists(f"{base}/a") is None
    tx = zk.transaction()
    tx.create(f"{base}/a", b"1")
    tx.check(path, 1)
    tx.delete(path)
    assert tx.commit() == [f"{base}/a", True, True]


@pytest.fixture(scope="module")
def zkcli():
    if not (os.path.exists(ZKCLI) and shutil.which("java")):
        pytest.skip(f"{ZKCLI} or java is missing (apt-get install zookeeper)")

    def run(broker, *args):
        # zkCli prints some results (such as "Created ...") on stderr.
        done = subprocess.run([ZKCLI, "-server", broker.zk_hosts, *args], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, done.stdout
        return done.stdout.splitlines()

    return run


def test_zkcli_lists_reads_and_creates(broker, zkcli):
    made_by_kafka = unique_topic("zk-cli")
    kp_create_topic(broker.bootstrap, made_by_kafka, 2)
    listing = zkcli(broker, "ls", "/brokers/topics")
    assert any(line.startswith("[") and made_by_kafka in line for line in listing), listing
    assert '{"version":1,"partitions":{"0":[1],"1":[1]}}' in zkcli(broker, "get", f"/brokers/topics/{made_by_kafka}")

    made_by_cli = unique_topic("zk-cli")
    assignment = compact({"version": 1, "partitions": {"0": [1]}}).decode()
    assert f"Created /brokers/topics/{made_by_cli}" in zkcli(broker, "create", f"/brokers/topics/{made_by_cli}", assignment)
    assert made_by_cli in kafka_topics(broker.bootstrap)
    zkcli(broker, "create", f"/admin/delete_topics/{made_by_cli}")
    assert made_by_cli not in kafka_topics(broker.bootstrap)
