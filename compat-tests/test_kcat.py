"""kcat (librdkafka CLI) against a real Gregor broker.

Every kcat invocation runs with a subprocess timeout and, for metadata, -m.
Consumers always use -e (exit at end of partition) so they stop by themselves.
"""

import json
import os
import re
import shutil
import subprocess
from collections import defaultdict
from types import SimpleNamespace

import pytest

from conftest import (
    JAVA,
    NODE_ID,
    SASL_CASES,
    deny_writes_and_reads,
    kp_create_topic,
    log_since,
    sasl_user,
    secure_addr,
    unique_topic,
    wait_for_login_logged,
    wait_until,
)

from test_oauthbearer import librdkafka_oauth, oauth_broker  # noqa: F401 (the fixture)

KCAT = shutil.which("kcat")
pytestmark = pytest.mark.skipif(KCAT is None, reason="kcat is not installed")

RUN_TIMEOUT_S = 30


def kcat(broker, *args, stdin=None, check=True):
    cmd = [KCAT, "-b", broker.bootstrap, "-m", "10", *args]
    proc = subprocess.run(cmd, input=stdin, capture_output=True, timeout=RUN_TIMEOUT_S)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {proc.returncode}\n"
            f"stdout: {proc.stdout.decode(errors='replace')[-2000:]}\n"
            f"stderr: {proc.stderr.decode(errors='replace')[-2000:]}")
    return proc


def produce_lines(broker, topic, lines, *extra, partition=0, check=True):
    """kcat -P with ':' as key delimiter; ``lines`` are "key:value" strings.

    ``partition=None`` leaves the choice to librdkafka's partitioner (by key).
    """
    data = ("\n".join(lines) + "\n").encode()
    where = [] if partition is None else ["-p", str(partition)]
    return kcat(broker, "-P", "-t", topic, "-K:", *where, *extra, stdin=data, check=check)


def consume_json(broker, topic, *extra):
    """kcat -C -J -e: one JSON envelope per message."""
    out = kcat(broker, "-C", "-t", topic, "-J", "-e", "-q", *extra).stdout.decode()
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_metadata_listing(broker):
    topic = unique_topic("kcat-meta")
    kp_create_topic(broker.bootstrap, topic, 3)

    text = kcat(broker, "-L").stdout.decode()
    assert re.search(r"^\s*1 brokers:", text, re.M), text
    m = re.search(rf"broker (\d+) at 127\.0\.0\.1:{broker.port}\b", text)
    assert m, text
    broker_id = int(m.group(1))
    assert f'topic "{topic}" with 3 partitions:' in text
    for p in range(3):
        assert re.search(rf"partition {p}, leader {broker_id}, replicas: {broker_id}, "
                         rf"isrs: {broker_id}\b", text), text

    md = json.loads(kcat(broker, "-L", "-J").stdout)
    assert [(b["id"], b["name"]) for b in md["brokers"]] == \
        [(broker_id, f"127.0.0.1:{broker.port}")]
    (t,) = [t for t in md["topics"] if t["topic"] == topic]
    assert sorted(p["partition"] for p in t["partitions"]) == [0, 1, 2]

    only = json.loads(kcat(broker, "-L", "-J", "-t", topic).stdout)
    assert [t["topic"] for t in only["topics"]] == [topic]


def test_produce_with_keys_and_consume_from_beginning(broker):
    topic = unique_topic("kcat-keys")
    lines = [f"key{i}:value {i}" for i in range(25)]
    produce_lines(broker, topic, lines)

    text = kcat(broker, "-C", "-t", topic, "-o", "beginning", "-e", "-q",
                "-f", "%k|%s|%o|%p\n").stdout.decode()
    assert text.splitlines() == [f"key{i}|value {i}|{i}|0" for i in range(25)]

    # -K: on the consumer side prints key:value
    text = kcat(broker, "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-K:").stdout.decode()
    assert text.splitlines() == lines


