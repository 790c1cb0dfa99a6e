#!/usr/bin/env python3
"""Crash safety of transactions: a single broker SIGKILLed at random moments while
consume-transform-produce loops run exactly-once transactions, restarted, over and over; then
the output read back with read_committed must show every committed transaction exactly once
and whole, no aborted one, and group offsets exactly consistent with it.

Entry points: ``scripts/crashtest --txn [--cycles N] [--seed S] ...`` (the long form, 100
cycles) and ``compat-tests/test_txn_crash.py`` (pytest, 5 cycles). Both call ``run()``.

What runs, each in its own process (JSON lines on stdout, as crashtest.py's workers):

* a feeder (``txncrash.py worker <json>``): an idempotent acks=all confluent-kafka producer
  writing numbered records (crashtest.py's self-checking values) round robin to the input
  topic (4 partitions), ~2000 a second;
* three transformers in one consumer group (read_committed, static membership, each with its
  own transactional.id): two confluent-kafka ones (``Transformer`` here) and a Java
  kafka-clients one (``java/TxnTransformer.java``, compiled with javac at the start; --no-java
  leaves it out). Each consumes a batch of 1..150 records, begins a transaction, writes one
  output record per input record to the output topic (6 partitions, spread over all of them),
  value ``txn=<label>;i=<k>;of=<count>;src=<partition>:<offset>:<seq>``, waits 0..20 ms (the
  "transform"), sends the consumed positions with ``send_offsets_to_transaction`` (with the
  consumer's group metadata, so a member fenced by a rebalance cannot commit), then commits;
  every 5th transaction is flushed and aborted instead. They recover as applications do: an
  abortable error aborts the transaction and rewinds to where it began; a fatal error
  (fencing) or a failed abort replaces the producer with a new one of the same
  transactional.id (which fences the old one and aborts its open transaction) and rewinds to
  the group's committed offsets; a retriable error on commit retries the commit. A
  transformer only takes the record at the position it expects per partition (records
  fetched before a rewind are dropped), so each transaction covers a contiguous range of
  input. Each reports when a transaction began, when its commit/abort was called, and how it
  ended: committed, aborted, or unknown (the producer was replaced before the end was known).
  In 2% of their transactions the confluent-kafka ones fence themselves: a successor producer
  of the same transactional.id initializes mid-transaction, so the broker aborts the
  transaction while the old producer still uses it; its next call must fail (a commit that
  returns fails the run), and the transaction must stay invisible.

The orchestrator SIGKILLs the broker every --min-interval .. --max-interval seconds and
restarts it at once; a fraction (--ending-kills) of the kills is aimed at the moment a
transformer calls commit/abort (EndTxn and the markers it writes), a fraction
(--early-kills) comes right after the restart, while the clients recover. In a fraction
(--app-kills) of the cycles it also SIGKILLs a transformer process 0..10 ms into a
transaction (an application crash) and starts it again: at once, and then half the time the
broker kill is aimed at its InitProducerId (which fences the old producer and aborts its
transaction); or, one time in three, only after transaction.timeout.ms (6 s), so that the
broker aborts the transaction for its timeout. The report says in which phase each kill
found each transformer (in a transaction, ending one, between two, not running), and how
often the broker completed a prepared transaction at start-up, aborted a timed-out one and
a fenced producer's one.

Every --verify-every cycles (with the transformers running) and at the end (after they
stopped and no transaction is open) it fetches the group's committed offsets, then reads
the output topic with read_committed (to its last stable offset) and read_uncommitted, then
the input topic, and checks:

* no record of an aborted transaction (abort returned) is visible to read_committed; every
  record parses and names the input record it came from (offset and sequence number);
* each transaction visible is whole and no record is there twice: every record of it the log
  holds below the last stable offsets is visible (mid-run, a transaction still open on some
  partition, or behind another open one, is hidden there: Kafka's read_committed too), and at
  the end i = 0..of-1 all are; every transaction whose commit returned is in the log;
* exactly once: every input record below the group's committed offset of its partition is
  the source of exactly one visible output record (mid-run: or of one a still-open
  transaction hides); none is the source of two; at the end no visible output comes from at
  or above the committed offset;
* read_uncommitted shows the records of the aborted transactions (so the checks can fail).

After the kills, a clean stop under the same load: SIGTERM must stop the broker with exit
code 0 within --term-timeout seconds; it is started again for the final check.

The run also fails when a transformer makes no progress after the start or the last
restart, a transaction stays open after they stopped, a worker crashes, the broker dies by
itself or panics. Exit status: 0 passed, 1 a check failed (the report says which
transaction, record, partition and offset), 2 missing prerequisites (binary, venv, JDK).
"""

from __future__ import annotations

import argparse
import bisect
import collections
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid

from clustercrash import JVM_FLAGS, Cluster
from crashtest import (Broker, LoadRun, Worker, ck_error, exit_status, make_value, now, parse_value,
                       read_partitions, watermarks, worker_main, _free_port)
from java_build import JAVA, JAVAC, JavaSetupError, compile_programs, kafka_client_jars

INPUT_PARTITIONS = 4
OUTPUT_PARTITIONS = 6
CK_TRANSFORMERS = ("ck-tx-1", "ck-tx-2")  # confluent-kafka, in one group
JAVA_TRANSFORMER = "java-tx"  # kafka-clients (java/TxnTransformer.java), in the same group
MAX_BATCH = 150  # input records per transaction: 1..MAX_BATCH
ABORT_EVERY = 5  # every k-th transaction of a transformer is aborted on purpose
FEED_PER_S = 2000
WORK_S = 0.02  # a transaction stays open 0..WORK_S longer, as if the transform took time
# transaction.timeout.ms: the broker aborts (and fences) a transaction a killed transformer left
# open within this and its check interval (1 s here), unless the restarted one's producer does.
TXN_TIMEOUT_MS = 6000
LATE_RESTART_S = TXN_TIMEOUT_MS / 1000 + 2.5  # a killed transformer left down this long
CALL_TIMEOUT_S = 10.0  # each transactional call of a transformer
# A confluent-kafka transformer fences itself in this share of its transactions: a second
# producer of its transactional.id initializes mid-transaction (a zombie's successor), so the
# broker aborts the open transaction while the first producer still sends to it.
FENCE_SHARE = 0.02
# librdkafka re-bootstraps when every broker is down (the lone broker killed), dropping the
# broker a cached group coordinator points at; send_offsets_to_transaction then hangs past its
# timeout (confluentinc/librdkafka#5511, #5456). Real clusters rarely lose every broker; here
# each kill does, so the transformers keep their broker instead.
NO_REBOOTSTRAP = {"metadata.recovery.strategy": "none"}
# librdkafka's send_offsets_to_transaction can block past its timeout when the group's
# coordinator went down (confluentinc/librdkafka#5456, #5511, both open). Past this margin a
# transformer reports the hang and exits with HUNG_EXIT; the orchestrator starts it again, as
# after an application crash (its successor's InitProducerId aborts what it left open).
HANG_MARGIN_S = 15.0
HUNG_EXIT = 75
OUTPUT_VALUE = re.compile(r"txn=([^;]+);i=(\d+);of=(\d+);src=(\d+):(\d+):(\d+)$")


