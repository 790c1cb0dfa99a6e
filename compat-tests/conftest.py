"""Shared fixtures and helpers for the Gregor real-client compatibility suite.

Each test module gets its own Gregor broker (``broker`` fixture, scope="module")
listening on a free port of 127.0.0.1 with a fresh temporary data directory.
The binary comes from ``$GREGOR_BIN`` (default:
``$HOME/.cache/gregor-target/release/gregor``).

Helpers that more than one test module needs live here (import them with
``from conftest import ...``) so that no code is duplicated across modules.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import itertools
import os
import re
import shutil
import signal
import random
import socket
import subprocess
import tempfile
import time
import uuid
from collections import defaultdict

import pytest

DEFAULT_GREGOR_BIN = os.path.join(
    os.path.expanduser("~"), ".cache", "gregor-target", "release", "gregor"
)

# The broker's node.id: Gregor's default, which the suite's brokers keep.
NODE_ID = 1

STARTUP_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
# Upper bound for any single client operation in the suite (seconds).
CLIENT_TIMEOUT_S = 20.0
LOG_TAIL_LINES = 60


# --------------------------------------------------------------------------
# Generic helpers
# --------------------------------------------------------------------------


def free_port(count: int = 1) -> int:
    """A TCP port on 127.0.0.1 that is free right now, with the ``count - 1`` after it.

    The ports lie below the kernel's ephemeral range, so a broker restarted on its port cannot
    find it taken by some client connection's source port in between.
    """
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            ephemeral = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral = 32768
    low, high = 10000, max(ephemeral, 11000) - count
    for _ in range(1000):
        base = random.randrange(low, high)
        if all(_bindable(base + i) for i in range(count)):
            return base
    raise RuntimeError(f"no {count} free consecutive ports in {low}-{high}")


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def recv_exactly(sock, n: int) -> bytes:
    """Read exactly ``n`` bytes from a socket; ConnectionError if it closes first."""
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("connection closed")
        data += chunk
    return data


def port_accepts(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_until(predicate, timeout: float = CLIENT_TIMEOUT_S, interval: float = 0.1,
               message="condition"):
    """Poll ``predicate`` until it returns a truthy value; return that value.

    Raises AssertionError (with ``message``, or what it returns if it is callable, so logs are
    read when the wait fails) once ``timeout`` seconds have passed.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            text = message() if callable(message) else message
            raise AssertionError(f"timed out after {timeout}s waiting for {text}")
        time.sleep(interval)


_topic_counter = itertools.count()


def unique_topic(prefix: str = "t") -> str:
    """A topic name that is unique within the test session (and across runs)."""
    return f"{prefix}-{next(_topic_counter)}-{uuid.uuid4().hex[:8]}"


