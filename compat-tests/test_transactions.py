"""Kafka transactions with confluent-kafka (librdkafka): commit and abort, read_committed
against read_uncommitted consumers, consume-transform-produce with
send_offsets_to_transaction, zombie fencing, and the broker aborting a timed-out
transaction. Every wait is bounded."""

import time

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import NewTopic

from conftest import CLIENT_TIMEOUT_S, ck_admin, ck_consumer, ck_producer, unique_topic, wait_until

T = 10.0


def _create_topic(bootstrap, name, partitions=1):
    admin = ck_admin(bootstrap)
    futures = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)],
                                  operation_timeout=T, request_timeout=T)
    futures[name].result(timeout=CLIENT_TIMEOUT_S)


def _txn_producer(bootstrap, txn_id, **overrides):
    return ck_producer(bootstrap, **{"transactional.id": txn_id, **overrides})


def _values(bootstrap, topic, isolation, partitions=1, expect=None, settle=1.5):
    """Every record value a fresh consumer with `isolation` reads from the start. With
    `expect`, reads until that many arrived; then reads on for `settle` seconds so extra
    (wrongly visible) records would show up too."""
    c = ck_consumer(bootstrap, **{"isolation.level": isolation, "auto.offset.reset": "earliest",
                                 "enable.partition.eof": True})
    try:
        c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        values = []
        deadline = time.monotonic() + CLIENT_TIMEOUT_S
        quiet_until = None
        while time.monotonic() < deadline:
            got = c.consume(num_messages=500, timeout=0.3)
            for m in got:
                if m.error() is None:
                    values.append(m.value().decode())
                elif m.error().code() != KafkaError._PARTITION_EOF:
                    raise KafkaException(m.error())
            if expect is not None and len(values) < expect:
                continue
            if quiet_until is None:
                quiet_until = time.monotonic() + settle
            if time.monotonic() >= quiet_until:
                break
        return values
    finally:
        c.close()


def _end_offset(bootstrap, topic, isolation):
    c = ck_consumer(bootstrap, **{"isolation.level": isolation})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=T, cached=False)[1]
    finally:
        c.close()


def test_commit_and_abort_seen_by_read_committed_and_read_uncommitted(broker):
    topic = unique_topic("txn")
    _create_topic(broker.bootstrap, topic, partitions=2)
    p = _txn_producer(broker.bootstrap, unique_topic("txn-id"))
    p.init_transactions(T)
    p.begin_transaction()
    for i in range(10):
        p.produce(topic, value=f"committed-{i}", partition=i % 2)
    p.commit_transaction(T)
    p.begin_transaction()
    for i in range(5):
        p.produce(topic, value=f"aborted-{i}", partition=i % 2)
    p.flush(T)
    p.abort_transaction(T)
    p.begin_transaction()
    p.produce(topic, value="committed-last", partition=0)
    p.commit_transaction(T)
    p.flush(T)

    committed = _values(broker.bootstrap, topic, "read_committed", partitions=2, expect=11)
    assert sorted(committed) == sorted([f"committed-{i}" for i in range(10)] + ["committed-last"])
    everything = _values(broker.bootstrap, topic, "read_uncommitted", partitions=2, expect=16)
    assert sorted(everything) == sorted([f"committed-{i}" for i in range(10)] + [f"aborted-{i}" for i in range(5)] + ["committed-last"]), \
        "read_uncommitted sees the aborted records, and no control record as data"