# --------------------------------------------------------------------------
# Workers
# --------------------------------------------------------------------------


def feeder_worker(cfg, out, stop):
    """The input: numbered records round robin over the partitions, idempotent, acks=all."""
    from confluent_kafka import Producer

    inst = cfg["name"]
    acked = [0]

    def on_delivery(err, msg):
        if err is None:
            acked[0] += 1
        else:
            name, retriable, fatal, text = ck_error(err)
            out.emit(["e", inst, "delivery", name, retriable, fatal, text, now()])

    def on_error(err):
        name, retriable, fatal, text = ck_error(err)
        out.emit(["e", inst, "error_cb", name, retriable, fatal, text, now()])

    p = Producer({"bootstrap.servers": cfg["bootstrap"], "enable.idempotence": True, "acks": "all",
                  "linger.ms": 5, "message.timeout.ms": 120000, "reconnect.backoff.ms": 10,
                  "reconnect.backoff.max.ms": 200, "error_cb": on_error})
    seq = 0
    t0 = now()
    last_report = 0.0
    while not stop.is_set():
        # Paced, and held back while the broker is away (at most a few thousand queued).
        while seq < (now() - t0) * cfg["per_s"] and len(p) < 3000 and not stop.is_set():
            p.produce(cfg["topic"], value=make_value("feed", seq), partition=seq % cfg["partitions"],
                      on_delivery=on_delivery)
            seq += 1
        p.poll(0.01)
        if now() - last_report > 0.5:
            out.emit(["fed", inst, seq, acked[0], now()])
            last_report = now()
    p.flush(30)
    out.emit(["fed", inst, seq, acked[0], now()])


class Transformer:
    """One consume-transform-produce loop (see the module doc)."""

    def __init__(self, cfg, out, stop):
        from confluent_kafka import Consumer

        self.cfg = cfg
        self.out = out
        self.stop = stop
        self.inst = cfg["name"]
        self.rng = random.Random(cfg["seed"])
        self.src, self.dst = cfg["input"], cfg["output"]
        self.producer = None
        self.incarnation = 0
        self.n = 0  # transactions begun; labels are <instance>.<process run>.<n>
        self.fenced = None  # the label of the transaction a successor producer fenced
        self.expected = {}  # input partition -> the next offset to take (None: the first fetched)
        self.consumer = Consumer({
            "bootstrap.servers": cfg["bootstrap"], "group.id": cfg["group"], "isolation.level": "read_committed",
            # Static membership: a restarted transformer takes its place in the group at once.
            # A new member id would wait for the old one's session to end, and the broker's
            # restarts (each starts the sessions again) would keep the group rebalancing.
            "group.instance.id": cfg["name"],
            "enable.auto.commit": False, "auto.offset.reset": "earliest", "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 500, "reconnect.backoff.ms": 10, "reconnect.backoff.max.ms": 200,
            "fetch.wait.max.ms": 50, "socket.timeout.ms": 10000, "error_cb": self.on_error, **NO_REBOOTSTRAP,
        })
        self.consumer.subscribe([self.src], on_assign=self.on_assign, on_revoke=self.on_revoke,
                                on_lost=self.on_revoke)

    def emit(self, *item, flush=False):
        self.out.emit([item[0], self.inst, *item[1:], now()])
        if flush:  # the orchestrator may aim a kill at this moment
            self.out.flush()

    def hung(self, label, call):
        self.emit("hang", label, call, flush=True)
        os._exit(HUNG_EXIT)

    def error(self, where, err):
        name, retriable, fatal, text = ck_error(err)
        self.emit("e", where, name, retriable, fatal, text)

    def on_error(self, err):
        self.error("error_cb", err)

    def on_assign(self, _consumer, partitions):
        for tp in partitions:
            self.expected[tp.partition] = None  # librdkafka starts at the committed offset
        self.emit("assign", sorted(tp.partition for tp in partitions))

    def on_revoke(self, _consumer, partitions):
        for tp in partitions:
            self.expected.pop(tp.partition, None)

    # -- recovery ---------------------------------------------------------

    def producer_config(self):
        return {
            "bootstrap.servers": self.cfg["bootstrap"], "transactional.id": self.cfg["txn_id"],
            "transaction.timeout.ms": TXN_TIMEOUT_MS, "message.timeout.ms": TXN_TIMEOUT_MS, "linger.ms": 5,
            "reconnect.backoff.ms": 10, "reconnect.backoff.max.ms": 200, "socket.timeout.ms": 5000,
            "error_cb": lambda err: self.error("producer error_cb", err), **NO_REBOOTSTRAP,
            # TXNCRASH_DEBUG=eos,protocol: librdkafka's debug log in <worker>.stderr.log
            **({"debug": os.environ["TXNCRASH_DEBUG"]} if os.environ.get("TXNCRASH_DEBUG") else {}),
        }

    def new_producer(self):
        """A producer with the transactional id, initialized: fences the one before and
        aborts its open transaction. Retries until it works or the worker stops."""
        from confluent_kafka import KafkaException, Producer

        while not self.stop.is_set():
            self.incarnation += 1
            p = Producer(self.producer_config())
            for _ in range(10):
                try:
                    p.init_transactions(CALL_TIMEOUT_S)
                    self.producer = p
                    self.emit("p", self.incarnation)
                    return True
                except KafkaException as e:
                    err = e.args[0]
                    self.error("init_transactions", err)
                    if not err.retriable():
                        break
            p.flush(0)
        return False

    def rewind_to_committed(self):
        """Every assigned partition back to the group's committed offset (read_committed asks
        for stable offsets: it waits for a transaction that still holds some); False if stopped
        first."""
        from confluent_kafka import KafkaException, TopicPartition

        while not self.stop.is_set():
            assigned = [tp for tp in self.consumer.assignment() if tp.partition in self.expected]
            if not assigned:
                return True
            try:
                committed = self.consumer.committed(assigned, timeout=CALL_TIMEOUT_S)
            except KafkaException as e:
                self.error("committed", e.args[0])
                continue
            self.seek({tp.partition: max(tp.offset, 0) for tp in committed})
            return True
        return False

    def seek(self, positions):
        """Takes ``positions`` as the next offsets; a seek that fails now is made again when
        a record from elsewhere arrives (see ``take``)."""
        from confluent_kafka import KafkaException, TopicPartition

        for p, off in positions.items():
            if p not in self.expected:
                continue  # revoked meanwhile
            self.expected[p] = off
            try:
                self.consumer.seek(TopicPartition(self.src, p, off))
            except KafkaException as e:
                self.error("seek", e.args[0])

    def take(self, msgs):
        """The records at the positions expected, in order; others dropped."""
        from confluent_kafka import KafkaError

        batch = []
        reseek = {}
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    self.error("consume", err)
                continue
            p, off = m.partition(), m.offset()
            if p not in self.expected:
                continue
            want = self.expected[p]
            if want is None or off == want:
                batch.append(m)
                self.expected[p] = off + 1
            elif off > want:
                reseek[p] = want
        if reseek:
            self.seek(reseek)
        return batch

    # -- the loop ---------------------------------------------------------

    def run(self):
        from confluent_kafka import KafkaException

        self.emit("i", "confluent-kafka", None)
        rewind = True
        while not self.stop.is_set():
            if self.producer is None:
                if not self.new_producer():
                    break
                rewind = True
            # Stopped before the rewind: the positions may be past an aborted transaction's input.
            if rewind and not self.rewind_to_committed():
                break
            rewind = False
            msgs = self.consumer.consume(num_messages=self.rng.randint(1, MAX_BATCH), timeout=0.1)
            batch = self.take(msgs)
            if not batch:
                continue
            start = {}
            for m in batch:
                start.setdefault(m.partition(), m.offset())
            self.n += 1
            label = f"{self.inst}.{self.cfg['run']}.{self.n}"
            try:
                ended = self.transaction(label, batch)
            except KafkaException as e:
                ended = self.recover(label, e.args[0])
            if ended == "aborted":
                self.seek(start)
            elif ended != "committed":
                self.producer = None  # replaced at the top of the loop, then rewound
        if self.producer is not None:
            self.producer.flush(5)
        self.consumer.close()

    def transaction(self, label, batch):
        from confluent_kafka import TopicPartition

        p = self.producer
        count = len(batch)
        self.emit("b", label, count)
        p.begin_transaction()
        shift = self.rng.randrange(self.cfg["output_partitions"])
        for i, m in enumerate(batch):
            seq = parse_value(m.value())
            value = f"txn={label};i={i};of={count};src={m.partition()}:{m.offset()}:{seq[1] if seq else -1}"
            while True:
                try:
                    p.produce(self.dst, value=value.encode(), partition=(i + shift) % self.cfg["output_partitions"])
                    break
                except BufferError:
                    p.poll(0.05)
        time.sleep(self.rng.uniform(0, WORK_S))
        if self.rng.random() < FENCE_SHARE:
            self.fence(label)
        ends = {}
        for m in batch:
            ends[m.partition()] = m.offset() + 1
        offsets = [TopicPartition(self.src, part, off) for part, off in sorted(ends.items())]
        watchdog = threading.Timer(CALL_TIMEOUT_S + HANG_MARGIN_S, self.hung, (label, "send_offsets_to_transaction"))
        watchdog.daemon = True
        watchdog.start()
        try:
            p.send_offsets_to_transaction(offsets, self.consumer.consumer_group_metadata(), CALL_TIMEOUT_S)
        finally:
            watchdog.cancel()
        if self.n % ABORT_EVERY == 0:
            # Flushed first, so that read_uncommitted shows what read_committed must not.
            p.flush(CALL_TIMEOUT_S)
            self.emit("ending", label, "abort", flush=True)
            p.abort_transaction(CALL_TIMEOUT_S)
            self.emit("x", label, "aborted", "on purpose")
            return "aborted"
        self.emit("ending", label, "commit", flush=True)
        return self.commit(label)

    def commit(self, label):
        from confluent_kafka import KafkaException

        for _ in range(30):
            try:
                self.producer.commit_transaction(CALL_TIMEOUT_S)
                if self.fenced == label:
                    self.emit("zombie", label, "commit_transaction returned after a successor producer initialized")
                self.emit("x", label, "committed", "")
                return "committed"
            except KafkaException as e:
                err = e.args[0]
                if err.retriable() and not err.txn_requires_abort() and not err.fatal():
                    self.error("commit_transaction (retried)", err)
                    continue
                raise
        self.emit("x", label, "unknown", "commit kept failing")
        return "unknown"

    def fence(self, label):
        """A successor producer of the same transactional.id initializes (and is dropped):
        the broker bumps the epoch and aborts the open transaction."""
        from confluent_kafka import KafkaException, Producer

        successor = Producer(self.producer_config())
        try:
            successor.init_transactions(CALL_TIMEOUT_S)
            self.fenced = label
            self.emit("fence", label)
        except KafkaException as e:
            self.error("successor init_transactions", e.args[0])
        successor.flush(0)

    def recover(self, label, err):
        """After an error inside the transaction: abort it if the client says it may, else
        the producer goes (its transaction ends when the next one of its id initializes)."""
        from confluent_kafka import KafkaException

        self.error("transaction", err)
        if self.fenced == label:
            # The successor's InitProducerId aborted it; this producer is done for.
            self.emit("x", label, "aborted", "fenced by a successor producer")
            return "unknown"
        if err.txn_requires_abort() and not err.fatal():
            try:
                self.producer.abort_transaction(CALL_TIMEOUT_S)
                self.emit("x", label, "aborted", f"after {err.name()}")
                return "aborted"
            except KafkaException as e:
                self.error("abort_transaction", e.args[0])
        self.emit("x", label, "unknown", f"{err.name()}: producer replaced")
        return "unknown"


