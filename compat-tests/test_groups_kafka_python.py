"""Consumer groups with kafka-python (3.0.x) against a real Gregor broker.

FindCoordinator, JoinGroup/SyncGroup/Heartbeat/LeaveGroup, OffsetCommit/
OffsetFetch and the group admin APIs, driven the way applications use them.
Several consumers of one group poll at the same time, one thread each, while
the test checks the group (groups_util.poll_members); kafka-python heartbeats
from its own IO thread, so a member that must die without leaving runs in a
child process that is SIGKILLed.

Every wait is a poll with a deadline; group names and topics are unique.
Note: kafka-python 3.0 names the admin calls list_groups / describe_groups /
list_group_offsets / delete_groups / delete_group_offsets (the 2.x
*_consumer_group* names are gone).
"""

import time

import msgpack
import pytest
from kafka import ConsumerRebalanceListener, KafkaConsumer, OffsetAndMetadata, TopicPartition
from kafka.errors import (
    GroupIdNotFoundError,
    GroupSubscribedToTopicError,
    InvalidSessionTimeoutError,
    NoError,
)

from conftest import (
    CLIENT_TIMEOUT_S,
    kp_admin,
    kp_consumer,
    kp_create_topic,
    kp_producer,
    start_broker,
    unique_topic,
    wait_until,
)
from groups_util import (
    HEARTBEAT_INTERVAL_MS,
    KpMember,
    REBALANCE_TIMEOUT_MS,
    SESSION_TIMEOUT_MS,
    SubprocessMember,
    all_partitions,
    batch,
    drain,
    owners,
    poll_members,
    same_generation,
    settle,
    unique_group,
)

pytestmark = pytest.mark.timeout(60)

T_MS = 10000


def group_consumer(bootstrap, group, **overrides):
    """A KafkaConsumer in ``group`` with the suite's group timings (auto-commit on)."""
    cfg = dict(group_id=group, auto_offset_reset="earliest", enable_auto_commit=True,
               auto_commit_interval_ms=500, session_timeout_ms=SESSION_TIMEOUT_MS,
               heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS,
               max_poll_interval_ms=REBALANCE_TIMEOUT_MS, reconnect_backoff_max_ms=1000)
    cfg.update(overrides)
    return kp_consumer(bootstrap, **cfg)


@pytest.fixture
def join(broker, closing):
    """``join(name, group, topic, **overrides)``: a subscribed member, closed at teardown."""

    def make(name, group, topic, **overrides):
        consumer = group_consumer(broker.bootstrap, group, client_id=name, **overrides)
        consumer.subscribe([topic])
        return closing(KpMember(name, consumer))

    return make


def tps(topic, count):
    return [TopicPartition(topic, p) for p in range(count)]


def send(bootstrap, topic, tag, count, partitions):
    """Produce batch(tag, count, partitions); return {value: (topic, partition)}."""
    producer = kp_producer(bootstrap)
    try:
        items = batch(tag, count, partitions)
        futures = [producer.send(topic, value=v, partition=p) for p, v in items]
        producer.flush(timeout=CLIENT_TIMEOUT_S)
        for f in futures:
            f.get(timeout=CLIENT_TIMEOUT_S)
    finally:
        producer.close(timeout=5)
    return {v: (topic, p) for p, v in items}


def topic_with(bootstrap, prefix, partitions):
    name = unique_topic(prefix)
    kp_create_topic(bootstrap, name, partitions)
    return name


def committed_offsets(admin, group):
    """{TopicPartition: (offset, metadata)} as the admin client's OffsetFetch sees them."""
    return {tp: (om.offset, om.metadata)
            for tp, om in admin.list_group_offsets(group)[group].items()}


# ---------------------------------------------------------------------------
# The README consumer, auto-commit, resume
# ---------------------------------------------------------------------------


