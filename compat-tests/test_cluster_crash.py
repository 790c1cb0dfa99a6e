"""Crash safety of a cluster, short form: the leader of the busiest partition SIGKILLed and
restarted 3 times under idempotent acks=all load from confluent-kafka and Java kafka-clients
producers, with a committing group (see clustercrash.py; ``scripts/crashtest --cluster`` runs
the long form, 20 kills).

Checks: no acknowledged record lost, none twice, offsets contiguous from 0, every consumed
range unchanged, committed offsets never behind an acknowledged commit or an earlier fetch, the
group consuming and committing again after every kill, every failover and rejoin within its
bound. The report has each kill's failover time (run with -s to see it on success).
CLUSTERCRASH_SEED replays a seed, CLUSTERCRASH_KILLS sets the kills.

It starts its own three nodes (on the same binary as the ``broker`` fixture) because it kills
them.
"""

import os

import pytest

import clustercrash
from conftest import gregor_binary
from java_build import JAVA, JAVAC, JavaSetupError

KILLS = int(os.environ.get("CLUSTERCRASH_KILLS", "3"))


@pytest.mark.skipif(JAVA is None or JAVAC is None, reason="java/javac are not installed (a JDK 17+ is needed)")
@pytest.mark.timeout(150)
def test_killing_the_busiest_leader_loses_and_duplicates_nothing():
    seed = os.environ.get("CLUSTERCRASH_SEED")
    opts = clustercrash.Options(kills=KILLS, seed=int(seed) if seed else None, time_limit_s=100, quiet=True)
    try:
        report = clustercrash.run(opts, gregor_binary())
    except (FileNotFoundError, JavaSetupError) as e:
        pytest.fail(str(e), pytrace=False)
    print(report.table)
    assert report.ok, "cluster crash test failed:\n" + report.table