def tail(path: str, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        return f"<cannot read {path}: {e}>"
    text = data.decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def assert_contiguous_offsets(placements, start=0):
    """``placements``: (partition, offset) pairs in send order, for one topic.

    Asserts that, per partition, offsets are gap-free, in send order, starting
    at ``start``; returns {partition: [offsets]}.
    """
    by_partition = defaultdict(list)
    for partition, offset in placements:
        by_partition[partition].append(offset)
    for partition, offsets in by_partition.items():
        assert offsets == list(range(start, start + len(offsets))), (
            f"partition {partition}: offsets not contiguous from {start}: {offsets[:20]}...")
    return dict(by_partition)


# --------------------------------------------------------------------------
# Broker process management
# --------------------------------------------------------------------------


class BrokerStartError(RuntimeError):
    pass


try:  # Linux: the broker gets SIGKILL if the test runner dies without cleaning up.
    _LIBC = ctypes.CDLL(None, use_errno=True)
    _PR_SET_PDEATHSIG = 1
except OSError:  # pragma: no cover
    _LIBC = None


def _die_with_parent():
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


_LIVE = set()  # brokers started and not yet stopped, for the atexit safety net


@atexit.register
def _kill_leftovers():
    for b in list(_LIVE):
        b.kill9()


class GregorBroker:
    """One Gregor broker process bound to 127.0.0.1:<port> with a temp data dir.

    ``listeners`` replaces the one PLAINTEXT listener on that port; its first listener must
    still be on ``port``, which start() waits for. ``env`` adds environment variables (such as
    RUST_LOG) to the broker's."""

    def __init__(self, binary: str, extra_args=(), port: int | None = None, listeners: str | None = None,
                 env: dict | None = None):
        self.binary = binary
        self.extra_args = list(extra_args)
        self.env = dict(env or {})
        self.port = port if port is not None else free_port()
        self.host = "127.0.0.1"
        self.listeners = listeners or f"PLAINTEXT://{self.host}:{self.port}"
        self.bootstrap = f"{self.host}:{self.port}"
        self.localhost_bootstrap = f"localhost:{self.port}"
        self.base_dir = tempfile.mkdtemp(prefix="gregor-compat-")
        self.data_dir = os.path.join(self.base_dir, "data")
        os.makedirs(self.data_dir)
        self.log_path = os.path.join(self.base_dir, "gregor.stderr.log")
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    # -- lifecycle ---------------------------------------------------------

    def command(self):
        return [
            self.binary,
            "--listeners", self.listeners,
            "--log-dirs", self.data_dir,
            "--num-partitions", "1",
            *self.extra_args,
        ]

    def start(self, timeout: float = STARTUP_TIMEOUT_S):
        if self.proc is not None and self.proc.poll() is None:
            raise BrokerStartError(f"broker already running (pid {self.proc.pid})")
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== start #{self.starts}: {' '.join(self.command())} =====\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                # GREGOR_* variables are broker settings: keep the developer's
                # shell from changing the broker under test.
                env={**{k: v for k, v in os.environ.items() if not k.startswith("GREGOR_")}, **self.env},
                stdout=log,
                stderr=log,
                start_new_session=True,  # Ctrl-C goes to pytest, whose teardown stops it
                preexec_fn=_die_with_parent,
            )
        _LIVE.add(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BrokerStartError(
                    f"gregor exited with code {self.proc.returncode} during startup\n"
                    f"command: {' '.join(self.command())}\n"
                    f"--- stderr tail ({self.log_path}) ---\n{self.log_tail()}"
                )
            if port_accepts(self.port):
                return self
            time.sleep(0.05)
        self._terminate()
        raise BrokerStartError(
            f"gregor did not accept TCP connections on {self.bootstrap} within {timeout}s\n"
            f"command: {' '.join(self.command())}\n"
            f"--- stderr tail ({self.log_path}) ---\n{self.log_tail()}"
        )

    def _terminate(self, sig=signal.SIGTERM, timeout: float = STOP_TIMEOUT_S):
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            try:
                os.kill(proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=timeout)
        _LIVE.discard(self)
        return proc.returncode

    def stop(self, timeout: float = STOP_TIMEOUT_S):
        """Graceful stop: SIGTERM, wait, SIGKILL as a fallback. Returns the exit code."""
        return self._terminate(signal.SIGTERM, timeout)

    def kill9(self):
        """Crash the broker: SIGKILL, no chance to flush anything."""
        return self._terminate(signal.SIGKILL, STOP_TIMEOUT_S)

    def restart(self, timeout: float = STARTUP_TIMEOUT_S):
        """Start again on the same port and data dir (stops it first if running)."""
        self.stop()
        # The listening socket of the previous process must be gone before we
        # can rely on the "port accepts" probe meaning the new process is up.
        wait_until(lambda: not port_accepts(self.port), timeout=STOP_TIMEOUT_S,
                   message=f"port {self.port} to be released")
        return self.start(timeout)

    # -- introspection -----------------------------------------------------

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return tail(self.log_path, lines)

    def cleanup(self):
        try:
            self.stop()
        finally:
            if os.environ.get("GREGOR_KEEP_DATA"):
                print(f"[gregor compat] keeping {self.base_dir}")
            else:
                shutil.rmtree(self.base_dir, ignore_errors=True)


JAVA = shutil.which("java")
KAFKA_TOOL_TIMEOUT_S = 60


COMPAT_TESTS = os.path.dirname(os.path.abspath(__file__))


def maven_classpath(pom_dir: str) -> str:
    """The runtime classpath of compat-tests/<pom_dir>/pom.xml, which scripts/kafka-tools
    resolves from Maven Central once into its cache."""
    script = os.path.join(COMPAT_TESTS, "..", "scripts", "kafka-tools")
    pom = os.path.join(COMPAT_TESTS, pom_dir, "pom.xml")
    done = subprocess.run([script, pom], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"scripts/kafka-tools {pom} failed:\n{done.stderr[-4000:]}"
    with open(done.stdout.strip()) as f:
        return f.read().strip()


@pytest.fixture(scope="session")
def tools_classpath():
    """The classpath of Apache Kafka's command-line tools (compat-tests/kafka-tools/pom.xml)."""
    return maven_classpath("kafka-tools")


@pytest.fixture(scope="session")
def apps_classpath():
    """The classpath of Kafka Streams and Kafka Connect (compat-tests/kafka-apps/pom.xml)."""
    return maven_classpath("kafka-apps")


def compile_java(source: str, classpath: str, classes_dir: str):
    """Compiles one program of compat-tests/ against ``classpath`` into ``classes_dir``."""
    javac = os.path.join(os.path.dirname(os.path.realpath(JAVA)), "javac")
    done = subprocess.run([javac, "-d", classes_dir, "-cp", classpath, os.path.join(COMPAT_TESTS, source)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]


@contextlib.contextmanager
def compiled_java(app: str, source: str):
    """Compiles compat-tests/<app>/<source> against the classpath of compat-tests/<app>/pom.xml
    into a temporary folder; yields (the classpath to run it with, that folder)."""
    classpath = maven_classpath(app)
    with tempfile.TemporaryDirectory(prefix=f"gregor-{app}-") as work:
        compile_java(os.path.join(app, source), classpath, work)
        yield f"{work}:{classpath}", work


def run_to_end(cmd, timeout: float, log_path: str, env: dict | None = None):
    """Runs ``cmd`` in a process group of its own, its output to ``log_path``, and waits for it
    to exit 0; if it has not exited within ``timeout`` seconds, kills the group (a JVM a script
    started included) and fails, with the log's tail either way."""
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=True, preexec_fn=_die_with_parent)
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_process_group(proc)
        raise AssertionError(f"{cmd[:3]} did not finish within {timeout}s\n{tail(log_path)}") from None
    assert code == 0, f"{cmd[:3]} exited {code}\n{tail(log_path)}"


def stop_process_group(proc: subprocess.Popen, timeout: float = STOP_TIMEOUT_S):
    """SIGTERM to the process group ``proc`` leads and a wait for ``proc``, then SIGKILL to
    whatever of the group is left."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass


def kafka_tool(classpath, main_class, bootstrap, *args, input: str | None = None, jvm_options=()):
    """Runs one of Kafka's command-line tools; returns (exit code, stdout, stderr)."""
    return java_tool(classpath, main_class, "--bootstrap-server", bootstrap, *args, input=input, jvm_options=jvm_options)


def java_tool(classpath, main_class, *args, input: str | None = None, jvm_options=()):
    """Runs a Java command-line tool's main class (with ``jvm_options`` such as system
    properties) with ``input`` (if any) as its stdin; returns (exit code, stdout, stderr)."""
    cmd = [JAVA, "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", *jvm_options, "-cp", classpath,
           main_class, *args]
    stdin = subprocess.DEVNULL if input is None else None
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=KAFKA_TOOL_TIMEOUT_S,
                          stdin=stdin, input=input, preexec_fn=_die_with_parent)
    return done.returncode, done.stdout, done.stderr


def gregor_binary() -> str:
    return os.environ.get("GREGOR_BIN") or DEFAULT_GREGOR_BIN


def refused_start(properties: str, protocol: str) -> str:
    """Starts Gregor with ``properties`` (server.properties text) and one listener of ``protocol``
    on a fresh data directory; it must refuse to start. Returns what it printed on stderr."""
    with tempfile.TemporaryDirectory(prefix="gregor-refused-") as work:
        config = os.path.join(work, "server.properties")
        with open(config, "w") as f:
            f.write(properties)
        done = subprocess.run([gregor_binary(), "--config", config, "--listeners", f"{protocol}://127.0.0.1:{free_port()}",
                               "--log-dirs", os.path.join(work, "data")],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    assert done.returncode != 0, f"Gregor started with:\n{properties}\n{done.stderr}"
    return done.stderr


def start_broker(extra_args=(), port: int | None = None, listeners: str | None = None,
                 env: dict | None = None) -> GregorBroker:
    binary = gregor_binary()
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        pytest.fail(
            f"Gregor binary not found or not executable: {binary} "
            "(build it, or point GREGOR_BIN at it)",
            pytrace=False,
        )
    b = GregorBroker(binary, extra_args, port, listeners, env)
    try:
        b.start()
    except BrokerStartError as e:
        b.cleanup()
        pytest.fail(str(e), pytrace=False)
    return b


@pytest.fixture(scope="module")
def broker():
    """A running Gregor broker, one per test module."""
    b = start_broker()
    try:
        yield b
    finally:
        died = b.proc is not None and b.proc.poll() is not None
        code = b.proc.returncode if died else None
        b.cleanup()
        if died and code not in (0, -signal.SIGKILL, -signal.SIGTERM):
            # A crash that happened during the module is worth shouting about.
            print(f"\n[gregor compat] broker had exited with code {code}; "
                  f"stderr tail:\n{b.log_tail()}")


@pytest.fixture(params=[1, 2], ids=["transaction.version=1", "transaction.version=2"])
def txn_version_broker(request):
    """(broker, level): a broker whose finalized transaction.version is 1 (clients add
    partitions with AddPartitionsToTxn, the epoch stays) or 2 (KIP-890 part 2, which Kafka 4
    clients and kgo opt into: Produce adds partitions, every EndTxn bumps the epoch)."""
    b = start_broker(extra_args=["--transaction-version", str(request.param)])
    try:
        yield b, request.param
    finally:
        b.cleanup()


@pytest.fixture(scope="module")
def metered():
    """A broker with metrics.listener on a free port: (broker, metrics port)."""
    port = free_port()
    b = start_broker(extra_args=["--metrics-listener", f"127.0.0.1:{port}"])
    try:
        yield b, port
    finally:
        b.cleanup()


NPM_CI_TIMEOUT_S = 180


def npm_ci(prefix: str, what: str):
    """``npm ci`` of the package.json and package-lock.json in ``prefix``; fails the test,
    saying why, when it cannot."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail(f"node is installed but npm is not: cannot install {what} "
                    f"(run `npm ci --prefix {prefix}`)", pytrace=False)
    cmd = [npm, "ci", "--prefix", prefix, "--no-audit", "--no-fund"]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=NPM_CI_TIMEOUT_S, text=True)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{' '.join(cmd)} did not finish within {NPM_CI_TIMEOUT_S}s", pytrace=False)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited {proc.returncode}\n"
                    f"stdout: {proc.stdout[-2000:]}\nstderr: {proc.stderr[-2000:]}", pytrace=False)


@pytest.fixture
def topic():
    """A fresh, unique topic name for this test."""
    return unique_topic("compat")


def stop_through_stdin(proc: subprocess.Popen, timeout: float, describe):
    """Writes "stop" to the stdin of a client program that stops cleanly on that line (the
    kafkajs and franz-go ones) and waits for it to exit; AssertionError with ``describe()`` if it
    has not within ``timeout`` seconds."""
    if proc.poll() is not None:
        return
    try:
        proc.stdin.write("stop\n")
        proc.stdin.flush()
    except (BrokenPipeError, OSError):  # it is exiting already
        pass
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"did not stop within {timeout}s\n{describe()}") from None


def close_client(client):
    """Close any client of the suite without blocking for long."""
    if hasattr(client, "purge"):  # confluent_kafka.Producer
        client.flush(5)
        client.purge(in_queue=True, in_flight=True, blocking=False)
        client.close()
    elif not hasattr(client, "close"):  # confluent_kafka AdminClient: context manager only
        client.__exit__(None, None, None)
    else:
        try:
            client.close(timeout=5)  # kafka-python producer
        except TypeError:  # kafka-python consumer/admin, confluent consumer
            client.close()


@pytest.fixture
def closing():
    """``closing(client)`` registers a client to be closed at teardown and returns it."""
    clients = []

    def register(client):
        clients.append(client)
        return client

    yield register
    for client in reversed(clients):
        try:
            close_client(client)
        except Exception as e:  # teardown must go on closing the others
            print(f"[gregor compat] error closing {client!r}: {e!r}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the broker's stderr tail (and liveness) to every failing test report."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        b = getattr(item, "funcargs", {}).get("broker")
        if isinstance(b, GregorBroker):
            state = "running" if b.is_running() else (
                f"NOT running (exit code {b.proc.returncode if b.proc else None})")
            report.sections.append(
                ("gregor broker", f"broker {b.bootstrap} is {state}\n"
                                  f"--- stderr tail ({b.log_path}) ---\n{b.log_tail()}"))


# --------------------------------------------------------------------------
# A local cluster, as scripts/cluster starts it
# --------------------------------------------------------------------------

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class ScriptCluster:
    """``scripts/cluster N`` on free ports with a temporary data directory: nodes 1..N on
    ``bootstrap`` (127.0.0.1, consecutive ports), fenced 2 s after their heartbeats stop. With
    ``controllers`` M, nodes 1..M are dedicated controllers and the brokers are M+1..M+N. With
    ``metrics``, node K serves Prometheus metrics on ``metrics_port + K - 1``. ``extra_args``
    go to every node, ``node_args[K]`` to node K alone; ``listener`` names the client listener
    (a ``--config`` in the args secures it)."""

    def __init__(self, nodes: int, controllers: int = 0, metrics: bool = False, extra_args=(),
                 listener: str = "PLAINTEXT", node_args: dict[int, list[str]] | None = None):
        self.nodes = nodes
        self.controllers = controllers
        self.port = free_port(nodes)
        self.controller_port = self.port
        while abs(self.controller_port - self.port) < nodes + controllers:
            self.controller_port = free_port(nodes + controllers)
        self.metrics_port = None
        while metrics and (self.metrics_port is None or any(
                abs(self.metrics_port - p) < nodes + controllers for p in (self.port, self.controller_port))):
            self.metrics_port = free_port(nodes + controllers)
        self.dir = tempfile.mkdtemp(prefix="gregor-cluster-")
        self.log_path = os.path.join(self.dir, "cluster.log")
        env = {k: v for k, v in os.environ.items() if not k.startswith("GREGOR_")}
        env.update(
            GREGOR_BIN=os.environ.get("GREGOR_BIN", DEFAULT_GREGOR_BIN),
            GREGOR_CLUSTER_DATA=os.path.join(self.dir, "data"),
            GREGOR_CLUSTER_PORT=str(self.port),
            GREGOR_CLUSTER_CONTROLLER_PORT=str(self.controller_port),
            GREGOR_CLUSTER_CONTROLLERS=str(controllers),
            GREGOR_CLUSTER_LISTENER=listener,
        )
        for k, args in (node_args or {}).items():
            env[f"GREGOR_CLUSTER_NODE{k}_ARGS"] = " ".join(args)
        if self.metrics_port is not None:
            env["GREGOR_CLUSTER_METRICS_PORT"] = str(self.metrics_port)
        args = [os.path.join(REPO, "scripts", "cluster"), str(nodes),
                "--broker-heartbeat-interval-ms", "200", "--broker-session-timeout-ms", "2000", *extra_args]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        self.bootstrap = [f"127.0.0.1:{self.port + i}" for i in range(nodes)]

    def node_pid(self, node_id: int) -> int:
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout
        for pid in out.split():
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
            if b"--node-id" in args and args[args.index(b"--node-id") + 1] == str(node_id).encode():
                return int(pid)
        raise AssertionError(f"node {node_id} is not running:\n{self.log()}")

    def all_live(self) -> str:
        """Waits until every node lists every broker (all are unfenced in the metadata log);
        returns the bootstrap list."""
        everyone = set(range(self.controllers + 1, self.controllers + self.nodes + 1))
        for b in self.bootstrap:
            wait_until(lambda b=b: brokers_seen(b, everyone), timeout=CLIENT_TIMEOUT_S,
                       message=lambda b=b: f"{b} to list brokers {sorted(everyone)}\n{self.log()}")
        return ",".join(self.bootstrap)

    def log(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()[-6000:]

    def stop(self):
        nodes = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout.split()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            # The script did not stop its nodes in time: no node outlives the test.
            for pid in nodes:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def cluster():
    """A three-node ScriptCluster, stopped at teardown."""
    c = ScriptCluster(3)
    try:
        yield c
    finally:
        c.stop()


def describe_cluster(bootstrap: str):
    """kafka-python's DescribeCluster answer from ``bootstrap``."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        return admin.describe_cluster()
    finally:
        admin.close()


def brokers_seen(bootstrap: str, expected: set[int]):
    """The DescribeCluster answer of ``bootstrap`` once it lists exactly the brokers ``expected``
    and a controller among them, else None."""
    try:
        d = describe_cluster(bootstrap)
    except Exception:  # not serving yet
        return None
    ids = {b["broker_id"] for b in d["brokers"]}
    return d if ids == expected and d["controller_id"] in expected else None


# --------------------------------------------------------------------------
# Fetch sessions (KIP-227), as the broker's debug log tells them
# --------------------------------------------------------------------------

# The environment of a broker whose log tells every fetch session event (src/fetch_session.rs).
FETCH_SESSION_DEBUG = {"RUST_LOG": "info,gregor::fetch_session=debug", "NO_COLOR": "1"}


class FetchSessionLog:
    """What a broker started with ``FETCH_SESSION_DEBUG`` has logged so far about fetch
    sessions: ``created`` {id: partitions}, ``naming`` {id: "name" or "id" (Fetch v13+ names
    topics by id)}, ``incremental`` {id: [request epochs]} and ``answered`` {id: [(partitions
    answered, partitions in the session)]}, in log order."""

    def __init__(self, broker):
        with open(broker.log_path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        created = re.findall(r"fetch session (\d+) created with (\d+) partitions \(topics by (\w+)\)", text)
        self.created = {int(i): int(n) for i, n, _ in created}
        self.naming = {int(i): naming for i, _, naming in created}
        self.incremental = defaultdict(list)
        for i, epoch in re.findall(r"incremental fetch session (\d+) epoch (\d+):", text):
            self.incremental[int(i)].append(int(epoch))
        self.answered = defaultdict(list)
        for i, k, n in re.findall(r"fetch session (\d+): answering (\d+) of (\d+) partitions", text):
            self.answered[int(i)].append((int(k), int(n)))

    def idle_session(self, partitions):
        """The id of a session that answered an incremental fetch of ``partitions``
        partitions with none of them (the client is caught up), or None."""
        return next((i for i, answers in self.answered.items() if (0, partitions) in answers), None)

    @staticmethod
    def wait_for_idle_session(broker, partitions, poll=lambda: None):
        """Waits for ``idle_session(partitions)``, calling ``poll`` (to keep a client that
        fetches only when polled fetching) meanwhile; returns the session id."""

        def idle():
            poll()
            return FetchSessionLog(broker).idle_session(partitions)

        return wait_until(idle, message=f"an incremental fetch of {partitions} partitions answered with none")

    def assert_used(self, session, partitions):
        """``session`` was created for ``partitions`` partitions, served incremental fetches
        with consecutive epochs, and answered one of them with some but not all of its
        partitions (only those that changed)."""
        assert self.created.get(session) == partitions, f"created sessions: {self.created}"
        epochs = self.incremental[session]
        assert len(epochs) >= 2 and epochs == list(range(1, len(epochs) + 1)), (
            f"session {session} epochs: {epochs}")
        assert any(0 < k < n for k, n in self.answered[session]), (
            f"session {session} answers (partitions answered, in session): {self.answered[session]}")


# --------------------------------------------------------------------------
# kafka-python helpers (used by test_kafka_python.py; kept here so client
# construction with bounded timeouts is written once)
# --------------------------------------------------------------------------

KP_TIMEOUTS = dict(
    request_timeout_ms=int(CLIENT_TIMEOUT_S * 1000),
    bootstrap_timeout_ms=10000,
)


def kp_producer(bootstrap, **overrides):
    from kafka import KafkaProducer

    cfg = dict(KP_TIMEOUTS, max_block_ms=10000, delivery_timeout_ms=int(CLIENT_TIMEOUT_S * 1000) + 5000)
    cfg.update(overrides)
    return KafkaProducer(bootstrap_servers=bootstrap, **cfg)


def kp_consumer(bootstrap, **overrides):
    from kafka import KafkaConsumer

    cfg = dict(KP_TIMEOUTS, consumer_timeout_ms=3000, enable_auto_commit=False,
               fetch_max_wait_ms=100)
    cfg.update(overrides)
    return KafkaConsumer(bootstrap_servers=bootstrap, **cfg)


def kp_admin(bootstrap, **overrides):
    from kafka import KafkaAdminClient

    cfg = dict(KP_TIMEOUTS)
    cfg.update(overrides)
    return KafkaAdminClient(bootstrap_servers=bootstrap, **cfg)


def kp_create_topic(bootstrap, name, partitions, **topic_kwargs):
    """Create a topic with kafka-python's admin client and wait until it has leaders."""
    from kafka.admin import NewTopic

    admin = kp_admin(bootstrap)
    try:
        admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1,
                                      **topic_kwargs)],
                            timeout_ms=10000)
        admin.wait_for_topics([name], timeout_ms=10000)
    finally:
        admin.close()