def test_readme_group_consumer_iterates_and_resumes_after_close(broker, closing):
    bootstrap = broker.bootstrap
    topic = topic_with(bootstrap, "kp-readme-grp", 1)
    group = unique_group("group1")
    tp = TopicPartition(topic, 0)
    producer = closing(kp_producer(bootstrap, value_serializer=msgpack.dumps))
    admin = closing(kp_admin(bootstrap))

    # As in the README (auto_offset_reset defaults to "latest"): join first, then produce.
    consumer = closing(KafkaConsumer(topic, group_id=group, bootstrap_servers=bootstrap,
                                     value_deserializer=msgpack.loads, consumer_timeout_ms=10000,
                                     auto_commit_interval_ms=500))
    member = KpMember("readme", consumer)
    poll_members([member], lambda: member.assignment() == {(topic, 0)}, what="the assignment")
    assert consumer.position(tp, timeout_ms=T_MS) == 0, "latest on an empty partition is 0"

    for i in range(10):
        producer.send(topic, {"n": i, "text": f"msg {i}"})
    producer.flush(timeout=CLIENT_TIMEOUT_S)

    got = []
    for msg in consumer:
        got.append((msg.offset, msg.value))
        if len(got) == 10:
            break
    assert got == [(i, {"n": i, "text": f"msg {i}"}) for i in range(10)]

    # Auto-commit runs from poll(): keep polling until the group's offset shows up.
    poll_members([member], lambda: committed_offsets(admin, group).get(tp, (None,))[0] == 10,
                 what="auto-commit of offset 10")
    consumer.close()  # commits again and leaves the group

    # Records produced while nobody consumes; the next member must start at 10.
    for i in range(10, 15):
        producer.send(topic, {"n": i, "text": f"msg {i}"})
    producer.flush(timeout=CLIENT_TIMEOUT_S)

    # consumer_timeout_ms bounds the join as well as the wait for records.
    again = closing(KafkaConsumer(topic, group_id=group, bootstrap_servers=bootstrap,
                                  value_deserializer=msgpack.loads, consumer_timeout_ms=10000))
    assert again.committed(tp) == 10
    resumed = []
    for msg in again:
        resumed.append((msg.offset, msg.value["n"]))
        if len(resumed) == 5:
            break
    assert resumed == [(i, i) for i in range(10, 15)]
    again.close()

    # Even with auto_offset_reset="earliest" the group never starts over.
    third = KpMember("third", closing(KafkaConsumer(
        topic, group_id=group, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
        consumer_timeout_ms=2000)))
    _, early = settle([third], {(topic, 0)}, group_ready=lambda: same_generation([third]))
    assert [m.offset for m in third.consumer] == [] and not any(early.values())
    assert third.consumer.position(tp, timeout_ms=T_MS) == 15


def test_committed_offsets_survive_broker_restart(broker, join):
    topic = topic_with(broker.bootstrap, "kp-grp-restart", 2)
    group = unique_group("kp-restart")
    first = send(broker.bootstrap, topic, "before", 10, 2)
    c1 = join("c1", group, topic)
    drain([c1], first)
    c1.close()  # auto-commit on close

    broker.restart()

    second = send(broker.bootstrap, topic, "after", 6, 2)
    c2 = join("c2", group, topic)
    for tp in tps(topic, 2):
        assert c2.consumer.committed(tp, timeout_ms=T_MS) == 5, f"{tp} lost its committed offset"
    drain([c2], second, forbidden=first)


def test_live_member_continues_after_broker_restart(broker, join):
    topic = topic_with(broker.bootstrap, "kp-grp-live-restart", 2)
    group = unique_group("kp-live-restart")
    first = send(broker.bootstrap, topic, "before", 10, 2)
    c1 = join("c1", group, topic)
    drain([c1], first)
    c1.consumer.commit()

    broker.restart()

    second = send(broker.bootstrap, topic, "after", 6, 2)
    drain([c1], second, forbidden=first, timeout=30)
    c1.consumer.commit()
    for tp in tps(topic, 2):
        assert c1.consumer.committed(tp, timeout_ms=T_MS) == 8


