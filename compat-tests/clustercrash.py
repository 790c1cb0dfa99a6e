#!/usr/bin/env python3
"""Crash safety of a cluster: the leader of the busiest partition SIGKILLed under acks=all load
and restarted, again and again, and nothing acknowledged lost or duplicated.

Entry points: ``scripts/crashtest --cluster [--kills N] [--seed S] ...`` (the long form, 20
kills) and ``compat-tests/test_cluster_crash.py`` (pytest, 3 kills). Both call ``run()``.

What runs, each in its own process:

* three nodes, each broker and controller voter, as ``scripts/cluster 3`` starts them, with
  broker.session.timeout.ms=2000 and broker.heartbeat.interval.ms=200;
* a topic of 6 partitions, replication factor 3, min.insync.replicas=2; partitions 0 and 1 get
  three times the writes of each other one;
* idempotent acks=all producers at full speed (only a window of 400 unacknowledged records
  each holds them back): two confluent-kafka ones (librdkafka; one lz4), crashtest.py's
  workers, and a Java kafka-clients 4.1 one (``java/CrashProducer.java``, zstd, compiled with
  javac at the start) that prints the same lines;
* a group of two confluent-kafka consumers that commit after every poll (crashtest.py's).

Then, --kills times: once every partition (of the topic and of __consumer_offsets) has its
three replicas in sync, the node leading the partition with the most acknowledged records is
SIGKILLed; the orchestrator waits for every survivor's Metadata to name new leaders of the
partitions it led and for an acknowledgement from each, restarts the node, waits until it is
back in every ISR and until the group has consumed and committed since the kill, fetches the
group's committed offsets, and lets the load run for --min-interval .. --max-interval seconds.

At the end the producers flush, every partition is read back from offset 0 and crashtest.py's
checks run (``LoadRun``): every acknowledged record at the offset its acknowledgement named,
exactly once and in order per producer (all are idempotent), offsets contiguous from 0, every
range a consumer saw unchanged, each committed-offset fetch at least every commit acknowledged
before it and at least the fetch before it. The run also fails when a failover or a rejoin does
not finish within its bound, the group makes no progress after a kill, a node dies by itself
or panics, or a client reports a fatal error or a failed delivery. Exit status: 0 passed, 1 a
check failed (the report says which record, partition and kill), 2 missing prerequisites.

Failover time of a kill: the longest pause between two acknowledgements (of any producer) of
the busiest partition, from the last one before the kill to the first one after the new leader
was named (the old leader's last answers can arrive just after the kill), as scripts/bench
measures it; reported per kill and as p50/p99/max, next to when Metadata named the new leader,
how long the node took to rejoin every ISR, and whether it was also the active controller (its
partitions then move only after a new controller is elected and the session times out).
"""

from __future__ import annotations

import argparse
import bisect
import collections
import math
import os
import random
import re
import socket
import statistics
import struct
import subprocess
import sys
import time
import uuid

from conftest import free_port, gregor_binary, recv_exactly
from crashtest import STARTUP_TIMEOUT_S, Broker, LoadRun, Report, Worker, exit_status, now, worker_command
from java_build import JAVA, JAVAC, JavaSetupError, compile_programs, kafka_client_jars

NODES = 3
NODE_SETTINGS = ["--broker-session-timeout-ms", "2000", "--broker-heartbeat-interval-ms", "200"]
PARTITIONS = 6
WEIGHTS = [3, 3] + [1] * (PARTITIONS - 2)  # partitions 0 and 1 are the busy ones
MIN_INSYNC_REPLICAS = 2
# Producers: name -> (library, compression).
PRODUCERS = {"ck-idem": ("confluent-kafka", None), "ck-idem-lz4": ("confluent-kafka", "lz4"),
             "java-idem": ("java", "zstd")}
MEMBERS = ("ck-member-1", "ck-member-2")  # one group, confluent-kafka
JVM_FLAGS = ["-Xmx256m", "-XX:+UseSerialGC"]

# Bounds of the waits of one kill cycle, in seconds.
LEADER_TIMEOUT_S = 30.0  # Metadata names new leaders
ACKS_TIMEOUT_S = 30.0  # acknowledgements from them
ISR_TIMEOUT_S = 60.0  # the restarted node back in every ISR
GROUP_TIMEOUT_S = 30.0  # the group consumed and committed since the kill


