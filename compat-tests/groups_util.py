"""Helpers shared by the consumer-group suites (test_groups_kafka_python.py and
test_groups_confluent.py).

The group tests drive several consumers of one group from one test. Each
client module wraps its consumer in a small adapter with the interface of
``Member`` below (``name``, ``poll(timeout_s) -> [Rec]``, ``assignment() ->
{(topic, partition)}``); the generic flows here (keep all members polling until
a condition holds, with a deadline; wait for the group to settle; drain a batch
and prove every record arrived exactly once, on the member that owns its
partition) are then written once for both clients.

Run as a script, this module is also a kafka-python group member for the
"killed member" test: ``python groups_util.py kp-member '<json config>'`` joins
the group, consumes, commits after every poll that returned records and reports
JSON lines on stdout until it is SIGKILLed (or its ``max_seconds`` run out: it
never outlives a crashed test run for long).
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict, namedtuple

from conftest import CLIENT_TIMEOUT_S, unique_topic

# Upper bound for a group to (re)settle after a membership change. Joins are
# fast with --group-initial-rebalance-delay-ms 0; eager rebalances wait for
# every member's next heartbeat (1 s in these tests) and poll.
SETTLE_TIMEOUT_S = 25.0
# Heartbeat / session settings used by all group tests (broker minimum: 6000 ms).
SESSION_TIMEOUT_MS = 6000
HEARTBEAT_INTERVAL_MS = 1000
# Rebalance timeout (max.poll.interval.ms): how long the coordinator waits for
# the members to rejoin. Every test polls each member at least every second.
REBALANCE_TIMEOUT_MS = 20000
# After the last expected record arrived, keep polling this long to catch
# duplicates that would arrive late.
DUPLICATE_GRACE_S = 1.0

# One consumed record, client-neutral. ``value`` is bytes.
Rec = namedtuple("Rec", "topic partition offset value")


def unique_group(prefix: str = "group") -> str:
    return unique_topic(prefix)


def all_partitions(topic: str, count: int) -> set:
    return {(topic, p) for p in range(count)}


def batch(tag: str, count: int, partitions: int):
    """``count`` distinct values for a topic of ``partitions`` partitions.

    Returns [(partition, value_bytes)], record i going to partition i % partitions,
    so every partition gets records and the expected placement is known.
    """
    return [(i % partitions, f"{tag}:{i:04d}".encode()) for i in range(count)]


class Member:
    """The adapter interface the flows below rely on; subclasses wrap a consumer."""

    def __init__(self, name: str, consumer):
        self.name = name
        self.consumer = consumer
        self.closed = False

    def poll(self, timeout_s: float) -> list:  # -> [Rec]
        raise NotImplementedError

    def assignment(self) -> set:  # -> {(topic, partition)}
        raise NotImplementedError

    def close(self, **kwargs):
        """Idempotent; ``kwargs`` go to the consumer's close() (the ``closing``
        fixture's ``timeout`` is dropped)."""
        kwargs.pop("timeout", None)
        if not self.closed:
            self.closed = True
            self.consumer.close(**kwargs)


class KpMember(Member):
    """groups_util adapter around a subscribed KafkaConsumer."""

    def poll(self, timeout_s):
        got = self.consumer.poll(timeout_ms=int(timeout_s * 1000))
        return [Rec(r.topic, r.partition, r.offset, r.value)
                for _tp, recs in sorted(got.items()) for r in recs]

    def assignment(self):
        return {(tp.topic, tp.partition) for tp in self.consumer.assignment()}

    def stable_generation(self):
        from kafka.structs import MemberState

        meta = self.consumer.group_metadata()
        return meta.generation_id if meta.state is MemberState.STABLE else None


def same_generation(members) -> bool:
    """Every member is stable in one and the same generation (members that
    expose ``stable_generation()``: the kafka-python adapters)."""
    gens = [m.stable_generation() for m in members]
    return None not in gens and len(set(gens)) == 1


def describe_state(members, received=None) -> str:
    parts = []
    for m in members:
        try:
            assigned = sorted(m.assignment())
        except Exception as e:  # the message is for a failure report: never raise here
            assigned = f"<assignment() raised {e!r}>"
        count = len(received.get(m.name, [])) if received is not None else "-"
        errors = getattr(m, "errors", None)  # client errors a member collected, if any
        parts.append(f"{m.name}: assigned={assigned} received={count}"
                     + (f" errors={errors[-3:]}" if errors else ""))
    return "; ".join(parts)