def kp_produce_to_partitions(bootstrap, topic, partitions, per_partition, tag, padding=0):
    """Sends ``per_partition`` records ``<tag>-<partition>-<i>`` (then ``padding`` dots) to
    each of ``partitions``; returns their values."""
    producer = kp_producer(bootstrap, linger_ms=5)
    try:
        sent = [(p, f"{tag}-{p}-{i}".encode() + b"." * padding)
                for i in range(per_partition) for p in partitions]
        futures = [producer.send(topic, value=v, partition=p) for p, v in sent]
        producer.flush(timeout=CLIENT_TIMEOUT_S)
        for f in futures:
            f.get(timeout=CLIENT_TIMEOUT_S)
        return [v for _, v in sent]
    finally:
        producer.close(timeout=5)


def kp_stored_bytes(bootstrap, topic):
    """{partition: bytes the broker stores for it} (DescribeLogDirs). Gregor stores batches
    as received, so a compression test sees here that its producer really compressed."""
    admin = kp_admin(bootstrap)
    try:
        (per_broker,) = admin.describe_log_dirs([topic])
    finally:
        admin.close()
    (log_dir,) = per_broker["log_dirs"]
    (t,) = [t for t in log_dir["topics"] if t["name"] == topic]
    return {p["partition_index"]: p["partition_size"] for p in t["partitions"]}
