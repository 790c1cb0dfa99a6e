"""aiokafka (Python asyncio) against a real Gregor broker.

Each test is a coroutine run by ``asyncio.run`` under an overall deadline
(``arun``); every client call inside is bounded too (``asyncio.wait_for``,
getmany(timeout_ms=...), request_timeout_ms), and every client started is
stopped in a ``finally`` (``Clients``), itself under a timeout.

Group consumers use a short heartbeat interval (500 ms) so that a rebalance is
noticed within a second, session_timeout_ms=10000 (above the broker's
--group-min-session-timeout-ms default of 6000) and rebalance_timeout_ms=10000.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.abc import AbstractTokenProvider
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import InvalidReplicationAssignmentError, KafkaConnectionError

from conftest import (JAVA, NODE_ID, SASL_CASES, deny_writes_and_reads, sasl_user,
                      kp_create_topic, kp_stored_bytes, log_since, secure_addr, unique_topic)
from test_oauthbearer import (idp, oauth_broker, refused_tokens, signed_broker,  # noqa: F401 (the fixtures)
                              unsecured_token)

TEST_DEADLINE_S = 50  # one whole test (each is well under the pytest timeout)
STOP_TIMEOUT_S = 10
REBALANCE_DEADLINE_S = 20
RECEIVE_DEADLINE_S = 20

COMMON = dict(request_timeout_ms=20000, retry_backoff_ms=100)
GROUP = dict(
    auto_offset_reset="earliest",
    enable_auto_commit=False,
    session_timeout_ms=10000,
    heartbeat_interval_ms=500,
    rebalance_timeout_ms=10000,
    fetch_max_wait_ms=100,
    metadata_max_age_ms=5000,
)


def arun(coro, timeout=TEST_DEADLINE_S):
    """Run ``coro`` to completion on a fresh event loop, failing after ``timeout`` s."""
    async def main():
        try:
            return await asyncio.wait_for(coro, timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"test coroutine did not finish within {timeout}s") from None
    return asyncio.run(main())


async def wait_until(predicate, what, timeout=RECEIVE_DEADLINE_S, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            what = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


class Clients:
    """``async with Clients() as clients``: ``await clients.start(client)`` starts
    a producer/consumer/admin and registers it; all are stopped on exit."""

    def __init__(self):
        self._started = []

    async def __aenter__(self):
        return self

    async def start(self, client):
        # Registered first: a client whose start() failed half-way still needs stop().
        self._started.append(client)
        await asyncio.wait_for(client.start(), REBALANCE_DEADLINE_S)
        return client

    async def stop(self, client):
        """Stop one client now (idempotent with the exit-time stop)."""
        if client in self._started:
            self._started.remove(client)
            await asyncio.wait_for(_stop(client), STOP_TIMEOUT_S)

    async def __aexit__(self, *exc):
        for client in reversed(self._started):
            try:
                await asyncio.wait_for(_stop(client), STOP_TIMEOUT_S)
            except Exception as e:  # go on stopping the others
                print(f"[aiokafka] error stopping {client!r}: {e!r}")
        self._started.clear()


async def _stop(client):
    if isinstance(client, AIOKafkaAdminClient):
        await client.close()
    else:
        await client.stop()


def producer(broker, **kw):
    cfg = dict(COMMON)
    cfg.update(kw)
    return AIOKafkaProducer(bootstrap_servers=broker.bootstrap, **cfg)


def group_consumer(broker, topic, group, **kw):
    cfg = dict(COMMON, client_id="gregor-compat-aiokafka")
    cfg.update(GROUP)
    cfg.update(kw)
    return AIOKafkaConsumer(topic, bootstrap_servers=broker.bootstrap, group_id=group, **cfg)


async def send_all(prod, topic, messages):
    """Send (value, partition) pairs concurrently; return RecordMetadata in order."""
    futures = [await prod.send(topic, value=v.encode(), key=v.encode(), partition=p)
               for v, p in messages]
    return [await asyncio.wait_for(f, RECEIVE_DEADLINE_S) for f in futures]


async def read_all(broker, clients, topic, partitions, expected):
    """A started consumer without a group, assigned every partition of ``topic`` and sought
    to the beginning, and the ``expected`` records it read (offset order per partition)."""
    cons = await clients.start(AIOKafkaConsumer(
        bootstrap_servers=broker.bootstrap, enable_auto_commit=False, fetch_max_wait_ms=100,
        **COMMON))
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    cons.assign(tps)
    await cons.seek_to_beginning(*tps)
    records = []
    deadline = time.monotonic() + RECEIVE_DEADLINE_S
    while len(records) < expected and time.monotonic() < deadline:
        for recs in (await cons.getmany(timeout_ms=200)).values():
            records.extend(recs)
    return cons, records


def spread(prefix, count, partitions):
    return [(f"{prefix}-{i}", i % partitions) for i in range(count)]


class Pump:
    """Polls a started consumer in a task, collecting every record it returns."""

    def __init__(self, consumer, name):
        self.consumer = consumer
        self.name = name
        self.records = []
        self.error = None
        self._task = asyncio.create_task(self._run())

    async def _run(self):
        try:
            while True:
                batch = await self.consumer.getmany(timeout_ms=100)
                for _tp, recs in sorted(batch.items()):
                    self.records.extend(recs)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # surfaced by check()
            self.error = e

    def check(self):
        if self.error is not None:
            raise AssertionError(f"consumer {self.name} failed: {self.error!r}") from self.error

    def values(self):
        return [r.value.decode() for r in self.records]

    def partitions(self):
        return sorted(tp.partition for tp in self.consumer.assignment())

    async def wait(self, predicate, what, timeout=RECEIVE_DEADLINE_S):
        def check_then():
            self.check()
            return predicate()
        try:
            return await wait_until(check_then, what, timeout)
        except AssertionError as e:
            raise AssertionError(f"{e} (consumer {self.name}: assignment {self.partitions()}, "
                                 f"{len(self.records)} records)") from None

    async def cancel(self):
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        self.check()


# ---------------------------------------------------------------------------
# No consumer groups involved
# ---------------------------------------------------------------------------


def test_produce_and_read_with_assign(broker):
    topic = unique_topic("aio-plain")
    kp_create_topic(broker.bootstrap, topic, 3)

    async def body():
        async with Clients() as clients:
            prod = await clients.start(producer(broker, acks="all"))
            metas = await send_all(prod, topic, spread("p", 15, 3))
            # A minute ahead of the others: the one record at or after its time.
            hdr = await prod.send_and_wait(topic, value=b"h", key=b"hk", partition=1,
                                           headers=[("trace", b"abc")],
                                           timestamp_ms=int(time.time() * 1000) + 60_000)
            offsets = Counter()
            for m in metas:
                assert m.offset == offsets[m.partition]  # gap-free, in send order
                offsets[m.partition] += 1
            assert hdr.offset == 5 and hdr.partition == 1

            cons, records = await read_all(broker, clients, topic, 3, 16)
            tps = [TopicPartition(topic, p) for p in range(3)]
            assert await cons.end_offsets(tps) == {tps[0]: 5, tps[1]: 6, tps[2]: 5}
            got = {(r.partition, r.offset): (r.key, r.value, list(r.headers)) for r in records}
            expected = {(m.partition, m.offset): (f"p-{i}".encode(), f"p-{i}".encode(), [])
                        for i, m in enumerate(metas)}
            expected[(1, 5)] = (b"hk", b"h", [("trace", b"abc")])
            assert got == expected

            # Offsets by time, then a seek there.
            found = await cons.offsets_for_times({tps[1]: hdr.timestamp - 1000, tps[2]: hdr.timestamp})
            assert (found[tps[1]].offset, found[tps[1]].timestamp) == (5, hdr.timestamp)
            assert found[tps[2]] is None, "no record at or after that time"
            cons.seek(tps[1], found[tps[1]].offset)
            again = await asyncio.wait_for(cons.getmany(tps[1], timeout_ms=RECEIVE_DEADLINE_S * 1000),
                                           RECEIVE_DEADLINE_S + 5)
            assert [(r.offset, r.value) for r in again[tps[1]]] == [(5, b"h")]

    arun(body())


def test_producer_auto_creates_topic_and_getone(broker):
    topic = unique_topic("aio-auto")

    async def body():
        async with Clients() as clients:
            prod = await clients.start(producer(broker))
            metas = [await prod.send_and_wait(topic, f"v{i}".encode()) for i in range(3)]
            assert [(m.partition, m.offset) for m in metas] == [(0, 0), (0, 1), (0, 2)]
            cons = await clients.start(AIOKafkaConsumer(
                bootstrap_servers=broker.bootstrap, enable_auto_commit=False,
                fetch_max_wait_ms=100, **COMMON))
            tp = TopicPartition(topic, 0)
            cons.assign([tp])
            cons.seek(tp, 1)
            first = await asyncio.wait_for(cons.getone(), RECEIVE_DEADLINE_S)
            assert (first.offset, first.value) == (1, b"v1")

    arun(body())


@pytest.mark.parametrize("compression", ["gzip", "snappy", "lz4", "zstd"])
def test_compressed_produce_and_read_back(broker, compression):
    topic = unique_topic(f"aio-{compression}")
    kp_create_topic(broker.bootstrap, topic, 2)
    values = [(f"{compression} record {i} " * (1 + i % 20), i % 2) for i in range(200)]

    async def body():
        async with Clients() as clients:
            prod = await clients.start(producer(broker, compression_type=compression,
                                                linger_ms=50))
            metas = await send_all(prod, topic, values)
            assert sorted((m.partition, m.offset) for m in metas) == \
                sorted((p, i) for p in range(2) for i in range(100))
            _, records = await read_all(broker, clients, topic, 2, len(values))
            got = {(r.partition, r.offset): (r.key, r.value) for r in records}
            assert got == {(m.partition, m.offset): (v.encode(), v.encode())
                           for m, (v, _) in zip(metas, values)}

    arun(body())
    # Stored as sent: far smaller than keys and values, so aiokafka really compressed.
    stored = sum(kp_stored_bytes(broker.bootstrap, topic).values())
    assert stored < sum(2 * len(v) for v, _ in values) / 4, stored


@pytest.mark.parametrize("acks", [0, 1, "all"])
def test_acks(broker, acks):
    topic = unique_topic("aio-acks")
    values = [(f"a{acks}-{i}", 0) for i in range(20)]

    async def body():
        async with Clients() as clients:
            prod = await clients.start(producer(broker, acks=acks))
            metas = await send_all(prod, topic, values)
            if acks != 0:  # acks=0 has no response, hence no offsets
                assert [m.offset for m in metas] == list(range(20))
            _, records = await read_all(broker, clients, topic, 1, len(values))
            assert [(r.offset, r.value.decode()) for r in records] == \
                [(i, v) for i, (v, _) in enumerate(values)]

    arun(body())


def test_admin_partitions_configs_and_delete(broker):
    topic = unique_topic("aio-admin2")
    resource = ConfigResourceType.TOPIC

    async def body():
        async with Clients() as clients:
            adm = await clients.start(AIOKafkaAdminClient(
                bootstrap_servers=broker.bootstrap, request_timeout_ms=15000))
            await adm.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
            await adm.create_partitions({topic: NewPartitions(3)})
            await adm.create_partitions({topic: NewPartitions(5, [[NODE_ID], [NODE_ID]])})
            with pytest.raises(InvalidReplicationAssignmentError, match="broker 7, but no such"):
                await adm.create_partitions({topic: NewPartitions(6, [[7]])})
            (desc,) = await adm.describe_topics([topic])
            assert sorted(p["partition"] for p in desc["partitions"]) == [0, 1, 2, 3, 4]

            def entries(responses):
                (response,) = responses
                (res,) = response.to_object()["resources"]
                assert res["error_code"] == 0, res
                return {e["config_names"]: e["config_value"] for e in res["config_entries"]}

            wanted = {"retention.ms": None, "max.message.bytes": None}
            before = entries(await adm.describe_configs([ConfigResource(resource, topic, wanted)]))
            assert before == {"retention.ms": "604800000", "max.message.bytes": "1048588"}
            (altered,) = await adm.alter_configs([ConfigResource(resource, topic, {"retention.ms": "5000"})])
            assert [r["error_code"] for r in altered.to_object()["resources"]] == [0]
            after = entries(await adm.describe_configs([ConfigResource(resource, topic, wanted)]))
            assert after == {"retention.ms": "5000", "max.message.bytes": "1048588"}
            broker_cfg = entries(await adm.describe_configs([ConfigResource(
                ConfigResourceType.BROKER, str(NODE_ID), {"listeners": None})]))
            assert broker_cfg == {"listeners": f"PLAINTEXT://127.0.0.1:{broker.port}"}

            deleted = await adm.delete_topics([topic])
            assert [tuple(t) for t in deleted.topic_error_codes] == [(topic, 0)]
            # list_topics, not describe_topics: aiokafka's metadata request would re-create it.
            assert topic not in await adm.list_topics()

    arun(body())


def test_admin_topics(broker):
    topic = unique_topic("aio-admin")

    async def body():
        async with Clients() as clients:
            adm = await clients.start(AIOKafkaAdminClient(
                bootstrap_servers=broker.bootstrap, request_timeout_ms=15000))
            resp = await adm.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)])
            errors = [t[1] for t in resp.topic_errors]
            assert errors == [0], resp
            assert topic in await adm.list_topics()
            (desc,) = await adm.describe_topics([topic])
            assert desc["error_code"] == 0
            assert sorted(p["partition"] for p in desc["partitions"]) == [0, 1, 2, 3]

    arun(body())


# ---------------------------------------------------------------------------
# Consumer groups
# ---------------------------------------------------------------------------


def test_group_consumer_receives_everything(broker):
    topic = unique_topic("aio-group")
    kp_create_topic(broker.bootstrap, topic, 3)
    sent = spread("m", 30, 3)

    async def body():
        async with Clients() as clients:
            prod = await clients.start(producer(broker))
            metas = await send_all(prod, topic, sent)
            cons = await clients.start(group_consumer(broker, topic, unique_topic("aio-g")))
            pump = Pump(cons, "solo")
            try:
                await pump.wait(lambda: len(pump.records) >= len(sent), f"{len(sent)} records")
                await asyncio.sleep(0.5)  # extra (duplicate) records would show up now
            finally:
                await pump.cancel()
            assert pump.partitions() == [0, 1, 2]
            assert sorted(pump.values()) == sorted(v for v, _ in sent)
            assert sorted((r.partition, r.offset) for r in pump.records) == \
                sorted((m.partition, m.offset) for m in metas)

    arun(body())


def _split(a, b, partitions):
    pa, pb = a.partitions(), b.partitions()
    return bool(pa) and bool(pb) and not set(pa) & set(pb) and sorted(pa + pb) == list(range(partitions))


def test_two_consumers_share_partitions_then_one_leaves(broker):
    topic = unique_topic("aio-share")
    kp_create_topic(broker.bootstrap, topic, 4)
    group = unique_topic("aio-g")

    async def body():
        async with Clients() as clients:
            prod = await clients.start(producer(broker))
            ca = await clients.start(group_consumer(broker, topic, group, client_id="aio-a"))
            a = Pump(ca, "a")
            cb = b = None
            try:
                await a.wait(lambda: a.partitions() == [0, 1, 2, 3], "a to own all 4 partitions",
                             REBALANCE_DEADLINE_S)
                cb = await clients.start(group_consumer(broker, topic, group, client_id="aio-b"))
                b = Pump(cb, "b")
                await wait_until(lambda: (a.check(), b.check()) and _split(a, b, 4),
                                 lambda: f"a and b to split the 4 partitions (a={a.partitions()}, "
                                         f"b={b.partitions()})", REBALANCE_DEADLINE_S)
                assert a.partitions() and b.partitions()  # each gets some

                sent = spread("s", 40, 4)
                await send_all(prod, topic, sent)
                await wait_until(lambda: len(a.records) + len(b.records) >= len(sent),
                                 "a and b to receive 40 records together")
                await asyncio.sleep(0.5)
                # Exactly once overall, each member only from its own partitions.
                assert sorted(a.values() + b.values()) == sorted(v for v, _ in sent)
                assert {r.partition for r in a.records} == set(a.partitions())
                assert {r.partition for r in b.records} == set(b.partitions())

                # --- a leaves cleanly (stop() sends LeaveGroup); b takes over promptly.
                a_count = len(a.records)
                await a.cancel()
                t0 = time.monotonic()
                await clients.stop(ca)
                await b.wait(lambda: b.partitions() == [0, 1, 2, 3],
                             "b to own all 4 partitions after a left", REBALANCE_DEADLINE_S)
                takeover_s = time.monotonic() - t0
                # Well under the 10 s session timeout: the LeaveGroup, not an expiry.
                assert takeover_s < 8, f"takeover took {takeover_s:.1f}s"
                print(f"[{__name__}] takeover after leave: {takeover_s:.2f}s")

                later = spread("after", 20, 4)
                await send_all(prod, topic, later)
                await b.wait(lambda: {v for v, _ in later} <= set(b.values()),
                             "b to receive every record produced after a left")
                assert len(a.records) == a_count
                seen = Counter(v for v in b.values() if v.startswith("after-"))
                assert all(n == 1 for n in seen.values()), seen
            finally:
                await a.cancel()
                if b is not None:
                    await b.cancel()

    arun(body())


@pytest.mark.parametrize("commit_mode", ["explicit", "auto"])
def test_resume_from_committed_offsets(broker, commit_mode):
    topic = unique_topic("aio-resume")
    kp_create_topic(broker.bootstrap, topic, 2)
    group = unique_topic("aio-g")

    async def body():
        async with Clients() as clients:
            prod = await clients.start(producer(broker))
            first = spread("first", 10, 2)
            await send_all(prod, topic, first)

            if commit_mode == "auto":
                c1 = group_consumer(broker, topic, group, enable_auto_commit=True,
                                    auto_commit_interval_ms=500)
            else:
                c1 = group_consumer(broker, topic, group)
            await clients.start(c1)
            p1 = Pump(c1, "c1")
            try:
                await p1.wait(lambda: len(p1.records) >= len(first), "c1 to read the first 10")
            finally:
                await p1.cancel()
            assert sorted(p1.values()) == sorted(v for v, _ in first)
            tps = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
            if commit_mode == "explicit":
                await asyncio.wait_for(c1.commit(), RECEIVE_DEADLINE_S)
                assert {tp: await c1.committed(tp) for tp in tps} == {tps[0]: 5, tps[1]: 5}
            await clients.stop(c1)  # with auto-commit, stop() commits what was consumed

            adm = await clients.start(AIOKafkaAdminClient(
                bootstrap_servers=broker.bootstrap, request_timeout_ms=15000))
            offsets = await adm.list_consumer_group_offsets(group)
            assert {tp: om.offset for tp, om in offsets.items()} == {tps[0]: 5, tps[1]: 5}

            second = spread("second", 6, 2)
            await send_all(prod, topic, second)
            c2 = await clients.start(group_consumer(broker, topic, group))
            p2 = Pump(c2, "c2")
            try:
                await p2.wait(lambda: len(p2.records) >= len(second), "c2 to read 6 new records")
                await asyncio.sleep(1.0)  # re-reads from offset 0 would show up now
            finally:
                await p2.cancel()
            assert sorted(p2.values()) == sorted(v for v, _ in second)
            assert all(r.offset >= 5 for r in p2.records), [(r.partition, r.offset) for r in p2.records]

    arun(body())


def test_admin_groups(broker):
    topic = unique_topic("aio-admgrp")
    kp_create_topic(broker.bootstrap, topic, 2)
    group = unique_topic("aio-g")

    async def body():
        async with Clients() as clients:
            prod = await clients.start(producer(broker))
            await send_all(prod, topic, spread("x", 4, 2))
            cons = await clients.start(group_consumer(broker, topic, group, client_id="aio-member"))
            pump = Pump(cons, "member")
            try:
                await pump.wait(lambda: len(pump.records) >= 4, "4 records")
            finally:
                await pump.cancel()
            await asyncio.wait_for(cons.commit(), RECEIVE_DEADLINE_S)

            adm = await clients.start(AIOKafkaAdminClient(
                bootstrap_servers=broker.bootstrap, request_timeout_ms=15000))
            groups = await adm.list_consumer_groups()
            assert (group, "consumer") in groups, groups

            (resp,) = await adm.describe_consumer_groups([group])
            (desc,) = resp.to_object()["groups"]
            assert desc["error_code"] == 0, desc
            assert desc["group"] == group
            assert desc["state"] == "Stable"
            assert desc["protocol_type"] == "consumer"
            assert desc["protocol"] == "roundrobin"  # aiokafka's default assignor
            (member,) = desc["members"]
            assert member["client_id"] == "aio-member"

            offsets = await adm.list_consumer_group_offsets(group)
            assert {tp.partition: om.offset for tp, om in offsets.items()} == {0: 2, 1: 2}

            await clients.stop(cons)
            (resp,) = await adm.describe_consumer_groups([group])
            (desc,) = resp.to_object()["groups"]
            assert desc["state"] == "Empty", desc
            assert desc["members"] == []

    arun(body())


async def _read_values(broker, clients, topic, isolation, expected, settle_s=1.0):
    """Values an assigned consumer with ``isolation`` reads from partition 0: until
    ``expected`` arrived, then ``settle_s`` more (so wrongly visible records show up)."""
    cons = await clients.start(AIOKafkaConsumer(
        bootstrap_servers=broker.bootstrap, enable_auto_commit=False, fetch_max_wait_ms=100,
        isolation_level=isolation, **COMMON))
    tp = TopicPartition(topic, 0)
    cons.assign([tp])
    await cons.seek_to_beginning(tp)
    values = []
    deadline = time.monotonic() + RECEIVE_DEADLINE_S
    settled = None
    while time.monotonic() < deadline:
        for recs in (await cons.getmany(timeout_ms=200)).values():
            values.extend(r.value.decode() for r in recs)
        if len(values) >= expected:
            settled = settled or time.monotonic() + settle_s
            if time.monotonic() >= settled:
                break
    await clients.stop(cons)
    return values


def test_transactional_producer_commit_abort_and_read_committed(broker):
    topic = unique_topic("aio-txn")
    kp_create_topic(broker.bootstrap, topic, 1)

    async def run():
        async with Clients() as clients:
            prod = await clients.start(producer(broker, transactional_id=unique_topic("aio-txn-id")))
            async with prod.transaction():
                await send_all(prod, topic, [(f"c-{i}", 0) for i in range(3)])
            await prod.begin_transaction()
            await send_all(prod, topic, [("a-0", 0), ("a-1", 0)])
            await prod.abort_transaction()
            async with prod.transaction():
                await send_all(prod, topic, [("c-3", 0)])
            committed = await _read_values(broker, clients, topic, "read_committed", 4)
            everything = await _read_values(broker, clients, topic, "read_uncommitted", 6)
            return committed, everything

    committed, everything = arun(run())
    assert committed == ["c-0", "c-1", "c-2", "c-3"]
    assert everything == ["c-0", "c-1", "c-2", "a-0", "a-1", "c-3"]


# ---------------------------------------------------------------------------
# ACLs: the authorizer on (conftest's authorizing broker and kafka-acls)
# ---------------------------------------------------------------------------


@pytest.mark.skipif(JAVA is None, reason="java is not installed (kafka-acls)")
def test_acls_refuse_produce_and_fetch_with_topic_authorization_failed(tools_classpath, authorizing_broker):
    """A producer writes a record to a topic; then kafka-acls denies User:ANONYMOUS (every
    client here) WRITE and READ on it, DESCRIBE still allowed. The same producer's next send
    there fails with TopicAuthorizationFailedError, the Produce response's error (its metadata is
    known already), while another topic takes the record; a consumer assigned to the topic at
    offset 0 gets TopicAuthorizationFailedError from its Fetch instead of the record."""
    from aiokafka.errors import TopicAuthorizationFailedError

    b = authorizing_broker
    secret, public = unique_topic("aio-secret"), unique_topic("aio-public")
    kp_create_topic(b.bootstrap, secret, 1)
    kp_create_topic(b.bootstrap, public, 1)

    async def body():
        async with Clients() as clients:
            prod = await clients.start(producer(b))
            assert (await prod.send_and_wait(secret, b"before")).offset == 0
            await asyncio.to_thread(deny_writes_and_reads, tools_classpath, b.bootstrap, secret)
            with pytest.raises(TopicAuthorizationFailedError):
                await asyncio.wait_for(prod.send_and_wait(secret, b"refused"), RECEIVE_DEADLINE_S)
            assert (await prod.send_and_wait(public, b"v")).offset == 0

            cons = await clients.start(AIOKafkaConsumer(
                bootstrap_servers=b.bootstrap, enable_auto_commit=False, fetch_max_wait_ms=100, **COMMON))
            tp = TopicPartition(secret, 0)
            cons.assign([tp])
            cons.seek(tp, 0)  # no ListOffsets: the first request for the partition is its Fetch
            with pytest.raises(TopicAuthorizationFailedError):
                await asyncio.wait_for(cons.getmany(tp, timeout_ms=5000), RECEIVE_DEADLINE_S)

    arun(body())


# ---------------------------------------------------------------------------
# Security: SSL, mutual TLS, SASL_PLAINTEXT and SASL_SSL (conftest's secured broker)
# ---------------------------------------------------------------------------


def aiokafka_security(certs, protocol, mechanism=None, user=None, password=None, client_cert=False):
    """aiokafka's settings for ``protocol``: an SSL context trusting the dev CA (with the
    client's certificate if ``client_cert``) and the SASL login."""
    from aiokafka.helpers import create_ssl_context

    settings = {"security_protocol": protocol}
    if protocol.endswith("SSL"):
        settings["ssl_context"] = create_ssl_context(
            cafile=certs["ca"], **({"certfile": certs["client_cert"], "keyfile": certs["client_key"]} if client_cert else {}))
    if mechanism:
        settings.update(sasl_mechanism=mechanism, sasl_plain_username=user, sasl_plain_password=password)
    return settings