def poll_members(members, until, timeout: float = SETTLE_TIMEOUT_S, what: str = "condition",
                 received=None, poll_s: float = 0.2):
    """Keep every member polling until ``until()`` is true; return ``received``.

    ``received`` ({member name: [Rec]}) accumulates every record polled, so
    callers can check nothing unexpected arrived meanwhile.

    Each member polls in a loop on a thread of its own while this thread checks
    ``until()`` (and re-raises anything a poll raised); the threads are stopped
    and joined before returning, so callers use the consumers alone again.
    Members must keep polling all the time: kafka-python finishes a
    JoinGroup/SyncGroup on its IO thread, and if that happens while nobody is
    inside poll() it drops the result (a leader then rejoins, i.e. rebalances
    again; after a metadata-triggered rejoin it may even stop heartbeating).
    """
    received = received if received is not None else defaultdict(list)
    lock = threading.Lock()
    stop = threading.Event()
    failures = []

    def keep_polling(member):
        try:
            while not stop.is_set():
                records = member.poll(poll_s)
                if records:
                    with lock:
                        received[member.name].extend(records)
        except BaseException as e:  # handed to the checking thread
            failures.append(e)
            stop.set()

    threads = [threading.Thread(target=keep_polling, args=(m,), name=f"poll-{m.name}", daemon=True)
               for m in members]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    try:
        while True:
            if failures:
                raise failures[0]
            with lock:
                if until():
                    return received
            if time.monotonic() >= deadline:
                with lock:
                    state = describe_state(members, received)
                raise AssertionError(f"timed out after {timeout}s waiting for {what}; {state}")
            time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=CLIENT_TIMEOUT_S)
        stuck = [t.name for t in threads if t.is_alive()]
        if stuck:
            raise AssertionError(f"poll() did not return within {CLIENT_TIMEOUT_S}s: {stuck}")


def split_problem(assignments: dict, expected_tps: set, idle: int | None = 0):
    """Why ``assignments`` ({name: set of (topic, partition)}) is not a clean split
    of ``expected_tps`` among the members, or None if it is.

    A clean split: pairwise disjoint, covering exactly ``expected_tps``, and
    (unless ``idle`` is None) exactly ``idle`` members without partitions.
    """
    seen = Counter(tp for tps in assignments.values() for tp in tps)
    doubled = sorted(tp for tp, n in seen.items() if n > 1)
    if doubled:
        return f"partitions assigned twice: {doubled}"
    if set(seen) != set(expected_tps):
        return (f"assigned {sorted(seen)} != expected {sorted(expected_tps)}")
    empty = [name for name, tps in assignments.items() if not tps]
    if idle is not None and len(empty) != idle:
        return f"{len(empty)} members without partitions ({empty}), expected {idle}"
    return None


def settle(members, expected_tps, idle: int | None = 0, group_ready=lambda: True,
           timeout: float = SETTLE_TIMEOUT_S, received=None):
    """Poll until the members' assignments are a clean split of ``expected_tps``
    and ``group_ready()`` (a client-specific "everyone is in the same
    generation" check) holds. Returns ({name: assignment}, received)."""
    last = {}

    def ready():
        last["assignments"] = {m.name: set(m.assignment()) for m in members}
        last["problem"] = split_problem(last["assignments"], expected_tps, idle)
        return last["problem"] is None and group_ready()

    try:
        received = poll_members(members, ready, timeout, "the group to settle", received)
    except AssertionError as e:
        raise AssertionError(f"{e}; last split problem: {last.get('problem')}") from None
    return last["assignments"], received


def values_of(received) -> list:
    return [r.value for recs in received.values() for r in recs]


def assert_exactly_once(received, expected, assignments=None, forbidden=()):
    """``received``: {member: [Rec]}; ``expected``: {value: (topic, partition)}.

    Every expected value arrived exactly once, nothing else arrived (in
    particular nothing from ``forbidden``, records an earlier phase already
    consumed and committed), and, when ``assignments`` is given, each record
    arrived at the member that owns its partition.
    """
    counts = Counter(values_of(received))
    dupes = sorted(v for v, n in counts.items() if n > 1)
    assert not dupes, f"{len(dupes)} records delivered more than once: {dupes[:10]}"
    redelivered = sorted(set(counts) & set(forbidden))
    assert not redelivered, (
        f"{len(redelivered)} already-committed records delivered again: {redelivered[:10]}")
    missing = sorted(set(expected) - set(counts))
    assert not missing, f"{len(missing)} of {len(expected)} records never arrived: {missing[:10]}"
    extra = sorted(set(counts) - set(expected))
    assert not extra, f"unexpected records: {extra[:10]}"
    for name, recs in received.items():
        for r in recs:
            assert (r.topic, r.partition) == expected[r.value], (
                f"{r.value!r} read from {r.topic}/{r.partition}, produced to {expected[r.value]}")
            if assignments is not None:
                assert (r.topic, r.partition) in assignments[name], (
                    f"{name} received {r.value!r} from {r.topic}/{r.partition}, "
                    f"which is not in its assignment {sorted(assignments[name])}")


def drain(members, expected, assignments=None, forbidden=(), timeout: float = CLIENT_TIMEOUT_S,
          received=None):
    """Poll all members until every ``expected`` value arrived (plus a short grace
    period for late duplicates), then ``assert_exactly_once``. Returns received."""
    received = received if received is not None else defaultdict(list)
    want = set(expected)
    poll_members(members, lambda: want <= set(values_of(received)), timeout,
                 f"{len(want)} records", received)
    grace_end = time.monotonic() + DUPLICATE_GRACE_S
    poll_members(members, lambda: time.monotonic() >= grace_end, DUPLICATE_GRACE_S + timeout,
                 "the duplicate grace period", received, poll_s=0.1)
    assert_exactly_once(received, expected, assignments, forbidden)
    return received