def kp_assert_record_size_limit(bootstrap, accepted: int, refused: int):
    """On a fresh topic, kafka-python's producer gets an ``accepted``-byte record in and an
    ``refused``-byte one turned away with MESSAGE_TOO_LARGE (the message.max.bytes in force)."""
    from kafka.errors import MessageSizeTooLargeError

    topic = unique_topic("size-limit")
    kp_create_topic(bootstrap, topic, 1)
    producer = kp_producer(bootstrap, linger_ms=0)
    try:
        producer.send(topic, b"x" * accepted).get(timeout=CLIENT_TIMEOUT_S)
        with pytest.raises(MessageSizeTooLargeError):
            producer.send(topic, b"x" * refused).get(timeout=CLIENT_TIMEOUT_S)
    finally:
        producer.close(timeout=5)


def kp_drain(consumer, expected: int, timeout: float = CLIENT_TIMEOUT_S):
    """Poll ``consumer`` until ``expected`` records arrived (or timeout); return them.

    It stops as soon as ``expected`` records are in: callers that need to prove
    there are no extra records check positions / end offsets afterwards.
    """
    records = []
    deadline = time.monotonic() + timeout
    while len(records) < expected and time.monotonic() < deadline:
        batch = consumer.poll(timeout_ms=500)
        for _tp, recs in sorted(batch.items()):
            records.extend(recs)
    return records