def transformer_worker(cfg, out, stop):
    import faulthandler

    faulthandler.register(signal.SIGUSR1)  # the orchestrator asks where a stuck one is
    Transformer(cfg, out, stop).run()


def txn_worker(cfg, out, stop):
    {"feeder": feeder_worker, "transformer": transformer_worker}[cfg["kind"]](cfg, out, stop)


def worker_command(cfg):
    return [sys.executable, os.path.abspath(__file__), "worker", json.dumps(cfg)]


# --------------------------------------------------------------------------
# The orchestrator
# --------------------------------------------------------------------------


class Options:
    def __init__(self, cycles=100, seed=None, min_interval=0.5, max_interval=2.0, early_kills=0.1,
                 ending_kills=0.4, app_kills=0.15, java=True, verify_every=20, sigterm=True, term_timeout_s=5.0,
                 time_limit_s=None, keep_data=False, quiet=False, cluster=False):
        self.cycles = cycles
        self.cluster = cluster
        self.seed = seed if seed is not None else random.randrange(1 << 31)
        self.min_interval = min_interval
        self.max_interval = max_interval
        self.early_kills = early_kills
        self.ending_kills = ending_kills
        self.app_kills = app_kills
        self.java = java
        self.sigterm = sigterm
        self.term_timeout_s = term_timeout_s
        self.verify_every = verify_every
        self.time_limit_s = time_limit_s if time_limit_s is not None else 180 + 5 * cycles
        self.keep_data = keep_data
        self.quiet = quiet