def metadata(port):
    """One node's Metadata v1 of every topic: (sorted broker ids, controller id, {(topic,
    partition): (leader, sorted replicas, sorted ISR)}), or None when the node does not answer."""
    client = b"clustercrash"
    request = struct.pack(">hhih", 3, 1, 1, len(client)) + client + struct.pack(">i", -1)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(struct.pack(">i", len(request)) + request)
            buf = recv_exactly(sock, struct.unpack(">i", recv_exactly(sock, 4))[0])
    except OSError:
        return None
    pos = 4  # after the correlation id

    def take(fmt):
        nonlocal pos
        (v,) = struct.unpack_from(fmt, buf, pos)
        pos += struct.calcsize(fmt)
        return v

    def string():
        nonlocal pos
        n = max(take(">h"), 0)
        pos += n
        return buf[pos - n:pos].decode()

    def ids():
        return sorted(take(">i") for _ in range(take(">i")))

    brokers = []
    for _ in range(take(">i")):  # id, host, port, rack
        brokers.append(take(">i"))
        string(), take(">i"), string()
    controller = take(">i")
    view = {}
    for _ in range(take(">i")):
        take(">h")
        topic = string()
        take(">b")
        for _ in range(take(">i")):
            take(">h")
            partition, leader = take(">i"), take(">i")
            view[(topic, partition)] = (leader, ids(), ids())
    return sorted(brokers), controller, view


class Stuck(Exception):
    """A wait of the kill loop ran out: the cluster did not recover (a failure)."""


class Options:
    def __init__(self, kills=20, seed=None, min_interval=1.0, max_interval=3.0, time_limit_s=None,
                 keep_data=False, quiet=False):
        self.kills = kills
        self.seed = seed if seed is not None else random.randrange(1 << 31)
        self.min_interval = min_interval
        self.max_interval = max_interval
        self.time_limit_s = time_limit_s if time_limit_s is not None else 120 + 20 * kills
        self.keep_data = keep_data
        self.quiet = quiet


class Cluster:
    """Three broker,controller nodes as scripts/cluster starts them: one formatted cluster id,
    voters 1..3, each node its own process with its own client and controller port on
    127.0.0.1 and its own data directory, so that one can be killed and restarted."""

    def __init__(self, binary, base_dir, extra_args=()):
        port = free_port(NODES)
        controller_port = port
        while abs(controller_port - port) < NODES:
            controller_port = free_port(NODES)
        voters = ",".join(f"{k}@127.0.0.1:{controller_port + k - 1}" for k in range(1, NODES + 1))
        self.nodes = {k: Broker(binary, os.path.join(base_dir, f"node-{k}"), os.path.join(base_dir, f"node-{k}.log"),
                                port + k - 1, ["--node-id", str(k), "--process-roles", "broker,controller",
                                               "--controller-quorum-voters", voters, *NODE_SETTINGS, *extra_args],
                                controller_port=controller_port + k - 1)
                      for k in range(1, NODES + 1)}
        self.binary = binary
        self.bootstrap = ",".join(n.bootstrap for n in self.nodes.values())

    def start(self):
        cluster_id = subprocess.run([self.binary, "random-uuid"], capture_output=True, text=True, check=True,
                                    timeout=30).stdout.strip()
        for n in self.nodes.values():
            n.format(cluster_id)
        # Spawned together: a node registers only once a quorum of voters runs.
        started = {k: n.spawn() for k, n in self.nodes.items()}
        for k, n in self.nodes.items():
            n.wait_ready(started[k])
        everyone = sorted(self.nodes)
        t_end = now() + STARTUP_TIMEOUT_S
        while not all((metadata(n.port) or [None])[0] == everyone for n in self.nodes.values()):
            if now() > t_end:
                raise RuntimeError(f"the nodes' Metadata did not list brokers {everyone} within {STARTUP_TIMEOUT_S}s")
            time.sleep(0.05)

    def dead(self):
        """Nodes that are not running."""
        return [k for k, n in self.nodes.items() if not n.running()]

    def kill9_all(self):
        for n in self.nodes.values():
            n.kill9()


