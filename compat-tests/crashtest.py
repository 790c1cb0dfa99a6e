#!/usr/bin/env python3
"""Crash-safety test for Gregor: SIGKILL the broker under load, many times, and check that
nothing acknowledged was lost.

Entry points: ``scripts/crashtest [--cycles N] [--seed S] ...`` (the long form, default 100
kill cycles) and ``compat-tests/test_crash.py`` (pytest, ~10 cycles). Both call ``run()``.
The cluster form, ``scripts/crashtest --cluster`` (clustercrash.py), shares the checks of the
log (``LoadRun``), the workers and the report's pieces.

What runs, each in its own process (``crashtest.py worker <json>``, JSON lines on stdout):

* four producers with acks=all writing numbered records to three topics (3+2+1 partitions):
  kafka-python idempotent, kafka-python non-idempotent, confluent-kafka idempotent (lz4),
  confluent-kafka non-idempotent. A record's value is ``<instance>|<seq>|<filler>``; the
  filler is derived from (instance, seq), so a record is self-checking. A record counts as
  acknowledged only when its future / delivery callback reported success (with its offset).
* two idempotent producers with acks=all (kafka-python gzip, confluent-kafka zstd) writing
  keyed records to a compacted topic (2 partitions, 300 keys each, about one record in 8 a
  tombstone; an "id" header names instance and sequence, from which key and value follow).
  The broker's cleaner runs back to back on it (min.cleanable.dirty.ratio 0.01,
  log.cleaner.backoff.ms 50) under a small I/O budget (--cleaner-bytes-per-s), so a pass takes
  a good part of a broker run and the kills land inside passes; delete.retention.ms is 1 s.
* two group consumers (kafka-python, confluent-kafka; one group each) that consume the three
  plain topics, report what they saw (offset ranges with a digest of the values) and commit
  synchronously after every poll; a commit counts only when the client reported success.
* a topic deleted mid-run (a thread here, confluent-kafka; see ``TopicChurn``): a topic is
  created, checked to start empty at offset 0 with no committed offsets for two groups, written,
  committed to, and deleted, round after round under the same name; every other deletion is
  followed within half a millisecond by the SIGKILL. An acknowledged deletion must hold (also
  after the next restart); one a kill cut off must leave the topic gone or whole.

The orchestrator (this process) kills the broker with SIGKILL every --min-interval ..
--max-interval seconds (a fraction --early-kills of the cycles sooner, while clients are still
reconnecting) and restarts it at once on the same port and data directory; the clients
reconnect by themselves. Per restart it measures exec -> port accepts and exec ->
first Metadata answer, fetches each group's committed offsets and checks the compacted topic
(``CompactedCheck``: every key's latest acknowledged write, or a later one, is there at its
offset; only a tombstone older than delete.retention.ms may be gone; no record twice, none
never written, offsets increasing, none changed). Every --verify-every cycles and at the end
it reads every partition back (confluent-kafka, check.crcs) and checks the plain topics:

* offsets start at 0 and are contiguous; nothing below an earlier read's end changed;
* every value parses and matches its filler (no corruption);
* every acknowledged record is in the log, at the offset its acknowledgement named;
  exactly once for idempotent producers (and in sequence order per partition), at least
  once for the others (their duplicates are counted, not failed);
* every range a consumer saw is still there, byte for byte, at the same offsets;
* a group's committed offset fetched at time T is >= every commit acknowledged before T.

Then a clean stop under load: SIGTERM with producers and consumers running; the broker must
exit 0 within --term-timeout seconds, and in that window clients may only report
disconnect-type / retriable errors and no delivery may fail. After a restart everything
acknowledged must be there. Every process started here is killed by PID in a ``finally``
and the whole run is bounded by --time-limit.

The run fails (exit status 1; the report names the record, partition, offset, broker run and
the broker's stderr tail) on: a lost, misplaced or corrupt record; a duplicate from an
idempotent producer; a gap, a rewritten or a truncated offset; a committed offset behind an
acknowledged commit; a start slower than --max-startup; a failed delivery; a fatal or
non-retriable client error (e.g. librdkafka's fatal OUT_OF_ORDER_SEQUENCE_NUMBER, which would
mean the broker lost producer state); a broker panic; a SIGTERM that does not exit 0 in time;
a compacted key whose latest acknowledged write is gone; a deleted topic that comes back, is
left half there, or whose recreation is not empty or still has committed offsets.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import ctypes
import datetime
import functools
import hashlib
import json
import os
import random
import re
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
import uuid
import zlib

from conftest import recv_exactly

HERE = os.path.dirname(os.path.abspath(__file__))

# Topics: (name suffix, partitions).
TOPICS = (("a", 3), ("b", 2), ("c", 1))
# The compacted topic (its index comes after TOPICS): the cleaner compacts it as soon as 1% of it
# is new, and tombstones expire within a run.
COMPACTED = ("compact", 2)
COMPACTED_CONFIGS = {"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.01", "delete.retention.ms": "1000"}
KEYS_PER_PARTITION = 300
TOMBSTONE_EVERY = 8  # about one keyed record in 8 is a tombstone
# Producers: name -> (library, idempotent, compression, writes the compacted topic).
PRODUCERS = {
    "kp-idem": ("kafka-python", True, None, False),
    "kp-plain": ("kafka-python", False, None, False),
    "ck-idem": ("confluent-kafka", True, "lz4", False),
    "ck-plain": ("confluent-kafka", False, None, False),
    "kp-keyed": ("kafka-python", True, "gzip", True),
    "ck-keyed": ("confluent-kafka", True, "zstd", True),
}
# Group consumers that commit: name -> library.
COMMITTERS = {"kp-group": "kafka-python", "ck-group": "confluent-kafka"}

MAX_OUTSTANDING = 400  # unacknowledged records per producer before it waits
# Records per send burst: the keyed producers write less, so the cleaner can keep up.
BURST = {False: 20, True: 5}
PAUSE_S = (0.01, 0.04)  # between bursts: a few hundred records a second per producer
# The cleaner's I/O budget (log.cleaner.io.max.bytes.per.second): a pass takes a good part of
# a broker run, so kills land inside passes, yet most runs finish some.
CLEANER_BYTES_PER_S = 100_000
# log.cleaner.io.buffer.size: the bytes of one atomic step of a pass.
CLEANER_IO_BUFFER_BYTES = 4096
DELIVERY_TIMEOUT_MS = 60000
STARTUP_TIMEOUT_S = 10.0

# Client errors that only say "the broker went away / is not there yet". Anything else a
# client reports during the clean-stop window fails the run (retriable errors are allowed too).
DISCONNECT_ERRORS = {
    # librdkafka
    "_TRANSPORT", "_ALL_BROKERS_DOWN", "_TIMED_OUT", "_TIMED_OUT_QUEUE", "_WAIT_COORD",
    # a broker handle librdkafka retires while the broker restarts (its request dies with it)
    "_DESTROY_BROKER",
    "NOT_COORDINATOR", "COORDINATOR_NOT_AVAILABLE", "COORDINATOR_LOAD_IN_PROGRESS",
    "NETWORK_EXCEPTION", "REQUEST_TIMED_OUT", "LEADER_NOT_AVAILABLE",
    "NOT_LEADER_OR_FOLLOWER", "NOT_LEADER_FOR_PARTITION",
    # kafka-python
    "KafkaConnectionError", "NodeNotReadyError", "NoBrokersAvailable", "RequestTimedOutError",
    "KafkaTimeoutError", "NotCoordinatorError", "CoordinatorNotAvailableError",
    "CoordinatorLoadInProgressError", "Cancelled", "NetworkExceptionError",
}


def disconnect_log(key: str, msg: str) -> bool:
    """Is a kafka-python log line only about a lost / refused connection or a retry after one?"""
    text = f"{key} {msg}"
    if " kafka.net." in key:
        return True
    return any(name in text for name in DISCONNECT_ERRORS) or any(
        s in text for s in ("Connection", "connection", "disconnect", "Node not ready", "No node available", "coordinator dead",
                            "Coordinator unknown", "Broker unavailable"))


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def now() -> float:
    """CLOCK_MONOTONIC: the same clock in every process of the machine."""
    return time.monotonic()


def wall_ms() -> float:
    """The wall clock, as record timestamps and the broker's cleaner see it."""
    return time.time() * 1000


# --------------------------------------------------------------------------
# Record values: self-checking, derived from (instance, seq)
# --------------------------------------------------------------------------


