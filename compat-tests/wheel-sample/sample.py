"""A user's test suite on the fixtures of the gregor-kafka wheel, with kafka-python and
confluent-kafka. test_wheel.py copies it into a fresh project (as test_sample.py) whose venv has
the wheel installed; it is not collected by the compat suite itself."""

import os
import shutil
import subprocess
import time

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, ConfigResource
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

import gregor

TIMEOUT_S = 20


def test_kafka_python_on_three_partitions(kafka_broker, kafka_topic):
    topic = kafka_topic(partitions=3)
    producer = KafkaProducer(bootstrap_servers=kafka_broker)
    for p in range(3):
        producer.send(topic, f"to {p}".encode(), partition=p).get(timeout=TIMEOUT_S)
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=kafka_broker, auto_offset_reset="earliest")
    consumer.assign([TopicPartition(topic, p) for p in range(3)])
    got, deadline = [], time.monotonic() + TIMEOUT_S
    while len(got) < 3 and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            got.extend((r.partition, r.value) for r in records)
    consumer.close()
    assert sorted(got) == [(p, f"to {p}".encode()) for p in range(3)]


def test_confluent_kafka_group_reads_what_kafka_python_wrote(kafka_broker, kafka_topic):
    topic = kafka_topic()
    producer = KafkaProducer(bootstrap_servers=kafka_broker)
    for i in range(5):
        producer.send(topic, f"m{i}".encode())
    producer.flush(timeout=TIMEOUT_S)
    producer.close()
    consumer = Consumer({"bootstrap.servers": kafka_broker, "group.id": f"{topic}-group",
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    got, deadline = [], time.monotonic() + TIMEOUT_S
    while len(got) < 5 and time.monotonic() < deadline:
        m = consumer.poll(0.5)
        if m is not None and m.error() is None:
            got.append(m.value())
    consumer.close()
    assert got == [f"m{i}".encode() for i in range(5)]


def test_topic_config_is_applied(kafka_broker, kafka_topic):
    topic = kafka_topic(config={"cleanup.policy": "compact"})
    admin = AdminClient({"bootstrap.servers": kafka_broker})
    (future,) = admin.describe_configs([ConfigResource("topic", topic)]).values()
    assert future.result(timeout=TIMEOUT_S)["cleanup.policy"].value == "compact"
    producer = Producer({"bootstrap.servers": kafka_broker})
    producer.produce(topic, key=b"k", value=b"v")
    assert producer.flush(TIMEOUT_S) == 0


def test_broker_context_manager_and_command():
    """gregor.Broker outside the fixtures, and the `gregor` command the wheel installed."""
    with gregor.Broker("--num-partitions", "2") as broker:
        producer = Producer({"bootstrap.servers": broker.bootstrap})
        producer.produce("auto-created", value=b"x")
        assert producer.flush(TIMEOUT_S) == 0
        assert len(producer.list_topics("auto-created", timeout=TIMEOUT_S).topics["auto-created"].partitions) == 2
        data = broker.dir
    assert broker.proc.returncode == 0 and not os.path.exists(data)
    assert gregor.binary() == shutil.which("gregor")
    assert subprocess.run(["gregor", "--version"], capture_output=True, text=True).stdout.startswith("gregor ")
