"""Crash safety of transactions, short form: 5 SIGKILL/restart cycles of a lone broker, and a
transformer process killed and restarted, while consume-transform-produce loops (two
confluent-kafka, and one Java kafka-clients where a JDK is installed) run exactly-once
transactions, then a SIGTERM under that load (see txncrash.py; ``scripts/crashtest --txn``
runs the long form, 100 cycles).

Checks: no record of an aborted transaction visible to read_committed, every committed
transaction visible whole and once, the group's committed offsets on the input exactly the
inputs of the visible output (none twice, none missing), and the aborted records there for
read_uncommitted. TXNCRASH_SEED replays a seed, TXNCRASH_CYCLES sets the cycles.

The cluster form runs the same on three nodes (topics with three replicas, min.insync.replicas
2), one of them SIGKILLed at random per cycle: a transaction's coordinator, the group's, a
partition leader (``scripts/crashtest --txn --cluster`` is its long form).

It starts its own brokers (on the same binary as the ``broker`` fixture) because it kills them.
"""

import os

import pytest

import txncrash
from conftest import gregor_binary
from java_build import JAVA, JAVAC, JavaSetupError

CYCLES = int(os.environ.get("TXNCRASH_CYCLES", "5"))


def run(cluster: bool):
    binary = gregor_binary()
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        pytest.fail(f"Gregor binary not found or not executable: {binary} "
                    "(build it, or point GREGOR_BIN at it)", pytrace=False)
    seed = os.environ.get("TXNCRASH_SEED")
    # A check mid-run too; at least one transformer is killed and restarted.
    opts = txncrash.Options(cycles=CYCLES, seed=int(seed) if seed else None, verify_every=3, app_kills=0.3,
                            java=JAVA is not None and JAVAC is not None, time_limit_s=110, quiet=True, cluster=cluster)
    try:
        report = txncrash.run(opts, binary)
    except JavaSetupError as e:
        pytest.fail(str(e), pytrace=False)
    print(report.table)
    assert report.ok, "transaction crash test failed:\n" + report.table


@pytest.mark.timeout(150)
def test_transactions_stay_exactly_once_across_kill9_restarts():
    run(cluster=False)



@pytest.mark.timeout(150)
def test_transactions_stay_exactly_once_when_cluster_nodes_are_kill9ed():
    run(cluster=True)
