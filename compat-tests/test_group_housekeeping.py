"""The group coordinator's housekeeping with real clients (kafka-python 3.0, confluent-kafka):
committed offsets expiring after offsets.retention.minutes, group.max.size, the pending
SyncGroup timeout, a static member that misses a rebalance, and the committed offsets of a
deleted topic.

The module's broker runs with Kafka's shortest offset retention (1 minute, the least Kafka
accepts) checked every half second. The first test leaves groups to expire and the last one
waits for them, so the tests in between run during that minute.
"""

import threading
import time

import pytest
from confluent_kafka import KafkaError, TopicPartition as CkTopicPartition
from kafka import ConsumerRebalanceListener, TopicPartition
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.errors import GroupMaxSizeReachedError

from conftest import (
    CLIENT_TIMEOUT_S,
    ck_consumer,
    kp_admin,
    kp_consumer,
    kp_create_topic,
    kp_drain,
    kp_producer,
    start_broker,
    unique_topic,
    wait_until,
)
from groups_util import KpMember, all_partitions, poll_members, same_generation, settle

RETENTION_S = 60
CHECK_INTERVAL_MS = 500

# What the first test leaves for the last one.
EXPIRING = {}


@pytest.fixture(scope="module")
def broker():
    b = start_broker(["--offsets-retention-minutes", "1",
                      "--offsets-retention-check-interval-ms", str(CHECK_INTERVAL_MS)])
    try:
        yield b
    finally:
        b.cleanup()


def produce(bootstrap, topic, count, tag):
    producer = kp_producer(bootstrap)
    try:
        for i in range(count):
            producer.send(topic, f"{tag}-{i}".encode(), partition=0)
        producer.flush(timeout=CLIENT_TIMEOUT_S)
    finally:
        producer.close(timeout=5)


def kp_group_consumer(bootstrap, group, topic, **overrides):
    cfg = dict(group_id=group, auto_offset_reset="earliest", session_timeout_ms=6000,
               heartbeat_interval_ms=500)
    cfg.update(overrides)
    return subscribed(kp_consumer(bootstrap, **cfg), topic)


def subscribed(consumer, topic, listener=None):
    """Subscribes a kafka-python consumer once it knows the topic's partitions: a leader that
    assigns before its metadata has them assigns nothing and rejoins, a needless rebalance."""
    assert consumer.partitions_for_topic(topic)
    consumer.subscribe([topic], listener=listener)
    return consumer


def ck_group_consumer(bootstrap, group, topic, **overrides):
    cfg = {"group.id": group, "auto.offset.reset": "earliest", "session.timeout.ms": 6000,
           "heartbeat.interval.ms": 500, "enable.auto.offset.store": True}
    cfg.update(overrides)
    consumer = ck_consumer(bootstrap, **cfg)
    consumer.subscribe([topic])
    return consumer


def ck_take(consumer, expected, timeout=CLIENT_TIMEOUT_S):
    """Values of the next ``expected`` records (fewer on timeout); client errors fail."""
    values = []
    deadline = time.monotonic() + timeout
    while len(values) < expected and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None or (msg.error() and msg.error().code() == KafkaError._PARTITION_EOF):
            continue
        assert msg.error() is None, msg.error()
        values.append(msg.value().decode())
    return values


def listed(bootstrap):
    admin = kp_admin(bootstrap)
    try:
        return {g["group_id"] for g in admin.list_groups()}
    finally:
        admin.close()


def group_offsets(bootstrap, group):
    admin = kp_admin(bootstrap)
    try:
        return {tp.partition: om.offset for tp, om in admin.list_group_offsets(group)[group].items()}
    finally:
        admin.close()


