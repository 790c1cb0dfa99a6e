"""kafkajs (Node.js, pinned in kafkajs/package.json) against a real Gregor broker.

The kafkajs side lives in ``compat-tests/kafkajs/``: small scripts that take one
JSON argument of settings, print one JSON object per line on stdout and exit by
themselves (``maxRuntimeMs``); the consumer also stops cleanly (disconnect,
which leaves the group) on the stdin line "stop". This module runs them with
``node`` and parses their output.

``node_modules`` is not committed: the module runs ``npm ci`` itself when
kafkajs is missing (bounded by a timeout). Without ``node`` the module is
skipped. Every wait has a deadline, and every process started is killed by PID
at teardown.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from collections import Counter

import pytest
from kafka import TopicPartition

from conftest import (
    ANONYMOUS,
    NODE_ID,
    SASL_CASES,
    sasl_user,
    secure_addr,
    kp_consumer,
    kp_create_topic,
    kp_drain,
    kp_stored_bytes,
    log_since,
    npm_ci,
    stop_through_stdin,
    unique_topic,
    wait_until,
)
from test_oauthbearer import (idp, oauth_broker, refused_tokens, signed_broker,  # noqa: F401 (the fixtures)
                              unsecured_token)

HERE = os.path.dirname(os.path.abspath(__file__))
KAFKAJS_DIR = os.path.join(HERE, "kafkajs")
NODE = shutil.which("node")

# Bounds of one script run (the scripts enforce their own maxRuntimeMs too).
SCRIPT_TIMEOUT_S = 30
CONSUMER_MAX_RUNTIME_MS = 50_000
# How long a group may take to settle after a member joins or leaves.
REBALANCE_DEADLINE_S = 20
RECEIVE_DEADLINE_S = 20

pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed (kafkajs needs Node.js)")


# ---------------------------------------------------------------------------
# Node project setup
# ---------------------------------------------------------------------------


def _missing_packages():
    with open(os.path.join(KAFKAJS_DIR, "package.json")) as f:
        wanted = json.load(f)["dependencies"]
    return [name for name in wanted
            if not os.path.isfile(os.path.join(KAFKAJS_DIR, "node_modules", name, "package.json"))]


@pytest.fixture(scope="module", autouse=True)
def kafkajs_installed():
    """``npm ci`` in compat-tests/kafkajs when a package of package.json is missing."""
    if not _missing_packages():
        return
    npm_ci(KAFKAJS_DIR, "kafkajs")


# ---------------------------------------------------------------------------
# Running the scripts
# ---------------------------------------------------------------------------


def _script(name):
    return os.path.join(KAFKAJS_DIR, name)


def _parse_lines(text):
    events = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            events.append(json.loads(line))
        except ValueError:
            events.append({"event": "raw", "line": line})
    return events


def run_script(name, cfg, timeout=SCRIPT_TIMEOUT_S, check=True):
    """Run a one-shot script (produce.js, admin.js) and return its events.

    Fails with the script's stdout/stderr if it times out, or (``check``) exits non-zero.
    """
    cfg = dict(cfg, maxRuntimeMs=int(timeout * 1000) - 2000)
    cmd = [NODE, _script(name), json.dumps(cfg)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              cwd=KAFKAJS_DIR, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"node {name} did not finish within {timeout}s\n"
                             f"stdout: {e.stdout}\nstderr: {e.stderr}") from None
    if check and proc.returncode != 0:
        raise AssertionError(f"node {name} exited {proc.returncode}\n"
                             f"stdout: {proc.stdout[-4000:]}\nstderr: {proc.stderr[-4000:]}")
    return _parse_lines(proc.stdout)


def produce(broker, topic, messages):
    """kafkajs producer: send ``messages`` ({value, key?, partition?}) one by one.

    Returns [(partition, offset)] in send order.
    """
    events = run_script("produce.js", {"bootstrap": broker.bootstrap, "topic": topic,
                                       "messages": messages})
    produced = [e for e in events if e["event"] == "produced"]
    assert len(produced) == len(messages), events
    placements = []
    for e in produced:
        (res,) = e["result"]
        assert res["errorCode"] == 0, res
        placements.append((res["partition"], int(res["baseOffset"])))
    return placements


def produce_batch(broker, topic, messages, **settings):
    """kafkajs producer: one send() of all ``messages`` (``settings``: acks, compression).

    Returns kafkajs' per-partition results (empty with acks 0: no response).
    """
    events = run_script("produce.js", {"bootstrap": broker.bootstrap, "topic": topic,
                                       "messages": messages, "batch": True, **settings})
    (produced,) = [e for e in events if e["event"] == "produced"]
    return produced["result"]


def read_back(bootstrap, closing, topic, partitions, expected):
    """Every record of ``topic`` read with kafka-python, as {(partition, offset): (key, value,
    headers)} with str keys and values."""
    consumer = closing(kp_consumer(bootstrap))
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    records = kp_drain(consumer, expected)
    return {(r.partition, r.offset): (r.key and r.key.decode(), r.value.decode(),
                                      {k: v.decode() for k, v in r.headers})
            for r in records}


def admin(broker, *ops):
    """Run kafkajs admin calls: ``ops`` are (name, *args). Returns one event per op."""
    events = run_script("admin.js", {
        "bootstrap": broker.bootstrap,
        "ops": [{"op": op[0], "args": list(op[1:])} for op in ops],
    })
    results = [e for e in events if e["event"] == "op"]
    assert len(results) == len(ops), events
    return results


def ok(result):
    assert result["ok"], f"kafkajs admin.{result['op']} failed: {result['error']}"
    return result["result"]


class NodeConsumer:
    """A running consume.js process; its stdout events are collected by a thread."""

    def __init__(self, broker, topic, group, name="c", **settings):
        self.name = name
        self.topic = topic
        cfg = {"bootstrap": broker.bootstrap, "topic": topic, "group": group,
               "clientId": f"gregor-compat-{name}", "maxRuntimeMs": CONSUMER_MAX_RUNTIME_MS,
               **settings}
        self.events: list[dict] = []
        self.stderr: list[str] = []
        self._lock = threading.Lock()
        self.proc = subprocess.Popen(
            [NODE, _script("consume.js"), json.dumps(cfg)],
            cwd=KAFKAJS_DIR, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, bufsize=1, start_new_session=True)
        self._threads = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _read_stdout(self):
        for line in self.proc.stdout:
            for event in _parse_lines(line):
                with self._lock:
                    self.events.append(event)

    def _read_stderr(self):
        for line in self.proc.stderr:
            with self._lock:
                self.stderr.append(line.rstrip("\n"))

    # -- views of the events -------------------------------------------

    def snapshot(self, kind=None):
        with self._lock:
            return [e for e in self.events if kind is None or e["event"] == kind]

    def messages(self):
        return [(e["partition"], int(e["offset"]), e["key"], e["value"])
                for e in self.snapshot("message")]

    def values(self):
        return [m[3] for m in self.messages()]

    def assignment(self):
        """The partitions of the latest completed join, or None before the first."""
        joins = self.snapshot("assigned")
        return joins[-1]["partitions"] if joins else None

    def describe(self):
        with self._lock:
            events = self.events[-25:]
            stderr = self.stderr[-25:]
        state = "running" if self.proc.poll() is None else f"exited {self.proc.returncode}"
        return (f"kafkajs consumer {self.name} ({state})\n  last events: "
                + "\n    ".join(json.dumps(e) for e in events)
                + "\n  stderr tail:\n    " + "\n    ".join(stderr))

    # -- waiting ----------------------------------------------------------

    def wait_for(self, predicate, what, timeout=RECEIVE_DEADLINE_S):
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            crashes = [e for e in self.snapshot("crash") if not e.get("restart")]
            if crashes or self.proc.poll() is not None or time.monotonic() >= deadline:
                why = "crashed" if crashes else (
                    "exited" if self.proc.poll() is not None else f"timed out after {timeout}s")
                raise AssertionError(f"{why} waiting for {what}\n{self.describe()}")
            time.sleep(0.05)

    def wait_assigned(self, timeout=REBALANCE_DEADLINE_S):
        return self.wait_for(lambda: self.assignment() is not None, "a group assignment", timeout)

    def wait_messages(self, count, timeout=RECEIVE_DEADLINE_S):
        return self.wait_for(lambda: len(self.snapshot("message")) >= count and self.messages(),
                             f"{count} messages", timeout)

    # -- stopping ---------------------------------------------------------

    def stop(self, timeout=15):
        """Clean stop: "stop" on stdin -> consumer.disconnect() -> exit 0."""
        stop_through_stdin(self.proc, timeout, self.describe)
        for t in self._threads:
            t.join(timeout=2)
        assert self.proc.returncode == 0, f"exit code {self.proc.returncode}\n{self.describe()}"
        assert self.snapshot("disconnected"), self.describe()

    def kill(self):
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, 9)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                stream.close()
            except Exception:
                pass


@pytest.fixture
def consumers(broker):
    """``consumers(topic, group, name=..., **settings)`` starts a kafkajs consumer;
    every one still running at teardown is killed by PID."""
    started: list[NodeConsumer] = []

    def start(topic, group, **kwargs):
        c = NodeConsumer(broker, topic, group, **kwargs)
        started.append(c)
        return c

    yield start
    for c in started:
        c.kill()


def _spread(prefix, count, partitions):
    """``count`` messages with explicit partitions round-robin over ``partitions``."""
    return [{"key": f"{prefix}-k{i}", "value": f"{prefix}-{i}", "partition": i % partitions}
            for i in range(count)]


# ---------------------------------------------------------------------------
# No consumer groups involved: producer, admin topics, reads by another client
# ---------------------------------------------------------------------------


def test_producer_then_read_back_with_kafka_python(broker, closing):
    topic = unique_topic("kjs-produce")
    kp_create_topic(broker.bootstrap, topic, 3)
    msgs = _spread("p", 12, 3)
    msgs.append({"key": "h", "value": "with-headers", "partition": 0,
                 "headers": {"trace": "abc"}})
    placements = produce(broker, topic, msgs)
    assert [p for p, _ in placements] == [m["partition"] for m in msgs]
    per_partition = Counter()
    for p, off in placements:
        assert off == per_partition[p], placements  # gap-free from 0, in send order
        per_partition[p] += 1

    consumer = closing(kp_consumer(broker.bootstrap))
    tps = [TopicPartition(topic, p) for p in range(3)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    records = kp_drain(consumer, len(msgs))
    got = {(r.partition, r.offset): (r.key, r.value, list(r.headers)) for r in records}
    expected = {}
    for m, (p, off) in zip(msgs, placements):
        headers = [(k, v.encode()) for k, v in m.get("headers", {}).items()]
        expected[(p, off)] = (m["key"].encode(), m["value"].encode(), headers)
    assert got == expected


def test_producer_auto_creates_topic(broker):
    topic = unique_topic("kjs-auto")
    placements = produce(broker, topic, [{"value": "a"}, {"value": "b"}, {"value": "c"}])
    # The broker runs with --num-partitions 1: one partition, offsets 0..2.
    assert placements == [(0, 0), (0, 1), (0, 2)]
    (offsets,) = [ok(r) for r in admin(broker, ("fetchTopicOffsets", topic))]
    assert offsets == [{"partition": 0, "offset": "3", "high": "3", "low": "0"}]


@pytest.mark.parametrize("compression", ["gzip", "snappy", "lz4", "zstd"])
def test_compressed_batch_read_back_with_kafka_python(broker, closing, compression):
    topic = unique_topic(f"kjs-{compression}")
    kp_create_topic(broker.bootstrap, topic, 2)
    msgs = [{"key": f"k{i % 10}", "value": f"{compression} record {i} " * (1 + i % 20),
             "partition": i % 2, "headers": {"i": str(i)}} for i in range(200)]
    results = produce_batch(broker, topic, msgs, compression=compression)
    assert sorted((r["partition"], r["errorCode"], r["baseOffset"]) for r in results) == \
        [(0, 0, "0"), (1, 0, "0")], results

    got = read_back(broker.bootstrap, closing, topic, 2, len(msgs))
    expected = {}
    for i, m in enumerate(msgs):
        expected[(m["partition"], i // 2)] = (m["key"], m["value"], m["headers"])
    assert got == expected
    # Stored as sent: far smaller than the values alone, so kafkajs really compressed.
    stored = sum(kp_stored_bytes(broker.bootstrap, topic).values())
    assert stored < sum(len(m["value"]) for m in msgs) / 4, stored


@pytest.mark.parametrize("acks", [0, 1, -1])
def test_acks(broker, closing, acks):
    topic = unique_topic(f"kjs-acks{acks}")
    kp_create_topic(broker.bootstrap, topic, 1)
    msgs = [{"value": f"a{acks}-{i}", "partition": 0} for i in range(20)]
    results = produce_batch(broker, topic, msgs, acks=acks)
    if acks == 0:
        assert results == []  # no response to wait for
    else:
        assert [(r["partition"], r["errorCode"], r["baseOffset"]) for r in results] == [(0, 0, "0")]
    consumer = closing(kp_consumer(broker.bootstrap))
    tp = TopicPartition(topic, 0)
    wait_until(lambda: consumer.end_offsets([tp], timeout_ms=5000)[tp] == 20, timeout=10,
               message=f"the acks={acks} records to be visible")
    got = read_back(broker.bootstrap, closing, topic, 1, 20)
    assert [got[(0, i)][1] for i in range(20)] == [m["value"] for m in msgs]


def test_admin_partitions_configs_and_delete(broker):
    topic = unique_topic("kjs-admin2")
    other = unique_topic("kjs-admin2-other")
    topic_resource = {"type": 2, "name": topic}  # kafkajs ConfigResourceTypes.TOPIC
    (created, grown, assigned, too_few, unknown_broker, meta, described, altered,
     described_after, broker_cfg, deleted, listed) = admin(
        broker,
        ("createTopics", {"topics": [{"topic": topic, "numPartitions": 1},
                                     {"topic": other, "numPartitions": 1}],
                          "waitForLeaders": True}),
        ("createPartitions", {"topicPartitions": [{"topic": topic, "count": 3}]}),
        ("createPartitions", {"topicPartitions": [{"topic": topic, "count": 5,
                                                   "assignments": [[NODE_ID], [NODE_ID]]}]}),
        ("createPartitions", {"topicPartitions": [{"topic": topic, "count": 8,
                                                   "assignments": [[NODE_ID]]}]}),
        ("createPartitions", {"topicPartitions": [{"topic": topic, "count": 6,
                                                   "assignments": [[NODE_ID + 1]]}]}),
        ("fetchTopicMetadata", {"topics": [topic]}),
        ("describeConfigs", {"resources": [dict(topic_resource, configNames=["retention.ms"])],
                             "includeSynonyms": False}),
        ("alterConfigs", {"resources": [dict(topic_resource, configEntries=[
            {"name": "retention.ms", "value": "5000"}])]}),
        ("describeConfigs", {"resources": [topic_resource], "includeSynonyms": False}),
        ("describeConfigs", {"resources": [{"type": 4, "name": str(NODE_ID),  # BROKER
                                            "configNames": ["listeners"]}],
                             "includeSynonyms": False}),
        ("deleteTopics", {"topics": [topic]}),
        ("listTopics",),
    )
    assert ok(created) is True
    ok(grown)
    ok(assigned)
    # kafkajs reports the error code only, not the broker's message.
    for refused in (too_few, unknown_broker):
        assert not refused["ok"], refused
        assert refused["error"]["type"] == "INVALID_REPLICA_ASSIGNMENT", refused["error"]
    (tmeta,) = ok(meta)["topics"]
    assert sorted(p["partitionId"] for p in tmeta["partitions"]) == [0, 1, 2, 3, 4]

    (before,) = ok(described)["resources"]
    assert before["errorCode"] == 0
    assert [(c["configName"], c["configValue"], c["isDefault"]) for c in before["configEntries"]] == \
        [("retention.ms", "604800000", True)]
    ok(altered)
    (after,) = ok(described_after)["resources"]
    entries = {c["configName"]: c for c in after["configEntries"]}
    assert (entries["retention.ms"]["configValue"], entries["retention.ms"]["isDefault"]) == \
        ("5000", False)
    assert entries["cleanup.policy"]["configValue"] == "delete"
    (bres,) = ok(broker_cfg)["resources"]
    assert [(c["configName"], c["configValue"]) for c in bres["configEntries"]] == \
        [("listeners", f"PLAINTEXT://127.0.0.1:{broker.port}")]

    ok(deleted)
    names = ok(listed)
    assert topic not in names and other in names


def test_admin_topics(broker):
    topic = unique_topic("kjs-admin")
    created, again, listed, meta = admin(
        broker,
        ("createTopics", {"topics": [{"topic": topic, "numPartitions": 4}], "waitForLeaders": True}),
        ("createTopics", {"topics": [{"topic": topic, "numPartitions": 4}], "waitForLeaders": True}),
        ("listTopics",),
        ("fetchTopicMetadata", {"topics": [topic]}),
    )
    assert ok(created) is True
    # kafkajs answers a repeated create with `false` (TOPIC_ALREADY_EXISTS is swallowed).
    assert ok(again) is False
    assert topic in ok(listed)
    (tmeta,) = ok(meta)["topics"]
    assert tmeta["name"] == topic
    assert sorted(p["partitionId"] for p in tmeta["partitions"]) == [0, 1, 2, 3]
    assert all(p["partitionErrorCode"] == 0 for p in tmeta["partitions"])


# ---------------------------------------------------------------------------
# Consumer groups
# ---------------------------------------------------------------------------


def test_group_consumer_receives_everything(broker, consumers):
    topic = unique_topic("kjs-group")
    kp_create_topic(broker.bootstrap, topic, 3)
    msgs = _spread("m", 30, 3)
    placements = produce(broker, topic, msgs)

    c = consumers(topic, unique_topic("kjs-g"), name="solo")
    c.wait_assigned()
    assert c.assignment() == [0, 1, 2]
    c.wait_messages(len(msgs))
    got = c.messages()
    assert sorted(m[3] for m in got) == sorted(m["value"] for m in msgs)
    assert sorted((p, o) for p, o, _, _ in got) == sorted(placements)
    # Per partition, in offset order.
    for p in range(3):
        offs = [o for pp, o, _, _ in got if pp == p]
        assert offs == sorted(offs) == list(range(len(offs)))
    c.stop()


def _stable_split(a, b, partitions):
    """True once a's and b's latest assignments are disjoint and cover ``partitions``."""
    pa, pb = a.assignment(), b.assignment()
    if not pa or not pb:
        return False
    return not set(pa) & set(pb) and sorted(pa + pb) == list(range(partitions))


def _wait_split(a, b, partitions, timeout=REBALANCE_DEADLINE_S):
    deadline = time.monotonic() + timeout
    while not _stable_split(a, b, partitions):
        for c in (a, b):
            if c.proc.poll() is not None or any(not e.get("restart") for e in c.snapshot("crash")):
                raise AssertionError(f"consumer {c.name} died during the rebalance\n"
                                     f"{a.describe()}\n{b.describe()}")
        if time.monotonic() >= deadline:
            raise AssertionError(f"the group did not split {partitions} partitions between two "
                                 f"members within {timeout}s\n{a.describe()}\n{b.describe()}")
        time.sleep(0.05)


def test_two_consumers_share_partitions_then_one_leaves(broker, consumers):
    topic = unique_topic("kjs-share")
    kp_create_topic(broker.bootstrap, topic, 4)
    group = unique_topic("kjs-g")

    a = consumers(topic, group, name="a")
    a.wait_assigned()
    assert a.assignment() == [0, 1, 2, 3]
    b = consumers(topic, group, name="b")
    _wait_split(a, b, 4)
    assert a.assignment() and b.assignment()  # each gets some
    # Both members agree on the leader, and exactly one of them is it.
    join_a, join_b = a.snapshot("assigned")[-1], b.snapshot("assigned")[-1]
    assert join_a["leaderId"] == join_b["leaderId"], (a.describe(), b.describe())
    assert join_a["leaderId"] in (join_a["memberId"], join_b["memberId"])
    assert [join_a["isLeader"], join_b["isLeader"]].count(True) == 1
    assert join_a["memberId"] != join_b["memberId"]

    msgs = _spread("s", 40, 4)
    produce(broker, topic, msgs)
    deadline = time.monotonic() + RECEIVE_DEADLINE_S
    while len(a.messages()) + len(b.messages()) < len(msgs) and time.monotonic() < deadline:
        time.sleep(0.05)
    got_a, got_b = a.messages(), b.messages()
    assert len(got_a) + len(got_b) == len(msgs), (len(got_a), len(got_b), a.describe(), b.describe())
    # Exactly once overall, and each member only from its own partitions.
    assert sorted(m[3] for m in got_a + got_b) == sorted(m["value"] for m in msgs)
    assert {m[0] for m in got_a} == set(a.assignment())
    assert {m[0] for m in got_b} == set(b.assignment())

    # --- a leaves cleanly; b must take over all four partitions promptly.
    a_count, b_count = len(got_a), len(got_b)
    joins_before = len(b.snapshot("assigned"))
    t0 = time.monotonic()
    a.stop()
    b.wait_for(lambda: len(b.snapshot("assigned")) > joins_before and b.assignment() == [0, 1, 2, 3],
               "b to be assigned all 4 partitions after a left", timeout=REBALANCE_DEADLINE_S)
    takeover_s = time.monotonic() - t0
    # Well under the session timeout (10 s): the LeaveGroup, not an expiry, moved them.
    assert takeover_s < 8, f"takeover took {takeover_s:.1f}s\n{b.describe()}"
    print(f"[{__name__}] takeover after leave: {takeover_s:.2f}s")

    later = _spread("after", 20, 4)
    produce(broker, topic, later)
    b.wait_for(lambda: {"after-%d" % i for i in range(20)} <= set(b.values()),
               "b to receive every message produced after a left")
    # Nothing new reached a (it is gone) and b got each later message once.
    assert len(a.messages()) == a_count
    later_seen = Counter(v for v in b.values() if v.startswith("after-"))
    assert all(n == 1 for n in later_seen.values()), later_seen
    # b may only re-read (from the last commit) what a had consumed, never skip.
    assert len(b.messages()) >= b_count + len(later)
    b.stop()


def test_resume_from_committed_offsets(broker, consumers):
    topic = unique_topic("kjs-resume")
    kp_create_topic(broker.bootstrap, topic, 2)
    group = unique_topic("kjs-g")

    first = _spread("first", 10, 2)
    produce(broker, topic, first)
    c1 = consumers(topic, group, name="c1")  # autoCommit: commits after each batch
    c1.wait_messages(len(first))
    # Wait for the commit that covers everything (offset = last + 1 = 5 on each partition).
    c1.wait_for(lambda: _committed(c1).get(0) == 5 and _committed(c1).get(1) == 5,
                "auto-commit of offset 5 on both partitions")
    c1.stop()

    (fetched,) = admin(broker, ("fetchOffsets", {"groupId": group, "topics": [topic]}))
    (entry,) = ok(fetched)
    assert entry["topic"] == topic
    assert sorted((p["partition"], p["offset"]) for p in entry["partitions"]) == [(0, "5"), (1, "5")]

    second = _spread("second", 6, 2)
    produce(broker, topic, second)
    c2 = consumers(topic, group, name="c2")  # fromBeginning, but the group has offsets
    c2.wait_messages(len(second))
    time.sleep(1.0)  # anything extra (re-reads from offset 0) would show up now
    got = c2.messages()
    assert sorted(m[3] for m in got) == sorted(m["value"] for m in second), c2.describe()
    assert all(off >= 5 for _, off, _, _ in got), got
    c2.stop()


def _committed(consumer):
    """{partition: offset} of the latest commit the consumer reported for its topic."""
    out = {}
    for e in consumer.snapshot("committed"):
        for t in e["topics"]:
            if t["topic"] == consumer.topic:
                for p in t["partitions"]:
                    out[int(p["partition"])] = int(p["offset"])
    return out


def test_admin_groups(broker, consumers):
    topic = unique_topic("kjs-admgrp")
    kp_create_topic(broker.bootstrap, topic, 2)
    group = unique_topic("kjs-g")
    produce(broker, topic, _spread("x", 4, 2))

    c = consumers(topic, group, name="member")
    c.wait_messages(4)
    c.wait_for(lambda: _committed(c) == {0: 2, 1: 2}, "auto-commit of offset 2 on both partitions")
    member_id = c.snapshot("assigned")[-1]["memberId"]

    listed, described, fetched = admin(
        broker,
        ("listGroups",),
        ("describeGroups", [group]),
        ("fetchOffsets", {"groupId": group, "topics": [topic]}),
    )
    groups = {g["groupId"]: g for g in ok(listed)["groups"]}
    assert group in groups, groups
    assert groups[group]["protocolType"] == "consumer"

    (desc,) = ok(described)["groups"]
    assert desc["groupId"] == group
    assert desc["errorCode"] == 0
    assert desc["state"] == "Stable"
    assert desc["protocolType"] == "consumer"
    assert desc["protocol"] == "RoundRobinAssigner"  # kafkajs' default assigner name
    (member,) = desc["members"]
    assert member["memberId"] == member_id
    assert member["clientId"] == "gregor-compat-member"

    (entry,) = ok(fetched)
    assert sorted((p["partition"], p["offset"]) for p in entry["partitions"]) == [(0, "2"), (1, "2")]

    c.stop()
    # After the only member left: the group is Empty but keeps its offsets.
    described, fetched, deleted, listed = admin(
        broker,
        ("describeGroups", [group]),
        ("fetchOffsets", {"groupId": group, "topics": [topic]}),
        ("deleteGroups", [group]),
        ("listGroups",),
    )
    (desc,) = ok(described)["groups"]
    assert desc["state"] == "Empty", desc
    assert desc["members"] == []
    (entry,) = ok(fetched)
    assert sorted((p["partition"], p["offset"]) for p in entry["partitions"]) == [(0, "2"), (1, "2")]
    assert [d["groupId"] for d in ok(deleted)] == [group]
    assert group not in {g["groupId"] for g in ok(listed)["groups"]}


def test_transactional_producer_commit_and_abort(broker, closing):
    topic = unique_topic("kjs-txn")
    kp_create_topic(broker.bootstrap, topic, 1)
    transactions = [{"values": ["c-0", "c-1"], "commit": True},
                    {"values": ["a-0", "a-1"], "commit": False},
                    {"values": ["c-2"], "commit": True}]
    events = run_script("txn.js", {"bootstrap": broker.bootstrap, "topic": topic,
                                   "transactionalId": unique_topic("kjs-txn-id"),
                                   "transactions": transactions})
    assert [e["commit"] for e in events if e["event"] == "ended"] == [True, False, True]

    def values(isolation, expected):
        c = closing(kp_consumer(broker.bootstrap, isolation_level=isolation))
        c.assign([TopicPartition(topic, 0)])
        c.seek_to_beginning()
        return [r.value.decode() for r in kp_drain(c, expected)]

    assert values("read_committed", 3) == ["c-0", "c-1", "c-2"]
    assert values("read_uncommitted", 5) == ["c-0", "c-1", "a-0", "a-1", "c-2"]


# ---------------------------------------------------------------------------
# ACLs: the authorizer on (conftest's authorizing broker)
# ---------------------------------------------------------------------------

# kafkajs' ACL enums (AclResourceTypes, ResourcePatternTypes, AclOperationTypes,
# AclPermissionTypes: Kafka's codes), which admin.js's JSON arguments carry as numbers.
TOPIC, LITERAL = 2, 3
ANY, READ, WRITE, DESCRIBE = 1, 3, 4, 8
DENY, ALLOW = 2, 3


def produce_refused(broker, topic):
    """The error of a kafkajs send of one record to ``topic`` that must fail."""
    events = run_script("produce.js", {"bootstrap": broker.bootstrap, "topic": topic, "messages": [{"value": "v"}]},
                        check=False)
    (error,) = [e["error"] for e in events if e["event"] == "error"]
    return error


def test_admin_acls_refuse_produce_and_fetch_until_deleted(authorizing_broker, consumers):
    """kafkajs' own admin creates a DENY of WRITE and of READ for User:ANONYMOUS (every client
    here) on a topic that has a record, and an ALLOW of DESCRIBE (so its metadata is served, as
    fetchTopicMetadata shows, and the refusals are the Produce's and the Fetch's), and lists
    them. A send to that topic then fails with TOPIC_AUTHORIZATION_FAILED while another topic
    takes the record, and a group consumer of it crashes with that error instead of reading the
    record. Once kafkajs deletes the ACLs, the send succeeds."""
    b = authorizing_broker
    secret, public = unique_topic("kjs-secret"), unique_topic("kjs-public")
    kp_create_topic(b.bootstrap, secret, 1)
    kp_create_topic(b.bootstrap, public, 1)
    assert produce(b, secret, [{"value": "before"}]) == [(0, 0)]

    topic_acls = {"resourceType": TOPIC, "resourceName": secret, "resourcePatternType": LITERAL}
    entries = [{**topic_acls, "principal": ANONYMOUS, "host": "*", "operation": op, "permissionType": permission}
               for op, permission in ((READ, DENY), (WRITE, DENY), (DESCRIBE, ALLOW))]
    every = {**topic_acls, "operation": ANY, "permissionType": ANY}
    created, described, metadata = admin(b, ("createAcls", {"acl": entries}), ("describeAcls", every),
                                         ("fetchTopicMetadata", {"topics": [secret]}))
    ok(created)
    (resource,) = ok(described)["resources"]
    assert sorted(resource["acls"], key=lambda a: a["operation"]) == [
        {k: e[k] for k in ("principal", "host", "operation", "permissionType")} for e in entries]
    assert [p["partitionId"] for p in ok(metadata)["topics"][0]["partitions"]] == [0]

    refused = produce_refused(b, secret)
    assert refused["type"] == "TOPIC_AUTHORIZATION_FAILED", refused
    assert produce(b, public, [{"value": "v"}]) == [(0, 0)]

    c = consumers(secret, unique_topic("kjs-acl-g"), bootstrap=b.bootstrap)
    wait_until(lambda: c.snapshot("crash") or c.snapshot("message"), message=c.describe)
    assert not c.snapshot("message"), f"a denied READ let a record through\n{c.describe()}"
    (crash,) = c.snapshot("crash")
    assert (crash["error"].get("cause") or crash["error"])["type"] == "TOPIC_AUTHORIZATION_FAILED", crash

    deleted, described = admin(b, ("deleteAcls", {"filters": [{**every, "principal": ANONYMOUS, "host": "*"}]}),
                               ("describeAcls", every))
    (deletion,) = ok(deleted)["filterResponses"]
    assert len(deletion["matchingAcls"]) == 3, deletion
    assert ok(described)["resources"] == []
    assert produce(b, secret, [{"value": "after"}]) == [(0, 1)]


# ---------------------------------------------------------------------------
# Security: SSL, mutual TLS, SASL_PLAINTEXT and SASL_SSL (conftest's secured broker)
# ---------------------------------------------------------------------------


def kafkajs_security(certs, listener, mechanism=None, user=None, password=None, client_cert=False):
    settings = {}
    if listener in ("SSL", "MTLS", "SASL_SSL"):
        settings["ssl"] = {"caFile": certs["ca"]}
        if client_cert:
            settings["ssl"].update(certFile=certs["client_cert"], keyFile=certs["client_key"])
    if mechanism:
        settings["sasl"] = {"mechanism": mechanism.lower(), "username": user, "password": password}
    return settings


def secure_round_trip(b, consumers, listener, security):
    """kafkajs produces five records through ``listener`` and a kafkajs group consumer reads
    them back there."""
    topic = unique_topic(f"kjs-{listener.lower()}")
    kp_create_topic(b.bootstrap, topic, 1)
    events = run_script("produce.js", {"bootstrap": secure_addr(b, listener), "topic": topic,
                                       "messages": [{"value": f"m{i}"} for i in range(5)], **security})
    assert len([e for e in events if e["event"] == "produced"]) == 5, events
    c = consumers(topic, unique_topic("kjs-sec-g"), bootstrap=secure_addr(b, listener), **security)
    c.wait_messages(5)
    assert c.values() == [f"m{i}" for i in range(5)]
    c.stop()


def test_ssl_and_mutual_tls(secured, certs, consumers):
    secure_round_trip(secured, consumers, "SSL", kafkajs_security(certs, "SSL"))
    secure_round_trip(secured, consumers, "MTLS", kafkajs_security(certs, "MTLS", client_cert=True))
    events = run_script("produce.js", {"bootstrap": secure_addr(secured, "MTLS"), "topic": unique_topic("kjs-nocert"),
                                       "messages": [{"value": "v"}], "retries": 0, **kafkajs_security(certs, "MTLS")},
                        check=False)
    (error,) = [e for e in events if e["event"] == "error"]
    # The broker's TLS alert 116, certificate_required.
    assert "certificate required" in error["error"]["message"], error


@pytest.mark.parametrize("listener,mechanism", SASL_CASES)
def test_sasl(secured_with_scram_user, certs, consumers, listener, mechanism):
    user, password = sasl_user(mechanism)
    secure_round_trip(secured_with_scram_user, consumers, listener,
                      kafkajs_security(certs, listener, mechanism, user, password))


@pytest.mark.parametrize("listener,mechanism", SASL_CASES)
def test_sasl_wrong_password_is_an_authentication_error(secured_with_scram_user, certs, listener, mechanism):
    user, _ = sasl_user(mechanism)
    events = run_script("produce.js", {"bootstrap": secure_addr(secured_with_scram_user, listener),
                                       "topic": unique_topic("kjs-wrong"), "messages": [{"value": "v"}], "retries": 0,
                                       **kafkajs_security(certs, listener, mechanism, user, "wrong-password")},
                        check=False)
    (error,) = [e for e in events if e["event"] == "error"]
    assert error["error"]["name"] == "KafkaJSSASLAuthenticationError", error


def test_sasl_oauthbearer_signed_and_unsecured_tokens(signed_broker, oauth_broker, idp, consumers):
    """SASL/OAUTHBEARER: kafkajs' oauthBearerProvider (common.js makes it from the token in the
    settings) hands over a signed (ES256) token of the test's identity provider; its producer and
    group consumer log in as the token's subject and read back what they wrote. A token signed by
    a key not in the key set, and an unsecured one, are refused: the producer fails and no one is
    let in. (kafkajs does not answer RFC 7628's error challenge, so it never sees
    SASL_AUTHENTICATION_FAILED: it takes the challenge for success and sends Metadata, and the
    broker closes the connection.) Against the broker taking unsecured tokens, an unsecured one
    with the scope "kafka" logs in."""
    def oauth(token):
        return {"sasl": {"mechanism": "oauthbearer", "token": token}}

    secure_round_trip(signed_broker, consumers, "SASL_PLAINTEXT", oauth(idp.token("kjs-signed", "ec-1")))
    assert "authenticated as User:kjs-signed" in log_since(signed_broker, 0)

    for reason, token in refused_tokens(idp, "kjs").items():
        logged_from = os.path.getsize(signed_broker.log_path)
        events = run_script("produce.js", {"bootstrap": secure_addr(signed_broker, "SASL_PLAINTEXT"),
                                           "topic": unique_topic("kjs-oauth-refused"), "messages": [{"value": "v"}],
                                           "retries": 0, **oauth(token)}, check=False)
        assert "produced" not in [e["event"] for e in events] and events[-1]["event"] == "error", events
        log = log_since(signed_broker, logged_from)
        assert "unexpected Metadata request during SASL authentication" in log and "authenticated as" not in log, log
        assert f"(its token was refused: Authentication failed: {reason}" in log, "the reason is logged"

    unsecured = unsecured_token("kjs-unsecured")
    secure_round_trip(oauth_broker, consumers, "SASL_PLAINTEXT", oauth(unsecured))
    assert "authenticated as User:kjs-unsecured" in log_since(oauth_broker, 0)