class Failover:
    """One kill: what was killed and when each step of the recovery was seen (monotonic s)."""

    def __init__(self, number, node, was_controller, busiest, led, t_kill):
        self.number = number
        self.node = node
        self.was_controller = was_controller
        self.busiest = busiest  # the partition with the most records
        self.led = led  # the partitions the node led
        self.t_kill = t_kill
        self.t_leaders = None  # Metadata named new leaders of all of them
        self.t_acks = None  # each of them acknowledged a write since
        self.startup = None  # (accept s, Metadata answer s) of the restart
        self.t_isr = None  # the node back in every ISR
        self.t_group = None  # the group consumed and committed since the kill
        self.pause = None  # (last ack before, first ack after) on the busiest partition
        self.slowest = None  # the longest such pause over the partitions the node led


class ClusterCrashTest(LoadRun):
    def __init__(self, opts: Options, binary: str):
        super().__init__(opts, binary, "gregor-clustercrash-")
        self.cluster = Cluster(self.binary, self.base_dir)
        self.bootstrap = self.cluster.bootstrap
        tag = uuid.UUID(int=self.rng.getrandbits(128)).hex[:6]
        self.topics = [(f"clustercrash-{tag}", PARTITIONS)]
        self.checked = [0]
        self.groups = {w: f"clustercrash-group-{tag}" for w in MEMBERS}
        self.failovers = []

    # -- setup --------------------------------------------------------------

    def java_command(self):
        """Compiles CrashProducer; returns the command that runs it."""
        classes = os.path.join(self.base_dir, "java-classes")
        tmp = os.path.join(self.base_dir, "java-tmp")  # java.io.tmpdir: where zstd's native library unpacks
        os.makedirs(classes)
        os.makedirs(tmp)
        jars = kafka_client_jars()
        compile_programs(classes, jars, ["CrashProducer.java", "Json.java"])
        compression = PRODUCERS["java-idem"][1]
        return [JAVA, *JVM_FLAGS, f"-Djava.io.tmpdir={tmp}", "-cp", os.pathsep.join([classes, *jars]),
                "CrashProducer", "--bootstrap", self.bootstrap, "--topic", self.topics[0][0], "--topic-index", "0",
                "--name", "java-idem", "--seed", str(self.o.seed * 31 + len(PRODUCERS)),
                "--weights", ",".join(map(str, WEIGHTS)), "--compression", compression,
                "--max-runtime-ms", str(int((self.o.time_limit_s + 30) * 1000))]

    def create_topic(self):
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({"bootstrap.servers": self.bootstrap, "socket.timeout.ms": 5000, "log_level": 0})
        name, n = self.topics[0]
        config = {"min.insync.replicas": str(MIN_INSYNC_REPLICAS)}
        admin.create_topics([NewTopic(name, num_partitions=n, replication_factor=NODES, config=config)],
                            request_timeout=15)[name].result(timeout=20)

    def start_workers(self, java):
        common = {"bootstrap": self.bootstrap, "topics": self.topics, "max_seconds": self.o.time_limit_s + 30}
        for i, (name, (lib, compression)) in enumerate(sorted(PRODUCERS.items())):
            if lib == "java":
                command = java
            else:
                command = worker_command(dict(
                    common, kind="producer", name=name, lib=lib, idempotent=True, compression=compression,
                    keyed=False, writes=[0], burst=20, pause_s=None, weights=[WEIGHTS], seed=self.o.seed * 31 + i))
            self.workers[name] = Worker(name, command, self.base_dir, self.state.sink)
        for name in MEMBERS:
            cfg = dict(common, kind="committer", name=name, lib="confluent-kafka", group=self.groups[name])
            self.workers[name] = Worker(name, worker_command(cfg), self.base_dir, self.state.sink)

    # -- what the cluster says ----------------------------------------------

    def in_sync(self):
        """(controller, view) when every node's Metadata says the same and shows every broker,
        and every partition of the test topic and of __consumer_offsets led, with all its
        replicas in the ISR; else None. Agreement rules out a restarted node's image that is not
        caught up."""
        views = [metadata(n.port) for n in self.cluster.nodes.values()]
        if any(v is None for v in views) or any(v != views[0] for v in views):
            return None
        brokers, controller, view = views[0]
        if brokers != sorted(self.cluster.nodes):
            return None
        ours = {k: v for k, v in view.items() if k[0] in (self.topics[0][0], "__consumer_offsets")}
        if sum(1 for t, _ in ours if t == self.topics[0][0]) != PARTITIONS or controller not in self.cluster.nodes:
            return None
        return (controller, ours) if all(leader >= 0 and isr == replicas for leader, replicas, isr in ours.values()) else None

    def busiest_partition(self):
        """The test topic's partition with the most acknowledged records."""
        with self.state.lock:
            return max(range(PARTITIONS), key=lambda p: self.state.partition_acks.get((0, p), [0])[0])

    def wait(self, what, check, timeout, failover=None):
        """``check()`` until it returns something true; raises Stuck after ``timeout`` s, or
        once a node is down that should run (all but ``failover``'s until its restart)."""
        t_end = now() + timeout
        while True:
            got = check()
            if got:
                return got
            dead = self.cluster.dead()
            if failover is not None:
                dead = [k for k in dead if k != failover.node or failover.startup is not None]
            if dead:
                raise Stuck(f"node {dead} exited by itself (code "
                            f"{self.cluster.nodes[dead[0]].proc.returncode}) while waiting for {what}")
            if now() > t_end:
                raise Stuck(f"{what}: not within {timeout:.0f}s")
            time.sleep(0.05)

    def acked_since(self, partitions, t):
        with self.state.lock:
            return all(self.state.partition_acks.get((0, p), [0, 0])[1] > t for p in partitions)

    def group_progress_since(self, t):
        """Has the group consumed a record and had a commit acknowledged since t?"""
        with self.state.lock:
            consumed = any(r[7] > t for r in reversed(self.state.ranges[-50:]))
            committed = any(c and c[-1][4] > t for c in self.state.commits.values())
        return consumed and committed

    # -- the kill loop ------------------------------------------------------

    def kill_cycle(self, number):
        name = self.topics[0][0]
        busiest = self.busiest_partition()
        controller, view = self.wait(f"kill {number}: every partition with its {NODES} replicas in sync",
                                     self.in_sync, ISR_TIMEOUT_S)
        node = view[(name, busiest)][0]
        led = sorted(p for (t, p), (leader, _, _) in view.items() if t == name and leader == node)
        failover = Failover(number, node, controller == node, busiest, led, now())
        self.failovers.append(failover)
        self.cluster.nodes[node].kill9()
        self.kills.append(failover.t_kill)
        self.stops.append(failover.t_kill)

        def new_leaders():
            """Every survivor's Metadata names another leader for each partition the node led."""
            views = [metadata(n.port) for k, n in self.cluster.nodes.items() if k != node]
            return all(v and all(v[2].get((name, p), (-1,))[0] not in (-1, node) for p in led) for v in views)

        t_kill = failover.t_kill
        failover.t_leaders = self.wait(f"kill {number} (node {node}): new leaders of partitions {led}",
                                       lambda: new_leaders() and now(), LEADER_TIMEOUT_S, failover)
        failover.t_acks = self.wait(f"kill {number} (node {node}): acknowledgements from the new leaders of {led}",
                                    lambda: self.acked_since(led, failover.t_leaders) and now(), ACKS_TIMEOUT_S, failover)
        failover.startup = self.cluster.nodes[node].start()
        self.restarts.append(now())
        failover.t_isr = self.wait(f"kill {number}: node {node} back in every ISR",
                                   lambda: self.in_sync() and now(), ISR_TIMEOUT_S, failover)
        try:
            failover.t_group = self.wait(f"kill {number}: the group consuming and committing",
                                         lambda: self.group_progress_since(t_kill) and now(), GROUP_TIMEOUT_S, failover)
        except Stuck as e:
            self.failures.add("group-stalled", number, f"{e} (consumer errors: {self.member_errors_since(t_kill)})")
        self.fetch_committed()
        self.log(f"kill {number}/{self.o.kills}: node {node}{' (the controller)' if failover.was_controller else ''} "
                 f"led {led}; new leaders {failover.t_leaders - t_kill:.2f}s, acks {failover.t_acks - t_kill:.2f}s, "
                 f"back in every ISR {failover.t_isr - t_kill:.2f}s after the kill; "
                 f"{self.state.ack_count()} records acknowledged")
        time.sleep(self.rng.uniform(self.o.min_interval, self.o.max_interval))

    def member_errors_since(self, t):
        with self.state.lock:
            errors = collections.Counter(e[3] for e in self.state.errors if e[0] in MEMBERS and e[7] > t)
        return ", ".join(f"{k} x{v}" for k, v in errors.most_common(5)) or "none"

    # -- after the run -------------------------------------------------------

    def measure_pauses(self):
        """Each kill's longest pause between acknowledgements, on its busiest partition and on
        the slowest of the partitions its node led."""
        times = collections.defaultdict(list)
        with self.state.lock:
            for acks in self.state.acks.values():
                for ti, p, _off, t in acks.values():
                    times[p].append(t)
        for ts in times.values():
            ts.sort()

        def pause(p, f):
            ts = times[p]
            # From the last ack before the kill to the first one after the new leader was named.
            first = max(bisect.bisect_right(ts, f.t_kill) - 1, 0)
            last = bisect.bisect_right(ts, f.t_leaders)
            around = ts[first:last + 1]
            return max(zip(around, around[1:]), key=lambda ab: ab[1] - ab[0], default=None)

        for f in self.failovers:
            if f.t_acks is None:
                continue
            f.pause = pause(f.busiest, f)
            pauses = [pause(p, f) for p in f.led]
            f.slowest = max((x for x in pauses if x), key=lambda ab: ab[1] - ab[0], default=None)

    def scan_node_logs(self):
        """Panics fail the run; returns {node: ERROR/WARN lines}."""
        return {k: self.scan_log(n.log_path, f"node {k}") for k, n in self.cluster.nodes.items()}

    def java_log_lines(self):
        """The Java producer's WARN/ERROR log lines (client retries are WARN)."""
        java = self.workers.get("java-idem")
        if java is None:
            return []
        try:
            with open(java.stderr_path, errors="replace") as fh:
                return [line.strip() for line in fh if re.search(r" (WARN|ERROR) ", line)]
        except OSError:
            return []

    # -- the run -------------------------------------------------------------

    def run(self):
        self.log(f"seed {self.o.seed}, {self.o.kills} kills, broker {self.binary_source[0]} "
                 f"(built {self.binary_source[1]}) on {self.bootstrap}, data in {self.base_dir}")
        error = None
        try:
            java = self.java_command()
            self.cluster.start()
            self.create_topic()
            self.start_workers(java)
            self.wait_for_traffic(PRODUCERS)
            self.log("producers and the group running; killing leaders")
            for number in range(1, self.o.kills + 1):
                self.check_time(f"kill {number}")
                self.kill_cycle(number)
            self.stop_workers()
            self.fetch_committed()
            self.check_time("final check")
            self.verify("the end (producers flushed)")
            for k in self.cluster.dead():
                self.failures.add("node-exited", k, f"node {k} exited by itself (code "
                                                    f"{self.cluster.nodes[k].proc.returncode})")
        except Stuck as e:
            error = e
            self.failures.add("stuck", str(e), f"{e} (kill at t={self.kills[-1] - self.t_begin:.3f}s)")
        except Exception as e:
            error = self.aborted(e)
        finally:
            self.end_workers()
            self.cluster.kill9_all()
        self.classify_errors()
        self.measure_pauses()
        self.node_notable = self.scan_node_logs()
        return self.report(ClusterReport, error)