# ---------------------------------------------------------------------------
# Sharing partitions inside a group
# ---------------------------------------------------------------------------


def test_second_member_shares_partitions_other_group_is_independent(broker, join):
    topic = topic_with(broker.bootstrap, "kp-grp-share", 4)
    group = unique_group("kp-share")
    everything = all_partitions(topic, 4)

    c1 = join("c1", group, topic)
    settle([c1], everything, group_ready=lambda: same_generation([c1]))
    first = send(broker.bootstrap, topic, "one", 40, 4)
    drain([c1], first)

    # c2 joins; c1 commits what it consumed before it rejoins (auto-commit on rebalance).
    c2 = join("c2", group, topic)
    members = [c1, c2]
    assignments, during = settle(members, everything,
                                 group_ready=lambda: same_generation(members))
    assert not any(during.values()), f"records delivered again while joining: {dict(during)}"
    assert all(len(a) == 2 for a in assignments.values()), assignments

    second = send(broker.bootstrap, topic, "two", 40, 4)
    received = drain(members, second, assignments, forbidden=first)
    assert all(owners(received)[m.name] for m in members), "both members must get records"

    # Another group reads the same records on its own, from the beginning.
    other = join("other", unique_group("kp-share-other"), topic)
    drain([other], {**first, **second})


def test_more_members_than_partitions_leaves_one_idle(broker, join):
    topic = topic_with(broker.bootstrap, "kp-grp-idle", 2)
    group = unique_group("kp-idle")
    members = [join(f"c{i}", group, topic) for i in range(3)]
    assignments, _ = settle(members, all_partitions(topic, 2), idle=1,
                            group_ready=lambda: same_generation(members))
    records = send(broker.bootstrap, topic, "idle", 20, 2)
    received = drain(members, records, assignments)
    idle = [name for name, a in assignments.items() if not a]
    assert len(idle) == 1 and not received[idle[0]]


# ---------------------------------------------------------------------------
# Members leaving: cleanly, and killed
# ---------------------------------------------------------------------------


def test_clean_leave_hands_partitions_over_promptly(broker, join):
    topic = topic_with(broker.bootstrap, "kp-grp-leave", 4)
    group = unique_group("kp-leave")
    everything = all_partitions(topic, 4)
    # A long session timeout: only LeaveGroup can explain a prompt handover.
    slow = dict(session_timeout_ms=30000, max_poll_interval_ms=30000)
    c1, c2 = join("c1", group, topic, **slow), join("c2", group, topic, **slow)
    assignments, _ = settle([c1, c2], everything, group_ready=lambda: same_generation([c1, c2]))
    first = send(broker.bootstrap, topic, "one", 40, 4)
    drain([c1, c2], first, assignments)

    started = time.monotonic()
    c2.close()  # commits its offsets, sends LeaveGroup
    settle([c1], everything, group_ready=lambda: same_generation([c1]), timeout=15)
    elapsed = time.monotonic() - started
    assert elapsed < 15, f"handover took {elapsed:.1f}s (session timeout is 30s)"

    second = send(broker.bootstrap, topic, "two", 40, 4)
    drain([c1], second, forbidden=first)