def test_groups_left_to_expire(broker):
    """An Empty kafka-python group, an Empty confluent-kafka group and a standalone commit
    (manual assignment) expire; a confluent-kafka group that stays Stable keeps its offsets."""
    topic = unique_topic("expiring")
    kp_create_topic(broker.bootstrap, topic, 1)
    produce(broker.bootstrap, topic, 5, "r")
    groups = {name: unique_topic(name) for name in ("kp-empty", "ck-empty", "kp-standalone", "ck-stable")}

    kp = kp_group_consumer(broker.bootstrap, groups["kp-empty"], topic, enable_auto_commit=False)
    assert len(kp_drain(kp, 5)) == 5
    kp.commit()
    kp.close()

    ck = ck_group_consumer(broker.bootstrap, groups["ck-empty"], topic)
    assert len(ck_take(ck, 5)) == 5
    ck.commit(asynchronous=False)
    ck.close()

    standalone = kp_consumer(broker.bootstrap, group_id=groups["kp-standalone"])
    standalone.assign([TopicPartition(topic, 0)])
    standalone.seek(TopicPartition(topic, 0), 3)
    standalone.commit()
    standalone.close()

    # Stays a member (librdkafka heartbeats from its own thread) until the last test.
    stable = ck_group_consumer(broker.bootstrap, groups["ck-stable"], topic)
    assert len(ck_take(stable, 5)) == 5
    stable.commit(asynchronous=False)

    assert set(groups.values()) <= listed(broker.bootstrap)
    for name, group in groups.items():
        assert group_offsets(broker.bootstrap, group) == {0: 3 if name == "kp-standalone" else 5}
    EXPIRING.update(topic=topic, groups=groups, stable=stable, since=time.monotonic())


def stay_in_one_generation(members, quiet_s):
    """Polls until the kafka-python members have been stable in one generation for ``quiet_s``."""
    seen = {}

    def quiet():
        gen = members[0].stable_generation() if same_generation(members) else None
        if gen is None or seen.get("gen") != gen:
            seen.update(gen=gen, since=time.monotonic())
            return False
        return time.monotonic() - seen["since"] >= quiet_s

    poll_members(members, quiet, what=f"the group to stay in one generation for {quiet_s} s")


def test_group_max_size_turns_the_next_member_away(closing):
    """With group.max.size=2, a third kafka-python consumer fails with
    GroupMaxSizeReachedError and a third confluent-kafka consumer gets
    GROUP_MAX_SIZE_REACHED, while the two members carry on."""
    broker = start_broker(["--group-max-size", "2"])
    try:
        topic = unique_topic("max-size")
        kp_create_topic(broker.bootstrap, topic, 2)
        group = unique_topic("max-size")
        members = [closing(KpMember(name, kp_group_consumer(broker.bootstrap, group, topic)))
                   for name in ("one", "two")]
        settle(members, all_partitions(topic, 2), group_ready=lambda: same_generation(members))
        # kafka-python's leader may rejoin once more on its own (after a metadata refresh); a
        # third member joining during that rebalance could take a place (Kafka turns away the
        # last to rejoin), so it comes only once the group has stayed in one generation.
        stay_in_one_generation(members, quiet_s=1.5)

        third = closing(KpMember("third", kp_group_consumer(broker.bootstrap, group, topic)))
        with pytest.raises(GroupMaxSizeReachedError):
            poll_members(members + [third], lambda: False, timeout=CLIENT_TIMEOUT_S,
                         what="kafka-python's GroupMaxSizeReachedError")

        ck = closing(ck_group_consumer(broker.bootstrap, group, topic))

        def ck_refused():
            msg = ck.poll(0.2)
            return msg is not None and msg.error() and msg.error().code() == KafkaError.GROUP_MAX_SIZE_REACHED

        poll_members(members, ck_refused, timeout=CLIENT_TIMEOUT_S,
                     what="confluent-kafka's consumer to get GROUP_MAX_SIZE_REACHED")
        assert same_generation(members)
        admin = closing(kp_admin(broker.bootstrap))
        desc = admin.describe_groups([group])[group]
        assert (desc["group_state"], len(desc["members"])) == ("Stable", 2)
    finally:
        broker.cleanup()