def owners(received) -> dict:
    """{member: set of (topic, partition) it received records from}."""
    return {name: {(r.topic, r.partition) for r in recs} for name, recs in received.items()}


def next_offsets(received) -> dict:
    """{(topic, partition): last received offset + 1} over all members."""
    out = {}
    for recs in received.values():
        for r in recs:
            out[(r.topic, r.partition)] = max(out.get((r.topic, r.partition), 0), r.offset + 1)
    return out


# --------------------------------------------------------------------------
# A kafka-python member in a child process (for the SIGKILL test)
# --------------------------------------------------------------------------


class SubprocessMember(Member):
    """Parent side of ``python groups_util.py kp-member``: a Member whose
    poll() returns what the child consumed (it commits them before reporting)."""

    def __init__(self, name: str, **config):
        super().__init__(name, consumer=None)
        config.setdefault("max_seconds", 90)
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "kp-member", json.dumps(config)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            cwd=os.path.dirname(os.path.abspath(__file__)), text=True)
        self.events: queue.Queue = queue.Queue()
        self.stderr_lines: list = []
        self._assigned: set = set()
        self._generation = None
        self.committed: dict = {}
        for reader in (self._read_stdout, self._read_stderr):
            threading.Thread(target=reader, daemon=True).start()

    def _read_stdout(self):
        for line in self.proc.stdout:
            try:
                self.events.put(json.loads(line))
            except ValueError:
                self.stderr_lines.append(f"[stdout] {line.rstrip()}")

    def _read_stderr(self):
        for line in self.proc.stderr:
            self.stderr_lines.append(line.rstrip())

    def poll(self, timeout_s: float) -> list:
        records = []
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                ev = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if ev["event"] == "assigned":
                self._assigned = {tuple(tp) for tp in ev["partitions"]}
                self._generation = ev["generation"]
            elif ev["event"] == "consumed":
                records.extend(Rec(t, p, o, v.encode()) for t, p, o, v in ev["records"])
                for t, p, o in ev["committed"]:
                    self.committed[(t, p)] = o
            elif ev["event"] == "error":
                raise AssertionError(f"{self.name} (child process) failed: {ev['error']}\n"
                                     + "\n".join(self.stderr_lines[-30:]))
            if records:  # return promptly once something arrived
                break
        return records

    def assignment(self) -> set:
        return set(self._assigned) if self.proc.poll() is None else set()

    def stable_generation(self):
        """The generation of the child's last stable assignment (None when dead)."""
        return self._generation if self.proc.poll() is None else None

    def kill9(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def close(self, **_kwargs):
        self.cleanup()

    def cleanup(self):
        try:
            self.kill9()
        finally:
            for stream in (self.proc.stdout, self.proc.stderr):
                try:
                    stream.close()
                except OSError:
                    pass


def _kp_member_main(config: dict):
    """Child process body: a kafka-python group member that reports JSON lines."""
    from kafka import KafkaConsumer
    from kafka.structs import MemberState

    def emit(**event):
        sys.stdout.write(json.dumps(event) + "\n")
        sys.stdout.flush()

    consumer = KafkaConsumer(
        config["topic"],
        bootstrap_servers=config["bootstrap"],
        group_id=config["group"],
        client_id=config.get("client_id", "kp-member"),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=config.get("session_timeout_ms", SESSION_TIMEOUT_MS),
        heartbeat_interval_ms=config.get("heartbeat_interval_ms", HEARTBEAT_INTERVAL_MS),
        max_poll_interval_ms=REBALANCE_TIMEOUT_MS,
        request_timeout_ms=int(CLIENT_TIMEOUT_S * 1000),
        fetch_max_wait_ms=100,
    )
    last = None
    end = time.monotonic() + config["max_seconds"]
    try:
        while time.monotonic() < end:
            batch_ = consumer.poll(timeout_ms=200)
            records = [r for _tp, recs in sorted(batch_.items()) for r in recs]
            if records:
                consumer.commit()  # synchronous: reported records are committed
                positions = next_offsets({"": [Rec(r.topic, r.partition, r.offset, r.value)
                                               for r in records]})
                emit(event="consumed",
                     records=[[r.topic, r.partition, r.offset, r.value.decode()] for r in records],
                     committed=[[t, p, o] for (t, p), o in sorted(positions.items())])
            meta = consumer.group_metadata()
            current = sorted([tp.topic, tp.partition] for tp in consumer.assignment())
            if meta.state is MemberState.STABLE and (current, meta.generation_id) != last:
                last = (current, meta.generation_id)
                emit(event="assigned", partitions=current, generation=meta.generation_id)
    except Exception as e:  # report, then exit non-zero
        emit(event="error", error=repr(e))
        raise
    finally:
        consumer.close(autocommit=False)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "kp-member":
        sys.exit("usage: groups_util.py kp-member '<json config>'")
    _kp_member_main(json.loads(sys.argv[2]))