def make_value(inst: str, seq: int) -> bytes:
    head = f"{inst}|{seq}|"
    crc = zlib.crc32(head.encode())
    size = 8 + crc % 300
    if crc % 61 == 0:  # now and then a big record, so batches reach RocksDB's blob files
        size = 4000 + crc % 6000
    unit = f"{crc:08x}"
    return (head + (unit * (size // 8 + 1))[:size]).encode()


def parse_value(value: bytes):
    """(instance, seq) of a record written here, or None if the bytes are not one."""
    try:
        inst, seq, _ = value.decode().split("|", 2)
        seq = int(seq)
    except (ValueError, UnicodeDecodeError, AttributeError):
        return None
    return (inst, seq) if make_value(inst, seq) == value else None


def keyed_record(inst: str, seq: int, partition: int):
    """Key and value (None: a tombstone) of a compacted-topic record; its "id" header is
    ``<instance>|<seq>``, so even a tombstone says who wrote it. Keys live in one partition."""
    crc = zlib.crc32(f"{inst}|{seq}|key".encode())
    key = f"k{partition}.{crc % KEYS_PER_PARTITION}".encode()
    return key, (None if crc % TOMBSTONE_EVERY == 0 else make_value(inst, seq))


def parse_keyed(partition: int, key, value, headers):
    """(instance, seq) of a compacted-topic record written here, or None if it is not one."""
    ident = dict(headers or ()).get("id")
    try:
        inst, seq = ident.decode().split("|")
        seq = int(seq)
    except (ValueError, UnicodeDecodeError, AttributeError):
        return None
    return (inst, seq) if keyed_record(inst, seq, partition) == (key, value) else None


def digest(values) -> str:
    h = hashlib.sha1()
    for v in values:
        h.update(len(v).to_bytes(4, "big"))
        h.update(v)
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------
# Worker processes (``crashtest.py worker <json>``)
# --------------------------------------------------------------------------


class Emitter:
    """JSON lines to stdout, written by a flusher thread every 20 ms."""

    def __init__(self):
        self.lock = threading.Lock()
        self.buf = []
        self.closed = False
        threading.Thread(target=self._flusher, daemon=True).start()

    def emit(self, item):
        line = json.dumps(item, separators=(",", ":"))
        with self.lock:
            self.buf.append(line)

    def flush(self):
        with self.lock:
            lines, self.buf = self.buf, []
        if lines:
            try:
                sys.stdout.write("\n".join(lines) + "\n")
                sys.stdout.flush()
            except (BrokenPipeError, ValueError):
                os._exit(3)  # the orchestrator is gone

    def _flusher(self):
        while True:
            time.sleep(0.02)
            self.flush()


class KafkaLogForwarder:
    """Forwards kafka-python WARNING+ log records, so
    messages like "out of order sequence number ... data loss" reach the report and the
    clean-stop window can be checked for anything that is not about a lost connection."""

    def __init__(self, out, inst_ref):
        import logging

        self.out = out
        self.inst_ref = inst_ref
        self.counts = collections.Counter()
        handler = logging.Handler(level=logging.WARNING)
        handler.emit = self._emit
        logger = logging.getLogger("kafka")
        logger.addHandler(handler)
        logger.setLevel(logging.WARNING)
        logger.propagate = False

    def _emit(self, record):
        key = f"{record.levelname} {record.name}: {record.msg}"[:200]
        self.counts[key] += 1
        try:
            msg = record.getMessage()[:300]
        except Exception:  # a bad format string must not kill the worker
            msg = str(record.msg)[:300]
        self.out.emit(["log", self.inst_ref[0], record.levelname, key, msg, now()])

    def summary(self):
        self.out.emit(["logsum", self.inst_ref[0], dict(self.counts)])


def kp_error(e):
    return type(e).__name__, bool(getattr(e, "retriable", False)), str(e)[:300]


def ck_error(err):
    """(name, retriable, fatal, text) of a confluent_kafka.KafkaError."""
    return err.name(), bool(err.retriable()), bool(err.fatal()), err.str()[:300]


def producer_worker(cfg, out, stop):
    rng = random.Random(cfg["seed"])
    topics = cfg["topics"]
    parts = [(ti, p) for ti in cfg["writes"] for p in range(topics[ti][1])]
    # Per topic, the share of bursts each partition gets (the cluster test makes some busier).
    weights = [cfg["weights"][ti][p] for ti, p in parts] if cfg.get("weights") else None
    lib, idem, compression, keyed = cfg["lib"], cfg["idempotent"], cfg["compression"], cfg["keyed"]
    bootstrap = cfg["bootstrap"]
    inst_ref = [cfg["name"]]
    forwarder = KafkaLogForwarder(out, inst_ref) if lib == "kafka-python" else None
    generation = 0
    while not stop.is_set():
        inst = f"{cfg['name']}.{generation}"
        inst_ref[0] = inst
        generation += 1
        out.emit(["i", inst, lib, idem, now()])
        state = {"outstanding": 0, "dead": None}
        lock = threading.Lock()

        def done(n=1):
            with lock:
                state["outstanding"] -= n

        if lib == "kafka-python":
            from kafka import KafkaProducer

            prod = KafkaProducer(
                bootstrap_servers=bootstrap, acks="all", enable_idempotence=idem,
                compression_type=compression, linger_ms=5,
                delivery_timeout_ms=DELIVERY_TIMEOUT_MS, request_timeout_ms=10000,
                max_block_ms=DELIVERY_TIMEOUT_MS, retry_backoff_ms=50,
                reconnect_backoff_ms=20, reconnect_backoff_max_ms=200,
                max_in_flight_requests_per_connection=5, bootstrap_timeout_ms=30000,
            )

            def on_ok(inst, seq, ti, md):
                # Keyed records also report their timestamp: tombstones expire by it.
                out.emit(["a", inst, seq, ti, md.partition, md.offset, now()] + ([md.timestamp] if keyed else []))
                done()

            def on_err(inst, seq, ti, p, e):
                name, retriable, text = kp_error(e)
                out.emit(["f", inst, seq, ti, p, name, retriable, text, now()])
                done()

            def send(inst, seq, ti, p, key, value, headers):
                fut = prod.send(topics[ti][0], key=key, value=value, partition=p, headers=headers)
                fut.add_callback(on_ok, inst, seq, ti)
                fut.add_errback(on_err, inst, seq, ti, p)

            def service():
                pass

            def close():
                prod.flush(timeout=DELIVERY_TIMEOUT_MS / 1000 + 5)
                prod.close(timeout=5)
        else:
            from confluent_kafka import Producer

            def on_error(err, inst=inst):
                name, retriable, fatal, text = ck_error(err)
                out.emit(["e", inst, "error_cb", name, retriable, fatal, text, now()])
                if fatal:
                    state["dead"] = f"{name}: {text}"

            conf = {
                "bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": idem,
                "linger.ms": 5, "message.timeout.ms": DELIVERY_TIMEOUT_MS,
                "request.timeout.ms": 10000, "socket.timeout.ms": 10000,
                "reconnect.backoff.ms": 10, "reconnect.backoff.max.ms": 200,
                "retry.backoff.ms": 50, "retry.backoff.max.ms": 200,
                # librdkafka 2.16 re-bootstraps (KIP-899) when its only broker goes away and
                # then waits for its 1 s leader-query timer: ~1.5 s without acks after every
                # restart, longer than most broker runs here. "none" keeps the broker and
                # reconnects within ms, so kills land on in-flight idempotent batches. The
                # confluent group consumer keeps the default, so that path is covered too.
                "metadata.recovery.strategy": "none",
                "error_cb": on_error,
            }
            if compression:
                conf["compression.type"] = compression
            prod = Producer(conf)

            def on_delivery(inst, seq, ti, err, msg):
                if err is None:
                    out.emit(["a", inst, seq, ti, msg.partition(), msg.offset(), now()]
                             + ([msg.timestamp()[1]] if keyed else []))
                else:
                    name, retriable, fatal, text = ck_error(err)
                    out.emit(["f", inst, seq, ti, msg.partition(), name, retriable, text, now()])
                done()

            def send(inst, seq, ti, p, key, value, headers):
                while True:
                    try:
                        prod.produce(topics[ti][0], key=key, value=value, partition=p, headers=headers,
                                     on_delivery=functools.partial(on_delivery, inst, seq, ti))
                        return
                    except BufferError:
                        prod.poll(0.05)

            def service():
                try:
                    prod.poll(0)
                except Exception as e:  # librdkafka raises its fatal error here too
                    kerr = e.args[0] if e.args and hasattr(e.args[0], "name") else None
                    if kerr is None or kerr.fatal():
                        state["dead"] = state["dead"] or f"poll raised {e}"

            def close():
                if state["dead"]:
                    prod.purge()
                    prod.flush(5)
                else:
                    prod.flush(DELIVERY_TIMEOUT_MS / 1000 + 5)

        seq = 0
        while not stop.is_set() and not state["dead"]:
            service()
            if state["outstanding"] >= MAX_OUTSTANDING:
                time.sleep(0.005)
                continue
            ti, p = rng.choices(parts, weights)[0] if weights else rng.choice(parts)
            for _ in range(rng.randint(1, cfg["burst"])):
                with lock:
                    state["outstanding"] += 1
                if keyed:
                    key, value = keyed_record(inst, seq, p)
                    headers = [("id", f"{inst}|{seq}".encode())]
                else:
                    key, value, headers = None, make_value(inst, seq), None
                try:
                    send(inst, seq, ti, p, key, value, headers)
                except Exception as e:  # the producer refused the record: it was never sent
                    done()
                    if lib == "kafka-python":
                        name, retriable, text = kp_error(e)
                        fatal = name != "KafkaTimeoutError"
                    else:
                        kerr = e.args[0] if e.args and hasattr(e.args[0], "name") else None
                        name, retriable, fatal, text = (ck_error(kerr) if kerr else
                                                        (type(e).__name__, False, True, str(e)[:300]))
                    out.emit(["e", inst, "send", name, retriable, fatal, text, now()])
                    out.emit(["f", inst, seq, ti, p, name, retriable, text, now()])
                    if fatal:
                        state["dead"] = f"send raised {name}: {text}"
                seq += 1
                if state["dead"]:
                    break
            if cfg["pause_s"]:
                time.sleep(rng.uniform(*cfg["pause_s"]))
        if state["dead"]:
            out.emit(["dead", inst, state["dead"], now()])
        try:
            close()
        except Exception as e:
            out.emit(["e", inst, "close", type(e).__name__, False, False, str(e)[:300], now()])
        out.emit(["closed", inst, state["outstanding"], now()])
    if forwarder:
        forwarder.summary()


def committer_worker(cfg, out, stop):
    topics = cfg["topics"]
    tindex = {name: ti for ti, (name, _) in enumerate(topics)}
    names = [name for name, _ in topics]
    inst = cfg["name"]
    out.emit(["i", inst, cfg["lib"], None, now()])

    def report(by_tp):
        for (ti, p), recs in sorted(by_tp.items()):
            offs = [o for o, _ in recs]
            out.emit(["r", inst, ti, p, offs[0], offs[-1], len(offs), digest(v for _, v in recs), now()])

    if cfg["lib"] == "kafka-python":
        from kafka import KafkaConsumer, TopicPartition
        from kafka.errors import KafkaError
        from kafka.structs import OffsetAndMetadata

        forwarder = KafkaLogForwarder(out, [inst])
        c = KafkaConsumer(
            *names, bootstrap_servers=cfg["bootstrap"], group_id=cfg["group"],
            enable_auto_commit=False, auto_offset_reset="earliest",
            session_timeout_ms=10000, heartbeat_interval_ms=1000, max_poll_interval_ms=60000,
            reconnect_backoff_ms=20, reconnect_backoff_max_ms=200, retry_backoff_ms=50,
            fetch_max_wait_ms=100, max_poll_records=2000, bootstrap_timeout_ms=30000,
        )
        try:
            while not stop.is_set():
                try:
                    batch = c.poll(timeout_ms=200)
                except KafkaError as e:
                    name, retriable, text = kp_error(e)
                    out.emit(["e", inst, "poll", name, retriable, False, text, now()])
                    time.sleep(0.05)
                    continue
                by_tp = {}
                for tp, recs in batch.items():
                    by_tp[(tindex[tp.topic], tp.partition)] = [(r.offset, r.value) for r in recs]
                if not by_tp:
                    continue
                report(by_tp)
                offsets = {TopicPartition(names[ti], p): OffsetAndMetadata(recs[-1][0] + 1, "", -1)
                           for (ti, p), recs in by_tp.items()}
                t_sent = now()
                try:
                    c.commit(offsets, timeout_ms=10000)
                except KafkaError as e:
                    name, retriable, text = kp_error(e)
                    out.emit(["e", inst, "commit", name, retriable, False, text, now()])
                    continue
                t_ack = now()
                for tp, om in offsets.items():
                    out.emit(["c", inst, tindex[tp.topic], tp.partition, om.offset, t_sent, t_ack])
        finally:
            try:
                c.close(autocommit=False, timeout_ms=5000)
            except TypeError:
                c.close(autocommit=False)
            forwarder.summary()
    else:
        from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

        def on_error(err):
            name, retriable, fatal, text = ck_error(err)
            out.emit(["e", inst, "error_cb", name, retriable, fatal, text, now()])

        c = Consumer({
            "bootstrap.servers": cfg["bootstrap"], "group.id": cfg["group"],
            "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "session.timeout.ms": 10000, "heartbeat.interval.ms": 1000,
            "reconnect.backoff.ms": 10, "reconnect.backoff.max.ms": 200,
            "fetch.wait.max.ms": 100, "socket.timeout.ms": 10000, "check.crcs": True,
            "error_cb": on_error,
        })
        c.subscribe(names)
        try:
            while not stop.is_set():
                by_tp = {}
                for m in c.consume(num_messages=2000, timeout=0.2):
                    err = m.error()
                    if err is not None:
                        if err.code() != KafkaError._PARTITION_EOF:
                            name, retriable, fatal, text = ck_error(err)
                            out.emit(["e", inst, "consume", name, retriable, fatal, text, now()])
                        continue
                    by_tp.setdefault((tindex[m.topic()], m.partition()), []).append((m.offset(), m.value()))
                if not by_tp:
                    continue
                report(by_tp)
                offsets = [TopicPartition(names[ti], p, recs[-1][0] + 1) for (ti, p), recs in by_tp.items()]
                t_sent = now()
                try:
                    result = c.commit(offsets=offsets, asynchronous=False)
                except KafkaException as e:
                    err = e.args[0]
                    name, retriable, fatal, text = ck_error(err)
                    out.emit(["e", inst, "commit", name, retriable, fatal, text, now()])
                    continue
                t_ack = now()
                for tp in result:
                    if tp.error is not None:
                        name, retriable, fatal, text = ck_error(tp.error)
                        out.emit(["e", inst, "commit", name, retriable, fatal, text, now()])
                    else:
                        out.emit(["c", inst, tindex[tp.topic], tp.partition, tp.offset, t_sent, t_ack])
        finally:
            c.close()
    out.emit(["closed", inst, 0, now()])


def worker_main(cfg, body=None):
    """Runs a worker: ``body(cfg, out, stop)``, by default this module's producer or committer."""
    out = Emitter()
    stop = threading.Event()

    def watch_stdin():  # the orchestrator closes our stdin to stop us (or dies)
        try:
            sys.stdin.buffer.read()
        finally:
            stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    # Never outlive a broken run for long.
    threading.Timer(cfg["max_seconds"], stop.set).start()
    try:
        if body is not None:
            body(cfg, out, stop)
        elif cfg["kind"] == "producer":
            producer_worker(cfg, out, stop)
        else:
            committer_worker(cfg, out, stop)
        out.emit(["done", cfg["name"], now()])
    except Exception as e:
        import traceback

        out.emit(["crash", cfg["name"], f"{type(e).__name__}: {e}", traceback.format_exc()[-2000:], now()])
    out.flush()
    os._exit(0)  # do not wait for client threads


# --------------------------------------------------------------------------
# Processes started by the orchestrator
# --------------------------------------------------------------------------

try:
    _LIBC = ctypes.CDLL(None, use_errno=True)
except OSError:  # pragma: no cover
    _LIBC = None


def _die_with_parent():
    if _LIBC is not None:
        _LIBC.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _metadata_request(corr: int) -> bytes:
    client = b"crashtest"
    body = struct.pack(">hhih", 3, 0, corr, len(client)) + client + struct.pack(">i", 0)
    return struct.pack(">i", len(body)) + body


def broker_env():
    """Without the caller's GREGOR_* settings: only the flags count."""
    return dict({k: v for k, v in os.environ.items() if not k.startswith("GREGOR_")}, NO_COLOR="1")


class Broker:
    """One gregor process, restarted on the same port and data directory; with
    ``controller_port`` a cluster node, which also has a CONTROLLER listener."""

    def __init__(self, binary, data_dir, log_path, port, args, controller_port=None):
        self.binary = binary
        self.args = args
        self.port = port
        self.controller_port = controller_port
        self.bootstrap = f"127.0.0.1:{port}"
        self.data_dir = data_dir
        self.log_path = log_path
        self.proc = None
        self.starts = 0

    def command(self):
        listeners = f"PLAINTEXT://127.0.0.1:{self.port}"
        if self.controller_port is not None:
            listeners += f",CONTROLLER://127.0.0.1:{self.controller_port}"
        return [self.binary, "--listeners", listeners, "--log-dirs", self.data_dir, *self.args]

    def format(self, cluster_id):
        """``gregor format``: a cluster node's data directory must name its cluster."""
        done = subprocess.run([self.binary, "format", f"--cluster-id={cluster_id}", *self.command()[1:]],
                              capture_output=True, text=True, timeout=30, env=broker_env())
        if done.returncode != 0:
            raise RuntimeError(f"gregor format exited {done.returncode}: {done.stderr.strip()}")

    def start(self):
        """Starts the broker; returns (seconds to accept, seconds to first Metadata answer)."""
        return self.wait_ready(self.spawn())

    def spawn(self):
        """Starts the process without waiting for it to answer; returns the time of exec."""
        assert self.proc is None or self.proc.poll() is not None
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== start #{self.starts} at t={now():.3f}: {' '.join(self.command())} =====\n".encode())
            log.flush()
            t0 = now()
            self.proc = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                env=broker_env(),
                start_new_session=True, preexec_fn=_die_with_parent,
            )
        return t0

    def wait_ready(self, t0):
        """Until the broker answers Metadata; returns (seconds to accept, seconds to the answer)
        from t0."""
        deadline = t0 + STARTUP_TIMEOUT_S
        t_accept = None
        corr = 0
        while now() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"broker exited with code {self.proc.returncode} during start #{self.starts}")
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(2.0)
            try:
                s.connect(("127.0.0.1", self.port))
            except OSError:
                s.close()
                time.sleep(0.001)
                continue
            try:
                if t_accept is None:
                    t_accept = now() - t0
                corr += 1
                s.sendall(_metadata_request(corr))
                size = struct.unpack(">i", recv_exactly(s, 4))[0]
                body = recv_exactly(s, size)
                if struct.unpack(">i", body[:4])[0] != corr:
                    raise RuntimeError("Metadata answer with a wrong correlation id")
                return t_accept, now() - t0
            except OSError:
                time.sleep(0.001)
            finally:
                s.close()
        raise RuntimeError(f"broker start #{self.starts} did not answer Metadata within {STARTUP_TIMEOUT_S}s")

    def kill9(self):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def terminate(self, timeout):
        """SIGTERM; returns (exit code or None if still running after timeout, seconds)."""
        t0 = now()
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            rc = None
        return rc, now() - t0

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines=40):
        try:
            with open(self.log_path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except OSError as e:
            return f"<cannot read {self.log_path}: {e}>"
        return "\n".join(text.splitlines()[-lines:])


def worker_command(cfg):
    """A Python worker of this module (``crashtest.py worker <json>``)."""
    return [sys.executable, os.path.abspath(__file__), "worker", json.dumps(cfg)]


class Worker:
    """A process that reports JSON lines (the items ``State.sink`` takes) on stdout and stops
    when its stdin closes."""

    def __init__(self, name, command, base_dir, sink):
        self.name = name
        self.stderr_path = os.path.join(base_dir, f"{name}.stderr.log")
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                command,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                start_new_session=True, preexec_fn=_die_with_parent, cwd=HERE,
            )
        self.done = threading.Event()
        self.reader = threading.Thread(target=self._read, args=(sink,), daemon=True)
        self.reader.start()

    def _read(self, sink):
        for line in self.proc.stdout:
            try:
                item = json.loads(line)
            except ValueError:
                continue
            sink(self.name, item)
        self.done.set()

    def stop(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass

    def kill(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


# --------------------------------------------------------------------------
# The orchestrator
# --------------------------------------------------------------------------


# librdkafka's answers while a killed node's partitions have no leader yet, which a check waits out.
TRANSIENT_WATERMARK_ERRORS = ("_UNKNOWN_PARTITION", "_TRANSPORT", "_TIMED_OUT", "_ALL_BROKERS_DOWN",
                              "NOT_LEADER_OR_FOLLOWER", "LEADER_NOT_AVAILABLE")


def watermarks(consumer, tp, patience=30.0):
    """``consumer.get_watermark_offsets(tp)`` asked of the leader, again for up to ``patience`` s
    while the partition has none (a node was just killed), each time with the topic's metadata
    asked anew: librdkafka would keep the leaderless answer it cached."""
    from confluent_kafka import KafkaException

    t_end = now() + patience
    while True:
        try:
            return consumer.get_watermark_offsets(tp, timeout=10, cached=False)
        except KafkaException as e:
            err = e.args[0]
            if now() >= t_end or not (err.retriable() or err.name() in TRANSIENT_WATERMARK_ERRORS):
                raise
            time.sleep(0.2)
            try:
                consumer.list_topics(tp.topic, timeout=5)
            except KafkaException:
                pass  # asked again on the next round


def read_partitions(bootstrap, tps, on_error, timeout, isolation="read_committed"):
    """Reads partitions ``{key: (topic, partition)}`` from offset 0 to at least the high
    watermark seen at the start (confluent-kafka, check.crcs); ``on_error(key, KafkaError)``.
    With ``isolation`` read_committed (librdkafka's default) "high watermark" is the last
    stable offset, and aborted records are skipped. Returns {key: (low, high)} and
    {key: [(offset, value, key, headers)]}."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    c = Consumer({
        "bootstrap.servers": bootstrap, "group.id": f"crashtest-verify-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False, "enable.partition.eof": True, "check.crcs": True,
        "fetch.wait.max.ms": 10, "socket.timeout.ms": 10000, "auto.offset.reset": "error",
        "isolation.level": isolation, "error_cb": lambda err: None, "log_level": 0,
    })
    try:
        marks = {k: watermarks(c, TopicPartition(t, p)) for k, (t, p) in tps.items()}
        c.assign([TopicPartition(t, p, 0) for t, p in tps.values()])
        recs = {k: [] for k in tps}
        reached = dict.fromkeys(tps, 0)  # the next offset; compaction leaves gaps before it
        by_tp = {tp: k for k, tp in tps.items()}
        t_end = now() + timeout
        while now() < t_end:
            pending = [k for k, (lo, hi) in marks.items() if reached[k] < hi]
            if not pending:
                break
            for m in c.consume(num_messages=5000, timeout=0.5):
                k = by_tp[(m.topic(), m.partition())]
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        reached[k] = max(reached[k], m.offset())
                    else:
                        on_error(k, err)
                    continue
                recs[k].append((m.offset(), m.value(), m.key(), m.headers()))
                reached[k] = max(reached[k], m.offset() + 1)
        else:
            raise RuntimeError(f"could not read the log back within {timeout}s: "
                               f"{[(tps[k], marks[k], len(recs[k])) for k in pending]}")
        return marks, recs
    finally:
        c.close()


class Failures:
    """Failure messages, deduplicated by key, with a cap on how many are kept per kind."""

    def __init__(self):
        self.lock = threading.Lock()  # the topic churn reports from its own thread
        self.keys = set()
        self.items = []
        self.counts = collections.Counter()

    def add(self, kind, key, message):
        with self.lock:
            if (kind, key) in self.keys:
                return
            self.keys.add((kind, key))
            self.counts[kind] += 1
            if message is not None and self.counts[kind] <= 15:
                self.items.append(f"[{kind}] {message}")

    def __bool__(self):
        return bool(self.counts)


class State:
    """Everything the workers reported, fed by their reader threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.inst = {}  # instance -> (worker, lib, idempotent)
        self.acks = {}  # instance -> {seq: (ti, p, offset, t)}
        self.partition_acks = {}  # (ti, p) -> [acknowledged records, t of the latest]
        self.stamps = {}  # (instance, seq) -> record timestamp (ms), of compacted-topic records
        self.fails = []  # (worker, inst, seq, ti, p, name, retriable, text, t)
        self.errors = []  # (worker, inst, where, name, retriable, fatal, text, t)
        self.logs = []  # (worker, inst, level, key, msg, t)
        self.logsum = collections.Counter()
        self.commits = collections.defaultdict(list)  # worker -> [(ti, p, offset, t_sent, t_ack)]
        self.ranges = []  # (worker, ti, p, first, last, n, digest, t)
        self.dead = []  # (worker, inst, reason, t)
        self.crashes = []
        self.done = set()

    def sink(self, worker, item):
        kind = item[0]
        with self.lock:
            if kind == "a":
                _, inst, seq, ti, p, off, t, *stamp = item
                self.acks[inst][seq] = (ti, p, off, t)
                counts = self.partition_acks.setdefault((ti, p), [0, t])
                counts[0] += 1
                counts[1] = max(counts[1], t)
                if stamp:
                    self.stamps[(inst, seq)] = stamp[0]
            elif kind == "r":
                self.ranges.append((worker, *item[2:]))
            elif kind == "c":
                self.commits[worker].append(tuple(item[2:]))
            elif kind == "i":
                _, inst, lib, idem, _t = item
                self.inst[inst] = (worker, lib, idem)
                if idem is not None:  # a producer
                    self.acks.setdefault(inst, {})
            elif kind == "f":
                self.fails.append((worker, *item[1:]))
            elif kind == "e":
                self.errors.append((worker, *item[1:]))
            elif kind == "log":
                self.logs.append((worker, *item[1:]))
            elif kind == "logsum":
                for key, n in item[2].items():
                    self.logsum[key] += n
            elif kind == "dead":
                self.dead.append((worker, *item[1:]))
            elif kind == "crash":
                self.crashes.append((worker, *item[2:]))
            elif kind == "done":
                self.done.add(worker)

    def ack_count(self):
        with self.lock:
            return sum(len(a) for a in self.acks.values())


class CompactedCheck:
    """What compaction promises on the compacted topic, checked after every restart and with
    every full read: each record in the log is one this test wrote (its "id" header names the
    producer instance and sequence, from which key and value follow), at most once, at the
    offset its acknowledgement named, offsets increase, nothing an earlier read saw at an offset
    changed, and the log start and end never go back. For every key, the latest write
    acknowledged before the read is still there at its offset, or a later write of the key is;
    only a tombstone older than delete.retention.ms may be gone with nothing after it. An
    absence that a write not yet acknowledged might explain (a later tombstone that expired) is
    decided at the end, when every write is acknowledged."""

    def __init__(self, t):
        self.t = t
        self.ti = len(TOPICS)
        self.retention_ms = int(COMPACTED_CONFIGS["delete.retention.ms"])
        self.seen = {}  # (ti, p) -> {offset: (inst, seq)} in the last read
        self.high = {}  # (ti, p) -> high watermark of the last read
        self.undecided = []  # (label, p, key, latest acked write, wall ms at the end of that read)
        self.checks = 0
        self.stats = collections.Counter()  # of the last check
        self.totals = collections.Counter()  # over all checks
        self.present = collections.Counter()  # instance -> its records in the log at the last check

    def read_and_check(self, label):
        """Reads only the compacted topic (it is small) and checks it."""
        t_cut = now()
        time.sleep(0.1)  # acks reported just before t_cut reach the reader threads
        marks, recs = self.t.read_log([self.ti])
        self.check(label, marks, recs, t_cut, wall_ms())

    def writes(self):
        """Every acknowledged write of the compacted topic, by (partition, key):
        [(offset, inst, seq, t_ack, timestamp ms or None if not a tombstone)]."""
        with self.t.state.lock:
            acks = {i: dict(a) for i, a in self.t.state.acks.items()}
            stamps = dict(self.t.state.stamps)
        out = collections.defaultdict(list)
        for inst, a in acks.items():
            for seq, (ti, p, off, t_ack) in a.items():
                if ti == self.ti:
                    key, value = keyed_record(inst, seq, p)
                    out[(p, key)].append((off, inst, seq, t_ack, stamps.get((inst, seq)) if value is None else None))
        return out

    def expired(self, writes, latest, read_end_ms):
        """Does a tombstone at or after ``latest`` that outlived delete.retention.ms by the end
        of the read explain that the key is gone?"""
        return any(off >= latest[0] and stamp is not None and stamp + self.retention_ms <= read_end_ms
                   for off, _i, _s, _t, stamp in writes)

    def check(self, label, marks, recs, t_cut, read_end_ms, final=False):
        f, t = self.t.failures, self.t
        writes = self.writes()
        if final:  # first, so a loss is reported with the read that first saw it
            for label_then, p, key, latest, read_then in self.undecided:
                if not self.expired(writes[(p, key)], latest, read_then):
                    self.lost(f"{t.topic_name(self.ti)}[{p}]", key, latest, label_then, read_then,
                              "nothing of that key was there")
            self.undecided = []
        stats = collections.Counter()
        present = collections.Counter()
        for p in range(COMPACTED[1]):
            tp = (self.ti, p)
            name = f"{t.topic_name(self.ti)}[{p}]"
            lo, hi = marks[tp]
            stats["offsets"] += hi
            if lo != 0:
                f.add("compacted-log-start", (tp, lo), f"{name}: log start offset {lo} after {label} (compaction keeps it at 0)")
            if hi < self.high.get(tp, 0):
                f.add("compacted-truncated", (tp, hi),
                      f"{name}: high watermark {hi} after {label}, an earlier read saw {self.high[tp]}")
            prev = self.seen.get(tp, {})
            seen, at, latest_in_log = {}, {}, {}
            last = -1
            for off, value, key, headers in recs[tp]:
                stats["records"] += 1
                if off <= last:
                    f.add("compacted-order", (tp, off), f"{name}: offset {off} read after offset {last} (after {label})")
                last = max(last, off)
                ident = parse_keyed(p, key, value, headers)
                if ident is None:
                    f.add("compacted-corrupt", (tp, off),
                          f"{name} offset {off}: not a record this test wrote (key {key!r}, value {(value or b'')[:40]!r}, "
                          f"headers {headers}) after {label}")
                    continue
                if ident in at:
                    f.add("compacted-duplicate", ident,
                          f"{name}: {ident[0]}|{ident[1]} at offsets {at[ident]} and {off} after {label}")
                if off in prev and prev[off] != ident:
                    f.add("compacted-rewritten", (tp, off),
                          f"{name} offset {off}: held {prev[off]} in an earlier read, now {ident} (after {label})")
                at[ident], seen[off], latest_in_log[key] = off, ident, off
                present[ident[0]] += 1
            self.seen[tp], self.high[tp] = seen, hi
            for (wp, key), ws in writes.items():
                if wp != p:
                    continue
                for off, inst, seq, t_ack, _ in ws:
                    if at.get((inst, seq), off) != off:
                        f.add("compacted-misplaced", (inst, seq),
                              f"{name}: {inst}|{seq} acknowledged at offset {off} (broker run #{t.cycle_of(t_ack)}), "
                              f"found at {at[(inst, seq)]} after {label}")
                acked = [w for w in ws if w[3] < t_cut]
                if not acked:
                    continue
                latest = max(acked)
                stats["keys"] += 1
                have = latest_in_log.get(key, -1)
                if have == latest[0] and at.get(latest[1:3]) == latest[0]:
                    stats["at offset"] += 1
                elif have > latest[0]:
                    stats["superseded"] += 1
                elif have < 0 and self.expired(ws, latest, read_end_ms):
                    stats["expired"] += 1
                elif have < 0 and not final:
                    stats["undecided"] += 1
                    self.undecided.append((label, p, key, latest, read_end_ms))
                else:
                    held = f"offset {have} holds {seen[have]}" if have >= 0 else "nothing of that key was there"
                    self.lost(name, key, latest, label, read_end_ms, held)
        self.checks += 1
        self.stats, self.present = stats, present
        self.totals.update(stats)

    def lost(self, name, key, latest, label, read_end_ms, what):
        off, inst, seq, t_ack, stamp = latest
        t = self.t
        kind = ("value" if stamp is None else
                f"tombstone (read {read_end_ms - stamp:.0f} ms after its timestamp, delete.retention.ms {self.retention_ms})")
        self.t.failures.add(
            "compacted-lost", (name, key, off),
            f"{name} key {key.decode()}: its latest acknowledged write, {kind} {inst}|{seq} at offset {off} "
            f"(acked at t={t_ack - t.t_begin:.3f}s, broker run #{t.cycle_of(t_ack)}), is gone after {label}, "
            f"and {what}")


class ChurnError(Exception):
    pass


def transient(err) -> bool:
    """Is a confluent-kafka error only about a broker that is down or restarting?"""
    return err.name() in DISCONNECT_ERRORS or err.retriable()


class TopicChurn:
    """A topic deleted mid-run, round after round while the broker is being killed: a topic of
    one name is created (1-3 partitions) and must start empty at offset 0 with no committed
    offsets for the two groups that committed to its earlier incarnations; it is written
    (confluent-kafka, idempotent, acks=all: offsets 0.. exactly), both groups commit to it and to
    a partition of a topic that stays, and DeleteTopics deletes it; every other deletion is
    followed within half a millisecond by the SIGKILL. An acknowledged deletion must hold, right away and
    after the next restart; one that a kill cut off must leave the topic either gone or whole
    (every acknowledged record at its offset, the groups' commits) and is then sent again. The
    groups' offsets of the topic that stays must survive every deletion."""

    ROUND_TIMEOUT_S = 60.0

    def __init__(self, t, tag):
        self.t = t
        self.name = f"crash-deleted-{tag}"
        self.groups = [f"crash-deleted-g{i}-{tag}" for i in (1, 2)]
        self.stays = (t.topic_name(len(TOPICS) - 1), 0)  # a partition the groups also commit to
        self.rng = random.Random(t.o.seed * 7 + 1)
        self.stopping = threading.Event()
        self.killing = True  # the kill loop runs
        self.aborted = False  # the run ended early: give up
        self.rounds = 0
        self.outcomes = collections.Counter()
        self.kept = {g: (-1, set()) for g in self.groups}  # group -> (acked offset of self.stays, offsets sent)
        self.unchecked_deletion = False  # acknowledged, not yet seen to hold after a restart
        self.thread = None
        self.admin = None
        self.consumers = {}

    def start(self):
        from confluent_kafka import Consumer
        from confluent_kafka.admin import AdminClient

        common = {"bootstrap.servers": self.t.broker.bootstrap, "socket.timeout.ms": 5000,
                  "reconnect.backoff.ms": 10, "reconnect.backoff.max.ms": 100,
                  "error_cb": lambda err: None, "log_level": 0}
        self.admin = AdminClient(common)
        for g in self.groups:
            self.consumers[g] = Consumer(dict(common, **{"group.id": g, "enable.auto.commit": False}))
        self.thread = threading.Thread(target=self._run, name="topic-churn", daemon=True)
        self.thread.start()

    def stop(self, timeout):
        """Ends the kills' part: the round under way finishes, then no more."""
        self.killing = False
        self.stopping.set()
        self.thread.join(timeout)
        if self.thread.is_alive():
            self.t.failures.add("churn", "stuck", f"topic churn round {self.rounds + 1} still running {timeout:.0f}s after the kills ended")
        elif self.rounds == 0:
            self.t.failures.add("churn", "idle", "no topic churn round finished while the broker was being killed")

    def close(self):
        for c in self.consumers.values():
            c.close()

    def _run(self):
        try:
            while not self.stopping.is_set():
                self.round(self.rounds + 1)
                self.rounds += 1
                self.stopping.wait(self.rng.uniform(0.3, 1.5))
        except Exception as e:  # reported, never hidden: the run fails
            self.t.failures.add("churn", type(e).__name__,
                                f"topic churn round {self.rounds + 1} ({self.name}) aborted: {type(e).__name__}: {e}")

    def round(self, r):
        n = 1 + (r - 1) % 3
        self.create(r, n)
        self.check_fresh(r, n)
        acked = self.produce(r, n)
        commits = self.commit(r, acked)
        self.delete(r, n, acked, commits)

    # -- one step at a time, through kills ----------------------------------

    def retry(self, what, fn, also=()):
        """fn() until it gets past a broker that is down or restarting (or errors named in ``also``)."""
        from confluent_kafka import KafkaError, KafkaException

        deadline = now() + self.ROUND_TIMEOUT_S
        while True:
            try:
                return fn()
            except KafkaException as e:
                err = e.args[0] if e.args and isinstance(e.args[0], KafkaError) else None
                if err is not None and not (transient(err) or err.name() in also):
                    raise ChurnError(f"{what}: {err.name()}: {err.str()}") from None
                problem = e
            if now() > deadline or self.aborted:
                raise ChurnError(f"{what}: no answer within {self.ROUND_TIMEOUT_S:.0f}s ({problem})")
            time.sleep(0.05)

    def partitions(self):
        """The topic's partition count in a Metadata answer, or None if it does not exist."""
        md = self.retry("Metadata", lambda: self.admin.list_topics(timeout=5))
        topic = md.topics.get(self.name)
        return None if topic is None or topic.error is not None else len(topic.partitions)

    def list_offset(self, p, spec):
        from confluent_kafka import TopicPartition

        tp = TopicPartition(self.name, p)
        # _NOENT: librdkafka found no leader because the broker was down while it looked.
        return self.retry("ListOffsets", lambda: self.admin.list_offsets({tp: spec}, request_timeout=5)[tp].result().offset,
                          also=("_NOENT",))

    def committed(self, group, n):
        from confluent_kafka import TopicPartition

        tps = [TopicPartition(self.name, p) for p in range(n)] + [TopicPartition(*self.stays)]
        got = self.retry(f"OffsetFetch for {group}", lambda: self.consumers[group].committed(tps, timeout=5))
        return {(tp.topic, tp.partition): tp.offset for tp in got}

    def create(self, r, n):
        from confluent_kafka import KafkaError, KafkaException
        from confluent_kafka.admin import NewTopic

        sent = False  # an earlier try may have gone through before a kill
        deadline = now() + self.ROUND_TIMEOUT_S
        while True:
            fut = self.admin.create_topics([NewTopic(self.name, num_partitions=n, replication_factor=1)],
                                           request_timeout=5, operation_timeout=5)[self.name]
            try:
                return fut.result(timeout=15)
            except KafkaException as e:
                err = e.args[0]
                if err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                    if sent:
                        return None
                    self.t.failures.add("churn-undeleted", (r, "create"),
                                        f"{self.name} exists before round {r} creates it: the deletion that ended "
                                        f"round {r - 1} came undone")
                    raise ChurnError("the deleted topic came back") from None
                if not transient(err):
                    raise ChurnError(f"CreateTopics: {err.name()}: {err.str()}") from None
            except concurrent.futures.TimeoutError:
                pass
            sent = True
            if now() > deadline:
                raise ChurnError(f"CreateTopics: not done within {self.ROUND_TIMEOUT_S:.0f}s")
            time.sleep(0.05)

    def check_fresh(self, r, n):
        """A topic created again starts empty at offset 0, and no group has offsets for it."""
        from confluent_kafka.admin import OffsetSpec

        f = self.t.failures
        parts = self.partitions()
        if parts != n:
            f.add("churn-recreated", r, f"{self.name} created with {n} partitions in round {r}; Metadata shows {parts}")
        for p in range(n):
            marks = tuple(self.list_offset(p, spec) for spec in (OffsetSpec.earliest(), OffsetSpec.latest()))
            if marks != (0, 0):
                f.add("churn-not-empty", (r, p), f"{self.name}[{p}] created again in round {r} has offsets {marks}, "
                                                 "expected (0, 0)")
        for g in self.groups:
            got = self.committed(g, 3)  # every partition an earlier incarnation had
            stale = {tp: off for tp, off in got.items() if tp[0] == self.name and off >= 0}
            if stale:
                f.add("churn-stale-offsets", (r, g),
                      f"group {g} still has committed offsets {sorted(stale.items())} for {self.name}, created again "
                      f"in round {r} after its deletion (committed offsets must go with a deleted topic)")
            acked, sent = self.kept[g]
            have = got[self.stays]
            if sent and (have < acked or have not in sent):
                f.add("churn-kept-offsets", (r, g),
                      f"group {g}: committed offset of {self.stays[0]}[{self.stays[1]}] is {have} in round {r}, "
                      f"expected {acked} (or a later commit) after {self.name} was deleted")

    def produce(self, r, n):
        """Writes a few dozen records per partition; {p: {offset: seq}} of what was acknowledged."""
        from confluent_kafka import Producer

        inst = f"deleted.{r}"
        acked, failed = collections.defaultdict(dict), []

        def on_delivery(seq, err, msg):
            if err is None:
                acked[msg.partition()][msg.offset()] = seq
            else:
                failed.append((seq, err.name(), err.str()))

        prod = Producer({
            "bootstrap.servers": self.t.broker.bootstrap, "acks": "all", "enable.idempotence": True,
            "linger.ms": 5, "message.timeout.ms": 30000, "reconnect.backoff.ms": 10,
            "reconnect.backoff.max.ms": 200, "retry.backoff.ms": 50, "metadata.recovery.strategy": "none",
            "error_cb": lambda err: None, "log_level": 0,
        })
        counts = {p: self.rng.randint(20, 60) for p in range(n)}
        seq = 0
        for p, count in counts.items():
            for _ in range(count):
                prod.produce(self.name, value=make_value(inst, seq), partition=p,
                             on_delivery=functools.partial(on_delivery, seq))
                seq += 1
        left = prod.flush(40)
        del prod  # gone before the deletion: it would refresh the topic's metadata
        if failed or left:
            raise ChurnError(f"round {r}: {len(failed)} deliveries to {self.name} failed ({failed[:3]}), "
                             f"{left} not done")
        for p, count in counts.items():
            if sorted(acked[p]) != list(range(count)):
                self.t.failures.add("churn-offsets", (r, p),
                                    f"{self.name}[{p}] (round {r}): {count} records acknowledged at offsets "
                                    f"{sorted(acked[p])[:5]}..., expected 0..{count - 1} in a new topic")
        return dict(acked)

    def commit(self, r, acked):
        """Both groups commit the end of each partition, and an offset of the topic that stays."""
        from confluent_kafka import KafkaException, TopicPartition

        ends = {p: max(offs) + 1 for p, offs in acked.items()}
        keep = 1000 + r
        for g in self.groups:
            offsets = [TopicPartition(self.name, p, end) for p, end in ends.items()] + [TopicPartition(*self.stays, keep)]
            self.kept[g][1].add(keep)

            def attempt():
                result = self.consumers[g].commit(offsets=offsets, asynchronous=False)
                errors = [tp.error for tp in result if tp.error is not None]
                if errors:
                    raise KafkaException(errors[0])

            self.retry(f"OffsetCommit for {g}", attempt)
            self.kept[g] = (keep, self.kept[g][1])
        return ends

    def delete(self, r, n, acked, ends):
        from confluent_kafka import KafkaError, KafkaException

        resent = False
        while True:
            hit = self.killing and self.rng.random() < 0.5
            fut = self.admin.delete_topics([self.name], request_timeout=5, operation_timeout=5)[self.name]
            if hit:
                # A deletion's round trip takes ~0.3 ms: spin (holding the GIL, so no other
                # thread delays the kill) for up to 0.5 ms.
                t_kill = now() + self.rng.uniform(0.0, 0.0005)
                while now() < t_kill:
                    pass
                if self.t.kill_now():
                    self.outcomes["followed by a kill"] += 1
            try:
                fut.result(timeout=15)
                done = True
            except KafkaException as e:
                err = e.args[0]
                if resent and err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART and self.partitions() is None:
                    # An earlier attempt timed out in the client but was still sent after the
                    # restart (librdkafka keeps queued requests): that deletion went through.
                    self.outcomes["cut off and gone"] += 1
                    return
                if not transient(err):
                    raise ChurnError(f"DeleteTopics: {err.name()}: {err.str()}") from None
                done = False
            except concurrent.futures.TimeoutError:
                done = False
            if done:
                self.outcomes["acknowledged"] += 1
                restarts = len(self.t.restarts)
                self.unchecked_deletion = True
                if not self.check_gone(r, "right after its acknowledgement"):
                    raise ChurnError("an acknowledged deletion did not hold")
                t_end = now() + 10
                while self.killing and len(self.t.restarts) == restarts and now() < t_end:
                    time.sleep(0.02)
                if len(self.t.restarts) > restarts and not self.check_gone(r, "after the next restart", restarted=True):
                    raise ChurnError("an acknowledged deletion did not hold")
                return
            if self.partitions() is None:
                self.outcomes["cut off and gone"] += 1
                return
            self.outcomes["cut off and whole"] += 1
            if not self.check_whole(r, n, acked, ends):
                self.outcomes["cut off, whole, then gone"] += 1
                return
            resent = True

    def check_gone(self, r, when, restarted=False):
        """Is the topic gone, as its acknowledged deletion says?"""
        parts = self.partitions()
        if parts is not None:
            self.t.failures.add("churn-undeleted", (r, when),
                                f"{self.name}: deletion acknowledged in round {r}, but the topic is there {when} "
                                f"({parts} partitions)")
            return False
        if restarted:
            self.outcomes["held after a restart"] += 1
            self.unchecked_deletion = False
        return True

    def check_whole(self, r, n, acked, ends):
        """After a deletion a kill cut off, the topic is still there: all of it. False when it is
        gone meanwhile: the client sent the timed-out request again after the restart."""
        f = self.t.failures
        parts = self.partitions()
        if parts is None:
            return False
        problems = []
        if parts != n:
            problems.append(f"{parts} partitions, created with {n}")
        else:
            def on_error(p, err):
                problems.append(f"reading [{p}]: {err.name()}")

            marks, recs = read_partitions(self.t.broker.bootstrap, {p: (self.name, p) for p in range(n)}, on_error, 30)
            for p in range(n):
                values = {off: v for off, v, *_ in recs[p]}
                if marks[p] != (0, ends.get(p, 0)):
                    problems.append(f"[{p}] offsets {marks[p]}, expected (0, {ends.get(p, 0)})")
                missing = [off for off, seq in acked.get(p, {}).items() if values.get(off) != make_value(f"deleted.{r}", seq)]
                if missing:
                    problems.append(f"[{p}] acknowledged records missing at offsets {missing[:5]}")
            for g in self.groups:
                got = self.committed(g, n)
                wrong = {p: got[(self.name, p)] for p in ends if got[(self.name, p)] != ends[p]}
                if wrong:
                    problems.append(f"group {g} committed offsets {wrong}, committed {ends}")
        if problems and self.partitions() is None:
            return False
        if problems:
            f.add("churn-partial", r, f"{self.name} after a deletion cut off by a kill in round {r} is neither gone "
                                      f"nor whole: {'; '.join(problems)}")
        return True

    def check_final(self):
        """The last acknowledged deletion, after the SIGTERM restart."""
        if self.unchecked_deletion:
            self.check_gone(self.rounds, "after the SIGTERM restart", restarted=True)


class Options:
    def __init__(self, cycles=100, seed=None, min_interval=0.3, max_interval=1.5,
                 early_kills=0.1, verify_every=20, max_startup_s=1.0, term_timeout_s=2.0, time_limit_s=None,
                 keep_data=False, sigterm=True, quiet=False, cleaner_bytes_per_s=CLEANER_BYTES_PER_S):
        self.cycles = cycles
        self.seed = seed if seed is not None else random.randrange(1 << 31)
        self.min_interval = min_interval
        self.max_interval = max_interval
        self.early_kills = early_kills
        self.verify_every = verify_every
        self.max_startup_s = max_startup_s
        self.term_timeout_s = term_timeout_s
        self.time_limit_s = time_limit_s if time_limit_s is not None else 120 + 6 * cycles
        self.keep_data = keep_data
        self.sigterm = sigterm
        self.quiet = quiet
        self.cleaner_bytes_per_s = cleaner_bytes_per_s


class TimeLimit(Exception):
    pass


class LoadRun:
    """What a kill -9 test under load keeps and checks, whatever it kills: the workers and
    their reports (``State``), the failures, when it killed and restarted, and the checks of
    the log read back against the reports (every acknowledged record at its offset, none twice
    from an idempotent producer, contiguous offsets, consumed ranges unchanged, committed
    offsets never behind an acknowledged commit). ``CrashTest`` kills a lone broker;
    clustercrash.py's ``ClusterCrashTest`` kills a cluster's partition leaders.

    A subclass sets ``topics`` ([(name, partitions)]), ``checked`` (the indices of the topics
    ``check_log`` checks), ``groups`` (committing worker -> its group) and ``bootstrap``."""

    def __init__(self, opts, binary, prefix):
        self.o = opts
        self.rng = random.Random(opts.seed)
        self.base_dir = tempfile.mkdtemp(prefix=prefix)
        # A private copy: other work may rebuild the binary during the run, and every restart
        # must run the same broker.
        self.binary_source = (binary, time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(os.path.getmtime(binary))))
        self.binary = os.path.join(self.base_dir, "gregor")
        shutil.copy2(binary, self.binary)
        self.topics = []
        self.checked = []
        self.groups = {}
        self.state = State()
        self.failures = Failures()
        self.workers = {}
        self.kills = []  # t of each SIGKILL
        self.stops = []  # t of each SIGKILL or SIGTERM
        self.restarts = []  # t of each completed restart
        self.commit_checks = []  # (group, t_req, {(ti, p): offset})
        self.commit_checks_skipped = 0
        self.commit_comparisons = set()  # (group, t_req, tp) compared against an acknowledged commit
        self.verifies = []  # (label, records read, seconds)
        self.prev_snapshot = {}
        self.last_index = None
        self.ranges_checked = 0
        self.term = None  # the SIGTERM stop under load, if the test makes one
        self.t_begin = now()
        self.wall_begin = wall_ms()
        self.deadline = self.t_begin + opts.time_limit_s
        self.checkers = {}

    # -- helpers --------------------------------------------------------

    def log(self, msg):
        if not self.o.quiet:
            print(f"[crashtest {now() - self.t_begin:7.1f}s] {msg}", flush=True)

    def check_time(self, what):
        if now() > self.deadline:
            raise TimeLimit(f"time limit of {self.o.time_limit_s:.0f}s reached during {what}")

    def cycle_of(self, t):
        """Which run t falls in: run #1 ends with the first kill, run #2 with the second..."""
        return 1 + sum(1 for k in self.stops if k < t)

    def topic_name(self, ti):
        return self.topics[ti][0]

    def wait_for_traffic(self, producers, timeout=60.0):
        """Until every producer has acknowledged records and every group has committed."""
        t_end = now() + timeout
        while now() < t_end:
            with self.state.lock:
                acked = {self.state.inst[i][0] for i, a in self.state.acks.items() if a}
                committed = {w for w, c in self.state.commits.items() if c}
                crashed = list(self.state.crashes)
            if crashed:
                raise RuntimeError(f"worker crashed: {crashed[0]}")
            if acked >= set(producers) and committed >= set(self.groups):
                return
            time.sleep(0.1)
        raise RuntimeError(f"no traffic within {timeout}s: producers acked {sorted(acked)}, "
                           f"groups committed {sorted(committed)}")

    # -- committed offsets ------------------------------------------------

    def fetch_committed(self):
        """Each group's committed offsets, with the time the fetch started."""
        from confluent_kafka import Consumer, KafkaException, TopicPartition

        tps = [TopicPartition(self.topics[ti][0], p) for ti in self.checked for p in range(self.topics[ti][1])]
        tindex = {t: ti for ti, (t, _) in enumerate(self.topics)}
        for group in sorted(set(self.groups.values())):
            if group not in self.checkers:
                self.checkers[group] = Consumer({
                    "bootstrap.servers": self.bootstrap, "group.id": group,
                    "enable.auto.commit": False, "reconnect.backoff.ms": 10,
                    "reconnect.backoff.max.ms": 100, "socket.timeout.ms": 5000,
                    "error_cb": lambda err: None, "log_level": 0,
                })
            # A coordinator that just moved answers NOT_COORDINATOR until the client finds the next.
            t_end = now() + 10
            while True:
                t_req = now()
                try:
                    result = self.checkers[group].committed(tps, timeout=5)
                    break
                except KafkaException as e:
                    if transient(e.args[0]) and now() < t_end:
                        time.sleep(0.1)
                        continue
                    result = None
                    self.commit_checks_skipped += 1
                    self.log(f"committed-offset fetch for {group} failed: {e}")
                    break
            if result is None:
                continue
            got = {(tindex[tp.topic], tp.partition): tp.offset for tp in result
                   if tp.error is None and tp.offset >= 0}
            self.commit_checks.append((group, t_req, got))

    def report_lost(self, lost, where, label):
        """One failure line per partition and run: which acknowledged records are gone."""
        groups = collections.defaultdict(list)
        for ti, p, run, off, inst, seq, t in lost:
            groups[(ti, p, run)].append((off, inst, seq, t))
        for (ti, p, run), items in sorted(groups.items()):
            items.sort()
            offs = [x[0] for x in items]
            ts = [x[3] for x in items]
            by_inst = collections.Counter(x[1] for x in items)
            now_at = collections.Counter()
            for off in offs:
                v = where.get((ti, p), {}).get(off)
                k = parse_value(v) if v is not None else None
                now_at[k[0] if k else "nothing"] += 1
            killed = (f"stopped at t={self.stops[run - 1] - self.t_begin:.3f}s" if run <= len(self.stops)
                      else "still running")
            first = items[0]
            self.failures.add(
                "lost-group", (ti, p, run, label),
                f"{self.topic_name(ti)}[{p}]: {len(items)} acknowledged records missing (read after {label}): "
                f"acked at offsets {offs[0]}..{offs[-1]} during run #{run} "
                f"(acks t={min(ts) - self.t_begin:.3f}..{max(ts) - self.t_begin:.3f}s, {killed}); "
                f"from {dict(by_inst)}; e.g. {first[1]}|{first[2]} at offset {first[0]}; "
                f"those offsets now hold records of {dict(now_at)}")

    def check_commits(self, t_cut):
        """A group's committed offset fetched at T is at least every commit its members had
        acknowledged before T, and at least what the group's previous fetch returned."""
        with self.state.lock:
            commits = collections.defaultdict(list)
            for w, c in self.state.commits.items():
                commits[self.groups[w]].extend(c)
        previous = {}  # group -> (t_req, {tp: offset}) of its previous fetch
        for group, t_req, got in self.commit_checks:
            if t_req > t_cut:
                continue
            t_prev, before = previous.get(group, (None, {}))
            for tp, off in before.items():
                if got.get(tp, -1) < off:
                    self.failures.add(
                        "commit-went-back", (group, tp, t_req),
                        f"group {group} {self.topic_name(tp[0])}[{tp[1]}]: OffsetFetch at t={t_prev - self.t_begin:.3f}s "
                        f"(run #{self.cycle_of(t_prev)}) returned {off}, the next one at t={t_req - self.t_begin:.3f}s "
                        f"(run #{self.cycle_of(t_req)}) {got.get(tp, -1)}")
            previous[group] = (t_req, got)
            best = {}
            for ti, p, off, t_sent, t_ack in commits[group]:
                if t_ack < t_req and off > best.get((ti, p), (-1,))[0]:
                    best[(ti, p)] = (off, t_ack)
            for tp, (off, t_ack) in best.items():
                self.commit_comparisons.add((group, t_req, tp))
                have = got.get(tp, -1)
                if have < off:
                    self.failures.add(
                        "commit-regression", (group, tp, t_req),
                        f"group {group} {self.topic_name(tp[0])}[{tp[1]}]: commit of offset {off} "
                        f"acknowledged at t={t_ack - self.t_begin:.3f}s (run #{self.cycle_of(t_ack)}), "
                        f"but OffsetFetch at t={t_req - self.t_begin:.3f}s (run #{self.cycle_of(t_req)}) "
                        f"returned {have}")

    # -- reading the log back ---------------------------------------------

    def read_log(self, tis, timeout=90.0):
        """Every partition of topics ``tis`` from offset 0 to at least the high watermark seen at
        the start: {(ti, p): (low, high)} and {(ti, p): [(offset, value, key, headers)]}."""
        tps = {(ti, p): (self.topic_name(ti), p) for ti in tis for p in range(self.topics[ti][1])}

        def on_error(tp, err):
            self.failures.add("read-error", (tp, err.name()),
                              f"reading {self.topic_name(tp[0])}[{tp[1]}] back: {err.name()}: {err.str()}")

        return read_partitions(self.bootstrap, tps, on_error, timeout)

    def verify(self, label):
        """Reads the checked topics back and checks them against everything reported before now."""
        t_cut = now()
        time.sleep(0.1)  # acks reported just before t_cut reach the reader threads
        marks, recs = self.read_log(self.checked)
        self.check_log(label, marks, recs, t_cut)

    def check_log(self, label, marks, recs, t_cut):
        """The checked topics' log (read after t_cut) against what was reported before t_cut."""
        recs = {tp: rs for tp, rs in recs.items() if tp[0] in self.checked}
        n_read = sum(len(r) for r in recs.values())
        f = self.failures
        index = collections.defaultdict(list)  # (inst, seq) -> [(ti, p, offset)]
        where = {}  # (ti, p) -> {offset: value}
        for tp, rs in recs.items():
            ti, p = tp
            name = f"{self.topic_name(ti)}[{p}]"
            lo, hi = marks[tp]
            if lo != 0:
                f.add("log-start", tp, f"{name}: log start offset is {lo}, expected 0 (nothing deletes)")
            expect = 0
            values = {}
            prev = self.prev_snapshot.get(tp, {})
            for off, v, *_ in rs:
                if off != expect:
                    f.add("gap", (tp, expect),
                          f"{name}: offsets jump from {expect - 1} to {off} "
                          f"(read back after {label}; high watermark {hi})")
                expect = off + 1
                values[off] = v
                if off in prev and prev[off] != v:
                    f.add("rewritten", (tp, off),
                          f"{name} offset {off}: was {prev[off][:40]!r} in an earlier read, now {v[:40]!r}")
                key = parse_value(v)
                if key is None:
                    f.add("corrupt", (tp, off), f"{name} offset {off}: value is not a record of this test: {v[:60]!r}")
                    continue
                index[key].append((ti, p, off))
            if prev and max(prev) >= expect:
                f.add("truncated", (tp, max(prev)),
                      f"{name}: an earlier read reached offset {max(prev)}, now the log ends at {expect - 1}")
            where[tp] = values
        self.prev_snapshot = where

        with self.state.lock:
            acks = {i: dict(a) for i, a in self.state.acks.items()}
            inst = dict(self.state.inst)
            ranges = list(self.state.ranges)
        stats = collections.Counter()
        new_lost = []
        for i, a in acks.items():
            worker, lib, idem = inst[i]
            for seq, (ti, p, off, t) in a.items():
                if t >= t_cut or ti not in self.checked:
                    continue
                stats["acked"] += 1
                found = index.get((i, seq), [])
                if not found:
                    if ("lost", (i, seq)) not in f.keys:
                        new_lost.append((ti, p, self.cycle_of(t), off, i, seq, t))
                    f.add("lost", (i, seq), None)  # reported below, grouped
                    continue
                if (ti, p, off) not in found:
                    f.add("misplaced", (i, seq),
                          f"{worker} record {i}|{seq} acknowledged at {self.topic_name(ti)}[{p}] offset {off} "
                          f"(run #{self.cycle_of(t)}) but found at {found}")
        self.report_lost(new_lost, where, label)
        dups = collections.Counter()
        for (i, seq), found in index.items():
            if len(found) > 1:
                worker, lib, idem = inst.get(i, ("?", "?", None))
                dups[i] += len(found) - 1
                if idem:
                    f.add("duplicate", (i, seq),
                          f"{worker} (idempotent {lib}) record {i}|{seq} is in the log {len(found)} times: "
                          f"{[(self.topic_name(ti), p, o) for ti, p, o in found]}")
        # Idempotent producers keep their order within a partition.
        for tp, values in where.items():
            last = {}
            for off in sorted(values):
                key = parse_value(values[off])
                if key is None or not inst.get(key[0], (0, 0, False))[2]:
                    continue
                if key[0] in last and key[1] <= last[key[0]][0]:
                    f.add("order", (key, tp),
                          f"{self.topic_name(tp[0])}[{tp[1]}]: idempotent {key[0]} seq {key[1]} at offset {off} "
                          f"after seq {last[key[0]][0]} at offset {last[key[0]][1]}")
                last[key[0]] = (key[1], off)
        # What a consumer saw stays where it saw it.
        for worker, ti, p, first, last_off, n, dig, t in ranges[self.ranges_checked:]:
            if t >= t_cut:
                break
            self.ranges_checked += 1
            values = where.get((ti, p), {})
            name = f"{self.topic_name(ti)}[{p}]"
            if n != last_off - first + 1:
                f.add("consumer-gap", (worker, ti, p, first),
                      f"{worker} consumed {n} records at offsets {first}..{last_off} of {name} in one poll (gap)")
                continue
            have = [values.get(o) for o in range(first, last_off + 1)]
            if any(v is None for v in have):
                f.add("consumed-lost", (worker, ti, p, first),
                      f"{worker} consumed {name} offsets {first}..{last_off} at t={t - self.t_begin:.3f}s "
                      f"(run #{self.cycle_of(t)}); the log now ends at {max(values, default=-1)}")
            elif digest(have) != dig:
                f.add("consumed-changed", (worker, ti, p, first),
                      f"{worker} consumed {name} offsets {first}..{last_off} at t={t - self.t_begin:.3f}s "
                      f"(run #{self.cycle_of(t)}); those offsets now hold different values")
        self.check_commits(t_cut)
        self.last_index = (index, dups, stats, marks, n_read)
        secs = now() - t_cut
        self.verifies.append((label, n_read, secs))
        self.log(f"verify after {label}: {n_read} records in the log, {stats['acked']} acknowledged "
                 f"checked, {len(self.failures.items)} failures so far ({secs:.1f}s)")

    # -- the end ---------------------------------------------------------

    def stop_workers(self):
        # Producers flush what they have in flight; bounded by the run's time limit.
        timeout = min(75.0, max(15.0, self.deadline - now() + 30))
        for w in self.workers.values():
            w.stop()
        t_end = now() + timeout
        for name, w in self.workers.items():
            try:
                w.proc.wait(max(0.1, t_end - now()))
            except subprocess.TimeoutExpired:
                self.failures.add("worker", name, f"worker {name} did not finish within {timeout}s of stop (killed)")
                w.kill()
            w.reader.join(5)

    def aborted(self, e):
        """An exception that ended the run: reported, never hidden (the run fails)."""
        self.failures.add("run", type(e).__name__, f"run aborted: {type(e).__name__}: {e}")
        return e

    def report(self, report_class, error):
        """The report; the data directory goes unless a check failed or it is to be kept."""
        report = report_class(self, error)
        if not self.o.keep_data and not self.failures:
            shutil.rmtree(self.base_dir, ignore_errors=True)
        return report

    def end_workers(self):
        """On every way out: each worker told to stop and killed (by PID) if it has not within
        3 s, and the committed-offset fetchers closed."""
        for w in self.workers.values():
            w.stop()
        for w in self.workers.values():
            try:
                w.proc.wait(3)
            except subprocess.TimeoutExpired:
                w.kill()
        for c in self.checkers.values():
            try:
                c.close()
            except Exception:  # a client that cannot close is left to exit with us
                pass

    def classify_errors(self):
        """Errors the clients reported: fail on fatal / non-retriable ones where they matter."""
        with self.state.lock:
            errors = list(self.state.errors)
            fails = list(self.state.fails)
            dead = list(self.state.dead)
            crashes = list(self.state.crashes)
        for worker, msg, tb, t in crashes:
            self.failures.add("worker-crash", worker, f"worker {worker} crashed at t={t - self.t_begin:.1f}s: {msg}\n{tb}")
        for worker, inst, reason, t in dead:
            self.failures.add("producer-fatal", inst,
                              f"{worker} producer {inst} hit a fatal error at t={t - self.t_begin:.3f}s "
                              f"(run #{self.cycle_of(t)}, {self._since_restart(t)}): {reason}")
        for worker, inst, seq, ti, p, name, retriable, text, t in fails:
            self.failures.add("delivery-failed", (inst, name),
                              f"{worker} record {inst}|{seq} to {self.topic_name(ti)}[{p}] failed: {name} "
                              f"(retriable={retriable}) at t={t - self.t_begin:.3f}s (run #{self.cycle_of(t)}, "
                              f"{self._since_restart(t)}): {text}")
        for worker, inst, where, name, retriable, fatal, text, t in errors:
            if fatal:
                self.failures.add("client-fatal", (inst, name),
                                  f"{worker} ({inst}) fatal {where} error {name} at t={t - self.t_begin:.3f}s "
                                  f"(run #{self.cycle_of(t)}, {self._since_restart(t)}): {text}")
            elif self.term and self.term["t0"] <= t <= self.term["t1"] and not (
                    retriable or name in DISCONNECT_ERRORS):
                self.failures.add("sigterm-client-error", (inst, name),
                                  f"{worker} ({inst}) saw {where} error {name} around the SIGTERM stop "
                                  f"(t={t - self.t_begin:.3f}s): {text}")
            elif not (retriable or name in DISCONNECT_ERRORS):
                self.failures.add("client-error", (inst, where, name),
                                  f"{worker} ({inst}) {where} error {name} (not retriable) at t={t - self.t_begin:.3f}s "
                                  f"(run #{self.cycle_of(t)}, {self._since_restart(t)}): {text}")
        if self.term:
            with self.state.lock:
                logs = [l for l in self.state.logs if self.term["t0"] <= l[5] <= self.term["t1"]]
            for worker, inst, level, key, msg, t in logs:
                if not disconnect_log(key, msg):
                    self.failures.add("sigterm-client-log", (inst, key),
                                      f"{worker} ({inst}) logged around the SIGTERM stop "
                                      f"(t={t - self.t_begin:.3f}s): {level} {msg}")
        return errors, fails

    def scan_log(self, path, who, on_line=None):
        """A broker's log: a panic fails the run; returns its ERROR / WARN lines. ``on_line``
        sees every line (colours stripped)."""
        try:
            with open(path, "rb") as f:
                text = ANSI.sub("", f.read().decode("utf-8", "replace"))
        except OSError:
            return []
        notable = []
        for line in text.splitlines():
            if "panicked" in line:
                self.failures.add("broker-panic", line, f"{who} log: {line.strip()}")
            if " ERROR " in line or " WARN " in line:
                notable.append(line.strip())
            if on_line is not None:
                on_line(line)
        return notable

    def _since_restart(self, t):
        prior = [r for r in self.restarts if r <= t]
        if not prior:
            return "before the first kill"
        return f"{(t - prior[-1]) * 1000:.0f} ms after restart #{len(prior)}"


class CrashTest(LoadRun):
    def __init__(self, opts: Options, binary: str):
        super().__init__(opts, binary, "gregor-crashtest-")
        # Topics exist only when created (the topic churn checks deletions by their absence);
        # the cleaner runs back to back, under a small I/O budget, and writes each pass in
        # many small atomic steps, so kills land between them.
        self.broker = Broker(self.binary, os.path.join(self.base_dir, "data"),
                             os.path.join(self.base_dir, "gregor.stderr.log"), _free_port(), [
            "--auto-create-topics-enable", "false", "--log-cleaner-backoff-ms", "50",
            "--log-cleaner-io-max-bytes-per-second", str(opts.cleaner_bytes_per_s),
            "--log-cleaner-io-buffer-size", str(CLEANER_IO_BUFFER_BYTES)])
        tag = uuid.UUID(int=self.rng.getrandbits(128)).hex[:6]
        self.topics = [(f"crash-{s}-{tag}", n) for s, n in TOPICS + (COMPACTED,)]
        self.checked = list(range(len(TOPICS)))
        self.groups = {w: f"crash-{w}-{tag}" for w in COMMITTERS}
        self.bootstrap = self.broker.bootstrap
        self.compacted = CompactedCheck(self)
        self.churn = TopicChurn(self, tag)
        self.kill_lock = threading.Lock()
        self.between_kills = False  # the kill loop waits for its next kill
        self.killed_early = threading.Event()
        self.early_kill = None
        self.cleaner_passes = collections.defaultdict(list)  # broker start # -> wall ms of each pass over the compacted topic
        self.cleaner_removed = 0
        self.startups = []  # (start #, accept s, metadata s)

    def start_broker(self):
        acc, meta = self.broker.start()
        self.startups.append((self.broker.starts, acc, meta))

    def kill_now(self):
        """SIGKILL at once, from another thread, if the kill loop is between kills (it then
        restarts the broker as after its own kill). Did it kill?"""
        with self.kill_lock:
            if not self.between_kills or self.killed_early.is_set():
                return False
            self.early_kill = now()
            os.kill(self.broker.proc.pid, signal.SIGKILL)
            self.killed_early.set()
            return True

    # -- setup ------------------------------------------------------------

    def create_topics(self):
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({"bootstrap.servers": self.broker.bootstrap, "socket.timeout.ms": 10000,
                             "log_level": 0})
        futures = admin.create_topics([NewTopic(t, num_partitions=n, replication_factor=1,
                                                config=COMPACTED_CONFIGS if ti == self.compacted.ti else {})
                                       for ti, (t, n) in enumerate(self.topics)], request_timeout=15)
        for f in futures.values():
            f.result(timeout=20)

    def start_workers(self):
        common = {"bootstrap": self.broker.bootstrap, "topics": self.topics,
                  "max_seconds": self.o.time_limit_s + 30}
        plain = list(range(len(TOPICS)))
        for i, (name, (lib, idem, comp, keyed)) in enumerate(sorted(PRODUCERS.items())):
            cfg = dict(common, kind="producer", name=name, lib=lib, idempotent=idem, compression=comp,
                       keyed=keyed, writes=[self.compacted.ti] if keyed else plain, burst=BURST[keyed], pause_s=PAUSE_S,
                       seed=self.o.seed * 31 + i)
            self.workers[name] = Worker(name, worker_command(cfg), self.base_dir, self.state.sink)
        for name, lib in sorted(COMMITTERS.items()):
            # The groups check that consumed ranges stay contiguous: not on the compacted topic.
            cfg = dict(common, kind="committer", name=name, lib=lib, group=self.groups[name],
                       topics=self.topics[:len(TOPICS)])
            self.workers[name] = Worker(name, worker_command(cfg), self.base_dir, self.state.sink)

    def verify(self, label, final=False):
        """Reads the whole log and checks it against everything reported before now."""
        t_cut = now()
        time.sleep(0.1)  # acks reported just before t_cut reach the reader threads
        marks, recs = self.read_log(range(len(self.topics)))
        self.compacted.check(label, marks, recs, t_cut, wall_ms(), final)
        self.check_log(label, marks, recs, t_cut)

    # -- phases -----------------------------------------------------------

    def kill_cycles(self):
        for cycle in range(1, self.o.cycles + 1):
            self.check_time(f"kill cycle {cycle}")
            if self.rng.random() < self.o.early_kills:
                # Now and then kill again while clients are still reconnecting and retrying.
                delay = self.rng.uniform(0.0, self.o.min_interval)
            else:
                delay = self.rng.uniform(self.o.min_interval, self.o.max_interval)
            with self.kill_lock:
                self.between_kills = True
            self.killed_early.wait(delay)  # the topic churn may kill sooner
            with self.kill_lock:
                self.between_kills = False
                early = self.killed_early.is_set()
                self.killed_early.clear()
            if not early and not self.broker.running():
                raise RuntimeError(f"broker died on its own before kill {cycle} (exit code "
                                   f"{self.broker.proc.returncode})")
            self.kills.append(self.early_kill if early else now())
            self.stops.append(self.kills[-1])
            self.broker.kill9()
            self.start_broker()
            self.restarts.append(now())
            self.fetch_committed()
            self.compacted.read_and_check(f"restart #{len(self.restarts)}")
            if cycle % 10 == 0:
                s = self.startups[-10:]
                self.log(f"cycle {cycle}/{self.o.cycles}: {self.state.ack_count()} records acknowledged; "
                         f"startup (Metadata answer) of the last 10: max {max(x[2] for x in s) * 1000:.0f} ms")
            if self.o.verify_every and cycle % self.o.verify_every == 0 and cycle != self.o.cycles:
                self.verify(f"kill cycle {cycle}")

    def sigterm_phase(self):
        """A clean stop under load, then a restart."""
        time.sleep(1.0)  # clients connected and busy again
        t0 = now()
        self.stops.append(t0)
        acked_before = self.state.ack_count()
        rc, secs = self.broker.terminate(self.o.term_timeout_s)
        if rc is None:
            self.broker.kill9()
            self.failures.add("sigterm", "timeout",
                              f"broker still running {self.o.term_timeout_s}s after SIGTERM (killed)")
        elif rc != 0:
            self.failures.add("sigterm", "rc", f"broker exited with code {rc} after SIGTERM")
        self.start_broker()
        self.restarts.append(now())
        time.sleep(2.0)  # let clients report what they saw
        t1 = now()
        self.term = {"rc": rc, "seconds": secs, "t0": t0, "t1": t1, "acked_before": acked_before}
        self.verify("SIGTERM and restart")

    def scan_broker_log(self):
        """Panics fail the run; ERROR / WARN lines are listed in the report; the cleaner's
        passes over the compacted topic are counted per broker run."""
        start = [0]
        compacted = f"compacted topic={self.topic_name(self.compacted.ti)} "
        removed = re.compile(r"records_removed: (\d+)")

        def on_line(line):
            if line.startswith("===== start #"):
                start[0] += 1
            if compacted in line:
                stamp = datetime.datetime.fromisoformat(line.split()[0]).timestamp() * 1000
                self.cleaner_passes[start[0]].append(stamp)
                self.cleaner_removed += int(removed.search(line).group(1))

        return self.scan_log(self.broker.log_path, "broker", on_line)

    def recovery(self):
        """Per producer instance: (broker runs with an ack, runs, [s from restart to first ack])."""
        out = {}
        ends = self.kills + [float("inf")]
        runs = list(zip(self.restarts[:len(self.kills)], ends[1:]))
        with self.state.lock:
            times = {i: sorted(a[3] for a in acks.values()) for i, acks in self.state.acks.items()}
        import bisect

        for inst, ts in times.items():
            delays = []
            for start, end in runs:
                k = bisect.bisect_right(ts, start)
                if k < len(ts) and ts[k] < end:
                    delays.append(ts[k] - start)
            out[inst] = (len(delays), len(runs), delays)
        return out

    def data_summary(self):
        total = files = sst = 0
        for root, _dirs, names in os.walk(self.broker.data_dir):
            for n in names:
                try:
                    total += os.path.getsize(os.path.join(root, n))
                except OSError:
                    continue
                files += 1
                sst += n.endswith(".sst")
        return f"{total / 1e6:.1f} MB in {files} files ({sst} .sst)"

    # -- the run ------------------------------------------------------------

    def run(self):
        self.log(f"seed {self.o.seed}, {self.o.cycles} kill cycles, broker {self.binary_source[0]} "
                 f"(built {self.binary_source[1]}) "
                 f"on {self.broker.bootstrap}, data in {self.base_dir}")
        error = None
        try:
            self.start_broker()
            self.create_topics()
            self.start_workers()
            self.wait_for_traffic(PRODUCERS)
            self.churn.start()
            self.log("producers, group consumers and the topic churn running; killing the broker")
            self.kill_cycles()
            self.churn.stop(timeout=75)
            self.verify(f"kill cycle {self.o.cycles}")
            if self.o.sigterm:
                self.check_time("SIGTERM phase")
                self.sigterm_phase()
                self.churn.check_final()
            self.stop_workers()
            self.fetch_committed()
            self.check_time("final check")
            self.verify("the end (producers flushed)", final=True)
            rc, secs = self.broker.terminate(10)
            if rc != 0:
                self.failures.add("final-stop", rc, f"final SIGTERM: exit code {rc} after {secs:.1f}s")
        except Exception as e:
            error = self.aborted(e)
        finally:
            self.churn.aborted = True
            self.churn.stopping.set()
            if self.churn.thread is None or not self.churn.thread.is_alive():
                self.churn.close()
            self.end_workers()
            self.broker.kill9()
        self.classify_errors()
        self.check_startups()
        self.broker_notable = self.scan_broker_log()
        return self.report(CrashReport, error)

    def check_startups(self):
        for n, acc, meta in self.startups:
            if meta > self.o.max_startup_s:
                self.failures.add("slow-start", n,
                                  f"start #{n}: first Metadata answer {meta * 1000:.0f} ms after exec "
                                  f"(limit {self.o.max_startup_s * 1000:.0f} ms)")


def _free_port():
    sys.path.insert(0, HERE)
    from conftest import free_port  # one definition for the whole suite

    return free_port()


class Report:
    """The verdict and a table of a ``LoadRun``; subclasses write ``_table`` from the pieces here."""

    def __init__(self, t: LoadRun, error):
        self.t = t
        self.error = error
        self.ok = not t.failures
        self.table = self._table()

    def producer_rows(self, present, note_title, note):
        """One row per producer instance (acknowledged, lost, duplicated, in the log, failed, client
        errors) and a total; ``present``: instance -> its records in the log; the last column is
        ``note(instance)``."""
        t = self.t
        st = t.state
        dups = (t.last_index or ({}, collections.Counter()))[1]
        lost = collections.Counter(key[0] for kind, key in t.failures.keys if kind == "lost")
        fails = collections.Counter(f[1] for f in st.fails)
        errs = collections.Counter(e[1] for e in st.errors)
        lines = [f"{'producer instance':<18} {'client':<16} {'idem':<5} {'acked':>8} {'lost':>5} "
                 f"{'dup':>5} {'in log':>8} {'failed':>6} {'errors':>6}  {note_title}"]
        tot = collections.Counter()
        for inst in sorted(st.acks):
            worker, lib, idem = st.inst[inst]
            row = dict(acked=len(st.acks[inst]), lost=lost[inst], dup=dups.get(inst, 0),
                       present=present[inst], failed=fails[inst], errors=errs[inst])
            tot.update(row)
            lines.append(f"{inst:<18} {lib:<16} {'yes' if idem else 'no':<5} {row['acked']:>8} {row['lost']:>5} "
                         f"{row['dup']:>5} {row['present']:>8} {row['failed']:>6} {row['errors']:>6}  {note(inst)}")
        lines.append(f"{'total':<18} {'':<16} {'':<5} {tot['acked']:>8} {tot['lost']:>5} {tot['dup']:>5} "
                     f"{tot['present']:>8} {tot['failed']:>6} {tot['errors']:>6}")
        return lines

    def group_lines(self, when):
        """Per group: commits acknowledged, committed-offset fetches (made ``when``) compared
        with them, regressions, its members' client errors."""
        t = self.t
        errs = collections.Counter(e[0] for e in t.state.errors)
        lines = []
        for group in sorted(set(t.groups.values())):
            members = sorted(w for w, g in t.groups.items() if g == group)
            commits = sum(len(t.state.commits.get(w, [])) for w in members)
            checks = sum(1 for x in t.commit_checks if x[0] == group)
            compared = sum(1 for x in t.commit_comparisons if x[0] == group)
            regress = sum(1 for k, key in t.failures.keys if k == "commit-regression" and key[0] == group)
            libs = ", ".join(f"{w}: {t.state.inst.get(w, (w, '?'))[1]}" for w in members)  # a committer's instance is its name
            lines.append(f"group {group} ({libs}): {commits} partition "
                         f"commits acknowledged; {checks} committed-offset fetches {when} ({compared} partition "
                         f"comparisons, {t.commit_checks_skipped} fetches failed): {regress} regressions; "
                         f"{sum(errs[w] for w in members)} client errors")
        return lines

    def log_line(self):
        t = self.t
        _index, _dups, _stats, marks, n_read = t.last_index or ({}, {}, {}, {}, 0)
        return (f"log: {len(marks)} partitions, {n_read} records read back; consumer ranges checked "
                f"{t.ranges_checked}; verifications {len(t.verifies)} "
                f"(gaps {t.failures.counts['gap']}, rewritten {t.failures.counts['rewritten']}, "
                f"corrupt {t.failures.counts['corrupt']})")

    def closing_lines(self, log_tails):
        """Client errors and warnings; on failure ``log_tails`` ([(title, text)]), client ERROR
        logs and the failures, last, so that a log cut in the middle (as CI shows long output)
        still ends with them."""
        t = self.t
        st = t.state
        lines = []
        by_name = collections.Counter(e[3] for e in st.errors)
        if by_name:
            lines.append("client errors by name (all runs): " +
                         ", ".join(f"{k} x{v}" for k, v in by_name.most_common(12)))
        if st.logsum:
            lines.append("kafka-python warnings: " + "; ".join(
                f"{k[:90]} x{v}" for k, v in st.logsum.most_common(4)))
        if t.failures:
            for title, text in log_tails:
                lines.append(f"{title}:")
                lines.extend("  " + x for x in text.splitlines())
            important = [l for l in st.logs if l[2] in ("ERROR", "CRITICAL")][:10]
            if important:
                lines.append("kafka-python ERROR logs:")
                lines.extend(f"  {l[0]} t={l[5] - t.t_begin:.3f}s {l[4]}" for l in important)
            lines.append(f"FAILURES ({dict(t.failures.counts)}):")
            lines.extend("  " + x for x in t.failures.items)
            lines.append(f"data and logs kept in {t.base_dir}")
        return lines


class CrashReport(Report):
    def _table(self):
        t = self.t
        st = t.state
        index = (t.last_index or ({},))[0]
        present = collections.Counter(t.compacted.present)  # what compaction left, for keyed producers
        for (inst, _seq) in index:
            present[inst] += 1
        lines = []
        wall = now() - t.t_begin
        verdict = "PASS" if self.ok else "FAIL"
        lines.append(f"Gregor crash test: {verdict}  seed={t.o.seed}  kill cycles={len(t.kills)}/{t.o.cycles}  "
                     f"SIGTERM stops={1 if t.term else 0}  wall={wall:.0f}s")
        recovery = t.recovery()

        def first_acks(inst):
            with_acks, runs, delays = recovery.get(inst, (0, 0, []))
            return (f"{with_acks}/{runs}, {statistics.median(delays) * 1000:.0f} ms after restart"
                    if delays else f"{with_acks}/{runs}")

        lines.extend(self.producer_rows(present, "runs with acks, first ack p50", first_acks))
        restarts = t.startups[1:]
        if t.startups:
            acc = [s[1] * 1000 for s in restarts] or [t.startups[0][1] * 1000]
            meta = [s[2] * 1000 for s in restarts] or [t.startups[0][2] * 1000]
            lines.append(f"startup after restart (n={len(restarts)}): exec->accept p50 {statistics.median(acc):.1f} ms "
                         f"max {max(acc):.1f} ms; exec->Metadata answer p50 {statistics.median(meta):.1f} ms "
                         f"max {max(meta):.1f} ms (first start {t.startups[0][2] * 1000:.1f} ms)")
            if len(meta) >= 20:
                lines.append(f"  Metadata answer p50 of the first 10 restarts {statistics.median(meta[:10]):.1f} ms, "
                             f"of the last 10 {statistics.median(meta[-10:]):.1f} ms; data directory at the end: "
                             f"{t.data_summary()}")
        lines.extend(self.group_lines("after restarts"))
        lines.append(self.log_line())
        cs, ct = t.compacted.stats, t.compacted.totals
        lines.append(f"compacted topic: {cs['keys']} keys checked {t.compacted.checks} times (after every restart too): "
                     f"latest acknowledged write at its offset {ct['at offset']}, superseded by a later write "
                     f"{ct['superseded']}, a tombstone gone after delete.retention.ms {ct['expired']}, decided at the "
                     f"end {ct['undecided']}; {cs['records']} records left of {cs['offsets']} offsets written")
        lines.append(self._cleaner())
        c = t.churn
        lines.append(f"topic deleted mid-run: {c.rounds} rounds (create, check empty at offset 0 with no committed "
                     f"offsets, write, commit, delete); deletions: " +
                     ("; ".join(f"{k} {v}" for k, v in sorted(c.outcomes.items())) or "none"))
        if t.term:
            lines.append(f"SIGTERM under load: exit code {t.term['rc']} after {t.term['seconds'] * 1000:.0f} ms; "
                         f"client errors in the window: {self._window_errors()}")
            t0, t1 = t.term["t0"], t.term["t1"]
            wl = collections.Counter(l[3] for l in st.logs if t0 <= l[5] <= t1)
            lines.append("  kafka-python log lines in the window: " +
                         ("; ".join(f"{k[:70]} x{v}" for k, v in wl.most_common(5)) or "none"))
        notable = getattr(t, "broker_notable", [])
        lines.append(f"broker log: {len(notable)} ERROR/WARN lines" +
                     (": " + " | ".join(x[:160] for x in notable[:3]) if notable else ""))
        lines.extend(self.closing_lines([(f"broker stderr tail ({t.broker.log_path})", t.broker.log_tail(30))]))
        return "\n".join(lines)

    def _cleaner(self):
        """How busy the cleaner was, and where in its passes the kills came."""
        t = self.t
        passes = t.cleaner_passes
        apart = [b - a for run in passes.values() for a, b in zip(run, run[1:])]
        since = []  # per killed run: ms from its last completed pass to the kill
        for run, t_kill in enumerate(t.kills, start=1):
            if passes[run]:
                since.append(t.wall_begin + (t_kill - t.t_begin) * 1000 - passes[run][-1])
        med = lambda xs: f"{statistics.median(xs):.0f} ms" if xs else "-"  # noqa: E731
        return (f"  cleaner ({t.o.cleaner_bytes_per_s / 1000:.0f} kB/s, back to back): "
                f"{sum(map(len, passes.values()))} passes completed in {sum(1 for run in passes.values() if run)} "
                f"of {len(t.startups)} broker runs, a median {med(apart)} apart; {t.cleaner_removed} records removed; "
                f"kills came a median {med(since)} after the last completed pass "
                f"({len(t.kills) - len(since)} runs killed before their first pass finished)")

    def _window_errors(self):
        t0, t1 = self.t.term["t0"], self.t.term["t1"]
        c = collections.Counter(e[3] for e in self.t.state.errors if t0 <= e[7] <= t1)
        return ", ".join(f"{k} x{v}" for k, v in c.most_common()) or "none"


def run(opts: Options, binary: str | None = None) -> Report:
    if binary is None:
        sys.path.insert(0, HERE)
        from conftest import gregor_binary

        binary = gregor_binary()
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        raise FileNotFoundError(f"Gregor binary not found or not executable: {binary} "
                                "(build it with scripts/run or scripts/test, or set GREGOR_BIN)")
    return CrashTest(opts, binary).run()


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["worker"]:
        worker_main(json.loads(argv[1]))
        return 0
    ap = argparse.ArgumentParser(prog="scripts/crashtest", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cycles", type=int, default=100, help="SIGKILL/restart cycles (default 100)")
    ap.add_argument("--seed", type=int, default=None, help="random seed (default: random, printed)")
    ap.add_argument("--min-interval", type=float, default=0.3, help="shortest broker run between kills, s")
    ap.add_argument("--max-interval", type=float, default=1.5, help="longest broker run between kills, s")
    ap.add_argument("--early-kills", type=float, default=0.1,
                    help="fraction of cycles killed sooner, 0..min-interval s after the restart (default 0.1)")
    ap.add_argument("--verify-every", type=int, default=20, help="read everything back every N cycles (0: only at the end)")
    ap.add_argument("--max-startup", type=float, default=1.0, help="fail if a start takes longer, s (default 1.0)")
    ap.add_argument("--term-timeout", type=float, default=2.0, help="SIGTERM must stop the broker within this, s")
    ap.add_argument("--time-limit", type=float, default=None, help="bound for the whole run, s (default 120 + 6/cycle)")
    ap.add_argument("--cleaner-bytes-per-s", type=float, default=CLEANER_BYTES_PER_S,
                    help=f"the broker's log.cleaner.io.max.bytes.per.second (default {CLEANER_BYTES_PER_S})")
    ap.add_argument("--no-sigterm", action="store_true", help="skip the clean-stop-under-load phase")
    ap.add_argument("--keep-data", action="store_true", help="keep the data directory and logs even on success")
    ap.add_argument("-q", "--quiet", action="store_true", help="only the report")
    a = ap.parse_args(argv)
    opts = Options(cycles=a.cycles, seed=a.seed, min_interval=a.min_interval, max_interval=a.max_interval,
                   early_kills=a.early_kills,
                   verify_every=a.verify_every, max_startup_s=a.max_startup, term_timeout_s=a.term_timeout,
                   time_limit_s=a.time_limit, keep_data=a.keep_data, sigterm=not a.no_sigterm, quiet=a.quiet,
                   cleaner_bytes_per_s=a.cleaner_bytes_per_s)
    return exit_status(run, opts)


def exit_status(run_test, opts, missing=(FileNotFoundError,)):
    """Runs a test from the command line and prints its report; returns the exit status: 0 all
    checks passed, 1 one failed, 2 a prerequisite (an exception in ``missing``) is missing."""
    # SIGTERM / SIGHUP: unwind through the finally blocks that stop the brokers and workers.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: sys.exit(128 + signum))
    try:
        report = run_test(opts)
    except missing as e:
        print(e, file=sys.stderr)
        return 2
    print(report.table, flush=True)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
