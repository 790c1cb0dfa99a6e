"""Consumer groups with confluent-kafka (librdkafka 2.x) against a real Gregor broker.

Join / share / leave / resume with each partition.assignment.strategy
(including the incremental cooperative-sticky protocol), manual commits with
metadata, static membership (group.instance.id) and the group admin calls.
Several consumers of one group poll at the same time, one thread each, while
the test checks the group (groups_util.poll_members); rebalance callbacks run
inside consume().
A group has "settled" when the broker's DescribeGroups says Stable and lists
exactly the members' own local assignments.

Every wait is a poll with a deadline; group names and topics are unique.
"""

import time

import pytest
from confluent_kafka import (
    OFFSET_INVALID,
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import NewTopic

from conftest import (
    CLIENT_TIMEOUT_S,
    ck_admin,
    ck_consumer,
    ck_producer,
    close_client,
    unique_topic,
    wait_until,
)
from groups_util import (
    HEARTBEAT_INTERVAL_MS,
    REBALANCE_TIMEOUT_MS,
    SESSION_TIMEOUT_MS,
    Member,
    Rec,
    all_partitions,
    batch,
    drain,
    owners,
    poll_members,
    settle,
    unique_group,
)

pytestmark = pytest.mark.timeout(60)

T = 10.0  # seconds, for single client calls


class CkMember(Member):
    """groups_util adapter around a subscribed confluent_kafka Consumer.

    poll() runs on a polling thread (groups_util.poll_members) while the test
    thread checks the group; Consumer.assignment() called from the test thread
    meanwhile can deadlock with a rebalance callback that consume() is running
    (it waits for librdkafka holding the GIL), so the polling thread records the
    assignment and member id after every consume() and the test thread reads those.
    """

    def __init__(self, name, consumer):
        super().__init__(name, consumer)
        self.errors = []  # non-fatal errors librdkafka reported through consume()
        self.rebalances = []  # ("assign" | "revoke" | "lost", {(topic, partition)})
        self._assigned = set()
        self._member_id = None

    def poll(self, timeout_s):
        out = []
        for m in self.consumer.consume(num_messages=500, timeout=timeout_s):
            err = m.error()
            if err is None:
                out.append(Rec(m.topic(), m.partition(), m.offset(), m.value()))
            elif err.fatal():
                raise KafkaException(err)
            elif err.code() != KafkaError._PARTITION_EOF:
                self.errors.append(err)
        self._assigned = {(tp.topic, tp.partition) for tp in self.consumer.assignment()}
        self._member_id = self.consumer.memberid()
        return out

    def assignment(self):
        """The assignment as of the last poll()."""
        return set(self._assigned)

    def member_id(self):
        """The member id as of the last poll()."""
        return self._member_id

    def subscribe(self, topic):
        def recorder(kind):
            return lambda _consumer, parts: self.rebalances.append(
                (kind, {(tp.topic, tp.partition) for tp in parts}))

        self.consumer.subscribe([topic], on_assign=recorder("assign"),
                                on_revoke=recorder("revoke"), on_lost=recorder("lost"))
        return self


@pytest.fixture
def admin(broker, closing):
    return closing(ck_admin(broker.bootstrap))


@pytest.fixture
def join(broker, closing):
    """``join(name, group, topic, strategy="range", **config)``: a subscribed member
    (auto-commit on), closed at teardown."""

    def make(name, group, topic, strategy="range", **config):
        cfg = {
            "group.id": group,
            "client.id": name,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": True,
            "enable.auto.offset.store": True,
            "auto.commit.interval.ms": 500,
            "session.timeout.ms": SESSION_TIMEOUT_MS,
            "heartbeat.interval.ms": HEARTBEAT_INTERVAL_MS,
            "max.poll.interval.ms": REBALANCE_TIMEOUT_MS,
            "partition.assignment.strategy": strategy,
            "reconnect.backoff.max.ms": 1000,
        }
        cfg.update(config)
        return closing(CkMember(name, ck_consumer(broker.bootstrap, **cfg))).subscribe(topic)

    return make


def create_topic(admin, prefix, partitions):
    name = unique_topic(prefix)
    futures = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)],
                                  operation_timeout=T, request_timeout=T)
    futures[name].result(timeout=CLIENT_TIMEOUT_S)
    wait_until(lambda: len(getattr(admin.list_topics(topic=name, timeout=T).topics.get(name),
                                   "partitions", {})) == partitions,
               timeout=T, message=f"{name} to have {partitions} partitions")
    return name