# --------------------------------------------------------------------------
# confluent-kafka helpers
# --------------------------------------------------------------------------


def ck_producer(bootstrap, **overrides):
    from confluent_kafka import Producer

    cfg = {
        "bootstrap.servers": bootstrap,
        "message.timeout.ms": int(CLIENT_TIMEOUT_S * 1000),
        "socket.timeout.ms": 10000,
    }
    cfg.update(overrides)
    return Producer(cfg)


def ck_consumer(bootstrap, **overrides):
    """A consumer for manual assignment: group.id is set (librdkafka wants one)
    but the tests never subscribe or commit."""
    from confluent_kafka import Consumer

    cfg = {
        "bootstrap.servers": bootstrap,
        "group.id": unique_topic("compat-nogroup"),
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "socket.timeout.ms": 10000,
        "fetch.wait.max.ms": 100,
    }
    cfg.update(overrides)
    return Consumer(cfg)


def ck_admin(bootstrap, **overrides):
    from confluent_kafka.admin import AdminClient

    cfg = {"bootstrap.servers": bootstrap, "socket.timeout.ms": 10000}
    cfg.update(overrides)
    return AdminClient(cfg)


def ck_drain(consumer, expected: int, timeout: float = CLIENT_TIMEOUT_S):
    """consume() until ``expected`` messages arrived or timeout; raise on client errors."""
    from confluent_kafka import KafkaError, KafkaException

    msgs = []
    deadline = time.monotonic() + timeout
    while len(msgs) < expected and time.monotonic() < deadline:
        for m in consumer.consume(num_messages=min(500, expected - len(msgs)), timeout=0.5):
            err = m.error()
            if err is None:
                msgs.append(m)
            elif err.code() == KafkaError._PARTITION_EOF:
                continue
            else:
                raise KafkaException(err)
    return msgs