def test_consume_from_offset_relative_offset_and_partition(broker):
    topic = unique_topic("kcat-parts")
    kp_create_topic(broker.bootstrap, topic, 3)
    for p in range(3):
        produce_lines(broker, topic, [f"p{p}k{i}:p{p}v{i}" for i in range(10)], partition=p)

    msgs = consume_json(broker, topic, "-p", "1", "-o", "4")
    assert [(m["partition"], m["offset"], m["key"], m["payload"]) for m in msgs] == \
        [(1, i, f"p1k{i}", f"p1v{i}") for i in range(4, 10)]

    last_two = consume_json(broker, topic, "-p", "2", "-o", "-2")  # relative to the end
    assert [(m["offset"], m["payload"]) for m in last_two] == [(8, "p2v8"), (9, "p2v9")]

    everything = consume_json(broker, topic, "-o", "beginning")
    per_partition = defaultdict(list)
    for m in everything:
        per_partition[m["partition"]].append((m["offset"], m["key"]))
    assert dict(per_partition) == {p: [(i, f"p{p}k{i}") for i in range(10)] for p in range(3)}

    counted = kcat(broker, "-C", "-t", topic, "-p", "0", "-o", "beginning", "-c", "3", "-q",
                   "-f", "%o\n").stdout.decode()
    assert counted.split() == ["0", "1", "2"]


def test_keyed_messages_stick_to_a_partition(broker):
    topic = unique_topic("kcat-keyhash")
    kp_create_topic(broker.bootstrap, topic, 4)
    keys = [f"key-{i}" for i in range(12)]
    for rnd in range(3):
        produce_lines(broker, topic, [f"{k}:{rnd}" for k in keys], partition=None)
    msgs = consume_json(broker, topic, "-o", "beginning")
    assert len(msgs) == 36
    placement = defaultdict(set)
    for m in msgs:
        placement[m["key"]].add(m["partition"])
    assert all(len(p) == 1 for p in placement.values()), placement
    assert len({next(iter(p)) for p in placement.values()}) > 1


@pytest.mark.parametrize("codec", ["gzip", "lz4", "snappy", "zstd"])
def test_compression(broker, codec):
    topic = unique_topic(f"kcat-{codec}")
    lines = [f"k{i}:{codec} payload {i} " + "x" * (i % 50) for i in range(200)]
    produce_lines(broker, topic, lines, "-z", codec, "-X", "linger.ms=50")

    msgs = consume_json(broker, topic, "-o", "beginning")
    assert [(m["offset"], m["key"], m["payload"]) for m in msgs] == \
        [(i, line.split(":", 1)[0], line.split(":", 1)[1]) for i, line in enumerate(lines)]

    mid = consume_json(broker, topic, "-o", "123")
    assert [m["offset"] for m in mid] == list(range(123, 200))


@pytest.mark.parametrize("acks", ["0", "1", "all"])
def test_acks(broker, acks):
    topic = unique_topic(f"kcat-acks{acks}")
    lines = [f"k{i}:acks {acks} {i}" for i in range(20)]
    produce_lines(broker, topic, lines, "-X", f"acks={acks}")
    # acks=0: kcat is done once the request is written, maybe before the broker appended it.
    msgs = wait_until(lambda: len(got := consume_json(broker, topic, "-o", "beginning")) >= 20 and got,
                      timeout=10, message="the 20 records to be readable")
    assert [(m["offset"], m["key"], m["payload"]) for m in msgs] == \
        [(i, line.split(":", 1)[0], line.split(":", 1)[1]) for i, line in enumerate(lines)]


