"""franz-go (Go: kgo 1.22.3 and kadm 1.20.0, pinned in franz/go.mod) against real Gregor brokers.

The franz-go side is one Go program, ``compat-tests/franz/`` (a file per command): it takes a
command and one JSON argument of settings, prints one JSON object per line on stdout and exits
by itself (``maxRuntimeMs``); the long-running commands (``group``, ``stream``) stop cleanly on
the stdin line "stop". The module builds it once per session into a temporary directory
(``go build`` with the module and build caches at Go's defaults, outside the repository).
Without a Go toolchain as new as ``franz/go.mod`` asks (franz-go 1.22 needs Go 1.26; Debian
12's golang-go is 1.19) the module is skipped. Every process started is killed by PID at
teardown.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import defaultdict

import pytest

from conftest import (CLIENT_TIMEOUT_S, JAVA, SASL_CASES, assert_contiguous_offsets, log_since, sasl_user,
                      secure_addr, stop_through_stdin, unique_topic, wait_for_login_logged, wait_until)
from test_oauthbearer import (idp, oauth_broker, refused_tokens, signed_broker,  # noqa: F401 (the fixtures)
                              unsecured_token)
from test_quotas import (RECORD_BYTES, THROTTLED_RECORDS, assert_all_delivered, assert_slowed_down, least_throttled_s,
                         limit_producer, quota_topics, short_window_broker)

HERE = os.path.dirname(os.path.abspath(__file__))
FRANZ_DIR = os.path.join(HERE, "franz")
GO = shutil.which("go")
# The pinned go.mod and go.sum only, and the toolchain that is installed: never a download of
# another one. VCS stamping would run git on the checkout, which a test binary does not need.
GO_ENV = {**os.environ, "GOFLAGS": "-mod=readonly -buildvcs=false", "GOTOOLCHAIN": "local"}
# The first build downloads franz-go from the module proxy.
GO_BUILD_TIMEOUT_S = 300

# Bounds of one franz run (the program enforces its own maxRuntimeMs too).
RUN_TIMEOUT_S = 30
RUNNING_MAX_RUNTIME_MS = 90_000
# How long a read goes on after the records it expects, so that any extra one shows.
SETTLE_MS = 500


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", text)[:3])


def _why_go_cannot_build() -> str | None:
    if GO is None:
        return "go is not installed (franz-go 1.22 needs Go 1.26 or later; see compat-tests/franz/go.mod)"
    with open(os.path.join(FRANZ_DIR, "go.mod")) as f:
        needed = re.search(r"^go (\S+)$", f.read(), re.M).group(1)
    have = subprocess.run([GO, "env", "GOVERSION"], capture_output=True, text=True, env=GO_ENV,
                          timeout=30).stdout.strip()
    if _version(have) < _version(needed):
        return (f"{GO} is {have or 'of unknown version'}, older than the Go {needed} that franz-go 1.22 "
                "needs (compat-tests/franz/go.mod); Debian 12's golang-go is 1.19")
    return None


WHY_NOT = _why_go_cannot_build()
pytestmark = pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or "")


@pytest.fixture(scope="session")
def franz():
    """The franz program, built once per session into a temporary directory."""
    out_dir = tempfile.mkdtemp(prefix="gregor-franz-")
    binary = os.path.join(out_dir, "franz")
    try:
        try:
            done = subprocess.run([GO, "build", "-o", binary, "."], cwd=FRANZ_DIR, env=GO_ENV,
                                  capture_output=True, text=True, timeout=GO_BUILD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"go build in {FRANZ_DIR} did not finish within {GO_BUILD_TIMEOUT_S}s", pytrace=False)
        if done.returncode != 0:
            pytest.fail(f"go build in {FRANZ_DIR} exited {done.returncode}:\n{done.stderr[-4000:]}", pytrace=False)
        yield binary
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)


# ---------------------------------------------------------------------------
# Running franz
# ---------------------------------------------------------------------------


def run(franz, command, settings, timeout=RUN_TIMEOUT_S):
    """Runs a franz command to its end and returns its events; fails if it exits non-zero."""
    argv = [franz, command, json.dumps(dict(settings, maxRuntimeMs=int(timeout * 1000) - 2000))]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:  # subprocess.run has killed it
        raise AssertionError(f"franz {command} did not finish within {timeout}s\n"
                             f"stdout: {e.stdout}\nstderr: {e.stderr}") from None
    if done.returncode != 0:
        raise AssertionError(f"franz {command} exited {done.returncode}\n"
                             f"stdout: {done.stdout[-4000:]}\nstderr: {done.stderr[-4000:]}")
    return [json.loads(line) for line in done.stdout.splitlines()]


def produce(franz, bootstrap, topic, records, **settings):
    """franz produce (kgo's ProduceSync): returns the records as acknowledged (partition, offset,
    timestamp set), in the order given; fails if any got an error."""
    events = run(franz, "produce", {"bootstrap": bootstrap, "topic": topic, "records": records, **settings})
    produced = [e for e in events if e["event"] == "produced"]
    assert [e["error"] for e in produced] == [""] * len(records), events
    return [e["record"] for e in produced]


def consume(franz, bootstrap, topic, count, read_committed=False, **settings):
    """franz consume: every partition of ``topic`` from its start, without a group, until
    ``count`` records are in and SETTLE_MS after; returns the records read."""
    events = run(franz, "consume", {"bootstrap": bootstrap, "topic": topic, "count": count,
                                    "settleMs": SETTLE_MS, "readCommitted": read_committed, **settings})
    assert [e for e in events if e["event"] == "fetchError"] == [], events
    return [e["record"] for e in events if e["event"] == "record"]


def by_position(records):
    """{(partition, offset): record}; fails if two records share a position."""
    positions = {(r["partition"], r["offset"]): r for r in records}
    assert len(positions) == len(records), f"{len(records) - len(positions)} records at a position already seen"
    return positions


def admin(franz, bootstrap, *ops, **settings):
    """franz admin: runs ``ops`` ({"op": name, ...fields}) with one kadm client, in order, and
    returns (error, result) for each; the error is the Kafka code's name, "" when it worked."""
    events = run(franz, "admin", {"bootstrap": bootstrap, "ops": list(ops), **settings})
    results = [e for e in events if e["event"] == "op"]
    assert len(results) == len(ops), events
    return [(e["error"], e["result"]) for e in results]