def send(bootstrap, topic, tag, count, partitions):
    """Produce batch(tag, count, partitions); return {value: (topic, partition)}."""
    producer = ck_producer(bootstrap)
    items = batch(tag, count, partitions)
    errors = []
    for p, v in items:
        producer.produce(topic, value=v, partition=p,
                         on_delivery=lambda err, _msg: err is not None and errors.append(err))
    try:
        assert producer.flush(CLIENT_TIMEOUT_S) == 0, "undelivered records after flush"
    finally:
        close_client(producer)
    assert not errors, errors[:5]
    return {v: (topic, p) for p, v in items}


def describe(admin, group):
    return admin.describe_consumer_groups([group], request_timeout=T)[group].result(timeout=T + 5)


def broker_agrees(admin, group, members):
    """DescribeGroups: Stable, and every member's assignment is the one it holds locally."""
    desc = describe(admin, group)
    if desc.state != ConsumerGroupState.STABLE:
        return False
    described = {m.member_id: {(tp.topic, tp.partition) for tp in m.assignment.topic_partitions}
                 for m in desc.members}
    return described == {m.member_id(): m.assignment() for m in members}


def settled(admin, group, members, expected_tps, idle=0, timeout=25.0, also=lambda: True):
    """groups_util.settle with the broker's view as the "same generation" check;
    ``also()`` runs on every round (it may assert)."""
    return settle(members, expected_tps, idle=idle, timeout=timeout,
                  group_ready=lambda: also() and broker_agrees(admin, group, members))


def tps(topic, partitions):
    return [TopicPartition(topic, p) for p in range(partitions)]


def committed(consumer, topic, partitions):
    """{partition: (committed offset, metadata)}; no metadata reads as ""."""
    return {tp.partition: (tp.offset, tp.metadata or "")
            for tp in consumer.committed(tps(topic, partitions), timeout=T)}


def at(offset, partitions):
    """The committed() answer for ``offset`` on every partition, without metadata."""
    return {p: (offset, "") for p in range(partitions)}


def group_offsets(admin, group):
    result = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)],
                                               request_timeout=T)[group].result(timeout=T + 5)
    assert result.group_id == group
    return {(tp.topic, tp.partition): (tp.offset, tp.metadata or "")
            for tp in result.topic_partitions if tp.offset != OFFSET_INVALID}


# ---------------------------------------------------------------------------
# Join, share, leave, resume
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["range", "roundrobin", "cooperative-sticky"])
def test_join_share_leave_resume(broker, join, admin, strategy):
    topic = create_topic(admin, f"ck-grp-{strategy}", 4)
    group = unique_group(f"ck-{strategy}")
    everything = all_partitions(topic, 4)
    # A long session timeout: only LeaveGroup can explain a prompt handover.
    slow = {"session.timeout.ms": 30000, "max.poll.interval.ms": 30000}

    c1 = join("c1", group, topic, strategy, **slow)
    settled(admin, group, [c1], everything)
    first = send(broker.bootstrap, topic, "one", 40, 4)
    drain([c1], first)
    # Wait for auto-commit so the next phase starts from known committed offsets.
    poll_members([c1], lambda: group_offsets(admin, group) == {tp: (10, "") for tp in everything},
                 what="auto-commit of the first batch")

    c2 = join("c2", group, topic, strategy, **slow)
    members = [c1, c2]
    assignments, during = settled(admin, group, members, everything)
    assert not any(during.values()), f"records delivered again while joining: {dict(during)}"
    assert sorted(len(a) for a in assignments.values()) == [2, 2], assignments
    if strategy == "cooperative-sticky":
        kept = assignments["c1"]
        assert not any(kind == "revoke" and parts & kept for kind, parts in c1.rebalances), (
            f"cooperative: c1 must keep its remaining partitions throughout: {c1.rebalances}")

    second = send(broker.bootstrap, topic, "two", 40, 4)
    received = drain(members, second, assignments, forbidden=first)
    assert all(owners(received)[m.name] for m in members), "both members must get records"

    started = time.monotonic()
    c2.close()  # commits its offsets (auto-commit) and sends LeaveGroup
    settled(admin, group, [c1], everything, timeout=15)
    elapsed = time.monotonic() - started
    assert elapsed < 15, f"handover took {elapsed:.1f}s (session timeout is 30s)"
    third = send(broker.bootstrap, topic, "three", 20, 4)
    drain([c1], third, forbidden={**first, **second})

    c1.close()
    fourth = send(broker.bootstrap, topic, "four", 20, 4)
    c3 = join("c3", group, topic, strategy)
    drain([c3], fourth, forbidden={**first, **second, **third})