def test_query_offsets_by_timestamp(broker):
    """kcat -Q (offsets_for_times) and -o s@<ts>; kcat -P stamps records with 'now'."""
    topic = unique_topic("kcat-query")
    produce_lines(broker, topic, [f"k{i}:v{i}" for i in range(5)])
    stamps = [m["ts"] for m in consume_json(broker, topic, "-p", "0", "-o", "beginning")]
    assert len(stamps) == 5 and all(ts > 0 for ts in stamps)

    out = kcat(broker, "-Q", "-t", f"{topic}:0:1").stdout.decode()
    assert re.search(rf"{re.escape(topic)} \[0\] offset 0\b", out), out
    out = kcat(broker, "-Q", "-t", f"{topic}:0:{stamps[-1] + 3_600_000}").stdout.decode()
    assert re.search(rf"{re.escape(topic)} \[0\] offset -1\b", out), out

    # The first record whose timestamp is >= stamps[2] (records of one batch may share one).
    first = min(i for i, ts in enumerate(stamps) if ts >= stamps[2])
    from_ts = consume_json(broker, topic, "-p", "0", "-o", f"s@{stamps[2]}")
    assert [m["offset"] for m in from_ts] == list(range(first, 5))


def test_json_envelope_fields_and_headers(broker):
    topic = unique_topic("kcat-json")
    produce_lines(broker, topic, ["alpha:first", "beta:second"], "-H", "h1=v1", "-H", "h2=v2")
    msgs = consume_json(broker, topic, "-o", "beginning")
    assert [(m["topic"], m["partition"], m["offset"], m["key"], m["payload"]) for m in msgs] == \
        [(topic, 0, 0, "alpha", "first"), (topic, 0, 1, "beta", "second")]
    for m in msgs:
        assert m["headers"] == ["h1", "v1", "h2", "v2"]
        assert m["tstype"] == "create" and m["ts"] > 0


# ------------------------------------------------------------------ ACLs

@pytest.mark.skipif(JAVA is None, reason="java is not installed (kafka-acls)")
def test_acls_refuse_produce_and_fetch_with_topic_authorization_failed(tools_classpath, authorizing_broker):
    """kcat -P writes a record to a topic; then kafka-acls denies User:ANONYMOUS (every client
    here) WRITE and READ on it, DESCRIBE still allowed (so librdkafka has its metadata and the
    refusals are the Produce's and the Fetch's). kcat -P there then reports each message's
    delivery failed with "Broker: Topic authorization failed" and exits non-zero, while -P to
    another topic succeeds; kcat -C of the topic reports the Fetch refused and prints nothing."""
    b = authorizing_broker
    secret, public = unique_topic("kcat-secret"), unique_topic("kcat-public")
    produce_lines(b, secret, ["k:before"])
    deny_writes_and_reads(tools_classpath, b.bootstrap, secret)

    refused = produce_lines(b, secret, ["k0:v0", "k1:v1"], check=False)
    err = refused.stderr.decode(errors="replace")
    assert refused.returncode != 0, err
    assert err.count("Delivery failed for message: Broker: Topic authorization failed") == 2, err
    produce_lines(b, public, ["k:v"])
    assert [(m["offset"], m["payload"]) for m in consume_json(b, public, "-o", "beginning")] == [(0, "v")]

    fetched = kcat(b, "-C", "-t", secret, "-p", "0", "-o", "beginning", "-e", check=False)
    err = fetched.stderr.decode(errors="replace")
    assert fetched.returncode != 0 and fetched.stdout == b"", (fetched.stdout, err)
    assert f"Fetch from broker {NODE_ID} failed: Broker: Topic authorization failed" in err, err


# ------------------------------------------------------------------ security

def kcat_security(certs, listener, mechanism=None, password=None, client_cert=True):
    """kcat's -X settings for ``listener`` of the secured broker: the dev CA for TLS, the
    client certificate on MTLS (unless not ``client_cert``), ``mechanism``'s user on SASL
    (with ``password`` instead of theirs if given)."""
    protocol = {"MTLS": "SSL"}.get(listener, listener)
    settings = {"security.protocol": protocol}
    if protocol.endswith("SSL"):
        settings["ssl.ca.location"] = certs["ca"]
    if listener == "MTLS" and client_cert:
        settings.update({"ssl.certificate.location": certs["client_cert"], "ssl.key.location": certs["client_key"]})
    if mechanism:
        user, theirs = sasl_user(mechanism)
        settings.update({"sasl.mechanism": mechanism, "sasl.username": user, "sasl.password": password or theirs})
    return x_args(settings)