class StuckAssignor(RangePartitionAssignor):
    """A leader whose assignment never finishes once a second member is there: it never
    sends SyncGroup. kafka-python does not heartbeat until its join completes, so without
    the sync timeout only its session timeout would end the wait."""

    release = threading.Event()

    @classmethod
    def assign(cls, cluster, members):
        if len(members) > 1:
            cls.release.wait(CLIENT_TIMEOUT_S * 2)
        return super().assign(cluster, members)


def test_a_leader_that_never_syncs_does_not_stall_the_group(broker, closing):
    """kafka-python leads, then hangs in its assignor when a confluent-kafka consumer joins.
    After the rebalance timeout (6 s) the coordinator removes the leader, which never sent
    SyncGroup, and the confluent-kafka consumer gets every partition; the leader's 30 s
    session would otherwise stall the group that long."""
    topic = unique_topic("stuck-leader")
    kp_create_topic(broker.bootstrap, topic, 2)
    produce(broker.bootstrap, topic, 4, "r")
    group = unique_topic("stuck-leader")
    leader = kp_group_consumer(broker.bootstrap, group, topic, session_timeout_ms=30000,
                               request_timeout_ms=40000, max_poll_interval_ms=6000,
                               partition_assignment_strategy=[StuckAssignor])

    def leader_assigned():
        leader.poll(timeout_ms=100)
        return leader.assignment()

    wait_until(leader_assigned, message="the kafka-python leader to own the topic")

    stop = threading.Event()

    def keep_polling():
        while not stop.is_set():
            try:
                leader.poll(timeout_ms=100)
            except Exception:  # removed from the group: it may rejoin or fail; either is fine
                pass

    poller = threading.Thread(target=keep_polling, daemon=True)
    poller.start()
    try:
        started = time.monotonic()
        other = closing(ck_group_consumer(broker.bootstrap, group, topic,
                                          **{"max.poll.interval.ms": 6000}))
        everything = {(topic, 0), (topic, 1)}

        def owns_everything():
            other.poll(0.2)
            return {(tp.topic, tp.partition) for tp in other.assignment()} == everything

        wait_until(owns_everything, timeout=20, message="the confluent consumer to get every partition")
        assert time.monotonic() - started < 20
        other.seek(CkTopicPartition(topic, 0, 0))
        assert len(ck_take(other, 4)) == 4
    finally:
        StuckAssignor.release.set()
        stop.set()
        poller.join(timeout=10)
        leader.close(autocommit=False)


def test_a_static_member_that_misses_a_rebalance_keeps_its_place(broker, closing):
    """kafka-python static members A (leader) and B (group_instance_id). B's process stops;
    a third member joins, and the rebalance completes without B, which stays in the group
    with a partition assigned. B comes back under the same instance id and gets it without
    another rebalance of the others (KIP-345)."""
    topic = unique_topic("static-miss")
    kp_create_topic(broker.bootstrap, topic, 3)
    group = unique_topic("static-miss")
    assigned = {"a": 0, "b": 0, "c": 0}

    class Counting(ConsumerRebalanceListener):
        def __init__(self, name):
            self.name = name

        def on_partitions_revoked(self, revoked):
            pass

        def on_partitions_assigned(self, partitions):
            assigned[self.name] += 1

    def member(name, instance=None):
        # Static sessions outlast the 6 s rebalance timeout, so B is not simply expired.
        consumer = kp_consumer(broker.bootstrap, group_id=group, group_instance_id=instance,
                               session_timeout_ms=15000 if instance else 6000,
                               max_poll_interval_ms=6000, heartbeat_interval_ms=500)
        return closing(KpMember(name, subscribed(consumer, topic, Counting(name))))

    def split(members, total):
        """Every member owns partitions, none twice, ``total`` in all."""
        sets = [m.assignment() for m in members]
        return all(sets) and sum(map(len, sets)) == total == len(set().union(*sets))

    everything = all_partitions(topic, 3)
    a = member("a", "instance-a")
    settle([a], everything)
    b = member("b", "instance-b")
    settle([a, b], everything, group_ready=lambda: same_generation([a, b]))
    b.close()  # a static member sends no LeaveGroup

    c = member("c")
    # The rebalance waits for B until the rebalance timeout (6 s), then completes without it:
    # A and C own two partitions, B's one is kept for it.
    poll_members([a, c], lambda: split([a, c], 2) and same_generation([a, c]), timeout=20,
                 what="A and C to settle without B")
    before = (assigned["a"], assigned["c"])
    b = member("b", "instance-b")
    settle([a, b, c], everything, group_ready=lambda: same_generation([a, b, c]), timeout=10)
    quiet_until = time.monotonic() + 1
    poll_members([a, b, c], lambda: time.monotonic() >= quiet_until, what="a quiet second")
    assert (assigned["a"], assigned["c"]) == before, "B's return rebalanced the others"
    admin = closing(kp_admin(broker.bootstrap))
    desc = admin.describe_groups([group])[group]
    assert (desc["group_state"], len(desc["members"])) == ("Stable", 3)