def test_committed_offsets_survive_broker_restart(broker, join, admin):
    topic = create_topic(admin, "ck-grp-restart", 2)
    group = unique_group("ck-restart")
    first = send(broker.bootstrap, topic, "before", 10, 2)
    c1 = join("c1", group, topic, **{"enable.auto.commit": False})
    drain([c1], first)
    done = c1.consumer.commit(asynchronous=False)
    assert sorted((tp.partition, tp.offset) for tp in done) == [(0, 5), (1, 5)]
    c1.close()

    broker.restart()

    second = send(broker.bootstrap, topic, "after", 6, 2)
    c2 = join("c2", group, topic)
    assert committed(c2.consumer, topic, 2) == at(5, 2)
    drain([c2], second, forbidden=first, timeout=30)


# ---------------------------------------------------------------------------
# Manual commits, committed(), position(), metadata
# ---------------------------------------------------------------------------


def test_manual_commit_committed_position_and_metadata(broker, join, admin):
    topic = create_topic(admin, "ck-grp-commit", 2)
    group = unique_group("ck-commit")
    commits = []

    def on_commit(err, parts):
        commits.append((err, parts))

    member = join("m", group, topic, **{"enable.auto.commit": False, "on_commit": on_commit})
    consumer = member.consumer
    settled(admin, group, [member], all_partitions(topic, 2))
    assert committed(consumer, topic, 2) == at(OFFSET_INVALID, 2), "nothing committed yet"

    received = drain([member], send(broker.bootstrap, topic, "a", 20, 2))
    done = consumer.commit(asynchronous=False)
    assert sorted((tp.partition, tp.offset, tp.error) for tp in done) == \
        [(0, 10, None), (1, 10, None)]
    assert committed(consumer, topic, 2) == at(10, 2)
    assert sorted((tp.partition, tp.offset) for tp in consumer.position(tps(topic, 2))) == \
        [(0, 10), (1, 10)]

    meta = "meta-0 ü {\"json\": true}"
    consumer.commit(offsets=[TopicPartition(topic, 0, 7, metadata=meta),
                             TopicPartition(topic, 1, 3, metadata="")], asynchronous=False)
    assert committed(consumer, topic, 2) == {0: (7, meta), 1: (3, "")}
    assert group_offsets(admin, group) == {(topic, 0): (7, meta), (topic, 1): (3, "")}

    # commit(message=...) commits that record's offset + 1.
    last = max(received["m"], key=lambda r: (r.partition, r.offset))
    consumer.seek(TopicPartition(topic, last.partition, last.offset))
    msgs = []
    wait_until(lambda: msgs.extend(m for m in consumer.consume(num_messages=1, timeout=0.5)
                                   if m.error() is None) or msgs,
               timeout=T, message="re-reading one record after seek")
    assert (msgs[0].partition(), msgs[0].offset()) == (last.partition, last.offset)
    consumer.commit(message=msgs[0], asynchronous=False)
    assert committed(consumer, topic, 2)[last.partition] == (last.offset + 1, "")

    # Asynchronous commit: the on_commit callback is served from consume() (callbacks
    # of the earlier synchronous commits may arrive there too: look for this one).
    consumer.commit(offsets=[TopicPartition(topic, 0, 6), TopicPartition(topic, 1, 8)],
                    asynchronous=True)

    def async_result():
        for err, parts in commits:
            if sorted((tp.partition, tp.offset) for tp in parts) == [(0, 6), (1, 8)]:
                return err, parts
        return None

    poll_members([member], async_result, what="the on_commit callback of the async commit")
    err, parts = async_result()
    assert err is None and all(tp.error is None for tp in parts), (err, parts)
    assert committed(consumer, topic, 2) == {0: (6, ""), 1: (8, "")}

    # A new member starts at the committed offsets (auto-commit is off: close commits nothing).
    member.close()
    again = join("again", group, topic)
    start = {0: 6, 1: 8}
    drain([again], {r.value: (topic, r.partition) for r in received["m"]
                    if r.offset >= start[r.partition]})