def x_args(settings):
    """kcat's -X arguments for librdkafka ``settings`` (booleans as librdkafka writes them)."""
    text = {True: "true", False: "false"}
    return [arg for key, value in settings.items()
            for arg in ("-X", f"{key}={text[value] if isinstance(value, bool) else value}")]


@pytest.mark.parametrize("listener,mechanism", [("SSL", None), ("MTLS", None)] + SASL_CASES)
def test_produce_and_consume_over_a_secured_listener(secured_with_scram_user, certs, listener, mechanism):
    """kcat -P and -C through ``listener``; the broker logs whom it let in: the client
    certificate's principal on MTLS, the SASL user on SASL listeners."""
    b = secured_with_scram_user
    topic = unique_topic(f"kcat-{listener.lower()}")
    kp_create_topic(b.bootstrap, topic, 1)
    through = SimpleNamespace(bootstrap=secure_addr(b, listener))
    settings = kcat_security(certs, listener, mechanism)
    logged_from = os.path.getsize(b.log_path)
    lines = [f"k{i}:{listener} {mechanism} {i}" for i in range(10)]
    produce_lines(through, topic, lines, *settings)
    msgs = consume_json(through, topic, "-o", "beginning", *settings)
    assert [(m["offset"], m["key"], m["payload"]) for m in msgs] == \
        [(i, line.split(":", 1)[0], line.split(":", 1)[1]) for i, line in enumerate(lines)]
    wait_for_login_logged(b, logged_from, certs, listener, mechanism)


def refused(b, listener, settings):
    """kcat -L through ``listener`` with ``settings``: it must fail (within 3 s: the refusal
    comes at once, then librdkafka retries); returns what it printed."""
    done = kcat(SimpleNamespace(bootstrap=secure_addr(b, listener)), "-L", "-m", "3", *settings, check=False)
    assert done.returncode != 0, done.stdout.decode(errors="replace")
    return done.stderr.decode(errors="replace")


def test_mutual_tls_without_a_client_certificate_is_refused(secured, certs):
    logged_from = os.path.getsize(secured.log_path)
    refused(secured, "MTLS", kcat_security(certs, "MTLS", client_cert=False))
    assert "TLS handshake failed" in log_since(secured, logged_from)


def test_wrong_password_is_refused(secured, certs):
    err = refused(secured, "SASL_PLAINTEXT", kcat_security(certs, "SASL_PLAINTEXT", "PLAIN", password="not-the-password"))
    assert "SASL authentication error: Authentication failed: Invalid username or password" in err, err


# ------------------------------------------------------------------ OAUTHBEARER

def test_oauthbearer_with_librdkafkas_unsecured_token(oauth_broker):
    """kcat (librdkafka) with SASL/OAUTHBEARER and its own unsecured JWT
    (``enable.sasl.oauthbearer.unsecure.jwt``) writes and reads back a line as the token's
    subject; a token without the listener's required scope is refused. (Debian's kcat is built
    without libcurl, so it has no OIDC method for signed tokens.)"""
    topic = unique_topic("kcat-oauth")
    kp_create_topic(oauth_broker.bootstrap, topic, 1)
    through = SimpleNamespace(bootstrap=oauth_broker.sasl_bootstrap)

    def oauth(scope):
        return x_args(librdkafka_oauth("kcat-dev", scope))

    produce_lines(through, topic, ["k:kcat-dev"], *oauth("kafka"))
    assert [m["payload"] for m in consume_json(through, topic, "-o", "beginning", *oauth("kafka"))] == ["kcat-dev"]
    assert "authenticated as User:kcat-dev" in log_since(oauth_broker, 0)
    denied = produce_lines(through, topic, ["k:denied"], *oauth("other"), check=False)
    assert denied.returncode != 0, denied.stderr
    assert "lacks the required 'kafka'" in denied.stderr.decode(errors="replace")
