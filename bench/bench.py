#!/usr/bin/env python3
"""Gregor benchmark driver: run it through scripts/bench, which builds the tools it needs.

All load comes from librdkafka: rdkafka_performance (built from the sources the rdkafka-sys crate
ships) and gregor-benchtool (bench/benchtool.c, same librdkafka) for per-message end-to-end
latency and topic creation. Python only starts and stops brokers, reads /proc, sends the few
raw requests it times or needs (the start-up probe, control-plane round trips, ListOffsets,
AlterConfigs), and writes the table and chart.
"""
import argparse
import base64
import bisect
import copy
import datetime
import hashlib
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "bench", "results")
SECTIONS = ["startup", "produce", "latency", "partitions", "consume", "fsync", "control",
            "listoffsets", "retention", "transactions", "security", "cluster"]
MiB = 1 << 20

# Apache Kafka 4.1 numbers from the issue (static reference values, not measured here).
KAFKA = {
    "cold": (2.1e6, "2.1 M rec/s"),
    "warm": (3.1e6, "3.1 M rec/s (310 MB/s)"),
    "1k": (0.49e6, "0.49 M rec/s (500 MB/s)"),
    "consume": (5.2e6, "5.2 M rec/s (524 MB/s)"),
    "e2e_avg": (0.7, "avg 0.7 ms"),
    "e2e_max": (9.8, "max 9.8 ms"),
    "start_fresh": (3000.0, "~3 s"),
    "start_1g": (12800.0, "12.8 s"),
    "rss_idle": (440.0, "440-630 MB"),
}

# What each mode runs. Counts are fixed so every run does the same work.
MODES = {
    "full": dict(
        fresh_starts=5, restarts=3,  # settle_*: max seconds to wait for RocksDB writes to stop
        headline_count=5_000_000, warm_runs=3,
        count_100=2_000_000, count_1k=500_000,
        fill_bytes=1 << 30, group_bytes=1 << 30,
        e2e_secs=10, e2e_warmup=1, half_secs=5,
        p1000_count=2_000_000, p1000_e2e_secs=5,
        settle_max=15, settle_case=5, group_delay_ms=2000, timeout_scale=1.0,
        control_idle_secs=3, flood_count=3_000_000, listoffsets_queries=50,
        retention_count=500_000,
        cluster_count_100=2_000_000, cluster_count_1k=500_000, failover_kills=10,
        transactions=1000, connects=200,
    ),
    "quick": dict(
        fresh_starts=2, restarts=1,
        headline_count=200_000, warm_runs=1,
        count_100=100_000, count_1k=20_000,
        fill_bytes=32 * MiB, group_bytes=16 * MiB,
        e2e_secs=2, e2e_warmup=0.5, half_secs=1,
        p1000_count=100_000, p1000_e2e_secs=1,
        settle_max=2, settle_case=0, group_delay_ms=1000, timeout_scale=1.0,
        control_idle_secs=1, flood_count=500_000, listoffsets_queries=10,
        retention_count=50_000,
        cluster_count_100=200_000, cluster_count_1k=50_000, failover_kills=3,
        transactions=50, connects=30,
    ),
}

PRODUCE_SETTINGS = ["-X", "linger.ms=5", "-X", "batch.size=1000000"]


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ------------------------------------------------------------------ raw Kafka probe (start-up)

def _request(sock, api_key, version, corr, body):
    client = b"gregor-bench"
    header = struct.pack(">hhih", api_key, version, corr, len(client)) + client
    msg = header + body
    sock.sendall(struct.pack(">i", len(msg)) + msg)
    size = struct.unpack(">i", _read(sock, 4))[0]
    resp = _read(sock, size)
    if struct.unpack(">i", resp[:4])[0] != corr:
        raise RuntimeError("correlation id mismatch")
    return resp


