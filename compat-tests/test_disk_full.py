"""A full data disk: produce gets KAFKA_STORAGE_ERROR, fetch and groups keep working, nothing
already written is damaged, and producing resumes by itself once space is freed.

The data directory is a small tmpfs, so this needs root (to mount); it is skipped otherwise.
"""

import os
import subprocess
import tempfile

import pytest

from conftest import (BrokerStartError, GregorBroker, gregor_binary, kp_consumer,
                      kp_create_topic, ck_consumer, ck_producer, wait_until)

TMPFS_SIZE_MB = 48
FILLER_MB = 30
RECORD = b"r" * 1000


@pytest.fixture(scope="module")
def small_disk():
    if os.geteuid() != 0:
        pytest.skip("mounting a size-limited tmpfs needs root")
    mountpoint = tempfile.mkdtemp(prefix="gregor-full-")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE_MB}m", "tmpfs", mountpoint],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        os.rmdir(mountpoint)
        pytest.skip(f"cannot mount tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", mountpoint], check=False)
        os.rmdir(mountpoint)


@pytest.fixture(scope="module")
def full_broker(small_disk):
    b = GregorBroker(gregor_binary())
    b.data_dir = os.path.join(small_disk, "data")
    os.makedirs(b.data_dir)
    try:
        b.start()
    except BrokerStartError as e:
        b.cleanup()
        pytest.fail(str(e), pytrace=False)
    try:
        yield b
    finally:
        b.cleanup()


def produce(bootstrap, topic, count, value):
    """Sends ``count`` records; returns (acknowledged (partition, offset) list, error codes)."""
    acked, errors = [], {}

    def delivered(err, msg):
        if err is None:
            acked.append((msg.partition(), msg.offset()))
        else:
            errors[err.name()] = errors.get(err.name(), 0) + 1

    p = ck_producer(bootstrap, **{"linger.ms": 5, "message.timeout.ms": 4000, "retries": 0,
                                  "enable.idempotence": False})
    for _ in range(count):
        while True:
            try:
                p.produce(topic, value, partition=0, callback=delivered)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    p.flush(30)
    return acked, errors


def read_all(bootstrap, topic, expected):
    from confluent_kafka import TopicPartition
    c = ck_consumer(bootstrap)
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        got = []
        wait_until(lambda: got.extend(m for m in c.consume(500, timeout=0.5) if m.error() is None)
                   or len(got) >= expected, timeout=30, message=f"{expected} records")
        return got
    finally:
        c.close()


def test_full_disk_refuses_writes_keeps_serving_and_recovers(full_broker, small_disk):
    bootstrap, topic = full_broker.bootstrap, "filling"
    kp_create_topic(bootstrap, topic, 1)
    filler = os.path.join(small_disk, "filler")
    with open(filler, "wb") as f:
        f.write(b"\0" * (FILLER_MB << 20))

    acked, errors = produce(bootstrap, topic, 30000, RECORD)
    assert acked, "some records fit before the disk filled"
    assert errors.get("KAFKA_STORAGE_ERROR"), f"a full disk is reported as KAFKA_STORAGE_ERROR, got {errors}"
    assert full_broker.is_running()

    # Reads and group reads keep working on a full disk, and what was acknowledged is intact.
    records = read_all(bootstrap, topic, len(acked))
    assert [m.offset() for m in records[:len(acked)]] == sorted(o for _, o in acked)
    assert all(m.value() == RECORD for m in records)
    group_reader = kp_consumer(bootstrap, group_id="survivors", enable_auto_commit=False,
                               auto_offset_reset="earliest")
    try:
        group_reader.subscribe([topic])
        seen = 0
        for _ in range(60):
            seen += sum(len(v) for v in group_reader.poll(timeout_ms=500).values())
            if seen >= len(acked):
                break
        assert seen >= len(acked)
    finally:
        group_reader.close(autocommit=False)

    os.remove(filler)
    # Producing resumes by itself once there is space again.
    more = []
    wait_until(lambda: more.extend(produce(bootstrap, topic, 20, b"after")[0]) or len(more) >= 20,
               timeout=30, message="producing to resume after space was freed")
    records = read_all(bootstrap, topic, len(acked) + len(more))
    assert [m.offset() for m in records] == list(range(len(records)))
    assert sum(m.value() == RECORD for m in records) == len(acked)