def test_killed_member_loses_partitions_after_session_timeout(broker, join):
    topic = topic_with(broker.bootstrap, "kp-grp-kill", 4)
    group = unique_group("kp-kill")
    everything = all_partitions(topic, 4)
    victim = SubprocessMember("victim", bootstrap=broker.bootstrap, topic=topic, group=group,
                              client_id="victim", session_timeout_ms=SESSION_TIMEOUT_MS,
                              heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS)
    try:
        survivor = join("survivor", group, topic, enable_auto_commit=False)
        members = [survivor, victim]
        assignments, _ = settle(members, everything, group_ready=lambda: same_generation(members))
        first = send(broker.bootstrap, topic, "one", 40, 4)
        drain(members, first, assignments)
        survivor.consumer.commit()
        victim_tps = assignments["victim"]
        # The child commits before it reports; make sure the last report is in.
        ends = {(topic, p): 10 for p in range(4)}
        assert {tp: victim.committed.get(tp) for tp in victim_tps} == \
            {tp: ends[tp] for tp in victim_tps}

        victim.kill9()  # no LeaveGroup, no more heartbeats
        killed_at = time.monotonic()
        _, during = settle([survivor], everything, group_ready=lambda: same_generation([survivor]),
                           timeout=SESSION_TIMEOUT_MS / 1000 + 15)
        took = time.monotonic() - killed_at
        assert not any(during.values()), f"committed records delivered again: {dict(during)}"
        for topic_, p in victim_tps:
            tp = TopicPartition(topic_, p)
            assert survivor.consumer.position(tp, timeout_ms=T_MS) == 10, (
                f"{tp}: the survivor must start at the victim's committed offset")
        print(f"[kill -9] partitions taken over {took:.1f}s after the kill "
              f"(session timeout {SESSION_TIMEOUT_MS} ms)")

        second = send(broker.bootstrap, topic, "two", 40, 4)
        drain([survivor], second, forbidden=first)
    finally:
        victim.cleanup()


def test_session_timeout_below_the_broker_minimum_is_rejected(broker, join):
    topic = topic_with(broker.bootstrap, "kp-grp-short-session", 1)
    member = join("short", unique_group("kp-short-session"), topic,
                  session_timeout_ms=3000, heartbeat_interval_ms=1000)  # broker minimum: 6000
    with pytest.raises(InvalidSessionTimeoutError):
        poll_members([member], lambda: False, timeout=10, what="JoinGroup to be refused")


def test_initial_rebalance_delay_gathers_members_into_one_generation(closing):
    """--group-initial-rebalance-delay-ms: members joining a new group within the
    delay land in its first generation together (no second rebalance)."""
    other = start_broker(["--group-initial-rebalance-delay-ms", "3000"])
    members = []
    try:
        topic = topic_with(other.bootstrap, "kp-grp-delay", 2)
        group = unique_group("kp-delay")
        started = time.monotonic()
        for name in ("d1", "d2"):
            consumer = group_consumer(other.bootstrap, group, client_id=name)
            consumer.subscribe([topic])
            members.append(closing(KpMember(name, consumer)))
        settle(members, all_partitions(topic, 2), group_ready=lambda: same_generation(members))
        took = time.monotonic() - started
        assert [m.stable_generation() for m in members] == [1, 1], (
            "both members should be in the group's first generation")
        assert took >= 2.5, f"the first rebalance completed after {took:.1f}s, before the delay"
    finally:
        for m in members:
            m.close()
        other.cleanup()


# ---------------------------------------------------------------------------
# Pattern subscription and the rebalance listener
# ---------------------------------------------------------------------------


class RecordingListener(ConsumerRebalanceListener):
    def __init__(self):
        self.events = []

    def on_partitions_revoked(self, revoked):
        self.events.append(("revoked", {(tp.topic, tp.partition) for tp in revoked}))

    def on_partitions_assigned(self, assigned):
        self.events.append(("assigned", {(tp.topic, tp.partition) for tp in assigned}))