class TxnLog:
    """What the workers reported, fed by their reader threads."""

    def __init__(self, path):
        self.lock = threading.Lock()
        self.file = open(path, "a")  # every report, for a failure's post-mortem
        self.begun = {}  # label -> (count, t)
        self.outcome = {}  # label -> (committed | aborted | unknown, t, detail)
        self.events = collections.defaultdict(list)  # transformer -> [(t, kind)] for the kill phases
        self.producers = collections.Counter()  # transformer -> producers initialized
        self.runs = collections.Counter()  # transformer -> processes started
        self.started = {}  # transformer -> whether its current process has said it runs
        self.errors = []  # (worker, where, name, retriable, fatal, text, t)
        self.crashes = []
        self.fences = collections.Counter()  # transformer -> transactions fenced by a successor
        self.zombies = []  # (transformer, label, what, t): a fenced producer's call that succeeded
        self.hangs = []  # (transformer, label, call, t): a client call blocked past its timeout
        self.fed = (0, 0)
        self.ending = threading.Condition(self.lock)  # notified on "ending" and "b" reports
        self.ending_count = 0
        self.begun_count = collections.Counter()  # transformer -> transactions begun

    def sink(self, worker, item):
        kind = item[0]
        with self.lock:
            self.file.write(json.dumps([worker, *item]) + "\n")
            if kind == "b":
                _, _inst, label, count, t = item
                self.begun[label] = (count, t)
                self.events[worker].append((t, "in a transaction"))
                self.begun_count[worker] += 1
                self.ending.notify_all()
            elif kind == "ending":
                self.events[worker].append((item[4], "ending one"))
                self.ending_count += 1
                self.ending.notify_all()
            elif kind == "x":
                _, _inst, label, outcome, detail, t = item
                self.outcome[label] = (outcome, t, detail)
                self.events[worker].append((t, "between two"))
            elif kind == "p":
                self.producers[worker] += 1
            elif kind == "i":
                self.runs[worker] += 1
                self.started[worker] = True
                self.events[worker].append((item[-1], "between two"))
                self.ending.notify_all()
            elif kind == "e":
                self.errors.append((worker, *item[2:]))
            elif kind == "fed":
                self.fed = (item[2], item[3])
            elif kind == "crash":
                self.crashes.append((worker, *item[2:]))
            elif kind == "fence":
                self.fences[worker] += 1
            elif kind == "hang":
                self.hangs.append((worker, *item[2:]))
                self.events[worker].append((item[-1], "not running"))
            elif kind == "zombie":
                self.zombies.append((worker, *item[2:]))

    def phase(self, worker, t):
        with self.lock:
            ev = self.events.get(worker, [])
            k = bisect.bisect_right(ev, (t, "\uffff"))
            return ev[k - 1][1] if k else "between two"

    def outcomes(self, before=None):
        with self.lock:
            return {label: o for label, o in self.outcome.items() if before is None or o[1] < before}


class ClusterNodes:
    """The cluster form's stand-in for the lone broker: clustercrash's three nodes. A kill takes
    one node down, chosen at random, so the transactions' coordinators, the group's and the
    partitions' leaders each die in turn; a start brings every node that is down back."""

    def __init__(self, binary, base_dir, rng, args):
        self.cluster = Cluster(binary, base_dir, args)
        self.bootstrap = self.cluster.bootstrap
        self.rng = rng
        self.starts = 0

    @property
    def proc(self):
        """A process that is down (or the first), for messages about it."""
        dead = self.cluster.dead()
        return self.cluster.nodes[dead[0] if dead else min(self.cluster.nodes)].proc

    def log_paths(self):
        return [n.log_path for n in self.cluster.nodes.values()]

    def running(self):
        return not self.cluster.dead()

    def start(self):
        """Formats and starts the cluster the first time, then restarts the nodes that are
        down, together (a node serves once a quorum of voters runs); returns the seconds to
        the last one's answer, twice (the lone broker's accept and Metadata times)."""
        t0 = now()
        if self.starts == 0:
            self.cluster.start()
        else:
            dead = self.cluster.dead()
            spawned = {k: self.cluster.nodes[k].spawn() for k in dead}
            for k in dead:
                self.cluster.nodes[k].wait_ready(spawned[k])
        self.starts += 1
        return now() - t0, now() - t0

    def kill_one(self):
        self.cluster.nodes[self.rng.choice(sorted(self.cluster.nodes))].kill9()

    def kill9(self):
        self.cluster.kill9_all()

    def terminate(self, timeout):
        """SIGTERM to one node at random (the clean stop under load)."""
        return self.cluster.nodes[self.rng.choice(sorted(self.cluster.nodes))].terminate(timeout)

    def terminate_all(self, timeout):
        """SIGTERM to every node at once: (the worst exit code, or None if one still runs,
        seconds)."""
        t0 = now()
        for n in self.cluster.nodes.values():
            if n.running():
                os.kill(n.proc.pid, signal.SIGTERM)
        codes = []
        for n in self.cluster.nodes.values():
            try:
                codes.append(n.proc.wait(max(0.1, t0 + timeout - now())))
            except subprocess.TimeoutExpired:
                return None, now() - t0
        return max(codes, key=abs), now() - t0


