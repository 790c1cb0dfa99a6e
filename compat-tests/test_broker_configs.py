"""Dynamic broker configs (AlterConfigs / IncrementalAlterConfigs on a BROKER resource) with
the Python admin clients, each test on a broker of its own:

* kafka-python 3.0: ``alter_configs`` in its IncrementalAlterConfigs form and in the legacy
  AlterConfigs form (``incremental=False``: the broker's whole dynamic set is replaced, so
  kafka-python re-sends the keys already set), ``describe_configs`` with synonyms, and its
  client-side check that a key is dynamic, which reads the broker's read-only flags.
* confluent-kafka 2.16 (librdkafka): ``incremental_alter_configs`` and ``describe_configs`` for
  one broker (it refuses an empty broker name itself; test_java.py covers the cluster-wide
  default, ``kafka-configs --entity-default``).

Every change is checked by its effect, through the clients: records older than a new
``log.retention.ms`` disappear, a record over a new ``message.max.bytes`` is refused.
"""

from __future__ import annotations

import time

import pytest

from conftest import (
    ck_admin,
    ck_producer,
    kp_admin,
    kp_consumer,
    kp_create_topic,
    kp_producer,
    start_broker,
    unique_topic,
    wait_until,
)


@pytest.fixture
def own_broker():
    """A broker whose dynamic configs no other test sees; retention runs every 100 ms."""
    b = start_broker(["--log-retention-check-interval-ms", "100"])
    try:
        yield b
    finally:
        b.cleanup()


def test_kafka_python_per_broker_configs_incremental_and_legacy(own_broker):
    from kafka import TopicPartition
    from kafka.admin import ConfigResource, ConfigResourceType

    broker_1 = lambda configs=None: ConfigResource(ConfigResourceType.BROKER, "1", configs=configs)  # noqa: E731
    admin = kp_admin(own_broker.bootstrap)
    try:
        topic = unique_topic("kp-dyn")
        kp_create_topic(own_broker.bootstrap, topic, 1)
        producer = kp_producer(own_broker.bootstrap, linger_ms=0)
        minute_ago = int(time.time() * 1000) - 60_000
        for i in range(3):  # three batches: retention keeps the last one
            producer.send(topic, f"v{i}".encode(), timestamp_ms=minute_ago).get(timeout=20)
        producer.close(timeout=5)
        tp = TopicPartition(topic, 0)
        consumer = kp_consumer(own_broker.bootstrap)
        time.sleep(0.5)
        assert consumer.beginning_offsets([tp])[tp] == 0, "the 7-day default keeps them"

        assert admin.alter_configs([broker_1({"log.retention.ms": "1000"})]) == {"broker": {"1": "OK"}}
        described = admin.describe_configs([broker_1()], include_synonyms=True, config_filter="all")
        retention = described["broker"]["1"]["log.retention.ms"]
        assert (retention["value"], retention["config_source"], retention["read_only"]) == (
            "1000", "DYNAMIC_BROKER_CONFIG", False)
        assert [(s["name"], s["source"]) for s in retention["synonyms"]] == [
            ("log.retention.ms", "DYNAMIC_BROKER_CONFIG"), ("log.retention.ms", "DEFAULT_CONFIG")]
        wait_until(lambda: consumer.beginning_offsets([tp])[tp] == 2,
                   message="retention to apply the dynamic log.retention.ms")
        consumer.close()

        # Legacy AlterConfigs replaces the level's set; kafka-python re-sends log.retention.ms.
        result = admin.alter_configs([broker_1({"log.retention.bytes": "1000000"})], incremental=False)
        assert result == {"broker": {"1": "OK"}}
        modified = admin.describe_configs([broker_1()])["broker"]["1"]
        assert {k: v["value"] for k, v in modified.items()} == {
            "log.retention.ms": "1000", "log.retention.bytes": "1000000"}

        # kafka-python refuses a read-only key itself, from the broker's read-only flags...
        with pytest.raises(ValueError, match="log.dirs"):
            admin.alter_configs([broker_1({"log.dirs": "/elsewhere"})])
        # ... and the broker refuses it as Kafka does when the client does not check.
        result = admin.alter_configs([broker_1({"log.dirs": "/elsewhere"})], raise_on_unknown=False)
        assert "InvalidRequestError" in result["broker"]["1"] and "log.dirs" in result["broker"]["1"]
        result = admin.alter_configs([broker_1({"log.retention.ms": "soon"})])
        assert "InvalidConfigurationError" in result["broker"]["1"]
    finally:
        admin.close()


def test_confluent_kafka_per_broker_configs(own_broker):
    from confluent_kafka import KafkaError
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource, ResourceType

    def alter(name, **configs):
        entries = [ConfigEntry(k.replace("_", "."), v, incremental_operation=AlterConfigOpType.SET)
                   for k, v in configs.items()]
        resource = ConfigResource(ResourceType.BROKER, name, incremental_configs=entries)
        return admin.incremental_alter_configs([resource])[resource].result(timeout=10)

    def describe(name):
        resource = ConfigResource(ResourceType.BROKER, name)
        return admin.describe_configs([resource])[resource].result(timeout=10)

    admin = ck_admin(own_broker.bootstrap)
    alter("1", message_max_bytes="2000", log_retention_ms="3600000")
    entries = describe("1")
    assert (entries["log.retention.ms"].value, entries["log.retention.ms"].source) == (
        "3600000", ConfigSource.DYNAMIC_BROKER_CONFIG.value)
    # (confluent-kafka keys synonyms by name, so the layers of one name fold into one.)
    assert list(entries["log.retention.ms"].synonyms) == ["log.retention.ms"]
    assert (entries["message.max.bytes"].value, entries["message.max.bytes"].source) == (
        "2000", ConfigSource.DYNAMIC_BROKER_CONFIG.value)
    assert entries["log.dirs"].is_read_only and not entries["message.max.bytes"].is_read_only

    # message.max.bytes: the next produce is held to it.
    topic = unique_topic("ck-dyn")
    kp_create_topic(own_broker.bootstrap, topic, 1)
    results = {}
    producer = ck_producer(own_broker.bootstrap, **{"linger.ms": 0})
    for key, size in (("small", 100), ("large", 5000)):  # one batch each
        producer.produce(topic, b"x" * size, key=key, on_delivery=lambda err, msg: results.update({msg.key(): err}))
        assert producer.flush(20) == 0
    assert results[b"small"] is None
    assert results[b"large"].code() == KafkaError.MSG_SIZE_TOO_LARGE

    with pytest.raises(Exception) as refused:
        alter("1", listeners="PLAINTEXT://127.0.0.1:1")
    assert refused.value.args[0].code() == KafkaError.INVALID_REQUEST
    assert "listeners" in refused.value.args[0].str()
