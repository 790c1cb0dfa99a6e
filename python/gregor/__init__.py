"""Gregor, a Kafka-compatible broker, for tests.

``Broker()`` starts the ``gregor`` binary this package installed on a free port of 127.0.0.1
with a temporary data directory; ``stop()`` (or leaving its ``with`` block) ends it and removes
the directory. ``create_topic`` makes a topic on any Kafka broker. The pytest plugin
(``gregor.pytest_plugin``) builds its ``kafka_broker`` and ``kafka_topic`` fixtures on these.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import shutil
import signal
import subprocess
import sysconfig
import tempfile
import threading
import time

from gregor.admin import TopicError, create_topic

__all__ = ["Broker", "BrokerError", "TopicError", "binary", "create_topic"]

_LOG_TAIL_BYTES = 4000


class BrokerError(RuntimeError):
    """The broker could not be started (the message has its log's tail)."""


def binary() -> str:
    """The ``gregor`` executable: ``$GREGOR_BIN`` if set, else the one installed with this
    package (beside this Python's scripts, or the user scheme's), else the ``PATH``'s."""
    if os.environ.get("GREGOR_BIN"):
        return os.environ["GREGOR_BIN"]
    for scripts in (sysconfig.get_path("scripts"), sysconfig.get_path("scripts", f"{os.name}_user")):
        path = os.path.join(scripts, "gregor")
        if os.access(path, os.X_OK):
            return path
    found = shutil.which("gregor")
    if found is None:
        raise BrokerError("no gregor executable: install gregor-kafka, or set GREGOR_BIN")
    return found


def _die_with_parent():
    # Linux: the broker gets SIGKILL if the process that started it is killed without stopping it.
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Broker:
    """One ``gregor`` process on a free port with a temporary data directory.

    ``args`` are more ``gregor`` flags, e.g. ``Broker("--num-partitions", "3")``. ``bootstrap``
    is the ``host:port`` clients connect to, set once ``start()`` returns: the broker serves
    then. ``log_path`` is its log (stderr), removed with the data directory at ``stop()``.
    """

    def __init__(self, *args: str, binary_path: str | None = None, start_timeout: float = 10.0,
                 stop_timeout: float = 10.0):
        self.args = list(args)
        self.binary = binary_path
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.bootstrap: str | None = None
        self.log_path: str | None = None
        self.dir: str | None = None
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Broker":
        if self.proc is not None:
            raise BrokerError("this broker was started already")
        exe = self.binary or binary()
        self.dir = tempfile.mkdtemp(prefix="gregor-")
        ready = os.path.join(self.dir, "ready")
        self.log_path = os.path.join(self.dir, "gregor.log")
        command = [exe, "--listeners", "PLAINTEXT://127.0.0.1:0",
                   "--log-dirs", os.path.join(self.dir, "data"), "--ready-file", ready, *self.args]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                env={**os.environ, "NO_COLOR": "1"},
                # Ctrl-C goes to the test run only, whose teardown stops the broker.
                start_new_session=True,
                # The signal follows the thread that started the child: only the main thread's
                # end is the process's.
                preexec_fn=_die_with_parent if threading.current_thread() is threading.main_thread() else None,
            )
        _LIVE.add(self)
        deadline = time.monotonic() + self.start_timeout
        while not os.path.exists(ready):
            failed = None
            if self.proc.poll() is not None:
                failed = f"gregor exited with code {self.proc.returncode} while starting"
            elif time.monotonic() > deadline:
                failed = f"gregor did not start within {self.start_timeout} s"
            if failed:
                tail = self.log_tail()
                self.stop()
                raise BrokerError(f"{failed}: {' '.join(command)}\n--- its log ---\n{tail}")
            time.sleep(0.001)
        with open(ready) as f:
            self.bootstrap = f.read().strip()
        return self

    def log_tail(self) -> str:
        """The end of the broker's log."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - _LOG_TAIL_BYTES))
                return f.read().decode("utf-8", errors="replace")
        except (OSError, TypeError):
            return ""

    def create_topic(self, name: str, partitions: int = 1, config: dict | None = None) -> str:
        """Creates topic ``name`` on this broker; returns the name."""
        create_topic(self.bootstrap, name, partitions, config)
        return name

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL if it has not exited within ``stop_timeout``; removes the data
        directory. Returns the exit code (None if it never started)."""
        proc, code = self.proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(self.stop_timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(self.stop_timeout)
            code = proc.returncode
        _LIVE.discard(self)
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
        return code

    def __enter__(self) -> "Broker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


_LIVE: set[Broker] = set()  # started and not stopped: stopped when Python exits


@atexit.register
def _stop_leftovers():
    for broker in list(_LIVE):
        broker.stop()