class TxnCrashTest(LoadRun):
    """Takes from ``LoadRun`` the private copy of the binary, the data directory, the time
    bound, the failures and the handling of workers; its checks of plain records do not apply."""

    def __init__(self, opts: Options, binary: str):
        super().__init__(opts, binary, "gregor-txncrash-")
        args = ["--auto-create-topics-enable", "false", "--transaction-abort-timed-out-transaction-cleanup-interval-ms", "1000"]
        if opts.cluster:
            self.broker = ClusterNodes(self.binary, self.base_dir, self.rng, args)
        else:
            self.broker = Broker(self.binary, os.path.join(self.base_dir, "data"),
                                 os.path.join(self.base_dir, "gregor.stderr.log"), _free_port(), args)
        self.bootstrap = self.broker.bootstrap
        tag = uuid.UUID(int=self.rng.getrandbits(128)).hex[:6]
        self.input, self.output = f"txn-in-{tag}", f"txn-out-{tag}"
        self.group = f"txn-group-{tag}"
        self.transformers = CK_TRANSFORMERS + ((JAVA_TRANSFORMER,) if opts.java else ())
        self.txn_ids = {w: f"txn-crash-{tag}-{w}" for w in self.transformers}
        self.java_prefix = None  # java ... -cp ... (compiled at the start)
        self.log_ = TxnLog(os.path.join(self.base_dir, "reports.jsonl"))
        self.kill_how = []  # per kill: random, early, at an end, at a fencing
        self.late = {}  # transformer killed -> when it is to start again
        self.transformer_cfgs = {}
        self.app_kills = []  # (t, transformer) of each transformer SIGKILLed
        self.startups = []
        self.verifies = []  # (label, seconds, stats)
        self.prepared_at_start = 0
        self.timeout_aborts = 0
        self.fencing_aborts = 0
        self.late_restarts = 0
        self.broker_notable = []

    # -- setup ------------------------------------------------------------

    def create_topics(self):
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({"bootstrap.servers": self.bootstrap, "socket.timeout.ms": 10000, "log_level": 0})
        # A cluster's topics have three replicas, two of them needed for a write.
        replicas, configs = (3, {"min.insync.replicas": "2"}) if self.o.cluster else (1, {})
        futures = admin.create_topics([NewTopic(self.input, num_partitions=INPUT_PARTITIONS, replication_factor=replicas, config=configs),
                                       NewTopic(self.output, num_partitions=OUTPUT_PARTITIONS, replication_factor=replicas,
                                                config=configs)],
                                      request_timeout=15)
        for f in futures.values():
            f.result(timeout=20)

    def start_workers(self):
        common = {"bootstrap": self.bootstrap, "max_seconds": self.o.time_limit_s + 30}
        feeder = dict(common, kind="feeder", name="feeder", topic=self.input, partitions=INPUT_PARTITIONS,
                      per_s=FEED_PER_S)
        self.workers["feeder"] = Worker("feeder", worker_command(feeder), self.base_dir, self.log_.sink)
        for i, name in enumerate(self.transformers):
            self.transformer_cfgs[name] = dict(
                common, kind="transformer", name=name, group=self.group, txn_id=self.txn_ids[name], input=self.input,
                output=self.output, output_partitions=OUTPUT_PARTITIONS, seed=self.o.seed * 31 + i, run=1)
            self.workers[name] = Worker(name, self.transformer_command(name), self.base_dir, self.log_.sink)

    def compile_java(self):
        classes = os.path.join(self.base_dir, "java-classes")
        tmp = os.path.join(self.base_dir, "java-tmp")
        os.makedirs(classes)
        os.makedirs(tmp)
        jars = kafka_client_jars()
        compile_programs(classes, jars, ["TxnTransformer.java", "CrashProducer.java", "Json.java"])
        self.java_prefix = [JAVA, *JVM_FLAGS, f"-Djava.io.tmpdir={tmp}", "-cp", os.pathsep.join([classes, *jars]),
                            "TxnTransformer"]

    def transformer_command(self, name):
        cfg = self.transformer_cfgs[name]
        if name != JAVA_TRANSFORMER:
            return worker_command(cfg)
        args = {"bootstrap": cfg["bootstrap"], "group": cfg["group"], "txn-id": cfg["txn_id"], "name": name,
                "run": cfg["run"], "seed": cfg["seed"], "input": cfg["input"], "output": cfg["output"],
                "output-partitions": cfg["output_partitions"], "max-runtime-ms": int(cfg["max_seconds"] * 1000),
                "txn-timeout-ms": TXN_TIMEOUT_MS}
        return self.java_prefix + [x for k, v in args.items() for x in (f"--{k}", str(v))]

    def kill_transformer(self):
        """SIGKILLs a transformer 0..10 ms into a transaction (an application crash) and starts
        it again: the new process's producer fences the old one and aborts its transaction. One
        in three stays down until the broker has aborted that transaction for its timeout.
        Returns the transformer restarted now, or None."""
        running = [w for w in self.transformers if w not in self.late]
        if len(running) < 2:
            return None
        name = self.rng.choice(running)
        with self.log_.lock:
            seen = self.log_.begun_count[name]
            self.log_.ending.wait_for(lambda: self.log_.begun_count[name] > seen, timeout=2.0)
        time.sleep(self.rng.uniform(0.0, 0.01))
        old = self.workers[name]
        old.kill()
        old.reader.join(5)
        self.app_kills.append((now(), name))
        with self.log_.lock:
            self.log_.events[name].append((now(), "not running"))
        if self.rng.random() < 1 / 3:
            self.late[name] = now() + LATE_RESTART_S
            return None
        self.start_transformer(name)
        return name

    def start_transformer(self, name):
        """Starts a killed transformer again (its next run)."""
        if self.late.pop(name, None) is not None:
            self.late_restarts += 1
        old = self.workers[name]
        cfg = self.transformer_cfgs[name]
        os.replace(old.stderr_path, f"{old.stderr_path}.{cfg['run']}")
        cfg["run"] += 1
        cfg["seed"] += 1000
        with self.log_.lock:
            self.log_.started[name] = False
        self.workers[name] = Worker(name, self.transformer_command(name), self.base_dir, self.log_.sink)

    def start_late(self, everyone=False):
        for name, due in list(self.late.items()):
            if everyone or now() >= due:
                self.start_transformer(name)
        for name in self.transformers:
            if name not in self.late and self.workers[name].proc.poll() == HUNG_EXIT:
                self.workers[name].reader.join(5)
                self.start_transformer(name)

    def wait_for_commits(self, what, since, timeout=60.0):
        """Until every transformer has committed a transaction begun after ``since``."""
        t_end = now() + timeout
        while True:
            done = {label.split(".")[0] for label, (o, t, _d) in self.log_.outcomes().items()
                    if o == "committed" and self.log_.begun.get(label, (0, 0))[1] > since}
            missing = [w for w in self.transformers if w not in done]
            if not missing:
                return
            if now() > t_end:
                for w in missing:
                    if w != JAVA_TRANSFORMER and self.workers[w].proc.poll() is None:
                        os.kill(self.workers[w].proc.pid, signal.SIGUSR1)  # its stack to its stderr log
                self.failures.add("stuck", (what, tuple(missing)),
                                  f"{', '.join(missing)} committed no transaction within {timeout:.0f}s {what}")
                return
            if not self.broker.running():
                raise RuntimeError(f"broker exited by itself (code {self.broker.proc.returncode}) {what}")
            self.start_late()
            time.sleep(0.1)

    # -- kills ------------------------------------------------------------

    def kill_and_restart(self, cycle, restarted=None):
        how = "random"
        r = self.rng.random()
        if restarted is not None and r < 0.5:
            # While the restarted transformer's InitProducerId fences its last producer and
            # aborts the transaction it left open (markers written, CONCURRENT_TRANSACTIONS
            # until then): 0..200 ms after it says it runs (Python or Java started).
            with self.log_.lock:
                self.log_.ending.wait_for(lambda: self.log_.started.get(restarted), timeout=5.0)
            time.sleep(self.rng.uniform(0.0, 0.2))
            how = "at a fencing"
        elif r < self.o.early_kills:
            time.sleep(self.rng.uniform(0.0, self.o.min_interval))
            how = "early"
        elif r < self.o.early_kills + self.o.ending_kills:
            # At a transformer's commit/abort call: within 0..4 ms of it (EndTxn and its markers
            # take a few ms).
            time.sleep(self.rng.uniform(0.2, self.o.min_interval))
            with self.log_.lock:
                seen = self.log_.ending_count
                self.log_.ending.wait_for(lambda: self.log_.ending_count > seen, timeout=self.o.max_interval)
            time.sleep(self.rng.uniform(0.0, 0.004))
            how = "at an end"
        else:
            time.sleep(self.rng.uniform(self.o.min_interval, self.o.max_interval))
        if not self.broker.running():
            raise RuntimeError(f"broker died on its own before kill {cycle} (exit code {self.broker.proc.returncode})")
        self.kills.append(now())
        self.kill_how.append(how)
        if self.o.cluster:
            self.broker.kill_one()
        else:
            self.broker.kill9()
        acc, meta = self.broker.start()
        self.startups.append((self.broker.starts, acc, meta))
        self.restarts.append(now())

    def kill_cycles(self):
        for cycle in range(1, self.o.cycles + 1):
            self.check_time(f"kill cycle {cycle}")
            # At least one in every run (of 2 cycles or more) that has them.
            self.start_late()
            restarted = None
            if self.rng.random() < self.o.app_kills or (cycle == 2 and self.o.app_kills and not self.app_kills):
                restarted = self.kill_transformer()
            self.kill_and_restart(cycle, restarted)
            if cycle % 10 == 0:
                o = collections.Counter(x[0] for x in self.log_.outcomes().values())
                self.log(f"cycle {cycle}/{self.o.cycles}: transactions {dict(o)}")
            if self.o.verify_every and cycle % self.o.verify_every == 0 and cycle != self.o.cycles:
                self.verify(f"kill cycle {cycle}")

    def sigterm_stop(self):
        """A clean stop with transactions under way (markers in flight stop at the shutdown;
        the restart finishes them): exit 0 within --term-timeout, then a restart."""
        time.sleep(self.rng.uniform(self.o.min_interval, self.o.max_interval))
        self.stops.append(now())
        rc, secs = self.broker.terminate(self.o.term_timeout_s)
        if rc is None:
            self.broker.kill9()
            self.failures.add("sigterm", "timeout", f"broker still running {self.o.term_timeout_s}s after SIGTERM "
                                                    f"under transactional load (killed)")
        elif rc != 0:
            self.failures.add("sigterm", "rc", f"broker exited with code {rc} after SIGTERM under transactional load")
        self.term = {"rc": rc, "seconds": secs}
        acc, meta = self.broker.start()
        self.startups.append((self.broker.starts, acc, meta))
        self.restarts.append(now())

    # -- checks -----------------------------------------------------------

    def group_offsets(self):
        """The group's committed offsets on the input topic (stable: OffsetFetch waits for a
        transaction holding some), {partition: offset}."""
        from confluent_kafka import Consumer, KafkaException, TopicPartition

        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": self.group, "isolation.level": "read_committed",
                      "enable.auto.commit": False, "socket.timeout.ms": 10000, "error_cb": lambda err: None,
                      "log_level": 0})
        try:
            for attempt in range(10):
                try:
                    got = c.committed([TopicPartition(self.input, p) for p in range(INPUT_PARTITIONS)], timeout=10)
                    return {tp.partition: max(tp.offset, 0) for tp in got}
                except KafkaException:
                    if attempt == 9:
                        raise
                    time.sleep(0.5)
        finally:
            c.close()

    def wait_stable(self, timeout):
        """Until the output's last stable offset is its high watermark everywhere (no
        transaction open); False if not within ``timeout`` s."""
        from confluent_kafka import Consumer, TopicPartition

        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "txncrash-lso", "log_level": 0,
                      "isolation.level": "read_committed", "error_cb": lambda err: None})
        u = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "txncrash-lso", "log_level": 0,
                      "isolation.level": "read_uncommitted", "error_cb": lambda err: None})
        try:
            t_end = now() + timeout
            while now() < t_end:
                tps = [TopicPartition(self.output, p) for p in range(OUTPUT_PARTITIONS)]
                lso = [watermarks(c, tp)[1] for tp in tps]
                hw = [watermarks(u, tp)[1] for tp in tps]
                if lso == hw:
                    return True
                time.sleep(0.2)
            return False
        finally:
            c.close()
            u.close()

    def read(self, topic, partitions, isolation):
        tps = {p: (topic, p) for p in range(partitions)}

        def on_error(p, err):
            self.failures.add("read-error", (topic, p, err.name()), f"reading {topic}[{p}] ({isolation}): {err.str()}")

        marks, recs = read_partitions(self.bootstrap, tps, on_error, 90.0, isolation=isolation)
        # Only below the end read first (read_committed: the last stable offset), so that each
        # read is one cut of the log.
        ends = {p: hi for p, (_lo, hi) in marks.items()}
        return ends, {p: [r for r in rs if r[0] < ends[p]] for p, rs in recs.items()}

    def verify(self, label, final=False):
        t_cut = now()
        time.sleep(0.2)  # outcomes reported before t_cut reach the reader threads
        t0 = now()
        # Mid-run in a cluster, a partition's new leader shows a high watermark behind its
        # predecessor's until its followers fetch at its epoch (Kafka's do too), so records of a
        # committed transaction can be briefly past what any consumer reads. A mid-run cut that
        # finds only such records missing (a commit not in the log yet, inputs owed no visible
        # output) is taken again before it fails; a real loss stays missing, and the final
        # check, with nothing moving, fails at once.
        retries = 5 if self.o.cluster and not final else 0
        for cut in range(1, retries + 2):
            found = []
            committed = self.group_offsets()
            lso, visible = self.read(self.output, OUTPUT_PARTITIONS, "read_committed")
            _hw, everything = self.read(self.output, OUTPUT_PARTITIONS, "read_uncommitted")
            # Last: it must hold every input the output reads name.
            _hw, inputs = self.read(self.input, INPUT_PARTITIONS, "read_uncommitted")
            stats = self.check(label, final, t_cut, committed, inputs, lso, visible, everything,
                               lambda *failure: found.append(failure))
            if cut > retries or not found or not {kind for kind, *_ in found} <= {"input-not-transformed", "commit-lost"}:
                break
            time.sleep(1.0)
        for failure in found:
            self.failures.add(*failure)
        if cut > 1:
            stats["cuts taken"] = cut
        self.verifies.append((label, now() - t0, stats))
        self.log(f"checked at {label}: {stats}")

    def check(self, label, final, t_cut, committed, inputs, lso, visible, everything, fail):
        """Mid-run, the read_committed read stops at each partition's last stable offset: a
        transaction still open there (its marker not written yet, or an earlier transaction of
        the other transformer still open) hides what lies at or above it, committed or not.
        So mid-run a record is owed to read_committed only below that offset; at the end
        (nothing open) every committed record is. Each failure goes to ``fail(kind, key,
        message)``."""
        outcomes = self.log_.outcomes()
        committed_before = {txn for txn, o in outcomes.items() if o[0] == "committed" and o[1] < t_cut}
        aborted = {txn for txn, o in outcomes.items() if o[0] == "aborted"}
        with self.log_.lock:
            begun = dict(self.log_.begun)
        seq_at = {}  # (partition, offset) -> seq of the input record there
        for p, rs in inputs.items():
            for off, value, _k, _h in rs:
                parsed = parse_value(value) if value is not None else None
                seq_at[(p, off)] = parsed[1] if parsed and parsed[0] == "feed" else None

        def parse_all(recs):
            """{txn: {i: (p, off)}}, {txn: count}, [(txn, i, src, seq, p, off)]"""
            txns, counts, flat = collections.defaultdict(dict), {}, []
            for p, rs in recs.items():
                for off, value, _k, _h in rs:
                    m = OUTPUT_VALUE.match(value.decode(errors="replace")) if value is not None else None
                    if m is None:
                        fail("corrupt", (p, off), f"{label}: output[{p}] offset {off} is no record written here: "
                                                  f"{value!r:.120}")
                        continue
                    txn, i, count = m.group(1), int(m.group(2)), int(m.group(3))
                    src, seq = (int(m.group(4)), int(m.group(5))), int(m.group(6))
                    if i in txns[txn]:
                        q, o = txns[txn][i]
                        fail("txn-record-twice", (txn, i), f"{label}: record {i} of transaction {txn} is in the log "
                                                            f"twice (output[{q}] offset {o} and output[{p}] offset {off})")
                    txns[txn][i] = (p, off)
                    counts[txn] = count
                    flat.append((txn, i, src, seq, p, off))
            return txns, counts, flat

        shown, counts, flat = parse_all(visible)
        logged, all_counts, flat_all = parse_all(everything)
        sources = {}  # (input partition, offset) -> (txn, i, output partition, offset), visible ones
        for txn, i, src, seq, p, off in flat:
            where = f"output[{p}] offset {off}"
            if txn in aborted:
                o = outcomes[txn]
                fail("aborted-visible", txn, f"{label}: record {i}/{counts[txn]} of transaction {txn}, aborted "
                                             f"({o[2]}) at t={o[1] - self.t_begin:.3f}s, is visible to read_committed "
                                             f"at {where}")
            if src in sources:
                other = sources[src]
                fail("input-twice", src, f"{label}: input[{src[0]}] offset {src[1]} transformed twice: record "
                                         f"{other[1]} of {other[0]} (output[{other[2]}] offset {other[3]}) and record "
                                         f"{i} of {txn} ({where}); not exactly once")
            sources[src] = (txn, i, p, off)
            if seq_at.get(src, "none") != seq:
                fail("bad-source", src, f"{label}: record {i} of {txn} at {where} names input[{src[0]}] offset "
                                        f"{src[1]} seq {seq}, but the input has "
                                        f"{'nothing' if src not in seq_at else f'seq {seq_at[src]}'} there")
        # Whole: what the log holds of a visible or committed transaction below the stable
        # offsets is visible, and at the end all of it is, i = 0..of-1.
        for txn in set(shown) | committed_before:
            in_log = logged.get(txn, {})
            o = outcomes.get(txn)
            state = f"{o[0]} at t={o[1] - self.t_begin:.3f}s" if o else "no end reported"
            if not in_log:
                fail("commit-lost", txn, f"{label}: transaction {txn} ({begun.get(txn, ('?',))[0]} records, "
                                         f"{state}) is not in the log")
                continue
            owed = {i for i, (p, off) in in_log.items() if final or off < lso[p]}
            if final:
                owed |= set(range(all_counts[txn]))
            missing = sorted(owed - set(shown.get(txn, {})))
            if missing:
                where = [f"output[{in_log[i][0]}] offset {in_log[i][1]}" if i in in_log else "not in the log"
                         for i in missing[:3]]
                fail("torn" if txn in shown else "commit-invisible", txn,
                     f"{label}: transaction {txn} ({state}) is visible in part: "
                                  f"{len(shown.get(txn, {}))} of {all_counts[txn]} records; missing i={missing[:10]} "
                                  f"({', '.join(where)}; read_committed read to {lso})")
        # Exactly once against the group's committed offsets; mid-run an input may be owed
        # only by a record the stable offset hides.
        hidden = {src for txn, _i, src, _s, p, off in flat_all if off >= lso[p] and txn not in aborted}
        for p in range(INPUT_PARTITIONS):
            c = committed.get(p, 0)
            missing = [off for off in range(c) if (p, off) not in sources and (final or (p, off) not in hidden)]
            if missing:
                fail("input-not-transformed", p,
                     f"{label}: group {self.group} committed offset {c} on input[{p}], but {len(missing)} input "
                     f"records below it are the source of no visible output (first offsets {missing[:5]}); "
                     f"{self.transformed_by(p, missing, flat_all, outcomes)}")
            if final:
                beyond = sorted(off for (q, off) in sources if q == p and off >= c)
                if beyond:
                    t, i, op, oo = sources[(p, beyond[0])]
                    fail("output-without-offsets", p,
                         f"{label}: {len(beyond)} visible outputs come from input[{p}] at or above the group's "
                         f"committed offset {c}, e.g. offset {beyond[0]} in {t} (output[{op}] offset {oo}): their "
                         f"transaction committed output without its offsets")
        # read_uncommitted: the aborted transactions' records are there (so the checks above
        # could fail).
        aborted_seen = sum(1 for txn, *_ in flat_all if txn in aborted)
        if final and aborted and not aborted_seen:
            fail("no-aborted-records", "", f"{label}: {len(aborted)} transactions aborted, yet read_uncommitted "
                                           f"shows none of their records: the checks above could not have failed")
        return {
            "input records": sum(map(len, inputs.values())),
            "committed offsets": sum(committed.values()),
            "visible records": len(flat),
            "visible transactions": len(shown),
            "records in the log": len(flat_all),
            "aborted records in the log": aborted_seen,
        }

    def transformed_by(self, p, missing, flat_all, outcomes):
        """Which transactions in the log (aborted ones too) took the missing inputs, and how
        each ended: tells a lost commit from offsets committed with the wrong transaction."""
        wanted = set(missing)
        takers = collections.Counter(txn for txn, _i, src, _s, _p, _o in flat_all if src[0] == p and src[1] in wanted)
        if not takers:
            return "no transaction in the log took them"
        def ended(txn):
            o = outcomes.get(txn)
            return f"{o[0]} ({o[2] or '-'}) at t={o[1] - self.t_begin:.3f}s" if o else "no end reported"
        return "taken by " + ", ".join(f"{txn} ({n} records, {ended(txn)})" for txn, n in takers.most_common(5))

    # -- the end ------------------------------------------------------------

    def scan_broker_log(self):
        """Panics fail the run; counts what the coordinator logs of its recoveries."""
        paths = self.broker.log_paths() if self.o.cluster else [self.broker.log_path]
        self.broker_notable = [line for path in paths for line in self.scan_log(path, "broker", self.count_recoveries)]

    def count_recoveries(self, line):
        # A lone broker finishes them at its restart, a cluster's next coordinator when it
        # takes the id's partition over.
        if "completing a transaction prepared before the restart" in line or "completing a transaction the previous coordinator prepared" in line:
            self.prepared_at_start += 1
        if "transaction timed out; aborting it" in line:
            self.timeout_aborts += 1
        if "InitProducerId fenced a producer with a transaction open" in line:
            self.fencing_aborts += 1

    def classify(self):
        with self.log_.lock:
            crashes = list(self.log_.crashes)
        for worker, msg, tb, t in crashes:
            self.failures.add("worker-crash", worker, f"worker {worker} crashed at t={t - self.t_begin:.1f}s: {msg}\n{tb}")
        for worker, label, what, t in self.log_.zombies:
            self.failures.add("zombie-not-fenced", label, f"{worker}: transaction {label}: {what} "
                                                          f"(t={t - self.t_begin:.3f}s)")

    def run(self):
        self.log(f"seed {self.o.seed}, {self.o.cycles} kill cycles, broker {self.binary_source[0]} "
                 f"(built {self.binary_source[1]}) on {self.bootstrap}, data in {self.base_dir}")
        error = None
        try:
            acc, meta = self.broker.start()
            self.startups.append((1, acc, meta))
            if self.o.java:
                self.compile_java()
            self.create_topics()
            self.start_workers()
            self.wait_for_commits("after the start", 0.0)
            self.log("feeder and transformers running; killing the broker")
            self.kill_cycles()
            self.start_late(everyone=True)
            if self.o.sigterm:
                self.sigterm_stop()
            self.wait_for_commits("after the last restart", self.restarts[-1] if self.restarts else 0.0)
            self.stop_workers()
            self.check_time("final check")
            if not self.wait_stable(TXN_TIMEOUT_MS / 1000 + 15):
                self.failures.add("open-transaction", "", "a transaction on the output stayed open after the "
                                                          "transformers stopped (last stable offset < high watermark)")
            self.verify("the end (transformers stopped)", final=True)
            rc, secs = self.broker.terminate_all(30) if self.o.cluster else self.broker.terminate(10)
            if rc != 0:
                self.failures.add("final-stop", rc, f"final SIGTERM: exit code {rc} after {secs:.1f}s")
        except Exception as e:
            error = self.aborted(e)
        finally:
            self.end_workers()
            self.broker.kill9()
        self.classify()
        self.scan_broker_log()
        return self.report(TxnReport, error)


