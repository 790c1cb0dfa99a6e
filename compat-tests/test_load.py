"""Load and limits: thousands of idle connections with bounded memory, 1 000 topics x 4
partitions, 50 producers and 50 consumers on one topic at once, and hundreds of long-polling
fetches that cost no CPU while idle and wake as soon as data arrives."""

import resource
import socket
import struct
import threading
import time

import pytest

from conftest import ck_admin, ck_consumer, ck_drain, ck_producer, kp_create_topic, recv_exactly, unique_topic

IDLE_CONNECTIONS = 10_000
LONG_POLLS = 300


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks


def still_serves(bootstrap):
    admin = ck_admin(bootstrap)
    assert admin.list_topics(timeout=10).brokers


def test_ten_thousand_idle_connections_with_bounded_memory(broker):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < IDLE_CONNECTIONS + 500:
        pytest.skip(f"open-files hard limit {hard} is below {IDLE_CONNECTIONS}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    pid = broker.proc.pid
    before = rss_mb(pid)
    sockets = []
    try:
        for _ in range(IDLE_CONNECTIONS):
            sockets.append(socket.create_connection(("127.0.0.1", broker.port), timeout=10))
        time.sleep(1)
        during = rss_mb(pid)
        print(f"\nRSS: {before:.1f} MB idle, {during:.1f} MB with {IDLE_CONNECTIONS} idle connections "
              f"({(during - before) * 1024 / IDLE_CONNECTIONS:.1f} KiB each)")
        assert during - before < 150, "idle connections must cost little memory"
        still_serves(broker.bootstrap)
    finally:
        for s in sockets:
            s.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_thousand_topics_of_four_partitions(broker):
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import NewTopic

    prefix = unique_topic("many")
    names = [f"{prefix}-{i}" for i in range(1000)]
    admin = ck_admin(broker.bootstrap)
    for future in admin.create_topics([NewTopic(n, 4, 1) for n in names], request_timeout=60).values():
        future.result(timeout=60)
    listed = admin.list_topics(timeout=30).topics
    assert all(len(listed[n].partitions) == 4 for n in names)
    producer = ck_producer(broker.bootstrap, **{"linger.ms": 20})
    for n in names:
        for p in range(4):
            producer.produce(n, b"x", partition=p)
    assert producer.flush(60) == 0
    consumer = ck_consumer(broker.bootstrap)
    try:
        assert all(consumer.get_watermark_offsets(TopicPartition(n, p), timeout=10)[1] == 1
                   for n in names[::97] for p in range(4))
    finally:
        consumer.close()


def test_fifty_producers_and_fifty_consumers_on_one_topic(broker):
    from confluent_kafka import TopicPartition

    topic = unique_topic("crowd")
    kp_create_topic(broker.bootstrap, topic, 4)
    per_producer = 100
    errors = []

    def produce(i):
        try:
            p = ck_producer(broker.bootstrap, **{"linger.ms": 5})
            for n in range(per_producer):
                p.produce(topic, f"{i}-{n}".encode())
            assert p.flush(60) == 0
        except Exception as e:  # reported below
            errors.append(e)

    total = 50 * per_producer
    counts = []

    def consume():
        try:
            c = ck_consumer(broker.bootstrap)
            c.assign([TopicPartition(topic, p, 0) for p in range(4)])
            counts.append(len(ck_drain(c, total, timeout=60)))
            c.close()
        except Exception as e:
            errors.append(e)

    threads = [threading.Thread(target=produce, args=(i,)) for i in range(50)]
    threads += [threading.Thread(target=consume) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert not errors, errors[:3]
    assert counts == [total] * 50


def fetch_frame(topic, offset, max_wait_ms, correlation):
    """A Fetch v4 request for partition 0 of `topic` from `offset` (size-prefixed)."""
    name = topic.encode()
    body = struct.pack(">hhih", 1, 4, correlation, 4) + b"poll"
    body += struct.pack(">iiiib", -1, max_wait_ms, 1, 1 << 20, 0)
    body += struct.pack(">ih", 1, len(name)) + name
    body += struct.pack(">iiqi", 1, 0, offset, 1 << 20)
    return struct.pack(">i", len(body)) + body


def read_frame(sock):
    size = struct.unpack(">i", recv_exactly(sock, 4))[0]
    return recv_exactly(sock, size)


def test_hundreds_of_long_polls_are_free_while_idle_and_wake_on_data(broker):
    topic = unique_topic("polls")
    kp_create_topic(broker.bootstrap, topic, 1)
    producer = ck_producer(broker.bootstrap)
    producer.produce(topic, b"first", partition=0)
    assert producer.flush(20) == 0
    pid = broker.proc.pid
    polls = [socket.create_connection(("127.0.0.1", broker.port), timeout=20) for _ in range(LONG_POLLS)]
    try:
        # Everyone waits for offset 1 (not written yet), for up to 20 s.
        for i, s in enumerate(polls):
            s.sendall(fetch_frame(topic, 1, 20_000, i))
        time.sleep(0.5)
        start = cpu_seconds(pid)
        time.sleep(3)
        idle_cpu = cpu_seconds(pid) - start
        print(f"\nbroker CPU over 3 s with {LONG_POLLS} parked fetches: {idle_cpu:.2f} s")
        assert idle_cpu < 0.3, "parked long polls must not spin"
        woke = time.monotonic()
        producer.produce(topic, b"second", partition=0)
        assert producer.flush(20) == 0
        sizes = [len(read_frame(s)) for s in polls]
        elapsed = time.monotonic() - woke
        print(f"all {LONG_POLLS} long polls answered {elapsed * 1000:.0f} ms after the append")
        assert elapsed < 5, "long polls wake on new data, long before their 20 s deadline"
        assert min(sizes) > 60, "every answer carries the new batch"
    finally:
        for s in polls:
            s.close()


def test_one_request_slot_serves_a_group_and_a_producer():
    """queued.max.requests=1: JoinGroup/SyncGroup waits and fetch long polls park without a
    slot, so a 3-member confluent-kafka group and a producer all get through one slot."""
    from confluent_kafka import Consumer
    from confluent_kafka.admin import ConfigResource, NewTopic, ResourceType

    from conftest import start_broker

    b = start_broker(["--queued-max-requests", "1"])
    try:
        admin = ck_admin(b.bootstrap)
        broker_configs = admin.describe_configs([ConfigResource(ResourceType.BROKER, "1")])
        entries = list(broker_configs.values())[0].result(timeout=10)
        assert entries["queued.max.requests"].value == "1"
        topic = unique_topic("slot")
        admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])[topic].result(timeout=10)
        total = 3000
        group = unique_topic("slot-group")
        seen, errors, done = set(), [], threading.Event()
        lock = threading.Lock()

        def member():
            c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                          "session.timeout.ms": 10000, "socket.timeout.ms": 10000})
            c.subscribe([topic])
            try:
                while not done.is_set():
                    for m in c.consume(num_messages=500, timeout=0.5):
                        if m.error():
                            errors.append(m.error())
                            continue
                        with lock:
                            seen.add(m.value())
                            if len(seen) == total:
                                done.set()
            finally:
                c.close()

        threads = [threading.Thread(target=member) for _ in range(3)]
        for t in threads:
            t.start()
        p = ck_producer(b.bootstrap)
        for i in range(total):
            p.produce(topic, str(i).encode(), partition=i % 3)
        assert p.flush(30) == 0
        done.wait(45)
        done.set()
        for t in threads:
            t.join(30)
        assert not [e for e in errors if e.code() != -191], errors  # -191: partition EOF
        assert len(seen) == total
    finally:
        b.cleanup()
