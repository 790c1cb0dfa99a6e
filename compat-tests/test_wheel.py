"""The gregor-kafka wheel (scripts/wheel) installed into a fresh venv, as a user would: a sample
suite (wheel-sample/sample.py) passes on its kafka_broker and kafka_topic fixtures with
kafka-python and confluent-kafka, both on the broker the plugin starts and on the one
GREGOR_BOOTSTRAP names; and gregor.Broker serves soon after it is started.

The wheel carries the binary under test: with GREGOR_BIN=<target>/release/gregor it is built
from <target> (unless CARGO_TARGET_DIR says otherwise), where that binary was built."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from types import SimpleNamespace

import pytest

from conftest import REPO, kp_admin

HERE = os.path.dirname(os.path.abspath(__file__))
# The clients the sample uses, at the versions the compat suite pins.
SAMPLE_REQUIREMENTS = ("kafka-python", "confluent-kafka", "pytest")
SAMPLE_TESTS = 4
INSTALL_TIMEOUT_S = 600
SAMPLE_TIMEOUT_S = 240
STARTS = 10


def pinned(names):
    with open(os.path.join(HERE, "requirements.txt")) as f:
        pins = dict(re.match(r"([\w.-]+)==(\S+)", line).groups() for line in f if "==" in line)
    return [f"{name}=={pins[name]}" for name in names]


def build_wheel() -> str:
    env = dict(os.environ)
    binary = os.environ.get("GREGOR_BIN", "")
    if "CARGO_TARGET_DIR" not in env and os.path.basename(os.path.dirname(binary)) == "release":
        env["CARGO_TARGET_DIR"] = os.path.dirname(os.path.dirname(binary))
    done = subprocess.run([os.path.join(REPO, "scripts", "wheel")], env=env, capture_output=True,
                          text=True, timeout=INSTALL_TIMEOUT_S, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, f"scripts/wheel failed:\n{done.stderr[-4000:]}"
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def project():
    """A fresh venv with the wheel and the pinned clients, and a project holding the sample."""
    root = tempfile.mkdtemp(prefix="gregor-wheel-")
    try:
        wheel = build_wheel()
        venv = os.path.join(root, "venv")
        subprocess.run([sys.executable, "-m", "venv", venv], check=True, timeout=120)
        python = os.path.join(venv, "bin", "python")
        done = subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                               wheel, *pinned(SAMPLE_REQUIREMENTS)],
                              capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
        assert done.returncode == 0, f"pip install failed:\n{done.stderr[-4000:]}"
        tests = os.path.join(root, "project")
        os.makedirs(tests)
        shutil.copy(os.path.join(HERE, "wheel-sample", "sample.py"), os.path.join(tests, "test_sample.py"))
        # As in an activated venv, without the compat run's GREGOR_* settings (GREGOR_BIN
        # would point the package at the binary under test instead of the one it installed).
        env = {k: v for k, v in os.environ.items() if not k.startswith("GREGOR_") and k != "PYTHONPATH"}
        env.update(PATH=f"{os.path.join(venv, 'bin')}:{env.get('PATH', '')}", VIRTUAL_ENV=venv)
        yield SimpleNamespace(python=python, dir=tests, env=env)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run_sample(project, **env):
    done = subprocess.run([project.python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_sample.py"],
                          cwd=project.dir, env={**project.env, **env}, capture_output=True, text=True,
                          timeout=SAMPLE_TIMEOUT_S, stdin=subprocess.DEVNULL)
    assert done.returncode == 0 and f"{SAMPLE_TESTS} passed" in done.stdout, done.stdout[-6000:] + done.stderr[-2000:]


@pytest.mark.timeout(INSTALL_TIMEOUT_S * 2 + SAMPLE_TIMEOUT_S)
def test_sample_suite_on_the_plugins_broker(project):
    run_sample(project)


@pytest.mark.timeout(SAMPLE_TIMEOUT_S + 60)
def test_sample_suite_on_an_external_broker(project, broker):
    run_sample(project, GREGOR_BOOTSTRAP=broker.bootstrap)
    admin = kp_admin(broker.bootstrap)
    try:
        topics = admin.list_topics()
    finally:
        admin.close()
    made = [t for t in topics if t.startswith("test_")]
    assert len(made) == 3, f"the sample's fixtures made their topics on {broker.bootstrap}: {topics}"


START_TIMES = """
import json, statistics, time
import gregor, gregor.admin
times = []
for _ in range({starts}):
    started = time.perf_counter()
    with gregor.Broker() as broker:
        gregor.admin.call(broker.bootstrap, 18, 0, b"")  # ApiVersions v0
        times.append((time.perf_counter() - started) * 1000)
print(json.dumps(sorted(times)))
"""


@pytest.mark.timeout(120)
def test_broker_answers_soon_after_start(project):
    """From gregor.Broker().start() to the answer of a first request (ApiVersions), over
    several starts. The bound is loose (machines under load vary); the numbers are printed."""
    done = subprocess.run([project.python, "-c", START_TIMES.format(starts=STARTS)], env=project.env,
                          capture_output=True, text=True, timeout=100)
    assert done.returncode == 0, done.stderr[-4000:]
    times = json.loads(done.stdout)
    median = times[len(times) // 2]
    print(f"gregor.Broker start to first answer, ms: median {median:.1f}, all {[round(t, 1) for t in times]}")
    assert median < 1000, times