async def secure_round_trip(b, listener, security):
    """Produce five records through ``listener``, then read them back there with a group consumer."""
    topic = unique_topic(f"aio-{listener.lower()}")
    kp_create_topic(b.bootstrap, topic, 1)
    async with Clients() as clients:
        prod = await clients.start(AIOKafkaProducer(bootstrap_servers=secure_addr(b, listener), **COMMON, **security))
        await send_all(prod, topic, [(f"m{i}", 0) for i in range(5)])
        cons = await clients.start(AIOKafkaConsumer(topic, bootstrap_servers=secure_addr(b, listener),
                                                    group_id=unique_topic("aio-sec-g"), **COMMON, **GROUP, **security))
        records = []
        deadline = time.monotonic() + RECEIVE_DEADLINE_S
        while len(records) < 5 and time.monotonic() < deadline:
            for recs in (await cons.getmany(timeout_ms=200)).values():
                records.extend(recs)
        assert [r.value for r in records] == [f"m{i}".encode() for i in range(5)]
        await cons.commit()


def test_ssl_and_mutual_tls(secured, certs):
    arun(secure_round_trip(secured, "SSL", aiokafka_security(certs, "SSL")))
    arun(secure_round_trip(secured, "MTLS", aiokafka_security(certs, "SSL", client_cert=True)))