def ck_read_topic(bootstrap, topic: str, partitions: int, timeout: float = CLIENT_TIMEOUT_S):
    """Every record of ``topic`` as (key, value), read_committed from the beginning until each of
    its ``partitions`` reports its end (the last stable offset); in each partition's order."""
    from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, TopicPartition

    consumer = ck_consumer(bootstrap, **{"isolation.level": "read_committed", "enable.partition.eof": True})
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        records, at_end = [], set()
        deadline = time.monotonic() + timeout
        while len(at_end) < partitions:
            assert time.monotonic() < deadline, f"{topic}: only partitions {at_end} read to the end in {timeout}s"
            for m in consumer.consume(num_messages=500, timeout=0.5):
                err = m.error()
                if err is None:
                    records.append((m.key(), m.value()))
                    at_end.discard(m.partition())
                elif err.code() == KafkaError._PARTITION_EOF:
                    at_end.add(m.partition())
                else:
                    raise KafkaException(err)
        return records
    finally:
        consumer.close()


def produce_numbered(producer, topic: str, first: int, count: int, partitions: int = 2):
    """Produces records i = first, first + 1, ... (``count`` of them), key "k<i>" and value
    "record <i>", on partition i % ``partitions``; returns their (key, value) pairs."""
    records = [(f"k{i}".encode(), f"record {i}".encode()) for i in range(first, first + count)]
    for i, (key, value) in enumerate(records, first):
        producer.produce(topic, key=key, value=value, partition=i % partitions)
    assert producer.flush(30) == 0
    return records