def test_a_recreated_topic_is_read_from_the_start_by_an_existing_group(broker, closing):
    """A group committed offset 3 of a topic; the topic is deleted and created again with
    more records. The group's next consumer reads the new topic from offset 0, with
    kafka-python and with confluent-kafka."""
    topic = unique_topic("recreated")
    kp_create_topic(broker.bootstrap, topic, 1)
    produce(broker.bootstrap, topic, 3, "old")
    groups = [unique_topic("kp-recreated"), unique_topic("ck-recreated")]
    kp = kp_group_consumer(broker.bootstrap, groups[0], topic, enable_auto_commit=False)
    assert len(kp_drain(kp, 3)) == 3
    kp.commit()
    kp.close()
    ck = ck_group_consumer(broker.bootstrap, groups[1], topic)
    assert len(ck_take(ck, 3)) == 3
    ck.commit(asynchronous=False)
    ck.close()

    admin = closing(kp_admin(broker.bootstrap))
    admin.delete_topics([topic], timeout_ms=10000)
    wait_until(lambda: topic not in admin.list_topics(), message="the topic to be gone")
    assert all(group_offsets(broker.bootstrap, g) == {} for g in groups), "offsets of a deleted topic"
    kp_create_topic(broker.bootstrap, topic, 1)
    produce(broker.bootstrap, topic, 6, "new")

    kp = closing(kp_group_consumer(broker.bootstrap, groups[0], topic))
    assert [r.value.decode() for r in kp_drain(kp, 6)] == [f"new-{i}" for i in range(6)]
    ck = closing(ck_group_consumer(broker.bootstrap, groups[1], topic))
    assert ck_take(ck, 6) == [f"new-{i}" for i in range(6)]


def test_offsets_of_left_groups_expire_after_the_retention(broker, closing):
    """A minute after the first test, its Empty groups and the standalone commit are gone
    (ListGroups, DescribeGroups: Dead, no offsets), while the Stable group keeps its offsets;
    a new consumer of an expired group starts from the beginning again."""
    assert EXPIRING, "runs after test_groups_left_to_expire"
    groups = EXPIRING["groups"]
    gone = {groups["kp-empty"], groups["ck-empty"], groups["kp-standalone"]}
    wait = EXPIRING["since"] + RETENTION_S - time.monotonic()
    if wait > 0:
        time.sleep(wait)
    wait_until(lambda: not gone & listed(broker.bootstrap), timeout=10,
               message="the expired groups to disappear")
    assert groups["ck-stable"] in listed(broker.bootstrap)
    admin = closing(kp_admin(broker.bootstrap))
    for group in gone:
        assert admin.describe_groups([group])[group]["group_state"] == "Dead"
        assert group_offsets(broker.bootstrap, group) == {}
    stable = EXPIRING["stable"]
    assert [tp.offset for tp in stable.committed([CkTopicPartition(EXPIRING["topic"], 0)])] == [5]
    stable.close()

    again = closing(kp_group_consumer(broker.bootstrap, groups["kp-empty"], EXPIRING["topic"]))
    assert [r.offset for r in kp_drain(again, 5)] == [0, 1, 2, 3, 4]
