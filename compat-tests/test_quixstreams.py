"""quixstreams (a stream processing library on librdkafka) with exactly-once processing
against Gregor: a stateful word count commits its output, its changelog and its consumer
offsets in transactions; run twice, with new input between, the counts continue exactly and
read_committed shows each input counted once. quixstreams pins its own confluent-kafka, so
it gets a venv of its own, cached outside the clone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

from conftest import CLIENT_TIMEOUT_S, ck_consumer, ck_producer, kp_admin

QUIXSTREAMS = "quixstreams==3.28.1"
VENV = os.path.expanduser(os.environ.get("GREGOR_QUIX_VENV", "~/.cache/gregor-quix-venv"))
APP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "quix", "wordcount.py")
WORDS = ["apple", "pear", "apple", "fig", "pear", "apple"]


def quix_python() -> str:
    python = os.path.join(VENV, "bin", "python")
    stamp = os.path.join(VENV, "gregor-pins")
    if not os.path.exists(stamp) or open(stamp).read() != QUIXSTREAMS:
        subprocess.run([sys.executable, "-m", "venv", "--clear", VENV], check=True, timeout=120)
        subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", QUIXSTREAMS],
                       check=True, timeout=600)
        with open(stamp, "w") as f:
            f.write(QUIXSTREAMS)
    return python


def run_app(python, bootstrap, state_dir, count):
    done = subprocess.run([python, APP, bootstrap, state_dir, str(count)], capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, f"the word count failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert f"Count of {count} records reached" in done.stderr + done.stdout, done.stderr[-3000:]


def read_committed(bootstrap, expect):
    c = ck_consumer(bootstrap, **{"isolation.level": "read_committed", "auto.offset.reset": "earliest"})
    try:
        c.subscribe(["words-out"])
        out = []
        deadline = time.monotonic() + CLIENT_TIMEOUT_S
        while time.monotonic() < deadline and len(out) < expect:
            m = c.poll(0.5)
            if m is not None and m.error() is None:
                out.append(json.loads(m.value()))
        # Anything more would be counted twice.
        settle = time.monotonic() + 2
        while time.monotonic() < settle:
            m = c.poll(0.3)
            if m is not None and m.error() is None:
                out.append(json.loads(m.value()))
        return out
    finally:
        c.close()


def test_quixstreams_exactly_once_word_count_across_a_restart(broker):
    python = quix_python()
    producer = ck_producer(broker.bootstrap)

    def feed(rounds):
        for _ in range(rounds):
            for w in WORDS:
                producer.produce("words-in", key=w.encode(), value=w.encode())
        assert producer.flush(30) == 0

    with tempfile.TemporaryDirectory(prefix="gregor-quix-") as state:
        feed(50)
        run_app(python, broker.bootstrap, state, 300)
        # The second run resumes from the offsets and counts its transactions committed.
        feed(10)
        run_app(python, broker.bootstrap, state, 60)
    out = read_committed(broker.bootstrap, 360)
    assert len(out) == 360, f"{len(out)} results for 360 words"
    final = {}
    for o in out:
        final[o["word"]] = max(final.get(o["word"], 0), o["count"])
    assert final == {"apple": 180, "pear": 120, "fig": 60}
    assert sorted(o["count"] for o in out if o["word"] == "fig") == list(range(1, 61)), "each fig counted once"
    admin = kp_admin(broker.bootstrap)
    try:
        offsets = admin.list_group_offsets("wordcount")["wordcount"]
    finally:
        admin.close()
    assert sum(o.offset for o in offsets.values()) == 360, offsets