# ---------------------------------------------------------------------------
# Admin client
# ---------------------------------------------------------------------------


def listed_groups(admin, **kwargs):
    result = admin.list_consumer_groups(request_timeout=T, **kwargs).result(timeout=T + 5)
    assert not result.errors, result.errors
    return {g.group_id: g for g in result.valid}


def test_admin_list_describe_offsets_and_delete(broker, join, admin):
    topic = create_topic(admin, "ck-grp-admin", 3)
    group = unique_group("ck-admin")
    members = [join(name, group, topic, **{"enable.auto.commit": False}) for name in ("ca", "cb")]
    assignments, _ = settled(admin, group, members, all_partitions(topic, 3), idle=None)
    drain(members, send(broker.bootstrap, topic, "adm", 30, 3))
    # Each member commits its own partitions, partition p leaving p + 1 records of lag.
    for m in members:
        m.consumer.commit(offsets=[TopicPartition(t, p, 10 - (p + 1), metadata=f"by {m.name}")
                                   for t, p in assignments[m.name]], asynchronous=False)

    listing = listed_groups(admin)
    assert group in listing, sorted(listing)
    assert listing[group].is_simple_consumer_group is False
    assert listing[group].state == ConsumerGroupState.STABLE
    assert group in listed_groups(admin, states={ConsumerGroupState.STABLE})
    assert group not in listed_groups(admin, states={ConsumerGroupState.EMPTY})

    desc = describe(admin, group)
    assert desc.group_id == group and desc.is_simple_consumer_group is False
    assert desc.state == ConsumerGroupState.STABLE
    assert desc.partition_assignor == "range"
    assert desc.coordinator.port == broker.port
    by_client = {m.client_id: m for m in desc.members}
    assert set(by_client) == {"ca", "cb"}
    for m in members:
        d = by_client[m.name]
        assert d.member_id == m.consumer.memberid()
        assert d.host, "the member's host should be reported"
        assert {(tp.topic, tp.partition) for tp in d.assignment.topic_partitions} == \
            assignments[m.name]

    offsets = group_offsets(admin, group)
    assert offsets == {(t, p): (10 - (p + 1), f"by {name}")
                       for name, a in assignments.items() for t, p in a}
    lag = {p: members[0].consumer.get_watermark_offsets(TopicPartition(t, p), timeout=T)[1] - o
           for (t, p), (o, _meta) in offsets.items()}
    assert lag == {0: 1, 1: 2, 2: 3}

    with pytest.raises(KafkaException) as exc:
        admin.delete_consumer_groups([group], request_timeout=T)[group].result(timeout=T + 5)
    assert exc.value.args[0].code() == KafkaError.NON_EMPTY_GROUP
    assert len(group_offsets(admin, group)) == 3, "a refused delete keeps the offsets"

    for m in members:
        m.close()
    wait_until(lambda: describe(admin, group).state == ConsumerGroupState.EMPTY, timeout=T,
               message="the group to become Empty")
    assert describe(admin, group).members == []
    assert listed_groups(admin)[group].state == ConsumerGroupState.EMPTY

    assert admin.delete_consumer_groups([group], request_timeout=T)[group].result(timeout=T + 5) \
        is None
    assert group not in listed_groups(admin)
    assert group_offsets(admin, group) == {}, "the deleted group's offsets must be gone"
    with pytest.raises(KafkaException) as exc:
        admin.delete_consumer_groups([group], request_timeout=T)[group].result(timeout=T + 5)
    assert exc.value.args[0].code() == KafkaError.GROUP_ID_NOT_FOUND