def test_pattern_subscription_picks_up_new_topic_and_calls_listener(broker, closing):
    prefix = unique_topic("orders")  # unique: other runs' topics must not match
    first_topic = f"{prefix}-eu"
    kp_create_topic(broker.bootstrap, first_topic, 2)
    listener = RecordingListener()
    consumer = group_consumer(broker.bootstrap, unique_group("kp-pattern"),
                              metadata_max_age_ms=1000)
    consumer.subscribe(pattern=f"^{prefix}-.*", listener=listener)
    member = closing(KpMember("pattern", consumer))

    settle([member], all_partitions(first_topic, 2), group_ready=lambda: same_generation([member]))
    records = send(broker.bootstrap, first_topic, "eu", 10, 2)
    drain([member], records)
    assigned = [tps_ for kind, tps_ in listener.events if kind == "assigned" and tps_]
    assert assigned == [all_partitions(first_topic, 2)], listener.events

    second_topic = f"{prefix}-us"
    kp_create_topic(broker.bootstrap, second_topic, 3)
    kp_create_topic(broker.bootstrap, unique_topic("not-orders"), 1)
    both = all_partitions(first_topic, 2) | all_partitions(second_topic, 3)
    settle([member], both, group_ready=lambda: same_generation([member]))
    assert consumer.subscription() >= {first_topic, second_topic}

    events = [(kind, tps_) for kind, tps_ in listener.events if tps_]
    assert events[-1] == ("assigned", both), listener.events
    assert ("revoked", all_partitions(first_topic, 2)) in events[1:-1], (
        f"on_partitions_revoked must run before the new assignment: {listener.events}")
    more = send(broker.bootstrap, second_topic, "us", 9, 3)
    drain([member], more, forbidden=records)


# ---------------------------------------------------------------------------
# Manual commits, committed(), positions
# ---------------------------------------------------------------------------


def test_manual_commit_sync_async_and_metadata(broker, join, closing):
    topic = topic_with(broker.bootstrap, "kp-grp-commit", 2)
    group = unique_group("kp-commit")
    tp0, tp1 = tps(topic, 2)
    member = join("m", group, topic, enable_auto_commit=False)
    consumer = member.consumer
    settle([member], all_partitions(topic, 2), group_ready=lambda: same_generation([member]))
    assert consumer.committed(tp0, timeout_ms=T_MS) is None, "nothing committed yet"

    seen = drain([member], send(broker.bootstrap, topic, "a", 20, 2))
    consumer.commit()
    assert (consumer.committed(tp0), consumer.committed(tp1)) == (10, 10)

    seen["m"] += drain([member], send(broker.bootstrap, topic, "b", 4, 2))["m"]
    results = []
    future = consumer.commit_async(callback=lambda offsets, response: results.append(response))
    poll_members([member], lambda: future.is_done and results, what="the async commit callback")
    assert not isinstance(results[0], Exception), results[0]
    assert future.succeeded(), future.exception
    assert (consumer.committed(tp0), consumer.committed(tp1)) == (12, 12)

    meta = "meta-0 ü {\"json\": true}"
    consumer.commit({tp0: OffsetAndMetadata(7, meta, -1), tp1: OffsetAndMetadata(3, "", -1)})
    c0, c1 = consumer.committed(tp0, metadata=True), consumer.committed(tp1, metadata=True)
    assert (c0.offset, c0.metadata) == (7, meta)
    assert (c1.offset, c1.metadata) == (3, "")
    admin = closing(kp_admin(broker.bootstrap))
    assert committed_offsets(admin, group) == {tp0: (7, meta), tp1: (3, "")}

    # A new member of the group starts at the committed offsets (no auto-commit on close).
    member.close(autocommit=False)
    again = join("again", group, topic)
    start = {0: 7, 1: 3}
    drain([again], {r.value: (topic, r.partition) for r in seen["m"]
                    if r.offset >= start[r.partition]})