class TxnReport:
    def __init__(self, t: TxnCrashTest, error):
        self.t = t
        self.error = error
        self.ok = not t.failures
        self.table = self._table()

    def _table(self):
        t = self.t
        lg = t.log_
        outcomes = lg.outcomes()
        lines = [f"Gregor transaction crash test: {'PASS' if self.ok else 'FAIL'}  seed={t.o.seed}  "
                 f"kill cycles={len(t.kills)}/{t.o.cycles}  wall={now() - t.t_begin:.0f}s"]
        lines.append(f"input: {lg.fed[0]} records produced by the feeder, {lg.fed[1]} acknowledged "
                     f"({INPUT_PARTITIONS} partitions); output: {OUTPUT_PARTITIONS} partitions")
        by = collections.defaultdict(collections.Counter)
        for label, (o, _t, detail) in outcomes.items():
            kind = o if o != "aborted" or detail == "on purpose" else (
                "aborted (fenced)" if detail.startswith("fenced") else "aborted (error)")
            by[label.split(".")[0]][kind] += 1
        errs = collections.Counter(e[0] for e in lg.errors)
        for w in t.transformers:
            c = by[w]
            recs = sum(lg.begun[label][0] for label, (o, _t, _d) in outcomes.items()
                       if o == "committed" and label.startswith(w + "."))
            lines.append(f"{w} ({t.txn_ids[w]}): {sum(c.values())} transactions ended: {c['committed']} committed "
                         f"({recs} records), {c['aborted']} aborted on purpose, {c['aborted (error)']} aborted after "
                         f"an error, {c['aborted (fenced)']} fenced by a successor, {c['unknown']} unknown (producer "
                         f"replaced); {lg.runs[w]} processes, "
                         f"{lg.producers[w]} producers initialized; {errs[w]} client errors")
        phases = collections.Counter()
        for tk in t.kills:
            for w in t.transformers:
                phases[t.log_.phase(w, tk)] += 1
        hows = collections.Counter(t.kill_how)
        lines.append(f"transformer processes SIGKILLed in a transaction and restarted: {len(t.app_kills)} "
                     f"({t.late_restarts} after the broker's timeout abort); the broker aborted a timed-out "
                     f"transaction {t.timeout_aborts} times, a fenced producer's {t.fencing_aborts} times; "
                     f"transformers restarted after a client call hung past its timeout (librdkafka#5456): "
                     f"{len(t.log_.hangs)}")
        lines.append(f"broker kills: {dict(hows)}; transformers found {dict(phases)}; the broker completed a prepared "
                     f"transaction at start-up {t.prepared_at_start} times")
        if t.term:
            lines.append(f"SIGTERM under transactional load: exit code {t.term['rc']} after "
                         f"{t.term['seconds'] * 1000:.0f} ms")
        restarts = [s[2] * 1000 for s in t.startups[1:]]
        if restarts:
            lines.append(f"restart: exec -> Metadata answer p50 {statistics.median(restarts):.0f} ms, "
                         f"max {max(restarts):.0f} ms")
        for label, secs, stats in t.verifies:
            lines.append(f"check at {label} ({secs:.1f}s): " + ", ".join(f"{k} {v}" for k, v in stats.items()))
        by_name = collections.Counter(e[2] for e in lg.errors)
        if by_name:
            lines.append("client errors by name: " + ", ".join(f"{k} x{v}" for k, v in by_name.most_common(12)))
        lines.append(f"broker log: {len(t.broker_notable)} ERROR/WARN lines" +
                     (": " + " | ".join(x[:160] for x in t.broker_notable[:3]) if t.broker_notable else ""))
        if t.failures:
            for node in (t.broker.cluster.nodes.values() if t.o.cluster else [t.broker]):
                lines.append(f"broker stderr tail ({node.log_path}):")
                lines.extend("  " + x for x in node.log_tail(30).splitlines())
            lines.append(f"FAILURES ({dict(t.failures.counts)}):")
            lines.extend("  " + x for x in t.failures.items)
            lines.append(f"data and logs kept in {t.base_dir}")
        return "\n".join(lines)