def test_admin_alter_consumer_group_offsets(broker, join, admin):
    """AlterConsumerGroupOffsets is an OffsetCommit outside any generation; it is
    not required of the broker yet, so an explicit refusal only skips."""
    topic = create_topic(admin, "ck-grp-alter", 1)
    group = unique_group("ck-alter")
    records = send(broker.bootstrap, topic, "alt", 10, 1)
    member = join("m", group, topic, **{"enable.auto.commit": False})
    drain([member], records)
    member.consumer.commit(asynchronous=False)
    member.close()
    wait_until(lambda: describe(admin, group).state == ConsumerGroupState.EMPTY, timeout=T,
               message="the group to become Empty")

    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0, 4)])
    try:
        result = admin.alter_consumer_group_offsets([request], request_timeout=T)[group] \
            .result(timeout=T + 5)
    except KafkaException as e:
        if e.args[0].code() in (KafkaError.UNSUPPORTED_VERSION, KafkaError._UNSUPPORTED_FEATURE,
                                KafkaError.INVALID_REQUEST):
            pytest.skip(f"broker refuses AlterConsumerGroupOffsets: {e}")
        raise
    assert [(tp.partition, tp.offset, tp.error) for tp in result.topic_partitions] == [(0, 4, None)]
    assert group_offsets(admin, group) == {(topic, 0): (4, "")}
    again = join("again", group, topic)
    drain([again], {v: tp for v, tp in records.items() if int(v.split(b":")[1]) >= 4})


# ---------------------------------------------------------------------------
# Static membership (KIP-345)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("restarted", ["follower", "leader"])
def test_static_member_restart_gets_same_partitions_without_rebalance(broker, join, admin,
                                                                      restarted):
    """A static member closes (no LeaveGroup) and comes back with the same
    group.instance.id before its session times out: it gets its old partitions
    and the other member is not rebalanced (KIP-345), whether the restarted
    member is a follower or the group leader (the first member to join)."""
    topic = create_topic(admin, "ck-grp-static", 4)
    group = unique_group("ck-static")
    everything = all_partitions(topic, 4)
    static = {"session.timeout.ms": 15000}
    leader = join("leader", group, topic, **{"group.instance.id": "instance-leader"}, **static)
    settled(admin, group, [leader], everything)
    follower = join("follower", group, topic, **{"group.instance.id": "instance-follower"},
                    **static)
    assignments, _ = settled(admin, group, [leader, follower], everything)
    first = send(broker.bootstrap, topic, "one", 40, 4)
    drain([leader, follower], first, assignments)
    bounced, other = (follower, leader) if restarted == "follower" else (leader, follower)
    other_rebalances = list(other.rebalances)
    old_member_id = bounced.consumer.memberid()

    started = time.monotonic()
    bounced.close()  # a static member commits but does not send LeaveGroup
    desc = describe(admin, group)
    assert desc.state == ConsumerGroupState.STABLE, "a closed static member must not rebalance"
    assert {m.group_instance_id for m in desc.members} == {"instance-leader", "instance-follower"}

    back = join(f"{bounced.name}-again", group, topic,
                **{"group.instance.id": f"instance-{bounced.name}"}, **static)

    def other_untouched():
        assert other.assignment() == assignments[other.name], (
            f"{other.name}'s partitions changed while {bounced.name} restarted: "
            f"{other.rebalances[len(other_rebalances):]}")
        return True

    new, during = settled(admin, group, [other, back], everything, also=other_untouched)
    took = time.monotonic() - started
    assert new == {other.name: assignments[other.name], back.name: assignments[bounced.name]}, \
        (new, assignments)
    assert other.rebalances == other_rebalances, (
        f"the {restarted}'s static rejoin rebalanced the other member "
        f"(revoke/assign callbacks): {other.rebalances[len(other_rebalances):]}")
    assert took < 15, f"static rejoin took {took:.1f}s, past the session timeout"
    assert not any(during.values()), f"records delivered again: {dict(during)}"
    by_instance = {m.group_instance_id: m.member_id for m in describe(admin, group).members}
    assert by_instance[f"instance-{bounced.name}"] == back.consumer.memberid() != old_member_id

    second = send(broker.bootstrap, topic, "two", 40, 4)
    drain([other, back], second, new, forbidden=first)