def refused_at_start(b, listener, security):
    """A producer with ``security`` cannot bootstrap through ``listener``."""
    async def main():
        prod = AIOKafkaProducer(bootstrap_servers=secure_addr(b, listener), **COMMON, **security)
        try:
            with pytest.raises(KafkaConnectionError):
                await asyncio.wait_for(prod.start(), REBALANCE_DEADLINE_S)
        finally:
            await prod.stop()
    arun(main())


def test_mutual_tls_without_a_client_certificate_is_refused(secured, certs):
    refused_at_start(secured, "MTLS", aiokafka_security(certs, "SSL"))


@pytest.mark.parametrize("listener,mechanism", SASL_CASES)
def test_sasl(secured_with_scram_user, certs, listener, mechanism):
    user, password = sasl_user(mechanism)
    arun(secure_round_trip(secured_with_scram_user, listener, aiokafka_security(certs, listener, mechanism, user, password)))
    assert f"authenticated as User:{user}" in open(secured_with_scram_user.log_path).read()


@pytest.mark.parametrize("listener,mechanism", SASL_CASES)
def test_sasl_wrong_password_is_an_authentication_error(secured_with_scram_user, certs, caplog, listener, mechanism):
    user, _ = sasl_user(mechanism)
    refused_at_start(secured_with_scram_user, listener, aiokafka_security(certs, listener, mechanism, user, "wrong-password"))
    # aiokafka gives up bootstrapping and logs the broker's error (58, SASL_AUTHENTICATION_FAILED).
    assert "[Error 58] SaslAuthenticationFailed: Authentication failed" in caplog.text, caplog.text