def ok(outcome):
    error, result = outcome
    assert error == "", f"kadm call failed: {error}"
    return result


def create_topic(franz, bootstrap, topic, partitions, replication_factor=1, configs=None):
    created = ok(*admin(franz, bootstrap, {"op": "createTopic", "topic": topic, "partitions": partitions,
                                           "replicationFactor": replication_factor, "configs": configs or {}}))
    assert created == {"partitions": partitions, "replicationFactor": replication_factor}


def dump_log(broker, topic):
    """The batches the broker stores for ``topic`` as `gregor dump-log` prints them: one dict of
    kafka-dump-log's fields (as text) per batch."""
    done = subprocess.run([broker.binary, "dump-log", "--log-dirs", broker.data_dir, "--topic", topic],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return [dict(re.findall(r"(\w+): (\S+)", line)) for line in done.stdout.splitlines()]


class Running:
    """A franz command that runs until told "stop" (group, stream); a thread collects its
    events, its stderr goes to a file shown when a wait fails."""

    def __init__(self, franz, command, settings, name):
        self.name = f"franz {command} {name}"
        self.events: list[dict] = []
        self._lock = threading.Lock()
        self._stderr = tempfile.TemporaryFile()
        settings = dict(settings, maxRuntimeMs=RUNNING_MAX_RUNTIME_MS)
        self.proc = subprocess.Popen([franz, command, json.dumps(settings)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._stderr, text=True, bufsize=1)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            event = json.loads(line)
            with self._lock:
                self.events.append(event)

    def of(self, kind):
        with self._lock:
            return [e for e in self.events if e["event"] == kind]

    def describe(self):
        with self._lock:
            last = self.events[-20:]
        self._stderr.seek(0)
        stderr = self._stderr.read().decode(errors="replace").splitlines()[-20:]
        state = "running" if self.proc.poll() is None else f"exited {self.proc.returncode}"
        return (f"{self.name} ({state})\n  last events:\n    " + "\n    ".join(map(json.dumps, last))
                + "\n  stderr tail:\n    " + "\n    ".join(stderr))

    def wait_for(self, predicate, what, timeout=CLIENT_TIMEOUT_S):
        def check():
            value = predicate()
            if not value and self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited while waiting for {what}\n{self.describe()}")
            return value

        return wait_until(check, timeout=timeout, message=lambda: f"{what}\n{self.describe()}")

    def stop(self, last_event, timeout=15):
        """Says "stop" and waits for a clean exit after ``last_event``."""
        stop_through_stdin(self.proc, timeout, self.describe)
        self._reader.join(timeout=5)
        assert self.proc.returncode == 0 and self.of(last_event), self.describe()

    def kill(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self._reader.join(timeout=5)
        for stream in (self.proc.stdin, self.proc.stdout, self._stderr):
            stream.close()

    # -- a group member's view ------------------------------------------------

    def records(self):
        return [e["record"] for e in self.of("record")]

    def assignment(self):
        """The partitions held after the latest change, or None before the first assignment."""
        with self._lock:
            changes = [e for e in self.events if e["event"] in ("assigned", "revoked", "lost")]
        return changes[-1]["partitions"] if changes else None

    def committed(self):
        """{partition: offset} of the latest commit of each partition."""
        offsets = {}
        for e in self.of("committed"):
            offsets.update({int(p): o for p, o in e["offsets"].items()})
        return offsets


@pytest.fixture
def running(franz):
    """``running(command, settings, name)`` starts a franz command that runs until stopped;
    every one is killed by PID at teardown."""
    started: list[Running] = []

    def start(command, settings, name):
        r = Running(franz, command, settings, name)
        started.append(r)
        return r

    yield start
    for r in started:
        r.kill()


# ---------------------------------------------------------------------------
# Producing and consuming
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("acks,idempotent", [("all", True), ("leader", False), ("none", False)],
                         ids=["acks_all_idempotent", "acks_1", "acks_0"])
def test_produce_then_consume(broker, franz, acks, idempotent):
    topic = unique_topic("franz-produce")
    create_topic(franz, broker.bootstrap, topic, 3)
    records = [{"key": f"k{i % 7}", "value": f"v{i}"} for i in range(60)]
    produced = produce(franz, broker.bootstrap, topic, records, acks=acks, idempotent=idempotent)
    assert [(r["key"], r["value"]) for r in produced] == [(r["key"], r["value"]) for r in records]
    # kgo's default partitioner hashes keys: one partition per key.
    partition_of = defaultdict(set)
    for r in produced:
        partition_of[r["key"]].add(r["partition"])
    assert all(len(ps) == 1 for ps in partition_of.values()), partition_of

    consumed = consume(franz, broker.bootstrap, topic, len(records))
    if acks == "none":  # no response, so no offsets: each partition holds its records in send order
        for p in range(3):
            assert [r["value"] for r in consumed if r["partition"] == p] == \
                [r["value"] for r in produced if r["partition"] == p]
    else:
        assert_contiguous_offsets([(r["partition"], r["offset"]) for r in produced])
        assert by_position(consumed) == by_position(produced)

    batches = dump_log(broker, topic)
    assert sum(int(b["count"]) for b in batches) == len(records)
    if idempotent:  # one producer id, and each partition's sequences run on from 0
        assert len({b["producerId"] for b in batches}) == 1 and int(batches[0]["producerId"]) >= 0, batches
        next_sequence = defaultdict(int)
        for b in batches:
            assert int(b["baseSequence"]) == next_sequence[b["partition"]], batches
            next_sequence[b["partition"]] += int(b["count"])
    else:  # no producer id (kgo writes base sequence 0 then, not -1)
        assert {b["producerId"] for b in batches} == {"-1"}, batches


def test_keys_headers_and_timestamps_round_trip(broker, franz):
    topic = unique_topic("franz-fields")
    create_topic(franz, broker.bootstrap, topic, 2)
    records = [
        {"partition": 0, "key": "k1", "value": "v1", "headers": [["a", "1"], ["a", "2"], ["empty", ""]],
         "timestampMs": 1_600_000_000_000},
        {"partition": 0, "key": None, "value": "no key", "timestampMs": 1_600_000_000_500},
        {"partition": 0, "key": "tombstone", "value": None},
        # Older than the batch's first record: a negative timestamp delta.
        {"partition": 0, "key": "early", "value": "1.5e12", "timestampMs": 1_500_000_000_000},
        {"partition": 1, "key": "", "value": "", "timestampMs": 1_700_000_000_000},
        {"partition": 1, "key": "ключ", "value": "значение ✓", "headers": [["h", "ü"]],
         "timestampMs": 1_700_000_000_001},
    ]
    produced = produce(franz, broker.bootstrap, topic, records, manual=True)
    assert [(r["partition"], r["offset"]) for r in produced] == [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0), (1, 1)]
    # Acknowledged as given; kgo stamps the send time on the record without a timestamp.
    assert produced == [{**sent, "offset": acked["offset"], "timestampMs": sent.get("timestampMs", acked["timestampMs"])}
                        for sent, acked in zip(records, produced)]
    consumed = consume(franz, broker.bootstrap, topic, len(records))
    assert by_position(consumed) == by_position(produced)

    future = int(time.time() * 1000) + 86_400_000
    starts, ends, after_1_6, after_1_7, after_future = admin(
        franz, broker.bootstrap,
        {"op": "listStartOffsets", "topic": topic},
        {"op": "listEndOffsets", "topic": topic},
        {"op": "listOffsetsAfterMilli", "topic": topic, "millis": 1_600_000_000_001},
        {"op": "listOffsetsAfterMilli", "topic": topic, "millis": 1_700_000_000_001},
        {"op": "listOffsetsAfterMilli", "topic": topic, "millis": future},
    )
    assert ok(starts) == {"0": 0, "1": 0}
    assert ok(ends) == {"0": 4, "1": 2}
    # The first record at or after the time; kadm reads "none" as the end offset.
    assert ok(after_1_6) == {"0": 1, "1": 0}
    assert ok(after_1_7) == {"0": 2, "1": 1}
    assert ok(after_future) == {"0": 4, "1": 2}

    # DeleteRecords moves partition 0's start into its one batch; reads begin there.
    deleted, starts = admin(franz, broker.bootstrap, {"op": "deleteRecords", "topic": topic, "partition": 0, "offset": 2},
                            {"op": "listStartOffsets", "topic": topic})
    assert ok(deleted) == {"lowWatermark": 2}
    assert ok(starts) == {"0": 2, "1": 0}
    after_delete = consume(franz, broker.bootstrap, topic, len(records) - 2)
    assert by_position(after_delete) == {k: r for k, r in by_position(produced).items() if k not in {(0, 0), (0, 1)}}


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compression(broker, franz, codec):
    topic = unique_topic(f"franz-{codec}")
    create_topic(franz, broker.bootstrap, topic, 2)
    records = [{"partition": i % 2, "key": f"k{i % 10}", "value": f"{codec} record {i} " * (1 + i % 20),
                "headers": [["i", str(i)]]} for i in range(200)]
    produced = produce(franz, broker.bootstrap, topic, records, manual=True, compression=codec)
    assert_contiguous_offsets([(r["partition"], r["offset"]) for r in produced])
    consumed = consume(franz, broker.bootstrap, topic, len(records))
    assert by_position(consumed) == by_position(produced)
    # Stored as sent: every batch in the codec, far smaller than the values alone.
    batches = dump_log(broker, topic)
    assert {b["compresscodec"] for b in batches} == {codec}, batches
    assert sum(int(b["size"]) for b in batches) < sum(len(r["value"]) for r in records) / 4


# ---------------------------------------------------------------------------
# Consumer groups
# ---------------------------------------------------------------------------


@pytest.mark.skipif(JAVA is None, reason="java is not installed (kafka-configs sets the quota)")
def test_producer_over_its_byte_rate_slows_down_and_loses_nothing(franz, tools_classpath):
    """kgo over its producer_byte_rate (set with kafka-configs, on a broker with test_quotas.py's
    short quota windows; batches of at most 16 KiB, the Java client's batch.size, so that the
    records take many requests): it holds back for the throttles (HookBrokerThrottle), takes at
    least 60 % of bytes / rate where the same producer unthrottled takes less, and every record is
    delivered once, in order."""
    with short_window_broker() as b:
        throttled, free = quota_topics(b, "franz-quota")
        limit_producer(tools_classpath, b, "franz-throttled")

        def timed(topic, client_id):
            events = run(franz, "produce", {"bootstrap": b.bootstrap, "topic": topic, "clientId": client_id,
                                            "count": THROTTLED_RECORDS, "recordBytes": RECORD_BYTES,
                                            "batchMaxBytes": 16384})
            produced = [e for e in events if e["event"] == "produced"]
            assert [e["error"] for e in produced] == [""] * THROTTLED_RECORDS, "every record is acknowledged"
            (done,) = [e for e in events if e["event"] == "done"]
            return done, [e["record"]["offset"] for e in produced]

        free_run, _ = timed(free, "franz-free")
        throttled_run, offsets = timed(throttled, "franz-throttled")
        print(f"franz-go: unthrottled {free_run}, throttled {throttled_run}")
        assert_slowed_down("franz-go", throttled_run["ms"] / 1000, free_run["ms"] / 1000, least_throttled_s())
        assert free_run["throttles"] == 0 and throttled_run["throttles"] > 0
        assert throttled_run["maxThrottleMs"] > 0
        assert offsets == list(range(THROTTLED_RECORDS)), "in order"
        assert_all_delivered(b.bootstrap, throttled)


def _values(records):
    return sorted(r["value"] for r in records)


def test_group_commits_and_a_new_member_resumes_at_the_commit(broker, franz, running):
    topic = unique_topic("franz-group")
    group = unique_topic("franz-g")
    create_topic(franz, broker.bootstrap, topic, 3)
    first = produce(franz, broker.bootstrap, topic, [{"partition": i % 3, "value": f"first-{i}"} for i in range(30)],
                    manual=True)
    member = {"bootstrap": broker.bootstrap, "topic": topic, "group": group}

    a = running("group", dict(member, clientId="franz-a"), "a")
    a.wait_for(lambda: a.assignment() == [0, 1, 2], "a to hold all three partitions")
    a.wait_for(lambda: a.committed() == {0: 10, 1: 10, 2: 10}, "a's commit of offset 10 on each partition")
    assert by_position(a.records()) == by_position(first)

    listed, described = admin(franz, broker.bootstrap, {"op": "listGroups"}, {"op": "describeGroups", "groups": [group]})
    assert ok(listed)[group] == {"state": "Stable", "protocolType": "consumer", "coordinator": 1}
    desc = ok(described)[group]
    (assigned,) = a.of("assigned")
    assert desc == {"state": "Stable", "protocolType": "consumer", "protocol": "cooperative-sticky",
                    "coordinator": 1, "error": "",
                    "members": [{"memberId": assigned["memberId"], "clientId": "franz-a", "assigned": {topic: [0, 1, 2]}}]}
    a.stop("closed")

    fetched, described = admin(franz, broker.bootstrap, {"op": "fetchOffsets", "group": group},
                               {"op": "describeGroups", "groups": [group]})
    assert ok(fetched) == {topic: {"0": 10, "1": 10, "2": 10}}
    assert ok(described)[group]["state"] == "Empty" and ok(described)[group]["members"] == []

    second = produce(franz, broker.bootstrap, topic, [{"partition": i % 3, "value": f"second-{i}"} for i in range(15)],
                     manual=True)
    b = running("group", dict(member, clientId="franz-b"), "b")
    b.wait_for(lambda: b.committed() == {0: 15, 1: 15, 2: 15}, "b's commit of offset 15 on each partition")
    time.sleep(SETTLE_MS / 1000)  # a record read again from before the commit would show now
    assert by_position(b.records()) == by_position(second)
    b.stop("closed")

    deleted, listed, fetched = admin(franz, broker.bootstrap, {"op": "deleteGroups", "groups": [group]},
                                     {"op": "listGroups"}, {"op": "fetchOffsets", "group": group})
    ok(deleted)
    assert group not in ok(listed)
    assert ok(fetched) == {}


def test_two_members_split_the_partitions_then_one_leaves(broker, franz, running):
    topic = unique_topic("franz-split")
    group = unique_topic("franz-g")
    create_topic(franz, broker.bootstrap, topic, 4)
    member = {"bootstrap": broker.bootstrap, "topic": topic, "group": group}
    a = running("group", member, "a")
    a.wait_for(lambda: a.assignment() == [0, 1, 2, 3], "a to hold all four partitions")
    b = running("group", member, "b")

    def split():
        pa, pb = a.assignment() or [], b.assignment() or []
        return pa and pb and sorted(pa + pb) == [0, 1, 2, 3]

    b.wait_for(split, "a and b to split the four partitions")
    held = {"a": a.assignment(), "b": b.assignment()}

    produced = produce(franz, broker.bootstrap, topic, [{"partition": i % 4, "value": f"v{i}"} for i in range(40)],
                       manual=True)
    a.wait_for(lambda: len(a.records()) + len(b.records()) >= 40, "a and b to read the 40 records")
    time.sleep(SETTLE_MS / 1000)
    # Each read exactly the records of its own partitions.
    for name, member_proc in (("a", a), ("b", b)):
        mine = [r for r in produced if r["partition"] in held[name]]
        assert by_position(member_proc.records()) == by_position(mine), name

    b.stop("closed")
    a.wait_for(lambda: a.assignment() == [0, 1, 2, 3], "a to take back all four partitions after b left")
    later = produce(franz, broker.bootstrap, topic, [{"partition": i % 4, "value": f"later-{i}"} for i in range(8)],
                    manual=True)
    a.wait_for(lambda: len(a.records()) >= len(held["a"]) * 10 + 8, "a to read the records sent after b left")
    time.sleep(SETTLE_MS / 1000)
    # b committed what it read before leaving: a reads nothing twice.
    assert by_position(a.records()) == by_position([r for r in produced if r["partition"] in held["a"]] + later)
    a.stop("closed")


# ---------------------------------------------------------------------------
# Admin (kadm)
# ---------------------------------------------------------------------------


def test_admin_topics_partitions_and_configs(broker, franz):
    topic = unique_topic("franz-admin")
    outcomes = admin(
        franz, broker.bootstrap,
        {"op": "createTopic", "topic": topic, "partitions": 2, "replicationFactor": 1,
         "configs": {"retention.ms": "3600000"}},
        {"op": "createTopic", "topic": topic, "partitions": 2, "replicationFactor": 1},
        {"op": "createPartitions", "topic": topic, "add": 3},
        {"op": "metadata", "topic": topic},
        {"op": "describeTopicConfigs", "topic": topic},
        {"op": "alterTopicConfigs", "topic": topic, "configs": {"max.message.bytes": "65536"},
         "delete": ["retention.ms"]},
        {"op": "alterTopicConfigs", "topic": topic, "configs": {"retention.ms": "soon"}},
        {"op": "describeTopicConfigs", "topic": topic},
        {"op": "listPartitionReassignments", "topic": topic, "partitions": 5},
        {"op": "deleteTopic", "topic": topic},
    )
    (created, again, grown, meta, configs, altered, refused, configs_after, reassignments, deleted) = outcomes
    assert ok(created) == {"partitions": 2, "replicationFactor": 1}
    assert again[0] == "TOPIC_ALREADY_EXISTS"
    ok(grown)
    partitions = ok(meta)["partitions"]
    assert partitions == {str(p): {"leader": 1, "replicas": [1], "isr": [1], "error": ""} for p in range(5)}

    configs = ok(configs)
    assert configs["retention.ms"] == {"value": "3600000", "source": "DYNAMIC_TOPIC_CONFIG"}
    assert configs["cleanup.policy"] == {"value": "delete", "source": "DEFAULT_CONFIG"}
    assert configs["max.message.bytes"] == {"value": "1048588", "source": "DEFAULT_CONFIG"}
    ok(altered)
    assert refused[0] == "INVALID_CONFIG"
    configs_after = ok(configs_after)
    assert configs_after["retention.ms"] == {"value": "604800000", "source": "DEFAULT_CONFIG"}
    assert configs_after["max.message.bytes"] == {"value": "65536", "source": "DYNAMIC_TOPIC_CONFIG"}

    assert ok(reassignments) == {}  # none under way
    ok(deleted)
    # A new client: kadm answers metadata from its client's cache for 5 s.
    meta_after, deleted_again = admin(franz, broker.bootstrap, {"op": "metadata", "topic": topic},
                                      {"op": "deleteTopic", "topic": topic})
    assert meta_after[0] == "UNKNOWN_TOPIC_OR_PARTITION"
    assert deleted_again[0] == "UNKNOWN_TOPIC_OR_PARTITION"


# ---------------------------------------------------------------------------
# Transactions
# ---------------------------------------------------------------------------


def test_transactions_commit_and_abort_with_read_committed(txn_version_broker, franz):
    broker, version = txn_version_broker
    topic = unique_topic("franz-txn")
    create_topic(franz, broker.bootstrap, topic, 1)
    transactions = [{"values": ["c-0", "c-1"], "commit": True},
                    {"values": ["a-0", "a-1"], "commit": False},
                    {"values": ["c-2"], "commit": True}]
    transactional_id = unique_topic("franz-txn-id")
    events = run(franz, "txn", {"bootstrap": broker.bootstrap, "topic": topic,
                                "transactionalId": transactional_id, "transactions": transactions})
    assert [(e["values"], e["commit"]) for e in events if e["event"] == "ended"] == \
        [(t["values"], t["commit"]) for t in transactions]

    # Offsets: c-0 c-1 COMMIT a-0 a-1 ABORT c-2 COMMIT.
    committed = consume(franz, broker.bootstrap, topic, 3, read_committed=True)
    assert [(r["offset"], r["value"]) for r in committed] == [(0, "c-0"), (1, "c-1"), (6, "c-2")]
    everything = consume(franz, broker.bootstrap, topic, 5)
    assert [(r["offset"], r["value"]) for r in everything] == \
        [(0, "c-0"), (1, "c-1"), (3, "a-0"), (4, "a-1"), (6, "c-2")]
    stable, end, described, listed = admin(
        franz, broker.bootstrap,
        {"op": "listCommittedOffsets", "topic": topic},
        {"op": "listEndOffsets", "topic": topic},
        {"op": "describeTransactions", "transactionalId": transactional_id},
        {"op": "listTransactions"},
    )
    assert ok(stable) == ok(end) == {"0": 8}
    described = ok(described)
    # kgo's default transaction timeout; under transactions v2 each of the three ends bumped the epoch.
    assert described == {"state": "CompleteCommit", "producerId": described["producerId"],
                         "producerEpoch": 3 if version == 2 else 0, "timeoutMs": 40_000, "topics": {}}
    assert ok(listed)[transactional_id] == {"state": "CompleteCommit", "producerId": described["producerId"]}


def test_group_transact_session_reads_and_writes_exactly_once(broker, franz):
    source = unique_topic("franz-eos-in")
    sink = unique_topic("franz-eos-out")
    group = unique_topic("franz-eos-g")
    create_topic(franz, broker.bootstrap, source, 2)
    create_topic(franz, broker.bootstrap, sink, 1)
    inputs = produce(franz, broker.bootstrap, source, [{"partition": i % 2, "value": f"in-{i}"} for i in range(20)],
                     manual=True)
    events = run(franz, "transact", {"bootstrap": broker.bootstrap, "input": source, "output": sink, "group": group,
                                     "transactionalId": unique_topic("franz-eos-id"), "suffix": "-out",
                                     "count": len(inputs), "abortFirst": True})
    ended = [e for e in events if e["event"] == "ended"]
    assert ended[0]["committed"] is False and all(e["committed"] for e in ended[1:]), ended
    written = [v for e in ended for v in e["values"]]
    expected = sorted(r["value"] + "-out" for r in inputs)
    # The aborted transaction's records were read again and written once more.
    assert sorted(v for e in ended[1:] for v in e["values"]) == expected
    assert set(ended[0]["values"]) <= set(expected)

    assert _values(consume(franz, broker.bootstrap, sink, len(expected), read_committed=True)) == expected
    assert _values(consume(franz, broker.bootstrap, sink, len(written))) == sorted(written)
    fetched, ends = admin(franz, broker.bootstrap, {"op": "fetchOffsets", "group": group},
                          {"op": "listEndOffsets", "topic": source})
    assert ok(fetched) == {source: ok(ends)} == {source: {"0": 10, "1": 10}}


# ---------------------------------------------------------------------------
# A three-node cluster
# ---------------------------------------------------------------------------


def test_cluster_producer_and_group_go_on_when_the_leader_and_coordinator_node_is_killed(franz, cluster, running):
    """An idempotent acks=all producer writes to an RF=3 topic (min.insync.replicas=2) while a
    group consumes it; the node that coordinates the group, and leads one of the partitions, is
    killed with SIGKILL. Both clients go on through the survivors: every record sent is
    acknowledged, the log holds exactly the acknowledged records at their offsets, and the group
    reads all of them and commits the end of each partition."""
    bootstrap = cluster.all_live()
    topic = "franz-replicated"
    create_topic(franz, bootstrap, topic, 3, replication_factor=3, configs={"min.insync.replicas": "2"})

    def in_sync():
        error, result = admin(franz, bootstrap, {"op": "metadata", "topic": topic})[0]
        partitions = result["partitions"] if error == "" else {}
        return len(partitions) == 3 and all(sorted(p["isr"]) == [1, 2, 3] for p in partitions.values()) and partitions

    leaders = {int(p): d["leader"] for p, d in
               wait_until(in_sync, message=lambda: f"the partitions' three replicas in sync\n{cluster.log()}").items()}
    assert sorted(leaders.values()) == [1, 2, 3], leaders

    consumer = running("group", {"bootstrap": bootstrap, "topic": topic, "group": "franz-failover",
                                 "sessionTimeoutMs": 6000}, "consumer")
    consumer.wait_for(lambda: consumer.assignment() == [0, 1, 2], "the consumer to hold all three partitions")
    producer = running("stream", {"bootstrap": bootstrap, "topic": topic, "partitions": 3, "prefix": "v",
                                  "intervalMs": 2}, "producer")
    producer.wait_for(lambda: len(producer.of("produced")) >= 300, "300 acknowledged records")

    coordinator = ok(*admin(franz, bootstrap, {"op": "describeGroups", "groups": ["franz-failover"]}))[
        "franz-failover"]["coordinator"]
    (moved,) = [p for p, leader in leaders.items() if leader == coordinator]
    os.kill(cluster.node_pid(coordinator), signal.SIGKILL)
    killed_at = len(producer.of("produced"))
    survivors = ",".join(b for i, b in enumerate(cluster.bootstrap) if i + 1 != coordinator)

    def acked_on_moved_partition_since_kill():
        return sum(e["record"]["partition"] == moved for e in producer.of("produced")[killed_at:])

    producer.wait_for(lambda: acked_on_moved_partition_since_kill() >= 100,
                      f"100 records acknowledged on partition {moved} by its new leader")
    producer.stop("done")
    sent = producer.of("done")[0]["sent"]
    produced = producer.of("produced")
    assert [e for e in produced if e["error"]] == [], producer.describe()
    acked = [e["record"] for e in produced]
    assert sorted(r["value"] for r in acked) == sorted(f"v-{i}" for i in range(sent))

    # The log holds exactly what was acknowledged, where it was acknowledged.
    assert by_position(consume(franz, survivors, topic, len(acked))) == by_position(acked)
    ends = {int(p): o for p, o in ok(*admin(franz, survivors, {"op": "listEndOffsets", "topic": topic})).items()}
    consumer.wait_for(lambda: consumer.committed() == ends,
                      f"the group to read and commit every record (end offsets {ends}) after the kill", timeout=30)
    assert {r["value"] for r in consumer.records()} == {r["value"] for r in acked}
    consumer.stop("closed")
    assert ok(*admin(franz, survivors, {"op": "fetchOffsets", "group": "franz-failover"})) == \
        {topic: {str(p): o for p, o in ends.items()}}


def test_cluster_kadm_lists_a_reassignment_in_progress_and_cancels_it(franz, cluster):
    """kadm moves a partition onto a third broker that was killed first, so the reassignment
    stays in progress: ListPartitionReassignments shows it, and cancelling it restores the
    replicas."""
    bootstrap = cluster.all_live()
    topic = "franz-moving"
    create_topic(franz, bootstrap, topic, 1, replication_factor=2)

    def partition_0(via):
        error, result = admin(franz, via, {"op": "metadata", "topic": topic})[0]
        p = result["partitions"].get("0") if error == "" else None
        return p if p and sorted(p["isr"]) == sorted(p["replicas"]) and len(p["replicas"]) == 2 else None

    replicas = wait_until(lambda: partition_0(bootstrap), message="partition 0 with its two replicas in sync")["replicas"]
    (outsider,) = {1, 2, 3} - set(replicas)
    os.kill(cluster.node_pid(outsider), signal.SIGKILL)
    survivors = ",".join(b for i, b in enumerate(cluster.bootstrap) if i + 1 != outsider)
    target = replicas + [outsider]

    refused, moved, listed = admin(
        franz, survivors,
        {"op": "alterPartitionAssignments", "topic": topic, "partition": 0, "replicas": [replicas[0], 9]},
        {"op": "alterPartitionAssignments", "topic": topic, "partition": 0, "replicas": target},
        {"op": "listPartitionReassignments", "topic": topic, "partitions": 1},
    )
    assert refused[0] == "INVALID_REPLICA_ASSIGNMENT"
    ok(moved)
    assert ok(listed) == {"0": {"replicas": target, "adding": [outsider], "removing": None}}

    cancelled, listed, cancelled_again = admin(
        franz, survivors,
        {"op": "alterPartitionAssignments", "topic": topic, "partition": 0, "replicas": None},
        {"op": "listPartitionReassignments", "topic": topic, "partitions": 1},
        {"op": "alterPartitionAssignments", "topic": topic, "partition": 0, "replicas": None},
    )
    ok(cancelled)
    assert ok(listed) == {}
    assert cancelled_again[0] == "NO_REASSIGNMENT_IN_PROGRESS"
    assert wait_until(lambda: partition_0(survivors), message="partition 0 back on its two replicas")["replicas"] == replicas


# ---------------------------------------------------------------------------
# Security: TLS, SASL and ACLs
# ---------------------------------------------------------------------------


def franz_security(certs, listener, mechanism=None, password=None, client_cert=True):
    """franz's settings for ``listener`` of the secured broker: "tls" with the dev CA on TLS
    listeners (and the client certificate on MTLS unless not ``client_cert``), "sasl" with
    ``mechanism``'s user (and ``password`` instead of theirs if given)."""
    settings = {}
    if listener in ("SSL", "MTLS", "SASL_SSL"):
        settings["tls"] = {"ca": certs["ca"]}
        if listener == "MTLS" and client_cert:
            settings["tls"].update(cert=certs["client_cert"], key=certs["client_key"])
    if mechanism:
        user, theirs = sasl_user(mechanism)
        settings["sasl"] = {"mechanism": mechanism, "user": user, "password": password or theirs}
    return settings


@pytest.mark.parametrize("listener,mechanism", [("SSL", None), ("MTLS", None)] + SASL_CASES)
def test_produce_and_consume_over_a_secured_listener(franz, secured_with_scram_user, certs, listener, mechanism):
    """kgo produces and reads back through ``listener``; the broker logs whom it let in."""
    b = secured_with_scram_user
    topic = unique_topic(f"franz-{listener.lower()}")
    create_topic(franz, b.bootstrap, topic, 2)
    through = secure_addr(b, listener)
    security = franz_security(certs, listener, mechanism)
    logged_from = os.path.getsize(b.log_path)
    records = [{"partition": i % 2, "key": f"k{i}", "value": f"{listener} {mechanism} {i}"} for i in range(20)]
    produced = produce(franz, through, topic, records, manual=True, **security)
    assert_contiguous_offsets([(r["partition"], r["offset"]) for r in produced])
    assert by_position(consume(franz, through, topic, len(records), **security)) == by_position(produced)
    wait_for_login_logged(b, logged_from, certs, listener, mechanism)


def test_mutual_tls_without_a_client_certificate_is_refused(franz, secured, certs):
    (refused,) = admin(franz, secure_addr(secured, "MTLS"), {"op": "metadata", "topic": unique_topic("franz-mtls")},
                       **franz_security(certs, "MTLS", client_cert=False))
    assert "certificate required" in refused[0], refused


@pytest.mark.parametrize("listener,mechanism", SASL_CASES)
def test_wrong_password_is_an_authentication_error(franz, secured_with_scram_user, certs, listener, mechanism):
    (refused,) = admin(franz, secure_addr(secured_with_scram_user, listener),
                       {"op": "metadata", "topic": unique_topic("franz-sasl")},
                       **franz_security(certs, listener, mechanism, password="not-the-password"))
    assert refused[0] == "SASL_AUTHENTICATION_FAILED", refused


def test_sasl_oauthbearer_signed_and_unsecured_tokens(franz, signed_broker, oauth_broker, idp):
    """SASL/OAUTHBEARER with kgo's oauth.Auth: kgo produces and reads back as the subject of a
    signed (RS256) token of the test's identity provider; a token signed by a key not in the key
    set, and an unsecured one, are refused with SASL_AUTHENTICATION_FAILED (kgo answers RFC 7628's
    error challenge) and the broker logs why. Against the broker taking unsecured tokens, an
    unsecured one with the scope "kafka" logs in."""
    def oauth(token):
        return {"sasl": {"mechanism": "OAUTHBEARER", "token": token}}

    for b, subject, token in ((signed_broker, "franz-signed", idp.token("franz-signed")),
                              (oauth_broker, "franz-unsecured", unsecured_token("franz-unsecured"))):
        topic = unique_topic("franz-oauth")
        create_topic(franz, b.bootstrap, topic, 2)
        records = [{"partition": i % 2, "value": f"{subject} {i}"} for i in range(10)]
        produced = produce(franz, b.sasl_bootstrap, topic, records, manual=True, **oauth(token))
        assert by_position(consume(franz, b.sasl_bootstrap, topic, len(records), **oauth(token))) == by_position(produced)
        assert f"authenticated as User:{subject}" in log_since(b, 0)

    for reason, token in refused_tokens(idp, "franz").items():
        logged_from = os.path.getsize(signed_broker.log_path)
        (outcome,) = admin(franz, signed_broker.sasl_bootstrap, {"op": "metadata", "topic": unique_topic("franz-oauth")},
                           **oauth(token))
        assert outcome[0] == "SASL_AUTHENTICATION_FAILED", outcome
        log = log_since(signed_broker, logged_from)
        assert reason in log and "authenticated as" not in log, log


def test_kadm_acls_deny_a_produce_until_deleted(franz, authorizing_broker):
    """kadm creates a DENY of WRITE for User:ANONYMOUS (every client of a listener without
    authentication) on one topic, lists it and deletes it; meanwhile kgo's produce to that
    topic is refused and to another topic is not."""
    b = authorizing_broker.bootstrap
    secret, public = unique_topic("franz-secret"), unique_topic("franz-public")
    create_topic(franz, b, secret, 1)
    create_topic(franz, b, public, 1)
    deny = {"topic": secret, "principal": "User:ANONYMOUS", "permission": "DENY", "operation": "WRITE"}
    created, described = admin(franz, b, {"op": "createACLs", **deny}, {"op": "describeACLs", "topic": secret})
    ok(created)
    acl = {"principal": "User:ANONYMOUS", "host": "*", "topic": secret, "pattern": "LITERAL", "operation": "WRITE",
           "permission": "DENY"}
    assert ok(described) == [acl]

    def produce_one(topic):
        events = run(franz, "produce", {"bootstrap": b, "topic": topic, "records": [{"value": "v"}]})
        (produced,) = [e for e in events if e["event"] == "produced"]
        return produced["error"]

    assert produce_one(secret) == "TOPIC_AUTHORIZATION_FAILED"
    assert produce_one(public) == ""
    deleted, described = admin(franz, b, {"op": "deleteACLs", "topic": secret}, {"op": "describeACLs", "topic": secret})
    assert ok(deleted) == 1
    assert ok(described) == []
    assert produce_one(secret) == ""