# --------------------------------------------------------------------------
# Security: the dev CA, a broker with every security protocol, SASL users
# --------------------------------------------------------------------------

# PLAIN's users (JAAS) on SASL_PLAINTEXT; SCRAM_USER is made with AlterUserScramCredentials.
PLAIN_JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
              'username="admin" password="admin-secret" user_admin="admin-secret" user_carol="carol-secret";')
PLAIN_USERS = {"admin": "admin-secret", "carol": "carol-secret"}
SCRAM_USER, SCRAM_PASSWORD = "scram-user", "scram-user-secret"
SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")
SECURE_LISTENERS = ("PLAINTEXT", "SSL", "MTLS", "SASL_PLAINTEXT", "SASL_SSL")
# (listener, mechanism): every SASL login the secured broker offers.
SASL_CASES = [(listener, mechanism)
              for listener in ("SASL_PLAINTEXT", "SASL_SSL")
              for mechanism in (("PLAIN",) if listener == "SASL_PLAINTEXT" else ()) + SCRAM_MECHANISMS]


def sasl_user(mechanism):
    """(user, password) of someone who can log in with ``mechanism`` on the secured broker."""
    return ("carol", PLAIN_USERS["carol"]) if mechanism == "PLAIN" else (SCRAM_USER, SCRAM_PASSWORD)