def test_positions_seeks_and_offset_lookups_in_a_group(broker, join):
    topic = topic_with(broker.bootstrap, "kp-grp-seek", 1)
    group = unique_group("kp-seek")
    (tp,) = tps(topic, 1)
    member = join("m", group, topic, enable_auto_commit=False)
    consumer = member.consumer
    settle([member], {(topic, 0)}, group_ready=lambda: same_generation([member]))
    assert consumer.position(tp, timeout_ms=T_MS) == 0, "no commit + earliest: start at 0"

    base_ts = int(time.time() * 1000) - 3_600_000
    producer = kp_producer(broker.bootstrap)
    try:
        for i in range(10):
            producer.send(topic, value=f"s{i}".encode(), partition=0,
                          timestamp_ms=base_ts + i * 1000)
        producer.flush(timeout=CLIENT_TIMEOUT_S)
    finally:
        producer.close(timeout=5)
    assert consumer.beginning_offsets([tp], timeout_ms=T_MS) == {tp: 0}
    assert consumer.end_offsets([tp], timeout_ms=T_MS) == {tp: 10}

    values = {f"s{i}".encode(): (topic, 0) for i in range(10)}
    drain([member], values)
    assert consumer.position(tp, timeout_ms=T_MS) == 10
    consumer.commit()
    assert consumer.committed(tp) == 10

    consumer.seek_to_beginning(tp)
    assert consumer.position(tp, timeout_ms=T_MS) == 0
    drain([member], values)  # re-reading does not move the committed offset
    assert consumer.committed(tp) == 10

    consumer.seek_to_end(tp)
    assert consumer.position(tp, timeout_ms=T_MS) == 10

    found = consumer.offsets_for_times({tp: base_ts + 4500}, timeout_ms=T_MS)[tp]
    assert (found.offset, found.timestamp) == (5, base_ts + 5000)
    consumer.seek(tp, found.offset)
    drain([member], {f"s{i}".encode(): (topic, 0) for i in range(5, 10)})

    consumer.commit({tp: OffsetAndMetadata(4, "", -1)})
    member.close(autocommit=False)
    again = join("again", group, topic)
    drain([again], {f"s{i}".encode(): (topic, 0) for i in range(4, 10)})


def test_standalone_consumer_commits_with_assign(broker, closing):
    """assign() + group_id (no subscription): OffsetCommit outside any generation."""
    topic = topic_with(broker.bootstrap, "kp-grp-standalone", 1)
    group = unique_group("kp-standalone")
    (tp,) = tps(topic, 1)
    send(broker.bootstrap, topic, "x", 5, 1)
    consumer = closing(kp_consumer(broker.bootstrap, group_id=group))
    consumer.assign([tp])
    consumer.commit({tp: OffsetAndMetadata(3, "standalone", -1)})
    got = consumer.committed(tp, metadata=True)
    assert (got.offset, got.metadata) == (3, "standalone")

    other = closing(kp_consumer(broker.bootstrap, group_id=group, auto_offset_reset="earliest"))
    other.assign([tp])
    assert other.position(tp, timeout_ms=T_MS) == 3


# ---------------------------------------------------------------------------
# Admin client
# ---------------------------------------------------------------------------


def describe(admin, group):
    return admin.describe_groups([group])[group]


def test_admin_list_describe_offsets_and_lag(broker, join, closing):
    topic = topic_with(broker.bootstrap, "kp-grp-admin", 3)
    group = unique_group("kp-admin")
    members = [join(name, group, topic, enable_auto_commit=False) for name in ("ca", "cb")]
    assignments, _ = settle(members, all_partitions(topic, 3), idle=None,
                            group_ready=lambda: same_generation(members))
    drain(members, send(broker.bootstrap, topic, "adm", 30, 3))
    # Each member commits its own partitions, partition p leaving p + 1 records of lag.
    for m in members:
        lagging = {TopicPartition(t, p): OffsetAndMetadata(10 - (p + 1), f"by {m.name}", -1)
                   for t, p in assignments[m.name]}
        m.consumer.commit(lagging)

    admin = closing(kp_admin(broker.bootstrap))
    listed = {g["group_id"]: g for g in admin.list_groups()}
    assert group in listed, listed
    assert listed[group]["protocol_type"] == "consumer"
    if listed[group].get("group_state"):  # ListGroups v4+
        assert listed[group]["group_state"] == "Stable"

    try:
        unknown = describe(admin, unique_group("kp-never-used"))
        assert unknown["group_state"] == "Dead" and unknown["members"] == [], unknown
    except GroupIdNotFoundError:  # Kafka's newer answer for a group that does not exist
        pass

    desc = describe(admin, group)
    assert desc["error"] is None, desc
    assert (desc["group_state"], desc["protocol_type"]) == ("Stable", "consumer")
    assert desc["protocol_data"] == "range", "kafka-python's first assignor is range"
    by_client = {m["client_id"]: m for m in desc["members"]}
    assert set(by_client) == {"ca", "cb"}, desc["members"]
    for m in members:
        d = by_client[m.name]
        assert d["member_id"] == m.consumer.group_metadata().member_id
        assert d["client_host"], "client_host should be the member's address"
        assert d["member_metadata"]["topics"] == [topic]
        described = {(a["topic"], p) for a in d["member_assignment"]["assigned_partitions"]
                     for p in a["partitions"]}
        assert described == assignments[m.name]

    offsets = admin.list_group_offsets(group)[group]
    assert {tp: (om.offset, om.metadata) for tp, om in offsets.items()} == {
        TopicPartition(t, p): (10 - (p + 1), f"by {name}")
        for name, a in assignments.items() for t, p in a}
    ends = members[0].consumer.end_offsets(list(offsets), timeout_ms=T_MS)
    lag = {tp.partition: ends[tp] - om.offset for tp, om in offsets.items()}
    assert lag == {0: 1, 1: 2, 2: 3}

    for m in members:
        m.close(autocommit=False)
    wait_until(lambda: describe(admin, group)["group_state"] == "Empty", timeout=10,
               message="the group to become Empty after both members left")
    assert describe(admin, group)["members"] == []
    assert group in {g["group_id"] for g in admin.list_groups()}, "an Empty group is still listed"
    assert len(admin.list_group_offsets(group)[group]) == 3, "offsets outlive the members"