def _read(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def _str(s):
    b = s.encode()
    return struct.pack(">h", len(b)) + b


class _Reader:
    """Reads a non-flexible response after its correlation id."""

    def __init__(self, buf):
        self.buf, self.pos = buf, 4

    def take(self, fmt):
        v = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += struct.calcsize(fmt)
        return v[0]

    def str(self):
        n = self.take(">h")
        self.pos += max(n, 0)
        return self.buf[self.pos - max(n, 0):self.pos].decode() if n >= 0 else None


def list_offsets(sock, topic, partitions, timestamp):
    """ListOffsets v1 for `partitions` of `topic`; returns [(error, timestamp, offset)]."""
    body = struct.pack(">ii", -1, 1) + _str(topic) + struct.pack(">i", len(partitions))
    body += b"".join(struct.pack(">iq", p, timestamp) for p in partitions)
    r = _Reader(_request(sock, 2, 1, 1, body))
    out = []
    for _ in range(r.take(">i")):
        r.str()
        for _ in range(r.take(">i")):
            r.take(">i")
            out.append((r.take(">h"), r.take(">q"), r.take(">q")))
    return out


def metadata(port, topic=None):
    """Metadata v1 from the node at `port`: (sorted broker ids, controller id, {partition:
    (leader, sorted ISR)} of `topic`), or None when the node does not answer."""
    body = struct.pack(">i", -1) if topic is None else struct.pack(">i", 1) + _str(topic)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            r = _Reader(_request(sock, 3, 1, 1, body))
    except OSError:
        return None
    brokers = []
    for _ in range(r.take(">i")):
        brokers.append(r.take(">i"))
        r.str(), r.take(">i"), r.str()
    controller = r.take(">i")
    partitions = {}
    for _ in range(r.take(">i")):
        r.take(">h"), r.str(), r.take(">b")
        for _ in range(r.take(">i")):
            r.take(">h")
            index, leader = r.take(">i"), r.take(">i")
            replicas = r.take(">i")
            r.pos += 4 * replicas
            isr = [r.take(">i") for _ in range(r.take(">i"))]
            partitions[index] = (leader, tuple(sorted(isr)))
    return sorted(brokers), controller, partitions


def batch_max_timestamp(sock, topic, partition, offset):
    """The max timestamp of the batch holding `offset`: Fetch v4 with a 1-byte limit returns
    that one batch (KIP-74), and its header has the timestamp at byte 35."""
    body = struct.pack(">iiiib", -1, 0, 0, 1, 0) + struct.pack(">i", 1) + _str(topic)
    body += struct.pack(">iiqi", 1, partition, offset, 1)
    r = _Reader(_request(sock, 1, 4, 1, body))
    r.take(">i"), r.take(">i"), r.str(), r.take(">i"), r.take(">i")
    error = r.take(">h")
    r.take(">q"), r.take(">q")
    aborted = r.take(">i")
    r.pos += 16 * max(aborted, 0)
    size = r.take(">i")
    if error or size < 43:
        raise CaseError(f"Fetch at offset {offset}: error {error}, {size} bytes")
    return struct.unpack_from(">q", r.buf, r.pos + 35)[0]


def alter_topic_configs(sock, topic, configs):
    """AlterConfigs v0 on one topic (replacing its configs); raises on an error."""
    body = struct.pack(">ib", 1, 2) + _str(topic) + struct.pack(">i", len(configs))
    body += b"".join(_str(k) + _str(v) for k, v in configs.items()) + b"\0"
    r = _Reader(_request(sock, 33, 0, 1, body))
    r.take(">i"), r.take(">i")
    error, message = r.take(">h"), r.str()
    if error:
        raise CaseError(f"AlterConfigs {topic} {configs}: error {error} {message}")


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def join_alone(sock, group, deadline=None):
    """Joins `group` as its only member (JoinGroup and SyncGroup v0); returns the Heartbeat v0
    request body for that member."""
    body = (_str(group) + struct.pack(">i", 30000) + _str("") + _str("consumer")
            + struct.pack(">i", 1) + _str("range") + struct.pack(">i", 0))
    r = _Reader(_request(sock, 11, 0, 1, body))
    error, generation = r.take(">h"), r.take(">i")
    r.str(), r.str()
    member = r.str()
    deadline = deadline or time.monotonic() + 60
    if error in (14, 15, 16) and time.monotonic() < deadline:  # Kafka's coordinator not loaded
        _request(sock, 10, 0, 1, _str(group))  # FindCoordinator creates __consumer_offsets
        time.sleep(0.1)
        return join_alone(sock, group, deadline)
    if error:
        raise CaseError(f"JoinGroup error {error}")
    member_gen = _str(group) + struct.pack(">i", generation) + _str(member)
    r = _Reader(_request(sock, 14, 0, 2, member_gen + struct.pack(">i", 0)))
    if r.take(">h"):
        raise CaseError("SyncGroup failed")
    return member_gen


class RoundTrips(threading.Thread):
    """Times a v0 request whose answer starts with an error code (ApiVersions, Heartbeat) on its
    own connection every `period` s until stopped, leaving out the first `skip` s. `setup`
    prepares the connection and returns the request body."""

    def __init__(self, port, api_key, period, skip, setup=lambda sock: b""):
        super().__init__(daemon=True)
        self.sock = connect(port)
        self.body = setup(self.sock)
        self.api_key, self.period, self.skip = api_key, period, skip
        self.stop_event = threading.Event()
        self.times = []
        self.error = None

    def run(self):
        start = time.perf_counter()
        corr = 100
        try:
            while not self.stop_event.is_set():
                corr += 1
                t0 = time.perf_counter()
                resp = _request(self.sock, self.api_key, 0, corr, self.body)
                t1 = time.perf_counter()
                error = struct.unpack_from(">h", resp, 4)[0]
                if error:
                    raise CaseError(f"api key {self.api_key}: error {error}")
                if t0 - start >= self.skip:
                    self.times.append((t1 - t0) * 1000)
                time.sleep(self.period)
        except Exception as e:  # reported by finish()
            self.error = e

    def finish(self):
        """Stops; returns (p50, p99, count) in ms, nearest rank."""
        self.stop_event.set()
        self.join()
        self.sock.close()
        if self.error:
            raise self.error
        if not self.times:
            raise CaseError(f"no round trips of api {self.api_key} measured")
        return nearest_rank(self.times, 0.5), nearest_rank(self.times, 0.99), len(self.times)


def nearest_rank(values, q):
    v = sorted(values)
    return v[max(1, min(len(v), int(q * len(v) + 0.999999))) - 1]


def probe_until_ready(proc, port, timeout):
    """Polls until ApiVersions v0 and Metadata v1 (all topics) are answered; returns the time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"broker exited with code {proc.returncode} before answering")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                resp = _request(s, 18, 0, 1, b"")
                if struct.unpack(">h", resp[4:6])[0] != 0:
                    raise RuntimeError("ApiVersions error")
                _request(s, 3, 1, 2, struct.pack(">i", -1))
                return time.monotonic()
        except (ConnectionError, OSError):
            time.sleep(0.0005)
    raise RuntimeError(f"broker did not answer Metadata within {timeout} s")


# ------------------------------------------------------------------ broker

def proc_field(pid, name, key):
    try:
        with open(f"/proc/{pid}/{name}") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class Broker:
    """One gregor process; its port is picked at the first start and kept across restarts.
    With `controller_port` it also has a CONTROLLER listener (a cluster node)."""

    def __init__(self, args, datadir, extra=(), label="broker", port=None, controller_port=None,
                 tls=None):
        self.bin = args.gregor_bin
        self.datadir = datadir
        self.extra = list(extra)
        self.label = label
        self.proc = None
        self.port = port
        self.controller_port = controller_port
        self.tls = tls  # a Tls: SSL and SASL_SSL listeners too
        self.logf = None
        self.log_path = os.path.join(args.workdir, f"{label}.log")

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self):
        return self.proc.pid

    def command(self, *subcommand):
        if self.port is None:
            self.port = free_port()
        listeners = f"PLAINTEXT://127.0.0.1:{self.port}"
        if self.controller_port:
            listeners += f",CONTROLLER://127.0.0.1:{self.controller_port}"
        config = []
        if self.tls:
            listeners += self.tls.listeners()
            config = ["--config", self.tls.properties()]
        return [self.bin, *subcommand, "--listeners", listeners, "--log-dirs", self.datadir,
                *config, *self.extra]

    @staticmethod
    def env():
        """Without the caller's GREGOR_* settings: only the flags count."""
        return {k: v for k, v in os.environ.items()
                if not k.startswith("GREGOR_") or k == "GREGOR_BIN"}

    def format(self, cluster_id):
        p = subprocess.run(self.command("format", "--cluster-id", cluster_id), capture_output=True,
                           text=True, env=self.env(), timeout=30)
        if p.returncode != 0:
            raise CaseError(f"gregor format ({self.label}) exited {p.returncode}: "
                            f"{p.stderr.strip()}")

    def spawn(self):
        """Starts the process without waiting for it to answer; returns the time of exec."""
        cmd, env = self.command(), self.env()
        self.logf = open(self.log_path, "a")
        with LIVE_LOCK:  # no broker starts once the run is being stopped
            if STOPPING.is_set():
                raise CaseError("the run is stopping")
            t0 = time.monotonic()
            self.proc = subprocess.Popen(cmd, stdout=self.logf, stderr=subprocess.STDOUT, env=env)
            LIVE.add(self.proc)
        return t0

    def start(self, timeout=30):
        """Starts the broker; returns ms from exec to the first Metadata answer."""
        t0 = self.spawn()
        t1 = probe_until_ready(self.proc, self.port, timeout)
        return (t1 - t0) * 1000

    def rss_mb(self):
        kb = proc_field(self.pid, "status", "VmRSS")
        return kb / 1024 if kb is not None else None

    def hwm_mb(self):
        kb = proc_field(self.pid, "status", "VmHWM")
        return kb / 1024 if kb is not None else None

    def write_bytes(self):
        return proc_field(self.pid, "io", "write_bytes")

    def cpu_s(self):
        """User + system CPU seconds the broker has used so far."""
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        """SIGTERM and wait; returns ms to exit."""
        if not self.proc or self.proc.poll() is not None:
            return None
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        LIVE.discard(self.proc)
        self.logf.close()
        return (time.monotonic() - t0) * 1000

    def kill(self):
        """SIGKILL: no controlled shutdown, no last heartbeat."""
        self.proc.kill()
        self.proc.wait()
        LIVE.discard(self.proc)
        self.logf.close()

    def settle(self, max_secs):
        """Waits until the broker's write_bytes stops growing (RocksDB flush) or max_secs pass."""
        end = time.monotonic() + max_secs
        last = self.write_bytes()
        quiet = 0
        while time.monotonic() < end:
            time.sleep(0.5)
            now = self.write_bytes()
            quiet = quiet + 1 if now == last else 0
            last = now
            if quiet >= 2:
                break
        return last


LIVE = set()  # every process this run started and has not yet reaped
LIVE_LOCK = threading.Lock()
STOPPING = threading.Event()  # set when the run ends: the lanes of --against start no broker


# Apache Kafka's JVM as bin/kafka-server-start.sh starts it (KAFKA_HEAP_OPTS, a modest heap, and
# KAFKA_JVM_PERFORMANCE_OPTS).
KAFKA_JVM = ["-Xmx1g", "-Xms1g", "-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
             "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent",
             "-Djava.awt.headless=true"]


class KafkaBroker(Broker):
    """Apache Kafka 4.1 as one KRaft broker,controller node (`--against kafka`), from the jars
    scripts/bench fetched; formatted at its first start. The Gregor flags a section passes map to
    Kafka's config of the same name (--log-flush-interval-messages 1 is
    log.flush.interval.messages=1); GREGOR_ONLY_FLAGS have no Kafka equivalent."""

    def __init__(self, args, datadir, extra=(), label="broker", tls=None):
        super().__init__(args, datadir, extra, label=f"kafka-{label}",
                         controller_port=free_port(), tls=tls)
        self.classpath = args.kafka_classpath
        self.properties = os.path.join(args.workdir, f"{self.label}.properties")

    def configs(self):
        if self.port is None:
            self.port = free_port()
        c = {"process.roles": "broker,controller", "node.id": "1",
             "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
             "listeners": f"PLAINTEXT://127.0.0.1:{self.port},"
                          f"CONTROLLER://127.0.0.1:{self.controller_port}",
             "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
             "controller.listener.names": "CONTROLLER", "inter.broker.listener.name": "PLAINTEXT",
             "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
             "log.dirs": self.datadir,
             # A single node: its internal topics have one replica, as Gregor's do.
             "offsets.topic.replication.factor": "1",
             "transaction.state.log.replication.factor": "1",
             "transaction.state.log.min.isr": "1",
             # Gregor's default (Kafka's is 3 s); the group case sets its own.
             "group.initial.rebalance.delay.ms": "0"}
        if self.tls:
            for key in ("listeners", "advertised.listeners"):
                c[key] += self.tls.listeners()
            c["listener.security.protocol.map"] += ",SSL:SSL,SASL_SSL:SASL_SSL"
            c.update(self.tls.configs())
            # Kafka's server side of SCRAM needs a JAAS entry, even an empty one.
            c[f"listener.name.sasl_ssl.{SCRAM.lower()}.sasl.jaas.config"] = \
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        c.update(kafka_configs(self.extra))
        return c

    def write_properties(self):
        with open(self.properties, "w") as f:
            f.writelines(f"{k}={v}\n" for k, v in self.configs().items())

    def command(self, *subcommand):
        self.write_properties()
        return ["java", *KAFKA_JVM, "-cp", self.classpath, "kafka.Kafka", self.properties]

    def spawn(self):
        """Formats the log dir once (not timed), then starts the JVM."""
        if not os.path.exists(os.path.join(self.datadir, "meta.properties")):
            self.write_properties()
            cluster_id = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
            p = subprocess.run(["java", "-Xmx256m", "-cp", self.classpath,
                                "kafka.tools.StorageTool", "format", "-t", cluster_id,
                                "-c", self.properties], capture_output=True, text=True,
                               timeout=120)
            if p.returncode != 0:
                raise CaseError(f"kafka-storage format ({self.label}) exited {p.returncode}: "
                                f"{tail(p.stdout, p.stderr)}")
        return super().spawn()

    def start(self, timeout=180):
        return super().start(timeout)


GREGOR_ONLY_FLAGS = {"--rocksdb-memtable-bytes"}


def kafka_configs(flags):
    """Gregor flags (`--name value` or `--name=value`) as Kafka configs (`name.dotted=value`)."""
    out, items = {}, list(flags)
    while items:
        flag = items.pop(0)
        flag, value = flag.split("=", 1) if "=" in flag else (flag, items.pop(0))
        if flag in GREGOR_ONLY_FLAGS:
            raise CaseError(f"{flag} has no Kafka equivalent")
        out[flag[2:].replace("-", ".")] = value
    return out


def new_broker(args, datadir, extra=(), label="broker", tls=None):
    """A Gregor broker, or Kafka in the Kafka lane of `--against kafka`."""
    return (KafkaBroker if args.kafka else Broker)(args, datadir, extra, label=label, tls=tls)


def wait_for(what, check, timeout, period=0.01):
    """Polls `check` until it returns something true, and returns that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(period)
    raise CaseError(f"{what}: not within {timeout:.0f} s")


class Cluster:
    """Three broker,controller nodes as scripts/cluster starts them: one formatted cluster id,
    voters 1..3, each node with its own client and controller port on 127.0.0.1 and its own
    data dir. Stands in for a Broker where produce(), e2e() and settle() take one."""

    def __init__(self, args, settings):
        self.args = args
        ports = {k: (free_port(), free_port()) for k in (1, 2, 3)}
        voters = ",".join(f"{k}@127.0.0.1:{c}" for k, (_, c) in ports.items())
        self.nodes = {k: Broker(args, new_datadir(args, f"cluster-node-{k}"),
                                ["--node-id", str(k), "--controller-quorum-voters", voters]
                                + settings, label=f"cluster-node-{k}", port=p, controller_port=c)
                      for k, (p, c) in ports.items()}

    @property
    def bootstrap(self):
        return ",".join(n.bootstrap for n in self.nodes.values())

    def running(self):
        return [k for k, n in self.nodes.items() if n.proc and n.proc.poll() is None]

    def start(self, timeout=60):
        """Formats and starts every node; returns ms until each one's Metadata lists all three."""
        cluster_id = subprocess.run([self.args.gregor_bin, "random-uuid"], capture_output=True,
                                    text=True, check=True).stdout.strip()
        for n in self.nodes.values():
            n.format(cluster_id)
        # Spawned together: a node registers only once a quorum of voters runs.
        t0 = min(n.spawn() for n in self.nodes.values())
        for n in self.nodes.values():
            probe_until_ready(n.proc, n.port, timeout)
        everyone = sorted(self.nodes)
        wait_for("every node's Metadata lists 3 brokers", lambda: all(
            (metadata(n.port) or [None])[0] == everyone for n in self.nodes.values()), timeout)
        ready = (time.monotonic() - t0) * 1000
        # The first FindCoordinator creates __consumer_offsets (50 partitions, 3 replicas each):
        # done here, not by the e2e consumer while it measures.
        with connect(self.nodes[1].port) as sock:
            wait_for("a group coordinator", lambda: _Reader(
                _request(sock, 10, 0, 1, _str("gregor-bench"))).take(">h") == 0, timeout, 0.05)
        return ready

    def partition(self, topic, nodes=None):
        """(leader, ISR) of partition 0 of `topic` when every running node (or every one of
        `nodes`) reports the same, else None."""
        views = {(metadata(self.nodes[k].port, topic) or (None, None, {}))[2].get(0)
                 for k in nodes or self.running()}
        return views.pop() if len(views) == 1 else None

    def cpu_s(self):
        return sum(n.cpu_s() for n in self.nodes.values())

    def write_bytes(self):
        return sum(n.write_bytes() for n in self.nodes.values())

    settle = Broker.settle  # on the sum of the nodes' writes

    def stop(self):
        """Stops every node (the last one takes 2 s: its controlled shutdown needs a quorum, it
        waits out the session timeout) and removes the data dirs."""
        for n in self.nodes.values():
            n.stop()
            drop_datadir(n.datadir)


class RssSampler(threading.Thread):
    """Samples VmRSS of the current broker every 100 ms while `active`; keeps the peak."""

    def __init__(self):
        super().__init__(daemon=True)
        self.broker = None
        self.active = False
        self.peak = 0.0
        self.stopped = False

    def run(self):
        while not self.stopped:
            b = self.broker
            if self.active and b is not None and b.proc and b.proc.poll() is None:
                r = b.rss_mb()
                if r:
                    self.peak = max(self.peak, r)
            time.sleep(0.1)


# ------------------------------------------------------------------ clients

PROD_RE = re.compile(r"% (\d+) messages produced \((\d+) bytes\), (\d+) delivered \(offset (-?\d+), "
                     r"(\d+) failed\) in (\d+)ms: (\d+) msgs/s and ([\d.]+) MB/s")
CONS_RE = re.compile(r"% (\d+) messages \((\d+) bytes\) consumed in (\d+)ms: (\d+) msgs/s "
                     r"\(([\d.]+) MB/s\)")


class CaseError(Exception):
    pass


def run_client(args, cmd, timeout):
    """Runs one client to completion (killed by PID on timeout); returns (rc, stdout, stderr)."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         cwd=args.workdir)
    LIVE.add(p)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        LIVE.discard(p)
        raise CaseError(f"timed out after {timeout:.0f} s: {' '.join(cmd)}\n{tail(out, err)}")
    LIVE.discard(p)
    return p.returncode, out, err


class CpuMeter:
    """CPU used by the clients run meanwhile (reaped children) and by the broker, in cores over
    the wall time: shows which side a throughput number is bound by."""

    def __init__(self, broker):
        self.broker = broker
        self.t0 = time.monotonic()
        self.children0 = self._children()
        self.broker0 = broker.cpu_s()

    @staticmethod
    def _children():
        r = resource.getrusage(resource.RUSAGE_CHILDREN)
        return r.ru_utime + r.ru_stime

    def cores(self):
        wall = time.monotonic() - self.t0
        return ((self._children() - self.children0) / wall,
                (self.broker.cpu_s() - self.broker0) / wall)


def tail(out, err, n=6):
    lines = [l for l in (out + "\n" + err).splitlines()
             if l.strip() and "CONFWARN" not in l]
    return "\n".join(lines[-n:])


def perf(args):
    return [args.rdkafka_performance]


def create_topic(args, broker, topic, partitions, replication=1, configs=None):
    configs = [f"{k}={v}" for k, v in (configs or {}).items()]
    rc, out, err = run_client(args, [args.benchtool, "create", broker.bootstrap, topic,
                                     str(partitions), str(replication)] + configs, 60)
    if rc != 0:
        raise CaseError(f"create topic {topic} ({partitions} partitions, RF={replication}) "
                        f"failed: {tail(out, err)}")
    if isinstance(broker, KafkaBroker):
        # Kafka can answer CreateTopics before every partition has a leader.
        wait_for(f"leaders for the {partitions} partitions of {topic}",
                 lambda: has_leaders(broker.port, topic, partitions), 120, 0.05)


def has_leaders(port, topic, partitions):
    got = (metadata(port, topic) or (None, None, {}))[2]
    return len(got) == partitions and all(leader >= 0 for leader, _ in got.values())


def produce(args, broker, topic, size, count, acks="all", codec="none", partition=None,
            extra=(), seed=1, timeout=None, bootstrap=None):
    """`bootstrap` (with the client settings in `extra`) picks another listener."""
    cmd = perf(args) + ["-P", "-b", bootstrap or broker.bootstrap, "-t", topic, "-s", str(size),
                        "-c", str(count), "-a", "-1" if acks == "all" else str(acks),
                        "-R", str(seed), "-q"] + PRODUCE_SETTINGS + list(extra)
    if codec != "none":
        cmd += ["-z", codec]
    if partition is not None:
        cmd += ["-p", str(partition)]
    if timeout is None:
        timeout = 60 + count * size / 5e6  # generous: 5 MB/s worst case
    meter = CpuMeter(broker)
    rc, out, err = run_client(args, cmd, timeout)
    client_cores, broker_cores = meter.cores()
    m = PROD_RE.findall(out)
    if rc != 0 or not m:
        raise CaseError(f"rdkafka_performance exited {rc}: {' '.join(cmd)}\n{tail(out, err)}")
    produced, nbytes, delivered, _off, failed, ms, rate, mbs = m[-1]
    if int(delivered) != count or int(failed):
        raise CaseError(f"{delivered}/{count} delivered, {failed} failed: {' '.join(cmd)}")
    return dict(records=int(delivered), bytes=int(delivered) * size, ms=int(ms),
                rec_s=float(rate), mb_s=float(mbs), client_cores=client_cores,
                broker_cores=broker_cores)


def consume_cmd(args, broker, topic, count, partitions=None, group=None, bootstrap=None):
    cmd = perf(args) + ["-b", bootstrap or broker.bootstrap, "-t", topic, "-c", str(count), "-e",
                        "-q", "-o", "beginning"]
    cmd += ["-G", group] if group else ["-C"]
    for p in partitions or []:
        cmd += ["-p", str(p)]
    return cmd


def parse_consume(cmd, rc, out, err):
    m = CONS_RE.findall(out)
    if rc != 0 or not m:
        raise CaseError(f"rdkafka_performance exited {rc}: {' '.join(cmd)}\n{tail(out, err)}")
    msgs, nbytes, ms, rate, mbs = m[-1]
    return dict(records=int(msgs), bytes=int(nbytes), ms=int(ms), rec_s=float(rate),
                mb_s=float(mbs))


E2E_RE = re.compile(r"^e2e (.*)$", re.M)


def e2e(args, broker, topic, partitions, rate, secs, warmup, size=100):
    cmd = [args.benchtool, "e2e", "-b", broker.bootstrap, "-t", topic, "-n", str(partitions),
           "-r", f"{rate:.0f}", "-d", str(secs), "-w", str(warmup), "-s", str(size)]
    rc, out, err = run_client(args, cmd, 60 + (secs + warmup) * 3)
    m = E2E_RE.search(out)
    if not m:
        raise CaseError(f"gregor-benchtool exited {rc}: {' '.join(cmd)}\n{tail(out, err)}")
    kv = dict(item.split("=", 1) for item in m.group(1).split())
    res = {k: float(v) for k, v in kv.items()}
    if rc != 0:
        raise CaseError(f"gregor-benchtool exited {rc} ({m.group(1)}): {tail('', err)}")
    return res


def measured_e2e(args, broker, topic, partitions, rate, secs, warmup):
    """e2e(); with --against, after a 1 s run that is not counted, on either broker: the first
    run on a fresh Kafka topic lagged ~1.5 s throughout (the next one: ~1 ms p50)."""
    if args.against:
        e2e(args, broker, topic, partitions, rate, 1, 0)
    return e2e(args, broker, topic, partitions, rate, secs, warmup)


# ------------------------------------------------------------------ result rows

class Results:
    """The rows of one lane: Gregor's, or Kafka's with `--against kafka`, where `turns` runs the
    two lanes' cases alternately."""

    def __init__(self, lane="gregor", turns=None):
        self.rows = []
        self.failures = []
        self.data = {}
        self.lane, self.turns = lane, turns
        self.current, self.in_case = None, 0  # the case() running and its rows so far

    def key(self, case):
        """What pairs a row with the other lane's: the name of the case() that made it and its
        place among that case's rows (a failure takes the first), else its own name."""
        if self.current is None:
            return case
        self.in_case += 1
        return f"{self.current} #{self.in_case}"

    def hand_over(self):
        if self.turns:
            self.turns.hand_over(self.lane)

    def add(self, section, case, gregor, value=None, kind="higher", ref=None, target=None,
            target_ok=None, **extra):
        ratio = None
        if ref is not None and value:
            ratio = value / ref[0] if kind == "higher" else ref[0] / value
        extra["key"] = extra.get("key") or self.key(case)
        row = dict(section=section, case=case, gregor=gregor, value=value, kind=kind,
                   ref=ref[1] if ref else "", ref_value=ref[0] if ref else None, ratio=ratio,
                   target=target or "", ok=target_ok, **extra)
        self.rows.append(row)
        log(progress(row, self.lane))
        return row

    def fail(self, section, case, err):
        msg = str(err)
        self.failures.append(dict(section=section, case=case, error=msg))
        first = msg.splitlines()[0] if msg else "error"
        self.rows.append(dict(section=section, case=case, gregor=f"FAILED: {first[:120]}",
                              value=None, kind="higher", ref="", ratio=None, target="",
                              ok=None, key=self.key(case)))
        log(f"FAILED [{section}] {case}{'' if self.lane == 'gregor' else ' (Kafka)'}:\n{msg}")


def progress(row, lane="gregor"):
    ok = {True: "  [target met]", False: "  [target missed]", None: ""}[row["ok"]]
    return f"  {'' if lane == 'gregor' else '[Kafka] '}{row['case']}: {row['gregor']}{ok}"


class Turns:
    """Runs the lanes of `--against kafka` (one thread each) one at a time, handing over after
    every case: Gregor's case 1, Kafka's case 1, Gregor's case 2, ... so load from elsewhere on
    the machine hits both alike."""

    def __init__(self, lanes):
        self.cond = threading.Condition()
        self.lanes = list(lanes)
        self.turn = self.lanes[0]
        self.done = set()

    def wait(self, lane):
        with self.cond:
            self.cond.wait_for(lambda: self.turn == lane)

    def _next(self, lane):
        others = [l for l in self.lanes if l != lane and l not in self.done]
        if others:
            self.turn = others[0]
        self.cond.notify_all()

    def hand_over(self, lane):
        with self.cond:
            self._next(lane)
            self.cond.wait_for(lambda: self.turn == lane)

    def finish(self, lane):
        with self.cond:
            self.done.add(lane)
            self._next(lane)


def krate(r):
    return f"{r / 1e6:.2f} M rec/s" if r >= 1e6 else f"{r / 1e3:.0f} k rec/s"


def thr(res, disk=None):
    s = f"{krate(res['rec_s'])}, {res['mb_s']:.1f} MB/s"
    if disk is not None:
        s += f", disk {disk:.2f} B/B"
    if "client_cores" in res:
        s += f"; CPU client {res['client_cores']:.2f} / broker {res['broker_cores']:.2f} cores"
    return s


def ms(x):
    return f"{x:.1f} ms" if x >= 10 else f"{x:.2f} ms"


def e2e_text(r):
    return (f"p50 {ms(r['p50_us'] / 1000)}, p99 {ms(r['p99_us'] / 1000)}, "
            f"p99.9 {ms(r['p999_us'] / 1000)}, max {ms(r['max_us'] / 1000)} "
            f"({int(r['measured'])} msgs at {r['rate']:.0f}/s)")


# ------------------------------------------------------------------ the cases

def case(results, section, name):
    """Decorator-ish helper: runs fn, records a failure row instead of raising."""
    def wrap(fn):
        results.current, results.in_case = name, 0
        try:
            return fn()
        except CaseError as e:
            results.fail(section, name, e)
        except Exception as e:  # a bug or a dead broker: record it, go on
            results.fail(section, name, f"{type(e).__name__}: {e}")
        finally:
            results.current = None
            results.hand_over()
        return None
    return wrap


def new_datadir(args, name):
    d = os.path.join(args.workdir, name)
    os.makedirs(d)
    return d


def drop_datadir(path):
    shutil.rmtree(path, ignore_errors=True)


def produce_matrix(args, R, broker, cfg, fsync, sampler):
    """size x partitions x acks x compression, each on a fresh topic."""
    section = "fsync" if fsync else "produce"
    for size in (100, 1024):
        for parts in (1, 16):
            for acks in ("1", "all"):
                for codec in ("none", "lz4"):
                    fs = "fsync on (group commit)" if fsync else "fsync off"
                    name = f"produce {size if size == 100 else '1 KiB'}{' B' if size == 100 else ''}, " \
                           f"{parts} part, acks={acks}, {codec}, {fs}"
                    topic = f"m-{size}-{parts}-{acks}-{codec}-{'fs' if fsync else 'nofs'}"
                    count = cfg["count_100"] if size == 100 else cfg["count_1k"]

                    def run():
                        create_topic(args, broker, topic, parts)
                        w0 = broker.write_bytes()
                        sampler.active = True
                        runs = [produce(args, broker, topic, size, count, acks, codec, seed=1 + i)
                                for i in range(args.repeat)]
                        sampler.active = False
                        w1 = broker.settle(cfg["settle_case"]) if cfg["settle_case"] else \
                            broker.write_bytes()
                        disk = (w1 - w0) / sum(r["bytes"] for r in runs)
                        res = sorted(runs, key=lambda r: r["rec_s"])[len(runs) // 2]
                        ref = target = ok = None
                        if (size == 1024 and parts == 1 and acks == "all" and codec == "none"
                                and not fsync):
                            ref = KAFKA["1k"]
                            target = f">= {1.5 * ref[0] / 1e6:.3f} M rec/s"
                            ok = res["rec_s"] >= 1.5 * ref[0]
                        R.add(section, name, thr(res, disk), res["rec_s"], ref=ref, target=target,
                              target_ok=ok, mb_s=res["mb_s"], disk=disk, size=size,
                              parts=parts, acks=acks, codec=codec, fsync=fsync, raw=res,
                              runs=[r["rec_s"] for r in runs])
                    case(R, section, name)(run)


def rocksdb_stalls(datadir):
    """Write stalls RocksDB has logged in its info log (each stop or slowdown is one line)."""
    n = 0
    for name in os.listdir(datadir):
        if name == "LOG" or name.startswith("LOG.old"):
            with open(os.path.join(datadir, name), errors="replace") as f:
                n += sum(1 for line in f if "Stopping writes" in line or "Stalling writes" in line)
    return n


def control_plane(args, R, cfg):
    """ApiVersions round trips on one connection and Heartbeats of a group member on another,
    idle and while rdkafka_performance floods 1 KiB produce: on a broker with the default memtable
    budget, and on one with the 16 MiB budget of tests/stall.rs, where RocksDB stalls writes."""
    for budget in (None, 16 * MiB):
        label = "default memtable budget" if budget is None else \
            f"{budget // MiB} MiB memtable budget"
        if budget and args.kafka:  # a RocksDB setting: the row says n/a for Kafka
            case(R, "control", label)(lambda: None)  # keeps the turns in step with Gregor's
            continue
        d = new_datadir(args, f"control-{budget or 'default'}")
        extra = [] if budget is None else ["--rocksdb-memtable-bytes", str(budget)]
        b = new_broker(args, d, extra, label=f"control-{budget or 'default'}")

        def probes(skip, group):
            ps = [RoundTrips(b.port, 18, 0.002, skip),
                  RoundTrips(b.port, 12, 0.01, skip, lambda sock: join_alone(sock, group))]
            for p in ps:
                p.start()
            return ps

        def stop(ps):
            for p in ps:
                p.stop_event.set()
            (a50, a99, an), (h50, h99, hn) = [p.finish() for p in ps]
            return a99, (f"ApiVersions p50 {ms(a50)}, p99 {ms(a99)} ({an}); "
                         f"Heartbeat p50 {ms(h50)}, p99 {ms(h99)} ({hn})")

        try:
            b.start()
            create_topic(args, b, "flood", 1)
            if budget is None:
                def idle():
                    ps = probes(0, "idle")
                    time.sleep(cfg["control_idle_secs"])
                    p99, txt = stop(ps)
                    R.add("control", "control plane, idle broker: ApiVersions and Heartbeat round "
                          "trips", txt, p99, kind="lower")
                case(R, "control", "control plane idle")(idle)

            name = f"control plane under a 1 KiB produce flood (1 part, acks=all), {label}"

            def flood():
                stalls = rocksdb_stalls(d)
                # rdkafka_performance connects first: its first 0.3 s are left out.
                ps = probes(0.3, "flood")
                try:
                    res = produce(args, b, "flood", 1024, cfg["flood_count"])
                finally:
                    p99, txt = stop(ps)
                stalls = rocksdb_stalls(d) - stalls
                txt += f"; flood {krate(res['rec_s'])}"
                if not args.kafka:
                    txt += f", RocksDB stalled writes {stalls} times"
                R.add("control", name, txt, p99, kind="lower", flood=res, stalls=stalls)
            case(R, "control", name)(flood)
        except Exception as e:
            R.fail("control", f"broker with {label}", f"{type(e).__name__}: {e}")
        finally:
            b.stop()
            drop_datadir(d)


def retention_pass(args, R, cfg):
    """A 1 000-partition topic with data and no retention; then AlterConfigs sets retention.ms=1
    and the next pass deletes all but each partition's last batch. Its duration: from the first
    partition's log start moving to the last one's, seen by ListOffsets(earliest) every 5 ms."""
    d = new_datadir(args, "retention")
    interval_ms = 100
    b = new_broker(args, d, ["--log-retention-ms=-1", "--log-retention-check-interval-ms",
                         str(interval_ms)], label="retention")
    parts = list(range(1000))
    n = cfg["retention_count"]
    name = f"one retention pass over 1 000 partitions ({n * 1024 // MiB} MiB of 1 KiB records)"

    def run():
        create_topic(args, b, "r1000", 1000)
        produce(args, b, "r1000", 1024, n, extra=["-X", "sticky.partitioning.linger.ms=0"])
        # Two more records per partition, round-robin: every partition then has a batch after
        # its bulk data, which retention may delete (it keeps a partition's last batch).
        e2e(args, b, "r1000", 1000, 2000, 1, 0, size=1024)
        b.settle(cfg["settle_max"])
        with connect(b.port) as sock:
            if any(e or o != 0 for e, _, o in list_offsets(sock, "r1000", parts, -2)):
                raise CaseError("log start offsets moved before retention was set")
            t_alter = time.perf_counter()
            alter_topic_configs(sock, "r1000", {"retention.ms": "1"})
            first = last = None
            moved = 0
            while True:
                starts = list_offsets(sock, "r1000", parts, -2)
                now = time.perf_counter()
                if any(e for e, _, _ in starts):
                    raise CaseError(f"ListOffsets error {next(e for e, _, _ in starts if e)}")
                count = sum(1 for _, _, o in starts if o > 0)
                if count > moved:
                    first = first or now
                    last, moved = now, count
                # A partition holding one batch keeps it: stop once nothing moves for 5 s.
                if moved == len(parts) or (last and now - last > 5):
                    break
                if now - t_alter > 300 * cfg["timeout_scale"]:
                    raise CaseError(f"after 300 s, log start moved on {moved} partitions")
                time.sleep(0.005)
        pass_ms = (last - first) * 1000
        R.add("retention", name, f"{ms(pass_ms)} from the first partition's log start moving to "
              f"the last's ({moved} of {len(parts)} moved, the last {ms((last - t_alter) * 1000)} "
              f"after AlterConfigs retention.ms=1; a check every {interval_ms} ms)", pass_ms,
              kind="lower", moved=moved)

    try:
        b.start()
        case(R, "retention", name)(run)
    except Exception as e:
        R.fail("retention", "broker for retention", f"{type(e).__name__}: {e}")
    finally:
        b.stop()
        drop_datadir(d)


# The fault tests' heartbeat and session timeout (FAST in tests/cluster): a killed leader is
# fenced, and its partitions move, 2 s after its last heartbeat instead of Kafka's default 9 s.
CLUSTER_SETTINGS = ["--broker-session-timeout-ms", "2000", "--broker-heartbeat-interval-ms", "200"]
MIN_ISR_2 = {"min.insync.replicas": "2"}


TXN_RE = re.compile(r"^txn (.*)$", re.M)
TXN_RECORDS = 1000


TXN_AIM = 0.8  # the issue's aims: transactional throughput at least 80 % of idempotent,
READ_COMMITTED_AIM = 0.95  # and read_committed within 5 % of read_uncommitted


def transaction_cases(args, R, cfg):
    """A transactional producer (1 000 records of 100 B per transaction) beside an idempotent
    one, and read_committed consume beside read_uncommitted over what it wrote, each as a share
    of the other against the issue's aims."""
    d = new_datadir(args, "transactions")
    b = new_broker(args, d, label="transactions")
    rates = {}
    try:
        b.start()
        n = cfg["transactions"]
        records = n * TXN_RECORDS

        def producer(idempotent):
            topic = "idem" if idempotent else "txn"
            create_topic(args, b, topic, 1)
            cmd = [args.benchtool, "txn", "-b", b.bootstrap, "-t", topic, "-n", str(n),
                   "-m", str(TXN_RECORDS), "-s", "100"] + (["-i"] if idempotent else [])
            meter = CpuMeter(b)
            rc, out, err = run_client(args, cmd, 120 + records / 2e4)
            m = TXN_RE.search(out)
            if rc != 0 or not m:
                raise CaseError(f"gregor-benchtool txn exited {rc}: {' '.join(cmd)}\n{tail(out, err)}")
            f = dict(kv.split("=") for kv in m.group(1).split())
            res = dict(rec_s=float(f["rec_s"]), mb_s=float(f["mb_s"]))
            res["client_cores"], res["broker_cores"] = meter.cores()
            if idempotent:
                rates["idempotent"] = res["rec_s"]
                R.add("transactions", f"idempotent produce 100 B, no transaction, the same {records} records",
                      thr(res), res["rec_s"], raw=f)
                return True
            p50, p99 = float(f["commit_p50_ms"]), float(f["commit_p99_ms"])
            txt, ok = f"{thr(res)}; commit p50 {ms(p50)}, p99 {ms(p99)}", None
            if rates.get("idempotent"):
                share = res["rec_s"] / rates["idempotent"]
                txt, ok = f"{txt}; {share:.0%} of idempotent", share >= TXN_AIM
            R.add("transactions", f"transactional produce 100 B, {TXN_RECORDS} rec/txn, {n} txns", txt, res["rec_s"],
                  target=f">= {TXN_AIM:.0%} of idempotent", target_ok=ok, commit_p50_ms=p50, commit_p99_ms=p99, raw=f)
            return True
        case(R, "transactions", "idempotent produce")(lambda: producer(True))
        written = case(R, "transactions", "transactional produce")(lambda: producer(False))

        for isolation in ("read_uncommitted", "read_committed"):
            def consume():
                cmd = consume_cmd(args, b, "txn", records, partitions=[0]) + \
                    ["-X", f"isolation.level={isolation}"]
                rc, out, err = run_client(args, cmd, 120 + records / 2e5)
                res = parse_consume(cmd, rc, out, err)
                if res["records"] != records:
                    raise CaseError(f"consumed {res['records']} of {records}")
                rates[isolation] = res["rec_s"]
                txt, target, ok = thr(res), None, None
                if isolation == "read_committed":
                    target = f">= {READ_COMMITTED_AIM:.0%} of read_uncommitted"
                    if rates.get("read_uncommitted"):
                        share = res["rec_s"] / rates["read_uncommitted"]
                        txt, ok = f"{txt}; {share:.0%} of read_uncommitted", share >= READ_COMMITTED_AIM
                R.add("transactions", f"consume the transactional topic, {isolation}", txt,
                      res["rec_s"], target=target, target_ok=ok, raw=res)
            if written:
                case(R, "transactions", f"consume {isolation}")(consume)
    except Exception as e:
        R.fail("transactions", "transactions broker", f"{type(e).__name__}: {e}")
    finally:
        b.stop()
        drop_datadir(d)


SCRAM = "SCRAM-SHA-512"
BENCH_USER, BENCH_PASSWORD = "bench", "bench-secret"
CONNECT_RE = re.compile(r"^connect (.*)$", re.M)
SECURITY_AIM = 0.7  # the issue's aim: SASL_SSL throughput at least 70 % of PLAINTEXT


class Tls:
    """The security section's SSL and SASL_SSL listeners beside PLAINTEXT: the broker key and
    chain for 127.0.0.1 from `gregor certs` (a development CA), SCRAM-SHA-512 on SASL_SSL."""

    def __init__(self, args):
        self.dir = os.path.join(args.workdir, "certs")
        p = subprocess.run([args.gregor_bin, "certs", "--dir", self.dir, "--host", "127.0.0.1"],
                           capture_output=True, text=True, timeout=30)
        if p.returncode != 0:
            raise CaseError(f"gregor certs exited {p.returncode}: {tail(p.stdout, p.stderr)}")
        self.ports = {"SSL": free_port(), "SASL_SSL": free_port()}

    def listeners(self):
        return "".join(f",{name}://127.0.0.1:{port}" for name, port in self.ports.items())

    def configs(self):
        """Kafka's keys, which Gregor reads too."""
        return {"ssl.keystore.type": "PEM",
                "ssl.keystore.location": os.path.join(self.dir, "broker.pem"),
                "sasl.enabled.mechanisms": SCRAM}

    def properties(self):
        path = os.path.join(self.dir, "server.properties")
        with open(path, "w") as f:
            f.writelines(f"{k}={v}\n" for k, v in self.configs().items())
        return path

    def client(self, listener):
        """(bootstrap, librdkafka -X arguments) for a client of `listener`."""
        if listener == "PLAINTEXT":
            return None, []
        settings = {"security.protocol": listener,
                    "ssl.ca.location": os.path.join(self.dir, "ca.pem")}
        if listener == "SASL_SSL":
            settings.update({"sasl.mechanism": SCRAM, "sasl.username": BENCH_USER,
                             "sasl.password": BENCH_PASSWORD})
        x = [a for k, v in settings.items() for a in ("-X", f"{k}={v}")]
        return f"127.0.0.1:{self.ports[listener]}", x


def connect_times(args, broker, tls, listener, count):
    bootstrap, x = tls.client(listener)
    cmd = [args.benchtool, "connect", "-b", bootstrap or broker.bootstrap, "-n", str(count), *x]
    rc, out, err = run_client(args, cmd, 60 + count)
    m = CONNECT_RE.search(out)
    if rc != 0 or not m:
        raise CaseError(f"gregor-benchtool connect exited {rc}: {' '.join(cmd)}\n{tail(out, err)}")
    return {k: float(v) for k, v in (kv.split("=") for kv in m.group(1).split())}


def security_cases(args, R, cfg):
    """Produce and consume over SASL_SSL (TLS, SCRAM-SHA-512) beside PLAINTEXT on one broker,
    with the produce and consume rows' sizes and tool; connection set-up time per protocol."""
    d = new_datadir(args, "security")
    b = None
    try:
        tls = Tls(args)
        b = new_broker(args, d, label="security", tls=tls)
        b.start()
        rc, out, err = run_client(args, [args.benchtool, "scram-user", b.bootstrap, BENCH_USER,
                                         BENCH_PASSWORD, SCRAM], 60)
        if rc != 0:
            raise CaseError(f"gregor-benchtool scram-user exited {rc}: {tail(out, err)}")
        # A first login, not timed: Kafka applies the credential from its metadata log a moment
        # later, and librdkafka retries until it can log in.
        connect_times(args, b, tls, "SASL_SSL", 1)
        protocols = ("PLAINTEXT", "SASL_SSL")
        sasl = f"SASL_SSL (TLS, {SCRAM})"

        def beside(name, runs):
            """A row per protocol (its median run); SASL_SSL's as a share of PLAINTEXT's."""
            med = {listener: sorted(rs, key=lambda r: r["rec_s"])[len(rs) // 2]
                   for listener, rs in runs.items()}
            plain, res = med["PLAINTEXT"], med["SASL_SSL"]
            R.add("security", f"{name}, PLAINTEXT", thr(plain), plain["rec_s"],
                  mb_s=plain["mb_s"], raw=plain)
            share = res["rec_s"] / plain["rec_s"]
            R.add("security", f"{name}, {sasl}", f"{thr(res)}; {share:.0%} of PLAINTEXT",
                  res["rec_s"], target=f">= {SECURITY_AIM:.0%} of PLAINTEXT",
                  target_ok=share >= SECURITY_AIM, mb_s=res["mb_s"], share=share, raw=res)

        n_runs = cfg["warm_runs"]
        for size, count in ((100, cfg["headline_count"]), (1024, cfg["count_1k"])):
            label = "100 B" if size == 100 else "1 KiB"
            name = f"produce {label}, 1 part, acks=all, none"

            def run():
                runs = {listener: [] for listener in protocols}
                for listener in protocols:
                    create_topic(args, b, f"sec-{size}-{listener}", 1)
                # Unmeasured: the broker's first writes go to neither protocol's numbers.
                produce(args, b, f"sec-{size}-PLAINTEXT", size, count // 10)
                for i in range(n_runs):
                    for listener in protocols:
                        bootstrap, x = tls.client(listener)
                        runs[listener].append(produce(args, b, f"sec-{size}-{listener}", size,
                                                      count, extra=x, seed=1 + i,
                                                      bootstrap=bootstrap))
                beside(f"{name} ({'median of ' + str(n_runs) if n_runs > 1 else '1 run'} each, "
                       "alternating)", runs)
            case(R, "security", f"{name} over SASL_SSL")(run)

        fill_n = cfg["fill_bytes"] // 100
        gib = cfg["fill_bytes"] / (1 << 30)
        size_label = f"{gib:g} GiB" if gib >= 1 else f"{cfg['fill_bytes'] // MiB} MiB"

        def consume():
            create_topic(args, b, "sec-c1", 1)
            produce(args, b, "sec-c1", 100, fill_n, partition=0)
            b.settle(cfg["settle_max"])
            runs = {}
            for listener in protocols:
                bootstrap, x = tls.client(listener)
                cmd = consume_cmd(args, b, "sec-c1", fill_n, partitions=[0],
                                  bootstrap=bootstrap) + x
                meter = CpuMeter(b)
                rc, out, err = run_client(args, cmd, 120 * cfg["timeout_scale"] + fill_n / 2e5)
                res = parse_consume(cmd, rc, out, err)
                res["client_cores"], res["broker_cores"] = meter.cores()
                if res["records"] != fill_n:
                    raise CaseError(f"consumed {res['records']} of {fill_n} over {listener}")
                runs[listener] = [res]
            beside(f"consume {size_label} from beginning, 1 partition, 1 consumer", runs)
        case(R, "security", "consume over SASL_SSL")(consume)

        n = cfg["connects"]
        for listener, what in (("PLAINTEXT", "TCP"), ("SSL", "TCP + TLS handshake"),
                               ("SASL_SSL", f"TCP + TLS handshake + {SCRAM} login")):
            name = (f"connection set-up, {listener}: a fresh librdkafka client to its first "
                    f"Metadata answer ({what}, ApiVersions, Metadata), {n} one after another")

            def connect():
                r = connect_times(args, b, tls, listener, n)
                R.add("security", name, f"p50 {ms(r['p50_ms'])}, p99 {ms(r['p99_ms'])}, "
                      f"max {ms(r['max_ms'])}", r["p50_ms"], kind="lower", p99=r["p99_ms"], raw=r)
            case(R, "security", f"connection set-up, {listener}")(connect)
    except Exception as e:
        R.fail("security", "broker with SSL and SASL_SSL listeners", f"{type(e).__name__}: {e}")
    finally:
        if b:
            b.stop()
        drop_datadir(d)


def cluster_cases(args, R, cfg):
    """RF=3 (min.insync.replicas=2) beside RF=1 on a local 3-node cluster: acks=all produce,
    end-to-end latency, and failover when a partition's leader is killed."""
    cl = Cluster(args, CLUSTER_SETTINGS)
    try:
        R.data["cluster_start_ms"] = cl.start()
        log(f"  cluster: 3 nodes registered {R.data['cluster_start_ms']:.0f} ms after exec")
        for size in (100, 1024):
            cluster_produce(args, R, cfg, cl, size)
        cluster_latency(args, R, cfg, cl)
        cluster_failover(args, R, cfg, cl)
    except Exception as e:
        R.fail("cluster", "3-node cluster", f"{type(e).__name__}: {e}")
    finally:
        cl.stop()


def cluster_produce(args, R, cfg, cl, size):
    """The same records to an RF=1 topic, then to an RF=3 one; the RF=3 row gives the ratio."""
    label = "100 B" if size == 100 else "1 KiB"
    count = cfg["cluster_count_100"] if size == 100 else cfg["cluster_count_1k"]
    rates = {}
    for rf in (1, 3):
        name = f"cluster: produce {label}, 1 part, acks=all, RF={rf}"
        if rf == 3:
            name += ", min.insync.replicas=2"

        def run():
            topic = f"c-{size}-rf{rf}"
            create_topic(args, cl, topic, 1, rf, MIN_ISR_2 if rf == 3 else None)
            w0 = cl.write_bytes()
            res = produce(args, cl, topic, size, count)
            w1 = cl.settle(cfg["settle_case"]) if cfg["settle_case"] else cl.write_bytes()
            disk = (w1 - w0) / res["bytes"]
            rates[rf] = res["rec_s"]
            txt, target, ok = thr(res, disk), None, None
            if rf == 3:
                target = "RF=3 >= 60 % of RF=1"
                if rates.get(1):
                    ratio = res["rec_s"] / rates[1]
                    txt += f"; {ratio:.0%} of RF=1"
                    ok = ratio >= 0.6
            R.add("cluster", name, txt, res["rec_s"], target=target, target_ok=ok,
                  mb_s=res["mb_s"], disk=disk, size=size, rf=rf, raw=res)
        case(R, "cluster", name)(run)


def cluster_latency(args, R, cfg, cl):
    name = ("cluster: e2e latency percentiles at 1 000 rec/s, RF=3, min.insync.replicas=2 "
            "(100 B, acks=all, linger 0)")

    def run():
        create_topic(args, cl, "c-e2e", 1, 3, MIN_ISR_2)
        cl.settle(cfg["settle_max"])
        r = e2e(args, cl, "c-e2e", 1, 1000, cfg["e2e_secs"], cfg["e2e_warmup"])
        p99 = r["p99_us"] / 1000
        R.add("cluster", name, e2e_text(r), p99, kind="lower", target="p99 < 5 ms",
              target_ok=p99 < 5, e2e=r)
    case(R, "cluster", name)(run)


def cluster_failover(args, R, cfg, cl):
    """An idempotent acks=all producer writes 1 000 rec/s to an RF=3 partition while its leader
    is killed (SIGKILL) and restarted, again and again; each kill's failover time is the longest
    pause between two acks from the last one before the kill to the first one the new leader
    gave (the old leader's last answers may still arrive just after the kill)."""
    kills = cfg["failover_kills"]
    topic = "c-failover"
    name = (f"cluster: failover, the leader of an RF=3 partition (min.insync.replicas=2) killed "
            f"{kills} times under idempotent acks=all writes at 1 000 rec/s")

    def run():
        create_topic(args, cl, topic, 1, 3, MIN_ISR_2)
        cmd = [args.benchtool, "acks", "-b", cl.bootstrap, "-t", topic, "-r", "1000"]
        # A file, not a pipe: librdkafka logs every refused connection while a node is down.
        err_path = os.path.join(args.workdir, "acks.stderr")
        with open(err_path, "w") as errf:
            p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errf, text=True,
                                 cwd=args.workdir)
        LIVE.add(p)
        acks, summary = [], []  # ack times on CLOCK_MONOTONIC, which time.monotonic() reads

        def read():
            for line in p.stdout:
                if line[0].isdigit():
                    acks.append(int(line) / 1e6)
                else:
                    summary.append(line.strip())
        reader = threading.Thread(target=read, daemon=True)
        reader.start()

        def acked_after(t):
            if p.poll() is not None:
                raise CaseError(f"gregor-benchtool acks exited {p.returncode}: "
                                f"{tail('', open(err_path).read())}")
            return acks and acks[-1] > t

        def in_sync():
            view = cl.partition(topic)
            return view and view[1] == (1, 2, 3) and acked_after(time.monotonic() - 0.05) \
                and view[0]

        gaps, moved, controllers = [], [], []
        try:
            for i in range(kills):
                leader = wait_for(f"kill {i + 1}: 3 replicas in sync and acks coming", in_sync, 60)
                survivor = next(k for k in cl.nodes if k != leader)
                # A leader that is also the active controller is fenced only after the next
                # controller's election (and a full session): count those kills.
                controller = (metadata(cl.nodes[survivor].port) or (None, None))[1]
                controllers.append(controller == leader)
                t_kill = time.monotonic()
                cl.nodes[leader].kill()
                wait_for(f"kill {i + 1}: a new leader", lambda: (cl.partition(
                    topic, [survivor]) or (leader,))[0] not in (-1, leader), 60)
                t_moved = time.monotonic()
                wait_for(f"kill {i + 1}: an ack from the new leader", lambda: acked_after(t_moved),
                         60)
                around = acks[bisect.bisect_right(acks, t_kill) - 1:]
                gaps.append(max(b - a for a, b in zip(around, around[1:])))
                moved.append(t_moved - t_kill)
                role = ", the controller" if controllers[-1] else ""
                log(f"    kill {i + 1} (node {leader}{role}): {gaps[-1]:.3f} s without acks, "
                    f"new leader seen {moved[-1]:.3f} s after")
                cl.nodes[leader].start()
        finally:
            p.send_signal(signal.SIGTERM)  # the tool stops producing, flushes and sums up
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            LIVE.discard(p)
            reader.join()
            p.stdout.close()
        if p.returncode != 0:
            raise CaseError(f"gregor-benchtool acks exited {p.returncode} ({' '.join(summary)}): "
                            f"{tail('', open(err_path).read())}")
        p50, p99 = nearest_rank(gaps, 0.5), nearest_rank(gaps, 0.99)
        R.add("cluster", name, f"longest pause between acks p50 {p50:.2f} s, p99 {p99:.2f} s, "
              f"max {max(gaps):.2f} s; new leader in Metadata p50 {nearest_rank(moved, 0.5):.2f} s "
              f"after the kill; {sum(controllers)} of {kills} killed leaders were the active "
              f"controller ({' '.join(summary)})", p99, kind="lower",
              target="p99 < 2 s (broker.session.timeout.ms=2000, heartbeat 200 ms)",
              target_ok=p99 < 2, gaps=gaps, moved=moved, controller_killed=controllers)
    case(R, "cluster", name)(run)


def run_all(args, cfg, R):
    sampler = RssSampler()
    sampler.start()
    only = set(args.only)
    scale = cfg["timeout_scale"]

    # --- start-up, fresh data directory
    if "startup" in only:
        def fresh():
            times = []
            for i in range(cfg["fresh_starts"]):
                d = new_datadir(args, f"fresh-start-{i}")
                b = new_broker(args, d, label=f"fresh-start-{i}")
                try:
                    times.append(b.start())
                finally:
                    b.stop()
                    drop_datadir(d)
            med = statistics.median(times)
            R.add("startup", f"start-up, fresh data dir (median of {len(times)})",
                  f"{ms(med)} (min {ms(min(times))}, max {ms(max(times))})", med, kind="lower",
                  ref=KAFKA["start_fresh"], target="< 20 ms", target_ok=med < 20, all=times)
        case(R, "startup", "start-up, fresh data dir")(fresh)

    # --- broker 1: produce, latency, 1000 partitions
    headline_warm = None
    if only & {"startup", "produce", "latency", "partitions"}:
        d1 = new_datadir(args, "broker1")
        b1 = new_broker(args, d1, label="broker1")
        try:
            b1.start()
            sampler.broker = b1
            time.sleep(1.0)
            idle = b1.rss_mb()
            if "startup" in only:
                R.add("memory", "RSS idle (fresh broker, 1 s after start)", f"{idle:.1f} MB", idle,
                      kind="lower", ref=KAFKA["rss_idle"], target="< 20 MB",
                      target_ok=idle < 20)

            if "produce" in only or "latency" in only:
                topic = "headline"
                n = cfg["headline_count"]
                base = "produce 100 B, 1 part, acks=all, none"

                def cold():
                    create_topic(args, b1, topic, 1)
                    w0 = b1.write_bytes()
                    sampler.active = True
                    res = produce(args, b1, topic, 100, n)
                    sampler.active = False
                    w1 = b1.settle(cfg["settle_case"]) if cfg["settle_case"] else b1.write_bytes()
                    disk = (w1 - w0) / res["bytes"]
                    ref = KAFKA["cold"]
                    R.add("produce", f"{base}: cold (first run, fresh topic)", thr(res, disk),
                          res["rec_s"], ref=ref, target=f">= {1.5 * ref[0] / 1e6:.2f} M rec/s",
                          target_ok=res["rec_s"] >= 1.5 * ref[0], mb_s=res["mb_s"], disk=disk,
                          raw=res)
                case(R, "produce", f"{base}: cold")(cold)

                def warm():
                    runs = []
                    for i in range(cfg["warm_runs"]):
                        sampler.active = True
                        runs.append(produce(args, b1, topic, 100, n, seed=2 + i))
                        sampler.active = False
                        if cfg["settle_case"]:
                            b1.settle(cfg["settle_case"])
                    best = sorted(runs, key=lambda r: r["rec_s"])[len(runs) // 2]
                    ref = KAFKA["warm"]
                    label = f"median of {len(runs)}" if len(runs) > 1 else "1 run"
                    R.add("produce", f"{base}: warm ({label})", thr(best), best["rec_s"],
                          ref=ref, target=f">= {1.5 * ref[0] / 1e6:.2f} M rec/s",
                          target_ok=best["rec_s"] >= 1.5 * ref[0], mb_s=best["mb_s"],
                          runs=[r["rec_s"] for r in runs], raw=best)
                    return best["rec_s"]
                headline_warm = case(R, "produce", f"{base}: warm")(warm)

            if "produce" in only:
                produce_matrix(args, R, b1, cfg, False, sampler)

            if "latency" in only:
                def lat(name, topic, rate, secs, ref_rows):
                    def run():
                        create_topic(args, b1, topic, 1)
                        b1.settle(cfg["settle_max"])  # no flush/compaction from earlier cases
                        sampler.active = True
                        r = measured_e2e(args, b1, topic, 1, rate, secs, cfg["e2e_warmup"])
                        sampler.active = False
                        p99, p999 = r["p99_us"] / 1000, r["p999_us"] / 1000
                        txt = e2e_text(r)
                        if ref_rows:
                            R.add("latency", name, txt, p99, kind="lower", target="p99 < 1 ms, p99.9 < 5 ms",
                                  target_ok=p99 < 1 and p999 < 5, e2e=r)
                            R.add("latency", name.replace("percentiles", "avg"),
                                  ms(r["avg_us"] / 1000), r["avg_us"] / 1000, kind="lower",
                                  ref=KAFKA["e2e_avg"])
                            R.add("latency", name.replace("percentiles", "max"),
                                  ms(r["max_us"] / 1000), r["max_us"] / 1000, kind="lower",
                                  ref=KAFKA["e2e_max"])
                        else:
                            R.add("latency", name, txt, p99, kind="lower", e2e=r,
                                  key="e2e latency at half max")
                    case(R, "latency", name)(run)

                lat("e2e latency percentiles at 1 000 rec/s (100 B, acks=all, linger 0)", "lat-1000",
                    1000, cfg["e2e_secs"], True)
                if headline_warm:
                    half = headline_warm / 2
                    lat(f"e2e latency percentiles at half max = {krate(half)} (100 B, acks=all, linger 0)",
                        "lat-half", half, cfg["half_secs"], False)
                else:
                    R.fail("latency", "e2e latency at half max", CaseError(
                        "no warm headline throughput to halve (run the produce section)"))

            if "partitions" in only:
                def p1000():
                    t0 = time.monotonic()
                    create_topic(args, b1, "p1000", 1000)
                    create_ms = (time.monotonic() - t0) * 1000
                    n = cfg["p1000_count"]
                    cmds = []
                    for seed in (1, 2):
                        cmds.append(perf(args) + ["-P", "-b", b1.bootstrap, "-t", "p1000", "-s", "100",
                                                  "-c", str(n // 2), "-a", "-1", "-R", str(seed), "-q",
                                                  "-X", "sticky.partitioning.linger.ms=0"]
                                    + PRODUCE_SETTINGS)
                    sampler.active = True
                    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                              text=True, cwd=args.workdir) for c in cmds]
                    LIVE.update(procs)
                    rates, mbs = [], []
                    for c, p in zip(cmds, procs):
                        try:
                            out, err = p.communicate(timeout=120 * scale)
                        except subprocess.TimeoutExpired:
                            for q in procs:
                                q.kill()
                                q.communicate()
                                LIVE.discard(q)
                            raise CaseError(f"timed out: {' '.join(c)}")
                        LIVE.discard(p)
                        m = PROD_RE.findall(out)
                        if p.returncode != 0 or not m or int(m[-1][2]) != n // 2:
                            raise CaseError(f"rdkafka_performance exited {p.returncode}: "
                                            f"{' '.join(c)}\n{tail(out, err)}")
                        rates.append(float(m[-1][6]))
                        mbs.append(float(m[-1][7]))
                    sampler.active = False
                    total = sum(rates)
                    R.add("partitions", "1 000 partitions: produce 100 B, 2 producers, acks=all, "
                          "random partition per record",
                          f"{krate(total)}, {sum(mbs):.1f} MB/s (sum of 2; create {create_ms:.0f} ms)",
                          total, mb_s=sum(mbs), rates=rates, create_ms=create_ms)
                    b1.settle(cfg["settle_max"])
                    sampler.active = True
                    r = measured_e2e(args, b1, "p1000", 1000, 1000, cfg["p1000_e2e_secs"],
                                     cfg["e2e_warmup"])
                    sampler.active = False
                    R.add("partitions", "1 000 partitions: e2e latency at 1 000 rec/s, round-robin",
                          f"p50 {ms(r['p50_us'] / 1000)}, p99 {ms(r['p99_us'] / 1000)}, "
                          f"p99.9 {ms(r['p999_us'] / 1000)}, max {ms(r['max_us'] / 1000)}",
                          r["p99_us"] / 1000, kind="lower", e2e=r)
                case(R, "partitions", "1 000 partitions")(p1000)

            sampler.active = False
            time.sleep(2.0)
            after = b1.rss_mb()
            R.add("memory", "RSS after the load above (2 s idle)", f"{after:.1f} MB "
                  f"(peak VmHWM {b1.hwm_mb():.1f} MB)", after, kind="lower")
        except Exception as e:
            R.fail("broker1", "broker for produce/latency/partitions", f"{type(e).__name__}: {e}")
        finally:
            sampler.broker = None
            b1.stop()
            drop_datadir(d1)

    # --- broker 2: 1 GiB consume, restart over it, 4-member group
    if only & {"consume", "startup", "listoffsets"}:
        d2 = new_datadir(args, "broker2")
        extra = ["--group-initial-rebalance-delay-ms", str(cfg["group_delay_ms"])]
        b2 = new_broker(args, d2, extra, label="broker2")
        try:
            b2.start()
            sampler.broker = b2
            fill_n = cfg["fill_bytes"] // 100
            gib = cfg["fill_bytes"] / (1 << 30)
            size_label = f"{gib:g} GiB" if gib >= 1 else f"{cfg['fill_bytes'] // MiB} MiB"

            def fill():
                create_topic(args, b2, "c1", 1)
                w0 = b2.write_bytes()
                sampler.active = True
                res = produce(args, b2, "c1", 100, fill_n, partition=0)
                sampler.active = False
                w1 = b2.settle(cfg["settle_max"])
                disk = (w1 - w0) / res["bytes"]
                R.add("disk", f"disk bytes written per payload byte ({size_label} of 100 B, "
                      "after flush settles)", f"{disk:.2f} B/B ({(w1 - w0) / MiB:.0f} MiB written "
                      f"for {res['bytes'] / MiB:.0f} MiB; fill ran at {krate(res['rec_s'])})",
                      disk, kind="lower", fill=res)
                return True
            filled = case(R, "disk", "fill consume topic")(fill)

            if filled and "listoffsets" in only:
                name = f"ListOffsets by timestamp on a {size_label} partition (a timestamp in the middle)"

                def by_timestamp():
                    times = []
                    with connect(b2.port) as sock:
                        middle = batch_max_timestamp(sock, "c1", 0, fill_n // 2)
                        for _ in range(cfg["listoffsets_queries"]):
                            t0 = time.perf_counter()
                            [(error, _, offset)] = list_offsets(sock, "c1", [0], middle)
                            times.append((time.perf_counter() - t0) * 1000)
                            if error or offset < 0:
                                raise CaseError(f"ListOffsets: error {error}, offset {offset}")
                    p99, med = nearest_rank(times, 0.99), statistics.median(times)
                    R.add("listoffsets", name, f"median {ms(med)}, p99 {ms(p99)} ({len(times)} "
                          f"queries; offset {offset} of {fill_n})", med, kind="lower", p99=p99,
                          all=times)
                case(R, "listoffsets", name)(by_timestamp)

            if filled and "consume" in only:
                def single():
                    cmd = consume_cmd(args, b2, "c1", fill_n, partitions=[0])
                    sampler.active = True
                    meter = CpuMeter(b2)
                    rc, out, err = run_client(args, cmd, 120 * scale + fill_n / 2e5)
                    sampler.active = False
                    res = parse_consume(cmd, rc, out, err)
                    res["client_cores"], res["broker_cores"] = meter.cores()
                    if res["records"] != fill_n:
                        raise CaseError(f"consumed {res['records']} of {fill_n}")
                    ref = KAFKA["consume"]
                    R.add("consume", f"consume {size_label} from beginning, 1 partition, 1 consumer",
                          thr(res), res["rec_s"], ref=ref, target=f">= {1.5 * ref[0] / 1e6:.1f} M rec/s",
                          target_ok=res["rec_s"] >= 1.5 * ref[0], mb_s=res["mb_s"], raw=res)
                case(R, "consume", "consume 1 partition")(single)

            if filled and "startup" in only:
                def restart():
                    data_mb = sum(os.path.getsize(os.path.join(dp, f))
                                  for dp, _, fs in os.walk(d2) for f in fs) / MiB
                    sampler.broker = None
                    down = b2.stop()
                    times = []
                    for i in range(cfg["restarts"]):
                        times.append(b2.start())
                        if i + 1 < cfg["restarts"]:
                            b2.stop()
                    sampler.broker = b2
                    first = times[0]
                    more = f"; restarts after it: {', '.join(ms(t) for t in times[1:])}" \
                        if len(times) > 1 else ""
                    R.add("startup", f"start-up over {size_label} of data ({data_mb:.0f} MiB on "
                          "disk), first restart after a clean stop",
                          f"{ms(first)} (clean stop took {ms(down)}{more})", first, kind="lower",
                          ref=KAFKA["start_1g"], target="< 200 ms", target_ok=first < 200,
                          all=times)
                    time.sleep(1.0)
                    r = b2.rss_mb()
                    R.add("memory", f"RSS idle after restart over {size_label}", f"{r:.1f} MB", r,
                          kind="lower", ref=KAFKA["rss_idle"], target="< 20 MB", target_ok=r < 20)
                case(R, "startup", "restart over data")(restart)

            if "consume" in only:
                def group():
                    n = cfg["group_bytes"] // 100 // 16 * 16
                    create_topic(args, b2, "g16", 16)
                    for p in range(16):  # equal partitions: every member has n/4 to read
                        produce(args, b2, "g16", 100, n // 16, acks="1", partition=p, seed=p + 1)
                    b2.settle(cfg["settle_max"])
                    gid = "bench-group"
                    cmds = [consume_cmd(args, b2, "g16", n // 4, partitions=[0, 1, 2, 3], group=gid)
                            for _ in range(4)]
                    sampler.active = True
                    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                              text=True, cwd=args.workdir) for c in cmds]
                    LIVE.update(procs)
                    results = []
                    for c, p in zip(cmds, procs):
                        try:
                            out, err = p.communicate(timeout=120 * scale + n / 2e5)
                        except subprocess.TimeoutExpired:
                            for q in procs:
                                if q.poll() is None:
                                    q.kill()
                                q.communicate()
                                LIVE.discard(q)
                            raise CaseError(f"group member timed out: {' '.join(c)}")
                        LIVE.discard(p)
                        results.append(parse_consume(c, p.returncode, out, err))
                    sampler.active = False
                    total = sum(r["rec_s"] for r in results)
                    mbs = sum(r["mb_s"] for r in results)
                    got = sum(r["records"] for r in results)
                    gb = cfg["group_bytes"]
                    gl = f"{gb / (1 << 30):g} GiB" if gb >= (1 << 30) else f"{gb // MiB} MiB"
                    R.add("consume", f"consume {gl} from beginning, 16 partitions, 4-member group "
                          "(sum of member rates)",
                          f"{krate(total)}, {mbs:.1f} MB/s ({got} of {n} records read: a member "
                          "stops after n/4 records or an EOF on 4 partitions)", total, mb_s=mbs,
                          members=[r["rec_s"] for r in results])
                case(R, "consume", "4-member group")(group)
        except Exception as e:
            R.fail("broker2", "broker for consume/restart", f"{type(e).__name__}: {e}")
        finally:
            sampler.broker = None
            b2.stop()
            drop_datadir(d2)

    if "startup" in only or "produce" in only or "consume" in only:
        R.data["rss_peak_under_load_mb"] = sampler.peak
        if sampler.peak:
            R.add("memory", "RSS under load (peak VmRSS, sampled every 100 ms)",
                  f"{sampler.peak:.1f} MB", sampler.peak, kind="lower")

    if "control" in only:
        control_plane(args, R, cfg)
    if "retention" in only:
        retention_pass(args, R, cfg)

    # --- broker 3: the produce matrix again with fsync on
    if "fsync" in only:
        if not args.flush_flag:
            for size in ("100 B", "1 KiB"):
                R.rows.append(dict(section="fsync", case=f"produce {size}, all partitions/acks/"
                                   "codecs, fsync on", gregor="n/a (flag missing)", value=None,
                                   kind="higher", ref="", ratio=None, target="", ok=None))
                log(progress(R.rows[-1]))
        else:
            d3 = new_datadir(args, "broker3")
            b3 = new_broker(args, d3, ["--log-flush-interval-messages", "1"], label="broker3")
            try:
                b3.start()
                produce_matrix(args, R, b3, cfg, True, sampler)
            except Exception as e:
                R.fail("fsync", "broker with --log-flush-interval-messages 1",
                       f"{type(e).__name__}: {e}")
            finally:
                b3.stop()
                drop_datadir(d3)

    if "transactions" in only:
        transaction_cases(args, R, cfg)
    if "security" in only:
        security_cases(args, R, cfg)
    if "cluster" in only and not args.kafka:  # Gregor's cluster: the rows say n/a for Kafka
        cluster_cases(args, R, cfg)
    sampler.stopped = True


# ------------------------------------------------------------------ output

def git_info():
    def git(*a):
        try:
            return subprocess.run(["git", "-C", ROOT] + list(a), capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except Exception:
            return ""
    rev = git("rev-parse", "--short", "HEAD")
    dirty = git("status", "--porcelain", "--", "src", "Cargo.toml", "Cargo.lock")
    return rev + ("+dirty src" if dirty else "")


def bin_info(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    mtime = datetime.datetime.fromtimestamp(os.path.getmtime(path), datetime.timezone.utc)
    return f"sha256 {h.hexdigest()[:12]}, built {mtime:%Y-%m-%d %H:%M} UTC"


# Why a Gregor row has no Kafka measurement with `--against kafka`, by section.
NOT_FOR_KAFKA = {"cluster": "n/a for Kafka (Gregor's 3-node cluster; Kafka runs one node here)",
                 "control": "n/a for Kafka (--rocksdb-memtable-bytes is a RocksDB setting)"}


def paired_rows(G, K):
    """Gregor's rows with Kafka's row of the same case beside each (matched by `key`, else the
    case name) and "how many times better Gregor is"; then Kafka's rows Gregor lacks."""
    def key(r):
        return r["section"], r.get("key") or r["case"]
    kafka = {}
    for r in K.rows:
        kafka.setdefault(key(r), []).append(r)
    out = []
    for g in G.rows:
        k = kafka.get(key(g), []).pop(0) if kafka.get(key(g)) else None
        ratio = None
        if k and g["value"] and k["value"]:
            ratio = g["value"] / k["value"] if g["kind"] == "higher" else k["value"] / g["value"]
        out.append(dict(g, kafka=k["gregor"] if k else NOT_FOR_KAFKA.get(g["section"],
                                                                          "n/a for Kafka"),
                        kafka_value=k["value"] if k else None, vs_kafka=ratio))
    for rows in kafka.values():
        out += [dict(r, gregor="", kafka=r["gregor"], kafka_value=r["value"], vs_kafka=None,
                     ref="", ratio=None, target="", ok=None) for r in rows]
    return out


def markdown(args, R, meta, K=None):
    out = [f"# Gregor benchmark ({meta['mode']})", ""]
    out.append(f"{meta['date']} · commit {meta['commit']} · gregor {meta['binary']} · "
               f"librdkafka {meta['librdkafka']} · {meta['cpus']} CPUs · "
               f"load avg before/after {meta['load_before']} / {meta['load_after']} · "
               f"wall time {meta['wall_s']:.0f} s")
    out.append("")
    settle = (f"until the broker's writes stop (at most {MODES[meta['mode']]['settle_case']} s "
              "after the case), so RocksDB's flush of the case is counted"
              if MODES[meta["mode"]]["settle_case"] else
              "during the case only (RocksDB flushes asynchronously, so a case can carry some of "
              "the previous case's flush)")
    reference = ("Kafka 4.1 column: static reference numbers from the issue, not measured here. "
                 "\"vs Kafka\": how many times better (>1) or worse (<1) Gregor is. "
                 if K is None else "")
    out.append(reference + "MB = 10^6 bytes. "
               "Produce: `rdkafka_performance -P -s SIZE -c COUNT -a ACKS [-z lz4] -X linger.ms=5 "
               f"-X batch.size=1000000`, {meta['repeat']} run(s) per row on a fresh topic (median; the warm headline row: "
               "median of the runs after the cold one); part = partitions; lz4 rows compress "
               "rdkafka_performance's repeated text payload, so they store very little. "
               "disk B/B: the broker's "
               f"write_bytes (/proc/PID/io) {settle}, divided by the payload bytes produced. "
               "Consume: `rdkafka_performance -C`/`-G`, rate from the first record to the last. "
               "End-to-end latency: gregor-benchtool (bench/benchtool.c, same librdkafka), a "
               "paced producer (acks=all, linger.ms=0) and a consumer in one process, per-message "
               f"monotonic timestamps, the first {MODES[meta['mode']]['e2e_warmup']:g} s left out, after the broker's writes "
               "have settled. Start-up: exec to the first ApiVersions+Metadata answer on a raw "
               "socket (includes ~1-3 ms of process spawn). Control plane: raw ApiVersions v0 "
               "round trips every 2 ms on one connection and Heartbeat v0 every 10 ms from a group "
               "member that joined alone on another, timed by the Python driver (nearest rank), "
               f"idle for {MODES[meta['mode']]['control_idle_secs']} s and during "
               f"`rdkafka_performance -P -s 1024 -c {MODES[meta['mode']]['flood_count']}` (its "
               "first 0.3 s left out); stalls are the \"Stopping/Stalling writes\" lines of "
               "RocksDB's LOG. ListOffsets: raw v1 requests one after another on one connection, "
               "for the max timestamp of the batch holding the middle offset. Retention pass: "
               "AlterConfigs sets retention.ms=1 on a topic without retention; raw "
               "ListOffsets(earliest) of all partitions every 5 ms sees the log starts move. "
               "Cluster: three broker,controller nodes on 127.0.0.1 with "
               "broker.session.timeout.ms=2000 and broker.heartbeat.interval.ms=200 (the fault "
               "tests' settings); produce and e2e as above, to 1-partition topics of RF=1 or RF=3 "
               "with min.insync.replicas=2, CPU and disk summed over the nodes; failover: "
               "gregor-benchtool acks (idempotent, acks=all, 1 000 rec/s) while the partition's "
               "leader is killed with SIGKILL and restarted once the ISR is full again, the "
               "longest pause between acks around each kill. "
               "Transactions: gregor-benchtool txn, one transactional producer committing "
               "1 000-record transactions one after another (commit latency: the "
               "commit_transaction() call), beside the same records from an idempotent producer; "
               "consume: rdkafka_performance -C over the transactional topic with each isolation "
               "level. "
               "Other processes on the machine (load average above) make single runs noisy.")
    out.append("")
    if K is None:
        out.append("| case | Gregor | Kafka 4.1 (reference) | vs Kafka | target | met |")
        out.append("|---|---|---|---|---|---|")
        for r in R.rows:
            ok = {True: "yes", False: "**no**", None: ""}[r["ok"]]
            ratio = f"{r['ratio']:.2f}x" if r["ratio"] else ""
            out.append(f"| {r['case']} | {r['gregor']} | {r['ref']} | {ratio} | {r['target']} "
                       f"| {ok} |")
    else:
        out.append(f"Kafka column: {meta['kafka']}, measured here by the same cases and clients, "
                   "each case run on Gregor and then on Kafka before the next case. \"Gregor vs "
                   "Kafka\": how many times better Gregor is (>1) or worse (<1). The reference "
                   "column is history: the issue's static Kafka numbers, not measured here.")
        out.append("")
        out.append("| case | Gregor | Kafka 4.1 (measured) | Gregor vs Kafka | "
                   "Kafka 4.1 reference (issue) | target | met |")
        out.append("|---|---|---|---|---|---|---|")
        for r in paired_rows(R, K):
            ok = {True: "yes", False: "**no**", None: ""}[r["ok"]]
            ratio = f"{r['vs_kafka']:.2f}x" if r["vs_kafka"] else ""
            out.append(f"| {r['case']} | {r['gregor']} | {r['kafka']} | {ratio} | {r['ref']} "
                       f"| {r['target']} | {ok} |")
    failures = [(f, "") for f in R.failures] + [(f, " (Kafka)") for f in (K.failures if K else [])]
    if failures:
        out += ["", "## Failures", ""]
        for f, lane in failures:
            out += [f"- **{f['case']}{lane}**:", "", "```", f["error"], "```"]
    return "\n".join(out) + "\n"


def short_label(case):
    for a, b in (("produce ", ""), (", fsync off", ""), (" (group commit)", ""),
                 ("from beginning, ", ""), (" (sum of member rates)", ""), ("partitions", "parts"),
                 ("partition", "part"), (" (first run, fresh topic)", "")):
        case = case.replace(a, b)
    return case if len(case) <= 64 else case[:61] + "..."


def chart(path, R, meta):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    thr_rows = [r for r in R.rows if r.get("mb_s") is not None and r["value"]]
    lat_rows = [r for r in R.rows if r.get("e2e")]
    start_rows = [r for r in R.rows if r["section"] == "startup" and r["value"]]
    rss_rows = [r for r in R.rows if r["section"] == "memory" and r["value"]]
    h1 = max(3.0, 0.22 * len(thr_rows) + 1.2)
    fig = plt.figure(figsize=(15, h1 + 4.5))
    gs = fig.add_gridspec(2, 3, height_ratios=[h1, 4.0], width_ratios=[1.3, 1, 1])

    ax = fig.add_subplot(gs[0, :])
    rows = thr_rows[::-1]
    colors = {"fsync": "#c0504d", "consume": "#9bbb59", "cluster": "#f79646",
              "security": "#4bacc6"}
    ax.barh(range(len(rows)), [r["mb_s"] for r in rows],
            color=[colors.get(r["section"], "#4f81bd") for r in rows])
    for i, r in enumerate(rows):
        ax.text(r["mb_s"], i, f"  {krate(r['value'])}", va="center", fontsize=7)
        if r.get("ref_value"):
            size = 1024 if "1 KiB" in r["case"] else 100
            ax.plot([r["ref_value"] * size / 1e6], [i], marker="|", color="k", markersize=11,
                    markeredgewidth=2)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([short_label(r["case"]) for r in rows], fontsize=7)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_xlabel("MB/s (10^6 B/s)   blue: produce, red: produce with fsync on, green: consume, "
                  "orange: 3-node cluster, teal: PLAINTEXT beside SASL_SSL;   "
                  "black tick: Kafka 4.1 reference")
    ax.set_title(f"Gregor throughput, {meta['mode']} run {meta['date']} ({meta['commit']})")

    ax = fig.add_subplot(gs[1, 0])
    pcts = [("p50_us", "p50"), ("p90_us", "p90"), ("p99_us", "p99"), ("p999_us", "p99.9"),
            ("max_us", "max")]
    width = 0.8 / max(1, len(lat_rows))
    for j, r in enumerate(lat_rows):
        xs = [i + j * width for i in range(len(pcts))]
        ax.bar(xs, [max(r["e2e"][k], 1) / 1000 for k, _ in pcts], width,
               label=short_label(r["case"].replace("e2e latency percentiles ", "")))
    ax.set_xticks([i + width * (len(lat_rows) - 1) / 2 for i in range(len(pcts))])
    ax.set_xticklabels([p for _, p in pcts])
    ax.set_yscale("log")
    ax.axhline(1, color="g", ls="--", lw=0.8, label="target p99 < 1 ms (at 1 000 rec/s)")
    ax.axhline(5, color="orange", ls="--", lw=0.8, label="target p99.9 < 5 ms")
    ax.set_ylabel("end-to-end latency, ms (log)")
    ax.set_title("end-to-end latency percentiles", fontsize=10)
    ax.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.1))

    for col, rows, unit, title, targets in (
            (1, start_rows, "ms", "start-up: exec to first Metadata answer", (20, 200)),
            (2, rss_rows, "MB", "broker RSS (VmRSS)", (20,))):
        ax = fig.add_subplot(gs[1, col])
        for t in targets:
            ax.axvline(t, color="g", ls="--", lw=0.8)
        ax.barh(range(len(rows)), [r["value"] for r in rows], color="#8064a2")
        for i, r in enumerate(rows):
            ax.text(r["value"], i, f" {r['value']:.1f} {unit}", va="center", fontsize=7)
            if r.get("ref_value"):
                ax.plot([r["ref_value"]], [i], marker="|", color="k", markersize=11,
                        markeredgewidth=2)
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels([short_label(r["case"].split(" (")[0]) for r in rows], fontsize=7)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel(f"{unit}, log; |: Kafka 4.1; green: target "
                      f"({', '.join(str(t) for t in targets)} {unit})", fontsize=7)
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run_against_kafka(args, cfg):
    """Runs every case on Gregor and on Kafka, alternately (Turns); returns both lanes' rows."""
    turns = Turns(["gregor", "kafka"])
    lanes = {}
    for lane in turns.lanes:
        la = copy.copy(args)
        la.kafka = lane == "kafka"
        if la.kafka:  # its own data dirs and logs beside Gregor's
            la.workdir = os.path.join(args.workdir, "kafka")
            os.makedirs(la.workdir)
            la.flush_flag = True
        lanes[lane] = (la, Results(lane, turns))

    def run(lane):
        la, R = lanes[lane]
        turns.wait(lane)
        try:
            run_all(la, cfg, R)
        except Exception as e:
            R.fail("-", f"{lane} lane", f"{type(e).__name__}: {e}")
        finally:
            turns.finish(lane)
    threads = [threading.Thread(target=run, args=(lane,), daemon=True) for lane in lanes]
    for t in threads:
        t.start()
    for t in threads:
        while t.is_alive():  # a timed join: Ctrl-C reaches the main thread
            t.join(0.5)
    return lanes["gregor"][1], lanes["kafka"][1]


def main():
    ap = argparse.ArgumentParser(prog="scripts/bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="small counts: every case, under a minute (used by scripts/test)")
    ap.add_argument("--only", default=",".join(SECTIONS),
                    help=f"comma-separated subset of: {', '.join(SECTIONS)}")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (broker logs)")
    ap.add_argument("--against", choices=["kafka"],
                    help="also run every case on Apache Kafka 4.1 (one KRaft node), alternating "
                         "with Gregor case by case, and print both with their ratio")
    ap.add_argument("--repeat", type=int, default=1, metavar="N",
                    help="run each produce-matrix case N times on its topic and report the "
                         "median (default 1)")
    args = ap.parse_args()
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    bad = set(args.only) - set(SECTIONS)
    if bad:
        ap.error(f"unknown section(s): {', '.join(sorted(bad))}")
    args.kafka = False  # this lane's broker: Gregor (run_against_kafka adds a Kafka lane)
    if args.against:
        cp_file = os.environ.get("KAFKA_CLASSPATH_FILE")
        if not cp_file or not os.path.exists(cp_file):
            ap.error("no Kafka classpath: run --against kafka through scripts/bench")
        with open(cp_file) as f:
            args.kafka_classpath = f.read().strip()
    args.gregor_bin = os.environ.get("GREGOR_BIN")
    args.rdkafka_performance = os.environ.get("RDKAFKA_PERFORMANCE")
    args.benchtool = os.environ.get("GREGOR_BENCHTOOL")
    for k in ("gregor_bin", "rdkafka_performance", "benchtool"):
        if not getattr(args, k) or not os.access(getattr(args, k), os.X_OK):
            ap.error(f"{k} not found: run through scripts/bench")
    mode = "quick" if args.quick else "full"
    cfg = MODES[mode]
    args.workdir = tempfile.mkdtemp(prefix="gregor-bench-")
    # Run a private copy: a rebuild of the release binary during the run must not change it.
    private = os.path.join(args.workdir, "gregor")
    shutil.copy2(args.gregor_bin, private)
    args.gregor_bin_source, args.gregor_bin = args.gregor_bin, private
    helptext = subprocess.run([args.gregor_bin, "--help"], capture_output=True, text=True).stdout
    args.flush_flag = "--log-flush-interval-messages" in helptext

    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)

    t0 = time.monotonic()
    meta = dict(mode=mode, repeat=args.repeat, date=datetime.datetime.now(datetime.timezone.utc)
                .strftime("%Y-%m-%d %H:%M UTC"), commit=git_info(),
                binary=bin_info(args.gregor_bin), cpus=os.cpu_count(),
                librdkafka=subprocess.run([args.benchtool, "version"], capture_output=True,
                                          text=True).stdout.strip()
                + f" (rdkafka-sys {os.environ.get('RDKAFKA_SYS_VERSION', '?')})",
                load_before=open("/proc/loadavg").read().split()[0])
    if args.against:
        java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr
        meta["kafka"] = (f"Apache Kafka {os.environ.get('KAFKA_VERSION', '?')} (jars from Maven "
                         f"Central), one KRaft broker,controller node, java "
                         f"{' '.join(KAFKA_JVM[:2])}, {java.splitlines()[0] if java else 'java ?'}")
    log(f"gregor-bench {mode}: broker {args.gregor_bin_source} ({meta['binary']}), "
        f"work dir {args.workdir}")
    R, K = Results(), None
    interrupted = False
    try:
        if args.against:
            R, K = run_against_kafka(args, cfg)
        else:
            run_all(args, cfg, R)
    except KeyboardInterrupt:
        interrupted = True
        R.failures.append(dict(section="-", case="interrupted", error="KeyboardInterrupt"))
    finally:
        with LIVE_LOCK:
            STOPPING.set()
        for p in list(LIVE):  # only what this run started, by PID
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        if not args.keep:
            shutil.rmtree(args.workdir, ignore_errors=True)
    meta["wall_s"] = time.monotonic() - t0
    meta["load_after"] = open("/proc/loadavg").read().split()[0]

    os.makedirs(RESULTS, exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    complete = set(args.only) == set(SECTIONS)
    if args.against:
        mode += "-vs-kafka"  # its own files and latest-*
    name = f"{stamp}-{mode}" if complete else f"{stamp}-{mode}-{'+'.join(args.only)}"
    base = os.path.join(RESULTS, name)
    md = markdown(args, R, meta, K)
    with open(base + ".md", "w") as f:
        f.write(md)
    with open(base + ".json", "w") as f:
        extra = dict(kafka_rows=K.rows, kafka_failures=K.failures) if K else {}
        json.dump(dict(meta=meta, rows=R.rows, failures=R.failures, data=R.data, **extra), f,
                  indent=1)
    written = [base + ".md", base + ".json"]
    try:
        chart(base + ".png", R, meta)
        written.append(base + ".png")
    except Exception as e:
        R.failures.append(dict(section="-", case="chart", error=f"{type(e).__name__}: {e}"))
        log(f"chart failed: {e}")
    for path in written if complete else []:  # a subset run leaves latest-* alone
        ext = os.path.splitext(path)[1]
        shutil.copyfile(path, os.path.join(RESULTS, f"latest-{mode}{ext}"))
    print(md, flush=True)
    log(f"wrote {', '.join(os.path.relpath(p, ROOT) for p in written)} "
        f"{f'(and bench/results/latest-{mode}.*) ' if complete else ''}in {meta['wall_s']:.0f} s")
    failed = len(R.failures) + len(K.failures if K else [])
    if failed or interrupted:
        log(f"{failed} case(s) failed")
        sys.exit(1)


if __name__ == "__main__":
    main()