def test_an_open_transaction_holds_read_committed_back_at_the_last_stable_offset(broker):
    topic = unique_topic("txn-lso")
    _create_topic(broker.bootstrap, topic)
    plain = ck_producer(broker.bootstrap)
    plain.produce(topic, value="before")
    plain.flush(T)
    p = _txn_producer(broker.bootstrap, unique_topic("txn-id"))
    p.init_transactions(T)
    p.begin_transaction()
    p.produce(topic, value="open-1")
    p.flush(T)
    plain.produce(topic, value="after")
    plain.flush(T)
    # Latest offset: the LSO (1) for read_committed, the high watermark (3) otherwise.
    assert _end_offset(broker.bootstrap, topic, "read_committed") == 1
    assert _end_offset(broker.bootstrap, topic, "read_uncommitted") == 3
    assert _values(broker.bootstrap, topic, "read_committed", expect=1) == ["before"]
    p.commit_transaction(T)
    assert _values(broker.bootstrap, topic, "read_committed", expect=3) == ["before", "open-1", "after"]
    # The marker takes an offset: the log ends at 4.
    assert _end_offset(broker.bootstrap, topic, "read_committed") == 4


def test_send_offsets_to_transaction_consume_transform_produce(broker):
    source, sink = unique_topic("txn-src"), unique_topic("txn-sink")
    _create_topic(broker.bootstrap, source)
    _create_topic(broker.bootstrap, sink)
    group = unique_topic("txn-group")
    plain = ck_producer(broker.bootstrap)
    for i in range(6):
        plain.produce(source, value=f"in-{i}")
    plain.flush(T)

    consumer = ck_consumer(broker.bootstrap, **{"group.id": group, "isolation.level": "read_committed",
                                               "auto.offset.reset": "earliest", "session.timeout.ms": 6000})
    producer = _txn_producer(broker.bootstrap, unique_topic("txn-id"))
    try:
        producer.init_transactions(T)
        consumer.subscribe([source])
        taken = []
        deadline = time.monotonic() + CLIENT_TIMEOUT_S
        while len(taken) < 3 and time.monotonic() < deadline:
            m = consumer.poll(0.5)
            if m is not None and m.error() is None:
                taken.append(m)
        assert len(taken) == 3, "the consumer got its first records"

        def transform(msgs, commit):
            producer.begin_transaction()
            for m in msgs:
                producer.produce(sink, value=m.value().decode().replace("in", "out"))
            last = msgs[-1]
            offsets = [TopicPartition(source, last.partition(), last.offset() + 1)]
            producer.send_offsets_to_transaction(offsets, consumer.consumer_group_metadata(), T)
            # Delivered first: librdkafka's abort would drop records still queued.
            producer.flush(T)
            if commit:
                producer.commit_transaction(T)
            else:
                producer.abort_transaction(T)

        transform(taken[:2], commit=False)
        # An aborted transaction commits no offset.
        assert consumer.committed([TopicPartition(source, 0)], timeout=T)[0].offset < 0
        transform(taken[:2], commit=True)
        assert consumer.committed([TopicPartition(source, 0)], timeout=T)[0].offset == 2
        transform(taken[2:], commit=True)
        assert consumer.committed([TopicPartition(source, 0)], timeout=T)[0].offset == 3
    finally:
        consumer.close()
    assert _values(broker.bootstrap, sink, "read_committed", expect=3) == ["out-0", "out-1", "out-2"]
    assert len(_values(broker.bootstrap, sink, "read_uncommitted", expect=5)) == 5


def test_a_second_producer_with_the_same_transactional_id_fences_the_first(broker):
    topic = unique_topic("txn-fence")
    _create_topic(broker.bootstrap, topic)
    txn_id = unique_topic("txn-id")
    zombie = _txn_producer(broker.bootstrap, txn_id)
    zombie.init_transactions(T)
    zombie.begin_transaction()
    zombie.produce(topic, value="zombie")
    zombie.flush(T)

    # The new instance's InitProducerId aborts the zombie's open transaction and bumps the epoch.
    fresh = _txn_producer(broker.bootstrap, txn_id)
    fresh.init_transactions(T)
    fresh.begin_transaction()
    fresh.produce(topic, value="fresh")
    fresh.commit_transaction(T)

    with pytest.raises(KafkaException) as fenced:
        zombie.produce(topic, value="zombie-2")
        zombie.commit_transaction(T)
    error = fenced.value.args[0]
    assert error.fatal() or error.code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED,
                                             KafkaError.INVALID_PRODUCER_EPOCH), error
    assert _values(broker.bootstrap, topic, "read_committed", expect=1) == ["fresh"]