def percentile(xs, q):
    """Nearest rank."""
    xs = sorted(xs)
    return xs[max(0, math.ceil(q * len(xs)) - 1)]


class ClusterReport(Report):
    def _table(self):
        t = self.t
        index = (t.last_index or ({},))[0]
        present = collections.Counter(inst for inst, _seq in index)
        wall = now() - t.t_begin
        lines = [f"Gregor cluster crash test: {'PASS' if self.ok else 'FAIL'}  seed={t.o.seed}  "
                 f"kills={len(t.kills)}/{t.o.kills}  nodes={NODES}  partitions={PARTITIONS} (RF={NODES}, "
                 f"min.insync.replicas={MIN_INSYNC_REPLICAS})  wall={wall:.0f}s"]
        rates = self.rates()
        lines.extend(self.producer_rows(present, "records/s acknowledged", lambda inst: rates.get(inst, "-")))
        lines.extend(self.group_lines("after every kill"))
        lines.append(self.log_line())
        lines.extend(self.failover_lines())
        for k, notable in sorted(getattr(t, "node_notable", {}).items()):
            lines.append(f"node {k} log: {len(notable)} ERROR/WARN lines" +
                         (": " + " | ".join(x[:160] for x in notable[:2]) if notable else ""))
        java = t.java_log_lines()
        lines.append(f"Java producer log: {len(java)} WARN/ERROR lines" +
                     (": " + " | ".join(x[:160] for x in java[:2]) if java else ""))
        tails = [(f"node {k} log tail ({n.log_path})", n.log_tail(15)) for k, n in t.cluster.nodes.items()]
        lines.extend(self.closing_lines(tails))
        return "\n".join(lines)

    def rates(self):
        """Per producer instance, acknowledged records per second of its lifetime."""
        t = self.t
        out = {}
        with t.state.lock:
            for inst, acks in t.state.acks.items():
                ts = [a[3] for a in acks.values()]
                if len(ts) > 1:
                    out[inst] = f"{len(ts) / (max(ts) - min(ts)):.0f}"
        return out

    def failover_lines(self):
        t = self.t
        lines = ["kill  node  ctrl  busiest  led        no acks (last ack before -> first after)  "
                 "slowest led  new leader  rejoined ISR  group on"]
        rel = lambda x: f"{x - t.t_begin:.3f}s"  # noqa: E731
        for f in t.failovers:
            pause = (f"{f.pause[1] - f.pause[0]:6.3f}s ({rel(f.pause[0])} -> {rel(f.pause[1])})" if f.pause
                     else "-")
            slowest = f"{f.slowest[1] - f.slowest[0]:.3f}s" if f.slowest else "-"
            since = lambda x: f"{x - f.t_kill:.2f}s" if x else "-"  # noqa: E731
            lines.append(f"{f.number:>4}  {f.node:>4}  {'yes' if f.was_controller else 'no':<4}  {f.busiest:>7}  "
                         f"{','.join(map(str, f.led)):<9}  {pause:<40}  {slowest:>11}  {since(f.t_leaders):>10}  "
                         f"{since(f.t_isr):>12}  {since(f.t_group):>8}")
        pauses = [f.pause[1] - f.pause[0] for f in t.failovers if f.pause]
        if pauses:
            controller = [f.pause[1] - f.pause[0] for f in t.failovers if f.pause and f.was_controller]
            others = [f.pause[1] - f.pause[0] for f in t.failovers if f.pause and not f.was_controller]
            lines.append(f"failover (longest pause between acks of the busiest partition over all producers, "
                         f"n={len(pauses)}): p50 {percentile(pauses, 0.5):.3f}s  p99 {percentile(pauses, 0.99):.3f}s  "
                         f"max {max(pauses):.3f}s; the node was also the active controller in {len(controller)} "
                         f"kills" + (f" (median {statistics.median(controller):.3f}s, others "
                                     f"{statistics.median(others):.3f}s)" if controller and others else ""))
            isr = [f.t_isr - f.t_kill for f in t.failovers if f.t_isr]
            starts = [f.startup[1] * 1000 for f in t.failovers if f.startup]
            lines.append(f"restart: exec -> Metadata answer p50 {statistics.median(starts):.0f} ms; kill -> back in "
                         f"every ISR p50 {statistics.median(isr):.2f}s max {max(isr):.2f}s")
        return lines