def test_admin_delete_groups(broker, join, closing):
    topic = topic_with(broker.bootstrap, "kp-grp-delete", 2)
    group = unique_group("kp-delete")
    records = send(broker.bootstrap, topic, "del", 10, 2)
    member = join("m", group, topic)
    drain([member], records)
    member.consumer.commit()

    admin = closing(kp_admin(broker.bootstrap))
    assert admin.delete_groups([group]) == {group: "NonEmptyGroupError"}
    assert len(admin.list_group_offsets(group)[group]) == 2, "a refused delete keeps the offsets"

    member.close()
    wait_until(lambda: describe(admin, group)["group_state"] == "Empty", timeout=10,
               message="the group to become Empty")
    assert admin.delete_groups([group]) == {group: "OK"}
    assert group not in {g["group_id"] for g in admin.list_groups()}
    try:
        leftover = admin.list_group_offsets(group)[group]
    except GroupIdNotFoundError:  # also a fine answer for a group that is gone
        leftover = {}
    assert leftover == {}, "the deleted group's offsets must be gone"
    assert admin.delete_groups([group]) == {group: "GroupIdNotFoundError"}

    # Same group id again: no committed offsets, so it starts from the beginning.
    fresh = join("fresh", group, topic)
    drain([fresh], records)


def test_admin_delete_group_offsets(broker, join, closing):
    kept, dropped = (topic_with(broker.bootstrap, f"kp-grp-offdel-{x}", 1) for x in ("a", "b"))
    group = unique_group("kp-offdel")
    for topic in (kept, dropped):
        member = join(f"m-{topic}", group, topic)
        drain([member], send(broker.bootstrap, topic, topic, 3, 1))
        member.close()  # commits offset 3

    admin = closing(kp_admin(broker.bootstrap))
    k, d = TopicPartition(kept, 0), TopicPartition(dropped, 0)
    assert committed_offsets(admin, group) == {k: (3, ""), d: (3, "")}
    assert admin.delete_group_offsets(group, [d]) == {d: NoError}
    assert committed_offsets(admin, group) == {k: (3, "")}

    # While a member is subscribed to the topic, its offsets cannot be deleted.
    active = join("active", group, kept)
    settle([active], {(kept, 0)}, group_ready=lambda: same_generation([active]))
    assert admin.delete_group_offsets(group, [k]) == {k: GroupSubscribedToTopicError}
    assert committed_offsets(admin, group) == {k: (3, "")}