@pytest.fixture(scope="module")
def quick_abort_broker():
    """A broker that checks for timed-out transactions every 200 ms."""
    from conftest import start_broker

    b = start_broker(extra_args=["--transaction-abort-timed-out-transaction-cleanup-interval-ms", "200"])
    try:
        yield b
    finally:
        b.cleanup()


def test_the_broker_aborts_a_transaction_past_its_timeout(quick_abort_broker):
    bootstrap = quick_abort_broker.bootstrap
    topic = unique_topic("txn-timeout")
    _create_topic(bootstrap, topic)
    p = _txn_producer(bootstrap, unique_topic("txn-id"), **{"transaction.timeout.ms": 3000, "socket.timeout.ms": 2000,
                                                           "message.timeout.ms": 2500})
    p.init_transactions(T)
    p.begin_transaction()
    p.produce(topic, value="too-slow")
    p.flush(T)
    # The abort marker moves the LSO past the transaction: read_committed sees its end.
    wait_until(lambda: _end_offset(bootstrap, topic, "read_committed") == 2, timeout=CLIENT_TIMEOUT_S,
               message="the timed-out transaction to be aborted")
    with pytest.raises(KafkaException):
        p.commit_transaction(T)
    assert _values(bootstrap, topic, "read_committed") == []
    assert _values(bootstrap, topic, "read_uncommitted", expect=1) == ["too-slow"]


def test_a_timeout_above_the_maximum_is_refused(broker):
    p = _txn_producer(broker.bootstrap, unique_topic("txn-id"), **{"transaction.timeout.ms": 900001})
    with pytest.raises(KafkaException) as refused:
        p.init_transactions(T)
    assert refused.value.args[0].code() == KafkaError.INVALID_TRANSACTION_TIMEOUT


def test_kill_9_mid_transaction_leaves_no_aborted_record_visible():
    """A broker killed with a transaction open and one committed: after the restart the
    committed one is whole, and the open one is aborted when the producer's next instance
    fences it, its records never visible to read_committed."""
    from conftest import start_broker

    b = start_broker()
    try:
        topic = unique_topic("txn-kill")
        _create_topic(b.bootstrap, topic, partitions=2)
        txn_id = unique_topic("txn-id")
        p = _txn_producer(b.bootstrap, txn_id)
        p.init_transactions(T)
        p.begin_transaction()
        for i in range(6):
            p.produce(topic, value=f"kept-{i}", partition=i % 2)
        p.commit_transaction(T)
        p.begin_transaction()
        for i in range(4):
            p.produce(topic, value=f"lost-{i}", partition=i % 2)
        p.flush(T)
        b.kill9()
        p.purge(in_queue=True, in_flight=True, blocking=False)
        b.restart()

        # Until the open transaction ends, read_committed stops at its first offset.
        assert sorted(_values(b.bootstrap, topic, "read_committed", partitions=2, expect=6)) == [f"kept-{i}" for i in range(6)]
        fresh = _txn_producer(b.bootstrap, txn_id)
        fresh.init_transactions(T)
        fresh.begin_transaction()
        fresh.produce(topic, value="after", partition=0)
        fresh.commit_transaction(T)
        committed = _values(b.bootstrap, topic, "read_committed", partitions=2, expect=7)
        assert sorted(committed) == sorted([f"kept-{i}" for i in range(6)] + ["after"])
        everything = _values(b.bootstrap, topic, "read_uncommitted", partitions=2, expect=11)
        assert sorted(everything) == sorted([f"kept-{i}" for i in range(6)] + [f"lost-{i}" for i in range(4)] + ["after"])
    finally:
        b.cleanup()