def run(opts: Options, binary: str | None = None) -> Report:
    """Raises FileNotFoundError or JavaSetupError when a prerequisite is missing."""
    binary = binary or gregor_binary()
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        raise FileNotFoundError(f"Gregor binary not found or not executable: {binary} "
                                "(build it with scripts/run or scripts/test, or set GREGOR_BIN)")
    if JAVA is None or JAVAC is None:
        raise FileNotFoundError("java and javac are not installed (the Java producer needs a JDK 17+)")
    kafka_client_jars()
    return ClusterCrashTest(opts, binary).run()


def main(argv=None):
    ap = argparse.ArgumentParser(prog="scripts/crashtest --cluster", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=20, help="leader kills (default 20)")
    ap.add_argument("--seed", type=int, default=None, help="random seed (default: random, printed)")
    ap.add_argument("--min-interval", type=float, default=1.0, help="shortest load between a rejoin and the next kill, s")
    ap.add_argument("--max-interval", type=float, default=3.0, help="longest load between a rejoin and the next kill, s")
    ap.add_argument("--time-limit", type=float, default=None, help="bound for the whole run, s (default 120 + 20/kill)")
    ap.add_argument("--keep-data", action="store_true", help="keep the data directories and logs even on success")
    ap.add_argument("-q", "--quiet", action="store_true", help="only the report")
    a = ap.parse_args(argv)
    opts = Options(kills=a.kills, seed=a.seed, min_interval=a.min_interval, max_interval=a.max_interval,
                   time_limit_s=a.time_limit, keep_data=a.keep_data, quiet=a.quiet)
    return exit_status(run, opts, missing=(FileNotFoundError, JavaSetupError))


if __name__ == "__main__":
    sys.exit(main())