class OneToken(AbstractTokenProvider):
    """aiokafka's token provider (``sasl_oauth_token_provider``), handing over one token."""

    def __init__(self, token):
        self.value = token

    async def token(self):
        return self.value


def aiokafka_oauth(token):
    return {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "OAUTHBEARER",
            "sasl_oauth_token_provider": OneToken(token)}


def test_sasl_oauthbearer_signed_and_unsecured_tokens(signed_broker, oauth_broker, idp):
    """SASL/OAUTHBEARER: aiokafka's producer and group consumer log in with a signed (RS256)
    token of the test's identity provider and read back what they wrote, as the token's subject.
    A token signed by a key not in the key set, and an unsecured one, are refused: aiokafka
    cannot bootstrap. (aiokafka does not answer RFC 7628's error challenge, so it never sees
    SASL_AUTHENTICATION_FAILED: it takes the challenge for success and sends Metadata, and the
    broker closes the connection, logging why the token was refused.) Against the broker taking unsecured tokens, an
    unsecured one with the scope "kafka" logs in."""
    arun(secure_round_trip(signed_broker, "SASL_PLAINTEXT", aiokafka_oauth(idp.token("aio-signed"))))
    assert "authenticated as User:aio-signed" in log_since(signed_broker, 0)

    for reason, token in refused_tokens(idp, "aio").items():
        logged_from = os.path.getsize(signed_broker.log_path)
        refused_at_start(signed_broker, "SASL_PLAINTEXT", aiokafka_oauth(token))
        log = log_since(signed_broker, logged_from)
        assert "unexpected Metadata request during SASL authentication" in log and "authenticated as" not in log, log
        assert f"(its token was refused: Authentication failed: {reason}" in log, "the reason is logged"

    unsecured = unsecured_token("aio-unsecured")
    arun(secure_round_trip(oauth_broker, "SASL_PLAINTEXT", aiokafka_oauth(unsecured)))
    assert "authenticated as User:aio-unsecured" in log_since(oauth_broker, 0)
