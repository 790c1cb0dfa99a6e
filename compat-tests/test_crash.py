"""Crash safety, short form: ~10 SIGKILL/restart cycles under acks=all load, then a clean
SIGTERM stop under load (see crashtest.py; ``scripts/crashtest`` runs the long form).

Checks: no acknowledged record lost, no duplicates from idempotent producers, contiguous
offsets, committed group offsets never behind an acknowledged commit, fast restarts, SIGTERM
exits 0 quickly with only disconnect-type client errors; on a compacted topic the cleaner works
on throughout, every key's latest acknowledged write stays (only expired tombstones go); a topic
deleted mid-run stays deleted once acknowledged, is whole or gone after a kill during the
deletion, and starts empty with no committed offsets when created again. The seed is random
unless CRASHTEST_SEED is set; it is printed with the report (run with -s to see it on success).

It starts its own broker (on the same binary as the ``broker`` fixture) because it kills it.
"""

import os

import pytest

import crashtest
from conftest import gregor_binary

CYCLES = int(os.environ.get("CRASHTEST_CYCLES", "10"))


@pytest.mark.timeout(110)
def test_kill9_restart_cycles_and_sigterm_under_load():
    binary = gregor_binary()
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        pytest.fail(f"Gregor binary not found or not executable: {binary} "
                    "(build it, or point GREGOR_BIN at it)", pytrace=False)
    seed = os.environ.get("CRASHTEST_SEED")
    opts = crashtest.Options(cycles=CYCLES, seed=int(seed) if seed else None, verify_every=5,
                             time_limit_s=95, quiet=True)
    report = crashtest.run(opts, binary)
    print(report.table)
    assert report.ok, "crash test failed:\n" + report.table