@pytest.fixture(scope="module")
def certs():
    """``gregor certs``: the dev CA, the broker's key and chain and a client's (paths by name)."""
    out = tempfile.mkdtemp(prefix="gregor-certs-")
    done = subprocess.run([gregor_binary(), "certs", "--dir", out, "--host", "localhost", "--host", "127.0.0.1"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert f"ssl.keystore.location={os.path.realpath(out)}/broker.pem" in done.stdout
    yield {name: os.path.join(out, f) for name, f in
           (("ca", "ca.pem"), ("broker", "broker.pem"), ("client_cert", "client.crt"),
            ("client_key", "client.key"), ("client_pem", "client.pem"))}
    shutil.rmtree(out, ignore_errors=True)


def start_secured_broker(certs, extra_properties=(), extra_args=()) -> GregorBroker:
    """A broker with five listeners (``b.ports`` by name): PLAINTEXT first (admin and SCRAM
    user management), SSL, MTLS (SSL with ``ssl.client.auth=required``), SASL_PLAINTEXT
    (PLAIN with PLAIN_JAAS's users, SCRAM-SHA-256 and -512) and SASL_SSL (SCRAM only)."""
    ports = {name: free_port() for name in SECURE_LISTENERS}
    listeners = ",".join(f"{name}://127.0.0.1:{port}" for name, port in ports.items())
    # Next to the certificates, removed with them: a restart reads it again.
    props = tempfile.NamedTemporaryFile("w", suffix=".properties", delete=False, dir=os.path.dirname(certs["ca"]))
    props.write("\n".join([
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SSL:SSL,MTLS:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
        "ssl.keystore.type=PEM",
        f"ssl.keystore.location={certs['broker']}",
        "ssl.truststore.type=PEM",
        f"ssl.truststore.location={certs['ca']}",
        "listener.name.mtls.ssl.client.auth=required",
        "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
        f"listener.name.sasl_plaintext.plain.sasl.jaas.config={PLAIN_JAAS}",
        "listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-512,SCRAM-SHA-256",
        *extra_properties,
        "",
    ]))
    props.close()
    b = start_broker(["--config", props.name, *extra_args], port=ports["PLAINTEXT"], listeners=listeners,
                     env={"RUST_LOG": "info,openraft=error,gregor::server=debug"})
    b.ports = ports
    return b


@pytest.fixture(scope="module")
def secured(certs):
    """A secured broker (start_secured_broker) per module."""
    b = start_secured_broker(certs)
    try:
        yield b
    finally:
        b.cleanup()


@pytest.fixture(scope="module")
def secured_with_scram_user(secured):
    """The module's secured broker, with SCRAM_USER's SCRAM-SHA-256 and -512 credentials."""
    add_scram_user(secured.bootstrap)
    return secured


def secure_addr(b, listener) -> str:
    return f"127.0.0.1:{b.ports[listener]}"


def certificate_principal(pem: str) -> str:
    """The principal of the first certificate in the PEM file ``pem`` (a ``gregor certs`` one,
    e.g. ``certs["client_cert"]``): Kafka's is ``User:`` and the subject in RFC 2253 form, as
    openssl prints it with that option."""
    subject = subprocess.run(["openssl", "x509", "-in", pem, "-noout", "-subject", "-nameopt", "RFC2253"],
                             capture_output=True, text=True, check=True).stdout.strip().removeprefix("subject=")
    return f"User:{subject}"


def log_since(b, offset):
    """The broker's log from ``offset`` on, without its colours."""
    with open(b.log_path, errors="replace") as f:
        f.seek(offset)
        return re.sub(r"\x1b\[[0-9;]*m", "", f.read())


def wait_for_login_logged(b, offset, certs, listener, mechanism):
    """Waits for a line of the secured broker's log, from ``offset`` on, naming whom it let in
    through ``listener``: the client certificate's principal on MTLS, ``mechanism``'s user on
    SASL listeners; other listeners log no one."""
    if listener == "MTLS":
        expected = [f"TLS client certificate of {certificate_principal(certs['client_cert'])}"]
    elif mechanism:  # the listener is a field of the line, after the message
        expected = [f"authenticated as User:{sasl_user(mechanism)[0]} ", f"listener={listener}"]
    else:
        return

    def logged():
        return any(all(e in line for e in expected) for line in log_since(b, offset).splitlines())
    wait_until(logged, timeout=10, message=lambda: f"a line with {expected} in the broker log:\n"
               + "\n".join(log_since(b, offset).splitlines()[-20:]))


def add_scram_user(bootstrap, user=SCRAM_USER, password=SCRAM_PASSWORD, mechanisms=SCRAM_MECHANISMS):
    """Gives ``user`` SCRAM credentials with AlterUserScramCredentials (confluent-kafka's admin)."""
    from confluent_kafka.admin import ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion

    upserts = [UserScramCredentialUpsertion(user, ScramCredentialInfo(getattr(ScramMechanism, m.replace("-", "_")), 4096),
                                            password.encode())
               for m in mechanisms]
    admin = ck_admin(bootstrap)
    for future in admin.alter_user_scram_credentials(upserts).values():
        future.result(timeout=CLIENT_TIMEOUT_S)


# --------------------------------------------------------------------------
# ACLs: the authorizer, and the real kafka-acls of Kafka 4.1
# --------------------------------------------------------------------------

# Every client of a listener without authentication is this principal, as in Kafka.
ANONYMOUS = "User:ANONYMOUS"
AUTHORIZER = ("--authorizer-class-name", "org.apache.kafka.metadata.authorizer.StandardAuthorizer")


@pytest.fixture
def authorizing_broker():
    """A broker with the authorizer on, and everything allowed that no ACL names."""
    b = start_broker(AUTHORIZER + ("--allow-everyone-if-no-acl-found", "true"))
    try:
        yield b
    finally:
        b.cleanup()


def kafka_acls(tools_classpath, bootstrap, *args):
    """Kafka 4.1's kafka-acls (``org.apache.kafka.tools.AclCommand``); returns (exit code,
    stdout, stderr)."""
    return kafka_tool(tools_classpath, "org.apache.kafka.tools.AclCommand", bootstrap, *args)


def acl(tools_classpath, bootstrap, *args):
    """kafka-acls with ``args``, which must succeed; returns what it printed."""
    code, out, err = kafka_acls(tools_classpath, bootstrap, *args)
    assert code == 0, f"kafka-acls {' '.join(args)} failed:\n{out}\n{err}"
    return out


def deny_writes_and_reads(tools_classpath, bootstrap, topic):
    """kafka-acls: DENY of WRITE and READ for ANONYMOUS on ``topic``, and ALLOW of DESCRIBE, so
    that its metadata is still served and what refuses a client is the Produce or Fetch
    response itself. (An ACL on a topic ends allow.everyone.if.no.acl.found for every operation
    on it: with the DENYs alone a client would be refused its Metadata already.)"""
    acl(tools_classpath, bootstrap, "--add", "--deny-principal", ANONYMOUS, "--operation", "Write",
        "--operation", "Read", "--topic", topic)
    acl(tools_classpath, bootstrap, "--add", "--allow-principal", ANONYMOUS, "--operation", "Describe", "--topic", topic)