def run(opts: Options, binary: str | None = None) -> TxnReport:
    if binary is None:
        from conftest import gregor_binary

        binary = gregor_binary()
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        raise FileNotFoundError(f"Gregor binary not found or not executable: {binary} "
                                "(build it with scripts/run or scripts/test, or set GREGOR_BIN)")
    if opts.java:
        if JAVA is None or JAVAC is None:
            raise FileNotFoundError("java and javac are not installed (the Java transformer needs a JDK 17+; "
                                    "--no-java runs without it)")
        kafka_client_jars()
    return TxnCrashTest(opts, binary).run()


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["worker"]:
        worker_main(json.loads(argv[1]), txn_worker)
        return 0
    ap = argparse.ArgumentParser(prog="scripts/crashtest --txn", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cycles", type=int, default=100, help="SIGKILL/restart cycles (default 100)")
    ap.add_argument("--seed", type=int, default=None, help="random seed (default: random, printed)")
    ap.add_argument("--min-interval", type=float, default=0.5, help="shortest broker run between kills, s")
    ap.add_argument("--max-interval", type=float, default=2.0, help="longest broker run between kills, s")
    ap.add_argument("--early-kills", type=float, default=0.1, help="fraction of kills soon after the restart")
    ap.add_argument("--ending-kills", type=float, default=0.4,
                    help="fraction of kills aimed at a commit_transaction/abort_transaction call")
    ap.add_argument("--app-kills", type=float, default=0.15,
                    help="fraction of cycles that also SIGKILL a transformer in a transaction and start it again")
    ap.add_argument("--no-java", action="store_true", help="without the Java kafka-clients transformer")
    ap.add_argument("--no-sigterm", action="store_true", help="skip the clean stop under load after the kills")
    ap.add_argument("--term-timeout", type=float, default=5.0, help="SIGTERM must stop the broker within this, s")
    ap.add_argument("--verify-every", type=int, default=20, help="check every N cycles (0: only at the end)")
    ap.add_argument("--time-limit", type=float, default=None, help="bound for the whole run, s (default 180 + 5/cycle)")
    ap.add_argument("--keep-data", action="store_true", help="keep the data directory and logs even on success")
    ap.add_argument("-q", "--quiet", action="store_true", help="only the report")
    ap.add_argument("--cluster", action="store_true",
                    help="three nodes (topics with three replicas, min.insync.replicas=2); each kill takes down "
                         "one node at random: a transaction coordinator, the group's, a partition leader")
    a = ap.parse_args(argv)
    opts = Options(cycles=a.cycles, seed=a.seed, min_interval=a.min_interval, max_interval=a.max_interval,
                   early_kills=a.early_kills, ending_kills=a.ending_kills, app_kills=a.app_kills, java=not a.no_java,
                   sigterm=not a.no_sigterm, term_timeout_s=a.term_timeout, verify_every=a.verify_every,
                   time_limit_s=a.time_limit, keep_data=a.keep_data, quiet=a.quiet, cluster=a.cluster)
    return exit_status(run, opts, missing=(FileNotFoundError, JavaSetupError))


if __name__ == "__main__":
    sys.exit(main())
